"""Coverage ensured, not only reported (覆盖率保障): the plan's principle is that every stock customer
who may be contacted has an offer.

Three instruments over what :mod:`qz_outbound.targeting` built for the cycle:

* :func:`coverage_gaps`, the gap list: per county and stability type, the customers the hard
  rules allow but who have no offer, and why (``capped`` by the frequency rules, ``blocked``: the
  campaigns that target them are blocked for them, ``no_campaign``: none targets them),
  ``include/sql/coverage_gaps.sql``;
* the fallback campaign: a care campaign of the library with ``fallback: true`` takes whom no
  other campaign offers anything, in the same target list under the same contact rules and with
  its own control group (``target_list.sql`` ranks it after every other offer);
* :func:`coverage_alert`: HQ is alerted through the alert channel when the cycle's coverage falls
  below ``alert_below`` in ``config/coverage.yaml``.

Aggregates only: no customer data leaves these functions.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import sqlalchemy as sa
from pydantic import Field
from sqlalchemy.engine import Engine

from qz_outbound import config, db, exports
from qz_outbound.alerts import Alert
from qz_outbound.campaigns import Campaign
from qz_outbound.counties import county_names

REASONS = {"capped": "频次受限", "blocked": "活动受阻（同活动间隔、拒绝、已持有）", "no_campaign": "无活动覆盖"}


class CoverageConfig(config.StrictModel):
    # HQ is alerted when the city's coverage (offered / contactable) is below this share; the alert
    # names the counties below it too. null: no alert.
    alert_below: float | None = Field(default=None, ge=0, le=1)


def load_coverage_config(path: Path | None = None) -> CoverageConfig:
    return config.load(CoverageConfig, path or config.config_path("coverage.yaml"))


def coverage_gaps(marketing: Engine, cycle_date: dt.date, library: list[Campaign], policy=None,
                  channels=None) -> pd.DataFrame:
    """The cycle's gap list: county_code, stability_type, reason, customers (after the target list)."""
    from qz_outbound import targeting

    policy = policy or targeting.load_policy()
    dialect = marketing.dialect.name
    _active, params, context = targeting.target_list_inputs(marketing, cycle_date, library, policy, channels)
    targeted = db.render_sql("target_list.sql", dialect, n_slices=1, ignore_blocks=True, **context)
    with marketing.begin() as conn:
        for table in ("tmp_coverage_excluded", "tmp_coverage_targeted"):
            conn.exec_driver_sql(f"drop table if exists {table}")
        conn.execute(sa.text(db.render_sql("coverage.sql", dialect, policy=policy, step="excluded")), params)
        conn.execute(sa.text(f"create temporary table tmp_coverage_targeted as\n{targeted}"), params)
        if dialect == "postgresql":
            conn.exec_driver_sql("analyze tmp_coverage_excluded")
            conn.exec_driver_sql("analyze tmp_coverage_targeted")
        frame = pd.read_sql(sa.text(db.render_sql("coverage_gaps.sql", dialect, policy=policy)), conn, params=params)
        for table in ("tmp_coverage_excluded", "tmp_coverage_targeted"):
            conn.exec_driver_sql(f"drop table {table}")
    frame["customers"] = frame["customers"].astype("int64")
    return frame


def write_gap_report(marketing: Engine, cycle_date: dt.date, library: list[Campaign],
                     out: Path | None = None) -> Path:
    """``coverage_gaps.csv`` beside ``coverage.csv``: the gap list with county names and reasons in Chinese."""
    from qz_outbound.reports import output_dir

    frame = coverage_gaps(marketing, cycle_date, library)
    frame.insert(1, "county_name", frame["county_code"].map(county_names()))
    frame.insert(frame.columns.get_loc("reason") + 1, "reason_name", frame["reason"].map(REASONS))
    path = (out or output_dir()) / "reports" / cycle_date.isoformat() / "coverage_gaps.csv"
    exports.write_csv(frame, path)
    return path


def coverage_alert(coverage: pd.DataFrame, cycle_date: dt.date, cfg: CoverageConfig | None = None, *,
                   run_id: str | None = None, url: str | None = None) -> Alert | None:
    """An alert for HQ when the cycle's coverage (``targeting.coverage``'s frame) is below the
    configured threshold; None when it is not, or when no threshold is configured."""
    cfg = cfg or load_coverage_config()
    if cfg.alert_below is None:
        return None
    contactable, offered = int(coverage["contactable"].sum()), int(coverage["offered"].sum())
    share = offered / contactable if contactable else 1.0
    if share >= cfg.alert_below:
        return None
    per_county = coverage.groupby("county_code")[["contactable", "offered"]].sum()
    per_county = per_county[per_county["contactable"] > 0]
    low = per_county[per_county["offered"] / per_county["contactable"] < cfg.alert_below]
    names = county_names()
    detail = "; ".join(f"{names.get(code, code)} {r.offered / r.contactable:.1%}" for code, r in low.iterrows())
    return Alert(kind="coverage_low",
                 summary=f"outbound_daily {cycle_date}: coverage {share:.1%} of {contactable} contactable customers "
                         f"is below {cfg.alert_below:.0%}",
                 dag_id="outbound_daily", run_id=run_id, task_id="coverage_report",
                 logical_date=cycle_date.isoformat(),
                 detail=f"counties below: {detail or 'none'}; see coverage_gaps.csv for who and why", url=url)
