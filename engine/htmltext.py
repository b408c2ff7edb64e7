"""A readable plain-text version of an HTML email: blocks become lines, links keep their address.

The conversion never looks at what a text says, only at the markup around it and whether a
link holds any visible text at all (whitespace is settled by `tidy_text` afterwards). That
lets the renderer convert a compiled template once and fill in each recipient's values later
with the same result as converting their email (it never leaves a blank value to be filled).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser

_BLOCKS = {"p", "div", "table", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol",
           "blockquote", "section", "article", "header", "footer", "hr"}
_SKIPPED = {"head", "style", "script", "title"}
_VOID = {"br", "img", "hr", "meta", "link", "input", "area", "col", "wbr", "source"}
_HIDDEN = re.compile(r"display\s*:\s*none", re.IGNORECASE)
_HTML_SPACE = re.compile(r"[ \t\n\r\f]+")
_SPACES = re.compile(r" {2,}")
_BLANK_LINES = re.compile(r"\n{3,}")
_LINE_END = re.compile(r" ?\n ?")
_WHITESPACE_RUN = re.compile(r"[ \n]{2,}")


@dataclass
class _Link:
    """An open <a>: its address and whether it shows text or only an image."""

    href: str | None
    has_text: bool = False
    has_image: bool = False


class _TextWriter(HTMLParser):
    """Collects visible text; blocks and <br> start new lines, links end with '(address)'."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.open_tags: list[str] = []
        self.hidden_depth = 0
        self.links: list[_Link] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img" and self.links:
            self.links[-1].has_image = True
        if tag in _VOID:
            if tag == "br" and not self.hidden_depth:
                self.out.append("\n")
            elif tag == "hr" and not self.hidden_depth:
                self.out.append("\n\n")
            return
        self.open_tags.append(tag)
        values = dict(attrs)
        if self.hidden_depth or tag in _SKIPPED or _HIDDEN.search(values.get("style") or ""):
            self.hidden_depth += 1
            return
        if tag in _BLOCKS:
            self.out.append("\n\n")
        elif tag in ("td", "th", "li"):
            self.out.append("\n")
        elif tag == "a":
            self.links.append(_Link(values.get("href")))

    def handle_endtag(self, tag: str) -> None:
        if tag in _VOID or tag not in self.open_tags:
            return
        while self.open_tags:
            opened = self.open_tags.pop()
            self._close(opened)
            if opened == tag:
                break

    def _close(self, tag: str) -> None:
        if self.hidden_depth:
            self.hidden_depth -= 1
            return
        if tag in _BLOCKS:
            self.out.append("\n\n")
        elif tag == "a" and self.links:
            link = self.links.pop()
            if link.href and (link.has_text or not link.has_image):
                self.out.append(f" ({_HTML_SPACE.sub(' ', link.href)})")

    def handle_data(self, data: str) -> None:
        if not self.hidden_depth:
            text = _HTML_SPACE.sub(" ", data)
            if self.links and text.strip(" "):
                self.links[-1].has_text = True
            self.out.append(text)


def html_to_text(html: str) -> str:
    """The text of `html` before tidying: use `tidy_text` on the result (or on a filled copy)."""
    writer = _TextWriter()
    writer.feed(html)
    writer.close()
    return "".join(writer.out)


def tidy_text(text: str) -> str:
    """Single spaces, no spaces at line ends, at most one blank line in a row."""
    text = _LINE_END.sub("\n", _SPACES.sub(" ", text))
    return _BLANK_LINES.sub("\n\n", text).strip() + "\n"


def shorten_whitespace(text: str) -> str:
    """`text` with each whitespace run cut to what `tidy_text` makes of it in any surroundings.

    `tidy_text` turns a run of spaces and line breaks into a space, a line break or a blank
    line, by its number of line breaks alone, so shortening runs in fixed text first (values
    bring no line breaks) changes nothing but the time tidying takes.
    """
    return _WHITESPACE_RUN.sub(_shortest_run, text)


def _shortest_run(run: re.Match) -> str:
    breaks = run[0].count("\n")
    return " " if breaks == 0 else "\n" if breaks == 1 else "\n\n"


def as_plain_value(value: str) -> str:
    """How a value written into HTML text reads in the text version (whitespace collapsed)."""
    if "  " in value or "\n" in value or "\t" in value or "\r" in value or "\f" in value:
        return _HTML_SPACE.sub(" ", value)
    return value
