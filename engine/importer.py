"""`campaign import`: customers, products and order lines from CSV, all or nothing, upserted."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Table, bindparam, delete, select, update

from engine import fields as parse
from engine.csvfile import Layout, count_lines, open_records, resolve_layout
from engine.errors import ImportFileError
from engine.schema import customers, order_items, orders, products

Progress = Callable[[str, int, int], None]
CHUNK = 5000
KINDS = ("customers", "products", "orders")


@dataclass(frozen=True)
class Spec:
    """One canonical field of an import file."""

    parse: parse.Parser
    required_column: bool = False
    required_value: bool = False
    default: Any = None  # stored for an empty cell


def _specs(kind: str, month_first: bool) -> dict[str, Spec]:
    moment, day = parse.timestamp(month_first), parse.day(month_first)
    if kind == "customers":
        return {
            "customer_id": Spec(parse.text(64), True, True),
            "email": Spec(parse.text(320), True, True),
            "first_name": Spec(parse.text(100), True, default=""),
            "last_name": Spec(parse.text(100), True, default=""),
            "locale": Spec(parse.locale), "timezone": Spec(parse.timezone),
            "country": Spec(parse.country), "city": Spec(parse.text(100)),
            "birthday": Spec(day), "signed_up_at": Spec(moment),
            "subscribed": Spec(parse.boolean, default=True),
        }
    if kind == "products":
        return {
            "sku": Spec(parse.text(64), True, True), "name": Spec(parse.text(255), True, True),
            "category": Spec(parse.text(100), True), "price": Spec(parse.money, True, True),
            "url": Spec(parse.web_url), "image_url": Spec(parse.web_url),
        }
    return {
        "order_id": Spec(parse.text(64), True, True),
        "customer_id": Spec(parse.text(64), True, True),
        "placed_at": Spec(moment, True, True), "sku": Spec(parse.text(64), True, True),
        "quantity": Spec(parse.whole_number(1, 1_000_000), True, True),
        "unit_price": Spec(parse.money, True, True),
        "product_name": Spec(parse.text(255)), "category": Spec(parse.text(100)),
        "currency": Spec(parse.currency),
    }


@dataclass
class ImportReport:
    """What an import did, for the summary line."""

    kind: str
    lines: int = 0
    inserted: int = 0
    updated: int = 0
    products_created: int = 0
    invalid_emails: int = 0
    skipped: list[str] = field(default_factory=list)


class _BadRow(Exception):
    pass


@dataclass
class _Order:
    line: int
    customer_id: int
    placed_at: Any
    currency: str
    items: list[dict[str, Any]] = field(default_factory=list)


class _Importer:
    def __init__(self, connection: Connection, kind: str, path: Path, mapping: Mapping[str, str],
                 skip_bad_rows: bool, month_first: bool, currency: str,
                 progress: Progress | None) -> None:
        self.connection, self.kind, self.path = connection, kind, path
        self.skip_bad_rows, self.currency = skip_bad_rows, currency
        self.progress = progress or (lambda _step, _done, _total: None)
        self.specs = _specs(kind, month_first)
        self.mapping = mapping
        self.report = ImportReport(kind)
        self.problems: list[tuple[int, str]] = []
        self.bad_lines: set[int] = set()
        self.bad_keys: list[tuple[int, str]] = []  # (line, raw key) of rows that did not parse

    # -- reading -------------------------------------------------------------------------
    def problem(self, line: int, message: str) -> None:
        self.problems.append((line, message))
        self.bad_lines.add(line)

    def rows(self) -> Iterator[tuple[int, dict[str, Any], dict[str, str], Layout]]:
        """Parsed good rows with their line numbers; bad ones are noted as problems."""
        with open_records(self.path) as (header, records):
            required = [name for name, spec in self.specs.items() if spec.required_column]
            layout = resolve_layout(self.path, header, list(self.specs), required, self.mapping)
            total = count_lines(self.path)
            key_index = layout.columns[next(iter(self.specs))]
            for count, (line, values) in enumerate(records, start=1):
                if count % CHUNK == 0:
                    self.progress("reading", line, total)
                try:
                    row, extra = self.parse_record(line, values, layout)
                except _BadRow:
                    if key_index < len(values) and values[key_index].strip():
                        self.bad_keys.append((line, values[key_index].strip()))
                    continue
                yield line, row, extra, layout
            self.progress("reading", total, total)

    def parse_record(self, line: int, values: list[str], layout: Layout):
        if len(values) != layout.width:
            self.problem(line, f"has {len(values)} fields, the header has {layout.width}")
            raise _BadRow
        row: dict[str, Any] = {}
        for name, index in layout.columns.items():
            spec, raw = self.specs[name], values[index]
            if not raw.strip():
                if spec.required_value:
                    self.problem(line, f"missing value (column {layout.names[name]})")
                    raise _BadRow
                row[name] = spec.default
                continue
            try:
                row[name] = spec.parse(raw)
            except parse.BadValue as exc:
                hint = f"; {exc.hint}" if exc.hint else ""
                self.problem(line, f"{exc.message} (column {layout.names[name]}){hint}")
                raise _BadRow from None
        extra = {name: values[i].strip() for name, i in layout.extra.items() if values[i].strip()}
        return row, extra

    def finish_reading(self) -> None:
        """Stop on bad lines (listed in line order), unless they are to be skipped."""
        if not self.problems:
            return
        listed = [f"{self.path}:{line}: {message}" for line, message in sorted(self.problems)]
        if self.skip_bad_rows:
            self.report.skipped.extend(listed)
            return
        count = len(listed)
        raise ImportFileError(
            f"{count} bad line{'s' * (count > 1)}, nothing was imported", path=self.path,
            problems=listed,
            hint="fix the lines listed above, or pass --skip-bad-rows to import the good rows "
                 "and list the bad ones")

    # -- writing -------------------------------------------------------------------------
    def ids(self, table: Table, key: str) -> dict[str, int]:
        return {k: i for k, i in self.connection.execute(select(table.c[key], table.c.id))}

    def write(self, table: Table, step: str, inserts: list[dict], updates: list[dict],
              columns: list[str]) -> None:
        total = len(inserts) + len(updates)
        for start in range(0, len(inserts), CHUNK):
            self.connection.execute(table.insert(), inserts[start:start + CHUNK])
            self.progress(step, min(start + CHUNK, len(inserts)), total)
        if updates and columns:
            statement = update(table).where(table.c.id == bindparam("_id")).values(
                {name: bindparam(name) for name in columns})
            for start in range(0, len(updates), CHUNK):
                self.connection.execute(statement, updates[start:start + CHUNK])
                self.progress(step, len(inserts) + min(start + CHUNK, len(updates)), total)
        self.report.inserted += len(inserts)
        self.report.updated += len(updates)

    def unique(self, seen: dict[str, int], key: str, line: int, label: str, column: str) -> bool:
        if key in seen:
            self.problem(line, f"{label} '{key}' already appears on line {seen[key]} "
                               f"(column {column})")
            return False
        seen[key] = line
        return True


def _import_customers(job: _Importer) -> None:
    existing = {external_id: (ident, attributes) for external_id, ident, attributes in
                job.connection.execute(select(customers.c.external_id, customers.c.id,
                                              customers.c.attributes))}
    seen: dict[str, int] = {}
    inserts, updates, columns = [], [], []
    for line, row, extra, layout in job.rows():
        if not job.unique(seen, row["customer_id"], line, "customer", layout.names["customer_id"]):
            continue
        if not parse.looks_like_email(row["email"]):
            job.report.invalid_emails += 1
        values = {c: row[c] for c in row if c != "customer_id"}
        columns = [*values, "attributes"] if layout.extra else list(values)
        if row["customer_id"] in existing:
            ident, attributes = existing[row["customer_id"]]
            if layout.extra:
                values["attributes"] = {**attributes, **extra}
            updates.append({"_id": ident, **values})
        else:
            values.setdefault("subscribed", True)
            inserts.append({"external_id": row["customer_id"], "attributes": extra, **values})
    job.finish_reading()
    job.write(customers, "writing customers", inserts, updates, columns)
    job.report.lines = len(inserts) + len(updates)


def _import_products(job: _Importer) -> None:
    existing = job.ids(products, "sku")
    seen: dict[str, int] = {}
    inserts, updates, columns = [], [], []
    for line, row, _extra, layout in job.rows():
        if not job.unique(seen, row["sku"], line, "product", layout.names["sku"]):
            continue
        columns = list(row)
        if row["sku"] in existing:
            updates.append({"_id": existing[row["sku"]], **row})
        else:
            inserts.append(row)
    job.finish_reading()
    job.write(products, "writing products", inserts, updates, [c for c in columns if c != "sku"])
    job.report.lines = len(inserts) + len(updates)


def _collect_orders(job: _Importer) -> tuple[dict[str, _Order], dict[str, dict[str, Any]]]:
    """Read order lines into orders; returns them and the products the file names."""
    customer_ids = job.ids(customers, "external_id")
    collected: dict[str, _Order] = {}
    lines_of: dict[str, list[int]] = {}
    bad: dict[str, int] = {}
    for line, row, _extra, layout in job.rows():
        key = row["order_id"]
        lines_of.setdefault(key, []).append(line)
        customer = customer_ids.get(row["customer_id"])
        currency = row.get("currency") or job.currency
        order = collected.get(key)
        problem = None
        if customer is None:
            problem = (f"unknown customer '{row['customer_id']}' (column "
                       f"{layout.names['customer_id']}); import customers first")
        elif order is None:
            order = collected[key] = _Order(line, customer, row["placed_at"], currency)
        elif (order.customer_id, order.placed_at, order.currency) != \
                (customer, row["placed_at"], currency):
            problem = (f"order '{key}' differs from its line {order.line} in customer, date or "
                       f"currency (columns {layout.names['customer_id']}, "
                       f"{layout.names['placed_at']})")
        if problem:
            job.problem(line, problem)
            bad.setdefault(key, line)
            continue
        order.items.append(row)
    for line, key in job.bad_keys:
        lines_of.setdefault(key, []).append(line)
        bad.setdefault(key, line)
    for key, line in bad.items():
        collected.pop(key, None)
        for other in lines_of[key]:
            if other not in job.bad_lines and job.skip_bad_rows:
                job.problem(other, f"skipped with order '{key}' (line {line} is bad)")
    job.finish_reading()
    named_products: dict[str, dict[str, Any]] = {}
    for order in collected.values():
        for item in order.items:
            named_products.setdefault(item["sku"], {
                "sku": item["sku"], "name": item.get("product_name") or item["sku"],
                "category": item.get("category"), "price": item["unit_price"]})
    return collected, named_products


def _import_orders(job: _Importer) -> None:
    collected, named_products = _collect_orders(job)
    product_ids = job.ids(products, "sku")
    new_products = [p for sku, p in named_products.items() if sku not in product_ids]
    for start in range(0, len(new_products), CHUNK):
        job.connection.execute(products.insert(), new_products[start:start + CHUNK])
    job.report.products_created = len(new_products)
    if new_products:
        product_ids = job.ids(products, "sku")
    existing = job.ids(orders, "external_id")
    inserts, updates = [], []
    for key, order in collected.items():
        values = {"customer_id": order.customer_id, "placed_at": order.placed_at,
                  "currency": order.currency,
                  "total": sum((i["quantity"] * i["unit_price"] for i in order.items), Decimal(0))}
        if key in existing:
            updates.append({"_id": existing[key], **values})
        else:
            inserts.append({"external_id": key, **values})
    replaced = [u["_id"] for u in updates]
    for start in range(0, len(replaced), CHUNK):
        job.connection.execute(delete(order_items).where(
            order_items.c.order_id.in_(replaced[start:start + CHUNK])))
    job.write(orders, "writing orders", inserts, updates,
              ["customer_id", "placed_at", "currency", "total"])
    order_ids = job.ids(orders, "external_id")
    items = [{"order_id": order_ids[key], "product_id": product_ids[item["sku"]],
              "quantity": item["quantity"], "unit_price": item["unit_price"]}
             for key, order in collected.items() for item in order.items]
    job.report.lines = len(items)
    for start in range(0, len(items), CHUNK):
        job.connection.execute(order_items.insert(), items[start:start + CHUNK])
        job.progress("writing order lines", min(start + CHUNK, len(items)), len(items))


_RUNNERS = {"customers": _import_customers, "products": _import_products, "orders": _import_orders}


def import_file(engine: Engine, kind: str, path: Path, *, mapping: Mapping[str, str] | None = None,
                skip_bad_rows: bool = False, month_first: bool = False, currency: str = "EUR",
                progress: Progress | None = None) -> ImportReport:
    """Import one CSV file of `kind` in a single transaction: all of it, or nothing."""
    if kind not in KINDS:
        raise ImportFileError(f"unknown import kind '{kind}'",
                              hint=f"use one of {', '.join(KINDS)}")
    with engine.begin() as connection:
        job = _Importer(connection, kind, path, mapping or {}, skip_bad_rows, month_first,
                        currency, progress)
        _RUNNERS[kind](job)
    return job.report
