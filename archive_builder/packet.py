"""One household's packet: canonical record → template context → document model → files.

:func:`render_packet` is the unit of work a build sends to a worker process: it takes a
picklable :class:`PacketRequest` and returns a :class:`PacketResult`. Expensive things that
do not change between households (fonts, template sets, the evidence cache) are made once
per process.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from . import document as dm
from . import templates
from .context import build_context
from .errors import RenderError, TemplateError


@dataclass(frozen=True)
class PacketRequest:
    """Everything needed to render one packet; plain values only (sent to workers)."""

    household_id: str
    folder: Path
    record: Mapping[str, Any]  # canonical JSON form
    archive: Mapping[str, Any]
    village: Mapping[str, Any]
    data_dir: Path
    village_dir: Path
    template_set: str
    out_pdf: Path
    cache_dir: Path
    item_no: int | str = ""
    content_hash: str = ""
    version: int | None = None
    build_date: str = ""
    qr_text: str = ""
    out_docx: Path | None = None
    fonts: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PacketResult:
    household_id: str
    pdf: Path
    pages: int
    sections: tuple[dm.SectionPages, ...]
    separators: tuple[int, ...]
    warnings: tuple[str, ...]
    docx: Path | None = None


@lru_cache(maxsize=4)
def _font_set(configured: tuple[tuple[str, Any], ...], base_dir: str) -> Any:
    from .render.fonts import FontSet

    fonts = FontSet.discover(dict(configured) or None, base_dir=Path(base_dir) if base_dir else None)
    fonts.register()
    return fonts


def font_set(configured: Mapping[str, Any] | None = None, base_dir: Path | None = None) -> Any:
    """Return the process-wide FontSet for this configuration (discovered and registered once)."""
    items = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in (configured or {}).items()))
    return _font_set(items, str(base_dir or ""))


@lru_cache(maxsize=8)
def _template_set(name: str, data_dir: Path, village_dir: Path) -> templates.TemplateSet:
    return templates.resolve_set(name, data_dir=data_dir, village_dir=village_dir)


def template_set(name: str, data_dir: Path, village_dir: Path) -> templates.TemplateSet:
    """Return the resolved template set for a village (cached per process)."""
    return _template_set(name, data_dir, village_dir)


@lru_cache(maxsize=4)
def _evidence_cache(cache_dir: Path, dpi: int) -> Any:
    from .render.evidence import EvidenceCache

    return EvidenceCache(cache_dir, dpi=dpi)


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _strings(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _strings(item, f"{path}[{index}]")


def glyph_warnings(record: Mapping[str, Any], fonts: Any, household_id: str) -> list[str]:
    """Return a warning for every character of the record that no available font can print."""
    found = []
    for path, text in _strings(record, ""):
        for char in dict.fromkeys(fonts.missing_chars(text, "body")):
            found.append(
                f"户 {household_id} 的字段 {path} 中的字符「{char}」（U+{ord(char):04X}）没有任何已安装字体可以显示，"
                "打印出来会是空白方框；请安装含该字的字体（如 fonts-babelstone-han）或在 archive.toml 的 [fonts] 中指定。"
            )
    return found


def build_document(request: PacketRequest, tset: templates.TemplateSet) -> dm.Document:
    """Return the packet's document model (no files written)."""
    context = build_context(
        request.record,
        folder=request.folder,
        archive=request.archive,
        village=request.village,
        item_no=request.item_no,
        content_hash=request.content_hash,
        version=request.version,
        build_date=request.build_date,
        qr_text=request.qr_text,
    )
    allowed = frozenset(item["source"] for item in context["evidence_items"])
    sections = templates.render_sections(tset, context, allowed_sources=allowed)
    head = context["head"].get("name", "") if context["head"] else ""
    village = request.village.get("name", "")
    return dm.Document(
        title=f"{village} {head} 档卡",
        sections=tuple(sections),
        page=tset.page,
        subject=f"{request.archive.get('county', '')}{request.archive.get('township', '')}{village} "
        f"{request.record.get('household_type', '')}档案（{request.archive.get('year', '')} 年度）",
        keywords=(request.household_id, str(request.record.get("household_type", "")), "档卡", "一户一档"),
        author=str(request.archive.get("township", "")),
        date=request.build_date or "2000-01-01",
    )


def _atomic_target(out: Path) -> tuple[int, Path]:
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent)
    return fd, Path(tmp)


def render_packet(request: PacketRequest) -> PacketResult:
    """Render one household's packet PDF (and .docx when asked); files appear atomically."""
    from .render.pdf import write_pdf

    tset = template_set(request.template_set, request.data_dir, request.village_dir)
    fonts = font_set({**tset.fonts, **request.fonts}, tset.search_path[-1])
    evidence = _evidence_cache(request.cache_dir, int(tset.settings.get("evidence_dpi", 200)))
    document = build_document(request, tset)
    warnings = glyph_warnings(request.record, fonts, request.household_id)

    fd, tmp = _atomic_target(request.out_pdf)
    try:
        with os.fdopen(fd, "wb") as handle:
            result = write_pdf(document, handle, fonts=fonts, evidence=evidence)
        os.replace(tmp, request.out_pdf)
    except TemplateError:
        tmp.unlink(missing_ok=True)
        raise
    except Exception as exc:  # noqa: BLE001 - any renderer failure stops only this packet
        tmp.unlink(missing_ok=True)
        raise RenderError(
            f"户 {request.household_id} 的档卡生成失败：{type(exc).__name__}: {exc}",
            hint="请用 -v 查看详细信息并报告此问题；其他户不受影响",
        ) from exc

    docx_path = None
    if request.out_docx is not None:
        from .render.docx import write_docx

        fd, tmp = _atomic_target(request.out_docx)
        os.close(fd)
        try:
            write_docx(
                document,
                tmp,
                evidence=evidence,
                font_names=dict(tset.word_fonts),
                page_numbers={s.key: s.number for s in result.sections},
            )
            os.replace(tmp, request.out_docx)
        finally:
            tmp.unlink(missing_ok=True)
        docx_path = request.out_docx

    return PacketResult(
        household_id=request.household_id,
        pdf=request.out_pdf,
        pages=result.pages,
        sections=result.sections,
        separators=result.separators,
        warnings=tuple(warnings) + tuple(result.warnings),
        docx=docx_path,
    )
