"""Complete email messages as bytes for SMTP DATA, built fast enough to run once per recipient.

The message is `multipart/alternative` (text/plain, then text/html, both UTF-8) with CRLF line
ends. It is written with string joins and the C encoders of `binascii` instead of
`email.message.EmailMessage`, which costs milliseconds per message.

- Bodies are `7bit` when pure ASCII, free of NUL and bare CR, with lines of at most 998 bytes,
  no line starting with "From " and no copy of the boundary; otherwise the HTML part is
  base64 (several times faster to write than quoted-printable for tens of kilobytes) and the
  text part `quoted-printable` (`binascii.b2a_qp`) with lines of at most 76 characters,
  "From " at the start of a line
  written "=46rom " and a bare CR "=0D". LF and CRLF in the input both become CRLF. A "." at the
  start of a line is left to SMTP dot-stuffing, which every SMTP client does when it sends DATA
  (`smtplib` included): the bytes returned are the message before dot-stuffing.
- The boundary, "=_" and 24 hex digits of the SHA-256 of the Message-ID, cannot occur in
  quoted-printable text ("=" is always followed by hex digits or a line break there) nor in
  base64 ("_" is not in its alphabet).
- Header values from customer data cannot add headers: control characters (CR and LF included)
  become spaces. In a display name whitespace runs then become one space and the ends are
  trimmed, which is how RFC 5322 (and Python's parser) read a phrase anyway.
- Plain printable ASCII is written raw: Subject and extra header values folded at spaces,
  display names as atoms or as a quoted-string with \\ and " escaped. Other text becomes RFC 2047
  "B" encoded words of at most 75 characters, split between characters, so header lines stay
  within 78 characters (longer only for an address, which cannot be folded, or a word of an extra
  header value too long for any line). Subject and extra header values are unstructured text,
  where whitespace between encoded words is ignored, so long values read back exactly. In a
  display name only the words that need it are encoded: Python 3.11's parser wrongly reads a
  space between adjacent encoded words there (CPython gh-128110), which now happens only for a
  run of more than 45 UTF-8 bytes of words needing encoding.
- Addresses are written as given; a non-ASCII address is raw UTF-8 and needs SMTPUTF8.
"""

from __future__ import annotations

import re
from binascii import b2a_base64, b2a_qp
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import format_datetime
from functools import lru_cache
from hashlib import sha256
from itertools import groupby, islice

from engine.errors import EngineError

LINE = 78                  # the longest header line written, where folding makes it possible
HARD_LINE = 998            # the longest line allowed at all
BASE64_LINE = 76
_BASE64_LINES: list[slice] = []  # slice(0, 76), slice(76, 152)... as long as needed
WORD = 75                  # the longest encoded word (RFC 2047)
MAX_NAME = 50              # the longest extra header name, so its first encoded word fits
GENERATED = frozenset({"from", "to", "subject", "date", "message-id", "mime-version",
                       "content-type", "content-transfer-encoding"})

_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_ATOMS = re.compile(r"[\w!#$%&'*+/=?^`{|}~-]+(?: [\w!#$%&'*+/=?^`{|}~-]+)*", re.ASCII)
_QUOTED_SPECIALS = re.compile(r'[\\"]')
_WORDS = re.compile(r" *[^ ]+")
_ADDRESS_CHAR = r'[^\s<>,;:()\[\]\\"@\x00-\x1f\x7f-\x9f]'
_ADDRESS = re.compile(f"{_ADDRESS_CHAR}+@{_ADDRESS_CHAR}+")
_MESSAGE_ID = re.compile(r"<[!-;=?A-~]+@[!-;=?A-~]+>")
_FIELD_NAME = re.compile(r"[!-9;-~]+")
_CAMPAIGN_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")

_TEXT_PART = b'Content-Type: text/plain; charset="utf-8"\r\nContent-Transfer-Encoding: '
_HTML_PART = b'Content-Type: text/html; charset="utf-8"\r\nContent-Transfer-Encoding: '


class HeaderError(EngineError):
    """A value that cannot be written into a message header."""


@dataclass(frozen=True)
class Envelope:
    """The headers of one message; names, subject and extra header values may be customer data."""

    from_name: str
    from_address: str
    to_name: str
    to_address: str
    subject: str
    message_id: str
    date: datetime
    extra_headers: tuple[tuple[str, str], ...] = ()


def build_message(envelope: Envelope, text: str, html: str) -> bytes:
    """The complete message, ready for SMTP DATA (before dot-stuffing)."""
    message_id = envelope.message_id
    if not _MESSAGE_ID.fullmatch(message_id):
        raise HeaderError(f"message_id {message_id!r} is not a Message-ID",
                          hint="use the form <unique-part@domain>, as message_id() returns")
    boundary = "=_" + sha256(message_id.encode()).hexdigest()[:24]
    head = [
        _from_header(envelope.from_name, envelope.from_address),
        _mailbox("To", "to_address", envelope.to_name, envelope.to_address),
        _unstructured("Subject", envelope.subject, LINE),
        f"Date: {_date(envelope.date, envelope.date.utcoffset())}\r\n"
        f"Message-ID: {message_id}\r\nMIME-Version: 1.0\r\n",
    ]
    for name, value in envelope.extra_headers:
        head.append(_unstructured(_extra_name(name), value, HARD_LINE))
    head.append(f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n\r\n')
    delimiter = f"--{boundary}\r\n".encode()
    text_encoding, text_body = _body(text, boundary)
    html_encoding, html_body = _body(html, boundary, large=True)
    return b"".join((
        "".join(head).encode(), delimiter,
        _TEXT_PART, text_encoding, b"\r\n\r\n", text_body, b"\r\n", delimiter,
        _HTML_PART, html_encoding, b"\r\n\r\n", html_body, b"\r\n", delimiter[:-2], b"--\r\n",
    ))


def message_id(campaign: str, customer_id: int, domain: str, salt: str = "") -> str:
    """A deterministic Message-ID: `<campaign.customer_id.hash@domain>`."""
    digest = sha256(f"{salt}|{campaign}|{customer_id}".encode()).hexdigest()[:8]
    return f"<{_CAMPAIGN_UNSAFE.sub('-', campaign)}.{customer_id}.{digest}@{domain}>"


def needs_smtputf8(envelope: Envelope) -> bool:
    """True when an address (not a display name) has non-ASCII characters."""
    return not (envelope.from_address.isascii() and envelope.to_address.isascii())


@lru_cache(maxsize=64)
def _from_header(name: str, address: str) -> str:
    """The From header line; the same for every recipient of a campaign."""
    return _mailbox("From", "from_address", name, address)


@lru_cache(maxsize=64)
def _date(date: datetime, offset: timedelta | None) -> str:
    """The Date header value; the offset is part of the key because aware datetimes compare
    equal across time zones."""
    if offset is None:
        raise HeaderError("date has no time zone", hint="pass an aware datetime")
    return format_datetime(date)


@lru_cache(maxsize=64)
def _extra_name(name: str) -> str:
    """`name`, checked to be a field name this module does not write itself."""
    if (not _FIELD_NAME.fullmatch(name) or len(name) > MAX_NAME
            or name.lower() in GENERATED):
        raise HeaderError(f"extra header name {name!r} cannot be used",
                          hint=f"use up to {MAX_NAME} printable ASCII characters without ':' "
                               "or spaces, and not a header the message builder writes itself")
    return name


def _mailbox(header: str, field: str, name: str, address: str) -> str:
    """An address header line: `header: name <address>`, or the bare address without a name."""
    size = len(address.encode())
    if size > 254 or not _ADDRESS.fullmatch(address):
        raise HeaderError(f"{field} {address!r} is not a usable email address",
                          hint="give a single address like name@example.com: one '@', at most "
                               "254 bytes, no spaces or control characters and none of "
                               "<>,;:()[]\\\"")
    name = " ".join(_clean(name).split())
    if not name:
        return f"{header}: {address}\r\n"
    used = len(header) + 2
    tokens = None
    if name.isascii() and "=?" not in name:
        quoted = name
        if not _ATOMS.fullmatch(name):
            quoted = '"' + _QUOTED_SPECIALS.sub(r"\\\g<0>", name) + '"'
        if used + len(quoted) + size + 3 <= LINE:
            return f"{header}: {quoted} <{address}>\r\n"
        tokens = _WORDS.findall(quoted)
        if not _fits(tokens, used, LINE):
            tokens = None
    if tokens is None:
        tokens = _phrase_tokens(name, used)
    tokens.append(f" <{address}>")
    return f"{header}: {_fold(tokens, used)}\r\n"


def _phrase_tokens(name: str, used: int) -> list[str]:
    """A display name as one encoded word or, when longer, as encoded words with its plain
    ASCII words left raw between them: fewer adjacent encoded words mean fewer places where
    RFC 2047 readers (no space) and Python 3.11 (a space, gh-128110) disagree."""
    words = _encoded_words(name, LINE - used)
    if len(words) == 1:
        return words
    tokens: list[str] = []
    for plain, run in groupby(name.split(" "), key=lambda word: _is_plain_word(word, LINE - used)):
        if plain:
            tokens += run
        else:
            tokens += _encoded_words(" ".join(run), WORD if tokens else LINE - used)
    return [tokens[0], *(" " + token for token in tokens[1:])]


def _is_plain_word(word: str, longest: int) -> bool:
    """Whether `word` can stand raw in a display name and fit a line."""
    return len(word) <= longest and "=?" not in word and _ATOMS.fullmatch(word) is not None


def _unstructured(header: str, value: str, limit: int) -> str:
    """A header line of free text: raw and folded at spaces when it is plain printable ASCII
    whose lines fit `limit`, otherwise encoded words."""
    value = _clean(value)
    used = len(header) + 2
    if value.isascii() and "=?" not in value and value.strip(" ") == value:
        if used + len(value) <= LINE:
            return f"{header}: {value}\r\n"
        tokens = _WORDS.findall(value)
        if _fits(tokens, used, limit):
            return f"{header}: {_fold(tokens, used)}\r\n"
    return f"{header}: " + "\r\n ".join(_encoded_words(value, LINE - used)) + "\r\n"


def _clean(value: str) -> str:
    """`value` with every control character (CR and LF included) replaced by a space."""
    return value if value.isprintable() else _CONTROLS.sub(" ", value)


def _fits(tokens: list[str], used: int, limit: int) -> bool:
    """Whether `_fold(tokens, used)` keeps every line within `limit` characters."""
    return used + len(tokens[0]) <= limit and max(map(len, tokens)) <= limit


def _fold(tokens: list[str], used: int) -> str:
    """`tokens` (each after the first starting with a space) joined, with a line break before a
    token that would take its line past LINE bytes."""
    parts: list[str] = []
    width = used
    for token in tokens:
        size = len(token) if token.isascii() else len(token.encode())   # a UTF-8 address
        if parts and width + size > LINE:
            parts.append("\r\n")
            width = 0
        parts.append(token)
        width += size
    return "".join(parts)


def _encoded_words(value: str, room: int) -> list[str]:
    """`value` as B encoded words split between characters: the first at most `room` (up to
    WORD) characters long, the others WORD, for continuation lines."""
    data = value.encode()
    words = []
    start = 0
    while start < len(data):
        end = start + 3 * ((room - 12) // 4)   # payload bytes: "=?utf-8?b?" + base64 + "?="
        if end < len(data):
            while data[end] & 0xC0 == 0x80:   # never inside a UTF-8 sequence
                end -= 1
        words.append(f"=?utf-8?b?{b2a_base64(data[start:end], newline=False).decode()}?=")
        start = end
        room = WORD
    return words


def _body(text: str, boundary: str, large: bool = False) -> tuple[bytes, bytes]:
    """The Content-Transfer-Encoding and the encoded body, with CRLF line ends.

    7bit when the text allows it; otherwise quoted-printable, which stays readable, or for
    a `large` part (the HTML) base64, which the C encoder writes several times faster.
    """
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    if (text.isascii() and "\r" not in text and "\x00" not in text
            and not _has_long_line(text) and boundary not in text
            and not (text.startswith("From ") or "\nFrom " in text)):
        return b"7bit", text.encode().replace(b"\n", b"\r\n")
    if large:
        return b"base64", _base64(text)
    return b"quoted-printable", _quoted_printable(text, "From " in text)


def _base64(text: str) -> bytes:
    """`text` (LF line ends) as UTF-8 with CRLF line ends, base64 in lines of 76."""
    encoded = b2a_base64(text.encode().replace(b"\n", b"\r\n"), newline=False)
    lines = -(-len(encoded) // BASE64_LINE)
    if lines > len(_BASE64_LINES):
        _BASE64_LINES.extend(slice(start, start + BASE64_LINE) for start in
                             range(len(_BASE64_LINES) * BASE64_LINE, lines * BASE64_LINE,
                                   BASE64_LINE))
    return b"\r\n".join(map(encoded.__getitem__, islice(_BASE64_LINES, lines)))


def _quoted_printable(text: str, has_from: bool) -> bytes:
    """`text` (LF line ends, CR only bare) as quoted-printable with CRLF line ends.

    b2a_qp leaves a bare CR raw, leaves "From " at a line start (which mbox files quote), and
    encodes a space or tab ending a line only after it counted the line's length, making the line
    77 or 78 long. Bytes that UTF-8 never uses stand in for those: b2a_qp writes each as three
    characters, which become the right escape afterwards, so line lengths stay right.
    """
    data = text.encode()
    fixes: list[tuple[bytes, bytes]] = []
    if b"\r" in data:
        data = data.replace(b"\r", b"\xff")
        fixes.append((b"=FF", b"=0D"))
    data = b"\r\n" + data    # b2a_qp ends all lines like the first one; dropped at the end
    if b" \n" in data:
        data = data.replace(b" \n", b"\xfe\n")
        fixes.append((b"=FE", b"=20"))
    if b"\t" in data and b"\t\n" in data:
        data = data.replace(b"\t\n", b"\xfd\n")
        fixes.append((b"=FD", b"=09"))
    if has_from:
        data = data.replace(b"\nFrom ", b"\n\xfcrom ")
        fixes.append((b"=FC", b"=46"))
    body = b2a_qp(data, quotetabs=False, istext=True, header=False)
    if has_from and b"=\r\nFrom " in body:   # a soft line break left "From " at a line start
        body = b2a_qp(data.replace(b"F", b"\xfc"), quotetabs=False, istext=True, header=False)
    for written, wanted in fixes:
        body = body.replace(written, wanted)
    return body[2:]


def _has_long_line(text: str) -> bool:
    """Whether a line of `text` (LF line ends) is longer than 998 characters."""
    start, end = 0, len(text)
    while end - start > HARD_LINE:
        newline = text.rfind("\n", start, start + HARD_LINE + 1)
        if newline < 0:
            return True
        start = newline + 1
    return False
