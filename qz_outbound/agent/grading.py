"""Outlet grading (网点分级): a monthly score per agent shop and its grade A–D.

Four measures, each scored 0–100 and weighted (``config/agent_channel.yaml`` ``grading``):

* customers served — distinct customers who topped up at the shop in the month (the data mart's
  ``recharge_event``; measured, rather than the shop's own ``monthly_customers`` figure);
* floor area — ``agent.floor_area_m2`` (unknown scores 0);
* outlet type — a score per ``outlet_type``;
* conversions — the month's paid conversions (``mkt_agent_commission``: settle the month first).

A numeric measure scores linearly up to its ``full_marks`` value (100 there and above). The grade
is the highest whose cut-off the score reaches; below C is D. Output: ``mkt_agent_grade`` (the
month's rows replaced) and ``var/output/reports/agent-grades/<YYYY-MM>/``: every shop
(``outlet_grades.csv``) and the grades per county (``grade_distribution.csv`` and ``.html``).
"""

from __future__ import annotations

import datetime as dt
import html
from pathlib import Path

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from qz_outbound import db, exports, reports
from qz_outbound.agent.commission import month_bounds
from qz_outbound.agent.schema import mkt_agent_grade
from qz_outbound.agent.settings import Grading, load_agent_config
from qz_outbound.counties import county_names

GRADES = ("A", "B", "C", "D")


def score_frame(shops: pd.DataFrame, g: Grading) -> pd.DataFrame:
    """Scores and grades for shops with customers_served, floor_area_m2, outlet_type, conversions."""
    out = shops.copy()

    def part(col: str, full: float) -> pd.Series:
        return (out[col].astype(float).fillna(0) / full).clip(upper=1) * 100

    type_score = out["outlet_type"].map(g.outlet_type_score).fillna(0)
    w = g.weights
    out["score"] = (w.customers_served * part("customers_served", g.full_marks.customers_served)
                    + w.floor_area_m2 * part("floor_area_m2", g.full_marks.floor_area_m2)
                    + w.outlet_type * type_score
                    + w.conversions * part("conversions", g.full_marks.conversions)).round(2)
    cuts = g.cut_offs
    out["grade"] = out["score"].map(lambda s: "A" if s >= cuts.A else "B" if s >= cuts.B else "C" if s >= cuts.C
                                    else "D")
    return out


def grade_month(datamart: Engine, marketing: Engine, month: dt.date, grading: Grading | None = None,
                out_dir: Path | None = None) -> dict:
    """Grade every shop of the data mart for the month; counts per grade and the report paths."""
    g = grading or load_agent_config().grading
    first, nxt = month_bounds(month)
    agents = pd.read_sql(sa.text("select agent_id, county_code, outlet_name, outlet_type, floor_area_m2 from agent"),
                         datamart)
    served = pd.read_sql(sa.text(db.render_sql("agent_customers_served.sql", datamart.dialect.name)), datamart,
                         params={"since": f"{first} 00:00:00", "until": f"{nxt} 00:00:00"})
    conversions = pd.read_sql(db.date_binds("select agent_id, count(*) as conversions from mkt_agent_commission "
                                            "where month = :m group by agent_id", "m"), marketing,
                              params={"m": first})
    shops = agents.merge(served, on="agent_id", how="left").merge(conversions, on="agent_id", how="left")
    shops = shops.fillna({"customers_served": 0, "conversions": 0}).astype({"customers_served": int,
                                                                           "conversions": int})
    shops["floor_area_m2"] = shops["floor_area_m2"].astype(float)
    graded = score_frame(shops, g).sort_values(["county_code", "agent_id"])
    rows = graded.assign(month=first)[[c.name for c in mkt_agent_grade.columns]]
    with marketing.begin() as conn:
        conn.execute(mkt_agent_grade.delete().where(mkt_agent_grade.c.month == first))
        if len(rows):
            conn.execute(mkt_agent_grade.insert(), rows.astype(object).where(rows.notna(), None).to_dict("records"))
    return {"month": first.isoformat(), "shops": len(graded),
            **{f"grade_{k}": int((graded["grade"] == k).sum()) for k in GRADES},
            **write_grade_report(graded, first, out_dir)}


def write_grade_report(graded: pd.DataFrame, month: dt.date, out_dir: Path | None = None) -> dict:
    folder = Path(out_dir or reports.output_dir() / "reports" / "agent-grades") / f"{month:%Y-%m}"
    folder.mkdir(parents=True, exist_ok=True)
    names = county_names()
    shops = graded.rename(columns={
        "agent_id": "代理点编码", "county_code": "区县编码", "outlet_name": "网点名称", "outlet_type": "网点类型",
        "customers_served": "服务客户数", "floor_area_m2": "面积(平方米)", "conversions": "转化笔数",
        "score": "得分", "grade": "等级"})
    exports.write_csv(shops, folder / "outlet_grades.csv")
    dist = pd.crosstab(graded["county_code"], graded["grade"]).reindex(columns=list(GRADES), fill_value=0)
    dist["合计"] = dist.sum(axis=1)
    dist.insert(0, "区县", [names.get(c, c) for c in dist.index])
    dist.index.name = "区县编码"
    exports.write_csv(dist, folder / "grade_distribution.csv", index=True)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in ["区县编码", *dist.columns])
    body = "".join("<tr>" + f"<td>{html.escape(str(code))}</td>" + "".join(
        f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>" for code, row in dist.iterrows())
    (folder / "grade_distribution.html").write_text(
        f"<!doctype html><meta charset='utf-8'><title>代理网点分级 {month:%Y-%m}</title>"
        f"<h1>代理网点分级 {month:%Y-%m}</h1><table border='1'><tr>{head}</tr>{body}</table>", encoding="utf-8")
    return {"csv": str(folder / "grade_distribution.csv"), "html": str(folder / "grade_distribution.html")}
