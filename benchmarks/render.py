"""Benchmark: emails per second per core, text and MIME included, engine against straightforward.

Both pipelines render the reference newsletter (benchmarks/newsletter.mjml) for the same
customers in the same run, from the same personalization contexts:
- straightforward: Jinja, MJML compile, premailer, text conversion and an
  `email.message.EmailMessage` for every recipient;
- engine: `EmailRenderer.render` (Jinja per recipient, MJML and premailer once per structure)
  and `engine.message.build_message`.
Every email of the two must be identical (HTML, text and subject) or the run stops. Building
the contexts (the database queries) is timed separately, and is the same for both.
The goal is the engine at 50x the straightforward pipeline or more.

    python benchmarks/render.py                       # 10,000 customers
    python benchmarks/render.py --customers 2000
"""

from __future__ import annotations

import argparse
import platform
import shutil
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, parseaddr
from pathlib import Path

from engine import bootstrap
from engine.emails import CampaignEmails
from engine.fields import looks_like_email
from engine.message import Envelope, build_message, message_id
from engine.render import Email
from engine.sampledata import generate
from engine.timespec import parse_now
from engine.workspace import open_workspace

GOAL = 50
NOW = "2026-11-01"
HERE = Path(__file__).resolve().parent
CAMPAIGN = """\
subject: "{{ customer.first_name }}, the spring sale is on"
preheader: picked from what you bought
segment: {orders: {at_least: 0}}
template: newsletter.mjml
from: "Example Shop <news@shop.example>"
coupon: {percent: 15, valid_for: 30 days, prefix: SALE}
recommendations: 3
"""


def workspace_for(customers: int, data: Path):
    """A workspace with `customers` sample customers and the reference newsletter (cached)."""
    root = data / f"render-{customers}"
    if not (root / "campaign.toml").is_file():
        root.mkdir(parents=True, exist_ok=True)
        generate(root / "data", customers=customers, seed=7,
                 until=datetime(2026, 11, 1).date())
        shutil.copy(HERE.parent / "campaign.toml", root / "campaign.toml")
        (root / "segments.yaml").write_text("segments: {}\n", encoding="utf-8")
        (root / "templates").mkdir(exist_ok=True)
        shutil.copy(HERE / "newsletter.mjml", root / "templates" / "newsletter.mjml")
        (root / "campaigns").mkdir(exist_ok=True)
        (root / "campaigns" / "newsletter.yaml").write_text(CAMPAIGN, encoding="utf-8")
    workspace = open_workspace(root, environ={"CAMPAIGN_SECRET_KEY": "benchmark"})
    return workspace, bootstrap.open_database(workspace.settings, print, lambda *_: None)


def straightforward_message(email: Email, envelope: Envelope) -> bytes:
    """The MIME message the standard library builds."""
    message = EmailMessage(policy=SMTP)
    message["From"] = f"{envelope.from_name} <{envelope.from_address}>"
    message["To"] = f"{envelope.to_name} <{envelope.to_address}>"
    message["Subject"] = email.subject
    message["Date"] = format_datetime(envelope.date)
    message["Message-ID"] = envelope.message_id
    message.set_content(email.text)
    message.add_alternative(email.html, subtype="html")
    return message.as_bytes()


def timed(label: str, contexts: list, render: Callable, envelope_for: Callable,
          build: Callable) -> tuple[float, float, list[Email]]:
    """CPU and wall seconds for rendering and building every message; the emails."""
    emails = []
    size = 0
    wall, cpu = time.perf_counter(), time.process_time()
    for context in contexts:
        email = render(context)
        size += len(build(email, envelope_for(context, email)))
        emails.append(email)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    print(f"  {label:<16} {len(contexts):>7,} emails  {wall:8.2f} s wall  {cpu:8.2f} s CPU  "
          f"{len(contexts) / cpu:9,.0f} emails/s per core  ({size / len(contexts) / 1024:.1f} "
          "KB per message)", flush=True)
    return cpu, wall, emails


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--data", type=Path, default=HERE / ".data")
    args = parser.parse_args()
    workspace, engine = workspace_for(args.customers, args.data)
    now = parse_now(NOW)
    sent_at = now.replace(tzinfo=UTC)
    print(f"# render benchmark, {platform.python_implementation()} {platform.python_version()}"
          f", {platform.machine()}, {args.customers:,} customers, newsletter.mjml")
    with engine.connect() as connection:
        emails = CampaignEmails(workspace, connection, "newsletter", now)
        ids = emails.audience()
        started = time.process_time()
        contexts = [c for start in range(0, len(ids), 500)
                    for c in emails.builder.build(ids[start:start + 500])
                    if looks_like_email(c["customer"].email)]
        context_cpu = time.process_time() - started
    sender_name, sender_address = parseaddr(emails.campaign.from_address)
    domain = sender_address.rpartition("@")[2]

    def envelope_for(context, email: Email) -> Envelope:
        customer = context["customer"]
        return Envelope(sender_name, sender_address, customer.name, customer.email,
                        email.subject, message_id("newsletter", customer.id, domain), sent_at)

    print(f"  {'contexts':<16} {len(contexts):>7,} built     {context_cpu:8.2f} s CPU  "
          f"{len(contexts) / context_cpu:9,.0f} per second per core (same for both)")
    renderer = emails.renderer
    engine_cpu, _, fast = timed("engine", contexts, renderer.render, envelope_for,
                                lambda email, envelope: build_message(envelope, email.text,
                                                                      email.html))
    plain_cpu, _, plain = timed("straightforward", contexts, renderer.render_straight,
                                envelope_for, straightforward_message)
    different = sum(a != b for a, b in zip(fast, plain, strict=True))
    if different:
        sys.exit(f"{different} emails differ between the two pipelines")
    ratio = plain_cpu / engine_cpu
    with_contexts = (plain_cpu + context_cpu) / (engine_cpu + context_cpu)
    print(f"  all {len(fast):,} emails identical; MJML compiles: {renderer.skeletons.compiles:,} "
          f"for {renderer.skeletons.structures:,} structures")
    print(f"  ratio engine/straightforward: {ratio:.1f}x (goal {GOAL}x: "
          f"{'met' if ratio >= GOAL else 'missed'}); with context building: {with_contexts:.1f}x")
    engine.dispose()


if __name__ == "__main__":
    main()
