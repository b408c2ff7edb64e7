"""The pages with forms: preferences (pause or unsubscribe) and a campaign's survey.

- `/preferences/<token>`: pause campaign mail for 30 or 90 days, or unsubscribe from
  everything.
- `/survey/<token>`: the campaign's `survey:` as a form; sending it again replaces the answers.

Every form carries CSRF protection: a hidden form token signed for the form's purpose,
campaign and customer, issued at most FORM_LIFETIME ago, whose nonce must equal the
SameSite=Strict cookie the page set (double submit). A POST without both, or with an
expired one, is refused with 400 and the form shown again with a fresh token; nothing is
stored. Every field is checked on the server; any problem is a 400 that stores nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Flask, abort, make_response, request
from flask.typing import ResponseReturnValue
from sqlalchemy import select
from werkzeug.wrappers import Response

from engine import formatting
from engine.campaigns import load_campaign
from engine.errors import EngineError, WorkspaceError
from engine.feedback import PAUSE_DAYS, record_pause, record_survey, survey_answers
from engine.schema import pauses
from engine.surveys import Survey, read_answers
from engine.tokens import FORM_LIFETIME
from engine.unsubscribe import UnknownCustomerError, record_unsubscribe
from engine.webpages import Site

CSRF_FIELD = "_csrf"
FORM_COOKIE = "campaign_form"
SOURCE_PREFERENCES = "preference page"
STALE = ("This form has expired or was not sent from its page. Nothing was saved: please "
         "send it again.")


def register(app: Flask, site: Site) -> None:
    """Add the preference and survey pages to `app`."""
    secure = site.workspace.settings.shop.base_url.startswith("https://")

    def with_form(purpose: str, campaign: str, customer_id: int, status: int,
                  template: str, title: str, customer: Any, **values: Any) -> Response:
        """The page with its form, a fresh form token in it and its nonce in a cookie."""
        token, nonce = site.signer.form_token(purpose, campaign, customer_id, site.now())
        response = make_response(site.page(template, title, customer, csrf=token, **values),
                                 status)
        response.set_cookie(FORM_COOKIE, nonce, max_age=int(FORM_LIFETIME.total_seconds()),
                            path=request.path, secure=secure, httponly=True, samesite="Strict")
        return response

    def genuine(purpose: str, campaign: str, customer_id: int) -> bool:
        """Whether this POST carries a valid form token matching its cookie."""
        return site.signer.verify_form(purpose, campaign, customer_id,
                                       request.form.get(CSRF_FIELD, ""),
                                       request.cookies.get(FORM_COOKIE, ""), site.now())

    def paused_until(customer_id: int) -> str:
        with site.engine.connect() as connection:
            until = connection.execute(select(pauses.c.paused_until).where(
                pauses.c.customer_id == customer_id,
                pauses.c.paused_until > site.now())).scalar_one_or_none()
        return _day(until) if until is not None else ""

    @app.route("/preferences/<token>", methods=["GET", "POST"])
    def preferences(token: str) -> ResponseReturnValue:
        customer_id, campaign = site.customer_of("preferences", token)
        with site.engine.connect() as connection:
            customer = site.customer(connection, customer_id)
        title = "Your emails"

        def form(status: int, error: str = "") -> Response:
            return with_form("preferences", campaign, customer_id, status,
                             "preferences.html", title, customer, error=error,
                             until=paused_until(customer_id), pauses=PAUSE_DAYS)

        if not customer.subscribed:
            return site.page("preferences.html", title, customer, state="unsubscribed")
        if request.method == "GET":
            return form(200)
        if not genuine("preferences", campaign, customer_id):
            return form(400, STALE)
        action = request.form.get("action", "")
        choices = {f"pause{days}" for days in PAUSE_DAYS} | {"unsubscribe"}
        if action not in choices or set(request.form) != {CSRF_FIELD, "action"} \
                or any(len(values) > 1 for values in request.form.listvalues()):
            return form(400, "Please choose one of the buttons.")
        try:
            with site.engine.begin() as connection:
                if action == "unsubscribe":
                    record_unsubscribe(connection, customer_id, campaign, site.now(),
                                       SOURCE_PREFERENCES)
                    return site.page("preferences.html", "You are unsubscribed", customer,
                                     state="unsubscribed")
                until = record_pause(connection, customer_id, campaign,
                                     int(action.removeprefix("pause")), site.now())
        except UnknownCustomerError:
            abort(404)
        return site.page("preferences.html", "Your emails are paused", customer,
                         state="paused", until=_day(until))

    @app.route("/survey/<token>", methods=["GET", "POST"])
    def survey(token: str) -> ResponseReturnValue:
        customer_id, campaign = site.customer_of("survey", token)
        questions = _survey(app, site, campaign)
        with site.engine.connect() as connection:
            customer = site.customer(connection, customer_id)
            stored = survey_answers(connection, campaign, customer_id) or {}
        title = questions.title or "A few questions"

        def form(status: int, values: dict[str, Any], problems: dict[str, str],
                 error: str = "") -> Response:
            return with_form("survey", campaign, customer_id, status, "survey.html", title,
                             customer, survey=questions, values=values, problems=problems,
                             error=error)

        if request.method == "GET":
            return form(200, stored, {})
        submitted = {key: values[0] for key, values in request.form.lists()
                     if key != CSRF_FIELD and values}
        if not genuine("survey", campaign, customer_id):
            return form(400, submitted, {}, STALE)
        answers, problems = read_answers(questions, request.form.to_dict(flat=False),
                                         ignore=frozenset({CSRF_FIELD}))
        if problems:
            return form(400, submitted, problems, problems.get("") or
                        "Please check the answers marked below.")
        try:
            with site.engine.begin() as connection:
                record_survey(connection, campaign, customer_id, answers, site.now())
        except UnknownCustomerError:
            abort(404)
        return site.page("thanks.html", title, customer, survey=questions, answers=answers)


def _survey(app: Flask, site: Site, campaign: str) -> Survey:
    """The campaign's survey; 404 when the campaign or its survey is gone."""
    try:
        found = load_campaign(site.workspace, campaign).survey
    except WorkspaceError:  # the campaign file is gone
        abort(404)
    except EngineError as exc:  # a broken campaign file: the owner must fix it
        app.logger.error("cannot show the survey of campaign %s: %s", campaign, exc)
        abort(500)
    if found is None:
        abort(404)
    return found


def _day(moment: datetime) -> str:
    return formatting.day(moment, None, "long")
