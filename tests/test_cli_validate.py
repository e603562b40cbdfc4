"""The ``validate`` command: exit codes, text and JSON output, the issue-2 "done when" scenario."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from datadir import DEFAULT_VILLAGE, mutate, valid_household

from archive_builder import __version__
from archive_builder.cli import main
from archive_builder.errors import ExitCode
from archive_builder.records.idnumber import CHECK_CHARS

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "households_sample"
TODAY = "2025-06-01"


def run(*args: str) -> Any:
    return CliRunner().invoke(main, list(args))


def test_version() -> None:
    result = run("--version")
    assert result.exit_code == ExitCode.ok, result.output
    assert result.output.strip() == f"archive-builder {__version__}"


def test_help_is_chinese() -> None:
    result = run("--help")
    assert result.exit_code == ExitCode.ok, result.output
    assert "用法：" in result.output
    assert "validate" in result.output and "检查数据目录" in result.output
    assert "显示本帮助并退出" in result.output


def test_clean_data_dir_exits_0_with_summary(make_data_dir: Any) -> None:
    data = make_data_dir()
    result = run("validate", str(data), "--today", TODAY)
    assert result.exit_code == ExitCode.ok, result.output
    assert result.output.strip() == "村数 1 · 户数 1 · 错误 0 · 警告 0"


def test_errors_exit_1_grouped_by_village_and_household(make_data_dir: Any) -> None:
    bad = mutate(valid_household(), members__0__sex="女")
    data = make_data_dir([bad])
    result = run("validate", str(data), "--today", TODAY)
    assert result.exit_code == ExitCode.problems, result.output
    lines = result.output.splitlines()
    assert lines[0] == "【冯老村】"
    assert lines[1] == "  户 4116211052010001"
    assert lines[2].startswith("    错误 冯老村/4116211052010001/household.yaml:")
    assert (
        "[members[0].sex]：张建国的性别填为「女」，但公民身份号码第 17 位表明是男性"
        in lines[2]
    )
    assert lines[3] == "        提示：请核对身份证原件，改正性别或公民身份号码"
    assert lines[-1] == "村数 1 · 户数 1 · 错误 1 · 警告 0"


def test_warnings_exit_0_but_1_under_strict(make_data_dir: Any) -> None:
    data = make_data_dir([mutate(valid_household(), household_type="某种新户型")])
    result = run("validate", str(data), "--today", TODAY)
    assert result.exit_code == ExitCode.ok, result.output
    assert result.output.splitlines()[-1] == "村数 1 · 户数 1 · 错误 0 · 警告 1"
    strict = run("validate", str(data), "--strict", "--today", TODAY)
    assert strict.exit_code == ExitCode.problems, strict.output
    assert strict.output.splitlines()[-1] == "村数 1 · 户数 1 · 错误 1 · 警告 0"


def test_quiet_hides_warnings_keeps_summary(make_data_dir: Any) -> None:
    data = make_data_dir([mutate(valid_household(), household_type="某种新户型")])
    result = run("-q", "validate", str(data), "--today", TODAY)
    assert result.exit_code == ExitCode.ok, result.output
    assert result.output.strip() == "村数 1 · 户数 1 · 错误 0 · 警告 1"


def test_json_output(make_data_dir: Any) -> None:
    data = make_data_dir([mutate(valid_household(), members__0__sex="女")])
    result = run("validate", str(data), "--json", "--today", TODAY)
    assert result.exit_code == ExitCode.problems, result.output
    document = json.loads(result.stdout)
    assert document["summary"] == {
        "villages": 1,
        "households": 1,
        "errors": 1,
        "warnings": 0,
    }
    (problem,) = document["problems"]
    assert list(problem) == [
        "severity",
        "file",
        "line",
        "column",
        "village",
        "household_id",
        "field",
        "message",
        "hint",
    ]
    assert problem["severity"] == "error"
    assert problem["file"] == "冯老村/4116211052010001/household.yaml"
    assert problem["field"] == "members[0].sex"
    assert problem["village"] == "冯老村"
    assert problem["household_id"] == "4116211052010001"
    assert isinstance(problem["line"], int) and isinstance(problem["column"], int)
    assert "张建国" in result.stdout  # ensure_ascii=False


def test_missing_archive_toml_exits_2(tmp_path: Path) -> None:
    result = run("validate", str(tmp_path))
    assert result.exit_code == ExitCode.input_unusable, result.output
    assert result.stderr.startswith(
        f"数据目录错误：{tmp_path} 中没有 archive.toml，不是数据目录\n提示："
    )
    assert "Traceback" not in result.output


def test_missing_data_dir_exits_2(tmp_path: Path) -> None:
    result = run("validate", str(tmp_path / "nope"))
    assert result.exit_code == ExitCode.input_unusable, result.output
    assert (
        result.stderr
        == f"数据目录错误：数据目录不存在：{tmp_path / 'nope'}\n提示：请检查路径是否写对\n"
    )


def test_unexpected_exception_is_internal_error(
    make_data_dir: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from archive_builder import validate

    def boom(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("测试用的故障")

    monkeypatch.setattr(validate, "check_data_dir", boom)
    result = run("validate", str(make_data_dir()))
    assert result.exit_code == ExitCode.internal
    assert result.stderr.startswith("内部错误：RuntimeError: 测试用的故障\n")
    assert "请报告" in result.stderr
    assert "Traceback" not in result.stderr
    verbose = run("-v", "validate", str(make_data_dir(name="other")))
    assert verbose.exit_code == ExitCode.internal
    assert "Traceback" in verbose.stderr


def test_subprocess_smoke(make_data_dir: Any) -> None:
    data = make_data_dir()
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "archive_builder",
            "validate",
            str(data),
            "--today",
            TODAY,
        ],
        capture_output=True,
        env=env,
        cwd=REPO,
        timeout=120,
        check=False,
    )
    assert proc.returncode == ExitCode.ok, proc.stderr.decode()
    assert proc.stdout.decode("utf-8").strip() == "村数 1 · 户数 1 · 错误 0 · 警告 0"


# --- the "done when" scenario of issue 2 -------------------------------------------------------


def _households(root: Path) -> list[Path]:
    return sorted(root.glob("*/*/household.yaml"))


_FAST = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _load(path: Path) -> dict[str, Any]:
    return yaml.load(path.read_text("utf-8"), Loader=_FAST)


def _dump(path: Path, record: dict[str, Any]) -> None:
    path.write_text(
        yaml.safe_dump(record, allow_unicode=True, sort_keys=False), encoding="utf-8"
    )


def _sample_copy(tmp_path: Path, make_data_dir: Any) -> Path:
    """Return a copy of households_sample, or an equivalent made in code if it is absent."""
    if (SAMPLE / "archive.toml").is_file():
        return Path(shutil.copytree(SAMPLE, tmp_path / "sample"))
    villages = [
        DEFAULT_VILLAGE,
        {
            **DEFAULT_VILLAGE,
            "folder": "王楼村",
            "code": "411621105202",
            "name": "王楼村",
        },
    ]
    households = []
    for n in range(6):
        record = valid_household(f"41162110520{n // 3 + 1}000{n}", serial=n)
        households.append({**record, "_village": villages[n // 3]["folder"]})
    return make_data_dir(households, villages=villages, name="sample")


def test_done_when_scenario(tmp_path: Path, make_data_dir: Any) -> None:
    root = _sample_copy(tmp_path, make_data_dir)
    clean = run("validate", str(root), "--json")
    assert clean.exit_code == ExitCode.ok, clean.output
    files = _households(root)
    by_village: dict[str, list[Path]] = {}
    for file in files:
        by_village.setdefault(file.parent.parent.name, []).append(file)
    first_village, second_village = list(by_village.values())[:2]

    def families_first(paths: list[Path]) -> list[Path]:
        # households with two or more members first, so members[1] exists
        return sorted(paths, key=lambda f: len(_load(f).get("members") or []) < 2)

    first_village, second_village = (
        families_first(first_village),
        families_first(second_village),
    )

    def rel(path: Path) -> str:
        return path.relative_to(root).as_posix()

    # 1. a wrong check digit
    wrong = first_village[0]
    record = _load(wrong)
    old_id = str(record["members"][1]["id_number"])
    bad_char = next(c for c in CHECK_CHARS if c != old_id[-1])
    record["members"][1]["id_number"] = old_id[:17] + bad_char
    _dump(wrong, record)

    # 2. the same person in two villages
    source = _load(first_village[1])
    target_file = second_village[0]
    target = _load(target_file)
    copied = dict(source["members"][1])
    target["members"][1] = copied
    _dump(target_file, target)

    # 3. a YAML syntax error on line 2
    broken = first_village[2]
    lines = broken.read_text("utf-8").splitlines()
    lines.insert(1, "group: 第一村民组: 多余的冒号")
    broken.write_text("\n".join(lines) + "\n", encoding="utf-8")

    # 4. a missing evidence file, and 5. an evidence path with ".."
    missing_file = escaping_file = None
    for file in first_village[3:] + second_village[1:]:
        record = _load(file)
        refs = [
            r if isinstance(r, str) else r.get("file")
            for r in record.get("evidence") or []
        ]
        text = file.read_text("utf-8")
        once = [
            ref
            for ref in refs
            if text.count(ref) == 1 and (file.parent / ref).is_file()
        ]
        if missing_file is None and once:
            missing_file, missing_ref = file, once[0]
            (file.parent / missing_ref).unlink()
            missing_index = refs.index(missing_ref)
        elif escaping_file is None and missing_file is not file:
            escaping_file = file
            record.setdefault("evidence", [])
            record["evidence"] = list(record["evidence"] or []) + [
                "../邻居家/户口簿.jpg"
            ]
            escape_index = len(record["evidence"]) - 1
            _dump(file, record)
        if missing_file and escaping_file:
            break
    assert missing_file and escaping_file

    result = run("validate", str(root), "--json")
    assert result.exit_code == ExitCode.problems, result.output
    assert "Traceback" not in result.output
    problems = json.loads(result.stdout)["problems"]
    # the repeated ID number is an error in both households
    assert len(problems) == 6, json.dumps(problems, ensure_ascii=False, indent=1)
    by_file = {p["file"]: p for p in problems}
    assert by_file[rel(first_village[1])]["message"].startswith(
        f"公民身份号码 {copied['id_number']}（{copied['name']}）重复：")

    p = by_file[rel(wrong)]
    assert (p["severity"], p["field"]) == ("error", "members[1].id_number")
    assert p["message"].endswith(
        f"公民身份号码 {old_id[:17] + bad_char} 校验位错误：应为 {old_id[-1]}，实为 {bad_char}"
    )
    assert p["hint"] == "请核对身份证原件后更正第 18 位（或前 17 位中抄错的数字）"
    assert p["line"] is not None

    p = by_file[rel(target_file)]
    assert (p["severity"], p["field"]) == ("error", "members[1].id_number")
    assert p["message"].startswith(
        f"公民身份号码 {copied['id_number']}（{copied['name']}）重复："
    )
    assert (
        rel(first_village[1]) in p["message"]
    )  # names the other household and its file
    assert str(source["household_id"]) in p["message"]
    assert p["line"] is not None

    p = by_file[rel(broken)]
    assert p["severity"] == "error"
    assert (p["line"], p["column"]) == (
        2,
        13,
    )  # the second colon (columns count characters)
    assert p["message"] == "YAML 格式错误：此处不能出现「: 」"
    assert p["hint"]

    p = by_file[rel(missing_file)]
    assert p["severity"] == "warning"
    assert p["field"] in (
        f"evidence[{missing_index}]",
        f"evidence[{missing_index}].file",
    )
    assert p["message"] == f"佐证材料文件「{missing_ref}」不存在，档案中将以占位页代替"
    assert p["line"] is not None

    p = by_file[rel(escaping_file)]
    assert (p["severity"], p["field"]) == ("error", f"evidence[{escape_index}]")
    assert (
        p["message"]
        == "佐证材料路径「../邻居家/户口簿.jpg」含有「..」，指向了本户文件夹以外"
    )
    assert p["hint"]


def test_validate_after_a_build_reads_its_caches_and_still_sees_changes(tmp_path: Path) -> None:
    """The build's record and rule caches make re-checking fast; a changed file is read again."""
    from synthetic import (
        dump_household_yaml,
        iter_records,
        write_dataset,
    )

    from archive_builder.archive.outdir import default_output
    from archive_builder.records import cache as record_cache
    from archive_builder.validate import check_data_dir

    data = write_dataset(tmp_path / "data", (("411621105201", "李庄村", 4),), seed=3,
                         photos_per_household=1, photo_size=(120, 160))
    built = CliRunner().invoke(main, ["build", str(data), "-j", "1"])
    assert built.exit_code == ExitCode.ok, built.output
    assert (default_output(data) / ".cache" / "records.pickle").is_file()
    fresh = check_data_dir(data)

    hits = []
    real_get = record_cache.RecordCache.get

    def get(self: Any, key: str) -> Any:
        found = real_get(self, key)
        hits.append(found is not None)
        return found

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(record_cache.RecordCache, "get", get)
        cached = check_data_dir(data)
        assert hits and all(hits)  # every record and every household's rules came from the caches
        assert cached.to_json() == fresh.to_json()

        path, record = next(iter_records(data))
        record["members"][0]["id_number"] = "110105194912310021"  # a wrong check digit
        path.write_text(dump_household_yaml(record), encoding="utf-8")
        cache_file = default_output(data) / ".cache" / "records.pickle"
        before = cache_file.read_bytes()
        changed = check_data_dir(data)
    assert changed.summary.errors == 1
    assert cache_file.read_bytes() == before  # read, never written
