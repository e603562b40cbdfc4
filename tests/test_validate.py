"""Every validation rule, both ways, with the exact messages."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest
from datadir import DEFAULT_VILLAGE, DELETE, make_id, mutate, valid_household

from archive_builder.problems import Severity
from archive_builder.records.loader import load_dataset
from archive_builder.validate import check_data_dir, format_report, validate_dataset

TODAY = date(2025, 6, 1)


@pytest.fixture
def check(make_data_dir: Any) -> Any:
    """Return ``check(*records, strict=False) -> [(severity, field, message)]``."""
    counter = iter(range(1000))

    def run(
        *records: dict[str, Any], strict: bool = False, **options: Any
    ) -> list[tuple[str, str | None, str]]:
        data = make_data_dir(list(records) or None, name=f"d{next(counter)}", **options)
        problems = validate_dataset(load_dataset(data), strict=strict, today=TODAY)
        return [(p.severity.value, p.field, p.message) for p in problems]

    return run


def one(check: Any, **changes: Any) -> list[tuple[str, str | None, str]]:
    return check(mutate(valid_household(), **changes))


def test_valid_record_is_clean(check: Any) -> None:
    assert check(valid_household()) == []


def test_positions_and_where(make_data_dir: Any) -> None:
    data = make_data_dir([mutate(valid_household(), members__2__sex="女")])
    (problem,) = validate_dataset(load_dataset(data), today=TODAY)
    assert problem.file == "冯老村/4116211052010001/household.yaml"
    assert problem.village == "冯老村" and problem.household_id == "4116211052010001"
    text = (data / problem.file).read_text("utf-8").splitlines()
    assert text[problem.line - 1].strip().startswith("sex:")


# --- ID numbers ------------------------------------------------------------------------------


def test_wrong_check_digit(check: Any) -> None:
    good = valid_household()["members"][0]["id_number"]
    bad = good[:17] + ("0" if good[17] != "0" else "1")
    assert one(check, members__0__id_number=bad) == [
        (
            "error",
            "members[0].id_number",
            f"张建国的公民身份号码 {bad} 校验位错误：应为 {good[17]}，实为 {bad[17]}",
        ),
    ]


def test_id_birth_date_invalid_and_in_future(check: Any) -> None:
    invalid = make_id("19650230", "011")
    future = make_id("20300101", "011")
    assert one(check, members__0__id_number=invalid) == [
        (
            "error",
            "members[0].id_number",
            f"张建国的公民身份号码 {invalid} 中的出生日期 19650230 不是有效日期",
        ),
    ]
    assert one(check, members__0__id_number=future) == [
        (
            "error",
            "members[0].id_number",
            f"张建国的公民身份号码 {future} 中的出生日期 2030-01-01 晚于今天",
        ),
    ]


def test_id_read_as_integer_by_yaml_is_accepted(check: Any) -> None:
    number = valid_household()["members"][0]["id_number"]
    if number[-1] != "X":
        assert one(check, members__0__id_number=int(number)) == []


def test_lowercase_x_is_a_warning(check: Any) -> None:
    number = next(
        make_id("19650101", f"0{n:02d}")
        for n in range(100)
        if make_id("19650101", f"0{n:02d}").endswith("X")
    )
    lower = number[:17] + "x"
    assert one(check, members__0__id_number=lower, members__0__sex=DELETE) == [
        ("warning", "members[0].id_number", f"公民身份号码 {lower} 末位应为大写 X"),
    ]


def test_sex_and_birth_date_must_agree_with_id(check: Any) -> None:
    assert one(check, members__0__sex="女") == [
        (
            "error",
            "members[0].sex",
            "张建国的性别填为「女」，但公民身份号码第 17 位表明是男性",
        ),
    ]
    assert one(check, members__2__birth_date="2010-03-04") == [
        (
            "error",
            "members[2].birth_date",
            "张堃的出生日期填为 2010-03-04，但公民身份号码中是 2010-03-03",
        ),
    ]


def test_relation_must_agree_with_sex(check: Any) -> None:
    assert one(check, members__2__relation="之女") == [
        (
            "error",
            "members[2].relation",
            "张堃的与户主关系为「之女」，应为女性，但性别为男",
        ),
    ]
    assert one(check, members__2__relation="儿子") == []  # a known variant of 之子


def test_ids_unique_within_and_across_villages(check: Any) -> None:
    villages = [
        DEFAULT_VILLAGE,
        {
            **DEFAULT_VILLAGE,
            "folder": "王楼村",
            "code": "411621105202",
            "name": "王楼村",
        },
    ]
    first = valid_household()
    second = valid_household("4116211052020001", serial=1)
    second["members"][1] = dict(first["members"][1])
    second["_village"] = "王楼村"
    number = first["members"][1]["id_number"]
    # both households get the error (either may hold someone else's number), each naming the other
    assert check(first, second, villages=villages) == [
        (
            "error",
            "members[1].id_number",
            (
                f"公民身份号码 {number}（李秀英）重复：王楼村 户 4116211052020001（王楼村/4116211052020001/household.yaml）"
                "第 2 位成员李秀英也使用了这个号码"
            ),
        ),
        (
            "error",
            "members[1].id_number",
            (
                f"公民身份号码 {number}（李秀英）重复：冯老村 户 4116211052010001（冯老村/4116211052010001/household.yaml）"
                "第 2 位成员李秀英也使用了这个号码"
            ),
        ),
    ]
    same = valid_household()
    same["members"][2]["id_number"] = same["members"][1]["id_number"]
    same["members"][2]["relation"] = "之女"
    same["members"][2].pop("birth_date")
    assert check(same) == [
        (
            "error",
            "members[2].id_number",
            f"公民身份号码 {number}（张堃）重复：本户第 2 位成员李秀英也使用了这个号码，但姓名不同，可能有一处号码抄错了",
        ),
    ]


def test_household_ids_unique(check: Any) -> None:
    """Both households with the 户编号 get the error (in different villages a build would
    otherwise make the first)."""
    second = {**valid_household(serial=1), "_folder": "另一户"}
    assert check(valid_household(), second) == [
        (
            "error",
            "household_id",
            "户编号 4116211052010001 重复：冯老村 户 4116211052010001（冯老村/另一户/household.yaml）也使用了这个户编号",
        ),
        (
            "error",
            "household_id",
            "户编号 4116211052010001 重复：冯老村 户 4116211052010001（冯老村/4116211052010001/household.yaml）也使用了这个户编号",
        ),
    ]


# --- members ---------------------------------------------------------------------------------


def test_exactly_one_head(check: Any) -> None:
    assert one(check, members__0__relation="之父") == [
        ("error", "members", "家庭成员中没有户主")
    ]
    assert one(check, members__1__relation="户主") == [
        (
            "error",
            "members[1].relation",
            "户主不止一人：张建国 和 李秀英 的与户主关系都是「户主」",
        ),
    ]


def test_members_required_and_not_empty(check: Any) -> None:
    assert one(check, members=[]) == [
        ("error", "members", "家庭成员至少应有 1 人，实为「[]」")
    ]
    assert one(check, members=DELETE) == [
        ("error", "members", "缺少必填项「家庭成员」")
    ]


def test_missing_required_member_field(check: Any) -> None:
    assert one(check, members__1__id_number=DELETE) == [
        ("error", "members[1].id_number", "缺少必填项「公民身份号码」"),
    ]


def test_work_months(check: Any) -> None:
    assert one(check, members__0__work_months=13) == [
        (
            "error",
            "members[0].work_months",
            "张建国的务工时间 13 个月不合理：应在 0 至 12 之间",
        ),
    ]
    assert one(check, members__0__work_months=12) == []


# --- vocabularies, unknown keys, groups ------------------------------------------------------


def test_variant_labels_are_normalised_silently(check: Any, make_data_dir: Any) -> None:
    record = mutate(
        valid_household(),
        household_type="监测户",
        causes__main="因病致贫",
        causes__others=["缺劳力"],
    )
    assert check(record) == []
    data = make_data_dir([record], name="variants")
    household = load_dataset(data).villages[0].households[0].record
    assert (
        household.household_type,
        household.causes.main,
        household.causes.others,
    ) == ("防止返贫致贫对象", "因病", ["缺劳动力"])


def test_unknown_label_is_a_warning_and_an_error_under_strict(check: Any) -> None:
    expected = ("members[0].health[0]", "健康状况「体弱」不在健康状况词表中")
    assert one(check, members__0__health=["体弱"]) == [("warning", *expected)]
    assert check(
        mutate(valid_household(), members__0__health=["体弱"]), strict=True
    ) == [("error", *expected)]


def test_numeric_code_gets_its_own_hint(make_data_dir: Any) -> None:
    data = make_data_dir([mutate(valid_household(), household_type=2)])
    (problem,) = validate_dataset(load_dataset(data), today=TODAY)
    assert problem.message == "户类型「2」不在户类型词表中"
    assert problem.hint.startswith("请填写中文名称，不要用数字代码")


def test_unknown_key_is_a_warning(check: Any) -> None:
    assert one(check, members__0__nickname="老张") == [
        ("warning", "members[0].nickname", "未知字段「nickname」，已忽略"),
    ]


def test_a_misspelt_key_suggests_the_field(check: Any) -> None:
    assert one(check, members__0__ethnicty="回族") == [
        ("warning", "members[0].ethnicty", "未知字段「ethnicty」，已忽略。是否为 ethnicity（民族）？"),
    ]


def _misspell(record: dict[str, Any]) -> dict[str, Any]:
    """The reviewer's record: two required keys and an optional one misspelt."""
    out = {("househld_type" if k == "household_type" else "phnoe" if k == "phone" else k): v
           for k, v in record.items()}
    out["members"] = [dict(m) for m in record["members"]]
    out["members"][0] = {("relatoin" if k == "relation" else k): v for k, v in record["members"][0].items()}
    return out


def test_misspelt_keys_are_reported_on_their_lines_when_the_record_is_rejected(make_data_dir: Any) -> None:
    """A required key misspelt: the error says so on the misspelt key's line; the other
    unknown keys are still warned about (the rules, which report them, do not run)."""
    record = {**valid_household(), "phone": "13912345678"}
    data = make_data_dir([_misspell(record)])
    problems = validate_dataset(load_dataset(data), today=TODAY)
    text = (data / problems[0].file).read_text("utf-8").splitlines()
    found = [(p.severity.value, p.field, p.message, text[p.line - 1].strip().split(":")[0]) for p in problems]
    assert found == [
        ("error", "household_type", "缺少必填项「户类型」：键名「househld_type」是否为 household_type 的误写？",
         "househld_type"),
        ("error", "members[0].relation", "缺少必填项「与户主关系」：键名「relatoin」是否为 relation 的误写？",
         "- relatoin" if text[problems[1].line - 1].lstrip().startswith("-") else "relatoin"),
        ("warning", "phnoe", "未知字段「phnoe」，已忽略。是否为 phone（联系电话）？", "phnoe"),
    ]
    assert problems[0].hint == "请把键名「househld_type」改为 household_type"


def test_unknown_keys_are_the_same_whether_the_record_is_rejected_or_not(check: Any) -> None:
    """Read from the mapping (record rejected) or from the model (record valid): same warnings."""
    changes = dict(nickname="x", members__1__nickname="y", members__0__ethnicty="汉族",
                   causes__other_cause="z", members__2__sexx="男")
    valid = one(check, **changes)
    rejected = one(check, exit_year="不知道", **changes)
    assert len(valid) == 5
    assert sorted(valid) == sorted(p for p in rejected if p[0] == "warning")


def test_group_must_be_a_village_group(check: Any) -> None:
    assert one(check, group="第九村民组") == [
        ("warning", "group", "村民组「第九村民组」不在冯老村的村民组名单中")
    ]


# --- dates, years ----------------------------------------------------------------------------


def test_dates_not_in_the_future(check: Any) -> None:
    assert one(check, visits__0__date="2025-06-02") == [
        ("error", "visits[0].date", "走访日期 2025-06-02 晚于今天（2025-06-01）"),
    ]
    assert one(check, visits__0__date="2025-06-01") == []
    assert one(check, identified_on="2025-07") == [
        ("error", "identified_on", "识别时间 2025-07 晚于今天（2025-06-01）")
    ]
    assert (
        one(check, helpers__0__end="2027-12-31") == []
    )  # a planned end of duty may lie ahead


def test_wrong_date_values(check: Any) -> None:
    assert one(check, visits__0__date="去年五月") == [
        ("error", "visits[0].date", "走访日期应为日期，实为「去年五月」")
    ]
    assert one(check, visits__0__date="2024/05/06") == []


def test_date_to_not_before_date(check: Any) -> None:
    assert one(check, procedure__1__date_to="2016-03-09") == [
        (
            "error",
            "procedure[1].date_to",
            "公示的截止日期 2016-03-09 早于开始日期 2016-03-10",
        ),
    ]


def test_helper_end_not_before_start(check: Any) -> None:
    assert one(check, helpers__0__end="2016-01-01") == [
        (
            "error",
            "helpers[0].end",
            "帮扶责任人王强的帮扶结束时间 2016-01-01 早于开始时间 2016-05-01",
        ),
    ]


def test_exit_year(check: Any) -> None:
    assert one(check, exit_year=2013) == [
        ("error", "exit_year", "脱贫年度 2013 不合理：应在 2014 至 2025 年之间")
    ]
    assert (
        one(check, exit_year=2026)[0][2]
        == "脱贫年度 2026 不合理：应在 2014 至 2025 年之间"
    )
    assert one(check, exit_year=2014) == []
    assert one(check, exit_year="二〇一九") == [
        ("error", "exit_year", "脱贫年度应为整数，实为「二〇一九」")
    ]


# --- money, income ---------------------------------------------------------------------------


def test_money_not_negative_and_two_decimals(check: Any) -> None:
    assert one(check, measures__0__amount=-1) == [
        ("error", "measures[0].amount", "金额(元)金额 -1 为负数")
    ]
    assert one(check, measures__0__amount="12.345") == [
        ("error", "measures[0].amount", "金额(元)金额 12.345 超过两位小数")
    ]
    assert one(check, measures__0__amount=12.3) == []
    assert one(check, measures__0__amount="12.3400") == []
    assert one(check, income__0__wage__务工=-5) == [
        ("error", "income[0].wage.务工", "务工金额 -5 为负数")
    ]
    assert one(check, measures__0__amount="一千") == [
        ("error", "measures[0].amount", "金额(元)应为数字，实为「一千」")
    ]


def test_members_counted_at_least_one(check: Any) -> None:
    assert one(check, income__0__members_counted=0) == [
        ("error", "income[0].members_counted", "2024 年收入的计算人数为 0，至少应为 1"),
    ]
    assert one(check, income__0__members_counted=1) == []


def test_income_year_twice_and_in_future(check: Any) -> None:
    record = valid_household()
    record["income"].append(dict(record["income"][0]))
    assert check(record) == [
        ("error", "income[1].year", "收入情况中 2024 年出现了两次")
    ]
    assert one(check, income__0__year=2026) == [
        ("error", "income[0].year", "收入年度 2026 晚于今年")
    ]


def test_net_and_per_capita_income(make_data_dir: Any) -> None:
    data = make_data_dir()
    record = load_dataset(data).villages[0].households[0].record
    entry = record.income[0]
    assert str(entry.net_income) == "15360.5"  # 12000 + 3000.5 + 1560 − 1200
    assert str(record.per_capita_income(entry)) == "5120.17"  # ÷ 3, half up


# --- monitoring ------------------------------------------------------------------------------


def test_monitor_rules(check: Any) -> None:
    monitor = {"category": "边缘户", "risks": ["因病"], "identified_on": "2023-04"}
    assert one(check, monitor=monitor) == []
    six = {
        **monitor,
        "risks": ["因病", "因残", "因学", "因灾", "因意外事故", "缺劳动力"],
    }
    assert one(check, monitor=six) == [
        ("error", "monitor.risks", "风险类型有 6 项，最多 5 项")
    ]
    early = {
        **monitor,
        "eliminated": True,
        "eliminate_method": "帮扶消除",
        "eliminated_on": "2023-03-01",
    }
    assert one(check, monitor=early) == [
        (
            "error",
            "monitor.eliminated_on",
            "风险消除时间 2023-03-01 早于风险识别时间 2023-04",
        )
    ]
    assert one(check, monitor={**monitor, "eliminated": "是"}) == [
        ("warning", "monitor.eliminated", "已标记风险消除，但缺少风险消除时间"),
        ("warning", "monitor.eliminated", "已标记风险消除，但缺少消除方式"),
    ]


# --- evidence --------------------------------------------------------------------------------


def test_evidence_rules(check: Any) -> None:
    assert one(check, evidence__0="照片/没有的.jpg") == [
        (
            "warning",
            "evidence[0]",
            "佐证材料文件「照片/没有的.jpg」不存在，档案中将以占位页代替",
        ),
    ]
    assert one(check, evidence__1__file="../别家/银行流水.pdf") == [
        (
            "error",
            "evidence[1].file",
            "佐证材料路径「../别家/银行流水.pdf」含有「..」，指向了本户文件夹以外",
        ),
    ]
    assert one(check, measures__0__evidence__0__file="/etc/passwd") == [
        (
            "error",
            "measures[0].evidence[0].file",
            "佐证材料路径「/etc/passwd」是绝对路径，不能指向本户文件夹以外",
        ),
    ]
    assert one(check, procedure__1__evidence="佐证") == [
        ("warning", "procedure[1].evidence[0]", "佐证材料「佐证」是文件夹，不是文件"),
    ]


def test_missing_evidence_named_twice_is_one_warning(check: Any) -> None:
    record = mutate(valid_household(), evidence__0="没有.jpg")
    record["visits"][0]["evidence"] = ["没有.jpg"]
    assert check(record) == [
        (
            "warning",
            "evidence[0]",
            "佐证材料文件「没有.jpg」不存在，档案中将以占位页代替",
        )
    ]


def test_missing_evidence_suggests_the_file_meant(make_data_dir: Any) -> None:
    """Another case, another extension or one slipped character: the hint names the real file."""
    for written, meant in (("户口簿.JPG", "户口簿.jpg"), ("佐证/银行流水.PDF", "佐证/银行流水.pdf"),
                           ("户口薄.jpg", "户口簿.jpg"), ("门前.jpg", None)):
        data = make_data_dir([mutate(valid_household(), evidence__0=written)], name=f"n{len(written)}{meant}")
        (problem,) = validate_dataset(load_dataset(data), today=TODAY)
        assert problem.message == f"佐证材料文件「{written}」不存在，档案中将以占位页代替"
        if meant:
            assert problem.hint == f"本户文件夹中有「{meant}」，是否指它？请改正记录中的文件名"
        else:
            assert "注意扩展名和大小写" in problem.hint


def test_missing_evidence_never_suggests_a_file_another_entry_uses(make_data_dir: Any) -> None:
    record = valid_household()
    record["evidence"].append("户口薄.jpg")  # one slipped character from 户口簿.jpg, listed above it
    data = make_data_dir([record], name="taken")
    (problem,) = validate_dataset(load_dataset(data), today=TODAY)
    assert problem.message == "佐证材料文件「户口薄.jpg」不存在，档案中将以占位页代替"
    assert "户口簿.jpg" not in problem.hint


# --- dataset level and report ----------------------------------------------------------------


def test_village_codes_unique(check: Any) -> None:
    villages = [
        DEFAULT_VILLAGE,
        {**DEFAULT_VILLAGE, "folder": "王楼村", "name": "王楼村"},
    ]
    assert check(villages=villages) == [
        ("warning", None, "村文件夹「王楼村」中没有任何农户文件夹，该村没有档案可生成"),
        (
            "error",
            "code",
            "村代码 411621105201 重复：冯老村/village.toml（冯老村）中也使用了这个代码",
        ),
    ]


def test_report_text_and_summary(make_data_dir: Any) -> None:
    data = make_data_dir(
        [mutate(valid_household(), group="第九村民组", members__0__sex="女")]
    )
    report = check_data_dir(data, today=TODAY)
    assert report.summary.line() == "村数 1 · 户数 1 · 错误 1 · 警告 1"
    text = format_report(report)
    assert text.splitlines()[:2] == ["【冯老村】", "  户 4116211052010001"]
    assert "提示：请改为 第一村民组、第二村民组、第三村民组 之一" in text
    quiet = format_report(report, quiet=True)
    assert "第九村民组" not in quiet and quiet.endswith(
        "村数 1 · 户数 1 · 错误 1 · 警告 1"
    )


def test_strict_turns_every_warning_into_an_error(make_data_dir: Any) -> None:
    data = make_data_dir([mutate(valid_household(), group="第九村民组")])
    problems = validate_dataset(load_dataset(data), strict=True, today=TODAY)
    assert [p.severity for p in problems] == [Severity.error]


def test_every_problem_has_file_message_and_hint(
    make_data_dir: Any, tmp_path: Path
) -> None:
    record = mutate(
        valid_household(),
        members__0__sex="女",
        group="x",
        exit_year=1990,
        measures__0__amount=-1,
        evidence__0="../x.jpg",
        visits__0__date="2030-01-01",
        members__1__nick="y",
    )
    data = make_data_dir([record, {"_folder": "broken", "_text": "a: [\n"}])
    problems = validate_dataset(load_dataset(data), today=TODAY)
    assert len(problems) == 8
    for problem in problems:
        assert problem.file and problem.message and problem.hint
        assert problem.line is not None


def test_evidence_name_too_long_for_the_file_system_is_a_problem(tmp_path: Path) -> None:
    """A path component longer than the file system allows (ENAMETOOLONG) is reported, not
    raised, also where links below the household folder are looked for."""
    import yaml
    from datadir import write_data_dir

    from archive_builder.records.loader import real_path

    record = valid_household()
    record["measures"][0]["evidence"] = "x" * 500
    write_data_dir(tmp_path, [{"_text": yaml.safe_dump(record, allow_unicode=True), "_format": "yaml", "_folder": "h"}])
    problems = validate_dataset(load_dataset(tmp_path), today=date(2025, 6, 1))
    assert any("路径过长" in p.message and p.field == "measures[0].evidence[0]" for p in problems)
    assert real_path(tmp_path, "x" * 500).endswith("x" * 500)
