"""Benchmark: what open and click tracking adds to each message of a send.

Renders the example workspace's spring email (sample data, SQLite in a temporary folder) for
`--customers` customers, then times `MessageMaker.make` for each of them with a delivery id
(tracked: UTM, click redirects, open pixel) and without (UTM only, as a dry run), and
`Tracker.track` alone. Prints microseconds per message.

    python benchmarks/tracking.py
    python benchmarks/tracking.py --customers 500 --repeat 5
"""

from __future__ import annotations

import argparse
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from engine.bootstrap import open_database
from engine.emails import CampaignEmails
from engine.fields import looks_like_email
from engine.outgoing import MessageMaker
from engine.timespec import parse_now
from engine.workspace import open_workspace

ROOT = Path(__file__).resolve().parent.parent
KEY = "tracking-benchmark-key"


def best(repeat: int, work: Callable[[], None]) -> float:
    """The fastest of `repeat` runs of `work`, in seconds."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        for name in ("campaign.toml", "segments.yaml", "campaigns", "templates", "data"):
            source = ROOT / name
            (shutil.copytree if source.is_dir() else shutil.copy)(source, root / name)
        workspace = open_workspace(root, environ={
            "CAMPAIGN_SECRET_KEY": KEY, "CAMPAIGN_DATABASE_URL": f"sqlite:///{root / 'c.db'}"})
        engine = open_database(workspace.settings, lambda _message: None)
        with engine.connect() as connection:
            emails = CampaignEmails(workspace, connection, "spring", parse_now("2026-11-01"))
            ids = emails.audience(options.customers)
            contexts = emails.builder.build(ids)
            rendered = [(context, emails.renderer.render(context)) for context in contexts]
        engine.dispose()
    maker = MessageMaker(workspace.settings, "spring", emails.campaign.from_address)
    moment = parse_now("2026-11-01")
    rendered = [(context, email) for context, email in rendered   # as a send leaves them out
                if looks_like_email(context["customer"].email)]
    count = len(rendered)

    def make(tracked: bool) -> Callable[[], None]:
        def run() -> None:
            for number, (context, email) in enumerate(rendered):
                maker.make(context, email, f"<{number}@greenshop.example>", moment,
                           delivery_id=number if tracked else None)
        return run

    def track() -> None:
        for number, (_context, email) in enumerate(rendered):
            maker.tracker.track(email.html, email.text, number)

    plain = best(options.repeat, make(False))
    tracked = best(options.repeat, make(True))
    alone = best(options.repeat, track)
    links = rendered[0][1].html.count('href="http')
    size = sum(len(email.html) for _, email in rendered) / count / 1024
    print(f"spring email, {count:,} customers, {links} http(s) links and {size:.1f} KB of HTML "
          f"each; Python {platform.python_version()}, best of {options.repeat}")
    print("| what | µs per message |")
    print("| --- | --: |")
    print(f"| MessageMaker.make, no delivery (UTM only, as a dry run) | "
          f"{plain / count * 1e6:.0f} |")
    print(f"| MessageMaker.make, tracked delivery | {tracked / count * 1e6:.0f} |")
    print(f"| Tracker.track alone, tracked delivery | {alone / count * 1e6:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
