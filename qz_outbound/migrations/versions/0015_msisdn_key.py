"""PostgreSQL only: the customer number of ``mkt_segment_snapshot`` and ``mkt_usage_pivot`` compared
byte by byte (collation "C") and leading their primary keys, (msisdn, cycle_date) and
(msisdn, usage_month). Segmentation builds the snapshot's key for every cycle's partition (and the
pivot's for every month's): under the database's collation the 6.24 M-row key took 5.6–8.0 s,
this way 2.2–2.9 s (issue 20; benchmarks/results/segmentation.md, 2026-12-03 13:00). Within a
partition the cycle is one value, so leading with it ordered nothing.

SQLite is left as it is: it keeps every cycle in one table and reads it by cycle, and its text
comparison is bytewise already.

No row changes. The keys are rebuilt on every partition kept (35 cycles of the snapshot: about
2.5 s each at 6.4 M customers) under an exclusive lock: run it with the DAGs paused, as every
upgrade.

Revision ID: 0015_msisdn_key
Revises: 0014_usage_pivot
"""

from __future__ import annotations

from alembic import op

revision = "0015_msisdn_key"
down_revision = "0014_usage_pivot"
branch_labels = None
depends_on = None

# table, msisdn's type, the partition key
_TABLES = [("mkt_segment_snapshot", "varchar(11)", "cycle_date"), ("mkt_usage_pivot", "text", "usage_month")]


def _rekey(collation: str, key: str) -> None:
    for table, type_, part in _TABLES:
        op.execute(f"alter table {table} drop constraint {table}_pkey")
        # the same type in another collation: no rewrite of the rows
        op.execute(f"alter table {table} alter column msisdn type {type_} collate {collation}")
        op.execute(f"alter table {table} add constraint {table}_pkey primary key ({key.format(part=part)})")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _rekey('"C"', "msisdn, {part}")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _rekey('"default"', "{part}, msisdn")
