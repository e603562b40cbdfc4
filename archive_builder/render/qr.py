"""QR codes for packet covers: one matrix, drawn by the PDF and the Word writers alike.

zxing-cpp encodes (C++, ~0.15 ms; segno, pure Python, took ~1 ms a packet even with a fixed
mask); reportlab's QrCodeWidget took ~40 ms a packet, most of it building graphics shapes,
and would pull its default Helvetica into the page.
"""

from __future__ import annotations

import re
from functools import lru_cache

QUIET_ZONE = 4  # modules of white border the QR specification asks for

# zxing-cpp's image has 0 for a dark module and 255 for a light one
_MODULES = bytes.maketrans(b"\x00\xff", b"\x01\x00")


def _rows(text: str) -> list[bytes]:
    """The symbol's rows of modules (1 = dark), error correction level M, no border."""
    import zxingcpp

    symbol = zxingcpp.create_barcode(text, zxingcpp.BarcodeFormat.QRCode, ec_level="M")
    image = symbol.to_image(scale=1, add_quiet_zones=False)
    height, width = image.shape[:2]
    data = bytes(image).translate(_MODULES)  # type: ignore[call-overload]
    if len(data) != width * height or height != width:
        raise ValueError(f"unexpected QR image from zxing-cpp: {width}×{height}, {len(data)} bytes")
    return [data[r * width : (r + 1) * width] for r in range(height)]


@lru_cache(maxsize=256)
def qr_matrix(text: str) -> tuple[tuple[bool, ...], ...]:
    """Return the QR symbol's modules (True = dark), error correction level M, no border."""
    return tuple(tuple(bool(v) for v in row) for row in _rows(text))


_DARK = re.compile(rb"\x01+")


def qr_runs(text: str) -> tuple[int, list[tuple[int, int, int]]]:
    """The symbol's size in modules and ``(row, first column, length)`` of every horizontal
    run of dark modules, read straight from the encoder's rows with a regular expression
    (what the PDF draws; converting every module to a boolean first was much of its cost)."""
    rows = _rows(text)
    runs = [(r, m.start(), m.end() - m.start()) for r, row in enumerate(rows) for m in _DARK.finditer(row)]
    return len(rows), runs
