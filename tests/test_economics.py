"""Campaign economics (economics.md) on generated data with PLANTED effects, on SQLite and PostgreSQL.

Three campaigns of one cycle (2026-08-10), each with a contacted and a control arm:

* GAIN raises its contacted customers' bills by 8 yuan a month and keeps 10% more of them from
  churning (10% of the contacted cancel, 20% of the control);
* NONE changes nothing;
* LOSS raises bills by 3 yuan a month but every conversion costs a 1,200-yuan handset subsidy.

Before any after-month is billed every figure is "not yet measurable" (after_months 0, no ARPU, no
ROI); once three after-months are in, the measured intervals and ROIs must match what was planted.
The data is built directly (contacts, controls, bills per month, the subscriber snapshot), the
economics step itself runs for real: bills and subscribers staged, SQL, Welch intervals, the table.
"""

from __future__ import annotations

import datetime as dt
import textwrap

import numpy as np
import pytest
import sqlalchemy as sa

from cycle_support import engine_for_param
from qz_outbound import clock, config, economics, schema
from qz_outbound.agent.schema import mkt_agent_commission
from qz_outbound.campaigns import Campaign, code_fields, load_library
from qz_outbound.costs import ContactCosts, load_contact_costs
from qz_outbound.datamart import schema as dm
from qz_outbound.sms.schema import sms_outbox

D = dt.date(2026, 8, 10)                       # the cycle: before = May, Jun, Jul; after = Sep, Oct, Nov
BEFORE = [dt.date(2026, 5, 1), dt.date(2026, 6, 1), dt.date(2026, 7, 1)]
AUGUST = dt.date(2026, 8, 1)                   # the cycle's own month: in neither window
AFTER = [dt.date(2026, 9, 1), dt.date(2026, 10, 1), dt.date(2026, 11, 1)]
GAIN, NONE, LOSS = "1141-101", "2413-102", "2252-103"
PLANTED = {GAIN: 8.0, NONE: 0.0, LOSS: 3.0}    # yuan per customer per month, contacted arm only
N_T, N_C = 3000, 1000
COUNTIES = ["350582", "350583"]
COSTS = ContactCosts(sms_part=0.05, call_dialled=1.5, agent_sms=0.05)


def campaign(code: str, offer_cost: float, channels: list[str]) -> Campaign:
    data = {"code": code, "name": f"测试活动{code}", **code_fields(code),
            "product_code": f"P{code[:4]}", "offer": "测试优惠", "priority": 10, "valid_from": "2026-01-01",
            "valid_to": "2027-12-31", "target": {"stability_types": ["41"]}, "channels": channels,
            "sms_variants": {"A": {"template": "1114-007-a"}, "B": {"template": "1114-007-a"}},
            "offer_cost_yuan": offer_cost}
    if "call" in channels:
        data["call_script"] = "2122-003"
    return Campaign.model_validate(data)


LIBRARY = [campaign(GAIN, 10, ["sms"]), campaign(NONE, 5, ["sms"]), campaign(LOSS, 1200, ["call"])]
CONVERSION = {GAIN: (0.20, 0.05), NONE: (0.05, 0.05), LOSS: (0.30, 0.02)}   # contacted, control


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path):
    engine = engine_for_param(request, tmp_path, "qz_econ")
    schema.ensure_schema(engine)
    dm.create_tables(engine)
    clock.set_now(dt.datetime(2026, 8, 10, 6, 0))
    yield engine
    clock.set_now(None)
    engine.dispose()


def plant(engine) -> dict:
    """Contacts, controls, bills of the before-months and the subscriber snapshot; returns what the
    cost must be per campaign and the after-month bills to add later."""
    rng = np.random.default_rng(15)
    now = dt.datetime(2026, 8, 10, 9, 0, tzinfo=clock.SHANGHAI)
    contacts, outbox, subscribers, before, after, expected_cost = [], [], [], [], [], {}
    serial = 0
    for code in (GAIN, NONE, LOSS):
        channel = "call" if code == LOSS else "sms"
        offer = next(c for c in LIBRARY if c.code == code).offer_cost_yuan
        cost = 0.0
        for arm, n in (("contacted", N_T), ("control", N_C)):
            cancel = int(n * (0.10 if (code == GAIN and arm == "contacted") else 0.20))
            converting = int(n * CONVERSION[code][0 if arm == "contacted" else 1])
            for i in range(n):
                serial += 1
                msisdn = f"139{serial:08d}"
                tier = 8 if i % 2 else 9
                row = dict(contact_id=f"E{serial:010d}", cycle_date=D, msisdn=msisdn, county_code=COUNTIES[i % 2],
                           campaign_code=code, product_code=f"P{code[:4]}",
                           variant=("A" if i % 3 else "B") if arm == "contacted" and channel == "sms" else None,
                           channel=channel if arm == "contacted" else "control",
                           segment_code=f"41-P{tier:02d}V05D07T06",
                           status="delivered" if arm == "contacted" else "held_out", created_at=now,
                           sent_at=now if arm == "contacted" else None,
                           delivered_at=now if arm == "contacted" else None,
                           response="accepted" if arm == "contacted" and channel == "call" else None,
                           converted_at=now + dt.timedelta(days=2) if i < converting else None)
                contacts.append(row)
                if arm == "contacted":
                    if channel == "sms":
                        parts = 2 if i % 10 == 0 else 1
                        outbox.append(dict(contact_id=row["contact_id"], cycle_date=D, county_code=row["county_code"],
                                           msisdn=msisdn, campaign_code=code, template="t", text="…", parts=parts,
                                           state="delivered", queued_at=now, submitted_at=now, done_at=now))
                        cost += parts * COSTS.sms_part
                    else:
                        cost += COSTS.call_dialled
                    cost += float(offer) if i < converting else 0.0
                subscribers.append(dict(msisdn=msisdn, customer_name=None, county_code=row["county_code"],
                                        open_date=dt.date(2020, 1, 1), status="cancelled" if i < cancel else "active",
                                        market_segment="campus" if i % 4 == 0 else None, terminal_type="5G",
                                        home_agent_id=None))
                base = rng.uniform(30, 150)
                lift = PLANTED[code] if arm == "contacted" else 0.0
                for month in BEFORE + [AUGUST]:
                    if not (month == BEFORE[0] and i % 50 == 7):    # a month without a bill row is 0
                        before.append(dict(msisdn=msisdn, month=month, spend_yuan=round(base + rng.normal(0, 5), 2),
                                           voice_minutes=0, data_mb=0, sms_count=0))
                for month in AFTER:
                    after.append(dict(msisdn=msisdn, month=month, spend_yuan=round(base + lift + rng.normal(0, 5), 2),
                                      voice_minutes=0, data_mb=0, sms_count=0))
        expected_cost[code] = cost
    # commission actually paid for one of GAIN's contacts (the agent ledger): a cost, never a value
    paid = dict(order_id="O1", contact_id=f"E{1:010d}", month=dt.date(2026, 8, 1), agent_id="A1",
                county_code="350582", msisdn="13900000001", campaign_code=GAIN, product_code=f"P{GAIN[:4]}",
                recommended_at=now, order_time=dt.datetime(2026, 8, 12), commission_yuan=12.5)
    expected_cost[GAIN] += 12.5
    with engine.begin() as conn:
        conn.execute(schema.mkt_contact.insert(), contacts)
        conn.execute(sms_outbox.insert(), outbox)
        conn.execute(mkt_agent_commission.insert(), [paid])
        conn.execute(dm.subscriber.insert(), subscribers)
        conn.execute(dm.usage_monthly.insert(), before)
    return {"cost": expected_cost, "after": after}


def rows(engine, code: str, slice_: str = "all", day: dt.date = D) -> dict:
    t = schema.mkt_campaign_economics
    with engine.connect() as conn:
        r = conn.execute(sa.select(t).where(t.c.cycle_date == day, t.c.campaign_code == code,
                                            t.c.slice == slice_)).mappings().one()
    return dict(r)


def test_planted_effects_are_measured(engine, monkeypatch):
    planted = plant(engine)
    cfg = economics.EconomicsConfig()

    # before any after-month: "not yet measurable", never zero
    out = economics.write_economics(engine, engine, D, LIBRARY, COSTS, cfg)
    assert out["rows"] > 0
    for code in (GAIN, NONE, LOSS):
        r = rows(engine, code)
        assert r["after_months"] == 0 and (r["contacted"], r["control"]) == (N_T, N_C)
        assert r["incremental_arpu"] is None and r["arpu_ci_low"] is None and r["incremental_revenue"] is None
        assert r["roi"] is None
        assert economics.status_of(r) == "not_yet_measurable"
        assert r["cost"] == pytest.approx(planted["cost"][code], abs=1e-6)
    assert rows(engine, GAIN)["customers_kept"] == pytest.approx(0.10 * N_T)

    # three after-months billed: the economics of a later day measures the August cycle again
    with engine.begin() as conn:
        conn.execute(dm.usage_monthly.insert(), planted["after"])
    later = dt.date(2026, 12, 5)
    clock.set_now(dt.datetime(2026, 12, 5, 4, 30))
    out = economics.write_economics(engine, engine, later, LIBRARY, COSTS, cfg)
    assert out["since"] <= "2026-08-01"

    gain, none, loss = rows(engine, GAIN), rows(engine, NONE), rows(engine, LOSS)
    for r in (gain, none, loss):
        assert r["after_months"] == 3
    # the planted ARPU effects lie in the measured 95% intervals
    for code, r in ((GAIN, gain), (NONE, none), (LOSS, loss)):
        assert r["arpu_ci_low"] <= PLANTED[code] <= r["arpu_ci_high"], (code, r)
        assert r["incremental_revenue"] == pytest.approx(r["incremental_arpu"] * N_T * 3)
    # GAIN: a measured gain, customers kept = 10% × contacted, ROI positive (revenue ≈ 72,000 against
    # ≈ 6,000 of cost)
    assert gain["arpu_ci_low"] > 0 and economics.status_of(gain) == "measured"
    assert gain["customers_kept"] == pytest.approx(0.10 * N_T)
    assert gain["conversion_uplift"] == pytest.approx(0.15)
    assert gain["roi"] == pytest.approx((gain["incremental_revenue"] - gain["cost"]) / gain["cost"]) and gain["roi"] > 0
    # NONE: the interval spans zero, "no effect measured", no ROI (not −100%)
    assert none["arpu_ci_low"] < 0 < none["arpu_ci_high"]
    assert economics.status_of(none) == "no_effect" and none["roi"] is None
    assert none["customers_kept"] == pytest.approx(0.0)
    # LOSS: a measured effect that costs more than it earns (900 conversions × 1,200 yuan)
    assert loss["arpu_ci_low"] > 0 and loss["roi"] < 0
    assert loss["cost"] == pytest.approx(N_T * 1.5 + 900 * 1200)

    # slices: each documented kind is there, with the same-slice control for county / type / tier / market
    county = rows(engine, GAIN, "county:350582")
    assert (county["contacted"], county["control"]) == (N_T // 2, N_C // 2)
    assert county["arpu_ci_low"] <= 8 <= county["arpu_ci_high"]
    assert rows(engine, GAIN, "type:41")["contacted"] == N_T
    assert rows(engine, GAIN, "tier:8")["contacted"] == N_T // 2
    assert rows(engine, GAIN, "market:campus")["contacted"] == N_T // 4
    assert rows(engine, GAIN, "market:none")["contacted"] == N_T - N_T // 4
    sms = rows(engine, GAIN, "channel:sms")
    assert (sms["contacted"], sms["control"]) == (N_T, N_C)     # channel: the whole control group
    assert rows(engine, GAIN, "variant:B")["contacted"] == N_T // 3
    assert rows(engine, LOSS, "channel:call")["contacted"] == N_T
    # across campaigns: every campaign and each digit of the code
    everyone = rows(engine, "*")
    assert everyone["contacted"] == 3 * N_T and everyone["cost"] == pytest.approx(sum(planted["cost"].values()))
    uplift = rows(engine, "*", "digit1:1")
    assert uplift["contacted"] == N_T and uplift["incremental_arpu"] == pytest.approx(gain["incremental_arpu"])
    assert rows(engine, "*", "digit1:2")["contacted"] == N_T * 2     # 2413 and 2252: retention campaigns
    assert rows(engine, "*", "digit4:3")["contacted"] == N_T         # 2413 only
    # the month, cumulatively: keyed by the month's first day and a slice starting month/
    month = rows(engine, GAIN, "month/all", dt.date(2026, 8, 1))
    assert month["after_months"] == 3 and month["incremental_arpu"] == pytest.approx(gain["incremental_arpu"])

    # idempotent: the same day again gives the same table
    with engine.connect() as conn:
        first = sorted(map(tuple, conn.execute(sa.select(schema.mkt_campaign_economics)).all()))
    economics.write_economics(engine, engine, later, LIBRARY, COSTS, cfg)
    with engine.connect() as conn:
        again = sorted(map(tuple, conn.execute(sa.select(schema.mkt_campaign_economics)).all()))
    assert again == first


def test_welch_interval_matches_scipy():
    from scipy import stats

    rng = np.random.default_rng(3)
    a, b = rng.normal(5, 3, 400), rng.normal(4, 6, 150)
    diff, lo, hi = economics.welch_interval(a.mean(), a.var(ddof=1), len(a), b.mean(), b.var(ddof=1), len(b), 0.95)
    ci = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert (lo, hi) == pytest.approx((ci.low, ci.high))
    assert diff == pytest.approx(a.mean() - b.mean())


# ---------------------------------------------------------------- config mistakes: file, line and field

def _library_with(tmp_path, line: str | None):
    src = config.config_path("campaigns") / "1134-012.yaml"
    text = "\n".join(l for l in src.read_text(encoding="utf-8").splitlines() if not l.startswith("offer_cost_yuan"))
    if line is not None:
        text += "\n" + line
    d = tmp_path / "campaigns"
    d.mkdir()
    (d / "1134-012.yaml").write_text(text + "\n", encoding="utf-8")
    return d


@pytest.mark.parametrize("line, message", [(None, "Field required"), ("offer_cost_yuan: -3", "greater than or equal"),
                                           ("offer_cost_yuan: lots", "decimal")])
def test_offer_cost_is_checked(tmp_path, line, message):
    d = _library_with(tmp_path, line)
    with pytest.raises(config.ConfigError) as err:
        load_library(d)
    text = str(err.value)
    assert "1134-012.yaml:" in text and "offer_cost_yuan" in text and message in text


def test_every_shipped_campaign_declares_its_offer_cost():
    assert all(c.offer_cost_yuan >= 0 for c in load_library())
    costs = load_contact_costs()
    assert (costs.sms_part, costs.call_dialled, costs.agent_sms) == (0.05, 1.5, 0.05)


def test_contact_costs_are_checked(tmp_path):
    bad = tmp_path / "channels.yaml"
    bad.write_text(textwrap.dedent("""\
        call_within_days: 2
        contact_cost_yuan:
          sms_part: 0.05
          call_dialled: -1
          agent_sms: 0.05
        """), encoding="utf-8")
    with pytest.raises(config.ConfigError) as err:
        load_contact_costs(bad)
    assert f"{bad}:4: contact_cost_yuan.call_dialled:" in str(err.value)


def test_month_rows_add_up_the_cycles_like_the_sql_month_grouping(engine):
    """The month's statistics are summed from its cycles' (no second pass over the contacts): they
    equal what the SQL returns grouping by month, here with two cycles in August."""
    data = plant(engine)
    t = schema.mkt_contact
    with engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(sa.select(t).where(t.c.campaign_code == GAIN)).mappings()]
    second = [{**r, "contact_id": "F" + r["contact_id"][1:], "cycle_date": dt.date(2026, 8, 20),
               "converted_at": None} for r in rows[: len(rows) // 2]]
    with engine.begin() as conn:
        conn.execute(t.insert(), second)
        conn.execute(dm.usage_monthly.insert(), data["after"])
    cfg = economics.EconomicsConfig()
    economics.stage_bills(engine, engine, dt.date(2026, 12, 5), cfg)
    economics.stage_subscribers(engine, engine)
    by_cycle = economics.slice_statistics(engine, dt.date(2026, 8, 1), dt.date(2026, 8, 31), "cycle", cfg)
    by_month = economics.slice_statistics(engine, dt.date(2026, 8, 1), dt.date(2026, 8, 31), "month", cfg)
    summed = economics.month_statistics(by_cycle)
    keys = ["campaign_code", "slice", "arm"]
    a = by_month.sort_values(keys).reset_index(drop=True)
    b = summed.sort_values(keys).reset_index(drop=True)
    assert len(a) == len(b) and (a[keys].values == b[keys].values).all()
    for col in ("n", "n_change", "converted", "retained", "sms_parts"):
        assert list(a[col].astype(int)) == list(b[col].astype(int)), col
    assert a["mean_change"].notna().all() and (a["after_months"] == 3).all()
    for col in ("mean_change", "var_change", "commission"):
        assert np.allclose(a[col].astype(float), b[col].astype(float), equal_nan=True), col
