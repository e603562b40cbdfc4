"""reportlab's object serialisation with its repeated work memoised (the same bytes out).

reportlab writes every PDF object through ``pdfdoc.format``: each dictionary key goes
through ``PDFName`` (a character-by-character escape) and the ``extpdfdoc`` codec, each
number through ``fp_str``. A packet has ~45 objects but ~770 such calls, a sixth of its
rendering time, nearly all on the same few dozen names and numbers. ``install()`` puts
memoising versions of ``pdfdoc.format`` and ``pdfdoc.PDFName`` in their place: for a
string or a number the bytes depend on nothing else, so they are computed once per
process; everything else goes to reportlab's own function. The output is byte-for-byte
what reportlab writes (tested on whole packets).
"""

from __future__ import annotations

from typing import Any

#: strings longer than this are encoded each time (names and operators are short)
_MAX_KEY = 128
#: entries per memo before it is emptied (a long build meets a bounded set of names)
_MAX_ENTRIES = 50_000


def install() -> None:
    """Replace ``pdfdoc.format`` and ``pdfdoc.PDFName`` with memoising versions (once)."""
    from reportlab.pdfbase import pdfdoc

    if getattr(pdfdoc.format, "_ab_memoised", False):
        return
    plain_format = pdfdoc.format
    plain_name = pdfdoc.PDFName
    encoded: dict[Any, bytes] = {}
    names: dict[str, str] = {}
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
        data = encoded.get(key)
        if data is None:
            data = plain_format(element, document, toplevel)
            if len(encoded) >= _MAX_ENTRIES:
                encoded.clear()
            encoded[key] = data
        return data

    def PDFName(data: str, lo: str = default_lo, hi: str = default_hi) -> str:
        if lo != default_lo or hi != default_hi or type(data) is not str:
            return plain_name(data, lo, hi)
        name = names.get(data)
        if name is None:
            name = plain_name(data)
            if len(names) >= _MAX_ENTRIES:
                names.clear()
            names[data] = name
        return name

    format._ab_memoised = True  # type: ignore[attr-defined]
    format.plain = plain_format  # type: ignore[attr-defined]
    PDFName.plain = plain_name  # type: ignore[attr-defined]
    pdfdoc.format = format
    pdfdoc.PDFName = PDFName


def uninstall() -> None:
    """Put reportlab's own functions back (tests compare both)."""
    from reportlab.pdfbase import pdfdoc

    if getattr(pdfdoc.format, "_ab_memoised", False):
        pdfdoc.format = pdfdoc.format.plain  # type: ignore[attr-defined]
        pdfdoc.PDFName = pdfdoc.PDFName.plain  # type: ignore[attr-defined]


#: zlib level of the streams reportlab compresses (page content, ToUnicode maps, box pages)
FLATE_LEVEL = 1


def fast_flate() -> None:
    """Compress reportlab's streams at ``FLATE_LEVEL`` instead of zlib's default 6.

    Page content streams are ~2 % of a packet's bytes and level 6 took 0.58 ms a packet of
    the ~0.3 ms level 1 needs, for 12 % fewer bytes of those streams (~1 KB a packet). The
    memo above is byte-neutral; this is not, so it is a separate switch (tests compare
    ``install``/``uninstall`` under it).
    """
    import zlib

    from reportlab.pdfbase import pdfdoc

    cls = pdfdoc.PDFStreamFilterZCompress
    if getattr(cls.encode, "_ab_level", None) == FLATE_LEVEL:
        return

    def encode(self: Any, text: Any) -> bytes:
        if isinstance(text, str):
            text = text.encode("utf8")
        return zlib.compress(text, FLATE_LEVEL)

    encode._ab_level = FLATE_LEVEL  # type: ignore[attr-defined]
    cls.encode = encode  # type: ignore[method-assign]
