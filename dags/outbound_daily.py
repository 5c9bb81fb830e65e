"""
### outbound_daily — the daily stock-customer marketing cycle (存量客户日常营销)

Runs every morning at 05:00 Asia/Shanghai for the cycle date of its logical date.

| stage | what it does | where |
| --- | --- | --- |
| check_config | validates every file HQ edits and the connections `datamart`, `marketing_db`, `smsc` (fields, bounds, databases reachable, `marketing_db` at the head revision); a mistake stops the cycle with file and line, or connection and field | `config/`, `qz_outbound/preflight.py` |
| segment_customers | segments every customer in the data mart into `mkt_segment_snapshot` | `include/sql/segment_customers.sql` |
| distribution_report | HQ's distribution of types × tiers / market / county, bundling rate, change from the previous cycle | `var/output/reports/<date>/` |
| stage_extracts | copies DND, recent complaints, holdings and bundle end dates from the data mart | `include/sql/stage_*.sql` |
| refresh_customer_tags | the customer tags (responds to data offers, refuses calls, converts by agent shop, ...) from the contact history, as of the cycle; tags whose evidence aged out are removed; campaigns target them | `config/tags.yaml`, `include/sql/customer_tags.sql` ─▶ `mkt_customer_tag` |
| offer_values | the learning loop: each campaign's expected value per customer cell (uplift over control, shrunk toward the campaign's, × value per conversion − cost) from the contact history | `include/sql/offer_value.sql`, `config/learning.yaml`, `docs/learning.md` |
| build_target_list | targeting + arbitration: one offer per customer (fixed priorities, learned values or a blend, with an exploration share), contact policy, control groups, A/B variants | `include/sql/target_list.sql` |
| coverage_report | share of contactable customers with an offer, per county and type; the gap list (who has none and why); HQ alerted below `config/coverage.yaml`'s threshold | `coverage.csv`, `coverage_gaps.csv` |
| validate_target_list | Great Expectations audit of the list; a check about the whole list stops every county (nothing is published), a check about one campaign holds back that campaign only (`mkt_target_hold`, HQ alerted) | `target_validation.html` |
| apply_budgets | monthly budgets per campaign (and county): the cost the list commits (contacts × contact cost + expected conversions × offer cost); an overrunning campaign keeps its customers in call order up to the budget, the rest are excluded with reason `budget`; HQ alerted once at 80% and at 100% | `config/budgets.yaml`, `include/sql/budget_cut.sql`, `docs/budgets-kpi.md` |
| publish_county (one per county) | control / call (within capacity) / SMS split into `mkt_contact`, SMS rendered into the outbox | `include/sql/publish_county.sql` |
| call_list (one per county) | the county's call list (外呼清单) in calling order, call scripts rendered, CSV (UTF-8 with BOM) and XLSX | `var/output/call_lists/<date>/<county>/` |
| data_retention | deletes call lists beyond `keep_cycles`, portal uploads after `upload_keep_days`, processed `sms_inbound` rows after `inbound_keep_days` | `qz_outbound/retention.py` |
| send_sms (one per county) | submits the county's SMS over SMPP (connection `smsc`) within 08:00–20:00 and the contracted rate; before 08:00 it is rescheduled to the opening (no worker slot held); what the day's window cannot take waits for the next cycle's send; messages left in doubt by an SMSC or sender crash (never re-sent) are counted and alerted to HQ | `qz_outbound/sms/send_step.py`, `docs/sms-delivery.md` |

Every task is idempotent per logical date: a re-run replaces that cycle's rows.
Connections: `datamart` (read-only), `marketing_db` and `smsc`. Task logs and XComs
carry counts and paths only, never customer data.
"""

from __future__ import annotations

import datetime as dt
import logging

from airflow.sdk import PokeReturnValue, task
from qz_alerts import notify
from qz_dags import CONTACTS, SEGMENT_SNAPSHOT, cron, outbound_dag

log = logging.getLogger(__name__)


@outbound_dag(
    "outbound_daily",
    # A trigger timetable: the run at 05:00 on 23 Nov has logical date 23 Nov, its cycle date.
    schedule=cron("0 5 * * *"),
    doc_md=__doc__,
    tags=["daily", "segmentation"],
    retry_delay=dt.timedelta(minutes=5),
    execution_timeout=dt.timedelta(minutes=30),
    # "The lists by 08:00" is the Deadline Alert of the cycle_deadlines DAG (not one here: in Airflow
    # 3.3.2 a DAG with a deadline fails `dag.test()` / `airflow dags test` when its run succeeds).
)
def outbound_daily():
    @task(retries=0, execution_timeout=dt.timedelta(minutes=5))
    def check_config() -> dict:
        """Validate every config file HQ edits and the three connections (fields, bounds, both
        databases reachable, marketing_db at the head revision) before anything else runs; a failure
        stops the cycle here, nothing is published or sent (no retry: a typo stays a typo)."""
        from qz_db_hook import check_connections

        from qz_outbound import campaigns, counties

        checked = check_connections()
        return {"counties": len(counties.county_names()), "campaigns": len(campaigns.load_library()), **checked}

    @task(outlets=[SEGMENT_SNAPSHOT], pool="marketing_db", execution_timeout=dt.timedelta(minutes=45))
    def segment_customers(_config: dict, logical_date=None) -> dict:
        from qz_db_hook import DATAMART, MARKETING_DB, engine_for

        from qz_outbound import clock, segmentation

        cycle_date = clock.cycle_date_of(logical_date)
        try:
            n = segmentation.segment_customers(engine_for(DATAMART), engine_for(MARKETING_DB), cycle_date)
        except segmentation.BrokenExtract as exc:
            from airflow.sdk.exceptions import AirflowFailException

            raise AirflowFailException(str(exc)) from None   # a broken extract stays broken: no retry
        return {"cycle_date": cycle_date.isoformat(), "customers": n}

    @task(pool="marketing_db", execution_timeout=dt.timedelta(minutes=15))
    def distribution_report(segmented: dict) -> dict:
        from qz_db_hook import MARKETING_DB, engine_for

        from qz_outbound import reports

        report = reports.write_distribution_report(
            engine_for(MARKETING_DB), dt.date.fromisoformat(segmented["cycle_date"]))
        return {"customers": report.customers, "html": str(report.html_path), "csv": str(report.csv_path),
                "previous_cycle": report.previous.isoformat() if report.previous else None}

    @task(pool="marketing_db", execution_timeout=dt.timedelta(minutes=20))
    def stage_extracts(_config: dict, logical_date=None) -> dict:
        from qz_db_hook import DATAMART, MARKETING_DB, engine_for

        from qz_outbound import clock, targeting

        return targeting.stage_extracts(engine_for(DATAMART), engine_for(MARKETING_DB),
                                        clock.cycle_date_of(logical_date))

    @task(pool="marketing_db", execution_timeout=dt.timedelta(minutes=20))
    def refresh_customer_tags(_config: dict, logical_date=None) -> dict:
        """Customer tags (config/tags.yaml) as of the cycle, from the contact history: the target
        list reads them (target.tags_any / tags_none), so they are refreshed before it. Counts only."""
        from qz_db_hook import MARKETING_DB, engine_for

        from qz_outbound import clock, tags

        return tags.refresh_customer_tags(engine_for(MARKETING_DB), clock.cycle_date_of(logical_date))

    @task(pool="marketing_db", execution_timeout=dt.timedelta(minutes=20))
    def offer_values(_config: dict, logical_date=None) -> dict:
        """The learning loop's offer values for the cycle (mkt_offer_value, rewritten for the day):
        counts only."""
        from qz_db_hook import MARKETING_DB, engine_for

        from qz_outbound import campaigns, clock
        from qz_outbound.learning import values

        return values.compute_offer_values(engine_for(MARKETING_DB), clock.cycle_date_of(logical_date),
                                           campaigns.load_library())

    @task(pool="marketing_db", execution_timeout=dt.timedelta(minutes=30))
    def build_target_list(segmented: dict, _staged: dict, _tagged: dict, _values: dict) -> dict:
        from qz_db_hook import MARKETING_DB, engine_for

        from qz_outbound import campaigns, targeting
        from qz_outbound.learning import evaluation

        cycle_date = dt.date.fromisoformat(segmented["cycle_date"])
        engine = engine_for(MARKETING_DB)
        # config/learning.yaml's learned or blend mode runs only when the offline evaluation
        # (campaign_economics' learning_review) finds it better than fixed priorities with confidence
        allowed, why = evaluation.arbitration_gate(engine, cycle_date)
        log.info("arbitration: %s", why)
        n = targeting.build_target_list(engine, cycle_date, campaigns.load_library(), allow_learned=allowed)
        return {"cycle_date": segmented["cycle_date"], "targets": n, "learned": allowed}

    @task(pool="marketing_db", execution_timeout=dt.timedelta(minutes=10))
    def coverage_report(targets: dict, dag_run=None, ti=None) -> dict:
        """Coverage per county and type, the gap list (who has no offer and why), and HQ alerted
        when coverage falls below config/coverage.yaml's threshold."""
        from qz_alerts import notify
        from qz_db_hook import MARKETING_DB, engine_for

        from qz_outbound import campaigns, coverage, targeting

        engine, cycle_date = engine_for(MARKETING_DB), dt.date.fromisoformat(targets["cycle_date"])
        frame = targeting.coverage(engine, cycle_date)
        path = targeting.write_coverage_report(engine, cycle_date, frame=frame)
        gaps = coverage.write_gap_report(engine, cycle_date, campaigns.load_library())
        alert = coverage.coverage_alert(frame, cycle_date,
                                        run_id=getattr(dag_run, "run_id", None), url=getattr(ti, "log_url", None))
        if alert is not None:
            notify(alert)
        return {"csv": str(path), "gaps_csv": str(gaps), "alerted": alert is not None}

    @task(retries=0, pool="marketing_db", execution_timeout=dt.timedelta(minutes=20))
    def validate_target_list(targets: dict, dag_run=None, ti=None) -> list[str]:
        """Write–audit–publish: the list is checked before any county gets it. A failed check about the
        whole list fails the task with a readable summary and no county is published (the whole cycle
        stops); a failed check about one campaign holds back that campaign's rows (mkt_target_hold),
        alerts HQ, and the other campaigns are published."""
        from qz_alerts import notify
        from qz_db_hook import MARKETING_DB, engine_for

        from qz_outbound import campaigns, counties, validation
        from qz_outbound.alerts import Alert

        report = validation.audit_target_list(engine_for(MARKETING_DB), dt.date.fromisoformat(targets["cycle_date"]),
                                              campaigns.load_library())
        validation.require_valid(report)   # raises (and the failure callback alerts) on a whole-list check
        if report.held:
            notify(Alert(kind="campaign_held",
                         summary=f"outbound_daily {targets['cycle_date']}: campaigns held back by validation: "
                                 + ", ".join(sorted(report.held)),
                         dag_id="outbound_daily", run_id=getattr(dag_run, "run_id", None),
                         task_id="validate_target_list", logical_date=targets["cycle_date"],
                         detail=report.summary(), url=getattr(ti, "log_url", None)))
        return list(counties.county_names())

    @task(pool="marketing_db", execution_timeout=dt.timedelta(minutes=20))
    def apply_budgets(targets: dict, county_codes: list[str]) -> list[str]:
        """Monthly budgets (config/budgets.yaml): the cost the validated list commits per campaign
        and county; a campaign that would overrun keeps its customers in call order up to its budget,
        the rest are excluded with reason budget (never published). HQ is alerted once per month
        at 80% and at 100% of a budget. Idempotent on the cycle: a re-run decides the same and finds
        its alerts already sent."""
        from qz_alerts import notify
        from qz_db_hook import MARKETING_DB, engine_for

        from qz_outbound import budgets, campaigns

        engine = engine_for(MARKETING_DB)
        cycle_date = dt.date.fromisoformat(targets["cycle_date"])
        budgets.apply_budgets(engine, cycle_date, campaigns.load_library())
        for key, alert in budgets.pending_alerts(engine, cycle_date):
            notify(alert)
            budgets.mark_sent(engine, key)
        return county_codes

    @task(outlets=[CONTACTS], map_index_template="{{ county_label }}", pool="marketing_db",
          retry_delay=dt.timedelta(minutes=2), execution_timeout=dt.timedelta(minutes=20))
    def publish_county(county_code: str, targets: dict) -> dict:
        from airflow.sdk import get_current_context
        from qz_db_hook import MARKETING_DB, engine_for

        from qz_outbound import campaigns, counties, publish

        get_current_context()["county_label"] = counties.label(county_code)
        counts = publish.publish_county(engine_for(MARKETING_DB), dt.date.fromisoformat(targets["cycle_date"]),
                                        county_code, campaigns.load_library())
        return {"county_code": county_code, "cycle_date": targets["cycle_date"], **counts}

    @task(map_index_template="{{ county_label }}", pool="marketing_db", retry_delay=dt.timedelta(minutes=2),
          execution_timeout=dt.timedelta(minutes=15))
    def call_list(published: dict) -> dict:
        """The county's call list for its call centre (files only a county's portal page serves)."""
        from airflow.sdk import get_current_context
        from qz_db_hook import MARKETING_DB, engine_for

        from qz_outbound import call_lists, campaigns, counties

        county_code = published["county_code"]
        get_current_context()["county_label"] = counties.label(county_code)
        return call_lists.write_call_lists(engine_for(MARKETING_DB), dt.date.fromisoformat(published["cycle_date"]),
                                           county_code, campaigns.load_library())

    @task(pool="marketing_db", execution_timeout=dt.timedelta(minutes=20))
    def data_retention(_config: dict) -> dict:
        """Delete call lists beyond keep_cycles, old portal uploads and processed sms_inbound rows
        (docs/security.md "Data at rest"); counts only."""
        from qz_db_hook import MARKETING_DB, engine_for

        from qz_outbound import retention

        return retention.apply(engine_for(MARKETING_DB))

    # One poke may send for the whole window (08:00-20:00); an SMSC outage is retried with backoff.
    @task.sensor(mode="reschedule", poke_interval=60, timeout=dt.timedelta(hours=20).total_seconds(),
                 map_index_template="{{ county_label }}", pool="smsc", retries=3,
                 retry_delay=dt.timedelta(minutes=5), retry_exponential_backoff=2.0,
                 max_retry_delay=dt.timedelta(minutes=30), execution_timeout=dt.timedelta(hours=12, minutes=30))
    def send_sms(published: dict) -> PokeReturnValue:
        """Submit the county's SMS within the sending window (a sensor in reschedule mode: while the window
        is closed the task waits without holding a worker slot, rescheduled to the window's opening)."""
        from airflow.sdk import get_current_context
        from airflow.sdk.exceptions import AirflowRescheduleException
        from qz_db_hook import MARKETING_DB, engine_for
        from smpp_hook import SmppHook

        from qz_outbound import counties
        from qz_outbound.sms import send_step

        county_code = published["county_code"]
        context = get_current_context()
        context["county_label"] = counties.label(county_code)
        cycle_date = dt.date.fromisoformat(published["cycle_date"])
        step = send_step.send_county(engine_for(MARKETING_DB), cycle_date, county_code, SmppHook().get_settings())
        if not step.done:
            # to the window's opening; never sooner than a poke interval from now (a clock set back
            # for a replay or a demo, or skew between hosts, must not make the sensor spin)
            soonest = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=60)
            raise AirflowRescheduleException(max(step.wait_until.astimezone(dt.timezone.utc), soonest))
        # messages in doubt are never re-sent: HQ is told (counts only), once the county's send is done
        alert = send_step.in_doubt_alert(cycle_date, county_code, step.counts.get("in_doubt_messages", 0),
                                       run_id=context["run_id"], map_index=context["ti"].map_index)
        if alert is not None:
            notify(alert)
        return PokeReturnValue(is_done=True, xcom_value=step.counts)

    config = check_config()
    data_retention(config)
    segmented = segment_customers(config)
    distribution_report(segmented)
    targets = build_target_list(segmented, stage_extracts(config), refresh_customer_tags(config),
                                offer_values(config))
    coverage_report(targets)
    county_codes = apply_budgets(targets, validate_target_list(targets))
    published = publish_county.partial(targets=targets).expand(county_code=county_codes)
    call_list.expand(published=published)
    send_sms.expand(published=published)


dag = outbound_daily()
