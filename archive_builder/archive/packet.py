"""One household's packet: canonical record → template context → document model → files.

:func:`render_packet` is the unit of work a build sends to a worker process: it takes a
picklable :class:`PacketRequest` and returns a :class:`PacketResult`. Expensive things that
do not change between households (fonts, template sets, the evidence cache, the LibreOffice
converter and its profile) are made once per process.

Word forms (a section whose spec names ``form``, see ``templates/county-forms/``): the form
is filled with docxtpl (:func:`~archive_builder.render.forms.render_form`, autoescaped) and
converted to PDF with LibreOffice *before* layout, so the section's page count is known and
the contents page and outline stay true; its pages take the section's place in the PDF
(:class:`~archive_builder.document.ExternalPages`) and the filled form itself is that section
of the .docx. A build fills and converts every household's forms before rendering, in one
LibreOffice run per worker (:mod:`archive_builder.render.batchconvert`), and hands each
packet its converted forms in ``PacketRequest.prepared_forms``; a single packet converts here.  When LibreOffice is missing, the PDF gets an explanatory page for that section
and the packet a warning naming the package to install; every other section and household is
built as usual.  Whether a converter is available is part of the content hash of a household
whose set has forms, so installing LibreOffice later rebuilds exactly those packets.  When
LibreOffice is there but fails on a form (or times out), that household is not produced
(exit code 3, the Chinese reason in the summary) so the next build retries it instead of
keeping a placeholder under an unchanged hash.

Why one module of this size: planning a packet (its content hash) and rendering it share the
request and result records and the per-process resources, and the Word-form route is one
branch of both.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from .. import document as dm
from .. import templates
from ..context import build_context, evidence_items
from ..errors import ArchiveError, OutputError, RenderError, ValidationFailed, os_reason
from . import hashing
from .outdir import atomic_file, safe_file_name


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
    #: section key → the Word form already filled and converted by the build's batch
    #: (:mod:`archive_builder.render.batchconvert`); empty = fill and convert here
    prepared_forms: Mapping[str, Any] = field(default_factory=dict)
    #: the household's audit problems, when the template set prints its audit page
    #: (:func:`archive_builder.checks.audit.packet_problems`)
    audit: tuple[Mapping[str, str], ...] = ()


@dataclass(frozen=True)
class PacketResult:
    household_id: str
    pdf: Path
    pages: int
    sections: tuple[dm.SectionPages, ...]
    separators: tuple[int, ...]
    warnings: tuple[str, ...]
    docx: Path | None = None
    #: ``RenderResult.fonts`` of the PDF (for collation in the same build; not stored)
    fonts: tuple[tuple[str, str, str], ...] = ()
    #: ``RenderResult.sha256`` of the PDF (for the version store and collation in the same
    #: build; not stored: a file on disk is hashed when it is read)
    sha256: str = ""


@lru_cache(maxsize=4)
def _font_set(configured: tuple[tuple[str, Any], ...], base_dir: str) -> Any:
    from ..render.fonts import FontSet

    return FontSet.discover(dict(configured) or None, base_dir=Path(base_dir) if base_dir else None)


def font_set(
    configured: Mapping[str, Any] | None = None, base_dir: Path | None = None, *, register: bool = True
) -> Any:
    """Return the process-wide FontSet for this configuration, discovered once.

    Registering with reportlab parses every face (~0.25 s each), so planning, which needs only
    the fonts' fingerprint, passes ``register=False``; ``FontSet.register`` is idempotent.
    """
    items = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in (configured or {}).items()))
    fonts = _font_set(items, str(base_dir or ""))
    if register:
        fonts.register()
    return fonts


@lru_cache(maxsize=256)  # one a village: a county has a few hundred
def _template_set(name: str, data_dir: Path, village_dir: Path) -> templates.TemplateSet:
    return templates.resolve_set(name, data_dir=data_dir, village_dir=village_dir)


def template_set(name: str, data_dir: Path, village_dir: Path) -> templates.TemplateSet:
    """Return the resolved template set for a village (cached per process)."""
    return _template_set(name, data_dir, village_dir)


@lru_cache(maxsize=4)
def _evidence_cache(cache_dir: Path, dpi: int) -> Any:
    from ..render.evidence import EvidenceCache

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


def _texts(value: Any, out: list[str]) -> list[str]:
    """Every string in ``value`` (``_strings`` without the paths)."""
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, Mapping):
        for item in value.values():
            _texts(item, out)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _texts(item, out)
    return out


def glyph_warnings(record: Mapping[str, Any], fonts: Any, household_id: str) -> list[str]:
    """Return a warning for every character of the record that no available font can print."""
    if not fonts.missing_chars("".join(_texts(record, [])), "body"):
        return []  # the usual case, found with one look at all the text: no field paths built
    found = []
    for path, text in _strings(record, ""):
        for char in dict.fromkeys(fonts.missing_chars(text, "body")):
            found.append(
                f"户 {household_id} 的字段 {path} 中的字符「{char}」（U+{ord(char):04X}）没有任何已安装字体可以显示，"
                "打印出来会是空白方框；请安装含该字的字体（如 fonts-babelstone-han）或在 archive.toml 的 [fonts] 中指定。"
            )
    return found


def packet_context(request: PacketRequest) -> dict[str, Any]:
    """Return the template context of the household (what section templates and forms see)."""
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
    context["audit"] = [dict(row) for row in request.audit]
    return context


def build_document(
    request: PacketRequest,
    tset: templates.TemplateSet,
    *,
    context: Mapping[str, Any] | None = None,
    form_section: Callable[[templates.SectionSpec], dm.Section | None] | None = None,
) -> dm.Document:
    """Return the packet's document model (no files written).

    ``form_section`` makes the section of a spec with a Word form (see :class:`FormSections`);
    without it such sections use their XML template.
    """
    if context is None:
        context = packet_context(request)
    allowed = frozenset(item["source"] for item in context["evidence_items"])
    sections = templates.render_sections(tset, context, allowed_sources=allowed, form_section=form_section)
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


#: the explanatory page printed in place of a Word form that could not be converted
FORM_PLACEHOLDER = "本部分应为 Word 表单「{form}」，未能转换为 PDF。"


class FormSections:
    """The Word-form sections of one packet, made in the worker that renders it.

    :meth:`section` fills the form (docxtpl, autoescaped) into ``work``, converts it with the
    worker's LibreOffice (:func:`~archive_builder.render.forms.converter`: one profile per
    process, a timeout) and returns a section of :class:`~archive_builder.document.ExternalPages`.
    Without LibreOffice the section is a placeholder page and the packet gets a warning; when
    LibreOffice fails or times out on the form, :class:`~archive_builder.errors.ExternalToolError`
    fails the household (the next build tries it again); an invalid form (bad tags) raises
    :class:`~archive_builder.errors.TemplateError`.
    """

    def __init__(self, tset: templates.TemplateSet, context: Mapping[str, Any], work: Path,
                 household_id: str, prepared: Mapping[str, Any] | None = None) -> None:
        #: section key → :class:`~archive_builder.render.batchconvert.PreparedForm`
        self.prepared = prepared or {}
        self.tset = tset
        self.context = context
        self.work = work
        self.household_id = household_id
        #: section key -> the filled-in form (.docx), for the Word output
        self.rendered: dict[str, Path] = {}
        self.warnings: list[str] = []
        #: seconds spent in LibreOffice (for performance figures)
        self.convert_seconds = 0.0

    def section(self, spec: templates.SectionSpec) -> dm.Section:
        import time

        from ..errors import ExternalToolError
        from ..render import forms

        template = self.tset.form_path(spec)
        prepared = self.prepared.get(spec.key)
        if prepared is not None:  # filled and converted by the build's batch
            filled = Path(prepared.docx)
            made = prepared.warnings
        else:
            filled = self.work / f"{len(self.rendered):02d}_{spec.key}.docx"
            made = tuple(forms.render_form(template, self.context, filled))
        for text in made:
            if text not in self.warnings:
                self.warnings.append(text)
        self.rendered[spec.key] = filled
        if prepared is not None:
            if prepared.error:
                raise ExternalToolError(
                    f"户 {self.household_id} 的「{spec.title}」（Word 表单 {template.name}）无法转换为 PDF："
                    f"{prepared.error}", hint=prepared.hint or None)
            pdf = Path(prepared.pdf)
            try:
                pages = _pdf_pages(pdf, template.name)
            except ExternalToolError as exc:
                raise ExternalToolError(
                    f"户 {self.household_id} 的「{spec.title}」（Word 表单 {template.name}）无法转换为 PDF：{exc.message}",
                    hint=exc.hint,
                ) from exc
            return self._converted(spec, template, filled, pdf, pages)
        timeout = float(self.tset.settings.get("form_timeout", forms.DEFAULT_TIMEOUT))
        try:
            converter = forms.converter(timeout)
        except ExternalToolError as exc:
            # LibreOffice is not installed: this section only, and the content hash knows,
            # so the packet is made again once it is installed
            self.warnings.append(
                f"户 {self.household_id} 的「{spec.title}」（Word 表单 {template.name}）未能转换为 PDF，"
                f"PDF 档卡中该部分已用说明页代替：{exc.message}"
                + (f"（{exc.hint}）" if exc.hint and exc.hint not in exc.message else "")
            )
            return form_placeholder(spec, template.name, exc.message, exc.hint or "")
        started = time.perf_counter()
        try:
            pdf = converter.convert(filled, self.work / "pdf")
            pages = _pdf_pages(pdf, template.name)
        except ExternalToolError as exc:
            # LibreOffice failed or timed out: the household fails (and is retried by the
            # next build) rather than recording a packet with a placeholder for good
            raise ExternalToolError(
                f"户 {self.household_id} 的「{spec.title}」（Word 表单 {template.name}）无法转换为 PDF：{exc.message}",
                hint=exc.hint,
            ) from exc
        finally:
            self.convert_seconds += time.perf_counter() - started
        return self._converted(spec, template, filled, pdf, pages)

    def _converted(self, spec: templates.SectionSpec, template: Path, filled: Path, pdf: Path,
                   pages: int) -> dm.Section:
        from ..render import forms

        lost = forms.lost_characters(filled, pdf)
        if lost:
            self.warnings.append(
                f"户 {self.household_id} 的「{spec.title}」（Word 表单 {template.name}）转换为 PDF 时丢失了字符"
                f"「{'、'.join(lost)}」：表单指定的字体本机没有，替代字体中也没有这些字。"
                "请安装表单使用的字体（或含这些字的字体）后用 --force 重新生成；Word 文档不受影响"
            )
        return dm.Section(spec.key, spec.title, (dm.ExternalPages(str(pdf), pages),),
                          layout="form", in_contents=spec.in_contents)


def _pdf_pages(pdf: Path, form_name: str) -> int:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    from ..errors import ExternalToolError

    try:
        pages = len(PdfReader(pdf).pages)
    except (PyPdfError, OSError, ValueError) as exc:
        raise ExternalToolError(f"LibreOffice 转换 {form_name} 得到的 PDF 无法读取：{exc}") from exc
    if pages < 1:
        raise ExternalToolError(f"LibreOffice 转换 {form_name} 得到的 PDF 没有页面")
    return pages


def form_placeholder(spec: templates.SectionSpec, form_name: str, reason: str, hint: str = "") -> dm.Section:
    """The section printed instead of a Word form that could not be converted to PDF."""
    blocks: list[dm.Block] = [
        dm.Title(spec.title),
        dm.Spacer(20),
        dm.Paragraph(FORM_PLACEHOLDER.format(form=form_name), align="center", indent=False, role="heading"),
        dm.Spacer(6),
        dm.Paragraph(f"原因：{reason}", align="left", indent=False),
    ]
    if hint and hint not in reason:
        blocks.append(dm.Paragraph(hint, align="left", indent=False))
    blocks.append(dm.Paragraph("解决后重新生成即可：本户会自动重新生成，Word 文档中的表单不受影响。",
                               align="left", indent=False))
    return dm.Section(spec.key, spec.title, tuple(blocks), layout="form", in_contents=spec.in_contents)


def page_ranges(result: dm.RenderResult) -> dict[str, str]:
    """Return each section's printed page range ("4" or "4–6"), as the contents page shows it."""
    separators = set(result.separators)
    ranges = {}
    for section in result.sections:
        if not section.number:
            continue
        numbered = sum(1 for i in range(section.first, section.last + 1) if i not in separators)
        last = int(section.number) + max(numbered, 1) - 1
        ranges[section.key] = section.number if last == int(section.number) else f"{section.number}–{last}"
    return ranges


def render_packet(request: PacketRequest) -> PacketResult:
    """Render one household's packet PDF (and .docx when asked); files appear atomically."""
    tset = template_set(request.template_set, request.data_dir, request.village_dir)
    if tset.form_sections:
        with tempfile.TemporaryDirectory(prefix="ab-forms-") as work:
            return _render_packet(request, tset, Path(work))
    return _render_packet(request, tset, None)


def _render_packet(request: PacketRequest, tset: templates.TemplateSet, work: Path | None) -> PacketResult:
    from ..render.pdf import write_pdf

    fonts = font_set(request.fonts)
    evidence = _evidence_cache(request.cache_dir, int(tset.settings.get("evidence_dpi", 200)))
    context = packet_context(request)
    forms = FormSections(tset, context, work, request.household_id, request.prepared_forms) \
        if work is not None else None
    document = build_document(request, tset, context=context,
                              form_section=forms.section if forms is not None else None)
    warnings = glyph_warnings(request.record, fonts, request.household_id)
    if forms is not None:
        warnings.extend(forms.warnings)

    try:
        request.out_pdf.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        blocking = next((p for p in (request.out_pdf.parent, *request.out_pdf.parent.parents)
                         if p.exists() and not p.is_dir()), None)
        if blocking is not None:  # -o 档卡 where 档卡 is a file: it was taken for a folder
            raise OutputError(
                f"输出位置 {blocking} 是一个文件，不是文件夹",
                hint="要写成一个文件，请用以 .pdf 结尾的文件名（如 -o 档卡.pdf）；要写进文件夹，请另选一个文件夹",
            ) from exc
        raise OutputError(
            f"无法创建输出文件夹 {request.out_pdf.parent}：{os_reason(exc)}",
            hint="请检查输出位置是否可写、是否与已有文件同名",
        ) from exc
    try:
        with atomic_file(request.out_pdf, durable=False) as handle:
            result = write_pdf(document, handle, fonts=fonts, evidence=evidence)
    except ArchiveError:
        raise
    except OSError as exc:  # the output's disk is full or gone: the clerk can fix that
        raise OutputError(
            f"户 {request.household_id} 的档卡无法写出：{exc.filename or request.out_pdf}：{os_reason(exc)}",
            hint="请检查输出位置的磁盘空间和写入权限，然后重新生成",
        ) from exc
    except Exception as exc:
        raise RenderError(
            f"户 {request.household_id} 的档卡生成失败：{type(exc).__name__}: {exc}",
            hint="请用 -v 查看详细信息并报告此问题；其他户不受影响",
        ) from exc

    docx_path = None
    if request.out_docx is not None:
        from ..render.docx import write_docx

        docx = write_docx(
            document,
            request.out_docx,
            evidence=evidence,
            font_names=dict(tset.word_fonts),
            forms=forms.rendered if forms is not None else None,
            page_numbers=page_ranges(result),
        )
        warnings.extend(w for w in docx.warnings if w not in warnings and w not in result.warnings)
        docx_path = request.out_docx

    return PacketResult(
        household_id=request.household_id,
        pdf=request.out_pdf,
        pages=result.pages,
        sections=result.sections,
        separators=result.separators,
        warnings=tuple(warnings) + tuple(result.warnings),
        docx=docx_path,
        fonts=result.fonts,
        sha256=result.sha256,
    )


# --------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class PlannedPacket:
    """A household ready to render: its request plus what the build records about it."""

    request: PacketRequest
    content_hash: str
    record_json: bytes
    evidence: Mapping[str, str]
    head: str
    sources: tuple[str, ...] = ()  # the evidence files read (absolute paths)


def configured_fonts(tset: templates.TemplateSet, config: Any, data_dir: Path) -> dict[str, str]:
    """Return the font files asked for: the template set's, then archive.toml's ``[fonts]``
    (relative to the data directory), as absolute ``path[#index]`` settings."""
    own = {role: templates.absolute_font(value, data_dir) for role, value in (config.fonts or {}).items()}
    return {**tset.fonts, **own}


def settings_of(config: Any, village: Any) -> dict[str, Any]:
    """Return the archive and village settings that print on a household's pages."""
    return {
        "archive": config.archive.model_dump(mode="json"),
        "village": village.config.model_dump(mode="json"),
    }


@lru_cache(maxsize=64)
def _resolved(path: Path) -> Path:
    return path.resolve()  # ~50 µs: once per village, not per household


def plan_packet(
    dataset: Any,
    village: Any,
    household: Any,
    *,
    out_pdf: Path,
    cache_dir: Path,
    item_no: int | str = "",
    build_date: str,
    out_docx: Path | None = None,
    version_of: Any = None,
    template_fingerprint: str | None = None,
) -> PlannedPacket:
    """Return the household's content hash and the request that renders it.

    ``version_of(household_id, content_hash)`` gives the version number printed on the
    cover (the version store's next number; None from it: the cover claims no version);
    without ``version_of`` the cover says version 1.
    """
    from ..versions.verify import qr_payload

    config = dataset.config
    data_dir = _resolved(Path(dataset.root))
    village_dir = _resolved(village.path)
    tset = template_set(config.templates.set, data_dir, village_dir)
    fonts_conf = configured_fonts(tset, config, data_dir)
    fonts = font_set(fonts_conf, register=False)
    record = household.record.model_dump(mode="json", warnings=False)
    settings = settings_of(config, village)
    items = evidence_items(record, household.folder)
    evidence = hashing.evidence_hashes((e["display"], Path(e["source"])) for e in items)
    extra: dict[str, Any] = {}
    if tset.form_sections:
        from ..render.forms import find_soffice

        # a packet made without LibreOffice has placeholder pages: rebuild it once one exists
        extra["form_converter"] = find_soffice() is not None
    audit: tuple[dict[str, str], ...] = ()
    if templates.wants_audit(tset):  # the set prints the household's audit page
        from ..checks.audit import packet_problems

        audit = tuple(packet_problems(data_dir, config, village, household.record))
        extra["audit"] = audit
    record_json = hashing.canonical_json(record)
    content_hash = hashing.household_hash(
        record_json,
        evidence=evidence,
        settings={**settings, "item_no": item_no, "build_date": build_date, **extra},
        template_fingerprint=template_fingerprint or tset.fingerprint(),
        font_fingerprint=fonts.fingerprint(),
    )
    hid = str(household.household_id)
    version = version_of(hid, content_hash) if version_of else 1
    head = next((m.get("name", "") for m in record.get("members", []) if m.get("relation") == "户主"), "")
    request = PacketRequest(
        household_id=hid,
        folder=Path(household.folder),
        record=record,
        archive=settings["archive"],
        village=settings["village"],
        data_dir=data_dir,
        village_dir=village_dir,
        template_set=config.templates.set,
        out_pdf=out_pdf,
        out_docx=out_docx,
        cache_dir=cache_dir,
        item_no=item_no,
        content_hash=content_hash,
        version=version,
        build_date=build_date,
        qr_text=qr_payload(hid, version, content_hash) if version is not None else "",
        fonts=fonts_conf,
        audit=audit,
    )
    return PlannedPacket(request, content_hash, record_json, evidence, head,
                         tuple(e["source"] for e in items))


def document_date(config: Any) -> str:
    """Return the date printed in documents (立卷时间, PDF dates).

    ``[build] date`` in archive.toml, else the last day of the archive year: a stable date,
    so rebuilding unchanged data on another day gives the same bytes.
    """
    from datetime import date

    if config.build.date:
        return str(config.build.date)
    if config.archive.year:
        return f"{int(config.archive.year):04d}-12-31"
    return date.today().isoformat()


def default_cache_dir() -> Path:
    """Return the per-user cache of normalised evidence images."""
    from .outdir import user_cache_dir

    return user_cache_dir("evidence") or Path.cwd() / ".archive-builder-cache" / "evidence"


@dataclass(frozen=True)
class PacketOutcome:
    """What :func:`make_packet` made: the files, and the version the cover names."""

    result: PacketResult
    warnings: tuple[Any, ...]  # Problem objects (validation warnings)
    #: the version number printed on the cover; None when the cover makes no version claim
    version: int | None = None
    #: the output folder whose version store holds that version (None: not recorded)
    store_dir: Path | None = None
    #: True when this run added the version; False when the store already had this content
    new_version: bool = False
    item_no: int | str = ""
    #: why the packet was not recorded (Chinese, for the user), "" when it was
    not_recorded: str = ""


def packet_store_dir(data_dir: Path, given: Path | None = None) -> Path | None:
    """Return the output folder whose version store a single packet is recorded in.

    ``given`` wins; else archive.toml's ``[output] dir``; else the default output folder beside
    the data directory when a build has used it. None: there is nowhere to record the packet.
    """
    from ..versions.store import VersionStore
    from .outdir import MARKER, configured_output, default_output

    if given is not None:
        return given
    configured = configured_output(data_dir)
    if configured != default_output(data_dir):
        return configured
    if (configured / MARKER).exists() or VersionStore(configured).exists():
        return configured
    return None


def _packet_paths(out: Path | None, data_dir: Path, name: str, formats: tuple[str, ...]) -> tuple[Path, Path | None]:
    """Return where the packet's PDF (and .docx when asked) go; refuse places that are not for it.

    ``out`` is a ``.pdf`` or ``.docx`` file name or a folder (default: the current folder).
    """
    from .outdir import MARKER

    folder: Path | None = None
    if out is None:
        folder = Path.cwd()
    elif out.suffix.lower() == ".pdf":
        pdf = out
    elif out.suffix.lower() == ".docx":
        pdf = out.with_suffix(".pdf")
        formats = (*formats, "docx")
    elif out.is_dir() or not out.suffix:
        folder = out
    else:
        raise OutputError(
            f"输出位置 {out} 既不是文件夹，也不是 .pdf 或 .docx 文件名",
            hint="写入文件夹时请给出已有的文件夹（或不带扩展名的新文件夹名），写入文件时请以 .pdf 或 .docx 结尾",
        )
    if folder is not None:
        pdf = folder / f"{safe_file_name(name)}.pdf"
    target = pdf.resolve()
    data = Path(data_dir).resolve()
    if data == target.parent or data in target.parents:
        raise OutputError(
            f"输出位置 {out if out is not None else target.parent} 位于数据目录 {data_dir} 之内",
            hint="程序不在数据目录中写文件：请用 -o 指定数据目录之外的文件夹，例如 -o 档卡/",
        )
    if (target.parent / MARKER).exists():
        raise OutputError(
            f"{target.parent} 是 build 的档案输出目录，不能把单户档卡放在它的根目录中",
            hint="请用 -o 另选一个文件夹保存单户档卡，例如 -o 档卡/；版本会登记到档案输出目录的版本库中",
        )
    return target, target.with_suffix(".docx") if "docx" in formats else None


def make_packet(
    data_dir: Path,
    household_id: str,
    out: Path | None = None,
    *,
    formats: tuple[str, ...] | None = ("pdf",),
    strict: bool = False,
    today: Any = None,
    template_set_name: str | None = None,
    store_dir: Path | None = None,
    record: bool = True,
) -> PacketOutcome:
    """Validate one household, render its packet and record it as a version; the secretary's command.

    The packet is the document the village build makes: same 件号, same content hash, and the
    version number of the build's version store, in which it is recorded, so its paper copy
    verifies. The store is ``store_dir``, else the folder :func:`packet_store_dir` finds; when
    there is none (or ``record`` is False) the cover makes no version claim and
    ``PacketOutcome.not_recorded`` says why.

    ``out`` is a ``.pdf``/``.docx`` file or a folder (default: the current folder); in a folder
    the file is named ``<户编号>_<户主>.pdf``. ``formats`` None = archive.toml ``[output] word_copy``
    (pdf,docx), else the template set's ``[output] formats``.
    """
    from datetime import UTC, datetime

    from .. import __version__
    from ..records.loader import item_number, load_household, typed_household_id
    from ..validate import validate_dataset
    from ..versions.store import Entry, VersionStore
    from . import outdir

    household_id = typed_household_id(household_id)
    dataset = load_household(data_dir, household_id, settings_required=True)  # its values are printed
    dataset.config = dataset.config.with_overrides(templates__set=template_set_name)
    problems = validate_dataset(dataset, strict=strict, today=today)
    errors = [p for p in problems if p.is_error]
    if errors:
        raise ValidationFailed(
            f"户 {household_id} 的数据有 {len(errors)} 处错误，未生成档卡",
            problems,
            hint="请按上面列出的问题修改数据后重新生成；运行 archive-builder validate 可检查整个数据目录",
        )
    (village, household), = list(dataset.households())
    config = dataset.config
    if formats is None:
        formats = ("pdf", "docx") if config.output.word_copy else template_set(
            config.templates.set, Path(data_dir).resolve(), village.path.resolve()).formats
    assert household.record is not None  # validated above: a record with errors stops here
    head = household.record.head.name if household.record.head else ""
    pdf, docx = _packet_paths(out, data_dir, f"{household_id}_{head}", tuple(formats))
    where = packet_store_dir(data_dir, store_dir) if record else None
    item_no = item_number(village.path, household_id)
    outcome_args: dict[str, Any] = {"item_no": item_no}

    def render(version_of: Any) -> PlannedPacket:
        return plan_packet(
            dataset, village, household, out_pdf=pdf, out_docx=docx, cache_dir=default_cache_dir(),
            item_no=item_no, build_date=document_date(config), version_of=version_of,
        )

    if where is None:
        planned = render(lambda _hid, _hash: None)
        result = render_packet(planned.request)
        reason = ("没有登记版本：找不到档案输出目录（archive.toml 中没有 [output] dir，数据目录旁也没有生成过的"
                  f"「{outdir.default_output(data_dir).name}」）。封面二维码不含版本号，无法用 verify 核对；"
                  "先运行 archive-builder build，或用 --store 指定档案输出目录后重新生成") if record else ""
        return PacketOutcome(result, tuple(p for p in problems if not p.is_error), not_recorded=reason,
                             **outcome_args)
    store_out = outdir.prepare(where, data_dir)
    with outdir.build_lock(store_out, wait_seconds=5.0), VersionStore(store_out) as store:
        planned = render(store.next_number)
        result = render_packet(planned.request)
        entry = Entry(
            household_id=household_id, village_code=village.config.code, content_hash=planned.content_hash,
            record_json=planned.record_json, packet_pdf=result.pdf, evidence_hashes=dict(planned.evidence),
            template_set=config.templates.set, program_version=__version__, pages=result.pages,
            built_at=datetime.now(UTC).isoformat(timespec="seconds"), packet_sha256=result.sha256 or None,
        )
        added = store.record_many([entry])[0]
    return PacketOutcome(
        result, tuple(p for p in problems if not p.is_error), version=planned.request.version,
        store_dir=store_out, new_version=added is not None, **outcome_args,
    )
