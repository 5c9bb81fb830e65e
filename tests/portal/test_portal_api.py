"""The county portal through a real Airflow API server: isolation enforced on the server."""

from __future__ import annotations

import json

import pandas as pd
import sqlalchemy as sa

from qz_outbound import db

D = "2026-11-23"
JJ, NA = "350582", "350583"


def test_county_never_sees_another_countys_customers_without_login_401(portal):
    for path in ("/", "/api/lists", f"/download/{D}/{JJ}/csv", "/api/progress?cycle=" + D):
        status, _, _ = portal.request(path)
        assert status == 401, path
    status, _, _ = portal.upload(JJ, None, "x.csv", b"a,b\n")
    assert status == 401


def test_county_never_sees_another_countys_customers_listing_and_download(portal):
    status, body, _ = portal.request("/api/lists", "county_350582")
    listing = json.loads(body)
    assert status == 200 and listing["counties"] == [JJ]
    assert listing["lists"] and {entry["county"] for entry in listing["lists"]} == {JJ}

    status, body, headers = portal.request(f"/download/{D}/{JJ}/csv", "county_350582")
    assert status == 200 and body.startswith(b"\xef\xbb\xbf")
    engine = db.make_engine(portal.marketing_url)
    with engine.connect() as conn:
        county_of = dict(conn.execute(sa.text("select msisdn, county_code from mkt_contact")).all())
    frame = pd.read_csv(__import__("io").BytesIO(body), encoding="utf-8-sig", dtype=str)
    assert len(frame) > 0 and {county_of[m] for m in frame["手机号码"]} == {JJ}
    status, body, _ = portal.request(f"/download/{D}/{JJ}/xlsx", "county_350582")
    assert status == 200 and body[:2] == b"PK"

    # another county's list: refused on the server, whatever the link
    for fmt in ("csv", "xlsx"):
        status, body, _ = portal.request(f"/download/{D}/{NA}/{fmt}", "county_350582")
        assert status == 403 and "本县" in body.decode()
    # a user the portal does not know gets nothing
    assert portal.request("/api/lists", "stranger")[0] == 403
    with engine.connect() as conn:
        audit = conn.execute(sa.text("select user_name, action, county_code from portal_audit")).all()
    assert ("county_350582", "download", JJ) in audit and ("county_350582", "denied", NA) in audit


def test_county_never_sees_another_countys_customers_upload_and_results(portal):
    engine = db.make_engine(portal.marketing_url)
    with engine.connect() as conn:
        mine = conn.execute(sa.text("select contact_id from mkt_contact where channel = 'call' and county_code = :c "
                                    "order by contact_id limit 1"), {"c": NA}).scalar()
    csv = f"联系编号（回填用）,外呼结果\n{mine},accepted\n".encode("utf-8-sig")
    status, _, _ = portal.upload(NA, "county_350582", "结果.csv", csv)            # into another county
    assert status == 403
    status, body, _ = portal.upload(NA, "county_350583", "结果.csv", csv)
    result = json.loads(body)
    assert status == 200 and result["rows_accepted"] == 1
    # the result page of that upload is the other county's business
    assert portal.request(f"/upload/{result['upload_id']}", "county_350582")[0] == 403
    assert portal.request(f"/upload/{result['upload_id']}", "county_350583")[0] == 200
    assert portal.request(f"/upload/{result['upload_id']}", "hq")[0] == 200


def test_path_traversal_is_refused(portal):
    for path in (f"/download/{D}/..%2F..%2Fetc/csv", f"/download/..%2F..%2F/{JJ}/csv",
                 f"/download/{D}/{JJ}/..%2F..%2Fmarketing.db", f"/reports/{D}/..%2F..%2Fmarketing.db",
                 "/reports/..%2F..%2F/x.html"):
        status, body, _ = portal.request(path, "hq")
        assert status in (400, 404), (path, status)
        assert b"SQLite format" not in body


def test_hq_sees_every_county_and_the_progress_table(portal):
    status, body, _ = portal.request("/api/lists", "hq")
    listing = json.loads(body)
    assert status == 200 and listing["hq"] and len(listing["counties"]) == 11
    assert {e["county"] for e in listing["lists"]} >= {JJ, NA}
    assert portal.request(f"/download/{D}/{NA}/csv", "hq")[0] == 200
    status, body, _ = portal.request(f"/api/progress?cycle={D}", "hq")
    rows = {r["county"]: r for r in json.loads(body)["counties"]}
    assert status == 200 and len(rows) == 11 and rows[JJ]["issued"] > 0
    assert portal.request(f"/api/progress?cycle={D}", "county_350582")[0] == 403
    status, body, _ = portal.request("/", "hq")
    page = body.decode()
    assert status == 200 and "各区县进度" in page and "晋江市" in page and "南安市" in page


def test_hq_looks_up_a_customers_trajectory_and_counties_cannot(portal):
    engine = db.make_engine(portal.marketing_url)
    with engine.connect() as conn:
        msisdn, campaign = conn.execute(sa.text(
            "select msisdn, campaign_code from mkt_contact where channel = 'sms' order by contact_id limit 1")).one()
    status, body, _ = portal.request(f"/hq/trajectory?msisdn={msisdn}", "hq")
    page = body.decode()
    assert status == 200 and 'id="trajectory"' in page and campaign in page and "短信" in page
    assert portal.request(f"/hq/trajectory?msisdn={msisdn}", "county_350582")[0] == 403
    status, body, _ = portal.request("/hq/trajectory?msisdn=12345", "hq")
    assert status == 200 and "请输入 11 位手机号码" in body.decode()
    with engine.connect() as conn:   # the lookup is audited, with the number masked
        detail = conn.execute(sa.text("select object from portal_audit where action = 'trajectory'")).scalars().all()
    assert detail and all("****" in d and msisdn not in d for d in detail)


def test_an_upload_that_loads_outcomes_triggers_outcomes_loop_through_its_asset(portal):
    status, body, _ = portal.request("/api/v2/assets?uri_pattern=mkt_call_outcome", "hq")
    assets = json.loads(body)["assets"]
    assert status == 200 and [a["uri"] for a in assets] == ["qz-outbound://marketing_db/mkt_call_outcome"]
    asset_id = assets[0]["id"]
    engine = db.make_engine(portal.marketing_url)
    with engine.connect() as conn:
        cid = conn.execute(sa.text("select contact_id from mkt_contact where channel = 'call' and county_code = :c "
                                   "order by contact_id desc limit 1"), {"c": NA}).scalar()

    def events():
        return json.loads(portal.request(f"/api/v2/assets/events?asset_id={asset_id}", "hq")[1])["asset_events"]

    before = len(events())
    csv = f"联系编号（回填用）,外呼结果,外呼时间\n{cid},busy,2026-11-23 17:45\n".encode("utf-8-sig")
    status, body, _ = portal.upload(NA, "county_350583", "asset.csv", csv)
    assert status == 200 and json.loads(body)["rows_accepted"] == 1
    after = events()
    assert len(after) == before + 1 and after[-1]["extra"] == {"county": NA, "rows": 1}
    # the same file again loads nothing: no new event
    portal.upload(NA, "county_350583", "asset.csv", csv)
    assert len(events()) == before + 1
    assert [d["dag_id"] for d in assets[0]["scheduled_dags"]] == ["outcomes_loop"]   # what the event triggers


def test_on_the_embedded_default_a_county_user_is_an_airflow_viewer_and_reads_counts_only(portal):
    """What docs/security.md says of SimpleAuthManager: a county user can read Airflow's DAG runs
    and asset events (it is a viewer, there is no lesser role), and they carry no customer."""
    status, body, _ = portal.request("/api/v2/assets/events?limit=100", "county_350583")
    assert status == 200
    engine = db.make_engine(portal.marketing_url)
    with engine.connect() as conn:
        numbers = set(conn.execute(sa.text("select msisdn from mkt_contact")).scalars())
    text = body.decode()
    assert not any(n in text for n in numbers)
    for event in json.loads(body)["asset_events"]:
        assert set(event["extra"] or {}) <= {"county", "rows", "from_rest_api"}, event["extra"]
    assert portal.request("/api/v2/dags", "county_350583")[0] == 200
