"""
### campaign_economics — what HQ steers by (营销效益): value, cost and ROI per campaign

Daily at 04:30 Asia/Shanghai, after the data mart's nightly load and before the 05:00 cycle, for the
cycle date of its logical date. Its own DAG rather than a task of `outcomes_loop`: the figures move
with a month of bills or a day of conversions, not every 30 minutes, and the step reads the whole
`subscriber` snapshot (one pass a day is enough; every 30 minutes would repeat it 48 times).

| task | what it does |
| --- | --- |
| check_config | the config files (campaigns' `offer_cost_yuan`, `channels.yaml` `contact_cost_yuan`, `economics.yaml`...): a mistake fails without retry, naming file, line and field |
| measure_economics | closed months' bills → `stg_bill`, the latest subscriber snapshot → `stg_subscriber`; per cycle and per month, campaign and slice: incremental ARPU with its 95% Welch interval, incremental revenue, customers kept, conversion uplift, cost (contact + offer + commission) and ROI → `mkt_campaign_economics`, rewritten for the cycles that can have changed (docs/economics.md) |
| learning_review | the learning loop's daily review (docs/learning.md "Offline evaluation and guard rails"): the offline evaluation of the learned policy against the fixed priorities over the logged cycles (inverse propensity weighting) → `mkt_policy_evaluation`, the gate on the learned mode; the share-change report of the latest cycle → `reports/<day>/offer_shares.csv` |

`learning_review` lives here rather than in `outcomes_loop`: like the economics it moves with a day of
conversions, it replays weeks of logged cycles (once a day is enough, not every 30 minutes), and it
runs after `measure_economics` and before the 05:00 cycle whose arbitration the gate decides.

Idempotent on its logical date (the rows it rewrites are replaced in one transaction). XComs carry
counts and dates only, never customer data. Settings: `config/economics.yaml`.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import task
from qz_dags import CONTACTS, check_config, cron, outbound_dag


@outbound_dag(
    "campaign_economics",
    schedule=cron("30 4 * * *"),
    doc_md=__doc__,
    tags=["outcomes", "economics"],
    retry_delay=dt.timedelta(minutes=5),
    execution_timeout=dt.timedelta(minutes=60),
    task_defaults={"pool": "marketing_db"},
)
def campaign_economics():
    @task(inlets=[CONTACTS])
    def measure_economics(_checked: dict, logical_date=None) -> dict:
        from qz_db_hook import DATAMART, MARKETING_DB, engine_for

        from qz_outbound import campaigns, clock, economics

        return economics.write_economics(engine_for(DATAMART), engine_for(MARKETING_DB),
                                         clock.cycle_date_of(logical_date), campaigns.load_library())

    @task(inlets=[CONTACTS])
    def learning_review(_measured: dict, logical_date=None) -> dict:
        """Counts and estimates only in the XCom (no customer data)."""
        from qz_db_hook import MARKETING_DB, engine_for

        from qz_outbound import clock
        from qz_outbound.learning import evaluation, shares

        engine = engine_for(MARKETING_DB)
        day = clock.cycle_date_of(logical_date)
        return {"evaluation": evaluation.write_evaluation(engine, day), "shares": shares.write_share_report(engine, day)}

    learning_review(measure_economics(check_config()))


dag = campaign_economics()
