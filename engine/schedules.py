"""Stored schedules: one-off sends (`campaign schedule NAME --at ...`) and one row per recurring
campaign holding its next occurrence. The worker starts what is due; the audience is picked then,
not when the send was scheduled."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Connection, delete, insert, select, update

from engine.campaigns import load_campaign
from engine.errors import EngineError
from engine.scheduler import earliest_local_moment
from engine.schema import schedules
from engine.workspace import Workspace

SCHEDULED, STARTED, CANCELLED, RECURRING = "scheduled", "started", "cancelled", "recurring"


@dataclass(frozen=True)
class Schedule:
    id: int
    campaign: str
    due_at: datetime               # UTC
    timezone: str
    local_time: str | None         # "09:00" in each customer's own time zone
    cron: str | None
    status: str
    created_at: datetime
    started_at: datetime | None
    run_id: int | None


def _schedule(row) -> Schedule:
    return Schedule(row.id, row.campaign, row.due_at, row.timezone, row.local_time, row.cron,
                    row.status, row.created_at, row.started_at, row.run_id)


def add(connection: Connection, campaign: str, due_at: datetime, timezone: str,
        local_time: str | None, now: datetime) -> Schedule:
    """A one-off send of `campaign` at `due_at` (UTC)."""
    new_id = connection.execute(insert(schedules).values(
        campaign=campaign, due_at=due_at, timezone=timezone, local_time=local_time,
        status=SCHEDULED, created_at=now)).inserted_primary_key[0]
    return get(connection, new_id)


def get(connection: Connection, schedule_id: int) -> Schedule:
    row = connection.execute(select(schedules).where(schedules.c.id == schedule_id)).first()
    if row is None:
        raise EngineError(f"there is no schedule {schedule_id}",
                          hint="see 'campaign schedule list' for the ids")
    return _schedule(row)


def one_off(connection: Connection, everything: bool = False) -> list[Schedule]:
    """One-off schedules by due time: those still to start, or with `everything` all of them."""
    query = select(schedules).where(schedules.c.status != RECURRING)
    if not everything:
        query = query.where(schedules.c.status == SCHEDULED)
    return [_schedule(row) for row in connection.execute(
        query.order_by(schedules.c.due_at, schedules.c.id))]


def cancel(connection: Connection, schedule_id: int) -> Schedule:
    """Cancel a one-off schedule that has not started."""
    found = get(connection, schedule_id)
    if found.status == STARTED:
        raise EngineError(f"cannot cancel schedule {schedule_id}: it started at "
                          f"{found.started_at:%Y-%m-%d %H:%M} UTC as run {found.run_id}",
                          hint="see 'campaign runs'; stop a run in progress by stopping the "
                               "worker")
    if found.status == CANCELLED:
        raise EngineError(f"cannot cancel schedule {schedule_id}: it is already cancelled",
                          hint="see 'campaign schedule list --all'")
    if found.status == RECURRING:
        raise EngineError(f"cannot cancel schedule {schedule_id}: it is the recurring schedule "
                          f"of campaigns/{found.campaign}.yaml",
                          hint="remove or change 'schedule:' in the campaign file")
    connection.execute(update(schedules).where(schedules.c.id == schedule_id,
                                               schedules.c.status == SCHEDULED)
                       .values(status=CANCELLED))
    return get(connection, schedule_id)


def due(connection: Connection, now: datetime) -> list[Schedule]:
    """One-off schedules whose time has come, oldest first."""
    return [_schedule(row) for row in connection.execute(
        select(schedules).where(schedules.c.status == SCHEDULED, schedules.c.due_at <= now)
        .order_by(schedules.c.due_at, schedules.c.id))]


def take(connection: Connection, schedule: Schedule, now: datetime) -> bool:
    """Mark a due schedule started; False when another worker took it first."""
    return connection.execute(
        update(schedules).where(schedules.c.id == schedule.id, schedules.c.status == SCHEDULED)
        .values(status=STARTED, started_at=now)).rowcount == 1


def started_run(connection: Connection, schedule: Schedule, run_id: int) -> None:
    connection.execute(update(schedules).where(schedules.c.id == schedule.id)
                       .values(run_id=run_id))


def recurring(connection: Connection) -> dict[str, Schedule]:
    """The recurring schedule rows by campaign."""
    return {row.campaign: _schedule(row) for row in connection.execute(
        select(schedules).where(schedules.c.status == RECURRING))}


def set_recurring(connection: Connection, campaign: str, cron: str, timezone: str,
                  next_due: datetime, now: datetime, existing: Schedule | None) -> None:
    """Create or change a campaign's recurring schedule row (its next occurrence)."""
    values = {"cron": cron, "timezone": timezone, "due_at": next_due}
    if existing is None:
        connection.execute(insert(schedules).values(campaign=campaign, status=RECURRING,
                                                    created_at=now, **values))
    else:
        connection.execute(update(schedules).where(schedules.c.id == existing.id)
                           .values(**values))


def drop_recurring(connection: Connection, campaign: str) -> None:
    """Forget a campaign's recurring schedule (its file no longer has one)."""
    connection.execute(delete(schedules).where(schedules.c.campaign == campaign,
                                               schedules.c.status == RECURRING))


def advance(connection: Connection, schedule: Schedule, next_due: datetime, now: datetime,
            run_id: int) -> bool:
    """Move a recurring schedule past the occurrence being started; False when another worker
    moved it first."""
    return connection.execute(
        update(schedules).where(schedules.c.id == schedule.id,
                                schedules.c.due_at == schedule.due_at)
        .values(due_at=next_due, started_at=now, run_id=run_id)).rowcount == 1


def when(at: str, zone: str, local_time: str | None) -> tuple[datetime, str | None]:
    """The UTC due time of `--at AT [--tz ZONE] [--local-time HH:MM]`, and the local time.

    With a local time, AT is the day (a time in it is an error) and the due time is the moment
    that local time first comes anywhere (UTC+14); each customer's own moment is set when the
    run starts.
    """
    try:
        tz = ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise EngineError(f"--tz: unknown time zone {zone!r}",
                          hint="use an IANA name such as Europe/Berlin or America/New_York") \
            from None
    try:
        moment = datetime.fromisoformat(at.strip())
    except ValueError:
        raise EngineError(f"--at: {at!r} is not a date and time",
                          hint='write it like "2026-12-01 09:00"') from None
    if moment.tzinfo is not None:
        raise EngineError(f"--at: {at!r} carries its own offset",
                          hint="give the local time and the zone with --tz instead")
    if local_time is None:
        return moment.replace(tzinfo=tz).astimezone(UTC).replace(tzinfo=None), None
    if moment.time() != time(0):
        raise EngineError(f"--at: {at!r} has a time of day, and --local-time gives one too",
                          hint='with --local-time, --at is the day: --at 2026-12-01')
    try:
        clock = time.fromisoformat(local_time)
    except ValueError:
        raise EngineError(f"--local-time: {local_time!r} is not a time of day",
                          hint="write it like 09:00") from None
    return earliest_local_moment(moment.date(), clock), f"{clock:%H:%M}"


def due_time(workspace: Workspace, name: str, at: str, zone: str, local_time: str | None,
             now: datetime) -> tuple[datetime, str | None]:
    """When a new schedule of campaign `name` is due (UTC), and its local time; the campaign
    must load, not be a lifecycle campaign, and the time must be after `now`."""
    if load_campaign(workspace, name).trigger is not None:
        raise EngineError(f"campaign '{name}' is triggered ('trigger:' in its file); the "
                          "worker sends it to each customer when due",
                          hint="run 'campaign worker'; to send it at a set time, remove "
                               "'trigger:' from the campaign file")
    due_at, local = when(at, zone, local_time)
    if due_at <= now:
        raise EngineError(f"--at {at} ({zone}) is in the past ({due_at:%Y-%m-%d %H:%M} UTC)",
                          hint="give a later time")
    return due_at, local
