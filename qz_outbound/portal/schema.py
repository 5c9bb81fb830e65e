"""Tables of the county portal, on the project's one metadata (created by the migrations)."""

from __future__ import annotations

import sqlalchemy as sa

from qz_outbound.metadata import metadata

_TS = sa.DateTime(timezone=True)
_BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

# Accepted call outcomes, one row per outcome reported by a county. The outcome loop applies them
# to mkt_contact (response, responded_at); refused_do_not_call is an opt-out at once (mkt_opt_out).
mkt_call_outcome = sa.Table(
    "mkt_call_outcome",
    metadata,
    sa.Column("contact_id", sa.String(32), primary_key=True),
    sa.Column("outcome", sa.String(24), primary_key=True),
    sa.Column("called_at", _TS, primary_key=True),       # when the call was made (the upload time if not given)
    # False when the file gave no time: the row is then identified by contact and outcome alone,
    # so the same list uploaded again as it is worked adds only what is new (docs/portal.md)
    sa.Column("called_at_given", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("cycle_date", sa.Date, nullable=False),
    sa.Column("county_code", sa.String(6), nullable=False),
    sa.Column("msisdn", sa.String(11), nullable=False),
    sa.Column("campaign_code", sa.String(16), nullable=False),
    sa.Column("note", sa.Text),
    sa.Column("upload_id", sa.String(40), nullable=False),
    sa.Column("loaded_at", _TS, nullable=False),
    sa.Column("agent_id", sa.String(16)),                # 坐席工号 (optional column of the upload)
    sa.Column("callback_on", sa.Date),                   # 回拨日期 the agent noted (callback only)
)
# a number's outcomes: wrong_number suppresses calls to it, a refusal stops its follow-ups
# (qz_outbound/callcentre.py), both looked up by number per candidate
sa.Index("ix_mkt_call_outcome_msisdn", mkt_call_outcome.c.msisdn, mkt_call_outcome.c.called_at)
# a county's recent outcomes (the redials and callbacks due: include/sql/call_followups.sql)
sa.Index("ix_mkt_call_outcome_county", mkt_call_outcome.c.county_code, mkt_call_outcome.c.cycle_date)

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
    # rows whose outcome an earlier upload already loaded (the list uploaded again as it is worked)
    sa.Column("rows_already_loaded", sa.Integer, nullable=False, server_default="0"),
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
