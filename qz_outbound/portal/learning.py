"""HQ's learning-loop page (学习闭环) in the portal: HQ only.

The latest offline evaluation (``mkt_policy_evaluation``: fixed priorities vs the learned policy,
IPW and self-normalised, with intervals, matched rows and effective sample size) and whether the
learned mode may be switched on and why (:func:`qz_outbound.learning.evaluation.gate`); the share
changes of the latest cycle with the cells that moved (:mod:`qz_outbound.learning.shares`); the
paused campaigns with their reasons (``mkt_campaign_pause``). ``add_routes`` is called by
``web.create_app`` with its viewer, audit and page helpers. Campaign codes, cells and counts only.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import sqlalchemy as sa
from fastapi import Depends, HTTPException, Request
from fastapi.responses import HTMLResponse

from qz_outbound import clock, schema

POLICY_WORDS = {"fixed": "固定优先级", "learned": "学习策略", "learned-fixed": "学习 − 固定（配对差值）"}
ESTIMATOR_WORDS = {"ipw": "逆倾向加权 IPW", "snipw": "自归一化 IPW"}


def _clean(records: list[dict]) -> list[dict]:
    return [{k: (None if isinstance(v, float) and pd.isna(v) else v) for k, v in r.items()} for r in records]


def learning_data(engine, day: dt.date) -> dict:
    """The page's data on ``day``."""
    from qz_outbound.learning import evaluation, shares

    cfg = evaluation.load_evaluation_config()
    latest = evaluation.latest_evaluation(engine, day)
    allowed, key, facts = evaluation.gate(engine, day, cfg)
    cycle = shares.latest_cycle(engine, day)
    changes = shares.share_changes(engine, cycle, cfg) if cycle else None
    p = schema.mkt_campaign_pause
    with engine.connect() as conn:
        paused = pd.read_sql(sa.select(p).order_by(p.c.paused_at.desc(), p.c.campaign_code), conn)
    return {
        "day": day.isoformat(),
        "evaluation": _clean(latest.to_dict("records")),
        "evaluated_on": None if latest.empty else str(latest["evaluated_on"].iloc[0])[:10],
        "window": None if latest.empty else (str(latest["window_start"].iloc[0])[:10],
                                             str(latest["window_end"].iloc[0])[:10], int(latest["cycles"].iloc[0])),
        "allowed": allowed, "reason": evaluation.reason_text(key, facts, chinese=True),
        "min_matched": cfg.min_matched,
        "cycle": None if cycle is None else cycle.isoformat(),
        "previous": None if not changes or changes["previous"] is None else changes["previous"].isoformat(),
        "shares": [] if not changes else _clean(changes["shares"].to_dict("records")),
        "changes": [] if not changes else _clean(changes["rows"].to_dict("records")),
        "min_change_pp": cfg.share_report.min_change_pp,
        "paused": _clean(paused.to_dict("records")),
    }


def add_routes(app, *, engine, viewer, audit, page) -> None:
    """``GET /hq/learning`` (the page), HQ only."""

    @app.get("/hq/learning", response_class=HTMLResponse)
    def learning_page(request: Request, day: str | None = None, v=Depends(viewer)):
        if not v.hq:
            audit(v.name, "denied", v.county, "learning", None)
            raise HTTPException(403, "学习闭环仅对市公司开放")
        try:
            when = dt.date.fromisoformat(day) if day else clock.today()
        except ValueError:
            raise HTTPException(400, "日期格式应为 YYYY-MM-DD") from None
        return page(request, "learning.html", viewer=v, data=learning_data(engine(), when),
                    policy_words=POLICY_WORDS, estimator_words=ESTIMATOR_WORDS)
