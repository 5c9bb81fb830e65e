"""Offline evaluation of the learning loop (docs/learning.md "Offline evaluation and guard rails").

Before the learned arbitration may decide a cycle, past cycles are replayed: the arbitration log on
``mkt_target`` says which campaign each customer was offered and with what probability (the
``propensity``: ε exploration spreads every customer's chance over all of their eligible campaigns),
and the contact history says whether the customer converted. For a deterministic target policy π
(the fixed priorities, or the learned best expected value) the inverse propensity weighted estimate

    V̂(π) = (1/N) Σ 1[π's choice = logged campaign] · r / propensity

is unbiased for what π would have earned per offer, with reward r = (converted − control baseline) ×
value per conversion − expected cost, yuan (``include/sql/policy_evaluation.sql``). The difference
learned − fixed is estimated per row (paired: d = (w_learned − w_fixed) · r) with a normal interval;
the self-normalised estimates (Σ w r / Σ w, delta-method errors) are stored alongside.

:func:`evaluate` computes the day's figures from the database's per-cycle sums, :func:`write_evaluation`
replaces the day's rows of ``mkt_policy_evaluation``, and :func:`learned_allowed` is the gate on the
learned / blend modes: only when the latest evaluation's difference interval lies above zero on
enough matched rows. Counts and yuan figures only; nothing about a customer leaves the database.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from pathlib import Path
from typing import Literal

import pandas as pd
import sqlalchemy as sa
from pydantic import Field
from sqlalchemy.engine import Engine

from qz_outbound import clock, config, db, schema

log = logging.getLogger(__name__)

FIXED, LEARNED, DIFFERENCE = "fixed", "learned", "learned-fixed"
IPW, SNIPW = "ipw", "snipw"


class ShareReport(config.StrictModel):
    min_change_pp: float = Field(default=2.0, ge=0, le=100)
    min_cell_change_yuan: float = Field(default=0.1, ge=0)
    max_cells: int = Field(default=10, ge=1, le=1000)


class EvaluationConfig(config.StrictModel):
    lookback_days: int = Field(default=60, ge=1, le=800)
    skip_recent_days: int = Field(default=14, ge=0, le=365)
    confidence: float = Field(default=0.95, gt=0.5, lt=1)
    min_matched: int = Field(default=500, ge=1)
    max_age_days: int = Field(default=7, ge=1, le=365)
    baseline: Literal["control", "none"] = "control"
    share_report: ShareReport = ShareReport()


def load_evaluation_config(path: Path | None = None) -> EvaluationConfig:
    return config.load(EvaluationConfig, path or config.config_path("evaluation.yaml"))


def window(day: dt.date, cfg: EvaluationConfig) -> tuple[dt.date, dt.date]:
    """The logged cycles replayed on ``day``: first and last cycle date."""
    return day - dt.timedelta(days=cfg.lookback_days), day - dt.timedelta(days=cfg.skip_recent_days)


GROUP = ["cycle_date", "campaign_code", "stability_type", "spend_tier"]
BASE = ["vpc", "base_n", "base_conv"]


def cycle_sums(marketing: Engine, first: dt.date, last: dt.date, cfg: EvaluationConfig) -> pd.DataFrame:
    """Per logged cycle of ``first`` .. ``last``, campaign and cell (stability type x spend tier): the
    counts and sums of ``policy_evaluation.sql``."""
    sql = db.render_sql("policy_evaluation.sql", marketing.dialect.name, baseline=cfg.baseline == "control")
    with marketing.connect() as conn:
        return pd.read_sql(db.date_binds(sql, "a", "b"), conn, params={"a": first, "b": last})


def _z(confidence: float) -> float:
    from scipy import stats

    return float(stats.norm.ppf(0.5 + confidence / 2))


def _row(policy: str, estimator: str, estimate, se, z: float, n: int, matched: int, ess) -> dict:
    ok = estimate is not None and se is not None and not math.isnan(estimate) and not math.isnan(se)
    return {"policy": policy, "estimator": estimator, "estimate": estimate if ok else None,
            "se": se if ok else None, "ci_low": estimate - z * se if ok else None,
            "ci_high": estimate + z * se if ok else None, "n": int(n), "matched": int(matched),
            "ess": None if ess is None or math.isnan(ess) else float(ess)}


def _mean_se(total: float, squares: float, n: int) -> tuple[float, float]:
    """Mean of per-row terms and its standard error from their sum and sum of squares."""
    if n < 2:
        return math.nan, math.nan
    mean = total / n
    var = max(squares - total * total / n, 0.0) / (n - 1)
    return mean, math.sqrt(var / n)


def estimates(sums: pd.DataFrame, cfg: EvaluationConfig) -> list[dict]:
    """The figures of one evaluation from the per-cycle sums: IPW and self-normalised IPW for the fixed
    and the learned policy, and their difference learned − fixed (paired per row)."""
    s = sums.drop(columns=GROUP + BASE).astype(float).sum() if not sums.empty else None
    z = _z(cfg.confidence)
    if s is None or s["n"] < 2:
        n = 0 if s is None else int(s["n"])
        return [_row(p, e, None, None, z, n, 0, None) for p in (FIXED, LEARNED, DIFFERENCE) for e in (IPW, SNIPW)]
    n = int(s["n"])
    # The control baseline of a group is estimated from its control customers: its sampling variance
    # (p~(1 - p~)/(m + 2), p~ = (conversions + 1)/(m + 2): never zero on a small group) reaches an
    # estimate through the weight the group's rows give it, d estimate / d baseline = -sum(w) vpc / n.
    g = sums.astype({"vpc": float, "base_n": float, "base_conv": float})
    if cfg.baseline == "control":
        m = g["base_n"]
        pt = (g["base_conv"] + 1) / (m + 2)
        bvar = (pt * (1 - pt) / (m + 2)).where(m > 0, 0.0)
    else:
        bvar = g["vpc"] * 0.0

    def baseline_var(weights: pd.Series) -> float:
        return float(((weights.astype(float) * g["vpc"]) ** 2 * bvar).sum())

    out = []
    sn = {}
    for policy, k in ((FIXED, "f"), (LEARNED, "l")):
        w, w2, wr, w2r, w2r2 = (float(s[f"s_w{k}{x}"]) for x in ("", "2", "r", "2r", "2r2"))
        matched = int(s[f"matched_{k}"])
        ess = w * w / w2 if w2 > 0 else math.nan
        # IPW: the per-row terms x = w r; sum x^2 = sum w^2 r^2
        mean, se = _mean_se(wr, w2r2, n)
        se = math.sqrt(se * se + baseline_var(g[f"s_w{k}"] / n))
        out.append(_row(policy, IPW, mean, se, z, n, matched, ess))
        # self-normalised: V = sum w r / sum w; delta method sqrt(sum w^2 (r - V)^2) / sum w
        if w > 0:
            v = wr / w
            se_sn = math.sqrt(max(w2r2 - 2 * v * w2r + v * v * w2, 0.0) / (w * w) + baseline_var(g[f"s_w{k}"] / w))
        else:
            v = se_sn = math.nan
        sn[k] = (v, w)
        out.append(_row(policy, SNIPW, v, se_sn, z, n, matched, ess))
    matched = int(s["matched_l"])
    differing = int(s["differing"])
    mean, se = _mean_se(float(s["s_d"]), float(s["s_d2"]), n)
    se = math.sqrt(se * se + baseline_var((g["s_wl"] - g["s_wf"]) / n))
    out.append(_row(DIFFERENCE, IPW, mean, se, z, n, matched, float(differing)))
    (vl, wl), (vf, wf) = sn["l"], sn["f"]
    if wl > 0 and wf > 0:
        # influence terms psi = w_l (r - V_l) / mean(w_l) - w_f (r - V_f) / mean(w_f); var = sum psi^2 / n^2
        ml, mf = wl / n, wf / n
        a = (float(s["s_wl2r2"]) - 2 * vl * float(s["s_wl2r"]) + vl * vl * float(s["s_wl2"])) / (ml * ml)
        b = (float(s["s_wf2r2"]) - 2 * vf * float(s["s_wf2r"]) + vf * vf * float(s["s_wf2"])) / (mf * mf)
        c = (float(s["s_wlfr2"]) - (vl + vf) * float(s["s_wlfr"]) + vl * vf * float(s["s_wlf"])) / (ml * mf)
        se_sn = math.sqrt(max(a + b - 2 * c, 0.0) / (n * n) + baseline_var(g["s_wl"] / wl - g["s_wf"] / wf))
        out.append(_row(DIFFERENCE, SNIPW, vl - vf, se_sn, z, n, matched, float(differing)))
    else:
        out.append(_row(DIFFERENCE, SNIPW, None, None, z, n, matched, float(differing)))
    return out


def evaluate(marketing: Engine, day: dt.date, cfg: EvaluationConfig | None = None) -> pd.DataFrame:
    """The evaluation of ``day`` (not stored): one row per policy and estimator."""
    cfg = cfg or load_evaluation_config()
    first, last = window(day, cfg)
    sums = cycle_sums(marketing, first, last, cfg)
    frame = pd.DataFrame(estimates(sums, cfg))
    frame.insert(0, "evaluated_on", day)
    frame["window_start"], frame["window_end"] = first, last
    frame["cycles"] = int(sums["cycle_date"].nunique()) if not sums.empty else 0
    frame["confidence"] = cfg.confidence
    return frame


def write_evaluation(marketing: Engine, day: dt.date, cfg: EvaluationConfig | None = None) -> dict:
    """Evaluate ``day`` and replace its rows of ``mkt_policy_evaluation``. Returns counts and figures
    (no customer data): cycles and rows replayed, rows matched, the difference and whether the gate opens."""
    cfg = cfg or load_evaluation_config()
    frame = evaluate(marketing, day, cfg)
    t = schema.mkt_policy_evaluation
    now = clock.now()
    rows = [{**{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}, "computed_at": now}
            for r in frame.to_dict("records")]
    with marketing.begin() as conn:
        conn.execute(t.delete().where(t.c.evaluated_on == day))
        conn.execute(t.insert(), rows)
    allowed, reason = learned_allowed(marketing, day, cfg)
    diff = next(r for r in rows if r["policy"] == DIFFERENCE and r["estimator"] == IPW)
    result = {"cycles": int(frame["cycles"].iloc[0]), "rows": int(diff["n"]), "matched_learned": int(diff["matched"]),
              "difference": diff["estimate"], "learned_allowed": allowed}
    log.info("policy evaluation %s: %s; learned allowed: %s (%s)", day, result, allowed, reason)
    return result


def latest_evaluation(marketing: Engine, day: dt.date) -> pd.DataFrame:
    """The rows of the latest evaluation on or before ``day`` (empty: none yet)."""
    t = schema.mkt_policy_evaluation
    with marketing.connect() as conn:
        latest = conn.execute(sa.select(sa.func.max(t.c.evaluated_on)).where(t.c.evaluated_on <= day)).scalar()
        if latest is None:
            return pd.DataFrame(columns=[c.name for c in t.columns])
        return pd.read_sql(sa.select(t).where(t.c.evaluated_on == latest).order_by(t.c.policy, t.c.estimator), conn)


def _date(v) -> dt.date:
    return v if isinstance(v, dt.date) and not isinstance(v, dt.datetime) else pd.Timestamp(v).date()


# why the gate is open or shut: English (logs, the mode switch) and Chinese (HQ's page)
REASONS = {
    "none": ("no offline evaluation yet: the learned policy has not been replayed on logged cycles",
             "尚无离线评估：学习策略还没有在历史周期上回放"),
    "no_difference": ("the latest evaluation has no learned - fixed difference", "最近一次评估没有“学习 − 固定”的差值"),
    "stale": ("the latest evaluation ({on}) is older than {max_age} days", "最近一次评估（{on}）已超过 {max_age} 天"),
    "few": ("too few matched rows: {matched} logged offers agree with the learned policy, {need} needed "
            "(evaluation of {on})",
            "匹配行太少：历史推荐中与学习策略一致的只有 {matched} 条，至少需要 {need} 条（{on} 的评估）"),
    "unestimated": ("the difference learned - fixed could not be estimated (evaluation of {on})",
                    "无法估计“学习 − 固定”的差值（{on} 的评估）"),
    "better": ("learned beats fixed with confidence: {text}", "学习策略以置信度优于固定优先级：{text_zh}"),
    "worse": ("learned is worse than fixed with confidence: {text}", "学习策略以置信度差于固定优先级：{text_zh}"),
    "unsure": ("learned is not better than fixed with confidence (the interval includes zero): {text}",
               "学习策略未能以置信度优于固定优先级（区间包含零）：{text_zh}"),
}


def gate(engine: Engine, day: dt.date, cfg: EvaluationConfig | None = None) -> tuple[bool, str, dict]:
    """The gate's decision on ``day``: (allowed, reason key of :data:`REASONS`, the facts it names)."""
    cfg = cfg or load_evaluation_config()
    frame = latest_evaluation(engine, day)
    if frame.empty:
        return False, "none", {}
    row = frame[(frame["policy"] == DIFFERENCE) & (frame["estimator"] == IPW)]
    if row.empty:
        return False, "no_difference", {}
    r = row.iloc[0]
    on = _date(r["evaluated_on"])
    facts = {"on": on.isoformat(), "max_age": cfg.max_age_days, "matched": int(r["matched"]), "need": cfg.min_matched}
    if (day - on).days > cfg.max_age_days:
        return False, "stale", facts
    if int(r["matched"]) < cfg.min_matched:
        return False, "few", facts
    if pd.isna(r["ci_low"]) or pd.isna(r["ci_high"]):
        return False, "unestimated", facts
    est, lo, hi, level = float(r["estimate"]), float(r["ci_low"]), float(r["ci_high"]), f"{float(r['confidence']):.0%}"
    facts["text"] = (f"learned - fixed = {est:+.4f} yuan per offer, {level} interval [{lo:+.4f}, {hi:+.4f}] "
                     f"on {int(r['n'])} rows ({int(r['matched'])} matched; evaluation of {on})")
    facts["text_zh"] = (f"学习 − 固定 = {est:+.4f} 元/次推荐，{level} 区间 [{lo:+.4f}, {hi:+.4f}]，"
                        f"{int(r['n'])} 行（匹配 {int(r['matched'])} 行；{on} 的评估）")
    if lo > 0:
        return True, "better", facts
    return False, ("worse" if hi < 0 else "unsure"), facts


def reason_text(key: str, facts: dict, chinese: bool = False) -> str:
    return REASONS[key][1 if chinese else 0].format(**facts)


def learned_allowed(engine: Engine, day: dt.date, cfg: EvaluationConfig | None = None) -> tuple[bool, str]:
    """Whether the learned (or blend) arbitration may run on ``day``, and why in plain words: only when
    the latest evaluation (at most ``max_age_days`` old) finds learned − fixed above zero with confidence
    (the interval's low end > 0) on at least ``min_matched`` rows matching the learned policy."""
    allowed, key, facts = gate(engine, day, cfg)
    return allowed, reason_text(key, facts)


def arbitration_gate(engine: Engine, day: dt.date, learning=None,
                     cfg: EvaluationConfig | None = None) -> tuple[bool, str]:
    """What the cycle's target list step passes as ``allow_learned`` (config/learning.yaml's mode,
    through :func:`learned_allowed`): mode fixed needs no gate (False, the learned choice is still
    logged); learned and blend run only when the offline evaluation allows, else the cycle falls
    back to fixed priorities and says why (counts and estimates only, no customer)."""
    from qz_outbound.learning.values import load_learning_config

    learning = learning or load_learning_config()
    if learning.mode == "fixed":
        return False, "mode fixed: fixed priorities decide (the learned choice is logged for the evaluation)"
    allowed, why = learned_allowed(engine, day, cfg)
    return allowed, (f"mode {learning.mode} " + ("runs: " if allowed else "falls back to fixed priorities: ") + why)
