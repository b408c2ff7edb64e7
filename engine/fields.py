"""Parsers for the values of an import file. Each raises ValueError with a message for the user."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

Parser = Callable[[str], object]


class BadValue(ValueError):
    """A value that does not parse: what is wrong, and how to write it instead."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

_TRUE = {"true", "yes", "y", "1", "t"}
_FALSE = {"false", "no", "n", "0", "f"}
_DOTTED = re.compile(r"(\d{1,2})\.(\d{1,2})\.(\d{4})(?:[ T](.+))?$")
_SLASHED = re.compile(r"(\d{1,4})/(\d{1,2})/(\d{1,4})(?:[ T](.+))?$")
_LOCALE = re.compile(r"([a-z]{2,3})(?:[_-]([A-Za-z]{2}|\d{3}))?$")
_PLAIN_AMOUNT = re.compile(r"[0-9]{1,10}(?:\.[0-9]{2})?")  # always in range, 2 decimals at most
_COUNTRY = re.compile(r"[A-Z]{2}")
_CURRENCY = re.compile(r"[A-Z]{3}")
_WEB_URL = re.compile(r"https?://\S+$")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
MAX_MONEY = Decimal("9999999999.99")
_CENT = Decimal("0.01")


def text(max_length: int) -> Parser:
    """Stripped text of at most `max_length` characters."""
    def parse(value: str) -> str:
        value = value.strip()
        if len(value) > max_length:
            raise BadValue(f"is {len(value)} characters long, at most {max_length} fit")
        return value
    return parse


def boolean(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise BadValue(f"{value!r} is not a yes/no value", "write true or false")


def whole_number(minimum: int, maximum: int) -> Parser:
    def parse(value: str) -> int:
        try:
            number = int(value.strip())
        except ValueError:
            raise BadValue(f"{value!r} is not a whole number") from None
        if not minimum <= number <= maximum:
            raise BadValue(f"{number} is out of range ({minimum} to {maximum})")
        return number
    return parse


def money(value: str) -> Decimal:
    """12.90, 12,90, 1,234.50 or 1.234,50: the last separator is the decimal one."""
    raw = value.strip()
    if _PLAIN_AMOUNT.fullmatch(raw):
        return Decimal(raw).quantize(_CENT)
    raw = raw.replace(" ", "").replace("\u00a0", "")
    last = max(raw.rfind("."), raw.rfind(","))
    if last >= 0:
        whole, fraction = raw[:last].replace(".", "").replace(",", ""), raw[last + 1:]
        raw = f"{whole}.{fraction}"
    try:
        amount = Decimal(raw)
    except InvalidOperation:
        raise BadValue(f"{value!r} is not an amount", "write it like 12.90") from None
    if not amount.is_finite() or amount < 0 or amount > MAX_MONEY:
        raise BadValue(f"{value!r} is out of range (0 to {MAX_MONEY})")
    if amount != amount.quantize(_CENT):
        raise BadValue(f"{value!r} has more than 2 decimal places")
    return amount.quantize(_CENT)


def _with_time(day: date, rest: str | None, original: str) -> datetime:
    if not rest:
        return datetime(day.year, day.month, day.day)
    try:
        return datetime.fromisoformat(f"{day.isoformat()}T{rest.strip()}")
    except ValueError:
        raise BadValue(f"{original!r} has a time that is not HH:MM[:SS]") from None


def _common_format(value: str, month_first: bool) -> datetime | None:
    """DD.MM.YYYY, DD/MM/YYYY (MM/DD/YYYY with month_first) or YYYY/MM/DD, optional time."""
    if found := _DOTTED.match(value):
        day, month, year, rest = int(found[1]), int(found[2]), int(found[3]), found[4]
    elif found := _SLASHED.match(value):
        first, second, third, rest = int(found[1]), int(found[2]), int(found[3]), found[4]
        if len(found[1]) == 4:
            year, month, day = first, second, third
        elif month_first:
            month, day, year = first, second, third
        else:
            day, month, year = first, second, third
    else:
        return None
    try:
        return _with_time(date(year, month, day), rest, value)
    except BadValue:
        raise
    except ValueError as exc:
        hint = None if month_first or "/" not in value else \
            "for US-style MM/DD/YYYY dates pass --month-first"
        raise BadValue(f"{value!r} is not a valid date: {exc}", hint) from None


def timestamp(month_first: bool = False) -> Parser:
    """A date or date-time, stored as naive UTC; a date alone means its midnight."""
    def parse(value: str) -> datetime:
        raw = value.strip()
        try:
            moment = datetime.fromisoformat(raw)
        except ValueError:
            moment = _common_format(raw, month_first)
            if moment is None:
                raise BadValue(f"{value!r} is not a date",
                               "write it like 2026-03-01 or 2026-03-01T09:30:00Z") from None
        if moment.tzinfo is not None:
            moment = moment.astimezone(UTC)
            # combine() drops the zone several times faster than replace(tzinfo=None)
            moment = datetime.combine(moment.date(), moment.time())
        return moment
    return parse


def day(month_first: bool = False) -> Parser:
    """A calendar date without a time."""
    parse_moment = timestamp(month_first)

    def parse(value: str) -> date:
        moment = parse_moment(value)
        if moment.time() != datetime.min.time():
            raise BadValue(f"{value!r} has a time; a date alone is expected")
        return moment.date()
    return parse


def locale(value: str) -> str:
    """de_DE, de-DE or de, normalized to language_TERRITORY."""
    found = _LOCALE.match(value.strip())
    if not found:
        raise BadValue(f"{value!r} is not a locale", "write it like de_DE or en")
    return f"{found[1]}_{found[2].upper()}" if found[2] else found[1]


@cache
def _zone_exists(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def timezone(value: str) -> str:
    name = value.strip()
    if not _zone_exists(name):
        raise BadValue(f"{value!r} is not an IANA time zone", "write it like Europe/Berlin")
    return name


def country(value: str) -> str:
    code = value.strip().upper()
    if not _COUNTRY.fullmatch(code):
        raise BadValue(f"{value!r} is not a two-letter country code", "write it like DE")
    return code


def currency(value: str) -> str:
    code = value.strip().upper()
    if not _CURRENCY.fullmatch(code):
        raise BadValue(f"{value!r} is not a three-letter currency code", "write it like EUR")
    return code


def web_url(value: str) -> str:
    url = text(2048)(value)
    if not _WEB_URL.match(url):
        raise BadValue(f"{value!r} is not an http(s) URL")
    return url


def looks_like_email(address: str) -> bool:
    """A cheap syntax check; send time excludes addresses that fail it."""
    return bool(_EMAIL.fullmatch(address))
