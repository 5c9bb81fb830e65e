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
    assert (later.rows_accepted, later.rows_rejected, later.rows_already_loaded) == (0, 0, 1)


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
    from qz_outbound.optout import is_opted_out as opted_out

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


# ---------------------------------------------------------------- hostile and everyday files

def _xlsx(rows, *, dimension: bool = True, patch=None) -> bytes:
    """A workbook made by openpyxl; ``dimension=False`` drops the sheet's declared size (as a
    hand-made file may), ``patch`` rewrites the sheet's XML."""
    import re
    import zipfile

    book = openpyxl.Workbook()
    sheet = book.active
    for r in rows:
        if isinstance(r, dict):
            for coord, value in r.items():
                sheet[coord] = value
        else:
            sheet.append(r)
    buf = io.BytesIO()
    book.save(buf)
    if dimension and patch is None:
        return buf.getvalue()
    out = io.BytesIO()
    with zipfile.ZipFile(buf) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                text = data.decode()
                if not dimension:
                    text = re.sub(r"<dimension [^>]*/>", "", text)
                if patch is not None:
                    text = patch(text)
                data = text.encode()
            dst.writestr(item, data)
    return out.getvalue()


def _count(engine, sql, **params):
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), params).scalar()


def test_re_uploading_the_list_as_it_is_worked_adds_only_the_new_rows(cycle):
    engine, county, mine, _, _ = cycle
    ids = [cid for cid, _ in mine[10:16]]
    header = ("联系编号（回填用）", "外呼结果")

    def worked(n: int) -> bytes:   # the call list without a time column, the first n rows filled in
        outcomes = ["accepted", "no_answer", "busy", "refused", "callback", "accepted"]
        return _csv([(cid, outcomes[i] if i < n else "") for i, cid in enumerate(ids)], header=header)

    first = uploads.process_upload(engine, county, "u", "清单.csv", worked(2))
    assert (first.rows_accepted, first.rows_without_outcome, first.rows_already_loaded) == (2, 4, 0)
    clock.set_now(dt.datetime(2026, 11, 23, 19, 30))          # later the same evening, more rows worked
    second = uploads.process_upload(engine, county, "u", "清单.csv", worked(5))
    assert (second.rows_accepted, second.rows_rejected, second.rows_already_loaded) == (3, 0, 2)
    clock.set_now(dt.datetime(2026, 11, 24, 9, 0))
    third = uploads.process_upload(engine, county, "u", "清单.csv", worked(6))
    assert (third.rows_accepted, third.rows_already_loaded) == (1, 5)
    assert _count(engine, "select count(*) from mkt_call_outcome where contact_id in ({})".format(
        ", ".join(f"'{c}'" for c in ids))) == 6                # one outcome per worked row, never two

    # with a time column, a row is its contact, outcome and time: another attempt is a new row
    cid = mine[16][0]
    timed = [(cid, "no_answer", "2026-11-23 10:00", "")]
    uploads.process_upload(engine, county, "u", "带时间.csv", _csv(timed))
    again = uploads.process_upload(engine, county, "u", "带时间.csv",
                                   _csv(timed + [(cid, "no_answer", "2026-11-23 16:00", "第二次")]))
    assert (again.rows_accepted, again.rows_already_loaded) == (1, 1)
    assert _count(engine, "select count(*) from mkt_call_outcome where contact_id = :c", c=cid) == 2


def test_called_at_in_the_future_or_before_the_contact_is_refused_with_its_row(cycle):
    engine, county, mine, _, _ = cycle
    (a, _), (b, _), (c, _), (d, _) = mine[20:24]
    result = uploads.process_upload(engine, county, "u", "时间.csv", _csv([
        (a, "refused", "2099-01-01", ""),                  # would move the refusal window for decades
        (b, "refused", "2026-11-23 18:05", ""),            # five minutes after now (18:00)
        (c, "refused", "2026-11-22 23:59", ""),            # before the contact's cycle day
        (d, "refused", "2026-11-23T02:00:00Z", ""),        # UTC, given as such: 10:00 in Shanghai
    ]))
    reasons = {r["row_no"]: r["reason"] for r in result.rejects}
    assert result.rows_accepted == 1 and set(reasons) == {2, 3, 4}
    assert "晚于当前时间" in reasons[2] and "晚于当前时间" in reasons[3] and "早于该联系的下发日期" in reasons[4]
    with engine.connect() as conn:
        called = conn.execute(sa.text("select called_at from mkt_call_outcome where contact_id = :c"), {"c": d}).scalar()
        assert conn.execute(sa.text("select count(*) from mkt_call_outcome where contact_id in (:a, :b, :c)"),
                            {"a": a, "b": b, "c": c}).scalar() == 0
    assert uploads._wall(called) == dt.datetime(2026, 11, 23, 10, 0)


def test_row_numbers_are_the_ones_the_spreadsheet_shows(cycle):
    engine, county, mine, _, _ = cycle
    good, bad = mine[30][0], "C-no-such-contact"
    text = ("联系编号（回填用）,外呼结果,备注\n"
            f"{good},accepted,\n"
            "\n"                                           # row 3: blank
            ",,\n"                                         # row 4: blank cells
            f'{bad},busy,"两行的\n备注"\n'                   # row 5 (a line break inside quotes: still row 5)
            f"{bad},refused,\n")                           # row 6
    result = uploads.process_upload(engine, county, "u", "空行.csv", text.encode("utf-8-sig"))
    assert result.rows_total == 3 and [r["row_no"] for r in result.rejects] == [5, 6]

    book = _xlsx([["联系编号（回填用）", "外呼结果"], [mine[31][0], "accepted"],
                  {"A5": bad, "B5": "busy"}])              # rows 3 and 4 do not exist in the file
    result = uploads.process_upload(engine, county, "u", "空行.xlsx", book)
    assert result.rows_accepted == 1 and [r["row_no"] for r in result.rejects] == [5]


def test_formula_cells_without_a_computed_value_are_reported_not_taken_as_not_called(cycle):
    engine, county, mine, _, _ = cycle
    (a, _), (b, _), (c, _) = mine[40:43]
    rows = [["联系编号（回填用）", "外呼结果", "外呼时间"],
            [a, '=IF(1=1,"accepted","")', None],           # a formula nothing has computed: no value
            [b, '=IF(1=1,"busy","")', None],               # the same formula, with Excel's cached value
            [c, "no_answer", "=NOW()"]]                    # the time a formula without a value

    def cache_b(xml: str) -> str:   # what Excel leaves after a recalculation: the value next to the formula
        import re
        return re.sub(r'(<c r="B3"[^>]*)(>.*?</f>)<v\s*/?>(</v>)?', r'\1 t="str"\2<v>busy</v>', xml)

    result = uploads.process_upload(engine, county, "u", "公式.xlsx", _xlsx(rows, patch=cache_b))
    reasons = {r["row_no"]: r["reason"] for r in result.rejects}
    assert result.rows_accepted == 1 and result.rows_without_outcome == 0 and set(reasons) == {2, 4}
    assert "“外呼结果”列是公式但没有计算结果" in reasons[2] and "“外呼时间”列是公式" in reasons[4]
    assert _count(engine, "select outcome from mkt_call_outcome where contact_id = :c", c=b) == "busy"


LIMITS = uploads.UploadLimits(max_mb=1, max_rows=50, max_columns=8, max_unpacked_mb=1)


@pytest.mark.parametrize("name,make,reason", [
    ("多行.csv", lambda: _csv([("C1", "busy", "", "")] * 51), "行数超过上限"),
    ("空行很多.csv", lambda: _csv([("C1", "busy", "", "")]) + b"\n" * 60, "行数超过上限"),
    ("宽.csv", lambda: ("联系编号（回填用）,外呼结果" + ",x" * 7 + "\n").encode(), "第 1 行列数超过上限"),
    # 2,500 rows of one cell in column XFD: the sheet says A1:XFD2501 and is refused unread
    ("XFD.xlsx", lambda: _xlsx([["联系编号（回填用）", "外呼结果"]] + [{f"XFD{r}": "x"} for r in range(2, 2502)]),
     "列数超过上限"),
    ("长.xlsx", lambda: _xlsx([["联系编号（回填用）", "外呼结果"]] + [["C1", "busy"]] * 60, dimension=False),
     "行数超过上限"),
    ("远行.xlsx", lambda: _xlsx([["联系编号（回填用）", "外呼结果"], {"A1048576": "x"}], dimension=False),
     "行数超过上限"),
    ("第九列.xlsx", lambda: _xlsx([["联系编号（回填用）", "外呼结果"], {"I2": "x"}], dimension=False),
     "列数超过上限"),
])
def test_a_file_over_a_limit_is_refused_as_a_whole_quickly(cycle, name, make, reason):
    import time

    engine, county, _, _, _ = cycle
    data = make()
    t0 = time.monotonic()
    result = uploads.process_upload(engine, county, "u", name, data, LIMITS)
    assert result.status == "rejected" and reason in result.error, result.error
    assert result.rows_accepted == 0 and time.monotonic() - t0 < 2


def test_the_same_far_cells_without_a_declared_size_cost_nothing(cycle):
    """The freezing file with its <dimension> removed: cells past the column limit are not read."""
    import time

    engine, county, mine, _, _ = cycle
    data = _xlsx([["联系编号（回填用）", "外呼结果"]] + [{f"XFD{r}": "x"} for r in range(2, 2502)], dimension=False)
    t0 = time.monotonic()
    result = uploads.process_upload(engine, county, "u", "XFD无尺寸.xlsx", data)
    assert time.monotonic() - t0 < 3
    assert result.status == "loaded" and result.rows_total == 0 and result.rows_accepted == 0


def test_a_zip_bomb_is_refused_by_its_declared_size_before_anything_is_inflated(cycle):
    import zipfile

    engine, county, _, _, _ = cycle
    buf = io.BytesIO(_xlsx([["联系编号（回填用）", "外呼结果"]]))
    with zipfile.ZipFile(buf, "a", zipfile.ZIP_DEFLATED) as z:
        z.writestr("xl/media/zeros.bin", b"\0" * (3 * 2**20))      # 3 MB of zeros, a few KB packed
    data = buf.getvalue()
    assert len(data) < 64 * 1024
    result = uploads.process_upload(engine, county, "u", "炸弹.xlsx", data, LIMITS)
    assert result.status == "rejected" and "解压后过大" in result.error


def test_a_file_over_the_byte_limit_is_refused_before_anything_is_kept(cycle):
    engine, county, _, _, _ = cycle
    before = _count(engine, "select count(*) from portal_upload")
    with pytest.raises(uploads.UploadTooLarge, match="文件过大"):
        uploads.process_upload(engine, county, "u", "大.csv", b"x" * (2**20 + 1), LIMITS)
    assert _count(engine, "select count(*) from portal_upload") == before
    assert not list(uploads.archive_dir(county).glob("*大.csv"))


def test_tens_of_thousands_of_ids_are_matched_in_sql_not_an_in_list(cycle):
    """40,000 ids: more than SQLite's 32,766 bind parameters, which an IN list of them needed."""
    import time

    engine, county, mine, theirs, _ = cycle
    real = [cid for cid, _ in mine[50:55]]   # the county's call list of a 6,000-subscriber cycle has ~57 rows
    assert len(real) == 5, len(mine)
    fake = [f"C20261123-{i:011d}" for i in range(40_000)]
    data = _csv([(c, "busy", "2026-11-23 15:00", "") for c in real + fake])
    t0 = time.monotonic()
    result = uploads.process_upload(engine, county, "u", "很多.csv", data)
    took = time.monotonic() - t0
    assert (result.rows_total, result.rows_accepted, result.rows_rejected) == (40_005, 5, 40_000)
    assert all("未知的联系编号" in r["reason"] for r in result.rejects)
    assert took < 30, took


def test_two_uploads_at_once_both_load_and_nothing_twice(cycle):
    """As two county users (or one, twice) submitting at the same moment: both wait their turn."""
    import threading

    engine, county, mine, _, _ = cycle
    ids = [cid for cid, _ in mine[32:40]]
    assert len(ids) == 8
    files = [_csv([(c, "busy", "", "") for c in ids[:8]]) + b"\n" * k for k in (1, 2)]   # mostly the same rows
    results, errors = [], []

    def send(data):
        try:
            results.append(uploads.process_upload(engine, county, "u", "同时.csv", data))
        except Exception as exc:   # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(f,)) for f in files]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and sorted(r.rows_accepted for r in results) == [0, 8], [(r.rows_total, r.rows_rejected, r.rows_already_loaded, r.rejects[:1]) for r in results]
    assert sorted(r.rows_already_loaded for r in results) == [0, 8]


def test_the_same_file_sent_twice_at_once_is_loaded_once(cycle):
    import threading

    engine, county, mine, _, _ = cycle
    data = _csv([(cid, "callback", "2026-11-23 17:00", "") for cid, _ in mine[43:47]])
    results, errors = [], []

    def send():
        try:
            results.append(uploads.process_upload(engine, county, "u", "双击.csv", data))
        except Exception as exc:   # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=send) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert sorted(r.duplicate_file for r in results) == [False, True]
    assert {r.rows_accepted for r in results} == {4} and results[0].upload_id == results[1].upload_id
    assert len(list(uploads.archive_dir(county).glob("*双击.csv"))) == 1


def test_the_upload_limits_are_config_and_a_mistake_names_file_line_and_field(tmp_path):
    from qz_outbound.portal.access import load_portal_config

    assert load_portal_config().uploads.max_bytes == 20 * 2**20          # config/portal.yaml as shipped
    bad = tmp_path / "portal.yaml"
    bad.write_text("hq_users: [hq]\nuploads:\n  max_mb: 20\n  max_row: 5000\n", encoding="utf-8")
    with pytest.raises(Exception) as caught:
        load_portal_config(bad)
    message = str(caught.value)
    assert "portal.yaml:4: uploads.max_row" in message
