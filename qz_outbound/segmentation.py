"""Stock-customer segmentation (存量客户细分).

The rules live in ``include/sql/segment_customers.sql`` (one definition for
SQLite and PostgreSQL) and their numbers in ``config/segmentation.yaml``. This
module loads the config, works out the cycle's months, and lands the result in
``marketing_db.mkt_segment_snapshot``, replacing the cycle's rows atomically.

The three months of usage per customer (``include/sql/segment_usage.sql``) change when a
month closes, not daily, and grouping them is most of the cost: :func:`usage_pivot` builds
them once per M0 into ``mkt_usage_pivot`` and every cycle reads them from there for as long as
the data mart's usage rows for those months keep the fingerprint they were built from.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Literal

import sqlalchemy as sa
from pydantic import field_validator, model_validator
from sqlalchemy.engine import Engine

from qz_outbound import clock, config, db, schema
from qz_outbound.cycle import month_start, record_stage

log = logging.getLogger(__name__)

Dimension = Literal["spend", "voice", "data"]
SNAPSHOT_COLUMNS = [c.name for c in schema.mkt_segment_snapshot.columns]
USAGE_PIVOT = schema.mkt_usage_pivot.name
PIVOT_COLUMNS = [c.name for c in schema.mkt_usage_pivot.columns]
STABILITY_TYPES = ["0", "1", "21", "22", "23", "3", "41", "42", "43", "5"]
STATUSES = ("active", "suspended", "pre_cancel", "cancelled")


class StabilityRules(config.StrictModel):
    dimension_priority: list[Dimension]
    warning_change: Decimal
    declining_change: Decimal
    rising_change: Decimal
    pre_churn_statuses: list[Literal["suspended", "pre_cancel", "active"]]

    @field_validator("dimension_priority")
    @classmethod
    def _all_three_once(cls, v: list[str]) -> list[str]:
        if sorted(v) != ["data", "spend", "voice"]:
            raise ValueError("must list spend, voice and data, each once")
        return v

    @model_validator(mode="after")
    def _ordered(self) -> "StabilityRules":
        if not (self.warning_change < self.declining_change < 0 < self.rising_change):
            raise ValueError("need warning_change < declining_change < 0 < rising_change")
        if self.warning_change <= -1:
            raise ValueError("warning_change must be above -1 (a fall of 100% or more never happens)")
        return self


class TierRule(config.StrictModel):
    boundaries: list[Decimal]
    zero_tier: bool = False

    @field_validator("boundaries")
    @classmethod
    def _increasing(cls, v: list[Decimal]) -> list[Decimal]:
        if not v:
            raise ValueError("needs at least one boundary")
        if any(b <= a for a, b in zip(v, v[1:])):
            raise ValueError("boundaries must be strictly increasing")
        if v[0] <= 0:
            raise ValueError("boundaries must be positive")
        return v

    def tier_of(self, value) -> int:
        """Plain-Python reading of the tier rule (used by reports and tests)."""
        if self.zero_tier and value <= 0:
            return 0
        return 1 + sum(1 for b in self.boundaries if value >= b)


class Tiers(config.StrictModel):
    spend: TierRule
    voice: TierRule
    data: TierRule
    tenure: TierRule

    @field_validator("tenure")
    @classmethod
    def _no_zero_tenure(cls, v: TierRule) -> TierRule:
        if v.zero_tier:
            raise ValueError("tenure has no zero tier")
        return v


class SegmentationConfig(config.StrictModel):
    stability: StabilityRules
    tiers: Tiers
    snapshot_retention_days: int = 35
    parallel_slices: int = 2
    reuse_usage_pivot: bool = True

    def dimension_digit(self, dimension: str) -> str:
        """41/42/43 and 21/22/23 name the dimension by its place in the plan: spend 1, voice 2, data 3."""
        return {"spend": "1", "voice": "2", "data": "3"}[dimension]


def load_config(path: Path | None = None) -> SegmentationConfig:
    return config.load(SegmentationConfig, path or config.config_path("segmentation.yaml"))


def cycle_months(cycle_date: dt.date) -> tuple[dt.date, dt.date, dt.date]:
    """(M0, M1, M2): the last complete month before D's month, and the two before it."""
    return month_start(cycle_date, 1), month_start(cycle_date, 2), month_start(cycle_date, 3)


def query_params(cycle_date: dt.date) -> dict:
    m0, m1, m2 = cycle_months(cycle_date)
    return {
        "d": cycle_date.isoformat(), "m0": m0.isoformat(), "m1": m1.isoformat(), "m2": m2.isoformat(),
        "d_year": cycle_date.year, "d_month": cycle_date.month, "d_day": cycle_date.day,
    }


class BrokenExtract(ValueError):
    """The data mart's extract cannot be segmented as it is (the message names no customer)."""


def segment_customers(
    datamart: Engine, marketing: Engine, cycle_date: dt.date, cfg: SegmentationConfig | None = None
) -> int:
    """Segment every customer for ``cycle_date`` into ``mkt_segment_snapshot``.

    Idempotent: the cycle's rows are replaced in one transaction. Returns the
    number of customers segmented.
    """
    cfg = cfg or load_config()
    started = time.monotonic()
    pivot, how = usage_pivot(datamart, marketing, cycle_date, cfg)
    try:
        n = db.land_query(
            datamart, marketing, "segment_customers.sql", query_params(cycle_date),
            "mkt_segment_snapshot", SNAPSHOT_COLUMNS,
            cycle_date=cycle_date, context={"cfg": cfg, "usage_pivot": pivot}, slices=cfg.parallel_slices,
            # the pivot is in marketing_db: with the data mart in another database, the customers'
            # own columns are computed there and copied across to be joined to it
            relay="segment_base.sql" if pivot else None,
            # The slice predicate hides the row counts from the planner (it guesses 0.5% of each
            # table), so it sorts a million text keys per slice to group them, under the database's
            # collation; with the true counts it hashes, which is what this asks for (the query
            # has no ORDER BY: no sort is needed anywhere, the stage is indexed after the load).
            planner={"enable_sort": "off"},
        )
    except sa.exc.IntegrityError:
        # The database's own message quotes the duplicated key, a phone number: task logs are
        # readable by any viewer, so say what is wrong without it.
        raise BrokenExtract(
            f"the data mart's extract for {cycle_date} has a customer number more than once "
            "(subscriber rows must be unique by msisdn); nothing was segmented for this cycle. "
            "Ask the data mart team to fix the extract, then clear this task.") from None
    purge_old_snapshots(marketing, cycle_date, cfg.snapshot_retention_days)
    record_stage(marketing, cycle_date, "segment", n, time.monotonic() - started, detail=how)
    return n


def usage_fingerprint(datamart: Engine, cycle_date: dt.date) -> str:
    """The data mart's usage rows for the cycle's M2..M0, as ``include/sql/usage_fingerprint.sql``
    sums them up (per month: rows and a checksum; no customer data)."""
    with datamart.connect() as conn:
        rows = conn.execute(sa.text(db.render_sql("usage_fingerprint.sql", datamart.dialect.name)),
                            query_params(cycle_date)).all()
    return ";".join(f"{month}:{count}:{checksum}" for month, count, checksum in rows)


@contextmanager
def _pivot_lock(marketing: Engine, m0: dt.date):
    """One check-and-build of a month's pivot at a time (PostgreSQL; SQLite has one writer anyway)."""
    if marketing.dialect.name != "postgresql":
        yield
        return
    with marketing.begin() as conn:   # held until this transaction ends, whatever the other connections do
        conn.execute(sa.text("select pg_advisory_xact_lock(hashtext(:k))"), {"k": f"usage_pivot:{m0}"})
        yield


def pivot_reachable(datamart: Engine, marketing: Engine) -> bool:
    """Whether segmentation can read the usage pivot (in marketing_db) together with the data mart's
    tables: one statement reads both, or the data mart's rows can be relayed into marketing_db."""
    return db.one_statement_reads_both(datamart, marketing) or db.can_relay(datamart, marketing)


def usage_pivot(datamart: Engine, marketing: Engine, cycle_date: dt.date,
                cfg: SegmentationConfig) -> tuple[str | None, str]:
    """The table segmentation reads the cycle's three months of usage from, current with the data
    mart, and a line for the operators saying how it came to be (counts only).

    ``(None, ...)`` when segmentation must group the usage itself: the pivot is switched off
    (``reuse_usage_pivot``), or marketing_db can neither read the data mart in one statement nor
    take rows from it into a temporary table (a data mart and marketing_db of different kinds).
    With the data mart in another PostgreSQL database the pivot is built there by COPY, and each
    cycle copies the customers' own columns across to join them to it (``db.land_query``'s relay).

    Otherwise the pivot of the cycle's M0 is reused when the fingerprint of the data mart's usage
    rows for M2..M0 equals the one it was built from, and rebuilt (atomically, the month's
    partition swapped in) when it is missing or they differ: a month still loading, a correction
    of a closed month, another data mart behind the connection. Every cycle pays for the
    fingerprint (a plain scan of the three months, no grouping); the first cycle of a month, or the
    first after a correction, also pays for the build.
    """
    if not cfg.reuse_usage_pivot:
        return None, "usage grouped in the cycle's own statement (reuse_usage_pivot: false)"
    if not pivot_reachable(datamart, marketing):
        return None, "usage grouped in the cycle's own statement (the data mart is another kind of database)"
    m0 = cycle_months(cycle_date)[0]
    src = schema.mkt_usage_pivot_source
    with _pivot_lock(marketing, m0):
        fingerprint = usage_fingerprint(datamart, cycle_date)
        with marketing.connect() as conn:
            built = conn.execute(sa.select(src.c.fingerprint, src.c.customers).where(src.c.usage_month == m0)).first()
            present = conn.execute(sa.select(sa.literal(1)).select_from(schema.mkt_usage_pivot)
                                   .where(schema.mkt_usage_pivot.c.usage_month == m0).limit(1)).first()
        if built is not None and built.fingerprint == fingerprint and (present or built.customers == 0):
            log.info("usage pivot of %s current with the data mart: reused (%d customers)", f"{m0:%Y-%m}",
                     built.customers)
            return USAGE_PIVOT, f"usage pivot of {m0:%Y-%m} reused ({built.customers} customers)"
        why = ("first cycle of these months" if built is None
               else "its rows were missing" if built.fingerprint == fingerprint
               else "the data mart's usage for these months changed")
        started = time.monotonic()
        n = db.land_query(
            datamart, marketing, "segment_usage.sql", query_params(cycle_date), USAGE_PIVOT, PIVOT_COLUMNS,
            cycle_date=m0, key_column="usage_month", slices=cfg.parallel_slices,
            planner={"enable_sort": "off"},   # as for the snapshot: hash, never sort, the slices' groups
        )
        seconds = time.monotonic() - started
        with marketing.begin() as conn:
            db.upsert(conn, src, dict(usage_month=m0, fingerprint=fingerprint, customers=n, seconds=round(seconds, 3),
                                      built_at=clock.now(), built_for=cycle_date),
                      key=("usage_month",), update=("fingerprint", "customers", "seconds", "built_at", "built_for"))
    # keep this month's pivot and the previous one (a cycle re-run across the month's turn)
    old = month_start(m0, 1)
    db.drop_cycles_before(marketing, USAGE_PIVOT, old, key_column="usage_month")
    with marketing.begin() as conn:
        conn.execute(src.delete().where(src.c.usage_month < old))
    log.info("usage pivot of %s rebuilt (%s): %d customers in %.1fs", f"{m0:%Y-%m}", why, n, seconds)
    return USAGE_PIVOT, f"usage pivot of {m0:%Y-%m} rebuilt ({why}): {n} customers in {seconds:.1f} s"


def purge_old_snapshots(marketing: Engine, cycle_date: dt.date, keep_days: int) -> None:
    db.drop_cycles_before(marketing, "mkt_segment_snapshot", cycle_date - dt.timedelta(days=keep_days))
