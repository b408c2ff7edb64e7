"""An independent, plain-Python evaluator of segment conditions, written from docs/segments.md.

It works on an in-memory purchase history and answers "which customers (by external id) does
this condition pick at `now`?" without any SQL, so the compiler's queries can be checked
against it on every database.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from engine.segments import tree as t
from engine.settings import Tier
from engine.timespec import Moment, Span

FIELD_COLUMNS = {"customer_id": "external_id", "email": "email", "first_name": "first_name",
                 "last_name": "last_name", "locale": "locale", "timezone": "timezone",
                 "country": "country", "city": "city"}


@dataclass(frozen=True)
class Customer:
    """One row of `customers`; `attributes` are the extra import columns."""

    external_id: str
    email: str
    first_name: str = ""
    last_name: str = ""
    locale: str | None = None
    timezone: str | None = None
    country: str | None = None
    city: str | None = None
    birthday: date | None = None
    signed_up_at: datetime | None = None
    subscribed: bool = True
    attributes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Product:
    sku: str
    category: str | None
    name: str = "Product"
    price: Decimal = Decimal("1.00")


@dataclass(frozen=True)
class Line:
    """An order line: so many items of one product (by SKU)."""

    sku: str
    quantity: int
    unit_price: Decimal = Decimal("1.00")


@dataclass(frozen=True)
class Order:
    external_id: str
    customer: str  # the customer's external id
    placed_at: datetime
    total: Decimal
    lines: tuple[Line, ...] = ()


@dataclass(frozen=True)
class Delivery:
    """One email of a campaign to a customer; `sent_at` is set once it was sent."""

    customer: str
    campaign: str
    state: str = "sent"
    sent_at: datetime | None = None


@dataclass(frozen=True)
class Event:
    """Something a customer did with an email: "open", "click" (on `url`), "unsubscribe"..."""

    customer: str | None
    campaign: str | None
    kind: str
    created_at: datetime
    delivery: int | None = None  # an index into History.deliveries
    url: str | None = None


@dataclass(frozen=True)
class Response:
    """A customer's answers to one campaign's survey, as last updated."""

    customer: str
    campaign: str
    answers: Mapping[str, object]
    updated_at: datetime


@dataclass(frozen=True)
class History:
    customers: tuple[Customer, ...] = ()
    products: tuple[Product, ...] = ()
    orders: tuple[Order, ...] = ()
    deliveries: tuple[Delivery, ...] = ()
    events: tuple[Event, ...] = ()
    responses: tuple[Response, ...] = ()


def span_before(span: Span, moment: datetime) -> datetime:
    """`moment` minus `span`; months and years are calendar ones, clipped to the month's end
    (one month before March 31 is February 28 or 29)."""
    if span.unit in ("days", "weeks"):
        return moment - timedelta(days=span.amount * (7 if span.unit == "weeks" else 1))
    months = span.amount * (12 if span.unit == "years" else 1)
    year, month = moment.year, moment.month
    for _ in range(months):
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
    next_first = date(year + 1, 1, 1) if month == 12 else date(year, month + 1, 1)
    last_day = (next_first - timedelta(days=1)).day
    return moment.replace(year=year, month=month, day=min(moment.day, last_day))


def resolve(moment: Moment, now: datetime) -> datetime:
    return moment.absolute if moment.ago is None else span_before(moment.ago, now)


class Oracle:
    """Evaluates conditions over a history as of `now`, following the language reference."""

    def __init__(self, history: History, now: datetime,
                 segments: Mapping[str, t.Segment] | None = None,
                 tiers: Sequence[Tier] = ()) -> None:
        self.history = history
        self.now = now
        self.segments = segments or {}
        self.tiers = tuple(tiers)
        self.everyone = frozenset(c.external_id for c in history.customers)
        self.categories = {p.sku: p.category for p in history.products}
        # Only orders placed strictly before now exist for any condition.
        self.past: dict[str, list[Order]] = {c.external_id: [] for c in history.customers}
        for order in history.orders:
            if order.placed_at < now:
                self.past[order.customer].append(order)

    # -- helpers ------------------------------------------------------------------------
    def orders_of(self, customer: str, within: Span | None) -> list[Order]:
        """The customer's past orders, limited to `within` (at or after now − span)."""
        orders = self.past[customer]
        if within is None:
            return orders
        start = span_before(within, self.now)
        return [o for o in orders if o.placed_at >= start]

    def select(self, test) -> frozenset[str]:
        return frozenset(c for c in self.everyone if test(c))

    # -- evaluation ---------------------------------------------------------------------
    def evaluate(self, condition: t.Condition) -> frozenset[str]:
        """External ids of the customers `condition` picks."""
        match condition:
            case t.All(items):
                result = self.everyone
                for item in items:
                    result = result & self.evaluate(item)
                return result
            case t.AnyOf(items):
                result = frozenset()
                for item in items:
                    result = result | self.evaluate(item)
                return result
            case t.Not(item):
                return self.everyone - self.evaluate(item)
            case t.SegmentRef(name):
                return self.evaluate(self.segments[name].condition)
            case t.OrderCount(bounds, within):
                return self.select(
                    lambda c: bounds.admits(Decimal(len(self.orders_of(c, within)))))
            case t.Spent(bounds, within):
                return self.select(lambda c: bounds.admits(self.spent(c, within)))
            case t.AverageOrder(bounds, within):
                return self.select(lambda c: self.average_admits(c, bounds, within))
            case t.When(event, before, after):
                return self.select(lambda c: self.when(c, event, before, after))
            case t.Bought():
                return self.select(lambda c: self.bought(c, condition) >= condition.at_least)
            case t.FieldMatch():
                customers = {c.external_id: c for c in self.history.customers}
                return self.select(lambda c: field_matches(customers[c], condition))
            case t.Rfm():
                return self.rfm(condition)
            case t.TierIs(names):
                return self.select(lambda c: self.tier_of(c) in names)
            case t.Engagement(_, bounds):
                return self.select(lambda c: bounds.admits(Decimal(self.engaged(c, condition))))
            case t.SurveyAnswer():
                return frozenset(r.customer for r in self.history.responses
                                 if self.counts(r.updated_at, r.campaign, condition)
                                 and answer_fits(r.answers.get(condition.question), condition))
        raise TypeError(f"not a condition: {condition!r}")

    def spent(self, customer: str, within: Span | None) -> Decimal:
        return sum((o.total for o in self.orders_of(customer, within)), Decimal(0))

    def average_admits(self, customer: str, bounds: t.Bounds, within: Span | None) -> bool:
        orders = self.orders_of(customer, within)
        if not orders:
            return False
        # Exact: mean >= x  <=>  sum >= x * count (no rounding of the mean at all).
        total, count = self.spent(customer, within), len(orders)
        return (bounds.at_least is None or total >= bounds.at_least * count) and \
            (bounds.at_most is None or total <= bounds.at_most * count)

    def when(self, customer: str, event: str, before, after) -> bool:
        if event == "signed_up":
            moment = next(c.signed_up_at for c in self.history.customers
                          if c.external_id == customer)
        else:
            times = [o.placed_at for o in self.past[customer]]
            if not times:
                return False
            moment = min(times) if event == "first_order" else max(times)
        if moment is None:
            return False
        if before is not None and not moment < resolve(before, self.now):
            return False
        return after is None or moment >= resolve(after, self.now)

    def bought(self, customer: str, condition: t.Bought) -> int:
        """Items (quantities) of matching products in the customer's orders in the window."""
        skus = {s.lower() for s in condition.products}
        categories = {c.lower() for c in condition.categories}
        count = 0
        for order in self.orders_of(customer, condition.within):
            for line in order.lines:
                category = self.categories[line.sku]
                if skus and line.sku.lower() not in skus:
                    continue
                if categories and (category is None or category.lower() not in categories):
                    continue
                count += line.quantity
        return count

    def rfm_scores(self) -> dict[str, dict[str, int]]:
        """Scores per customer with past orders: {"recency": r, "frequency": f, "monetary": m}."""
        values: dict[str, dict[str, object]] = {}
        for customer, orders in self.past.items():
            if orders:
                total = sum((o.total for o in orders), Decimal(0))
                values[customer] = {"recency": max(o.placed_at for o in orders),
                                    "frequency": len(orders),
                                    "monetary": int((total * 100).to_integral_value())}
        n = len(values)
        scores: dict[str, dict[str, int]] = {c: {} for c in values}
        for dimension in ("recency", "frequency", "monetary"):
            for customer, own in values.items():
                mine = own[dimension]
                rank = 1 + sum(1 for other in values.values() if other[dimension] < mine)
                scores[customer][dimension] = 1 + (5 * (rank - 1)) // n
        return scores

    def rfm(self, condition: t.Rfm) -> frozenset[str]:
        wanted = {"recency": condition.recency, "frequency": condition.frequency,
                  "monetary": condition.monetary}
        return frozenset(
            customer for customer, score in self.rfm_scores().items()
            if all(allowed is None or score[d] in allowed for d, allowed in wanted.items()))

    def counts(self, moment: datetime | None, campaign: str | None,
               condition: t.Engagement | t.SurveyAnswer) -> bool:
        """Whether a row at `moment` of `campaign` is one the condition looks at."""
        start = None if condition.within is None else span_before(condition.within, self.now)
        return moment is not None and moment < self.now and (start is None or moment >= start) \
            and (not condition.campaigns or campaign in condition.campaigns)

    def engaged(self, customer: str, condition: t.Engagement) -> int:
        """Emails sent to the customer, or distinct emails they opened or clicked."""
        if condition.event == "received":
            return sum(1 for d in self.history.deliveries if d.customer == customer
                       and d.state == "sent" and self.counts(d.sent_at, d.campaign, condition))
        kind = {"opened": "open", "clicked": "click"}[condition.event]
        wanted = None if condition.url is None else condition.url.lower()
        return len({e.delivery for e in self.history.events
                    if e.customer == customer and e.kind == kind and e.delivery is not None
                    and self.counts(e.created_at, e.campaign, condition)
                    and (wanted is None or (e.url is not None and wanted in e.url.lower()))})

    def tier_of(self, customer: str) -> str | None:
        """The first tier (in settings order) whose thresholds the customer meets."""
        for tier in self.tiers:
            orders = self.orders_of(customer, tier.within)
            spent = sum((o.total for o in orders), Decimal(0))
            if (tier.spent is None or spent >= tier.spent) and \
                    (tier.orders is None or len(orders) >= tier.orders):
                return tier.name
        return None


def field_matches(customer: Customer, condition: t.FieldMatch) -> bool:
    """One `customer:` field: exact value(s) as stored, or `contains` ignoring case.

    An empty or missing field never matches; `subscribed` compares the boolean.
    """
    if condition.field == "subscribed" and not condition.attribute:
        return customer.subscribed in condition.values
    if condition.attribute:
        value = customer.attributes.get(condition.field)
    else:
        value = getattr(customer, FIELD_COLUMNS[condition.field])
    if not isinstance(value, str) or value == "":
        return False
    if condition.contains is not None:
        return condition.contains.lower() in value.lower()
    return any(isinstance(v, str) and v == value for v in condition.values)


def answer_fits(value: object, condition: t.SurveyAnswer) -> bool:
    """One answer against `survey:`. Numbers are whole numbers of at most 9 digits (never
    true/false or 7.5); texts match exactly; without bounds or answers any of those fits."""
    number = isinstance(value, int) and not isinstance(value, bool) and abs(value) < 10**9
    text = isinstance(value, str)
    if condition.bounds is not None:
        return number and condition.bounds.admits(Decimal(value))
    if not condition.answers:
        return number or text
    return any((number and isinstance(a, int) and a == value) or
               (text and isinstance(a, str) and a == value) for a in condition.answers)
