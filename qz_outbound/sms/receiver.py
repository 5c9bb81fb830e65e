"""The receiver: a bind that stays up around the clock for receipts and replies.

It is a service of the deployment (systemd unit, container, or
``python -m qz_outbound.sms receive``), independent of any DAG run: receipts
come for days after a batch, replies whenever customers write. Each read
gathers the deliver_sm available (up to ``batch_max``), stores and applies
them in one transaction, and acknowledges them only after the commit. If the
database is unavailable nothing is acknowledged and the bind is dropped: the
SMSC keeps the messages and delivers them again, so a restart (or a crash)
loses nothing. Receipts that match nothing yet are tried again every
``retry_unmatched_seconds``.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from qz_outbound.sms import inbound
from qz_outbound.sms.link import LinkDown, SmppLink
from qz_outbound.sms.settings import SmsConfig, SmscSettings, load_sms_config

log = logging.getLogger(__name__)


def _reason(exc: SQLAlchemyError) -> str:
    """What went wrong, for the log: the error class, and the driver's message for an operational
    error (e.g. "database is locked"); never the statement's parameters, which name customers."""
    if isinstance(exc, OperationalError) and exc.orig is not None:
        return f"{type(exc).__name__}: {str(exc.orig).splitlines()[0][:200]}"
    return type(exc).__name__


def run_receiver(
    engine: Engine,
    settings: SmscSettings,
    *,
    sms_config: SmsConfig | None = None,
    stop: threading.Event | None = None,
    on_bound: Callable[[], None] | None = None,
    in_doubt_grace: float = 5.0,
) -> dict[str, int]:
    """Receive until ``stop`` is set (forever by default); returns counts."""
    cfg = sms_config or load_sms_config()
    rc = cfg.receiver
    stop = stop or threading.Event()
    link = SmppLink(settings, bind_mode=rc.bind_mode)
    totals = {"stored": 0, "binds": 0}
    last_retry = 0.0      # every pending row (receipts that matched nothing yet) tried again
    last_new = 0.0        # new receipts applied in batches
    seen_id = 0
    unmatched_since: dict[int, float] = {}   # receipts that matched nothing yet, and since when
    while not stop.is_set():
        try:
            link.connect_with_backoff(give_up=float("inf"), stop=stop.is_set)
        except LinkDown:
            continue
        totals["binds"] += 1
        if on_bound:
            on_bound()
        try:
            while not stop.is_set():
                batch = []
                pdus = list(link.read(timeout=0.2))
                while pdus:
                    for pdu in pdus:
                        if pdu.command == "deliver_sm":
                            batch.append(pdu)
                        elif not link.handle_control(pdu):
                            log.debug("ignored %s", pdu.command)
                    if len(batch) >= rc.batch_max:
                        break
                    pdus = list(link.read(timeout=0.0))
                if batch:
                    try:
                        with engine.begin() as conn:
                            counts = inbound.store_and_apply(
                                conn, [inbound.parse_deliver_sm(p) for p in batch], cfg.replies)
                    except SQLAlchemyError as exc:
                        # not stored, so not acknowledged: the SMSC delivers them again
                        log.error("could not store %d deliver_sm (%s); dropping the bind", len(batch),
                                  _reason(exc))
                        link.close()
                        time.sleep(1.0)
                        break
                    link.ack_deliver(batch)
                    totals["stored"] += counts.get("stored", 0)
                    log.debug("stored %s", counts)
                now = time.monotonic()
                retry_all = now - last_retry >= rc.retry_unmatched_seconds
                if retry_all or (not batch and now - last_new >= 0.05) or now - last_new >= 0.25:
                    ripe = {i for i, since in unmatched_since.items() if now - since >= in_doubt_grace}
                    try:
                        _counts, top, still = inbound.process_pending(
                            engine, cfg.replies, ripe, rc.unmatched_give_up_hours,
                            after_id=0 if retry_all else seen_id, workers=rc.apply_workers)
                    except SQLAlchemyError as exc:
                        log.error("applying receipts failed (%s); tried again on the next pass", _reason(exc))
                    else:
                        seen_id = max(seen_id, top)
                        last_new = now
                        if retry_all:
                            last_retry = now
                            unmatched_since = {i: unmatched_since.get(i, now) for i in still}
                        else:
                            for i in still:
                                unmatched_since.setdefault(i, now)
                link.keep_alive()
        except LinkDown as exc:
            log.warning("receiver bind lost (%s); reconnecting", exc)
    link.close(unbind=True)
    return totals
