"""The live preview server (`campaign preview NAME --serve`) on a copy of the example workspace."""

from __future__ import annotations

import html
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from markupsafe import escape
from sqlalchemy import Engine, update

from engine.bootstrap import open_database
from engine.campaigns import CampaignError, load_campaign
from engine.emails import CampaignEmails, Rendered
from engine.errors import EngineError
from engine.preview_server import EMAIL_SANDBOX, create_app, listen
from engine.schema import customers
from engine.workspace import Workspace, open_workspace

REPO = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 1)
SAMPLE = 3
WORKSPACE_FILES = ("campaign.toml", "segments.yaml", "campaigns", "templates")
IFRAME = re.compile(r'<iframe src="/email/(\d+)\.html" width="(\d+)"')
ERROR_BOX = re.compile(r'<pre class="error">(.*?)</pre>', re.DOTALL)
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


def _quiet(_message: str) -> None:
    """A notify callback that drops the message."""




@pytest.fixture
def example_url(tmp_path: Path, seeded_database: Path) -> str:
    """A URL to this test's own copy of the seeded database."""
    path = tmp_path / "campaign.db"
    shutil.copy(seeded_database, path)
    return f"sqlite:///{path}"


@pytest.fixture
def example(tmp_path: Path, example_url: str) -> Workspace:
    """A copy of the example workspace's settings, segments, campaigns and templates."""
    root = tmp_path / "shop"
    root.mkdir()
    for name in WORKSPACE_FILES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, root / name)
        else:
            shutil.copy(REPO / name, root / name)
    return open_workspace(root, environ={"CAMPAIGN_DATABASE_URL": example_url})


@pytest.fixture
def engine(example: Workspace) -> Iterator[Engine]:
    """The example's database engine, disposed after the test."""
    engine = open_database(example.settings, _quiet)
    yield engine
    engine.dispose()


@pytest.fixture
def app(example: Workspace, engine: Engine) -> Flask:
    """The preview app of spring for a sample of SAMPLE recipients."""
    return create_app(example, engine, "spring", NOW, sample_size=SAMPLE)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """Flask's test client of the app."""
    return app.test_client()


def rendered(example: Workspace, engine: Engine, count: int = SAMPLE) -> list[Rendered]:
    """What the engine itself renders for the first `count` recipients of spring."""
    with engine.connect() as connection:
        emails = CampaignEmails(example, connection, "spring", NOW)
        return list(emails.render(emails.audience(count)))


def served_fingerprint(client: FlaskClient) -> str:
    """The fingerprint `/changes` answers now."""
    response = client.get("/changes")
    assert response.headers["Cache-Control"] == "no-store"
    return response.get_json()["fingerprint"]


def later(path: Path) -> None:
    """Set the modification time of `path` a second into the future."""
    future = time.time_ns() + 10**9
    os.utime(path, ns=(future, future))


def backdate(path: Path) -> None:
    """Set the modification time of `path` to 2000-01-01, as `cp -p` of an old file would."""
    os.utime(path, (946684800, 946684800))


def rewrite_keeping_mtime(path: Path) -> None:
    """Change the content of `path` but not its modification time."""
    before = path.stat()
    path.write_text(path.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


@contextmanager
def running(app: Callable) -> Iterator[str]:
    """The app served by waitress on 127.0.0.1 in a background thread; yields its base URL."""
    server = listen(app, 0)
    assert server.effective_host == "127.0.0.1"
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}"
    finally:
        server.close()
        thread.join(timeout=10)
        server.task_dispatcher.shutdown()
    assert not thread.is_alive()


def test_index_shows_each_sample_recipient(client: FlaskClient, example: Workspace,
                                           engine: Engine) -> None:
    response = client.get("/")
    page = response.text
    assert response.status_code == 200
    expected = rendered(example, engine)
    assert len(expected) == SAMPLE
    assert IFRAME.findall(page) == [(str(each.customer.id), width) for each in expected
                                    for width in ("600", "375")]
    for each in expected:
        assert f'href="/?customer={each.customer.id}"' in page
        assert f"<strong>{escape(each.email.subject)}</strong>" in page
        assert escape(each.customer.email) in page
        assert f'<pre class="text">{escape(each.email.text)}</pre>' in page
    assert page.count(f'sandbox="{EMAIL_SANDBOX}"') == 2 * SAMPLE
    assert json.dumps(served_fingerprint(client)) in page
    assert not ERROR_BOX.findall(page)


def test_a_selected_recipient_is_shown_alone(client: FlaskClient, example: Workspace,
                                             engine: Engine) -> None:
    first, second, third = (each.customer.id for each in rendered(example, engine))
    page = client.get(f"/?customer={second}").text
    assert IFRAME.findall(page) == [(str(second), "600"), (str(second), "375")]
    assert f'<a href="/?customer={second}" aria-current="page">' in page
    assert f'href="/?customer={first}">' in page
    assert f'href="/?customer={third}">' in page


def test_email_is_the_rendered_html(client: FlaskClient, example: Workspace,
                                    engine: Engine) -> None:
    first = rendered(example, engine, 1)[0]
    response = client.get(f"/email/{first.customer.id}.html")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert response.text == first.email.html
    assert first.customer.first_name in response.text
    assert response.headers["Content-Security-Policy"].startswith("sandbox ")


def test_ids_outside_the_sample_are_not_found(client: FlaskClient, example: Workspace,
                                              engine: Engine) -> None:
    outside = rendered(example, engine, SAMPLE + 1)[SAMPLE].customer.id
    for url in (f"/email/{outside}.html", "/email/999999.html", "/email/-1.html",
                "/email/abc.html", f"/?customer={outside}", "/?customer=999999",
                "/?customer=abc", "/static/preview_server.py"):
        assert client.get(url).status_code == 404, url


def test_only_its_own_routes_and_local_hosts(app: Flask, client: FlaskClient) -> None:
    assert sorted(rule.rule for rule in app.url_map.iter_rules()) == [
        "/", "/changes", "/email/<int:customer_id>.html"]
    assert client.get("/changes", headers={"Host": "127.0.0.1:8025"}).status_code == 200
    assert client.get("/changes", headers={"Host": "attacker.example"}).status_code == 400


@pytest.mark.parametrize("edit", [
    lambda root: later(root / "templates" / "spring.mjml"),
    lambda root: later(root / "templates" / "_partials" / "footer.mjml"),
    lambda root: later(root / "campaigns" / "spring.yaml"),
    lambda root: later(root / "segments.yaml"),
    lambda root: later(root / "campaign.toml"),
    lambda root: (root / "templates" / "spring.mjml").unlink(),
    lambda root: backdate(root / "templates" / "spring.mjml"),
    lambda root: rewrite_keeping_mtime(root / "templates" / "spring.mjml"),
], ids=["template", "partial", "campaign", "segments", "settings", "deleted", "backdated",
        "same-mtime"])
def test_a_watched_edit_changes_the_fingerprint(client: FlaskClient, example: Workspace,
                                                edit: Callable[[Path], None]) -> None:
    before = served_fingerprint(client)
    assert served_fingerprint(client) == before
    edit(example.root)
    assert served_fingerprint(client) != before


def test_other_files_leave_the_fingerprint(client: FlaskClient, example: Workspace) -> None:
    before = served_fingerprint(client)
    (example.root / "notes.txt").write_text("not a campaign file", encoding="utf-8")
    later(example.root / "notes.txt")
    assert served_fingerprint(client) == before


def test_a_broken_template_shows_where_and_edits_show_at_once(
        client: FlaskClient, example: Workspace, engine: Engine) -> None:
    first = rendered(example, engine, 1)[0].customer.id
    template = example.templates_dir / "spring.mjml"
    original = template.read_text(encoding="utf-8")
    template.write_text(BROKEN_TEMPLATE, encoding="utf-8")
    response = client.get("/")
    assert response.status_code == 200
    errors = ERROR_BOX.findall(response.text)
    assert len(errors) == SAMPLE
    assert all("spring.mjml:5: " in error and "nme" in error for error in errors)
    assert not IFRAME.findall(response.text)
    assert 'fetch("/changes"' in response.text
    email = client.get(f"/email/{first}.html")
    assert email.status_code == 500
    assert "spring.mjml:5: " in ERROR_BOX.findall(email.text)[0]
    template.write_text(original, encoding="utf-8")
    page = client.get("/").text
    assert not ERROR_BOX.findall(page)
    assert len(IFRAME.findall(page)) == 2 * SAMPLE


def test_campaign_file_problems_are_listed(client: FlaskClient, example: Workspace) -> None:
    campaign = example.campaigns_dir / "spring.yaml"
    campaign.write_text("subject: Hi\nsegment: garden_fan\ntemplate: spring.mjml\n"
                        "recommendations: 99\n", encoding="utf-8")
    with pytest.raises(CampaignError) as raised:
        load_campaign(example, "spring")
    response = client.get("/")
    assert response.status_code == 200
    assert ERROR_BOX.findall(response.text) == [str(escape(problem))
                                                 for problem in raised.value.problems]
    assert len(raised.value.problems) == 2


def test_an_empty_audience_is_said(example: Workspace, engine: Engine) -> None:
    (example.campaigns_dir / "nobody.yaml").write_text(
        "subject: Hi\nsegment: {customer: {city: Nowhere}}\ntemplate: spring.mjml\n",
        encoding="utf-8")
    page = create_app(example, engine, "nobody", NOW).test_client().get("/").text
    assert "The audience of nobody is empty." in page
    assert not ERROR_BOX.findall(page)


def test_customer_data_is_escaped(client: FlaskClient, example: Workspace,
                                  engine: Engine) -> None:
    first = rendered(example, engine, 1)[0].customer.id
    name = '<script>alert("x")</script>'
    with engine.begin() as connection:
        connection.execute(update(customers).where(customers.c.id == first)
                           .values(first_name=name))
    page = client.get("/").text
    assert name not in page
    assert page.count(str(escape(name))) >= 4  # link, heading, recipient, subject, text


def test_waitress_serves_the_page(app: Flask, example: Workspace, engine: Engine) -> None:
    subject = rendered(example, engine, 1)[0].email.subject
    with running(app) as url, urllib.request.urlopen(f"{url}/", timeout=10) as response:
        page = response.read().decode("utf-8")
    assert response.status == 200
    assert str(escape(subject)) in page


def test_listen_reports_a_busy_port(app: Flask) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(EngineError, match=f"cannot listen on 127.0.0.1:{port}: "):
            listen(app, port)


def test_campaign_preview_serve_runs_until_ctrl_c(example: Workspace,
                                                  example_url: str) -> None:
    env = {**os.environ, "CAMPAIGN_WORKSPACE": str(example.root),
           "CAMPAIGN_DATABASE_URL": example_url}
    process = subprocess.Popen(
        [sys.executable, "-c", "from cli import cli; cli()", "preview", "spring", "--serve",
         "--port", "0", "--now", "2026-11-01"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([process.stderr], [], [], 30)
        assert ready, "no URL announced within 30 s"
        line = process.stderr.readline()
        found = re.fullmatch(r"Preview of spring at (http://127\.0\.0\.1:\d+/) "
                             r"\(Ctrl\+C to stop\)\n", line)
        assert found, line
        with urllib.request.urlopen(found[1] + "changes", timeout=10) as response:
            assert "fingerprint" in json.load(response)
        process.send_signal(signal.SIGINT)
        _out, errors = process.communicate(timeout=30)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == 0, errors


def test_browser_shows_the_frames_and_reloads(example: Workspace, engine: Engine,
                                              tmp_path: Path) -> None:
    browser = shutil.which("chromium") or shutil.which("/usr/bin/chromium")
    if browser is None:
        reason = "Chromium not installed: apt-get install chromium"
        if os.environ.get("CAMPAIGN_REQUIRE_BROWSER") == "1":
            pytest.fail(f"{reason} (CAMPAIGN_REQUIRE_BROWSER=1 makes it mandatory)")
        pytest.skip(reason)
    first = rendered(example, engine, 1)[0]
    app = create_app(example, engine, "spring", NOW, sample_size=1)
    requested: list[str] = []

    def recording(environ: dict, start_response: Callable) -> object:
        """Records each path; the first poll finds a template edited meanwhile."""
        if environ["PATH_INFO"] == "/changes" and "/changes" not in requested:
            later(example.templates_dir / "spring.mjml")
        requested.append(environ["PATH_INFO"])
        return app(environ, start_response)

    with running(recording) as url:
        dom = subprocess.run(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", f"--user-data-dir={tmp_path / 'chromium'}",
             "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
             "--virtual-time-budget=3000", "--dump-dom", f"{url}/"],
            capture_output=True, text=True, timeout=90, check=True).stdout
    assert IFRAME.findall(dom) == [(str(first.customer.id), "600"),
                                   (str(first.customer.id), "375")]
    assert html.escape(first.email.subject, quote=False) in dom
    assert requested.count("/") == 2
    assert f"/email/{first.customer.id}.html" in requested
