"""Closing the loop (营销循环): outcomes into the contact history, the outcome tables, HQ's page.

One module per step of ``dags/outcomes_loop.py``; this package re-exports their public names, so
``from qz_outbound import outcomes; outcomes.stage_orders(...)`` is the way callers use it.

* :mod:`~qz_outbound.outcomes.settings` — ``config/outcomes.yaml``;
* :mod:`~qz_outbound.outcomes.ingest` — call outcomes, BOSS orders and their attribution, bills;
* :mod:`~qz_outbound.outcomes.statistics` — conversion, control rate, uplift with intervals, cost
  and ROI per slice, ranked; trend; bills before/after; the trajectory (SQL does the aggregation);
* :mod:`~qz_outbound.outcomes.report` — the CSVs and ``outcomes.html`` with its charts;
* :mod:`~qz_outbound.outcomes.auto_pause` — the optional automatic pause, its own task after the report.

Everything is idempotent: a source arriving late, twice or out of order gives the same history.
"""

from qz_outbound.outcomes.auto_pause import (apply_auto_pause, apply_roi_pause, auto_pause_campaigns, paused_campaigns,
                                             paused_in_cycle, roi_negative_campaigns, roi_pause_alert)
from qz_outbound.outcomes.ingest import apply_call_outcomes, attribute_orders, stage_bills, stage_orders
from qz_outbound.outcomes.report import CHANNEL_WORDS, write_outcome_report
from qz_outbound.outcomes.settings import AutoPause, Flag, OutcomeConfig, RoiNegative, load_outcome_config
from qz_outbound.outcomes.statistics import (
    DIMENSIONS, REPORT_COLUMNS, bill_summary, is_missing, outcome_report, outcome_trend, trajectory, uplift_interval,
)

__all__ = [
    "AutoPause", "RoiNegative", "Flag", "OutcomeConfig", "load_outcome_config",
    "apply_call_outcomes", "stage_orders", "attribute_orders", "stage_bills",
    "DIMENSIONS", "REPORT_COLUMNS", "outcome_report", "outcome_trend", "bill_summary", "trajectory",
    "uplift_interval", "is_missing",
    "CHANNEL_WORDS", "write_outcome_report",
    "paused_campaigns", "paused_in_cycle", "apply_auto_pause", "auto_pause_campaigns",
    "apply_roi_pause", "roi_negative_campaigns", "roi_pause_alert",
]
