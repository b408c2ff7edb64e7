"""Four `campaign worker` processes share one PostgreSQL database and one SMTP server: 10,000
recipients, each gets one message; a worker killed mid-run loses nothing and doubles nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import create_engine, insert

from engine.schema import customers
from tests.conftest import SERVER_URLS, SETTINGS, Workspace, _empty_server
from tests.smtp_servers import Recorder, smtp_server

REPO = Path(__file__).resolve().parent.parent
RECIPIENTS = 10_000
WORKERS = 4
CONNECTIONS = 2
TEMPLATE = """<mjml><mj-body><mj-section><mj-column>
<mj-text>Hello {{ customer.greeting_name }}, news from {{ shop.name }}.</mj-text>
<mj-text><a href="{{ links.unsubscribe }}">Unsubscribe</a> {{ shop.postal_address }}</mj-text>
</mj-column></mj-section></mj-body></mjml>
"""


@pytest.fixture
def shop(tmp_path: Path) -> Workspace:
    url = _empty_server(SERVER_URLS["postgresql"])
    root = tmp_path / "shop"
    space = Workspace(root, url)
    space.write("campaign.toml", SETTINGS + f"\n[sending]\nrate = 100000\n"
                                            f"connections = {CONNECTIONS}\n")
    space.write("segments.yaml", "segments:\n  germany:\n    customer: {country: DE}\n")
    space.write("campaigns/bulk.yaml", "subject: \"News for {{ customer.first_name }}\"\n"
                                       "segment: germany\ntemplate: bulk.mjml\n"
                                       "from: Test Shop <news@shop.example>\n")
    space.write("templates/bulk.mjml", TEMPLATE)
    assert space.run("db", "upgrade").exit_code == 0
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(insert(customers), [
                {"external_id": f"C{n:07d}", "email": f"c{n}@example.com",
                 "first_name": f"Kunde{n}", "country": "DE", "subscribed": True,
                 "attributes": {}} for n in range(RECIPIENTS)])
    finally:
        engine.dispose()
    return space


def _worker(shop: Workspace, smtp_url: str) -> subprocess.Popen:
    env = {**os.environ, "CAMPAIGN_WORKSPACE": str(shop.root),
           "CAMPAIGN_DATABASE_URL": shop.database_url, "CAMPAIGN_SECRET_KEY": "test-secret",
           "CAMPAIGN_SMTP_URL": smtp_url}
    return subprocess.Popen(
        [sys.executable, "-c", "from cli import cli; cli(prog_name='campaign')", "worker",
         "--lease", "5", "--poll", "0.5"],
        env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _states(shop: Workspace) -> dict[str, int]:
    return dict(shop.rows("SELECT state, count(*) FROM deliveries GROUP BY state"))


def test_four_workers_deliver_each_message_once_even_when_one_is_killed(shop):
    recorder = Recorder()
    with smtp_server(recorder) as server:
        scheduled = shop.run("schedule", "bulk", "--at", "2026-01-01 00:00",
                             "--now", "2025-12-31")
        assert scheduled.exit_code == 0, scheduled.output
        workers = [_worker(shop, server.url()) for _ in range(WORKERS)]
        try:
            deadline = time.monotonic() + 240
            while len(recorder.deliveries) < RECIPIENTS // 4 and time.monotonic() < deadline:
                time.sleep(0.05)
            victim = workers[0]
            victim.send_signal(signal.SIGKILL)
            victim.wait(timeout=30)
            while time.monotonic() < deadline:
                states = _states(shop)
                if states and not {"queued", "sending"} & set(states):
                    break
                time.sleep(0.2)
        finally:
            for process in workers[1:]:
                process.send_signal(signal.SIGTERM)
            outputs = [process.communicate(timeout=60)[0] for process in workers]
    assert all(process.returncode == 0 for process in workers[1:]), outputs
    received = Counter(address for delivery in recorder.deliveries
                       for address in delivery.recipients)
    states = _states(shop)
    unknown = {address for (address,) in shop.rows(
        "SELECT email FROM deliveries WHERE state = 'unknown'")}
    everyone = {f"c{n}@example.com" for n in range(RECIPIENTS)}
    assert set(states) <= {"sent", "unknown"}, states
    assert max(received.values()) == 1, "a message was delivered twice"
    assert everyone - set(received) <= unknown, "a message was lost"
    # Only what the killed worker had handed to the server without an answer is in doubt.
    assert len(unknown) <= 4 * CONNECTIONS, unknown
    assert sum(received.values()) >= RECIPIENTS - len(unknown)
    served = shop.rows("SELECT count(DISTINCT lease_owner) FROM deliveries")
    assert served == [(0,)]   # every lease ended with an outcome
    sent_by = shop.rows("SELECT count(*) FROM workers WHERE sent > 0")
    assert sent_by[0][0] == WORKERS, "some worker got no share of the run"
    assert shop.rows("SELECT count(*) FROM runs") == [(1,)]
