"""Benchmark: the engine's import of order lines against the database's own bulk load.

For each backend, the same orders.csv is loaded twice, each time into a fresh database:

- engine:   `import_file(engine, "orders", orders.csv)` after `db.upgrade` and the (separately
            timed) import of customers.csv and products.csv;
- baseline: SQLite: the sqlite3 shell's `.import --skip 1` into a table of 9 TEXT columns
            (timed as a subprocess, start-up included); PostgreSQL: `COPY ... FROM STDIN
            WITH (FORMAT csv, HEADER true)` through psycopg into a table of 9 text columns.

The goal is an engine import within 3x the baseline. Run from the project's virtualenv:

    python benchmarks/import.py                      # 1,000,000 order lines, both backends
    python benchmarks/import.py --order-lines 100000 --backend sqlite

The data is deterministic (fixed seed). Temporary files and the PostgreSQL benchmark database
(created by the script, default `campaign_bench`) are removed at the end, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import platform
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine, text
from sqlalchemy.engine import URL, make_url

from engine import db
from engine.importer import import_file
from engine.sampledata import ORDER_COLUMNS, generate

GOAL = 3.0  # the engine may take at most this many times the baseline
CALIBRATION_CUSTOMERS = 20_000
DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
STAGING = "CREATE TABLE staging ({})".format(", ".join(f"{c} TEXT" for c in ORDER_COLUMNS))
COPY = "COPY staging FROM STDIN WITH (FORMAT csv, HEADER true)"


@dataclass
class Result:
    """The figures of one backend; None where a step could not run."""

    backend: str
    lines: int
    setup: float | None = None  # customers + products import
    engine: float | None = None
    baseline: float | None = None
    rss_mb: float | None = None
    version: str = ""
    phases: dict[str, float] = field(default_factory=dict)  # engine time up to each step's end
    note: str = ""


def say(message: str) -> None:
    """Progress on stderr, so stdout keeps only the results."""
    print(message, file=sys.stderr, flush=True)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (children excluded), in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def timed(action: Callable[[], object]) -> tuple[float, object]:
    """Seconds taken by action() and its result."""
    gc.collect()
    start = time.perf_counter()
    result = action()
    return time.perf_counter() - start, result


def count_order_lines(path: Path) -> int:
    """Order lines in orders.csv (records, header excluded; no quoted newlines in it)."""
    with path.open("rb") as handle:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b"")) - 1


def make_dataset(target: int, folder: Path, seed: int) -> Path:
    """Generate about `target` order lines into folder; customers from a calibration run."""
    sample = generate(folder / "calibration", customers=CALIBRATION_CUSTOMERS, seed=seed)
    shutil.rmtree(folder / "calibration")
    ratio = sample.order_lines / sample.customers
    customers = max(1, math.ceil(target / ratio))
    say(f"generating {customers:,} customers ({ratio:.3f} order lines per customer) ...")
    seconds, summary = timed(lambda: generate(folder / "data", customers=customers, seed=seed))
    say(f"  {summary.order_lines:,} order lines, {summary.orders:,} orders in {seconds:.1f} s")
    return folder / "data"


def engine_import(engine: Engine, data: Path, result: Result) -> None:
    """Create the schema, import customers and products, then time the orders alone."""
    db.upgrade(engine)
    result.setup, _ = timed(lambda: [import_file(engine, kind, data / f"{kind}.csv")
                                     for kind in ("customers", "products")])
    say(f"  customers + products imported in {result.setup:.1f} s; importing orders ...")
    last_seen: dict[str, float] = {}  # progress step -> when it last reported

    def progress(step: str, _done: int, _total: int) -> None:
        last_seen[step] = time.perf_counter()

    result.engine, report = timed(lambda: import_file(engine, "orders", data / "orders.csv",
                                                      progress=progress))
    finish = time.perf_counter()
    marks = [finish - result.engine, *last_seen.values(), finish]
    result.phases = {step: marks[i + 1] - marks[i] for i, step in
                     enumerate([*last_seen, "commit"])}
    if report.lines != result.lines:
        raise SystemExit(f"engine imported {report.lines} lines, the file has {result.lines}")
    result.rss_mb = peak_rss_mb()
    say(f"  engine: {result.engine:.1f} s")


def run_sqlite(data: Path, work: Path, shell: str | None, result: Result) -> None:
    """Engine import into a new SQLite file, then `.import` into another new file."""
    say("sqlite: engine import ...")
    engine = db.connect(make_url(f"sqlite:///{work / 'engine.db'}"))
    try:
        engine_import(engine, data, result)
    finally:
        engine.dispose()
    if not shell or not shutil.which(shell):
        result.note = "sqlite3 shell not found: baseline skipped (apt-get install sqlite3)"
        say(f"  {result.note}")
        return
    target = work / "baseline.db"
    version = subprocess.run([shell, "-version"], capture_output=True, text=True).stdout
    result.version = f"sqlite3 shell {' '.join(version.split()[:2])}"
    script = f"{STAGING};\n.mode csv\n.import --skip 1 '{data / 'orders.csv'}' staging\n"
    say("sqlite: baseline .import ...")
    result.baseline, done = timed(lambda: subprocess.run(
        [shell, "-bail", str(target)], input=script, text=True, capture_output=True))
    if done.returncode or done.stderr.strip():
        raise SystemExit(f"sqlite3 .import failed: {done.stderr.strip()}")
    with sqlite3.connect(target) as check:
        loaded = check.execute("SELECT count(*) FROM staging").fetchone()[0]
    check.close()
    if loaded != result.lines:
        raise SystemExit(f"sqlite3 .import loaded {loaded} lines, the file has {result.lines}")
    say(f"  baseline: {result.baseline:.1f} s")


class BenchDatabase:
    """A PostgreSQL database created for the run and dropped afterwards."""

    def __init__(self, admin_url: URL, name: str) -> None:
        if name == admin_url.database:
            raise SystemExit(f"--bench-db must differ from the database in --postgres-url ({name})")
        self.admin = db.connect(admin_url).execution_options(isolation_level="AUTOCOMMIT")
        self.name, self.url, self.created = name, admin_url.set(database=name), False

    def create(self) -> None:
        """CREATE DATABASE; refuses to reuse a database that already exists."""
        with self.admin.connect() as connection:
            exists = connection.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"),
                                        {"n": self.name}).first()
            if exists:
                raise SystemExit(f"database {self.name} already exists; drop it yourself "
                                 "(a left-over run?) or pass another --bench-db")
            connection.execute(text(f'CREATE DATABASE "{self.name}"'))
        self.created = True

    def drop(self) -> None:
        """DROP DATABASE, only if this object created it."""
        if self.created:
            with self.admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE "{self.name}"'))
            self.created = False
        self.admin.dispose()


def run_postgres(data: Path, bench: BenchDatabase, result: Result) -> None:
    """Engine import into the fresh database, then COPY into a fresh text table there."""
    import psycopg

    say("postgresql: engine import ...")
    engine = db.connect(bench.url)
    try:
        engine_import(engine, data, result)
    finally:
        engine.dispose()
    say("postgresql: baseline COPY ...")
    conninfo = bench.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo) as connection:
        connection.execute(STAGING)
        connection.commit()

        def copy() -> None:
            with connection.cursor() as cursor, cursor.copy(COPY) as stream, \
                    (data / "orders.csv").open("rb") as handle:
                while chunk := handle.read(1 << 20):
                    stream.write(chunk)
            connection.commit()

        result.baseline, _ = timed(copy)
        loaded = connection.execute("SELECT count(*) FROM staging").fetchone()[0]
        server = connection.execute("SHOW server_version").fetchone()[0]
        result.version = f"PostgreSQL server {server}, psycopg {psycopg.__version__}"
    if loaded != result.lines:
        raise SystemExit(f"COPY loaded {loaded} lines, the file has {result.lines}")
    say(f"  baseline: {result.baseline:.1f} s")


def table(results: list[Result], markdown: bool) -> str:
    """The figures as an aligned text table or a Markdown table."""
    head = ["backend", "order lines", "engine s", "engine lines/s", "baseline s",
            "baseline lines/s", "engine/baseline", f"goal <= {GOAL:g}x", "peak RSS MiB"]
    rows = []
    for r in results:
        ratio = r.engine / r.baseline if r.engine and r.baseline else None
        verdict = "n/a" if ratio is None else "met" if ratio <= GOAL else \
            f"missed by {ratio / GOAL:.1f}x"
        rows.append([r.backend, f"{r.lines:,}", _num(r.engine, ".1f"),
                     _num(r.engine and r.lines / r.engine, ",.0f"), _num(r.baseline, ".2f"),
                     _num(r.baseline and r.lines / r.baseline, ",.0f"), _num(ratio, ".1f", "x"),
                     verdict, _num(r.rss_mb, ",.0f")])
    if markdown:
        lines = [head, ["---"] + ["--:"] * (len(head) - 3) + ["---", "--:"], *rows]
        return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)
    widths = [max(len(row[i]) for row in [head, *rows]) for i in range(len(head))]
    return "\n".join("  ".join(cell.rjust(w) if i else cell.ljust(w)
                               for i, (cell, w) in enumerate(zip(row, widths, strict=True)))
                     for row in [head, *rows])


def _num(value: float | None, spec: str, suffix: str = "") -> str:
    return "n/a" if value is None else format(value, spec) + suffix


def main(argv: list[str] | None = None) -> int:
    """Parse options, build or reuse the data set, run the backends, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--order-lines", type=int, default=1_000_000, metavar="N",
                        help="about how many order lines to generate (default 1,000,000)")
    parser.add_argument("--data", type=Path, metavar="DIR",
                        help="reuse customers.csv, products.csv and orders.csv from DIR")
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "all"), default="all")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES,
                        help="server to use; its database is only used to create/drop --bench-db")
    parser.add_argument("--bench-db", default="campaign_bench",
                        help="PostgreSQL database created and dropped for the run")
    parser.add_argument("--sqlite3", default=shutil.which("sqlite3"), metavar="PATH",
                        help="the sqlite3 command-line shell (default: found on PATH)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table too")
    args = parser.parse_args(argv)

    backends = ["sqlite", "postgresql"] if args.backend == "all" else [args.backend]
    results: list[Result] = []
    bench: BenchDatabase | None = None
    try:
        with tempfile.TemporaryDirectory(prefix="campaign-bench-") as tmp:
            work = Path(tmp)
            data = args.data or make_dataset(args.order_lines, work, args.seed)
            lines = count_order_lines(data / "orders.csv")
            for backend in backends:
                result = Result(backend, lines)
                results.append(result)
                if backend == "sqlite":
                    run_sqlite(data, work, args.sqlite3, result)
                    continue
                try:
                    import psycopg  # noqa: F401
                except ImportError:
                    result.note = "psycopg not installed (pip install 'psycopg[binary]')"
                    say(f"postgresql: skipped, {result.note}")
                    continue
                bench = BenchDatabase(make_url(args.postgres_url), args.bench_db)
                try:
                    bench.create()
                except Exception as exc:  # an unreachable server should not hide SQLite's run
                    result.note = f"cannot use {db.describe(bench.url)}: {exc}".splitlines()[0]
                    say(f"postgresql: skipped, {result.note}")
                    continue
                run_postgres(data, bench, result)
    except KeyboardInterrupt:
        say("interrupted; cleaning up")
        return 130
    finally:
        if bench is not None:
            bench.drop()

    print(f"Import of order lines: engine vs bulk load (goal: engine within {GOAL:g}x)")
    print(f"{os.cpu_count()} CPUs ({len(os.sched_getaffinity(0))} usable), "
          f"Python {platform.python_version()}, SQLite library {sqlite3.sqlite_version}, "
          f"seed {args.seed}")
    print(table(results, markdown=False))
    for r in results:
        if r.phases:
            print(f"{r.backend}: engine phases: " + ", ".join(
                f"{step} {seconds:.1f} s" for step, seconds in r.phases.items()))
        if r.setup is not None:
            print(f"{r.backend}: customers + products (not in the table) took {r.setup:.1f} s")
        if r.version:
            print(f"{r.backend}: {r.version}")
        if r.note:
            print(f"{r.backend}: {r.note}")
    print("peak RSS: this process (sqlite3 shell excluded) after the backend's engine import, "
          "cumulative over the run")
    print("baselines load into 9 text columns without indexes; the engine validates, parses, "
          "upserts orders and writes order_items with indexes and foreign keys")
    if args.markdown:
        print()
        print(table(results, markdown=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
