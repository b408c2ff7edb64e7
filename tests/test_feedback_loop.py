"""The feedback loop on every database: segments on emails and survey answers, paused customers
left out of a send, and `campaign report`. Feedback rows are written straight into the tables
that `campaign serve` fills."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import insert

from cli import cli
from engine.reports import Nps
from engine.schema import deliveries, events, pauses, runs, survey_responses
from tests.conftest import Workspace

NOW = ("--now", "2026-11-01")
REPORTS_DOC = Path(__file__).resolve().parent.parent / "docs" / "reports.md"
CUSTOMERS = """\
customer_id,email,first_name,last_name,subscribed
C1,ann@example.com,Ann,Lee,true
C2,bob@example.com,Bob,Ray,true
C3,cy@example.com,Cy,Fox,true
C4,di@example.com,Di,Kim,false
C5,ed@example.com,Ed,Roe,true
"""
TEMPLATE = """\
<mjml><mj-body><mj-section><mj-column>
<mj-text>Hello {{ customer.first_name }}</mj-text>
<mj-text><a href="{{ links.unsubscribe }}">Unsubscribe</a> {{ shop.postal_address }}</mj-text>
</mj-column></mj-section></mj-body></mjml>
"""
SURVEY = """\
survey:
  questions:
    - key: found_us
      ask: How did you find us?
      choice: [Search engine, A friend, Social media, Other]
    - {key: recommend, ask: How likely are you to recommend us?, scale: [0, 10], nps: true}
    - {key: comment, ask: Anything else?, text: {max_length: 500}}
"""
SEGMENTS = """\
segments:
  detractors:
    survey: {question: recommend, at_most: 6}
  promoters:
    survey: {campaign: news, question: recommend, at_least: 9}
  engaged_recently:
    any:
      - opened: {within: 30 days}
      - clicked: {within: 30 days}
  got_news_twice:
    received: {campaign: news, at_least: 2}
  never_got_news:
    received: {campaign: news, exactly: 0}
  garden_clickers:
    clicked: {campaign: [news, other], url: /GARDEN}
"""


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


@pytest.fixture
def shop(workspace: Workspace) -> Workspace:
    """Five customers (C4 unsubscribed), a plain template, the campaigns `news` (with a
    survey) and `fresh`, and the segments above."""
    path = workspace.write("customers.csv", CUSTOMERS)
    assert workspace.run("import", "customers", str(path)).exit_code == 0
    workspace.write("templates/plain.mjml", TEMPLATE)
    campaign = ("subject: Hi {{ customer.first_name }}\nsegment: {orders: {exactly: 0}}\n"
                "template: plain.mjml\nfrom: Test Shop <news@shop.example>\n")
    workspace.write("campaigns/news.yaml", campaign + SURVEY)
    workspace.write("campaigns/fresh.yaml", campaign)
    workspace.write("segments.yaml", SEGMENTS)
    return workspace


def _ids(shop: Workspace) -> dict[str, int]:
    return {external: number for number, external in shop.rows(
        "SELECT id, external_id FROM customers")}


def _feedback(shop: Workspace) -> None:
    """Two runs of `news` and one of `other`, opens, clicks, unsubscribes and survey answers."""
    ids = _ids(shop)
    engine = shop.engine()
    with engine.begin() as connection:
        connection.execute(insert(runs), [
            {"id": n, "campaign": campaign, "status": "finished", "evaluated_at": at(day),
             "started_at": at(day), "excluded": {}}
            for n, campaign, day in ((1, "news", "2026-10-01"), (2, "news", "2026-10-20"),
                                     (3, "other", "2026-10-25"))])
        connection.execute(insert(deliveries), [
            {"id": n, "run_id": run, "customer_id": ids[who], "email": "x@example.com",
             "state": state, "attempts": 1, "message_id": f"<{n}@shop.example>",
             "updated_at": at("2026-10-25"), "sent_at": sent and at(sent)}
            for n, run, who, state, sent in (
                (1, 1, "C1", "sent", "2026-10-01 09:00"), (2, 1, "C2", "sent", "2026-10-01 09:01"),
                (3, 1, "C3", "failed", None), (4, 1, "C4", "sent", "2026-10-01 09:02"),
                (5, 1, "C5", "unknown", None), (6, 2, "C1", "sent", "2026-10-20 09:00"),
                (7, 2, "C2", "queued", None), (8, 3, "C3", "sent", "2026-10-25 10:00"))])
        connection.execute(insert(events), [
            {"customer_id": ids[who], "campaign": campaign, "kind": kind, "created_at": at(when),
             "delivery_id": delivery, "detail": {"url": url} if url else {}}
            for who, campaign, kind, when, delivery, url in (
                ("C1", "news", "open", "2026-10-01 10:00", 1, None),
                ("C1", "news", "open", "2026-10-02 10:00", 1, None),
                ("C1", "news", "open", "2026-10-20 10:00", 6, None),
                ("C2", "news", "open", "2026-10-03 10:00", 2, None),
                ("C1", "news", "click", "2026-10-01 10:01", 1, "https://shop.example/garden"),
                ("C1", "news", "click", "2026-10-01 10:02", 1, "https://shop.example/sale"),
                ("C4", "news", "click", "2026-10-05 10:00", 4, "https://shop.example/Garden/"),
                ("C4", "news", "unsubscribe", "2026-10-05 10:01", None, None),
                ("C4", "news", "unsubscribe", "2026-10-06 10:00", None, None),
                ("C3", "other", "open", "2026-10-26 10:00", 8, None))])
        connection.execute(insert(survey_responses), [
            {"campaign": campaign, "customer_id": ids[who], "answers": answers,
             "created_at": at(when), "updated_at": at(when)}
            for who, campaign, answers, when in (
                ("C1", "news", {"found_us": "A friend", "recommend": 10, "comment": "Great"},
                 "2026-10-02"),
                ("C2", "news", {"found_us": "Search engine", "recommend": 6}, "2026-10-04"),
                ("C4", "news", {"found_us": "A friend", "recommend": 9, "comment": "  "},
                 "2026-10-06"),
                ("C5", "news", {"found_us": "Radio", "recommend": 8}, "2026-10-07"),
                ("C3", "other", {"recommend": 2}, "2026-10-27"))])
    engine.dispose()


# -- segments ----------------------------------------------------------------------------
def test_segments_on_emails_and_answers(shop):
    _feedback(shop)
    listed = shop.run("segment", "list", *NOW)
    assert listed.exit_code == 0, listed.output
    assert listed.stdout == (
        "SEGMENT           CUSTOMERS  DESCRIPTION\n"
        "detractors                2\n"
        "promoters                 2\n"
        "engaged_recently          4\n"
        "got_news_twice            1\n"
        "never_got_news            2\n"
        "garden_clickers           2\n")
    shown = shop.run("segment", "show", "never_got_news", *NOW)
    assert [line.split()[0] for line in shown.stdout.splitlines()[1:-1]] == ["C3", "C5"]
    # Earlier, less had happened: only C1's first opens and click, no answers yet.
    earlier = ("--now", "2026-10-03")
    assert shop.run("segment", "count", "engaged_recently", *earlier).stdout == "1\n"
    assert shop.run("segment", "count", "detractors", *earlier).stdout == "0\n"
    assert shop.run("segment", "count", "got_news_twice", *earlier).stdout == "0\n"


def test_segment_sql_is_one_select_with_now_written_in(shop):
    result = shop.run("segment", "show", "engaged_recently", "--sql", *NOW)
    assert result.exit_code == 0, result.output
    sql = result.stdout
    assert sql.startswith("SELECT customers.id \nFROM customers \nWHERE ")
    assert sql.rstrip().endswith(";") and sql.count(";") == 1
    assert "'2026-10-02 00:00:00" in sql and "'2026-11-01 00:00:00" in sql
    for name in ("detractors", "promoters", "never_got_news", "garden_clickers"):
        shown = shop.run("segment", "show", name, "--sql", *NOW)
        assert shown.exit_code == 0 and shown.stdout.count(";") == 1, shown.output


# -- paused customers --------------------------------------------------------------------
def test_paused_customers_are_left_out_of_plan_and_send(shop):
    ids = _ids(shop)
    engine = shop.engine()
    with engine.begin() as connection:
        connection.execute(insert(pauses), [
            {"customer_id": ids[who], "paused_until": at(until), "created_at": at("2026-10-01")}
            for who, until in (("C2", "2026-12-01"),             # paused past now: left out
                               ("C3", "2026-10-15"),             # over: gets mail
                               ("C5", "2026-11-01 00:00:00"),    # ends exactly now: gets mail
                               ("C4", "2026-12-01"))])           # unsubscribed anyway
    engine.dispose()
    plan = shop.run("send", "fresh", "--dry-run", *NOW)
    assert plan.exit_code == 0, plan.output
    assert plan.stdout.startswith(
        "Plan for fresh (inline segment): 5 in the segment, 3 recipients.\n"
        "  left out, unsubscribed: 1\n"
        "  left out, paused: 1\n"
        "Rendered 3 emails.\n")
    runner = CliRunner(env={"CAMPAIGN_DATABASE_URL": shop.database_url,
                            "CAMPAIGN_WORKSPACE": str(shop.root), "CAMPAIGN_SECRET_KEY": "k",
                            "CAMPAIGN_SMTP_URL": "smtp://127.0.0.1:9"})
    declined = runner.invoke(cli, ["send", "fresh", *NOW], input="n\n")
    assert declined.exit_code == 0, declined.output
    assert declined.stdout == ("Audience of fresh: 3 recipients.\n"
                               "  left out, unsubscribed: 1\n"
                               "  left out, paused: 1\n"
                               "Send fresh to 3 recipients? [y/N]: n\n"
                               "Nothing sent.\n")
    assert shop.rows("SELECT count(*) FROM runs") == [(0,)]


# -- the report --------------------------------------------------------------------------
def _doc_block(language: str) -> str:
    block = re.search(rf"```{language}\n(.*?)```", REPORTS_DOC.read_text(encoding="utf-8"), re.S)
    assert block, f"docs/reports.md has no ```{language} block"
    return block[1]


def test_report_as_text(shop):
    _feedback(shop)
    result = shop.run("report", "news")
    assert result.exit_code == 0, result.output
    assert result.stdout == _doc_block("text")
    assert result.stdout == """\
news: 2 runs, sent 2026-10-01 09:00 to 2026-10-20 09:00 UTC

                 EMAILS  OF SENT
Sent                  4
Failed                1
Unknown               1
Still to send         1
Opened                3    75.0%
Clicked               2    50.0%
Unsubscribed          1    25.0%
Survey answered       4   100.0%
(4 opens and 3 clicks in all, counting repeats)

How did you find us? (found_us, 4 answers)
  ANSWER         COUNT  SHARE
  Search engine      1  25.0%
  A friend           2  50.0%
  Social media       0   0.0%
  Other              0   0.0%
  Radio              1  25.0%

How likely are you to recommend us? (recommend, 4 answers)
  ANSWER  COUNT  SHARE
  0           0   0.0%
  1           0   0.0%
  2           0   0.0%
  3           0   0.0%
  4           0   0.0%
  5           0   0.0%
  6           1  25.0%
  7           0   0.0%
  8           1  25.0%
  9           1  25.0%
  10          1  25.0%
  NPS +25: 2 promoters (9-10), 1 passive (7-8), 1 detractor (0-6)

Anything else? (comment): 1 written answer
"""


def test_report_as_json(shop):
    _feedback(shop)
    result = shop.run("report", "news", "--format", "json")
    assert result.exit_code == 0, result.output
    scale = {str(n): 0 for n in range(11)} | {"6": 1, "8": 1, "9": 1, "10": 1}
    assert json.loads(result.stdout) == {
        "campaign": "news", "runs": 2,
        "first_sent_at": "2026-10-01T09:00:00Z", "last_sent_at": "2026-10-20T09:00:00Z",
        "deliveries": {"queued": 1, "sending": 0, "sent": 4, "failed": 1, "deferred": 0,
                       "unknown": 1},
        "opens": {"unique": 3, "total": 4, "rate": 0.75},
        "clicks": {"unique": 2, "total": 3, "rate": 0.5},
        "unsubscribes": {"count": 1, "rate": 0.25},
        "survey": {"responses": 4, "rate": 1.0, "questions": [
            {"key": "found_us", "ask": "How did you find us?", "kind": "choice", "answered": 4,
             "counts": {"Search engine": 1, "A friend": 2, "Social media": 0, "Other": 0,
                        "Radio": 1}},
            {"key": "recommend", "ask": "How likely are you to recommend us?", "kind": "scale",
             "answered": 4, "counts": scale,
             "nps": {"score": 25, "promoters": 2, "passives": 1, "detractors": 1}},
            {"key": "comment", "ask": "Anything else?", "kind": "text", "answered": 1}]},
    }
    assert json.loads(result.stdout) == json.loads(_doc_block("json"))


def test_report_without_the_campaign_file_leaves_out_the_questions(shop):
    _feedback(shop)
    (shop.root / "campaigns" / "news.yaml").unlink()
    result = shop.run("report", "news", "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["survey"] == {"responses": 4, "rate": 1.0, "questions": []}
    text = shop.run("report", "news").stdout
    assert text.endswith("Survey answered       4   100.0%\n"
                         "(4 opens and 3 clicks in all, counting repeats)\n")


@pytest.mark.parametrize(("promoters", "passives", "detractors", "score"), [
    (2, 1, 1, 25), (1, 7, 0, 13), (0, 7, 1, -13), (2, 0, 1, 33), (1, 0, 2, -33),
    (3, 0, 0, 100), (0, 0, 4, -100), (0, 5, 0, 0), (0, 0, 0, None)])
def test_nps_rounds_half_away_from_zero(promoters, passives, detractors, score):
    assert Nps(promoters, passives, detractors).score == score


def test_report_of_unknown_or_unsent_campaigns_says_what_to_do(shop):
    unknown = shop.run("report", "nwes")
    assert (unknown.exit_code, unknown.stderr) == (
        1, f"Error: {shop.root / 'campaigns' / 'nwes.yaml'}: no campaign named 'nwes'; did you "
           "mean 'news'?\n")
    unsent = shop.run("report", "fresh")
    assert (unsent.exit_code, unsent.stderr) == (
        1, f"Error: {shop.root / 'campaigns' / 'fresh.yaml'}: campaign 'fresh' has not been sent "
           "yet, so there is nothing to report; send it with 'campaign send fresh' (see "
           "'campaign runs')\n")
