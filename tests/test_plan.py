"""Issue 16: the plan as the marketing department reads it.

Campaign coding checked by check_config (digits against the declared benefit, requirement and
reward; one product code per offer), terminal-type and SMS-count targeting, the coverage gap list
and its reasons, the fallback campaign under every contact rule, the type-5 zero-usage customers
the default library must reach, type 3 in the call rule, and the plan's distribution and bundling
tables. Database tests build a small data mart by hand and run the real stages on SQLite and
PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import shutil
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
import yaml

from qz_outbound import (CONFIG_DIR, campaigns, config, coverage, db, preflight, publish, reports, schema,
                         segmentation, targeting)
from qz_outbound.campaigns import Campaign, code_fields
from qz_outbound.datamart import schema as dm_schema

D = dt.date(2026, 11, 23)
M0, M1, M2 = segmentation.cycle_months(D)
CHANNELS = targeting.load_channels()
COUNTY = "350582"


# ---------------------------------------------------------------- campaign coding (check_config)

def _write_campaign(directory: Path, code: str, **changes) -> Path:
    data = {"code": code, "name": f"测试活动{code}", **code_fields(code), "product_code": f"P{code[-3:]}",
            "offer": "测试优惠", "priority": 10, "valid_from": "2026-01-01", "valid_to": "2027-12-31",
            "target": {"stability_types": ["1"]}, "channels": ["sms"], "sms_variants": {"A": {"template": "1114-007-a"}},
            "offer_cost_yuan": 1}
    data.update(changes)
    path = directory / f"{code}.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def _line_of(path: Path, key: str) -> int:
    return next(i for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
                if line.startswith(f"{key}:"))


@pytest.fixture
def config_copy(tmp_path, monkeypatch):
    """A copy of the project's config folder that check_config reads (QZ_CONFIG_DIR)."""
    target = tmp_path / "config"
    shutil.copytree(CONFIG_DIR, target)
    monkeypatch.setenv("QZ_CONFIG_DIR", str(target))
    return target


def test_shipped_library_codes_agree_with_their_declarations_and_products_are_distinct():
    library = campaigns.load_library()
    for c in library:
        assert code_fields(c.code) == {"type": c.type, "benefit": c.benefit, "requirement": c.requirement,
                                       "reward": c.reward}, c.code
    products = [c.product_code for c in library]
    assert len(products) == len(set(products))
    # the corrected example of domain.md: prepay 50 yuan for 10 GB is uplift, gift, prepay, data
    assert next(c for c in library if c.product_code == "DATA10G").code == "1114-007"
    anniversary = [c for c in library if c.target.anniversary_month]
    assert anniversary and all("周年" in c.name and "生日" not in c.name for c in anniversary)


def test_check_config_refuses_a_code_whose_digit_disagrees_naming_file_field_and_digit(config_copy):
    # prepay 50 yuan for 10 GB declared as a gift for a prepay with a data reward, coded as 1141
    path = _write_campaign(config_copy / "campaigns", "1141-017", **{"benefit": "gift", "requirement": "prepay",
                                                                      "reward": "data"})
    problems = preflight.check_config_files()
    mine = [p for p in problems if "1141-017.yaml" in p]
    assert mine, problems
    text = "\n".join(mine)
    assert f"{path}:{_line_of(path, 'requirement')}: requirement:" in text
    assert "digit 3 (participation requirement) of the code to be 1" in text
    assert f"{path}:{_line_of(path, 'reward')}: reward:" in text and "to be 4" in text
    assert "expected code 1111-017" in text
    assert not any("1114-007.yaml" in p for p in problems)   # the shipped library itself is clean


def test_check_config_refuses_two_campaigns_sharing_a_product_code(config_copy):
    a = _write_campaign(config_copy / "campaigns", "1114-018", product_code="SHARED1")
    b = _write_campaign(config_copy / "campaigns", "2434-019", product_code="SHARED1")
    problems = preflight.check_config_files()
    for path, other in ((a, "2434-019"), (b, "1114-018")):
        line = f"{path}:{_line_of(path, 'product_code')}: product_code: product SHARED1 is also the product of campaign {other}"
        assert any(p.startswith(line) for p in problems), problems


def test_fallback_must_be_a_care_campaign(tmp_path):
    _write_campaign(tmp_path, "1114-020", fallback=True)
    with pytest.raises(config.ConfigError, match=r"1114-020.yaml:\d+: \(file\)|fallback"):
        campaigns.load_library(tmp_path)


# ---------------------------------------------------------------- a hand-built data mart

def campaign(code, product, priority=10, types=("1",), channels=("sms",), control_share="0", target=None,
             **extra) -> Campaign:
    data = {"code": code, "name": f"测试活动{code}", **code_fields(code), "product_code": product, "offer": "测试优惠",
            "priority": priority, "valid_from": "2026-01-01", "valid_to": "2027-12-31",
            "target": {"stability_types": list(types), **(target or {})}, "channels": list(channels),
            "sms_variants": {"A": {"template": "1114-007-a"}}, "control_share": control_share, "offer_cost_yuan": 1,
            **extra}
    if "call" in channels:
        data.setdefault("call_script", "2122-003")
    return Campaign.model_validate(data)


class Mart:
    def __init__(self, dm, mk):
        self.dm, self.mk = dm, mk
        dm_schema.create_tables(dm)
        schema.ensure_schema(mk)
        self.n = 0

    def customer(self, *, spend="60", base_spend=None, voice="300", data="3000", sms=10, terminal="5G",
                 market=None, bundles=(), products=(), dnd=False) -> str:
        """Usage equal in M0, M1 and M2 (stable, type 1) unless base_spend or zero usage says otherwise."""
        self.n += 1
        msisdn = f"138{self.n:08d}"
        base_spend = spend if base_spend is None else base_spend
        with self.dm.begin() as conn:
            conn.execute(dm_schema.subscriber.insert(), [{
                "msisdn": msisdn, "customer_name": "李四", "county_code": COUNTY, "open_date": dt.date(2019, 5, 1),
                "status": "active", "market_segment": market, "terminal_type": terminal, "home_agent_id": None}])
            zero = Decimal(spend) == 0 and Decimal(voice) == 0 and Decimal(data) == 0
            conn.execute(dm_schema.usage_monthly.insert(), [
                {"msisdn": msisdn, "month": m, "spend_yuan": Decimal(s), "voice_minutes": Decimal(v),
                 "data_mb": Decimal(x), "sms_count": n}
                for m, s, v, x, n in ((M0, spend, voice, data, sms),
                                      (M1, base_spend if not zero else "50", voice if not zero else "100",
                                       data if not zero else "500", 5),
                                      (M2, base_spend if not zero else "50", voice if not zero else "100",
                                       data if not zero else "500", 5))])
            for bundle_type, kind in bundles:
                conn.execute(dm_schema.bundle.insert(), [{
                    "msisdn": msisdn, "bundle_type": bundle_type, "bundle_kind": kind,
                    "start_date": dt.date(2025, 1, 1), "end_date": None}])
            for p in products:
                conn.execute(dm_schema.product_subscription.insert(), [{
                    "msisdn": msisdn, "product_code": p, "start_date": dt.date(2025, 1, 1), "end_date": None}])
            if dnd:
                conn.execute(dm_schema.dnd_list.insert(), [{
                    "msisdn": msisdn, "added_at": dt.datetime(2026, 1, 1), "source": "customer_request"}])
        return msisdn

    def past_contact(self, msisdn, days_ago, campaign_code="9999-999"):
        cycle = D - dt.timedelta(days=days_ago)
        with self.mk.begin() as conn:
            conn.execute(schema.mkt_contact.insert(), [{
                "contact_id": f"P{cycle:%Y%m%d}-{msisdn}-{campaign_code}", "cycle_date": cycle, "msisdn": msisdn,
                "county_code": COUNTY, "campaign_code": campaign_code, "product_code": "X", "variant": None,
                "channel": "sms", "segment_code": "1-P06V05D05T07", "status": "delivered",
                "created_at": dt.datetime.combine(cycle, dt.time(9))}])

    def opt_out(self, msisdn):
        with self.mk.begin() as conn:
            conn.execute(schema.mkt_opt_out.insert(), [{
                "msisdn": msisdn, "opted_out_at": dt.datetime(2026, 10, 1, 10), "source": "sms_reply"}])

    def segment(self):
        segmentation.segment_customers(self.dm, self.mk, D)
        targeting.stage_extracts(self.dm, self.mk, D)

    def run(self, library, channels=CHANNELS, publish_lists=False):
        self.segment()
        targeting.build_target_list(self.mk, D, library, channels=channels)
        if publish_lists:
            publish.publish_county(self.mk, D, COUNTY, library, channels)

    def _rows(self, sql):
        with self.mk.connect() as conn:
            return conn.execute(sa.text(sql), {"d": db.date_value(self.mk, D)}).all()

    def offers(self) -> dict[str, str]:
        return dict(self._rows("select msisdn, campaign_code from mkt_target where cycle_date = :d"))

    def targets(self) -> dict[str, tuple]:
        return {r[0]: tuple(r[1:]) for r in self._rows(
            "select msisdn, campaign_code, is_control, call_eligible from mkt_target where cycle_date = :d")}

    def channels(self) -> dict[str, str]:
        return dict(self._rows("select msisdn, channel from mkt_contact where cycle_date = :d"))


@pytest.fixture(params=["sqlite", "postgresql"])
def mart(request, tmp_path, pg_database_factory):
    if request.param == "sqlite":
        dm = db.make_engine(f"sqlite:///{tmp_path / 'dm.db'}")
        mk = db.make_engine(f"sqlite:///{tmp_path / 'mk.db'}")
    else:
        dm = db.make_engine(pg_database_factory("qz_plan_dm"))
        mk = db.make_engine(pg_database_factory("qz_plan_mk"))
    yield Mart(dm, mk)
    dm.dispose()
    mk.dispose()


# ---------------------------------------------------------------- targeting dimensions

def test_terminal_type_and_sms_count_targeting_select_the_right_customers(mart):
    feature, four_g, five_g, unknown = (mart.customer(terminal=t) for t in ("feature", "4G", "5G", "unknown"))
    few, some, many = mart.customer(sms=2), mart.customer(sms=20), mart.customer(sms=200)
    library = [
        campaign("2122-001", "HANDSET", priority=1, target={"terminal_types": ["feature", "4G"]}),
        campaign("1114-002", "SMSPACK", priority=2, target={"sms_count": {"min": 10, "max": 100}}),
    ]
    mart.run(library)
    offers = mart.offers()
    assert offers[feature] == offers[four_g] == "2122-001"
    # 5G and unknown handsets are not the handset campaign's; with 10 SMS they fall to the SMS campaign
    assert offers[five_g] == offers[unknown] == "1114-002"
    assert few not in offers and many not in offers and offers[some] == "1114-002"
    with mart.mk.connect() as conn:
        snap = dict(conn.execute(sa.text("select msisdn, sms_m0 from mkt_segment_snapshot")).all())
    assert (snap[few], snap[some], snap[many]) == (2, 20, 200)


def test_default_handset_campaign_targets_feature_phone_and_4g_owners():
    handset = next(c for c in campaigns.load_library() if c.reward == "handset")
    assert sorted(handset.target.terminal_types) == ["4G", "feature"]


# ---------------------------------------------------------------- who is phoned

def test_type_3_high_value_customers_are_phoned(mart):
    declining = mart.customer(spend="140", base_spend="160", terminal="4G")   # -12.5 %: type 3, spend tier 10
    low_value = mart.customer(spend="45", base_spend="52", terminal="4G")     # type 3, spend tier 5
    assert "3" in CHANNELS.call_rule.stability_types
    # the default library: type 3 is among the handset campaign's (call and SMS) targets
    mart.run(campaigns.load_library(), publish_lists=True)
    with mart.mk.connect() as conn:
        types = dict(conn.execute(sa.text("select msisdn, stability_type from mkt_segment_snapshot")).all())
    assert types[declining] == types[low_value] == "3"
    targets = mart.targets()
    assert targets[declining][2] == 1 and targets[low_value][2] == 0
    channels = mart.channels()
    assert channels[declining] == "call" and channels[low_value] == "sms"


# ---------------------------------------------------------------- coverage

def test_gap_list_gives_each_uncovered_customer_its_reason(mart):
    library = [campaign("1114-001", "DATA10G", types=("1",))]
    offered = mart.customer()
    capped = mart.customer()
    mart.past_contact(capped, days_ago=2)                   # one contact per 7 days: held back
    blocked = mart.customer(products=["DATA10G"])           # the only campaign for them: product held
    refused_gap = mart.customer()
    mart.past_contact(refused_gap, days_ago=10, campaign_code="1114-001")   # the same campaign within 30 days
    untargeted = mart.customer(spend="40", base_spend="46")  # type 3: no campaign of this library
    dnd = mart.customer(dnd=True)                            # hard-excluded: not a gap, never contactable
    mart.run(library)
    assert set(mart.offers()) == {offered}
    gaps = coverage.coverage_gaps(mart.mk, D, library)
    got = {(r.stability_type, r.reason): r.customers for r in gaps.itertuples()}
    assert got == {("1", "capped"): 1, ("1", "blocked"): 2, ("3", "no_campaign"): 1}
    assert set(gaps.county_code) == {COUNTY}
    # the gap list and the coverage report agree: contactable minus offered = blocked + no_campaign
    cov = targeting.coverage(mart.mk, D)
    assert int(cov.contactable.sum() - cov.offered.sum()) == 3
    assert dnd not in mart.offers() and untargeted not in mart.offers()


def test_fallback_campaign_takes_the_uncovered_and_never_breaks_a_contact_rule(mart):
    fallback = campaign("3141-090", "CAREPACK", priority=1, types=("1", "3", "5"), control_share="0.3",
                        fallback=True)
    regular = campaign("1114-001", "DATA10G", priority=50, types=("1",))
    covered = [mart.customer() for _ in range(3)]                               # type 1: the regular offer
    uncovered = [mart.customer(spend="40", base_spend="46") for _ in range(30)]  # type 3: nobody else
    dnd = mart.customer(spend="40", base_spend="46", dnd=True)
    opted = mart.customer(spend="40", base_spend="46")
    mart.opt_out(opted)
    capped = mart.customer(spend="40", base_spend="46")
    mart.past_contact(capped, days_ago=1)
    recent = mart.customer(spend="40", base_spend="46")
    mart.past_contact(recent, days_ago=12, campaign_code="3141-090")   # same campaign within 30 days
    holder = mart.customer(spend="40", base_spend="46", products=["CAREPACK"])
    mart.run([fallback, regular], publish_lists=True)
    targets = mart.targets()
    # a better priority does not let the fallback take a customer another campaign offers
    assert all(targets[m][0] == "1114-001" for m in covered)
    assert all(targets[m][0] == "3141-090" for m in uncovered)
    for m in (dnd, opted, capped, recent, holder):
        assert m not in targets
    # its control group is held out like any campaign's: recorded as control, not contacted
    held = {m for m in uncovered if targets[m][1] == 1}
    assert 0 < len(held) < len(uncovered)
    channels = mart.channels()
    assert {channels[m] for m in held} == {"control"}
    assert {channels[m] for m in set(uncovered) - held} == {"sms"}
    gaps = coverage.coverage_gaps(mart.mk, D, [fallback, regular])
    assert set(gaps.reason) <= {"capped", "blocked"}       # nobody left for lack of a campaign


def test_type_5_zero_usage_customers_are_reached_by_the_default_library(mart):
    sleepers = [mart.customer(spend="0", voice="0", data="0", sms=0) for _ in range(5)]
    mart.run(campaigns.load_library())
    with mart.mk.connect() as conn:
        types = dict(conn.execute(sa.text("select msisdn, stability_type from mkt_segment_snapshot")).all())
    assert {types[m] for m in sleepers} == {"5"}
    offers = mart.offers()
    assert all(m in offers for m in sleepers)
    woken = campaigns.load_library()
    assert {next(c for c in woken if c.code == offers[m]).type for m in sleepers} == {"care"}
    assert coverage.coverage_gaps(mart.mk, D, woken).query("stability_type == '5'").empty


def test_coverage_alert_goes_to_hq_below_the_threshold():
    frame = pd.DataFrame({"county_code": ["350582", "350503"], "stability_type": ["1", "1"],
                          "contactable": [100, 100], "offered": [90, 20]})
    low = coverage.coverage_alert(frame, D, coverage.CoverageConfig(alert_below=0.6))
    assert low is not None and low.kind == "coverage_low" and "55.0%" in low.summary
    assert "丰泽区 20.0%" in low.detail and "晋江市" not in low.detail
    assert coverage.coverage_alert(frame, D, coverage.CoverageConfig(alert_below=0.5)) is None
    assert coverage.coverage_alert(frame, D, coverage.CoverageConfig(alert_below=None)) is None
    assert coverage.load_coverage_config().alert_below is not None


# ---------------------------------------------------------------- the plan's tables

def test_a_customer_with_hard_and_soft_bundles_counts_in_both_rates(mart, tmp_path):
    both = mart.customer(bundles=[("contract", "hard"), ("package", "soft")])
    hard = mart.customer(bundles=[("min_spend", "hard")])
    soft = mart.customer(bundles=[("vpn", "soft")])
    mart.customer()
    mart.segment()
    rep = reports.write_distribution_report(mart.mk, D, tmp_path / "out")
    bund = pd.read_csv(rep.bundling_csv_path, encoding="utf-8-sig", dtype={"stability_type": str})
    row = bund.set_index("stability_type").loc["1"]
    assert (row.customers, row.hard_bundled, row.soft_bundled, row.bundled, row.package_users) == (4, 2, 2, 3, 1)
    assert row.hard_rate == pytest.approx(0.5) and row.soft_rate == pytest.approx(0.5)
    assert row.bundling_rate == pytest.approx(0.75) and row.hard_rate + row.soft_rate >= row.bundling_rate
    assert row.package_share == pytest.approx(0.25)
    assert both and hard and soft
    html = rep.html_path.read_text(encoding="utf-8")
    assert "硬捆绑率" in html and "软捆绑率" in html and "综合捆绑率" in html and "套餐用户占比" in html


def test_shares_within_type_and_within_market_sum_to_100(mart, tmp_path):
    for market, n in (("campus", 3), ("migrant", 2), (None, 5)):
        for _ in range(n):
            mart.customer(market=market)
    for market, n in (("campus", 1), ("enterprise", 4)):
        for _ in range(n):
            mart.customer(market=market, spend="40", base_spend="46")   # type 3
    mart.segment()
    rep = reports.write_distribution_report(mart.mk, D, tmp_path / "out")
    frame = pd.read_csv(rep.csv_path, encoding="utf-8-sig", dtype={"value": str, "stability_type": str})
    market = frame[frame.dimension == "market_segment"].set_index(["stability_type", "value"])
    assert market.loc[("1", "campus"), "share_in_type"] == pytest.approx(0.3)
    assert market.loc[("3", "enterprise"), "share_in_type"] == pytest.approx(0.8)
    assert market.loc[("1", "campus"), "share_in_value"] == pytest.approx(0.75)   # 3 of the market's 4
    assert market.loc[("3", "campus"), "share_in_value"] == pytest.approx(0.25)
    assert market.loc[("1", "campus"), "share"] == pytest.approx(0.2)             # 3 of all 15
    for dim, part in frame.groupby("dimension"):
        for t, row in part.groupby("stability_type"):
            assert row["share_in_type"].sum() == pytest.approx(1.0), (dim, t)
        for v, col in part.groupby("value"):
            assert col["share_in_value"].sum() == pytest.approx(1.0), (dim, v)


def test_outcomes_are_sliced_by_each_code_digit_market_and_terminal(mart):
    from qz_outbound import outcomes

    for _ in range(2):
        mart.customer(market="campus", terminal="feature")
    for _ in range(3):
        mart.customer(market="migrant", terminal="5G")
    library = [campaign("1114-001", "DATA10G", priority=1, target={"market_segments": ["campus"]}),
               campaign("2241-002", "CONTRACT", priority=2)]
    mart.run(library, publish_lists=True)
    frame = outcomes.outcome_report(mart.mk, D, library)
    got = {(r.dimension, r.value): r.contacts for r in frame.itertuples() if r.dimension.startswith("all_")}
    assert got[("all_campaign_type", "uplift")] == 2 and got[("all_campaign_type", "retention")] == 3
    assert got[("all_benefit", "gift")] == 2 and got[("all_benefit", "discount")] == 3
    assert got[("all_requirement", "prepay")] == 2 and got[("all_requirement", "stay")] == 3
    assert got[("all_reward", "data")] == 2 and got[("all_reward", "credit")] == 3
    assert got[("all_market", "campus")] == 2 and got[("all_market", "migrant")] == 3
    assert got[("all_terminal", "feature")] == 2 and got[("all_terminal", "5G")] == 3
    per_campaign = frame[(frame.dimension == "terminal") & (frame.campaign_code == "2241-002")]
    assert dict(zip(per_campaign.value, per_campaign.contacts)) == {"5G": 3}
