"""Alembic environment of ``marketing_db`` (run through :mod:`qz_outbound.migrations`).

Online only: the caller passes a connection in ``config.attributes["connection"]``. Only the
project's own tables are compared: a data mart sharing the database (the demo, the tests), the
cycle partitions and stage tables of the tasks are left alone.
"""

from __future__ import annotations

from alembic import context

from qz_outbound.migrations import include_name, target_metadata

config = context.config
connection = config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=target_metadata(),
    include_name=include_name,
    compare_type=True,
    render_as_batch=connection.dialect.name == "sqlite",   # SQLite alters a table by copying it
    transaction_per_migration=True,
)
with context.begin_transaction():
    context.run_migrations()
