"""The checks: what this cycle's checks expect (the volume band, the control-share tolerances) and the
Great Expectations suites that run them (ephemeral context, pandas dataframe assets)."""

from __future__ import annotations

import datetime as dt
import math
import os
import statistics
from dataclasses import dataclass
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from qz_outbound import phone, schema
from qz_outbound.campaigns import Campaign
from qz_outbound.validation.settings import ControlShareTolerance, VolumeBand

NUMBER_FORMAT = phone.PATTERN   # a mainland mobile number, 11 digits
# excluded_reason values of target_audit.sql, in its order of precedence
REASONS = ("dnd", "complaint", "opt_out", "cancelled_or_unknown", "holds_product")
# the budget step's exclusion (budget_cut.sql): shown by the audit, no defect of the list
BUDGET_REASON = "budget"


@dataclass(frozen=True)
class Volume:
    """The cycle's base: customers segmented (the snapshot), against previous cycles'. The list's own
    size is not compared: the frequency rules make it swing (every customer offered on one day is
    capped for the next week and off the same campaign for 30 days), the base does not."""

    history: list[tuple[dt.date, int]]   # previous cycles' customers segmented, newest first
    median: float | None                  # None: too few previous cycles for a band
    min_rows: int
    max_rows: int | None
    observed: int = 0                     # the cycle's customers segmented


@dataclass(frozen=True)
class ControlRow:
    campaign_code: str
    chosen: int
    control: int
    configured: float | None    # the campaign's control_share; None when it is not run on the day
    tolerance: float | None     # None: not checked (unknown campaign, or fewer than min_customers)

    @property
    def observed(self) -> float:
        return self.control / self.chosen if self.chosen else 0.0

    @property
    def checked(self) -> bool:
        return self.tolerance is not None


def volume_band(marketing: Engine, cycle_date: dt.date, settings: VolumeBand) -> Volume:
    """The cycle's customers segmented and the band allowed, from the ``segment`` stage of previous
    cycles (their snapshots may be purged; the stage records stay)."""
    t = schema.mkt_cycle_stage
    s = schema.mkt_segment_snapshot
    with marketing.connect() as conn:
        rows = conn.execute(sa.select(t.c.cycle_date, t.c.rows)
                            .where(t.c.stage == "segment", t.c.cycle_date < cycle_date)
                            .order_by(t.c.cycle_date.desc()).limit(settings.history_cycles)).all()
        observed = int(conn.execute(sa.select(sa.func.count()).select_from(s)
                                    .where(s.c.cycle_date == cycle_date)).scalar())
    history = [(_as_date(d), int(n)) for d, n in rows]
    median = statistics.median(n for _, n in history) if len(history) >= settings.min_history else None
    if not median:  # too little history (or only empty cycles): any non-empty base
        return Volume(history, None, 1, None, observed)
    return Volume(history, median, max(1, math.ceil(settings.lower * median)),
                  math.floor(settings.upper * median), observed)


def control_rows(counts: pd.DataFrame, active: dict[str, Campaign], settings: ControlShareTolerance) -> list[ControlRow]:
    """Per campaign: observed control share and the tolerance it is held to (None: not checked)."""
    out = []
    for r in counts.itertuples(index=False):
        code, chosen, control = str(r.campaign_code), int(r.chosen), int(r.control)
        campaign = active.get(code)
        p = float(campaign.control_share) if campaign else None
        tol = None
        if p is not None and chosen >= settings.min_customers:
            tol = max(settings.abs_tolerance, settings.sigmas * math.sqrt(p * (1 - p) / chosen))
        out.append(ControlRow(code, chosen, control, p, tol))
    return out


def _as_date(value: Any) -> dt.date:
    return dt.date.fromisoformat(value) if isinstance(value, str) else value


def _gx():
    """Great Expectations, imported when needed (slow to import; no analytics: there is no internet)."""
    os.environ["GX_ANALYTICS_ENABLED"] = "False"
    import great_expectations as gx

    return gx


def _row_expectations(gxe, counties: list[str], active_codes: list[str], volume: Volume) -> list:
    """The expectations over the list, one row per target."""
    return [
        gxe.ExpectColumnValuesToMatchRegex(column="msisdn", regex=NUMBER_FORMAT, meta={"check": "number_format"}),
        gxe.ExpectColumnValuesToBeUnique(column="msisdn", meta={"check": "one_row_per_customer"}),
        gxe.ExpectColumnValuesToBeInSet(column="county_code", value_set=counties, meta={"check": "known_county"}),
        gxe.ExpectColumnPairValuesToBeEqual(column_A="county_code", column_B="snapshot_county_code",
                                            ignore_row_if="either_value_is_missing",
                                            meta={"check": "county_matches_snapshot"}),
        gxe.ExpectColumnValuesToBeInSet(column="campaign_code", value_set=active_codes,
                                        meta={"check": "active_campaign"}),
        # excluded_reason says why the contact policy forbids the customer (target_audit.sql)
        # (null, or the budget step's own exclusion: GX skips nulls in a set check)
        gxe.ExpectColumnValuesToBeInSet(column="excluded_reason", value_set=[BUDGET_REASON],
                                        meta={"check": "no_excluded_customer"}),
    ]


def _base_expectations(gxe, volume: Volume) -> list:
    """The expectation over the cycle's base (one row: customers segmented)."""
    return [gxe.ExpectColumnValuesToBeBetween(column="customers", min_value=volume.min_rows,
                                              max_value=volume.max_rows, meta={"check": "volume"})]


def _control_expectations(gxe, rows: list[ControlRow]):
    from great_expectations.expectations.row_conditions import Column

    return [gxe.ExpectColumnValuesToBeBetween(
        column="control_share", min_value=max(0.0, r.configured - r.tolerance),
        max_value=min(1.0, r.configured + r.tolerance), row_condition=Column("campaign_code") == r.campaign_code,
        meta={"check": f"control_share:{r.campaign_code}"}) for r in rows if r.checked]


def run_expectations(rows: pd.DataFrame, control: pd.DataFrame, *, counties: list[str], active_codes: list[str],
                     volume: Volume, control_plan: list[ControlRow]) -> list[dict]:
    """Run the suites with GX (ephemeral context, pandas dataframe assets); the raw results as JSON dicts."""
    gx = _gx()
    import great_expectations.expectations as gxe
    from great_expectations.data_context.types.base import ProgressBarsConfig

    # GX fingerprints a dataframe batch by hashing every value unless its (shallow) size is over
    # HASH_THRESHOLD: about 11 s of a 4-million-row audit, for a marker in the result's metadata
    # that nothing here reads. Off (if a later GX drops the constant, it is only slower again).
    from great_expectations.execution_engine import pandas_execution_engine

    if hasattr(pandas_execution_engine, "HASH_THRESHOLD"):
        pandas_execution_engine.HASH_THRESHOLD = 0
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    source = context.data_sources.add_pandas("marketing_db")
    rows_batch = source.add_dataframe_asset("target_rows").add_batch_definition_whole_dataframe("cycle")
    control_batch = source.add_dataframe_asset("campaign_control").add_batch_definition_whole_dataframe("cycle")
    base_batch = source.add_dataframe_asset("cycle_base").add_batch_definition_whole_dataframe("cycle")
    control = control.assign(control_share=(control["control"] / control["chosen"]).astype(float),
                             campaign_code=control["campaign_code"].astype(str))

    # Over the list, GX reports counts only (no partial lists of values): some expectations look at
    # the numbers themselves, which must not reach the result. The summaries' exact breakdowns per
    # county, campaign and reason come from breakdowns().
    runs = [("target_list.rows", _row_expectations(gxe, counties, active_codes, volume),
             {"result_format": "BASIC", "partial_unexpected_count": 0}, rows_batch, rows),
            ("target_list.base", _base_expectations(gxe, volume), {"result_format": "BASIC"}, base_batch,
             pd.DataFrame({"customers": [volume.observed]}))]
    control_exps = _control_expectations(gxe, control_plan)
    if control_exps:
        runs.append(("target_list.control_share", control_exps,
                     {"result_format": "SUMMARY", "partial_unexpected_count": 20}, control_batch, control))
    results = []
    for name, expectations, result_format, batch, frame in runs:
        suite = context.suites.add(gx.ExpectationSuite(name=name, expectations=expectations))
        definition = context.validation_definitions.add(gx.ValidationDefinition(name=name, data=batch, suite=suite))
        result = definition.run(batch_parameters={"dataframe": frame}, result_format=result_format)
        results.append(result.to_json_dict())
    return results


def breakdowns(rows: pd.DataFrame, counties: list[str], active_codes: list[str]) -> dict[str, dict[str, int]]:
    """Exact rows at fault per county, campaign and exclusion reason, for the summaries (GX is asked
    for counts only). Codes only; cheap on the categorical columns."""
    def counts(values: pd.Series, keep) -> dict[str, int]:
        vc = values.value_counts()
        return {str(k): int(n) for k, n in vc.items() if n and keep(str(k))}

    moved = rows[rows["snapshot_county_code"].notna() & (rows["county_code"] != rows["snapshot_county_code"])]
    pairs = moved.groupby(["county_code", "snapshot_county_code"], observed=True).size()
    return {"known_county": counts(rows["county_code"], lambda c: c not in counties),
            "county_matches_snapshot": {f"{a}→{b}": int(n) for (a, b), n in pairs.items() if n},
            "active_campaign": counts(rows["campaign_code"], lambda c: c not in active_codes),
            "no_excluded_customer": counts(rows["excluded_reason"], lambda r: r != BUDGET_REASON)}
