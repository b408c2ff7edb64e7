"""Time zones by IANA name (`Europe/Berlin`), checked with a suggestion for a misspelt one."""

from __future__ import annotations

import difflib
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones


@cache
def zone(name: str) -> ZoneInfo:
    """The zone called `name`; raises ValueError for an unknown name."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValueError(zone_problem(name)) from None


def zone_problem(name: object) -> str | None:
    """Why `name` is not a time zone (suggesting the closest one), or None when it is one."""
    if isinstance(name, str) and name in _names():
        return None
    text = str(name)
    by_lower = {known.lower(): known for known in _names()}
    close = difflib.get_close_matches(text.lower(), by_lower, n=1, cutoff=0.6)
    hint = f" (did you mean '{by_lower[close[0]]}'?)" if close else ""
    return f"{name!r} is not an IANA time zone{hint}"


@cache
def _names() -> frozenset[str]:
    return frozenset(available_timezones() | {"UTC"})
