"""End to end in real headless Chromium: a sent follow_up email, its open pixel and click
redirect, the survey, the preference page and the one-click unsubscribe, then the next plan.

The campaign is really sent (to a local SMTP server) and `campaign serve`'s app runs under
waitress on 127.0.0.1. The received links point at base_url (https://greenshop.example): the
test rewrites the engine's own links to the local server, as the HTTPS proxy at base_url
would. Chromium is mandatory with CAMPAIGN_REQUIRE_BROWSER=1 (see tests/test_layout.py).
"""

from __future__ import annotations

import email
import email.policy
import json
import re
import shutil
import urllib.request
from pathlib import Path

from click.testing import CliRunner

from cli import cli
from engine.bootstrap import open_database
from engine.web import create_app
from engine.workspace import open_workspace
from tests.cdp import Browser
from tests.conftest import copy_example
from tests.smtp_servers import Recorder, smtp_server
from tests.test_layout import find_chromium
from tests.test_web import running

KEY = "browser-test-key-5b2e"
NOW = ("--now", "2026-11-01")
OWN = re.compile(r"https://greenshop\.example/(?=(?:click|open|survey|preferences|unsubscribe|"
                 r"view)/)")
PLAN = re.compile(r"Plan for follow_up \(follow_up_due\): (\d+) in the segment, (\d+) recipients")


def _plan(env: dict[str, str]) -> tuple[int, dict[str, int]]:
    """Recipients of the follow_up dry run, and who it leaves out by reason."""
    result = CliRunner(env=env).invoke(cli, ["send", "follow_up", "--dry-run", *NOW])
    assert result.exit_code == 0, result.output
    found = PLAN.search(result.output)
    assert found, result.output
    left_out = {reason: int(count) for reason, count in
                re.findall(r"left out, ([a-z ]+): (\d+)", result.output)}
    return int(found[2]), left_out


def _parts(message: bytes) -> tuple[str, str]:
    """(HTML part, List-Unsubscribe https URL) of a received message."""
    parsed = email.message_from_bytes(message, policy=email.policy.default)
    https = re.search(r"<(https://[^>]+)>", str(parsed["List-Unsubscribe"]))[1]
    return parsed.get_body(("html",)).get_content(), https


def test_feedback_links_in_a_real_browser(tmp_path: Path, seeded_database: Path) -> None:
    chromium = find_chromium()
    root = tmp_path / "shop"
    copy_example(root)
    shutil.copy(seeded_database, root / "campaign.db")
    url = f"sqlite:///{root / 'campaign.db'}"
    env = {"CAMPAIGN_WORKSPACE": str(root), "CAMPAIGN_DATABASE_URL": url,
           "CAMPAIGN_SECRET_KEY": KEY}
    handler = Recorder()
    with smtp_server(handler) as smtp:
        sent = CliRunner(env={**env, "CAMPAIGN_SMTP_URL": smtp.url()}).invoke(
            cli, ["send", "follow_up", "--yes", "--limit", "2", *NOW])
    assert sent.exit_code == 0, sent.output
    shop = open_workspace(root, environ=env)
    engine = open_database(shop.settings, lambda _message: None)

    def rows(sql: str) -> list[tuple]:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.exec_driver_sql(sql)]

    (first, first_address, first_delivery), (second, second_address, _) = rows(
        "SELECT customer_id, email, id FROM deliveries WHERE state = 'sent' ORDER BY id")
    recipients, left_out = _plan(env)
    try:
        with running(create_app(shop, engine)) as server:
            html, _ = _parts(handler.contents(first_address)[0])
            received = tmp_path / "received.html"
            received.write_text(OWN.sub(f"{server}/", html), encoding="utf-8")
            with Browser(chromium, tmp_path / "chromium") as browser:
                # The email opened: its pixel loads from the server.
                browser.go(received.as_uri())
                assert rows("SELECT kind, customer_id, campaign, delivery_id FROM events") == [
                    ("open", first, "follow_up", first_delivery)]
                # The shop's link in the footer: tracked, then on to the shop with UTM.
                browser.drain()
                browser.evaluate("document.querySelector('a[href*=\"/click/\"]').click()")
                redirect = browser.wait_for("Network.requestWillBeSent")
                while "redirectResponse" not in redirect:
                    redirect = browser.wait_for("Network.requestWillBeSent")
                assert redirect["redirectResponse"]["status"] == 302
                target = ("https://greenshop.example/?utm_source=newsletter&utm_medium=email"
                          "&utm_campaign=follow_up")
                assert redirect["request"]["url"] == target
                assert json.loads(rows("SELECT detail FROM events WHERE kind = 'click'")[0][0]) \
                    == {"url": target}

                # The survey, filled in and sent.
                survey = re.search(r'href="([^"]+/survey/[^"]+)"', received.read_text())[1]
                browser.go(survey)
                browser.evaluate("""(() => {
                    const pick = (name, value) => document.querySelector(
                        `input[name="${name}"][value="${value}"]`).click();
                    pick("found_us", "A friend"); pick("buying", "Smoothly");
                    pick("simple", "4"); pick("recommend", "9");
                    document.querySelector("textarea[name=comment]").value = "Great <b>seeds</b>";
                    document.querySelector("button[type=submit]").click();
                })()""")
                browser.wait_for("Page.loadEventFired")
                assert "Thank you! Your answers are saved." in browser.evaluate(
                    "document.body.innerText")
                assert browser.evaluate("document.querySelectorAll('b').length") == 0
                (answers,), = rows("SELECT answers FROM survey_responses")
                assert json.loads(answers) == {"found_us": "A friend", "buying": "Smoothly",
                                               "simple": 4, "recommend": 9,
                                               "comment": "Great <b>seeds</b>"}

                # The preference page: pause for 30 days.
                preferences = re.search(r'href="([^"]+/preferences/[^"]+)"',
                                        received.read_text())[1]
                browser.go(preferences)
                browser.evaluate("document.querySelector('button[value=pause30]').click()")
                browser.wait_for("Page.loadEventFired")
                assert "are paused until" in browser.evaluate("document.body.innerText")
            assert [customer for customer, in rows("SELECT customer_id FROM pauses")] == [first]

            # The second recipient's mail client unsubscribes with one click (RFC 8058).
            _, unsubscribe = _parts(handler.contents(second_address)[0])
            request = urllib.request.Request(
                OWN.sub(f"{server}/", unsubscribe), data=b"List-Unsubscribe=One-Click",
                method="POST")
            with urllib.request.urlopen(request, timeout=10) as response:
                assert response.status == 200
    finally:
        engine.dispose()
    assert rows("SELECT kind, customer_id FROM events ORDER BY id") == [
        ("open", first), ("click", first), ("survey", first), ("pause", first),
        ("unsubscribe", second)]

    # The next plan leaves the unsubscribed customer out, and the paused one once
    # engine/audience.py knows pauses (a "paused" reason).
    after, left_out_after = _plan(env)
    paused = left_out_after.get("paused", 0)
    assert paused in (0, 1)
    assert left_out_after["unsubscribed"] == left_out["unsubscribed"] + 1
    assert after == recipients - 1 - paused
