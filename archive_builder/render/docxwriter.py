"""The body of a Word packet: one method per block kind of the document model, mirroring
``render/pdf.py`` (tables, key-value grids, cover forms, signatures, QR codes, evidence
pictures), and the Word sections with their footers and bookmarks."""

from __future__ import annotations

import copy
import io
import re
from collections.abc import Iterable, Mapping
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
from .docxpackage import pdf_page_png, qr_png
from .wordml import (
    BOOKMARK_PREFIX,
    CAPTION_SIZE,
    CELL_MARGIN,
    CONTENTS_SIZE,
    EMPTY_MARK,
    EMU_PER_MM,
    EVIDENCE_CAPTION_MM,
    LABEL_SHADE,
    PAGE_NUMBER_SIZE,
    PDF_PAGE_DPI,
    PLACEHOLDER_TEXT,
    PRESERVE,
    R_NS,
    RT_FOOTER,
    SECTPR_ORDER,
    SEPARATOR_BOOKMARK_PREFIX,
    TABLE_SMALLEST,
    TBLPR_ORDER,
    TWIPS_PER_MM,
    W_R,
    W_T,
    XML_NS,
    _el,
    _em_width,
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
        """Append a table cell: a copy of the cell built once per font set for these
        properties, with ``text`` in its run."""
        own = None if role == "table" and size is None else (size or self.size("table"))
        key = (width, span, shade, align, role, own, tuple(borders.items()) if borders else (), bool(text))
        proto = self._cells.get(key)
        if proto is None:
            proto = self._cell_proto(width, span, shade, align, borders)
            if text:
                self.rpr(_el("r", proto[-1]), role, own)
            if len(self._cells) >= MAX_PROTOTYPES:
                self._cells.clear()
            self._cells[key] = proto
        tc = proto.__copy__()
        tr.append(tc)
        if text:
            self.text(tc[-1][-1], text)
        return tc

    @staticmethod
    def _cell_proto(width: int, span: int, shade: bool, align: str,
                    borders: Mapping[str, str] | None) -> Any:
        tc = _el("tc")
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
        return tc

    def row(self, tbl: Any, *, header: bool = False, height: int | None = None) -> Any:
        key = ("row", header, height)
        proto = self._cells.get(key)
        if proto is None:
            proto = _el("tr")
            trpr = _el("trPr", proto)
            _el("cantSplit", trpr)
            if height:
                _el("trHeight", trpr, val=height, hRule="atLeast")
            if header:
                _el("tblHeader", trpr)
            self._cells[key] = proto
        tr = proto.__copy__()
        tbl.append(tr)
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

        def measure(text: str, bold: bool) -> float:
            return _em_width(text) * size * 20 * (1.05 if bold else 1.0)

        # as in the PDF: widths from the content (no ID number, date or label split over two
        # lines), the template's as preferences; measured by character class, as Word's
        # fonts are not this process's. Word breaks CJK text anywhere, so a long label that
        # cannot have its whole width breaks at its natural point instead (cell_text)
        padding = 2 * CELL_MARGIN + size * 20 * 0.25
        exact, scale = column_widths(
            float(self.text_width_twips), b.header, b.rows, b.widths, measure, padding,
            smallest=TABLE_SMALLEST, footer=b.footer, words_of=natural_words,
        )
        widths = [round(w) for w in exact]
        widths[-1] += self.text_width_twips - sum(widths)
        cell_size = size * scale if scale < 1 else None

        def cell_text(text: str, i: int, bold: bool) -> str:
            if "\n" in text or widths[i] >= measure(text, bold) * scale + padding:
                return text
            return "\n".join(natural_pieces(text))

        if b.caption:
            p = self.para(style="ABPlain", align="center", keep_next=True)
            self.run(p, b.caption, "heading", self.size("table") * 1.25)
        tbl = self.new_table(widths)
        aligns = [("left" if a == "justify" else a) for a in b.align] + ["left"] * ncols
        if b.header:
            tr = self.row(tbl, header=True)
            for i in range(ncols):
                text = b.header[i] if i < len(b.header) else ""
                self.cell(tr, cell_text(text, i, True), widths[i], align="center", role="heading",
                          size=cell_size or size)
        for rows, role in ((b.rows, "table"), (b.footer, "heading")):
            for values in rows:
                tr = self.row(tbl)
                for i in range(ncols):
                    text = values[i] if i < len(values) else ""
                    self.cell(tr, cell_text(text, i, role != "table"), widths[i], align=aligns[i], role=role,
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
        from docx.oxml.shape import CT_Inline

        # python-docx's new_pic_inline without its next_id, a search of the whole body
        part = self.package_doc.part
        rid, image = part.get_or_add_image(stream)
        width, height = image.scaled_dimensions(cx, cy)
        inline = CT_Inline.new_pic_inline(self.next_object_id, rid, image.filename, width, height)
        self.next_object_id += 1
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


#: a label of at least this many characters may break after :data:`BREAK_AFTER`
NATURAL_BREAK_CHARS = 5
#: the natural break points of a long vocabulary label: 弱劳动力或|半劳动力, 文盲或|半文盲
BREAK_AFTER = "或"
_NATURAL = re.compile(f"(?<=[{BREAK_AFTER}])(?=.)")


def natural_pieces(word: str) -> list[str]:
    """``word`` cut at its natural break points (after 或 in a long label), else whole."""
    if len(word) < NATURAL_BREAK_CHARS or not any(ch in word for ch in BREAK_AFTER) or not _cjk(word):
        return [word]
    return _NATURAL.split(word)


def _cjk(word: str) -> bool:
    return all("\u3400" <= ch <= "\u9fff" for ch in word)


def natural_words(text: str, *, prose: bool = False) -> list[str]:
    """:func:`~archive_builder.render.columns.unbreakable_words` with long labels cut at
    their natural break points: what a Word table's column must hold on one line."""
    from .columns import unbreakable_words

    return [piece for word in unbreakable_words(text, prose=prose) for piece in natural_pieces(word)]


#: font set → (run properties, rows and cells) prototypes of :class:`_Writer`
_PROTOTYPES: dict[tuple[tuple[str, str], ...], tuple[dict[tuple[Any, ...], Any], dict[tuple[Any, ...], Any]]] = {}
#: cells kept per font set (their widths vary with the tables' content)
MAX_PROTOTYPES = 4096


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


