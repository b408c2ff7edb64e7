"""Benchmark: `campaign segment count` against hand-written SQL for the same question.

Both run on the same database (SQLite file and PostgreSQL), built once from the sample-data
generator through the engine's own import, and kept in --data for later runs. For each segment
the engine compiles segments.yaml to its one SELECT and counts it; the hand-written query is
what a DBA would type for that question. Counts must agree; times are the best of --repeat.
The goal is the engine within 1.3x of the hand-written query.

    python benchmarks/segments.py                         # 1,000,000 customers, both backends
    python benchmarks/segments.py --customers 100000 --backend sqlite
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, create_engine, func, select, text
from sqlalchemy.engine import make_url

from engine import db
from engine.importer import KINDS, import_file
from engine.sampledata import generate
from engine.segments.compiler import Scope, segment_query
from engine.segments.definitions import load_segments
from engine.settings import Tier
from engine.timespec import parse_now

GOAL = 1.3
NOW = "2026-11-01"
DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
TIERS = (Tier("gold", spent=1000, within=None),)

SEGMENTS_YAML = """\
segments:
  loyal_lapsed:
    all:
      - orders: {at_least: 3}
      - last_order: {before: 90 days ago}
  big_spenders:
    spent: {at_least: 500, within: 365 days}
  garden_fans:
    any:
      - bought: {category: Garden, within: 180 days}
      - bought: {product: [SEED-01, SEED-02]}
  active_vips:
    all:
      - segment: big_spenders
      - not: {segment: loyal_lapsed}
  berliners:
    customer: {city: Berlin, country: DE}
  small_spenders:
    spent: {at_most: 50}
  champions:
    rfm: {recency: [4, 5], frequency: [4, 5], monetary: [4, 5]}
"""

# What a person would write for the same questions (:now, :d90 = now - 90 days, ...).
HAND_WRITTEN = {
    "loyal_lapsed": """
        SELECT count(*) FROM (SELECT customer_id FROM orders WHERE placed_at < :now
        GROUP BY customer_id HAVING count(*) >= 3 AND max(placed_at) < :d90) AS t""",
    "big_spenders": """
        SELECT count(*) FROM (SELECT customer_id FROM orders
        WHERE placed_at >= :d365 AND placed_at < :now
        GROUP BY customer_id HAVING sum(total) >= 500) AS t""",
    "garden_fans": """
        SELECT count(DISTINCT o.customer_id) FROM orders o
        JOIN order_items i ON i.order_id = o.id JOIN products p ON p.id = i.product_id
        WHERE o.placed_at < :now AND ((p.category = 'Garden' AND o.placed_at >= :d180)
                                      OR p.sku IN ('SEED-01', 'SEED-02'))""",
    "active_vips": """
        SELECT count(*) FROM (SELECT customer_id FROM orders WHERE placed_at < :now
        GROUP BY customer_id
        HAVING sum(CASE WHEN placed_at >= :d365 THEN total ELSE 0 END) >= 500
           AND NOT (count(*) >= 3 AND max(placed_at) < :d90)) AS t""",
    "berliners": """
        SELECT count(*) FROM customers WHERE city = 'Berlin' AND country = 'DE'""",
    "small_spenders": """
        SELECT count(*) FROM customers c WHERE NOT EXISTS (
          SELECT 1 FROM orders o WHERE o.customer_id = c.id AND o.placed_at < :now
          GROUP BY o.customer_id HAVING sum(o.total) > 50)""",
    "champions": """
        SELECT count(*) FROM (
          SELECT customer_id,
                 ntile(5) OVER (ORDER BY max(placed_at)) AS r,
                 ntile(5) OVER (ORDER BY count(*)) AS f,
                 ntile(5) OVER (ORDER BY sum(total)) AS m
          FROM orders WHERE placed_at < :now GROUP BY customer_id) AS s
        WHERE r >= 4 AND f >= 4 AND m >= 4""",
}
APPROXIMATE = {"champions": "ntile splits ties arbitrarily; the engine gives ties one score"}


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def best_of(repeat: int, action) -> tuple[float, object]:
    """The fastest of `repeat` runs, in seconds, and the last result."""
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = action()
        times.append(time.perf_counter() - start)
    return min(times), result


def prepare_files(folder: Path, customers: int) -> None:
    if (folder / "orders.csv").is_file():
        return
    say(f"Generating {customers:,} customers into {folder} ...")
    generate(folder, customers=customers)


def load(engine: Engine, folder: Path) -> None:
    """Schema and the purchase history through the engine's own import, then statistics."""
    db.upgrade(engine)
    for kind in KINDS:
        say(f"  importing {kind} ...")
        import_file(engine, kind, folder / f"{kind}.csv")
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE" if engine.dialect.name == "postgresql"
                                else "ANALYZE"))


def sqlite_engine(folder: Path) -> Engine:
    path = folder / "campaign.db"
    fresh = not path.exists()
    engine = db.connect(make_url(f"sqlite:///{path}"))
    if fresh:
        say(f"Building SQLite database {path} ...")
        load(engine, folder)
    return engine


def postgres_engine(folder: Path, server_url: str, name: str) -> Engine:
    url = make_url(server_url)
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        exists = connection.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"),
                                    {"n": name}).first()
        if not exists:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    engine = db.connect(url.set(database=name))
    if not exists:
        say(f"Building PostgreSQL database {name} ...")
        load(engine, folder)
    return engine


def run_backend(engine: Engine, backend: str, repeat: int, workspace: Path) -> list[tuple]:
    now = parse_now(NOW)
    definitions = load_segments(workspace / "segments.yaml", [t.name for t in TIERS])
    scope = Scope(now, definitions, TIERS)
    spans = {"now": now, "d90": _days_before(now, 90), "d180": _days_before(now, 180),
             "d365": _days_before(now, 365)}
    rows = []
    with engine.connect() as connection:
        for name, segment in definitions.items():
            query = select(func.count()).select_from(
                segment_query(segment.condition, scope).subquery())
            engine_s, count = best_of(repeat, lambda q=query: connection.execute(q).scalar_one())
            hand_s, hand = best_of(repeat, lambda n=name: connection.execute(
                text(HAND_WRITTEN[n]), spans).scalar_one())
            same = "yes" if count == hand else APPROXIMATE.get(name, f"NO ({hand:,})")
            cli_s = _cli_seconds(workspace, engine, name)
            say(f"  {backend} {name}: {count:,} engine {engine_s:.3f}s hand {hand_s:.3f}s")
            rows.append((backend, name, count, engine_s, hand_s, cli_s, same))
    return rows


def _days_before(now: datetime, days: int) -> datetime:
    return now - timedelta(days=days)


def _cli_seconds(workspace: Path, engine: Engine, name: str) -> float:
    """Wall time of the real command, Python start-up included."""
    env = {**os.environ, "CAMPAIGN_DATABASE_URL":
           engine.url.render_as_string(hide_password=False), "CAMPAIGN_WORKSPACE": str(workspace)}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "from cli import cli; cli()", "segment", "count",
                    name, "--now", NOW], env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--data", type=Path, help="keep generated files and the SQLite "
                        "database here (default: benchmarks/.data/<customers>)")
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "all"], default="all")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    folder = args.data or Path(__file__).parent / ".data" / str(args.customers)
    folder.mkdir(parents=True, exist_ok=True)
    prepare_files(folder, args.customers)
    workspace = Path(tempfile.mkdtemp(prefix="segbench-"))
    (workspace / "segments.yaml").write_text(SEGMENTS_YAML)
    (workspace / "campaign.toml").write_text('[[tiers]]\nname = "gold"\nspent = 1000\n')
    rows = []
    if args.backend in ("sqlite", "all"):
        engine = sqlite_engine(folder)
        rows += run_backend(engine, "sqlite", args.repeat, workspace)
        engine.dispose()
    if args.backend in ("postgresql", "all"):
        engine = postgres_engine(folder, args.postgres_url, f"campaign_segbench_{args.customers}")
        rows += run_backend(engine, "postgresql", args.repeat, workspace)
        engine.dispose()
    lines = sum(1 for _ in (folder / "orders.csv").open()) - 1
    print(f"{args.customers:,} customers, {lines:,} order lines; {platform.python_version()}, "
          f"{os.cpu_count()} cores; best of {args.repeat}; now = {NOW}\n")
    print("| backend | segment | customers | engine s | hand-written s | ratio | goal <= 1.3x "
          "| CLI s | same count |")
    print("| --- | --- | --: | --: | --: | --: | --- | --: | --- |")
    for backend, name, count, engine_s, hand_s, cli_s, same in rows:
        ratio = engine_s / hand_s if hand_s else float("inf")
        verdict = "met" if ratio <= GOAL else "missed"
        print(f"| {backend} | {name} | {count:,} | {engine_s:.3f} | {hand_s:.3f} | {ratio:.2f}x "
              f"| {verdict} | {cli_s:.2f} | {same} |")


if __name__ == "__main__":
    main()
