"""Shared fixtures: a workspace in tmp_path, the CLI runner, and real databases.

PostgreSQL and MariaDB tests use the servers named by CAMPAIGN_TEST_POSTGRES_URL and
CAMPAIGN_TEST_MARIADB_URL (defaults: local servers, database `test`). They skip when no server
answers, unless CAMPAIGN_REQUIRE_DATABASES=1 (set by .ci/run), which turns a skip into a failure.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import Engine, MetaData, create_engine, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from cli import cli
from tests.shops import Shop

SERVER_URLS = {
    "postgresql": os.environ.get("CAMPAIGN_TEST_POSTGRES_URL",
                                 "postgresql+psycopg://postgres@127.0.0.1:5432/test"),
    "mariadb": os.environ.get("CAMPAIGN_TEST_MARIADB_URL",
                              "mysql+pymysql://root@127.0.0.1:3306/test?charset=utf8mb4"),
}
REQUIRED = os.environ.get("CAMPAIGN_REQUIRE_DATABASES") == "1"
BACKENDS = ["sqlite", "postgresql", "mariadb"]

SETTINGS = """\
database_url = "sqlite:///campaign.db"

[shop]
name = "Test Shop"
postal_address = "Example Street 1, 10115 Berlin, Germany"
base_url = "https://shop.example"
"""


def _empty_server(url: str) -> str:
    """Connect, drop every table, and return the URL; skip (or fail) when unreachable."""
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(text("DROP SCHEMA public CASCADE"))
                connection.execute(text("CREATE SCHEMA public"))
            else:
                existing = MetaData()
                existing.reflect(connection)
                connection.execute(text("SET FOREIGN_KEY_CHECKS=0"))
                for table in existing.sorted_tables:
                    connection.execute(text(f"DROP TABLE `{table.name}`"))
                connection.execute(text("SET FOREIGN_KEY_CHECKS=1"))
    except OperationalError as exc:
        where = make_url(url).render_as_string(hide_password=True)
        reason = f"no database server answers at {where}: {str(exc.orig).splitlines()[0]}"
        if REQUIRED:
            pytest.fail(f"{reason} (CAMPAIGN_REQUIRE_DATABASES=1 makes it mandatory)")
        pytest.skip(reason)
    finally:
        engine.dispose()
    return url


@pytest.fixture(params=BACKENDS)
def database_url(request, tmp_path: Path) -> str:
    """A URL to an empty database of each kind: a new SQLite file, or a wiped server database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'campaign.db'}"
    return _empty_server(SERVER_URLS[request.param])


@dataclass
class Workspace:
    """A workspace folder in tmp_path and a way to run the CLI inside it."""

    root: Path
    database_url: str

    def run(self, *args: str, input: str | None = None) -> Result:
        runner = CliRunner(env={"CAMPAIGN_DATABASE_URL": self.database_url,
                                "CAMPAIGN_WORKSPACE": str(self.root)})
        return runner.invoke(cli, list(args), input=input, catch_exceptions=False)

    def write(self, name: str, content: str | bytes) -> Path:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return path

    def engine(self) -> Engine:
        return create_engine(self.database_url)

    def rows(self, sql: str) -> list[tuple]:
        engine = self.engine()
        try:
            with engine.connect() as connection:
                return [tuple(row) for row in connection.execute(text(sql))]
        finally:
            engine.dispose()

    def tables(self) -> set[str]:
        engine = self.engine()
        try:
            return set(inspect(engine).get_table_names())
        finally:
            engine.dispose()


@pytest.fixture
def workspace(tmp_path: Path, database_url: str) -> Workspace:
    """An empty workspace on each kind of database, its schema created by `db upgrade`."""
    root = tmp_path / "shop"
    root.mkdir()
    (root / "campaign.toml").write_text(SETTINGS, encoding="utf-8")
    space = Workspace(root, database_url)
    result = space.run("db", "upgrade")
    assert result.exit_code == 0, result.output
    return space


@pytest.fixture
def sqlite_workspace(tmp_path: Path) -> Workspace:
    """An empty workspace on a new SQLite file only."""
    root = tmp_path / "shop"
    root.mkdir()
    (root / "campaign.toml").write_text(SETTINGS, encoding="utf-8")
    return Workspace(root, f"sqlite:///{root / 'campaign.db'}")


REPO = Path(__file__).resolve().parent.parent
EXAMPLE_FILES = ("campaign.toml", "segments.yaml", "campaigns", "templates", "data")


def copy_example(root: Path) -> None:
    """Copy the repository's example workspace files into `root`."""
    root.mkdir(parents=True, exist_ok=True)
    for name in EXAMPLE_FILES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, root / name)
        else:
            shutil.copy(source, root / name)


@pytest.fixture
def example_shop(tmp_path: Path) -> Workspace:
    """A copy of the example workspace on its own SQLite file, filled from the sample data."""
    root = tmp_path / "shop"
    copy_example(root)
    space = Workspace(root, f"sqlite:///{root / 'campaign.db'}")
    assert space.run("db", "status").exit_code == 0
    return space


@pytest.fixture(scope="session")
def seeded_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example workspace's sample history in a SQLite file, imported once per session."""
    from engine.bootstrap import open_database
    from engine.workspace import open_workspace
    path = tmp_path_factory.mktemp("seeded") / "campaign.db"
    settings = open_workspace(REPO, environ={"CAMPAIGN_DATABASE_URL": f"sqlite:///{path}"}).settings
    open_database(settings, lambda _message: None).dispose()
    return path


@pytest.fixture
def shop(tmp_path: Path) -> Shop:
    """The example workspace on SQLite with the ten-customer campaign `ten` (tests/shops.py)."""
    space = Shop(tmp_path)
    assert space.run("db", "status").exit_code == 0
    return space
