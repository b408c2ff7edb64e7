"""SQL functions that behave alike on SQLite, PostgreSQL and MariaDB, for the segment compiler.

Text is compared byte by byte (MariaDB's default collation ignores case and accents). JSON
values are tested for their kind before use: SQLAlchemy's `as_integer()` turns a text answer
into 0 on SQLite and MariaDB and fails on PostgreSQL, and `as_string()` makes 10 equal "10".
"""

from __future__ import annotations

from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import GenericFunction
from sqlalchemy.types import Boolean, String


class folded(GenericFunction):  # noqa: N801 - reads like the SQL function it stands for
    """lower(x), compared byte by byte (MariaDB's default collation ignores accents)."""

    type = String()
    inherit_cache = True


class exact(GenericFunction):  # noqa: N801
    """x itself, compared byte by byte on every database."""

    type = String()
    inherit_cache = True


class json_integer(GenericFunction):  # noqa: N801
    """True when the JSON value x (an index like `column[key]`) is a whole number of at most
    9 digits, which every database casts to an integer without error."""

    type = Boolean()
    inherit_cache = True


class json_text(GenericFunction):  # noqa: N801
    """True when the JSON value x (an index like `column[key]`) is a string."""

    type = Boolean()
    inherit_cache = True


def _argument(element, compiler, **kw) -> str:
    return compiler.process(element.clauses, **kw)


@compiles(folded)
def _folded(element, compiler, **kw) -> str:
    return f"lower({_argument(element, compiler, **kw)})"


@compiles(folded, "mysql")
@compiles(folded, "mariadb")
def _folded_mysql(element, compiler, **kw) -> str:
    return f"(lower({_argument(element, compiler, **kw)}) COLLATE utf8mb4_bin)"


@compiles(exact)
def _exact(element, compiler, **kw) -> str:
    return _argument(element, compiler, **kw)


@compiles(exact, "mysql")
@compiles(exact, "mariadb")
def _exact_mysql(element, compiler, **kw) -> str:
    return f"({_argument(element, compiler, **kw)} COLLATE utf8mb4_bin)"


def _column_and_path(element, compiler, **kw) -> str:
    """`column, '$."key"'` of the argument column[key], for SQLite's json_type(): the value
    SQLite renders for column[key] has lost its kind (true has become 1)."""
    index = element.clauses.clauses[0]
    return f"{compiler.process(index.left, **kw)}, {compiler.process(index.right, **kw)}"


@compiles(json_integer)
def _json_integer(element, compiler, **kw) -> str:
    where = _column_and_path(element, compiler, **kw)
    return (f"(json_type({where}) = 'integer' AND "
            f"abs(json_extract({where})) <= 999999999)")


@compiles(json_integer, "postgresql")
def _json_integer_postgresql(element, compiler, **kw) -> str:
    value = _argument(element, compiler, **kw)
    return (f"(json_typeof({value}) = 'number' AND "
            f"CAST({value} AS TEXT) ~ '^-?[0-9]{{1,9}}$')")


@compiles(json_integer, "mysql")
@compiles(json_integer, "mariadb")
def _json_integer_mysql(element, compiler, **kw) -> str:
    value = _argument(element, compiler, **kw)
    return f"(JSON_TYPE({value}) = 'INTEGER' AND length(trim(LEADING '-' FROM {value})) <= 9)"


@compiles(json_text)
def _json_text(element, compiler, **kw) -> str:
    return f"(json_type({_column_and_path(element, compiler, **kw)}) = 'text')"


@compiles(json_text, "postgresql")
def _json_text_postgresql(element, compiler, **kw) -> str:
    return f"(json_typeof({_argument(element, compiler, **kw)}) = 'string')"


@compiles(json_text, "mysql")
@compiles(json_text, "mariadb")
def _json_text_mysql(element, compiler, **kw) -> str:
    return f"(JSON_TYPE({_argument(element, compiler, **kw)}) = 'STRING')"


def like_pattern(text: str) -> str:
    """%text% with LIKE's wildcards in `text` escaped by '/'."""
    escaped = text.replace("/", "//").replace("%", "/%").replace("_", "/_")
    return f"%{escaped}%"
