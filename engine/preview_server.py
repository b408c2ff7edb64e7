"""`campaign preview NAME --serve`: a live preview page of sample recipients, on 127.0.0.1 only.

Every request reads the campaign, segment and template files again and renders from a fresh
database connection, so an edit shows at the next reload; the page polls `/changes` and
reloads itself when a watched file changes.
"""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from flask import Flask, abort, jsonify, render_template_string, request
from flask.typing import ResponseReturnValue
from markupsafe import Markup
from sqlalchemy import Engine
from waitress import create_server
from waitress.server import BaseWSGIServer

from engine.context import CustomerView
from engine.emails import CampaignEmails
from engine.errors import EngineError
from engine.render import Email, RenderError
from engine.settings import SETTINGS_FILE
from engine.workspace import Workspace

HOST = "127.0.0.1"
SAMPLE_SIZE = 12
# Rendered emails may hold links and images but never run scripts next to the preview page.
EMAIL_SANDBOX = "allow-popups allow-popups-to-escape-sandbox"

_STYLE = Markup("""
body { font-family: system-ui, sans-serif; margin: 0 1.5rem 2rem; color: #222; }
nav { display: flex; flex-wrap: wrap; gap: .4rem; margin: .5rem 0 1rem; }
nav a { padding: .2rem .6rem; border: 1px solid #bbb; border-radius: 1rem; text-decoration: none; }
nav a[aria-current] { background: #2f5f8f; border-color: #2f5f8f; color: #fff; }
section { border-top: 1px solid #ddd; padding-top: .5rem; }
.frames { display: flex; flex-wrap: wrap; gap: 1.5rem; align-items: flex-start; }
figure { margin: 0; }
iframe { height: 800px; border: 1px solid #bbb; background: #fff; }
pre { white-space: pre-wrap; max-width: 80ch; background: #f6f6f6; padding: .8rem; }
pre.error { background: #fdecea; border: 1px solid #d93025; color: #8a1c13; max-width: none; }
""")

_ERRORS = """{% macro errors(problems) %}{% for problem in problems %}
<pre class="error">{{ problem }}</pre>{% endfor %}{% endmacro %}"""

PAGE = _ERRORS + """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Preview of {{ name }}</title>
<style>{{ style }}</style>
</head>
<body>
<h1>Preview of {{ name }}</h1>
<p>As of {{ now }} UTC. This page reloads when a template, campaign file, segments.yaml or
campaign.toml changes.</p>
<nav>
<a href="{{ url_for('index') }}"{% if selected is none %} aria-current="page"{% endif %}>All</a>
{% for customer in recipients %}
<a href="{{ url_for('index', customer=customer.id) }}"
  {%- if customer.id == selected %} aria-current="page"{% endif %}>
  {{- customer.name or customer.email }}</a>
{% endfor %}
</nav>
{{ errors(problems) }}
{% if not problems and not recipients %}<p>The audience of {{ name }} is empty.</p>{% endif %}
{% for preview in previews %}{% set customer = preview.customer %}
<section>
<h2>{{ customer.name or customer.email }}</h2>
<p>To: {{ customer.name }} &lt;{{ customer.email }}&gt; (customer {{ customer.customer_id }})</p>
{% if preview.email %}
<p>Subject: <strong>{{ preview.email.subject }}</strong></p>
<div class="frames">
{% for width in widths %}
<figure>
<figcaption>{{ width }} px</figcaption>
<iframe src="{{ url_for('email', customer_id=customer.id) }}" width="{{ width }}"
        loading="lazy" sandbox="{{ sandbox }}"
        title="Email to {{ customer.email }} at {{ width }} px"></iframe>
</figure>
{% endfor %}
</div>
<pre class="text">{{ preview.email.text }}</pre>
{% else %}{{ errors(preview.problems) }}{% endif %}
</section>
{% endfor %}
<script>
const loaded = {{ fingerprint | tojson }};
setInterval(async () => {
  try {
    const response = await fetch({{ url_for("changes") | tojson }}, {cache: "no-store"});
    if (response.ok && (await response.json()).fingerprint !== loaded) location.reload();
  } catch (error) {
    // The server is stopped or busy: try again at the next tick.
  }
}, 1000);
</script>
</body>
</html>
"""

ERROR_PAGE = _ERRORS + """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Cannot render</title>
<style>{{ style }}</style></head><body>{{ errors(problems) }}</body></html>
"""


@dataclass(frozen=True)
class Preview:
    """One sample recipient's email, or why it cannot be rendered."""

    customer: CustomerView
    email: Email | None
    problems: list[str]


def fingerprint(workspace: Workspace) -> str:
    """A digest of the path, size and mtime of each file and folder a campaign is made of."""
    paths = [workspace.root / SETTINGS_FILE, workspace.segments_file]
    for folder in (workspace.templates_dir, workspace.campaigns_dir):
        paths += [folder, *sorted(folder.rglob("*"))]
    digest = hashlib.sha256()
    for path in paths:
        try:
            stat = path.stat()
        except OSError:  # missing, or gone since listed (editors save by renaming)
            continue
        digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:32]


def problems_of(exc: EngineError) -> list[str]:
    """Each located problem of an engine error, as the command line would print it."""
    return list(getattr(exc, "problems", None) or [str(exc)])


def create_app(workspace: Workspace, engine: Engine, name: str, now: datetime,
               sample_size: int = SAMPLE_SIZE) -> Flask:
    """The preview app of campaign `name` for its first `sample_size` recipients as of `now`."""
    app = Flask(__name__, static_folder=None)
    app.config["TRUSTED_HOSTS"] = [HOST, "localhost"]  # refuses DNS rebinding

    def page(**values) -> str:
        values = {"recipients": [], "previews": [], "problems": [], **values}
        return render_template_string(PAGE, name=name, now=now.isoformat(sep=" "),
                                      style=_STYLE, widths=(600, 375),
                                      sandbox=EMAIL_SANDBOX, **values)

    @app.get("/")
    def index() -> ResponseReturnValue:
        selected = request.args.get("customer", type=int)
        if "customer" in request.args and selected is None:
            abort(404)
        # Taken before reading the files: an edit made while rendering reloads the page again.
        loaded = fingerprint(workspace)
        with engine.connect() as connection:
            try:
                emails = CampaignEmails(workspace, connection, name, now)
                contexts = emails.builder.build(emails.audience(sample_size))
            except EngineError as exc:
                return page(fingerprint=loaded, selected=selected, problems=problems_of(exc))
            shown = [context for context in contexts
                     if selected in (None, context["customer"].id)]
            if selected is not None and not shown:
                abort(404)
            previews = []
            for context in shown:
                try:
                    previews.append(Preview(context["customer"],
                                            emails.renderer.render(context), []))
                except RenderError as exc:
                    previews.append(Preview(context["customer"], None, problems_of(exc)))
        return page(fingerprint=loaded, selected=selected, previews=previews,
                    recipients=[context["customer"] for context in contexts])

    @app.get("/email/<int:customer_id>.html")
    def email(customer_id: int) -> ResponseReturnValue:
        with engine.connect() as connection:
            try:
                emails = CampaignEmails(workspace, connection, name, now)
                if customer_id not in emails.audience(sample_size):
                    abort(404)
                html = next(emails.render([customer_id])).email.html
            except EngineError as exc:
                return render_template_string(ERROR_PAGE, style=_STYLE,
                                              problems=problems_of(exc)), 500
        return html, {"Content-Security-Policy": f"sandbox {EMAIL_SANDBOX}"}

    @app.get("/changes")
    def changes() -> ResponseReturnValue:
        return jsonify(fingerprint=fingerprint(workspace)), {"Cache-Control": "no-store"}

    return app


def listen(app: Callable, port: int) -> BaseWSGIServer:
    """A waitress server for `app` on 127.0.0.1 at `port` (0: a free one), not yet running."""
    # Bound here: waitress leaks its socket when it fails to bind one itself.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((HOST, port))
    except OSError as exc:
        sock.close()
        raise EngineError(f"cannot listen on {HOST}:{port}: {exc.strerror or exc}",
                          hint="pass another --port, or --port 0 for a free one") from None
    return create_server(app, sockets=[sock])


def serve_preview(workspace: Workspace, engine: Engine, name: str, now: datetime, port: int,
                  notify: Callable[[str], None]) -> None:
    """Serve the live preview of campaign `name` until interrupted (Ctrl+C)."""
    server = listen(create_app(workspace, engine, name, now), port)
    try:
        notify(f"Preview of {name} at http://{HOST}:{server.effective_port}/ (Ctrl+C to stop)")
        server.run()
    finally:
        server.close()
