"""Airflow side of the database layer: an engine for an Airflow connection.

Connections come from the environment the Airflow way (``AIRFLOW_CONN_DATAMART``,
``AIRFLOW_CONN_MARKETING_DB``), e.g.
``{"conn_type": "sqlite", "host": "/abs/path/datamart.db"}`` or
``{"conn_type": "postgres", "host": ..., "port": 5432, "login": ..., "password": ..., "schema": "<database>"}``.
The provider hook builds the SQLAlchemy URL; ``qz_outbound.db.make_engine``
adds the project's per-dialect tuning. Imported inside tasks only.
"""

from __future__ import annotations

from sqlalchemy.engine import Engine

DATAMART = "datamart"
MARKETING_DB = "marketing_db"


def engine_for(conn_id: str) -> Engine:
    from airflow.sdk import BaseHook

    from qz_outbound import db

    hook = BaseHook.get_connection(conn_id).get_hook()
    return db.make_engine(hook.get_uri())


def preflight_connections() -> dict:
    """The three connections as :class:`qz_outbound.preflight.Connection` (None: not defined), for
    ``check_config``; nothing connects here."""
    from airflow.exceptions import AirflowNotFoundException
    from airflow.sdk import BaseHook

    from qz_outbound import preflight

    found = {}
    for conn_id in (preflight.DATAMART, preflight.MARKETING_DB, preflight.SMSC):
        try:
            conn = BaseHook.get_connection(conn_id)
        except AirflowNotFoundException:
            found[conn_id] = None
            continue
        uri = None
        if conn_id != preflight.SMSC and conn.conn_type in ("postgres", "postgresql") and conn.host:
            try:
                uri = conn.get_hook().get_uri()
            except Exception:   # reported by the checks as the missing field it comes from
                uri = None
        found[conn_id] = preflight.Connection(
            conn_id=conn_id, conn_type=conn.conn_type, host=conn.host, port=conn.port, login=conn.login,
            password=conn.password, schema=conn.schema, extra=conn.extra_dejson, uri=uri)
    return found


def check_connections() -> dict:
    """Every config file and the three connections checked (``qz_outbound.preflight.check_all``),
    for the ``check_config`` task of each DAG: a mistake fails the task without retry
    (a typo stays a typo), its message naming the file and line or the connection and field."""
    from airflow.sdk.exceptions import AirflowFailException

    from qz_outbound import preflight

    try:
        return preflight.check_all(preflight_connections())
    except preflight.PreflightError as exc:
        raise AirflowFailException(str(exc)) from None
