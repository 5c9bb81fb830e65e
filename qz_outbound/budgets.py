"""Monthly campaign budgets (economics.md "Budgets"; docs/budgets-kpi.md).

Before a cycle publishes, :func:`apply_budgets` computes in the database what each campaign's share
of the validated target list would cost (``include/sql/budget_cut.sql``):

* contacts planned, split as ``publish_county.sql`` splits them: calls within the county's
  capacity in call order, the rest SMS where the campaign allows it; a call costs
  ``call_dialled``, an SMS its parts x ``sms_part`` (``config/channels.yaml``);
* expected conversions x the campaign's ``offer_cost_yuan``; the expected conversion rate is the
  campaign's own (converted / contacted over the months before this one, fixed for the month, so
  every re-run of a day decides the same) once it has ``min_history_contacts`` contacts, else its
  ``conversion_prior``;
* plus what the campaign committed in the month's earlier cycles (``mkt_budget_commit``).

A campaign (or a county of it) that would overrun keeps a prefix of its customers in call order
(``_call_order.sql``: priority, spend tier high to low, number) up to the budget; the rest are
written to ``mkt_budget_cut`` (reason ``budget`` in the target audit) and never published. Control
customers cost nothing but are cut at the same point of the order, so the control arm stays
comparable with the contacted customers that remain (the control share is kept).

HQ is alerted once per month, campaign (or county budget) and threshold when the committed share
passes 80% and 100% (``mkt_budget_alert``; a re-run finds its row and stays silent).
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Annotated

import pandas as pd
import sqlalchemy as sa
from pydantic import Field
from sqlalchemy.engine import Engine

from qz_outbound import clock, config, db, schema
from qz_outbound.campaigns import Campaign
from qz_outbound.counties import county_names

log = logging.getLogger(__name__)

Yuan = Annotated[float, Field(strict=True, ge=0)]
THRESHOLDS = (80, 100)   # per cent of a budget at which HQ is alerted (economics.md)


class CampaignBudget(config.StrictModel):
    monthly_yuan: Yuan
    counties: dict[str, Yuan] = Field(default_factory=dict)   # county code -> its monthly budget
    conversion_prior: float = Field(ge=0, le=1)


class BudgetConfig(config.StrictModel):
    min_history_contacts: int = Field(default=500, ge=1)
    campaigns: dict[str, CampaignBudget] = Field(default_factory=dict)


def load_budgets(path: Path | None = None, library: list[Campaign] | None = None) -> BudgetConfig:
    """config/budgets.yaml, checked: amounts numbers >= 0, counties known, every campaign code one of
    the library's (``file:line: field: message`` for each mistake)."""
    path = Path(path or config.config_path("budgets.yaml"))
    if not path.exists():
        raise config.ConfigError([(str(path), None, "", "file not found")])
    data, index = config.parse_yaml(path)
    cfg = config.validate(BudgetConfig, data, path, index)
    if library is None:
        from qz_outbound import campaigns

        library = campaigns.load_library()
    known = {c.code for c in library}
    problems = [(str(path), index.get(("campaigns", code)), f"campaigns.{code}",
                 "unknown campaign code (no such file in config/campaigns/)")
                for code in cfg.campaigns if code not in known]
    problems += [(str(path), index.get(("campaigns", code, "counties", county)),
                  f"campaigns.{code}.counties.{county}", "unknown county code (see config/counties.yaml)")
                 for code, b in cfg.campaigns.items() for county in b.counties if county not in county_names()]
    if problems:
        raise config.ConfigError(problems)
    return cfg


# ---------------------------------------------------------------- the step before publishing

def month_of(day: dt.date) -> dt.date:
    return day.replace(day=1)


def sms_parts(library: list[Campaign]) -> list[tuple[str, str, int]]:
    """(campaign, variant, SMS parts) of each campaign's texts, rendered as publishing renders them: what
    an SMS offer costs, for the budgets and the learning loop's offer values alike
    (a text naming the customer with a stand-in name)."""
    from qz_outbound.sms.render import RenderError, render_sms
    from qz_outbound.sms.settings import load_sms_config

    message_cfg = load_sms_config().message
    out = []
    for c in library:
        for label in c.variant_labels:
            try:
                sms = render_sms(c.sms_variants[label].template,
                                 {"offer": c.offer, "campaign_name": c.name, "customer_name": "客户"}, message_cfg)
                out.append((c.code, label, len(sms.parts)))
            except RenderError:   # publishing records it as a failed message: nothing is sent
                out.append((c.code, label, 0))
    return out


def _conversion_rates(marketing: Engine, cycle_date: dt.date, cfg: BudgetConfig,
                      library: list[Campaign]) -> dict[str, float]:
    """The expected conversion rate per campaign: its history before the month, else the prior."""
    sql = db.render_sql("budget_history.sql", marketing.dialect.name)
    with marketing.connect() as conn:
        history = {r.campaign_code: (r.contacted, r.converted) for r in conn.execute(
            db.date_binds(sql, "month_start"), {"month_start": month_of(cycle_date)})}
    rates = {}
    for c in library:
        contacted, converted = history.get(c.code, (0, 0))
        budget = cfg.campaigns.get(c.code)
        prior = budget.conversion_prior if budget else 0.0
        rates[c.code] = converted / contacted if contacted >= cfg.min_history_contacts else prior
    return rates


def apply_budgets(marketing: Engine, cycle_date: dt.date, library: list[Campaign], *,
                  cfg: BudgetConfig | None = None, channels=None, costs=None) -> dict[str, int]:
    """Decide the cycle's budget cuts and record its committed cost (idempotent on the cycle).

    Returns counts only: rows cut, campaigns capped, alerts pending."""
    from qz_outbound.costs import load_contact_costs
    from qz_outbound.targeting import load_channels

    cfg = cfg or load_budgets(library=library)
    channels = channels or load_channels()
    costs = costs or load_contact_costs()
    dialect = marketing.dialect.name
    rates = _conversion_rates(marketing, cycle_date, cfg, library)
    parts = sms_parts(library)
    context = {
        "campaigns": [{"code": c.code, "offer_cost": float(c.offer_cost_yuan), "rate": rates[c.code]}
                      for c in library],
        "parts": [(code, [(v, n) for c, v, n in parts if c == code])
                  for code in dict.fromkeys(c for c, _, _ in parts)],
        "capacity": sorted(channels.call_capacity.items()),
        "budgets": [{"code": code, "county": "", "yuan": b.monthly_yuan} for code, b in cfg.campaigns.items()]
        + [{"code": code, "county": county, "yuan": yuan}
           for code, b in cfg.campaigns.items() for county, yuan in b.counties.items()],
        "costs": costs,
    }
    params = {"d": cycle_date, "month_start": month_of(cycle_date)}
    with marketing.begin() as conn:
        if dialect == "postgresql":   # two runs of the same cycle at once: the second waits
            conn.execute(sa.text("select pg_advisory_xact_lock(hashtext(:k))"), {"k": f"budget:{cycle_date}"})
        for table in (schema.mkt_budget_cut, schema.mkt_budget_commit):
            conn.execute(table.delete().where(table.c.cycle_date == cycle_date))
        for step in ("cut", "commit"):
            conn.execute(db.date_binds(db.render_sql("budget_cut.sql", dialect, step=step, **context),
                                       "d", "month_start"), params)
        cut = conn.scalar(sa.select(sa.func.count()).select_from(schema.mkt_budget_cut)
                          .where(schema.mkt_budget_cut.c.cycle_date == cycle_date))
        capped = conn.scalar(sa.select(sa.func.count(sa.distinct(schema.mkt_budget_cut.c.campaign_code)))
                             .where(schema.mkt_budget_cut.c.cycle_date == cycle_date))
    pending = record_alerts(marketing, cycle_date, cfg)
    log.info("budgets %s: %s rows cut in %s campaigns, %s alerts pending", cycle_date, cut, capped, len(pending))
    return {"cut": int(cut or 0), "campaigns_capped": int(capped or 0), "alerts": len(pending)}


def budget_use(marketing: Engine, month: dt.date, cfg: BudgetConfig | None = None) -> pd.DataFrame:
    """Per configured budget of ``month``: campaign_code, county_code (None: the campaign's own
    budget), budget_yuan, committed_yuan, share (committed / budget; None for a zero budget)."""
    cfg = cfg or load_budgets()
    month = month_of(month)
    end = (month + dt.timedelta(days=32)).replace(day=1)
    c = schema.mkt_budget_commit.c
    with marketing.connect() as conn:
        rows = conn.execute(sa.select(c.campaign_code, c.county_code, sa.func.sum(c.committed_yuan))
                            .where(c.cycle_date >= month, c.cycle_date < end)
                            .group_by(c.campaign_code, c.county_code)).all()
    by_county: dict[tuple[str, str], float] = {}
    for code, county, yuan in rows:
        by_county[(code, county)] = float(yuan or 0)
    out = []
    for code, b in sorted(cfg.campaigns.items()):
        total = sum(v for (k, _), v in by_county.items() if k == code)
        out.append((code, None, b.monthly_yuan, total))
        for county, yuan in sorted(b.counties.items()):
            out.append((code, county, yuan, by_county.get((code, county), 0.0)))
    frame = pd.DataFrame(out, columns=["campaign_code", "county_code", "budget_yuan", "committed_yuan"])
    frame["share"] = pd.Series([cm / bu if bu > 0 else None
                                for bu, cm in zip(frame["budget_yuan"], frame["committed_yuan"])], dtype=object)
    frame["county_code"] = pd.Series([c for _, c, _, _ in out], dtype=object)   # None stays None
    return frame


# ---------------------------------------------------------------- alerts

def record_alerts(marketing: Engine, cycle_date: dt.date, cfg: BudgetConfig) -> list[dict]:
    """Record each threshold the month's committed cost passed (once per month, budget and
    threshold) and return the alerts not yet sent. 100% also counts as passed when that budget cut
    rows (it is used up even if the last customer did not fit to the yuan)."""
    month = month_of(cycle_date)
    use = budget_use(marketing, month, cfg)
    cut = schema.mkt_budget_cut.c
    with marketing.connect() as conn:   # which budget ran out: a county's, or the campaign's own
        stopped = conn.execute(sa.select(cut.campaign_code, cut.county_code, cut.by_county)
                               .where(cut.cycle_date == cycle_date).distinct()).all()
    capped = {(code, county) for code, county, by_county in stopped if by_county}
    capped_campaigns = {code for code, _, by_county in stopped if not by_county}
    a = schema.mkt_budget_alert
    with marketing.begin() as conn:
        for r in use.itertuples(index=False):
            county = r.county_code or ""
            share = r.share if r.share is not None and r.share == r.share else (1.0 if r.committed_yuan > 0 else 0.0)
            used_up = (r.campaign_code in capped_campaigns) if not county else ((r.campaign_code, county) in capped)
            for threshold in THRESHOLDS:
                if share * 100 >= threshold - 1e-9 or (threshold == 100 and used_up):
                    db.upsert(conn, a, {"month": month, "campaign_code": r.campaign_code, "county_code": county,
                                        "threshold": threshold, "cycle_date": cycle_date, "share": float(share),
                                        "sent_at": None}, key=["month", "campaign_code", "county_code", "threshold"])
        rows = conn.execute(sa.select(a).where(a.c.month == month, a.c.sent_at.is_(None))
                            .order_by(a.c.campaign_code, a.c.county_code, a.c.threshold)).all()
    return [dict(r._mapping) for r in rows]


def pending_alerts(marketing: Engine, cycle_date: dt.date) -> list:
    """The month's budget alerts not yet sent, as :class:`~qz_outbound.alerts.Alert` (codes and
    yuan only), each with the key :func:`mark_sent` takes."""
    from qz_outbound.alerts import Alert

    a = schema.mkt_budget_alert
    month = month_of(cycle_date)
    with marketing.connect() as conn:
        rows = conn.execute(sa.select(a).where(a.c.month == month, a.c.sent_at.is_(None))
                            .order_by(a.c.campaign_code, a.c.county_code, a.c.threshold)).all()
    out = []
    for r in rows:
        where = f"campaign {r.campaign_code}" + (f" county {r.county_code}" if r.county_code else "")
        word = "used up" if r.threshold >= 100 else f"passed {r.threshold}%"
        out.append(((r.month, r.campaign_code, r.county_code, r.threshold), Alert(
            kind="budget", summary=f"budget {month:%Y-%m}: {where} {word} ({r.share:.0%} committed)",
            dag_id="outbound_daily", task_id="apply_budgets", logical_date=str(r.cycle_date),
            detail=f"{where}: {r.share:.1%} of its {month:%Y-%m} budget committed by cycle {r.cycle_date}"
                   + ("; further customers are excluded with reason budget" if r.threshold >= 100 else ""))))
    return out


def mark_sent(marketing: Engine, key: tuple) -> None:
    a = schema.mkt_budget_alert
    month, code, county, threshold = key
    with marketing.begin() as conn:
        conn.execute(a.update().where(a.c.month == month, a.c.campaign_code == code, a.c.county_code == county,
                                      a.c.threshold == threshold).values(sent_at=clock.now()))
