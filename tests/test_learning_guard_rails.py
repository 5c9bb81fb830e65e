"""The learning loop's guard rails (docs/learning.md "Offline evaluation and guard rails") on SQLite and
PostgreSQL: the share-change report finds the planted moved cells (and only those) with their evidence;
the ROI-negative auto-pause fires only on a campaign whose ROI is negative with confidence on enough
contacted customers in its latest measured economics, once, with one alert to HQ; config/evaluation.yaml's
mistakes are named with file, line and field."""

from __future__ import annotations

import datetime as dt
import textwrap

import pandas as pd
import pytest
import sqlalchemy as sa

from cycle_support import engine_for_param
from qz_outbound import clock, config, outcomes, schema
from qz_outbound.learning import evaluation, shares
from qz_outbound.portal import learning as learning_page
from test_policy_evaluation import _partitions

PREV, CYCLE = dt.date(2026, 9, 7), dt.date(2026, 9, 8)
X, Y, Z = "9201-301", "9202-302", "9203-303"


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path):
    engine = engine_for_param(request, tmp_path, "qz_guard")
    schema.ensure_schema(engine)
    clock.set_now(dt.datetime(2026, 9, 9, 4, 30))
    yield engine
    clock.set_now(None)
    engine.dispose()


def _targets(cycle: dt.date, counts: dict[str, int]) -> list[dict]:
    rows, i = [], 0
    for code, n in counts.items():
        for _ in range(n):
            i += 1
            rows.append(dict(cycle_date=cycle, msisdn=f"138{cycle.day:02d}{i:06d}", county_code="350582",
                             campaign_code=code, product_code="P" + code[:4], priority=10, stability_type="41",
                             spend_tier=1, segment_code="S", is_control=int(i % 10 == 0), variant=None,
                             call_eligible=0, sms_allowed=1))
    return rows


def _cell(cycle, code, stype, tier, value, uplift, contacted, control, market="(none)") -> dict:
    return dict(cycle_date=cycle, campaign_code=code, stability_type=stype, spend_tier=tier, market_segment=market,
                contacted=contacted, control=control, conv_contacted=0, conv_control=0, uplift_raw=uplift,
                uplift=uplift, uplift_sd=0.01, value_per_conversion=40.0, expected_cost=1.0, expected_value=value)


def plant_shares(engine) -> None:
    _partitions(engine, [PREV, CYCLE])
    # X: 50% -> 70% (+20 pp), Y: 40% -> 20% (-20 pp), Z: 10% -> 10% (unchanged)
    targets = _targets(PREV, {X: 500, Y: 400, Z: 100}) + _targets(CYCLE, {X: 700, Y: 200, Z: 100})
    cells = [
        _cell(PREV, X, "41", 1, 0.50, 0.04, 800, 90), _cell(CYCLE, X, "41", 1, 2.00, 0.08, 1500, 160),   # moved
        _cell(PREV, X, "21", 2, 0.30, 0.03, 600, 70), _cell(CYCLE, X, "21", 2, 0.32, 0.03, 900, 100),    # within 0.1
        _cell(PREV, Y, "21", 1, 1.00, 0.05, 700, 80), _cell(CYCLE, Y, "21", 1, -0.50, 0.01, 1100, 120),  # moved
        _cell(PREV, Z, "41", 1, 0.20, 0.02, 300, 30), _cell(CYCLE, Z, "41", 1, 3.00, 0.10, 400, 40),     # share unchanged
    ]
    with engine.begin() as conn:
        conn.execute(schema.mkt_target.insert(), targets)
        conn.execute(schema.mkt_offer_value.insert(), cells)


def test_share_report_finds_the_planted_moved_cells(engine, tmp_path):
    plant_shares(engine)
    cfg = evaluation.EvaluationConfig(share_report=evaluation.ShareReport(min_change_pp=5, min_cell_change_yuan=0.1))
    data = shares.share_changes(engine, CYCLE, cfg)
    assert data["previous"] == PREV
    s = data["shares"].set_index("campaign_code")
    assert s.loc[X, "share"] == pytest.approx(0.7) and s.loc[X, "previous_share"] == pytest.approx(0.5)
    assert s.loc[Y, "change_pp"] == pytest.approx(-20.0) and s.loc[Z, "change_pp"] == pytest.approx(0.0)
    rows = data["rows"]
    assert set(rows["campaign_code"]) == {X, Y}                       # Z's share did not move
    assert [(r.campaign_code, r.stability_type, int(r.spend_tier)) for r in rows.itertuples()] == [(X, "41", 1), (Y, "21", 1)]
    x = rows[rows["campaign_code"] == X].iloc[0]
    assert (x["previous_value"], x["value"], x["previous_contacted"], x["contacted"], x["previous_control"],
            x["control"]) == (0.5, 2.0, 800, 1500, 90, 160)
    assert x["value_change"] == pytest.approx(1.5)

    result = shares.write_share_report(engine, dt.date(2026, 9, 9), out=tmp_path, cfg=cfg)
    assert result == {"cycle_date": CYCLE.isoformat(), "campaigns_changed": 2, "cells_moved": 2}
    frame = pd.read_csv(tmp_path / "reports" / "2026-09-09" / "offer_shares.csv", encoding="utf-8-sig",
                        dtype={"活动编码": str, "稳定性类型": str})
    assert list(frame.columns) == list(shares.HEADERS.values())
    assert sorted(frame["活动编码"]) == [X, Y] and set(frame["稳定性类型"]) == {"41", "21"}
    assert frame[frame["活动编码"] == Y].iloc[0]["份额变化(百分点)"] == pytest.approx(-20.0)

    # a share that moved with no cell behind it is listed with the note, no cell
    strict = evaluation.EvaluationConfig(share_report=evaluation.ShareReport(min_change_pp=5, min_cell_change_yuan=5))
    rows = shares.share_changes(engine, CYCLE, strict)["rows"]
    assert set(rows["campaign_code"]) == {X, Y} and rows["stability_type"].isna().all()
    assert (rows["note"] == shares.NO_CELL).all()

    # no share moved beyond the threshold: an empty report with its headers, zero counts
    calm = evaluation.EvaluationConfig(share_report=evaluation.ShareReport(min_change_pp=50))
    result = shares.write_share_report(engine, dt.date(2026, 9, 9), out=tmp_path / "calm", cfg=calm)
    assert result == {"cycle_date": CYCLE.isoformat(), "campaigns_changed": 0, "cells_moved": 0}
    frame = pd.read_csv(tmp_path / "calm" / "reports" / "2026-09-09" / "offer_shares.csv", encoding="utf-8-sig")
    assert frame.empty and list(frame.columns) == list(shares.HEADERS.values())

    # HQ's page reads the same data
    page = learning_page.learning_data(engine, dt.date(2026, 9, 9))
    assert page["cycle"] == CYCLE.isoformat() and page["previous"] == PREV.isoformat()
    assert {c["campaign_code"] for c in page["changes"]} >= {X, Y}


def _economics(cycle, code, contacted, after, ci_high, cost, slice_="all") -> dict:
    arpu = ci_high - 1.0
    return dict(cycle_date=cycle, campaign_code=code, slice=slice_, after_months=after, contacted=contacted,
                control=contacted // 5, conversion_uplift=0.01, incremental_arpu=None if after == 0 else arpu,
                arpu_ci_low=None if after == 0 else arpu - 1.0, arpu_ci_high=None if after == 0 else ci_high,
                incremental_revenue=None if after == 0 else arpu * contacted * after, customers_kept=None,
                cost=cost, roi=None)


SURE, UNSURE, SMALL, UNMEASURED, RECOVERED, MONTHLY, PAUSED = (
    "9301-401", "9302-402", "9303-403", "9304-404", "9305-405", "9306-406", "9307-407")


def plant_economics(engine) -> None:
    rows = [
        _economics(CYCLE, SURE, 2000, 3, 0.10, 5000.0),        # revenue at most 600 < 5000: paused
        _economics(CYCLE, UNSURE, 2000, 3, 2.00, 5000.0),      # at most 12000 > 5000: the interval spans a gain
        _economics(CYCLE, SMALL, 500, 3, 0.10, 5000.0),        # too few contacted
        _economics(CYCLE, UNMEASURED, 5000, 0, 0.0, 5000.0),   # no after-month billed yet
        _economics(PREV, RECOVERED, 2000, 3, 0.10, 5000.0),    # bad once, but its latest measure is fine
        _economics(CYCLE, RECOVERED, 2000, 3, 5.00, 5000.0),
        _economics(dt.date(2026, 9, 1), MONTHLY, 9000, 3, 0.10, 90000.0, "month/all"),   # a month row: not read
        _economics(CYCLE, MONTHLY, 2000, 3, 0.10, 5000.0, "county:350582"),             # a slice: not read
        _economics(CYCLE, PAUSED, 2000, 3, 0.10, 5000.0),      # already paused (another rule): not twice
        _economics(CYCLE, "*", 20000, 3, 0.10, 50000.0),       # across campaigns: never paused
    ]
    with engine.begin() as conn:
        conn.execute(schema.mkt_campaign_economics.insert(), rows)
        conn.execute(schema.mkt_campaign_pause.insert(), [dict(campaign_code=PAUSED, paused_at=clock.now(),
                                                               cycle_date=PREV, reason="uplift -0.0300 ...")])


def _outcome_cfg(enabled: bool = True, **rule):
    cfg = outcomes.load_outcome_config()
    return cfg.model_copy(update={"auto_pause": outcomes.AutoPause(
        enabled=False, roi_negative=outcomes.RoiNegative(enabled=enabled, **rule))})


def test_roi_negative_pause_fires_only_with_confidence_once_with_an_alert(engine):
    plant_economics(engine)
    alerts = []
    assert outcomes.auto_pause_campaigns(engine, CYCLE, [], _outcome_cfg(False), notify=alerts.append) == []
    assert alerts == []
    cfg = _outcome_cfg(True, min_contacted=1000)
    assert outcomes.auto_pause_campaigns(engine, CYCLE, [], cfg, notify=alerts.append, run_id="r1") == [SURE]
    assert len(alerts) == 1 and alerts[0].kind == "campaign_paused" and SURE in alerts[0].summary
    assert "ROI upper bound" in alerts[0].detail and alerts[0].run_id == "r1"
    with engine.connect() as conn:
        reason = conn.scalar(sa.select(schema.mkt_campaign_pause.c.reason)
                             .where(schema.mkt_campaign_pause.c.campaign_code == SURE))
        assert conn.scalar(sa.select(sa.func.count()).select_from(schema.mkt_campaign_pause)) == 2
    assert reason.startswith("roi_negative") and "2000 contacted" in reason and "-0.88" in reason
    # once: a re-run pauses nothing and alerts nobody
    assert outcomes.auto_pause_campaigns(engine, CYCLE, [], cfg, notify=alerts.append) == []
    assert len(alerts) == 1
    # lifting as today (delete the row): the next run pauses it again while the evidence stands
    with engine.begin() as conn:
        conn.execute(schema.mkt_campaign_pause.delete().where(schema.mkt_campaign_pause.c.campaign_code == SURE))
    # a lower bar (ROI upper bound below -95%) no longer holds for SURE (-88%)
    assert outcomes.auto_pause_campaigns(engine, CYCLE, [], _outcome_cfg(True, max_roi_high=-0.95)) == []
    # smaller campaigns count once the minimum allows them
    got = outcomes.auto_pause_campaigns(engine, CYCLE, [], _outcome_cfg(True, min_contacted=100), notify=alerts.append)
    assert got == [SURE, SMALL] and len(alerts) == 2
    page = learning_page.learning_data(engine, CYCLE)
    assert {p["campaign_code"] for p in page["paused"]} == {SURE, SMALL, PAUSED}


def test_evaluation_config_mistakes_name_file_line_and_field(tmp_path):
    from qz_outbound import preflight

    assert "evaluation.yaml" in dict(preflight.config_file_loaders())
    evaluation.load_evaluation_config()                  # the shipped file is valid
    path = tmp_path / "evaluation.yaml"
    path.write_text(textwrap.dedent("""\
        lookback_days: 60
        confidence: 1.5
        min_matched: 0
        baseline: sometimes
        share_report:
          min_change_pp: -1
        """), encoding="utf-8")
    with pytest.raises(config.ConfigError) as err:
        evaluation.load_evaluation_config(path)
    where = sorted((p[1], p[2]) for p in err.value.problems)
    assert where == [(2, "confidence"), (3, "min_matched"), (4, "baseline"), (6, "share_report.min_change_pp")]
    assert all(p[0] == str(path) for p in err.value.problems)
