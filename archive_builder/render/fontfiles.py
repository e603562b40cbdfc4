"""Font files: finding and probing the CJK TrueType faces for each role.

A light ``cmap``/sfnt reader answers "is this a TrueType-outline face, and which characters
does it have?" without reportlab parsing the file (which is slow for a large CJK font), with the
answer cached per font file. ``fonts.FontSet`` chooses faces from what is found here;
the overview of the font machinery is the docstring of ``archive_builder.render.fonts``.
"""

from __future__ import annotations

import bisect
import errno
import hashlib
import os
import re
import struct
import sys
import threading
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from archive_builder.errors import ArchiveError, FontError, os_reason

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


class FontNotFoundError(FontError):
    """No usable CJK TrueType font (or a configured font file is unusable)."""


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
    from ..archive.outdir import user_cache_dir

    return user_cache_dir("fonts")


def _file_sha256(path: Path) -> str:
    """sha256 of the file, remembered per process and in the font cache's hash memo."""
    from ..archive.hashing import HashMemo

    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    with _LOCK:
        if key in _FILE_SHA:
            return _FILE_SHA[key]
    cdir = _cache_dir()
    memo = HashMemo(cdir / "file-hashes.json" if cdir else None, keep_unused=True)
    sha = memo.sha256(path)
    if sha is None:
        raise OSError(errno.EIO, "cannot read the font file", str(path))
    try:
        memo.save()
    except (OSError, ArchiveError):
        pass  # the memo is only an optimisation
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
        return None, "无法读取字体文件（文件格式有误），已跳过"
    except (OSError, struct.error) as exc:
        why = os_reason(exc) if isinstance(exc, OSError) else "文件格式有误"
        return None, f"无法读取字体文件（{why}），已跳过"
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



_NEUTRAL_CATEGORIES = frozenset(("Cc", "Cf", "Zs", "Zl", "Zp"))


def _neutral(ch: str) -> bool:
    """Whitespace/control/format characters: never 'missing', never force a fallback."""
    return unicodedata.category(ch) in _NEUTRAL_CATEGORIES
