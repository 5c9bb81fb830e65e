"""A county's call-outcome upload: parsed, checked row by row, loaded, archived, never counted twice.

What a county uploads is its call list with the outcome filled in (or any CSV/XLSX with the
columns ``联系编号（回填用）`` / ``contact_id`` and ``外呼结果`` / ``outcome``; optional
``外呼时间`` / ``called_at`` and ``备注`` / ``note``). CSV may be UTF-8 (with or without BOM) or
GBK/GB18030, as Excel saves it on a Chinese Windows.

Each row is accepted or rejected with a reason (an unknown contact id, another county's contact, a
contact that was not a call, an outcome that is not one of contact-policy.md's codes, a bad time,
a duplicate in the file or of an outcome already loaded). Good rows load even when others fail.
``refused_do_not_call`` is an opt-out at once. The original file is archived; the same file
uploaded again is recognised by its hash and changes nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from qz_outbound import clock, reports, retention, schema
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
MAX_BYTES = 20 * 2**20


class UploadRejected(ValueError):
    """The file as a whole cannot be read (the reason is for the county user, in Chinese)."""


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
    opt_outs: int = 0
    rejects: list[dict] = field(default_factory=list)   # row_no, contact_id, outcome, reason

    def summary(self) -> dict:
        """Counts only (for logs)."""
        return {k: v for k, v in self.__dict__.items() if k != "rejects"}


def safe_name(name: str) -> str:
    """A file name fit for the archive: no directories, no traversal, printable."""
    base = re.split(r"[\\/]", name or "")[-1]
    base = re.sub(r"[^\w.\-()（）\u4e00-\u9fff]", "_", base).lstrip(".")
    return base[:120] or "upload"


def _read(data: bytes, file_name: str) -> pd.DataFrame:
    if not data:
        raise UploadRejected("文件为空")
    if len(data) > MAX_BYTES:
        raise UploadRejected(f"文件过大（超过 {MAX_BYTES // 2**20} MB）")
    suffix = Path(file_name).suffix.lower()
    if suffix in (".xlsx", ".xlsm") or data[:2] == b"PK":
        try:
            return pd.read_excel(io.BytesIO(data), dtype=str, engine="openpyxl").fillna("")
        except Exception as exc:  # a broken workbook: say so, keep the file
            raise UploadRejected(f"无法读取 Excel 文件：{type(exc).__name__}") from None
    if suffix not in (".csv", ".txt", ""):
        raise UploadRejected("只接受 CSV 或 XLSX 文件")
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise UploadRejected("无法识别文件编码（请保存为 UTF-8 或 GBK 的 CSV）")
    try:
        return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, skip_blank_lines=True)
    except Exception as exc:
        raise UploadRejected(f"无法解析 CSV 文件：{type(exc).__name__}") from None


def _column(frame: pd.DataFrame, names: tuple[str, ...], required: bool) -> str | None:
    stripped = {str(c).strip(): c for c in frame.columns}
    for n in names:
        if n in stripped:
            return stripped[n]
    if required:
        raise UploadRejected(f"缺少列“{names[0]}”（也可用 {' / '.join(names[1:])}）")
    return None


def _outcome(value: str) -> str | None:
    v = (value or "").strip()
    if v.lower() in OUTCOMES:
        return v.lower()
    return OUTCOME_WORDS.get(v)


def _called_at(value: str, default: dt.datetime) -> dt.datetime | None:
    v = (value or "").strip()
    if not v:
        return default
    try:
        t = pd.Timestamp(v)
    except (ValueError, TypeError):
        return None
    if pd.isna(t):
        return None
    t = t.to_pydatetime()
    return t.replace(tzinfo=clock.SHANGHAI) if t.tzinfo is None else t


def archive_dir(county_code: str) -> Path:
    return reports.output_dir() / "portal" / "uploads" / county_code


def process_upload(marketing: Engine, county_code: str, user_name: str, file_name: str, data: bytes) -> UploadResult:
    """Check, load and archive one county's outcome file; see the module doc."""
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
    folder = retention.private_dir(archive_dir(county_code), reports.output_dir())
    archive = folder / f"{upload_id}_{name}"
    fd = os.open(archive, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)   # full numbers: owner only
    with os.fdopen(fd, "wb") as out:
        out.write(data)

    result = UploadResult(upload_id=upload_id, county_code=county_code, status="loaded")
    try:
        frame = _read(data, name)
        id_col = _column(frame, ID_COLUMNS, True)
        outcome_col = _column(frame, OUTCOME_COLUMNS, True)
        time_col = _column(frame, TIME_COLUMNS, False)
        note_col = _column(frame, NOTE_COLUMNS, False)
    except UploadRejected as exc:
        result.status, result.error = "rejected", str(exc)
        frame = None

    accepted: list[dict] = []
    opt_outs: set[str] = set()
    if frame is not None:
        frame = frame[[any(str(v).strip() for v in row) for row in frame.itertuples(index=False)]]
        result.rows_total = len(frame)
        ids = {str(v).strip() for v in frame[id_col]}
        with marketing.connect() as conn:
            contacts = {r.contact_id: r for r in conn.execute(sa.select(
                schema.mkt_contact.c.contact_id, schema.mkt_contact.c.county_code, schema.mkt_contact.c.channel,
                schema.mkt_contact.c.cycle_date, schema.mkt_contact.c.msisdn, schema.mkt_contact.c.campaign_code,
            ).where(schema.mkt_contact.c.contact_id.in_(ids)))} if ids else {}
            loaded = {(r.contact_id, r.outcome, _wall(r.called_at)) for r in conn.execute(sa.select(
                mkt_call_outcome.c.contact_id, mkt_call_outcome.c.outcome, mkt_call_outcome.c.called_at,
            ).where(mkt_call_outcome.c.contact_id.in_(ids)))} if ids else set()
        seen: dict[tuple, int] = {}
        for offset, row in enumerate(frame.itertuples(index=False)):
            row_no = int(frame.index[offset]) + 2          # as Excel numbers rows, the header being row 1
            values = dict(zip(frame.columns, row))
            cid = str(values[id_col]).strip()
            raw_outcome = str(values[outcome_col]).strip()
            reject = lambda reason: result.rejects.append(  # noqa: E731
                {"row_no": row_no, "contact_id": cid, "outcome": raw_outcome, "reason": reason})
            contact = contacts.get(cid)
            outcome = _outcome(raw_outcome)
            called_at = _called_at(str(values[time_col]) if time_col else "", now)
            if not raw_outcome:
                result.rows_without_outcome += 1       # the call list's rows not called yet
                continue
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
            elif called_at is None:
                reject("外呼时间格式错误（例：2026-11-23 14:30）")
            elif (cid, outcome, _wall(called_at)) in seen:
                reject(f"与第 {seen[(cid, outcome, _wall(called_at))]} 行重复")
            elif (cid, outcome, _wall(called_at)) in loaded:
                reject("该结果已在之前的上传中登记")
            else:
                seen[(cid, outcome, _wall(called_at))] = row_no
                accepted.append(dict(
                    contact_id=cid, outcome=outcome, called_at=called_at, cycle_date=contact.cycle_date,
                    county_code=county_code, msisdn=contact.msisdn, campaign_code=contact.campaign_code,
                    note=(str(values[note_col]).strip() or None) if note_col else None,
                    upload_id=upload_id, loaded_at=now))
                if outcome == "refused_do_not_call":
                    opt_outs.add(contact.msisdn)
    result.rows_accepted, result.rows_rejected = len(accepted), len(result.rejects)

    with marketing.begin() as conn:
        conn.execute(portal_upload.insert().values(
            upload_id=upload_id, county_code=county_code, sha256=digest, file_name=name,
            archive_path=str(archive), uploaded_by=user_name, uploaded_at=now, status=result.status,
            error=result.error, rows_total=result.rows_total, rows_accepted=result.rows_accepted,
            rows_rejected=result.rows_rejected, rows_without_outcome=result.rows_without_outcome))
        if accepted:
            conn.execute(mkt_call_outcome.insert(), accepted)
        if result.rejects:
            conn.execute(portal_upload_reject.insert(), [{"upload_id": upload_id, **r} for r in result.rejects])
        if opt_outs:
            have = set(conn.scalars(sa.select(schema.mkt_opt_out.c.msisdn).where(
                schema.mkt_opt_out.c.msisdn.in_(opt_outs))))
            new = sorted(opt_outs - have)
            if new:
                conn.execute(schema.mkt_opt_out.insert(), [
                    {"msisdn": m, "opted_out_at": now, "source": "call_outcome", "detail": upload_id} for m in new])
            result.opt_outs = len(new)
    return result


def _wall(t: dt.datetime) -> dt.datetime:
    """Shanghai wall time, naive: how SQLite stores it and how a PostgreSQL value compares with it."""
    return t.astimezone(clock.SHANGHAI).replace(tzinfo=None) if t.tzinfo is not None else t


def load_result(marketing: Engine, upload_id: str) -> UploadResult:
    with marketing.connect() as conn:
        u = conn.execute(sa.select(portal_upload).where(portal_upload.c.upload_id == upload_id)).one()
        rejects = [dict(r._mapping) for r in conn.execute(
            sa.select(portal_upload_reject.c.row_no, portal_upload_reject.c.contact_id,
                      portal_upload_reject.c.outcome, portal_upload_reject.c.reason)
            .where(portal_upload_reject.c.upload_id == upload_id).order_by(portal_upload_reject.c.row_no))]
    return UploadResult(upload_id=u.upload_id, county_code=u.county_code, status=u.status, error=u.error,
                        rows_total=u.rows_total, rows_accepted=u.rows_accepted, rows_rejected=u.rows_rejected,
                        rows_without_outcome=u.rows_without_outcome, rejects=rejects)
