"""
### agent_settlement — the agent shops' month: commission (酬金) and outlet grades

On the 2nd of each month at 06:00 Asia/Shanghai, for the month before (a re-run gives the same
statement):

| task | what it does | output |
| --- | --- | --- |
| settle_commission | orders for the recommended product by the recommended customer within the window (7 days) of an agent recommendation: each order paid once, to one shop, at the product's rate | `mkt_agent_commission`; `var/output/commission/<YYYY-MM>/`: a statement per shop and a summary per county (CSV UTF-8 with BOM and XLSX) |
| grade_outlets | score per shop from customers served, floor area, outlet type and conversions; grades A–D; distribution per county | `mkt_agent_grade`; `var/output/reports/agent-grades/<YYYY-MM>/` |

Settings: `config/agent_channel.yaml`. Connections `datamart` (read-only) and `marketing_db`.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import task
from qz_dags import cron, outbound_dag


@outbound_dag(
    "agent_settlement",
    schedule=cron("0 6 2 * *"),
    doc_md=__doc__,
    tags=["agent", "commission"],
    retry_delay=dt.timedelta(minutes=5),
    execution_timeout=dt.timedelta(minutes=60),
)
def agent_settlement():
    @task
    def settle_commission(logical_date=None) -> dict:
        from qz_db_hook import DATAMART, MARKETING_DB, engine_for

        from qz_outbound import campaigns, clock
        from qz_outbound.agent import commission

        month = commission.previous_month(clock.cycle_date_of(logical_date))
        return commission.settle_month(engine_for(DATAMART), engine_for(MARKETING_DB), month,
                                       campaigns.load_library())

    @task
    def grade_outlets(settled: dict) -> dict:
        from qz_db_hook import DATAMART, MARKETING_DB, engine_for

        from qz_outbound.agent import grading

        return grading.grade_month(engine_for(DATAMART), engine_for(MARKETING_DB),
                                   dt.date.fromisoformat(settled["month"]))

    grade_outlets(settle_commission())


dag = agent_settlement()
