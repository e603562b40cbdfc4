"""The box's own pages (盒封面, 卷内目录, 备考表) and small text helpers for reportlab.

Drawn with the template set's fonts through ``FontSet.runs`` (per-character fallback for
rare characters) on a canvas whose initial font is the embedded body face, never Helvetica.
The contents has a fixed number of rows per page (``CONTENTS_ROWS``) so the collator knows
its page count, and therefore every archive page number, before anything is drawn.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from archive_builder.render.rlformat import settings

if TYPE_CHECKING:  # pragma: no cover
    from archive_builder.archive.collate import VillageInfo

MM = 72.0 / 25.4
A4_W = 210.0 * MM
A4_H = 297.0 * MM

#: rows of the box contents per page
CONTENTS_ROWS = 20


@dataclass(frozen=True)
class ContentsRow:
    """One household line of the box contents; ``first_no``/``last_no`` = archive page numbers."""

    item_no: int
    household_id: str
    head: str
    members: int
    household_type: str
    first_no: int
    last_no: int


@dataclass(frozen=True)
class MissingItem:
    """A 件号 whose packet could not be generated: noted on the 备考表 of the box it belongs to.

    Numbers are not reassigned when a household's record has errors or its packet fails to
    render (every later cover would change); the box says which number is missing, as DA/T 22
    asks of the 备考表. ``head`` is empty when the record could not be read.
    """

    item_no: int
    household_id: str
    head: str


def face_name(fonts: Any, role: str) -> str:
    return fonts.faces[role].rl_name


def _width(fonts: Any, text: str, role: str, size: float) -> float:
    return float(fonts.string_width(text, role, size))


def draw_text(
    c: Any, fonts: Any, text: str, role: str, size: float, x: float, y: float, align: str = "left"
) -> float:
    """Draw one line with per-character font fallback; returns its width.

    Runs in fonts of ours (``GlobalCodeTTFont``) are written as text operators directly, as
    the packet renderer does: ``Canvas.drawString`` measured and formatted every run in pure
    Python, half the time a box's cover, contents and remarks took. Other fonts go through
    reportlab.
    """
    width = _width(fonts, text, role, size)
    if align == "center":
        x -= width / 2
    elif align == "right":
        x -= width
    from reportlab.pdfbase.pdfmetrics import getFont, stringWidth

    doc = c._doc
    for font_name, run in fonts.runs(text, role):
        font = getFont(font_name)
        chunks = font.splitString(run, doc) if hasattr(font, "subset") else None
        if chunks is not None and len(chunks) == 1:
            subset, data = chunks[0]
            name = font.getSubsetInternalName(subset, doc)
            c._code.append(f"BT {name} {size:.4f} Tf 1 0 0 1 {x:.2f} {y:.2f} Tm <{data.hex()}> Tj ET")
            x += fonts.string_width(run, role, size)
        else:
            c.setFont(font_name, size)
            c.drawString(x, y, run)
            x += stringWidth(run, font_name, size)
    return width


def fit_size(fonts: Any, text: str, role: str, size: float, max_width: float, min_size: float = 6.0) -> float:
    """The largest size ≤ ``size`` (not below ``min_size``) at which ``text`` fits."""
    if not text:
        return size
    w = _width(fonts, text, role, size)
    if w <= max_width:
        return size
    return max(min_size, size * max_width / w)


def _iso_date(date: str) -> tuple[int, int, int] | None:
    m = re.match(r"^(\d{4})-(\d{1,2})-(\d{1,2})", date or "")
    return (int(m[1]), int(m[2]), int(m[3])) if m else None


def chinese_date(date: str) -> str:
    d = _iso_date(date)
    return f"{d[0]}年{d[1]}月{d[2]}日" if d else (date or "")


def pdf_date(date: str) -> str:
    d = _iso_date(date) or (2000, 1, 1)
    return f"D:{d[0]:04d}{d[1]:02d}{d[2]:02d}000000+08'00'"


def retention_label(retention: str) -> str:
    """保管期限 written in full, as cover and spine want it: 永久 / 30年 / 10年."""
    return {"Y": "永久", "D30": "30年", "D10": "10年", "定期30年": "30年", "定期10年": "10年"}.get(
        retention, retention
    )


# --------------------------------------------------------------------------- front/back matter


def a4_canvas(buf: io.BytesIO, fonts: Any, title: str, *, font_size: float = 12, subject: str | None = None,
              creator: str | None = None) -> Any:
    """A reportlab canvas for an A4 page set of our own (box pages, spine strips):
    deterministic (``invariant``), compressed, and starting in the embedded body face so no
    unembedded Helvetica is ever referenced. Use inside ``rlformat.settings()``."""
    from reportlab.pdfgen import canvas

    c = canvas.Canvas(
        buf,
        pagesize=(A4_W, A4_H),
        invariant=1,
        pageCompression=1,
        initialFontName=face_name(fonts, "body"),
        initialFontSize=font_size,
    )
    c.setTitle(title)
    if subject is not None:
        c.setSubject(subject)
    if creator is not None:
        c.setCreator(creator)
    return c


def contents_pages(households: int) -> int:
    """Pages of the box contents (卷内目录) listing ``households`` rows."""
    return max(1, math.ceil(households / CONTENTS_ROWS))


def render_box_pages(
    village: VillageInfo, box_no: int, rows: Sequence[ContentsRow], numbered: int, fonts: Any, date: str,
    missing: Sequence[MissingItem] = (),
) -> bytes:
    """The box's own pages as one PDF: cover (1), contents (k), 备考表 (1), in this order.

    ``rows`` are the households in 件号 order with their archive page range;
    ``numbered`` is the number of archive-numbered pages in the box; ``missing`` the item
    numbers of this box that have no packet (written on the 备考表).
    """
    with settings():  # reportlab as we write with it (see render/rlformat.py)
        buf = io.BytesIO()
        c = a4_canvas(buf, fonts, f"{village.name} 第{box_no}盒")
        _draw_cover(c, fonts, village, box_no, rows[0].item_no, rows[-1].item_no, len(rows))
        c.showPage()
        k = contents_pages(len(rows))
        for page in range(k):
            chunk = rows[page * CONTENTS_ROWS : (page + 1) * CONTENTS_ROWS]
            _draw_contents(c, fonts, village, box_no, chunk, page, k)
            c.showPage()
        _draw_remarks(c, fonts, village, box_no, len(rows), numbered, date, missing)
        c.showPage()
        c.save()
    return buf.getvalue()


def _draw_cover(c: Any, fonts: Any, v: VillageInfo, box_no: int, first: int, last: int, count: int) -> None:
    left, right = 30 * MM, A4_W - 30 * MM
    cx = A4_W / 2
    title = v.fonds_name or f"{v.county}{v.township}"
    size = fit_size(fonts, title, "title", 26, right - left)
    draw_text(c, fonts, title, "title", size, cx, A4_H - 70 * MM, "center")
    sub = f"{v.name}档案"
    draw_text(
        c, fonts, sub, "title", fit_size(fonts, sub, "title", 22, right - left), cx, A4_H - 88 * MM, "center"
    )
    rows = [
        ("全宗名称", v.fonds_name),
        ("全宗号", v.fonds_no),
        ("村", f"{v.county} {v.township} {v.name}".strip()),
        ("年度", str(v.year)),
        ("保管期限", retention_label(v.retention)),
        ("起止件号", f"{first:04d} — {last:04d}"),
        ("盒号", f"第 {box_no} 盒"),
        ("件数", f"共 {count} 件"),
    ]
    row_h = 15 * MM
    label_w = 36 * MM
    top = A4_H - 115 * MM
    c.setLineWidth(0.8)
    c.rect(left, top - row_h * len(rows), right - left, row_h * len(rows))
    c.line(left + label_w, top, left + label_w, top - row_h * len(rows))
    for i, (label, value) in enumerate(rows):
        y = top - row_h * (i + 1)
        if i:
            c.line(left, y + row_h, right, y + row_h)
        base = y + row_h / 2 - 5
        draw_text(c, fonts, label, "heading", 14, left + label_w / 2, base, "center")
        vs = fit_size(fonts, value, "body", 14, right - left - label_w - 8 * MM)
        draw_text(c, fonts, value, "body", vs, left + label_w + 4 * MM, base, "left")


_CONTENTS_COLS = (("件号", 16), ("户编号", 52), ("户主", 26), ("人数", 14), ("户类型", 36), ("起止页", 26))


def _draw_contents(
    c: Any, fonts: Any, v: VillageInfo, box_no: int, rows: Sequence[ContentsRow], page: int, pages: int
) -> None:
    widths = [w * MM for _, w in _CONTENTS_COLS]
    total = sum(widths)
    left = (A4_W - total) / 2
    draw_text(c, fonts, "卷 内 目 录", "title", 22, A4_W / 2, A4_H - 30 * MM, "center")
    info = f"{v.name}　全宗号：{v.fonds_no}　年度：{v.year}　保管期限：{retention_label(v.retention)}　盒号：第 {box_no} 盒"
    draw_text(
        c, fonts, info, "body", fit_size(fonts, info, "body", 10.5, total), left, A4_H - 42 * MM, "left"
    )
    top = A4_H - 47 * MM
    head_h, row_h = 10 * MM, 10 * MM
    n = len(rows)
    bottom = top - head_h - row_h * n
    c.setLineWidth(0.6)
    c.rect(left, bottom, total, top - bottom)
    x = left
    for w in widths[:-1]:
        x += w
        c.line(x, top, x, bottom)
    c.line(left, top - head_h, left + total, top - head_h)
    for i in range(1, n):
        y = top - head_h - row_h * i
        c.line(left, y, left + total, y)

    def cells(texts: Sequence[str], y_top: float, h: float, role: str) -> None:
        x = left
        for text, w in zip(texts, widths):
            size = fit_size(fonts, text, role, 10.5, w - 2 * MM)
            draw_text(c, fonts, text, role, size, x + w / 2, y_top - h / 2 - size * 0.35, "center")
            x += w

    cells([h for h, _ in _CONTENTS_COLS], top, head_h, "heading")
    for i, row in enumerate(rows):
        a, b = row.first_no, row.last_no
        span = f"{a}—{b}" if a and b != a else (str(a) if a else "")
        texts = [f"{row.item_no:04d}", row.household_id, row.head, str(row.members), row.household_type, span]
        cells(texts, top - head_h - row_h * i, row_h, "table")
    foot = f"第 {page + 1} 页　共 {pages} 页"
    draw_text(c, fonts, foot, "body", 10.5, A4_W / 2, 18 * MM, "center")


def _draw_remarks(
    c: Any, fonts: Any, v: VillageInfo, box_no: int, items: int, numbered: int, date: str,
    missing: Sequence[MissingItem] = (),
) -> None:
    left, right = 28 * MM, A4_W - 28 * MM
    draw_text(c, fonts, "备 考 表", "title", 22, A4_W / 2, A4_H - 37 * MM, "center")
    draw_text(c, fonts, f"{v.name}　第 {box_no} 盒", "body", 12, left, A4_H - 52 * MM, "left")
    count = f"本盒共 {items} 件 {numbered} 页" + (f"，缺 {len(missing)} 件（见下）" if missing else "")
    draw_text(c, fonts, count, "body", 14, left, A4_H - 64 * MM, "left")
    draw_text(c, fonts, "盒内文件情况说明：", "heading", 14, left, A4_H - 78 * MM, "left")
    box_top, box_bottom = A4_H - 82 * MM, 95 * MM
    c.setLineWidth(0.6)
    c.rect(left, box_bottom, right - left, box_top - box_bottom)
    notes = [
        "页号编在有图文页面的正面右上角、背面左上角。",
        "盒封面、卷内目录、隔页纸、备考表和空白页不编页号。",
    ]
    gaps = [
        f"缺第 {m.item_no:04d} 件：{f'户主 {m.head}，' if m.head else ''}户编号 {m.household_id}，档卡未生成，待补入。"
        for m in sorted(missing, key=lambda m: m.item_no)
    ]
    room = int((box_top - box_bottom - 14 * MM) // (8 * MM)) + 1 - len(notes)
    if len(gaps) > room:  # a line says how many more there are, instead of writing past the frame
        gaps = [*gaps[: room - 1], f"另缺 {len(gaps) - room + 1} 件，见生成报告（manifest.json）。"]
    notes += gaps
    for i, line in enumerate(notes):
        size = fit_size(fonts, line, "body", 12, right - left - 8 * MM)
        draw_text(c, fonts, line, "body", size, left + 4 * MM, box_top - (10 + 8 * i) * MM, "left")
    y = 75 * MM
    draw_text(c, fonts, "立卷人：", "body", 14, left, y, "left")
    c.line(left + 22 * MM, y - 1.5, left + 70 * MM, y - 1.5)
    draw_text(c, fonts, f"立卷日期：{chinese_date(date)}", "body", 14, left + 85 * MM, y, "left")
    y -= 16 * MM
    draw_text(c, fonts, "检查人：", "body", 14, left, y, "left")
    c.line(left + 22 * MM, y - 1.5, left + 70 * MM, y - 1.5)
    draw_text(c, fonts, "检查日期：", "body", 14, left + 85 * MM, y, "left")
    c.line(left + 113 * MM, y - 1.5, right, y - 1.5)
