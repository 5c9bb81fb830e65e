"""The connection checks without Airflow: a connection's SMSC extras obey exactly the bounds of
config/sms.yaml's sender section (one model), and each message names the connection, the field and
what is allowed, never the password."""

from __future__ import annotations

import annotated_types as at
import pytest

from qz_outbound import preflight
from qz_outbound.sms.settings import SenderDefaults, SmscSettings

GOOD = dict(conn_id="smsc", conn_type="generic", host="127.0.0.1", port=2775, login="QZ", password="pw-secret",
            extra={"source_addr": "10658", "rate": 100})


def _violations():
    """(field, a value outside its bound, the bound's words) for every bounded sender field."""
    out = []
    for name, field in SenderDefaults.model_fields.items():
        for m in field.metadata:
            if isinstance(m, at.Gt):
                out.append((name, m.gt, f"> {m.gt}"))
            elif isinstance(m, at.Ge):
                out.append((name, m.ge - 1, f"≥ {m.ge}"))
            elif isinstance(m, at.Lt):
                out.append((name, m.lt, f"< {m.lt}"))
            elif isinstance(m, at.Le):
                out.append((name, m.le + 1, f"≤ {m.le}"))
    return out


def test_smsc_settings_is_the_sender_defaults_model():
    assert issubclass(SmscSettings, SenderDefaults)
    for name, field in SenderDefaults.model_fields.items():
        if name not in ("rate", "bind_mode"):   # rate: required for an account; bind_mode: + receiver
            assert SmscSettings.model_fields[name].metadata == field.metadata, name


@pytest.mark.parametrize("field,value,words", _violations(), ids=lambda v: str(v))
def test_every_sender_bound_applies_to_the_connection_extra(field, value, words):
    conn = preflight.Connection(**{**GOOD, "extra": {**GOOD["extra"], field: value}})
    problems = preflight.check_smsc(conn)
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"connection smsc: extra.{field}: ")
    assert f"allowed: {words}" in problems[0]
    assert "pw-secret" not in problems[0]


def test_a_good_smsc_connection_passes_and_unknown_extras_are_named():
    assert preflight.check_smsc(preflight.Connection(**GOOD)) == []
    problems = preflight.check_smsc(preflight.Connection(**{**GOOD, "extra": {**GOOD["extra"], "windw": 5}}))
    assert problems and problems[0].startswith("connection smsc: extra.windw: unknown field (allowed: ")


def test_database_connection_fields_per_type(tmp_path):
    pg = preflight.Connection(conn_id="datamart", conn_type="postgres", host="127.0.0.1")
    assert preflight.check_database(pg) == [
        "connection datamart: login: missing (a postgres connection needs host, login, schema)",
        "connection datamart: schema: missing (a postgres connection needs host, login, schema)"]
    odd = preflight.Connection(conn_id="marketing_db", conn_type="mysql", host="h")
    assert "is not supported" in preflight.check_database(odd)[0]
