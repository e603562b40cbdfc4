"""Font programs: the reportlab font class that writes document-independent glyph codes,
and the embedded TrueType subsets it writes.

See the docstring of ``archive_builder.render.fonts`` for why glyph codes are a function of
the font file only (``GlobalCodeTTFont``); ``fontmerge`` relies on it to share one font per
face among the packets of a box.

The parts: ``ttfont`` (the reportlab font class, imported on first use), ``sfntprogram``
(the TrueType subset programs and the PDF font objects' pieces), ``facecache`` (reportlab's
parse of a face, cached on disk). This module holds what they share and what fonts and
fontmerge call: ``GlobalCodeTTFont``, ``_load_registered``, ``FontSubset``, the face key.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .fontfiles import _LOCK, _TTFONTS, FontFace, _file_sha256

# fontmerge and the tests take these from here (they live in sfntprogram with the subset programs)
from .sfntprogram import (  # noqa: F401
    _BFCHAR_DST_RE,
    _BFCHAR_RE,
    _CMAP_MARKER,
    _base_tables_from_face,
    _build_program,
    _cid2gid_stream,
    _component_offsets,
    _dw,
    _program_identity,
    _subset_tag,
    _tounicode_cmap,
    _w_array,
)


class _DocState:
    __slots__ = ("__weakref__", "internalName", "used")

    def __init__(self) -> None:
        self.used: set[str] = set()
        self.internalName: str | None = None


@dataclass(frozen=True)
class FontSubset:
    """An embedded subset of a face (``GlobalCodeTTFont.subset``), writer-independent."""

    program: bytes  # the TrueType program
    flate: bytes | None  # its zlib stream when spliced from cached glyph blocks, else None
    basefont: str  # "ABCDEF+PostScriptName"
    flags: int
    widths: dict[int, float]  # cid -> width (1/1000 em)
    dw: int | float
    cid2gid: dict[int, int]
    tounicode: bytes  # the ToUnicode CMap
    text: str  # the characters drawn, sorted
    marker: str  # the face's /ABFace value ("" for a font without a source file)

    @property
    def identity(self) -> bool:
        return all(cid == g for cid, g in self.cid2gid.items())








#: Private key of every Type0 font written by ``GlobalCodeTTFont``: a name identifying the
#: font file (sha256 of its bytes), the face index and the face's glyph-independent tables.
#: ``merge_font_subsets`` uses it to take the union's glyphs straight from that font file
#: (loaded anyway by the collating process) instead of decompressing every packet's program.
_FACE_KEY = "/ABFace"


def _source_key(font: Any) -> str:
    """The ``/ABFace`` value of a ``GlobalCodeTTFont`` (cached on the font; '' if unknown)."""
    key = getattr(font, "_ab_source_key", None)
    if key is None:
        face = font.ab_face
        try:
            sha = _file_sha256(Path(face.path))
        except OSError:
            key = ""
        else:
            h = hashlib.sha256(b"archive-builder face v1\n")
            h.update(f"{sha}|{face.subfont_index}|".encode())
            h.update(_program_identity(_base_tables_from_face(font.face)))
            key = "AB" + h.hexdigest()[:32]
        font._ab_source_key = key
    return str(key)


def GlobalCodeTTFont(name: str, face: FontFace) -> Any:
    """Create the reportlab font for ``face`` (``ttfont`` is imported here, when a font is
    first made: importing reportlab's TrueType support is the costly part of importing fonts)."""
    from .ttfont import _GlobalCodeTTFont

    return _GlobalCodeTTFont(name, face)


def _load_registered(face: FontFace) -> Any:
    """Load (once per process) and register the reportlab font of ``face``."""
    from reportlab.pdfbase import pdfmetrics

    with _LOCK:
        font = _TTFONTS.get(face.rl_name)
        if font is not None and Path(font.ab_face.path) == Path(face.path) \
                and font.ab_face.subfont_index == face.subfont_index:
            if pdfmetrics._fonts.get(face.rl_name) is not font:
                pdfmetrics._fonts[face.rl_name] = font
            return font
        font = GlobalCodeTTFont(face.rl_name, face)
        pdfmetrics.registerFont(font)
        if pdfmetrics._fonts.get(face.rl_name) is not font:
            # another TTFont with the same PostScript name was registered first; reportlab
            # would alias ours to it, which would give different codes: register ours directly
            pdfmetrics._fonts[face.rl_name] = font
        _TTFONTS[face.rl_name] = font
        return font




#: attribute of a reportlab document listing its fonts of ours (see ``RenderResult.fonts``)
_DOC_FONTS = "_ab_fonts"

