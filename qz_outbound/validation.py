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
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import logging
import math
import os
import re
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd
import sqlalchemy as sa
from pydantic import Field, model_validator
from sqlalchemy.engine import Engine

from qz_outbound import TEMPLATE_DIR, clock, config, db, phone, schema
from qz_outbound.campaigns import Campaign
from qz_outbound.counties import county_names

log = logging.getLogger(__name__)

NUMBER_FORMAT = phone.PATTERN   # a mainland mobile number, 11 digits
# excluded_reason values of target_audit.sql, in its order of precedence
REASONS = ("dnd", "complaint", "opt_out", "cancelled_or_unknown", "holds_product")
# the budget step's exclusion (budget_cut.sql): shown by the audit, no defect of the list
BUDGET_REASON = "budget"
# an opt-out recorded this shortly before the list was built may not have been visible to it;
# the sender checks opt-outs again before every submit, so validation does not count it
OPT_OUT_GRACE = dt.timedelta(minutes=5)
ROW_COLUMNS = ("msisdn", "county_code", "campaign_code", "snapshot_county_code", "excluded_reason")
CHUNK_ROWS = 500_000

# check name -> (English title, Chinese label)
CHECK_TITLES = {
    "number_format": ("number format", "号码格式"),
    "one_row_per_customer": ("one row per customer", "一户一行"),
    "known_county": ("known county", "区县"),
    "county_matches_snapshot": ("county as in the cycle's snapshot", "区县与快照一致"),
    "active_campaign": ("campaign run on the day", "活动当日执行"),
    "no_excluded_customer": ("no customer the contact policy excludes", "不得联系的客户"),
    "volume": ("customers segmented within the band of recent cycles", "客户基数"),
    "control_share": ("control-group share within tolerance", "对照组比例"),
}
# checks about one campaign: a failure holds back that campaign's rows, the others go on
CAMPAIGN_CHECKS = frozenset({"control_share", "active_campaign"})
REASON_NAMES = {  # excluded_reason -> Chinese, for HQ's page
    "dnd": "免打扰", "complaint": "近期营销投诉", "opt_out": "已退订",
    "cancelled_or_unknown": "已销户或不在本周期快照", "holds_product": "已订购所推荐产品",
    BUDGET_REASON: "超出活动月度预算",
}


# ---------------------------------------------------------------- configuration

class VolumeBand(config.StrictModel):
    history_cycles: int = Field(default=7, ge=1, le=62)
    min_history: int = Field(default=3, ge=1)
    lower: float = Field(default=0.5, gt=0, lt=1)
    upper: float = Field(default=2.0, gt=1)

    @model_validator(mode="after")
    def _enough_history(self) -> "VolumeBand":
        if self.min_history > self.history_cycles:
            raise ValueError("min_history must not exceed history_cycles")
        return self


class ControlShareTolerance(config.StrictModel):
    min_customers: int = Field(default=200, ge=1)
    abs_tolerance: float = Field(default=0.01, ge=0, le=0.5)
    sigmas: float = Field(default=4.0, gt=0, le=10)


class ValidationConfig(config.StrictModel):
    volume: VolumeBand = VolumeBand()
    control_share: ControlShareTolerance = ControlShareTolerance()


def load_config(path: Path | None = None) -> ValidationConfig:
    return config.load(ValidationConfig, path or config.config_path("validation.yaml"))


# ---------------------------------------------------------------- results

@dataclass(frozen=True)
class CheckResult:
    """One check of the list. Counts and codes only: never a number or a name."""

    check: str                 # e.g. "number_format", "control_share:1141-007"
    passed: bool
    summary: str               # one line, English / Chinese
    unexpected: int | None     # rows (customers) at fault; None where a count does not apply
    expectation: str           # the GX expectation type
    expected: str              # what is expected, in Chinese (for HQ's page)
    observed: str              # what was found, in Chinese
    breakdown: dict[str, int] = field(default_factory=dict)  # rows at fault per county, campaign or reason
    campaigns: tuple[str, ...] = ()   # a failed check about campaigns: those it holds back

    @property
    def scope(self) -> str:
        """"campaign" (a failure holds back the campaigns at fault) or "list" (it stops the cycle)."""
        return "campaign" if self.check.split(":")[0] in CAMPAIGN_CHECKS else "list"


@dataclass
class ValidationReport:
    cycle_date: dt.date
    success: bool
    checked_rows: int
    failed: list[CheckResult]
    checks: list[CheckResult]
    html_path: Path
    json_path: Path
    held: dict[str, int] = field(default_factory=dict)   # campaign held back -> its rows in the list

    @property
    def blocking(self) -> list[CheckResult]:
        """Failed checks about the whole list: any of them stops the cycle."""
        return [c for c in self.failed if c.scope == "list"]

    @property
    def publishable(self) -> bool:
        """True when the list may be published (campaigns in ``held`` left out)."""
        return not self.blocking

    def summary(self) -> str:
        """The readable summary: a headline, then one line per failed check."""
        day = self.cycle_date.isoformat()
        if self.success:
            return (f"target list of {day} passed validation: {len(self.checks)} checks, "
                    f"{self.checked_rows:,} rows / {day} 目标清单校验通过（{len(self.checks)} 项，{self.checked_rows:,} 行）")
        held = ", ".join(f"{code} ({n:,} rows)" for code, n in sorted(self.held.items()))
        held_zh = "、".join(sorted(self.held))
        if self.publishable:
            lines = [f"target list of {day} failed {len(self.failed)} of {len(self.checks)} checks "
                     f"({self.checked_rows:,} rows), each about one campaign: held back {held}; "
                     f"the other campaigns are published / {day} 目标清单校验 {len(self.checks)} 项中 "
                     f"{len(self.failed)} 项未通过（均为单个活动的问题）：暂不发布活动 {held_zh}，其余活动照常发布"]
        else:
            lines = [f"target list of {day} failed {len(self.failed)} of {len(self.checks)} checks "
                     f"({self.checked_rows:,} rows); nothing is published for any county / "
                     f"{day} 目标清单校验未通过（{len(self.checks)} 项中 {len(self.failed)} 项），本周期所有区县均不发布"]
        lines += [f"  - {c.summary}" for c in self.failed]
        lines.append(f"  details / 详情: {self.html_path}")
        return "\n".join(lines)


class TargetListInvalid(Exception):
    """A check about the whole target list failed; the message is the readable summary."""

    def __init__(self, report: ValidationReport):
        self.report = report
        super().__init__(report.summary())


def require_valid(report: ValidationReport) -> None:
    """Raise :class:`TargetListInvalid` when a check about the whole list failed (the DAG task's
    gate). Failed checks about one campaign do not raise: their campaigns are held back
    (``report.held``, ``mkt_target_hold``) and the rest of the list is published."""
    if not report.publishable:
        raise TargetListInvalid(report)


# ---------------------------------------------------------------- what this cycle's checks expect

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


# ---------------------------------------------------------------- reading the list

def _compact(frame: pd.DataFrame) -> pd.DataFrame:
    """Code columns (few distinct values) as categoricals: a few bytes a row instead of a string."""
    for col in ROW_COLUMNS[1:]:
        values = frame[col]
        frame[col] = values.astype(pd.CategoricalDtype(pd.Index(values.dropna().unique(), dtype=object)))
    frame["msisdn"] = frame["msisdn"].astype(object)
    return frame


def _concat(chunks: list[pd.DataFrame]) -> pd.DataFrame:
    if not chunks:
        return _compact(pd.DataFrame({c: pd.Series([], dtype=object) for c in ROW_COLUMNS}))
    from pandas.api.types import union_categoricals

    frame = pd.DataFrame({"msisdn": pd.concat([c["msisdn"] for c in chunks], ignore_index=True)})
    for col in ROW_COLUMNS[1:]:
        frame[col] = union_categoricals([c[col] for c in chunks]) if len(chunks) > 1 else chunks[0][col].values
    return frame


class _CopyReader(io.RawIOBase):
    """A file over PostgreSQL's COPY output, so pandas parses it as it arrives."""

    def __init__(self, copy):
        self._rows = iter(copy)
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._pending:
            try:
                self._pending = bytes(next(self._rows))
            except StopIteration:
                return 0
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


def _list_built_at(marketing: Engine, cycle_date: dt.date) -> dt.datetime | None:
    """When the cycle's list was built (the start of its ``target`` stage), if recorded."""
    t = schema.mkt_cycle_stage
    with marketing.connect() as conn:
        row = conn.execute(sa.select(t.c.finished_at, t.c.seconds)
                           .where(t.c.cycle_date == cycle_date, t.c.stage == "target")).first()
    if row is None:
        return None
    finished = row.finished_at
    if isinstance(finished, str):
        finished = dt.datetime.fromisoformat(finished)
    return finished - dt.timedelta(seconds=float(row.seconds))


def read_target_rows(marketing: Engine, cycle_date: dt.date) -> pd.DataFrame:
    """The list as the row checks see it (``target_audit.sql``): number, county, campaign, snapshot
    county and excluded_reason per row; codes as categoricals. PostgreSQL streams it with COPY."""
    built = _list_built_at(marketing, cycle_date)
    cutoff = built - OPT_OUT_GRACE if built is not None else None
    dialect = marketing.dialect.name
    sql = db.render_sql("target_audit.sql", dialect, query="rows", opt_out_cutoff=cutoff is not None)
    chunks: list[pd.DataFrame] = []
    with marketing.connect() as conn:
        dbapi = conn.connection.driver_connection
        if dialect == "postgresql":
            params: dict[str, Any] = {"d": cycle_date}
            if cutoff is not None:
                params["opted_out_before"] = cutoff if cutoff.tzinfo else cutoff.replace(tzinfo=clock.SHANGHAI)
            compiled = str(sa.text(sql).compile(dialect=marketing.dialect))
            with dbapi.cursor() as cur:
                with cur.copy(f"copy ({compiled}) to stdout with (format csv, header true, null '\\N')",
                              params) as copy:
                    reader = io.BufferedReader(_CopyReader(copy), buffer_size=1 << 20)
                    for chunk in pd.read_csv(reader, dtype=str, na_values=["\\N"], keep_default_na=False,
                                             chunksize=CHUNK_ROWS):
                        chunks.append(_compact(chunk))
        else:
            params = {"d": cycle_date.isoformat()}
            if cutoff is not None:  # stored as SQLAlchemy stores DateTime on SQLite: local wall time as text
                processor = sa.DateTime(timezone=True).dialect_impl(marketing.dialect).bind_processor(marketing.dialect)
                params["opted_out_before"] = processor(cutoff) if processor else cutoff
            cur = dbapi.cursor()
            try:
                cur.execute(sql, params)
                while part := cur.fetchmany(CHUNK_ROWS):
                    chunks.append(_compact(pd.DataFrame.from_records(part, columns=list(ROW_COLUMNS))))
            finally:
                cur.close()
    frame = _concat(chunks)
    # one set of categories for both county columns, so they compare row by row
    counties = frame["county_code"].cat.categories.union(frame["snapshot_county_code"].cat.categories)
    for col in ("county_code", "snapshot_county_code"):
        frame[col] = frame[col].cat.set_categories(counties)
    # a missing number must fail the format check (GX skips nulls in column checks)
    frame["msisdn"] = frame["msisdn"].fillna("")
    return frame


def read_control_counts(marketing: Engine, cycle_date: dt.date) -> pd.DataFrame:
    """Per campaign: customers chosen and held out as control (aggregated in the database)."""
    sql = db.render_sql("target_audit.sql", marketing.dialect.name, query="control", opt_out_cutoff=False)
    with marketing.connect() as conn:
        return pd.read_sql(sa.text(sql), conn, params={"d": cycle_date.isoformat()})


# ---------------------------------------------------------------- the expectations

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


# ---------------------------------------------------------------- reading GX's results

_NUMBER = re.compile(r"(?<!\d)1\d{10}(?!\d)")


def _redact(text: str) -> str:
    """Belt and braces: nothing that looks like a mobile number leaves in a summary or a file."""
    return _NUMBER.sub("1**********", text)


def _n(count: int, noun: str) -> str:
    return f"{count:,} {noun}" + ("" if count == 1 else "s")


def _listed(counts: dict[str, int], names: dict[str, str] | None = None, limit: int = 8) -> str:
    items = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    text = ", ".join(f"{(names or {}).get(k, k)} {n:,}" for k, n in items[:limit])
    return text + (f", … ({len(items) - limit} more)" if len(items) > limit else "")


def _outcome(res: dict, cycle_date: dt.date, checked_rows: int, volume: Volume, settings: ValidationConfig,
             control_plan: dict[str, ControlRow], breakdown: dict[str, dict[str, int]]) -> CheckResult:
    cfg = res["expectation_config"]
    name = cfg["meta"]["check"]
    kind = cfg["type"]
    result = res.get("result") or {}
    passed = bool(res["success"])
    en, zh = CHECK_TITLES[name.split(":")[0]]
    bad = result.get("unexpected_count")
    total = result.get("element_count", checked_rows)
    if res.get("exception_info", {}).get("raised_exception"):
        message = (res["exception_info"].get("exception_message") or "").splitlines()[:1]
        return CheckResult(name, False, _redact(f"{name}: could not be evaluated ({' '.join(message)}) / {zh}：无法校验"),
                           None, kind, zh, "校验出错")
    kw = cfg["kwargs"]
    detail = breakdown.get(name, {}) if not passed else {}
    if name == "number_format":
        expected = f"全部号码符合 {NUMBER_FORMAT}（11位手机号）"
        line = (f"{name}: {bad:,} of {_n(total, 'row')} not a valid mobile number / "
                f"{zh}：{total:,} 行中 {bad:,} 行不是有效手机号")
    elif name == "one_row_per_customer":
        expected = "每个号码只出现一次"
        line = f"{name}: {_n(bad, 'row')} sharing a number with another row / {zh}：{bad:,} 行号码重复"
    elif name == "known_county":
        expected = f"区县为 config/counties.yaml 中的 {len(kw['value_set'])} 个之一"
        line = (f"{name}: {_n(bad, 'row')} in a county not in config/counties.yaml ({_listed(detail)}) / "
                f"{zh}：{bad:,} 行的区县不在配置中（{_listed(detail)}）")
    elif name == "county_matches_snapshot":
        expected = "区县与本周期客户快照中的区县相同"
        line = (f"{name}: {_n(bad, 'row')} with another county than the cycle's snapshot (list→snapshot: "
                f"{_listed(detail)}) / {zh}：{bad:,} 行的区县与本周期快照不一致（清单→快照：{_listed(detail)}）")
    elif name == "active_campaign":
        codes = kw["value_set"]
        expected = f"活动为 {cycle_date} 在执行的 {len(codes)} 个之一：{', '.join(codes) or '（无）'}"
        line = (f"{name}: {_n(bad, 'row')} of campaigns not run on {cycle_date} ({_listed(detail)}) / "
                f"{zh}：{bad:,} 行的活动在 {cycle_date} 不在执行（{_listed(detail)}）")
    elif name == "no_excluded_customer":
        expected = "清单中没有" + "、".join(REASON_NAMES[r] for r in REASONS) + "的客户"
        line = (f"{name}: {_n(bad, 'customer')} the contact policy excludes in the list ({_listed(detail)}) / "
                f"{zh}：清单中有 {bad:,} 位按规定不得联系的客户（{_listed(detail, REASON_NAMES)}）")
    elif name == "volume":
        observed_rows = volume.observed
        bad = None
        if volume.median is None:
            expected = f"非空（前序周期不足 {settings.volume.min_history} 个，暂不比较规模）"
            line = (f"{name}: no customer segmented for the cycle (too few previous cycles for a band, so it must "
                    f"only be non-empty) / {zh}：本周期客户快照为空")
        else:
            k = len(volume.history)
            expected = (f"{volume.min_rows:,}–{volume.max_rows:,} 人（前 {k} 个周期中位数 {volume.median:,.0f} 的 "
                        f"{settings.volume.lower:g}–{settings.volume.upper:g} 倍）")
            line = (f"{name}: {observed_rows:,} customers segmented, outside {volume.min_rows:,}–{volume.max_rows:,} "
                    f"({settings.volume.lower:g}x–{settings.volume.upper:g}x the median {volume.median:,.0f} of the "
                    f"previous {k} cycles) / {zh}：本周期细分客户 {observed_rows:,} 人，超出 "
                    f"{volume.min_rows:,}–{volume.max_rows:,}")
        observed = f"{observed_rows:,} 人"
        if passed:
            line = f"{name}: {observed_rows:,} customers segmented / {zh}：{observed_rows:,} 人"
        return CheckResult(name, passed, _redact(line), bad, kind, expected, observed)
    else:  # control_share:<campaign>
        r = control_plan[name.split(":", 1)[1]]
        expected = f"{r.configured:.1%} ± {r.tolerance:.1%}"
        observed = f"{r.chosen:,} 人中 {r.control:,} 人，{r.observed:.1%}"
        line = (f"{name}: {r.observed:.1%} of {r.chosen:,} chosen customers are control, configured "
                f"{r.configured:.1%} ± {r.tolerance:.1%} / {zh}：{r.campaign_code} 的 {r.chosen:,} 人中对照组占 "
                f"{r.observed:.1%}，应为 {r.configured:.1%} ± {r.tolerance:.1%}")
        if passed:
            line = f"{name}: {r.observed:.1%} control, configured {r.configured:.1%} / {zh}：{r.observed:.1%}"
        return CheckResult(name, passed, _redact(line), None, kind, expected, observed,
                           campaigns=() if passed else (r.campaign_code,))
    observed = f"{bad:,} 行不符" if bad else "全部符合"
    if detail:
        observed += "（" + _listed(detail, REASON_NAMES) + "）"
    if passed:
        line = f"{name}: all {total:,} rows pass / {zh}：{total:,} 行全部符合"
    held = tuple(sorted(detail)) if name == "active_campaign" else ()
    return CheckResult(name, passed, _redact(line), bad, kind, expected, observed, detail, held)


# ---------------------------------------------------------------- the audit

def audit_target_list(marketing: Engine, cycle_date: dt.date, library: list[Campaign], out_dir: Path | None = None,
                      *, settings: ValidationConfig | None = None) -> ValidationReport:
    """Check the cycle's target list in ``mkt_target`` and keep the result under
    ``<out_dir or output_dir()>/reports/<date>/`` (``target_validation.html`` and ``.json``).

    Never raises for a bad list: the report says what failed (see :func:`require_valid`).
    """
    from qz_outbound.reports import output_dir
    from qz_outbound.segmentation import record_stage
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
    checks = [_outcome(res, cycle_date, checked_rows, volume, settings, by_code, at_fault)
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
    report.json_path.write_text(_redact(json.dumps(document, ensure_ascii=False, indent=1, default=str)),
                                encoding="utf-8")
    report.html_path.write_text(_render_html(report, volume, plan, settings), encoding="utf-8")

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
                                       "reason": _redact("\n".join(reasons.get(code, []))), "held_at": now}
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


def _render_html(report: ValidationReport, volume: Volume, plan: list[ControlRow], settings: ValidationConfig) -> str:
    import great_expectations as gx

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
                             autoescape=True, undefined=jinja2.StrictUndefined)
    checks = [dict(asdict(c), title_zh=CHECK_TITLES[c.check.split(":")[0]][1],
                   title_en=CHECK_TITLES[c.check.split(":")[0]][0]) for c in report.checks]
    return _redact(env.get_template("reports/target_validation.html.j2").render(
        report=report, checks=checks, volume=volume, control=plan, settings=settings,
        generated_at=clock.now().strftime("%Y-%m-%d %H:%M"), gx_version=gx.__version__))


# ---------------------------------------------------------------- by hand

def main(argv: list[str] | None = None) -> int:
    """Re-run the audit of a cycle by hand (after a fix): ``python -m qz_outbound.validation``."""
    parser = argparse.ArgumentParser(prog="python -m qz_outbound.validation", description=main.__doc__)
    parser.add_argument("--marketing", required=True, help="SQLAlchemy URL of marketing_db (or an SQLite file path)")
    parser.add_argument("--date", required=True, type=dt.date.fromisoformat, help="cycle date, YYYY-MM-DD")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from qz_outbound.campaigns import load_library

    url = args.marketing if "://" in args.marketing else f"sqlite:///{os.path.abspath(args.marketing)}"
    report = audit_target_list(db.make_engine(url), args.date, load_library())
    print(report.summary())
    return 0 if report.success else (2 if report.publishable else 1)


if __name__ == "__main__":
    sys.exit(main())
