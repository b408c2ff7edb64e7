"""Import beyond one write chunk, and the bulk writer against SQLAlchemy's own inserts."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest
from sqlalchemy import Engine, insert, text
from sqlalchemy.engine import make_url

from engine import bulkwrite, db, importer
from engine.schema import customers, orders

CUSTOMERS = "customer_id,email,first_name,last_name\n" + "".join(
    f"C{i},c{i}@example.com,A,B\n" for i in range(1, 6))
ORDER_HEADER = "order_id,customer_id,placed_at,sku,quantity,unit_price\n"


def order_lines(count: int, per_order: int) -> str:
    """`count` order lines, `per_order` to an order, over five customers and seven SKUs."""
    return ORDER_HEADER + "".join(
        f"O{i // per_order},C{i // per_order % 5 + 1},2026-01-{i // per_order % 28 + 1:02d}"
        f"T10:00:00Z,P{i % 7},{i % 3 + 1},{i % 50}.{i % 100:02d}\n" for i in range(count))


def expected_items(count: int, per_order: int) -> list[tuple]:
    return sorted((f"O{i // per_order}", f"P{i % 7}", i % 3 + 1, Decimal(f"{i % 50}.{i % 100:02d}"))
                  for i in range(count))


def stored_items(workspace) -> list[tuple]:
    rows = workspace.rows("SELECT o.external_id, p.sku, i.quantity, i.unit_price "
                          "FROM order_items i JOIN orders o ON o.id = i.order_id "
                          "JOIN products p ON p.id = i.product_id")
    return sorted((r[0], r[1], r[2], Decimal(str(r[3]))) for r in rows)


def run_import(workspace, kind: str, content: str, name: str = ""):
    result = workspace.run("import", kind, str(workspace.write(name or f"{kind}.csv", content)))
    assert result.exit_code == 0, result.output
    return result


def _engine(workspace) -> Engine:
    return db.connect(make_url(workspace.database_url))


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of a few rows, so that a small file crosses many chunk boundaries."""
    monkeypatch.setattr(importer, "CHUNK", 4)
    monkeypatch.setattr(bulkwrite, "CHUNK", 3)


def test_a_file_of_many_chunks_round_trips_and_reimports_exactly(workspace, small_chunks):
    run_import(workspace, "customers", CUSTOMERS)
    result = run_import(workspace, "orders", order_lines(50, 3))
    assert "50 order lines" in result.stdout and "17 orders (17 new, 0 updated)" in result.stdout
    assert stored_items(workspace) == expected_items(50, 3)

    # 17 orders replaced (O16 gains a line), 4 new
    result = run_import(workspace, "orders", order_lines(61, 3), name="more.csv")
    assert "21 orders (4 new, 17 updated), 0 new products" in result.stdout
    assert stored_items(workspace) == expected_items(61, 3)
    totals = workspace.rows("SELECT o.external_id, o.total FROM orders o ORDER BY o.external_id")
    assert {key: Decimal(str(total)) for key, total in totals} == {
        key: sum((q * p for k, _sku, q, p in expected_items(61, 3) if k == key), Decimal(0))
        for key, _total in totals}


def test_a_file_larger_than_one_write_chunk_round_trips(workspace):
    lines = bulkwrite.CHUNK + 1
    run_import(workspace, "customers", CUSTOMERS)
    run_import(workspace, "orders", order_lines(lines, 1))
    assert stored_items(workspace) == expected_items(lines, 1)
    assert workspace.rows("SELECT COUNT(*) FROM orders") == [(lines,)]


def test_progress_reaches_each_total_in_order(workspace, small_chunks):
    engine = _engine(workspace)
    reports: list[tuple[str, int, int]] = []
    try:
        importer.import_file(engine, "customers", workspace.write("customers.csv", CUSTOMERS))
        path = workspace.write("orders.csv", order_lines(20, 2))
        importer.import_file(engine, "orders", path,
                             progress=lambda *report: reports.append(report))
    finally:
        engine.dispose()
    steps = list(dict.fromkeys(step for step, _done, _total in reports))
    assert steps == ["reading", "writing orders", "writing order lines"]
    for step in steps:
        done = [d for s, d, _t in reports if s == step]
        assert done == sorted(done)
    assert [r for r in reports if r[0] != "reading"][-1] == ("writing order lines", 20, 20)
    assert ("writing orders", 10, 10) in reports


def test_new_orders_get_their_lines_when_the_id_sequence_lags_behind(workspace):
    run_import(workspace, "customers", CUSTOMERS)
    engine = _engine(workspace)
    try:  # an order stored with an explicit id, as a restored backup may have it
        with engine.begin() as connection:
            customer = connection.execute(text("SELECT MIN(id) FROM customers")).scalar_one()
            connection.execute(insert(orders).values(
                id=1000, external_id="OLD", customer_id=customer, placed_at=datetime(2025, 1, 1),
                total=0, currency="EUR"))
    finally:
        engine.dispose()
    run_import(workspace, "orders", order_lines(6, 2))
    assert stored_items(workspace) == expected_items(6, 2)


ORDER_COLUMNS = ("external_id", "customer_id", "placed_at", "total", "currency")
VALUES = [(datetime(2026, 3, 1, 9, 30), Decimal("19.90"), "EUR"),
          (datetime(2026, 3, 1, 9, 30, 5, 120), Decimal("0.00"), "GBP"),
          (datetime(1999, 12, 31), Decimal("9999999999.99"), "USD")]


def test_bulk_rows_are_stored_exactly_as_sqlalchemy_stores_them(workspace):
    """COPY (PostgreSQL) and the driver's executemany store what SQLAlchemy's insert stores."""
    engine = _engine(workspace)
    try:
        with engine.begin() as connection:
            customer = connection.execute(insert(customers).values(
                external_id="C1", email="a@example.com", attributes={})).inserted_primary_key[0]
            connection.execute(insert(orders), [
                dict(zip(ORDER_COLUMNS, (f"A{i}", customer, *v), strict=True))
                for i, v in enumerate(VALUES)])
            count = bulkwrite.insert_rows(connection, orders, ORDER_COLUMNS,
                                          ((f"B{i}", customer, *v) for i, v in enumerate(VALUES)),
                                          lambda _done: None)
        assert count == len(VALUES)
        with engine.connect() as connection:  # raw stored values: text, not typed columns
            stored = connection.execute(text(
                "SELECT external_id, customer_id, placed_at, total, currency FROM orders "
                "ORDER BY external_id")).all()
    finally:
        engine.dispose()
    by_sqlalchemy, by_bulk = stored[:len(VALUES)], stored[len(VALUES):]
    assert [tuple(row[1:]) for row in by_bulk] == [tuple(row[1:]) for row in by_sqlalchemy]


def test_bulk_rows_roll_back_with_the_transaction(workspace):
    engine = _engine(workspace)
    try:
        with pytest.raises(RuntimeError), engine.begin() as connection:
            customer = connection.execute(insert(customers).values(
                external_id="C1", email="a@example.com", attributes={})).inserted_primary_key[0]
            bulkwrite.insert_rows(connection, orders, ORDER_COLUMNS,
                                  [("A1", customer, *VALUES[0])], lambda _done: None)
            assert connection.execute(text("SELECT COUNT(*) FROM orders")).scalar_one() == 1
            raise RuntimeError("stop")
        with engine.connect() as connection:
            assert connection.execute(text("SELECT COUNT(*) FROM orders")).scalar_one() == 0
    finally:
        engine.dispose()
