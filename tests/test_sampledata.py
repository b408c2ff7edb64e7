"""The sample purchase-history generator: determinism, format, integrity and realism."""

from __future__ import annotations

import csv
import re
from collections import Counter
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from engine import sampledata
from engine.sampledata import SampleSummary, generate

DATA = Path(__file__).resolve().parents[1] / "data"
FILES = ("customers.csv", "products.csv", "orders.csv")
UNTIL = datetime(2026, 11, 1)
CUSTOMER_HEADER = ["customer_id", "email", "first_name", "last_name", "locale", "timezone",
                   "country", "city", "birthday", "signed_up_at", "subscribed", "source"]
PRODUCT_HEADER = ["sku", "name", "category", "price", "url", "image_url"]
ORDER_HEADER = ["order_id", "customer_id", "placed_at", "sku", "quantity", "unit_price",
                "product_name", "category", "currency"]
VALID_EMAIL = re.compile(r"[a-z0-9._]+@(example\.(com|org|net)|[a-z]+\.example)")


def read(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def moment(text: str) -> datetime:
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", text), text
    return datetime.fromisoformat(text[:-1])


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SampleSummary]:
    out = tmp_path_factory.mktemp("sample") / "new"  # generate() creates it
    return out, generate(out)


@pytest.fixture(scope="module")
def customers(sample) -> list[dict[str, str]]:
    return read(sample[0] / "customers.csv")


@pytest.fixture(scope="module")
def products(sample) -> list[dict[str, str]]:
    return read(sample[0] / "products.csv")


@pytest.fixture(scope="module")
def orders(sample) -> list[dict[str, str]]:
    return read(sample[0] / "orders.csv")


def placed_by_customer(orders: list[dict[str, str]]) -> dict[str, list[datetime]]:
    times: dict[str, set[str]] = {}
    for line in orders:
        times.setdefault(line["customer_id"], set()).add(line["placed_at"])
    return {c: sorted(moment(t) for t in placed) for c, placed in times.items()}


def test_same_seed_gives_identical_bytes_and_another_seed_differs(tmp_path: Path) -> None:
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        generate(tmp_path / name, customers=300, seed=seed)
    for file in FILES:
        assert (tmp_path / "a" / file).read_bytes() == (tmp_path / "b" / file).read_bytes()
    for file in ("customers.csv", "orders.csv"):
        assert (tmp_path / "a" / file).read_bytes() != (tmp_path / "c" / file).read_bytes()


def test_shipped_data_is_the_default_output(sample) -> None:
    for file in FILES:
        assert (DATA / file).read_bytes() == (sample[0] / file).read_bytes(), \
            f"data/{file} is stale: regenerate it with engine.sampledata.generate(Path('data'))"


def test_files_are_utf8_with_exact_headers_and_unix_newlines(sample) -> None:
    for file, header in zip(FILES, (CUSTOMER_HEADER, PRODUCT_HEADER, ORDER_HEADER), strict=True):
        raw = (sample[0] / file).read_bytes()
        assert not raw.startswith(b"\xef\xbb\xbf") and b"\r" not in raw
        assert raw.decode("utf-8").split("\n", 1)[0] == ",".join(header)


def test_summary_counts_match_the_files(sample, customers, products, orders) -> None:
    assert sample[1] == SampleSummary(customers=2000, products=len(products),
                                      orders=len({o["order_id"] for o in orders}),
                                      order_lines=len(orders))
    assert len(customers) == 2000
    assert 50 <= len(products) <= 80
    assert 4 <= len(orders) / len(customers) <= 8


def test_customer_ids_and_emails_are_unique(customers) -> None:
    assert [c["customer_id"] for c in customers[:2]] == ["C0000001", "C0000002"]
    assert len({c["customer_id"] for c in customers}) == len(customers)
    emails = [c["email"] for c in customers]
    assert len(set(emails)) == len(emails)
    invalid = [e for e in emails if not VALID_EMAIL.fullmatch(e)]
    assert 1 <= len(invalid) <= len(emails) * 0.015
    assert all(e.strip() and ("@" not in e or " " in e) for e in invalid)


def test_customers_look_international(customers) -> None:
    names = [c["first_name"] + c["last_name"] for c in customers]
    assert sum(not n.isascii() for n in names) > len(names) * 0.2
    assert sum("'" in n for n in names) >= 10
    assert {"DE", "FR", "ES", "IT", "PL", "NL", "IE", "GB", "US", "SE", "TR", "VN"} <= \
        {c["country"] for c in customers}
    assert any((c["city"], c["timezone"]) == ("Berlin", "Europe/Berlin") for c in customers)
    assert {c["timezone"] for c in customers if c["country"] == "US"} >= \
        {"America/New_York", "America/Los_Angeles"}
    for c in customers:
        assert c["locale"].endswith("_" + c["country"])
        assert c["subscribed"] in ("true", "false")
        assert c["source"] in ("web", "store", "instagram", "referral", "newsletter")
        assert c["birthday"] == "" or date.fromisoformat(c["birthday"]).year < 2010
        assert UNTIL - timedelta(days=4 * 366) <= moment(c["signed_up_at"]) < UNTIL
    assert 0.6 < sum(bool(c["birthday"]) for c in customers) / len(customers) < 0.8
    assert 0.85 < sum(c["subscribed"] == "true" for c in customers) / len(customers) < 0.97


def test_products(products) -> None:
    by_sku = {p["sku"]: p for p in products}
    assert len(by_sku) == len(products)
    assert {p["category"] for p in products} == {"Garden", "Kitchen", "Home", "Outdoor", "Books",
                                                 "Gifts"}
    assert by_sku["SEED-01"]["category"] == by_sku["SEED-02"]["category"] == "Garden"
    assert any(not p["name"].isascii() for p in products)
    assert any("&" in p["name"] for p in products)
    for p in products:
        assert re.fullmatch(r"\d+\.\d\d", p["price"])
        slug = p["sku"].lower()
        assert p["url"] == f"https://greenshop.example/products/{slug}"
        assert p["image_url"] == f"https://greenshop.example/img/{slug}.jpg"


def test_order_lines_reference_customers_and_products(customers, products, orders) -> None:
    known_customers = {c["customer_id"] for c in customers}
    by_sku = {p["sku"]: p for p in products}
    currency = {"GB": "GBP", "US": "USD"}
    country = {c["customer_id"]: c["country"] for c in customers}
    for line in orders:
        assert line["customer_id"] in known_customers
        product = by_sku[line["sku"]]
        assert (line["product_name"], line["category"]) == (product["name"], product["category"])
        assert 1 <= int(line["quantity"]) <= 4
        assert re.fullmatch(r"\d+\.\d\d", line["unit_price"])
        price, paid = Decimal(product["price"]), Decimal(line["unit_price"])
        assert price * Decimal("0.79") <= paid <= price
        assert line["currency"] == currency.get(country[line["customer_id"]], "EUR")
    assert Counter(line["quantity"] for line in orders).most_common(1)[0][0] == "1"
    assert any(line["unit_price"] != by_sku[line["sku"]]["price"] for line in orders)


def test_lines_of_an_order_are_consecutive_and_consistent(orders) -> None:
    finished: set[str] = set()
    groups: list[list[dict[str, str]]] = []
    for line in orders:
        if not groups or groups[-1][0]["order_id"] != line["order_id"]:
            assert line["order_id"] not in finished, "lines of an order must be consecutive"
            if groups:
                finished.add(groups[-1][0]["order_id"])
            groups.append([])
        groups[-1].append(line)
    assert re.fullmatch(r"O\d{8}", groups[0][0]["order_id"])
    for group in groups:
        assert 1 <= len(group) <= 5
        assert len({line["sku"] for line in group}) == len(group)
        assert len({(x["customer_id"], x["placed_at"], x["currency"]) for x in group}) == 1
    assert Counter(len(g) for g in groups)[1] > len(groups) * 0.3
    assert any(len(g) >= 4 for g in groups)


def test_orders_fall_between_sign_up_and_until(customers, orders) -> None:
    signed_up = {c["customer_id"]: moment(c["signed_up_at"]) for c in customers}
    for line in orders:
        assert signed_up[line["customer_id"]] <= moment(line["placed_at"]) < UNTIL


def test_other_until_is_respected(tmp_path: Path) -> None:
    generate(tmp_path, customers=200, until=date(2024, 3, 1))
    placed = [moment(line["placed_at"]) for line in read(tmp_path / "orders.csv")]
    assert max(placed) < datetime(2024, 3, 1)
    assert max(placed) > datetime(2024, 1, 1)


def test_customer_segments(customers, orders) -> None:
    times = placed_by_customer(orders)
    counts = [len(times.get(c["customer_id"], ())) for c in customers]
    assert 0.15 < counts.count(0) / len(counts) < 0.35
    assert counts.count(1) > len(counts) * 0.2
    repeat = [t for t in times.values() if len(t) >= 3]
    assert max(len(t) for t in repeat) <= 20
    lapsed = [t for t in repeat if UNTIL - t[-1] > timedelta(days=90)]
    active = [t for t in repeat if UNTIL - t[-1] < timedelta(days=30)]
    assert len(lapsed) > len(customers) * 0.05
    assert len(active) > len(customers) * 0.05


def share(orders: list[dict[str, str]], category: str, months: set[int]) -> float:
    lines = [o for o in orders if int(o["placed_at"][5:7]) in months]
    return sum(o["category"] == category for o in lines) / len(lines)


def test_seasonality(orders) -> None:
    assert share(orders, "Garden", {3, 4, 5, 6}) > 1.5 * share(orders, "Garden", {11, 12, 1})
    assert share(orders, "Gifts", {12}) > 2 * share(orders, "Gifts", {3, 4, 5, 6, 7, 8, 9})
    assert share(orders, "Outdoor", {6, 7, 8}) > 1.5 * share(orders, "Outdoor", {11, 12, 1, 2})


def test_seed_packets_are_bought_with_garden_tools(orders) -> None:
    baskets: dict[str, set[str]] = {}
    for line in orders:
        baskets.setdefault(line["order_id"], set()).add(line["sku"])
    multi = [b for b in baskets.values() if len(b) > 1]
    seeds, tools = {"SEED-01", "SEED-02"}, {"GARD-001", "GARD-005"}  # trowel, gloves

    def tool_rate(group: list[set[str]]) -> float:
        return sum(bool(b & tools) for b in group) / len(group)

    with_seeds = [b for b in multi if b & seeds]
    assert len(with_seeds) > 100
    assert tool_rate(with_seeds) > 1.4 * tool_rate([b for b in multi if not b & seeds])


def test_progress_reports_every_customer_once(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sampledata, "PROGRESS_EVERY", 100)
    calls: list[int] = []
    generate(tmp_path, customers=250, progress=calls.append)
    assert calls == [100, 100, 50]


def test_cli_writes_files_the_importer_accepts(sqlite_workspace) -> None:
    folder = sqlite_workspace.root / "generated"
    result = sqlite_workspace.run("sample-data", str(folder), "--customers", "150", "--seed", "7")
    assert result.exit_code == 0, result.output
    summary = generate(sqlite_workspace.root / "again", customers=150, seed=7)
    assert result.stdout == (
        f"Wrote 150 customers, {summary.products:,} products, {summary.orders:,} orders "
        f"({summary.order_lines:,} order lines) to {folder}.\n")
    for kind in ("customers", "products", "orders"):
        assert sqlite_workspace.run("import", kind, str(folder / f"{kind}.csv")).exit_code == 0
    assert sqlite_workspace.rows("SELECT COUNT(*) FROM order_items") == [(summary.order_lines,)]
