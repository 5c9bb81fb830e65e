"""
### agent_channel — top-ups at agent shops into recommendations (代理商渠道, issue 8)

Every 5 minutes a run serves top-ups for the next 5 minutes: every few seconds it

| step | what it does | where |
| --- | --- | --- |
| ingest | new `recharge_event`s from the data mart, with what the decision needs, into `mkt_agent_event` (insert-on-conflict on the event id) | `include/sql/agent_events.sql` |
| recommend | only within 08:00–20:00: claims a batch of pending events, chooses the offer (current offer of the latest cycle, else the agent campaigns' rules), applies the contact policy, records `mkt_contact` (channel `agent`, `agent_id`) and queues the shop owner's and the customer's SMS — one transaction | `include/sql/agent_claim.sql`, `agent_decide.sql` |
| send | the daily cycle's SMPP sender on the outbox's `agent` lane, within the window and the contracted rate | `qz_outbound/agent/recommend.py` |

Runs may overlap (a slow one and the next): events are claimed in SQL, so each is decided once;
one of them sends at a time. A top-up at night waits for 08:00 and is answered only while its
offer is still valid (`config/agent_channel.yaml`). Every event stays in `mkt_agent_event` with
its outcome. Connections: `datamart` (read-only), `marketing_db`, `smsc`. XComs and logs carry
counts only.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import task
from qz_dags import CONTACTS, cron, outbound_dag

SERVE_SECONDS = 290      # a run serves until shortly before the next one starts
POLL_SECONDS = 5


@outbound_dag(
    "agent_channel",
    schedule=cron("*/5 * * * *"),
    max_active_runs=2,          # the next run may start while a slow one finishes: claims keep them apart
    doc_md=__doc__,
    tags=["agent"],
    retry_delay=dt.timedelta(seconds=30),
    execution_timeout=dt.timedelta(minutes=15),
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
        from qz_outbound.agent import recommend

        return recommend.serve(engine_for(DATAMART), engine_for(MARKETING_DB), campaigns.load_library(),
                               SmppHook().get_settings(), seconds=SERVE_SECONDS, poll_seconds=POLL_SECONDS)

    serve_top_ups(check_config())


def _today():
    from qz_outbound import clock

    return clock.today()


dag = agent_channel()
