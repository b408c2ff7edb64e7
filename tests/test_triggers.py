"""Lifecycle trigger events, due and not yet sent, on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import insert
from sqlalchemy.engine import make_url

from engine.db import connect
from engine.schema import customers, orders, runs, triggered
from engine.timespec import Span
from engine.timing import Trigger
from engine.triggers import due_events

NOW = datetime(2026, 3, 1, 12)               # catch_up 3 days: due since 2026-02-26 12:00
CUSTOMERS = {   # name: (birthday, signed_up_at)
    "ann": (date(1990, 3, 1), datetime(2026, 2, 27, 10)),
    "ben": (date(1988, 2, 29), datetime(2026, 1, 1)),
    "cem": (date(1990, 12, 31), None),
    "dora": (date(1999, 2, 28), datetime(2026, 2, 25, 11, 59)),
    "eve": (date(2001, 1, 1), None),
    "finn": (None, datetime(2026, 2, 28, 12)),
}
ORDERS = {      # order id: (customer, placed_at)
    "A1": ("ann", datetime(2026, 2, 20, 10)),
    "A2": ("ann", datetime(2026, 2, 22, 9)),
    "A0": ("ann", datetime(2026, 2, 19, 11, 59)),    # due 26 Feb 11:59, before the window
    "A9": ("ann", datetime(2026, 3, 5)),             # after now
    "B1": ("ben", datetime(2025, 11, 30, 12)),       # ben's last order: win-back due 28 Feb
    "C1": ("cem", datetime(2025, 11, 29, 12)),       # in the window, but cem ordered since
    "C2": ("cem", datetime(2026, 1, 10)),
    "D1": ("dora", datetime(2026, 2, 22, 12)),       # due exactly now with wait 7 days
    "D2": ("dora", datetime(2026, 2, 19, 12)),       # due exactly at the window's start
    "E1": ("eve", datetime(2026, 1, 31, 10)),
}


@pytest.fixture
def shop(workspace):
    """The customers and orders above in each kind of database: (engine, {name: id})."""
    engine = connect(make_url(workspace.database_url))
    with engine.begin() as connection:
        for number, (name, (birthday, signed_up_at)) in enumerate(CUSTOMERS.items(), start=1):
            connection.execute(insert(customers).values(
                id=number, external_id=f"C{number}", email=f"{name}@shop.example",
                first_name=name, last_name="", birthday=birthday, signed_up_at=signed_up_at,
                subscribed=True, attributes={}))
        ids = {name: number for number, name in enumerate(CUSTOMERS, start=1)}
        connection.execute(insert(orders), [
            {"external_id": key, "customer_id": ids[name], "placed_at": placed_at,
             "total": Decimal("10.00"), "currency": "EUR"}
            for key, (name, placed_at) in ORDERS.items()])
        connection.execute(insert(runs).values(
            id=1, campaign="follow_up", status="finished", evaluated_at=NOW, started_at=NOW,
            excluded={}))
    yield engine, ids
    engine.dispose()


def due(shop, trigger: Trigger, now: datetime = NOW, campaign: str = "follow_up"):
    engine, ids = shop
    names = {number: name for name, number in ids.items()}
    with engine.connect() as connection:
        rows = connection.execute(due_events(trigger, campaign, now)).all()
    return [(names[customer], key, event_at) for customer, key, event_at in rows]


def mark_sent(shop, name: str, key: str, campaign: str = "follow_up") -> None:
    engine, ids = shop
    with engine.begin() as connection:
        connection.execute(insert(triggered).values(
            campaign=campaign, customer_id=ids[name], event_key=key, run_id=1, created_at=NOW))


def test_order_follow_up_every_order_due_in_the_window_at_most_once(shop):
    follow_up = Trigger("order", Span(7, "days"))
    assert due(shop, follow_up) == [
        ("ann", "order:A1", datetime(2026, 2, 20, 10)),
        ("ann", "order:A2", datetime(2026, 2, 22, 9)),
        ("dora", "order:D2", datetime(2026, 2, 19, 12)),
        ("dora", "order:D1", datetime(2026, 2, 22, 12))]
    mark_sent(shop, "ann", "order:A1")
    mark_sent(shop, "dora", "order:D1", campaign="other")     # another campaign's event
    assert [(name, key) for name, key, _ in due(shop, follow_up)] == [
        ("ann", "order:A2"), ("dora", "order:D2"), ("dora", "order:D1")]
    # one second later D2 is older than catch_up; one second earlier D1 is not due yet
    assert [key for _, key, _ in due(shop, follow_up, NOW + timedelta(seconds=1))] == \
        ["order:A2", "order:D1"]
    assert [key for _, key, _ in due(shop, follow_up, NOW - timedelta(seconds=1))] == \
        ["order:A2", "order:D2"]
    longer = Trigger("order", Span(7, "days"), catch_up=Span(1, "weeks"))
    assert [key for _, key, _ in due(shop, longer)] == \
        ["order:A0", "order:A2", "order:D2", "order:D1"]


def test_win_back_only_after_the_last_order(shop):
    win_back = Trigger("last_order", Span(90, "days"))
    assert due(shop, win_back) == [("ben", "last_order:B1", datetime(2025, 11, 30, 12))]
    # a later order makes a new win-back possible, 90 days after it
    assert due(shop, win_back, datetime(2026, 4, 10, 12)) == [
        ("cem", "last_order:C2", datetime(2026, 1, 10))]
    mark_sent(shop, "ben", "last_order:B1")
    assert due(shop, win_back) == []


def test_welcome_after_sign_up(shop):
    welcome = Trigger("signed_up", Span(1, "days"))
    assert due(shop, welcome) == [("ann", "signed_up", datetime(2026, 2, 27, 10)),
                                  ("finn", "signed_up", datetime(2026, 2, 28, 12))]
    right_away = Trigger("signed_up", None)
    assert [name for name, _, _ in due(shop, right_away)] == ["ann", "finn"]
    mark_sent(shop, "finn", "signed_up")
    assert [name for name, _, _ in due(shop, welcome)] == ["ann"]


def test_birthdays_in_the_window_including_29_february(shop):
    birthday = Trigger("birthday", None)
    # 2026 has no 29 February: ben celebrates on the 28th, with dora
    assert due(shop, birthday) == [
        ("ann", "birthday:2026", datetime(2026, 3, 1)),
        ("ben", "birthday:2026", datetime(2026, 2, 28)),
        ("dora", "birthday:2026", datetime(2026, 2, 28))]
    assert due(shop, birthday, datetime(2028, 2, 29, 12)) == [
        ("ben", "birthday:2028", datetime(2028, 2, 29)),
        ("dora", "birthday:2028", datetime(2028, 2, 28))]
    mark_sent(shop, "ann", "birthday:2026")
    assert [name for name, _, _ in due(shop, birthday)] == ["ben", "dora"]
    # next year's birthday is a new event
    assert [name for name, _, _ in due(shop, birthday, datetime(2027, 3, 1, 6))] == \
        ["ann", "ben", "dora"]


def test_birthdays_around_new_year_keep_their_own_year(shop):
    assert due(shop, Trigger("birthday", None), datetime(2026, 1, 2, 6)) == [
        ("cem", "birthday:2025", datetime(2025, 12, 31)),
        ("eve", "birthday:2026", datetime(2026, 1, 1))]


def test_a_wait_in_months_past_the_end_of_a_short_month(shop):
    monthly = Trigger("order", Span(1, "months"))
    placed_at = datetime(2026, 1, 31, 10)
    assert monthly.due(placed_at) == datetime(2026, 3, 1)      # February has no 31st
    assert monthly.due(datetime(2026, 1, 28, 10)) == datetime(2026, 2, 28, 10)
    assert due(shop, monthly, datetime(2026, 2, 28, 23, 59)) == []
    assert due(shop, monthly, datetime(2026, 3, 1)) == [("eve", "order:E1", placed_at)]


def test_due_is_the_event_plus_wait():
    assert Trigger("signed_up", Span(1, "days")).due(NOW) == NOW + timedelta(days=1)
    assert Trigger("order", Span(2, "weeks")).due(NOW) == NOW + timedelta(days=14)
    assert Trigger("birthday", None).due(NOW) == NOW
