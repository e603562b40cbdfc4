"""Writing ``Stats`` as an .xlsx workbook (one sheet per table) or a PDF with charts.

The PDF follows the packets' style (GB/T 9704 page, 小标宋 title, 黑体 headings, ruled tables
with a grey header, "— n —" page numbers) and is laid out by reportlab's platypus with the
program's own embedded CJK faces; the charts are reportlab.graphics drawings whose labels are
text in the same faces, so they extract like the rest. Same statistics → same PDF bytes.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from ..errors import OutputError, os_reason
from ..outdir import atomic_write
from ..templates import cn_date
from .stats import Stats, StatsTable, Value, VillageStats

#: short sheet names (Excel allows 31 characters)
SHEET_NAMES = {
    "household_type": "户类型", "poverty_attribute": "贫困户属性", "poverty_status": "脱贫状态",
    "monitor_category": "监测类别", "risk_state": "风险消除情况", "monitor_risk": "风险类型",
    "cause": "致贫原因", "colors": "三色管理", "income": "人均纯收入", "measures": "帮扶措施",
    "coverage": "三保障和饮水",
}
CHINESE_NUMERALS = "一二三四五六七八九十"
PALETTE = ("#4E79A7", "#F28E2B", "#59A14F", "#E15759", "#76B7B2", "#EDC948", "#B07AA1", "#FF9DA7",
           "#9C755F", "#BAB0AC", "#86BCB6", "#D37295", "#8CD17D", "#A0CBE8")


@dataclass(frozen=True)
class StatsOutput:
    """What ``write_stats`` wrote."""

    path: Path
    #: sheets of the workbook, or pages of the PDF
    parts: int
    kind: str  # "xlsx" | "pdf"
    warnings: tuple[str, ...] = ()


def write_stats(stats: Stats, out: Path, *, fonts: Any = None) -> StatsOutput:
    """Write ``stats`` to ``out`` (.xlsx or .pdf, by its suffix), atomically."""
    out = Path(out)
    suffix = out.suffix.lower()
    warnings: tuple[str, ...] = ()
    if suffix == ".xlsx":
        data, parts = stats_xlsx(stats)
    elif suffix == ".pdf":
        data, parts, warnings = stats_pdf(stats, fonts=fonts)
    else:
        raise OutputError(f"统计表只能保存为 .xlsx 或 .pdf：{out.name}", hint="例如 -o 统计.xlsx 或 -o 统计.pdf")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(out, data)
    except OSError as exc:
        raise OutputError(f"无法写入 {out}：{os_reason(exc)}",
                          hint="请检查文件是否正被 Excel、WPS 或 PDF 阅读器打开，文件夹是否可写") from exc
    return StatsOutput(out, parts, suffix[1:], warnings)


def _cell_text(value: Value) -> str:
    if isinstance(value, Decimal):
        return f"{value:,.2f}"
    return str(value)


# --------------------------------------------------------------------------- xlsx


def _sheet_name(village: VillageStats, table: StatsTable, several: bool, used: set[str]) -> str:
    base = SHEET_NAMES.get(table.key, table.title)
    name = f"{village.name}-{base}" if several else base
    for bad in '[]:*?/\\':
        name = name.replace(bad, "_")
    name = name[:31]
    candidate, n = name, 2
    while candidate in used:
        candidate = f"{name[:28]}({n})"
        n += 1
    used.add(candidate)
    return candidate


def stats_xlsx(stats: Stats) -> tuple[bytes, int]:
    """Return the workbook's bytes and its number of sheets: one sheet per table and village."""
    from openpyxl import Workbook  # type: ignore[import-untyped]
    from openpyxl.styles import Alignment, Border, Font, PatternFill, Side  # type: ignore[import-untyped]
    from openpyxl.utils import get_column_letter  # type: ignore[import-untyped]

    book = Workbook()
    book.remove(book.active)
    thin = Side(style="thin", color="000000")
    border = Border(left=thin, right=thin, top=thin, bottom=thin)
    header_fill = PatternFill("solid", fgColor="E6E6E6")
    center = Alignment(horizontal="center", vertical="center", wrap_text=True)
    used: set[str] = set()
    several = len(stats.villages) > 1
    for village in stats.villages:
        for table in village.tables:
            sheet = book.create_sheet(_sheet_name(village, table, several, used))
            width = len(table.columns)
            sheet.append([f"{village.title}：{table.title}"])
            sheet.merge_cells(start_row=1, start_column=1, end_row=1, end_column=width)
            sheet.cell(1, 1).font = Font(bold=True, size=14)
            sheet.cell(1, 1).alignment = Alignment(horizontal="center")
            sheet.append([f"{stats.county}{stats.township}{village.name}　统计日期：{cn_date(stats.date)}"])
            sheet.merge_cells(start_row=2, start_column=1, end_row=2, end_column=width)
            row = 3
            header_rows = []
            if table.bands:
                column = 1
                for label, span in table.bands:
                    sheet.cell(row, column, label)
                    if span > 1:
                        sheet.merge_cells(start_row=row, start_column=column, end_row=row, end_column=column + span - 1)
                    column += span
                header_rows.append(row)
                row += 1
            for column, label in enumerate(table.columns, start=1):
                sheet.cell(row, column, label)
            header_rows.append(row)
            if table.bands:  # the first column's label spans both header rows
                sheet.cell(row - 1, 1, table.columns[0])
                sheet.cell(row, 1, None)
                sheet.merge_cells(start_row=row - 1, start_column=1, end_row=row, end_column=1)
            for header_row in header_rows:
                for column in range(1, width + 1):
                    cell = sheet.cell(header_row, column)
                    cell.font, cell.fill, cell.alignment, cell.border = Font(bold=True), header_fill, center, border
            row += 1
            sheet.freeze_panes = sheet.cell(row, 2 if table.key != "measures" else 3)
            for values in (*table.rows, *table.footer):
                for column, value in enumerate(values, start=1):
                    cell = sheet.cell(row, column, value if not isinstance(value, Decimal) else float(value))
                    cell.border = border
                    if isinstance(value, Decimal):
                        cell.number_format = "#,##0.00"
                    if values in table.footer or values[1:2] == ("小计",):
                        cell.font = Font(bold=True)
                row += 1
            if table.note:
                sheet.cell(row + 1, 1, "说明：" + table.note)
            for column in range(1, width + 1):
                texts = [table.columns[column - 1], *(_cell_text(r[column - 1]) for r in (*table.rows, *table.footer))]
                longest = max(sum(2 if ord(ch) > 0x2E7F else 1 for ch in text) for text in texts)
                sheet.column_dimensions[get_column_letter(column)].width = min(max(8, longest + 2), 40)
    fixed = datetime(2000, 1, 1)
    book.properties.creator = "archive-builder"
    book.properties.created = book.properties.modified = fixed
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue(), len(book.sheetnames)


# --------------------------------------------------------------------------- PDF


class _Styles:
    def __init__(self, fonts: Any, sizes: dict[str, float]) -> None:
        from reportlab.lib.enums import TA_CENTER, TA_JUSTIFY
        from reportlab.lib.styles import ParagraphStyle

        self.fonts = fonts
        #: characters no font can print (reported, never silently drawn as blank boxes)
        self.missing: dict[str, None] = {}
        self.face = {role: face.rl_name for role, face in fonts.faces.items()}
        self.title = ParagraphStyle("t", fontName=self.face["title"], fontSize=sizes["title"],
                                    leading=sizes["title"] * 1.4, alignment=TA_CENTER, wordWrap="CJK")
        self.subtitle = ParagraphStyle("s", fontName=self.face["kai"], fontSize=14, leading=22,
                                       alignment=TA_CENTER, wordWrap="CJK", spaceAfter=10)
        self.heading = ParagraphStyle("h", fontName=self.face["heading"], fontSize=sizes["heading"],
                                      leading=sizes["heading"] * 1.6, spaceBefore=8, spaceAfter=4, wordWrap="CJK",
                                      keepWithNext=1)
        self.heading_split = ParagraphStyle("hs", parent=self.heading, keepWithNext=0)
        self.note = ParagraphStyle("n", fontName=self.face["body"], fontSize=10.5, leading=16,
                                   alignment=TA_JUSTIFY, wordWrap="CJK", spaceBefore=3)
        table = sizes["table"]
        self.cell = ParagraphStyle("c", fontName=self.face["table"], fontSize=table, leading=table * 1.3,
                                   alignment=TA_CENTER, wordWrap="CJK")
        self.cell_bold = ParagraphStyle("cb", parent=self.cell, fontName=self.face["heading"])
        self.table_size = table
        self.roles = {"t": "title", "s": "kai", "h": "heading", "hs": "heading", "n": "body", "c": "table",
                      "cb": "heading"}

    def para(self, text: str, style: Any) -> Any:
        """Return a Paragraph of ``text``; characters the style's face lacks in a fallback face."""
        from reportlab.platypus import Paragraph

        role = self.roles[style.name]
        for ch in self.fonts.missing_chars(text, role):
            self.missing[ch] = None
        runs = self.fonts.runs(text, role)
        if len(runs) == 1 and runs[0][0] == style.fontName:
            return Paragraph(_escape(text), style)
        markup = "".join(
            _escape(part) if name == style.fontName else f'<font face="{name}">{_escape(part)}</font>'
            for name, part in runs
        )
        return Paragraph(markup, style)

    def plain(self, text: str) -> str:
        """Return ``text`` for a chart label (one face): missing characters are reported."""
        for ch in self.fonts.missing_chars(text, "table"):
            self.missing[ch] = None
        return text


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _pdf_table(table: StatsTable, styles: _Styles, width: float) -> Any:
    from reportlab.lib import colors
    from reportlab.platypus import Table, TableStyle

    def para(value: Value, bold: bool = False) -> Any:
        if not isinstance(value, str):  # numbers never wrap: plain cells, drawn much faster
            return _cell_text(value)
        return styles.para(value, styles.cell_bold if bold else styles.cell)

    data: list[list[Any]] = []
    spans: list[tuple[Any, ...]] = []
    if table.bands:
        row: list[Any] = []
        column = 0
        for label, span in table.bands:
            row.append(para(label or table.columns[0], True))
            row.extend("" for _ in range(span - 1))
            if span > 1:
                spans.append(("SPAN", (column, 0), (column + span - 1, 0)))
            column += span
        data.append(row)
        spans.append(("SPAN", (0, 0), (0, 1)))
        data.append([""] + [para(c, True) for c in table.columns[1:]])
    else:
        data.append([para(c, True) for c in table.columns])
    header_rows = len(data)
    for values in table.rows:
        bold = len(values) > 1 and values[1] == "小计"
        data.append([para(v, bold) for v in values])
    for values in table.footer:
        data.append([para(v, True) for v in values])
    count = len(table.columns)
    if table.key == "coverage":
        weights = [1.2, 3.2, 1, 1, 1, 1, 1.1]
    elif table.key == "measures":
        weights = [1, 2, 1.2, 1.2, 1.8]
    else:
        weights = [2.4] + [1.0] * (count - 1)
    total = sum(weights)
    widths = [width * w / total for w in weights]
    style = [
        ("FONTNAME", (0, 0), (-1, -1), styles.face["table"]),  # empty span cells too: never Helvetica
        ("GRID", (0, 0), (-1, -1), 0.5, colors.black),
        ("BACKGROUND", (0, 0), (-1, header_rows - 1), colors.HexColor("#E6E6E6")),
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
        ("TOPPADDING", (0, 0), (-1, -1), 2),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 3),
        ("LEFTPADDING", (0, 0), (-1, -1), 2),
        ("RIGHTPADDING", (0, 0), (-1, -1), 2),
        *spans,
    ]
    style += [("ALIGN", (0, 0), (-1, -1), "CENTER"), ("FONTSIZE", (0, 0), (-1, -1), styles.table_size)]
    for index, values in enumerate(table.rows, start=header_rows):
        if len(values) > 1 and values[1] == "小计":
            style.append(("FONTNAME", (0, index), (-1, index), styles.face["heading"]))
    if table.footer:
        first = len(data) - len(table.footer)
        style.append(("BACKGROUND", (0, first), (-1, -1), colors.HexColor("#F3F3F3")))
        style.append(("FONTNAME", (0, first), (-1, -1), styles.face["heading"]))
    return Table(data, colWidths=widths, repeatRows=header_rows, style=TableStyle(style), hAlign="CENTER")


def _hex(value: str, fallback: str) -> Any:
    from reportlab.lib import colors

    try:
        return colors.HexColor(value or fallback)
    except (ValueError, TypeError):
        return colors.HexColor(fallback)


def _chart(table: StatsTable, styles: _Styles, width: float) -> Any:
    """Return a reportlab Drawing of the table's chart (a pie or bars), labels in the CJK faces."""
    from reportlab.graphics.charts.barcharts import HorizontalBarChart, VerticalBarChart
    from reportlab.graphics.charts.piecharts import Pie
    from reportlab.graphics.shapes import Drawing, Rect, String
    from reportlab.lib import colors

    face, bold = styles.face["table"], styles.face["heading"]
    data = [(styles.plain(label), value) for label, value in table.chart_data]
    tints = [_hex(table.chart_colors[i] if i < len(table.chart_colors) else "", PALETTE[i % len(PALETTE)])
             for i in range(len(data))]
    if table.chart == "pie":
        height = 170.0
        drawing = Drawing(width, height)
        drawing.add(String(width / 2, height - 14, table.chart_title, fontName=bold, fontSize=11, textAnchor="middle"))
        shown = [(label, value, tint) for (label, value), tint in zip(data, tints) if value > 0]
        pie = Pie()
        pie.x, pie.y, pie.width, pie.height = width / 2 - 150, 12, 125, 125
        pie.data = [value for _, value, _ in shown] or [1]
        pie.labels = [f"{label} {value:g}户" for label, value, _ in shown] or ["无"]
        pie.simpleLabels = 1
        pie.slices.fontName, pie.slices.fontSize = face, 9
        pie.slices.strokeColor, pie.slices.strokeWidth = colors.white, 1
        pie.sideLabels = 1
        for i, (_, _, tint) in enumerate(shown):
            pie.slices[i].fillColor = tint
        if not shown:
            pie.slices[0].fillColor = colors.HexColor("#DDDDDD")
        drawing.add(pie)
        total = sum(value for _, value, _ in shown) or 1
        y = 120.0
        for label, value, tint in shown:  # the legend, with shares
            drawing.add(Rect(width / 2 + 60, y, 10, 10, fillColor=tint, strokeColor=None))
            drawing.add(String(width / 2 + 76, y + 1, f"{label}：{value:g} 户（{value * 100 / total:.1f}%）",
                               fontName=face, fontSize=9.5))
            y -= 18
        return drawing
    labels = [label for label, _ in data]
    values = [value for _, value in data]
    if len(data) > 6:  # many categories: horizontal bars, labels on the left
        height = 34.0 + 16 * len(data)
        drawing = Drawing(width, height)
        drawing.add(String(width / 2, height - 14, table.chart_title, fontName=bold, fontSize=11, textAnchor="middle"))
        chart: Any = HorizontalBarChart()
        chart.x, chart.y, chart.width, chart.height = 95, 14, width - 170, height - 40
        chart.data = [list(reversed(values))]
        chart.categoryAxis.categoryNames = list(reversed(labels))
        chart.categoryAxis.labels.boxAnchor = "e"
        chart.categoryAxis.labels.dx = -4
        chart.barLabels.boxAnchor = "w"
        chart.barLabels.dx = 3
    else:
        height = 150.0
        drawing = Drawing(width, height)
        drawing.add(String(width / 2, height - 14, table.chart_title, fontName=bold, fontSize=11, textAnchor="middle"))
        chart = VerticalBarChart()
        chart.x, chart.y, chart.width, chart.height = 50, 24, width - 100, height - 56
        chart.data = [values]
        chart.categoryAxis.categoryNames = labels
        chart.categoryAxis.labels.boxAnchor = "n"
        chart.categoryAxis.labels.dy = -4
        chart.barLabels.boxAnchor = "s"
        chart.barLabels.dy = 2
    chart.barLabelFormat = lambda v: f"{v:,.0f}"
    chart.barLabels.fontName, chart.barLabels.fontSize = face, 8.5
    chart.categoryAxis.labels.fontName, chart.categoryAxis.labels.fontSize = face, 9
    chart.valueAxis.labels.fontName, chart.valueAxis.labels.fontSize = face, 8
    chart.valueAxis.valueMin = 0
    chart.valueAxis.labelTextFormat = lambda v: f"{v:,.0f}"
    chart.valueAxis.visibleGrid = 1
    chart.valueAxis.gridStrokeColor = colors.HexColor("#DDDDDD")
    chart.bars.strokeColor = None
    chart.bars[0].fillColor = _hex("", PALETTE[0])
    if max(values, default=0) == 0:
        chart.valueAxis.valueMax = 1
    chart.barWidth = 12
    drawing.add(chart)
    return drawing


def _initial_font(drawing: Any, face: str) -> Any:
    drawing.initialFontName = face  # renderPDF would start the drawing in (unembedded) Helvetica
    return drawing


def stats_pdf(
    stats: Stats, *, fonts: Any = None, sizes: dict[str, float] | None = None
) -> tuple[bytes, int, tuple[str, ...]]:
    """Return the PDF's bytes, its page count and warnings (characters no font has):
    per village its tables, each with its chart."""
    from reportlab.lib.units import mm
    from reportlab.platypus import (
        BaseDocTemplate,
        CondPageBreak,
        Frame,
        KeepTogether,
        PageBreak,
        PageTemplate,
        Paragraph,
        Spacer,
    )

    from ..document import PageSetup
    from ..packet import font_set

    fonts = fonts or font_set()
    fonts.register()
    page = PageSetup()
    styles = _Styles(fonts, {**page.sizes, **(sizes or {})})
    width = page.text_width_mm * mm
    story: list[Any] = []
    first_pages: dict[str, int] = {"current": 1}  # each village's report is numbered from 1
    for v_index, village in enumerate(stats.villages):
        if v_index:
            story.append(PageBreak())
        story.append(_village_start(v_index, village.title, first_pages))
        story.append(styles.para(village.title, styles.title))
        place = f"{stats.county}{stats.township}{village.name}"
        story.append(styles.para(
            f"{place}　{village.households} 户 {village.persons} 人　统计日期：{cn_date(stats.date)}", styles.subtitle))
        if village.skipped:
            story.append(styles.para(
                f"注：{len(village.skipped)} 户的数据有错误，未计入（"
                + "、".join(p.household_id or "" for p in village.skipped) + "）。", styles.note))
        for t_index, table in enumerate(village.tables):
            number = CHINESE_NUMERALS[t_index] if t_index < 10 else f"十{CHINESE_NUMERALS[t_index - 10]}"
            parts: list[Any] = [styles.para(f"{number}、{table.title}", styles.heading)]
            if len(table.rows) < 16:
                parts.append(_pdf_table(table, styles, width))
                if table.note:
                    parts.append(styles.para("说明：" + table.note, styles.note))
                story.append(CondPageBreak(60 * mm))
                story.append(KeepTogether(parts))
            else:
                story.append(CondPageBreak(60 * mm))
                story.append(styles.para(f"{number}、{table.title}", styles.heading_split))
                story.append(_pdf_table(table, styles, width))
                if table.note:
                    story.append(styles.para("说明：" + table.note, styles.note))
            if table.chart and table.chart_data:
                story.append(Spacer(1, 4 * mm))
                story.append(KeepTogether([_initial_font(_chart(table, styles, width), styles.face["table"])]))
            story.append(Spacer(1, 4 * mm))

    def footer(canvas: Any, doc: Any) -> None:
        canvas.saveState()
        canvas.setFont(styles.face["table"], 14)
        text = page.page_number_format.format(n=doc.page - first_pages["current"] + 1)
        y = (page.height_mm - page.margin_top_mm - page.text_height_mm - 7) * mm - 14
        canvas.drawCentredString(page.margin_left_mm * mm + width / 2, y, text)
        canvas.restoreState()

    buffer = io.BytesIO()
    bottom = (page.height_mm - page.margin_top_mm - page.text_height_mm) * mm
    right = (page.width_mm - page.margin_left_mm - page.text_width_mm) * mm
    title = "、".join(v.title for v in stats.villages) or "统计表"
    doc = BaseDocTemplate(
        buffer, pagesize=(page.width_mm * mm, page.height_mm * mm), invariant=1, pageCompression=1,
        leftMargin=page.margin_left_mm * mm, rightMargin=right, topMargin=page.margin_top_mm * mm,
        bottomMargin=bottom, title=title, author=f"{stats.county}{stats.township}", creator="archive-builder",
        subject="贫情分析、三色管理统计", initialFontName=styles.face["body"],
    )
    frame = Frame(doc.leftMargin, doc.bottomMargin, doc.width, doc.height, id="text",
                  leftPadding=0, rightPadding=0, topPadding=0, bottomPadding=0)
    # the footer is drawn when a page ends, after the page's village start has been seen
    doc.addPageTemplates([PageTemplate(id="page", frames=[frame], onPageEnd=footer)])
    if not story:
        story.append(Paragraph("没有可统计的村。", styles.subtitle))
    doc.build(story)
    warnings: tuple[str, ...] = ()
    if styles.missing:
        chars = "、".join(f"「{ch}」(U+{ord(ch):04X})" for ch in styles.missing)
        warnings = (f"统计表 PDF 中有字体缺少的字：{chars}，印出为空白；请在 archive.toml [fonts] 中指定含这些字的字体",)
    return buffer.getvalue(), doc.page, warnings


def _village_start_class() -> type:
    from reportlab.platypus import Flowable

    class VillageStart(Flowable):  # type: ignore[misc]
        """Zero-size mark at a village's first page: restarts page numbers, adds an outline entry."""

        def __init__(self, index: int, title: str, first_pages: dict[str, int]) -> None:
            super().__init__()
            self.index, self.title, self.first_pages = index, title, first_pages

        def wrap(self, available_width: float, available_height: float) -> tuple[float, float]:
            return 0, 0

        def draw(self) -> None:
            self.first_pages["current"] = self.canv.getPageNumber()
            key = f"village{self.index}"
            self.canv.bookmarkPage(key)
            self.canv.addOutlineEntry(self.title, key, level=0)

    return VillageStart


def _village_start(index: int, title: str, first_pages: dict[str, int]) -> Any:
    return _village_start_class()(index, title, first_pages)
