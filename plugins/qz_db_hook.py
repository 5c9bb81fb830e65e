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
