"""Word (.docx) writer: renders the same :class:`~archive_builder.document.Document` as the
PDF writer, so a village secretary gets an editable copy of a household packet.

Design notes
------------
* python-docx is used for the package (parts, relationships, pictures); the body is built
  as raw WordprocessingML because python-docx has no API for East Asian fonts
  (``w:rFonts/@w:eastAsia``), repeated header rows, grid spans or fields.
* Every run carries ``w:rFonts`` with ``w:ascii``, ``w:hAnsi``, ``w:eastAsia`` and ``w:cs``
  set to the role's font, and the styles (docDefaults, Normal, Title, Heading 1–3, the
  table style) carry the same, with the default template's theme-font attributes removed:
  a theme attribute (``w:eastAsiaTheme``) wins over an explicit name in Word, which is why
  python-docx documents show East Asian text in MS Mincho (python-docx #1601).
* Each model section is one Word section (section break "next page"), so each starts on a
  new page and cover/separator pages can have a footer without a page number.  A separator
  sheet (隔页纸) is its own Word section, vertically centred.  Page numbers are a PAGE field
  in the footer, formatted after ``PageSetup.page_number_format`` ("— {n} —"); odd pages
  right, even pages left (GB/T 9704 §7.5, duplex).
* "prose" sections get the GB/T 9704 document grid (22 lines × 28 characters).
* Warm: python-docx's default template is read and restyled once per process (page setup
  and fonts); each packet starts from a deep copy of that prepared package.
* Each section starts with a hidden bookmark ``_ab<NNN>_<key>``; :func:`section_texts` uses
  them to read the text of each section back (tests compare it with the PDF's text).
* Output is deterministic: core properties are taken from ``Document.date`` and the zip is
  written with fixed member timestamps, so the same document gives the same bytes
  (with the same python-docx, Pillow, pypdfium2 and zlib).
* Word cannot know where pages break, so the contents page shows the PDF's page numbers
  only when ``page_numbers`` is given (section key → printed number).

Why one module of this size: the Word writer of the document model, one function per block
kind, mirroring ``render/pdf.py``; splitting it would separate blocks that share page and
style setup.
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
import io
import math
import re
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lxml import etree

from ..archive.outdir import atomic_write
from ..document import (
    Block,
    Contents,
    Document,
    Evidence,
    ExternalPages,
    Heading,
    KeyValue,
    PageBreak,
    PageSetup,
    Paragraph,
    QRCode,
    Signature,
    Spacer,
    Table,
    Title,
)
from ..errors import RenderError

W_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
R_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
XML_NS = "http://www.w3.org/XML/1998/namespace"
RT_FOOTER = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/footer"
RT_THUMBNAIL = "http://schemas.openxmlformats.org/package/2006/relationships/metadata/thumbnail"

TWIPS_PER_MM = 1440 / 25.4
EMU_PER_MM = 36000

#: default font per role: names that Word and WPS on Chinese Windows know
DEFAULT_FONT_NAMES: dict[str, str] = {
    "title": "宋体",
    "body": "仿宋",
    "heading": "黑体",
    "kai": "楷体",
    "table": "宋体",
}
#: footer page numbers: 4号 (14 pt) 宋体 after GB/T 9704
PAGE_NUMBER_SIZE = 14.0
LABEL_SHADE = "E0E0E0"  # the PDF's 0.88 grey
#: the same constants as the PDF writer, so both outputs look alike
CONTENTS_SIZE = 12.0
CAPTION_SIZE = 10.5
EMPTY_MARK = "年　月　日"
PLACEHOLDER_TEXT = "材料缺失/无法读取：{path}"
#: PDF evidence pages are rendered to PNG at this resolution for Word
PDF_PAGE_DPI = 150
#: vertical room left for the caption lines above an evidence picture
EVIDENCE_CAPTION_MM = 22.0

BOOKMARK_PREFIX = "_ab"
SEPARATOR_BOOKMARK_PREFIX = "_abs"

_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


@functools.lru_cache(maxsize=None)
def w(tag: str) -> str:
    """Clark name of a WordprocessingML tag: ``w("p")`` → ``{ns}p`` (memoised: a packet
    creates tens of thousands of elements)."""
    return f"{{{W_NS}}}{tag}"


_SubElement = etree.SubElement


def _em_width(text: str) -> float:
    """Width of ``text`` in em: CJK and full-width characters 1, others 0.65 (digits and Latin
    letters of the widest fonts Word or LibreOffice may put in place of 宋体, e.g. DejaVu Sans)."""
    import unicodedata

    return sum(1.0 if unicodedata.east_asian_width(ch) in "WF" else 0.65 for ch in text)


def _el(tag: str, parent: Any = None, **attrs: Any) -> Any:
    """Create ``w:<tag>`` with ``w:``-namespaced attributes (``val="x"`` → ``w:val``)."""
    attrib = {w(k): str(v) for k, v in attrs.items() if v is not None} if attrs else None
    if parent is None:
        return etree.Element(w(tag), attrib, nsmap={"w": W_NS})
    return _SubElement(parent, w(tag), attrib)


PPR_ORDER = ["pStyle", "keepNext", "keepLines", "pageBreakBefore", "framePr", "widowControl", "numPr", "suppressLineNumbers", "pBdr", "shd", "tabs", "suppressAutoHyphens", "kinsoku", "wordWrap", "overflowPunct", "topLinePunct", "autoSpaceDE", "autoSpaceDN", "bidi", "adjustRightInd", "snapToGrid", "spacing", "ind", "contextualSpacing", "mirrorIndents", "suppressOverlap", "jc", "textDirection", "textAlignment", "textboxTightWrap", "outlineLvl", "divId", "cnfStyle", "rPr", "sectPr", "pPrChange"]
TBLPR_ORDER = ["tblStyle", "tblpPr", "tblOverlap", "bidiVisual", "tblStyleRowBandSize", "tblStyleColBandSize", "tblW", "jc", "tblCellSpacing", "tblInd", "tblBorders", "shd", "tblLayout", "tblCellMar", "tblLook", "tblCaption", "tblDescription"]
RPR_ORDER = ["rStyle", "rFonts", "b", "bCs", "i", "iCs", "caps", "smallCaps", "strike", "dstrike", "outline", "shadow", "emboss", "imprint", "noProof", "snapToGrid", "vanish", "webHidden", "color", "spacing", "w", "kern", "position", "sz", "szCs", "highlight", "u", "effect", "bdr", "shd", "fitText", "vertAlign", "rtl", "cs", "em", "lang", "eastAsianLayout", "specVanish", "oMath"]
SECTPR_ORDER = ["headerReference", "footerReference", "footnotePr", "endnotePr", "type", "pgSz", "pgMar", "paperSrc", "pgBorders", "lnNumType", "pgNumType", "cols", "formProt", "vAlign", "noEndnote", "titlePg", "textDirection", "bidi", "rtlGutter", "docGrid", "printerSettings"]
STYLE_ORDER = ["name", "aliases", "basedOn", "next", "link", "autoRedefine", "hidden", "uiPriority", "semiHidden", "unhideWhenUsed", "qFormat", "locked", "personal", "personalCompose", "personalReply", "rsid", "pPr", "rPr", "tblPr", "trPr", "tcPr", "tblStylePr"]


def _ordered(parent: Any, tag: str, order: list[str], **attrs: Any) -> Any:
    """Insert ``w:<tag>`` into ``parent`` at its schema position (replacing one present)."""
    old = parent.find(w(tag))
    if old is not None:
        parent.remove(old)
    el = _el(tag)
    for k, v in attrs.items():
        if v is not None:
            el.set(w(k), str(v))
    rank = order.index(tag)
    for i, child in enumerate(parent):
        name = etree.QName(child).localname
        if name in order and order.index(name) > rank:
            parent.insert(i, el)
            return el
    parent.append(el)
    return el


def ppr_set(ppr: Any, tag: str, **attrs: Any) -> Any:
    return _ordered(ppr, tag, PPR_ORDER, **attrs)


def clean_text(text: str) -> str:
    """Drop characters that XML 1.0 cannot carry (control characters, lone surrogates)."""
    return _INVALID_XML.sub("", text)


@dataclass(frozen=True)
class DocxResult:
    """What :func:`write_docx` returns besides the file itself."""

    path: Path
    #: keys of the sections written, in order
    sections: tuple[str, ...]
    #: Chinese warnings (placeholder evidence, form parts that could not be carried over)
    warnings: tuple[str, ...] = ()
    #: keys of sections taken from Word forms
    form_sections: tuple[str, ...] = ()
    #: time spent, seconds (for the build's statistics)
    seconds: float = 0.0


@dataclass
class _FooterState:
    kind: str | None = None  # "numbered" | "blank" | None (nothing yet)


@dataclass
class _Writer:
    doc: Document
    package_doc: Any  # docx.document.Document
    fonts: dict[str, str]
    evidence: Any
    page_numbers: Mapping[str, str]
    warnings: list[str] = field(default_factory=list)
    body: Any = None
    bookmark_id: int = 0
    footer: _FooterState = field(default_factory=_FooterState)
    page_has_content: bool = False
    pending_break: bool = False
    layout: str = "form"

    # ------------------------------------------------------------------ geometry

    @property
    def page(self) -> PageSetup:
        return self.doc.page

    @property
    def text_width_twips(self) -> int:
        return round(self.page.text_width_mm * TWIPS_PER_MM)

    def size(self, role: str) -> float:
        return float(self.page.sizes.get(role, self.page.sizes.get("body", 16.0)))

    # ------------------------------------------------------------------ runs & paragraphs

    def rpr(self, parent: Any, role: str, size: float | None = None, bold: bool = False) -> Any:
        rpr = _el("rPr", parent)
        name = self.fonts[role]
        _el("rFonts", rpr, ascii=name, hAnsi=name, eastAsia=name, cs=name, hint="eastAsia")
        if bold:
            _el("b", rpr)
            _el("bCs", rpr)
        if size is not None:
            half = str(round(size * 2))
            _el("sz", rpr, val=half)
            _el("szCs", rpr, val=half)
        return rpr

    def run(self, p: Any, text: str, role: str, size: float | None = None, *,
            bold: bool = False, underline: bool = False) -> Any:
        r = _el("r", p)
        rpr = self.rpr(r, role, size, bold)
        if underline:
            _el("u", rpr, val="single")
        text = clean_text(text).replace("\r\n", "\n").replace("\r", "\n")
        for i, line in enumerate(text.split("\n")):
            if i:
                _el("br", r)
            for j, piece in enumerate(line.split("\t")):
                if j:
                    _el("tab", r)
                if piece:
                    t = _el("t", r)
                    t.text = piece
                    t.set(f"{{{XML_NS}}}space", "preserve")
        return r

    def para(self, *, style: str | None = None, align: str | None = None,
             first_line_chars: bool = False, size: float | None = None,
             keep_next: bool = False, parent: Any = None) -> Any:
        """Append a paragraph to ``parent`` (default: the body) and return it."""
        p = _el("p", self.body if parent is None else parent)
        ppr = _el("pPr", p)
        if style is None and parent is None and self.layout == "prose":
            style = "ABProse"
        if style:
            _el("pStyle", ppr, val=style)
        if keep_next:
            _el("keepNext", ppr)
        if parent is None and self.pending_break:
            _el("pageBreakBefore", ppr)
            self.pending_break = False
        if first_line_chars:
            # firstLine in twips as a fallback for readers without character units
            twips = round(2 * (size or self.size("body")) * 20)
            _el("ind", ppr, firstLineChars="200", firstLine=twips)
        if align:
            _el("jc", ppr, val={"justify": "both", "center": "center", "right": "right",
                                "left": "left"}[align])
        if parent is None:
            self.page_has_content = True
        return p

    def flush_break(self) -> None:
        """Emit a pending page break before a table (tables have no pageBreakBefore)."""
        if self.pending_break:
            p = _el("p", self.body)
            r = _el("r", p)
            _el("br", r, type="page")
            self.pending_break = False

    def page_break(self) -> None:
        if self.page_has_content:
            self.pending_break = True
            self.page_has_content = False

    def bookmark(self, name: str) -> None:
        """Append a hidden bookmark at the current body position (marks a section start)."""
        self.bookmark_id += 1
        _el("bookmarkStart", self.body, id=self.bookmark_id, name=name)
        _el("bookmarkEnd", self.body, id=self.bookmark_id)

    # ------------------------------------------------------------------ sections

    def section_properties(self, *, numbered: bool, prose: bool = False,
                           vcenter: bool = False, geometry: Any = None,
                           restart: int | None = None) -> Any:
        """Return a ``w:sectPr`` for one Word section."""
        sect = _el("sectPr")
        if numbered != (self.footer.kind == "numbered") or self.footer.kind is None:
            for ref_type, rid in self.footer_parts(numbered):
                ref = _el("footerReference", sect, type=ref_type)
                ref.set(f"{{{R_NS}}}id", rid)
            self.footer.kind = "numbered" if numbered else "blank"
        _el("type", sect, val="nextPage")
        if geometry is not None:
            for child in geometry:
                sect.append(copy.deepcopy(child))
            if restart is not None:
                _ordered(sect, "pgNumType", SECTPR_ORDER, start=restart)
        else:
            pg = self.page
            _el("pgSz", sect, w=round(pg.width_mm * TWIPS_PER_MM), h=round(pg.height_mm * TWIPS_PER_MM))
            right = pg.width_mm - pg.margin_left_mm - pg.text_width_mm
            bottom = pg.height_mm - pg.margin_top_mm - pg.text_height_mm
            # GB/T 9704: the page number sits about 7 mm below the text block
            footer = max(bottom - 7.0 - PAGE_NUMBER_SIZE * 0.3528, 5.0)
            _el("pgMar", sect, top=round(pg.margin_top_mm * TWIPS_PER_MM),
                right=round(right * TWIPS_PER_MM), bottom=round(bottom * TWIPS_PER_MM),
                left=round(pg.margin_left_mm * TWIPS_PER_MM), header=851,
                footer=round(footer * TWIPS_PER_MM), gutter=0)
            if restart is not None:
                _el("pgNumType", sect, start=restart)
            _el("cols", sect, space=425)
            if vcenter:
                _el("vAlign", sect, val="center")
            if prose and pg.prose_lines > 0:
                # a line grid only: LibreOffice mis-lays a negative w:charSpace (every
                # character takes two cells), so 28 characters per line come from the
                # condensed character spacing of the ABProse style instead
                pitch = round(pg.text_height_mm * TWIPS_PER_MM / pg.prose_lines)
                _el("docGrid", sect, type="lines", linePitch=pitch)
            else:
                _el("docGrid", sect, linePitch=312)
        return sect

    def footer_parts(self, numbered: bool) -> list[tuple[str, str]]:
        """Create footer parts (default = odd pages, even) and return (type, rId) pairs."""
        from docx.parts.hdrftr import FooterPart

        doc_part = self.package_doc.part
        part = FooterPart.new(doc_part.package)
        ftr = part.element
        for child in list(ftr):
            ftr.remove(child)
        p = _el("p", ftr)
        ppr = _el("pPr", p)
        _el("pStyle", ppr, val="Footer")
        if numbered:
            # centred like the PDF writer's page numbers
            ppr_set(ppr, "jc", val="center")
            self.page_number_runs(p)
        return [("default", doc_part.relate_to(part, RT_FOOTER))]

    def page_number_runs(self, p: Any) -> None:
        fmt = self.page.page_number_format
        before, _, after = fmt.partition("{n}")
        if before:
            self.run(p, before, "body", PAGE_NUMBER_SIZE)
        r = _el("r", p)
        self.rpr(r, "body", PAGE_NUMBER_SIZE)
        _el("fldChar", r, fldCharType="begin")
        r = _el("r", p)
        self.rpr(r, "body", PAGE_NUMBER_SIZE)
        instr = _el("instrText", r)
        instr.text = " PAGE "
        instr.set(f"{{{XML_NS}}}space", "preserve")
        r = _el("r", p)
        self.rpr(r, "body", PAGE_NUMBER_SIZE)
        _el("fldChar", r, fldCharType="separate")
        self.run(p, "1", "body", PAGE_NUMBER_SIZE)
        r = _el("r", p)
        self.rpr(r, "body", PAGE_NUMBER_SIZE)
        _el("fldChar", r, fldCharType="end")
        if after:
            self.run(p, after, "body", PAGE_NUMBER_SIZE)

    def end_section(self, sect: Any) -> None:
        """Close the current Word section with ``sect``.

        The section properties ride on the section's last paragraph; after a table (or in
        an empty section) a 1-pt paragraph is added, so it cannot spill onto a new page.
        """
        last = self.body[-1] if len(self.body) else None
        if last is not None and last.tag == w("p") and last.find(f"{w('pPr')}/{w('sectPr')}") is None:
            ppr = last.find(w("pPr"))
            if ppr is None:
                ppr = etree.Element(w("pPr"))
                last.insert(0, ppr)
        else:
            p = _el("p", self.body)
            ppr = _el("pPr", p)
            ppr_set(ppr, "snapToGrid", val=0)
            ppr_set(ppr, "spacing", before=0, after=0, line=20, lineRule="exact")
            rpr = ppr_set(ppr, "rPr")
            _el("sz", rpr, val=2)
            _el("szCs", rpr, val=2)
        ppr_set(ppr, "sectPr").getparent().replace(ppr.find(w("sectPr")), sect)
        self.pending_break = False
        self.page_has_content = False

    # ------------------------------------------------------------------ blocks

    def block(self, b: Block) -> None:
        if isinstance(b, Title):
            self.title(b)
        elif isinstance(b, Heading):
            style = {1: "Heading1", 2: "Heading2"}.get(b.level, "Heading3")
            role = "heading" if b.level <= 1 else "kai"
            p = self.para(style=style, keep_next=True, first_line_chars=self.layout == "prose",
                          size=self.size(role))
            self.run(p, b.text, role)
        elif isinstance(b, Paragraph):
            size = b.size or self.size(b.role)
            align = "center" if self.layout == "cover" and b.align == "justify" else b.align
            p = self.para(align=align, first_line_chars=b.indent, size=size)
            self.run(p, b.text, b.role, None if size == self.size("body") and b.role == "body" else size)
        elif isinstance(b, KeyValue):
            if self.layout == "cover":
                self.cover_form(b)
            else:
                self.key_value(b)
        elif isinstance(b, Table):
            self.table(b)
        elif isinstance(b, Signature):
            self.signature(b)
        elif isinstance(b, Spacer):
            p = self.para(style="ABPlain")
            ppr = p.find(w("pPr"))
            ppr_set(ppr, "spacing", before=0, after=0,
                    line=max(1, round(b.height_mm * TWIPS_PER_MM)), lineRule="exact")
        elif isinstance(b, PageBreak):
            self.page_break()
        elif isinstance(b, QRCode):
            self.qrcode(b)
        elif isinstance(b, Evidence):
            self.evidence_block(b)
        elif isinstance(b, Contents):
            self.contents(b)
        elif isinstance(b, ExternalPages):
            self.external_pages(b)
        else:  # pragma: no cover - the model is closed
            raise RenderError(f"无法写入 Word：未知的内容块类型 {type(b).__name__}")

    def title(self, b: Title) -> None:
        size = self.size("title") * (1.6 if self.layout == "cover" else 1.0)
        p = self.para(style="Title", align="center", keep_next=bool(b.subtitle))
        self.run(p, b.text, "title", size if self.layout == "cover" else None, bold=self.title_bold)
        if b.subtitle:
            p = self.para(style="Subtitle", align="center")
            self.run(p, b.subtitle, "kai")

    @property
    def title_bold(self) -> bool:
        # 小标宋 is a heavy face already; ordinary 宋体 needs bold to look like a title
        return "小标宋" not in self.fonts["title"]

    # ------------------------------------------------------------------ tables

    def new_table(self, widths_twips: list[int], *, style: str = "ABTable",
                  align: str = "center") -> Any:
        self.flush_break()
        tbl = _el("tbl", self.body)
        tblpr = _el("tblPr", tbl)
        _el("tblStyle", tblpr, val=style)
        _el("tblW", tblpr, w=sum(widths_twips), type="dxa")
        _el("jc", tblpr, val=align)
        _el("tblLayout", tblpr, type="fixed")
        _el("tblLook", tblpr, val="04A0", firstRow=1, lastRow=0, firstColumn=0,
            lastColumn=0, noHBand=0, noVBand=1)
        grid = _el("tblGrid", tbl)
        for wd in widths_twips:
            _el("gridCol", grid, w=wd)
        self.page_has_content = True
        return tbl

    def cell(self, tr: Any, text: str, width: int, *, span: int = 1, shade: bool = False,
             align: str = "left", role: str = "table", size: float | None = None,
             borders: Mapping[str, str] | None = None) -> Any:
        tc = _el("tc", tr)
        tcpr = _el("tcPr", tc)
        _el("tcW", tcpr, w=width, type="dxa")
        if span > 1:
            _el("gridSpan", tcpr, val=span)
        if borders:
            tcb = _el("tcBorders", tcpr)
            for edge in ("top", "left", "bottom", "right"):
                if edge in borders:
                    _el(edge, tcb, val=borders[edge], sz=4, space=0,
                        color="auto" if borders[edge] == "nil" else "000000")
        if shade:
            _el("shd", tcpr, val="clear", color="auto", fill=LABEL_SHADE)
        _el("vAlign", tcpr, val="center")
        p = _el("p", tc)
        ppr = _el("pPr", p)
        _el("pStyle", ppr, val="ABTableText")
        _el("jc", ppr, val={"justify": "both", "center": "center", "right": "right",
                            "left": "left"}.get(align, "left"))
        if text:
            own = None if role == "table" and size is None else (size or self.size("table"))
            self.run(p, text, role, own)
        return tc

    def row(self, tbl: Any, *, header: bool = False, height: int | None = None) -> Any:
        tr = _el("tr", tbl)
        trpr = _el("trPr", tr)
        _el("cantSplit", trpr)
        if height:
            _el("trHeight", trpr, val=height, hRule="atLeast")
        if header:
            _el("tblHeader", trpr)
        return tr

    def relative_widths(self, weights: Iterable[float], total: int) -> list[int]:
        weights = [max(float(x), 0.0) for x in weights]
        s = sum(weights) or 1.0
        out = [max(1, int(total * x / s)) for x in weights]
        out[-1] += total - sum(out)
        return out

    def key_value(self, b: KeyValue) -> None:
        # same geometry as the PDF writer: label = 36 % of a pair (25 % with one pair)
        cols = max(1, b.columns)
        pair = self.text_width_twips // cols
        label_w = round(pair * (0.36 if cols > 1 else 0.25))
        widths = [label_w, pair - label_w] * cols
        widths[-1] += self.text_width_twips - sum(widths)
        tbl = self.new_table(widths)
        wide = set(b.wide)
        rows: list[list[tuple[str, str]]] = []
        current: list[tuple[str, str]] = []
        for key, value in b.rows:
            if key in wide:
                if current:
                    rows.append(current)
                    current = []
                rows.append([(key, value)])
                continue
            current.append((key, value))
            if len(current) == cols:
                rows.append(current)
                current = []
        if current:
            rows.append(current)
        for row in rows:
            tr = self.row(tbl)
            for i, (key, value) in enumerate(row):
                gi = 2 * i
                self.cell(tr, key, widths[gi], shade=True, align="center")
                last = i == len(row) - 1
                span = (2 * cols - gi - 1) if last else 1
                self.cell(tr, value, sum(widths[gi + 1:gi + 1 + span]), span=span)

    def cover_form(self, b: KeyValue) -> None:
        """Cover pages: "label：value" lines, the value centred on an underline."""
        size = self.size("body")
        longest = max((_em_width(f"{k}：") for k, _ in b.rows), default=2.0)
        # the label on one line: its text, the cell's margins and a little room for the font
        label_w = min(round((longest + 0.6) * size * 20 + 2 * 85), self.text_width_twips // 2)
        form_w = round(self.text_width_twips * 0.72)
        widths = [label_w, max(form_w - label_w, 1)]
        tbl = self.new_table(widths, style="ABPlainTable")
        for key, value in b.rows:
            tr = self.row(tbl, height=round(size * 2.2 * 20))
            self.cell(tr, f"{key}：", widths[0], align="right", role="body", size=size,
                      borders={"top": "nil", "left": "nil", "bottom": "nil", "right": "nil"})
            self.cell(tr, value, widths[1], align="center", role="body", size=size,
                      borders={"top": "nil", "left": "nil", "bottom": "single", "right": "nil"})

    def table(self, b: Table) -> None:
        from .columns import column_widths

        ncols = len(b.header) or max((len(r) for r in b.rows), default=1)
        size = self.size("table")
        # as in the PDF: widths from the content (no ID number, date or label split over two
        # lines), the template's as preferences; measured by character class, as Word's
        # fonts are not this process's
        exact, scale = column_widths(
            float(self.text_width_twips), b.header, b.rows, b.widths,
            lambda text, bold: _em_width(text) * size * 20 * (1.05 if bold else 1.0), 2 * 85 + size * 20 * 0.25,
            smallest=0.6, footer=b.footer,
        )
        widths = [round(w) for w in exact]
        widths[-1] += self.text_width_twips - sum(widths)
        cell_size = size * scale if scale < 1 else None
        if b.caption:
            p = self.para(style="ABPlain", align="center", keep_next=True)
            self.run(p, b.caption, "heading", self.size("table") * 1.25)
        tbl = self.new_table(widths)
        aligns = [("left" if a == "justify" else a) for a in b.align] + ["left"] * ncols
        if b.header:
            tr = self.row(tbl, header=True)
            for i in range(ncols):
                text = b.header[i] if i < len(b.header) else ""
                self.cell(tr, text, widths[i], align="center", role="heading",
                          size=cell_size or size)
        for rows, role in ((b.rows, "table"), (b.footer, "heading")):
            for values in rows:
                tr = self.row(tbl)
                for i in range(ncols):
                    text = values[i] if i < len(values) else ""
                    self.cell(tr, text, widths[i], align=aligns[i], role=role,
                              size=cell_size if role == "table" else (cell_size or size))

    def contents(self, b: Contents) -> None:
        widths = self.relative_widths((0.12, 0.70, 0.18), self.text_width_twips)
        tbl = self.new_table(widths)
        tr = self.row(tbl, header=True, height=480)
        for i in range(3):
            self.cell(tr, b.header[i], widths[i], align="center", role="heading",
                      size=CONTENTS_SIZE)
        n = 0
        for s in self.doc.sections:
            if not s.in_contents:
                continue
            n += 1
            tr = self.row(tbl, height=480)
            self.cell(tr, str(n), widths[0], align="center", size=CONTENTS_SIZE)
            self.cell(tr, s.title, widths[1], align="left", size=CONTENTS_SIZE)
            self.cell(tr, self.page_numbers.get(s.key, ""), widths[2], align="center",
                      size=CONTENTS_SIZE)

    # ------------------------------------------------------------------ signature, QR

    def signature(self, b: Signature) -> None:
        """Labels followed by a rule to the right margin, then the date (as in the PDF)."""
        tw = self.text_width_twips
        start = round(tw * 0.45)
        for i, label in enumerate(b.labels):
            p = self.para(style="ABPlain", keep_next=True)
            ppr = p.find(w("pPr"))
            tabs = ppr_set(ppr, "tabs")
            _el("tab", tabs, val="right", pos=tw)
            ppr_set(ppr, "spacing", before=240 if i == 0 else 120, after=120)
            ppr_set(ppr, "ind", left=start)
            self.run(p, label, "body")
            self.run(p, "\t", "body", underline=True)
        if b.fingerprint:
            self.fingerprint_box(start)
        p = self.para(style="ABPlain", align="right")
        ppr = p.find(w("pPr"))
        ppr_set(ppr, "spacing", before=120)
        if not b.date:
            ppr_set(ppr, "ind", right=round(self.size("body") * 40))
        self.run(p, b.date or EMPTY_MARK, "body")

    def fingerprint_box(self, right_of: int) -> None:
        side = round(20 * TWIPS_PER_MM)
        tbl = self.new_table([side], style="ABTable", align="left")
        tblpr = tbl.find(w("tblPr"))
        _ordered(tblpr, "tblInd", TBLPR_ORDER, w=max(right_of - side - round(6 * TWIPS_PER_MM), 0),
                 type="dxa")
        borders = _ordered(tblpr, "tblBorders", TBLPR_ORDER)
        for edge in ("top", "left", "bottom", "right"):
            _el(edge, borders, val="dashed", sz=4, space=0, color="000000")
        tr = _el("tr", tbl)
        trpr = _el("trPr", tr)
        _el("trHeight", trpr, val=side, hRule="exact")
        self.cell(tr, "按手印", side, align="center", role="body", size=CAPTION_SIZE)

    def qrcode(self, b: QRCode) -> None:
        png = qr_png(b.text)
        size = round(b.size_mm * EMU_PER_MM)
        p = self.para(style="ABPlain", align="right", keep_next=bool(b.caption))
        self.picture(p, io.BytesIO(png), size, size)
        if b.caption:
            p = self.para(style="ABPlain", align="right")
            self.run(p, b.caption, "table", CAPTION_SIZE)

    def picture(self, p: Any, stream: Any, cx: int, cy: int) -> None:
        inline = self.package_doc.part.new_pic_inline(stream, cx, cy)
        r = _el("r", p)
        drawing = _el("drawing", r)
        drawing.append(inline)

    # ------------------------------------------------------------------ evidence

    def evidence_block(self, b: Evidence) -> None:
        from .evidence import ImageAsset, PdfPageAsset, Placeholder

        if self.evidence is None:
            assets: list[Any] = [Placeholder(Path(b.source), b.display_path, "未配置佐证材料缓存")]
        else:
            assets = self.evidence.assets(Path(b.source), display_path=b.display_path)
        total = len(assets)
        box_w = self.page.text_width_mm
        box_h = self.page.text_height_mm - EVIDENCE_CAPTION_MM
        for n, asset in enumerate(assets, 1):
            self.page_break()
            self.evidence_caption(b, n, total)
            if isinstance(asset, Placeholder):
                self.placeholder(asset.display_path, asset.reason, getattr(asset, "hint", ""))
                continue
            if isinstance(asset, ImageAsset):
                wpx, hpx = asset.width_px, asset.height_px
                stream: Any = io.BytesIO(asset.image_bytes())
            elif isinstance(asset, PdfPageAsset):
                try:
                    data, wpx, hpx = pdf_page_png(asset.placed, asset.page, PDF_PAGE_DPI)
                except Exception as e:  # noqa: BLE001 - a page pdfium cannot draw: placeholder, go on
                    self.placeholder(b.display_path, f"PDF 第 {asset.page + 1} 页无法渲染：{e}",
                                     "请把该文件重新导出为 PDF 或图片后替换。")
                    continue
                stream = io.BytesIO(data)
            else:  # pragma: no cover
                continue
            scale = min(box_w / wpx, box_h / hpx)
            p = self.para(style="ABPlain", align="center")
            self.picture(p, stream, round(wpx * scale * EMU_PER_MM), round(hpx * scale * EMU_PER_MM))
            self.page_has_content = True

    def external_pages(self, b: ExternalPages) -> None:
        """Whole pages of a PDF (a converted form with no Word original given): one picture
        per page, scaled to the text block."""
        for k in range(b.pages):
            self.page_break()
            try:
                data, wpx, hpx = pdf_page_png(Path(b.source), k, PDF_PAGE_DPI)
            except Exception as e:  # noqa: BLE001 - say so on the page, go on
                self.placeholder(Path(b.source).name, f"PDF 第 {k + 1} 页无法渲染：{e}", "")
                continue
            scale = min(self.page.text_width_mm / wpx, self.page.text_height_mm / hpx)
            p = self.para(style="ABPlain", align="center")
            self.picture(p, io.BytesIO(data), round(wpx * scale * EMU_PER_MM), round(hpx * scale * EMU_PER_MM))
            self.page_has_content = True

    def evidence_caption(self, b: Evidence, n: int, total: int) -> None:
        caption = " · ".join(x for x in (b.title, b.kind, b.date, b.display_path) if x)
        if total > 1:
            caption += f"（第 {n} 页，共 {total} 页）"
        p = self.para(style="ABPlain", align="left", keep_next=True)
        ppr_set(p.find(w("pPr")), "spacing", after=170)
        self.run(p, caption, "kai", CAPTION_SIZE * 1.15)

    def placeholder(self, display_path: str, reason: str, hint: str) -> None:
        size = self.size("body")
        small = CAPTION_SIZE * 1.15
        lines = [(PLACEHOLDER_TEXT.format(path=display_path), "heading", size),
                 (f"原因：{reason}", "body", small)]
        if hint:
            lines.append((hint, "body", small))
        for i, (text, role, sz) in enumerate(lines):
            p = self.para(style="ABPlain", align="center", keep_next=i < len(lines) - 1)
            ppr = p.find(w("pPr"))
            bdr = ppr_set(ppr, "pBdr")
            # identical borders on consecutive paragraphs: Word draws one box around them
            for edge in ("top", "left", "bottom", "right"):
                _el(edge, bdr, val="single", sz=8, space=4, color="000000")
            ppr_set(ppr, "spacing", before=360 if i == 0 else 120, after=360 if i == len(lines) - 1 else 0)
            self.run(p, text, role, sz)
        self.warnings.append(
            f"佐证材料 {display_path} 无法读取（{reason}），已用占位页代替；"
            f"{hint or '请补充或替换该文件。'}")

    # ------------------------------------------------------------------ the packet

    def write_sections(self, forms: Mapping[str, Path]) -> list[str]:
        form_keys = []
        sections = self.doc.sections
        numbered_seen = False
        after_unnumbered = True
        for index, section in enumerate(sections):
            if section.separator:
                self.layout = "separator"
                self.bookmark(f"{SEPARATOR_BOOKMARK_PREFIX}{index:03d}")
                p = self.para(style="ABSeparator", align="center")
                self.run(p, section.separator, "title")
                self.end_section(self.section_properties(numbered=False, vcenter=True))
                after_unnumbered = True
            self.layout = section.layout
            self.bookmark(_bookmark_name(index, section.key))
            self.page_has_content = False
            geometry = None
            if section.key in forms:
                from .forms import insert_form

                geometry, warns = insert_form(self, Path(forms[section.key]))
                self.warnings.extend(warns)
                form_keys.append(section.key)
            else:
                for b in section.blocks:
                    self.block(b)
            numbered = section.layout != "cover"
            restart = None
            if numbered:
                # the PDF numbers only numbered pages: restart after cover/separator sheets
                known = _leading_int(self.page_numbers.get(section.key, ""))
                if known is not None and after_unnumbered:
                    restart = known
                elif not numbered_seen:
                    restart = 1
                numbered_seen = True
                after_unnumbered = False
            else:
                after_unnumbered = True
            sect = self.section_properties(numbered=numbered, prose=section.layout == "prose",
                                           geometry=geometry, restart=restart)
            if index == len(sections) - 1:
                self.finish(sect)
            else:
                self.end_section(sect)
        if not sections:
            self.finish(self.section_properties(numbered=False))
        return form_keys

    def finish(self, sect: Any) -> None:
        old = self.body.find(w("sectPr"))
        if old is not None:
            self.body.remove(old)
        self.body.append(sect)


def _leading_int(text: str) -> int | None:
    m = re.match(r"\s*(\d+)", text or "")
    return int(m.group(1)) if m else None


def _bookmark_name(index: int, key: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_]", "_", key)
    return f"{BOOKMARK_PREFIX}{index:03d}_{safe}"[:40]


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
    _el("left", mar, w=85, type="dxa")
    _el("bottom", mar, w=28, type="dxa")
    _el("right", mar, w=85, type="dxa")

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


#: prepared empty packages (default template parsed, styles and settings set up), one per
#: page setup and fonts: each packet starts from a deep copy instead of re-reading and
#: restyling python-docx's default template (the warm writer)
_BASES: dict[tuple[str, tuple[tuple[str, str], ...]], Any] = {}


def _base_package(page: PageSetup, fonts: Mapping[str, str]) -> Any:
    """Return a fresh python-docx Document with the packet's styles, settings, no body text."""
    import docx as python_docx

    key = (repr(page), tuple(sorted(fonts.items())))
    base = _BASES.get(key)
    if base is None:
        base = python_docx.Document()
        body = base.element.body
        for child in list(body):
            if child.tag != w("sectPr"):
                body.remove(child)
        _setup_styles(base, page, fonts, "小标宋" not in fonts["title"])
        _setup_settings(base)
        _drop_thumbnail(base)
        if len(_BASES) >= 8:
            _BASES.clear()
        _BASES[key] = base
    return copy.deepcopy(base)


class _DeterministicZip:
    """python-docx's physical package writer, with fixed member timestamps and attributes:
    the parts are compressed once, straight into the final zip."""

    def __init__(self, when: dt.datetime) -> None:
        self.buffer = io.BytesIO()
        self.zip = zipfile.ZipFile(self.buffer, "w", zipfile.ZIP_DEFLATED)
        self.stamp = (max(when.year, 1980), when.month, when.day, 0, 0, 0)

    def write(self, pack_uri: Any, blob: bytes) -> None:
        zi = zipfile.ZipInfo(pack_uri.membername, date_time=self.stamp)
        zi.compress_type = zipfile.ZIP_DEFLATED
        zi.create_system = 0
        zi.external_attr = 0
        self.zip.writestr(zi, blob, compresslevel=6)

    def close(self) -> None:
        self.zip.close()


def _package_bytes(package_doc: Any, when: dt.datetime) -> bytes:
    """The .docx file of ``package_doc``: python-docx's parts and order, written once."""
    from docx.opc.pkgwriter import PackageWriter

    package = package_doc.part.package
    parts = list(package.parts)
    for part in parts:
        part.before_marshal()
    writer: Any = _DeterministicZip(when)  # python-docx's PhysPkgWriter interface: write, close
    PackageWriter._write_content_types_stream(writer, parts)
    PackageWriter._write_pkg_rels(writer, package.rels)
    PackageWriter._write_parts(writer, parts)
    writer.close()
    return writer.buffer.getvalue()


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
    img.save(buf, "PNG", optimize=True)
    return buf.getvalue()


def pdf_page_png(source: Path, page: int, dpi: int = PDF_PAGE_DPI) -> tuple[bytes, int, int]:
    """Render one PDF page (after its /Rotate) to PNG with pdfium; return (png, w, h)."""
    import pypdfium2 as pdfium

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


# ---------------------------------------------------------------------- public API


def resolve_fonts(font_names: Mapping[str, str] | None) -> dict[str, str]:
    fonts = dict(DEFAULT_FONT_NAMES)
    for role, name in (font_names or {}).items():
        if name:
            fonts[role] = name
    return fonts


def write_docx(
    doc: Document,
    out: Path,
    *,
    evidence: Any,
    font_names: Mapping[str, str] | None = None,
    forms: Mapping[str, Path] | None = None,
    context: Mapping[str, Any] | None = None,
    page_numbers: Mapping[str, str] | None = None,
) -> DocxResult:
    """Write ``doc`` as an editable Word file to ``out`` (atomically) and return a summary.

    ``evidence``: an :class:`~archive_builder.render.evidence.EvidenceCache` (only used when
    the document has Evidence blocks).  ``font_names``: role → font family name as Word
    knows it (title/body/heading/kai/table); missing roles use :data:`DEFAULT_FONT_NAMES`.
    ``forms``: section key → Word form; the form replaces that section's blocks.  When
    ``context`` is given the forms are docxtpl templates rendered with it (autoescaped);
    otherwise they are already-rendered ``.docx`` files.  ``page_numbers``: section key →
    printed page number in the PDF, shown on the contents page.
    """
    import time


    started = time.perf_counter()
    out = Path(out)
    fonts = resolve_fonts(font_names)
    package_doc = _base_package(doc.page, fonts)
    body = package_doc.element.body
    writer = _Writer(doc=doc, package_doc=package_doc, fonts=fonts, evidence=evidence,
                     page_numbers=page_numbers or {}, body=body)
    _set_core(package_doc, doc)

    rendered_forms: dict[str, Path] = {}
    tmpdir = None
    try:
        if forms and context is not None:
            import tempfile

            from .forms import render_form

            tmpdir = tempfile.TemporaryDirectory(prefix="ab-forms-")
            for key, template in forms.items():
                target = Path(tmpdir.name) / f"{len(rendered_forms)}.docx"
                writer.warnings.extend(render_form(Path(template), context, target))
                rendered_forms[key] = target
        else:
            rendered_forms = {k: Path(v) for k, v in (forms or {}).items()}
        form_keys = writer.write_sections(rendered_forms)
    finally:
        if tmpdir is not None:
            tmpdir.cleanup()

    atomic_write(out, _package_bytes(package_doc, _doc_datetime(doc.date)))
    return DocxResult(path=out, sections=tuple(s.key for s in doc.sections),
                      warnings=tuple(writer.warnings), form_sections=tuple(form_keys),
                      seconds=time.perf_counter() - started)


# ---------------------------------------------------------------------- reading back


def _element_text(el: Any) -> str:
    parts: list[str] = []
    for node in el.iter(w("t"), w("tab"), w("br"), w("cr"), w("p"), w("instrText"),
                        w("fldChar")):
        if node.tag == w("t"):
            parts.append(node.text or "")
        elif node.tag == w("tab") and node.getparent().tag == w("r"):
            parts.append("\t")
        elif node.tag in (w("br"), w("cr")) or node.tag == w("p") and parts:
            parts.append("\n")
    return "".join(parts)


def section_texts(path: Path) -> dict[str, str]:
    """Read a docx written by :func:`write_docx`; return section key → its text.

    The text is that of paragraphs and table cells in reading order (tables row by row),
    without the separator sheet printed before a section.  Keys come from the section
    bookmarks (non-ASCII letters of a key are shown as ``_``).
    """
    import docx as python_docx

    body = python_docx.Document(str(path)).element.body
    texts: dict[str, list[str]] = {}
    current: list[str] | None = None
    for child in body:
        marks = [child] if child.tag == w("bookmarkStart") else []
        for m in marks:
            name = m.get(w("name"), "")
            if name.startswith(SEPARATOR_BOOKMARK_PREFIX):
                current = None
            elif name.startswith(BOOKMARK_PREFIX) and len(name) > 7 and name[3:6].isdigit():
                current = texts.setdefault(name[7:], [])
        if current is None or child.tag not in (w("p"), w("tbl")):
            continue
        current.append(_element_text(child))
    return {k: "\n".join(v) for k, v in texts.items()}


def normalise_text(text: str) -> str:
    """Text without any whitespace (for comparing the Word and PDF texts of a section)."""
    return re.sub(r"\s+", "", text.replace("\u3000", " "))
