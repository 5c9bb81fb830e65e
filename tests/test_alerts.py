"""Alerts reach a real webhook (an HTTP server on 127.0.0.1) and a real SMTP server, numbers masked;
a failing task's on_failure_callback sends one through Airflow's connections (dag.test); the
08:00 readiness check names what is missing."""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import json
import socket
import textwrap
import threading
import warnings
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from qz_outbound import alerts

NUMBER = "13912345678"


class Hook:
    """An HTTP server that records every POST (path, headers, JSON body)."""

    def __init__(self, status: int = 200):
        self.received: list[dict] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                hook.received.append({"path": self.path, "headers": dict(self.headers), "body": json.loads(body)})
                self.send_response(status)
                self.end_headers()

            def log_message(self, *_):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class Mailbox:
    """A real SMTP server (the standard library's, Python 3.11) keeping the messages it accepts."""

    def __init__(self):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import asyncore
            import smtpd
        self.messages: list[email.message.EmailMessage] = []
        box = self

        class Server(smtpd.SMTPServer):
            def process_message(self, peer, mailfrom, rcpttos, data, **kwargs):
                msg = email.message_from_bytes(data if isinstance(data, bytes) else data.encode(),
                                               policy=default_policy)
                msg["X-Envelope-To"] = ",".join(rcpttos)
                box.messages.append(msg)

        self.server = Server(("127.0.0.1", 0), None, decode_data=False)
        self.port = self.server.socket.getsockname()[1]
        self._stop = False
        self._asyncore = asyncore

        def loop():
            while not self._stop:
                asyncore.loop(timeout=0.1, count=1)

        self.thread = threading.Thread(target=loop, daemon=True)
        self.thread.start()

    def close(self):
        self._stop = True
        self.thread.join(timeout=5)
        self.server.close()


@pytest.fixture
def hook():
    h = Hook()
    yield h
    h.close()


@pytest.fixture
def mailbox():
    m = Mailbox()
    yield m
    m.close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _alert(**kw):
    base = dict(kind="task_failed", summary="outbound_daily.send_sms[350582 晋江市] failed", dag_id="outbound_daily",
                run_id="scheduled__2026-11-22T21:00:00+00:00", task_id="send_sms", map_index=7,
                label="350582 晋江市", try_number=4, max_tries=4,
                detail=f"IntegrityError: duplicate key (msisdn)=({NUMBER}) and +86{NUMBER[:-1]}9")
    base.update(kw)
    return alerts.Alert(**base)


def test_numbers_are_masked_everywhere_an_alert_goes():
    a = _alert(summary=f"reply from {NUMBER}")
    assert NUMBER not in a.text() and "139****5678" in a.text() and "139****5679" in a.text()
    assert NUMBER not in json.dumps(a.as_dict())
    # not a number: longer digit runs (ids, counts) stay as they are
    assert alerts.mask_numbers("run 1391234567890 rows 13912345678") == "run 1391234567890 rows 139****5678"


def test_deliver_posts_to_webhook_and_mails(hook, mailbox):
    target = alerts.WebhookTarget(url=f"http://127.0.0.1:{hook.port}/alerts", headers={"X-Token": "t0ken"})
    mail = alerts.MailTarget(host="127.0.0.1", port=mailbox.port, sender="airflow@qz.example",
                             recipients=("ops@qz.example", "hq@qz.example"), security="none")
    outcome = alerts.deliver(_alert(), webhook=target, mail=mail)
    assert outcome == {"log": "ok", "webhook": "ok 200", "mail": "ok"}
    (req,) = hook.received
    assert req["path"] == "/alerts" and req["headers"]["X-Token"] == "t0ken"
    assert req["body"]["alert"]["task_id"] == "send_sms" and req["body"]["alert"]["label"] == "350582 晋江市"
    assert "try 4 of 4" in req["body"]["text"] and NUMBER not in json.dumps(req["body"], ensure_ascii=False)
    (msg,) = mailbox.messages
    assert msg["Subject"] == "[qz-outbound] outbound_daily.send_sms[350582 晋江市] failed"
    assert msg["X-Envelope-To"] == "ops@qz.example,hq@qz.example"
    assert "send_sms[350582 晋江市]" in msg.get_content() and NUMBER not in msg.get_content()


def test_robot_style_for_group_chats(hook):
    alerts.deliver(_alert(), webhook=alerts.WebhookTarget(url=f"http://127.0.0.1:{hook.port}/", style="robot"))
    body = hook.received[0]["body"]
    assert body["msgtype"] == "text" and body["text"]["content"].startswith("[qz-outbound] ")


def test_a_dead_target_never_raises(caplog):
    outcome = alerts.deliver(_alert(), webhook=alerts.WebhookTarget(url=f"http://127.0.0.1:{_closed_port()}/", timeout=2),
                             mail=alerts.MailTarget(host="127.0.0.1", port=_closed_port(), sender="a@b",
                                                    recipients=("c@d",), security="none", timeout=2))
    assert outcome["webhook"].startswith("failed") and outcome["mail"].startswith("failed")
    assert any("ALERT" in r.message for r in caplog.records)


def test_webhook_answering_an_error_is_reported_as_failed():
    bad = Hook(status=500)
    try:
        outcome = alerts.deliver(_alert(), webhook=alerts.WebhookTarget(url=f"http://127.0.0.1:{bad.port}/"))
        assert outcome["webhook"] == "failed: HTTPError" and len(bad.received) == 1
    finally:
        bad.close()


def _connections(monkeypatch, hook, mailbox):
    monkeypatch.setenv("AIRFLOW_CONN_ALERT_WEBHOOK", json.dumps({
        "conn_type": "http", "host": "127.0.0.1", "port": hook.port, "schema": "http", "password": "s3cret",
        "extra": {"endpoint": "/qz-alerts"}}))
    monkeypatch.setenv("AIRFLOW_CONN_ALERT_SMTP", json.dumps({
        "conn_type": "smtp", "host": "127.0.0.1", "port": mailbox.port,
        "extra": {"from": "airflow@qz.example", "to": "ops@qz.example", "security": "none"}}))


@pytest.mark.slow
def test_failed_task_alerts_through_airflow_connections(airflow_db, tmp_path, hook, mailbox, monkeypatch):
    """A real DAG whose task fails on its only try: its on_failure_callback reads alert_webhook and
    alert_smtp from Airflow's connections and sends the alert (run in-process by dag.test)."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db
    from airflow.utils.state import DagRunState

    _connections(monkeypatch, hook, mailbox)
    (tmp_path / "failing.py").write_text(textwrap.dedent(f"""
        import pendulum
        from airflow.sdk import dag, task
        from qz_alerts import on_task_failure

        @dag(dag_id="alert_probe", schedule=None, start_date=pendulum.datetime(2026, 11, 1),
             default_args={{"owner": "ops", "retries": 0, "on_failure_callback": on_task_failure}})
        def alert_probe():
            @task
            def breaks():
                raise ValueError("customer {NUMBER} broke it")
            breaks()

        dag = alert_probe()
    """))
    # dag.test() serializes only the configured DAG folder: the probe's folder is synced as that bundle
    DagBundlesManager().sync_bundles_to_db()
    bag = DagBag(dag_folder=str(tmp_path))
    sync_bag_to_db(bag, "dags-folder", None)
    dag = bag.dags["alert_probe"]
    run = dag.test(logical_date=dt.datetime(2026, 11, 22, 21, tzinfo=dt.timezone.utc))
    assert run.state == DagRunState.FAILED
    (req,) = hook.received
    assert req["path"] == "/qz-alerts" and req["headers"]["Authorization"] == "Bearer s3cret"
    a = req["body"]["alert"]
    assert (a["kind"], a["dag_id"], a["task_id"], a["try_number"], a["max_tries"]) == \
        ("task_failed", "alert_probe", "breaks", 1, 1)
    assert a["detail"] == "ValueError: customer 139****5678 broke it"
    assert a["logical_date"].startswith("2026-11-22T21:00")
    (msg,) = mailbox.messages
    assert msg["Subject"] == "[qz-outbound] alert_probe.breaks failed" and NUMBER not in msg.get_content()


def test_deadline_callback_alerts(hook, mailbox, monkeypatch):
    """The coroutine a Deadline Alert runs in the triggerer, given the context the scheduler sends."""
    import qz_alerts

    _connections(monkeypatch, hook, mailbox)
    context = {"dag_run": {"dag_id": "outbound_daily", "dag_run_id": "manual__x", "state": "running",
                           "logical_date": "2026-11-22T21:00:00Z"},
               "deadline": {"id": "d1", "deadline_time": "2026-11-23T12:30:00+00:00"}}
    outcome = asyncio.run(qz_alerts.on_deadline_missed(context=context, stage="the whole cycle", due="20:30"))
    assert outcome == "log ok; webhook ok 200; mail ok"   # a string: Airflow keeps it in a VARCHAR column
    a = hook.received[0]["body"]["alert"]
    assert a["kind"] == "deadline_missed" and a["summary"] == "outbound_daily: the whole cycle not finished by 20:30"
    assert "running" in a["detail"]
    # a past day re-run by hand is queued after its deadline: said so, not mistaken for today's cycle
    context["dag_run"]["queued_at"] = "2026-11-30T04:00:00Z"
    asyncio.run(qz_alerts.on_deadline_missed(context=context, stage="the whole cycle", due="20:30"))
    assert hook.received[1]["body"]["alert"]["summary"].endswith("(a re-run queued after its deadline)")


def test_without_alert_connections_an_alert_is_only_logged(monkeypatch, caplog):
    import qz_alerts

    monkeypatch.delenv("AIRFLOW_CONN_ALERT_WEBHOOK", raising=False)
    monkeypatch.delenv("AIRFLOW_CONN_ALERT_SMTP", raising=False)
    assert qz_alerts.notify(_alert()) == {"log": "ok"}


def test_readiness_names_what_is_missing(tmp_path, monkeypatch):
    from cycle_support import published_cycle
    from qz_outbound import call_lists, clock, counties, db, readiness

    day = dt.date(2026, 11, 23)
    monkeypatch.setenv("QZ_OUTPUT_DIR", str(tmp_path / "out"))
    engine = db.make_engine(f"sqlite:///{tmp_path / 'mk.db'}")
    assert readiness.lists_missing(engine, day)[0] == "segmentation"
    clock.set_now(dt.datetime(2026, 11, 23, 5, 30))
    try:
        codes = list(counties.county_names())
        library = published_cycle(engine, day, 1500, counties_to_publish=codes[:-1])
        for code in codes[:-2]:
            call_lists.write_call_lists(engine, day, code, library)
    finally:
        clock.set_now(None)
    missing = readiness.lists_missing(engine, day)
    last, second = counties.label(codes[-1]), counties.label(codes[-2])
    assert missing == [f"call list {second}", f"publish {last}", f"call list {last}"]
