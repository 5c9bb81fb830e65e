"""When a county's SMS are sent: the daily cycle's send step, without Airflow.

The cycle is published at 05:00; SMS may only be submitted between 08:00 and
20:00 Asia/Shanghai (contact-policy.md "When"). :func:`send_county` sends what
the window allows now and says what should happen next:

* everything submitted (or settled): done;
* the cycle's sending day has not opened yet (05:00 -> 08:00): wait until the
  opening, then call again — the DAG turns this into a reschedule of its
  sensor, so no worker slot is held while waiting;
* the cycle's sending day is over (the window closed at 20:00 with messages
  left, or an old cycle re-run at night): done for this cycle. What is left
  stays ``queued`` in the outbox and goes with the next cycle's send, which
  sends a county's leftovers of earlier cycles first (``send_batch`` takes
  every queued message up to its cycle date). Nothing is dropped, nothing is
  sent at night, and a day's run does not block the next day's cycle.
* another sender holds the county (a retry overlapping a run still draining):
  wait a minute and try again.

Return values are counts only (they go to XCom).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from sqlalchemy.engine import Engine

from qz_outbound import clock

log = logging.getLogger(__name__)

BUSY_RETRY = dt.timedelta(minutes=1)


@dataclass
class SendStep:
    done: bool
    counts: dict
    wait_until: dt.datetime | None = None   # when not done: call again at this time


def send_county(engine: Engine, cycle_date: dt.date, county_code: str, settings, sms_config=None) -> SendStep:
    """Send the county's queued SMS as far as the sending window allows; see the module doc."""
    from qz_outbound.sms import SenderBusy, send_batch

    try:
        result = send_batch(engine, cycle_date, county_code, settings, sms_config=sms_config).as_dict()
    except SenderBusy:
        log.info("county %s: another sender holds the county; trying again shortly", county_code)
        return SendStep(False, {"county_code": county_code, "busy": True}, clock.now() + BUSY_RETRY)
    if not result.get("window_closed") or not result.get("remaining"):
        return SendStep(True, result)
    opening = dt.datetime.fromisoformat(result["next_window_at"]).astimezone(clock.SHANGHAI)
    if opening.date() <= cycle_date:
        log.info("county %s: %d messages wait for the window opening at %s", county_code,
                 result["remaining"], opening.isoformat())
        return SendStep(False, result, opening)
    log.info("county %s: the cycle's sending day is over; %d messages wait for the next cycle's send",
             county_code, result["remaining"])
    result["handed_to_next_cycle"] = result["remaining"]
    return SendStep(True, result)
