"""Cron occurrences, wall-clock times and quiet hours across time zones and DST changes."""

from __future__ import annotations

from datetime import date, datetime, time

import pytest

from engine.scheduler import (
    customer_zone,
    due_occurrence,
    earliest_local_moment,
    latest_tick,
    local_moment,
    next_tick,
    quiet_release,
    validate_cron,
)
from engine.settings import QuietHours

BERLIN = "Europe/Berlin"
NEW_YORK = "America/New_York"


def ticks(cron: str, zone: str, after: datetime, count: int) -> list[str]:
    found = []
    for _ in range(count):
        after = next_tick(cron, zone, after)
        found.append(after.strftime("%m-%d %H:%M"))
    return found


@pytest.mark.parametrize(("zone", "start", "expected"), [
    # Berlin: CET (UTC+1) until 29 March, CEST (UTC+2) until 25 October
    (BERLIN, datetime(2026, 3, 27, 12), ["03-28 08:00", "03-29 07:00", "03-30 07:00"]),
    (BERLIN, datetime(2026, 10, 23, 12), ["10-24 07:00", "10-25 08:00", "10-26 08:00"]),
    # New York: EST (UTC-5) until 8 March, EDT (UTC-4) until 1 November
    (NEW_YORK, datetime(2026, 3, 6, 18), ["03-07 14:00", "03-08 13:00", "03-09 13:00"]),
    (NEW_YORK, datetime(2026, 10, 30, 18), ["10-31 13:00", "11-01 14:00", "11-02 14:00"]),
])
def test_a_daily_tick_stays_at_the_same_wall_clock_time_across_dst(zone, start, expected):
    assert ticks("0 9 * * *", zone, start, 3) == expected


@pytest.mark.parametrize(("zone", "start", "expected"), [
    # 02:30 does not exist on the spring day: it runs at 03:30 local, once
    (BERLIN, datetime(2026, 3, 28, 12), ["03-29 01:30", "03-30 00:30"]),
    (NEW_YORK, datetime(2026, 3, 7, 12), ["03-08 07:30", "03-09 06:30"]),
    # 02:30 (Berlin) / 01:30 (New York) happens twice on the autumn day: the first one runs
    (BERLIN, datetime(2026, 10, 24, 12), ["10-25 00:30", "10-26 01:30"]),
])
def test_a_time_the_change_skips_or_repeats_runs_once(zone, start, expected):
    cron = "30 1 * * *" if zone == NEW_YORK and start.month == 10 else "30 2 * * *"
    assert ticks(cron, zone, start, 2) == expected


def test_the_repeated_autumn_hour_of_new_york_runs_once():
    assert ticks("30 1 * * *", NEW_YORK, datetime(2026, 10, 31, 12), 2) == [
        "11-01 05:30", "11-02 06:30"]


def test_an_hourly_cron_has_no_duplicate_around_the_changes():
    assert ticks("0 * * * *", BERLIN, datetime(2026, 3, 28, 23, 30), 4) == [
        "03-29 00:00", "03-29 01:00", "03-29 02:00", "03-29 03:00"]
    assert ticks("0 * * * *", BERLIN, datetime(2026, 10, 24, 23, 30), 3) == [
        "10-25 00:00", "10-25 02:00", "10-25 03:00"]


def test_weekly_cron_with_day_names_and_strictly_after():
    monday_nine = datetime(2026, 12, 7, 8)          # Monday 09:00 in Berlin (CET)
    assert next_tick("0 9 * * MON", BERLIN, monday_nine - datetime.resolution) == monday_nine
    assert next_tick("0 9 * * MON", BERLIN, monday_nine) == datetime(2026, 12, 14, 8)


def test_latest_tick_is_at_or_before():
    assert latest_tick("0 9 * * MON", BERLIN, datetime(2026, 12, 7, 8)) == datetime(2026, 12, 7, 8)
    assert latest_tick("0 9 * * MON", BERLIN, datetime(2026, 12, 7, 7, 59)) == \
        datetime(2026, 11, 30, 8)
    assert latest_tick("30 2 * * *", BERLIN, datetime(2026, 10, 25, 1, 29)) == \
        datetime(2026, 10, 25, 0, 30)
    assert latest_tick("30 2 * * *", BERLIN, datetime(2026, 3, 29, 1, 30)) == \
        datetime(2026, 3, 29, 1, 30)


def test_missed_ticks_collapse_into_the_latest_one():
    # daily at 09:00 Berlin; the worker was down from 1 to 5 March
    due = datetime(2026, 3, 1, 8)
    assert due_occurrence("0 9 * * *", BERLIN, due, datetime(2026, 3, 5, 12)) == \
        datetime(2026, 3, 5, 8)
    assert due_occurrence("0 9 * * *", BERLIN, due, datetime(2026, 3, 5, 7)) == \
        datetime(2026, 3, 4, 8)
    assert due_occurrence("0 9 * * *", BERLIN, due, due) == due
    assert due_occurrence("0 9 * * *", BERLIN, due, datetime(2026, 3, 1, 7, 59)) is None


def test_no_occurrence_when_the_cron_changed_and_no_tick_is_in_between():
    # stored for a daily cron; the file now says Mondays only, and no Monday passed
    due = datetime(2026, 12, 8, 8)                   # a Tuesday
    assert due_occurrence("0 9 * * MON", BERLIN, due, datetime(2026, 12, 10, 12)) is None


@pytest.mark.parametrize(("expression", "problem"), [
    ("0 9 * * MON", None),
    ("*/15 8-18 * * 1-5", None),
    ("0 9 * *", "cron '0 9 * *' must have 5 fields"),
    ("0 0 9 * * MON", "cron '0 0 9 * * MON' must have 5 fields"),
    ("0 25 * * *", "cron '0 25 * * *' is not a valid cron expression"),
    ("0 9 * * MOON", "cron '0 9 * * MOON' is not a valid cron expression"),
    ("0 0 30 2 *", "cron '0 0 30 2 *' never matches a date"),
    (9, "cron 9 must have 5 fields"),
])
def test_validate_cron(expression, problem):
    found = validate_cron(expression)
    if problem is None:
        assert found is None
    else:
        assert found == f"{problem}; write it like \"0 9 * * MON\" (minute hour day-of-month " \
                        "month day-of-week)"


@pytest.mark.parametrize(("day", "at", "zone", "expected"), [
    (date(2026, 7, 1), time(9), BERLIN, datetime(2026, 7, 1, 7)),
    (date(2026, 12, 1), time(9), BERLIN, datetime(2026, 12, 1, 8)),
    (date(2026, 3, 29), time(2, 30), BERLIN, datetime(2026, 3, 29, 1, 30)),    # 03:30 CEST
    (date(2026, 10, 25), time(2, 30), BERLIN, datetime(2026, 10, 25, 0, 30)),  # first 02:30
    (date(2026, 3, 8), time(2, 30), NEW_YORK, datetime(2026, 3, 8, 7, 30)),    # 03:30 EDT
    (date(2026, 11, 1), time(1, 30), NEW_YORK, datetime(2026, 11, 1, 5, 30)),  # first 01:30
    (date(2026, 12, 1), time(9), "Pacific/Kiritimati", datetime(2026, 11, 30, 19)),
    (date(2026, 12, 1), time(9), "UTC", datetime(2026, 12, 1, 9)),
])
def test_local_moment(day, at, zone, expected):
    assert local_moment(day, at, zone) == expected


def test_earliest_local_moment_is_when_the_first_zone_reaches_it():
    day, at = date(2026, 12, 1), time(9)
    earliest = earliest_local_moment(day, at)
    assert earliest == datetime(2026, 11, 30, 19)
    for zone in (BERLIN, NEW_YORK, "Pacific/Kiritimati", "Pacific/Pago_Pago", "Asia/Kolkata"):
        assert local_moment(day, at, zone) >= earliest


def test_a_customer_without_a_valid_zone_uses_the_shop_default():
    assert customer_zone(NEW_YORK, BERLIN) == NEW_YORK
    assert customer_zone(None, BERLIN) == BERLIN
    assert customer_zone("", BERLIN) == BERLIN
    assert customer_zone("Mars/Olympus", BERLIN) == BERLIN
    day, at = date(2026, 12, 1), time(9)
    assert local_moment(day, at, customer_zone(None, BERLIN)) == datetime(2026, 12, 1, 8)
    assert local_moment(day, at, customer_zone(NEW_YORK, BERLIN)) == datetime(2026, 12, 1, 14)


NIGHT = QuietHours(time(21), time(8))          # wraps midnight
LUNCH = QuietHours(time(12), time(13, 30))     # within one day


@pytest.mark.parametrize(("moment", "zone", "quiet", "expected"), [
    (datetime(2026, 12, 1, 10), BERLIN, NIGHT, datetime(2026, 12, 1, 10)),      # 11:00 local
    (datetime(2026, 12, 1, 20), BERLIN, NIGHT, datetime(2026, 12, 2, 7)),       # 21:00 -> 08:00
    (datetime(2026, 12, 1, 19, 59), BERLIN, NIGHT, datetime(2026, 12, 1, 19, 59)),
    (datetime(2026, 12, 1, 23), BERLIN, NIGHT, datetime(2026, 12, 2, 7)),       # after midnight
    (datetime(2026, 12, 1, 6, 59), BERLIN, NIGHT, datetime(2026, 12, 1, 7)),    # 07:59 local
    (datetime(2026, 12, 1, 7), BERLIN, NIGHT, datetime(2026, 12, 1, 7)),        # 08:00: allowed
    # the same moment, a customer in New York: 15:00 there, not quiet
    (datetime(2026, 12, 1, 20), NEW_YORK, NIGHT, datetime(2026, 12, 1, 20)),
    # 03:00 UTC is 22:00 in New York: until 08:00 EST = 13:00 UTC
    (datetime(2026, 12, 1, 3), NEW_YORK, NIGHT, datetime(2026, 12, 1, 13)),
    # quiet night across the spring change: 08:00 CEST = 06:00 UTC
    (datetime(2026, 3, 28, 22), BERLIN, NIGHT, datetime(2026, 3, 29, 6)),
    (datetime(2026, 12, 1, 11, 15), BERLIN, LUNCH, datetime(2026, 12, 1, 12, 30)),
    (datetime(2026, 12, 1, 12, 30), BERLIN, LUNCH, datetime(2026, 12, 1, 12, 30)),
    (datetime(2026, 12, 1, 20), BERLIN, None, datetime(2026, 12, 1, 20)),
])
def test_quiet_hours_defer_to_their_end(moment, zone, quiet, expected):
    assert quiet_release(moment, zone, quiet) == expected
