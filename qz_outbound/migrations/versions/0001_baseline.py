"""Baseline: the schema of the last release before migrations (commit d7efbdd).

A frozen copy of the table definitions of ``qz_outbound/schema.py``, ``sms/schema.py``,
``portal/schema.py`` and ``agent/schema.py`` as they were at d7efbdd: later changes to the models
never change this file, they are new revisions. PostgreSQL-only parts are written as SQLAlchemy
knows them: ``postgresql_partition_by`` (``mkt_segment_snapshot``, ``mkt_target``: list partitions
per cycle, created by the tasks), ``postgresql_with`` (fillfactor 70 on ``mkt_contact`` and
``sms_part``) and partial indexes (``*_where``).

``upgrade`` creates what is missing (``create_all(checkfirst=True)``) and sets the fillfactor with
``ALTER TABLE ... SET`` (a table created before the fillfactor was added to the models never got it).
On an empty database that is the whole schema; on a database of the release before migrations,
which ``qz_outbound.migrations.upgrade`` recognises and compares with :data:`metadata` first, it
adds what an older release did not have yet (tables, indexes, fillfactor) and nothing else.

Revision ID: 0001_baseline
Revises:
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_baseline"
down_revision = None
branch_labels = None
depends_on = None

metadata = sa.MetaData()
_TS = sa.DateTime(timezone=True)
_BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

# ------------------------------------------------------------------ qz_outbound/schema.py
# One row per segmented customer per cycle. Extra columns beyond the contract
# (status, M0 values, bundle state) are what targeting and HQ reports need
# without going back to the data mart.
mkt_segment_snapshot = sa.Table(
    "mkt_segment_snapshot",
    metadata,
    sa.Column("cycle_date", sa.Date, primary_key=True),
    sa.Column("msisdn", sa.String(11), primary_key=True),
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
    # PostgreSQL: one partition per cycle, so a re-run swaps a partition and retention drops one
    postgresql_partition_by="LIST (cycle_date)",
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

# ------------------------------------------------------------------ qz_outbound/sms/schema.py
sms_outbox = sa.Table(
    "sms_outbox",
    metadata,
    sa.Column("contact_id", sa.String(32), primary_key=True),  # = mkt_contact.contact_id
    sa.Column("cycle_date", sa.Date, nullable=False),
    sa.Column("county_code", sa.String(6), nullable=False),
    sa.Column("msisdn", sa.String(11), nullable=False),
    sa.Column("campaign_code", sa.String(16), nullable=False),
    sa.Column("template", sa.String(64), nullable=False),
    sa.Column("text", sa.Text),                       # the rendered SMS; null when rendering failed
    sa.Column("parts", sa.SmallInteger, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text),                     # why failed/skipped/rejected/in_doubt
    sa.Column("claim_token", sa.String(32)),          # the sender run holding a 'sending' row
    sa.Column("queued_at", _TS, nullable=False),
    sa.Column("submitted_at", _TS),                   # the SMSC accepted the first part
    sa.Column("done_at", _TS),                        # final receipt (delivered/undelivered)
)
sa.Index("ix_sms_outbox_queue", sms_outbox.c.county_code, sms_outbox.c.state, sms_outbox.c.cycle_date)
sa.Index("ix_sms_outbox_claim", sms_outbox.c.claim_token)
sa.Index("ix_sms_outbox_msisdn", sms_outbox.c.msisdn)

sms_part = sa.Table(
    "sms_part",
    metadata,
    sa.Column("contact_id", sa.String(32), primary_key=True),
    sa.Column("part_no", sa.SmallInteger, primary_key=True),   # 1-based
    sa.Column("esm_class", sa.SmallInteger, nullable=False),
    sa.Column("data_coding", sa.SmallInteger, nullable=False),
    # The exact short_message bytes (UDH included), so a retry after a throttle
    # sends the same part with the same concatenation reference.
    sa.Column("payload", sa.LargeBinary, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("message_id", sa.String(65)),           # as the SMSC gave it in submit_sm_resp
    # The same id read as a decimal and as a hexadecimal number (decimal
    # strings), so a receipt quoting it in the other form still matches.
    sa.Column("mid_dec", sa.String(80)),
    sa.Column("mid_hex", sa.String(80)),
    sa.Column("attempts", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("submitted_at", _TS),                   # written to the SMSC (the sender's clock)
    sa.Column("accepted_at", _TS),
    sa.Column("error", sa.String(40)),                # last SMPP status that was not OK
    sa.Column("receipt_at", _TS),
    sa.Column("receipt_stat", sa.String(8)),          # DELIVRD, UNDELIV, EXPIRED, ...
    # Each part is updated after its insert (submit_sm_resp, then its receipts): room on the page lets
    # PostgreSQL update in place (HOT, no index touched) when no indexed column changes, as for a receipt.
    postgresql_with={"fillfactor": 70},
)
sa.Index("ix_sms_part_mid", sms_part.c.message_id)
sa.Index("ix_sms_part_mid_dec", sms_part.c.mid_dec)
sa.Index("ix_sms_part_mid_hex", sms_part.c.mid_hex)

# Every deliver_sm, stored before it is acknowledged. Effects (receipt matched,
# reply classified, opt-out written) are applied idempotently, because the SMSC
# redelivers what was not acknowledged.
sms_inbound = sa.Table(
    "sms_inbound",
    metadata,
    sa.Column("inbound_id", _BIGID, primary_key=True, autoincrement=True),
    sa.Column("received_at", _TS, nullable=False),
    sa.Column("kind", sa.String(8), nullable=False),          # 'receipt' | 'reply'
    sa.Column("source_addr", sa.String(32)),                  # receipt: the handset; reply: the sender
    sa.Column("dest_addr", sa.String(32)),
    sa.Column("esm_class", sa.SmallInteger),
    sa.Column("data_coding", sa.SmallInteger),
    sa.Column("receipted_id", sa.String(65)),
    sa.Column("receipt_stat", sa.String(8)),
    sa.Column("body", sa.Text),                               # decoded text (reply text or receipt text)
    sa.Column("processed_at", _TS),                           # null: effect not applied yet
    sa.Column("outcome", sa.String(16)),  # matched | accept | opt_out | unrecognised | unmatched | ambiguous
    sa.Column("contact_id", sa.String(32)),
    sa.Column("part_no", sa.SmallInteger),
)
sa.Index(
    "ix_sms_inbound_pending", sms_inbound.c.inbound_id,
    sqlite_where=sms_inbound.c.processed_at.is_(None),
    postgresql_where=sms_inbound.c.processed_at.is_(None),
)

# One row per send_batch run: a lease on the county's outbox (at most one live
# sender per county) and what the next run needs to settle a crashed one.
sms_sender_run = sa.Table(
    "sms_sender_run",
    metadata,
    sa.Column("token", sa.String(32), primary_key=True),
    sa.Column("county_code", sa.String(6), nullable=False),
    sa.Column("cycle_date", sa.Date, nullable=False),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("boot_id", sa.String(64), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("journal", sa.Text, nullable=False),
    sa.Column("started_at", _TS, nullable=False),
    sa.Column("heartbeat_at", _TS, nullable=False),
    sa.Column("finished_at", _TS),
    sa.Column("outcome", sa.Text),
    sa.Column("live", sa.SmallInteger),   # 1 while running, null when finished (unique per county)
)
sa.Index("ux_sms_sender_run_live", sms_sender_run.c.county_code, sms_sender_run.c.live, unique=True)

# ------------------------------------------------------------------ qz_outbound/portal/schema.py
# Accepted call outcomes, one row per outcome reported by a county. The outcome loop applies them
# to mkt_contact (response, responded_at); refused_do_not_call is an opt-out at once (mkt_opt_out).
mkt_call_outcome = sa.Table(
    "mkt_call_outcome",
    metadata,
    sa.Column("contact_id", sa.String(32), primary_key=True),
    sa.Column("outcome", sa.String(24), primary_key=True),
    sa.Column("called_at", _TS, primary_key=True),       # when the call was made (the upload time if not given)
    sa.Column("cycle_date", sa.Date, nullable=False),
    sa.Column("county_code", sa.String(6), nullable=False),
    sa.Column("msisdn", sa.String(11), nullable=False),
    sa.Column("campaign_code", sa.String(16), nullable=False),
    sa.Column("note", sa.Text),
    sa.Column("upload_id", sa.String(40), nullable=False),
    sa.Column("loaded_at", _TS, nullable=False),
)

# Every file a county uploaded, archived as it arrived; the same file again is recognised by its hash.
portal_upload = sa.Table(
    "portal_upload",
    metadata,
    sa.Column("upload_id", sa.String(40), primary_key=True),
    sa.Column("county_code", sa.String(6), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("file_name", sa.Text, nullable=False),
    sa.Column("archive_path", sa.Text, nullable=False),
    sa.Column("uploaded_by", sa.String(64), nullable=False),
    sa.Column("uploaded_at", _TS, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # loaded | rejected (the file as a whole)
    sa.Column("error", sa.Text),                         # why the whole file was rejected
    sa.Column("rows_total", sa.Integer, nullable=False),
    sa.Column("rows_accepted", sa.Integer, nullable=False),
    sa.Column("rows_rejected", sa.Integer, nullable=False),
    sa.Column("rows_without_outcome", sa.Integer, nullable=False),   # rows not called yet (no outcome)
    sa.UniqueConstraint("county_code", "sha256", name="ux_portal_upload_file"),
)

# Rows of an upload that were not loaded, with the reason, for a person to fix and upload again.
portal_upload_reject = sa.Table(
    "portal_upload_reject",
    metadata,
    sa.Column("upload_id", sa.String(40), primary_key=True),
    sa.Column("row_no", sa.Integer, primary_key=True),   # as Excel numbers it (header = 1)
    sa.Column("contact_id", sa.Text),
    sa.Column("outcome", sa.Text),
    sa.Column("reason", sa.Text, nullable=False),
)

# Who downloaded or uploaded what, when, and how many rows.
portal_audit = sa.Table(
    "portal_audit",
    metadata,
    sa.Column("audit_id", _BIGID, primary_key=True, autoincrement=True),
    sa.Column("at", _TS, nullable=False),
    sa.Column("user_name", sa.String(64), nullable=False),
    sa.Column("action", sa.String(16), nullable=False),  # download | upload | denied
    sa.Column("county_code", sa.String(6)),
    sa.Column("object", sa.Text),
    sa.Column("rows", sa.Integer),
)

# ------------------------------------------------------------------ qz_outbound/agent/schema.py
mkt_agent_event = sa.Table(
    "mkt_agent_event", metadata,
    sa.Column("event_id", sa.String(24), primary_key=True),
    sa.Column("msisdn", sa.String(11), nullable=False),
    sa.Column("agent_id", sa.String(16), nullable=False),
    sa.Column("amount_yuan", sa.Numeric(10, 2), nullable=False),
    sa.Column("event_time", sa.DateTime, nullable=False),       # Asia/Shanghai local, as in the data mart
    sa.Column("copies", sa.Integer, nullable=False),            # rows with this id in the data mart (>1: duplicates)
    # what the data mart said when the event was read
    sa.Column("agent_known", sa.SmallInteger, nullable=False),
    sa.Column("agent_msisdn", sa.String(11)),
    sa.Column("outlet_name", sa.Text),
    sa.Column("agent_county", sa.String(6)),
    sa.Column("customer_status", sa.String(16)),                # null: not a subscriber
    sa.Column("customer_county", sa.String(6)),
    sa.Column("dnd", sa.SmallInteger, nullable=False),
    sa.Column("complaint", sa.SmallInteger, nullable=False),
    sa.Column("ingested_at", _TS, nullable=False),
    # what became of it
    sa.Column("state", sa.String(12), nullable=False),          # pending | done
    sa.Column("claim_token", sa.String(32)),
    sa.Column("decided_at", _TS),
    sa.Column("outcome", sa.String(24)),                        # recommended | a reason
    sa.Column("campaign_code", sa.String(16)),
    sa.Column("product_code", sa.String(32)),
    sa.Column("contact_id", sa.String(32)),
)
sa.Index("ix_mkt_agent_event_pending", mkt_agent_event.c.state, mkt_agent_event.c.event_time)
sa.Index("ix_mkt_agent_event_time", mkt_agent_event.c.event_time)

mkt_personal_data = sa.Table(
    "mkt_personal_data", metadata,
    sa.Column("campaign_code", sa.String(16), primary_key=True),
    sa.Column("msisdn", sa.String(11), primary_key=True),
    sa.Column("fields", sa.Text, nullable=False),               # JSON object: field -> text
    sa.Column("source_file", sa.Text, nullable=False),
    sa.Column("row_no", sa.Integer, nullable=False),
    sa.Column("imported_at", _TS, nullable=False),
)

stg_agent_order = sa.Table(
    "stg_agent_order", metadata,
    sa.Column("order_id", sa.String(24), primary_key=True),
    sa.Column("month", sa.Date, nullable=False),                # the settlement month it was read for
    sa.Column("msisdn", sa.String(11), nullable=False),
    sa.Column("product_code", sa.String(32), nullable=False),
    sa.Column("order_time", sa.DateTime, nullable=False),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("agent_id", sa.String(16)),
)
sa.Index("ix_stg_agent_order", stg_agent_order.c.msisdn, stg_agent_order.c.product_code)

mkt_agent_commission = sa.Table(
    "mkt_agent_commission", metadata,
    sa.Column("order_id", sa.String(24), primary_key=True),     # an order is paid once
    sa.Column("contact_id", sa.String(32), nullable=False, unique=True),   # a recommendation is paid once
    sa.Column("month", sa.Date, nullable=False),
    sa.Column("agent_id", sa.String(16), nullable=False),
    sa.Column("county_code", sa.String(6), nullable=False),
    sa.Column("msisdn", sa.String(11), nullable=False),
    sa.Column("campaign_code", sa.String(16), nullable=False),
    sa.Column("product_code", sa.String(32), nullable=False),
    sa.Column("recommended_at", _TS, nullable=False),
    sa.Column("order_time", sa.DateTime, nullable=False),
    sa.Column("commission_yuan", sa.Numeric(10, 2), nullable=False),
    sa.Column("note", sa.Text),
)
sa.Index("ix_mkt_agent_commission_month", mkt_agent_commission.c.month, mkt_agent_commission.c.agent_id)

mkt_agent_grade = sa.Table(
    "mkt_agent_grade", metadata,
    sa.Column("month", sa.Date, primary_key=True),
    sa.Column("agent_id", sa.String(16), primary_key=True),
    sa.Column("county_code", sa.String(6), nullable=False),
    sa.Column("outlet_type", sa.String(20), nullable=False),
    sa.Column("customers_served", sa.Integer, nullable=False),
    sa.Column("floor_area_m2", sa.Float),
    sa.Column("conversions", sa.Integer, nullable=False),
    sa.Column("score", sa.Float, nullable=False),
    sa.Column("grade", sa.String(1), nullable=False),
)

# One agent recommendation per customer and day (the frequency rules allow fewer still); the
# database enforces it, so overlapping runs that decide at the same moment cannot both contact.
sa.Index(
    "ux_mkt_contact_agent", mkt_contact.c.cycle_date, mkt_contact.c.msisdn, unique=True,
    sqlite_where=mkt_contact.c.channel == "agent",
    postgresql_where=mkt_contact.c.channel == "agent",
)


# Tables created with ``WITH (fillfactor = ...)``: their rows are updated after insert (HOT updates).
FILLFACTOR = {"mkt_contact": 70, "sms_part": 70}


def upgrade() -> None:
    bind = op.get_bind()
    metadata.create_all(bind, checkfirst=True)
    # create_all makes a table's indexes only with the table: an index added to an existing table
    # (ux_mkt_contact_agent on mkt_contact) is created on its own
    for table in metadata.sorted_tables:
        for index in table.indexes:
            index.create(bind, checkfirst=True)
    if bind.dialect.name == "postgresql":
        for table, fillfactor in FILLFACTOR.items():
            op.execute(f"alter table {table} set (fillfactor = {fillfactor})")


def downgrade() -> None:
    # The baseline is the first schema: going below it means dropping marketing_db (restore a backup
    # instead, docs/runbook.md).
    raise NotImplementedError("no downgrade below the baseline")
