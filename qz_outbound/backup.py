"""Backup and restore of ``marketing_db`` (``qz-outbound db backup`` / ``db restore``).

``marketing_db`` holds what cannot be rebuilt from the data mart: the contact history, the
opt-outs (losing ``mkt_opt_out`` means texting people who said no), the SMS journal and the
commission ledger. Recovery steps and the schedule are in ``docs/runbook.md``.

* PostgreSQL: ``pg_dump --format=custom`` (compressed, restorable table by table and in parallel)
  and ``pg_restore``. The password goes through the environment (``PGPASSWORD``), never the command
  line. Set ``QZ_PG_BIN`` to the folder of a ``pg_dump`` at least as new as the server if the one
  on ``PATH`` is older.
* SQLite: the online backup API (a consistent copy while the file is in use), in both directions.

Backup files hold customer numbers: they are written mode 0600 (docs/security.md).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine


class BackupError(RuntimeError):
    pass


@dataclass(frozen=True)
class Done:
    path: Path
    bytes: int
    seconds: float


def _tool(name: str) -> str:
    folder = os.environ.get("QZ_PG_BIN")
    path = str(Path(folder) / name) if folder else shutil.which(name)
    if not path or not Path(path).exists():
        raise BackupError(f"{name} not found (install postgresql-client, or set QZ_PG_BIN to its folder)")
    return path


def _libpq_env(url: sa.URL, database: str | None = None) -> dict[str, str]:
    env = dict(os.environ)
    for var, value in (("PGHOST", url.host), ("PGPORT", url.port), ("PGUSER", url.username),
                       ("PGPASSWORD", url.password), ("PGDATABASE", database or url.database)):
        if value is not None:
            env[var] = str(value)
    return env


def _run(cmd: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise BackupError(f"{Path(cmd[0]).name} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")


def backup(engine: Engine, out: Path) -> Done:
    """Write a consistent backup of the database to ``out`` (custom-format dump, or an SQLite file)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    tmp.unlink(missing_ok=True)
    started = time.monotonic()
    old_umask = os.umask(0o077)      # the file holds customer numbers
    try:
        if engine.dialect.name == "postgresql":
            _run([_tool("pg_dump"), "--format=custom", "--no-owner", "--no-privileges", f"--file={tmp}"],
                 _libpq_env(engine.url))
        else:
            src = sqlite3.connect(engine.url.database)
            dst = sqlite3.connect(tmp)
            try:
                src.backup(dst, pages=65536)
            finally:
                dst.close()
                src.close()
        os.chmod(tmp, 0o600)
        tmp.replace(out)             # a finished backup only: never a half-written file under the name
    finally:
        os.umask(old_umask)
        tmp.unlink(missing_ok=True)
    return Done(out, out.stat().st_size, time.monotonic() - started)


def _has_tables(engine: Engine) -> bool:
    from qz_outbound.metadata import full_metadata

    try:
        return bool(set(sa.inspect(engine).get_table_names()) & set(full_metadata().tables))
    except sa.exc.OperationalError:
        return False


def _ensure_pg_database(url: sa.URL) -> None:
    """Create the target database if it is gone (the disk was lost, or it was dropped)."""
    admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            if not conn.execute(sa.text("select 1 from pg_database where datname = :n"), {"n": url.database}).scalar():
                conn.exec_driver_sql(f'create database "{url.database}"')
    finally:
        admin.dispose()


def restore(engine: Engine, source: Path, *, force: bool = False, jobs: int = 1) -> Done:
    """Restore a backup made by :func:`backup` into the database of ``engine``.

    Refuses a database that holds the project's tables unless ``force`` (they are replaced).
    """
    source = Path(source)
    if not source.is_file():
        raise BackupError(f"no backup file at {source}")
    started = time.monotonic()
    if engine.dialect.name == "postgresql":
        _ensure_pg_database(engine.url)
        if _has_tables(engine) and not force:
            raise BackupError(f"{engine.url.database} holds marketing_db tables: give --force to replace them")
        engine.dispose()
        cmd = [_tool("pg_restore"), "--no-owner", "--no-privileges", "--clean", "--if-exists", "--exit-on-error",
               f"--dbname={engine.url.database}"]
        cmd += [f"--jobs={jobs}"] if jobs > 1 else ["--single-transaction"]
        _run(cmd + [str(source)], _libpq_env(engine.url))
    else:
        target = Path(engine.url.database)
        if target.exists() and _has_tables(engine) and not force:
            raise BackupError(f"{target} holds marketing_db tables: give --force to replace them")
        engine.dispose()
        with sqlite3.connect(source) as src_check:
            if src_check.execute("pragma integrity_check").fetchone()[0] != "ok":
                raise BackupError(f"{source} is not a sound SQLite file")
        old_umask = os.umask(0o077)
        try:
            src = sqlite3.connect(source)
            dst = sqlite3.connect(target)
            try:
                src.backup(dst, pages=65536)
            finally:
                dst.close()
                src.close()
        finally:
            os.umask(old_umask)
    return Done(source, source.stat().st_size, time.monotonic() - started)
