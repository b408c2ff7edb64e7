"""Real SMTP servers for tests: aiosmtpd on 127.0.0.1, recording what arrives, injecting faults.

    handler = Recorder(faults={"bob@example.com": temporary(times=1)})
    with smtp_server(handler) as server:
        ...  # send to smtp://127.0.0.1:{server.port}
    assert handler.received("bob@example.com") == 1

`smtp_server` passes keyword arguments on to aiosmtpd's SMTP class (`enable_SMTPUTF8`,
`tls_context`, `authenticator`...); `auth=(user, password)` sets up an authenticator and lets
AUTH work without TLS.

Notes on aiosmtpd 1.4.6 that shaped this module:
- `Controller(port=0)` binds an ephemeral port but keeps `port` 0 and then fails its own start-up
  test connection, so `_EphemeralController` reads the real port from the listening socket first.
- `Controller` turns SMTPUTF8 on by default (the SMTP class does not): pass
  `enable_SMTPUTF8=False` for a server without it.
- A `handle_EHLO` hook must set `session.host_name` itself (MAIL gets "503 send HELO first"
  otherwise), and a `handle_RCPT` hook must append to `envelope.rcpt_tos` itself.
- An authenticator's `AuthResult(success=False)` sends no reply at all (handled=True is the
  default); `handled=False` makes the server answer "535 5.7.8 Authentication credentials invalid".
- `auth_required=True` without TLS emits a UserWarning on every connection, which this project's
  `filterwarnings = error` turns into a failure: AUTH is offered but not required here.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import subprocess
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Delivery:
    """A message the server accepted (or kept, for a fault with `keep`)."""

    sender: str
    recipients: tuple[str, ...]
    content: bytes          # as received, dot-stuffing undone
    session: int            # the connection that carried it, numbered by EHLO from 1
    mail_options: tuple[str, ...]
    authenticated: bool
    tls: bool


@dataclass(frozen=True)
class Fault:
    """What goes wrong for a matching message, at RCPT or at the end of DATA."""

    stage: str = "RCPT"             # "RCPT" or "DATA"
    reply: str | None = None        # the reply to send instead of accepting
    disconnect: bool = False        # close the connection (after `reply`, if any)
    delay: float = 0.0              # seconds to wait first (then go on normally if no reply)
    keep: bool = False              # DATA only: store the message before failing
    times: int | None = None        # fire on the first `times` matching attempts; None: always


def closing(stage: str = "RCPT", times: int | None = None) -> Fault:
    return Fault(stage, "421 4.3.2 Service shutting down, closing connection", disconnect=True,
                 times=times)


def temporary(stage: str = "RCPT", times: int | None = None) -> Fault:
    return Fault(stage, "451 4.3.0 Temporary failure, try again later", times=times)


def no_storage(stage: str = "RCPT", times: int | None = None) -> Fault:
    return Fault(stage, "452 4.3.1 Insufficient system storage", times=times)


def user_unknown(stage: str = "RCPT", times: int | None = None) -> Fault:
    return Fault(stage, "550 5.1.1 User unknown", times=times)


def rejected(stage: str = "DATA", times: int | None = None) -> Fault:
    return Fault(stage, "554 5.7.1 Message rejected", times=times)


def slow(delay: float, stage: str = "RCPT", times: int | None = None) -> Fault:
    return Fault(stage, delay=delay, times=times)


def drop_during_data(times: int | None = None) -> Fault:
    """Store the message, then close the connection before replying to the end of DATA."""
    return Fault("DATA", disconnect=True, keep=True, times=times)


class Recorder:
    """An aiosmtpd handler that records every accepted message (thread-safe) and injects faults
    per recipient (`faults`) or per Nth RCPT command the server sees (`nth`, from 1)."""

    def __init__(self, faults: dict[str, Fault] | None = None,
                 nth: dict[int, Fault] | None = None) -> None:
        self.faults = faults or {}
        self.nth = nth or {}
        self.lock = threading.Lock()
        self.deliveries: list[Delivery] = []
        self.sessions = 0       # EHLO commands (a STARTTLS connection counts twice)
        self.quits = 0
        self.attempts = 0       # RCPT commands
        self.fired: Counter[str | int] = Counter()   # faults fired, by recipient or number

    def received(self, recipient: str) -> int:
        """How many stored messages went to `recipient`."""
        with self.lock:
            return sum(recipient in delivery.recipients for delivery in self.deliveries)

    def contents(self, recipient: str) -> list[bytes]:
        """The stored messages to `recipient`, as received."""
        with self.lock:
            return [d.content for d in self.deliveries if recipient in d.recipients]

    async def handle_EHLO(self, server: SMTP, session: Session, envelope: Envelope,
                          hostname: str, responses: list[str]) -> list[str]:
        session.host_name = hostname
        with self.lock:
            self.sessions += 1
            session.number = self.sessions
        return responses

    async def handle_QUIT(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self.lock:
            self.quits += 1
        return "221 Bye"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str | None:
        with self.lock:
            self.attempts += 1
            envelope.number = self.attempts
        fault = self._fault("RCPT", address, envelope.number)
        reply = await self._inject(server, fault) if fault else None
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        fault = self._fault("DATA", envelope.rcpt_tos[0], envelope.number)
        if fault and fault.keep:
            self._store(session, envelope)
        reply = await self._inject(server, fault) if fault else None
        if reply:
            return reply
        if not (fault and fault.keep):
            self._store(session, envelope)
        return "250 2.0.0 OK queued"

    def _store(self, session: Session, envelope: Envelope) -> None:
        with self.lock:
            self.deliveries.append(Delivery(
                envelope.mail_from, tuple(envelope.rcpt_tos), envelope.original_content,
                session.number, tuple(envelope.mail_options), bool(session.authenticated),
                session.ssl is not None))

    def _fault(self, stage: str, recipient: str, number: int) -> Fault | None:
        """The fault to inject now, counting it as fired."""
        with self.lock:
            for key, fault in ((recipient, self.faults.get(recipient)),
                               (number, self.nth.get(number))):
                if fault and fault.stage == stage and (fault.times is None
                                                       or self.fired[key] < fault.times):
                    self.fired[key] += 1
                    return fault
        return None

    @staticmethod
    async def _inject(server: SMTP, fault: Fault) -> str | None:
        """Wait, reply and disconnect as `fault` says; the reply to send, if any."""
        if fault.delay:
            await asyncio.sleep(fault.delay)   # cancelled when the client gives up and closes
        if not fault.disconnect:
            return fault.reply
        if fault.reply:
            await server.push(fault.reply)
        server.transport.close()
        # connection_lost() cancels this session's task; wait for that instead of replying
        await asyncio.get_running_loop().create_future()
        return None


def password_authenticator(user: str, password: str) -> Any:
    """An aiosmtpd authenticator accepting one user and password (PLAIN and LOGIN)."""
    def authenticate(server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                     auth_data: Any) -> AuthResult:
        ok = auth_data == LoginPassword(user.encode(), password.encode())
        return AuthResult(success=ok, handled=False)   # handled=False: the server sends 535
    return authenticate


@dataclass(frozen=True)
class Server:
    host: str
    port: int
    handler: Recorder

    def url(self, userinfo: str = "", scheme: str = "smtp", query: str = "") -> str:
        at = f"{userinfo}@" if userinfo else ""
        return f"{scheme}://{at}{self.host}:{self.port}{'?' + query if query else ''}"


class _EphemeralController(Controller):
    def _trigger_server(self) -> None:
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


@contextmanager
def smtp_server(handler: Recorder | None = None, *, auth: tuple[str, str] | None = None,
                ssl_context: ssl.SSLContext | None = None, **smtp_options: Any
                ) -> Iterator[Server]:
    """An aiosmtpd server on 127.0.0.1 and a free port, implicit TLS with `ssl_context`."""
    handler = handler or Recorder()
    if auth:
        smtp_options.setdefault("authenticator", password_authenticator(*auth))
        smtp_options.setdefault("auth_require_tls", False)
    controller = _EphemeralController(handler, hostname=HOST, port=0, ssl_context=ssl_context,
                                      server_hostname="localhost", **smtp_options)
    controller.start()
    try:
        yield Server(HOST, controller.port, handler)
    finally:
        controller.stop()


def free_port() -> int:
    """A port on 127.0.0.1 where nothing listens (just released by the OS)."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key, made with the openssl command."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj",
                    f"/CN={HOST}", "-addext", f"subjectAltName=IP:{HOST}", "-keyout", str(key),
                    "-out", str(cert)], check=True, capture_output=True)
    return cert, key


def server_tls(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context
