"""The HTML pages of `campaign serve` (Jinja, autoescaped), and what every route shares."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from flask import abort, render_template
from jinja2 import DictLoader
from sqlalchemy import Connection, Engine, Row, select

from engine.schema import customers
from engine.tokens import Signer
from engine.workspace import Workspace

PAGE_POLICY = ("default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
               "frame-ancestors 'none'; base-uri 'none'")
# The email itself: its images and web fonts load, nothing runs, forms go nowhere.
VIEW_POLICY = ("default-src 'none'; img-src https: data:; style-src 'unsafe-inline' https:; "
               "font-src https: data:; form-action 'none'; frame-ancestors 'none'; "
               "base-uri 'none'; sandbox allow-popups allow-popups-to-escape-sandbox")


def mask(address: str) -> str:
    """An address shown without giving it away: a***@example.com."""
    local, at, domain = address.rpartition("@")
    if not at:
        return f"{address[:1]}***"
    return f"{local[:1]}***@{domain}"


@dataclass(frozen=True)
class Site:
    """What the routes share: the workspace, its database, the signer and the clock."""

    workspace: Workspace
    engine: Engine
    signer: Signer
    now: Callable[[], datetime]

    @property
    def shop(self) -> str:
        return self.workspace.settings.shop.name

    def page(self, template: str, title: str, customer: Row | None = None, **values) -> str:
        """One of our pages; about `customer` (first name and email) when given."""
        name = (customer.first_name or "").strip() if customer is not None else ""
        address = mask(customer.email) if customer is not None else ""
        return render_template(template, title=title, name=name, address=address,
                               shop=self.shop, **values)

    def customer_of(self, purpose: str, token: str) -> tuple[int, str]:
        """(customer id, campaign) of a genuine link token for `purpose`, else 404."""
        found = self.signer.verify(purpose, token)
        if found is None:
            abort(404)
        return found

    @staticmethod
    def customer(connection: Connection, customer_id: int) -> Row:
        """The customer's email, first name and subscription, else 404."""
        found = connection.execute(
            select(customers.c.email, customers.c.first_name, customers.c.subscribed)
            .where(customers.c.id == customer_id)).first()
        if found is None:
            abort(404)
        return found

_LAYOUT = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{{ title }} – {{ shop }}</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 36rem; margin: 3rem auto; padding: 0 1rem;
       color: #222; line-height: 1.5; }
button { font: inherit; padding: .5rem 1.4rem; border: 0; border-radius: .3rem;
         background: #2f5f8f; color: #fff; cursor: pointer; }
.shop { color: #666; }
.error { color: #a4262c; font-weight: 600; }
.choices { display: flex; flex-direction: column; gap: .25rem; }
.scale { display: flex; flex-wrap: wrap; gap: .3rem; }
.scale label { display: flex; flex-direction: column; align-items: center; min-width: 2.4rem;
               padding: .3rem 0; border: 1px solid #bbb; border-radius: .3rem; }
.ends { display: flex; justify-content: space-between; color: #666; font-size: .85rem; }
fieldset { border: 0; margin: 0 0 1.5rem; padding: 0; }
legend { font-weight: 600; margin-bottom: .4rem; }
textarea { box-sizing: border-box; width: 100%; font: inherit; }
.actions { display: flex; flex-direction: column; gap: .6rem; align-items: flex-start; }
</style>
</head>
<body>
<p class="shop">{{ shop }}</p>
<h1>{{ title }}</h1>
{% if name %}<p>Hello {{ name }},</p>{% endif %}
{% block content %}<p>{{ message }}</p>{% endblock %}
</body>
</html>
"""

_UNSUBSCRIBE = """{% extends "layout.html" %}
{% block content %}
{% if state == "confirm" %}
<p>Stop sending the newsletter of {{ shop }} to <strong>{{ address }}</strong>?</p>
<form method="post">
<button type="submit">Unsubscribe</button>
</form>
{% elif state == "done" %}
<p><strong>{{ address }}</strong> gets no more newsletters from {{ shop }}.</p>
{% else %}
<p><strong>{{ address }}</strong> was already unsubscribed from the newsletter of {{ shop }};
nothing more to do.</p>
{% endif %}
{% endblock %}
"""

_PREFERENCES = """{% extends "layout.html" %}
{% block content %}
{% if error %}<p class="error" role="alert">{{ error }}</p>{% endif %}
{% if state == "paused" %}
<p>Campaign emails to <strong>{{ address }}</strong> are paused until
<strong>{{ until }}</strong>. After that they start again by themselves.</p>
{% elif state == "unsubscribed" %}
<p><strong>{{ address }}</strong> gets no more newsletters from {{ shop }}.</p>
{% else %}
{% if until %}<p>Campaign emails are paused until <strong>{{ until }}</strong>.</p>{% endif %}
<p>What would you like {{ shop }} to send to <strong>{{ address }}</strong>?</p>
<form method="post" class="actions">
<input type="hidden" name="_csrf" value="{{ csrf }}">
{% for days in pauses %}
<button type="submit" name="action" value="pause{{ days }}">Pause for {{ days }} days</button>
{% endfor %}
<button type="submit" name="action" value="unsubscribe">Unsubscribe from everything</button>
</form>
{% endif %}
{% endblock %}
"""

_SURVEY = """{% extends "layout.html" %}
{% block content %}
{% if error %}<p class="error" role="alert">{{ error }}</p>{% endif %}
<form method="post">
<input type="hidden" name="_csrf" value="{{ csrf }}">
{% for question in survey.questions %}
{% set value = values.get(question.key, "") | string %}
{% set problem = problems.get(question.key) %}
<fieldset id="q-{{ question.key }}">
<legend>{{ question.ask }}{% if not question.required %} (optional){% endif %}</legend>
{% if problem %}<p class="error" id="e-{{ question.key }}">{{ problem }}</p>{% endif %}
{% if question.kind == "choice" %}
<div class="choices">
{% for choice in question.choices %}
<label><input type="radio" name="{{ question.key }}" value="{{ choice }}"
{%- if value == choice %} checked{% endif %}{% if question.required %} required{% endif %}>
{{ choice }}</label>
{% endfor %}
</div>
{% elif question.kind == "scale" %}
<div class="scale">
{% for number in question.scale %}
<label><input type="radio" name="{{ question.key }}" value="{{ number }}"
{%- if value == number | string %} checked{% endif %}{% if question.required %} required{% endif %}>
{{ number }}</label>
{% endfor %}
</div>
{% if question.nps %}
<div class="ends"><span>Not likely</span><span>Very likely</span></div>
{% endif %}
{% else %}
<textarea name="{{ question.key }}" rows="4" maxlength="{{ question.max_length }}"
{%- if question.required %} required{% endif %}>{{ value }}</textarea>
{% endif %}
</fieldset>
{% endfor %}
<button type="submit">Send</button>
</form>
{% endblock %}
"""

_THANKS = """{% extends "layout.html" %}
{% block content %}
<p>Thank you! Your answers are saved.</p>
<dl>
{% for question in survey.questions if question.key in answers %}
<dt>{{ question.ask }}</dt>
<dd>{{ answers[question.key] }}</dd>
{% endfor %}
</dl>
<p><a href="">Change your answers</a></p>
{% endblock %}
"""

LOADER = DictLoader({"layout.html": _LAYOUT, "unsubscribe.html": _UNSUBSCRIBE,
                     "preferences.html": _PREFERENCES, "survey.html": _SURVEY,
                     "thanks.html": _THANKS})
