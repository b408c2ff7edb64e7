"""`campaign import`: customers, products and order lines from CSV, all or nothing, upserted."""

from __future__ import annotations

import gc
from collections.abc import Callable, Container, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Table, delete, func, select

from engine import fields as parse
from engine.bulkwrite import insert_rows, update_rows
from engine.csvfile import Layout, count_lines, open_records, resolve_layout
from engine.errors import ImportFileError
from engine.schema import customers, order_items, orders, products

Progress = Callable[[str, int, int], None]
CHUNK = 5000
CACHE = 4096  # distinct cells remembered per column, so that repeated values are parsed once
KINDS = ("customers", "products", "orders")
Row = tuple[Any, ...]  # a record's values, one per field of its kind in _specs order


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


def _converter(spec: Spec) -> Callable[[str], Any]:
    """A cell's value: parsed, or the default when blank; repeated cells are parsed once."""
    parse_value, required, default = spec.parse, spec.required_value, spec.default

    def convert(raw: str) -> Any:
        if raw.strip():
            return parse_value(raw)
        if required:
            raise parse.BadValue("missing value")
        return default
    return lru_cache(maxsize=CACHE)(convert)


def _absent(_raw: str) -> None:
    """The value of a field whose column the file does not have."""
    return None


Plan = list[tuple[int, Callable[[str], Any]]]  # per field: its column's index, its converter


class _Importer:
    layout: Layout  # set by rows(), once it has read the header

    def __init__(self, connection: Connection, kind: str, path: Path, mapping: Mapping[str, str],
                 skip_bad_rows: bool, month_first: bool, currency: str,
                 progress: Progress | None) -> None:
        self.connection, self.path = connection, path
        self.skip_bad_rows, self.currency = skip_bad_rows, currency
        self.progress = progress or (lambda _step, _done, _total: None)
        self.specs = _specs(kind, month_first)
        self.mapping = mapping
        self.report = ImportReport(kind)
        self.problems: list[tuple[int, str]] = []
        self.bad_keys: list[tuple[int, str]] = []  # (line, raw key) of rows that did not parse

    # -- reading -------------------------------------------------------------------------
    def problem(self, line: int, message: str) -> None:
        self.problems.append((line, message))

    def rows(self) -> Iterator[tuple[int, Row, list[str]]]:
        """(line, values, cells) of good records; bad ones are noted as problems."""
        with open_records(self.path) as (header, records):
            required = [name for name, spec in self.specs.items() if spec.required_column]
            self.layout = layout = resolve_layout(self.path, header, list(self.specs), required,
                                                  self.mapping)
            total = count_lines(self.path)
            plan: Plan = [(layout.columns[name], _converter(spec)) if name in layout.columns
                          else (0, _absent) for name, spec in self.specs.items()]
            key_index = layout.columns[next(iter(self.specs))]
            for count, (line, cells) in enumerate(records, start=1):
                if count % CHUNK == 0:
                    self.progress("reading", line, total)
                row = self.parse_record(line, cells, plan)
                if row is not None:
                    yield line, row, cells
                elif key_index < len(cells) and cells[key_index].strip():
                    self.bad_keys.append((line, cells[key_index].strip()))
            self.progress("reading", total, total)

    def parse_record(self, line: int, cells: list[str], plan: Plan) -> Row | None:
        """The record's values, or None once its problem is noted."""
        if len(cells) != self.layout.width:
            self.problem(line, f"has {len(cells)} fields, the header has {self.layout.width}")
            return None
        try:
            return tuple([convert(cells[index]) for index, convert in plan])
        except parse.BadValue:
            self.explain(line, cells, plan)
            return None

    def explain(self, line: int, cells: list[str], plan: Plan) -> None:
        """Note the problem of the first cell that does not parse."""
        for name, (index, convert) in zip(self.specs, plan, strict=True):
            try:
                convert(cells[index])
            except parse.BadValue as exc:
                hint = f"; {exc.hint}" if exc.hint else ""
                self.problem(line, f"{exc.message} (column {self.layout.names[name]}){hint}")
                return

    def present(self, row: Row) -> dict[str, Any]:
        """The row's values of the fields whose columns the file has."""
        return {name: value for name, value in zip(self.specs, row, strict=True)
                if name in self.layout.columns}

    def extra(self, cells: list[str]) -> dict[str, str]:
        """The non-blank cells of columns that are no field, by column name."""
        return {name: cells[i].strip() for name, i in self.layout.extra.items()
                if cells[i].strip()}

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
        update_rows(self.connection, table, columns, updates,
                    lambda done: self.progress(step, len(inserts) + done, total))
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
    for line, parsed, cells in job.rows():
        row, layout = job.present(parsed), job.layout
        if not job.unique(seen, row["customer_id"], line, "customer", layout.names["customer_id"]):
            continue
        if not parse.looks_like_email(row["email"]):
            job.report.invalid_emails += 1
        values = {c: row[c] for c in row if c != "customer_id"}
        columns = [*values, "attributes"] if layout.extra else list(values)
        if row["customer_id"] in existing:
            ident, attributes = existing[row["customer_id"]]
            if layout.extra:
                values["attributes"] = {**attributes, **job.extra(cells)}
            updates.append({"_id": ident, **values})
        else:
            values.setdefault("subscribed", True)
            inserts.append({"external_id": row["customer_id"], "attributes": job.extra(cells),
                            **values})
    job.finish_reading()
    job.write(customers, "writing customers", inserts, updates, columns)
    job.report.lines = len(inserts) + len(updates)


def _import_products(job: _Importer) -> None:
    existing = job.ids(products, "sku")
    seen: dict[str, int] = {}
    inserts, updates, columns = [], [], []
    for line, parsed, _cells in job.rows():
        row = job.present(parsed)
        if not job.unique(seen, row["sku"], line, "product", job.layout.names["sku"]):
            continue
        columns = list(row)
        if row["sku"] in existing:
            updates.append({"_id": existing[row["sku"]], **row})
        else:
            inserts.append(row)
    job.finish_reading()
    job.write(products, "writing products", inserts, updates, [c for c in columns if c != "sku"])
    job.report.lines = len(inserts) + len(updates)


# An order line: line number, sku, quantity, unit price, product name, category
Item = tuple[int, str, int, Decimal, str | None, str | None]


@dataclass(slots=True)
class _Order:
    line: int
    customer_id: int
    placed_at: Any
    currency: str
    items: list[Item] = field(default_factory=list)

    def total(self) -> Decimal:
        return sum((item[2] * item[3] for item in self.items), Decimal(0))


def _collect_orders(job: _Importer) -> tuple[dict[str, _Order], dict[str, dict[str, Any]]]:
    """Read order lines into orders; returns them and the products the file names."""
    customer_ids = job.ids(customers, "external_id")
    collected: dict[str, _Order] = {}
    bad: dict[str, int] = {}  # order -> the bad line it is skipped for
    for line, row, _cells in job.rows():
        key, customer_key, placed_at, sku, quantity, unit_price, name, category, currency = row
        customer = customer_ids.get(customer_key)
        currency = currency or job.currency
        order = collected.get(key)
        problem = None
        if customer is None:
            problem = (f"unknown customer '{customer_key}' (column "
                       f"{job.layout.names['customer_id']}); import customers first")
        elif order is None:
            order = collected[key] = _Order(line, customer, placed_at, currency)
        elif (order.customer_id, order.placed_at, order.currency) != \
                (customer, placed_at, currency):
            problem = (f"order '{key}' differs from its line {order.line} in customer, date or "
                       f"currency (columns {job.layout.names['customer_id']}, "
                       f"{job.layout.names['placed_at']})")
        if problem:
            job.problem(line, problem)
            bad.setdefault(key, line)
            continue
        order.items.append((line, sku, quantity, unit_price, name, category))
    for line, key in job.bad_keys:
        bad.setdefault(key, line)
    for key, line in bad.items():
        dropped = collected.pop(key, None)
        if dropped and job.skip_bad_rows:  # its good lines; the bad ones are listed already
            for item in dropped.items:
                job.problem(item[0], f"skipped with order '{key}' (line {line} is bad)")
    job.finish_reading()
    named_products: dict[str, dict[str, Any]] = {}
    for order in collected.values():
        for _line, sku, _quantity, unit_price, name, category in order.items:
            if sku not in named_products:
                named_products[sku] = {"sku": sku, "name": name or sku, "category": category,
                                       "price": unit_price}
    return collected, named_products


def _create_products(job: _Importer, named_products: dict[str, dict[str, Any]]) -> dict[str, int]:
    """Insert the products the file names and the database lacks; returns all product ids."""
    product_ids = job.ids(products, "sku")
    new_products = [p for sku, p in named_products.items() if sku not in product_ids]
    for start in range(0, len(new_products), CHUNK):
        job.connection.execute(products.insert(), new_products[start:start + CHUNK])
    job.report.products_created = len(new_products)
    return job.ids(products, "sku") if new_products else product_ids


def _order_ids(job: _Importer, keys: Container[str], above: int = 0) -> dict[str, int]:
    """Ids of the orders with these keys among those whose id is above `above`."""
    return {key: ident for key, ident in job.connection.execute(
        select(orders.c.external_id, orders.c.id).where(orders.c.id > above)) if key in keys}


def _import_orders(job: _Importer) -> None:
    collected, named_products = _collect_orders(job)
    product_ids = _create_products(job, named_products)
    order_ids = _order_ids(job, collected)  # those already in the database
    replaced = list(order_ids.values())
    for start in range(0, len(replaced), CHUNK):
        job.connection.execute(delete(order_items).where(
            order_items.c.order_id.in_(replaced[start:start + CHUNK])))

    total, new = len(collected), len(collected) - len(order_ids)
    before = job.connection.execute(select(func.coalesce(func.max(orders.c.id), 0))).scalar_one()
    job.report.inserted = insert_rows(
        job.connection, orders, ("external_id", "customer_id", "placed_at", "total", "currency"),
        ((key, order.customer_id, order.placed_at, order.total(), order.currency)
         for key, order in collected.items() if key not in order_ids),
        lambda done: job.progress("writing orders", done, total))
    job.report.updated = update_rows(
        job.connection, orders, ["customer_id", "placed_at", "currency", "total"],
        [{"_id": ident, "customer_id": collected[key].customer_id,
          "placed_at": collected[key].placed_at, "currency": collected[key].currency,
          "total": collected[key].total()} for key, ident in order_ids.items()],
        lambda done: job.progress("writing orders", new + done, total))
    if new:  # the new ids are above the highest before; rows of other sessions have other keys
        found = _order_ids(job, collected, before)
        # a key is missing only if the sequence hands out ids from a per-session cache
        order_ids.update(found if len(found) == new else _order_ids(job, collected))

    count = sum(len(order.items) for order in collected.values())
    job.report.lines = insert_rows(
        job.connection, order_items, ("order_id", "product_id", "quantity", "unit_price"),
        ((order_ids[key], product_ids[item[1]], item[2], item[3])
         for key, order in collected.items() for item in order.items),
        lambda done: job.progress("writing order lines", done, count))


@contextmanager
def _paused_garbage_collector() -> Iterator[None]:
    """Pause the cycle collector: it would rescan the millions of rows held (none cyclic) often."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


_RUNNERS = {"customers": _import_customers, "products": _import_products, "orders": _import_orders}


def import_file(engine: Engine, kind: str, path: Path, *, mapping: Mapping[str, str] | None = None,
                skip_bad_rows: bool = False, month_first: bool = False, currency: str = "EUR",
                progress: Progress | None = None) -> ImportReport:
    """Import one CSV file of `kind` in a single transaction: all of it, or nothing."""
    if kind not in KINDS:
        raise ImportFileError(f"unknown import kind '{kind}'",
                              hint=f"use one of {', '.join(KINDS)}")
    with _paused_garbage_collector(), engine.begin() as connection:
        job = _Importer(connection, kind, path, mapping or {}, skip_bad_rows, month_first,
                        currency, progress)
        _RUNNERS[kind](job)
    return job.report
