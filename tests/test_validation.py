"""Validation of the target list before anything leaves (write–audit–publish), on SQLite and PostgreSQL.

Each test builds a small marketing_db by hand — a snapshot of the cycle, a clean
target list consistent with it, the staged exclusions and holdings, a few
previous cycles in mkt_cycle_stage — then plants one defect and checks that
exactly the right check fails, and that no customer's number reaches the
summary, the page or the JSON.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pytest
import sqlalchemy as sa

from qz_outbound import clock, config, db, schema, validation
from qz_outbound.campaigns import Campaign, code_fields
from qz_outbound.counties import county_names
from qz_outbound.cycle import record_stage

D = dt.date(2026, 11, 23)
COUNTIES = list(county_names())
BUILT_AT = dt.datetime(2026, 11, 23, 5, 10, tzinfo=clock.SHANGHAI)   # when the list was "built"
A, B = "1114-007", "2122-003"          # the campaigns of the clean list
PAUSED, EXPIRED, NOT_IN_LIBRARY = "3341-001", "1134-012", "2143-002"
N_A, N_B = 260, 40                     # A is checked for its control share (>= 200 chosen), B is not


def campaign(code: str, product: str, control_share: str, **extra) -> Campaign:
    return Campaign.model_validate({
        "code": code, "name": f"测试活动{code}", **code_fields(code),
        "product_code": product, "offer": "测试优惠", "priority": 10, "valid_from": "2026-01-01",
        "valid_to": "2027-12-31", "target": {"stability_types": ["1"]}, "channels": ["sms"],
        "sms_variants": {"A": {"template": "1114-007-a"}}, "control_share": control_share, "offer_cost_yuan": 5,
        **extra})


LIBRARY = [
    campaign(A, "DATA10G", "0.05"),
    campaign(B, "VOICE200", "0.05"),
    campaign(PAUSED, "CARE1", "0.05", paused=True),
    campaign(EXPIRED, "GIFT1", "0.05", valid_to="2026-10-31"),
]


class Marketing:
    """A hand-built marketing_db holding one clean cycle D."""

    def __init__(self, engine: sa.Engine):
        self.engine = engine
        schema.ensure_schema(engine)
        for table in ("mkt_segment_snapshot", "mkt_target"):
            if db.is_partitioned(engine, table):
                with engine.begin() as conn:
                    conn.exec_driver_sql(f"create table {db.partition_name(table, D)} partition of {table} "
                                         f"for values in ('{D.isoformat()}')")
        n = N_A + N_B
        self.targets = [f"139{i:08d}" for i in range(1, n + 1)]
        # customers in the snapshot but not in the list: the excluded ones targeting left out
        self.others = [f"139{i:08d}" for i in range(n + 1, n + 21)]
        self.county = {m: COUNTIES[i % len(COUNTIES)] for i, m in enumerate(self.targets + self.others)}
        self.campaign = {m: (A if i < N_A else B) for i, m in enumerate(self.targets)}
        with engine.begin() as conn:
            conn.execute(schema.mkt_segment_snapshot.insert(), [self._snapshot(m) for m in self.targets + self.others])
            conn.execute(schema.mkt_target.insert(), [
                self._target(m, is_control=int(i < N_A and i % 20 == 0)) for i, m in enumerate(self.targets)])
            o = self.others
            conn.execute(schema.stg_exclusion.insert(), [
                {"cycle_date": D, "msisdn": o[0], "reason": "dnd"},
                {"cycle_date": D, "msisdn": o[1], "reason": "complaint"},
                {"cycle_date": D, "msisdn": o[2], "reason": "dnd"},
                {"cycle_date": D, "msisdn": o[2], "reason": "complaint"},   # on both lists: still one row
                # an earlier cycle's staging says nothing about this cycle
                {"cycle_date": D - dt.timedelta(days=1), "msisdn": self.targets[5], "reason": "dnd"}])
            conn.execute(schema.mkt_opt_out.insert(), [
                {"msisdn": o[3], "opted_out_at": dt.datetime(2026, 6, 1, 9, tzinfo=clock.SHANGHAI),
                 "source": "sms_reply"}])
            conn.execute(schema.stg_holding.insert(), [
                # everyone holds something, just not the product offered
                *({"cycle_date": D, "msisdn": m, "product_code": "BASE"} for m in self.targets),
                {"cycle_date": D, "msisdn": o[4], "product_code": "DATA10G"},
                {"cycle_date": D, "msisdn": self.targets[1], "product_code": "VOICE200"}])  # offered DATA10G
        for k in range(1, 8):
            self.history(D - dt.timedelta(days=k), 290 + 3 * k)
        record_stage(engine, D, "target", n, 30.0)
        with engine.begin() as conn:  # the list was built at 05:09:30-05:10
            conn.execute(sa.update(schema.mkt_cycle_stage).where(schema.mkt_cycle_stage.c.cycle_date == D)
                         .values(finished_at=BUILT_AT))

    def _snapshot(self, m: str, county: str | None = None) -> dict:
        return {"cycle_date": D, "msisdn": m, "county_code": county or self.county[m], "stability_type": "1",
                "spend_tier": 5, "voice_tier": 5, "data_tier": 5, "tenure_tier": 5, "market_segment": None,
                "segment_code": "1-P05V05D05T05", "status": "active", "tenure_months": 40, "spend_m0": 80.0,
                "voice_m0": 200.0, "data_m0": 3000.0, "bundle_kind": None, "open_date": dt.date(2020, 3, 1),
                "customer_name": "张三"}

    def _target(self, m: str, campaign_code: str | None = None, is_control: int = 0) -> dict:
        code = campaign_code or self.campaign[m]
        product = {c.code: c.product_code for c in LIBRARY}.get(code, "UNKNOWN")
        return {"cycle_date": D, "msisdn": m, "county_code": self.county[m], "campaign_code": code,
                "product_code": product, "priority": 10, "stability_type": "1", "spend_tier": 5,
                "segment_code": "1-P05V05D05T05", "is_control": is_control, "variant": "A",
                "call_eligible": 0, "sms_allowed": 1}

    def history(self, day: dt.date, customers: int) -> None:
        """A previous cycle that segmented this many customers (the volume check's history)."""
        record_stage(self.engine, day, "segment", customers, 30.0)

    def execute(self, sql: str, **params) -> int:
        with self.engine.begin() as conn:
            return conn.execute(sa.text(sql), params).rowcount

    def insert(self, table: sa.Table, **values) -> None:
        with self.engine.begin() as conn:
            conn.execute(table.insert(), [values])

    def audit(self, tmp_path) -> validation.ValidationReport:
        report = validation.audit_target_list(self.engine, D, LIBRARY, tmp_path)
        self.assert_no_numbers(report)
        return report

    def assert_no_numbers(self, report: validation.ValidationReport) -> None:
        """Counts and codes only: no customer's number (nor name) in any output."""
        texts = [report.summary(), report.html_path.read_text(encoding="utf-8"),
                 report.json_path.read_text(encoding="utf-8")]
        texts += [c.summary for c in report.checks]
        with self.engine.connect() as conn:
            numbers = set(conn.execute(sa.text("select msisdn from mkt_segment_snapshot")).scalars())
            numbers |= set(conn.execute(sa.text("select msisdn from mkt_target")).scalars())
        for text in texts:
            assert "张三" not in text
            leaked = [m for m in numbers if m in text]
            assert not leaked, f"{len(leaked)} customer numbers in an output"


def failed(report: validation.ValidationReport) -> set[str]:
    return {c.check for c in report.failed}


@pytest.fixture(scope="module")
def pg_url(pg_database_factory) -> str:
    return pg_database_factory("qz_val")


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path):
    """An empty marketing_db: an SQLite file, or a fresh schema of a PostgreSQL database of this
    module (a schema per test is as isolated and much cheaper than a database per test)."""
    if request.param == "sqlite":
        eng = db.make_engine(f"sqlite:///{tmp_path / 'marketing.db'}")
    else:
        url = request.getfixturevalue("pg_url")
        name = f"t_{uuid.uuid4().hex[:12]}"
        admin = db.make_engine(url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(f"create schema {name}")
        admin.dispose()
        eng = db.make_engine(url, connect_args={"options": f"-csearch_path={name}"})
    yield eng
    eng.dispose()


@pytest.fixture
def mk(engine) -> Marketing:
    return Marketing(engine)


# ---------------------------------------------------------------- the clean list

def test_clean_list_passes_and_the_result_is_kept(mk, tmp_path):
    report = mk.audit(tmp_path)
    assert report.success, report.summary()
    assert report.failed == []
    assert report.checked_rows == N_A + N_B
    names = {c.check for c in report.checks}
    assert names == {"number_format", "one_row_per_customer", "volume", "known_county", "county_matches_snapshot",
                     "active_campaign", "no_excluded_customer", f"control_share:{A}"}
    folder = tmp_path / "reports" / D.isoformat()
    assert report.html_path == folder / "target_validation.html"
    assert report.json_path == folder / "target_validation.json"
    page = report.html_path.read_text(encoding="utf-8")
    assert "校验通过" in page and "号码格式" in page and A in page
    doc = json.loads(report.json_path.read_text(encoding="utf-8"))
    assert doc["success"] is True and doc["checked_rows"] == N_A + N_B
    assert [r["suite_name"] for r in doc["gx_results"]] == ["target_list.rows", "target_list.base",
                                                          "target_list.control_share"]
    assert all(r["success"] for r in doc["gx_results"])
    validation.require_valid(report)   # no exception
    with mk.engine.connect() as conn:
        assert conn.execute(sa.text("select detail from mkt_cycle_stage where stage = 'validate'")).scalar() == "passed"


# ---------------------------------------------------------------- planted defects

def test_bad_number_format(mk, tmp_path):
    # a malformed number in the data mart travels through the snapshot into the list
    bad = "12000000001"
    mk.execute("update mkt_segment_snapshot set msisdn = :bad where msisdn = :m", bad=bad, m=mk.targets[3])
    mk.execute("update mkt_target set msisdn = :bad where msisdn = :m", bad=bad, m=mk.targets[3])
    report = mk.audit(tmp_path)
    assert failed(report) == {"number_format"}
    assert report.failed[0].unexpected == 1
    assert bad not in report.summary() and bad not in report.json_path.read_text(encoding="utf-8")


def test_duplicate_customer(engine, tmp_path):
    # The key of mkt_target makes a duplicate impossible where the schema is intact; a marketing_db
    # restored without constraints (or a list landed by another route) has no such guard, and
    # arbitration gone wrong then gives one customer two offers. Validation must catch it.
    # (as the baseline release made it: the migrations add the arbitration log's columns)
    later = {"arm", "propensity", "fixed_code", "learned_code"}
    keyless = sa.Table("mkt_target", sa.MetaData(),
                       *(sa.Column(c.name, c.type, nullable=c.nullable) for c in schema.mkt_target.columns
                         if c.name not in later))
    keyless.create(engine)
    mk = Marketing(engine)
    twice = mk.targets[N_A + 2]   # a customer of B, offered A as well
    mk.insert(schema.mkt_target, **mk._target(twice, campaign_code=A))
    report = mk.audit(tmp_path)
    assert failed(report) == {"one_row_per_customer"}
    assert report.failed[0].unexpected == 2   # both rows of the customer


def test_unknown_county(mk, tmp_path):
    # the data mart has a county code the configuration does not know
    mk.execute("update mkt_segment_snapshot set county_code = '350599' where msisdn = :m", m=mk.targets[7])
    mk.execute("update mkt_target set county_code = '350599' where msisdn = :m", m=mk.targets[7])
    report = mk.audit(tmp_path)
    assert failed(report) == {"known_county"}
    assert report.failed[0].breakdown == {"350599": 1} and "350599 1" in report.failed[0].summary


def test_county_other_than_in_the_snapshot(mk, tmp_path):
    # a county must never get another county's customer
    m = mk.targets[8]
    other = next(c for c in COUNTIES if c != mk.county[m])
    mk.execute("update mkt_target set county_code = :c where msisdn = :m", c=other, m=m)
    report = mk.audit(tmp_path)
    assert failed(report) == {"county_matches_snapshot"}
    assert report.failed[0].breakdown == {f"{other}→{mk.county[m]}": 1}


def test_campaign_not_run_on_the_day(mk, tmp_path):
    # rows of a paused campaign, of one past its validity, and of one not in the library
    for k, code in enumerate((PAUSED, PAUSED, PAUSED, EXPIRED, EXPIRED, NOT_IN_LIBRARY)):
        mk.execute("update mkt_target set campaign_code = :c where msisdn = :m", c=code, m=mk.targets[N_A + k])
    report = mk.audit(tmp_path)
    assert failed(report) == {"active_campaign"}
    assert report.failed[0].unexpected == 6
    assert report.failed[0].breakdown == {PAUSED: 3, EXPIRED: 2, NOT_IN_LIBRARY: 1}
    assert f"{PAUSED} 3, {EXPIRED} 2, {NOT_IN_LIBRARY} 1" in report.failed[0].summary
    # a check about campaigns: those campaigns are held back, the rest of the list goes on
    assert report.failed[0].scope == "campaign" and report.publishable
    assert report.held == {PAUSED: 3, EXPIRED: 2, NOT_IN_LIBRARY: 1}
    validation.require_valid(report)   # no exception
    assert validation.held_campaigns(mk.engine, D) == report.held
    assert "held back" in report.summary() and "其余活动照常发布" in report.summary()


@pytest.mark.parametrize("reason", ["dnd", "complaint"])
def test_dnd_or_complaint_customer_present(mk, tmp_path, reason):
    mk.insert(schema.stg_exclusion, cycle_date=D, msisdn=mk.targets[10], reason=reason)
    report = mk.audit(tmp_path)
    assert failed(report) == {"no_excluded_customer"}
    assert report.failed[0].breakdown == {reason: 1}


def test_opted_out_customer_present(mk, tmp_path):
    mk.insert(schema.mkt_opt_out, msisdn=mk.targets[11], opted_out_at=BUILT_AT - dt.timedelta(hours=10),
              source="call_outcome")
    report = mk.audit(tmp_path)
    assert failed(report) == {"no_excluded_customer"}
    assert report.failed[0].breakdown == {"opt_out": 1}


def test_opt_out_after_the_list_was_built_is_left_to_the_sender(mk, tmp_path):
    # replies arrive all day: an opt-out after the build is not a defect of the list (the sender
    # checks opt-outs before every submit), so it must not stop the cycle
    mk.insert(schema.mkt_opt_out, msisdn=mk.targets[12], opted_out_at=BUILT_AT + dt.timedelta(minutes=20),
              source="sms_reply")
    assert mk.audit(tmp_path).success
    # without a record of when the list was built, every opt-out counts
    mk.execute("delete from mkt_cycle_stage where stage = 'target' and cycle_date = :d", d=D.isoformat()
               if mk.engine.dialect.name == "sqlite" else D)
    report = mk.audit(tmp_path)
    assert failed(report) == {"no_excluded_customer"} and report.failed[0].breakdown == {"opt_out": 1}


def test_cancelled_customer_present(mk, tmp_path):
    # one cancelled in the snapshot, one missing from it (cancelled before the snapshot was taken)
    mk.execute("update mkt_segment_snapshot set status = 'cancelled' where msisdn = :m", m=mk.targets[13])
    mk.execute("delete from mkt_segment_snapshot where msisdn = :m", m=mk.targets[15])
    report = mk.audit(tmp_path)
    assert failed(report) == {"no_excluded_customer"}
    assert report.failed[0].breakdown == {"cancelled_or_unknown": 2}


def test_product_already_held(mk, tmp_path):
    mk.insert(schema.stg_holding, cycle_date=D, msisdn=mk.targets[14], product_code="DATA10G")   # offered A
    mk.insert(schema.stg_holding, cycle_date=D, msisdn=mk.targets[14], product_code="DATA10G")   # staged twice
    report = mk.audit(tmp_path)
    assert failed(report) == {"no_excluded_customer"}
    assert report.failed[0].breakdown == {"holds_product": 1}
    assert report.failed[0].unexpected == 1 and report.checked_rows == N_A + N_B


def test_empty_list_of_a_whole_base_passes(mk, tmp_path):
    # everyone offered recently is held by the frequency rules: an empty list is the policy, not a defect
    mk.execute("delete from mkt_target")
    report = mk.audit(tmp_path)
    assert report.success, report.summary()
    assert report.checked_rows == 0


def test_ten_times_the_median_base_fails_on_volume(mk, tmp_path):
    for k in range(1, 8):
        mk.history(D - dt.timedelta(days=k), (N_A + N_B + 20) // 10)
    report = mk.audit(tmp_path)
    assert failed(report) == {"volume"}
    assert "16–64" in report.failed[0].summary   # 0.5x-2x of the median 32; 320 segmented
    assert report.failed[0].scope == "list" and not report.publishable
    with pytest.raises(validation.TargetListInvalid):
        validation.require_valid(report)


def test_volume_band_needs_three_previous_cycles(mk, tmp_path):
    mk.execute("delete from mkt_cycle_stage where cycle_date < :d", d=D.isoformat()
               if mk.engine.dialect.name == "sqlite" else D)
    mk.history(D - dt.timedelta(days=1), 30)
    mk.history(D - dt.timedelta(days=2), 30)
    assert mk.audit(tmp_path).success           # 10x, but two cycles are no band yet
    mk.execute("delete from mkt_target")
    mk.execute("delete from mkt_segment_snapshot")
    assert "volume" in failed(mk.audit(tmp_path))   # still, never an empty snapshot


def test_control_share_off(mk, tmp_path):
    # 80 more of A's customers held out: about 36% control instead of 5%
    extra = [m for i, m in enumerate(mk.targets[:N_A]) if i % 20 != 0][:80]
    mk.execute(f"update mkt_target set is_control = 1 where msisdn in ({', '.join(repr(m) for m in extra)})")
    report = mk.audit(tmp_path)
    assert failed(report) == {f"control_share:{A}"}
    assert "35.8%" in report.failed[0].summary   # 93 of 260
    assert report.publishable and report.held == {A: N_A}


def test_a_held_campaign_is_not_published_and_the_others_are(mk, tmp_path):
    from qz_outbound import publish

    extra = [m for i, m in enumerate(mk.targets[:N_A]) if i % 20 != 0][:80]
    mk.execute(f"update mkt_target set is_control = 1 where msisdn in ({', '.join(repr(m) for m in extra)})")
    report = mk.audit(tmp_path)
    validation.require_valid(report)
    held = {}
    for county in COUNTIES:
        counts = publish.publish_county(mk.engine, D, county, LIBRARY, queue_sms=False)
        held[county] = counts["held"]
    with mk.engine.connect() as conn:
        published = dict(conn.execute(sa.text(
            "select campaign_code, count(*) from mkt_contact group by campaign_code")).tuples().all())
        reason = conn.execute(sa.text("select reason from mkt_target_hold where campaign_code = :c"), {"c": A}).scalar()
    assert published == {B: N_B}            # B went on; nobody of A was contacted, control or not
    assert sum(held.values()) == N_A        # A's rows are counted as held, not as waiting
    assert "control_share" in reason and "35.8%" in reason
    # the audit re-run after a fix replaces the hold
    mk.execute(f"update mkt_target set is_control = 0 where msisdn in ({', '.join(repr(m) for m in extra)})")
    assert mk.audit(tmp_path).success and validation.held_campaigns(mk.engine, D) == {}


def test_small_campaign_is_not_checked_for_control_share(mk, tmp_path):
    # B has 40 chosen customers, under min_customers (200): half of them held out is chance, not a defect
    mk.execute(f"update mkt_target set is_control = 1 where msisdn in "
               f"({', '.join(repr(m) for m in mk.targets[N_A:N_A + 20])})")
    report = mk.audit(tmp_path)
    assert report.success
    assert f"control_share:{B}" not in {c.check for c in report.checks}


# ---------------------------------------------------------------- the gate and the configuration

def test_require_valid_raises_with_the_readable_summary(mk, tmp_path):
    mk.insert(schema.stg_exclusion, cycle_date=D, msisdn=mk.targets[20], reason="dnd")
    mk.execute("update mkt_target set county_code = '350599' where msisdn = :m", m=mk.targets[21])
    report = mk.audit(tmp_path)
    with pytest.raises(validation.TargetListInvalid) as caught:
        validation.require_valid(report)
    message = str(caught.value)
    assert caught.value.report is report
    assert "failed 3 of 8 checks" in message and "nothing is published for any county" in message
    assert "no_excluded_customer: 1 customer the contact policy excludes in the list (dnd 1)" in message
    assert "known_county" in message and "county_matches_snapshot" in message
    assert "所有区县均不发布" in message
    assert mk.targets[20] not in message and mk.targets[21] not in message
    with mk.engine.connect() as conn:
        detail = conn.execute(sa.text("select detail from mkt_cycle_stage where stage = 'validate'")).scalar()
    assert detail.startswith("failed: ") and "no_excluded_customer" in detail


def test_config_file_loads_and_a_mistake_names_file_line_and_field(tmp_path):
    cfg = validation.load_config()
    assert (cfg.volume.lower, cfg.volume.upper, cfg.volume.history_cycles, cfg.volume.min_history) == (0.5, 2.0, 7, 3)
    assert (cfg.control_share.min_customers, cfg.control_share.abs_tolerance, cfg.control_share.sigmas) == (200, 0.01, 4)
    bad = tmp_path / "validation.yaml"
    bad.write_text("volume:\n  lower: 0.5\n  upper: 0.8\ncontrol_share:\n  min_customers: 200\n", encoding="utf-8")
    with pytest.raises(config.ConfigError) as caught:
        validation.load_config(bad)
    assert f"{bad}:3: volume.upper" in str(caught.value)
