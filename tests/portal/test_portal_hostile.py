"""Hostile and everyday uploads against the real api-server (issue 18): the server stays
responsive, refuses what is over a limit clearly, and loads what is good exactly once.

Every file is made here. The api-server is the session's (conftest.py), with config/portal.yaml's
limits: 20 MB, 100,000 rows, 64 columns, 100 MB unpacked.
"""

from __future__ import annotations

import io
import json
import socket
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import openpyxl
import psutil
import pytest
import sqlalchemy as sa

from qz_outbound import db

JJ = "350582"
USER = "county_350582"


class VersionPoller(threading.Thread):
    """Asks /api/v2/version every 50 ms and records how long each answer took."""

    def __init__(self, portal):
        super().__init__(daemon=True)
        self.portal, self.took, self.errors, self.at = portal, [], [], []
        self._halt = threading.Event()

    def run(self):
        while not self._halt.is_set():
            t0 = time.monotonic()
            status, _, _ = self.portal.request("/api/v2/version", "hq")
            self.took.append(time.monotonic() - t0)
            self.at.append(t0)
            if status != 200:
                self.errors.append(status)
            self._halt.wait(0.05)

    def stop(self):
        self._halt.set()
        self.join(timeout=60)


def _rss(pid: int) -> int:
    """Resident memory of the api-server's own process (the one that receives bodies), bytes."""
    return psutil.Process(pid).memory_info().rss


def _archived(portal) -> set[Path]:
    folder = portal.out / "portal" / "uploads" / JJ
    return set(folder.iterdir()) if folder.exists() else set()


def _uploads(portal) -> int:
    engine = db.make_engine(portal.marketing_url)
    with engine.connect() as conn:
        return conn.execute(sa.text("select count(*) from portal_upload")).scalar()


def _calls(portal, n: int, offset: int = 0) -> list[str]:
    engine = db.make_engine(portal.marketing_url)
    with engine.connect() as conn:
        return list(conn.execute(sa.text(
            # contacts no other test of the session (the portal fixture is shared) has loaded outcomes for
            "select contact_id from mkt_contact k where channel = 'call' and county_code = :c "
            "and not exists (select 1 from mkt_call_outcome o where o.contact_id = k.contact_id) "
            "order by contact_id limit :n offset :o"), {"c": JJ, "n": n, "o": offset}).scalars())


def _xfd_workbook() -> bytes:
    """The 14 KB file of the issue: 2,500 rows with one cell each in column XFD."""
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["联系编号（回填用）", "外呼结果"])
    for r in range(2, 2502):
        sheet[f"XFD{r}"] = "x"
    buf = io.BytesIO()
    book.save(buf)
    return buf.getvalue()


def test_a_hostile_upload_never_stalls_the_api_server(portal):
    """While the freezing XLSX, a list at the row limit and 650,000 ids are processed, Airflow's
    /api/v2/version answers within a second every time."""
    xfd = _xfd_workbook()
    assert len(xfd) < 40_000
    at_limit = ("联系编号（回填用）,外呼结果,外呼时间\n" + "".join(
        f"C20261123-{i:011d},busy,2026-11-23 12:00\n" for i in range(100_000))).encode()
    many_ids = ("联系编号（回填用）,外呼结果\n" + "".join(
        f"C20261123-{i:011d},busy\n" for i in range(650_000))).encode()
    assert 16 * 2**20 < len(many_ids) < 20 * 2**20          # the 18 MB, under the byte limit

    answers: dict[str, tuple] = {}

    def send(key, name, data):
        t0 = time.monotonic()
        status, body, _ = portal.upload(JJ, USER, name, data)
        assert body.startswith(b"{"), (key, status, body[:500])
        answers[key] = (status, json.loads(body), time.monotonic() - t0)
        print(f"\n{key} answered at {time.monotonic() - begun:.2f} s")

    # the portal's first request imports its web stack (in a thread, once per server): not measured here
    assert portal.request("/api/lists", USER)[0] == 200
    poller = VersionPoller(portal)
    poller.start()
    time.sleep(0.3)
    begun = time.monotonic()
    senders = [threading.Thread(target=send, args=a) for a in (
        ("xfd", "冻结.xlsx", xfd), ("at_limit", "十万行.csv", at_limit), ("many", "六十五万.csv", many_ids))]
    for s in senders:
        s.start()
    for s in senders:
        s.join(timeout=300)
    time.sleep(0.3)
    poller.stop()

    status, result, _ = answers["xfd"]
    assert status == 200 and result["status"] == "rejected" and "列数超过上限" in result["error"]
    status, result, took = answers["at_limit"]
    assert status == 200 and result["status"] == "loaded" and result["rows_rejected"] == 100_000
    assert len(result["rejects"]) == 1000                    # the answer lists the first; all are kept
    status, result, _ = answers["many"]                       # a clear answer, not a 500
    assert status == 200 and result["status"] == "rejected" and "行数超过上限" in result["error"]
    print(f"\nversion answers: {len(poller.took)}, slowest {max(poller.took):.3f} s; "
          f"100,000-row upload {took:.1f} s")
    slow = [(round(a - begun, 2), round(t, 2)) for a, t in zip(poller.at, poller.took) if t > 0.5]
    print("slow version answers (started at, took):", slow)
    assert not poller.errors and len(poller.took) > 5
    assert max(poller.took) < 1.0, sorted(poller.took)[-5:]


def _raw_upload(portal, body_chunks, *, length: int | None) -> tuple[int, bytes]:
    """POST an upload over a raw socket (so the body can be huge, or chunked without a length) and
    read the answer as soon as the server gives it."""
    url = urlsplit(portal.base)
    boundary = "----qzhostile"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.csv\"\r\n"
            "Content-Type: text/csv\r\n\r\n").encode()
    lines = [f"POST /county-portal/upload/{JJ} HTTP/1.1", f"Host: {url.netloc}",
             f"Authorization: Bearer {portal.token(USER)}", "Accept: application/json",
             f"Content-Type: multipart/form-data; boundary={boundary}"]
    lines.append(f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked")
    sock = socket.create_connection((url.hostname, url.port), timeout=60)
    try:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        try:
            for chunk in [head, *body_chunks]:
                sock.sendall(chunk if length is not None else b"%x\r\n%s\r\n" % (len(chunk), chunk))
        except (BrokenPipeError, ConnectionResetError):
            pass                                              # the server stopped reading: expected
        answer = b""
        try:
            while b"\r\n\r\n" not in answer or len(answer) < answer.index(b"\r\n\r\n") + 4 + 10:
                got = sock.recv(65536)
                if not got:
                    break
                answer += got
        except (ConnectionResetError, socket.timeout):
            pass
    finally:
        sock.close()
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1") else 0
    return status, answer


def test_a_400_mb_body_is_refused_with_413_before_anything_is_kept(portal):
    archived, uploads_before, rss_before = _archived(portal), _uploads(portal), _rss(portal.pid)
    mb = b"x" * 2**20
    # declared: refused on its Content-Length, before the body is read
    t0 = time.monotonic()
    status, answer = _raw_upload(portal, (mb for _ in range(400)), length=400 * 2**20)
    declared_took = time.monotonic() - t0
    assert status == 413 and "文件过大".encode() in answer or "\\u6587".encode() in answer, answer[:300]
    # chunked, no length: counted as it streams, refused once past the limit
    t0 = time.monotonic()
    status, answer = _raw_upload(portal, (mb for _ in range(400)), length=None)
    assert status == 413, answer[:300]
    streamed_took = time.monotonic() - t0
    grew = _rss(portal.pid) - rss_before
    print(f"\n413 for a declared 400 MB body in {declared_took:.2f} s, for a chunked one in "
          f"{streamed_took:.2f} s; api-server memory grew {grew / 2**20:.0f} MB")
    assert grew < 100 * 2**20                                  # never the 400 MB, nor the 20 MB limit twice
    assert _archived(portal) == archived and _uploads(portal) == uploads_before
    engine = db.make_engine(portal.marketing_url)
    with engine.connect() as conn:
        refused = conn.execute(sa.text("select count(*) from portal_audit where action = 'upload_refused' "
                                       "and user_name = :u"), {"u": USER}).scalar()
    assert refused == 2


def test_the_list_uploaded_again_as_it_is_worked_adds_only_the_new_rows(portal):
    ids = _calls(portal, 5, offset=20)
    outcomes = ["accepted", "no_answer", "busy", "refused", "callback"]

    def worked(n):
        return ("联系编号（回填用）,外呼结果\n" + "".join(
            f"{c},{outcomes[i] if i < n else ''}\n" for i, c in enumerate(ids))).encode("utf-8-sig")

    status, body, _ = portal.upload(JJ, USER, "晋江清单.csv", worked(2))
    first = json.loads(body)
    assert status == 200 and (first["rows_accepted"], first["rows_without_outcome"]) == (2, 3)
    status, body, _ = portal.upload(JJ, USER, "晋江清单.csv", worked(4))
    second = json.loads(body)
    assert status == 200 and (second["rows_accepted"], second["rows_already_loaded"], second["rows_rejected"]) \
        == (2, 2, 0)
    engine = db.make_engine(portal.marketing_url)
    with engine.connect() as conn:
        n = conn.execute(sa.text("select count(*) from mkt_call_outcome where contact_id in ({})".format(
            ", ".join(f"'{c}'" for c in ids)))).scalar()
    assert n == 4
    status, body, _ = portal.upload(JJ, USER, "晋江清单.csv", worked(4), accept="text/html")
    assert status == 200 and "2 行此前已登记" in body.decode()   # the page says so (the same bytes: the
    # earlier result is shown)


def test_future_call_times_blank_lines_and_formula_cells_are_reported_with_the_row_a_spreadsheet_shows(portal):
    a, b, c, d = _calls(portal, 4, offset=40)
    csv = ("联系编号（回填用）,外呼结果,外呼时间\n"
           f"{a},refused,2026-11-23 10:00\n"
           "\n"
           "\n"
           f"{b},refused,2099-01-01\n").encode("utf-8-sig")
    status, body, _ = portal.upload(JJ, USER, "未来.csv", csv)
    result = json.loads(body)
    assert status == 200 and result["rows_accepted"] == 1
    assert [(r["row_no"], "晚于当前时间" in r["reason"]) for r in result["rejects"]] == [(5, True)]

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["联系编号（回填用）", "外呼结果"])
    sheet.append([c, "accepted"])
    sheet["A4"], sheet["B4"] = d, '=IF(TRUE,"accepted","")'   # row 3 left empty; B4 never computed
    buf = io.BytesIO()
    book.save(buf)
    status, body, _ = portal.upload(JJ, USER, "公式.xlsx", buf.getvalue(), accept="text/html")
    page = body.decode()
    assert status == 200 and "已接收 <b class=\"ok\">1</b> 行" in page and "被拒绝 <b class=\"bad\">1</b> 行" in page
    assert '<td class="num">4</td>' in page and "公式但没有计算结果" in page
