"""`campaign send NAME --dry-run`: everything a send would do, except sending and writing.

The audience is evaluated, every recipient's email is rendered strictly and built as a
complete message; the plan reports who is left out and why, every rendering failure, the
sizes and a few subjects. With an outbox folder each message is written as an .eml file.
It never connects to an SMTP server and writes nothing to the database.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine

from engine.audience import Exclusions, recipients
from engine.campaigns import Campaign
from engine.emails import BATCH_SIZE, CampaignEmails
from engine.message import HeaderError
from engine.outgoing import MessageMaker
from engine.render import RenderError
from engine.workspace import Workspace

FAILURES_LISTED = 50
SUBJECTS_SHOWN = 5
Progress = Callable[[str, int, int], None]


@dataclass
class Plan:
    """What a send of the campaign would do now."""

    campaign: Campaign
    members: int = 0
    exclusions: Exclusions = field(default_factory=Exclusions)
    rendered: int = 0
    failures: list[str] = field(default_factory=list)
    failed: int = 0
    sizes: Counter[int] = field(default_factory=Counter)   # message size -> how many
    subjects: list[str] = field(default_factory=list)
    preview_key: bool = False

    @property
    def recipients(self) -> int:
        return self.members - self.exclusions.total

    def size_summary(self) -> tuple[int, int, int, int]:
        """Smallest, median, 95th percentile and largest message, in bytes."""
        count = sum(self.sizes.values())
        middle = (self._nth(count // 2) + self._nth((count - 1) // 2)) / 2
        return (self._nth(0), int(middle), self._nth(min(count - 1, int(count * 0.95))),
                self._nth(count - 1))

    def _nth(self, index: int) -> int:
        """The size at `index` of all sizes in order (the counts hold no list of millions)."""
        seen = 0
        for size in sorted(self.sizes):
            seen += self.sizes[size]
            if index < seen:
                return size
        raise IndexError(index)


def make_plan(workspace: Workspace, engine: Engine, name: str, now: datetime, *,
              outbox: Path | None = None, progress: Progress | None = None) -> Plan:
    """Render and build every message the campaign would send now; write nothing."""
    settings = workspace.settings
    with engine.connect() as connection, engine.connect() as members_connection:
        emails = CampaignEmails(workspace, connection, name, now)
        plan = Plan(emails.campaign, members=emails.audience_size(),
                    preview_key=emails.signer.preview_only)
        maker = MessageMaker(settings, name, emails.campaign.from_address)
        if outbox is not None:
            outbox.mkdir(parents=True, exist_ok=True)
        batch: list[int] = []
        for customer_id, _email in recipients(members_connection, emails.audience_query(),
                                              settings.sending, now, plan.exclusions):
            batch.append(customer_id)
            if len(batch) == BATCH_SIZE:
                _render(plan, emails, maker, batch, now, outbox, progress)
                batch = []
        if batch:
            _render(plan, emails, maker, batch, now, outbox, progress)
    return plan


def _render(plan: Plan, emails: CampaignEmails, maker: MessageMaker, batch: list[int],
            now: datetime, outbox: Path | None, progress: Progress | None) -> None:
    for context in emails.builder.build(batch):
        customer = context["customer"]
        try:
            email = emails.renderer.render(context)
            data, _utf8 = maker.make(context, email, maker.message_id("plan", customer.id), now)
        except (RenderError, HeaderError) as exc:
            plan.failed += 1
            if len(plan.failures) < FAILURES_LISTED:
                plan.failures.append(f"customer {customer.customer_id} <{customer.email}>: "
                                     f"{exc}")
            continue
        plan.rendered += 1
        plan.sizes[len(data)] += 1
        if len(plan.subjects) < SUBJECTS_SHOWN:
            plan.subjects.append(email.subject)
        if outbox is not None:
            safe_id = re.sub(r"[^A-Za-z0-9_-]", "_", customer.customer_id)
            (outbox / f"{plan.rendered:07d}-{safe_id}.eml").write_bytes(data)
        if progress and plan.rendered % 100 == 0:
            progress("rendering", plan.rendered + plan.failed, plan.recipients)
