"""Open and click tracking in the finished messages (engine/tracking.py, engine/outgoing.py),
its `[tracking]` settings, and the tracking and form tokens (engine/tokens.py)."""

from __future__ import annotations

import email
import email.policy
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

from engine.errors import SettingsError
from engine.outgoing import MessageMaker
from engine.render import Email
from engine.settings import Tracking, load_settings
from engine.tokens import FORM_LIFETIME, Signer
from engine.tracking import Tracker

SIGNER = Signer.from_secret("tracking-test-key")
BASE = "https://greenshop.example"
HTML = """<html><body>
<a href="https://greenshop.example/products/seed-01" target="_blank">Seeds</a>
<a href='https://www.greenshop.example/sale?x=1&amp;utm_source=shop#top'>Sale</a>
<a href="http://blog.example.org/post">Blog</a>
<a href="https://greenshop.example/unsubscribe/3.spring.abc">Unsubscribe</a>
<a href="https://greenshop.example/view/3.spring.abc">View</a>
<a href="https://greenshop.example/survey/3.spring.abc">Survey</a>
<a href="https://greenshop.example/preferences/3.spring.abc">Preferences</a>
<a href="mailto:news@greenshop.example">Write to us</a>
<img src="https://greenshop.example/img/seed-01.jpg">
</body></html>
"""
TEXT = """Seeds (https://greenshop.example/products/seed-01)
Read https://blog.example.org/post.
Unsubscribe: https://greenshop.example/unsubscribe/3.spring.abc
"""
SEEDS = "https://greenshop.example/products/seed-01?utm_source=newsletter&utm_medium=email" \
        "&utm_campaign=spring"
SALE = "https://www.greenshop.example/sale?x=1&utm_source=shop&utm_medium=email" \
       "&utm_campaign=spring#top"


def tracker(**settings: object) -> Tracker:
    return Tracker(replace(Tracking(), **settings), BASE, SIGNER, "spring")


def click(delivery: int, url: str, quoted: str) -> str:
    return f"{BASE}/click/{SIGNER.tracking_token('click', delivery, url)}?url={quoted}"


def test_a_delivery_gets_click_redirects_utm_and_an_open_pixel() -> None:
    html, text = tracker().track(HTML, TEXT, 42)
    seeds = click(42, SEEDS, "https://greenshop.example/products/seed-01%3Futm_source%3D"
                             "newsletter%26utm_medium%3Demail%26utm_campaign%3Dspring")
    sale = click(42, SALE, "https://www.greenshop.example/sale%3Fx%3D1%26utm_source%3Dshop"
                           "%26utm_medium%3Demail%26utm_campaign%3Dspring%23top")
    blog = click(42, "http://blog.example.org/post", "http://blog.example.org/post")
    pixel = (f'<img src="{BASE}/open/{SIGNER.tracking_token("open", 42)}" width="1" height="1" '
             'alt="" style="display:block;width:1px;height:1px;border:0" />')
    assert html == HTML.replace(
        '"https://greenshop.example/products/seed-01"', f'"{seeds}"').replace(
        "'https://www.greenshop.example/sale?x=1&amp;utm_source=shop#top'", f"'{sale}'").replace(
        '"http://blog.example.org/post"', f'"{blog}"').replace("</body>", f"{pixel}</body>")
    assert text == TEXT.replace("https://greenshop.example/products/seed-01", seeds).replace(
        "https://blog.example.org/post", click(42, "https://blog.example.org/post",
                                               "https://blog.example.org/post"))
    # The engine's own links, mailto: and images are as they were.
    for kept in ("/unsubscribe/3.spring.abc\"", "/view/3.spring.abc\"", "/survey/3.spring.abc\"",
                 "/preferences/3.spring.abc\"", "mailto:news@greenshop.example",
                 'src="https://greenshop.example/img/seed-01.jpg"'):
        assert kept in html
    assert "Unsubscribe: https://greenshop.example/unsubscribe/3.spring.abc\n" in text


def test_the_click_token_binds_delivery_and_exact_url() -> None:
    token = SIGNER.tracking_token("click", 42, SEEDS)
    assert SIGNER.verify_tracking("click", token, SEEDS) == 42
    assert SIGNER.verify_tracking("click", token, SEEDS + "&x=1") is None
    assert SIGNER.verify_tracking("open", token, SEEDS) is None
    assert SIGNER.verify_tracking("click", token.replace("42.", "43.", 1), SEEDS) is None
    assert Signer.from_secret("other").verify_tracking("click", token, SEEDS) is None
    assert SIGNER.verify_tracking("open", SIGNER.tracking_token("open", 7)) == 7
    for bad in ("", ".", "x.y", "-1.abc", "042.abc", "²." + token[3:], "42"):
        assert SIGNER.verify_tracking("click", bad, SEEDS) is None, bad


def test_without_a_delivery_only_utm_parameters() -> None:
    html, text = tracker().track(HTML, TEXT, None)
    assert "/click/" not in html + text and "/open/" not in html
    assert f'href="{SEEDS}"'.replace("&", "&amp;") in html
    assert f"Seeds ({SEEDS})" in text and "Read https://blog.example.org/post.\n" in text


@pytest.mark.parametrize(("settings", "pixel", "clicks", "utm"), [
    ({"opens": False}, False, True, True),
    ({"clicks": False}, True, False, True),
    ({"utm": False}, True, True, False),
    ({"opens": False, "clicks": False, "utm": False}, False, False, False),
])
def test_each_kind_of_tracking_switches_off(settings, pixel, clicks, utm) -> None:
    html, text = tracker(**settings).track(HTML, TEXT, 5)
    assert ("/open/" in html) is pixel
    assert ("/click/" in html) is clicks and ("/click/" in text) is clicks
    assert ("utm_campaign" in html + text) is utm
    if not (pixel or clicks or utm):
        assert (html, text) == (HTML, TEXT)


def test_utm_settings_and_links_that_are_not_urls() -> None:
    mine = Tracker(replace(Tracking(), utm_source="nl", utm_medium="mail"), BASE, SIGNER, "a b")
    html, _ = mine.track('<a href="https://greenshop.example/">x</a>'
                         '<a href="https://[broken/">y</a></body>', "", None)
    assert html == ('<a href="https://greenshop.example/?utm_source=nl&amp;utm_medium=mail'
                    '&amp;utm_campaign=a+b">x</a><a href="https://[broken/">y</a></body>')


def test_the_message_of_a_delivery_is_tracked(tmp_path: Path) -> None:
    (tmp_path / "campaign.toml").write_text(f'[shop]\nbase_url = "{BASE}"\n')
    settings = load_settings(tmp_path, environ={"CAMPAIGN_SECRET_KEY": "tracking-test-key"})
    maker = MessageMaker(settings, "spring", "Green Shop <news@greenshop.example>")
    context = {"customer": SimpleNamespace(name="Ann Lee", email="ann@example.com"),
               "links": SimpleNamespace(unsubscribe=f"{BASE}/unsubscribe/3.spring.abc")}
    mail = Email("Hi", HTML, TEXT)
    sent = datetime(2026, 11, 1, 12, 0)

    def parts(**kwargs: object) -> tuple[str, str]:
        data, _ = maker.make(context, mail, "<1@greenshop.example>", sent, **kwargs)
        message = email.message_from_bytes(data, policy=email.policy.default)
        return tuple(message.get_body((kind,)).get_content().replace("\r\n", "\n")
                     for kind in ("html", "plain"))

    assert parts(delivery_id=42) == tracker().track(HTML, TEXT, 42)
    assert parts() == tracker().track(HTML, TEXT, None)


@pytest.mark.parametrize(("text", "message"), [
    ('[tracking]\nopens = "no"\n',
     "campaign.toml:2: 'opens' must be true or false, not 'no'; write it as opens = true"),
    ('[tracking]\nclicks = true\nstore_ip = 1\n',
     "campaign.toml:3: 'store_ip' must be true or false, not 1; write it as store_ip = false"),
    ('[tracking]\nutm_source = "news letter"\n',
     "campaign.toml:2: 'utm_source' 'news letter' must be 1 to 64 letters, digits, dots, "
     'dashes or underscores; write it as utm_source = "newsletter"'),
    ('[tracking]\nclick = false\n',
     "campaign.toml:2: unknown setting 'click' in [tracking]; did you mean 'clicks'?"),
])
def test_bad_tracking_settings_are_located(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "campaign.toml").write_text(text)
    with pytest.raises(SettingsError) as error:
        load_settings(tmp_path, environ={})
    assert str(error.value) == f"{tmp_path}/{message}"


def test_tracking_settings(tmp_path: Path) -> None:
    (tmp_path / "campaign.toml").write_text("")
    assert load_settings(tmp_path, environ={}).tracking == Tracking(
        opens=True, clicks=True, utm=True, utm_source="newsletter", utm_medium="email",
        store_ip=False)
    (tmp_path / "campaign.toml").write_text(
        '[tracking]\nopens = false\nutm_medium = "e-mail"\nstore_ip = true\n')
    assert load_settings(tmp_path, environ={}).tracking == Tracking(
        opens=False, clicks=True, utm=True, utm_source="newsletter", utm_medium="e-mail",
        store_ip=True)


def test_form_tokens_expire_and_bind_their_form() -> None:
    issued = datetime(2026, 11, 1, 12, 0)
    token, nonce = SIGNER.form_token("survey", "fb", 3, issued)
    assert SIGNER.verify_form("survey", "fb", 3, token, nonce, issued)
    assert SIGNER.verify_form("survey", "fb", 3, token, nonce, issued + FORM_LIFETIME)
    assert not SIGNER.verify_form("survey", "fb", 3, token, nonce,
                                  issued + FORM_LIFETIME + timedelta(seconds=1))
    assert not SIGNER.verify_form("survey", "fb", 3, token, nonce, issued - timedelta(seconds=1))
    for purpose, campaign, customer, their_nonce in (("preferences", "fb", 3, nonce),
                                                     ("survey", "fc", 3, nonce),
                                                     ("survey", "fb", 4, nonce),
                                                     ("survey", "fb", 3, "other"),
                                                     ("survey", "fb", 3, "")):
        assert not SIGNER.verify_form(purpose, campaign, customer, token, their_nonce, issued)
    assert SIGNER.form_token("survey", "fb", 3, issued)[1] != nonce   # a new nonce each time
