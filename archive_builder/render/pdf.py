"""The PDF writer: a ``Document`` → one PDF, drawn with reportlab's low-level canvas.

Why not platypus: we need speed (the Performance table of README.md), CJK line-breaking rules
(``linebreak.py``) and per-character font fallback (``fonts.py``).

Two passes.  Pass 1 (``pdflayout``) lays out every block into ``_Page`` objects holding
simple draw items (tuples; the page model is ``pdfmodel``); it needs no page numbers, because
the only thing that depends on them, the contents block, has a fixed row height, so its size
is known from the number of entries.  Then ``write_pdf`` assigns printed page numbers (cover
and separator sheets are unnumbered) and pass 2 (``pdfpaint``) emits the items into the
canvas as raw PDF operators.

Pages of evidence PDFs are merged in afterwards with pypdf; that path is skipped entirely
when a document has none.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from datetime import date as _date
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from reportlab.pdfgen.canvas import Canvas

from ..document import Document, Heading, KeyValue, Paragraph, QRCode, RenderResult, Section, SectionPages, Table, Title
from . import rlformat
from .fontprogram import _DOC_FONTS
from .pdflayout import _Layout
from .pdfmodel import _Fonts
from .pdfpaint import _Painter

if TYPE_CHECKING:  # pragma: no cover
    from .evidence import EvidenceCache
    from .fonts import FontSet

__all__ = ["CREATOR", "write_pdf"]


CREATOR = "archive-builder"


def _pdf_date(iso: str) -> Callable[..., str]:
    try:
        d = _date.fromisoformat(iso[:10])
    except ValueError:
        d = _date(2000, 1, 1)
    s = f"D:{d.year:04d}{d.month:02d}{d.day:02d}000000+08'00'"
    return lambda *args: s


def write_pdf(
    doc: Document,
    out: Path | BinaryIO,
    *,
    fonts: FontSet,
    evidence: EvidenceCache | None = None,
    qr: bool = True,
) -> RenderResult:
    """Render ``doc`` to ``out`` (a path or a binary file object) and say where things landed.

    ``fonts`` must be registered (``FontSet.register()``); ``evidence`` is needed only when
    the document has Evidence blocks (without it they become placeholder pages).  Output is
    reproducible: the same input gives byte-identical files.
    """
    f = _Fonts(fonts)
    lay = _Layout(doc, f, evidence, qr)
    lay.run()
    if not lay.pages:  # a PDF has at least one page; say so in the page count
        lay.new_page("form", numbered=False)

    # printed page numbers (cover and separators unnumbered)
    n = 0
    for pg in lay.pages:
        if pg.numbered:
            n += 1
            pg.number = n
    sections: list[SectionPages] = []
    painter_numbers: dict[int, str] = {}
    for si, (sec, (first, last)) in enumerate(zip(doc.sections, lay.sections)):
        a = lay.pages[first].number
        b = max((pg.number for pg in lay.pages[first:last + 1]), default=0)
        num = str(a) if a else ""
        if a and b > a:
            painter_numbers[si] = f"{a}–{b}"
        elif a:
            painter_numbers[si] = num
        sections.append(SectionPages(sec.key, sec.title, first, last, num))

    with rlformat.settings():  # reportlab as we write with it (see rlformat)
        buf = io.BytesIO()
        body_font = fonts.faces["body"].rl_name
        c = Canvas(
            buf,
            pagesize=(lay.pw, lay.ph),
            invariant=1,
            pageCompression=1,
            initialFontName=body_font,
            initialFontSize=12,
        )
        c.setDateFormatter(_pdf_date(doc.date))
        c.setTitle(doc.title)
        if doc.subject:
            c.setSubject(doc.subject)
        if doc.keywords:
            c.setKeywords(", ".join(doc.keywords))
        if doc.author:
            c.setAuthor(doc.author)
        c.setCreator(CREATOR)
        c.setFont(body_font, 12)  # never let the default Helvetica into the page resources

        painter = _Painter(c, f, lay)
        painter.numbers = painter_numbers
        first_of = {first: si for si, (first, _last) in enumerate(lay.sections)}
        for idx, pg in enumerate(lay.pages):
            starts = first_of.get(idx)
            if starts is not None:
                key = f"s{starts}"
                c.bookmarkPage(key, fit="XYZ", top=lay.ph)
                c.addOutlineEntry(doc.sections[starts].title, key, level=0)
            painter.paint_page(pg)
            c.showPage()
        if lay.pages:
            c.showOutline()
        c.save()
    data = buf.getvalue()
    # pypdf rewrites the file when it merges pages in: then collation reads its fonts itself
    ours = () if lay.merges or lay.externals else tuple(c._doc.__dict__.get(_DOC_FONTS, ()))

    if lay.merges:
        data = _merge_evidence(data, lay.merges)
    if lay.externals:
        data = _place_external(data, lay.externals)

    if isinstance(out, (str, Path)):
        Path(out).write_bytes(data)
    else:
        out.write(data)
    return RenderResult(
        pages=len(lay.pages),
        sections=tuple(sections),
        separators=tuple(lay.separators),
        warnings=tuple(lay.warnings + f.warnings()),
        fonts=ours,
        sha256=hashlib.sha256(data).hexdigest(),
    )


def _merge_evidence(data: bytes, merges: list[tuple[int, Any, tuple[float, float, float, float]]]) -> bytes:
    """Merge each evidence PDF page, scaled to fit its box (respecting /Rotate), into its page."""
    from pypdf import PdfReader, PdfWriter, Transformation

    from .evidence import open_evidence_pdf

    reader = PdfReader(io.BytesIO(data))
    writer = PdfWriter(clone_from=reader)
    sources: dict[Path, Any] = {}
    for page_index, asset, (bx, by, bw, bh) in merges:
        src = sources.get(asset.placed)
        if src is None:
            src = sources[asset.placed] = open_evidence_pdf(asset.placed)
        spage = src.pages[asset.page]
        box = spage.cropbox
        x0, y0 = float(box.left), float(box.bottom)
        w, h = float(box.width), float(box.height)
        rot = (int(spage.get("/Rotate", 0) or 0)) % 360
        t = Transformation().translate(-x0, -y0)
        if rot:
            t = t.rotate(-rot)
        # where the page's corners went; move the result's lower-left corner to the origin
        corners = [t.apply_on((px, py)) for px, py in ((0, 0), (w, 0), (0, h), (w, h))]
        cx = min(p[0] for p in corners)
        cy = min(p[1] for p in corners)
        dw = max(p[0] for p in corners) - cx
        dh = max(p[1] for p in corners) - cy
        s = min(bw / dw, bh / dh) if dw and dh else 1.0
        t = t.translate(-cx, -cy).scale(s, s).translate(bx + (bw - dw * s) / 2, by + (bh - dh * s) / 2)
        writer.pages[page_index].merge_transformed_page(spage, t, over=True, expand=False)
    # reproducible output: keep the source's file identifier
    if "/ID" in reader.trailer:
        writer._ID = reader.trailer["/ID"]  # type: ignore[assignment]
    outbuf = io.BytesIO()
    writer.write(outbuf)
    return outbuf.getvalue()


def _place_external(data: bytes, externals: list[tuple[int, str, int]]) -> bytes:
    """Draw whole pages of external PDFs (converted Word forms) under the packet's pages.

    Each source page (after its /Rotate) is scaled to fit the packet page and centred; the
    packet page carries only its page number, drawn on top.
    """
    from pypdf import PdfReader, PdfWriter, Transformation

    reader = PdfReader(io.BytesIO(data))
    writer = PdfWriter(clone_from=reader)
    sources: dict[str, Any] = {}
    for page_index, source, k in externals:
        src = sources.get(source)
        if src is None:
            src = sources[source] = PdfReader(source)
        spage = src.pages[k]
        target = writer.pages[page_index]
        pw, ph = float(target.mediabox.width), float(target.mediabox.height)
        box = spage.cropbox
        w, h = float(box.width), float(box.height)
        t = Transformation().translate(-float(box.left), -float(box.bottom))
        rot = (int(spage.get("/Rotate", 0) or 0)) % 360
        if rot:
            t = t.rotate(-rot)
        corners = [t.apply_on((px, py)) for px, py in ((0, 0), (w, 0), (0, h), (w, h))]
        cx, cy = min(p[0] for p in corners), min(p[1] for p in corners)
        dw, dh = max(p[0] for p in corners) - cx, max(p[1] for p in corners) - cy
        s = min(pw / dw, ph / dh) if dw and dh else 1.0
        if abs(s - 1.0) < 0.002:  # same paper size up to rounding: place 1:1
            s = 1.0
        t = t.translate(-cx, -cy).scale(s, s).translate((pw - dw * s) / 2, (ph - dh * s) / 2)
        target.merge_transformed_page(spage, t, over=False, expand=False)
    if "/ID" in reader.trailer:
        writer._ID = reader.trailer["/ID"]  # type: ignore[assignment]
    outbuf = io.BytesIO()
    writer.write(outbuf)
    return outbuf.getvalue()


#: common characters of a packet (labels, digits, punctuation), drawn by ``warm_up``
_WARM_TEXT = "户主姓名身份证号码家庭住址人口劳动力年收入支出合计元是否脱贫监测对象帮扶责任人措施村组乡镇县日期0123456789.-（）：，。"


def warm_up(fonts: FontSet) -> None:
    """Render a small document in memory, once per worker process before its first packet.

    A worker's first packet would otherwise cost several times a later one: importing
    zxing-cpp, the fonts' coverage and width tables, the common glyphs' deflate blocks,
    reportlab's code paths.
    Done while the build process still reads the records, it costs nothing that waits.
    The caches it fills are functions of the fonts alone, so no packet's bytes change.
    """
    text = _WARM_TEXT
    doc = Document(title="warm-up", sections=(
        Section("warm", text[:4], (
            Title(text[:8]),
            Heading(text[8:16]),
            KeyValue(((text[:4], text[4:12]), (text[12:16], text[16:40]))),
            Table((text[:2], text[2:4]), (("1", text),)),
            Paragraph(text),
            QRCode("AB1|0|v1|0"),
        )),
    ))
    write_pdf(doc, io.BytesIO(), fonts=fonts)
