"""A cycle's summary for the person who ran it: what each stage did and where the outputs are."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from qz_outbound import db, reports, schema


PIPELINE = ["segment", "offer_values", "target", "coverage", "validate", "publish"]


def print_summary(marketing: Engine, cycle_date: dt.date) -> int:
    t = schema.mkt_cycle_stage
    with marketing.connect() as conn:
        stages = conn.execute(sa.select(t.c.stage, t.c.rows, t.c.seconds).where(t.c.cycle_date == cycle_date)
                              .order_by(t.c.finished_at)).all()
        # in the cycle's order (a clock set for a demo stamps every stage alike)
        stages.sort(key=lambda s: (PIPELINE.index(s.stage.split(":")[0]) if s.stage.split(":")[0] in PIPELINE
                                   else len(PIPELINE), s.stage))
        types = conn.execute(sa.text(
            "select stability_type, count(*) from mkt_segment_snapshot where cycle_date = :d "
            "group by stability_type"), {"d": cycle_date.isoformat()}).all()
    if not stages:
        print(f"no cycle recorded for {cycle_date} in {marketing.url.render_as_string(hide_password=True)}")
        return 1
    print(f"cycle {cycle_date}")
    for stage, rows, seconds in stages:
        print(f"  {stage:<22}{rows:>12,} rows  {seconds:8.1f} s")
    with marketing.connect() as conn:
        channels = dict(conn.execute(db.date_binds(
            "select channel, count(*) from mkt_contact where cycle_date = :d group by channel", "d"),
            {"d": cycle_date}).all())
        outbox = dict(conn.execute(db.date_binds(
            "select state, count(*) from sms_outbox where cycle_date = :d group by state", "d"),
            {"d": cycle_date}).all()) \
            if sa.inspect(marketing).has_table("sms_outbox") else {}
    if channels:
        print("  contacts: " + ", ".join(f"{ch} {n:,}" for ch, n in sorted(channels.items())))
    if outbox:
        print("  SMS outbox: " + ", ".join(f"{st} {n:,}" for st, n in sorted(outbox.items())))
    if outbox.get("in_doubt"):
        print(f"  SMS in doubt: {outbox['in_doubt']:,} messages may or may not have reached their customers "
              "(a crash while in flight); never re-sent, see docs/runbook.md")
    total = sum(n for _, n in types)
    order = {k: i for i, k in enumerate(reports.TYPE_NAMES)}
    print("  stability types:")
    for typ, n in sorted(types, key=lambda r: order.get(r[0], 99)):
        print(f"    {typ:>2} {reports.TYPE_NAMES.get(typ, typ):<10}{n:>10,}  {n / total:6.1%}")
    out = reports.output_dir() / "reports" / cycle_date.isoformat()
    print(f"  outputs: {out}/")
    for f in sorted(out.glob("*")) if out.exists() else []:
        print(f"    {f.name}")
    return 0
