"""When things are due: cron occurrences, wall-clock times in a time zone, quiet hours.

Pure functions of time: every datetime in and out is naive UTC, like the rest of the engine,
and "now" is always a parameter. Zones are IANA names.

Wall-clock times and daylight saving time: a wall-clock time is turned into UTC with the
offset in force just before any change (Python's `fold=0`). So a time the spring change skips
moves forward by the gap (02:30 on 2026-03-29 in Europe/Berlin is 03:30 CEST, 01:30 UTC), and a
time the autumn change repeats means its first occurrence (02:30 on 2026-10-25 is 02:30 CEST,
00:30 UTC). Cron expressions follow the same rule, applied to each wall-clock tick: a daily
"30 2 * * *" runs once on both change days, never skipped and never twice; an hourly job
runs at 03:00 CEST once on the spring day (02:00 moves onto it) and once, not twice, in the
repeated hour of the autumn day.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from croniter import croniter
from croniter.croniter import CroniterBadDateError

from engine.settings import QuietHours
from engine.zones import zone, zone_problem

# Larger than any change of a zone's UTC offset; wall-clock ticks are searched this far around.
_SLACK = timedelta(hours=3)
_LATEST_OFFSET = timedelta(hours=14)       # UTC+14, Pacific/Kiritimati: first to reach a time


def validate_cron(expression: object) -> str | None:
    """Why `expression` is not a usable 5-field cron expression, or None when it is one."""
    example = "write it like \"0 9 * * MON\" (minute hour day-of-month month day-of-week)"
    if not isinstance(expression, str) or len(expression.split()) != 5:
        return f"cron {expression!r} must have 5 fields; {example}"
    if not croniter.is_valid(expression):
        return f"cron {expression!r} is not a valid cron expression; {example}"
    try:
        croniter(expression, datetime(2000, 1, 1)).get_next(datetime)
    except CroniterBadDateError:
        return f"cron {expression!r} never matches a date; {example}"
    return None


def next_tick(cron: str, timezone: str, after: datetime) -> datetime:
    """The first occurrence of `cron` in `timezone` strictly after `after` (UTC)."""
    ticks = croniter(cron, _wall(after, timezone) - _SLACK)
    best: datetime | None = None
    stop: datetime | None = None
    while True:
        wall = ticks.get_next(datetime)
        if stop is not None and wall > stop:
            return best
        moment = local_moment(wall.date(), wall.time(), timezone)
        if moment > after and (best is None or moment < best):
            best = moment
            stop = stop or wall + 2 * _SLACK    # a later wall time can still map earlier


def latest_tick(cron: str, timezone: str, at_or_before: datetime) -> datetime | None:
    """The last occurrence of `cron` in `timezone` at or before `at_or_before` (UTC)."""
    ticks = croniter(cron, _wall(at_or_before, timezone) + _SLACK)
    best: datetime | None = None
    stop: datetime | None = None
    while True:
        try:
            wall = ticks.get_prev(datetime)
        except CroniterBadDateError:
            return best
        if stop is not None and wall < stop:
            return best
        moment = local_moment(wall.date(), wall.time(), timezone)
        if moment <= at_or_before and (best is None or moment > best):
            best = moment
            stop = stop or wall - 2 * _SLACK


def due_occurrence(cron: str, timezone: str, next_due: datetime, now: datetime
                   ) -> datetime | None:
    """The one occurrence to run now: the latest tick in [next_due, now], so ticks missed
    while no worker ran collapse into one; None when next_due is still ahead or no tick
    falls in between (the expression was changed). Store next_tick(..., now) afterwards."""
    if next_due > now:
        return None
    latest = latest_tick(cron, timezone, now)
    return latest if latest is not None and latest >= next_due else None


def local_moment(day: date, at: time, timezone: str) -> datetime:
    """Wall-clock `at` on `day` in `timezone`, as UTC: a time the spring change skips moves
    forward by the gap, a time the autumn change repeats is its first occurrence."""
    wall = datetime.combine(day, at.replace(tzinfo=None), tzinfo=zone(timezone))
    return wall.astimezone(UTC).replace(tzinfo=None, fold=0)


def earliest_local_moment(day: date, at: time) -> datetime:
    """The first UTC moment at which wall-clock `at` on `day` arrives anywhere (UTC+14):
    the due time of a local-time schedule."""
    return datetime.combine(day, at.replace(tzinfo=None)) - _LATEST_OFFSET


def customer_zone(timezone: str | None, default: str) -> str:
    """The customer's own time zone when they have a valid one, else `default` (the shop's)."""
    return timezone if timezone and zone_problem(timezone) is None else default


def quiet_release(moment: datetime, timezone: str, quiet: QuietHours | None) -> datetime:
    """`moment` when it falls outside the quiet hours in `timezone`, else the end of those
    quiet hours (as UTC): a delivery is deferred, never dropped."""
    if quiet is None:
        return moment
    wall = _wall(moment, timezone)
    if wall.time() not in quiet:
        return moment
    day = wall.date()
    if quiet.start > quiet.end and wall.time() >= quiet.start:
        day += timedelta(days=1)       # quiet from the evening until the next morning
    return local_moment(day, quiet.end, timezone)


def _wall(moment: datetime, timezone: str) -> datetime:
    """Naive UTC `moment` as the wall-clock time in `timezone`."""
    return moment.replace(tzinfo=UTC).astimezone(zone(timezone)).replace(tzinfo=None)
