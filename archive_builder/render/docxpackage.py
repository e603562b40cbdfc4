"""The package of a Word packet: python-docx's default template restyled once per process
(styles, settings, fonts; the warm writer), core properties, the deterministic zip, and the
pictures (QR codes, PDF pages) a packet embeds.
"""

from __future__ import annotations

import copy
import datetime as dt
import io
import math
import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lxml import etree

from ..document import Document, PageSetup
from .wordml import (
    CELL_MARGIN,
    PAGE_NUMBER_SIZE,
    PDF_PAGE_DPI,
    RPR_ORDER,
    RT_THUMBNAIL,
    STYLE_ORDER,
    TWIPS_PER_MM,
    _el,
    _ordered,
    clean_text,
    ppr_set,
    w,
)

# ---------------------------------------------------------------------- styles


def _strip_theme_fonts(root: Any) -> None:
    for rfonts in root.iter(w("rFonts")):
        for attr in ("asciiTheme", "hAnsiTheme", "eastAsiaTheme", "cstheme"):
            rfonts.attrib.pop(w(attr), None)


def _set_rpr(rpr: Any, name: str, size: float | None, bold: bool | None = None) -> None:
    for child in list(rpr):
        if child.tag in (w("rFonts"), w("sz"), w("szCs"), w("color"), w("b"), w("bCs"),
                         w("i"), w("iCs"), w("spacing"), w("kern")):
            rpr.remove(child)
    rfonts = etree.Element(w("rFonts"), {w("ascii"): name, w("hAnsi"): name,
                                         w("eastAsia"): name, w("cs"): name})
    rpr.insert(0, rfonts)
    if bold:
        _el("b", rpr)
        _el("bCs", rpr)
    _el("color", rpr, val="000000")
    if size is not None:
        _el("sz", rpr, val=round(size * 2))
        _el("szCs", rpr, val=round(size * 2))
    # keep schema order: rFonts, b, bCs, …, color, …, sz, szCs, …, lang
    lang = rpr.find(w("lang"))
    if lang is not None:
        rpr.remove(lang)
        rpr.append(lang)


def _style(styles: Any, style_id: str, name: str, *, based_on: str | None = "Normal",
           kind: str = "paragraph") -> Any:
    found = styles.find(f"{w('style')}[@{w('styleId')}='{style_id}']")
    if found is not None:
        styles.remove(found)
    st = _el("style", styles, type=kind, styleId=style_id)
    _el("name", st, val=name)
    if based_on:
        _el("basedOn", st, val=based_on)
    _el("qFormat", st)
    return st


def _setup_styles(package_doc: Any, page: PageSetup, fonts: Mapping[str, str], title_bold: bool) -> None:
    styles = package_doc.styles.element
    _strip_theme_fonts(styles)

    def size(role: str) -> float:
        return float(page.sizes.get(role, page.sizes.get("body", 16.0)))

    defaults = styles.find(w("docDefaults"))
    rpr = defaults.find(f"{w('rPrDefault')}/{w('rPr')}")
    _set_rpr(rpr, fonts["body"], size("body"))
    rpr.remove(rpr.find(w("color")))
    lang = rpr.find(w("lang"))
    if lang is None:
        lang = _el("lang", rpr)
    lang.set(w("val"), "en-US")
    lang.set(w("eastAsia"), "zh-CN")
    ppr = defaults.find(f"{w('pPrDefault')}/{w('pPr')}")
    for child in list(ppr):
        ppr.remove(child)
    _el("spacing", ppr, after=0, line=240, lineRule="auto")

    def para_style(style_id: str, name: str, role: str, sz: float, *, bold: bool = False,
                   outline: int | None = None, center: bool = False,
                   before: int = 0, after: int = 0, next_style: str | None = None) -> Any:
        st = _style(styles, style_id, name, based_on=None if style_id == "Normal" else "Normal")
        if style_id == "Normal":
            st.set(w("default"), "1")
        if next_style:
            _ordered(st, "next", STYLE_ORDER, val=next_style)
        ppr = _el("pPr", st)
        if outline is not None:
            _el("keepNext", ppr)
            _el("keepLines", ppr)
        _el("spacing", ppr, before=before, after=after, line=240, lineRule="auto")
        if center:
            _el("jc", ppr, val="center")
        if outline is not None:
            _el("outlineLvl", ppr, val=outline)
        rpr = _el("rPr", st)
        _set_rpr(rpr, fonts[role], sz, bold)
        return st

    para_style("Normal", "Normal", "body", size("body"))
    para_style("Title", "Title", "title", size("title"), bold=title_bold, center=True,
               before=0, after=312, next_style="Normal")
    para_style("Subtitle", "Subtitle", "kai", size("kai"), center=True, after=312,
               next_style="Normal")
    para_style("Heading1", "heading 1", "heading", size("heading"), outline=0, before=156,
               after=78, next_style="Normal")
    para_style("Heading2", "heading 2", "kai", size("kai"), outline=1, before=78, after=78,
               next_style="Normal")
    para_style("Heading3", "heading 3", "body", size("body"), bold=True, outline=2,
               next_style="Normal")
    para_style("ABPlain", "档卡无缩进", "body", size("body"))
    prose = para_style("ABProse", "公文正文", "body", size("body"))
    if page.prose_chars > 0:
        # condense so that prose_chars characters fit on a line (GB/T 9704: 28 × 3号)
        char_twips = page.text_width_mm * TWIPS_PER_MM / page.prose_chars
        condense = math.floor(char_twips - size("body") * 20)
        if condense < 0:
            rpr = prose.find(w("rPr"))
            _ordered(rpr, "spacing", RPR_ORDER, val=condense)
    sep = para_style("ABSeparator", "隔页纸标题", "title", size("title") * 2, bold=title_bold,
                     center=True)
    ppr_set(sep.find(w("pPr")), "keepNext")
    cell = para_style("ABTableText", "表格文字", "table", size("table"))
    ppr_set(cell.find(w("pPr")), "snapToGrid", val=0)
    foot = para_style("Footer", "footer", "table", PAGE_NUMBER_SIZE)
    ppr_set(foot.find(w("pPr")), "snapToGrid", val=0)

    plain = _style(styles, "ABPlainTable", "档卡无框表格", based_on=None, kind="table")
    mar = _el("tblCellMar", _el("tblPr", plain))
    for edge in ("top", "left", "bottom", "right"):
        _el(edge, mar, w=28 if edge in ("top", "bottom") else 85, type="dxa")

    tbl = _style(styles, "ABTable", "档卡表格", based_on=None, kind="table")
    tblpr = _el("tblPr", tbl)
    borders = _el("tblBorders", tblpr)
    for edge in ("top", "left", "bottom", "right", "insideH", "insideV"):
        _el(edge, borders, val="single", sz=4, space=0, color="000000")
    mar = _el("tblCellMar", tblpr)
    _el("top", mar, w=28, type="dxa")
    _el("left", mar, w=CELL_MARGIN, type="dxa")
    _el("bottom", mar, w=28, type="dxa")
    _el("right", mar, w=CELL_MARGIN, type="dxa")

    # Word 2010's stylesWithEffects copy of the styles also names theme fonts
    for part in package_doc.part.package.iter_parts():
        if str(part.partname).endswith("stylesWithEffects.xml"):
            try:
                root = etree.fromstring(part.blob)
            except etree.XMLSyntaxError:
                continue
            _strip_theme_fonts(root)
            part._blob = etree.tostring(root, xml_declaration=True, encoding="UTF-8",
                                        standalone=True)


def _setup_settings(package_doc: Any) -> None:
    el = package_doc.settings.element
    # the default template says ja-JP: Chinese typography for East Asian text instead
    lang = el.find(w("themeFontLang"))
    if lang is not None:
        lang.set(w("val"), "en-US")
        lang.set(w("eastAsia"), "zh-CN")
    compat = el.find(w("compat"))
    if compat is not None and compat.find(w("doNotExpandShiftReturn")) is None:
        # a justified line ending in a line break ("\n" in the data) is not stretched
        compat.insert(0, etree.Element(w("doNotExpandShiftReturn")))


def _drop_thumbnail(package_doc: Any) -> None:
    pkg = package_doc.part.package
    for rid, rel in list(pkg.rels.items()):
        if rel.reltype == RT_THUMBNAIL:
            pkg.rels.pop(rid)


def _doc_datetime(date: str) -> dt.datetime:
    try:
        d = dt.date.fromisoformat(date[:10])
    except ValueError:
        d = dt.date(2000, 1, 1)
    return dt.datetime(d.year, d.month, d.day, tzinfo=dt.UTC)


def _set_core(package_doc: Any, doc: Document) -> None:
    core = package_doc.core_properties
    when = _doc_datetime(doc.date)
    core.title = clean_text(doc.title)
    core.subject = clean_text(doc.subject)
    core.author = clean_text(doc.author)
    core.keywords = clean_text("；".join(doc.keywords))
    core.last_modified_by = clean_text(doc.author) or "archive-builder"
    core.comments = "archive-builder 生成"
    core.revision = 1
    core.created = when.replace(tzinfo=None)
    core.modified = when.replace(tzinfo=None)
    core.last_printed = when.replace(tzinfo=None)


@dataclass
class _Base:
    """A prepared empty package and, for the parts a packet without Word forms never
    changes (styles, settings, theme, numbering, fonts …), their zip members, deflated once."""

    doc: Any
    #: id(part) → its zip member; the parts themselves are kept alive by ``doc``
    packed: dict[int, _Member]


#: prepared empty packages (default template parsed, styles and settings set up), one per
#: page setup and fonts: each packet starts from a copy instead of re-reading and
#: restyling python-docx's default template (the warm writer)
_BASES: dict[tuple[str, tuple[tuple[str, str], ...]], _Base] = {}


def _base_package(page: PageSetup, fonts: Mapping[str, str], *,
                  share: bool = False) -> tuple[Any, Mapping[int, _Member]]:
    """Return a fresh python-docx Document with the packet's styles, settings, no body text,
    and the zip members already made for some of its parts.

    ``share``: the packet changes only its body and core properties (no Word forms, which
    add styles and lists): the other parts are the prepared package's own, not copies, and
    their members are reused. Otherwise the whole package is copied (nothing is reused).
    """
    import docx as python_docx

    key = (repr(page), tuple(sorted(fonts.items())))
    base = _BASES.get(key)
    if base is None:
        doc = python_docx.Document()
        body = doc.element.body
        for child in list(body):
            if child.tag != w("sectPr"):
                body.remove(child)
        _setup_styles(doc, page, fonts, "小标宋" not in fonts["title"])
        _setup_settings(doc)
        _drop_thumbnail(doc)
        mutable = {id(doc.part), id(doc.part.package._core_properties_part)}
        packed = {}
        for part in doc.part.package.iter_parts():
            if id(part) not in mutable:
                part.before_marshal()
                packed[id(part)] = _Member.of(part.partname.membername, part.blob)
        if len(_BASES) >= 8:
            _BASES.clear()
        base = _BASES[key] = _Base(doc, packed)
    if not share:
        return copy.deepcopy(base.doc), {}
    package = base.doc.part.package
    memo = {pid: part for part in package.iter_parts() if (pid := id(part)) in base.packed}
    return copy.deepcopy(base.doc, memo), base.packed


@dataclass(frozen=True)
class _Member:
    """One file of the zip: name, CRC-32, size, stored bytes and method (8 deflate, 0 store)."""

    name: str
    crc: int
    size: int
    data: bytes
    method: int

    @classmethod
    def of(cls, name: str, blob: bytes) -> _Member:
        if name.lower().endswith(STORED_SUFFIXES):
            return cls(name, zlib.crc32(blob), len(blob), blob, 0)
        deflate = zlib.compressobj(ZIP_LEVEL, zlib.DEFLATED, -15)
        data = deflate.compress(blob) + deflate.flush()
        return cls(name, zlib.crc32(blob), len(blob), data, 8)


#: pictures are compressed already: stored as they are
STORED_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif")
ZIP_LEVEL = 6


def _zip(members: list[_Member], when: dt.datetime) -> bytes:
    """A zip of ``members`` with fixed timestamps and attributes (deterministic)."""
    dos_time = 0
    dos_date = ((max(when.year, 1980) - 1980) << 9) | (when.month << 5) | when.day
    out = io.BytesIO()
    central = []
    for m in members:
        name = m.name.encode("ascii")
        offset = out.tell()
        fixed = (20, 0, m.method, dos_time, dos_date, m.crc, len(m.data), m.size, len(name))
        out.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, *fixed, 0))
        out.write(name)
        out.write(m.data)
        central.append(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, *fixed, 0, 0, 0, 0, 0, offset)
                       + name)
    start = out.tell()
    for entry in central:
        out.write(entry)
    size = out.tell() - start
    out.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), size, start, 0))
    return out.getvalue()


def _package_bytes(package_doc: Any, when: dt.datetime, packed: Mapping[int, _Member] | None = None) -> bytes:
    """The .docx file of ``package_doc``: python-docx's parts and order; the members in
    ``packed`` (by part) as they are."""
    from docx.opc.packuri import CONTENT_TYPES_URI, PACKAGE_URI
    from docx.opc.pkgwriter import _ContentTypesItem

    packed = packed or {}
    package = package_doc.part.package
    parts = list(package.parts)
    members = [_Member.of(CONTENT_TYPES_URI.membername, _ContentTypesItem.from_parts(parts).blob),
               _Member.of(PACKAGE_URI.rels_uri.membername, package.rels.xml)]
    for part in parts:
        member = packed.get(id(part))
        if member is None:
            part.before_marshal()
            member = _Member.of(part.partname.membername, part.blob)
        members.append(member)
        if len(part.rels):
            members.append(_Member.of(part.partname.rels_uri.membername, part.rels.xml))
    return _zip(members, when)


# ---------------------------------------------------------------------- images


def qr_png(text: str, *, module_px: int = 8) -> bytes:
    """Encode ``text`` as a QR code PNG (the same matrix the PDF draws)."""
    from PIL import Image

    from .qr import QUIET_ZONE, qr_matrix

    matrix = qr_matrix(text)
    n = len(matrix)
    img = Image.new("1", (n + 2 * QUIET_ZONE, n + 2 * QUIET_ZONE), 1)
    px = img.load()
    assert px is not None
    for r, row in enumerate(matrix):
        for c, dark in enumerate(row):
            if dark:
                px[c + QUIET_ZONE, r + QUIET_ZONE] = 0
    side = (n + 2 * QUIET_ZONE) * module_px
    img = img.resize((side, side), Image.Resampling.NEAREST)
    buf = io.BytesIO()
    # a 1-bit image: optimize would only try other filters for a few bytes, at ~5 ms a code
    img.save(buf, "PNG")
    return buf.getvalue()


def pdf_page_png(source: Path, page: int, dpi: int = PDF_PAGE_DPI) -> tuple[bytes, int, int]:
    """Render one PDF page (after its /Rotate) to PNG with pdfium; return (png, w, h)."""
    import pypdfium2 as pdfium

    from .pdfiumlock import PDFIUM

    with PDFIUM:  # pdfium is not thread-safe (the web app's Word copies)
        pdf = pdfium.PdfDocument(str(source))
        try:
            pg = pdf[page]
            try:
                bitmap = pg.render(scale=dpi / 72, may_draw_forms=True)
                img = bitmap.to_pil()
            finally:
                pg.close()
        finally:
            pdf.close()
    if img.mode not in ("RGB", "L"):
        img = img.convert("RGB")
    buf = io.BytesIO()
    img.save(buf, "PNG", optimize=False, compress_level=6)
    return buf.getvalue(), img.width, img.height


