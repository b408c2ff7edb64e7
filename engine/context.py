"""The personalization context: what a template knows about each customer, built per batch.

A batch of customers costs a constant number of queries (customers, their order figures,
what they bought, their recent orders with items, their coupons), whatever its size.
Recommendations come from figures computed once per run: which products are bought together
and the best sellers overall and per category.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, and_, case, func, literal, select

from engine.campaigns import Campaign
from engine.coupons import Coupon, CouponBook
from engine.render import template_safe
from engine.schema import customers, order_items, orders, products
from engine.segments.compiler import Scope, predicate, tier_condition
from engine.settings import Shop
from engine.tokens import Signer

NEIGHBOURS_KEPT = 20
template_safe("shop")(Shop)
template_safe("coupon")(Coupon)
CENTS = Decimal("0.01")


@template_safe("customer")
@dataclass(frozen=True, slots=True)
class CustomerView:
    id: int
    customer_id: str
    email: str
    first_name: str
    last_name: str
    name: str
    greeting_name: str
    locale: str | None
    timezone: str | None
    country: str | None
    city: str | None
    birthday: date | None
    signed_up_at: datetime | None
    attributes: dict[str, Any]


@template_safe("stats")
@dataclass(frozen=True, slots=True)
class Stats:
    orders_count: int
    total_spent: Decimal
    average_order: Decimal
    first_order_at: datetime | None
    last_order_at: datetime | None
    days_since_last_order: int | None
    favourite_category: str | None
    tier: str | None


@template_safe("product")
@dataclass(frozen=True, slots=True)
class Product:
    sku: str
    name: str
    category: str | None
    price: Decimal
    url: str | None
    image_url: str | None


@template_safe("order item")
@dataclass(frozen=True, slots=True)
class Item:
    sku: str
    name: str
    category: str | None
    quantity: int
    unit_price: Decimal
    url: str | None
    image_url: str | None


@template_safe("order")
@dataclass(frozen=True, slots=True)
class Order:
    order_id: str
    placed_at: datetime
    total: Decimal
    currency: str
    items: tuple[Item, ...]


@template_safe("links")
@dataclass(frozen=True, slots=True)
class Links:
    unsubscribe: str
    view_online: str
    survey: str
    preferences: str


@template_safe("campaign")
@dataclass(frozen=True, slots=True)
class CampaignView:
    name: str
    subject: str
    preheader: str
    description: str

    def rendered(self, subject: str, preheader: str) -> CampaignView:
        return replace(self, subject=subject, preheader=preheader)


class Recommender:
    """Products bought together, and best sellers, from the history up to `now` (one pass)."""

    def __init__(self, connection: Connection, now: datetime) -> None:
        self.catalog = {row.id: Product(row.sku, row.name, row.category,
                                        Decimal(row.price).quantize(CENTS), row.url,
                                        row.image_url)
                        for row in connection.execute(select(products))}
        sold = (select(order_items.c.product_id, func.sum(order_items.c.quantity))
                .join(orders, orders.c.id == order_items.c.order_id)
                .where(orders.c.placed_at < now).group_by(order_items.c.product_id))
        ranked = sorted(connection.execute(sold), key=lambda row: (-row[1], row[0]))
        self.best = [product_id for product_id, _ in ranked if product_id in self.catalog]
        self.best_by_category: dict[str | None, list[int]] = defaultdict(list)
        for product_id in self.best:
            self.best_by_category[self.catalog[product_id].category].append(product_id)
        self.neighbours = self._bought_together(connection, now)

    @staticmethod
    def _bought_together(connection: Connection, now: datetime) -> dict[int, list[tuple]]:
        first, second = order_items.alias("first"), order_items.alias("second")
        pairs = (select(first.c.product_id, second.c.product_id,
                        func.count(func.distinct(first.c.order_id)))
                 .join(second, and_(second.c.order_id == first.c.order_id,
                                    second.c.product_id != first.c.product_id))
                 .join(orders, orders.c.id == first.c.order_id)
                 .where(orders.c.placed_at < now)
                 .group_by(first.c.product_id, second.c.product_id))
        together: dict[int, list[tuple[int, int]]] = defaultdict(list)
        for product_id, other_id, count in connection.execute(pairs):
            together[product_id].append((count, other_id))
        return {product_id: sorted(others, key=lambda pair: (-pair[0], pair[1]))[
            :NEIGHBOURS_KEPT] for product_id, others in together.items()}

    def recommend(self, owned: set[int], favourite: str | None, count: int) -> list[Product]:
        """Bought together with what they own, then their category's and overall best sellers."""
        if count == 0:
            return []
        scores: Counter[int] = Counter()
        for product_id in owned:
            for together, other_id in self.neighbours.get(product_id, ()):
                if other_id not in owned:
                    scores[other_id] += together
        chosen = [product_id for product_id, _ in
                  sorted(scores.items(), key=lambda item: (-item[1], item[0]))[:count]]
        favourites = self.best_by_category.get(favourite, []) if favourite else []
        for pool in (favourites, self.best):
            for product_id in pool:
                if len(chosen) == count:
                    break
                if product_id not in owned and product_id not in chosen:
                    chosen.append(product_id)
        return [self.catalog[product_id] for product_id in chosen if product_id in
                self.catalog]


class ContextBuilder:
    """Builds template contexts for batches of customers of one campaign run."""

    def __init__(self, connection: Connection, campaign: Campaign, shop: Shop, scope: Scope,
                 signer: Signer) -> None:
        self.connection = connection
        self.campaign = campaign
        self.shop = shop
        self.scope = scope
        self.now = scope.now
        self.signer = signer
        self.recommender = Recommender(connection, scope.now)
        self.coupons = CouponBook(campaign.name, campaign.coupon, signer) \
            if campaign.coupon else None
        self.campaign_view = CampaignView(campaign.name, campaign.subject, campaign.preheader,
                                          campaign.description)

    def build(self, customer_ids: Sequence[int]) -> list[dict[str, Any]]:
        """Contexts for these customers (engine ids), in the same order."""
        ids = list(customer_ids)
        people = {row.id: row for row in self.connection.execute(
            select(customers).where(customers.c.id.in_(ids)))}
        figures = self._figures(ids)
        bought = self._bought(ids)
        recent = self._recent_orders(ids)
        coupons = self.coupons.for_customers(self.connection, ids, self.now) \
            if self.coupons else {}
        contexts = []
        for customer_id in ids:
            person = people.get(customer_id)
            if person is None:
                continue
            owned = bought.get(customer_id, {})
            stats = self._stats(figures.get(customer_id), owned)
            contexts.append({
                "customer": _customer_view(person),
                "stats": stats,
                "orders": recent.get(customer_id, []),
                "recommendations": self.recommender.recommend(
                    set(owned), stats.favourite_category, self.campaign.recommendations),
                "coupon": coupons.get(customer_id),
                "links": self._links(customer_id),
                "campaign": self.campaign_view,
                "shop": self.shop,
            })
        return contexts

    def _figures(self, ids: list[int]) -> dict[int, tuple]:
        """Per customer: order count, spend, first and last order, loyalty tier (one query)."""
        totals = (select(orders.c.customer_id, func.count(orders.c.id).label("count"),
                         func.sum(orders.c.total).label("spent"),
                         func.min(orders.c.placed_at).label("first"),
                         func.max(orders.c.placed_at).label("last"))
                  .where(orders.c.customer_id.in_(ids), orders.c.placed_at < self.now)
                  .group_by(orders.c.customer_id).subquery())
        tiers = self.scope.tiers
        batch = replace(self.scope, only=ids)
        tier = case(*((predicate(tier_condition(tiers, each.name), batch), each.name)
                      for each in tiers), else_=None) if tiers else literal(None)
        statement = (select(customers.c.id, totals.c.count, totals.c.spent, totals.c.first,
                            totals.c.last, tier)
                     .select_from(customers.outerjoin(totals,
                                                      totals.c.customer_id == customers.c.id))
                     .where(customers.c.id.in_(ids)))
        return {row[0]: tuple(row[1:]) for row in self.connection.execute(statement)}

    def _bought(self, ids: list[int]) -> dict[int, dict[int, int]]:
        statement = (select(orders.c.customer_id, order_items.c.product_id,
                            func.sum(order_items.c.quantity))
                     .join(orders, orders.c.id == order_items.c.order_id)
                     .where(orders.c.customer_id.in_(ids), orders.c.placed_at < self.now)
                     .group_by(orders.c.customer_id, order_items.c.product_id))
        bought: dict[int, dict[int, int]] = defaultdict(dict)
        for customer_id, product_id, quantity in self.connection.execute(statement):
            bought[customer_id][product_id] = int(quantity)
        return bought

    def _recent_orders(self, ids: list[int]) -> dict[int, list[Order]]:
        count = self.campaign.recent_orders
        if count == 0:
            return {}
        rank = func.row_number().over(partition_by=orders.c.customer_id,
                                      order_by=(orders.c.placed_at.desc(), orders.c.id.desc()))
        latest = (select(orders.c.id, rank.label("rank"))
                  .where(orders.c.customer_id.in_(ids), orders.c.placed_at < self.now)
                  .subquery())
        statement = (select(orders.c.customer_id, orders.c.id, orders.c.external_id,
                            orders.c.placed_at, orders.c.total, orders.c.currency,
                            order_items.c.product_id, order_items.c.quantity,
                            order_items.c.unit_price)
                     .join(latest, and_(latest.c.id == orders.c.id, latest.c.rank <= count))
                     .join(order_items, order_items.c.order_id == orders.c.id)
                     .order_by(orders.c.customer_id, orders.c.placed_at.desc(),
                               orders.c.id.desc(), order_items.c.id))
        grouped: dict[int, dict[int, tuple[Any, list[Item]]]] = defaultdict(dict)
        for row in self.connection.execute(statement):
            product = self.recommender.catalog[row.product_id]
            item = Item(product.sku, product.name, product.category, row.quantity,
                        Decimal(row.unit_price).quantize(CENTS), product.url, product.image_url)
            grouped[row.customer_id].setdefault(row.id, (row, []))[1].append(item)
        return {customer_id: [Order(row.external_id, row.placed_at,
                                    Decimal(row.total).quantize(CENTS), row.currency,
                                    tuple(items)) for row, items in placed.values()]
                for customer_id, placed in grouped.items()}

    def _stats(self, figures: tuple | None, owned: dict[int, int]) -> Stats:
        count, spent, first, last, tier = figures or (None, None, None, None, None)
        if not count:
            return Stats(0, Decimal("0.00"), Decimal("0.00"), None, None, None, None, tier)
        spent = Decimal(str(spent)).quantize(CENTS)
        return Stats(int(count), spent, (spent / count).quantize(CENTS), first, last,
                     (self.now - last).days, self._favourite(owned), tier)

    def _favourite(self, owned: dict[int, int]) -> str | None:
        totals: Counter[str] = Counter()
        for product_id, quantity in owned.items():
            category = self.recommender.catalog[product_id].category
            if category:
                totals[category] += quantity
        return min(totals, key=lambda name: (-totals[name], name)) if totals else None

    def _links(self, customer_id: int) -> Links:
        base = self.shop.base_url.rstrip("/")
        name = self.campaign.name
        return Links(
            unsubscribe=f"{base}/unsubscribe/{self.signer.token('unsubscribe', name, customer_id)}",
            view_online=f"{base}/view/{self.signer.token('view', name, customer_id)}",
            survey=f"{base}/survey/{self.signer.token('survey', name, customer_id)}",
            preferences=f"{base}/preferences/"
                        f"{self.signer.token('preferences', name, customer_id)}")


def _customer_view(row: Any) -> CustomerView:
    first, last = (row.first_name or "").strip(), (row.last_name or "").strip()
    return CustomerView(
        id=row.id, customer_id=row.external_id, email=row.email, first_name=first,
        last_name=last, name=" ".join(part for part in (first, last) if part),
        greeting_name=first or last or "there", locale=row.locale, timezone=row.timezone,
        country=row.country, city=row.city, birthday=row.birthday,
        signed_up_at=row.signed_up_at, attributes=dict(row.attributes or {}))
