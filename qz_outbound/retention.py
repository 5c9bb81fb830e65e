"""Data at rest: how long files and rows holding full customer numbers are kept (docs/security.md).

Run once a day by ``outbound_daily``'s ``data_retention`` task:

* call lists (``<output>/call_lists/<cycle>/<county>/``): the newest ``keep_cycles`` cycles of
  ``config/portal.yaml`` are kept (what a county can still download); older cycle folders are deleted;
* portal uploads (``<output>/portal/uploads/<county>/``): archived files older than
  ``upload_keep_days`` (``config/portal.yaml``) are deleted; the ``portal_upload`` row (counts, hash,
  who, when) stays as the record;
* ``sms_inbound``: processed rows older than ``receiver.inbound_keep_days`` (``config/sms.yaml``) are
  deleted. A row whose effect is not applied yet (``processed_at`` null) is never deleted: nothing
  arriving is dropped unread. The effects themselves (receipts in ``sms_part``, replies in
  ``mkt_contact``, opt-outs in ``mkt_opt_out``) are not touched.

Files holding numbers are written owner-only (0600 in 0700 folders) by :func:`private_file`.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import shutil
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from qz_outbound import clock, reports

log = logging.getLogger(__name__)

_CYCLE_DIR = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_UPLOAD_STAMP = re.compile(r"^U(\d{14})-")


def private_dir(path: Path, root: Path | None = None) -> Path:
    """Create ``path`` owner-only (0700), and the folders between it and ``root`` (not ``root``
    itself: the output volume's top belongs to the deployment)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    p = path
    while root is None or (p != Path(root) and Path(root) in p.parents):
        if p.stat().st_uid == os.getuid():   # a folder the deployment made is left as it is
            os.chmod(p, 0o700)
        if root is None:
            break
        p = p.parent
    return path


def private_file(path: Path) -> Path:
    os.chmod(path, 0o600)
    return path


def purge_call_lists(keep_cycles: int, root: Path | None = None) -> int:
    """Delete call-list cycle folders beyond the newest ``keep_cycles``; returns how many."""
    base = (root or reports.output_dir()) / "call_lists"
    if not base.is_dir():
        return 0
    cycles = sorted((p for p in base.iterdir() if p.is_dir() and _CYCLE_DIR.match(p.name)), reverse=True)
    for old in cycles[keep_cycles:]:
        shutil.rmtree(old)
    return max(0, len(cycles) - keep_cycles)


def purge_uploads(keep_days: int, now: dt.datetime | None = None, root: Path | None = None) -> int:
    """Delete archived portal uploads older than ``keep_days`` (by the time in the upload id)."""
    base = (root or reports.output_dir()) / "portal" / "uploads"
    if not base.is_dir():
        return 0
    now = now or clock.now()
    cutoff = (now.astimezone(clock.SHANGHAI) - dt.timedelta(days=keep_days)).replace(tzinfo=None)
    removed = 0
    for path in base.glob("*/*"):
        if not path.is_file():
            continue
        stamp = _UPLOAD_STAMP.match(path.name)
        when = dt.datetime.strptime(stamp.group(1), "%Y%m%d%H%M%S") if stamp else \
            dt.datetime.fromtimestamp(path.stat().st_mtime, clock.SHANGHAI).replace(tzinfo=None)
        if when < cutoff:
            path.unlink()
            removed += 1
    return removed


def purge_inbound(marketing: Engine, keep_days: int, now: dt.datetime | None = None) -> int:
    """Delete processed ``sms_inbound`` rows received more than ``keep_days`` ago."""
    from qz_outbound.sms.schema import sms_inbound as t

    cutoff = (now or clock.now()) - dt.timedelta(days=keep_days)
    with marketing.begin() as conn:
        return conn.execute(t.delete().where(t.c.received_at < cutoff, t.c.processed_at.is_not(None))).rowcount


def apply(marketing: Engine, now: dt.datetime | None = None) -> dict[str, int]:
    """Every retention rule with its configured period; counts only (for XCom and the log)."""
    from qz_outbound.portal.access import load_portal_config
    from qz_outbound.sms.settings import load_sms_config

    portal = load_portal_config()
    sms = load_sms_config()
    counts = {
        "call_list_cycles_deleted": purge_call_lists(portal.keep_cycles),
        "uploads_deleted": purge_uploads(portal.upload_keep_days, now),
        "sms_inbound_deleted": purge_inbound(marketing, sms.receiver.inbound_keep_days, now),
    }
    log.info("retention: %s", counts)
    return counts
