"""Sender runs: one live sender per county, and the settlement of a run that died.

A run row (``sms_sender_run``) is a lease on a county's outbox. A new run
first settles every unfinished run of the county whose process is gone
(same host and boot: the pid is not alive; another host: no heartbeat for
``lease_seconds``). Settling reads the dead run's journal
(:mod:`qz_outbound.sms.journal`):

* a claimed part the journal never saw written goes back to ``pending`` and is
  sent by the new run;
* a part written and answered (``A``/``R``/``N``) takes that answer;
* a part written but unanswered becomes ``in_doubt``: it is never resent and
  its receipt settles it (docs/sms-delivery.md "Crash settlement").

Without a trustworthy journal (another host, a reboot, a lost file) every
claimed part that is still pending counts as in doubt: a customer missing one
offer is better than a customer getting it twice.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from qz_outbound import clock
from qz_outbound.sms import journal as journal_mod
from qz_outbound.sms.outbox import (
    ACCEPTED, IN_DOUBT, PENDING, QUEUED, REJECTED, SENDING, SKIPPED, derive_state, message_id_keys,
    set_message_states,
)
from qz_outbound.sms.schema import sms_outbox, sms_part, sms_sender_run

log = logging.getLogger(__name__)


class SenderBusy(RuntimeError):
    """Another sender is live for this county."""


@dataclass
class Run:
    token: str
    county_code: str
    cycle_date: dt.date
    journal: journal_mod.Journal
    settled_dead_runs: int = 0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_dead(row, lease_seconds: float) -> bool:
    if row.host == journal_mod.host_name() and row.boot_id == journal_mod.boot_id():
        return not _pid_alive(row.pid)
    if row.boot_id != journal_mod.boot_id() and row.host == journal_mod.host_name():
        return True  # this machine rebooted since: that process is gone
    heartbeat = row.heartbeat_at
    if heartbeat.tzinfo is None:
        heartbeat = heartbeat.replace(tzinfo=clock.SHANGHAI)
    return (clock.now() - heartbeat).total_seconds() > lease_seconds


def start_run(engine: Engine, county_code: str, cycle_date: dt.date, state_dir: Path,
              lease_seconds: float = 300) -> Run:
    """Settle dead runs of the county, then take the county's lease."""
    with engine.begin() as conn:
        live = conn.execute(sa.select(sms_sender_run).where(
            sms_sender_run.c.county_code == county_code, sms_sender_run.c.finished_at.is_(None))).all()
    for row in live:
        if not _is_dead(row, lease_seconds):
            raise SenderBusy(f"a sender for county {county_code} is already running (pid {row.pid} on {row.host})")
    for row in live:
        settle_dead_run(engine, row)
    token = uuid.uuid4().hex
    path = Path(state_dir) / "journal" / f"{county_code}-{token}.log"
    now = clock.now()
    try:
        with engine.begin() as conn:
            conn.execute(sms_sender_run.insert().values(
                token=token, county_code=county_code, cycle_date=cycle_date, host=journal_mod.host_name(),
                boot_id=journal_mod.boot_id(), pid=os.getpid(), journal=str(path), started_at=now,
                heartbeat_at=now, live=1))
    except IntegrityError as exc:
        raise SenderBusy(f"a sender for county {county_code} started at the same time") from exc
    return Run(token=token, county_code=county_code, cycle_date=cycle_date, journal=journal_mod.Journal(path, token),
               settled_dead_runs=len(live))


def heartbeat(conn, token: str) -> None:
    conn.execute(sms_sender_run.update().where(sms_sender_run.c.token == token).values(heartbeat_at=clock.now()))


def finish_run(engine: Engine, run: Run, outcome: str) -> None:
    """Release what the run claimed but never wrote, close its lease and drop its journal."""
    run.journal.flush()
    with engine.begin() as conn:
        conn.execute(sms_outbox.update()
                     .where(sms_outbox.c.claim_token == run.token, sms_outbox.c.state == SENDING)
                     .values(state=QUEUED, claim_token=None))
        conn.execute(sms_sender_run.update().where(sms_sender_run.c.token == run.token)
                     .values(finished_at=clock.now(), outcome=outcome, live=None))
    run.journal.close(remove=True)


def settle_dead_run(engine: Engine, row) -> dict[str, int]:
    """Settle the messages a dead run held, from its journal; returns counts."""
    state = journal_mod.read(row.journal, row.boot_id, row.host)
    counts = {"requeued_parts": 0, "in_doubt_parts": 0, "accepted_parts": 0, "rejected_parts": 0}
    now = clock.now()
    with engine.begin() as conn:
        held = conn.execute(
            sa.select(sms_part.c.contact_id, sms_part.c.part_no, sms_part.c.state)
            .join(sms_outbox, sms_outbox.c.contact_id == sms_part.c.contact_id)
            .where(sms_outbox.c.claim_token == row.token, sms_outbox.c.state == SENDING)
        ).all()
        by_msg: dict[str, dict[int, str]] = {}
        updates = []
        for cid, part_no, pstate in held:
            new = pstate
            if pstate == PENDING:
                last = state.last.get((cid, part_no))
                if state.trusted and last in (None, "N"):
                    counts["requeued_parts"] += 1            # never written, or refused for now
                elif state.trusted and last == "A":
                    new = ACCEPTED
                    mid = state.message_ids.get((cid, part_no), "")
                    dec, hexv = message_id_keys(mid) if mid else (None, None)
                    updates.append(dict(b_cid=cid, b_no=part_no, b_state=ACCEPTED, b_mid=mid or None,
                                        b_dec=dec, b_hex=hexv, b_err=None))
                    counts["accepted_parts"] += 1
                elif state.trusted and last == "R":
                    new = REJECTED
                    updates.append(dict(b_cid=cid, b_no=part_no, b_state=REJECTED, b_mid=None, b_dec=None,
                                        b_hex=None, b_err=state.statuses.get((cid, part_no))))
                    counts["rejected_parts"] += 1
                else:                                          # written, answer unknown (or no journal)
                    new = IN_DOUBT
                    updates.append(dict(b_cid=cid, b_no=part_no, b_state=IN_DOUBT, b_mid=None, b_dec=None,
                                        b_hex=None, b_err=None))
                    counts["in_doubt_parts"] += 1
            by_msg.setdefault(cid, {})[part_no] = new
        if updates:
            conn.execute(
                sms_part.update()
                .where(sms_part.c.contact_id == sa.bindparam("b_cid"), sms_part.c.part_no == sa.bindparam("b_no"),
                       sms_part.c.state == PENDING)
                .values(state=sa.bindparam("b_state"), message_id=sa.bindparam("b_mid"),
                        mid_dec=sa.bindparam("b_dec"), mid_hex=sa.bindparam("b_hex"),
                        error=sa.bindparam("b_err"), submitted_at=now,
                        accepted_at=sa.case((sa.bindparam("b_state") == ACCEPTED, now), else_=None)),
                updates,
            )
        messages = []
        for cid, parts in by_msg.items():
            derived = derive_state(parts.values())
            if derived == QUEUED:
                messages.append(dict(contact_id=cid, state=QUEUED, claim_token=None))
            else:
                if any(p == REJECTED for p in parts.values()):
                    # what was never written of a refused message is not sent
                    conn.execute(sms_part.update().where(sms_part.c.contact_id == cid, sms_part.c.state == PENDING)
                                 .values(state=SKIPPED))
                messages.append(dict(contact_id=cid, state=derived, claim_token=None, submitted_at=now,
                                     reason="sender died with the part in flight" if derived == IN_DOUBT else None))
        set_message_states(conn, messages, from_states=[SENDING])
        conn.execute(sms_sender_run.update().where(sms_sender_run.c.token == row.token)
                     .values(finished_at=now, live=None,
                             outcome=f"died; settled ({'journal' if state.trusted else 'no trusted journal'}): "
                                     + ", ".join(f"{k}={v}" for k, v in counts.items())))
    try:
        Path(row.journal).unlink()
    except OSError:
        pass
    log.warning("settled a dead sender run for county %s: %s", row.county_code, counts)
    return counts
