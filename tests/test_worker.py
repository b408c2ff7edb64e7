"""`campaign schedule`, `campaign worker` and `campaign status` on SQLite, with a real SMTP server
and an injected clock (--now): one-off, local-time, recurring and triggered sends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from engine import senders
from tests.shops import Shop
from tests.smtp_servers import Recorder, slow, smtp_server


@pytest.fixture(autouse=True)
def _only_this_tests_campaigns_run_by_themselves(shop):
    """The example's lifecycle campaign (thank_you) would be sent by every pass: leave it out."""
    (shop.root / "campaigns" / "thank_you.yaml").unlink()


def _at(moment: str) -> tuple[str, str]:
    return ("--now", moment)


def _deliveries(shop: Shop) -> dict[str, int]:
    return dict(shop.rows("SELECT state, count(*) FROM deliveries GROUP BY state"))


def test_schedules_are_added_listed_and_cancelled(shop):
    added = shop.run("schedule", "ten", "--at", "2026-11-02 09:00", "--tz", "Europe/Berlin",
                     *_at("2026-11-01"))
    assert added.exit_code == 0, added.output
    assert added.stdout == (
        "Scheduled ten for 2026-11-02 09:00 Europe/Berlin (2026-11-02 08:00 UTC) as schedule 1.\n"
        "The audience is picked when the send starts. A worker must be running: "
        "campaign worker.\n")
    local = shop.run("schedule", "add", "ten", "--at", "2026-11-03", "--local-time", "09:00",
                     *_at("2026-11-01"))
    assert local.stdout.startswith("Scheduled ten for 2026-11-03 at 09:00 in each customer's "
                                   "time zone (from 2026-11-02 19:00 UTC) as schedule 2.\n")
    listing = shop.run("schedule", "list")
    assert listing.stdout.splitlines() == [
        "ID  CAMPAIGN  DUE (UTC)         WHEN           STATUS     LAST RUN",
        " 1  ten       2026-11-02 08:00  Europe/Berlin  scheduled",
        " 2  ten       2026-11-02 19:00  09:00 local    scheduled",
        "Audiences are picked when each send starts, not when it was scheduled."]
    cancelled = shop.run("schedule", "cancel", "1")
    assert cancelled.stdout == "Cancelled schedule 1 (ten, due 2026-11-02 08:00 UTC).\n"
    again = shop.run("schedule", "cancel", "1")
    assert again.exit_code == 1
    assert "cannot cancel schedule 1: it is already cancelled" in again.output
    assert [line.split()[0] for line in shop.run("schedule", "list").stdout.splitlines()[1:-1]] \
        == ["2"]


@pytest.mark.parametrize(("args", "message"), [
    (("--at", "2026-10-31 09:00"), "--at 2026-10-31 09:00 (UTC) is in the past"),
    (("--at", "2026-11-02 09:00", "--tz", "Europe/Berln"), "--tz: unknown time zone"),
    (("--at", "next week"), "--at: 'next week' is not a date and time"),
    (("--at", "2026-11-02 09:00", "--local-time", "09:00"), "has a time of day, and --local"),
    (("--at", "2026-11-02", "--local-time", "9 am"), "--local-time: '9 am' is not a time"),
])
def test_a_bad_schedule_is_refused_with_what_to_do(shop, args, message):
    result = shop.run("schedule", "ten", *args, *_at("2026-11-01"))
    assert result.exit_code == 1 and message in result.output, result.output
    assert shop.rows("SELECT count(*) FROM schedules") == [(0,)]


def test_the_worker_starts_a_due_schedule_once_and_delivers_it(shop):
    recorder = Recorder()
    with smtp_server(recorder) as server:
        shop.smtp_url = server.url()
        shop.run("schedule", "ten", "--at", "2026-11-01 10:00", *_at("2026-11-01 08:00"))
        early = shop.run("worker", "--once", *_at("2026-11-01 09:59"))
        assert early.exit_code == 0, early.output
        assert shop.rows("SELECT count(*) FROM runs") == [(0,)]
        due = shop.run("worker", "--once", *_at("2026-11-01 10:00"))
        later = shop.run("worker", "--once", *_at("2026-11-01 10:05"))
    assert due.exit_code == later.exit_code == 0, due.output + later.output
    addresses = shop.addresses()
    assert all(recorder.received(address) == 1 for address in addresses)
    assert len(recorder.deliveries) == len(addresses)
    assert shop.rows("SELECT id, status, occurrence FROM runs") == [(1, "finished", "schedule:1")]
    assert shop.rows("SELECT status, run_id FROM schedules") == [("started", 1)]
    assert shop.rows("SELECT count(*) FROM workers WHERE stopped_at IS NULL") == [(0,)]


def test_local_time_delivers_at_that_hour_in_each_customers_zone(shop):
    addresses = shop.addresses()
    zones = {addresses[0]: "Pacific/Kiritimati", addresses[1]: "Europe/Berlin",
             addresses[2]: "America/New_York"}
    for address, zone in zones.items():
        shop.rows(f"UPDATE customers SET timezone = '{zone}' WHERE email = '{address}'")
    others = addresses[3:]
    listed = ", ".join(f"'{address}'" for address in others)
    shop.rows(f"UPDATE customers SET timezone = NULL WHERE email IN ({listed})")
    recorder = Recorder()
    with smtp_server(recorder) as server:
        shop.smtp_url = server.url()
        shop.run("schedule", "ten", "--at", "2026-11-02", "--local-time", "09:00",
                 *_at("2026-11-01"))
        received = []
        for moment in ("2026-11-01 19:00", "2026-11-02 08:00", "2026-11-02 09:00",
                       "2026-11-02 14:00"):
            assert shop.run("worker", "--once", *_at(moment)).exit_code == 0
            received.append({a for a in addresses if recorder.received(a)})
    # Kiritimati is UTC+14, Berlin UTC+1 in November, the shop's default zone (for customers
    # without one) UTC, New York UTC-5.
    assert received == [{addresses[0]}, {addresses[0], addresses[1]},
                        {addresses[0], addresses[1], *others}, set(addresses)]
    assert all(recorder.received(address) == 1 for address in addresses)
    assert shop.rows("SELECT status FROM runs") == [("finished",)]


def test_a_recurring_campaign_runs_once_per_occurrence_and_once_after_missed_ones(shop):
    shop.write_campaign("weekly", "schedule: {cron: \"0 9 * * MON\", timezone: Europe/Berlin}\n")
    recorder = Recorder()
    with smtp_server(recorder) as server:
        shop.smtp_url = server.url()
        for moment in ("2026-11-02 07:00",    # sees the schedule: next is Monday 08:00 UTC
                       "2026-11-02 08:00",    # the first occurrence
                       "2026-11-02 08:30",
                       "2026-11-23 10:00",    # three Mondays later: one run, not three
                       "2026-11-23 10:30"):
            assert shop.run("worker", "--once", *_at(moment)).exit_code == 0
    assert shop.rows("SELECT occurrence, status FROM runs ORDER BY id") == [
        ("cron:2026-11-02T08:00", "finished"), ("cron:2026-11-23T08:00", "finished")]
    assert shop.rows("SELECT due_at FROM schedules WHERE status = 'recurring'") == [
        ("2026-11-30 08:00:00.000000",)]
    assert all(recorder.received(address) == 2 for address in shop.addresses())
    shop.write_campaign("weekly", "")   # the schedule is taken out of the file
    stopped = shop.run("worker", "--once", *_at("2026-11-30 10:00"))
    assert ("warning: campaign 'weekly' has no 'schedule:' any more; its recurring sends "
            "stopped") in stopped.output
    assert shop.rows("SELECT count(*) FROM schedules") == [(0,)]
    assert shop.rows("SELECT count(*) FROM runs") == [(2,)]


def test_a_triggered_campaign_reaches_each_customer_once_per_event(shop):
    shop.write_campaign("after_order", "trigger: {after: order, wait: 7 days}\n")
    now = datetime(2026, 10, 20, 12)
    window = (now - timedelta(days=10), now - timedelta(days=7))
    expected = {email for (email,) in shop.rows(
        "SELECT DISTINCT c.email FROM customers c JOIN orders o ON o.customer_id = c.id "
        f"WHERE c.external_id <= 'C0000010' AND c.subscribed "
        f"AND o.placed_at >= '{window[0]:%Y-%m-%d %H:%M:%S}' "
        f"AND o.placed_at <= '{window[1]:%Y-%m-%d %H:%M:%S}'")}
    assert expected, "the sample data has no order in the window: pick another time"
    recorder = Recorder()
    with smtp_server(recorder) as server:
        shop.smtp_url = server.url()
        first = shop.run("worker", "--once", *_at(f"{now:%Y-%m-%d %H:%M}"))
        again = shop.run("worker", "--once", *_at(f"{now + timedelta(minutes=5):%Y-%m-%d %H:%M}"))
    assert first.exit_code == again.exit_code == 0, first.output + again.output
    assert {a for a in shop.addresses() if recorder.received(a)} == expected
    assert all(recorder.received(address) == 1 for address in expected)
    assert shop.rows("SELECT count(*) FROM runs") == [(1,)]
    keys = shop.rows("SELECT event_key FROM triggered WHERE run_id = 1")
    assert keys and all(key.startswith("order:") for (key,) in keys)


def test_quiet_hours_defer_a_triggered_message_to_the_morning(shop):
    shop.set_setting("[sending]", 'quiet_hours = "21:00-08:00"')
    shop.write_campaign("after_order", "trigger: {after: order, wait: 7 days}\n")
    shop.rows("UPDATE customers SET timezone = 'Europe/Berlin'")
    recorder = Recorder()
    with smtp_server(recorder) as server:
        shop.smtp_url = server.url()
        night = shop.run("worker", "--once", *_at("2026-10-20 21:00"))   # 23:00 in Berlin (CEST)
        held = shop.rows("SELECT DISTINCT not_before FROM deliveries")
        sent_at_night = len(recorder.deliveries)
        morning = shop.run("worker", "--once", *_at("2026-10-21 06:00"))  # 08:00 in Berlin
    assert night.exit_code == morning.exit_code == 0, night.output + morning.output
    assert held == [("2026-10-21 06:00:00.000000",)]
    assert sent_at_night == 0
    assert _deliveries(shop) == {"sent": len(recorder.deliveries)} and recorder.deliveries


def test_sqlite_allows_one_sender_at_a_time(shop):
    shop.smtp_url = "smtp://127.0.0.1:9"   # never reached: refused before connecting
    engine = create_engine(f"sqlite:///{shop.root / 'campaign.db'}")
    try:
        other = senders.register(engine, datetime(2026, 11, 1))
        try:
            worker = shop.run("worker", "--once", *_at("2026-11-01"))
            send = shop.run("send", "ten", "--yes", *_at("2026-11-01"))
        finally:
            senders.sign_off(engine, other, datetime(2026, 11, 1))
    finally:
        engine.dispose()
    for result in (worker, send):
        assert result.exit_code == 1
        assert ("is sending on this SQLite database; SQLite allows one sender at a time"
                in result.output), result.output
    assert f"process {os.getpid()} on " in worker.output


def test_status_shows_workers_runs_and_what_comes_next(shop):
    shop.write_campaign("after_order", "trigger: {after: order, wait: 7 days}\n")
    shop.run("schedule", "ten", "--at", "2026-11-05 09:00", *_at("2026-11-01"))
    result = shop.run("status", *_at("2026-11-01"))
    assert result.stdout.splitlines() == [
        "Workers alive: 0",
        "Runs in progress: 0",
        "Next: 2",
        "  2026-11-05 09:00 UTC  ten (schedule 1)",
        "  when due  after_order (triggered 7 days after order)",
    ]


def test_sigterm_finishes_the_messages_in_flight_and_exits(shop):
    shop.set_setting("[sending]", "connections = 1")   # two messages in flight at most
    recorder = Recorder(faults={address: slow(0.3, "DATA") for address in shop.addresses()})
    with smtp_server(recorder) as server:
        shop.smtp_url = server.url()
        shop.run("schedule", "ten", "--at", "2026-11-01 10:00", *_at("2026-11-01"))
        env = {**os.environ, "CAMPAIGN_WORKSPACE": str(shop.root),
               "CAMPAIGN_SECRET_KEY": "test-secret", "CAMPAIGN_SMTP_URL": server.url()}
        env.pop("CAMPAIGN_DATABASE_URL", None)
        worker = subprocess.Popen(
            [sys.executable, "-c", "from cli import cli; cli(prog_name='campaign')", "worker",
             "--now", "2026-11-01 10:00", "--poll", "0.2"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            cwd=Path(__file__).resolve().parent.parent)
        deadline = time.monotonic() + 30
        while not recorder.deliveries and time.monotonic() < deadline:
            time.sleep(0.05)
        worker.send_signal(signal.SIGTERM)
        output, _ = worker.communicate(timeout=30)
    assert worker.returncode == 0, output
    assert "SIGTERM: finishing the messages in flight, then stopping" in output
    states = _deliveries(shop)
    assert set(states) == {"sent", "queued"}, states   # nothing left in doubt
    assert states["sent"] == len(recorder.deliveries) < len(shop.addresses())
    assert shop.rows("SELECT count(*) FROM workers WHERE stopped_at IS NULL") == [(0,)]


def test_a_lifecycle_campaign_is_not_sent_by_hand(shop):
    shop.write_campaign("after_order", "trigger: {after: order, wait: 7 days}\n")
    shop.smtp_url = "smtp://127.0.0.1:9"   # never reached
    result = shop.run("send", "after_order", "--yes", *_at("2026-11-01"))
    assert result.exit_code == 1
    assert "campaign 'after_order' is a lifecycle campaign ('trigger:' in its file)" \
        in result.output
    assert shop.rows("SELECT count(*) FROM runs") == [(0,)]


def test_a_lifecycle_campaign_cannot_be_scheduled(shop):
    shop.write_campaign("after_order", "trigger: {after: order, wait: 7 days}\n")
    result = shop.run("schedule", "after_order", "--at", "2026-11-02 09:00", *_at("2026-11-01"))
    assert result.exit_code == 1
    assert ("campaign 'after_order' is triggered ('trigger:' in its file); the worker sends it "
            "to each customer when due; run 'campaign worker'") in result.output
    assert shop.rows("SELECT count(*) FROM schedules") == [(0,)]


def test_a_pass_with_nothing_due_does_not_connect_to_smtp(shop):
    shop.rows("UPDATE customers SET timezone = 'Europe/Berlin'")
    shop.run("schedule", "ten", "--at", "2026-11-02", "--local-time", "09:00",
             *_at("2026-11-01"))
    shop.smtp_url = "smtp://127.0.0.1:9"   # nothing listens: connecting would be an error
    started = shop.run("worker", "--once", *_at("2026-11-01 19:00"))   # 20:00 in Berlin
    assert started.exit_code == 0, started.output
    assert "warning" not in started.output, started.output
    assert _deliveries(shop) == {"queued": len(shop.addresses())}
    assert shop.rows("SELECT DISTINCT not_before FROM deliveries") == [
        ("2026-11-02 08:00:00.000000",)]


def test_a_broken_campaign_file_is_reported_once_and_the_rest_still_runs(shop):
    (shop.root / "campaigns" / "broken.yaml").write_text("subjet: Hi\n", encoding="utf-8")
    recorder = Recorder()
    with smtp_server(recorder) as server:
        shop.smtp_url = server.url()
        shop.run("schedule", "ten", "--at", "2026-11-01 10:00", *_at("2026-11-01"))
        result = shop.run("worker", "--once", *_at("2026-11-01 10:00"))   # two passes
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert warnings and len(set(warnings)) == len(warnings), warnings   # each once
    where = f"warning: campaign 'broken' is skipped: {shop.root / 'campaigns' / 'broken.yaml'}:"
    assert all(line.startswith(where) for line in warnings), warnings
    assert len(warnings) == 4, warnings   # three missing keys and the misspelt one
    assert f"{where}1:1: unknown key 'subjet' (did you mean 'subject'?)" in "\n".join(warnings)
    assert len(recorder.deliveries) == len(shop.addresses())
    status = shop.run("status", *_at("2026-11-01 10:05"))
    assert [line.replace("warning: campaign 'broken': ", "") for line in status.output
            .splitlines() if line.startswith("warning:")] == [
        line.replace("warning: campaign 'broken' is skipped: ", "") for line in warnings]
