"""Demo data mart generator: every input table of ``datamart.md``, N subscribers.

Usage is shaped so that each stability type and tier occurs in roughly the
plan's shares (``config/datamart_demo.yaml``): for each stock customer an
intended type is drawn, then M0 is set against the M1/M2 base so that exactly
that rule fires. Everything is generated in numpy chunks and bulk loaded
(COPY on PostgreSQL), so 6.4 million subscribers take minutes.

The generator is deterministic for a seed: the same arguments give the same
data mart, which tests and benchmarks rely on.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine

from qz_outbound import config, db
from qz_outbound.counties import county_names
from qz_outbound.datamart import schema
from qz_outbound.cycle import month_start

log = logging.getLogger(__name__)

# Real mobile prefixes of the operator (199 is kept for agent shop owners).
SUBSCRIBER_PREFIXES = np.array(["134", "135", "136", "137", "138", "139", "147", "150", "151", "152",
                                "157", "158", "159", "178", "182", "183", "184", "187", "188", "198"])
SURNAMES = list("王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高郑梁谢宋唐许韩冯邓曹彭曾肖田董潘袁蔡蒋余于杜叶程魏苏吕丁任卢姚沈钟姜崔谭陆范汪廖石金韦贾夏付方邹熊白孟秦邱侯江尹薛闫段雷龙黎史陶贺毛郝顾龚邵万覃武钱戴严莫孔向常")
GIVEN = list("伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红鹏辉建国志文斌海燕波宁林雪琳婷晨阳浩宇欣怡子轩梓涵一诺佳琪雨泽俊豪思远嘉诚")
OUTLET_TYPES = np.array(["village", "grocery", "franchise", "cooperative_hall", "specialty_store"])
OUTLET_WORDS = {"village": "村级服务点", "grocery": "便利店", "franchise": "加盟厅",
                "cooperative_hall": "合作营业厅", "specialty_store": "专卖店"}


class DemoShape(config.StrictModel):
    county_shares: dict[str, float]
    stability_shares: dict[str, float]
    tenure_bands: list[tuple[int, int, float]]
    status_shares: dict[str, float]
    market_segment_shares: dict[str, float]
    terminal_shares: dict[str, float]
    bundle_share: float
    product_holding_share: float
    dnd_share: float
    complaint_share: float
    subscribers_per_agent: int
    recharges_per_subscriber_per_week: float
    orders_per_subscriber_per_month: float
    products: list[str]


def _probs(values) -> np.ndarray:
    p = np.asarray(list(values), dtype=float)
    return p / p.sum()


@dataclass
class Counts:
    tables: dict[str, int]

    def add(self, table: str, n: int) -> None:
        self.tables[table] = self.tables.get(table, 0) + n


def _msisdns(k: np.ndarray, prefixes: np.ndarray) -> np.ndarray:
    """Unique 11-digit numbers for subscriber indexes k (a bijection on k)."""
    p = len(prefixes)
    suffix = ((k // p) * 7919 + 1234567) % 100_000_000  # 7919 is coprime to 10^8
    return (pd.Series(prefixes[k % p]) + pd.Series(suffix).astype(str).str.zfill(8)).to_numpy()


def _names(rng: np.random.Generator, n: int) -> np.ndarray:
    s = pd.Series(rng.choice(SURNAMES, n)) + pd.Series(rng.choice(GIVEN, n))
    two = rng.random(n) < 0.6
    s[two] = s[two] + pd.Series(rng.choice(GIVEN, n))[two]
    return s.to_numpy()


def _iso(days_since_epoch: np.ndarray) -> np.ndarray:
    return pd.to_datetime(days_since_epoch, unit="D").strftime("%Y-%m-%d").to_numpy()


def _iso_ts(seconds_since_epoch: np.ndarray) -> np.ndarray:
    return pd.to_datetime(seconds_since_epoch, unit="s").strftime("%Y-%m-%d %H:%M:%S").to_numpy()


def _epoch_day(d: dt.date) -> int:
    return (d - dt.date(1970, 1, 1)).days


def generate(
    engine: Engine,
    subscribers: int,
    as_of: dt.date,
    *,
    seed: int = 2026,
    months: int = 3,
    chunk: int = 400_000,
    progress: bool = True,
    shape_path: Path | None = None,
) -> dict[str, int]:
    """Write a fresh demo data mart into ``engine`` (existing input tables are dropped).

    ``as_of`` is the cycle date the data is made for: M0..M2 are the three
    months before its month (``months`` > 3 adds older history).
    Returns the number of rows written per table.
    """
    if subscribers < 11:
        raise ValueError("need at least one subscriber per county (11)")
    if months < 3:
        raise ValueError("segmentation needs at least 3 months of usage")
    shape = config.load(DemoShape, shape_path or config.config_path("datamart_demo.yaml"))
    rng = np.random.default_rng(seed)
    counts = Counts({})
    started = time.monotonic()

    schema.create_tables(engine, drop=True)
    names = county_names()
    unknown = sorted(set(shape.county_shares) - set(names))
    if unknown:
        raise ValueError(f"datamart_demo.yaml: county_shares has codes not in counties.yaml: {unknown}")
    codes = np.array(list(shape.county_shares))
    county_p = _probs(shape.county_shares.values())

    with engine.begin() as conn:
        counts.add("dim_county", db.bulk_insert(conn, "dim_county", ["county_code", "county_name"],
                                                [(c, names[c]) for c in codes]))
        agents = _agents(rng, shape, codes, county_p, subscribers)
        counts.add("agent", db.bulk_insert(conn, "agent", list(agents.columns), agents))
    agents_by_county = {c: g["agent_id"].to_numpy() for c, g in agents.groupby("county_code")}

    bar = _progress(subscribers, progress)
    for start in range(0, subscribers, chunk):
        k = np.arange(start, min(start + chunk, subscribers))
        frames = _chunk(rng, shape, k, as_of, months, codes, county_p, agents_by_county)
        with engine.begin() as conn:
            for table, frame in frames.items():
                counts.add(table, db.bulk_insert(conn, table, list(frame.columns), frame))
        bar.update(len(k))
    bar.close()
    if progress:
        print("building indexes ...", file=sys.stderr, flush=True)
    schema.create_indexes(engine)
    log.info("data mart of %s subscribers written in %.1fs: %s", subscribers, time.monotonic() - started,
             counts.tables)
    return counts.tables


def _progress(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="subscriber", unit_scale=True, disable=not enabled, file=sys.stderr,
                desc="data mart")


def _agents(rng, shape: DemoShape, codes, county_p, subscribers: int) -> pd.DataFrame:
    n = max(len(codes) * 3, subscribers // shape.subscribers_per_agent)
    county = np.concatenate([codes, rng.choice(codes, n - len(codes), p=county_p)])
    outlet = rng.choice(OUTLET_TYPES, n, p=[0.35, 0.30, 0.15, 0.12, 0.08])
    ids = np.char.add("AG", np.char.zfill(np.arange(1, n + 1).astype(str), 6))
    owner = np.char.add("199", np.char.zfill(((np.arange(n) * 7919 + 77) % 100_000_000).astype(str), 8))
    area = np.round(rng.lognormal(np.log(40), 0.6, n), 1)
    area[rng.random(n) < 0.05] = np.nan
    served = rng.lognormal(np.log(300), 0.7, n).astype(int)
    names = pd.Series(rng.choice(SURNAMES, n)) + "记" + pd.Series(outlet).map(OUTLET_WORDS) + \
        pd.Series(np.char.zfill((np.arange(n) % 1000).astype(str), 3))
    return pd.DataFrame({
        "agent_id": ids, "agent_msisdn": owner, "county_code": county, "outlet_name": names.to_numpy(),
        "outlet_type": outlet, "floor_area_m2": area, "monthly_customers": served,
    })


def _chunk(rng, shape: DemoShape, k, as_of: dt.date, months: int, codes, county_p, agents_by_county):
    n = len(k)
    msisdn = _msisdns(k, SUBSCRIBER_PREFIXES)
    county = rng.choice(codes, n, p=county_p)

    # --- tenure and status
    bands = np.array(shape.tenure_bands, dtype=float)
    band = rng.choice(len(bands), n, p=_probs(bands[:, 2]))
    tenure_days = rng.uniform(bands[band, 0] * 30.44, bands[band, 1] * 30.44)
    open_day = _epoch_day(as_of) - tenure_days.astype(int)
    statuses = np.array(list(shape.status_shares))
    status = rng.choice(statuses, n, p=_probs(shape.status_shares.values()))
    segs = list(shape.market_segment_shares)
    seg_p = list(shape.market_segment_shares.values())
    market = rng.choice(np.array(segs + [None], dtype=object), n, p=_probs(seg_p + [1 - sum(seg_p)]))
    terminal = rng.choice(np.array(list(shape.terminal_shares)), n, p=_probs(shape.terminal_shares.values()))
    home_agent = np.full(n, None, dtype=object)
    has_home = rng.random(n) < 0.6
    for c in codes:
        idx = np.flatnonzero(has_home & (county == c))
        if len(idx) and c in agents_by_county:
            home_agent[idx] = rng.choice(agents_by_county[c], len(idx))

    subscriber = pd.DataFrame({
        "msisdn": msisdn, "customer_name": _names(rng, n), "county_code": county,
        "open_date": _iso(open_day), "status": status, "market_segment": market,
        "terminal_type": terminal, "home_agent_id": home_agent,
    })

    # --- usage: a base per dimension, then M0 against it to produce the intended type
    m_first = [month_start(as_of, back) for back in range(1, months + 1)]  # M0, M1, M2, older...
    m2_day = _epoch_day(m_first[2])
    is_new = open_day >= m2_day
    spend = np.round(rng.lognormal(np.log(58), 0.75, n), 2)
    voice = np.round(spend * rng.lognormal(np.log(4.0), 0.6, n))
    voice[rng.random(n) < 0.03] = 0
    data = np.round(rng.lognormal(np.log(3500), 1.1, n), 1)
    data[(terminal == "feature") | (rng.random(n) < 0.04)] = 0
    base = np.stack([spend, voice, data])  # dims in priority order spend, voice, data

    kinds = list(shape.stability_shares)
    kind_p = _probs(shape.stability_shares.values())
    pre_status = np.isin(status, ["suspended", "pre_cancel"])
    # active customers make up the pre-churn share that suspended/pre-cancelled ones leave
    stock_pre_status = (shape.status_shares["suspended"] + shape.status_shares["pre_cancel"]) / \
        (1 - shape.status_shares["cancelled"])
    adj = kind_p.copy()
    i_pre = kinds.index("pre_churn")
    adj[i_pre] = max(0.0, kind_p[i_pre] - stock_pre_status) / (1 - stock_pre_status)
    adj = adj / adj.sum()
    kind = np.array(kinds)[rng.choice(len(kinds), n, p=adj)]
    kind[pre_status] = "pre_churn"

    dim = rng.choice(3, n, p=[0.5, 0.3, 0.2])
    dim[(dim == 2) & (data == 0)] = 0
    dim[(dim == 1) & (voice == 0)] = 0
    f = np.empty((3, n))
    u = lambda lo, hi: rng.uniform(lo, hi, n)  # noqa: E731
    for d in range(3):
        earlier, chosen = dim > d, dim == d
        f[d] = np.select(
            [kind == "stable",
             (kind == "rising") & chosen, (kind == "rising") & earlier,
             (kind == "declining") & chosen,
             (kind == "warning") & chosen, (kind == "warning") & earlier],
            [u(0.93, 1.07),
             u(1.12, 1.8), u(0.93, 1.07),
             u(0.72, 0.88),
             u(0.10, 0.65), u(0.75, 1.5)],
            default=u(0.93, 1.5))
        f[d][(kind == "warning") & (dim < d)] = u(0.3, 1.5)[(kind == "warning") & (dim < d)]
    f[:, is_new] = rng.uniform(0.8, 1.3, (3, int(is_new.sum())))
    m0 = base * f
    m0[:, (kind == "pre_churn") & ~pre_status & ~is_new] = 0
    m1 = base * rng.uniform(0.95, 1.05, (3, n))
    m2 = 2 * base - m1
    older = [base * rng.uniform(0.9, 1.1, (3, n)) for _ in range(months - 3)]

    usage_parts = []
    open_month_day = open_day.astype("datetime64[D]").astype("datetime64[M]").astype("datetime64[D]").astype(int)
    for i, (month, vals) in enumerate(zip(m_first, [m0, m1, m2] + older)):
        keep = (vals.sum(axis=0) > 0) & (open_month_day <= _epoch_day(month)) & (status != "cancelled")
        usage_parts.append(pd.DataFrame({
            "msisdn": msisdn[keep], "month": month.isoformat(),
            "spend_yuan": np.round(vals[0][keep], 2), "voice_minutes": np.round(vals[1][keep]),
            "data_mb": np.round(vals[2][keep], 1), "sms_count": rng.poisson(15, int(keep.sum())),
        }))
    usage = pd.concat(usage_parts, ignore_index=True)

    # --- bundles: about half the base is tied by something; some expired, some expiring soon
    d_day = _epoch_day(as_of)
    bidx = np.flatnonzero(rng.random(n) < shape.bundle_share)
    btype = rng.choice(np.array(["prepay", "min_spend", "package", "contract", "vpn"]), len(bidx),
                       p=[0.2, 0.25, 0.25, 0.2, 0.1])
    btype[market[bidx] == "enterprise"] = "vpn"
    bkind = np.where(np.isin(btype, ["prepay", "min_spend", "contract"]), "hard", "soft")
    bstart = np.maximum(open_day[bidx], d_day - rng.integers(30, 900, len(bidx)))
    bend = bstart + rng.choice([365, 730], len(bidx))
    open_ended = rng.random(len(bidx)) < 0.4
    bundle = pd.DataFrame({
        "msisdn": msisdn[bidx], "bundle_type": btype, "bundle_kind": bkind, "start_date": _iso(bstart),
        "end_date": np.where(open_ended, None, _iso(bend)).astype(object),
    })

    # --- product holdings
    pidx = np.flatnonzero(rng.random(n) < shape.product_holding_share)
    pidx = np.concatenate([pidx, pidx[rng.random(len(pidx)) < 0.3]])  # some hold two
    products = np.array(shape.products)
    pstart = np.maximum(open_day[pidx], d_day - rng.integers(1, 720, len(pidx)))
    ended = rng.random(len(pidx)) < 0.15
    product_subscription = pd.DataFrame({
        "msisdn": msisdn[pidx], "product_code": rng.choice(products, len(pidx)), "start_date": _iso(pstart),
        "end_date": np.where(ended, _iso(np.minimum(pstart + 90, d_day - 1)), None).astype(object),
    }).drop_duplicates(["msisdn", "product_code"])

    # --- do-not-disturb and complaints
    didx = np.flatnonzero(rng.random(n) < shape.dnd_share)
    d_sec = d_day * 86400
    dnd = pd.DataFrame({
        "msisdn": msisdn[didx], "added_at": _iso_ts(d_sec - rng.integers(86400, 86400 * 900, len(didx))),
        "source": rng.choice(np.array(["customer_request", "regulator", "complaint", "operator"]), len(didx),
                             p=[0.6, 0.1, 0.2, 0.1]),
    })
    cidx = np.flatnonzero(rng.random(n) < shape.complaint_share)
    complaint = pd.DataFrame({
        "msisdn": msisdn[cidx], "complaint_time": _iso_ts(d_sec - rng.integers(3600, 86400 * 365, len(cidx))),
        "category": rng.choice(np.array(["marketing_sms", "marketing_call", "other"]), len(cidx), p=[0.4, 0.2, 0.4]),
    })

    # --- top-ups at agent shops in the week before D, orders in the month before D
    live = np.flatnonzero(status != "cancelled")
    n_rech = rng.poisson(shape.recharges_per_subscriber_per_week * len(live))
    ridx = rng.choice(live, n_rech) if len(live) else np.array([], dtype=int)
    ragent = home_agent[ridx].copy()
    for c in codes:
        miss = np.flatnonzero(pd.isna(ragent) & (county[ridx] == c))
        if len(miss):
            ragent[miss] = rng.choice(agents_by_county[c], len(miss))
    recharge = pd.DataFrame({
        "event_id": np.char.add("R", np.char.zfill((k[0] * 10 + np.arange(n_rech)).astype(str), 12)),
        "msisdn": msisdn[ridx], "agent_id": ragent,
        "amount_yuan": rng.choice(np.array([20, 30, 50, 100, 200]), n_rech).astype(float),
        "event_time": _iso_ts(d_sec - rng.integers(1, 7 * 86400, n_rech)),
    })
    n_ord = rng.poisson(shape.orders_per_subscriber_per_month * len(live))
    oidx = rng.choice(live, n_ord) if len(live) else np.array([], dtype=int)
    ochan = rng.choice(np.array(["sms_reply", "call_centre", "hall", "agent", "app"]), n_ord)
    oagent = np.where(ochan == "agent", home_agent[oidx], None).astype(object)
    for c in codes:
        miss = np.flatnonzero((ochan == "agent") & pd.isna(oagent) & (county[oidx] == c))
        if len(miss):
            oagent[miss] = rng.choice(agents_by_county[c], len(miss))
    order = pd.DataFrame({
        "order_id": np.char.add("O", np.char.zfill((k[0] * 10 + np.arange(n_ord)).astype(str), 12)),
        "msisdn": msisdn[oidx], "product_code": rng.choice(products, n_ord),
        "order_time": _iso_ts(d_sec - rng.integers(1, 30 * 86400, n_ord)), "channel": ochan, "agent_id": oagent,
    })

    return {
        "subscriber": subscriber, "usage_monthly": usage, "bundle": bundle,
        "product_subscription": product_subscription, "dnd_list": dnd, "complaint": complaint,
        "recharge_event": recharge, "order_event": order,
    }
