"""Import from and export to the national system's one-row-per-person spreadsheets.

``import_sheet`` reads .xlsx (openpyxl), .xls (python-calamine, optional) and .csv (UTF-8 with
or without BOM, or GB18030), maps the headers of record-format §6 (and common variants) to the
record format, normalises values with a reason for every change, groups rows into households
by 户编号 and into villages by 行政村, and writes ``<村名>/<户编号>/household.yaml``.
A household with a value that cannot be imported safely (an ID number Excel turned into a
number, a missing 户主 …) is skipped as a whole and reported: a record with a member missing
is worse than no record. ``export_sheet`` writes the same shape back out, with every code
column stored as text so Excel cannot mangle it.

Rules of thumb: the input file is opened read-only; nothing in the data directory is
overwritten without ``force``; every write is atomic; problems are collected, never raised one
by one. Only an unusable input (unreadable file, no header row, a required column missing)
raises ``SheetError``.

Why one module of this size: the column table, cell parsing, import planning and export all
follow the national system's one table of columns; they change together when it does.
"""

from __future__ import annotations

import copy
import csv
import datetime as dt
import difflib
import io
import json
import logging
import re
import tomllib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..archive.outdir import atomic_write, safe_file_name
from ..errors import (
    ArchiveError,
    DataDirError,
    ExitCode,
    ExternalToolError,
    OutputError,
    os_reason,
)
from ..problems import Problem, Severity, count
from ..records import vocab
from ..records.idnumber import IdNumberError, parse_id
from ..records.layout import household_id_in, record_file, subfolders
from ..records.loader import load_yaml
from ..records.models import Causes, Household, IncomeYear, Living, Member, Monitor

logger = logging.getLogger(__name__)

__all__ = ["ImportReport", "SheetError", "export_sheet", "import_sheet", "read_rows"]

DEFAULT_INCOME_THRESHOLD = 8050.0


class SheetError(ArchiveError):
    """The spreadsheet cannot be imported at all (unreadable, no header row, column missing)."""

    exit_code = ExitCode.input_unusable
    kind = "表格无法导入"


# --- the column table --------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """One known column: its §6 header, where it goes and how its cells are read."""

    header: str
    key: str  # dotted target in the record, or a pseudo key (county, village, size …)
    level: str  # archive | village | household | member | unmapped
    kind: str  # text | code | id | int | bool | date | month | label | labels | insured_major
    vocab: str | None = None
    aliases: tuple[str, ...] = ()
    reason: str = ""  # unmapped columns: why they are not imported


def _c(header: str, key: str, level: str, kind: str = "text", vocab: str | None = None,
       *aliases: str, reason: str = "") -> Column:
    return Column(header, key, level, kind, vocab, aliases, reason)


#: §6 columns first (in §6 order, which is also the export order), then accepted extras
COLUMNS: tuple[Column, ...] = (
    _c("县(市、区、旗)", "county", "archive", "text", None, "县", "县区", "县市区", "县(市、区)",
       "县(市)", "县(区)", "县(市区)", "县(市、区、旗、团场)", "区县"),
    _c("乡(镇)", "township", "archive", "text", None, "乡镇", "乡", "镇", "乡(镇、街道)",
       "乡镇(街道)", "乡(镇、街道、办事处)"),
    _c("行政村", "village", "village", "text", None, "村", "村名", "行政村名称", "所在村",
       "村(社区)", "行政村(社区)"),
    _c("自然村", "group", "household", "text", None, "村民组", "组", "自然村(组)", "村民小组"),
    _c("户编号", "household_id", "household", "code", None, "户码", "户编码", "户代码", "户号"),
    _c("人编号", "person_no", "unmapped", "text", None, "人码", "人员编号", "成员编号",
       reason="记录格式没有对应字段"),
    _c("姓名", "name", "member", "text", None, "成员姓名", "家庭成员姓名", "人员姓名"),
    _c("证件号码", "id_number", "member", "id", None, "身份证号码", "身份证号", "公民身份号码",
       "证件号", "身份证件号码", "公民身份证号码", "身份证件号"),
    _c("人数", "size", "household", "int", None, "家庭人口数", "家庭人数", "户人数", "人口数",
       "家庭人口", "户人口数"),
    _c("与户主关系", "relation", "member", "label", "relation", "与户主的关系", "家庭关系", "关系"),
    _c("民族", "ethnicity", "member", "label", "ethnicity"),
    _c("文化程度", "education", "member", "label", "education", "学历"),
    _c("在校生状况", "student_status", "member", "label", "student_status", "在校生情况",
       "在校情况", "在校状况"),
    _c("健康状况", "health", "member", "labels", "health", "健康情况"),
    _c("劳动技能", "labour", "member", "label", "labour", "劳动能力"),
    _c("务工时间（月）", "work_months", "member", "int", None, "务工时间", "务工月数",
       "务工时长(月)", "务工时间(个月)"),
    _c("是否参加大病保险", "insured_major", "member", "insured_major", None, "参加大病保险",
       "大病保险", "是否参加大病医疗保险"),
    _c("致贫原因1", "causes.main", "household", "label", "cause", "致贫原因", "主要致贫原因",
       "致贫原因(1)", "主要致贫原因1"),
    _c("危房户", "living.dangerous_house", "household", "label", "dangerous_house", "是否危房户",
       "危房等级", "危房"),
    _c("是否解决安全饮用水", "living.safe_drinking_water", "household", "bool", None,
       "安全饮用水", "饮水安全", "是否饮水安全", "是否解决饮水安全"),
    _c("人均纯收入", "per_capita", "unmapped", "text", None, "人均纯收入(元)", "家庭人均纯收入",
       reason="人均纯收入由收入台账计算，不保存"),
    _c("户联系电话", "phone", "household", "code", None, "联系电话", "户主联系电话",
       "家庭联系电话", "户主电话"),
    _c("人联系电话", "person_phone", "unmapped", "text", None, "成员联系电话", "个人联系电话",
       reason="记录格式的家庭成员没有联系电话字段"),
    _c("首次识别时间", "identified_on", "household", "month", None, "识别时间", "识别年月",
       "首次识别年月", "纳入时间"),
    _c("人员识别时间", "person_identified_on", "unmapped", "text", None, "成员识别时间",
       reason="记录格式的家庭成员没有识别时间字段"),
    _c("户类型", "household_type", "household", "label", "household_type", "户属性类型", "农户类型"),
    _c("易返贫致贫户(监测对象)类型", "monitor.category", "household", "label", "monitor_category",
       "监测对象类型", "监测类型", "易返贫致贫户类型", "监测对象类别", "监测户类型",
       "防止返贫监测对象类型"),
    _c("风险是否消除", "monitor.eliminated", "household", "bool", None, "是否消除风险",
       "风险消除", "是否风险消除"),
    _c("风险识别时间", "monitor.identified_on", "household", "month", None, "监测识别时间",
       "纳入监测时间"),
    _c("风险消除时间", "monitor.eliminated_on", "household", "date", None, "消除风险时间"),
    # --- not in §6, but common in exports and present in the record format
    _c("贫困户属性", "poverty_attribute", "household", "label", "poverty_attribute", "贫困属性"),
    _c("脱贫状态", "poverty_status", "household", "label", "poverty_status", "贫困户状态",
       "脱贫属性"),
    _c("脱贫年度", "exit_year", "household", "int", None, "脱贫年份", "计划脱贫年度"),
    _c("家庭住址", "address", "household", "text", None, "住址", "家庭地址"),
    _c("其他致贫原因", "causes.others", "household", "labels", "cause", "次要致贫原因"),
    _c("风险类型", "monitor.risks", "household", "labels", "monitor_risk", "致贫返贫风险",
       "返贫致贫风险", "风险类别"),
    _c("风险消除方式", "monitor.eliminate_method", "household", "label", "eliminate_method",
       "消除方式"),
    _c("性别", "sex", "member", "text", None),
    _c("出生日期", "birth_date", "member", "date", None, "出生年月日"),
    _c("务工地点", "work_place", "member", "text", None, "务工所在地", "务工地"),
    _c("是否低保", "dibao", "member", "bool", None, "低保", "是否享受低保"),
    _c("是否特困供养", "tekun", "member", "bool", None, "特困供养", "是否特困", "特困"),
)
SECTION6 = COLUMNS[:30]
REQUIRED = ("户编号", "姓名", "证件号码", "与户主关系", "行政村")
BY_KEY = {column.key: column for column in COLUMNS}

_FOLD = str.maketrans({"（": "(", "）": ")", "，": "、", ",": "、", "\u3000": "", " ": "",
                       "\t": "", "\n": "", "\r": "", "：": "", ":": ""})


def _fold_header(text: str) -> str:
    return text.translate(_FOLD).strip().strip("*＊")


_ALIASES: dict[str, Column] = {}
for _column in COLUMNS:
    for _name in (_column.header, *_column.aliases):
        _ALIASES.setdefault(_fold_header(_name), _column)


def match_header(text: str) -> Column | None:
    """Return the known column a header cell names (variants and bracket widths folded)."""
    return _ALIASES.get(_fold_header(text))


def _suggest(text: str) -> Column | None:
    folded = _fold_header(text)
    if not folded:
        return None
    found = difflib.get_close_matches(folded, list(_ALIASES), n=1, cutoff=0.6)
    return _ALIASES[found[0]] if found else None


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


# --- the report ----------------------------------------------------------------------------


@dataclass
class ImportReport:
    """What an import did (or, in a dry run, would do)."""

    source: Path
    data_dir: Path
    dry_run: bool = False
    force: bool = False
    sheets: list[str] = field(default_factory=list)
    rows_read: int = 0
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    #: headers nobody knows (ignored)
    unknown_columns: list[str] = field(default_factory=list)
    #: known headers with no place in the record format: header → reason
    unmapped_columns: dict[str, str] = field(default_factory=dict)
    #: files written (or that would be written), relative to data_dir
    written: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: (header, change) → rows where the value was normalised
    normalised: dict[tuple[str, str], list[str]] = field(default_factory=dict)

    @property
    def errors(self) -> int:
        return count(self.problems)[0]

    @property
    def exit_code(self) -> ExitCode:
        """Return ok when everything was imported, problems when something was left out."""
        if self.errors or self.skipped:
            return ExitCode.problems
        return ExitCode.ok

    def format_text(self) -> str:
        """Return the Chinese report shown after an import."""
        will = "将" if self.dry_run else ""
        lines = [f"导入 {self.source.name} → {self.data_dir}" + ("（试运行，未写入任何文件）" if self.dry_run else "")]
        lines.append(f"读取工作表 {'、'.join(f'「{s}」' for s in self.sheets)}，共 {self.rows_read} 行人员数据。")
        lines.append(
            f"{will}新建 {len(self.created)} 户，{will}更新 {len(self.updated)} 户，"
            f"未变 {len(self.unchanged)} 户，跳过 {len(self.skipped)} 户。"
        )
        if self.skipped:
            lines.append("跳过的户：" + "、".join(self.skipped))
        lines.extend(self.notes)
        if self.unknown_columns:
            lines.append("未识别的列（已忽略）：" + "、".join(f"「{c}」" for c in self.unknown_columns))
        if self.unmapped_columns:
            lines.append("未导入的列：" + "；".join(f"「{h}」（{r}）" for h, r in self.unmapped_columns.items()))
        if self.normalised:
            lines.append("已规范化的值：")
            for (header, change), rows in self.normalised.items():
                shown = "、".join(rows[:5]) + (" 等" if len(rows) > 5 else "")
                lines.append(f"  「{header}」{change}：{len(rows)} 处（{shown}）")
        errors, warnings = count(self.problems)
        if self.problems:
            lines.append(f"问题：{errors} 个错误，{warnings} 个警告")
            for problem in self.problems:
                lines.append(f"{problem.severity.label}：{problem.message}")
                if problem.hint:
                    lines.append(f"    提示：{problem.hint}")
        else:
            lines.append("没有发现问题。")
        return "\n".join(lines)


# --- grouping rows into households ------------------------------------------------------------


@dataclass
class _Row:
    sheet: str
    number: int  # spreadsheet row number, 1-based
    values: dict[str, Any]  # column key → parsed value (blank cells absent)
    headers: dict[str, str]  # column key → header as written in the sheet
    positions: dict[str, int]  # column key → 1-based column index

    def where(self) -> str:
        return f"工作表「{self.sheet}」第 {self.number} 行"


@dataclass
class _Household:
    household_id: str
    rows: list[_Row] = field(default_factory=list)
    fatal: bool = False
    fields: dict[str, tuple[Any, _Row]] = field(default_factory=dict)


class _Importer:
    def __init__(self, report: ImportReport) -> None:
        self.report = report
        self.households: dict[str, _Household] = {}
        self.archive_values: dict[str, Counter[str]] = {"county": Counter(), "township": Counter()}
        self.seen_ids: dict[str, _Row] = {}

    # problems
    def problem(self, severity: Severity, row: _Row | None, key: str | None, message: str,
                hint: str | None, *, sheet: str | None = None, household_id: str | None = None,
                village: str | None = None) -> None:
        header = row.headers.get(key) if row and key else (BY_KEY[key].header if key in BY_KEY else key)
        where = row.where() if row else f"工作表「{sheet}」"
        if header:
            where += f"「{header}」"
        self.report.problems.append(Problem(
            severity, f"{where}：{message}", hint, file=self.report.source.name,
            line=row.number if row else None,
            column=row.positions.get(key) if row and key else None,
            village=village, household_id=household_id, field=header,
        ))

    def normalised(self, row: _Row, key: str, change: str) -> None:
        header = row.headers[key]
        self.report.normalised.setdefault((header, change), []).append(f"「{row.sheet}」第 {row.number} 行")

    # headers
    def find_header(self, sheet: SheetRows) -> tuple[int, dict[int, Column]] | None:
        best: tuple[int, int] | None = None
        for index, cells in enumerate(sheet.rows[:15]):
            hits = sum(1 for cell in cells if isinstance(cell, str) and match_header(cell))
            if hits >= 3 and (best is None or hits > best[1]):
                best = (index, hits)
        if best is None:
            return None
        index = best[0]
        mapping: dict[int, Column] = {}
        used: dict[str, str] = {}
        present = {c.key for c in map(match_header, map(str, sheet.rows[index])) if c is not None}
        for col, cell in enumerate(sheet.rows[index]):
            if _blank(cell):
                continue
            text = str(cell).strip()
            column = match_header(text)
            if column is None:
                self.unknown_header(sheet, index + 1, text, present)
                continue
            if column.key in used:
                self.problem(Severity.warning, None, None,
                             f"第 {index + 1} 行第 {col + 1} 列「{text}」与「{used[column.key]}」是同一项，只读取前一列",
                             "请删除重复的列", sheet=sheet.name)
                continue
            used[column.key] = text
            mapping[col] = column
            if column.level == "unmapped":
                self.report.unmapped_columns.setdefault(text, column.reason)
        missing = [name for name in REQUIRED if _ALIASES[_fold_header(name)].key not in used]
        if missing:
            unknown = [str(c).strip() for c in sheet.rows[index] if isinstance(c, str) and not match_header(c)]
            parts = []
            for name in missing:
                guess = next((text for text in unknown if getattr(_suggest(text), "header", None) == name), None)
                parts.append(f"「{name}」" + (f"（第 {index + 1} 行的「{guess}」是否就是它？）" if guess else ""))
            raise SheetError(
                f"工作表「{sheet.name}」第 {index + 1} 行的表头缺少必需的列：{'、'.join(parts)}",
                hint="请按国家系统导出的表头改正列名（可写全角或半角括号）后重新导入",
            )
        return index, mapping

    def unknown_header(self, sheet: SheetRows, line: int, text: str, used: set[str]) -> None:
        self.report.unknown_columns.append(text)
        guess = _suggest(text)
        if guess is not None and guess.key not in used and guess.level != "unmapped":
            self.report.problems.append(Problem(
                Severity.warning,
                f"工作表「{sheet.name}」第 {line} 行表头「{text}」不认识，该列未导入；是否应为「{guess.header}」？",
                f"如果是，请把表头改成「{guess.header}」后重新导入",
                file=self.report.source.name, line=line, field=text,
            ))

    # rows
    def read_sheet(self, sheet: SheetRows, start: int, mapping: dict[int, Column]) -> None:
        headers = {column.key: str(sheet.rows[start][col]).strip() for col, column in mapping.items()}
        positions = {column.key: col + 1 for col, column in mapping.items()}
        for index in range(start + 1, len(sheet.rows)):
            cells = sheet.rows[index]
            raw = {column.key: cells[col] for col, column in mapping.items()
                   if col < len(cells) and not _blank(cells[col])}
            if not raw:
                continue
            row = _Row(sheet.name, index + 1, {}, headers, positions)
            if "household_id" not in raw:
                if any(key in raw for key in ("name", "id_number")):
                    self.problem(Severity.error, row, "household_id", "没有户编号，该行未导入",
                                 "请补上该人所在户的户编号")
                continue  # a footer line (合计, 制表人 …), not a person
            self.report.rows_read += 1
            try:
                hid = parse_code(raw["household_id"], headers["household_id"])
            except CellProblem as exc:
                self.problem(Severity.error, row, "household_id", exc.message, exc.hint)
                continue
            if not re.fullmatch(r"[0-9A-Za-z_-]+", hid):
                self.problem(Severity.error, row, "household_id",
                             f"户编号「{hid}」含有数字和字母以外的字符，该行未导入", "请核对户编号")
                continue
            household = self.households.setdefault(hid, _Household(hid))
            household.rows.append(row)
            for key, value in raw.items():
                self.read_cell(household, row, key, value)

    def read_cell(self, household: _Household, row: _Row, key: str, value: Any) -> None:
        column = BY_KEY[key]
        if column.level == "unmapped" or key == "household_id":
            return
        try:
            parsed = self.parse(row, column, value)
        except CellProblem as exc:
            suffix = f"；该户（户编号 {household.household_id}）本次未导入" if exc.fatal else ""
            self.problem(Severity.error if exc.fatal else Severity.warning, row, key,
                         exc.message + suffix, exc.hint, household_id=household.household_id)
            household.fatal |= exc.fatal
            return
        if parsed is None:
            return
        row.values[key] = parsed
        if column.level in ("household", "village", "archive"):
            self.household_field(household, row, key, parsed)
        if key == "id_number":
            first = self.seen_ids.get(parsed)
            if first is not None:
                household.fatal = True
                self.problem(Severity.error, row, key,
                             f"证件号码 {parsed} 与{first.where()}重复；该户（户编号 {household.household_id}）本次未导入",
                             "同一个人只能出现在一户中，请删除重复行或核对证件号码",
                             household_id=household.household_id)
            else:
                self.seen_ids[parsed] = row

    def household_field(self, household: _Household, row: _Row, key: str, value: Any) -> None:
        if key in self.archive_values:
            self.archive_values[key][value] += 1
        if key not in household.fields:
            household.fields[key] = (value, row)
            return
        first, first_row = household.fields[key]
        if first != value:
            self.problem(
                Severity.warning, row, key,
                f"户编号 {household.household_id} 的「{row.headers[key]}」与同户{first_row.where()}不一致"
                f"（「{_show(value)}」≠「{_show(first)}」），已采用第 {first_row.number} 行的值",
                "同一户的户级信息在每一行都应相同，请核对后统一",
                household_id=household.household_id,
            )

    def parse(self, row: _Row, column: Column, value: Any) -> Any:
        kind, header = column.kind, row.headers[column.key]
        if kind == "id":
            result = parse_id_cell(value)
            if result != _as_text(value):
                self.normalised(row, column.key, "去掉空格、末位 x 改为大写")
            return result
        if kind == "code":
            return parse_code(value, header) or None
        if kind == "text":
            return _as_text(value) or None
        if kind == "int":
            return parse_int(value, header)
        if kind in ("bool", "insured_major"):
            flag = parse_bool(value, header)
            if not isinstance(value, bool) and _as_text(value) not in ("是", "否"):
                self.normalised(row, column.key, f"「{_as_text(value)}」视为「{'是' if flag else '否'}」")
            return flag
        if kind in ("date", "month"):
            day, fmt = parse_date(value, header)
            if isinstance(day, str) and kind == "date":
                raise CellProblem(f"「{header}」只写到月份（{day}），需要具体日期，未导入该项",
                                  "请写成 2019-03-05 这样的完整日期")
            if fmt not in ("YYYY-MM-DD", "YYYY-MM", "日期单元格"):
                self.normalised(row, column.key, f"{fmt} 格式转为 YYYY-MM-DD")
            return day
        if kind == "label":
            return self.label(row, column, _as_text(value))
        if kind == "labels":
            parts = [part for part in _LIST_SPLIT.split(_as_text(value)) if part.strip()]
            return [self.label(row, column, part) for part in parts] or None
        raise AssertionError(kind)

    def label(self, row: _Row, column: Column, text: str) -> str:
        assert column.vocab is not None
        words = vocab.get(column.vocab)
        result = words.normalize(text)
        if result != text.strip():
            self.normalised(row, column.key, f"「{text}」→「{result}」")
        if result not in words.labels:
            self.problem(
                Severity.warning, row, column.key,
                f"「{result}」不在「{words.title}」词表中，已按原样导入",
                f"可用的值：{'、'.join(words.labels[:12])}{' 等' if len(words.labels) > 12 else ''}；"
                f"如确为新的类别，请把它加入词表",
            )
        return result


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, list):
        return "、".join(map(str, value))
    return str(value)


# --- building records ----------------------------------------------------------------------

HOUSEHOLD_KEYS = tuple(Household.model_fields)
ORDER = {
    "": HOUSEHOLD_KEYS,
    "monitor": tuple(Monitor.model_fields),
    "causes": tuple(Causes.model_fields),
    "living": tuple(Living.model_fields),
    "member": tuple(Member.model_fields),
}
MEMBER_FIELDS = ("name", "id_number", "relation", "sex", "birth_date", "ethnicity", "education",
                 "student_status", "health", "labour", "work_place", "work_months", "dibao", "tekun")


def _ordered(data: dict[str, Any], order: tuple[str, ...]) -> dict[str, Any]:
    known = {key: data[key] for key in order if key in data}
    known.update({key: value for key, value in data.items() if key not in known})
    return known


def sheet_record(household: _Household) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, bool]]:
    """Return (household-level fields, members, 大病保险 per ID) carried by the sheet's rows."""
    top: dict[str, Any] = {"household_id": household.household_id}
    for key, (value, _row) in household.fields.items():
        column = BY_KEY[key]
        if column.level != "household" or key == "size":
            continue
        if "." in key:
            parent, child = key.split(".", 1)
            top.setdefault(parent, {})[child] = value
        else:
            top[key] = value
    members: list[dict[str, Any]] = []
    major: dict[str, bool] = {}
    for row in household.rows:
        member = {key: row.values[key] for key in MEMBER_FIELDS if key in row.values}
        if "insured_major" in row.values and "id_number" in member:
            major[member["id_number"]] = row.values["insured_major"]
        members.append(member)
    return top, members, major


def merge_record(existing: dict[str, Any] | None, household: _Household) -> dict[str, Any]:
    """Return the record the sheet gives, laid over ``existing``: sheet fields replace, others kept.

    A blank cell carries nothing, so it keeps the existing value. Members are matched by ID
    number; members missing from the sheet are dropped (the sheet lists the whole family).
    """
    top, members, major = sheet_record(household)
    record = copy.deepcopy(existing) if existing else {}
    for key, value in top.items():
        if isinstance(value, dict):
            merged = dict(record.get(key) or {})
            merged.update(value)
            record[key] = _ordered(merged, ORDER[key])
        else:
            record[key] = value
    old = {str(m.get("id_number")): m for m in (record.get("members") or []) if isinstance(m, dict)}
    new_members = []
    for member in members:
        merged = dict(old.get(member.get("id_number", ""), {}))
        merged.update(member)
        if member.get("id_number") in major:
            insured = [item for item in (merged.get("insured") or []) if item != "大病保险"]
            if major[member["id_number"]]:
                # keep the usual order 居民医保, 大病保险, 居民养老
                position = 1 if insured[:1] in (["居民医保"], ["职工医保"]) else len(insured)
                insured.insert(position, "大病保险")
            if insured:
                merged["insured"] = insured
            else:
                merged.pop("insured", None)
        new_members.append(_ordered(merged, ORDER["member"]))
    record["members"] = new_members
    return _ordered(record, HOUSEHOLD_KEYS)


def check_record(record: dict[str, Any]) -> list[tuple[str, str]]:
    """Return (message, hint) for what would make the record unusable (missing required fields)."""
    found = []
    if not record.get("household_type"):
        found.append(("没有「户类型」", "请在该户各行填写户类型，例如 脱贫户、一般农户、防止返贫致贫对象"))
    if not (record.get("causes") or {}).get("main"):
        found.append(("没有「致贫原因1」", "请在该户各行填写主要致贫原因，例如 因病、因残、缺劳动力"))
    monitor = record.get("monitor")
    if monitor and not monitor.get("category"):
        found.append(("有风险信息但没有「易返贫致贫户(监测对象)类型」",
                      "请填写监测对象类型，例如 脱贫不稳定户、边缘易致贫户、突发严重困难户"))
    heads = [m for m in record.get("members", []) if m.get("relation") == "户主"]
    if len(heads) != 1:
        found.append((f"户主有 {len(heads)} 人，应恰好 1 人", "请核对各成员的「与户主关系」，每户只能有一位户主"))
    for member in record.get("members", []):
        for key, label in (("name", "姓名"), ("id_number", "证件号码"), ("relation", "与户主关系")):
            if not member.get(key):
                found.append((f"有成员没有「{label}」", f"请为每位成员填写{label}"))
    return found


# --- the data directory ------------------------------------------------------------------

def _why(exc: BaseException) -> str:
    """A file that could not be read: the system's reason, or that its content is malformed."""
    return os_reason(exc) if isinstance(exc, OSError) else "文件格式有误"


def _folder_name(name: str) -> str:
    return safe_file_name(name)


@dataclass
class _Existing:
    villages: dict[str, Path] = field(default_factory=dict)  # village name → folder
    households: dict[str, Path] = field(default_factory=dict)  # household_id → record file


def scan_data_dir(data_dir: Path) -> _Existing:
    """Return the villages (by name) and household records (by 户编号) already in ``data_dir``."""
    found = _Existing()
    if not data_dir.is_dir():
        return found
    for folder in subfolders(data_dir):
        try:
            name = _village_name(folder)
        except (OSError, ValueError):
            name = folder.name
        found.villages.setdefault(name, folder)
        found.villages.setdefault(folder.name, folder)
        for sub in subfolders(folder):
            path = record_file(sub)
            if path is not None:
                found.households.setdefault(_household_id_of(path) or sub.name, path)
    return found


def _village_name(folder: Path) -> str:
    """The village's name from its ``village.toml``, else the folder's name."""
    toml_path = folder / "village.toml"
    if toml_path.is_file():
        return str(tomllib.loads(toml_path.read_text("utf-8-sig")).get("name") or folder.name)
    return folder.name


def _household_id_of(path: Path) -> str | None:
    try:
        return household_id_in(path.read_text("utf-8-sig"))
    except (OSError, UnicodeDecodeError):
        return None


def _load_record(path: Path) -> dict[str, Any]:
    text = path.read_text("utf-8-sig")
    data = json.loads(text) if path.suffix == ".json" else load_yaml(text)
    if not isinstance(data, dict):
        raise ValueError("not a mapping")  # noqa: TRY004 - reported like a syntax error
    return data


def dump_record(record: dict[str, Any], suffix: str = ".yaml") -> str:
    """Return the record as the text of household.yaml (or .json), keys in record order."""
    if suffix == ".json":
        return json.dumps(record, ensure_ascii=False, indent=2, default=str) + "\n"
    # libyaml writes ~5x faster, but escapes characters beyond the BMP (周𠮷祥 would read
    # "周\U00020BB7祥" in the file a secretary edits): those records go through PyYAML's emitter
    dumper = yaml.SafeDumper if _FAST_DUMPER is None or _beyond_bmp(record) else _FAST_DUMPER
    return yaml.dump(record, Dumper=dumper, allow_unicode=True, sort_keys=False, default_flow_style=False,
                     width=1000)


_FAST_DUMPER: Any = getattr(yaml, "CSafeDumper", None)


def _beyond_bmp(value: Any) -> bool:
    if isinstance(value, str):
        return not all(ord(ch) <= 0xFFFF for ch in value)
    if isinstance(value, dict):
        return any(_beyond_bmp(k) or _beyond_bmp(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_beyond_bmp(v) for v in value)
    return False


def _toml_text(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def archive_toml(county: str, township: str, year: int) -> str:
    """Return a new archive.toml with the defaults of record-format §2."""
    return (
        "# 由 archive-builder import 根据表格生成，请核对。\n"
        "[archive]\n"
        f"county = {_toml_text(county)}\n"
        f"township = {_toml_text(township)}\n"
        f"year = {year}\n"
        'fonds_no = ""\n'
        'retention = "永久"\n'
        f"income_threshold = {DEFAULT_INCOME_THRESHOLD}  # 默认值，请按本省当年监测收入标准修改\n"
        "\n[print]\npaper = \"A4\"\nduplex = true\nsheets_per_box = 200\n"
        "\n[templates]\nset = \"default\"\n"
    )


def village_toml(code: str, name: str, groups: list[str]) -> str:
    """Return a new village.toml."""
    group_text = ", ".join(_toml_text(g) for g in groups)
    comment = "  # 由户编号前 12 位推得，请核对" if code else "  # 请填写 12 位统计用区划代码"
    return (
        "# 由 archive-builder import 根据表格生成，请核对。\n"
        f"code = {_toml_text(code)}{comment}\n"
        f"name = {_toml_text(name)}\n"
        f"groups = [{group_text}]\n"
    )


# --- import ------------------------------------------------------------------------------------


def import_sheet(file: Path, data_dir: Path, *, force: bool = False, dry_run: bool = False,
                 today: dt.date | None = None) -> ImportReport:
    """Import a national-system spreadsheet into ``data_dir``; return what was (or would be) done.

    Raises SheetError (exit 2) when the file cannot be read or lacks a required column,
    ExternalToolError (exit 5) for .xls without python-calamine and OutputError (exit 4) when
    the data directory cannot be written.
    """
    file, data_dir = Path(file), Path(data_dir)
    today = today or dt.date.today()
    report = ImportReport(source=file, data_dir=data_dir, dry_run=dry_run, force=force)
    importer = _Importer(report)
    skipped_sheets: list[str] = []
    for sheet in read_rows(file):
        found = importer.find_header(sheet)
        if found is None:
            if any(not _blank(c) for r in sheet.rows for c in r):
                skipped_sheets.append(sheet.name)
            continue
        report.sheets.append(sheet.name)
        importer.read_sheet(sheet, *found)
    if not report.sheets:
        raise SheetError(
            f"{file.name} 中没有找到表头（应有「户编号」「姓名」「证件号码」「与户主关系」「行政村」等列）",
            hint="请确认文件是国家系统导出的人员信息表，表头在前 15 行内",
        )
    for name in skipped_sheets:
        report.notes.append(f"工作表「{name}」没有可识别的表头，已跳过。")
    existing = scan_data_dir(data_dir)
    plan = _Plan(report, importer, existing, data_dir, today, force)
    plan.run()
    report.written = sorted(str(p.relative_to(data_dir)) for p in plan.files)
    if not dry_run:
        plan.write()
    return report


class _Plan:
    """Decide what to write for each household, village and the archive, then write it."""

    def __init__(self, report: ImportReport, importer: _Importer, existing: _Existing,
                 data_dir: Path, today: dt.date, force: bool) -> None:
        self.report, self.importer, self.existing = report, importer, existing
        self.data_dir, self.today, self.force = data_dir, today, force
        self.files: dict[Path, str] = {}
        self.village_ids: dict[str, list[str]] = {}
        self.village_groups: dict[str, list[str]] = {}

    def run(self) -> None:
        for household in self.importer.households.values():
            self.household(household)
        self.villages()
        self.archive()
        if self.report.updated:
            self.report.notes.append(
                "已用 --force 更新的户：表格中的字段替换原值，表格没有的字段（帮扶措施、收入、走访、佐证材料等）保留原值。")

    def household(self, household: _Household) -> None:
        report, hid = self.report, household.household_id
        first = household.rows[0]
        village_name: str = household.fields.get("village", ("", None))[0]
        if household.fatal:
            report.skipped.append(hid)
            return
        target = self.existing.households.get(hid)
        if target is None and not village_name:
            self.importer.problem(Severity.error, first, "village",
                                  f"户编号 {hid} 没有行政村，无法确定放在哪个村的文件夹；该户本次未导入",
                                  "请在该户各行填写行政村", household_id=hid)
            report.skipped.append(hid)
            return
        old: dict[str, Any] | None = None
        if target is not None:
            try:
                old = _load_record(target)
            except (OSError, ValueError, yaml.YAMLError) as exc:
                self.importer.problem(Severity.error, first, None,
                                      f"户编号 {hid} 已有的 {target.relative_to(self.data_dir)} 无法读取（{_why(exc)}），未覆盖",
                                      "请先修好或删除这个文件后重新导入", household_id=hid)
                report.skipped.append(hid)
                return
        record = merge_record(old, household)
        unusable = check_record(record)
        if unusable:
            for message, hint in unusable:
                self.importer.problem(Severity.error, first, None,
                                      f"户编号 {hid}（从这一行开始）{message}；该户本次未导入", hint,
                                      household_id=hid, village=village_name)
            report.skipped.append(hid)
            return
        self.size_check(household, record)
        if target is None:
            folder = self.village_folder(village_name)
            target = folder / _folder_name(hid) / "household.yaml"
            self.village_ids.setdefault(village_name, []).append(hid)
            self.note_group(village_name, record.get("group"))
        elif village_name and self.existing.villages.get(village_name) != target.parent.parent:
            self.importer.problem(Severity.warning, first, "village",
                                  f"户编号 {hid} 已在文件夹「{target.parent.parent.name}」中，表格中的行政村是「{village_name}」；按原位置处理",
                                  "如该户确已迁到别的村，请手工移动它的文件夹", household_id=hid)
        text = dump_record(record, target.suffix)
        if old is not None:
            same = load_yaml(text) == old if target.suffix != ".json" else json.loads(text) == old
            if same:
                report.unchanged.append(hid)
                return
            if not self.force:
                self.importer.problem(
                    Severity.warning, first, None,
                    f"户编号 {hid} 已有 {target.relative_to(self.data_dir)}，内容与表格不同，未覆盖",
                    "确认要用表格内容更新时加 --force（表格没有的字段，如帮扶措施、收入、佐证材料，会保留）",
                    household_id=hid, village=village_name)
                report.skipped.append(hid)
                return
            report.updated.append(hid)
        else:
            report.created.append(hid)
        self.files[target] = text

    def size_check(self, household: _Household, record: dict[str, Any]) -> None:
        if "size" not in household.fields:
            return
        size, row = household.fields["size"]
        found = len(household.rows)
        if size != found:
            self.importer.problem(
                Severity.warning, row, "size",
                f"户编号 {household.household_id} 的人数是 {size}，但表格中该户有 {found} 行成员；已按 {found} 人导入",
                "请核对是否漏导或多导了成员行，或改正「人数」",
                household_id=household.household_id)

    def village_folder(self, name: str) -> Path:
        folder = self.existing.villages.get(name)
        if folder is None:
            folder = self.data_dir / _folder_name(name)
            self.existing.villages[name] = folder
        return folder

    def note_group(self, village: str, group: Any) -> None:
        groups = self.village_groups.setdefault(village, [])
        if group and group not in groups:
            groups.append(group)

    def villages(self) -> None:
        for name, ids in self.village_ids.items():
            folder = self.existing.villages[name]
            path = folder / "village.toml"
            if path.exists():
                continue
            codes = Counter(hid[:12] for hid in ids if len(hid) >= 12 and hid[:12].isdigit())
            code = codes.most_common(1)[0][0] if codes else ""
            rel = path.relative_to(self.data_dir)
            if code:
                others = sorted(set(codes) - {code})
                self.report.notes.append(f"新建 {rel}：区划代码 {code} 取自户编号前 12 位，请核对。")
                if others:
                    self.report.problems.append(Problem(
                        Severity.warning,
                        f"行政村「{name}」各户的户编号前 12 位不一致（{code}、{'、'.join(others)}），village.toml 中暂用 {code}",
                        "请核对这些户是否属于同一个行政村，并在 village.toml 中填写正确的区划代码",
                        file=str(rel), village=name))
            else:
                self.report.problems.append(Problem(
                    Severity.warning,
                    f"行政村「{name}」的户编号不是 12 位区划代码开头，无法推出村代码；已新建 {rel}，代码暂空",
                    "请在 village.toml 的 code 中填写该村 12 位统计用区划代码", file=str(rel), village=name))
            self.files[path] = village_toml(code, name, self.village_groups.get(name, []))

    def archive(self) -> None:
        path = self.data_dir / "archive.toml"
        if path.exists() or not self.files:
            return
        values = {}
        for key, label in (("county", "县(市、区、旗)"), ("township", "乡(镇)")):
            counter = self.importer.archive_values[key]
            values[key] = counter.most_common(1)[0][0] if counter else ""
            if len(counter) > 1:
                self.report.problems.append(Problem(
                    Severity.warning,
                    f"表格中的「{label}」有多个不同的值（{'、'.join(counter)}），archive.toml 中暂用「{values[key]}」",
                    "一个数据目录只对应一个乡镇；请分开导入或核对后修改 archive.toml", file="archive.toml"))
            elif not counter:
                self.report.problems.append(Problem(
                    Severity.warning, f"表格中没有「{label}」，archive.toml 中暂空",
                    f"请在 archive.toml 中填写 {key}", file="archive.toml"))
        self.files[path] = archive_toml(values["county"], values["township"], self.today.year)
        self.report.notes.append(
            f"新建 archive.toml：归档年度 {self.today.year}，监测收入标准暂用默认值 {DEFAULT_INCOME_THRESHOLD} 元，请按本省当年标准修改。")

    def write(self) -> None:
        try:
            for path, text in self.files.items():
                atomic_write(path, text.encode("utf-8"))
        except OSError as exc:
            raise OutputError(f"无法写入数据目录 {self.data_dir}：{os_reason(exc)}",
                              hint="请检查该文件夹是否存在、是否有写入权限、磁盘是否已满") from exc


# --- export ------------------------------------------------------------------------------------


def _iter_data(data_dir: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield (village name, record) for every household under ``data_dir``, sorted."""
    if not data_dir.is_dir():
        raise DataDirError(f"数据目录 {data_dir} 不存在", hint="请检查路径")
    for folder in subfolders(data_dir):
        try:
            name = _village_name(folder)
        except (OSError, ValueError) as exc:
            raise DataDirError(f"无法读取 {folder / 'village.toml'}：{_why(exc)}",
                               hint="请先运行 validate 修好它") from exc
        records = []
        for sub in subfolders(folder):
            path = record_file(sub)
            if path is None:
                continue
            try:
                records.append(_load_record(path))
            except (OSError, ValueError, yaml.YAMLError) as exc:
                raise DataDirError(f"无法读取 {path.relative_to(data_dir)}：{_why(exc)}",
                                   hint="请先运行 validate 找出并修好它") from exc
        for record in sorted(records, key=lambda r: str(r.get("household_id", ""))):
            yield name, record


def _cell(value: Any, kind: str) -> Any:
    if value is None or value == [] or value == "":
        return None
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()[:10]
    if isinstance(value, list):
        return "、".join(map(str, value))
    if kind in ("int",) and isinstance(value, (int, float)):
        return value
    return str(value)


def _export_value(column: Column, county: str, township: str, village: str,
                  record: dict[str, Any], member: dict[str, Any]) -> Any:
    key = column.key
    if key == "county":
        return county or None
    if key == "township":
        return township or None
    if key == "village":
        return village
    if key == "size":
        return len(record.get("members") or [])
    if key == "per_capita":
        return _per_capita(record)
    if key == "insured_major":
        return "是" if "大病保险" in (member.get("insured") or []) else "否"
    if column.level == "member":
        return _cell(member.get(key), column.kind)
    if column.level == "household":
        if "." in key:
            parent, child = key.split(".", 1)
            return _cell((record.get(parent) or {}).get(child), column.kind)
        return _cell(record.get(key), column.kind)
    return None


def _per_capita(record: dict[str, Any]) -> float | None:
    income = [entry for entry in record.get("income") or [] if isinstance(entry, dict)]
    if not income:
        return None
    try:
        latest = max((IncomeYear.model_validate(e) for e in income), key=lambda e: e.year)
        value = latest.per_capita(len(record.get("members") or []))
    except Exception:  # noqa: BLE001 - a bad income entry is validate's business, not export's
        return None
    return float(value) if value is not None else None


#: first characters that make a spreadsheet read a cell as a formula (OWASP CSV injection)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def _never_formula(cell: Any) -> None:
    """Keep a text value that looks like a formula (``=HYPERLINK(…)``, ``=cmd|…``, ``+1``) text.

    openpyxl writes any string starting with ``=`` as a live formula. The cell is stored as a
    string instead, with Excel's quote prefix (the invisible leading ``'``), so that neither
    opening nor editing the cell evaluates it; the value itself is unchanged, so importing the
    export gives back exactly what was exported (OWASP's advice, without altering the text).
    """
    value = cell.value
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        cell.data_type = "s"
        cell.quotePrefix = True


def export_sheet(data_dir: Path, out: Path) -> int:
    """Write every household of ``data_dir`` to ``out`` (.xlsx), one row per person; return rows.

    Headers are those ``import_sheet`` reads; codes (户编号, 证件号码, phones) are text cells
    so Excel cannot turn them into numbers. Columns beyond §6 appear only when some record
    has a value for them.
    """
    from openpyxl import Workbook  # type: ignore[import-untyped]
    from openpyxl.styles import Font  # type: ignore[import-untyped]

    data_dir, out = Path(data_dir), Path(out)
    if out.suffix.lower() != ".xlsx":
        raise OutputError(f"导出文件必须是 .xlsx：{out.name}", hint="请把输出文件名改成以 .xlsx 结尾")
    county = township = ""
    archive_path = data_dir / "archive.toml"
    if archive_path.is_file():
        try:
            section = tomllib.loads(archive_path.read_text("utf-8-sig")).get("archive") or {}
        except (OSError, ValueError) as exc:
            raise DataDirError(f"无法读取 {archive_path}：{_why(exc)}", hint="请先运行 validate 修好它") from exc
        county, township = str(section.get("county") or ""), str(section.get("township") or "")
    data = list(_iter_data(data_dir))
    columns = list(SECTION6)
    for column in COLUMNS[len(SECTION6):]:
        if any(_export_value(column, county, township, v, r, m) is not None
               for v, r in data for m in r.get("members") or []):
            columns.append(column)
    book = Workbook()
    sheet = book.active
    sheet.title = "人员信息"
    sheet.append([c.header for c in columns])
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    rows = 0
    for village, record in data:
        for member in record.get("members") or []:
            values = [_export_value(c, county, township, village, record, member) for c in columns]
            sheet.append(values)
            rows += 1
            for index, column in enumerate(columns):
                cell = sheet.cell(row=rows + 1, column=index + 1)
                if column.kind not in ("int",) and column.key not in ("per_capita", "size"):
                    cell.number_format = "@"
                _never_formula(cell)
    for index, column in enumerate(columns, start=1):
        letter = sheet.cell(row=1, column=index).column_letter
        sheet.column_dimensions[letter].width = 22 if column.kind in ("id", "code") else max(10, len(column.header) * 2)
    sheet.freeze_panes = "A2"
    buffer = io.BytesIO()
    book.save(buffer)
    try:
        atomic_write(out, buffer.getvalue())
    except OSError as exc:
        raise OutputError(f"无法写入 {out}：{os_reason(exc)}", hint="请检查文件是否正被 Excel/WPS 打开、文件夹是否可写") from exc
    return rows

