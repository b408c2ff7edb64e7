"""Money and dates written the way the customer's locale writes them (Babel)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache

from babel import Locale, UnknownLocaleError
from babel.dates import format_date
from babel.numbers import format_currency

DEFAULT_LOCALE = "en"


@lru_cache(maxsize=256)
def locale_for(tag: str | None) -> Locale:
    """The Babel locale for a tag such as 'de_DE', 'de-DE' or 'de'; English when unknown."""
    if tag:
        try:
            return Locale.parse(tag.replace("-", "_"))
        except (ValueError, UnknownLocaleError):
            pass
    return Locale.parse(DEFAULT_LOCALE)


@lru_cache(maxsize=8192)
def money(amount: Decimal | int | float, currency: str, locale: str | None) -> str:
    """'€12.50' in English, '12,50 €' in German."""
    return format_currency(Decimal(str(amount)), currency, locale=locale_for(locale))


@lru_cache(maxsize=8192)
def day(value: date | datetime, locale: str | None, style: str = "medium") -> str:
    """'Dec 1, 2026' in English, '01.12.2026' in German ('short', 'medium', 'long', 'full')."""
    if isinstance(value, datetime):
        value = value.date()
    return format_date(value, format=style, locale=locale_for(locale))
