"""Control group and A/B variant assignment (contact-policy.md): a deterministic function of customer,
campaign and month, the same on SQLite and PostgreSQL, and independent between campaigns, months and
purposes — being in one campaign's control group says nothing about another's."""

from __future__ import annotations

import datetime as dt
import itertools
import random

import numpy as np
import pytest
import sqlalchemy as sa
from scipy.stats import chi2_contingency

from cycle_support import engine_for_param, published_cycle
from qz_outbound import campaigns, db, targeting

CYCLE = dt.date(2026, 11, 24)
N = 100_000


def _numbers(n: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    return sorted({f"1{rng.choice('3456789')}{rng.randrange(10**9):09d}" for _ in range(int(n * 1.01))})[:n]


def _hash_in_sql(engine: sa.Engine, keys: list[str]) -> list[int]:
    """The dialect macro hash32 (include/sql/dialect/) evaluated by the database itself."""
    template = db._jinja.from_string(
        "{% import 'dialect/' ~ dialect ~ '.sql' as d %}select k, {{ d.hash32('k') }} from qz_keys order by i")
    with engine.begin() as conn:
        conn.exec_driver_sql("create temporary table qz_keys (i integer, k text)")
        conn.execute(sa.text("insert into qz_keys values (:i, :k)"), [{"i": i, "k": k} for i, k in enumerate(keys)])
        rows = conn.execute(sa.text(template.render(dialect=engine.dialect.name))).all()
        conn.exec_driver_sql("drop table qz_keys")
    assert [r[0] for r in rows] == keys
    return [int(r[1]) for r in rows]


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path):
    eng = engine_for_param(request, tmp_path, "qz_assign")
    yield eng
    eng.dispose()


def test_the_database_hash_is_the_python_definition(engine):
    numbers = _numbers(3000)
    keys = [f"{m}|{code}|{month}|{purpose}" for m, code, month, purpose in zip(
        numbers, itertools.cycle(["1134-012", "1114-007", "2143-002"]), itertools.cycle(["2026-11", "2026-12"]),
        itertools.cycle(targeting.ASSIGNMENT_PURPOSES))]
    keys += ["", "中文|键", "x" * 300]
    assert _hash_in_sql(engine, keys) == [db.hash32(k) for k in keys]
    assert all(0 <= db.hash32(k) < 2**32 for k in keys)


def test_sqlite_and_postgresql_assign_the_same_customers(tmp_path, pg_database_factory):
    """The whole target list built on each database from the same data mart: the same control groups
    and variants, each the documented draw (targeting.assignment_draw) for its campaign and month."""
    lists = {}
    for name, url in (("sqlite", f"sqlite:///{tmp_path / 'one.db'}"), ("postgresql", pg_database_factory("qz_same"))):
        eng = db.make_engine(url)
        library = published_cycle(eng, CYCLE, 3000, counties_to_publish=["350502"])
        with eng.connect() as conn:
            lists[name] = sorted(tuple(r) for r in conn.execute(sa.text(
                "select msisdn, campaign_code, is_control, coalesce(variant, '') from mkt_target")))
        eng.dispose()
    assert lists["sqlite"] == lists["postgresql"]
    by_code = {c.code: c for c in library}
    rows = lists["sqlite"]
    assert len(rows) > 1000 and 0 < sum(r[2] for r in rows) < len(rows) * 0.2
    for msisdn, code, is_control, variant in rows:
        c = by_code[code]
        draw = targeting.assignment_draw(msisdn, code, CYCLE, "control")
        assert is_control == int(draw < int(c.control_share * 10000))
        cuts = targeting.variant_cuts(c)
        if cuts:
            draw = targeting.assignment_draw(msisdn, code, CYCLE, "variant")
            assert variant == next(label for label, cut in cuts if draw < cut)


def _chi2_p(a: np.ndarray, b: np.ndarray) -> float:
    table = np.array([[np.sum(a & b), np.sum(a & ~b)], [np.sum(~a & b), np.sum(~a & ~b)]])
    return chi2_contingency(table, correction=False)[1]


def _old_draw(msisdn: str, salt: int) -> int:
    """The Park-Miller hash this replaced (for the test's power: it must be rejected)."""
    return (((int(msisdn) % 2147483629) * 48271 + salt) % 2147483647) * 48271 % 2147483647 % 10000


def test_control_membership_is_independent_between_campaigns_months_and_purposes():
    """Chi-square over 100,000 customers for every pair of campaigns of the library (and a campaign's
    control in two months, and control against variant): no pair is dependent at a family-wise 1%
    (Bonferroni). The same test rejects the hash this replaced."""
    numbers = _numbers(N)
    library = targeting.daily_campaigns(campaigns.load_library(), CYCLE)
    codes = [c.code for c in library]
    bp = {c.code: int(c.control_share * 10000) for c in library}
    control = {code: np.array([targeting.assignment_draw(m, code, CYCLE, "control") < bp[code] for m in numbers])
               for code in codes}
    pairs = list(itertools.combinations(codes, 2))
    alpha = 0.01 / (len(pairs) + 2 * len(codes))
    worst = min(_chi2_p(control[a], control[b]) for a, b in pairs)
    assert worst > alpha, f"control membership dependent between campaigns (p = {worst:.2g})"
    for code in codes:
        share = control[code].mean()
        assert abs(share - bp[code] / 10000) < 4 * np.sqrt(0.05 * 0.95 / N)
    for code in codes[:3]:   # months and purposes: a few campaigns suffice (the key differs the same way)
        december = np.array([targeting.assignment_draw(m, code, dt.date(2026, 12, 1), "control") < bp[code]
                             for m in numbers])
        assert _chi2_p(control[code], december) > alpha
        assert december.sum() > 0 and not np.array_equal(control[code], december)   # a new month, a new draw
        variant_low = np.array([targeting.assignment_draw(m, code, CYCLE, "variant") < 5000 for m in numbers])
        assert _chi2_p(control[code], variant_low) > alpha

    # the pairs: P(control in 1114-007 | control in 1134-012) was 0.61, and 0.00 for 2143-002
    given = control["1134-012"]
    for other in ("1114-007", "2143-002"):
        conditional = control[other][given].mean()
        assert abs(conditional - 0.05) < 4 * np.sqrt(0.05 * 0.95 / given.sum()), (other, conditional)

    # power: the Park-Miller hash with per-campaign salts is caught by the same test
    import hashlib
    salts = {code: int(hashlib.sha256(f"{code}:{CYCLE:%Y-%m}".encode()).hexdigest()[:8], 16) % 2147483647
             for code in codes}
    old = {code: np.array([_old_draw(m, salts[code]) < bp[code] for m in numbers]) for code in codes}
    assert min(_chi2_p(old[a], old[b]) for a, b in pairs) < 1e-12


def test_held_out_customers_count_for_the_frequency_rules(engine):
    """A customer held out yesterday is capped today like one contacted (7-day window), and counted
    as frequency-capped by the coverage report, on both databases."""
    library = published_cycle(engine, CYCLE, 3000)
    day2 = CYCLE + dt.timedelta(days=1)
    from qz_outbound import segmentation

    segmentation.segment_customers(engine, engine, day2)
    targeting.stage_extracts(engine, engine, day2)
    targeting.build_target_list(engine, day2, library)
    with engine.connect() as conn:
        held_out = set(conn.execute(sa.text("select msisdn from mkt_contact where channel = 'control'")).scalars())
        today = set(conn.execute(sa.text("select msisdn from mkt_target where cycle_date = :d"),
                                 {"d": day2.isoformat() if engine.dialect.name == "sqlite" else day2}).scalars())
    assert len(held_out) > 50
    assert not held_out & today
    cov = targeting.coverage(engine, day2)
    assert cov["frequency_capped"].sum() >= len(held_out)
