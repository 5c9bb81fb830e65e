"""Queueing a county's SMS as set work gives exactly what rendering each customer's message would.

The set path (include/sql/queue_county_sms.sql) renders a campaign-level text once and fills the
outbox in SQL; texts that name the customer still go one by one. Both are checked against a plain
per-customer rendering, with opted-out customers and a text that cannot be rendered.
"""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from qz_outbound import campaigns, clock, db, publish, schema, segmentation, targeting
from qz_outbound.dev.demo_datamart import generate
from qz_outbound.sms.render import RenderError, decode_short_message, render_sms
from qz_outbound.sms.settings import load_sms_config

D = dt.date(2026, 11, 23)
COUNTY = "350582"


@pytest.fixture(params=["sqlite", "postgresql"])
def published(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'one.db'}"
    else:
        url = request.getfixturevalue("pg_database_factory")("qz_queue")
    engine = db.make_engine(url)
    generate(engine, 3000, D, progress=False)
    schema.ensure_schema(engine)
    library = campaigns.load_library()
    clock.set_now(dt.datetime(2026, 11, 23, 5, 30))
    segmentation.segment_customers(engine, engine, D)
    targeting.stage_extracts(engine, engine, D)
    targeting.build_target_list(engine, D, library)
    publish.publish_county(engine, D, COUNTY, library, queue_sms=False)
    yield engine, library
    clock.set_now(None)
    engine.dispose()


def _expected(engine, library, broken: str | None):
    """Each SMS contact's text, rendered one customer at a time (None: must fail to render)."""
    by_code = {c.code: c for c in library}
    cfg = load_sms_config().message
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "select c.contact_id, c.campaign_code, c.variant, s.customer_name from mkt_contact c "
            "join mkt_segment_snapshot s on s.cycle_date = c.cycle_date and s.msisdn = c.msisdn "
            "where c.channel = 'sms' and c.county_code = :c"), {"c": COUNTY}).all()
    out = {}
    for contact_id, code, variant, name in rows:
        campaign = by_code[code]
        template = campaign.sms_variants[variant or campaign.variant_labels[0]].template
        try:
            out[contact_id] = render_sms(template, {"offer": campaign.offer, "campaign_name": campaign.name,
                                                    "customer_name": name or "客户"}, cfg).text
        except RenderError:
            assert code == broken
            out[contact_id] = None
    return out


def test_set_queueing_equals_rendering_each_customer(published):
    engine, library = published
    # one campaign's offer text carries a character UCS-2 cannot: its messages must fail, not go out cut
    with engine.connect() as conn:
        by_campaign = dict(conn.execute(sa.text(
            "select campaign_code, count(*) from mkt_contact where channel = 'sms' and county_code = :c "
            "group by campaign_code"), {"c": COUNTY}).all())
        opted = [r[0] for r in conn.execute(sa.text(
            "select msisdn from mkt_contact where channel = 'sms' and county_code = :c order by msisdn limit 7"),
            {"c": COUNTY})]
    per_customer = {c.code for c in library if c.sms_variants and any(
        "customer_name" in publish.template_variables(v.template) for v in c.sms_variants.values())}
    assert per_customer & set(by_campaign), "the data should exercise the per-customer path too"
    broken = max((code for code in by_campaign if code not in per_customer), key=by_campaign.get)
    library = [c.model_copy(update={"offer": c.offer + "😀"}) if c.code == broken else c for c in library]
    with engine.begin() as conn:
        conn.execute(schema.mkt_opt_out.insert(), [
            {"msisdn": m, "opted_out_at": clock.now(), "source": "sms_reply"} for m in opted])

    counts = publish.queue_county_sms(engine, D, COUNTY, library)

    expected = _expected(engine, library, broken)
    with engine.connect() as conn:
        outbox = {r.contact_id: r for r in conn.execute(sa.text(
            "select o.contact_id, o.msisdn, o.state, o.text, o.parts, o.reason, c.status from sms_outbox o "
            "join mkt_contact c on c.contact_id = o.contact_id"))}
        parts = {}
        for cid, no, payload, esm, coding in conn.execute(sa.text(
                "select contact_id, part_no, payload, esm_class, data_coding from sms_part order by part_no")):
            parts.setdefault(cid, []).append(decode_short_message(bytes(payload), coding, esm))
    assert set(outbox) == set(expected)                      # every SMS contact, once
    for cid, row in outbox.items():
        assert row.status == row.state                       # mkt_contact follows the outbox
        if row.msisdn in opted:
            assert (row.state, row.reason, row.text, cid in parts) == ("skipped", "opt_out", None, False)
        elif expected[cid] is None:
            assert row.state == "failed" and "UCS-2" in row.reason and row.text is None and cid not in parts
        else:
            assert row.state == "queued" and row.text == expected[cid]
            assert "".join(parts[cid]) == expected[cid] and len(parts[cid]) == row.parts
    assert counts["skipped"] == len(opted)
    assert counts["failed"] == sum(1 for cid, t in expected.items() if t is None and outbox[cid].msisdn not in opted)
    assert counts["queued"] == sum(1 for r in outbox.values() if r.state == "queued")

    # a re-run queues nothing more and changes nothing
    again = publish.queue_county_sms(engine, D, COUNTY, library)
    assert again.get("queued", 0) == 0 and again.get("skipped", 0) == 0
    with engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from sms_outbox")).scalar() == len(outbox)
