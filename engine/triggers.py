"""Which lifecycle events are due: one SELECT per campaign pass, run in the database.

Each event has a key, unique per customer: `order:ID` (every order), `last_order:ID` (the
customer's latest order, while nothing newer exists), `signed_up`, `birthday:YEAR`. An event is
due `wait` after it happened (a birthday at 00:00 UTC of the day; 29 February on the 28th in
other years), and stays due for `catch_up`. A key stored in `triggered` for the campaign and
customer is never due again: at most one email per event.

The time window is computed here in Python, the query only compares stored times with
constants, so SQLite, PostgreSQL and MariaDB agree: an event is due once `now - wait` has
reached it. With `wait` in months that is the same day of the month `wait` later, or the next
month's start when that day does not exist (31 January + 1 month: 1 March, 00:00); see
`Trigger.due`.
"""

from __future__ import annotations

from calendar import isleap
from datetime import date, datetime, time, timedelta

from sqlalchemy import (
    ColumnElement,
    CompoundSelect,
    Select,
    String,
    and_,
    case,
    extract,
    literal,
    or_,
    select,
    type_coerce,
    union_all,
)
from sqlalchemy.types import TypeDecorator

from engine.schema import Moment, customers, orders, triggered
from engine.timing import Trigger


class _Midnight(TypeDecorator):
    """A birthday's midnight, a constant in the query: MariaDB returns it as text."""

    impl = Moment
    cache_ok = True

    def process_result_value(self, value: object, dialect: object) -> object:
        return datetime.fromisoformat(value) if isinstance(value, str) else value


def due_events(trigger: Trigger, campaign: str, now: datetime) -> Select:
    """SELECT customer_id, event_key, event_at for every event due at `now` and not yet
    triggered for `campaign`, ordered by customer_id, event_at, event_key. A customer can
    have several rows (two orders in the window); `trigger.due(event_at)` is when each fell
    due."""
    earliest = trigger.catch_up.before(now)
    start, end = _event_window(trigger, earliest, now)
    if trigger.event == "birthday":
        events = _birthdays(earliest, now)
    elif trigger.event == "last_order":
        events = _last_orders(start, end, now)
    else:
        events = _orders(start, end) if trigger.event == "order" else _signups(start, end)
    rows = events.subquery("events")
    done = (select(triggered.c.id)
            .where(triggered.c.campaign == campaign,
                   triggered.c.customer_id == rows.c.customer_id,
                   triggered.c.event_key == rows.c.event_key).exists())
    return (select(rows.c.customer_id, rows.c.event_key, rows.c.event_at).where(~done)
            .order_by(rows.c.customer_id, rows.c.event_at, rows.c.event_key))


def _event_window(trigger: Trigger, earliest: datetime, now: datetime
                  ) -> tuple[datetime, datetime]:
    """Event times whose due time lies in [earliest, now]."""
    if trigger.wait is None:
        return earliest, now
    return trigger.wait.before(earliest), trigger.wait.before(now)


def _orders(start: datetime, end: datetime) -> Select:
    return (select(orders.c.customer_id, _key("order:", orders.c.external_id),
                   orders.c.placed_at.label("event_at"))
            .where(orders.c.placed_at >= start, orders.c.placed_at <= end))


def _last_orders(start: datetime, end: datetime, now: datetime) -> Select:
    later = orders.alias("later")
    newer = (select(later.c.id)
             .where(later.c.customer_id == orders.c.customer_id, later.c.placed_at <= now,
                    or_(later.c.placed_at > orders.c.placed_at,
                        and_(later.c.placed_at == orders.c.placed_at, later.c.id > orders.c.id)))
             .exists())
    return (select(orders.c.customer_id, _key("last_order:", orders.c.external_id),
                   orders.c.placed_at.label("event_at"))
            .where(orders.c.placed_at >= start, orders.c.placed_at <= end,
                   ~newer))


def _signups(start: datetime, end: datetime) -> Select:
    return (select(customers.c.id.label("customer_id"),
                   literal("signed_up", String).label("event_key"),
                   customers.c.signed_up_at.label("event_at"))
            .where(customers.c.signed_up_at >= start, customers.c.signed_up_at <= end))


def _birthdays(earliest: datetime, now: datetime) -> Select | CompoundSelect:
    """One branch per calendar year in the window (two around New Year), each matching the
    birthdays (month * 100 + day) whose midnight lies in [earliest, now]."""
    first = earliest.date() if earliest.time() == time(0) else earliest.date() + timedelta(1)
    days = [first + timedelta(n) for n in range((now.date() - first).days + 1)]
    branches = []
    for year in sorted({day.year for day in days}):
        midnights = {_month_day(day): datetime.combine(day, time(0))
                     for day in days if day.year == year}
        day_of_year = (extract("month", customers.c.birthday) * 100
                       + extract("day", customers.c.birthday))
        if not isleap(year) and 228 in midnights:
            day_of_year = case((day_of_year == 229, 228), else_=day_of_year)
        event_at = case({number: literal(moment, Moment) for number, moment in midnights.items()},
                        value=day_of_year)
        branches.append(
            select(customers.c.id.label("customer_id"),
                   literal(f"birthday:{year}", String).label("event_key"),
                   type_coerce(event_at, _Midnight).label("event_at"))
            .where(customers.c.birthday.is_not(None), day_of_year.in_(list(midnights))))
    return branches[0] if len(branches) == 1 else union_all(*branches)


def _key(prefix: str, column: ColumnElement) -> ColumnElement:
    return (literal(prefix, String) + column).label("event_key")


def _month_day(day: date) -> int:
    return day.month * 100 + day.day
