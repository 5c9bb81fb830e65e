"""Customer tags (config/tags.yaml, include/sql/customer_tags.sql, mkt_customer_tag): each shipped
tag is derived from a planted history and not from an insufficient one, ages out, a re-run gives the
same rows, campaigns target by them (target.tags_any / tags_none) under the contact policy, and
config mistakes are named by file, line and field. SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import textwrap

import pytest
import sqlalchemy as sa

from qz_outbound import campaigns, config, db, preflight, schema, tags
from test_contact_policy import CHANNELS, D, Mart, campaign, mart  # noqa: F401  (mart: the fixture)

CFG = tags.load_tags()   # the shipped rules


class History:
    """Contacts planted straight into mkt_contact: cycle ``days_ago`` before D."""

    def __init__(self, mk):
        self.mk, self.n, self.customers = mk, 0, 0

    def customer(self) -> str:
        self.customers += 1
        return f"138{self.customers:08d}"

    def contact(self, msisdn, days_ago, code="1331-001", channel="sms", *, response=None, converted=False,
                delivered=True, order_agent=None, agent_id=None):
        self.n += 1
        cycle = D - dt.timedelta(days=days_ago)
        at = dt.datetime.combine(cycle, dt.time(9))
        order_id = f"O{self.n:06d}" if converted else None
        with self.mk.begin() as conn:
            conn.execute(schema.mkt_contact.insert(), [{
                "contact_id": f"H{self.n:06d}", "cycle_date": cycle, "msisdn": msisdn, "county_code": "350582",
                "campaign_code": code, "product_code": f"P{code}", "variant": None, "channel": channel,
                "segment_code": "1-P09V05D05T07", "status": "delivered" if delivered else "called",
                "created_at": at, "sent_at": at if channel != "call" else None,
                "delivered_at": at if delivered and channel != "call" else None,
                "response": response, "responded_at": at + dt.timedelta(hours=2) if response else None,
                "converted_at": at + dt.timedelta(days=1) if converted else None, "order_id": order_id,
                "agent_id": agent_id}])
            if converted:
                conn.execute(schema.stg_order.insert(), [{
                    "order_id": order_id, "msisdn": msisdn, "product_code": f"P{code}",
                    "order_time": at + dt.timedelta(days=1), "channel": "shop" if order_agent else "app",
                    "agent_id": order_agent, "loaded_at": at + dt.timedelta(days=1), "contact_id": f"H{self.n:06d}"}])


def tagged(mk) -> dict[str, set[str]]:
    with mk.connect() as conn:
        rows = conn.execute(sa.text("select tag, msisdn from mkt_customer_tag")).all()
    out: dict[str, set[str]] = {}
    for tag, msisdn in rows:
        out.setdefault(tag, set()).add(msisdn)
    return out


def table(mk) -> list[tuple]:
    with mk.connect() as conn:
        return [tuple(str(v) for v in r) for r in conn.execute(sa.text(
            "select msisdn, tag, first_tagged, last_evidence, evidence_count, updated_cycle "
            "from mkt_customer_tag order by msisdn, tag"))]


def test_the_shipped_tags_are_the_documented_six():
    assert [t.code for t in CFG.tags] == ["responds_data", "refuses_calls", "agent_converter", "sms_unresponsive",
                                         "prefers_calls", "price_sensitive"]
    assert "tags.yaml" in dict(preflight.config_file_loaders())


def test_each_tag_comes_from_its_evidence_and_not_from_too_little(mart):
    h = History(mart.mk)
    c = h.customer
    # responds_data: took up an offer whose reward digit is data (xxx4); not a voice reward, not silence
    data_yes, data_voice, data_silent = c(), c(), c()
    h.contact(data_yes, 30, "1114-001", response="accept")
    h.contact(data_voice, 30, "1313-001", response="accept")
    h.contact(data_silent, 30, "1334-001")
    # refuses_calls: one refusal, or three unanswered calls; two unanswered, or a refusal 100 days ago, is not
    refused, thrice, twice, long_ago = c(), c(), c(), c()
    h.contact(refused, 20, "1331-002", "call", response="refused_do_not_call", delivered=False)
    for days in (10, 20, 40):
        h.contact(thrice, days, f"1331-0{days}", "call", response="no_answer" if days != 20 else "busy",
                  delivered=False)
    for days in (10, 20):
        h.contact(twice, days, f"1331-0{days}", "call", response="no_answer", delivered=False)
    h.contact(long_ago, 100, "1331-002", "call", response="refused", delivered=False)
    # agent_converter: converted in the agent lane, or an order placed at an outlet; not an app order
    agent_lane, agent_order, app_order = c(), c(), c()
    h.contact(agent_lane, 50, "1331-003", "agent", converted=True, agent_id="A001")
    h.contact(agent_order, 50, "1331-003", "sms", converted=True, order_agent="A002")
    h.contact(app_order, 50, "1331-003", "sms", converted=True)
    # sms_unresponsive: three delivered SMS, no answer at all; not with one reply, not two, not a fresh third
    quiet, replied_once, two_only, fresh_third = c(), c(), c(), c()
    for days in (15, 30, 45):
        h.contact(quiet, days, f"1331-1{days}")
        h.contact(replied_once, days, f"1331-1{days}", response="unrecognised" if days == 45 else None)
        h.contact(fresh_third, days if days != 15 else 3, f"1331-1{days}")
    for days in (15, 30):
        h.contact(two_only, days, f"1331-1{days}")
    # prefers_calls: converted on a call; not when an SMS converted too
    caller, both = c(), c()
    h.contact(caller, 60, "1331-004", "call", response="accepted", converted=True, delivered=False)
    h.contact(both, 60, "1331-004", "call", response="accepted", converted=True, delivered=False)
    h.contact(both, 90, "1331-005", "sms", converted=True)
    # price_sensitive: two take-ups of discount (x2xx) or gift (x1xx) offers; one is not enough
    deals, one_deal = c(), c()
    h.contact(deals, 25, "1211-001", response="accept")
    h.contact(deals, 55, "1111-002", response="accept")
    h.contact(one_deal, 25, "1211-001", response="accept")

    counts = tags.refresh_customer_tags(mart.mk, D, CFG)
    got = tagged(mart.mk)
    assert got == {
        "responds_data": {data_yes},
        "refuses_calls": {refused, thrice},
        "agent_converter": {agent_lane, agent_order},
        "sms_unresponsive": {quiet},
        "prefers_calls": {caller},
        "price_sensitive": {deals},
    }
    assert counts["added"] == counts["rows"] == 8 and counts["removed"] == 0
    assert counts["per_tag"]["refuses_calls"] == 2
    with mart.mk.connect() as conn:   # the evidence: how many contacts, the latest one's cycle
        ev = conn.execute(sa.text("select evidence_count, last_evidence, first_tagged from mkt_customer_tag "
                                  "where msisdn = :m"), {"m": thrice}).one()
    assert ev[0] == 3 and str(ev[1]) == str(D - dt.timedelta(days=10)) and str(ev[2]) == str(D)


def test_a_tag_ages_out_and_a_rerun_changes_nothing(mart):
    h = History(mart.mk)
    old, recent = h.customer(), h.customer()
    h.contact(old, 170, "1114-001", response="accept")
    h.contact(recent, 20, "1114-001", response="accept")
    tags.refresh_customer_tags(mart.mk, D, CFG)
    first = table(mart.mk)
    assert {r[0] for r in first} == {old, recent}
    again = tags.refresh_customer_tags(mart.mk, D, CFG)   # a re-run of the cycle: the same rows
    assert table(mart.mk) == first and again["added"] == again["removed"] == 0 and again["kept"] == 2
    # five days on, the tag still holds: first_tagged stays, updated_cycle moves
    later = D + dt.timedelta(days=5)
    tags.refresh_customer_tags(mart.mk, later, CFG)
    rows = {r[0]: r for r in table(mart.mk)}
    assert rows[old][2] == str(D) and rows[old][5] == str(later)
    # fifteen days on, the old evidence is 185 days old: the tag is removed, the recent one kept
    out = tags.refresh_customer_tags(mart.mk, D + dt.timedelta(days=15), CFG)
    assert {r[0] for r in table(mart.mk)} == {recent} and out["removed"] == 1
    # a tag no longer in the config is removed too
    only = CFG.model_copy(update={"tags": [t for t in CFG.tags if t.code != "responds_data"]})
    tags.refresh_customer_tags(mart.mk, D + dt.timedelta(days=15), only)
    assert table(mart.mk) == []


def test_tags_any_and_tags_none_change_who_is_targeted_and_the_contact_policy_still_holds(mart):
    h = History(mart.mk)
    fan, refuser, plain, fan_opted_out, fan_recent = (mart.customer() for _ in range(5))
    for m in (fan, fan_opted_out):
        h.contact(m, 40, "1114-009", response="accept")
    h.contact(fan_recent, 3, "1114-009", response="accept")     # a contact 3 days ago: the 7-day rule
    h.contact(refuser, 40, "1331-009", "call", response="refused", delivered=False)
    mart.opt_out(fan_opted_out)
    tags.refresh_customer_tags(mart.mk, D, CFG)
    assert tagged(mart.mk)["responds_data"] == {fan, fan_opted_out, fan_recent}

    untargeted = [campaign("1114-001", "DATA1", priority=1), campaign("1331-002", "CARE1", priority=5)]
    mart.run(untargeted)
    assert mart.offers() == {fan: "1114-001", refuser: "1114-001", plain: "1114-001"}

    with mart.mk.begin() as conn:   # the same day again, with the tag conditions
        conn.execute(sa.text("delete from mkt_contact where contact_id not like :planted"), {"planted": "H%"})
    lib = [campaign("1114-001", "DATA1", priority=1, target={"stability_types": ["1", "21", "22", "23", "3", "41",
                                                                                 "42", "43", "5"],
                                                             "tags_any": ["responds_data", "price_sensitive"]}),
           campaign("1331-002", "CARE1", priority=5, target={"stability_types": ["1", "21", "22", "23", "3", "41",
                                                                                 "42", "43", "5"],
                                                             "tags_none": ["refuses_calls"]})]
    mart.run(lib)
    offers = mart.offers()
    assert offers == {fan: "1114-001", plain: "1331-002"}          # the refuser is left alone
    contacts = mart.contacts()
    assert set(contacts) == {fan, plain}
    assert fan_opted_out not in contacts and fan_recent not in contacts   # tags never lift a contact rule


def _write(path, text):
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_tag_config_mistakes_are_named_by_file_line_and_field(tmp_path):
    path = _write(tmp_path / "tags.yaml", """\
        tags:
          - code: Responds-Data
            name: 响应流量优惠
            rules:
              - outcome: converted
                lookback_days: 90
          - code: refuses_calls
            name: 拒接外呼
            rules:
              - outcome: hung_up
                lookback_days: 90
                campaign: {reward: [beer]}
        """)
    with pytest.raises(config.ConfigError) as err:
        tags.load_tags(path)
    text = str(err.value)
    assert f"{path}:2: tags.0.code: " in text and "lower-case ASCII" in text
    assert f"{path}:10: tags.1.rules.0.outcome: " in text
    assert f"{path}:12: tags.1.rules.0.campaign.reward.0: " in text


def test_a_campaign_naming_an_unknown_tag_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("QZ_CONFIG_DIR", str(tmp_path))
    (tmp_path / "tags.yaml").write_text((config.CONFIG_DIR / "tags.yaml").read_text(encoding="utf-8"),
                                        encoding="utf-8")
    lib = tmp_path / "campaigns"
    lib.mkdir()
    good = (config.CONFIG_DIR / "campaigns").glob("*.yaml")
    src = next(p for p in sorted(good) if "agent" not in p.read_text(encoding="utf-8"))
    data = src.read_text(encoding="utf-8")
    assert "\ntarget:\n" in data
    data = data.replace("\ntarget:\n", "\ntarget:\n  tags_any: [responds_data, loves_data]\n"
                                       "  tags_none: [refuses_calls]\n", 1)
    (lib / src.name).write_text(data, encoding="utf-8")
    line = data.splitlines().index("  tags_any: [responds_data, loves_data]") + 1
    with pytest.raises(config.ConfigError) as err:
        campaigns.load_library(lib)
    problems = err.value.problems
    assert problems == [(str(lib / src.name), line, "target.tags_any.1",
                         "unknown tag 'loves_data'; known (config/tags.yaml): agent_converter, prefers_calls, "
                         "price_sensitive, refuses_calls, responds_data, sms_unresponsive")]
    # known codes pass
    (lib / src.name).write_text(data.replace(", loves_data", ""), encoding="utf-8")
    assert campaigns.load_library(lib)[0].target.tags_any == ["responds_data"]


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_the_tag_query_renders_set_based_for_both_dialects(dialect):
    sql = tags.render(dialect, CFG)
    assert sql.count("from mkt_contact as c") == sum(len(t.rules) for t in CFG.tags)
    assert "group by msisdn, tag" in sql and "unknown_outcome" not in sql


def test_refreshes_racing_each_other_leave_the_same_rows(mart):
    """A re-run started while the scheduled one is still writing: neither fails, the rows are one set."""
    import threading

    h = History(mart.mk)
    people = [h.customer() for _ in range(30)]
    for k, m in enumerate(people):
        h.contact(m, 10 + k, "1114-001", response="accept")
    tags.refresh_customer_tags(mart.mk, D, CFG)
    expected = table(mart.mk)
    errors = []

    def again():
        try:
            tags.refresh_customer_tags(mart.mk, D, CFG)
        except Exception as exc:  # pragma: no cover - the assertion below reports it
            errors.append(exc)

    threads = [threading.Thread(target=again) for _ in range(3)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert not errors and table(mart.mk) == expected and len(expected) == 30
