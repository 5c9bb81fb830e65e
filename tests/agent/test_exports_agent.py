"""Commission statements and outlet grades cannot carry formulas: shop names (and types) from the
data mart's agent table are hostile input. Real settlement and grading of a month on generated data."""

from __future__ import annotations

import datetime as dt

import openpyxl
import sqlalchemy as sa

from qz_outbound import clock
from qz_outbound.agent import commission, grading, recommend

from conftest import smsc_settings
from export_support import NAMES, PAYLOADS, assert_no_formula_anywhere, csv_value, read_csv, xlsx_value
from test_recommendation import agent_config, offered, shops, topup
from test_settlement import order

MONTH = dt.date(2026, 11, 1)


def test_statements_and_grades_write_hostile_shop_names_as_text(targeted, smsc, tmp_path):
    engine, library = targeted
    with engine.begin() as conn:
        conn.exec_driver_sql("delete from recharge_event")
        agents = list(conn.execute(sa.text("select agent_id from agent order by agent_id")).scalars())
        named = {a: NAMES[i % len(NAMES)] for i, a in enumerate(agents)}
        conn.execute(sa.text("update agent set outlet_name = :n, outlet_type = :t where agent_id = :a"),
                     [{"n": n, "t": n[:20], "a": a} for a, n in named.items()])
    customers = offered(engine, "1114-007", len(NAMES))
    outlets = shops(engine, len(NAMES))
    assert [s["outlet_name"] for s in outlets] == NAMES
    clock.set_now(dt.datetime(2026, 11, 23, 10, 0))
    for i, (msisdn, shop) in enumerate(zip(customers, outlets)):
        topup(engine, f"S{i}", msisdn, shop["agent_id"], dt.datetime(2026, 11, 23, 9, 30 + i))
    recommend.serve(engine, engine, library, smsc_settings(smsc), seconds=0, cfg=agent_config(validity_hours=14))
    for i, msisdn in enumerate(customers):
        order(engine, f"O{i}", msisdn, "DATA10G", "2026-11-25 10:00:00")

    out = tmp_path / "commission"
    result = commission.settle_month(engine, engine, MONTH, library, out_dir=out)
    assert result["conversions"] == len(NAMES)
    folder = out / "2026-11"
    for shop in outlets:
        stem = next(folder.glob(f"*/{shop['agent_id']}.csv")).with_suffix("")
        rows = read_csv(stem.with_suffix(".csv"))
        col = rows[0].index("网点名称")
        assert [r[col] for r in rows[1:]] == [csv_value(shop["outlet_name"])]
        sheet = openpyxl.load_workbook(stem.with_suffix(".xlsx")).active
        assert sheet.cell(2, col + 1).value == xlsx_value(shop["outlet_name"])
    graded = grading.grade_month(engine, engine, MONTH, out_dir=tmp_path / "grades")
    grades = read_csv(tmp_path / "grades" / "2026-11" / "outlet_grades.csv")
    name_col, type_col = grades[0].index("网点名称"), grades[0].index("网点类型")
    assert {r[name_col] for r in grades[1:]} == {csv_value(n) for n in NAMES}
    assert {r[type_col] for r in grades[1:]} == {csv_value(n[:20]) for n in NAMES}
    assert graded["shops"] == len(agents)

    checked = assert_no_formula_anywhere(tmp_path)
    statements = len(list(folder.rglob("*.xlsx")))
    assert statements >= len(NAMES) + 2      # each shop's statement, county summaries, the counties' summary
    assert checked == {"csv": statements + 2, "xlsx": statements}
    assert len(PAYLOADS) == 6
