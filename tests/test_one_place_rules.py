"""The rules kept in one place (issue 19): the opt-out list, the phone-number pattern, db.upsert and
typed date binds, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
import sqlalchemy as sa

from qz_outbound import clock, db, optout, phone, schema

NUMBER = "13912345678"
AT = dt.datetime(2026, 11, 23, 10, 0, tzinfo=clock.SHANGHAI)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def engine(request, tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('rules') / 'marketing.db'}" if request.param == "sqlite" else \
        request.getfixturevalue("pg_database_factory")("qz_rules")
    engine = db.make_engine(url)
    schema.ensure_schema(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def empty(engine):
    with engine.begin() as conn:
        conn.execute(schema.mkt_opt_out.delete())
        conn.execute(schema.mkt_cycle_stage.delete())
    return engine


def _rows(engine) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.select(schema.mkt_opt_out.c.msisdn, schema.mkt_opt_out.c.source,
                                                         schema.mkt_opt_out.c.detail))]


def _run(*targets) -> None:
    """Run the callables in threads; any exception in one fails the test."""
    errors: list[BaseException] = []

    def wrap(fn):
        def run():
            try:
                fn()
            except BaseException as exc:  # noqa: BLE001 - handed to the test
                errors.append(exc)
        return run

    threads = [threading.Thread(target=wrap(t)) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads), "a writer hung"
    if errors:
        raise errors[0]


def test_two_concurrent_opt_outs_of_one_number_both_succeed_and_leave_one_row(empty):
    """The second writer arrives while the first one's row is written but not committed: with a
    check-then-insert its check sees nothing and its insert then fails on the key (PostgreSQL) or on
    a stale snapshot (SQLite); with insert ... on conflict do nothing it waits and leaves the row."""
    first_written, times, added = threading.Event(), {}, {}

    def first():
        with empty.begin() as conn:
            added["first"] = optout.record_opt_out(conn, NUMBER, at=AT, source="sms_reply", detail="first")
            first_written.set()
            time.sleep(0.5)           # the second writer is under way meanwhile
            times["first_commit"] = time.monotonic()

    def second():
        assert first_written.wait(30)
        with empty.begin() as conn:
            added["second"] = optout.record_opt_out(conn, NUMBER, at=AT, source="call_outcome", detail="second")
            times["second_done"] = time.monotonic()

    _run(first, second)
    assert added == {"first": True, "second": False}
    assert times["second_done"] >= times["first_commit"]   # they really overlapped: the second waited
    assert _rows(empty) == [(NUMBER, "sms_reply", "first")]   # the first record stays


def test_many_writers_of_one_number_at_once_leave_exactly_one_row(empty):
    start, added = threading.Barrier(6), []

    def writer(k):
        def run():
            start.wait(30)
            with empty.begin() as conn:
                added.append(optout.record_opt_out(conn, NUMBER, at=AT, source="sms_reply", detail=f"w{k}"))
        return run

    _run(*(writer(k) for k in range(6)))
    assert sorted(added) == [False] * 5 + [True]
    assert len(_rows(empty)) == 1


def test_is_opted_out_reads_what_is_on_the_list(empty):
    numbers = [f"139{n:08d}" for n in range(12_000)]          # more than one IN list
    with empty.begin() as conn:
        for n in numbers[::1000]:
            assert optout.record_opt_out(conn, n, at=AT, source="call_outcome", detail="U1")
    with empty.connect() as conn:
        assert optout.is_opted_out(conn, numbers + ["", NUMBER]) == set(numbers[::1000])
        assert optout.is_opted_out(conn, []) == set()


def test_record_opt_out_refuses_what_it_cannot_record(empty):
    with empty.begin() as conn:
        with pytest.raises(ValueError, match="no number"):
            optout.record_opt_out(conn, "", at=AT, source="sms_reply")
        with pytest.raises(ValueError, match="'web'"):
            optout.record_opt_out(conn, NUMBER, at=AT, source="web")
        with pytest.raises(ValueError, match="time zone"):
            optout.record_opt_out(conn, NUMBER, at=AT.replace(tzinfo=None), source="sms_reply")
    assert _rows(empty) == []


def test_upsert_updates_only_the_named_columns_and_only_when_asked(empty):
    t = schema.mkt_cycle_stage
    day = dt.date(2026, 11, 23)
    row = dict(cycle_date=day, stage="segment", rows=10, seconds=1.0, finished_at=AT, detail="a")
    with empty.begin() as conn:
        assert db.upsert(conn, t, row, key=("cycle_date", "stage")) == 1
        assert db.upsert(conn, t, {**row, "rows": 20}, key=("cycle_date", "stage")) == 0     # nothing to update
        db.upsert(conn, t, {**row, "rows": 5, "detail": "b"}, key=("cycle_date", "stage"), update=("rows", "detail"),
                  when=lambda new: new.rows > t.c.rows)                                      # not more: unchanged
        db.upsert(conn, t, [{**row, "rows": 30, "detail": "c"}, {**row, "stage": "target", "rows": 1}],
                  key=("cycle_date", "stage"), update=("rows",))
        got = {r.stage: (r.rows, r.detail) for r in conn.execute(sa.select(t))}
    assert got == {"segment": (30, "a"), "target": (1, "a")}
    with empty.begin() as conn:
        assert db.upsert(conn, t, [], key=("cycle_date", "stage")) == 0


def test_date_binds_take_dates_on_both_databases(empty):
    day = dt.date(2026, 11, 23)
    with empty.begin() as conn:
        db.upsert(conn, schema.mkt_cycle_stage,
                  dict(cycle_date=day, stage="segment", rows=1, seconds=0.1, finished_at=AT, detail=None),
                  key=("cycle_date", "stage"))
        stmt = db.date_binds("select count(*) from mkt_cycle_stage where cycle_date = :d and stage = :s", "d")
        assert conn.execute(stmt, {"d": day, "s": "segment"}).scalar() == 1
        assert conn.execute(stmt, {"d": day + dt.timedelta(days=1), "s": "segment"}).scalar() == 0


@pytest.mark.parametrize("number, ok", [("13912345678", True), ("19912345678", True), ("12912345678", False),
                                        ("1391234567", False), ("139123456789", False), ("+8613912345678", False),
                                        ("", False), (None, False)])
def test_one_phone_pattern(number, ok):
    assert phone.is_mobile(number) is ok


def test_masking():
    assert phone.mask("13912345678") == "139****5678"
    assert phone.mask("123") == "****" and phone.mask(None) == "****"
    assert phone.mask_numbers("失败：+8613912345678, 13800001111; order 2026112313912345678") == \
        "失败：139****5678, 138****1111; order 2026112313912345678"
    assert phone.normalise("008613912345678") == phone.normalise("+86 139 1234 5678") == "13912345678"
