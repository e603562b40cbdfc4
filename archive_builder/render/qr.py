"""QR codes for packet covers: one matrix, drawn by the PDF and the Word writers alike.

segno encodes (pure Python, ~3 ms); reportlab's QrCodeWidget took ~40 ms a packet, most of
it building graphics shapes, and would pull its default Helvetica into the page.
"""

from __future__ import annotations

import re
from functools import lru_cache

QUIET_ZONE = 4  # modules of white border the QR specification asks for


def _rows(text: str) -> tuple[bytearray, ...]:
    """The symbol's rows of modules (1 = dark), error correction level M, no border."""
    import segno

    # A fixed mask: choosing the "best" of eight costs most of the encoding time, and every
    # reader decodes any mask (the decode-back tests check it).
    symbol = segno.make(text, error="m", micro=False, boost_error=False, mask=0)
    return tuple(symbol.matrix)


@lru_cache(maxsize=256)
def qr_matrix(text: str) -> tuple[tuple[bool, ...], ...]:
    """Return the QR symbol's modules (True = dark), error correction level M, no border."""
    return tuple(tuple(bool(v) for v in row) for row in _rows(text))


_DARK = re.compile(rb"\x01+")


def qr_runs(text: str) -> tuple[int, list[tuple[int, int, int]]]:
    """The symbol's size in modules and ``(row, first column, length)`` of every horizontal
    run of dark modules, read straight from the encoder's rows with a regular expression
    (what the PDF draws; converting every module to a boolean first was a third of it)."""
    rows = _rows(text)
    runs = [(r, m.start(), m.end() - m.start()) for r, row in enumerate(rows) for m in _DARK.finditer(row)]
    return len(rows), runs
