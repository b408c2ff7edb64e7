"""Sending: runs, the send ledger (deliveries), suppressions and events.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

Moment = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("campaign", sa.String(100), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("evaluated_at", Moment, nullable=False),
        sa.Column("started_at", Moment, nullable=False),
        sa.Column("finished_at", Moment),
        sa.Column("excluded", sa.JSON, nullable=False),
        sa.Column("note", sa.String(500)),
        sa.PrimaryKeyConstraint("id", name="pk_runs"),
    )
    op.create_index("ix_runs_campaign_status", "runs", ["campaign", "status"])
    op.create_table(
        "deliveries",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("run_id", sa.Integer, nullable=False),
        sa.Column("customer_id", sa.Integer, nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("message_id", sa.String(255), nullable=False),
        sa.Column("last_error", sa.String(500)),
        sa.Column("updated_at", Moment, nullable=False),
        sa.Column("sent_at", Moment),
        sa.PrimaryKeyConstraint("id", name="pk_deliveries"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_deliveries_run_id_runs"),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"],
                                name="fk_deliveries_customer_id_customers"),
        sa.UniqueConstraint("run_id", "customer_id", name="uq_deliveries_run_id_customer_id"),
    )
    op.create_index("ix_deliveries_run_id_state", "deliveries", ["run_id", "state"])
    op.create_index("ix_deliveries_customer_id_sent_at", "deliveries", ["customer_id", "sent_at"])
    op.create_table(
        "suppressions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("note", sa.String(500)),
        sa.Column("created_at", Moment, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_suppressions"),
        sa.UniqueConstraint("email", name="uq_suppressions_email"),
    )
    op.create_table(
        "events",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("customer_id", sa.Integer),
        sa.Column("campaign", sa.String(100)),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("created_at", Moment, nullable=False),
        sa.Column("detail", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"],
                                name="fk_events_customer_id_customers"),
    )
    op.create_index("ix_events_campaign_kind", "events", ["campaign", "kind"])


def downgrade() -> None:
    op.drop_table("events")
    op.drop_table("suppressions")
    op.drop_table("deliveries")
    op.drop_table("runs")
