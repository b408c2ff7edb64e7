"""`campaign serve`: the public endpoints behind the links in sent emails.

- `/unsubscribe/<token>`, `/view/<token>`, `/open/<token>` and `/click/<token>`: the links
  of every email (engine.weblinks).
- `/preferences/<token>` and `/survey/<token>`: the pages with forms (engine.webforms).
- `GET /healthz` answers "ok" for load balancers.

Tokens are checked with CAMPAIGN_SECRET_KEY, which must be set: the public preview key
would let anyone forge links. Tokens are never logged. Every request uses its own database
connection; the settings are read once, when the app is made.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from datetime import UTC, datetime

from flask import Flask, request
from flask.typing import ResponseReturnValue
from sqlalchemy import Engine
from waitress import create_server
from waitress.server import BaseWSGIServer
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from engine import webforms, weblinks
from engine.errors import EngineError, SettingsError
from engine.tokens import PREVIEW_KEY, Signer
from engine.webpages import LOADER, PAGE_POLICY, Site
from engine.workspace import Workspace

MAX_BODY = 64 * 1024    # a survey's text answers fit, percent-encoded

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


class _App(Flask):
    """Flask with our pages, logging the route of a failed request, not its path: paths
    carry tokens."""

    jinja_loader = LOADER

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
    """The app serving the links and pages of the workspace's emails.

    Raises SettingsError when CAMPAIGN_SECRET_KEY is not set.
    """
    site = Site(workspace, engine, signer_of(workspace), now)
    app = _App(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY

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
        response.set_data(site.page("layout.html", title, message=message))
        response.content_type = "text/html; charset=utf-8"
        return response

    @app.get("/healthz")
    def healthz() -> ResponseReturnValue:
        return "ok", {"Content-Type": "text/plain; charset=utf-8"}

    weblinks.register(app, site)
    webforms.register(app, site)
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
    """Serve the workspace's links and pages until interrupted (Ctrl+C)."""
    server = listen(create_app(workspace, engine), host, port)
    try:
        where = server.effective_host
        where = f"[{where}]" if ":" in str(where) else where
        notify(f"Serving the email links and pages of {workspace.settings.shop.name} "
               f"at http://{where}:{server.effective_port}/ (Ctrl+C to stop)")
        server.run()
    finally:
        server.close()
        server.task_dispatcher.shutdown()  # its worker threads, if run() did not
