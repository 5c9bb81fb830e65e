"""Call-centre operations: follow-up attempts in the contact history, agent and callback date of
an outcome, and the indexes the follow-ups and the wrong-number suppression read (by county and cycle; by
number and call time).

mkt_contact gains attempt / first_contact_id / call_kind (a redial or callback is a row of its own
on a later cycle's call list, pointing at the offer's first contact); mkt_call_outcome gains the
optional agent id (坐席工号) and callback date (回拨日期) of an upload. All nullable: existing rows
are first attempts and outcomes without an agent.

Revision ID: 0007_callcentre
Revises: 0006_budgets_kpi
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_callcentre"
down_revision = "0006_budgets_kpi"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("mkt_contact") as batch:
        batch.add_column(sa.Column("attempt", sa.SmallInteger(), nullable=True))
        batch.add_column(sa.Column("first_contact_id", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("call_kind", sa.String(length=8), nullable=True))
    op.create_index("ix_mkt_contact_first", "mkt_contact", ["first_contact_id"])
    with op.batch_alter_table("mkt_call_outcome") as batch:
        batch.add_column(sa.Column("agent_id", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("callback_on", sa.Date(), nullable=True))
    op.create_index("ix_mkt_call_outcome_msisdn", "mkt_call_outcome", ["msisdn", "called_at"])
    op.create_index("ix_mkt_call_outcome_county", "mkt_call_outcome", ["county_code", "cycle_date"])


def downgrade() -> None:
    op.drop_index("ix_mkt_call_outcome_county", table_name="mkt_call_outcome")
    op.drop_index("ix_mkt_call_outcome_msisdn", table_name="mkt_call_outcome")
    with op.batch_alter_table("mkt_call_outcome") as batch:
        batch.drop_column("callback_on")
        batch.drop_column("agent_id")
    op.drop_index("ix_mkt_contact_first", table_name="mkt_contact")
    with op.batch_alter_table("mkt_contact") as batch:
        batch.drop_column("call_kind")
        batch.drop_column("first_contact_id")
        batch.drop_column("attempt")
