"""Signed tokens for links that act on a customer, and for tracking and forms.

A link token is `customer.campaign.signature`: the signature is an HMAC-SHA256 of the
purpose, campaign and customer under CAMPAIGN_SECRET_KEY, so a token for one purpose, campaign
or customer cannot be turned into another. Link tokens do not expire: emails are kept.

- A tracking token is `delivery.signature` over the purpose ("open" or "click"), the
  delivery and, for a click, the exact URL it leads to, so no other URL passes.
- A form token is `issued.nonce.signature` over the form's purpose, campaign, customer, the
  moment it was issued (Unix seconds) and a random nonce that the page also sets as a cookie;
  it expires FORM_LIFETIME after it was issued.
"""

from __future__ import annotations

import hmac
import secrets
from base64 import b32encode, urlsafe_b64encode
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from hashlib import sha256

# Used only when CAMPAIGN_SECRET_KEY is not set, so previews work; never for a real send,
# and the web endpoints refuse it.
PREVIEW_KEY = "campaign-preview-only-key"
PURPOSES = ("unsubscribe", "view", "survey", "preferences")
FORM_LIFETIME = timedelta(hours=12)
_EPOCH = datetime(1970, 1, 1)
_LATEST = 10**10            # seconds: a form token claiming a later moment is malformed


def _digits(text: str) -> int | None:
    """The number written as plain decimal digits (no sign, no leading zero), else None."""
    return int(text) if text.isascii() and text.isdigit() and text == str(int(text)) else None


def _same(expected: str, found: str) -> bool:
    """Constant-time comparison that takes any text (compare_digest refuses non-ASCII str)."""
    return hmac.compare_digest(expected.encode("utf-8"), found.encode("utf-8"))


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

    def __post_init__(self) -> None:
        # the keyed HMAC state, copied for each message: a third faster than keying anew
        object.__setattr__(self, "_keyed", hmac.new(self.secret, digestmod=sha256))

    def _mac(self, message: str) -> bytes:
        mac = self._keyed.copy()
        mac.update(message.encode("utf-8"))
        return mac.digest()

    def _signature(self, message: str) -> str:
        return urlsafe_b64encode(self._mac(message)[:16]).rstrip(b"=").decode("ascii")

    def token(self, purpose: str, campaign: str, customer_id: int) -> str:
        body = f"{customer_id}.{campaign}"
        return f"{body}.{self._signature(f'{purpose}:{body}')}"

    def verify(self, purpose: str, token: str) -> tuple[int, str] | None:
        """(customer id, campaign) of a genuine token for this purpose, else None."""
        customer, _, rest = token.partition(".")
        campaign, _, _signature = rest.rpartition(".")
        number = _digits(customer)
        if number is None or not campaign:
            return None
        expected = self.token(purpose, campaign, number)
        return (number, campaign) if _same(expected, token) else None

    def tracking_token(self, purpose: str, delivery_id: int, url: str = "") -> str:
        """A token for an open ("open") or a click on `url` ("click") in delivery `delivery_id`."""
        return f"{delivery_id}.{self._signature(f'{purpose}:{delivery_id}:{url}')}"

    def verify_tracking(self, purpose: str, token: str, url: str = "") -> int | None:
        """The delivery id of a genuine tracking token for this purpose (and URL), else None."""
        delivery = _digits(token.partition(".")[0])
        if delivery is None:
            return None
        expected = self.tracking_token(purpose, delivery, url)
        return delivery if _same(expected, token) else None

    def form_token(self, purpose: str, campaign: str, customer_id: int,
                   issued: datetime) -> tuple[str, str]:
        """(token, nonce): the hidden field of a form, and the nonce its cookie holds."""
        nonce = secrets.token_urlsafe(12)
        seconds = int((issued - _EPOCH).total_seconds())
        body = f"{seconds}.{nonce}"
        return f"{body}.{self._form_signature(purpose, campaign, customer_id, body)}", nonce

    def _form_signature(self, purpose: str, campaign: str, customer_id: int, body: str) -> str:
        return self._signature(f"form:{purpose}:{campaign}:{customer_id}:{body}")

    def verify_form(self, purpose: str, campaign: str, customer_id: int, token: str,
                    nonce: str, now: datetime) -> bool:
        """Whether `token` is genuine for this form, matches the cookie's `nonce`, and was
        issued at most FORM_LIFETIME before `now` (and not in the future)."""
        seconds, _, rest = token.partition(".")
        found_nonce, _, _signature = rest.partition(".")
        issued = _digits(seconds)
        if issued is None or issued > _LATEST or not nonce or not _same(found_nonce, nonce):
            return False
        expected = f"{issued}.{found_nonce}." + self._form_signature(
            purpose, campaign, customer_id, f"{issued}.{found_nonce}")
        age = now - (_EPOCH + timedelta(seconds=issued))
        return _same(expected, token) and timedelta(0) <= age <= FORM_LIFETIME

    def coupon_code(self, prefix: str, campaign: str, customer_id: int) -> str:
        """A code unique per campaign and customer that nobody can guess without the key."""
        digest = b32encode(self._mac(f"coupon:{campaign}:{customer_id}")).decode("ascii")
        return f"{prefix}-{digest[:10]}"
