"""HQ's economics page (营销效益) in the portal: HQ only, read from ``mkt_campaign_economics``.

Per campaign for one period (a cycle date, or a month: the month rows) and one slice: the funnel
(sent, delivered, converted; the whole campaign's, from the contact history), incremental ARPU with
its 95% interval, incremental revenue, customers kept, cost and ROI, with "尚不可测" (no after-month
billed yet) and "无可测效果" (the interval spans zero) where they apply; an interval plot per campaign;
CSV and XLSX of the table through ``qz_outbound.exports`` (formula-safe). ``add_routes`` is called by
``web.create_app`` with its viewer, audit and page helpers.
"""

from __future__ import annotations

import datetime as dt
import re
import tempfile
from pathlib import Path

import pandas as pd
import sqlalchemy as sa
from fastapi import Depends, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse
from starlette.background import BackgroundTask

from qz_outbound import clock, db, economics, exports, schema

PERIOD = re.compile(r"^\d{4}-\d{2}(-\d{2})?$")
SLICE = re.compile(r"^[a-z0-9]+(:[A-Za-z0-9_\-]+)?$")
STATUS_WORDS = {"measured": "有效果", "no_effect": "无可测效果", "not_yet_measurable": "尚不可测"}
SLICE_WORDS = {"all": "全部", "county": "区县", "type": "稳定性类型", "tier": "消费档次", "market": "细分市场",
               "channel": "渠道", "variant": "A/B 方案", "digit1": "编码第1位", "digit2": "编码第2位",
               "digit3": "编码第3位", "digit4": "编码第4位"}
# the table's columns as HQ reads them (CSV/XLSX headers too)
HEADERS = {"campaign_code": "活动编码", "campaign_name": "活动名称", "sent": "发送", "delivered": "送达",
           "converted": "转化", "contacted": "接触客户", "control": "对照客户", "after_months": "已出账后续月数",
           "conversion_uplift": "转化提升", "incremental_arpu": "增量ARPU(元/户/月)", "arpu_ci_low": "区间下限",
           "arpu_ci_high": "区间上限", "incremental_revenue": "增量收入(元)", "customers_kept": "多保有客户",
           "cost": "成本(元)", "roi": "ROI", "status": "效果", "budget_used": "预算使用"}
FUNNEL_SQL = """
select campaign_code,
       sum(case when sent_at is not null or delivered_at is not null
                     or (channel = 'call' and response is not null) then 1 else 0 end) as sent,
       sum(case when delivered_at is not null or (channel = 'call' and response is not null)
                then 1 else 0 end) as delivered,
       sum(case when converted_at is not null then 1 else 0 end) as converted
from mkt_contact
where cycle_date >= :a and cycle_date <= :b and channel <> 'control'
group by campaign_code
"""


def _period(value: str | None, latest: dt.date | None) -> tuple[str, dt.date, dt.date, dt.date, str]:
    """(label, table key, first cycle, last cycle, slice prefix) of ``YYYY-MM-DD`` (a cycle) or ``YYYY-MM``."""
    value = value or (latest.isoformat() if latest else clock.today().isoformat())
    if not PERIOD.match(value):
        raise HTTPException(400, "周期格式应为 YYYY-MM-DD（单日）或 YYYY-MM（整月）")
    try:
        if len(value) == 7:
            first = dt.date.fromisoformat(value + "-01")
            nxt = dt.date(first.year + first.month // 12, first.month % 12 + 1, 1)
            return value, first, first, nxt - dt.timedelta(days=1), economics.MONTH_PREFIX
        day = dt.date.fromisoformat(value)
    except ValueError:
        raise HTTPException(400, "日期无效") from None
    return value, day, day, day, ""


def economics_table(engine, period: str | None, slice_: str, library_names: dict[str, str]) -> dict:
    """The page's data: rows per campaign (and across campaigns), the slices on offer, the periods."""
    if not SLICE.match(slice_ or ""):
        raise HTTPException(400, "切片格式应为 all 或 名称:取值，如 county:350582")
    t = schema.mkt_campaign_economics
    with engine.connect() as conn:
        cycles = [c if isinstance(c, dt.date) else dt.date.fromisoformat(str(c)[:10]) for c in conn.scalars(
            sa.select(t.c.cycle_date).where(~t.c.slice.like(economics.MONTH_PREFIX + "%"))
            .distinct().order_by(t.c.cycle_date.desc()).limit(62))]
    label, key, first, last, prefix = _period(period, cycles[0] if cycles else None)
    with engine.connect() as conn:
        frame = pd.read_sql(sa.select(t).where(t.c.cycle_date == key, t.c.slice.like(prefix + "%") if prefix
                                               else ~t.c.slice.like(economics.MONTH_PREFIX + "%")), conn)
        funnel = pd.read_sql(db.date_binds(FUNNEL_SQL, "a", "b"), conn, params={"a": first, "b": last})
    frame["slice"] = frame["slice"].str.removeprefix(prefix)
    slices = sorted(set(frame["slice"]), key=lambda s: (s != "all", s.split(":")[0], s))
    rows = frame[frame["slice"] == slice_].sort_values("campaign_code")
    rows = rows.merge(funnel, on="campaign_code", how="left") if not rows.empty else rows.assign(
        sent=None, delivered=None, converted=None)
    totals = {k: int(funnel[k].sum()) for k in ("sent", "delivered", "converted")}
    records = []
    used = budget_used(engine, first)
    for r in rows.to_dict("records"):
        if r["campaign_code"] == economics.ALL_CAMPAIGNS and r["slice"] == "all":
            r.update(totals)
        r = {k: (None if isinstance(v, float) and pd.isna(v) else v) for k, v in r.items()}
        r["status"] = economics.status_of(r)
        r["campaign_name"] = library_names.get(r["campaign_code"], "全部活动" if r["campaign_code"] == "*" else "")
        r["budget_used"] = used.get(r["campaign_code"])   # the month's own campaign budget (budgets.py)
        records.append(r)
    months = sorted({c.strftime("%Y-%m") for c in cycles}, reverse=True)
    return {"period": label, "slice": slice_, "rows": records, "slices": slices,
            "periods": [c.isoformat() for c in cycles] + months, "plot": _plot(records)}


def budget_used(engine, day: dt.date, cfg=None) -> dict[str, str]:
    """Per campaign with a monthly budget: "committed / budget 元 (share)" for the month of ``day``."""
    from qz_outbound import budgets

    use = budgets.budget_use(engine, day, cfg)
    return {r.campaign_code: f"{r.committed_yuan:,.0f} / {r.budget_yuan:,.0f} 元"
                             + ("" if r.share is None else f"（{r.share:.0%}）")
            for r in use.itertuples(index=False) if r.county_code is None}


def _plot(records: list[dict]) -> dict:
    """Geometry of the interval plot: one line per campaign with a measured interval, zero marked."""
    shown = [r for r in records if r["arpu_ci_low"] is not None and r["arpu_ci_high"] is not None]
    span = [v for r in shown for v in (r["arpu_ci_low"], r["arpu_ci_high"])] + [0.0]
    lo, hi = min(span), max(span)
    pad = (hi - lo) * 0.08 or 1.0
    lo, hi = lo - pad, hi + pad
    width, left = 560, 170

    def x(v: float) -> float:
        return round(left + (v - lo) / (hi - lo) * width, 1)

    lines = [{"label": f"{r['campaign_code']} {r['campaign_name']}"[:18], "y": 28 + i * 26,
              "x0": x(r["arpu_ci_low"]), "x1": x(r["arpu_ci_high"]), "xm": x(r["incremental_arpu"]),
              "status": r["status"], "text": f"{r['incremental_arpu']:+.2f}"} for i, r in enumerate(shown)]
    return {"lines": lines, "zero": x(0.0), "height": 40 + 26 * len(lines), "left": left, "width": width,
            "lo": round(lo, 2), "hi": round(hi, 2), "x_lo": x(lo), "x_hi": x(hi)}


def download_frame(data: dict) -> pd.DataFrame:
    cols = list(HEADERS)
    frame = pd.DataFrame(data["rows"], columns=cols)
    frame["status"] = frame["status"].map(STATUS_WORDS)
    return frame.rename(columns=HEADERS)


def add_routes(app, *, engine, viewer, audit, page) -> None:
    """``GET /hq/economics`` (the page) and ``GET /hq/economics.{csv,xlsx}`` (its table), HQ only."""

    def hq_only(v, what: str) -> None:
        if not v.hq:
            audit(v.name, "denied", v.county, what, None)
            raise HTTPException(403, "营销效益仅对市公司开放")

    def names() -> dict[str, str]:
        from qz_outbound import campaigns

        return {c.code: c.name for c in campaigns.load_library()}

    @app.get("/hq/economics", response_class=HTMLResponse)
    def economics_page(request: Request, period: str | None = None, slice: str = "all", v=Depends(viewer)):
        hq_only(v, "economics")
        data = economics_table(engine(), period, slice, names())
        return page(request, "economics.html", viewer=v, data=data, headers=HEADERS, words=STATUS_WORDS,
                    slice_words=SLICE_WORDS)

    @app.get("/hq/economics.{fmt}")
    def economics_download(fmt: str, period: str | None = None, slice: str = "all", v=Depends(viewer)):
        hq_only(v, f"economics.{fmt}")
        if fmt not in ("csv", "xlsx"):
            raise HTTPException(404, "只提供 csv 或 xlsx")
        data = economics_table(engine(), period, slice, names())
        frame = download_frame(data)
        folder = Path(tempfile.mkdtemp(prefix="qz-econ-"))
        name = f"营销效益_{data['period']}_{data['slice'].replace(':', '-')}.{fmt}"
        path = folder / name
        if fmt == "csv":
            exports.write_csv(frame, path)
        else:
            exports.write_xlsx(path, {"营销效益": frame})
        audit(v.name, "download", None, name, len(frame))

        def cleanup() -> None:
            path.unlink(missing_ok=True)
            folder.rmdir()

        media = "text/csv; charset=utf-8" if fmt == "csv" else \
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        return FileResponse(path, media_type=media, filename=name, background=BackgroundTask(cleanup))
