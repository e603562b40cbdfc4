"""Loading a data directory: layout, syntax errors with positions, evidence paths, fast path."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any

import pytest
from datadir import DEFAULT_VILLAGE, make_id, mutate, valid_household, write_household

from archive_builder.config import ArchiveConfig, load_archive_config
from archive_builder.errors import DataDirError, ExitCode, HouseholdNotFoundError
from archive_builder.records.loader import (
    OUTPUT_MARKER,
    EvidencePathError,
    find_similar_ids,
    item_number,
    load_dataset,
    load_household,
    resolve_evidence,
    typed_household_id,
)
from archive_builder.records.models import Household


def only(dataset: Any) -> Any:
    (village,) = dataset.villages
    (household,) = village.households
    return household


def test_valid_data_dir_loads(make_data_dir: Any) -> None:
    data = make_data_dir()
    dataset = load_dataset(data)
    assert dataset.config.archive.county == "扶沟县"
    assert dataset.config.print.sheets_per_box == 200
    assert dataset.problems == []
    village = dataset.villages[0]
    assert (village.config.code, village.config.name, village.display) == (
        "411621105201",
        "冯老村",
        "冯老村/village.toml",
    )
    household = only(dataset)
    assert isinstance(household.record, Household)
    assert household.household_id == "4116211052010001"
    assert household.display == "冯老村/4116211052010001/household.yaml"
    assert household.problems == []
    assert (
        household.position("members[1].id_number")
        == (household.positions["members[1].id_number"])
    )
    assert (
        household.position("members[1].no_such_key")
        == household.positions["members[1]"]
    )


def test_missing_archive_toml_is_unusable(tmp_path: Path) -> None:
    with pytest.raises(DataDirError) as caught:
        load_dataset(tmp_path)
    assert caught.value.exit_code == ExitCode.input_unusable
    assert caught.value.message == f"{tmp_path} 中没有 archive.toml，不是数据目录"


def test_data_dir_that_is_a_file(tmp_path: Path) -> None:
    file = tmp_path / "x.txt"
    file.write_text("x")
    with pytest.raises(DataDirError, match="不是文件夹"):
        load_dataset(file)


def test_toml_syntax_error_has_line_and_column_and_households_still_load(
    make_data_dir: Any,
) -> None:
    data = make_data_dir(archive='[archive]\ncounty = "扶沟县\nyear = 2025\n')
    dataset = load_dataset(data)
    (problem,) = dataset.problems
    assert problem.is_error and problem.file == "archive.toml"
    assert (problem.line, problem.column) == (2, 14)
    assert problem.message.startswith("archive.toml 格式错误（TOML 语法）：")
    assert only(dataset).record is not None


def test_unknown_toml_key_is_a_warning_with_line(make_data_dir: Any) -> None:
    data = make_data_dir(archive='[archive]\nyear = 2025\ncountry = "x"\n')
    (problem,) = load_dataset(data).problems
    assert not problem.is_error
    assert (problem.line, problem.field) == (3, "archive.country")
    assert problem.message == "archive.toml [archive] 中的未知设置项「country」，已忽略"


def test_wrong_toml_value_keeps_the_rest(make_data_dir: Any) -> None:
    data = make_data_dir(
        archive='[archive]\nyear = 2025\ncounty = "扶沟县"\n[print]\nduplex = "是"\n'
    )
    dataset = load_dataset(data)
    (problem,) = dataset.problems
    assert (
        problem.message == "archive.toml 中「print.duplex」的值不对：应为 true 或 false"
    )
    assert problem.line == 5
    assert dataset.config.archive.county == "扶沟县"
    assert dataset.config.print.duplex is True


@pytest.mark.parametrize(("written", "kept"), [("定期30年", "30年"), ("30 年", "30年"), ("定期１０年", "10年")])
def test_retention_as_da_t_22_writes_it(make_data_dir: Any, written: str, kept: str) -> None:
    data = make_data_dir(archive=f'[archive]\nyear = 2025\nretention = "{written}"\n')
    dataset = load_dataset(data)
    assert dataset.problems == [] and dataset.config.archive.retention == kept


def test_retention_not_allowed_lists_the_choices_in_chinese(make_data_dir: Any) -> None:
    data = make_data_dir(archive='[archive]\nyear = 2025\nretention = "长期"\n')
    (problem,) = load_dataset(data).problems
    assert problem.message == "archive.toml 中「archive.retention」的值不对：应为「永久」「30年」「10年」之一"
    data = make_data_dir(archive='[archive]\nyear = 2025\n[print]\nspine_width_mm = 25\n', name="spine")
    (problem,) = load_dataset(data).problems
    assert problem.message.endswith("应为「20」「30」「40」「50」之一")


def test_config_layers_and_build_date(tmp_path: Path) -> None:
    path = tmp_path / "archive.toml"
    path.write_text(
        '[archive]\nyear = 2025\n[build]\ndate = 2025-03-01\n[fonts]\nbody = "fonts/x.ttf"\n',
        "utf-8",
    )
    config, problems = load_archive_config(path)
    assert problems == []
    assert str(config.build.date) == "2025-03-01"
    assert config.fonts == {"body": "fonts/x.ttf"}
    changed = config.with_overrides(print__duplex=False, build__date=None)
    assert changed.print.duplex is False and str(changed.build.date) == "2025-03-01"
    assert ArchiveConfig().print.duplex is True


def test_bad_village_code_and_missing_name(make_data_dir: Any) -> None:
    village = {"folder": "三里村", "toml": 'code = "4116"\n'}
    data = make_data_dir([], villages=[village])
    messages = [p.message for p in load_dataset(data).problems]
    assert messages == [
        "三里村/village.toml 未设置村名 name，暂用文件夹名「三里村」",
        "三里村/village.toml 村代码「4116」不是 12 位统计用区划代码",
        "村文件夹「三里村」中没有任何农户文件夹，该村没有档案可生成",
    ]


def test_folder_with_households_but_no_village_toml(make_data_dir: Any) -> None:
    data = make_data_dir()
    write_household(
        data / "李庄村" / "4116211052020001",
        valid_household("4116211052020001", serial=1),
    )
    (data / "文档").mkdir()  # no households: silently not a village
    dataset = load_dataset(data)
    (problem,) = dataset.problems
    assert problem.is_error and problem.file == "李庄村"
    assert (
        problem.message == "文件夹「李庄村」中有农户数据，但缺少 village.toml，未读取"
    )
    assert len(dataset.villages) == 1


@pytest.mark.parametrize("name", ["templates", ".git", "out"])
def test_skipped_folders(make_data_dir: Any, name: str) -> None:
    data = make_data_dir()
    folder = data / name
    write_household(folder / "x" / "y", valid_household("9"))
    (folder / "village.toml").write_text('code = "411621105209"\nname = "x"\n', "utf-8")
    if name == "out":
        (folder / OUTPUT_MARKER).write_text("")
    dataset = load_dataset(data)
    assert [v.config.name for v in dataset.villages] == ["冯老村"]


def test_a_household_folder_without_its_record_is_an_error_naming_the_file(make_data_dir: Any) -> None:
    """Windows hides extensions: "household.yaml" saved by Notepad is household.yaml.txt. The
    household is there, unreadable (an error; the build keeps its 件号); a folder that does
    not look like a household's is only a warning."""
    data = make_data_dir()
    misnamed = data / "冯老村" / "4116211052010002_张三"
    misnamed.mkdir()
    (misnamed / "household.yaml.txt").write_text("household_id: '4116211052010002'\n", "utf-8")
    (misnamed / "门前.jpg").write_bytes(b"x")
    (data / "冯老村" / "4116211052010003").mkdir()  # named like a household: its record is missing
    (data / "冯老村" / "空文件夹").mkdir()
    dataset = load_dataset(data)
    good, hidden, empty = dataset.villages[0].households
    assert good.record is not None
    assert (hidden.household_id, hidden.record, hidden.file) == ("4116211052010002", None, None)
    (problem,) = hidden.problems
    assert problem.is_error and problem.village == "冯老村" and problem.household_id == "4116211052010002"
    assert problem.file == "冯老村/4116211052010002_张三/household.yaml.txt"
    assert problem.message == (
        "户文件夹「4116211052010002_张三」中没有记录文件 household.yaml，只有 household.yaml.txt，这一户无法读取"
    )
    assert problem.hint.startswith("请把 household.yaml.txt 改名为 household.yaml（") and "文件扩展名" in problem.hint
    assert empty.household_id == "4116211052010003" and empty.problems[0].is_error
    assert empty.problems[0].message == "户文件夹「4116211052010003」中没有记录文件 household.yaml，这一户无法读取"
    (warned,) = dataset.problems
    assert warned.file == "冯老村/空文件夹" and not warned.is_error
    assert warned.message.endswith("这一户未读取")
    assert item_number(data / "冯老村", "4116211052010003") == 3  # packet numbers it as build does


def test_a_household_folder_unzipped_one_level_too_deep(make_data_dir: Any) -> None:
    data = make_data_dir()
    outer = data / "冯老村" / "4116211052010002"
    write_household(outer / "4116211052010002", valid_household("4116211052010002", serial=1))
    dataset = load_dataset(data)
    _, nested = dataset.villages[0].households
    (problem,) = nested.problems
    assert problem.is_error and "它在下一层的「4116211052010002」文件夹中" in problem.message
    assert problem.hint.startswith("请把「4116211052010002」中的全部文件移到「4116211052010002」中")


def test_load_household_of_a_folder_with_a_misnamed_record(make_data_dir: Any) -> None:
    """packet of that household says which file to rename (not 找不到该户)."""
    data = make_data_dir()
    folder = data / "冯老村" / "4116211052010002"
    write_household(folder, valid_household("4116211052010002", serial=1))
    (folder / "household.yaml").rename(folder / "household.yaml.txt")
    dataset = load_household(data, "4116211052010002")
    (household,) = dataset.villages[0].households
    (problem,) = household.problems
    assert problem.is_error and problem.hint.startswith("请把 household.yaml.txt 改名为 household.yaml")
    assert problem.village == "冯老村"


def test_two_record_files_in_one_folder(make_data_dir: Any) -> None:
    data = make_data_dir()
    folder = data / "冯老村" / "4116211052010001"
    write_household(folder, valid_household(), fmt="json")
    household = only(load_dataset(data))
    assert household.record is None
    (problem,) = household.problems
    assert (
        problem.message
        == "本户文件夹中有多个记录文件：household.yaml、household.json，无法确定用哪一个"
    )


def test_yaml_syntax_error_is_a_problem_and_others_still_load(
    make_data_dir: Any,
) -> None:
    broken = {
        "household_id": "2",
        "_folder": "broken",
        "_text": "household_id: '2'\nmembers:\n  - name: 张三\n   relation: 户主\n",
    }
    data = make_data_dir([valid_household(), broken])
    dataset = load_dataset(data)
    good, bad = dataset.villages[0].households
    assert good.record is not None and good.problems == []
    assert bad.record is None and bad.raw is None
    assert bad.household_id == "broken"  # no record: the folder name stands in
    (problem,) = bad.problems
    assert (problem.file, problem.line, problem.column) == (
        "冯老村/broken/household.yaml",
        4,
        4,
    )
    assert problem.message.startswith("YAML 格式错误：")


def test_tab_indentation_message(make_data_dir: Any) -> None:
    data = make_data_dir(
        [{"_folder": "t", "_text": "household_id: '1'\nmembers:\n\t- name: x\n"}]
    )
    (problem,) = only(load_dataset(data)).problems
    assert "含有制表符（Tab）" in problem.message
    assert problem.hint == "YAML 只能用空格缩进，请把 Tab 换成空格"
    assert problem.line == 3


@pytest.mark.parametrize(
    ("text", "what"),
    [
        ("household_id: '1'\ngroup: 1\n\taddress: x\n", "含有制表符（Tab）"),
        ("household_id: '1'\ngroup: @一组\n", "含有不能作为值开头的字符（如 @、`、%）"),
        ("household_id: '1'\ngroup: [一组\n", "方括号「[」没有闭合，或列表的各项之间缺少英文逗号"),
        ("household_id: '1'\ngroup: - 一组\n", "此处不能出现列表项「- 」"),
        ("household_id: '1'\ngroup: \x07\n", "含有不允许的字符 U+0007"),
    ],
)
def test_yaml_errors_are_chinese_and_name_the_file_once(make_data_dir: Any, text: str, what: str) -> None:
    """The location says which file: the message does not repeat it, nor PyYAML's English."""
    data = make_data_dir([{"_folder": "y", "_text": text}])
    (problem,) = only(load_dataset(data)).problems
    assert problem.message == f"YAML 格式错误：{what}"
    assert problem.line is not None and problem.file == "冯老村/y/household.yaml"
    assert problem.format().count("household.yaml") == 1
    assert not re.search("[a-z]{4,}", problem.message + (problem.hint or "")), problem.message


def test_json_record_with_positions(make_data_dir: Any) -> None:
    data = make_data_dir([{**valid_household(), "_format": "json"}])
    household = only(load_dataset(data))
    assert household.record is not None and household.problems == []
    line, column = household.position("members[1].id_number")
    text = household.file.read_text("utf-8").splitlines()
    assert text[line - 1][column - 1 :].startswith('"id_number"')


def test_json_syntax_error_has_line_and_column(make_data_dir: Any) -> None:
    data = make_data_dir(
        [
            {
                "_folder": "j",
                "_format": "json",
                "_text": '{\n  "household_id": "1",\n  "members": [}\n',
            }
        ]
    )
    (problem,) = only(load_dataset(data)).problems
    assert (problem.line, problem.column) == (3, 15)
    assert (
        problem.message
        == "JSON 格式错误：缺少值或有多余的逗号"
    )


def test_gbk_file_is_read_with_a_warning(make_data_dir: Any) -> None:
    text = "household_id: '1'\nhousehold_type: 脱贫户\n"
    data = make_data_dir([{"_folder": "g", "_text": text.encode("gbk")}])
    household = only(load_dataset(data))
    assert household.raw == {"household_id": "1", "household_type": "脱贫户"}
    assert (
        household.problems[0].message
        == "文件是 GBK 编码，已按 GBK 读取"
    )
    assert not household.problems[0].is_error


def test_empty_or_non_mapping_file(make_data_dir: Any) -> None:
    data = make_data_dir(
        [{"_folder": "e", "_text": ""}, {"_folder": "l", "_text": "- 1\n- 2\n"}]
    )
    empty, listed = load_dataset(data).villages[0].households
    assert (
        empty.problems[0].message
        == "文件的内容应为「键: 值」形式的一户数据，但文件是空的"
    )
    assert (
        listed.problems[0].message
        == "文件的内容应为「键: 值」形式的一户数据"
    )


def test_duplicate_key_is_an_error_naming_both_lines(make_data_dir: Any) -> None:
    data = make_data_dir(
        [{"_folder": "d", "_text": "household_id: '1'\ngroup: 一组\ngroup: 二组\n"}]
    )
    problem = only(load_dataset(data)).problems[0]
    assert (
        problem.message == "键「group」重复出现（第 2 行和第 3 行），只有后一个会被读取"
    )
    assert (problem.line, problem.field) == (3, "group")


def test_impossible_yaml_date_becomes_a_located_problem(make_data_dir: Any) -> None:
    text = valid_household_text().replace("date: '2024-05-06'", "date: 2024-02-30")
    data = make_data_dir([{"_folder": "x", "_text": text}])
    household = only(load_dataset(data))
    assert household.record is None
    assert household.partial is not None  # the rest can still be checked
    (problem,) = household.problems
    assert problem.field == "visits[0].date"
    assert problem.message == "走访日期不是有效日期，实为「2024-02-30」"
    assert problem.line == household.positions["visits[0].date"][0]


def valid_household_text() -> str:
    import yaml

    return yaml.safe_dump(valid_household(), allow_unicode=True, sort_keys=False)


def test_loading_never_writes_into_the_data_dir(make_data_dir: Any) -> None:
    data = make_data_dir([valid_household(), {"_folder": "b", "_text": "a: [1\n"}])

    def snapshot() -> dict[str, str]:
        return {
            str(p): hashlib.sha256(p.read_bytes()).hexdigest()
            + str(p.stat().st_mtime_ns)
            for p in sorted(data.rglob("*"))
            if p.is_file()
        }

    before = snapshot()
    load_dataset(data)
    load_household(data, "4116211052010001")
    assert snapshot() == before


# --- evidence paths --------------------------------------------------------------------------


def test_evidence_inside_the_folder(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    assert resolve_evidence(tmp_path, "a/b.jpg") == (tmp_path / "a" / "b.jpg").resolve()
    assert (
        resolve_evidence(tmp_path, "a\\b.jpg") == (tmp_path / "a" / "b.jpg").resolve()
    )  # Windows


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("../x.jpg", "parent"),
        ("a/../../x.jpg", "parent"),
        ("/etc/passwd", "absolute"),
        ("C:\\照片\\x.jpg", "absolute"),
        ("..\\x.jpg", "parent"),
        ("  ", "empty"),
    ],
)
def test_evidence_paths_that_leave_the_folder(
    tmp_path: Path, path: str, code: str
) -> None:
    with pytest.raises(EvidencePathError) as caught:
        resolve_evidence(tmp_path, path)
    assert caught.value.code == code


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symlinks")
def test_symlink_leaving_the_folder(tmp_path: Path) -> None:
    folder = tmp_path / "household"
    folder.mkdir()
    (tmp_path / "secret.jpg").write_bytes(b"x")
    (folder / "link.jpg").symlink_to(tmp_path / "secret.jpg")
    (folder / "inside.jpg").write_bytes(b"x")
    (folder / "ok.jpg").symlink_to(folder / "inside.jpg")
    with pytest.raises(EvidencePathError) as caught:
        resolve_evidence(folder, "link.jpg")
    assert caught.value.code == "escape"
    assert resolve_evidence(folder, "ok.jpg") == (folder / "inside.jpg").resolve()


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symlinks")
def test_linked_subfolder_leaving_the_folder_and_relative_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the components below the household folder are checked one by one: a linked
    subfolder is still followed, and a relative folder name means the current directory's."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "a.jpg").write_bytes(b"x")
    for name in ("one", "two"):
        folder = tmp_path / name / "household"
        (folder / "照片").mkdir(parents=True)
        (folder / "照片" / "门前.jpg").write_bytes(b"x")
        (folder / "scans").symlink_to(outside, target_is_directory=True)
    with pytest.raises(EvidencePathError) as caught:
        resolve_evidence(tmp_path / "one" / "household", "scans/a.jpg")
    assert caught.value.code == "escape"
    for name in ("one", "two"):
        monkeypatch.chdir(tmp_path / name)
        found = resolve_evidence(Path("household"), "照片/门前.jpg")
        assert found == (tmp_path / name / "household" / "照片" / "门前.jpg").resolve()


# --- one household, fast ---------------------------------------------------------------------


def test_load_household_by_folder_or_by_id(make_data_dir: Any) -> None:
    other = {**valid_household("4116211052010002", serial=1), "_folder": "王二家"}
    data = make_data_dir([valid_household(), other])
    dataset = load_household(data, "4116211052010002")
    (village,) = dataset.villages
    (household,) = village.households
    assert household.household_id == "4116211052010002"
    assert household.folder.name == "王二家"
    assert dataset.problems == []


def test_load_household_unknown_id_suggests_near_ones(make_data_dir: Any) -> None:
    data = make_data_dir()
    with pytest.raises(HouseholdNotFoundError) as caught:
        load_household(data, "4116211052010009")
    assert caught.value.exit_code == ExitCode.input_unusable
    assert (
        caught.value.message
        == f"数据目录 {data} 中没有户编号为 4116211052010009 的农户"
    )
    assert caught.value.hint == "相近的户编号：4116211052010001"


def test_load_household_by_a_members_name_lists_the_households(make_data_dir: Any) -> None:
    """A secretary types the head's name instead of the 户编号: the hint lists who has it."""
    data = make_data_dir([valid_household(), valid_household("4116211052010002", serial=1)])
    with pytest.raises(HouseholdNotFoundError) as caught:
        load_household(data, "张堃")
    assert caught.value.hint == (
        "「张堃」不是户编号，请改用户编号生成。家庭成员中有此人的农户：4116211052010001（冯老村/4116211052010001）、"
        "4116211052010002（冯老村/4116211052010002）"
    )
    with pytest.raises(HouseholdNotFoundError) as caught:
        load_household(data, "张建")  # part of a name is not a name
    assert "家庭成员中有" not in caught.value.hint


def test_typed_household_id_drops_spaces_and_full_width_digits() -> None:
    assert typed_household_id(" ４１１６２１１０５２０１０００１\t") == "4116211052010001"
    assert typed_household_id("4116 2110 5201 0001") == "4116211052010001"


def test_load_household_reports_clashes_with_other_files(make_data_dir: Any) -> None:
    first = valid_household()
    second = valid_household("4116211052010002", serial=1)
    second["members"][1] = dict(first["members"][1])
    data = make_data_dir([first, second])
    dataset = load_household(data, "4116211052010002")
    (problem,) = dataset.problems
    assert problem.field == "members[1].id_number"
    # the words of validate and build: the other household's village, file, member and name
    assert problem.message == (
        f"公民身份号码 {first['members'][1]['id_number']}（李秀英）重复：冯老村 户 4116211052010001"
        "（冯老村/4116211052010001/household.yaml）第 2 位成员李秀英也使用了这个号码"
    )
    assert problem.line is not None
    second["members"][1]["name"] = "李秀华"
    write_household(data / "冯老村" / "4116211052010002", second)
    (problem,) = load_household(data, "4116211052010002").problems
    assert problem.message.endswith("第 2 位成员李秀英也使用了这个号码，但姓名不同，可能有一处号码抄错了")
    (problem,) = load_household(data, "4116211052010001").problems  # the first is refused as well
    assert problem.message.endswith("第 2 位成员李秀华也使用了这个号码，但姓名不同，可能有一处号码抄错了")


def test_find_similar_ids() -> None:
    ids = ["4116211052010001", "4116211052010002", "4116211052020001", "9"]
    assert find_similar_ids(ids, "411621105201001")[0] == "4116211052010001"
    assert find_similar_ids(ids, "0001") == ["4116211052010001", "4116211052020001"]
    assert find_similar_ids([], "1") == []


def test_village_folder_sample_layout(make_data_dir: Any) -> None:
    villages = [
        DEFAULT_VILLAGE,
        {
            **DEFAULT_VILLAGE,
            "folder": "411621105202_王楼村",
            "code": "411621105202",
            "name": "王楼村",
        },
    ]
    second = {
        **valid_household("4116211052020001", serial=2),
        "_village": "411621105202_王楼村",
    }
    data = make_data_dir([valid_household(), second], villages=villages)
    dataset = load_dataset(data)
    assert sorted(dataset.household_ids()) == ["4116211052010001", "4116211052020001"]
    assert make_id() == "41162119850312003" + make_id()[-1]
    assert mutate({"a": [1]}, a__0=2) == {"a": [2]}


def test_near_matches_rank_one_digit_typos_first():
    from archive_builder.records.loader import find_similar_ids

    ids = [f"41162110520100{i:02d}" for i in range(1, 19)]
    assert find_similar_ids(ids, "4116211052010091")[:2] == ["4116211052010001", "4116211052010011"]
    assert find_similar_ids(ids, "411621105201007")[0] == "4116211052010007"  # a digit left out
    assert find_similar_ids(ids, "0007") == ["4116211052010007"]  # only the last digits typed


def test_a_data_dir_without_villages_is_a_warning(tmp_path):
    from archive_builder.records.loader import load_dataset

    (tmp_path / "archive.toml").write_text('[archive]\ncounty = "清河县"\nyear = 2025\n', encoding="utf-8")
    dataset = load_dataset(tmp_path)
    assert [p.message for p in dataset.problems] == ["数据目录中没有任何村：没有找到含 village.toml 的村文件夹"]
    assert not dataset.problems[0].is_error


_YAML_CASES = [
    "household_id: '1'\ngroup: 一组\ngroup: 二组\nmembers:\n  - name: 甲\n    name: 乙\n",
    (
        "a: &x {b: 1, c: [1, 2.5, true, null, 2024-05-06, 2024-02-30]}\nd: *x\ne: *x\n2023: 年\n"
        "f: !!str 12\ng: 0x1F\nh: .inf\n"
    ),
    "base: &b {x: 1, y: 2}\nderived:\n  <<: *b\n  y: 3\n",  # merge key: PyYAML's route
    "s: !!set {a, b}\nlist:\n- - 1\n  - 2\n- {k: v, k: w}\n",  # explicit tag: PyYAML's route
    "[1, 2]: a\n",  # a key that is not a scalar
    "x: &r [1, *r]\n",  # an alias inside itself
    "one: 1\n",
]


@pytest.mark.parametrize("text", _YAML_CASES)
def test_one_pass_yaml_builder_equals_pyyaml_route(text: str, monkeypatch: Any) -> None:
    """The one-pass builder gives the data, key positions and problems that walking the
    nodes and then ``construct_document`` gave (which documents it leaves to them is its
    own business)."""
    from archive_builder.records import loader

    def parse() -> Any:
        parsed = loader._Parsed()
        loader._parse_yaml(text, "x/household.yaml", parsed)
        return parsed

    new = parse()

    def unusual(*args: Any, **kwargs: Any) -> Any:
        raise loader._Unusual

    monkeypatch.setattr(loader._YamlBuilder, "value", unusual)
    old = parse()
    assert new.ok == old.ok == ("[1, 2]" not in text)  # a list cannot be a key
    if "&r" in text:  # recursive: compare the shape, the objects refer to themselves
        assert new.data["x"][1] is new.data["x"] and old.data["x"][1] is old.data["x"]
    else:
        assert new.data == old.data
    assert new.positions == old.positions
    assert [p.to_json() for p in new.problems] == [p.to_json() for p in old.problems]
    if "d: *x" in text:  # an alias is the same object, as PyYAML makes it
        assert new.data["d"] is new.data["e"] is new.data["a"]


def test_yaml_left_to_pyyaml_keeps_the_encoding_warning(tmp_path: Path) -> None:
    """A GBK file whose YAML the one-pass builder leaves to PyYAML (a merge key) still
    reports that it was read as GBK."""
    from archive_builder.records import loader

    path = tmp_path / "household.yaml"
    path.write_bytes("base: &b {村: 李庄}\nhome:\n  <<: *b\n  组: 一组\nhome2: 重复\nhome2: 再次\n".encode("gbk"))
    parsed = loader.read_record_file(path, "x/household.yaml")
    assert parsed.ok and parsed.data["home"] == {"村": "李庄", "组": "一组"}
    messages = [p.message for p in parsed.problems]
    assert messages[0] == "文件是 GBK 编码，已按 GBK 读取"
    assert any("键「home2」重复出现" in m for m in messages) and len(messages) == 2


def test_loader_tags_scalars_as_pyyaml_does() -> None:
    import yaml

    from archive_builder.records.loader import load_yaml

    text = (
        "a: 2024-01-02\nb: '2024-01-02'\nc: yes\nd: \"yes\"\ne: 1.5\nf: '1.5'\ng: ~\nh: null\n"
        "i: 0x1f\nj: 是\nk: [1, '1', true, 'true']\nl: {m: 2024-02-30, n: .inf}\n"
        "'2024-01-02': plain\n2024-01-02: dated\n"
    )
    twice = [load_yaml(text), load_yaml(text)]  # the second from the loader's memo
    expected = yaml.safe_load(text.replace("2024-02-30", "'2024-02-30'"))
    assert twice[0] == twice[1] == expected


@pytest.mark.parametrize(
    ("value", "what"),
    [('"第一行\\v第二行"', "控制字符"), ('"A\\uFFFEB"', "控制字符"), ("|\n  " + "长" * 10_001, "太长")],
)
def test_text_checks_of_a_yaml_record_name_field_and_line(tmp_path: Path, value: str, what: str) -> None:
    from archive_builder.records.loader import read_record_file

    path = tmp_path / "household.yaml"
    path.write_text(f"household_id: '1'\nhead:\n  name: 张三\nnotes: {value}\n", encoding="utf-8")
    parsed = read_record_file(path, "村/1/household.yaml")
    [problem] = parsed.problems
    assert what in problem.message
    assert (problem.file, problem.line, problem.field) == ("村/1/household.yaml", 4, "notes")
    assert "\v" not in parsed.data["notes"] and len(parsed.data["notes"]) <= 10_000
