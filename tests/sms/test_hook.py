"""The Airflow hook reads the `smsc` connection the Airflow way and sends through qz_outbound.sms."""

from __future__ import annotations

import json

from qz_outbound.sms import send_batch  # noqa: F401  (the hook's business logic)

from sms_support import COUNTY, CYCLE, make_contacts, per_number


def test_hook_reads_the_smsc_connection_and_sends(monkeypatch, sqlite_engine, smsc):
    monkeypatch.setenv("AIRFLOW_CONN_SMSC", json.dumps({
        "conn_type": "generic", "host": "127.0.0.1", "port": smsc.port, "login": "qzsys", "password": "pw",
        "extra": {"system_type": "VMA", "source_addr": "1065812345", "rate": 150, "window": 7,
                  "bind_mode": "transceiver"},
    }))
    from smpp_hook import SmppHook

    hook = SmppHook()
    s = hook.get_settings()
    assert (s.host, s.port, s.system_id, s.password, s.system_type) == ("127.0.0.1", smsc.port, "qzsys", "pw", "VMA")
    assert (s.source_addr, s.rate, s.window, s.bind_mode) == ("1065812345", 150, 7, "transceiver")
    assert s.enquire_link_interval == 30          # config/sms.yaml under the connection
    assert hook.test_connection() == (True, "bound and unbound")
    make_contacts(sqlite_engine, 3)
    result = hook.send_batch(sqlite_engine, CYCLE, COUNTY)
    assert result["submitted"] == 3 and json.dumps(result)     # counts only, XCom-safe
    assert len(per_number(smsc)) == 3
    assert {s.source for s in smsc.submits} == {"1065812345"}
    assert smsc.binds[-1]["system_id"] == "qzsys"


def test_unknown_extras_are_refused(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_SMSC", json.dumps({
        "conn_type": "generic", "host": "127.0.0.1", "port": 2775, "login": "x",
        "extra": {"source_addr": "10658", "rate": 10, "windw": 5}}))
    from smpp_hook import SmppHook

    import pytest

    with pytest.raises(ValueError, match="windw"):
        SmppHook().get_settings()
