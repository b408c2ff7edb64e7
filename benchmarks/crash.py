"""Benchmark: crash safety of `campaign send`, killed with SIGKILL at random moments.

A real `campaign send NAME --yes` (a subprocess, SQLite) delivers a campaign to every customer
of the example workspace's sample data through a local SMTP sink (aiosmtpd in this process, on
127.0.0.1), which records every message it accepts with its recipient and Message-ID. Each
round starts the send (the first creates the run, the others resume it) and kills it with
SIGKILL after a random delay (seeded). After the kill rounds, `campaign send NAME --yes
--resend-unknown` and, if still needed, plain resumes finish the run. Then, per ledger row, the
messages the sink accepted are counted:

- lost: a recipient of the run that got no message (must be 0);
- duplicates from resent unknowns: a recipient that got two messages, whose delivery was left
  in doubt by a kill (`sending`, then `unknown`) and resent by --resend-unknown: allowed, since
  the first message may have reached the server before the kill;
- duplicates otherwise: any other recipient with more than one message (must be 0).

    python benchmarks/crash.py                       # 20 kill rounds, 2,000 customers
    python benchmarks/crash.py --rounds 40 --seed 7 --keep
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from aiosmtpd.controller import Controller

REPO = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
NAME = "crash"
NOW = ("--now", "2026-11-01")
CAMPAIGN = """\
description: Every customer, for benchmarks/crash.py
subject: "{{ customer.first_name }}, spring picks for you"
preheader: New arrivals for your garden
segment: {orders: {at_least: 0}}
template: spring.mjml
from: "Green Shop <news@greenshop.example>"
coupon: {percent: 15, valid_for: 30 days, prefix: SPRING}
recommendations: 3
"""
CLI = [sys.executable, "-c", "from cli import cli; cli()"]
MESSAGE_ID = re.compile(rb"(?im)^Message-ID:[ \t]*(<[^>\r\n]*>)")
BECAME_UNKNOWN = re.compile(r"([\d,]+) messages? of an interrupted send may or may not")
OPEN_STATES = ("queued", "sending", "deferred", "unknown")


@dataclass(frozen=True)
class Accepted:
    """A message the sink accepted."""

    recipient: str
    message_id: str
    at: float                  # time.monotonic() when stored


class Sink:
    """An aiosmtpd handler that accepts every message and records recipient and Message-ID."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.accepted: list[Accepted] = []

    async def handle_DATA(self, server, session, envelope) -> str:
        found = MESSAGE_ID.search(envelope.original_content.split(b"\r\n\r\n", 1)[0])
        message_id = found.group(1).decode("ascii", "replace") if found else ""
        now = time.monotonic()
        with self.lock:
            for recipient in envelope.rcpt_tos:
                self.accepted.append(Accepted(recipient.lower(), message_id, now))
        return "250 2.0.0 OK queued"

    def count(self) -> int:
        with self.lock:
            return len(self.accepted)

    def since(self, moment: float) -> list[Accepted]:
        with self.lock:
            return [item for item in self.accepted if item.at >= moment]


class EphemeralController(Controller):
    """aiosmtpd 1.4's Controller keeps port 0 and then fails its own start-up check."""

    def _trigger_server(self) -> None:
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


@dataclass
class Round:
    number: int
    delay: float
    killed: bool
    exit_code: int | None
    accepted: int                       # messages the sink accepted during the round
    first_after: float | None           # seconds from start to the round's first message
    states: dict[str, int] = field(default_factory=dict)   # the ledger after the round
    in_doubt: int = 0          # rows this kill left `sending` (unknown at the next resume)
    in_doubt_reached: int = 0  # of those, how many the sink had accepted
    became_unknown: int = 0    # rows this round's resume marked unknown (the last kill's)

    @property
    def kind(self) -> str:
        if not self.killed:
            return "finished"
        if not self.accepted:
            return "before sending"
        if self.states.get("queued", 0) + self.states.get("sending", 0):
            return "mid-send"
        return "after sending"


def make_workspace(root: Path, customers: int, rate: float, connections: int) -> None:
    """The example workspace with the crash campaign, the given sending settings."""
    for name in ("campaign.toml", "campaigns", "templates", "segments.yaml"):
        source = REPO / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, root / name)
    if customers == 2000:
        shutil.copytree(REPO / "data", root / "data")
    else:
        from engine.sampledata import generate
        generate(root / "data", customers=customers, seed=42, until=date(2026, 11, 1))
    settings = root / "campaign.toml"
    text = settings.read_text(encoding="utf-8")
    for key, value in (("rate", rate), ("connections", connections)):
        text, found = re.subn(rf"(?m)^{key} = .*$", f"{key} = {value}", text)
        if found != 1:
            sys.exit(f"campaign.toml: expected one '{key} = ' line under [sending], found {found}")
    settings.write_text(text, encoding="utf-8")
    (root / "campaigns" / f"{NAME}.yaml").write_text(CAMPAIGN, encoding="utf-8")


def environment(root: Path, smtp_url: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("CAMPAIGN_")}
    env.update(CAMPAIGN_WORKSPACE=str(root), CAMPAIGN_SECRET_KEY="crash-benchmark",
               CAMPAIGN_SMTP_URL=smtp_url)
    return env


def run_cli(args: list[str], env: dict[str, str], log: Path, timeout: float | None
            ) -> tuple[bool, int | None, float]:
    """Start the CLI; SIGKILL it after `timeout` seconds. (killed, exit code, start time)."""
    with log.open("wb") as output:
        started = time.monotonic()
        process = subprocess.Popen(CLI + args, cwd=REPO, env=env, stdin=subprocess.DEVNULL,
                                   stdout=output, stderr=subprocess.STDOUT)
        try:
            return False, process.wait(timeout=timeout), started
        except subprocess.TimeoutExpired:
            process.kill()   # SIGKILL
            process.wait()
            return True, None, started


class Ledger:
    """The SQLite ledger, read directly between rounds (no CLI process is running then)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def query(self, sql: str, *params: object) -> list[tuple]:
        if not self.path.exists():
            return []
        connection = sqlite3.connect(self.path)
        try:
            return connection.execute(sql, params).fetchall()
        finally:
            connection.close()

    def run(self) -> tuple[int, str] | None:
        rows = self.query("SELECT id, status FROM runs WHERE campaign = ? ORDER BY id DESC "
                          "LIMIT 1", NAME)
        return rows[0] if rows else None

    def states(self) -> dict[str, int]:
        run = self.run()
        return dict(self.query("SELECT state, count(*) FROM deliveries WHERE run_id = ? "
                               "GROUP BY state", run[0])) if run else {}

    def ids(self, state: str) -> dict[int, str]:
        """The run's rows in `state`: id -> Message-ID."""
        run = self.run()
        return dict(self.query("SELECT id, message_id FROM deliveries WHERE run_id = ? AND "
                               "state = ?", run[0], state)) if run else {}


def states_text(states: dict[str, int]) -> str:
    return ", ".join(f"{state} {states[state]:,}" for state in
                     ("sent", "queued", "sending", "unknown", "deferred", "failed")
                     if states.get(state)) or "no run yet"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20, help="kill rounds (default 20)")
    parser.add_argument("--recipients", type=int, default=2000,
                        help="customers in the sample data (default 2,000: the example "
                             "workspace's data/; other sizes are generated, seed 42)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the kill delays")
    parser.add_argument("--min-delay", type=float, default=0.2,
                        help="shortest time from a round's start to its kill, seconds")
    parser.add_argument("--max-delay", type=float, default=4.0,
                        help="longest time from a round's start to its kill, seconds")
    parser.add_argument("--rate", type=float, default=75,
                        help="[sending] rate, messages per second (default 75: slow enough "
                             "that the queue lasts through the kill rounds)")
    parser.add_argument("--connections", type=int, default=4,
                        help="[sending] connections (default 4)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the workspace, its database and the CLI outputs")
    args = parser.parse_args()
    if args.rounds < 1 or not 0 < args.min_delay <= args.max_delay:
        parser.error("--rounds must be 1 or more and 0 < --min-delay <= --max-delay")
    rng = random.Random(args.seed)
    root = Path(tempfile.mkdtemp(prefix="crash-bench-"))
    sink = Sink()
    controller = EphemeralController(sink, hostname=HOST, port=0)
    controller.start()
    try:
        failed = benchmark(args, rng, root, sink, f"smtp://{HOST}:{controller.port}")
    finally:
        controller.stop()
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    sys.exit(1 if failed else 0)


def benchmark(args: argparse.Namespace, rng: random.Random, root: Path, sink: Sink,
              smtp_url: str) -> bool:
    """Run the rounds, finish the run, print the figures; True when the check failed."""
    make_workspace(root, args.recipients, args.rate, args.connections)
    env = environment(root, smtp_url)
    logs = root / "logs"
    logs.mkdir()
    ledger = Ledger(root / "campaign.db")
    setup = subprocess.run(CLI + ["db", "status"], cwd=REPO, env=env, capture_output=True,
                           text=True)
    if setup.returncode:
        sys.exit(f"campaign db status failed:\n{setup.stdout}{setup.stderr}")
    print(f"# crash benchmark, {platform.python_implementation()} {platform.python_version()}, "
          f"{platform.machine()}, {os.cpu_count()} cores, SQLite {sqlite3.sqlite_version}; "
          f"{args.recipients:,} customers, {args.rounds} kill rounds, seed {args.seed}, kills "
          f"{args.min_delay:g}-{args.max_delay:g} s after start, rate {args.rate:g}/s, "
          f"{args.connections} connections")
    started = time.monotonic()
    rounds: list[Round] = []
    ever_unknown: set[int] = set()     # ledger rows left `sending` by a kill, or `unknown`
    sending: dict[int, str] = {}
    unknown: dict[int, str] = {}
    for number in range(1, args.rounds + 1):
        delay = rng.uniform(args.min_delay, args.max_delay)
        killed, code, began = run_cli(["send", NAME, "--yes", *NOW], env,
                                      logs / f"round-{number:02d}.txt", delay)
        time.sleep(0.1)   # let the sink store what arrived just before the kill
        accepted = sink.since(began)
        reached = {item.message_id for item in sink.since(0)}
        now_sending, now_unknown = ledger.ids("sending"), ledger.ids("unknown")
        fresh = now_sending.keys() - sending.keys()
        done = Round(number, delay, killed, code, len(accepted),
                     min(item.at for item in accepted) - began if accepted else None,
                     ledger.states(), len(fresh) if killed else 0,
                     sum(now_sending[key] in reached for key in fresh) if killed else 0,
                     len(now_unknown.keys() - unknown.keys()))
        sending, unknown = now_sending, now_unknown
        ever_unknown |= sending.keys() | unknown.keys()
        rounds.append(done)
        first = f"{done.first_after:4.2f} s" if done.first_after is not None else "   -  "
        print(f"  round {number:2}: {'killed' if killed else f'exit {code}':>6} after "
              f"{delay:4.2f} s, first message {first}, {done.accepted:4,} accepted "
              f"({done.kind}); marked unknown {done.became_unknown:3}, left in doubt "
              f"{done.in_doubt:3} ({done.in_doubt_reached} had reached the sink); ledger: "
              f"{states_text(done.states)}", flush=True)
        run = ledger.run()
        if not killed and run and run[1] == "finished":
            print("  the run finished before the kill rounds ended: lower --rate")
            break
    kill_seconds = time.monotonic() - started
    # Finish: send the unknown ones again, then resume until the run is finished (bounded).
    unknown_before = ledger.ids("unknown").keys() | ledger.ids("sending").keys()
    ever_unknown |= unknown_before
    reached_before = Counter(item.message_id for item in sink.since(0))
    finals: list[tuple[str, int | None, str]] = []
    for attempt in range(6):
        run = ledger.run()
        if attempt and (run is None or run[1] == "finished"):
            break
        extra = ["--resend-unknown"] if attempt == 0 else []
        log = logs / f"final-{attempt + 1}.txt"
        killed, code, _ = run_cli(["send", NAME, "--yes", *extra, *NOW], env, log, 600)
        finals.append((" ".join(["send", NAME, "--yes", *extra]), None if killed else code,
                       log.read_text(encoding="utf-8", errors="replace")))
    total_seconds = time.monotonic() - started
    return report(args, rounds, finals, ledger, sink, ever_unknown, unknown_before,
                  reached_before, kill_seconds, total_seconds)


def report(args: argparse.Namespace, rounds: list[Round], finals: list[tuple[str, int | None,
           str]], ledger: Ledger, sink: Sink, ever_unknown: set[int], unknown_before: set[int],
           reached_before: Counter[str], kill_seconds: float, total_seconds: float) -> bool:
    run = ledger.run()
    rows = ledger.query("SELECT id, lower(email), message_id, state FROM deliveries "
                        "WHERE run_id = ?", run[0]) if run else []
    accepted = sink.since(0)
    by_id = Counter(item.message_id for item in accepted)
    by_recipient = Counter(item.recipient for item in accepted)
    ledger_ids = {row[2] for row in rows}
    wrong = [item for item in accepted if item.message_id not in ledger_ids]
    addressed = {row[2]: row[1] for row in rows}
    misaddressed = sum(addressed.get(item.message_id, item.recipient) != item.recipient
                       for item in accepted)
    lost = [row for row in rows if by_recipient[row[1]] == 0]
    twice = [row for row in rows if by_recipient[row[1]] > 1]
    from_unknown = [row for row in twice if row[0] in ever_unknown and by_id[row[2]] == 2
                    and by_recipient[row[1]] == 2]
    otherwise = [row for row in twice if row not in from_unknown]
    resent_reached = sum(reached_before[row[2]] > 0 for row in rows if row[0] in unknown_before)
    final_states = Counter(row[3] for row in rows)
    kinds = Counter(done.kind for done in rounds)
    print("\nfinish:")
    for command, code, output in finals:
        became = BECAME_UNKNOWN.search(output)
        ledger_line = next((line for line in output.splitlines()
                            if line.startswith("Ledger of run")), "(no ledger line)")
        print(f"  campaign {command}: {'exit ' + str(code) if code is not None else 'TIMEOUT'}"
              f"; reported unknown: {became.group(1) if became else 0}; {ledger_line}")
    print("\nsummary:")
    print(f"  rounds: {len(rounds)} ({kill_seconds:.0f} s; {total_seconds:.0f} s with the "
          "finish)")
    print(f"  kills that landed mid-send: {kinds['mid-send']}; before the first message: "
          f"{kinds['before sending']}; after the last: {kinds['after sending']}; "
          f"rounds that ended before their kill: {kinds['finished']}")
    print(f"  messages accepted by the sink: {len(accepted):,}")
    print(f"  recipients (ledger rows of run {run[0] if run else '-'}): {len(rows):,}; final "
          f"ledger: {states_text(dict(final_states))}; run {run[1] if run else '-'}")
    print("  unknown per round (rows the round's resume marked unknown): "
          f"{', '.join(str(done.became_unknown) for done in rounds)}")
    doubt = [done for done in rounds if done.killed]
    print(f"  left in doubt per kill (rows left 'sending'): "
          f"{', '.join(str(done.in_doubt) for done in doubt)}; of these, messages the sink "
          f"had accepted: {', '.join(str(done.in_doubt_reached) for done in doubt)}")
    print(f"  unknown, total: {len(ever_unknown):,}; resent with --resend-unknown: "
          f"{len(unknown_before):,}, of which {resent_reached:,} had reached the sink before "
          "(the others had not)")
    print(f"  duplicates from resent unknowns: {len(from_unknown):,}")
    print(f"  duplicates otherwise: {len(otherwise):,}")
    print(f"  lost: {len(lost):,}")
    print(f"  messages with a Message-ID not in the ledger: {len(wrong):,}; to another "
          f"address than the ledger row: {misaddressed:,}")
    for title, problem in (("duplicate", otherwise), ("lost", lost)):
        for row_id, email, message_id, state in problem[:10]:
            was = "was" if row_id in ever_unknown else "never"
            print(f"    {title}: delivery {row_id} {email} {message_id}: ledger {state}, sink "
                  f"{by_recipient[email]} message(s), {was} unknown")
    finished = run is not None and run[1] == "finished"
    failed = bool(otherwise or lost or wrong or misaddressed or not finished)
    print(f"  {'FAIL' if failed else 'PASS'}: duplicates otherwise {len(otherwise)} (must be 0), "
          f"lost {len(lost)} (must be 0), stray messages {len(wrong) + misaddressed} (must be 0)"
          f", run {'finished' if finished else 'NOT finished'}")
    return failed


if __name__ == "__main__":
    main()
