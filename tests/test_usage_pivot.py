"""The usage pivot (qz_outbound.segmentation.usage_pivot): built once per month, reused by the
month's cycles while the data mart's usage rows are unchanged, rebuilt on any correction, and the
snapshot row for row what grouping the usage in the cycle's own statement gives (issue 20 item 1).

Real databases on the three routes that use it: two SQLite files (the data mart attached), one
PostgreSQL database holding both (partitions swapped in), and two PostgreSQL databases (the pivot
built by COPY into marketing_db, and each cycle the customers' own columns copied across into a
temporary table to be joined to it: db.land_query's relay).
"""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from qz_outbound import db, schema, segmentation
from qz_outbound.dev.demo_datamart import generate

D = dt.date(2026, 11, 23)
N = 3_000
CFG = segmentation.load_config()
INLINE = CFG.model_copy(update={"reuse_usage_pivot": False})


@pytest.fixture(params=["sqlite-attach", "postgresql-same", "postgresql-separate"])
def mart(request, tmp_path, pg_database_factory):
    if request.param == "sqlite-attach":
        dm = db.make_engine(f"sqlite:///{tmp_path / 'dm.db'}")
        mk = db.make_engine(f"sqlite:///{tmp_path / 'mk.db'}")
    elif request.param == "postgresql-same":
        dm = mk = db.make_engine(pg_database_factory("qz_pivot"))
    else:
        dm = db.make_engine(pg_database_factory("qz_pivot_dm"))
        mk = db.make_engine(pg_database_factory("qz_pivot_mk"))
    generate(dm, N, D, progress=False)
    schema.ensure_schema(mk)
    yield dm, mk
    dm.dispose()
    mk.dispose()


def _snapshot(mk, d) -> list[tuple]:
    with mk.connect() as conn:
        return [tuple(r) for r in conn.execute(
            sa.select(schema.mkt_segment_snapshot).where(schema.mkt_segment_snapshot.c.cycle_date == d)
            .order_by(schema.mkt_segment_snapshot.c.msisdn))]


def _detail(mk, d) -> str:
    with mk.connect() as conn:
        return conn.execute(sa.text("select detail from mkt_cycle_stage where stage = 'segment' and cycle_date = :d")
                            .bindparams(sa.bindparam("d", type_=sa.Date)), {"d": d}).scalar_one()


def _segment_both_ways(dm, mk, d) -> tuple[list[tuple], list[tuple], str]:
    """(the snapshot read from the pivot, the snapshot with the usage grouped inline, the pivot's detail)."""
    segmentation.segment_customers(dm, mk, d, CFG)
    with_pivot, detail = _snapshot(mk, d), _detail(mk, d)
    segmentation.segment_customers(dm, mk, d, INLINE)
    return with_pivot, _snapshot(mk, d), detail


def _usage(dm, sql: str, **params) -> None:
    with dm.begin() as conn:
        conn.execute(sa.text(sql), params)


def test_usage_pivot_is_reused_within_the_month_and_gives_the_same_rows(mart):
    dm, mk = mart
    first, inline, detail = _segment_both_ways(dm, mk, D)
    assert "rebuilt (first cycle of these months)" in detail
    assert len(first) > N * 0.9 and first == inline
    # the next days of the month read the pivot as it is
    for day in (D + dt.timedelta(days=1), D + dt.timedelta(days=2)):
        again, inline, detail = _segment_both_ways(dm, mk, day)
        assert detail.startswith("usage pivot of 2026-10 reused"), detail
        assert again == inline and len(again) == len(first)
    with mk.connect() as conn:
        built = conn.execute(sa.select(schema.mkt_usage_pivot_source)).all()
    assert [(b.usage_month, b.built_for) for b in built] == [(dt.date(2026, 10, 1), D)]


@pytest.mark.parametrize("correction", ["value", "moved", "added", "removed", "outside"])
def test_usage_pivot_is_rebuilt_on_a_correction_of_the_data_mart(mart, correction):
    dm, mk = mart
    segmentation.segment_customers(dm, mk, D, CFG)
    m0, m1, _ = segmentation.cycle_months(D)
    with dm.connect() as conn:
        (a, a_spend), (b, b_spend) = conn.execute(sa.text(
            "select msisdn, spend_yuan from usage_monthly where month = :m and spend_yuan > 0 "
            "order by msisdn limit 2"), {"m": m0}).all()
        silent = conn.execute(sa.text(
            "select msisdn from subscriber where status = 'active' and msisdn not in "
            "(select msisdn from usage_monthly where month = :m) order by msisdn limit 1"), {"m": m1}).scalar_one()
    if correction == "value":       # one customer's closed month restated by a cent
        _usage(dm, "update usage_monthly set spend_yuan = spend_yuan + 0.01 where msisdn = :a and month = :m",
               a=a, m=m0)
    elif correction == "moved":     # two customers' bills swapped: every month's totals unchanged
        _usage(dm, "update usage_monthly set spend_yuan = case msisdn when :a then :bs else :as_ end "
               "where month = :m and msisdn in (:a, :b)", a=a, b=b, as_=a_spend, bs=b_spend, m=m0)
    elif correction == "added":     # a late row for a customer who had none that month
        _usage(dm, "insert into usage_monthly (msisdn, month, spend_yuan, voice_minutes, data_mb, sms_count) "
               "values (:s, :m, 500, 900, 20000, 3)", s=silent, m=m1)
    elif correction == "removed":
        _usage(dm, "delete from usage_monthly where msisdn = :a and month = :m", a=a, m=m0)
    else:                           # a month the cycle does not read: the pivot stands
        _usage(dm, "insert into usage_monthly (msisdn, month, spend_yuan, voice_minutes, data_mb, sms_count) "
               "values (:a, :m, 500, 900, 20000, 3)", a=a, m=segmentation.month_start(D, 4))
    again, inline, detail = _segment_both_ways(dm, mk, D + dt.timedelta(days=1))
    if correction == "outside":
        assert "reused" in detail, detail
    else:
        assert "rebuilt (the data mart's usage for these months changed)" in detail, detail
    assert again == inline


def test_usage_pivot_missing_rows_are_rebuilt_and_old_months_dropped(mart):
    dm, mk = mart
    days = [D, dt.date(2026, 12, 1), dt.date(2027, 1, 2)]        # M0 = 2026-10, 2026-11, 2026-12
    for day in days:
        segmentation.segment_customers(dm, mk, day, CFG)
    with mk.connect() as conn:
        kept = sorted({r[0] for r in conn.execute(sa.select(schema.mkt_usage_pivot.c.usage_month).distinct())})
        sources = sorted(r[0] for r in conn.execute(sa.select(schema.mkt_usage_pivot_source.c.usage_month)))
    # this month's pivot and the previous one: a re-run across the turn of the month reuses it
    assert kept == sources == [dt.date(2026, 11, 1), dt.date(2026, 12, 1)]
    # rows lost behind the project's back (a restore of another table, a hand-made delete): rebuilt
    db.drop_cycles_before(mk, "mkt_usage_pivot", dt.date(2027, 1, 1), key_column="usage_month")
    again, inline, detail = _segment_both_ways(dm, mk, days[-1])
    assert "rebuilt (its rows were missing)" in detail, detail
    assert again == inline


def test_usage_pivot_is_not_used_between_databases_of_different_kinds(tmp_path, pg_database_factory):
    """A SQLite data mart and a PostgreSQL marketing_db: no statement reads both and no temporary
    table takes the rows, so every cycle groups the usage itself, and says so."""
    dm = db.make_engine(f"sqlite:///{tmp_path / 'dm.db'}")
    mk = db.make_engine(pg_database_factory("qz_pivot_mixed"))
    generate(dm, 500, D, progress=False)
    schema.ensure_schema(mk)
    segmentation.segment_customers(dm, mk, D, CFG)
    assert "another kind of database" in _detail(mk, D)
    with mk.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(schema.mkt_usage_pivot)).scalar() == 0
        assert conn.execute(sa.select(sa.func.count()).select_from(schema.mkt_segment_snapshot)).scalar() > 450
    dm.dispose()
    mk.dispose()


@pytest.mark.parametrize("separate", [False, True], ids=["same-database", "separate-databases"])
def test_usage_pivot_takes_hostile_usage_rows_as_they_come(tmp_path, pg_database_factory, separate):
    """A real data mart is views: usage_monthly.msisdn may be text holding anything. Rows that match
    no subscriber change nothing, with the pivot as without it (it once was varchar(11) and failed)."""
    dm = db.make_engine(pg_database_factory("qz_pivot_hostile"))
    mk = db.make_engine(pg_database_factory("qz_pivot_hostile_mk")) if separate else dm
    generate(dm, 500, D, progress=False)
    schema.ensure_schema(mk)
    m0 = segmentation.cycle_months(D)[0]
    _usage(dm, "alter table usage_monthly alter column msisdn type text")
    for number in ("138000000011234567890", "=HYPERLINK(\"x\")", "", " 13800000001"):
        _usage(dm, "insert into usage_monthly (msisdn, month, spend_yuan, voice_minutes, data_mb, sms_count) "
               "values (:s, :m, 1e9, 0, 0, 0)", s=number, m=m0)
    again, inline, detail = _segment_both_ways(dm, mk, D)
    assert "rebuilt" in detail and again == inline and len(again) > 450
    dm.dispose()
    mk.dispose()


def test_usage_pivot_failing_check_fails_the_relayed_cycle_and_keeps_the_last_rows(pg_database_factory):
    """Across two PostgreSQL databases, a check of the pivot that fails (the data mart's usage
    unreadable) fails the cycle, and leaves the rows it had and no stage table behind."""
    dm = db.make_engine(pg_database_factory("qz_pivot_fail_dm"))
    mk = db.make_engine(pg_database_factory("qz_pivot_fail_mk"))
    generate(dm, 500, D, progress=False)
    schema.ensure_schema(mk)
    segmentation.segment_customers(dm, mk, D, CFG)
    before = _snapshot(mk, D)
    _usage(dm, "alter table usage_monthly rename to usage_monthly_gone")
    with pytest.raises(sa.exc.ProgrammingError, match="usage_monthly"):
        segmentation.segment_customers(dm, mk, D, CFG)
    assert _snapshot(mk, D) == before and len(before) > 450
    with mk.connect() as conn:
        assert conn.exec_driver_sql("select relname from pg_class where relname like '%%!_stage' escape '!'")\
            .scalars().all() == ['mkt_cycle_stage']
    dm.dispose()
    mk.dispose()
