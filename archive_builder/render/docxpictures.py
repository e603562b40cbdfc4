"""Pictures of a Word packet: QR codes, evidence (photos, scanned PDF pages rendered with
pdfium) with their captions, placeholder pages for evidence that cannot be read, and whole
pages of converted forms."""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..document import Evidence, ExternalPages, QRCode
from .docxpackage import pdf_page_png, qr_png
from .evidenceassets import missing_reported
from .wordml import (
    CAPTION_SIZE,
    EMU_PER_MM,
    EVIDENCE_CAPTION_MM,
    PDF_PAGE_DPI,
    PLACEHOLDER_TEXT,
    _el,
    ppr_set,
    w,
)

if TYPE_CHECKING:  # pragma: no cover
    from .docxwriter import _Writer


def qrcode(writer: _Writer, b: QRCode) -> None:
    png = qr_png(b.text)
    size = round(b.size_mm * EMU_PER_MM)
    p = writer.para(style="ABPlain", align="right", keep_next=bool(b.caption))
    picture(writer, p, io.BytesIO(png), size, size)
    if b.caption:
        p = writer.para(style="ABPlain", align="right")
        writer.run(p, b.caption, "table", CAPTION_SIZE)



def picture(writer: _Writer, p: Any, stream: Any, cx: int, cy: int) -> None:
    from docx.oxml.shape import CT_Inline

    # python-docx's new_pic_inline without its next_id, a search of the whole body
    part = writer.package_doc.part
    rid, image = part.get_or_add_image(stream)
    width, height = image.scaled_dimensions(cx, cy)
    inline = CT_Inline.new_pic_inline(writer.next_object_id, rid, image.filename, width, height)
    writer.next_object_id += 1
    r = _el("r", p)
    drawing = _el("drawing", r)
    drawing.append(inline)



def evidence_block(writer: _Writer, b: Evidence) -> None:
    from .evidence import ImageAsset, PdfPageAsset, Placeholder

    if writer.evidence is None:
        assets: list[Any] = [Placeholder(Path(b.source), b.display_path, "未配置佐证材料缓存")]
    else:
        assets = writer.evidence.assets(Path(b.source), display_path=b.display_path)
    total = len(assets)
    box_w = writer.page.text_width_mm
    box_h = writer.page.text_height_mm - EVIDENCE_CAPTION_MM
    for n, asset in enumerate(assets, 1):
        writer.page_break()
        evidence_caption(writer, b, n, total)
        if isinstance(asset, Placeholder):
            placeholder(writer, asset.display_path, asset.reason, getattr(asset, "hint", ""))
            continue
        if isinstance(asset, ImageAsset):
            wpx, hpx = asset.width_px, asset.height_px
            stream: Any = io.BytesIO(asset.image_bytes())
        elif isinstance(asset, PdfPageAsset):
            try:
                data, wpx, hpx = pdf_page_png(asset.placed, asset.page, PDF_PAGE_DPI)
            except Exception as e:  # noqa: BLE001 - a page pdfium cannot draw: placeholder, go on
                placeholder(writer, b.display_path, f"PDF 第 {asset.page + 1} 页无法渲染：{e}",
                                 "请把该文件重新导出为 PDF 或图片后替换。")
                continue
            stream = io.BytesIO(data)
        else:  # pragma: no cover
            continue
        scale = min(box_w / wpx, box_h / hpx)
        p = writer.para(style="ABPlain", align="center")
        picture(writer, p, stream, round(wpx * scale * EMU_PER_MM), round(hpx * scale * EMU_PER_MM))
        writer.page_has_content = True



def external_pages(writer: _Writer, b: ExternalPages) -> None:
    """Whole pages of a PDF (a converted form with no Word original given): one picture
    per page, scaled to the text block."""
    for k in range(b.pages):
        writer.page_break()
        try:
            data, wpx, hpx = pdf_page_png(Path(b.source), k, PDF_PAGE_DPI)
        except Exception as e:  # noqa: BLE001 - say so on the page, go on
            placeholder(writer, Path(b.source).name, f"PDF 第 {k + 1} 页无法渲染：{e}", "")
            continue
        scale = min(writer.page.text_width_mm / wpx, writer.page.text_height_mm / hpx)
        p = writer.para(style="ABPlain", align="center")
        picture(writer, p, io.BytesIO(data), round(wpx * scale * EMU_PER_MM), round(hpx * scale * EMU_PER_MM))
        writer.page_has_content = True



def evidence_caption(writer: _Writer, b: Evidence, n: int, total: int) -> None:
    caption = " · ".join(x for x in (b.title, b.kind, b.date, b.display_path) if x)
    if total > 1:
        caption += f"（第 {n} 页，共 {total} 页）"
    p = writer.para(style="ABPlain", align="left", keep_next=True)
    ppr_set(p.find(w("pPr")), "spacing", after=170)
    writer.run(p, caption, "kai", CAPTION_SIZE * 1.15)



def placeholder(writer: _Writer, display_path: str, reason: str, hint: str) -> None:
    size = writer.size("body")
    small = CAPTION_SIZE * 1.15
    lines = [(PLACEHOLDER_TEXT.format(path=display_path), "heading", size),
             (f"原因：{reason}", "body", small)]
    if hint:
        lines.append((hint, "body", small))
    for i, (text, role, sz) in enumerate(lines):
        p = writer.para(style="ABPlain", align="center", keep_next=i < len(lines) - 1)
        ppr = p.find(w("pPr"))
        bdr = ppr_set(ppr, "pBdr")
        # identical borders on consecutive paragraphs: Word draws one box around them
        for edge in ("top", "left", "bottom", "right"):
            _el(edge, bdr, val="single", sz=8, space=4, color="000000")
        ppr_set(ppr, "spacing", before=360 if i == 0 else 120, after=360 if i == len(lines) - 1 else 0)
        writer.run(p, text, role, sz)
    if not missing_reported(reason):
        writer.warnings.append(
            f"佐证材料 {display_path} 无法读取（{reason}），已用占位页代替；"
            f"{hint or '请补充或替换该文件。'}")

