"""What ``check_config`` verifies before a cycle starts: every config file and the three connections.

A failed check stops the run at its first task: nothing is segmented, published or sent. Each
problem names where it is (a file and line, or a connection and field) and what is allowed, e.g.
``connection smsc: extra.window: must be ≤ 1000 (got 5000)``. Secrets are never echoed.

* ``datamart`` and ``marketing_db``: the fields the connection type needs are present and the
  database answers (an SQLite file must exist: connecting would silently create an empty one);
  ``marketing_db`` is at the head revision (else: the ``qz-outbound db upgrade`` command to run).
* ``smsc``: host, port, login and the extras build :class:`~qz_outbound.sms.SmscSettings` (the same
  model and bounds as ``config/sms.yaml``'s ``sender``). The SMSC itself is not bound here: it may
  be down at 05:00 and ``send_sms`` waits for it with backoff (``docs/runbook.md``).

Runs without Airflow: connections come in as dicts of Airflow's connection fields.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from pydantic import ValidationError

from qz_outbound import config

DATAMART, MARKETING_DB, SMSC = "datamart", "marketing_db", "smsc"
CONNECT_TIMEOUT_S = 10

_SECRET_FIELDS = {"password"}
# fields each connection type needs (Airflow's names; sqlite keeps the file path in host)
_REQUIRED = {"sqlite": ("host",), "postgres": ("host", "login", "schema"), "postgresql": ("host", "login", "schema")}


class PreflightError(ValueError):
    """One or more problems, one per line, each naming where and what."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("configuration check failed:\n  " + "\n  ".join(problems))


@dataclass(frozen=True)
class Connection:
    """The fields of an Airflow connection the checks read (``uri`` as the provider hook builds it)."""

    conn_id: str
    conn_type: str | None
    host: str | None = None
    port: int | None = None
    login: str | None = None
    password: str | None = None
    schema: str | None = None
    extra: Mapping[str, Any] | None = None
    uri: str | None = None


# ---------------------------------------------------------------- config files

def config_file_loaders() -> list[tuple[str, Callable[[], Any]]]:
    """Every file HQ edits, with its loader (each raises ConfigError with file and line)."""
    from qz_outbound import budgets, campaigns, counties, coverage, economics, kpi, outcomes, segmentation, tags, targeting, validation
    from qz_outbound.agent.settings import load_agent_config
    from qz_outbound.learning.values import load_learning_config
    from qz_outbound.learning.evaluation import load_evaluation_config
    from qz_outbound.portal.access import load_portal_config
    from qz_outbound.sms.settings import load_sms_config

    return [
        ("segmentation.yaml", segmentation.load_config),
        ("campaigns/", campaigns.load_library),
        ("tags.yaml", tags.load_tags),
        ("contact_policy.yaml", targeting.load_policy),
        ("channels.yaml", targeting.load_channels),
        ("coverage.yaml", coverage.load_coverage_config),
        ("counties.yaml", counties.county_names),
        ("sms.yaml", load_sms_config),
        ("validation.yaml", validation.load_config),
        ("outcomes.yaml", outcomes.load_outcome_config),
        ("economics.yaml", economics.load_economics_config),
        ("portal.yaml", load_portal_config),
        ("agent_channel.yaml", load_agent_config),
        ("budgets.yaml", budgets.load_budgets),
        ("kpi_targets.yaml", kpi.load_targets),
        ("learning.yaml", load_learning_config),
        ("evaluation.yaml", load_evaluation_config),
    ]


def check_config_files() -> list[str]:
    problems = []
    for _name, load in config_file_loaders():
        try:
            load()
        except config.ConfigError as exc:
            problems += str(exc).splitlines()
    return problems


# ---------------------------------------------------------------- connections

def _missing_fields(conn: Connection) -> list[str]:
    if not conn.conn_type:
        return [f"connection {conn.conn_id}: conn_type: missing (sqlite or postgres)"]
    need = _REQUIRED.get(conn.conn_type)
    if need is None:
        return [f"connection {conn.conn_id}: conn_type: {conn.conn_type!r} is not supported (sqlite or postgres)"]
    return [f"connection {conn.conn_id}: {f}: missing (a {conn.conn_type} connection needs {', '.join(need)})"
            for f in need if not getattr(conn, f)]


def database_engine(conn: Connection):
    """An engine for a database connection, with a connect timeout (nothing connects yet)."""
    from qz_outbound import db

    url = conn.uri
    if not url:
        url = (f"sqlite:///{conn.host}" if conn.conn_type == "sqlite" else
               sa.URL.create("postgresql+psycopg", username=conn.login, password=conn.password, host=conn.host,
                             port=conn.port, database=conn.schema))
    kwargs = {"connect_args": {"connect_timeout": CONNECT_TIMEOUT_S}} \
        if sa.make_url(url).get_backend_name() == "postgresql" else {}
    return db.make_engine(url, **kwargs)


def check_database(conn: Connection, *, at_head: bool = False) -> list[str]:
    """Fields present, the database answers, and (``at_head``) its schema is at the head revision."""
    problems = _missing_fields(conn)
    if problems:
        return problems
    if conn.conn_type == "sqlite" and not Path(conn.host).is_file():
        return [f"connection {conn.conn_id}: host: no SQLite file at {conn.host}"]
    try:
        engine = database_engine(conn)
    except Exception as exc:  # a malformed URL, an unknown driver
        return [f"connection {conn.conn_id}: cannot build an engine: {type(exc).__name__}: {exc}"]
    where = f"{conn.host}" + (f":{conn.port}" if conn.port else "") + (f"/{conn.schema}" if conn.schema else "")
    try:
        with engine.connect() as c:
            c.exec_driver_sql("select 1")
    except sa.exc.SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0] if str(getattr(exc, "orig", exc)).strip() \
            else type(exc).__name__
        engine.dispose()
        return [f"connection {conn.conn_id}: database at {where} unreachable: {reason}"]
    if at_head:
        from qz_outbound import migrations

        try:
            migrations.require_head(engine, conn.conn_id)
        except migrations.SchemaError as exc:
            problems.append(f"connection {conn.conn_id}: {exc}")
    engine.dispose()
    return problems


def _bound(ctx: Mapping[str, Any] | None) -> str:
    """The allowed range of a pydantic error, in words."""
    if not ctx:
        return ""
    words = {"gt": ">", "ge": "≥", "lt": "<", "le": "≤", "min_length": "length ≥", "max_length": "length ≤"}
    parts = [f"{words[k]} {v}" for k, v in ctx.items() if k in words]
    if "expected" in ctx:
        parts.append(f"one of {ctx['expected']}")
    return f"allowed: {', '.join(parts)}" if parts else ""


# where each SmscSettings field lives in the Airflow connection
_SMSC_TOP = {"host": "host", "port": "port", "system_id": "login", "password": "password"}


def check_smsc(conn: Connection) -> list[str]:
    """The ``smsc`` connection builds valid settings (required fields, extras within bounds)."""
    from qz_outbound.sms.settings import SmscSettings, load_sms_config

    extra = dict(conn.extra or {})
    known = set(SmscSettings.model_fields) - set(_SMSC_TOP)
    problems = [f"connection {conn.conn_id}: extra.{k}: unknown field (allowed: {', '.join(sorted(known))})"
                for k in sorted(set(extra) - known)]
    if not conn.port:
        problems.append(f"connection {conn.conn_id}: port: missing (the SMSC's SMPP port, 1-65535)")
    if not conn.login:
        problems.append(f"connection {conn.conn_id}: login: missing (the SMPP system_id)")
    if problems:
        return problems
    account = {k: v for k, v in extra.items() if k in known}
    account.update(host=conn.host or "127.0.0.1", port=conn.port, system_id=conn.login, password=conn.password or "")
    try:
        SmscSettings.from_config(load_sms_config(), **account)
    except ValidationError as exc:
        for err in exc.errors():
            field = str(err["loc"][0]) if err["loc"] else "(connection)"
            where = _SMSC_TOP.get(field, f"extra.{field}")
            got = "" if field in _SECRET_FIELDS or err["type"] == "missing" else f" (got {err.get('input')!r})"
            bound = _bound(err.get("ctx"))
            problems.append(f"connection {conn.conn_id}: {where}: {err['msg']}{got}" + (f"; {bound}" if bound else ""))
    return problems


def check_all(connections: Mapping[str, Connection | None], *, files: bool = True) -> dict:
    """Check the config files and the three connections; raise :class:`PreflightError` listing every
    problem, or return counts for the task's XCom."""
    problems = check_config_files() if files else []
    for conn_id in (DATAMART, MARKETING_DB, SMSC):
        conn = connections.get(conn_id)
        if conn is None:
            problems.append(f"connection {conn_id}: not defined (AIRFLOW_CONN_{conn_id.upper()} or the UI)")
        elif conn_id == SMSC:
            problems += check_smsc(conn)
        else:
            problems += check_database(conn, at_head=conn_id == MARKETING_DB)
    if problems:
        raise PreflightError(problems)
    return {"connections": 3, "config_files": len(config_file_loaders()) if files else 0}
