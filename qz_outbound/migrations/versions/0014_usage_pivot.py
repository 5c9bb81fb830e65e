"""The usage pivot segmentation reads instead of grouping three months of usage every cycle
(issue 20; docs/runbook.md §2 "The usage pivot"): ``mkt_usage_pivot``, list-partitioned by month
on PostgreSQL (created empty; the partitions are swapped in by segmentation), and
``mkt_usage_pivot_source``, the fingerprint each was built from. Two new tables, no data moved:
the first cycle after the upgrade builds the pivot.

Revision ID: 0014_usage_pivot
Revises: 0013_policy_evaluation
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014_usage_pivot"
down_revision = "0013_policy_evaluation"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mkt_usage_pivot",
        sa.Column("usage_month", sa.Date(), nullable=False),
        sa.Column("msisdn", sa.Text(), nullable=False),
        sa.Column("spend_m0", sa.Float(), nullable=True),
        sa.Column("spend_s", sa.Float(), nullable=True),
        sa.Column("voice_m0", sa.Float(), nullable=True),
        sa.Column("voice_s", sa.Float(), nullable=True),
        sa.Column("data_m0", sa.Float(), nullable=True),
        sa.Column("data_s", sa.Float(), nullable=True),
        sa.Column("sms_m0", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("usage_month", "msisdn"),
        postgresql_partition_by="LIST (usage_month)",
    )
    op.create_table(
        "mkt_usage_pivot_source",
        sa.Column("usage_month", sa.Date(), nullable=False),
        sa.Column("fingerprint", sa.Text(), nullable=False),
        sa.Column("customers", sa.BigInteger(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("built_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("built_for", sa.Date(), nullable=False),
        sa.PrimaryKeyConstraint("usage_month"),
    )


def downgrade() -> None:
    op.drop_table("mkt_usage_pivot_source")
    op.drop_table("mkt_usage_pivot")
