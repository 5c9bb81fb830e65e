"""The county portal's pages and endpoints (FastAPI), without Airflow.

``create_app(get_user, engine)`` builds the app; ``plugins/county_portal.py`` passes Airflow's own
user dependency (the UI's session cookie or a Bearer JWT) and the ``marketing_db`` engine. Every
endpoint resolves the viewer first and checks the county on the server: no login → 401, a user
the portal does not know → 403, another county's list or upload → 403. Every download and upload
(and every refusal) is written to ``portal_audit``.
"""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import datetime as dt
import re
import tempfile
from functools import lru_cache
from pathlib import Path
from collections.abc import Callable
from typing import Any

import anyio
import jinja2
import sqlalchemy as sa
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from sqlalchemy.engine import Engine

from qz_outbound import TEMPLATE_DIR, call_lists, clock, db, reports
from qz_outbound.counties import county_names
from qz_outbound.portal import callcentre, uploads
from qz_outbound.portal.access import NotAllowed, Viewer, load_portal_config, viewer_for_user
from qz_outbound.portal.schema import mkt_call_outcome, portal_audit, portal_upload
from qz_outbound.sms.outbox import DELIVERED, IN_DOUBT, SUBMITTED, UNDELIVERED, outbox_counts_by_county

# messages the SMSC accepted (in doubt ones are counted on their own: they may or may not have left)
SMS_SENT = (SUBMITTED, DELIVERED, UNDELIVERED)

DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
REPORT_NAME = re.compile(r"^[\w\-]+\.(html|csv|json)$")
# what HQ sees for each report file of a cycle (others are listed by their file name)
REPORT_LABELS = {
    "outcomes.html": "营销效果日报（漏斗、提升度、区县与渠道、趋势图表）",
    "outcomes.csv": "营销效果明细与优化排名（CSV）",
    "outcome_trend.csv": "按周期转化趋势（CSV）",
    "bills.csv": "营销前后账单变化（CSV）",
    "trajectory_converted.csv": "转化客户营销轨迹（CSV，含号码）",
    "segment_distribution.html": "存量客户细分分布",
    "segment_distribution.csv": "存量客户细分分布（CSV）",
    "segment_bundling.csv": "细分融合情况（CSV）",
    "coverage.csv": "营销覆盖率（CSV）",
    "target_validation.html": "目标清单校验结果",
    "target_validation.json": "目标清单校验结果（JSON）",
}
TRAJECTORY_DAYS = 400   # how far back a trajectory lookup reads the contact history
SHOWN_REJECTS = 1000   # rejected rows listed in an answer (all are kept in portal_upload_reject)
FORMATS = {"csv": "text/csv; charset=utf-8",
           "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


def _env() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR / "portal")),
                              autoescape=True, undefined=jinja2.StrictUndefined)


def _cycle(value: str) -> dt.date:
    if not DATE.match(value or ""):
        raise HTTPException(400, "日期格式应为 YYYY-MM-DD")
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise HTTPException(400, "日期无效") from None


def _county(value: str) -> str:
    if value not in county_names():
        raise HTTPException(404, "没有这个区县")
    return value


def _csv_rows(path: Path) -> int:
    """Rows of a call list (its CSV without the header)."""
    with path.open(encoding="utf-8-sig", newline="") as f:   # a quoted cell may hold a line break
        return max(0, sum(1 for _ in csv.reader(f)) - 1)


FORM_OVERHEAD = 64 * 1024   # a form's boundaries and part headers around the file


class _BodyTooLarge(Exception):
    pass


async def receive_file(request: Request, max_bytes: int, sink) -> str:
    """Stream a ``multipart/form-data`` body's part ``file`` into ``sink``; returns its file name.

    The body is counted as it arrives, never held whole: a declared length over the limit is
    refused before a byte is read, a body that turns out longer (chunked, or lying) as soon as it
    passes the limit (:class:`_BodyTooLarge`)."""
    from python_multipart import MultipartParser
    from python_multipart.multipart import parse_options_header

    kind, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise HTTPException(400, "请通过表单上传文件（multipart/form-data，字段名 file）")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes + FORM_OVERHEAD:
        raise _BodyTooLarge()
    part = {"field": b"", "value": b"", "headers": {}, "size": 0}
    found: dict[str, str] = {}

    def on_part_begin():
        part.update(field=b"", value=b"", headers={}, is_file=False)

    def on_header_field(data, start, end):
        part["field"] += data[start:end]

    def on_header_value(data, start, end):
        part["value"] += data[start:end]

    def on_header_end():
        part["headers"][part["field"].lower()] = part["value"]
        part.update(field=b"", value=b"")

    def on_headers_finished():
        _, disposition = parse_options_header(part["headers"].get(b"content-disposition", b""))
        if disposition.get(b"name") == b"file" and "name" not in found:
            part["is_file"] = True
            found["name"] = disposition.get(b"filename", b"upload").decode("utf-8", "replace")

    def on_part_data(data, start, end):
        if part.get("is_file"):
            part["size"] += end - start
            if part["size"] > max_bytes:
                raise _BodyTooLarge()
            sink.write(data[start:end])

    parser = MultipartParser(boundary, {
        "on_part_begin": on_part_begin, "on_header_field": on_header_field, "on_header_value": on_header_value,
        "on_header_end": on_header_end, "on_headers_finished": on_headers_finished, "on_part_data": on_part_data})
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > max_bytes + FORM_OVERHEAD:
                raise _BodyTooLarge()
            parser.write(chunk)
        parser.finalize()
    except _BodyTooLarge:
        raise
    except Exception:
        raise HTTPException(400, "上传的表单无法解析") from None
    if "name" not in found:
        raise HTTPException(400, "表单中没有文件（字段名 file）")
    return found["name"]


def create_app(get_user: Callable[..., Any], engine: Callable[[], Engine],
               on_upload: Callable[[str, int], None] | None = None) -> FastAPI:
    """The portal. ``on_upload(county, rows)`` is called after an upload loaded rows (the Airflow
    plugin records an asset event there, which triggers outcomes_loop)."""
    app = FastAPI(title="县公司外呼门户", docs_url=None, redoc_url=None, openapi_url=None)
    env = _env()
    made = engine

    @lru_cache(maxsize=1)
    def engine() -> Engine:   # the tables are made by `qz-outbound db upgrade`, never by the portal
        return made()

    def audit(viewer_name: str, action: str, county: str | None, obj: str | None, rows: int | None) -> None:
        with engine().begin() as conn:
            conn.execute(portal_audit.insert().values(at=clock.now(), user_name=viewer_name, action=action,
                                                      county_code=county, object=obj, rows=rows))

    def viewer(user=Depends(get_user)) -> Viewer:
        try:   # the county comes from the user's roles (access.py): county_<code>, hq
            return viewer_for_user(user, load_portal_config())
        except NotAllowed as exc:
            audit(user.get_name() if hasattr(user, "get_name") else str(user), "denied", None, "portal", None)
            raise HTTPException(403, exc.reason) from None

    def require_county(v: Viewer, county: str, what: str) -> None:
        if not v.may_see(county):
            audit(v.name, "denied", county, what, None)
            raise HTTPException(403, "只能查看和上传本县的数据")

    def lists_for(v: Viewer) -> list[dict]:
        root = reports.output_dir() / "call_lists"
        cycles = sorted((p.name for p in root.iterdir() if p.is_dir() and DATE.match(p.name)), reverse=True) \
            if root.exists() else []
        out = []
        for cycle in cycles[:load_portal_config().keep_cycles]:
            for county in v.counties():
                folder = root / cycle / county
                files = {f.suffix[1:]: f for f in folder.glob("外呼清单_*") if f.suffix[1:] in FORMATS} \
                    if folder.exists() else {}
                if files:
                    rows = _csv_rows(files["csv"]) if "csv" in files else None
                    out.append({"cycle": cycle, "county": county, "county_name": county_names()[county],
                                "formats": sorted(files), "rows": rows})
        return out

    def recent_uploads(v: Viewer, limit: int = 20) -> list[dict]:
        q = sa.select(portal_upload).order_by(portal_upload.c.uploaded_at.desc()).limit(limit)
        if not v.hq:
            q = q.where(portal_upload.c.county_code == v.county)
        with engine().connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def progress(cycle: dt.date) -> list[dict]:
        eng = engine()
        with eng.connect() as conn:
            issued = dict(conn.execute(db.date_binds(
                "select county_code, count(*) from mkt_contact where cycle_date = :d and channel = 'call' "
                "group by county_code", "d"), {"d": cycle}).all())
            done = {r[0]: r[1:] for r in conn.execute(sa.select(
                mkt_call_outcome.c.county_code,
                sa.func.count(sa.distinct(mkt_call_outcome.c.contact_id)),
                sa.func.count(),
                sa.func.count(sa.distinct(sa.case((mkt_call_outcome.c.outcome == "accepted",
                                                   mkt_call_outcome.c.contact_id)))),
            ).where(mkt_call_outcome.c.cycle_date == cycle).group_by(mkt_call_outcome.c.county_code))}
        sms = outbox_counts_by_county(eng, cycle)
        rows = []
        for county, name in county_names().items():
            called, outcomes, accepted = done.get(county, (0, 0, 0))
            states = sms.get(county, {})
            rows.append({"county": county, "name": name, "issued": issued.get(county, 0), "called": called,
                         "outcomes": outcomes, "accepted": accepted,
                         "acceptance": f"{accepted / called:.1%}" if called else "—",
                         "sms_sent": sum(states.get(s, 0) for s in SMS_SENT), "sms_delivered": states.get(DELIVERED, 0),
                         "sms_in_doubt": states.get(IN_DOUBT, 0)})
        return rows

    def hq_reports(cycle: str | None) -> list[str]:
        if not cycle:
            return []
        folder = reports.output_dir() / "reports" / cycle
        return sorted(p.name for p in folder.iterdir() if REPORT_NAME.match(p.name)) if folder.exists() else []

    def page(request: Request, template: str, **ctx) -> HTMLResponse:
        base = request.scope.get("root_path", "").rstrip("/")
        return HTMLResponse(env.get_template(template).render(base=base, **ctx))

    @app.get("/", response_class=HTMLResponse)
    def index(request: Request, v: Viewer = Depends(viewer), cycle: str | None = None):
        lists = lists_for(v)
        latest = cycle or (lists[0]["cycle"] if lists else clock.today().isoformat())
        _cycle(latest)
        return page(request, "index.html", viewer=v, county_name=county_names().get(v.county or "", ""),
                    lists=lists, uploads=recent_uploads(v), counties=v.counties(), names=county_names(),
                    progress=progress(dt.date.fromisoformat(latest)) if v.hq else [],
                    cycle=latest, reports=hq_reports(latest) if v.hq else [], labels=REPORT_LABELS)

    @app.get("/hq/trajectory", response_class=HTMLResponse)
    def trajectory_lookup(request: Request, msisdn: str = "", v: Viewer = Depends(viewer)):
        """营销轨迹 of one customer (HQ only): the customer's tags, every offer made, uptake, bills before and after."""
        from qz_outbound import outcomes
        from qz_outbound.phone import is_mobile, mask

        if not v.hq:
            audit(v.name, "denied", v.county, "trajectory", None)
            raise HTTPException(403, "营销轨迹查询仅对市公司开放")
        number = msisdn.strip()
        rows, tag_rows, error = [], [], None
        if number and not is_mobile(number):
            error = "请输入 11 位手机号码"
        elif number:
            from qz_outbound import tags

            today = clock.today()
            frame = outcomes.trajectory(engine(), today - dt.timedelta(days=TRAJECTORY_DAYS), today, msisdn=number)
            rows = frame.to_dict("records")
            tag_rows = tags.customer_tags(engine(), number)   # 客户标签 (config/tags.yaml names)
            audit(v.name, "trajectory", None, mask(number), len(rows))
        return page(request, "trajectory.html", viewer=v, msisdn=number, rows=rows, tags=tag_rows, error=error,
                    names=county_names(), days=TRAJECTORY_DAYS,
                    isnan=outcomes.is_missing)

    @app.get("/api/lists")
    def api_lists(v: Viewer = Depends(viewer)):
        return {"user": v.name, "hq": v.hq, "counties": v.counties(), "lists": lists_for(v)}

    @app.get("/download/{cycle}/{county}/{fmt}")
    def download(cycle: str, county: str, fmt: str, v: Viewer = Depends(viewer)):
        day, county = _cycle(cycle), _county(county)
        if fmt not in FORMATS:
            raise HTTPException(404, "只提供 csv 或 xlsx")
        require_county(v, county, f"call list {cycle} {county}")
        path = call_lists.list_dir(day, county) / f"{call_lists.file_stem(day, county)}.{fmt}"
        if not path.is_file():
            raise HTTPException(404, "该日没有外呼清单")
        rows = _csv_rows(path.with_suffix(".csv")) if path.with_suffix(".csv").is_file() else None
        audit(v.name, "download", county, path.name, rows)
        return FileResponse(path, media_type=FORMATS[fmt], filename=path.name)

    @app.post("/upload/{county}")
    async def upload(request: Request, county: str, v: Viewer = Depends(viewer)):
        county = _county(county)
        require_county(v, county, "outcome upload")
        limits = load_portal_config().uploads
        too_large = f"文件过大（上限 {limits.max_mb} MB），未保存，请拆分后上传"
        with tempfile.SpooledTemporaryFile(max_size=2**20) as sink:
            try:
                name = await receive_file(request, limits.max_bytes, sink)
            except _BodyTooLarge:
                await anyio.to_thread.run_sync(audit, v.name, "upload_refused", county, "too large", None)
                raise HTTPException(413, too_large) from None
            sink.seek(0)
            data = sink.read()
        try:   # parsed, checked and loaded in a worker process: the event loop only waits
            result = await asyncio.wrap_future(uploads.submit(engine(), county, v.name, name, data, limits))
        except uploads.UploadTooLarge:
            raise HTTPException(413, too_large) from None
        finally:
            del data

        def answer():   # audit, asset event and a page of many rows: not on the event loop either
            audit(v.name, "upload", county, result.upload_id, result.rows_accepted)
            if on_upload is not None and result.rows_accepted and not result.duplicate_file:
                on_upload(county, result.rows_accepted)
            shown = dataclasses.replace(result, rejects=result.rejects[:SHOWN_REJECTS])
            if "application/json" in request.headers.get("accept", ""):
                return JSONResponse({**shown.summary(), "rejects": shown.rejects})
            return page(request, "upload_result.html", viewer=v, result=shown, name=county_names()[county],
                        names=county_names())

        return await anyio.to_thread.run_sync(answer)

    @app.get("/upload/{upload_id}", response_class=HTMLResponse)
    def upload_result(request: Request, upload_id: str, v: Viewer = Depends(viewer)):
        if not re.fullmatch(r"U\d{14}-\d{6}-[0-9a-f]{12}", upload_id):
            raise HTTPException(404, "没有这次上传")
        eng = engine()
        with eng.connect() as conn:
            county = conn.scalar(sa.select(portal_upload.c.county_code).where(portal_upload.c.upload_id == upload_id))
        if county is None:
            raise HTTPException(404, "没有这次上传")
        require_county(v, county, f"upload {upload_id}")
        result = uploads.load_result(eng, upload_id, limit=SHOWN_REJECTS)
        return page(request, "upload_result.html", viewer=v, result=result, name=county_names()[county],
                    names=county_names())

    @app.get("/api/progress")
    def api_progress(cycle: str, v: Viewer = Depends(viewer)):
        if not v.hq:
            audit(v.name, "denied", v.county, "progress", None)
            raise HTTPException(403, "进度表仅对市公司开放")
        return {"cycle": cycle, "counties": progress(_cycle(cycle))}

    @app.get("/reports/{cycle}/{name}")
    def report(cycle: str, name: str, v: Viewer = Depends(viewer)):
        _cycle(cycle)
        if not v.hq:
            audit(v.name, "denied", v.county, f"report {name}", None)
            raise HTTPException(403, "报表仅对市公司开放")
        if not REPORT_NAME.match(name):
            raise HTTPException(404, "没有这个报表")
        path = reports.output_dir() / "reports" / cycle / name
        if not path.is_file():
            raise HTTPException(404, "没有这个报表")
        return FileResponse(path)

    from qz_outbound.portal import economics as economics_pages   # HQ's economics page (营销效益)
    economics_pages.add_routes(app, engine=engine, viewer=viewer, audit=audit, page=page)

    from qz_outbound.portal import learning as learning_pages   # HQ's learning-loop page (学习闭环)
    learning_pages.add_routes(app, engine=engine, viewer=viewer, audit=audit, page=page)

    from qz_outbound.portal import kpi as kpi_pages   # county KPI pages (考核完成情况)

    kpi_pages.add_routes(app, viewer=viewer, engine=engine, page=page, audit=audit)

    callcentre.add_routes(app, viewer=viewer, engine=engine, page=page, require_county=require_county,
                          parse_day=_cycle)
    return app
