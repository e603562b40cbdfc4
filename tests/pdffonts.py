"""``font_report``: the fonts a PDF's pages use, like poppler's ``pdffonts`` (tests and
benchmarks read embedded fonts back with it)."""

from __future__ import annotations

import os
from typing import Any


def _font_file_of(font: Any) -> tuple[Any, Any] | tuple[None, None]:
    """(FontDescriptor, FontFile stream reference) of a simple or composite pypdf font."""
    d = font
    if font.get("/Subtype") == "/Type0":
        dfs = font.get("/DescendantFonts")
        if not dfs:
            return None, None
        d = dfs.get_object()[0].get_object()
    fd = d.get("/FontDescriptor")
    if fd is None:
        return None, None
    fd = fd.get_object()
    for k in ("/FontFile2", "/FontFile", "/FontFile3"):
        if k in fd:
            return fd, fd.raw_get(k)
    return fd, None


def font_report(pdf_path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Fonts used by the pages of a PDF, like ``pdffonts``.

    One dict per distinct font object: ``name`` (BaseFont), ``subtype`` (``Type0``,
    ``TrueType``, ``Type1``…; for Type0 the descendant's subtype in ``descendant``),
    ``embedded`` (bool), ``bytes`` (encoded size of the embedded program, 0 if none),
    ``program`` (object number of the embedded program or None) and ``object``.
    """
    from pypdf import PdfReader
    from pypdf.generic import DictionaryObject, IndirectObject

    reader = PdfReader(str(pdf_path))
    seen: dict[Any, dict[str, Any]] = {}

    def visit_resources(res: Any, depth: int = 0) -> None:
        if res is None or depth > 8:
            return
        res = res.get_object()
        fonts = res.get("/Font")
        if fonts is not None:
            for ref in fonts.get_object().values():
                key = ref.idnum if isinstance(ref, IndirectObject) else id(ref)
                if key in seen:
                    continue
                font = ref.get_object()
                _fd, ff = _font_file_of(font)
                sub = str(font.get("/Subtype", ""))[1:]
                desc = None
                if sub == "Type0":
                    try:
                        desc = str(font["/DescendantFonts"].get_object()[0].get_object()["/Subtype"])[1:]
                    except Exception:  # noqa: BLE001
                        desc = None
                seen[key] = {
                    "name": str(font.get("/BaseFont", ""))[1:],
                    "subtype": sub,
                    "descendant": desc,
                    "embedded": ff is not None,
                    "bytes": len(ff.get_object()._data) if ff is not None else 0,
                    "program": ff.idnum if isinstance(ff, IndirectObject) else None,
                    "object": key if isinstance(ref, IndirectObject) else None,
                }
        xobjs = res.get("/XObject")
        if xobjs is not None:
            for ref in xobjs.get_object().values():
                x = ref.get_object()
                if isinstance(x, DictionaryObject) and x.get("/Subtype") == "/Form":
                    visit_resources(x.get("/Resources"), depth + 1)

    for page in reader.pages:
        visit_resources(page.get("/Resources"))
    return list(seen.values())
