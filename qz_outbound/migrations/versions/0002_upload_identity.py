"""Call outcomes: whether the county gave the call time; uploads: rows an earlier upload loaded.

A re-uploaded call list (the same list as it is worked) adds only what is new: an outcome row is
identified by (contact, outcome, time as given), or (contact, outcome) when the file has no time.
``called_at_given`` says which; ``rows_already_loaded`` counts the rows a new upload found loaded.

Revision ID: 0002_upload_identity
Revises: 0001_baseline
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_upload_identity"
down_revision = "0001_baseline"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("mkt_call_outcome") as batch:
        batch.add_column(sa.Column("called_at_given", sa.Boolean(), server_default=sa.true(), nullable=False))
    # before this revision a row without a time was stamped with the upload time in both columns
    op.execute("update mkt_call_outcome set called_at_given = (called_at <> loaded_at)")
    with op.batch_alter_table("portal_upload") as batch:
        batch.add_column(sa.Column("rows_already_loaded", sa.Integer(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("portal_upload") as batch:
        batch.drop_column("rows_already_loaded")
    with op.batch_alter_table("mkt_call_outcome") as batch:
        batch.drop_column("called_at_given")
