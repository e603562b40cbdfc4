"""Comparisons for inspectors: two stored versions of a household, or any two PDF files.

``compare_versions`` ties together the field-level record diff (``recorddiff``), the text
changes of the rendered document model (``docdiff``), the PDF text and page diff
(``pdfdiff``) and names every page as printed: the packet's own 第 N 页 and, where the version
sits in a box of the output, its archive page number (``placement``). ``compare_pdfs``
compares two bare files; ``history`` lists a household's versions; the reports are drawn by
``diffreport``. The record-diff names are re-exported here for callers of this module.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .pdfdiff import (
    SectionTextChange,
    changed_pages,
    compare_pdf_files,
    diff_pdf_text,
    raster_diff,
)
from .recorddiff import (
    FieldChange,
    Labels,
    _change_line,
    diff_evidence_files,
    diff_records,
    format_value,
    summarize,
)

if TYPE_CHECKING:
    from .store import Version, VersionStore

__all__ = [
    "Comparison",
    "FieldChange",
    "SectionTextChange",
    "changed_pages",
    "compare_pdfs",
    "compare_versions",
    "diff_pdf_text",
    "diff_records",
    "format_history",
    "format_value",
    "history",
    "raster_diff",
    "summarize",
    "write_report",
]


# -- comparisons the CLI prints -------------------------------------------------------------


@dataclass
class Comparison:
    """The outcome of ``diff``: identical → exit 0, different → exit 1."""

    title: str
    old_name: str
    new_name: str
    old_pdf: Path | None
    new_pdf: Path | None
    field_changes: list[FieldChange] = field(default_factory=list)
    text_changes: list[SectionTextChange] = field(default_factory=list)
    #: changed pages as (old page, new page), 1-based; None where a page has no counterpart
    pages: list[tuple[int | None, int | None]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: True when two stored records were compared (False for two bare PDF files)
    records_compared: bool = False
    #: 1-based PDF page -> the page number printed on it (numbered pages only)
    old_printed: dict[int, int] = field(default_factory=dict)
    new_printed: dict[int, int] = field(default_factory=dict)
    #: 1-based PDF page -> the archive page number (编页) it carries in its box, where the
    #: version's packet sits in a box of the output (numbered pages only)
    old_archive: dict[int, int] = field(default_factory=dict)
    new_archive: dict[int, int] = field(default_factory=dict)

    def old_page(self, page: int) -> str:
        """Return "第 3 页（档案第 57 页）": page ``page`` of the old version as printed."""
        return page_name(page, self.old_printed, self.old_archive)

    def new_page(self, page: int) -> str:
        return page_name(page, self.new_printed, self.new_archive)

    def page_pair(self, old: int | None, new: int | None) -> str:
        """Return "原第 3 页 → 新第 3 页" with the numbers printed on the pages."""
        return page_pair_text(old, new, self.old_printed, self.new_printed, self.old_archive, self.new_archive)

    @property
    def identical(self) -> bool:
        return not (self.field_changes or self.text_changes or self.pages)

    @property
    def exit_code(self) -> int:
        from ..errors import ExitCode

        return int(ExitCode.ok if self.identical else ExitCode.problems)

    def summary(self) -> str:
        """Return the one-line summary of the field changes (or of the page changes)."""
        if self.field_changes:
            return summarize(self.field_changes)
        if self.identical:
            return "无变化"
        text = f"文本变化 {len(self.text_changes)} 处 · 页面变化 {len(self.pages)} 页"
        return f"字段无变化 · {text}" if self.records_compared else text

    def format_text(self) -> str:
        """Return the Chinese text the CLI prints."""
        lines = [f"{self.title}", f"  原：{self.old_name}", f"  新：{self.new_name}"]
        lines += [f"  {note}" for note in self.notes]
        if self.identical:
            lines.append("结论：两者相同。")
            return "\n".join(lines)
        lines.append(f"结论：有变化（{self.summary()}）。")
        if self.field_changes:
            lines.append(f"\n字段变化（{len(self.field_changes)} 项）：")
            for c in self.field_changes:
                lines.append(f"  {_change_line(c)}")
        elif self.records_compared:
            # e.g. members listed in another order: the packet changed, no field did
            lines.append("\n字段变化：无（记录数据相同；以下仅为顺序或版式的变化）")
        if self.text_changes:
            lines.append(f"\n文本变化（{len(self.text_changes)} 个部分）：")
            for t in self.text_changes:
                lines.append(f"  ▌{t.heading()}")
                lines += [f"    {line}" for line in t.lines]
        if self.pages:
            lines.append(f"\n变化的页面（{len(self.pages)} 处）：")
            lines.append("  " + "；".join(self.page_pair(a, b) for a, b in self.pages))
        return "\n".join(lines)


def page_name(page: int, printed: Mapping[int, int] | None = None, archive: Mapping[int, int] | None = None) -> str:
    """Return "第 3 页" as printed on the page (PDF page ``page``, 1-based), or where the page
    carries no number "封面" (the first) or "未编页码的第 5 张" (separator sheets); with the
    archive page number the page carries in its box: "第 3 页（档案第 57 页）"."""
    box_number = (archive or {}).get(page)
    box = f"（档案第 {box_number} 页）" if box_number else ""
    if printed is None:
        return f"第 {page} 页{box}"
    number = printed.get(page)
    if number is not None:
        return f"第 {number} 页{box}"
    return ("封面" if page == 1 else f"未编页码的第 {page} 张") + box


def page_pair_text(old: int | None, new: int | None, old_printed: Mapping[int, int] | None = None,
                   new_printed: Mapping[int, int] | None = None, old_archive: Mapping[int, int] | None = None,
                   new_archive: Mapping[int, int] | None = None) -> str:
    """Return "原第 3 页 → 新第 3 页" (or 新增/删除), with the printed numbers when given."""
    if old is None:
        return f"新增 新{page_name(new or 0, new_printed, new_archive)}"
    if new is None:
        return f"删除 原{page_name(old, old_printed, old_archive)}"
    return f"原{page_name(old, old_printed, old_archive)} → 新{page_name(new, new_printed, new_archive)}"


def _version_name(v: Version) -> str:
    return (
        f"版本 {v.number}（{v.when}，{v.content_hash[:12]}，"
        f"{v.pages} 页，{v.user}@{v.host}）"
    )


def compare_versions(
    store: VersionStore,
    household_id: str,
    v1: int | None = None,
    v2: int | None = None,
    *,
    labels: Labels | None = None,
) -> Comparison:
    """Compare two stored versions of a household (default: the last two).

    With only ``v1`` given, ``v1`` is compared with the latest version.
    """
    from ..errors import StoreError

    versions = store.versions(household_id)
    if not versions:
        store.get(household_id, v1 or 1)  # raises the "no versions" StoreError
    if v1 is None and v2 is None:
        if len(versions) < 2:
            raise StoreError(
                f"户 {household_id} 只有 1 个版本，没有可比较的前一版本。",
                hint="修改数据并重新生成后再比较，或用 history 查看已有版本。",
            )
        old_v, new_v = versions[-2], versions[-1]
    else:
        old_v = store.get(household_id, v1 if v1 is not None else versions[-1].number)
        new_v = store.get(household_id, v2) if v2 is not None else versions[-1]
    old_record = json.loads(store.blob(old_v.record_sha))
    new_record = json.loads(store.blob(new_v.record_sha))
    comparison = Comparison(
        title=f"户 {household_id} 版本 {old_v.number} 与版本 {new_v.number} 的比较",
        old_name=_version_name(old_v),
        new_name=_version_name(new_v),
        old_pdf=store.blob_path(old_v.pdf_sha),
        new_pdf=store.blob_path(new_v.pdf_sha),
        records_compared=True,
    )
    comparison.field_changes = diff_records(old_record, new_record, labels)
    comparison.field_changes += diff_evidence_files(old_v.evidence, new_v.evidence)
    if old_v.template_set != new_v.template_set:
        comparison.notes.append(f"模板：{old_v.template_set} → {new_v.template_set}")
    if old_v.program_version != new_v.program_version:
        comparison.notes.append(
            f"程序版本：{old_v.program_version} → {new_v.program_version}"
        )
    if old_v.pdf_sha != new_v.pdf_sha:
        store.blob(
            old_v.pdf_sha
        )  # fail with a StoreError on a damaged blob, not a PDF error
        store.blob(new_v.pdf_sha)
        assert comparison.old_pdf and comparison.new_pdf
        pdf = compare_pdf_files(comparison.old_pdf, comparison.new_pdf)
        comparison.text_changes, comparison.pages = pdf.text_changes, pdf.pages
        comparison.old_printed, comparison.new_printed = pdf.old_printed, pdf.new_printed
        comparison.old_archive = _box_numbers(store, old_v, comparison.notes, "原")
        comparison.new_archive = _box_numbers(store, new_v, comparison.notes, "新")
        model = _model_text_changes(old_record, new_record, old_v.template_set, new_v.template_set, pdf,
                                    comparison)
        if model is not None:
            comparison.text_changes = model
    return comparison


def _box_numbers(store: VersionStore, version: Version, notes: list[str], which: str) -> dict[int, int]:
    """1-based PDF page -> archive page number of the version's packet in its box (where it sits
    in one); a note names the box."""
    placement = store.placement(version.household_id, version.number)
    if placement is None or len(placement.numbers) != version.pages:
        return {}
    notes.append(f"{which}版本装在档案盒 {Path(placement.box).name}，页码括号内为档案页号")
    return {page: number for page, number in enumerate(placement.numbers, start=1) if number}


def _model_text_changes(old_record: dict, new_record: dict, old_set: str, new_set: str,
                        pdf: Any, comparison: Comparison) -> list[SectionTextChange] | None:
    """The text changes of two versions on their document models (see docdiff.py), each with
    the page it is on as printed; None when a version cannot be rendered again (its template
    set is gone): the PDF's text lines are compared instead."""
    from .. import docdiff
    from ..errors import ArchiveError

    try:
        old_items = docdiff.document_items(docdiff.record_document(old_record, old_set))
        new_items = docdiff.document_items(docdiff.record_document(new_record, new_set))
    except ArchiveError:
        return None
    old_names = [comparison.old_page(i + 1) if i + 1 in pdf.old_printed else None for i in range(len(pdf.old_text))]
    new_names = [comparison.new_page(i + 1) if i + 1 in pdf.new_printed else None for i in range(len(pdf.new_text))]
    by_section: dict[str, list[str]] = {}
    for change in docdiff.diff_items(old_items, new_items):
        if change.new is not None:
            page = docdiff.printed_page(pdf.new_text, new_names, change.new)
            page = f"新{page}" if page else ""
        else:
            assert change.old is not None
            page = docdiff.printed_page(pdf.old_text, old_names, change.old)
            page = f"原{page}" if page else ""
        by_section.setdefault(change.item.section, []).append(change.line(page))
    return [SectionTextChange(section, "changed", None, None, lines) for section, lines in by_section.items()]


def compare_pdfs(old: Path, new: Path) -> Comparison:
    """Compare any two PDF files by text (per section) and by rendered pages."""
    pdf = compare_pdf_files(Path(old), Path(new))
    return Comparison(
        title="PDF 文件比较",
        old_name=f"{old}（{pdf.old_pages} 页）",
        new_name=f"{new}（{pdf.new_pages} 页）",
        old_pdf=Path(old),
        new_pdf=Path(new),
        text_changes=pdf.text_changes,
        pages=pdf.pages,
        old_printed=pdf.old_printed,
        new_printed=pdf.new_printed,
    )


@dataclass(frozen=True)
class HistoryEntry:
    """One line of ``history``: a version and what changed from the one before."""

    version: Version
    summary: str

    def format(self) -> str:
        v = self.version
        return f"版本 {v.number}  {v.when}  {v.content_hash[:12]}  {v.pages} 页  {self.summary}"


def history(store: VersionStore, household_id: str) -> list[HistoryEntry]:
    """Return every version of the household, oldest first, each with its change summary."""
    from ..errors import StoreError

    versions = store.versions(household_id)
    if not versions:
        store.get(household_id, 1)  # raises the Chinese "no versions" StoreError
    entries = []
    previous: dict | None = None
    for n, v in enumerate(versions):
        try:
            record = json.loads(store.blob(v.record_sha))
        except StoreError:
            record = None
        if n == 0:
            summary = "首个版本"
        elif record is None or previous is None:
            summary = "（记录数据块缺失或损坏，无法比较；请运行 store check）"
        else:
            changes = diff_records(previous, record)
            changes += diff_evidence_files(versions[n - 1].evidence, v.evidence)
            summary = (
                summarize(changes) if changes else non_data_change(versions[n - 1], v)
            )
        entries.append(HistoryEntry(v, summary))
        previous = record
    return entries


def non_data_change(old: Version, new: Version) -> str:
    """Return what differs between two versions whose records have no field change."""
    parts = []
    if old.template_set != new.template_set:
        parts.append(f"模板 {old.template_set} → {new.template_set}")
    if old.program_version != new.program_version:
        parts.append(f"程序版本 {old.program_version} → {new.program_version}")
    # same data, different packet: a reordered list (not a change of any field) or layout
    return " · ".join(parts) or "字段无变化（仅顺序或版式不同）"


def format_history(store: VersionStore, household_id: str) -> str:
    """Return the Chinese text ``history`` prints: one line per version."""
    entries = history(store, household_id)
    lines = [f"户 {household_id} 共 {len(entries)} 个版本："]
    lines += [entry.format() for entry in entries]
    return "\n".join(lines)


def write_report(path: Path, comparison: Comparison, **options: Any) -> Path:
    """Write the comparison as an HTML or PDF report (chosen by the suffix); return the path."""
    from .diffreport import write_report as _write

    return _write(Path(path), comparison, **options)
