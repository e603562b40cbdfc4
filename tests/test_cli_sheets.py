"""`import` and `export` through the command line: output, files and exit codes."""

from __future__ import annotations

import shutil
from pathlib import Path

from click.testing import CliRunner

from archive_builder.cli import main
from archive_builder.errors import ExitCode

SAMPLE = Path(__file__).resolve().parent.parent / "households_sample"


def run(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_export_then_import_round_trip(tmp_path):
    sheet = tmp_path / "全乡.xlsx"
    exported = run("export", SAMPLE, "-o", sheet)
    assert exported.exit_code == ExitCode.ok, exported.output
    assert exported.output.startswith("已导出 ") and sheet.is_file()

    data = tmp_path / "data"
    imported = run("import", sheet, "-o", data)
    assert imported.exit_code == ExitCode.ok, imported.output
    assert len(list(data.rglob("household.yaml"))) == 48
    assert run("validate", data).exit_code == ExitCode.ok

    # a second import changes nothing and overwrites nothing
    again = run("import", sheet, "-o", data)
    assert again.exit_code in (ExitCode.ok, ExitCode.problems), again.output


def test_import_never_overwrites_without_force_and_dry_run_writes_nothing(tmp_path):
    sheet = tmp_path / "s.xlsx"
    assert run("export", SAMPLE, "-o", sheet).exit_code == ExitCode.ok
    data = tmp_path / "data"
    shutil.copytree(SAMPLE, data)
    record = next(data.rglob("household.yaml"))
    record.write_text(record.read_text(encoding="utf-8").replace("第一村民组", "第二村民组", 1), encoding="utf-8")
    before = {p: p.read_bytes() for p in data.rglob("*") if p.is_file()}
    dry = run("import", sheet, "-o", data, "--dry-run")
    assert {p: p.read_bytes() for p in data.rglob("*") if p.is_file()} == before, dry.output
    plain = run("import", sheet, "-o", data)
    assert record.read_bytes() == before[record], plain.output  # not overwritten without --force


def test_unreadable_sheet_is_exit_2(tmp_path):
    bad = tmp_path / "坏表.xlsx"
    bad.write_bytes(b"not a spreadsheet")
    result = run("import", bad, "-o", tmp_path / "data")
    assert result.exit_code == ExitCode.input_unusable, result.output
    assert not (tmp_path / "data" / "archive.toml").exists()
