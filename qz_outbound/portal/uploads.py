"""A county's call-outcome upload: parsed within hard limits, checked row by row, loaded, archived,
never counted twice.

What a county uploads is its call list with the outcome filled in (or any CSV/XLSX with the
columns ``联系编号（回填用）`` / ``contact_id`` and ``外呼结果`` / ``outcome``; optional
``外呼时间`` / ``called_at``, ``备注`` / ``note``, ``坐席工号`` / ``agent_id`` (the agent, for
the connect rate per agent-day) and ``回拨日期`` / ``callback_on`` (the day a ``callback`` is due;
not before the call, at most ``redial.callback_max_days`` after it)). CSV may be UTF-8 (with or without BOM) or
GBK/GB18030, as Excel saves it on a Chinese Windows.

A file is refused as a whole when it breaks a limit of ``config/portal.yaml`` (``uploads``: bytes,
rows, columns, an XLSX's declared uncompressed size), so what one upload costs is bounded whatever
it holds. XLSX is read by openpyxl in read-only (streaming) mode, never more columns or rows than
the limits. Row numbers are the spreadsheet's own (the header is row 1, blank rows count).

Each row is accepted or rejected with a reason (an unknown contact id, another county's contact, a
contact that was not a call, an outcome that is not one of contact-policy.md's codes, a bad time,
a time in the future or before the contact's cycle day, a formula cell with no computed value,
a duplicate in the file). Good rows load even when others fail; a row an earlier upload already
loaded is counted (``rows_already_loaded``) and not loaded again.
``refused_do_not_call`` is an opt-out at once. The original file is archived; the same file
uploaded again is recognised by its hash and changes nothing; the same list uploaded again with
more rows worked loads only the new rows (an outcome is identified by contact, outcome and the
call time as given, or by contact and outcome when the file gives no time).

The contact ids are matched as set work: staged in a temporary table and joined in SQL
(``include/sql/upload_match.sql``), whatever their number.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import os
import re
import zipfile
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from qz_outbound import clock, db, reports, retention
from qz_outbound.portal.access import UploadLimits
from qz_outbound.portal.schema import mkt_call_outcome, portal_upload, portal_upload_reject

OUTCOMES = ("accepted", "refused", "refused_do_not_call", "no_answer", "busy", "wrong_number", "callback")
OUTCOME_WORDS = {
    "接受": "accepted", "同意": "accepted", "办理": "accepted",
    "拒绝": "refused",
    "拒绝且不再来电": "refused_do_not_call", "拒绝并要求不再来电": "refused_do_not_call", "不再来电": "refused_do_not_call",
    "无人接听": "no_answer", "未接通": "no_answer",
    "忙": "busy", "占线": "busy", "忙线": "busy",
    "号码错误": "wrong_number", "空号": "wrong_number",
    "预约回拨": "callback", "回拨": "callback",
}
ID_COLUMNS = ("联系编号（回填用）", "联系编号", "contact_id")
OUTCOME_COLUMNS = ("外呼结果", "outcome")
TIME_COLUMNS = ("外呼时间", "called_at")
NOTE_COLUMNS = ("备注", "note")
AGENT_COLUMNS = ("坐席工号", "agent_id")          # optional: the connect rate per agent-day
CALLBACK_COLUMNS = ("回拨日期", "callback_on")    # optional: the day a callback is due (else the next working day)
AGENT_ID = re.compile(r"^[\w\-]{1,16}$")
CONTACT_ID = re.compile(r"^[\w\-]{1,32}$")   # what can be a contact id at all (longer ids cannot match)
MAX_ZIP_MEMBERS = 2000                        # parts of an XLSX package; a workbook has a few dozen
_TS = sa.DateTime(timezone=True)


class UploadRejected(ValueError):
    """The file as a whole cannot be read (the reason is for the county user, in Chinese)."""


class UploadTooLarge(UploadRejected):
    """The file is over the byte limit: refused before anything of it is archived or recorded."""


@dataclass
class UploadResult:
    upload_id: str
    county_code: str
    status: str                       # loaded | rejected
    duplicate_file: bool = False      # the same file was uploaded before: nothing changed
    error: str | None = None
    rows_total: int = 0
    rows_accepted: int = 0
    rows_rejected: int = 0
    rows_without_outcome: int = 0     # rows of the list with no outcome filled in: not called yet
    rows_already_loaded: int = 0      # rows an earlier upload loaded: the list uploaded again as worked
    opt_outs: int = 0
    rejects: list[dict] = field(default_factory=list)   # row_no, contact_id, outcome, reason

    def summary(self) -> dict:
        """Counts only (for logs)."""
        return {k: v for k, v in self.__dict__.items() if k != "rejects"}


@dataclass
class Sheet:
    """What a file holds, within the limits: the header and the rows under it, each with the row
    number a spreadsheet shows and the columns whose cell is a formula with no computed value."""

    header: list[str]
    rows: list[tuple[int, list[str], frozenset[int]]]


def safe_name(name: str) -> str:
    """A file name fit for the archive: no directories, no traversal, printable."""
    base = re.split(r"[\\/]", name or "")[-1]
    base = re.sub(r"[^\w.\-()（）\u4e00-\u9fff]", "_", base).lstrip(".")
    return base[:120] or "upload"


def _too_many_rows(limits: UploadLimits) -> UploadRejected:
    return UploadRejected(f"行数超过上限（表头下最多 {limits.max_rows:,} 行，空行也计入），请分批上传")


def _too_many_columns(limits: UploadLimits, where: str = "") -> UploadRejected:
    return UploadRejected(f"{where}列数超过上限（最多 {limits.max_columns} 列）")


def read_sheet(data: bytes, file_name: str, limits: UploadLimits) -> Sheet:
    """The file's header and rows, or :class:`UploadRejected` naming what is wrong and where."""
    if not data:
        raise UploadRejected("文件为空")
    if len(data) > limits.max_bytes:
        raise UploadTooLarge(f"文件过大（上限 {limits.max_mb} MB）")
    suffix = Path(file_name).suffix.lower()
    if suffix in (".xlsx", ".xlsm") or data[:2] == b"PK":
        return _read_xlsx(data, limits)
    if suffix not in (".csv", ".txt", ""):
        raise UploadRejected("只接受 CSV 或 XLSX 文件")
    return _read_csv(data, limits)


def _read_csv(data: bytes, limits: UploadLimits) -> Sheet:
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise UploadRejected("无法识别文件编码（请保存为 UTF-8 或 GBK 的 CSV）")
    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] | None = None
    rows: list[tuple[int, list[str], frozenset[int]]] = []
    none: frozenset[int] = frozenset()
    try:
        # a record is a spreadsheet row: a blank line is an (empty) row, a quoted line break is not
        for row_no, record in enumerate(reader, start=1):
            if len(record) > limits.max_columns:
                raise _too_many_columns(limits, f"第 {row_no} 行")
            if header is None:
                header = record
            elif row_no - 1 > limits.max_rows:
                raise _too_many_rows(limits)
            else:
                rows.append((row_no, record, none))
    except csv.Error as exc:
        raise UploadRejected(f"无法解析 CSV 文件（第 {reader.line_num} 行：{exc}）") from None
    return Sheet(header or [], rows)


def _text(value) -> str:
    """A cell's value as the text a person sees."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _read_xlsx(data: bytes, limits: UploadLimits) -> Sheet:
    """The first sheet, streamed (openpyxl read-only), never past the row and column limits.

    The zip's declared sizes are checked before anything is decompressed (zipfile never inflates a
    member past its declared size, so the declaration is a bound). A sheet whose own dimension is
    over the limits is refused unread. Cells right of the column limit are not read: a value in the
    first column past it refuses the file; cells further right, in a file that does not declare
    them in its dimension, are not seen (no column the upload uses can be there: the header would
    lack it). Formula cells are read twice (formula, then Excel's cached value), only when the
    sheet has any.
    """
    import openpyxl

    try:
        package = zipfile.ZipFile(io.BytesIO(data))
        members = package.infolist()
    except (zipfile.BadZipFile, ValueError, EOFError):
        raise UploadRejected("无法读取 Excel 文件：不是有效的 XLSX 文件") from None
    unpacked = sum(m.file_size for m in members)
    if len(members) > MAX_ZIP_MEMBERS or unpacked > limits.max_unpacked_mb * 2**20:
        raise UploadRejected(f"Excel 文件解压后过大（{unpacked / 2**20:,.0f} MB，上限 {limits.max_unpacked_mb} MB）")
    width, height = limits.max_columns + 1, limits.max_rows + 2   # one past each limit: to notice it

    def cells(data_only: bool):
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=data_only)
        try:
            if not book.worksheets:
                raise UploadRejected("Excel 文件中没有工作表")
            sheet = book.worksheets[0]
            if (sheet.max_column or 0) > limits.max_columns:
                raise _too_many_columns(limits, f"工作表声明 {sheet.max_column:,} 列，")
            if (sheet.max_row or 0) > limits.max_rows + 1:
                raise _too_many_rows(limits)
            yield from sheet.iter_rows(max_col=width, max_row=height, values_only=data_only)
        finally:
            book.close()

    header: list[str] | None = None
    rows: list[tuple[int, list[str], frozenset[int]]] = []
    formulas: dict[int, list[int]] = {}
    try:
        for row_no, row in enumerate(cells(False), start=1):
            if row_no == height:
                raise _too_many_rows(limits)
            if len(row) == width and row[-1].value is not None:
                raise _too_many_columns(limits, f"第 {row_no} 行，")
            row = row[:limits.max_columns]
            found = [i for i, c in enumerate(row) if getattr(c, "data_type", None) == "f"]
            values = [_text(c.value) for c in row]
            if header is None:
                header = values
                continue
            if found:
                formulas[row_no] = found
            rows.append((row_no, values, frozenset()))
        if formulas:   # what Excel last computed for them (none: a file no spreadsheet has recalculated)
            by_no = {r[0]: i for i, r in enumerate(rows)}
            for row_no, row in enumerate(cells(True), start=1):
                if row_no in formulas:
                    no, values, _ = rows[by_no[row_no]]
                    missing = set()
                    for i in formulas[row_no]:
                        values[i] = _text(row[i])
                        if row[i] is None:
                            missing.add(i)
                    rows[by_no[row_no]] = (no, values, frozenset(missing))
    except UploadRejected:
        raise
    except Exception as exc:  # a broken workbook: say so, keep the file
        raise UploadRejected(f"无法读取 Excel 文件：{type(exc).__name__}") from None
    return Sheet(header or [], rows)


def _column(header: list[str], names: tuple[str, ...], required: bool) -> int | None:
    stripped = {str(c).strip(): i for i, c in reversed(list(enumerate(header)))}
    for n in names:
        if n in stripped:
            return stripped[n]
    if required:
        raise UploadRejected(f"缺少列“{names[0]}”（也可用 {' / '.join(names[1:])}），表头应在第 1 行")
    return None


def _outcome(value: str) -> str | None:
    v = (value or "").strip()
    if v.lower() in OUTCOMES:
        return v.lower()
    return OUTCOME_WORDS.get(v)


def _called_at(value: str) -> dt.datetime | None:
    """A call time as written (naive means Asia/Shanghai), aware; None when it is not a time."""
    import pandas as pd

    try:
        t = pd.Timestamp(value.strip())
    except (ValueError, TypeError, OverflowError):
        return None
    if pd.isna(t):
        return None
    t = t.to_pydatetime()
    return t.replace(tzinfo=clock.SHANGHAI) if t.tzinfo is None else t.astimezone(clock.SHANGHAI)


def _callback_on(value: str) -> dt.date | None:
    """A callback date as written (a date, or a time whose day is meant); None when it is not one."""
    t = _called_at(value)
    return t.date() if t is not None else None


def _wall(t) -> dt.datetime:
    """Shanghai wall time, naive: how SQLite stores it and how a PostgreSQL value compares with it."""
    if isinstance(t, str):
        t = dt.datetime.fromisoformat(t)
    return t.astimezone(clock.SHANGHAI).replace(tzinfo=None) if t.tzinfo is not None else t


def archive_dir(county_code: str) -> Path:
    return reports.output_dir() / "portal" / "uploads" / county_code


_TMP = sa.MetaData()
_tmp_upload_id = sa.Table("tmp_upload_id", _TMP, sa.Column("contact_id", sa.String(32), primary_key=True),
                          prefixes=["TEMPORARY"])


def _match(conn, step: str):
    sql = sa.text(db.render_sql("upload_match.sql", conn.dialect.name, step=step))
    if step == "contacts":
        sql = sql.columns(contact_id=sa.String, county_code=sa.String, channel=sa.String, cycle_date=sa.Date,
                          msisdn=sa.String, campaign_code=sa.String)
    elif step == "loaded":
        sql = sql.columns(contact_id=sa.String, outcome=sa.String, called_at=_TS, called_at_given=sa.Boolean)
    return conn.execute(sql)


def process_upload(marketing: Engine, county_code: str, user_name: str, file_name: str, data: bytes,
                   limits: UploadLimits | None = None) -> UploadResult:
    """Check, load and archive one county's outcome file; see the module doc.

    A file over the byte limit raises :class:`UploadTooLarge` before anything is written."""
    limits = limits or UploadLimits()
    if len(data) > limits.max_bytes:
        raise UploadTooLarge(f"文件过大（上限 {limits.max_mb} MB）")
    digest = hashlib.sha256(data).hexdigest()
    now = clock.now()
    with marketing.connect() as conn:
        earlier = conn.execute(sa.select(portal_upload).where(
            portal_upload.c.county_code == county_code, portal_upload.c.sha256 == digest)).first()
    if earlier is not None:
        result = load_result(marketing, earlier.upload_id)
        result.duplicate_file = True
        return result

    upload_id = f"U{now:%Y%m%d%H%M%S}-{county_code}-{digest[:12]}"
    name = safe_name(file_name)
    archive = archive_dir(county_code) / f"{upload_id}_{name}"

    result = UploadResult(upload_id=upload_id, county_code=county_code, status="loaded")
    try:
        sheet = read_sheet(data, name, limits)
        id_col = _column(sheet.header, ID_COLUMNS, True)
        outcome_col = _column(sheet.header, OUTCOME_COLUMNS, True)
        time_col = _column(sheet.header, TIME_COLUMNS, False)
        note_col = _column(sheet.header, NOTE_COLUMNS, False)
        agent_col = _column(sheet.header, AGENT_COLUMNS, False)
        callback_col = _column(sheet.header, CALLBACK_COLUMNS, False)
        columns = (id_col, outcome_col, time_col, note_col, agent_col, callback_col)
    except UploadRejected as exc:
        result.status, result.error = "rejected", str(exc)
        sheet, columns = None, ()

    with marketing.begin() as conn:
        _serialise(conn, county_code)
        earlier = conn.scalar(sa.select(portal_upload.c.upload_id).where(   # the same file sent twice at once
            portal_upload.c.county_code == county_code, portal_upload.c.sha256 == digest))
        if earlier is None:
            retention.private_dir(archive.parent, reports.output_dir())
            fd = os.open(archive, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)   # full numbers: owner only
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            _load(conn, sheet, result, user_name, name, digest, archive, now, columns)
    if earlier is not None:
        result = load_result(marketing, earlier)
        result.duplicate_file = True
    return result


def _load(conn, sheet: Sheet | None, result: UploadResult, user_name: str, name: str, digest: str,
          archive: Path, now: dt.datetime, columns: tuple) -> None:
    """Check the rows and record the upload, its accepted outcomes, rejects and opt-outs."""
    county_code, upload_id = result.county_code, result.upload_id
    accepted = _check_rows(conn, sheet, result, county_code, now, *columns) if sheet is not None else []
    result.rows_accepted, result.rows_rejected = len(accepted), len(result.rejects)
    conn.execute(portal_upload.insert().values(
        upload_id=upload_id, county_code=county_code, sha256=digest, file_name=name,
        archive_path=str(archive), uploaded_by=user_name, uploaded_at=now, status=result.status,
        error=result.error, rows_total=result.rows_total, rows_accepted=result.rows_accepted,
        rows_rejected=result.rows_rejected, rows_without_outcome=result.rows_without_outcome,
        rows_already_loaded=result.rows_already_loaded))
    if accepted:
        conn.execute(mkt_call_outcome.insert(), accepted)
    if result.rejects:
        conn.execute(portal_upload_reject.insert(), [{"upload_id": upload_id, **r} for r in result.rejects])
    if any(r["outcome"] == "refused_do_not_call" for r in accepted):
        stmt = sa.text(db.render_sql("upload_match.sql", conn.dialect.name, step="opt_out")) \
            .bindparams(sa.bindparam("now", type_=_TS))
        result.opt_outs = conn.execute(stmt, {"upload_id": upload_id, "now": now}).rowcount


def _serialise(conn, county_code: str) -> None:
    """One county's uploads one at a time: an upload reads what is loaded, then writes.

    SQLite: take the write lock first (a concurrent writer then makes this one wait, busy_timeout,
    instead of failing when its read snapshot cannot become a write). PostgreSQL: a transaction
    lock per county, so two uploads of the same list at once cannot both find a row new."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("begin immediate")
    else:
        conn.execute(sa.text("select pg_advisory_xact_lock(hashtext(:k))"), {"k": f"portal_upload:{county_code}"})


def _check_rows(conn, sheet: Sheet, result: UploadResult, county_code: str, now: dt.datetime,
                id_col: int, outcome_col: int, time_col: int | None, note_col: int | None,
                agent_col: int | None = None, callback_col: int | None = None) -> list[dict]:
    """Every row of the sheet accepted (returned, ready to insert) or rejected with its reason."""
    from qz_outbound.callcentre import load_redial

    width = len(sheet.header)
    callback_max_days = load_redial().callback_max_days if callback_col is not None else 0

    def cell(values: list[str], i: int | None) -> str:
        return values[i].strip() if i is not None and i < len(values) else ""

    rows = [(no, v, f) for no, v, f in sheet.rows if f or any(x.strip() for x in v)]   # blank rows: nothing
    result.rows_total = len(rows)
    ids = sorted({c for _, v, _ in rows if CONTACT_ID.match(c := cell(v, id_col))})
    _TMP.drop_all(conn)   # an upload that failed on this connection may have left it (SQLite)
    _TMP.create_all(conn)
    db.bulk_insert(conn, "tmp_upload_id", ["contact_id"], [(i,) for i in ids])
    contacts = {r.contact_id: r for r in _match(conn, "contacts")}
    timed, untimed = set(), set()
    for r in _match(conn, "loaded"):
        untimed.add((r.contact_id, r.outcome))                     # any time: contact and outcome known
        if r.called_at_given:
            timed.add((r.contact_id, r.outcome, _wall(r.called_at)))
    _TMP.drop_all(conn)

    names = {i: str(sheet.header[i]).strip() for i in range(width)}
    accepted: list[dict] = []
    seen: dict[tuple, int] = {}
    for row_no, values, formulas in rows:
        cid, raw_outcome, raw_time = cell(values, id_col), cell(values, outcome_col), cell(values, time_col)
        raw_agent, raw_callback = cell(values, agent_col), cell(values, callback_col)

        def reject(reason: str) -> None:
            result.rejects.append({"row_no": row_no, "contact_id": cid[:64], "outcome": raw_outcome[:64],
                                   "reason": reason})

        empty_formulas = [names.get(i, "") for i in (id_col, outcome_col, time_col, agent_col, callback_col)
                          if i is not None and i in formulas]
        if empty_formulas:
            reject(f"“{'”“'.join(empty_formulas)}”列是公式但没有计算结果（请在 Excel 中重新计算并保存，或粘贴为数值）")
            continue
        if not raw_outcome:
            result.rows_without_outcome += 1       # the call list's rows not called yet
            continue
        contact = contacts.get(cid)
        outcome = _outcome(raw_outcome)
        if not cid:
            reject("联系编号为空")
        elif contact is None:
            reject("未知的联系编号（不在任何外呼清单中）")
        elif contact.county_code != county_code:
            reject("不是本县的联系记录")
        elif contact.channel != "call":
            reject("该联系不是外呼（不能回填外呼结果）")
        elif outcome is None:
            reject(f"外呼结果不可识别（应为：{'、'.join(OUTCOMES)} 或对应中文）")
        elif (called_at := _called_at(raw_time) if raw_time else now) is None:
            reject("外呼时间格式错误（例：2026-11-23 14:30，北京时间）")
        elif called_at > now:
            reject(f"外呼时间晚于当前时间（{now:%Y-%m-%d %H:%M}，北京时间）")
        elif called_at.date() < contact.cycle_date:
            reject(f"外呼时间早于该联系的下发日期 {contact.cycle_date.isoformat()}")
        elif raw_agent and not AGENT_ID.match(raw_agent):
            reject("坐席工号格式错误（最多 16 位字母、数字、下划线或连字符）")
        elif raw_callback and outcome != "callback":
            reject("回拨日期只用于“预约回拨”（callback）的结果")
        elif raw_callback and (callback_on := _callback_on(raw_callback)) is None:
            reject("回拨日期格式错误（例：2026-11-25）")
        elif raw_callback and callback_on < called_at.date():
            reject(f"回拨日期早于外呼日期 {called_at.date().isoformat()}")
        elif raw_callback and callback_on > called_at.date() + dt.timedelta(days=callback_max_days):
            reject(f"回拨日期晚于外呼日期后 {callback_max_days} 天")
        else:
            key = (cid, outcome, _wall(called_at) if raw_time else None)
            if key in seen:
                reject(f"与第 {seen[key]} 行重复")
            elif (key in timed) if raw_time else ((cid, outcome) in untimed):
                result.rows_already_loaded += 1      # counted, not loaded again, not an error either
            else:
                seen[key] = row_no
                accepted.append(dict(
                    contact_id=cid, outcome=outcome, called_at=called_at, called_at_given=bool(raw_time),
                    cycle_date=contact.cycle_date, county_code=county_code, msisdn=contact.msisdn,
                    campaign_code=contact.campaign_code, note=cell(values, note_col) or None,
                    upload_id=result.upload_id, loaded_at=now, agent_id=raw_agent or None,
                    callback_on=callback_on if raw_callback else None))
    return accepted


# ---------------------------------------------------------------- in a worker process

_POOL: ProcessPoolExecutor | None = None


@lru_cache(maxsize=4)
def _worker_engine(url: str) -> Engine:
    return db.make_engine(url)


def _process_in_worker(url: str, *args) -> UploadResult:
    return process_upload(_worker_engine(url), *args)


def submit(marketing: Engine, county_code: str, user_name: str, file_name: str, data: bytes,
           limits: UploadLimits) -> Future:
    """:func:`process_upload` in a worker process of the API server (at most ``limits.at_once``).

    Not a thread: a thread of the server's own process shares its interpreter lock, and a long
    parse then slows every request the server answers (Airflow's UI, REST API and the execution
    API the workers report to). The worker runs at a lower priority, its memory is its own, and a
    worker that dies fails the upload, not the server."""
    global _POOL
    if _POOL is None:
        import multiprocessing

        from qz_outbound.portal.worker import lower_priority

        # forkserver: workers are forked from a small clean process, never from the server (its
        # threads and open connections) and without re-importing the server's main module as
        # spawn would; each lowers its priority first, then imports what it needs
        _POOL = ProcessPoolExecutor(max_workers=limits.at_once, mp_context=multiprocessing.get_context("forkserver"),
                                    initializer=lower_priority, max_tasks_per_child=50)
    url = marketing.url.render_as_string(hide_password=False)
    return _POOL.submit(_process_in_worker, url, county_code, user_name, file_name, data, limits)


def load_result(marketing: Engine, upload_id: str, limit: int | None = None) -> UploadResult:
    """An earlier upload's result; ``limit``: at most that many rejected rows (first by row number)."""
    with marketing.connect() as conn:
        u = conn.execute(sa.select(portal_upload).where(portal_upload.c.upload_id == upload_id)).one()
        rejects = [dict(r._mapping) for r in conn.execute(
            sa.select(portal_upload_reject.c.row_no, portal_upload_reject.c.contact_id,
                      portal_upload_reject.c.outcome, portal_upload_reject.c.reason)
            .where(portal_upload_reject.c.upload_id == upload_id).order_by(portal_upload_reject.c.row_no)
            .limit(limit))]
    return UploadResult(upload_id=u.upload_id, county_code=u.county_code, status=u.status, error=u.error,
                        rows_total=u.rows_total, rows_accepted=u.rows_accepted, rows_rejected=u.rows_rejected,
                        rows_without_outcome=u.rows_without_outcome,
                        rows_already_loaded=u.rows_already_loaded, rejects=rejects)
