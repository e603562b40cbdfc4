"""The reportlab font class that writes document-independent glyph codes (CID = glyph id).

``_GlobalCodeTTFont`` is reportlab's ``TTFont`` written as a Type0/CIDFontType2 font whose
codes are a function of the font file only, so ``fontmerge`` can share one font per face
among the packets of a box (see the docstring of ``archive_builder.render.fonts``). It
is made through ``fontprogram.GlobalCodeTTFont``, which imports this module on first use.

Why one class of this size: it overrides reportlab's code assignment, string splitting,
subset naming and object writing together; each depends on the codes the others chose.
"""

from __future__ import annotations

import struct
from typing import Any

from reportlab.pdfbase import pdfdoc
from reportlab.pdfbase.ttfonts import FF_NONSYMBOLIC, FF_SYMBOLIC, TTFont

from .facecache import _cached_face, _code_tables, _compact_face, _map_file, _store_face
from .fontfiles import FontFace
from .fontprogram import _DOC_FONTS, _FACE_KEY, FontSubset, _DocState, _source_key
from .sfntprogram import (
    _assemble_compact,
    _base_tables_from_face,
    _checksum,
    _cid2gid_stream,
    _components,
    _deflate_block,
    _deflate_fast,
    _dw,
    _Glyph,
    _glyph_block,
    _Precompressed,
    _program_identity,
    _renumber_components,
    _spliced_flate,
    _subset_tag,
    _tounicode_cmap_lines,
    _w_bytes,
)

#: font subsets a face keeps (see ``_GlobalCodeTTFont.subset``): a packet's body face draws
#: characters of its own (names, addresses) and is never met again; a heading face's few
#: character sets recur
_SUBSETS = 8
#: a subset of more characters is not kept: the body face's (names, addresses: ~250
#: characters a packet) and a box's union never recur, and would only hold memory
_SUBSET_CHARS = 160


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
        #: (characters, spliced) -> [FontSubset, what ``addObjects`` made of it] of the last
        #: few documents (see ``subset``)
        self._subsets: dict[tuple[frozenset[str], bool], list[Any]] = {}

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
        ``sharedfonts.SharedFonts`` writes a box's union fonts from it with pikepdf.

        A function of the face and the characters only, so the last ``_SUBSETS`` of at most
        ``_SUBSET_CHARS`` characters are kept: the faces of headings and labels draw the same
        few characters in most packets of a village (the subset of the heading face was made
        again for each of them). The caller must not change the subset's dictionaries."""
        return self._subset_entry(chars, spliced)[0]  # type: ignore[no-any-return]

    def _subset_entry(self, chars: Any, spliced: bool) -> list[Any]:
        """``[subset, None or addObjects' (W array, compressed CIDToGIDMap)]``, kept."""
        key = (frozenset(chars), spliced)
        if len(key[0]) > _SUBSET_CHARS:
            return [self._subset(key[0], spliced=spliced), None]
        cache = self._subsets
        entry = cache.pop(key, None)
        if entry is None:
            entry = [self._subset(key[0], spliced=spliced), None]
            oldest = next(iter(cache), None) if len(cache) >= _SUBSETS else None
            if oldest is not None:  # the least recently used goes (another of the web app's
                cache.pop(oldest, None)  # threads may have taken it already)
        cache[key] = entry
        return entry

    def _subset(self, chars: frozenset[str], *, spliced: bool) -> FontSubset:
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
            # spliced from the glyphs' cached blocks (see _spliced_flate): compressing a
            # packet's programs whole, mostly glyf again, was a large share of its rendering;
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
        entry = self._subset_entry(st.used, compress)
        sub = entry[0]
        if entry[1] is None:
            # the parts of the objects below that take time, made once per subset kept
            c2g_data = None if sub.identity else _cid2gid_stream(sub.cid2gid)
            # two bytes per code up to the largest: mostly zeros, which zlib's level 6
            # is slow to find; level 1 is several times faster for a few hundred bytes more
            entry[1] = (_w_bytes(sub.widths, sub.dw), c2g_data,
                        _deflate_fast(c2g_data) if c2g_data is not None and compress else None)
        w_bytes, c2g_data, c2g_flate = entry[1]
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
            "W": w_bytes,  # preformatted: hundreds of numbers
        }
        if c2g_data is None:
            cidfont["CIDToGIDMap"] = pdfdoc.PDFName("Identity")
        else:
            c2g = stream(c2g_data)
            if c2g_flate is not None:
                c2g.filters = [_Precompressed(c2g_flate)]
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
