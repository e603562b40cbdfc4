"""Font sharing after collation: one font per face in a box, unique subset tags, and a
report of the fonts a PDF embeds.

``SharedFonts`` points the packets' fonts at one placeholder per face while pypdf appends
them; ``merge_font_subsets`` merges what remains (fonts without our ``/ABFace`` marker)
from their embedded programs. Overview in the docstring of ``archive_builder.render.fonts``.

Why one module of this size: merging a box's subset programs into one font per face: program
splitting, glyph comparison and the rewritten PDF objects share one set of data structures.
"""

from __future__ import annotations

import hashlib
import operator
import struct
from collections.abc import Iterable, Iterator, Mapping, Sequence
from itertools import compress, islice
from pathlib import Path
from typing import Any

from .fontfiles import _LOCK, _TTFONTS, _Sfnt
from .fontprogram import (
    _BFCHAR_DST_RE,
    _BFCHAR_RE,
    _CMAP_MARKER,
    _FACE_KEY,
    _base_tables_from_face,
    _build_program,
    _cid2gid_stream,
    _component_offsets,
    _dw,
    _load_registered,
    _program_identity,
    _source_key,
    _subset_tag,
    _tounicode_cmap,
    _w_array,
)

# =========================================================================== collation


def _is_our_font(font: Any) -> bool:
    try:
        if font.get("/Subtype") != "/Type0" or font.get("/Encoding") != "/Identity-H":
            return False
        tu = font.get("/ToUnicode")
        if tu is None:
            return False
        data = tu.get_object().get_data()
        return _CMAP_MARKER.encode() in data[:400]
    except Exception:  # noqa: BLE001 - foreign or broken fonts are simply not ours
        return False


def _parse_w(w: Any) -> dict[int, float]:
    out: dict[int, float] = {}
    items = list(w.get_object()) if w is not None else []
    i = 0
    while i < len(items):
        first = int(items[i])
        nxt = items[i + 1].get_object() if i + 1 < len(items) else None
        if isinstance(nxt, list):
            for k, v in enumerate(nxt):
                out[first + k] = float(v)
            i += 2
        else:
            last, width = int(items[i + 1]), float(items[i + 2])
            for c in range(first, last + 1):
                out[c] = width
            i += 3
    return out


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


def _iter_font_dicts(writer: Any) -> Iterable[tuple[int, Any]]:
    from pypdf.generic import DictionaryObject

    for idx, obj in enumerate(writer._objects):
        if isinstance(obj, DictionaryObject) and obj.get("/Type") == "/Font" \
                and obj.get("/Subtype") != "/CIDFontType2" and obj.get("/Subtype") != "/CIDFontType0":
            yield idx + 1, obj


def _font_file_of(font: Any) -> tuple[Any, Any] | tuple[None, None]:
    """(FontDescriptor, FontFile stream reference) of a simple or composite font."""
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


def _stream_len(ref: Any) -> int:
    obj = ref.get_object()
    return len(obj._data)


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




class SharedFonts:
    """One copy of each face for a file being collated with pypdf (a box).

    ``adopt(reader)`` is called for every PDF before its pages are appended: each font of
    ours (``/ABFace`` marker of a face of ``fonts``) in its page resources is pointed at a
    placeholder object of ``writer`` — one per face — and only its ``ToUnicode`` is read, for
    the characters it draws. pypdf then never parses or copies the packets' font objects
    (their ``W`` arrays alone were a quarter of the objects a box parsed). ``finish()`` fills
    each placeholder with a font holding every character adopted for that face, the subset
    ``GlobalCodeTTFont.subset`` computes (same codes, same widths, so no content stream changes).

    Fonts that are not adopted (no marker, a face this set does not have) are copied as
    pypdf copies anything; ``merge_font_subsets`` merges those afterwards, from their
    programs. Which fonts are adopted depends only on the fonts and ``fonts``, so the
    output is reproducible.
    """

    def __init__(self, writer: Any, fonts: Any) -> None:
        self.writer = writer
        self.fonts = fonts
        self._sources: dict[str, Any] | None = None
        self._chars: dict[str, set[bytes]] = {}
        self._text: dict[str, set[str]] = {}  # characters reported by the renderer
        self._refs: dict[str, Any] = {}
        self._done = False
        self._all_loaded = False

    # ------------------------------------------------------------------ adopting
    def adopt(self, reader: Any, known: Sequence[tuple[str, str, str]] = ()) -> None:
        """Point the page resources of ``reader`` at the shared fonts (before appending).

        ``known``: the file's fonts as its renderer reported them (``RenderResult.fonts``:
        resource name, face marker, characters); those are not read back from the file.
        """
        from pypdf.generic import DictionaryObject, IndirectObject, NameObject

        if self._done and known:
            raise RuntimeError("SharedFonts.finish() was called already")
        given: dict[str, Any] = {}
        for name, marker, chars in known:
            if self._source(marker) is not None:
                given[name] = self._shared_ref(marker)
                self._text.setdefault(marker, set()).update(chars)
        seen: dict[int, Any] = {}
        visited: set[int] = set()
        for page in reader.pages:
            res = page.get("/Resources")
            if res is None:
                continue
            fonts = res.get_object().get("/Font")
            if not isinstance(fonts, (DictionaryObject, IndirectObject)):
                continue
            fonts = fonts.get_object()
            if not isinstance(fonts, DictionaryObject) or id(fonts) in visited:  # pages share one
                continue
            visited.add(id(fonts))
            for name in list(fonts.keys()):
                ref = fonts.raw_get(name)
                if not isinstance(ref, IndirectObject) or ref.pdf is not reader:
                    continue
                if name in given:
                    fonts[NameObject(name)] = given[name]
                    continue
                if ref.idnum not in seen:
                    seen[ref.idnum] = self.adopt_font(ref.get_object())
                shared = seen[ref.idnum]
                if shared is not None:
                    fonts[NameObject(name)] = shared

    def adopt_font(self, font: Any) -> Any:
        """Return the writer's shared font for ``font`` (a pypdf font dictionary), or None
        when it is not one of ours; the characters it draws join the shared font's."""
        if self._done:
            raise RuntimeError("SharedFonts.finish() was called already")
        try:
            if font.get("/Subtype") != "/Type0" or _FACE_KEY not in font:
                return None
            marker = str(font[_FACE_KEY])[1:]
            if self._source(marker) is None:
                return None
            data = font["/ToUnicode"].get_object().get_data()
        except Exception:  # noqa: BLE001 - anything unexpected is copied and merged as before
            return None
        # UTF-16 hex of the characters; decoded once per face in finish()
        self._chars.setdefault(marker, set()).update(_BFCHAR_DST_RE.findall(data))
        return self._shared_ref(marker)

    def knows(self, marker: str) -> bool:
        """Whether ``marker`` names a face of the set (whose fonts can be shared)."""
        return self._source(marker) is not None

    def adopt_marker(self, marker: str, chars: str = "", tounicode: bytes | None = None) -> Any:
        """The shared font of the face ``marker`` (a face :meth:`knows`), for a file whose
        fonts were read without pypdf (``packetpdf``); ``chars`` (as the renderer reported
        them) or ``tounicode`` (an inflated ToUnicode map) join the characters it holds."""
        if self._done:
            raise RuntimeError("SharedFonts.finish() was called already")
        if self._source(marker) is None:
            raise ValueError(f"not a face of this font set: {marker}")
        if chars:
            self._text.setdefault(marker, set()).update(chars)
        if tounicode is not None:
            self._chars.setdefault(marker, set()).update(_BFCHAR_DST_RE.findall(tounicode))
        return self._shared_ref(marker)

    def _shared_ref(self, marker: str) -> Any:
        """The placeholder of the face ``marker`` in the writer (made on first use)."""
        from pypdf.generic import DictionaryObject

        ref = self._refs.get(marker)
        if ref is None:
            ref = self._refs[marker] = self.writer._add_object(DictionaryObject())
        return ref

    def _source(self, marker: str) -> Any:
        """The loaded ``GlobalCodeTTFont`` of the face ``marker`` names, or None.

        Faces of the set not loaded yet (fallbacks) are loaded on the first unknown marker,
        so the answer does not depend on what this process happened to render before.
        """
        if self._sources is None:
            self._sources = _marker_sources(self.fonts)
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
        (``GlobalCodeTTFont.subset``), its program compressed whole, written as pypdf
        objects (going through a reportlab document and reading it back was half the cost).
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
            self._refs[marker].get_object().update(_pypdf_font(self.writer, source.face, sub))


def _pypdf_font(writer: Any, face: Any, sub: Any) -> Any:
    """The Type0 font dictionary of ``sub`` (a ``FontSubset`` of ``face``) for ``writer``:
    the objects ``GlobalCodeTTFont.addObjects`` writes, with the program compressed whole."""
    import zlib

    from pypdf.generic import (
        ArrayObject,
        DictionaryObject,
        EncodedStreamObject,
        FloatObject,
        NameObject,
        NumberObject,
        TextStringObject,
    )

    def number(v: Any) -> Any:
        return NumberObject(int(v)) if float(v).is_integer() else FloatObject(round(float(v), 3))

    def stream(data: bytes, extra: dict[str, Any] | None = None, level: int = 6) -> Any:
        s = EncodedStreamObject()
        s._data = zlib.compress(data, level)  # level 6, as reportlab's PDFZCompress
        s[NameObject("/Filter")] = NameObject("/FlateDecode")
        for k, v in (extra or {}).items():
            s[NameObject(k)] = v
        return writer._add_object(s)

    basefont = NameObject("/" + sub.basefont)
    descriptor = DictionaryObject({
        NameObject("/Type"): NameObject("/FontDescriptor"),
        NameObject("/FontName"): basefont,
        NameObject("/Flags"): NumberObject(sub.flags),
        NameObject("/FontBBox"): ArrayObject(NumberObject(round(v)) for v in face.bbox),
        NameObject("/ItalicAngle"): number(face.italicAngle),
        NameObject("/Ascent"): NumberObject(round(face.ascent)),
        NameObject("/Descent"): NumberObject(round(face.descent)),
        NameObject("/CapHeight"): NumberObject(round(face.capHeight)),
        NameObject("/StemV"): number(face.stemV),
        NameObject("/MissingWidth"): NumberObject(round(face.defaultWidth)),
        NameObject("/FontFile2"): stream(sub.program, {"/Length1": NumberObject(len(sub.program))}),
    })
    widths: list[Any] = []
    for item in _w_array(sub.widths, sub.dw, nested=list):
        widths.append(ArrayObject(number(w) for w in item) if isinstance(item, list) else NumberObject(item))
    cidfont = DictionaryObject({
        NameObject("/Type"): NameObject("/Font"),
        NameObject("/Subtype"): NameObject("/CIDFontType2"),
        NameObject("/BaseFont"): basefont,
        NameObject("/CIDSystemInfo"): DictionaryObject({
            NameObject("/Registry"): TextStringObject("Adobe"),
            NameObject("/Ordering"): TextStringObject("Identity"),
            NameObject("/Supplement"): NumberObject(0),
        }),
        NameObject("/FontDescriptor"): writer._add_object(descriptor),
        NameObject("/DW"): number(sub.dw),
        NameObject("/W"): ArrayObject(widths),
        NameObject("/CIDToGIDMap"): NameObject("/Identity") if sub.identity
        else stream(_cid2gid_stream(sub.cid2gid), level=1),  # mostly zeros (see addObjects)
    })
    font = DictionaryObject({
        NameObject("/Type"): NameObject("/Font"),
        NameObject("/Subtype"): NameObject("/Type0"),
        NameObject("/BaseFont"): basefont,
        NameObject("/Encoding"): NameObject("/Identity-H"),
        NameObject("/DescendantFonts"): ArrayObject([writer._add_object(cidfont)]),
        NameObject("/ToUnicode"): stream(sub.tounicode),
    })
    if sub.marker:
        font[NameObject(_FACE_KEY)] = NameObject("/" + sub.marker)
    return font


def merge_font_subsets(writer: Any, fonts: Any = None) -> dict[str, Any]:
    """Share one font per face across all packets collated into ``writer``.

    Every Type0 font written by ``GlobalCodeTTFont`` is grouped by face (PostScript name
    and the digest of the program's glyph-independent tables); each group is replaced by
    one new font whose program holds the union of the glyphs, with the union ``W``,
    ``ToUnicode`` and ``CIDToGIDMap``.  References everywhere in the file are redirected
    and the old copies dropped.  Afterwards every distinct embedded font program gets a
    unique subset tag.  Content streams are untouched (codes are document-independent).

    ``fonts`` (the ``FontSet`` the packets were rendered with) is optional: a font carrying
    the private ``/ABFace`` key of a face this process has loaded contributes its codes (from
    ``ToUnicode``) and the union takes their glyphs from the font file — no packet program is
    decompressed.  Other fonts are read back from their programs, through their
    ``CIDToGIDMap``.  Glyphs are compared as trees (``_GlyphSource.tree``), never by id, since
    each packet program numbers its glyphs its own way; both routes give the same union
    program (``_union_program``).

    Returns statistics: ``fonts_before``/``fonts_after`` (embedded font programs),
    ``font_bytes_before``/``font_bytes_after`` (their encoded stream bytes), ``groups``,
    ``conflicts`` (groups left unmerged because two copies disagreed) and ``retagged``.
    """
    from pypdf.generic import (
        ArrayObject,
        DecodedStreamObject,
        DictionaryObject,
        FloatObject,
        IndirectObject,
        NameObject,
        NumberObject,
    )

    def programs() -> dict[int, int]:
        out = {}
        for _id, font in _iter_font_dicts(writer):
            _fd, ff = _font_file_of(font)
            if isinstance(ff, IndirectObject):
                out[ff.idnum] = _stream_len(ff)
        return out

    def face_name(font: Any) -> str:
        ps = str(font.get("/BaseFont", "/"))[1:]
        return ps.split("+", 1)[1] if "+" in ps[:8] else ps

    before = programs()
    sources = _marker_sources(fonts)
    groups: dict[tuple[str, bytes], list[int]] = {}
    parsed: dict[int, tuple[Any, ...]] = {}
    ours = [(fid, font) for fid, font in _iter_font_dicts(writer) if _is_our_font(font)]
    # a face with one copy (what SharedFonts leaves) has nothing to merge: not even read
    copies: dict[str, int] = {}
    for _fid, font in ours:
        copies[face_name(font)] = copies.get(face_name(font), 0) + 1
    for fid, font in ours:
        if copies[face_name(font)] < 2:
            continue
        marker = font.get(_FACE_KEY)
        source = sources.get(str(marker)[1:]) if marker is not None else None
        try:
            cid = font["/DescendantFonts"].get_object()[0].get_object()
            fd = cid["/FontDescriptor"].get_object()
            if source is not None:
                base = _base_tables_from_face(source.face)
                glyphs = metrics = None
            else:
                prog = fd["/FontFile2"].get_object().get_data()
                base, glyphs, metrics = _split_program(prog)
        except Exception:  # noqa: BLE001, S112 - leave anything unexpected alone
            continue
        ps = face_name(font)
        ident = _program_identity(base)
        groups.setdefault((ps, ident), []).append(fid)
        parsed[fid] = (font, cid, fd, base, glyphs, metrics, source)

    replace: dict[int, IndirectObject] = {}
    drop: set[int] = set()
    conflicts = 0
    for (ps, ident), fids in groups.items():
        if len(fids) < 2:
            continue
        widths_u: dict[int, float] = {}
        tu_u: dict[int, bytes] = {}
        trees_u: dict[int, GlyphTree] = {}
        notdef: GlyphTree | None = None
        ok = True
        base0 = None
        for fid in fids:
            font, cid, fd, base, glyphs, metrics, source = parsed[fid]
            base0 = base0 or base
            tu_pairs = [(int(m.group(1), 16), bytes.fromhex(m.group(2).decode()))
                        for m in _BFCHAR_RE.finditer(font["/ToUnicode"].get_object().get_data())]
            explicit = _parse_w(cid.get("/W"))
            dw = float(cid.get("/DW", 1000))
            for c, u in tu_pairs:
                if tu_u.setdefault(c, u) != u:
                    ok = False
                widths_u[c] = explicit.get(c, dw)
            if source is not None:
                glyph_source = _GlyphSource(source)
            else:
                c2g = cid.get("/CIDToGIDMap")
                if c2g is None or c2g == "/Identity":
                    pairs = {c: c for c, _u in tu_pairs}
                else:
                    raw = c2g.get_object().get_data()
                    pairs = {c: struct.unpack(">H", raw[2 * c : 2 * c + 2])[0]
                             for c, _u in tu_pairs if 2 * c + 2 <= len(raw)}
                glyph_source = _GlyphSource(glyphs=glyphs, metrics=metrics, c2g=pairs)
            # glyphs compared as trees, not by id: each packet program numbers its own
            try:
                zero = glyph_source.tree(0)
                if (notdef := notdef or zero) != zero:
                    ok = False
                for c, _u in tu_pairs:
                    g = glyph_source.gid(c)
                    tree = glyph_source.tree(g) if g is not None else None
                    if tree is None or trees_u.setdefault(c, tree) != tree:
                        ok = False
            except (KeyError, IndexError, ValueError, struct.error):
                ok = False
            if not ok:
                break
        if not ok:
            conflicts += 1
            continue
        assert base0 is not None and notdef is not None
        program, c2g_u = _union_program(base0, notdef, trees_u)
        tag = _subset_tag(ident, c2g_u)
        basefont = NameObject(f"/{tag}+{ps}")

        def add_stream(data: bytes, extra: dict[str, Any] | None = None) -> IndirectObject:
            s = DecodedStreamObject()
            s.set_data(data)
            enc = s.flate_encode()
            for k, v in (extra or {}).items():
                enc[NameObject(k)] = v
            return writer._add_object(enc)

        _font0, cid0, fd0 = parsed[fids[0]][:3]
        ff_ref = add_stream(program, {"/Length1": NumberObject(len(program))})
        new_fd = DictionaryObject({NameObject(k): v for k, v in fd0.items()
                                   if k not in ("/FontFile2", "/FontName", "/CIDSet")})
        new_fd[NameObject("/FontName")] = basefont
        new_fd[NameObject("/FontFile2")] = ff_ref
        fd_ref = writer._add_object(new_fd)
        w_items: list[Any] = []
        dw_u = _dw(widths_u)
        for item in _w_array(widths_u, dw_u):
            if hasattr(item, "sequence"):
                w_items.append(ArrayObject(
                    [NumberObject(v) if isinstance(v, int) else FloatObject(v) for v in item.sequence]))
            else:
                w_items.append(NumberObject(item))
        new_cid = DictionaryObject({NameObject(k): v for k, v in cid0.items()
                                    if k not in ("/W", "/DW", "/FontDescriptor", "/BaseFont", "/CIDToGIDMap")})
        new_cid[NameObject("/BaseFont")] = basefont
        new_cid[NameObject("/FontDescriptor")] = fd_ref
        new_cid[NameObject("/W")] = ArrayObject(w_items)
        new_cid[NameObject("/DW")] = NumberObject(dw_u) if isinstance(dw_u, int) else FloatObject(dw_u)
        if all(c == g for c, g in c2g_u.items()):
            new_cid[NameObject("/CIDToGIDMap")] = NameObject("/Identity")
        else:
            new_cid[NameObject("/CIDToGIDMap")] = add_stream(_cid2gid_stream(c2g_u))
        cid_ref = writer._add_object(new_cid)
        tu_map = {c: u.decode("utf-16-be", "surrogatepass") for c, u in tu_u.items()}
        tu_ref = add_stream(_tounicode_cmap(tu_map).encode("ascii"))
        new_font = DictionaryObject({
            NameObject("/Type"): NameObject("/Font"),
            NameObject("/Subtype"): NameObject("/Type0"),
            NameObject("/BaseFont"): basefont,
            NameObject("/Encoding"): NameObject("/Identity-H"),
            NameObject("/DescendantFonts"): ArrayObject([cid_ref]),
            NameObject("/ToUnicode"): tu_ref,
        })
        new_ref = writer._add_object(new_font)
        for fid in fids:
            replace[fid] = new_ref
            font, cid, fd = parsed[fid][:3]
            drop.add(fid)
            for d in (font, cid, fd):
                for k in ("/DescendantFonts", "/ToUnicode", "/FontDescriptor", "/FontFile2",
                          "/CIDToGIDMap", "/W"):
                    v = d.raw_get(k) if k in d else None
                    if isinstance(v, IndirectObject):
                        drop.add(v.idnum)
                    elif isinstance(v, ArrayObject):
                        drop.update(x.idnum for x in v if isinstance(x, IndirectObject))

    if replace:
        _redirect_references(writer, replace)
        keep = {r.idnum for r in replace.values()}
        for idnum in drop - keep:
            writer._objects[idnum - 1] = None

    retagged = _retag_unique(writer)
    after = programs()
    return {
        "fonts_before": len(before),
        "fonts_after": len(after),
        "font_bytes_before": sum(before.values()),
        "font_bytes_after": sum(after.values()),
        "groups": sum(1 for f in groups.values() if len(f) > 1),
        "conflicts": conflicts,
        "retagged": retagged,
    }


def _redirect_references(writer: Any, replace: Mapping[int, Any]) -> None:
    from pypdf.generic import ArrayObject, DictionaryObject, IndirectObject

    def walk(obj: Any) -> None:
        if isinstance(obj, DictionaryObject):
            items = list(obj.items())
        elif isinstance(obj, ArrayObject):
            items = list(enumerate(obj))
        else:
            return
        for k, v in items:
            if isinstance(v, IndirectObject):
                if v.idnum in replace and v.pdf is writer:
                    obj[k] = replace[v.idnum]
            elif isinstance(v, (DictionaryObject, ArrayObject)):
                walk(v)

    for obj in writer._objects:
        if obj is not None:
            walk(obj)


def _retag_unique(writer: Any) -> int:
    """Give distinct embedded programs distinct subset tags; returns how many were renamed."""
    from pypdf.generic import IndirectObject, NameObject

    by_tag: dict[str, set[int]] = {}
    entries = []
    for _fid, font in _iter_font_dicts(writer):
        fd, ff = _font_file_of(font)
        if fd is None or not isinstance(ff, IndirectObject):
            continue
        name = str(font.get("/BaseFont", ""))[1:]
        if len(name) > 7 and name[6] == "+" and name[:6].isalpha() and name[:6].isupper():
            by_tag.setdefault(name[:6], set()).add(ff.idnum)
            entries.append((font, fd, ff, name))
    used = set(by_tag)
    renamed = 0
    first_owner: dict[str, int] = {}
    new_names: dict[int, str] = {}
    for font, fd, ff, name in entries:
        tag, rest = name[:6], name[7:]
        if len(by_tag[tag]) == 1:
            continue
        owner = first_owner.setdefault(tag, ff.idnum)
        if owner == ff.idnum:
            continue
        new = new_names.get(ff.idnum)
        if new is None:
            data = getattr(ff.get_object(), "_data", b"")
            salt = 0
            while True:
                new = _subset_tag(hashlib.sha256(data).digest(), {}, salt)
                if new not in used:
                    break
                salt += 1
            used.add(new)
            new_names[ff.idnum] = new
            renamed += 1
        newname = NameObject(f"/{new}+{rest}")
        font[NameObject("/BaseFont")] = newname
        if font.get("/Subtype") == "/Type0":
            font["/DescendantFonts"].get_object()[0].get_object()[NameObject("/BaseFont")] = newname
        fd[NameObject("/FontName")] = newname
    return renamed
