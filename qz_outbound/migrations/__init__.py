"""Schema migrations of ``marketing_db`` (Alembic), and the checks built on them.

The revisions live in ``versions/`` (how to write one: ``docs/migrations.md``); ``env.py`` runs them
on a connection this module passes in. Operators use them through ``qz-outbound db upgrade``,
``db check`` and ``db current``; ``check_config`` calls :func:`require_head` so a cycle never starts
on a database behind the code.

A database made by the release before migrations (``ensure_schema`` = ``create_all``, up to commit
d7efbdd) has the project's tables and no ``alembic_version``. :func:`upgrade` recognises it,
compares it with the baseline revision's frozen schema, refuses (listing the differences) when it
holds something the baseline cannot reconcile, and otherwise runs the baseline (which only adds
what is missing: tables, indexes, fillfactor) and the later revisions. No row is touched.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

HERE = Path(__file__).resolve().parent
VERSION_TABLE = "alembic_version"
BASELINE = "0001_baseline"
_LOCK_KEY = 0x717A6F7574   # pg_advisory_lock key: one migration at a time per database


class SchemaError(RuntimeError):
    """``marketing_db`` cannot be used or migrated as it is; the message says what to do."""


def target_metadata() -> sa.MetaData:
    from qz_outbound.metadata import full_metadata

    return full_metadata()


def include_name(name, type_, parent_names) -> bool:
    """Compare only the project's tables (not the data mart, cycle partitions or stage tables)."""
    if type_ == "table":
        return name in target_metadata().tables
    return True


def alembic_config(connection: Connection | None = None, extra_versions: list[Path] = ()):
    """The Alembic config; ``extra_versions``: more revision folders (a test's revision)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("file_template", "%%(rev)s")   # versions/<rev_id>.py, e.g. 0002_portal_upload_kind.py
    cfg.set_main_option("version_locations", os.pathsep.join(str(p) for p in [HERE / "versions", *extra_versions]))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head(extra_versions: list[Path] = ()) -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config(extra_versions=extra_versions)).get_current_head()


def current(engine: Engine) -> str | None:
    """The revision ``engine``'s database is at (None: not under migrations)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def is_pre_migration(engine: Engine) -> bool:
    """Project tables but no ``alembic_version``: made by the release before migrations."""
    names = set(sa.inspect(engine).get_table_names())
    return VERSION_TABLE not in names and bool(names & set(target_metadata().tables))


def _baseline_metadata() -> sa.MetaData:
    path = HERE / "versions" / f"{BASELINE}.py"
    spec = importlib.util.spec_from_file_location("qz_outbound_migrations_baseline", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.metadata


# Differences the baseline reconciles on a pre-migration database (it creates what is missing).
_BASELINE_ADDS = {"add_table", "add_index"}


def upgrade(engine: Engine, revision: str = "head", extra_versions: list[Path] = ()) -> str:
    """Migrate ``engine``'s database to ``revision`` (head); returns the revision it is at."""
    from alembic import command

    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"select pg_advisory_lock({_LOCK_KEY})")
            conn.commit()
        try:
            if is_pre_migration(conn):
                blocking = [d for d in _differences(conn, _baseline_metadata()) if d[0] not in _BASELINE_ADDS]
                if blocking:
                    raise SchemaError(
                        "marketing_db was made by a release before migrations and differs from the "
                        "baseline in ways it cannot reconcile without losing data:\n  "
                        + "\n  ".join(_describe(d) for d in blocking)
                        + "\nSee docs/migrations.md (an older database).")
            command.upgrade(alembic_config(conn, extra_versions), revision)
            conn.commit()
        finally:
            if conn.dialect.name == "postgresql":
                conn.rollback()
                conn.exec_driver_sql(f"select pg_advisory_unlock({_LOCK_KEY})")
                conn.commit()
    return current(engine)


def stamp(engine: Engine, revision: str) -> None:
    from alembic import command

    with engine.connect() as conn:
        command.stamp(alembic_config(conn), revision)
        conn.commit()


def check(engine: Engine, metadata: sa.MetaData | None = None, extra_versions: list[Path] = ()) -> list[str]:
    """What differs between the database and the models (empty: it matches and is at head)."""
    metadata = metadata if metadata is not None else target_metadata()
    problems = []
    at, want = current(engine), head(extra_versions)
    if at != want:
        problems.append(f"at revision {at or '(none: not under migrations)'}, head is {want}")
    with engine.connect() as conn:
        problems += [_describe(d) for d in _differences(conn, metadata)]
        problems += _dialect_differences(conn, metadata)
    return problems


def require_head(engine: Engine, what: str = "marketing_db") -> str:
    """Raise :class:`SchemaError` naming the command to run unless the database is at head."""
    try:
        at = current(engine)
    except sa.exc.SQLAlchemyError as exc:
        raise SchemaError(f"{what}: cannot read its schema revision: {type(exc).__name__}: "
                          f"{str(exc).splitlines()[0]}") from None
    want = head()
    if at != want:
        state = "not under migrations (empty, or made by the release before them)" if at is None \
            else f"at revision {at}"
        raise SchemaError(f"{what} is {state}; the code needs revision {want}. Run "
                          f"`qz-outbound db upgrade --marketing <{what} URL>` (docs/migrations.md)")
    return at


# ---------------------------------------------------------------- comparing

def _differences(conn: Connection, metadata: sa.MetaData) -> list[tuple]:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    def include(name, type_, parent_names):
        return name in metadata.tables if type_ == "table" else True

    ctx = MigrationContext.configure(conn, opts={"include_name": include, "compare_type": True})
    flat = []
    for diff in compare_metadata(ctx, metadata):
        flat += diff if isinstance(diff, list) else [diff]   # column modifications come as lists
    return flat


def _describe(diff: tuple) -> str:
    kind = diff[0]
    if kind in ("add_table", "remove_table"):
        return f"{'missing' if kind == 'add_table' else 'unexpected'} table {diff[1].name}"
    if kind in ("add_column", "remove_column"):
        return f"{'missing' if kind == 'add_column' else 'unexpected'} column {diff[2]}.{diff[3].name}"
    if kind in ("add_index", "remove_index"):
        ix = diff[1]
        return f"{'missing' if kind == 'add_index' else 'unexpected'} index {ix.name} on {ix.table.name}"
    if kind in ("add_constraint", "remove_constraint"):
        c = diff[1]
        return f"{'missing' if kind == 'add_constraint' else 'unexpected'} constraint {c.name} on {c.table.name}"
    if kind.startswith("modify_"):
        _, _, table, column, _, old, new = diff
        return f"column {table}.{column}: {kind[7:]} is {old!r} in the database, {new!r} in the models"
    return repr(diff)


@dataclass(frozen=True)
class _Expect:
    partition_by: str | None
    fillfactor: int | None


def _key_and_collation_differences(conn: Connection, table: sa.Table) -> list[str]:
    """PostgreSQL: the primary key's column order (``info["postgresql_primary_key"]`` where it is not
    the models' order) and each text column's collation (none: the database's)."""
    problems = []
    want_key = list(table.info.get("postgresql_primary_key") or [c.name for c in table.primary_key.columns])
    have_key = sa.inspect(conn).get_pk_constraint(table.name)["constrained_columns"]   # in the key's order
    if want_key and have_key != want_key:
        problems.append(f"table {table.name}: primary key ({', '.join(have_key)}) in the database, "
                        f"({', '.join(want_key)}) in the models")
    have = dict(conn.execute(sa.text(
        "select a.attname, case when a.attcollation = 100 then null else c.collname end "   # 100: default
        "from pg_attribute a left join pg_collation c on c.oid = a.attcollation "
        "where a.attrelid = cast(:t as regclass) and a.attnum > 0 and not a.attisdropped "
        "and a.attcollation <> 0"), {"t": table.name}).all())
    for column in table.columns:
        if column.name in have:
            want = getattr(column.type.dialect_impl(conn.dialect), "collation", None)
            if have[column.name] != want:
                problems.append(f"column {table.name}.{column.name}: collation {have[column.name] or 'default'} "
                                f"in the database, {want or 'default'} in the models")
    return problems


def _dialect_differences(conn: Connection, metadata: sa.MetaData) -> list[str]:
    """What Alembic's comparison does not see: partitioning, fillfactor, partial-index predicates,
    and on PostgreSQL the primary key's column order and text columns' collations."""
    problems = []
    existing = set(sa.inspect(conn).get_table_names())
    for table in metadata.sorted_tables:
        if table.name not in existing:
            continue
        if conn.dialect.name == "postgresql":
            opts = table.dialect_options["postgresql"]
            expect = _Expect(opts.get("partition_by"), (opts.get("with") or {}).get("fillfactor"))
            row = conn.execute(sa.text(
                "select pg_get_partkeydef(c.oid), c.reloptions from pg_class c "
                "where c.oid = cast(:t as regclass)"), {"t": table.name}).one()
            partkey, reloptions = row
            if (expect.partition_by or None) != (partkey or None):
                if expect.partition_by and not partkey:
                    problems.append(f"table {table.name}: not partitioned, the models say PARTITION BY "
                                    f"{expect.partition_by}")
                elif partkey and not expect.partition_by:
                    problems.append(f"table {table.name}: partitioned by {partkey}, the models say not")
                elif partkey.replace(" ", "").lower() != expect.partition_by.replace(" ", "").lower():
                    problems.append(f"table {table.name}: partitioned by {partkey}, the models say "
                                    f"{expect.partition_by}")
            have_ff = next((int(o.split("=", 1)[1]) for o in reloptions or [] if o.startswith("fillfactor=")),
                           None)
            if have_ff != (int(expect.fillfactor) if expect.fillfactor else None):
                problems.append(f"table {table.name}: fillfactor {have_ff or 'default'} in the database, "
                                f"{expect.fillfactor or 'default'} in the models")
            problems += _key_and_collation_differences(conn, table)
        for index in table.indexes:
            partial = index.dialect_options[conn.dialect.name].get("where") is not None
            if conn.dialect.name == "postgresql":
                ddl = conn.execute(sa.text("select indexdef from pg_indexes where indexname = :n"),
                                   {"n": index.name}).scalar()
            else:
                ddl = conn.execute(sa.text("select sql from sqlite_master where type = 'index' and name = :n"),
                                   {"n": index.name}).scalar()
            if ddl is not None and partial != (" where " in ddl.lower()):
                problems.append(f"index {index.name} on {table.name}: "
                                + ("not partial, the models give it a WHERE clause" if partial
                                   else "partial, the models say it is not"))
    return problems
