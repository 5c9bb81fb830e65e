"""County KPI pages of the portal (考核完成情况; docs/budgets-kpi.md).

* ``/hq/kpi`` (HQ only): every county's completion against each target (bars) and its trend over
  the month's cycles (lines);
* ``/kpi``: a county office's own completion and trend; HQ may pass ``county``; a county user asking
  for another county is refused (403) and the refusal audited;
* ``/kpi/download.csv`` and ``/kpi/download.xlsx``: the completion table (a county's own rows; HQ
  every county's), written by :mod:`qz_outbound.exports`.

Wired into the portal's app by :func:`add_routes`; the viewer, the page renderer, the audit and
the engine are the app's own (``portal/web.py``), so the same checks hold.
"""

from __future__ import annotations

import datetime as dt
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, Response

from qz_outbound import clock, exports, kpi
from qz_outbound.counties import county_names
from qz_outbound.portal.access import Viewer

MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
COLOURS = ("#1e88e5", "#e53935", "#43a047", "#fb8c00", "#8e24aa", "#00897b", "#6d4c41", "#3949ab", "#c0ca33",
           "#d81b60", "#546e7a")
FORMATS = {"csv": "text/csv; charset=utf-8",
           "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


def _month(value: str | None) -> dt.date:
    if not value:
        return clock.today().replace(day=1)
    if not MONTH.match(value):
        raise HTTPException(400, "月份格式应为 YYYY-MM")
    return dt.date.fromisoformat(f"{value}-01")


def _shown(kpi_key: str, value) -> str:
    if value is None or value != value:
        return kpi.NOT_MEASURABLE
    if kpi_key in kpi.RATES:
        return f"{value:.1%}"
    return f"{value:,.0f}"


def _charts(frame, trend, counties: list[str]) -> dict:
    """Geometry-free data for the SVG charts (the template scales them)."""
    names = county_names()
    bars = {}
    for key, label, _unit in kpi.KPIS:
        rows = frame[frame["kpi"] == key]
        bars[key] = [{"county": r.county_code, "label": names[r.county_code],
                      "completion": None if r.completion is None or r.completion != r.completion else float(r.completion),
                      "actual": _shown(key, r.actual)} for r in rows.itertuples(index=False)]
    days = sorted(set(trend["cycle_date"])) if not trend.empty else []
    lines = {}
    for key, _label, _unit in kpi.KPIS:
        series = []
        for i, county in enumerate(counties):
            t = trend[(trend["kpi"] == key) & (trend["county_code"] == county)].sort_values("cycle_date")
            points = [(days.index(r.cycle_date), float(r.completion)) for r in t.itertuples(index=False)
                      if r.completion is not None and r.completion == r.completion]
            series.append({"county": county, "label": names[county], "colour": COLOURS[i % len(COLOURS)],
                           "points": points})
        lines[key] = series
    top = max([b["completion"] for v in bars.values() for b in v if b["completion"] is not None]
              + [p[1] for v in lines.values() for s in v for p in s["points"]] + [1.0])
    return {"bars": bars, "lines": lines, "days": [d.isoformat() for d in days], "top": min(top, 3.0)}


def add_routes(app: FastAPI, *, viewer: Callable[..., Viewer], engine: Callable, page: Callable,
               audit: Callable) -> None:
    """The KPI pages on the portal's app (``viewer`` is its dependency resolving the signed-in user)."""

    def counties_for(v: Viewer, county: str | None, what: str) -> list[str]:
        if county is not None and county not in county_names():
            raise HTTPException(404, "没有这个区县")
        if v.hq:
            return [county] if county else list(county_names())
        if county is not None and county != v.county:
            audit(v.name, "denied", county, what, None)
            raise HTTPException(403, "只能查看本县的考核数据")
        return [v.county]

    def render(request: Request, v: Viewer, month: dt.date, counties: list[str], hq_page: bool) -> HTMLResponse:
        frame = kpi.completion(engine(), month, counties=counties)
        trend = kpi.trend(engine(), month, counties=counties)
        table = [{**r, "actual_shown": _shown(r["kpi"], r["actual"]),
                  "target_shown": "" if r["target"] is None or r["target"] != r["target"] else _shown(r["kpi"], r["target"]),
                  "completion_shown": "" if r["completion"] is None or r["completion"] != r["completion"]
                  else f"{r['completion']:.0%}"} for r in frame.to_dict("records")]
        return page(request, "kpi.html", viewer=v, month=f"{month:%Y-%m}", counties=counties, names=county_names(),
                    table=table, kpis=kpi.KPIS, charts=_charts(frame, trend, counties), hq_page=hq_page,
                    not_measurable=kpi.NOT_MEASURABLE,
                    query=f"month={month:%Y-%m}" + ("" if hq_page else f"&county={counties[0]}"))

    @app.get("/hq/kpi", response_class=HTMLResponse)
    def hq_kpi(request: Request, month: str | None = None, v: Viewer = Depends(viewer)):
        """各区县考核完成情况 (HQ only)."""
        if not v.hq:
            audit(v.name, "denied", v.county, "kpi all counties", None)
            raise HTTPException(403, "各区县考核完成情况仅对市公司开放")
        return render(request, v, _month(month), list(county_names()), True)

    @app.get("/kpi", response_class=HTMLResponse)
    def county_kpi(request: Request, month: str | None = None, county: str | None = None,
                   v: Viewer = Depends(viewer)):
        """本县考核完成情况 (a county office: its own only)."""
        if v.hq and county is None:   # HQ's entry: every county
            return render(request, v, _month(month), list(county_names()), True)
        counties = counties_for(v, county, "kpi")
        return render(request, v, _month(month), counties, False)

    @app.get("/kpi/download.{fmt}")
    def kpi_download(fmt: str, month: str | None = None, county: str | None = None, v: Viewer = Depends(viewer)):
        if fmt not in FORMATS:
            raise HTTPException(404, "只提供 csv 或 xlsx")
        day = _month(month)
        counties = counties_for(v, county, "kpi download")
        table = kpi.export_frame(kpi.completion(engine(), day, counties=counties))
        name = f"考核完成情况_{day:%Y-%m}" + (f"_{counties[0]}" if len(counties) == 1 else "") + f".{fmt}"
        with tempfile.TemporaryDirectory(prefix="qz-kpi-") as tmp:
            path = Path(tmp) / f"kpi.{fmt}"
            if fmt == "csv":
                exports.write_csv(table, path)
            else:
                exports.write_xlsx(path, {"考核完成情况": table}, widths={"考核完成情况": [10, 10, 14, 12, 12, 10]})
            data = path.read_bytes()
        audit(v.name, "download", counties[0] if len(counties) == 1 else None, name, len(table))
        from urllib.parse import quote

        return Response(data, media_type=FORMATS[fmt],
                        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}"})
