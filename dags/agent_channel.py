"""
### agent_channel — top-ups at agent shops into recommendations (代理商渠道, issue 8)

A run starts at the top of every hour and serves top-ups until two minutes after the next run has
started (runs hand over without a gap, see below): every 5 seconds it

| step | what it does | where |
| --- | --- | --- |
| ingest | new `recharge_event`s from the data mart, with what the decision needs, into `mkt_agent_event` (insert-on-conflict on the event id) | `include/sql/agent_events.sql` |
| recommend | only within 08:00–20:00: claims a batch of pending events, lists up to `max_products` products the customer is eligible for (the current offer of the latest cycle if agent-enabled first, then the agent campaigns' rules by expected value), applies the contact policy, records one `mkt_contact` (channel `agent`, `agent_id`) with the listed products in `mkt_agent_offer`, and queues the shop owner's SMS (the list) and the customer's (the first) — one transaction | `include/sql/agent_claim.sql`, `agent_decide.sql` |
| send | the daily cycle's SMPP sender on the outbox's `agent` lane, within the window and the contracted rate | `qz_outbound/agent/recommend.py` |

Two runs overlap for the two-minute handover (and a slow one with the next): events are claimed in
SQL, so each is decided once; the outbox lane's sender lease lets one of them send at a time. A top-up at night waits for 08:00 and is answered only while its
offer is still valid (`config/agent_channel.yaml`). Every event stays in `mkt_agent_event` with
its outcome. Connections: `datamart` (read-only), `marketing_db`, `smsc`. XComs and logs carry
counts only.

**Why hourly runs that hand over** (issue 20; docs/agent-channel.md, "How the serve loop is
scheduled"; figures in benchmarks/results/agent_scheduler.md). The channel is a service that must
always be polling, and Airflow schedules runs. Weighed:

* a new run every 5 minutes serving 290 s (the first design): the serve task stops before the next
  run's serve task has started (scheduling + the `check_config` task), so top-ups written at the
  end of a window wait for the next run; 288 runs a day of scheduler and log churn;
* `schedule="@continuous"` with one active run: the next run is only created when the previous one
  has finished, so every handover is a gap of the scheduler's delay plus task start-up;
* a deferrable trigger or an `AssetWatcher` on the data mart: a DAG run (or a task resumed on a
  worker) per batch of top-ups, each paying task start-up (seconds) on the latency path, and a
  trigger polling the data mart from the triggerer's event loop, which needs an async driver;
  claims would still be needed for overlapping runs;
* a sensor in reschedule mode: each poke is a task start, the same per-batch start-up cost;
* **chosen**: a cron run every hour (`max_active_runs=2`) whose serve task polls until
  `HANDOVER_SECONDS` after the next run's scheduled start, anchored on the wall clock
  (`qz_outbound/agent/serving.py`), so a late, retried or manual run hands over at the same
  moment. The next run is polling before this one stops: no gap, one long task per hour, the
  exactly-once claims, the sender lease and the sending window unchanged.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import task
from qz_dags import CONTACTS, cron, outbound_dag

POLL_SECONDS = 5


@outbound_dag(
    "agent_channel",
    schedule=cron("0 * * * *"),  # = qz_outbound.agent.serving.RUN_EVERY_MINUTES (a test checks)
    max_active_runs=2,          # the next run starts while this one still serves: claims keep them apart
    doc_md=__doc__,
    tags=["agent"],
    retry_delay=dt.timedelta(seconds=30),
    execution_timeout=dt.timedelta(minutes=75),   # an hour, the handover, and a margin
)
def agent_channel():
    @task(retries=0)
    def check_config() -> dict:
        """Every config file and the three connections (a typo, a missing field or marketing_db behind
        the head revision stops the run, with file and line or connection and field)."""
        from qz_db_hook import check_connections

        from qz_outbound import campaigns
        from qz_outbound.agent import recommend

        check_connections()
        library = campaigns.load_library()
        return {"agent_campaigns": len(recommend.agent_campaigns(library, _today()))}

    @task(outlets=[CONTACTS])
    def serve_top_ups(_config: dict) -> dict:
        from qz_db_hook import DATAMART, MARKETING_DB, engine_for
        from smpp_hook import SmppHook

        from qz_outbound import campaigns
        from qz_outbound.agent import recommend, serving

        # real time, not the project clock: Airflow's cron runs on it
        seconds = serving.serve_seconds(dt.datetime.now(dt.timezone.utc))
        return recommend.serve(engine_for(DATAMART), engine_for(MARKETING_DB), campaigns.load_library(),
                               SmppHook().get_settings(), seconds=seconds, poll_seconds=POLL_SECONDS)

    serve_top_ups(check_config())


def _today():
    from qz_outbound import clock

    return clock.today()


dag = agent_channel()
