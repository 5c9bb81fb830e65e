"""The agent channel recommends several products (issue 17): mkt_agent_offer, the products each
agent recommendation listed, in order. Existing recommendations get their one product as rank 1,
so commission (which now reads this table) pays them as before.

Revision ID: 0011_agent_products
Revises: 0008_offer_value
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_agent_products"
down_revision = "0008_offer_value"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mkt_agent_offer",
        sa.Column("contact_id", sa.String(length=32), nullable=False),
        sa.Column("product_rank", sa.SmallInteger(), nullable=False),
        sa.Column("campaign_code", sa.String(length=16), nullable=False),
        sa.Column("product_code", sa.String(length=32), nullable=False),
        sa.Column("expected_value", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("contact_id", "product_rank"),
    )
    op.create_index("ix_mkt_agent_offer_product", "mkt_agent_offer", ["product_code", "contact_id"])
    op.execute("insert into mkt_agent_offer (contact_id, product_rank, campaign_code, product_code, expected_value) "
               "select contact_id, 1, campaign_code, product_code, null from mkt_contact "
               "where channel = 'agent' and product_code is not null")


def downgrade() -> None:
    op.drop_index("ix_mkt_agent_offer_product", table_name="mkt_agent_offer")
    op.drop_table("mkt_agent_offer")
