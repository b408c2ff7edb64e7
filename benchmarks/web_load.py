"""Benchmark: requests per second of `campaign serve`'s tracking and unsubscribe endpoints.

The app runs under waitress (engine.web.listen, as `campaign serve` runs it) in a second
process on 127.0.0.1; this process sends, from `--clients` threads with keep-alive
connections, `--requests` open-pixel requests, as many click redirects, and one one-click
unsubscribe POST per customer (`--customers`). Bounded in count and in time (`--max-seconds`).
Afterwards every request must have answered as it should (0 errors) and the events table
must hold exactly one row per open, click and unsubscribe (no event lost).

    python benchmarks/web_load.py                      # SQLite in a temporary folder
    python benchmarks/web_load.py --database-url postgresql+psycopg://postgres@127.0.0.1/bench

A --database-url must name an empty database: the benchmark creates the schema and its rows.
"""

from __future__ import annotations

import argparse
import http.client
import platform
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import create_engine, func, insert, select
from sqlalchemy.engine import make_url

from engine import db
from engine.schema import customers, deliveries, events, runs
from engine.tokens import Signer

KEY = "web-load-benchmark-key"
SETTINGS = """\
[shop]
name = "Bench Shop"
base_url = "https://shop.example"
"""
TARGET = "https://shop.example/p/1?utm_source=newsletter&utm_medium=email&utm_campaign=bench"
SERVE = """\
import logging
import sys
from pathlib import Path
from engine.bootstrap import open_database
from engine.web import create_app, listen
from engine.workspace import open_workspace
workspace = open_workspace(Path(sys.argv[1]), environ={"CAMPAIGN_SECRET_KEY": sys.argv[2],
                                                "CAMPAIGN_DATABASE_URL": sys.argv[3]})
logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # "task queue depth" under load
engine = open_database(workspace.settings, lambda message: print(message, file=sys.stderr))
server = listen(create_app(workspace, engine), "127.0.0.1", 0)
print(server.effective_port, flush=True)
server.run()
"""


def prepare(url: str, count: int) -> list[tuple[int, int]]:
    """The schema with `count` customers, one run, a delivery each: (customer, delivery)."""
    engine = db.connect(make_url(url))
    try:
        db.upgrade(engine)
        now = datetime(2026, 11, 1)
        with engine.begin() as connection:
            connection.execute(insert(customers), [
                {"external_id": f"B{n}", "email": f"b{n}@example.com", "first_name": "B",
                 "last_name": str(n), "subscribed": True, "attributes": {}}
                for n in range(count)])
            ids = list(connection.execute(select(customers.c.id).order_by(customers.c.id))
                       .scalars())
            run = connection.execute(insert(runs).values(
                campaign="bench", status="finished", evaluated_at=now, started_at=now,
                excluded={})).inserted_primary_key[0]
            connection.execute(insert(deliveries), [
                {"run_id": run, "customer_id": customer, "email": f"b{n}@example.com",
                 "state": "sent", "attempts": 1, "message_id": f"<{n}@bench>",
                 "updated_at": now} for n, customer in enumerate(ids)])
            pairs = connection.execute(select(deliveries.c.customer_id, deliveries.c.id)
                                       .order_by(deliveries.c.id)).all()
        return [tuple(pair) for pair in pairs]
    finally:
        engine.dispose()


def load(port: int, jobs: list[tuple[str, str, bytes | None, int]], clients: int,
         deadline: float) -> tuple[Counter, float, int]:
    """Send `jobs` (method, path, body, expected status) from `clients` threads;
    (successes by kind, seconds, errors)."""
    done: Counter = Counter()
    errors = [0]
    lock = threading.Lock()
    cursor = iter(jobs)

    def worker() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while time.monotonic() < deadline:
            with lock:
                job = next(cursor, None)
            if job is None:
                break
            method, path, body, expected = job
            try:
                headers = {"Content-Type": "application/x-www-form-urlencoded"} if body else {}
                connection.request(method, path, body=body, headers=headers)
                response = connection.getresponse()
                response.read()
                ok = response.status == expected
            except (OSError, http.client.HTTPException):
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                ok = False
            with lock:
                if ok:
                    done[path.split("/")[1]] += 1
                else:
                    errors[0] += 1
        connection.close()

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return done, time.perf_counter() - started, errors[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="opens, and as many clicks")
    parser.add_argument("--customers", type=int, default=1000, help="one unsubscribe each")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--max-seconds", type=float, default=120)
    parser.add_argument("--database-url", help="default: SQLite in a temporary folder")
    options = parser.parse_args()
    signer = Signer.from_secret(KEY)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "campaign.toml").write_text(SETTINGS, encoding="utf-8")
        url = options.database_url or f"sqlite:///{root / 'bench.db'}"
        pairs = prepare(url, options.customers)
        server = subprocess.Popen([sys.executable, "-c", SERVE, str(root), KEY, url],
                                  stdout=subprocess.PIPE, text=True)
        try:
            port = int(server.stdout.readline())
            deadline = time.monotonic() + options.max_seconds
            results = {}
            chosen = [pairs[n % len(pairs)][1] for n in range(options.requests)]
            opens = [("GET", f"/open/{signer.tracking_token('open', d)}", None, 200)
                     for d in chosen]
            click = "/click/{}?url=" + quote(TARGET, safe=":/")
            clicks = [("GET", click.format(signer.tracking_token("click", d, TARGET)), None, 302)
                      for d in chosen]
            unsubscribes = [("POST", f"/unsubscribe/{signer.token('unsubscribe', 'bench', c)}",
                             b"List-Unsubscribe=One-Click", 200) for c, _ in pairs]
            for name, jobs in (("open", opens), ("click", clicks),
                               ("unsubscribe", unsubscribes)):
                results[name] = load(port, jobs, options.clients, deadline)
        finally:
            server.terminate()
            server.wait(timeout=30)
        engine = create_engine(url)
        with engine.connect() as connection:
            stored = dict(connection.execute(select(events.c.kind, func.count())
                                             .group_by(events.c.kind)).all())
        engine.dispose()
    backend = url.split(":")[0]
    print(f"Web endpoints under waitress, {backend}, {options.clients} client threads, "
          f"Python {platform.python_version()}")
    print("| requests | count | seconds | requests/s | errors | events stored |")
    print("| --- | --: | --: | --: | --: | --: |")
    failed = False
    for name, (done, seconds, errors) in results.items():
        count = sum(done.values())
        print(f"| {name} | {count:,} | {seconds:.2f} | {count / seconds:,.0f} | {errors} | "
              f"{stored.get(name, 0):,} |")
        failed |= errors > 0 or stored.get(name, 0) != count
    if failed:
        print("FAILED: errors, or events lost", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
