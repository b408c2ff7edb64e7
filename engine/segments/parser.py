"""segments.yaml (and inline conditions) into the typed tree, collecting every error at once."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from engine import fields
from engine.errors import EngineError
from engine.segments import tree as t
from engine.timespec import Moment, parse_moment, parse_span
from engine.yamlfile import Position, item_position, key_position, value_position

CONDITIONS = ("all", "any", "not", "segment", "orders", "spent", "average_order", "first_order",
              "last_order", "signed_up", "bought", "customer", "rfm", "tier", "received",
              "opened", "clicked", "survey")
NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*$")
QUESTION = re.compile(r"[a-z][a-z0-9_]{0,39}")
BOUND_NAMES = ("at_least", "at_most", "exactly")
MAX_ANSWER = 10**9 - 1
MAX_NUMBER = Decimal(10) ** 12
MAX_DEPTH = 50
_TEXT_COLUMNS = {"customer_id", "email", "first_name", "last_name", "locale", "timezone",
                 "country", "city"}


class SegmentError(EngineError):
    """One or more problems in a segment definition; `problems` lists each with its place."""

    def __init__(self, problems: list[str]) -> None:
        count = len(problems)
        super().__init__(problems[0] if count == 1 else
                         f"{count} problems in segment definitions (listed above)")
        self.problems = problems


class _Invalid(Exception):
    """Raised inside the parser after a problem was recorded, to skip the broken node."""


@dataclass
class ConditionParser:
    """Parses condition nodes of one YAML file, noting each problem with its position."""

    path: Path
    tiers: Collection[str] = ()
    problems: list[tuple[Position, str]] = field(default_factory=list)
    references: list[tuple[str, Position]] = field(default_factory=list)
    depth: int = 0

    def fail(self, where: Position, message: str) -> _Invalid:
        self.problems.append((where, message))
        return _Invalid()

    def formatted(self) -> list[str]:
        return [f"{self.path}:{line}:{column}: {message}"
                for (line, column), message in sorted(self.problems)]

    # -- structure --------------------------------------------------------------------
    def condition(self, node: Any, where: Position, ignore: Collection[str] = ()
                  ) -> t.Condition | None:
        """A condition node (minus `ignore` keys), or None when it was broken (recorded)."""
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise self.fail(where, f"conditions are nested more than {MAX_DEPTH} deep; "
                                       "split them into named segments")
            return self._condition(node, where, ignore)
        except _Invalid:
            return None
        finally:
            self.depth -= 1

    def _condition(self, node: Any, where: Position, ignore: Collection[str] = ()
                   ) -> t.Condition:
        keys = [key for key in node if key not in ignore] if isinstance(node, CommentedMap) \
            else []
        if not keys:
            raise self.fail(where, f"expected a condition such as 'orders: {{at_least: 3}}', "
                                   f"found {describe(node)}")
        for extra in keys[1:]:
            self.fail(key_position(node, extra, where),
                      f"'{extra}' is a second condition in one place; combine conditions with "
                      "'all:' or 'any:' lists")
        key = keys[0]
        key_at, value_at = key_position(node, key, where), value_position(node, key, where)
        handler = _HANDLERS.get(key) if isinstance(key, str) else None
        if handler is None:
            raise self.fail(key_at, f"unknown condition '{key}'{suggest(key, CONDITIONS)}")
        if len(keys) > 1:
            raise _Invalid()
        return handler(self, key, node[key], value_at)

    def _combination(self, key: str, value: Any, where: Position) -> t.Condition:
        if not isinstance(value, CommentedSeq):
            raise self.fail(where, f"'{key}' takes a list of conditions (lines starting with "
                                   f"'- '), found {describe(value)}")
        if not value:
            raise self.fail(where, f"'{key}' needs at least one condition")
        items = [self.condition(item, item_position(value, i, where))
                 for i, item in enumerate(value)]
        if any(item is None for item in items):
            raise _Invalid()
        return (t.All if key == "all" else t.AnyOf)(tuple(items))

    def _not(self, _key: str, value: Any, where: Position) -> t.Condition:
        item = self.condition(value, where)
        if item is None:
            raise _Invalid()
        return t.Not(item)

    def _segment(self, _key: str, value: Any, where: Position) -> t.Condition:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(where, f"'segment' takes a segment name, found {describe(value)}")
        self.references.append((value.strip(), where))
        return t.SegmentRef(value.strip())

    # -- options ----------------------------------------------------------------------
    def options(self, key: str, value: Any, where: Position, allowed: tuple[str, ...],
                example: str) -> dict[str, tuple[Any, Position]]:
        """The `{option: value}` mapping of a condition, each value with its position."""
        if not isinstance(value, CommentedMap) or not value:
            raise self.fail(where, f"'{key}' takes options like {example}, found "
                                   f"{describe(value)}")
        found: dict[str, tuple[Any, Position]] = {}
        broken = False
        for name in value:
            if name not in allowed:
                broken = True
                self.fail(key_position(value, name, where),
                          f"unknown option '{name}' for '{key}'{suggest(name, allowed)}")
            else:
                found[name] = (value[name], value_position(value, name, where))
        if broken:
            raise _Invalid()
        return found

    def bounds(self, key: str, options: dict, where: Position, whole: bool) -> t.Bounds:
        numbers = {name: self.number(key, name, *options[name], whole)
                   for name in ("at_least", "at_most", "exactly") if name in options}
        if not numbers:
            raise self.fail(where, f"'{key}' needs a bound: at_least, at_most or exactly")
        if "exactly" in numbers:
            if len(numbers) > 1:
                raise self.fail(where, f"'{key}' has 'exactly' together with another bound; "
                                       "use either exactly or at_least/at_most")
            return t.Bounds(numbers["exactly"], numbers["exactly"])
        low, high = numbers.get("at_least"), numbers.get("at_most")
        if low is not None and high is not None and low > high:
            raise self.fail(where, f"conflicting bounds: at_least {low} is above at_most {high}")
        return t.Bounds(low, high)

    def number(self, key: str, name: str, value: Any, where: Position, whole: bool) -> Decimal:
        kind = "a whole number" if whole else "a number"
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise self.fail(where, f"'{name}' of '{key}' must be {kind}, found {describe(value)}")
        try:
            number = Decimal(str(value).strip())
        except InvalidOperation:
            raise self.fail(where, f"'{name}' of '{key}' must be {kind}, found "
                                   f"{describe(value)}") from None
        if number.is_finite() and number > MAX_NUMBER:
            raise self.fail(where, f"'{name}' of '{key}' is too large (at most {MAX_NUMBER:,})")
        if not number.is_finite() or number < 0 or (whole and number != int(number)):
            raise self.fail(where, f"'{name}' of '{key}' must be {kind} of 0 or more, found "
                                   f"{value}")
        if number != number.quantize(Decimal("0.01")):
            raise self.fail(where, f"'{name}' of '{key}' has more than 2 decimal places")
        return Decimal(int(number)) if whole else number

    def span(self, options: dict, name: str = "within"):
        if name not in options:
            return None
        value, where = options[name]
        try:
            return parse_span(value)
        except ValueError as exc:
            raise self.fail(where, str(exc)) from None

    def moment(self, options: dict, name: str) -> Moment | None:
        if name not in options:
            return None
        value, where = options[name]
        try:
            return parse_moment(value)
        except ValueError as exc:
            raise self.fail(where, str(exc)) from None

    def names(self, key: str, name: str, value: Any, where: Position) -> tuple[str, ...]:
        """One text value or a list of them."""
        values = list(value) if isinstance(value, CommentedSeq) else [value]
        if not values or not all(isinstance(v, str | int) and not isinstance(v, bool)
                                 and str(v).strip() for v in values):
            raise self.fail(where, f"'{name}' of '{key}' takes a name or a list of names, "
                                   f"found {describe(value)}")
        return tuple(str(v).strip() for v in values)

    # -- conditions -------------------------------------------------------------------
    def _aggregate(self, key: str, value: Any, where: Position) -> t.Condition:
        options = self.options(key, value, where, ("at_least", "at_most", "exactly", "within"),
                               "{at_least: 3}")
        bounds = self.bounds(key, options, where, whole=key == "orders")
        kind = {"orders": t.OrderCount, "spent": t.Spent, "average_order": t.AverageOrder}[key]
        return kind(bounds, self.span(options))

    def _when(self, key: str, value: Any, where: Position) -> t.Condition:
        options = self.options(key, value, where, ("before", "after"),
                               "{before: 90 days ago} or {after: 2026-01-01}")
        before, after = self.moment(options, "before"), self.moment(options, "after")
        if before and after and _never_both(before, after):
            raise self.fail(where, f"conflicting bounds: nothing is both before {before} and "
                                   f"at or after {after}")
        return t.When(key, before, after)

    def _bought(self, key: str, value: Any, where: Position) -> t.Condition:
        options = self.options(key, value, where, ("product", "category", "within", "at_least"),
                               "{category: Garden, within: 180 days}")
        if "product" not in options and "category" not in options:
            raise self.fail(where, "'bought' needs a product (SKU) or a category")
        products = self.names(key, "product", *options["product"]) if "product" in options \
            else ()
        categories = self.names(key, "category", *options["category"]) \
            if "category" in options else ()
        at_least = self.number(key, "at_least", *options["at_least"], whole=True) \
            if "at_least" in options else Decimal(1)
        if at_least < 1:
            raise self.fail(options["at_least"][1], "'at_least' of 'bought' must be 1 or more")
        return t.Bought(products, categories, self.span(options), int(at_least))

    def _customer(self, key: str, value: Any, where: Position) -> t.Condition:
        if not isinstance(value, CommentedMap) or not value:
            raise self.fail(where, "'customer' takes fields like {city: Berlin, country: DE}, "
                                   f"found {describe(value)}")
        matches = [self._field(value, name, where) for name in value]
        if any(match is None for match in matches):
            raise _Invalid()
        return matches[0] if len(matches) == 1 else t.All(tuple(matches))

    def _field(self, mapping: CommentedMap, name: Any, where: Position) -> t.FieldMatch | None:
        name_at = key_position(mapping, name, where)
        value, value_at = mapping[name], value_position(mapping, name, where)
        try:
            if not isinstance(name, str) or not NAME.match(name):
                raise self.fail(name_at, f"{describe(name)} is not a field name")
            if name in ("birthday", "signed_up_at"):
                raise self.fail(name_at, f"'{name}' cannot be matched here; use the "
                                         "'signed_up' condition for sign-up dates")
            attribute = name not in t.CUSTOMER_COLUMNS
            close = suggest(name, t.CUSTOMER_COLUMNS, cutoff=0.8)
            if attribute and close:
                raise self.fail(name_at, f"unknown customer field '{name}'{close}")
            if name == "subscribed":
                if not isinstance(value, bool):
                    raise self.fail(value_at, "'subscribed' is true or false, found "
                                              f"{describe(value)}")
                return t.FieldMatch(name, False, (value,))
            if isinstance(value, CommentedMap):
                options = self.options(name, value, value_at, ("contains",), "{contains: text}")
                text, text_at = options["contains"]
                if not isinstance(text, str | int) or isinstance(text, bool) or not str(text):
                    raise self.fail(text_at, f"'contains' takes text, found {describe(text)}")
                return t.FieldMatch(name, attribute, contains=str(text))
            values = self.names("customer", name, value, value_at)
            return t.FieldMatch(name, attribute, self._normalized(name, values, value_at))
        except _Invalid:
            return None

    def _normalized(self, name: str, values: tuple[str, ...], where: Position
                    ) -> tuple[str, ...]:
        """Country codes and locales as the import stores them (DE, de_DE)."""
        normalize = {"country": fields.country, "locale": fields.locale}.get(name)
        if normalize is None:
            return values
        try:
            return tuple(normalize(value) for value in values)
        except fields.BadValue as exc:
            hint = f"; {exc.hint}" if exc.hint else ""
            raise self.fail(where, f"{exc.message}{hint}") from None

    def _rfm(self, key: str, value: Any, where: Position) -> t.Condition:
        options = self.options(key, value, where, ("recency", "frequency", "monetary"),
                               "{recency: [4, 5], frequency: [4, 5]}")
        scores = {name: self._scores(name, *options[name]) for name in options}
        return t.Rfm(**scores)

    def _scores(self, name: str, value: Any, where: Position) -> frozenset[int]:
        values = list(value) if isinstance(value, CommentedSeq) else [value]
        if not values or not all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 5
                                 for v in values):
            raise self.fail(where, f"'{name}' of 'rfm' takes scores from 1 to 5 (one or a list), "
                                   f"found {describe(value)}")
        return frozenset(values)

    def _tier(self, key: str, value: Any, where: Position) -> t.Condition:
        names = self.names(key, "tier", value, where)
        if not self.tiers:
            raise self.fail(where, "no loyalty tiers are defined; add [[tiers]] tables to "
                                   "campaign.toml")
        unknown = [name for name in names if name not in self.tiers]
        if unknown:
            hint = suggest(unknown[0], self.tiers) or f"; tiers are: {', '.join(self.tiers)}"
            raise self.fail(where, f"unknown tier '{unknown[0]}'{hint}")
        return t.TierIs(names)

    def _engagement(self, key: str, value: Any, where: Position) -> t.Condition:
        allowed = ("campaign", "within", *BOUND_NAMES) + (("url",) if key == "clicked" else ())
        options = self.options(key, value, where, allowed, "{campaign: spring, within: 30 days}")
        bounds = self.bounds(key, options, where, whole=True) if options.keys() & {*BOUND_NAMES} \
            else t.Bounds(at_least=Decimal(1))
        url = None
        if "url" in options:
            url, url_at = options["url"]
            if not isinstance(url, str) or not url.strip():
                raise self.fail(url_at, "'url' of 'clicked' takes a part of a link such as "
                                        f"'/sale' or 'shop.example/garden', found {describe(url)}")
            url = url.strip()
        return t.Engagement(key, bounds, self._campaigns(key, options), self.span(options), url)

    def _survey(self, key: str, value: Any, where: Position) -> t.Condition:
        allowed = ("question", "campaign", "answer", "within", *BOUND_NAMES)
        options = self.options(key, value, where, allowed, "{question: recommend, at_most: 6}")
        if "question" not in options:
            raise self.fail(where, "'survey' needs a question: the key of a survey question, as "
                                   "in {question: recommend, at_most: 6}")
        question, question_at = options["question"]
        if not isinstance(question, str) or not QUESTION.fullmatch(question):
            raise self.fail(question_at, "'question' of 'survey' takes a question key (lower-case "
                                         f"letters, digits and '_'), found {describe(question)}")
        ranged = bool(options.keys() & {*BOUND_NAMES})
        if ranged and "answer" in options:
            raise self.fail(where, "'survey' takes either bounds (at_least, at_most, exactly) for "
                                   "number answers or 'answer', not both")
        bounds = self.bounds(key, options, where, whole=True) if ranged else None
        answers = self._answers(*options["answer"]) if "answer" in options else ()
        return t.SurveyAnswer(question, self._campaigns(key, options), bounds, answers,
                              self.span(options))

    def _campaigns(self, key: str, options: dict) -> tuple[str, ...]:
        return self.names(key, "campaign", *options["campaign"]) if "campaign" in options else ()

    def _answers(self, value: Any, where: Position) -> tuple[str | int, ...]:
        """One answer or a list: texts as chosen, or whole numbers."""
        values = list(value) if isinstance(value, CommentedSeq) else [value]
        if not values or not all(isinstance(v, str) or (isinstance(v, int) and not isinstance(
                v, bool) and abs(v) <= MAX_ANSWER) for v in values):
            raise self.fail(where, "'answer' of 'survey' takes an answer (a text or a whole "
                                   f"number) or a list of them, found {describe(value)}")
        return tuple(values)


_HANDLERS: dict[str, Callable[..., t.Condition]] = {
    "all": ConditionParser._combination, "any": ConditionParser._combination,
    "not": ConditionParser._not, "segment": ConditionParser._segment,
    "orders": ConditionParser._aggregate, "spent": ConditionParser._aggregate,
    "average_order": ConditionParser._aggregate, "first_order": ConditionParser._when,
    "last_order": ConditionParser._when, "signed_up": ConditionParser._when,
    "bought": ConditionParser._bought, "customer": ConditionParser._customer,
    "rfm": ConditionParser._rfm, "tier": ConditionParser._tier,
    "received": ConditionParser._engagement, "opened": ConditionParser._engagement,
    "clicked": ConditionParser._engagement, "survey": ConditionParser._survey,
}


def _never_both(before: Moment, after: Moment) -> bool:
    """True when `after` is certainly not earlier than `before` (the range is empty)."""
    if before.absolute and after.absolute:
        return after.absolute >= before.absolute
    if before.ago and after.ago and before.ago.unit == after.ago.unit:
        return after.ago.amount <= before.ago.amount
    return False


def describe(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, CommentedMap | dict):
        return "a mapping" if value else "an empty mapping"
    if isinstance(value, CommentedSeq | list):
        return "a list" if value else "an empty list"
    return repr(value) if isinstance(value, str) else f"{value!r} ({type(value).__name__})"


def suggest(word: Any, choices: Collection[Any], cutoff: float = 0.6) -> str:
    names = [choice for choice in choices if isinstance(choice, str)]
    close = difflib.get_close_matches(str(word), names, n=1, cutoff=cutoff)
    return f" (did you mean '{close[0]}'?)" if close else ""
