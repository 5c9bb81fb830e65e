"""Fixtures for the agent channel: a targeted (not published) cycle, the real development SMSC,
the project clock, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qz_outbound import campaigns, clock, schema, segmentation, targeting  # noqa: E402
from qz_outbound.dev.demo_datamart import generate  # noqa: E402
from qz_outbound.dev.smsc import Behaviour, DevSmsc  # noqa: E402

DAY = dt.date(2026, 11, 23)


@pytest.fixture(autouse=True)
def _clock_and_state(tmp_path, monkeypatch):
    clock.set_now(dt.datetime(2026, 11, 23, 4, 0))
    monkeypatch.setenv("QZ_SMS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("QZ_OUTPUT_DIR", str(tmp_path / "output"))
    yield
    clock.set_now(None)


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path):
    from cycle_support import engine_for_param

    eng = engine_for_param(request, tmp_path, "qz_agent")
    yield eng
    eng.dispose()


@pytest.fixture
def targeted(engine):
    """A data mart of 3,000 customers and the day's target list (not published: no daily contacts)."""
    generate(engine, 3000, DAY, progress=False)
    schema.ensure_schema(engine)
    library = campaigns.load_library()
    segmentation.segment_customers(engine, engine, DAY)
    targeting.stage_extracts(engine, engine, DAY)
    targeting.build_target_list(engine, DAY, library)
    return engine, library


@pytest.fixture
def smsc():
    server = DevSmsc(behaviour=Behaviour(), seed=7).start()
    yield server
    server.stop()


def smsc_settings(smsc: DevSmsc):
    from qz_outbound.sms import settings_from_connection

    return settings_from_connection(dict(
        host="127.0.0.1", port=smsc.port, login="qz", password="pw",
        extra=dict(source_addr="10658", rate=1000, window=20, response_timeout=5, reconnect_initial=0.1,
                   reconnect_max=0.5, reconnect_give_up=10)))


@pytest.fixture
def sqlite_marketing(tmp_path):
    from qz_outbound import db
    from qz_outbound.schema import ensure_schema

    eng = db.make_engine(f"sqlite:///{tmp_path / 'marketing.db'}")
    ensure_schema(eng)
    yield eng
    eng.dispose()
