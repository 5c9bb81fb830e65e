"""Reading GX's results into each check's bilingual summary (English / Chinese), with codes and counts
only; :func:`redact` is the belt and braces against a mobile number in any text that leaves."""

from __future__ import annotations

import datetime as dt
import re

from qz_outbound.validation.checks import NUMBER_FORMAT, REASONS, ControlRow, Volume
from qz_outbound.validation.results import CheckResult
from qz_outbound.validation.settings import ValidationConfig

# check name -> (English title, Chinese label)
CHECK_TITLES = {
    "number_format": ("number format", "号码格式"),
    "one_row_per_customer": ("one row per customer", "一户一行"),
    "known_county": ("known county", "区县"),
    "county_matches_snapshot": ("county as in the cycle's snapshot", "区县与快照一致"),
    "active_campaign": ("campaign run on the day", "活动当日执行"),
    "no_excluded_customer": ("no customer the contact policy excludes", "不得联系的客户"),
    "volume": ("customers segmented within the band of recent cycles", "客户基数"),
    "control_share": ("control-group share within tolerance", "对照组比例"),
}
REASON_NAMES = {  # excluded_reason -> Chinese, for HQ's page
    "dnd": "免打扰", "complaint": "近期营销投诉", "opt_out": "已退订",
    "cancelled_or_unknown": "已销户或不在本周期快照", "holds_product": "已订购所推荐产品",
    "budget": "超出活动月度预算",   # checks.BUDGET_REASON
}


_NUMBER = re.compile(r"(?<!\d)1\d{10}(?!\d)")


def redact(text: str) -> str:
    """Belt and braces: nothing that looks like a mobile number leaves in a summary or a file."""
    return _NUMBER.sub("1**********", text)


def _n(count: int, noun: str) -> str:
    return f"{count:,} {noun}" + ("" if count == 1 else "s")


def _listed(counts: dict[str, int], names: dict[str, str] | None = None, limit: int = 8) -> str:
    items = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    text = ", ".join(f"{(names or {}).get(k, k)} {n:,}" for k, n in items[:limit])
    return text + (f", … ({len(items) - limit} more)" if len(items) > limit else "")


def check_result(res: dict, cycle_date: dt.date, checked_rows: int, volume: Volume, settings: ValidationConfig,
             control_plan: dict[str, ControlRow], breakdown: dict[str, dict[str, int]]) -> CheckResult:
    cfg = res["expectation_config"]
    name = cfg["meta"]["check"]
    kind = cfg["type"]
    result = res.get("result") or {}
    passed = bool(res["success"])
    en, zh = CHECK_TITLES[name.split(":")[0]]
    bad = result.get("unexpected_count")
    total = result.get("element_count", checked_rows)
    if res.get("exception_info", {}).get("raised_exception"):
        message = (res["exception_info"].get("exception_message") or "").splitlines()[:1]
        return CheckResult(name, False, redact(f"{name}: could not be evaluated ({' '.join(message)}) / {zh}：无法校验"),
                           None, kind, zh, "校验出错")
    kw = cfg["kwargs"]
    detail = breakdown.get(name, {}) if not passed else {}
    if name == "number_format":
        expected = f"全部号码符合 {NUMBER_FORMAT}（11位手机号）"
        line = (f"{name}: {bad:,} of {_n(total, 'row')} not a valid mobile number / "
                f"{zh}：{total:,} 行中 {bad:,} 行不是有效手机号")
    elif name == "one_row_per_customer":
        expected = "每个号码只出现一次"
        line = f"{name}: {_n(bad, 'row')} sharing a number with another row / {zh}：{bad:,} 行号码重复"
    elif name == "known_county":
        expected = f"区县为 config/counties.yaml 中的 {len(kw['value_set'])} 个之一"
        line = (f"{name}: {_n(bad, 'row')} in a county not in config/counties.yaml ({_listed(detail)}) / "
                f"{zh}：{bad:,} 行的区县不在配置中（{_listed(detail)}）")
    elif name == "county_matches_snapshot":
        expected = "区县与本周期客户快照中的区县相同"
        line = (f"{name}: {_n(bad, 'row')} with another county than the cycle's snapshot (list→snapshot: "
                f"{_listed(detail)}) / {zh}：{bad:,} 行的区县与本周期快照不一致（清单→快照：{_listed(detail)}）")
    elif name == "active_campaign":
        codes = kw["value_set"]
        expected = f"活动为 {cycle_date} 在执行的 {len(codes)} 个之一：{', '.join(codes) or '（无）'}"
        line = (f"{name}: {_n(bad, 'row')} of campaigns not run on {cycle_date} ({_listed(detail)}) / "
                f"{zh}：{bad:,} 行的活动在 {cycle_date} 不在执行（{_listed(detail)}）")
    elif name == "no_excluded_customer":
        expected = "清单中没有" + "、".join(REASON_NAMES[r] for r in REASONS) + "的客户"
        line = (f"{name}: {_n(bad, 'customer')} the contact policy excludes in the list ({_listed(detail)}) / "
                f"{zh}：清单中有 {bad:,} 位按规定不得联系的客户（{_listed(detail, REASON_NAMES)}）")
    elif name == "volume":
        observed_rows = volume.observed
        bad = None
        if volume.median is None:
            expected = f"非空（前序周期不足 {settings.volume.min_history} 个，暂不比较规模）"
            line = (f"{name}: no customer segmented for the cycle (too few previous cycles for a band, so it must "
                    f"only be non-empty) / {zh}：本周期客户快照为空")
        else:
            k = len(volume.history)
            expected = (f"{volume.min_rows:,}–{volume.max_rows:,} 人（前 {k} 个周期中位数 {volume.median:,.0f} 的 "
                        f"{settings.volume.lower:g}–{settings.volume.upper:g} 倍）")
            line = (f"{name}: {observed_rows:,} customers segmented, outside {volume.min_rows:,}–{volume.max_rows:,} "
                    f"({settings.volume.lower:g}x–{settings.volume.upper:g}x the median {volume.median:,.0f} of the "
                    f"previous {k} cycles) / {zh}：本周期细分客户 {observed_rows:,} 人，超出 "
                    f"{volume.min_rows:,}–{volume.max_rows:,}")
        observed = f"{observed_rows:,} 人"
        if passed:
            line = f"{name}: {observed_rows:,} customers segmented / {zh}：{observed_rows:,} 人"
        return CheckResult(name, passed, redact(line), bad, kind, expected, observed)
    else:  # control_share:<campaign>
        r = control_plan[name.split(":", 1)[1]]
        expected = f"{r.configured:.1%} ± {r.tolerance:.1%}"
        observed = f"{r.chosen:,} 人中 {r.control:,} 人，{r.observed:.1%}"
        line = (f"{name}: {r.observed:.1%} of {r.chosen:,} chosen customers are control, configured "
                f"{r.configured:.1%} ± {r.tolerance:.1%} / {zh}：{r.campaign_code} 的 {r.chosen:,} 人中对照组占 "
                f"{r.observed:.1%}，应为 {r.configured:.1%} ± {r.tolerance:.1%}")
        if passed:
            line = f"{name}: {r.observed:.1%} control, configured {r.configured:.1%} / {zh}：{r.observed:.1%}"
        return CheckResult(name, passed, redact(line), None, kind, expected, observed,
                           campaigns=() if passed else (r.campaign_code,))
    observed = f"{bad:,} 行不符" if bad else "全部符合"
    if detail:
        observed += "（" + _listed(detail, REASON_NAMES) + "）"
    if passed:
        line = f"{name}: all {total:,} rows pass / {zh}：{total:,} 行全部符合"
    held = tuple(sorted(detail)) if name == "active_campaign" else ()
    return CheckResult(name, passed, redact(line), bad, kind, expected, observed, detail, held)
