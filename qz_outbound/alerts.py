"""Alerts to the people who run the cycle: what failed or is late, sent where they will see it.

An alert is logged always, then posted to a webhook (JSON, or a WeCom/DingTalk-style robot's
``text`` message) and/or mailed, when those targets are configured. Airflow-free: the Airflow
side (``plugins/qz_alerts.py``) reads the targets from the connections ``alert_webhook`` and
``alert_smtp`` and builds alerts from a task's or a deadline's context.

An alert carries ids, counts and an error's first line only; anything in it that looks like a
customer's number is masked (an exception text may quote one), because alerts land in chat
groups and mailboxes wider than the data's audience. Delivering an alert never raises: a dead
webhook must not hide the failure it reports (its own failure is logged).
"""

from __future__ import annotations

import json
import logging
import smtplib
import ssl
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from email.message import EmailMessage

from qz_outbound.phone import mask_numbers

log = logging.getLogger(__name__)

DETAIL_MAX = 1200   # a late-stage alert lists every county that is missing


@dataclass(frozen=True)
class Alert:
    """What went wrong, where, and where to look.

    ``kind``: task_failed | deadline_missed | stage_late | sms_in_doubt | campaign_held (validation
    held back a campaign's rows; the rest of the cycle went on) | budget (a campaign's monthly budget
    passed 80% or 100%: docs/budgets-kpi.md) | campaign_paused (a campaign's ROI is negative with
    confidence and the auto-pause took it out of the next cycles: docs/learning.md)."""

    kind: str
    summary: str
    dag_id: str
    run_id: str | None = None
    task_id: str | None = None
    map_index: int | None = None
    label: str | None = None          # a mapped task's readable name (the county)
    try_number: int | None = None
    max_tries: int | None = None
    logical_date: str | None = None
    detail: str = ""
    url: str | None = None

    def __post_init__(self):
        detail = mask_numbers(self.detail or "")
        if len(detail) > DETAIL_MAX:
            detail = detail[:DETAIL_MAX - 1] + "…"
        object.__setattr__(self, "detail", detail)
        object.__setattr__(self, "summary", mask_numbers(self.summary))

    @property
    def subject(self) -> str:
        return f"[qz-outbound] {self.summary}"

    def text(self) -> str:
        lines = [self.subject, f"dag: {self.dag_id}"]
        if self.run_id:
            lines.append(f"run: {self.run_id}" + (f" (logical date {self.logical_date})" if self.logical_date else ""))
        if self.task_id:
            where = self.task_id + (f"[{self.label or self.map_index}]" if self.map_index not in (None, -1) else "")
            tries = f", try {self.try_number} of {self.max_tries}" if self.try_number and self.max_tries else ""
            lines.append(f"task: {where}{tries}")
        if self.detail:
            lines.append(f"error: {self.detail}")
        if self.url:
            lines.append(f"log: {self.url}")
        return "\n".join(lines)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class WebhookTarget:
    url: str
    headers: dict = field(default_factory=dict)
    style: str = "json"      # json: {"text": ..., "alert": {...}} | robot: {"msgtype": "text", "text": {"content": ...}}
    timeout: float = 10.0


@dataclass(frozen=True)
class MailTarget:
    host: str
    port: int
    sender: str
    recipients: tuple[str, ...]
    login: str | None = None
    password: str | None = None
    security: str = "starttls"   # starttls | ssl | none
    timeout: float = 20.0


def post_webhook(target: WebhookTarget, alert: Alert) -> int:
    """POST the alert; returns the HTTP status (raises on a network error or a 4xx/5xx)."""
    if target.style == "robot":
        body = {"msgtype": "text", "text": {"content": alert.text()}}
    else:
        body = {"text": alert.text(), "alert": alert.as_dict()}
    req = urllib.request.Request(target.url, data=json.dumps(body, ensure_ascii=False).encode(), method="POST",
                                 headers={"Content-Type": "application/json; charset=utf-8", **target.headers})
    with urllib.request.urlopen(req, timeout=target.timeout) as resp:
        return resp.status


def send_mail(target: MailTarget, alert: Alert) -> None:
    msg = EmailMessage()
    msg["Subject"] = alert.subject
    msg["From"] = target.sender
    msg["To"] = ", ".join(target.recipients)
    msg.set_content(alert.text())
    if target.security == "ssl":
        smtp = smtplib.SMTP_SSL(target.host, target.port, timeout=target.timeout, context=ssl.create_default_context())
    else:
        smtp = smtplib.SMTP(target.host, target.port, timeout=target.timeout)
    with smtp:
        if target.security == "starttls":
            smtp.starttls(context=ssl.create_default_context())
        if target.login:
            smtp.login(target.login, target.password or "")
        smtp.send_message(msg)


def deliver(alert: Alert, webhook: WebhookTarget | None = None, mail: MailTarget | None = None) -> dict[str, str]:
    """Log the alert and send it to each target given; returns what happened per target. Never raises."""
    log.error("ALERT %s", alert.text().replace("\n", " | "))
    outcome = {"log": "ok"}
    if webhook is not None:
        try:
            outcome["webhook"] = f"ok {post_webhook(webhook, alert)}"
        except (OSError, urllib.error.URLError, ValueError) as exc:
            outcome["webhook"] = f"failed: {type(exc).__name__}"
            log.warning("alert webhook failed (%s: %s)", type(exc).__name__, exc)
    if mail is not None:
        try:
            send_mail(mail, alert)
            outcome["mail"] = "ok"
        except (OSError, smtplib.SMTPException, ValueError) as exc:
            outcome["mail"] = f"failed: {type(exc).__name__}"
            log.warning("alert mail failed (%s: %s)", type(exc).__name__, exc)
    return outcome
