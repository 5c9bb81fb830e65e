"""The windowed sender: the queued SMS of one county, submitted politely and exactly once.

:func:`send_batch` is what the daily DAG calls per county. It

1. takes the county's lease (:mod:`qz_outbound.sms.runs`), settling a run that
   died before it;
2. binds to the SMSC (``TCP_NODELAY``, reconnect with backoff) and keeps up to
   ``window`` submit_sm outstanding, tracked by sequence number;
3. before each burst: checks the 08:00-20:00 window on the project clock, takes
   slots from the account's shared rate limiter, re-reads the opt-out list for
   the customers about to get their first part, and journals the parts
   (``W``) — only then writes the burst in one ``sendall``;
4. on ESME_RTHROTTLED / ESME_RMSGQFUL resends the same part later and slows
   down (halves its own pace, recovers it gradually); any other refusal is final;
5. flushes outcomes to the outbox every fraction of a second.

Nothing is ever resubmitted that the SMSC may have accepted: a part whose
answer was lost (link dropped, no response, crash) becomes ``in_doubt``, and
only its receipt settles it. When the window closes the rest stays ``queued``
for the next window. Logs carry counts and masked numbers only.
"""

from __future__ import annotations

import collections
import datetime as dt
import heapq
import logging
import time
from dataclasses import dataclass, field
from typing import Callable

import sqlalchemy as sa
from smpplib import consts
from sqlalchemy.engine import Engine

from qz_outbound import clock, optout
from qz_outbound.phone import mask
from qz_outbound.sms import inbound as inbound_mod
from qz_outbound.sms import runs
from qz_outbound.sms import window as window_mod
from qz_outbound.sms.limiter import RateLimiter, RedisRateLimiter, open_limiter
from qz_outbound.sms.link import LinkDown, SmppLink, encode_submit_sm
from qz_outbound.sms.outbox import (
    ACCEPTED, IN_DOUBT, PENDING, QUEUED, REJECTED, SENDING, SKIPPED, derive_state, message_id_keys,
    set_message_states,
)
from qz_outbound.sms.pacing import Pacer
from qz_outbound.sms.schema import sms_outbox, sms_part
from qz_outbound.sms.settings import SmsConfig, SmscSettings, load_sms_config

log = logging.getLogger(__name__)

# Refusals that mean "not now": the same part is sent again, later and slower.
RETRY_STATUSES = {
    consts.SMPP_ESME_RTHROTTLED,   # 0x58
    consts.SMPP_ESME_RMSGQFUL,     # 0x14
}
FLUSH_SECONDS = 0.2
FLUSH_ROWS = 2000
HEARTBEAT_SECONDS = 10


@dataclass
class SendResult:
    """What one :func:`send_batch` call did (counts only: safe for XCom and logs)."""

    county_code: str
    cycle_date: str
    submitted: int = 0          # messages the SMSC accepted in full during this call
    rejected: int = 0
    skipped_opt_out: int = 0
    in_doubt: int = 0
    parts_written: int = 0
    throttled: int = 0          # ESME_RTHROTTLED / ESME_RMSGQFUL answers (each part resent later)
    reconnects: int = 0
    remaining: int = 0          # still queued for this county when the call returned
    window_closed: bool = False
    next_window_at: str | None = None
    seconds: float = 0.0
    settled_dead_runs: int = 0

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class _Part:
    contact_id: str
    part_no: int
    payload: bytes
    esm_class: int
    data_coding: int
    state: str
    attempts: int = 0
    written_at: dt.datetime | None = None    # the project clock when it was last written


@dataclass
class _Message:
    contact_id: str
    msisdn: str
    parts: dict[int, _Part]
    started: bool                      # some part was ever written: the message counts as submitted
    first_accepted_at: dt.datetime | None = None
    reason: str | None = None
    done: bool = False


@dataclass
class _Dirty:
    parts: list[dict] = field(default_factory=list)
    messages: list[dict] = field(default_factory=list)

    def __len__(self):
        return len(self.parts) + len(self.messages)


class _Sender:
    def __init__(self, engine: Engine, county_code: str, cycle_date: dt.date, settings: SmscSettings,
                 cfg: SmsConfig, limiter: RateLimiter | RedisRateLimiter, run: runs.Run, result: SendResult,
                 max_messages: int | None, on_burst: Callable[[int], None] | None):
        self.engine = engine
        self.county_code = county_code
        self.cycle_date = cycle_date
        self.s = settings
        self.cfg = cfg
        self.limiter = limiter
        self.run = run
        self.result = result
        self.max_messages = max_messages
        self.on_burst = on_burst
        self.link = SmppLink(settings)
        self.queue: collections.deque[_Part] = collections.deque()
        self.retry_heap: list[tuple[float, int, _Part]] = []
        self.outstanding: dict[int, tuple[_Part, float]] = {}
        self.messages: dict[str, _Message] = {}
        self.dirty = _Dirty()
        self.inbox: list = []             # deliver_sm on a transceiver bind, stored before acked
        self.exhausted = False
        self.claimed_total = 0
        self.last_flush = time.monotonic()
        self.last_heartbeat = time.monotonic()
        # own pace on top of the shared limiter: halved on a throttle, recovered over seconds
        self.pacer = Pacer(settings.rate, settings.burst_seconds)
        self._seq_counter = 0
        self._check_conn = None
        self.min_burst = max(1, settings.window // 4)

    # ------------------------------------------------------------ claiming

    def claim(self) -> int:
        # a few hundred at a time: short transactions; the journal covers what is claimed
        limit = min(max(self.s.window * 4, int(self.s.rate * 0.5), 200), 5000)
        if self.max_messages is not None:
            limit = min(limit, self.max_messages - self.claimed_total)
            if limit <= 0:
                self.exhausted = True
                return 0
        with self.engine.begin() as conn:
            cands = conn.execute(
                sa.select(sms_outbox.c.contact_id, sms_outbox.c.msisdn)
                .where(sms_outbox.c.county_code == self.county_code, sms_outbox.c.state == QUEUED,
                       sms_outbox.c.cycle_date <= self.cycle_date)
                .order_by(sms_outbox.c.cycle_date, sms_outbox.c.contact_id).limit(limit)
            ).all()
            if not cands:
                self.exhausted = True
                return 0
            numbers = optout.is_opted_out(conn, (c.msisdn for c in cands))
            opted = [c.contact_id for c in cands if c.msisdn in numbers]
            take = {c.contact_id: c.msisdn for c in cands if c.msisdn not in numbers}
            claimed = set()
            if take:
                ids = list(take)
                claimed = set(conn.scalars(
                    sms_outbox.update()
                    .where(sms_outbox.c.contact_id.in_(ids), sms_outbox.c.state == QUEUED)
                    .values(state=SENDING, claim_token=self.run.token)
                    .returning(sms_outbox.c.contact_id)))
                parts = conn.execute(
                    sa.select(sms_part).where(sms_part.c.contact_id.in_(list(claimed)))
                    .order_by(sms_part.c.contact_id, sms_part.c.part_no)).all()
            else:
                parts = []
            if opted:
                self._skip_in_db(conn, opted)
        by_msg: dict[str, dict[int, _Part]] = {}
        for p in parts:
            by_msg.setdefault(p.contact_id, {})[p.part_no] = _Part(
                p.contact_id, p.part_no, bytes(p.payload), p.esm_class, p.data_coding, p.state, p.attempts)
        for cid in [c.contact_id for c in cands if c.contact_id in claimed]:
            prs = by_msg.get(cid, {})
            started = any(p.state != PENDING for p in prs.values())
            msg = _Message(cid, take[cid], prs, started)
            self.messages[cid] = msg
            for p in prs.values():
                if p.state == PENDING:
                    self.queue.append(p)
            if not any(p.state == PENDING for p in prs.values()):
                self._finish_message(msg)
        self.claimed_total += len(claimed) + len(opted)
        self.result.skipped_opt_out += len(opted)
        return len(claimed) + len(opted)

    def _skip_in_db(self, conn, contact_ids: list[str]) -> None:
        conn.execute(sms_part.update().where(sms_part.c.contact_id.in_(contact_ids), sms_part.c.state == PENDING)
                     .values(state=SKIPPED))
        set_message_states(conn, [dict(contact_id=c, state=SKIPPED, reason="opt_out", claim_token=None)
                                  for c in contact_ids], from_states=[QUEUED, SENDING])

    # ------------------------------------------------------------ state changes

    def _set_part(self, part: _Part, state: str, **fields) -> None:
        part.state = state
        self.dirty.parts.append(_part_row(part, **fields))
        msg = self.messages[part.contact_id]
        if state == REJECTED:
            self._skip_pending(msg)   # the rest of a refused message is not sent
            msg.reason = f"rejected: {fields.get('error')}"
        if not any(p.state == PENDING for p in msg.parts.values()):
            self._finish_message(msg)

    def _skip_pending(self, msg: _Message) -> None:
        for part in msg.parts.values():
            if part.state == PENDING:
                part.state = SKIPPED
                self.dirty.parts.append(_part_row(part))

    def _finish_message(self, msg: _Message) -> None:
        if msg.done:
            return
        msg.done = True
        state = derive_state(p.state for p in msg.parts.values())
        if state == IN_DOUBT and msg.reason is None:
            msg.reason = "answer lost in flight (link dropped or no response)"
        sent_at = msg.first_accepted_at or (clock.now() if state == IN_DOUBT else None)
        self.dirty.messages.append(dict(contact_id=msg.contact_id, state=state, reason=msg.reason,
                                        claim_token=None, submitted_at=sent_at))
        key = {"submitted": "submitted", "rejected": "rejected", "in_doubt": "in_doubt",
               "skipped": "skipped_opt_out"}.get(state)
        if key:
            setattr(self.result, key, getattr(self.result, key) + 1)

    def flush(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and not self.inbox and (len(self.dirty) < FLUSH_ROWS and now - self.last_flush < FLUSH_SECONDS):
            return
        self.run.journal.flush()
        dirty, self.dirty = self.dirty, _Dirty()
        inbox, self.inbox = self.inbox, []
        with self.engine.begin() as conn:
            if dirty.parts:
                conn.execute(
                    sms_part.update()
                    .where(sms_part.c.contact_id == sa.bindparam("b_cid"), sms_part.c.part_no == sa.bindparam("b_no"))
                    .values(state=sa.bindparam("b_state"),
                            message_id=sa.func.coalesce(sa.bindparam("b_mid", type_=sa.String), sms_part.c.message_id),
                            mid_dec=sa.func.coalesce(sa.bindparam("b_dec", type_=sa.String), sms_part.c.mid_dec),
                            mid_hex=sa.func.coalesce(sa.bindparam("b_hex", type_=sa.String), sms_part.c.mid_hex),
                            attempts=sa.bindparam("b_attempts"),
                            error=sa.bindparam("b_err"),
                            submitted_at=sa.func.coalesce(sa.bindparam("b_sub", type_=sms_part.c.submitted_at.type),
                                                          sms_part.c.submitted_at),
                            accepted_at=sa.func.coalesce(sa.bindparam("b_acc", type_=sms_part.c.accepted_at.type),
                                                         sms_part.c.accepted_at)),
                    dirty.parts,
                )
            set_message_states(conn, dirty.messages, from_states=[SENDING, QUEUED])
            if now - self.last_heartbeat > HEARTBEAT_SECONDS:
                runs.heartbeat(conn, self.run.token)
                self.last_heartbeat = now
            if inbox:
                inbound_mod.store_and_apply(conn, [inbound_mod.parse_deliver_sm(p) for p in inbox],
                                            self.cfg.replies, apply_receipts=True)
        if inbox:
            self.link.ack_deliver(inbox)  # only after the commit
        for m in dirty.messages:
            self.messages.pop(m["contact_id"], None)
        self.last_flush = now

    # ------------------------------------------------------------ responses

    def handle(self, pdu) -> None:
        if pdu.command in ("submit_sm_resp", "generic_nack"):
            entry = self.outstanding.pop(pdu.sequence, None)
            if entry is None:
                log.warning("%s for an unknown sequence number ignored", pdu.command)
                return
            part, _sent = entry
            status = int(pdu.status or 0)
            if pdu.command == "submit_sm_resp" and status == consts.SMPP_ESME_ROK:
                mid = (pdu.message_id or b"")
                mid = mid.decode("latin-1") if isinstance(mid, bytes) else str(mid)
                mid = mid.rstrip("\x00").strip()
                dec, hexv = message_id_keys(mid) if mid else (None, None)
                now = clock.now()
                self.run.journal.note(f"A\t{part.contact_id}\t{part.part_no}\t{mid}")
                msg = self.messages[part.contact_id]
                msg.first_accepted_at = msg.first_accepted_at or now
                self._set_part(part, ACCEPTED, message_id=mid or None, mid_dec=dec, mid_hex=hexv,
                               accepted_at=now, submitted_at=part.written_at)
            elif status in RETRY_STATUSES and pdu.command == "submit_sm_resp":
                part.attempts += 1
                self.result.throttled += 1
                self.pacer.slow_down()
                if part.attempts >= self.s.throttle_max_attempts:
                    self.run.journal.note(f"R\t{part.contact_id}\t{part.part_no}\t0x{status:X}")
                    self._set_part(part, REJECTED, error=f"throttled x{part.attempts}")
                else:
                    self.run.journal.note(f"N\t{part.contact_id}\t{part.part_no}\t0x{status:X}")
                    self._seq_counter += 1
                    heapq.heappush(self.retry_heap, (self.pacer.pause_until, self._seq_counter, part))
            else:
                desc = consts.DESCRIPTIONS.get(status, "unknown")
                self.run.journal.note(f"R\t{part.contact_id}\t{part.part_no}\t0x{status:X}")
                self._set_part(part, REJECTED, error=f"0x{status:X} {desc}"[:40])
                log.info("SMSC refused a part for %s: 0x%X %s", mask(self.messages[part.contact_id].msisdn
                                                                     if part.contact_id in self.messages else ""),
                         status, desc)
            return
        if pdu.command == "deliver_sm":
            self.inbox.append(pdu)
            return
        if not self.link.handle_control(pdu):
            log.debug("ignored %s", pdu.command)

    def link_lost(self, why: str) -> None:
        """Everything outstanding may or may not have reached the SMSC: in doubt, never resent."""
        n = len(self.outstanding)
        for part, _sent in list(self.outstanding.values()):
            self._set_part(part, IN_DOUBT, submitted_at=part.written_at)
        self.outstanding.clear()
        self.inbox.clear()  # not acked: the SMSC delivers them again
        log.warning("SMSC link lost (%s): %d parts in flight are in doubt", why, n)

    # ------------------------------------------------------------ the loop

    def window_open(self) -> bool:
        return window_mod.is_open(self.cfg.sending_hours)

    def run_loop(self) -> None:
        self.link.connect_with_backoff()
        stop_sending = False
        while True:
            now = time.monotonic()
            # 1. what came back (waiting on the socket only when there is nothing to send now)
            try:
                timeout = self._idle_timeout(now, stop_sending)
                for pdu in self.link.read(timeout=timeout):
                    self.handle(pdu)
                now = time.monotonic()
                if self.outstanding:
                    oldest = min(sent for _p, sent in self.outstanding.values())
                    if now - oldest > self.s.response_timeout:
                        self.link.close()
                        raise LinkDown(f"no response for {self.s.response_timeout:.0f}s")
                self.link.keep_alive()
            except LinkDown as exc:
                self.link_lost(str(exc))
                self.flush(force=True)
                if stop_sending or (self.exhausted and not self.queue and not self.retry_heap):
                    break
                self.result.reconnects += 1
                self.link.connect_with_backoff()
                continue
            self.flush()
            self.pacer.recover(now)

            # 2. the window, checked at submit time
            if not stop_sending and not self.window_open():
                stop_sending = True
                self.result.window_closed = True
                log.info("sending window closed: %d parts not sent wait for the next window", len(self.queue))
            if stop_sending:
                if not self.outstanding:
                    break
                continue

            # retries whose pause is over go first
            while self.retry_heap and self.retry_heap[0][0] <= now:
                self.queue.appendleft(heapq.heappop(self.retry_heap)[2])
            free = self.s.window - len(self.outstanding)
            if free <= 0 or (free < self.min_burst and self.outstanding):
                continue  # coalesce: fewer, larger writes and opt-out checks
            if len(self.queue) < free and not self.exhausted:
                self.claim()
            if not self.queue:
                if self.exhausted and not self.retry_heap and not self.outstanding:
                    break
                continue
            want = self.pacer.burst_size(now, min(free, len(self.queue)))
            if not want:
                continue
            possible, wait = self.limiter.try_acquire(want, dry_run=True)
            if not possible:
                # sleep on the socket until the limiter's slot (responses still handled)
                try:
                    for pdu in self.link.read(timeout=min(wait, 0.05)):
                        self.handle(pdu)
                except LinkDown:
                    pass  # noticed on the next turn
                continue
            written = self.send_burst(possible)
            if written is None:
                continue  # the window closed at submit time: handled at the top of the loop
            self.pacer.wrote(written)

    def _idle_timeout(self, now: float, stop_sending: bool) -> float:
        free = self.s.window - len(self.outstanding)
        if stop_sending or free <= 0 or (free < self.min_burst and self.outstanding):
            return 0.05  # woken by the next response
        ready_at = None
        if self.queue:
            ready_at = self.pacer.ready_at(now)
        elif self.retry_heap:
            ready_at = max(self.retry_heap[0][0], self.pacer.pause_until)
        elif not self.exhausted:
            return 0.0
        if ready_at is None:
            return 0.05
        return min(0.05, max(0.0, ready_at - now))

    def _opted_out(self, msisdns: set[str]) -> set[str]:
        """The opt-out list as committed right now (one query on a connection kept open)."""
        if self._check_conn is None:
            self._check_conn = self.engine.connect()
        try:
            return optout.is_opted_out(self._check_conn, msisdns)
        finally:
            self._check_conn.rollback()  # end the snapshot: the next check sees newer opt-outs

    def send_burst(self, n: int) -> int | None:
        """Write up to ``n`` parts; returns how many, or None when the window turned out closed.

        Order matters: the opt-out check (a query) comes first, then the rate
        limiter's grant, then the journal and the write at once, so a submit
        leaves right after its grant.
        """
        at = clock.now()
        if not window_mod.is_open(self.cfg.sending_hours, at):
            return None
        burst: list[_Part] = []
        while self.queue and len(burst) < n:
            burst.append(self.queue.popleft())
        # the opt-out list, re-read for every customer whose first part is about to leave
        fresh = {self.messages[p.contact_id].msisdn for p in burst if not self.messages[p.contact_id].started}
        if fresh:
            opted = self._opted_out(fresh)
            if opted:
                dropped = {p.contact_id for p in burst
                           if self.messages[p.contact_id].msisdn in opted and not self.messages[p.contact_id].started}
                for cid in dropped:
                    msg = self.messages[cid]
                    msg.reason = "opt_out"
                    self._skip_pending(msg)
                    self._finish_message(msg)
                burst = [p for p in burst if p.contact_id not in dropped]
                self.queue = collections.deque(p for p in self.queue if p.contact_id not in dropped)
                log.info("opt-out in force mid-batch: %d messages skipped", len(dropped))
        if not burst:
            return 0
        with self.limiter.grant(len(burst)) as (granted, _wait):
            if granted < len(burst):
                self.queue.extendleft(reversed(burst[granted:]))
                burst = burst[:granted]
            if not burst:
                return 0
            frames, seqs, lines = [], [], []
            for part in burst:
                msg = self.messages[part.contact_id]
                seq = self.link.client.next_sequence()
                frames.append(encode_submit_sm(
                    seq, source_addr=self.s.source_addr, destination_addr=msg.msisdn, short_message=part.payload,
                    esm_class=part.esm_class, data_coding=part.data_coding,
                    registered_delivery=self.s.registered_delivery,
                    source_addr_ton=self.s.source_addr_ton, source_addr_npi=self.s.source_addr_npi,
                    dest_addr_ton=self.s.dest_addr_ton, dest_addr_npi=self.s.dest_addr_npi))
                seqs.append(seq)
                lines.append(f"W\t{part.contact_id}\t{part.part_no}\t{seq}")
            # the journal first: after a crash, a part with no W line was never sent
            self.run.journal.write_now(lines)
            now = time.monotonic()
            for part, seq in zip(burst, seqs):
                self.outstanding[seq] = (part, now)
                part.written_at = at
                self.messages[part.contact_id].started = True
            try:
                self.link.send_raw(b"".join(frames))
            except LinkDown as exc:
                lost = exc
            else:
                lost = None
        if lost is not None:
            self.link_lost(str(lost))
            self.flush(force=True)
            self.result.reconnects += 1
            self.link.connect_with_backoff()
            return len(burst)
        self.result.parts_written += len(burst)
        if self.on_burst:
            self.on_burst(len(burst))
        return len(burst)

    def shutdown(self) -> None:
        """Parts claimed but never written go back to the queue (finish_run); unbind politely."""
        for part in list(self.queue) + [e[2] for e in self.retry_heap]:
            part.state = PENDING
        try:
            self.flush(force=True)
        finally:
            if self._check_conn is not None:
                self._check_conn.close()
            if self.link.connected:
                self.link.close(unbind=True)


def _part_row(part: _Part, *, message_id=None, mid_dec=None, mid_hex=None, error=None, submitted_at=None,
              accepted_at=None) -> dict:
    """A part's new state as one row of :meth:`_Sender.flush`'s batch update (the one place it is built)."""
    return dict(b_cid=part.contact_id, b_no=part.part_no, b_state=part.state, b_mid=message_id, b_dec=mid_dec,
                b_hex=mid_hex, b_attempts=part.attempts, b_err=error, b_sub=submitted_at, b_acc=accepted_at)


def send_batch(
    engine: Engine,
    cycle_date: dt.date,
    county_code: str,
    smsc_settings: SmscSettings,
    *,
    sms_config: SmsConfig | None = None,
    max_messages: int | None = None,
    on_burst: Callable[[int], None] | None = None,
) -> SendResult:
    """Send the queued SMS of one county (this cycle and earlier leftovers) from the outbox.

    Returns when everything is submitted (or refused, skipped, in doubt), or
    when the sending window closes (``window_closed``; the rest stays queued,
    ``next_window_at`` says when to call again). Safe to call again at any
    time, after a failure, a retry or a kill: nothing the SMSC may have
    accepted is submitted twice. Raises :class:`~qz_outbound.sms.runs.SenderBusy`
    while another sender holds the county, and ``LinkDown`` when the SMSC stays
    unreachable for ``reconnect_give_up`` seconds (the task's retry resumes).
    """
    cfg = sms_config or load_sms_config()
    started = time.monotonic()
    result = SendResult(county_code=county_code, cycle_date=str(cycle_date))
    if not window_mod.is_open(cfg.sending_hours):
        result.window_closed = True
        result.next_window_at = window_mod.next_opening(cfg.sending_hours).isoformat()
        result.remaining = _remaining(engine, county_code, cycle_date)
        log.info("county %s: outside the sending window, %d messages wait", county_code, result.remaining)
        return result
    state_dir = smsc_settings.state_path()
    # the account's shared limiter first: without it (Redis lost) nothing is claimed or sent
    limiter = open_limiter(state_dir, smsc_settings.limiter_key, smsc_settings.rate,
                           smsc_settings.rate_margin, smsc_settings.burst_seconds)
    try:
        run = runs.start_run(engine, county_code, cycle_date, state_dir,
                             lease_seconds=max(300.0, smsc_settings.response_timeout * 4))
    except BaseException:
        limiter.close()
        raise
    result.settled_dead_runs = run.settled_dead_runs
    sender = _Sender(engine, county_code, cycle_date, smsc_settings, cfg, limiter, run, result,
                     max_messages, on_burst)
    outcome = "failed"
    try:
        sender.run_loop()
        outcome = "window closed" if result.window_closed else "done"
    finally:
        try:
            sender.link_lost("sender stopping") if sender.outstanding else None
            sender.shutdown()
        finally:
            runs.finish_run(engine, run, outcome)
            limiter.close()
    result.remaining = _remaining(engine, county_code, cycle_date)
    if result.window_closed:
        result.next_window_at = window_mod.next_opening(cfg.sending_hours).isoformat()
    result.seconds = round(time.monotonic() - started, 3)
    log.info("county %s: %s", county_code, {k: v for k, v in result.as_dict().items() if k != "county_code"})
    return result


def _remaining(engine: Engine, county_code: str, cycle_date: dt.date) -> int:
    with engine.connect() as conn:
        return conn.scalar(sa.select(sa.func.count()).select_from(sms_outbox).where(
            sms_outbox.c.county_code == county_code, sms_outbox.c.state.in_([QUEUED, SENDING]),
            sms_outbox.c.cycle_date <= cycle_date))
