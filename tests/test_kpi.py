"""County KPI completion (economics.md "KPI targets"; qz_outbound/kpi.py) on constructed data, on SQLite
and PostgreSQL, and config/kpi_targets.yaml's mistakes named with file, line and field."""

from __future__ import annotations

import datetime as dt
import textwrap

import pytest
import sqlalchemy as sa

from qz_outbound import clock, config, db, kpi, schema
from qz_outbound.portal.schema import mkt_call_outcome

NOV = dt.date(2026, 11, 1)
A, B = "350582", "350583"
TS = dt.datetime(2026, 11, 3, 10, 0, tzinfo=clock.SHANGHAI)


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path):
    if request.param == "sqlite":
        eng = db.make_engine(f"sqlite:///{tmp_path / 'kpi.db'}")
    else:
        eng = db.make_engine(request.getfixturevalue("pg_database_factory")("qz_kpi"))
    schema.ensure_schema(eng)
    yield eng
    eng.dispose()


def _contact(n: int, day: dt.date, county: str, channel: str, converted: bool) -> dict:
    return {"contact_id": f"C{day:%Y%m%d}-{n:011d}", "cycle_date": day, "msisdn": f"139{n:08d}",
            "county_code": county, "campaign_code": "1114-007", "product_code": "P", "variant": None,
            "channel": channel, "segment_code": "S", "status": "delivered" if channel != "control" else "held_out",
            "created_at": TS, "converted_at": TS if converted else None}


def _snapshot(n: int, day: dt.date, county: str, bundle: str | None) -> dict:
    return {"cycle_date": day, "msisdn": f"138{n:08d}", "county_code": county, "stability_type": "1",
            "spend_tier": 5, "voice_tier": 5, "data_tier": 5, "tenure_tier": 5, "market_segment": None,
            "segment_code": "S", "status": "normal", "tenure_months": 24, "spend_m0": 50.0, "voice_m0": 100.0,
            "data_m0": 1.0, "bundle_kind": bundle, "open_date": dt.date(2020, 1, 1), "customer_name": None}


def _outcome(contact: dict, outcome: str, minute: int) -> dict:
    return {"contact_id": contact["contact_id"], "outcome": outcome, "called_at": TS + dt.timedelta(minutes=minute),
            "called_at_given": True, "cycle_date": contact["cycle_date"], "county_code": contact["county_code"],
            "msisdn": contact["msisdn"], "campaign_code": contact["campaign_code"], "note": None,
            "upload_id": "U1", "loaded_at": TS}


def _load(engine):
    d1, d2 = dt.date(2026, 11, 2), dt.date(2026, 11, 3)
    contacts = ([_contact(i, d1, A, "sms", i < 3) for i in range(10)]
                + [_contact(100 + i, d2, A, "sms", i < 1) for i in range(10)]
                + [_contact(200 + i, d2, A, "call", False) for i in range(4)]
                + [_contact(300, d2, A, "control", True)]                       # control: not a conversion
                + [_contact(400 + i, d2, B, "sms", True) for i in range(5)]     # another county
                + [_contact(500, dt.date(2026, 10, 30), A, "sms", True)])       # another month
    calls = [c for c in contacts if c["channel"] == "call"]
    outcomes = [_outcome(calls[0], "accepted", 0),
                _outcome(calls[1], "no_answer", 0), _outcome(calls[1], "callback", 60),   # redialled: connected once
                _outcome(calls[2], "busy", 0)]                                            # dialled, not connected
    snapshot = ([_snapshot(i, d1, A, "hard" if i == 0 else None) for i in range(4)]
                + [_snapshot(10 + i, d2, A, {0: "hard", 1: "soft"}.get(i)) for i in range(4)]
                + [_snapshot(20 + i, d2, B, "soft") for i in range(4)])
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            for day in (d1, d2):
                conn.exec_driver_sql(f"create table {db.partition_name('mkt_segment_snapshot', day)} partition of "
                                     f"mkt_segment_snapshot for values in ('{day.isoformat()}')")
        conn.execute(schema.mkt_contact.insert(), contacts)
        conn.execute(mkt_call_outcome.insert(), outcomes)
        conn.execute(schema.mkt_segment_snapshot.insert(), snapshot)


TARGETS = kpi.KpiTargets(counties={A: kpi.CountyTargets(conversions=8, incremental_revenue_yuan=1000, customers_kept=10,
                                                        combined_bundling_rate=0.4, connect_rate=0.5)})

ECONOMICS = schema.mkt_campaign_economics   # economics.md "Output other systems read"


def _figures(engine) -> dict:
    frame = kpi.completion(engine, NOV, TARGETS, counties=[A, B])
    return {(r.county_code, r.kpi): (r.actual, r.completion) for r in frame.itertuples(index=False)}


def test_completion_per_county_on_constructed_data(engine):
    _load(engine)
    got = _figures(engine)
    assert got[(A, "conversions")] == (4.0, 0.5)          # 3 + 1; control, another county, October left out
    actual, done = got[(A, "connect_rate")]
    assert actual == pytest.approx(2 / 3) and done == pytest.approx(4 / 3)   # 2 connected of 3 dialled
    assert got[(A, "combined_bundling_rate")] == (0.5, 1.25)   # the month's latest snapshot: hard + soft of 4
    # no economics rows yet: not measurable, never zero
    assert got[(A, "incremental_revenue_yuan")] == (None, None)
    assert got[(A, "customers_kept")] == (None, None)
    assert got[(B, "conversions")] == (5.0, None)           # no target: a figure without completion
    assert got[(B, "connect_rate")] == (None, None)         # no calls: nothing dialled


def test_economics_figures_are_not_measurable_until_an_after_month_exists(engine):
    _load(engine)
    row = dict(campaign_code="1114-007", contacted=20, control=1, conversion_uplift=0.01, incremental_arpu=2.0,
               arpu_ci_low=1.0, arpu_ci_high=3.0, cost=10.0, roi=1.0)
    with engine.begin() as conn:
        conn.execute(ECONOMICS.insert(), [
            {**row, "cycle_date": dt.date(2026, 11, 2), "slice": f"county:{A}", "after_months": 0,
             "incremental_revenue": None, "customers_kept": None},
            {**row, "cycle_date": dt.date(2026, 11, 2), "slice": "all", "after_months": 1,
             "incremental_revenue": 9999.0, "customers_kept": 99.0}])
    got = _figures(engine)
    assert got[(A, "incremental_revenue_yuan")] == (None, None)   # a row, but no after-month
    with engine.begin() as conn:
        conn.execute(ECONOMICS.insert(), [
            {**row, "cycle_date": dt.date(2026, 11, 2), "slice": f"county:{A}", "campaign_code": "2241-005",
             "after_months": 1, "incremental_revenue": 400.0, "customers_kept": 3.0},
            {**row, "cycle_date": dt.date(2026, 11, 3), "slice": f"county:{A}", "after_months": 1,
             "incremental_revenue": 350.0, "customers_kept": 2.5},
            {**row, "cycle_date": dt.date(2026, 11, 3), "slice": f"county:{B}", "after_months": 1,
             "incremental_revenue": 7000.0, "customers_kept": 70.0},
            {**row, "cycle_date": dt.date(2026, 10, 3), "slice": f"county:{A}", "after_months": 2,
             "incremental_revenue": 5000.0, "customers_kept": 50.0}])
    got = _figures(engine)
    assert got[(A, "incremental_revenue_yuan")] == (750.0, 0.75)
    assert got[(A, "customers_kept")] == (5.5, 0.55)
    trend = kpi.trend(engine, NOV, TARGETS, counties=[A])
    conv = trend[trend["kpi"] == "conversions"].sort_values("cycle_date")
    assert conv["actual"].tolist() == [3.0, 4.0]             # cumulated over the month's cycles
    revenue = trend[trend["kpi"] == "incremental_revenue_yuan"].sort_values("cycle_date")
    assert revenue["actual"].tolist() == [400.0, 750.0]


def test_export_frame_has_chinese_headers_and_says_not_measurable(engine):
    _load(engine)
    table = kpi.export_frame(kpi.completion(engine, NOV, TARGETS, counties=[A]))
    assert list(table.columns) == ["区县代码", "区县", "指标", "目标", "完成值", "完成率"]
    assert set(table["区县代码"]) == {A}
    assert (table.loc[table["指标"] == "增量收入", "完成值"] == kpi.NOT_MEASURABLE).all()


def _problems(path):
    with pytest.raises(config.ConfigError) as err:
        kpi.load_targets(path)
    return [(p[1], p[2]) for p in err.value.problems], err.value.problems


def test_kpi_config_mistakes_name_file_line_and_field(tmp_path):
    path = tmp_path / "kpi_targets.yaml"
    path.write_text(textwrap.dedent("""\
        counties:
          "350582":
            conversions: -3
            connect_rate: 1.5
            combined_bundling_rate: "high"
        """), encoding="utf-8")
    where, problems = _problems(path)
    assert sorted(where) == [(3, "counties.350582.conversions"), (4, "counties.350582.connect_rate"),
                             (5, "counties.350582.combined_bundling_rate")]
    assert all(p[0] == str(path) for p in problems)
    path.write_text(textwrap.dedent("""\
        counties:
          "350582": {conversions: 10}
          "350599": {conversions: 10}
        months:
          "2026-13":
            "350582": {conversions: 5}
          "2026-12":
            "999999": {conversions: 5}
        """), encoding="utf-8")
    where, problems = _problems(path)
    assert where == [(3, "counties.350599"), (5, "months.2026-13"), (8, "months.2026-12.999999")]
    assert "unknown county code" in problems[0][3]


def test_the_shipped_targets_cover_every_county_and_pass_check_config():
    from qz_outbound import preflight
    from qz_outbound.counties import county_names

    assert "kpi_targets.yaml" in dict(preflight.config_file_loaders())
    assert set(kpi.load_targets().counties) == set(county_names())
