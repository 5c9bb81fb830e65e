"""
### usage_pivot — the customers' three months of usage, ready before the 05:00 cycle

Daily at 04:40 Asia/Shanghai, after the data mart's nightly load, for the cycle date of its logical
date: brings `mkt_usage_pivot` up to date for that cycle's months M2..M0, so `outbound_daily`'s
segmentation reads it instead of grouping three months of usage itself (docs/runbook.md §2, "The
usage pivot"). On most days there is nothing to do but compare the fingerprint (seconds); on the
day a month's usage arrives in the data mart, or after a correction of a closed month, it rebuilds
the pivot here, off the cycle's path, and the 05:00 segmentation reuses it.

Segmentation checks the fingerprint again itself and rebuilds if the data mart changed after this
run (or if this DAG did not run): this DAG only moves the work earlier, the rows never depend on it.
Where the data mart is another PostgreSQL database than marketing_db, or `reuse_usage_pivot` is
false, there is no pivot and the task says so.

| task | what it does |
| --- | --- |
| check_config | the config files and the connections (marketing_db at head): a mistake fails without retry |
| refresh_usage_pivot | fingerprint of the data mart's usage for M2..M0 against the pivot's; rebuilds on a difference |

Idempotent on its logical date. The XCom is the month and one line of counts, never customer data.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import task
from qz_dags import check_config, cron, outbound_dag


@outbound_dag(
    "usage_pivot",
    schedule=cron("40 4 * * *"),
    doc_md=__doc__,
    tags=["segmentation"],
    retry_delay=dt.timedelta(minutes=3),
    execution_timeout=dt.timedelta(minutes=30),
    task_defaults={"pool": "marketing_db"},
)
def usage_pivot():
    @task
    def refresh_usage_pivot(_checked: dict, logical_date=None) -> dict:
        from qz_db_hook import DATAMART, MARKETING_DB, engine_for

        from qz_outbound import clock, segmentation

        day = clock.cycle_date_of(logical_date)
        table, how = segmentation.usage_pivot(engine_for(DATAMART), engine_for(MARKETING_DB), day,
                                              segmentation.load_config())
        return {"cycle_date": day.isoformat(), "usage_month": f"{segmentation.cycle_months(day)[0]:%Y-%m}",
                "pivot": table is not None, "detail": how}

    refresh_usage_pivot(check_config())


dag = usage_pivot()
