"""A broken archive.toml or village.toml stops what it would make wrong; empty villages and an
output path that is a file are reported clearly."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from build_helpers import make_data, manifest, run_build
from click.testing import CliRunner

from archive_builder import api
from archive_builder.cli import main
from archive_builder.errors import ConfigError, ExitCode


def _set(toml: Path, pattern: str, replacement: str) -> None:
    text = toml.read_text(encoding="utf-8")
    changed = re.sub(pattern, replacement, text, count=1, flags=re.MULTILINE)
    assert changed != text
    toml.write_text(changed, encoding="utf-8")


def _files(out: Path) -> dict[str, int]:
    return {str(p.relative_to(out)): p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}


# --------------------------------------------------------------------------- archive.toml


@pytest.fixture
def one_village(tmp_path: Path) -> Path:
    return make_data(tmp_path / "data", villages=(("411621105201", "李庄村", 2),))


def test_build_stops_before_writing_on_an_archive_toml_syntax_error(one_village, tmp_path):
    _set(one_village / "archive.toml", r"^year = 2025$", "year = 2025年")
    out = tmp_path / "out"
    result = run_build(one_village, "-o", out)
    assert result.exit_code == ExitCode.input_unusable, result.output
    assert "数据目录无法使用" in result.output
    assert re.search(r"archive\.toml:\d+:\d+", result.output), result.output
    assert "提示" in result.output and "Traceback" not in result.output
    assert not out.exists()


def test_build_leaves_an_earlier_build_alone_on_a_wrong_archive_toml_value(one_village, tmp_path):
    out = tmp_path / "out"
    assert run_build(one_village, "-o", out).exit_code == ExitCode.ok
    before = _files(out)
    _set(one_village / "archive.toml", r"^income_threshold = .*$", 'income_threshold = "8050元"')
    result = run_build(one_village, "-o", out, "--force")
    assert result.exit_code == ExitCode.input_unusable, result.output
    assert "[archive.income_threshold]" in result.output and "应为数字" in result.output
    assert _files(out) == before


def test_web_build_raises_the_same_error(one_village, tmp_path):
    _set(one_village / "archive.toml", r"^year = 2025$", 'year = "二〇二五"')
    with pytest.raises(ConfigError) as caught:
        api.build(one_village, tmp_path / "out")
    assert "archive.year" in caught.value.message
    assert not (tmp_path / "out").exists()


def test_an_unknown_key_in_archive_toml_only_warns(one_village, tmp_path):
    _set(one_village / "archive.toml", r"^\[archive\]$", "[archive]\ncolour = 1")
    result = run_build(one_village, "-o", tmp_path / "out")
    assert result.exit_code == ExitCode.ok, result.output
    assert "未知设置项「colour」" in result.output


@pytest.mark.parametrize("command", [
    ["packet", "{data}", "4116211052010001", "-o", "{tmp}/p.pdf"],
    ["stats", "{data}", "-o", "{tmp}/s.xlsx"],
    ["notice", "{data}", "--village", "李庄村", "--kind", "公告", "-o", "{tmp}/n.pdf"],
    ["audit", "{data}", "-o", "{tmp}/a.xlsx"],
])
def test_commands_printing_archive_toml_values_stop_on_its_errors(one_village, tmp_path, command):
    _set(one_village / "archive.toml", r"^year = 2025$", "year = 2025年")
    argv = [a.format(data=one_village, tmp=tmp_path) for a in command]
    result = CliRunner().invoke(main, argv)
    assert result.exit_code == ExitCode.input_unusable, result.output
    assert "archive.toml" in result.output and "数据目录无法使用" in result.output
    assert [p.name for p in tmp_path.iterdir()] == ["data"]


def test_validate_still_reports_an_archive_toml_error(one_village):
    _set(one_village / "archive.toml", r"^year = 2025$", "year = 2025年")
    result = CliRunner().invoke(main, ["validate", str(one_village)])
    assert result.exit_code == ExitCode.problems, result.output
    assert "archive.toml:" in result.output and "户数 2" in result.output


# --------------------------------------------------------------------------- village.toml


@pytest.fixture
def two_villages(tmp_path: Path) -> Path:
    return make_data(tmp_path / "data", villages=(("411621105201", "李庄村", 2), ("411621105202", "王楼村", 2)))


def _village_files(out: Path, name: str) -> dict[str, int]:
    (folder,) = [p for p in out.iterdir() if p.name.endswith(name)]
    return _files(folder)


@pytest.mark.parametrize("breakage", ["missing", "syntax", "code"])
def test_a_village_with_a_broken_village_toml_is_not_built(two_villages, tmp_path, breakage):
    out = tmp_path / "out"
    assert run_build(two_villages, "-o", out).exit_code == ExitCode.ok
    before = _village_files(out, "李庄村")
    toml = next(two_villages.glob("*/village.toml"))
    assert "李庄村" in toml.parent.name
    good = toml.read_text(encoding="utf-8")
    if breakage == "missing":
        toml.rename(toml.with_name("village.toml.txt"))
    elif breakage == "syntax":
        _set(toml, r"^name = .*$", "name = 李庄村")
    else:
        _set(toml, r"^code = .*$", 'code = "41162110520"')
    result = run_build(two_villages, "-o", out, "--force")
    assert result.exit_code == ExitCode.partial, result.output
    assert "内部错误" not in result.output
    expected = {"missing": "缺少 village.toml", "syntax": "village.toml:", "code": "不是 12 位"}[breakage]
    assert expected in result.output
    assert "未生成 2 户" in result.output
    m = manifest(out)
    # the manifest describes the folder: the village's earlier boxes are still there
    assert [v["name"] for v in m["villages"]] == ["李庄村", "王楼村"]
    assert sorted(f["household_id"] for f in m["failed"]) == ["4116211052010001", "4116211052010002"]
    assert all("village.toml" in f["reason"] for f in m["failed"])
    # nothing misnamed, and the village's earlier outputs are left as they were
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "411621105201_李庄村", "411621105202_王楼村", "manifest.json"]
    assert _village_files(out, "李庄村") == before
    # fixed: the village is whole again, nothing of it rendered anew
    if breakage == "missing":
        toml.with_name("village.toml.txt").rename(toml)
    else:
        toml.write_text(good, encoding="utf-8")
    fixed = run_build(two_villages, "-o", out)
    assert fixed.exit_code == ExitCode.ok, fixed.output
    assert fixed.stdout.strip().splitlines()[-1].startswith("渲染 0 户 · 未变化 4 户"), fixed.output


def test_a_broken_village_toml_not_chosen_does_not_fail_the_build(two_villages, tmp_path):
    toml = next(p for p in two_villages.glob("*/village.toml") if "李庄村" in p.parent.name)
    _set(toml, r"^name = .*$", "name = 李庄村")
    result = run_build(two_villages, "-o", tmp_path / "out", "--village", "王楼村")
    assert result.exit_code == ExitCode.ok, result.output


@pytest.mark.parametrize("chosen", [None, "411621105201", "李庄村"])
def test_a_broken_village_named_or_the_only_one_says_why_it_is_not_built(one_village, tmp_path, chosen):
    """The village is found by its folder's code or name though its village.toml cannot be read,
    and a build with no village left to build reports its households, not an internal error."""
    toml = next(one_village.glob("*/village.toml"))
    _set(toml, r"^name = .*$", "name = 李庄村")
    result = run_build(one_village, "-o", tmp_path / "out", *(("--village", chosen) if chosen else ()))
    assert result.exit_code == ExitCode.partial, result.output
    assert "找不到村" not in result.output and "内部错误" not in result.output
    assert "village.toml 有错误，该村未生成" in result.output and "未生成 2 户" in result.output


def test_an_unknown_village_lists_a_broken_one_by_its_folder(two_villages, tmp_path):
    toml = next(p for p in two_villages.glob("*/village.toml") if "李庄村" in p.parent.name)
    _set(toml, r"^name = .*$", "name = 李庄村")
    result = run_build(two_villages, "-o", tmp_path / "out", "--village", "张湾村")
    assert result.exit_code == ExitCode.input_unusable, result.output
    assert "411621105201_李庄村（village.toml 有错误）、王楼村（411621105202）" in result.output


@pytest.mark.parametrize("command", ["stats", "audit", "notice"])
def test_reports_stop_on_a_broken_village_toml_they_would_name_wrongly(two_villages, tmp_path, command):
    toml = next(p for p in two_villages.glob("*/village.toml") if "李庄村" in p.parent.name)
    _set(toml, r"^name = .*$", "name = 李庄村")
    out = tmp_path / {"stats": "统计.xlsx", "audit": "台账.xlsx", "notice": "公示.pdf"}[command]
    args = {"stats": ["stats", two_villages, "-o", out], "audit": ["audit", two_villages, "-o", out],
            "notice": ["notice", two_villages, "--village", "411621105201", "--kind", "监测公示", "-o", out]}[command]
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == ExitCode.input_unusable, result.output
    assert "village.toml:" in result.output and not out.exists()
    if command != "notice":  # a broken village not chosen does not stop the others
        other = CliRunner().invoke(main, [*map(str, args), "--village", "王楼村"])
        assert other.exit_code in (ExitCode.ok, ExitCode.problems), other.output
        assert out.exists()


# --------------------------------------------------------------------------- empty villages


def test_an_empty_folder_in_the_data_directory_is_named(one_village):
    (one_village / "411621105204_新村").mkdir()
    (one_village / "fonts").mkdir()  # the data directory's own folders are not villages
    (one_village / "fonts" / "simfang.ttf").write_bytes(b"")
    result = CliRunner().invoke(main, ["validate", str(one_village)])
    assert "文件夹「411621105204_新村」中既没有 village.toml，也没有农户文件夹" in result.output
    assert "fonts" not in result.output
    assert "村数 1" in result.output


def test_a_village_without_households_is_named(one_village, tmp_path):
    folder = one_village / "411621105204_新村"
    folder.mkdir()
    (folder / "village.toml").write_text('code = "411621105204"\nname = "新村"\n', encoding="utf-8")
    result = CliRunner().invoke(main, ["validate", str(one_village)])
    assert "村文件夹「411621105204_新村」中没有任何农户文件夹" in result.output
    assert "村数 2" in result.output and "警告 1" in result.output
    built = run_build(one_village, "-o", tmp_path / "out")
    assert built.exit_code == ExitCode.ok, built.output
    assert "没有任何农户文件夹" in built.output


# --------------------------------------------------------------------------- output path


@pytest.mark.parametrize("below", [False, True])
def test_an_output_path_that_is_a_file_is_called_so(one_village, tmp_path, below):
    afile = tmp_path / "afile"
    afile.write_bytes(b"keep")
    result = run_build(one_village, "-o", afile / "sub" if below else afile)
    assert result.exit_code == ExitCode.output_unusable, result.output
    assert "是一个文件，不是文件夹" in result.output and "文件已存在" not in result.output
    assert "另选一个文件夹" in result.output
    assert afile.read_bytes() == b"keep"


@pytest.mark.parametrize(("text", "expected"), [
    ("year = 2025年\n", "值后面多了内容"),
    ("name = 李庄村\n", "文字要用英文双引号括起来"),
    ('name = "李庄村\n', "引号没有配对"),
    ("a = 1\na = 2\n", "同一项写了两次"),
])
def test_toml_syntax_errors_are_explained_in_chinese(tmp_path, text, expected):
    from archive_builder.config import read_toml

    path = tmp_path / "village.toml"
    path.write_text(text, encoding="utf-8")
    (problem,) = read_toml(path, "village.toml")[2]
    assert expected in problem.message and problem.line is not None
    assert not re.search(r"Expected|Invalid|Illegal|Cannot|Unterminated|Unclosed|statement", problem.message)
