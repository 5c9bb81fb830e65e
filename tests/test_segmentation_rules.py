"""Hand-checked cases from segmentation.md, and the config that carries its numbers."""

from __future__ import annotations

import datetime as dt
import textwrap
from decimal import Decimal

import pytest
import sqlalchemy as sa

from qz_outbound import config, db, schema, segmentation
from qz_outbound.datamart import schema as dm_schema

D = dt.date(2026, 11, 23)


def test_cycle_months_follow_the_spec_example():
    # spec: for D = 2026-11-23, M0 = 2026-10, M1 = 2026-09, M2 = 2026-08
    assert segmentation.cycle_months(D) == (dt.date(2026, 10, 1), dt.date(2026, 9, 1), dt.date(2026, 8, 1))
    assert segmentation.cycle_months(dt.date(2026, 1, 5)) == (dt.date(2025, 12, 1), dt.date(2025, 11, 1),
                                                               dt.date(2025, 10, 1))


@pytest.fixture
def mart(tmp_path):
    dm = db.make_engine(f"sqlite:///{tmp_path / 'dm.db'}")
    mk = db.make_engine(f"sqlite:///{tmp_path / 'mk.db'}")
    dm_schema.create_tables(dm)
    schema.ensure_schema(mk)
    return dm, mk


def _customer(conn, msisdn, open_date, status="active", months=None):
    conn.execute(dm_schema.subscriber.insert(), [{
        "msisdn": msisdn, "customer_name": "张三", "county_code": "350582", "open_date": open_date,
        "status": status, "market_segment": "enterprise", "terminal_type": "5G", "home_agent_id": None}])
    for month, (spend, voice, data) in (months or {}).items():
        conn.execute(dm_schema.usage_monthly.insert(), [{
            "msisdn": msisdn, "month": month, "spend_yuan": Decimal(spend), "voice_minutes": Decimal(voice),
            "data_mb": Decimal(data), "sms_count": 0}])


def test_the_spec_example_segment_code(mart):
    """41-P09V05D07T06: spend warning, 100–130 yuan, 240–340 minutes, 3–5 years.

    The page's prose calls D07 "5–10 GB", but its tier table (the rule) puts
    5–10 GB in tier 6 and 10–20 GB in tier 7; the table wins, so 12 GB here.
    """
    dm, mk = mart
    m0, m1, m2 = segmentation.cycle_months(D)
    with dm.begin() as conn:
        _customer(conn, "13800000001", dt.date(2022, 6, 1), months={
            m0: ("110", "300", "12000"), m1: ("200", "300", "12000"), m2: ("200", "300", "12000")})
        _customer(conn, "13800000002", dt.date(2022, 6, 1), months={
            m0: ("110", "300", "6000"), m1: ("200", "300", "6000"), m2: ("200", "300", "6000")})
    segmentation.segment_customers(dm, mk, D)
    with mk.connect() as conn:
        codes = dict(conn.execute(sa.text("select msisdn, segment_code from mkt_segment_snapshot")).all())
    assert codes == {"13800000001": "41-P09V05D07T06", "13800000002": "41-P09V05D06T06"}


def test_whole_months_and_new_customer_boundaries(mart):
    dm, mk = mart
    m0, m1, m2 = segmentation.cycle_months(D)
    usage = {m0: ("50", "100", "100"), m1: ("50", "100", "100"), m2: ("50", "100", "100")}
    with dm.begin() as conn:
        _customer(conn, "13800000001", m2, months=usage)                         # joined on M2's first day: new
        _customer(conn, "13800000002", m2 - dt.timedelta(days=1), months=usage)  # the day before: stock, stable
        _customer(conn, "13800000003", dt.date(2026, 8, 24), months=usage)       # D.day < open.day: 2 months
        _customer(conn, "13800000004", dt.date(2026, 8, 23), months=usage)       # same day: 3 whole months
        _customer(conn, "13800000005", dt.date(2020, 1, 1), status="cancelled", months=usage)  # not segmented
        _customer(conn, "13800000006", dt.date(2020, 1, 1), status="suspended", months=usage)  # type 5
        _customer(conn, "13800000007", dt.date(2020, 1, 1), months={m1: ("50", "1", "1")})     # M0 all zero: 5
    segmentation.segment_customers(dm, mk, D)
    with mk.connect() as conn:
        rows = dict(conn.execute(sa.text(
            "select msisdn, stability_type || '/' || tenure_months from mkt_segment_snapshot")).all())
    assert rows == {"13800000001": "0/3", "13800000002": "1/3", "13800000003": "0/2", "13800000004": "0/3",
                    "13800000006": "5/82", "13800000007": "5/82"}


def test_rerun_replaces_the_cycle(mart):
    dm, mk = mart
    with dm.begin() as conn:
        _customer(conn, "13800000001", dt.date(2020, 1, 1))
    assert segmentation.segment_customers(dm, mk, D) == 1
    with dm.begin() as conn:
        _customer(conn, "13800000002", dt.date(2020, 1, 1))
    assert segmentation.segment_customers(dm, mk, D) == 2
    with mk.connect() as conn:
        assert conn.execute(sa.text("select count(*) from mkt_segment_snapshot")).scalar() == 2


def test_retention_purges_old_cycles(mart):
    dm, mk = mart
    with dm.begin() as conn:
        _customer(conn, "13800000001", dt.date(2020, 1, 1))
    cfg = segmentation.load_config()
    segmentation.segment_customers(dm, mk, D - dt.timedelta(days=cfg.snapshot_retention_days + 1), cfg)
    segmentation.segment_customers(dm, mk, D - dt.timedelta(days=1), cfg)
    segmentation.segment_customers(dm, mk, D, cfg)
    with mk.connect() as conn:
        kept = [r[0] for r in conn.execute(sa.text(
            "select distinct cycle_date from mkt_segment_snapshot order by 1"))]
    assert [str(k) for k in kept] == [str(D - dt.timedelta(days=1)), str(D)]


def _write(tmp_path, text):
    path = tmp_path / "segmentation.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


GOOD = (segmentation.config.config_path("segmentation.yaml")).read_text(encoding="utf-8")


def test_config_mistakes_name_file_line_and_field(tmp_path):
    bad = GOOD.replace("[10, 20, 30, 40, 50, 60, 80, 100, 130, 180]", "[10, 20, 30, 25, 50, 60, 80, 100, 130, 180]")
    path = _write(tmp_path, bad)
    with pytest.raises(config.ConfigError) as err:
        segmentation.load_config(path)
    line = next(i for i, l in enumerate(bad.splitlines(), 1) if "30, 25" in l)
    assert f"{path}:{line}: tiers.spend.boundaries: " in str(err.value)
    assert "strictly increasing" in str(err.value)


def test_config_typo_and_wrong_sign_are_caught(tmp_path):
    bad = GOOD.replace("warning_change: -0.30", "warning_chnage: -0.30").replace(
        "rising_change: 0.10", "rising_change: -0.10")
    with pytest.raises(config.ConfigError) as err:
        segmentation.load_config(_write(tmp_path, bad))
    text = str(err.value)
    assert "stability.warning_chnage: Extra inputs are not permitted" in text
    assert "stability.warning_change: Field required" in text


def test_config_not_yaml_is_reported_with_line(tmp_path):
    path = _write(tmp_path, "stability:\n  warning_change: [oops\n")
    with pytest.raises(config.ConfigError) as err:
        segmentation.load_config(path)
    assert str(path) in str(err.value) and "not valid YAML" in str(err.value)


def test_thresholds_from_config_change_the_result(mart, tmp_path):
    """The numbers really come from the file: a -20% warning threshold turns a -25% customer into a warning."""
    dm, mk = mart
    m0, m1, m2 = segmentation.cycle_months(D)
    with dm.begin() as conn:
        _customer(conn, "13800000001", dt.date(2020, 1, 1), months={
            m0: ("75", "100", "100"), m1: ("100", "100", "100"), m2: ("100", "100", "100")})
    segmentation.segment_customers(dm, mk, D)
    with mk.connect() as conn:
        assert conn.execute(sa.text("select stability_type from mkt_segment_snapshot")).scalar() == "3"
    cfg = segmentation.load_config(_write(tmp_path, GOOD.replace("warning_change: -0.30", "warning_change: -0.20")))
    segmentation.segment_customers(dm, mk, D, cfg)
    with mk.connect() as conn:
        assert conn.execute(sa.text("select stability_type from mkt_segment_snapshot")).scalar() == "41"
