"""The segment language as a typed tree: what `segments.yaml` says, validated, before any SQL."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from engine.timespec import Moment, Span

# Customer columns a `customer:` condition may name; other names are attributes.
CUSTOMER_COLUMNS = ("customer_id", "email", "first_name", "last_name", "locale", "timezone",
                    "country", "city", "birthday", "signed_up_at", "subscribed")


@dataclass(frozen=True)
class Bounds:
    """Inclusive numeric bounds; `exactly: n` is at_least = at_most = n."""

    at_least: Decimal | None = None
    at_most: Decimal | None = None

    def admits(self, value: Decimal) -> bool:
        return (self.at_least is None or value >= self.at_least) and \
            (self.at_most is None or value <= self.at_most)


@dataclass(frozen=True)
class All:
    items: tuple[Condition, ...]


@dataclass(frozen=True)
class AnyOf:
    items: tuple[Condition, ...]


@dataclass(frozen=True)
class Not:
    item: Condition


@dataclass(frozen=True)
class SegmentRef:
    name: str


@dataclass(frozen=True)
class OrderCount:
    """`orders`: how many distinct orders, optionally within a window before now."""

    bounds: Bounds
    within: Span | None = None


@dataclass(frozen=True)
class Spent:
    """`spent`: the sum of order totals."""

    bounds: Bounds
    within: Span | None = None


@dataclass(frozen=True)
class AverageOrder:
    """`average_order`: the mean order total (customers without orders never match)."""

    bounds: Bounds
    within: Span | None = None


@dataclass(frozen=True)
class When:
    """`first_order`, `last_order`, `signed_up`: before (exclusive) / after (inclusive)."""

    event: str  # first_order | last_order | signed_up
    before: Moment | None = None
    after: Moment | None = None


@dataclass(frozen=True)
class Bought:
    """`bought`: items of these products and/or categories, at least this many."""

    products: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    within: Span | None = None
    at_least: int = 1


@dataclass(frozen=True)
class FieldMatch:
    """`customer`: one column or attribute equals one of `values`, or contains `contains`."""

    field: str
    attribute: bool
    values: tuple[str | bool, ...] = ()
    contains: str | None = None


@dataclass(frozen=True)
class Rfm:
    """`rfm`: quintile scores 1-5 allowed for recency, frequency and monetary value."""

    recency: frozenset[int] | None = None
    frequency: frozenset[int] | None = None
    monetary: frozenset[int] | None = None


@dataclass(frozen=True)
class TierIs:
    """`tier`: the customer's loyalty tier is one of these."""

    names: tuple[str, ...]


@dataclass(frozen=True)
class Engagement:
    """`received`, `opened`, `clicked`: how many emails (of these campaigns, within a window)
    were sent to the customer, opened, or clicked (on a link whose URL contains `url`)."""

    event: str  # received | opened | clicked
    bounds: Bounds
    campaigns: tuple[str, ...] = ()
    within: Span | None = None
    url: str | None = None


@dataclass(frozen=True)
class SurveyAnswer:
    """`survey`: the customer answered `question` (of these campaigns' surveys), with a whole
    number within `bounds`, or with one of `answers`, or at all when neither is given."""

    question: str
    campaigns: tuple[str, ...] = ()
    bounds: Bounds | None = None
    answers: tuple[str | int, ...] = ()
    within: Span | None = None


Condition = (All | AnyOf | Not | SegmentRef | OrderCount | Spent | AverageOrder | When | Bought
             | FieldMatch | Rfm | TierIs | Engagement | SurveyAnswer)


@dataclass(frozen=True)
class Segment:
    name: str
    description: str
    condition: Condition
    position: tuple[int, int]  # line and column of the name in its file
