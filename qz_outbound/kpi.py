"""County KPI targets and their completion (考核; economics.md "KPI targets"; docs/budgets-kpi.md).

``config/kpi_targets.yaml`` sets each county's monthly targets. :func:`completion` measures a month
per county, :func:`trend` the same figures cumulated over the month's cycles, all from
``include/sql/kpi_actuals.sql``:

* conversions: contacts of the month's cycles credited with a conversion (``mkt_contact``);
* incremental revenue and customers kept: ``mkt_campaign_economics``' ``county:<code>`` rows of the
  month's cycles that have an after-month; none (or no table yet) is "not yet measurable" (None),
  never zero;
* combined bundling rate: share of the county's customers in the month's latest snapshot with any
  open hard or soft bundle;
* connect rate: call contacts of the month connected / dialled (``_call_status.sql``).

Completion = figure / target (for the rates too: 0.55 against a target of 0.60 is 92%); None
where the figure is not measurable or there is no target.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import sqlalchemy as sa
from pydantic import Field
from sqlalchemy.engine import Engine

from qz_outbound import config, db
from qz_outbound.counties import county_names

# the KPIs in page order: key, Chinese label, unit
KPIS = (
    ("conversions", "转化量", "户"),
    ("incremental_revenue_yuan", "增量收入", "元"),
    ("customers_kept", "保有客户数", "户"),
    ("combined_bundling_rate", "融合率", "%"),
    ("connect_rate", "外呼接通率", "%"),
)
RATES = frozenset({"combined_bundling_rate", "connect_rate"})
NOT_MEASURABLE = "尚不可测"


class CountyTargets(config.StrictModel):
    conversions: float | None = Field(default=None, strict=True, ge=0)
    incremental_revenue_yuan: float | None = Field(default=None, strict=True, ge=0)
    customers_kept: float | None = Field(default=None, strict=True, ge=0)
    combined_bundling_rate: float | None = Field(default=None, strict=True, ge=0, le=1)
    connect_rate: float | None = Field(default=None, strict=True, ge=0, le=1)


class KpiTargets(config.StrictModel):
    counties: dict[str, CountyTargets] = Field(default_factory=dict)
    months: dict[str, dict[str, CountyTargets]] = Field(default_factory=dict)   # "YYYY-MM" -> county -> targets

    def for_month(self, month: dt.date) -> dict[str, CountyTargets]:
        return {**self.counties, **self.months.get(f"{month:%Y-%m}", {})}


def load_targets(path: Path | None = None) -> KpiTargets:
    """config/kpi_targets.yaml, checked: targets numbers >= 0, rates within 0-1, county codes known,
    months written YYYY-MM (``file:line: field: message`` for each mistake)."""
    path = Path(path or config.config_path("kpi_targets.yaml"))
    if not path.exists():
        raise config.ConfigError([(str(path), None, "", "file not found")])
    data, index = config.parse_yaml(path)
    cfg = config.validate(KpiTargets, data, path, index)
    known = county_names()
    problems = [(str(path), index.get(("counties", c)), f"counties.{c}", "unknown county code (see config/counties.yaml)")
                for c in cfg.counties if c not in known]
    for month, by_county in cfg.months.items():
        try:
            dt.date.fromisoformat(f"{month}-01")
            ok = len(month) == 7
        except ValueError:
            ok = False
        if not ok:
            problems.append((str(path), index.get(("months", month)), f"months.{month}", "a month is written YYYY-MM"))
        problems += [(str(path), index.get(("months", month, c)), f"months.{month}.{c}",
                      "unknown county code (see config/counties.yaml)") for c in by_county if c not in known]
    if problems:
        raise config.ConfigError(problems)
    return cfg


def month_bounds(month: dt.date) -> tuple[dt.date, dt.date]:
    start = month.replace(day=1)
    return start, (start + dt.timedelta(days=32)).replace(day=1)


def _read(marketing: Engine, month: dt.date) -> dict[str, pd.DataFrame]:
    start, end = month_bounds(month)
    params = {"month_start": start, "month_end": end}
    out = {}
    has_economics = sa.inspect(marketing).has_table("mkt_campaign_economics")
    with marketing.connect() as conn:
        for query in ("conversions", "calls", "bundling", "economics"):
            if query == "economics" and not has_economics:   # written by the economics step, once it runs
                out[query] = pd.DataFrame(columns=["county_code", "cycle_date", "incremental_revenue",
                                                   "customers_kept", "measured_rows"])
                continue
            sql = db.render_sql("kpi_actuals.sql", marketing.dialect.name, query=query)
            frame = pd.DataFrame(conn.execute(db.date_binds(sql, "month_start", "month_end"), params).mappings().all())
            if frame.empty:
                frame = pd.DataFrame(columns=["county_code", "cycle_date"])
            frame["cycle_date"] = pd.to_datetime(frame["cycle_date"]).dt.date
            out[query] = frame
    return out


def _figures(parts: dict[str, pd.DataFrame], county: str, until: dt.date | None = None) -> dict[str, float | None]:
    """The county's five figures over the month's cycles up to ``until`` (all when None)."""
    def rows(name: str) -> pd.DataFrame:
        f = parts[name]
        f = f[f["county_code"] == county]
        return f[f["cycle_date"] <= until] if until is not None else f

    conv, calls, bund, econ = rows("conversions"), rows("calls"), rows("bundling"), rows("economics")
    dialled = float(calls["dialled"].sum()) if not calls.empty else 0.0
    latest = bund.sort_values("cycle_date").iloc[-1] if not bund.empty else None
    measured = not econ.empty and float(econ["measured_rows"].sum()) > 0
    return {
        "conversions": float(conv["conversions"].sum()) if not conv.empty else 0.0,
        "incremental_revenue_yuan": float(econ["incremental_revenue"].fillna(0).sum()) if measured else None,
        "customers_kept": float(econ["customers_kept"].fillna(0).sum()) if measured else None,
        "combined_bundling_rate": float(latest["bundled"]) / float(latest["customers"])
        if latest is not None and float(latest["customers"]) > 0 else None,
        "connect_rate": float(calls["connected"].sum()) / dialled if dialled > 0 else None,
    }


def _ratio(actual: float | None, target: float | None) -> float | None:
    if actual is None or target is None or target <= 0:
        return None
    return actual / target


def completion(marketing: Engine, month: dt.date, targets: KpiTargets | None = None,
               counties: list[str] | None = None) -> pd.DataFrame:
    """One row per county and KPI of ``month``: county_code, county_name, kpi, label, target, actual
    (None: not yet measurable), completion (actual / target; None without either)."""
    targets = targets or load_targets()
    by_county = targets.for_month(month)
    names = county_names()
    parts = _read(marketing, month)
    rows = []
    for county in counties or list(names):
        figures = _figures(parts, county)
        t = by_county.get(county)
        for key, label, unit in KPIS:
            target = getattr(t, key) if t else None
            rows.append({"county_code": county, "county_name": names[county], "kpi": key, "label": label,
                         "unit": unit, "target": target, "actual": figures[key],
                         "completion": _ratio(figures[key], target)})
    return _none_kept(pd.DataFrame(rows), ("target", "actual", "completion"))


def trend(marketing: Engine, month: dt.date, targets: KpiTargets | None = None,
          counties: list[str] | None = None) -> pd.DataFrame:
    """The month's figures cumulated cycle by cycle: county_code, cycle_date, kpi, actual, completion."""
    targets = targets or load_targets()
    by_county = targets.for_month(month)
    parts = _read(marketing, month)
    days = sorted({d for f in parts.values() for d in f["cycle_date"]})
    rows = []
    for county in counties or list(county_names()):
        t = by_county.get(county)
        for day in days:
            figures = _figures(parts, county, day)
            for key, _label, _unit in KPIS:
                target = getattr(t, key) if t else None
                rows.append({"county_code": county, "cycle_date": day, "kpi": key, "actual": figures[key],
                             "completion": _ratio(figures[key], target)})
    return _none_kept(pd.DataFrame(rows, columns=["county_code", "cycle_date", "kpi", "actual", "completion"]),
                      ("actual", "completion"))


def _none_kept(frame: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    """Not measurable stays None (pandas would make it NaN in a float column)."""
    for col in columns:
        frame[col] = pd.Series([None if v is None or v != v else float(v) for v in frame[col]], dtype=object,
                               index=frame.index)
    return frame


def export_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The completion table as HQ and the counties download it (Chinese headers)."""
    def shown(v, rate: bool):
        if v is None or v != v:
            return NOT_MEASURABLE
        return round(float(v), 4) if rate else round(float(v), 2)

    out = pd.DataFrame({
        "区县代码": frame["county_code"], "区县": frame["county_name"], "指标": frame["label"],
        "目标": [None if t is None or t != t else t for t in frame["target"]],
        "完成值": [shown(a, k in RATES) for a, k in zip(frame["actual"], frame["kpi"])],
        "完成率": [None if c is None or c != c else round(float(c), 4) for c in frame["completion"]],
    })
    return out
