"""Segmentation is exact: the SQL agrees with a plain-Python reading of segmentation.md
on random data marts, on both databases and every landing route.

The strategies aim at the edges: values exactly on every tier boundary and
one cent either side, M0 exactly at -30% / -10% / +10% of the base and one
cent either side, zero bases, missing months, usage outside the three-month
window, open dates on the new-customer boundary and on the same day of the
month as D (whole-months rule), statuses, bundles starting or ending on D.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from fractions import Fraction

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qz_outbound import db, schema, segmentation
from qz_outbound.datamart import schema as dm_schema

from segmentation_reference import first_of_month, segment as reference_segment

CFG = segmentation.load_config()
STATUSES = ["active", "active", "active", "suspended", "pre_cancel", "cancelled"]
D_EDGES = [dt.date(2024, 2, 29), dt.date(2026, 1, 31), dt.date(2026, 3, 1), dt.date(2026, 11, 23),
           dt.date(2025, 12, 31), dt.date(2026, 5, 30)]


def _shift_months(d: dt.date, months: int, day: int) -> dt.date:
    idx = d.year * 12 + d.month - 1 - months
    y, m = idx // 12, idx % 12 + 1
    for dd in (day, 28):
        try:
            return dt.date(y, m, dd)
        except ValueError:
            continue
    raise AssertionError


@st.composite
def cents_triple(draw, boundaries):
    """(M0, M1, M2) in cents for one dimension."""
    kind = draw(st.sampled_from(["random", "threshold", "boundary", "zero_base", "zeros"]))
    if kind == "random":
        return tuple(draw(st.integers(0, 300_000)) for _ in range(3))
    if kind == "zeros":
        return (0, 0, 0)
    if kind == "zero_base":
        return (draw(st.sampled_from([0, 1, draw(st.integers(0, 300_000))])), 0, 0)
    if kind == "boundary":
        b = draw(st.sampled_from([int(x) for x in boundaries]))
        m0 = max(0, b * 100 + draw(st.sampled_from([-1, 0, 1])))
        return (m0, draw(st.integers(0, 300_000)), draw(st.integers(0, 300_000)))
    # M0 exactly at a threshold of change (or one cent off), M1/M2 around the base
    tenths = draw(st.integers(1, 20_000))
    base = tenths * 10
    delta = draw(st.integers(0, base))
    t = draw(st.sampled_from([CFG.stability.warning_change, CFG.stability.declining_change,
                              CFG.stability.rising_change]))
    m0 = Fraction(base) * (1 + Fraction(str(t)))
    assert m0.denominator == 1
    m0 = max(0, int(m0) + draw(st.sampled_from([-1, 0, 0, 1])))
    return (m0, base + delta, base - delta)


@st.composite
def data_marts(draw):
    d = draw(st.one_of(st.sampled_from(D_EDGES), st.dates(dt.date(2021, 1, 1), dt.date(2030, 12, 31))))
    m0, m1, m2 = (first_of_month(d, k) for k in (1, 2, 3))
    outside = [first_of_month(d, 4), first_of_month(d, 0)]  # must be ignored
    n = draw(st.integers(1, 10))
    subscribers, usage, bundles = [], [], []
    for i in range(n):
        msisdn = f"1{draw(st.sampled_from('3456789'))}{i:09d}"
        open_date = draw(st.one_of(
            st.sampled_from([m2, m2 - dt.timedelta(days=1), d, d + dt.timedelta(days=1), first_of_month(d, 0)]),
            st.builds(_shift_months, st.just(d), st.sampled_from([3, 6, 12, 24, 36, 60, 120, 2, 5, 119]),
                      st.sampled_from([d.day - 1, d.day, d.day + 1, 1, 31])),
            st.dates(d - dt.timedelta(days=365 * 15), d),
        ))
        subscribers.append({
            "msisdn": msisdn, "customer_name": "测试", "county_code": draw(st.sampled_from(["350582", "350503"])),
            "open_date": open_date, "status": draw(st.sampled_from(STATUSES)),
            "market_segment": draw(st.sampled_from([None, "migrant", "enterprise", "campus"])),
            "terminal_type": "5G", "home_agent_id": None,
        })
        dims = [draw(cents_triple(CFG.tiers.spend.boundaries)), draw(cents_triple(CFG.tiers.voice.boundaries)),
                draw(cents_triple(CFG.tiers.data.boundaries))]
        for j, month in enumerate([m0, m1, m2]):
            if draw(st.integers(0, 9)) < 8:  # sometimes the month is missing altogether
                usage.append({"msisdn": msisdn, "month": month, "spend_yuan": Decimal(dims[0][j]) / 100,
                              "voice_minutes": Decimal(dims[1][j]) / 100, "data_mb": Decimal(dims[2][j]) / 100,
                              "sms_count": 1})
        for month in outside:
            if draw(st.booleans()):
                usage.append({"msisdn": msisdn, "month": month, "spend_yuan": Decimal("999.99"),
                              "voice_minutes": Decimal("1.00"), "data_mb": Decimal("0.00"), "sms_count": 1})
        for _ in range(draw(st.integers(0, 2))):
            start = draw(st.sampled_from([d - dt.timedelta(days=400), d, d + dt.timedelta(days=1)]))
            end = draw(st.sampled_from([None, d - dt.timedelta(days=1), d, d + dt.timedelta(days=30)]))
            bundles.append({"msisdn": msisdn, "bundle_type": "contract", "start_date": start, "end_date": end,
                            "bundle_kind": draw(st.sampled_from(["hard", "soft"]))})
    return d, subscribers, usage, bundles


def _load_mart(engine, subscribers, usage, bundles):
    with engine.begin() as conn:
        for table in ("subscriber", "usage_monthly", "bundle"):
            conn.execute(dm_schema.metadata.tables[table].delete())
        conn.execute(dm_schema.subscriber.insert(), subscribers)
        if usage:
            conn.execute(dm_schema.usage_monthly.insert(), usage)
        if bundles:
            conn.execute(dm_schema.bundle.insert(), bundles)


def _snapshot(engine, d):
    cols = ["msisdn", "county_code", "stability_type", "spend_tier", "voice_tier", "data_tier", "tenure_tier",
            "market_segment", "segment_code", "tenure_months", "bundle_kind"]
    with engine.connect() as conn:
        rows = conn.execute(sa.text(f"select {', '.join(cols)} from mkt_segment_snapshot where cycle_date = :d"),
                            {"d": d} if engine.dialect.name == "postgresql" else {"d": d.isoformat()}).all()
    return {r[0]: dict(zip(cols[1:], r[1:])) for r in rows}


# postgresql-relay: marketing_db another database, segmentation against the usage pivot there (the
# customers' own columns copied across); postgresql-copy: the same databases with the pivot off (the
# whole statement in the data mart, its rows copied across)
@pytest.fixture(scope="module", params=["sqlite-attach", "sqlite-same", "postgresql-relay", "postgresql-copy",
                                        "postgresql-same"])
def engines(request, tmp_path_factory, pg_database_factory):
    route = request.param
    if route.startswith("sqlite"):
        base = tmp_path_factory.mktemp(route)
        dm = db.make_engine(f"sqlite:///{base / 'datamart.db'}")
        mk = dm if route.endswith("same") else db.make_engine(f"sqlite:///{base / 'marketing.db'}")
    else:
        dm = db.make_engine(pg_database_factory("qz_prop_dm"))
        mk = dm if route.endswith("same") else db.make_engine(pg_database_factory("qz_prop_mk"))
    dm_schema.create_tables(dm)
    schema.ensure_schema(mk)
    yield route, dm, mk
    dm.dispose()
    mk.dispose()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(mart=data_marts())
def test_sql_segmentation_equals_plain_reading_of_spec(engines, mart):
    route, dm, mk = engines
    d, subscribers, usage, bundles = mart
    _load_mart(dm, subscribers, usage, bundles)
    cfg = CFG.model_copy(update={"reuse_usage_pivot": False}) if route == "postgresql-copy" else CFG
    n = segmentation.segment_customers(dm, mk, d, cfg)
    expected = reference_segment(subscribers, usage, bundles, d, CFG)
    got = _snapshot(mk, d)
    assert n == len(expected)
    assert got == expected, route
