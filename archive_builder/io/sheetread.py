"""Reading a spreadsheet (.xlsx, .xls, .csv) into rows, and the values of its cells.

``read_rows`` returns each sheet's header and rows with the limits that keep a hostile file
from exhausting memory; the ``parse_*`` functions turn one cell into a record value or raise
``CellProblem`` with the reason and the fix. Used by ``spreadsheet.import_sheet``.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ArchiveError, ExitCode, ExternalToolError, os_reason
from ..records.idnumber import IdNumberError, parse_id

logger = logging.getLogger(__name__)


class SheetError(ArchiveError):
    """The spreadsheet cannot be imported at all (unreadable, no header row, column missing)."""

    exit_code = ExitCode.input_unusable
    kind = "表格无法导入"


# --- reading the file --------------------------------------------------------------------


@dataclass
class SheetRows:
    """The cells of one worksheet (or of a CSV file): ``rows[i]`` is spreadsheet row ``i + 1``."""

    name: str
    rows: list[list[Any]]


def read_rows(file: Path) -> list[SheetRows]:
    """Return every worksheet of ``file`` as rows of cell values; raise SheetError."""
    suffix = file.suffix.lower()
    if not file.is_file():
        raise SheetError(f"找不到表格文件 {file}", hint="请检查文件名和路径")
    try:
        if suffix in (".xlsx", ".xlsm"):
            return _read_xlsx(file)
        if suffix == ".xls":
            return _read_xls(file)
        if suffix in (".csv", ".txt"):
            return [_read_csv(file)]
    except ArchiveError:
        raise
    except Exception as exc:  # any reader failure means the file itself is unusable
        logger.debug("spreadsheet reader failed", exc_info=True)  # the reader's own words, for -v
        reason = os_reason(exc) if isinstance(exc, OSError) else f"不是有效的 {suffix or '表格'} 文件，或已损坏、已加密"
        raise SheetError(
            f"无法读取表格文件 {file.name}：{reason}",
            hint="请确认文件没有损坏、没有设置打开密码；可在 Excel/WPS 中打开后另存为 .xlsx 再导入",
        ) from exc
    raise SheetError(
        f"不支持的表格文件类型「{file.suffix}」：{file.name}",
        hint="请使用 .xlsx、.xls 或 .csv 文件（可在 Excel/WPS 中“另存为”）",
    )


#: sane limits of a sheet to import: a township's 全乡人员信息 has some 10,000 rows of 40
#: columns (~30 MB of XML); a zip bomb of 2 MB unpacks to a gigabyte
MAX_XLSX_BYTES = 300 * 1024 * 1024
MAX_XLSX_RATIO = 200
MAX_ROWS = 200_000
MAX_COLUMNS = 1_000


def _check_xlsx_size(file: Path) -> None:
    """Refuse an .xlsx whose parts unpack to more than is sane, before any XML is parsed."""
    import zipfile

    try:
        with zipfile.ZipFile(file) as archive:
            infos = archive.infolist()
    except (OSError, zipfile.BadZipFile, ValueError):
        return  # not a zip: the reader says it is not a valid .xlsx
    total = sum(max(0, i.file_size) for i in infos)
    packed = sum(max(0, i.compress_size) for i in infos)
    worst = max(infos, key=lambda i: i.file_size, default=None)
    ratio = worst.file_size / max(1, worst.compress_size) if worst is not None else 0
    if total > MAX_XLSX_BYTES or (worst is not None and worst.file_size > 10 * 1024 * 1024 and ratio > MAX_XLSX_RATIO):
        raise SheetError(
            f"表格文件 {file.name} 解压后有 {total / 1024 / 1024:.0f} MB（文件本身 {packed / 1024 / 1024:.1f} MB），"
            f"超过安全上限 {MAX_XLSX_BYTES // 1024 // 1024} MB，可能是“压缩炸弹”，未导入",
            hint="请确认文件来源；正常的全乡人员信息表远小于此。可在 Excel/WPS 中只保留需要的工作表和行列后另存再导入",
        )


def _sheet_rows(title: str, rows: Iterator[Any], file: Path) -> SheetRows:
    """The rows of one worksheet, refused past ``MAX_ROWS`` rows or ``MAX_COLUMNS`` columns."""
    out = []
    for index, row in enumerate(rows):
        if index >= MAX_ROWS:
            raise SheetError(
                f"表格文件 {file.name} 的工作表「{title}」超过 {MAX_ROWS} 行，未导入",
                hint="请删除空白行或把数据分成几个文件后分别导入",
            )
        values = list(row)
        if len(values) > MAX_COLUMNS:
            while values and values[-1] is None:
                values.pop()  # a formatted but empty column far to the right
            if len(values) > MAX_COLUMNS:
                raise SheetError(
                    f"表格文件 {file.name} 的工作表「{title}」超过 {MAX_COLUMNS} 列，未导入",
                    hint="请删除多余的列后另存再导入",
                )
        out.append(values)
    return SheetRows(title, out)


def _read_xlsx(file: Path) -> list[SheetRows]:
    from openpyxl import load_workbook  # type: ignore[import-untyped]

    _check_xlsx_size(file)
    # read_only opens the file for reading only; data_only gives cached formula results
    book = load_workbook(file, read_only=True, data_only=True)
    try:
        for ws in book.worksheets:
            # the declared size: a sheet claiming a million rows of 16,384 columns is refused
            # before openpyxl pads every row to its width
            if (ws.max_column or 0) > 16 * MAX_COLUMNS or (ws.max_row or 0) > 16 * MAX_ROWS:
                ws.reset_dimensions()
        return [_sheet_rows(ws.title, ws.iter_rows(values_only=True), file) for ws in book.worksheets]
    finally:
        book.close()


def _read_xls(file: Path) -> list[SheetRows]:
    try:
        from python_calamine import CalamineWorkbook
    except ImportError:
        raise ExternalToolError(
            "读取 .xls 文件需要 Python 软件包 python-calamine，当前没有安装",
            hint="运行 pip install python-calamine 后重试；或在 Excel/WPS 中把文件另存为 .xlsx 再导入",
        ) from None
    book = CalamineWorkbook.from_path(str(file))
    try:
        return [SheetRows(name, [list(row) for row in book.get_sheet_by_name(name).to_python(skip_empty_area=False)])
                for name in book.sheet_names]
    finally:
        close = getattr(book, "close", None)
        if close:
            close()


def decode_csv(data: bytes) -> str:
    """Return CSV text: UTF-8 (with or without BOM) when it decodes, else GB18030."""
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("gb18030")


def _read_csv(file: Path) -> SheetRows:
    text = decode_csv(file.read_bytes())
    first = text.split("\n", 1)[0]
    delimiter = "\t" if first.count("\t") > first.count(",") else ","
    rows = [list(row) for row in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)]
    return SheetRows(file.name, rows)


# --- cell values ---------------------------------------------------------------------------


class CellProblem(Exception):
    """A cell value that cannot be used; ``fatal`` ones keep the household out."""

    def __init__(self, message: str, hint: str, *, fatal: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.fatal = fatal


_TRUE = {"是", "√", "✓", "✔", "y", "yes", "true", "1", "有", "已", "已消除", "已解决", "对"}
_FALSE = {"否", "×", "✗", "✘", "x", "n", "no", "false", "0", "无", "未", "未消除", "未解决",
          "不是", "没有"}
_SCIENTIFIC = re.compile(r"^[0-9](\.[0-9]+)?[eE]\+?[0-9]+$")
_FORMULA_TEXT = re.compile(r'^="(.*)"$')
_LIST_SPLIT = re.compile(r"[,，、;；/／|]+")
_EXCEL_EPOCH = dt.date(1899, 12, 30)


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _number_text(value: float) -> str:
    if isinstance(value, float):
        return f"{value:.15g}".replace("e+", "E+")
    return str(value)


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()[:10]
    text = str(value).strip()
    match = _FORMULA_TEXT.match(text)  # ="0123" is how CSV exports protect codes
    return match.group(1).strip() if match else text


def parse_code(value: Any, header: str) -> str:
    """Return a code (户编号, phone) as text; numbers that may have lost digits are refused."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if isinstance(value, float) and not value.is_integer():
            raise CellProblem(f"「{header}」是小数 {value}，不是编号", "请核对原始数据", fatal=True)
        digits = str(int(value))
        if len(digits) > 15:
            raise CellProblem(
                f"「{header}」被 Excel 存成了数字（{_number_text(value)}），超过 15 位的数字会丢失末位，不能导入",
                f"请把「{header}」列设为“文本”格式，从国家系统重新导出或按原始编号重新录入后再导入",
                fatal=True,
            )
        return digits
    text = _as_text(value)
    if _SCIENTIFIC.match(text):
        raise CellProblem(
            f"「{header}」是科学计数法「{text}」，说明 Excel 把它当成了数字，末几位已丢失，不能导入",
            f"请把「{header}」列设为“文本”格式，从国家系统重新导出或按原始编号重新录入后再导入",
            fatal=True,
        )
    return text


def parse_id_cell(value: Any) -> str:
    """Return a checked 18-character ID number; raise a fatal CellProblem otherwise."""
    fix = "请把「证件号码」列设为“文本”格式，按身份证原件重新录入完整的 18 位号码（或从国家系统重新导出）后再导入"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        raise CellProblem(
            f"证件号码被 Excel 存成了数字（{_number_text(value)}），Excel 只保留 15 位有效数字，后几位可能已丢失，不能导入",
            fix, fatal=True)
    text = _as_text(value).replace(" ", "").replace("\u3000", "")
    if _SCIENTIFIC.match(text):
        raise CellProblem(
            f"证件号码是科学计数法「{text}」，说明 Excel 把它当成了数字，后几位已丢失，不能导入", fix, fatal=True)
    try:
        return parse_id(text).number
    except IdNumberError as exc:
        hint = exc.hint
        if exc.code == "check" and text[:17].isdigit() and text.endswith("00"):
            hint = "号码末尾是 0，可能曾被 Excel 当作数字截断；" + fix
        raise CellProblem(exc.message + "，不能导入", hint, fatal=True) from None


def parse_bool(value: Any, header: str) -> bool:
    """Return True/False for 是/否, √/×, Y/N, 1/0 and the like."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    text = _as_text(value).lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise CellProblem(f"「{header}」的值「{_as_text(value)}」不是“是/否”，未导入该项", "请填写“是”或“否”")


def parse_int(value: Any, header: str) -> int:
    """Return a whole number from a number cell or text such as 「8」「8个月」「4人」."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if float(value).is_integer():
            return int(value)
    else:
        text = re.sub(r"(个月|月|人|口|年)$", "", _as_text(value))
        if re.fullmatch(r"[0-9]+(\.0+)?", text):
            return int(float(text))
    raise CellProblem(f"「{header}」的值「{_as_text(value)}」不是整数，未导入该项", "请填写整数，例如 8")


_DAY_PATTERNS = (
    (re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$"), "YYYY-MM-DD"),
    (re.compile(r"^(\d{4})[/.](\d{1,2})[/.](\d{1,2})$"), "YYYY/M/D"),
    (re.compile(r"^(\d{4})年(\d{1,2})月(\d{1,2})日?$"), "YYYY年M月D日"),
    (re.compile(r"^(\d{4})(\d{2})(\d{2})$"), "YYYYMMDD"),
)
_MONTH_PATTERNS = (
    (re.compile(r"^(\d{4})-(\d{1,2})$"), "YYYY-MM"),
    (re.compile(r"^(\d{4})[/.](\d{1,2})$"), "YYYY/M"),
    (re.compile(r"^(\d{4})年(\d{1,2})月?$"), "YYYY年M月"),
    (re.compile(r"^(\d{4})(\d{2})$"), "YYYYMM"),
)


def parse_date(value: Any, header: str) -> tuple[dt.date | str, str]:
    """Return ``(date or "YYYY-MM", format name)`` for every date spelling the exports use."""
    bad = CellProblem(
        f"「{header}」的值「{_as_text(value)}」不是有效日期，未导入该项",
        "请写成 2019-03-05 或 2019年3月5日 这样的日期",
    )
    if isinstance(value, dt.datetime):
        return value.date(), "日期单元格"
    if isinstance(value, dt.date):
        return value, "日期单元格"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        whole = float(value).is_integer()
        if whole and (10_000_000 <= value <= 99_999_999 or 100_000 <= value <= 999_999):
            value = str(int(value))  # 20190305 or 201903 typed as a number
        elif 1 <= value < 80_000:
            return _EXCEL_EPOCH + dt.timedelta(days=int(value)), "Excel 日期序号"
        else:
            raise bad
    text = re.sub(r"[ T]0?0:00(:00)?(\.0+)?$", "", _as_text(value))
    try:
        for pattern, name in _DAY_PATTERNS:
            match = pattern.match(text)
            if match:
                return dt.date(*(int(part) for part in match.groups())), name
        for pattern, name in _MONTH_PATTERNS:
            match = pattern.match(text)
            if match:
                year, month = (int(part) for part in match.groups())
                if 1900 <= year <= 2100 and 1 <= month <= 12:
                    return f"{year:04d}-{month:02d}", name
                raise bad
        if re.fullmatch(r"[0-9]{5}(\.[0-9]+)?", text):
            return _EXCEL_EPOCH + dt.timedelta(days=int(float(text))), "Excel 日期序号"
    except ValueError:
        raise bad from None
    raise bad
