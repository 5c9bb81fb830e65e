"""Monthly budgets before publishing (economics.md "Budgets"; qz_outbound/budgets.py), on SQLite and
PostgreSQL.

* A real small cycle (generated data mart, segmented, targeted): the campaign that commits the most
  gets half of what it would commit as its budget. It keeps its customers in call order up to the
  budget; the others carry reason ``budget`` in the target audit and get no contact (no SMS, no
  call, no control row); the other campaigns are untouched; a re-run of the day decides and
  publishes the same and alerts nobody again.
* Consecutive days of a month on a constructed list: the 80% alert fires on the day the month
  passes 80%, the 100% alert on the day the budget runs out, each once (re-runs included), and a
  new month starts again from zero.
* config/budgets.yaml mistakes are named with file, line and field.
"""

from __future__ import annotations

import datetime as dt
import textwrap

import pandas as pd
import pytest
import sqlalchemy as sa

from qz_outbound import budgets, campaigns, clock, config, db, publish, schema, segmentation, targeting, validation
from qz_outbound.counties import county_names
from qz_outbound.dev.demo_datamart import generate

D = dt.date(2026, 11, 23)


def _engine(request, tmp_path, prefix):
    if request.param == "sqlite":
        return db.make_engine(f"sqlite:///{tmp_path / 'one.db'}")
    return db.make_engine(request.getfixturevalue("pg_database_factory")(prefix))


def _library(offer_cost: float = 8.0) -> list[campaigns.Campaign]:
    """The shipped library with an offer cost on every campaign (picked by attribute, not by code)."""
    return [c.model_copy(update={"offer_cost_yuan": offer_cost}) for c in campaigns.load_library()]


@pytest.fixture(params=["sqlite", "postgresql"])
def cycle(request, tmp_path):
    engine = _engine(request, tmp_path, "qz_budget")
    generate(engine, 4000, D, progress=False)
    schema.ensure_schema(engine)
    library = _library()
    clock.set_now(dt.datetime(2026, 11, 23, 5, 30))
    segmentation.segment_customers(engine, engine, D)
    targeting.stage_extracts(engine, engine, D)
    targeting.build_target_list(engine, D, library)
    yield engine, library
    clock.set_now(None)
    engine.dispose()


def _commit(engine, day=D) -> pd.DataFrame:
    with engine.connect() as conn:
        return pd.read_sql(sa.select(schema.mkt_budget_commit).where(schema.mkt_budget_commit.c.cycle_date == day),
                           conn)


def _cut(engine, day=D) -> pd.DataFrame:
    with engine.connect() as conn:
        return pd.read_sql(sa.select(schema.mkt_budget_cut).where(schema.mkt_budget_cut.c.cycle_date == day), conn)


def _publish_all(engine, library):
    for county in county_names():
        publish.publish_county(engine, D, county, library, queue_sms=True)
    with engine.connect() as conn:
        return pd.read_sql(sa.text("select contact_id, msisdn, campaign_code, channel, status from mkt_contact "
                                   "order by contact_id"), conn)


def _alerts(engine) -> pd.DataFrame:
    with engine.connect() as conn:
        return pd.read_sql(sa.select(schema.mkt_budget_alert).order_by(
            schema.mkt_budget_alert.c.cycle_date, schema.mkt_budget_alert.c.threshold), conn)


def _send(engine, day) -> list[str]:
    """What the DAG task does after apply_budgets: send the pending alerts, mark them sent."""
    sent = []
    for key, alert in budgets.pending_alerts(engine, day):
        sent.append(alert.summary)
        budgets.mark_sent(engine, key)
    return sent


def test_a_capped_campaign_keeps_its_best_customers_and_the_rest_are_never_contacted(cycle):
    engine, library = cycle
    free = budgets.BudgetConfig(campaigns={})
    budgets.apply_budgets(engine, D, library, cfg=free)
    uncapped = _commit(engine).groupby("campaign_code")["committed_yuan"].sum()
    assert _cut(engine).empty and uncapped.sum() > 0
    code = uncapped.idxmax()
    budget = round(float(uncapped[code]) / 2, 2)
    cfg = budgets.BudgetConfig(campaigns={code: budgets.CampaignBudget(monthly_yuan=budget, conversion_prior=0.02)})

    counts = budgets.apply_budgets(engine, D, library, cfg=cfg)
    cut = _cut(engine)
    assert counts["cut"] == len(cut) > 0 and counts["campaigns_capped"] == 1
    assert set(cut["campaign_code"]) == {code}          # nobody else's customers
    committed = _commit(engine).groupby("campaign_code")["committed_yuan"].sum()
    assert committed[code] <= budget + 1e-6
    assert committed[code] > budget * 0.9                # filled up to the budget, not far below it
    for other in committed.index.drop(code):
        assert committed[other] == pytest.approx(uncapped[other])

    # the kept ones come first in call order (spend tier high to low, then number): the cut is a suffix
    with engine.connect() as conn:
        rows = pd.read_sql(sa.text("select msisdn, spend_tier, is_control from mkt_target "
                                   "where cycle_date = :d and campaign_code = :c"), conn,
                           params={"d": D.isoformat() if engine.dialect.name == "sqlite" else D, "c": code})
    order = rows.sort_values(["spend_tier", "msisdn"], ascending=[False, True])["msisdn"].tolist()
    cut_set = set(cut["msisdn"])
    assert set(order[len(order) - len(cut_set):]) == cut_set
    kept = rows[~rows["msisdn"].isin(cut_set)]
    assert kept["is_control"].sum() > 0                  # the control arm is cut at the same point, not dropped
    assert cut["is_control"].sum() > 0

    # the target audit shows why, and validation does not take it for a defect of the list
    audit = validation.read_target_rows(engine, D)
    reasons = audit.set_index("msisdn")["excluded_reason"]
    assert (reasons.loc[list(cut_set)].astype(str) == "budget").all()
    assert (reasons.drop(list(cut_set)).astype(str) != "budget").all()
    assert validation.breakdowns(audit, list(county_names()), [c.code for c in library])["no_excluded_customer"] \
        .get("budget") is None

    contacts = _publish_all(engine, library)
    assert not set(contacts["msisdn"]) & cut_set         # no SMS, no call, no control row
    assert set(kept[kept["is_control"] == 1]["msisdn"]) <= set(contacts["msisdn"])   # kept control: recorded
    with engine.connect() as conn:
        outbox_cut = conn.execute(sa.text("select count(*) from sms_outbox as o join mkt_contact as c "
                                          "on c.contact_id = o.contact_id where c.campaign_code = :c"),
                                  {"c": code}).scalar()
    published_of_code = contacts[contacts["campaign_code"] == code]
    assert 0 < len(published_of_code) <= len(kept)
    assert outbox_cut == (published_of_code["channel"] == "sms").sum()
    first_alerts = _send(engine, D)
    assert len(first_alerts) == 2 and any("used up" in a for a in first_alerts)   # 80% and 100%, once each

    # a re-run of the day: the same decision, the same contacts, nobody alerted again
    budgets.apply_budgets(engine, D, library, cfg=cfg)
    assert set(_cut(engine)["msisdn"]) == cut_set
    assert _publish_all(engine, library).equals(contacts)
    assert _send(engine, D) == []
    assert len(_alerts(engine)) == 2


def _list_rows(day: dt.date, code: str, variant: str | None, n: int, start: int) -> list[dict]:
    return [{"cycle_date": day, "msisdn": f"139{start + i:08d}", "county_code": "350582", "campaign_code": code,
             "product_code": "P", "priority": 1, "stability_type": "41", "spend_tier": 11 - i % 10,
             "segment_code": "S", "is_control": 0, "variant": variant, "call_eligible": 0, "sms_allowed": 1}
            for i in range(n)]


@pytest.fixture(params=["sqlite", "postgresql"])
def empty(request, tmp_path):
    engine = _engine(request, tmp_path, "qz_budget_days")
    schema.ensure_schema(engine)
    clock.set_now(dt.datetime(2026, 11, 3, 5, 30))
    yield engine
    clock.set_now(None)
    engine.dispose()


def test_alerts_fire_once_each_at_80_and_100_percent_across_the_days_of_a_month(empty):
    engine = empty
    campaign = next(c for c in _library(offer_cost=10.0) if c.sms_variants and "sms" in c.channels)
    library = [campaign]
    variant = campaign.variant_labels[0]
    parts = dict(((k, v), p) for k, v, p in budgets.sms_parts(library))[(campaign.code, variant)]
    per_row = parts * 0.05 + 0.01 * 10.0                 # an SMS's parts + expected conversions x offer cost
    per_day = 100 * per_row
    cfg = budgets.BudgetConfig(campaigns={campaign.code: budgets.CampaignBudget(
        monthly_yuan=round(per_day / 0.425, 4), conversion_prior=0.01)})   # days at 42.5%, 85%, 127.5%
    days = [dt.date(2026, 11, 2) + dt.timedelta(days=i) for i in range(4)] + [dt.date(2026, 12, 1)]
    with engine.begin() as conn:
        for i, day in enumerate(days):
            if engine.dialect.name == "postgresql":   # the list is partitioned by cycle there
                conn.exec_driver_sql(f"create table {db.partition_name('mkt_target', day)} partition of mkt_target "
                                     f"for values in ('{day.isoformat()}')")
            conn.execute(schema.mkt_target.insert(), _list_rows(day, campaign.code, variant, 100, 1000 * i))

    fired = {}
    for day in days:
        for _run in range(2):                            # every day run twice: a re-run alerts nobody
            budgets.apply_budgets(engine, day, library, cfg=cfg)
            fired.setdefault(day, []).extend(_send(engine, day))
    assert [len(fired[d]) for d in days] == [0, 1, 1, 0, 0]
    assert "passed 80%" in fired[days[1]][0] and "used up" in fired[days[2]][0]
    alerts = _alerts(engine)
    assert alerts[["threshold"]].to_dict("list") == {"threshold": [80, 100]}
    assert alerts["sent_at"].notna().all()
    # the third day is filled up to the budget, the fourth has nothing left; December starts afresh
    cut = {d: len(_cut(engine, d)) for d in days}
    assert cut[days[0]] == cut[days[1]] == 0 and 0 < cut[days[2]] < 100 and cut[days[3]] == 100
    assert cut[days[4]] == 0
    with engine.connect() as conn:
        committed = dict(conn.execute(sa.select(schema.mkt_budget_commit.c.cycle_date,
                                                schema.mkt_budget_commit.c.committed_yuan)).all())
    november = sum(v for k, v in committed.items() if str(k) < "2026-12-01")
    assert november <= cfg.campaigns[campaign.code].monthly_yuan + 1e-6
    assert november > cfg.campaigns[campaign.code].monthly_yuan - per_row - 1e-6


def test_budget_use_reports_each_configured_budget(empty, tmp_path):
    engine = empty
    library = _library()
    campaign = next(c for c in library if c.sms_variants)
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "budgets.yaml").write_text(textwrap.dedent(f"""\
        campaigns:
          "{campaign.code}":
            monthly_yuan: 100.0
            counties: {{"350582": 40.0}}
            conversion_prior: 0.01
        """), encoding="utf-8")
    cfg = budgets.load_budgets(tmp_path / "cfg" / "budgets.yaml", library=library)
    with engine.begin() as conn:
        conn.execute(schema.mkt_budget_commit.insert(), [
            {"cycle_date": dt.date(2026, 11, 2), "campaign_code": campaign.code, "county_code": "350582",
             "sms_contacts": 10, "sms_parts": 10, "calls": 0, "expected_conversions": 0.1, "committed_yuan": 30.0,
             "cut_rows": 0},
            {"cycle_date": dt.date(2026, 11, 3), "campaign_code": campaign.code, "county_code": "350583",
             "sms_contacts": 10, "sms_parts": 10, "calls": 0, "expected_conversions": 0.1, "committed_yuan": 20.0,
             "cut_rows": 0},
            {"cycle_date": dt.date(2026, 10, 30), "campaign_code": campaign.code, "county_code": "350582",
             "sms_contacts": 10, "sms_parts": 10, "calls": 0, "expected_conversions": 0.1, "committed_yuan": 99.0,
             "cut_rows": 0}])
    use = budgets.budget_use(engine, dt.date(2026, 11, 15), cfg)
    assert list(use.columns) == ["campaign_code", "county_code", "budget_yuan", "committed_yuan", "share"]
    rows = {(r.campaign_code, r.county_code): r for r in use.itertuples(index=False)}
    whole = rows[(campaign.code, None)]
    assert (whole.budget_yuan, whole.committed_yuan, whole.share) == (100.0, 50.0, 0.5)
    county = rows[(campaign.code, "350582")]
    assert (county.budget_yuan, county.committed_yuan, county.share) == (40.0, 30.0, 0.75)
    # HQ's economics page shows the campaign's own budget, not the county's
    from qz_outbound.portal import economics as economics_page
    assert economics_page.budget_used(engine, dt.date(2026, 11, 15), cfg) == {campaign.code: "50 / 100 元（50%）"}


def _problems(path, library):
    with pytest.raises(config.ConfigError) as err:
        budgets.load_budgets(path, library=library)
    return err.value.problems


def test_budget_config_mistakes_name_file_line_and_field(tmp_path):
    library = _library()
    code = library[0].code
    path = tmp_path / "budgets.yaml"
    path.write_text(textwrap.dedent(f"""\
        campaigns:
          "{code}":
            monthly_yuan: -5
            conversion_prior: 0.02
        """), encoding="utf-8")
    assert [(p[1], p[2]) for p in _problems(path, library)] == [(3, f"campaigns.{code}.monthly_yuan")]
    path.write_text(textwrap.dedent(f"""\
        campaigns:
          "{code}":
            monthly_yuan: "lots"
            conversion_prior: 0.02
        """), encoding="utf-8")
    problem = _problems(path, library)[0]
    assert (problem[0], problem[1], problem[2]) == (str(path), 3, f"campaigns.{code}.monthly_yuan")
    assert "number" in problem[3] or "float" in problem[3]
    path.write_text(textwrap.dedent(f"""\
        min_history_contacts: 100
        campaigns:
          "9999-999":
            monthly_yuan: 10
            conversion_prior: 0.02
          "{code}":
            monthly_yuan: 10
            counties:
              "350599": 5
            conversion_prior: 0.02
        """), encoding="utf-8")
    problems = _problems(path, library)
    assert [(p[1], p[2]) for p in problems] == [(3, "campaigns.9999-999"),
                                                (9, f"campaigns.{code}.counties.350599")]
    assert "unknown campaign code" in problems[0][3] and "unknown county code" in problems[1][3]
    assert str(path) in str(config.ConfigError(problems))


def test_the_shipped_budget_file_passes_check_config():
    from qz_outbound import preflight

    assert "budgets.yaml" in dict(preflight.config_file_loaders())
    assert isinstance(budgets.load_budgets(), budgets.BudgetConfig)


def test_a_county_budget_caps_that_county_only_and_alerts_for_it(empty):
    engine = empty
    campaign = next(c for c in _library(offer_cost=10.0) if c.sms_variants and "sms" in c.channels)
    variant = campaign.variant_labels[0]
    day = dt.date(2026, 11, 2)
    rows = _list_rows(day, campaign.code, variant, 50, 0)
    rows += [{**r, "msisdn": f"137{i:08d}", "county_code": "350583"} for i, r in enumerate(_list_rows(day, campaign.code,
                                                                                                    variant, 50, 0))]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql(f"create table {db.partition_name('mkt_target', day)} partition of mkt_target "
                                 f"for values in ('{day.isoformat()}')")
        conn.execute(schema.mkt_target.insert(), rows)
    cfg = budgets.BudgetConfig(campaigns={campaign.code: budgets.CampaignBudget(
        monthly_yuan=1000.0, counties={"350582": 1.0}, conversion_prior=0.01)})
    budgets.apply_budgets(engine, day, [campaign], cfg=cfg)
    cut = _cut(engine, day)
    assert set(cut["county_code"]) == {"350582"} and (cut["by_county"] == 1).all()
    assert 0 < len(cut) < 50
    keys = {(a["county_code"], a["threshold"]) for a in budgets.record_alerts(engine, day, cfg)}
    assert keys == {("350582", 80), ("350582", 100)}          # the campaign's own budget is far from used up
