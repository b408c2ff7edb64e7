"""Who is sending: every `campaign send` and `campaign worker` process registers as a sender,
keeps a heartbeat (which also renews its delivery leases), and signs off when it stops.

On SQLite one sender at a time: it holds an exclusive lock on a file beside the database, which
the operating system releases when the process ends, however it ends. Holding it, a sender
knows it is the only one alive, so anything left `sending` belongs to a sender that died.
On PostgreSQL and MariaDB any number of senders share the work through leases (engine.ledger).
"""

from __future__ import annotations

import fcntl
import os
import secrets
import socket
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO

from sqlalchemy import Engine, insert, select, update

from engine import ledger
from engine.errors import EngineError
from engine.schema import workers

LEASE = timedelta(seconds=60)


class SenderBusyError(EngineError):
    """Another sender holds this SQLite database."""


@dataclass
class Sender:
    """This process, sending: its id (the owner of its leases) and how long leases last."""

    id: str
    lease: timedelta
    alone: bool                     # holds the SQLite lock: no other sender is alive
    sent: int = 0
    _lock: IO[bytes] | None = field(default=None, repr=False)

    def lease_end(self, now: datetime) -> datetime:
        return now + self.lease


def _lock_path(engine: Engine) -> Path | None:
    url = engine.url
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(f"{url.database}-sender.lock")


def register(engine: Engine, now: datetime, lease: timedelta = LEASE) -> Sender:
    """Sign this process in as a sender; on SQLite, raise SenderBusyError if one is running."""
    sender_id = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
    lock = None
    path = _lock_path(engine)
    if path is not None:
        lock = path.open("ab")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise SenderBusyError(
                f"{engine.url.database}: {_busy_with(engine, now, lease)} is sending on this "
                "SQLite database; SQLite allows one sender at a time",
                hint="wait for it to finish or stop it (Ctrl+C, or SIGTERM for a worker); to "
                     "run several workers, use PostgreSQL") from None
    with engine.begin() as connection:
        connection.execute(insert(workers).values(
            id=sender_id, host=socket.gethostname(), pid=os.getpid(), started_at=now,
            heartbeat_at=now, sent=0))
    return Sender(sender_id, lease, alone=lock is not None, _lock=lock)


def _busy_with(engine: Engine, now: datetime, lease: timedelta) -> str:
    with engine.connect() as connection:
        row = connection.execute(
            select(workers.c.host, workers.c.pid, workers.c.started_at)
            .where(workers.c.stopped_at.is_(None), workers.c.heartbeat_at >= now - lease)
            .order_by(workers.c.heartbeat_at.desc()).limit(1)).first()
    if row is None:
        return "another process"
    return f"process {row.pid} on {row.host} (since {row.started_at:%Y-%m-%d %H:%M} UTC)"


def heartbeat(engine: Engine, sender: Sender, now: datetime) -> None:
    """Say this sender is alive, and extend its leases."""
    with engine.begin() as connection:
        connection.execute(update(workers).where(workers.c.id == sender.id)
                           .values(heartbeat_at=now, sent=sender.sent))
        ledger.renew(connection, sender.id, sender.lease_end(now))


def sign_off(engine: Engine, sender: Sender, now: datetime) -> None:
    """Give back unsent leases, record the stop, and let the next sender in."""
    try:
        with engine.begin() as connection:
            ledger.release(connection, sender.id, now)
            connection.execute(update(workers).where(workers.c.id == sender.id)
                               .values(heartbeat_at=now, stopped_at=now, sent=sender.sent))
    finally:
        if sender._lock is not None:
            sender._lock.close()
            sender._lock = None


def alive(engine: Engine, now: datetime, lease: timedelta = LEASE) -> list:
    """Senders whose heartbeat is recent: id, host, pid, started_at, heartbeat_at, sent."""
    with engine.connect() as connection:
        return list(connection.execute(
            select(workers).where(workers.c.stopped_at.is_(None),
                                  workers.c.heartbeat_at >= now - lease)
            .order_by(workers.c.started_at)))
