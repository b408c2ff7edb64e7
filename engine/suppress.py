"""Suppressed addresses: never mailed again (unsubscribes, bounces, complaints, by hand)."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import Connection, delete, insert, select

from engine.errors import ImportFileError
from engine.fields import looks_like_email
from engine.schema import suppressions

REASONS = ("manual", "unsubscribed", "bounced", "complaint")


@dataclass(frozen=True)
class Suppression:
    email: str
    reason: str
    note: str | None
    created_at: datetime


def suppress_address(connection: Connection, email: str, reason: str, note: str | None,
                     now: datetime) -> bool:
    """Suppress an address (lower-cased); False when it already was."""
    address = email.strip().lower()
    if connection.execute(select(suppressions.c.id)
                          .where(suppressions.c.email == address)).first():
        return False
    connection.execute(insert(suppressions).values(email=address, reason=reason,
                                                   note=(note or "")[:500] or None,
                                                   created_at=now))
    return True


def unsuppress_address(connection: Connection, email: str) -> bool:
    """Lift a suppression; False when the address was not suppressed."""
    return connection.execute(delete(suppressions).where(
        suppressions.c.email == email.strip().lower())).rowcount > 0


def listed(connection: Connection) -> Iterable[Suppression]:
    for row in connection.execute(select(suppressions).order_by(suppressions.c.email)):
        yield Suppression(row.email, row.reason, row.note, row.created_at)


def read_addresses(path: Path) -> list[str]:
    """Addresses from a file: one per line, or a CSV with an 'email' column."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ImportFileError(f"cannot read: {exc.strerror}", path=path,
                              hint="check the file name") from exc
    lines = text.splitlines()
    header = next(csv.reader(lines[:1]), [])
    if "email" in [name.strip().lower() for name in header]:
        column = [name.strip().lower() for name in header].index("email")
        rows = [(number, row[column] if len(row) > column else "") for number, row in
                enumerate(csv.reader(lines[1:]), start=2)]
    else:
        rows = list(enumerate(lines, start=1))
    problems = [f"{path}:{number}: '{value.strip()}' is not an email address"
                for number, value in rows if value.strip() and not looks_like_email(value.strip())]
    if problems:
        raise ImportFileError(f"{len(problems)} lines are not email addresses (listed above); "
                              "nothing was imported", path=path, problems=problems)
    return [value.strip() for _number, value in rows if value.strip()]
