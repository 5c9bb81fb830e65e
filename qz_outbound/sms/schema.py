"""The SMS outbox, the inbound store and the sender runs, in ``marketing_db``.

Defined on the project's one :data:`qz_outbound.metadata.metadata`; the
migrations create them with the rest. States are documented in
``docs/sms-delivery.md``; in short:

``sms_outbox.state`` (one row per SMS, i.e. per SMS contact)
    ``queued`` → ``sending`` (claimed by a sender run) → ``submitted`` →
    ``delivered`` | ``undelivered``; or ``rejected`` (the SMSC refused it),
    ``skipped`` (opted out before submit), ``failed`` (the template did not
    render: never sent), ``in_doubt`` (some part may have reached the SMSC
    and its answer was lost: never resent, settled by receipts).

``sms_part.state`` (one row per SMPP part, the unit that is submitted)
    ``pending`` → ``accepted`` → ``delivered`` | ``undelivered``; or
    ``rejected``, ``skipped``, ``in_doubt``.
"""

from __future__ import annotations

import sqlalchemy as sa

from qz_outbound.metadata import metadata

_TS = sa.DateTime(timezone=True)
# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a bigint.
_BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

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
