"""The restore drill (docs/runbook.md "Losing marketing_db"): run a cycle, take a backup, destroy
marketing_db, restore it with `qz-outbound db restore`, then show the hard rules still hold with what
came back: opt-outs and DND are honoured, a re-run of the day sends nothing twice, the commission
ledger is intact. SQLite and PostgreSQL; a real SMPP server (the development SMSC)."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from qz_outbound import campaigns, clock, counties, db, migrations, publish, segmentation, targeting
from qz_outbound.sms import send_step
from qz_outbound.dev.demo_datamart import generate
from qz_outbound.sms import settings_from_connection
from qz_outbound.dev.smsc import Behaviour, DevSmsc

ROOT = Path(__file__).resolve().parents[2]
D = dt.date(2026, 11, 23)
# past the 7-day cap and the 30-day same-campaign gap: a held-out or contacted customer counts as
# contacted (contact-policy.md), so on a small data mart the day after offers almost nobody anything
NEXT = D + dt.timedelta(days=31)
LEDGER = [("o1", "c-agent-1", "A001", 12.5), ("o2", "c-agent-2", "A002", 30.0), ("o3", "c-agent-3", "A001", 8.0)]


@pytest.fixture
def smsc():
    server = DevSmsc(behaviour=Behaviour(), seed=11).start()
    yield server
    server.stop()


def _cycle(dm, mk, day, library, *, send=(), smsc_settings=None):
    clock.set_now(dt.datetime(day.year, day.month, day.day, 9, 0, tzinfo=clock.SHANGHAI))
    segmentation.segment_customers(dm, mk, day)
    targeting.stage_extracts(dm, mk, day)
    targeting.build_target_list(mk, day, library)
    for county in counties.county_names():
        publish.publish_county(mk, day, county, library)
    for county in send:
        assert send_step.send_county(mk, day, county, smsc_settings).done


def _fingerprint(mk) -> dict[str, str]:
    """A digest of every row of what must survive (the numbers never leave the test)."""
    queries = {
        "mkt_opt_out": "select msisdn, source from mkt_opt_out order by msisdn",
        "mkt_agent_commission": "select order_id, contact_id, agent_id, commission_yuan from mkt_agent_commission "
                                "order by order_id",
        "mkt_contact": "select contact_id, msisdn, channel, status from mkt_contact order by contact_id",
        "sms_outbox": "select contact_id, state from sms_outbox order by contact_id",
        "sms_part": "select contact_id, part_no, state, message_id from sms_part order by contact_id, part_no",
    }
    with mk.connect() as c:
        return {t: hashlib.sha256(repr([tuple(map(str, r)) for r in c.execute(sa.text(q))]).encode()).hexdigest()
                for t, q in queries.items()}


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "qz_outbound.cli", *args], capture_output=True, text=True,
                          cwd=ROOT, env=dict(os.environ))


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_restore_drill(dialect, tmp_path, smsc, monkeypatch, request):
    monkeypatch.setenv("QZ_SMS_STATE_DIR", str(tmp_path / "sms-state"))
    monkeypatch.setenv("QZ_OUTPUT_DIR", str(tmp_path / "output"))
    dm = db.make_engine(f"sqlite:///{tmp_path / 'datamart.db'}")
    generate(dm, 3000, D, progress=False)
    if dialect == "sqlite":
        url = f"sqlite:///{tmp_path / 'marketing.db'}"
    else:
        url = request.getfixturevalue("pg_database_factory")("qz_drill")
    mk = db.make_engine(url)
    migrations.upgrade(mk)
    library = campaigns.load_library()
    smsc_settings = settings_from_connection(dict(host="127.0.0.1", port=smsc.port, login="qz", password="pw",
                                                  extra=dict(source_addr="10658", rate=2000, window=50)))
    codes = list(counties.county_names())
    held, dnd_county = codes[0], codes[1]      # held: not sent before the loss; dnd: on the DND list tomorrow
    try:
        # the day's cycle; every county but one is sent before the disk is lost
        _cycle(dm, mk, D, library, send=codes[1:], smsc_settings=smsc_settings)
        sent_before = len(smsc.accepted())
        assert sent_before > 0
        with mk.begin() as c:
            # the held county's customers opt out (a reply TD, a call-centre refusal) before it is sent
            c.execute(sa.text("insert into mkt_opt_out (msisdn, opted_out_at, source) select distinct msisdn, :t, "
                              "'sms_reply' from mkt_contact where county_code = :county"),
                      dict(t=dt.datetime(2026, 11, 23, 9, 30, tzinfo=clock.SHANGHAI), county=held))
            opted_out = c.exec_driver_sql("select count(*) from mkt_opt_out").scalar()
            for order_id, contact_id, agent, yuan in LEDGER:    # the settled commission ledger
                c.execute(sa.text(
                    "insert into mkt_agent_commission (order_id, contact_id, month, agent_id, county_code, msisdn, "
                    "campaign_code, product_code, recommended_at, order_time, commission_yuan) values "
                    "(:o, :c, :m, :a, :county, '13900000000', 'X', 'P', :t, :t2, :y)"),
                    dict(o=order_id, c=contact_id, m=dt.date(2026, 10, 1), a=agent, county=held,
                         t=dt.datetime(2026, 10, 2, 10, tzinfo=dt.timezone.utc), t2=dt.datetime(2026, 10, 3), y=yuan))
        assert opted_out > 0
        before = _fingerprint(mk)

        backup_file = tmp_path / "backups" / f"marketing.{'dump' if dialect == 'postgresql' else 'sqlite'}"
        out = _cli("db", "backup", "--marketing", url, "--out", str(backup_file))
        assert out.returncode == 0, out.stderr
        assert backup_file.stat().st_mode & 0o077 == 0          # holds numbers: owner only

        # the loss
        mk.dispose()
        if dialect == "sqlite":
            for suffix in ("", "-wal", "-shm"):
                Path(f"{tmp_path / 'marketing.db'}{suffix}").unlink(missing_ok=True)
        else:
            admin = sa.create_engine(sa.make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")
            with admin.connect() as c:
                c.exec_driver_sql(f'drop database "{sa.make_url(url).database}" with (force)')
            admin.dispose()
        assert _cli("db", "current", "--marketing", url).returncode != 0

        out = _cli("db", "restore", "--marketing", url, "--from", str(backup_file))
        assert out.returncode == 0, out.stderr
        mk = db.make_engine(url)
        assert _fingerprint(mk) == before                        # ledger, opt-outs, history, outbox: intact
        assert _cli("db", "check", "--marketing", url).returncode == 0

        # a re-run of the whole day after the restore: nobody gets a second message, the opted-out none
        _cycle(dm, mk, D, library, send=codes, smsc_settings=smsc_settings)
        got = {}
        for s in smsc.accepted():
            got[s.destination] = got.get(s.destination, 0) + 1
        with mk.connect() as c:
            held_numbers = set(c.exec_driver_sql(
                f"select msisdn from mkt_contact where county_code = '{held}'").scalars())
            skipped = c.exec_driver_sql(f"select count(*) from sms_outbox where county_code = '{held}' "
                                        "and state = 'skipped'").scalar()
            parts = {r[0]: r[1] for r in c.exec_driver_sql(
                "select o.msisdn, count(*) from sms_part p join sms_outbox o on o.contact_id = p.contact_id "
                "where p.state in ('accepted', 'delivered', 'undelivered') group by o.msisdn")}
        assert not held_numbers & set(got)                        # opted out before the loss: nothing sent
        assert skipped > 0
        assert got == parts                                       # every submit is one recorded part: none twice
        assert len(smsc.accepted()) == sent_before                # the re-run sent nothing new

        # the next day: the DND list of the data mart and the restored opt-outs are both honoured
        with dm.begin() as c:
            c.exec_driver_sql(f"insert into dnd_list (msisdn, added_at, source) select msisdn, "
                              f"'2026-11-23 20:00:00', 'drill' from subscriber where county_code = '{dnd_county}'")
        _cycle(dm, mk, NEXT, library, send=codes, smsc_settings=smsc_settings)
        with mk.connect() as c:
            per_county = dict(c.exec_driver_sql(
                f"select county_code, count(*) from mkt_contact where cycle_date = '{NEXT.isoformat()}' "
                "and channel in ('sms', 'call') group by county_code").all())
            opted_contacted = c.exec_driver_sql(
                f"select count(*) from mkt_contact m join mkt_opt_out o on o.msisdn = m.msisdn "
                f"where m.cycle_date = '{NEXT.isoformat()}' and m.channel in ('sms', 'call')").scalar()
        assert per_county.get(dnd_county, 0) == 0
        assert opted_contacted == 0
        assert sum(per_county.values()) > 0                       # the others were contacted: the rules, not an empty day
        new = smsc.accepted()[sent_before:]
        # a month on, customers texted before may be offered again; the opted-out never
        assert new and not {s.destination for s in new} & held_numbers
    finally:
        clock.set_now(None)
        mk.dispose()
        dm.dispose()
