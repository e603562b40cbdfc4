"""Spine labels (盒脊竖条) for the archive boxes.

One strip per box, ``width_mm`` (the box's spine thickness: 20/30/40/50 mm) × 250 mm,
laid out side by side on A4 portrait sheets with cut marks (thin crop lines at every strip
boundary, drawn only in the margins outside the strips).

A strip, top to bottom (DA/T 22-2015 §6.4 spine items, plus the village as 机构(问题)):

* the village name and "档案" in CJK vertical writing — one character per line;
* 全宗号, 年度, 保管期限, 起止件号 (first 件号 in the upper cell, last in the lower cell),
  盒号 — each a ruled cell with a small horizontal label and its value.

Values follow the usual CJK vertical-writing rule for numbers (縦中横 / 纵中横): a short
run of digits or Latin letters ("2024", "0001", "Z012") is set horizontally inside the
column, shrunk to fit the strip; Chinese characters are stacked one per line ("永久",
"30" + "年"). A Latin run too long for the column is broken into pieces that fit and
stacked. Every font is the template set's embedded CJK TrueType (never Helvetica).
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from archive_builder.archive.outdir import atomic_write
from archive_builder.render.boxpages import (
    MM,
    a4_canvas,
    draw_text,
    fit_size,
    retention_label,
)
from archive_builder.render.rlformat import settings

if TYPE_CHECKING:  # pragma: no cover
    from archive_builder.archive.collate import BoxResult, VillageInfo
    from archive_builder.render.fonts import FontSet

PAGE_W_MM = 210.0
PAGE_H_MM = 297.0
#: strip length (box height 310 mm minus room for the box's own printing and the finger hole)
STRIP_HEIGHT_MM = 250.0
#: minimum page margin beside the outer strips (room for the cut marks)
MIN_MARGIN_MM = 8.0
#: frame inset inside the strip, so a slightly crooked cut does not touch the lines
INSET_MM = 2.0
#: cut marks: gap to the strip and length
MARK_GAP_MM = 2.0
MARK_LEN_MM = 6.0
SPINE_WIDTHS = (20, 30, 40, 50)

_LATIN = re.compile(r"[0-9A-Za-z.\-·/()]+")


def strips_per_page(width_mm: float) -> int:
    return max(1, int((PAGE_W_MM - 2 * MIN_MARGIN_MM) // width_mm))


def _units(text: str) -> list[str]:
    """Vertical-writing units: one CJK character each, Latin/digit runs kept together."""
    out: list[str] = []
    pos = 0
    for m in _LATIN.finditer(text):
        out.extend(ch for ch in text[pos : m.start()] if not ch.isspace())
        out.append(m.group())
        pos = m.end()
    out.extend(ch for ch in text[pos:] if not ch.isspace())
    return out


class _Strip:
    def __init__(self, c: Any, fonts: Any, x: float, y: float, w: float, h: float) -> None:
        self.c, self.fonts = c, fonts
        self.x, self.y, self.w, self.h = x, y, w, h
        inset = INSET_MM * MM
        self.ix, self.iw = x + inset, w - 2 * inset
        self.cx = x + w / 2

    def _split_latin(self, unit: str, role: str, size: float, width: float) -> list[str]:
        """Break a Latin run into pieces no wider than ``width``, after - · / when possible."""

        def fits(t: str) -> bool:
            return self.fonts.string_width(t, role, size) <= width

        pieces: list[str] = []
        cur = ""
        for token in re.findall(r"[^-·/]+[-·/]?|[-·/]", unit):
            if fits(cur + token):
                cur += token
                continue
            if cur:
                pieces.append(cur)
                cur = ""
            for ch in token:  # a token wider than the column: break between characters
                if cur and not fits(cur + ch):
                    pieces.append(cur)
                    cur = ch
                else:
                    cur += ch
        if cur:
            pieces.append(cur)
        return pieces

    def column(
        self, text: str, role: str, size: float, top: float, bottom: float, *, prefer_row: bool = True
    ) -> None:
        """Set ``text`` centred in the column between ``top`` and ``bottom`` (points)."""
        if not text:
            return
        fonts = self.fonts
        avail_w = self.iw - 4 * MM
        avail_h = top - bottom
        # 纵中横: a value that is all Latin/digits and fits horizontally stays one line
        if prefer_row and _LATIN.fullmatch(text):
            s = min(fit_size(fonts, text, role, size, avail_w, min_size=1.0), avail_h * 0.8)
            if s >= min(size, 9.0) * 0.75:
                self._line(text, role, s, (top + bottom) / 2)
                return
        # stacked: one unit per line, shrinking until the column fits
        s = size
        for _ in range(40):
            lines: list[str] = []
            for u in _units(text):
                if _LATIN.fullmatch(u) and fonts.string_width(u, role, s) > avail_w:
                    lines.extend(self._split_latin(u, role, s, avail_w))
                else:
                    lines.append(u)
            widest = max(fonts.string_width(u, role, s) for u in lines)
            advance = s * 1.18
            if (len(lines) * advance <= avail_h and widest <= avail_w) or s <= 5:
                break
            s *= 0.92
        total = len(lines) * advance
        y_c = (top + bottom) / 2 + total / 2 - advance / 2
        for u in lines:
            self._line(u, role, fit_size(fonts, u, role, s, avail_w, min_size=4.0), y_c)
            y_c -= advance

    def _line(self, text: str, role: str, size: float, y_center: float) -> None:
        draw_text(self.c, self.fonts, text, role, size, self.cx, y_center - 0.36 * size, "center")

    def hline(self, y: float, width: float = 0.5) -> None:
        self.c.setLineWidth(width)
        self.c.line(self.ix, y, self.ix + self.iw, y)

    def label(self, text: str, top: float) -> float:
        """A small horizontal label at the top of a cell; returns the y below it."""
        size = fit_size(self.fonts, text, "heading", 9.0, self.iw - 2 * MM, min_size=5.0)
        self._line(text, "heading", size, top - 2 * MM - size / 2)
        return top - 4 * MM - size


def _draw_strip(
    c: Any, fonts: Any, x: float, y: float, w: float, h: float, v: VillageInfo, box: BoxResult
) -> None:
    s = _Strip(c, fonts, x, y, w, h)
    inset = INSET_MM * MM
    top, bottom = y + h - inset, y + inset
    c.setLineWidth(0.8)
    c.rect(s.ix, bottom, s.iw, top - bottom)
    # value size grows with the spine width: 20 mm → 16 pt … 50 mm → 26 pt
    value_size = min(26.0, 10.0 + 0.32 * w / MM)
    name_size = min(44.0, (s.iw - 3 * MM) * 0.85)

    inner = top - bottom
    heights = {"name": 0.40, "fonds": 0.10, "year": 0.10, "retention": 0.11, "items": 0.18, "box": 0.11}
    y_cur = top
    # 1. village name (机构/问题), vertical
    cell = inner * heights["name"]
    s.column(f"{v.name}档案", "heading", name_size, y_cur - 3 * MM, y_cur - cell + 3 * MM, prefer_row=False)
    y_cur -= cell
    s.hline(y_cur, 0.8)

    def field(key: str, label: str, value: str) -> None:
        nonlocal y_cur
        cell = inner * heights[key]
        below = s.label(label, y_cur)
        s.column(value, "body", value_size, below, y_cur - cell + 2 * MM)
        y_cur -= cell
        if key != "box":
            s.hline(y_cur)

    field("fonds", "全宗号", v.fonds_no)
    field("year", "年度", str(v.year))
    field("retention", "保管期限", retention_label(v.retention))
    # 起止件号: first in the upper cell, last in the lower cell
    cell = inner * heights["items"]
    below = s.label("起止件号", y_cur)
    mid = (below + (y_cur - cell)) / 2
    s.column(f"{box.first_item:04d}", "body", value_size, below, mid + 1 * MM)
    c.setLineWidth(0.3)
    c.line(s.ix + 3 * MM, mid, s.ix + s.iw - 3 * MM, mid)
    s.column(f"{box.last_item:04d}", "body", value_size, mid - 1 * MM, y_cur - cell + 2 * MM)
    y_cur -= cell
    s.hline(y_cur)
    field("box", "盒号", f"{box.box_no}")


def _cut_marks(c: Any, x0: float, y0: float, n: int, w: float, h: float) -> None:
    gap, length = MARK_GAP_MM * MM, MARK_LEN_MM * MM
    c.setLineWidth(0.25)
    for i in range(n + 1):
        x = x0 + i * w
        c.line(x, y0 + h + gap, x, y0 + h + gap + length)  # above the strips
        c.line(x, y0 - gap, x, y0 - gap - length)  # below
    x1 = x0 + n * w
    for y in (y0, y0 + h):
        c.line(x0 - gap - length, y, x0 - gap, y)  # left of the first strip
        c.line(x1 + gap, y, x1 + gap + length, y)  # right of the last strip


def write_spine_labels(
    boxes: Sequence[tuple[VillageInfo, BoxResult]],
    out: Path,
    *,
    width_mm: int,
    fonts: FontSet,
    height_mm: float = STRIP_HEIGHT_MM,
) -> int:
    """Write spine strips for ``boxes`` (in the given order) to ``out``; return the page count.

    ``width_mm`` is the box spine thickness (20/30/40/50 mm). The file is written to a
    temporary file next to ``out`` and moved into place.
    """
    if not 10 <= width_mm <= PAGE_W_MM - 2 * MIN_MARGIN_MM:
        raise ValueError(f"盒脊宽度 {width_mm} mm 不可用，应为 {'/'.join(map(str, SPINE_WIDTHS))} mm")
    if not 50 <= height_mm <= PAGE_H_MM - 2 * (MARK_GAP_MM + MARK_LEN_MM + 2):
        raise ValueError(f"竖条高度 {height_mm} mm 放不进 A4 纸")
    out = Path(out)
    per_page = strips_per_page(width_mm)
    w, h = width_mm * MM, height_mm * MM
    page_w, page_h = PAGE_W_MM * MM, PAGE_H_MM * MM
    with settings():  # reportlab as we write with it (see render/rlformat.py)
        buf = io.BytesIO()
        c = a4_canvas(buf, fonts, "档案盒脊竖条", font_size=10, subject=f"盒脊宽 {width_mm} mm，共 {len(boxes)} 条",
                      creator="archive-builder")
        pages = 0
        for start in range(0, len(boxes), per_page):
            chunk = boxes[start : start + per_page]
            n = len(chunk)
            x0 = (page_w - n * w) / 2 if n == per_page else (page_w - per_page * w) / 2
            y0 = (page_h - h) / 2
            for i, (village, box) in enumerate(chunk):
                _draw_strip(c, fonts, x0 + i * w, y0, w, h, village, box)
            _cut_marks(c, x0, y0, n, w, h)
            note = f"盒脊竖条 · 宽 {width_mm} mm × 高 {height_mm:g} mm · 沿裁切线裁下 · 第 {pages + 1} 页"
            draw_text(c, fonts, note, "body", 8, page_w / 2, 6 * MM, "center")
            c.showPage()
            pages += 1
        if not pages:
            draw_text(c, fonts, "没有需要打印的盒脊竖条", "body", 12, page_w / 2, page_h / 2, "center")
            c.showPage()
            pages = 1
        c.save()
    atomic_write(out, buf.getvalue())
    return pages
