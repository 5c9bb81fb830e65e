"""Campaigns held back by the target-list audit (a check about one campaign failed).

Replaced by every audit of a cycle, so a passing re-audit lifts the hold; ``publish_county``
skips a held campaign's rows and the agent decision answers ``campaign_held``.

Revision ID: 0003_target_hold
Revises: 0002_upload_identity
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_target_hold"
down_revision = "0002_upload_identity"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mkt_target_hold",
        sa.Column("cycle_date", sa.Date(), nullable=False),
        sa.Column("campaign_code", sa.String(length=16), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("held_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("cycle_date", "campaign_code"),
    )


def downgrade() -> None:
    op.drop_table("mkt_target_hold")
