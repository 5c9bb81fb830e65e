"""Validation of the cycle's target list before anything leaves (write–audit–publish).

Targeting writes the list into ``mkt_target``; :func:`audit_target_list` checks it
with Great Expectations 1.x; only a list that passes is published to the
counties. Each check has a scope (docs/validation.md says why):

* a check about the whole list (number format, one row per customer, counties,
  excluded customers, the cycle's volume) stops the whole cycle: the DAG task
  calls :func:`require_valid`, which raises :class:`TargetListInvalid` with a
  readable summary, and no county is published;
* a check about one campaign (its control-group share, a campaign not run on
  the day) holds back that campaign's rows only: they are recorded in
  ``mkt_target_hold`` with the reason, publishing leaves them out, HQ is
  alerted, and the other campaigns go on.

The checks, all GX expectations:

* over the list, one row per target (``include/sql/target_audit.sql`` does the
  joins in the database, so only five columns travel): number format, one row
  per customer, known county, the county of the cycle's snapshot, campaign run
  on the day, no excluded customer (one expectation per reason: do-not-disturb,
  complaint, opt-out, cancelled or unknown, product already held);
* over the cycle's base: the customers segmented for the cycle within a band of
  recent cycles (``config/validation.yaml``);
* over the per-campaign counts: the control-group share within tolerance.

The result is kept per cycle under ``reports/<date>/``: a page in Chinese for HQ
(``target_validation.html``) and GX's raw result (``target_validation.json``).
Summaries, pages and logs hold counts, county and campaign codes only, never a
customer's number or name.

The package, checks apart from rendering:

* :mod:`~qz_outbound.validation.settings` — ``config/validation.yaml``;
* :mod:`~qz_outbound.validation.reading` — the list as the checks see it (COPY on PostgreSQL);
* :mod:`~qz_outbound.validation.checks` — what the cycle's checks expect and the GX suites;
* :mod:`~qz_outbound.validation.messages` — GX's results as bilingual summaries (redacted);
* :mod:`~qz_outbound.validation.results` — :class:`CheckResult`, :class:`ValidationReport`, :func:`require_valid`;
* :mod:`~qz_outbound.validation.render` — HQ's page;
* :mod:`~qz_outbound.validation.audit` — :func:`audit_target_list`, the holds;
* ``python -m qz_outbound.validation`` — the audit re-run by hand.
"""

from qz_outbound.validation.audit import audit_target_list, held_campaigns, record_holds
from qz_outbound.validation.checks import NUMBER_FORMAT, REASONS, ControlRow, Volume, breakdowns, run_expectations
from qz_outbound.validation.messages import CHECK_TITLES, REASON_NAMES, redact
from qz_outbound.validation.reading import read_control_counts, read_target_rows
from qz_outbound.validation.results import (
    CAMPAIGN_CHECKS, CheckResult, TargetListInvalid, ValidationReport, require_valid,
)
from qz_outbound.validation.settings import ControlShareTolerance, ValidationConfig, VolumeBand, load_config

__all__ = [
    "audit_target_list", "require_valid", "held_campaigns", "record_holds",
    "ValidationReport", "CheckResult", "TargetListInvalid", "CAMPAIGN_CHECKS",
    "ValidationConfig", "VolumeBand", "ControlShareTolerance", "load_config",
    "read_target_rows", "read_control_counts", "Volume", "ControlRow", "run_expectations", "breakdowns",
    "NUMBER_FORMAT", "REASONS", "CHECK_TITLES", "REASON_NAMES", "redact",
]
