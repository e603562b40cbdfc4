"""The web app's one door into the core: every core call the pages make goes through here.

When ``archive_builder.api`` lands, only this module changes. Nothing here prints, imports
click or the web framework; functions take plain arguments, return plain values and raise
the core's typed errors (``ArchiveError``).

``Workspace`` (``workspace``) keeps the parsed records of one data directory warm, indexed
once for search; ``recordview`` shows a record as labelled sections; ``builds`` runs builds
started from a page. The pages take all of it from here.
"""

from __future__ import annotations

import io
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
        return {
            "title": comparison.title, "old_name": comparison.old_name, "new_name": comparison.new_name,
            "identical": comparison.identical, "summary": comparison.summary(), "notes": comparison.notes,
            "fields": _field_rows(comparison), "texts": comparison.text_changes,
            "pages": comparison.pages, "pictures": pictures,
        }


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


def check_sheet(path: Path) -> None:
    """Raise UploadError unless ``path`` is a sheet that opens."""
    from ..io.spreadsheet import read_rows

    try:
        read_rows(path)
    except ArchiveError as exc:
        raise UploadError(exc.message, hint=exc.hint or "请上传从国家系统导出的 .xlsx、.xls 或 .csv 表格") from exc
    except Exception as exc:
        raise UploadError("上传的表格无法打开：文件已损坏或不是表格",
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


def import_sheet(workspace: Workspace, path: Path, *, dry_run: bool, force: bool = False) -> Any:
    from ..io.spreadsheet import import_sheet as core_import

    return core_import(path, workspace.data_dir, force=force, dry_run=dry_run)


def problems_json(problems: list[Problem]) -> list[dict[str, Any]]:
    return [{"severity": p.severity.label, "error": p.severity is Severity.error, "message": p.message,
             "hint": p.hint or "", "field": field_label(p.field)} for p in problems]


def village_stats(workspace: Workspace, code: str) -> dict[str, Any]:
    """The statistics tables of one village (贫情分析, 三色), as the ``stats`` command counts them."""
    from ..reports.stats import village_tables

    return village_tables(workspace.data_dir, code).to_json()


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

