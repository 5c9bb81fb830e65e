"""Budgets: the cost each cycle commits, the rows a budget excluded, the alerts sent.

Three new tables, no data moved (docs/budgets-kpi.md).

Revision ID: 0006_budgets_kpi
Revises: 0005_campaign_economics
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_budgets_kpi"
down_revision = "0005_campaign_economics"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mkt_budget_commit",
        sa.Column("cycle_date", sa.Date(), nullable=False),
        sa.Column("campaign_code", sa.String(length=16), nullable=False),
        sa.Column("county_code", sa.String(length=6), nullable=False),
        sa.Column("sms_contacts", sa.Integer(), nullable=False),
        sa.Column("sms_parts", sa.Integer(), nullable=False),
        sa.Column("calls", sa.Integer(), nullable=False),
        sa.Column("expected_conversions", sa.Float(), nullable=False),
        sa.Column("committed_yuan", sa.Float(), nullable=False),
        sa.Column("cut_rows", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("cycle_date", "campaign_code", "county_code"),
    )
    op.create_table(
        "mkt_budget_cut",
        sa.Column("cycle_date", sa.Date(), nullable=False),
        sa.Column("msisdn", sa.String(length=11), nullable=False),
        sa.Column("campaign_code", sa.String(length=16), nullable=False),
        sa.Column("county_code", sa.String(length=6), nullable=False),
        sa.Column("is_control", sa.SmallInteger(), nullable=False),
        sa.Column("by_county", sa.SmallInteger(), nullable=False),
        sa.PrimaryKeyConstraint("cycle_date", "msisdn"),
    )
    op.create_table(
        "mkt_budget_alert",
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("campaign_code", sa.String(length=16), nullable=False),
        sa.Column("county_code", sa.String(length=6), nullable=False),
        sa.Column("threshold", sa.SmallInteger(), nullable=False),
        sa.Column("cycle_date", sa.Date(), nullable=False),
        sa.Column("share", sa.Float(), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("month", "campaign_code", "county_code", "threshold"),
    )


def downgrade() -> None:
    op.drop_table("mkt_budget_alert")
    op.drop_table("mkt_budget_cut")
    op.drop_table("mkt_budget_commit")
