"""Thirty consecutive daily cycles run by Airflow (dag.test) on one generated data mart (usage
unchanged): every day succeeds, no campaign is held back, control shares stay in their band, and
the contact policy holds across days — control counted as a contact (contact-policy.md)."""

from __future__ import annotations

import collections
import datetime as dt
import math
from pathlib import Path

import pytest
import sqlalchemy as sa

from dag_support import load_dag, run_dag
from qz_outbound import campaigns, db
from qz_outbound.dev.demo_datamart import generate

ROOT = Path(__file__).resolve().parents[2]
FIRST = dt.date(2026, 11, 23)
DAYS = 30


@pytest.fixture(scope="module")
def smsc():
    from qz_outbound.dev.smsc import Behaviour, DevSmsc

    server = DevSmsc(behaviour=Behaviour(), seed=5).start()
    yield server
    server.stop()


def _day(value) -> dt.date:
    return dt.date.fromisoformat(value) if isinstance(value, str) else value


KEEP_COUNTIES = ("350582", "350583")   # two counties: the mapped tasks per day are most of the run's time


def two_county_config(folder: Path) -> Path:
    """The project's config with two counties only (the county lists of every file that has one)."""
    import re
    import shutil

    shutil.copytree(ROOT / "config", folder)
    county_line = re.compile(r'^\s*"(35\d{4})":')
    for name in ("counties.yaml", "channels.yaml", "datamart_demo.yaml", "kpi_targets.yaml"):
        path = folder / name
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        path.write_text("".join(line for line in lines if not (m := county_line.match(line))
                                or m.group(1) in KEEP_COUNTIES), encoding="utf-8")
    return folder


@pytest.mark.slow
def test_thirty_consecutive_days(airflow_db, tmp_path, smsc, monkeypatch):
    monkeypatch.setenv("QZ_CONFIG_DIR", str(two_county_config(tmp_path / "config")))
    generate(db.make_engine(f"sqlite:///{tmp_path / 'datamart.db'}"), 3000, FIRST, progress=False)
    days = [FIRST + dt.timedelta(days=k) for k in range(DAYS)]
    dag = load_dag("outbound_daily")
    for day in days:
        run_dag("outbound_daily", tmp_path, monkeypatch, day, smsc, dag=dag)   # asserts the run succeeded
    check_days(tmp_path, days)


def check_days(base, days: list[dt.date]) -> None:
    """The invariants over the cycles run in ``base`` (marketing.db and datamart.db)."""
    mk = db.make_engine(f"sqlite:///{base / 'marketing.db'}")
    dm = db.make_engine(f"sqlite:///{base / 'datamart.db'}")
    with mk.connect() as conn:
        validated = dict(conn.execute(sa.text(
            "select cycle_date, detail from mkt_cycle_stage where stage = 'validate'")).tuples().all())
        held = conn.execute(sa.text("select count(*) from mkt_target_hold")).scalar()
        contacts = conn.execute(sa.text(
            "select msisdn, cycle_date, campaign_code, channel from mkt_contact "
            "where status not in ('skipped', 'failed', 'cancelled')")).all()
        targets = conn.execute(sa.text("select campaign_code, count(*), sum(is_control) from mkt_target "
                                       "group by campaign_code")).all()
        opted_out = set(conn.execute(sa.text("select msisdn from mkt_opt_out")).scalars())
    with dm.connect() as conn:
        dnd = set(conn.execute(sa.text("select msisdn from dnd_list")).scalars())

    # every day validated and published in full: nothing held back
    assert sorted(_day(d) for d in validated) == days
    assert set(validated.values()) == {"passed"}, validated
    assert held == 0

    # per campaign over the month: the control share within the validation band around its configuration
    share = {c.code: float(c.control_share) for c in campaigns.load_library()}
    assert sum(n for _, n, _ in targets) > 1000
    for code, chosen, control in targets:
        p = share[code]
        tolerance = max(0.01, 4 * math.sqrt(p * (1 - p) / chosen))
        assert abs(control / chosen - p) <= tolerance, (code, chosen, control)

    # the contact policy across days, control counted like a contact
    assert contacts and {c.channel for c in contacts} >= {"sms", "control"}
    assert not {c.msisdn for c in contacts if c.channel != "control"} & (dnd | opted_out)
    by_customer = collections.defaultdict(list)
    for c in contacts:
        by_customer[c.msisdn].append((_day(c.cycle_date), c.campaign_code))
    for history in by_customer.values():
        history.sort()
        for (d1, k1), (d2, k2) in zip(history, history[1:]):
            assert (d2 - d1).days >= 7, "two contacts within 7 days"
        per_month = collections.Counter((d.year, d.month) for d, _ in history)
        assert max(per_month.values()) <= 4
        for (d1, k1), (d2, k2) in itertools_pairs(history):
            if k1 == k2:
                assert (d2 - d1).days >= 30, "the same campaign within 30 days"
    # the week after the first cycle, its customers (control included) are offered again
    second_wave = {m for m, h in by_customer.items() if len(h) > 1}
    assert second_wave


def itertools_pairs(history):
    import itertools

    return itertools.combinations(history, 2)
