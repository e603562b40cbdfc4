"""Tables of a Word packet: the model's tables (column widths from the content, as in the
PDF; long labels broken at their natural points), key-value grids, the cover's
"label：value" lines, the contents page and the fingerprint box; table cells copied from
prototypes built once per font set (see :class:`~archive_builder.render.docxwriter._Writer`)."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ..document import Contents, KeyValue, Table
from .wordml import (
    CAPTION_SIZE,
    CELL_MARGIN,
    CONTENTS_SIZE,
    LABEL_SHADE,
    TABLE_SMALLEST,
    TBLPR_ORDER,
    TWIPS_PER_MM,
    _el,
    _em_width,
    _ordered,
    w,
)

if TYPE_CHECKING:  # pragma: no cover
    from .docxwriter import _Writer

#: cells kept per font set (their widths vary with the tables' content)
MAX_PROTOTYPES = 4096


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
    return list(_natural_words(text, prose))


@functools.lru_cache(maxsize=8192)
def _natural_words(text: str, prose: bool) -> tuple[str, ...]:  # labels repeat down a column
    from .columns import unbreakable_words

    return tuple(piece for word in unbreakable_words(text, prose=prose) for piece in natural_pieces(word))



def new_table(writer: _Writer, widths_twips: list[int], *, style: str = "ABTable",
              align: str = "center") -> Any:
    writer.flush_break()
    tbl = _el("tbl", writer.body)
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
    writer.page_has_content = True
    return tbl



def cell(writer: _Writer, tr: Any, text: str, width: int, *, span: int = 1, shade: bool = False,
         align: str = "left", role: str = "table", size: float | None = None,
         borders: Mapping[str, str] | None = None) -> Any:
    """Append a table cell: a copy of the cell built once per font set for these
    properties, with ``text`` in its run."""
    own = None if role == "table" and size is None else (size or writer.size("table"))
    key = (width, span, shade, align, role, own, tuple(borders.items()) if borders else (), bool(text))
    proto = writer._cells.get(key)
    if proto is None:
        proto = _cell_proto(width, span, shade, align, borders)
        if text:
            writer.rpr(_el("r", proto[-1]), role, own)
        if len(writer._cells) >= MAX_PROTOTYPES:
            writer._cells.clear()
        writer._cells[key] = proto
    tc = proto.__copy__()
    tr.append(tc)
    if text:
        writer.text(tc[-1][-1], text)
    return tc



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



def new_row(writer: _Writer, tbl: Any, *, header: bool = False, height: int | None = None) -> Any:
    key = ("row", header, height)
    proto = writer._cells.get(key)
    if proto is None:
        proto = _el("tr")
        trpr = _el("trPr", proto)
        _el("cantSplit", trpr)
        if height:
            _el("trHeight", trpr, val=height, hRule="atLeast")
        if header:
            _el("tblHeader", trpr)
        writer._cells[key] = proto
    tr = proto.__copy__()
    tbl.append(tr)
    return tr



def relative_widths(writer: _Writer, weights: Iterable[float], total: int) -> list[int]:
    weights = [max(float(x), 0.0) for x in weights]
    s = sum(weights) or 1.0
    out = [max(1, int(total * x / s)) for x in weights]
    out[-1] += total - sum(out)
    return out



def key_value(writer: _Writer, b: KeyValue) -> None:
    # same geometry as the PDF writer: label = 36 % of a pair (25 % with one pair)
    cols = max(1, b.columns)
    pair = writer.text_width_twips // cols
    label_w = round(pair * (0.36 if cols > 1 else 0.25))
    widths = [label_w, pair - label_w] * cols
    widths[-1] += writer.text_width_twips - sum(widths)
    tbl = new_table(writer, widths)
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
        tr = new_row(writer, tbl)
        for i, (key, value) in enumerate(row):
            gi = 2 * i
            cell(writer, tr, key, widths[gi], shade=True, align="center")
            last = i == len(row) - 1
            span = (2 * cols - gi - 1) if last else 1
            cell(writer, tr, value, sum(widths[gi + 1:gi + 1 + span]), span=span)



def cover_form(writer: _Writer, b: KeyValue) -> None:
    """Cover pages: "label：value" lines, the value centred on an underline."""
    size = writer.size("body")
    longest = max((_em_width(f"{k}：") for k, _ in b.rows), default=2.0)
    # the label on one line: its text, the cell's margins and a little room for the font
    label_w = min(round((longest + 0.6) * size * 20 + 2 * 85), writer.text_width_twips // 2)
    form_w = round(writer.text_width_twips * 0.72)
    widths = [label_w, max(form_w - label_w, 1)]
    tbl = new_table(writer, widths, style="ABPlainTable")
    for key, value in b.rows:
        tr = new_row(writer, tbl, height=round(size * 2.2 * 20))
        cell(writer, tr, f"{key}：", widths[0], align="right", role="body", size=size,
                  borders={"top": "nil", "left": "nil", "bottom": "nil", "right": "nil"})
        cell(writer, tr, value, widths[1], align="center", role="body", size=size,
                  borders={"top": "nil", "left": "nil", "bottom": "single", "right": "nil"})



def table(writer: _Writer, b: Table) -> None:
    from .columns import column_widths

    ncols = len(b.header) or max((len(r) for r in b.rows), default=1)
    size = writer.size("table")

    def measure(text: str, bold: bool) -> float:
        return _em_width(text) * size * 20 * (1.05 if bold else 1.0)

    # as in the PDF: widths from the content (no ID number, date or label split over two
    # lines), the template's as preferences; measured by character class, as Word's
    # fonts are not this process's. Word breaks CJK text anywhere, so a long label that
    # cannot have its whole width breaks at its natural point instead (cell_text)
    padding = 2 * CELL_MARGIN + size * 20 * 0.25
    exact, scale = column_widths(
        float(writer.text_width_twips), b.header, b.rows, b.widths, measure, padding,
        smallest=TABLE_SMALLEST, footer=b.footer, words_of=natural_words,
    )
    widths = [round(w) for w in exact]
    widths[-1] += writer.text_width_twips - sum(widths)
    cell_size = size * scale if scale < 1 else None

    def cell_text(text: str, i: int, bold: bool) -> str:
        if "\n" in text or widths[i] >= measure(text, bold) * scale + padding:
            return text
        return "\n".join(natural_pieces(text))

    if b.caption:
        p = writer.para(style="ABPlain", align="center", keep_next=True)
        writer.run(p, b.caption, "heading", writer.size("table") * 1.25)
    tbl = new_table(writer, widths)
    aligns = [("left" if a == "justify" else a) for a in b.align] + ["left"] * ncols
    if b.header:
        tr = new_row(writer, tbl, header=True)
        for i in range(ncols):
            text = b.header[i] if i < len(b.header) else ""
            cell(writer, tr, cell_text(text, i, True), widths[i], align="center", role="heading",
                      size=cell_size or size)
    for rows, role in ((b.rows, "table"), (b.footer, "heading")):
        for values in rows:
            tr = new_row(writer, tbl)
            for i in range(ncols):
                text = values[i] if i < len(values) else ""
                cell(writer, tr, cell_text(text, i, role != "table"), widths[i], align=aligns[i], role=role,
                          size=cell_size if role == "table" else (cell_size or size))



def contents(writer: _Writer, b: Contents) -> None:
    widths = relative_widths(writer, (0.12, 0.70, 0.18), writer.text_width_twips)
    tbl = new_table(writer, widths)
    tr = new_row(writer, tbl, header=True, height=480)
    for i in range(3):
        cell(writer, tr, b.header[i], widths[i], align="center", role="heading",
                  size=CONTENTS_SIZE)
    n = 0
    for s in writer.doc.sections:
        if not s.in_contents:
            continue
        n += 1
        tr = new_row(writer, tbl, height=480)
        cell(writer, tr, str(n), widths[0], align="center", size=CONTENTS_SIZE)
        cell(writer, tr, s.title, widths[1], align="left", size=CONTENTS_SIZE)
        cell(writer, tr, writer.page_numbers.get(s.key, ""), widths[2], align="center",
                  size=CONTENTS_SIZE)



def fingerprint_box(writer: _Writer, right_of: int) -> None:
    side = round(20 * TWIPS_PER_MM)
    tbl = new_table(writer, [side], style="ABTable", align="left")
    tblpr = tbl.find(w("tblPr"))
    _ordered(tblpr, "tblInd", TBLPR_ORDER, w=max(right_of - side - round(6 * TWIPS_PER_MM), 0),
             type="dxa")
    borders = _ordered(tblpr, "tblBorders", TBLPR_ORDER)
    for edge in ("top", "left", "bottom", "right"):
        _el(edge, borders, val="dashed", sz=4, space=0, color="000000")
    tr = _el("tr", tbl)
    trpr = _el("trPr", tr)
    _el("trHeight", trpr, val=side, hRule="exact")
    cell(writer, tr, "按手印", side, align="center", role="body", size=CAPTION_SIZE)

