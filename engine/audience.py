"""Who gets a campaign today: the segment's members minus everyone who must not get mail.

Excluded, in this order of reasons: unsubscribed customers, suppressed addresses (bounces,
complaints, manual), invalid addresses, customers who paused campaign mail until after now,
and customers who reached the frequency cap (emails sent in its span, as `received` counts).
The members are streamed, so an audience of millions costs no memory.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection, Select, func, literal, select

from engine.fields import looks_like_email
from engine.schema import customers, deliveries, pauses, suppressions
from engine.settings import Sending

REASONS = ("unsubscribed", "suppressed", "invalid address", "paused", "frequency cap")
STREAM_ROWS = 2000


@dataclass
class Exclusions:
    """How many members were left out, by reason."""

    counts: Counter[str] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def as_dict(self) -> dict[str, int]:
        return {reason: self.counts[reason] for reason in REASONS if self.counts[reason]}


def recipients(connection: Connection, members: Select, sending: Sending, now: datetime,
               exclusions: Exclusions) -> Iterator[tuple[int, str]]:
    """(customer id, email) of every member who may get the campaign, in id order."""
    recent = literal(0)
    if sending.cap_emails and sending.cap_within:
        since = sending.cap_within.before(now)
        sent = (select(func.count()).select_from(deliveries)
                .where(deliveries.c.customer_id == customers.c.id,
                       deliveries.c.state == "sent", deliveries.c.sent_at >= since)
                .scalar_subquery())
        recent = sent
    suppressed = (select(suppressions.c.id)
                  .where(suppressions.c.email == func.lower(customers.c.email)).exists())
    paused = (select(pauses.c.customer_id)
              .where(pauses.c.customer_id == customers.c.id, pauses.c.paused_until > now)
              .exists())
    statement = (select(customers.c.id, customers.c.email, customers.c.subscribed,
                        suppressed.label("suppressed"), paused.label("paused"),
                        recent.label("recent"))
                 .where(customers.c.id.in_(members)).order_by(customers.c.id))
    rows = connection.execution_options(stream_results=True, yield_per=STREAM_ROWS)
    for customer_id, email, subscribed, is_suppressed, is_paused, sent_recently in \
            rows.execute(statement):
        reason = _reason(email, subscribed, is_suppressed, is_paused, sent_recently, sending)
        if reason:
            exclusions.counts[reason] += 1
        else:
            yield customer_id, email


def _reason(email: str, subscribed: bool, suppressed: bool, paused: bool, sent_recently: int,
            sending: Sending) -> str | None:
    if not subscribed:
        return "unsubscribed"
    if suppressed:
        return "suppressed"
    if not looks_like_email(email):
        return "invalid address"
    if paused:
        return "paused"
    if sending.cap_emails and sent_recently >= sending.cap_emails:
        return "frequency cap"
    return None
