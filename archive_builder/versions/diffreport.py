"""Comparison reports an inspector can read and print: self-contained HTML or PDF.

Both hold the same content: the conclusion, the field table (字段 / 原值 / 新值), the text
changes per section, and each changed page beside its counterpart with the changed regions
covered by semi-transparent red rectangles.
"""

from __future__ import annotations

import base64
import contextlib
import html
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image, ImageDraw

from ..errors import ArchiveError, ExitCode, os_reason
from .pdfdiff import Box, _open, _Pdf, diff_boxes

if TYPE_CHECKING:
    from .diff import Comparison

#: resolution of the page images in reports: legible on screen, small enough to embed
REPORT_DPI = 80
#: more changed pages than this are listed but not drawn (a whole village can differ)
MAX_PAGES = 60
_HIGHLIGHT_FILL = (255, 0, 0, 64)
_HIGHLIGHT_LINE = (220, 0, 0, 255)


class ReportError(ArchiveError):
    """The report file cannot be written."""

    exit_code = ExitCode.output_unusable
    kind = "报告无法写入"


class ReportFormatError(ReportError):
    """The report file name asks for a format there is no writer for."""

    exit_code = ExitCode.input_unusable


def check_report_path(path: Path) -> None:
    """Raise ReportFormatError unless ``path`` names an HTML or PDF report.

    The CLI calls this before comparing, so a mistyped name fails at once.
    """
    if path.suffix.lower() not in (".html", ".htm", ".pdf"):
        raise ReportFormatError(
            f"不支持的报告格式：{path.name}",
            hint="报告文件名须以 .html 或 .pdf 结尾，例如 --report 比较报告.html。",
        )


@dataclass
class _PagePicture:
    old: int | None
    new: int | None
    old_png: bytes | None
    new_png: bytes | None
    regions: int


def _highlight(
    image: Image.Image, boxes: list[Box], whole: bool = False
) -> Image.Image:
    base = image.convert("RGBA")
    overlay = Image.new("RGBA", base.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    # a thin frame shows the page edge on white paper
    draw.rectangle(
        (0, 0, base.width - 1, base.height - 1), outline=(150, 150, 150, 255), width=1
    )
    if whole:
        draw.rectangle(
            (0, 0, base.width - 1, base.height - 1), outline=_HIGHLIGHT_LINE, width=6
        )
    for x0, y0, x1, y1 in boxes:
        box = (
            max(0, x0 - 3),
            max(0, y0 - 3),
            min(base.width - 1, x1 + 3),
            min(base.height - 1, y1 + 3),
        )
        if box[2] < box[0] or box[3] < box[1]:
            continue  # a change beyond this page's edge (the other page is larger)
        draw.rectangle(box, fill=_HIGHLIGHT_FILL, outline=_HIGHLIGHT_LINE, width=2)
    return Image.alpha_composite(base, overlay).convert("RGB")


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG", optimize=False, compress_level=6)
    return buffer.getvalue()


def _pictures(comparison: Comparison, dpi: float, limit: int) -> Iterator[_PagePicture]:
    if not comparison.pages or comparison.old_pdf is None or comparison.new_pdf is None:
        return
    with _open(comparison.old_pdf) as a, _open(comparison.new_pdf) as b:
        for old, new in comparison.pages[:limit]:
            yield _picture(a, old, b, new, dpi)


def _picture(
    a: _Pdf, old: int | None, b: _Pdf, new: int | None, dpi: float
) -> _PagePicture:
    img_a = a.render(old - 1, dpi) if old is not None else None
    img_b = b.render(new - 1, dpi) if new is not None else None
    if img_a is not None and img_b is not None:
        boxes = diff_boxes(img_a, img_b)
        return _PagePicture(
            old,
            new,
            _png(_highlight(img_a, boxes)),
            _png(_highlight(img_b, boxes)),
            len(boxes),
        )
    return _PagePicture(
        old,
        new,
        _png(_highlight(img_a, [], whole=True)) if img_a is not None else None,
        _png(_highlight(img_b, [], whole=True)) if img_b is not None else None,
        1,
    )


def _conclusion(comparison: Comparison) -> str:
    if comparison.identical:
        return "两者相同。"
    return f"有变化：{comparison.summary()}。"


def _no_fields(comparison: Comparison) -> str:
    if comparison.records_compared:
        return "无字段变化。"
    return "两个 PDF 文件没有记录数据，只比较文本和页面。"


def _field_rows(comparison: Comparison) -> list[tuple[str, str, str, str]]:
    from .diff import format_value

    rows = []
    for c in comparison.field_changes:
        kind = {"added": "新增", "removed": "删除", "changed": "修改"}[c.kind]
        rows.append(
            (
                c.label,
                format_value(c.old, prefix=c.schema),
                format_value(c.new, prefix=c.schema),
                kind,
            )
        )
    return rows


# -- HTML -----------------------------------------------------------------------------------

_CSS = """
body { font-family: "Noto Serif CJK SC", "Songti SC", SimSun, "AR PL UMing CN", serif;
       margin: 2em auto; max-width: 1200px; color: #222; line-height: 1.5; }
h1 { font-size: 1.5em; border-bottom: 2px solid #b00; padding-bottom: .3em; }
h2 { font-size: 1.2em; margin-top: 1.6em; border-left: 6px solid #b00; padding-left: .5em; }
h3 { font-size: 1em; margin: 1em 0 .3em; }
.meta { color: #555; font-size: .9em; }
.conclusion { font-size: 1.1em; font-weight: bold; }
table { border-collapse: collapse; width: 100%; }
th, td { border: 1px solid #999; padding: .3em .5em; vertical-align: top; text-align: left; }
th { background: #eee; }
td.kind { white-space: nowrap; color: #555; }
pre { background: #f7f7f7; padding: .5em; white-space: pre-wrap; font-family: inherit; }
.del { background: #fdd; text-decoration: line-through; display: block; }
.ins { background: #dfd; display: block; }
.pair { display: flex; gap: 1em; margin: .5em 0 1.5em; page-break-inside: avoid; }
.pair figure { flex: 1; margin: 0; text-align: center; }
.pair img { max-width: 100%; border: 1px solid #999; }
.pair .none { border: 1px dashed #999; padding: 4em 1em; color: #777; }
@media print { body { margin: 0; max-width: none; } .pair { break-inside: avoid; } }
"""


def _figure(caption: str, png: bytes | None) -> str:
    if png is None:
        body = '<div class="none">（无对应页）</div>'
    else:
        data = base64.b64encode(png).decode("ascii")
        body = f'<img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
    return f"<figure>{body}<figcaption>{html.escape(caption)}</figcaption></figure>"


def render_html(
    comparison: Comparison, *, dpi: float = REPORT_DPI, max_pages: int = MAX_PAGES
) -> str:
    """Return the report as one self-contained HTML document."""
    e = html.escape
    now = datetime.now().astimezone().strftime("%Y-%m-%d %H:%M")
    parts = [
        '<!DOCTYPE html>\n<html lang="zh-CN"><head><meta charset="utf-8">',
        f"<title>{e(comparison.title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{e(comparison.title)}</h1>",
        f'<p class="meta">原：{e(comparison.old_name)}<br>新：{e(comparison.new_name)}',
    ]
    parts += [f"<br>{e(note)}" for note in comparison.notes]
    parts.append(f"<br>报告生成时间：{now}</p>")
    parts.append(f'<p class="conclusion">结论：{e(_conclusion(comparison))}</p>')

    rows = _field_rows(comparison)
    parts.append(f"<h2>字段变化（{len(rows)} 项）</h2>")
    if rows:
        parts.append(
            "<table><thead><tr><th>字段</th><th>原值</th><th>新值</th><th>类型</th></tr></thead><tbody>"
        )
        for label, old, new, kind in rows:
            parts.append(
                f"<tr><td>{e(label)}</td><td>{e(old)}</td><td>{e(new)}</td>"
                f'<td class="kind">{kind}</td></tr>'
            )
        parts.append("</tbody></table>")
    else:
        parts.append(f"<p>{e(_no_fields(comparison))}</p>")

    parts.append(f"<h2>文本变化（{len(comparison.text_changes)} 个部分）</h2>")
    if not comparison.text_changes:
        parts.append("<p>无文本变化。</p>")
    for change in comparison.text_changes:
        parts.append(f"<h3>▌{e(change.heading())}</h3><pre>")
        for line in change.lines:
            css = (
                "del" if line.startswith("-") else "ins" if line.startswith("+") else ""
            )
            parts.append(f'<span class="{css}">{e(line)}</span>')
        parts.append("</pre>")

    parts.append(f"<h2>变化的页面（{len(comparison.pages)} 处）</h2>")
    if not comparison.pages:
        parts.append("<p>无页面变化。</p>")
    for pic in _pictures(comparison, dpi, max_pages):
        parts.append(f'<h3>{e(_pair_title(pic, comparison))}</h3><div class="pair">')
        parts.append(
            _figure(f"原{comparison.old_page(pic.old)}" if pic.old else "原：无", pic.old_png)
        )
        parts.append(
            _figure(f"新{comparison.new_page(pic.new)}" if pic.new else "新：无", pic.new_png)
        )
        parts.append("</div>")
    if len(comparison.pages) > max_pages:
        parts.append(
            f"<p>另有 {len(comparison.pages) - max_pages} 处变化的页面未画出。</p>"
        )
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _pair_title(pic: _PagePicture, comparison: Comparison) -> str:
    text = comparison.page_pair(pic.old, pic.new)
    if pic.old is not None and pic.new is not None:
        text += f"（{pic.regions} 处变化区域）"
    return text


# -- PDF ------------------------------------------------------------------------------------


def _fonts() -> tuple[str, Any]:
    """Return (font name, FontSet or None): the project's fonts, else AR PL UMing."""
    try:
        from ..render.fonts import FontSet

        fontset = FontSet.discover()
        fontset.register()
        return fontset.faces["table"].rl_name, fontset
    except (ImportError, ArchiveError, OSError, KeyError):
        pass
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    uming = Path("/usr/share/fonts/truetype/arphic/uming.ttc")
    if "AB-Report-UMing" not in pdfmetrics.getRegisteredFontNames():
        try:
            pdfmetrics.registerFont(
                TTFont("AB-Report-UMing", str(uming), subfontIndex=0)
            )
        except OSError as exc:
            from ..errors import FontError

            raise FontError(
                "找不到可嵌入的中文字体，无法生成 PDF 报告。",
                hint="安装 fonts-arphic-uming，或改用 --report 报告.html。",
            ) from exc
    return "AB-Report-UMing", None


def _markup(text: str, font: str, fontset: Any) -> str:
    """Return Paragraph markup for plain text, rare characters in a fallback font."""
    from xml.sax.saxutils import escape

    if fontset is None:
        return escape(text).replace("\n", "<br/>")
    out = []
    for name, run in fontset.runs(text, "table"):
        piece = escape(run).replace("\n", "<br/>")
        out.append(piece if name == font else f'<font face="{name}">{piece}</font>')
    return "".join(out)


def render_pdf(
    comparison: Comparison,
    path: Path,
    *,
    dpi: float = REPORT_DPI,
    max_pages: int = MAX_PAGES,
) -> None:
    """Write the report as a PDF (A4 landscape, fonts embedded)."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.platypus import (
        Image as RLImage,
    )
    from reportlab.platypus import (
        KeepTogether,
        Paragraph,
        SimpleDocTemplate,
        Spacer,
        Table,
        TableStyle,
    )

    font, fontset = _fonts()
    body = ParagraphStyle(
        "body", fontName=font, fontSize=10, leading=14, wordWrap="CJK"
    )
    small = ParagraphStyle(
        "small",
        parent=body,
        fontSize=9,
        leading=12,
        textColor=colors.HexColor("#555555"),
    )
    h1 = ParagraphStyle("h1", parent=body, fontSize=16, leading=22, spaceAfter=6)
    # a heading never ends a page: it stays with what it introduces
    h2 = ParagraphStyle(
        "h2", parent=body, fontSize=13, leading=18, spaceBefore=10, spaceAfter=4, keepWithNext=1
    )
    h3 = ParagraphStyle(
        "h3", parent=body, fontSize=11, leading=15, spaceBefore=6, spaceAfter=2, keepWithNext=1
    )
    caption_style = ParagraphStyle("caption", parent=small, alignment=1)  # centred under its page
    dele = ParagraphStyle("del", parent=body, backColor=colors.HexColor("#ffdddd"))
    ins = ParagraphStyle("ins", parent=body, backColor=colors.HexColor("#ddffdd"))

    def p(text: str, style: ParagraphStyle = body) -> Paragraph:
        return Paragraph(_markup(text, font, fontset), style)

    page_w, page_h = landscape(A4)
    margin = 15 * mm
    width = page_w - 2 * margin
    story: list[Any] = [p(comparison.title, h1)]
    meta = [
        f"原：{comparison.old_name}",
        f"新：{comparison.new_name}",
        *comparison.notes,
    ]
    meta.append(
        "报告生成时间：" + datetime.now().astimezone().strftime("%Y-%m-%d %H:%M")
    )
    story += [p(line, small) for line in meta]
    story += [Spacer(1, 4), p("结论：" + _conclusion(comparison), h3)]

    rows = _field_rows(comparison)
    story.append(p(f"字段变化（{len(rows)} 项）", h2))
    if rows:
        data = [[p("字段"), p("原值"), p("新值"), p("类型")]]
        data += [[p(label), p(old), p(new), p(kind)] for label, old, new, kind in rows]
        table = Table(
            data,
            colWidths=[width * 0.34, width * 0.29, width * 0.29, width * 0.08],
            repeatRows=1,
            # a long value (an application letter) is taller than a page: split the row
            splitInRow=1,
        )
        table.setStyle(
            TableStyle(
                [
                    # Table sets this font on every cell, even around flowables
                    ("FONTNAME", (0, 0), (-1, -1), font),
                    ("GRID", (0, 0), (-1, -1), 0.5, colors.grey),
                    ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#eeeeee")),
                    ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ]
            )
        )
        story.append(table)
    else:
        story.append(p(_no_fields(comparison)))

    story.append(p(f"文本变化（{len(comparison.text_changes)} 个部分）", h2))
    if not comparison.text_changes:
        story.append(p("无文本变化。"))
    for change in comparison.text_changes:
        story.append(p("▌" + change.heading(), h3))
        for line in change.lines:
            style = (
                dele if line.startswith("-") else ins if line.startswith("+") else body
            )
            story.append(p(line, style))

    pages_heading: list[Any] = [p(f"变化的页面（{len(comparison.pages)} 处）", h2)]
    if not comparison.pages:
        story += [*pages_heading, p("无页面变化。")]
        pages_heading = []
    # room on the page for the section heading, the pair's heading and the captions too, so
    # "变化的页面" starts on the page of its first pair
    image_h = page_h - 2 * margin - 100
    for pic in _pictures(comparison, dpi, max_pages):
        cells = []
        for caption, png in (
            (f"原{comparison.old_page(pic.old)}" if pic.old else "原：无", pic.old_png),
            (f"新{comparison.new_page(pic.new)}" if pic.new else "新：无", pic.new_png),
        ):
            if png is None:
                cells.append([p("（无对应页）", caption_style), p(caption, caption_style)])
                continue
            with Image.open(io.BytesIO(png)) as im:
                w, h = im.size
            scale = min((width / 2 - 12) / w, image_h / h)
            cells.append(
                [RLImage(io.BytesIO(png), w * scale, h * scale), p(caption, caption_style)]
            )
        pair = Table([cells], colWidths=[width / 2, width / 2])
        pair.setStyle(
            TableStyle(
                [
                    ("FONTNAME", (0, 0), (-1, -1), font),
                    ("VALIGN", (0, 0), (-1, -1), "TOP"),
                    ("ALIGN", (0, 0), (-1, -1), "CENTER"),
                ]
            )
        )
        # the section's heading goes with its first pair, each pair's heading with its pages
        story.append(KeepTogether([*pages_heading, p(_pair_title(pic, comparison), h3), pair]))
        pages_heading = []
    if len(comparison.pages) > max_pages:
        story.append(
            p(f"另有 {len(comparison.pages) - max_pages} 处变化的页面未画出。")
        )

    doc = SimpleDocTemplate(
        str(path),
        pagesize=(page_w, page_h),
        leftMargin=margin,
        rightMargin=margin,
        topMargin=margin,
        bottomMargin=margin,
        title=comparison.title,
        author="archive-builder",
        initialFontName=font,
    )
    doc.build(story)


def write_report(path: Path, comparison: Comparison, **options: Any) -> Path:
    """Write an HTML (.html/.htm) or PDF (.pdf) report; return its path.

    Written to a temporary file beside ``path`` and moved into place, so a failed run never
    leaves half a report.
    """
    check_report_path(path)
    suffix = path.suffix.lower()
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if suffix == ".pdf":
            render_pdf(comparison, tmp, **options)
        else:
            tmp.write_text(render_html(comparison, **options), encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise ReportError(
            f"无法写入报告 {path}：{os_reason(exc)}",
            hint="检查目录是否存在且可写。",
        ) from exc
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise
    return path
