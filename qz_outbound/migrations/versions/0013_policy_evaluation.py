"""The learning loop's offline evaluation: one row per evaluation day x policy x estimator with the
inverse-propensity-weighted value per offer of the fixed priorities, the learned policy and their
paired difference over the logged cycles (docs/learning.md "Offline evaluation and guard rails").
One new table, no data moved.

Revision ID: 0013_policy_evaluation
Revises: 0012_customer_tags
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_policy_evaluation"
down_revision = "0012_customer_tags"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mkt_policy_evaluation",
        sa.Column("evaluated_on", sa.Date(), nullable=False),
        sa.Column("policy", sa.String(length=16), nullable=False),
        sa.Column("estimator", sa.String(length=8), nullable=False),
        sa.Column("window_start", sa.Date(), nullable=False),
        sa.Column("window_end", sa.Date(), nullable=False),
        sa.Column("cycles", sa.Integer(), nullable=False),
        sa.Column("estimate", sa.Float(), nullable=True),
        sa.Column("se", sa.Float(), nullable=True),
        sa.Column("ci_low", sa.Float(), nullable=True),
        sa.Column("ci_high", sa.Float(), nullable=True),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("matched", sa.Integer(), nullable=False),
        sa.Column("ess", sa.Float(), nullable=True),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("evaluated_on", "policy", "estimator"),
    )


def downgrade() -> None:
    op.drop_table("mkt_policy_evaluation")
