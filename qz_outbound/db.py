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

import contextlib
import csv
import datetime as dt
import hashlib
import io
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import jinja2
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from qz_outbound import SQL_DIR

log = logging.getLogger(__name__)

SUPPORTED_DIALECTS = ("sqlite", "postgresql")


# ---------------------------------------------------------------- engines

def hash32(text: str | None) -> int | None:
    """The first 32 bits of md5(text) as a non-negative integer: the dialect macro ``hash32``
    (``include/sql/dialect/``) in Python. PostgreSQL computes it with its own md5; on SQLite it is
    this function, registered as ``qz_hash32`` on every connection :func:`make_engine` opens."""
    if text is None:
        return None
    return int(hashlib.md5(str(text).encode("utf-8"), usedforsecurity=False).hexdigest()[:8], 16)


def make_engine(url: str | sa.URL, **kwargs: Any) -> Engine:
    """An engine for an SQLAlchemy URL, tuned per dialect."""
    url = sa.make_url(url)
    if url.get_backend_name() == "postgresql" and url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    # SQL errors end up in Airflow task logs, which any viewer can read: never print the parameters
    kwargs.setdefault("hide_parameters", True)
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
            # the control-group / A/B assignment hash (target_list.sql), same as PostgreSQL's md5
            dbapi_conn.create_function("qz_hash32", 1, hash32, deterministic=True)
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


def one_statement_reads_both(src: Engine, dst: Engine) -> bool:
    """True when one statement on ``dst`` can read ``src``'s tables: the same database, or two
    SQLite files (``src`` attached read-only). Otherwise rows travel between them."""
    return same_database(src, dst) or (src.dialect.name == dst.dialect.name == "sqlite"
                                       and sqlite_path(src) is not None)


def can_relay(src: Engine, dst: Engine) -> bool:
    """True when a statement on ``dst`` can read rows ``src`` computed, copied into a temporary
    table first (``land_query``'s ``relay``): two PostgreSQL databases."""
    return src.dialect.name == dst.dialect.name == "postgresql"


# ---------------------------------------------------------------- SQL files

_jinja = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(SQL_DIR)),
    undefined=jinja2.StrictUndefined,   # a missing parameter is an error, never an empty string
    keep_trailing_newline=True,
    autoescape=False,
)


def date_value(engine: Engine, day: dt.date) -> Any:
    """A date as a bind parameter of plain text SQL: ISO text on SQLite (dates are stored as text
    there), the date itself on PostgreSQL."""
    return day.isoformat() if engine.dialect.name == "sqlite" else day


def date_binds(sql: str, *names: str) -> sa.TextClause:
    """Plain text SQL whose bind parameters ``names`` are typed as dates, so callers pass
    ``datetime.date`` objects on both databases (SQLAlchemy's Date type writes them as ISO text on
    SQLite, where dates are stored as text, and as dates on PostgreSQL)."""
    return sa.text(sql).bindparams(*(sa.bindparam(n, type_=sa.Date) for n in names))


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


# ---------------------------------------------------------------- upsert

def upsert(
    conn: Connection,
    table: sa.Table,
    rows: Mapping[str, Any] | Sequence[Mapping[str, Any]],
    key: Sequence[str],
    *,
    update: Sequence[str] = (),
    when: Callable[[Any], Any] | None = None,
    index_where: Any = None,
) -> int:
    """Insert ``rows`` into ``table``; a row whose ``key`` is already there is left as it is, or,
    with ``update``, gets those columns from the new row (``when``, given the ``excluded``
    pseudo-table, narrows which conflicting rows are updated). One statement
    (``insert ... on conflict``, on PostgreSQL and SQLite alike), so concurrent writers of the same
    key never collide: there is no check-then-insert to race. ``index_where`` names a partial
    unique index. Returns the number of rows the database reports inserted or updated (for a single
    row with nothing to update: 1 if it was new, 0 if it was there)."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif conn.dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # pragma: no cover - make_engine refuses others
        raise ValueError(f"unsupported database {conn.dialect.name!r}")
    if isinstance(rows, Mapping):
        rows = [rows]
    if not rows:
        return 0
    stmt = insert(table)
    if update:
        stmt = stmt.on_conflict_do_update(
            index_elements=list(key), index_where=index_where,
            set_={c: stmt.excluded[c] for c in update},
            where=when(stmt.excluded) if when is not None else None)
    else:
        stmt = stmt.on_conflict_do_nothing(index_elements=list(key), index_where=index_where)
    # the driver's row count (psycopg forgets it once SQLAlchemy closes a result without rows)
    stmt = stmt.execution_options(preserve_rowcount=True)
    if len(rows) == 1:
        return conn.execute(stmt.values(**rows[0])).rowcount
    return conn.execute(stmt, list(rows)).rowcount


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
    cycle_date: dt.date | None = None,
    context: Mapping[str, Any] | None = None,
    slices: int = 1,
    chunk_rows: int = 200_000,
    planner: Mapping[str, str] | None = None,
    key_column: str = "cycle_date",
    relay: str | None = None,
) -> int:
    """Run the SELECT in ``include/sql/<template>`` against ``src`` and land its rows in ``dst.table``.

    With ``cycle_date`` the cycle's rows are replaced atomically (readers see
    the old rows or the new ones, never half):

    * PostgreSQL: ``table`` is list-partitioned by ``cycle_date``; the rows go
      to a stage table (written by ``slices`` concurrent statements when the
      query runs in the same database, since PostgreSQL never parallelises the
      SELECT of an INSERT), get their primary key, and are swapped in as the
      cycle's partition in one transaction;
    * otherwise: delete and insert in one transaction.

    The template receives ``n_slices`` and, when slicing, the bind parameter
    ``slice``; it must restrict every base table to that slice of customers. The slice
    predicate hides the row counts from the planner (it guesses 0.5% of each table), so slice
    statements never use nested loops: with a few thousand rows expected where there are
    millions, a nested loop over a whole table per row ran for many minutes (the target list at
    6.4 M subscribers, benchmarks/results/full_cycle.md 2026-12-02); they are set work, hash joins.
    ``planner``: further PostgreSQL settings (``set local``) for the statements that write the
    slices, for a template whose plan the slice predicate misleads otherwise (see segmentation).
    ``key_column``: the column ``cycle_date`` is the value of (the partition key on PostgreSQL), for
    a table replaced per some other date (the usage pivot, per month).
    ``relay``: for a ``template`` that also reads tables of ``dst`` (segmentation against the usage
    pivot) when ``src`` is another PostgreSQL database (:func:`can_relay`): the template run in
    ``src`` for the rows ``template`` needs from there; each slice's rows are copied (COPY, raw
    bytes) into a temporary table on the ``dst`` connection that then runs ``template``, which finds
    the table's name in ``relay_table``. Unused where one statement reads both databases (the
    template computes those rows itself).
    Returns the number of rows landed.
    """
    context = dict(context or {})
    in_database = one_statement_reads_both(src, dst)
    partitioned = cycle_date is not None and is_partitioned(dst, table)
    n_slices = slices if (partitioned and in_database and slices > 1) else 1
    context["n_slices"] = n_slices
    cols = ", ".join(columns)
    started = time.monotonic()

    if partitioned:
        stage = _create_stage(dst, table, cycle_date, key_column)
        try:
            if in_database:
                select_sql = render_sql(template, dst.dialect.name, **context)
                n = _insert_slices(dst, stage, cols, select_sql, params, n_slices, planner or {})
            elif relay is not None:
                if not can_relay(src, dst):
                    raise ValueError(f"cannot relay rows from {src.dialect.name} to {dst.dialect.name}")
                context["n_slices"] = slices
                n = _relay_slices(src, dst, relay, template, context, params, stage, cols, slices, planner or {})
            elif src.dialect.name == "postgresql" and slices > 1:
                # PostgreSQL to PostgreSQL: COPY out of one into the other, raw bytes, one stream per slice
                context["n_slices"] = slices
                select_sql = render_sql(template, src.dialect.name, **context)
                n = _copy_slices(src, dst, select_sql, params, stage, cols, slices, planner or {})
            else:
                n = _stream(src, dst, template, params, stage, columns, context, chunk_rows)
            _swap_partition(dst, table, stage, cycle_date, key_column)
        except BaseException:
            with dst.begin() as conn:
                conn.exec_driver_sql(f"drop table if exists {stage}")
            raise
    elif in_database:
        use_attach = not same_database(src, dst)
        # SQLite cannot ATTACH inside a transaction: attach first, then begin.
        with dst.connect() as conn:
            if use_attach:
                conn.exec_driver_sql(f"attach database 'file:{sqlite_path(src)}?mode=ro' as dm")
                conn.commit()
            try:
                select_sql = render_sql(template, dst.dialect.name, src="dm." if use_attach else "", **context)
                with conn.begin():
                    _delete_cycle(conn, table, cycle_date, key_column)
                    n = conn.execute(sa.text(f"insert into {table} ({cols})\n{select_sql}"), dict(params)).rowcount
            finally:
                if use_attach:
                    conn.exec_driver_sql("detach database dm")
    elif relay is not None:
        raise ValueError(f"a relay lands into a table partitioned by cycle; {table} is not")
    else:
        n = _stream(src, dst, template, params, table, columns, context, chunk_rows, cycle_date=cycle_date,
                    key_column=key_column)
    if dst.dialect.name == "postgresql" and not partitioned:
        with dst.connect() as conn:
            conn.exec_driver_sql(f"analyze {table}")
            conn.commit()
    log.info("landed %s rows into %s in %.1fs (%s)", n, table, time.monotonic() - started,
             "in-database" if in_database else "relayed" if relay else "streamed")
    return n


def is_partitioned(engine: Engine, table: str) -> bool:
    """A PostgreSQL table partitioned by cycle (its cycles are swapped, not deleted)."""
    if engine.dialect.name != "postgresql":
        return False
    with engine.connect() as conn:
        return conn.execute(sa.text("select relkind from pg_class where oid = to_regclass(:t)"),
                            {"t": table}).scalar() == "p"


def _delete_cycle(conn: Connection, table: str, cycle_date: dt.date | None, key_column: str = "cycle_date") -> None:
    if cycle_date is not None:
        conn.execute(sa.text(f"delete from {table} where {key_column} = :d").bindparams(
            sa.bindparam("d", type_=sa.Date)), {"d": cycle_date})


def _stream(src, dst, template, params, table, columns, context, chunk_rows, cycle_date=None,
            key_column="cycle_date") -> int:
    """Rows travel in chunks from one database to the other (COPY into PostgreSQL)."""
    import pandas as pd

    select_sql = render_sql(template, src.dialect.name, **context)
    n = 0
    with src.connect().execution_options(stream_results=True, yield_per=chunk_rows) as sconn, dst.begin() as dconn:
        _delete_cycle(dconn, table, cycle_date, key_column)
        result = sconn.execute(sa.text(select_sql), dict(params))
        for part in result.partitions(chunk_rows):
            n += bulk_insert(dconn, table, columns, pd.DataFrame(part, columns=list(result.keys())))
    return n


def partition_name(table: str, cycle_date: dt.date) -> str:
    return f"{table}_{cycle_date:%Y%m%d}"


def _create_stage(dst: Engine, table: str, cycle_date: dt.date, key_column: str = "cycle_date") -> str:
    """An empty table shaped like ``table``, checked to hold only the cycle's rows: the check lets
    ATTACH skip its own validation scan, and made before the load it costs no scan of its own."""
    stage = f"{partition_name(table, cycle_date)}_stage"
    with dst.begin() as conn:
        conn.exec_driver_sql(f"drop table if exists {stage}")
        conn.exec_driver_sql(f"create table {stage} (like {table} including defaults)")
        conn.exec_driver_sql(f"alter table {stage} add constraint {stage}_cycle "
                             f"check ({key_column} is not null and {key_column} = date '{cycle_date.isoformat()}')")
    return stage


def _slice_settings(conn: Connection, n_slices: int, planner: Mapping[str, str]) -> None:
    """PostgreSQL settings local to the transaction a slice's statement runs in: each slice is one
    serial statement (the slices are the parallelism), with memory to hash a slice's groups, no
    nested loops under the slice predicate (see land_query), and the caller's ``planner``."""
    settings = {"max_parallel_workers_per_gather": "0", "work_mem": "1GB",
                "enable_nestloop": "off" if n_slices > 1 else "on", **planner}
    for name, value in settings.items():
        conn.execute(sa.text("select set_config(:n, :v, true)"), {"n": name, "v": value})


def _literal(engine: Engine, select_sql: str, params: Mapping[str, Any]) -> str:
    """``select_sql`` with its bind parameters written in as literals, for COPY (which takes none)."""
    stmt = sa.text(select_sql)
    used = stmt.compile().params.keys()
    return str(stmt.bindparams(**{k: v for k, v in params.items() if k in used}).compile(
        dialect=engine.dialect, compile_kwargs={"literal_binds": True})).replace("%%", "%")


def _slice_params(params: Mapping[str, Any], n_slices: int, k: int) -> dict:
    return {**params, "slice": k} if n_slices > 1 else dict(params)


def _insert_slices(dst: Engine, stage: str, cols: str, select_sql: str, params: Mapping[str, Any],
                   n_slices: int, planner: Mapping[str, str]) -> int:
    def one(k: int) -> int:
        with dst.begin() as conn:
            _slice_settings(conn, n_slices, planner)
            return conn.execute(sa.text(f"insert into {stage} ({cols})\n{select_sql}"),
                                _slice_params(params, n_slices, k)).rowcount

    return _each_slice(one, n_slices)


def _each_slice(one, n_slices: int) -> int:
    """``one(k)`` for every slice, concurrently; the rows they wrote."""
    from concurrent.futures import ThreadPoolExecutor

    if n_slices == 1:
        return one(0)
    with ThreadPoolExecutor(max_workers=n_slices, thread_name_prefix="slice") as pool:
        return sum(pool.map(one, range(n_slices)))


def _copy_out(sconn: Connection, query: str, chunk: int) -> Iterator[bytearray]:
    """``query``'s rows as COPY writes them (text format), in chunks of at least ``chunk`` bytes.

    Read with libpq's own calls (psycopg.pq): psycopg's ``Copy.read`` runs a generator and a wait
    per row, nearly twice this loop's CPU (3.5-3.7 s against 1.8-2.2 s for the 3.1 M rows, 212 MB,
    of a segmentation slice; benchmarks/results/segmentation.md). Closed early (an error in the
    consumer), it cancels the COPY and drains it, so the connection can roll back as usual."""
    import select

    import psycopg
    from psycopg import pq

    driver = sconn.connection.driver_connection
    pg = driver.pgconn

    def wait() -> None:
        select.select([pg.socket], [], [])
        pg.consume_input()

    def result() -> pq.abc.PGresult | None:
        while pg.is_busy():
            wait()
        return pg.get_result()

    def check(res: pq.abc.PGresult, status: pq.ExecStatus) -> None:
        if res.status != status:
            raise psycopg.errors.error_from_result(res, encoding=driver.info.encoding)

    pg.send_query(f"copy ({query}) to stdout".encode())
    while pg.flush():
        select.select([], [pg.socket], [])
    res = result()
    if res.status != pq.ExecStatus.COPY_OUT:
        while result() is not None:
            pass
        check(res, pq.ExecStatus.COPY_OUT)
    done = False
    try:
        pending = bytearray()
        get = pg.get_copy_data
        while True:
            nbytes, data = get(1)
            if nbytes > 0:
                pending += data
                if len(pending) >= chunk:
                    yield pending
                    pending = bytearray()
            elif nbytes == 0:
                wait()
            else:
                break
        done = True
        if pending:
            yield pending
    finally:
        if not done:   # stopped mid-stream: stop the server and drop the rest
            driver.cancel_safe()
            while (nbytes := pg.get_copy_data(1)[0]) >= 0:
                if nbytes == 0:
                    wait()
        ends = []
        while (res := result()) is not None:
            ends.append(res)
    if ends:
        check(ends[0], pq.ExecStatus.COMMAND_OK)


def _copy(sconn: Connection, query: str, dconn: Connection, into: str, chunk: int = 1 << 20) -> int:
    """COPY ``query``'s rows out of one PostgreSQL connection into ``into`` on another, raw bytes.

    COPY hands over one row per read; they are passed on in chunks of ``chunk`` bytes, not one
    call per row, read with libpq's calls (``_copy_out``): this process's CPU is time the
    databases' own processes lack on a small machine."""
    dcur = dconn.connection.driver_connection.cursor()
    with dcur.copy(f"copy {into} from stdin") as sink, contextlib.closing(_copy_out(sconn, query, chunk)) as rows:
        for block in rows:
            sink.write(block)
    return dcur.rowcount


def _copy_slices(src: Engine, dst: Engine, select_sql: str, params: Mapping[str, Any], table: str, cols: str,
                 n_slices: int, planner: Mapping[str, str]) -> int:
    def one(k: int) -> int:
        query = _literal(src, select_sql, _slice_params(params, n_slices, k))
        with src.connect() as sconn, dst.begin() as dconn:
            _slice_settings(sconn, n_slices, planner)
            return _copy(sconn, query, dconn, f"{table} ({cols})")

    return _each_slice(one, n_slices)


def _result_columns(sconn: Connection, query: str) -> str:
    """Column definitions for a table holding ``query``'s rows: its columns' names and types as the
    source reports them (a domain as its base type; a type of the source's own, an enum say, as
    text, which is how COPY writes it anyway)."""
    cur = sconn.connection.driver_connection.cursor()
    cur.execute(f"select * from ({query}) as q where false")   # planned, not run (nor compiled)
    names = [c.name for c in cur.description]
    cur.execute(
        "select case when b < 16384 then format_type(b, null) else 'text' end "   # 16384: the first non-built-in oid
        "from (select case when t.typtype = 'd' then t.typbasetype else t.oid end as b, u.i "
        "      from unnest(%s::oid[]) with ordinality as u(oid, i) join pg_type as t on t.oid = u.oid) as x order by i",
        ([c.type_code for c in cur.description],))
    types = [r[0] for r in cur.fetchall()]
    return ", ".join('"{}" {}'.format(n.replace('"', '""'), t) for n, t in zip(names, types))


def _relay_slices(src: Engine, dst: Engine, relay: str, template: str, context: Mapping[str, Any],
                  params: Mapping[str, Any], stage: str, cols: str, n_slices: int,
                  planner: Mapping[str, str]) -> int:
    """Per slice, on one ``dst`` connection: the slice's rows of ``relay`` (run in ``src``) copied
    into a temporary table, then ``template`` (run in ``dst``, reading it) inserted into the stage."""
    relay_sql = render_sql(relay, src.dialect.name, **context)

    def one(k: int) -> int:
        bound = _slice_params(params, n_slices, k)
        query = _literal(src, relay_sql, bound)
        temp = f"relay_{k}"
        select_sql = render_sql(template, dst.dialect.name, **{**context, "relay_table": temp})
        with src.connect() as sconn, dst.begin() as dconn:
            _slice_settings(sconn, n_slices, planner)
            dconn.exec_driver_sql(f"create temporary table {temp} ({_result_columns(sconn, query)}) on commit drop")
            _copy(sconn, query, dconn, temp)
            _slice_settings(dconn, n_slices, planner)
            return dconn.execute(sa.text(f"insert into {stage} ({cols})\n{select_sql}"), bound).rowcount

    return _each_slice(one, n_slices)


def _swap_partition(dst: Engine, table: str, stage: str, cycle_date: dt.date, key_column: str = "cycle_date") -> None:
    """Index the stage table, then make it the cycle's partition in one transaction."""
    part = partition_name(table, cycle_date)
    day = cycle_date.isoformat()
    with dst.begin() as conn:
        key = ", ".join(sa.inspect(conn).get_pk_constraint(table)["constrained_columns"])   # in the key's order
        if key:
            # PostgreSQL's default sort memory, whatever the server's: the key's sort ran faster in
            # small runs than in one big one (6.24 M snapshot rows: 4.1 s at 64MB, one worker and
            # the leader at 32MB each, against 5.8 s at 1GB; with the key bytewise and msisdn first,
            # revision 0015, 2.2-2.9 s at 64MB and 2.5-2.7 s at 256MB; benchmarks/results/segmentation.md)
            conn.exec_driver_sql("set local maintenance_work_mem = '64MB'")
            conn.exec_driver_sql(f"alter table {stage} add primary key ({key})")
    with dst.begin() as conn:
        exists = conn.exec_driver_sql(f"select to_regclass('{part}') is not null").scalar()
        if exists:
            conn.exec_driver_sql(f"alter table {table} detach partition {part}")
            conn.exec_driver_sql(f"drop table {part}")
        conn.exec_driver_sql(f"alter table {stage} rename to {part}")
        conn.exec_driver_sql(f"alter table {table} attach partition {part} for values in ('{day}')")
        conn.exec_driver_sql(f"alter table {part} drop constraint {stage}_cycle")
    with dst.connect() as conn:  # fresh statistics, or the next stage plans for an empty table
        conn.exec_driver_sql(f"analyze {part}")
        conn.commit()


def drop_cycles_before(engine: Engine, table: str, cutoff: dt.date, key_column: str = "cycle_date") -> int:
    """Retention: remove cycles older than ``cutoff`` (dropping partitions on PostgreSQL)."""
    if engine.dialect.name != "postgresql":
        with engine.begin() as conn:
            return conn.execute(sa.text(f"delete from {table} where {key_column} < :d").bindparams(
                sa.bindparam("d", type_=sa.Date)), {"d": cutoff}).rowcount
    dropped = 0
    with engine.begin() as conn:
        children = conn.exec_driver_sql(
            "select c.relname from pg_inherits i join pg_class c on c.oid = i.inhrelid "
            f"where i.inhparent = '{table}'::regclass").scalars().all()
        for name in children:
            suffix = name.rsplit("_", 1)[-1]
            if len(suffix) == 8 and suffix.isdigit() and dt.date(int(suffix[:4]), int(suffix[4:6]),
                                                                 int(suffix[6:])) < cutoff:
                conn.exec_driver_sql(f"alter table {table} detach partition {name}")
                conn.exec_driver_sql(f"drop table {name}")
                dropped += 1
    return dropped
