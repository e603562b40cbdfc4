"""Help in Chinese all the way: placeholders, missing-argument errors, and the data-format
document reachable from an installed package (``archive-builder help 数据格式``)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from archive_builder.cli import main

ROOT = Path(__file__).resolve().parent.parent
#: upper-case words a help page may show: they are names, not placeholders
NAMES = {"PDF", "JSON", "CPU"}


def _commands(group: click.Group, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [path]
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found += _commands(command, (*path, name))
        else:
            found.append((*path, name))
    return found


@pytest.mark.parametrize("command", _commands(main), ids=lambda c: " ".join(c) or "archive-builder")
def test_help_has_no_ascii_placeholders(command: tuple[str, ...]) -> None:
    result = CliRunner().invoke(main, [*command, "--help"])
    assert result.exit_code == 0, result.output
    shouting = set(re.findall(r"\b[A-Z][A-Z_]+\b", result.output)) - NAMES
    assert not shouting, result.output


def test_a_missing_argument_is_named_in_chinese() -> None:
    result = CliRunner().invoke(main, ["packet"])
    assert result.exit_code == 2
    assert "缺少参数 '数据目录'" in result.output
    assert "参数：" in CliRunner().invoke(main, ["packet", "--help"]).output


def test_help_shows_the_data_format_document() -> None:
    result = CliRunner().invoke(main, ["help", "数据格式"])
    assert result.exit_code == 0
    assert result.output.startswith("# ") and "household.yaml" in result.output
    path = CliRunner().invoke(main, ["help", "数据格式", "--path"]).output.strip()
    assert Path(path).is_file() and Path(path).name == "record-format.md"
    unknown = CliRunner().invoke(main, ["help", "格式说明书"])
    assert unknown.exit_code == 2 and "数据格式" in unknown.output
    assert "help 数据格式" in CliRunner().invoke(main, ["--help"]).output


def test_the_data_format_document_is_written_in_chinese() -> None:
    """A village clerk opens it with ``help 数据格式``: prose in Chinese; keys, code and file
    names stay as they are written in the data."""
    import re

    text = CliRunner().invoke(main, ["help", "数据格式"]).output
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    prose = re.sub(r"`[^`]*`", "", prose)
    for line in prose.splitlines():
        words = re.findall(r"[A-Za-z]{3,}", line)
        english = [w for w in words if w not in {"YAML", "TOML", "JPEG", "PNG", "TIFF", "HEIC", "PDF", "MOD"}]
        assert len(english) <= 1, line


@pytest.mark.slow
def test_the_data_format_document_is_in_an_installed_wheel(tmp_path: Path) -> None:
    """A non-editable install (what ``pip install .`` gives a user) has the document."""
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(wheels), str(ROOT)], check=True, timeout=600)
    wheel = next(wheels.glob("archive_builder-*.whl"))
    site = tmp_path / "site"
    # the wheel's package alone; its dependencies come from this environment, after it on the path
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
                   check=True, timeout=600)
    env = {**os.environ, "PYTHONPATH": str(site)}
    python = sys.executable
    shown = subprocess.run([python, "-m", "archive_builder", "help", "数据格式", "--path"], env=env,
                           capture_output=True, text=True, encoding="utf-8", cwd=tmp_path, timeout=120, check=False)
    assert shown.returncode == 0, shown.stderr
    path = Path(shown.stdout.strip())
    assert path.is_file() and ROOT not in path.parents, path
    assert site in path.parents
    text = subprocess.run([python, "-m", "archive_builder", "help", "数据格式"], capture_output=True, env=env,
                          text=True, encoding="utf-8", cwd=tmp_path, timeout=120, check=False).stdout
    assert text == (ROOT / "docs" / "record-format.md").read_text(encoding="utf-8") + "\n"


@pytest.mark.parametrize("command", _commands(main), ids=lambda c: " ".join(c) or "archive-builder")
def test_every_argument_is_described(command: tuple[str, ...]) -> None:
    """The 参数 section says what to give for each argument, not only its placeholder."""
    group: click.Command = main
    for name in command:
        assert isinstance(group, click.Group)
        group = group.commands[name]
    ctx = click.Context(group, info_name=" ".join(command) or "archive-builder")
    formatter = ctx.make_formatter()
    group.format_options(ctx, formatter)
    text = formatter.getvalue()
    if "参数：" not in text:
        return
    section = text.split("参数：", 1)[1].split("选项：", 1)[0]
    for line in section.strip("\n").splitlines():
        assert len(line.split()) >= 2, f"{' '.join(command)}: {line!r} has no description"
