"""The web app's one door into the core: every core call the pages make goes through here.

When ``archive_builder.api`` lands, only this module changes. Nothing here prints, imports
click or the web framework; functions take plain arguments, return plain values and raise
the core's typed errors (``ArchiveError``).

``Workspace`` (``workspace``) keeps the parsed records of one data directory warm, indexed
once for search; ``recordview`` shows a record as labelled sections; ``builds`` runs builds
started from a page. The pages take all of it from here.
"""

from __future__ import annotations

import functools
import io
import re
import tempfile
from pathlib import Path
from typing import Any

from ..errors import ArchiveError, StoreError
from ..problems import Problem, Severity
from ..render.pdfiumlock import PDFIUM
from .builds import BuildBusy  # noqa: F401 - the pages take these from here
from .recordview import (
    field_label,
    record_sections,  # noqa: F401
)
from .workspace import Row, VillageInfo, Workspace  # noqa: F401


class UploadError(ArchiveError):
    """An uploaded file is refused (too large, wrong kind, does not open)."""

    kind = "上传的文件无法使用"



# --- versions, comparison, pages ------------------------------------------------------------


def history(workspace: Workspace, household_id: str) -> list[Any]:
    from ..versions.diff import history as core_history

    store = workspace.store()
    if not store.exists():
        return []
    with store:
        if not store.versions(household_id):  # not regenerated yet while others were
            return []
        return core_history(store, household_id)


def compare(workspace: Workspace, household_id: str, old: int, new: int) -> dict[str, Any]:
    """The comparison of two versions, as ``diff --report`` draws it: fields and page pairs."""
    with PDFIUM:  # one use of pdfium at a time in this process (the pages run on a thread pool)
        return _compare(workspace, household_id, old, new)


def _compare(workspace: Workspace, household_id: str, old: int, new: int) -> dict[str, Any]:
    import base64

    from ..versions.diff import compare_versions
    from ..versions.diffreport import REPORT_DPI, _field_rows, _pictures

    store = workspace.store()
    if not store.exists():
        raise StoreError("还没有任何版本记录", hint="请先生成档案")
    with store:
        comparison = compare_versions(store, household_id, old, new)
        pictures = []
        for pic in _pictures(comparison, REPORT_DPI, 30):
            pictures.append({
                "old": pic.old, "new": pic.new, "regions": pic.regions,
                # the pages as printed: "第 3 页（档案第 57 页）"
                "old_name": comparison.old_page(pic.old) if pic.old else None,
                "new_name": comparison.new_page(pic.new) if pic.new else None,
                "old_png": base64.b64encode(pic.old_png).decode() if pic.old_png else None,
                "new_png": base64.b64encode(pic.new_png).decode() if pic.new_png else None,
            })
        names = _version_names(workspace, store, household_id)
        return {
            "title": comparison.title, "old_name": names.get(old, comparison.old_name),
            "new_name": names.get(new, comparison.new_name),
            "identical": comparison.identical, "summary": comparison.summary(), "notes": comparison.notes,
            "fields": _field_rows(comparison), "texts": comparison.text_changes,
            "pages": comparison.pages, "pictures": pictures,
        }


def _version_names(workspace: Workspace, store: Any, household_id: str) -> dict[int, str]:
    """Each version as the pages name it: its time, hash, pages and 修改人 — whoever the edit
    journal says changed the data between the previous version and this one (not the account
    the server runs under, which the store records)."""
    from datetime import datetime

    from ..versions import journal

    def moment(text: str) -> datetime | None:
        try:
            found = datetime.fromisoformat(text)
        except ValueError:
            return None
        return found if found.tzinfo is not None else found.astimezone()

    edits: list[tuple[datetime, str]] = []
    for entry in journal.entries(workspace.out_dir, household_id):
        at = moment(entry.at)
        if at is not None:
            edits.append((at, entry.user))
    edits.sort(key=lambda e: e[0])
    names: dict[int, str] = {}
    previous: datetime | None = None
    for version in store.versions(household_id):
        made = moment(version.created_at)
        editors: list[str] = []
        for at, user in edits:
            if made is not None and at <= made and (previous is None or at > previous) and user not in editors:
                editors.append(user)
        who = f"，修改人 {'、'.join(editors)}" if editors else ""
        names[version.number] = f"版本 {version.number}（{version.when}，{version.short_hash}，{version.pages} 页{who}）"
        previous = made
    return names


def page_png(pdf: Path, page: int, dpi: float = 50) -> bytes:
    """One page of a PDF as PNG bytes (1-based page number)."""
    from ..versions.pdfdiff import _open

    with _open(pdf) as document:
        if not 1 <= page <= len(document.doc):
            raise ValueError(f"page {page} out of range")
        image = document.render(page - 1, dpi)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


# --- paper copies and sheets ----------------------------------------------------------------


def check_image(data: bytes) -> None:
    """Raise UploadError unless ``data`` is an image Pillow can open."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
    except Exception as exc:
        raise UploadError("上传的文件不是可识别的图片，或图片已损坏",
                          hint="请上传封面的 JPG 或 PNG 照片，保证二维码清晰") from exc


def change_rows(changes: list[Any]) -> list[tuple[str, str, str, str]]:
    """Field changes as table rows (字段, 原值, 新值, 类型), as the comparison report shows them."""
    from ..versions.diff import format_value

    kinds = {"added": "新增", "removed": "删除", "changed": "修改"}
    return [(c.label, format_value(c.old, prefix=c.schema), format_value(c.new, prefix=c.schema),
             kinds.get(c.kind, c.kind)) for c in changes]


def verify_text(workspace: Workspace, text: str) -> Any:
    from ..versions.verify import verify

    store = workspace.store()
    if not store.exists():
        raise StoreError("输出目录中还没有版本记录，无法核对", hint="请先生成档案")
    with store:
        return verify(store, text.strip())


def verify_photo(workspace: Workspace, data: bytes, suffix: str) -> Any:
    from ..versions.verify import decode_qr_image

    check_image(data)
    with tempfile.TemporaryDirectory(prefix="archive-builder-web-") as tmp:
        path = Path(tmp) / f"封面{suffix}"
        path.write_bytes(data)
        text = decode_qr_image(path)
    return verify_text(workspace, text)


SHEET_SUFFIXES = (".xlsx", ".xls", ".csv")


def _renamed(text: str, path: Path, shown_name: str | None) -> str:
    """``text`` naming the uploaded file as its user named it, not as the server saved it."""
    return text.replace(path.name, shown_name) if shown_name else text


def check_sheet(path: Path, shown_name: str | None = None) -> None:
    """Raise UploadError unless ``path`` is a sheet that opens (``shown_name``: the user's file name)."""
    from ..io.spreadsheet import read_rows

    try:
        read_rows(path)
    except ArchiveError as exc:
        raise UploadError(_renamed(exc.message, path, shown_name),
                          hint=_renamed(exc.hint or "请上传从国家系统导出的 .xlsx、.xls 或 .csv 表格", path, shown_name)) from exc
    except Exception as exc:
        name = f"「{shown_name}」" if shown_name else "上传的表格"
        raise UploadError(f"{name}无法打开：文件已损坏或不是表格",
                          hint="请上传从国家系统导出的 .xlsx、.xls 或 .csv 表格") from exc


def export_sheet(data_dir: Path, path: Path) -> int:
    """Write the data directory as a one-row-per-person .xlsx; return the rows written."""
    from ..io.spreadsheet import export_sheet as core_export

    return int(core_export(Path(data_dir), Path(path)))


def build_now(data_dir: Path, out_dir: Path, villages: tuple[str, ...] = (), reporter: Any = None,
              jobs: int | None = 1) -> Any:
    """Run a build in this process (the pages start theirs in a child: ``BuildJob``)."""
    from ..archive.build import BuildOptions, build

    return build(Path(data_dir), Path(out_dir), BuildOptions(villages=villages, jobs=jobs), reporter)


def import_sheet(workspace: Workspace, path: Path, *, dry_run: bool, force: bool = False,
                 shown_name: str | None = None, editor: str = "") -> Any:
    """Import (or dry-run) a sheet; an applied import journals each updated household as ``editor``."""
    from ..io.spreadsheet import import_sheet as core_import

    try:
        report = core_import(path, workspace.data_dir, force=force, dry_run=dry_run, shown_name=shown_name)
    except ArchiveError as exc:
        if shown_name and (path.name in exc.message or path.name in (exc.hint or "")):
            exc.message = _renamed(exc.message, path, shown_name)
            exc.hint = _renamed(exc.hint or "", path, shown_name) or None
        raise
    if not dry_run:
        journal_import(workspace, report, editor)
    return report


def _canonical(record: dict[str, Any]) -> dict[str, Any]:
    """A record as ``diff_records`` compares them (the model's JSON form; plain JSON if it does not validate)."""
    import json

    from ..records.models import Household

    try:
        return Household.model_validate(record).model_dump(mode="json", warnings=False)
    except Exception:  # noqa: BLE001 - a record with problems is still diffed, field by field
        return dict(json.loads(json.dumps(record, ensure_ascii=False, default=str)))


def journal_import(workspace: Workspace, report: Any, editor: str) -> None:
    """One journal entry per household the import updated, with its labelled field changes."""
    from ..versions import journal
    from ..versions.diff import _change_line, diff_records, summarize

    for household_id in report.updated:
        change = report.changes.get(household_id)
        if change is None:
            continue
        changes = diff_records(_canonical(change.before), _canonical(change.after))
        row = workspace.row(household_id)
        try:
            journal.record(workspace.out_dir, user=editor, household_id=household_id,
                           village_code=row.village_code if row is not None else "",
                           action=f"导入表格「{report.source.name}」时修改了",
                           changes=[_change_line(c) for c in changes], summary=summarize(changes),
                           before_sha=change.before_sha, after_sha=change.after_sha)
        except StoreError as exc:  # the data is imported: say the journal is missing, do not fail
            report.notes.append(f"修改记录未能写入（{exc.message}），表格已导入。")
            return


#: the import page's checkbox that does what the command line's --force does
FORCE_CHECKBOX = "覆盖已有户的数据（表格中没有的字段保留）"

#: the core's wording for the command line, as people using the pages read it instead
_BROWSER_WORDING: tuple[tuple[re.Pattern[str], str], ...] = tuple((re.compile(a), b) for a, b in (
    # a key name is for people who edit household.yaml; the page shows the Chinese label only
    (r"[（(]键名 [A-Za-z0-9_.\[\]]+[）)]", ""),
    (r"请检查 -o 指定的输出目录", "请确认本服务打开的是生成这份档卡时的输出目录（如不确定，请联系管理员）"),
    (r"或用 -o 指定生成这份档卡时的输出目录", "或请管理员用生成这份档卡时的输出目录启动本服务"),
    (r"或用 -o 指定(?:正确的|其他)?输出目录", "或请联系管理员"),
    (r"确认要用表格内容更新时加 --force", f"确认要用表格内容更新时，请勾选「{FORCE_CHECKBOX}」后重新上传"),
    (r"已用 --force 更新的户", f"勾选「{FORCE_CHECKBOX}」后更新的户"),
    (r"请先运行 archive-builder build", "请先在乡镇总览点「开始生成」"),
    (r"请用 archive-builder packet \S+ \S+ --store \S+ 重新生成并打印，\s*或打印 build 生成的档卡。",
     "请在该户的页面点「重新生成」后打印，或打印乡镇总览「开始生成」生成的档卡。"),
    (r"（规则见模板 stats/stats\.toml）", "（划分规则由管理员设置）"),
))


#: a record's key followed by its Chinese label: "costs（生产经营性支出）"
_KEY_AND_LABEL = re.compile(r" ?\b([a-z][a-z0-9_]*)（([^（）]*[\u4e00-\u9fff][^（）]*)）")


@functools.lru_cache(maxsize=1)
def _record_keys() -> frozenset[str]:
    """Every key of a household record (of the record and its nested parts)."""
    from ..records.models import Household
    from .recordview import _inner_model

    keys: set[str] = set()
    stack, seen = [Household], set()
    while stack:
        model = stack.pop()
        if model in seen:
            continue
        seen.add(model)
        for name, info in model.model_fields.items():
            keys.add(name)
            inner = _inner_model(info.annotation)
            if inner is not None:
                stack.append(inner)
    return frozenset(keys)


def browser_text(text: Any) -> str:
    """``text`` (a message or hint of the core) with its command-line instructions and key
    names put as the pages say them: their own buttons and checkboxes, Chinese labels."""
    value = "" if text is None else str(text)
    for pattern, replacement in _BROWSER_WORDING:
        value = pattern.sub(replacement, value)
    if "（" in value:
        keys = _record_keys()
        value = _KEY_AND_LABEL.sub(lambda m: m.group(2) if m.group(1) in keys else m.group(0), value)
    return value


def problems_json(problems: list[Problem]) -> list[dict[str, Any]]:
    return [{"severity": p.severity.label, "error": p.severity is Severity.error, "message": browser_text(p.message),
             "hint": browser_text(p.hint or ""), "field": field_label(p.field)} for p in problems]


def village_stats(workspace: Workspace, code: str) -> dict[str, Any]:
    """The statistics tables of one village (贫情分析, 三色), as the ``stats`` command counts them."""
    from ..reports.stats import village_tables

    return village_tables(workspace.data_dir, code).to_json()


def ledger_file(workspace: Workspace, code: str, path: Path, *, as_pdf: bool = False) -> Path:
    """Write one village's 问题台账 to ``path`` as ``archive-builder audit -o`` does (.xlsx or .pdf)."""
    from .. import api

    result = api.audit(workspace.data_dir, villages=[code], jobs=1)
    return api.write_ledger(result, path, as_pdf=as_pdf, data_dir=workspace.data_dir)


def stats_file(workspace: Workspace, code: str, path: Path) -> Path:
    """Write one village's statistics to ``path`` (.xlsx or .pdf) as ``archive-builder stats`` does."""
    from .. import api

    return Path(api.stats(workspace.data_dir, path, villages=(code,)).output.path)


def village_ledger(workspace: Workspace, code: str) -> list[Any]:
    """The 问题台账 rows of one village: the policy audit, as the ``audit`` command finds them."""
    from ..checks.audit import village_ledger as ledger

    return ledger(workspace.data_dir, code)


def household_ledger(workspace: Workspace, household_id: str) -> list[Any]:
    """The 问题台账 rows of one household (an empty list when its record cannot be audited)."""
    from ..checks.audit import household_ledger as ledger
    from ..errors import ArchiveError

    try:
        return ledger(workspace.data_dir, household_id)
    except ArchiveError:
        return []  # its data problems are shown already; the audit needs a readable record

