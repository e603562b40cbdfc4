"""A reader that stops reading (``archive-builder … | head -1``) ends the command quietly,
as SIGPIPE ends well-behaved tools: no "内部错误", exit 141 (128 + SIGPIPE)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from archive_builder.errors import ExitCode


def _through_closed_pipe(*args: object, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    read, write = os.pipe()
    os.close(read)  # the reader has gone before the command writes anything (``| head -0``)
    try:
        return subprocess.run(
            [sys.executable, "-m", "archive_builder", *map(str, args)],
            stdout=write, stderr=subprocess.PIPE, cwd=cwd, timeout=120, check=False,
            env={**os.environ, "ARCHIVE_BUILDER_CACHE_DIR": str(cwd / "cache")},
        )
    finally:
        os.close(write)


def _two_pdfs(tmp_path: Path) -> tuple[Path, Path]:
    from reportlab.pdfgen import canvas

    paths = []
    for name, text in (("old.pdf", "first"), ("new.pdf", "second")):
        c = canvas.Canvas(str(tmp_path / name), invariant=1)
        c.drawString(100, 700, text)
        c.showPage()
        c.save()
        paths.append(tmp_path / name)
    return paths[0], paths[1]


def test_diff_into_a_closed_pipe(tmp_path: Path) -> None:
    old, new = _two_pdfs(tmp_path)
    result = _through_closed_pipe("diff", old, new, "--report", tmp_path / "x.html", cwd=tmp_path)
    stderr = result.stderr.decode("utf-8", "replace")
    assert "内部错误" not in stderr and "Traceback" not in stderr and stderr == ""
    assert result.returncode == ExitCode.broken_pipe == 141


def test_export_into_a_closed_pipe(tmp_path: Path, make_data_dir: Callable[..., Path]) -> None:
    data = make_data_dir()
    result = _through_closed_pipe("export", data, "-o", tmp_path / "t.xlsx", cwd=tmp_path)
    stderr = result.stderr.decode("utf-8", "replace")
    assert "内部错误" not in stderr and stderr == ""
    assert result.returncode == ExitCode.broken_pipe
    assert (tmp_path / "t.xlsx").is_file()  # the work was done; only the message was not read


def test_an_error_into_a_closed_pipe_keeps_its_exit_code(tmp_path: Path) -> None:
    """``build … 2>&1 | true`` on a data directory that cannot be used: the message cannot be
    written, the exit code still says why (2), not 1."""
    read, write = os.pipe()
    os.close(read)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "archive_builder", "build", str(tmp_path / "nowhere"), "-o", str(tmp_path / "out")],
            stdout=write, stderr=write, cwd=tmp_path, timeout=120, check=False,
        )
    finally:
        os.close(write)
    assert proc.returncode == ExitCode.input_unusable
