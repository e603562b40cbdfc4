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
document embeds only its glyphs: the embedded program numbers them compactly (glyph 0,
then the glyphs drawn and their components in the order of their original ids, component
references renumbered), and a ``CIDToGIDMap`` stream maps each code to its glyph. (Keeping
the original ids made ``loca`` and ``hmtx`` run to the largest id drawn, ~45,000 entries
for WenQuanYi, and building them was half of a packet's font time.) Glyph ids are therefore
private to each program; ``merge_font_subsets`` compares glyphs as trees (outline, metrics,
components), never by id.

``merge_font_subsets(writer, fonts)`` then replaces the per-document copies in a collated
pikepdf ``Pdf`` by one font per face whose program holds the union of the glyphs, and
gives every distinct embedded subset a unique tag derived from its content.  Every font we
write carries a private ``/ABFace`` key naming its font file (content hash) and face; when
the collating process has that face loaded, the union is built from the font file and the
packets' programs are never decompressed.  Fonts without the key (older packets, a face not
loaded) are read back from their embedded programs, so the font files are not required.

Modules
-------
``fontfiles`` finds and probes font files (the light sfnt/``cmap`` reader, the per-file
coverage cache, the search folders); ``fontprogram`` is the reportlab font class above and
the subset programs it embeds; ``sharedfonts`` and ``fontmerge`` share the fonts of a
collated box (``SharedFonts``, ``merge_font_subsets``). This module chooses the faces
(``FontSet``) and keeps the public names of all three.

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

import hashlib
import struct
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# the font machinery is split by stage; this module keeps the public names
from .fontfiles import (
    _CJK_NAME_RE,
    _FALLBACK_CANDIDATES,
    _ROLE_CANDIDATES,
    INSTALL_HINT,
    ROLE_LABELS,
    ROLES,
    FontFace,
    FontNotFoundError,
    _coverage,
    _file_sha256,
    _index_dirs,
    _neutral,
    _parse_spec,
    _probe,
    _Sfnt,
    _standard_dirs,
    font_search_dirs,
)
from .fontmerge import SharedFonts, merge_font_subsets
from .fontprogram import GlobalCodeTTFont, _load_registered

__all__ = [
    "ROLES",
    "FontFace",
    "FontNotFoundError",
    "FontSet",
    "GlobalCodeTTFont",
    "SharedFonts",
    "font_search_dirs",
    "merge_font_subsets",
]

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
