"""
### outcomes_loop — closing the loop (营销循环): outcomes into the contact history, attribution, HQ's report

Every 30 minutes, and within a minute of a county uploading call outcomes in the portal (the asset
`mkt_call_outcome`, recorded by the portal), for the cycle date of its logical date (or of when it
was triggered) in Asia/Shanghai:

| task | what it does |
| --- | --- |
| apply_call_outcomes | county call outcomes uploaded in the portal (`mkt_call_outcome`) → `mkt_contact` response; the latest outcome of a contact wins |
| stage_orders | BOSS `order_event`s of the last days from the data mart → `stg_order`, each order once |
| attribute_orders | each order credited to the latest contact for its product within the attribution window (control contacts too) |
| stage_bills | closed months' bills (`usage_monthly`) → `stg_bill`, each month once, for the marketing trajectory |
| outcome_report | conversion, control conversion, uplift with intervals, cost and ROI per campaign / variant / segment type / county / channel / call script, ranked; trend over cycles; bills before/after; `outcomes.html` with charts and CSVs in the cycle's report folder (HQ's portal lists it); optional automatic pause |

SMS receipts and replies are applied by the SMS receiver service as they arrive. Every task is
idempotent: sources arriving late, twice or out of order give the same history. Settings in
`config/outcomes.yaml`. XComs carry counts and paths only.
"""

from __future__ import annotations

import datetime as dt

import pendulum
from airflow.sdk import Asset, AssetOrTimeSchedule, CronTriggerTimetable, dag, task
from qz_alerts import on_task_failure

CONTACTS = Asset("qz-outbound://marketing_db/mkt_contact")
# recorded by the county portal when an upload loads call outcomes (plugins/county_portal.py)
CALL_OUTCOMES = Asset("qz-outbound://marketing_db/mkt_call_outcome")


def _day(logical_date, dag_run):
    """The run's moment: its logical date, or when it was triggered (asset-triggered runs have none)."""
    return logical_date if logical_date is not None else dag_run.run_after


@dag(
    dag_id="outcomes_loop",
    schedule=AssetOrTimeSchedule(timetable=CronTriggerTimetable("*/30 * * * *", timezone="Asia/Shanghai"),
                                 assets=[CALL_OUTCOMES]),
    start_date=pendulum.datetime(2026, 11, 1, tz="Asia/Shanghai"),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["outbound", "outcomes"],
    default_args={"owner": "hq-marketing", "retries": 2, "retry_delay": dt.timedelta(minutes=2),
                  "execution_timeout": dt.timedelta(minutes=20), "pool": "marketing_db",
                  "on_failure_callback": on_task_failure},
)
def outcomes_loop():
    @task(outlets=[CONTACTS])
    def apply_call_outcomes() -> dict:
        from qz_db_hook import MARKETING_DB, engine_for

        from qz_outbound import outcomes

        return {"contacts_updated": outcomes.apply_call_outcomes(engine_for(MARKETING_DB))}

    @task
    def stage_orders(logical_date=None, dag_run=None) -> dict:
        from qz_db_hook import DATAMART, MARKETING_DB, engine_for

        from qz_outbound import clock, outcomes

        cfg = outcomes.load_outcome_config()
        until = _day(logical_date, dag_run).astimezone(clock.SHANGHAI) + dt.timedelta(days=1)
        return {"orders_new": outcomes.stage_orders(engine_for(DATAMART), engine_for(MARKETING_DB), until,
                                                    cfg.order_lookback_days)}

    @task(outlets=[CONTACTS])
    def attribute_orders(_staged: dict) -> dict:
        from qz_db_hook import MARKETING_DB, engine_for

        from qz_outbound import outcomes

        cfg = outcomes.load_outcome_config()
        return {"contacts_converted": outcomes.attribute_orders(engine_for(MARKETING_DB), cfg.attribution_days)}

    @task
    def stage_bills(logical_date=None, dag_run=None) -> dict:
        from qz_db_hook import DATAMART, MARKETING_DB, engine_for

        from qz_outbound import clock, outcomes

        return {"bill_rows_new": outcomes.stage_bills(engine_for(DATAMART), engine_for(MARKETING_DB),
                                                      clock.cycle_date_of(_day(logical_date, dag_run)))}

    @task
    def outcome_report(_calls: dict, _orders: dict, _bills: dict, logical_date=None, dag_run=None) -> dict:
        from qz_db_hook import MARKETING_DB, engine_for

        from qz_outbound import campaigns, clock, outcomes

        cycle_date = clock.cycle_date_of(_day(logical_date, dag_run))
        return outcomes.write_outcome_report(engine_for(MARKETING_DB), cycle_date, campaigns.load_library())

    outcome_report(apply_call_outcomes(), attribute_orders(stage_orders()), stage_bills())


dag = outcomes_loop()
