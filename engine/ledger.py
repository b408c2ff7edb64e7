"""The send ledger: one row per run and customer, the source of truth and the work queue.

A delivery moves queued -> sending -> sent | failed | deferred. It is marked `sending` (and
committed) before its message goes to the SMTP server, and gets its outcome right after; so
after a crash the only rows in doubt are those still `sending`, which become `unknown` when
the run is resumed, and are sent again only when asked to.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    ColumnElement,
    Connection,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)

from engine.schema import customers, deliveries, runs

STATES = ("queued", "sending", "sent", "failed", "deferred", "unknown")
OPEN = ("running", "stopped")
INSERT_CHUNK = 1000
ERROR_LENGTH = 500


@dataclass(frozen=True)
class Run:
    id: int
    campaign: str
    status: str
    evaluated_at: datetime
    started_at: datetime
    finished_at: datetime | None
    excluded: dict[str, int]
    note: str | None
    occurrence: str | None = None


@dataclass(frozen=True)
class Claimed:
    """A delivery taken from the queue: who, and the Message-ID its message carries."""

    id: int
    customer_id: int
    email: str
    message_id: str


@dataclass(frozen=True)
class Result:
    """What happened to one delivery."""

    id: int
    state: str                 # sent, failed or deferred (or unknown)
    detail: str = ""


def _run(row) -> Run:
    return Run(row.id, row.campaign, row.status, row.evaluated_at, row.started_at,
               row.finished_at, dict(row.excluded or {}), row.note, row.occurrence)


def open_run(connection: Connection, campaign: str) -> Run | None:
    """The campaign's unfinished run, if there is one."""
    row = connection.execute(select(runs).where(runs.c.campaign == campaign,
                                                runs.c.status.in_(OPEN))
                             .order_by(runs.c.id.desc()).limit(1)).first()
    return _run(row) if row else None


def latest_run(connection: Connection, campaign: str) -> Run | None:
    row = connection.execute(select(runs).where(runs.c.campaign == campaign)
                             .order_by(runs.c.id.desc()).limit(1)).first()
    return _run(row) if row else None


def create_run(connection: Connection, campaign: str, evaluated_at: datetime, now: datetime,
               recipients: Iterable[tuple[int, str]], message_id, excluded,
               occurrence: str | None = None) -> Run:
    """A new run with every recipient queued (inserted in chunks, in the caller's transaction).

    `message_id(run_id, customer_id)` names each message; `excluded()` gives the counts of
    left-out members once the recipients are consumed. `occurrence` names what started it
    ("schedule:ID", "cron:TIME", "trigger:TIME"): a campaign has one run per occurrence.
    """
    run_id = connection.execute(insert(runs).values(
        campaign=campaign, status="running", evaluated_at=evaluated_at, started_at=now,
        excluded={}, occurrence=occurrence)).inserted_primary_key[0]
    chunk: list[dict] = []
    for customer_id, email in recipients:
        chunk.append({"run_id": run_id, "customer_id": customer_id, "email": email,
                      "state": "queued", "attempts": 0, "updated_at": now,
                      "message_id": message_id(run_id, customer_id)})
        if len(chunk) == INSERT_CHUNK:
            connection.execute(insert(deliveries), chunk)
            chunk = []
    if chunk:
        connection.execute(insert(deliveries), chunk)
    connection.execute(update(runs).where(runs.c.id == run_id).values(excluded=excluded()))
    return _run(connection.execute(select(runs).where(runs.c.id == run_id)).one())


def zones(connection: Connection, run_id: int) -> list[str | None]:
    """The distinct time zones of the run's recipients (None: not set)."""
    return list(connection.execute(
        select(customers.c.timezone).distinct()
        .where(customers.c.id.in_(select(deliveries.c.customer_id)
                                  .where(deliveries.c.run_id == run_id)))).scalars())


def hold(connection: Connection, run_id: int, zone: str | None, until: datetime) -> None:
    """Deliver the run's messages to customers in time zone `zone` not before `until`."""
    in_zone = customers.c.timezone.is_(None) if zone is None else customers.c.timezone == zone
    connection.execute(update(deliveries).where(
        deliveries.c.run_id == run_id,
        deliveries.c.customer_id.in_(select(customers.c.id).where(in_zone)))
        .values(not_before=until))


def discard(connection: Connection, run: Run) -> None:
    """Delete a run that got no deliveries (in the transaction that created it)."""
    connection.execute(delete(runs).where(runs.c.id == run.id))


def active_runs(connection: Connection) -> list[Run]:
    """Runs in progress (not stopped by failures, not finished), oldest first."""
    return [_run(row) for row in connection.execute(
        select(runs).where(runs.c.status == "running").order_by(runs.c.id))]


def move(connection: Connection, run: Run, from_states: Iterable[str], to_state: str,
         now: datetime) -> int:
    """Move every delivery of the run in `from_states` to `to_state`; how many moved."""
    return connection.execute(
        update(deliveries).where(deliveries.c.run_id == run.id,
                                 deliveries.c.state.in_(list(from_states)))
        .values(state=to_state, updated_at=now, lease_owner=None, lease_until=None)).rowcount


def lease(connection: Connection, run: Run, owner: str, limit: int, now: datetime,
          until: datetime) -> list[Claimed]:
    """Lease up to `limit` queued deliveries of the run that are due, in id order, to `owner`
    until `until`: nobody else takes them meanwhile. Rows leased by someone whose lease ran out
    are taken over. With PostgreSQL or MariaDB, rows another transaction is leasing right now
    are skipped (FOR UPDATE SKIP LOCKED), so any number of workers share a run."""
    free = (select(deliveries.c.id).where(*_leasable(run, now))
            .order_by(deliveries.c.id).limit(limit).with_for_update(skip_locked=True))
    ids = list(connection.execute(free).scalars())
    if not ids:
        return []
    connection.execute(update(deliveries).where(deliveries.c.id.in_(ids))
                       .values(lease_owner=owner, lease_until=until))
    return [Claimed(*row) for row in connection.execute(
        select(deliveries.c.id, deliveries.c.customer_id, deliveries.c.email,
               deliveries.c.message_id)
        .where(deliveries.c.id.in_(ids)).order_by(deliveries.c.id))]


def _leasable(run: Run, now: datetime) -> list[ColumnElement[bool]]:
    """Queued, due, and leased by nobody (or by someone whose lease ran out)."""
    return [deliveries.c.run_id == run.id, deliveries.c.state == "queued",
            or_(deliveries.c.not_before.is_(None), deliveries.c.not_before <= now),
            or_(deliveries.c.lease_owner.is_(None), deliveries.c.lease_until < now)]


def any_leasable(connection: Connection, run: Run, now: datetime) -> bool:
    """Whether a sender could lease one of the run's deliveries now."""
    return connection.execute(
        select(deliveries.c.id).where(*_leasable(run, now)).limit(1)).first() is not None


def renew(connection: Connection, owner: str, until: datetime) -> None:
    """Extend every lease `owner` holds to `until`."""
    connection.execute(update(deliveries)
                       .where(deliveries.c.lease_owner == owner,
                              deliveries.c.state.in_(["queued", "sending"]))
                       .values(lease_until=until))


def release(connection: Connection, owner: str, now: datetime) -> None:
    """Give back what `owner` leased and did not hand over: claimed rows go back to the queue."""
    mine = deliveries.c.lease_owner == owner
    connection.execute(update(deliveries).where(mine, deliveries.c.state == "sending")
                       .values(state="queued", updated_at=now))
    connection.execute(update(deliveries).where(mine, deliveries.c.state == "queued")
                       .values(lease_owner=None, lease_until=None))


def expire(connection: Connection, now: datetime, run: Run | None = None,
           alone: bool = False) -> int:
    """Deliveries left `sending` by a sender that died become `unknown`: those whose lease ran
    out or that have no lease, or, when the caller is `alone` (the only sender alive), all."""
    where = [deliveries.c.state == "sending"]
    if run is not None:
        where.append(deliveries.c.run_id == run.id)
    if not alone:
        where.append(or_(deliveries.c.lease_until.is_(None), deliveries.c.lease_until < now))
    return connection.execute(update(deliveries).where(*where)
                              .values(state="unknown", updated_at=now, lease_owner=None,
                                      lease_until=None)).rowcount


def claim(connection: Connection, items: list[Claimed], owner: str, now: datetime) -> set[int]:
    """Mark these deliveries `sending` where `owner` still holds their lease (commit before
    sending them); the ids it marked."""
    ids = [item.id for item in items]
    marked = connection.execute(
        update(deliveries).where(deliveries.c.id.in_(ids), deliveries.c.state == "queued",
                                 deliveries.c.lease_owner == owner)
        .values(state="sending", attempts=deliveries.c.attempts + 1, updated_at=now)).rowcount
    if marked == len(ids):
        return set(ids)
    return set(connection.execute(   # rare: a lease ran out and someone else took the row
        select(deliveries.c.id).where(deliveries.c.id.in_(ids), deliveries.c.state == "sending",
                                      deliveries.c.lease_owner == owner)).scalars())


def record(connection: Connection, results: Iterable[Result], now: datetime) -> None:
    """Store each delivery's outcome, which ends its lease (one statement for all of them)."""
    rows = [{"row_id": result.id, "new_state": result.state,
             "error": result.detail[:ERROR_LENGTH] or None,
             "sent": now if result.state == "sent" else None} for result in results]
    if rows:
        connection.execute(
            update(deliveries).where(deliveries.c.id == bindparam("row_id"))
            .values(state=bindparam("new_state"), last_error=bindparam("error"),
                    sent_at=bindparam("sent"), updated_at=now, lease_owner=None,
                    lease_until=None), rows)


def delivery_email(connection: Connection, delivery_id: int) -> str:
    return connection.execute(select(deliveries.c.email)
                              .where(deliveries.c.id == delivery_id)).scalar_one()


def counts(connection: Connection, run_id: int) -> dict[str, int]:
    """Deliveries of a run by state."""
    return dict(connection.execute(
        select(deliveries.c.state, func.count()).where(deliveries.c.run_id == run_id)
        .group_by(deliveries.c.state)).all())


def close(connection: Connection, run: Run, status: str, now: datetime,
          note: str | None = None) -> None:
    """Mark the run finished or stopped (with why)."""
    connection.execute(update(runs).where(runs.c.id == run.id).values(
        status=status, note=note, finished_at=now if status == "finished" else None))


def all_runs(connection: Connection) -> list[tuple[Run, dict[str, int]]]:
    """Every run, newest first, with its deliveries by state."""
    found = [_run(row) for row in connection.execute(select(runs).order_by(runs.c.id.desc()))]
    by_run: dict[int, dict[str, int]] = {run.id: {} for run in found}
    for run_id, state, count in connection.execute(
            select(deliveries.c.run_id, deliveries.c.state, func.count())
            .group_by(deliveries.c.run_id, deliveries.c.state)):
        by_run.setdefault(run_id, {})[state] = count
    return [(run, by_run[run.id]) for run in found]
