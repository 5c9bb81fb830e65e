"""Call-outcome uploads: row-level reasons, good rows load, nothing twice, opt-outs at once."""

from __future__ import annotations

import datetime as dt
import io

import openpyxl
import pytest
import sqlalchemy as sa

from cycle_support import published_cycle
from qz_outbound import clock, db
from qz_outbound.portal import uploads

D = dt.date(2026, 11, 23)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def cycle(request, tmp_path_factory):
    base = tmp_path_factory.mktemp("uploads")
    url = f"sqlite:///{base / 'one.db'}" if request.param == "sqlite" else \
        request.getfixturevalue("pg_database_factory")("qz_upl")
    engine = db.make_engine(url)
    clock.set_now(dt.datetime(2026, 11, 23, 5, 30))
    published_cycle(engine, D, 6000)
    with engine.connect() as conn:
        calls = conn.execute(sa.text("select county_code, contact_id, msisdn from mkt_contact "
                                     "where channel = 'call' order by contact_id")).all()
    by_county: dict[str, list] = {}
    for county, cid, msisdn in calls:
        by_county.setdefault(county, []).append((cid, msisdn))
    county = max(by_county, key=lambda c: len(by_county[c]))
    other = next(c for c in by_county if c != county)
    with engine.connect() as conn:
        sms = conn.execute(sa.text("select contact_id from mkt_contact where channel = 'sms' and county_code = :c "
                                   "order by contact_id limit 1"), {"c": county}).scalar()
    yield engine, county, by_county[county], by_county[other][0][0], sms
    clock.set_now(None)
    engine.dispose()


@pytest.fixture(autouse=True)
def _output(tmp_path, monkeypatch):
    monkeypatch.setenv("QZ_OUTPUT_DIR", str(tmp_path / "out"))
    clock.set_now(dt.datetime(2026, 11, 23, 18, 0))


def _csv(rows, encoding="utf-8-sig", header=("联系编号（回填用）", "外呼结果", "外呼时间", "备注")) -> bytes:
    lines = [",".join(header)] + [",".join(r) for r in rows]
    return ("\n".join(lines) + "\n").encode(encoding)


def test_good_rows_load_and_every_bad_row_gets_its_reason(cycle, tmp_path):
    engine, county, mine, theirs, sms = cycle
    (a, _), (b, _), (c, _) = mine[0], mine[1], mine[2]
    data = _csv([
        (a, "accepted", "2026-11-23 10:15", "客户同意办理"),
        (b, "无人接听", "", ""),                           # Chinese word, no time: the upload's time
        ("C20261123-00000000000", "accepted", "", ""),     # no such contact
        (theirs, "refused", "", ""),                       # another county's contact
        (sms, "accepted", "", ""),                         # an SMS contact, not a call
        (c, "maybe", "", ""),                              # not an outcome code
        (c, "busy", "yesterday-ish", ""),                  # not a time
        (a, "accepted", "2026-11-23 10:15", "again"),      # the same row twice in the file
    ])
    result = uploads.process_upload(engine, county, "county_user", "结果.csv", data)
    assert (result.status, result.rows_total, result.rows_accepted, result.rows_rejected) == ("loaded", 8, 2, 6)
    reasons = {r["row_no"]: r["reason"] for r in result.rejects}
    assert "未知的联系编号" in reasons[4] and "不是本县" in reasons[5] and "不是外呼" in reasons[6]
    assert "外呼结果不可识别" in reasons[7] and "外呼时间格式错误" in reasons[8] and "与第 2 行重复" in reasons[9]
    with engine.connect() as conn:
        loaded = conn.execute(sa.text("select contact_id, outcome, county_code from mkt_call_outcome "
                                      "where upload_id = :u order by contact_id"), {"u": result.upload_id}).all()
        kept = conn.execute(sa.text("select count(*) from portal_upload_reject where upload_id = :u"),
                            {"u": result.upload_id}).scalar()
    assert sorted(loaded) == sorted([(a, "accepted", county), (b, "no_answer", county)])
    assert kept == 6                                        # nothing arriving is dropped silently
    archived = list(uploads.archive_dir(county).glob(f"{result.upload_id}_*"))
    assert len(archived) == 1 and archived[0].read_bytes() == data

    # the same file again changes nothing
    again = uploads.process_upload(engine, county, "county_user", "结果(1).csv", data)
    assert again.duplicate_file and again.upload_id == result.upload_id
    with engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from mkt_call_outcome where contact_id in (:a, :b)"),
                            {"a": a, "b": b}).scalar() == 2
        assert conn.execute(sa.text("select count(*) from portal_upload where county_code = :c and sha256 = "
                                    "(select sha256 from portal_upload where upload_id = :u)"),
                            {"c": county, "u": result.upload_id}).scalar() == 1
    # a different file with an outcome already loaded: that row is refused, not counted twice
    later = uploads.process_upload(engine, county, "county_user", "补录.csv",
                                   _csv([(a, "accepted", "2026-11-23 10:15", "补录")]))
    assert later.rows_accepted == 0 and "已在之前的上传中登记" in later.rejects[0]["reason"]


def test_opt_out_never_contacted_after_refused_do_not_call(cycle):
    engine, county, mine, _, _ = cycle
    cid, msisdn = mine[3]
    result = uploads.process_upload(engine, county, "county_user", "拒绝.csv",
                                    _csv([(cid, "拒绝且不再来电", "2026-11-23 11:00", "")]))
    assert result.rows_accepted == 1 and result.opt_outs == 1
    with engine.connect() as conn:
        row = conn.execute(sa.text("select source, detail from mkt_opt_out where msisdn = :m"), {"m": msisdn}).one()
    assert tuple(row) == ("call_outcome", result.upload_id)
    # the opt-out is in force for every message not yet submitted: the SMS queue skips the number
    from qz_outbound.sms.outbox import opted_out

    with engine.connect() as conn:
        assert opted_out(conn, [msisdn]) == {msisdn}


def test_gbk_csv_and_xlsx_are_read(cycle):
    engine, county, mine, _, _ = cycle
    gbk = uploads.process_upload(engine, county, "u", "excel.csv",
                                 _csv([(mine[4][0], "忙线", "2026/11/23 15:00", "晚点再打")], encoding="gbk"))
    assert gbk.rows_accepted == 1, gbk.rejects
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["序号", "联系编号（回填用）", "外呼结果", "外呼时间"])
    sheet.append([1, mine[5][0], "预约回拨", "2026-11-23 16:00"])
    sheet.append([2, mine[6][0], "", ""])                  # a row of the list not called yet
    sheet.append([None, None, None, None])                 # an empty row Excel left behind
    buf = io.BytesIO()
    book.save(buf)
    xlsx = uploads.process_upload(engine, county, "u", "结果.xlsx", buf.getvalue())
    assert (xlsx.rows_total, xlsx.rows_accepted, xlsx.rows_rejected, xlsx.rows_without_outcome) == (2, 1, 0, 1)
    with engine.connect() as conn:
        assert conn.execute(sa.text("select outcome from mkt_call_outcome where contact_id = :c"),
                            {"c": mine[5][0]}).scalar() == "callback"


@pytest.mark.parametrize("name,data,reason", [
    ("结果.csv", b"", "文件为空"),
    ("结果.csv", "手机号码,结果\n13900000000,accepted\n".encode("utf-8-sig"), "缺少列“联系编号（回填用）”"),
    ("结果.xlsx", b"PK\x03\x04 not really a workbook", "无法读取 Excel"),
    ("结果.pdf", b"%PDF-1.4", "只接受 CSV 或 XLSX"),
])
def test_a_malformed_file_is_rejected_with_its_reason_and_kept(cycle, name, data, reason):
    engine, county, _, _, _ = cycle
    result = uploads.process_upload(engine, county, "u", name, data)
    assert result.status == "rejected" and reason in result.error and result.rows_accepted == 0
    assert any(p.read_bytes() == data for p in uploads.archive_dir(county).glob(f"{result.upload_id}_*"))


def test_path_traversal_file_names_are_made_harmless():
    assert uploads.safe_name("../../etc/passwd") == "passwd"
    assert uploads.safe_name("..\\..\\boot.ini") == "boot.ini"
    assert "/" not in uploads.safe_name("a/b/../c.csv") and uploads.safe_name("...") == "upload"
