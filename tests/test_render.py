"""The fast pipeline against the straightforward one: same HTML, same text, far fewer compiles."""

from __future__ import annotations

import shutil
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from markupsafe import Markup
from sqlalchemy import Engine, event, select

from engine import bootstrap
from engine.campaigns import campaign_names
from engine.context import CampaignView
from engine.emails import CampaignEmails
from engine.render import EmailRenderer, RenderError
from engine.schema import customers
from engine.segments.compiler import segment_query
from engine.segments.tree import TierIs
from engine.workspace import open_workspace

REPO = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 1)
NEWSLETTER_CAMPAIGN = """\
subject: "{{ customer.first_name }}, the spring sale is on"
preheader: picked from what you bought
segment: {orders: {at_least: 1}}
template: newsletter.mjml
coupon: {percent: 15, valid_for: 30 days, prefix: SALE}
recommendations: 3
"""


@pytest.fixture(scope="module")
def example(tmp_path_factory) -> SimpleNamespace:
    """A copy of the example workspace plus the reference newsletter, on a filled SQLite file."""
    root = tmp_path_factory.mktemp("example")
    for name in ("campaign.toml", "segments.yaml"):
        shutil.copy(REPO / name, root / name)
    for name in ("campaigns", "templates", "data"):
        shutil.copytree(REPO / name, root / name)
    shutil.copy(REPO / "benchmarks" / "newsletter.mjml", root / "templates" / "newsletter.mjml")
    (root / "campaigns" / "newsletter.yaml").write_text(NEWSLETTER_CAMPAIGN, encoding="utf-8")
    workspace = open_workspace(root, environ={"CAMPAIGN_SECRET_KEY": "test-key"})
    engine = bootstrap.open_database(workspace.settings, lambda _message: None,
                                     lambda *_args: None)
    yield SimpleNamespace(workspace=workspace, engine=engine)
    engine.dispose()


def _compare(example: SimpleNamespace, name: str, count: int) -> CampaignEmails:
    with example.engine.connect() as connection:
        emails = CampaignEmails(example.workspace, connection, name, NOW)
        ids = emails.audience(count)
        assert len(ids) >= min(count, 20), f"{name}: audience too small to compare"
        fast = list(emails.render(ids))
        straight = list(emails.render(ids, straight=True))
    assert [r.customer.id for r in fast] == ids
    for quick, plain in zip(fast, straight, strict=True):
        assert quick.email.subject == plain.email.subject
        assert quick.email.html == plain.email.html, f"{name}: HTML differs for {ids}"
        assert quick.email.text == plain.email.text
    return emails


@pytest.mark.parametrize("name", ["spring", "thank_you", "winback", "follow_up"])
def test_example_campaigns_render_the_same_both_ways(example, name):
    assert name in campaign_names(example.workspace)
    emails = _compare(example, name, 40)
    skeletons = emails.renderer.skeletons
    # One compile and one probe per structure, never one per recipient beyond that.
    assert skeletons.compiles == 2 * skeletons.structures


def test_reference_newsletter_renders_the_same_both_ways_for_many_customers(example):
    emails = _compare(example, "newsletter", 150)
    skeletons = emails.renderer.skeletons
    # A compile and a probe per structure (0 to 3 recommendations, with or without a city).
    assert len(skeletons.shapes) <= 8
    assert skeletons.compiles == 2 * skeletons.structures == 2 * len(skeletons.shapes)
    with example.engine.connect() as connection:
        again = CampaignEmails(example.workspace, connection, "newsletter", NOW)
        contexts = again.builder.build(again.audience(150))
    for context in contexts:
        again.renderer.render(context)
    compiles = again.renderer.skeletons.compiles
    for context in contexts:
        again.renderer.render(context)
    assert again.renderer.skeletons.compiles == compiles, "a seen structure was compiled again"


def test_context_costs_the_same_queries_for_any_batch_size(example):
    statements: list[str] = []

    def count(_conn, _cursor, statement, *_args) -> None:
        statements.append(statement)

    engine: Engine = example.engine
    with engine.connect() as connection:
        emails = CampaignEmails(example.workspace, connection, "spring", NOW)
        ids = emails.audience(400)
        event.listen(engine, "before_cursor_execute", count)
        try:
            small = emails.builder.build(ids[:3])
            per_small = len(statements)
            statements.clear()
            large = emails.builder.build(ids)
            per_large = len(statements)
        finally:
            event.remove(engine, "before_cursor_execute", count)
    assert len(small) == 3 and len(large) == len(ids) == 400
    assert per_small == per_large == 5


def test_context_tiers_match_the_tier_segments(example):
    """stats.tier, computed per batch from the batch's orders only, agrees with the `tier`
    condition evaluated over the whole database."""
    with example.engine.connect() as connection:
        emails = CampaignEmails(example.workspace, connection, "spring", NOW)
        scope = emails.segments.scope
        ids = sorted(connection.execute(select(customers.c.id)).scalars())
        members = {tier.name: set(connection.execute(
            segment_query(TierIs((tier.name,)), scope)).scalars()) for tier in scope.tiers}
        tiers = {context["customer"].id: context["stats"].tier
                 for start in range(0, len(ids), 97)
                 for context in emails.builder.build(ids[start:start + 97])}
    expected = {customer_id: next((name for name, ids in members.items()
                                   if customer_id in ids), None) for customer_id in ids}
    assert len(set(expected.values())) == len(scope.tiers) + 1  # every tier, and none
    assert tiers == expected


def test_context_holds_what_templates_need(example):
    with example.engine.connect() as connection:
        emails = CampaignEmails(example.workspace, connection, "spring", NOW)
        context = emails.builder.build([emails.find_customer("C0000011")])[0]
    customer, stats = context["customer"], context["stats"]
    assert customer.customer_id == "C0000011" and customer.greeting_name == customer.first_name
    assert stats.orders_count == 4 and stats.days_since_last_order == 171
    assert stats.favourite_category == "Kitchen" and stats.tier in {"gold", "silver", "bronze"}
    assert stats.average_order == (stats.total_spent / 4).quantize(Decimal("0.01"))
    assert len(context["orders"]) == 3 and all(order.items for order in context["orders"])
    assert [o.placed_at for o in context["orders"]] == sorted(
        (o.placed_at for o in context["orders"]), reverse=True)
    owned = {item.sku for order in context["orders"] for item in order.items}
    picks = context["recommendations"]
    assert len(picks) == 3 and not owned & {p.sku for p in picks}
    assert context["coupon"].code.startswith("SPRING-") and context["coupon"].percent == 15
    assert context["links"].unsubscribe.startswith("https://greenshop.example/unsubscribe/")


def test_recommendations_fall_back_to_best_sellers_for_a_new_customer(example):
    with example.engine.connect() as connection:
        emails = CampaignEmails(example.workspace, connection, "spring", NOW)
        builder = emails.builder
        picks = builder.recommender.recommend(set(), None, 3)
    assert [p.sku for p in picks] == [builder.recommender.catalog[i].sku
                                      for i in builder.recommender.best[:3]]


# -- adversarial values --------------------------------------------------------------------

PROBE_TEMPLATE = """\
<mjml><mj-head><mj-title>{{ c.name }} - {{ campaign.subject }}</mj-title>
<mj-preview>{{ c.city }}</mj-preview>
<mj-attributes><mj-all font-family="Arial" /></mj-attributes></mj-head>
<mj-body><mj-section><mj-column>
<mj-text>Hi {{ c.name }},{% if c.flag %} in {{ c.city }}{% endif %} {{ c.name|upper }}</mj-text>
<mj-image src="{{ c.url }}" alt="{{ c.name }}" href="https://shop.example/p?n={{ c.name }}" />
<mj-button href="{{ c.url }}" title="{{ c.city }}">{{ c.name }}</mj-button>
<mj-text color="{{ c.color }}"><a href="{{ c.url }}">{{ c.city }}</a> <span title="{{ c.name }}"
>x</span> {{ c.html }}{% set captured %}<b>{{ c.name }}</b>{% endset %}{{ captured }}</mj-text>
<mj-text><a href="{{ c.url }}"><img src="https://shop.example/i.png" alt="{{ c.city }}"
/></a><!-- {{ c.name }} --></mj-text>
</mj-column></mj-section>
<mj-section>{% for item in c.items %}<mj-column><mj-text>{{ item }}</mj-text></mj-column>
{% endfor %}</mj-section>
</mj-body></mjml>
"""
_ALPHABET = st.characters(codec="utf-8", exclude_categories=("Cs",),
                          exclude_characters="\x00\x0b\x0c") | st.sampled_from(
    list("&<>\"' \t\n\r\xa0éß😀") + ["zqj1jqz", "&amp;", "&#39;", "  ", "%20"])
_TEXT = st.lists(_ALPHABET, max_size=12).map("".join)


@pytest.fixture(scope="module")
def probe_renderer(tmp_path_factory) -> EmailRenderer:
    folder = tmp_path_factory.mktemp("templates")
    (folder / "probe.mjml").write_text(PROBE_TEMPLATE, encoding="utf-8")
    return EmailRenderer(folder, "probe.mjml", "{{ c.name }}!", "")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=_TEXT, city=_TEXT, path=_TEXT, flag=st.booleans(),
       color=st.sampled_from(["#ff0000", "red", "#333"]), bold=_TEXT,
       items=st.lists(_TEXT, max_size=3))
def test_any_values_render_the_same_both_ways(probe_renderer, name, city, path, flag, color,
                                              bold, items):
    values = SimpleNamespace(name=name, city=city, url=f"https://shop.example/{path}",
                             flag=flag, color=color, html=Markup("<b>%s</b>") % bold,
                             items=items)
    context = {"c": values, "campaign": CampaignView("probe", "", "", ""), "customer": None}
    outcomes = []
    for draw in (probe_renderer.render, probe_renderer.render_straight):
        try:
            outcomes.append(draw(context))
        except ValueError as exc:  # MRML refuses some inputs: then both ways must refuse
            outcomes.append(type(exc))
    assert outcomes[0] == outcomes[1]


def test_a_value_that_mjml_reads_is_compiled_with_the_value(tmp_path):
    (tmp_path / "probe.mjml").write_text(PROBE_TEMPLATE, encoding="utf-8")
    probe_renderer = EmailRenderer(tmp_path, "probe.mjml", "{{ c.name }}!", "")
    for color in ("#ff0000", "red", "#ff0000"):
        values = SimpleNamespace(name="Ann", city="Rome", url="https://shop.example/a",
                                 flag=True, color=color, html=Markup(""), items=["x"])
        context = {"c": values, "campaign": CampaignView("probe", "", "", ""),
                   "customer": None}
        assert probe_renderer.render(context) == probe_renderer.render_straight(context)
        assert f'color:{color}' in probe_renderer.render(context).html.replace(" ", "")
    # One compile and one probe for each colour; the repeated colour is not compiled again.
    assert probe_renderer.skeletons.compiles == 4


def test_template_errors_name_the_file_line_and_customer(tmp_path):
    (tmp_path / "broken.mjml").write_text(
        "<mjml><mj-body><mj-section><mj-column>\n<mj-text>{{ customer.nme }}</mj-text>\n"
        "</mj-column></mj-section></mj-body></mjml>\n", encoding="utf-8")
    renderer = EmailRenderer(tmp_path, "broken.mjml", "Hi", "")
    customer = SimpleNamespace(customer_id="C7", email="ann@example.com", nme_typo=1)
    with pytest.raises(RenderError) as caught:
        renderer.render({"customer": customer, "campaign": CampaignView("x", "", "", "")})
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / 'broken.mjml'}:2: ")
    assert "has no attribute 'nme'" in message and "customer C7 <ann@example.com>" in message


def test_template_syntax_errors_name_the_file_and_line(tmp_path):
    (tmp_path / "bad.mjml").write_text("<mjml>\n<mj-body>{% if x %}\n</mj-body></mjml>\n",
                                       encoding="utf-8")
    with pytest.raises(RenderError) as caught:
        EmailRenderer(tmp_path, "bad.mjml", "Hi", "")
    assert str(caught.value).startswith(f"{tmp_path / 'bad.mjml'}:")
    assert "template syntax error" in str(caught.value)
