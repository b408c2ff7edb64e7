"""The engine's tables (SQLAlchemy Core). Migrations in engine/migrations create the same shape."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    UniqueConstraint,
)
from sqlalchemy.dialects import mysql

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
Money = Numeric(12, 2)
# MariaDB's DATETIME drops fractions of a second unless asked to keep them.
Moment = DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")

metadata = MetaData(naming_convention=NAMING)

customers = Table(
    "customers", metadata,
    Column("id", Integer, primary_key=True),
    Column("external_id", String(64), nullable=False, unique=True),
    Column("email", String(320), nullable=False, index=True),
    Column("first_name", String(100), nullable=False, default=""),
    Column("last_name", String(100), nullable=False, default=""),
    Column("locale", String(20)),
    Column("timezone", String(64)),
    Column("country", String(2)),
    Column("city", String(100)),
    Column("birthday", Date),
    Column("signed_up_at", Moment),
    Column("subscribed", Boolean, nullable=False, default=True),
    Column("attributes", JSON, nullable=False),
)

products = Table(
    "products", metadata,
    Column("id", Integer, primary_key=True),
    Column("sku", String(64), nullable=False, unique=True),
    Column("name", String(255), nullable=False),
    Column("category", String(100), index=True),
    Column("price", Money, nullable=False),
    Column("url", String(2048)),
    Column("image_url", String(2048)),
)

orders = Table(
    "orders", metadata,
    Column("id", Integer, primary_key=True),
    Column("external_id", String(64), nullable=False, unique=True),
    Column("customer_id", Integer, ForeignKey("customers.id"), nullable=False),
    Column("placed_at", Moment, nullable=False),
    Column("total", Money, nullable=False),
    Column("currency", String(3), nullable=False),
    Index("ix_orders_customer_id_placed_at", "customer_id", "placed_at"),
)

order_items = Table(
    "order_items", metadata,
    Column("id", Integer, primary_key=True),
    Column("order_id", Integer, ForeignKey("orders.id", ondelete="CASCADE"), nullable=False,
           index=True),
    Column("product_id", Integer, ForeignKey("products.id"), nullable=False, index=True),
    Column("quantity", Integer, nullable=False),
    Column("unit_price", Money, nullable=False),
)

coupons = Table(
    "coupons", metadata,
    Column("id", Integer, primary_key=True),
    Column("campaign", String(100), nullable=False),
    Column("customer_id", Integer, ForeignKey("customers.id"), nullable=False),
    Column("code", String(40), nullable=False, unique=True),
    Column("percent", Numeric(5, 2), nullable=False),
    Column("issued_at", Moment, nullable=False),
    Column("expires_at", Moment, nullable=False),
    UniqueConstraint("campaign", "customer_id"),
)

runs = Table(
    "runs", metadata,
    Column("id", Integer, primary_key=True),
    Column("campaign", String(100), nullable=False),
    Column("status", String(16), nullable=False),       # running, stopped, finished
    Column("evaluated_at", Moment, nullable=False),     # the "now" the audience was picked at
    Column("started_at", Moment, nullable=False),
    Column("finished_at", Moment),
    Column("excluded", JSON, nullable=False),           # {"unsubscribed": 3, ...}
    Column("note", String(500)),                        # why the run stopped, when it did
    # What started it, once: "schedule:ID", "cron:TIME", "trigger:TIME"; NULL for `send`
    Column("occurrence", String(64)),
    Index("ix_runs_campaign_status", "campaign", "status"),
    UniqueConstraint("campaign", "occurrence"),
)

# The send ledger: one row per run and customer, the source of truth and the work queue.
deliveries = Table(
    "deliveries", metadata,
    Column("id", Integer, primary_key=True),
    Column("run_id", Integer, ForeignKey("runs.id"), nullable=False),
    Column("customer_id", Integer, ForeignKey("customers.id"), nullable=False),
    Column("email", String(320), nullable=False),
    Column("state", String(16), nullable=False),  # queued, sending, sent, failed, deferred, unknown
    Column("attempts", Integer, nullable=False),
    Column("message_id", String(255), nullable=False),
    Column("last_error", String(500)),
    Column("updated_at", Moment, nullable=False),
    Column("sent_at", Moment),
    Column("not_before", Moment),         # local-time delivery or quiet hours: not earlier
    Column("lease_owner", String(100)),   # the worker holding it, until lease_until
    Column("lease_until", Moment),
    UniqueConstraint("run_id", "customer_id"),
    Index("ix_deliveries_run_id_state", "run_id", "state"),
    Index("ix_deliveries_customer_id_sent_at", "customer_id", "sent_at"),
    Index("ix_deliveries_lease_owner", "lease_owner"),
)

suppressions = Table(
    "suppressions", metadata,
    Column("id", Integer, primary_key=True),
    Column("email", String(320), nullable=False, unique=True),   # lower case
    Column("reason", String(32), nullable=False),    # unsubscribed, bounced, complaint, manual
    Column("note", String(500)),
    Column("created_at", Moment, nullable=False),
)

events = Table(
    "events", metadata,
    Column("id", Integer, primary_key=True),
    Column("customer_id", Integer, ForeignKey("customers.id")),
    Column("campaign", String(100)),
    Column("kind", String(32), nullable=False),      # unsubscribe, open, click, ...
    Column("created_at", Moment, nullable=False),
    Column("detail", JSON, nullable=False),
    Column("delivery_id", Integer, ForeignKey("deliveries.id")),
    Index("ix_events_campaign_kind", "campaign", "kind"),
    Index("ix_events_customer_id_kind_created_at", "customer_id", "kind", "created_at"),
    Index("ix_events_delivery_id_kind", "delivery_id", "kind"),
)

# One answer set per campaign and customer; a second submission updates it.
survey_responses = Table(
    "survey_responses", metadata,
    Column("id", Integer, primary_key=True),
    Column("campaign", String(100), nullable=False),
    Column("customer_id", Integer, ForeignKey("customers.id"), nullable=False),
    Column("delivery_id", Integer, ForeignKey("deliveries.id")),
    Column("answers", JSON, nullable=False),         # {"question_key": answer, ...}
    Column("created_at", Moment, nullable=False),
    Column("updated_at", Moment, nullable=False),
    UniqueConstraint("campaign", "customer_id"),
)

# Customers who paused campaign mail from the preference page, until when.
pauses = Table(
    "pauses", metadata,
    Column("customer_id", Integer, ForeignKey("customers.id"), primary_key=True),
    Column("paused_until", Moment, nullable=False),
    Column("created_at", Moment, nullable=False),
)

# One-off schedules (`campaign schedule NAME --at ...`), and one row per recurring campaign
# (`schedule: {cron: ...}` in its file) whose due_at is its next occurrence. The audience is
# picked when a run starts, not when it is scheduled.
schedules = Table(
    "schedules", metadata,
    Column("id", Integer, primary_key=True),
    Column("campaign", String(100), nullable=False),
    Column("due_at", Moment, nullable=False),          # UTC; the earliest delivery, if local
    Column("timezone", String(64), nullable=False),     # of --at (and the default for --local-time)
    Column("local_time", String(5)),                    # "09:00" in each customer's time zone
    Column("cron", String(100)),                        # of a recurring campaign
    Column("status", String(16), nullable=False),       # scheduled, started, cancelled, recurring
    Column("created_at", Moment, nullable=False),
    Column("started_at", Moment),
    Column("run_id", Integer, ForeignKey("runs.id")),
    Index("ix_schedules_status_due_at", "status", "due_at"),
)

# Lifecycle campaigns: each customer gets one at most once per triggering event.
triggered = Table(
    "triggered", metadata,
    Column("id", Integer, primary_key=True),
    Column("campaign", String(100), nullable=False),
    Column("customer_id", Integer, ForeignKey("customers.id"), nullable=False),
    Column("event_key", String(100), nullable=False),   # "order:EXTERNAL_ID", "birthday:2026"...
    Column("run_id", Integer, ForeignKey("runs.id")),   # NULL: the customer was left out
    Column("created_at", Moment, nullable=False),
    UniqueConstraint("campaign", "customer_id", "event_key"),
)

# `campaign worker` processes, alive while their heartbeat is recent.
workers = Table(
    "workers", metadata,
    Column("id", String(100), primary_key=True),        # host:pid:random
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", Moment, nullable=False),
    Column("heartbeat_at", Moment, nullable=False),
    Column("stopped_at", Moment),
    Column("sent", Integer, nullable=False),
)
