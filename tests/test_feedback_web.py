"""Tracking, preference and survey endpoints (engine/weblinks.py, engine/webforms.py) with
Flask's test client, and the upserts of engine/feedback.py, on SQLite, PostgreSQL and MariaDB.

Every refused request is checked to change nothing: the tables it could write stay as they were.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from urllib.parse import quote

import pytest
from flask.testing import FlaskClient
from markupsafe import escape
from sqlalchemy import Engine, event, insert

from engine import db
from engine.bootstrap import open_database
from engine.emails import CampaignEmails
from engine.feedback import record_survey
from engine.schema import deliveries, runs, survey_responses
from engine.tokens import FORM_LIFETIME, Signer
from engine.tracking import Tracker
from engine.web import create_app
from engine.webforms import FORM_COOKIE, STALE
from engine.workspace import Workspace, open_workspace

KEY = "test-only-secret-key-77d0e2"
SIGNER = Signer.from_secret(KEY)
NOW = datetime(2026, 11, 1, 12, 30)
SCRIPT = "<script>alert(1)</script>"
CUSTOMERS = """\
customer_id,email,first_name,last_name
C1,ann@example.com,Ann,Lee
C2,bob@example.org,Bob,Doe
C3,cy@example.net,Cy,Sea
"""
SEGMENTS = "segments:\n  trio:\n    customer: {customer_id: [C1, C2, C3]}\n"
TEMPLATE = """<mjml><mj-body><mj-section><mj-column>
<mj-text>Hi {{ customer.first_name }} <a href="https://shop.example/p/1">Seeds</a>
<a href="{{ links.unsubscribe }}">Unsubscribe</a> {{ shop.postal_address }}</mj-text>
</mj-column></mj-section></mj-body></mjml>
"""
SURVEY = """\
subject: Hi
from: Test Shop <news@shop.example>
segment: trio
template: t.mjml
survey:
  title: How did it go?
  questions:
    - key: found_us
      ask: How did you find us?
      choice: [Search engine, A friend]
    - key: recommend
      ask: Would you recommend us?
      scale: [0, 10]
      nps: true
    - key: comment
      ask: Anything else?
      text: {max_length: 40}
"""
SHOP_URL = "https://shop.example/p/1?utm_source=newsletter&utm_medium=email&utm_campaign=fb"

sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


class Clock:
    """The app's clock, moved on by tests."""

    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def shop(workspace) -> Workspace:
    """The test workspace with three customers, a campaign `fb` with a survey, and a run of
    it delivered to C1 and C2."""
    workspace.write("segments.yaml", SEGMENTS)
    workspace.write("templates/t.mjml", TEMPLATE)
    workspace.write("campaigns/fb.yaml", SURVEY)
    workspace.write("campaigns/plain.yaml", SURVEY.split("survey:")[0])
    result = workspace.run("import", "customers", str(workspace.write("c.csv", CUSTOMERS)))
    assert result.exit_code == 0, result.output
    return open_workspace(workspace.root, environ={"CAMPAIGN_DATABASE_URL": workspace.database_url,
                                                   "CAMPAIGN_SECRET_KEY": KEY})


@pytest.fixture
def engine(shop: Workspace) -> Iterator[Engine]:
    engine = open_database(shop.settings, lambda _message: None)
    yield engine
    engine.dispose()


@pytest.fixture
def ids(workspace, engine: Engine) -> dict[str, int]:
    """Engine ids of the customers (C1...) and of the deliveries to C1 and C2 (D1, D2)."""
    found = dict(workspace.rows("SELECT external_id, id FROM customers"))
    with engine.begin() as connection:
        run = connection.execute(insert(runs).values(
            campaign="fb", status="finished", evaluated_at=NOW - timedelta(days=1),
            started_at=NOW, excluded={})).inserted_primary_key[0]
        for number in (1, 2):
            found[f"D{number}"] = connection.execute(insert(deliveries).values(
                run_id=run, customer_id=found[f"C{number}"], email="x@example.com",
                state="sent", attempts=1, message_id=f"<{number}@x>",
                updated_at=NOW)).inserted_primary_key[0]
    return found


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def client(shop: Workspace, engine: Engine, clock: Clock) -> FlaskClient:
    return create_app(shop, engine, now=clock).test_client()


def _json(value: object) -> object:
    return json.loads(value) if isinstance(value, str) else value


def events(workspace) -> list[tuple]:
    return [(customer, campaign, kind, _json(detail), delivery) for
            customer, campaign, kind, detail, delivery in workspace.rows(
                "SELECT customer_id, campaign, kind, detail, delivery_id FROM events "
                "ORDER BY id")]


def stored(workspace) -> tuple[list, list, list, list]:
    """Everything a feedback request may write: events, pauses, survey answers, subscriptions."""
    pauses = workspace.rows("SELECT customer_id, paused_until FROM pauses ORDER BY customer_id")
    answers = [(customer, campaign, _json(answers), delivery) for
               customer, campaign, answers, delivery in workspace.rows(
                   "SELECT customer_id, campaign, answers, delivery_id FROM survey_responses "
                   "ORDER BY customer_id")]
    subscribed = workspace.rows("SELECT external_id, subscribed FROM customers "
                                "WHERE NOT subscribed ORDER BY external_id")
    return events(workspace), [(c, str(u)[:19]) for c, u in pauses], answers, subscribed


NOTHING = ([], [], [], [])


def click_url(delivery: int, url: str, signer: Signer = SIGNER) -> str:
    return f"/click/{signer.tracking_token('click', delivery, url)}?url={quote(url, safe=':/')}"


def link(purpose: str, customer: int, campaign: str = "fb") -> str:
    return f"/{purpose}/{SIGNER.token(purpose, campaign, customer)}"


def csrf(page: str) -> str:
    found = re.search(r'name="_csrf" value="([^"]+)"', page)
    assert found, page
    return found[1]


# Tracking


def test_open_and_click_are_recorded_per_delivery(client: FlaskClient, workspace, ids) -> None:
    opened = client.get(f"/open/{SIGNER.tracking_token('open', ids['D1'])}")
    assert (opened.status_code, opened.mimetype) == (200, "image/gif")
    assert opened.data.startswith(b"GIF89a") and opened.headers["Cache-Control"] == "no-store"
    clicked = client.get(click_url(ids["D2"], SHOP_URL))
    assert clicked.status_code == 302
    assert clicked.headers["Location"] == SHOP_URL
    client.get(click_url(ids["D2"], SHOP_URL))  # a second click is a second event
    click = (ids["C2"], "fb", "click", {"url": SHOP_URL}, ids["D2"])
    assert stored(workspace) == ([(ids["C1"], "fb", "open", {}, ids["D1"]), click, click],
                                 [], [], [])


def test_bad_tracking_links_are_refused_and_change_nothing(client: FlaskClient, workspace,
                                                           ids) -> None:
    genuine = click_url(ids["D1"], SHOP_URL)
    token = SIGNER.tracking_token("click", ids["D1"], SHOP_URL)
    evil = "https://evil.example/phish"
    bad = {
        "another URL": f"/click/{token}?url={quote(evil)}",
        "URL changed a little": genuine.replace("utm_campaign%3Dfb", "utm_campaign%3Dfc"),
        "no URL": f"/click/{token}",
        "URL twice": f"{genuine}&url={quote(evil)}",
        "another delivery": genuine.replace(f"/click/{ids['D1']}.", f"/click/{ids['D2']}.", 1),
        "forged signature": genuine.replace(f"{ids['D1']}.", f"{ids['D1']}.A", 1),
        "another key": click_url(ids["D1"], SHOP_URL, Signer.from_secret("other")),
        "preview key": click_url(ids["D1"], SHOP_URL, Signer.from_secret(None)),
        "open token": f"/click/{SIGNER.tracking_token('open', ids['D1'])}?url={quote(evil)}",
        "a signed javascript: URL": click_url(ids["D1"], "javascript:alert(1)"),
        "leading zero": f"/click/0{token}?url={quote(SHOP_URL, safe=':/')}",
        "not ASCII": f"/click/{ids['D1']}.é?url={quote(SHOP_URL)}",
        "open: click token": f"/open/{token}",
        "open: garbage": "/open/12.xyz",
    }
    for kind, path in bad.items():
        response = client.get(path)
        assert response.status_code == 404, kind
        assert "Location" not in response.headers, kind
    assert stored(workspace) == NOTHING
    assert client.get(genuine).status_code == 302


@sqlite_only
def test_tracking_switched_off_records_nothing_but_still_answers(workspace, shop, engine,
                                                                 ids) -> None:
    toml = shop.root / "campaign.toml"
    toml.write_text(toml.read_text() + "\n[tracking]\nopens = false\nclicks = false\n")
    off = open_workspace(shop.root, environ={"CAMPAIGN_DATABASE_URL": workspace.database_url,
                                             "CAMPAIGN_SECRET_KEY": KEY})
    client = create_app(off, engine, now=lambda: NOW).test_client()
    assert client.get(f"/open/{SIGNER.tracking_token('open', ids['D1'])}").status_code == 200
    response = client.get(click_url(ids["D1"], SHOP_URL))
    assert (response.status_code, response.headers["Location"]) == (302, SHOP_URL)
    assert stored(workspace) == NOTHING


@sqlite_only
def test_ip_addresses_are_kept_only_when_asked(workspace, shop, engine, ids,
                                               client: FlaskClient) -> None:
    client.get(f"/open/{SIGNER.tracking_token('open', ids['D1'])}")
    toml = shop.root / "campaign.toml"
    toml.write_text(toml.read_text() + "\n[tracking]\nstore_ip = true\n")
    keeping = open_workspace(shop.root, environ={
        "CAMPAIGN_DATABASE_URL": workspace.database_url, "CAMPAIGN_SECRET_KEY": KEY})
    create_app(keeping, engine, now=lambda: NOW).test_client().get(
        click_url(ids["D1"], SHOP_URL), environ_base={"REMOTE_ADDR": "192.0.2.7"})
    assert [row[3] for row in events(workspace)] == [{}, {"url": SHOP_URL, "ip": "192.0.2.7"}]


# Preferences


def test_preferences_pause_and_unsubscribe(client: FlaskClient, workspace, ids,
                                           clock: Clock) -> None:
    url = link("preferences", ids["C1"])
    page = client.get(url)
    assert page.status_code == 200
    assert "Hello Ann," in page.text and "<strong>a***@example.com</strong>" in page.text
    assert '<button type="submit" name="action" value="pause30">Pause for 30 days</button>' \
        in page.text
    cookie = page.headers["Set-Cookie"]
    assert f"{FORM_COOKIE}=" in cookie and "SameSite=Strict" in cookie and "HttpOnly" in cookie
    assert f"Path={url}" in cookie and "Secure" in cookie   # base_url is https
    paused = client.post(url, data={"_csrf": csrf(page.text), "action": "pause30"})
    assert paused.status_code == 200
    assert "paused until\n<strong>December 1, 2026</strong>" in paused.text
    pause = (ids["C1"], "fb", "pause", {"days": 30, "until": "2026-12-01T12:30:00"}, None)
    assert stored(workspace) == ([pause], [(ids["C1"], "2026-12-01 12:30:00")], [], [])

    # A day later: 90 days from then replaces the pause (one row), and says so on the page.
    clock.now = NOW + timedelta(days=1)
    page = client.get(url)
    assert "Campaign emails are paused until <strong>December 1, 2026</strong>." in page.text
    client.post(url, data={"_csrf": csrf(page.text), "action": "pause90"})
    longer = (ids["C1"], "fb", "pause", {"days": 90, "until": "2027-01-31T12:30:00"}, None)
    assert stored(workspace) == ([pause, longer], [(ids["C1"], "2027-01-31 12:30:00")], [], [])

    done = client.post(url, data={"_csrf": csrf(client.get(url).text), "action": "unsubscribe"})
    assert done.status_code == 200 and "gets no more newsletters from Test Shop" in done.text
    unsubscribe = (ids["C1"], "fb", "unsubscribe", {"source": "preference page"}, None)
    assert stored(workspace) == ([pause, longer, unsubscribe],
                                 [(ids["C1"], "2027-01-31 12:30:00")], [], [("C1", False)])
    assert workspace.rows("SELECT email, reason FROM suppressions") == [
        ("ann@example.com", "unsubscribed")]
    again = client.get(url)
    assert again.status_code == 200 and "_csrf" not in again.text


@sqlite_only
def test_forms_refuse_missing_invalid_replayed_and_expired_csrf(client: FlaskClient, workspace,
                                                                ids, clock: Clock) -> None:
    url = link("preferences", ids["C1"])
    page = client.get(url)
    good = csrf(page.text)
    nonce = client.get_cookie(FORM_COOKIE, path=url).value
    other = client.get(link("preferences", ids["C2"])).text
    survey = client.get(link("survey", ids["C1"])).text
    issued, _, _ = good.partition(".")
    cases = {
        "no token": {"action": "pause30"},
        "empty token": {"_csrf": "", "action": "pause30"},
        "forged signature": {"_csrf": good[:-2] + ("AA" if good[-2:] != "AA" else "BB"),
                             "action": "pause30"},
        "another issue time": {"_csrf": str(int(issued) + 1) + good[len(issued):],
                               "action": "pause30"},
        "another customer's form": {"_csrf": csrf(other), "action": "pause30"},
        "the survey's form": {"_csrf": csrf(survey), "action": "pause30"},
        "not ASCII": {"_csrf": "é.é.é", "action": "pause30"},
        "huge time": {"_csrf": "9" * 40 + good[len(issued):], "action": "pause30"},
    }
    for kind, data in cases.items():
        client.set_cookie(FORM_COOKIE, nonce, path=url)
        response = client.post(url, data=data)
        assert response.status_code == 400, kind
        assert STALE in response.text, kind
        assert csrf(response.text) != good, kind   # a fresh form to send again
    # The genuine token without its cookie, or with another cookie.
    client.delete_cookie(FORM_COOKIE, path=url)
    assert client.post(url, data={"_csrf": good, "action": "pause30"}).status_code == 400
    client.set_cookie(FORM_COOKIE, "another-nonce", path=url)
    assert client.post(url, data={"_csrf": good, "action": "pause30"}).status_code == 400
    # Expired: FORM_LIFETIME after it was issued it still works, a second later it does not.
    client.set_cookie(FORM_COOKIE, nonce, path=url)
    clock.now = NOW + FORM_LIFETIME + timedelta(seconds=1)
    assert client.post(url, data={"_csrf": good, "action": "pause30"}).status_code == 400
    clock.now = NOW - timedelta(seconds=1)  # issued in the future
    client.set_cookie(FORM_COOKIE, nonce, path=url)
    assert client.post(url, data={"_csrf": good, "action": "pause30"}).status_code == 400
    # A bad action with a good token.
    clock.now = NOW + FORM_LIFETIME
    for data in ({"_csrf": good, "action": "pause7"}, {"_csrf": good},
                 {"_csrf": good, "action": "pause30", "extra": "1"},
                 {"_csrf": good, "action": ["pause30", "pause90"]}):
        client.set_cookie(FORM_COOKIE, nonce, path=url)
        response = client.post(url, data=data)
        assert response.status_code == 400 and "Please choose one of the buttons." in \
            response.text, data
    assert stored(workspace) == NOTHING
    client.set_cookie(FORM_COOKIE, nonce, path=url)
    assert client.post(url, data={"_csrf": good, "action": "pause30"}).status_code == 200
    assert len(stored(workspace)[1]) == 1


@sqlite_only
def test_bad_page_tokens_are_not_found(client: FlaskClient, workspace, ids) -> None:
    for path in (link("preferences", 999999), link("survey", 999999),
                 link("preferences", ids["C1"]).replace(".fb.", ".fc.", 1),
                 link("survey", ids["C1"], "plain"),          # no survey in that campaign
                 link("survey", ids["C1"], "gone"),           # no such campaign
                 f"/survey/{SIGNER.token('preferences', 'fb', ids['C1'])}",
                 f"/preferences/{SIGNER.token('survey', 'fb', ids['C1'])}",
                 f"/survey/{Signer.from_secret('x').token('survey', 'fb', ids['C1'])}"):
        for method in (client.get, client.post):
            response = method(path, data={"action": "unsubscribe"})
            assert response.status_code == 404, path
            assert "This link is not valid" in response.text
    assert stored(workspace) == NOTHING


# Surveys


def test_survey_answers_are_stored_once_and_updated(client: FlaskClient, workspace, ids,
                                                    clock: Clock) -> None:
    url = link("survey", ids["C1"])
    page = client.get(url)
    assert page.status_code == 200
    assert "<h1>How did it go?</h1>" in page.text
    assert '<input type="radio" name="recommend" value="10" required>' in page.text
    assert '<textarea name="comment" rows="4" maxlength="40">' in page.text
    answered = client.post(url, data={"_csrf": csrf(page.text), "found_us": "A friend",
                                      "recommend": "9", "comment": "  Lovely seeds \r\n "})
    assert answered.status_code == 200
    assert "Thank you! Your answers are saved." in answered.text
    first = {"found_us": "A friend", "recommend": 9, "comment": "Lovely seeds"}
    survey_event = (ids["C1"], "fb", "survey",
                    {"answered": ["comment", "found_us", "recommend"], "first": True}, ids["D1"])
    assert stored(workspace) == ([survey_event], [], [(ids["C1"], "fb", first, ids["D1"])], [])

    clock.now = NOW + timedelta(hours=2)
    page = client.get(url)  # shows the stored answers
    assert '<input type="radio" name="recommend" value="9" checked required>' in page.text
    assert ">Lovely seeds</textarea>" in page.text
    client.post(url, data={"_csrf": csrf(page.text), "found_us": "Search engine",
                           "recommend": "0", "comment": ""})
    second = {"found_us": "Search engine", "recommend": 0}
    assert stored(workspace)[2] == [(ids["C1"], "fb", second, ids["D1"])]
    assert [row[3] for row in events(workspace)] == [
        survey_event[3], {"answered": ["found_us", "recommend"], "first": False}]
    (created, updated), = workspace.rows("SELECT created_at, updated_at FROM survey_responses")
    assert (str(created)[:19], str(updated)[:19]) == ("2026-11-01 12:30:00", "2026-11-01 14:30:00")

    # C3 got no delivery of fb: the answers are kept all the same, without one.
    page = client.get(link("survey", ids["C3"]))
    client.post(link("survey", ids["C3"]), data={"_csrf": csrf(page.text),
                                                 "found_us": "A friend", "recommend": "10"})
    assert stored(workspace)[2][-1] == (ids["C3"], "fb", {"found_us": "A friend",
                                                          "recommend": 10}, None)


@sqlite_only
def test_survey_fields_are_checked_and_nothing_is_stored(client: FlaskClient, workspace,
                                                         ids) -> None:
    url = link("survey", ids["C1"])
    good = {"found_us": "A friend", "recommend": "9", "comment": "fine"}
    cases = [
        ({"found_us": ""}, "found_us", "Please answer this question."),
        ({"found_us": "A foe"}, "found_us", "Please choose one of the answers."),
        ({"recommend": "11"}, "recommend", "Please choose a number from 0 to 10."),
        ({"recommend": "-1"}, "recommend", "Please choose a number from 0 to 10."),
        ({"recommend": "9.5"}, "recommend", "Please choose a number from 0 to 10."),
        ({"recommend": "٩"}, "recommend", "Please choose a number from 0 to 10."),
        ({"comment": "x" * 41}, "comment", "Please keep it to 40 characters (this is 41)."),
        ({"comment": "a\x00b"}, "comment", "Please write plain text only."),
        ({"admin": "1"}, "", "This form has fields it does not expect; please fill it in again."),
        ({"recommend": ["9", "10"]}, "", "This form sent a field twice; please fill it in "
                                         "again."),
    ]
    for change, key, message in cases:
        page = client.get(url)
        response = client.post(url, data={"_csrf": csrf(page.text), **good, **change})
        assert response.status_code == 400, change
        if key:
            assert f'<p class="error" id="e-{key}">{escape(message)}</p>' in response.text
            assert '<p class="error" role="alert">Please check the answers marked below.</p>' \
                in response.text
        else:
            assert f'<p class="error" role="alert">{message}</p>' in response.text
    missing = client.post(url, data={"_csrf": csrf(client.get(url).text), "comment": "x"})
    assert missing.status_code == 400
    assert missing.text.count("Please answer this question.") == 2
    assert ">x</textarea>" in missing.text   # what was written is shown again
    too_big = client.post(url, data={"_csrf": csrf(client.get(url).text), **good,
                                     "comment": "x" * 70_000})
    assert too_big.status_code == 413
    assert stored(workspace) == NOTHING


@sqlite_only
def test_survey_answers_are_escaped_where_shown(client: FlaskClient, workspace, ids) -> None:
    url = link("survey", ids["C1"])
    sneaky = f'{SCRIPT}"><b>'
    thanks = client.post(url, data={"_csrf": csrf(client.get(url).text), "found_us": "A friend",
                                    "recommend": "3", "comment": sneaky})
    assert thanks.status_code == 200
    for page in (thanks.text, client.get(url).text):
        assert SCRIPT not in page and "<b>" not in page
        assert str(escape(sneaky)) in page
    assert stored(workspace)[2][0][2]["comment"] == sneaky   # stored as written


def test_concurrent_survey_answers_make_one_row(engine: Engine, workspace, ids) -> None:
    """Another answer is inserted between our look for the row and our insert."""
    raced: list[str] = []

    def race(connection, _cursor, statement: str, *_args) -> None:
        if raced or not re.match(r"\s*SELECT\b.*\bFROM survey_responses\b", statement, re.S):
            return
        raced.append(statement)
        values = dict(campaign="fb", customer_id=ids["C1"], answers={"found_us": "A friend"},
                      created_at=NOW, updated_at=NOW)
        if connection.dialect.name == "sqlite":  # writers are serialized: simulate the race
            connection.connection.dbapi_connection.execute(
                "INSERT INTO survey_responses (campaign, customer_id, answers, created_at, "
                "updated_at) VALUES ('fb', ?, '{\"found_us\": \"A friend\"}', ?, ?)",
                (ids["C1"], str(NOW), str(NOW)))
            return
        with other.begin() as rival:
            rival.execute(insert(survey_responses).values(**values))

    other = db.connect(engine.url)
    try:
        with engine.begin() as connection:
            event.listen(connection, "after_cursor_execute", race)
            assert record_survey(connection, "fb", ids["C1"], {"recommend": 7}, NOW) is False
    finally:
        other.dispose()
    assert raced
    assert stored(workspace)[2] == [(ids["C1"], "fb", {"recommend": 7}, ids["D1"])]


# View online


@sqlite_only
def test_view_online_shows_the_delivered_email(client: FlaskClient, shop: Workspace,
                                               engine: Engine, workspace, ids) -> None:
    with engine.connect() as connection:
        sent = next(CampaignEmails(shop, connection, "fb", NOW - timedelta(days=1))
                    .render([ids["C1"]]))
    tracker = Tracker(shop.settings.tracking, shop.settings.shop.base_url, SIGNER, "fb")
    response = client.get(link("view", ids["C1"]))
    assert response.status_code == 200
    assert response.text == tracker.track(sent.email.html, "", ids["D1"])[0]
    assert click_url(ids["D1"], SHOP_URL).replace("&", "&amp;") in response.text
    assert f"/open/{SIGNER.tracking_token('open', ids['D1'])}" in response.text
    assert link("unsubscribe", ids["C1"]) in response.text
    # C3 got no delivery: as a dry run would show it, with no tracking.
    other = client.get(link("view", ids["C3"])).text
    assert "/click/" not in other and "/open/" not in other and SHOP_URL.replace(
        "&", "&amp;") in other
    assert stored(workspace) == NOTHING
