"""Every DAG imports cleanly, reads like configuration, and touches nothing at parse time."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DAG_FILES = sorted((ROOT / "dags").glob("*.py"))


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "dags"))


def test_dags_import_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert "outbound_daily" in dagbag.dags


def test_every_dag_has_owner_retries_tags_and_docs(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert dag.tags, dag_id
        assert dag.doc_md, dag_id
        assert not dag.catchup, dag_id
        for t in dag.tasks:
            assert t.owner and t.owner != "airflow", (dag_id, t.task_id)
            # a config typo or a failed audit is not retried: a re-run gives the same answer
            if t.task_id not in ("check_config", "validate_target_list"):
                assert t.retries >= 1, (dag_id, t.task_id)


def test_every_task_of_every_dag_alerts_on_failure(dagbag):
    """A DAG without the callback fails silently (agent_channel and agent_settlement once did)."""
    from qz_alerts import on_task_failure

    assert set(dagbag.dags) >= {"outbound_daily", "outcomes_loop", "cycle_deadlines", "agent_channel",
                                "agent_settlement"}
    for dag_id, dag in dagbag.dags.items():
        assert dag.tasks, dag_id
        for t in dag.tasks:
            callbacks = t.on_failure_callback
            callbacks = callbacks if isinstance(callbacks, list) else [callbacks]
            assert on_task_failure in callbacks, (dag_id, t.task_id)


def test_assets_are_defined_once_for_dags_and_the_portal(dagbag):
    """The portal records its upload event on the very asset outcomes_loop is scheduled on."""
    import qz_dags

    def uris(condition) -> set[str]:   # an asset, or an any/all condition of them
        if hasattr(condition, "objects"):
            return set().union(*(uris(c) for c in condition.objects))
        return {condition.uri}

    scheduled_on = uris(dagbag.dags["outcomes_loop"].timetable.asset_condition)
    assert qz_dags.CALL_OUTCOMES.uri in scheduled_on
    portal = (ROOT / "plugins" / "county_portal.py").read_text(encoding="utf-8")
    assert "from qz_dags import CALL_OUTCOMES" in portal and "qz-outbound://" not in portal
    for path in DAG_FILES:    # no DAG types an asset URI of its own
        assert "qz-outbound://" not in path.read_text(encoding="utf-8"), path.name
    outlets = {o.uri for dag in dagbag.dags.values() for t in dag.tasks for o in t.outlets}
    assert outlets == {qz_dags.CONTACTS.uri, qz_dags.SEGMENT_SNAPSHOT.uri}


def test_auto_pause_is_its_own_task_after_the_outcome_report(dagbag):
    """Pausing campaigns is a step HQ sees in the graph, not a side effect of writing the report."""
    dag = dagbag.dags["outcomes_loop"]
    assert dag.task_dict["auto_pause"].upstream_task_ids == {"outcome_report"}
    assert dag.task_dict["outcome_report"].downstream_task_ids == {"auto_pause"}


def test_offer_values_are_computed_before_the_target_list(dagbag):
    """The arbitration reads the day's offer values (docs/learning.md): they are written first."""
    dag = dagbag.dags["outbound_daily"]
    assert dag.task_dict["offer_values"].upstream_task_ids == {"check_config"}
    assert "offer_values" in dag.task_dict["build_target_list"].upstream_task_ids


def test_outbound_daily_is_scheduled_daily_in_shanghai(dagbag):
    dag = dagbag.dags["outbound_daily"]
    timetable = dag.timetable
    # the run at 05:00 must carry that day as its logical date (not the day before)
    assert type(timetable).__name__ == "CronTriggerTimetable"
    assert timetable.expression == "0 5 * * *"
    assert str(getattr(timetable.timezone, "name", timetable.timezone)) == "Asia/Shanghai"
    assert dag.max_active_runs == 1


def test_agent_channel_runs_hand_over_on_the_schedule_the_serve_task_assumes(dagbag):
    """The serve task polls until the next scheduled run start plus the handover
    (qz_outbound.agent.serving); if the cron and that arithmetic drifted apart, a gap would open
    between runs (or runs would pile up)."""
    import datetime as dt

    from qz_outbound.agent import serving

    dag = dagbag.dags["agent_channel"]
    timetable = dag.timetable
    assert type(timetable).__name__ == "CronTriggerTimetable"
    assert str(getattr(timetable.timezone, "name", timetable.timezone)) == "Asia/Shanghai"
    assert dag.max_active_runs >= 2          # the next run starts while this one still serves
    import pendulum

    start = pendulum.datetime(2026, 11, 23, 9, 17, tz="Asia/Shanghai")
    from airflow.timetables.trigger import CronTriggerTimetable   # the scheduler's side of the SDK class

    fires = CronTriggerTimetable(timetable.expression, timezone=timetable.timezone)
    first = fires._get_next(start)           # the cron's next two fire times after 09:17
    second = fires._get_next(first)
    assert first == serving.next_run_start(start)
    assert (second - first) == dt.timedelta(minutes=serving.RUN_EVERY_MINUTES)
    assert serving.HANDOVER_SECONDS > 0
    task = dag.get_task("serve_top_ups")
    longest = dt.timedelta(minutes=serving.RUN_EVERY_MINUTES, seconds=serving.HANDOVER_SECONDS)
    assert task.execution_timeout > longest


@pytest.mark.parametrize("dag_file", DAG_FILES, ids=[p.name for p in DAG_FILES])
def test_dag_file_touches_no_database_file_or_network_at_parse_time(dag_file, tmp_path):
    """Import the DAG file in a fresh interpreter where, once Airflow itself is loaded, every
    database driver, socket and project file (config, SQL, templates, data) refuses to open."""
    probe = textwrap.dedent(f"""
        import builtins, importlib.util, socket, sqlite3, sys
        sys.path.insert(0, {str(ROOT / 'plugins')!r})
        import airflow.sdk  # Airflow's own start-up (its metadata engine) happens before the guards
        def refuse(*a, **k): raise RuntimeError("I/O at parse time: " + repr(a[:1]))
        socket.socket.connect = refuse
        sqlite3.connect = refuse
        import psycopg; psycopg.connect = refuse
        import sqlalchemy; sqlalchemy.create_engine = refuse
        _open = builtins.open
        guarded = [{str(ROOT / 'config')!r}, {str(ROOT / 'include')!r}, {str(ROOT / 'var')!r}]
        def guarded_open(file, *a, **k):
            if any(str(file).startswith(g) for g in guarded): refuse(file)
            return _open(file, *a, **k)
        builtins.open = guarded_open
        spec = importlib.util.spec_from_file_location("dag_under_test", {str(dag_file)!r})
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        print("ok", [type(v).__name__ for v in vars(module).values()].count("DAG"))
    """)
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                            cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    # the last line is the probe's (Airflow may print its own deprecation warnings before it)
    assert result.stdout.strip().splitlines()[-1].startswith("ok"), result.stdout
