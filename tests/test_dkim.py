"""DKIM signing: dkimpy verifies what DkimSigner signs, DkimSigner writes byte for byte what
dkimpy's own `dkim.sign` writes, and the unsubscribe headers follow RFC 2369 and RFC 8058."""

from __future__ import annotations

import base64
import email
import email.policy
import hashlib
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dkim
import pytest
from dkim.canonicalization import Relaxed
from dkim.util import parse_tag_value
from hypothesis import given, settings
from hypothesis import strategies as st

import engine.dkim
from engine.dkim import MAX_URI, SIGNED_HEADERS, DkimSigner, unsubscribe_headers
from engine.errors import SettingsError
from engine.message import Envelope, HeaderError, build_message
from engine.settings import load_settings

DOMAIN = "greenshop.example"
SELECTOR = "news2026"
RECORD_NAME = b"news2026._domainkey.greenshop.example."
URL = "https://greenshop.example/unsubscribe/c3Bya.bmc-42_x"
MAILTO = "unsubscribe@greenshop.example"
DATE = datetime(2026, 4, 1, 9, 30, 5, tzinfo=timezone(timedelta(hours=2)))
NOW = 1774000000.25
ALL_NAMES = [name.decode() for name in SIGNED_HEADERS]
CONTENT = {   # subject, text, html: 7bit parts, then quoted-printable and base64 ones
    "ascii": ("Spring sale", "Hello Anna,\n\nour spring sale starts today.\n",
              "<html><body><p>Hello Anna,</p>\n<p>our spring sale starts today.</p></body>"
              "</html>\n"),
    "accented": ("Frühlingsangebote für Jörg – à bientôt",
                 "Grüße, Jörg!\n\nÀ bientôt: façade, déjà vu, crème brûlée.\n",
                 "<p>Grüße, Jörg! À bientôt, façade déjà vu.</p>\n" * 300),
    "emoji": ("🌷 Spring sale 🌷 up to 30 % off 🌿",
              "Hello 👋\n\n🌿 New plants 🌿 are here.\n",
              "<p>🌷🌷 Spring 🌷🌷 <b>sale</b> 🌿</p>\n" * 300),
}


@dataclass(frozen=True)
class Key:
    pem: bytes
    record: bytes   # the DNS TXT record of the public half


def openssl(*args: str | Path) -> bytes:
    return subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True).stdout


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command makes the test keys")
    return tmp_path_factory.mktemp("dkim")


@pytest.fixture(scope="module")
def rsa_key(folder: Path) -> Key:
    path = folder / "dkim.pem"
    openssl("genrsa", "-out", path, "2048")
    public = openssl("pkey", "-in", path, "-pubout", "-outform", "DER")
    return Key(path.read_bytes(), b"v=DKIM1; k=rsa; p=" + base64.b64encode(public))


@pytest.fixture(scope="module")
def ed25519_key(folder: Path) -> Key:
    path = folder / "ed25519.pem"
    openssl("genpkey", "-algorithm", "ed25519", "-out", path)
    public = openssl("pkey", "-in", path, "-pubout", "-outform", "DER")[-32:]
    return Key(path.read_bytes(), b"v=DKIM1; k=ed25519; p=" + base64.b64encode(public))


@pytest.fixture(scope="module")
def signer(rsa_key: Key) -> DkimSigner:
    return DkimSigner(DOMAIN, SELECTOR, rsa_key.pem)


@pytest.fixture(scope="module")
def signed(signer: DkimSigner) -> dict[str, bytes]:
    """Each CONTENT kind built and signed once."""
    return {kind: signer.sign(message(kind)) for kind in CONTENT}


def message(kind: str, extra_headers: tuple[tuple[str, str], ...] | None = None) -> bytes:
    subject, text, html = CONTENT[kind]
    if extra_headers is None:
        extra_headers = unsubscribe_headers(URL, MAILTO)
    return build_message(Envelope("Green Shop", "news@greenshop.example", "Jörg Müller",
                                  "jorg@example.com", subject,
                                  "<spring.42.ab12cd34@greenshop.example>", DATE, extra_headers),
                         text, html)


def verify(data: bytes, key: Key) -> bool:
    def lookup(name: bytes, timeout: float = 5) -> bytes | None:
        return key.record if name == RECORD_NAME else None
    return dkim.verify(data, dnsfunc=lookup)


def tags(data: bytes) -> dict[bytes, bytes]:
    """The tags of the first header, which must be the DKIM-Signature."""
    name, value = dkim.rfc822_parse(data)[0][0]
    assert name == b"DKIM-Signature"
    return parse_tag_value(value)


def signed_names(data: bytes) -> list[str]:
    return [name.strip().decode() for name in tags(data)[b"h"].split(b":")]


def parse(data: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(data, policy=email.policy.default)


# Signing and verifying

@pytest.mark.parametrize("kind", CONTENT)
def test_signed_message_verifies(signed, rsa_key, kind):
    data = message(kind)
    assert signed[kind] != data and signed[kind].endswith(data)
    assert signed[kind].startswith(b"DKIM-Signature: ")
    assert verify(signed[kind], rsa_key)
    found = tags(signed[kind])
    assert (found[b"a"], found[b"c"], found[b"d"], found[b"s"]) == (
        b"rsa-sha256", b"relaxed/relaxed", DOMAIN.encode(), SELECTOR.encode())
    assert signed_names(signed[kind]) == ALL_NAMES


@pytest.mark.parametrize(("kind", "encoding"), [("ascii", b"7bit"), ("accented", b"base64"),
                                                ("emoji", b"base64")])
def test_the_contents_cover_each_transfer_encoding(signed, kind, encoding):
    assert b"Content-Transfer-Encoding: " + encoding in signed[kind]
    assert (b"\r\nSubject: =?utf-8?b?" in signed[kind]) == (kind != "ascii")


def test_h_lists_only_the_headers_present_and_always_from(signer, rsa_key):
    plain = signer.sign(message("ascii", extra_headers=()))
    assert verify(plain, rsa_key)
    assert signed_names(plain) == ["from", "to", "subject", "date", "message-id",
                                   "mime-version", "content-type"]
    without_from = signer.sign(b"Subject: hi\r\nTo: anna@example.com\r\n\r\nhello\r\n")
    assert signed_names(without_from) == ["from", "to", "subject"]


def at_body_end(data: bytes, text: bytes) -> bytes:
    """`data` with `text` written at the end of the last part's body."""
    end = data.rindex(b"\r\n--=_")
    return data[:end] + text + data[end:]


TAMPERING = {
    "subject": lambda data: data.replace(b"\r\nSubject: ", b"\r\nSubject: Re: ", 1),
    "body": lambda data: at_body_end(data, b"A"),
    "list-unsubscribe": lambda data: data.replace(b"https://greenshop.example/",
                                                  b"https://evil.example/", 1),
    "list-unsubscribe-post": lambda data: data.replace(
        b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n", b"", 1),
    "from": lambda data: data.replace(b"\r\nFrom: Green Shop", b"\r\nFrom: Green Shoq", 1),
}


@pytest.mark.parametrize("kind", CONTENT)
@pytest.mark.parametrize("part", TAMPERING)
def test_tampering_breaks_the_signature(signed, rsa_key, kind, part):
    tampered = TAMPERING[part](signed[kind])
    assert tampered != signed[kind]
    assert verify(signed[kind], rsa_key)
    assert not verify(tampered, rsa_key)


RELAXED_CHANGES = {   # what relaxed/relaxed canonicalization ignores and simple would not
    "header whitespace": lambda data: data.replace(b"\r\nSubject: ", b"\r\nSubject:  \t ", 1),
    "header refolded": lambda data: data.replace(b"\r\nTo: ", b"\r\nTo:\r\n  ", 1),
    "header name case": lambda data: data.replace(b"\r\nDate: ", b"\r\nDATE: ", 1),
    "trailing whitespace": lambda data: at_body_end(data, b" \t"),
    "trailing empty lines": lambda data: data + b"\r\n\r\n\r\n",
}


@pytest.mark.parametrize("change", RELAXED_CHANGES)
def test_relaxed_canonicalization_tolerates_whitespace_changes(signed, rsa_key, change):
    changed = RELAXED_CHANGES[change](signed["accented"])
    assert changed != signed["accented"]
    assert verify(changed, rsa_key)


def test_a_different_key_does_not_verify(signed, folder):
    path = folder / "other.pem"
    openssl("genrsa", "-out", path, "2048")
    public = openssl("pkey", "-in", path, "-pubout", "-outform", "DER")
    assert not verify(signed["ascii"], Key(b"", b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)))


# The same bytes as dkimpy

CRAFTED = {
    "whitespace": b"From: a@greenshop.example\r\nSubject:  lots \t of   space \r\n  folded\t"
                  b"line \r\nTo: b@example.com\r\n\r\n  lead\r\nmid \t run\r\ntrail \t \r\n"
                  b"\t\r\n\r\n \r\n\r\n",
    "bare LF": b"From: a@greenshop.example\nSubject: x\n\nline one\nline two \n\n",
    "empty body": b"From: a@greenshop.example\r\nSubject: x\r\n\r\n",
    "no body": b"From: a@greenshop.example\r\nSubject: x\r\n",
    "no final CRLF": b"From: a@greenshop.example\r\nSubject: x\r\n\r\nlast  line \t",
    "no From": b"Subject: x\r\nTo: b@example.com\r\n\r\nhi\r\n",
    "repeated": b"Subject: first\r\nFrom: a@greenshop.example\r\nSubject: second\r\n"
                b"X-Other: y\r\n\r\nhi\r\n",
    "mbox line": b"From someone Mon Jan  1 00:00:00 2026\r\nFrom: a@greenshop.example\r\n"
                 b"Subject: x\r\n\r\nhi\r\n",
}
SAMPLES = {**{kind: (lambda kind=kind: message(kind)) for kind in CONTENT},
           **{name: (lambda data=data: data) for name, data in CRAFTED.items()}}


def dkimpy_sign(data: bytes, key: bytes, algorithm: bytes = b"rsa-sha256") -> bytes:
    present = {name.lower() for name, _ in dkim.rfc822_parse(data)[0]}
    names = [name for name in SIGNED_HEADERS if name in present or name == b"from"]
    return dkim.sign(data, SELECTOR.encode(), DOMAIN.encode(), key, signature_algorithm=algorithm,
                     canonicalize=(b"relaxed", b"relaxed"), include_headers=names) + data


@pytest.mark.parametrize("sample", SAMPLES)
def test_signature_is_byte_for_byte_dkimpys(signer, rsa_key, monkeypatch, sample):
    data = SAMPLES[sample]()
    monkeypatch.setattr("time.time", lambda: NOW)
    ours = signer.sign(data)
    assert ours == dkimpy_sign(data, rsa_key.pem)
    assert tags(ours)[b"t"] == str(int(NOW)).encode()
    assert verify(ours, rsa_key)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from([b"a", b"=", b" ", b"\t", b"  ", b"\r\n", b"\r", b"\n",
                                 b"\r\n\r\n", b" \r\n", b"\t\r\n"]), max_size=30))
def test_body_hash_is_dkimpys(pieces):
    data = b"Subject: x\r\n\r\n" + b"".join(pieces)
    _, body = dkim.rfc822_parse(data)
    expected = base64.b64encode(hashlib.sha256(Relaxed.canonicalize_body(body)).digest())
    assert engine.dkim._body_hash(engine.dkim._split(data)[1]) == expected


# Keys

def test_pkcs1_and_crlf_pem_keys_sign_the_same(signer, rsa_key, folder, monkeypatch):
    path = folder / "pkcs1.pem"
    openssl("rsa", "-in", folder / "dkim.pem", "-traditional", "-out", path)
    pkcs1 = path.read_bytes()
    assert pkcs1.startswith(b"-----BEGIN RSA PRIVATE KEY-----")
    assert rsa_key.pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    monkeypatch.setattr("time.time", lambda: NOW)
    data = message("ascii")
    expected = signer.sign(data)
    assert DkimSigner(DOMAIN, SELECTOR, pkcs1).sign(data) == expected
    crlf = rsa_key.pem.replace(b"\n", b"\r\n")
    assert DkimSigner(DOMAIN, SELECTOR, crlf).sign(data) == expected


def damaged(pem: bytes) -> bytes:
    """The key with its last byte (of the CRT coefficient) changed."""
    der = bytearray(base64.b64decode(b"".join(pem.splitlines()[1:-1])))
    der[-1] ^= 0x01
    body = base64.encodebytes(bytes(der))
    return b"-----BEGIN PRIVATE KEY-----\n" + body + b"-----END PRIVATE KEY-----\n"


@pytest.mark.parametrize(("make", "words"), [
    (lambda key, folder: b"not a key at all", "no PEM private key"),
    (lambda key, folder: b"", "no PEM private key"),
    (lambda key, folder: b"\n".join(key.pem.splitlines()[:8] + key.pem.splitlines()[-1:]),
     "no usable RSA or Ed25519 private key"),
    (lambda key, folder: b"-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n",
     "no usable RSA or Ed25519 private key"),
    (lambda key, folder: openssl("pkey", "-in", folder / "dkim.pem", "-pubout"), "public key"),
    (lambda key, folder: openssl("pkey", "-in", folder / "dkim.pem", "-aes256", "-passout",
                                 "pass:secret"), "encrypted"),
    (lambda key, folder: openssl("genrsa", "512"), "512 bits"),
    (lambda key, folder: damaged(key.pem), "no usable RSA or Ed25519 private key"),
], ids=["garbage", "empty", "truncated", "bad base64", "public", "encrypted", "short",
        "damaged"])
def test_unusable_keys_are_refused_with_a_hint(rsa_key, folder, make, words):
    with pytest.raises(SettingsError) as caught:
        DkimSigner(DOMAIN, SELECTOR, make(rsa_key, folder))
    assert str(caught.value).startswith("CAMPAIGN_DKIM_KEY")
    assert words in caught.value.message
    assert caught.value.hint


@pytest.mark.parametrize(("domain", "selector", "words"), [
    ("green shop.example", SELECTOR, "[dkim] domain"),
    ("grünshop.example", SELECTOR, "[dkim] domain"),
    ("", SELECTOR, "[dkim] domain"),
    (DOMAIN, "news;2026", "[dkim] selector"),
    (DOMAIN, "news.", "[dkim] selector"),
])
def test_bad_domain_or_selector_is_refused(rsa_key, domain, selector, words):
    with pytest.raises(SettingsError, match=re.escape(words)):
        DkimSigner(domain, selector, rsa_key.pem)


def test_ed25519_pem_key_signs_what_dkimpy_verifies(ed25519_key):
    ed_signer = DkimSigner(DOMAIN, SELECTOR, ed25519_key.pem)
    for kind in CONTENT:
        data = ed_signer.sign(message(kind))
        assert tags(data)[b"a"] == b"ed25519-sha256"
        assert signed_names(data) == ALL_NAMES
        assert verify(data, ed25519_key)
        assert not verify(TAMPERING["subject"](data), ed25519_key)


def test_ed25519_seed_key_signs_byte_for_byte_as_dkimpy(monkeypatch):
    seed = base64.b64encode(os.urandom(32))   # dkimpy's key format
    monkeypatch.setattr("time.time", lambda: NOW)
    data = message("emoji")
    ours = DkimSigner(DOMAIN, SELECTOR, seed + b"\n").sign(data)
    assert ours == dkimpy_sign(data, seed, b"ed25519-sha256")


# Settings

def workspace(tmp_path: Path, dkim_table: str, key: Path | None):
    (tmp_path / "campaign.toml").write_text(dkim_table, encoding="utf-8")
    return load_settings(tmp_path, {"CAMPAIGN_DKIM_KEY": str(key)} if key else {})


DKIM_TABLE = f'[dkim]\ndomain = "{DOMAIN}"\nselector = "{SELECTOR}"\n'


def test_from_settings_without_a_key_is_none(tmp_path):
    assert DkimSigner.from_settings(workspace(tmp_path, DKIM_TABLE, None)) is None
    assert DkimSigner.from_settings(workspace(tmp_path, "", None)) is None


def test_from_settings_signs_with_the_key_file(tmp_path, rsa_key):
    path = tmp_path / "dkim.pem"
    path.write_bytes(rsa_key.pem)
    loaded = DkimSigner.from_settings(workspace(tmp_path, DKIM_TABLE, path))
    assert (loaded.domain, loaded.selector) == (DOMAIN, SELECTOR)
    assert verify(loaded.sign(message("ascii")), rsa_key)


def test_from_settings_with_a_missing_key_file(tmp_path):
    path = tmp_path / "missing.pem"
    with pytest.raises(SettingsError, match="cannot read the DKIM key") as caught:
        DkimSigner.from_settings(workspace(tmp_path, DKIM_TABLE, path))
    assert caught.value.path == str(path)
    assert str(caught.value).startswith(f"{path}: CAMPAIGN_DKIM_KEY")


def test_from_settings_with_a_garbage_key(tmp_path):
    path = tmp_path / "dkim.pem"
    path.write_text("-----BEGIN PRIVATE KEY-----\nnonsense\n-----END PRIVATE KEY-----\n")
    with pytest.raises(SettingsError,
                       match="CAMPAIGN_DKIM_KEY: the file holds no usable") as caught:
        DkimSigner.from_settings(workspace(tmp_path, DKIM_TABLE, path))
    assert caught.value.path == str(path)
    assert "openssl genrsa" in caught.value.hint


@pytest.mark.parametrize(("table", "missing"), [
    ("", "domain and selector"),
    (f'[dkim]\ndomain = "{DOMAIN}"\n', "selector"),
    (f'[dkim]\nselector = "{SELECTOR}"\n', "domain"),
])
def test_from_settings_with_a_key_but_no_domain_or_selector(tmp_path, rsa_key, table, missing):
    path = tmp_path / "dkim.pem"
    path.write_bytes(rsa_key.pem)
    with pytest.raises(SettingsError) as caught:
        DkimSigner.from_settings(workspace(tmp_path, table, path))
    assert caught.value.message == f"CAMPAIGN_DKIM_KEY is set but [dkim] has no {missing}"
    assert caught.value.path == str(tmp_path / "campaign.toml")
    assert 'selector = "news2026"' in caught.value.hint


def test_from_settings_with_a_bad_domain_points_at_campaign_toml(tmp_path, rsa_key):
    path = tmp_path / "dkim.pem"
    path.write_bytes(rsa_key.pem)
    table = f'[dkim]\ndomain = "shop example"\nselector = "{SELECTOR}"\n'
    with pytest.raises(SettingsError, match=r"\[dkim\] domain 'shop example'") as caught:
        DkimSigner.from_settings(workspace(tmp_path, table, path))
    assert caught.value.path == str(tmp_path / "campaign.toml")


# Unsubscribe headers

def test_unsubscribe_headers_read_back(signed):
    for kind, data in signed.items():
        parsed = parse(data)
        assert parsed["List-Unsubscribe"] == f"<{URL}>, <mailto:{MAILTO}?subject=unsubscribe>"
        assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert parsed["Subject"] == CONTENT[kind][0]
        assert parsed["DKIM-Signature"].startswith("v=1; a=rsa-sha256; c=relaxed/relaxed;")


def test_unsubscribe_headers_values():
    assert unsubscribe_headers(URL, None) == (
        ("List-Unsubscribe", f"<{URL}>"),
        ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"))
    assert unsubscribe_headers(URL, "") == unsubscribe_headers(URL, None)
    expected = (("List-Unsubscribe", f"<{URL}>, <mailto:{MAILTO}?subject=unsubscribe>"),
                ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"))
    assert unsubscribe_headers(URL, MAILTO) == expected
    assert unsubscribe_headers(f" {URL} ", f"MAILTO:{MAILTO}") == expected


@pytest.mark.parametrize(("url", "mailto", "written"), [
    ("HTTPS://Shop.example/u/a,b", None, "<HTTPS://Shop.example/u/a%2Cb>"),
    (URL, "un+sub&x=1%@shop.example",
     f"<{URL}>, <mailto:un+sub%26x%3D1%25@shop.example?subject=unsubscribe>"),
    (URL, "jörg,ab@shop.example",
     f"<{URL}>, <mailto:j%C3%B6rg%2Cab@shop.example?subject=unsubscribe>"),
])
def test_unsubscribe_uris_are_escaped(url, mailto, written):
    assert unsubscribe_headers(url, mailto)[0] == ("List-Unsubscribe", written)


@pytest.mark.parametrize(("url", "mailto", "words"), [
    ("http://greenshop.example/u/1", None, "is not an https:// URL"),
    ("ftp://greenshop.example/u/1", None, "is not an https:// URL"),
    ("https:///u/1", None, "is not an https:// URL"),
    ("greenshop.example/u/1", None, "is not an https:// URL"),
    ("https://greenshop.example/u/a b", None, "cannot be written into a header"),
    ("https://greenshop.example/ü", None, "cannot be written into a header"),
    ("https://greenshop.example/u/<1>", None, "cannot be written into a header"),
    ("https://greenshop.example/u?a=?b", None, "cannot be written into a header"),
    ("https://greenshop.example/" + "a" * MAX_URI, None, "cannot be written into a header"),
    (URL, "not-an-address", "is not an email address"),
    (URL, "a@b c.example", "is not an email address"),
    (URL, "<a@b.example>", "is not an email address"),
    (URL, "a@b.example?subject=x", "is not an email address"),
    (URL, "a" * MAX_URI + "@b.example", "is too long"),
])
def test_unusable_unsubscribe_values_are_refused(url, mailto, words):
    with pytest.raises(HeaderError, match=re.escape(words)) as caught:
        unsubscribe_headers(url, mailto)
    assert caught.value.hint


def test_longest_unsubscribe_uris_still_make_a_valid_header(signer, rsa_key):
    url = "https://greenshop.example/" + "u" * (MAX_URI - len("https://greenshop.example/"))
    mailto = "a" * (MAX_URI - len("mailto:@b.example?subject=unsubscribe")) + "@b.example"
    headers = unsubscribe_headers(url, mailto)
    data = signer.sign(message("ascii", extra_headers=headers))
    assert max(map(len, data.split(b"\r\n"))) <= 998
    assert parse(data)["List-Unsubscribe"] == headers[0][1]
    assert len(headers[0][1]) == 2 * MAX_URI + 6
    assert verify(data, rsa_key)
