"""The daily cycle's send step (qz_outbound.sms.send_step): what happens before 08:00, at 20:00 and after."""

from __future__ import annotations

import datetime as dt

from qz_outbound import clock
from qz_outbound.sms import send_step
from sms_support import CYCLE, COUNTY, account, make_contacts, settings, states


def test_no_sms_outside_sending_hours_before_the_window_the_step_waits_for_the_opening(sqlite_engine, smsc):
    make_contacts(sqlite_engine, 5)
    clock.set_now(dt.datetime(2026, 11, 23, 5, 0))            # the cycle is published at 05:00
    step = send_step.send_county(sqlite_engine, CYCLE, COUNTY, settings(account(smsc)))
    assert not step.done
    assert step.wait_until == dt.datetime(2026, 11, 23, 8, 0, tzinfo=clock.SHANGHAI)
    assert smsc.submits == [] and states(sqlite_engine) == {"queued": 5}

    clock.set_now(dt.datetime(2026, 11, 23, 8, 0))            # the reschedule fires at the opening
    step = send_step.send_county(sqlite_engine, CYCLE, COUNTY, settings(account(smsc)))
    assert step.done and step.counts["submitted"] == 5 and step.counts["remaining"] == 0
    assert len(smsc.accepted()) == 5


def test_no_sms_outside_sending_hours_after_2000_the_rest_waits_for_the_next_cycle(sqlite_engine, smsc):
    make_contacts(sqlite_engine, 4)
    clock.set_now(dt.datetime(2026, 11, 23, 20, 0))           # the window has just closed
    step = send_step.send_county(sqlite_engine, CYCLE, COUNTY, settings(account(smsc)))
    # done for this cycle (the next day's run is not blocked), nothing dropped, nothing sent
    assert step.done and step.counts["handed_to_next_cycle"] == 4
    assert smsc.submits == [] and states(sqlite_engine) == {"queued": 4}

    # the next cycle's send, inside its window, takes the leftovers of the earlier cycle
    clock.set_now(dt.datetime(2026, 11, 24, 8, 30))
    step = send_step.send_county(sqlite_engine, CYCLE + dt.timedelta(days=1), COUNTY, settings(account(smsc)))
    assert step.done and step.counts["submitted"] == 4
    assert sorted(s.destination for s in smsc.accepted()) == sorted(set(s.destination for s in smsc.accepted()))


def test_no_double_send_on_retry_or_rerun_the_send_step_twice(sqlite_engine, smsc):
    make_contacts(sqlite_engine, 6)
    first = send_step.send_county(sqlite_engine, CYCLE, COUNTY, settings(account(smsc)))
    again = send_step.send_county(sqlite_engine, CYCLE, COUNTY, settings(account(smsc)))
    assert first.done and again.done
    assert first.counts["submitted"] == 6 and again.counts["submitted"] == 0
    assert len(smsc.submits) == 6
