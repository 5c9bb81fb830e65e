"""The SMS outbox: messages recorded before they are submitted, and their states.

:func:`queue_messages` renders each SMS contact's text and records the message
and its parts (``queued``). Senders then claim messages (``sending``), and the
state of every part and message moves as documented in
:mod:`qz_outbound.sms.schema` and ``docs/sms-delivery.md``.

The message state is always derived from its parts (:func:`derive_state`),
by the sender while it holds the message and by the receipt processor after.
``mkt_contact.status`` follows the message state for channel ``sms``.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from qz_outbound import clock, optout
from qz_outbound.schema import mkt_contact
from qz_outbound.sms.render import SMS_TEMPLATE_DIR, RenderError, render_sms, with_reference
from qz_outbound.sms.schema import sms_outbox, sms_part
from qz_outbound.sms.settings import SmsConfig, load_sms_config

log = logging.getLogger(__name__)

# Message states (sms_outbox.state), which mkt_contact.status mirrors for SMS.
QUEUED, SENDING, SUBMITTED, DELIVERED, UNDELIVERED = "queued", "sending", "submitted", "delivered", "undelivered"
REJECTED, SKIPPED, FAILED, IN_DOUBT = "rejected", "skipped", "failed", "in_doubt"
# Part states (sms_part.state).
PENDING, ACCEPTED = "pending", "accepted"

_CHUNK = 500


def chunks(seq: Sequence, size: int = _CHUNK):
    for i in range(0, len(seq), size):
        yield seq[i:i + size]


# A message's state from its parts' states, in order: the first rule that holds gives the state
# (state, "any" | "all" of the parts, in these part states); none: MESSAGE_STATE_OTHERWISE.
# The one definition: derive_state applies it in Python (the sender), and the receipts' set
# statement renders it as a CASE over the parts (include/sql/receipt_apply.sql, step recompute).
MESSAGE_STATE_RULES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (QUEUED, "any", (PENDING,)),                  # a part still to send
    (SKIPPED, "all", (SKIPPED,)),
    (REJECTED, "any", (REJECTED,)),
    (IN_DOUBT, "any", (IN_DOUBT,)),
    (DELIVERED, "all", (DELIVERED,)),
    (UNDELIVERED, "all", (DELIVERED, UNDELIVERED)),
)
MESSAGE_STATE_OTHERWISE = SUBMITTED


def derive_state(part_states: Iterable[str]) -> str:
    """A message's state from its parts' states (``queued`` while any part is still to send, or
    without parts): the first of :data:`MESSAGE_STATE_RULES` that holds."""
    states = list(part_states)
    if not states:
        return QUEUED
    for state, quantifier, among in MESSAGE_STATE_RULES:
        if (any if quantifier == "any" else all)(s in among for s in states):
            return state
    return MESSAGE_STATE_OTHERWISE


def message_id_keys(message_id: str) -> tuple[str | None, str | None]:
    """``(as decimal, as hexadecimal)``: the id read as a number both ways, in decimal digits.

    A receipt may quote the id of submit_sm_resp in the other base (``1A2B`` vs
    ``6699``); both readings are stored so either form finds the part.
    """
    raw = message_id.strip().lower()
    dec = str(int(raw, 10)) if raw.isdigit() and len(raw) <= 40 else None
    try:
        hexv = str(int(raw, 16)) if raw and len(raw) <= 64 else None
    except ValueError:
        hexv = None
    return dec, hexv


# ---------------------------------------------------------------- queueing

@dataclass(frozen=True)
class SmsToQueue:
    """One SMS contact to render: its ``mkt_contact`` id, the template and the values."""

    contact_id: str
    template: str
    context: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class QueueResult:
    queued: int = 0
    failed: int = 0          # the template did not render: see sms_outbox.reason
    skipped: int = 0         # opted out already
    already: int = 0         # in the outbox from an earlier run: left as it is
    missing: int = 0         # no such SMS contact in mkt_contact

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def queue_messages(
    engine: Engine,
    messages: Iterable[SmsToQueue | Mapping[str, Any]],
    *,
    sms_config: SmsConfig | None = None,
    template_dir=SMS_TEMPLATE_DIR,
) -> QueueResult:
    """Render and record the SMS of the given contacts (channel ``sms`` rows of ``mkt_contact``).

    Idempotent: a contact already in the outbox is left untouched (a re-run
    never re-renders, so never changes, a message that may have been sent).
    A contact that opted out is recorded as ``skipped``; a template that does
    not render for a customer is recorded as ``failed`` with the reason, and
    nothing is sent for it. ``mkt_contact.status`` follows.
    """
    cfg = sms_config or load_sms_config()
    items = [m if isinstance(m, SmsToQueue) else SmsToQueue(**m) for m in messages]
    result = QueueResult()
    now = clock.now()
    with engine.begin() as conn:
        for batch in chunks(items):
            ids = [m.contact_id for m in batch]
            contacts = {
                r.contact_id: r for r in conn.execute(
                    sa.select(mkt_contact.c.contact_id, mkt_contact.c.cycle_date, mkt_contact.c.county_code,
                              mkt_contact.c.msisdn, mkt_contact.c.campaign_code)
                    .where(mkt_contact.c.contact_id.in_(ids), mkt_contact.c.channel == "sms"))
            }
            existing = set(conn.scalars(sa.select(sms_outbox.c.contact_id).where(sms_outbox.c.contact_id.in_(ids))))
            opted = optout.is_opted_out(conn, (c.msisdn for c in contacts.values()))
            outbox_rows, part_rows, status_rows = [], [], []
            for item in batch:
                contact = contacts.get(item.contact_id)
                if contact is None:
                    result.missing += 1
                    continue
                if item.contact_id in existing:
                    result.already += 1
                    continue
                existing.add(item.contact_id)
                row = dict(contact_id=contact.contact_id, cycle_date=contact.cycle_date,
                           county_code=contact.county_code, msisdn=contact.msisdn,
                           campaign_code=contact.campaign_code, template=item.template,
                           text=None, parts=0, reason=None, claim_token=None, queued_at=now,
                           submitted_at=None, done_at=None)
                if contact.msisdn in opted:
                    row.update(state=SKIPPED, reason="opt_out")
                    result.skipped += 1
                else:
                    try:
                        sms = with_reference(render_sms(item.template, item.context, cfg.message, template_dir),
                                             item.contact_id, cfg.message.max_parts)
                    except RenderError as exc:
                        row.update(state=FAILED, reason=f"render_error: {exc.reason}")
                        result.failed += 1
                    else:
                        row.update(state=QUEUED, text=sms.text, parts=len(sms.parts))
                        part_rows += [
                            dict(contact_id=contact.contact_id, part_no=i, esm_class=sms.esm_class,
                                 data_coding=sms.data_coding, payload=payload, state=PENDING, attempts=0)
                            for i, payload in enumerate(sms.parts, start=1)
                        ]
                        result.queued += 1
                outbox_rows.append(row)
                status_rows.append(dict(b_id=contact.contact_id, b_status=row["state"]))
            if outbox_rows:
                conn.execute(sms_outbox.insert(), outbox_rows)
            if part_rows:
                conn.execute(sms_part.insert(), part_rows)
            if status_rows:
                conn.execute(
                    mkt_contact.update().where(mkt_contact.c.contact_id == sa.bindparam("b_id"))
                    .values(status=sa.bindparam("b_status")),
                    status_rows,
                )
    log.info("queued SMS: %s", result.as_dict())
    return result


# ---------------------------------------------------------------- state updates

def set_message_states(conn: Connection, rows: list[dict], *, from_states: Sequence[str]) -> None:
    """Write message states (``contact_id``, ``state``, ``reason``, ``submitted_at``) and mirror them.

    Only rows currently in ``from_states`` change, so a later writer never
    overwrites a state another one moved on (e.g. a receipt already processed).
    """
    if not rows:
        return
    conn.execute(
        sms_outbox.update()
        .where(sms_outbox.c.contact_id == sa.bindparam("b_id"), sa.or_(*[sms_outbox.c.state == st for st in from_states]))
        .values(state=sa.bindparam("b_state"), reason=sa.bindparam("b_reason"),
                claim_token=sa.bindparam("b_claim"),
                submitted_at=sa.func.coalesce(sms_outbox.c.submitted_at, sa.bindparam("b_at", type_=sms_outbox.c.submitted_at.type))),
        [dict(b_id=r["contact_id"], b_state=r["state"], b_reason=r.get("reason"), b_claim=r.get("claim_token"),
              b_at=r.get("submitted_at")) for r in rows],
    )
    contact_rows = [r for r in rows if r["state"] != SENDING]
    if contact_rows:
        conn.execute(
            mkt_contact.update()
            .where(mkt_contact.c.contact_id == sa.bindparam("b_id"), sa.or_(mkt_contact.c.status == QUEUED, mkt_contact.c.status == SENDING))
            .values(status=sa.bindparam("b_state"),
                    sent_at=sa.func.coalesce(mkt_contact.c.sent_at, sa.bindparam("b_at", type_=mkt_contact.c.sent_at.type))),
            [dict(b_id=r["contact_id"], b_state=r["state"], b_at=r.get("submitted_at")) for r in contact_rows],
        )


def outbox_counts(engine: Engine, county_code: str | None = None, cycle_date: dt.date | None = None) -> dict[str, int]:
    """Messages per state (for reports and tests; counts only)."""
    q = sa.select(sms_outbox.c.state, sa.func.count()).group_by(sms_outbox.c.state)
    if county_code:
        q = q.where(sms_outbox.c.county_code == county_code)
    if cycle_date:
        q = q.where(sms_outbox.c.cycle_date == cycle_date)
    with engine.connect() as conn:
        return {state: n for state, n in conn.execute(q)}


def outbox_counts_by_county(engine: Engine, cycle_date: dt.date) -> dict[str, dict[str, int]]:
    """A cycle's messages per county and state (HQ's progress view: counts only)."""
    q = (sa.select(sms_outbox.c.county_code, sms_outbox.c.state, sa.func.count())
         .where(sms_outbox.c.cycle_date == cycle_date).group_by(sms_outbox.c.county_code, sms_outbox.c.state))
    out: dict[str, dict[str, int]] = {}
    with engine.connect() as conn:
        for county, state, n in conn.execute(q):
            out.setdefault(county, {})[state] = n
    return out
