"""The PDF writer's page model: geometry and style constants, draw items, fonts as the layout
measures them, and the number formatting of the content stream.

Shared by the layout pass (``pdflayout``) and the painter (``pdfpaint``); ``pdf.write_pdf``
runs the two.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .linebreak import _SPACE as _SPACES
from .linebreak import break_lines_widths

if TYPE_CHECKING:  # pragma: no cover
    from .fonts import FontSet


MM = 72.0 / 25.4

#: entries a number memo holds before it is emptied
_MAX_MEMO = 200_000
#: texts whose width a role remembers before it starts again (labels recur in every packet;
#: names and addresses do not, and must not make a township's workers grow)
_MAX_WIDTHS = 20_000


def _memoised_format(spec: str) -> Callable[[float], str]:
    """``format(x, spec)``, remembered per value: nearly all the coordinates of a packet are
    values met before (a template's grid repeats), and a dictionary lookup costs much less
    than formatting one. Zero is formatted each time: 0.0 and -0.0 are one key but print
    differently."""
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
#: ``fp_str`` is pure Python when its C accelerator is absent, and slow.
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
        #: role -> text -> width at 1 pt (shared): a table cell's text is measured for its
        #: column, for its line break and for its alignment, and labels repeat in every packet
        self._sums: dict[str, dict[str, float]] = cache.setdefault("sums", {})
        #: (text, role) -> the text's font runs with their codes as ``Tj`` operators (shared;
        #: see ``pdfpaint._Painter.emit_text``)
        self.coded: dict[tuple[str, str], tuple[tuple[str, str, str], ...]] = cache.setdefault("coded", {})

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
        try:
            return self._sums[role][text] * size
        except KeyError:
            pass
        t = self.table(role)
        try:
            total = sum(map(t.__getitem__, text))
        except KeyError:
            m = self.measurer(role)
            for ch in text:
                if ch not in t:
                    t[ch] = m(ch)
            total = sum(map(t.__getitem__, text))
        sums = self._sums.get(role)
        if sums is None or len(sums) >= _MAX_WIDTHS:
            sums = self._sums[role] = {}
        sums[text] = total
        return total * size

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
