"""Customer tags (客户标签): demand, preference and promotion tags derived from the contact history.

``config/tags.yaml`` declares each tag: an ASCII ``code`` (what campaigns name in ``target.tags_any``
and ``target.tags_none``), a Chinese ``name`` (what the HQ trajectory lookup shows), and one or more
``rules`` over a small vocabulary of measures; the tag holds when any of its rules holds. A rule
counts the customer's contacts of the cycles in the last ``lookback_days`` (before the cycle) that
are evidence:

* ``outcome``: what became of the contact: ``converted`` (an order was credited to it),
  ``accepted`` (an SMS reply or a call outcome of acceptance), ``taken_up`` (accepted or converted),
  ``responded`` (any reply or call outcome, or a conversion), ``refused`` (a call refusal, also the
  do-not-call one), ``unanswered`` (a call not answered or busy), ``no_response`` (a delivered
  message with no reply and no conversion, at least ``no_response_after_days`` old);
* ``channels``: the contact's channel (sms, call, agent, control);
* ``campaign``: the campaign code's digits in words (type, benefit, requirement, reward: the
  campaign library's coding, :data:`qz_outbound.campaigns.CODE_DIGITS`), e.g. ``reward: [data]``;
* ``via_agent``: the conversion came through an agent shop (an agent-lane contact, or an order
  placed at an outlet);
* ``min_count``: at least this many such contacts;
* ``none_of``: and no contact of the same look-back matches this other measure (e.g. converts on
  calls, none of the SMS converted).

:func:`refresh_customer_tags` computes every tag in one statement (``include/sql/customer_tags.sql``)
and brings ``mkt_customer_tag`` to it: new tags inserted (``first_tagged`` = the cycle), held ones
updated, tags whose evidence aged out removed. A re-run of the cycle gives the same rows.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
from pathlib import Path
from typing import Literal

import sqlalchemy as sa
from pydantic import Field, field_validator, model_validator
from sqlalchemy.engine import Engine

from qz_outbound import campaigns, config, db, schema

log = logging.getLogger(__name__)

TAG_CODE = re.compile(r"^[a-z][a-z0-9_]{1,31}$")
Outcome = Literal["converted", "accepted", "taken_up", "responded", "refused", "unanswered", "no_response"]


class CampaignDigits(config.StrictModel):
    """Contacts of campaigns whose code says so (any listed word per digit; an omitted digit: any)."""

    type: list[Literal[tuple(campaigns.TYPES.values())]] | None = Field(default=None, min_length=1)
    benefit: list[Literal[tuple(campaigns.BENEFITS.values())]] | None = Field(default=None, min_length=1)
    requirement: list[Literal[tuple(campaigns.REQUIREMENTS.values())]] | None = Field(default=None, min_length=1)
    reward: list[Literal[tuple(campaigns.REWARDS.values())]] | None = Field(default=None, min_length=1)

    def filters(self) -> list[tuple[int, list[str]]]:
        """(1-based position in the code, the digits allowed) per restricted digit."""
        out = []
        for field, (pos, _meaning, values) in campaigns.CODE_DIGITS.items():
            words = getattr(self, field)
            if words:
                out.append((pos + 1, sorted(k for k, v in values.items() if v in words)))
        return out


class Measure(config.StrictModel):
    outcome: Outcome
    channels: list[Literal["sms", "call", "agent", "control"]] | None = Field(default=None, min_length=1)
    campaign: CampaignDigits | None = None
    via_agent: bool = False


class Rule(Measure):
    min_count: int = Field(default=1, ge=1, le=100)
    lookback_days: int = Field(ge=1, le=730)
    none_of: Measure | None = None


class Tag(config.StrictModel):
    code: str
    name: str = Field(min_length=2, max_length=16)
    description: str | None = None
    rules: list[Rule] = Field(min_length=1)

    @field_validator("code")
    @classmethod
    def _ascii(cls, v: str) -> str:
        if not TAG_CODE.match(v):
            raise ValueError("must be 2-32 lower-case ASCII letters, digits or _, starting with a letter "
                             "(e.g. responds_data)")
        return v


class TagsConfig(config.StrictModel):
    no_response_after_days: int = Field(default=7, ge=1, le=60)
    tags: list[Tag] = Field(default_factory=list)

    @model_validator(mode="after")
    def _distinct(self) -> "TagsConfig":
        codes = [t.code for t in self.tags]
        dup = sorted({c for c in codes if codes.count(c) > 1})
        if dup:
            raise ValueError(f"tag code(s) defined twice: {dup}")
        names = [t.name for t in self.tags]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"tag name(s) used twice: {dup}")
        return self

    def codes(self) -> set[str]:
        return {t.code for t in self.tags}

    def names(self) -> dict[str, str]:
        return {t.code: t.name for t in self.tags}


def tags_path() -> Path:
    return config.config_path("tags.yaml")


def load_tags(path: Path | None = None) -> TagsConfig:
    return config.load(TagsConfig, path or tags_path())


def tag_binds(cycle_date: dt.date, cfg: TagsConfig) -> dict[str, str]:
    """The bind parameters ``customer_tags.sql`` runs with: the cycle and each look-back's start."""
    params = {"d": cycle_date.isoformat(),
              "quiet_before": (cycle_date - dt.timedelta(days=cfg.no_response_after_days)).isoformat()}
    for t in cfg.tags:
        for r in t.rules:
            params[f"since_{r.lookback_days}"] = (cycle_date - dt.timedelta(days=r.lookback_days)).isoformat()
    return params


def render(dialect: str, cfg: TagsConfig) -> str:
    return db.render_sql("customer_tags.sql", dialect, tags=cfg.tags)


_TMP = "tmp_customer_tag"


def refresh_customer_tags(marketing: Engine, cycle_date: dt.date, cfg: TagsConfig | None = None) -> dict:
    """Bring ``mkt_customer_tag`` to the tags as of ``cycle_date`` (contacts of earlier cycles), in one
    transaction. Returns counts only: rows per tag, added, kept, removed."""
    from qz_outbound.cycle import record_stage

    cfg = cfg or load_tags()
    started = time.monotonic()
    dialect = marketing.dialect.name
    params = tag_binds(cycle_date, cfg)
    d = sa.bindparam("d", type_=sa.Date)
    match = f"{_TMP}.msisdn = mkt_customer_tag.msisdn and {_TMP}.tag = mkt_customer_tag.tag"
    with marketing.begin() as conn:
        if dialect == "postgresql":   # one refresh at a time (a re-run racing the scheduled run)
            conn.exec_driver_sql("lock table mkt_customer_tag in share row exclusive mode")
        conn.exec_driver_sql(f"drop table if exists {_TMP}")
        if cfg.tags:
            conn.execute(sa.text(f"create temporary table {_TMP} as\n" + render(dialect, cfg)), params)
        else:
            conn.exec_driver_sql(f"create temporary table {_TMP} (msisdn varchar(11), tag varchar(32), "
                                 "evidence_count integer, last_evidence date)")
        # the statements below look each row up by (msisdn, tag): without the index, a nested scan
        conn.exec_driver_sql(f"create index ix_{_TMP} on {_TMP} (msisdn, tag)")
        if dialect == "postgresql":
            conn.exec_driver_sql(f"analyze {_TMP}")
        removed = conn.execute(sa.text(
            f"delete from mkt_customer_tag where not exists (select 1 from {_TMP} where {match})")).rowcount
        kept = conn.execute(sa.text(
            f"update mkt_customer_tag set "
            f"evidence_count = (select {_TMP}.evidence_count from {_TMP} where {match}), "
            f"last_evidence = (select {_TMP}.last_evidence from {_TMP} where {match}), "
            f"updated_cycle = :d "
            f"where exists (select 1 from {_TMP} where {match})").bindparams(d), {"d": cycle_date}).rowcount
        added = conn.execute(sa.text(
            f"insert into mkt_customer_tag (msisdn, tag, first_tagged, last_evidence, evidence_count, updated_cycle) "
            f"select {_TMP}.msisdn, {_TMP}.tag, :d, {_TMP}.last_evidence, {_TMP}.evidence_count, :d from {_TMP} "
            f"where not exists (select 1 from mkt_customer_tag where {match})").bindparams(d),
            {"d": cycle_date}).rowcount
        per_tag = dict(conn.execute(sa.text(
            "select tag, count(*) from mkt_customer_tag group by tag")).all())
        conn.exec_driver_sql(f"drop table {_TMP}")
    counts = {"cycle_date": cycle_date.isoformat(), "rows": sum(per_tag.values()), "added": added,
              "kept": kept, "removed": removed,
              "per_tag": {t.code: int(per_tag.get(t.code, 0)) for t in cfg.tags}}
    record_stage(marketing, cycle_date, "customer_tags", counts["rows"], time.monotonic() - started,
                 detail=f"{added} added, {removed} removed")
    log.info("customer tags for %s: %s rows (%s added, %s kept, %s removed)", cycle_date, counts["rows"],
             added, kept, removed)
    return counts


def customer_tags(marketing: Engine, msisdn: str, cfg: TagsConfig | None = None) -> list[dict]:
    """One customer's tags for the trajectory lookup: code, Chinese name, since, latest evidence, count."""
    t = schema.mkt_customer_tag
    with marketing.connect() as conn:
        rows = conn.execute(sa.select(t.c.tag, t.c.first_tagged, t.c.last_evidence, t.c.evidence_count,
                                      t.c.updated_cycle).where(t.c.msisdn == msisdn)
                            .order_by(t.c.first_tagged, t.c.tag)).all()
    if cfg is None:
        try:
            cfg = load_tags()
        except config.ConfigError:
            cfg = TagsConfig()
    names = cfg.names()
    return [{"tag": r.tag, "name": names.get(r.tag, r.tag), "first_tagged": r.first_tagged,
             "last_evidence": r.last_evidence, "evidence_count": r.evidence_count,
             "updated_cycle": r.updated_cycle} for r in rows]
