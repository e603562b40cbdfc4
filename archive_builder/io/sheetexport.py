"""Export: a data directory back to the national system's one-row-per-person spreadsheet.

Every code column is stored as text so Excel cannot mangle it, and no cell starts like a
formula (a record is data a clerk typed, never something a spreadsheet should run).
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from ..archive.outdir import atomic_write
from ..errors import DataDirError, OutputError, os_reason
from ..records.layout import record_file, subfolders
from ..records.models import IncomeYear
from .sheetcolumns import COLUMNS, SECTION6, Column
from .sheetrecords import _load_record, _village_name, _why

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef,import-not-found,unused-ignore]

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
