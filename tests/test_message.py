"""The message builder: what the stdlib parser reads back is exactly what went in, and the bytes
keep to the line rules of RFC 5322, 2045 and 2047."""

from __future__ import annotations

import base64
import email
import email.policy
import hashlib
import re
from datetime import datetime, timedelta, timezone
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.message import Envelope, HeaderError, build_message, message_id, needs_smtputf8

DATE = datetime(2026, 4, 1, 9, 30, 5, tzinfo=timezone(timedelta(hours=2)))
MESSAGE_ID = "<spring.42.ab12cd34@greenshop.example>"
BOUNDARY = "=_" + hashlib.sha256(MESSAGE_ID.encode()).hexdigest()[:24]
BASE_HEADERS = ["From", "To", "Subject", "Date", "Message-ID", "MIME-Version"]
UNSUBSCRIBE = (
    ("List-Unsubscribe", "<https://greenshop.example/u/3f9a>, <mailto:u@greenshop.example>"),
    ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
)
TEXT = "Hello Anna,\n\nour spring sale starts today.\n"
HTML = "<html><body><p>Hello Anna,</p>\n<p>our spring sale starts today.</p></body></html>\n"
CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
ENCODED_WORD = re.compile(r"=\?utf-8\?b\?([A-Za-z0-9+/=]*)\?=")


def envelope(**changes) -> Envelope:
    values = {"from_name": "Green Shop", "from_address": "news@greenshop.example",
              "to_name": "Anna Schmidt", "to_address": "anna@example.com",
              "subject": "Spring sale", "message_id": MESSAGE_ID, "date": DATE,
              "extra_headers": UNSUBSCRIBE}
    return Envelope(**{**values, **changes})


def parse(data: bytes) -> EmailMessage:
    return email.message_from_bytes(data, policy=email.policy.default)


def cleaned(value: str) -> str:
    """What a header value must read back as: control characters become spaces."""
    return CONTROLS.sub(" ", value)


def display_name(name: str) -> str:
    """What a display name must read back as: cleaned, whitespace runs as one space, trimmed."""
    return " ".join(cleaned(name).split())


def crlf(text: str) -> str:
    """A body as the parser returns it: every LF or CRLF line end as CRLF, a bare CR kept."""
    return text.replace("\r\n", "\n").replace("\n", "\r\n")


def raw_headers(data: bytes) -> list[tuple[str, str]]:
    """The top-level header fields as written: (name, unfolded value)."""
    fields: list[tuple[str, str]] = []
    for line in data.split(b"\r\n\r\n", 1)[0].decode().split("\r\n"):
        if line.startswith(" "):
            fields[-1] = (fields[-1][0], fields[-1][1] + line)
        else:
            name, value = line.split(": ", 1)
            fields.append((name, value))
    return fields


def check_lines(data: bytes, strict: bool = True) -> dict[str, str]:
    """Assert the line rules; return each part's Content-Transfer-Encoding by content type.

    Every line ends with CRLF (no bare CR or LF anywhere, no NUL), body lines fit 998 bytes and
    quoted-printable lines 76, encoded words 75 characters. Header lines fit 78 bytes; with
    `strict` off, a longer header line is allowed only when it holds a single word that no fold
    could split.
    """
    assert data.endswith(b"\r\n") and b"\x00" not in data
    assert b"\r" not in data.replace(b"\r\n", b"") and b"\n" not in data.replace(b"\r\n", b"")
    delimiter = b"--" + re.search(rb'boundary="(=_[0-9a-f]{24})"\r\n', data).group(1)
    state, part_type, encodings = "headers", "", {}
    for line in data[:-2].split(b"\r\n"):
        if line in (delimiter, delimiter + b"--"):
            state = "headers"
        elif state == "headers" and line == b"":
            state = "body"
        elif state == "headers":
            assert all(len(word) <= 75 for word in re.findall(rb"=\?[^ ]*\?=", line)), line
            if line.startswith(b"Content-Type: text/"):
                part_type = line.split(b";")[0].decode()[14:]
            if line.startswith(b"Content-Transfer-Encoding: "):
                encodings[part_type] = line.decode()[27:]
            if len(line) > 78:
                assert not strict, line
                word = line.lstrip(b" ") if line.startswith(b" ") else line.split(b": ", 1)[1]
                assert b" " not in word and len(line) <= 998, line
        else:
            assert len(line) <= (76 if encodings.get(part_type) in ("quoted-printable", "base64")
                                 else 998)
            assert not line.startswith(b"From ")
    assert state == "headers" and line == delimiter + b"--"
    assert set(encodings) == {"text/plain", "text/html"}
    return encodings


def rfc2047_phrase(raw_value: str) -> str:
    """The display name of `phrase <address>` decoded as RFC 2047 says: whitespace between
    adjacent encoded words is dropped (Python 3.11's parser keeps one space; gh-128110)."""
    parts: list[str] = []
    previous_encoded = False
    for word in raw_value.rsplit(" <", 1)[0].split():
        match = ENCODED_WORD.fullmatch(word)
        if parts and not (match and previous_encoded):
            parts.append(" ")
        parts.append(base64.b64decode(match.group(1)).decode() if match else word)
        previous_encoded = match is not None
    return "".join(parts)


def assert_mailbox(parsed: EmailMessage, data: bytes, header: str, name: str,
                   address: str) -> None:
    [mailbox] = parsed[header].addresses
    addr_spec = mailbox.addr_spec.encode("ascii", "surrogateescape").decode()
    assert addr_spec == address
    expected = display_name(name)
    raw_value = dict(raw_headers(data))[header]
    if expected and not raw_value.startswith('"'):   # atoms and encoded words
        assert rfc2047_phrase(raw_value) == expected
    if mailbox.display_name != expected:
        # Only where encoded words meet may Python 3.11 differ from RFC 2047 (gh-128110).
        assert re.search(r"\?= +=\?", raw_value), raw_value


def assert_round_trip(env: Envelope, text: str, html: str, strict: bool = True) -> EmailMessage:
    data = build_message(env, text, html)
    check_lines(data, strict)
    parsed = parse(data)
    extra = [name for name, _ in env.extra_headers]
    assert list(parsed.keys()) == [*BASE_HEADERS, *extra, "Content-Type"]
    assert [name for name, _ in raw_headers(data)] == list(parsed.keys())
    assert_mailbox(parsed, data, "From", env.from_name, env.from_address)
    assert_mailbox(parsed, data, "To", env.to_name, env.to_address)
    assert str(parsed["Subject"]) == cleaned(env.subject)
    assert parsed["Date"].datetime == env.date
    assert str(parsed["Date"]) == format_datetime(env.date)
    assert str(parsed["Message-ID"]) == env.message_id
    assert str(parsed["MIME-Version"]) == "1.0"
    assert [str(parsed[name]) for name in extra] == [cleaned(value)
                                                     for _, value in env.extra_headers]
    assert parsed.get_content_type() == "multipart/alternative"
    parts = list(parsed.iter_parts())
    assert [part.get_content_type() for part in parts] == ["text/plain", "text/html"]
    assert all(part.get_content_charset() == "utf-8" for part in parts)
    assert parsed.get_body(("plain",)).get_content() == crlf(text)
    assert parsed.get_body(("html",)).get_content() == crlf(html)
    return parsed


def test_ascii_message_round_trips_as_7bit():
    data = build_message(envelope(), TEXT, HTML)
    assert check_lines(data) == {"text/plain": "7bit", "text/html": "7bit"}
    assert data.startswith(b"From: Green Shop <news@greenshop.example>\r\n"
                           b"To: Anna Schmidt <anna@example.com>\r\nSubject: Spring sale\r\n"
                           b"Date: Wed, 01 Apr 2026 09:30:05 +0200\r\n"
                           b"Message-ID: <spring.42.ab12cd34@greenshop.example>\r\n"
                           b"MIME-Version: 1.0\r\n"
                           b"List-Unsubscribe: <https://greenshop.example/u/3f9a>,\r\n"
                           b" <mailto:u@greenshop.example>\r\n"
                           b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
                           b'Content-Type: multipart/alternative; boundary="'
                           + BOUNDARY.encode() + b'"\r\n\r\n')
    assert b"\r\n\r\nHello Anna,\r\n\r\nour spring sale starts today.\r\n\r\n--" in data
    assert data.endswith(b"\r\n--" + BOUNDARY.encode() + b"--\r\n")
    assert_round_trip(envelope(), TEXT, HTML)
    assert build_message(envelope(), TEXT, HTML) == data


@pytest.mark.parametrize(("from_name", "to_name", "subject", "text"), [
    ("Grüne Läden", "Jürgen Müller", "Ihre Bestellung, Herr Müller", "Grüße aus Köln\n"),
    ("Zoë's Café", "Zoë Ångström", "Ångström-Rabatt für Zoë", "Ça va, Zoë?\nÅngström\n"),
    ("🌱 Green Shop", "山田 太郎", "春のセール 🌸 — 20 % off", "こんにちは 🌸\n山田様\n"),
    ("Грин Шоп", "Ελένη Παπαδοπούλου", "Весенняя распродажа", "Καλημέρα\n"),
])
def test_non_ascii_names_subjects_and_bodies(from_name, to_name, subject, text):
    env = envelope(from_name=from_name, to_name=to_name, subject=subject)
    parsed = assert_round_trip(env, text, HTML + text)
    assert parsed["To"].addresses[0].display_name == to_name
    data = build_message(env, text, HTML)
    assert check_lines(data) == {"text/plain": "quoted-printable", "text/html": "7bit"}
    assert re.search(rb"^Subject: =\?utf-8\?b\?", data, re.MULTILINE)


@pytest.mark.parametrize("subject", [
    ("Frühlingsangebote für Zoë: 20 % auf Öko-Gemüse 🌸 und 山田さん " * 4)[:200],
    "ü" * 100, "🌸" * 50, "ü🌸山" * 20, " " + "Spring sale, all organic " * 8,
])
def test_long_subjects_needing_encoding_are_folded_into_encoded_words(subject):
    data = build_message(envelope(subject=subject), TEXT, HTML)
    subject_lines = data.split(b"\r\nDate:")[0].split(b"Subject: ")[1].split(b"\r\n")
    assert len(subject_lines) >= 5
    assert all(ENCODED_WORD.fullmatch(line.strip().decode()) for line in subject_lines)
    assert all(len(line.strip()) <= 75 for line in subject_lines)   # the RFC 2047 limit per word
    for line in subject_lines:   # each word decodes alone: no split inside a UTF-8 sequence
        base64.b64decode(ENCODED_WORD.fullmatch(line.strip().decode()).group(1)).decode()
    assert_round_trip(envelope(subject=subject), TEXT, HTML)


def test_long_ascii_subject_is_folded_at_spaces():
    subject = "Our  spring sale: organic vegetables, fruit and bread for the whole family " * 3
    subject = subject.strip()
    data = build_message(envelope(subject=subject), TEXT, HTML)
    block = data.split(b"\r\nDate:")[0].split(b"Subject: ")[1]
    assert b"=?" not in block and block.count(b"\r\n ") >= 2
    assert block.replace(b"\r\n", b"").decode() == subject
    assert_round_trip(envelope(subject=subject), TEXT, HTML)


@pytest.mark.parametrize("subject", [
    "=?utf-8?q?Free?= money", "Free=?utf-8?b?bW9uZXk=?=", "  Spring sale", "Spring sale ", "",
])
def test_subjects_a_parser_would_change_are_encoded(subject):
    data = build_message(envelope(subject=subject), TEXT, HTML)
    if subject:
        assert re.search(rb"^Subject: =\?utf-8\?b\?", data, re.MULTILINE)
    assert_round_trip(envelope(subject=subject), TEXT, HTML)


@pytest.mark.parametrize(("name", "written"), [
    ('Anna "Nanni" Schmidt', '"Anna \\"Nanni\\" Schmidt"'),
    ("Schmidt, Anna", '"Schmidt, Anna"'),
    ("Anna \\ Schmidt", '"Anna \\\\ Schmidt"'),
    ("A. (Anna) <Schmidt>; x@y: [z]", '"A. (Anna) <Schmidt>; x@y: [z]"'),
    ("  Anna \t Schmidt\r\n", "Anna Schmidt"),
    ("Zoë  Ångström ", "=?utf-8?b?Wm/DqyDDhW5nc3Ryw7Zt?="),
    ("Anna O'Brien-Schmidt", "Anna O'Brien-Schmidt"),
    ("=?utf-8?q?Evil?=", "=?utf-8?b?PT91dGYtOD9xP0V2aWw/PQ==?="),
])
def test_display_names_with_specials_are_quoted(name, written):
    data = build_message(envelope(to_name=name, from_name=name), TEXT, HTML)
    assert f"To: {written} <anna@example.com>\r\n".encode() in data
    parsed = assert_round_trip(envelope(to_name=name, from_name=name), TEXT, HTML)
    assert parsed["To"].addresses[0].display_name == display_name(name)


@pytest.mark.parametrize("name", [
    "Maria José García-López de la Fuente y Martínez-Ibáñez",
    "Hans-Jürgen Müller-Lüdenscheidt von und zu Hohenzollern-Sigmaringen, Grüne Läden",
    "Anna " * 30 + "Schmidt",
])
def test_long_display_names_stay_within_lines_and_exact(name):
    parsed = assert_round_trip(envelope(to_name=name, from_name=name), TEXT, HTML)
    assert parsed["To"].addresses[0].display_name == name
    assert parsed["From"].addresses[0].display_name == name


def test_long_lines_are_quoted_printable_text_and_base64_html():
    text = "start\n" + "Grün " * 300 + "\n" + "x" * 2000 + "\nend"
    html = "<p>" + "a" * 998 + "</p>\n" + "b" * 998 + "\n"
    data = build_message(envelope(), text, html)
    assert check_lines(data) == {"text/plain": "quoted-printable", "text/html": "base64"}
    assert_round_trip(envelope(), text, html)
    assert check_lines(build_message(envelope(), "a" * 998 + "\n", "b" * 998)) == {
        "text/plain": "7bit", "text/html": "7bit"}


def test_dot_and_from_lines_are_safe():
    text = ".\n.hidden\nFrom the team\n..\nsee From here\n"
    html = "From top\n" + "x" * 75 + "From the soft break on, " * 5 + "\n"
    data = build_message(envelope(), text, html)
    assert check_lines(data) == {"text/plain": "quoted-printable", "text/html": "base64"}
    assert b"\r\n=2E\r\n.hidden\r\n=46rom the team\r\n..\r\nsee From here\r\n" in data
    assert not re.search(rb"^From ", data.split(b"\r\n\r\n", 1)[1], re.MULTILINE)
    assert_round_trip(envelope(), text, html)
    assert check_lines(build_message(envelope(), ".\n.x\nsee From here\n", "<p>From</p>\n")) == {
        "text/plain": "7bit", "text/html": "7bit"}


def test_boundary_in_a_body_forces_an_encoding():
    text = f"--{BOUNDARY}\nContent-Type: text/html\n\n<p>fake</p>\n--{BOUNDARY}--\n"
    html = f"<p>{BOUNDARY}</p>\n"
    data = build_message(envelope(), text, html)
    assert check_lines(data) == {"text/plain": "quoted-printable", "text/html": "base64"}
    assert data.count(BOUNDARY.encode()) == 4
    assert_round_trip(envelope(), text, html)
    lookalike = "--=_0123456789abcdef01234567\n=_ a=_b\n"
    assert check_lines(build_message(envelope(), lookalike, HTML))["text/plain"] == "7bit"
    assert_round_trip(envelope(), lookalike, HTML)


def test_nul_alone_forces_quoted_printable():
    data = build_message(envelope(), "a\x00b\n", HTML)
    assert check_lines(data)["text/plain"] == "quoted-printable"
    assert b"\r\n\r\na=00b\r\n" in data
    assert_round_trip(envelope(), "a\x00b\n", HTML)


def test_bare_cr_nul_and_crlf_in_bodies():
    text = "line one\r\nline two\rstill two\x00nul\nend \t"
    data = build_message(envelope(), text, "a\r\nb\r\n")
    assert check_lines(data) == {"text/plain": "quoted-printable", "text/html": "7bit"}
    assert b"line two=0Dstill two=00nul\r\nend =09\r\n" in data
    assert_round_trip(envelope(), text, "a\r\nb\r\n")


def test_whitespace_ending_a_line_keeps_quoted_printable_lines_short():
    # b2a_qp alone would write these lines 77 and 78 characters long.
    text = "ü\n" + "x" * 75 + " \n" + "y" * 74 + "\t\n" + "z" * 73 + " \t \nend \t"
    data = build_message(envelope(), text, HTML)
    assert check_lines(data)["text/plain"] == "quoted-printable"
    assert b"x" * 75 + b"=\r\n=20\r\n" in data and b"y" * 74 + b"=\r\n=09\r\n" in data
    assert b"z" * 73 + b" \t=\r\n=20\r\nend =09\r\n--" in data
    assert_round_trip(envelope(), text, HTML)


@pytest.mark.parametrize("attack", [
    "Hi\r\nBcc: victim@example.net", "Hi\nBcc: victim@example.net", "Hi\rBcc: victim@example.net",
    "Hi\x00\r\n\r\nbody", "Hi\r\n Bcc: x@y", "Hi\u2028Bcc: x@y\x85X: y", "Ümlaut\r\nBcc: x@y",
])
def test_control_characters_cannot_inject_headers(attack):
    env = envelope(subject=attack, to_name=attack, from_name=attack,
                   extra_headers=(("X-Campaign", attack), *UNSUBSCRIBE))
    parsed = assert_round_trip(env, TEXT, HTML)
    assert "Bcc" not in parsed and "X" not in parsed
    assert str(parsed["Subject"]) == cleaned(attack)
    assert "\r" not in str(parsed["X-Campaign"]) and "\n" not in str(parsed["X-Campaign"])


def test_non_ascii_address_needs_smtputf8():
    env = envelope(to_name="Jürgen Müller", to_address="jürgen.müller@bücher.example")
    assert needs_smtputf8(env)
    assert needs_smtputf8(envelope(from_address="新闻@greenshop.example"))
    assert not needs_smtputf8(envelope(to_name="Jürgen Müller", subject="Grüße"))
    data = build_message(env, TEXT, HTML)
    assert ("To: =?utf-8?b?SsO8cmdlbiBNw7xsbGVy?= <jürgen.müller@bücher.example>\r\n".encode()
            in data)
    assert_round_trip(env, TEXT, HTML)
    # 75 characters but 79 bytes on one line: the address goes to a line of its own.
    env = envelope(to_name="Jürgen Müller", to_address="jürgen.müller@bücherstübchen.example")
    assert ("To: =?utf-8?b?SsO8cmdlbiBNw7xsbGVy?=\r\n <jürgen.müller@bücherstübchen.example>\r\n"
            .encode() in build_message(env, TEXT, HTML))
    assert_round_trip(env, TEXT, HTML)
    assert_round_trip(envelope(to_name="", to_address="山田@例え.jp"), TEXT, HTML)


@pytest.mark.parametrize("address", [
    "", "anna", "anna@", "@example.com", "anna schmidt@example.com", "anna@example.com\r\nBcc: x@y",
    "anna@example.com\n", "<anna@example.com>", "anna@example.com, bob@example.com",
    "anna@example.com;", "Anna <anna@example.com>", "an\x00na@example.com", "anna@@example.com",
    "anna\t@example.com", "anna@exa\u2028mple.com", "a" * 250 + "@example.com",
])
def test_bad_addresses_raise(address):
    for field in ("to_address", "from_address"):
        with pytest.raises(HeaderError) as error:
            build_message(envelope(**{field: address}), TEXT, HTML)
        assert error.value.message.startswith(f"{field} {address!r} is not a usable")
        assert "name@example.com" in error.value.hint


@pytest.mark.parametrize(("changes", "fragment"), [
    ({"extra_headers": (("Bad Name", "x"),)}, "extra header name 'Bad Name'"),
    ({"extra_headers": (("X-A:B", "x"),)}, "extra header name 'X-A:B'"),
    ({"extra_headers": (("subject", "x"),)}, "extra header name 'subject'"),
    ({"extra_headers": (("X-" + "a" * 60, "x"),)}, "extra header name 'X-aaa"),
    ({"message_id": "spring.42@greenshop.example"}, "message_id 'spring.42@greenshop"),
    ({"message_id": "<a@b>\r\nBcc: x@y"}, "message_id '<a@b>\\r\\nBcc"),
    ({"date": datetime(2026, 4, 1, 9, 30)}, "date has no time zone"),
])
def test_other_bad_header_values_raise(changes, fragment):
    with pytest.raises(HeaderError) as error:
        build_message(envelope(**changes), TEXT, HTML)
    assert error.value.message.startswith(fragment)
    assert error.value.hint


def test_message_id_is_deterministic_and_safe():
    digest = hashlib.sha256(b"s3cret|spring sale/2026|42").hexdigest()[:8]
    assert message_id("spring sale/2026", 42, "greenshop.example", salt="s3cret") == (
        f"<spring-sale-2026.42.{digest}@greenshop.example>")
    assert message_id("spring", 42, "greenshop.example") == message_id("spring", 42,
                                                                       "greenshop.example")
    assert message_id("spring", 42, "x.example") != message_id("spring", 42, "x.example", "salt")
    assert message_id("spring", 42, "x.example") != message_id("spring", 43, "x.example")
    assert message_id("Frühling_1-a", 7, "x.example").startswith("<Fr-hling_1-a.7.")
    env = envelope(message_id=message_id("spring ü", 42, "greenshop.example"))
    assert str(parse(build_message(env, TEXT, HTML))["Message-ID"]) == env.message_id


def stdlib_message(env: Envelope, text: str, html: str) -> bytes:
    message = EmailMessage(policy=email.policy.SMTP)
    message["From"] = Address(env.from_name, addr_spec=env.from_address)
    message["To"] = Address(env.to_name, addr_spec=env.to_address)
    message["Subject"] = env.subject
    message["Date"] = env.date
    message["Message-ID"] = env.message_id
    for name, value in env.extra_headers:
        message[name] = value
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    return message.as_bytes()


@pytest.mark.parametrize(("changes", "text", "html"), [
    ({}, TEXT, HTML),
    ({"from_name": "Grüne Läden", "to_name": "Zoë Ångström", "subject": "Grüße, Zoë! 🌸"},
     "Grüße\n.\nFrom us\n", "<p>山田様 🌸</p>\n" * 300),
    ({"to_name": 'Schmidt, "Nanni" \\ Anna', "subject": "Spring " * 30 + "ends"},
     "x" * 1500 + "\n", "<p>" + "é" * 1000 + "</p>\n"),
    ({"subject": ("Frühling für Zoë und 山田さん 🌸 " * 8)[:200]}, TEXT, HTML),
])
def test_same_result_as_the_stdlib(changes, text, html):
    env = envelope(**changes)
    ours = parse(build_message(env, text, html))
    theirs = parse(stdlib_message(env, text, html))
    for header in ("From", "To"):
        assert ([(a.display_name, a.addr_spec) for a in ours[header].addresses]
                == [(a.display_name, a.addr_spec) for a in theirs[header].addresses])
    for header in ("Date", "Message-ID", "MIME-Version", *dict(env.extra_headers)):
        # The stdlib may fold right after the colon; its parser then reads a leading space.
        assert str(ours[header]) == str(theirs[header]).lstrip(" ")
    # Folding a long non-ASCII subject, the stdlib can drop a space between two encoded words
    # (it leaves the space outside them); ours reads back exactly.
    assert str(ours["Subject"]) == env.subject
    assert str(theirs["Subject"]).replace(" ", "") == env.subject.replace(" ", "")
    for kind in ("plain", "html"):
        assert ours.get_body((kind,)).get_content() == theirs.get_body((kind,)).get_content()
    assert_round_trip(env, text, html)


SNIPPETS = ["\r\n", "\n", "\r", ".", "\n.\n", "From ", "\nFrom ", " ", "  ", "\t", "=", "=?",
            "=?utf-8?q?x?=", "?=", '"', "\\", ",", "<", ">", "@", ":", ";", "(", ")", "ü", "🌸",
            "山田", "\x00", "\u2028", "\x85", "Bcc: x@y", "x" * 80, "y" * 999, BOUNDARY,
            f"--{BOUNDARY}--"]
TEXTS = st.lists(st.one_of(st.text(), st.sampled_from(SNIPPETS)), max_size=12).map("".join)
ADDRESSES = st.sampled_from(["anna@example.com", "a.b+tag@sub.example.org", "x@y",
                             "jürgen@bücher.example", "山田@例え.jp"])


@settings(max_examples=300, deadline=None)
@given(from_name=TEXTS, to_name=TEXTS, subject=TEXTS, extra=TEXTS, text=TEXTS, html=TEXTS,
       from_address=ADDRESSES, to_address=ADDRESSES)
def test_any_text_round_trips(from_name, to_name, subject, extra, text, html, from_address,
                              to_address):
    env = envelope(from_name=from_name, to_name=to_name, subject=subject,
                   from_address=from_address, to_address=to_address,
                   extra_headers=(("X-Campaign", extra), *UNSUBSCRIBE))
    assert_round_trip(env, text, html, strict=False)
    assert needs_smtputf8(env) == (not (from_address + to_address).isascii())

