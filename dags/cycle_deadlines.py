"""
### cycle_deadlines — are the day's lists ready by 08:00? (外呼清单/短信 08:00 就绪检查)

Runs with `outbound_daily` (05:00 Asia/Shanghai, same cycle date). Its one task watches what the
cycle leaves behind (segmentation, every county published, every county's call list on disk;
`qz_outbound/readiness.py`) and succeeds as soon as everything is there. The run carries an
**Airflow Deadline Alert at 08:00**: if the lists are not all ready by then, the triggerer sends
an alert (connections `alert_webhook` / `alert_smtp`, see `docs/runbook.md`). If they are still
not ready at 12:00 the task fails, which alerts again (the failure callback); its log's last
poke names what is missing.

HQ's reading: this run green before 08:00 = the day's call lists and SMS queues are out.

Why a DAG of its own: a Deadline Alert belongs to a DAG run, and an `outbound_daily` run lasts
until the SMS window closes (20:00); "the lists by 08:00" is a deadline on stages inside it.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import AsyncCallback, DeadlineAlert, DeadlineReference, PokeReturnValue, task
from qz_dags import cron, outbound_dag

LISTS_DUE = "08:00"


@outbound_dag(
    "cycle_deadlines",
    schedule=cron("0 5 * * *"),
    doc_md=__doc__,
    tags=["operations"],
    retries=1,
    retry_delay=dt.timedelta(minutes=1),
    execution_timeout=dt.timedelta(minutes=5),
    # logical date 05:00 + 3 h = 08:00 on the cycle day
    deadline=DeadlineAlert(reference=DeadlineReference.DAGRUN_LOGICAL_DATE, interval=dt.timedelta(hours=3),
                           callback=AsyncCallback("qz_alerts.on_deadline_missed",
                                                  kwargs={"stage": "the day's call lists and SMS queues",
                                                          "due": LISTS_DUE})),
)
def cycle_deadlines():
    # a poke is one small query and a few file checks; between pokes no worker slot is held
    @task.sensor(mode="reschedule", poke_interval=120, timeout=dt.timedelta(hours=7).total_seconds())
    def lists_ready(logical_date=None) -> PokeReturnValue:
        from qz_db_hook import MARKETING_DB, engine_for

        from qz_outbound import clock, readiness

        cycle_date = clock.cycle_date_of(logical_date)
        missing = readiness.lists_missing(engine_for(MARKETING_DB), cycle_date)
        if missing:   # each poke's log says what is still missing (county names and stages only)
            print(f"cycle {cycle_date} not ready: " + "; ".join(missing))
        return PokeReturnValue(is_done=not missing, xcom_value={"cycle_date": cycle_date.isoformat(), "ready": True})

    lists_ready()


dag = cycle_deadlines()
