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


# --------------------------------------------------------------------------- 2 template names


SECRET = "TOP-SECRET-LINE-42"


@pytest.mark.parametrize(
    "statement",
    [
        "{% include '{secret}' %}",
        "{% include '../../outside/secret.txt' %}",
        "{% include '../../../../../../../../..{secret}' %}",
        "{% include '/etc:passwd' %}",
        "{% include '{secret_dir}:secret.txt' %}",
        "{% import '{secret}' as x %}",
        "{% extends '{secret}' %}",
        "{% include 'sections/link.xml' %}",
        "{% include 'sections\\\\..\\\\..\\\\outside\\\\secret.txt' %}",
        "{% include '/proc/self/environ' %}",
        "{% include '/etc/passwd' %}",
    ],
)
def test_template_names_stay_inside_the_template_folders(tmp_path: Path, statement: str) -> None:
    from archive_builder import templates as t
    from archive_builder.errors import TemplateError

    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "secret.txt"
    secret.write_text(SECRET + "\n<section/>", encoding="utf-8")
    data = tmp_path / "data"
    sections = data / "templates" / "sections"
    sections.mkdir(parents=True)
    (sections / "link.xml").symlink_to(secret)
    text = statement.replace("{secret}", str(secret)).replace("{secret_dir}", str(outside))
    (sections / "notes.xml").write_text(f"<section>{text}</section>", encoding="utf-8")
    tset = t.resolve_set("default", data_dir=data)
    with pytest.raises(TemplateError) as info:
        t.render_section_xml(tset, "sections/notes.xml", {})
    shown = str(info.value)
    assert SECRET not in shown
    assert "root:" not in shown
    import os

    assert not any(f"{k}=" in shown for k in os.environ if len(k) > 3)


def test_builtin_prefix_still_works(tmp_path: Path) -> None:
    from archive_builder import templates as t

    data = tmp_path / "data"
    sections = data / "templates" / "sections"
    sections.mkdir(parents=True)
    (sections / "notes.xml").write_text('{% extends "default:sections/notes.xml" %}', encoding="utf-8")
    tset = t.resolve_set("default", data_dir=data)
    assert "<section" in t.render_section_xml(tset, "sections/notes.xml", {"household": {"notes": "x"}})
