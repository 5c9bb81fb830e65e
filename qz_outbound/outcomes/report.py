"""HQ's outcome page: the tables of :mod:`~qz_outbound.outcomes.statistics` as CSVs and a page with charts."""

from __future__ import annotations

import datetime as dt

import pandas as pd
from sqlalchemy.engine import Engine

from qz_outbound import exports, reports
from qz_outbound.campaigns import Campaign
from qz_outbound.outcomes.auto_pause import paused_campaigns, paused_in_cycle
from qz_outbound.outcomes.settings import OutcomeConfig, load_outcome_config
from qz_outbound.outcomes.statistics import ACROSS, DIMENSIONS, bill_summary, is_missing, outcome_report, outcome_trend, trajectory


def _charts(frame: pd.DataFrame, trend: pd.DataFrame) -> dict:
    """Geometry-free data for the page's SVG charts (the template scales them)."""
    from qz_outbound import counties

    camp = frame[frame["dimension"] == "campaign"].sort_values("campaign_code")
    funnel = [{"code": r.campaign_code, "stages": [("接触", r.contacts), ("送达", r.delivered), ("回复", r.replied),
                                                   ("接受", r.accepted), ("转化", r.converted)]}
              for r in camp.itertuples(index=False)]
    intervals = [(r.campaign_code, r.uplift, r.uplift_low, r.uplift_high) for r in camp.itertuples(index=False)
                 if not is_missing(r.uplift)]
    span = [v for _, u, lo, hi in intervals for v in (u, lo, hi)] + [0.0]
    bars = {}
    for dim, label in (("all_county", counties.label), ("all_channel", lambda v: CHANNEL_WORDS.get(v, v))):
        rows = frame[frame["dimension"] == dim].sort_values("value")
        bars[dim] = [{"label": label(r.value), "rate": r.conversion_rate,
                      "control": None if is_missing(r.control_rate) else r.control_rate, "n": r.contacts}
                     for r in rows.itertuples(index=False)]
    top = max([b["rate"] for v in bars.values() for b in v] + [b["control"] or 0 for v in bars.values() for b in v]
              + [1e-4])
    points = [r for r in trend.to_dict("records")]
    trend_top = max([p["conversion_rate"] for p in points if not is_missing(p["conversion_rate"])]
                    + [p["control_rate"] for p in points if not is_missing(p["control_rate"])] + [1e-4])
    return {"funnel": funnel, "intervals": intervals, "lo": min(span), "hi": max(span) or 1e-4,
            "bars": bars, "bar_top": top, "trend": points, "trend_top": trend_top}


CHANNEL_WORDS = {"sms": "短信", "call": "外呼", "agent": "代理商", "control": "对照组"}


def write_outcome_report(marketing: Engine, cycle_date: dt.date, library: list[Campaign],
                         cfg: OutcomeConfig | None = None) -> dict:
    """HQ's daily outcome report in the cycle's report folder (counts and paths returned, no customer data):

    ``outcomes.csv`` (every slice with its rank), ``outcome_trend.csv`` (per cycle), ``bills.csv``
    (bill before/after per campaign and arm), ``trajectory_converted.csv`` (the trajectory of each
    converted contact; it names customers: HQ only) and ``outcomes.html`` with the charts.
    The page lists the campaigns paused so far (pausing is the next task, ``auto_pause``).
    """
    import jinja2

    from qz_outbound import TEMPLATE_DIR

    cfg = cfg or load_outcome_config()
    since = cycle_date - dt.timedelta(days=cfg.report_days)
    frame = outcome_report(marketing, cycle_date, library, cfg)
    trend = outcome_trend(marketing, cycle_date, cfg)
    bills = bill_summary(marketing, cycle_date, cfg)
    converted = trajectory(marketing, since, cycle_date, cfg, converted_only=True)
    paused = paused_campaigns(marketing)
    paused_now = paused_in_cycle(marketing, cycle_date)
    out = reports.output_dir() / "reports" / cycle_date.isoformat()
    out.mkdir(parents=True, exist_ok=True)
    for name, table in (("outcomes.csv", frame), ("outcome_trend.csv", trend), ("bills.csv", bills),
                        ("trajectory_converted.csv", converted)):
        exports.write_csv(table, out / name)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR / "reports")), autoescape=True)
    records = {dim: frame[frame["dimension"] == dim].sort_values("rank").to_dict("records")
               for dim in frame["dimension"].unique()} if not frame.empty else {}
    html = env.get_template("outcomes.html").render(
        cycle_date=cycle_date, since=since, cfg=cfg,
        campaigns=frame[frame["dimension"] == "campaign"].sort_values("campaign_code").to_dict("records"),
        breakdowns={dim: records.get(dim, []) for dim in DIMENSIONS if dim != "campaign"},
        across={dim: records.get(f"all_{dim}", []) for dim in ACROSS if dim not in ("county", "channel")},
        ranking={dim: records.get(dim, []) for dim in ("campaign", "segment_type", "channel", "script")},
        charts=_charts(frame, trend), trend=trend.to_dict("records"), bills=bills.to_dict("records"),
        paused=sorted(paused), paused_now=paused_now, auto_pause=cfg.auto_pause,
        names={c.code: c.name for c in library}, isnan=is_missing)
    (out / "outcomes.html").write_text(html, encoding="utf-8")
    return {"rows": len(frame), "flagged": int((frame["flags"] != "").sum()) if not frame.empty else 0,
            "converted_contacts": len(converted),
            "csv": str(out / "outcomes.csv"), "html": str(out / "outcomes.html")}
