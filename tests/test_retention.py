"""Data at rest: call lists beyond keep_cycles, old portal uploads and processed sms_inbound rows are
deleted; files holding numbers are owner-only; an unprocessed inbound row is never deleted."""

from __future__ import annotations

import datetime as dt
import stat

import pytest
import sqlalchemy as sa

import pandas as pd

from qz_outbound import call_lists, clock, config, db, exports, retention, schema
from qz_outbound.sms.schema import sms_inbound

NOW = dt.datetime(2026, 11, 23, 5, 0, tzinfo=clock.SHANGHAI)


def test_call_lists_beyond_keep_cycles_are_deleted_newest_kept(tmp_path, monkeypatch):
    root = tmp_path / "output"
    monkeypatch.setenv("QZ_OUTPUT_DIR", str(root))
    days = [dt.date(2026, 10, 1) + dt.timedelta(days=i) for i in range(35)]
    for day in days:
        exports.write_csv(pd.DataFrame({"x": ["x"]}), call_lists.private_list_dir(day, "350502") / "list.csv")
    (root / "call_lists" / "README").write_text("not a cycle")   # left alone
    assert retention.purge_call_lists(30, root) == 5
    left = sorted(p.name for p in (root / "call_lists").iterdir() if p.is_dir())
    assert left == [d.isoformat() for d in days[5:]]
    assert (root / "call_lists" / "README").exists()
    assert retention.purge_call_lists(30, root) == 0


def test_call_list_files_are_owner_only(tmp_path, monkeypatch):
    monkeypatch.setenv("QZ_OUTPUT_DIR", str(tmp_path / "output"))
    # the call list's own path: its folder, then the CSV and XLSX pair through the export module
    folder = call_lists.private_list_dir(dt.date(2026, 11, 23), "350502")
    paths = exports.write_pair(folder / "x", pd.DataFrame({"号码": ["13900000000"]}), "外呼清单")
    assert [stat.S_IMODE(p.stat().st_mode) for p in paths] == [0o600, 0o600]
    path = paths[0]
    for folder in (path.parent, path.parent.parent, path.parent.parent.parent):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_portal_uploads_older_than_keep_days_are_deleted(tmp_path):
    root = tmp_path / "output"
    folder = retention.private_dir(root / "portal" / "uploads" / "350502", root)
    old = folder / "U20260801090000-350502-abcdef123456_outcomes.xlsx"
    recent = folder / "U20261101090000-350502-abcdef654321_outcomes.xlsx"
    for f in (old, recent):
        f.write_bytes(b"data")
    assert retention.purge_uploads(90, NOW, root) == 1
    assert not old.exists() and recent.exists()


@pytest.fixture(params=["sqlite", "postgresql"])
def marketing(request, tmp_path):
    if request.param == "sqlite":
        engine = db.make_engine(f"sqlite:///{tmp_path / 'marketing.db'}")
    else:
        engine = db.make_engine(request.getfixturevalue("pg_database_factory")("qz_ret"))
    schema.ensure_schema(engine)
    yield engine
    engine.dispose()


@pytest.mark.postgres
def test_sms_inbound_keeps_unprocessed_and_recent_rows(marketing):
    old, recent = NOW - dt.timedelta(days=120), NOW - dt.timedelta(days=10)
    rows = [dict(received_at=old, kind="receipt", processed_at=old, outcome="matched"),        # deleted
            dict(received_at=old, kind="reply", processed_at=None, outcome=None),              # never: unread
            dict(received_at=recent, kind="reply", processed_at=recent, outcome="opt_out")]     # kept: recent
    with marketing.begin() as c:
        c.execute(sms_inbound.insert(), rows)
    assert retention.purge_inbound(marketing, 90, NOW) == 1
    with marketing.connect() as c:
        left = c.execute(sa.select(sms_inbound.c.kind, sms_inbound.c.processed_at.is_(None))
                         .order_by(sms_inbound.c.received_at)).all()
    assert left == [("reply", True), ("reply", False)]   # the old unread one, the recent one


def test_apply_uses_the_configured_periods(marketing, tmp_path, monkeypatch):
    monkeypatch.setenv("QZ_OUTPUT_DIR", str(tmp_path / "output"))
    for i in range(32):
        day = dt.date(2026, 10, 1) + dt.timedelta(days=i)
        (tmp_path / "output" / "call_lists" / day.isoformat()).mkdir(parents=True)
    counts = retention.apply(marketing, NOW)
    assert counts == {"call_list_cycles_deleted": 2, "uploads_deleted": 0, "sms_inbound_deleted": 0}


def test_inbound_retention_shorter_than_matching_is_a_config_error(tmp_path):
    from qz_outbound.sms.settings import SmsConfig

    path = tmp_path / "sms.yaml"
    path.write_text("message: {signature: 【泉州移动】, opt_out_text: 回TD退订}\n"
                    "receiver:\n  unmatched_give_up_hours: 72\n  inbound_keep_days: 2\n", encoding="utf-8")
    with pytest.raises(config.ConfigError) as err:
        config.load(SmsConfig, path)
    assert "inbound_keep_days must be longer than unmatched_give_up_hours" in str(err.value)
    assert "sms.yaml:2: receiver:" in str(err.value)   # file, line and field
