"""Table column widths from the content, shared by the PDF and the Word writers.

A template's ``widths`` are preferences. What the content needs wins over them:

* no column is narrower than its longest *unbreakable word*: a vocabulary label (之儿媳,
  学龄前儿童, 普通劳动力), a header word (与户主关系), an ID number, a date, an amount. Words
  are the pieces of a cell between spaces and list marks (、，；) and around brackets; a run of
  digits and Latin letters is always one word, a CJK piece is one when it is short (a label,
  not a sentence);
* width left over after every column has its minimum goes first to the columns whose cells
  still wrap (free text), in proportion to their preferences, up to what their longest cell
  needs on one line; what remains then is shared by preference.

When even the minimums do not fit, the table's text is made smaller (down to
:data:`SMALLEST` of its size) until they do; beyond that they are scaled down together (some
words then break, which no width could avoid).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from .linebreak import RUN_CHARS

#: a CJK piece of at most this many characters is a label that must not break
LABEL_CHARS = 10

#: the smallest text scale a table takes to keep its words whole (10.5 pt → 7.35 pt)
SMALLEST = 0.7

_SPLIT = re.compile(r"[\s\u3000、，；;]+|(?=[（(《])|(?<=[）)》])")
_RUN = re.compile(rf"^[{RUN_CHARS}]+$")
_SEPARATED = re.compile(r"[\s\u3000、，；;（(《）)》]")


def unbreakable_words(text: str, *, prose: bool = False) -> list[str]:
    """The words of a cell that must stay on one line (see the module docstring).

    ``prose``: the cell is in a column of free text, where only number runs are whole words.
    """
    if len(text) <= LABEL_CHARS and not prose and not _SEPARATED.search(text):
        return [text]  # the usual cell: one short label, name or number
    words = []
    for line in text.split("\n"):
        for piece in _SPLIT.split(line):
            piece = piece.strip()
            if piece and (_RUN.match(piece) or (len(piece) <= LABEL_CHARS and not prose)):
                words.append(piece)
            elif piece:  # a sentence: only its number runs are unbreakable
                words.extend(re.findall(rf"[{RUN_CHARS}]{{2,}}", piece))
    return words


def is_prose(text: str) -> bool:
    """True for free text: a line longer than two labels, or a piece longer than one."""
    if len(text) <= LABEL_CHARS:
        return False
    return any(len(line) > 2 * LABEL_CHARS or any(len(p.strip()) > LABEL_CHARS for p in _SPLIT.split(line))
               for line in text.split("\n"))


def allocate(total: float, minimums: Sequence[float], naturals: Sequence[float],
             preferences: Sequence[float]) -> list[float]:
    """Return column widths summing to ``total``.

    ``minimums``: what each column needs so that no word breaks; ``naturals``: what it needs
    for its widest cell on one line; ``preferences``: the template's relative widths.
    """
    n = len(minimums)
    if n == 0:
        return []
    prefs = [max(p, 0.0) for p in preferences] if len(preferences) == n else [1.0] * n
    if sum(prefs) <= 0:
        prefs = [1.0] * n
    mins = [float(m) for m in minimums]
    needed = sum(mins)
    if needed >= total:
        return [m * total / needed for m in mins]
    want = [max(m, nat) for m, nat in zip(mins, naturals)]
    widths = list(mins)
    # 1. grow the columns that still wrap towards one line per cell, by preference
    widths = _fill(widths, want, prefs, total)
    # 2. what is left: by preference, to all columns
    spare = total - sum(widths)
    if spare > 1e-9:
        weight = sum(prefs)
        widths = [w + spare * p / weight for w, p in zip(widths, prefs)]
    return widths


def _fill(widths: list[float], caps: Sequence[float], prefs: Sequence[float], total: float) -> list[float]:
    """Share ``total - sum(widths)`` among the columns below their cap, by preference (water-filling)."""
    widths = list(widths)
    for _ in range(len(widths) + 1):
        spare = total - sum(widths)
        open_ = [i for i, w in enumerate(widths) if caps[i] - w > 1e-9]
        if spare <= 1e-9 or not open_:
            break
        weight = sum(prefs[i] for i in open_) or float(len(open_))
        for i in open_:
            share = spare * (prefs[i] if weight else 1.0) / weight
            widths[i] = min(caps[i], widths[i] + share)
    return widths


def column_widths(
    total: float,
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    preferences: Sequence[float],
    measure: Callable[[str, bool], float],
    padding: float,
    smallest: float = SMALLEST,
    footer: Sequence[Sequence[str]] = (),
    words_of: Callable[..., list[str]] = unbreakable_words,
) -> tuple[list[float], float]:
    """Return the widths of a table's columns and the scale (≤ 1) of its text size.

    ``measure(text, bold)`` is the printed width of ``text`` at the table's size (``bold``:
    in the face of the header and ``footer`` rows); ``padding`` the horizontal space a cell
    takes besides its text (both margins and a little slack). Widths are proportional to the
    size, so a smaller size scales every measure. A column with free text in any cell is a
    prose column: only its number runs (and its header's words) must stay whole.
    ``words_of(text, prose=…)``: a cell's unbreakable words (:func:`unbreakable_words`).
    """
    n = len(header) or max((len(r) for r in rows), default=1)
    measured: dict[tuple[str, bool], float] = {}  # labels repeat down a column

    def width(text: str, bold: bool) -> float:
        key = (text, bold)
        found = measured.get(key)
        if found is None:
            found = measured[key] = measure(text, bold)
        return found

    prose = [any(is_prose(r[i]) for r in rows if i < len(r)) for i in range(n)]
    words = [0.0] * n
    lines = [0.0] * n
    cells: list[tuple[int, str, bool]] = [(i, h, True) for i, h in enumerate(header[:n])]
    cells += [(i, v, False) for r in rows for i, v in enumerate(r[:n])]
    cells += [(i, v, True) for r in footer for i, v in enumerate(r[:n])]
    for i, text, is_header in cells:
        if not text:
            continue
        found = words_of(text, prose=prose[i] and not is_header)
        if found == [text]:  # one word: the line is the word
            lines[i] = max(lines[i], w := width(text, is_header))
            words[i] = max(words[i], w)
            continue
        for word in found:
            words[i] = max(words[i], width(word, is_header))
        for line in text.split("\n"):
            lines[i] = max(lines[i], width(line, is_header))
    room = total - n * padding
    scale = 1.0
    if sum(words) > room > 0:
        scale = max(smallest, room / sum(words) * 0.999)
    widths = allocate(total, [w * scale + padding for w in words], [w * scale + padding for w in lines],
                      preferences)
    return widths, scale
