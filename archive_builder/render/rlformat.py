"""reportlab as we write with it, switched on only for the duration of a document (``settings``).

Three process-global reportlab settings are changed, within ``with settings():`` and nowhere
else, so a process that writes a PDF with reportlab outside it (a report, a test's fixture)
gets reportlab's own behaviour:

- **memoised formatting** (byte-neutral): reportlab writes every PDF object through
  ``pdfdoc.format``; each dictionary key goes through ``PDFName`` (a character-by-character
  escape) and the ``extpdfdoc`` codec, each number through ``fp_str``. A packet has ~45
  objects but ~770 such calls, nearly all on the same few dozen names and numbers. For a
  string or a number the bytes depend on nothing else, so they are computed once per process
  (the memos live as long as the process); everything else goes to reportlab's function.
- **Flate-only streams** (``rl_config.useA85 = 0``): ASCII85 makes reportlab slower and files
  larger; nothing we write needs 7-bit streams.
- **zlib level 1** for the streams reportlab compresses (page content, ToUnicode maps, box
  pages) instead of 6: page content streams are ~2 % of a packet's bytes; level 1 halves
  their compression time for ~1 KB more a packet.

Every canvas of a build (packets, box pages, page-number stamps, spines) is written inside
``settings()``, so the same input gives the same bytes whichever process writes it.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

#: strings longer than this are encoded each time (names and operators are short)
_MAX_KEY = 128
#: entries per memo before it is emptied (a long build meets a bounded set of names)
_MAX_ENTRIES = 50_000
#: zlib level of the streams reportlab compresses inside ``settings()``
FLATE_LEVEL = 1
#: False: ``settings()`` leaves formatting to reportlab (tests compare the bytes both ways)
MEMO = True

_encoded: dict[Any, bytes] = {}
_names: dict[str, str] = {}
_depth = 0


def _memoised(plain_format: Any, plain_name: Any) -> tuple[Any, Any]:
    """Return memoising versions of reportlab's ``pdfdoc.format`` and ``pdfdoc.PDFName``."""
    default_lo, default_hi = plain_name.__defaults__ or (chr(0x21), chr(0x7E))

    def format(element: Any, document: Any, toplevel: int = 0) -> Any:
        kind = type(element)
        if kind is str:
            if len(element) > _MAX_KEY:
                return plain_format(element, document, toplevel)
            key: Any = element
        elif kind is int or kind is float:
            key = (kind, element)
        else:
            return plain_format(element, document, toplevel)
        data = _encoded.get(key)
        if data is None:
            data = plain_format(element, document, toplevel)
            if len(_encoded) >= _MAX_ENTRIES:
                _encoded.clear()
            _encoded[key] = data
        return data

    def PDFName(data: str, lo: str = default_lo, hi: str = default_hi) -> str:
        if lo != default_lo or hi != default_hi or type(data) is not str:
            return plain_name(data, lo, hi)
        name = _names.get(data)
        if name is None:
            name = plain_name(data)
            if len(_names) >= _MAX_ENTRIES:
                _names.clear()
            _names[data] = name
        return name

    return format, PDFName


def _encode(self: Any, text: Any) -> bytes:
    if isinstance(text, str):
        text = text.encode("utf8")
    return zlib.compress(text, FLATE_LEVEL)


@contextmanager
def settings() -> Iterator[None]:
    """Write with reportlab as the module docstring says until the block ends (re-entrant)."""
    global _depth
    if _depth:
        _depth += 1
        try:
            yield
        finally:
            _depth -= 1
        return
    from reportlab import rl_config
    from reportlab.pdfbase import pdfdoc

    stream_filter = pdfdoc.PDFStreamFilterZCompress
    saved = (pdfdoc.format, pdfdoc.PDFName, stream_filter.encode, rl_config.useA85)
    if MEMO:
        pdfdoc.format, pdfdoc.PDFName = _memoised(saved[0], saved[1])
    stream_filter.encode = _encode  # type: ignore[method-assign]
    rl_config.useA85 = 0
    _depth = 1
    try:
        yield
    finally:
        _depth = 0
        pdfdoc.format, pdfdoc.PDFName, stream_filter.encode, rl_config.useA85 = saved  # type: ignore[method-assign]
