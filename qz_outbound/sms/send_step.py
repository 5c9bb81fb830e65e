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

Every result also says how many of the county's messages of the cycle are ``in_doubt``
(``in_doubt_messages``): a part that may have reached the SMSC when the link or the sender died is
never sent again, so HQ is told (an alert, the portal's progress table, the cycle summary) rather
than the customer texted twice.

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
    from qz_outbound.sms.outbox import IN_DOUBT, outbox_counts

    try:
        result = send_batch(engine, cycle_date, county_code, settings, sms_config=sms_config).as_dict()
    except SenderBusy:
        log.info("county %s: another sender holds the county; trying again shortly", county_code)
        return SendStep(False, {"county_code": county_code, "busy": True}, clock.now() + BUSY_RETRY)
    result["in_doubt_messages"] = outbox_counts(engine, county_code, cycle_date).get(IN_DOUBT, 0)
    if result["in_doubt_messages"]:
        log.warning("county %s: %d messages of cycle %s are in doubt (never re-sent; see docs/runbook.md)",
                    county_code, result["in_doubt_messages"], cycle_date)
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


def in_doubt_alert(cycle_date: dt.date, county_code: str, in_doubt: int, *, dag_id: str = "outbound_daily",
                   run_id: str | None = None, task_id: str | None = "send_sms", map_index: int | None = None):
    """HQ's alert for a county whose send ended with messages in doubt (counts only), or None."""
    from qz_outbound import counties
    from qz_outbound.alerts import Alert

    if not in_doubt:
        return None
    where = counties.label(county_code)
    return Alert(
        kind="sms_in_doubt",
        summary=f"SMS in doubt: {in_doubt} messages of {where}, cycle {cycle_date} (短信状态不明 {in_doubt} 条，不会重发)",
        dag_id=dag_id, run_id=run_id, task_id=task_id, map_index=map_index, label=where,
        logical_date=cycle_date.isoformat(),
        detail=f"{in_doubt} messages may or may not have reached their customers: the SMSC link or the sender "
               "died while they were in flight. They are never re-sent (a customer texted twice is the worse "
               "error); a late delivery receipt still settles them. See docs/runbook.md, 'When the SMSC is down'.")
