"""The feedback loop: events per delivery, survey responses and paused customers.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

Moment = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("delivery_id", sa.Integer))
        batch.create_foreign_key("fk_events_delivery_id_deliveries", "deliveries",
                                 ["delivery_id"], ["id"])
    op.create_index("ix_events_customer_id_kind_created_at", "events",
                    ["customer_id", "kind", "created_at"])
    op.create_index("ix_events_delivery_id_kind", "events", ["delivery_id", "kind"])
    op.create_table(
        "survey_responses",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("campaign", sa.String(100), nullable=False),
        sa.Column("customer_id", sa.Integer, nullable=False),
        sa.Column("delivery_id", sa.Integer),
        sa.Column("answers", sa.JSON, nullable=False),
        sa.Column("created_at", Moment, nullable=False),
        sa.Column("updated_at", Moment, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_survey_responses"),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"],
                                name="fk_survey_responses_customer_id_customers"),
        sa.ForeignKeyConstraint(["delivery_id"], ["deliveries.id"],
                                name="fk_survey_responses_delivery_id_deliveries"),
        sa.UniqueConstraint("campaign", "customer_id",
                            name="uq_survey_responses_campaign_customer_id"),
    )
    op.create_table(
        "pauses",
        sa.Column("customer_id", sa.Integer, nullable=False),
        sa.Column("paused_until", Moment, nullable=False),
        sa.Column("created_at", Moment, nullable=False),
        sa.PrimaryKeyConstraint("customer_id", name="pk_pauses"),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"],
                                name="fk_pauses_customer_id_customers"),
    )


def downgrade() -> None:
    op.drop_table("pauses")
    op.drop_table("survey_responses")
    op.drop_index("ix_events_delivery_id_kind", "events")
    op.drop_index("ix_events_customer_id_kind_created_at", "events")
    with op.batch_alter_table("events") as batch:
        batch.drop_constraint("fk_events_delivery_id_deliveries", type_="foreignkey")
        batch.drop_column("delivery_id")
