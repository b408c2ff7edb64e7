"""`campaign serve`: the public endpoints behind the links in sent emails.

- `GET /unsubscribe/<token>` asks for confirmation (link scanners prefetch GETs, so a GET
  never unsubscribes); `POST` to the same URL unsubscribes at once: the page's button, and
  the RFC 8058 one-click POST (`List-Unsubscribe=One-Click`) that mail clients send.
- `GET /view/<token>` shows the email as the customer got it ("view online").
- `GET /healthz` answers "ok" for load balancers.

Tokens are checked with CAMPAIGN_SECRET_KEY, which must be set: the public preview key
would let anyone forge links. Tokens are never logged. Every request uses its own database
connection; the settings are read once, when the app is made.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from datetime import UTC, datetime

from flask import Flask, abort, render_template_string, request
from flask.typing import ResponseReturnValue
from markupsafe import Markup
from sqlalchemy import Engine, Row, exists, func, select
from waitress import create_server
from waitress.server import BaseWSGIServer
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from engine.emails import CampaignEmails
from engine.errors import EngineError, SettingsError, WorkspaceError
from engine.schema import customers, suppressions
from engine.tokens import PREVIEW_KEY, Signer
from engine.unsubscribe import UnknownCustomerError, record_unsubscribe
from engine.workspace import Workspace

ONE_CLICK = ("List-Unsubscribe", "One-Click")   # RFC 8058 POST body
SOURCE_ONE_CLICK = "one-click"
SOURCE_PAGE = "unsubscribe page"
MAX_BODY = 16 * 1024

PAGE_POLICY = ("default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
               "frame-ancestors 'none'; base-uri 'none'")
# The email itself: its images and web fonts load, nothing runs, forms go nowhere.
VIEW_POLICY = ("default-src 'none'; img-src https: data:; style-src 'unsafe-inline' https:; "
               "font-src https: data:; form-action 'none'; frame-ancestors 'none'; "
               "base-uri 'none'; sandbox allow-popups allow-popups-to-escape-sandbox")

_STYLE = Markup("""
body { font-family: system-ui, sans-serif; max-width: 36rem; margin: 3rem auto; padding: 0 1rem;
       color: #222; line-height: 1.5; }
button { font: inherit; padding: .5rem 1.4rem; border: 0; border-radius: .3rem;
         background: #2f5f8f; color: #fff; cursor: pointer; }
.shop { color: #666; }
""")

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{{ title }} – {{ shop }}</title>
<style>{{ style }}</style>
</head>
<body>
<p class="shop">{{ shop }}</p>
<h1>{{ title }}</h1>
{% if name %}<p>Hello {{ name }},</p>{% endif %}
{% if state == "confirm" %}
<p>Stop sending the newsletter of {{ shop }} to <strong>{{ address }}</strong>?</p>
<form method="post">
<button type="submit">Unsubscribe</button>
</form>
{% elif state == "done" %}
<p><strong>{{ address }}</strong> gets no more newsletters from {{ shop }}.</p>
{% elif state == "already" %}
<p><strong>{{ address }}</strong> was already unsubscribed from the newsletter of {{ shop }};
nothing more to do.</p>
{% else %}
<p>{{ message }}</p>
{% endif %}
</body>
</html>
"""

_ERRORS = {
    400: ("Bad request", "The request could not be understood."),
    404: ("This link is not valid", "It may have been copied only in part: open it again "
                                    "from the email, or copy the whole link."),
    405: ("Not allowed", "This page cannot be used that way."),
    413: ("Request too large", "The request is larger than this page accepts."),
    500: ("Something went wrong", "Please try again in a few minutes."),
}


def utc_now() -> datetime:
    """Now in UTC, naive, as the database stores moments."""
    return datetime.now(UTC).replace(tzinfo=None)


def mask(address: str) -> str:
    """An address shown without giving it away: a***@example.com."""
    local, at, domain = address.rpartition("@")
    if not at:
        return f"{address[:1]}***"
    return f"{local[:1]}***@{domain}"


class _App(Flask):
    """Flask that logs the route of a failed request, not its path: paths carry tokens."""

    def log_exception(self, exc_info) -> None:
        rule = request.url_rule.rule if request.url_rule is not None else "(no route)"
        self.logger.error(f"Exception on {rule} [{request.method}]", exc_info=exc_info)


def signer_of(workspace: Workspace) -> Signer:
    """The signer of the workspace's real key; refuses the public preview key."""
    secret = workspace.settings.secret_key
    if not secret or secret == PREVIEW_KEY:
        problem = "is not set" if not secret else "is the public preview key"
        raise SettingsError(
            f"CAMPAIGN_SECRET_KEY {problem}: the links in sent emails cannot be checked",
            hint="set CAMPAIGN_SECRET_KEY in the environment to the key the campaigns were "
                 "sent with (a new key makes the links of emails already sent invalid)")
    signer = Signer.from_secret(secret)
    assert not signer.preview_only
    return signer


def create_app(workspace: Workspace, engine: Engine, *,
               now: Callable[[], datetime] = utc_now) -> Flask:
    """The app serving the unsubscribe and view-online links of the workspace's emails.

    Raises SettingsError when CAMPAIGN_SECRET_KEY is not set.
    """
    signer = signer_of(workspace)
    shop = workspace.settings.shop.name
    app = _App(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY

    def page(title: str, state: str, customer: Row | None = None, message: str = "") -> str:
        """A page of ours; about `customer` (first name and email) when given."""
        name = (customer.first_name or "").strip() if customer is not None else ""
        address = mask(customer.email) if customer is not None else ""
        return render_template_string(PAGE, title=title, state=state, name=name,
                                      address=address, message=message, shop=shop,
                                      style=_STYLE)

    def customer_of(purpose: str, token: str) -> tuple[int, str]:
        """(customer id, campaign) of a genuine token for `purpose`, else 404."""
        found = signer.verify(purpose, token)
        if found is None:
            abort(404)
        return found

    @app.after_request
    def security_headers(response: Response) -> Response:
        headers = response.headers
        headers.setdefault("Content-Security-Policy", PAGE_POLICY)
        headers["X-Content-Type-Options"] = "nosniff"
        headers["Referrer-Policy"] = "no-referrer"
        headers["X-Frame-Options"] = "DENY"
        headers.setdefault("Cache-Control", "no-store")
        return response

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> ResponseReturnValue:
        code = exc.code or 500
        title, message = _ERRORS.get(code, (exc.name, exc.description or ""))
        response = exc.get_response()  # keeps headers such as Allow
        response.set_data(page(title, "error", message=message))
        response.content_type = "text/html; charset=utf-8"
        return response

    @app.get("/unsubscribe/<token>")
    def confirm(token: str) -> ResponseReturnValue:
        customer_id, _campaign = customer_of("unsubscribe", token)
        with engine.connect() as connection:
            suppressed = exists().where(suppressions.c.email == func.lower(customers.c.email))
            customer = connection.execute(
                select(customers.c.email, customers.c.first_name, customers.c.subscribed,
                       suppressed.label("suppressed"))
                .where(customers.c.id == customer_id)).first()
        if customer is None:
            abort(404)
        if not customer.subscribed and customer.suppressed:
            return page("You are unsubscribed", "already", customer)
        return page("Unsubscribe", "confirm", customer)

    @app.post("/unsubscribe/<token>")
    def unsubscribe(token: str) -> ResponseReturnValue:
        customer_id, campaign = customer_of("unsubscribe", token)
        name, value = ONE_CLICK
        source = SOURCE_ONE_CLICK if request.form.get(name) == value else SOURCE_PAGE
        try:
            with engine.begin() as connection:
                changed = record_unsubscribe(connection, customer_id, campaign, now(), source)
                customer = connection.execute(
                    select(customers.c.email, customers.c.first_name)
                    .where(customers.c.id == customer_id)).one()
        except UnknownCustomerError:
            abort(404)
        return page("You are unsubscribed", "done" if changed else "already", customer)

    @app.get("/view/<token>")
    def view(token: str) -> ResponseReturnValue:
        customer_id, campaign = customer_of("view", token)
        with engine.connect() as connection:
            try:
                emails = CampaignEmails(workspace, connection, campaign, now())
                rendered = next(emails.render([customer_id]), None)
            except WorkspaceError:  # the campaign file is gone
                abort(404)
            except EngineError as exc:  # a broken campaign or template: the owner must fix it
                app.logger.error("cannot show campaign %s to customer %s: %s",
                                 campaign, customer_id, exc)
                abort(500)
        if rendered is None:
            abort(404)
        return rendered.email.html, {"Content-Type": "text/html; charset=utf-8",
                                     "Content-Security-Policy": VIEW_POLICY}

    @app.get("/healthz")
    def healthz() -> ResponseReturnValue:
        return "ok", {"Content-Type": "text/plain; charset=utf-8"}

    return app


def listen(app: Callable, host: str, port: int) -> BaseWSGIServer:
    """A waitress server for `app` on `host` at `port` (0: a free one), not yet running."""
    hint = "pass another --host or --port (--port 0 picks a free one)"
    if not 0 <= port <= 65535:
        raise EngineError(f"cannot listen on {host}:{port}: no such port", hint=hint)
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as exc:
        raise EngineError(f"cannot listen on {host}:{port}: {exc.strerror or exc}",
                          hint=hint) from None
    # Bound here: waitress leaks its socket when it fails to bind one itself.
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise EngineError(f"cannot listen on {host}:{port}: {exc.strerror or exc}",
                          hint=hint) from None
    return create_server(app, sockets=[sock])


def serve(workspace: Workspace, engine: Engine, host: str, port: int,
          notify: Callable[[str], None]) -> None:
    """Serve the workspace's unsubscribe and view-online links until interrupted (Ctrl+C)."""
    server = listen(create_app(workspace, engine), host, port)
    try:
        where = server.effective_host
        where = f"[{where}]" if ":" in str(where) else where
        notify(f"Serving unsubscribe and view-online links of {workspace.settings.shop.name} "
               f"at http://{where}:{server.effective_port}/ (Ctrl+C to stop)")
        server.run()
    finally:
        server.close()
        server.task_dispatcher.shutdown()  # its worker threads, if run() did not
