"""Signed tokens for links that act on a customer (unsubscribe, view online, survey).

A token is `customer.campaign.signature`: the signature is an HMAC-SHA256 of the purpose,
campaign and customer under CAMPAIGN_SECRET_KEY, so a token for one purpose, campaign or
customer cannot be turned into another.
"""

from __future__ import annotations

import hmac
from base64 import b32encode, urlsafe_b64encode
from dataclasses import dataclass, field
from hashlib import sha256

# Used only when CAMPAIGN_SECRET_KEY is not set, so previews work; never for a real send,
# and the web endpoints refuse it.
PREVIEW_KEY = "campaign-preview-only-key"
PURPOSES = ("unsubscribe", "view", "survey")


@dataclass(frozen=True)
class Signer:
    """Signs and checks tokens with one secret key."""

    secret: bytes = field(repr=False)
    preview_only: bool = False

    @classmethod
    def from_secret(cls, secret: str | None) -> Signer:
        """The workspace signer; without a secret key, the public preview key."""
        if secret:
            return cls(secret.encode("utf-8"))
        return cls(PREVIEW_KEY.encode("utf-8"), preview_only=True)

    def _mac(self, message: str) -> bytes:
        return hmac.new(self.secret, message.encode("utf-8"), sha256).digest()

    def token(self, purpose: str, campaign: str, customer_id: int) -> str:
        body = f"{customer_id}.{campaign}"
        signature = urlsafe_b64encode(self._mac(f"{purpose}:{body}")[:16]).rstrip(b"=")
        return f"{body}.{signature.decode('ascii')}"

    def verify(self, purpose: str, token: str) -> tuple[int, str] | None:
        """(customer id, campaign) of a genuine token for this purpose, else None."""
        customer, _, rest = token.partition(".")
        campaign, _, _signature = rest.rpartition(".")
        if not customer.isdigit() or not campaign or customer != str(int(customer)):
            return None
        expected = self.token(purpose, campaign, int(customer))
        return (int(customer), campaign) if hmac.compare_digest(expected, token) else None

    def coupon_code(self, prefix: str, campaign: str, customer_id: int) -> str:
        """A code unique per campaign and customer that nobody can guess without the key."""
        digest = b32encode(self._mac(f"coupon:{campaign}:{customer_id}")).decode("ascii")
        return f"{prefix}-{digest[:10]}"
