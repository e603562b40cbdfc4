"""Pass 2 of the PDF writer: draw items → raw PDF operators on a reportlab canvas.

Text is written as operators, one ``BT … ET`` per page, switching fonts (and 256-glyph
subsets) inside it: what reportlab's text object does, without its per-call work, and
keeping pypdf's text extraction free of spurious breaks between font runs.
"""

from __future__ import annotations

import hashlib
import io
from typing import Any

from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.pdfdoc import PDFImageXObject
from reportlab.pdfgen.canvas import Canvas

from .pdflayout import _Layout
from .pdfmodel import _SEGMENT, PAGE_NUMBER_GAP, PAGE_NUMBER_SIZE, RULE, SHADE, _f, _Fonts, _n, _Page

#: lines whose coding a process remembers before it starts again (see ``code_runs``): labels
#: recur in every packet; names and addresses do not, and must not make a township's workers grow
_MAX_CODED = 20_000


class _Painter:
    """Pass 2: draw items → canvas operators."""

    def __init__(self, canvas: Canvas, fonts: _Fonts, lay: _Layout):
        self.c = canvas
        self.doc = canvas._doc
        self.f = fonts
        self.lay = lay
        self.escape = canvas._escape
        self.sub_names: dict[tuple[str, int], str] = {}
        self.rl_fonts: dict[str, Any] = {}
        self.encoders: dict[str, tuple[set[str], dict[str, bytes]]] = {}  # see emit_text
        self.numbers: dict[int, str] = {}  # section index → "3" or "3–5"
        # renderPDF would otherwise select Helvetica (an unembedded font) for the drawing
        self.body_font = fonts.fonts.faces["body"].rl_name

    def emit_text(self, ops: list[str], state: list, x: float, y: float, role: str, size: float,
                  s: str, extra: float) -> None:
        """Append operators drawing one line; ``state`` = [current Tf string, current Tc]."""
        ops.append(f"1 0 0 1 {_n(x)} {_n(y)} Tm")
        gaps: list[int] | None = None  # char indexes preceded by a stretchable gap
        tc = 0.0
        if extra and len(s) > 1:
            pieces = _SEGMENT.findall(s)  # one CJK char, or a run of anything else
            ng = len(pieces) - 1
            if ng == len(s) - 1:
                tc = extra / ng
            elif ng:
                gaps = []
                at = 0
                for piece in pieces[:-1]:
                    at += len(piece)
                    gaps.append(at)
                adj = _f(-extra / ng * 1000.0 / size)
        if tc != state[1]:
            ops.append(f"{_f(tc)} Tc")
            state[1] = tc
        used = self.f.used.get(role)
        if used is None:
            used = self.f.used[role] = set()
        used.update(s)
        sz = _f(size)
        doc = self.doc
        if gaps is None:
            coded = self.f.coded.get((s, role)) or self.code_runs(s, role)
            if coded is not None:
                self.emit_coded(ops, state, sz, coded)
                return
        pos = 0
        for name, run in self.f.runs(s, role):
            font = self.rl_fonts.get(name)
            if font is None:
                font = self.rl_fonts[name] = pdfmetrics.getFont(name)
                if hasattr(font, "_enc"):  # a GlobalCodeTTFont: codes without splitString
                    self.encoders[name] = (font._state(doc).used, font._enc)
            coder = self.encoders.get(name)
            if coder is not None:
                # what GlobalCodeTTFont.splitString does, without its per-call lookup of the
                # document's state (a WeakKeyDictionary): ~300 runs a packet
                coder[0].update(run)
                try:
                    chunks = [(0, b"".join(map(coder[1].__getitem__, run)))]
                except KeyError:  # a character not coded yet
                    chunks = font.splitString(run, doc)
            else:
                chunks = font.splitString(run, doc)
            if gaps is not None:
                bpc = max(1, sum(len(ch) for _, ch in chunks) // max(1, len(run)))
            for subset, chunk in chunks:
                key = (name, subset)
                iname = self.sub_names.get(key)
                if iname is None:
                    iname = self.sub_names[key] = font.getSubsetInternalName(subset, doc)
                tf = f"{iname} {sz} Tf"
                if tf != state[0]:
                    ops.append(tf)
                    state[0] = tf
                if gaps is None:
                    ops.append(f"<{chunk.hex()}> Tj")
                    continue
                parts = []
                start = 0
                n = len(chunk) // bpc
                for g in gaps:
                    i = g - pos
                    if i <= 0:
                        if i == 0 and pos:
                            parts.append(adj)
                        continue
                    if i >= n:
                        break
                    parts.append(f"<{chunk[start * bpc:i * bpc].hex()}>")
                    parts.append(adj)
                    start = i
                parts.append(f"<{chunk[start * bpc:].hex()}>")
                ops.append(f"[{' '.join(parts)}] TJ")
                pos += n

    def emit_coded(self, ops: list[str], state: list, sz: str, coded: tuple[tuple[str, str, str], ...]) -> None:
        """Append the operators of a line coded before (``code_runs``): the same as the
        general path of ``emit_text`` gives, the document's glyph sets updated alike."""
        for name, run, tj in coded:
            coder = self.encoders.get(name)
            if coder is None:  # this font's first line in the document
                font = self.rl_fonts[name] = pdfmetrics.getFont(name)
                coder = self.encoders[name] = (font._state(self.doc).used, font._enc)
            coder[0].update(run)
            iname = self.sub_names.get((name, 0))
            if iname is None:
                iname = self.sub_names[(name, 0)] = self.rl_fonts[name].getSubsetInternalName(0, self.doc)
            tf = f"{iname} {sz} Tf"
            if tf != state[0]:
                ops.append(tf)
                state[0] = tf
            ops.append(tj)

    def code_runs(self, s: str, role: str) -> tuple[tuple[str, str, str], ...] | None:
        """How ``s`` is drawn in ``role``: its font runs with their ``Tj`` operators, remembered
        for the process. Only when every run is in a font whose codes depend on the font file
        alone (``GlobalCodeTTFont``): the operators are then the same in every document.
        None (nothing remembered) otherwise, or for an empty text."""
        coded = []
        for name, run in self.f.runs(s, role):
            font = self.rl_fonts.get(name) or pdfmetrics.getFont(name)
            enc = getattr(font, "_enc", None)
            if enc is None:
                return None
            try:
                codes = b"".join(map(enc.__getitem__, run))
            except KeyError:  # a character not coded yet: the font codes it (as splitString)
                (_subset, codes), = font.splitString(run, self.doc)
            coded.append((name, run, f"<{codes.hex()}> Tj"))
        if not coded:
            return None
        memo = self.f.coded
        if len(memo) >= _MAX_CODED:
            memo.clear()
        found = memo[(s, role)] = tuple(coded)
        return found

    def page_number_text(self, si: int) -> str:
        return self.numbers.get(si, "")

    def paint_page(self, page: _Page) -> None:
        c = self.c
        gfx: list[str] = []
        txt: list[str] = []
        later: list[tuple] = []
        state: list = [None, 0.0]
        for it in page.items:
            kind = it[0]
            if kind == "t":
                self.emit_text(txt, state, it[1], it[2], it[3], it[4], it[5], it[6])
            elif kind == "rect":
                _, x, y, w, h, shade = it
                r = f"{_n(x)} {_n(y)} {_n(w)} {_n(h)} re"
                gfx.append(f"{SHADE} g {r} B 0 g" if shade else f"{r} S")
            elif kind == "line":
                _, x1, y1, x2, y2, lw = it
                gfx.append(f"{_n(x1)} {_n(y1)} m {_n(x2)} {_n(y2)} l S")
            elif kind == "dash":
                _, x, y, w, h = it
                gfx.append(f"[3 2] 0 d {_n(x)} {_n(y)} {_n(w)} {_n(h)} re S [] 0 d")
            elif kind == "ref":
                _, x, w, y, role, size, si, align = it
                s = self.page_number_text(si)
                if s:
                    lw = self.f.width(s, role, size)
                    xx = x + (w - lw) / 2 if align == "center" else (x + w - lw if align == "right" else x)
                    self.emit_text(txt, state, xx, y, role, size, s, 0.0)
            else:
                later.append(it)
        if page.number:
            s = self.lay.p.page_number_format.format(n=page.number)
            size = PAGE_NUMBER_SIZE
            lw = self.f.width(s, "body", size)
            y = self.lay.bottom - PAGE_NUMBER_GAP - size * 0.8
            self.emit_text(txt, state, self.lay.left + (self.lay.tw - lw) / 2, y, "body", size, s, 0.0)
        code = c._code
        if gfx:
            code.append(f"q {RULE} w 0 G")
            code.extend(gfx)
            code.append("Q")
        if txt:
            code.append("BT")
            code.extend(txt)
            if state[1]:
                code.append("0 Tc")
            code.append("ET")
        for it in later:
            if it[0] == "img":
                _, asset, x, y, w, h = it
                self.draw_image(asset, x, y, w, h)
            elif it[0] == "qr":
                _, text, x, y, s = it
                self.draw_qr(text, x, y, s)

    def draw_image(self, asset: Any, x: float, y: float, w: float, h: float) -> None:
        """``Canvas.drawImage`` of an ``ImageAsset``, the XObject named after its bytes.

        reportlab names a file image after its full path, so the same evidence cached in
        another folder (another user, the build's cache vs the packet command's) gave
        different bytes; the name must depend on the content only.
        """
        c = self.c
        doc = self.doc
        data = asset.image_bytes()
        # sha256 (truncated to md5's 32 hex digits): faster than md5 where the processor
        # has SHA instructions
        name = hashlib.sha256(data).hexdigest()[:32]
        reg = doc.getXObjectName(name)
        if doc.idToObject.get(reg) is None:
            if asset.kind == "jpg":
                obj = PDFImageXObject(name)
                if not obj.loadImageFromJPEG(io.BytesIO(data)):
                    raise ValueError(f"图片无法读取：{asset.source}")
            else:
                obj = PDFImageXObject(name, str(asset.path))
            obj.name = name
            c._setXObjects(obj)
            doc.Reference(obj, reg)
            doc.addForm(name, obj)
        c._currentPageHasImages = 1
        c._code.append(f"q 1 0 0 1 {_n(x)} {_n(y)} cm {_f(w)} 0 0 {_f(h)} 0 0 cm /{reg} Do Q")
        c._formsinuse.append(name)

    def draw_qr(self, text: str, x: float, y: float, s: float) -> None:
        """Draw the symbol as one filled path of row runs, inside an ``s``-point square."""
        from .qr import QUIET_ZONE, qr_runs

        size, runs = qr_runs(text)
        n = size + 2 * QUIET_ZONE
        m = s / n
        # Operators written directly (reportlab's path API formats every number with its
        # pure-Python fp_str, ~1,200 calls for one symbol), in module units: one matrix puts
        # module (col, row) at its place, rows counted downwards, so each run is four integers.
        ops = " ".join([f"{col} {row} {length} 1 re" for row, col, length in runs])
        origin_x, origin_y = x + QUIET_ZONE * m, y + s - QUIET_ZONE * m
        self.c._code.append(f"q 0 g {m:.4f} 0 0 {-m:.4f} {origin_x:.2f} {origin_y:.2f} cm {ops} f Q")
