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

The parts: ``sheetcolumns`` (the column table), ``sheetread`` (reading files and cells),
``sheetrecords`` (records from rows, the data directory's files), ``sheetexport`` (export);
this module groups rows into households and plans and writes an import.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..archive.outdir import atomic_write
from ..errors import ExitCode, OutputError, os_reason
from ..problems import Problem, Severity, count
from ..records import vocab
from ..records.loader import load_yaml
from .sheetcolumns import _ALIASES, BY_KEY, REQUIRED, Column, _fold_header, _suggest, match_header
from .sheetexport import export_sheet
from .sheetread import (
    _LIST_SPLIT,
    CellProblem,
    SheetError,
    SheetRows,
    _as_text,
    _blank,
    parse_bool,
    parse_code,
    parse_date,
    parse_id_cell,
    parse_int,
    read_rows,
)
from .sheetrecords import (
    DEFAULT_INCOME_THRESHOLD,
    _Existing,
    _folder_name,
    _Household,
    _load_record,
    _Row,
    _why,
    archive_toml,
    check_record,
    dump_record,
    merge_record,
    scan_data_dir,
    update_file,
    village_toml,
)

__all__ = ["ImportReport", "SheetError", "export_sheet", "import_sheet", "read_rows"]





# --- the report ----------------------------------------------------------------------------


@dataclass
class HouseholdChange:
    """An existing household's record as the import found it and as it leaves it (for the journal)."""

    path: Path
    before: dict[str, Any]
    after: dict[str, Any]
    before_sha: str
    after_sha: str


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


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
    #: household_id → the change of an updated household (only those in ``updated``)
    changes: dict[str, HouseholdChange] = field(default_factory=dict)

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


# --- import ------------------------------------------------------------------------------------


def import_sheet(file: Path, data_dir: Path, *, force: bool = False, dry_run: bool = False,
                 today: dt.date | None = None, shown_name: str | None = None) -> ImportReport:
    """Import a national-system spreadsheet into ``data_dir``; return what was (or would be) done.

    ``shown_name`` is the file's name as the user knows it (an upload saved under another
    name): reports and problems name that file.

    Raises SheetError (exit 2) when the file cannot be read or lacks a required column,
    ExternalToolError (exit 5) for .xls without python-calamine and OutputError (exit 4) when
    the data directory cannot be written.
    """
    file, data_dir = Path(file), Path(data_dir)
    today = today or dt.date.today()
    report = ImportReport(source=file.with_name(shown_name) if shown_name else file, data_dir=data_dir,
                          dry_run=dry_run, force=force)
    importer = _Importer(report)
    skipped_sheets: list[str] = []
    for sheet in read_rows(file):
        if shown_name and sheet.name == file.name:  # a .csv's one sheet is named after its file
            sheet.name = shown_name
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
        self.files: dict[Path, str | bytes] = {}
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
        dumped = dump_record(record, target.suffix)
        text: str | bytes = dumped
        if old is not None:
            same = load_yaml(dumped) == old if target.suffix != ".json" else json.loads(dumped) == old
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
            # only the changed values: the file's comments, styles and line endings stay
            try:
                raw = target.read_bytes()
            except OSError:
                raw = b""
            if not self.report.dry_run:  # a dry run only reports (the round trip costs ~50 ms a file)
                text = update_file(target, raw, old, record) or dumped
            after = text if isinstance(text, bytes) else text.encode("utf-8")
            report.changes[hid] = HouseholdChange(target, old, record, _sha256(raw), _sha256(after))
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
                atomic_write(path, text if isinstance(text, bytes) else text.encode("utf-8"))
        except OSError as exc:
            raise OutputError(f"无法写入数据目录 {self.data_dir}：{os_reason(exc)}",
                              hint="请检查该文件夹是否存在、是否有写入权限、磁盘是否已满") from exc
