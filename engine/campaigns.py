"""Campaign files (`campaigns/NAME.yaml`): validated into frozen objects, every problem located."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from email.utils import parseaddr
from pathlib import Path

from jinja2 import Environment, TemplateSyntaxError
from ruamel.yaml.comments import CommentedMap

from engine.errors import EngineError, WorkspaceError
from engine.segments import tree as t
from engine.segments.definitions import load_segments
from engine.segments.parser import ConditionParser, describe, suggest
from engine.surveys import Survey, read_survey
from engine.timespec import Span, parse_span
from engine.timing import Recurrence, Trigger, read_schedule, read_trigger
from engine.workspace import Workspace
from engine.yamlfile import Position, key_position, load_yaml, value_position

KEYS = ("description", "subject", "preheader", "segment", "template", "from", "coupon",
        "recommendations", "recent_orders", "survey", "schedule", "trigger")
REQUIRED = ("subject", "segment", "template")
COUPON_KEYS = ("percent", "valid_for", "prefix")
_PREFIX = re.compile(r"[A-Z0-9]{1,12}")
MAX_RECOMMENDATIONS = 12
MAX_RECENT_ORDERS = 20


def plain_percent(percent: Decimal) -> Decimal:
    """15 rather than 15.00, 12.5 rather than 12.50."""
    if percent == percent.to_integral_value():
        return percent.to_integral_value()
    return percent.normalize()


class CampaignError(EngineError):
    """Problems in a campaign file; `problems` lists each with its place."""

    def __init__(self, problems: list[str]) -> None:
        count = len(problems)
        super().__init__(problems[0] if count == 1 else
                         f"{count} problems in campaign files (listed above)")
        self.problems = problems


@dataclass(frozen=True)
class CouponSpec:
    """A unique code per customer: `percent` off for `valid_for` after it is issued."""

    percent: Decimal
    valid_for: Span
    prefix: str


@dataclass(frozen=True)
class Campaign:
    """A validated campaign file."""

    name: str
    path: Path
    subject: str
    preheader: str
    audience: t.Condition       # a SegmentRef, or the inline condition
    template: str               # file name inside templates/
    from_address: str           # "Name <addr>"
    coupon: CouponSpec | None
    recommendations: int = 3
    recent_orders: int = 3
    description: str = ""
    survey: Survey | None = None
    recurrence: Recurrence | None = None    # `schedule:` - runs by itself on a cron
    trigger: Trigger | None = None          # `trigger:` - a lifecycle campaign

    @property
    def segment_name(self) -> str | None:
        return self.audience.name if isinstance(self.audience, t.SegmentRef) else None


def campaign_names(workspace: Workspace) -> list[str]:
    """Names of the campaign files in the workspace, sorted."""
    folder = workspace.campaigns_dir
    return sorted(path.stem for path in folder.glob("*.yaml")) if folder.is_dir() else []


def load_campaign(workspace: Workspace, name: str) -> Campaign:
    """The campaign `name`, validated against the workspace's segments and templates."""
    path = workspace.campaigns_dir / f"{name}.yaml"
    if not path.is_file():
        known = campaign_names(workspace)
        hint = suggest(name, known).strip(" ()") or \
            f"campaigns here: {', '.join(known) or 'none'} (files in {workspace.campaigns_dir})"
        raise WorkspaceError(f"no campaign named '{name}'", path=path, hint=hint)
    return _CampaignReader(workspace, path).read()


class _CampaignReader:
    def __init__(self, workspace: Workspace, path: Path) -> None:
        self.workspace = workspace
        self.path = path
        self.tiers = [tier.name for tier in workspace.settings.tiers]
        self.parser = ConditionParser(path, self.tiers)

    def fail(self, where: Position, message: str) -> None:
        self.parser.fail(where, message)

    def read(self) -> Campaign:
        document = load_yaml(self.path)
        top = (1, 1)
        if not isinstance(document, CommentedMap):
            self.fail(top, f"expected a mapping with {', '.join(REQUIRED)}, found "
                           f"{describe(document)}")
            raise CampaignError(self.parser.formatted())
        for key in document:
            if key not in KEYS:
                self.fail(key_position(document, key, top),
                          f"unknown key '{key}'{suggest(key, KEYS)}; campaign files take "
                          f"{', '.join(KEYS)}")
        for key in REQUIRED:
            if key not in document:
                self.fail(top, f"missing '{key}:'" + {
                    "subject": " (the subject line, a template such as "
                               "'{{ customer.first_name }}, news for you')",
                    "segment": " (a segment name from segments.yaml, or a condition)",
                    "template": " (an MJML file in templates/, e.g. spring.mjml)"}[key])
        where = {key: value_position(document, key, key_position(document, key, top))
                 for key in document}
        campaign = Campaign(
            name=self.path.stem, path=self.path,
            subject=self._template_text(document, "subject", where),
            preheader=self._template_text(document, "preheader", where),
            audience=self._audience(document, where),
            template=self._template_file(document, where),
            from_address=self._sender(document, where),
            coupon=self._coupon(document, where),
            recommendations=self._count(document, "recommendations", where, 3,
                                        MAX_RECOMMENDATIONS),
            recent_orders=self._count(document, "recent_orders", where, 3, MAX_RECENT_ORDERS),
            description=self._text(document, "description", where),
            survey=read_survey(document["survey"], where["survey"], self.fail)
            if "survey" in document else None,
            recurrence=read_schedule(document["schedule"], where["schedule"], self.fail,
                                     self.workspace.settings.shop.timezone)
            if "schedule" in document else None,
            trigger=read_trigger(document["trigger"], where["trigger"], self.fail)
            if "trigger" in document else None)
        if "schedule" in document and "trigger" in document:
            self.fail(key_position(document, "trigger", top),
                      "a campaign takes 'schedule' or 'trigger', not both; split it into two "
                      "campaign files")
        if self.parser.problems:
            raise CampaignError(self.parser.formatted())
        return campaign

    def _text(self, document: CommentedMap, key: str, where: dict) -> str:
        value = document.get(key, "")
        if not isinstance(value, str):
            self.fail(where[key], f"'{key}' must be text, found {describe(value)}")
            return ""
        return value

    def _template_text(self, document: CommentedMap, key: str, where: dict) -> str:
        value = self._text(document, key, where)
        if key == "subject" and key in document and not value.strip():
            self.fail(where[key], "'subject' is empty; write the subject line")
        if "\n" in value.strip():
            self.fail(where[key], f"'{key}' must be one line")
        try:
            Environment().parse(value)
        except TemplateSyntaxError as exc:
            self.fail(where[key], f"'{key}' is not a valid template: {exc.message}")
        return value

    def _audience(self, document: CommentedMap, where: dict) -> t.Condition:
        if "segment" not in document:
            return t.SegmentRef("")
        value = document["segment"]
        if value is None or (isinstance(value, str) and not value.strip()):
            self.fail(where["segment"], "'segment' is empty; name a segment from segments.yaml "
                                        "or write a condition")
            return t.SegmentRef("")
        segments_file = self.workspace.segments_file
        known = load_segments(segments_file, self.tiers) if segments_file.is_file() else {}
        if isinstance(value, str):
            if value not in known:
                self.fail(where["segment"], f"unknown segment '{value}'{suggest(value, known)}; "
                          f"segments in {segments_file.name}: {', '.join(known) or 'none'}")
            return t.SegmentRef(value)
        condition = self.parser.condition(value, where["segment"])
        for name, place in self.parser.references:
            if name not in known:
                self.fail(place, f"unknown segment '{name}'{suggest(name, known)}")
        return condition or t.SegmentRef("")

    def _template_file(self, document: CommentedMap, where: dict) -> str:
        if "template" not in document:
            return ""
        value = document["template"]
        folder = self.workspace.templates_dir
        if not isinstance(value, str) or not value.endswith(".mjml") \
                or value.startswith("/") or ".." in Path(value).parts:
            self.fail(where["template"], f"'template' must name an .mjml file in "
                                         f"{folder.name}/, found {describe(value)}")
            return ""
        if not (folder / value).is_file():
            known = sorted(p.name for p in folder.glob("*.mjml")) if folder.is_dir() else []
            self.fail(where["template"], f"unknown template '{value}'{suggest(value, known)}; "
                      f"templates in {folder.name}/: {', '.join(known) or 'none'}")
        return value

    def _sender(self, document: CommentedMap, where: dict) -> str:
        value = document.get("from", self.workspace.settings.sender.from_address)
        place = where.get("from", (1, 1))
        if not isinstance(value, str) or not value.strip():
            self.fail(place, "no sender: add 'from: \"Shop <news@shop.example>\"' here or "
                             "[sender] from = ... in campaign.toml")
            return ""
        name, address = parseaddr(value)
        if any(c in value for c in "\r\n") or "@" not in address or " " in address \
                or address.count("@") != 1 or not address.split("@")[1].count("."):
            self.fail(place, f"'from' is not a valid sender address: {value!r}; write it as "
                             "\"Shop Name <news@shop.example>\"")
        return value.strip()

    def _coupon(self, document: CommentedMap, where: dict) -> CouponSpec | None:
        value = document.get("coupon")
        if value is None:
            return None
        place = where["coupon"]
        example = "{percent: 15, valid_for: 30 days, prefix: SPRING}"
        if not isinstance(value, CommentedMap):
            self.fail(place, f"'coupon' takes {example}, found {describe(value)}")
            return None
        for key in value:
            if key not in COUPON_KEYS:
                self.fail(key_position(value, key, place),
                          f"unknown coupon option '{key}'{suggest(key, COUPON_KEYS)}; "
                          f"write it as {example}")
        percent = self._percent(value, place)
        valid_for = self._valid_for(value, place)
        prefix = value.get("prefix", self.path.stem.upper())
        prefix = re.sub(r"[^A-Z0-9]", "", prefix.upper()) if isinstance(prefix, str) else prefix
        if not isinstance(prefix, str) or not _PREFIX.fullmatch(prefix):
            self.fail(value_position(value, "prefix", place),
                      f"coupon 'prefix' must be 1 to 12 letters or digits, found "
                      f"{describe(value.get('prefix'))}")
        if percent is None or valid_for is None:
            return None
        return CouponSpec(percent, valid_for, str(prefix))

    def _percent(self, coupon: CommentedMap, place: Position) -> Decimal | None:
        raw = coupon.get("percent")
        at = value_position(coupon, "percent", place)
        try:
            percent = Decimal(str(raw)) if isinstance(raw, int | float | str) \
                and not isinstance(raw, bool) else None
        except InvalidOperation:
            percent = None
        if percent is None or not percent.is_finite() or not 0 < percent <= 100:
            self.fail(at, f"coupon 'percent' must be a number above 0 and at most 100, found "
                          f"{describe(raw)}")
            return None
        return plain_percent(percent)

    def _valid_for(self, coupon: CommentedMap, place: Position) -> Span | None:
        try:
            return parse_span(coupon.get("valid_for", "30 days"))
        except ValueError as exc:
            self.fail(value_position(coupon, "valid_for", place), f"coupon 'valid_for': {exc}")
            return None

    def _count(self, document: CommentedMap, key: str, where: dict, default: int,
               largest: int) -> int:
        value = document.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= largest:
            self.fail(where[key], f"'{key}' must be a whole number from 0 to {largest}, found "
                                  f"{describe(value)}")
            return default
        return value

