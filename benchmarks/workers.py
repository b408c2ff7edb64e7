"""Benchmark: `campaign worker` throughput with 1, 2 and 4 workers sharing one PostgreSQL database.

The workload is the send benchmark's (benchmarks/send.py): the reference newsletter
(benchmarks/newsletter.mjml) with a coupon and recommendations, to --recipients customers of the
sample-data generator, imported once into the PostgreSQL database --database (created when
missing). For each number of workers, the ledger is emptied, one send is scheduled, and that
many `campaign worker` processes start at once; the time runs from their start until the run
is finished in the ledger. Every worker sends to the same local SMTP sink (aiosmtpd in a process
of its own, as in send.py), which counts messages per recipient: duplicates must be 0 and
every recipient must receive one message. Each worker has `[sending] connections` = 4 and no
rate limit. The figures are messages per second over that time, and the ratio to one worker.

    python benchmarks/workers.py                       # 10,000 recipients, 1, 2 and 4 workers
    python benchmarks/workers.py --recipients 2000 --workers 1,2

On a machine with few cores the workers and the sink share them, so more workers cannot add
much: the benchmark prints the core count beside the figures.
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from send import HERE, NAME, Sink, campaign_command, configure, say, workspace_for
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/campaign_bench"
LEDGER = ("triggered", "schedules", "coupons", "events", "survey_responses", "deliveries",
          "runs", "workers")


def environment(root: Path, url: str, port: int | None = None) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("CAMPAIGN_")}
    env.update(CAMPAIGN_WORKSPACE=str(root), CAMPAIGN_SECRET_KEY="benchmark",
               CAMPAIGN_DATABASE_URL=url)
    if port is not None:
        env["CAMPAIGN_SMTP_URL"] = f"smtp://127.0.0.1:{port}"
    return env


def prepare(root: Path, url: str, recipients: int) -> None:
    """Create the database when missing and import the workspace's data once."""
    target = make_url(url)
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        exists = connection.execute(text("SELECT 1 FROM pg_database WHERE datname = :name"),
                                    {"name": target.database}).scalar()
        if not exists:
            connection.execute(text(f'CREATE DATABASE "{target.database}"'))
    admin.dispose()
    env = environment(root, url)
    subprocess.run([*campaign_command(), "db", "upgrade"], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    engine = create_engine(url)
    with engine.connect() as connection:
        have = connection.execute(text("SELECT count(*) FROM customers")).scalar()
    engine.dispose()
    if have == recipients:
        return
    if have:
        sys.exit(f"{url} holds {have:,} customers, not {recipients:,}: use another --database")
    say(f"Importing {recipients:,} customers into {target.database} (once) ...")
    for kind in ("products", "customers", "orders"):
        subprocess.run([*campaign_command(), "import", kind, str(root / "data" / f"{kind}.csv")],
                       env=env, check=True, stdout=subprocess.DEVNULL)


def empty_ledger(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {', '.join(LEDGER)} RESTART IDENTITY CASCADE"))
    engine.dispose()


def run_workers(root: Path, url: str, sink: Sink, count: int, recipients: int) -> dict:
    """Schedule the send, start `count` workers, wait for the run to finish: figures."""
    empty_ledger(url)
    env = environment(root, url, sink.port)
    subprocess.run([*campaign_command(), "schedule", NAME, "--at", "2026-01-01 00:00",
                    "--now", "2025-12-31"], env=env, check=True, stdout=subprocess.DEVNULL)
    sink.take()
    engine = create_engine(url)
    started = time.perf_counter()
    workers = [subprocess.Popen([*campaign_command(), "worker", "--poll", "0.2"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
               for _ in range(count)]
    try:
        while True:
            with engine.connect() as connection:
                status = connection.execute(text("SELECT status FROM runs")).scalar()
            if status == "finished":
                break
            if any(worker.poll() is not None for worker in workers):
                sys.exit(f"a worker ended early:\n{workers[0].stderr.read()}")
            time.sleep(0.05)
        wall = time.perf_counter() - started
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        for worker in workers:
            worker.wait(60)
    with engine.connect() as connection:
        shares = [row[0] for row in connection.execute(
            text("SELECT sent FROM workers ORDER BY sent DESC"))]
        states = dict(connection.execute(
            text("SELECT state, count(*) FROM deliveries GROUP BY state")).all())
    engine.dispose()
    stats = sink.take()
    received: Counter[str] = stats["recipients"]
    duplicates = sum(n - 1 for n in received.values() if n > 1)
    if states != {"sent": recipients} or len(received) != recipients:
        sys.exit(f"{count} workers: the ledger says {states}, the sink got "
                 f"{len(received):,} distinct recipients")
    return {"workers": count, "wall": wall, "rate": recipients / wall,
            "duplicates": duplicates, "shares": shares}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=10_000)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--database", default=DEFAULT_URL)
    parser.add_argument("--data", type=Path, default=HERE / ".data")
    args = parser.parse_args()
    counts = [int(value) for value in args.workers.split(",")]
    root = workspace_for(args.recipients, args.data)
    configure(root, 4)
    prepare(root, args.database, args.recipients)
    results = []
    with Sink("aiosmtpd") as sink:
        for count in counts:
            say(f"  {count} worker(s) ...")
            results.append(run_workers(root, args.database, sink, count, args.recipients))
    say(f"# workers benchmark, CPython {platform.python_version()}, {platform.machine()}, "
        f"{os.cpu_count()} cores, {args.recipients:,} recipients, newsletter.mjml, "
        "PostgreSQL, aiosmtpd sink, 4 connections per worker")
    say(f"  {'workers':>7}  {'wall s':>7}  {'msgs/s':>7}  {'vs 1':>5}  {'duplicates':>10}  "
        "messages per worker")
    first = results[0]["rate"]
    for result in results:
        say(f"  {result['workers']:>7}  {result['wall']:>7.2f}  {result['rate']:>7,.0f}  "
            f"{result['rate'] / first:>4.2f}x  {result['duplicates']:>10}  "
            f"{', '.join(f'{share:,}' for share in result['shares'])}")


if __name__ == "__main__":
    main()
