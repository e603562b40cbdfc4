"""Copy the pages of our own packet PDFs into a box without a general PDF parser.

Packets written by the renderer (reportlab, ``render/pdf.py``) have one fixed shape: a
classic xref table, a flat page tree, and pages whose resources are one font dictionary
(fonts of ours, marked ``/ABFace``), image XObjects and a ProcSet. For such a packet
collation needs no object model: content streams and images are copied as bytes, the page
dictionaries are rebuilt from a handful of tokens and the fonts are pointed at the box's
shared fonts. pypdf parsed ~45 objects a packet to do the same, ~40 % of writing a box.

Anything else gives ``None`` and collation takes pypdf's route: a packet pypdf rewrote
(an evidence PDF merged in), strings or references where ours have none, unknown resource
kinds, a font that is not one of the box's faces, a damaged file. Which route a packet
takes depends only on its bytes (never on what this process rendered), so a box is
written the same whether its packets come from this build or an earlier one.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pypdf import PageObject
from pypdf.generic import (
    ArrayObject,
    DictionaryObject,
    FloatObject,
    NameObject,
    NumberObject,
    PdfObject,
)

__all__ = ["PageCountMismatch", "RawStream", "append_packet"]

_HEAD = b"%PDF-1."
_MARK = b"ReportLab Generated PDF document"
_STARTXREF_RE = re.compile(rb"startxref\s+(\d+)\s+%%EOF\s*$")
_ROOT_RE = re.compile(rb"/Root\s+(\d+)\s+0\s+R")
# names, numbers, delimiters and the R of a reference; nothing else occurs in our dictionaries
# (a name with any other character, e.g. a #xx escape, is left to pypdf, which decodes it)
_TOKEN_RE = re.compile(
    rb"(<<|>>|\[|\])|/([A-Za-z0-9._+\-]*)(?![^\s/\[\]<>])|([-+]?(?:\d+\.?\d*|\.\d+))|(R)(?=[\s/\[\]<>]|$)|(\S)"
)
_PAGE_KEYS = frozenset(("Type", "Contents", "MediaBox", "Parent", "Resources", "Rotate", "Trans"))
_RESOURCE_KEYS = frozenset(("Font", "ProcSet", "XObject"))
_CONTENT_KEYS = frozenset(("Filter", "Length"))
_IMAGE_KEYS = frozenset(("Type", "Subtype", "Width", "Height", "BitsPerComponent", "ColorSpace", "Filter",
                         "DecodeParms", "Decode", "Length"))


class NotOurs(Exception):
    """The packet is not in the renderer's shape: collate it with pypdf."""


class PageCountMismatch(ValueError):
    """The packet has another number of pages than its caller expects (nothing was added)."""


@dataclass(frozen=True)
class _Ref:
    num: int


class _Name(str):
    """A PDF name (without the slash), to tell it from other values."""


def _parse(text: bytes) -> Any:
    """The value of a dictionary or array of names, numbers and references.

    Numbers stay ``bytes`` (their text: FloatObject keeps it), names are ``_Name``,
    references ``_Ref``, dictionaries ``dict`` and arrays ``list``. Memoised: the packets
    of a village repeat most of their dictionaries byte for byte (the catalog, the page
    tree, pages with the same object numbers); the values are shared, so callers only
    read them.
    """
    value = _PARSED.get(text)
    if value is None:
        value = _parse_text(text)
        if len(_PARSED) >= 4096:
            _PARSED.clear()
        _PARSED[text] = value
    return value


_PARSED: dict[bytes, Any] = {}


def _parse_text(text: bytes) -> Any:
    root: list[Any] = []
    stack: list[tuple[list[Any], bool]] = []  # open containers (items, is a dictionary)
    items, in_dict = root, False
    for delim, name, number, ref, other in _TOKEN_RE.findall(text):
        if name or not (delim or number or ref or other):  # a name ("/" alone: the empty one)
            items.append(_Name(name.decode("latin-1")))
        elif number:
            items.append(number)
        elif delim == b"<<" or delim == b"[":
            stack.append((items, in_dict))
            items, in_dict = [], delim == b"<<"
        elif delim:
            if not stack or in_dict != (delim == b">>"):
                raise NotOurs("unbalanced")
            value: Any = items
            if in_dict:
                keys = items[0::2]
                if len(items) % 2 or not all(type(k) is _Name for k in keys):
                    raise NotOurs("bad dictionary")
                value = dict(zip(keys, items[1::2]))
                if len(value) != len(keys):
                    raise NotOurs("repeated key")
            items, in_dict = stack.pop()
            items.append(value)
        elif ref:
            if len(items) < 2 or not all(type(t) is bytes and b"." not in t for t in items[-2:]):
                raise NotOurs("stray R")
            items[-2:] = [_Ref(int(items[-2]))]
        else:
            raise NotOurs("unexpected token")
    if stack or len(root) != 1:
        raise NotOurs("not one value")
    return root[0]


def _pdf(value: Any) -> Any:
    """A pypdf object for a parsed value without references."""
    if isinstance(value, _Name):
        return NameObject("/" + value)
    if isinstance(value, bytes):
        return FloatObject(value.decode("ascii")) if b"." in value else NumberObject(int(value))
    if isinstance(value, list):
        return ArrayObject(_pdf(v) for v in value)
    if isinstance(value, dict):
        return DictionaryObject({NameObject("/" + k): _pdf(v) for k, v in value.items()})
    raise NotOurs("reference where none belongs")


def _number(value: Any) -> float:
    if not isinstance(value, bytes):
        raise NotOurs("not a number")
    return float(value)


class RawStream(PdfObject):
    """A stream object written as the bytes it had in its packet (no references inside)."""

    def __init__(self, head: bytes, data: bytes) -> None:
        self.raw = b"".join((head, b"\nstream\n", data, b"\nendstream"))
        self.indirect_reference = None

    def write_to_stream(self, stream: Any, encryption_key: Any = None) -> None:
        stream.write(self.raw)

    def clone(self, pdf_dest: Any, force_duplicate: bool = False, ignore_fields: Any = ()) -> RawStream:
        copy = RawStream.__new__(RawStream)
        copy.raw = self.raw
        copy.indirect_reference = None
        return copy

    def hash_bin(self) -> int:
        return hash((RawStream, self.raw))


class _Packet:
    """Objects of one packet, located through its xref table."""

    def __init__(self, data: bytes) -> None:
        if not data.startswith(_HEAD) or _MARK not in data[:64]:
            raise NotOurs("not written by the renderer")
        m = _STARTXREF_RE.search(data, max(0, len(data) - 64))
        if m is None:
            raise NotOurs("no startxref")
        xref = int(m.group(1))
        if data[xref : xref + 5] != b"xref\n":
            raise NotOurs("no xref table")
        line_end = data.find(b"\n", xref + 5)
        head = data[xref + 5 : line_end].split()
        if len(head) != 2 or head[0] != b"0":
            raise NotOurs("xref with several sections")
        count = int(head[1])
        table = data[line_end + 1 : line_end + 1 + 20 * count]
        if len(table) != 20 * count:
            raise NotOurs("short xref table")
        offsets: dict[int, int] = {}
        for num in range(1, count):
            entry = table[20 * num : 20 * num + 20]
            if entry[17:18] != b"n":
                raise NotOurs("free object")
            offsets[num] = int(entry[:10])
        ordered = sorted(offsets.values())
        limits = dict(zip(ordered, [*ordered[1:], xref]))
        self.data = data
        self.spans = {num: (offset, limits[offset]) for num, offset in offsets.items()}
        trailer = data[line_end + 1 + 20 * count :]
        root = _ROOT_RE.search(trailer)
        if not trailer.startswith(b"trailer") or root is None:
            raise NotOurs("no trailer")
        self.root = int(root.group(1))

    def _body(self, num: int) -> tuple[int, int]:
        span = self.spans.get(num)
        if span is None:
            raise NotOurs("missing object")
        start, end = span
        header = b"%d 0 obj" % num
        if not self.data.startswith(header, start):
            raise NotOurs("object not at its offset")
        return start + len(header), end

    def dictionary(self, num: int) -> Any:
        start, end = self._body(num)
        stop = self.data.rfind(b"endobj", start, end)
        if stop < 0 or self.data.find(b"stream", start, stop) >= 0:
            raise NotOurs("not a plain object")
        return _parse(self.data[start:stop])

    def stream(self, num: int) -> tuple[Any, bytes, bytes]:
        """(parsed dictionary, dictionary bytes, stream data) of a stream object."""
        start, end = self._body(num)
        data = self.data
        mark = data.find(b"stream", start, end)
        if mark < 0 or data[mark - 3 : mark] == b"end":
            raise NotOurs("not a stream")
        head = data[start:mark].strip()
        info = _parse(head)
        if not isinstance(info, dict):
            raise NotOurs("stream without dictionary")
        length = info.get("Length")
        if not isinstance(length, bytes) or not length.isdigit():
            raise NotOurs("indirect stream length")
        begin = mark + 6
        if data.startswith(b"\r\n", begin):
            begin += 2
        elif data.startswith(b"\n", begin):
            begin += 1
        else:
            raise NotOurs("no end of line after stream")
        stop = begin + int(length)
        if stop > end or data.find(b"endstream", stop, min(end, stop + 12)) < 0:
            raise NotOurs("stream length does not match")
        return info, head, data[begin:stop]


def _no_refs(value: Any) -> bool:
    if isinstance(value, _Ref):
        return False
    if isinstance(value, list):
        return all(_no_refs(v) for v in value)
    if isinstance(value, dict):
        return all(_no_refs(v) for v in value.values())
    return True


@dataclass
class _PageParts:
    contents: list[int]
    mediabox: Any
    rest: list[tuple[str, Any]]  # /Rotate, /Trans: values without references
    fonts: int | None
    procset: Any
    images: list[tuple[str, int]]


def append_packet(writer: Any, data: bytes, shared: Any, known: Sequence[tuple[str, str, str]] = (),
                  pages: int | None = None) -> tuple[float, float] | None:
    """Append the pages of the packet ``data`` to ``writer``; return the first page's size.

    ``shared``: the box's ``SharedFonts`` (every font must be one of its faces). ``known``:
    the packet's fonts as its renderer reported them (resource name, face marker,
    characters), else read from the ToUnicode maps. ``pages``: the page count the caller
    expects (a mismatch raises ``PageCountMismatch``). Returns None, having changed nothing,
    when the packet is not in the renderer's shape (see the module docstring).
    """
    try:
        plan = _plan(data, shared, known)
    except (NotOurs, ValueError, KeyError, IndexError, TypeError, AttributeError, zlib.error):
        return None  # anything unexpected in a damaged file: pypdf's route says what
    page_parts, font_dicts, streams, adopted = plan
    if pages is not None and len(page_parts) != pages:
        raise PageCountMismatch(f"packet has {len(page_parts)} pages, expected {pages}")

    # Everything was read: only now is anything added (the fallback starts from a clean slate).
    for marker, chars, tounicode in adopted:
        shared.adopt_marker(marker, chars=chars, tounicode=tounicode)
    font_refs = {}
    for num, names in font_dicts.items():
        font_refs[num] = writer._add_object(
            DictionaryObject({NameObject("/" + name): shared.adopt_marker(marker) for name, marker in names})
        )
    refs: dict[int, Any] = {}
    for num, (head, body) in streams.items():
        refs[num] = writer._add_object(RawStream(head, body))
    for parts in page_parts:
        page = PageObject(writer)
        contents = [refs[n] for n in parts.contents]
        page[NameObject("/Contents")] = contents[0] if len(contents) == 1 else ArrayObject(contents)
        page[NameObject("/MediaBox")] = parts.mediabox
        resources = DictionaryObject()
        if parts.fonts is not None:
            resources[NameObject("/Font")] = font_refs[parts.fonts]
        if parts.procset is not None:
            resources[NameObject("/ProcSet")] = parts.procset
        if parts.images:
            resources[NameObject("/XObject")] = DictionaryObject(
                {NameObject("/" + name): refs[num] for name, num in parts.images}
            )
        page[NameObject("/Resources")] = resources
        for key, value in parts.rest:
            page[NameObject("/" + key)] = value
        page[NameObject("/Type")] = NameObject("/Page")
        writer._add_object(page)
        writer.add_page(page)
    box = page_parts[0].mediabox
    return float(box[2]) - float(box[0]), float(box[3]) - float(box[1])


def _plan(data: bytes, shared: Any, known: Sequence[tuple[str, str, str]]) -> tuple[Any, ...]:
    packet = _Packet(data)
    catalog = packet.dictionary(packet.root)
    if not isinstance(catalog, dict) or catalog.get("Type") != "Catalog" or not isinstance(catalog.get("Pages"), _Ref):
        raise NotOurs("no catalog")
    tree = packet.dictionary(catalog["Pages"].num)
    if not isinstance(tree, dict) or tree.get("Type") != "Pages":
        raise NotOurs("no page tree")
    kids = tree.get("Kids")
    if not isinstance(kids, list) or not kids:
        raise NotOurs("no page tree")

    given = {name.removeprefix("/"): (marker, chars) for name, marker, chars in known}
    page_parts: list[_PageParts] = []
    font_dicts: dict[int, list[tuple[str, str]]] = {}
    streams: dict[int, tuple[bytes, bytes]] = {}
    adopted: list[tuple[str, str, bytes | None]] = []
    for kid in kids:
        if not isinstance(kid, _Ref):
            raise NotOurs("page tree of references expected")
        page = packet.dictionary(kid.num)
        if not isinstance(page, dict) or page.get("Type") != "Page" or not _PAGE_KEYS.issuperset(page):
            raise NotOurs("a page with more than ours")
        contents = page.get("Contents")
        contents = contents if isinstance(contents, list) else [contents]
        for ref in contents:
            if not isinstance(ref, _Ref):
                raise NotOurs("contents")
            if ref.num not in streams:
                info, head, body = packet.stream(ref.num)
                if not _CONTENT_KEYS.issuperset(info) or not _no_refs(info):
                    raise NotOurs("contents stream with more than ours")
                streams[ref.num] = (head, body)
        box = page.get("MediaBox")
        if not isinstance(box, list) or len(box) != 4:
            raise NotOurs("media box")
        for v in box:
            _number(v)
        resources = page.get("Resources", {})
        if not isinstance(resources, dict) or not _RESOURCE_KEYS.issuperset(resources):
            raise NotOurs("resources with more than ours")
        fonts = resources.get("Font")
        if fonts is not None:
            if not isinstance(fonts, _Ref):
                raise NotOurs("inline font dictionary")
            if fonts.num not in font_dicts:
                font_dicts[fonts.num] = _fonts(packet, fonts.num, shared, given, adopted)
        images = []
        xobjects = resources.get("XObject", {})
        if not isinstance(xobjects, dict):
            raise NotOurs("XObject dictionary")
        for name, ref in xobjects.items():
            if not isinstance(ref, _Ref):
                raise NotOurs("inline XObject")
            if ref.num not in streams:
                info, head, body = packet.stream(ref.num)
                if info.get("Subtype") != "Image" or not _IMAGE_KEYS.issuperset(info) or not _no_refs(info):
                    raise NotOurs("an XObject other than a plain image")
                streams[ref.num] = (head, body)
            images.append((name, ref.num))
        procset = resources.get("ProcSet")
        rest = []
        for key in ("Rotate", "Trans"):
            if key in page:
                if not _no_refs(page[key]):
                    raise NotOurs(key)
                rest.append((key, _pdf(page[key])))
        page_parts.append(_PageParts(
            contents=[ref.num for ref in contents],
            mediabox=_pdf(box),
            rest=rest,
            fonts=fonts.num if fonts is not None else None,
            procset=_pdf(procset) if procset is not None else None,
            images=images,
        ))
    return page_parts, font_dicts, streams, adopted


def _fonts(packet: _Packet, num: int, shared: Any, given: dict[str, tuple[str, str]],
           adopted: list[tuple[str, str, bytes | None]]) -> list[tuple[str, str]]:
    """(resource name, face marker) of a font dictionary; every font must be a shared face."""
    fonts = packet.dictionary(num)
    if not isinstance(fonts, dict):
        raise NotOurs("font dictionary")
    out = []
    for name, ref in fonts.items():
        if not isinstance(ref, _Ref):
            raise NotOurs("inline font")
        if name in given:
            marker, chars = given[name]
            tounicode = None
        else:
            font = packet.dictionary(ref.num)
            if not isinstance(font, dict):
                raise NotOurs("font")
            face, to_unicode = font.get("ABFace"), font.get("ToUnicode")
            if font.get("Subtype") != "Type0" or not isinstance(face, _Name) or not isinstance(to_unicode, _Ref):
                raise NotOurs("a font not of ours")
            marker, chars = str(face), ""
            info, _head, body = packet.stream(to_unicode.num)
            filters = info.get("Filter")
            if filters in ([_Name("FlateDecode")], _Name("FlateDecode")):
                body = zlib.decompress(body)
            elif filters is not None:
                raise NotOurs("ToUnicode filter")
            tounicode = body
        if not shared.knows(marker):
            raise NotOurs("a face the box does not share")
        adopted.append((marker, chars, tounicode))
        out.append((name, marker))
    return out
