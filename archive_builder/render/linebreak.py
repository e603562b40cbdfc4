"""CJK line breaking with the usual Chinese line-breaking rules (禁则).

Pure functions, no reportlab: the PDF writer passes a width function for the font and size
in use.

Rules implemented:

* a line never starts with closing punctuation (``，。、；：？！）》」』】〕”’…—%`` and the
  half-width ``,.;:?!)]}``) – such a mark is glued to the character before it, so the pair
  moves to the next line together ("推出");
* a line never ends with opening punctuation (``（《「『【〔“‘`` and ``([{``) – glued to the
  character after it;
* numbers, ID numbers (41162119850312003X), amounts (12,345.67), dates (2024-05-01) and Latin
  words are never split: runs of ``[0-9A-Za-z.,:/\\-_%¥￥+]`` are unbreakable; only a run that is
  wider than a whole line is cut by characters, as a last resort;
* ``"\\n"`` is a hard line break; a blank line yields ``""`` in the output (paragraph spacing,
  and the next line starts a new paragraph with the first-line indent again);
* spaces are break opportunities and are dropped at line ends and line starts.

Justification (extra space between CJK characters) is the writer's job; ``gap_count`` tells it
how many stretchable gaps a line has.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

#: characters that must not start a line
CLOSING = "，。、；：？！）》」』】〕〉］｝”’…—%％·・,.;:?!)]}"
#: characters that must not end a line
OPENING = "（《「『【〔〈［｛“‘([{"
#: characters of an unbreakable Latin/number run
RUN_CHARS = r"0-9A-Za-z.,:/\-_%¥￥+"
#: a run must start with one of these (a leading "," or "." is closing punctuation instead)
RUN_START = r"0-9A-Za-z¥￥+\-_/"

_CL = re.escape(CLOSING)
_OP = re.escape(OPENING)
# One breakable unit: whitespace, or [opening]* (run | one char) [closing]*.
_UNIT = re.compile(
    rf"[ \t\u3000]+|[{_OP}]*(?:[{RUN_START}][{RUN_CHARS}]*|.)[{_CL}]*",
    re.DOTALL,
)
_SPACE = " \t\u3000"

#: tolerance for floating-point width sums
EPS = 1e-6


def _units(line: str) -> list[str]:
    return _UNIT.findall(line)


def break_lines(
    text: str,
    width_of: Callable[[str], float],
    max_width: float,
    first_indent: float = 0.0,
) -> list[str]:
    """Break ``text`` into lines no wider than ``max_width`` (see the module docstring).

    ``width_of(s)`` returns the printed width of ``s``; ``first_indent`` is subtracted from the
    width available to the first line of each paragraph.  Returns the lines without the
    dropped break spaces; ``""`` marks a blank line.
    """
    return _break(text, width_of, max_width, first_indent)


def break_lines_widths(
    text: str,
    char_widths: Mapping[str, float],
    max_width: float,
    first_indent: float = 0.0,
    missing: Callable[[str], float] | None = None,
) -> list[str]:
    """Fast variant of :func:`break_lines` taking a per-character width table.

    ``char_widths`` maps each character to its width (already scaled to the font size); a
    character not in it is measured with ``missing`` (and the result stored in the table if it
    is a ``dict``).
    """
    get = char_widths.get

    def width_of(s: str) -> float:
        total = 0.0
        for ch in s:
            w = get(ch)
            if w is None:
                if missing is None:
                    raise KeyError(ch)
                w = missing(ch)
                if isinstance(char_widths, dict):
                    char_widths[ch] = w
            total += w
        return total

    return _break(text, width_of, max_width, first_indent)


def _break(
    text: str, width_of: Callable[[str], float], max_width: float, first_indent: float
) -> list[str]:
    out: list[str] = []
    new_para = True
    limit = max_width + EPS
    for raw in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if not raw.strip(_SPACE):
            out.append("")
            new_para = True
            continue
        avail = limit - (first_indent if new_para else 0.0)
        new_para = False
        cur: list[str] = []
        cur_w = 0.0
        for unit in _UNIT.findall(raw):
            if unit[0] in _SPACE and unit.strip(_SPACE) == "":
                if not cur:
                    continue  # no spaces at a line start (except the paragraph's own)
                w = width_of(unit)
                if cur_w + w <= avail:
                    cur.append(unit)
                    cur_w += w
                else:  # break here; the space disappears
                    out.append("".join(cur).rstrip(_SPACE))
                    cur, cur_w, avail = [], 0.0, limit
                continue
            w = width_of(unit)
            if cur_w + w <= avail:
                cur.append(unit)
                cur_w += w
                continue
            if cur:
                out.append("".join(cur).rstrip(_SPACE))
                cur, cur_w, avail = [], 0.0, limit
            if w <= avail:
                cur.append(unit)
                cur_w = w
                continue
            # Last resort: a unit wider than a whole line is cut by characters.
            for ch in unit:
                cw = width_of(ch)
                if cur and cur_w + cw > avail:
                    out.append("".join(cur))
                    cur, cur_w, avail = [], 0.0, limit
                cur.append(ch)
                cur_w += cw
        out.append("".join(cur).rstrip(_SPACE))
    # A text ending in "\n" does not add an empty trailing line.
    if len(out) > 1 and out[-1] == "" and text.endswith("\n"):
        out.pop()
    return out


def is_cjk(ch: str) -> bool:
    """True for characters that are set on the em grid (ideographs, kana, fullwidth forms)."""
    o = ord(ch)
    return (
        0x2E80 <= o <= 0x9FFF
        or 0xAC00 <= o <= 0xD7AF
        or 0xF900 <= o <= 0xFAFF
        or 0xFE30 <= o <= 0xFE4F
        or 0xFF00 <= o <= 0xFFEF
        or 0x20000 <= o <= 0x3FFFF
    )


def gap_count(line: str) -> int:
    """Number of stretchable gaps in ``line`` for justification.

    A gap is a boundary between two adjacent characters where at least one side is CJK
    (ideograph or fullwidth punctuation); gaps inside Latin/number runs do not stretch.
    """
    n = 0
    prev = False
    first = True
    for ch in line:
        c = is_cjk(ch)
        if not first and (c or prev):
            n += 1
        prev = c
        first = False
    return n
