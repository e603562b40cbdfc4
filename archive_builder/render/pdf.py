"""The PDF writer: a ``Document`` → one PDF, drawn with reportlab's low-level canvas.

Why not platypus: we need speed (≤ 3 ms per text page), CJK line-breaking rules
(``linebreak.py``) and per-character font fallback (``fonts.py``).

Two passes.  Pass 1 lays out every block into ``_Page`` objects holding simple draw items
(tuples); it needs no page numbers, because the only thing that depends on them, the contents
block, has a fixed row height, so its size is known from the number of entries.  Then
printed page numbers are assigned (cover and separator sheets are unnumbered) and pass 2
emits the items into the canvas.  Text is written as raw PDF operators, one ``BT … ET`` per
page, switching fonts (and 256-glyph subsets) inside it: this is what reportlab's text object
does, minus its per-call overhead, and keeps pypdf's text extraction free of spurious breaks
between font runs.

Pages of evidence PDFs are merged in afterwards with pypdf; that path is skipped entirely
when a document has none.

Why one module of this size: the layout engine and the painter of the document model share
the page model and the font runs; each block kind has its layout and painting side by side.
"""

from __future__ import annotations

import hashlib
import io
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date as _date
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.pdfdoc import PDFImageXObject
from reportlab.pdfgen.canvas import Canvas

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
    RenderResult,
    Section,
    SectionPages,
    Signature,
    Spacer,
    Table,
    Title,
)
from . import rlformat
from .columns import column_widths
from .fontprogram import _DOC_FONTS
from .linebreak import _SPACE as _SPACES
from .linebreak import break_lines_widths

if TYPE_CHECKING:  # pragma: no cover
    from .evidence import EvidenceCache
    from .fonts import FontSet

__all__ = ["CREATOR", "write_pdf"]


CREATOR = "archive-builder"
MM = 72.0 / 25.4

#: entries a number memo holds before it is emptied
_MAX_MEMO = 200_000


def _memoised_format(spec: str) -> Callable[[float], str]:
    """``format(x, spec)``, remembered per value: a packet formats ~1,500 coordinates, 98 % of
    them values met before (a template's grid repeats), and a dictionary lookup costs a
    quarter of formatting one. Zero is formatted each time: 0.0 and -0.0 are one key but
    print differently."""
    memo: dict[float, str] = {}

    def formatted(x: float) -> str:
        if not x:
            return format(x, spec)
        text = memo.get(x)
        if text is None:
            if len(memo) >= _MAX_MEMO:
                memo.clear()
            text = memo[x] = format(x, spec)
        return text

    return formatted


#: A coordinate for the content stream (0.01 pt is far below printer resolution). reportlab's
#: ``fp_str`` is pure Python when its C accelerator is absent and took a third of the render.
_n = _memoised_format(".2f")
#: A spacing value (Tc / TJ) that is multiplied along a line: more digits.
_f = _memoised_format(".4f")


_CJK_CLASS = "\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\ufe30-\ufe4f\uff00-\uffef\U00020000-\U0003ffff"
#: justification segments: a single CJK character, or a run of other characters (which does
#: not stretch inside); a gap between two segments takes an equal share of the extra space
_SEGMENT = re.compile(f"[{_CJK_CLASS}]|[^{_CJK_CLASS}]+")

# --- geometry and style constants ------------------------------------------------------------
RULE = 0.5  # pt, table rules
SHADE = 0.88  # grey level of label cells
CELL_PAD_X = 3.0
CELL_PAD_Y = 3.5
CELL_LEADING = 1.3  # line height / size inside cells
FORM_LEADING = 1.6  # line height / size for running text on form pages
PAGE_NUMBER_SIZE = 14.0  # 4号
PAGE_NUMBER_GAP = 7 * MM  # below the text block (GB/T 9704 7.5)
CONTENTS_SIZE = 12.0
CONTENTS_ROW = 24.0
CAPTION_SIZE = 10.5
BASELINE = 0.36  # baseline sits this many ems below the vertical centre of a line box
EMPTY_MARK = "年　月　日"
PLACEHOLDER_TEXT = "材料缺失/无法读取：{path}"


@dataclass
class _Page:
    layout: str  # "cover" | "separator" | "form" | "prose" | "evidence"
    numbered: bool
    section: int | None
    items: list[tuple] = field(default_factory=list)
    number: int = 0  # printed number (0 = none)


@dataclass
class _Cell:
    x: float
    w: float
    lines: list[str]
    role: str
    size: float
    align: str = "left"
    shade: bool = False
    ref: int | None = None  # contents page-number cell: index of the section


@dataclass
class _Row:
    cells: list[_Cell]
    height: float
    leading: float


class _Fonts:
    """Per-render font helpers: width tables at 1 pt, runs, missing-glyph warnings."""

    def __init__(self, fonts: FontSet) -> None:
        self.fonts = fonts
        cache = _shared_cache(fonts)
        self.widths: dict[str, dict[str, float]] = cache.setdefault("widths", {})
        #: role -> characters no configured font can print (shared, like the width tables)
        self.missing: dict[str, set[str]] = cache.setdefault("missing", {})
        #: role -> characters drawn in this render
        self.used: dict[str, set[str]] = {}
        self.runs = fonts.runs
        self._measurers: dict[str, Callable[[str], float]] = {}

    def table(self, role: str) -> dict[str, float]:
        t = self.widths.get(role)
        if t is None:
            t = self.widths[role] = {}
        return t

    def measurer(self, role: str) -> Callable[[str], float]:
        """Width at 1 pt of a character not yet in the role's table (checks it is printable)."""
        m = self._measurers.get(role)
        if m is None:
            fonts = self.fonts

            miss = self.missing.setdefault(role, set())

            def m(ch: str) -> float:
                if fonts.missing_chars(ch, role):
                    miss.add(ch)
                return float(fonts.string_width(ch, role, 1.0))

            self._measurers[role] = m
        return m

    def warnings(self) -> list[str]:
        """One Chinese warning per character drawn in this render that no font can print."""
        bad: set[str] = set()
        for role, chars in self.used.items():
            bad |= chars & self.missing.get(role, set())
        return [
            f"字符“{ch}”（U+{ord(ch):04X}）在所有已配置字体中都没有字形，打印出来会是空白或方框；"
            "请在字体配置中增加含该字的字体（如花园明朝 HanaMinB）。"
            for ch in sorted(bad)
        ]

    def width(self, text: str, role: str, size: float) -> float:
        t = self.table(role)
        try:
            return sum(map(t.__getitem__, text)) * size
        except KeyError:
            m = self.measurer(role)
            for ch in text:
                if ch not in t:
                    t[ch] = m(ch)
            return sum(map(t.__getitem__, text)) * size

    def break_lines(self, text: str, role: str, size: float, max_width: float,
                    first_indent: float = 0.0) -> list[str]:
        if size <= 0:
            return [text]
        # A text on one line that fits (most table cells) is its own only line: what the
        # breaker returns for it, without splitting it into units (a margin keeps a width
        # within rounding of the limit on the breaker's path).
        if text and "\n" not in text and "\r" not in text and text[0] not in _SPACES \
                and text[-1] not in _SPACES and self.width(text, role, size) <= max_width - first_indent - 1e-3:
            return [text]
        # widths are tabulated at 1 pt: scale the limits instead of every width
        return break_lines_widths(text, self.table(role), max_width / size,
                                  first_indent / size, self.measurer(role))


def _shared_cache(fonts: Any) -> dict:
    """Width and fallback tables live as long as the FontSet (they depend only on it)."""
    try:
        return fonts.__dict__.setdefault("_pdf_writer_cache", {})
    except AttributeError:  # slotted object: per-render tables
        return {}


class _Layout:
    """Pass 1: blocks → pages of draw items."""

    def __init__(self, doc: Document, fonts: _Fonts, evidence: EvidenceCache | None, qr: bool):
        self.doc = doc
        self.f = fonts
        self.evidence = evidence
        self.qr = qr
        p: PageSetup = doc.page
        self.p = p
        self.pw = p.width_mm * MM
        self.ph = p.height_mm * MM
        self.left = p.margin_left_mm * MM
        self.tw = p.text_width_mm * MM
        self.right = self.left + self.tw
        self.top = self.ph - p.margin_top_mm * MM
        self.th = p.text_height_mm * MM
        self.bottom = self.top - self.th
        self.sizes = dict(p.sizes)
        self.pages: list[_Page] = []
        self.separators: list[int] = []
        self.sections: list[tuple[int, int]] = []  # (first, last) page index per section
        self.warnings: list[str] = []
        self.merges: list[tuple[int, Any, tuple[float, float, float, float]]] = []
        #: (page index, source PDF, source page): whole pages placed as they are
        self.externals: list[tuple[int, str, int]] = []
        self.page: _Page | None = None
        self.y = self.top
        self.layout = "form"
        self.sec_index: int | None = None
        # prose grid: character size so that prose_chars fill the width, fixed line pitch
        em = fonts.width("一", "body", 1.0) or 1.0
        self.prose_size = self.tw / (p.prose_chars * em)
        self.pitch = self.th / p.prose_lines

    # --- pages ------------------------------------------------------------------------------
    def size(self, role: str) -> float:
        if self.layout == "prose" and role in ("body", "kai", "heading"):
            return self.prose_size
        return float(self.sizes.get(role, 16.0))

    def new_page(self, layout: str | None = None, numbered: bool | None = None) -> _Page:
        lay = layout or self.layout
        if numbered is None:
            numbered = lay not in ("cover", "separator")
        self.page = _Page(lay, numbered, self.sec_index)
        self.pages.append(self.page)
        self.y = self.top
        return self.page

    def fresh(self) -> bool:
        return self.page is not None and not self.page.items and self.y >= self.top - 1e-6

    def ensure(self, height: float) -> None:
        """Start a new page unless ``height`` fits below the cursor (or the page is empty)."""
        if self.y - height < self.bottom - 1e-6 and not self.fresh():
            self.new_page()

    def snap(self) -> None:
        """On prose pages, move the cursor down to the next line of the grid.

        A full page is left as it is: the next block starts a page when it needs one (a new
        page here was left empty when the block was the section's last, e.g. the signature
        of 户说明 ending on the last grid line).
        """
        if self.layout != "prose":
            return
        used = (self.top - self.y) / self.pitch
        n = math.ceil(used - 1e-6)
        self.y = self.top - n * self.pitch

    def line_height(self, size: float) -> float:
        if self.layout == "prose":
            return self.pitch * max(1, math.ceil(size * 1.2 / self.pitch - 1e-6))
        return size * FORM_LEADING

    # --- text helpers -------------------------------------------------------------------------
    def text(self, x: float, y: float, role: str, size: float, s: str, extra: float = 0.0) -> None:
        assert self.page is not None
        self.page.items.append(("t", x, y, role, size, s, extra))

    def aligned(self, line: str, x: float, w: float, y: float, role: str, size: float,
                align: str, justify_ok: bool) -> None:
        lw = self.f.width(line, role, size)
        if align == "center":
            self.text(x + (w - lw) / 2, y, role, size, line)
        elif align == "right":
            self.text(x + w - lw, y, role, size, line)
        elif align == "justify" and justify_ok and w - lw > 0.01:
            self.text(x, y, role, size, line, w - lw)
        else:
            self.text(x, y, role, size, line)

    def flow_lines(self, text: str, role: str, size: float, align: str, indent_chars: float = 0.0,
                   x: float | None = None, w: float | None = None, leading: float | None = None
                   ) -> None:
        """Wrap ``text`` and place its lines, breaking pages between lines."""
        x = self.left if x is None else x
        w = self.tw if w is None else w
        lh = leading or self.line_height(size)
        indent = indent_chars * size
        new_para = True
        for raw in text.replace("\r\n", "\n").split("\n"):
            if not raw.strip():
                # blank line: paragraph spacing (a whole grid line on prose pages)
                self.y -= lh if self.layout == "prose" else lh * 0.5
                new_para = True
                continue
            first = indent if new_para else 0.0
            lines = self.f.break_lines(raw, role, size, w, first)
            last = len(lines) - 1
            for i, line in enumerate(lines):
                if self.y - lh < self.bottom - 1e-6:
                    self.new_page()
                ind = first if i == 0 else 0.0
                base = self.y - lh / 2 - BASELINE * size
                self.aligned(line, x + ind, w - ind, base, role, size, align, i != last)
                self.y -= lh
            new_para = False

    # --- sections -----------------------------------------------------------------------------
    def run(self) -> None:
        for si, sec in enumerate(self.doc.sections):
            self.sec_index = None
            if sec.separator:
                self.separator(sec.separator)
            self.sec_index = si
            self.layout = sec.layout
            first = len(self.pages)
            self.new_page()
            for k, block in enumerate(sec.blocks):
                following = sec.blocks[k + 1] if k + 1 < len(sec.blocks) else None
                if isinstance(block, Heading) and isinstance(following, Table):
                    # a heading never ends a page without the start of its table
                    self.heading(block, keep=self.table_start_height(following))
                else:
                    self.block(block, sec)
            self.sections.append((first, len(self.pages) - 1))

    def separator(self, title: str) -> None:
        pg = self.new_page("separator", numbered=False)
        self.separators.append(len(self.pages) - 1)
        size = self.sizes.get("title", 22.0) * 2
        lines = self.f.break_lines(title, "title", size, self.tw)
        lh = size * 1.5
        y0 = self.top - self.th * 0.4 + lh * len(lines) / 2
        for i, line in enumerate(lines):
            lw = self.f.width(line, "title", size)
            pg.items.append(("t", self.left + (self.tw - lw) / 2, y0 - i * lh - lh / 2 - BASELINE * size,
                             "title", size, line, 0.0))

    def block(self, b: Block, sec: Section) -> None:
        if isinstance(b, Paragraph):
            self.paragraph(b)
        elif isinstance(b, Title):
            self.title(b)
        elif isinstance(b, Heading):
            self.heading(b)
        elif isinstance(b, KeyValue):
            self.cover_form(b) if self.layout == "cover" else self.keyvalue(b)
        elif isinstance(b, Table):
            self.table(b)
        elif isinstance(b, Signature):
            self.signature(b)
        elif isinstance(b, Spacer):
            # never below the text block; the next block starts a page when it needs one
            self.y = max(self.y - b.height_mm * MM, self.bottom)
            self.snap()
        elif isinstance(b, PageBreak):
            if not self.fresh():
                self.new_page()
        elif isinstance(b, QRCode):
            self.qrcode(b)
        elif isinstance(b, Evidence):
            self.evidence_block(b)
        elif isinstance(b, Contents):
            self.contents(b)
        elif isinstance(b, ExternalPages):
            self.external_pages(b)
        else:  # pragma: no cover - the document model is closed
            raise TypeError(f"未知的内容块类型：{type(b).__name__}")

    # --- blocks -------------------------------------------------------------------------------
    def title(self, b: Title) -> None:
        size = self.sizes.get("title", 22.0)
        if self.layout == "cover":
            size *= 1.6
            if self.fresh():
                self.y = self.top - self.th * 0.12
        lh = size * 1.4 if self.layout != "prose" else self.line_height(size)
        self.ensure(lh)
        self.flow_lines(b.text, "title", size, "center", leading=lh)
        if b.subtitle:
            ss = self.size("kai")
            self.flow_lines(b.subtitle, "kai", ss, "center", leading=self.line_height(ss))
        # one empty line under the title (GB/T 9704: 标题下空一行)
        self.y -= self.pitch if self.layout == "prose" else self.size("body") * 0.8
        if self.layout == "cover":
            self.y -= self.th * 0.05
        self.snap()

    def heading(self, b: Heading, keep: float = 0.0) -> None:
        """``keep``: the height of what must follow on the same page (default one more line)."""
        role = "heading" if b.level <= 1 else "kai"
        size = self.size(role)
        lh = self.line_height(size)
        if self.layout != "prose" and not self.fresh():
            self.y -= size * 0.4
        # keep with next: the heading and at least one more line (or the start of its table)
        lines = len(self.f.break_lines(b.text, role, size, self.tw)) or 1
        self.ensure(min(lh * lines + max(keep, lh), self.th))
        indent = 2.0 if self.layout == "prose" else 0.0
        self.flow_lines(b.text, role, size, "left", indent_chars=indent, leading=lh)
        self.snap()

    def paragraph(self, b: Paragraph) -> None:
        role = b.role
        size = b.size or self.size(role)
        align = b.align
        if self.layout == "cover" and align == "justify":
            align = "center"
        self.flow_lines(b.text, role, size, align, indent_chars=2.0 if b.indent else 0.0)
        self.snap()

    # --- ruled grids --------------------------------------------------------------------------
    def cell(self, x: float, w: float, text: str, role: str, size: float, align: str = "left",
             shade: bool = False) -> _Cell:
        lines: list[str] = []
        inner = max(w - 2 * CELL_PAD_X, size)
        for raw in text.replace("\r\n", "\n").split("\n"):
            lines.extend(self.f.break_lines(raw, role, size, inner) if raw else [""])
        return _Cell(x, w, lines, role, size, align, shade)

    def make_row(self, cells: list[_Cell], min_lines: int = 1) -> _Row:
        size = max(c.size for c in cells)
        lead = size * CELL_LEADING
        n = max([min_lines] + [len(c.lines) for c in cells])
        return _Row(cells, n * lead + 2 * CELL_PAD_Y, lead)

    def place_row(self, row: _Row) -> None:
        assert self.page is not None
        items = self.page.items
        top = self.y
        for c in row.cells:
            items.append(("rect", c.x, top - row.height, c.w, row.height, c.shade))
            n = len(c.lines)
            # vertically centred block of lines
            y0 = top - (row.height - n * row.leading) / 2
            for i, line in enumerate(c.lines):
                if not line and c.ref is None:
                    continue
                base = y0 - i * row.leading - row.leading / 2 - BASELINE * c.size
                if c.ref is not None:
                    items.append(("ref", c.x + CELL_PAD_X, c.w - 2 * CELL_PAD_X, base, c.role,
                                  c.size, c.ref, c.align))
                else:
                    self.aligned(line, c.x + CELL_PAD_X, c.w - 2 * CELL_PAD_X, base, c.role,
                                 c.size, c.align, False)
        self.y -= row.height

    def flow_rows(self, rows: list[_Row], header: list[_Row] | None = None) -> None:
        """Place rows, never splitting one unless it is taller than a whole page."""
        header = header or []
        hh = sum(r.height for r in header)

        def start_page() -> None:
            self.new_page()
            for h in header:
                self.place_row(h)

        first_needed = hh + (rows[0].height if rows else 0)
        if self.y - min(first_needed, self.th) < self.bottom - 1e-6 and not self.fresh():
            self.new_page()
        for h in header:
            self.place_row(h)
        for row in rows:
            if self.y - row.height >= self.bottom - 1e-6:
                self.place_row(row)
                continue
            if row.height <= self.th - hh:
                start_page()
                self.place_row(row)
                continue
            # last resort: a row taller than a page is split by lines
            remaining = row
            while True:
                avail = self.y - self.bottom - 2 * CELL_PAD_Y
                k = int(avail // remaining.leading + 1e-6)
                n = max(len(c.lines) for c in remaining.cells)
                if n <= k:
                    self.place_row(remaining)
                    break
                if k < 1:
                    start_page()
                    continue
                head = [_Cell(c.x, c.w, c.lines[:k], c.role, c.size, c.align, c.shade, c.ref)
                        for c in remaining.cells]
                tail = [_Cell(c.x, c.w, c.lines[k:], c.role, c.size, c.align, c.shade, c.ref)
                        for c in remaining.cells]
                self.place_row(_Row(head, k * remaining.leading + 2 * CELL_PAD_Y, remaining.leading))
                remaining = _Row(tail, n - k and (n - k) * remaining.leading + 2 * CELL_PAD_Y,
                                 remaining.leading)
                start_page()
        self.y -= self.size("body") * 0.6
        self.snap()

    def keyvalue(self, b: KeyValue) -> None:
        role = "table"
        size = self.size(role)
        cols = max(1, b.columns)
        pair_w = self.tw / cols
        label_w = pair_w * (0.36 if cols > 1 else 0.25)
        rows: list[_Row] = []
        pending: list[tuple[str, str]] = []

        def flush() -> None:
            if not pending:
                return
            cells: list[_Cell] = []
            x = self.left
            for i, (k, v) in enumerate(pending):
                last = i == len(pending) - 1
                vw = (self.right - x - label_w) if last else pair_w - label_w
                cells.append(self.cell(x, label_w, k, role, size, "center", True))
                cells.append(self.cell(x + label_w, vw, v, role, size, "left"))
                x += pair_w
            rows.append(self.make_row(cells, 1))
            pending.clear()

        wide = set(b.wide)
        for k, v in b.rows:
            if k in wide:
                flush()
                pending.append((k, v))
                flush()
                continue
            pending.append((k, v))
            if len(pending) == cols:
                flush()
        flush()
        self.flow_rows(rows)

    def table_start_height(self, b: Table) -> float:
        """The height a table needs on the page it starts: caption, header row, first row."""
        caption, header, body = self.table_rows(b)
        return caption + sum(r.height for r in header) + (body[0].height if body else 0.0)

    def table(self, b: Table) -> None:
        _, header, body = self.table_rows(b)
        if b.caption:
            size = self.size("table")
            cs = size * 1.25
            self.ensure(cs * 1.6 + size * 4)
            self.flow_lines(b.caption, "heading", cs, "center", leading=cs * 1.6)
        self.flow_rows(body, header)

    def table_rows(self, b: Table) -> tuple[float, list[_Row], list[_Row]]:
        """Return the table's caption height, header rows and body rows (nothing placed);
        laid out once when a heading asked for the table's start first."""
        last = getattr(self, "_last_table", None)
        if last is not None and last[0] is b:
            return last[1]  # type: ignore[no-any-return]
        result = self._table_rows(b)
        self._last_table = (b, result)
        return result

    def _table_rows(self, b: Table) -> tuple[float, list[_Row], list[_Row]]:
        role = "table"
        size = self.size(role)
        n = len(b.header) or max((len(r) for r in b.rows), default=1)
        # widths from the content; the template's are preferences (render/columns.py)
        widths, scale = column_widths(
            self.tw, b.header, b.rows, b.widths,
            lambda text, bold: self.f.width(text, "heading" if bold else role, size),
            2 * CELL_PAD_X + 0.5, footer=b.footer,
        )
        size *= scale
        xs = [self.left]
        for w in widths:
            xs.append(xs[-1] + w)
        xs[-1] = self.left + self.tw
        aligns = list(b.align) + ["left"] * (n - len(b.align))

        def row(values: tuple[str, ...], r_role: str, header: bool = False) -> _Row:
            cells = []
            for i in range(n):
                v = values[i] if i < len(values) else ""
                al = "center" if header else aligns[i]
                if al == "justify":
                    al = "left"
                cells.append(self.cell(xs[i], xs[i + 1] - xs[i], v, r_role, size, al, header))
            return self.make_row(cells)

        caption = 0.0
        if b.caption:
            cs = self.size("table") * 1.25
            caption = len(self.f.break_lines(b.caption, "heading", cs, self.tw)) * cs * 1.6
        header = [row(b.header, "heading", True)] if b.header else []
        body = [row(r, role) for r in b.rows] + [row(r, "heading") for r in b.footer]
        return caption, header, body

    def contents(self, b: Contents) -> None:
        entries = [i for i, s in enumerate(self.doc.sections) if s.in_contents]
        size = CONTENTS_SIZE
        fr = (0.12, 0.70, 0.18)
        xs = [self.left, self.left + self.tw * fr[0], self.left + self.tw * (fr[0] + fr[1]), self.right]

        def fixed(cells: list[_Cell]) -> _Row:
            return _Row(cells, CONTENTS_ROW, CONTENTS_ROW - 2 * CELL_PAD_Y)

        header = fixed([_Cell(xs[i], xs[i + 1] - xs[i], [b.header[i]], "heading", size, "center", True)
                        for i in range(3)])
        rows = []
        for n, si in enumerate(entries, 1):
            title = self.doc.sections[si].title
            w = xs[2] - xs[1] - 2 * CELL_PAD_X
            ts = size
            tw = self.f.width(title, "table", ts)
            if tw > w:  # one line per entry (fixed row height): shrink long titles
                ts = max(6.0, size * w / tw)
            cells = [
                _Cell(xs[0], xs[1] - xs[0], [str(n)], "table", size, "center"),
                _Cell(xs[1], xs[2] - xs[1], [title], "table", ts, "left"),
                _Cell(xs[2], xs[3] - xs[2], [""], "table", size, "center", ref=si),
            ]
            rows.append(fixed(cells))
        self.flow_rows(rows, [header])

    def signature(self, b: Signature) -> None:
        size = self.size("body")
        lh = self.line_height(size) if self.layout == "prose" else size * 2.4
        n = len(b.labels) + 1
        total = n * lh + (20 * MM if b.fingerprint and n * lh < 20 * MM else 0)
        self.y -= lh * 0.5 if self.layout != "prose" else self.pitch
        self.ensure(total)
        assert self.page is not None
        x0 = self.left + self.tw * 0.45
        top = self.y
        for label in b.labels:
            base = self.y - lh / 2 - BASELINE * size
            lw = self.f.width(label, "body", size)
            if lw > self.right - x0 - 20 * MM:  # long label: start further left
                x = max(self.left, self.right - 20 * MM - lw)
            else:
                x = x0
            self.text(x, base, "body", size, label)
            ux = x + lw + 2
            self.page.items.append(("line", ux, base - 2, max(ux + 20 * MM, self.right), base - 2, RULE))
            self.y -= lh
        date = b.date or EMPTY_MARK
        base = self.y - lh / 2 - BASELINE * size
        dw = self.f.width(date, "body", size)
        self.text(self.right - dw - (size * 2 if not b.date else 0), base, "body", size, date)
        self.y -= lh
        if b.fingerprint:
            box = 20 * MM
            bx = x0 - box - 6 * MM
            by = top - box - (lh - size) / 2
            self.page.items.append(("dash", bx, by, box, box))
            ls = CAPTION_SIZE
            lab = "按手印"
            self.text(bx + (box - self.f.width(lab, "body", ls)) / 2, by + box / 2 - BASELINE * ls,
                      "body", ls, lab)
            self.y = min(self.y, by - 2)
        self.snap()

    def qrcode(self, b: QRCode) -> None:
        if not self.qr:
            return
        s = b.size_mm * MM
        cap = CAPTION_SIZE
        cap_lines = self.f.break_lines(b.caption, "table", cap, max(s * 1.6, 40 * MM)) if b.caption else []
        h = s + len(cap_lines) * cap * 1.4 + 2
        assert self.page is not None
        if self.layout == "cover":
            # bottom-right corner of the text block
            x, y = self.right - s, self.bottom + len(cap_lines) * cap * 1.4 + 2
        else:
            self.ensure(h)
            assert self.page is not None
            x, y = self.right - s, self.y - s
            self.y -= h + 4
        self.page.items.append(("qr", b.text, x, y, s))
        cy = y - 2
        for line in cap_lines:
            lw = self.f.width(line, "table", cap)
            self.text(x + s / 2 - lw / 2 if lw < s * 1.6 else self.right - lw, cy - cap * 1.0, "table", cap, line)
            cy -= cap * 1.4

    def cover_form(self, b: KeyValue) -> None:
        """Cover pages: "label: value" lines, the value on an underline, block centred."""
        size = self.sizes.get("body", 16.0)
        # Rows share the space left above the QR code corner, never less than 1.5 lines each,
        # so a cover with many fields still fits on its one page.
        room = self.y - self.bottom - 40 * MM
        lh = max(size * 1.5, min(size * 2.2, room / max(len(b.rows), 1)))
        labels = [k for k, _ in b.rows]
        lw = max((self.f.width(k + "：", "body", size) for k in labels), default=0.0)
        form_w = min(self.tw, max(self.tw * 0.72, lw + 60 * MM))
        x0 = self.left + (self.tw - form_w) / 2
        vx = x0 + lw
        vw = form_w - lw
        assert self.page is not None
        for k, v in b.rows:
            vlines = self.f.break_lines(v, "body", size, vw - 4) or [""]
            self.ensure(lh * len(vlines))
            assert self.page is not None
            label = k + "："
            for i, line in enumerate(vlines):
                base = self.y - lh / 2 - BASELINE * size + size * 0.3
                if i == 0:
                    klw = self.f.width(label, "body", size)
                    self.text(vx - klw, base, "body", size, label)
                if line:
                    self.aligned(line, vx, vw, base, "body", size, "center", False)
                self.page.items.append(("line", vx, base - 4, vx + vw, base - 4, RULE))
                self.y -= lh

    # --- external pages (Word forms converted to PDF) -------------------------------------------
    def external_pages(self, b: ExternalPages) -> None:
        for k in range(b.pages):
            if not self.fresh():
                self.new_page()
            assert self.page is not None
            self.page.numbered = b.numbered
            self.externals.append((len(self.pages) - 1, b.source, k))
            self.y = self.bottom

    # --- evidence -----------------------------------------------------------------------------
    def evidence_block(self, b: Evidence) -> None:
        from .evidence import ImageAsset, PdfPageAsset, Placeholder, raster_warning

        if self.evidence is None:
            assets: list[Any] = [Placeholder(Path(b.source), b.display_path, "未配置佐证材料缓存")]
        else:
            assets = self.evidence.assets(Path(b.source), display_path=b.display_path)
        parts = [p for p in (b.title, b.kind, b.date, b.display_path) if p]
        caption = " · ".join(parts)
        rasterised: dict[str, list[Any]] = {}  # note -> the pages placed as images for it
        for k, asset in enumerate(assets):
            if not self.fresh():
                self.new_page()
            cap = caption + (f"（第 {k + 1} 页，共 {len(assets)} 页）" if len(assets) > 1 else "")
            cs = CAPTION_SIZE * 1.15
            self.flow_lines(cap, "kai", cs, "left", leading=cs * 1.5)
            self.y -= 3 * MM
            box = (self.left, self.bottom, self.tw, self.y - self.bottom)
            bx, by, bw, bh = box
            assert self.page is not None
            if isinstance(asset, ImageAsset):
                s = min(bw / asset.width_px, bh / asset.height_px)
                w, h = asset.width_px * s, asset.height_px * s
                self.page.items.append(("img", asset, bx + (bw - w) / 2, by + (bh - h) / 2, w, h))
                if asset.note:  # a PDF page rasterised (e.g. its fonts are not embedded)
                    rasterised.setdefault(asset.note, []).append(asset)
            elif isinstance(asset, PdfPageAsset):
                self.merges.append((len(self.pages) - 1, asset, box))
            else:
                self.placeholder(asset, box)
            self.y = self.bottom
        # one warning per file and reason, not one per page
        self.warnings.extend(raster_warning(b.display_path, *pages) for pages in rasterised.values())

    def placeholder(self, asset: Any, box: tuple[float, float, float, float]) -> None:
        bx, by, bw, bh = box
        h = min(bh, 80 * MM)
        top = by + bh
        assert self.page is not None
        self.page.items.append(("rect", bx, top - h, bw, h, False))
        self.y = top - 12 * MM
        size = self.sizes.get("body", 16.0)
        self.flow_lines(PLACEHOLDER_TEXT.format(path=asset.display_path), "heading", size, "center",
                        x=bx + 6 * MM, w=bw - 12 * MM, leading=size * 1.6)
        self.y -= 4 * MM
        small = CAPTION_SIZE * 1.15
        for t in (f"原因：{asset.reason}", getattr(asset, "hint", "")):
            if t:
                self.flow_lines(t, "body", small, "center", x=bx + 6 * MM, w=bw - 12 * MM,
                                leading=small * 1.6)
        self.warnings.append(
            f"佐证材料 {asset.display_path} 无法读取（{asset.reason}），已用占位页代替；"
            f"{getattr(asset, 'hint', '') or '请补充或替换该文件。'}"
        )


class _Painter:
    """Pass 2: draw items → canvas operators."""

    def __init__(self, canvas: Canvas, fonts: _Fonts, lay: _Layout):
        self.c = canvas
        self.doc = canvas._doc
        self.f = fonts
        self.lay = lay
        self.escape = canvas._escape
        self.sub_names: dict[tuple[str, int], str] = {}
        self.rl_fonts: dict[str, Any] = {}
        self.encoders: dict[str, tuple[set[str], dict[str, bytes]]] = {}  # see emit_text
        self.numbers: dict[int, str] = {}  # section index → "3" or "3–5"
        # renderPDF would otherwise select Helvetica (an unembedded font) for the drawing
        self.body_font = fonts.fonts.faces["body"].rl_name

    def emit_text(self, ops: list[str], state: list, x: float, y: float, role: str, size: float,
                  s: str, extra: float) -> None:
        """Append operators drawing one line; ``state`` = [current Tf string, current Tc]."""
        ops.append(f"1 0 0 1 {_n(x)} {_n(y)} Tm")
        gaps: list[int] | None = None  # char indexes preceded by a stretchable gap
        tc = 0.0
        if extra and len(s) > 1:
            pieces = _SEGMENT.findall(s)  # one CJK char, or a run of anything else
            ng = len(pieces) - 1
            if ng == len(s) - 1:
                tc = extra / ng
            elif ng:
                gaps = []
                at = 0
                for piece in pieces[:-1]:
                    at += len(piece)
                    gaps.append(at)
                adj = _f(-extra / ng * 1000.0 / size)
        if tc != state[1]:
            ops.append(f"{_f(tc)} Tc")
            state[1] = tc
        used = self.f.used.get(role)
        if used is None:
            used = self.f.used[role] = set()
        used.update(s)
        sz = _f(size)
        doc = self.doc
        pos = 0
        for name, run in self.f.runs(s, role):
            font = self.rl_fonts.get(name)
            if font is None:
                font = self.rl_fonts[name] = pdfmetrics.getFont(name)
                if hasattr(font, "_enc"):  # a GlobalCodeTTFont: codes without splitString
                    self.encoders[name] = (font._state(doc).used, font._enc)
            coder = self.encoders.get(name)
            if coder is not None:
                # what GlobalCodeTTFont.splitString does, without its per-call lookup of the
                # document's state (a WeakKeyDictionary): ~300 runs a packet
                coder[0].update(run)
                try:
                    chunks = [(0, b"".join(map(coder[1].__getitem__, run)))]
                except KeyError:  # a character not coded yet
                    chunks = font.splitString(run, doc)
            else:
                chunks = font.splitString(run, doc)
            if gaps is not None:
                bpc = max(1, sum(len(ch) for _, ch in chunks) // max(1, len(run)))
            for subset, chunk in chunks:
                key = (name, subset)
                iname = self.sub_names.get(key)
                if iname is None:
                    iname = self.sub_names[key] = font.getSubsetInternalName(subset, doc)
                tf = f"{iname} {sz} Tf"
                if tf != state[0]:
                    ops.append(tf)
                    state[0] = tf
                if gaps is None:
                    ops.append(f"<{chunk.hex()}> Tj")
                    continue
                parts = []
                start = 0
                n = len(chunk) // bpc
                for g in gaps:
                    i = g - pos
                    if i <= 0:
                        if i == 0 and pos:
                            parts.append(adj)
                        continue
                    if i >= n:
                        break
                    parts.append(f"<{chunk[start * bpc:i * bpc].hex()}>")
                    parts.append(adj)
                    start = i
                parts.append(f"<{chunk[start * bpc:].hex()}>")
                ops.append(f"[{' '.join(parts)}] TJ")
                pos += n

    def page_number_text(self, si: int) -> str:
        return self.numbers.get(si, "")

    def paint_page(self, page: _Page) -> None:
        c = self.c
        gfx: list[str] = []
        txt: list[str] = []
        later: list[tuple] = []
        state: list = [None, 0.0]
        for it in page.items:
            kind = it[0]
            if kind == "t":
                self.emit_text(txt, state, it[1], it[2], it[3], it[4], it[5], it[6])
            elif kind == "rect":
                _, x, y, w, h, shade = it
                r = f"{_n(x)} {_n(y)} {_n(w)} {_n(h)} re"
                gfx.append(f"{SHADE} g {r} B 0 g" if shade else f"{r} S")
            elif kind == "line":
                _, x1, y1, x2, y2, lw = it
                gfx.append(f"{_n(x1)} {_n(y1)} m {_n(x2)} {_n(y2)} l S")
            elif kind == "dash":
                _, x, y, w, h = it
                gfx.append(f"[3 2] 0 d {_n(x)} {_n(y)} {_n(w)} {_n(h)} re S [] 0 d")
            elif kind == "ref":
                _, x, w, y, role, size, si, align = it
                s = self.page_number_text(si)
                if s:
                    lw = self.f.width(s, role, size)
                    xx = x + (w - lw) / 2 if align == "center" else (x + w - lw if align == "right" else x)
                    self.emit_text(txt, state, xx, y, role, size, s, 0.0)
            else:
                later.append(it)
        if page.number:
            s = self.lay.p.page_number_format.format(n=page.number)
            size = PAGE_NUMBER_SIZE
            lw = self.f.width(s, "body", size)
            y = self.lay.bottom - PAGE_NUMBER_GAP - size * 0.8
            self.emit_text(txt, state, self.lay.left + (self.lay.tw - lw) / 2, y, "body", size, s, 0.0)
        code = c._code
        if gfx:
            code.append(f"q {RULE} w 0 G")
            code.extend(gfx)
            code.append("Q")
        if txt:
            code.append("BT")
            code.extend(txt)
            if state[1]:
                code.append("0 Tc")
            code.append("ET")
        for it in later:
            if it[0] == "img":
                _, asset, x, y, w, h = it
                self.draw_image(asset, x, y, w, h)
            elif it[0] == "qr":
                _, text, x, y, s = it
                self.draw_qr(text, x, y, s)

    def draw_image(self, asset: Any, x: float, y: float, w: float, h: float) -> None:
        """``Canvas.drawImage`` of an ``ImageAsset``, the XObject named after its bytes.

        reportlab names a file image after its full path, so the same evidence cached in
        another folder (another user, the build's cache vs the packet command's) gave
        different bytes; the name must depend on the content only.
        """
        c = self.c
        doc = self.doc
        data = asset.image_bytes()
        # sha256 (truncated to md5's 32 hex digits): 2.4x faster than md5 where the processor
        # has SHA instructions (~0.1 ms a print-size photo less)
        name = hashlib.sha256(data).hexdigest()[:32]
        reg = doc.getXObjectName(name)
        if doc.idToObject.get(reg) is None:
            if asset.kind == "jpg":
                obj = PDFImageXObject(name)
                if not obj.loadImageFromJPEG(io.BytesIO(data)):
                    raise ValueError(f"图片无法读取：{asset.source}")
            else:
                obj = PDFImageXObject(name, str(asset.path))
            obj.name = name
            c._setXObjects(obj)
            doc.Reference(obj, reg)
            doc.addForm(name, obj)
        c._currentPageHasImages = 1
        c._code.append(f"q 1 0 0 1 {_n(x)} {_n(y)} cm {_f(w)} 0 0 {_f(h)} 0 0 cm /{reg} Do Q")
        c._formsinuse.append(name)

    def draw_qr(self, text: str, x: float, y: float, s: float) -> None:
        """Draw the symbol as one filled path of row runs, inside an ``s``-point square."""
        from .qr import QUIET_ZONE, qr_runs

        size, runs = qr_runs(text)
        n = size + 2 * QUIET_ZONE
        m = s / n
        # Operators written directly (reportlab's path API formats every number with its
        # pure-Python fp_str, ~1,200 calls for one symbol), in module units: one matrix puts
        # module (col, row) at its place, rows counted downwards, so each run is four integers.
        ops = " ".join([f"{col} {row} {length} 1 re" for row, col, length in runs])
        origin_x, origin_y = x + QUIET_ZONE * m, y + s - QUIET_ZONE * m
        self.c._code.append(f"q 0 g {m:.4f} 0 0 {-m:.4f} {origin_x:.2f} {origin_y:.2f} cm {ops} f Q")


def _pdf_date(iso: str) -> Callable[..., str]:
    try:
        d = _date.fromisoformat(iso[:10])
    except ValueError:
        d = _date(2000, 1, 1)
    s = f"D:{d.year:04d}{d.month:02d}{d.day:02d}000000+08'00'"
    return lambda *args: s


def write_pdf(
    doc: Document,
    out: Path | BinaryIO,
    *,
    fonts: FontSet,
    evidence: EvidenceCache | None = None,
    qr: bool = True,
) -> RenderResult:
    """Render ``doc`` to ``out`` (a path or a binary file object) and say where things landed.

    ``fonts`` must be registered (``FontSet.register()``); ``evidence`` is needed only when
    the document has Evidence blocks (without it they become placeholder pages).  Output is
    reproducible: the same input gives byte-identical files.
    """
    f = _Fonts(fonts)
    lay = _Layout(doc, f, evidence, qr)
    lay.run()
    if not lay.pages:  # a PDF has at least one page; say so in the page count
        lay.new_page("form", numbered=False)

    # printed page numbers (cover and separators unnumbered)
    n = 0
    for pg in lay.pages:
        if pg.numbered:
            n += 1
            pg.number = n
    sections: list[SectionPages] = []
    painter_numbers: dict[int, str] = {}
    for si, (sec, (first, last)) in enumerate(zip(doc.sections, lay.sections)):
        a = lay.pages[first].number
        b = max((pg.number for pg in lay.pages[first:last + 1]), default=0)
        num = str(a) if a else ""
        if a and b > a:
            painter_numbers[si] = f"{a}–{b}"
        elif a:
            painter_numbers[si] = num
        sections.append(SectionPages(sec.key, sec.title, first, last, num))

    with rlformat.settings():  # reportlab as we write with it (see rlformat)
        buf = io.BytesIO()
        body_font = fonts.faces["body"].rl_name
        c = Canvas(
            buf,
            pagesize=(lay.pw, lay.ph),
            invariant=1,
            pageCompression=1,
            initialFontName=body_font,
            initialFontSize=12,
        )
        c.setDateFormatter(_pdf_date(doc.date))
        c.setTitle(doc.title)
        if doc.subject:
            c.setSubject(doc.subject)
        if doc.keywords:
            c.setKeywords(", ".join(doc.keywords))
        if doc.author:
            c.setAuthor(doc.author)
        c.setCreator(CREATOR)
        c.setFont(body_font, 12)  # never let the default Helvetica into the page resources

        painter = _Painter(c, f, lay)
        painter.numbers = painter_numbers
        first_of = {first: si for si, (first, _last) in enumerate(lay.sections)}
        for idx, pg in enumerate(lay.pages):
            starts = first_of.get(idx)
            if starts is not None:
                key = f"s{starts}"
                c.bookmarkPage(key, fit="XYZ", top=lay.ph)
                c.addOutlineEntry(doc.sections[starts].title, key, level=0)
            painter.paint_page(pg)
            c.showPage()
        if lay.pages:
            c.showOutline()
        c.save()
    data = buf.getvalue()
    # pypdf rewrites the file when it merges pages in: then collation reads its fonts itself
    ours = () if lay.merges or lay.externals else tuple(c._doc.__dict__.get(_DOC_FONTS, ()))

    if lay.merges:
        data = _merge_evidence(data, lay.merges)
    if lay.externals:
        data = _place_external(data, lay.externals)

    if isinstance(out, (str, Path)):
        Path(out).write_bytes(data)
    else:
        out.write(data)
    return RenderResult(
        pages=len(lay.pages),
        sections=tuple(sections),
        separators=tuple(lay.separators),
        warnings=tuple(lay.warnings + f.warnings()),
        fonts=ours,
        sha256=hashlib.sha256(data).hexdigest(),
    )


def _merge_evidence(data: bytes, merges: list[tuple[int, Any, tuple[float, float, float, float]]]) -> bytes:
    """Merge each evidence PDF page, scaled to fit its box (respecting /Rotate), into its page."""
    from pypdf import PdfReader, PdfWriter, Transformation

    from .evidence import open_evidence_pdf

    reader = PdfReader(io.BytesIO(data))
    writer = PdfWriter(clone_from=reader)
    sources: dict[Path, Any] = {}
    for page_index, asset, (bx, by, bw, bh) in merges:
        src = sources.get(asset.source)
        if src is None:
            src = sources[asset.source] = open_evidence_pdf(asset.source)
        spage = src.pages[asset.page]
        box = spage.cropbox
        x0, y0 = float(box.left), float(box.bottom)
        w, h = float(box.width), float(box.height)
        rot = (int(spage.get("/Rotate", 0) or 0)) % 360
        t = Transformation().translate(-x0, -y0)
        if rot:
            t = t.rotate(-rot)
        # where the page's corners went; move the result's lower-left corner to the origin
        corners = [t.apply_on((px, py)) for px, py in ((0, 0), (w, 0), (0, h), (w, h))]
        cx = min(p[0] for p in corners)
        cy = min(p[1] for p in corners)
        dw = max(p[0] for p in corners) - cx
        dh = max(p[1] for p in corners) - cy
        s = min(bw / dw, bh / dh) if dw and dh else 1.0
        t = t.translate(-cx, -cy).scale(s, s).translate(bx + (bw - dw * s) / 2, by + (bh - dh * s) / 2)
        writer.pages[page_index].merge_transformed_page(spage, t, over=True, expand=False)
    # reproducible output: keep the source's file identifier
    if "/ID" in reader.trailer:
        writer._ID = reader.trailer["/ID"]  # type: ignore[assignment]
    outbuf = io.BytesIO()
    writer.write(outbuf)
    return outbuf.getvalue()


def _place_external(data: bytes, externals: list[tuple[int, str, int]]) -> bytes:
    """Draw whole pages of external PDFs (converted Word forms) under the packet's pages.

    Each source page (after its /Rotate) is scaled to fit the packet page and centred; the
    packet page carries only its page number, drawn on top.
    """
    from pypdf import PdfReader, PdfWriter, Transformation

    reader = PdfReader(io.BytesIO(data))
    writer = PdfWriter(clone_from=reader)
    sources: dict[str, Any] = {}
    for page_index, source, k in externals:
        src = sources.get(source)
        if src is None:
            src = sources[source] = PdfReader(source)
        spage = src.pages[k]
        target = writer.pages[page_index]
        pw, ph = float(target.mediabox.width), float(target.mediabox.height)
        box = spage.cropbox
        w, h = float(box.width), float(box.height)
        t = Transformation().translate(-float(box.left), -float(box.bottom))
        rot = (int(spage.get("/Rotate", 0) or 0)) % 360
        if rot:
            t = t.rotate(-rot)
        corners = [t.apply_on((px, py)) for px, py in ((0, 0), (w, 0), (0, h), (w, h))]
        cx, cy = min(p[0] for p in corners), min(p[1] for p in corners)
        dw, dh = max(p[0] for p in corners) - cx, max(p[1] for p in corners) - cy
        s = min(pw / dw, ph / dh) if dw and dh else 1.0
        if abs(s - 1.0) < 0.002:  # same paper size up to rounding: place 1:1
            s = 1.0
        t = t.translate(-cx, -cy).scale(s, s).translate((pw - dw * s) / 2, (ph - dh * s) / 2)
        target.merge_transformed_page(spage, t, over=False, expand=False)
    if "/ID" in reader.trailer:
        writer._ID = reader.trailer["/ID"]  # type: ignore[assignment]
    outbuf = io.BytesIO()
    writer.write(outbuf)
    return outbuf.getvalue()


#: common characters of a packet (labels, digits, punctuation), drawn by ``warm_up``
_WARM_TEXT = "户主姓名身份证号码家庭住址人口劳动力年收入支出合计元是否脱贫监测对象帮扶责任人措施村组乡镇县日期0123456789.-（）：，。"


def warm_up(fonts: FontSet) -> None:
    """Render a small document in memory, once per worker process before its first packet.

    A worker's first packet cost ~100 ms instead of ~15: importing zxing-cpp, the fonts'
    coverage and width tables, the common glyphs' deflate blocks, reportlab's code paths.
    Done while the build process still reads the records, it costs nothing that waits.
    The caches it fills are functions of the fonts alone, so no packet's bytes change.
    """
    text = _WARM_TEXT
    doc = Document(title="warm-up", sections=(
        Section("warm", text[:4], (
            Title(text[:8]),
            Heading(text[8:16]),
            KeyValue(((text[:4], text[4:12]), (text[12:16], text[16:40]))),
            Table((text[:2], text[2:4]), (("1", text),)),
            Paragraph(text),
            QRCode("AB1|0|v1|0"),
        )),
    ))
    write_pdf(doc, io.BytesIO(), fonts=fonts)
