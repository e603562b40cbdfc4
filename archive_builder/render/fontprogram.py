"""Font programs: the reportlab font class that writes document-independent glyph codes,
and the embedded TrueType subsets it writes.

See the docstring of ``archive_builder.render.fonts`` for why glyph codes are a function of
the font file only (``GlobalCodeTTFont``); ``fontmerge`` relies on it to share one font per
face among the packets of a box.

Why one module of this size: the document-independent CID font and the TrueType subset
programs it embeds are one format: codes, glyph blocks and table assembly depend on each
other byte for byte.
"""

from __future__ import annotations

import bisect
import hashlib
import os
import re
import struct
import sys
from array import array
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .fontfiles import _LOCK, _TTFONTS, FontFace, _cache_dir, _file_sha256

# =========================================================================== reportlab font


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


def _make_ttfont_class() -> type:
    from reportlab.pdfbase import pdfdoc
    from reportlab.pdfbase.ttfonts import FF_NONSYMBOLIC, FF_SYMBOLIC, TTFont

    class _GlobalCodeTTFont(TTFont):
        """reportlab TTFont written as a Type0/CIDFontType2 font with CID = glyph id.

        See the module docstring.  Widths/metrics come from the stock TTFont.
        """

        def __init__(self, name: str, face: FontFace) -> None:
            parsed = _cached_face(face)
            if parsed is not None:
                # what TTFont.__init__ sets, with the face from the cache (the cache key holds
                # the reportlab version; a test compares both routes attribute by attribute)
                from weakref import WeakKeyDictionary

                from reportlab.pdfbase.ttfonts import TTEncoding

                self.fontName = name
                self.face = parsed
                self.encoding = TTEncoding()
                self.state: WeakKeyDictionary[Any, _DocState] = WeakKeyDictionary()
                self._asciiReadable = False
                self.shapable = False
            else:
                super().__init__(name, str(face.path), subfontIndex=face.subfont_index,
                                 asciiReadable=False, shapable=False)
                self.face._ab_code_tables = _code_tables(self.face)
                del self.face.glyphToChar  # nothing reads it any more (see _FACE_UNCACHED)
                _compact_face(self.face)
                _store_face(face, self.face)
                self.face._ttf_data = _map_file(face.path)
            self.ab_face = face
            f = self.face
            self._numGlyphs = len(f.glyphPos) - 1
            self._enc: dict[str, bytes] = {}
            self._cids: dict[int, int] = {}
            self._glyphs: dict[int, _Glyph] = {}
            self._chars: dict[str, tuple[int, int, int, float, str]] = {}
            self._secondary: dict[int, int] | None = None
            self._primary: dict[int, int] | None = None

        # ------------------------------------------------------------ codes
        def _build_primary(self) -> None:
            tables = getattr(self.face, "_ab_code_tables", None)  # stored in the face cache
            if tables is None:
                tables = _code_tables(self.face)
            self._primary, self._secondary = tables

        def cid_of(self, cp: int) -> int:
            """Document-independent code of a code point (0 if the face lacks it)."""
            cid = self._cids.get(cp)
            if cid is not None:
                return cid
            if cp == 0xA0:
                cp2 = 0x20
            else:
                cp2 = cp
            gid = self.face.charToGlyph.get(cp2, 0)
            if gid <= 0 or gid >= self._numGlyphs:
                cid = 0
            else:
                if self._primary is None:
                    self._build_primary()
                assert self._primary is not None and self._secondary is not None
                if self._primary.get(gid, cp2) == cp2:
                    cid = gid
                else:
                    cid = self._numGlyphs + self._secondary.get(cp2, 0xFFFF)
                    if cid > 0xFFFF:
                        cid = gid  # code space exhausted: keep the glyph, lose exact ToUnicode
            self._cids[cp] = cid
            return cid

        def gid_of_cid(self, cid: int) -> int:
            if cid < self._numGlyphs:
                return cid
            assert self._secondary is not None
            # reverse lookup is rare (secondary characters only)
            for cp, rank in self._secondary.items():
                if self._numGlyphs + rank == cid:
                    return self.face.charToGlyph.get(cp, 0)
            return 0

        def _char_info(self, ch: str) -> tuple[int, int, int, float, str]:
            """(code, code point written, glyph id, width, ToUnicode line) of a character;
            code 0 when the face lacks it. Memoised in ``_chars``: a packet's fonts looked
            each of their characters up again in the face's tables."""
            cp = ord(ch)
            if cp == 0xA0:
                cp = 0x20
            cid = self.cid_of(cp)
            if not cid:
                return (0, cp, 0, 0, "")
            face = self.face
            return (cid, cp, face.charToGlyph.get(cp, 0), face.charWidths.get(cp, face.defaultWidth),
                    f"<{cid:04X}> <{chr(cp).encode('utf-16-be').hex().upper()}>")

        def _glyph_entries(self, gids: set[int], deflated: bool) -> dict[int, _Glyph]:
            """``gids`` and every component of a composite among them (``_Glyph`` each),
            memoised per face for this process. ``deflated=False``: an entry's block may be
            left empty (b"") when not made yet."""
            cache = self._glyphs
            out: dict[int, _Glyph] = {}
            todo = list(gids)
            count = self._numGlyphs
            while todo:
                g = todo.pop()
                if g in out:
                    continue
                entry = cache.get(g)
                if entry is None or (deflated and entry[0] and not entry[2]):
                    entry = cache[g] = self._glyph_entry(g, deflated)
                out[g] = entry
                if entry[3]:
                    todo.extend(c for c in entry[3] if c < count and c not in out)
            return out

        def _glyph_entry(self, g: int, deflated: bool) -> _Glyph:
            face = self.face
            aw, lsb = face.hmetrics[g]
            metric = struct.pack(">HH", int(aw) & 0xFFFF, int(lsb) & 0xFFFF)
            p0, p1 = face.glyphPos[g], face.glyphPos[g + 1]
            if p1 <= p0:
                return b"", 0, b"", (), metric
            data, checksum, block = _glyph_block(
                face._ttf_data, face.get_table_pos("glyf")[0], p0, p1, deflated=deflated)
            return data, checksum, block, tuple(_components(data)), metric

        def _state(self, doc: Any) -> _DocState:
            try:
                return self.state[doc]
            except KeyError:
                st = self.state[doc] = _DocState()
                return st

        # ------------------------------------------------------------ reportlab dynamic-font API
        def splitString(self, text: Any, doc: Any, encoding: str = "utf-8") -> list[tuple[int, bytes]]:
            if not isinstance(text, str):
                text = text.decode("utf-8")
            try:
                st = self.state[doc]
            except KeyError:
                st = self.state[doc] = _DocState()
            st.used.update(text)
            enc = self._enc
            try:
                return [(0, b"".join(map(enc.__getitem__, text)))]
            except KeyError:
                for ch in set(text):
                    if ch not in enc:
                        enc[ch] = self.cid_of(ord(ch)).to_bytes(2, "big")
                return [(0, b"".join(map(enc.__getitem__, text)))]

        def getSubsetInternalName(self, subset: int, doc: Any) -> str:
            st = self._state(doc)
            if subset != 0:
                raise IndexError(f"Subset {subset} does not exist in font {self.fontName}")
            if st.internalName is None:
                st.internalName = "F" + repr(len(doc.fontMapping) + 1)
                doc.fontMapping[self.fontName] = "/" + st.internalName
                doc.delayedFonts.append(self)
            return "/" + st.internalName

        def subset(self, chars: Any, *, spliced: bool) -> FontSubset:
            """What a font of this face drawing ``chars`` embeds: its program (with the
            program's flate stream spliced from the glyphs' cached blocks when ``spliced``),
            widths, ToUnicode map and names. ``addObjects`` writes it for reportlab;
            ``fontmerge.SharedFonts`` writes a box's union fonts from it with pypdf."""
            memo = self._chars
            used: dict[int, tuple[int, int, int, float, str]] = {}  # cid -> _char_info
            for ch in chars:
                info = memo.get(ch)
                if info is None:
                    info = memo[ch] = self._char_info(ch)
                if info[0] and info[0] not in used:
                    used[info[0]] = info
            face = self.face
            entries = self._glyph_entries({0, *(info[2] for info in used.values())}, spliced)
            # Compact glyph ids: the program holds only its glyphs, numbered in the order of
            # the original ids, and CIDToGIDMap maps each code to its glyph. With the original
            # ids, loca and hmtx ran to the largest id used (~45,000 entries for WenQuanYi),
            # and building and compressing them was half of a packet's font time.
            order = sorted(entries)
            new = {g: i for i, g in enumerate(order)}
            datas = []
            blocks = []
            glyf_sum = 0
            for g in order:
                data, checksum, block, components, _metric = entries[g]
                if components:  # a composite names its components by glyph id
                    data = _renumber_components(data, new)
                    checksum = _checksum(data)
                    block = _deflate_block(data) if spliced else b""
                datas.append(data)
                blocks.append(block)
                glyf_sum += checksum
            base = _base_tables_from_face(face)
            hmtx = b"".join([entries[g][4] for g in order])
            program, spans = _assemble_compact(base, datas, glyf_sum, hmtx)
            cid2gid = {cid: new[info[2]] for cid, info in used.items()}
            widths = {cid: info[3] for cid, info in used.items()}
            ps = face.name.decode("latin-1") + face.subfontNameX.decode("latin-1")
            identity = getattr(face, "_ab_identity", None)
            if identity is None:
                identity = face._ab_identity = _program_identity(base)
            tag = _subset_tag(identity, cid2gid)
            return FontSubset(
                program=program,
                # spliced from the glyphs' cached blocks (see _spliced_flate): a packet's
                # programs were a third of its rendering time, mostly compressing glyf again;
                # box PDFs carry the shared programs (SharedFonts: compressed whole)
                flate=_spliced_flate(program, spans, blocks, base) if spliced else None,
                basefont=f"{tag}+{ps}",
                flags=(face.flags & ~FF_NONSYMBOLIC) | FF_SYMBOLIC,
                widths=widths,
                dw=_dw(widths),
                cid2gid=cid2gid,
                tounicode=_tounicode_cmap_lines([used[c][4] for c in sorted(used)]).encode("ascii"),
                text="".join(sorted(map(chr, [info[1] for info in used.values()]))),
                marker=_source_key(self) or "",
            )

        def addObjects(self, doc: Any) -> None:
            st = self._state(doc)
            internal = st.internalName or self.getSubsetInternalName(0, doc)[1:]
            compress = bool(doc.compression)
            sub = self.subset(st.used, spliced=compress)
            face = self.face

            def stream(content: bytes, extra: dict[str, Any] | None = None) -> Any:
                s = pdfdoc.PDFStream(content=content,
                                     filters=[pdfdoc.PDFZCompress] if compress else [])
                for k, v in (extra or {}).items():
                    s.dictionary[k] = v
                return s

            basefont = pdfdoc.PDFName(sub.basefont)
            ff_stream = stream(sub.program, {"Length1": len(sub.program)})
            if sub.flate is not None:
                ff_stream.filters = [_Precompressed(sub.flate)]
            ff = doc.Reference(ff_stream)
            desc = doc.Reference(pdfdoc.PDFDictionary({
                "Type": pdfdoc.PDFName("FontDescriptor"),
                "FontName": basefont,
                "Flags": sub.flags,
                "FontBBox": pdfdoc.PDFArray([round(v) for v in face.bbox]),
                "ItalicAngle": face.italicAngle,
                "Ascent": round(face.ascent),
                "Descent": round(face.descent),
                "CapHeight": round(face.capHeight),
                "StemV": face.stemV,
                "MissingWidth": round(face.defaultWidth),
                "FontFile2": ff,
            }))
            cidfont = {
                "Type": pdfdoc.PDFName("Font"),
                "Subtype": pdfdoc.PDFName("CIDFontType2"),
                "BaseFont": basefont,
                "CIDSystemInfo": pdfdoc.PDFDictionary({
                    "Registry": pdfdoc.PDFString("Adobe"),
                    "Ordering": pdfdoc.PDFString("Identity"),
                    "Supplement": 0,
                }),
                "FontDescriptor": desc,
                "DW": sub.dw,
                "W": _w_bytes(sub.widths, sub.dw),  # preformatted: hundreds of numbers
            }
            if sub.identity:
                cidfont["CIDToGIDMap"] = pdfdoc.PDFName("Identity")
            else:
                c2g = stream(_cid2gid_stream(sub.cid2gid))
                if compress:
                    # two bytes per code up to the largest: mostly zeros, which zlib's level 6
                    # took 0.35 ms a font to find (level 1: 0.07 ms, a few hundred bytes more)
                    c2g.filters = [_Precompressed(_deflate_fast(c2g.content))]
                cidfont["CIDToGIDMap"] = doc.Reference(c2g)
            cidref = doc.Reference(pdfdoc.PDFDictionary(cidfont))
            tu = doc.Reference(stream(sub.tounicode))
            font = pdfdoc.PDFDictionary({
                "Type": pdfdoc.PDFName("Font"),
                "Subtype": pdfdoc.PDFName("Type0"),
                "BaseFont": basefont,
                "Encoding": pdfdoc.PDFName("Identity-H"),
                "DescendantFonts": pdfdoc.PDFArray([cidref]),
                "ToUnicode": tu,
            })
            if sub.marker:
                # what the file's font draws, for collation (``RenderResult.fonts``)
                doc.__dict__.setdefault(_DOC_FONTS, []).append(("/" + internal, sub.marker, sub.text))
                # private key: lets merge_font_subsets take the glyphs from the font file
                # instead of decompressing this program (see _FACE_KEY)
                font[_FACE_KEY[1:]] = pdfdoc.PDFName(sub.marker)
            ref = doc.Reference(font, internal)
            doc.idToObject["BasicFonts"].dict[internal] = ref
            del self.state[doc]

    return _GlobalCodeTTFont


_GCT_CLASS: type | None = None

#: attributes of a parsed reportlab face that are not stored in the face cache
#: ``glyphToChar`` (63,000 lists for a CJK face) is a third of the cache's load time and only
#: ``_code_tables`` reads it, whose result the cache stores as ``_ab_code_tables``.
_FACE_UNCACHED = ("_ttf_data", "_pdfScale", "glyphToChar")


class _CompactMap:
    """A read-only int → number mapping kept as two arrays (keys sorted).

    A CJK face's ``charToGlyph``/``charWidths`` have 63,000 entries each; as dicts they took
    most of the 45 ms a face cost to load from the cache in every process (and ~10 MB of
    memory per process). As arrays they unpickle as two byte copies. Lookups (a binary search,
    ~0.5 µs) happen once per distinct character: the fonts memoise codes and widths.
    """

    __slots__ = ("_keys", "_values")

    def __init__(self, keys: Any, values: Any) -> None:
        self._keys = keys
        self._values = values

    @classmethod
    def of(cls, mapping: Mapping[int, Any], typecode: str) -> _CompactMap:
        keys = sorted(mapping)
        return cls(array("I", keys), array(typecode, (mapping[k] for k in keys)))

    def get(self, key: int, default: Any = None) -> Any:
        keys = self._keys
        i = bisect.bisect_left(keys, key)
        if i < len(keys) and keys[i] == key:
            return self._values[i]
        return default

    def __getitem__(self, key: int) -> Any:
        value = self.get(key, _MISSING)
        if value is _MISSING:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        return isinstance(key, int) and self.get(key, _MISSING) is not _MISSING

    def __len__(self) -> int:
        return len(self._keys)

    def __iter__(self) -> Any:
        return iter(self._keys)

    def keys(self) -> Any:
        return iter(self._keys)

    def items(self) -> Any:
        return zip(self._keys, self._values)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, _CompactMap):
            return self._keys == other._keys and self._values == other._values
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __reduce__(self) -> Any:
        return (_CompactMap, (self._keys, self._values))


class _Metrics:
    """``hmetrics`` (glyph → (advance, left side bearing)) as two arrays; see _CompactMap."""

    __slots__ = ("_aw", "_lsb")

    def __init__(self, aw: Any, lsb: Any) -> None:
        self._aw = aw
        self._lsb = lsb

    @classmethod
    def of(cls, pairs: Sequence[tuple[int, int]]) -> _Metrics:
        return cls(array("l", (int(a) for a, _ in pairs)), array("l", (int(b) for _, b in pairs)))

    def __getitem__(self, gid: int) -> tuple[int, int]:
        return self._aw[gid], self._lsb[gid]

    def __len__(self) -> int:
        return len(self._aw)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, _Metrics):
            return self._aw == other._aw and self._lsb == other._lsb
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __reduce__(self) -> Any:
        return (_Metrics, (self._aw, self._lsb))


_MISSING = object()


def _compact_face(face: Any) -> None:
    """Replace a parsed face's big tables by their compact forms (same lookups, same values)."""
    face.charToGlyph = _CompactMap.of(face.charToGlyph, "I")
    face.charWidths = _CompactMap.of(face.charWidths, "d")
    face.hmetrics = _Metrics.of(face.hmetrics)
    face.glyphPos = array("I", face.glyphPos)
    prim, sec = face._ab_code_tables
    face._ab_code_tables = (_CompactMap.of(prim, "I"), _CompactMap.of(sec, "I"))


def _face_cache_file(face: FontFace) -> Path | None:
    cdir = _cache_dir()
    if cdir is None:
        return None
    try:
        from reportlab import Version

        sha = _file_sha256(Path(face.path))
    except (OSError, ImportError):
        return None
    key = hashlib.sha256(f"face v5|{sha}|{face.subfont_index}|{Version}".encode()).hexdigest()[:32]
    return cdir / f"face-{key}.pickle"


def _map_file(path: str | os.PathLike[str]) -> Any:
    """The font file's bytes as a read-only memory map (bytes if mapping fails).

    A face keeps its whole file (a CJK collection is 17–50 MB) for glyph data and tables;
    mapped, a process holds only the pages of the glyphs it used, shared with its workers.
    Everything here and in reportlab only slices it.
    """
    import mmap

    with open(path, "rb") as fh:
        try:
            return mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError):  # empty file, or a file system without mmap
            fh.seek(0)
            return fh.read()


def _cached_face(face: FontFace) -> Any:
    """The reportlab face parsed earlier (pickle in the font cache), or None.

    Parsing a CJK face costs ~0.2 s per face and process; the cache turns that into
    ~0.05 s, which matters for a rebuild that renders one household.
    """
    path = _face_cache_file(face)
    if path is None or not path.is_file():
        return None
    try:
        import pickle

        from reportlab.pdfbase.ttfonts import TTFontFace

        state = pickle.loads(path.read_bytes())  # our own cache file, beside sha256.json
        parsed = TTFontFace.__new__(TTFontFace)
        parsed.__dict__.update(state)
        parsed._ttf_data = _map_file(Path(face.path))
        upem = parsed.unitsPerEm
        mult = 1000 / upem
        parsed._pdfScale = (lambda x: x) if upem == 1000 else (lambda x: x * mult)
        return parsed
    except Exception:  # noqa: BLE001 - a damaged cache is ignored
        return None


def _code_tables(parsed: Any) -> tuple[dict[int, int], dict[int, int]]:
    """Return (glyph → its primary code point, secondary code point → rank) of a parsed face.

    Deriving them walks every glyph (~0.04 s for a CJK face), so the face cache stores them.
    """
    prim: dict[int, int] = {}
    sec: list[int] = []
    for gid, chars in parsed.glyphToChar.items():
        cs = sorted(c for c in chars if c != 0xA0)
        if not cs:
            continue
        prim[gid] = cs[0]
        sec.extend(cs[1:])
    sec.sort()
    return prim, {cp: i for i, cp in enumerate(sec)}


def _store_face(face: FontFace, parsed: Any) -> None:
    path = _face_cache_file(face)
    if path is None:
        return
    try:
        import pickle

        from ..archive.outdir import atomic_file

        state = {k: v for k, v in vars(parsed).items() if k not in _FACE_UNCACHED}
        with atomic_file(path, durable=False) as handle:
            handle.write(pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL))
    except Exception:  # noqa: BLE001, S110 - the cache is only an optimisation
        pass


class _Precompressed:
    """reportlab stream filter: FlateDecode whose encoded bytes were made beforehand."""

    pdfname = "FlateDecode"

    def __init__(self, encoded: bytes) -> None:
        self.encoded = encoded

    def encode(self, data: bytes | str) -> bytes:
        return self.encoded

    @staticmethod
    def decode(data: bytes) -> bytes:
        import zlib

        return zlib.decompress(data)


_PRISTINE: Any = None  # a raw-deflate compressor never fed, copied for each glyph


def _glyph_block(data: Any, glyf_off: int, p0: int, p1: int, *,
                 deflated: bool = True) -> tuple[bytes, int, bytes]:
    """One glyph's entry for ``_spliced_flate``: its bytes padded to a 4-byte boundary, their
    checksum, and their raw deflate (level 1) ending byte-aligned (sync flush) and without
    references to anything before it, so that blocks of any glyphs can be concatenated.
    ``deflated=False`` leaves the block empty (the union fonts of a box are compressed whole)."""
    g = bytes(data[glyf_off + p0 : glyf_off + p1])
    pad = -len(g) & 3
    if pad:
        g += b"\0" * pad
    return g, _checksum(g), _deflate_block(g) if deflated else b""


def _deflate_block(data: bytes) -> bytes:
    """Raw deflate (level 1) of ``data`` ending byte-aligned (sync flush), referring to
    nothing before it (see ``_glyph_block``)."""
    import zlib

    global _PRISTINE
    if _PRISTINE is None:
        _PRISTINE = zlib.compressobj(1, zlib.DEFLATED, -15)
    # a copy of a compressor that never saw data starts exactly as a new one (same bytes
    # out), for half the cost of setting one up
    c = _PRISTINE.copy()
    return c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)


#: a glyph of a face, as ``GlobalCodeTTFont._glyph_entry`` caches it: its outline padded to
#: 4 bytes (b"" for an empty glyph), the outline's checksum, its raw-deflate block
#: (``_glyph_block``; b"" when not made), its components' original ids (a composite glyph's)
#: and its hmtx entry
_Glyph = tuple[bytes, int, bytes, tuple[int, ...], bytes]

#: where ``_assemble_compact`` puts the tables: the sfnt directory, then the tables that are
#: the same in every program of a face, then glyf, then the tables that depend on the glyphs
#: (the directory lists them by tag, as it must; table data may lie in any order)
_CONSTANT_ORDER = ("OS/2", "cmap", "cvt ", "fpgm", "name", "post", "prep")
_VARIABLE_ORDER = ("head", "hhea", "hmtx", "loca", "maxp")


def _assemble_compact(base: Mapping[str, bytes], datas: Sequence[bytes], glyf_sum: int,
                      hmtx: bytes) -> tuple[bytes, dict[str, tuple[int, int]]]:
    """A program of the glyphs ``datas`` (padded outlines numbered 0, 1, …; b"" for an empty
    glyph) with their ``hmtx``; also each table's (start, end). See ``_CONSTANT_ORDER``."""
    from itertools import accumulate

    n = len(datas)
    offsets = [0, *accumulate(map(len, datas))]
    if offsets[-1] > 0x1FFFE:
        loc_fmt, loca_arr = 1, array("I" if array("I").itemsize == 4 else "L", offsets)
    else:
        loc_fmt, loca_arr = 0, array("H", [o >> 1 for o in offsets])
    if sys.byteorder == "little":
        loca_arr.byteswap()
    tables = {tag: base[tag] for tag in ("name", "OS/2", "cvt ", "fpgm", "prep", "post") if tag in base}
    tables["cmap"] = _EMPTY_CMAP
    tables["glyf"] = b"".join(datas)
    tables["hmtx"] = hmtx
    tables["loca"] = loca_arr.tobytes()
    hhea, maxp, head = base["hhea"], base["maxp"], base["head"]
    tables["hhea"] = hhea[:34] + struct.pack(">H", n) + hhea[36:]
    tables["maxp"] = maxp[:4] + struct.pack(">H", n) + maxp[6:]
    tables["head"] = head[:8] + b"\0\0\0\0" + head[12:50] + struct.pack(">h", loc_fmt) + head[52:]
    order = [t for t in (*_CONSTANT_ORDER, "glyf", *_VARIABLE_ORDER) if t in tables]
    return _make_sfnt_spans(tables, {"glyf": glyf_sum & 0xFFFFFFFF}, order=order)


def _stored_block(data: bytes) -> bytes:
    """``data`` as non-final stored deflate blocks (no compression; byte-aligned)."""
    out = []
    for i in range(0, len(data), 0xFFFF):
        chunk = data[i : i + 0xFFFF]
        out.append(b"\x00" + struct.pack("<HH", len(chunk), len(chunk) ^ 0xFFFF) + chunk)
    return b"".join(out)


def _constant_block(base: Mapping[str, bytes], program: bytes, start: int, end: int) -> bytes:
    """The deflate block of a program's constant tables (``program[start:end]``), made once
    per face for this process (they are the same bytes in every program of the face)."""
    cache = _CONSTANT_BLOCKS.get(id(base))
    if cache is None or cache[0] is not base:
        cache = _CONSTANT_BLOCKS[id(base)] = (base, {})
    region = program[start:end]
    block = cache[1].get(region)
    if block is None:
        block = cache[1][region] = _deflate_block(region)
    return block


#: id(base tables of a face) -> (those tables, {constant region: its deflate block})
_CONSTANT_BLOCKS: dict[int, tuple[Mapping[str, bytes], dict[bytes, bytes]]] = {}


def _spliced_flate(program: bytes, spans: Mapping[str, tuple[int, int]], blocks: Sequence[bytes],
                   base: Mapping[str, bytes]) -> bytes:
    """zlib stream of ``program`` (``_assemble_compact``) made of deflate blocks that refer to
    nothing before them: the directory stored as it is (~200 bytes), the face's constant
    tables from a block made once per process, the glyphs' cached blocks (``_glyph_block``,
    in glyph order), and the tables that depend on the glyphs compressed now (the final block).

    A packet's programs used to be compressed whole, a third of its rendering time. Compressing
    each glyph alone costs ~35 % more glyf bytes than compressing the table at once; box PDFs
    carry the shared programs, compressed whole (tested: ``zlib.decompress`` gives the
    program back, whichever glyphs an earlier document put in the caches).
    """
    import zlib

    constants = [spans[t] for t in _CONSTANT_ORDER if t in spans]
    directory_end = constants[0][0] if constants else spans["glyf"][0]
    glyf_start, glyf_end = spans["glyf"]
    return b"".join((
        b"\x78\x01",  # zlib header: deflate, 32 KiB window, fastest
        _stored_block(program[:directory_end]),
        _constant_block(base, program, directory_end, glyf_start) if glyf_start > directory_end else b"",
        *blocks,
        zlib.compress(program[glyf_end:], 1, -15),  # ends with the final block
        zlib.adler32(program).to_bytes(4, "big"),
    ))

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
    """Create the reportlab font for ``face`` (class built lazily to keep imports cheap)."""
    global _GCT_CLASS
    if _GCT_CLASS is None:
        _GCT_CLASS = _make_ttfont_class()
    return _GCT_CLASS(name, face)


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


# =========================================================================== font programs

_GF_MORE = 1 << 5
_GF_WORDS = 1 << 0
_GF_SCALE = 1 << 3
_GF_XY = 1 << 6
_GF_2X2 = 1 << 7


def _component_offsets(glyph: bytes) -> list[tuple[int, int]]:
    """(offset of the glyph id, glyph id) of each component of a composite glyph (empty for
    simple glyphs)."""
    if len(glyph) < 10 or struct.unpack(">h", glyph[:2])[0] >= 0:
        return []
    out = []
    p = 10
    flags = _GF_MORE
    while flags & _GF_MORE and p + 4 <= len(glyph):
        flags, gid = struct.unpack(">HH", glyph[p : p + 4])
        out.append((p + 2, gid))
        p += 4 + (4 if flags & _GF_WORDS else 2)
        if flags & _GF_SCALE:
            p += 2
        elif flags & _GF_XY:
            p += 4
        elif flags & _GF_2X2:
            p += 8
    return out


def _components(glyph: bytes) -> list[int]:
    """Component glyph ids of a composite glyph (empty for simple glyphs)."""
    return [gid for _offset, gid in _component_offsets(glyph)]


def _renumber_components(glyph: bytes, new: Mapping[int, int]) -> bytes:
    """``glyph`` with each component's glyph id ``g`` replaced by ``new[g]`` (a component
    missing from ``new`` becomes glyph 0, which every program has)."""
    out = bytearray(glyph)
    for offset, gid in _component_offsets(glyph):
        struct.pack_into(">H", out, offset, new.get(gid, 0))
    return bytes(out)


_KEEP_NAME_IDS = {0, 1, 2, 3, 4, 5, 6}


def _reduce_name_table(data: bytes) -> bytes:
    """Keep copyright, family, style, unique id, full name, version and PostScript name."""
    try:
        _fmt, count, string_off = struct.unpack(">HHH", data[:6])
        recs = []
        for i in range(count):
            pid, eid, lid, nid, length, off = struct.unpack(">6H", data[6 + 12 * i : 18 + 12 * i])
            if nid in _KEEP_NAME_IDS:
                recs.append((pid, eid, lid, nid, data[string_off + off : string_off + off + length]))
        strings = b""
        out = []
        pool: dict[bytes, int] = {}
        for pid, eid, lid, nid, raw in recs:
            if raw not in pool:
                pool[raw] = len(strings)
                strings += raw
            out.append(struct.pack(">6H", pid, eid, lid, nid, len(raw), pool[raw]))
        return struct.pack(">HHH", 0, len(out), 6 + 12 * len(out)) + b"".join(out) + strings
    except struct.error:
        return data


def _base_tables_from_face(face: Any) -> dict[str, bytes]:
    """The glyph-independent tables copied into every embedded program of this face."""
    cache = getattr(face, "_ab_base_tables", None)
    if cache is not None:
        return cache
    base: dict[str, bytes] = {}
    for tag in ("OS/2", "cvt ", "fpgm", "prep", "head", "hhea", "maxp"):
        try:
            base[tag] = face.get_table(tag)
        except KeyError:
            pass
    base["name"] = _reduce_name_table(face.get_table("name"))
    base["post"] = b"\x00\x03\x00\x00" + face.get_table("post")[4:16] + b"\x00" * 16
    face._ab_base_tables = base
    return base


# a cmap with only the mandatory final segment: CIDFontType2 programs are addressed by glyph id
_EMPTY_CMAP = struct.pack(">HHHHI", 0, 1, 3, 1, 12) + struct.pack(
    ">HHHHHHHHHHhH", 4, 24, 0, 2, 2, 0, 0, 0xFFFF, 0, 0xFFFF, 1, 0)


def _build_program(base: Mapping[str, bytes], glyphs: Mapping[int, bytes],
                   hmetrics: Mapping[int, tuple[int, int]]) -> bytes:
    """A TrueType program with original glyph ids; glyphs not given are empty."""
    return _assemble_program(base, glyphs, hmetrics)[0]


def _assemble_program(base: Mapping[str, bytes], glyphs: Mapping[int, bytes],
                      hmetrics: Mapping[int, tuple[int, int]], *,
                      glyf_sum: int | None = None) -> tuple[bytes, tuple[int, int]]:
    """``_build_program``, and where its ``glyf`` table lies: (program, (start, end)).

    ``glyf_sum``: the glyf table's checksum when the caller knows it (the sum of the padded
    glyphs' checksums). ``loca`` and ``hmtx`` cover every glyph id up to the largest used,
    so they are mostly zeros: their checksums are computed from the few entries written
    rather than by summing the tables (that summing was a quarter of a packet's font time).
    """
    n = max(max(glyphs, default=0), max(hmetrics, default=0)) + 1
    glyf_parts = []
    # loca is runs of equal offsets between the glyphs present: (entries, offset) per run
    runs: list[tuple[int, int]] = []
    pos = offset = 0
    for g in sorted(g for g, d in glyphs.items() if d):
        d = glyphs[g]
        pad = -len(d) & 3
        glyf_parts.append(d + b"\0" * pad if pad else d)
        runs.append((g + 1 - pos, offset))
        pos = g + 1
        offset += len(d) + pad
    runs.append((n + 1 - pos, offset))
    sums: dict[str, int] = {}
    if offset > 0x1FFFE:
        loc_fmt = 1
        loca = b"".join(struct.pack(">L", v) * k for k, v in runs)
        sums["loca"] = sum(k * v for k, v in runs) & 0xFFFFFFFF
    else:
        loc_fmt = 0
        loca = b"".join(struct.pack(">H", v >> 1) * k for k, v in runs)
        # 32-bit words are (even entry << 16 | odd entry); a missing last odd entry is padding
        hi = lo = 0
        start = 0
        for k, v in runs:
            even = (start + k + 1) // 2 - (start + 1) // 2
            hi += even * (v >> 1)
            lo += (k - even) * (v >> 1)
            start += k
        sums["loca"] = ((hi << 16) + lo) & 0xFFFFFFFF
    hmtx = bytearray(4 * n)
    hsum = 0
    for g, (aw, lsb) in hmetrics.items():
        aw, lsb = int(aw) & 0xFFFF, int(lsb) & 0xFFFF
        struct.pack_into(">HH", hmtx, 4 * g, aw, lsb)
        hsum += (aw << 16) | lsb
    sums["hmtx"] = hsum & 0xFFFFFFFF
    tables = {tag: base[tag] for tag in ("name", "OS/2", "cvt ", "fpgm", "prep", "post") if tag in base}
    tables["cmap"] = _EMPTY_CMAP
    tables["hmtx"] = bytes(hmtx)
    hhea = base["hhea"]
    tables["hhea"] = hhea[:34] + struct.pack(">H", n) + hhea[36:]
    maxp = base["maxp"]
    tables["maxp"] = maxp[:4] + struct.pack(">H", n) + maxp[6:]
    tables["glyf"] = b"".join(glyf_parts)
    tables["loca"] = loca
    head = base["head"]
    tables["head"] = head[:8] + b"\0\0\0\0" + head[12:50] + struct.pack(">h", loc_fmt) + head[52:]
    if glyf_sum is not None:
        sums["glyf"] = glyf_sum
    program, spans = _make_sfnt_spans(tables, sums)
    return program, spans["glyf"]


def _checksum(data: bytes) -> int:
    pad = -len(data) & 3
    if pad:
        data = data + b"\0" * pad
    arr = array("I", data)
    if sys.byteorder == "little":
        arr.byteswap()
    return sum(arr) & 0xFFFFFFFF


#: checksums of the per-face constant tables (the same bytes objects for every packet)
_TABLE_SUMS: dict[bytes, int] = {}
_CONSTANT_TABLES = frozenset(("name", "OS/2", "cvt ", "fpgm", "prep", "post", "cmap"))


def _table_checksum(tag: str, data: bytes) -> int:
    if tag not in _CONSTANT_TABLES:
        return _checksum(data)
    value = _TABLE_SUMS.get(data)
    if value is None:
        value = _checksum(data)
        if len(_TABLE_SUMS) > 512:  # programs read back at merge bring new objects
            _TABLE_SUMS.clear()
        _TABLE_SUMS[data] = value
    return value


def _make_sfnt_spans(tables: Mapping[str, bytes], sums: Mapping[str, int] | None = None, *,
                     order: Sequence[str] | None = None) -> tuple[bytes, dict[str, tuple[int, int]]]:
    """Assemble an sfnt (TrueType) file; also return each table's (start, end) in it.

    ``sums``: table checksums already known.  ``checkSumAdjustment`` is derived from the
    header and the table checksums (tables are 4-byte aligned and zero-padded, so the file's
    checksum is their sum) instead of summing the whole file again. ``order``: the order of
    the tables' data in the file (default: by tag, the directory's order).
    """
    sums = sums or {}
    tags = sorted(tables)
    num = len(tags)
    sr, es = 1, 0
    while sr * 2 <= num:
        sr, es = sr * 2, es + 1
    body: list[bytes] = []
    offset = 12 + 16 * num
    spans = {}
    checksums = {}
    head_index = -1
    total = 0
    for tag in order or tags:
        data = tables[tag]
        if tag == "head":
            head_index = len(body)
        checksum = sums.get(tag)
        if checksum is None:
            checksum = _table_checksum(tag, data)
        total += checksum
        checksums[tag] = checksum
        spans[tag] = (offset, offset + len(data))
        pad = -len(data) & 3
        body.append(data + b"\0" * pad if pad else data)
        offset += len(data) + pad
    if len(spans) != num:
        raise ValueError("order must name every table once")
    header = [struct.pack(">IHHHH", 0x00010000, num, sr * 16, es, num * 16 - sr * 16)]
    header += [struct.pack(">4sIII", tag.encode("latin-1"), checksums[tag], spans[tag][0],
                           spans[tag][1] - spans[tag][0]) for tag in tags]
    head_bytes = b"".join(header)
    total += _checksum(head_bytes)
    if head_index >= 0:
        # checkSumAdjustment written into the head table before the one join (the program
        # was copied three more times to patch it afterwards)
        head = body[head_index]
        adj = (0xB1B0AFBA - total) & 0xFFFFFFFF
        body[head_index] = head[:8] + struct.pack(">I", adj) + head[12:]
    return b"".join((head_bytes, *body)), spans


def _program_identity(base: Mapping[str, bytes]) -> bytes:
    """Digest of the glyph-independent parts of a program: same face, same font version."""
    h = hashlib.sha256()
    for tag in ("name", "OS/2", "cvt ", "fpgm", "prep", "post"):
        h.update(tag.encode() + len(base.get(tag, b"")).to_bytes(4, "big") + base.get(tag, b""))
    head = base.get("head", b"")
    h.update(head[:8] + head[12:50])
    h.update(base.get("hhea", b"")[:34])
    return h.digest()


def _subset_tag(identity: bytes, cid2gid: Mapping[int, int], salt: int = 0) -> str:
    h = hashlib.sha256(identity)
    h.update(struct.pack(">I", salt))
    pairs = array("H", [v for cid in sorted(cid2gid) for v in (cid, cid2gid[cid])])
    if sys.byteorder == "little":
        pairs.byteswap()
    h.update(pairs.tobytes())  # the bytes of struct.pack(">HH", cid, gid) for each, in order
    v = int.from_bytes(h.digest()[:8], "big")
    letters = []
    for _ in range(6):
        v, r = divmod(v, 26)
        letters.append(chr(65 + r))
    return "".join(letters)


def _pdf_num(w: float) -> int | float:
    return int(w) if float(w).is_integer() else round(float(w), 3)


def _dw(widths: Mapping[int, float]) -> int | float:
    """The most common width (becomes ``DW``; only other widths are listed in ``W``)."""
    if not widths:
        return 1000
    counts: Counter[int | float] = Counter()
    for w, k in Counter(widths.values()).items():  # a few distinct widths: each formatted once
        counts[_pdf_num(w)] += k
    return max(sorted(counts), key=counts.__getitem__)


def _w_array(widths: Mapping[int, float], dw: float | None = None, nested: Any = None) -> list[Any]:
    """``W`` array entries ``c [w1 w2 ...]`` for consecutive CIDs whose width is not ``dw``.

    The runs are reportlab ``PDFArray``s, or made by ``nested`` (e.g. ``list``) when given.
    """
    wrap = nested or _pdf_array
    out: list[Any] = []
    run: list[Any] = []
    start = prev = None
    for cid in sorted(widths):
        w = _pdf_num(widths[cid])
        if dw is not None and w == dw:
            continue
        if prev is not None and cid == prev + 1:
            run.append(w)
        else:
            if run:
                out += [start, wrap(run)]
            start, run = cid, [w]
        prev = cid
    if run:
        out += [start, wrap(run)]
    return out


def _w_bytes(widths: Mapping[int, float], dw: float | None = None) -> bytes:
    """``_w_array`` written out as a PDF array (reportlab copies bytes into the file); each
    width formatted as reportlab's ``fp_str`` formats it, once per process (a few distinct
    values; ``fp_str`` is pure Python here)."""
    text = _W_TEXT
    parts = []
    for item in _w_array(widths, dw, nested=list):
        if isinstance(item, list):
            words = []
            for w in item:
                t = text.get(w)
                if t is None:
                    from reportlab.lib.rl_accel import fp_str

                    t = text[w] = fp_str(w)
                words.append(t)
            parts.append("[" + " ".join(words) + "]")
        else:
            parts.append(str(item))
    return ("[" + " ".join(parts) + "]").encode("ascii")


_W_TEXT: dict[float, str] = {}  # width -> fp_str(width), see _w_bytes


def _pdf_array(items: list[Any]) -> Any:
    from reportlab.pdfbase import pdfdoc

    return pdfdoc.PDFArray(items)


def _deflate_fast(data: bytes) -> bytes:
    """zlib stream of ``data`` at level 1 (for the mostly-zero CIDToGIDMap streams)."""
    import zlib

    return zlib.compress(data, 1)


def _cid2gid_stream(cid2gid: Mapping[int, int]) -> bytes:
    n = max(cid2gid, default=0) + 1
    arr = bytearray(2 * n)
    for cid, gid in cid2gid.items():
        arr[2 * cid : 2 * cid + 2] = struct.pack(">H", gid)
    return bytes(arr)


_CMAP_MARKER = "ArchiveBuilder-Identity-UCS"


def _tounicode_cmap(mapping: Mapping[int, str]) -> str:
    return _tounicode_cmap_lines(
        [f"<{cid:04X}> <{s.encode('utf-16-be').hex().upper()}>" for cid, s in sorted(mapping.items())]
    )


def _tounicode_cmap_lines(bfchars: Sequence[str]) -> str:
    """ToUnicode CMap of ``bfchar`` lines (``<code> <UTF-16BE>``, in code order)."""
    lines = [
        "/CIDInit /ProcSet findresource begin",
        "12 dict begin",
        "begincmap",
        "/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def",
        f"/CMapName /{_CMAP_MARKER} def",
        "/CMapType 2 def",
        "1 begincodespacerange",
        "<0000> <FFFF>",
        "endcodespacerange",
    ]
    for i in range(0, len(bfchars), 100):
        chunk = bfchars[i : i + 100]
        lines.append(f"{len(chunk)} beginbfchar")
        lines.extend(chunk)
        lines.append("endbfchar")
    lines += ["endcmap", "CMapName currentdict /CMap defineresource pop", "end", "end"]
    return "\n".join(lines)


_BFCHAR_RE = re.compile(rb"<([0-9A-Fa-f]{4})>\s*<([0-9A-Fa-f]+)>")
_BFCHAR_DST_RE = re.compile(rb"<[0-9A-Fa-f]{4}>\s*<([0-9A-Fa-f]+)>")


#: attribute of a reportlab document listing its fonts of ours (see ``RenderResult.fonts``)
_DOC_FONTS = "_ab_fonts"

