"""Migrations on SQLite and PostgreSQL: a database of the release before migrations (commit d7efbdd,
built by that release's own code) is recognised, upgraded with no row lost and then matches the
models; a revision that adds a column to a table with rows keeps them; what cannot be reconciled is
refused with the differences listed; `qz-outbound db check` sees what differs."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import sqlalchemy as sa

from qz_outbound import db, migrations

ROOT = Path(__file__).resolve().parents[2]
OLD_RELEASE = "d7efbdd"
CLI = [sys.executable, "-m", "qz_outbound.cli"]


@pytest.fixture(scope="module")
def old_release(tmp_path_factory) -> Path:
    """The release before migrations, checked out (git archive) into a temporary folder."""
    where = tmp_path_factory.mktemp("old-release")
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", OLD_RELEASE, "qz_outbound", "include"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(where)], input=archive, check=True)
    assert not (where / "qz_outbound" / "migrations").exists()   # it really is the release before
    return where


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'marketing.db'}"
    return request.getfixturevalue("pg_database_factory")("qz_mig")


def _old_ensure_schema(old_release: Path, url: str, *, drop: str = "") -> None:
    """Build marketing_db with the old release's own ensure_schema (same venv, old code on the path),
    and write a few rows the way its tasks would (opt-out, contact, commission)."""
    script = textwrap.dedent(f"""
        import datetime as dt, sqlalchemy as sa
        from qz_outbound import db, schema
        assert schema.__file__.startswith({str(old_release)!r}), schema.__file__
        e = db.make_engine({url!r})
        schema.ensure_schema(e)
        from qz_outbound.agent.schema import ensure_agent_schema
        ensure_agent_schema(e)
        now = dt.datetime(2026, 11, 20, 9, tzinfo=dt.timezone.utc)
        with e.begin() as c:
            c.execute(schema.mkt_opt_out.insert(), [dict(msisdn="13900000001", opted_out_at=now, source="sms_reply")])
            c.execute(schema.mkt_contact.insert(), [dict(
                contact_id="c1", cycle_date=dt.date(2026, 11, 20), msisdn="13900000002", county_code="350502",
                campaign_code="2241-005", channel="sms", status="delivered", created_at=now)])
            from qz_outbound.agent.schema import mkt_agent_commission
            c.execute(mkt_agent_commission.insert(), [dict(
                order_id="o1", contact_id="c9", month=dt.date(2026, 10, 1), agent_id="A1", county_code="350502",
                msisdn="13900000003", campaign_code="2241-005", product_code="P1", recommended_at=now,
                order_time=dt.datetime(2026, 10, 3), commission_yuan=12.5)])
            {drop!r} and [c.exec_driver_sql(s) for s in {drop!r}.split(";") if s.strip()]
    """)
    env = dict(os.environ, PYTHONPATH=str(old_release))
    subprocess.run([sys.executable, "-c", script], check=True, env=env, cwd=old_release, capture_output=True)


def _cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run(CLI + list(args), capture_output=True, text=True, cwd=ROOT)


def _rows(engine) -> dict:
    with engine.connect() as c:
        return {t: c.execute(sa.text(f"select count(*) from {t}")).scalar()
                for t in ("mkt_opt_out", "mkt_contact", "mkt_agent_commission")}


@pytest.mark.postgres
def test_a_database_of_the_release_before_migrations_is_recognised_and_upgraded(old_release, url):
    _old_ensure_schema(old_release, url)
    engine = db.make_engine(url)
    assert migrations.is_pre_migration(engine)
    before = _rows(engine)
    assert before == {"mkt_opt_out": 1, "mkt_contact": 1, "mkt_agent_commission": 1}
    check = _cli("db", "check", "--marketing", url)
    assert check.returncode == 1 and "not under migrations" in check.stdout

    up = _cli("db", "upgrade", "--marketing", url)
    assert up.returncode == 0, up.stderr
    assert "recognised" in up.stdout
    assert _rows(engine) == before
    check = _cli("db", "check", "--marketing", url)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "matches the models" in check.stdout
    current = _cli("db", "current", "--marketing", url)
    assert current.returncode == 0 and migrations.head() in current.stdout
    engine.dispose()


@pytest.mark.postgres
def test_an_older_database_gets_what_it_lacks_and_its_fillfactor(old_release, url):
    """Older still than d7efbdd: no agent index on mkt_contact, no grade table, no fillfactor."""
    pg = url.startswith("postgresql")
    _old_ensure_schema(old_release, url, drop="drop index ux_mkt_contact_agent; drop table mkt_agent_grade"
                       + ("; alter table sms_part reset (fillfactor); alter table mkt_contact reset (fillfactor)"
                          if pg else ""))
    engine = db.make_engine(url)
    problems = migrations.check(engine)
    assert "missing table mkt_agent_grade" in problems
    assert "missing index ux_mkt_contact_agent on mkt_contact" in problems
    if pg:
        assert "table sms_part: fillfactor default in the database, 70 in the models" in problems
    migrations.upgrade(engine)
    assert migrations.check(engine) == []
    assert _rows(engine)["mkt_opt_out"] == 1
    engine.dispose()


@pytest.mark.postgres
def test_a_difference_the_baseline_cannot_reconcile_is_refused_and_listed(old_release, url):
    """A snapshot table from before open_date existed: adding a NOT NULL column needs a decision."""
    drop = ("alter table mkt_segment_snapshot drop column open_date" if not url.startswith("postgresql") else
            "alter table mkt_segment_snapshot drop column open_date")
    _old_ensure_schema(old_release, url, drop=drop)
    engine = db.make_engine(url)
    with pytest.raises(migrations.SchemaError) as err:
        migrations.upgrade(engine)
    assert "missing column mkt_segment_snapshot.open_date" in str(err.value)
    assert migrations.current(engine) is None            # not stamped: nothing was changed
    up = _cli("db", "upgrade", "--marketing", url)
    assert up.returncode == 1 and "open_date" in up.stderr
    engine.dispose()


REVISION = '''
"""test: mkt_opt_out.channel (a column added to a table with rows)"""
import sqlalchemy as sa
from alembic import op

revision = "9001_test_opt_out_channel"
down_revision = "{head}"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("mkt_opt_out") as batch:
        batch.add_column(sa.Column("channel", sa.String(8), nullable=False, server_default="sms"))


def downgrade():
    with op.batch_alter_table("mkt_opt_out") as batch:
        batch.drop_column("channel")
'''


@pytest.mark.postgres
def test_a_revision_adds_a_column_to_a_table_with_rows(url, tmp_path):
    engine = db.make_engine(url)
    migrations.upgrade(engine)
    with engine.begin() as c:
        for i in range(500):
            c.execute(sa.text("insert into mkt_opt_out (msisdn, opted_out_at, source) values (:m, :t, 'sms_reply')"),
                      {"m": f"139{i:08d}", "t": "2026-11-20 09:00:00+00:00"})
    versions = tmp_path / "versions"
    versions.mkdir()
    (versions / "9001_test_opt_out_channel.py").write_text(REVISION.format(head=migrations.head()))

    # the models of the release with the column
    from qz_outbound.metadata import full_metadata

    models = sa.MetaData()
    for table in full_metadata().sorted_tables:
        table.to_metadata(models)
    models.tables["mkt_opt_out"].append_column(sa.Column("channel", sa.String(8), nullable=False,
                                                         server_default="sms"))
    behind = migrations.check(engine, models, extra_versions=[versions])
    assert "missing column mkt_opt_out.channel" in behind
    assert f"at revision {migrations.head()}, head is 9001_test_opt_out_channel" in behind

    assert migrations.upgrade(engine, extra_versions=[versions]) == "9001_test_opt_out_channel"
    with engine.connect() as c:
        assert c.execute(sa.text("select count(*), min(channel), max(channel) from mkt_opt_out")).one() == \
            (500, "sms", "sms")
    assert migrations.check(engine, models, extra_versions=[versions]) == []
    # the release's own models (without the column) now differ: db check says so
    assert "unexpected column mkt_opt_out.channel" in migrations.check(engine)
    engine.dispose()


@pytest.mark.postgres
def test_upload_identity_revision_tells_outcomes_loaded_without_a_time_from_those_with_one(url):
    """0002 moves data: before it, a row without a call time was stamped with the upload time in
    both columns, so those rows become ``called_at_given = false`` and the rest stay true."""
    engine = db.make_engine(url)
    migrations.upgrade(engine, "0001_baseline")
    row = {"cycle_date": "2026-11-23", "county_code": "350582", "msisdn": "13900000001", "campaign_code": "1114-007",
           "upload_id": "U1", "loaded_at": "2026-11-23 12:00:00+00:00"}
    with engine.begin() as c:
        for contact, called in (("C1", "2026-11-23 12:00:00+00:00"), ("C2", "2026-11-23 03:30:00+00:00")):
            c.execute(sa.text("insert into mkt_call_outcome (contact_id, outcome, called_at, cycle_date, county_code, "
                              "msisdn, campaign_code, upload_id, loaded_at) values (:contact, 'no_answer', :called, "
                              ":cycle_date, :county_code, :msisdn, :campaign_code, :upload_id, :loaded_at)"),
                      dict(row, contact=contact, called=called))
        c.execute(sa.text("insert into portal_upload (upload_id, county_code, sha256, file_name, archive_path, "
                          "uploaded_by, uploaded_at, status, rows_total, rows_accepted, rows_rejected, "
                          "rows_without_outcome) values ('U1', '350582', 'x', 'f.csv', '/a', 'u', "
                          "'2026-11-23 12:00:00+00:00', 'loaded', 2, 2, 0, 0)"))
    assert migrations.upgrade(engine) == migrations.head()
    with engine.connect() as c:
        given = dict(c.execute(sa.text("select contact_id, called_at_given from mkt_call_outcome")).all())
        loaded = c.execute(sa.text("select rows_already_loaded from portal_upload")).scalar()
    assert {k: bool(v) for k, v in given.items()} == {"C1": False, "C2": True} and loaded == 0
    assert migrations.check(engine) == []
    engine.dispose()


@pytest.mark.postgres
def test_check_lists_what_differs_and_upgrade_is_idempotent(url):
    engine = db.make_engine(url)
    assert migrations.upgrade(engine) == migrations.head()
    assert migrations.upgrade(engine) == migrations.head()           # twice: nothing to do
    assert migrations.check(engine) == []
    with engine.begin() as c:
        c.exec_driver_sql("drop index ix_sms_outbox_msisdn")
        c.exec_driver_sql("alter table mkt_cycle_stage add column extra_note varchar(10)")
    problems = migrations.check(engine)
    assert "missing index ix_sms_outbox_msisdn on sms_outbox" in problems
    assert "unexpected column mkt_cycle_stage.extra_note" in problems
    out = _cli("db", "check", "--marketing", url)
    assert out.returncode == 1 and "ix_sms_outbox_msisdn" in out.stdout
    engine.dispose()


@pytest.mark.postgres
def test_postgresql_only_parts_are_in_the_baseline(pg_database_factory):
    """Partitioning, fillfactor and partial indexes: there on a fresh database, and check sees them go."""
    engine = db.make_engine(pg_database_factory("qz_migpg"))
    migrations.upgrade(engine)
    with engine.connect() as c:
        parted = set(c.execute(sa.text("select c.relname from pg_partitioned_table p join pg_class c "
                                       "on c.oid = p.partrelid")).scalars())
        assert {"mkt_segment_snapshot", "mkt_target"} <= parted
        opts = dict(c.execute(sa.text("select relname, reloptions from pg_class where relname in "
                                      "('mkt_contact', 'sms_part')")).all())
        assert all(o == ["fillfactor=70"] for o in opts.values()) and len(opts) == 2
        assert " WHERE " in c.execute(sa.text("select indexdef from pg_indexes where indexname = "
                                              "'ix_sms_inbound_pending'")).scalar()
    with engine.begin() as c:
        c.exec_driver_sql("drop table mkt_target")
        c.exec_driver_sql("create table mkt_target (like mkt_segment_snapshot)")   # unpartitioned stand-in
    assert any("mkt_target: not partitioned" in p for p in migrations.check(engine))
    engine.dispose()


@pytest.mark.postgres
def test_models_match_the_head_revision(url):
    """A model changed without a revision fails here (docs/migrations.md "Writing a revision")."""
    engine = db.make_engine(url)
    migrations.upgrade(engine)
    assert migrations.check(engine) == []
    engine.dispose()


@pytest.mark.postgres
def test_msisdn_key_revision_rekeys_partitions_with_rows_and_check_sees_the_order(pg_database_factory):
    """0015 (PostgreSQL): the snapshot's and the pivot's customer number compared as "C" and leading
    their primary keys, on every partition already there, no row lost, uniqueness still enforced;
    a key put back in the old order by hand is what `db check` reports."""
    engine = db.make_engine(pg_database_factory("qz_migkey"))
    migrations.upgrade(engine, "0014_usage_pivot")
    with engine.begin() as c:
        for day in ("2026-11-22", "2026-11-23"):
            stage = f"mkt_segment_snapshot_{day.replace('-', '')}"
            c.exec_driver_sql(f"create table {stage} (like mkt_segment_snapshot including defaults)")
            c.exec_driver_sql(f"alter table mkt_segment_snapshot attach partition {stage} for values in ('{day}')")
            c.execute(sa.text(
                "insert into mkt_segment_snapshot (cycle_date, msisdn, county_code, stability_type, spend_tier, "
                "voice_tier, data_tier, tenure_tier, segment_code, status, tenure_months, spend_m0, voice_m0, "
                "data_m0, open_date) select cast(:d as date), '139' || lpad(g::text, 8, '0'), '350502', '1', 1, 1, "
                "1, 1, '1-P01V01D01T01', 'active', 12, 1, 1, 1, date '2025-01-01' from generate_series(1, 300) g"),
                {"d": day})
        c.exec_driver_sql("create table mkt_usage_pivot_20261001 partition of mkt_usage_pivot "
                          "for values in ('2026-10-01')")
        c.exec_driver_sql("insert into mkt_usage_pivot (usage_month, msisdn, spend_m0) "
                          "select date '2026-10-01', '139' || lpad(g::text, 8, '0'), g from generate_series(1, 300) g")
    assert "column mkt_segment_snapshot.msisdn: collation default in the database, C in the models" \
        in migrations.check(engine)

    assert migrations.upgrade(engine) == migrations.head()
    assert migrations.check(engine) == []
    with engine.connect() as c:
        keys = dict(c.execute(sa.text(
            "select c.relname, pg_get_indexdef(i.indexrelid) from pg_index i join pg_class c on c.oid = i.indrelid "
            "where i.indisprimary and (c.relname like 'mkt_segment_snapshot%' or c.relname like 'mkt_usage_pivot%') "
            "and c.relname <> 'mkt_usage_pivot_source'")).all())
        collations = set(c.execute(sa.text(
            "select coalesce(co.collname, 'default') from pg_attribute a join pg_class t on t.oid = a.attrelid "
            "left join pg_collation co on co.oid = a.attcollation and a.attcollation <> 100 "
            "where a.attname = 'msisdn' and (t.relname like 'mkt_segment_snapshot%' "
            "or t.relname like 'mkt_usage_pivot%') and t.relkind in ('r', 'p')")).scalars())
        counts = c.exec_driver_sql("select (select count(*) from mkt_segment_snapshot), "
                                   "(select count(*) from mkt_usage_pivot)").one()
    assert len(keys) == 5   # both parents and their three partitions
    assert all("(msisdn, cycle_date)" in k or "(msisdn, usage_month)" in k for k in keys.values()), keys
    assert collations == {"C"} and tuple(counts) == (600, 300)
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as c:
        c.exec_driver_sql("insert into mkt_segment_snapshot select * from mkt_segment_snapshot limit 1")

    with engine.begin() as c:
        c.exec_driver_sql("alter table mkt_usage_pivot drop constraint mkt_usage_pivot_pkey")
        c.exec_driver_sql("alter table mkt_usage_pivot add primary key (usage_month, msisdn)")
    assert migrations.check(engine) == [
        "table mkt_usage_pivot: primary key (usage_month, msisdn) in the database, (msisdn, usage_month) in the models"]
    engine.dispose()
