"""Campaign files, `campaign preview` and `campaign check`, through the real command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.campaigns import CampaignError, Recurrence, Trigger, load_campaign
from engine.timespec import Span
from engine.tokens import Signer
from engine.workspace import open_workspace
from tests.conftest import Workspace, copy_example

REPO = Path(__file__).resolve().parent.parent
NOW = ("--now", "2026-11-01")
GOOD = "subject: Hi\nsegment: garden_fans\ntemplate: spring.mjml\n"


@pytest.fixture
def shop(example_shop: Workspace) -> Workspace:
    return example_shop


@pytest.mark.parametrize(("content", "where", "message"), [
    ("subject: Hi\nsegment: garden_fan\ntemplate: spring.mjml\n",
     "2:10", "unknown segment 'garden_fan' (did you mean 'garden_fans'?); segments in "
     "segments.yaml: loyal_lapsed, big_spenders, garden_fans, active_vips, berliners, champions, "
     "gold_members, recent_buyers, follow_up_due, detractors, promoters"),
    ("subject: Hi\nsegment: garden_fans\ntemplate: sprong.mjml\n",
     "3:11", "unknown template 'sprong.mjml' (did you mean 'spring.mjml'?); templates in "
     "templates/: follow_up.mjml, spring.mjml, thank_you.mjml, winback.mjml"),
    ("subject: Hi\nsegment: garden_fans\ntemplate: spring.mjml\ncoupon: {percent: 150}\n",
     "4:19", "coupon 'percent' must be a number above 0 and at most 100, found 150 (int)"),
    ("subject: Hi\nsegment: garden_fans\ntemplate: spring.mjml\n"
     "coupon: {percent: 10, valid_for: soon}\n",
     "4:34", "coupon 'valid_for': 'soon' is not a length of time (write e.g. 90 days, "
     "12 weeks, 6 months or 1 year)"),
    ("subject: Hi\nsegment: garden_fans\ntemplate: spring.mjml\ncoupon: {percnt: 10}\n",
     "4:10", "unknown coupon option 'percnt' (did you mean 'percent'?); write it as "
     "{percent: 15, valid_for: 30 days, prefix: SPRING}"),
    ("subject: Hi\nsegment: garden_fans\ntemplate: spring.mjml\nfrom: news at shop\n",
     "4:7", "'from' is not a valid sender address: 'news at shop'; write it as "
     "\"Shop Name <news@shop.example>\""),
    ("subjet: Hi\nsegment: garden_fans\ntemplate: spring.mjml\n",
     "1:1", "unknown key 'subjet' (did you mean 'subject'?); campaign files take "
     "description, subject, preheader, segment, template, from, coupon, recommendations, "
     "recent_orders, survey, schedule, trigger"),
    ("subject: '{{ customer.name'\nsegment: garden_fans\ntemplate: spring.mjml\n",
     "1:10", "'subject' is not a valid template: unexpected end of template, expected "
     "'end of print statement'."),
    ("subject: Hi\nsegment: {orders: {at_lest: 2}}\ntemplate: spring.mjml\n",
     "2:20", "unknown option 'at_lest' for 'orders' (did you mean 'at_least'?)"),
    ("subject: Hi\nsegment: garden_fans\ntemplate: spring.mjml\nrecommendations: 40\n",
     "4:18", "'recommendations' must be a whole number from 0 to 12, found 40 (int)"),
])
def test_campaign_file_errors_are_located(shop, content, where, message):
    shop.write("campaigns/bad.yaml", content)
    result = shop.run("check", "bad", *NOW)
    assert result.exit_code == 1
    bad = shop.root / "campaigns" / "bad.yaml"
    assert f"{bad}:{where}: error: {message}\n" in result.output, result.output


def test_every_problem_of_a_campaign_file_is_listed(shop):
    shop.write("campaigns/bad.yaml", "subject: Hi\nsegment: nobody\ntemplate: none.mjml\n")
    result = shop.run("check", "bad", *NOW)
    assert result.exit_code == 1
    assert "bad.yaml:2:10: error: unknown segment 'nobody'" in result.output
    assert "bad.yaml:3:11: error: unknown template 'none.mjml'" in result.output


def test_unknown_campaign_suggests_the_closest(shop):
    result = shop.run("preview", "sprin", *NOW)
    assert result.exit_code == 1
    assert "no campaign named 'sprin'" in result.output and "did you mean 'spring'" in result.output


def test_the_example_workspace_checks_clean(shop):
    result = shop.run("check", *NOW)
    assert result.exit_code == 0, result.output
    assert "Checked 4 campaigns and 80 emails: no errors, 1 warning." in result.output
    assert "CAMPAIGN_SECRET_KEY is not set" in result.output


def test_check_reports_template_mistakes_with_their_line(shop):
    template = (shop.root / "templates" / "spring.mjml").read_text(encoding="utf-8")
    template = template.replace("{{ customer.greeting_name }}", "{{ customer.greting_name }}")
    template = template.replace("<mj-column>", "<mj-colum>", 1)
    shop.write("templates/spring.mjml", template)
    result = shop.run("check", "spring", *NOW)
    assert result.exit_code == 1
    spring = shop.root / "templates" / "spring.mjml"
    assert f"{spring}:5: error: unknown MJML element <mj-colum>; did you mean <mj-column>?" \
        in result.output
    assert f"{spring}:6: error: customer has no attribute 'greting_name' for customer " \
           "C0000003 <lenakoch@inbox.example>; check the spelling" in result.output
    assert "the rendering failures above hit 19 more of the 20 emails checked" in result.output


def test_check_reports_a_missing_unsubscribe_link_and_postal_address(shop):
    footer = shop.root / "templates" / "_partials" / "footer.mjml"
    footer.write_text(footer.read_text(encoding="utf-8").replace(
        '<a href="{{ links.unsubscribe }}">Unsubscribe</a> &middot; ', "").replace(
        "{{ shop.postal_address }}", ""), encoding="utf-8")
    result = shop.run("check", "winback", *NOW)
    assert result.exit_code == 1
    winback = shop.root / "templates" / "winback.mjml"
    assert result.output.count(
        f"{winback}: error: no link to the recipient's unsubscribe address; add <a href=") == 1
    assert f"{winback}: error: postal address 'Example Street 1, 10115 Berlin, Germany' is " \
           "missing" in result.output


def test_check_all_recipients_renders_the_whole_audience(shop):
    result = shop.run("check", "winback", "--all-recipients", *NOW)
    count = shop.run("segment", "count", "loyal_lapsed", *NOW)
    assert result.exit_code == 0, result.output
    assert f"Checked 1 campaign and {int(count.output):,} emails" in result.output


def test_preview_renders_a_customer_by_email_or_id(shop, tmp_path):
    by_email = shop.run("preview", "spring", "--customer", "LenaKoch@inbox.example", "--text",
                        *NOW)
    by_id = shop.run("preview", "spring", "--customer", "C0000003", "--text", *NOW)
    assert by_email.exit_code == by_id.exit_code == 0, by_email.output
    assert by_email.output == by_id.output
    assert "Subject: Lena, spring picks for you" in by_email.output
    assert "Hello Lena," in by_email.output and "4,50\xa0€" in by_email.output
    out = tmp_path / "lena.html"
    written = shop.run("preview", "spring", "--customer", "C0000003", "--out", str(out), *NOW)
    assert written.exit_code == 0 and f"Wrote {out}" in written.output
    html = out.read_text(encoding="utf-8")
    assert html.startswith("<html") and "Hello Lena," in html


def test_preview_of_an_unknown_customer_says_so(shop):
    result = shop.run("preview", "spring", "--customer", "nobody@example.com", *NOW)
    assert result.exit_code == 1
    assert "no customer with email or customer id 'nobody@example.com'" in result.output


def test_links_and_coupons_are_signed_and_stable(shop, monkeypatch):
    def text(key: str | None) -> str:
        if key:
            monkeypatch.setenv("CAMPAIGN_SECRET_KEY", key)
        else:
            monkeypatch.delenv("CAMPAIGN_SECRET_KEY", raising=False)
        result = shop.run("preview", "spring", "--customer", "C0000003", "--text", *NOW)
        assert result.exit_code == 0, result.output
        return result.output

    first, again, other = text("key-one"), text("key-one"), text("key-two")
    assert first == again
    code = next(line for line in first.splitlines() if line.startswith("SPRING-"))
    assert code not in other and code == Signer.from_secret("key-one").coupon_code(
        "SPRING", "spring", 3)
    token = first.split("/unsubscribe/")[1].split(")")[0]
    signer = Signer.from_secret("key-one")
    assert signer.verify("unsubscribe", token) == (3, "spring")
    assert signer.verify("survey", token) is None
    assert Signer.from_secret("key-two").verify("unsubscribe", token) is None
    forged = token.replace("3.spring", "4.spring", 1)
    assert signer.verify("unsubscribe", forged) is None
    assert "signed with the public preview key" in text(None)


def test_check_also_reads_templates_no_campaign_uses(shop):
    shop.write("templates/draft.mjml",
               "<mjml><mj-body>\n<mj-sectoin>{% if x %}\n</mj-body></mjml>\n")
    result = shop.run("check", *NOW)
    assert result.exit_code == 1
    draft = shop.root / "templates" / "draft.mjml"
    assert f"{draft}:2: error: unknown MJML element <mj-sectoin>; did you mean <mj-section>?" \
        in result.output
    assert f"{draft}:2: error: template syntax error: Unexpected end of template. Jinja was " \
           "looking for the following tags: 'elif' or 'else' or 'endif'." in result.output
    assert "Checked 4 campaigns and 80 emails: 2 errors, 1 warning." in result.output


@pytest.fixture(scope="module")
def files_only(tmp_path_factory) -> Path:
    """The example workspace's files, without a database: enough to read campaign files."""
    root = tmp_path_factory.mktemp("files") / "shop"
    copy_example(root)
    (root / "campaign.toml").write_text(
        (root / "campaign.toml").read_text(encoding="utf-8").replace(
            "[shop]\n", '[shop]\ntimezone = "America/New_York"\n', 1), encoding="utf-8")
    return root


def read_campaign(root: Path, name: str, content: str):
    (root / "campaigns" / f"{name}.yaml").write_text(content, encoding="utf-8")
    return load_campaign(open_workspace(root, environ={}), name)


@pytest.mark.parametrize(("content", "where", "message"), [
    (GOOD + 'schedule: {cron: "0 9 * *"}\n',
     "4:18", "schedule cron '0 9 * *' must have 5 fields; write it like \"0 9 * * MON\" "
     "(minute hour day-of-month month day-of-week)"),
    (GOOD + "schedule:\n  cron: 0 25 * * MON\n",
     "5:9", "schedule cron '0 25 * * MON' is not a valid cron expression; write it like "
     "\"0 9 * * MON\" (minute hour day-of-month month day-of-week)"),
    (GOOD + 'schedule: {cron: "0 9 * * MON", timezone: Europe/Berln}\n',
     "4:43", "schedule timezone 'Europe/Berln' is not an IANA time zone (did you mean "
     "'Europe/Berlin'?); write it like Europe/Berlin or UTC"),
    (GOOD + 'schedule: {cronn: "0 9 * * MON"}\n',
     "4:12", "unknown schedule option 'cronn' (did you mean 'cron'?); write it as "
     "{cron: \"0 9 * * MON\", timezone: Europe/Berlin}"),
    (GOOD + 'schedule: "0 9 * * MON"\n',
     "4:11", "'schedule' takes {cron: \"0 9 * * MON\", timezone: Europe/Berlin}, found "
     "'0 9 * * MON'"),
    (GOOD + "trigger: {after: orders, wait: 7 days}\n",
     "4:18", "unknown trigger event 'orders' (did you mean 'order'?); 'after' takes order, "
     "last_order, signed_up"),
    (GOOD + "trigger: {on: birthday, wait: 1 day}\n",
     "4:25", "'birthday' triggers on the day itself and takes no 'wait'; remove it"),
    (GOOD + "trigger: {after: birthday}\n",
     "4:18", "write 'birthday' as {on: birthday}, not {after: birthday}"),
    (GOOD + "trigger: {after: order, wait: soon}\n",
     "4:31", "trigger 'wait': 'soon' is not a length of time (write e.g. 90 days, 12 weeks, "
     "6 months or 1 year)"),
    (GOOD + "trigger: {after: order, catch_up: 2 months}\n",
     "4:35", "trigger 'catch_up' 2 months is too long; at most 31 days (events due longer ago "
     "are not sent)"),
    (GOOD + "trigger: {after: order, wiat: 7 days}\n",
     "4:25", "unknown trigger option 'wiat' (did you mean 'wait'?); write it as "
     "{after: order, wait: 7 days} or {on: birthday}"),
    (GOOD + "trigger: {wait: 7 days}\n",
     "4:10", "'trigger' takes 'after' or 'on', one of them; write it as {after: order, "
     "wait: 7 days} or {on: birthday}"),
    (GOOD + "trigger: {on: birthday, after: order}\n",
     "4:10", "'trigger' takes 'after' or 'on', not both; write it as {after: order, "
     "wait: 7 days} or {on: birthday}"),
    (GOOD + "trigger: order\n",
     "4:10", "'trigger' takes {after: order, wait: 7 days} or {on: birthday}, found 'order'"),
    (GOOD + 'schedule: {cron: "0 9 * * *"}\ntrigger: {on: birthday}\n',
     "5:1", "a campaign takes 'schedule' or 'trigger', not both; split it into two campaign "
     "files"),
])
def test_schedule_and_trigger_errors_are_located(files_only, content, where, message):
    with pytest.raises(CampaignError) as error:
        read_campaign(files_only, "bad", content)
    assert f"{files_only / 'campaigns' / 'bad.yaml'}:{where}: {message}" in error.value.problems


def test_schedule_and_trigger_are_read(files_only):
    weekly = read_campaign(files_only, "weekly", GOOD + 'schedule: {cron: "0  9 * * MON"}\n')
    assert weekly.recurrence == Recurrence("0 9 * * MON", "America/New_York")   # the shop's
    assert weekly.trigger is None
    berlin = read_campaign(files_only, "berlin",
                           GOOD + "schedule:\n  cron: 0 9 * * MON\n  timezone: Europe/Berlin\n")
    assert berlin.recurrence == Recurrence("0 9 * * MON", "Europe/Berlin")
    cases = {
        "{after: order, wait: 7 days}": Trigger("order", Span(7, "days"), Span(3, "days")),
        "{after: last_order, wait: 90 days, catch_up: 1 week}":
            Trigger("last_order", Span(90, "days"), Span(1, "weeks")),
        "{after: signed_up}": Trigger("signed_up", None, Span(3, "days")),
        "{on: birthday}": Trigger("birthday", None, Span(3, "days")),
    }
    for text, expected in cases.items():
        campaign = read_campaign(files_only, "lifecycle", f"{GOOD}trigger: {text}\n")
        assert (campaign.trigger, campaign.recurrence) == (expected, None)
    assert read_campaign(files_only, "plain", GOOD).trigger is None


def test_every_schedule_and_trigger_problem_is_listed(files_only):
    with pytest.raises(CampaignError) as error:
        read_campaign(files_only, "bad", GOOD + "trigger: {after: orders, wait: soon, "
                                                "catch_up: never}\n")
    bad = files_only / "campaigns" / "bad.yaml"
    span = "is not a length of time (write e.g. 90 days, 12 weeks, 6 months or 1 year)"
    assert error.value.problems == [
        f"{bad}:4:18: unknown trigger event 'orders' (did you mean 'order'?); 'after' takes "
        "order, last_order, signed_up",
        f"{bad}:4:32: trigger 'wait': 'soon' {span}",
        f"{bad}:4:48: trigger 'catch_up': 'never' {span}"]
