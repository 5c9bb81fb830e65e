"""Airflow side of SMS delivery: the SMSC account from the connection ``smsc``.

The connection (``AIRFLOW_CONN_SMSC``, or the UI) is
``{"conn_type": "generic", "host": ..., "port": ..., "login": <system_id>,
"password": ..., "extra": {"system_type": ..., "source_addr": "106...",
"rate": <msg/s>, "window": <outstanding submit_sm>, "bind_mode": "transmitter"}}``;
other sender settings of ``config/sms.yaml`` may be given as extras too.

The business logic lives in :mod:`qz_outbound.sms` and runs without Airflow;
this hook only turns the connection into :class:`~qz_outbound.sms.SmscSettings`
and calls it. Airflow is imported inside the methods (tasks only, never at
DAG parse time). Return values are counts: safe for XCom and logs.
"""

from __future__ import annotations

import datetime as dt

SMSC = "smsc"


class SmppHook:
    """The SMSC bind configured by an Airflow connection."""

    conn_name_attr = "smsc_conn_id"
    default_conn_name = SMSC
    conn_type = "generic"
    hook_name = "SMPP (SMSC)"

    def __init__(self, smsc_conn_id: str = SMSC):
        self.smsc_conn_id = smsc_conn_id

    def get_settings(self, **overrides):
        """:class:`qz_outbound.sms.SmscSettings` from the connection (config defaults underneath)."""
        from airflow.sdk import BaseHook

        from qz_outbound.sms import settings_from_connection

        conn = BaseHook.get_connection(self.smsc_conn_id)
        return settings_from_connection(
            dict(host=conn.host, port=conn.port, login=conn.login, password=conn.password,
                 extra=conn.extra_dejson), **overrides)

    def send_batch(self, marketing_engine, cycle_date: dt.date, county_code: str, **kwargs) -> dict:
        """Send one county's queued SMS; see :func:`qz_outbound.sms.send_batch`."""
        from qz_outbound.sms import send_batch

        return send_batch(marketing_engine, cycle_date, county_code, self.get_settings(), **kwargs).as_dict()

    def test_connection(self) -> tuple[bool, str]:
        """Bind and unbind once (the Airflow UI's "Test" button)."""
        from qz_outbound.sms.link import SmppLink

        try:
            link = SmppLink(self.get_settings())
            link.connect()
            link.close(unbind=True)
        except Exception as exc:  # report, never raise, as Airflow expects
            return False, f"{type(exc).__name__}: {exc}"
        return True, "bound and unbound"
