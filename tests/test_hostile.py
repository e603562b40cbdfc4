"""Hostile inputs (issue 17): nothing escapes its folder, nothing active reaches the archive,
nothing hangs or crashes. Every hostile file is made here, in code; every test runs under a
timeout so that a hang fails instead of blocking the run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from datadir import valid_household, write_data_dir

from archive_builder.cli import main
from archive_builder.errors import ExitCode

pytestmark = pytest.mark.timeout(120)


def run(*args: Any) -> Any:
    return CliRunner().invoke(main, [str(a) for a in args])


def pdfs_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*.pdf")}


# --------------------------------------------------------------------------- 1 household IDs


@pytest.mark.parametrize("hid", ["../../../PWNED_rel", "../../manifest", "/tmp/PWNED_abs", "C:evil", ".hidden"])
def test_household_id_cannot_leave_the_output_folder(tmp_path: Path, hid: str) -> None:
    bad = valid_household(hid, serial=1)
    bad["_folder"] = "bad"
    data = write_data_dir(tmp_path / "a" / "b" / "c" / "data", [valid_household(serial=0), bad])
    out = tmp_path / "a" / "b" / "c" / "out"
    before = pdfs_under(tmp_path)

    checked = run("validate", data)
    assert checked.exit_code == ExitCode.problems, checked.output
    assert "户编号不能用作文件名" in checked.output
    assert "household_id" in checked.output or "户编号" in checked.output

    built = run("build", data, "-o", out, "-j", "1")
    assert built.exit_code == ExitCode.partial, built.output
    assert built.exception is None or isinstance(built.exception, SystemExit)
    written = pdfs_under(tmp_path) - before
    assert written, built.output
    assert all(p.resolve().is_relative_to(out.resolve()) for p in written), written
    assert not (out / "manifest.pdf").exists()
    assert not Path("/tmp/PWNED_abs.pdf").exists()
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert [f["household_id"] for f in manifest["failed"]] == [hid]
