"""Database connections and schema migrations (Alembic), the same on SQLite, PostgreSQL, MariaDB."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL
from sqlalchemy.exc import OperationalError

from engine.errors import DatabaseError

MIGRATIONS = Path(__file__).parent / "migrations"


def describe(url: URL) -> str:
    """Where the database is, for messages (never the password)."""
    if url.get_backend_name() == "sqlite":
        return url.database or ":memory:"
    return f"{url.host or 'localhost'}:{url.port or ''}".rstrip(":") + f"/{url.database or ''}"


def connect(url: URL) -> Engine:
    """An Engine for `url`; SQLite enforces foreign keys, MariaDB speaks utf8mb4."""
    if url.get_backend_name() in {"mysql", "mariadb"} and "charset" not in url.query:
        url = url.update_query_dict({"charset": "utf8mb4"})
    engine = create_engine(url)
    if url.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    elif url.get_backend_name() in {"mysql", "mariadb"}:
        event.listen(engine, "connect", _mariadb_session)
    return engine


def _mariadb_session(dbapi_connection, _record) -> None:
    # A segment is one SELECT with an IN (subquery) per condition. Turned into semi-joins,
    # thirty of them make MariaDB's join planner search for minutes before running anything;
    # as plain (materialized) subqueries they plan at once.
    cursor = dbapi_connection.cursor()
    cursor.execute("SET SESSION optimizer_switch = 'semijoin=off'")
    cursor.close()


def _unicode_lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # SQLite's own lower() knows only ASCII; PostgreSQL's and MariaDB's know all letters.
    dbapi_connection.create_function("lower", 1, _unicode_lower, deterministic=True)
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str:
    """The newest schema revision this version of the engine knows."""
    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The schema revision of the database, or None for an empty one."""
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    except OperationalError as exc:
        raise unreachable(engine.url, exc) from exc


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Migrate the schema to the newest revision; returns (before, after)."""
    before = current_revision(engine)
    config = _alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    return before, head_revision()


def require_current(engine: Engine) -> None:
    """Refuse to work on a schema older or newer than this engine's."""
    current, head = current_revision(engine), head_revision()
    if current == head:
        return
    where = describe(engine.url)
    if current is None:
        raise DatabaseError("the database has no campaign schema yet", path=where,
                            hint="run 'campaign db upgrade' to create it")
    scripts = ScriptDirectory.from_config(_alembic_config())
    known = {script.revision for script in scripts.walk_revisions()}
    if current not in known:
        raise DatabaseError(f"the database schema ({current}) is newer than this campaign version",
                            path=where, hint="upgrade campaign (pip install -U campaign)")
    raise DatabaseError(f"the database schema is at revision {current}, this version needs {head}",
                        path=where, hint="run 'campaign db upgrade'")


def unreachable(url: URL, exc: Exception) -> DatabaseError:
    """A DatabaseError for a server that cannot be reached or refused the login."""
    reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
    return DatabaseError(f"cannot connect to the database: {reason}", path=describe(url),
                         hint="check that the server runs and that database_url in "
                              "campaign.toml or CAMPAIGN_DATABASE_URL is right")
