"""Benchmark: peak memory of `campaign send NAME --dry-run` at 10,000 and 1,000,000 recipients.

The plan streams the audience and renders every recipient's email a batch at a time, so its
memory should not grow with the audience. Each size gets a workspace of its own, generated
once with the sample-data generator (seed 7) and imported through the engine, kept in
--data/dryrun-N/ for later runs: the example workspace's campaign.toml and templates, and the
example spring campaign (templates/spring.mjml) with a segment of every customer. Then
`campaign send spring --dry-run` runs as a child process per size; its peak resident set is
`ru_maxrss` from `os.wait4` on that very child (not RUSAGE_CHILDREN, which would also count
the import). The goals: the largest size within 10% of the smallest, and under 250 MB
(MB = 1,000,000 bytes here).

    python benchmarks/dryrun_memory.py                        # 10,000 and 1,000,000
    python benchmarks/dryrun_memory.py --sizes 10000,100000   # a quicker check
    python benchmarks/dryrun_memory.py --without-tiers        # the example without its tiers

Preparing 1,000,000 customers (about 5.7 million order lines) takes about 5 minutes once; the
dry run itself renders every email (about 2,500 a second here), so about 6 minutes at
1,000,000, with or without the example's loyalty tiers (each batch's tiers are computed from
that batch's orders only).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
NOW = "2026-11-01"
SEED = 7
GROWTH_GOAL = 0.10
LIMIT_MB = 250
POLL = 1.0
REPORT_EVERY = 30.0
SEGMENTS = """\
segments:
  everyone:
    description: Every customer
    orders: {at_least: 0}
"""


def say(message: str) -> None:
    print(message, flush=True)


def campaign_command() -> list[str]:
    """The `campaign` CLI of this interpreter's environment."""
    script = Path(sys.executable).with_name("campaign")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "from cli import cli; cli(prog_name='campaign')"]


def prepare(size: int, root: Path) -> None:
    """Generate `size` customers and import them into root/campaign.db (in a child process)."""
    sys.path.insert(0, str(REPO))
    from engine import bootstrap
    from engine.sampledata import generate
    from engine.workspace import open_workspace

    started = time.perf_counter()
    say(f"  generating {size:,} customers (seed {SEED}) into {root / 'data'} ...")
    done = [0, 0]   # customers written, tenths reported

    def generated(more: int) -> None:
        done[0] += more
        if done[0] * 10 // size > done[1]:
            done[1] = done[0] * 10 // size
            say(f"    {done[0]:,} customers ({time.perf_counter() - started:.0f} s)")

    generate(root / "data", customers=size, seed=SEED,
             until=datetime.fromisoformat(NOW).date(), progress=generated)
    say(f"  generated in {time.perf_counter() - started:.0f} s; importing ...")
    reported: dict[str, int] = {}

    def progress(step_name: str, done: int, total: int) -> None:
        tenth = done * 10 // max(total, 1)
        if reported.get(step_name, -1) < tenth:
            reported[step_name] = tenth
            say(f"    {step_name}: {done:,} of {total:,} "
                f"({time.perf_counter() - started:.0f} s)")

    workspace = open_workspace(root, environ={"CAMPAIGN_SECRET_KEY": "benchmark"})
    engine = bootstrap.open_database(workspace.settings, lambda text: say(f"  {text}"),
                                     progress)
    engine.dispose()
    say(f"  workspace ready after {time.perf_counter() - started:.0f} s")


def settings_text(without_tiers: bool) -> str:
    """The example campaign.toml, optionally without its [[tiers]] tables."""
    text = (REPO / "campaign.toml").read_text(encoding="utf-8")
    if not without_tiers:
        return text
    kept, in_tiers = [], False
    for line in text.splitlines(keepends=True):
        if line.startswith("["):
            in_tiers = line.strip() == "[[tiers]]"
        if not in_tiers:
            kept.append(line)
    return "".join(kept)


def workspace_for(size: int, data: Path, without_tiers: bool) -> Path:
    """A workspace with `size` sample customers and the spring campaign to everyone (cached)."""
    root = data / f"dryrun-{size}"
    ready = root / "ready"
    if ready.is_file():
        (root / "campaign.toml").write_text(settings_text(without_tiers), encoding="utf-8")
        return root
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    (root / "campaign.toml").write_text(settings_text(without_tiers), encoding="utf-8")
    shutil.copytree(REPO / "templates", root / "templates")
    (root / "segments.yaml").write_text(SEGMENTS, encoding="utf-8")
    (root / "campaigns").mkdir()
    spring = (REPO / "campaigns" / "spring.yaml").read_text(encoding="utf-8")
    spring, found = re.subn(r"(?m)^segment: .*$", "segment: everyone", spring)
    if found != 1:
        sys.exit("campaigns/spring.yaml has no 'segment:' line to replace")
    (root / "campaigns" / "spring.yaml").write_text(spring, encoding="utf-8")
    say(f"Preparing {root} (once) ...")
    child = multiprocessing.get_context("spawn").Process(target=prepare, args=(size, root))
    child.start()
    child.join()
    if child.exitcode != 0:
        sys.exit(f"preparing {root} failed (exit {child.exitcode})")
    ready.write_text("ok\n", encoding="utf-8")
    return root


def _proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a running process, in kB ({} when it is gone)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text(encoding="ascii")
    except OSError:
        return {}
    return {key: int(value.split()[0]) for key, value in
            (line.split(":", 1) for line in text.splitlines() if line.startswith("Vm"))}


def dry_run(root: Path) -> tuple[float, int, int, str]:
    """Wall seconds, peak RSS in bytes, emails rendered, and the output of one dry run."""
    env = {key: value for key, value in os.environ.items()
           if key not in ("CAMPAIGN_DATABASE_URL", "CAMPAIGN_SMTP_URL", "CAMPAIGN_DKIM_KEY")}
    env.update(CAMPAIGN_WORKSPACE=str(root), CAMPAIGN_SECRET_KEY="benchmark")
    log = root / "dryrun.log"
    with log.open("wb") as out:
        started = time.perf_counter()
        proc = subprocess.Popen([*campaign_command(), "send", "spring", "--dry-run", "--now",
                                 NOW], env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
        last_report = started
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            time.sleep(POLL)
            if time.perf_counter() - last_report >= REPORT_EVERY:
                last_report = time.perf_counter()
                vm = _proc_status(proc.pid)
                if vm:
                    say(f"    ... {last_report - started:5.0f} s, RSS {vm['VmRSS'] / 1000:.0f} MB"
                        f" (peak so far {vm['VmHWM'] / 1000:.0f} MB)")
        wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    output = log.read_text(encoding="utf-8", errors="replace")
    if proc.returncode != 0:
        sys.exit(f"the dry run in {root} failed (exit {proc.returncode}):\n{output[-3000:]}")
    rendered = re.search(r"Rendered ([\d,]+) email", output)
    return wall, usage.ru_maxrss * 1024, int(rendered[1].replace(",", "")) if rendered else 0, \
        output


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,1000000",
                        help="customers per workspace, comma-separated (default 10000,1000000)")
    parser.add_argument("--without-tiers", action="store_true",
                        help="leave the loyalty tiers out of campaign.toml (spring.mjml does not "
                             "show them; their query scans every order for each batch of 500)")
    parser.add_argument("--data", type=Path, default=HERE / ".data")
    args = parser.parse_args()
    sizes = [int(size.replace("_", "")) for size in args.sizes.split(",")]
    roots = {size: workspace_for(size, args.data, args.without_tiers) for size in sizes}
    say(f"# dry-run memory benchmark, {platform.python_implementation()} "
        f"{platform.python_version()}, {platform.machine()}, {os.cpu_count()} cores, "
        f"spring.mjml to every customer, SQLite, "
        f"{'without' if args.without_tiers else 'with'} loyalty tiers")
    results = []
    for size in sizes:
        say(f"  campaign send spring --dry-run, {size:,} customers ...")
        wall, peak, rendered, output = dry_run(roots[size])
        plan = output.splitlines()[0] if output else ""
        say(f"    {plan}")
        say(f"    rendered {rendered:,} emails in {wall:.1f} s ({rendered / wall:,.0f}/s); "
            f"peak RSS {peak / 1e6:.1f} MB")
        results.append((size, rendered, wall, peak))
    base = results[0][3]
    say("")
    say(f"  {'customers':>10}  {'emails':>10}  {'wall s':>8}  {'emails/s':>8}  "
        f"{'peak RSS MB':>11}  {'vs first':>8}")
    for size, rendered, wall, peak in results:
        say(f"  {size:>10,}  {rendered:>10,}  {wall:>8.1f}  {rendered / wall:>8,.0f}  "
            f"{peak / 1e6:>11.1f}  {peak / base:>7.3f}x")
    size, _rendered, _wall, peak = results[-1]
    growth = peak / base - 1
    say(f"  growth {results[0][0]:,} -> {size:,}: {growth:+.1%} (goal within "
        f"{GROWTH_GOAL:.0%}: {'met' if growth <= GROWTH_GOAL else 'missed'}); peak at "
        f"{size:,}: {peak / 1e6:.1f} MB (goal under {LIMIT_MB} MB: "
        f"{'met' if peak < LIMIT_MB * 1e6 else 'missed'})")


if __name__ == "__main__":
    main()
