"""Evidence PDFs: opening them (decrypted when the password is empty), checking that a page
can be merged and that its fonts are embedded, and the manifest entries of its pages.

A page that uses a font without an embedded program is rasterised by the cache instead:
the archive requires every font embedded.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any

from .evidenceassets import HINT_ENCRYPTED, REASON_CORRUPT, REASON_ENCRYPTED, REASON_PDF_EMPTY, _Unusable

logger = logging.getLogger(__name__)


def open_evidence_pdf(source: Path) -> Any:
    """Return a ``pypdf.PdfReader`` for an evidence PDF, decrypted if the password is empty.

    Owner-password-only PDFs (bank statements) are common; the writer must decrypt them
    the same way before merging pages.
    """
    from pypdf import PdfReader

    reader = PdfReader(source, strict=False)
    if reader.is_encrypted:
        reader.decrypt("")
    return reader


MAX_FILTERS = 8


def _trial_merge(page: Any) -> None:
    """Do to ``page`` what the PDF writer will do (crop box, rotation, decoding its content
    and merging it into a page), so that a page that cannot be placed fails here, as this
    file's placeholder, and not later in the household's packet. pypdf bounds the decoded
    size of every stream (a flate bomb raises instead of filling the memory)."""
    from pypdf import PdfWriter, Transformation
    from pypdf.generic import ArrayObject

    box = page.cropbox
    for value in (box.left, box.bottom, box.width, box.height):
        float(value)
    int(page.get("/Rotate", 0) or 0)
    contents = page.get("/Contents")
    streams = contents.get_object() if contents is not None else None
    for stream in streams if isinstance(streams, ArrayObject) else [streams]:
        stream = stream.get_object() if stream is not None else None
        filters = stream.get("/Filter") if stream is not None and hasattr(stream, "get") else None
        filters = filters.get_object() if filters is not None else None
        if isinstance(filters, ArrayObject) and len(filters) > MAX_FILTERS:
            raise ValueError(f"{len(filters)} filters on one content stream")
    target = PdfWriter().add_blank_page(100, 100)
    target.merge_transformed_page(page, Transformation().scale(0.5, 0.5), over=True, expand=False)


_FONT_FILES = ("/FontFile", "/FontFile2", "/FontFile3")


def fonts_embedded(page: Any) -> bool:
    """True if every font a ``pypdf`` page draws with carries its embedded program.

    Looks at the page's resources and, recursively, at those of Form XObjects, tiling
    patterns, soft-mask groups, Type 3 glyph procedures and annotation appearances (pypdf
    merges annotations too).  A font without a descriptor (one of the standard 14) or whose
    descriptor has no ``/FontFile``, ``/FontFile2`` or ``/FontFile3`` is not embedded.  A
    structure that cannot be read counts as not embedded: rasterising is the safe side.
    """
    from pypdf.generic import ArrayObject, DictionaryObject, IndirectObject

    seen: set[int] = set()

    def once(ref: Any) -> bool:
        """True the first time an indirect object is met (cycles, shared resources)."""
        if isinstance(ref, IndirectObject):
            if ref.idnum in seen:
                return False
            seen.add(ref.idnum)
        return True

    def font_ok(ref: Any) -> bool:
        if not once(ref):
            return True
        font = ref.get_object()
        if not isinstance(font, DictionaryObject):
            return False
        subtype = font.get("/Subtype")
        if subtype == "/Type3":  # glyphs are content streams; their resources may hold fonts
            return resources_ok(font.get("/Resources"))
        if subtype == "/Type0":
            descendants = font.get("/DescendantFonts")
            descendants = descendants.get_object() if descendants is not None else None
            if not isinstance(descendants, ArrayObject) or not descendants:
                return False
            font = descendants[0].get_object()
        descriptor = font.get("/FontDescriptor")
        if descriptor is None:
            return False
        descriptor = descriptor.get_object()
        return isinstance(descriptor, DictionaryObject) and any(k in descriptor for k in _FONT_FILES)

    def stream_ok(ref: Any) -> bool:
        if ref is None or not once(ref):
            return True
        obj = ref.get_object()
        if not isinstance(obj, DictionaryObject):
            return True
        return resources_ok(obj.get("/Resources"))

    def resources_ok(ref: Any) -> bool:
        if ref is None or not once(ref):
            return True
        res = ref.get_object()
        if not isinstance(res, DictionaryObject):
            return True
        fonts = res.get("/Font")
        if fonts is not None and not all(font_ok(f) for f in fonts.get_object().values()):
            return False
        for group in ("/XObject", "/Pattern"):
            objs = res.get(group)
            if objs is not None and not all(stream_ok(x) for x in objs.get_object().values()):
                return False
        states = res.get("/ExtGState")
        for state in (states.get_object().values() if states is not None else ()):
            state = state.get_object()
            mask = state.get("/SMask") if isinstance(state, DictionaryObject) else None
            mask = mask.get_object() if mask is not None else None
            if isinstance(mask, DictionaryObject) and not stream_ok(mask.get("/G")):
                return False
        return True

    def annotations_ok() -> bool:
        annots = page.get("/Annots")
        for annot in (annots.get_object() if annots is not None else ()):
            annot = annot.get_object()
            ap = annot.get("/AP") if isinstance(annot, DictionaryObject) else None
            ap = ap.get_object() if ap is not None else None
            if not isinstance(ap, DictionaryObject):
                continue
            for appearance in ap.values():
                appearance = appearance.get_object()
                # either a stream or a dictionary of states → streams
                if hasattr(appearance, "get_data") or not isinstance(appearance, DictionaryObject):
                    streams = [appearance]
                else:
                    streams = list(appearance.values())
                if not all(stream_ok(a) for a in streams):
                    return False
        return True

    try:
        return resources_ok(page.get("/Resources")) and annotations_ok()
    except Exception:  # a broken structure: rasterise rather than trust it
        logger.debug("font check of an evidence PDF page failed", exc_info=True)
        return False


def _pdf_entries(data: bytes) -> list[dict[str, Any]]:
    from pypdf import PdfReader
    from pypdf.errors import DependencyError

    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            try:
                decrypted = reader.decrypt("")
            except DependencyError as e:
                raise _Unusable(
                    "PDF 已加密，且缺少解密组件",
                    "请安装 cryptography（pip install cryptography）。",
                ) from e
            if not decrypted:
                raise _Unusable(REASON_ENCRYPTED, HINT_ENCRYPTED)
        entries = []
        for index, page in enumerate(reader.pages):
            box = page.mediabox
            width, height = abs(float(box.width)), abs(float(box.height))
            if width <= 0 or height <= 0:
                raise _Unusable(REASON_CORRUPT)
            rotation = page.rotation % 360 if page.rotation % 90 == 0 else 0
            _trial_merge(page)
            if rotation in (90, 270):
                width, height = height, width
            entries.append(
                {
                    "kind": "pdf",
                    "page": index,
                    "width": width,
                    "height": height,
                    "rotation": rotation,
                    "embedded": fonts_embedded(page),
                }
            )
    except _Unusable:
        raise
    except Exception as e:  # pypdf raises many types on broken files
        logger.debug("evidence PDF failed", exc_info=True)
        raise _Unusable(REASON_CORRUPT) from e
    if not entries:
        raise _Unusable(REASON_PDF_EMPTY)
    return entries
