"""The pages of ``archive-builder serve``: a Starlette app over ``web.core``.

Safety rules kept here: every state-changing request is a POST carrying the session's CSRF
token; files are served only by id (a household's version number, a village code from the
manifest), never by a path from the request; uploads are size-limited and opened before
anything is written; every failure renders a Chinese error page.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import secrets
import shutil
import tempfile
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..errors import ArchiveError, VersionNotFoundError
from . import core
from .editpages import AppContext, EditPages

PAGE_SIZE = 50
#: the largest upload accepted (a phone photo or a township's sheet)
MAX_UPLOAD = 20 * 1024 * 1024
#: room for the form's other fields around an upload
_FORM_OVERHEAD = 64 * 1024
SESSION_COOKIE = "ab_session"
AUTH_COOKIE = "ab_auth"

_STATUS_TEXT = {
    400: "请求无效", 403: "没有权限", 404: "找不到页面或文件", 405: "不允许的操作",
    409: "操作冲突", 413: "文件太大", 500: "服务器内部错误",
}


class _Env:
    def __init__(self) -> None:
        self.env = Environment(loader=PackageLoader("archive_builder.web", "templates"),
                               autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)
        self.env.filters["urlq"] = lambda s: urllib.parse.quote(str(s), safe="")
        self.env.filters["ui"] = core.browser_text  # the core's command-line wording, for the pages

    def render(self, name: str, **context: Any) -> str:
        return self.env.get_template(name).render(**context)


def create_app(data_dir: Path, out_dir: Path | None = None, *, token: str | None = None,
               max_upload: int = MAX_UPLOAD, preload: bool = False,
               allowed_hosts: tuple[str, ...] | None = None) -> Starlette:
    """Return the ASGI app serving ``data_dir`` (its records warm in memory).

    ``allowed_hosts``: the names the browser may use for the server (the Host header without
    its port); a page of another site that rebinds its name to 127.0.0.1 is then refused.
    None accepts any (the test client).
    """
    workspace = core.Workspace(data_dir, out_dir)
    if preload:  # read and check the records while the server starts; a request waits for them
        import threading

        threading.Thread(target=workspace.ensure_loaded, daemon=True).start()
    templates = _Env()
    secret = secrets.token_bytes(32)
    uploads = Path(tempfile.mkdtemp(prefix="archive-builder-web-"))
    pending: dict[str, dict[str, Any]] = {}  # sheet uploads awaiting "apply", by random id

    def sign(value: str) -> str:
        return hmac.new(secret, value.encode(), hashlib.sha256).hexdigest()[:40]

    def csrf_token(request: Request) -> str:
        return sign("csrf:" + request.state.session)

    def page(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        context.update(request=request, csrf=csrf_token(request), township=workspace.township, force_label=core.FORCE_CHECKBOX,
                       job=workspace.job.state, me=getattr(request.state, "account", None))
        return HTMLResponse(templates.render(name, **context), status_code=status_code)

    def error_page(request: Request, status: int, message: str, hint: str = "", kind: str = "") -> HTMLResponse:
        if not hasattr(request.state, "session"):
            request.state.session = ""
        return page(request, "error.html", status_code=status, status=status,
                    kind=kind or _STATUS_TEXT.get(status, "出错了"), message=message, hint=hint)

    async def check_csrf(request: Request) -> Any:
        form = await request.form(max_files=2, max_fields=20)
        request.state.form = form  # closed (its spooled upload files too) by the middleware
        sent = str(form.get("csrf") or request.headers.get("x-csrf-token") or "")
        if not sent or not hmac.compare_digest(sent, csrf_token(request)):
            raise HTTPException(403, "页面已过期或请求来源不明（缺少安全令牌）。请刷新页面后重试。")
        return form

    def household_row(household_id: str) -> core.Row:
        workspace.ensure_loaded()
        row = workspace.row(household_id)
        if row is None:
            raise HTTPException(404, f"找不到户编号为 {household_id} 的户")
        return row

    editing = EditPages(AppContext(workspace, page, csrf_token, household_row, max_upload))

    # --- pages -------------------------------------------------------------------------------
    async def township(request: Request) -> Response:
        workspace.ensure_loaded()
        manifest = workspace.manifest()
        built = {v.get("code"): v for v in manifest.get("villages", [])}
        boxes = await _threaded(workspace.box_status)
        ledger = await _threaded(workspace.ledger_counts, fresh=False)
        states = {s.state for s in boxes.values()}
        return page(request, "township.html", villages=workspace.villages, built=built,
                    built_at=(manifest.get("built_at") or "").replace("T", " ")[:19],
                    boxes=boxes, states=states, all_current=states == {"current"}, ledger=ledger, general=core.problems_json(workspace.dataset_problems),
                    total_households=len(workspace.rows), total_people=sum(r.members for r in workspace.rows))

    def village_info(request: Request) -> core.VillageInfo:
        workspace.ensure_loaded()
        info = workspace.village(request.path_params["code"])
        if info is None:
            raise HTTPException(404, "找不到这个村")
        return info

    async def village(request: Request) -> Response:
        info = village_info(request)
        q = request.query_params.get("q", "")[:50]
        status = request.query_params.get("status", "")[:30]
        only_problems = request.query_params.get("problems") == "1"
        rows = workspace.search(info.rows, q, status, only_problems)
        return _listing(request, "village.html", rows, info=info, q=q, status=status, only_problems=only_problems,
                        statuses=sorted({s for r in info.rows for s in (r.household_type, r.poverty_status, r.monitor) if s}))

    async def village_stats(request: Request) -> Response:
        info = village_info(request)
        stats = await _threaded(core.village_stats, workspace, info.code)
        return page(request, "stats.html", info=info, stats=stats)

    async def village_ledger(request: Request) -> Response:
        info = village_info(request)
        rows = await _threaded(core.village_ledger, workspace, info.code)
        await _threaded(workspace.remember_ledger, info.code, rows)
        return page(request, "ledger.html", info=info, ledger=rows)

    async def village_download(request: Request) -> Response:
        """The ledger or the statistics of one village as a file: written by the core to a
        temporary folder of the server's own, read back and sent; the name is the server's."""
        info = village_info(request)
        kind, suffix = request.path_params["kind"], request.path_params["suffix"]
        if suffix not in ("xlsx", "pdf") or kind not in ("ledger", "stats"):
            raise HTTPException(404, "找不到这个文件")
        title = "问题台账" if kind == "ledger" else "贫情分析统计"
        folder = Path(tempfile.mkdtemp(dir=uploads))
        try:
            path = folder / f"{kind}.{suffix}"
            if kind == "ledger":
                await _threaded(core.ledger_file, workspace, info.code, path, as_pdf=suffix == "pdf")
            else:
                await _threaded(core.stats_file, workspace, info.code, path)
            data = path.read_bytes()
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        media = "application/pdf" if suffix == "pdf" else \
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        name = urllib.parse.quote(f"{info.name}{title}.{suffix}")
        return Response(data, media_type=media, headers={"Content-Disposition": f"attachment; filename*=UTF-8''{name}"})

    async def search(request: Request) -> Response:
        workspace.ensure_loaded()
        q = request.query_params.get("q", "")[:50]
        rows = workspace.search(workspace.rows, q) if q.strip() else []
        if len(rows) == 1:
            return RedirectResponse(f"/household/{urllib.parse.quote(rows[0].household_id)}", status_code=303)
        return _listing(request, "search.html", rows, q=q)

    def _listing(request: Request, name: str, rows: list[core.Row], **context: Any) -> Response:
        try:
            number = max(1, int(request.query_params.get("page", "1")))
        except ValueError:
            number = 1
        pages = max(1, (len(rows) + PAGE_SIZE - 1) // PAGE_SIZE)
        number = min(number, pages)
        shown = rows[(number - 1) * PAGE_SIZE: number * PAGE_SIZE]
        latest = workspace.latest_numbers([r.household_id for r in shown])
        query = {k: v for k, v in request.query_params.items() if k != "page"}
        return page(request, name, rows=shown, count=len(rows), page_no=number, pages=pages, latest=latest,
                    query=urllib.parse.urlencode(query), **context)

    async def household(request: Request) -> Response:
        row = household_row(request.path_params["hid"])
        versions = workspace.versions(row.household_id)
        entries = core.history(workspace, row.household_id)
        show = versions[-1] if versions else None
        asked = request.query_params.get("v")
        if asked is not None:  # a version asked for by number: that one, or a page saying it does not exist
            wanted = int(asked) if asked.strip().isdigit() else 0
            show = next((v for v in versions if v.number == wanted), None)
            if show is None:
                have = f"现有版本 1–{versions[-1].number}" if versions else "该户还没有生成过档卡"
                raise HTTPException(404, f"户 {row.household_id} 没有版本 {asked[:20]}（{have}）")
        ledger = await _threaded(core.household_ledger, workspace, row.household_id)
        return page(request, "household.html", row=row, sections=core.record_sections(row.loaded), ledger=ledger,
                    problems=core.problems_json(row.problems), versions=versions, history=entries, show=show,
                    message=request.query_params.get("msg", "")[:200], **editing.household_context(request, row))

    async def regenerate(request: Request) -> Response:
        await check_csrf(request)
        row = household_row(request.path_params["hid"])
        version, new = await _threaded(workspace.regenerate, row.household_id)
        msg = f"已重新生成，记录为版本 {version.number}" if new else f"数据未变化，仍为版本 {version.number}"
        return RedirectResponse(f"/household/{urllib.parse.quote(row.household_id)}?msg={urllib.parse.quote(msg)}",
                                status_code=303)

    async def compare(request: Request) -> Response:
        row = household_row(request.path_params["hid"])
        try:
            old, new = int(request.query_params["a"]), int(request.query_params["b"])
        except (KeyError, ValueError) as exc:
            raise HTTPException(400, "请选择要比较的两个版本") from exc
        result = await _threaded(core.compare, workspace, row.household_id, old, new)
        return page(request, "compare.html", row=row, c=result, versions=workspace.versions(row.household_id),
                    a=old, b=new)

    async def version_pdf(request: Request) -> Response:
        row = household_row(request.path_params["hid"])
        path = _version_path(row, request.path_params["number"])
        disposition = "attachment" if request.query_params.get("download") else "inline"
        return FileResponse(path, media_type="application/pdf", content_disposition_type=disposition,
                            filename=f"{row.household_id}_{row.head}_v{request.path_params['number']}.pdf")

    def _version_path(row: core.Row, number: int) -> Path:
        try:
            return workspace.version_pdf(row.household_id, int(number))
        except ArchiveError as exc:
            raise HTTPException(404, exc.message) from exc

    async def version_page(request: Request) -> Response:
        row = household_row(request.path_params["hid"])
        path = _version_path(row, request.path_params["number"])
        try:
            png = await _threaded(core.page_png, path, int(request.path_params["page"]))
        except (ArchiveError, IndexError, ValueError) as exc:
            raise HTTPException(404, "没有这一页") from exc
        return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})

    async def word(request: Request) -> Response:
        row = household_row(request.path_params["hid"])
        folder = Path(tempfile.mkdtemp(dir=uploads))
        docx = await _threaded(workspace.word_copy, row.household_id, folder)
        data = docx.read_bytes()
        shutil.rmtree(folder, ignore_errors=True)
        name = urllib.parse.quote(f"{row.household_id}_{row.head}.docx")
        return Response(data, media_type="application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{name}"})

    async def output(request: Request) -> Response:
        """Box PDFs, spine labels and the manifest: by village code and box number only."""
        kind = request.path_params["kind"]
        if kind == "manifest":
            path = workspace.output_file("manifest.json")
        else:
            code = request.path_params.get("code", "")
            entry = next((v for v in workspace.manifest().get("villages", []) if v.get("code") == code), None)
            if entry is None:
                raise HTTPException(404, "找不到这个村的生成结果")
            relative: str | None = None
            if kind == "spine":
                relative = entry.get("spine_labels")
            elif kind == "box":
                try:
                    relative = entry.get("boxes", [])[int(request.path_params.get("box", 0)) - 1]["file"]
                except (ValueError, IndexError, KeyError, TypeError):
                    relative = None
            path = workspace.output_file(relative) if isinstance(relative, str) else None
        if path is None:
            raise HTTPException(404, "找不到这个文件")
        return FileResponse(path, filename=path.name, content_disposition_type="attachment")

    async def build_start(request: Request) -> Response:
        form = await check_csrf(request)
        code = str(form.get("village") or "")
        workspace.ensure_loaded()
        if code and workspace.village(code) is None:
            raise HTTPException(404, "找不到这个村")
        refused = editing.may_build(request.state.account, code)
        if refused:
            raise HTTPException(403, refused)
        workspace.job.start((code,) if code else ())
        if request.headers.get("x-requested-with") == "fetch":
            return JSONResponse(workspace.job.as_json())
        return RedirectResponse("/", status_code=303)

    async def build_status(request: Request) -> Response:
        return JSONResponse(workspace.job.as_json())

    async def reload(request: Request) -> Response:
        await check_csrf(request)
        await _threaded(workspace.load)
        return RedirectResponse(request.headers.get("referer") or "/", status_code=303)

    # --- paper copies ---------------------------------------------------------------------------
    async def verify_form(request: Request) -> Response:
        return page(request, "verify.html", result=None, text="", changes=[])

    async def verify_submit(request: Request) -> Response:
        form = await check_csrf(request)
        text = str(form.get("text") or "").strip()[:500]
        photo = form.get("photo")
        if photo is not None and not isinstance(photo, str) and photo.filename:
            data = await _read_upload(photo)
            suffix = Path(photo.filename).suffix.lower()
            if suffix not in (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".heic"):
                suffix = ".jpg"
            result = await _threaded(core.verify_photo, workspace, data, suffix)
        elif text:
            result = await _threaded(core.verify_text, workspace, text)
        else:  # nothing was uploaded: say what to do on this page, not that an upload failed
            return page(request, "verify.html", status_code=400, result=None, text="", changes=[],
                        missing="请先粘贴封面二维码扫出的文字，或选择一张封面照片，再点「核对」。")
        return page(request, "verify.html", result=result, text=text, changes=core.change_rows(result.changes))

    # --- sheets ---------------------------------------------------------------------------------
    async def import_form(request: Request) -> Response:
        return page(request, "import.html", report=None, upload_id="", applied=False)

    async def import_upload(request: Request) -> Response:
        form = await check_csrf(request)
        sheet = form.get("sheet")
        if sheet is None or isinstance(sheet, str) or not sheet.filename:
            raise core.UploadError("请选择要导入的表格文件", hint="支持 .xlsx、.xls、.csv")
        suffix = Path(sheet.filename).suffix.lower()
        if suffix not in core.SHEET_SUFFIXES:
            raise core.UploadError(f"不支持的文件类型：{suffix or '无扩展名'}", hint="请上传 .xlsx、.xls 或 .csv 表格")
        data = await _read_upload(sheet)
        upload_id = secrets.token_hex(12)
        folder = uploads / upload_id
        folder.mkdir()
        path = folder / f"表格{suffix}"
        path.write_bytes(data)
        try:
            await _threaded(core.check_sheet, path, Path(sheet.filename).name)
            report = await _threaded(core.import_sheet, workspace, path, dry_run=True,
                                     force=form.get("force") == "1", shown_name=Path(sheet.filename).name)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        pending[upload_id] = {"path": path, "name": Path(sheet.filename).name, "force": form.get("force") == "1"}
        return page(request, "import.html", report=report, upload_id=upload_id, applied=False,
                    sheet_name=Path(sheet.filename).name, editor=editing.editor_name(request),
                    account=request.state.account)

    async def import_apply(request: Request) -> Response:
        form = await check_csrf(request)
        key = str(form.get("upload") or "")
        if key not in pending:
            raise HTTPException(404, "找不到这次上传（可能已导入或服务已重启），请重新上传表格")
        editor = editing.editor(request, form)  # who imported: for the households' 修改记录
        upload = pending.pop(key)
        try:
            report = await _threaded(core.import_sheet, workspace, upload["path"], dry_run=False,
                                     force=upload["force"], shown_name=upload["name"], editor=editor)
        finally:
            shutil.rmtree(upload["path"].parent, ignore_errors=True)
        await _threaded(workspace.load)
        response = page(request, "import.html", report=report, upload_id="", applied=True, sheet_name=upload["name"])
        return editing.remember(response, request, editor)

    async def export(request: Request) -> Response:
        folder = Path(tempfile.mkdtemp(dir=uploads))
        try:
            path = folder / "人员信息.xlsx"
            await _threaded(core.export_sheet, workspace.data_dir, path)
            data = path.read_bytes()
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        name = urllib.parse.quote(f"{workspace.township or '全乡'}人员信息.xlsx")
        return Response(data, media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{name}"})

    async def _read_upload(upload: Any) -> bytes:
        data = await upload.read(max_upload + 1)
        if len(data) > max_upload:
            raise HTTPException(413, f"文件超过 {max_upload // (1024 * 1024)} MB，未接收")
        return bytes(data)

    # --- login (only with --token) ----------------------------------------------------------------
    async def login(request: Request) -> Response:
        if editing.known_accounts() and not request.query_params.get("token"):
            return await editing.login_form(request)
        sent = request.query_params.get("token", "")
        if token and sent and hmac.compare_digest(sent.encode(), token.encode()):
            response = RedirectResponse("/", status_code=303)
            response.set_cookie(AUTH_COOKIE, sign("auth"), httponly=True, samesite="strict")
            return response
        return page(request, "login.html", status_code=403 if sent else 200, wrong=bool(sent))

    routes = [
        Route("/", township),
        Route("/village/{code}", village),
        Route("/village/{code}/stats", village_stats),
        Route("/village/{code}/ledger", village_ledger),
        Route("/village/{code}/{kind:str}.{suffix:str}", village_download),
        Route("/search", search),
        Route("/household/{hid}", household),
        Route("/household/{hid}/regenerate", regenerate, methods=["POST"]),
        Route("/household/{hid}/compare", compare),
        Route("/household/{hid}/v/{number:int}.pdf", version_pdf),
        Route("/household/{hid}/v/{number:int}/page/{page:int}.png", version_page),
        Route("/household/{hid}/word.docx", word),
        Route("/output/{kind:str}", output),
        Route("/output/{kind:str}/{code}", output),
        Route("/output/{kind:str}/{code}/{box:int}", output),
        Route("/build", build_start, methods=["POST"]),
        Route("/build/status", build_status),
        Route("/reload", reload, methods=["POST"]),
        Route("/verify", verify_form),
        Route("/verify", verify_submit, methods=["POST"]),
        Route("/import", import_form),
        Route("/import", import_upload, methods=["POST"]),
        Route("/import/apply", import_apply, methods=["POST"]),
        Route("/export.xlsx", export),
        Route("/login", login),
        *editing.routes(),
        Mount("/static", StaticFiles(packages=[("archive_builder.web", "static")]), name="static"),
    ]

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        detail = exc.detail if isinstance(exc.detail, str) and exc.detail and exc.detail[0] > "~" else ""
        return error_page(request, exc.status_code, detail or _STATUS_TEXT.get(exc.status_code, "请求无法完成"))

    async def archive_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ArchiveError)
        status = 409 if isinstance(exc, core.BuildBusy) else 404 if isinstance(exc, VersionNotFoundError) else 400
        problems = core.problems_json(list(getattr(exc, "problems", []) or []))
        response = error_page(request, status, exc.message, exc.hint or "", kind=exc.kind)
        if problems:
            response = page(request, "error.html", status_code=status, status=status, kind=exc.kind,
                            message=exc.message, hint=exc.hint or "", problems=problems)
        return response

    async def internal_error(request: Request, exc: Exception) -> Response:
        logging.getLogger("archive_builder.web").error("request %s failed", request.url.path, exc_info=exc)
        return error_page(request, 500, f"处理请求时出错（{type(exc).__name__}）。服务仍在运行，可返回上一页重试。",
                          "如果反复出现，请把这段说明和操作步骤报告给维护人员。")

    async def session_and_auth(request: Request, call_next: Any) -> Response:
        session = request.cookies.get(SESSION_COOKIE, "")
        fresh = not (len(session) == 32 and session.isalnum())
        if fresh:
            session = secrets.token_hex(16)
        request.state.session = session
        path = request.url.path
        if allowed_hosts is not None:
            raw = request.headers.get("host", "").lower()
            name = raw if raw.endswith("]") else raw.rsplit(":", 1)[0]  # "[::1]:8421" → "[::1]"
            if name not in allowed_hosts:
                return error_page(request, 400, "请求的地址不是本服务的地址，已拒绝。",
                                  "请使用启动服务时显示的地址打开本页。")
        if token and not path.startswith(("/static/", "/login")):
            cookie = request.cookies.get(AUTH_COOKIE, "")
            if not hmac.compare_digest(cookie.encode(), sign("auth").encode()):
                response: Response = error_page(request, 403, "需要登录：请使用启动服务时显示的登录地址打开本页。",
                                                "登录地址形如 http://地址:端口/login?token=……")
                return response
        length = request.headers.get("content-length", "")
        if request.method == "POST" and length.isdigit() and int(length) > max_upload + _FORM_OVERHEAD:
            # refused before the body is read: nothing is spooled, nothing written
            return error_page(request, 413, f"文件超过 {max_upload // (1024 * 1024)} MB，未接收")
        try:
            account = editing.account(request)
            if account is None and not path.startswith(("/static/", "/login")):
                return RedirectResponse("/login", status_code=303)
            request.state.account = account
            refused = editing.refusal(request, account) if account is not None else ""
            if refused:
                return error_page(request, 403, refused, "如需修改，请联系档案员调整账号权限。")
            response = await call_next(request)
        except ArchiveError as exc:
            response = await archive_error(request, exc)
        except Exception as exc:  # noqa: BLE001 - the last boundary: a Chinese page, never a traceback
            response = await internal_error(request, exc)
        finally:
            form = getattr(request.state, "form", None)
            if form is not None:
                await form.close()
        if fresh:
            response.set_cookie(SESSION_COOKIE, session, httponly=True, samesite="strict")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "SAMEORIGIN")
        return response

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:  # uploaded sheets and photos hold personal data: none outlives the server
            shutil.rmtree(uploads, ignore_errors=True)

    app = Starlette(routes=routes, lifespan=lifespan,
                    middleware=[Middleware(BaseHTTPMiddleware, dispatch=session_and_auth)],
                    exception_handlers={
        HTTPException: http_error, ArchiveError: archive_error, Exception: internal_error,
    })

    app.state.workspace = workspace
    app.state.uploads = uploads
    return app


async def _threaded(function: Any, *args: Any, **kwargs: Any) -> Any:
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(function, *args, **kwargs)
