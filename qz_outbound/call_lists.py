"""County call lists (外呼清单): the day's call contacts of a county, as the call centre works them.

One list per county per cycle, in the order the call centre should phone (the order in which
``publish_county`` filled the county's capacity), written as CSV (UTF-8 with BOM, so Excel shows
the Chinese) and XLSX with Chinese column headers. Each row carries the campaign's call script
(营销口径) rendered for the customer and the contact id the county reports the outcome against.

Files: ``<output>/call_lists/<cycle_date>/<county_code>/外呼清单_<county>_<date>.{csv,xlsx}``,
written atomically (a reader never sees half a file) and rewritten identically by a re-run.
The return value holds counts and paths only (XCom-safe); the files hold customer data and are
served to a county only through the county portal.
"""

from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal
from pathlib import Path

import jinja2
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from qz_outbound import TEMPLATE_DIR, callcentre, db, exports, reports, retention
from qz_outbound.campaigns import Campaign
from qz_outbound.segmentation import load_config as load_segmentation
from qz_outbound.targeting import load_channels

log = logging.getLogger(__name__)

# How a stability type reads to a call-centre agent (the plan's words).
TYPE_WORDS = {
    "0": "新入网客户", "1": "稳定型", "21": "消费提升型", "22": "话务提升型", "23": "流量提升型",
    "3": "下降未预警型", "41": "消费下降预警型", "42": "话务下降预警型", "43": "流量下降预警型", "5": "预销户",
}
# 类型: 新客户 / 重拨 (no_answer or busy before) / 回拨 (the customer asked to be called back), and which
# attempt of the offer the row is (qz_outbound/callcentre.py); 坐席工号 and 回拨日期 are left empty
# for the agent to fill in with the outcome (optional columns of the upload)
COLUMNS = ["序号", "类型", "外呼次数", "手机号码", "客户姓名", "客户细分", "营销活动", "活动编码", "优惠内容",
           "营销口径", "最晚外呼日期", "坐席工号", "回拨日期", "联系编号（回填用）"]


def _yuan(v: Decimal) -> str:
    return f"{v.normalize():f}"


def spend_words(tier: int, boundaries: list[Decimal]) -> str:
    """月消费 range of a spend tier, from the tier boundaries of config/segmentation.yaml."""
    if tier <= 1:
        return f"月消费{_yuan(boundaries[0])}元以下"
    if tier > len(boundaries):
        return f"月消费{_yuan(boundaries[-1])}元及以上"
    return f"月消费{_yuan(boundaries[tier - 2])}–{_yuan(boundaries[tier - 1])}元"


def segment_words(stability_type: str, spend_tier: int, boundaries: list[Decimal]) -> str:
    return f"{TYPE_WORDS.get(stability_type, stability_type)}，{spend_words(spend_tier, boundaries)}"


def _environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR / "call")),
                              undefined=jinja2.StrictUndefined, autoescape=False, trim_blocks=True,
                              lstrip_blocks=True)


def list_dir(cycle_date: dt.date, county_code: str) -> Path:
    return reports.output_dir() / "call_lists" / cycle_date.isoformat() / county_code


def private_list_dir(cycle_date: dt.date, county_code: str) -> Path:
    """The county's folder for a cycle, made owner-only (0700, with the folders between it and the
    output volume): call lists hold full numbers (docs/security.md "Data at rest"); the export
    module writes the files themselves 0600."""
    return retention.private_dir(list_dir(cycle_date, county_code), reports.output_dir())


def file_stem(cycle_date: dt.date, county_code: str) -> str:
    return f"外呼清单_{county_code}_{cycle_date:%Y%m%d}"


def build_call_list(marketing: Engine, cycle_date: dt.date, county_code: str,
                    library: list[Campaign]) -> tuple[pd.DataFrame, int]:
    """The county's call list as a frame with the Chinese columns, and how many scripts failed."""
    channels = load_channels()
    boundaries = load_segmentation().tiers.spend.boundaries
    by_code = {c.code: c for c in library}
    env = _environment()
    call_by = cycle_date + dt.timedelta(days=channels.call_within_days)
    with marketing.connect() as conn:
        rows = conn.execute(sa.text(db.render_sql("call_list.sql", marketing.dialect.name)),
                            {"d": cycle_date.isoformat(), "county": county_code}).all()
    out, failed = [], 0
    for i, r in enumerate(rows, start=1):
        campaign = by_code.get(r.campaign_code)
        words = segment_words(r.stability_type, r.spend_tier, boundaries)
        name = r.customer_name or "客户"
        if campaign is None or not campaign.call_script:
            script, failed = "（无营销口径：活动不在活动库中或未配置外呼口径，请联系市公司）", failed + 1
        else:
            try:
                script = env.get_template(f"{campaign.call_script}.j2").render(
                    customer_name=name, offer=campaign.offer, segment_words=words, campaign_name=campaign.name)
                script = "".join(line.strip() for line in script.splitlines())
            except jinja2.TemplateError as exc:
                script, failed = f"（营销口径生成失败：{exc}，请联系市公司）", failed + 1
        out.append([i, callcentre.KIND_WORDS.get(r.call_kind, r.call_kind), r.attempt, r.msisdn, name, words,
                    campaign.name if campaign else r.campaign_code, r.campaign_code,
                    campaign.offer if campaign else "", script, call_by.isoformat(), "", "", r.contact_id])
    return pd.DataFrame(out, columns=COLUMNS), failed


def write_call_lists(marketing: Engine, cycle_date: dt.date, county_code: str,
                     library: list[Campaign]) -> dict:
    """Write the county's call list (CSV with BOM and XLSX); counts and relative paths only."""
    frame, failed = build_call_list(marketing, cycle_date, county_code, library)
    folder = private_list_dir(cycle_date, county_code)
    stem = file_stem(cycle_date, county_code)
    # through the one export module: text cells are text, never formulas (a customer name from the
    # data mart is hostile input)
    csv_path, xlsx_path = exports.write_pair(folder / stem, frame, "外呼清单",
                                             widths=(6, 8, 8, 14, 10, 28, 18, 10, 30, 80, 12, 10, 12, 24), freeze="A2")
    root = reports.output_dir()
    log.info("county %s: call list of %d rows written (%d scripts failed)", county_code, len(frame), failed)
    return {"county_code": county_code, "rows": len(frame), "script_errors": failed,
            "csv": str(csv_path.relative_to(root)), "xlsx": str(xlsx_path.relative_to(root))}
