"""Spreadsheet import/export: national-shape sheets built in code, never committed binaries."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path
from typing import Any

import pytest
import yaml
from openpyxl import Workbook, load_workbook
from synthetic import generate_household, make_id_number

from archive_builder.errors import ExitCode
from archive_builder.io.spreadsheet import (
    SheetError,
    export_sheet,
    import_sheet,
    parse_date,
)
from archive_builder.problems import Severity
from archive_builder.records.loader import load_dataset
from archive_builder.validate import validate_dataset

TODAY = dt.date(2025, 11, 20)

#: §6 headers, as the national system writes them (full-width brackets included)
HEADERS = [
    "县(市、区、旗)", "乡(镇)", "行政村", "自然村", "户编号", "人编号", "姓名", "证件号码", "人数",
    "与户主关系", "民族", "文化程度", "在校生状况", "健康状况", "劳动技能", "务工时间（月）",
    "是否参加大病保险", "致贫原因1", "危房户", "是否解决安全饮用水", "人均纯收入", "户联系电话",
    "人联系电话", "首次识别时间", "人员识别时间", "户类型", "易返贫致贫户（监测对象）类型",
    "风险是否消除", "风险识别时间", "风险消除时间",
]
VILLAGES = [("411621105201", "李庄村"), ("411621105202", "王楼村"), ("411621105203", "前进村")]


def _records(count: int, seed: str = "sheet") -> list[tuple[str, dict[str, Any]]]:
    rng = random.Random(seed)
    used: set[str] = set()
    out = []
    for n in range(count):
        code, name = VILLAGES[n % len(VILLAGES)]
        hid = f"{code}{n + 1:04d}"
        record = generate_household(rng, hid, code, 2025, used_ids=used, village_name=name)
        out.append((name, record))
    return out


def _yes(value: bool | None, style: int) -> str | None:
    if value is None:
        return None
    return [("是", "否"), ("√", "×"), ("Y", "N"), ("1", "0")][style % 4][0 if value else 1]


def _date_cell(value: Any, style: int) -> Any:
    if value is None:
        return None
    if isinstance(value, str):  # YYYY-MM
        year, month = value.split("-")
        return [value, f"{year}{month}", f"{year}年{int(month)}月"][style % 3]
    return [value.isoformat(), dt.datetime(value.year, value.month, value.day),
            f"{value.year}年{value.month}月{value.day}日", f"{value:%Y%m%d}", f"{value.year}/{value.month}/{value.day}",
            (value - dt.date(1899, 12, 30)).days][style % 6]


def national_rows(records: list[tuple[str, dict[str, Any]]]) -> list[list[Any]]:
    """Return the data rows of a sheet in the national shape, in varied but valid spellings."""
    rows = []
    for n, (village, rec) in enumerate(records):
        monitor = rec.get("monitor") or {}
        living = rec.get("living") or {}
        for i, m in enumerate(rec["members"]):
            style = n + i
            rows.append([
                "清河县", "大李庄乡", village, rec.get("group"), rec["household_id"], f"{rec['household_id']}{i + 1:02d}",
                m["name"], m["id_number"], len(rec["members"]), m["relation"], m.get("ethnicity"),
                m.get("education"), m.get("student_status"), "、".join(m.get("health") or []) or None,
                m.get("labour"), m.get("work_months"), _yes("大病保险" in (m.get("insured") or []), style),
                rec["causes"]["main"], living.get("dangerous_house"),
                _yes(living.get("safe_drinking_water"), style), "6500.00", rec.get("phone"), None,
                _date_cell(rec.get("identified_on"), style), None, rec["household_type"],
                monitor.get("category"), _yes(monitor.get("eliminated"), style),
                _date_cell(monitor.get("identified_on"), style), _date_cell(monitor.get("eliminated_on"), style),
            ])
    return rows


def write_xlsx(path: Path, headers: list[str], rows: list[list[Any]], *, title: str = "Sheet1",
               text_columns: tuple[str, ...] = ("户编号", "证件号码", "户联系电话")) -> Path:
    book = Workbook()
    sheet = book.active
    sheet.title = title
    sheet.append(headers)
    for row in rows:
        sheet.append(row)
    for name in text_columns:
        if name in headers:
            col = headers.index(name) + 1
            for r in range(2, len(rows) + 2):
                sheet.cell(row=r, column=col).number_format = "@"
    book.save(path)
    return path


def tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text("utf-8") for p in sorted(root.rglob("*")) if p.is_file()}


def validation_errors(data_dir: Path) -> list[str]:
    dataset = load_dataset(data_dir)
    return [p.format() for p in validate_dataset(dataset, today=TODAY) if p.is_error]


# --- the national shape ------------------------------------------------------------------


@pytest.fixture(scope="module")
def national(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Any]:
    root = tmp_path_factory.mktemp("national")
    records = _records(220)
    sheet = write_xlsx(root / "全乡人员信息.xlsx", HEADERS, national_rows(records))
    data = root / "DATA"
    report = import_sheet(sheet, data, today=TODAY)
    return sheet, data, report


def test_national_sheet_imports_clean(national: tuple[Path, Path, Any]) -> None:
    _, data, report = national
    assert report.problems == [], report.format_text()
    assert len(report.created) == 220
    assert report.exit_code == ExitCode.ok
    assert {p.name for p in data.iterdir()} == {"archive.toml", "李庄村", "王楼村", "前进村"}
    village = (data / "李庄村" / "village.toml").read_text("utf-8")
    assert 'code = "411621105201"' in village and 'name = "李庄村"' in village
    assert "year = 2025" in (data / "archive.toml").read_text("utf-8")
    assert validation_errors(data) == []


def test_national_sheet_fields_mapped(national: tuple[Path, Path, Any]) -> None:
    _, data, _ = national
    expected = {rec["household_id"]: rec for _, rec in _records(220)}
    for path in data.glob("*/*/household.yaml"):
        got = yaml.safe_load(path.read_text("utf-8"))
        want = expected[got["household_id"]]
        assert got["household_type"] == want["household_type"]
        assert got["causes"] == {"main": want["causes"]["main"]}
        assert got.get("phone") == want.get("phone")
        assert str(got.get("identified_on")) == str(want.get("identified_on")) if want.get("identified_on") else True
        if want.get("monitor"):
            for key in ("category", "eliminated", "identified_on", "eliminated_on"):
                assert got["monitor"].get(key) == want["monitor"].get(key), key
        for gm, wm in zip(got["members"], want["members"], strict=True):
            assert gm["id_number"] == wm["id_number"] and gm["relation"] == wm["relation"]
            assert gm.get("health") == wm.get("health")
            assert ("大病保险" in (gm.get("insured") or [])) == ("大病保险" in wm["insured"])
            assert gm.get("work_months") == wm.get("work_months")


def test_report_text_counts_and_unmapped(national: tuple[Path, Path, Any]) -> None:
    text = national[2].format_text()
    assert "新建 220 户" in text
    assert "「人均纯收入」（人均纯收入由收入台账计算，不保存）" in text
    assert "人编号" in text
    assert "监测收入标准暂用默认值 8050.0" in text


@pytest.mark.slow
def test_export_then_reimport_is_identical(national: tuple[Path, Path, Any], tmp_path: Path) -> None:
    _, data, _ = national
    out = tmp_path / "导出.xlsx"
    rows = export_sheet(data, out)
    assert rows == sum(len(yaml.safe_load(p.read_text("utf-8"))["members"]) for p in data.glob("*/*/household.yaml"))
    again = tmp_path / "DATA2"
    report = import_sheet(out, again, today=TODAY)
    assert report.problems == [], report.format_text()
    assert tree(again) == tree(data)


def test_export_writes_codes_as_text(national: tuple[Path, Path, Any], tmp_path: Path) -> None:
    out = tmp_path / "e.xlsx"
    export_sheet(national[1], out)
    sheet = load_workbook(out).active
    headers = [c.value for c in sheet[1]]
    for name in ("户编号", "证件号码", "户联系电话"):
        cell = sheet.cell(row=2, column=headers.index(name) + 1)
        assert isinstance(cell.value, str) and cell.number_format == "@"
    assert headers[:5] == ["县(市、区、旗)", "乡(镇)", "行政村", "自然村", "户编号"]


def test_reimport_same_sheet_is_unchanged(national: tuple[Path, Path, Any]) -> None:
    sheet, data, _ = national
    before = tree(data)
    report = import_sheet(sheet, data, today=TODAY)
    assert len(report.unchanged) == 220 and not report.created and not report.skipped
    assert tree(data) == before


# --- one precise problem each ---------------------------------------------------------------


def _faulty_sheet(tmp_path: Path) -> tuple[Path, list[tuple[str, dict[str, Any]]], int, int]:
    """Return a sheet with four faults, the records and the rows of the 人数 and relation faults."""
    records = _records(12, seed="faulty")
    headers = list(HEADERS)
    headers[headers.index("文化程度")] = "文化成度"  # misspelled header
    rows = national_rows(records)
    col = {h: i for i, h in enumerate(HEADERS)}

    def rows_of(k: int) -> list[int]:
        return [i for i, r in enumerate(rows) if r[col["户编号"]] == records[k][1]["household_id"]]

    rows[0][col["证件号码"]] = float(rows[0][col["证件号码"]][:17]) * 10  # an ID Excel made a number
    for i in rows_of(3):
        rows[i][col["人数"]] += 1
    multi = next(k for k in range(4, 12) if len(rows_of(k)) > 1)
    target = rows_of(multi)[1]
    rows[target][col["与户主关系"]] = "干儿子"
    sheet = write_xlsx(tmp_path / "有问题.xlsx", headers, rows)
    return sheet, records, rows_of(3)[0] + 2, target + 2


def test_faulty_sheet_gives_one_precise_problem_each(tmp_path: Path) -> None:
    sheet, records, size_row, relation_row = _faulty_sheet(tmp_path)
    data = tmp_path / "DATA"
    report = import_sheet(sheet, data, today=TODAY)
    messages = [p.message for p in report.problems]
    assert len(report.problems) == 4, report.format_text()
    by_field = {p.field: p for p in report.problems}
    p = by_field["证件号码"]
    assert p.severity is Severity.error and p.line == 2
    assert p.message.startswith("工作表「Sheet1」第 2 行「证件号码」：证件号码被 Excel 存成了数字")
    assert "本次未导入" in p.message and p.hint and "文本" in p.hint
    p = by_field["文化成度"]
    assert p.line == 1 and "是否应为「文化程度」" in p.message
    p = by_field["人数"]
    assert p.line == size_row and f"人数是 {len(records[3][1]['members']) + 1}" in p.message
    p = by_field["与户主关系"]
    assert p.line == relation_row and "「干儿子」不在「与户主关系」词表中" in p.message
    assert all(m.startswith("工作表「Sheet1」第 ") for m in messages)
    # the rest imported
    assert report.skipped == [records[0][1]["household_id"]]
    assert len(report.created) == 11
    assert report.exit_code == ExitCode.problems
    assert "文化成度" in report.unknown_columns
    text = report.format_text()
    assert "错误：工作表「Sheet1」第 2 行「证件号码」" in text and "跳过 1 户" in text
    assert not (data / "李庄村" / records[0][1]["household_id"]).exists()


@pytest.mark.parametrize("value", [411621197506172832, 4.11621197506172e17, "4.11621E+17", "4.11621197506172E+17"])
def test_numeric_id_numbers_are_errors(tmp_path: Path, value: Any) -> None:
    rows = national_rows(_records(1, seed="one"))
    rows[0][HEADERS.index("证件号码")] = value
    report = import_sheet(write_xlsx(tmp_path / "a.xlsx", HEADERS, rows), tmp_path / "D", today=TODAY)
    assert [p.field for p in report.problems if p.is_error] == ["证件号码"]
    assert report.created == [] and not (tmp_path / "D").exists()


def test_bad_check_digit_is_an_error(tmp_path: Path) -> None:
    rows = national_rows(_records(1, seed="one"))
    good = rows[0][HEADERS.index("证件号码")]
    rows[0][HEADERS.index("证件号码")] = good[:17] + ("0" if good[17] != "0" else "1")
    report = import_sheet(write_xlsx(tmp_path / "a.xlsx", HEADERS, rows), tmp_path / "D", today=TODAY)
    (problem,) = report.problems
    assert problem.is_error and "校验位错误" in problem.message


def test_missing_required_header_suggests_closest(tmp_path: Path) -> None:
    headers = [("证件号吗" if h == "证件号码" else h) for h in HEADERS]
    sheet = write_xlsx(tmp_path / "a.xlsx", headers, national_rows(_records(2)))
    with pytest.raises(SheetError) as info:
        import_sheet(sheet, tmp_path / "D", today=TODAY)
    assert "缺少必需的列：「证件号码」（第 1 行的「证件号吗」是否就是它？）" in info.value.message
    assert info.value.exit_code == ExitCode.input_unusable


def test_unreadable_file(tmp_path: Path) -> None:
    bad = tmp_path / "坏.xlsx"
    bad.write_bytes(b"not a zip")
    with pytest.raises(SheetError, match="无法读取表格文件") as info:
        import_sheet(bad, tmp_path / "D")
    assert info.value.message == "无法读取表格文件 坏.xlsx：不是有效的 .xlsx 文件，或已损坏、已加密"
    with pytest.raises(SheetError, match="不支持"):
        import_sheet(tmp_path / "x.ods", tmp_path / "D") if (tmp_path / "x.ods").write_text("x") else None


def test_household_fields_must_agree(tmp_path: Path) -> None:
    records = _records(6, seed="agree")
    rows = national_rows(records)
    col = HEADERS.index("户类型")
    hid = next(rec["household_id"] for _, rec in records if len(rec["members"]) > 1)
    idx = [i for i, r in enumerate(rows) if r[4] == hid]
    rows[idx[1]][col] = "一般农户" if rows[idx[0]][col] != "一般农户" else "脱贫户"
    report = import_sheet(write_xlsx(tmp_path / "a.xlsx", HEADERS, rows), tmp_path / "D", today=TODAY)
    (problem,) = report.problems
    assert problem.line == idx[1] + 2 and f"第 {idx[0] + 2} 行" in problem.message and "不一致" in problem.message


def test_variants_are_normalised_with_reasons(tmp_path: Path) -> None:
    rows = national_rows(_records(1, seed="one"))
    headers = [h.replace("（", "(").replace("）", ")") for h in HEADERS]
    headers[headers.index("证件号码")] = "身份证号码"
    headers[headers.index("行政村")] = "村"
    headers[headers.index("健康状况")] = " 健康 状况 "
    rows[0][HEADERS.index("与户主关系")] = "本人"
    rows[0][HEADERS.index("健康状况")] = "慢性病,残疾"
    for row in rows:
        row[HEADERS.index("致贫原因1")] = "缺劳力"
        row[HEADERS.index("首次识别时间")] = "2017年4月"
    report = import_sheet(write_xlsx(tmp_path / "a.xlsx", headers, rows), tmp_path / "D", today=TODAY)
    assert report.problems == [], report.format_text()
    record = yaml.safe_load(next((tmp_path / "D").glob("*/*/household.yaml")).read_text("utf-8"))
    assert record["members"][0]["relation"] == "户主"
    assert record["members"][0]["health"] == ["长期慢性病", "残疾"]
    assert record["causes"]["main"] == "缺劳动力"
    assert record["identified_on"] == "2017-04"
    text = report.format_text()
    assert "「与户主关系」「本人」→「户主」：1 处" in text and "YYYY年M月 格式转为 YYYY-MM-DD" in text


@pytest.mark.parametrize("value, expected", [
    ("2019-03-05", dt.date(2019, 3, 5)), ("2019/3/5", dt.date(2019, 3, 5)), ("20190305", dt.date(2019, 3, 5)),
    (20190305, dt.date(2019, 3, 5)), ("2019年3月5日", dt.date(2019, 3, 5)), ("201903", "2019-03"),
    ("2019年3月", "2019-03"), (43529, dt.date(2019, 3, 5)), (dt.datetime(2019, 3, 5, 0, 0), dt.date(2019, 3, 5)),
    ("2019-03-05 00:00:00", dt.date(2019, 3, 5)),
])
def test_parse_date(value: Any, expected: Any) -> None:
    assert parse_date(value, "日期")[0] == expected


# --- safety ------------------------------------------------------------------------------------


def test_existing_record_not_overwritten_without_force(tmp_path: Path) -> None:
    records = _records(2, seed="keep")
    rows = national_rows(records)
    sheet = write_xlsx(tmp_path / "a.xlsx", HEADERS, rows)
    data = tmp_path / "D"
    import_sheet(sheet, data, today=TODAY)
    path = next(data.glob(f"*/{records[0][1]['household_id']}/household.yaml"))
    record = yaml.safe_load(path.read_text("utf-8"))
    record["measures"] = [{"year": 2024, "category": "产业帮扶", "item": "小额信贷", "amount": 5000}]
    record["notes"] = "手工补充的说明"
    path.write_text(yaml.safe_dump(record, allow_unicode=True, sort_keys=False), "utf-8")
    edited = path.read_text("utf-8")
    for r in rows:
        if r[4] == records[0][1]["household_id"]:
            r[HEADERS.index("户联系电话")] = "13800000000"
    sheet = write_xlsx(tmp_path / "b.xlsx", HEADERS, rows)

    report = import_sheet(sheet, data, today=TODAY)
    assert report.skipped == [records[0][1]["household_id"]] and report.unchanged == [records[1][1]["household_id"]]
    assert "--force" in report.problems[0].hint and path.read_text("utf-8") == edited

    report = import_sheet(sheet, data, force=True, today=TODAY)
    assert report.updated == [records[0][1]["household_id"]]
    merged = yaml.safe_load(path.read_text("utf-8"))
    assert merged["phone"] == "13800000000"
    assert merged["measures"] == record["measures"] and merged["notes"] == "手工补充的说明"
    assert merged["members"][0]["insured"] == record["members"][0]["insured"]
    assert "保留原值" in report.format_text()
    assert validation_errors(data) == []


def test_dry_run_writes_nothing(tmp_path: Path) -> None:
    sheet = write_xlsx(tmp_path / "a.xlsx", HEADERS, national_rows(_records(5)))
    before = sheet.read_bytes()
    report = import_sheet(sheet, tmp_path / "D", dry_run=True, today=TODAY)
    assert not (tmp_path / "D").exists()
    assert len(report.created) == 5 and "archive.toml" in report.written
    assert "试运行" in report.format_text() and "将新建 5 户" in report.format_text()
    assert sheet.read_bytes() == before


def test_import_into_existing_village_folder(tmp_path: Path) -> None:
    data = tmp_path / "D"
    (data / "411621105201_李庄村").mkdir(parents=True)
    (data / "411621105201_李庄村" / "village.toml").write_text('code = "411621105201"\nname = "李庄村"\n', "utf-8")
    (data / "archive.toml").write_text('[archive]\ncounty = "清河县"\n', "utf-8")
    sheet = write_xlsx(tmp_path / "a.xlsx", HEADERS, national_rows(_records(3)))
    report = import_sheet(sheet, data, today=TODAY)
    assert len(report.created) == 3
    assert len(list((data / "411621105201_李庄村").glob("*/household.yaml"))) == 1
    assert (data / "archive.toml").read_text("utf-8") == '[archive]\ncounty = "清河县"\n'


# --- CSV -----------------------------------------------------------------------------------


def _csv_text(records: list[tuple[str, dict[str, Any]]]) -> str:
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(HEADERS)
    for row in national_rows(records):
        writer.writerow(["" if v is None else (v.isoformat()[:10] if isinstance(v, (dt.date, dt.datetime)) else v)
                         for v in row])
    return buffer.getvalue()


@pytest.mark.parametrize("encoding", ["gb18030", "utf-8-sig", "utf-8"])
def test_csv_encodings(tmp_path: Path, encoding: str) -> None:
    records = _records(6, seed="csv")
    records[0][1]["members"][0]["name"] = "李堃"  # outside GB 2312, inside GB18030
    path = tmp_path / "人员.csv"
    path.write_bytes(_csv_text(records).encode(encoding))
    report = import_sheet(path, tmp_path / "D", today=TODAY)
    assert report.problems == [], report.format_text()
    assert len(report.created) == 6
    names = [yaml.safe_load(p.read_text("utf-8"))["members"][0]["name"] for p in (tmp_path / "D").glob("*/*/household.yaml")]
    assert "李堃" in names
    assert validation_errors(tmp_path / "D") == []


def test_csv_scientific_id(tmp_path: Path) -> None:
    text = _csv_text(_records(1, seed="one"))
    lines = text.splitlines()
    cells = lines[1].split(",")
    cells[HEADERS.index("证件号码")] = "4.11621E+17"
    lines[1] = ",".join(cells)
    path = tmp_path / "a.csv"
    path.write_text("\n".join(lines) + "\n", encoding="gb18030")
    report = import_sheet(path, tmp_path / "D", today=TODAY)
    assert [p.field for p in report.problems] == ["证件号码"]
    assert "科学计数法「4.11621E+17」" in report.problems[0].message
    assert report.problems[0].message.startswith("工作表「a.csv」第 2 行")


def test_xls_needs_calamine_or_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    from archive_builder.errors import ExternalToolError

    real_import = builtins.__import__

    def fake_import(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "python_calamine":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    path = tmp_path / "a.xls"
    path.write_bytes(b"\xd0\xcf\x11\xe0")
    with pytest.raises(ExternalToolError, match="python-calamine"):
        import_sheet(path, tmp_path / "D")


def test_make_id_number_helper_consistent() -> None:
    assert make_id_number("110105", dt.date(1949, 12, 31), 2) == "11010519491231002X"


def test_xls_read_with_calamine(tmp_path: Path) -> None:
    pytest.importorskip("python_calamine")
    xlwt = pytest.importorskip("xlwt")  # only to make a .xls file in the test
    records = _records(4, seed="xls")
    rows = national_rows(records)
    rows[0][HEADERS.index("证件号码")] = 4.11621197506172e17
    book = xlwt.Workbook(encoding="utf-8")
    sheet = book.add_sheet("人员信息")
    for c, name in enumerate(HEADERS):
        sheet.write(0, c, name)
    for r, row in enumerate(rows, start=1):
        for c, value in enumerate(row):
            if isinstance(value, (dt.date, dt.datetime)):
                value = value.isoformat()[:10]
            if value is not None:
                sheet.write(r, c, value)
    path = tmp_path / "人员.xls"
    book.save(str(path))
    report = import_sheet(path, tmp_path / "D", today=TODAY)
    assert [(p.field, p.line) for p in report.problems] == [("证件号码", 2)]
    assert report.problems[0].message.startswith("工作表「人员信息」第 2 行")
    assert len(report.created) == 3
    assert validation_errors(tmp_path / "D") == []


def test_title_row_footer_and_blank_rows(tmp_path: Path) -> None:
    records = _records(3, seed="title")
    book = Workbook()
    sheet = book.active
    sheet.append(["清河县大李庄乡防返贫监测信息表"])  # title line above the header
    sheet.append(HEADERS)
    for row in national_rows(records):
        sheet.append(row)
        sheet.append([])
    sheet.append(["合计", None, None, None, None])
    sheet.append(["制表人：张三"])
    path = tmp_path / "a.xlsx"
    book.save(path)
    report = import_sheet(path, tmp_path / "D", today=TODAY)
    assert report.problems == [] and len(report.created) == 3


def test_row_without_household_id(tmp_path: Path) -> None:
    rows = national_rows(_records(2, seed="nohid"))
    rows[1][HEADERS.index("户编号")] = None
    report = import_sheet(write_xlsx(tmp_path / "a.xlsx", HEADERS, rows), tmp_path / "D", today=TODAY)
    assert any(p.line == 3 and "没有户编号" in p.message for p in report.problems)


def test_sixteen_digit_household_id_as_number_is_refused(tmp_path: Path) -> None:
    records = _records(1, seed="one")
    rows = national_rows(records)
    for row in rows:
        row[HEADERS.index("户编号")] = int(row[HEADERS.index("户编号")])
    report = import_sheet(write_xlsx(tmp_path / "a.xlsx", HEADERS, rows, text_columns=()), tmp_path / "D", today=TODAY)
    assert report.created == [] and report.problems and all(p.field == "户编号" for p in report.problems)
    assert "超过 15 位" in report.problems[0].message


def test_dump_record_keeps_rare_characters_readable() -> None:
    """libyaml (the fast emitter) escapes characters beyond the BMP; those records use PyYAML's."""
    from archive_builder.io.spreadsheet import dump_record
    from archive_builder.records.loader import load_yaml

    rare = {"household_id": "4116211052010001", "members": [{"name": "周𠮷祥", "relation": "户主"}]}
    text = dump_record(rare)
    assert "周𠮷祥" in text and "\\U" not in text
    plain = {"household_id": "4116211052010002", "notes": "第一行\n第二行：有冒号", "members": [{"name": "张堃"}]}
    for record in (rare, plain):
        assert load_yaml(dump_record(record)) == record


SAMPLE = Path(__file__).resolve().parents[1] / "households_sample"


def test_force_update_changes_only_the_changed_line(tmp_path: Path) -> None:
    """An update keeps the file's comment, flow lists/maps and CR LF: only the new phone differs."""
    import shutil

    data = tmp_path / "D"
    shutil.copytree(SAMPLE, data)
    hid = "4116211052010014"
    path = next(data.glob(f"*/{hid}/household.yaml"))
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    before = path.read_bytes()
    assert before.startswith(b"# ") and b"health: [" in before and b"wage: {" in before
    sheet = export_sheet(data, tmp_path / "a.xlsx") and tmp_path / "a.xlsx"
    book = load_workbook(sheet)
    headers = [c.value for c in book.active[1]]
    for row in book.active.iter_rows(min_row=2):
        if row[headers.index("户编号")].value == hid:
            row[headers.index("户联系电话")].value = "13800000000"
    book.save(sheet)

    report = import_sheet(sheet, data, force=True, today=TODAY)
    assert report.updated == [hid] and not report.skipped and report.errors == 0
    old_lines, new_lines = before.split(b"\r\n"), path.read_bytes().split(b"\r\n")
    assert len(old_lines) == len(new_lines)
    changed = [(a, b) for a, b in zip(old_lines, new_lines, strict=True) if a != b]
    assert changed == [(b"phone: '17602538674'", b"phone: '13800000000'")]
    assert report.changes[hid].before["phone"] == "17602538674"
    assert report.changes[hid].after["phone"] == "13800000000"
