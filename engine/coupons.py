"""Each customer's coupon in a campaign: derived from the secret key, stored once issued."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import Connection, select

from engine.campaigns import CouponSpec, plain_percent
from engine.schema import coupons
from engine.tokens import Signer


@dataclass(frozen=True)
class Coupon:
    """What a template sees as `coupon`."""

    code: str
    percent: Decimal
    expires_at: datetime


class CouponBook:
    """The coupons of one campaign: stored ones as issued, the others as they would be issued."""

    def __init__(self, campaign: str, spec: CouponSpec, signer: Signer) -> None:
        self.campaign = campaign
        self.spec = spec
        self.signer = signer

    def for_customers(self, connection: Connection, customer_ids: Sequence[int],
                      now: datetime) -> dict[int, Coupon]:
        """Every customer's coupon (one query): the stored one, else a new one issued `now`."""
        stored = {row.customer_id: Coupon(row.code, plain_percent(Decimal(row.percent)),
                                           row.expires_at)
                  for row in connection.execute(
                      select(coupons.c.customer_id, coupons.c.code, coupons.c.percent,
                             coupons.c.expires_at)
                      .where(coupons.c.campaign == self.campaign,
                             coupons.c.customer_id.in_(customer_ids)))}
        expires_at = self.spec.valid_for.after(now)
        return {customer_id: stored.get(customer_id) or Coupon(
            self.signer.coupon_code(self.spec.prefix, self.campaign, customer_id),
            self.spec.percent, expires_at) for customer_id in customer_ids}

    def issue(self, connection: Connection, issued: dict[int, Coupon], now: datetime) -> None:
        """Store the coupons not stored yet; a real send calls this before delivering them."""
        known = set(connection.execute(
            select(coupons.c.customer_id).where(coupons.c.campaign == self.campaign,
                                                coupons.c.customer_id.in_(list(issued))))
            .scalars())
        rows = [{"campaign": self.campaign, "customer_id": customer_id, "code": coupon.code,
                 "percent": coupon.percent, "issued_at": now, "expires_at": coupon.expires_at}
                for customer_id, coupon in issued.items() if customer_id not in known]
        if rows:
            connection.execute(coupons.insert(), rows)
