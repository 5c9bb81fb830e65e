"""HQ's distribution report: shares that add up, change from the previous cycle, a page with a chart."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from qz_outbound import db, reports, schema, segmentation
from qz_outbound.dev.demo_datamart import generate

D = dt.date(2026, 11, 23)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def cycles(request, tmp_path_factory, pg_database_factory):
    base = tmp_path_factory.mktemp("rep")
    if request.param == "sqlite":
        dm = db.make_engine(f"sqlite:///{base / 'dm.db'}")
        mk = db.make_engine(f"sqlite:///{base / 'mk.db'}")
    else:
        dm = db.make_engine(pg_database_factory("qz_rep_dm"))
        mk = dm  # same database: the in-database landing route
    generate(dm, 5000, D, progress=False)
    schema.ensure_schema(mk)
    segmentation.segment_customers(dm, mk, D - dt.timedelta(days=1))
    # the next day a few customers are cancelled: the report must show the change
    with dm.begin() as conn:
        conn.exec_driver_sql("update subscriber set status = 'cancelled' where msisdn in "
                             "(select msisdn from subscriber order by msisdn limit 500)")
    segmentation.segment_customers(dm, mk, D)
    yield mk, reports.write_distribution_report(mk, D, base / "out")
    dm.dispose()
    mk.dispose()


def test_shares_add_up_per_dimension_and_match_counts(cycles):
    mk, rep = cycles
    frame = pd.read_csv(rep.csv_path, encoding="utf-8-sig", dtype={"value": str, "stability_type": str})
    for dim, part in frame.groupby("dimension"):
        assert part["share"].sum() == pytest.approx(1.0), dim
        assert part["customers"].sum() == rep.customers, dim
    assert set(frame.dimension) == set(reports.DIMENSIONS)
    assert rep.previous == D - dt.timedelta(days=1)


def test_change_from_previous_cycle_is_reported(cycles):
    _, rep = cycles
    frame = pd.read_csv(rep.csv_path, encoding="utf-8-sig", dtype={"value": str, "stability_type": str})
    county = frame[frame.dimension == "county_code"]
    assert (county.previous_share > 0).any()
    assert county.change_pp.abs().sum() > 0  # 500 customers left: shares moved
    assert county.change_pp.sum() == pytest.approx(0.0, abs=1e-6)  # shares of a whole move in sum to zero
    bund = pd.read_csv(rep.bundling_csv_path, encoding="utf-8-sig", dtype={"stability_type": str})
    assert (bund.bundled / bund.customers).round(9).equals(bund.bundling_rate.round(9))
    # counted as the plan counts: a customer with both bundles is in hard and in soft
    assert (bund.hard_bundled + bund.soft_bundled >= bund.bundled).all()
    assert (bund.hard_bundled <= bund.bundled).all() and (bund.soft_bundled <= bund.bundled).all()
    assert bund.previous_bundling_rate.notna().all()


def test_page_is_in_chinese_with_a_chart_and_no_customer_data(cycles):
    mk, rep = cycles
    html = rep.html_path.read_text(encoding="utf-8")
    assert "<svg" in html and "各区县类型构成" in html and "晋江市" in html and "捆绑率" in html
    import re

    with mk.connect() as conn:
        numbers = set(pd.read_sql("select msisdn from mkt_segment_snapshot", conn).msisdn)
    assert not numbers & set(re.findall(r"(?<![\d.])1[3-9]\d{9}(?![\d.])", html))


def test_shares_within_each_type_sum_to_100_per_type(cycles):
    _, rep = cycles
    frame = pd.read_csv(rep.csv_path, encoding="utf-8-sig", dtype={"value": str, "stability_type": str})
    current = frame[frame.customers > 0]
    for (dim, t), part in current.groupby(["dimension", "stability_type"]):
        assert part["share_in_type"].sum() == pytest.approx(1.0), (dim, t)
    market = current[current.dimension == "market_segment"]
    for v, part in market.groupby("value"):
        assert part["share_in_value"].sum() == pytest.approx(1.0), v
    html = rep.html_path.read_text(encoding="utf-8")
    assert "类型内占比" in html and "细分市场内占比" in html and "套餐用户占比" in html
