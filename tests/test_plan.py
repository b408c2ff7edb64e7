"""`campaign send NAME --dry-run`: the plan, exclusions by reason, the outbox; nothing written."""

from __future__ import annotations

import email
import email.policy
from pathlib import Path

import pytest

from tests.conftest import Workspace

REPO = Path(__file__).resolve().parent.parent
NOW = ("--now", "2026-11-01")
LEDGER_TABLES = ("runs", "deliveries", "coupons", "suppressions", "events")


@pytest.fixture
def shop(example_shop: Workspace) -> Workspace:
    return example_shop


def _table_sizes(shop: Workspace) -> dict[str, int]:
    return {table: shop.rows(f"SELECT count(*) FROM {table}")[0][0] for table in LEDGER_TABLES}


def _members(shop: Workspace, segment: str) -> int:
    return int(shop.run("segment", "count", segment, *NOW).output)


def test_dry_run_plans_everything_and_writes_nothing(shop):
    before = _table_sizes(shop)
    result = shop.run("send", "spring", "--dry-run", *NOW)
    assert result.exit_code == 0, result.output
    members = _members(shop, "garden_fans")
    lines = result.output.splitlines()
    assert lines[0].startswith(f"Plan for spring (garden_fans): {members:,} in the segment, ")
    recipients = int(lines[0].split(", ")[1].split()[0].replace(",", ""))
    excluded = sum(int(line.rsplit(": ", 1)[1].replace(",", "")) for line in lines
                   if line.startswith("  left out, "))
    assert recipients + excluded == members and recipients > 0
    assert f"Rendered {recipients:,} emails." in result.output
    assert "Message size: median " in result.output and "Sample subjects:" in result.output
    assert "This was a dry run: nothing was sent or stored. To send: campaign send spring" \
        in result.output
    assert _table_sizes(shop) == before


def _sent_earlier(shop: Workspace, customer_id: int, day: str) -> None:
    engine = shop.engine()
    with engine.begin() as connection:
        run_id = connection.exec_driver_sql(
            "INSERT INTO runs (campaign, status, evaluated_at, started_at, excluded) "
            f"VALUES ('older', 'finished', '{day}', '{day}', '{{}}')").lastrowid
        connection.exec_driver_sql(
            "INSERT INTO deliveries (run_id, customer_id, email, state, attempts, message_id, "
            f"updated_at, sent_at) VALUES ({run_id}, {customer_id}, 'x@example.com', 'sent', 1, "
            f"'<{run_id}@x>', '{day}', '{day}')")
    engine.dispose()


def test_exclusions_are_counted_by_reason(shop):
    (unsubscribed, _), (_, suppressed), (capped, _) = shop.rows(
        "SELECT id, email FROM customers ORDER BY id LIMIT 3")
    shop.write("segments.yaml", (REPO / "segments.yaml").read_text(encoding="utf-8")
               + "  first_three:\n    customer: {customer_id: [C0000001, C0000002, C0000003]}\n")
    shop.write("campaigns/three.yaml", "subject: Hi {{ customer.first_name }}\n"
               "segment: first_three\ntemplate: spring.mjml\ncoupon: {percent: 5}\n")
    engine = shop.engine()
    with engine.begin() as connection:
        connection.exec_driver_sql(f"UPDATE customers SET subscribed = 0 WHERE id = {unsubscribed}")
    engine.dispose()
    assert shop.run("suppress", "add", suppressed.upper()).exit_code == 0
    _sent_earlier(shop, capped, "2026-10-29")
    result = shop.run("send", "three", "--dry-run", *NOW)
    assert result.exit_code == 0, result.output
    assert "Plan for three (first_three): 3 in the segment, 1 recipient." in result.output
    assert "  left out, unsubscribed: 1\n  left out, suppressed: 1\n" in result.output
    assert "frequency cap" not in result.output  # one campaign email in 7 days: under the cap
    _sent_earlier(shop, capped, "2026-10-31")
    result = shop.run("send", "three", "--dry-run", *NOW)
    assert "Plan for three (first_three): 3 in the segment, 0 recipients." in result.output
    assert "  left out, frequency cap: 1\n" in result.output
    _sent_earlier(shop, capped, "2026-10-20")  # outside the 7 days: does not count
    assert "  left out, frequency cap: 1\n" in shop.run("send", "three", "--dry-run",
                                                         *NOW).output


def test_the_outbox_holds_one_parseable_message_per_recipient(shop, tmp_path):
    outbox = tmp_path / "outbox"
    result = shop.run("send", "winback", "--dry-run", "--outbox", str(outbox), *NOW)
    assert result.exit_code == 0, result.output
    files = sorted(outbox.glob("*.eml"))
    rendered = int(result.output.split("Rendered ")[1].split()[0].replace(",", ""))
    assert len(files) == rendered > 0
    assert f"Wrote {rendered:,} messages to {outbox}/ (.eml files)." in result.output
    message = email.message_from_bytes(files[0].read_bytes(), policy=email.policy.default)
    assert message["From"] == "Green Shop <news@greenshop.example>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["List-Unsubscribe"].startswith("<https://greenshop.example/unsubscribe/")
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "We miss you" in text and "We miss you" in html
    assert "Example Street 1, 10115 Berlin, Germany" in text


def test_rendering_failures_are_listed_per_customer_and_fail_the_plan(shop):
    template = shop.root / "templates" / "winback.mjml"
    template.write_text(template.read_text(encoding="utf-8").replace(
        "{{ stats.days_since_last_order }}", "{{ stats.days_since }}"), encoding="utf-8")
    result = shop.run("send", "winback", "--dry-run", *NOW)
    assert result.exit_code == 1
    assert f"customer C0000011 <chloelefevre@example.org>: {template}:7: stats has no " \
           "attribute 'days_since'" in result.output
    assert "failed to render; fix them before sending" in result.output
