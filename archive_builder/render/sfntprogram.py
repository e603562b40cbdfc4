"""TrueType subset programs: the font files embedded in our PDFs, assembled byte by byte.

A subset keeps the glyphs a document draws under their original glyph ids (so codes stay a
function of the font file, see ``fonts``), with the face's glyph-independent tables; its
zlib stream can be spliced from cached compressed blocks. Also the PDF-side pieces of a CID
font: /W arrays, CIDToGIDMap and the ToUnicode CMap.

Why one module of this size: the sfnt tables, their checksums and the spliced zlib stream
depend on each other byte for byte.
"""

from __future__ import annotations

import hashlib
import re
import struct
import sys
from array import array
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any


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

    Compressing a packet's programs whole was a large share of its rendering. Compressing
    each glyph alone costs more glyf bytes than compressing the table at once; box PDFs
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
    rather than by summing the tables (which was a large share of a packet's font work).
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
