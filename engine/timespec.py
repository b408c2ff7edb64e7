"""Points in time and windows as marketers write them: `2026-03-01`, `90 days ago`, `12 weeks`."""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

UNITS = ("days", "weeks", "months", "years")
LONGEST = {"days": 36_500, "weeks": 5_200, "months": 1_200, "years": 100}
_SPAN = re.compile(r"(\d+)\s*(day|week|month|year)s?$", re.IGNORECASE)


@dataclass(frozen=True)
class Span:
    """A length of time: `90 days`, `12 weeks`, `6 months`, `1 year`."""

    amount: int
    unit: str  # one of UNITS

    def before(self, moment: datetime) -> datetime:
        """The moment this span before `moment` (calendar months and years)."""
        if self.unit == "days":
            return moment - timedelta(days=self.amount)
        if self.unit == "weeks":
            return moment - timedelta(weeks=self.amount)
        months = self.amount * (12 if self.unit == "years" else 1)
        year, month = divmod(moment.year * 12 + moment.month - 1 - months, 12)
        day = min(moment.day, calendar.monthrange(year, month + 1)[1])
        return moment.replace(year=year, month=month + 1, day=day)

    def after(self, moment: datetime) -> datetime:
        """The moment this span after `moment` (calendar months and years)."""
        if self.unit in ("days", "weeks"):
            return moment + (moment - self.before(moment))
        months = self.amount * (12 if self.unit == "years" else 1)
        year, month = divmod(moment.year * 12 + moment.month - 1 + months, 12)
        day = min(moment.day, calendar.monthrange(year, month + 1)[1])
        return moment.replace(year=year, month=month + 1, day=day)

    def __str__(self) -> str:
        unit = self.unit if self.amount != 1 else self.unit[:-1]
        return f"{self.amount} {unit}"


@dataclass(frozen=True)
class Moment:
    """A point in time: absolute (naive UTC) or a span before now."""

    absolute: datetime | None = None
    ago: Span | None = None

    def resolve(self, now: datetime) -> datetime:
        return self.absolute if self.absolute is not None else self.ago.before(now)

    def __str__(self) -> str:
        return f"{self.ago} ago" if self.ago else self.absolute.isoformat(sep=" ")


def parse_span(value: object) -> Span:
    """`90 days` and friends; raises ValueError with a message for the user."""
    found = _SPAN.match(str(value).strip()) if isinstance(value, str) else None
    if not found:
        raise ValueError(f"{value!r} is not a length of time (write e.g. 90 days, 12 weeks, "
                         "6 months or 1 year)")
    amount, unit = int(found[1]), found[2].lower() + "s"
    if amount == 0:
        raise ValueError(f"{value!r} is an empty span; use at least 1 {unit[:-1]}")
    if amount > LONGEST[unit]:
        raise ValueError(f"{value!r} is too long; at most {LONGEST[unit]:,} {unit} (100 years)")
    return Span(amount, unit)


def parse_moment(value: object) -> Moment:
    """A date (midnight UTC), a date-time, or `N days|weeks|months|years ago`."""
    if isinstance(value, datetime):
        return Moment(absolute=_utc(value))
    if isinstance(value, date):
        return Moment(absolute=datetime(value.year, value.month, value.day))
    if isinstance(value, str):
        text = value.strip()
        if text.lower().endswith(" ago"):
            try:
                return Moment(ago=parse_span(text[:-4]))
            except ValueError:
                pass
        try:
            return Moment(absolute=_utc(datetime.fromisoformat(text)))
        except ValueError:
            pass
    raise ValueError(f"{value!r} is not a point in time (write e.g. 2026-03-01, "
                     "2026-03-01 09:00 or 90 days ago)")


def parse_now(value: str | None) -> datetime:
    """The `--now` option: a date means its midnight (UTC); no value means the current time."""
    if value is None:
        return datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    moment = parse_moment(value)
    if moment.ago is not None:
        return moment.resolve(parse_now(None))
    return moment.absolute


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment
