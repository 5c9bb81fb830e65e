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
| outcome_report | conversion, control conversion, uplift with intervals, cost and ROI per campaign / variant / segment type / county / channel / call script, ranked; trend over cycles; bills before/after; `outcomes.html` with charts and CSVs in the cycle's report folder (HQ's portal lists it) |
| auto_pause | with `auto_pause.enabled` (off by default): campaigns whose uplift is significantly negative on enough contacts → `mkt_campaign_pause`; with `auto_pause.roi_negative.enabled`: campaigns whose latest measured ROI is negative with confidence (`mkt_campaign_economics`) → `mkt_campaign_pause` and HQ alerted once; the next target list leaves them out |

SMS receipts and replies are applied by the SMS receiver service as they arrive. Every task is
idempotent: sources arriving late, twice or out of order give the same history. Settings in
`config/outcomes.yaml`. XComs carry counts and paths only.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import AssetOrTimeSchedule, task
from qz_dags import CALL_OUTCOMES, CONTACTS, cron, outbound_dag


def _day(logical_date, dag_run):
    """The run's moment: its logical date, or when it was triggered (asset-triggered runs have none)."""
    return logical_date if logical_date is not None else dag_run.run_after


@outbound_dag(
    "outcomes_loop",
    # CALL_OUTCOMES: a portal upload that loaded rows (plugins/county_portal.py)
    schedule=AssetOrTimeSchedule(timetable=cron("*/30 * * * *"), assets=[CALL_OUTCOMES]),
    doc_md=__doc__,
    tags=["outcomes"],
    retry_delay=dt.timedelta(minutes=2),
    execution_timeout=dt.timedelta(minutes=20),
    task_defaults={"pool": "marketing_db"},
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

    @task
    def auto_pause(_report: dict, logical_date=None, dag_run=None) -> dict:
        """After the report: the same figures decide, and the latest measured economics (ROI negative
        with confidence: HQ alerted). Campaign codes only in the XCom."""
        from qz_alerts import notify
        from qz_db_hook import MARKETING_DB, engine_for

        from qz_outbound import campaigns, clock, outcomes

        cycle_date = clock.cycle_date_of(_day(logical_date, dag_run))
        return {"paused_now": outcomes.auto_pause_campaigns(engine_for(MARKETING_DB), cycle_date,
                                                            campaigns.load_library(), notify=notify,
                                                            run_id=getattr(dag_run, "run_id", None))}

    auto_pause(outcome_report(apply_call_outcomes(), attribute_orders(stage_orders()), stage_bills()))


dag = outcomes_loop()
