"""
### outbound_daily — the daily stock-customer marketing cycle (存量客户日常营销)

Runs every morning at 05:00 Asia/Shanghai for the cycle date of its logical date.

| stage | what it does | where |
| --- | --- | --- |
| check_config | loads and validates the rule files HQ edits; a mistake stops the cycle with file, line and field | `config/` |
| segment_customers | segments every customer in the data mart into `mkt_segment_snapshot` | `include/sql/segment_customers.sql` |
| distribution_report | HQ's distribution of types × tiers / market / county, bundling rate, change from the previous cycle | `var/output/reports/<date>/` |

Next stages hang off `segment_customers` (campaign issue onwards): target →
arbitrate → validate (GX) → split per county (mapped) → send SMS / publish call lists.

Every task is idempotent per logical date: a re-run replaces that cycle's rows.
Connections: `datamart` (read-only) and `marketing_db`. Task logs and XComs
carry counts and paths only, never customer data.
"""

from __future__ import annotations

import datetime as dt

import pendulum
from airflow.sdk import Asset, CronTriggerTimetable, dag, task

SEGMENT_SNAPSHOT = Asset("qz-outbound://marketing_db/mkt_segment_snapshot")


@dag(
    dag_id="outbound_daily",
    # A trigger timetable: the run at 05:00 on 23 Nov has logical date 23 Nov, its cycle date.
    schedule=CronTriggerTimetable("0 5 * * *", timezone="Asia/Shanghai"),
    start_date=pendulum.datetime(2026, 11, 1, tz="Asia/Shanghai"),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["outbound", "daily", "segmentation"],
    default_args={
        "owner": "hq-marketing",
        "retries": 2,
        "retry_delay": dt.timedelta(minutes=5),
        "execution_timeout": dt.timedelta(minutes=60),
    },
)
def outbound_daily():
    @task(retries=0)
    def check_config() -> dict:
        """Validate every config file HQ edits before anything else runs (no retry: a typo stays a typo)."""
        from qz_outbound import counties, segmentation

        cfg = segmentation.load_config()
        return {"counties": len(counties.county_names()),
                "spend_tiers": len(cfg.tiers.spend.boundaries) + 1}

    @task(outlets=[SEGMENT_SNAPSHOT])
    def segment_customers(_config: dict, logical_date=None) -> dict:
        from qz_db_hook import DATAMART, MARKETING_DB, engine_for

        from qz_outbound import clock, segmentation

        cycle_date = clock.cycle_date_of(logical_date)
        n = segmentation.segment_customers(engine_for(DATAMART), engine_for(MARKETING_DB), cycle_date)
        return {"cycle_date": cycle_date.isoformat(), "customers": n}

    @task
    def distribution_report(segmented: dict) -> dict:
        from qz_db_hook import MARKETING_DB, engine_for

        from qz_outbound import reports

        report = reports.write_distribution_report(
            engine_for(MARKETING_DB), dt.date.fromisoformat(segmented["cycle_date"]))
        return {"customers": report.customers, "html": str(report.html_path), "csv": str(report.csv_path),
                "previous_cycle": report.previous.isoformat() if report.previous else None}

    distribution_report(segment_customers(check_config()))


dag = outbound_daily()
