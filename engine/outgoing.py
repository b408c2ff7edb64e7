"""A rendered email turned into the message that goes out: headers, unsubscribe, signature."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parseaddr
from typing import Any

from engine.dkim import DkimSigner, unsubscribe_headers
from engine.message import Envelope, build_message, message_id, needs_smtputf8
from engine.render import Email
from engine.settings import Settings
from engine.tokens import Signer
from engine.tracking import Tracker


class MessageMaker:
    """Builds each recipient's complete message for one campaign (and run)."""

    def __init__(self, settings: Settings, campaign: str, from_address: str,
                 dkim: DkimSigner | None = None) -> None:
        self.campaign = campaign
        self.from_name, self.from_address = parseaddr(from_address)
        self.domain = self.from_address.rpartition("@")[2]
        self.mailto = settings.sender.unsubscribe_mailto or self.from_address
        self.dkim = dkim
        self.tracker = Tracker(settings.tracking, settings.shop.base_url,
                               Signer.from_secret(settings.secret_key), campaign)

    def message_id(self, salt: str, customer_id: int) -> str:
        return message_id(self.campaign, customer_id, self.domain, salt)

    def make(self, context: dict[str, Any], email: Email, message_id: str,
             sent_at: datetime, *, delivery_id: int | None = None) -> tuple[bytes, bool]:
        """The message bytes, and whether sending it needs SMTPUTF8.

        With `delivery_id` (a real send) opens and clicks are tracked; without it (dry runs,
        test sends) links only get their UTM parameters (see engine.tracking).
        """
        customer = context["customer"]
        envelope = Envelope(
            self.from_name, self.from_address, customer.name, customer.email, email.subject,
            message_id, sent_at.replace(tzinfo=UTC) if sent_at.tzinfo is None else sent_at,
            unsubscribe_headers(context["links"].unsubscribe, self.mailto))
        html, text = self.tracker.track(email.html, email.text, delivery_id)
        data = build_message(envelope, text, html)
        if self.dkim is not None:
            data = self.dkim.sign(data)
        return data, needs_smtputf8(envelope)
