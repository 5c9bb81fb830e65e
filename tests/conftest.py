"""Test setup shared by the whole suite.

* PostgreSQL is real: ``QZ_TEST_PG_URL`` if set, otherwise this setup installs
  (Debian package) and starts a cluster with ``scripts/services/postgres.sh``.
  If it cannot, the run fails; database tests are never skipped.
* Airflow runs in-process against a throwaway metadata database under a temp
  ``AIRFLOW_HOME``, set before anything imports Airflow.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import hypothesis  # noqa: F401  -- imported early: a late import at session end trips a CPython 3.11 AST bug
import pytest

ROOT = Path(__file__).resolve().parent.parent

_airflow_home = Path(tempfile.mkdtemp(prefix="qz-airflow-"))
os.environ.setdefault("AIRFLOW_HOME", str(_airflow_home))
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(ROOT / "plugins")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
os.environ["GX_ANALYTICS_ENABLED"] = "False"
if str(ROOT / "plugins") not in sys.path:
    sys.path.insert(0, str(ROOT / "plugins"))


def pytest_configure(config):
    if not os.environ.get("QZ_TEST_PG_URL"):
        try:
            url = subprocess.run([str(ROOT / "scripts/services/postgres.sh")], check=True, capture_output=True,
                                 text=True, timeout=900).stdout.strip().splitlines()[-1]
        except (subprocess.SubprocessError, IndexError) as exc:
            detail = getattr(exc, "stderr", "") or ""
            pytest.exit(f"PostgreSQL could not be started for the tests: {exc}\n{detail}", returncode=3)
        os.environ["QZ_TEST_PG_URL"] = url


@pytest.fixture(scope="session")
def pg_url() -> str:
    return os.environ["QZ_TEST_PG_URL"]


def _admin_engine(url: str):
    import sqlalchemy as sa

    return sa.create_engine(sa.make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")


@pytest.fixture(scope="session")
def pg_database_factory(pg_url):
    """Creates fresh PostgreSQL databases on the test server; drops them at the end."""
    import sqlalchemy as sa

    admin = _admin_engine(pg_url)
    created: list[str] = []

    def make(prefix: str = "qz") -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        with admin.connect() as conn:
            conn.exec_driver_sql(f'create database "{name}"')
        created.append(name)
        return sa.make_url(pg_url).set(database=name).render_as_string(hide_password=False)

    yield make
    from qz_outbound import db  # noqa: F401  (engines are disposed with the process)

    with admin.connect() as conn:
        for name in created:
            conn.exec_driver_sql(f'drop database if exists "{name}" with (force)')
    admin.dispose()


@pytest.fixture(scope="session")
def airflow_db():
    """A migrated Airflow metadata database for in-process DAG runs."""
    from airflow.utils import db as airflow_db_utils

    airflow_db_utils.resetdb()
    return os.environ["AIRFLOW_HOME"]
