"""Tables the project owns in ``marketing_db``.

``mkt_segment_snapshot`` and ``mkt_contact`` are read by HQ reporting and keep
the columns of ``datamart.md``; the rest are the project's own. The tables
are created and changed by the Alembic revisions in ``qz_outbound/migrations``
(``qz-outbound db upgrade``; how to write one: ``docs/migrations.md``), never
at run time. A change here without a revision makes ``qz-outbound db check``
fail.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from qz_outbound.metadata import metadata


def _bytewise(text_type: type[sa.String], **kw) -> sa.types.TypeEngine:
    """``text_type(**kw)``, compared byte by byte on PostgreSQL (collation "C"): for a customer
    number that keys a partition of millions of rows, whose primary key is built every cycle.
    Under the database's collation PostgreSQL sorts text through the C library, without
    abbreviated keys: a 6.24 M-row cycle's key took 5.6–8.0 s under C.UTF-8, and 2.2–2.9 s as "C"
    leading the key (benchmarks/results/segmentation.md, 2026-12-03 13:00). Numbers are digits,
    so the order is the same. An equality with a column of the default collation is compared as
    "C" (no error, the same rows)."""
    return text_type(**kw).with_variant(text_type(**kw, collation="C"), "postgresql")


# One row per segmented customer per cycle. Extra columns beyond the contract
# (status, M0 values, bundle state) are what targeting and HQ reports need
# without going back to the data mart.
mkt_segment_snapshot = sa.Table(
    "mkt_segment_snapshot",
    metadata,
    sa.Column("cycle_date", sa.Date, primary_key=True),
    sa.Column("msisdn", _bytewise(sa.String, length=11), primary_key=True),
    sa.Column("county_code", sa.String(6), nullable=False),
    sa.Column("stability_type", sa.String(2), nullable=False),
    sa.Column("spend_tier", sa.SmallInteger, nullable=False),
    sa.Column("voice_tier", sa.SmallInteger, nullable=False),
    sa.Column("data_tier", sa.SmallInteger, nullable=False),
    sa.Column("tenure_tier", sa.SmallInteger, nullable=False),
    sa.Column("market_segment", sa.String(16)),
    sa.Column("segment_code", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("tenure_months", sa.Integer, nullable=False),
    sa.Column("spend_m0", sa.Float, nullable=False),
    sa.Column("voice_m0", sa.Float, nullable=False),
    sa.Column("data_m0", sa.Float, nullable=False),
    sa.Column("bundle_kind", sa.String(4)),  # 'hard', 'soft' or null: strongest active bundle at D
    sa.Column("open_date", sa.Date, nullable=False),
    sa.Column("customer_name", sa.Text),
    # the plan's targeting attributes and table dimensions (revision 0004_plan)
    sa.Column("terminal_type", sa.String(8)),         # subscriber.terminal_type: 5G, 4G, feature, unknown
    sa.Column("sms_m0", sa.Integer),                  # SMS sent in M0 (the plan's dimension 40)
    sa.Column("has_hard_bundle", sa.SmallInteger),    # 1: a hard bundle active at D (also when a soft one is)
    sa.Column("has_soft_bundle", sa.SmallInteger),    # 1: a soft bundle active at D (also when a hard one is)
    sa.Column("has_package", sa.SmallInteger),        # 1: a bundle of type package active at D (package user)
    # PostgreSQL: one partition per cycle, so a re-run swaps a partition and retention drops one
    postgresql_partition_by="LIST (cycle_date)",
    # and within a partition cycle_date is one value: the key leads with msisdn, which sorts fast
    # (_bytewise) and serves a lookup by number across cycles. SQLite keeps every cycle in one
    # table and reads it by cycle: there the key leads with cycle_date (revision 0015).
    info={"postgresql_primary_key": ("msisdn", "cycle_date")},
)

# The three months of usage side by side per customer (include/sql/segment_usage.sql), built once
# for an M0 and read by every cycle of that month while the data mart's rows for M2..M0 keep the
# fingerprint they were built from (mkt_usage_pivot_source): the usage changes when a month closes,
# not daily, and grouping it is most of segmentation's cost (qz_outbound.segmentation.usage_pivot).
# Derived data: dropping it costs one rebuild.
mkt_usage_pivot = sa.Table(
    "mkt_usage_pivot",
    metadata,
    sa.Column("usage_month", sa.Date, primary_key=True),   # M0, the first day of the month
    # text, not 11 characters: the data mart's usage rows are taken as they come (a malformed number
    # in usage_monthly matches no subscriber and changes nothing, as when the usage is grouped inline)
    sa.Column("msisdn", _bytewise(sa.Text), primary_key=True),
    sa.Column("spend_m0", sa.Float),
    sa.Column("spend_s", sa.Float),     # M1 + M2
    sa.Column("voice_m0", sa.Float),
    sa.Column("voice_s", sa.Float),
    sa.Column("data_m0", sa.Float),
    sa.Column("data_s", sa.Float),
    sa.Column("sms_m0", sa.BigInteger),
    # PostgreSQL: one partition per M0, so a rebuild swaps a partition in and retention drops one;
    # its key as the snapshot's (the month's build indexes 6.4 M numbers)
    postgresql_partition_by="LIST (usage_month)",
    info={"postgresql_primary_key": ("msisdn", "usage_month")},
)

# What each usage pivot was built from: the fingerprint of the data mart's usage rows for its three
# months (include/sql/usage_fingerprint.sql; counts and checksums, no customer data).
mkt_usage_pivot_source = sa.Table(
    "mkt_usage_pivot_source",
    metadata,
    sa.Column("usage_month", sa.Date, primary_key=True),
    sa.Column("fingerprint", sa.Text, nullable=False),
    sa.Column("customers", sa.BigInteger, nullable=False),
    sa.Column("seconds", sa.Float, nullable=False),
    sa.Column("built_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("built_for", sa.Date, nullable=False),     # the cycle that built it
)

# What each stage of a cycle did: counts only (never customer data), read by
# the README summary, HQ's report and the next issues' volume checks.
mkt_cycle_stage = sa.Table(
    "mkt_cycle_stage",
    metadata,
    sa.Column("cycle_date", sa.Date, primary_key=True),
    sa.Column("stage", sa.String(32), primary_key=True),
    sa.Column("rows", sa.BigInteger, nullable=False),
    sa.Column("seconds", sa.Float, nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("detail", sa.Text),
)


# Staged each cycle from the data mart (the exclusions and holdings targeting
# needs), so arbitration is set work inside marketing_db whatever the data
# mart is. Replaced whole every cycle; `cycle_date` says which cycle filled it.
stg_exclusion = sa.Table(
    "stg_exclusion", metadata,
    sa.Column("cycle_date", sa.Date, nullable=False),
    sa.Column("msisdn", sa.String(11), nullable=False),
    sa.Column("reason", sa.String(16), nullable=False),  # 'dnd' | 'complaint'
)
sa.Index("ix_stg_exclusion", stg_exclusion.c.msisdn)
stg_holding = sa.Table(
    "stg_holding", metadata,
    sa.Column("cycle_date", sa.Date, nullable=False),
    sa.Column("msisdn", sa.String(11), nullable=False),
    sa.Column("product_code", sa.String(32), nullable=False),
)
sa.Index("ix_stg_holding", stg_holding.c.msisdn, stg_holding.c.product_code)
stg_bundle_end = sa.Table(
    "stg_bundle_end", metadata,
    sa.Column("cycle_date", sa.Date, nullable=False),
    sa.Column("msisdn", sa.String(11), nullable=False),
    sa.Column("bundle_type", sa.String(16), nullable=False),
    sa.Column("end_date", sa.Date, nullable=False),
)
sa.Index("ix_stg_bundle_end", stg_bundle_end.c.msisdn)

# The cycle's target list (write-audit-publish: written here, validated, then
# published per county into mkt_contact). One row per customer: the winning
# offer after arbitration, with its control-group and A/B decision.
mkt_target = sa.Table(
    "mkt_target", metadata,
    sa.Column("cycle_date", sa.Date, primary_key=True),
    sa.Column("msisdn", sa.String(11), primary_key=True),
    sa.Column("county_code", sa.String(6), nullable=False),
    sa.Column("campaign_code", sa.String(16), nullable=False),
    sa.Column("product_code", sa.String(32), nullable=False),
    sa.Column("priority", sa.Integer, nullable=False),
    sa.Column("stability_type", sa.String(2), nullable=False),
    sa.Column("spend_tier", sa.SmallInteger, nullable=False),
    sa.Column("segment_code", sa.String(16), nullable=False),
    sa.Column("is_control", sa.SmallInteger, nullable=False),
    sa.Column("variant", sa.String(8)),
    sa.Column("call_eligible", sa.SmallInteger, nullable=False),  # campaign allows calls and the call rule holds
    sa.Column("sms_allowed", sa.SmallInteger, nullable=False),
    # The arbitration log (docs/learning.md), what the offline evaluation replays: how the offer was
    # chosen ('fixed' priorities, 'learned' expected value, 'explore': drawn at random among the
    # customer's eligible campaigns), the probability that this campaign was the one chosen given
    # the customer's eligible set, and what each policy alone would have chosen. Null before the
    # learning loop (revision 0008_offer_value).
    sa.Column("arm", sa.String(8)),
    sa.Column("propensity", sa.Float),
    sa.Column("fixed_code", sa.String(16)),
    sa.Column("learned_code", sa.String(16)),
    postgresql_partition_by="LIST (cycle_date)",
)

# The contact history (营销轨迹): one row per offer made. contact_id is a
# deterministic hash (never the number itself), so re-runs produce the same ids.
# status vocabulary (see docs/contact-status.md once the sender lands):
#   planned -> queued -> submitted -> delivered | undelivered
#   held_out (control), skipped (blocked at send time, e.g. opt-out), called, ...
mkt_contact = sa.Table(
    "mkt_contact",
    metadata,
    sa.Column("contact_id", sa.String(32), primary_key=True),
    sa.Column("cycle_date", sa.Date, nullable=False),
    sa.Column("msisdn", sa.String(11), nullable=False),
    sa.Column("county_code", sa.String(6), nullable=False),
    sa.Column("campaign_code", sa.String(16), nullable=False),
    sa.Column("product_code", sa.String(32)),
    sa.Column("variant", sa.String(8)),
    sa.Column("channel", sa.String(8), nullable=False),
    sa.Column("segment_code", sa.String(16)),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("sent_at", sa.DateTime(timezone=True)),
    sa.Column("delivered_at", sa.DateTime(timezone=True)),
    sa.Column("responded_at", sa.DateTime(timezone=True)),
    sa.Column("response", sa.String(32)),
    sa.Column("converted_at", sa.DateTime(timezone=True)),
    sa.Column("order_id", sa.String(24)),
    sa.Column("agent_id", sa.String(16)),
    # A call-centre follow-up (docs/outcomes.md "Call-centre operations"): a customer back on a later
    # working day's call list after no_answer / busy (redial) or a callback. Not a new offer: the
    # frequency caps and the funnel's contacts count only first attempts (first_contact_id null).
    sa.Column("attempt", sa.SmallInteger),              # 2, 3, ... (null: the offer's first attempt)
    sa.Column("first_contact_id", sa.String(32)),       # the offer's first contact (null: this is it)
    sa.Column("call_kind", sa.String(8)),               # 'redial' | 'callback' (null: a new customer)
    # status and the sent/delivered/responded/converted times are filled in later, none indexed:
    # room on the page lets PostgreSQL update those rows in place (HOT).
    postgresql_with={"fillfactor": 70},
)
# datamart.md: at most one row per (cycle_date, msisdn) for the daily channels.
sa.Index(
    "ux_mkt_contact_daily", mkt_contact.c.cycle_date, mkt_contact.c.msisdn, unique=True,
    sqlite_where=mkt_contact.c.channel.in_(["sms", "call", "control"]),
    postgresql_where=mkt_contact.c.channel.in_(["sms", "call", "control"]),
)
sa.Index("ix_mkt_contact_msisdn", mkt_contact.c.msisdn, mkt_contact.c.created_at)
sa.Index("ix_mkt_contact_first", mkt_contact.c.first_contact_id)

# Customers who opted out through this system (SMS reply TD, or a call-centre
# refusal with "do not call again"). Permanent; checked before every submit.
mkt_opt_out = sa.Table(
    "mkt_opt_out",
    metadata,
    sa.Column("msisdn", sa.String(11), primary_key=True),
    sa.Column("opted_out_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("source", sa.String(16), nullable=False),  # 'sms_reply' | 'call_outcome'
    sa.Column("detail", sa.Text),
)


# BOSS orders staged from the data mart, each once; contact_id is the contact credited with it.
stg_order = sa.Table(
    "stg_order",
    metadata,
    sa.Column("order_id", sa.String(24), primary_key=True),
    sa.Column("msisdn", sa.String(11), nullable=False),
    sa.Column("product_code", sa.String(32), nullable=False),
    sa.Column("order_time", sa.DateTime, nullable=False),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("agent_id", sa.String(16)),
    sa.Column("loaded_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("contact_id", sa.String(32)),          # the credited contact; null: no contact within the window
)
sa.Index("ix_stg_order_open", stg_order.c.msisdn, stg_order.c.product_code)

# Monthly bills (usage_monthly.spend_yuan) staged from the data mart for the marketing trajectory:
# a closed month is staged once; stg_bill_month says which months are in (a missing bill row in a
# staged month means zero, as in the data mart).
stg_bill = sa.Table(
    "stg_bill",
    metadata,
    sa.Column("msisdn", sa.String(11), primary_key=True),
    sa.Column("month", sa.Date, primary_key=True),
    sa.Column("spend_yuan", sa.Numeric(12, 2), nullable=False),
)
stg_bill_month = sa.Table(
    "stg_bill_month",
    metadata,
    sa.Column("month", sa.Date, primary_key=True),
    sa.Column("rows", sa.Integer, nullable=False),
    sa.Column("staged_at", sa.DateTime(timezone=True), nullable=False),
)

# Campaigns paused by the outcome loop (config/outcomes.yaml auto_pause; off by default): the
# targeting leaves them out from the next cycle on. HQ lifts a pause by deleting the row (runbook).
mkt_campaign_pause = sa.Table(
    "mkt_campaign_pause",
    metadata,
    sa.Column("campaign_code", sa.String(16), primary_key=True),
    sa.Column("paused_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("cycle_date", sa.Date, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
)

# Campaigns whose rows of a cycle's target list validation held back (a check about one campaign
# failed: docs/validation.md): their rows stay in mkt_target, publish_county leaves them out, HQ is
# alerted. Replaced by every audit of the cycle.
mkt_target_hold = sa.Table(
    "mkt_target_hold",
    metadata,
    sa.Column("cycle_date", sa.Date, primary_key=True),
    sa.Column("campaign_code", sa.String(16), primary_key=True),
    sa.Column("rows", sa.Integer, nullable=False),       # the campaign's rows in the cycle's list
    sa.Column("reason", sa.Text, nullable=False),        # the failed checks' summaries (codes and counts only)
    sa.Column("held_at", sa.DateTime(timezone=True), nullable=False),
)


# What HQ steers by (economics.md, docs/economics.md): one row per cycle date × campaign × slice, the
# columns exactly as economics.md fixes them; rewritten as after-months of bills arrive. Month rows
# (cumulative over a month's cycles) carry the month's first day and a slice starting `month/`;
# rows across campaigns (the code-digit slices) carry campaign_code `*`.
mkt_campaign_economics = sa.Table(
    "mkt_campaign_economics",
    metadata,
    sa.Column("cycle_date", sa.Date, primary_key=True),
    sa.Column("campaign_code", sa.String(16), primary_key=True),
    sa.Column("slice", sa.String(48), primary_key=True),
    sa.Column("after_months", sa.SmallInteger, nullable=False),   # 0: not yet measurable
    sa.Column("contacted", sa.Integer, nullable=False),
    sa.Column("control", sa.Integer, nullable=False),
    sa.Column("conversion_uplift", sa.Float),
    sa.Column("incremental_arpu", sa.Float),       # yuan per customer per month
    sa.Column("arpu_ci_low", sa.Float),
    sa.Column("arpu_ci_high", sa.Float),
    sa.Column("incremental_revenue", sa.Float),    # yuan
    sa.Column("customers_kept", sa.Float),
    sa.Column("cost", sa.Float),                   # yuan: contact + offer + commission
    sa.Column("roi", sa.Float),                    # null: no effect measured
)

# The latest `subscriber` snapshot's status and market segment (economics: retention per arm, the
# market slice), replaced whole by every economics run.
stg_subscriber = sa.Table(
    "stg_subscriber",
    metadata,
    sa.Column("msisdn", sa.String(11), primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("market_segment", sa.String(16)),
)

# The learning loop (docs/learning.md): what an offer is expected to earn, per campaign and cell
# (stability type x spend tier x market segment, '(none)' for no market), as measured before the
# cycle whose arbitration reads it. uplift is the conversion uplift (contacted rate - control rate)
# shrunk toward the campaign's overall uplift (empirical Bayes); expected_value = uplift x
# value_per_conversion - expected_cost, yuan per offer made. Rewritten whole for a cycle by a re-run.
# Besides the cells with history, each campaign has its own row (stability_type '*', spend_tier 0,
# market_segment '*'): what a cell without history reads (include/sql/offer_value.sql).
mkt_offer_value = sa.Table(
    "mkt_offer_value",
    metadata,
    sa.Column("cycle_date", sa.Date, primary_key=True),
    sa.Column("campaign_code", sa.String(16), primary_key=True),
    sa.Column("stability_type", sa.String(2), primary_key=True),
    sa.Column("spend_tier", sa.SmallInteger, primary_key=True),
    sa.Column("market_segment", sa.String(16), primary_key=True),
    sa.Column("contacted", sa.Integer, nullable=False),          # offers made in the cell (not control)
    sa.Column("control", sa.Integer, nullable=False),            # control customers in the cell
    sa.Column("conv_contacted", sa.Integer, nullable=False),
    sa.Column("conv_control", sa.Integer, nullable=False),
    sa.Column("uplift_raw", sa.Float),                          # null: no contacted or no control
    sa.Column("uplift", sa.Float, nullable=False),              # shrunk; the campaign's prior where no data
    sa.Column("uplift_sd", sa.Float),
    sa.Column("value_per_conversion", sa.Float, nullable=False),  # yuan (economics)
    sa.Column("expected_cost", sa.Float, nullable=False),         # yuan per offer made
    sa.Column("expected_value", sa.Float, nullable=False),        # yuan per offer made
)

# The offline evaluation of the learning loop (docs/learning.md "Offline evaluation and guard rails"):
# per evaluation day, what the fixed priorities and the learned policy would each have earned per offer
# over the look-back window of logged cycles (inverse propensity weighting), and the paired difference
# learned - fixed, with its standard error and interval. Replaced whole by a re-run of the day.
mkt_policy_evaluation = sa.Table(
    "mkt_policy_evaluation",
    metadata,
    sa.Column("evaluated_on", sa.Date, primary_key=True),
    sa.Column("policy", sa.String(16), primary_key=True),      # fixed | learned | learned-fixed
    sa.Column("estimator", sa.String(8), primary_key=True),    # ipw | snipw
    sa.Column("window_start", sa.Date, nullable=False),        # the logged cycles replayed
    sa.Column("window_end", sa.Date, nullable=False),
    sa.Column("cycles", sa.Integer, nullable=False),
    sa.Column("estimate", sa.Float),                           # yuan per offer; null: no logged rows
    sa.Column("se", sa.Float),
    sa.Column("ci_low", sa.Float),
    sa.Column("ci_high", sa.Float),
    sa.Column("confidence", sa.Float, nullable=False),
    sa.Column("n", sa.Integer, nullable=False),                # logged treated rows with a propensity
    sa.Column("matched", sa.Integer, nullable=False),          # rows whose logged offer is the policy's choice
    sa.Column("ess", sa.Float),                                # effective sample size (sum w)^2 / sum w^2
    sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
)

# Budgets (docs/budgets-kpi.md). The cost each cycle commits per campaign and county, written by
# the budget step before publishing (replaced by a re-run of the cycle): the month's committed cost
# is the sum over its cycles. Expected conversions are fractional (contacts x expected rate).
mkt_budget_commit = sa.Table(
    "mkt_budget_commit",
    metadata,
    sa.Column("cycle_date", sa.Date, primary_key=True),
    sa.Column("campaign_code", sa.String(16), primary_key=True),
    sa.Column("county_code", sa.String(6), primary_key=True),
    sa.Column("sms_contacts", sa.Integer, nullable=False),
    sa.Column("sms_parts", sa.Integer, nullable=False),
    sa.Column("calls", sa.Integer, nullable=False),
    sa.Column("expected_conversions", sa.Float, nullable=False),
    sa.Column("committed_yuan", sa.Float, nullable=False),
    sa.Column("cut_rows", sa.Integer, nullable=False),        # rows of the list excluded with reason budget
)

# Rows of a cycle's target list the budget step excluded (reason ``budget``): publish_county leaves
# them out, the target audit shows the reason. Replaced by a re-run of the budget step.
mkt_budget_cut = sa.Table(
    "mkt_budget_cut",
    metadata,
    sa.Column("cycle_date", sa.Date, primary_key=True),
    sa.Column("msisdn", sa.String(11), primary_key=True),
    sa.Column("campaign_code", sa.String(16), nullable=False),
    sa.Column("county_code", sa.String(6), nullable=False),
    sa.Column("is_control", sa.SmallInteger, nullable=False),
    sa.Column("by_county", sa.SmallInteger, nullable=False),   # 1: the county's budget, 0: the campaign's
)

# Budget alerts sent to HQ, each once per month, campaign (county '' = the campaign's own budget,
# else that county's) and threshold (80, 100): a re-run finds its row and does not alert again.
# sent_at is set once the alert went out; a row without it is sent by the next run.
mkt_budget_alert = sa.Table(
    "mkt_budget_alert",
    metadata,
    sa.Column("month", sa.Date, primary_key=True),
    sa.Column("campaign_code", sa.String(16), primary_key=True),
    sa.Column("county_code", sa.String(6), primary_key=True),
    sa.Column("threshold", sa.SmallInteger, primary_key=True),
    sa.Column("cycle_date", sa.Date, nullable=False),
    sa.Column("share", sa.Float, nullable=False),
    sa.Column("sent_at", sa.DateTime(timezone=True)),
)


# Customer tags (docs/learning.md "Customer tags"): demand, preference and promotion tags derived
# from the contact history by config/tags.yaml's rules (include/sql/customer_tags.sql), refreshed by
# every cycle before its target list (outbound_daily refresh_customer_tags): a re-run gives the same
# rows, a tag whose evidence aged out is removed. first_tagged: the cycle that first gave the tag
# (kept while it holds); last_evidence: the cycle of the latest contact that is evidence for it.
mkt_customer_tag = sa.Table(
    "mkt_customer_tag",
    metadata,
    sa.Column("msisdn", sa.String(11), primary_key=True),
    sa.Column("tag", sa.String(32), primary_key=True),
    sa.Column("first_tagged", sa.Date, nullable=False),
    sa.Column("last_evidence", sa.Date, nullable=False),
    sa.Column("evidence_count", sa.Integer, nullable=False),
    sa.Column("updated_cycle", sa.Date, nullable=False),
)


def ensure_schema(engine: Engine) -> None:
    """Bring ``engine``'s database to the head revision (``qz-outbound db upgrade``).

    For tests, benchmarks and the command line: tasks, the SMS receiver and the
    portal never call it (``check_config`` fails when ``marketing_db`` is behind).
    """
    from qz_outbound import migrations

    migrations.upgrade(engine)
