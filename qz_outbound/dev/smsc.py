"""A development SMSC on smpp34: the embedded default, the tests' peer and Jasmin's upstream.

smpp34 (a maintained SMPP 3.4 server library) does the protocol; this module
is the SMSC's behaviour on top:

* every submit_sm is acknowledged with a unique message id, as hexadecimal or
  decimal (``id_format``), and a delivery receipt follows for each part when
  asked for (``registered_delivery``) after ``receipt_delay`` seconds:
  ``DELIVRD`` with probability ``delivery_rate``, else one of ``fail_states``.
  The receipt can quote the id in the other base (``receipt_id_form``);
* receipts and replies go to a receiving bind of the same system_id and are
  kept, and offered again, until acknowledged: a receiver that restarts loses
  nothing. Bind as transceiver: smpp34 1.5.0 does not match a deliver_sm_resp
  that arrives on a bind_receiver session (seen here), so there every
  deliver_sm would be offered again forever;
* replies (MO) are injected over HTTP (``POST /mo``), from the command line
  (``python -m qz_outbound.dev.smsc inject``) or in-process
  (:meth:`DevSmsc.inject_mo`);
* ``throttle_rate``: more accepted submits than that within one second are
  answered ESME_RTHROTTLED;
* faults: ``response_delay`` delays every submit_sm_resp; ``drop_after`` cuts
  the TCP connection when that many submits have passed (through a small
  relay in front of the server, so the cut is a real one);
* the handset view: parts are reassembled by their UDH reference into the
  messages customers see (:meth:`DevSmsc.handset_messages`).

Everything listens on 127.0.0.1. Run it alone with
``python -m qz_outbound.dev.smsc serve --port 2775 --http-port 8775``.
"""

from __future__ import annotations

from qz_outbound.sms.limiter import max_in_any_second
import argparse
import asyncio
import collections
import datetime as dt
import itertools
import json
import logging
import os
import random
import signal
import struct
import sys
import threading
import time
import urllib.request
from concurrent.futures import Future
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import smpp34

log = logging.getLogger(__name__)

MESSAGE_STATE_CODES = {"DELIVRD": 2, "EXPIRED": 3, "DELETED": 4, "UNDELIV": 5, "ACCEPTD": 6, "UNKNOWN": 7, "REJECTD": 8}


@dataclass
class Behaviour:
    """What the SMSC does; every field can be changed while it runs (:meth:`DevSmsc.configure`)."""

    id_format: str = "hex"              # 'hex' | 'decimal': message ids in submit_sm_resp
    receipt_id_form: str = "same"       # 'same' | 'hex' | 'decimal': the id as quoted in receipts
    delivery_rate: float = 1.0          # share of parts whose receipt says DELIVRD
    fail_states: tuple[str, ...] = ("UNDELIV", "EXPIRED")
    receipt_delay: float = 0.0          # seconds from accept to receipt
    throttle_rate: float | None = None  # accepted submits per second before ESME_RTHROTTLED
    response_delay: float = 0.0         # seconds before each submit_sm_resp
    drop_after: int | None = None       # pass this many more submits, cut the connection at the next (once)
    reject_numbers: tuple[str, ...] = ()  # destinations refused with ESME_RINVDSTADR


@dataclass
class Submit:
    """One submit_sm as the SMSC saw it."""

    at: float                   # time.monotonic() on arrival
    wall: float                 # time.time() on arrival
    system_id: str
    session_id: str
    destination: str
    source: str
    esm_class: int
    data_coding: int
    registered_delivery: int
    payload: bytes
    status: str = "pending"     # accepted | throttled | rejected
    message_id: str | None = None


@dataclass
class _Outbound:
    """A deliver_sm waiting for a receiving bind to acknowledge it."""

    system_id: str
    prefer_session: str | None
    kwargs: dict
    done: Future = field(default_factory=Future)
    attempts: int = 0


def _udh_key(payload: bytes, esm_class: int):
    """(ref, total, seq) from a concatenation UDH, or None."""
    if not esm_class & 0x40 or not payload:
        return None
    udhl = payload[0]
    udh = payload[1:1 + udhl]
    i = 0
    while i + 2 <= len(udh):
        iei, iel = udh[i], udh[i + 1]
        data = udh[i + 2:i + 2 + iel]
        if iei == 0x00 and iel == 3:
            return data[0], data[1], data[2]
        if iei == 0x08 and iel == 4:
            return (data[0] << 8) | data[1], data[2], data[3]
        i += 2 + iel
    return None


def _text_of(payload: bytes, esm_class: int, data_coding: int) -> str:
    if esm_class & 0x40 and payload:
        payload = payload[1 + payload[0]:]
    if data_coding == 8:
        return payload.decode("utf-16-be", errors="replace")
    return payload.decode("latin-1")


class DevSmsc:
    """The development SMSC. ``start()`` runs it in a background thread; ``stop()`` ends it."""

    def __init__(self, port: int = 0, http_port: int | None = None, system_id: str = "QZDEV",
                 behaviour: Behaviour | None = None, host: str = "127.0.0.1", fault_relay: bool = True,
                 seed: int | None = None):
        self.host = host
        self.port = port                      # public port (the relay, or the server itself)
        self.http_port = http_port
        self.system_id = system_id
        self.behaviour = behaviour or Behaviour()
        self.fault_relay = fault_relay
        self.rng = random.Random(seed)
        self.submits: list[Submit] = []
        self.delivered: list[dict] = []       # deliver_sm acknowledged by an ESME
        self.binds: list[dict] = []
        self._ids = itertools.count(random.Random(seed).randint(10_000_000, 90_000_000))
        self._accepted_times: collections.deque[float] = collections.deque()
        self._sessions: dict[str, Any] = {}   # session_id -> smpp34.Esme
        self._session_system: dict[str, str] = {}
        self._outq: dict[str, asyncio.Queue] = {}
        self._relay_conns: set = set()
        self._submit_counter = 0
        self._unanswered: collections.Counter = collections.Counter()   # per session
        self.max_unanswered = 0                                        # the window a client used
        self._drop_mark: int | None = None
        self._lock = threading.RLock()  # predicates of wait_for() call the accessors
        self._cond = threading.Condition(self._lock)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._http: ThreadingHTTPServer | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._server = None
        self._relay = None
        self.inner_port: int | None = None

    # ------------------------------------------------------------ lifecycle

    def start(self) -> "DevSmsc":
        self._thread = threading.Thread(target=self._thread_main, name="devsmsc", daemon=True)
        self._thread.start()
        if not self._started.wait(15) or self._error:
            raise RuntimeError(f"development SMSC did not start: {self._error}")
        if self.http_port is not None:
            self._start_http()
        return self

    def stop(self) -> None:
        if self._http:
            self._http.shutdown()
            self._http.server_close()
        if self._loop and self._thread and self._thread.is_alive():
            fut = asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop)
            try:
                fut.result(6)
            except Exception:  # pragma: no cover - best effort
                log.warning("development SMSC did not stop cleanly")
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _thread_main(self) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._startup())
        except BaseException as exc:  # pragma: no cover - reported by start()
            self._error = exc
            self._started.set()
            return
        self._started.set()
        self._loop.run_forever()
        self._loop.close()

    async def _startup(self) -> None:
        inner = self.port if not self.fault_relay else 0
        if inner == 0:
            inner = _free_port()
        self.inner_port = inner
        self._server = smpp34.Server(host=self.host, port=inner, system_id=self.system_id)
        await self._server.start()
        asyncio.ensure_future(self._events())
        if self.fault_relay:
            self._relay = await asyncio.start_server(self._relay_client, self.host, self.port)
            self.port = self._relay.sockets[0].getsockname()[1]
        else:
            self.port = inner

    async def _shutdown(self) -> None:
        if self._relay:
            self._relay.close()
        for w in list(self._relay_conns):
            w.transport.abort()
        try:
            await asyncio.wait_for(self._server.stop(), 3)
        except Exception:  # pragma: no cover - stopping anyway
            pass
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # ------------------------------------------------------------ SMPP events

    async def _events(self) -> None:
        while True:
            try:
                ev = await self._server.next()
            except Exception as exc:  # the server stopped
                log.debug("server events ended: %s", exc)
                return
            if isinstance(ev, smpp34.Esme):
                self._sessions[ev.session_id] = ev
                self._session_system[ev.session_id] = ev.system_id
                with self._cond:
                    self.binds.append(dict(system_id=ev.system_id, session_id=ev.session_id,
                                           can_receive=ev.can_receive, at=time.monotonic()))
                    self._cond.notify_all()
                self._queue(ev.system_id)  # wake the deliverer of that account
            elif isinstance(ev, smpp34.Unbound):
                self._sessions.pop(ev.session_id, None)
            elif isinstance(ev, smpp34.SubmitSmEvent):
                self._on_submit(ev)

    def _on_submit(self, ev) -> None:
        b = self.behaviour
        now = time.monotonic()
        sub = Submit(at=now, wall=time.time(), system_id=self._session_system.get(ev.session_id, ""),
                     session_id=ev.session_id, destination=ev.destination_addr, source=ev.source_addr,
                     esm_class=ev.esm_class, data_coding=ev.data_coding,
                     registered_delivery=ev.registered_delivery, payload=bytes(ev.short_message))
        if b.throttle_rate:
            while self._accepted_times and now - self._accepted_times[0] >= 1.0:
                self._accepted_times.popleft()
            if len(self._accepted_times) >= b.throttle_rate:
                sub.status = "throttled"
        if sub.status == "pending" and sub.destination in b.reject_numbers:
            sub.status = "rejected"
        if sub.status == "pending":
            sub.status = "accepted"
            n = next(self._ids)
            sub.message_id = format(n, "X") if b.id_format == "hex" else str(n)
            if b.throttle_rate:
                self._accepted_times.append(now)
        with self._cond:
            self.submits.append(sub)
            self._unanswered[ev.session_id] += 1
            self.max_unanswered = max(self.max_unanswered, self._unanswered[ev.session_id])
            self._cond.notify_all()
        if b.response_delay > 0:
            asyncio.ensure_future(self._answer_later(ev, sub, b.response_delay))
        else:
            self._answer(ev, sub)

    async def _answer_later(self, ev, sub: Submit, delay: float) -> None:
        await asyncio.sleep(delay)
        self._answer(ev, sub)

    def _answer(self, ev, sub: Submit) -> None:
        with self._lock:
            self._unanswered[sub.session_id] -= 1
        if sub.status == "throttled":
            ev.reject(smpp34.ESME_RTHROTTLED)
            return
        if sub.status == "rejected":
            ev.reject(smpp34.ESME_RINVDSTADR)
            return
        ev.accept(message_id=sub.message_id)
        if sub.registered_delivery & 0x03:
            delivered = self.rng.random() < self.behaviour.delivery_rate
            stat = "DELIVRD" if delivered else self.rng.choice(self.behaviour.fail_states)
            if sub.registered_delivery & 0x03 == 2 and delivered:
                return  # receipts on failure only
            delay = self.behaviour.receipt_delay
            if delay > 0:
                self._loop.call_later(delay, self._send_receipt, sub, stat)
            else:
                self._send_receipt(sub, stat)

    def _receipt_id(self, sub: Submit) -> str:
        form = self.behaviour.receipt_id_form
        n = int(sub.message_id, 16) if self.behaviour.id_format == "hex" else int(sub.message_id)
        if form == "same":
            return sub.message_id
        return format(n, "X") if form == "hex" else str(n)

    def _send_receipt(self, sub: Submit, stat: str) -> None:
        rid = self._receipt_id(sub)
        stamp = dt.datetime.now().strftime("%y%m%d%H%M")
        text = _text_of(sub.payload, sub.esm_class, sub.data_coding)[:20].encode("ascii", "replace").decode()
        body = (f"id:{rid} sub:001 dlvrd:{'001' if stat == 'DELIVRD' else '000'} submit date:{stamp} "
                f"done date:{stamp} stat:{stat} err:{'000' if stat == 'DELIVRD' else '001'} text:{text}")
        kwargs = dict(destination_addr=sub.source, short_message=body.encode(), source_addr=sub.destination,
                      esm_class=0x04,
                      tlvs=[smpp34.Tlv(smpp34.TLV_RECEIPTED_MESSAGE_ID, rid.encode() + b"\x00"),
                            smpp34.Tlv(smpp34.TLV_MESSAGE_STATE, bytes([MESSAGE_STATE_CODES[stat]]))])
        self._enqueue(_Outbound(sub.system_id, sub.session_id, kwargs))

    # ------------------------------------------------------------ deliver_sm to ESMEs

    def _queue(self, system_id: str) -> asyncio.Queue:
        q = self._outq.get(system_id)
        if q is None:
            q = self._outq[system_id] = asyncio.Queue()
            for _ in range(32):   # deliver_sm in flight per account
                asyncio.ensure_future(self._deliverer(system_id, q))
        return q

    def _enqueue(self, item: _Outbound) -> None:
        self._queue(item.system_id).put_nowait(item)

    def _receiving_session(self, system_id: str, prefer: str | None):
        if prefer and prefer in self._sessions and self._sessions[prefer].can_receive:
            return self._sessions[prefer]
        candidates = [e for sid, e in self._sessions.items()
                      if e.can_receive and self._session_system.get(sid) == system_id]
        return self.rng.choice(candidates) if candidates else None

    async def _deliverer(self, system_id: str, q: asyncio.Queue) -> None:
        while True:
            item = await q.get()
            esme = self._receiving_session(system_id, item.prefer_session)
            if esme is None:
                await asyncio.sleep(0.05)   # nobody to take it yet: keep it
                q.put_nowait(item)
                continue
            item.attempts += 1
            try:
                resp = await asyncio.wait_for(esme.deliver_sm(**item.kwargs), 10)
                ok = resp.is_success
            except Exception:  # the bind went away before acknowledging
                ok = False
            if ok:
                with self._cond:
                    self.delivered.append(dict(system_id=system_id, session_id=esme.session_id,
                                               esm_class=item.kwargs.get("esm_class", 0),
                                               source_addr=item.kwargs.get("source_addr"),
                                               attempts=item.attempts))
                    self._cond.notify_all()
                if not item.done.done():
                    item.done.set_result(True)
            else:
                await asyncio.sleep(0.1)
                q.put_nowait(item)        # offered again until acknowledged

    # ------------------------------------------------------------ fault relay

    async def _relay_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(self.host, self.inner_port)
        except OSError:
            writer.transport.abort()
            return
        self._relay_conns.update({writer, up_writer})

        def cut():
            writer.transport.abort()
            up_writer.transport.abort()

        async def client_to_server():
            buf = b""
            try:
                while True:
                    data = await reader.read(65536)
                    if not data:
                        break
                    buf += data
                    out = bytearray()
                    while len(buf) >= 8:
                        length, command_id = struct.unpack_from(">LL", buf, 0)
                        if len(buf) < length:
                            break
                        if command_id == 0x00000004:
                            with self._lock:
                                self._submit_counter += 1
                                b = self.behaviour
                                if b.drop_after is not None and self._drop_mark is None:
                                    self._drop_mark = self._submit_counter + b.drop_after
                                if self._drop_mark is not None and self._submit_counter >= self._drop_mark:
                                    self._drop_mark = None
                                    b.drop_after = None
                                    drop = True
                                else:
                                    drop = False
                            if drop:
                                if out:
                                    up_writer.write(bytes(out))
                                    await up_writer.drain()
                                log.info("fault injection: connection dropped")
                                cut()
                                return
                        out += buf[:length]
                        buf = buf[length:]
                    if out:
                        up_writer.write(bytes(out))
                        await up_writer.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                cut()

        async def server_to_client():
            try:
                while True:
                    data = await up_reader.read(65536)
                    if not data:
                        break
                    writer.write(data)
                    await writer.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                cut()

        try:
            await asyncio.gather(client_to_server(), server_to_client())
        except asyncio.CancelledError:
            cut()  # the SMSC is stopping
        finally:
            self._relay_conns.discard(writer)
            self._relay_conns.discard(up_writer)

    # ------------------------------------------------------------ public API (thread-safe)

    def configure(self, **changes) -> None:
        """Change behaviour while running (e.g. ``throttle_rate=100``, ``drop_after=50``)."""
        with self._lock:
            for k, v in changes.items():
                if not hasattr(self.behaviour, k):
                    raise AttributeError(f"unknown behaviour {k!r}")
                if k in ("fail_states", "reject_numbers") and v is not None:
                    v = tuple(v)
                setattr(self.behaviour, k, v)
            if "drop_after" in changes:
                self._drop_mark = None

    def inject_mo(self, source_addr: str, text: str, *, system_id: str | None = None,
                  destination_addr: str = "10658") -> Future:
        """Send a customer's reply to a receiving bind; the future resolves when it is acknowledged."""
        sid = system_id or self._default_system()
        try:
            payload = text.encode("ascii")
            dc = 0
        except UnicodeEncodeError:
            payload = text.encode("utf-16-be")
            dc = 8
        item = _Outbound(sid, None, dict(destination_addr=destination_addr, short_message=payload,
                                         source_addr=source_addr, esm_class=0x00, data_coding=dc))
        self._loop.call_soon_threadsafe(self._enqueue, item)
        return item.done

    def _default_system(self) -> str:
        with self._lock:
            ids = [b["system_id"] for b in self.binds]
        if not ids:
            raise RuntimeError("no ESME has bound yet: give system_id")
        return ids[-1]

    def wait_for(self, predicate, timeout: float = 30.0) -> bool:
        """Block until ``predicate(self)`` is true (re-checked on every submit, bind and ack)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.2))
        return True

    def accepted(self) -> list[Submit]:
        with self._lock:
            return [s for s in self.submits if s.status == "accepted"]

    def handset_messages(self) -> list[dict]:
        """What customers' handsets show: accepted parts joined by UDH reference."""
        with self._lock:
            subs = [s for s in self.submits if s.status == "accepted"]
        singles, groups = [], collections.OrderedDict()
        for s in subs:
            key = _udh_key(s.payload, s.esm_class)
            if key is None:
                singles.append(dict(msisdn=s.destination, text=_text_of(s.payload, s.esm_class, s.data_coding),
                                    parts=1, complete=True))
                continue
            ref, total, seq = key
            g = groups.setdefault((s.destination, ref, total), {})
            g.setdefault(seq, []).append(s)
        out = list(singles)
        for (msisdn, _ref, total), parts in groups.items():
            complete = sorted(parts) == list(range(1, total + 1))
            text = "".join(_text_of(parts[i][0].payload, 0x40, parts[i][0].data_coding) for i in sorted(parts))
            out.append(dict(msisdn=msisdn, text=text, parts=total, complete=complete,
                            duplicates=sum(len(v) - 1 for v in parts.values())))
        return out

    def max_per_second(self, statuses=("accepted", "throttled", "rejected")) -> int:
        """The most submits that arrived within any one second (sliding)."""
        with self._lock:
            times = [s.at for s in self.submits if s.status in statuses]
        return max_in_any_second(times)

    def stats(self) -> dict:
        with self._lock:
            counts = collections.Counter(s.status for s in self.submits)
            return dict(port=self.port, submits=len(self.submits), accepted=counts["accepted"],
                        throttled=counts["throttled"], rejected=counts["rejected"],
                        delivered=len(self.delivered),
                        receipts_acked=sum(1 for d in self.delivered if d["esm_class"] & 0x04),
                        replies_acked=sum(1 for d in self.delivered if not d["esm_class"] & 0x04),
                        binds=len(self.binds), sessions=len(self._sessions),
                        max_unanswered=self.max_unanswered)

    # ------------------------------------------------------------ HTTP control

    def _start_http(self) -> None:
        smsc = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # no request logs (they would carry numbers)
                pass

            def _json(self, code: int, body) -> None:
                data = json.dumps(body, ensure_ascii=False).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                if self.path == "/stats":
                    return self._json(200, smsc.stats())
                if self.path == "/messages":
                    return self._json(200, smsc.handset_messages())
                if self.path == "/arrivals":
                    with smsc._lock:
                        return self._json(200, [s.at for s in smsc.submits])
                return self._json(404, {"error": "GET /stats, /messages or /arrivals"})

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    body = json.loads(self.rfile.read(length) or b"{}")
                except ValueError:
                    return self._json(400, {"error": "JSON body expected"})
                if self.path == "/mo":
                    try:
                        fut = smsc.inject_mo(str(body["source_addr"]), str(body["text"]),
                                             system_id=body.get("system_id"),
                                             destination_addr=str(body.get("destination_addr", "10658")))
                    except (KeyError, RuntimeError) as exc:
                        return self._json(400, {"error": str(exc)})
                    if body.get("wait", True):
                        try:
                            fut.result(float(body.get("timeout", 30)))
                        except Exception:
                            return self._json(504, {"acknowledged": False})
                        return self._json(200, {"acknowledged": True})
                    return self._json(202, {"queued": True})
                if self.path == "/config":
                    try:
                        smsc.configure(**body)
                    except AttributeError as exc:
                        return self._json(400, {"error": str(exc)})
                    return self._json(200, smsc.behaviour.__dict__)
                return self._json(404, {"error": "POST /mo or /config"})

        self._http = ThreadingHTTPServer((self.host, self.http_port or 0), Handler)
        self.http_port = self._http.server_address[1]
        threading.Thread(target=self._http.serve_forever, name="devsmsc-http", daemon=True).start()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m qz_outbound.dev.smsc",
                                     description="The development SMSC (127.0.0.1 only).")
    sub = parser.add_subparsers(dest="cmd", required=True)
    serve = sub.add_parser("serve", help="run the SMSC until interrupted")
    serve.add_argument("--port", type=int, default=2775)
    serve.add_argument("--http-port", type=int, default=8775)
    serve.add_argument("--system-id", default="QZDEV")
    serve.add_argument("--id-format", choices=["hex", "decimal"], default="hex")
    serve.add_argument("--receipt-id-form", choices=["same", "hex", "decimal"], default="same")
    serve.add_argument("--delivery-rate", type=float, default=1.0)
    serve.add_argument("--receipt-delay", type=float, default=0.0)
    serve.add_argument("--throttle-rate", type=float, default=None)
    serve.add_argument("--response-delay", type=float, default=0.0)
    serve.add_argument("--drop-after", type=int, default=None)
    serve.add_argument("--no-relay", action="store_true", help="no fault relay (drop-after then unavailable)")
    inject = sub.add_parser("inject", help="inject a customer's reply (MO) into a running SMSC")
    inject.add_argument("--http-port", type=int, default=8775)
    inject.add_argument("--from", dest="source", required=True, help="the customer's number")
    inject.add_argument("--text", required=True)
    inject.add_argument("--system-id", default=None)
    args = parser.parse_args(argv)
    if args.cmd == "inject":
        req = urllib.request.Request(
            f"http://127.0.0.1:{args.http_port}/mo", method="POST",
            data=json.dumps({"source_addr": args.source, "text": args.text, "system_id": args.system_id}).encode(),
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as resp:
            print(resp.read().decode())
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # one tokio worker: on two shared cores more threads only contend for the GIL
    os.environ.setdefault("SMPP34_WORKER_THREADS", "1")
    behaviour = Behaviour(id_format=args.id_format, receipt_id_form=args.receipt_id_form,
                          delivery_rate=args.delivery_rate, receipt_delay=args.receipt_delay,
                          throttle_rate=args.throttle_rate, response_delay=args.response_delay,
                          drop_after=args.drop_after)
    smsc = DevSmsc(port=args.port, http_port=args.http_port, system_id=args.system_id, behaviour=behaviour,
                   fault_relay=not args.no_relay).start()
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    print(json.dumps({"smpp_port": smsc.port, "http_port": smsc.http_port}), flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        smsc.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
