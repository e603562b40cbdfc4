"""The body of a Word packet: the writer of the document model's blocks, mirroring
``render/pdf.py`` (runs, paragraphs, titles, headings, signatures; tables in
:mod:`.docxtables`, pictures in :mod:`.docxpictures`), and the Word sections with their
footers and bookmarks."""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lxml import etree

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
from . import docxpictures, docxtables
from .wordml import (
    BOOKMARK_PREFIX,
    EMPTY_MARK,
    PAGE_NUMBER_SIZE,
    PRESERVE,
    R_NS,
    RT_FOOTER,
    SECTPR_ORDER,
    SEPARATOR_BOOKMARK_PREFIX,
    TWIPS_PER_MM,
    W_R,
    W_T,
    XML_NS,
    _el,
    _ordered,
    _SubElement,
    clean_text,
    ppr_set,
    w,
)


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
    #: run properties, table rows and cells built once per process and font set, copied
    #: where used (:func:`_prototypes`)
    _rprs: dict[tuple[Any, ...], Any] = field(default_factory=dict)
    _cells: dict[tuple[Any, ...], Any] = field(default_factory=dict)
    #: the footer parts' relationship ids (numbered, blank): shared by the Word sections
    _footers: dict[bool, list[tuple[str, str]]] = field(default_factory=dict)
    #: the next drawing id (forms' drawings and bookmarks are renumbered from it too)
    next_object_id: int = 10000

    def __post_init__(self) -> None:
        self._rprs, self._cells = _prototypes(self.fonts)

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
        """Append a ``w:rPr`` for ``role`` (a copy of one built once per font set)."""
        key = (role, size, bold)
        proto = self._rprs.get(key)
        if proto is None:
            proto = _el("rPr")
            name = self.fonts[role]
            _el("rFonts", proto, ascii=name, hAnsi=name, eastAsia=name, cs=name, hint="eastAsia")
            if bold:
                _el("b", proto)
                _el("bCs", proto)
            if size is not None:
                half = str(round(size * 2))
                _el("sz", proto, val=half)
                _el("szCs", proto, val=half)
            self._rprs[key] = proto
        rpr = proto.__copy__()  # lxml: a deep copy
        parent.append(rpr)
        return rpr

    def run(self, p: Any, text: str, role: str, size: float | None = None, *,
            bold: bool = False, underline: bool = False) -> Any:
        r = _SubElement(p, W_R)
        rpr = self.rpr(r, role, size, bold)
        if underline:
            _el("u", rpr, val="single")
        self.text(r, text)
        return r

    @staticmethod
    def text(r: Any, text: str) -> None:
        """Append ``text`` to the run ``r``: ``w:t`` pieces, line breaks, tabs."""
        text = clean_text(text)
        if "\n" not in text and "\t" not in text and "\r" not in text:
            if text:
                _SubElement(r, W_T, PRESERVE).text = text
            return
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        for i, line in enumerate(text.split("\n")):
            if i:
                _el("br", r)
            for j, piece in enumerate(line.split("\t")):
                if j:
                    _el("tab", r)
                if piece:
                    _SubElement(r, W_T, PRESERVE).text = piece

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
        """The footer (with page numbers or blank) as (type, rId) pairs: one part of each
        kind per packet, referenced by every Word section that shows it."""
        found = self._footers.get(numbered)
        if found is None:
            found = self._footers[numbered] = self.new_footer(numbered)
        return found

    def new_footer(self, numbered: bool) -> list[tuple[str, str]]:
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
                docxtables.cover_form(self, b)
            else:
                docxtables.key_value(self, b)
        elif isinstance(b, Table):
            docxtables.table(self, b)
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
            docxpictures.qrcode(self, b)
        elif isinstance(b, Evidence):
            docxpictures.evidence_block(self, b)
        elif isinstance(b, Contents):
            docxtables.contents(self, b)
        elif isinstance(b, ExternalPages):
            docxpictures.external_pages(self, b)
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
            docxtables.fingerprint_box(self, start)
        p = self.para(style="ABPlain", align="right")
        ppr = p.find(w("pPr"))
        ppr_set(ppr, "spacing", before=120)
        if not b.date:
            ppr_set(ppr, "ind", right=round(self.size("body") * 40))
        self.run(p, b.date or EMPTY_MARK, "body")

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


#: font set → (run properties, rows and cells) prototypes of :class:`_Writer`
_PROTOTYPES: dict[tuple[tuple[str, str], ...], tuple[dict[tuple[Any, ...], Any], dict[tuple[Any, ...], Any]]] = {}


def _prototypes(fonts: Mapping[str, str]) -> tuple[dict[tuple[Any, ...], Any], dict[tuple[Any, ...], Any]]:
    key = tuple(sorted(fonts.items()))
    found = _PROTOTYPES.get(key)
    if found is None:
        if len(_PROTOTYPES) >= 8:
            _PROTOTYPES.clear()
        found = _PROTOTYPES[key] = ({}, {})
    return found


def _leading_int(text: str) -> int | None:
    m = re.match(r"\s*(\d+)", text or "")
    return int(m.group(1)) if m else None


def _bookmark_name(index: int, key: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_]", "_", key)
    return f"{BOOKMARK_PREFIX}{index:03d}_{safe}"[:40]


