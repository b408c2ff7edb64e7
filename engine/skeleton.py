"""Compile each distinct email structure once; fill in every recipient's values afterwards.

Rendering the Jinja template with `collecting_slots()` active turns each printed value into a
marker (the value goes into a slot list), so recipients whose emails differ only in their
values share one rendered MJML text, the *skeleton*. A skeleton is compiled (MJML, then CSS
inlining) once, and a recipient's HTML is the compiled skeleton with the values put back.

That is only valid where MJML and premailer copy a value through unchanged apart from HTML
escaping. So a skeleton's markers are checked before they are trusted:
- markers in attributes other than href/src/alt/title/lang, in style sheets, in `<mj-head>`
  (except title and preview) are *pinned*: their values are written into the MJML and take
  part in the cache key, since MJML or the CSS inliner may read them;
- the remaining ones are compiled a second time as a probe text holding every character
  HTML escaping touches; how the probe comes out says how each value is escaped there
  (text, attribute or untouched), and any other change pins the marker as well.
Values that are not plain escaped text (markup from `|safe`, control characters, characters
MJML writes as escapes such as unassigned code points), that are blank, or that hold a
double quote (the HTML serializer then quotes a whole attribute with
single quotes) never become slots: `slot_value` leaves them in the skeleton.
"""

from __future__ import annotations

import logging
import re
import secrets
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import lru_cache
from html import unescape
from operator import itemgetter
from urllib.parse import quote

import mjml
from jinja2 import nodes, pass_eval_context
from jinja2.compiler import CodeGenerator, Frame
from jinja2.nodes import EvalContext
from markupsafe import Markup, escape
from premailer import Premailer

from engine.htmltext import as_plain_value, html_to_text, shorten_whitespace, tidy_text

# Markers carry a random part drawn per process, so no text can imitate one.
_NONCE = secrets.token_hex(4)
MARKER = "zqj{}x" + _NONCE + "jqz"
_MARKER_RE = re.compile(rf"zqj(\d+)x{_NONCE}jqz")
_TAGGED_RE = re.compile(rf"zqj(\d+)k(\w+?)x{_NONCE}jqz")
_URL_ENCODED = re.compile(r"[\t\n \x80-\U0010ffff]+")
_ANY_CASE_MARKER = re.compile(rf"zqj\d+x{_NONCE}jqz", re.IGNORECASE)
# Every character that HTML escaping, URL escaping or MJML's own escaping treats specially.
_PROBE = " &amp;&lt;&gt;&#34;&#39;\u00e9\u00a0\\\t\n "
_PROBED = re.compile(rf"zqj(\d+)x{_NONCE}jqz(.*?)zqe\1x{_NONCE}eqz", re.DOTALL)
# Escaped text only: no markup, no control characters, only the entities Jinja writes.
_PLAIN = re.compile(r"(?:[^&<\x00-\x08\x0b-\x1f\x7f]|&(?:amp|lt|gt|#34|#39);)*")
# Text that HTML escaping leaves as it is.
_RUST_ESCAPED = re.compile("[\\\\\t\n\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]")
_SPACE_AT_EDGE = re.compile(r"\s\x00|\x00\s")
_CLEAN = re.compile(r"[^&<>\"'\x00-\x08\x0b-\x1f\x7f]*")
_MARKER_COUNT = 1024
_MARKERS = tuple(Markup(MARKER.format(index)) for index in range(_MARKER_COUNT))
_PASSED_ATTRIBUTES = {"href", "src", "alt", "title", "lang"}
_TAG = re.compile(r"<[a-zA-Z][^<>]*>")
_ATTRIBUTE = re.compile(r"""([^\s"'=<>/]+)\s*=\s*("[^"]*"|'[^']*')""")
_STYLE_BLOCK = re.compile(r"<(mj-style|style|mj-attributes|script)\b.*?</\1\s*>",
                          re.DOTALL | re.IGNORECASE)
_HEAD = re.compile(r"<mj-head\b.*?</mj-head\s*>", re.DOTALL)
_HEAD_TEXT = re.compile(r"<(mj-title|mj-preview)\b[^>]*>.*?</\1\s*>", re.DOTALL)
MAX_CACHED = 256

_slots: ContextVar[list[str] | None] = ContextVar("slots", default=None)
logging.getLogger("CSSUTILS").setLevel(logging.CRITICAL)


@contextmanager
def collecting_slots() -> Iterator[list[str]]:
    """While active, `slot_value` turns printed values into markers collected in this list."""
    slots: list[str] = []
    token = _slots.set(slots)
    try:
        yield slots
    finally:
        _slots.reset(token)


@pass_eval_context
def slot_value(eval_context: EvalContext, value: object) -> object:
    """Jinja's finalize, which also escapes (see `SlotCodeGenerator`).

    While collecting, a plain value becomes a marker and goes into the slot list; anything
    else (and everything when not collecting) is written escaped as usual.
    """
    if not eval_context.autoescape:
        return value
    slots = _slots.get()
    if slots is None:
        return escape(value)
    if not hasattr(value, "__html__"):
        text = value if type(value) is str else str(value)
        if _CLEAN.fullmatch(text) and text and not text.isspace() \
                and _NONCE not in text and (text.isascii() or _printable(text)):
            slots.append(text)
            return _marker(len(slots) - 1)
    escaped = escape(value)
    if not escaped.strip() or not _PLAIN.fullmatch(escaped) or "&#34;" in escaped \
            or _NONCE in escaped or not (escaped.isascii() or _printable(escaped)):
        return escaped
    slots.append(str(escaped))
    return _marker(len(slots) - 1)


class SlotCodeGenerator(CodeGenerator):
    """Compiles `{{ value }}` to `finalize(value)` instead of `escape(finalize(value))` where
    autoescaping is on, since `slot_value` escapes itself (a marker needs no escaping)."""

    @staticmethod
    def _finalize_escapes(frame: Frame, finalize) -> bool:
        return finalize.src is not None and frame.eval_ctx.autoescape \
            and not frame.eval_ctx.volatile

    def _output_child_pre(self, node: nodes.Expr, frame: Frame, finalize) -> None:
        if self._finalize_escapes(frame, finalize):
            self.write(finalize.src)
        else:
            super()._output_child_pre(node, frame, finalize)

    def _output_child_post(self, node: nodes.Expr, frame: Frame, finalize) -> None:
        if self._finalize_escapes(frame, finalize):
            self.write(")")
        else:
            super()._output_child_post(node, frame, finalize)


@lru_cache(maxsize=4096)
def _printable(text: str) -> bool:
    """No characters MJML escapes in ways not followed here (unassigned, format, combining)."""
    return all(char.isascii() or unicodedata.category(char)[0] in "LNPS"
               or unicodedata.category(char) == "Zs" for char in text)


def _marker(index: int) -> Markup:
    return _MARKERS[index] if index < _MARKER_COUNT else Markup(MARKER.format(index))


def compile_mjml(source: str) -> str:
    """The straightforward compile: MJML to HTML, then CSS inlined into style attributes.

    `!important` stays in the style sheet: MJML's responsive rules need it to win over the
    inlined widths on small screens.
    """
    html = mjml.mjml2html(source)
    return Premailer(html, allow_network=False, disable_validation=True, strip_important=False,
                     cssutils_logging_level=logging.CRITICAL).transform()



def _picker(indices: list[int]) -> Callable[[list[str]], tuple[str, ...]]:
    """A function that picks these positions of the slot list, in this order."""
    if len(indices) > 1:
        return itemgetter(*indices)
    return (lambda values: (values[indices[0]],)) if indices else (lambda values: ())


def _interleave(fixed: tuple[str, ...], values: Sequence[str]) -> str:
    parts = [""] * (2 * len(fixed) - 1)
    parts[0::2] = fixed
    parts[1::2] = values
    return "".join(parts)


@dataclass(frozen=True)
class Filled:
    """A compiled skeleton split at its markers: fixed text, and how to write each value.

    Most values need no conversion at all (no entity, no backslash or line break, and in
    URLs or MJML-escaped places nothing but ASCII without spaces); an email whose values are
    all like that is joined without converting them one by one.
    """

    fixed: tuple[str, ...]
    converts: tuple[Callable[[str], str], ...]
    pick: Callable[[list[str]], tuple[str, ...]]
    pick_urls: Callable[[list[str]], tuple[str, ...]]
    pick_mjml: Callable[[list[str]], tuple[str, ...]]

    @classmethod
    def build(cls, fixed: list[str], slots: list[tuple[int, str]],
              convert: dict[str, Callable[[str], str]]) -> Filled:
        return cls(tuple(fixed), tuple(convert[kind] for _, kind in slots),
                   _picker([index for index, _ in slots]),
                   _picker([index for index, kind in slots if "url" in kind]),
                   _picker([index for index, kind in slots if kind.startswith("mjml")]))

    def picked(self, values: list[str], entity: str) -> tuple[Sequence[str], bool]:
        """The values in slot order, converted; and whether none needed converting."""
        picked = self.pick(values)
        joined = "\x00".join(picked)
        urls = "\x00".join(self.pick_urls(values))
        if entity in joined or "\\" in joined or "\t" in joined or "\n" in joined \
                or " " in urls or not urls.isascii() \
                or _RUST_ESCAPED.search("\x00".join(self.pick_mjml(values))):
            return [convert(value) for convert, value in zip(self.converts, picked,
                                                             strict=True)], False
        return picked, True

    def fill(self, values: list[str]) -> str:
        return _interleave(self.fixed, self.picked(values, "&#")[0])


@dataclass(frozen=True)
class FilledText(Filled):
    """The text version: tidied after filling, or, when no value can change how whitespace is
    tidied, joined to fixed parts that were tidied beforehand."""

    tidied: tuple[str, ...] = ()

    @classmethod
    def build(cls, fixed: list[str], slots: list[tuple[int, str]],
              convert: dict[str, Callable[[str], str]]) -> FilledText:
        shortened = [shorten_whitespace(part) for part in fixed]
        plain = Filled.build(shortened, slots, convert)
        return cls(plain.fixed, plain.converts, plain.pick, plain.pick_urls, plain.pick_mjml,
                   _tidied(shortened))

    def fill(self, values: list[str]) -> str:
        picked, unchanged = self.picked(values, "&")
        joined = "\x00".join(picked)
        if unchanged and "  " not in joined and not _SPACE_AT_EDGE.search(f"\x00{joined}\x00"):
            return _interleave(self.tidied, picked)
        return tidy_text(_interleave(self.fixed, picked))


def _tidied(fixed: list[str]) -> tuple[str, ...]:
    """Fixed parts as `tidy_text` leaves them around values without whitespace at their ends."""
    if len(fixed) == 1:
        return (tidy_text(fixed[0]),)
    return (fixed[0].lstrip(), *fixed[1:-1], fixed[-1].rstrip() + "\n")


@dataclass(frozen=True)
class Compiled:
    """One structure of an email: its HTML and text version with the values left out."""

    html: Filled
    text: FilledText


@dataclass
class Shape:
    """What is known about one skeleton: which markers are pinned, and its compiled forms."""

    pinned: tuple[int, ...]
    compiled: dict[tuple[str, ...], Compiled] = field(default_factory=dict)


class SkeletonCache:
    """Compiled skeletons of one template, with counts of compiles for reports."""

    def __init__(self, compile_html: Callable[[str], str] = compile_mjml) -> None:
        self.compile_html = compile_html
        self.shapes: dict[str, Shape] = {}
        self.compiles = 0

    @property
    def structures(self) -> int:
        """How many distinct compiled structures are cached."""
        return sum(len(shape.compiled) for shape in self.shapes.values())

    def render(self, skeleton: str, values: list[str]) -> tuple[str, str]:
        """HTML and text version of the email whose skeleton and slot values are given."""
        shape = self.shapes.get(skeleton)
        if shape is None:
            if len(self.shapes) >= MAX_CACHED:
                self.shapes.clear()
            shape = self.shapes[skeleton] = Shape(_pinned_markers(skeleton, len(values)))
        key = tuple(values[index] for index in shape.pinned)
        compiled = shape.compiled.get(key)
        if compiled is None:
            if len(shape.compiled) >= MAX_CACHED:
                shape.compiled.clear()
            compiled = self._compile(skeleton, shape, values)
            shape.compiled[tuple(values[index] for index in shape.pinned)] = compiled
        return compiled.html.fill(values), compiled.text.fill(values)

    def _compile(self, skeleton: str, shape: Shape, values: list[str]) -> Compiled:
        """Compile with the shape's pinned values written in, pinning more where unsafe."""
        pinned = set(shape.pinned)
        while True:
            source = _write_values(skeleton, values, pinned)
            html = self.compile_html(source)
            self.compiles += 1
            escaping = self._probe(source, html)
            wrong = {index for index, kinds in escaping.items() if None in kinds}
            wrong |= {int(n) for n in _MARKER_RE.findall(html)} - set(escaping)
            if _ANY_CASE_MARKER.search(_MARKER_RE.sub("", html)):
                wrong |= set(range(len(values))) - pinned
            if not wrong:
                shape.pinned = tuple(sorted(pinned))
                return _split(html, escaping)
            pinned |= wrong

    def _probe(self, source: str, html: str) -> dict[int, list[str | None]]:
        """For each marker, how each of its places in the HTML escapes a value (None: not safe)."""
        probed = self.compile_html(_MARKER_RE.sub(
            lambda m: f"{m[0]}{_PROBE}zqe{m[1]}x{_NONCE}eqz", source))
        self.compiles += 1
        kinds: dict[int, list[str | None]] = {}
        if _PROBED.sub(lambda m: MARKER.format(m[1]), probed) != html:
            return {int(n): [None] for n in _MARKER_RE.findall(source)}
        for match in _PROBED.finditer(probed):
            kinds.setdefault(int(match[1]), []).append(_PROBE_KINDS.get(match[2]))
        return kinds


def _pinned_markers(skeleton: str, count: int) -> tuple[int, ...]:
    """Markers whose values MJML or the CSS inliner may read, so they cannot be filled later."""
    pinned: set[int] = set()
    for block in _STYLE_BLOCK.finditer(skeleton):
        pinned.update(int(n) for n in _MARKER_RE.findall(block[0]))
    for head in _HEAD.finditer(skeleton):
        pinned.update(int(n) for n in _MARKER_RE.findall(_HEAD_TEXT.sub("", head[0])))
    for tag in _TAG.finditer(skeleton):
        text = tag[0]
        if _NONCE not in text:
            continue
        passed = {int(n) for attribute in _ATTRIBUTE.finditer(text)
                  if attribute[1].lower() in _PASSED_ATTRIBUTES
                  for n in _MARKER_RE.findall(attribute[2])}
        pinned.update(int(n) for n in _MARKER_RE.findall(text) if int(n) not in passed)
    return tuple(sorted(index for index in pinned if index < count))


def _write_values(skeleton: str, values: list[str], pinned: set[int]) -> str:
    """The skeleton with the pinned markers replaced by their values."""
    if not pinned:
        return skeleton
    return _MARKER_RE.sub(lambda m: values[int(m[1])] if int(m[1]) in pinned else m[0],
                          skeleton)


def _split(html: str, escaping: dict[int, list[str | None]]) -> Compiled:
    """The compiled HTML and its text version, each split at the markers."""
    pieces = _MARKER_RE.split(html)
    seen: Counter[int] = Counter()
    kinds = []
    for number in pieces[1::2]:
        index = int(number)
        kinds.append((index, escaping[index][seen[index]]))
        seen[index] += 1
    tagged = iter(f"zqj{index}k{kind}x{_NONCE}jqz" for index, kind in kinds)
    text = _TAGGED_RE.split(html_to_text(_MARKER_RE.sub(lambda _m: next(tagged), html)))
    text_slots = [(int(index), kind) for index, kind in zip(text[1::3], text[2::3], strict=True)]
    return Compiled(Filled.build(pieces[0::2], kinds, _HTML),
                    FilledText.build(text[0::3], text_slots, _TEXT))


def _text(value: str) -> str:
    if "&#" not in value:
        return value
    return value.replace("&#34;", '"').replace("&#39;", "'")


def _attribute(value: str) -> str:
    if "&#" not in value:
        return value
    return value.replace("&#34;", "&quot;").replace("&#39;", "'")


def _percent(value: str) -> str:
    """What the HTML serializer does to URL attributes: whitespace and non-ASCII %-encoded."""
    if value.isascii() and " " not in value and "\t" not in value and "\n" not in value:
        return value
    return _URL_ENCODED.sub(lambda m: quote(m[0], safe=""), value)


def _url(value: str) -> str:
    return _percent(_attribute(value))


def _url_start(value: str) -> str:
    return _percent(_attribute(value).lstrip(" \t\n"))


def _verbatim(value: str) -> str:
    return value


def _mjml_escaped(convert: Callable[[str], str]) -> Callable[[str], str]:
    """MJML writes raw HTML attributes with Rust's debug escapes (backslash, tab, newline,
    and spaces other than the plain one as \\u{...})."""
    def escaped(value: str) -> str:
        if not value.isascii() or "\\" in value or "\t" in value or "\n" in value:
            value = _RUST_ESCAPED.sub(_rust_escape, value)
        return convert(value)
    return escaped


def _rust_escape(match: re.Match) -> str:
    char = match[0]
    return {"\\": "\\\\", "\t": "\\t", "\n": "\\n"}.get(char) or f"\\u{{{ord(char):x}}}"


_PLAIN_KINDS = {"text": _text, "attribute": _attribute, "url": _url, "url_start": _url_start,
                "verbatim": _verbatim}
_HTML = {**_PLAIN_KINDS,
         **{f"mjml_{kind}": _mjml_escaped(convert) for kind, convert in _PLAIN_KINDS.items()}}
# How the probe comes out tells the kind of place it was in.
_PROBE_KINDS = {convert(_PROBE): kind for kind, convert in _HTML.items()}
_TEXT = {kind: (lambda value, convert=convert: as_plain_value(unescape(convert(value))))
         for kind, convert in _HTML.items()}
_TEXT["text"] = lambda value: as_plain_value(unescape(value))
