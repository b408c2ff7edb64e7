"""Segment queries against an independent Python oracle, on SQLite, PostgreSQL and MariaDB.

1. A hand-written history full of edge cases: SQL == oracle == the ids worked out by hand.
2. Hypothesis: random small histories and random condition trees, SQL == oracle.
3. Fuzzing the parser: any segments.yaml either loads or fails with located problems only.
"""

from __future__ import annotations

import io
import re
import tempfile
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML
from sqlalchemy import Engine, case, delete, select
from sqlalchemy.engine import make_url

from engine import db
from engine.errors import WorkspaceError
from engine.schema import (
    customers,
    deliveries,
    events,
    order_items,
    orders,
    products,
    runs,
    survey_responses,
)
from engine.segments import tree as t
from engine.segments.compiler import Scope, predicate, segment_query
from engine.segments.definitions import load_segments
from engine.segments.parser import SegmentError
from engine.settings import Tier
from engine.timespec import Moment, Span, parse_span
from tests.conftest import BACKENDS, SERVER_URLS, _empty_server
from tests.segment_oracle import (
    Customer,
    Delivery,
    Event,
    History,
    Line,
    Oracle,
    Order,
    Product,
    Response,
    span_before,
)

REPO = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 3, 31, 12, 0, 0)
D = Decimal


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def nodes(condition: t.Condition) -> Iterator[t.Condition]:
    """The condition and every condition inside it."""
    yield condition
    inside = (condition.item,) if isinstance(condition, t.Not) else \
        condition.items if isinstance(condition, t.All | t.AnyOf) else ()
    for item in inside:
        yield from nodes(item)


# -- the hand-written history --------------------------------------------------------------
PRODUCTS = (
    Product("SEED-01", "Garden"), Product("SEED-02", "Garden"), Product("HOSE-10", "garden"),
    Product("PAN-01", "Kitchen"), Product("KNIFE-02", "Kitchen"), Product("MUG-03", "KITCHEN"),
    Product("BOOK-01", "Books"), Product("BOOK-02", "Books"), Product("GIFT-99", None),
)
CUSTOMERS = (
    Customer("c01", "zoe@example.com", "Zoë", "Müller", "de_DE", "Europe/Berlin", "DE", "Berlin",
             None, at("2025-01-10 08:00"), True, {"source": "instagram", "ad-source": "Ünïcode"}),
    Customer("c02", "anna@example.pl", "Anna", "Kowalska", "pl_PL", "Europe/Warsaw", "PL", "Łódź",
             None, at("2025-06-15 00:00"), True, {"source": "newsletter"}),
    Customer("c03", "lars@example.dk", "Lars", "Ørsted", "da", None, "DK", "København",
             None, at("2024-05-05 10:00"), False, {}),
    Customer("c04", "elodie@example.fr", "Élodie", "Durand", "fr_FR", "Europe/Paris", "FR",
             "Paris", date(1990, 2, 3), at("2024-12-01 10:00"), True, {"school": "ÉCOLE"}),
    Customer("c05", "emile@example.fr", "Émile", "Petit", "fr", None, "FR", "paris",
             None, at("2025-11-11 10:00"), True, {"school": "école"}),
    Customer("c06", "ecole@example.fr", "Ecole", "Martin", None, None, "FR", "PARIS",
             None, NOW, True, {"school": "Ecole"}),
    Customer("c07", "nobody@example.com", "", "", None, None, None, None, None, None, False, {}),
    Customer("c08", "jan@example.pl", "Jan", "Nowak", "pl", None, "PL", "Łódź",
             None, at("2026-03-01 00:00"), True, {"source": ""}),
    Customer("c09", "jo@gmail.com", "JoeAnn", "Smith", "en_GB", None, "GB", "London",
             None, at("2023-02-02 00:00"), True, {"source": "instagram"}),
    Customer("c10", "joann@example.com", "Jo_Ann", "100%", "en", None, "GB", "london",
             None, at("2023-02-02 00:00"), True, {"source": "Instagram"}),
    Customer("c11", "bao@example.vn", "Bao", "Nguyễn", "vi_VN", "Asia/Ho_Chi_Minh", "VN",
             "Hà Nội", None, at("2022-07-07 00:00"), True, {"source": "newsletter"}),
    Customer("c12", "weiss@GMAIL.com", "Grete", "Weiß", "de_AT", "Europe/Vienna", "AT", "Wien",
             None, None, True, {"path": "C:\\Users\\Grete"}),
)


def _order(number: int, customer: str, placed: str, total: str,
           *lines: tuple[str, int]) -> Order:
    return Order(f"o{number:02}", customer, at(placed), D(total),
                 tuple(Line(sku, quantity) for sku, quantity in lines))


ORDERS = (
    _order(1, "c01", "2025-06-01 10:00", "120.00", ("SEED-01", 2), ("HOSE-10", 1)),
    _order(2, "c01", "2025-12-31 12:00:00", "30.00", ("SEED-02", 1)),  # = now - 90 days
    _order(3, "c01", "2026-03-01 09:00", "50.00", ("PAN-01", 1)),
    _order(4, "c02", "2026-03-31 12:00:00", "999.00", ("BOOK-01", 5)),  # = now: never counts
    _order(5, "c02", "2025-12-31 11:59:59", "40.00", ("BOOK-02", 1)),  # 1 s before 90 days
    _order(6, "c03", "2026-02-28 12:00:00", "0.10", ("MUG-03", 1)),  # = now - 1 month
    _order(7, "c03", "2026-03-15 08:00", "0.20", ("MUG-03", 1)),
    _order(8, "c04", "2025-03-31 12:00:00", "300.00", ("KNIFE-02", 1), ("PAN-01", 2)),  # 1 year
    _order(9, "c04", "2025-03-31 11:59:59", "700.00", ("BOOK-01", 1)),
    _order(10, "c05", "2026-01-15 10:00", "100.00", ("SEED-01", 1)),
    _order(11, "c05", "2026-02-15 10:00", "100.00", ("SEED-02", 2)),
    _order(12, "c05", "2026-03-30 10:00", "100.00", ("HOSE-10", 1)),
    _order(13, "c06", "2026-03-31 11:59:59", "25.50", ("GIFT-99", 1)),  # 1 s before now
    _order(14, "c09", "2026-03-10 10:00", "60.00", ("BOOK-02", 1)),
    _order(15, "c09", "2026-03-20 10:00", "40.00", ("BOOK-01", 1)),
    _order(16, "c10", "2026-03-05 10:00", "50.00", ("KNIFE-02", 1)),
    _order(17, "c10", "2026-03-20 10:00", "50.00", ("BOOK-02", 3)),  # ties c09 in R, F and M
    _order(18, "c11", "2026-02-01 10:00", "450.00", ("SEED-01", 3), ("SEED-02", 2), ("PAN-01", 1),
           ("BOOK-01", 1)),
    _order(19, "c11", "2025-10-01 10:00", "80.00", ("MUG-03", 2)),
    _order(20, "c11", "2024-11-01 10:00", "20.00", ("HOSE-10", 1)),
    _order(21, "c12", "2026-03-31 12:00:01", "10.00", ("SEED-01", 1)),  # after now
    _order(22, "c12", "2023-01-01 10:00", "10.00", ("SEED-01", 1)),
    _order(23, "c12", "2023-06-01 10:00", "15.00", ("BOOK-02", 1)),
    _order(24, "c08", "2026-04-01 09:00", "500.00", ("PAN-01", 1)),  # c08's only order: future
    _order(25, "c06", "2026-05-01 09:00", "10.00", ("GIFT-99", 1)),  # future
)
# The feedback loop: now - 30 days is 2026-03-01 12:00, now - 90 days 2025-12-31 12:00.
DELIVERIES = (
    Delivery("c01", "spring", "sent", at("2026-03-01 10:00")),              # 0
    Delivery("c01", "winback", "sent", NOW),                                # 1: = now, never
    Delivery("c02", "spring", "sent", at("2026-03-01 12:00:00")),           # 2: = now - 30 days
    Delivery("c02", "winback", "failed"),                                   # 3
    Delivery("c03", "Spring", "sent", at("2026-02-01 09:00")),              # 4: another name
    Delivery("c04", "winback", "sent", at("2025-12-31 11:59:59")),          # 5
    Delivery("c04", "spring", "sent", at("2026-01-15 09:00")),              # 6
    Delivery("c05", "spring", "sent", at("2026-03-30 09:00")),              # 7
    Delivery("c05", "winback", "sent", at("2026-03-30 10:00")),             # 8
    Delivery("c05", "thanks", "unknown"),                                   # 9
    Delivery("c09", "spring", "sent", at("2026-04-01 09:00")),              # 10: future
    Delivery("c06", "spring", "sent", at("2026-03-20 09:00")),              # 11
)
EVENTS = (
    Event("c01", "spring", "open", at("2026-03-02 08:00"), 0),
    Event("c01", "spring", "open", at("2026-03-03 08:00"), 0),  # the same email again
    Event("c01", "spring", "click", at("2026-03-02 08:01"), 0,
          "https://greenshop.example/garden?utm_source=news"),
    Event("c02", "spring", "open", at("2026-03-01 12:00:00"), 2),
    Event("c02", "spring", "click", at("2026-03-01 12:00:00"), 2,
          "https://greenshop.example/Sale_50%"),
    Event("c04", "spring", "open", at("2026-01-16 10:00"), 6),
    Event("c04", "winback", "open", at("2026-01-01 10:00"), 5),
    Event("c05", "spring", "open", at("2026-03-30 11:00"), 7),
    Event("c05", "winback", "open", NOW, 8),  # = now: never counts
    Event("c05", "winback", "click", at("2026-03-30 11:00"), 8, "https://greenshop.example/GARDEN"),
    Event("c06", "spring", "unsubscribe", at("2026-03-21 10:00"), 11),
    Event("c07", "spring", "open", at("2026-03-21 10:00")),  # no email: does not count
    Event(None, "spring", "open", at("2026-03-21 10:00"), 0),  # no customer
    Event("c12", "spring", "click", at("2026-03-21 10:00"), 7, "https://greenshop.example/salE"),
)
RESPONSES = (
    Response("c01", "spring", {"recommend": 10, "found_us": "A friend", "comment": "Lovely"},
             at("2026-03-05 10:00")),
    Response("c02", "spring", {"recommend": 6, "found_us": "Search engine"},
             at("2026-03-10 10:00")),
    Response("c03", "winback", {"recommend": 9}, NOW),  # = now: never counts
    Response("c04", "spring", {"recommend": "10"}, at("2026-03-02 10:00")),  # text, not a number
    Response("c04", "winback", {"recommend": 0, "found_us": "Other"}, at("2025-06-01 10:00")),
    Response("c05", "spring", {"recommend": 7.5, "found_us": 10}, at("2026-03-15 10:00")),
    Response("c06", "spring", {"recommend": True, "found_us": "a friend"}, at("2026-03-15 10:00")),
    Response("c09", "spring", {"recommend": 3_000_000_000, "comment": "Über uns"},
             at("2026-03-15 10:00")),
    Response("c10", "spring", {"recommend": -1, "comment": None}, at("2026-03-15 10:00")),
    Response("c11", "spring", {}, at("2026-03-15 10:00")),
)
HAND = History(CUSTOMERS, PRODUCTS, ORDERS, DELIVERIES, EVENTS, RESPONSES)
HAND_TIERS = (Tier("gold", spent=D(500), within=Span(1, "years")), Tier("silver", spent=D(300)),
              Tier("bronze", orders=2, within=Span(90, "days")))
TIER_NAMES = tuple(tier.name for tier in HAND_TIERS)

# (segment name, condition in flow style, the members worked out by hand or None)
CASES: list[tuple[str, str, set[str] | None]] = [
    ("three_orders", "orders: {at_least: 3}", {"c01", "c05", "c11"}),
    ("no_orders", "orders: {exactly: 0}", {"c07", "c08"}),
    ("at_most_one", "orders: {at_most: 1}", {"c02", "c06", "c07", "c08"}),
    ("two_in_90", "orders: {at_least: 2, within: 90 days}", {"c01", "c03", "c05", "c09", "c10"}),
    ("one_in_month", "orders: {exactly: 1, within: 1 month}", {"c01", "c05", "c06"}),
    ("zero_in_week", "orders: {at_most: 0, within: 1 week}", None),
    ("small_spenders", "spent: {at_most: 0.30}", {"c03", "c07", "c08"}),
    ("exactly_030", "spent: {exactly: 0.3}", {"c03"}),
    ("at_least_030", "spent: {at_least: 0.30}", None),
    ("spent_300_year", "spent: {at_least: 300, at_most: 300, within: 1 year}", {"c04", "c05"}),
    ("spent_6_months", "spent: {at_least: 100, within: 6 months}", None),
    ("avg_small", "average_order: {at_most: 0.15}", {"c03"}),
    ("avg_100", "average_order: {exactly: 100}", {"c05"}),
    ("avg_12w", "average_order: {at_least: 100, within: 12 weeks}", {"c05", "c11"}),
    ("avg_zero", "average_order: {at_least: 0}", None),
    ("lapsed", "last_order: {before: 90 days ago}", {"c02", "c04", "c12"}),
    ("new_this_year", "first_order: {after: 2026-01-01}", {"c03", "c05", "c06", "c09", "c10"}),
    ("last_second", "last_order: {after: '2026-03-31 11:59:59'}", {"c06"}),
    ("last_range", "last_order: {before: 1 month ago, after: 1 year ago}", {"c02", "c04", "c11"}),
    ("first_old", "first_order: {before: 2 years ago}", None),
    ("signed_before", "signed_up: {before: 2025-06-15}",
     {"c01", "c03", "c04", "c09", "c10", "c11"}),
    ("signed_after", "signed_up: {after: 2025-06-15}", {"c02", "c05", "c06", "c08"}),
    ("not_signed_after", "not: {signed_up: {after: 2025-06-15}}",
     {"c01", "c03", "c04", "c07", "c09", "c10", "c11", "c12"}),
    ("signed_window", "signed_up: {after: 6 months ago, before: 30 days ago}", None),
    ("seed01", "bought: {product: seed-01}", {"c01", "c05", "c11", "c12"}),
    ("seed_collectors", "bought: {product: [SEED-01, SEED-02], at_least: 3}",
     {"c01", "c05", "c11"}),
    ("kitchen", "bought: {category: kitchen}", {"c01", "c03", "c04", "c10", "c11"}),
    ("kitchen_month", "bought: {category: Kitchen, within: 1 month}", {"c01", "c03", "c10"}),
    ("pan_or_book_kitchen", "bought: {product: [PAN-01, BOOK-01], category: Kitchen}",
     {"c01", "c04", "c11"}),
    ("books_3", "bought: {category: BOOKS, at_least: 3}", {"c10"}),
    ("garden_or_gift_2", "bought: {category: [garden, Books], at_least: 2, within: 1 year}", None),
    ("garden_90_or_lodz", "any: [{bought: {category: Garden, within: 90 days}}, "
                          "{customer: {city: Łódź}}]", {"c01", "c02", "c05", "c08", "c11"}),
    ("paris_exact", "customer: {city: Paris}", {"c04"}),
    ("paris_variants", "customer: {city: [paris, PARIS]}", {"c05", "c06"}),
    ("paris_fr", "customer: {city: Paris, country: fr}", {"c04"}),
    ("ecole_contains", "customer: {school: {contains: ÉCOLE}}", {"c04", "c05"}),
    ("ecole_exact", "customer: {school: école}", {"c05"}),
    ("zoe", "customer: {first_name: {contains: ZOË}}", {"c01"}),
    ("orsted", "customer: {last_name: {contains: ØRS}}", {"c03"}),
    ("nguyen", "customer: {last_name: Nguyễn}", {"c11"}),
    ("underscore", "customer: {first_name: {contains: o_a}}", {"c10"}),
    ("percent", "customer: {last_name: {contains: 0%}}", {"c10"}),
    ("gmail", "customer: {email: {contains: '@gmail.'}}", {"c09", "c12"}),
    ("by_id", "customer: {customer_id: c05}", {"c05"}),
    ("by_id_upper", "customer: {customer_id: C05}", set()),
    ("de_locale", "customer: {locale: de-de}", {"c01"}),
    ("timezone", "customer: {timezone: [Europe/Paris, Europe/Vienna]}", {"c04", "c12"}),
    ("slash", "customer: {timezone: {contains: E/B}}", {"c01"}),
    ("backslash", "customer: {path: {contains: '\\US'}}", {"c12"}),
    ("lodz", "customer: {city: Łódź}", {"c02", "c08"}),
    ("unsubscribed", "customer: {subscribed: false}", {"c03", "c07"}),
    ("subscribed", "customer: {subscribed: true}", None),
    ("instagram", "customer: {source: instagram}", {"c01", "c09"}),
    ("insta_contains", "customer: {source: {contains: INSTA}}", {"c01", "c09", "c10"}),
    ("not_source_a", "not: {customer: {source: {contains: a}}}",
     {"c02", "c03", "c04", "c05", "c06", "c07", "c08", "c11", "c12"}),
    ("ad_source", "customer: {ad-source: {contains: NÏC}}", {"c01"}),
    ("unknown_attribute", "customer: {favourite: tea}", set()),
    ("rfm_recent", "rfm: {recency: [4, 5]}", {"c05", "c06", "c09", "c10"}),
    ("rfm_freq4", "rfm: {frequency: 4}", {"c01", "c05", "c11"}),
    ("rfm_gap", "rfm: {frequency: [3, 5]}", set()),
    ("rfm_ends", "rfm: {recency: [1, 5]}", {"c04", "c05", "c06", "c12"}),
    ("rfm_tie", "rfm: {monetary: 3}", {"c09", "c10"}),
    ("rfm_money_135", "rfm: {monetary: [1, 3, 5]}", {"c03", "c12", "c09", "c10", "c11", "c04"}),
    ("champions", "rfm: {recency: [4, 5], frequency: [4, 5], monetary: [4, 5]}", {"c05"}),
    ("gold", "tier: gold", {"c11"}),
    ("silver", "tier: silver", {"c04", "c05"}),
    ("bronze_or_gold", "tier: [bronze, gold]", {"c01", "c03", "c09", "c10", "c11"}),
    ("no_tier", "not: {tier: [gold, silver, bronze]}", None),
    ("big_spenders", "spent: {at_least: 300}", {"c04", "c05", "c11"}),
    ("active_vips", "all: [{segment: big_spenders}, {not: {segment: lapsed}}]", {"c05", "c11"}),
    ("chain", "any: [{segment: active_vips}, {segment: no_orders}]",
     {"c05", "c07", "c08", "c11"}),
    ("never_ordered", "not: {orders: {at_least: 1}}", {"c07", "c08"}),
    ("nested", "all: [{any: [{tier: gold}, {customer: {country: fr}}]}, "
               "{not: {all: [{orders: {at_least: 3}}, {bought: {category: garden}}]}}]",
     {"c04", "c06"}),
    ("windows_mixed", "any: [{orders: {at_most: 0, within: 90 days}}, "
                      "{spent: {at_least: 500}}, {average_order: {at_most: 40, within: 1 month}}]",
     None),
    ("windows_all", "all: [{orders: {at_least: 1, within: 1 year}}, "
                    "{not: {spent: {at_least: 100, within: 90 days}}}, "
                    "{last_order: {after: 2 years ago}}]", None),
    ("not_any_aggregates", "not: {any: [{average_order: {at_least: 100}}, "
                           "{first_order: {before: 1 year ago}}]}", None),
    ("double_not", "not: {not: {spent: {at_most: 50, within: 6 months}}}", None),
    ("got_mail", "received: {at_least: 1}", {"c01", "c02", "c03", "c04", "c05", "c06"}),
    ("spring_30", "received: {campaign: spring, within: 30 days}", {"c02", "c05", "c06"}),
    ("no_spring", "received: {campaign: spring, exactly: 0}",
     {"c03", "c07", "c08", "c09", "c10", "c11", "c12"}),
    ("two_mails", "received: {at_least: 2}", {"c04", "c05"}),
    ("one_in_90", "received: {at_most: 1, within: 90 days}",
     {"c01", "c02", "c03", "c04", "c06", "c07", "c08", "c09", "c10", "c11", "c12"}),
    ("opened_any", "opened: {campaign: [spring, winback]}", {"c01", "c02", "c04", "c05"}),
    ("opened_twice", "opened: {at_least: 2}", {"c04"}),
    ("opened_recent", "opened: {within: 30 days}", {"c01", "c02", "c05"}),
    ("clicked_garden", "clicked: {url: /GARDEN}", {"c01", "c05"}),
    ("clicked_sale", "clicked: {url: sale_50%, campaign: spring}", {"c02"}),
    ("no_clicks", "clicked: {exactly: 0}",
     {"c03", "c04", "c06", "c07", "c08", "c09", "c10", "c11"}),
    ("detractors", "survey: {question: recommend, at_most: 6}", {"c02", "c04", "c10"}),
    ("promoters", "survey: {question: recommend, at_least: 9}", {"c01"}),
    ("rated_spring_30", "survey: {campaign: spring, question: recommend, at_least: 0, "
                        "within: 30 days}", {"c01", "c02"}),
    ("found_friend", "survey: {question: found_us, answer: A friend}", {"c01"}),
    ("found_10_other", "survey: {question: found_us, answer: [10, Other]}", {"c04", "c05"}),
    ("said_text_10", "survey: {question: recommend, answer: '10'}", {"c04"}),
    ("said_10", "survey: {question: recommend, answer: 10}", {"c01"}),
    ("commented", "survey: {question: comment}", {"c01", "c09"}),
    ("uber", "survey: {question: comment, answer: Über uns}", {"c09"}),
    ("rated", "survey: {question: recommend}", {"c01", "c02", "c04", "c10"}),
    ("engaged_not_detractor", "all: [{opened: {within: 90 days}}, "
                              "{not: {survey: {question: recommend, at_most: 6}}}]",
     {"c01", "c05"}),
]
HAND_YAML = "segments:\n" + "".join(f"  {name}:\n    {body}\n" for name, body, _ in CASES)


# -- loading histories into a database -----------------------------------------------------
class Database:
    """One migrated database; `load` replaces its purchase history (DELETE, then INSERT)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.loaded: History | None = None
        self.ids: dict[int, str] = {}

    def __repr__(self) -> str:
        return f"Database({self.engine.url.get_backend_name()})"

    def load(self, history: History) -> None:
        if self.loaded is history:
            return
        self.loaded = None
        with self.engine.begin() as connection:
            for table in (events, survey_responses, deliveries, runs, order_items, orders,
                          products, customers):
                connection.execute(delete(table))
            self.ids = insert(connection, history)
        self.loaded = history

    def members(self, condition: t.Condition, scope: Scope) -> frozenset[str]:
        """The customers `segment_query` picks."""
        with self.engine.connect() as connection:
            found = connection.execute(segment_query(condition, scope)).scalars().all()
        assert len(found) == len(set(found)), f"duplicate ids for {condition}"
        return frozenset(self.ids[i] for i in found)

    def each_member(self, conditions: list[t.Condition], scope: Scope
                    ) -> list[frozenset[str]]:
        """Many conditions in one query, each as a `predicate` column over `customers`."""
        if not conditions:
            return []
        columns = [case((predicate(c, scope), 1), else_=0) for c in conditions]
        with self.engine.connect() as connection:
            rows = connection.execute(select(customers.c.id, *columns)).all()
        return [frozenset(self.ids[row[0]] for row in rows if row[n + 1] == 1)
                for n in range(len(conditions))]


def insert(connection, history: History) -> dict[int, str]:
    """Write `history` with SQLAlchemy Core; returns customers.id -> external id."""
    customer_ids = {c.external_id: n for n, c in enumerate(history.customers, start=1)}
    product_ids = {p.sku: n for n, p in enumerate(history.products, start=1)}
    if history.customers:
        connection.execute(customers.insert(), [
            {"id": customer_ids[c.external_id], "external_id": c.external_id, "email": c.email,
             "first_name": c.first_name, "last_name": c.last_name, "locale": c.locale,
             "timezone": c.timezone, "country": c.country, "city": c.city,
             "birthday": c.birthday, "signed_up_at": c.signed_up_at,
             "subscribed": c.subscribed, "attributes": dict(c.attributes)}
            for c in history.customers])
    if history.products:
        connection.execute(products.insert(), [
            {"id": product_ids[p.sku], "sku": p.sku, "name": p.name, "category": p.category,
             "price": p.price} for p in history.products])
    lines = []
    if history.orders:
        connection.execute(orders.insert(), [
            {"id": n, "external_id": o.external_id, "customer_id": customer_ids[o.customer],
             "placed_at": o.placed_at, "total": o.total, "currency": "EUR"}
            for n, o in enumerate(history.orders, start=1)])
        lines = [{"order_id": n, "product_id": product_ids[line.sku],
                  "quantity": line.quantity, "unit_price": line.unit_price}
                 for n, o in enumerate(history.orders, start=1) for line in o.lines]
    if lines:
        connection.execute(order_items.insert(), lines)
    _insert_feedback(connection, history, customer_ids)
    return {n: external for external, n in customer_ids.items()}


def _insert_feedback(connection, history: History, customer_ids: dict[str, int]) -> None:
    """Deliveries (one run each), events and survey responses."""
    if history.deliveries:
        connection.execute(runs.insert(), [
            {"id": n, "campaign": d.campaign, "status": "finished", "evaluated_at": NOW,
             "started_at": NOW, "excluded": {}} for n, d in enumerate(history.deliveries, 1)])
        connection.execute(deliveries.insert(), [
            {"id": n, "run_id": n, "customer_id": customer_ids[d.customer], "email": "x@y.z",
             "state": d.state, "attempts": 1, "message_id": f"<{n}@x>",
             "updated_at": d.sent_at or NOW, "sent_at": d.sent_at}
            for n, d in enumerate(history.deliveries, 1)])
    if history.events:
        connection.execute(events.insert(), [
            {"customer_id": customer_ids.get(e.customer), "campaign": e.campaign,
             "kind": e.kind, "created_at": e.created_at,
             "detail": {"url": e.url} if e.url is not None else {},
             "delivery_id": None if e.delivery is None else e.delivery + 1}
            for e in history.events])
    if history.responses:
        connection.execute(survey_responses.insert(), [
            {"campaign": r.campaign, "customer_id": customer_ids[r.customer],
             "answers": dict(r.answers), "created_at": r.updated_at, "updated_at": r.updated_at}
            for r in history.responses])


def _migrated(url: str) -> Engine:
    engine = db.connect(make_url(url))
    db.upgrade(engine)
    return engine


@pytest.fixture(scope="module", params=BACKENDS)
def database(request, tmp_path_factory) -> Iterator[Database]:
    """A migrated database of each kind, shared by this module's tests."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('oracle') / 'campaign.db'}"
    else:
        url = _empty_server(SERVER_URLS[request.param])
    engine = _migrated(url)
    yield Database(engine)
    engine.dispose()


@pytest.fixture(scope="module")
def sqlite_hand(tmp_path_factory) -> Iterator[Database]:
    """The hand-written history in a SQLite file, for the parser fuzz tests."""
    engine = _migrated(f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'campaign.db'}")
    database = Database(engine)
    database.load(HAND)
    yield database
    engine.dispose()


@pytest.fixture(scope="module")
def hand_segments(tmp_path_factory) -> dict[str, t.Segment]:
    path = tmp_path_factory.mktemp("hand") / "segments.yaml"
    path.write_text(HAND_YAML, encoding="utf-8")
    return load_segments(path, TIER_NAMES)


# -- 1. the hand-written history -----------------------------------------------------------
def test_hand_history_is_what_the_cases_assume() -> None:
    oracle = Oracle(HAND, NOW, tiers=HAND_TIERS)
    assert len(HAND.customers) == 12
    assert {(p.category or "").lower() for p in PRODUCTS} == {"garden", "kitchen", "books", ""}
    assert {c for c, past in oracle.past.items() if not past} == {"c07", "c08"}
    assert oracle.rfm_scores()["c09"] == oracle.rfm_scores()["c10"] == \
        {"recency": 4, "frequency": 2, "monetary": 3}
    assert {c: oracle.tier_of(c) for c in ("c01", "c04", "c05", "c11", "c12")} == \
        {"c01": "bronze", "c04": "silver", "c05": "silver", "c11": "gold", "c12": None}
    kinds = {type(node).__name__ for segment in _parse(HAND_YAML).values()
             for node in nodes(segment.condition)}
    assert kinds == {"All", "AnyOf", "Not", "SegmentRef", "OrderCount", "Spent", "AverageOrder",
                     "When", "Bought", "FieldMatch", "Rfm", "TierIs", "Engagement",
                     "SurveyAnswer"}


@pytest.mark.parametrize(("name", "expected"), [(name, expected) for name, _, expected in CASES])
def test_hand_written_cases(database: Database, hand_segments: dict[str, t.Segment],
                            name: str, expected: set[str] | None) -> None:
    database.load(HAND)
    scope = Scope(NOW, hand_segments, HAND_TIERS)
    condition = hand_segments[name].condition
    wanted = Oracle(HAND, NOW, hand_segments, HAND_TIERS).evaluate(condition)
    if expected is not None:
        assert wanted == expected, f"oracle disagrees with the hand-worked answer for {name}"
    assert_agree(condition, database.members(condition, scope), wanted)


def _doc() -> str:
    return (REPO / "docs" / "segments.md").read_text(encoding="utf-8")


def _doc_tiers() -> tuple[Tier, ...]:
    block = re.search(r"```toml\n(.*?)```", _doc(), re.S)
    assert block, "docs/segments.md has no ```toml tiers block"
    return tuple(Tier(table["name"], spent=D(str(table["spent"])) if "spent" in table else None,
                      orders=table.get("orders"),
                      within=parse_span(table["within"]) if "within" in table else None)
                 for table in tomllib.loads(block[1])["tiers"])


def _doc_segment_blocks() -> list[str]:
    blocks = re.findall(r"```yaml\n(.*?)```", _doc(), re.S)
    assert len(blocks) >= 10, "docs/segments.md should hold its YAML examples"
    return blocks


def _parse(text: str, tiers: tuple[str, ...] = TIER_NAMES) -> dict[str, t.Segment]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "segments.yaml"
        path.write_text(text, encoding="utf-8")
        return load_segments(path, tiers)


def test_every_yaml_example_of_the_docs_parses() -> None:
    names = tuple(tier.name for tier in _doc_tiers())
    for block in _doc_segment_blocks():
        assert block.startswith("segments:"), block
        assert _parse(block, names), block


def test_doc_examples_agree_with_the_oracle(database: Database) -> None:
    database.load(HAND)
    tiers = _doc_tiers()
    for block in _doc_segment_blocks():
        segments = _parse(block, tuple(tier.name for tier in tiers))
        oracle = Oracle(HAND, NOW, segments, tiers)
        for name, segment in segments.items():
            got = database.members(segment.condition, Scope(NOW, segments, tiers))
            assert got == oracle.evaluate(segment.condition), f"{name} in\n{block}"


MISTAKES = """\
segments:
  big_spenders:
    all:
      - order: {at_least: 3}
      - spent: {at_least: 500}
  busy:
    orders: {at_least: 5, at_most: 3}
  fans:
    description: Fans of the big spenders
    segment: big_spender
  # a cycle
  a: {segment: b}
  b: {segment: a}
"""


def test_the_documented_mistakes_are_what_the_parser_reports(tmp_path, monkeypatch) -> None:
    documented = _doc().split("## Mistakes", 1)[1]
    block = re.search(r"```\n(.*?)```", documented, re.S)
    assert block, "the Mistakes section has no example output"
    lines = block[1].splitlines()
    assert lines and all(re.match(r"segments\.yaml:\d+:\d+: \S", line) for line in lines)
    monkeypatch.chdir(tmp_path)
    Path("segments.yaml").write_text(MISTAKES, encoding="utf-8")
    with pytest.raises(SegmentError) as caught:
        load_segments(Path("segments.yaml"))
    assert caught.value.problems == lines


# -- 2. random histories and random trees --------------------------------------------------
SKUS = ("SEED-01", "seed-02", "Pan-1", "MUG", "BOOK-ß")
SKU_VARIANTS = ("SEED-01", "seed-01", "Seed-02", "SEED-02", "pan-1", "PAN-1", "mug", "book-ß",
                "BOOK-SS", "NOPE-9")
CATEGORIES = (None, "Garden", "garden", "GARDEN", "Küche", "KÜCHE", "küche", "Kuche", "Books")
CATEGORY_VARIANTS = ("garden", "Garden", "KÜCHE", "küche", "kuche", "books", "Toys")
TEXTS = ("Zoë", "ZOË", "zoë", "Zoe", "Łódź", "łódź", "Lodz", "École", "école", "ECOLE", "Ørsted",
         "ørsted", "Jo_Ann", "JoeAnn", "100%", "1000", "a", "A", "")
CONTAINS = ("ë", "Ë", "ZOË", "ódź", "ÓDŹ", "cole", "COLE", "ør", "ØR", "jo_", "o_a", "0%", "_",
            "%", "a", "E", "@G")
EMAILS = ("zoe@gmail.com", "ZOE@GMAIL.COM", "a@example.org", "jo_ann@web.de", "x%y@gmail.de")
COUNTRIES = (None, "DE", "PL", "FR", "DK")
LOCALES = (None, "de_DE", "de", "pl_PL", "fr_FR")
ZONES = (None, "Europe/Berlin", "Europe/Warsaw", "UTC")
ATTRIBUTES = ("source", "ad-source", "level")
TEXT_FIELDS = ("first_name", "last_name", "city", "email", "source", "ad-source")
FIELD_VALUES: dict[str, tuple[str, ...]] = {
    "customer_id": ("c0", "c1", "C1", "c2", "c11"), "email": EMAILS,
    "first_name": TEXTS, "last_name": TEXTS, "city": TEXTS, "locale": LOCALES[1:] + ("DE_de",),
    "timezone": ZONES[1:] + ("europe/berlin",), "country": COUNTRIES[1:] + ("de",),
    "source": TEXTS, "ad-source": TEXTS, "level": TEXTS, "missing": TEXTS,
}
SPANS = (Span(90, "days"), Span(2, "weeks"), Span(12, "weeks"), Span(1, "months"),
         Span(6, "months"), Span(1, "years"))
# Month ends, a leap day and a new year make calendar months and years interesting.
NOWS = (NOW, at("2028-02-29 00:00"), at("2026-01-01 00:00"), at("2026-05-31 23:59:59"))
SECOND = timedelta(seconds=1)
AMOUNTS = tuple(D(a) for a in ("0.00", "0.01", "0.10", "0.20", "0.30", "0.15", "10.00", "10.01",
                               "20.00", "25.50", "50.00", "99.99", "100.00", "300.00"))

CAMPAIGNS = ("spring", "Spring", "winback")
STATES = ("sent", "sent", "failed", "unknown")
URLS = ("https://shop.example/garden", "https://shop.example/Sale_50%",
        "https://shop.example/GARDEN/x?a_b=1", "/x")
URL_PARTS = ("garden", "GARDEN", "sale_5", "_", "%", "/x", "a_b", "nope")
QUESTIONS = ("recommend", "found_us")
ANSWERS = (0, 6, 7, 9, 10, -1, 999_999_999, 1_000_000_000, "10", "A friend", "a friend", "Über",
           "", 7.5, True, False, None)
WANTED_ANSWERS = (0, 6, 9, 10, 999_999_999, "10", "A friend", "a friend", "Über", "")

amounts = st.one_of(st.sampled_from(AMOUNTS),
                    st.integers(0, 40_000).map(lambda c: (D(c) / 100).quantize(D("0.01"))))
spans = st.sampled_from(SPANS)
windows = st.one_of(st.none(), spans)
HEADCOUNT = st.one_of(st.integers(0, 2), st.integers(4, 12), st.integers(8, 12))
SHELF = st.lists(st.sampled_from(CATEGORIES), min_size=len(SKUS), max_size=len(SKUS))


def absolutes(now: datetime) -> tuple[datetime, ...]:
    return (now.replace(hour=0, minute=0, second=0), datetime(now.year, 1, 1), now,
            datetime(now.year - 1, now.month, 1))


@cache
def times(now: datetime) -> st.SearchStrategy[datetime]:
    """Mostly exact window starts and absolute moments, or a second either side."""
    exact = tuple(sorted({*absolutes(now), *(span.before(now) for span in SPANS)}))
    near = tuple(moment + delta for moment in exact for delta in (-SECOND, SECOND))
    return st.one_of(st.sampled_from(exact), st.sampled_from(exact), st.sampled_from(near),
                     st.integers(-2 * 366 * 86400, 86400).map(lambda s: now + s * SECOND))


@cache
def people(now: datetime) -> st.SearchStrategy[tuple]:
    return st.tuples(
        st.sampled_from(EMAILS), st.sampled_from(TEXTS), st.sampled_from(TEXTS),
        st.sampled_from(LOCALES), st.sampled_from(ZONES), st.sampled_from(COUNTRIES),
        st.one_of(st.none(), st.sampled_from(TEXTS)), st.one_of(st.none(), times(now)),
        st.booleans(),
        st.dictionaries(st.sampled_from(ATTRIBUTES), st.sampled_from(TEXTS), max_size=3))


@cache
def purchases(now: datetime) -> st.SearchStrategy[list]:
    lines = st.lists(st.builds(Line, st.sampled_from(SKUS), st.integers(1, 3)), min_size=1,
                     max_size=3)
    return st.lists(st.tuples(times(now), amounts, lines), max_size=4)


@st.composite
def histories(draw, now: datetime) -> History:
    """0-12 customers with 0-4 orders of 1-3 lines each, 0-3 emails, 0-4 events and 0-2
    survey responses, times around `now`."""
    catalog = tuple(Product(sku, category) for sku, category in zip(SKUS, draw(SHELF),
                                                                      strict=True))
    mail_lists, action_lists, answer_lists = feedback(now)
    buyers, placed = [], []
    mails: list[Delivery] = []
    actions: list[Event] = []
    answers: list[Response] = []
    for n in range(draw(HEADCOUNT)):
        external = f"c{n}"
        email, first, last, locale, zone, country, city, signed, subscribed, extra = \
            draw(people(now))
        buyers.append(Customer(external, email, first, last, locale, zone, country, city, None,
                               signed, subscribed, extra))
        placed += [Order(f"{external}-{k}", external, when, total, tuple(lines))
                   for k, (when, total, lines) in enumerate(draw(purchases(now)))]
        sent = draw(mail_lists)
        own = range(len(mails), len(mails) + len(sent))
        mails += [Delivery(external, campaign, state, when if state == "sent" else None)
                  for campaign, state, when in sent]
        for kind, when, campaign, url in draw(action_lists):
            delivery = draw(st.one_of(st.none(), st.sampled_from(own))) if own else None
            actions.append(Event(external, campaign, kind, when, delivery,
                                 url if kind == "click" else None))
        answers += [Response(external, campaign, given, when)
                    for campaign, given, when in draw(answer_lists)]
    return History(tuple(buyers), catalog, tuple(placed), tuple(mails), tuple(actions),
                   tuple(answers))


@cache
def feedback(now: datetime) -> tuple[st.SearchStrategy[list], ...]:
    """A customer's deliveries, events and survey responses (one per campaign: MariaDB's
    unique key on the campaign name ignores case)."""
    mails = st.lists(st.tuples(st.sampled_from(CAMPAIGNS), st.sampled_from(STATES), times(now)),
                     max_size=3)
    actions = st.lists(st.tuples(st.sampled_from(("open", "click", "unsubscribe")), times(now),
                                 st.sampled_from(CAMPAIGNS), st.sampled_from(URLS)), max_size=4)
    answers = st.lists(st.tuples(st.sampled_from(CAMPAIGNS),
                                 st.dictionaries(st.sampled_from(QUESTIONS),
                                                 st.sampled_from(ANSWERS), max_size=2),
                                 times(now)),
                       max_size=2, unique_by=lambda response: response[0].lower())
    return mails, actions, answers


def _bounds(values: st.SearchStrategy[Decimal]) -> st.SearchStrategy[t.Bounds]:
    return st.one_of(values.map(lambda v: t.Bounds(at_least=v)),
                     values.map(lambda v: t.Bounds(at_most=v)),
                     values.map(lambda v: t.Bounds(v, v)),
                     st.tuples(values, values).map(lambda p: t.Bounds(min(p), max(p))))


whole_bounds = _bounds(st.integers(0, 5).map(D))
money_bounds = _bounds(amounts)


@st.composite
def when(draw, now: datetime) -> t.When:
    moments = st.one_of(spans.map(lambda s: Moment(ago=s)),
                        st.sampled_from(absolutes(now)).map(lambda a: Moment(absolute=a)))
    event = draw(st.sampled_from(("first_order", "last_order", "signed_up")))
    before, after = draw(st.one_of(st.none(), moments)), draw(st.one_of(st.none(), moments))
    if before is None and after is None:
        before = draw(moments)
    return t.When(event, before, after)


@st.composite
def bought(draw) -> t.Bought:
    skus = draw(st.lists(st.sampled_from(SKU_VARIANTS), max_size=3, unique=True))
    categories = draw(st.lists(st.sampled_from(CATEGORY_VARIANTS), min_size=0 if skus else 1,
                               max_size=2, unique=True))
    return t.Bought(tuple(skus), tuple(categories), draw(windows), draw(st.integers(1, 4)))


@st.composite
def field_match(draw) -> t.FieldMatch:
    name = draw(st.sampled_from(("subscribed", *FIELD_VALUES)))
    if name == "subscribed":
        return t.FieldMatch(name, False, (draw(st.booleans()),))
    attribute = name in (*ATTRIBUTES, "missing")
    if draw(st.booleans()):
        if name not in TEXT_FIELDS:
            name = draw(st.sampled_from(TEXT_FIELDS))
        return t.FieldMatch(name, name in ATTRIBUTES, contains=draw(st.sampled_from(CONTAINS)))
    pool = [value for value in FIELD_VALUES[name] if value]
    values = draw(st.lists(st.sampled_from(pool), min_size=1, max_size=3, unique=True))
    return t.FieldMatch(name, attribute, tuple(values))


campaign_names = st.lists(st.sampled_from((*CAMPAIGNS, "thanks")), max_size=2,
                          unique=True).map(tuple)


@st.composite
def engagement(draw) -> t.Engagement:
    event = draw(st.sampled_from(("received", "opened", "clicked")))
    bounds = draw(st.one_of(st.just(t.Bounds(at_least=D(1))), whole_bounds))
    url = draw(st.one_of(st.none(), st.sampled_from(URL_PARTS))) if event == "clicked" else None
    return t.Engagement(event, bounds, draw(campaign_names), draw(windows), url)


@st.composite
def survey_answer(draw) -> t.SurveyAnswer:
    kind = draw(st.sampled_from(("bounds", "answers", "answered")))
    bounds = draw(_bounds(st.integers(0, 10).map(D))) if kind == "bounds" else None
    answers = tuple(draw(st.lists(st.sampled_from(WANTED_ANSWERS), min_size=1, max_size=3,
                                  unique=True))) if kind == "answers" else ()
    return t.SurveyAnswer(draw(st.sampled_from((*QUESTIONS, "comment"))), draw(campaign_names),
                          bounds, answers, draw(windows))


scores = st.frozensets(st.integers(1, 5), min_size=1)
rfm = st.builds(t.Rfm, st.one_of(st.none(), scores), st.one_of(st.none(), scores),
                st.one_of(st.none(), scores)).filter(
    lambda r: any(s is not None for s in (r.recency, r.frequency, r.monetary)))


@cache
def conditions(depth: int, refs: tuple[str, ...], tiers: tuple[str, ...], now: datetime
               ) -> st.SearchStrategy[t.Condition]:
    """Random trees of at most `depth` combinators over every condition type."""
    leaves = (st.builds(t.OrderCount, whole_bounds, windows),
              st.builds(t.Spent, money_bounds, windows),
              st.builds(t.AverageOrder, money_bounds, windows), when(now), bought(),
              field_match(), rfm, engagement(), survey_answer())
    parts = {"leaf": st.sampled_from(leaves).flatmap(lambda leaf: leaf)}
    kinds = ["leaf", "leaf"]
    if tiers:
        kinds.append("tier")
        parts["tier"] = st.lists(st.sampled_from(tiers), min_size=1, unique=True).map(
            lambda names: t.TierIs(tuple(names)))
    if refs:
        kinds.append("segment")
        parts["segment"] = st.sampled_from(refs).map(t.SegmentRef)
    if depth:
        inner = conditions(depth - 1, refs, tiers, now)
        items = st.lists(inner, min_size=1, max_size=3).map(tuple)
        kinds += ["not", "all", "any", "all", "any"]
        parts.update({"not": inner.map(t.Not), "all": items.map(t.All),
                      "any": items.map(t.AnyOf)})
    return st.sampled_from(kinds).flatmap(lambda kind: parts[kind])


TIER_NAME_LISTS = st.one_of(st.lists(st.sampled_from(("gold", "silver", "bronze")), min_size=2,
                                     max_size=3, unique=True),
                            st.lists(st.sampled_from(("gold", "silver")), max_size=1))


@st.composite
def tier_lists(draw) -> tuple[Tier, ...]:
    tiers = []
    for name in draw(TIER_NAME_LISTS):
        spent = draw(st.one_of(st.none(), amounts))
        count = draw(st.integers(0, 4)) if spent is None else draw(
            st.one_of(st.none(), st.integers(0, 4)))
        tiers.append(Tier(name, spent, count, draw(windows)))
    return tuple(tiers)


@dataclass(frozen=True)
class Scenario:
    now: datetime
    history: History
    tiers: tuple[Tier, ...]
    segments: dict[str, t.Segment]
    conditions: tuple[t.Condition, ...]
    extra_leaves: tuple[t.Condition, ...]


@st.composite
def scenarios(draw) -> Scenario:
    """A time, a history, tiers, two named segments (s2 may use s1) and trees to evaluate."""
    now = draw(st.sampled_from(NOWS))
    history = draw(histories(now))
    tiers = draw(tier_lists())
    names = tuple(tier.name for tier in tiers)
    s1 = draw(conditions(2, (), names, now))
    s2 = draw(conditions(2, ("s1",), names, now))
    segments = {name: t.Segment(name, "", condition, (1, 1))
                for name, condition in (("s1", s1), ("s2", s2))}
    trees = draw(st.lists(conditions(3, ("s1", "s2"), names, now), min_size=3, max_size=8))
    extra = draw(st.lists(conditions(0, ("s1", "s2"), names, now), max_size=12))
    return Scenario(now, history, tiers, segments, tuple(trees), tuple(extra))


@pytest.mark.parametrize(("span", "now", "start"), [
    (Span(1, "months"), at("2026-03-31 12:00"), at("2026-02-28 12:00")),
    (Span(1, "years"), at("2028-02-29 00:00"), at("2027-02-28 00:00")),
    (Span(6, "months"), at("2026-08-31 23:59:59"), at("2026-02-28 23:59:59")),
    (Span(13, "months"), at("2026-01-15 08:00"), at("2024-12-15 08:00")),
    (Span(12, "weeks"), at("2026-03-31 12:00"), at("2026-01-06 12:00")),
    (Span(90, "days"), at("2026-03-31 12:00"), at("2025-12-31 12:00")),
])
def test_window_starts(span: Span, now: datetime, start: datetime) -> None:
    assert span_before(span, now) == start == span.before(now)


@settings(max_examples=300, deadline=None)
@given(moment=st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1)),
       span=st.builds(Span, st.integers(1, 400), st.sampled_from(("days", "weeks", "months",
                                                                     "years"))))
def test_oracle_windows_match_timespec(moment: datetime, span: Span) -> None:
    assert span_before(span, moment) == span.before(moment)


@settings(max_examples=80, deadline=None, report_multiple_bugs=False)
@given(scenario=scenarios())
def test_random_histories_agree_with_the_oracle(database: Database, scenario: Scenario) -> None:
    database.load(scenario.history)
    oracle = Oracle(scenario.history, scenario.now, scenario.segments, scenario.tiers)
    scope = Scope(scenario.now, scenario.segments, scenario.tiers)
    trees = [*scenario.conditions, *(s.condition for s in scenario.segments.values())]
    leaves = list(dict.fromkeys([*(node for tree in trees for node in nodes(tree)
                                   if not isinstance(node, t.All | t.AnyOf | t.Not)),
                                 *scenario.extra_leaves]))
    for leaf, found in zip(leaves, database.each_member(leaves, scope), strict=True):
        assert_agree(leaf, found, oracle.evaluate(leaf))
    for tree in trees:
        assert_agree(tree, database.members(tree, scope), oracle.evaluate(tree))


def assert_agree(condition: t.Condition, sql: frozenset[str], oracle: frozenset[str]) -> None:
    assert sql == oracle, (f"{condition}\n  SQL only: {sorted(sql - oracle)}"
                           f"\n  oracle only: {sorted(oracle - sql)}")


# -- 3. fuzzing the parser -----------------------------------------------------------------
def _hashable(value: object) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return value == value  # NaN keys cannot be looked up again


LOCATED = r"{path}:(\d+):(\d+): \S"
KEYS = ("all", "any", "not", "segment", "orders", "spent", "average_order", "first_order",
        "last_order", "signed_up", "bought", "customer", "rfm", "tier", "description",
        "at_least", "at_most", "exactly", "within", "before", "after", "product", "category",
        "city", "subscribed", "contains", "recency", "frequency", "monetary", "source",
        "birthday", "signed_up_at", "order", "citty", "segments", "a", "b", "1bad", "x y",
        "received", "opened", "clicked", "survey", "campaign", "url", "question", "answer")
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 10), st.sampled_from((10**30, 1.5, 0.001, -0.0)),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(("90 days", "90 dayz", "0 days", "-3 days", "1 year", "12 weeks",
                     "6 months ago", "90 days ago", "99999999 days", "2026-03-01",
                     "2026-02-30", "2026-03-01 25:00", "2026-03-01T09:30:00+02:00", "", " ",
                     "gold", "platinum", "a", "b", "SEED-01", "1e400", "NaN", "3.333", "ö")),
    st.dates(min_value=date(1, 1, 1)), st.text(max_size=6))
JUNK = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3),
    st.dictionaries(st.one_of(st.sampled_from(KEYS), SCALARS.filter(_hashable)), inner,
                    max_size=3)), max_leaves=12)


def _numbers(whole: bool) -> st.SearchStrategy[Any]:
    good = st.integers(0, 5) if whole else st.sampled_from((0, 1, 0.3, 10.5, 300, "25.50"))
    bad = st.sampled_from((-1, 1.234, "abc", True, None, [1], "5", 10**30, "1e30", "0.1e-1"))
    return st.one_of(*[good] * 4, bad)


def _bound_options(whole: bool) -> st.SearchStrategy[dict]:
    number = _numbers(whole)
    return st.one_of(st.builds(lambda n: {"at_least": n}, number),
                     st.builds(lambda n: {"at_most": n}, number),
                     st.builds(lambda n: {"exactly": n}, number),
                     st.builds(lambda a, b: {"at_least": a, "at_most": b}, number, number))


GOOD_SPANS = ("90 days", "12 weeks", "6 months", "1 year", "2 years", "1 day", "1 month")
SPAN_TEXT = st.sampled_from((*GOOD_SPANS * 3, "90 dayz", "0 days", 90))
GOOD_MOMENTS = ("90 days ago", "1 year ago", "6 months ago", "2026-01-01", "2026-03-31 11:59:59",
                "2 weeks ago")
MOMENT_TEXT = st.sampled_from((*GOOD_MOMENTS * 3, "yesterday", "2026-13-01", "2026-02-30",
                               "2026-03-01 25:00:00"))
TEXT_VALUE = st.sampled_from(("Berlin", "Łódź", "paris", "de", "DE", "fr", "xx", "de-de",
                              "de_DE", "instagram", 5, "", True))

CAMPAIGN_OPTIONS = st.sampled_from(({}, {"campaign": "spring"}, {"campaign": ["spring", "Spring"]},
                                    {"campaign": []}, {"campaign": 5}, {"campaign": None}))
URL_OPTIONS = st.sampled_from(({}, {"url": "/garden"}, {"url": "sale_50%"}, {"url": ""},
                               {"url": 3}))
QUESTION_OPTIONS = st.sampled_from(({"question": "recommend"}, {"question": "found_us"},
                                    {"question": "comment"}, {}, {"question": "Bad Key"},
                                    {"question": 5}))
ANSWER_OPTIONS = st.sampled_from(({}, {}, {"answer": "A friend"}, {"answer": [9, 10, "10"]},
                                  {"answer": []}, {"answer": True}, {"answer": 1.5},
                                  {"answer": 10**12}))


def _with_window(options: st.SearchStrategy[dict], name: str = "within"
                 ) -> st.SearchStrategy[dict]:
    return st.builds(lambda o, w: {**o, **({name: w} if w is not None else {})}, options,
                     st.one_of(st.none(), SPAN_TEXT))


def yaml_conditions(depth: int) -> st.SearchStrategy[Any]:
    """Valid-looking condition mappings, some of them subtly wrong."""
    moment_options = st.builds(
        lambda b, a: {k: v for k, v in (("before", b), ("after", a)) if v is not None} or
        {"before": "90 days ago"}, st.one_of(st.none(), MOMENT_TEXT),
        st.one_of(st.none(), MOMENT_TEXT))
    names = st.one_of(st.sampled_from(("SEED-01", "seed-02", "Garden", "kitchen", "Books")),
                      st.lists(st.sampled_from(("SEED-01", "PAN-01", "Garden", "Kitchen")),
                               min_size=1, max_size=3))
    field = st.one_of(
        st.builds(lambda k, v: {k: v}, st.sampled_from(("city", "country", "locale",
                                                         "first_name", "source", "school",
                                                         "customer_id", "citty")),
                  st.one_of(TEXT_VALUE, st.lists(TEXT_VALUE, min_size=1, max_size=3),
                            st.builds(lambda c: {"contains": c}, TEXT_VALUE))),
        st.builds(lambda v: {"subscribed": v}, st.sampled_from((True, False, "yes"))))
    score = st.one_of(st.integers(1, 5), st.lists(st.integers(1, 5), min_size=1, max_size=3),
                      st.sampled_from((0, 6, [], "5")))
    leaf = st.one_of(
        st.builds(lambda o: {"orders": o}, _with_window(_bound_options(True))),
        st.builds(lambda o: {"spent": o}, _with_window(_bound_options(False))),
        st.builds(lambda o: {"average_order": o}, _with_window(_bound_options(False))),
        st.builds(lambda k, o: {k: o}, st.sampled_from(("first_order", "last_order",
                                                        "signed_up")), moment_options),
        st.builds(lambda p, c, n, w: {"bought": {k: v for k, v in (
            ("product", p), ("category", c), ("at_least", n), ("within", w)) if v is not None}},
            st.one_of(st.none(), names), st.one_of(st.none(), names),
            st.one_of(st.none(), st.integers(0, 4)), st.one_of(st.none(), SPAN_TEXT)),
        st.builds(lambda fields: {"customer": fields},
                  st.lists(field, min_size=1, max_size=2).map(lambda fs: {
                      k: v for f in fs for k, v in f.items()})),
        st.builds(lambda r, f, m: {"rfm": {k: v for k, v in (
            ("recency", r), ("frequency", f), ("monetary", m)) if v is not None} or {"x": 1}},
            st.one_of(st.none(), score), st.one_of(st.none(), score),
            st.one_of(st.none(), score)),
        st.builds(lambda n: {"tier": n}, st.one_of(
            st.sampled_from(("gold", "silver", "bronze", "platinum")),
            st.lists(st.sampled_from(("gold", "bronze")), min_size=1, max_size=2))),
        st.builds(lambda n: {"segment": n}, st.sampled_from(("a", "b", "c", "d"))),
        st.builds(lambda k, o: {k: o or {"within": "30 days"}},
                  st.sampled_from(("received", "opened", "clicked")),
                  _with_window(st.builds(lambda b, c, u: {**b, **c, **u},
                                         st.one_of(st.just({}), _bound_options(True)),
                                         CAMPAIGN_OPTIONS, URL_OPTIONS))),
        st.builds(lambda *parts: {"survey": {k: v for part in parts for k, v in part.items()}},
                  QUESTION_OPTIONS, st.one_of(st.just({}), _bound_options(True)),
                  ANSWER_OPTIONS, CAMPAIGN_OPTIONS),
    )
    if depth == 0:
        return leaf
    inner = yaml_conditions(depth - 1)
    return st.one_of(leaf, leaf,
                     st.builds(lambda c: {"not": c}, inner),
                     st.builds(lambda k, cs: {k: cs}, st.sampled_from(("all", "any")),
                               st.lists(inner, max_size=3)))


YAML_CONDITIONS = yaml_conditions(2)


@st.composite
def segment_documents(draw) -> dict[str, Any]:
    """`segments:` with 1-3 named conditions; now and then a name that is not one."""
    names: list[Any] = draw(st.lists(st.sampled_from("abcd"), min_size=1, max_size=3,
                                     unique=True))
    if draw(st.integers(0, 9)) == 0:
        names[0] = draw(st.sampled_from((1, None, "1bad")))
    return {"segments": {name: draw(YAML_CONDITIONS) for name in names}}


def _dump(document: Any, flow: bool) -> str:
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = flow
    out = io.StringIO()
    yaml.dump(document, out)
    return out.getvalue()


def _plain(value: Any) -> str:
    """Flow-style YAML with every scalar unquoted, so YAML re-reads it its own way."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_plain(k)}: {_plain(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_plain(v) for v in value) + "]"
    if value is None or isinstance(value, bool):
        return {None: "~", True: "true", False: "false"}[value]
    return str(value)


MUTATION_CHARS = st.sampled_from([*":{}[]-,'\"\t&*!|>%@`# \n?", "  ", "\n  - ", "\x00", "\x1b",
                                  "\ufeff", "\u2028", "\r"])
RENDERINGS = ("block", "flow", "plain")


def render(document: Any, how: str) -> str:
    return _plain(document) + "\n" if how == "plain" else _dump(document, how == "flow")


@st.composite
def mutated(draw, documents: st.SearchStrategy[Any]) -> str:
    """A rendered document (block, flow or unquoted), maybe with a few characters changed."""
    text = render(draw(documents), draw(st.sampled_from(RENDERINGS)))
    for _ in range(draw(st.integers(0, 3))):
        place = draw(st.integers(0, len(text)))
        if draw(st.booleans()):
            text = text[:place] + draw(MUTATION_CHARS) + text[place:]
        else:
            text = text[:place] + text[place + 1:]
    return text


malformed = st.one_of(
    mutated(st.builds(lambda body: {"segments": body}, JUNK)),
    mutated(JUNK),
    mutated(segment_documents()),
    st.text(alphabet=st.characters(exclude_categories=("Cs", "Cc")) | st.sampled_from(
        list("\n :-{}[]")), max_size=80),
)


def _check_outcome(path: Path, text: str) -> dict[str, t.Segment] | None:
    """load_segments returns segments or raises an EngineError whose problems are located."""
    path.write_text(text, encoding="utf-8")
    try:
        segments = load_segments(path, ("gold", "silver", "bronze"))
        event("loaded")
        return segments
    except SegmentError as error:
        event("SegmentError")
        problems = error.problems
    except WorkspaceError as error:
        event("WorkspaceError")
        assert error.line is not None and error.column is not None, str(error)
        problems = [str(error)]
    last = len(text.splitlines()) + 1
    pattern = re.compile(LOCATED.format(path=re.escape(str(path))))
    assert problems
    for problem in problems:
        found = pattern.match(problem)
        assert found, problem
        assert 1 <= int(found[1]) <= last and int(found[2]) >= 1, problem
    return None


@pytest.fixture(scope="module")
def fuzz_file(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz") / "segments.yaml"


@settings(max_examples=300, deadline=None)
@given(text=malformed)
def test_any_segments_file_loads_or_fails_with_located_problems(fuzz_file: Path,
                                                                text: str) -> None:
    _check_outcome(fuzz_file, text)


@settings(max_examples=150, deadline=None)
@given(document=segment_documents(), how=st.sampled_from(RENDERINGS))
def test_valid_looking_files_load_and_agree_with_the_oracle(
        fuzz_file: Path, sqlite_hand: Database, document: Any, how: str) -> None:
    segments = _check_outcome(fuzz_file, render(document, how))
    if segments is None:
        return
    oracle = Oracle(HAND, NOW, segments, HAND_TIERS)
    scope = Scope(NOW, segments, HAND_TIERS)
    for segment in segments.values():
        assert sqlite_hand.members(segment.condition, scope) == \
            oracle.evaluate(segment.condition), segment


DEEP = "segments:\n  a: " + "{not: " * 300 + "{orders: {at_least: 1}}" + "}" * 300 + "\n"


@pytest.mark.parametrize("text", [
    pytest.param("segments:\n  a:\n    first_order: {after: 2026-02-30}\n",
                 id="impossible-date"),
    pytest.param("segments:\n  a:\n    last_order: {before: 2026-03-01 25:00:00}\n",
                 id="impossible-time"),
    pytest.param("segments:\n  1: {orders: {at_least: 1}}\n  a: {segment: b}\n",
                 id="number-name"),
    pytest.param("segments:\n  ~: {orders: {at_least: 1}}\n  a: {segment: b}\n", id="null-name"),
    pytest.param("segments:\n  a: {orders: {at_least: 1}}\x07\n", id="control-character"),
    pytest.param("segments:\n  a: {spent: {at_least: 100000000000000000000000000000}}\n",
                 id="huge-number"),
    pytest.param("segments:\n  a: {orders: {at_most: '1e30'}}\n", id="huge-exponent"),
    pytest.param(DEEP, id="deep-nesting"),
    pytest.param("segments:\n  a: {orders: {at_least: 1}}\n\u2028", id="line-separator"),
    pytest.param("\ufeffsegments:\n  a: {orders: {at_least: 1}}\n", id="byte-order-mark"),
    pytest.param("segments:\n  a: !!set {orders}\n", id="set"),
    pytest.param("segments:\n  a: &x\n    all:\n      - *x\n", id="recursive-alias"),
    pytest.param("segments:\n  a: {orders: {at_least: 1}}\n  a: {orders: {at_least: 2}}\n",
                 id="duplicate-key"),
])
def test_odd_files_load_or_fail_with_located_problems(fuzz_file: Path, text: str) -> None:
    path = fuzz_file.with_name("odd.yaml")
    path.write_text(text, encoding="utf-8")
    try:
        load_segments(path, ("gold",))
    except (SegmentError, WorkspaceError) as error:
        problems = getattr(error, "problems", None) or [str(error)]
        assert all(re.match(LOCATED.format(path=re.escape(str(path))), p) for p in problems)


@pytest.mark.parametrize("body", ["last_order: {before: 10000 years ago}",
                                  "orders: {at_least: 1, within: 99999999 days}"])
def test_absurd_spans_are_rejected_or_compile(fuzz_file: Path, body: str) -> None:
    path = fuzz_file.with_name("absurd.yaml")
    path.write_text(f"segments:\n  a:\n    {body}\n", encoding="utf-8")
    try:
        segments = load_segments(path)
    except SegmentError as error:
        assert re.match(LOCATED.format(path=re.escape(str(path))), error.problems[0])
        return
    segment_query(segments["a"].condition, Scope(NOW, segments))


# `contains` lowers both sides with the database's own lower(); the oracle uses Python's.
# MariaDB's lower() leaves the capital sharp s (U+1E9E) as it is: a known, documented gap.
FOLDING = [
    ("İstanbul", "İstanbul", set()),
    ("ΟΔΥΣΣΕΥΣ", "ΣΣΕΥΣ", set()),
    ("STRAẞE", "straße", {"mariadb"}),
    ("Ørsted", "øRS", set()),
    ("ǅemal", "ǆ", set()),
]


@pytest.mark.parametrize(("city", "needle", "failing"), FOLDING,
                         ids=[needle for _, needle, _ in FOLDING])
def test_contains_folds_case_alike_on_every_backend(request, database: Database, city: str,
                                                    needle: str, failing: set[str]) -> None:
    backend = database.engine.dialect.name.replace("mysql", "mariadb")
    if backend in failing:
        request.applymarker(pytest.mark.xfail(strict=True, raises=AssertionError, reason=(
            f"{backend}: lower() does not map every capital in {city!r} to its small letter")))
    history = History((Customer("c1", "a@example.com", city=city),
                       Customer("c2", "b@example.com", city="Other")), (), ())
    database.load(history)
    condition = t.FieldMatch("city", False, contains=needle)
    assert Oracle(history, NOW).evaluate(condition) == {"c1"}
    assert database.members(condition, Scope(NOW, {})) == {"c1"}


def test_sub_second_times_agree(request, database: Database) -> None:
    """The importer keeps fractions of a second; every database must compare them alike."""
    history = History((Customer("c1", "a@example.com"), Customer("c2", "b@example.com")),
                      (Product("X", None),),
                      (Order("o1", "c1", at("2026-03-01 09:30:00.2"), D(1), (Line("X", 1),)),
                       Order("o2", "c2", at("2026-03-01 09:30:00.7"), D(1), (Line("X", 1),))))
    database.load(history)
    oracle, scope = Oracle(history, NOW), Scope(NOW, {})
    for condition in (t.Rfm(recency=frozenset({1})),
                      t.When("last_order", after=Moment(absolute=at("2026-03-01 09:30:00.5")))):
        assert database.members(condition, scope) == oracle.evaluate(condition), condition
