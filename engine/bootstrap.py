"""Opening a workspace's database; a new SQLite file is created, migrated and seeded."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Engine, func, select

from engine import db
from engine.errors import EngineError
from engine.importer import KINDS, Progress, import_file
from engine.schema import customers, order_items, orders, products
from engine.settings import Settings

Notify = Callable[[str], None]


def open_database(settings: Settings, notify: Notify, progress: Progress | None = None) -> Engine:
    """An engine on the workspace database, whose schema is current."""
    url = settings.database_url
    new_file = url.get_backend_name() == "sqlite" and url.database not in (None, ":memory:") \
        and not Path(url.database).exists()
    engine = db.connect(url)
    if not new_file:
        try:
            db.require_current(engine)
        except BaseException:
            engine.dispose()
            raise
        return engine
    try:
        db.upgrade(engine)
        notify(f"Created a new database at {url.database} (schema {db.head_revision()}).")
        if settings.sample_data is not None:
            seed(engine, settings, notify, progress)
    except BaseException:
        engine.dispose()
        for suffix in ("", "-wal", "-shm"):
            Path(url.database + suffix).unlink(missing_ok=True)
        raise
    return engine


def seed(engine: Engine, settings: Settings, notify: Notify, progress: Progress | None) -> None:
    """Import the workspace's sample purchase history (customers, products, orders CSVs)."""
    folder = settings.sample_data
    assert folder is not None
    for kind in KINDS:
        if not (folder / f"{kind}.csv").is_file():
            raise EngineError(f"sample_data folder has no {kind}.csv", path=folder,
                              hint="generate one with 'campaign sample-data DIR' or remove "
                                   "sample_data from campaign.toml")
    for kind in KINDS:
        import_file(engine, kind, folder / f"{kind}.csv", currency=settings.shop.currency,
                    progress=progress)
    counts = table_counts(engine)
    notify(f"Imported the sample purchase history from {folder.name}/: "
           f"{counts['customers']:,} customers, {counts['products']:,} products, "
           f"{counts['orders']:,} orders.")


def table_counts(engine: Engine) -> dict[str, int]:
    """Rows in each purchase-history table."""
    with engine.connect() as connection:
        return {table.name: connection.execute(select(func.count()).select_from(table)).scalar_one()
                for table in (customers, products, orders, order_items)}
