"""Pass 1 of the PDF writer: the document's blocks laid out into pages of draw items.

Every block kind has its method on ``_Layout``; they need no page numbers, because the only
thing that depends on them, the contents block, has a fixed row height. ``pdf.write_pdf``
numbers the pages afterwards and hands them to the painter (``pdfpaint``).

Why one class of this size: the block kinds share the cursor, the page breaking and the font
runs; splitting them across modules would pass that state around instead.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
    Section,
    Signature,
    Spacer,
    Table,
    Title,
)
from .columns import column_widths
from .evidenceassets import missing_reported
from .pdfmodel import (
    BASELINE,
    CAPTION_SIZE,
    CELL_LEADING,
    CELL_PAD_X,
    CELL_PAD_Y,
    CONTENTS_ROW,
    CONTENTS_SIZE,
    EMPTY_MARK,
    FORM_LEADING,
    MM,
    PLACEHOLDER_TEXT,
    RULE,
    _Cell,
    _Fonts,
    _Page,
    _Row,
)

if TYPE_CHECKING:  # pragma: no cover
    from .evidence import EvidenceCache


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
        from .evidence import ImageAsset, PdfPageAsset, Placeholder, raster_warning, removed_warning

        if self.evidence is None:
            assets: list[Any] = [Placeholder(Path(b.source), b.display_path, "未配置佐证材料缓存")]
        else:
            assets = self.evidence.assets(Path(b.source), display_path=b.display_path)
        parts = [p for p in (b.title, b.kind, b.date, b.display_path) if p]
        caption = " · ".join(parts)
        removed = next((a.removed for a in assets if getattr(a, "removed", ())), ())
        if removed:
            self.warnings.append(removed_warning(b.display_path, removed))
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
        if not missing_reported(asset.reason):
            self.warnings.append(
                f"佐证材料 {asset.display_path} 无法读取（{asset.reason}），已用占位页代替；"
                f"{getattr(asset, 'hint', '') or '请补充或替换该文件。'}"
            )
