"""CJK fonts for the PDF writer: discovery, rare-character fallback, widths, and
document-independent glyph codes so that per-household PDFs can share one font copy
after collation.

Overview
========

``FontSet.discover()`` picks one TrueType-outline face per role (``title``, ``body``,
``heading``, ``kai``, ``table``) from the template set's ``[fonts]`` table, then
``$ARCHIVE_BUILDER_FONT_DIRS`` and the usual Windows/macOS/Linux font folders.  CFF-outline
fonts (``OTTO``: Noto/Source Han CJK, some macOS fonts) cannot be embedded by reportlab and
are skipped with the reason recorded in ``FontSet.skipped``.

Rare characters (生僻字 such as 𠮷 U+20BB7) missing from a role's face are drawn with the
first fallback face that has them (BabelStone Han, Hanazono A/B, then the other role
faces).  Fallback faces are parsed by reportlab only when a character actually needs them;
before that a light ``cmap`` reader answers "does this face have the character?".

Glyph codes (why this module does not use reportlab's stock TrueType embedding)
--------------------------------------------------------------------------------
Stock reportlab gives characters 1-byte codes in order of first use, in 256-code simple
TrueType subsets, and names the first subset of every document ``AAAAAA+``.  Pages of two
documents therefore use different codes for the same character, the font copies cannot be
shared after merging, and merged files repeat subset tags (ISO 32000-1 §9.6.4).

``FontSet.register()`` registers ``GlobalCodeTTFont`` instead: a reportlab ``TTFont`` whose
text is written with a **composite font** (``/Type0``, ``/Identity-H``, ``CIDFontType2``)
and 2-byte codes.  The code of a character is a function of the font file only:

* ``CID = glyph id`` of the character in the original font (the character's "primary"
  glyph user: the lowest code point mapped to that glyph);
* a character that shares its glyph with a lower code point (e.g. a Kangxi radical or a
  compatibility ideograph drawn like a unified ideograph) gets
  ``CID = numGlyphs + rank`` (rank in the face's sorted list of such characters) and a
  ``CIDToGIDMap`` stream maps it to the glyph, so text extraction still yields the exact
  character that was written.

So every document rendered from the same font file uses the same code for the same
character, one font object per face per document (no 256-code subset switching), and each
document embeds only its glyphs: the embedded program keeps original glyph ids with empty
outlines for unused glyphs (``loca``/``hmtx`` runs of zeros compress to almost nothing).

``merge_font_subsets(writer, fonts)`` then replaces the per-document copies in a collated
``pypdf.PdfWriter`` by one font per face whose program holds the union of the glyphs, and
gives every distinct embedded subset a unique tag derived from its content.  Every font we
write carries a private ``/ABFace`` key naming its font file (content hash) and face; when
the collating process has that face loaded, the union is built from the font file and the
packets' programs are never decompressed.  Fonts without the key (older packets, a face not
loaded) are read back from their embedded programs, so the font files are not required.

Notes for the PDF writer
------------------------
* Call ``FontSet.register()`` before creating a canvas.  It also sets
  ``reportlab.rl_config.canvas_basefontname`` to the body font so that no canvas starts with
  Helvetica; an unembedded Helvetica fails the archive requirements.  If you create a canvas
  yourself, pass ``initialFontName=fontset.faces["body"].rl_name`` and never use the
  standard-14 fonts (``Helvetica``, ``Times-Roman``…) or platypus default styles.
* Word spacing (``Tw``/``setWordSpace``) applies only to the 1-byte code 32 and therefore has
  no effect with these 2-byte fonts: justify with ``Tc`` (``setCharSpace``) or explicit x
  positions.  Character spacing, rise, render mode and colours work as usual.
* Draw each ``(rl_name, substring)`` of ``FontSet.runs(text, role)`` with that font; use
  ``FontSet.string_width`` for layout (it includes fallback fonts).
"""

from __future__ import annotations

import bisect
import hashlib
import json
import operator
import os
import re
import struct
import sys
import threading
import unicodedata
from array import array
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import compress, islice
from pathlib import Path
from typing import Any

try:  # the foundation engineer's hierarchy; fall back so this module stays importable alone
    from archive_builder.errors import FontError as _FontErrorBase
except ImportError:  # pragma: no cover - only when errors.py is absent
    try:
        from archive_builder.errors import ArchiveError as _FontErrorBase  # type: ignore[assignment]
    except ImportError:
        _FontErrorBase = Exception  # type: ignore[assignment,misc]

__all__ = [
    "ROLES",
    "FontFace",
    "FontNotFoundError",
    "FontSet",
    "GlobalCodeTTFont",
    "font_report",
    "merge_font_subsets",
]

ROLES = ("title", "body", "heading", "kai", "table")

ROLE_LABELS = {
    "title": "标题（小标宋）",
    "body": "正文（仿宋）",
    "heading": "小标题（黑体）",
    "kai": "楷体",
    "table": "表格（宋体）",
}

INSTALL_HINT = (
    "Debian/Ubuntu：sudo apt-get install fonts-arphic-uming fonts-wqy-zenhei "
    "fonts-arphic-ukai fonts-babelstone-han；Windows：系统自带宋体/仿宋（simsun.ttc、simfang.ttf）"
    "即可；也可以在 archive.toml 的 [fonts] 中写明字体文件路径，例如 body = \"fonts/simfang.ttf\"，"
    "或把字体所在文件夹加入环境变量 ARCHIVE_BUILDER_FONT_DIRS。"
)


class FontNotFoundError(_FontErrorBase):  # type: ignore[misc,valid-type]
    """No usable CJK TrueType font (or a configured font file is unusable)."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        if _FontErrorBase is Exception:  # pragma: no cover
            Exception.__init__(self, message)
            self.hint = hint
        else:
            super().__init__(message, hint=hint)
        self.message = message


# =========================================================================== light sfnt reader

_TAG_TTCF = b"ttcf"
_SFNT_TRUETYPE = (0x00010000, 0x74727565)  # 1.0, 'true'
_SFNT_CFF = 0x4F54544F  # 'OTTO'


class _Sfnt:
    """Minimal reader of one face of a TrueType/OpenType file or collection.

    Reads only the table directory and the tables asked for (seek + read), so probing a
    50 MB font costs a few kilobytes of I/O.
    """

    def __init__(self, source: str | os.PathLike[str] | bytes, index: int = 0) -> None:
        self._data: bytes | None = source if isinstance(source, (bytes, bytearray)) else None
        self._fh = None if self._data is not None else open(source, "rb")  # noqa: SIM115
        try:
            head = self._read(0, 12)
            self.num_faces = 1
            base = 0
            if head[:4] == _TAG_TTCF:
                self.num_faces = struct.unpack(">I", head[8:12])[0]
                if not 0 <= index < self.num_faces:
                    raise ValueError(f"subfont index {index} not in [0, {self.num_faces - 1}]")
                base = struct.unpack(">I", self._read(12 + 4 * index, 4))[0]
                head = self._read(base, 12)
            elif index != 0:
                raise ValueError("not a collection: subfont index must be 0")
            self.version = struct.unpack(">I", head[:4])[0]
            num_tables = struct.unpack(">H", head[4:6])[0]
            self.tables: dict[bytes, tuple[int, int]] = {}
            raw = self._read(base + 12, 16 * num_tables)
            for i in range(num_tables):
                tag, _chk, off, length = struct.unpack(">4sIII", raw[16 * i : 16 * i + 16])
                self.tables[tag] = (off, length)
        except Exception:
            self.close()
            raise

    @property
    def is_cff(self) -> bool:
        return self.version == _SFNT_CFF or b"CFF " in self.tables or b"CFF2" in self.tables

    @property
    def is_truetype(self) -> bool:
        return self.version in _SFNT_TRUETYPE and b"glyf" in self.tables and b"loca" in self.tables

    def _read(self, off: int, length: int) -> bytes:
        if self._data is not None:
            b = bytes(self._data[off : off + length])
        else:
            assert self._fh is not None
            self._fh.seek(off)
            b = self._fh.read(length)
        if len(b) != length:
            raise ValueError("truncated font file")
        return b

    def table(self, tag: bytes) -> bytes:
        off, length = self.tables[tag]
        return self._read(off, length)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> _Sfnt:  # noqa: PYI034
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ name table
    def names(self) -> dict[int, str]:
        """name id -> string (Windows Unicode records preferred, zh-CN first)."""
        try:
            data = self.table(b"name")
        except KeyError:
            return {}
        _fmt, count, string_off = struct.unpack(">HHH", data[:6])
        best: dict[int, tuple[int, str]] = {}
        for i in range(count):
            pid, eid, lid, nid, length, off = struct.unpack(">6H", data[6 + 12 * i : 18 + 12 * i])
            raw = data[string_off + off : string_off + off + length]
            if pid == 3 and eid in (0, 1, 10):
                s = raw.decode("utf-16-be", "replace")
                score = 3 if lid == 0x0804 else 2 if lid == 0x0409 else 1
            elif pid == 0:
                s = raw.decode("utf-16-be", "replace")
                score = 1
            elif pid == 1 and eid == 0:
                s = raw.decode("latin-1")
                score = 0
            else:
                continue
            if nid not in best or score > best[nid][0]:
                best[nid] = (score, s)
        return {nid: s for nid, (_score, s) in best.items()}

    # ------------------------------------------------------------------ cmap coverage
    def coverage(self) -> tuple[list[int], list[int]]:
        """Sorted, disjoint ``(starts, ends)`` ranges of code points mapped to a glyph != 0."""
        data = self.table(b"cmap")
        n = struct.unpack(">H", data[2:4])[0]
        subs = {}
        for i in range(n):
            pid, eid, off = struct.unpack(">HHI", data[4 + 8 * i : 12 + 8 * i])
            fmt = struct.unpack(">H", data[off : off + 2])[0]
            subs[(pid, eid, fmt)] = off
        for key in ((3, 10, 12), (0, 6, 12), (0, 4, 12), (3, 1, 4), (0, 3, 4), (0, 1, 4), (0, 0, 4)):
            if key in subs:
                off = subs[key]
                ranges = _cmap12_ranges(data, off) if key[2] == 12 else _cmap4_ranges(data, off)
                return _normalise_ranges(ranges)
        return [], []


def _cmap12_ranges(data: bytes, off: int) -> list[tuple[int, int]]:
    ngroups = struct.unpack(">I", data[off + 12 : off + 16])[0]
    out = []
    for start, end, gid in struct.iter_unpack(">III", data[off + 16 : off + 16 + 12 * ngroups]):
        if gid == 0:
            start += 1
        if start <= end:
            out.append((start, end))
    return out


def _cmap4_ranges(data: bytes, off: int) -> list[tuple[int, int]]:
    seg2 = struct.unpack(">H", data[off + 6 : off + 8])[0]
    segs = seg2 // 2
    p = off + 14
    ends = struct.unpack(f">{segs}H", data[p : p + seg2])
    p += seg2 + 2
    starts = struct.unpack(f">{segs}H", data[p : p + seg2])
    p += seg2
    deltas = struct.unpack(f">{segs}h", data[p : p + seg2])
    p += seg2
    ro_pos = p
    ros = struct.unpack(f">{segs}H", data[p : p + seg2])
    out: list[tuple[int, int]] = []
    for i in range(segs):
        s, e = starts[i], ends[i]
        if s == 0xFFFF:
            continue
        if ros[i] == 0:
            zero = (-deltas[i]) & 0xFFFF  # the one code that maps to glyph 0
            if s <= zero <= e:
                if s < zero:
                    out.append((s, zero - 1))
                if zero < e:
                    out.append((zero + 1, e))
            else:
                out.append((s, e))
        else:
            base = ro_pos + 2 * i + ros[i]
            run_start = None
            for c in range(s, e + 1):
                q = base + 2 * (c - s)
                g = struct.unpack(">H", data[q : q + 2])[0] if q + 2 <= len(data) else 0
                if g:
                    g = (g + deltas[i]) & 0xFFFF
                if g:
                    if run_start is None:
                        run_start = c
                elif run_start is not None:
                    out.append((run_start, c - 1))
                    run_start = None
            if run_start is not None:
                out.append((run_start, e))
    return out


def _normalise_ranges(ranges: list[tuple[int, int]]) -> tuple[list[int], list[int]]:
    ranges.sort()
    starts: list[int] = []
    ends: list[int] = []
    for s, e in ranges:
        if ends and s <= ends[-1] + 1:
            ends[-1] = max(ends[-1], e)
        else:
            starts.append(s)
            ends.append(e)
    return starts, ends


# =========================================================================== data classes


@dataclass(frozen=True)
class FontFace:
    """One face of a font file, as used by this program."""

    path: Path
    subfont_index: int
    family: str
    rl_name: str  # reportlab font name, deterministic: "AB-<file stem>-<index>"


def _sanitize(stem: str) -> str:
    s = re.sub(r"[^0-9A-Za-z]+", "-", stem).strip("-").lower()
    if not s:
        s = hashlib.sha1(stem.encode("utf-8")).hexdigest()[:8]
    return s


def _rl_name(path: Path, index: int) -> str:
    return f"AB-{_sanitize(path.stem)}-{index}"


class _Coverage:
    """Code point coverage of one face from the light cmap reader (no reportlab parse)."""

    __slots__ = ("ends", "starts")

    def __init__(self, starts: list[int], ends: list[int]) -> None:
        self.starts = starts
        self.ends = ends

    def __contains__(self, cp: int) -> bool:
        i = bisect.bisect_right(self.starts, cp) - 1
        return i >= 0 and cp <= self.ends[i]


# =========================================================================== process caches

_LOCK = threading.RLock()
_COVERAGE: dict[tuple[str, int], _Coverage] = {}
_FILE_SHA: dict[tuple[str, int, int], str] = {}
_TTFONTS: dict[str, Any] = {}  # rl_name -> font (registered with reportlab)
_DIR_INDEX: dict[tuple[str, ...], dict[str, Path]] = {}


def _cache_dir() -> Path | None:
    from ..outdir import user_cache_dir

    return user_cache_dir("fonts")


def _file_sha256(path: Path) -> str:
    """sha256 of the file, cached per process and on disk keyed by (path, size, mtime, inode)."""
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    with _LOCK:
        if key in _FILE_SHA:
            return _FILE_SHA[key]
    disk_key = f"{path}|{st.st_size}|{st.st_mtime_ns}|{st.st_ino}"
    cdir = _cache_dir()
    cfile = cdir / "sha256.json" if cdir else None
    cached: dict[str, str] = {}
    if cfile is not None:
        try:
            cached = json.loads(cfile.read_text("utf-8"))
        except (OSError, ValueError):
            cached = {}
    sha = cached.get(disk_key)
    if not sha:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        sha = h.hexdigest()
        if cfile is not None:
            try:
                cfile.parent.mkdir(parents=True, exist_ok=True)
                cached = {k: v for k, v in cached.items() if not k.startswith(f"{path}|")}
                cached[disk_key] = sha
                tmp = cfile.with_suffix(f".{os.getpid()}.tmp")
                tmp.write_text(json.dumps(cached), "utf-8")
                os.replace(tmp, cfile)
            except OSError:
                pass  # the cache is only an optimisation
    with _LOCK:
        _FILE_SHA[key] = sha
    return sha


def _coverage(face: FontFace) -> _Coverage:
    key = (str(face.path), face.subfont_index)
    with _LOCK:
        cov = _COVERAGE.get(key)
    if cov is None:
        try:
            with _Sfnt(face.path, face.subfont_index) as f:
                cov = _Coverage(*f.coverage())
        except (OSError, ValueError, KeyError, struct.error):
            cov = _Coverage([], [])
        with _LOCK:
            _COVERAGE[key] = cov
    return cov


# =========================================================================== discovery tables

# (lowercase file name, preferred subfont: PostScript-name substring or None = index 0)
_ROLE_CANDIDATES: dict[str, list[tuple[str, str | None]]] = {
    "title": [
        ("fzxbsjw.ttf", None), ("fzxbsk.ttf", None), ("方正小标宋简体.ttf", None),
        ("方正小标宋_gbk.ttf", None), ("simsun.ttc", "SimSun"), ("simsun.ttf", None),
        ("stsong.ttf", None), ("songti.ttc", None), ("uming.ttc", "CN"),
        ("lxgwwenkai-regular.ttf", None), ("wqy-zenhei.ttc", None),
    ],
    "body": [
        ("simfang.ttf", None), ("fangsong_gb2312.ttf", None), ("仿宋_gb2312.ttf", None),
        ("fzfsk.ttf", None), ("stfangso.ttf", None), ("lxgwwenkai-regular.ttf", None),
        ("uming.ttc", "CN"), ("simsun.ttc", "SimSun"), ("wqy-zenhei.ttc", None),
    ],
    "heading": [
        ("simhei.ttf", None), ("fzhtk.ttf", None), ("fzhtjw.ttf", None), ("stheiti.ttf", None),
        ("msyh.ttc", None), ("msyh.ttf", None), ("wqy-zenhei.ttc", None),
        ("wqy-microhei.ttc", None), ("droidsansfallbackfull.ttf", None), ("uming.ttc", "CN"),
    ],
    "kai": [
        ("simkai.ttf", None), ("kaiti_gb2312.ttf", None), ("楷体_gb2312.ttf", None),
        ("fzktk.ttf", None), ("stkaiti.ttf", None), ("ukai.ttc", "CN"),
        ("lxgwwenkai-regular.ttf", None), ("uming.ttc", "CN"),
    ],
    "table": [
        ("simsun.ttc", "SimSun"), ("simsun.ttf", None), ("stsong.ttf", None),
        ("songti.ttc", None), ("uming.ttc", "CN"), ("wqy-zenhei.ttc", None),
    ],
}

_FALLBACK_CANDIDATES: list[tuple[str, str | None]] = [
    ("babelstonehan.ttf", None),
    ("simsunb.ttf", None),  # SimSun-ExtB (Windows)
    ("simsun-extg.ttf", None),
    ("mingliub.ttc", None),
    ("hanamina.ttf", None),
    ("hanaminb.ttf", None),
]

_FONT_EXTS = (".ttf", ".ttc", ".otf", ".otc")
# file names that look like CJK fonts: reported in ``skipped`` when they cannot be used
_CJK_NAME_RE = re.compile(
    r"cjk|sourcehan|source-han|songti|heiti|kaiti|fangsong|pingfang|hiragino|stsong|stheiti|"
    r"stkaiti|stfang|simsun|simhei|simfang|simkai|msyh|uming|ukai|zenhei|microhei|wenkai|"
    r"babelstone|hanamin|fz|方正|仿宋|楷体|宋体|黑体",
    re.IGNORECASE,
)


def _standard_dirs() -> list[Path]:
    home = Path(os.path.expanduser("~"))
    dirs: list[Path] = []
    env = os.environ.get("ARCHIVE_BUILDER_FONT_DIRS", "")
    dirs += [Path(p) for p in env.split(os.pathsep) if p.strip()]
    windir = os.environ.get("WINDIR") or os.environ.get("SystemRoot") or r"C:\Windows"
    if sys.platform == "win32":
        dirs.append(Path(windir) / "Fonts")
        local = os.environ.get("LOCALAPPDATA")
        if local:
            dirs.append(Path(local) / "Microsoft" / "Windows" / "Fonts")
    elif sys.platform == "darwin":
        dirs += [
            Path("/System/Library/Fonts"), Path("/System/Library/Fonts/Supplemental"),
            Path("/Library/Fonts"), home / "Library" / "Fonts",
        ]
    dirs += [
        Path("/usr/share/fonts"), Path("/usr/local/share/fonts"),
        home / ".local" / "share" / "fonts", home / ".fonts",
    ]
    return dirs


def font_search_dirs() -> list[Path]:
    """The folders searched for fonts by name (a font added there may change the choice)."""
    return _standard_dirs()


def _index_dirs(dirs: Iterable[Path]) -> dict[str, Path]:
    """lowercase file name -> first path found (in directory order)."""
    key = tuple(str(d) for d in dirs)
    with _LOCK:
        if key in _DIR_INDEX:
            return _DIR_INDEX[key]
    index: dict[str, Path] = {}
    for d in dirs:
        if not d.is_dir():
            continue
        for root, subdirs, files in os.walk(d):
            subdirs.sort()
            for name in sorted(files):
                low = name.lower()
                if low.endswith(_FONT_EXTS) and low not in index:
                    index[low] = Path(root) / name
    with _LOCK:
        _DIR_INDEX[key] = index
    return index


def _probe(path: Path, prefer: str | None | int) -> tuple[FontFace | None, str | None]:
    """Check a font file; return (face, None) or (None, Chinese reason)."""
    try:
        with _Sfnt(path, 0) as f0:
            n = f0.num_faces
            if isinstance(prefer, int):
                idxs = [prefer]
            else:
                idxs = list(range(n))
            chosen = None
            for idx in idxs:
                f = f0 if idx == 0 else _Sfnt(path, idx)
                try:
                    if f.is_cff:
                        return None, "CFF（PostScript）轮廓字体，reportlab 无法嵌入，已跳过"
                    if not f.is_truetype:
                        return None, "不是 TrueType 轮廓字体（缺少 glyf/loca 表），已跳过"
                    names = f.names()
                    ps = names.get(6, "") + " " + names.get(4, "")
                    if chosen is None:
                        chosen = (idx, names)
                    if isinstance(prefer, str) and prefer.lower() in ps.lower():
                        chosen = (idx, names)
                        break
                    if not isinstance(prefer, str):
                        break
                finally:
                    if f is not f0:
                        f.close()
    except FileNotFoundError:
        return None, "文件不存在"
    except ValueError as exc:
        if "subfont index" in str(exc) or "collection" in str(exc):
            return None, f"字体集合中没有第 {prefer} 号字体（#序号 从 0 开始）"
        return None, f"无法读取字体文件（{exc}），已跳过"
    except (OSError, struct.error) as exc:
        return None, f"无法读取字体文件（{exc}），已跳过"
    assert chosen is not None
    idx, names = chosen
    family = names.get(1) or names.get(4) or path.stem
    return FontFace(path=path, subfont_index=idx, family=family, rl_name=_rl_name(path, idx)), None


def _parse_spec(spec: str, base_dir: Path | None) -> tuple[Path, int | None]:
    spec = str(spec).strip()
    index: int | None = None
    m = re.match(r"^(.*)#(\d+)$", spec)
    if m:
        spec, index = m.group(1), int(m.group(2))
    p = Path(os.path.expanduser(spec))
    if not p.is_absolute() and base_dir is not None:
        p = Path(base_dir) / p
    return p, index


# =========================================================================== reportlab font


_NEUTRAL_CATEGORIES = frozenset(("Cc", "Cf", "Zs", "Zl", "Zp"))


def _neutral(ch: str) -> bool:
    """Whitespace/control/format characters: never 'missing', never force a fallback."""
    return unicodedata.category(ch) in _NEUTRAL_CATEGORIES


class _DocState:
    __slots__ = ("__weakref__", "internalName", "used")

    def __init__(self) -> None:
        self.used: set[str] = set()
        self.internalName: str | None = None


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
                self.state = WeakKeyDictionary()
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

        def addObjects(self, doc: Any) -> None:
            st = self._state(doc)
            internal = st.internalName or self.getSubsetInternalName(0, doc)[1:]
            used: dict[int, int] = {}  # cid -> code point
            for ch in st.used:
                cp = ord(ch)
                if cp == 0xA0:
                    cp = 0x20
                cid = self.cid_of(cp)
                if cid and cid not in used:
                    used[cid] = cp
            face = self.face
            gids = {0}
            cid2gid: dict[int, int] = {}
            for cid, cp in used.items():
                g = face.charToGlyph.get(cp, 0)
                cid2gid[cid] = g
                gids.add(g)
            gids = _composite_closure(face, gids)
            glyf_off = face.get_table_pos("glyf")[0]
            data = face._ttf_data
            glyphs = {}
            for g in gids:
                p0, p1 = face.glyphPos[g], face.glyphPos[g + 1]
                if p1 > p0:
                    glyphs[g] = data[glyf_off + p0 : glyf_off + p1]
            hmetrics = {g: face.hmetrics[g] for g in gids}
            base = _base_tables_from_face(face)
            program = _build_program(base, glyphs, hmetrics)
            widths = {cid: face.charWidths.get(cp, face.defaultWidth) for cid, cp in used.items()}
            dw = _dw(widths)
            tounicode = {cid: chr(cp) for cid, cp in used.items()}
            ps = face.name.decode("latin-1") + face.subfontNameX.decode("latin-1")
            tag = _subset_tag(_program_identity(base), cid2gid)
            flags = (face.flags & ~FF_NONSYMBOLIC) | FF_SYMBOLIC
            compress = bool(doc.compression)

            def stream(content: bytes, extra: dict[str, Any] | None = None) -> Any:
                s = pdfdoc.PDFStream(content=content,
                                     filters=[pdfdoc.PDFZCompress] if compress else [])
                for k, v in (extra or {}).items():
                    s.dictionary[k] = v
                return s

            basefont = pdfdoc.PDFName(f"{tag}+{ps}")
            ff_stream = stream(program, {"Length1": len(program)})
            if compress and not getattr(doc, _SHARED_DOC, False):
                # level 1: a third of level 6's time for ~8 % more bytes in the packet file;
                # box PDFs carry the shared programs (SharedFonts: level 6), not these
                ff_stream.filters = [_FAST_FLATE]
            ff = doc.Reference(ff_stream)
            desc = doc.Reference(pdfdoc.PDFDictionary({
                "Type": pdfdoc.PDFName("FontDescriptor"),
                "FontName": basefont,
                "Flags": flags,
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
                "DW": dw,
                "W": pdfdoc.PDFArray(_w_array(widths, dw)),
            }
            if all(cid == g for cid, g in cid2gid.items()):
                cidfont["CIDToGIDMap"] = pdfdoc.PDFName("Identity")
            else:
                cidfont["CIDToGIDMap"] = doc.Reference(stream(_cid2gid_stream(cid2gid)))
            cidref = doc.Reference(pdfdoc.PDFDictionary(cidfont))
            tu = doc.Reference(stream(_tounicode_cmap(tounicode).encode("ascii")))
            font = pdfdoc.PDFDictionary({
                "Type": pdfdoc.PDFName("Font"),
                "Subtype": pdfdoc.PDFName("Type0"),
                "BaseFont": basefont,
                "Encoding": pdfdoc.PDFName("Identity-H"),
                "DescendantFonts": pdfdoc.PDFArray([cidref]),
                "ToUnicode": tu,
            })
            key = _source_key(self)
            if key:
                # private key: lets merge_font_subsets take the glyphs from the font file
                # instead of decompressing this program (see _FACE_KEY)
                font[_FACE_KEY[1:]] = pdfdoc.PDFName(key)
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
    key = hashlib.sha256(f"face v4|{sha}|{face.subfont_index}|{Version}".encode()).hexdigest()[:32]
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

        state = {k: v for k, v in vars(parsed).items() if k not in _FACE_UNCACHED}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL))
        os.replace(tmp, path)
    except Exception:  # noqa: BLE001, S110 - the cache is only an optimisation
        pass


class _FastFlate:
    """reportlab stream filter: FlateDecode at zlib level 1 (embedded font programs)."""

    pdfname = "FlateDecode"

    @staticmethod
    def encode(data: bytes | str) -> bytes:
        import zlib

        return zlib.compress(data.encode("utf-8") if isinstance(data, str) else data, 1)

    @staticmethod
    def decode(data: bytes) -> bytes:
        import zlib

        return zlib.decompress(data)


_FAST_FLATE = _FastFlate()

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


def _components(glyph: bytes) -> list[int]:
    """Component glyph ids of a composite glyph (empty for simple glyphs)."""
    if len(glyph) < 10 or struct.unpack(">h", glyph[:2])[0] >= 0:
        return []
    out = []
    p = 10
    flags = _GF_MORE
    while flags & _GF_MORE and p + 4 <= len(glyph):
        flags, gid = struct.unpack(">HH", glyph[p : p + 4])
        out.append(gid)
        p += 4 + (4 if flags & _GF_WORDS else 2)
        if flags & _GF_SCALE:
            p += 2
        elif flags & _GF_XY:
            p += 4
        elif flags & _GF_2X2:
            p += 8
    return out


def _composite_closure(face: Any, gids: set[int]) -> set[int]:
    glyf_off = face.get_table_pos("glyf")[0]
    data = face._ttf_data
    todo = list(gids)
    seen = set(gids)
    n = len(face.glyphPos) - 1
    pos = face.glyphPos
    unpack_from = struct.unpack_from
    while todo:
        g = todo.pop()
        p0, p1 = pos[g], pos[g + 1]
        # only composite glyphs (numberOfContours < 0) have components: test before slicing
        if p1 - p0 < 10 or unpack_from(">h", data, glyf_off + p0)[0] >= 0:
            continue
        for c in _components(data[glyf_off + p0 : glyf_off + p1]):
            if c not in seen and c < n:
                seen.add(c)
                todo.append(c)
    return seen


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
    """A TrueType program with original glyph ids; glyphs not given are empty.

    ``loca`` and ``hmtx`` cover every glyph id up to the largest used, so they are mostly
    zeros: their checksums are computed from the few entries written rather than by summing
    the tables (that summing was a quarter of a packet's font time).
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
    return _make_sfnt(tables, sums)


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


def _make_sfnt(tables: Mapping[str, bytes], sums: Mapping[str, int] | None = None) -> bytes:
    """Assemble an sfnt (TrueType) file.

    ``sums``: table checksums already known.  ``checkSumAdjustment`` is derived from the
    header and the table checksums (tables are 4-byte aligned and zero-padded, so the file's
    checksum is their sum) instead of summing the whole file again.
    """
    sums = sums or {}
    tags = sorted(tables)
    num = len(tags)
    sr, es = 1, 0
    while sr * 2 <= num:
        sr, es = sr * 2, es + 1
    header = [struct.pack(">IHHHH", 0x00010000, num, sr * 16, es, num * 16 - sr * 16)]
    body = []
    offset = 12 + 16 * num
    head_off = 0
    total = 0
    for tag in tags:
        data = tables[tag]
        if tag == "head":
            head_off = offset
        checksum = sums.get(tag)
        if checksum is None:
            checksum = _table_checksum(tag, data)
        total += checksum
        header.append(struct.pack(">4sIII", tag.encode("latin-1"), checksum, offset, len(data)))
        pad = -len(data) & 3
        body.append(data + b"\0" * pad if pad else data)
        offset += len(data) + pad
    head_bytes = b"".join(header)
    total += _checksum(head_bytes)
    out = bytearray(head_bytes + b"".join(body))
    adj = (0xB1B0AFBA - total) & 0xFFFFFFFF
    struct.pack_into(">I", out, head_off + 8, adj)
    return bytes(out)


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
    for cid in sorted(cid2gid):
        h.update(struct.pack(">HH", cid, cid2gid[cid]))
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
    counts: dict[float, int] = {}
    for w in widths.values():
        w = _pdf_num(w)
        counts[w] = counts.get(w, 0) + 1
    return max(sorted(counts), key=counts.__getitem__)


def _w_array(widths: Mapping[int, float], dw: float | None = None) -> list[Any]:
    """``W`` array entries ``c [w1 w2 ...]`` for consecutive CIDs whose width is not ``dw``."""
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
                out += [start, _pdf_array(run)]
            start, run = cid, [w]
        prev = cid
    if run:
        out += [start, _pdf_array(run)]
    return out


def _pdf_array(items: list[Any]) -> Any:
    from reportlab.pdfbase import pdfdoc

    return pdfdoc.PDFArray(items)


def _cid2gid_stream(cid2gid: Mapping[int, int]) -> bytes:
    n = max(cid2gid, default=0) + 1
    arr = bytearray(2 * n)
    for cid, gid in cid2gid.items():
        arr[2 * cid : 2 * cid + 2] = struct.pack(">H", gid)
    return bytes(arr)


_CMAP_MARKER = "ArchiveBuilder-Identity-UCS"


def _tounicode_cmap(mapping: Mapping[int, str]) -> str:
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
    items = sorted(mapping.items())
    for i in range(0, len(items), 100):
        chunk = items[i : i + 100]
        lines.append(f"{len(chunk)} beginbfchar")
        for cid, s in chunk:
            lines.append(f"<{cid:04X}> <{s.encode('utf-16-be').hex().upper()}>")
        lines.append("endbfchar")
    lines += ["endcmap", "CMapName currentdict /CMap defineresource pop", "end", "end"]
    return "\n".join(lines)


_BFCHAR_RE = re.compile(rb"<([0-9A-Fa-f]{4})>\s*<([0-9A-Fa-f]+)>")
_BFCHAR_DST_RE = re.compile(rb"<[0-9A-Fa-f]{4}>\s*<([0-9A-Fa-f]+)>")


# =========================================================================== FontSet


@dataclass
class FontSet:
    """The fonts of one template set: role faces plus ordered rare-character fallbacks."""

    faces: dict[str, FontFace]
    fallbacks: list[FontFace] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._registered = False
        self._fingerprint: str | None = None
        # per role: char -> rl_name of the font that draws it, char -> width (1000 units)
        self._runmap: dict[str, dict[str, str]] = {r: {} for r in self.faces}
        self._widths: dict[str, dict[str, float]] = {r: {} for r in self.faces}
        self._role_ok: dict[str, set[str]] = {r: set() for r in self.faces}
        self._chains: dict[str, list[FontFace]] = {}
        self._missing: dict[str, set[str]] = {r: set() for r in self.faces}
        # per role: characters not yet drawn that some face can print (or that need no glyph)
        self._printable: dict[str, set[str]] = {}
        self._lock = threading.RLock()
        self._fonts: dict[str, Any] = {}

    # ------------------------------------------------------------------ discovery
    @classmethod
    def discover(cls, configured: Mapping[str, Any] | None = None,
                 base_dir: Path | None = None) -> FontSet:
        """Find a face for every role.

        ``configured``: role -> ``"path[#index]"`` (relative to ``base_dir``), plus optional
        ``"fallback"``: list of such specs, tried before the built-in fallback list.
        """
        configured = dict(configured or {})
        skipped: list[tuple[str, str]] = []
        faces: dict[str, FontFace] = {}
        unknown = [k for k in configured if k not in ROLES and k != "fallback"]
        if unknown:
            raise FontNotFoundError(
                f"archive.toml 的 [fonts] 中有未知的字体用途：{'、'.join(unknown)}。",
                hint=f"可用的用途为：{'、'.join(ROLES)}，以及 fallback（生僻字备用字体列表）。",
            )
        for role in ROLES:
            spec = configured.get(role)
            if not spec:
                continue
            path, idx = _parse_spec(spec, base_dir)
            face, reason = _probe(path, idx if idx is not None else None)
            if face is None:
                raise FontNotFoundError(
                    f"archive.toml 的 [fonts] 中 {role}（{ROLE_LABELS[role]}）= \"{spec}\" 不能使用："
                    f"{path}：{reason}。",
                    hint="请改成一个存在的 TrueType 字体文件（.ttf/.ttc，集合文件可写 #序号），"
                    "相对路径以模板集文件夹为准；或删除这一行以自动查找系统字体。",
                )
            faces[role] = face
        cfg_fallbacks: list[FontFace] = []
        fb_specs = configured.get("fallback") or []
        if isinstance(fb_specs, str):
            fb_specs = [fb_specs]
        for spec in fb_specs:
            path, idx = _parse_spec(spec, base_dir)
            face, reason = _probe(path, idx)
            if face is None:
                raise FontNotFoundError(
                    f"archive.toml 的 [fonts] fallback 中的 \"{spec}\" 不能使用：{path}：{reason}。",
                    hint="请改成一个存在的 TrueType 字体文件，或从 fallback 列表中删除它。",
                )
            cfg_fallbacks.append(face)

        dirs = _standard_dirs()
        index = _index_dirs(dirs)
        probed: dict[tuple[str, str | None], FontFace | None] = {}
        reported: set[str] = set()

        def probe_name(fname: str, prefer: str | None) -> FontFace | None:
            key = (fname, prefer)
            if key in probed:
                return probed[key]
            path = index.get(fname)
            face = None
            if path is not None:
                face, reason = _probe(path, prefer)
                if face is None and str(path) not in reported:
                    reported.add(str(path))
                    skipped.append((str(path), reason or "无法使用"))
            probed[key] = face
            return face

        for role in ROLES:
            if role in faces:
                continue
            for fname, prefer in _ROLE_CANDIDATES[role]:
                face = probe_name(fname, prefer)
                if face is not None:
                    faces[role] = face
                    break

        # report CJK-looking fonts that cannot be used (e.g. Noto CJK, CFF outlines)
        for low, path in index.items():
            if str(path) in reported or not _CJK_NAME_RE.search(low):
                continue
            if any(str(f.path) == str(path) for f in faces.values()):
                continue
            try:
                with _Sfnt(path, 0) as f:
                    cff = f.is_cff
            except (OSError, ValueError, struct.error):
                cff = False
            if cff:
                reported.add(str(path))
                skipped.append((str(path), "CFF（PostScript）轮廓字体，reportlab 无法嵌入，已跳过"))

        if not faces:
            # last resort: any TrueType font that has common hanzi
            for low, path in sorted(index.items()):
                if str(path) in reported:
                    continue
                face, _reason = _probe(path, None)
                if face is None:
                    continue
                cov = _coverage(face)
                if all(cp in cov for cp in (0x4E2D, 0x6587, 0x6237, 0x6863)):  # 中文户档
                    faces["body"] = face
                    break
        if not faces:
            raise FontNotFoundError(
                "找不到可用的中文 TrueType 字体，无法生成 PDF。已查找："
                + "；".join(str(d) for d in dirs if d.is_dir())
                + ("。以下字体不能使用：" + "；".join(f"{p}（{r}）" for p, r in skipped) if skipped else "。"),
                hint=INSTALL_HINT,
            )
        # a role without its own face borrows another role's face
        order = ["body", "table", "title", "heading", "kai"]
        for role in ROLES:
            if role not in faces:
                donor = next(r for r in order if r in faces)
                faces[role] = faces[donor]

        fallbacks: list[FontFace] = list(cfg_fallbacks)
        for fname, prefer in _FALLBACK_CANDIDATES:
            face = probe_name(fname, prefer)
            if face is not None:
                fallbacks.append(face)
        seen: set[tuple[str, int]] = set()
        uniq: list[FontFace] = []
        for fb in fallbacks:
            k = (str(fb.path), fb.subfont_index)
            if k not in seen:
                seen.add(k)
                uniq.append(fb)
        return cls(faces=_disambiguate(faces), fallbacks=_disambiguate_list(uniq, faces),
                   skipped=skipped)

    # ------------------------------------------------------------------ registration
    def register(self) -> None:
        """Register the role faces with reportlab (idempotent); fallbacks load lazily.

        Also points ``rl_config.canvas_basefontname`` at the body font so canvases never
        start with (unembedded) Helvetica.
        """
        if self._registered:
            return
        with self._lock:
            if self._registered:
                return
            from reportlab import rl_config

            for face in {f.rl_name: f for f in self.faces.values()}.values():
                _load_registered(face)
            rl_config.canvas_basefontname = self.faces["body"].rl_name
            self._registered = True

    def _font(self, face: FontFace) -> Any:
        font = self._fonts.get(face.rl_name)
        if font is None:
            font = self._fonts[face.rl_name] = _load_registered(face)
        return font

    # ------------------------------------------------------------------ identity
    def fingerprint(self) -> str:
        """sha256 over role faces and fallbacks, including the font files' contents."""
        if self._fingerprint is None:
            h = hashlib.sha256(b"archive-builder fonts v1\n")
            for role in ROLES:
                f = self.faces[role]
                h.update(f"{role}|{f.rl_name}|{f.subfont_index}|{_file_sha256(f.path)}\n".encode())
            for f in self.fallbacks:
                h.update(f"fallback|{f.rl_name}|{f.subfont_index}|{_file_sha256(f.path)}\n".encode())
            self._fingerprint = h.hexdigest()
        return self._fingerprint

    # ------------------------------------------------------------------ character resolution
    def _chain(self, role: str) -> list[FontFace]:
        chain = self._chains.get(role)
        if chain is None:
            own = self.faces[role]
            chain = []
            keys = {(str(own.path), own.subfont_index)}
            for f in list(self.fallbacks) + [self.faces[r] for r in ROLES]:
                k = (str(f.path), f.subfont_index)
                if k not in keys:
                    keys.add(k)
                    chain.append(f)
            self._chains[role] = chain
        return chain

    def _resolve(self, ch: str, role: str) -> tuple[str, float]:
        """(rl_name, width in 1000 units) for one character; caches the answer."""
        with self._lock:
            rmap = self._runmap[role]
            if ch in rmap:
                return rmap[ch], self._widths[role][ch]
            own = self.faces[role]
            font = self._font(own)
            cp = ord(ch)
            face = font.face
            chosen = None
            if cp in face.charToGlyph:
                chosen = font
            else:
                for fb in self._chain(role):
                    if cp in _coverage(fb):
                        fbfont = self._font(fb)
                        if cp in fbfont.face.charToGlyph:
                            chosen = fbfont
                            break
            if chosen is None:
                chosen = font
                if not _neutral(ch):
                    self._missing[role].add(ch)
            width = chosen.face.charWidths.get(cp, chosen.face.defaultWidth)
            rmap[ch] = chosen.fontName
            self._widths[role][ch] = width
            if chosen is font:
                self._role_ok[role].add(ch)
            return chosen.fontName, width

    def runs(self, text: str, role: str) -> list[tuple[str, str]]:
        """Split ``text`` into ``[(rl_font_name, substring)]`` runs for drawing."""
        if not text:
            return []
        ok = self._role_ok[role]
        if ok.issuperset(text):
            return [(self.faces[role].rl_name, text)]
        rmap = self._runmap[role]
        out: list[tuple[str, str]] = []
        cur = None
        start = 0
        for i, ch in enumerate(text):
            name = rmap.get(ch)
            if name is None:
                name = self._resolve(ch, role)[0]
            if name != cur:
                if cur is not None:
                    out.append((cur, text[start:i]))
                cur, start = name, i
        out.append((cur, text[start:]))  # type: ignore[arg-type]
        return out

    def missing_chars(self, text: str, role: str) -> list[str]:
        """Characters of ``text`` that no available font can print (in order, unique)."""
        ok = self._role_ok[role]
        printable = self._printable.setdefault(role, set())
        if ok.issuperset(text) or printable.issuperset(text):
            return []
        out: list[str] = []
        seen: set[str] = set()
        miss = self._missing[role]
        for ch in text:
            if ch in seen or ch in printable:
                continue
            seen.add(ch)
            if ch in ok:
                printable.add(ch)
                continue
            if ch not in self._runmap[role]:
                if _neutral(ch) or self._has_anywhere(ch, role):
                    printable.add(ch)  # coverage is fixed: remember the answer
                    continue
                miss.add(ch)
                out.append(ch)
                continue
            if ch in miss:
                out.append(ch)
            else:
                printable.add(ch)  # drawn by some face: the answer is fixed
        return out

    def _has_anywhere(self, ch: str, role: str) -> bool:
        """Cheap check (light cmap reader, no reportlab parsing of fallbacks)."""
        cp = ord(ch)
        if cp in _coverage(self.faces[role]):
            return True
        return any(cp in _coverage(f) for f in self._chain(role))

    def string_width(self, text: str, role: str, size: float) -> float:
        """Width of ``text`` in points at ``size`` (fallback fonts included)."""
        w = self._widths[role]
        try:
            return sum(map(w.__getitem__, text)) * size * 0.001
        except KeyError:
            for ch in text:
                if ch not in w:
                    self._resolve(ch, role)
            return sum(map(w.__getitem__, text)) * size * 0.001

    def ascent_descent(self, role: str) -> tuple[float, float]:
        """(ascent, descent) per 1 pt of font size; descent is negative."""
        face = self._font(self.faces[role]).face
        return face.ascent / 1000.0, face.descent / 1000.0


def _disambiguate(faces: dict[str, FontFace]) -> dict[str, FontFace]:
    by_name: dict[str, tuple[str, int]] = {}
    out = {}
    for role, f in faces.items():
        key = (str(f.path), f.subfont_index)
        other = by_name.get(f.rl_name)
        if other is not None and other != key:
            suffix = hashlib.sha1(str(f.path).encode("utf-8")).hexdigest()[:6]
            f = FontFace(f.path, f.subfont_index, f.family, f"{f.rl_name}-{suffix}")
        by_name[f.rl_name] = key
        out[role] = f
    return out


def _disambiguate_list(fallbacks: list[FontFace], faces: dict[str, FontFace]) -> list[FontFace]:
    names = {f.rl_name: (str(f.path), f.subfont_index) for f in faces.values()}
    out = []
    for f in fallbacks:
        key = (str(f.path), f.subfont_index)
        if f.rl_name in names and names[f.rl_name] != key:
            suffix = hashlib.sha1(str(f.path).encode("utf-8")).hexdigest()[:6]
            f = FontFace(f.path, f.subfont_index, f.family, f"{f.rl_name}-{suffix}")
        names[f.rl_name] = key
        out.append(f)
    return out


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


def _split_program(program: bytes) -> tuple[dict[str, bytes], dict[int, bytes], dict[int, tuple[int, int]]]:
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
    hmtx = tables["hmtx"]
    metrics: dict[int, tuple[int, int]] = {}
    last_aw = struct.unpack(">H", hmtx[4 * (nh - 1) : 4 * nh - 2])[0] if nh else 0
    for g in [0, *present] if 0 not in glyphs else present:
        if g < nh:
            metrics[g] = struct.unpack(">Hh", hmtx[4 * g : 4 * g + 4])
        else:
            p = 4 * nh + 2 * (g - nh)
            metrics[g] = (last_aw, struct.unpack(">h", hmtx[p : p + 2])[0])
    base = {k: v for k, v in tables.items() if k not in ("glyf", "loca", "hmtx", "cmap")}
    return base, glyphs, metrics


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


def _glyphs_from_source(font: Any, gids: set[int]) -> tuple[dict[int, bytes], dict[int, tuple[int, int]]]:
    """Glyph data and metrics of ``gids`` (plus composite components and glyph 0) from the
    original face: the same values ``_split_program`` reads back from an embedded program."""
    face = font.face
    all_gids = _composite_closure(face, gids | {0})
    glyf_off = face.get_table_pos("glyf")[0]
    data = face._ttf_data
    pos = face.glyphPos
    glyphs: dict[int, bytes] = {}
    for g in all_gids:
        p0, p1 = pos[g], pos[g + 1]
        if p1 > p0:
            glyphs[g] = data[glyf_off + p0 : glyf_off + p1]
    hm = face.hmetrics
    metrics: dict[int, tuple[int, int]] = {}
    for g in (*glyphs, 0):
        aw, lsb = hm[g]
        lsb = int(lsb) & 0xFFFF
        metrics[g] = (int(aw) & 0xFFFF, lsb - 0x10000 if lsb >= 0x8000 else lsb)
    return glyphs, metrics


#: attribute set on the reportlab document that writes SharedFonts' union fonts
_SHARED_DOC = "_ab_shared_fonts"


class SharedFonts:
    """One copy of each face for a file being collated with pypdf (a box).

    ``adopt(reader)`` is called for every PDF before its pages are appended: each font of
    ours (``/ABFace`` marker of a face of ``fonts``) in its page resources is pointed at a
    placeholder object of ``writer`` — one per face — and only its ``ToUnicode`` is read, for
    the characters it draws. pypdf then never parses or copies the packets' font objects
    (their ``W`` arrays alone were a quarter of the objects a box parsed). ``finish()`` fills
    each placeholder with a font holding every character adopted for that face, written by
    ``GlobalCodeTTFont`` itself (same codes, same widths, so no content stream changes).

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
        self._refs: dict[str, Any] = {}
        self._done = False
        self._all_loaded = False

    # ------------------------------------------------------------------ adopting
    def adopt(self, reader: Any) -> None:
        """Point the page resources of ``reader`` at the shared fonts (before appending)."""
        from pypdf.generic import DictionaryObject, IndirectObject, NameObject

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
            if id(fonts) in visited:  # reportlab's pages share one font dictionary
                continue
            visited.add(id(fonts))
            for name in list(fonts.keys()):
                ref = fonts.raw_get(name)
                if not isinstance(ref, IndirectObject) or ref.pdf is not reader:
                    continue
                if ref.idnum not in seen:
                    seen[ref.idnum] = self.adopt_font(ref.get_object())
                shared = seen[ref.idnum]
                if shared is not None:
                    fonts[NameObject(name)] = shared

    def adopt_font(self, font: Any) -> Any:
        """Return the writer's shared font for ``font`` (a pypdf font dictionary), or None
        when it is not one of ours; the characters it draws join the shared font's."""
        from pypdf.generic import DictionaryObject

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
        """Write the shared fonts into their placeholders (once, after the last adopt)."""
        import io

        from pypdf import PdfReader

        self._done = True
        if not self._refs:
            return
        assert self._sources is not None
        from reportlab.pdfgen.canvas import Canvas

        markers = sorted(self._refs)
        buf = io.BytesIO()
        first = self._sources[markers[0]]
        canvas = Canvas(buf, invariant=1, pageCompression=1, initialFontName=first.fontName)
        setattr(canvas._doc, _SHARED_DOC, True)
        y = 10
        for marker in markers:
            chars = {bytes.fromhex(h.decode()).decode("utf-16-be", "surrogatepass") for h in self._chars[marker]}
            canvas.setFont(self._sources[marker].fontName, 10)
            canvas.drawString(10, y, "".join(sorted(chars)))
            y += 12
        canvas.showPage()
        canvas.save()
        page = PdfReader(io.BytesIO(buf.getvalue())).pages[0]
        written = {}
        for ref in page["/Resources"]["/Font"].values():
            font = ref.get_object()
            marker = str(font.get(_FACE_KEY, "/"))[1:]
            if marker in self._refs:
                written[marker] = font
        writer = self.writer
        for marker in markers:
            copy = written[marker].clone(writer)
            shared = self._refs[marker].get_object()
            shared.update(copy)
            # the copy's own object number goes unused: its entries now live in the placeholder
            writer._objects[copy.indirect_reference.idnum - 1] = None


def merge_font_subsets(writer: Any, fonts: Any = None) -> dict[str, Any]:
    """Share one font per face across all packets collated into ``writer``.

    Every Type0 font written by ``GlobalCodeTTFont`` is grouped by face (PostScript name
    and the digest of the program's glyph-independent tables); each group is replaced by
    one new font whose program holds the union of the glyphs, with the union ``W``,
    ``ToUnicode`` and ``CIDToGIDMap``.  References everywhere in the file are redirected
    and the old copies dropped.  Afterwards every distinct embedded font program gets a
    unique subset tag.  Content streams are untouched (codes are document-independent).

    ``fonts`` (the ``FontSet`` the packets were rendered with) is optional: a font carrying
    the private ``/ABFace`` key of a face this process has loaded contributes its glyph ids
    (from ``ToUnicode``/``CIDToGIDMap``) and the union takes the glyphs from the font file —
    no packet program is decompressed.  Other fonts are read back from their programs.  Both
    routes give the same union program.

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
        glyphs_u: dict[int, bytes] = {}
        metrics_u: dict[int, tuple[int, int]] = {}
        widths_u: dict[int, float] = {}
        tu_u: dict[int, bytes] = {}
        c2g_u: dict[int, int] = {}
        ok = True
        base0 = None
        # glyph ids used by marked fonts, per source font (glyphs read after the loop)
        source_gids: dict[int, tuple[Any, set[int]]] = {}
        for fid in fids:
            font, cid, fd, base, glyphs, metrics, source = parsed[fid]
            base0 = base0 or base
            if glyphs is not None:
                for g, d in glyphs.items():
                    if glyphs_u.setdefault(g, d) != d:
                        ok = False
                for g, m in metrics.items():
                    if metrics_u.setdefault(g, m) != m and g in glyphs:
                        ok = False
            tu_pairs = [(int(m.group(1), 16), bytes.fromhex(m.group(2).decode()))
                        for m in _BFCHAR_RE.finditer(font["/ToUnicode"].get_object().get_data())]
            explicit = _parse_w(cid.get("/W"))
            dw = float(cid.get("/DW", 1000))
            for c, u in tu_pairs:
                if tu_u.setdefault(c, u) != u:
                    ok = False
                widths_u[c] = explicit.get(c, dw)
            c2g = cid.get("/CIDToGIDMap")
            cmap_used = [c for c, _u in tu_pairs]
            if c2g is None or c2g == "/Identity":
                pairs = {c: c for c in cmap_used}
            else:
                raw = c2g.get_object().get_data()
                pairs = {c: struct.unpack(">H", raw[2 * c : 2 * c + 2])[0]
                         for c in cmap_used if 2 * c + 2 <= len(raw)}
            for c, g in pairs.items():
                if c2g_u.setdefault(c, g) != g:
                    ok = False
            if source is not None:
                source_gids.setdefault(id(source), (source, set()))[1].update(pairs.values())
            if not ok:
                break
        for source, gids in source_gids.values() if ok else ():
            glyphs, metrics = _glyphs_from_source(source, gids)
            for g, d in glyphs.items():
                if glyphs_u.setdefault(g, d) != d:
                    ok = False
            for g, m in metrics.items():
                if metrics_u.setdefault(g, m) != m and g in glyphs:
                    ok = False
        if not ok:
            conflicts += 1
            continue
        assert base0 is not None
        program = _build_program(base0, glyphs_u, metrics_u)
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


# =========================================================================== reporting


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
                    "bytes": _stream_len(ff) if ff is not None else 0,
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
