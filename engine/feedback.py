"""What customers do with their emails, recorded: opens, clicks, pauses and survey answers.

Each function writes in the caller's transaction. The upserts (a pause, a survey answer set)
are safe when two requests for the same customer arrive at once, on SQLite, PostgreSQL and
MariaDB: a plain read for the row, then an UPDATE of it, else an INSERT inside a SAVEPOINT;
when a concurrent transaction inserted the row meanwhile, the INSERT fails on the unique key
(after waiting for that transaction) and an UPDATE of the committed row follows.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Table, insert, select, update
from sqlalchemy.exc import IntegrityError

from engine.schema import customers, deliveries, events, pauses, runs, survey_responses
from engine.surveys import Answer
from engine.unsubscribe import UnknownCustomerError

PAUSE_DAYS = (30, 90)


def record_hit(connection: Connection, kind: str, delivery_id: int, now: datetime,
               detail: dict[str, Any]) -> bool:
    """An "open" or "click" event of delivery `delivery_id`; False when there is no such
    delivery (nothing is written then)."""
    found = connection.execute(
        select(deliveries.c.customer_id, runs.c.campaign)
        .join(runs, runs.c.id == deliveries.c.run_id)
        .where(deliveries.c.id == delivery_id)).first()
    if found is None:
        return False
    connection.execute(insert(events).values(
        customer_id=found.customer_id, campaign=found.campaign, kind=kind, created_at=now,
        detail=detail, delivery_id=delivery_id))
    return True


def latest_delivery(connection: Connection, campaign: str,
                    customer_id: int) -> tuple[int, datetime] | None:
    """(delivery id, the run's evaluated_at) of the customer's latest delivery of `campaign`."""
    found = connection.execute(
        select(deliveries.c.id, runs.c.evaluated_at)
        .join(runs, runs.c.id == deliveries.c.run_id)
        .where(runs.c.campaign == campaign, deliveries.c.customer_id == customer_id)
        .order_by(deliveries.c.id.desc()).limit(1)).first()
    return (found.id, found.evaluated_at) if found is not None else None


def record_pause(connection: Connection, customer_id: int, campaign: str, days: int,
                 now: datetime) -> datetime:
    """Pause campaign mail to the customer for `days` from `now` (replacing an earlier pause)
    and record a "pause" event; returns when the pause ends.

    Raises UnknownCustomerError when there is no such customer.
    """
    if days not in PAUSE_DAYS:
        raise ValueError(f"a pause lasts one of {PAUSE_DAYS} days, not {days}")
    _require_customer(connection, customer_id)
    until = now + timedelta(days=days)
    _upsert(connection, pauses, {"customer_id": customer_id}, {"paused_until": until},
            {"created_at": now})
    connection.execute(insert(events).values(
        customer_id=customer_id, campaign=campaign, kind="pause", created_at=now,
        detail={"days": days, "until": until.isoformat(timespec="seconds")}))
    return until


def survey_answers(connection: Connection, campaign: str,
                   customer_id: int) -> dict[str, Answer] | None:
    """The answers the customer gave to the campaign's survey, if any."""
    found = connection.execute(
        select(survey_responses.c.answers)
        .where(survey_responses.c.campaign == campaign,
               survey_responses.c.customer_id == customer_id)).scalar_one_or_none()
    return dict(found) if found is not None else None


def record_survey(connection: Connection, campaign: str, customer_id: int,
                  answers: dict[str, Answer], now: datetime) -> bool:
    """Store the customer's answers to the campaign's survey (replacing earlier ones) and
    record a "survey" event; True for a first answer, False for an update.

    Raises UnknownCustomerError when there is no such customer.
    """
    _require_customer(connection, customer_id)
    delivery = latest_delivery(connection, campaign, customer_id)
    delivery_id = delivery[0] if delivery is not None else None
    first = _upsert(connection, survey_responses,
                    {"campaign": campaign, "customer_id": customer_id},
                    {"answers": answers, "updated_at": now, "delivery_id": delivery_id},
                    {"created_at": now})
    connection.execute(insert(events).values(
        customer_id=customer_id, campaign=campaign, kind="survey", created_at=now,
        delivery_id=delivery_id, detail={"answered": sorted(answers), "first": first}))
    return first


def _require_customer(connection: Connection, customer_id: int) -> None:
    if connection.execute(select(customers.c.id)
                          .where(customers.c.id == customer_id)).first() is None:
        raise UnknownCustomerError(f"no customer with id {customer_id}",
                                   hint="the customer was deleted after the email was sent")


def _upsert(connection: Connection, table: Table, key: dict[str, Any],
            values: dict[str, Any], created: dict[str, Any]) -> bool:
    """Set `values` on the row with `key`, inserting it (with `created`) when there is none;
    True when this inserted it."""
    where = [table.c[name] == value for name, value in key.items()]
    change = update(table).where(*where).values(**values)
    # A plain read first, not the UPDATE: an UPDATE that finds no row takes gap locks on
    # MariaDB, and two of them make each other's INSERT deadlock.
    if connection.execute(select(table.c[next(iter(key))]).where(*where)).first() is not None:
        connection.execute(change)
        return False
    try:
        with connection.begin_nested():
            connection.execute(insert(table).values(**key, **values, **created))
    except IntegrityError:
        # Inserted by a concurrent transaction since our UPDATE: update that row instead.
        # Anything else that broke the insert (no such customer) is not tolerated.
        if not connection.execute(change).rowcount:
            raise
        return False
    return True
