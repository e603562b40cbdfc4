"""The policy audit (问题台账): each built-in rule found exactly when planted, the ledger files,
the --previous round trip, county rule files and their errors."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from datadir import make_id, sample_household

from archive_builder.checks import (
    COLUMNS,
    RuleFileError,
    household_ledger,
    load_rule_set,
    rule_files,
    run_audit,
    village_ledger,
    write_pdf,
    write_xlsx,
)
from archive_builder.checks.engine import item_key
from archive_builder.cli import main
from archive_builder.records.models import Member

SAMPLE = Path(__file__).resolve().parents[1] / "households_sample"
VILLAGE = "411621105201_李庄村"
HOUSEHOLD = "4116211052010001_李长河"
HID = "4116211052010001"
TODAY = dt.date(2026, 1, 5)


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARCHIVE_BUILDER_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """A copy of the sample township reduced to one household (李长河, 9 members)."""
    return sample_household(tmp_path / "data", VILLAGE, HOUSEHOLD)


def record_path(data: Path) -> Path:
    return data / VILLAGE / HOUSEHOLD / "household.yaml"


def plant(data: Path, change: Callable[[dict[str, Any]], None]) -> None:
    path = record_path(data)
    record = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(record)
    path.write_text(yaml.safe_dump(record, allow_unicode=True, sort_keys=False), encoding="utf-8")


def keys(data: Path, **options: Any) -> dict[str, str]:
    result = run_audit(data, today=TODAY, **options)
    assert not result.rule_errors and not result.skipped
    return {row.key: row.description for row in result.rows}


def member_key(record_member: dict[str, Any]) -> str:
    return item_key("成员", Member.model_validate(record_member))


def _record(data: Path) -> dict[str, Any]:
    return yaml.safe_load(record_path(data).read_text(encoding="utf-8"))


# --- planted violations: one per built-in rule -----------------------------------------------------


def _insured(r: dict[str, Any]) -> None:
    r["members"][1]["insured"] = ["居民养老"]


def _school(r: dict[str, Any]) -> None:
    r["members"][6]["student_status"] = "非在校生"


def _house(r: dict[str, Any]) -> None:
    r["living"]["dangerous_house"] = "C级"


def _water(r: dict[str, Any]) -> None:
    r["living"]["safe_drinking_water"] = False
    r["measures"] = [m for m in r["measures"] if m["category"] != "饮水安全保障"]


def _exit_income(r: dict[str, Any]) -> None:
    r["exit_year"] = 2024  # 2024: 38,944 元 for 8 people = 4,868 元 < 8,050


def _income_missing(r: dict[str, Any]) -> None:
    r["income"] = [e for e in r["income"] if e["year"] != 2025]


def _measure_evidence(r: dict[str, Any]) -> None:
    r["measures"].append({"year": 2025, "category": "产业帮扶", "item": "企业带贫分红", "amount": 800,
                          "date": dt.date(2025, 11, 1), "signed": True})


def _publicity(r: dict[str, Any]) -> None:
    r["procedure"][3]["date_to"] = dt.date(2018, 3, 12)  # 3.08–3.12: 5 days


def _identify_days(r: dict[str, Any]) -> None:
    r["monitor"] = {"category": "脱贫不稳定户", "risks": ["因病"], "identified_on": "2025-03", "eliminated": False}
    r["procedure"] += [{"kind": "申请", "date": dt.date(2025, 3, 1)},
                       {"kind": "县级审定", "date": dt.date(2025, 3, 25)}]


def _monitor_no_measure(r: dict[str, Any]) -> None:
    r["monitor"] = {"category": "突发严重困难户", "risks": ["因病"], "identified_on": "2025-11", "eliminated": False}


def _elimination(r: dict[str, Any]) -> None:
    r["monitor"] = {"category": "脱贫不稳定户", "risks": ["因病"], "identified_on": "2023-03", "eliminated": True}


def _helper(r: dict[str, Any]) -> None:
    r["helpers"][0]["end"] = dt.date(2020, 1, 1)


def _visits(r: dict[str, Any]) -> None:
    r["visits"] = [v for v in r["visits"] if v["date"].year != 2025]


def _dibao(r: dict[str, Any]) -> None:
    r["members"][2]["dibao"] = True  # 一般贫困户 with a member on 低保


def _safety_net(r: dict[str, Any]) -> None:
    for m in r["members"]:
        m["labour"] = "无劳动力"
    r["measures"] = [m for m in r["measures"] if m["category"] != "综合保障"]


def _education(r: dict[str, Any]) -> None:
    r["members"][7]["education"] = "初中"  # 李思雨, 9 years old


def _over_100(r: dict[str, Any]) -> None:
    r["members"][3]["id_number"] = make_id("19200722", "028")


def _head_born(r: dict[str, Any]) -> None:
    r["identified_on"] = "1965-01"  # the head was born in 1969


def _member(i: int) -> Callable[[dict[str, Any]], str]:
    return lambda r: "|" + member_key(r["members"][i])


PLANTED: dict[str, tuple[Callable[[dict[str, Any]], None], Callable[[dict[str, Any]], str], str]] = {
    # rule id: (plant, key suffix from the planted record, a fact the message names)
    "insured": (_insured, _member(1), "崔秀芝"),
    "school-age": (_school, _member(6), "李犇犇"),
    "dangerous-house": (_house, lambda r: "", "C级"),
    "drinking-water": (_water, lambda r: "", "饮水安全"),
    "exit-income": (_exit_income, lambda r: "|收入2024", "4868.00元，低于收入标准8050.00元"),
    "income-missing": (_income_missing, lambda r: "", "2025"),
    "measure-evidence": (_measure_evidence, lambda r: "|措施2025/企业带贫分红/2025-11-01", "800"),
    "publicity-days": (_publicity, lambda r: "|程序公示/2018-03-08", "5天"),
    "monitor-identify-days": (_identify_days, lambda r: "", "24天"),
    "monitor-no-measure": (_monitor_no_measure, lambda r: "", "突发严重困难户"),
    "monitor-elimination-incomplete": (_elimination, lambda r: "", "消除方式"),
    "no-helper": (_helper, lambda r: "", "吕静"),
    "visits-per-year": (_visits, lambda r: "", "走访0次"),
    "dibao-attribute": (_dibao, lambda r: "", "李振华"),
    "no-labour-safety-net": (_safety_net, lambda r: "", "9人"),
    "education-age": (_education, _member(7), "李思雨"),
    "age-over-100": (_over_100, _member(3), "郑翠花"),
    "head-born-after-identification": (_head_born, _member(0), "李长河"),
}


#: rules the unmodified sample household already breaks (its dividends have no 分红凭证)
KNOWN = {"measure-evidence"}


def test_every_builtin_rule_has_a_planted_test() -> None:
    assert {rule.id for rule in load_rule_set(rule_files()).rules} == set(PLANTED)


@pytest.mark.parametrize("rule_id", sorted(PLANTED))
def test_planted_violation_found_exactly(data: Path, rule_id: str) -> None:
    change, suffix, fact = PLANTED[rule_id]
    before = keys(data)
    if rule_id not in KNOWN:  # the sample is clean of this rule (or has exactly the known ones)
        assert not any(k.startswith(rule_id + "|") for k in before)
    plant(data, change)
    after = keys(data)
    expected = f"{rule_id}|{HID}{suffix(_record(data))}"
    assert set(after) - set(before) == {expected}  # recall and precision on the planted problem
    assert set(before) - set(after) == set()
    assert fact in after[expected]


def test_sample_findings_are_the_known_ones(data: Path) -> None:
    found = keys(data)
    assert found and {k.split("|")[0] for k in found} == {"measure-evidence"}
    # a measure with the expected type of evidence is not a problem; the same one without it is
    plant(data, lambda r: r["measures"].append({
        "year": 2025, "category": "产业帮扶", "item": "企业带贫分红", "amount": 500, "date": dt.date(2025, 12, 1),
        "evidence": ["佐证材料/银行流水_2024.pdf"]}))
    assert keys(data) == found


def test_safety_net_measure_clears_no_labour(data: Path) -> None:
    plant(data, lambda r: [m.update(labour="丧失劳动力") for m in r["members"]])  # 综合保障 measures remain
    assert not any(k.startswith("no-labour-safety-net|") for k in keys(data))


def test_school_age_reason_in_notes_is_accepted(data: Path) -> None:
    def change(r: dict[str, Any]) -> None:
        _school(r)
        r["notes"] += "\n李犇犇因病休学，已申请送教上门。"

    plant(data, change)
    assert not any(k.startswith("school-age|") for k in keys(data))


def test_ledger_row_columns_and_deadline(data: Path) -> None:
    plant(data, _insured)
    result = run_audit(data, today=TODAY)
    row = next(r for r in result.rows if r.rule_id == "insured")
    cells = dict(zip(COLUMNS, row.cells(1)))
    assert cells["村"] == "李庄村" and cells["户编号"] == HID and cells["户主"] == "李长河"
    assert cells["村民组"] == "第一村民组" and cells["帮扶责任人"] == "吕静"
    assert cells["严重程度"] == "严重" and cells["问题类别"] == "三保障" and "医疗保险" in cells["依据"]
    assert cells["整改时限"] == (TODAY + dt.timedelta(days=15)).isoformat()
    assert cells["整改状态"] == "未整改" and cells["复核结果"] == "新增"
    assert result.exit_code == 1


# --- files and the command ---------------------------------------------------------------------------


def test_cli_writes_xlsx_pdf_and_json(data: Path, tmp_path: Path) -> None:
    from openpyxl import load_workbook
    from pypdf import PdfReader

    xlsx, pdf = tmp_path / "台账.xlsx", tmp_path / "台账.pdf"
    runner = CliRunner()
    ok = runner.invoke(main, ["audit", str(data), "-o", str(xlsx), "--pdf", str(pdf), "--today", "2026-01-05"])
    assert ok.exit_code == 0, ok.output  # only 一般 problems
    plant(data, _insured)
    res = runner.invoke(main, ["audit", str(data), "--json", "-o", str(xlsx), "--pdf", str(pdf),
                               "--today", "2026-01-05"])
    assert res.exit_code == 1
    report = json.loads(res.stdout)
    assert report["counts"]["严重"] == 1 and report["households"] == 1
    assert any(p["rule_id"] == "insured" and "崔秀芝" in p["description"] for p in report["problems"])

    book = load_workbook(xlsx)
    assert book.sheetnames == ["汇总", "李庄村"]
    sheet = book["李庄村"]
    assert [c.value for c in sheet[1]] == list(COLUMNS)
    assert sheet.freeze_panes == "A2" and sheet.auto_filter.ref.startswith("A1:")
    validation = sheet.data_validations.dataValidation[0]
    assert validation.type == "list" and "已整改" in validation.formula1
    assert "M2" in str(validation.sqref)
    summary = book["汇总"]
    header = [c.value for c in summary[2]]
    assert header[0] == "村" and "三保障" in header and "合计" in header
    assert [c.value for c in summary[3]][:1] == ["李庄村"]

    # table cells wrap where their column's width ends (widths come from the content)
    text = "".join(page.extract_text() for page in PdfReader(pdf).pages).replace("\n", "")
    assert "问题台账" in text and "崔秀芝" in text and "李庄村" in text


def test_pdf_is_deterministic(data: Path, tmp_path: Path) -> None:
    result = run_audit(data, today=TODAY)
    a, b = write_pdf(result, tmp_path / "a.pdf"), write_pdf(result, tmp_path / "b.pdf")
    assert a.read_bytes() == b.read_bytes()


def test_previous_round_trip(data: Path, tmp_path: Path) -> None:
    from openpyxl import load_workbook

    plant(data, lambda r: (_insured(r), _helper(r)))
    first = tmp_path / "第一轮.xlsx"
    write_xlsx(run_audit(data, today=TODAY), first)
    insured_key = f"insured|{HID}|" + member_key(_record(data)["members"][1])
    helper_key = f"no-helper|{HID}"

    # the clerk marks both 已整改 and types a 备注 in Excel
    book = load_workbook(first)
    sheet = book["李庄村"]
    col = {c.value: i for i, c in enumerate(sheet[1])}
    for row in sheet.iter_rows(min_row=2):
        if row[col["问题编码"]].value in (insured_key, helper_key):
            row[col["整改状态"]].value = "已整改"
            row[col["备注"]].value = "已入户核实" if row[col["问题编码"]].value == helper_key else "已参保"
    book.save(first)

    # only the insurance is fixed in the data; a new problem appears
    plant(data, lambda r: (r["members"][1].update(insured=["居民医保", "大病保险"]), _house(r)))
    second = run_audit(data, today=TODAY + dt.timedelta(days=30), previous=first)
    rows = {row.key: row for row in second.rows}
    assert rows[insured_key].review == "已整改" and rows[insured_key].status == "已整改"
    assert rows[insured_key].note == "已参保"
    assert rows[helper_key].review == "仍未整改"
    assert rows[helper_key].status == "已整改" and rows[helper_key].note == "已入户核实"
    assert rows[f"dangerous-house|{HID}"].review == "新增"
    assert {r.review for k, r in rows.items() if k.startswith("measure-evidence|")} == {"仍未整改"}
    assert second.counts()["严重"] == 2  # no-helper and dangerous-house; the fixed one is not counted

    # and the merged ledger can itself be the previous one of the next round
    second_path = tmp_path / "第二轮.xlsx"
    write_xlsx(second, second_path)
    third = run_audit(data, today=TODAY, previous=second_path)
    assert {r.key: r.review for r in third.rows}[insured_key] == "已整改"


def test_previous_that_is_not_a_ledger(data: Path, tmp_path: Path) -> None:
    bogus = tmp_path / "旧.xlsx"
    bogus.write_bytes(b"not a workbook")
    res = CliRunner().invoke(main, ["audit", str(data), "--previous", str(bogus)])
    assert res.exit_code == 2 and "台账错误" in res.output and "旧.xlsx" in res.output


# --- county rule files -------------------------------------------------------------------------------

COUNTY = """\
参数:
  每年走访次数: 1
停用: [measure-evidence]
规则:
  - id: phone-missing
    类别: 数据一致性
    描述: 缺少联系电话
    依据: 县档卡规范第3条
    严重程度: 提示
    整改建议: 补录户联系电话
    范围: 户
    条件: not household.phone
    消息: 户主{{ household.head.name }}没有联系电话
  - id: no-monitored
    类别: 监测
    描述: 村内没有防止返贫监测对象，需核实是否应纳尽纳
    依据: 县防止返贫监测工作要求
    严重程度: 提示
    整改建议: 开展集中排查，符合条件的及时纳入监测
    范围: 村
    条件: households and households | rejectattr("monitor") | list | length == households | length
    消息: '{{ village.name }}（第一书记{{ village.first_secretary }}）共{{ households | length }}户，没有监测对象'
"""


def test_county_rules_add_and_disable(data: Path) -> None:
    (data / "rules").mkdir()
    (data / "rules" / "县规则.yaml").write_text(COUNTY, encoding="utf-8")
    plant(data, lambda r: r.pop("phone"))
    found = keys(data)
    assert not any(k.startswith("measure-evidence|") for k in found)
    assert found[f"phone-missing|{HID}"].endswith("户主李长河没有联系电话")
    village_keys = [k for k in found if k.startswith("no-monitored|")]
    assert village_keys == ["no-monitored|村411621105201"] and "共1户" in found[village_keys[0]]


def test_county_overrides_a_builtin_rule(data: Path) -> None:
    (data / "rules").mkdir()
    (data / "rules" / "a.yaml").write_text("规则:\n  - id: insured\n    严重程度: 提示\n", encoding="utf-8")
    plant(data, _insured)
    result = run_audit(data, today=TODAY)
    row = next(r for r in result.rows if r.rule_id == "insured")
    assert row.severity == "提示" and result.exit_code == 0


def test_rule_file_syntax_error_is_chinese_with_file_and_line(data: Path) -> None:
    (data / "rules").mkdir()
    (data / "rules" / "坏.yaml").write_text("规则:\n  - id: x\n    类别: [未闭合\n    描述: y\n", encoding="utf-8")
    with pytest.raises(RuleFileError) as caught:
        run_audit(data)
    assert "rules/坏.yaml" in caught.value.message and "第 4 行" in caught.value.message
    assert "YAML 格式错误" in caught.value.message
    res = CliRunner().invoke(main, ["audit", str(data)])
    assert res.exit_code == 2 and "规则文件错误" in res.output and "rules/坏.yaml" in res.output
    assert "Traceback" not in res.output


@pytest.mark.parametrize(
    ("rule", "line", "words"),
    [
        ("    条件: member.insure\n", 8, ["insure", "没有字段"]),
        ("    条件: household.phone ==\n", 8, ["不是有效的表达式"]),
        ("    条件: no_such_helper()\n", 8, ["no_such_helper"]),
        ("    条件: 'true'\n    严重程度: 很严重\n", 9, ["严重程度"]),
        ("    条件: 'true'\n    颜色: 红\n", 9, ["未知的项目「颜色」"]),
    ],
)
def test_wrong_rule_names_file_line_and_id(data: Path, rule: str, line: int, words: list[str]) -> None:
    text = ("规则:\n  - id: my-rule\n    类别: 收入\n    描述: d\n    依据: b\n    整改建议: a\n    消息: m\n"
            + ("    严重程度: 一般\n" if "严重程度" not in rule else "")
            + ("    范围: 成员\n") + rule)
    (data / "rules").mkdir()
    (data / "rules" / "r.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(RuleFileError) as caught:
        run_audit(data)
    message = caught.value.message
    assert "rules/r.yaml" in message and "my-rule" in message and "第 " in message
    for word in words:
        assert word in message


def test_disabling_an_unknown_rule_is_an_error(data: Path) -> None:
    (data / "rules").mkdir()
    (data / "rules" / "r.yaml").write_text("停用: [no-such-rule]\n", encoding="utf-8")
    with pytest.raises(RuleFileError, match="no-such-rule"):
        run_audit(data)


def test_rules_option_adds_a_file(data: Path, tmp_path: Path) -> None:
    extra = tmp_path / "extra.yaml"
    extra.write_text(COUNTY, encoding="utf-8")
    found = keys(data, rules=extra)
    assert not any(k.startswith("measure-evidence|") for k in found)


@pytest.mark.parametrize("condition", ["household.__class__.__mro__", "household.parse_file('/etc/hostname')",
                                       "household.model_copy", "archive.parse_raw('{}')",
                                       "household['parse_file']", "household.members | map(attribute='model_copy') | list"])
def test_rule_cannot_escape_the_sandbox(data: Path, condition: str) -> None:
    (data / "rules").mkdir()
    (data / "rules" / "r.yaml").write_text(
        "规则:\n  - id: evil\n    类别: x\n    描述: d\n    依据: b\n    整改建议: a\n    消息: m\n    严重程度: 一般\n"
        f"    范围: 户\n    条件: \"{condition}\"\n", encoding="utf-8")
    with pytest.raises(RuleFileError, match="evil"):
        run_audit(data)


def test_rules_may_use_the_record_classes_own_properties(data: Path) -> None:
    (data / "rules").mkdir()
    (data / "rules" / "r.yaml").write_text(
        "规则:\n  - id: head-name\n    类别: x\n    描述: d\n    依据: b\n    整改建议: a\n    严重程度: 提示\n"
        "    范围: 收入年度\n    条件: household.head.name == '李长河' and income.net_income > 0\n"
        "    消息: '{{ household.per_capita_income(income) }}'\n", encoding="utf-8")
    found = keys(data)
    assert {k for k in found if k.startswith("head-name|")} == {f"head-name|{HID}|收入{y}" for y in (2023, 2024, 2025)}


# --- for the web app -----------------------------------------------------------------------------------


def test_household_and_village_ledgers(data: Path) -> None:
    plant(data, _insured)
    rows = household_ledger(data, HID, today=TODAY)
    assert {r.rule_id for r in rows} >= {"insured"} and all(r.household_id == HID for r in rows)
    assert all(r.basis and r.advice for r in rows)
    assert {r.key for r in village_ledger(data, "李庄村", today=TODAY)} == {r.key for r in rows}
    assert village_ledger(data, "411621105201", today=TODAY)


def test_village_rules_folder_applies_to_that_village_and_is_no_household(data: Path) -> None:
    from archive_builder.validate import check_data_dir

    folder = data / VILLAGE / "rules"
    folder.mkdir()
    (folder / "村规则.yaml").write_text("停用: [measure-evidence]\n", encoding="utf-8")
    assert not any(k.startswith("measure-evidence|") for k in keys(data))
    report = check_data_dir(data, today=TODAY)
    assert not any("rules" in (p.file or "") or "rules" in p.message for p in report.problems), report.problems


def test_unknown_village_is_named(data: Path) -> None:
    res = CliRunner().invoke(main, ["audit", str(data), "--village", "张庄村"])
    assert res.exit_code == 2 and "找不到村：张庄村" in res.output and "李庄村" in res.output


def test_changed_rule_file_is_read_again(data: Path) -> None:
    (data / "rules").mkdir()
    rules = data / "rules" / "r.yaml"
    rules.write_text("停用: [measure-evidence]\n", encoding="utf-8")
    assert not any(k.startswith("measure-evidence|") for k in keys(data))
    rules.write_text("停用: [visits-per-year]\n", encoding="utf-8")
    assert any(k.startswith("measure-evidence|") for k in keys(data))


@pytest.mark.parametrize("exc", [ZeroDivisionError("division by zero"), KeyError("x"), IndexError("list index"),
                                 ValueError("could not convert"), OverflowError("big"), RuntimeError("odd")])
def test_a_rule_that_cannot_be_computed_is_explained_without_python_names(exc):
    from archive_builder.checks.engine import _explain

    text = _explain(exc)
    assert type(exc).__name__ not in text and "Error" not in text
