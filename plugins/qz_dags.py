"""What every qz-outbound DAG shares: the clock, the defaults and the assets.

* :func:`outbound_dag` is ``airflow.sdk.dag`` with the project's settings: start date and
  timezone (Asia/Shanghai, the project's one clock), no catch-up, owner ``hq-marketing``, retries,
  and the failure callback on every task (``qz_alerts.on_task_failure``, docs/runbook.md), so no
  DAG can fail without alerting HQ;
* :func:`cron` is a cron trigger timetable in that timezone (the run at 05:00 on 23 Nov carries
  23 Nov as its logical date);
* :func:`check_config` is the first task of a DAG that needs nothing but the common check (every
  config file, the three connections, marketing_db at head); DAGs that report more declare their own;
* the :class:`~airflow.sdk.Asset` definitions that connect DAGs, defined once and imported by the
  DAGs that produce or consume them and by the county portal plugin, which records an event on
  :data:`CALL_OUTCOMES` when an upload loads rows (if the URIs drifted apart, uploads would silently
  stop triggering ``outcomes_loop``).

Imported by DAG files at parse time: only ``airflow.sdk``, ``pendulum`` and ``qz_alerts``
(itself light); nothing here touches a database, a file or the network.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pendulum
from airflow.sdk import Asset, CronTriggerTimetable, dag, task
from qz_alerts import on_task_failure

TIMEZONE = "Asia/Shanghai"
START_DATE = pendulum.datetime(2026, 11, 1, tz=TIMEZONE)
OWNER = "hq-marketing"

# the marketing database's tables other DAGs wait for
SEGMENT_SNAPSHOT = Asset("qz-outbound://marketing_db/mkt_segment_snapshot")
CONTACTS = Asset("qz-outbound://marketing_db/mkt_contact")
# recorded by the county portal when an upload loads call outcomes (plugins/county_portal.py)
CALL_OUTCOMES = Asset("qz-outbound://marketing_db/mkt_call_outcome")


def cron(expression: str) -> CronTriggerTimetable:
    """A cron schedule on the project's clock (a trigger timetable: logical date = the run's day)."""
    return CronTriggerTimetable(expression, timezone=TIMEZONE)


def default_args(*, retries: int = 2, retry_delay: dt.timedelta, execution_timeout: dt.timedelta,
                 **extra: Any) -> dict[str, Any]:
    """Task defaults of a DAG: always the owner and the failure callback (alert after the last try)."""
    return {"owner": OWNER, "retries": retries, "retry_delay": retry_delay,
            "execution_timeout": execution_timeout, **extra, "on_failure_callback": on_task_failure}


def outbound_dag(dag_id: str, *, schedule: Any, doc_md: str | None, tags: list[str], max_active_runs: int = 1,
                 retries: int = 2, retry_delay: dt.timedelta, execution_timeout: dt.timedelta,
                 task_defaults: dict[str, Any] | None = None, **dag_kwargs: Any):
    """``@dag`` with the project's settings (see the module's docstring); ``tags`` come after
    ``outbound``, ``task_defaults`` add to the default arguments (``pool``...)."""
    return dag(
        dag_id=dag_id,
        schedule=schedule,
        start_date=START_DATE,
        catchup=False,
        max_active_runs=max_active_runs,
        doc_md=doc_md,
        tags=["outbound", *tags],
        default_args=default_args(retries=retries, retry_delay=retry_delay, execution_timeout=execution_timeout,
                                  **(task_defaults or {})),
        **dag_kwargs,
    )


@task(retries=0)
def check_config() -> dict:
    """Every config file HQ edits and the three connections (both databases reachable, marketing_db at
    the head revision, the smsc's fields); a failure stops the run here (no retry: a typo stays a typo)."""
    from qz_db_hook import check_connections

    return check_connections()
