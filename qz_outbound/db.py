"""The one database access layer.

Engines for the two databases (``datamart``, read-only, and ``marketing_db``),
Jinja-rendered SQL from ``include/sql``, bulk loading (COPY on PostgreSQL,
``executemany`` on SQLite) and :func:`land_query`, which runs a query in one
database and lands its rows in a table of the other by the fastest route the
pair allows:

* the same database: one ``insert ... select`` inside it;
* two SQLite files: the data mart is ATTACHed read-only and it is still one
  ``insert ... select``;
* anything else: the rows stream through in chunks and are bulk loaded.

Dialect differences live in ``include/sql/dialect/<name>.sql`` as small named
Jinja macros; the SQL that states business rules is written once.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jinja2
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from qz_outbound import SQL_DIR

log = logging.getLogger(__name__)

SUPPORTED_DIALECTS = ("sqlite", "postgresql")


# ---------------------------------------------------------------- engines

def make_engine(url: str | sa.URL, **kwargs: Any) -> Engine:
    """An engine for an SQLAlchemy URL, tuned per dialect."""
    url = sa.make_url(url)
    if url.get_backend_name() == "postgresql" and url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    engine = sa.create_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # pragma: no cover - trivial
            cur = dbapi_conn.cursor()
            cur.execute("pragma journal_mode=wal")       # readers never block the writer
            cur.execute("pragma busy_timeout=60000")     # parallel county tasks wait, not fail
            cur.execute("pragma synchronous=normal")
            cur.execute("pragma temp_store=memory")
            cur.execute("pragma cache_size=-262144")     # 256 MB page cache for set work
            cur.close()
    if engine.dialect.name not in SUPPORTED_DIALECTS:
        raise ValueError(f"unsupported database {engine.dialect.name!r}; use one of {SUPPORTED_DIALECTS}")
    return engine


def sqlite_path(engine: Engine) -> Path | None:
    if engine.dialect.name != "sqlite" or not engine.url.database or engine.url.database == ":memory:":
        return None
    return Path(engine.url.database).resolve()


def same_database(a: Engine, b: Engine) -> bool:
    """True when both engines reach the same database (so one statement can span both)."""
    if a.dialect.name != b.dialect.name:
        return False
    if a.dialect.name == "sqlite":
        return sqlite_path(a) is not None and sqlite_path(a) == sqlite_path(b)
    ua, ub = a.url, b.url
    return (ua.host or "localhost", ua.port or 5432, ua.database) == (ub.host or "localhost", ub.port or 5432, ub.database)


# ---------------------------------------------------------------- SQL files

_jinja = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(SQL_DIR)),
    undefined=jinja2.StrictUndefined,   # a missing parameter is an error, never an empty string
    keep_trailing_newline=True,
    autoescape=False,
)


def render_sql(name: str, dialect: str, **context: Any) -> str:
    """Render ``include/sql/<name>`` for a dialect.

    Templates import their dialect's macros with
    ``{% import 'dialect/' ~ dialect ~ '.sql' as d %}``. Identifiers go through
    the context (``src`` is the prefix of data mart tables); values are always
    bind parameters.
    """
    if dialect not in SUPPORTED_DIALECTS:
        raise ValueError(f"unsupported dialect {dialect!r}")
    context.setdefault("src", "")
    return _jinja.get_template(name).render(dialect=dialect, **context)


# ---------------------------------------------------------------- bulk load

def _csv_buffer(rows: Iterable[Sequence[Any]]) -> io.StringIO:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    for row in rows:
        writer.writerow(["\\N" if v is None else v for v in row])
    buf.seek(0)
    return buf


def bulk_insert(conn: Connection, table: str, columns: Sequence[str], rows: Any) -> int:
    """Insert many rows fast on an open connection (inside the caller's transaction).

    ``rows`` is a pandas DataFrame (columns in ``columns`` order) or an iterable
    of tuples. PostgreSQL gets COPY; SQLite gets ``executemany``.
    Returns the number of rows written.
    """
    import pandas as pd

    if isinstance(rows, pd.DataFrame):
        frame = rows[list(columns)]
        n = len(frame)
        if n == 0:
            return 0
    else:
        frame = None
        rows = list(rows)
        n = len(rows)
        if n == 0:
            return 0
    cols = ", ".join(columns)
    dbapi = conn.connection.driver_connection
    if conn.dialect.name == "postgresql":
        if frame is not None:
            buf = io.StringIO()
            frame.to_csv(buf, header=False, index=False, na_rep="\\N", lineterminator="\n")
            buf.seek(0)
        else:
            buf = _csv_buffer(rows)
        with dbapi.cursor() as cur:
            with cur.copy(f"copy {table} ({cols}) from stdin with (format csv, null '\\N')") as copy:
                while chunk := buf.read(1 << 20):
                    copy.write(chunk)
    else:
        placeholders = ", ".join("?" for _ in columns)
        if frame is not None:
            # Python objects for sqlite3 (numpy scalars are not bindable); NaN/NA become NULL
            data = frame.astype(object).where(frame.notna(), None).itertuples(index=False, name=None)
        else:
            data = rows
        cur = dbapi.cursor()
        cur.executemany(f"insert into {table} ({cols}) values ({placeholders})", data)
        cur.close()
    return n


# ---------------------------------------------------------------- cross-database landing

def land_query(
    src: Engine,
    dst: Engine,
    template: str,
    params: Mapping[str, Any],
    table: str,
    columns: Sequence[str],
    *,
    replace_where: tuple[str, Mapping[str, Any]] | None = None,
    context: Mapping[str, Any] | None = None,
    chunk_rows: int = 200_000,
) -> int:
    """Run the SELECT in ``include/sql/<template>`` against ``src`` and land its rows in ``dst.table``.

    ``replace_where`` = (SQL condition, params) deletes the rows being replaced
    in the same transaction, so a re-run replaces a cycle atomically: readers
    see the old rows or the new ones, never half.
    Returns the number of rows landed.
    """
    context = dict(context or {})
    cols = ", ".join(columns)

    def _delete(conn: Connection) -> None:
        if replace_where:
            cond, cond_params = replace_where
            stmt = sa.text(f"delete from {table} where {cond}").bindparams(
                *[sa.bindparam(k, type_=sa.Date) for k, v in cond_params.items() if isinstance(v, dt.date)])
            conn.execute(stmt, dict(cond_params))

    if same_database(src, dst) or (src.dialect.name == dst.dialect.name == "sqlite" and sqlite_path(src)):
        use_attach = not same_database(src, dst)
        # SQLite cannot ATTACH inside a transaction: attach first, then begin.
        with dst.connect() as conn:
            if use_attach:
                conn.exec_driver_sql(f"attach database 'file:{sqlite_path(src)}?mode=ro' as dm")
                conn.commit()
            try:
                select_sql = render_sql(template, dst.dialect.name, src="dm." if use_attach else "", **context)
                with conn.begin():
                    _delete(conn)
                    result = conn.execute(sa.text(f"insert into {table} ({cols})\n{select_sql}"), dict(params))
                    n = result.rowcount
            finally:
                if use_attach:
                    conn.exec_driver_sql("detach database dm")
        log.info("landed %s rows into %s in-database", n, table)
        return n

    select_sql = render_sql(template, src.dialect.name, src="", **context)
    import pandas as pd

    n = 0
    with src.connect().execution_options(stream_results=True, yield_per=chunk_rows) as sconn, dst.begin() as dconn:
        _delete(dconn)
        result = sconn.execute(sa.text(select_sql), dict(params))
        for part in result.partitions(chunk_rows):
            frame = pd.DataFrame(part, columns=list(result.keys()))
            n += bulk_insert(dconn, table, columns, frame)
    log.info("landed %s rows into %s by streaming", n, table)
    return n
