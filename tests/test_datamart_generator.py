"""The demo data mart: every input table, the plan's shares, deterministic, bulk loaded on both databases."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
import sqlalchemy as sa

from qz_outbound import db, schema, segmentation
from qz_outbound.counties import county_names
from qz_outbound.datamart import schema as dm_schema
from qz_outbound.dev.demo_datamart import generate

D = dt.date(2026, 11, 23)
N = 40_000


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def marts(request, tmp_path_factory, pg_database_factory):
    if request.param == "sqlite":
        base = tmp_path_factory.mktemp("gen")
        dm = db.make_engine(f"sqlite:///{base / 'dm.db'}")
        mk = db.make_engine(f"sqlite:///{base / 'mk.db'}")
    else:
        dm = db.make_engine(pg_database_factory("qz_gen_dm"))
        mk = db.make_engine(pg_database_factory("qz_gen_mk"))
    counts = generate(dm, N, D, progress=False)
    schema.ensure_schema(mk)
    segmentation.segment_customers(dm, mk, D)
    yield request.param, dm, mk, counts
    dm.dispose()
    mk.dispose()


def test_every_input_table_is_written_and_keys_hold(marts):
    _, dm, _, counts = marts
    assert set(counts) == set(dm_schema.metadata.tables)
    assert all(n > 0 for n in counts.values()), counts
    with dm.connect() as conn:
        assert conn.execute(sa.text("select count(*), count(distinct msisdn) from subscriber")).one() == (N, N)
        bad = conn.execute(sa.text("select count(*) from subscriber where length(msisdn) <> 11 "
                                   "or substr(msisdn, 1, 1) <> '1' or substr(msisdn, 2, 1) not in "
                                   "('3','4','5','6','7','8','9')")).scalar()
        assert bad == 0
        assert {r[0] for r in conn.execute(sa.text("select county_code from dim_county"))} == set(county_names())
        orphan = conn.execute(sa.text("select count(*) from usage_monthly u left join subscriber s "
                                      "on s.msisdn = u.msisdn where s.msisdn is null")).scalar()
        assert orphan == 0
        months = {str(r[0])[:10] for r in conn.execute(sa.text("select distinct month from usage_monthly"))}
        assert months == {"2026-10-01", "2026-09-01", "2026-08-01"}


def test_stability_types_come_out_in_the_plans_shares(marts):
    _, _, mk, _ = marts
    with mk.connect() as conn:
        frame = pd.read_sql(sa.text("select stability_type, tenure_tier from mkt_segment_snapshot"), conn)
    stock = frame[frame.stability_type != "0"].stability_type
    share = stock.map(lambda t: {"1": "stable", "21": "rising", "22": "rising", "23": "rising", "3": "declining",
                                 "41": "warning", "42": "warning", "43": "warning", "5": "pre_churn"}[t])
    got = share.value_counts(normalize=True)
    plan = {"stable": 0.0755, "rising": 0.3165, "declining": 0.0800, "warning": 0.3744, "pre_churn": 0.1535}
    for kind, want in plan.items():
        assert abs(got[kind] - want) < 0.02, (kind, got[kind], want)
    assert set(frame.stability_type) == set(segmentation.STABILITY_TYPES)
    assert set(frame.tenure_tier) == set(range(1, 9))
    assert abs((frame.tenure_tier == 1).mean() - 0.1131) < 0.01
    assert abs((frame.tenure_tier == 8).mean() - 0.0447) < 0.01


def test_every_tier_occurs(marts):
    _, _, mk, _ = marts
    with mk.connect() as conn:
        for col, tiers in (("spend_tier", range(1, 12)), ("voice_tier", range(0, 11)), ("data_tier", range(0, 10))):
            got = {r[0] for r in conn.execute(sa.text(f"select distinct {col} from mkt_segment_snapshot"))}
            assert got == set(tiers), col


def test_same_seed_same_mart_on_both_databases(marts, tmp_path):
    """Deterministic: a fresh SQLite mart with the same seed has the same subscribers and usage totals."""
    _, dm, _, _ = marts
    other = db.make_engine(f"sqlite:///{tmp_path / 'again.db'}")
    generate(other, N, D, progress=False)
    q = "select count(*), sum(spend_yuan), sum(data_mb) from usage_monthly"
    with dm.connect() as a, other.connect() as b:
        ra, rb = a.execute(sa.text(q)).one(), b.execute(sa.text(q)).one()
        assert ra[0] == rb[0] and float(ra[1]) == pytest.approx(float(rb[1])) and float(ra[2]) == pytest.approx(float(rb[2]))
        q2 = "select msisdn, county_code, status from subscriber order by msisdn limit 50"
        assert [tuple(r) for r in a.execute(sa.text(q2))] == [tuple(r) for r in b.execute(sa.text(q2))]
    other.dispose()
