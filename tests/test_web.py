"""The public link endpoints (engine/web.py) and unsubscribe recording (engine/unsubscribe.py).

Unsubscribing runs on SQLite, PostgreSQL and MariaDB; the view-online page on a copy of the
example workspace (SQLite).
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from markupsafe import escape
from sqlalchemy import Engine, create_engine, event, insert
from sqlalchemy.exc import IntegrityError

from engine import db
from engine.bootstrap import open_database
from engine.emails import CampaignEmails
from engine.errors import EngineError, SettingsError
from engine.schema import suppressions
from engine.tokens import PREVIEW_KEY, Signer
from engine.tracking import Tracker
from engine.unsubscribe import UnknownCustomerError, record_unsubscribe
from engine.web import create_app, listen, serve
from engine.webpages import PAGE_POLICY, VIEW_POLICY, mask
from engine.workspace import Workspace, open_workspace

REPO = Path(__file__).resolve().parent.parent
KEY = "test-only-secret-key-4f1c9a"
NOW = datetime(2026, 11, 1, 12, 30)
SIGNER = Signer.from_secret(KEY)
ONE_CLICK = {"List-Unsubscribe": "One-Click"}
FORM = '<form method="post">'
DONE = "gets no more newsletters from Test Shop"
ALREADY = "was already unsubscribed"
SCRIPT = "<script>alert(1)</script>"
CUSTOMERS = f"""\
customer_id,email,first_name,last_name,subscribed
C1,Ann.Lee@Example.com,Ann,Lee,yes
C2,bob@example.org,{SCRIPT},Doe,yes
C3,gone@example.net,Gus,Gone,no
"""
WORKSPACE_FILES = ("campaign.toml", "segments.yaml", "campaigns", "templates")
BROKEN_TEMPLATE = """<mjml>
  <mj-body>
    <mj-section>
      <mj-column>
        <mj-text>Hello {{ customer.nme }}</mj-text>
      </mj-column>
    </mj-section>
  </mj-body>
</mjml>
"""


# For tests of the app rather than of the database: SQLite is enough.
sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def _quiet(_message: str) -> None:
    """A notify callback that drops the message."""


@pytest.fixture
def shop(workspace) -> Workspace:
    """The test workspace (each database) with three customers, and a real secret key."""
    path = workspace.write("customers.csv", CUSTOMERS)
    result = workspace.run("import", "customers", str(path))
    assert result.exit_code == 0, result.output
    return open_workspace(workspace.root, environ={"CAMPAIGN_DATABASE_URL": workspace.database_url,
                                                   "CAMPAIGN_SECRET_KEY": KEY})


@pytest.fixture
def shop_engine(shop: Workspace) -> Iterator[Engine]:
    engine = open_database(shop.settings, _quiet)
    yield engine
    engine.dispose()


@pytest.fixture
def app(shop: Workspace, shop_engine: Engine) -> Flask:
    return create_app(shop, shop_engine, now=lambda: NOW)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def ids(workspace) -> dict[str, int]:
    """Engine id of each imported customer, by shop customer id."""
    return dict(workspace.rows("SELECT external_id, id FROM customers"))


def token(purpose: str, customer_id: int, campaign: str = "spring",
          signer: Signer = SIGNER) -> str:
    return signer.token(purpose, campaign, customer_id)


def _detail(value: object) -> object:
    return json.loads(value) if isinstance(value, str) else value


def state(workspace) -> tuple[list, list, list]:
    """Who is subscribed, the suppressions and the events, comparable across databases."""
    subscribed = [(external, bool(flag)) for external, flag in workspace.rows(
        "SELECT external_id, subscribed FROM customers ORDER BY external_id")]
    suppressed = workspace.rows("SELECT email, reason, note FROM suppressions ORDER BY email")
    happened = [(customer, campaign, kind, _detail(detail)) for customer, campaign, kind, detail
                in workspace.rows("SELECT customer_id, campaign, kind, detail FROM events "
                                  "ORDER BY id")]
    return subscribed, suppressed, happened


INITIAL = ([("C1", True), ("C2", True), ("C3", False)], [], [])


def test_get_asks_and_changes_nothing(client: FlaskClient, workspace, ids) -> None:
    response = client.get(f"/unsubscribe/{token('unsubscribe', ids['C1'])}")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    page = response.text
    assert FORM in page
    assert '<button type="submit">Unsubscribe</button>' in page
    assert "Test Shop" in page and "Hello Ann," in page
    assert "<strong>A***@Example.com</strong>" in page
    assert "Ann.Lee" not in page
    assert response.headers["Content-Security-Policy"] == PAGE_POLICY
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["Cache-Control"] == "no-store"
    assert client.head(f"/unsubscribe/{token('unsubscribe', ids['C1'])}").status_code == 200
    assert state(workspace) == INITIAL


def test_one_click_post_unsubscribes_once(client: FlaskClient, workspace, ids) -> None:
    url = f"/unsubscribe/{token('unsubscribe', ids['C1'])}"
    response = client.post(url, data=ONE_CLICK)
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert "<h1>You are unsubscribed</h1>" in response.text
    assert DONE in response.text
    assert FORM not in response.text
    expected = ([("C1", False), ("C2", True), ("C3", False)],
                [("ann.lee@example.com", "unsubscribed", "one-click via campaign spring")],
                [(ids["C1"], "spring", "unsubscribe", {"source": "one-click"})])
    assert state(workspace) == expected
    moments = workspace.rows("SELECT created_at FROM suppressions UNION ALL "
                             "SELECT created_at FROM events")
    assert [str(moment).startswith("2026-11-01 12:30:00") for (moment,) in moments] == [True] * 2

    # Again, as a multipart body this time: harmless, and said so.
    again = client.post(url, data=ONE_CLICK, content_type="multipart/form-data")
    assert again.status_code == 200
    assert ALREADY in again.text and DONE not in again.text
    assert state(workspace) == expected
    page = client.get(url)
    assert page.status_code == 200
    assert ALREADY in page.text and FORM not in page.text


@sqlite_only
def test_the_page_button_unsubscribes(client: FlaskClient, workspace, ids) -> None:
    response = client.post(f"/unsubscribe/{token('unsubscribe', ids['C2'], 'winback')}")
    assert response.status_code == 200
    assert DONE in response.text
    assert state(workspace) == (
        [("C1", True), ("C2", False), ("C3", False)],
        [("bob@example.org", "unsubscribed", "unsubscribe page via campaign winback")],
        [(ids["C2"], "winback", "unsubscribe", {"source": "unsubscribe page"})])


def test_bad_tokens_change_nothing(client: FlaskClient, workspace, ids) -> None:
    genuine = token("unsubscribe", ids["C1"])
    body, _, signature = genuine.rpartition(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    bad = {
        "forged signature": f"{body}.{flipped}",
        "another customer": f"{ids['C2']}{genuine[len(str(ids['C1'])):]}",
        "another campaign": genuine.replace(".spring.", ".winback.", 1),
        "another key": token("unsubscribe", ids["C1"], signer=Signer.from_secret("other")),
        "preview key": token("unsubscribe", ids["C1"], signer=Signer.from_secret(None)),
        "view purpose": token("view", ids["C1"]),
        "survey purpose": token("survey", ids["C1"]),
        "no signature": body,
        "leading zero": f"0{genuine}",
        "garbage": "not-a-token",
        "deleted customer": token("unsubscribe", 999999),  # genuine, but nobody has that id
    }
    for kind, forged in bad.items():
        assert forged != genuine, kind
        for method in (client.get, client.post):
            response = method(f"/unsubscribe/{forged}", data=ONE_CLICK)
            assert response.status_code == 404, (kind, method)
            assert "This link is not valid" in response.text, kind
            assert FORM not in response.text, kind
    assert state(workspace) == INITIAL
    assert client.post(f"/unsubscribe/{genuine}", data=ONE_CLICK).status_code == 200


@sqlite_only
def test_customer_data_is_escaped(client: FlaskClient, ids) -> None:
    page = client.get(f"/unsubscribe/{token('unsubscribe', ids['C2'])}").text
    assert SCRIPT not in page
    assert f"Hello {escape(SCRIPT)}," in page
    done = client.post(f"/unsubscribe/{token('unsubscribe', ids['C2'])}").text
    assert SCRIPT not in done
    assert str(escape(SCRIPT)) in done


def test_record_unsubscribe_reports_changes(shop_engine: Engine, workspace, ids) -> None:
    # The caller's transaction when the connection is in one: nothing of it stays on rollback.
    with shop_engine.connect() as connection:
        outer = connection.begin()
        assert record_unsubscribe(connection, ids["C1"], "spring", NOW, "test") is True
        outer.rollback()
    assert state(workspace) == INITIAL
    # Its own transaction when the connection is in none.
    with shop_engine.connect() as connection:
        assert record_unsubscribe(connection, ids["C1"], "spring", NOW, "test") is True
    with shop_engine.connect() as connection:
        assert record_unsubscribe(connection, ids["C1"], "spring", NOW, "test") is False
    # Unsubscribed by the shop but never suppressed: the suppression is still added.
    with shop_engine.begin() as connection:
        assert record_unsubscribe(connection, ids["C3"], "spring", NOW, "test") is True
    subscribed, suppressed, happened = state(workspace)
    assert subscribed == [("C1", False), ("C2", True), ("C3", False)]
    assert [row[0] for row in suppressed] == ["ann.lee@example.com", "gone@example.net"]
    assert [(row[0], row[2]) for row in happened] == [(ids["C1"], "unsubscribe"),
                                                      (ids["C3"], "unsubscribe")]
    with shop_engine.begin() as connection, pytest.raises(UnknownCustomerError):
        record_unsubscribe(connection, 999999, "spring", NOW, "test")


def test_record_unsubscribe_keeps_an_existing_suppression(shop_engine: Engine, workspace,
                                                          ids) -> None:
    with shop_engine.begin() as connection:
        connection.execute(insert(suppressions).values(email="ann.lee@example.com",
                                                       reason="bounced", created_at=NOW))
        assert record_unsubscribe(connection, ids["C1"], "spring", NOW, "test") is True
    subscribed, suppressed, happened = state(workspace)
    assert subscribed[0] == ("C1", False)
    assert suppressed == [("ann.lee@example.com", "bounced", None)]
    assert len(happened) == 1


def test_a_concurrent_suppression_is_tolerated(shop_engine: Engine, workspace, ids) -> None:
    """The address is suppressed by someone else between our check and our insert."""
    other = db.connect(shop_engine.url)
    raced: list[str] = []

    def race(connection, _cursor, statement: str, *_args) -> None:
        """Right after record_unsubscribe looked for a suppression, someone adds one."""
        if raced or not re.match(r"\s*SELECT\b.*\bsuppressions\b", statement, re.S | re.I):
            return
        raced.append(statement)
        if connection.dialect.name == "sqlite":  # writers are serialized: simulate the race
            cursor = connection.connection.dbapi_connection.cursor()
            cursor.execute("INSERT INTO suppressions (email, reason, note, created_at) "
                           "VALUES ('ann.lee@example.com', 'complaint', 'other', "
                           "'2026-11-01 00:00:00')")
            cursor.close()
            return
        with other.begin() as rival:
            rival.execute(insert(suppressions).values(email="ann.lee@example.com",
                                                      reason="complaint", note="other",
                                                      created_at=NOW))

    try:
        with shop_engine.begin() as connection:
            event.listen(connection, "after_cursor_execute", race)
            assert record_unsubscribe(connection, ids["C1"], "spring", NOW, "test") is True
    finally:
        other.dispose()
    assert raced
    subscribed, suppressed, happened = state(workspace)
    assert subscribed[0] == ("C1", False)
    assert suppressed == [("ann.lee@example.com", "complaint", "other")]
    assert happened == [(ids["C1"], "spring", "unsubscribe", {"source": "test"})]


@sqlite_only
def test_other_integrity_errors_are_not_swallowed(shop_engine: Engine, workspace,
                                                  ids) -> None:
    def fail(connection, _cursor, statement: str, *_args) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO SUPPRESSIONS"):
            raise IntegrityError(statement, {}, Exception("some other constraint"))

    with pytest.raises(IntegrityError), shop_engine.begin() as connection:
        event.listen(connection, "before_cursor_execute", fail)
        record_unsubscribe(connection, ids["C1"], "spring", NOW, "test")
    assert state(workspace) == INITIAL


def test_refuses_to_start_without_a_real_key(sqlite_workspace) -> None:
    engine = create_engine(sqlite_workspace.database_url)
    try:
        for environ in ({}, {"CAMPAIGN_SECRET_KEY": ""}, {"CAMPAIGN_SECRET_KEY": PREVIEW_KEY}):
            space = open_workspace(sqlite_workspace.root, environ=environ)
            with pytest.raises(SettingsError, match="CAMPAIGN_SECRET_KEY") as raised:
                create_app(space, engine)
            assert raised.value.hint and "CAMPAIGN_SECRET_KEY" in raised.value.hint
        space = open_workspace(sqlite_workspace.root, environ={"CAMPAIGN_SECRET_KEY": KEY})
        assert create_app(space, engine).test_client().get("/healthz").text == "ok"
    finally:
        engine.dispose()


@sqlite_only
def test_only_its_own_routes(app: Flask, client: FlaskClient, ids) -> None:
    assert sorted({rule.rule for rule in app.url_map.iter_rules()}) == [
        "/click/<token>", "/healthz", "/open/<token>", "/preferences/<token>",
        "/survey/<token>", "/unsubscribe/<token>", "/view/<token>"]
    health = client.get("/healthz")
    assert (health.status_code, health.text, health.mimetype) == (200, "ok", "text/plain")
    refused = client.put(f"/unsubscribe/{token('unsubscribe', ids['C1'])}")
    assert refused.status_code == 405
    assert {"GET", "POST"} <= set(refused.headers["Allow"].split(", "))
    assert refused.headers["X-Content-Type-Options"] == "nosniff"
    assert client.get("/").status_code == 404
    too_big = client.post(f"/unsubscribe/{token('unsubscribe', ids['C1'])}",
                          data={"List-Unsubscribe": "One-Click", "pad": "x" * 100_000})
    assert too_big.status_code == 413


@sqlite_only
def test_tokens_are_never_logged(app: Flask, client: FlaskClient, ids, workspace,
                                 monkeypatch: pytest.MonkeyPatch,
                                 caplog: pytest.LogCaptureFixture) -> None:
    def broken(*_args) -> bool:
        raise RuntimeError("database on fire")

    monkeypatch.setattr("engine.weblinks.record_unsubscribe", broken)
    secret = token("unsubscribe", ids["C1"])
    with caplog.at_level(logging.DEBUG):
        response = client.post(f"/unsubscribe/{secret}", data=ONE_CLICK)
    assert response.status_code == 500
    assert "Something went wrong" in response.text
    assert "database on fire" not in response.text
    logged = "\n".join(record.getMessage() + str(record.exc_info) for record in caplog.records)
    assert "Exception on /unsubscribe/<token> [POST]" in logged
    assert secret not in logged and secret.rpartition(".")[2] not in logged
    assert state(workspace) == INITIAL


def test_mask() -> None:
    assert mask("Ann.Lee@Example.com") == "A***@Example.com"
    assert mask("a@b.example") == "a***@b.example"
    assert mask("odd@at@example.com") == "o***@example.com"
    assert mask("no-at-sign") == "n***"
    assert mask("") == "***"


@contextmanager
def running(app: Callable) -> Iterator[str]:
    """The app served by waitress on 127.0.0.1 in a background thread; yields its base URL."""
    server = listen(app, "127.0.0.1", 0)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}"
    finally:
        # Closed by the server's own thread: closing from here races its select() loop.
        server.trigger.pull_trigger(server.close)
        thread.join(timeout=10)
        server.task_dispatcher.shutdown()
    assert not thread.is_alive()


def test_waitress_takes_a_one_click_post(app: Flask, workspace, ids) -> None:
    secret = token("unsubscribe", ids["C1"])
    with running(app) as url:
        request = urllib.request.Request(
            f"{url}/unsubscribe/{secret}", data=b"List-Unsubscribe=One-Click", method="POST",
            headers={"Content-Type": "application/x-www-form-urlencoded"})
        with urllib.request.urlopen(request, timeout=10) as response:
            page = response.read().decode("utf-8")
            assert response.status == 200
            assert response.headers["Referrer-Policy"] == "no-referrer"
        assert DONE in page
        forged = token("unsubscribe", ids["C2"], signer=Signer.from_secret("another key"))
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(urllib.request.Request(
                f"{url}/unsubscribe/{forged}", data=b"List-Unsubscribe=One-Click",
                method="POST"), timeout=10)
        assert refused.value.code == 404
        refused.value.close()
    assert state(workspace) == (
        [("C1", False), ("C2", True), ("C3", False)],
        [("ann.lee@example.com", "unsubscribed", "one-click via campaign spring")],
        [(ids["C1"], "spring", "unsubscribe", {"source": "one-click"})])


@sqlite_only
def test_serve_announces_its_address(shop: Workspace, shop_engine: Engine) -> None:
    class Announced(Exception):
        pass

    said: list[str] = []

    def notify(message: str) -> None:
        said.append(message)
        raise Announced  # stops serve() before it runs forever

    with pytest.raises(Announced):
        serve(shop, shop_engine, "127.0.0.1", 0, notify)
    found = re.fullmatch(r"Serving the email links and pages of Test Shop at "
                         r"http://127\.0\.0\.1:(\d+)/ \(Ctrl\+C to stop\)", said[0])
    assert found, said
    with socket.socket() as again:  # closed on the way out: the port is free again
        again.bind(("127.0.0.1", int(found[1])))


@sqlite_only
def test_listen_reports_a_busy_port_and_a_bad_host(app: Flask) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(EngineError, match=f"cannot listen on 127.0.0.1:{port}: "):
            listen(app, "127.0.0.1", port)
    with pytest.raises(EngineError, match="cannot listen on 127.0.0.1:70000: no such port"):
        listen(app, "127.0.0.1", 70000)
    with pytest.raises(EngineError, match="cannot listen on nowhere.invalid:0: "):
        listen(app, "nowhere.invalid", 0)


# View online: the example workspace on SQLite.



@pytest.fixture
def example(tmp_path: Path, seeded_database: Path) -> Workspace:
    root = tmp_path / "example"
    root.mkdir()
    for name in WORKSPACE_FILES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, root / name)
        else:
            shutil.copy(REPO / name, root / name)
    shutil.copy(seeded_database, root / "campaign.db")
    return open_workspace(root, environ={"CAMPAIGN_DATABASE_URL":
                                         f"sqlite:///{root / 'campaign.db'}",
                                         "CAMPAIGN_SECRET_KEY": KEY})


@pytest.fixture
def example_engine(example: Workspace) -> Iterator[Engine]:
    engine = open_database(example.settings, _quiet)
    yield engine
    engine.dispose()


@pytest.fixture
def example_client(example: Workspace, example_engine: Engine) -> FlaskClient:
    return create_app(example, example_engine, now=lambda: NOW).test_client()


def test_view_shows_the_customers_email(example_client: FlaskClient, example: Workspace,
                                        example_engine: Engine) -> None:
    with example_engine.connect() as connection:
        emails = CampaignEmails(example, connection, "spring", NOW)
        first, second = (next(emails.render([customer])) for customer in emails.audience(2))
    response = example_client.get(f"/view/{token('view', first.customer.id)}")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    # Never sent: as a dry run would make it, UTM parameters on shop links and no tracking.
    untracked = Tracker(example.settings.tracking, example.settings.shop.base_url, SIGNER,
                        "spring").track(first.email.html, "", None)[0]
    assert response.text == untracked != first.email.html
    assert "seed-04?utm_source=newsletter&amp;utm_medium=email&amp;utm_campaign=spring" \
        in untracked and "/click/" not in untracked and "/open/" not in untracked
    assert first.customer.first_name and first.customer.first_name in response.text
    assert first.customer.first_name != second.customer.first_name
    assert second.customer.first_name not in response.text
    assert response.headers["Content-Security-Policy"] == VIEW_POLICY
    assert "img-src https: data:" in VIEW_POLICY and "script" not in VIEW_POLICY
    assert response.headers["Referrer-Policy"] == "no-referrer"
    # The links in it are the customer's own, signed with the real key.
    assert f"/unsubscribe/{token('unsubscribe', first.customer.id)}" in response.text


@pytest.fixture
def first(example: Workspace, example_engine: Engine) -> int:
    """The first customer in the audience of spring."""
    with example_engine.connect() as connection:
        return CampaignEmails(example, connection, "spring", NOW).audience(1)[0]


def test_view_of_bad_tokens_is_not_found(example_client: FlaskClient, example: Workspace,
                                         first: int) -> None:
    genuine = token("view", first)
    assert example_client.get(f"/view/{genuine}").status_code == 200
    for bad in (genuine[:-1] + ("A" if genuine[-1] != "A" else "B"),
                token("unsubscribe", first), token("view", first, signer=Signer.from_secret("x")),
                token("view", 999999), token("view", first, "no_such_campaign")):
        response = example_client.get(f"/view/{bad}")
        assert response.status_code == 404, bad
        assert "This link is not valid" in response.text
    (example.campaigns_dir / "spring.yaml").unlink()
    assert example_client.get(f"/view/{genuine}").status_code == 404


def test_view_of_a_broken_template_is_an_error(example_client: FlaskClient,
                                               example: Workspace, first: int,
                                               caplog: pytest.LogCaptureFixture) -> None:
    (example.templates_dir / "spring.mjml").write_text(BROKEN_TEMPLATE, encoding="utf-8")
    response = example_client.get(f"/view/{token('view', first)}")
    assert response.status_code == 500
    assert "nme" not in response.text and "spring.mjml" not in response.text
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "cannot show campaign spring" in logged and "spring.mjml:5: " in logged
