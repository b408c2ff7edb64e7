"""Benchmark: `campaign send` end to end against raw smtplib and mailmerge, to one SMTP sink.

All three deliver the reference newsletter (benchmarks/newsletter.mjml) to the same recipients,
in the same run, to the same local SMTP sink: aiosmtpd in a separate process (so its CPU is not
ours) that accepts every message, discards it and counts it by recipient; after each delivery
the sink must have received exactly one message for every expected recipient. `--sink minimal`
uses a bare asyncio SMTP server instead, which reads DATA in one piece: aiosmtpd reads it line by
line and costs about 3.5 ms of CPU per 49 KB message, which caps every sender here.

- engine: `campaign send newsletter --yes` as a subprocess (start-up, audience, ledger, coupons,
  rendering and sending all included), `[sending] rate = 100000` and `connections = N`, on a
  fresh copy of the database every time (no ledger state from an earlier repeat).
- raw smtplib ("the limit of this machine"): the same recipients' messages, pre-built by
  `campaign send newsletter --dry-run --outbox DIR` (not timed) and held in memory, sent over N
  persistent `smtplib.SMTP` connections in N threads, one `sendmail` per message.
- mailmerge 2.3 (PyPI, in its own virtualenv, installed by this script into
  --data/mailmerge-venv when missing): a CSV database of the recipients (address, first name,
  city, order count, tier, favourite category, three recommended products, coupon and links,
  from the engine's own personalization contexts) and a Jinja template made once from the same
  newsletter: the loop over recommendations unrolled into three columns, every `{{ a.b }}`
  turned into a CSV column `{{a_b}}`, compiled by MJML and premailer once (Content-Type:
  text/html). `mailmerge --no-dry-run --no-limit --output-format raw` (output discarded), once
  as one process (how the tool is used: one message at a time, a new SMTP connection for each),
  and once as N processes on N slices of the CSV (N connections at a time, as the others).

Times are wall seconds: the whole subprocess for the engine and mailmerge, connecting and
sending for raw smtplib. "window" is the sink's view: from the first message received to the
last. Each figure is the best of --repeats. The goals: engine / raw smtplib >= 0.8 and
engine / mailmerge >= 10 (in messages per second over the wall time).

    python benchmarks/send.py                        # 5,000 recipients, 4 connections
    python benchmarks/send.py --sink minimal         # the same against the bare sink
    python benchmarks/send.py --recipients 1000 --repeats 1
"""

from __future__ import annotations

import argparse
import csv
import email.parser
import email.policy
import itertools
import multiprocessing
import os
import platform
import re
import shutil
import smtplib
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine import bootstrap
from engine.audience import Exclusions, recipients
from engine.emails import CampaignEmails
from engine.fields import looks_like_email
from engine.formatting import day, money
from engine.sampledata import generate
from engine.skeleton import compile_mjml
from engine.timespec import parse_now
from engine.workspace import open_workspace

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
HOST = "127.0.0.1"
NOW = "2026-11-01"
SEED = 7
NAME = "newsletter"
SENDER = "news@shop.example"
FROM = f"Example Shop <{SENDER}>"
SUBJECT = "{{ customer.first_name }}, the spring sale is on"
MAILMERGE = "mailmerge==2.3"
GOAL_RAW = 0.8
GOAL_MAILMERGE = 10.0
CAMPAIGN = f"""\
subject: "{SUBJECT}"
preheader: picked from what you bought
segment: {{orders: {{at_least: 0}}}}
template: newsletter.mjml
from: "{FROM}"
coupon: {{percent: 15, valid_for: 30 days, prefix: SALE}}
recommendations: 3
"""


def say(message: str) -> None:
    print(message, flush=True)


# --- the SMTP sink, in a process of its own ---------------------------------------------------

class SinkHandler:
    """aiosmtpd handler: accept and discard every message, counting it by recipient."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.clear()

    def clear(self) -> None:
        self.messages = self.bytes = self.sessions = 0
        self.first = self.last = 0.0
        self.recipients: Counter[str] = Counter()
        self.cpu = time.process_time()

    def take(self) -> dict[str, Any]:
        """What arrived since the last take (the sink's CPU seconds too), and start again."""
        with self.lock:
            stats = {"messages": self.messages, "bytes": self.bytes, "sessions": self.sessions,
                     "first": self.first, "last": self.last, "recipients": self.recipients,
                     "cpu": time.process_time() - self.cpu}
            self.clear()
        return stats

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        with self.lock:
            self.sessions += 1
        return responses

    async def handle_DATA(self, server, session, envelope):
        arrived = time.time()
        with self.lock:
            self.messages += 1
            self.bytes += len(envelope.original_content)
            self.first = self.first or arrived
            self.last = arrived
            self.recipients.update(envelope.rcpt_tos)
        return "250 2.0.0 OK"


def sink_process(control, kind: str) -> None:
    """Run a sink on 127.0.0.1 and a free port; answer "take" on `control` until "stop"."""
    handler = SinkHandler()
    if kind == "aiosmtpd":
        from aiosmtpd.controller import Controller

        class Ephemeral(Controller):
            # aiosmtpd 1.4.6 keeps port 0 for its start-up probe: read the real one first
            def _trigger_server(self) -> None:
                self.port = self.server.sockets[0].getsockname()[1]
                super()._trigger_server()

        controller = Ephemeral(handler, hostname=HOST, port=0)
        controller.start()
        port, stop = controller.port, controller.stop
    else:
        port, stop = _minimal_sink(handler)
    control.send(port)
    try:
        while control.recv() == "take":
            control.send(handler.take())
    finally:
        stop()


def _minimal_sink(handler: SinkHandler) -> tuple[int, Any]:
    """A bare asyncio SMTP server (EHLO, MAIL, RCPT, DATA read in one piece, RSET, QUIT) in a
    thread: the port and a function that stops it."""
    import asyncio
    from types import SimpleNamespace

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        envelope = SimpleNamespace(rcpt_tos=[], original_content=b"")
        writer.write(b"220 sink ESMTP\r\n")
        while line := await reader.readline():
            verb = line[:4].upper()
            if verb == b"EHLO":
                with handler.lock:
                    handler.sessions += 1
                writer.write(b"250-sink\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 PIPELINING\r\n")
            elif verb == b"MAIL":
                envelope.rcpt_tos = []
                writer.write(b"250 OK\r\n")
            elif verb == b"RCPT":
                address = line.decode("utf-8").partition("<")[2].partition(">")[0]
                envelope.rcpt_tos.append(address)
                writer.write(b"250 OK\r\n")
            elif verb == b"DATA":
                writer.write(b"354 go ahead\r\n")
                envelope.original_content = await reader.readuntil(b"\r\n.\r\n")
                writer.write((await handler.handle_DATA(None, None, envelope)).encode() + b"\r\n")
            elif verb == b"QUIT":
                writer.write(b"221 bye\r\n")
                break
            else:   # HELO, RSET, NOOP
                writer.write(b"250 OK\r\n")
            await writer.drain()
        await writer.drain()
        writer.close()

    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(asyncio.start_server(serve, HOST, 0, limit=1 << 26))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    def stop() -> None:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)

    return server.sockets[0].getsockname()[1], stop


class Sink:
    """The sink process, its port, and what it received since the last `take()`."""

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def __enter__(self) -> Sink:
        context = multiprocessing.get_context("spawn")
        self.control, child = context.Pipe()
        self.process = context.Process(target=sink_process, args=(child, self.kind),
                                       daemon=True)
        self.process.start()
        self.port = self.control.recv()
        return self

    def take(self) -> dict[str, Any]:
        self.control.send("take")
        return self.control.recv()

    def __exit__(self, *exc_info: object) -> None:
        self.control.send("stop")
        self.process.join(10)


# --- the workspace ----------------------------------------------------------------------------

def workspace_for(recipients: int, data: Path) -> Path:
    """A workspace whose every customer is a recipient: `recipients` subscribed customers with
    a valid address from the sample-data generator, and the newsletter campaign (cached)."""
    root = data / f"send-{recipients}"
    if (root / "pristine.db").is_file():
        return root
    shutil.rmtree(root, ignore_errors=True)
    say(f"Preparing {root} (once) ...")
    generated = root / "generated"
    generate(generated, customers=int(recipients * 1.3) + 100, seed=SEED,
             until=datetime.fromisoformat(NOW).date())
    (root / "data").mkdir()
    shutil.copy(generated / "products.csv", root / "data" / "products.csv")
    kept: set[str] = set()
    with (generated / "customers.csv").open(encoding="utf-8", newline="") as source, \
            (root / "data" / "customers.csv").open("w", encoding="utf-8", newline="") as out:
        rows = csv.DictReader(source)
        writer = csv.DictWriter(out, rows.fieldnames or [], lineterminator="\n")
        writer.writeheader()
        for row in rows:
            if len(kept) < recipients and row["subscribed"] == "true" \
                    and looks_like_email(row["email"]):
                writer.writerow(row)
                kept.add(row["customer_id"])
    if len(kept) < recipients:
        sys.exit(f"the generator gave only {len(kept):,} usable customers")
    with (generated / "orders.csv").open(encoding="utf-8", newline="") as source, \
            (root / "data" / "orders.csv").open("w", encoding="utf-8", newline="") as out:
        rows = csv.DictReader(source)
        writer = csv.DictWriter(out, rows.fieldnames or [], lineterminator="\n")
        writer.writeheader()
        writer.writerows(row for row in rows if row["customer_id"] in kept)
    shutil.rmtree(generated)
    shutil.copy(REPO / "campaign.toml", root / "campaign.toml")
    (root / "segments.yaml").write_text("segments: {}\n", encoding="utf-8")
    (root / "templates").mkdir()
    shutil.copy(HERE / "newsletter.mjml", root / "templates" / "newsletter.mjml")
    (root / "campaigns").mkdir()
    (root / "campaigns" / f"{NAME}.yaml").write_text(CAMPAIGN, encoding="utf-8")
    workspace = open_workspace(root, environ={"CAMPAIGN_SECRET_KEY": "benchmark"})
    bootstrap.open_database(workspace.settings, lambda text: say(f"  {text}")).dispose()
    with sqlite3.connect(root / "campaign.db") as live, \
            sqlite3.connect(root / "pristine.tmp") as copy:
        live.backup(copy)
    (root / "pristine.tmp").rename(root / "pristine.db")
    return root


def fresh_database(root: Path) -> None:
    """campaign.db as it was before any send: no runs, deliveries or coupons."""
    for suffix in ("", "-wal", "-shm"):
        (root / f"campaign.db{suffix}").unlink(missing_ok=True)
    shutil.copyfile(root / "pristine.db", root / "campaign.db")


def configure(root: Path, connections: int) -> None:
    """[sending] rate 100000 (no limit in practice) and `connections` connections."""
    path = root / "campaign.toml"
    text = (REPO / "campaign.toml").read_text(encoding="utf-8")
    text, rates = re.subn(r"(?m)^rate = .*$", "rate = 100000", text)
    text, pools = re.subn(r"(?m)^connections = .*$", f"connections = {connections}", text)
    if rates != 1 or pools != 1:
        sys.exit("campaign.toml has no single 'rate =' and 'connections =' line under [sending]")
    path.write_text(text, encoding="utf-8")


def environment(root: Path, port: int | None = None) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if key not in ("CAMPAIGN_DATABASE_URL", "CAMPAIGN_SMTP_URL", "CAMPAIGN_DKIM_KEY")}
    env.update(CAMPAIGN_WORKSPACE=str(root), CAMPAIGN_SECRET_KEY="benchmark")
    if port is not None:
        env["CAMPAIGN_SMTP_URL"] = f"smtp://{HOST}:{port}"
    return env


def campaign_command() -> list[str]:
    """The `campaign` CLI of this interpreter's environment."""
    script = Path(sys.executable).with_name("campaign")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "from cli import cli; cli(prog_name='campaign')"]


@dataclass
class Child:
    wall: float
    cpu: float
    output: str


def run_children(commands: list[list[str]], env: dict[str, str], log: Path) -> Child:
    """Run the commands at once and wait for all: wall seconds, their CPU seconds, output."""
    logs = [log.with_suffix(f".{number}.log") for number in range(len(commands))]
    started = time.perf_counter()
    procs = []
    for command, path in zip(commands, logs, strict=True):
        with path.open("wb") as out:
            procs.append(subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL))
    cpu = 0.0
    failed = []
    for proc, path in zip(procs, logs, strict=True):
        _pid, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        cpu += usage.ru_utime + usage.ru_stime
        if proc.returncode:
            failed.append(f"{' '.join(proc.args[:3])}... exit {proc.returncode}:\n"
                          f"{path.read_text(encoding='utf-8', errors='replace')[-3000:]}")
    wall = time.perf_counter() - started
    if failed:
        sys.exit("\n".join(failed))
    return Child(wall, cpu, "".join(path.read_text(encoding="utf-8", errors="replace")
                                    for path in logs))


# --- the three contenders ---------------------------------------------------------------------

@dataclass
class Result:
    label: str
    wall: float
    cpu: float                 # CPU seconds of the sending side (not the sink)
    sink: dict[str, Any]
    started: float             # time.time() at the start
    extra: str = ""

    @property
    def window(self) -> float:
        return self.sink["last"] - self.sink["first"]


def verify(label: str, sink: dict[str, Any], expected: Counter[str]) -> None:
    received = sink["recipients"]
    if received != expected:
        missing = sum((expected - received).values())
        extra = sum((received - expected).values())
        sys.exit(f"{label}: the sink received {sink['messages']:,} messages, expected "
                 f"{sum(expected.values()):,} ({missing:,} missing, {extra:,} unexpected)")


def run_engine(root: Path, sink: Sink, expected: Counter[str]) -> Result:
    fresh_database(root)
    sink.take()
    started = time.time()
    child = run_children([[*campaign_command(), "send", NAME, "--yes", "--now", NOW]],
                         environment(root, sink.port), root / "engine")
    stats = sink.take()
    verify("engine", stats, expected)
    total = sum(expected.values())
    if f"delivered {total:,}, failed 0, deferred 0" not in child.output:
        sys.exit(f"engine: unexpected report:\n{child.output}")
    with sqlite3.connect(root / "campaign.db") as db:
        begun, ended = (datetime.fromisoformat(value).replace(tzinfo=UTC).timestamp()
                        for value in db.execute("SELECT started_at, finished_at FROM runs")
                        .fetchone())
        states = dict(db.execute("SELECT state, count(*) FROM deliveries GROUP BY state"))
    if states != {"sent": total}:
        sys.exit(f"engine: the ledger says {states}")
    extra = (f"start-up to run start {begun - started:.2f} s, run (audience, ledger, rendering, "
             f"sending) {ended - begun:.2f} s; first message after {stats['first'] - started:.2f}"
             " s")
    return Result("engine (campaign send)", child.wall, child.cpu, stats, started, extra)


def load_outbox(outbox: Path) -> list[tuple[str, bytes, bool]]:
    """(recipient, message, needs SMTPUTF8) of every .eml file, in order."""
    parser = email.parser.BytesHeaderParser(policy=email.policy.SMTPUTF8)
    messages = []
    for path in sorted(outbox.glob("*.eml")):
        data = path.read_bytes()
        recipient = parser.parsebytes(data)["To"].addresses[0].addr_spec
        messages.append((recipient, data, not recipient.isascii()))
    return messages


def run_raw(messages: list[tuple[str, bytes, bool]], connections: int, sink: Sink,
            expected: Counter[str]) -> Result:
    sink.take()
    counter = itertools.count()
    errors: list[BaseException] = []

    def work() -> None:
        try:
            with smtplib.SMTP(HOST, sink.port) as smtp:
                while (index := next(counter)) < len(messages):
                    recipient, data, utf8 = messages[index]
                    smtp.sendmail(SENDER, [recipient], data,
                                  mail_options=["SMTPUTF8"] if utf8 else [])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(connections)]
    started = time.time()
    wall, cpu = time.perf_counter(), time.process_time()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if errors:
        sys.exit(f"raw smtplib: {errors[0]!r}")
    stats = sink.take()
    verify("raw smtplib", stats, expected)
    return Result(f"raw smtplib, {connections} thread{'s' if connections > 1 else ''}", wall,
                  cpu, stats, started)


def mailmerge_venv(data: Path) -> Path:
    """The mailmerge command, installed from PyPI into its own virtualenv when missing."""
    venv = data / "mailmerge-venv"
    command = venv / "bin" / "mailmerge"
    if not command.is_file():
        say(f"Installing {MAILMERGE} from PyPI into {venv} (once) ...")
        python = shutil.which("python3") or sys.executable
        subprocess.run([python, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", MAILMERGE], check=True)
    return command


def mailmerge_files(root: Path, port: int, connections: int) -> tuple[Path, list[Path], Path]:
    """Template, CSV database (whole and in `connections` slices) and server config."""
    folder = root / "mailmerge"
    folder.mkdir(exist_ok=True)
    source = (HERE / "newsletter.mjml").read_text(encoding="utf-8")
    loop = re.search(r"\{% for p in recommendations %\}(.*?)\{% endfor %\}", source, re.S)
    if loop is None:
        sys.exit("newsletter.mjml has no loop over recommendations to unroll")
    source = (source[:loop.start()]
              + "".join(re.sub(r"\bp\.", f"p{n}.", loop[1]) for n in (1, 2, 3))
              + source[loop.end():])
    columns: dict[str, tuple[str, str | None]] = {}   # column -> (path, filter)

    def column(match: re.Match[str]) -> str:
        name = match[1].replace(".", "_")
        columns[name] = (match[1], match[2])
        return "{{" + name + "}}"   # no spaces: MJML would escape them in links

    for path in re.findall(r"\{%\s*if\s+([\w.]+)\s*%\}", source):
        columns[path.replace(".", "_")] = (path, None)
    source = re.sub(r"\{%\s*if\s+([\w.]+)\s*%\}",
                    lambda m: "{% if " + m[1].replace(".", "_") + " %}", source)
    source = re.sub(r"\{\{\s*([\w.]+)\s*(?:\|\s*(\w+)\s*)?\}\}", column, source)
    html = compile_mjml(source)
    if re.search(r"\{\{[^}]*%|%[^{]*\}\}", html):
        sys.exit("the MJML compile escaped a template placeholder")
    template = folder / "template.txt"
    template.write_text(f"TO: {{{{ email }}}}\nSUBJECT: {{{{ customer_first_name }}}}, the spring "
                        f"sale is on\nFROM: {FROM}\nContent-Type: text/html\n\n{html}",
                        encoding="utf-8")
    (folder / "server.conf").write_text(
        f"[smtp_server]\nhost = {HOST}\nport = {port}\nsecurity = Never\nratelimit = 0\n",
        encoding="utf-8")

    fresh_database(root)
    workspace = open_workspace(root, environ={"CAMPAIGN_SECRET_KEY": "benchmark"})
    engine = bootstrap.open_database(workspace.settings, say)
    now = parse_now(NOW)
    shop = workspace.settings.shop
    rows = []
    with engine.connect() as connection, engine.connect() as members:
        emails = CampaignEmails(workspace, connection, NAME, now)
        ids = [customer for customer, _address in recipients(
            members, emails.audience_query(), workspace.settings.sending, now, Exclusions())]
        for start in range(0, len(ids), 500):
            for context in emails.builder.build(ids[start:start + 500]):
                customer = context["customer"]
                row = {"email": customer.email}
                for name, (path, filter_name) in columns.items():
                    row[name] = _value(context, path, filter_name, shop.currency,
                                       customer.locale)
                rows.append(row)
    engine.dispose()
    whole = folder / "database.csv"
    slices = [folder / f"database-{n + 1}-of-{connections}.csv" for n in range(connections)]
    for path, part in [(whole, rows)] + [(slices[n], rows[n::connections])
                                         for n in range(connections)]:
        with path.open("w", encoding="utf-8", newline="") as out:
            writer = csv.DictWriter(out, ["email", *columns])
            writer.writeheader()
            writer.writerows(part)
    return template, [whole, *slices], folder / "server.conf"


def _value(context: dict[str, Any], path: str, filter_name: str | None, currency: str,
           locale: str | None) -> str:
    """The value of a dotted template path in an engine context, as text."""
    head, *attributes = path.split(".")
    if head[:1] == "p" and head[1:].isdigit():
        products = context["recommendations"]
        number = int(head[1:]) - 1
        if number >= len(products):
            return ""
        value = products[number]
    else:
        value = context[head]
    for attribute in attributes:
        value = getattr(value, attribute)
    if value is None:
        return ""
    if filter_name == "money":
        return money(value, currency, locale)
    if filter_name == "date":
        return day(value, locale)
    return str(value)


def run_mailmerge(command: Path, files: tuple[Path, list[Path], Path], processes: int,
                  sink: Sink, expected: Counter[str], root: Path) -> Result:
    template, databases, config = files
    chosen = databases[:1] if processes == 1 else databases[1:]
    sink.take()
    started = time.time()
    child = run_children([[str(command), "--no-dry-run", "--no-limit", "--template",
                           str(template), "--database", str(database), "--config", str(config),
                           "--output-format", "raw"] for database in chosen],
                         {key: value for key, value in os.environ.items()
                          if key != "PYTHONPATH"}, root / "mailmerge" / "run")
    stats = sink.take()
    verify(f"mailmerge x{processes}", stats, expected)
    label = "mailmerge 2.3, 1 process" if processes == 1 else \
        f"mailmerge 2.3, {processes} processes"
    return Result(label, child.wall, child.cpu, stats, started)


# --- the report -------------------------------------------------------------------------------

def row(result: Result, total: int) -> str:
    sink = result.sink
    return (f"  {result.label:<30} {total:>7,} {result.wall:>8.2f} {total / result.wall:>9,.0f}"
            f" {result.window:>8.2f} {total / max(result.window, 1e-9):>9,.0f}"
            f" {result.cpu:>8.2f} {sink['cpu']:>8.2f} {sink['sessions']:>6,}"
            f" {sink['bytes'] / sink['messages'] / 1024:>7.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=5_000)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sink", choices=("aiosmtpd", "minimal"), default="aiosmtpd",
                        help="aiosmtpd (default), or a minimal asyncio SMTP server that reads "
                             "DATA in one piece, to see past aiosmtpd's own CPU cost")
    parser.add_argument("--data", type=Path, default=HERE / ".data")
    args = parser.parse_args()
    root = workspace_for(args.recipients, args.data)
    configure(root, args.connections)
    command = mailmerge_venv(args.data)
    total = args.recipients

    outbox = root / "outbox"
    shutil.rmtree(outbox, ignore_errors=True)
    fresh_database(root)
    say(f"Building the messages for raw smtplib: campaign send {NAME} --dry-run --outbox ...")
    run_children([[*campaign_command(), "send", NAME, "--dry-run", "--now", NOW, "--outbox",
                   str(outbox)]], environment(root), root / "dryrun")
    messages = load_outbox(outbox)
    expected = Counter(recipient for recipient, _data, _utf8 in messages)
    if len(messages) != total or len(expected) != total:
        sys.exit(f"the dry run planned {len(messages):,} messages to {len(expected):,} "
                 f"addresses, not {total:,}")
    results: dict[str, list[Result]] = {}
    with Sink(args.sink) as sink:
        say(f"Sink: {args.sink} in process {sink.process.pid} on {HOST}:{sink.port}")
        say("Writing the mailmerge template and database ...")
        files = mailmerge_files(root, sink.port, args.connections)
        say(f"# send benchmark, {platform.python_implementation()} {platform.python_version()}"
            f", {platform.machine()}, {os.cpu_count()} cores, {total:,} recipients, "
            f"{args.connections} connections, newsletter.mjml, SQLite, {args.sink} sink")
        for repeat in range(1, args.repeats + 1):
            actions = [lambda: run_engine(root, sink, expected),
                       lambda: run_raw(messages, args.connections, sink, expected),
                       lambda: run_mailmerge(command, files, args.connections, sink, expected,
                                             root),
                       lambda: run_mailmerge(command, files, 1, sink, expected, root)]
            for action in actions[:3] if args.connections == 1 else actions:
                result = action()
                results.setdefault(result.label, []).append(result)
                say(f"  repeat {repeat}: {result.label:<30} {result.wall:7.2f} s wall, "
                    f"{total / result.wall:7,.0f} messages/s; window {result.window:6.2f} s; "
                    f"CPU {result.cpu:6.2f} s, sink CPU {result.sink['cpu']:6.2f} s; "
                    f"{result.sink['sessions']:,} connections"
                    + (f"; {result.extra}" if result.extra else ""))
    best = {label: min(runs, key=lambda r: r.wall) for label, runs in results.items()}
    say("")
    say(f"  best of {args.repeats}; every run delivered exactly one message to each of the "
        f"{total:,} recipients")
    say(f"  {'sender':<30} {'msgs':>7} {'wall s':>8} {'msgs/s':>9} {'window':>8} {'msgs/s':>9}"
        f" {'CPU s':>8} {'sink CPU':>8} {'conns':>6} {'KB/msg':>7}")
    for result in best.values():
        say(row(result, total))
    engine = best["engine (campaign send)"]
    raw = next(result for label, result in best.items() if label.startswith("raw smtplib"))
    one = best["mailmerge 2.3, 1 process"]
    many = best.get(f"mailmerge 2.3, {args.connections} processes", one)
    say(f"  engine: {engine.extra}")
    ratio_raw = raw.wall / engine.wall
    say(f"  engine / raw smtplib: {ratio_raw:.2f} over wall time (goal >= {GOAL_RAW}: "
        f"{'met' if ratio_raw >= GOAL_RAW else 'missed'}); {raw.window / engine.window:.2f} "
        "over the sink's window")
    for other in (many, one) if many is not one else (one,):
        ratio = other.wall / engine.wall
        say(f"  engine / {other.label}: {ratio:.1f}x over wall time (goal >= "
            f"{GOAL_MAILMERGE:.0f}x: {'met' if ratio >= GOAL_MAILMERGE else 'missed'}); "
            f"{other.window / engine.window:.1f}x over the sink's window")


if __name__ == "__main__":
    main()
