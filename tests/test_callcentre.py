"""Call-centre operations (economics.md "Call-centre operations"), on SQLite and PostgreSQL:
redials first and within capacity, at most max_redials, callbacks on the noted day, wrong numbers
suppressed for 180 days, nobody followed up who since opted out / entered DND / converted / refused,
the dialled / connected / accepted counts and connect rate, the funnel, and the frequency caps.

Every test builds a small data mart by hand (tests/test_contact_policy.py's ``Mart``) and runs the
real stages day after day: segment → stage extracts → target list → publish per county → call list.
"""

from __future__ import annotations

import datetime as dt
import io

import pandas as pd
import pytest
import sqlalchemy as sa

from qz_outbound import call_lists, callcentre, clock, config, db, outcomes, publish, schema, targeting
from qz_outbound.datamart import schema as dm_schema
from qz_outbound.outcomes import statistics as outcome_statistics
from qz_outbound.portal import uploads
from qz_outbound.portal.schema import mkt_call_outcome
from test_contact_policy import CHANNELS, Mart, campaign

D = dt.date(2026, 11, 23)          # a Monday
COUNTY = "350582"
CALL_ONLY = [campaign("2141-001", "HANDSET", channels=("call",), priority=5, types=("41",))]
CALL_OR_SMS = [campaign("2141-002", "HANDSET2", channels=("sms", "call"), priority=5, types=("41",))]


def channels_with(capacity: int, **redial) -> targeting.Channels:
    return CHANNELS.model_copy(update={
        "call_capacity": {**CHANNELS.call_capacity, COUNTY: capacity},
        "redial": CHANNELS.redial.model_copy(update=redial)})


@pytest.fixture(params=["sqlite", "postgresql"])
def mart(request, tmp_path, pg_database_factory, monkeypatch):
    monkeypatch.setenv("QZ_OUTPUT_DIR", str(tmp_path / "out"))
    if request.param == "sqlite":
        dm = db.make_engine(f"sqlite:///{tmp_path / 'dm.db'}")
        mk = db.make_engine(f"sqlite:///{tmp_path / 'mk.db'}")
    else:
        dm = db.make_engine(pg_database_factory("qz_cc_dm"))
        mk = db.make_engine(pg_database_factory("qz_cc_mk"))
    yield Mart(dm, mk)
    clock.set_now(None)
    dm.dispose()
    mk.dispose()


def caller(mart: Mart) -> str:
    """A customer the call rule phones: type 41 (spend down from 200 to 120), spend tier 9."""
    return mart.customer(spend="120", base_spend="200")


def run_day(mart: Mart, day: dt.date, library, channels) -> None:
    clock.set_now(dt.datetime.combine(day, dt.time(5, 30)))
    mart.run(library, channels=channels, day=day)


def call_list(mart: Mart, day: dt.date, library) -> pd.DataFrame:
    frame, failed = call_lists.build_call_list(mart.mk, day, COUNTY, library)
    assert failed == 0
    return frame


def contact_of(mart: Mart, msisdn: str, day: dt.date):
    with mart.mk.connect() as conn:
        return conn.execute(db.date_binds(
            "select contact_id, cycle_date, msisdn, county_code, campaign_code, channel, attempt, first_contact_id, "
            "call_kind from mkt_contact where msisdn = :m and cycle_date = :d", "d"), {"m": msisdn, "d": day}).one()


def report(mart: Mart, msisdn: str, day: dt.date, outcome: str, hour: int = 10, callback_on=None,
           agent=None, contact_day: dt.date | None = None) -> None:
    """An outcome as an accepted upload row records it (mkt_call_outcome)."""
    c = contact_of(mart, msisdn, contact_day or day)
    with mart.mk.begin() as conn:
        conn.execute(mkt_call_outcome.insert(), [{
            "contact_id": c.contact_id, "outcome": outcome,
            "called_at": dt.datetime.combine(day, dt.time(hour), tzinfo=clock.SHANGHAI), "called_at_given": True,
            "cycle_date": contact_day or day, "county_code": c.county_code, "msisdn": c.msisdn,
            "campaign_code": c.campaign_code, "upload_id": "U-test", "agent_id": agent, "callback_on": callback_on,
            "loaded_at": dt.datetime.combine(day, dt.time(20), tzinfo=clock.SHANGHAI)}])
    outcomes.apply_call_outcomes(mart.mk)


def listed(frame: pd.DataFrame) -> list[tuple[str, str, int]]:
    return [(r["手机号码"], r["类型"], int(r["外呼次数"])) for _, r in frame.iterrows()]


# ---------------------------------------------------------------- redials


def test_second_days_list_holds_redials_first_and_within_capacity(mart):
    people = [caller(mart) for _ in range(6)]
    chans = channels_with(3)
    run_day(mart, D, CALL_ONLY, chans)
    first = call_list(mart, D, CALL_ONLY)
    assert len(first) == 3 and set(first["类型"]) == {"新客户"} and set(first["外呼次数"]) == {1}
    a, b, c = first["手机号码"].tolist()
    report(mart, a, D, "no_answer", hour=10)
    report(mart, b, D, "busy", hour=11)
    report(mart, c, D, "accepted", hour=12)

    run_day(mart, D + dt.timedelta(days=1), CALL_ONLY, chans)
    second = call_list(mart, D + dt.timedelta(days=1), CALL_ONLY)
    rows = listed(second)
    assert len(rows) == 3                                          # the county's capacity
    assert rows[:2] == [(a, "重拨", 2), (b, "重拨", 2)]              # redials ahead of new customers
    assert rows[2][1:] == ("新客户", 1) and rows[2][0] in set(people) - {a, b, c}
    counts = publish.contact_counts(mart.mk, D + dt.timedelta(days=1), COUNTY)
    assert (counts["redial"], counts["call"], counts["waiting"]) == (2, 1, 2)   # 3 new targets, 1 fitted
    redial = contact_of(mart, a, D + dt.timedelta(days=1))
    assert redial.first_contact_id == contact_of(mart, a, D).contact_id and redial.call_kind == "redial"
    # a re-run of the day's publishing changes nothing
    run_day(mart, D + dt.timedelta(days=1), CALL_ONLY, chans)
    assert listed(call_list(mart, D + dt.timedelta(days=1), CALL_ONLY)) == rows


def test_redials_alone_never_exceed_the_capacity_and_the_rest_wait(mart):
    for _ in range(3):
        caller(mart)
    chans = channels_with(3)
    run_day(mart, D, CALL_ONLY, chans)
    people = call_list(mart, D, CALL_ONLY)["手机号码"].tolist()
    for hour, m in enumerate(people, start=9):
        report(mart, m, D, "no_answer", hour=hour)
    run_day(mart, D + dt.timedelta(days=1), CALL_ONLY, channels_with(2))
    assert listed(call_list(mart, D + dt.timedelta(days=1), CALL_ONLY)) == [(m, "重拨", 2) for m in people[:2]]
    # the third is still due on the next working day
    run_day(mart, D + dt.timedelta(days=2), CALL_ONLY, channels_with(2))
    assert listed(call_list(mart, D + dt.timedelta(days=2), CALL_ONLY)) == [(people[2], "重拨", 2)]


def test_redials_stop_after_the_configured_maximum(mart):
    m = caller(mart)
    chans = channels_with(5)
    run_day(mart, D, CALL_ONLY, chans)
    report(mart, m, D, "no_answer")
    attempts = []
    for n in (1, 2, 3, 4):
        day = D + dt.timedelta(days=n)
        run_day(mart, day, CALL_ONLY, chans)
        rows = listed(call_list(mart, day, CALL_ONLY))
        attempts.append(rows)
        if rows:
            report(mart, m, day, "no_answer")
    assert attempts == [[(m, "重拨", 2)], [(m, "重拨", 3)], [], []]      # max_redials: 2



def test_a_configured_maximum_of_one_redial_is_kept(mart):
    m = caller(mart)
    one = channels_with(5, max_redials=1)
    run_day(mart, D, CALL_ONLY, one)
    report(mart, m, D, "busy")
    run_day(mart, D + dt.timedelta(days=1), CALL_ONLY, one)
    assert listed(call_list(mart, D + dt.timedelta(days=1), CALL_ONLY)) == [(m, "重拨", 2)]
    report(mart, m, D + dt.timedelta(days=1), "busy")
    run_day(mart, D + dt.timedelta(days=2), CALL_ONLY, one)
    assert listed(call_list(mart, D + dt.timedelta(days=2), CALL_ONLY)) == []


def test_followups_wait_for_a_working_day(mart):
    m = caller(mart)
    chans = channels_with(5, holidays=[D + dt.timedelta(days=1)])
    run_day(mart, D, CALL_ONLY, chans)
    report(mart, m, D, "no_answer")
    run_day(mart, D + dt.timedelta(days=1), CALL_ONLY, chans)            # a holiday: no redial
    assert listed(call_list(mart, D + dt.timedelta(days=1), CALL_ONLY)) == []
    run_day(mart, D + dt.timedelta(days=2), CALL_ONLY, chans)
    assert listed(call_list(mart, D + dt.timedelta(days=2), CALL_ONLY)) == [(m, "重拨", 2)]


def test_followups_never_recontact_who_opted_out_entered_dnd_converted_or_refused(mart):
    people = [caller(mart) for _ in range(6)]
    chans = channels_with(10)
    run_day(mart, D, CALL_ONLY, chans)
    for m in people:
        report(mart, m, D, "no_answer")
    opted, dnd, converted, refused, holds, still = people
    mart.opt_out(opted)
    with mart.dm.begin() as conn:
        conn.execute(dm_schema.dnd_list.insert(), [{"msisdn": dnd, "added_at": dt.datetime(2026, 11, 23, 15),
                                                    "source": "customer_request"}])
        conn.execute(dm_schema.product_subscription.insert(), [{
            "msisdn": holds, "product_code": "HANDSET", "start_date": D, "end_date": None}])
    with mart.mk.begin() as conn:
        conn.execute(schema.mkt_contact.update().where(schema.mkt_contact.c.msisdn == converted)
                     .values(converted_at=dt.datetime(2026, 11, 23, 16, tzinfo=clock.SHANGHAI)))
        # a refusal reported on another of the customer's calls after this one was listed
        conn.execute(mkt_call_outcome.insert(), [{
            "contact_id": "C-other", "outcome": "refused",
            "called_at": dt.datetime(2026, 11, 23, 17, tzinfo=clock.SHANGHAI), "called_at_given": True,
            "cycle_date": D, "county_code": COUNTY, "msisdn": refused, "campaign_code": "2141-009",
            "upload_id": "U-test", "loaded_at": dt.datetime(2026, 11, 23, 17, tzinfo=clock.SHANGHAI)}])
    run_day(mart, D + dt.timedelta(days=1), CALL_ONLY, chans)
    assert listed(call_list(mart, D + dt.timedelta(days=1), CALL_ONLY)) == [(still, "重拨", 2)]


# ---------------------------------------------------------------- callbacks and wrong numbers


def test_callback_appears_on_the_noted_day_or_the_next_working_day(mart):
    noted, undated, saturday = caller(mart), caller(mart), caller(mart)
    chans = channels_with(10)
    run_day(mart, D, CALL_ONLY, chans)
    report(mart, noted, D, "callback", callback_on=D + dt.timedelta(days=3))          # Thursday
    report(mart, undated, D, "callback")
    report(mart, saturday, D, "callback", callback_on=D + dt.timedelta(days=5))       # a Saturday
    seen = {}
    for n in (1, 2, 3, 5, 7):
        day = D + dt.timedelta(days=n)
        run_day(mart, day, CALL_ONLY, chans)
        seen[n] = listed(call_list(mart, day, CALL_ONLY))
    assert seen[1] == [(undated, "回拨", 2)]
    assert seen[2] == []
    assert seen[3] == [(noted, "回拨", 2)]
    assert seen[5] == []                                  # Saturday: not a working day
    assert seen[7] == [(saturday, "回拨", 2)]              # the next working day on or after it


def test_callbacks_go_ahead_of_redials_and_new_customers(mart):
    people = [caller(mart) for _ in range(4)]
    run_day(mart, D, CALL_ONLY, channels_with(3))
    a, b, c = call_list(mart, D, CALL_ONLY)["手机号码"].tolist()
    report(mart, a, D, "no_answer", hour=9)
    report(mart, b, D, "callback", hour=10)
    run_day(mart, D + dt.timedelta(days=1), CALL_ONLY, channels_with(3))
    rows = listed(call_list(mart, D + dt.timedelta(days=1), CALL_ONLY))
    assert rows[:2] == [(b, "回拨", 2), (a, "重拨", 2)]
    assert rows[2][1] == "新客户" and rows[2][0] == (set(people) - {a, b, c}).pop()


def test_a_wrong_number_is_not_called_within_180_days_and_is_again_after(mart):
    within, after, fresh = caller(mart), caller(mart), caller(mart)
    with mart.mk.begin() as conn:
        for m, days in ((within, 179), (after, 181)):
            at = dt.datetime.combine(D - dt.timedelta(days=days), dt.time(10), tzinfo=clock.SHANGHAI)
            conn.execute(mkt_call_outcome.insert(), [{
                "contact_id": f"C-old-{m}", "outcome": "wrong_number", "called_at": at, "called_at_given": True,
                "cycle_date": at.date(), "county_code": COUNTY, "msisdn": m, "campaign_code": "2141-009",
                "upload_id": "U-old", "loaded_at": at}])
    run_day(mart, D, CALL_OR_SMS, channels_with(10))
    got = mart.contacts()
    assert got[within][1] == "sms"                      # SMS stay allowed
    assert got[after][1] == "call" and got[fresh][1] == "call"
    # a call-only campaign: the number waits rather than being phoned
    with mart.mk.begin() as conn:
        conn.exec_driver_sql("delete from mkt_contact")
    run_day(mart, D, CALL_ONLY, channels_with(10))
    assert within not in mart.contacts() and mart.contacts()[after][1] == "call"


def test_a_wrong_number_reported_today_is_never_redialled(mart):
    m, n = caller(mart), caller(mart)
    chans = channels_with(10)
    run_day(mart, D, CALL_ONLY, chans)
    report(mart, m, D, "no_answer", hour=9)
    report(mart, m, D, "wrong_number", hour=11)   # the same call, tried again: not the customer's number
    report(mart, n, D, "no_answer")
    run_day(mart, D + dt.timedelta(days=1), CALL_ONLY, chans)
    assert listed(call_list(mart, D + dt.timedelta(days=1), CALL_ONLY)) == [(n, "重拨", 2)]


# ---------------------------------------------------------------- counts


def _upload(mart: Mart, rows: list[dict]) -> uploads.UploadResult:
    frame = pd.DataFrame(rows)
    buf = io.BytesIO()
    frame.to_csv(buf, index=False, encoding="utf-8-sig")
    return uploads.process_upload(mart.mk, COUNTY, "county_350582", "结果.csv", buf.getvalue())


def test_dialled_connected_accepted_and_connect_rate_on_a_constructed_upload(mart, tmp_path):
    for _ in range(6):
        caller(mart)
    run_day(mart, D, CALL_ONLY, channels_with(6))
    ids = call_list(mart, D, CALL_ONLY)["联系编号（回填用）"].tolist()
    clock.set_now(dt.datetime.combine(D, dt.time(20)))
    at = lambda h: f"{D.isoformat()} {h:02d}:00"   # noqa: E731
    good = [
        {"联系编号（回填用）": ids[0], "外呼结果": "接受", "外呼时间": at(9), "坐席工号": "A01", "回拨日期": ""},
        {"联系编号（回填用）": ids[1], "外呼结果": "无人接听", "外呼时间": at(9), "坐席工号": "A01", "回拨日期": ""},
        {"联系编号（回填用）": ids[2], "外呼结果": "busy", "外呼时间": at(10), "坐席工号": "A02", "回拨日期": ""},
        {"联系编号（回填用）": ids[3], "外呼结果": "号码错误", "外呼时间": at(10), "坐席工号": "A02", "回拨日期": ""},
        {"联系编号（回填用）": ids[4], "外呼结果": "预约回拨", "外呼时间": at(11), "坐席工号": "A02",
         "回拨日期": (D + dt.timedelta(days=2)).isoformat()},
        {"联系编号（回填用）": ids[4], "外呼结果": "accepted", "外呼时间": at(16), "坐席工号": "A02", "回拨日期": ""},
        {"联系编号（回填用）": ids[5], "外呼结果": "refused_do_not_call", "外呼时间": at(12), "坐席工号": "A01",
         "回拨日期": ""},
    ]
    bad = [
        {"联系编号（回填用）": ids[1], "外呼结果": "busy", "外呼时间": at(13), "坐席工号": "A01",
         "回拨日期": (D + dt.timedelta(days=1)).isoformat()},                      # a date for no callback
        {"联系编号（回填用）": ids[2], "外呼结果": "callback", "外呼时间": at(14), "坐席工号": "A02",
         "回拨日期": "下周二"},
        {"联系编号（回填用）": ids[2], "外呼结果": "callback", "外呼时间": at(15), "坐席工号": "A02",
         "回拨日期": (D - dt.timedelta(days=1)).isoformat()},
        {"联系编号（回填用）": ids[3], "外呼结果": "busy", "外呼时间": at(15), "坐席工号": "坐席 1号", "回拨日期": ""},
    ]
    result = _upload(mart, good + bad)
    assert result.rows_accepted == 7 and result.rows_rejected == 4
    reasons = [r["reason"] for r in result.rejects]
    assert "回拨日期只用于" in reasons[0] and "回拨日期格式错误" in reasons[1]
    assert "回拨日期早于外呼日期" in reasons[2] and "坐席工号格式错误" in reasons[3]
    with mart.mk.connect() as conn:
        stored = conn.execute(sa.select(mkt_call_outcome.c.agent_id, mkt_call_outcome.c.callback_on)
                              .where(mkt_call_outcome.c.contact_id == ids[4],
                                     mkt_call_outcome.c.outcome == "callback")).one()
    assert stored.agent_id == "A02" and stored.callback_on == D + dt.timedelta(days=2)

    county = callcentre.call_ops(mart.mk, D, D, "county")
    assert county.to_dict("records") == [{"county_code": COUNTY, "dialled": 6, "connected": 3, "accepted": 2,
                                          "connect_rate": 0.5}]
    campaign_rows = callcentre.call_ops(mart.mk, D, D, "campaign", COUNTY)
    assert campaign_rows[["campaign_code", "dialled", "connected", "accepted"]].values.tolist() == [
        ["2141-001", 6, 3, 2]]
    agents = callcentre.call_ops(mart.mk, D, D, "agent_day", COUNTY)
    assert agents[["call_day", "agent_id", "dialled", "connected", "accepted"]].values.tolist() == [
        [D.isoformat(), "A01", 3, 2, 1], [D.isoformat(), "A02", 3, 1, 1]]
    assert agents["connect_rate"].round(4).tolist() == [0.6667, 0.3333]
    assert callcentre.call_ops(mart.mk, D + dt.timedelta(days=1), D + dt.timedelta(days=1)).empty
    day = callcentre.day_counts(mart.mk, D, COUNTY)
    assert (day["listed"], day["dialled"], day["connected"], day["accepted"]) == (6, 6, 3, 2)
    assert day["connect_rate"] == 0.5 and day["redials"] == 0

    # the funnel: no_answer, busy and wrong_number are dialled, not delivered
    outcomes.apply_call_outcomes(mart.mk)
    cells = outcome_statistics._cells(mart.mk, D, D, CALL_ONLY)
    call = cells[cells["channel"] == "call"][["contacts", "delivered", "accepted"]].sum()
    assert (call["contacts"], call["delivered"], call["accepted"]) == (6, 3, 2)

    # the next working day: the no_answer and the busy come back, the callback on its day
    run_day(mart, D + dt.timedelta(days=1), CALL_ONLY, channels_with(6))
    by_number = {r[0]: r[1:] for r in listed(call_list(mart, D + dt.timedelta(days=1), CALL_ONLY))}
    redialled = {contact_of(mart, m, D).contact_id for m, kind in by_number.items() if kind == ("重拨", 2)}
    assert redialled == {ids[1], ids[2]}
    # the funnel still counts each offer once: a redial is not a new contact
    cells = outcome_statistics._cells(mart.mk, D, D + dt.timedelta(days=1), CALL_ONLY)
    assert cells[cells["channel"] == "call"]["contacts"].sum() == 6


def test_contact_caps_do_not_count_a_redial_as_a_new_contact(mart):
    redialled, called_twice = caller(mart), caller(mart)
    mart.past_contact(redialled, days_ago=8, campaign_code="2141-009", channel="call", response="no_answer")
    mart.past_contact(called_twice, days_ago=8, campaign_code="2141-009", channel="call", response="no_answer")
    root = f"P{D - dt.timedelta(days=8):%Y%m%d}-{redialled}-2141-009"
    six_days_ago = D - dt.timedelta(days=6)
    with mart.mk.begin() as conn:
        # the redial of that call 6 days ago (within the 7-day window): the same offer, not a new contact
        conn.execute(schema.mkt_contact.insert(), [{
            "contact_id": f"R-{redialled}", "cycle_date": six_days_ago, "msisdn": redialled, "county_code": COUNTY,
            "campaign_code": "2141-009", "product_code": "X", "channel": "call", "segment_code": "41-P09",
            "status": "called", "created_at": dt.datetime.combine(six_days_ago, dt.time(5)), "response": "busy",
            "attempt": 2, "first_contact_id": root, "call_kind": "redial"}])
    # the other customer had a second, new offer 6 days ago: that one counts
    mart.past_contact(called_twice, days_ago=6, campaign_code="2141-008", channel="call")
    run_day(mart, D, CALL_OR_SMS, channels_with(10))
    offers = mart.offers()
    assert redialled in offers and called_twice not in offers


# ---------------------------------------------------------------- configuration


def test_working_days_and_a_bad_redial_section_are_reported_with_file_line_and_field(tmp_path):
    cfg = callcentre.Redial(holidays=[dt.date(2026, 10, 1)], extra_working_days=[dt.date(2026, 10, 10)])
    assert cfg.is_working_day(dt.date(2026, 11, 23)) and not cfg.is_working_day(dt.date(2026, 11, 28))
    assert not cfg.is_working_day(dt.date(2026, 10, 1)) and cfg.is_working_day(dt.date(2026, 10, 10))
    assert cfg.next_working_day(dt.date(2026, 9, 30)) == dt.date(2026, 10, 2)
    assert targeting.load_channels().redial.max_redials == 2          # the shipped file

    text = config.config_path("channels.yaml").read_text(encoding="utf-8")
    bad = tmp_path / "channels.yaml"
    bad.write_text(text.replace("max_redials: 2", "max_redials: 9"), encoding="utf-8")
    with pytest.raises(config.ConfigError) as exc:
        targeting.load_channels(bad)
    line = next(i for i, t in enumerate(bad.read_text().splitlines(), start=1) if "max_redials: 9" in t)
    assert f"channels.yaml:{line}: redial.max_redials:" in str(exc.value)
    bad.write_text(text.replace("working_weekdays: [1, 2, 3, 4, 5]", "working_weekdays: [1, 2, 8]"),
                   encoding="utf-8")
    with pytest.raises(config.ConfigError) as exc:
        targeting.load_channels(bad)
    assert "redial: " in str(exc.value) and "[8] are not ISO weekdays" in str(exc.value)
