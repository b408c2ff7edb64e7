"""Scheduling and workers: schedules, run occurrences, delivery leases and times, triggers.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

Moment = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("occurrence", sa.String(64)))
        batch.create_unique_constraint("uq_runs_campaign_occurrence", ["campaign", "occurrence"])
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("not_before", Moment))
        batch.add_column(sa.Column("lease_owner", sa.String(100)))
        batch.add_column(sa.Column("lease_until", Moment))
    op.create_index("ix_deliveries_lease_owner", "deliveries", ["lease_owner"])
    op.create_table(
        "schedules",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("campaign", sa.String(100), nullable=False),
        sa.Column("due_at", Moment, nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("local_time", sa.String(5)),
        sa.Column("cron", sa.String(100)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", Moment, nullable=False),
        sa.Column("started_at", Moment),
        sa.Column("run_id", sa.Integer),
        sa.PrimaryKeyConstraint("id", name="pk_schedules"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_schedules_run_id_runs"),
    )
    op.create_index("ix_schedules_status_due_at", "schedules", ["status", "due_at"])
    op.create_table(
        "triggered",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("campaign", sa.String(100), nullable=False),
        sa.Column("customer_id", sa.Integer, nullable=False),
        sa.Column("event_key", sa.String(100), nullable=False),
        sa.Column("run_id", sa.Integer),
        sa.Column("created_at", Moment, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_triggered"),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"],
                                name="fk_triggered_customer_id_customers"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_triggered_run_id_runs"),
        sa.UniqueConstraint("campaign", "customer_id", "event_key",
                            name="uq_triggered_campaign_customer_id_event_key"),
    )
    op.create_table(
        "workers",
        sa.Column("id", sa.String(100), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("started_at", Moment, nullable=False),
        sa.Column("heartbeat_at", Moment, nullable=False),
        sa.Column("stopped_at", Moment),
        sa.Column("sent", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_workers"),
    )


def downgrade() -> None:
    op.drop_table("workers")
    op.drop_table("triggered")
    op.drop_index("ix_schedules_status_due_at", "schedules")
    op.drop_table("schedules")
    op.drop_index("ix_deliveries_lease_owner", "deliveries")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("lease_until")
        batch.drop_column("lease_owner")
        batch.drop_column("not_before")
    with op.batch_alter_table("runs") as batch:
        batch.drop_constraint("uq_runs_campaign_occurrence", type_="unique")
        batch.drop_column("occurrence")
