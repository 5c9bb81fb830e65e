"""Commission for a month on generated data equals a statement checked by hand; grades; personal import."""

from __future__ import annotations

import csv
import datetime as dt

import openpyxl
import sqlalchemy as sa

from qz_outbound import clock
from qz_outbound.agent import commission, grading, recommend
from qz_outbound.agent.personal_data import import_personal_data
from qz_outbound.phone import mask

from conftest import smsc_settings
from test_recommendation import agent_config, offered, outcomes, shops, topup

MONTH = dt.date(2026, 11, 1)


def order(engine, order_id, msisdn, product, when, channel="hall", agent_id=None):
    with engine.begin() as conn:
        conn.execute(sa.text("insert into order_event (order_id, msisdn, product_code, order_time, channel, agent_id) "
                             "values (:o, :m, :p, :t, :c, :a)"),
                     {"o": order_id, "m": msisdn, "p": product, "t": when, "c": channel, "a": agent_id})


def test_month_settlement_matches_hand_checked_statement(targeted, smsc, tmp_path):
    engine, library = targeted
    cfg = agent_config(validity_hours=14)
    with engine.begin() as conn:
        conn.exec_driver_sql("delete from recharge_event")
    a, b, c, d = offered(engine, "1114-007", 4)
    shop1, shop2 = shops(engine, 2)
    clock.set_now(dt.datetime(2026, 11, 23, 10, 0))
    topup(engine, "S1", a, shop1["agent_id"], dt.datetime(2026, 11, 23, 9, 30))
    topup(engine, "S2", b, shop1["agent_id"], dt.datetime(2026, 11, 23, 9, 40))
    topup(engine, "S3", c, shop2["agent_id"], dt.datetime(2026, 11, 23, 9, 50))
    topup(engine, "S4", d, shop2["agent_id"], dt.datetime(2026, 11, 23, 9, 55))
    recommend.serve(engine, engine, library, smsc_settings(smsc), seconds=0, cfg=cfg)
    assert {k: v[1] for k, v in outcomes(engine).items()} == {k: "recommended" for k in ("S1", "S2", "S3", "S4")}

    # orders (BOSS), by hand:
    order(engine, "OA1", a, "DATA10G", "2026-11-25 10:00:00")                  # a: paid to shop1, 10 yuan
    order(engine, "OA2", a, "DATA10G", "2026-11-26 10:00:00")                  # a again: the recommendation is paid once
    order(engine, "OB1", b, "VOICE300", "2026-11-24 10:00:00")                 # b: another product, nothing
    order(engine, "OB2", b, "DATA10G", "2026-11-23 09:00:00")                  # b: before the recommendation, nothing
    order(engine, "OC1", c, "DATA10G", "2026-11-30 09:49:00", "agent", shop1["agent_id"])  # c: day 7, paid to shop2
    order(engine, "OD1", d, "DATA10G", "2026-12-01 10:00:00")                  # d: day 8, in December: outside the window
    out = tmp_path / "commission"
    result = commission.settle_month(engine, engine, MONTH, library, out_dir=out)
    assert result["conversions"] == 2 and result["commission_yuan"] == "20"

    folder = out / "2026-11"
    county1 = _county_of(engine, shop1["agent_id"])
    with open(folder / county1 / f"{shop1['agent_id']}.csv", encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows == [
        ["结算月份", "代理点编码", "网点名称", "订单号", "客户号码", "推荐活动", "产品编码", "推荐时间", "办理时间",
         "酬金(元)", "备注"],
        ["2026-11", shop1["agent_id"], shop1["outlet_name"], "OA1", mask(a), "1114-007 流量加油包升级10GB", "DATA10G",
         "2026-11-23 09:30:00", "2026-11-25 10:00:00", "10.0", ""],
    ]
    county2 = _county_of(engine, shop2["agent_id"])
    sheet = openpyxl.load_workbook(folder / county2 / f"{shop2['agent_id']}.xlsx").active
    values = [[cell.value for cell in row] for row in sheet.iter_rows()]
    assert [v[3] for v in values[1:]] == ["OC1"] and values[1][9] == 10
    with open(folder / "汇总_各区县.csv", encoding="utf-8-sig", newline="") as fh:
        summary = list(csv.DictReader(fh))
    assert sum(float(r["酬金合计(元)"]) for r in summary) == 20
    assert sum(int(r["推荐次数"]) for r in summary) == 4 and sum(int(r["转化笔数"]) for r in summary) == 2

    # a re-run of the month gives the identical statement; December pays nobody (d was too late)
    first = (folder / county1 / f"{shop1['agent_id']}.csv").read_bytes()
    again = commission.settle_month(engine, engine, MONTH, library, out_dir=out)
    assert again["conversions"] == 2
    assert (folder / county1 / f"{shop1['agent_id']}.csv").read_bytes() == first
    december = commission.settle_month(engine, engine, dt.date(2026, 12, 1), library, out_dir=out)
    assert december["conversions"] == 0 and december["orders_staged"] == 1
    with engine.connect() as conn:
        paid = conn.execute(sa.text("select order_id, agent_id from mkt_agent_commission order by order_id")).all()
    assert paid == [("OA1", shop1["agent_id"]), ("OC1", shop2["agent_id"])]

    # grading of the month: scores from the config's weights, hand-checkable for shop2
    graded = grading.grade_month(engine, engine, MONTH, out_dir=tmp_path / "grades")
    assert graded["shops"] > 2 and sum(graded[f"grade_{g}"] for g in "ABCD") == graded["shops"]
    with engine.connect() as conn:
        g = conn.execute(sa.text("select customers_served, floor_area_m2, outlet_type, conversions, score, grade "
                                 "from mkt_agent_grade where agent_id = :a"), {"a": shop2["agent_id"]}).one()
    w = load_weights()
    expected = round(w.weights.customers_served * min(g.customers_served / 300, 1) * 100
                     + w.weights.floor_area_m2 * min((g.floor_area_m2 or 0) / 80, 1) * 100
                     + w.weights.outlet_type * w.outlet_type_score[g.outlet_type]
                     + w.weights.conversions * min(1 / 20, 1) * 100, 2)
    assert g.conversions == 1 and abs(g.score - expected) < 1e-6
    assert (tmp_path / "grades" / "2026-11" / "grade_distribution.html").exists()


def load_weights():
    from qz_outbound.agent.settings import load_agent_config

    return load_agent_config().grading


def _county_of(engine, agent_id):
    with engine.connect() as conn:
        return conn.execute(sa.text("select county_code from agent where agent_id = :a"), {"a": agent_id}).scalar()


def test_personal_import_keeps_good_rows_and_reports_bad_ones_in_chinese(sqlite_marketing, tmp_path):
    from qz_outbound import campaigns

    campaign = {c.code: c for c in campaigns.load_library()}["3141-015"]
    path = tmp_path / "个性数据.csv"
    path.write_text("手机号码,name,bonus_yuan,valid_until\n"
                    "13900000001,张先生,20,12月31日\n"
                    "1390000000,李女士,30,12月31日\n"        # row 3: 10 digits
                    "13900000003,,30,12月31日\n"             # row 4: name empty
                    "13900000001,张先生,20,12月31日\n"       # row 5: repeated number
                    "13900000005,王女士,50,12月31日\n", encoding="gbk")
    result = import_personal_data(sqlite_marketing, campaign, path)
    assert result.as_dict() == {"rows": 5, "imported": 2, "rejected": 3}
    assert [str(e) for e in result.errors] == [
        "第3行 [手机号码]：手机号码格式不正确（应为11位，以13-19开头）",
        "第4行 [name]：不能为空",
        "第5行 [手机号码]：号码重复，首次出现在第2行",
    ]
    with sqlite_marketing.connect() as conn:
        kept = conn.execute(sa.text("select msisdn, fields from mkt_personal_data order by msisdn")).all()
    assert [k.msisdn for k in kept] == ["13900000001", "13900000005"]
    assert '"bonus_yuan": "50"' in kept[1].fields
    missing = tmp_path / "缺列.csv"
    missing.write_text("手机号码,name\n13900000001,张先生\n", encoding="utf-8")
    bad = import_personal_data(sqlite_marketing, campaign, missing)
    assert [str(e) for e in bad.errors] == ["第1行 [bonus_yuan]：缺少该列", "第1行 [valid_until]：缺少该列"]
