"""When a run of ``agent_channel`` serves: from its start until the next run has taken over.

The DAG starts a run at the top of every hour (Airflow's scheduler, real time in Asia/Shanghai);
each run's serve task keeps polling until :data:`HANDOVER_SECONDS` after the *next* run's
scheduled start, so the next run's serve task is already polling before this one stops: no
top-up waits for a run to start (docs/agent-channel.md, "How the serve loop is scheduled").
The end is anchored to the wall clock, not to how long the task has run, so a run started late
by the scheduler, retried after a failure, or triggered by hand still hands over at the same
moment. Pure arithmetic: no database, no Airflow.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

RUN_EVERY_MINUTES = 60      # one run an hour: must divide a day, and match the DAG's cron
HANDOVER_SECONDS = 120      # both runs poll for this long after the next run's scheduled start
SHANGHAI = ZoneInfo("Asia/Shanghai")


def next_run_start(now: dt.datetime, every_minutes: int = RUN_EVERY_MINUTES) -> dt.datetime:
    """The first scheduled run start strictly after ``now`` (runs start every ``every_minutes``
    from midnight in Asia/Shanghai)."""
    if every_minutes <= 0 or (24 * 60) % every_minutes:
        raise ValueError(f"every_minutes must divide a day: {every_minutes}")
    local = now.astimezone(SHANGHAI)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    elapsed = (local - midnight).total_seconds()
    period = every_minutes * 60
    return midnight + dt.timedelta(seconds=(elapsed // period + 1) * period)


def serve_seconds(now: dt.datetime, every_minutes: int = RUN_EVERY_MINUTES,
                  handover_seconds: float = HANDOVER_SECONDS) -> float:
    """How long a serve task starting at ``now`` (real time, aware) polls: until the handover
    after the next scheduled run start."""
    end = next_run_start(now, every_minutes) + dt.timedelta(seconds=handover_seconds)
    return (end - now).total_seconds()
