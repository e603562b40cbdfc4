"""One copy of each face in a collated box (``SharedFonts``), on pikepdf objects.

Before a PDF's pages are copied into a box, ``SharedFonts.adopt`` points each font of ours
(``/ABFace`` marker of a face of the box's ``FontSet``) in its page resources at the box's
one font per face and reads only the characters it draws (from what the renderer reported,
or from its ``ToUnicode`` map). qpdf then never copies the packets' font objects (their
``W`` arrays and programs were most of a packet's objects). ``finish`` fills each with the subset of the face holding
every character adopted for it (``GlobalCodeTTFont.subset``: same codes, same widths, so no
content stream changes). Fonts that are not adopted are copied as they are and merged
afterwards from their programs (``fontmerge.merge_font_subsets``). Which fonts are adopted
depends only on the fonts and the font set, so the output is reproducible.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import pikepdf
from pikepdf import Array, Dictionary, Name

from .fontprogram import _BFCHAR_DST_RE, _FACE_KEY, _cid2gid_stream, _load_registered, _source_key, _w_array

#: prefix of the placeholder names ``adopt`` leaves in a source's font dictionaries
_PLACEHOLDER = "/ABSharedFace."


def pdf_number(v: Any) -> int | Decimal:
    """A PDF number: an integer, else a real with at most three decimals."""
    f = float(v)
    return int(f) if f.is_integer() else Decimal(str(round(f, 3)))


def flate_stream(pdf: pikepdf.Pdf, data: bytes, level: int = 6, **extra: Any) -> pikepdf.Stream:
    """A /FlateDecode stream of ``data`` (compressed here, whole) in ``pdf``."""
    stream = pikepdf.Stream(pdf, zlib.compress(data, level))
    stream.Filter = Name.FlateDecode
    for key, value in extra.items():
        stream["/" + key] = value
    return stream


def page_font_dicts(page: Any) -> Any:
    """The font dictionary of a page (``pikepdf.Page`` or its dictionary), or None."""
    obj = page.obj if isinstance(page, pikepdf.Page) else page
    res = obj.get(Name.Resources)
    if not isinstance(res, Dictionary):
        return None
    fonts = res.get(Name.Font)
    return fonts if isinstance(fonts, Dictionary) else None


class SharedFonts:
    """One copy of each face for a box being collated into the pikepdf ``pdf``."""

    def __init__(self, pdf: pikepdf.Pdf, fonts: Any) -> None:
        self.pdf = pdf
        self.fonts = fonts
        self._sources: dict[str, Any] | None = None
        self._chars: dict[str, set[bytes]] = {}
        self._text: dict[str, set[str]] = {}  # characters reported by the renderer
        self._refs: dict[str, Any] = {}
        self._linked: set[tuple[int, int]] = set()
        self._done = False
        self._all_loaded = False

    # ------------------------------------------------------------------ adopting
    def adopt(self, source: pikepdf.Pdf, known: Sequence[tuple[str, str, str]] = ()) -> bool:
        """Point the fonts of ours in the page resources of ``source`` at the box's shared
        fonts, before its pages are copied into the box.

        ``known``: the file's fonts as its renderer reported them (``RenderResult.fonts``:
        resource name, face marker, characters); those are not read back from the file.
        A font dictionary of its own (indirect, as the renderer writes them) is copied into
        the box here, its fonts replaced by placeholder names first so that they are not
        copied; the pages copied later find that copy (qpdf copies each foreign object once)
        already pointing at the shared fonts. Returns True when a page has its font
        dictionary inline: then ``link`` must be called on each copied page.
        """
        if self._done:
            raise RuntimeError("SharedFonts.finish() was called already")
        given = self._given(known)
        seen: dict[tuple[int, int], str | None] = {}
        visited: set[tuple[int, int]] = set()
        inline = False
        for page in source.pages:
            fonts = page_font_dicts(page)
            if fonts is None:
                continue
            if fonts.is_indirect:  # the pages of a packet share one
                if fonts.objgen in visited:
                    continue
                visited.add(fonts.objgen)
            markers = self._placeholders(fonts, given, seen)
            if not markers:
                continue
            if fonts.is_indirect:
                copy = self.pdf.copy_foreign(fonts)
                for name, marker in markers.items():
                    copy[name] = self._shared_ref(marker)
            else:
                inline = True
        return inline

    def _given(self, known: Sequence[tuple[str, str, str]]) -> dict[str, str]:
        """{resource name: face marker} of the reported fonts of faces of the set (their
        characters noted)."""
        given: dict[str, str] = {}
        for name, marker, chars in known:
            if self._source(marker) is not None:
                given[name] = marker
                self._text.setdefault(marker, set()).update(chars)
        return given

    def _placeholders(self, fonts: Any, given: dict[str, str], seen: dict[tuple[int, int], str | None]
                      ) -> dict[str, str]:
        """Replace the fonts of ours in the font dictionary ``fonts`` (of a source) by
        placeholder names; return {resource name: face marker} of those replaced."""
        markers: dict[str, str] = {}
        for name in list(fonts.keys()):
            marker = given.get(name)
            if marker is None:
                font = fonts[name]
                if not isinstance(font, Dictionary):
                    continue
                key = font.objgen
                if key == (0, 0) or key not in seen:
                    marker = self._adopt(font)
                    if key != (0, 0):
                        seen[key] = marker
                else:
                    marker = seen[key]
            if marker is not None:
                fonts[name] = Name(_PLACEHOLDER + marker)
                markers[name] = marker
        return markers

    def link(self, page: pikepdf.Page) -> None:
        """Point a copied page's placeholders at the box's shared fonts (pages whose font
        dictionary is inline, see ``adopt``)."""
        fonts = page_font_dicts(page)
        if fonts is None:
            return
        if fonts.is_indirect:
            if fonts.objgen in self._linked:
                return
            self._linked.add(fonts.objgen)
        for name in list(fonts.keys()):
            value = fonts[name]
            if isinstance(value, Name) and str(value).startswith(_PLACEHOLDER):
                fonts[name] = self._shared_ref(str(value)[len(_PLACEHOLDER):])

    def adopt_font(self, font: Any) -> Any:
        """The box's shared font for ``font`` (a pikepdf font dictionary of any PDF), or None
        when it is not one of ours; the characters it draws join the shared font's."""
        marker = self._adopt(font)
        return None if marker is None else self._shared_ref(marker)

    def _adopt(self, font: Any) -> str | None:
        """The face marker of ``font`` when it is a font of ours (its characters noted)."""
        if self._done:
            raise RuntimeError("SharedFonts.finish() was called already")
        try:
            if font.get(Name.Subtype) != Name.Type0 or _FACE_KEY not in font:
                return None
            marker = str(font[_FACE_KEY])[1:]
            if self._source(marker) is None:
                return None
            data = font.ToUnicode.read_bytes()
        except Exception:  # noqa: BLE001 - anything unexpected is copied and merged as before
            return None
        # UTF-16 hex of the characters; decoded once per face in finish()
        self._chars.setdefault(marker, set()).update(_BFCHAR_DST_RE.findall(data))
        return marker

    def knows(self, marker: str) -> bool:
        """Whether ``marker`` names a face of the set (whose fonts can be shared)."""
        return self._source(marker) is not None

    def _shared_ref(self, marker: str) -> Any:
        """The placeholder font object of the face ``marker`` in the box (made on first use)."""
        ref = self._refs.get(marker)
        if ref is None:
            ref = self._refs[marker] = self.pdf.make_indirect(Dictionary())
        return ref

    def _source(self, marker: str) -> Any:
        """The loaded ``GlobalCodeTTFont`` of the face ``marker`` names, or None.

        Faces of the set not loaded yet (fallbacks) are loaded on the first unknown marker,
        so the answer does not depend on what this process happened to render before.
        """
        if self._sources is None:
            from . import fontmerge  # looked up at call time (tests replace it)

            self._sources = fontmerge._marker_sources(self.fonts)
        if marker not in self._sources and self.fonts is not None and not self._all_loaded:
            self._all_loaded = True
            for face in [*getattr(self.fonts, "faces", {}).values(), *getattr(self.fonts, "fallbacks", [])]:
                try:
                    font = _load_registered(face)
                except Exception:  # noqa: BLE001, S112 - an unloadable face offers nothing
                    continue
                key = _source_key(font)
                if key:
                    self._sources.setdefault(key, font)
        return self._sources.get(marker)

    # ------------------------------------------------------------------ writing
    def finish(self) -> None:
        """Write the shared fonts into their placeholders (once, after the last adopt).

        Each is the subset of its face holding every character adopted for it
        (``GlobalCodeTTFont.subset``), its program compressed whole.
        """
        self._done = True
        if not self._refs:
            return
        assert self._sources is not None
        for marker in sorted(self._refs):
            chars = {bytes.fromhex(h.decode()).decode("utf-16-be", "surrogatepass")
                     for h in self._chars.get(marker, ())} | self._text.get(marker, set())
            source = self._sources[marker]
            sub = source.subset(chars, spliced=False)
            target = self._refs[marker]
            for key, value in font_dictionary(self.pdf, source.face, sub).items():
                target[key] = value


def font_dictionary(pdf: pikepdf.Pdf, face: Any, sub: Any) -> Dictionary:
    """The Type0 font dictionary of ``sub`` (a ``FontSubset`` of ``face``) for ``pdf``:
    the objects ``GlobalCodeTTFont.addObjects`` writes, with the program compressed whole."""
    basefont = Name("/" + sub.basefont)
    descriptor = Dictionary({
        "/Type": Name.FontDescriptor,
        "/FontName": basefont,
        "/Flags": sub.flags,
        "/FontBBox": Array([round(v) for v in face.bbox]),
        "/ItalicAngle": pdf_number(face.italicAngle),
        "/Ascent": round(face.ascent),
        "/Descent": round(face.descent),
        "/CapHeight": round(face.capHeight),
        "/StemV": pdf_number(face.stemV),
        "/MissingWidth": round(face.defaultWidth),
        # level 6, as reportlab's PDFZCompress
        "/FontFile2": flate_stream(pdf, sub.program, Length1=len(sub.program)),
    })
    widths = [Array([pdf_number(w) for w in item]) if isinstance(item, list) else item
              for item in _w_array(sub.widths, sub.dw, nested=list)]
    cidfont = Dictionary({
        "/Type": Name.Font,
        "/Subtype": Name.CIDFontType2,
        "/BaseFont": basefont,
        "/CIDSystemInfo": Dictionary(Registry=pikepdf.String("Adobe"), Ordering=pikepdf.String("Identity"),
                                     Supplement=0),
        "/FontDescriptor": pdf.make_indirect(descriptor),
        "/DW": pdf_number(sub.dw),
        "/W": Array(widths),
        # mostly zeros (see addObjects)
        "/CIDToGIDMap": Name.Identity if sub.identity else flate_stream(pdf, _cid2gid_stream(sub.cid2gid), 1),
    })
    font = Dictionary({
        "/Type": Name.Font,
        "/Subtype": Name.Type0,
        "/BaseFont": basefont,
        "/Encoding": Name("/Identity-H"),
        "/DescendantFonts": Array([pdf.make_indirect(cidfont)]),
        "/ToUnicode": flate_stream(pdf, sub.tounicode),
    })
    if sub.marker:
        font[_FACE_KEY] = Name("/" + sub.marker)
    return font
