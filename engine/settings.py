"""campaign.toml and the environment, validated once into immutable typed settings."""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time
from decimal import Decimal, InvalidOperation
from email.utils import parseaddr
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from engine.errors import SettingsError
from engine.timespec import Span, parse_span
from engine.zones import zone_problem

SETTINGS_FILE = "campaign.toml"

# Driver chosen when a URL names only the database kind.
_DEFAULT_DRIVERS = {"postgresql": "psycopg", "postgres": "psycopg", "mysql": "pymysql",
                    "mariadb": "pymysql"}
_SECRET_KEYS = {"smtp_url", "secret_key", "dkim_key", "password", "smtp_password"}


@dataclass(frozen=True)
class Shop:
    name: str = "My Shop"
    postal_address: str = ""
    base_url: str = "http://localhost:8080"
    currency: str = "EUR"
    timezone: str = "UTC"            # for schedules, cron and customers without a zone


@dataclass(frozen=True)
class QuietHours:
    """No email is delivered from `start` until `end` in the customer's time zone; may wrap
    midnight (21:00-08:00). Deliveries falling inside wait until `end`."""

    start: time
    end: time

    def __contains__(self, moment: time) -> bool:
        if self.start < self.end:
            return self.start <= moment < self.end
        return moment >= self.start or moment < self.end

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


@dataclass(frozen=True)
class Sender:
    from_address: str = ""
    unsubscribe_mailto: str = ""      # List-Unsubscribe mailto: address (default: the sender)


@dataclass(frozen=True)
class Sending:
    rate: float = 50.0
    connections: int = 4
    per_connection: int = 100         # messages per SMTP connection before it is renewed
    timeout: float = 30.0             # seconds for connecting and for every SMTP command
    stop_after_failures: int = 20     # consecutive failed messages that stop a run
    cap_emails: int | None = None     # frequency cap: at most this many campaign emails...
    cap_within: Span | None = None    # ...per customer within this span
    quiet_hours: QuietHours | None = None


@dataclass(frozen=True)
class Tracking:
    """What `campaign send` adds to links and emails to learn what customers do with them."""

    opens: bool = True                # an open pixel in the HTML part
    clicks: bool = True               # links go through a signed click redirect
    utm: bool = True                  # UTM parameters on links to the shop's own site
    utm_source: str = "newsletter"
    utm_medium: str = "email"
    store_ip: bool = False            # keep the client's IP address in open and click events


@dataclass(frozen=True)
class Dkim:
    domain: str = ""
    selector: str = ""


@dataclass(frozen=True)
class Tier:
    """A loyalty tier: at least this spend and/or this many orders (optionally within a span)."""

    name: str
    spent: Decimal | None = None
    orders: int | None = None
    within: Span | None = None


@dataclass(frozen=True)
class Settings:
    """Everything configurable about a workspace. Secrets come only from the environment."""

    root: Path
    database_url: URL
    sample_data: Path | None
    shop: Shop
    sender: Sender
    sending: Sending
    dkim: Dkim
    tiers: tuple[Tier, ...] = ()
    tracking: Tracking = Tracking()
    smtp_url: str | None = field(default=None, repr=False)
    secret_key: str | None = field(default=None, repr=False)
    dkim_key_path: Path | None = None


class _TomlReader:
    """Typed access to a parsed TOML table that reports bad values with file and line."""

    def __init__(self, path: Path, text: str, data: Mapping[str, Any]) -> None:
        self.path = path
        self.lines = text.splitlines()
        self.data = data

    def line_of(self, section: str | None, key: str | None = None) -> int | None:
        """The 1-based line where `[section]` (or `key` inside it) is written."""
        in_section = section is None
        for number, raw in enumerate(self.lines, start=1):
            line = raw.strip()
            if line.startswith("["):
                if section is None and line.strip("[] ") == key:
                    return number
                in_section = line.strip("[] ") == section
                if in_section and key is None:
                    return number
                continue
            if in_section and key and re.match(rf'"?{re.escape(key)}"?\s*=', line):
                return number
        return None

    def error(self, section: str | None, key: str | None, message: str, hint: str) -> SettingsError:
        return SettingsError(message, path=self.path, line=self.line_of(section, key), hint=hint)

    def array_table_line(self, section: str, index: int) -> int | None:
        """The line of the `index`-th `[[section]]` header."""
        headers = [number for number, raw in enumerate(self.lines, start=1)
                   if raw.strip().replace(" ", "") == f"[[{section}]]"]
        return headers[index] if index < len(headers) else None

    def table(self, section: str, allowed: set[str]) -> Mapping[str, Any]:
        table = self.data.get(section, {})
        if not isinstance(table, Mapping):
            raise self.error(None, section, f"'{section}' must be a table",
                             f"write it as [{section}] followed by key = value lines")
        self.reject_unknown(section, table, allowed)
        return table

    def reject_unknown(self, section: str | None, table: Mapping[str, Any],
                       allowed: set[str]) -> None:
        for key in table:
            if key in allowed:
                continue
            where = f"[{section}]" if section else "the top level"
            if key in _SECRET_KEYS:
                raise self.error(section, key, f"'{key}' is a secret and cannot live in {where}",
                                 "set it in the environment instead (see CAMPAIGN_* variables)")
            close = difflib.get_close_matches(key, sorted(allowed), n=1)
            hint = (f"did you mean '{close[0]}'?" if close
                    else f"known keys: {', '.join(sorted(allowed))}")
            raise self.error(section, key, f"unknown setting '{key}' in {where}", hint)

    def text(self, section: str | None, table: Mapping[str, Any], key: str, default: str) -> str:
        value = table.get(key, default)
        if not isinstance(value, str):
            raise self.error(section, key, f"'{key}' must be a string",
                             f'write it as {key} = "..."')
        return value

    def number(self, section: str, table: Mapping[str, Any], key: str, default: float,
               kind: type = float) -> Any:
        value = table.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0 \
                or (kind is int and not isinstance(value, int)):
            noun = "a whole number" if kind is int else "a number"
            raise self.error(section, key, f"'{key}' must be {noun} above 0, not {value!r}",
                             f"for example {key} = {kind(default)}")
        return kind(value)

    def flag(self, section: str, table: Mapping[str, Any], key: str, default: bool) -> bool:
        value = table.get(key, default)
        if not isinstance(value, bool):
            raise self.error(section, key, f"'{key}' must be true or false, not {value!r}",
                             f"write it as {key} = {str(default).lower()}")
        return value


def load_settings(root: Path, environ: Mapping[str, str] | None = None) -> Settings:
    """Read `root/campaign.toml`, apply environment overrides, validate everything."""
    env = os.environ if environ is None else environ
    path = root / SETTINGS_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SettingsError(f"cannot read settings: {exc.strerror}", path=path,
                            hint="create it with 'campaign init'") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
        message = re.sub(r"\s*\(at line.*\)$", "", str(exc))
        raise SettingsError(f"not valid TOML: {message}", path=path,
                            line=int(found[1]) if found else None,
                            column=int(found[2]) if found else None,
                            hint="fix the syntax (strings need quotes, tables are [name])") from exc
    reader = _TomlReader(path, text, data)
    reader.reject_unknown(None, data, {"database_url", "sample_data", "shop", "sender",
                                       "sending", "dkim", "tiers", "tracking"})
    return Settings(
        root=root,
        database_url=_database_url(reader, env, root),
        sample_data=_sample_data(reader, root),
        shop=_shop(reader),
        sender=_sender(reader),
        sending=_sending(reader),
        dkim=_dkim(reader),
        tiers=_tiers(reader),
        tracking=_tracking(reader),
        smtp_url=env.get("CAMPAIGN_SMTP_URL") or None,
        secret_key=env.get("CAMPAIGN_SECRET_KEY") or None,
        dkim_key_path=Path(env["CAMPAIGN_DKIM_KEY"]) if env.get("CAMPAIGN_DKIM_KEY") else None,
    )


def _database_url(reader: _TomlReader, env: Mapping[str, str], root: Path) -> URL:
    from_env = env.get("CAMPAIGN_DATABASE_URL")
    raw = from_env or reader.text(None, reader.data, "database_url", "sqlite:///campaign.db")
    try:
        url = make_url(raw)
    except ArgumentError as exc:
        where = "CAMPAIGN_DATABASE_URL" if from_env else None
        message = f"database URL {raw!r} is not a valid URL"
        hint = "use e.g. sqlite:///campaign.db or postgresql://user@host/db"
        if where:
            raise SettingsError(f"{where}: {message}", hint=hint) from exc
        raise reader.error(None, "database_url", message, hint) from exc
    if url.drivername in _DEFAULT_DRIVERS:
        url = url.set(drivername=f"{url.drivername}+{_DEFAULT_DRIVERS[url.drivername]}")
    if url.drivername.startswith("sqlite") and url.database and url.database != ":memory:":
        url = url.set(database=str((root / url.database).resolve()))
    return url


def _sample_data(reader: _TomlReader, root: Path) -> Path | None:
    folder = reader.text(None, reader.data, "sample_data", "")
    return (root / folder) if folder else None


def _shop(reader: _TomlReader) -> Shop:
    table = reader.table("shop", {"name", "postal_address", "base_url", "currency", "timezone"})
    base_url = reader.text("shop", table, "base_url", Shop.base_url).rstrip("/")
    if not re.match(r"https?://[^\s/]+", base_url):
        raise reader.error("shop", "base_url", f"base_url {base_url!r} is not an http(s) URL",
                           'write it as base_url = "https://shop.example"')
    currency = reader.text("shop", table, "currency", Shop.currency)
    if not re.fullmatch(r"[A-Z]{3}", currency):
        raise reader.error("shop", "currency", f"currency {currency!r} is not an ISO 4217 code",
                           'write it as currency = "EUR"')
    timezone = reader.text("shop", table, "timezone", Shop.timezone)
    problem = zone_problem(timezone)
    if problem:
        raise reader.error("shop", "timezone", f"timezone {problem}",
                           'write it as timezone = "Europe/Berlin" (see the IANA tz database)')
    return Shop(name=reader.text("shop", table, "name", Shop.name),
                postal_address=reader.text("shop", table, "postal_address", ""),
                base_url=base_url, currency=currency, timezone=timezone)


def _sender(reader: _TomlReader) -> Sender:
    table = reader.table("sender", {"from", "unsubscribe_mailto"})
    value = reader.text("sender", table, "from", "")
    if value and "@" not in parseaddr(value)[1]:
        raise reader.error("sender", "from", f"'from' {value!r} holds no email address",
                           'write it as from = "Shop Name <news@shop.example>"')
    mailto = reader.text("sender", table, "unsubscribe_mailto", "")
    if mailto and not re.fullmatch(r"[^@\s<>]+@[^@\s<>]+", mailto):
        raise reader.error("sender", "unsubscribe_mailto",
                           f"'unsubscribe_mailto' {mailto!r} is not an email address",
                           'write it as unsubscribe_mailto = "unsubscribe@shop.example"')
    return Sender(from_address=value, unsubscribe_mailto=mailto)


def _sending(reader: _TomlReader) -> Sending:
    table = reader.table("sending", {"rate", "connections", "per_connection", "timeout",
                                     "stop_after_failures", "frequency_cap", "quiet_hours"})
    cap = table.get("frequency_cap")
    cap_emails, cap_within = None, None
    if cap is not None:
        example = 'frequency_cap = "2 per 7 days"'
        found = re.fullmatch(r"\s*(\d+)\s+per\s+(.+)", cap) if isinstance(cap, str) else None
        try:
            cap_within = parse_span(found[2]) if found else None
        except ValueError:
            cap_within = None
        if not found or cap_within is None or int(found[1]) < 1:
            raise reader.error("sending", "frequency_cap",
                               f"'frequency_cap' {cap!r} is not 'N per SPAN'",
                               f"write it as {example} (at most 2 campaign emails a week)")
        cap_emails = int(found[1])
    return Sending(
        rate=reader.number("sending", table, "rate", Sending.rate),
        connections=reader.number("sending", table, "connections", Sending.connections, int),
        per_connection=reader.number("sending", table, "per_connection", Sending.per_connection,
                                     int),
        timeout=reader.number("sending", table, "timeout", Sending.timeout),
        stop_after_failures=reader.number("sending", table, "stop_after_failures",
                                          Sending.stop_after_failures, int),
        cap_emails=cap_emails, cap_within=cap_within, quiet_hours=_quiet_hours(reader, table))


def _quiet_hours(reader: _TomlReader, table: Mapping[str, Any]) -> QuietHours | None:
    value = table.get("quiet_hours")
    if value is None:
        return None
    found = re.fullmatch(r"\s*(\d\d?):(\d\d)\s*-\s*(\d\d?):(\d\d)\s*", value) \
        if isinstance(value, str) else None
    numbers = [int(part) for part in found.groups()] if found else []
    if not found or numbers[0] > 23 or numbers[2] > 23 or numbers[1] > 59 or numbers[3] > 59:
        raise reader.error("sending", "quiet_hours", f"'quiet_hours' {value!r} is not "
                           "'HH:MM-HH:MM'", 'write it as quiet_hours = "21:00-08:00" (no email '
                           "from 21:00 until 08:00 in each customer's time zone)")
    quiet = QuietHours(time(numbers[0], numbers[1]), time(numbers[2], numbers[3]))
    if quiet.start == quiet.end:
        raise reader.error("sending", "quiet_hours", f"'quiet_hours' {value!r} starts and ends "
                           "at the same time", "give a real period such as \"21:00-08:00\", or "
                           "remove the line to allow email at any hour")
    return quiet


def _dkim(reader: _TomlReader) -> Dkim:
    table = reader.table("dkim", {"domain", "selector"})
    return Dkim(domain=reader.text("dkim", table, "domain", ""),
                selector=reader.text("dkim", table, "selector", ""))


def _tracking(reader: _TomlReader) -> Tracking:
    table = reader.table("tracking", {"opens", "clicks", "utm", "utm_source", "utm_medium",
                                      "store_ip"})
    utm = {}
    for key in ("utm_source", "utm_medium"):
        utm[key] = reader.text("tracking", table, key, getattr(Tracking, key))
        if not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", utm[key]):
            raise reader.error("tracking", key, f"'{key}' {utm[key]!r} must be 1 to 64 letters, "
                               "digits, dots, dashes or underscores",
                               f'write it as {key} = "{getattr(Tracking, key)}"')
    return Tracking(opens=reader.flag("tracking", table, "opens", True),
                    clicks=reader.flag("tracking", table, "clicks", True),
                    utm=reader.flag("tracking", table, "utm", True),
                    store_ip=reader.flag("tracking", table, "store_ip", False), **utm)


def _tiers(reader: _TomlReader) -> tuple[Tier, ...]:
    """[[tiers]] tables, highest first: a customer belongs to the first one they qualify for."""
    tables = reader.data.get("tiers", [])
    example = '[[tiers]] name = "gold" spent = 1000 within = "365 days"'
    if not isinstance(tables, list) or not all(isinstance(t, Mapping) for t in tables):
        raise reader.error(None, "tiers", "'tiers' must be a list of [[tiers]] tables",
                           f"write each tier as {example}")
    tiers: list[Tier] = []
    for index, table in enumerate(tables):
        try:
            tiers.append(_tier(reader, table, {tier.name for tier in tiers}, example))
        except SettingsError as exc:  # point at this [[tiers]] table, not the first one
            line = reader.array_table_line("tiers", index) or exc.line
            raise SettingsError(exc.message, path=exc.path, line=line, hint=exc.hint) from None
    return tuple(tiers)


def _tier(reader: _TomlReader, table: Mapping[str, Any], taken: set[str], example: str) -> Tier:
    reader.reject_unknown("tiers", table, {"name", "spent", "orders", "within"})
    name = reader.text("tiers", table, "name", "")
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", name) or name in taken:
        raise reader.error("tiers", "name", f"tier name {name!r} is missing, malformed or "
                           "used twice", "give each [[tiers]] a unique name like \"gold\"")
    if "spent" not in table and "orders" not in table:
        raise reader.error("tiers", "name", f"tier '{name}' needs 'spent' or 'orders'",
                           f"for example {example}")
    try:
        return Tier(name=name,
                    spent=_tier_spent(table["spent"]) if "spent" in table else None,
                    orders=_tier_orders(table["orders"]) if "orders" in table else None,
                    within=parse_span(table["within"]) if "within" in table else None)
    except ValueError as exc:
        raise reader.error("tiers", "name", f"tier '{name}': {exc}",
                           f"for example {example}") from None


def _tier_spent(value: object) -> Decimal:
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        amount = Decimal(-1)
    if isinstance(value, bool) or not amount.is_finite() or amount < 0 \
            or amount != amount.quantize(Decimal("0.01")):
        raise ValueError(f"spent {value!r} must be an amount of 0 or more with at most 2 decimals")
    return amount


def _tier_orders(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"orders {value!r} must be a whole number of 0 or more")
    return value
