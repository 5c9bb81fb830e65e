"""A plain-Python reading of spec/segmentation.md, written from the page, not from the SQL.

Exact arithmetic (fractions from the decimal text of every value), one
customer at a time: slow and obviously right, which is what the SQL is
compared with.
"""

from __future__ import annotations

import datetime as dt
import math
from fractions import Fraction


def F(x) -> Fraction:
    return Fraction(str(x))


def first_of_month(d: dt.date, back: int) -> dt.date:
    y, m = d.year, d.month - back
    while m <= 0:
        y, m = y - 1, m + 12
    return dt.date(y, m, 1)


def tier(value: Fraction, boundaries, zero_tier: bool) -> int:
    if zero_tier and value <= 0:
        return 0
    t = 1
    for b in boundaries:
        if value >= F(b):  # closed on the left: a value on a boundary goes up
            t += 1
    return t


def change(m0: Fraction, m1: Fraction, m2: Fraction) -> float | Fraction:
    base = (m1 + m2) / 2
    if base > 0:
        return (m0 - base) / base
    return math.inf if m0 > 0 else Fraction(0)


def whole_months(open_date: dt.date, d: dt.date) -> int:
    months = (d.year - open_date.year) * 12 + (d.month - open_date.month)
    return months - 1 if d.day < open_date.day else months


def segment(subscribers, usage, bundles, d: dt.date, cfg) -> dict[str, dict]:
    """subscribers: dicts with msisdn, county_code, open_date, status, market_segment;
    usage: dicts with msisdn, month, spend_yuan, voice_minutes, data_mb;
    bundles: dicts with msisdn, bundle_kind, start_date, end_date."""
    m0, m1, m2 = first_of_month(d, 1), first_of_month(d, 2), first_of_month(d, 3)
    cols = {"spend": "spend_yuan", "voice": "voice_minutes", "data": "data_mb"}
    by_key = {(u["msisdn"], u["month"]): u for u in usage}
    st = cfg.stability
    out = {}
    for s in subscribers:
        if s["status"] == "cancelled" or s["open_date"] > d:
            continue
        msisdn = s["msisdn"]
        vals = {}
        for dim, col in cols.items():
            vals[dim] = [F(by_key[(msisdn, m)][col]) if (msisdn, m) in by_key else Fraction(0) for m in (m0, m1, m2)]
        changes = {dim: change(*v) for dim, v in vals.items()}
        order = list(st.dimension_priority)
        digit = {"spend": "1", "voice": "2", "data": "3"}
        if s["open_date"] >= m2:
            typ = "0"
        elif s["status"] in st.pre_churn_statuses or all(v[0] == 0 for v in vals.values()):
            typ = "5"
        elif any(changes[x] <= F(st.warning_change) for x in order):
            typ = "4" + digit[next(x for x in order if changes[x] <= F(st.warning_change))]
        elif any(changes[x] <= F(st.declining_change) for x in order):
            typ = "3"
        elif any(changes[x] >= F(st.rising_change) for x in order):
            typ = "2" + digit[next(x for x in order if changes[x] >= F(st.rising_change))]
        else:
            typ = "1"
        tiers = cfg.tiers
        p = tier(vals["spend"][0], tiers.spend.boundaries, tiers.spend.zero_tier)
        v = tier(vals["voice"][0], tiers.voice.boundaries, tiers.voice.zero_tier)
        dd = tier(vals["data"][0], tiers.data.boundaries, tiers.data.zero_tier)
        months = whole_months(s["open_date"], d)
        t = tier(Fraction(months), tiers.tenure.boundaries, False)
        kinds = {b["bundle_kind"] for b in bundles if b["msisdn"] == msisdn and b["start_date"] <= d
                 and (b["end_date"] is None or b["end_date"] >= d)}
        out[msisdn] = {
            "county_code": s["county_code"], "stability_type": typ, "spend_tier": p, "voice_tier": v,
            "data_tier": dd, "tenure_tier": t, "market_segment": s["market_segment"],
            "segment_code": f"{typ}-P{p:02d}V{v:02d}D{dd:02d}T{t:02d}", "tenure_months": months,
            "bundle_kind": "hard" if "hard" in kinds else "soft" if "soft" in kinds else None,
        }
    return out
