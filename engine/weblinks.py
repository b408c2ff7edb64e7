"""The links in every email: unsubscribe, view online, and the open and click tracking.

- `GET /unsubscribe/<token>` asks for confirmation (link scanners prefetch GETs, so a GET
  never unsubscribes); `POST` to the same URL unsubscribes at once: the page's button, and
  the RFC 8058 one-click POST (`List-Unsubscribe=One-Click`) that mail clients send.
- `GET /view/<token>` shows the email as the customer got it ("view online").
- `GET /open/<token>` answers a 1×1 GIF and records an "open" of the delivery.
- `GET /click/<token>?url=URL` records a "click" and redirects to URL, which the token signs:
  any other URL is refused (404), so this is no open redirect.

With `[tracking] opens = false` (or `clicks = false`) the pixel and redirects of emails
already sent still answer, but record nothing.
"""

from __future__ import annotations

from base64 import b64decode
from typing import Any

from flask import Flask, abort, request
from flask.typing import ResponseReturnValue
from sqlalchemy import exists, func, select
from werkzeug.urls import iri_to_uri
from werkzeug.wrappers import Response

from engine.emails import CampaignEmails
from engine.errors import EngineError, WorkspaceError
from engine.feedback import latest_delivery, record_hit
from engine.schema import customers, suppressions
from engine.tracking import Tracker
from engine.unsubscribe import UnknownCustomerError, record_unsubscribe
from engine.webpages import VIEW_POLICY, Site

ONE_CLICK = ("List-Unsubscribe", "One-Click")   # RFC 8058 POST body
SOURCE_ONE_CLICK = "one-click"
SOURCE_PAGE = "unsubscribe page"
PIXEL = b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")  # 1×1, clear


def register(app: Flask, site: Site) -> None:
    """Add the email links' routes to `app`."""
    settings = site.workspace.settings
    tracking = settings.tracking

    def hit(kind: str, delivery_id: int, detail: dict[str, Any]) -> None:
        if tracking.store_ip:
            detail = {**detail, "ip": request.remote_addr}
        with site.engine.begin() as connection:
            record_hit(connection, kind, delivery_id, site.now(), detail)

    @app.get("/unsubscribe/<token>")
    def confirm(token: str) -> ResponseReturnValue:
        customer_id, _campaign = site.customer_of("unsubscribe", token)
        with site.engine.connect() as connection:
            suppressed = exists().where(suppressions.c.email == func.lower(customers.c.email))
            customer = connection.execute(
                select(customers.c.email, customers.c.first_name, customers.c.subscribed,
                       suppressed.label("suppressed"))
                .where(customers.c.id == customer_id)).first()
        if customer is None:
            abort(404)
        if not customer.subscribed and customer.suppressed:
            return site.page("unsubscribe.html", "You are unsubscribed", customer,
                             state="already")
        return site.page("unsubscribe.html", "Unsubscribe", customer, state="confirm")

    @app.post("/unsubscribe/<token>")
    def unsubscribe(token: str) -> ResponseReturnValue:
        customer_id, campaign = site.customer_of("unsubscribe", token)
        name, value = ONE_CLICK
        source = SOURCE_ONE_CLICK if request.form.get(name) == value else SOURCE_PAGE
        try:
            with site.engine.begin() as connection:
                changed = record_unsubscribe(connection, customer_id, campaign, site.now(),
                                             source)
                customer = site.customer(connection, customer_id)
        except UnknownCustomerError:
            abort(404)
        return site.page("unsubscribe.html", "You are unsubscribed", customer,
                         state="done" if changed else "already")

    @app.get("/view/<token>")
    def view(token: str) -> ResponseReturnValue:
        """The email as sent: rendered as of its run's evaluated_at, with the tracked links
        of its delivery; never sent, as the campaign would render now (like a dry run)."""
        customer_id, campaign = site.customer_of("view", token)
        with site.engine.connect() as connection:
            delivery = latest_delivery(connection, campaign, customer_id)
            delivery_id, moment = delivery if delivery is not None else (None, site.now())
            try:
                emails = CampaignEmails(site.workspace, connection, campaign, moment)
                rendered = next(emails.render([customer_id]), None)
            except WorkspaceError:  # the campaign file is gone
                abort(404)
            except EngineError as exc:  # a broken campaign or template: the owner must fix it
                app.logger.error("cannot show campaign %s to customer %s: %s",
                                 campaign, customer_id, exc)
                abort(500)
        if rendered is None:
            abort(404)
        tracker = Tracker(tracking, settings.shop.base_url, site.signer, campaign)
        html, _text = tracker.track(rendered.email.html, "", delivery_id)
        return html, {"Content-Type": "text/html; charset=utf-8",
                      "Content-Security-Policy": VIEW_POLICY}

    @app.get("/open/<token>")
    def opened(token: str) -> ResponseReturnValue:
        delivery_id = site.signer.verify_tracking("open", token)
        if delivery_id is None:
            abort(404)
        if tracking.opens:
            hit("open", delivery_id, {})
        return PIXEL, {"Content-Type": "image/gif"}

    @app.get("/click/<token>")
    def click(token: str) -> ResponseReturnValue:
        urls = request.args.getlist("url")
        if len(urls) != 1 or not urls[0].lower().startswith(("https://", "http://")):
            abort(404)
        delivery_id = site.signer.verify_tracking("click", token, urls[0])
        if delivery_id is None:
            abort(404)
        if tracking.clicks:
            hit("click", delivery_id, {"url": urls[0]})
        return Response(status=302, headers={"Location": iri_to_uri(urls[0])})
