"""The segment snapshot keeps what the plan targets and tabulates by: terminal type, M0 SMS count,
hard and soft bundles counted separately (a customer with both is in both), package users.

Nullable: cycles segmented before this revision have no value (the reports read them as 0 /
unknown); every cycle segmented after it fills them.

Revision ID: 0004_plan
Revises: 0003_target_hold
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_plan"
down_revision = "0003_target_hold"
branch_labels = None
depends_on = None

COLUMNS = [
    ("terminal_type", sa.String(length=8)),
    ("sms_m0", sa.Integer()),
    ("has_hard_bundle", sa.SmallInteger()),
    ("has_soft_bundle", sa.SmallInteger()),
    ("has_package", sa.SmallInteger()),
]


def upgrade() -> None:
    with op.batch_alter_table("mkt_segment_snapshot") as batch:
        for name, type_ in COLUMNS:
            batch.add_column(sa.Column(name, type_, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("mkt_segment_snapshot") as batch:
        for name, _type in reversed(COLUMNS):
            batch.drop_column(name)
