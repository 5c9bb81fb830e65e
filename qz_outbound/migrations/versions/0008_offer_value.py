"""The learning loop's measured cells: what an offer of a campaign is expected to earn per
stability type x spend tier x market segment (docs/learning.md), and the arbitration log on the
target list (how each offer was chosen, with what probability, and what the fixed and the learned
policy would each have chosen: what the offline evaluation replays). Existing rows read null.

Revision ID: 0008_offer_value
Revises: 0007_callcentre
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_offer_value"
down_revision = "0007_callcentre"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mkt_offer_value",
        sa.Column("cycle_date", sa.Date(), nullable=False),
        sa.Column("campaign_code", sa.String(length=16), nullable=False),
        sa.Column("stability_type", sa.String(length=2), nullable=False),
        sa.Column("spend_tier", sa.SmallInteger(), nullable=False),
        sa.Column("market_segment", sa.String(length=16), nullable=False),
        sa.Column("contacted", sa.Integer(), nullable=False),
        sa.Column("control", sa.Integer(), nullable=False),
        sa.Column("conv_contacted", sa.Integer(), nullable=False),
        sa.Column("conv_control", sa.Integer(), nullable=False),
        sa.Column("uplift_raw", sa.Float(), nullable=True),
        sa.Column("uplift", sa.Float(), nullable=False),
        sa.Column("uplift_sd", sa.Float(), nullable=True),
        sa.Column("value_per_conversion", sa.Float(), nullable=False),
        sa.Column("expected_cost", sa.Float(), nullable=False),
        sa.Column("expected_value", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("cycle_date", "campaign_code", "stability_type", "spend_tier",
                                "market_segment"),
    )


    with op.batch_alter_table("mkt_target") as batch:
        batch.add_column(sa.Column("arm", sa.String(length=8), nullable=True))
        batch.add_column(sa.Column("propensity", sa.Float(), nullable=True))
        batch.add_column(sa.Column("fixed_code", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("learned_code", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("mkt_target") as batch:
        batch.drop_column("learned_code")
        batch.drop_column("fixed_code")
        batch.drop_column("propensity")
        batch.drop_column("arm")
    op.drop_table("mkt_offer_value")
