"""County call lists (外呼清单): the county's call contacts, in calling order, CSV with BOM and XLSX."""

from __future__ import annotations

import datetime as dt

import openpyxl
import pandas as pd
import pytest
import sqlalchemy as sa

from cycle_support import engine_for_param, published_cycle
from qz_outbound import call_lists, clock, counties, segmentation

D = dt.date(2026, 11, 23)


@pytest.fixture(params=["sqlite", "postgresql"])
def cycle(request, tmp_path, monkeypatch):
    monkeypatch.setenv("QZ_OUTPUT_DIR", str(tmp_path / "out"))
    engine = engine_for_param(request, tmp_path, "qz_calls")
    clock.set_now(dt.datetime(2026, 11, 23, 5, 30))
    library = published_cycle(engine, D, 6000)
    yield engine, library, tmp_path / "out"
    clock.set_now(None)
    engine.dispose()


def _calls(engine, county):
    with engine.connect() as conn:
        return conn.execute(sa.text(
            "select c.contact_id, c.msisdn, t.priority, t.spend_tier from mkt_contact c join mkt_target t "
            "on t.cycle_date = c.cycle_date and t.msisdn = c.msisdn "
            "where c.channel = 'call' and c.county_code = :c"), {"c": county}).all()


def test_call_list_in_calling_order_with_rendered_scripts(cycle):
    engine, library, out = cycle
    county = max(counties.county_names(), key=lambda c: len(_calls(engine, c)))
    calls = _calls(engine, county)
    assert len(calls) >= 5, "the generated mart should give this county some calls"
    result = call_lists.write_call_lists(engine, D, county, library)
    assert result["rows"] == len(calls) and result["script_errors"] == 0

    raw = (out / result["csv"]).read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")                          # BOM: Excel reads it as UTF-8
    frame = pd.read_csv(out / result["csv"], encoding="utf-8-sig", dtype=str)
    assert list(frame.columns) == call_lists.COLUMNS
    # calling order: campaign priority, then spend tier from the top, then number
    expected = [r.contact_id for r in sorted(calls, key=lambda r: (r.priority, -r.spend_tier, r.msisdn))]
    assert frame["联系编号（回填用）"].tolist() == expected
    assert frame["序号"].tolist() == [str(i) for i in range(1, len(calls) + 1)]
    assert set(frame["最晚外呼日期"]) == {(D + dt.timedelta(days=2)).isoformat()}
    for _, row in frame.iterrows():
        assert row["客户姓名"] in row["营销口径"] and row["优惠内容"] in row["营销口径"]
        assert "{{" not in row["营销口径"] and "月消费" in row["客户细分"]

    book = openpyxl.load_workbook(out / result["xlsx"], read_only=True)
    sheet = book["外呼清单"]
    values = list(sheet.iter_rows(values_only=True))
    assert list(values[0]) == call_lists.COLUMNS
    assert [v[-1] for v in values[1:]] == expected

    # a re-run writes the same list
    again = call_lists.write_call_lists(engine, D, county, library)
    assert again == result and (out / result["csv"]).read_bytes() == raw


def test_county_never_sees_another_countys_customers_in_its_call_list(cycle):
    engine, library, out = cycle
    with engine.connect() as conn:
        county_of = dict(conn.execute(sa.text("select msisdn, county_code from mkt_contact")).all())
    seen = 0
    for county in counties.county_names():
        result = call_lists.write_call_lists(engine, D, county, library)
        frame = pd.read_csv(out / result["csv"], encoding="utf-8-sig", dtype=str)
        assert {county_of[m] for m in frame["手机号码"]} <= {county}
        assert (out / result["csv"]).parent.name == county
        seen += len(frame)
    with engine.connect() as conn:
        assert seen == conn.execute(sa.text("select count(*) from mkt_contact where channel = 'call'")).scalar()


def test_segment_words_follow_the_configured_tiers():
    rule = segmentation.load_config().tiers.spend
    bounds = rule.boundaries
    tier = rule.tier_of(100)           # a customer spending 100 a month: the 100–130 tier
    assert call_lists.segment_words("42", tier, bounds) == "话务下降预警型，月消费100–130元"
    assert call_lists.spend_words(rule.tier_of(129.99), bounds) == "月消费100–130元"
    assert call_lists.spend_words(1, bounds) == "月消费10元以下"
    assert call_lists.spend_words(11, bounds) == "月消费180元及以上"
