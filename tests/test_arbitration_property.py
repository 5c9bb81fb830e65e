"""On random data marts and random campaign libraries, no assignment ever breaks the contact
policy, every customer has at most one offer, and the offer is the one a plain reading of
contact-policy.md picks (best priority, ties to the lower code, among what the policy allows;
a fallback campaign only when nothing else is allowed)."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qz_outbound import db, schema, segmentation, targeting
from qz_outbound.datamart import schema as dm_schema
from qz_outbound.metadata import full_metadata
from qz_outbound.learning.values import load_learning_config

from test_contact_policy import D, Mart, campaign

POLICY = targeting.load_policy()
PRODUCTS = ["P1", "P2", "P3"]
ALL_TYPES = ["1", "21", "22", "23", "3", "41", "42", "43", "5"]


@st.composite
def libraries(draw):
    n = draw(st.integers(1, 4))
    codes = draw(st.lists(st.integers(1, 99), min_size=n, max_size=n, unique=True))
    lib = []
    for code in codes:
        types = draw(st.lists(st.sampled_from(ALL_TYPES), min_size=1, max_size=9, unique=True))
        lib.append(campaign(f"1141-{code:03d}", draw(st.sampled_from(PRODUCTS)), priority=draw(st.integers(1, 3)),
                            types=types))
    if draw(st.booleans()):   # the care campaign that takes the uncovered (docs/campaigns.md)
        lib.append(campaign(f"3141-{draw(st.integers(1, 99)):03d}", draw(st.sampled_from(PRODUCTS)),
                            priority=draw(st.integers(1, 3)), fallback=True,
                            types=draw(st.lists(st.sampled_from(ALL_TYPES), min_size=1, max_size=9, unique=True))))
    return lib


@st.composite
def customers(draw):
    return {
        "status": draw(st.sampled_from(["active", "active", "suspended", "cancelled"])),
        "spend": draw(st.sampled_from(["120", "60", "0"])), "base": draw(st.sampled_from(["120", "200", "80"])),
        "products": draw(st.lists(st.sampled_from(PRODUCTS), max_size=2, unique=True)),
        "dnd": draw(st.booleans()), "opt_out": draw(st.integers(0, 5)) == 0,
        "complaint": draw(st.sampled_from([None, (10, "marketing_sms"), (200, "marketing_call"), (3, "other")])),
        "history": draw(st.lists(st.tuples(st.integers(1, 120), st.integers(1, 99),
                                           st.sampled_from(["sms", "call", "control"]),
                                           st.sampled_from([None, None, "refused", "accepted"]),
                                           st.sampled_from(["1141", "3141"])),
                                 max_size=5, unique_by=lambda h: h[0])),  # one daily contact a day
    }


def expected_offer(c, lib, explored: bool = False):
    """contact-policy.md read plainly, for one customer: the offer fixed priorities give, or (a
    customer of the exploration arm, docs/learning.md) the set of offers the draw may give: any
    campaign the policy allows, a fallback only when nothing else is allowed."""
    allowed = allowed_offers(c, lib)
    if explored:
        regular = [k.code for k in allowed if not k.fallback]
        return set(regular or [k.code for k in allowed])
    return min(allowed, key=lambda k: (k.fallback, k.priority, k.code)).code if allowed else None


def allowed_offers(c, lib):
    if c["status"] == "cancelled" or c["dnd"] or c["opt_out"]:
        return []
    if c["complaint"] and c["complaint"][1] != "other" and c["complaint"][0] <= POLICY.complaint_days:
        return []
    real = c["history"]   # sms, call and control alike: a held-out customer counts as contacted
    if sum(1 for h in real if h[0] < POLICY.window_days) >= POLICY.contacts_per_window:
        return []
    if sum(1 for h in real if (D - dt.timedelta(days=h[0])).month == D.month
           and (D - dt.timedelta(days=h[0])).year == D.year) >= POLICY.contacts_per_month:
        return []
    typ = c["type"]
    allowed = []
    for k in lib:
        if typ not in k.target.stability_types or k.product_code in c["products"]:
            continue
        if any(f"{h[4]}-{h[1]:03d}" == k.code and h[0] <= POLICY.same_campaign_gap_days for h in c["history"]):
            continue
        if any(f"{h[4]}-{h[1]:03d}" == k.code and h[3] == "refused" and h[0] <= POLICY.refusal_block_days
               for h in c["history"]):
            continue
        allowed.append(k)
    return allowed


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def engines(request, tmp_path_factory, pg_database_factory):
    if request.param == "sqlite":
        base = tmp_path_factory.mktemp("arb")
        dm = db.make_engine(f"sqlite:///{base / 'dm.db'}")
        mk = db.make_engine(f"sqlite:///{base / 'mk.db'}")
    else:
        dm = db.make_engine(pg_database_factory("qz_arb_dm"))
        mk = db.make_engine(pg_database_factory("qz_arb_mk"))
    schema.ensure_schema(mk)
    yield dm, mk
    dm.dispose()
    mk.dispose()


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(lib=libraries(), people=st.lists(customers(), min_size=1, max_size=8))
def test_no_assignment_breaks_the_policy_and_one_offer_each(engines, lib, people):
    dm, mk = engines
    dm_schema.create_tables(dm, drop=True)
    with mk.begin() as conn:   # empty marketing_db, still at the head revision (tasks create no tables)
        for table in reversed(full_metadata().sorted_tables):
            conn.execute(table.delete())
    mart = Mart(dm, mk)
    for c in people:
        c["msisdn"] = mart.customer(status=c["status"], spend=c["spend"], base_spend=c["base"],
                                    products=c["products"], dnd=c["dnd"], complaint=c["complaint"])
        if c["opt_out"]:
            mart.opt_out(c["msisdn"])
        for days, code, channel, response, prefix in c["history"]:
            mart.past_contact(c["msisdn"], days, campaign_code=f"{prefix}-{code:03d}", channel=channel,
                              response=response)
    mart.run(lib, learning=load_learning_config())   # as shipped: the exploration share included
    with mk.connect() as conn:
        types = dict(conn.execute(sa.text("select msisdn, stability_type from mkt_segment_snapshot")).all())
        explored = set(conn.execute(sa.text("select msisdn from mkt_target where arm = 'explore'")).scalars())
        per_customer = conn.execute(sa.text(
            "select count(*) - count(distinct msisdn) from mkt_contact where cycle_date = :d "
            "and channel in ('sms', 'call', 'control')"), {"d": D.isoformat() if mk.dialect.name == "sqlite" else D}).scalar()
    assert per_customer == 0
    offers = mart.offers()
    for c in people:
        c["type"] = types.get(c["msisdn"])
        if c["msisdn"] in explored:   # config/learning.yaml's exploration share: any allowed offer
            assert offers.get(c["msisdn"]) in expected_offer(c, lib, explored=True), c
            continue
        want = expected_offer(c, lib) if c["type"] is not None else None
        assert offers.get(c["msisdn"]) == want, c
