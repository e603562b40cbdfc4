"""The face cache: reportlab's parse of a CJK face, kept compact and pickled in the user's
font cache so each process loads it instead of parsing the font file again.

``_cached_face`` returns the cached parse (or None); ``_store_face`` writes one after
reportlab parsed the file. The cache key holds the font file's hash and reportlab's version.
"""

from __future__ import annotations

import bisect
import hashlib
import os
from array import array
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .fontfiles import FontFace, _cache_dir, _file_sha256

#: attributes of a parsed reportlab face that are not stored in the face cache
#: ``glyphToChar`` (63,000 lists for a CJK face) is much of the cache's load time and only
#: ``_code_tables`` reads it, whose result the cache stores as ``_ab_code_tables``.
_FACE_UNCACHED = ("_ttf_data", "_pdfScale", "glyphToChar")


class _CompactMap:
    """A read-only int → number mapping kept as two arrays (keys sorted).

    A CJK face's ``charToGlyph``/``charWidths`` have 63,000 entries each; as dicts they were
    most of what loading a face from the cache cost in every process (and megabytes of
    memory per process). As arrays they unpickle as two byte copies. Lookups (a binary
    search) happen once per distinct character: the fonts memoise codes and widths.
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
    # the version names what the pickles hold, including their classes' module (v6: facecache)
    key = hashlib.sha256(f"face v6|{sha}|{face.subfont_index}|{Version}".encode()).hexdigest()[:32]
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

    Parsing a CJK face is slow, per face and process; loading the cached parse is several
    times faster, which matters for a rebuild that renders one household.
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

    Deriving them walks every glyph of a CJK face, so the face cache stores them.
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
