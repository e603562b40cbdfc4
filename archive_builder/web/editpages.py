"""The pages and rules of editing: the edit form, live checks, saves, evidence, accounts.

``EditPages(app_context)`` gives the routes ``app.py`` mounts and the two hooks it calls: the
account of a request (``account``) and the refusal of a request the account may not make
(``refusal``). Core work goes through ``web.edit`` and ``web.core``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hmac
import secrets
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from ..errors import ValidationFailed
from . import accounts, core, edit

MAX_FIELDS = 20000
NOTHING_CHANGED = "没有修改，未保存"


#: wrong passwords allowed for one account within LOGIN_WINDOW seconds before logins pause
LOGIN_ATTEMPTS = 5
LOGIN_WINDOW = 300


@dataclass
class AppContext:
    """What the edit pages borrow from ``create_app``."""

    workspace: core.Workspace
    page: Callable[..., Response]
    csrf_token: Callable[[Request], str]
    household_row: Callable[[str], core.Row]
    max_upload: int


class EditPages:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.workspace = ctx.workspace
        self.sessions: dict[str, str] = {}  # account cookie → account name
        self.failures: dict[str, list[float]] = {}  # account name → times of recent wrong passwords

    # --- accounts -------------------------------------------------------------------------------
    def known_accounts(self) -> dict[str, accounts.Account]:
        return accounts.load(self.workspace.out_dir)

    def account(self, request: Request) -> accounts.Account | None:
        """The request's account; LOCAL without accounts; None when a login is needed."""
        known = self.known_accounts()
        if not known:
            return accounts.LOCAL
        name = self.sessions.get(request.cookies.get(edit.ACCOUNT_COOKIE, ""), "")
        return known.get(name)

    def refusal(self, request: Request, account: accounts.Account) -> str:
        """Why ``account`` may not make this request ("" when it may)."""
        path, method = request.url.path, request.method
        if method != "POST" and not path.endswith("/edit"):
            return ""
        if path in ("/login", "/logout", "/verify", "/reload") or path.endswith("/check"):
            return ""
        if account.read_only:
            return f"{account.role}账号只能查看、比较和核对，不能修改数据或生成档案。"
        if path.startswith("/household/"):
            hid = urllib.parse.unquote(path.split("/")[2])
            row = self.workspace.row(hid) if self.workspace.loaded_at else None
            if row is None:
                self.workspace.ensure_loaded()
                row = self.workspace.row(hid)
            if row is not None and not account.may_edit(row.village_code, row.village_name):
                return f"您的账号（{account.role}）只能修改{'、'.join(account.villages)}的数据，不能修改{row.village_name}的户。"
            return ""
        if path.startswith("/import") and not account.can_edit_anything:
            return "只有档案员可以导入表格。"
        return ""

    def may_build(self, account: accounts.Account, village_code: str) -> str:
        if account.can_edit_anything:
            return ""
        info = self.workspace.village(village_code) if village_code else None
        if account.role == "村文书" and info is not None and account.may_edit(info.code, info.name):
            return ""
        return "您的账号只能生成自己所管村的档案：请在村页面中生成。"

    async def login_form(self, request: Request) -> Response:
        return self.ctx.page(request, "login_account.html", wrong=False, login_name="")

    async def login(self, request: Request) -> Response:
        import time

        form = await request.form(max_files=0, max_fields=10)
        sent = str(form.get("csrf") or "")
        if not sent or not hmac.compare_digest(sent, self.ctx.csrf_token(request)):
            # a login posted from another site would sign this browser into someone else's account
            raise HTTPException(403, "页面已过期或请求来源不明（缺少安全令牌）。请刷新页面后重试。")
        name, password = str(form.get("name") or "").strip(), str(form.get("password") or "")
        now = time.monotonic()
        recent = [t for t in self.failures.get(name, []) if now - t < LOGIN_WINDOW]
        if len(recent) >= LOGIN_ATTEMPTS:
            raise HTTPException(429, f"密码连续输错 {LOGIN_ATTEMPTS} 次，请 {LOGIN_WINDOW // 60} 分钟后再试，"
                                     "或请档案员用 archive-builder users add 重设密码。")
        account = self.known_accounts().get(name)
        if account is None or not accounts.check_password(account, password):
            self.failures[name[:50]] = [*recent, now]
            return self.ctx.page(request, "login_account.html", status_code=403, wrong=True, login_name=name[:50])
        self.failures.pop(name, None)
        cookie = secrets.token_urlsafe(24)
        self.sessions[cookie] = account.name
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(edit.ACCOUNT_COOKIE, cookie, httponly=True, samesite="strict")
        return response

    async def logout(self, request: Request) -> Response:
        await self.form(request)
        self.sessions.pop(request.cookies.get(edit.ACCOUNT_COOKIE, ""), None)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(edit.ACCOUNT_COOKIE)
        return response

    # --- helpers --------------------------------------------------------------------------------
    async def form(self, request: Request) -> Any:
        form = await request.form(max_files=2, max_fields=MAX_FIELDS)
        request.state.form = form
        sent = str(form.get("csrf") or request.headers.get("x-csrf-token") or "")
        if not sent or not hmac.compare_digest(sent, self.ctx.csrf_token(request)):
            raise HTTPException(403, "页面已过期或请求来源不明（缺少安全令牌）。请刷新页面后重试。")
        return form

    def editor(self, request: Request, form: Any) -> str:
        account = request.state.account
        if account.name:
            return str(account.name)
        name = str(form.get("editor") or "").strip()[:30]
        if not name:
            raise core.UploadError("请填写您的姓名（记入修改记录）", hint="在“上传佐证材料”框中的“修改人”一栏填写姓名，再重新选择文件上传")
        return name

    @staticmethod
    def remember(response: Response, request: Request, name: str) -> Response:
        if not request.state.account.name:
            response.set_cookie(edit.EDITOR_COOKIE, urllib.parse.quote(name), httponly=True, samesite="strict",
                                max_age=3600 * 24 * 180)
        return response

    def record_file(self, row: core.Row) -> Path:
        if row.loaded.file is None:
            raise core.UploadError("本户文件夹中没有可修改的记录文件", hint="请先用文本编辑器改正记录文件")
        return Path(row.loaded.file)

    def household_context(self, request: Request, row: core.Row) -> dict[str, Any]:
        """What the household page shows of editing: journal, evidence upload, the edit button."""
        account = request.state.account
        may = not account.read_only and account.may_edit(row.village_code, row.village_name)
        choices = edit.quick_evidence_choices(Path(row.loaded.file)) if may and row.loaded.file is not None else []
        return {"journal": edit.journal.entries(self.workspace.out_dir, row.household_id), "may_edit": may,
                "evidence_choices": choices, "evidence_types": edit.evidence_types(),
                "editor": self.editor_name(request), "account": account}

    def editor_name(self, request: Request) -> str:
        account = request.state.account
        return account.name or urllib.parse.unquote(request.cookies.get(edit.EDITOR_COOKIE, ""))[:30]

    def edit_page(self, request: Request, row: core.Row, base: edit.yamlwrite.EditableRecord, view: dict[str, Any],
                  problems: list[Any], status: int = 200, message: str = "", editor: str = "",
                  typed: bool = False) -> Response:
        """The form; ``typed``: it shows values typed in a refused save (not the file's), so
        leaving the page loses them."""
        return self.ctx.page(request, "edit.html", status_code=status, row=row, sections=edit.form_sections(view),
                             base_sha=base.sha, base_text=edit.pack_base(base), problems=problems,
                             editor=editor or self.editor_name(request), account=request.state.account,
                             message=message, file_name=base.path.name, typed=typed)

    # --- the form -------------------------------------------------------------------------------
    async def edit_form(self, request: Request) -> Response:
        row = self.ctx.household_row(request.path_params["hid"])
        base = edit.yamlwrite.open_record(self.record_file(row))
        return self.edit_page(request, row, base, base.doc, edit.problems_for_form(row.problems))

    async def check(self, request: Request) -> Response:
        """Live checks as the clerk types: the problems the form's values would have, as JSON."""
        row = self.ctx.household_row(request.path_params["hid"])
        form = await self.form(request)
        raw = edit.unpack_raw(str(form.get("base") or ""), str(form.get("base_text") or ""))
        if raw is None:
            return JSONResponse({"problems": [], "stale": True})
        from .app import _threaded

        problems = await _threaded(edit.quick_problems, self.workspace, row, raw, edit.wanted_from_form(form))
        return JSONResponse({"problems": edit.problems_for_form(problems),
                             "errors": sum(1 for p in problems if p.is_error)})

    async def save(self, request: Request) -> Response:
        from .app import _threaded

        row = self.ctx.household_row(request.path_params["hid"])
        form = await self.form(request)
        path = self.record_file(row)
        editor = self.editor(request, form)
        wanted = edit.wanted_from_form(form)
        sent_sha = str(form.get("base") or "")
        base = edit.unpack_base(path, sent_sha, str(form.get("base_text") or ""))
        disk = edit.yamlwrite.open_record(path)
        if base is None or disk.sha != sent_sha:
            return await self.conflict(request, row, base, disk, wanted)
        before = row.loaded
        plain = _plain_doc(disk.doc)
        found = await _threaded(edit.candidate, self.workspace, row, disk, wanted)
        if found.errors:
            view = edit.overlay(plain, wanted)
            return self.remember(self.edit_page(
                request, row, edit.yamlwrite.open_record(path), view, edit.problems_for_form(found.problems), status=400,
                message=f"有 {len(found.errors)} 处错误，没有保存。请按标红的提示改正后再保存（已填写的内容都还在）。",
                editor=editor, typed=True),
                request, editor)
        lines, summary = edit.change_lines(before, found.loaded) if found.data != disk.raw else ([], "")
        if not lines:  # nothing the record says changed: no write, no version, no journal line
            return self._back(request, row, NOTHING_CHANGED, editor)
        try:
            edit.yamlwrite.replace(path, found.data, disk.sha)
        except edit.yamlwrite.EditConflict:
            return await self.conflict(request, row, base, edit.yamlwrite.open_record(path), wanted)
        edit.journal.record(self.workspace.out_dir, user=editor, household_id=row.household_id,
                       village_code=row.village_code, action="修改了", changes=lines, summary=summary,
                       before_sha=disk.sha, after_sha=edit.yamlwrite.sha256(found.data))
        message = await self._regenerate(row.household_id, "已保存")
        return self._back(request, row, message, editor)

    async def conflict(self, request: Request, row: core.Row, base: edit.yamlwrite.EditableRecord | None,
                       disk: edit.yamlwrite.EditableRecord, wanted: dict[str, Any]) -> Response:
        """The file changed since the form was opened: nothing saved; both versions shown."""
        from .app import _threaded

        mine_text, lines = "", list[str]()
        if base is not None:
            # what this clerk changed in the form (from the version it was opened on): not the
            # other person's changes, which copying "your version" would undo
            opened, _ = await _threaded(edit._check, self.workspace, row, base.raw)
            mine = await _threaded(edit.candidate, self.workspace, row, base, wanted)
            mine_text = edit.yamlwrite.decode(mine.data)[0]
            lines, _summary = edit.change_lines(opened, mine.loaded)
        return self.ctx.page(request, "conflict.html", status_code=409, row=row, disk_text=disk.text,
                             mine_text=mine_text, lines=lines, file_name=disk.path.name)

    async def _regenerate(self, household_id: str, done: str) -> str:
        from .app import _threaded

        try:
            version, new = await _threaded(self.workspace.regenerate, household_id)
        except core.BuildBusy:
            await _threaded(self._refresh, household_id)
            return f"{done}；另一个生成任务正在进行，档卡稍后请点“重新生成”"
        except ValidationFailed:
            return f"{done}；数据仍有错误，未重新生成档卡"
        return f"{done}，已重新生成档卡（版本 {version.number}）" if new else f"{done}，档卡内容未变（版本 {version.number}）"

    def _refresh(self, household_id: str) -> None:
        edit.refresh_row(self.workspace, household_id)

    def _back(self, request: Request, row: core.Row, message: str, editor: str) -> Response:
        response = RedirectResponse(f"/household/{edit.quoted(row.household_id)}?msg={urllib.parse.quote(message)}",
                                    status_code=303)
        return self.remember(response, request, editor)

    # --- evidence -------------------------------------------------------------------------------
    async def upload(self, request: Request) -> Response:
        from .app import _threaded

        row = self.ctx.household_row(request.path_params["hid"])
        form = await self.form(request)
        editor = self.editor(request, form)
        upload = form.get("file")
        if upload is None or isinstance(upload, str) or not upload.filename:
            raise core.UploadError("请选择要上传的照片、扫描件或 PDF", hint="支持 JPG、PNG、TIF、HEIC 和 PDF")
        data = await upload.read(self.ctx.max_upload + 1)
        if len(data) > self.ctx.max_upload:
            raise HTTPException(413, f"文件超过 {self.ctx.max_upload // (1024 * 1024)} MB，未接收")
        suffix = await _threaded(edit.checked_evidence, bytes(data), upload.filename)
        kind = str(form.get("type") or "").strip()[:20]
        title = str(form.get("title") or "").strip()[:60] or Path(upload.filename).stem[:60]
        replace_at = str(form.get("replace") or "")
        path = self.record_file(row)
        disk = edit.yamlwrite.open_record(path)
        index = int(replace_at) if replace_at.isdigit() else None
        choices = dict(edit.evidence_choices(disk.doc))
        if index is not None and index not in choices:
            raise core.UploadError("要替换的佐证材料已不存在（记录文件可能刚被修改）", hint="请刷新页面后重试")
        folder = row.loaded.folder
        name = edit.safe_evidence_name(folder, kind, title, suffix)
        edit.write_file(folder / name, bytes(data))
        retired, old_file = None, ""
        try:
            if index is not None:
                old = disk.doc.get("evidence")[index]
                old_file = str(old.get("file") if isinstance(old, dict) else old)
                retired = edit.retire(folder, old_file)
            wanted = edit.evidence_wanted(disk.doc, index, name, kind,
                                          title if index is None or form.get("title") else "",
                                          _date(str(form.get("date") or "")))
            found = await _threaded(edit.candidate, self.workspace, row, disk, wanted)
            lines, _summary = edit.change_lines(row.loaded, found.loaded)
            edit.yamlwrite.replace(path, found.data, disk.sha)
        except BaseException:  # the record was not changed: leave the folder as it was
            (folder / name).unlink(missing_ok=True)
            if retired:
                edit.unretire(folder, retired, old_file)
            raise
        if retired:
            lines.append(f"原文件已改名保留为 {retired}")
        edit.journal.record(self.workspace.out_dir, user=editor, household_id=row.household_id,
                       village_code=row.village_code, action="替换了佐证材料" if index is not None else "上传了佐证材料",
                       changes=lines, summary=f"{title}（{name}）", before_sha=disk.sha,
                       after_sha=edit.yamlwrite.sha256(found.data))
        message = await self._regenerate(row.household_id, f"已上传 {name}")
        return self._back(request, row, message, editor)

    def routes(self) -> list[Route]:
        return [
            Route("/household/{hid}/edit", self.edit_form),
            Route("/household/{hid}/edit", self.save, methods=["POST"]),
            Route("/household/{hid}/check", self.check, methods=["POST"]),
            Route("/household/{hid}/evidence", self.upload, methods=["POST"]),
            Route("/login", self.login, methods=["POST"]),
            Route("/logout", self.logout, methods=["POST"]),
        ]


def _plain_doc(doc: Any) -> Any:
    if isinstance(doc, dict):
        return {k: _plain_doc(v) for k, v in doc.items()}
    if isinstance(doc, list):
        return [_plain_doc(v) for v in doc]
    return doc


def _date(text: str) -> dt.date | None:
    """The evidence's own date when the form gives one (never the upload day in its place)."""
    with contextlib.suppress(ValueError):
        return dt.date.fromisoformat(text.strip())
    return None
