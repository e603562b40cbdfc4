"""Merging the fonts of a collated box: one font per face, unique subset tags.

``SharedFonts`` (``render/sharedfonts.py``) already gives a box one font per face for the
fonts it adopts; ``merge_font_subsets`` merges what remains (fonts without our ``/ABFace``
marker, a face the font set lacks) from their embedded programs, on the box's pikepdf
objects. Overview in the docstring of ``archive_builder.render.fonts``.

Why one module of this size: merging a box's subset programs into one font per face — program
splitting, glyph comparison as trees and the rewritten PDF objects — shares one set of data
structures; each step is a function of its own below.
"""

from __future__ import annotations

import hashlib
import operator
import struct
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import compress, islice
from pathlib import Path
from typing import Any

import pikepdf
from pikepdf import Array, Dictionary, Name

from .fontfiles import _LOCK, _TTFONTS, _Sfnt
from .fontprogram import (
    _BFCHAR_RE,
    _CMAP_MARKER,
    _FACE_KEY,
    _base_tables_from_face,
    _build_program,
    _cid2gid_stream,
    _component_offsets,
    _dw,
    _program_identity,
    _source_key,
    _subset_tag,
    _tounicode_cmap,
    _w_array,
)
from .sharedfonts import SharedFonts, flate_stream, pdf_number

__all__ = ["SharedFonts", "merge_font_subsets"]

# =========================================================================== reading fonts


def _is_our_font(font: Any) -> bool:
    try:
        if font.get(Name.Subtype) != Name.Type0 or font.get(Name.Encoding) != Name("/Identity-H"):
            return False
        tu = font.get(Name.ToUnicode)
        if not isinstance(tu, pikepdf.Stream):
            return False
        return _CMAP_MARKER.encode() in tu.read_bytes()[:400]
    except Exception:  # noqa: BLE001 - foreign or broken fonts are simply not ours
        return False


def _parse_w(w: Any) -> dict[int, float]:
    out: dict[int, float] = {}
    items = list(w) if isinstance(w, Array) else []
    i = 0
    while i < len(items):
        first = int(items[i])
        nxt = items[i + 1] if i + 1 < len(items) else None
        if isinstance(nxt, Array):
            for k, v in enumerate(nxt):
                out[first + k] = float(v)
            i += 2
        else:
            last, width = int(items[i + 1]), float(items[i + 2])
            for c in range(first, last + 1):
                out[c] = width
            i += 3
    return out


def _tounicode_pairs(font: Any) -> list[tuple[int, bytes]]:
    """(code, UTF-16BE bytes) of each ``bfchar`` line of a font's ToUnicode map."""
    data = font.ToUnicode.read_bytes()
    return [(int(m.group(1), 16), bytes.fromhex(m.group(2).decode())) for m in _BFCHAR_RE.finditer(data)]


def _split_program(program: bytes) -> tuple[dict[str, bytes], dict[int, bytes], Mapping[int, tuple[int, int]]]:
    f = _Sfnt(program)
    tables = {tag.decode("latin-1"): f.table(tag) for tag in f.tables}
    head = tables["head"]
    loc_fmt = struct.unpack(">h", head[50:52])[0]
    n = struct.unpack(">H", tables["maxp"][4:6])[0]
    loca = tables["loca"]
    if loc_fmt:
        offs = list(struct.unpack(f">{n + 1}L", loca[: 4 * (n + 1)]))
    else:
        offs = list(map((2).__mul__, struct.unpack(f">{n + 1}H", loca[: 2 * (n + 1)])))
    glyf = tables["glyf"]
    present = list(compress(range(n), map(operator.lt, offs, islice(offs, 1, None))))
    glyphs = {g: glyf[offs[g] : offs[g + 1]] for g in present}
    nh = struct.unpack(">H", tables["hhea"][34:36])[0]
    metrics = _HmtxMetrics(tables["hmtx"], nh, n, [0, *present] if 0 not in glyphs else present)
    base = {k: v for k, v in tables.items() if k not in ("glyf", "loca", "hmtx", "cmap")}
    return base, glyphs, metrics


class _HmtxMetrics(Mapping[int, tuple[int, int]]):
    """(advance width, left side bearing) of a program's glyphs, read from ``hmtx`` when asked:
    any glyph id below ``numGlyphs`` (empty glyphs have metrics too); iterating gives
    ``listed`` (glyph 0 and the glyphs with outlines)."""

    def __init__(self, hmtx: bytes, long_metrics: int, count: int, listed: list[int]) -> None:
        self._hmtx, self._nh, self._count, self._listed = hmtx, long_metrics, count, listed
        self._last_aw = struct.unpack(">H", hmtx[4 * (long_metrics - 1) : 4 * long_metrics - 2])[0] \
            if long_metrics else 0

    def __getitem__(self, g: int) -> tuple[int, int]:
        if not 0 <= g < self._count:
            raise KeyError(g)
        if g < self._nh:
            aw, lsb = struct.unpack(">Hh", self._hmtx[4 * g : 4 * g + 4])
            return aw, lsb
        p = 4 * self._nh + 2 * (g - self._nh)
        return self._last_aw, struct.unpack(">h", self._hmtx[p : p + 2])[0]

    def __iter__(self) -> Iterator[int]:
        return iter(self._listed)

    def __len__(self) -> int:
        return len(self._listed)



def _resource_dicts(pdf: pikepdf.Pdf) -> Iterator[Any]:
    """The resource dictionaries of the pages and of the form XObjects they use, each once."""
    seen: set[tuple[int, int]] = set()

    def visit(res: Any, depth: int) -> Iterator[Any]:
        if not isinstance(res, Dictionary) or depth > 8:
            return
        if res.is_indirect:
            if res.objgen in seen:
                return
            seen.add(res.objgen)
        yield res
        xobjects = res.get(Name.XObject)
        if isinstance(xobjects, Dictionary):
            for x in xobjects.values():
                if isinstance(x, pikepdf.Stream) and x.get(Name.Subtype) == Name.Form:
                    yield from visit(x.get(Name.Resources), depth + 1)

    for page in pdf.pages:
        yield from visit(page.obj.get(Name.Resources), 0)


def _font_entries(pdf: pikepdf.Pdf) -> list[tuple[Any, str]]:
    """(font dictionary, resource name) of every font resource the pages use (one walk;
    a font dictionary the pages share is visited once)."""
    out: list[tuple[Any, str]] = []
    seen: set[tuple[int, int]] = set()
    for res in _resource_dicts(pdf):
        fonts = res.get(Name.Font)
        if not isinstance(fonts, Dictionary):
            continue
        if fonts.is_indirect:
            if fonts.objgen in seen:
                continue
            seen.add(fonts.objgen)
        out.extend((fonts, name) for name in fonts.keys())
    return out


def _distinct_fonts(fonts: Iterable[Any]) -> list[tuple[tuple[int, int], Any]]:
    """(object id, font) of each distinct indirect font dictionary of ``fonts``, in order."""
    seen: set[tuple[int, int]] = set()
    out = []
    for font in fonts:
        if isinstance(font, Dictionary) and font.is_indirect and font.objgen not in seen:
            seen.add(font.objgen)
            out.append((font.objgen, font))
    return out


def _iter_font_dicts(pdf: pikepdf.Pdf) -> list[tuple[tuple[int, int], Any]]:
    """(object id, font) of every distinct indirect font the pages use, in page order."""
    return _distinct_fonts(fonts[name] for fonts, name in _font_entries(pdf))


def _font_file_of(font: Any) -> tuple[Any, Any] | tuple[None, None]:
    """(FontDescriptor, FontFile stream) of a simple or composite font."""
    d = font
    if font.get(Name.Subtype) == Name.Type0:
        dfs = font.get(Name.DescendantFonts)
        if not isinstance(dfs, Array) or not len(dfs):
            return None, None
        d = dfs[0]
    fd = d.get(Name.FontDescriptor)
    if not isinstance(fd, Dictionary):
        return None, None
    for k in ("/FontFile2", "/FontFile", "/FontFile3"):
        if k in fd:
            return fd, fd[k]
    return fd, None


def _programs(found: Iterable[tuple[tuple[int, int], Any]]) -> dict[tuple[int, int], int]:
    """Object id → encoded size of the embedded font program of each font of ``found``."""
    out = {}
    for _key, font in found:
        _fd, ff = _font_file_of(font)
        if isinstance(ff, pikepdf.Stream) and ff.is_indirect:
            out[ff.objgen] = len(ff.read_raw_bytes())
    return out


def _marker_sources(fonts: Any) -> dict[str, Any]:
    """``/ABFace`` value -> loaded ``GlobalCodeTTFont`` for the faces of ``fonts``.

    Only fonts this process has already parsed are offered (role faces once the set is
    registered; fallback faces once something used them): parsing a face just to merge would
    cost more than decompressing the few packet programs that use it.
    """
    if fonts is None:
        return {}
    faces = [*getattr(fonts, "faces", {}).values(), *getattr(fonts, "fallbacks", [])]
    out: dict[str, Any] = {}
    for face in faces:
        with _LOCK:
            font = _TTFONTS.get(face.rl_name)
        if font is None or Path(font.ab_face.path) != Path(face.path) \
                or font.ab_face.subfont_index != face.subfont_index:
            continue
        key = _source_key(font)
        if key:
            out[key] = font
    return out


#: A glyph as the union of a face's fonts sees it, whatever the glyph ids of the program it
#: came from: (outline padded to 4 bytes with its components' ids zeroed, (advance width,
#: left side bearing), the components' trees). Packet programs number their glyphs compactly
#: (see ``GlobalCodeTTFont.subset``), so the same glyph has other ids in each packet.
GlyphTree = tuple[bytes, tuple[int, int], tuple[Any, ...]]


class _GlyphSource:
    """The glyphs of one font to merge: from the original face (``font``, a loaded
    ``GlobalCodeTTFont``) or from an embedded program (``glyphs``/``metrics`` of
    ``_split_program`` and the font's CIDToGIDMap ``c2g``)."""

    def __init__(self, font: Any = None, glyphs: Mapping[int, bytes] | None = None,
                 metrics: Mapping[int, tuple[int, int]] | None = None,
                 c2g: Mapping[int, int] | None = None) -> None:
        self.font, self.glyphs, self.metrics, self.c2g = font, glyphs, metrics, c2g
        if font is not None:
            face = font.face
            self._data, self._pos = face._ttf_data, face.glyphPos
            self._glyf = face.get_table_pos("glyf")[0]

    def gid(self, cid: int) -> int | None:
        if self.font is not None:
            return int(self.font.gid_of_cid(cid))
        assert self.c2g is not None
        return self.c2g.get(cid)

    def outline(self, g: int) -> bytes:
        if self.font is None:
            assert self.glyphs is not None
            data = bytes(self.glyphs.get(g, b""))
        else:
            p0, p1 = self._pos[g], self._pos[g + 1]
            data = bytes(self._data[self._glyf + p0 : self._glyf + p1]) if p1 > p0 else b""
        return data + b"\0" * (-len(data) & 3)

    def metric(self, g: int) -> tuple[int, int]:
        if self.font is None:
            assert self.metrics is not None
            aw, lsb = self.metrics[g]
        else:
            aw, lsb = self.font.face.hmetrics[g]
        lsb = int(lsb) & 0xFFFF
        return int(aw) & 0xFFFF, lsb - 0x10000 if lsb >= 0x8000 else lsb

    def tree(self, g: int, depth: int = 0) -> GlyphTree:
        if depth > 16:
            raise ValueError("composite glyphs nested too deep (or in a cycle)")
        data = self.outline(g)
        parts = _component_offsets(data)
        if parts:
            zeroed = bytearray(data)
            for offset, _gid in parts:
                zeroed[offset : offset + 2] = b"\0\0"
            data = bytes(zeroed)
        return data, self.metric(g), tuple(self.tree(c, depth + 1) for _o, c in parts)


def _union_program(base: Mapping[str, bytes], notdef: GlyphTree,
                   trees: Mapping[int, GlyphTree]) -> tuple[bytes, dict[int, int]]:
    """The program holding ``notdef`` as glyph 0 and the glyph of every code in ``trees``, and
    its CIDToGIDMap: glyphs numbered in code order, each composite followed by its components
    (depth first); a glyph reached again is not written twice."""
    glyphs: dict[int, bytes] = {}
    metrics: dict[int, tuple[int, int]] = {}
    ids: dict[GlyphTree, int] = {}

    def emit(tree: GlyphTree) -> int:
        got = ids.get(tree)
        if got is not None:
            return got
        gid = ids[tree] = len(ids)
        data, metric, children = tree
        metrics[gid] = metric
        child_ids = [emit(child) for child in children]
        if child_ids:
            out = bytearray(data)
            for (offset, _zero), child in zip(_component_offsets(data), child_ids):
                struct.pack_into(">H", out, offset, child)
            data = bytes(out)
        glyphs[gid] = data
        return gid

    emit(notdef)
    c2g = {cid: emit(trees[cid]) for cid in sorted(trees)}
    return _build_program(base, glyphs, metrics), c2g


# =========================================================================== merging


@dataclass
class _Copy:
    """One embedded copy of a face, as read for merging."""

    key: tuple[int, int]
    font: Any
    cid: Any
    fd: Any
    base: Mapping[str, bytes]
    glyphs: Mapping[int, bytes] | None
    metrics: Mapping[int, tuple[int, int]] | None
    source: Any  # the loaded face when the font carries its marker, else None


@dataclass
class _Union:
    """The union of a face's copies: widths, ToUnicode and glyph trees by code."""

    widths: dict[int, float] = field(default_factory=dict)
    tounicode: dict[int, bytes] = field(default_factory=dict)
    trees: dict[int, GlyphTree] = field(default_factory=dict)
    notdef: GlyphTree | None = None


def _face_name(font: Any) -> str:
    ps = str(font.get(Name.BaseFont, Name("/")))[1:]
    return ps.split("+", 1)[1] if "+" in ps[:8] else ps


def _read_copy(key: tuple[int, int], font: Any, sources: Mapping[str, Any]) -> _Copy | None:
    """A font of ours as a copy to merge (None when anything is unexpected)."""
    marker = font.get(_FACE_KEY)
    source = sources.get(str(marker)[1:]) if marker is not None else None
    try:
        cid = font.DescendantFonts[0]
        fd = cid.FontDescriptor
        if source is not None:
            base = _base_tables_from_face(source.face)
            glyphs = metrics = None
        else:
            base, glyphs, metrics = _split_program(fd.FontFile2.read_bytes())
    except Exception:  # noqa: BLE001 - leave anything unexpected alone
        return None
    return _Copy(key, font, cid, fd, base, glyphs, metrics, source)


def _group_copies(found: Sequence[tuple[tuple[int, int], Any]], sources: Mapping[str, Any]
                  ) -> dict[tuple[str, bytes], list[_Copy]]:
    """Our fonts by (face name, program identity); a face with one copy (what SharedFonts
    leaves) has nothing to merge and is not even read."""
    ours = [(key, font) for key, font in found if _is_our_font(font)]
    copies = Counter(_face_name(font) for _key, font in ours)
    groups: dict[tuple[str, bytes], list[_Copy]] = {}
    for key, font in ours:
        if copies[_face_name(font)] < 2:
            continue
        copy = _read_copy(key, font, sources)
        if copy is not None:
            groups.setdefault((_face_name(font), _program_identity(copy.base)), []).append(copy)
    return groups


def _glyph_source(copy: _Copy, codes: Sequence[int]) -> _GlyphSource:
    """Where a copy's glyphs come from: the face's file, or its program via its CIDToGIDMap."""
    if copy.source is not None:
        return _GlyphSource(copy.source)
    c2g = copy.cid.get(Name.CIDToGIDMap)
    if c2g is None or c2g == Name.Identity:
        pairs = {c: c for c in codes}
    else:
        raw = c2g.read_bytes()
        pairs = {c: struct.unpack(">H", raw[2 * c : 2 * c + 2])[0] for c in codes if 2 * c + 2 <= len(raw)}
    return _GlyphSource(glyphs=copy.glyphs, metrics=copy.metrics, c2g=pairs)


def _add_copy(union: _Union, copy: _Copy) -> bool:
    """Add a copy's codes to ``union``; False when it disagrees with what is there."""
    pairs = _tounicode_pairs(copy.font)
    explicit = _parse_w(copy.cid.get(Name.W))
    dw = float(copy.cid.get(Name.DW, 1000))
    ok = True
    for c, u in pairs:
        if union.tounicode.setdefault(c, u) != u:
            ok = False
        union.widths[c] = explicit.get(c, dw)
    source = _glyph_source(copy, [c for c, _u in pairs])
    # glyphs compared as trees, not by id: each packet program numbers its own
    try:
        zero = source.tree(0)
        if union.notdef is None:
            union.notdef = zero
        elif union.notdef != zero:
            return False
        for c, _u in pairs:
            g = source.gid(c)
            tree = source.tree(g) if g is not None else None
            if tree is None or union.trees.setdefault(c, tree) != tree:
                return False
    except (KeyError, IndexError, ValueError, struct.error):
        return False
    return ok


def _union_of(copies: Sequence[_Copy]) -> _Union | None:
    union = _Union()
    return union if all(_add_copy(union, copy) for copy in copies) else None


def _write_union(pdf: pikepdf.Pdf, ps: str, ident: bytes, union: _Union, first: _Copy) -> Any:
    """The merged font of a face in ``pdf``: the union program, ``W``, ToUnicode and
    CIDToGIDMap, the rest of its descriptor and CIDFont taken from the face's first copy."""
    assert union.notdef is not None
    program, c2g = _union_program(first.base, union.notdef, union.trees)
    basefont = Name(f"/{_subset_tag(ident, c2g)}+{ps}")
    fd = Dictionary({k: v for k, v in first.fd.items() if k not in ("/FontFile2", "/FontName", "/CIDSet")})
    fd.FontName = basefont
    fd.FontFile2 = flate_stream(pdf, program, Length1=len(program))
    dw = _dw(union.widths)
    widths = [Array([pdf_number(v) for v in item]) if isinstance(item, list) else item
              for item in _w_array(union.widths, dw, nested=list)]
    cid = Dictionary({k: v for k, v in first.cid.items()
                      if k not in ("/W", "/DW", "/FontDescriptor", "/BaseFont", "/CIDToGIDMap")})
    cid.BaseFont = basefont
    cid.FontDescriptor = pdf.make_indirect(fd)
    cid.W = Array(widths)
    cid.DW = pdf_number(dw)
    cid.CIDToGIDMap = Name.Identity if all(c == g for c, g in c2g.items()) \
        else flate_stream(pdf, _cid2gid_stream(c2g))
    tu_map = {c: u.decode("utf-16-be", "surrogatepass") for c, u in union.tounicode.items()}
    return pdf.make_indirect(Dictionary({
        "/Type": Name.Font,
        "/Subtype": Name.Type0,
        "/BaseFont": basefont,
        "/Encoding": Name("/Identity-H"),
        "/DescendantFonts": Array([pdf.make_indirect(cid)]),
        "/ToUnicode": flate_stream(pdf, _tounicode_cmap(tu_map).encode("ascii")),
    }))


def merge_font_subsets(pdf: pikepdf.Pdf, fonts: Any = None) -> dict[str, Any]:
    """Share one font per face across all packets collated into ``pdf`` (a pikepdf ``Pdf``).

    Every Type0 font written by ``GlobalCodeTTFont`` is grouped by face (PostScript name
    and the digest of the program's glyph-independent tables); each group is replaced by
    one new font whose program holds the union of the glyphs, with the union ``W``,
    ``ToUnicode`` and ``CIDToGIDMap``. The page resources are pointed at it; the old copies,
    no longer referenced, are not written. Afterwards every distinct embedded font program
    gets a unique subset tag. Content streams are untouched (codes are document-independent).

    ``fonts`` (the ``FontSet`` the packets were rendered with) is optional: a font carrying
    the private ``/ABFace`` key of a face this process has loaded contributes its codes (from
    ``ToUnicode``) and the union takes their glyphs from the font file — no packet program is
    decompressed. Other fonts are read back from their programs, through their
    ``CIDToGIDMap``. Glyphs are compared as trees (``_GlyphSource.tree``), never by id, since
    each packet program numbers its glyphs its own way; both routes give the same union
    program (``_union_program``).

    Returns statistics: ``fonts_before``/``fonts_after`` (embedded font programs),
    ``font_bytes_before``/``font_bytes_after`` (their encoded stream bytes), ``groups``,
    ``conflicts`` (groups left unmerged because two copies disagreed) and ``retagged``.
    """
    entries = _font_entries(pdf)
    found = _distinct_fonts(fonts[name] for fonts, name in entries)
    before = _programs(found)
    groups = _group_copies(found, _marker_sources(fonts))
    replace: dict[tuple[int, int], Any] = {}
    conflicts = 0
    for (ps, ident), copies in groups.items():
        if len(copies) < 2:
            continue
        union = _union_of(copies)
        if union is None:
            conflicts += 1
            continue
        merged = _write_union(pdf, ps, ident, union, copies[0])
        replace.update((copy.key, merged) for copy in copies)
    if replace:
        for font_dict, name in entries:
            font = font_dict[name]
            if font.is_indirect and font.objgen in replace:
                font_dict[name] = replace[font.objgen]
        found = _distinct_fonts(font_dict[name] for font_dict, name in entries)
    retagged = _retag_unique(found)
    after = _programs(found)
    return {
        "fonts_before": len(before),
        "fonts_after": len(after),
        "font_bytes_before": sum(before.values()),
        "font_bytes_after": sum(after.values()),
        "groups": sum(1 for f in groups.values() if len(f) > 1),
        "conflicts": conflicts,
        "retagged": retagged,
    }


def _retag_unique(found: Iterable[tuple[tuple[int, int], Any]]) -> int:
    """Give the distinct embedded programs of the fonts ``found`` distinct subset tags;
    returns how many were renamed."""
    by_tag: dict[str, set[tuple[int, int]]] = {}
    entries = []
    for _key, font in found:
        fd, ff = _font_file_of(font)
        if fd is None or not isinstance(ff, pikepdf.Stream) or not ff.is_indirect:
            continue
        name = str(font.get(Name.BaseFont, Name("/")))[1:]
        if len(name) > 7 and name[6] == "+" and name[:6].isalpha() and name[:6].isupper():
            by_tag.setdefault(name[:6], set()).add(ff.objgen)
            entries.append((font, fd, ff, name))
    used = set(by_tag)
    renamed = 0
    first_owner: dict[str, tuple[int, int]] = {}
    new_names: dict[tuple[int, int], str] = {}
    for font, fd, ff, name in entries:
        tag, rest = name[:6], name[7:]
        if len(by_tag[tag]) == 1 or first_owner.setdefault(tag, ff.objgen) == ff.objgen:
            continue
        new = new_names.get(ff.objgen)
        if new is None:
            new = new_names[ff.objgen] = _fresh_tag(ff.read_raw_bytes(), used)
            renamed += 1
        newname = Name(f"/{new}+{rest}")
        font.BaseFont = newname
        if font.get(Name.Subtype) == Name.Type0:
            font.DescendantFonts[0].BaseFont = newname
        fd.FontName = newname
    return renamed


def _fresh_tag(program: bytes, used: set[str]) -> str:
    """A subset tag derived from a program's bytes that is not in ``used`` (then added)."""
    salt = 0
    while (tag := _subset_tag(hashlib.sha256(program).digest(), {}, salt)) in used:
        salt += 1
    used.add(tag)
    return tag
