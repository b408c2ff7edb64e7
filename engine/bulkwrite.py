"""Writing many rows in the caller's transaction: COPY on PostgreSQL, executemany elsewhere."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from itertools import islice
from typing import Any

from sqlalchemy import Connection, Table, bindparam, update

CHUNK = 10_000  # rows per executemany call, and between two progress reports
# positional placeholders: sqlite3's; PyMySQL's, which takes %s with a tuple in both styles
_MARKERS = {"qmark": "?", "format": "%s", "pyformat": "%s"}


def insert_rows(connection: Connection, table: Table, columns: Sequence[str],
                rows: Iterable[Sequence[Any]], done: Callable[[int], None]) -> int:
    """Insert `rows` (values in `columns` order); returns their count.

    `done(count)` is called after each chunk of rows, not at all for none.

    PostgreSQL (psycopg) streams them with COPY on the same connection, so in the same
    transaction. Other drivers get executemany on the plain SQL, with SQLAlchemy's own
    conversions of the values (SQLite stores dates as text, amounts as floats), which skips
    SQLAlchemy's per-row work; PyMySQL sends multi-row INSERTs for it.
    """
    if connection.dialect.driver == "psycopg":
        return _copy(connection, table, columns, rows, done)
    return _executemany(connection, table, columns, rows, done)


def _names(connection: Connection, table: Table, columns: Sequence[str]) -> tuple[str, str]:
    quote = connection.dialect.identifier_preparer
    return quote.format_table(table), ", ".join(quote.quote(name) for name in columns)


def _copy(connection: Connection, table: Table, columns: Sequence[str],
          rows: Iterable[Sequence[Any]], done: Callable[[int], None]) -> int:
    target, names = _names(connection, table, columns)
    count = 0
    with connection.connection.driver_connection.cursor() as cursor, \
            cursor.copy(f"COPY {target} ({names}) FROM STDIN") as copy:
        for count, row in enumerate(rows, start=1):
            copy.write_row(row)
            if count % CHUNK == 0:
                done(count)
    if count % CHUNK:
        done(count)
    return count


def _executemany(connection: Connection, table: Table, columns: Sequence[str],
                 rows: Iterable[Sequence[Any]], done: Callable[[int], None]) -> int:
    dialect = connection.dialect
    target, names = _names(connection, table, columns)
    markers = ", ".join([_MARKERS[dialect.paramstyle]] * len(columns))
    statement = f"INSERT INTO {target} ({names}) VALUES ({markers})"
    processors = [(index, process) for index, name in enumerate(columns)
                  if (process := table.c[name].type.dialect_impl(dialect).bind_processor(dialect))]
    count, rows = 0, iter(rows)
    while batch := [tuple(row) for row in islice(rows, CHUNK)]:
        if processors:  # convert column by column: one map() per column instead of a call per row
            values = list(zip(*batch, strict=True))
            for index, process in processors:
                values[index] = tuple(map(process, values[index]))
            batch = list(zip(*values, strict=True))
        connection.exec_driver_sql(statement, batch)
        count += len(batch)
        done(count)
    return count


def update_rows(connection: Connection, table: Table, columns: Sequence[str],
                rows: list[dict[str, Any]], done: Callable[[int], None]) -> int:
    """UPDATE `columns` of the rows whose id is their `_id`; returns their count.

    `done(count)` is called after each chunk of rows, not at all for none.
    """
    statement = update(table).where(table.c.id == bindparam("_id")).values(
        {name: bindparam(name) for name in columns})
    for start in range(0, len(rows), CHUNK):
        connection.execute(statement, rows[start:start + CHUNK])
        done(min(start + CHUNK, len(rows)))
    return len(rows)
