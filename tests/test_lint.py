"""engine.lint on real MRML output: template source checks and rendered email checks."""

from __future__ import annotations

import logging
from pathlib import Path

import mjml
import premailer
import pytest

from engine.lint import GMAIL_CLIP_BYTES, Problem, check_html, check_mjml_source

UNSUBSCRIBE = "https://shop.example/unsubscribe?c=42&t=abc"
ADDRESS = "Green Shop, Example Street 1, 10115 Berlin, Germany"
ALT_HINT = 'add alt="..." describing the image (alt="" marks a decorative one)'
HTML_ALT_HINT = ('add alt="..." to its <mj-image>, <mj-carousel-image> or <mj-social-element> '
                 '(alt="" marks a decorative image)')
LINK_HINT = "use an absolute https:// URL (mailto: and tel: are fine too)"
SRC_HINT = "use an absolute https:// URL; mail clients cannot load relative or file: paths"
FACEBOOK_ICON = "https://www.mailjet.com/images/theme/v1/icons/ico-social/facebook.png"

FOOTER = """
<mj-text>
  <a href="https://shop.example/unsubscribe?c=42&amp;t=abc">Unsubscribe</a> &middot;
  <a href="mailto:help@shop.example">Write to us</a> &middot; <a href="tel:+4930123">Call</a>
  <br />Green Shop, Example Street 1,<br />
  10115&nbsp;Berlin, Germany
</mj-text>
"""
GOOD_BODY = """
<mj-image src="https://shop.example/p/1.jpg" alt="Tomato seeds" href="https://shop.example/p/1" />
<mj-image src="https://shop.example/line.png" alt="" />
<mj-button href="https://shop.example/cart?coupon=SPRING&amp;src=mail">Use it now</mj-button>
<mj-social>
  <mj-social-element name="facebook" href="https://shop.example/fb">Facebook</mj-social-element>
  <mj-social-element name="instagram" href="https://shop.example/ig">Instagram</mj-social-element>
</mj-social>
<mj-navbar><mj-navbar-link href="https://shop.example/news">News</mj-navbar-link></mj-navbar>
<mj-carousel>
  <mj-carousel-image src="https://shop.example/c/1.jpg" alt="Greenhouse" />
  <mj-carousel-image src="https://shop.example/c/2.jpg" alt="Garden" />
</mj-carousel>
<mj-accordion><mj-accordion-element>
  <mj-accordion-title>Shipping</mj-accordion-title><mj-accordion-text>Free</mj-accordion-text>
</mj-accordion-element></mj-accordion>
<mj-text><img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=" alt="" width="1" /></mj-text>
""" + FOOTER


def mjml_document(body: str) -> str:
    """A whole MJML document with `body` in one column (fonts set, so no Google Fonts link)."""
    return f"""<mjml>
  <mj-head><mj-attributes><mj-all font-family="Helvetica, Arial, sans-serif" /></mj-attributes>
  </mj-head>
  <mj-body><mj-section><mj-column>{body}</mj-column></mj-section></mj-body>
</mjml>"""


def render(body: str) -> str:
    """The email the product sends: compiled by MRML, then CSS-inlined by premailer."""
    return premailer.transform(mjml.mjml2html(mjml_document(body)), allow_network=False,
                               cssutils_logging_level=logging.CRITICAL)


def problems_of(html: str) -> list[tuple[str, str]]:
    return [(problem.severity, problem.message)
            for problem in check_html(html, unsubscribe_url=UNSUBSCRIBE, postal_address=ADDRESS)]


@pytest.fixture(scope="module")
def good_email() -> str:
    return render(GOOD_BODY)


# Problem


def test_problem_str_omits_missing_parts():
    assert str(Problem("error", "bad", "a.mjml", 3, "fix it")) == "a.mjml:3: error: bad; fix it"
    assert str(Problem("warning", "meh", "a.mjml")) == "a.mjml: warning: meh"
    assert str(Problem("error", "bad", hint="fix it")) == "error: bad; fix it"


# check_mjml_source


def test_repository_template_is_clean():
    template = Path(__file__).parent.parent / "templates" / "spring.mjml"
    assert check_mjml_source(template.read_text(encoding="utf-8"), "spring.mjml") == []


def test_mrml_compiles_a_misspelled_element_silently():
    html = mjml.mjml2html(mjml_document('<mj-buton href="https://shop.example">Buy</mj-buton>'))
    assert '<mj-buton href="https://shop.example">Buy</mj-buton>' in html


def test_misspelled_element_reported_once_with_line_and_suggestion():
    source = mjml_document("""
        <mj-text>Hello</mj-text>
        <mj-buton href="https://shop.example">Buy</mj-buton>
        <mj-colum />""")
    assert check_mjml_source(source, "t.mjml") == [
        Problem("error", "unknown MJML element <mj-buton>", "t.mjml", 6,
                "did you mean <mj-button>?"),
        Problem("error", "unknown MJML element <mj-colum>", "t.mjml", 7,
                "did you mean <mj-column>?"),
    ]


def test_misspelled_end_tag_and_unlike_name_reported():
    source = "<mjml><mj-body>\n<mj-text>Hi</mj-txet>\n<mj-blink></mj-blink>\n</mj-body></mjml>"
    assert check_mjml_source(source, "t.mjml") == [
        Problem("error", "unknown MJML element <mj-txet>", "t.mjml", 2, "did you mean <mj-text>?"),
        Problem("error", "unknown MJML element <mj-blink>", "t.mjml", 3,
                "the MJML 4 elements are listed at https://documentation.mjml.io"),
    ]


def test_every_mrml_element_is_known_and_compiles():
    source = """<mjml>
  <mj-head>
    <mj-title>T</mj-title><mj-preview>P</mj-preview><mj-breakpoint width="320px" />
    <mj-font name="Raleway" href="https://fonts.example/raleway.css" />
    <mj-attributes><mj-all padding="0" /><mj-class name="blue" color="blue" /></mj-attributes>
    <mj-style>.x { color: red; }</mj-style>
  </mj-head>
  <mj-body>
    <mj-wrapper><mj-section><mj-group><mj-column>
      <mj-text>t</mj-text><mj-button href="https://a.example">b</mj-button>
      <mj-image src="https://a.example/i.png" alt="i" /><mj-divider /><mj-spacer />
      <mj-table><tr><td>1</td></tr></mj-table><mj-raw><p>raw</p></mj-raw>
      <mj-social><mj-social-element name="x" href="https://a.example">X</mj-social-element>
      </mj-social>
      <mj-navbar><mj-navbar-link href="https://a.example">N</mj-navbar-link></mj-navbar>
      <mj-carousel><mj-carousel-image src="https://a.example/c.png" alt="c" /></mj-carousel>
      <mj-accordion><mj-accordion-element><mj-accordion-title>Q</mj-accordion-title>
        <mj-accordion-text>A</mj-accordion-text></mj-accordion-element></mj-accordion>
    </mj-column></mj-group></mj-section></mj-wrapper>
    <mj-hero background-url="https://a.example/h.png"><mj-text>h</mj-text></mj-hero>
  </mj-body>
</mjml>"""
    html = mjml.mjml2html(source)
    assert "<mj-" not in html
    assert check_mjml_source(source, "t.mjml") == []


def test_mj_html_attributes_is_unsupported_by_mrml():
    source = mjml_document("").replace(
        "<mj-head>", '<mj-head>\n<mj-html-attributes><mj-selector path=".x">'
        '<mj-html-attribute name="data-id">1</mj-html-attribute></mj-selector>'
        "</mj-html-attributes>")
    with pytest.raises(ValueError, match="unexpected element"):
        mjml.mjml2html(source)
    hint = "MRML rejects it; see https://github.com/jdrouet/mrml/issues/426"
    assert check_mjml_source(source, "t.mjml") == [
        Problem("error", f"<{name}> is not supported by MRML (mjml-python)", "t.mjml", 3, hint)
        for name in ("mj-html-attributes", "mj-selector", "mj-html-attribute")]


def test_jinja_comments_strings_and_expressions_are_ignored():
    source = mjml_document("""
{# <mj-buton> was here; <img src="x.png"> too #}
{{ "<mj-txet>" if x else '<img src="y.png">' }}{% set tag = "<mj-colum>" %}
{% if "%}<mj-txet>" in name %}<mj-text>{{ "}}<mj-buton>" }}</mj-text>{% endif %}
<mj-{{ kind }}>dynamic</mj-{{ kind }}>
<!-- <mj-buton> in an HTML comment -->
<mj-image src="{{ p.image }}" alt="{{ p.name }}" />
<mj-image src="x.png" {% if p %}alt="{{ p.name }}"{% endif %} />""")
    assert check_mjml_source(source, "t.mjml") == []
    # the same tags outside Jinja are reported, so masking is what hides them
    assert len(check_mjml_source(source.replace("{#", "").replace("{{", ""), "t.mjml")) >= 3


def test_jinja_raw_block_content_is_template_text():
    source = "<mjml>\n{% raw %}{# <mj-buton> #}{% endraw %}\n</mjml>"
    assert check_mjml_source(source, "t.mjml") == [
        Problem("error", "unknown MJML element <mj-buton>", "t.mjml", 2,
                "did you mean <mj-button>?")]


def test_image_alt_in_source():
    source = mjml_document("""
<mj-image src="https://a.example/1.png" />
<mj-image src="https://a.example/2.png" alt="" />
<mj-image src="https://a.example/3.png" alt="Seeds" />
<mj-carousel><mj-carousel-image src="https://a.example/c.png" /></mj-carousel>
<mj-text><IMG SRC="https://a.example/4.png"><img alt='' src="https://a.example/5.png" />
<img alt="Logo" src="https://a.example/6.png"><!-- <img src="https://a.example/7.png"> -->
</mj-text>""")
    empty = 'fine for a decorative image; otherwise describe it in alt="..."'
    assert check_mjml_source(source, "t.mjml") == [
        Problem("error", "image without alt text (<mj-image>)", "t.mjml", 5, ALT_HINT),
        Problem("warning", "image with empty alt text (<mj-image>)", "t.mjml", 6, empty),
        Problem("error", "image without alt text (<mj-carousel-image>)", "t.mjml", 8, ALT_HINT),
        Problem("error", "image without alt text (<img>)", "t.mjml", 9, ALT_HINT),
        Problem("warning", "image with empty alt text (<img>)", "t.mjml", 9, empty),
    ]


def test_mj_attributes_defaults_are_not_images():
    source = mjml_document("").replace(
        "<mj-attributes>", '<mj-attributes><mj-image padding="0" />')
    assert "<mj-image padding" in source
    assert check_mjml_source(source, "t.mjml") == []


# check_html


def test_good_email_has_no_problems(good_email):
    assert problems_of(good_email) == []


def test_mrml_renders_social_icons_without_alt(good_email):
    """The exemption for icons beside a text link is what keeps the good email clean."""
    assert f'<img src="{FACEBOOK_ICON}"' in good_email


def test_icon_only_social_element_needs_alt():
    html = render('<mj-social><mj-social-element name="facebook" href="https://shop.example/fb" />'
                  f"</mj-social>{FOOTER}")
    assert check_html(html, unsubscribe_url=UNSUBSCRIBE, postal_address=ADDRESS) == [
        Problem("error", f"image '{FACEBOOK_ICON}' has no alt text", hint=HTML_ALT_HINT)]
    labelled = html.replace("<img ", '<img alt="Facebook" ')
    assert problems_of(labelled) == []


def test_gmail_clip():
    body = "".join(f"<mj-text>Paragraph {n}: {'Seeds, soil and sun. ' * 40}</mj-text>"
                   for n in range(100)) + FOOTER
    html = render(body)
    size = len(html.encode("utf-8"))
    assert size >= 110 * 1024
    assert check_html(html, unsubscribe_url=UNSUBSCRIBE, postal_address=ADDRESS,
                      path="spring.mjml") == [
        Problem("error", f"Gmail clips messages over 102 KB; this one is {size / 1024:.1f} KB",
                "spring.mjml", hint="shorten it or move content to the web version")]


def test_gmail_clip_boundary_in_bytes_not_characters():
    head = "<html><body>"
    fits = head + "x" * (GMAIL_CLIP_BYTES - len(head))
    assert check_html(fits, unsubscribe_url=None, postal_address=None) == []
    over = head + "é" * ((GMAIL_CLIP_BYTES - len(head)) // 2 + 1)  # two bytes each
    assert [p.message for p in check_html(over, unsubscribe_url=None, postal_address=None)] == [
        "Gmail clips messages over 102 KB; this one is 102.0 KB"]


def test_missing_unsubscribe_link():
    html = render(FOOTER.replace("c=42&amp;t=abc", "c=42")
                  + '<mj-raw><!--[if mso]><a href="https://shop.example/unsubscribe?c=42&amp;t=abc">'
                  "Unsubscribe</a><![endif]--></mj-raw>")
    assert check_html(html, unsubscribe_url=UNSUBSCRIBE, postal_address=ADDRESS) == [
        Problem("error", "no link to the recipient's unsubscribe address",
                hint='add <a href="{{ links.unsubscribe }}">Unsubscribe</a>')]
    assert check_html(html, unsubscribe_url=None, postal_address=ADDRESS) == []


def test_missing_postal_address():
    html = render(FOOTER.replace("10115&nbsp;Berlin", "10117 Berlin")
                  + f"<mj-raw><!--[if mso]><p>{ADDRESS}</p><![endif]--></mj-raw>"
                  + f"<mj-text><style>.a::after {{ content: '{ADDRESS}' }}</style></mj-text>")
    assert check_html(html, unsubscribe_url=UNSUBSCRIBE, postal_address=ADDRESS) == [
        Problem("error", f"postal address '{ADDRESS}' is missing",
                hint="add {{ shop.postal_address }} to the footer")]
    assert check_html(html, unsubscribe_url=UNSUBSCRIBE, postal_address=None) == []


def test_postal_address_matches_across_lines_entities_and_case(good_email):
    address = "green shop,   Example Street 1,\n10115 BERLIN, Germany"
    assert check_html(good_email, unsubscribe_url=None, postal_address=address) == []


def test_links_must_be_web_addresses():
    html = render("""<mj-button href="/cart">Cart</mj-button>
<mj-navbar><mj-navbar-link href="news.html">News</mj-navbar-link></mj-navbar>
<mj-text><a href="#">top</a> <a href="#">again</a> <a href="javascript:alert(1)">js</a>
<a href="">empty</a> <a href="ftp://files.example/a">ftp</a> <a href="http://[oops/">v6</a>
<a href="https://">no host</a> <a href="{{ links.shop }}">unrendered</a>
<a name="anchor">named anchor</a> <a href="#offers">in-page</a>
<img src="https://shop.example/map.png" alt="map" usemap="#m" />
<map name="m"><area shape="rect" coords="0,0,9,9" href="file:///etc/passwd" alt="f" /></map>
<!--[if mso]><a href="javascript:outlook()">mso</a><![endif]--></mj-text>""" + FOOTER)
    # the serializer of premailer (lxml) escapes the spaces of a Jinja tag left in an href
    bad = ["/cart", "news.html", "#", "javascript:alert(1)", "", "ftp://files.example/a",
           "http://[oops/", "https://", "{{%20links.shop%20}}", "file:///etc/passwd"]
    assert check_html(html, unsubscribe_url=UNSUBSCRIBE, postal_address=ADDRESS) == [
        Problem("error", f"link '{href}' is not an http(s) address", hint=LINK_HINT)
        for href in bad]


def test_images_need_alt_and_web_sources():
    big = "data:image/png;base64," + "A" * 2000
    html = render(f"""<mj-image src="https://shop.example/a.png" />
<mj-image src="img/b.png" alt="B" />
<mj-text><img src="file:///home/me/c.png" alt="C"><img src="{big}" alt="">
<img alt="D"><!--[if mso]><img src="e.png"><![endif]--></mj-text>""" + FOOTER)
    assert check_html(html, unsubscribe_url=UNSUBSCRIBE, postal_address=ADDRESS) == [
        Problem("error", "image 'https://shop.example/a.png' has no alt text", hint=HTML_ALT_HINT),
        Problem("error", "image 'img/b.png' is not an http(s) address", hint=SRC_HINT),
        Problem("error", "image 'file:///home/me/c.png' is not an http(s) address", hint=SRC_HINT),
        Problem("error", f"image '{big[:77]}...' is a data: URI of 2.0 KB",
                hint="host the image and use its https:// URL; mail clients block large data: "
                     "images"),
        Problem("error", "image '' is not an http(s) address", hint=SRC_HINT),
    ]


def test_empty_html_lacks_link_and_address():
    assert problems_of("  ") == [
        ("error", "no link to the recipient's unsubscribe address"),
        ("error", f"postal address '{ADDRESS}' is missing"),
    ]
