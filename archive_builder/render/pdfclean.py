"""Evidence PDFs reduced to what prints: page content only, nothing that acts.

An evidence PDF comes from outside the office (a bank, a scanner, a phone) and its pages are
placed into the archive, which is a legal record that leaves the office again. A PDF can carry
much more than its pages: actions that launch programs or open web addresses, JavaScript,
attached files, form fields, XFA forms. None of that may reach the archive.

:func:`sanitise` (qpdf, through pikepdf) writes a new PDF holding only the pages:

* annotations that print (a stamp, a filled-in form field, a signature's picture) are
  flattened into the page content first, with their appearance as the printer would show it;
* every annotation is then dropped (links included), as are the page's additional actions,
  thumbnails, metadata and piece information;
* the document catalog is not copied at all: open actions, document JavaScript, attached
  files, forms (AcroForm and XFA), outlines and named destinations stay behind;
* what remains reachable from the pages is searched once more, and any action dictionary,
  JavaScript, file specification or embedded file found on the way is cut out.

Streams are copied as they are (no decoding): a compressed bomb stays compressed here; the
callers bound the decoding of what they do read.
"""

from __future__ import annotations

import io
from typing import Any

#: what the clerk reads about each kind of removed content, in a stable order
LABELS = {
    "actions": "动作（链接、启动程序等）",
    "javascript": "JavaScript 脚本",
    "attachments": "附件",
    "forms": "表单域",
    "xfa": "XFA 表单",
    "annotations": "批注",
}
_ORDER = tuple(LABELS)

#: page keys kept: what defines where and what the page prints
_PAGE_KEYS = frozenset(
    {"/Type", "/Parent", "/Contents", "/Resources", "/MediaBox", "/CropBox", "/BleedBox",
     "/TrimBox", "/ArtBox", "/Rotate", "/Group", "/UserUnit"}
)
#: keys that hold actions or attachments wherever they appear
_ACTIVE_KEYS = {
    "/A": "actions", "/AA": "actions", "/OpenAction": "actions", "/JS": "javascript",
    "/JavaScript": "javascript", "/EF": "attachments", "/EmbeddedFiles": "attachments",
    "/RichMediaContent": "actions", "/URI": "actions", "/Launch": "actions",
}
_ACTION_TYPES = {
    "/JavaScript": "javascript", "/Launch": "actions", "/URI": "actions", "/SubmitForm": "forms",
    "/ResetForm": "forms", "/ImportData": "forms", "/GoToR": "actions", "/GoToE": "actions",
    "/Rendition": "actions", "/Sound": "actions", "/Movie": "actions", "/Hide": "actions",
    "/Named": "actions", "/SetOCGState": "actions", "/Trans": "actions", "/GoTo3DView": "actions",
    "/RichMediaExecute": "actions", "/Thread": "actions", "/GoTo": "actions",
}
_ACTIVE_TYPES = {"/Action": "actions", "/Filespec": "attachments", "/EmbeddedFile": "attachments"}
#: nesting deeper than this is not a real document
MAX_DEPTH = 100


class Unreadable(Exception):
    """qpdf could not open or write the PDF; ``encrypted`` if a password is needed."""

    def __init__(self, message: str, *, encrypted: bool = False) -> None:
        super().__init__(message)
        self.encrypted = encrypted


def describe(removed: tuple[str, ...]) -> str:
    """The Chinese list of removed kinds: 「JavaScript 脚本、附件」."""
    return "、".join(LABELS[k] for k in removed if k in LABELS)


def sanitise(data: bytes) -> tuple[bytes, tuple[str, ...]]:
    """Return the PDF with page content only, and the kinds of content removed (see LABELS)."""
    import pikepdf

    try:
        source = pikepdf.open(io.BytesIO(data), password="")
    except pikepdf.PasswordError as e:
        raise Unreadable("password", encrypted=True) from e
    except Exception as e:  # qpdf raises PdfError and others on broken files
        raise Unreadable(str(e)[:200]) from e
    removed: set[str] = set()
    try:
        with source:
            _note_catalog(source.Root, removed)
            if "/AcroForm" in source.Root:
                try:
                    source.generate_appearance_streams()
                except Exception:  # noqa: BLE001, S110 - fields keep whatever appearance they had
                    pass
            for page in source.pages:
                for annot in _annotations(page.obj):
                    _note_annotation(annot, removed)
            # appearances of annotations that print become page content
            source.flatten_annotations("print")
            out = pikepdf.new()
            with out:
                for page in source.pages:
                    obj = page.obj
                    if "/AA" in obj:
                        removed.add("actions")
                    if "/Annots" in obj:
                        del obj["/Annots"]
                    for key in list(obj.keys()):
                        if key not in _PAGE_KEYS:
                            del obj[key]
                out.pages.extend(source.pages)
                seen: set[tuple[int, int]] = set()
                for page in out.pages:
                    for key in list(page.obj.keys()):
                        if key != "/Parent":
                            _scrub(page.obj[key], removed, seen, 0)
                buf = io.BytesIO()
                out.save(
                    buf,
                    static_id=True,
                    stream_decode_level=pikepdf.StreamDecodeLevel.none,
                    compress_streams=False,
                    object_stream_mode=pikepdf.ObjectStreamMode.disable,
                )
    except Unreadable:
        raise
    except Exception as e:
        raise Unreadable(str(e)[:200]) from e
    return buf.getvalue(), tuple(k for k in _ORDER if k in removed)


def _annotations(page: Any) -> list[Any]:
    import pikepdf

    annots = page.get("/Annots")
    if not isinstance(annots, pikepdf.Array):
        return []
    return [a for a in annots if isinstance(a, pikepdf.Dictionary)]


def _note_catalog(root: Any, removed: set[str]) -> None:
    import pikepdf

    if "/OpenAction" in root or "/AA" in root:
        removed.add("actions")
    names = root.get("/Names")
    if isinstance(names, pikepdf.Dictionary):
        if "/JavaScript" in names:
            removed.add("javascript")
        if "/EmbeddedFiles" in names:
            removed.add("attachments")
    form = root.get("/AcroForm")
    if isinstance(form, pikepdf.Dictionary):
        fields = form.get("/Fields")
        if isinstance(fields, pikepdf.Array) and len(fields):
            removed.add("forms")
        if "/XFA" in form:
            removed.add("xfa")


def _note_annotation(annot: Any, removed: set[str]) -> None:
    subtype = str(annot.get("/Subtype", ""))
    if subtype == "/Widget":
        removed.add("forms")
    elif subtype == "/FileAttachment":
        removed.add("attachments")
    elif subtype == "/Link":
        removed.add("actions")
    elif subtype not in ("/Popup",):
        removed.add("annotations")
    action = annot.get("/A")
    if action is not None:
        kind = _action_kind(action)
        removed.add(kind or "actions")
    if "/AA" in annot:
        removed.add("actions")


def _action_kind(value: Any) -> str | None:
    """The kind of an action, file specification or embedded file; None for anything else."""
    import pikepdf

    if not isinstance(value, (pikepdf.Dictionary, pikepdf.Stream)):
        return None
    try:
        s = value.get("/S")
        if s is not None and str(s) in _ACTION_TYPES:
            return _ACTION_TYPES[str(s)]
        t = value.get("/Type")
        if t is not None and str(t) in _ACTIVE_TYPES:
            return _ACTIVE_TYPES[str(t)]
    except Exception:  # noqa: BLE001 - a value of an odd type is not an action
        return None
    return None


def _scrub(value: Any, removed: set[str], seen: set[tuple[int, int]], depth: int) -> None:
    """Cut action, script and attachment entries out of everything reachable from ``value``."""
    import pikepdf

    if depth > MAX_DEPTH:
        raise Unreadable("nesting too deep")
    if isinstance(value, (pikepdf.Dictionary, pikepdf.Stream, pikepdf.Array)):
        if value.is_indirect:
            if value.objgen in seen:
                return
            seen.add(value.objgen)
    else:
        return
    if isinstance(value, pikepdf.Array):
        for index in range(len(value)):
            item = value[index]
            kind = _action_kind(item)
            if kind is not None:
                removed.add(kind)
                value[index] = None
            else:
                _scrub(item, removed, seen, depth + 1)
        return
    for key in list(value.keys()):
        if key in ("/Parent", "/Length", "/Filter", "/DecodeParms"):
            continue
        if key in _ACTIVE_KEYS:
            removed.add(_ACTIVE_KEYS[key])
            del value[key]
            continue
        item = value[key]
        kind = _action_kind(item)
        if kind is not None:
            removed.add(kind)
            del value[key]
        else:
            _scrub(item, removed, seen, depth + 1)
