"""Airflow side of alerts: the targets from connections, alerts from a task's or a deadline's context.

* ``on_task_failure(context)``: every task's ``on_failure_callback`` (DAG ``default_args``); runs in
  the worker after the task's last try failed.
* ``on_deadline_missed(context, **kwargs)``: the coroutine an Airflow Deadline Alert calls in the
  triggerer when a DAG run has not finished by its deadline (``AsyncCallback``).
* ``notify(alert)``: log, then the webhook and/or the mail configured.

Connections (both optional; without them an alert is only logged):

* ``alert_webhook`` (type ``http``): ``host``, ``schema`` (https), ``port``, extras ``endpoint``
  (path), ``headers`` (dict), ``style`` (``json``, or ``robot`` for a WeCom/DingTalk group robot);
  a ``password`` without ``login`` is sent as ``Authorization: Bearer <password>``.
* ``alert_smtp`` (type ``smtp``): ``host``, ``port``, ``login``, ``password``, extras ``from``,
  ``to`` (comma-separated), ``security`` (``starttls`` | ``ssl`` | ``none``).

Imported by DAG files at parse time: nothing here touches a connection until an alert is sent.
"""

from __future__ import annotations

import asyncio
import logging

ALERT_WEBHOOK = "alert_webhook"
ALERT_SMTP = "alert_smtp"

log = logging.getLogger(__name__)


def _connection(conn_id: str):
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None


def webhook_target(conn):
    from qz_outbound.alerts import WebhookTarget

    extra = conn.extra_dejson or {}
    scheme = conn.schema or "https"
    host = conn.host or ""
    if "://" in host:                      # a full URL given as the host
        base = host.rstrip("/")
    else:
        base = f"{scheme}://{host}" + (f":{conn.port}" if conn.port else "")
    endpoint = extra.get("endpoint", "")
    url = base + (endpoint if not endpoint or endpoint.startswith("/") else "/" + endpoint)
    headers = dict(extra.get("headers") or {})
    if conn.password and not conn.login:
        headers.setdefault("Authorization", f"Bearer {conn.password}")
    elif conn.login:
        import base64

        token = base64.b64encode(f"{conn.login}:{conn.password or ''}".encode()).decode()
        headers.setdefault("Authorization", f"Basic {token}")
    return WebhookTarget(url=url, headers=headers, style=extra.get("style", "json"),
                         timeout=float(extra.get("timeout", 10)))


def mail_target(conn):
    from qz_outbound.alerts import MailTarget

    extra = conn.extra_dejson or {}
    recipients = tuple(a.strip() for a in str(extra.get("to", "")).split(",") if a.strip())
    if not recipients:
        raise ValueError("connection alert_smtp has no recipients (extra 'to')")
    return MailTarget(host=conn.host, port=int(conn.port or 25), login=conn.login or None,
                      password=conn.password or None, sender=extra.get("from", "qz-outbound@localhost"),
                      recipients=recipients, security=extra.get("security", "starttls"),
                      timeout=float(extra.get("timeout", 20)))


def notify(alert) -> dict[str, str]:
    """Log the alert and send it to the configured targets; never raises."""
    from qz_outbound.alerts import deliver

    webhook = mail = None
    try:
        conn = _connection(ALERT_WEBHOOK)
        webhook = webhook_target(conn) if conn else None
    except Exception as exc:  # a broken alert connection must not hide the alert itself
        log.warning("connection %s unusable (%s)", ALERT_WEBHOOK, type(exc).__name__)
    try:
        conn = _connection(ALERT_SMTP)
        mail = mail_target(conn) if conn else None
    except Exception as exc:
        log.warning("connection %s unusable (%s)", ALERT_SMTP, type(exc).__name__)
    return deliver(alert, webhook=webhook, mail=mail)


def task_failure_alert(context):
    """An :class:`~qz_outbound.alerts.Alert` for a failed task instance's context."""
    from qz_outbound.alerts import Alert

    ti = context.get("ti") or context.get("task_instance")
    dag_run = context.get("dag_run")
    exc = context.get("exception")
    detail = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}" if exc else ""
    logical = getattr(dag_run, "logical_date", None)
    task = getattr(ti, "task", None)
    label = getattr(ti, "rendered_map_index", None)
    where = ti.task_id + (f"[{label}]" if label else "")
    return Alert(
        kind="task_failed",
        summary=f"{ti.dag_id}.{where} failed",
        dag_id=ti.dag_id, run_id=ti.run_id, task_id=ti.task_id,
        map_index=getattr(ti, "map_index", None), label=label,
        try_number=getattr(ti, "try_number", None),
        max_tries=(getattr(task, "retries", 0) or 0) + 1 if task is not None else None,
        logical_date=logical.isoformat() if logical else None,
        detail=detail, url=getattr(ti, "log_url", None),
    )


def on_task_failure(context) -> None:
    """``on_failure_callback`` of every task (the last try failed)."""
    try:
        alert = task_failure_alert(context)
    except Exception as exc:  # never let the alert's own bug replace the task's error in the log
        log.exception("could not build the failure alert (%s)", type(exc).__name__)
        return
    notify(alert)


def _after(a, b) -> bool:
    import datetime as dt

    def parse(v):
        if isinstance(v, dt.datetime):
            return v
        return dt.datetime.fromisoformat(str(v).replace("Z", "+00:00"))

    try:
        return a is not None and b is not None and parse(a) > parse(b)
    except ValueError:
        return False


def deadline_alert(context, stage: str, due: str):
    from qz_outbound.alerts import Alert

    dag_run = (context or {}).get("dag_run") or {}
    deadline = (context or {}).get("deadline") or {}
    summary = f"{dag_run.get('dag_id', '?')}: {stage} not finished by {due}"
    if _after(dag_run.get("queued_at"), deadline.get("deadline_time")):
        summary += " (a re-run queued after its deadline)"   # a past day re-run by hand: late by definition
    return Alert(
        kind="deadline_missed",
        summary=summary,
        dag_id=dag_run.get("dag_id", "?"), run_id=dag_run.get("dag_run_id"),
        logical_date=dag_run.get("logical_date"),
        detail=f"run state {dag_run.get('state')} at the deadline {deadline.get('deadline_time')}",
    )


async def on_deadline_missed(context=None, stage: str = "the cycle", due: str = "its deadline", **_) -> str:
    """A Deadline Alert's callback (runs in the triggerer): the run is late.

    Returns a string: Airflow 3.3.2 stores the return value in a VARCHAR column, and anything else
    (a dict) fails that update and stops the whole triggerer."""
    alert = deadline_alert(context, stage, due)
    outcome = await asyncio.to_thread(notify, alert)
    return "; ".join(f"{target} {result}" for target, result in outcome.items())
