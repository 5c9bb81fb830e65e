"""Rows copied between two PostgreSQL databases (qz_outbound.db: the COPY streams and the relay
segmentation uses when marketing_db is another database) arrive byte for byte, whatever they hold
and wherever the stream's chunks happen to cut them. Two real databases on the test server."""

from __future__ import annotations

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
