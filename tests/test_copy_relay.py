"""Rows copied between two PostgreSQL databases (qz_outbound.db: the COPY streams and the relay
segmentation uses when marketing_db is another database) arrive byte for byte, whatever they hold
and wherever the stream's chunks happen to cut them. Two real databases on the test server."""

from __future__ import annotations

import contextlib
import time

import psycopg
import pytest
import sqlalchemy as sa

from qz_outbound import db

HOSTILE = [
    (1, "普通客户", None, "2026-11-23"),
    (2, "tab\there", "line\nbreak\r\n", "2024-02-29"),
    (3, "back\\slash \\N not null", "", "1999-12-31"),
    (4, "=HYPERLINK(\"http://x\")", "'; drop table t; --", "2026-01-31"),
    (5, "x" * 5000, "😀 emoji", "2026-03-01"),
]


@pytest.fixture()
def two_databases(pg_database_factory):
    src = db.make_engine(pg_database_factory("qz_copy_src"))
    dst = db.make_engine(pg_database_factory("qz_copy_dst"))
    with src.begin() as conn:
        conn.exec_driver_sql("create domain county as varchar(6)")
        conn.exec_driver_sql("create type tier as enum ('gold', 'silver')")
        conn.exec_driver_sql("create table t (id integer primary key, a text, b text, d date, "
                             "c county default '350582', k tier default 'gold')")
        for row in HOSTILE:
            conn.execute(sa.text("insert into t (id, a, b, d) values (:i, :a, :b, cast(:d as date))"),
                         dict(zip("iabd", row)))
    yield src, dst
    src.dispose()
    dst.dispose()


@pytest.mark.parametrize("chunk", [1, 7, 1 << 20])
def test_copy_relay_passes_hostile_rows_through_any_chunking(two_databases, chunk):
    src, dst = two_databases
    query = "select id, a, b, d, c, k from t"
    with src.connect() as sconn, dst.begin() as dconn:
        columns = db._result_columns(sconn, query)
        dconn.exec_driver_sql(f"create temporary table r ({columns}) on commit drop")
        assert db._copy(sconn, query, dconn, "r", chunk=chunk) == len(HOSTILE)
        got = dconn.exec_driver_sql("select id, a, b, cast(d as text), c, k from r order by id").all()
        # a domain arrives as its base type, a type of the source's own (an enum) as text
        types = dict(dconn.exec_driver_sql(
            "select attname, format_type(atttypid, null) from pg_attribute "
            "where attrelid = 'r'::regclass and attnum > 0").all())
    assert [tuple(r) for r in got] == [(*row, "350582", "gold") for row in HOSTILE]
    assert types == {"id": "integer", "a": "text", "b": "text", "d": "date",
                     "c": "character varying", "k": "text"}


def _usable(sconn) -> bool:
    """The source connection after a failed copy: rolled back, it runs statements again."""
    sconn.rollback()
    return sconn.exec_driver_sql("select count(*) from t").scalar() == len(HOSTILE)


@pytest.mark.parametrize("query, error", [
    ("select id, nosuchcolumn from t", "nosuchcolumn"),   # refused before any row
    ("select id, 10 / (id - 3) as x from t order by id", "division by zero"),   # fails at the third row
])
def test_copy_relay_source_error_is_raised_and_connection_recovers(two_databases, query, error):
    src, dst = two_databases
    with src.connect() as sconn, dst.begin() as dconn:
        dconn.exec_driver_sql("create temporary table r (id integer, x integer) on commit drop")
        with pytest.raises(Exception, match=error):
            db._copy(sconn, query, dconn, "r", chunk=1)
        assert _usable(sconn)


def test_copy_relay_destination_error_stops_the_source_and_connection_recovers(two_databases):
    """The destination refuses a row mid-stream (text into an integer column): its error is raised,
    the source's COPY is cancelled and drained, and nothing half-copied is left behind."""
    src, dst = two_databases
    # 50,000 rows: the refusal comes while the source is still sending
    query = "select g, case when g = 4 then 'x' else cast(g as text) end from generate_series(1, 50000) as g"
    with src.connect() as sconn:
        with pytest.raises(psycopg.errors.InvalidTextRepresentation, match='line 4, column x: "x"'):
            with dst.begin() as dconn:
                dconn.exec_driver_sql("create temporary table r (id integer, x integer) on commit drop")
                db._copy(sconn, query, dconn, "r", chunk=1)
        assert _usable(sconn)


def test_copy_relay_reader_stopped_midstream_cancels_the_source(two_databases):
    """A consumer that gives up after three rows: the source's COPY is cancelled, not read to its
    end (from the sixth row on each row takes a minute to come), and the connection runs
    statements again."""
    src, _ = two_databases
    # 64 kB rows, so that the server's output buffer sends each as it comes
    query = ("select g, repeat('x', 65536) from generate_series(1, 100) as g "
             "where pg_sleep(case when g > 5 then 60 else 0 end) is not null")
    with src.connect() as sconn:
        sconn.exec_driver_sql("set statement_timeout = '30s'")   # a copy read to its end fails below, not hangs
        got = []
        started = time.monotonic()
        with pytest.raises(RuntimeError, match="consumer gave up"):
            with contextlib.closing(db._copy_out(sconn, query, 1)) as rows:
                for block in rows:
                    got.append(bytes(block))
                    if len(got) == 3:
                        raise RuntimeError("consumer gave up")
        assert time.monotonic() - started < 15   # cancelled, not drained until the timeout
        assert got == [f"{g}\t{'x' * 65536}\n".encode() for g in (1, 2, 3)]
        assert _usable(sconn)
