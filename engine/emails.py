"""A campaign ready to render: its file, template, audience and personalization, together."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, func, or_, select

from engine.campaigns import Campaign, load_campaign
from engine.context import ContextBuilder, CustomerView
from engine.errors import WorkspaceError
from engine.render import Email, EmailRenderer
from engine.schema import customers
from engine.segments.compiler import segment_query
from engine.segments.members import Segments
from engine.tokens import Signer
from engine.workspace import Workspace

BATCH_SIZE = 500


@dataclass(frozen=True)
class Rendered:
    """One recipient's email, with the customer it was made for."""

    customer: CustomerView
    email: Email


class CampaignEmails:
    """Renders a campaign's emails for its audience, a batch of customers at a time."""

    def __init__(self, workspace: Workspace, connection: Connection, name: str,
                 now: datetime) -> None:
        self.workspace = workspace
        self.connection = connection
        self.campaign: Campaign = load_campaign(workspace, name)
        self.segments = Segments(workspace, now)
        settings = workspace.settings
        self.signer = Signer.from_secret(settings.secret_key)
        self.renderer = EmailRenderer(workspace.templates_dir, self.campaign.template,
                                      self.campaign.subject, self.campaign.preheader)
        self.builder = ContextBuilder(connection, self.campaign, settings.shop,
                                      self.segments.scope, self.signer)

    def audience_query(self):
        return segment_query(self.campaign.audience, self.segments.scope)

    def audience_size(self) -> int:
        return self.connection.execute(
            select(func.count()).select_from(self.audience_query().subquery())).scalar_one()

    def audience(self, limit: int | None = None) -> list[int]:
        """Engine ids of the audience, in id order."""
        return list(self.connection.execute(
            select(customers.c.id).where(customers.c.id.in_(self.audience_query()))
            .order_by(customers.c.id).limit(limit)).scalars())

    def find_customer(self, who: str) -> int:
        """The engine id of the customer with this email address or shop customer id."""
        found = list(self.connection.execute(
            select(customers.c.id).where(or_(func.lower(customers.c.email) == who.lower(),
                                             customers.c.external_id == who))
            .order_by(customers.c.id).limit(2)).scalars())
        if not found:
            raise WorkspaceError(f"no customer with email or customer id '{who}'",
                                 hint="use an address or id from 'campaign segment show "
                                      f"{self.campaign.segment_name or 'NAME'}'")
        return found[0]

    def render(self, customer_ids: Sequence[int], *, straight: bool = False
               ) -> Iterator[Rendered]:
        """Each customer's email, in order; `straight` uses the per-recipient reference pipeline."""
        draw = self.renderer.render_straight if straight else self.renderer.render
        for start in range(0, len(customer_ids), BATCH_SIZE):
            for context in self.builder.build(customer_ids[start:start + BATCH_SIZE]):
                yield Rendered(context["customer"], draw(context))
