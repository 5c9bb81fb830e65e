"""Campaign economics (economics.md): mkt_campaign_economics for HQ's BI, stg_subscriber for retention.

``mkt_campaign_economics`` is one row per cycle date × campaign × slice, rewritten as after-months of
bills arrive; ``stg_subscriber`` is the latest subscriber snapshot's status and market segment,
replaced whole by every economics run. Both are new tables: nothing to move.

Revision ID: 0005_campaign_economics
Revises: 0004_plan
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_campaign_economics"
down_revision = "0004_plan"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mkt_campaign_economics",
        sa.Column("cycle_date", sa.Date(), nullable=False),
        sa.Column("campaign_code", sa.String(length=16), nullable=False),
        sa.Column("slice", sa.String(length=48), nullable=False),
        sa.Column("after_months", sa.SmallInteger(), nullable=False),
        sa.Column("contacted", sa.Integer(), nullable=False),
        sa.Column("control", sa.Integer(), nullable=False),
        sa.Column("conversion_uplift", sa.Float(), nullable=True),
        sa.Column("incremental_arpu", sa.Float(), nullable=True),
        sa.Column("arpu_ci_low", sa.Float(), nullable=True),
        sa.Column("arpu_ci_high", sa.Float(), nullable=True),
        sa.Column("incremental_revenue", sa.Float(), nullable=True),
        sa.Column("customers_kept", sa.Float(), nullable=True),
        sa.Column("cost", sa.Float(), nullable=True),
        sa.Column("roi", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("cycle_date", "campaign_code", "slice"),
    )
    op.create_table(
        "stg_subscriber",
        sa.Column("msisdn", sa.String(length=11), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("market_segment", sa.String(length=16), nullable=True),
        sa.PrimaryKeyConstraint("msisdn"),
    )


def downgrade() -> None:
    op.drop_table("stg_subscriber")
    op.drop_table("mkt_campaign_economics")
