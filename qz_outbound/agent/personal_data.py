"""Personal data import (个性数据导入): per-customer fields that fill a campaign's texts.

HQ uploads a CSV (UTF-8 or GBK) or XLSX for a campaign that declares ``personal_fields``: one row
per customer, a number column (``手机号码`` or ``msisdn``) and one column per field. Every row is
checked; a bad row is reported in Chinese with its row number as the spreadsheet shows it (the
header is row 1), the column and the reason, and the good rows are kept
(``mkt_personal_data``, the same customer again replaces its fields). A row is good when its
number is a mainland mobile number not seen earlier in the file, every field is filled, and the
campaign's customer SMS renders with it.

``python -m qz_outbound.agent import-personal --db <marketing_db URL> --campaign 3141-015 <file>``
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from sqlalchemy.engine import Engine

from qz_outbound import clock, db
from qz_outbound.agent.schema import mkt_personal_data
from qz_outbound.campaigns import Campaign
from qz_outbound.phone import is_mobile
from qz_outbound.sms.render import RenderError, render_sms
from qz_outbound.sms.settings import load_sms_config

NUMBER_COLUMNS = ("手机号码", "msisdn")


@dataclass(frozen=True)
class RowError:
    row: int          # as the spreadsheet shows it: the header is row 1
    column: str
    reason: str

    def __str__(self) -> str:
        return f"第{self.row}行 [{self.column}]：{self.reason}"


@dataclass
class ImportResult:
    rows: int = 0
    imported: int = 0
    errors: list[RowError] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"rows": self.rows, "imported": self.imported, "rejected": len({e.row for e in self.errors})}


def read_table(path: Path) -> pd.DataFrame:
    path = Path(path)
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        return pd.read_excel(path, dtype=str, engine="openpyxl").fillna("")
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return pd.read_csv(path, dtype=str, encoding=encoding, keep_default_na=False)
        except UnicodeDecodeError:
            continue
    raise ValueError(f"{path.name}: 无法识别的文件编码（请用 UTF-8 或 GBK）")


def check_rows(frame: pd.DataFrame, campaign: Campaign) -> tuple[list[dict], list[RowError]]:
    """Good rows (``msisdn``, ``fields``, ``row_no``) and every problem, without touching a database."""
    fields = list(campaign.personal_fields or [])
    frame = frame.rename(columns=lambda c: str(c).strip())
    number_col = next((c for c in NUMBER_COLUMNS if c in frame.columns), None)
    missing = ([] if number_col else ["手机号码"]) + [f for f in fields if f not in frame.columns]
    if missing:
        return [], [RowError(1, m, "缺少该列") for m in missing]
    sms_config = load_sms_config()
    template = campaign.customer_agent_template
    good, errors, first_row = [], [], {}
    for i, rec in enumerate(frame.to_dict("records")):
        row_no = i + 2
        number = str(rec[number_col]).strip().replace(" ", "")
        row_errors = []
        if not is_mobile(number):
            row_errors.append(RowError(row_no, number_col, "手机号码格式不正确（应为11位，以13-19开头）"))
        elif number in first_row:
            row_errors.append(RowError(row_no, number_col, f"号码重复，首次出现在第{first_row[number]}行"))
        values = {f: str(rec[f]).strip() for f in fields}
        row_errors += [RowError(row_no, f, "不能为空") for f, v in values.items() if not v]
        if not row_errors and template:
            try:
                render_sms(template, {"offer": campaign.offer, "campaign_name": campaign.name, "outlet_name": "网点",
                                      "customer_name": "客户", "personal": values}, sms_config.message)
            except RenderError as exc:
                row_errors.append(RowError(row_no, "短信模板", f"无法生成短信：{exc.reason}"))
        if row_errors:
            errors += row_errors
            continue
        first_row[number] = row_no
        good.append({"msisdn": number, "fields": values, "row_no": row_no})
    return good, errors


def import_personal_data(marketing: Engine, campaign: Campaign, path: Path) -> ImportResult:
    """Check the file and keep its good rows for the campaign; the result lists every bad row."""
    if not campaign.personal_fields:
        raise ValueError(f"campaign {campaign.code} declares no personal_fields: nothing to import")
    frame = read_table(path)
    good, errors = check_rows(frame, campaign)
    result = ImportResult(rows=len(frame), errors=errors)
    if good:
        now = clock.now()
        rows = [dict(campaign_code=campaign.code, msisdn=g["msisdn"], fields=json.dumps(g["fields"], ensure_ascii=False),
                     source_file=Path(path).name, row_no=g["row_no"], imported_at=now) for g in good]
        with marketing.begin() as conn:
            db.upsert(conn, mkt_personal_data, rows, key=("campaign_code", "msisdn"),
                      update=("fields", "source_file", "row_no", "imported_at"))
        result.imported = len(rows)
    return result
