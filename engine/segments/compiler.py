"""The segment tree compiled to ONE SQLAlchemy Core SELECT of customer ids, run in the database.

Conditions on a customer's orders (counts, spend, averages, first/last order, tiers) are merged
into a single GROUP BY over `orders` wherever they meet in `all`/`any`/`not`, so a segment reads
the orders table once, as a hand-written query would. Every predicate is two-valued (never SQL
NULL), so `not` means exactly "not in the segment". Amounts are compared in whole cents, so
SQLite, PostgreSQL and MariaDB give identical results. Only orders placed before `now` count.
Conditions on emails and survey answers are compiled in `feedback`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import reduce

from sqlalchemy import ColumnElement, Select, and_, case, false, func, literal, not_, or_, select
from sqlalchemy import true as sql_true
from sqlalchemy.sql.elements import True_

from engine.schema import customers, order_items, orders, products
from engine.segments import tree as t
from engine.segments.feedback import engagement, survey_answer
from engine.segments.sqlfunctions import exact, folded, like_pattern
from engine.settings import Tier

_COLUMN_OF_FIELD = {"customer_id": "external_id"}


@dataclass(frozen=True)
class Scope:
    """What a condition is evaluated against: the time, other segments and the tiers."""

    now: datetime
    segments: Mapping[str, t.Segment]
    tiers: Sequence[Tier] = ()
    # When set, order aggregates read only these customers' orders: right for a predicate
    # evaluated on these customers alone, and far cheaper than reading every order.
    only: Sequence[int] | None = None


@dataclass(frozen=True)
class _Group:
    """The rows a group reads: orders (or order lines) in [start, now) passing `rows`."""

    start: datetime | None
    rows: ColumnElement[bool] | None


Having = Callable[[_Group], ColumnElement[bool]]


@dataclass(frozen=True)
class _Grouped:
    """Customers picked by aggregates over their rows of `source` (orders or order lines):
    those with rows for whom `having` holds, plus, if `outside`, every customer without rows.
    Each leaf is false for a customer without rows unless it is `outside`, which is what lets
    `all`, `any` and `not` merge leaves of one source into a single GROUP BY."""

    source: str  # "orders" or "lines"
    start: datetime | None
    having: Having
    outside: bool
    rows: ColumnElement[bool] | None = None  # rows that can matter at all
    exists: bool = False  # `having` is true for everyone with `rows` (when the group is ours)


@dataclass(frozen=True)
class _Members:
    """Customers whose id a SELECT returns."""

    query: Select


def segment_query(condition: t.Condition, scope: Scope) -> Select:
    """SELECT the id of every customer the condition picks."""
    node = _node(condition, scope)
    if isinstance(node, _Grouped) and not node.outside:
        return _grouped_query(node, scope, negate=False)
    if isinstance(node, _Members):
        return node.query
    return select(customers.c.id).where(_sql(node, scope))


def predicate(condition: t.Condition, scope: Scope) -> ColumnElement[bool]:
    """A boolean SQL expression over `customers` that is true exactly for members."""
    return _sql(_node(condition, scope), scope)


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


# -- the tree, with order aggregates kept mergeable -----------------------------------------
def _node(condition: t.Condition, scope: Scope) -> _Grouped | ColumnElement[bool]:
    match condition:
        case t.All(items) | t.AnyOf(items):
            return _combine(condition, [_node(item, scope) for item in items], scope)
        case t.Not(item):
            node = _node(item, scope)
            if isinstance(node, _Grouped):
                return _Grouped(node.source, node.start, lambda g, h=node.having: not_(h(g)),
                                not node.outside, node.rows)
            return not_(_sql(node, scope))
        case t.SegmentRef(name):
            return _node(scope.segments[name].condition, scope)
        case t.TierIs(names):
            return _node(t.AnyOf(tuple(tier_condition(scope.tiers, n) for n in names)), scope)
        case t.Engagement():
            return engagement(condition, scope.now)
        case t.SurveyAnswer():
            return survey_answer(condition, scope.now)
        case t.OrderCount(bounds, within):
            return _counted(bounds, _start(within, scope))
        case t.Spent(bounds, within):
            return _spent(bounds, _start(within, scope))
        case t.AverageOrder(bounds, within):
            return _average(bounds, _start(within, scope))
        case t.When("signed_up", before, after):
            return _signed_up(before and before.resolve(scope.now),
                              after and after.resolve(scope.now))
        case t.When(event, before, after):
            return _first_last(event, before and before.resolve(scope.now),
                               after and after.resolve(scope.now))
        case t.Bought():
            return _bought(condition, scope)
        case t.FieldMatch():
            return _field(condition)
        case t.Rfm():
            return _rfm(condition, scope)
    raise TypeError(f"unknown condition {condition!r}")


def _combine(condition: t.All | t.AnyOf, nodes: list, scope: Scope):
    """Merge the aggregates of one source among `nodes` into one group; join the rest in SQL."""
    both = isinstance(condition, t.All)
    parts: list = []
    for source in ("orders", "lines"):
        grouped = [n for n in nodes if isinstance(n, _Grouped) and n.source == source]
        if grouped:
            parts.append(reduce(lambda a, b: _merge(a, b, both), grouped))
    parts += [n for n in nodes if not isinstance(n, _Grouped)]
    if len(parts) == 1:
        return parts[0]
    return (and_ if both else or_)(*(_sql(part, scope) for part in parts))


def _merge(a: _Grouped, b: _Grouped, both: bool) -> _Grouped:
    start = None if a.start is None or b.start is None else min(a.start, b.start)
    rows = None if a.rows is None or b.rows is None else or_(a.rows, b.rows)
    joined = and_ if both else or_
    exists = not both and a.exists and b.exists  # "has a row of a or of b": any row will do

    def having(group: _Group) -> ColumnElement[bool]:
        if exists and group.rows is rows:
            return sql_true()
        return joined(a.having(group), b.having(group))
    return _Grouped(a.source, start, having,
                    (a.outside and b.outside) if both else (a.outside or b.outside), rows, exists)


def _sql(node, scope: Scope) -> ColumnElement[bool]:
    if isinstance(node, _Members):
        return customers.c.id.in_(node.query)
    if not isinstance(node, _Grouped):
        return node
    if node.outside:
        return customers.c.id.not_in(_grouped_query(node, scope, negate=True))
    return customers.c.id.in_(_grouped_query(node, scope, negate=False))


def _grouped_query(node: _Grouped, scope: Scope, negate: bool) -> Select:
    """Customer ids of the group for whom `having` holds (or, negated, fails)."""
    group = _Group(node.start, node.rows)
    where = [orders.c.placed_at < scope.now]
    if scope.only is not None:
        where.append(orders.c.customer_id.in_(scope.only))
    if node.start is not None:
        where.append(orders.c.placed_at >= node.start)
    if node.rows is not None:
        where.append(node.rows)
    query = select(orders.c.customer_id).where(*where).group_by(orders.c.customer_id)
    if node.source == "lines":
        query = query.select_from(_LINES)
    having = not_(node.having(group)) if negate else node.having(group)
    return query if isinstance(having, True_) else query.having(having)


def _start(within: t.Span | None, scope: Scope) -> datetime | None:
    return None if within is None else within.before(scope.now)


# -- order aggregates -------------------------------------------------------------------
def _in_window(value, own: datetime | None, group: _Group, otherwise=None):
    """`value` for orders in the leaf's own window, when the group reads a wider one."""
    if own == group.start:
        return value
    return case((orders.c.placed_at >= own, value), else_=otherwise)


def _bounded(value, low: Decimal | None, high: Decimal | None) -> ColumnElement[bool]:
    parts = ([value >= literal(int(low))] if low is not None else []) + \
        ([value <= literal(int(high))] if high is not None else [])
    return and_(*parts)


def _cents(own: datetime | None, group: _Group) -> ColumnElement:
    return func.round(func.sum(_in_window(orders.c.total, own, group, 0)) * 100)


def _count(own: datetime | None, group: _Group) -> ColumnElement:
    """Orders in the window; count(*) where possible, so an index alone can answer."""
    return func.count() if own == group.start else func.count(_in_window(literal(1), own, group))


def _counted(bounds: t.Bounds, own: datetime | None) -> _Grouped:
    return _Grouped("orders", own, lambda group: _bounded(_count(own, group), bounds.at_least,
                                                          bounds.at_most),
                    bounds.admits(Decimal(0)))


def _spent(bounds: t.Bounds, own: datetime | None) -> _Grouped:
    low, high = (None if b is None else b * 100 for b in (bounds.at_least, bounds.at_most))
    return _Grouped("orders", own, lambda group: _bounded(_cents(own, group), low, high),
                    bounds.admits(Decimal(0)))


def _average(bounds: t.Bounds, own: datetime | None) -> _Grouped:
    """Mean order total within bounds, exactly: cents sum against bound x count."""
    def having(group: _Group) -> ColumnElement[bool]:
        total, count = _cents(own, group), _count(own, group)
        parts = [count > 0]
        if bounds.at_least is not None:
            parts.append(total >= literal(int(bounds.at_least * 100)) * count)
        if bounds.at_most is not None:
            parts.append(total <= literal(int(bounds.at_most * 100)) * count)
        return and_(*parts)
    return _Grouped("orders", own, having, False)


def _first_last(event: str, before: datetime | None, after: datetime | None) -> _Grouped:
    moment = (func.min if event == "first_order" else func.max)(orders.c.placed_at)
    parts = ([moment < before] if before else []) + ([moment >= after] if after else [])
    return _Grouped("orders", None, lambda _group: and_(*parts), False)


# -- other conditions -------------------------------------------------------------------
def _signed_up(before: datetime | None, after: datetime | None) -> ColumnElement[bool]:
    column = customers.c.signed_up_at
    parts = [column.is_not(None)]
    parts += [column < before] if before else []
    parts += [column >= after] if after else []
    return and_(*parts)


_LINES = order_items.join(orders, orders.c.id == order_items.c.order_id)


def _bought(condition: t.Bought, scope: Scope) -> _Grouped:
    """At least `at_least` items matching the filters, in orders of the window."""
    wanted = []
    if condition.products:
        wanted.append(folded(products.c.sku).in_([p.lower() for p in condition.products]))
    if condition.categories:
        wanted.append(folded(products.c.category).in_([c.lower() for c in condition.categories]))
    filters = [order_items.c.product_id.in_(select(products.c.id).where(*wanted))]
    own = _start(condition.within, scope)
    if own is not None:
        filters.append(orders.c.placed_at >= own)
    matching = and_(*filters)

    def having(group: _Group) -> ColumnElement[bool]:
        if group.rows is matching:  # the group reads only this condition's lines
            return sql_true() if condition.at_least == 1 else \
                func.sum(order_items.c.quantity) >= condition.at_least
        return func.sum(case((matching, order_items.c.quantity), else_=0)) >= condition.at_least
    return _Grouped("lines", own, having, False, rows=matching, exists=condition.at_least == 1)


def _field(condition: t.FieldMatch) -> ColumnElement[bool]:
    if condition.attribute:
        column = customers.c.attributes[condition.field].as_string()
    else:
        column = customers.c[_COLUMN_OF_FIELD.get(condition.field, condition.field)]
    if condition.field == "subscribed":
        return column.is_(sql_true()) if condition.values[0] else column.is_(false())
    present = column.is_not(None)
    if condition.contains is not None:
        return and_(present, folded(column).like(folded(literal(like_pattern(condition.contains))),
                                                 escape="/"))
    return and_(present, exact(column).in_([str(v) for v in condition.values]))


def _rfm(condition: t.Rfm, scope: Scope) -> _Members:
    """Quintile scores: score = 1 + floor(5 * (rank - 1) / customers with orders); ties share."""
    per_customer = (select(orders.c.customer_id.label("customer_id"),
                           func.max(orders.c.placed_at).label("recency"),
                           func.count().label("frequency"),
                           func.round(func.sum(orders.c.total) * 100).label("monetary"))
                    .where(orders.c.placed_at < scope.now)
                    .group_by(orders.c.customer_id).subquery())
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
    return _Members(select(ranked.c.customer_id).where(and_(*parts)))


def _runs(scores: frozenset[int]) -> list[tuple[int, int]]:
    """{1, 2, 4} -> [(1, 2), (4, 4)]: contiguous score ranges."""
    runs: list[tuple[int, int]] = []
    for score in sorted(scores):
        if runs and runs[-1][1] == score - 1:
            runs[-1] = (runs[-1][0], score)
        else:
            runs.append((score, score))
    return runs
