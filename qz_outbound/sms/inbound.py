"""What comes back from the SMSC: delivery receipts and customers' replies (MO).

Every deliver_sm is written to ``sms_inbound`` and its effect applied in one
transaction, and only after that commit is it acknowledged
(:func:`store_and_apply`). The SMSC redelivers what was not acknowledged, so
effects are idempotent:

* a receipt finds its part by message id: as given, or read in the other base
  (hex vs decimal), for every part of a long message (:func:`_apply_receipts`, in SQL).
  A receipt that matches nothing yet (its submit_sm_resp not flushed yet, or the
  part is in doubt after a crash) stays pending and is tried again
  (:func:`process_pending`); an in-doubt part with no id takes the receipt from
  its handset after a grace period;
* a reply is classified (contact-policy.md "Replies": accept, opt-out,
  unrecognised) and matched to the latest SMS contact with that customer; an
  opt-out goes to ``mkt_opt_out`` in the same transaction, so it is in force
  before the deliver_sm is even acknowledged.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
import unicodedata
from dataclasses import dataclass
from typing import Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from qz_outbound import clock, db
from qz_outbound import optout
from qz_outbound.schema import mkt_contact
from qz_outbound.phone import normalise as normalise_msisdn
from qz_outbound.sms.outbox import (
    ACCEPTED, DELIVERED, IN_DOUBT, MESSAGE_STATE_OTHERWISE, MESSAGE_STATE_RULES, UNDELIVERED, chunks, message_id_keys,
)
from qz_outbound.sms.render import decode_short_message
from qz_outbound.sms.schema import _TS, sms_inbound, sms_outbox, sms_part
from qz_outbound.sms.settings import RepliesConfig

log = logging.getLogger(__name__)

# contact-policy.md "Replies": fixed; config may only add words.
ACCEPT_WORDS = ("1", "Y", "是", "好")
OPT_OUT_WORDS = ("TD", "T", "N", "R", "0000", "退订", "取消")

# SMPP message_state (TLV 0x0427) -> the receipt text's stat word
MESSAGE_STATES = {1: "ENROUTE", 2: "DELIVRD", 3: "EXPIRED", 4: "DELETED", 5: "UNDELIV",
                  6: "ACCEPTD", 7: "UNKNOWN", 8: "REJECTD"}
FINAL_UNDELIVERED = {"EXPIRED", "DELETED", "UNDELIV", "UNKNOWN", "REJECTD"}

_ID_RE = re.compile(r"\bid:(\S+)", re.IGNORECASE)
_STAT_RE = re.compile(r"\bstat:(\w+)", re.IGNORECASE)


def normalise_reply(text: str | None) -> str:
    """A reply as contact-policy.md "Replies" reads it: full-width forms folded to half-width
    (NFKC: ＴＤ -> TD, １ -> 1), spaces, punctuation and invisible format characters dropped
    (``T D``, ``退订。``, ``t.d.``), upper-cased."""
    folded = unicodedata.normalize("NFKC", text or "")
    return "".join(ch for ch in folded
                   if not ch.isspace() and unicodedata.category(ch)[0] not in "PZC").upper()


def classify_reply(text: str, replies: RepliesConfig | None = None) -> str:
    """``accept``, ``opt_out`` or ``unrecognised`` for a reply text.

    Both lists are compared on the normalised text (:func:`normalise_reply`); config words are
    normalised the same way. An opt-out is the exact words, or any text that contains 退订 or
    starts with TD (the answers to the footer "回复TD退订": ``TD退订``, ``回复TD退订``, ``退订。``,
    ``T D``). Opt-out is checked first: when in doubt, honour the opt-out.
    """
    word = normalise_reply(text)
    accept = set(ACCEPT_WORDS) | {normalise_reply(w) for w in (replies.extra_accept if replies else [])}
    opt_out = set(OPT_OUT_WORDS) | {normalise_reply(w) for w in (replies.extra_opt_out if replies else [])}
    opt_out.discard("")   # a config word of only punctuation must not turn every empty reply into an opt-out
    if word in opt_out or "退订" in word or word.startswith("TD"):
        return "opt_out"
    if word in accept:
        return "accept"
    return "unrecognised"


@dataclass
class Inbound:
    kind: str                 # 'receipt' | 'reply'
    source_addr: str
    dest_addr: str
    esm_class: int
    data_coding: int
    body: str
    receipted_id: str | None = None
    receipt_stat: str | None = None


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.rstrip(b"\x00").decode("latin-1")
    return str(value)


def parse_deliver_sm(pdu) -> Inbound:
    """Receipt or reply from a smpplib deliver_sm (``unknown`` when it cannot be read: kept, for a person)."""
    try:
        return _parse(pdu)
    except Exception as exc:  # never lose a deliver_sm to a parsing bug
        return Inbound("unknown", _text(getattr(pdu, "source_addr", "")), _text(getattr(pdu, "destination_addr", "")),
                       0, 0, f"unparsed: {type(exc).__name__}")


def _parse(pdu) -> Inbound:
    esm = int(pdu.esm_class or 0)
    dc = int(pdu.data_coding or 0)
    payload = pdu.short_message or getattr(pdu, "message_payload", None) or b""
    is_receipt = bool(esm & 0x04) or bool(esm & 0x20)
    if is_receipt:
        body = _text(payload)
        rid = _text(getattr(pdu, "receipted_message_id", None)).strip() or None
        m = _ID_RE.search(body)
        text_id = m.group(1) if m else None
        state = getattr(pdu, "message_state", None)
        stat = MESSAGE_STATES.get(int(state)) if state is not None else None
        if stat is None:
            s = _STAT_RE.search(body)
            stat = s.group(1).upper()[:8] if s else None
        return Inbound("receipt", _text(pdu.source_addr), _text(pdu.destination_addr), esm, dc, body,
                       rid or text_id, stat)
    return Inbound("reply", _text(pdu.source_addr), _text(pdu.destination_addr), esm, dc,
                   decode_short_message(bytes(payload), dc, esm))


def _receipt_ids(r) -> set[str]:
    """The ids a receipt quotes: the receipted_message_id TLV and the ``id:`` of its text."""
    idents = {r.receipted_id} if r.receipted_id else set()
    m = _ID_RE.search(r.body or "")
    if m:
        idents.add(m.group(1))
    return idents


def _new_state(stat: str) -> str | None:
    return DELIVERED if stat == "DELIVRD" else UNDELIVERED if stat in FINAL_UNDELIVERED else None


_TMP = sa.MetaData()
_tmp_receipt = sa.Table("tmp_receipt", _TMP, sa.Column("inbound_id", sa.BigInteger, primary_key=True),
                        sa.Column("msisdn", sa.String(32)), sa.Column("stat", sa.String(8)),
                        sa.Column("new_state", sa.String(16)), prefixes=["TEMPORARY"])
_tmp_receipt_key = sa.Table("tmp_receipt_key", _TMP, sa.Column("inbound_id", sa.BigInteger),
                            sa.Column("ident", sa.String(65)), sa.Column("k_dec", sa.String(80)),
                            sa.Column("k_hex", sa.String(80)), prefixes=["TEMPORARY"])
_tmp_receipt_match = sa.Table("tmp_receipt_match", _TMP, sa.Column("inbound_id", sa.BigInteger, primary_key=True),
                              sa.Column("outcome", sa.String(16)), sa.Column("contact_id", sa.String(32)),
                              sa.Column("part_no", sa.SmallInteger), sa.Column("mid", sa.String(65)),
                              sa.Column("mid_dec", sa.String(80)), sa.Column("mid_hex", sa.String(80)),
                              prefixes=["TEMPORARY"])
_tmp_receipt_part = sa.Table("tmp_receipt_part", _TMP, sa.Column("contact_id", sa.String(32)),
                             sa.Column("part_no", sa.SmallInteger), sa.Column("new_state", sa.String(16)),
                             sa.Column("stat", sa.String(8)), sa.Column("receipt_at", _TS),
                             sa.Column("first_at", _TS), sa.Column("mid", sa.String(65)),
                             sa.Column("mid_dec", sa.String(80)), sa.Column("mid_hex", sa.String(80)),
                             sa.PrimaryKeyConstraint("contact_id", "part_no"), prefixes=["TEMPORARY"])
_tmp_message_state = sa.Table("tmp_message_state", _TMP, sa.Column("contact_id", sa.String(32), primary_key=True),
                              sa.Column("state", sa.String(16)), sa.Column("done_at", _TS),
                              sa.Column("sent_at", _TS), prefixes=["TEMPORARY"])


def _run_step(conn: Connection, step: str, first: bool = True, **params) -> int:
    stmt = sa.text(db.render_sql("receipt_apply.sql", conn.dialect.name, step=step, first=first,
                                 state_rules=MESSAGE_STATE_RULES, state_otherwise=MESSAGE_STATE_OTHERWISE))
    if "now" in params:
        stmt = stmt.bindparams(sa.bindparam("now", type_=_TS))
    t0 = time.monotonic()
    n = conn.execute(stmt, params).rowcount
    log.debug("receipts: step %s, %d rows in %.2f s", step, n, time.monotonic() - t0)
    return n


def _settle_in_doubt(conn: Connection, rows: list) -> list[dict]:
    """In-doubt parts (a crash lost the submit_sm_resp) have no id: the receipt from their handset
    settles them, once a live sender has had time to record its ids (``rows``: ripe receipts)."""
    numbers = list({normalise_msisdn(r.source_addr) for r in rows})
    doubt: dict[str, list] = {}
    for batch in chunks(numbers):
        for p in conn.execute(
            sa.select(sms_part.c.contact_id, sms_part.c.part_no, sms_outbox.c.msisdn)
            .join(sms_outbox, sms_outbox.c.contact_id == sms_part.c.contact_id)
            .where(sms_outbox.c.msisdn.in_(batch), sms_part.c.state == IN_DOUBT, sms_part.c.message_id.is_(None))
            .order_by(sms_outbox.c.queued_at.desc(), sms_part.c.contact_id, sms_part.c.part_no)
        ):
            doubt.setdefault(p.msisdn, []).append((p.contact_id, p.part_no))
    settled = []
    for r in rows:
        queue = doubt.get(normalise_msisdn(r.source_addr))
        if queue:
            cid, part_no = queue.pop(0)
            dec, hexv = message_id_keys(r.receipted_id) if r.receipted_id else (None, None)
            settled.append(dict(inbound_id=r.inbound_id, outcome="matched", contact_id=cid, part_no=part_no,
                                mid=r.receipted_id, mid_dec=dec, mid_hex=hexv))
    return settled


def _aware(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=clock.SHANGHAI) if value.tzinfo is None else value


def _apply_receipts(conn: Connection, rows: list, ripe: set[int] | None, give_up_hours: float,
                    still_unmatched: list[int] | None = None) -> dict[str, int]:
    """Match a batch of receipts to their parts and apply them, in SQL (``include/sql/receipt_apply.sql``).

    Python only reads the ids (either base) and the stat words; the matching, the per-part reduction,
    the message states and the contact history are set statements over the staged batch.
    A receipt that matches nothing yet stays pending (its id goes to ``still_unmatched``) until
    ``give_up_hours``; then it is kept as ``unmatched`` for a person. ``ripe``: receipts that matched
    nothing for a while; only those may settle an in-doubt part by the handset number.
    """
    counts = {"matched": 0, "ambiguous": 0, "unmatched": 0}
    if not rows:
        return counts
    receipts, keys = [], []
    for r in rows:
        stat = (r.receipt_stat or "").upper() or None
        receipts.append((r.inbound_id, normalise_msisdn(r.source_addr), stat, _new_state(stat or "")))
        for ident in _receipt_ids(r):
            dec, hexv = message_id_keys(ident)
            keys.append((r.inbound_id, ident, dec, hexv))
    _TMP.drop_all(conn)   # a batch that failed on this connection may have left them (SQLite)
    _TMP.create_all(conn)
    db.bulk_insert(conn, "tmp_receipt", ["inbound_id", "msisdn", "stat", "new_state"], receipts)
    db.bulk_insert(conn, "tmp_receipt_key", ["inbound_id", "ident", "k_dec", "k_hex"], keys)
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("analyze tmp_receipt; analyze tmp_receipt_key")
    _run_step(conn, "match", first=True)
    _run_step(conn, "match", first=False)
    found = set(conn.scalars(sa.select(_tmp_receipt_match.c.inbound_id)))
    unmatched = [r for r in rows if r.inbound_id not in found]
    late = []
    ripe_rows = [r for r in unmatched if ripe and r.inbound_id in ripe]
    if ripe_rows:
        late = _settle_in_doubt(conn, ripe_rows)
        if late:
            conn.execute(_tmp_receipt_match.insert(), late)
    settled = {m["inbound_id"] for m in late}
    now = clock.now()
    given_up = []
    for r in unmatched:
        if r.inbound_id in settled:
            continue
        if (now - _aware(r.received_at)).total_seconds() > give_up_hours * 3600:
            given_up.append(dict(inbound_id=r.inbound_id, outcome="unmatched"))
        elif still_unmatched is not None:
            still_unmatched.append(r.inbound_id)
    if given_up:
        conn.execute(_tmp_receipt_match.insert(), given_up)
    for step in ("reduce", "parts", "recompute"):
        _run_step(conn, step)
    _run_step(conn, "outbox", now=now)
    _run_step(conn, "contact", now=now)
    _run_step(conn, "inbound", now=now)
    for outcome, n in conn.execute(sa.select(_tmp_receipt_match.c.outcome, sa.func.count())
                                   .group_by(_tmp_receipt_match.c.outcome)):
        counts[outcome] = n
    _TMP.drop_all(conn)
    return counts


def _mark_processed(conn: Connection, updates: list[dict]) -> None:
    if updates:
        conn.execute(
            sms_inbound.update().where(sms_inbound.c.inbound_id == sa.bindparam("b_id"))
            .values(processed_at=clock.now(), outcome=sa.bindparam("b_outcome"),
                    contact_id=sa.bindparam("b_cid"), part_no=sa.bindparam("b_no")),
            updates,
        )


def _apply_replies(conn: Connection, rows: list, replies: RepliesConfig | None) -> dict[str, int]:
    counts = {"accept": 0, "opt_out": 0, "unrecognised": 0, "unmatched": 0}
    updates = []
    for r in rows:
        msisdn = normalise_msisdn(r.source_addr)
        kind = classify_reply(r.body, replies)
        # the latest SMS contact with this customer that actually went out (a daily SMS, or the
        # customer's SMS of a top-up recommendation)
        contact = conn.execute(
            sa.select(mkt_contact.c.contact_id, mkt_contact.c.response)
            .where(mkt_contact.c.msisdn == msisdn, mkt_contact.c.channel.in_(("sms", "agent")),
                   mkt_contact.c.sent_at.is_not(None))
            .order_by(mkt_contact.c.sent_at.desc(), mkt_contact.c.contact_id.desc()).limit(1)
        ).first()
        if kind == "opt_out":
            # for good, for every campaign, whether or not a contact matches
            if msisdn:
                optout.record_opt_out(
                    conn, msisdn, at=_aware(r.received_at), source="sms_reply",
                    detail=f"reply {unicodedata.normalize('NFKC', r.body or '').strip()[:16]!r}"
                           + (f" to contact {contact.contact_id}" if contact else ""))
        if contact is not None:
            # a recognised answer wins over an unrecognised one, never the other way round
            if kind != "unrecognised" or contact.response is None:
                conn.execute(mkt_contact.update().where(mkt_contact.c.contact_id == contact.contact_id)
                             .values(response=kind, responded_at=_aware(r.received_at)))
        outcome = kind if (contact is not None or kind == "opt_out") else "unmatched"
        counts[outcome] += 1
        updates.append(dict(b_id=r.inbound_id, b_outcome=outcome,
                            b_cid=contact.contact_id if contact else None, b_no=None))
    _mark_processed(conn, updates)
    return counts


_PENDING_COLS = (sms_inbound.c.inbound_id, sms_inbound.c.received_at, sms_inbound.c.kind, sms_inbound.c.source_addr,
                 sms_inbound.c.receipted_id, sms_inbound.c.receipt_stat, sms_inbound.c.body)


def store_and_apply(conn: Connection, items: Iterable[Inbound], replies: RepliesConfig | None = None,
                    apply_receipts: bool = False, give_up_hours: float = 72) -> dict[str, int]:
    """Insert deliver_sm inside the caller's transaction (commit, then acknowledge).

    Replies take effect in the same transaction (an opt-out is in force before
    the deliver_sm is acknowledged). Receipts are matched here too with
    ``apply_receipts``; otherwise by the next :func:`process_pending`, in larger
    batches (the receiver does that every fraction of a second).
    """
    items = list(items)
    if not items:
        return {}
    now = clock.now()
    rows = [dict(received_at=now, kind=i.kind, source_addr=i.source_addr[:32], dest_addr=i.dest_addr[:32],
                 esm_class=i.esm_class, data_coding=i.data_coding, receipted_id=(i.receipted_id or None),
                 receipt_stat=i.receipt_stat, body=i.body) for i in items]
    # RETURNING gives the ids of these rows, in order, on SQLite and PostgreSQL
    ids = [r.inbound_id for r in conn.execute(
        sms_inbound.insert().returning(sms_inbound.c.inbound_id, sort_by_parameter_order=True), rows)]
    new = [_Row(inbound_id=i, **{k: r[k] for k in _ROW_FIELDS}) for i, r in zip(ids, rows)]
    counts = _apply_replies(conn, [r for r in new if r.kind == "reply"], replies)
    _mark_processed(conn, [dict(b_id=r.inbound_id, b_outcome="unparsed", b_cid=None, b_no=None)
                           for r in new if r.kind not in ("reply", "receipt")])
    if apply_receipts:
        receipt_counts = _apply_receipts(conn, [r for r in new if r.kind == "receipt"], None, give_up_hours)
        counts.update({f"receipt_{k}": v for k, v in receipt_counts.items()})
    counts["stored"] = len(ids)
    return counts


_ROW_FIELDS = ("received_at", "kind", "source_addr", "receipted_id", "receipt_stat", "body")


@dataclass
class _Row:
    inbound_id: int
    received_at: dt.datetime
    kind: str
    source_addr: str
    receipted_id: str | None
    receipt_stat: str | None
    body: str


def process_pending(engine: Engine, replies: RepliesConfig | None = None, ripe: set[int] | None = None,
                    give_up_hours: float = 72, after_id: int = 0, limit: int = 5000, workers: int = 1,
                    ) -> tuple[dict[str, int], int, list[int]]:
    """Apply what is stored but not applied yet (new receipts, and those that matched nothing so far).

    Only rows after ``after_id``; ``ripe`` as in :func:`_apply_receipts`.
    With ``workers`` > 1 (PostgreSQL), a large batch of receipts is applied by that many concurrent
    transactions, split by handset: every receipt of one message (all its parts, every report on
    them) comes from the same handset, so it lands in the same share and keeps its order there,
    and two shares never touch the same message.
    Returns the counts, the highest id seen and the ids still unmatched.
    """
    still: list[int] = []
    with engine.begin() as conn:
        rows = conn.execute(sa.select(*_PENDING_COLS)
                            .where(sms_inbound.c.processed_at.is_(None), sms_inbound.c.inbound_id > after_id)
                            .order_by(sms_inbound.c.inbound_id).limit(limit)).all()
        if not rows:
            return {}, after_id, still
        counts = _apply_replies(conn, [r for r in rows if r.kind == "reply"], replies)
        receipts = [r for r in rows if r.kind == "receipt"]
        shares = _shares(receipts, workers if engine.dialect.name == "postgresql" else 1)
        if len(shares) == 1:
            receipt_counts = _apply_receipts(conn, receipts, ripe, give_up_hours, still)
    if len(shares) > 1:
        from concurrent.futures import ThreadPoolExecutor

        def apply(share: list) -> tuple[dict[str, int], list[int]]:
            left: list[int] = []
            with engine.begin() as c:
                return _apply_receipts(c, share, ripe, give_up_hours, left), left

        with ThreadPoolExecutor(len(shares)) as pool:
            results = list(pool.map(apply, shares))
        receipt_counts = {k: sum(r[0][k] for r in results) for k in results[0][0]}
        still = sorted(i for _, left in results for i in left)
    counts.update({f"receipt_{k}": v for k, v in receipt_counts.items()})
    return counts, rows[-1].inbound_id, still


_MIN_SHARE = 5000   # below this many receipts per share, one transaction is faster


def _shares(receipts: list, workers: int) -> list[list]:
    n = max(1, min(workers, len(receipts) // _MIN_SHARE))
    if n == 1:
        return [receipts]
    shares: list[list] = [[] for _ in range(n)]
    for r in receipts:
        digits = normalise_msisdn(r.source_addr)
        shares[int(digits[-4:] or 0) % n].append(r)
    return [s for s in shares if s]


def pending_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.scalar(sa.select(sa.func.count()).select_from(sms_inbound)
                           .where(sms_inbound.c.processed_at.is_(None)))


__all__ = ["classify_reply", "normalise_reply", "parse_deliver_sm", "store_and_apply", "process_pending", "Inbound",
           "ACCEPT_WORDS", "OPT_OUT_WORDS", "ACCEPTED"]
