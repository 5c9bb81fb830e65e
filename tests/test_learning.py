"""Offer values and the value-based arbitration (docs/learning.md): the cells and their shrinkage,
the value of a conversion, pinning, the modes, exploration's propensities, allow_learned and re-runs."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from qz_outbound import config, db, schema
from qz_outbound.learning import values
from qz_outbound.learning.values import LearningConfig

import learning_sim as ls
from test_contact_policy import campaign

D = dt.date(2026, 11, 20)
CFG = LearningConfig(prior_strength=100, prior_uplift=0.02, default_value_per_conversion=40.0,
                     value_per_conversion={"1141-003": 55.0})


@pytest.fixture(params=["sqlite", "postgresql"])
def mk(request, tmp_path, pg_database_factory):
    if request.param == "sqlite":
        engine = db.make_engine(f"sqlite:///{tmp_path / 'mk.db'}")
    else:
        engine = db.make_engine(pg_database_factory("qz_learn_mk"))
    schema.ensure_schema(engine)
    yield engine
    engine.dispose()


def _history(mk, code, stability_type, tier, contacted, conv_t, control, conv_c, start=0):
    """Contacts of ``code`` in one cell on D - 3, with their snapshot rows (first attempts)."""
    day = D - dt.timedelta(days=3)
    rows, snap = [], []
    for i in range(contacted + control):
        m = f"13{start + i:09d}"
        treated = i < contacted
        conv = (i < conv_t) if treated else (i - contacted < conv_c)
        rows.append({"contact_id": f"C{day:%Y%m%d}-{m}", "cycle_date": day, "msisdn": m, "county_code": "350582",
                     "campaign_code": code, "product_code": "X", "variant": None,
                     "channel": "sms" if treated else "control", "segment_code": "x", "status": "delivered",
                     "created_at": dt.datetime(2026, 11, 17, 9, tzinfo=dt.timezone.utc),
                     "converted_at": dt.datetime(2026, 11, 18, 9, tzinfo=dt.timezone.utc) if conv else None})
        snap.append({"cycle_date": day, "msisdn": m, "county_code": "350582", "stability_type": stability_type,
                     "spend_tier": tier, "voice_tier": 5, "data_tier": 5, "tenure_tier": 7, "market_segment": None,
                     "segment_code": "x", "status": "active", "tenure_months": 60, "spend_m0": 1.0, "voice_m0": 1.0,
                     "data_m0": 1.0, "open_date": dt.date(2019, 1, 1)})
    with mk.begin() as conn:
        if mk.dialect.name == "postgresql":
            conn.exec_driver_sql(f"create table if not exists {db.partition_name('mkt_segment_snapshot', day)} "
                                 f"partition of mkt_segment_snapshot for values in ('{day.isoformat()}')")
        conn.execute(schema.mkt_contact.insert(), rows)
        conn.execute(schema.mkt_segment_snapshot.insert(), snap)


def _values(mk, day=D) -> pd.DataFrame:
    t = schema.mkt_offer_value
    with mk.connect() as conn:
        frame = pd.read_sql(sa.select(t).where(t.c.cycle_date == day), conn)
    return frame.set_index(["campaign_code", "stability_type", "spend_tier"])


LIB = [campaign("1141-001", "P1", priority=1), campaign("1141-002", "P2", priority=2),
       campaign("1141-003", "P3", priority=3)]


def test_cells_are_shrunk_toward_their_campaign(mk):
    _history(mk, "1141-001", "41", 5, contacted=3000, conv_t=450, control=3000, conv_c=60)     # rich: 0.15 - 0.02
    _history(mk, "1141-001", "21", 5, contacted=10, conv_t=5, control=10, conv_c=0, start=10000)  # thin: 0.5 raw
    out = values.compute_offer_values(mk, D, LIB, CFG)
    assert out["cells"] == 2 and out["offers_measured"] == 3010
    v = _values(mk)
    rich, thin, own = v.loc[("1141-001", "41", 5)], v.loc[("1141-001", "21", 5)], v.loc[("1141-001", "*", 0)]
    assert rich.uplift_raw == pytest.approx(0.13)
    assert abs(rich.uplift - rich.uplift_raw) < 0.01
    assert thin.uplift_raw == pytest.approx(0.5)
    assert abs(thin.uplift - own.uplift) < abs(thin.uplift - thin.uplift_raw) / 5
    assert thin.uplift_sd > rich.uplift_sd
    # expected value = uplift x value per conversion - (SMS contact cost + shrunk conversion rate x offer cost)
    assert rich.expected_value == pytest.approx(rich.uplift * 40.0 - rich.expected_cost)
    assert rich.expected_cost > 5 * (450 / 3000) * 0.9   # offer cost 5 yuan x about 0.15 conversions
    # campaigns without history: their prior uplift, and a configured value per conversion
    assert v.loc[("1141-002", "*", 0)].uplift == pytest.approx(CFG.prior_uplift)
    assert v.loc[("1141-003", "*", 0)].value_per_conversion == 55.0
    assert v.loc[("1141-002", "*", 0)].value_per_conversion == 40.0
    # idempotent: a re-run writes the same rows
    values.compute_offer_values(mk, D, LIB, CFG)
    pd.testing.assert_frame_equal(_values(mk).sort_index(), v.sort_index())


def test_history_outside_the_lookback_or_not_first_attempts_is_not_counted(mk):
    _history(mk, "1141-001", "41", 5, contacted=50, conv_t=10, control=50, conv_c=1)
    values.compute_offer_values(mk, D, LIB, CFG.model_copy(update={"lookback_days": 2}))
    assert ("1141-001", "41", 5) not in _values(mk).index
    with mk.begin() as conn:   # redials of those offers: not new offers
        conn.execute(schema.mkt_contact.update().values(first_contact_id="C0"))
    values.compute_offer_values(mk, D, LIB, CFG)
    assert ("1141-001", "41", 5) not in _values(mk).index


def test_value_per_conversion_measured_with_confidence_wins(mk):
    e = schema.mkt_campaign_economics
    base = {"campaign_code": "1141-001", "slice": "all", "after_months": 2, "contacted": 1000, "control": 100,
            "conversion_uplift": 0.05, "incremental_revenue": 2500.0, "cost": 100.0, "roi": None,
            "customers_kept": None}
    with mk.begin() as conn:
        conn.execute(e.insert(), [
            {**base, "cycle_date": D - dt.timedelta(days=40), "incremental_arpu": 1.25, "arpu_ci_low": 0.5,
             "arpu_ci_high": 2.0},
            # later but not measured with confidence (the interval spans zero): not used
            {**base, "cycle_date": D - dt.timedelta(days=10), "incremental_arpu": 0.4, "arpu_ci_low": -0.5,
             "arpu_ci_high": 1.3, "incremental_revenue": 800.0}])
    assert values.measured_values(mk, D) == {"1141-001": pytest.approx(2500.0 / (0.05 * 1000))}
    values.compute_offer_values(mk, D, LIB, CFG)
    assert _values(mk).loc[("1141-001", "*", 0)].value_per_conversion == pytest.approx(50.0)


def test_config_mistakes_name_file_line_and_field(tmp_path):
    path = tmp_path / "learning.yaml"
    path.write_text("mode: fixed\nexploration_share: 0.7\n", encoding="utf-8")
    with pytest.raises(config.ConfigError) as err:
        values.load_learning_config(path)
    assert f"{path}:2: exploration_share" in str(err.value)
    path.write_text("mode: greedy\n", encoding="utf-8")
    with pytest.raises(config.ConfigError, match=r":1: mode"):
        values.load_learning_config(path)
    shipped = values.load_learning_config(Path(config.CONFIG_DIR) / "learning.yaml")
    assert shipped.mode == "fixed"


# ---------------------------------------------------------------- the arbitration


@pytest.fixture(params=["sqlite", "postgresql"])
def small(request, tmp_path, pg_database_factory):
    """A simulation of three cycles in mode learned: type 21's customers have learned B."""
    if request.param == "sqlite":
        engine = db.make_engine(f"sqlite:///{tmp_path / 'mk.db'}")
    else:
        engine = db.make_engine(pg_database_factory("qz_learn_small"))
    sim = ls.Simulation(engine, customers=800, seed=5)
    sim.run(3)
    yield sim
    engine.dispose()


def _exploit(frame, arm):
    return frame[frame.arm == arm]


def test_modes_and_the_fallback_to_fixed(small):
    day = small.days[-1]
    learned = small.targets(day)
    moved = learned[(learned.arm == "learned") & (learned.campaign_code != learned.fixed_code)]
    assert len(moved) > 50   # the learned policy gives some customers another campaign than fixed

    fixed = small.rebuild(day, mode="fixed")
    assert set(fixed.arm) == {"fixed", "explore"}
    f = _exploit(fixed, "fixed")
    assert (f.campaign_code == f.fixed_code).all()
    assert (fixed.learned_code == learned.learned_code).all()   # still logged: what learned would choose
    # the explore arm is the same customers, whatever the mode
    assert (fixed.arm == "explore").tolist() == (learned.arm == "explore").tolist()

    off = small.rebuild(day, allow_learned=False)   # mode learned, not allowed: fixed
    assert set(off.arm) == {"fixed", "explore"}
    assert (_exploit(off, "fixed").campaign_code == _exploit(off, "fixed").fixed_code).all()

    all_value = small.rebuild(day, mode="blend", blend_weight=1.0)
    assert all_value.campaign_code.tolist() == learned.campaign_code.tolist()
    all_priority = small.rebuild(day, mode="blend", blend_weight=0.0)
    b = _exploit(all_priority, "learned")
    assert (b.campaign_code == b.fixed_code).all()


def test_propensities_sum_to_one_over_the_choice_set(small):
    day = small.days[-1]
    eps = 0.3
    t = small.rebuild(day, exploration_share=eps)
    k = t.msisdn.isin(small.holds_a).map({True: 1, False: 2})
    greedy = t.learned_code
    p_chosen = t.propensity
    p_other = (1 - eps) * (t.campaign_code != greedy) + eps / 2
    two = k == 2
    assert (abs(p_chosen[two] + p_other[two] - 1) < 1e-9).all()
    assert (abs(p_chosen[~two] - 1) < 1e-9).all()
    share = (t.arm == "explore").mean()
    assert 0.25 < share < 0.35


def test_a_pinned_campaign_wins_by_priority_in_every_arm(small):
    day = small.days[-1]
    small.pinned = (ls.CODE_A,)
    t = small.rebuild(day, exploration_share=0.3)
    gets_a = ~t.msisdn.isin(small.holds_a)
    assert (t[gets_a].campaign_code == ls.CODE_A).all()
    assert (t[gets_a].arm == "fixed").all() and (t[gets_a].propensity == 1.0).all()
    assert (t[gets_a].learned_code == ls.CODE_A).all()
    # a holder of A's product has only B: no pin applies, he is arbitrated as before
    assert (t[~gets_a].campaign_code == ls.CODE_B).all()
    assert set(t[~gets_a].arm) == {"learned", "explore"}
    small.pinned = ()


def test_a_rerun_writes_the_same_list(small):
    day = small.days[-1]
    first = small.targets(day)
    again = small.rebuild(day)
    pd.testing.assert_frame_equal(first, again)


def test_no_values_no_learned_code(mk):
    sim = ls.Simulation(mk, customers=300, seed=9)
    day = ls.START
    sim._snapshot(day)
    t = sim.rebuild(day)   # mode learned, allowed, but no offer values ever computed
    assert t.learned_code.isna().all()
    assert set(t.arm) <= {"fixed", "explore"}
    f = t[t.arm == "fixed"]
    assert (f.campaign_code == f.fixed_code).all() and (f.campaign_code == ls.CODE_A).any()


def test_a_fallback_campaign_ranks_last_whatever_its_value(small):
    day = small.days[-1]
    care = campaign("3141-201", "PF", priority=1, types=("41", "21", "3"), fallback=True, control_share="0.1")
    small.extra = (care,)
    # its value per conversion makes it by far the best expected value (its prior: no history)
    t = small.rebuild(day, exploration_share=0.3, value_per_conversion={care.code: 10000.0})
    small.extra = ()
    assert (t.learned_code == care.code).sum() == (t.stability_type == "3").sum() > 0
    assert set(t[t.stability_type.isin(["41", "21"])].campaign_code) == {ls.CODE_A, ls.CODE_B}
    assert set(t[t.stability_type == "3"].campaign_code) == {care.code}
    assert (t[t.stability_type == "3"].propensity == 1.0).all()


def test_the_gap_list_renders_the_arbitration_with_offer_values(small):
    from qz_outbound import coverage

    day = small.days[-1]
    gaps = coverage.coverage_gaps(small.marketing, day, ls.library(), policy=ls.RELAXED, channels=ls.CHANNELS)
    no_campaign = gaps[gaps.reason == "no_campaign"].groupby("stability_type").customers.sum()
    people = small.people[~small.people.msisdn.isin(small.opted_out | small.dnd)]
    want = people[people.stability_type.isin(["3", "5"])].groupby("stability_type").size()
    assert no_campaign.to_dict() == want.to_dict()


# ---------------------------------------------------------------- the policy under every arm

from hypothesis import HealthCheck, event, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from qz_outbound import publish, segmentation, targeting  # noqa: E402
from qz_outbound.metadata import full_metadata  # noqa: E402

import test_arbitration_property as prop  # noqa: E402
from test_arbitration_property import engines  # noqa: E402,F401  (its data mart and marketing_db pair)
from test_contact_policy import CHANNELS, D as POLICY_DAY, Mart  # noqa: E402


def _choice_set(c, lib):
    """The campaigns contact-policy.md allows the customer (each read plainly, alone), the fallback
    only when no other is allowed: what any arm may choose from."""
    allowed = [k for k in lib if prop.expected_offer(c, [k]) == k.code]
    return [k for k in allowed if not k.fallback] or allowed


def _mostly_contactable(c, keep):
    """test_arbitration_property's customers, most of them made contactable (so that they have a
    choice for the arbitration to make)."""
    if keep:
        return c
    return {**c, "status": "active", "dnd": False, "opt_out": False, "complaint": None, "history": c["history"][:1]}


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(lib=prop.libraries(),
       people=st.lists(st.builds(_mostly_contactable, prop.customers(), st.integers(0, 3).map(lambda n: n == 0)),
                       min_size=1, max_size=8),
       mode=st.sampled_from(["fixed", "learned", "blend"]), eps=st.sampled_from([0.0, 0.5]),
       worth=st.lists(st.sampled_from([5.0, 50.0, 500.0]), min_size=5, max_size=5))
def test_every_arm_keeps_the_contact_policy(engines, lib, people, mode, eps, worth):
    """On random marts and libraries (test_arbitration_property's), in every mode and with heavy
    exploration: each offer is one the contact policy allows (a fallback only without another),
    fixed_code is the plain priority reading, learned_code the best expected value, and the
    propensity is (1 - e) x [the mode's choice] + e / k."""
    dm, mk = engines
    dm_schema_reset(dm, mk)
    mart = Mart(dm, mk)
    for c in people:
        c["msisdn"] = mart.customer(status=c["status"], spend=c["spend"], base_spend=c["base"],
                                    products=c["products"], dnd=c["dnd"], complaint=c["complaint"])
        if c["opt_out"]:
            mart.opt_out(c["msisdn"])
        for days, code, channel, response, prefix in c["history"]:
            mart.past_contact(c["msisdn"], days, campaign_code=f"{prefix}-{code:03d}", channel=channel,
                              response=response)
    cfg = LearningConfig(mode=mode, exploration_share=eps, blend_weight=0.5,
                         value_per_conversion={k.code: worth[i % len(worth)] for i, k in enumerate(lib)})
    segmentation.segment_customers(dm, mk, POLICY_DAY)
    targeting.stage_extracts(dm, mk, POLICY_DAY)
    values.compute_offer_values(mk, POLICY_DAY, lib, cfg)
    targeting.build_target_list(mk, POLICY_DAY, lib, channels=CHANNELS, learning=cfg, allow_learned=True)
    for county in ("350582", "350503"):
        publish.publish_county(mk, POLICY_DAY, county, lib, CHANNELS, queue_sms=False)
    ev = _values(mk, POLICY_DAY)["expected_value"].xs("*", level="stability_type").droplevel("spend_tier").to_dict()
    with mk.connect() as conn:
        types = dict(conn.execute(sa.text("select msisdn, stability_type from mkt_segment_snapshot")).all())
        rows = {r.msisdn: r for r in conn.execute(sa.text(
            "select msisdn, campaign_code, arm, propensity, fixed_code, learned_code from mkt_target"))}
        twice = conn.execute(db.date_binds(
            "select count(*) - count(distinct msisdn) from mkt_contact where cycle_date = :d "
            "and channel in ('sms', 'call', 'control')", "d"), {"d": POLICY_DAY}).scalar()
    assert twice == 0
    for c in people:
        c["type"] = types.get(c["msisdn"])
        choice = _choice_set(c, lib) if c["type"] is not None else []
        row = rows.get(c["msisdn"])
        if not choice:
            assert row is None, c
            continue
        assert row is not None and row.campaign_code in {k.code for k in choice}, (c, row)
        assert row.fixed_code == prop.expected_offer(c, lib)
        best = min(choice, key=lambda k: (-round(ev[k.code], 9), k.priority, k.code))
        assert row.learned_code == best.code
        greedy = {"fixed": row.fixed_code, "learned": row.learned_code}.get(mode)
        event(f"mode {mode}, choice of {len(choice)}, arm {row.arm}")
        if greedy is not None:
            want = (1 - eps) * (row.campaign_code == greedy) + eps / len(choice)
            assert row.propensity == pytest.approx(want), (c, row)
            assert row.arm in ({"fixed", "explore"} if mode == "fixed" else {"learned", "explore"})
            if row.arm != "explore":
                assert row.campaign_code == greedy


def dm_schema_reset(dm, mk):
    from qz_outbound.datamart import schema as dm_schema

    dm_schema.create_tables(dm, drop=True)
    with mk.begin() as conn:   # empty marketing_db, still at the head revision
        for table in reversed(full_metadata().sorted_tables):
            conn.execute(table.delete())
