"""The `schedule:` and `trigger:` blocks of a campaign file: when it goes out by itself.

```yaml
schedule: {cron: "0 9 * * MON", timezone: Europe/Berlin}   # timezone: default [shop] timezone
trigger: {after: order, wait: 7 days}          # also last_order, signed_up; wait optional
trigger: {on: birthday}                         # both take catch_up: 3 days (the default)
```
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from ruamel.yaml.comments import CommentedMap

from engine.scheduler import validate_cron
from engine.segments.parser import describe, suggest
from engine.timespec import Span, parse_span
from engine.yamlfile import Position, key_position, value_position
from engine.zones import zone_problem

AFTER_EVENTS = ("order", "last_order", "signed_up")
ON_EVENTS = ("birthday",)
EVENTS = AFTER_EVENTS + ON_EVENTS
SCHEDULE_KEYS = ("cron", "timezone")
TRIGGER_KEYS = ("after", "on", "wait", "catch_up")
DEFAULT_CATCH_UP = Span(3, "days")
LONGEST_CATCH_UP = {"days": 31, "weeks": 4, "months": 1, "years": 0}
SCHEDULE_EXAMPLE = '{cron: "0 9 * * MON", timezone: Europe/Berlin}'
TRIGGER_EXAMPLE = "{after: order, wait: 7 days} or {on: birthday}"

Fail = Callable[[Position, str], object]


@dataclass(frozen=True)
class Recurrence:
    """A recurring campaign: each occurrence of `cron` in `timezone` is its own run."""

    cron: str
    timezone: str


@dataclass(frozen=True)
class Trigger:
    """A lifecycle campaign: sent to each customer once per `event`, `wait` after it.

    Events due longer than `catch_up` ago are never sent, so a new trigger does not mail the
    whole history and a worker that was down for less than `catch_up` catches up."""

    event: str                 # one of EVENTS
    wait: Span | None          # None: due at the event itself (always None for birthday)
    catch_up: Span = DEFAULT_CATCH_UP

    def due(self, event_at: datetime) -> datetime:
        """When an event that happened at `event_at` is due: `wait` later, or, when that day
        does not exist in the month it lands in (31 January + 1 month), the next month's start."""
        if self.wait is None:
            return event_at
        due = self.wait.after(event_at)
        if self.wait.before(due) < event_at:
            due = (due.replace(day=1) + timedelta(days=32)).replace(day=1, hour=0, minute=0,
                                                                    second=0, microsecond=0)
        return due


def read_schedule(value: object, where: Position, fail: Fail, default_zone: str
                  ) -> Recurrence | None:
    """`schedule: {cron: ..., timezone: ...}`, or None with the problems reported to `fail`."""
    if not isinstance(value, CommentedMap):
        fail(where, f"'schedule' takes {SCHEDULE_EXAMPLE}, found {describe(value)}")
        return None
    _unknown(value, where, fail, SCHEDULE_KEYS, "schedule option", SCHEDULE_EXAMPLE)
    if "cron" not in value:
        fail(where, f"'schedule' needs 'cron'; write it as {SCHEDULE_EXAMPLE}")
        return None
    cron = value["cron"]
    problem = validate_cron(cron)
    if problem:
        fail(value_position(value, "cron", where), f"schedule {problem}")
    timezone = value.get("timezone", default_zone)
    zone = zone_problem(timezone)
    if zone:
        fail(value_position(value, "timezone", where),
             f"schedule timezone {zone}; write it like Europe/Berlin or UTC")
    return None if problem or zone else Recurrence(" ".join(cron.split()), timezone)


def read_trigger(value: object, where: Position, fail: Fail) -> Trigger | None:
    """`trigger: {after: EVENT, wait: SPAN}` or `{on: birthday}`, or None with the problems
    reported to `fail`."""
    if not isinstance(value, CommentedMap):
        fail(where, f"'trigger' takes {TRIGGER_EXAMPLE}, found {describe(value)}")
        return None
    problems = _unknown(value, where, fail, TRIGGER_KEYS, "trigger option", TRIGGER_EXAMPLE)
    event = _event(value, where, fail)
    wait = _span(value, "wait", None, where, fail)
    catch_up = _span(value, "catch_up", DEFAULT_CATCH_UP, where, fail)
    if event in ON_EVENTS and "wait" in value:
        fail(key_position(value, "wait", where),
             f"'{event}' triggers on the day itself and takes no 'wait'; remove it")
        return None
    if catch_up and catch_up.amount > LONGEST_CATCH_UP[catch_up.unit]:
        fail(value_position(value, "catch_up", where),
             f"trigger 'catch_up' {catch_up} is too long; at most 31 days (events due longer "
             "ago are not sent)")
        return None
    if problems or event is None or (wait is None and "wait" in value) or catch_up is None:
        return None
    return Trigger(event, wait, catch_up)


def _event(value: CommentedMap, where: Position, fail: Fail) -> str | None:
    if ("after" in value) == ("on" in value):
        which = "not both" if "after" in value else "one of them"
        fail(where, f"'trigger' takes 'after' or 'on', {which}; write it as {TRIGGER_EXAMPLE}")
        return None
    key, known = ("after", AFTER_EVENTS) if "after" in value else ("on", ON_EVENTS)
    event = value[key]
    if event in known:
        return event
    at = value_position(value, key, where)
    if event in EVENTS:
        other = "on" if key == "after" else "after"
        fail(at, f"write '{event}' as {{{other}: {event}}}, not {{{key}: {event}}}")
    else:
        fail(at, f"unknown trigger event {event!r}{suggest(event, EVENTS)}; '{key}' takes "
                 f"{', '.join(known)}")
    return None


def _span(value: CommentedMap, key: str, default: Span | None, where: Position,
          fail: Fail) -> Span | None:
    if key not in value:
        return default
    try:
        return parse_span(value[key])
    except ValueError as exc:
        fail(value_position(value, key, where), f"trigger '{key}': {exc}")
        return None


def _unknown(value: CommentedMap, where: Position, fail: Fail, known: tuple[str, ...],
             noun: str, example: str) -> bool:
    """Report every key not in `known`; True when there was one."""
    found = False
    for key in value:
        if key not in known:
            fail(key_position(value, key, where),
                 f"unknown {noun} '{key}'{suggest(key, known)}; write it as {example}")
            found = True
    return found
