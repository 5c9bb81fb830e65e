"""The audit of a cycle's target list: read, check, record the holds, keep the result for HQ."""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from dataclasses import asdict
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from qz_outbound import clock, schema
from qz_outbound.campaigns import Campaign
from qz_outbound.counties import county_names
from qz_outbound.validation.checks import breakdowns, control_rows, run_expectations, volume_band
from qz_outbound.validation.messages import CHECK_TITLES, check_result, redact
from qz_outbound.validation.reading import read_control_counts, read_target_rows
from qz_outbound.validation.render import render_html
from qz_outbound.validation.results import ValidationReport
from qz_outbound.validation.settings import ValidationConfig, load_config

log = logging.getLogger(__name__)


def audit_target_list(marketing: Engine, cycle_date: dt.date, library: list[Campaign], out_dir: Path | None = None,
                      *, settings: ValidationConfig | None = None) -> ValidationReport:
    """Check the cycle's target list in ``mkt_target`` and keep the result under
    ``<out_dir or output_dir()>/reports/<date>/`` (``target_validation.html`` and ``.json``).

    Never raises for a bad list: the report says what failed (see :func:`require_valid`).
    """
    from qz_outbound.reports import output_dir
    from qz_outbound.cycle import record_stage
    from qz_outbound.targeting import daily_campaigns

    settings = settings or load_config()
    started = time.monotonic()
    active = {c.code: c for c in daily_campaigns(library, cycle_date)}
    counties = list(county_names())
    volume = volume_band(marketing, cycle_date, settings.volume)
    rows = read_target_rows(marketing, cycle_date)
    counts = read_control_counts(marketing, cycle_date)
    plan = control_rows(counts, active, settings.control_share)
    read_seconds = time.monotonic() - started

    gx_results = run_expectations(rows, counts, counties=counties, active_codes=sorted(active), volume=volume,
                                  control_plan=plan)
    checked_rows = len(rows)
    at_fault = breakdowns(rows, counties, sorted(active))
    del rows
    by_code = {r.campaign_code: r for r in plan}
    checks = [check_result(res, cycle_date, checked_rows, volume, settings, by_code, at_fault)
              for suite in gx_results for res in suite["results"]]
    order = {name: i for i, name in enumerate(CHECK_TITLES)}
    checks.sort(key=lambda c: (order[c.check.split(":")[0]], c.check))
    failed = [c for c in checks if not c.passed]
    chosen = {str(r.campaign_code): int(r.chosen) for r in counts.itertuples(index=False)}
    held = {code: chosen.get(code, 0) for c in failed if c.scope == "campaign" for code in c.campaigns}

    folder = (out_dir or output_dir()) / "reports" / cycle_date.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    report = ValidationReport(cycle_date, not failed, checked_rows, failed, checks,
                              folder / "target_validation.html", folder / "target_validation.json", held)
    record_holds(marketing, report)
    document = {
        "cycle_date": cycle_date.isoformat(),
        "success": report.success,
        "checked_rows": checked_rows,
        "publishable": report.publishable,
        "held_campaigns": report.held,
        "checks": [dict(asdict(c), scope=c.scope) for c in checks],
        "volume": {"history": [{"cycle_date": d.isoformat(), "customers": n} for d, n in volume.history],
                   "customers": volume.observed, "median": volume.median, "min_rows": volume.min_rows,
                   "max_rows": volume.max_rows},
        "control_share": [dict(asdict(r), observed=r.observed) for r in plan],
        "gx_results": gx_results,
    }
    report.json_path.write_text(redact(json.dumps(document, ensure_ascii=False, indent=1, default=str)),
                                encoding="utf-8")
    report.html_path.write_text(render_html(report, volume, plan, settings), encoding="utf-8")

    seconds = time.monotonic() - started
    record_stage(marketing, cycle_date, "validate", checked_rows, seconds,
                 detail="passed" if report.success else
                 ("held: " if report.publishable else "failed: ") + ", ".join(c.check for c in failed))
    log.info("target list %s: %s rows, %s of %s checks failed (read %.1fs, total %.1fs)", cycle_date,
             checked_rows, len(failed), len(checks), read_seconds, seconds)
    return report


def record_holds(marketing: Engine, report: ValidationReport) -> None:
    """Replace the cycle's rows of ``mkt_target_hold`` with the campaigns this audit holds back and
    why (the failed checks' summaries: codes and counts only). ``publish_county.sql`` leaves them out."""
    t = schema.mkt_target_hold
    reasons: dict[str, list[str]] = {}
    for c in report.failed:
        for code in c.campaigns:
            reasons.setdefault(code, []).append(c.summary)
    now = clock.now()
    with marketing.begin() as conn:
        conn.execute(t.delete().where(t.c.cycle_date == report.cycle_date))
        if report.held:
            conn.execute(t.insert(), [{"cycle_date": report.cycle_date, "campaign_code": code, "rows": n,
                                       "reason": redact("\n".join(reasons.get(code, []))), "held_at": now}
                                      for code, n in sorted(report.held.items())])
    if report.held:
        log.warning("target list %s: campaigns held back by validation: %s", report.cycle_date,
                    ", ".join(f"{k} ({n} rows)" for k, n in sorted(report.held.items())))


def held_campaigns(marketing: Engine, cycle_date: dt.date) -> dict[str, int]:
    """The campaigns validation held back for the cycle, with their rows in the list."""
    t = schema.mkt_target_hold
    with marketing.connect() as conn:
        return {code: int(n) for code, n in conn.execute(
            sa.select(t.c.campaign_code, t.c.rows).where(t.c.cycle_date == cycle_date))}
