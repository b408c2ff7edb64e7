"""SMTP delivery (engine/transport.py) against real aiosmtpd servers on 127.0.0.1, no mocks."""

from __future__ import annotations

import shutil
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from aiosmtpd.smtp import AuthResult, LoginPassword

from engine.errors import SettingsError
from engine.transport import Outcome, Outgoing, SmtpPool, SmtpSettings, TransportError
from tests.smtp_servers import (
    Fault,
    Recorder,
    Server,
    certificate,
    closing,
    drop_during_data,
    free_port,
    no_storage,
    rejected,
    server_tls,
    slow,
    smtp_server,
    temporary,
    user_unknown,
)

FAST = {"rate": 0, "timeout": 2.0, "backoff": 0.01}
SENDER = "news@shop.example"


def body(number: int) -> bytes:
    """A message whose lines starting with "." only arrive intact when dot-stuffed."""
    return (f"From: {SENDER}\r\nTo: c{number}@example.com\r\nSubject: Message {number}\r\n\r\n"
            f".\r\n..two dots\r\n.leading dot {number}\r\nlast line\r\n").encode()


def batch(count: int, start: int = 0) -> list[Outgoing]:
    return [Outgoing(n, SENDER, f"c{n}@example.com", body(n)) for n in range(start, start + count)]


def pool(server: Server, userinfo: str = "", **options: float) -> SmtpPool:
    return SmtpPool(SmtpSettings.from_url(server.url(userinfo)), **{**FAST, **options})


def send_all(smtp: SmtpPool, messages: list[Outgoing]) -> dict[int, Outcome]:
    """Every outcome by key, checking there is exactly one per message."""
    outcomes = list(smtp.send(messages))
    assert sorted(outcome.key for outcome in outcomes) == sorted(m.key for m in messages)
    return {outcome.key: outcome for outcome in outcomes}


def test_delivers_each_message_once_over_a_few_persistent_connections():
    handler = Recorder()
    messages = batch(50)
    with smtp_server(handler) as server, pool(server, connections=4) as smtp:
        outcomes = send_all(smtp, messages)
    assert {outcome.status for outcome in outcomes.values()} == {"sent"}
    assert outcomes[0].code == 250 and outcomes[0].detail == "250 2.0.0 OK queued"
    for message in messages:
        assert handler.contents(message.recipient) == [message.data]
    sessions = {delivery.session for delivery in handler.deliveries}
    assert 1 < len(sessions) <= 4
    assert handler.sessions == len(sessions)
    assert handler.quits == handler.sessions           # every connection QUIT on exit
    assert all(d.mail_options == ("BODY=8BITMIME",) and d.sender == SENDER
               for d in handler.deliveries)


def test_each_connection_carries_at_most_per_connection_messages():
    handler = Recorder()
    with smtp_server(handler) as server, pool(server, connections=1, per_connection=3) as smtp:
        outcomes = send_all(smtp, batch(10))
    assert {outcome.status for outcome in outcomes.values()} == {"sent"}
    per_session = Counter(delivery.session for delivery in handler.deliveries)
    assert sorted(per_session.values(), reverse=True) == [3, 3, 3, 1]
    assert handler.sessions == 4 and handler.quits == 4


def test_rate_limit_spaces_the_messages_across_the_pool():
    handler = Recorder()
    with smtp_server(handler) as server, pool(server, connections=3, rate=20) as smtp:
        smtp.check()
        started = time.monotonic()
        outcomes = send_all(smtp, batch(6))
        elapsed = time.monotonic() - started
    assert {outcome.status for outcome in outcomes.values()} == {"sent"}
    assert elapsed >= (6 - 1) / 20


def test_reads_the_messages_lazily():
    pulled = 0

    def many():
        nonlocal pulled
        for n in range(100_000):
            pulled += 1
            yield Outgoing(n, SENDER, f"c{n}@example.com", body(n))

    handler = Recorder()
    with smtp_server(handler) as server, pool(server, connections=2) as smtp:
        for received, _ in enumerate(smtp.send(many()), start=1):
            assert pulled <= received - 1 + 2 * 2   # at most 2 * connections in flight
            if received == 20:
                break
    assert 20 <= len(handler.deliveries) <= pulled


@pytest.mark.parametrize("fault", [
    closing(times=1), closing("DATA", times=1), temporary(times=1), temporary("DATA", times=1),
    no_storage(times=1), slow(1.5, times=1),
], ids=["421-rcpt", "421-data", "451-rcpt", "451-data", "452-rcpt", "slow-rcpt"])
def test_a_transient_fault_is_retried_and_the_message_delivered_exactly_once(fault: Fault):
    handler = Recorder(faults={"c2@example.com": fault})
    with smtp_server(handler) as server, pool(server, connections=2, timeout=0.5) as smtp:
        outcomes = send_all(smtp, batch(5))
    assert {outcome.status for outcome in outcomes.values()} == {"sent"}
    assert handler.fired["c2@example.com"] == 1
    assert [handler.received(f"c{n}@example.com") for n in range(5)] == [1, 1, 1, 1, 1]


@pytest.mark.parametrize(("fault", "stored"), [
    (drop_during_data(), 1),     # the server kept the message, then the connection dropped
    (slow(1.5, "DATA"), 0),      # the client gave up waiting; aiosmtpd then drops the session
], ids=["disconnect-after-data", "slow-reply-to-data"])
def test_a_lost_reply_to_data_is_unknown_and_never_retried(fault: Fault, stored: int):
    handler = Recorder(faults={"c1@example.com": fault})
    with smtp_server(handler) as server, pool(server, connections=2, timeout=0.5) as smtp:
        outcomes = send_all(smtp, batch(4))
    lost = outcomes.pop(1)
    assert lost.status == "deferred" and lost.code is None and not lost.unknown_user
    assert lost.detail.startswith("unknown: ")
    assert handler.fired["c1@example.com"] == 1        # the fault stays on: a retry would fire
    assert handler.received("c1@example.com") == stored
    assert {outcome.status for outcome in outcomes.values()} == {"sent"}


def test_permanent_failures_are_not_retried_and_keep_the_connection():
    handler = Recorder(faults={"c1@example.com": user_unknown(), "c2@example.com": rejected()})
    with smtp_server(handler) as server, pool(server, connections=1) as smtp:
        outcomes = send_all(smtp, batch(4))
    assert outcomes[1] == Outcome(1, "failed", 550, "550 5.1.1 User unknown", unknown_user=True)
    assert outcomes[2] == Outcome(2, "failed", 554, "554 5.7.1 Message rejected")
    assert outcomes[0].status == outcomes[3].status == "sent"
    assert handler.fired == {"c1@example.com": 1, "c2@example.com": 1}
    assert handler.received("c1@example.com") == handler.received("c2@example.com") == 0
    assert handler.sessions == 1                        # RSET, then the next message


@pytest.mark.parametrize(("reply", "unknown_user"), [
    ("550 5.1.1 <x@example.com>: Recipient address rejected", True),
    ("553 5.1.3 Error: malformed address", True),
    ("551 User not local", False),
    ("550 Requested action not taken: mailbox unavailable", True),
    ("554 no such user here", True),
    ("550 5.7.1 Message refused as spam", False),
    ("550 5.1.8 Sender domain does not exist", False),
])
def test_unknown_user_is_read_from_the_reply(reply: str, unknown_user: bool):
    handler = Recorder(faults={"c0@example.com": Fault(reply=reply)})
    with smtp_server(handler) as server, pool(server, connections=1) as smtp:
        [outcome] = smtp.send(batch(1))
    assert outcome.status == "failed" and outcome.detail == reply
    assert outcome.unknown_user is unknown_user


def test_transient_failures_end_deferred_after_the_retries_with_backoff():
    handler = Recorder(faults={"c0@example.com": temporary()})
    with smtp_server(handler) as server, pool(server, retries=2, backoff=0.05) as smtp:
        started = time.monotonic()
        [outcome] = smtp.send(batch(1))
        elapsed = time.monotonic() - started
    assert outcome == Outcome(0, "deferred", 451, "451 4.3.0 Temporary failure, try again later")
    assert handler.fired["c0@example.com"] == 3
    assert elapsed >= 0.05 + 0.1


def test_authenticates_with_percent_encoded_credentials_and_reuses_the_checked_connection():
    handler = Recorder()
    with smtp_server(handler, auth=("ann@shop.example", "p@ss:w/rd%")) as server, \
            pool(server, "ann%40shop.example:p%40ss%3Aw%2Frd%25", connections=1) as smtp:
        smtp.check()
        outcomes = send_all(smtp, batch(3))
    assert {outcome.status for outcome in outcomes.values()} == {"sent"}
    assert all(delivery.authenticated for delivery in handler.deliveries)
    assert handler.sessions == 1


def test_a_wrong_password_is_a_transport_error_naming_the_server():
    handler = Recorder()
    with smtp_server(handler, auth=("ann", "right")) as server, \
            pool(server, "ann:wrong-secret") as smtp:
        with pytest.raises(TransportError) as checked:
            smtp.check()
        outcomes: list[Outcome] = []
        with pytest.raises(TransportError) as sending:
            outcomes.extend(smtp.send(batch(3)))
    for caught in (checked.value, sending.value):
        assert caught.message == (f"127.0.0.1:{server.port}: authentication failed "
                                  "(535 5.7.8 Authentication credentials invalid)")
        assert caught.hint == "check the user and password in CAMPAIGN_SMTP_URL"
        assert "wrong-secret" not in str(caught)
    assert outcomes == [] and handler.deliveries == []


def test_an_unreachable_server_is_a_transport_error():
    port = free_port()
    with SmtpPool(SmtpSettings("127.0.0.1", port), timeout=1.0) as smtp:
        with pytest.raises(TransportError) as checked:
            smtp.check()
        outcomes: list[Outcome] = []
        with pytest.raises(TransportError):
            outcomes.extend(smtp.send(batch(2)))
    assert str(checked.value).startswith(f"127.0.0.1:{port}: cannot connect (")
    assert checked.value.hint == ("check the host and port in CAMPAIGN_SMTP_URL and that the "
                                  "server is running")
    assert outcomes == []


def test_a_transport_error_stops_the_others_and_yields_what_they_finished():
    """Logins fail once c0 is in its slow DATA and c1 failed once: the worker delivering the
    rest fails to reconnect. The c0 worker finishes (its outcome comes before the error), the
    worker waiting 10 s to retry c1 gives up."""
    handler = Recorder(faults={"c0@example.com": slow(0.5, "DATA"),
                               "c1@example.com": temporary()})

    def authenticate(server, session, envelope, mechanism, auth_data) -> AuthResult:
        revoked = handler.fired["c0@example.com"] and handler.fired["c1@example.com"]
        ok = auth_data == LoginPassword(b"ann", b"pw") and not (revoked and handler.deliveries)
        return AuthResult(success=bool(ok), handled=False)

    outcomes: list[Outcome] = []
    with smtp_server(handler, authenticator=authenticate, auth_require_tls=False) as server, \
            pool(server, "ann:pw", connections=3, per_connection=3, retries=1,
                 backoff=10) as smtp, \
            pytest.raises(TransportError, match="authentication failed"):
        outcomes.extend(smtp.send(batch(30)))
    assert handler.fired["c1@example.com"] == 1         # its retry was abandoned
    assert {outcome.status for outcome in outcomes} == {"sent"}
    assert 0 in {outcome.key for outcome in outcomes}
    delivered = sorted(r for delivery in handler.deliveries for r in delivery.recipients)
    assert delivered == sorted(f"c{outcome.key}@example.com" for outcome in outcomes)


def test_exit_closes_every_connection_after_an_error_in_the_callers_loop():
    handler = Recorder()
    with smtp_server(handler) as server:
        with pytest.raises(RuntimeError), pool(server, connections=3) as smtp:
            for _ in smtp.send(batch(12)):
                raise RuntimeError("the caller failed")
        assert handler.sessions >= 1
        assert handler.quits == handler.sessions


def test_smtputf8_addresses_are_sent_when_the_server_offers_it():
    handler = Recorder()
    message = Outgoing(1, SENDER, "jörg@example.com",
                       "To: jörg@example.com\r\n\r\nHallo Jörg\r\n".encode(), smtputf8=True)
    with smtp_server(handler) as server, pool(server) as smtp:
        [outcome] = smtp.send([message])
    assert outcome.status == "sent"
    [delivery] = handler.deliveries
    assert delivery.recipients == ("jörg@example.com",) and delivery.content == message.data
    assert delivery.mail_options == ("BODY=8BITMIME", "SMTPUTF8")


def test_smtputf8_addresses_fail_clearly_when_the_server_lacks_it():
    handler = Recorder()
    messages = [Outgoing(1, SENDER, "jörg@example.com", b"To: x\r\n\r\nHi\r\n", smtputf8=True),
                *batch(1, start=2)]
    with smtp_server(handler, enable_SMTPUTF8=False) as server, pool(server) as smtp:
        outcomes = send_all(smtp, messages)
    assert outcomes[1].status == "failed" and outcomes[1].code is None
    assert "does not offer SMTPUTF8" in outcomes[1].detail
    assert "jörg@example.com" in outcomes[1].detail and not outcomes[1].unknown_user
    assert outcomes[2].status == "sent"
    assert handler.received("jörg@example.com") == 0 and handler.received("c2@example.com") == 1


@pytest.mark.parametrize(("url", "expected"), [
    ("smtp://mail.example.com", SmtpSettings("mail.example.com", 25)),
    ("smtp://ann:pw@Mail.Example.com:587",
     SmtpSettings("mail.example.com", 587, "ann", "pw", "starttls")),
    ("smtp://ann:pw@mail.example.com:587?starttls=false",
     SmtpSettings("mail.example.com", 587, "ann", "pw", "plain")),
    ("smtp://mail.example.com:2525?starttls=TRUE",
     SmtpSettings("mail.example.com", 2525, security="starttls")),
    ("smtps://ann%40shop.example:p%2Fw%3A%40%23@mail.example.com",
     SmtpSettings("mail.example.com", 465, "ann@shop.example", "p/w:@#", "ssl")),
    ("smtps://mail.example.com:1465/?starttls=false",
     SmtpSettings("mail.example.com", 1465, security="ssl")),
    (" smtp://ann:@[::1]:25/ ", SmtpSettings("::1", 25, "ann", "", "plain")),
])
def test_smtp_url_is_parsed(url: str, expected: SmtpSettings):
    assert SmtpSettings.from_url(url) == expected


def test_the_password_is_not_in_the_repr():
    assert "secret" not in repr(SmtpSettings.from_url("smtp://ann:secret@mail.example.com"))


@pytest.mark.parametrize(("url", "problem"), [
    ("http://ann:secret@mail.example.com", "the URL must start with smtp:// or smtps://"),
    ("mail.example.com:25", "the URL must start with smtp:// or smtps://"),
    ("smtp://ann:secret@", "the URL names no host"),
    ("smtp://ann:secret@mail.example.com:99999", "the port is not a number from 1 to 65535"),
    ("smtp://ann:secret@mail.example.com:0", "the port is not a number from 1 to 65535"),
    ("smtp://ann:se#cret@mail.example.com", "the port is not a number from 1 to 65535"),
    ("smtp://ann:secret@mail.example.com/inbox", "the URL has a path or a '#' after the host"),
    ("smtp://:secret@mail.example.com", "give both a user and a password, or neither"),
    ("smtp://ann@mail.example.com", "give both a user and a password, or neither"),
    ("smtp://ann:sécret@mail.example.com", "the user and password must be ASCII"),
    ("smtp://ann:secret@mail.example.com?starttls=maybe", "the only parameter known is"),
    ("smtp://ann:secret@mail.example.com?tls=true", "the only parameter known is"),
    ("smtps://ann:secret@mail.example.com?starttls=true", "cannot use starttls=true"),
])
def test_a_bad_smtp_url_is_a_settings_error_without_the_password(url: str, problem: str):
    with pytest.raises(SettingsError) as caught:
        SmtpSettings.from_url(url)
    assert caught.value.message.startswith("CAMPAIGN_SMTP_URL: ")
    assert problem in caught.value.message
    assert "percent-encoded" in caught.value.hint
    assert "secret" not in str(caught.value) and "cret" not in str(caught.value)


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command makes the test certificate")
    return certificate(tmp_path_factory.mktemp("tls"))


def test_starttls_then_auth(tls_files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_files[0]))   # trust the test certificate
    handler = Recorder()
    with smtp_server(handler, auth=("ann", "pw"), tls_context=server_tls(*tls_files),
                     require_starttls=True, auth_require_tls=True) as server, \
            SmtpPool(SmtpSettings.from_url(server.url("ann:pw", query="starttls=true")),
                     **FAST) as smtp:
        outcomes = send_all(smtp, batch(3))
    assert {outcome.status for outcome in outcomes.values()} == {"sent"}
    assert all(d.tls and d.authenticated for d in handler.deliveries)


def test_smtps(tls_files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_files[0]))
    handler = Recorder()
    with smtp_server(handler, ssl_context=server_tls(*tls_files)) as server, \
            SmtpPool(SmtpSettings.from_url(server.url(scheme="smtps")), **FAST) as smtp:
        outcomes = send_all(smtp, batch(3))
    assert {outcome.status for outcome in outcomes.values()} == {"sent"}
    assert handler.received("c2@example.com") == 1


@pytest.mark.parametrize(("scheme", "query", "what"), [
    ("smtps", "", "TLS failed"), ("smtp", "starttls=true", "STARTTLS failed"),
])
def test_an_untrusted_certificate_is_a_transport_error(
        tls_files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, scheme: str, query: str,
        what: str):
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    tls = server_tls(*tls_files)
    options = {"ssl_context": tls} if scheme == "smtps" else {"tls_context": tls}
    with smtp_server(**options) as server, \
            SmtpPool(SmtpSettings.from_url(server.url(scheme=scheme, query=query)),
                     **FAST) as smtp, pytest.raises(TransportError) as caught:
        smtp.check()
    assert caught.value.message.startswith(f"127.0.0.1:{server.port}: {what} (")
    assert "certificate verify failed" in caught.value.message
    assert "certificate is valid" in caught.value.hint


def test_starttls_asked_for_but_not_offered_is_a_transport_error():
    with smtp_server() as server, \
            SmtpPool(SmtpSettings.from_url(server.url(query="starttls=true")), **FAST) as smtp, \
            pytest.raises(TransportError) as caught:
        smtp.check()
    assert caught.value.message == (f"127.0.0.1:{server.port}: STARTTLS failed "
                                    "(STARTTLS extension not supported by server.)")


def test_workers_share_one_rate_limit_across_sends():
    handler = Recorder()
    with smtp_server(handler) as server, pool(server, connections=2, rate=25) as smtp:
        started = time.monotonic()
        for half in (batch(3), batch(3, start=3)):
            send_all(smtp, half)
        elapsed = time.monotonic() - started
    assert elapsed >= 5 / 25 and len(handler.deliveries) == 6


def test_messages_are_read_in_the_callers_thread():
    """So that a database cursor behind `messages` is only used by the thread that made it."""
    threads: set[int] = set()

    def messages():
        for message in batch(5):
            threads.add(threading.get_ident())
            yield message

    with smtp_server() as server, pool(server, connections=2) as smtp:
        outcomes = list(smtp.send(messages()))
    assert len(outcomes) == 5 and threads == {threading.get_ident()}
