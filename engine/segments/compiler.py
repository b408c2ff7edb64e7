"""The segment tree compiled to ONE SQLAlchemy Core SELECT of customer ids, run in the database.

Every predicate is two-valued (never SQL NULL), so `not` means exactly "not in the segment".
Amounts are compared in whole cents and text case-insensitively (binary collation on MariaDB),
so SQLite, PostgreSQL and MariaDB give identical results. Only orders placed before `now` count.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import GenericFunction
from sqlalchemy.types import String

from engine.schema import customers, order_items, orders, products
from engine.segments import tree as t
from engine.settings import Tier

_COLUMN_OF_FIELD = {"customer_id": "external_id"}


class folded(GenericFunction):  # noqa: N801 - reads like the SQL function it stands for
    """lower(x) compared byte by byte (MariaDB would otherwise ignore accents)."""

    type = String()
    inherit_cache = True


@compiles(folded)
def _folded(element, compiler, **kw) -> str:
    return f"lower({compiler.process(element.clauses, **kw)})"


@compiles(folded, "mysql")
@compiles(folded, "mariadb")
def _folded_mysql(element, compiler, **kw) -> str:
    return f"(lower({compiler.process(element.clauses, **kw)}) COLLATE utf8mb4_bin)"


@dataclass(frozen=True)
class Scope:
    """What a condition is evaluated against: the time, other segments and the tiers."""

    now: datetime
    segments: Mapping[str, t.Segment]
    tiers: Sequence[Tier] = ()


def segment_query(condition: t.Condition, scope: Scope) -> Select:
    """SELECT customers.id for every customer the condition picks."""
    return select(customers.c.id).where(predicate(condition, scope))


def predicate(condition: t.Condition, scope: Scope) -> ColumnElement[bool]:
    """A boolean SQL expression over `customers` that is true exactly for members."""
    match condition:
        case t.All(items):
            return and_(*(predicate(item, scope) for item in items))
        case t.AnyOf(items):
            return or_(*(predicate(item, scope) for item in items))
        case t.Not(item):
            return not_(predicate(item, scope))
        case t.SegmentRef(name):
            return predicate(scope.segments[name].condition, scope)
        case t.OrderCount(bounds, within):
            return _aggregate(func.count(orders.c.id), bounds, within, scope, cents=False)
        case t.Spent(bounds, within):
            return _aggregate(_cents(func.sum(orders.c.total)), _in_cents(bounds), within, scope,
                              cents=True)
        case t.AverageOrder(bounds, within):
            return _average(bounds, within, scope)
        case t.When(event, before, after):
            return _when(event, before and before.resolve(scope.now),
                         after and after.resolve(scope.now), scope)
        case t.Bought():
            return _bought(condition, scope)
        case t.FieldMatch():
            return _field(condition)
        case t.Rfm():
            return _rfm(condition, scope)
        case t.TierIs(names):
            return or_(*(predicate(tier_condition(scope.tiers, name), scope) for name in names))
    raise TypeError(f"unknown condition {condition!r}")


def tier_condition(tiers: Sequence[Tier], name: str) -> t.Condition:
    """Qualifies for tier `name` and for none listed before it."""
    index = [tier.name for tier in tiers].index(name)
    qualifies = [_qualifies(tier) for tier in tiers[:index + 1]]
    return t.All((qualifies[-1], *(t.Not(q) for q in qualifies[:-1])))


def _qualifies(tier: Tier) -> t.Condition:
    parts: list[t.Condition] = []
    if tier.spent is not None:
        parts.append(t.Spent(t.Bounds(at_least=tier.spent), tier.within))
    if tier.orders is not None:
        parts.append(t.OrderCount(t.Bounds(at_least=Decimal(tier.orders)), tier.within))
    return t.All(tuple(parts))


def _past_orders(scope: Scope, within: t.Span | None) -> ColumnElement[bool]:
    condition = orders.c.placed_at < scope.now
    if within is not None:
        condition = and_(condition, orders.c.placed_at >= within.before(scope.now))
    return condition


def _cents(amount) -> ColumnElement:
    return func.round(amount * 100)


def _in_cents(bounds: t.Bounds) -> t.Bounds:
    return t.Bounds(*(None if b is None else int(b * 100) for b in (bounds.at_least,
                                                                      bounds.at_most)))


def _holds(value, bounds: t.Bounds) -> ColumnElement[bool]:
    parts = []
    if bounds.at_least is not None:
        parts.append(value >= literal(int(bounds.at_least)))
    if bounds.at_most is not None:
        parts.append(value <= literal(int(bounds.at_most)))
    return and_(*parts)


def _aggregate(value, bounds: t.Bounds, within, scope: Scope, cents: bool) -> ColumnElement[bool]:
    """Customers whose per-customer aggregate is within bounds; no orders counts as 0."""
    grouped = select(orders.c.customer_id).where(_past_orders(scope, within)) \
        .group_by(orders.c.customer_id)
    if bounds.admits(Decimal(0)):
        return customers.c.id.not_in(grouped.having(not_(_holds(value, bounds))))
    return customers.c.id.in_(grouped.having(_holds(value, bounds)))


def _average(bounds: t.Bounds, within, scope: Scope) -> ColumnElement[bool]:
    """Mean order total within bounds, compared exactly as cents sum vs bound x count."""
    total, count = _cents(func.sum(orders.c.total)), func.count(orders.c.id)
    parts = []
    if bounds.at_least is not None:
        parts.append(total >= literal(int(bounds.at_least * 100)) * count)
    if bounds.at_most is not None:
        parts.append(total <= literal(int(bounds.at_most * 100)) * count)
    grouped = select(orders.c.customer_id).where(_past_orders(scope, within)) \
        .group_by(orders.c.customer_id).having(and_(*parts))
    return customers.c.id.in_(grouped)


def _when(event: str, before: datetime | None, after: datetime | None,
          scope: Scope) -> ColumnElement[bool]:
    if event == "signed_up":
        column = customers.c.signed_up_at
        parts = [column.is_not(None)]
        parts += [column < before] if before else []
        parts += [column >= after] if after else []
        return and_(*parts)
    moment = (func.min if event == "first_order" else func.max)(orders.c.placed_at)
    parts = ([moment < before] if before else []) + ([moment >= after] if after else [])
    grouped = select(orders.c.customer_id).where(_past_orders(scope, None)) \
        .group_by(orders.c.customer_id).having(and_(*parts))
    return customers.c.id.in_(grouped)


def _bought(condition: t.Bought, scope: Scope) -> ColumnElement[bool]:
    filters = [_past_orders(scope, condition.within)]
    if condition.products:
        filters.append(folded(products.c.sku).in_([p.lower() for p in condition.products]))
    if condition.categories:
        filters.append(folded(products.c.category).in_([c.lower() for c in condition.categories]))
    grouped = (select(orders.c.customer_id)
               .select_from(order_items.join(orders, orders.c.id == order_items.c.order_id)
                            .join(products, products.c.id == order_items.c.product_id))
               .where(*filters).group_by(orders.c.customer_id))
    if condition.at_least > 1:
        grouped = grouped.having(func.sum(order_items.c.quantity) >= condition.at_least)
    return customers.c.id.in_(grouped)


def _field(condition: t.FieldMatch) -> ColumnElement[bool]:
    if condition.attribute:
        column = customers.c.attributes[condition.field].as_string()
    else:
        column = customers.c[_COLUMN_OF_FIELD.get(condition.field, condition.field)]
    if condition.field == "subscribed":
        return column.is_(true()) if condition.values[0] else column.is_(false())
    present = column.is_not(None)
    if condition.contains is not None:
        return and_(present, folded(column).contains(condition.contains.lower(), autoescape=True))
    return and_(present, folded(column).in_([str(v).lower() for v in condition.values]))


def _rfm(condition: t.Rfm, scope: Scope) -> ColumnElement[bool]:
    """Quintile scores: score = 1 + floor(5 * (rank - 1) / customers with orders); ties share."""
    per_customer = (select(orders.c.customer_id.label("customer_id"),
                           func.max(orders.c.placed_at).label("recency"),
                           func.count(orders.c.id).label("frequency"),
                           _cents(func.sum(orders.c.total)).label("monetary"))
                    .where(_past_orders(scope, None)).group_by(orders.c.customer_id).subquery())
    wanted = {name: getattr(condition, name) for name in ("recency", "frequency", "monetary")
              if getattr(condition, name) is not None}
    ranked = select(per_customer.c.customer_id, func.count().over().label("customers"),
                    *(func.rank().over(order_by=per_customer.c[name]).label(f"{name}_rank")
                      for name in wanted)).subquery()
    parts = []
    for name, scores in wanted.items():
        rank, size = ranked.c[f"{name}_rank"], ranked.c.customers
        parts.append(or_(*(and_((low - 1) * size <= 5 * (rank - 1), 5 * (rank - 1) < high * size)
                           for low, high in _runs(scores))))
    return customers.c.id.in_(select(ranked.c.customer_id).where(and_(*parts)))


def _runs(scores: frozenset[int]) -> list[tuple[int, int]]:
    """{1, 2, 4} -> [(1, 2), (4, 4)]: contiguous score ranges."""
    runs: list[tuple[int, int]] = []
    for score in sorted(scores):
        if runs and runs[-1][1] == score - 1:
            runs[-1] = (runs[-1][0], score)
        else:
            runs.append((score, score))
    return runs
