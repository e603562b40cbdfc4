"""The 问题台账 as files: an .xlsx for clerks, a printable PDF, and reading last round's .xlsx."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import ArchiveError, ExitCode, OutputError, os_reason
from .audit import COLUMNS, REVIEW_FIXED, REVIEW_NEW, REVIEW_OPEN, STATUSES, AuditResult, LedgerRow

SUMMARY_SHEET = "汇总"
#: column widths in characters (COLUMNS order)
_WIDTHS = (6, 10, 11, 18, 9, 11, 48, 36, 8, 36, 12, 11, 10, 10, 20, 30)
_WRAP = {"问题描述", "依据", "整改建议", "备注"}


class LedgerError(ArchiveError):
    """Last round's ledger cannot be read or the new one cannot be written."""

    exit_code = ExitCode.input_unusable
    kind = "台账错误"


# --- merging last round --------------------------------------------------------------------------


def read_ledger(path: Path) -> list[dict[str, str]]:
    """The rows of a ledger .xlsx written by ``write_xlsx`` (every village sheet), as text."""
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except FileNotFoundError:
        raise LedgerError(f"找不到上一轮台账 {path}", hint="请检查 --previous 给出的路径") from None
    except OSError as exc:
        raise LedgerError(f"无法读取上一轮台账 {path}：{os_reason(exc)}") from exc
    except Exception:  # noqa: BLE001 - openpyxl raises many kinds for a damaged file
        raise LedgerError(f"上一轮台账 {path} 不是有效的 .xlsx 文件（{_not_xlsx_reason(path)}）",
                          hint="请给出本程序生成的台账（.xlsx），用 WPS 或 Excel 编辑后另存为 .xlsx") from None
    rows: list[dict[str, str]] = []
    try:
        found_sheet = False
        for sheet in workbook.worksheets:
            if sheet.title == SUMMARY_SHEET:
                continue
            values = sheet.iter_rows(values_only=True)
            header = next(values, None)
            if not header or "问题编码" not in header:
                continue
            found_sheet = True
            names = [str(h).strip() if h is not None else "" for h in header]
            for line in values:
                row = {name: _cell_text(line[i]) for i, name in enumerate(names) if name and i < len(line)}
                if row.get("问题编码"):
                    rows.append(row)
    finally:
        workbook.close()
    if not found_sheet:
        raise LedgerError(f"上一轮台账 {path} 中没有「问题编码」列",
                          hint="请给出本程序生成的台账；编辑时不要删除「问题编码」列")
    return rows


def _not_xlsx_reason(path: Path) -> str:
    """Why openpyxl could not open ``path``, in the user's words (its exceptions are English names)."""
    suffix = Path(path).suffix.lower()
    if suffix in ("", ".xlsx", ".xlsm"):
        return "文件已损坏，或不是 Excel 工作簿"
    if suffix in (".xls", ".et", ".csv"):
        return f"这是 {suffix} 表格，不是 .xlsx 格式"
    return f"这是 {suffix} 文件，不是 Excel 工作簿"


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def merge_previous(result: AuditResult, previous: Path) -> None:
    """Carry 整改状态 and 备注 over from last round's ledger; mark 新增 / 仍未整改 / 已整改."""
    old_rows = read_ledger(Path(previous))
    old = {row["问题编码"]: row for row in old_rows}
    current = {row.key for row in result.rows}
    for row in result.rows:
        before = old.get(row.key)
        if before is None:
            row.review = REVIEW_NEW
            continue
        row.note = before.get("备注", "")
        if before.get("复核结果") == REVIEW_FIXED:  # fixed last round, back again
            row.review = REVIEW_NEW
            continue
        row.review = REVIEW_OPEN
        row.status = before.get("整改状态") or row.status
    gone = [row for key, row in old.items() if key not in current]
    for before in gone:
        result.rows.append(LedgerRow(
            key=before["问题编码"], rule_id=before["问题编码"].split("|", 1)[0], village=before.get("村", ""),
            village_code="", group=before.get("村民组", ""), household_id=before.get("户编号", ""),
            head=before.get("户主", ""), category=before.get("问题类别", ""), description=before.get("问题描述", ""),
            basis=before.get("依据", ""), severity=before.get("严重程度", ""), advice=before.get("整改建议", ""),
            helpers=before.get("帮扶责任人", ""), deadline=before.get("整改时限", ""), status="已整改",
            review=REVIEW_FIXED, note=before.get("备注", ""),
        ))
        if before.get("村") and before["村"] not in result.villages:
            result.villages.append(before["村"])
    order = {name: n for n, name in enumerate(result.villages)}
    result.rows.sort(key=lambda r: (order.get(r.village, len(order)), r.household_id))  # stable: rule order kept


# --- .xlsx ------------------------------------------------------------------------------------


def _sheet_names(villages: Sequence[str]) -> dict[str, str]:
    """A valid, unique Excel sheet name for each village (≤ 31 characters, no []:*?/\\)."""
    names: dict[str, str] = {}
    used = {SUMMARY_SHEET}
    for village in villages:
        base = "".join("_" if c in "[]:*?/\\" else c for c in village).strip("'") or "村"
        base = base[:28]
        name, n = base, 2
        while name in used:
            name, n = f"{base}{n}", n + 1
        used.add(name)
        names[village] = name
    return names


def xlsx_bytes(result: AuditResult) -> bytes:
    """The ledger workbook: a summary sheet, then one sheet per village."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter
    from openpyxl.worksheet.datavalidation import DataValidation

    workbook = Workbook()
    stamp = dt.datetime.combine(result.date, dt.time())
    workbook.properties.created = workbook.properties.modified = stamp
    workbook.properties.creator = "archive-builder"
    workbook.properties.title = "问题台账"
    bold = Font(bold=True)
    header_fill = PatternFill("solid", fgColor="DDEBF7")
    severe_fill = PatternFill("solid", fgColor="FCE4E4")
    wrap = Alignment(wrap_text=True, vertical="top")
    top = Alignment(vertical="top")

    summary = workbook.active
    summary.title = SUMMARY_SHEET
    categories = result.categories()
    title = f"{result.county}{result.township}问题台账（{result.date.isoformat()}）"
    summary.append([title])
    summary["A1"].font = Font(bold=True, size=14)
    header = ["村", *categories, "合计", "其中严重", "已整改"]
    summary.append(header)
    for cell in summary[2]:
        cell.font, cell.fill = bold, header_fill
    totals = [0] * (len(categories) + 3)
    by_village = result.by_village()
    for village, counts, fixed in result.table():
        rows = by_village.get(village, [])
        severe = sum(1 for r in rows if r.is_open and r.severity == "严重")
        values = [*(counts[c] for c in categories), sum(counts.values()), severe, fixed]
        totals = [a + b for a, b in zip(totals, values)]
        summary.append([village, *values])
    summary.append(["合计", *totals])
    for cell in summary[summary.max_row]:
        cell.font = bold
    summary.column_dimensions["A"].width = 16
    for i in range(2, len(header) + 1):
        summary.column_dimensions[get_column_letter(i)].width = 12
    summary.freeze_panes = "B3"

    names = _sheet_names(list(by_village))
    status_col = get_column_letter(COLUMNS.index("整改状态") + 1)
    for village, rows in by_village.items():
        sheet = workbook.create_sheet(names[village])
        sheet.append(list(COLUMNS))
        for cell in sheet[1]:
            cell.font, cell.fill = bold, header_fill
            cell.alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)
        for number, row in enumerate(rows, 1):
            sheet.append(list(row.cells(number)))
            line = sheet[sheet.max_row]
            for name, cell in zip(COLUMNS, line):
                cell.alignment = wrap if name in _WRAP else top
            if row.severity == "严重" and row.is_open:
                line[COLUMNS.index("严重程度")].fill = severe_fill
        for i, width in enumerate(_WIDTHS, 1):
            sheet.column_dimensions[get_column_letter(i)].width = width
        sheet.freeze_panes = "A2"
        last = max(sheet.max_row, 2)
        sheet.auto_filter.ref = f"A1:{get_column_letter(len(COLUMNS))}{last}"
        choice = DataValidation(type="list", formula1='"' + ",".join(STATUSES) + '"', allow_blank=True,
                                showErrorMessage=True, errorTitle="整改状态", error="请从下拉列表中选择：" + "、".join(STATUSES),
                                promptTitle="整改状态", prompt="请选择：" + "、".join(STATUSES), showInputMessage=True)
        choice.add(f"{status_col}2:{status_col}{max(last, 2) + 200}")
        sheet.add_data_validation(choice)
        sheet.print_title_rows = "1:1"
        sheet.page_setup.orientation = "landscape"
        sheet.page_setup.paperSize = sheet.PAPERSIZE_A4
        sheet.page_setup.fitToWidth = 1
        sheet.page_setup.fitToHeight = 0
        sheet.sheet_properties.pageSetUpPr.fitToPage = True
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _write(path: Path, data: bytes, what: str) -> Path:
    from ..archive.outdir import atomic_write

    try:
        atomic_write(Path(path), data)
    except ArchiveError:
        raise
    except OSError as exc:
        raise OutputError(f"无法写出{what} {path}：{os_reason(exc)}",
                          hint="请检查该位置是否可写，文件是否正被 WPS、Excel 或 PDF 阅读器打开") from exc
    return Path(path)


def write_xlsx(result: AuditResult, path: Path) -> Path:
    """Write the ledger workbook to ``path`` atomically."""
    return _write(path, xlsx_bytes(result), "问题台账")


# --- PDF --------------------------------------------------------------------------------------

_PDF_COLUMNS = ("序号", "村民组", "户编号", "户主", "问题类别", "问题描述", "严重程度", "整改建议", "整改时限", "整改状态")
_PDF_WIDTHS = (3.5, 6, 13.5, 5, 6, 30, 4.5, 20, 8.5, 5.5)


def ledger_document(result: AuditResult) -> Any:
    """The ledger as a document of the program's document model (landscape A4)."""
    from .. import document as dm

    page = dm.PageSetup(width_mm=297.0, height_mm=210.0, margin_top_mm=20.0, margin_left_mm=15.0,
                        text_width_mm=267.0, text_height_mm=170.0)
    categories = result.categories()
    title = f"{result.township}问题台账" if result.township else "问题台账"
    subtitle = f"{result.county}{result.township}　{result.date.year}年{result.date.month}月{result.date.day}日"
    rows = []
    by_village = result.by_village()
    for village, counts, fixed in result.table():
        severe = sum(1 for r in by_village.get(village, []) if r.is_open and r.severity == "严重")
        rows.append((village, *(str(counts[c]) for c in categories), str(sum(counts.values())), str(severe), str(fixed)))
    total_open = len(result.open_rows)
    footer = (("合计", *(str(sum(1 for r in result.open_rows if r.category == c)) for c in categories),
               str(total_open), str(result.counts()["严重"]), str(len(result.rows) - total_open)),)
    header = ("村", *categories, "合计", "其中严重", "已整改")
    summary_blocks: list[Any] = [
        dm.Title(title, subtitle),
        dm.Paragraph(f"共检查 {result.households} 户，发现问题 {total_open} 条（"
                     + "，".join(f"{k} {v} 条" for k, v in result.counts().items()) + "）。", indent=True),
        dm.Table(header, tuple(rows), widths=(2.0, *([1.0] * (len(header) - 1))), footer=footer,
                 align=("left", *(["center"] * (len(header) - 1)))),  # type: ignore[arg-type]
    ]
    sections = [dm.Section("summary", "汇总", tuple(summary_blocks), layout="form")]
    for n, (village, village_rows) in enumerate(by_village.items()):
        table_rows = tuple(
            (str(i), r.group, r.household_id, r.head, r.category, r.description, r.severity, r.advice, r.deadline,
             r.status if r.is_open else f"{r.status}（复核：已整改）")
            for i, r in enumerate(village_rows, 1)
        )
        blocks: list[Any] = [dm.Title(f"{village}问题台账", f"共 {len(village_rows)} 条")]
        if table_rows:
            blocks.append(dm.Table(_PDF_COLUMNS, table_rows, widths=_PDF_WIDTHS,
                                   align=("center", "left", "left", "left", "left", "left", "center", "left",
                                          "center", "center")))
        else:
            blocks.append(dm.Paragraph("本村未发现问题。"))
        sections.append(dm.Section(f"village{n}", village, tuple(blocks), layout="form"))
    return dm.Document(title=title, sections=tuple(sections), page=page, subject="问题台账",
                       author="archive-builder", date=result.date.isoformat())


def write_pdf(result: AuditResult, path: Path, *, data_dir: Path | None = None) -> Path:
    """Write the printable ledger (fonts embedded, text extractable) atomically."""
    from ..archive.packet import font_set
    from ..render.pdf import write_pdf as render

    configured: dict[str, Any] = {}
    if data_dir is not None:  # the fonts archive.toml names, as for the packets
        from ..config import load_archive_config
        from ..templates import absolute_font

        config, _problems = load_archive_config(Path(data_dir) / "archive.toml")
        configured = {role: absolute_font(value, Path(data_dir)) for role, value in config.fonts.items()}
    fonts = font_set(configured)
    buffer = io.BytesIO()
    render(ledger_document(result), buffer, fonts=fonts, qr=False)
    return _write(path, buffer.getvalue(), "问题台账 PDF")
