"""`campaign send` against a real SMTP server: the ledger, resuming, faults, suppressions."""

from __future__ import annotations

import base64
import email
import email.policy
import shutil
import subprocess

import dkim
import pytest
from click.testing import CliRunner

from cli import cli
from tests.shops import CAMPAIGN, NOW, REPO, SEGMENT, Shop
from tests.smtp_servers import (
    Recorder,
    closing,
    drop_during_data,
    no_storage,
    rejected,
    slow,
    smtp_server,
    temporary,
    user_unknown,
)


def _states(shop: Shop) -> dict[str, int]:
    return dict(shop.rows("SELECT state, count(*) FROM deliveries GROUP BY state"))


def test_a_send_delivers_each_recipient_once_and_records_it(shop):
    recorder = Recorder()
    with smtp_server(recorder) as server:
        shop.smtp_url = server.url()
        result = shop.run("send", "ten", *NOW, input="y\n")
        again = shop.run("send", "ten", "--yes", *NOW)
    assert result.exit_code == 0, result.output
    addresses = shop.addresses()
    assert f"Audience of ten: {len(addresses)} recipients." in result.output
    assert f"Send ten to {len(addresses)} recipients? [y/N]: y" in result.output
    assert f"Run 1: delivered {len(addresses)}, failed 0, deferred 0 now." in result.output
    assert all(recorder.received(address) == 1 for address in addresses)
    assert len(recorder.deliveries) == len(addresses)
    assert _states(shop) == {"sent": len(addresses)}
    assert shop.rows("SELECT status FROM runs") == [("finished",)]
    assert shop.rows("SELECT count(*) FROM coupons WHERE campaign = 'ten'") == [(len(addresses),)]
    assert again.exit_code == 1 and "was sent completely in run 1" in again.output
    message = email.message_from_bytes(recorder.contents(addresses[0])[0],
                                       policy=email.policy.default)
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["List-Unsubscribe"].startswith("<https://greenshop.example/unsubscribe/")
    assert message["To"].addresses[0].addr_spec == addresses[0]
    code = shop.rows(f"SELECT code FROM coupons, customers WHERE customers.id = "
                     f"coupons.customer_id AND customers.email = '{addresses[0]}'")[0][0]
    assert code in message.get_body(("plain",)).get_content()


def test_declining_the_confirmation_sends_nothing(shop):
    with smtp_server() as server:
        shop.smtp_url = server.url()
        result = shop.run("send", "ten", *NOW, input="n\n")
        assert server.handler.deliveries == []
    assert result.exit_code == 0 and "Nothing sent." in result.output
    assert shop.rows("SELECT count(*) FROM runs") == [(0,)]


def test_limit_sends_part_and_a_rerun_resumes_without_sending_twice(shop):
    recorder = Recorder()
    with smtp_server(recorder) as server:
        shop.smtp_url = server.url()
        first = shop.run("send", "ten", "--yes", "--limit", "3", *NOW)
        second = shop.run("send", "ten", "--yes", *NOW)
    addresses = shop.addresses()
    assert first.exit_code == 0 and "delivered 3," in first.output
    assert f"{len(addresses) - 3} messages are still to send" in first.output
    assert second.exit_code == 0 and "Resumed run 1 of ten." in second.output
    assert all(recorder.received(address) == 1 for address in addresses)
    assert _states(shop) == {"sent": len(addresses)}


def test_after_a_crash_in_flight_messages_are_unknown_and_resent_only_when_asked(shop):
    recorder = Recorder()
    with smtp_server(recorder) as server:
        shop.smtp_url = server.url()
        assert shop.run("send", "ten", "--yes", "--limit", "4", *NOW).exit_code == 0
        # A crash leaves the claimed rows 'sending': simulate two of them.
        shop.rows("UPDATE deliveries SET state = 'sending' WHERE id IN "
                  "(SELECT id FROM deliveries WHERE state = 'queued' ORDER BY id LIMIT 2)")
        resumed = shop.run("send", "ten", "--yes", *NOW)
        assert "2 messages of an interrupted send may or may not have been delivered" \
            in resumed.output
        assert _states(shop) == {"sent": len(shop.addresses()) - 2, "unknown": 2}
        assert shop.rows("SELECT status FROM runs") == [("running",)]
        unknown = [a for (a,) in shop.rows("SELECT email FROM deliveries WHERE state='unknown'")]
        assert all(recorder.received(address) == 0 for address in unknown)
        final = shop.run("send", "ten", "--yes", "--resend-unknown", *NOW)
    assert final.exit_code == 0, final.output
    assert all(recorder.received(address) == 1 for address in shop.addresses())
    assert shop.rows("SELECT status FROM runs") == [("finished",)]


def test_transient_faults_end_delivered_once_and_unknown_users_are_suppressed(shop):
    addresses = shop.addresses()
    recorder = Recorder(faults={addresses[0]: temporary(times=1),
                                addresses[1]: user_unknown(),
                                addresses[2]: rejected()})
    with smtp_server(recorder) as server:
        shop.smtp_url = server.url()
        result = shop.run("send", "ten", "--yes", *NOW)
        retry = shop.run("send", "ten", "--yes", "--retry-failed", *NOW)
        plan = shop.run("send", "ten", "--dry-run", *NOW)
    assert result.exit_code == 0, result.output
    assert recorder.received(addresses[0]) == 1
    assert recorder.received(addresses[1]) == recorder.received(addresses[2]) == 0
    assert f"delivered {len(addresses) - 2}, failed 2," in result.output
    assert shop.rows("SELECT email, reason FROM suppressions") == [(addresses[1], "bounced")]
    failed = dict(shop.rows("SELECT email, last_error FROM deliveries WHERE state='failed'"))
    assert failed[addresses[1]].startswith("550 ") and failed[addresses[2]].startswith("554 ")
    assert retry.exit_code == 0 and "failed 2," in retry.output  # still refused
    assert "left out, suppressed: 1" in plan.output


def test_a_run_stops_after_consecutive_failures_and_can_be_resumed(shop):
    settings = shop.root / "campaign.toml"
    settings.write_text(settings.read_text(encoding="utf-8").replace(
        "connections = 4\n", "connections = 1\nstop_after_failures = 3\n"), encoding="utf-8")
    refusing = Recorder(faults={address: rejected() for address in shop.addresses()})
    with smtp_server(refusing) as server:
        shop.smtp_url = server.url()
        stopped = shop.run("send", "ten", "--yes", *NOW)
    assert stopped.exit_code == 1
    assert "stopped after 3 failed messages in a row" in stopped.output
    assert "run 'campaign send ten' to resume" in stopped.output
    assert shop.rows("SELECT status FROM runs") == [("stopped",)]
    assert _states(shop).get("queued", 0) >= len(shop.addresses()) - 3 - 2
    with smtp_server() as server:
        shop.smtp_url = server.url()
        resumed = shop.run("send", "ten", "--yes", "--retry-failed", *NOW)
        delivered = server.handler.deliveries
    assert resumed.exit_code == 0, resumed.output
    assert sorted(d.recipients[0] for d in delivered) == sorted(shop.addresses())


def test_smtp_problems_stop_at_once_with_where_and_what(shop):
    shop.smtp_url = "smtp://127.0.0.1:1"
    result = shop.run("send", "ten", "--yes", *NOW)
    assert result.exit_code == 1
    assert "127.0.0.1:1: " in result.output
    shop.smtp_url = ""
    assert "CAMPAIGN_SMTP_URL is not set" in shop.run("send", "ten", "--yes", *NOW).output


def test_test_send_delivers_one_message_without_touching_the_ledger(shop):
    with smtp_server() as server:
        shop.smtp_url = server.url()
        result = shop.run("test-send", "ten", "--to", "me@example.com", *NOW)
        assert [d.recipients for d in server.handler.deliveries] == [("me@example.com",)]
    assert result.exit_code == 0 and "Sent a test of ten to me@example.com." in result.output
    assert shop.rows("SELECT count(*) FROM deliveries") == [(0,)]


def test_runs_and_suppress_commands(shop, tmp_path):
    listing = tmp_path / "bounces.csv"
    listing.write_text("email,when\nA@Example.com,2026\nb@example.com,2026\n", encoding="utf-8")
    assert "Suppressed 2 addresses from" in shop.run("suppress", "import", str(listing)).output
    assert "Suppressed 0 addresses (1 already were)." in shop.run(
        "suppress", "add", "a@example.com").output
    listed = shop.run("suppress", "list").output
    assert "a@example.com  manual" in listed and "b@example.com" in listed
    assert "Removed 1 suppression." in shop.run("suppress", "remove", "B@example.com").output
    bad = tmp_path / "bad.txt"
    bad.write_text("ok@example.com\nnot an address\n", encoding="utf-8")
    result = shop.run("suppress", "import", str(bad))
    assert result.exit_code == 1 and f"{bad}:2: 'not an address' is not an email address" \
        in result.output
    with smtp_server() as server:
        shop.smtp_url = server.url()
        assert shop.run("send", "ten", "--yes", *NOW).exit_code == 0
    table = shop.run("runs").output.splitlines()
    assert table[0].split() == ["RUN", "CAMPAIGN", "STATUS", "STARTED", "(UTC)", "QUEUED",
                                "SENDING", "SENT", "FAILED", "DEFERRED", "UNKNOWN"]
    assert table[1].split()[:3] == ["1", "ten", "finished"]


def test_sent_messages_are_dkim_signed_and_verify(shop, tmp_path):
    key = tmp_path / "dkim.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True,
                   capture_output=True)
    public = subprocess.run(["openssl", "pkey", "-in", str(key), "-pubout", "-outform", "DER"],
                            check=True, capture_output=True).stdout
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)

    def lookup(name: bytes, timeout: float = 5) -> bytes | None:
        return record if name == b"news2026._domainkey.greenshop.example." else None

    shop.extra = {"CAMPAIGN_DKIM_KEY": str(key)}
    recorder = Recorder()
    with smtp_server(recorder) as server:
        shop.smtp_url = server.url()
        result = shop.run("send", "ten", "--yes", *NOW)
    assert result.exit_code == 0, result.output
    for delivery in recorder.deliveries:
        assert delivery.content.startswith(b"DKIM-Signature: v=1; a=rsa-sha256;")
        assert dkim.verify(delivery.content, dnsfunc=lookup)
        assert not dkim.verify(delivery.content.replace(b"Subject: ", b"Subject: X", 1),
                               dnsfunc=lookup)
    names = {d.recipients[0] for d in recorder.deliveries}
    assert names == set(shop.addresses())


@pytest.mark.parametrize("fault", ["closing", "temporary", "no_storage", "slow"])
def test_every_transient_fault_ends_delivered_exactly_once(shop, fault):
    settings = shop.root / "campaign.toml"
    settings.write_text(settings.read_text(encoding="utf-8").replace(
        "connections = 4\n", "connections = 2\ntimeout = 1\n"), encoding="utf-8")
    addresses = shop.addresses()
    make = {"closing": lambda: closing(times=1), "temporary": lambda: temporary(times=1),
            "no_storage": lambda: no_storage(stage="DATA", times=1),
            "slow": lambda: slow(3.0, times=1)}[fault]
    recorder = Recorder(faults={addresses[0]: make(), addresses[-1]: make()})
    with smtp_server(recorder) as server:
        shop.smtp_url = server.url()
        result = shop.run("send", "ten", "--yes", *NOW)
    assert result.exit_code == 0, result.output
    assert recorder.fired[addresses[0]] == recorder.fired[addresses[-1]] == 1
    assert [recorder.received(address) for address in addresses] == [1] * len(addresses)
    assert _states(shop) == {"sent": len(addresses)}


def test_a_drop_after_the_whole_message_is_recorded_unknown_not_resent(shop):
    addresses = shop.addresses()
    recorder = Recorder(faults={addresses[0]: drop_during_data(times=1)})
    with smtp_server(recorder) as server:
        shop.smtp_url = server.url()
        result = shop.run("send", "ten", "--yes", *NOW)
        assert recorder.received(addresses[0]) == 1  # the server kept it, then hung up
        resumed = shop.run("send", "ten", "--yes", *NOW)
    assert result.exit_code == 0, result.output
    assert shop.rows(f"SELECT state FROM deliveries WHERE email = '{addresses[0]}'") == \
        [("unknown",)]
    assert f"Ledger of run 1: sent {len(addresses) - 1}, unknown 1." in result.output
    assert f"delivered {len(addresses) - 1}, failed 0, deferred 0, unknown 1 now." \
        in result.output
    assert resumed.exit_code == 0 and recorder.received(addresses[0]) == 1


def test_send_resume_and_dry_run_work_on_every_database(workspace, tmp_path):
    for name in ("data", "campaigns", "templates"):
        shutil.copytree(REPO / name, workspace.root / name)
    workspace.write("segments.yaml", "segments:\n" + SEGMENT)
    shutil.rmtree(workspace.root / "campaigns")
    workspace.write("campaigns/ten.yaml", CAMPAIGN + "from: Test Shop <news@shop.example>\n")
    for kind in ("customers", "products", "orders"):
        imported = workspace.run("import", kind, str(workspace.root / "data" / f"{kind}.csv"))
        assert imported.exit_code == 0, imported.output
    plan = workspace.run("send", "ten", "--dry-run", *NOW)
    assert plan.exit_code == 0, plan.output
    expected = [address for (address,) in workspace.rows(
        "SELECT email FROM customers WHERE external_id <= 'C0000010' AND subscribed")]
    recorder = Recorder(faults={expected[0]: user_unknown()})
    runner = CliRunner(env={"CAMPAIGN_DATABASE_URL": workspace.database_url,
                            "CAMPAIGN_WORKSPACE": str(workspace.root),
                            "CAMPAIGN_SECRET_KEY": "k"})
    with smtp_server(recorder) as server:
        runner.env["CAMPAIGN_SMTP_URL"] = server.url()
        first = runner.invoke(cli, ["send", "ten", "--yes", "--limit", "4", *NOW])
        second = runner.invoke(cli, ["send", "ten", "--yes", *NOW])
    assert first.exit_code == 0 and second.exit_code == 0, first.output + second.output
    assert [recorder.received(address) for address in expected[1:]] == [1] * (len(expected) - 1)
    assert dict(workspace.rows("SELECT state, count(*) FROM deliveries GROUP BY state")) == \
        {"sent": len(expected) - 1, "failed": 1}
    assert workspace.rows("SELECT email, reason FROM suppressions") == [
        (expected[0].lower(), "bounced")]
    assert workspace.rows("SELECT count(*) FROM coupons") == [(len(expected),)]
