"""The database: created on first use (SQLite), migrated by `campaign db upgrade`, same schema."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine

from engine import db
from engine.schema import metadata
from tests.conftest import BACKENDS, SETTINGS, Workspace

SERVERS = [backend for backend in BACKENDS if backend != "sqlite"]


def test_new_sqlite_database_is_created_on_first_use_and_says_so(sqlite_workspace):
    result = sqlite_workspace.run("db", "status")
    assert result.exit_code == 0, result.output
    path = sqlite_workspace.root / "campaign.db"
    head = db.head_revision()
    assert head == "0005"
    assert result.stderr == f"Created a new database at {path} (schema {head}).\n"
    assert result.stdout == (f"Database: {path} (schema {head})\n  customers: 0\n  products: 0\n"
                             "  orders: 0\n  order items: 0\n")
    assert sqlite_workspace.run("db", "status").stderr == ""


def with_sample_data(workspace, order_customer: str):
    """Point the workspace at a data/ folder whose one order belongs to `order_customer`."""
    root = workspace.root
    (root / "campaign.toml").write_text('sample_data = "data"\n' +
                                        (root / "campaign.toml").read_text())
    workspace.write("data/customers.csv", "customer_id,email,first_name,last_name\n"
                                          "C1,a@example.com,Ann,Lee\n")
    workspace.write("data/products.csv", "sku,name,category,price\nP1,Pot,Garden,2.00\n")
    workspace.write("data/orders.csv", "order_id,customer_id,placed_at,sku,quantity,unit_price\n"
                                       f"O1,{order_customer},2026-01-01,P1,2,2.00\n")


def test_new_sqlite_database_is_seeded_from_sample_data(sqlite_workspace):
    with_sample_data(sqlite_workspace, "C1")
    result = sqlite_workspace.run("db", "status")
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines()[1] == ("Imported the sample purchase history from data/: "
                                             "1 customers, 1 products, 1 orders.")
    assert "  order items: 1\n" in result.stdout


def test_failed_seeding_leaves_no_half_built_database(sqlite_workspace):
    with_sample_data(sqlite_workspace, "C9")
    result = sqlite_workspace.run("db", "status")
    assert result.exit_code == 1
    assert "data/orders.csv:2: unknown customer 'C9'" in result.stderr
    assert not (sqlite_workspace.root / "campaign.db").exists()


@pytest.mark.parametrize("database_url", SERVERS, indirect=True)
def test_server_database_needs_an_explicit_upgrade(tmp_path, database_url):
    root = tmp_path / "shop"
    root.mkdir()
    (root / "campaign.toml").write_text(SETTINGS)
    space = Workspace(root, database_url)
    result = space.run("db", "status")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: 127.0.0.1:")
    assert result.stderr.endswith("/test: the database has no campaign schema yet; run "
                                  "'campaign db upgrade' to create it\n")
    result = space.run("db", "upgrade")
    assert result.exit_code == 0, result.output
    assert result.stdout.endswith("/test: schema upgraded from empty to revision 0005.\n")
    assert space.run("db", "upgrade").stdout.endswith(": schema already at revision 0005.\n")
    assert space.run("db", "status").exit_code == 0


def test_migrations_build_exactly_the_schema_the_code_uses(workspace):
    engine = create_engine(workspace.database_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, metadata) == []
    finally:
        engine.dispose()


def test_unreachable_server_is_reported_with_host_and_port(sqlite_workspace):
    sqlite_workspace.database_url = "postgresql://postgres@127.0.0.1:9/test"
    result = sqlite_workspace.run("db", "status")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: 127.0.0.1:9/test: cannot connect to the database: ")
    assert result.stderr.endswith("check that the server runs and that database_url in "
                                  "campaign.toml or CAMPAIGN_DATABASE_URL is right\n")
