"""Customer tags (docs/learning.md "Customer tags"): per customer, the demand, preference and
promotion tags config/tags.yaml derives from the contact history, refreshed every cycle and read by
the target list (a campaign's target.tags_any / tags_none) and the HQ trajectory lookup.

Revision ID: 0012_customer_tags
Revises: 0011_agent_products
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_customer_tags"
down_revision = "0011_agent_products"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mkt_customer_tag",
        sa.Column("msisdn", sa.String(length=11), nullable=False),
        sa.Column("tag", sa.String(length=32), nullable=False),
        sa.Column("first_tagged", sa.Date(), nullable=False),
        sa.Column("last_evidence", sa.Date(), nullable=False),
        sa.Column("evidence_count", sa.Integer(), nullable=False),
        sa.Column("updated_cycle", sa.Date(), nullable=False),
        sa.PrimaryKeyConstraint("msisdn", "tag"),
    )


def downgrade() -> None:
    op.drop_table("mkt_customer_tag")
