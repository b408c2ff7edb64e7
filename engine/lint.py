"""Checks for newsletter templates and rendered emails, reported as `Problem`s.

`check_mjml_source` reads a Jinja2 + MJML template as written; `check_html` reads the final
HTML of one rendered email (after MJML compilation and CSS inlining).
"""

from __future__ import annotations

import difflib
import re
from collections import Counter
from dataclasses import dataclass
from urllib.parse import urlsplit

import lxml.html
from lxml import etree

GMAIL_CLIP_BYTES = 102 * 1024
DATA_URI_BYTES = 1024  # larger inline data: images are errors

# The MJML 4 elements MRML (mjml-python) compiles. MRML copies an unknown element inside
# mj-body, mj-section or mj-column into the email as it is, without any error.
MJML_ELEMENTS = frozenset({
    "mjml", "mj-head", "mj-body", "mj-include",
    "mj-attributes", "mj-all", "mj-class", "mj-breakpoint", "mj-font", "mj-preview",
    "mj-style", "mj-title",
    "mj-accordion", "mj-accordion-element", "mj-accordion-title", "mj-accordion-text",
    "mj-button", "mj-carousel", "mj-carousel-image", "mj-column", "mj-divider", "mj-group",
    "mj-hero", "mj-image", "mj-navbar", "mj-navbar-link", "mj-raw", "mj-section", "mj-social",
    "mj-social-element", "mj-spacer", "mj-table", "mj-text", "mj-wrapper",
})
# MJML 4 elements that MRML rejects ("unexpected element"): jdrouet/mrml issue #426.
MRML_UNSUPPORTED = frozenset({"mj-html-attributes", "mj-selector", "mj-html-attribute"})
IMAGE_ELEMENTS = ("mj-image", "mj-carousel-image")

_EXPR = "\0"  # stands in for the characters of a {{ expression }} in masked source
_JINJA_OPEN = re.compile(r"\{[{%#]")
_JINJA_CLOSE = {
    "{": re.compile(r"""'(?:\\.|[^'\\])*'|"(?:\\.|[^"\\])*"|\}\}"""),
    "%": re.compile(r"""'(?:\\.|[^'\\])*'|"(?:\\.|[^"\\])*"|%\}"""),
}
_RAW = re.compile(r"\{%-?\s*raw\s*-?%\}")
_ENDRAW = re.compile(r"\{%-?\s*endraw\s*-?%\}")
_HTML_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.DOTALL)
_TAG_REST = r"""(?P<attrs>(?:"[^"]*"|'[^']*'|[^'">])*)>"""
_MJ_TAG = re.compile(r"<(?P<close>/?)(?P<name>mj[^\s/>]*)" + _TAG_REST)
_IMG_TAG = re.compile(r"<img(?=[\s/>])" + _TAG_REST, re.IGNORECASE)
_ATTR = re.compile(r"""([^\s=/]+)(?:\s*=\s*("[^"]*"|'[^']*'|[^\s"'>]+))?""")

_HTML_PARSER = lxml.html.HTMLParser(encoding="utf-8")
_ALT_HINT = 'add alt="..." describing the image (alt="" marks a decorative one)'


@dataclass(frozen=True)
class Problem:
    """One finding of a check: errors must be fixed, warnings deserve a look."""

    severity: str  # "error" or "warning"
    message: str
    path: str | None = None
    line: int | None = None
    hint: str | None = None

    def __str__(self) -> str:
        where = ":".join(str(part) for part in (self.path, self.line) if part is not None)
        text = f"{self.severity}: {self.message}"
        if where:
            text = f"{where}: {text}"
        return f"{text}; {self.hint}" if self.hint else text


def check_mjml_source(source: str, path: str) -> list[Problem]:
    """Unknown MJML elements and images without alt text in a Jinja2 + MJML template."""
    text = _HTML_COMMENT.sub(lambda comment: _blank(comment.group()), _mask_jinja(source))
    problems: list[Problem] = []
    unclosed: Counter[str] = Counter()  # unknown elements opened, to skip their end tags
    in_attributes = False  # mj-attributes holds defaults, not images
    for tag in _MJ_TAG.finditer(text):
        name, attrs, closing = tag["name"], tag["attrs"], bool(tag["close"])
        opening = not closing and not attrs.rstrip().endswith("/")
        line = text.count("\n", 0, tag.start()) + 1
        if _EXPR in name:  # <mj-{{ kind }}>: decided when rendering
            continue
        if name == "mj-attributes":
            in_attributes = opening
        if closing and unclosed[name]:
            unclosed[name] -= 1
        elif name not in MJML_ELEMENTS:
            problems.append(_unknown_element(name, path, line))
            unclosed[name] += opening
        elif name in IMAGE_ELEMENTS and not closing and not in_attributes:
            problems.extend(_alt_problems(f"<{name}>", attrs, path, line))
    for tag in _IMG_TAG.finditer(text):
        line = text.count("\n", 0, tag.start()) + 1
        problems.extend(_alt_problems("<img>", tag["attrs"], path, line))
    return sorted(problems, key=lambda problem: problem.line or 0)


def check_html(
    html: str, *, unsubscribe_url: str | None, postal_address: str | None,
    path: str | None = None,
) -> list[Problem]:
    """Size, links, images, unsubscribe link and postal address of one rendered email.

    Markup inside HTML comments (Outlook's `<!--[if mso]>` blocks included) does not count.
    """
    data = html.encode("utf-8")
    problems: list[Problem] = []
    if len(data) > GMAIL_CLIP_BYTES:
        problems.append(Problem(
            "error", f"Gmail clips messages over 102 KB; this one is {len(data) / 1024:.1f} KB",
            path, hint="shorten it or move content to the web version"))
    try:
        root = lxml.html.document_fromstring(data, parser=_HTML_PARSER)
    except etree.ParserError:  # nothing but whitespace
        root = lxml.html.Element("html")
    links = [link for link in root.iter("a", "area") if link.get("href") is not None]
    hrefs = [link.get("href", "").strip() for link in links]
    for href in hrefs:
        if not _is_link_address(href):
            problems.append(Problem(
                "error", f"link '{_short(href)}' is not an http(s) address", path,
                hint="use an absolute https:// URL (mailto: and tel: are fine too)"))
    if unsubscribe_url is not None and unsubscribe_url.strip() not in (
            href for link, href in zip(links, hrefs, strict=True) if link.tag == "a"):
        problems.append(Problem(
            "error", "no link to the recipient's unsubscribe address", path,
            hint='add <a href="{{ links.unsubscribe }}">Unsubscribe</a>'))
    if postal_address is not None and _normal(postal_address) not in _normal(" ".join(
            root.xpath("//body//text()[not(ancestor::style) and not(ancestor::script)]"))):
        problems.append(Problem(
            "error", f"postal address '{postal_address}' is missing", path,
            hint="add {{ shop.postal_address }} to the footer"))
    labelled = {href for link, href in zip(links, hrefs, strict=True)
                if href and link.text_content().strip()}
    for image in root.iter("img"):
        problems.extend(_image_problems(image, labelled, path))
    return list(dict.fromkeys(problems))


def _mask_jinja(source: str) -> str:
    """`source` with Jinja tags and comments blanked, offsets and line breaks kept.

    Comments and statements become spaces; `{{ expressions }}` become `_EXPR` characters, so
    that `alt="{{ name }}"` still has a value. `{% raw %}` content stays as written.
    """
    parts: list[str] = []
    position = 0
    while opening := _JINJA_OPEN.search(source, position):
        parts.append(source[position:opening.start()])
        end = _jinja_end(source, opening.start())
        tag = source[opening.start():end]
        parts.append(_blank(tag, _EXPR if tag.startswith("{{") else " "))
        position = end
        if _RAW.fullmatch(tag) and (endraw := _ENDRAW.search(source, end)):
            parts.append(source[end:endraw.start()] + _blank(endraw.group()))
            position = endraw.end()
    parts.append(source[position:])
    return "".join(parts)


def _jinja_end(source: str, start: int) -> int:
    """The offset just past the Jinja tag or comment that opens at `start`."""
    kind = source[start + 1]
    if kind == "#":
        end = source.find("#}", start + 2)
        return len(source) if end < 0 else end + 2
    for token in _JINJA_CLOSE[kind].finditer(source, start + 2):
        if token.group() in ("}}", "%}"):
            return token.end()
    return len(source)


def _blank(text: str, fill: str = " ") -> str:
    """`text` with every character but line breaks replaced by `fill`."""
    return re.sub(r"[^\n]", fill, text)


def _unknown_element(name: str, path: str, line: int) -> Problem:
    if name in MRML_UNSUPPORTED:
        return Problem("error", f"<{name}> is not supported by MRML (mjml-python)", path, line,
                       "MRML rejects it; see https://github.com/jdrouet/mrml/issues/426")
    guess = difflib.get_close_matches(name, sorted(MJML_ELEMENTS), n=1, cutoff=0.75)
    hint = f"did you mean <{guess[0]}>?" if guess else (
        "the MJML 4 elements are listed at https://documentation.mjml.io")
    return Problem("error", f"unknown MJML element <{name}>", path, line, hint)


def _alt_problems(what: str, attrs: str, path: str, line: int) -> list[Problem]:
    values = {key.lower(): value for key, value in _ATTR.findall(attrs)}
    if "alt" not in values:
        return [Problem("error", f"image without alt text ({what})", path, line, _ALT_HINT)]
    if not values["alt"].strip("'\"").strip():
        return [Problem("warning", f"image with empty alt text ({what})", path, line,
                        'fine for a decorative image; otherwise describe it in alt="..."')]
    return []


def _image_problems(image: lxml.html.HtmlElement, labelled: set[str],
                    path: str | None) -> list[Problem]:
    """Missing alt text and unusable src of one <img>.

    An image without alt inside a link whose address also has a text link is left alone:
    MRML renders the icons of <mj-social-element>s without alt, next to their text link.
    """
    src = (image.get("src") or "").strip()
    problems = []
    link = next(image.iterancestors("a"), None)
    if image.get("alt") is None and (link is None or link.get("href", "").strip() not in labelled):
        problems.append(Problem(
            "error", f"image '{_short(src)}' has no alt text", path,
            hint='add alt="..." to its <mj-image>, <mj-carousel-image> or <mj-social-element> '
                 '(alt="" marks a decorative image)'))
    if src[:5].lower() == "data:":
        if (size := len(src.encode("utf-8"))) > DATA_URI_BYTES:
            problems.append(Problem(
                "error", f"image '{_short(src)}' is a data: URI of {size / 1024:.1f} KB", path,
                hint="host the image and use its https:// URL; mail clients block large data: "
                     "images"))
    elif not _is_web_address(src):
        problems.append(Problem(
            "error", f"image '{_short(src)}' is not an http(s) address", path,
            hint="use an absolute https:// URL; mail clients cannot load relative or file: "
                 "paths"))
    return problems


def _is_web_address(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:  # such as a broken [IPv6] host
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)


def _is_link_address(href: str) -> bool:
    """http(s) with a host, mailto:, tel: or an in-page #anchor (MJML carousels use those)."""
    if href.startswith("#"):
        return len(href) > 1
    return _is_web_address(href) or href[:7].lower() == "mailto:" or href[:4].lower() == "tel:"


def _normal(text: str) -> str:
    return " ".join(text.split()).casefold()


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."
