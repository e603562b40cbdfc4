"""Shared fixtures. ``make_data_dir`` builds a data directory in ``tmp_path`` from dicts."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from build_helpers import REPO, SAMPLE, make_data, run_build
from datadir import write_data_dir

from archive_builder.errors import ExitCode


@pytest.fixture
def make_data_dir(tmp_path: Path) -> Callable[..., Path]:
    """Return ``make(households=None, *, villages=None, archive=..., name="data") -> Path``.

    With no arguments: one village (冯老村) holding one valid household. See
    ``tests/datadir.py`` for the record helpers (``valid_household``, ``make_id``, ``mutate``).
    """

    def make(
        households: list[dict[str, Any]] | None = None,
        *,
        name: str = "data",
        **options: Any,
    ) -> Path:
        return write_data_dir(tmp_path / name, households, **options)

    return make


@pytest.fixture(scope="session")
def font_set():
    """The process-wide FontSet (discovered and registered once per test process)."""
    from archive_builder.archive.packet import font_set as process_font_set

    return process_font_set()


# --- the build tests' townships (test_build*.py), built once per test module


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The small township built once through the CLI."""
    tmp = tmp_path_factory.mktemp("build")
    data = make_data(tmp / "data")
    out = tmp / "out"
    result = run_build(data, "-o", out)
    assert result.exit_code == ExitCode.ok, result.output
    return data, out, result


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """``households_sample`` built by a subprocess, exactly as the README tells the clerk."""
    out = tmp_path_factory.mktemp("sample") / "档案输出"
    proc = subprocess.run(
        [sys.executable, "-m", "archive_builder", "build", str(SAMPLE), "-o", str(out), "-j", "2"],
        check=False, cwd=REPO, capture_output=True, text=True, timeout=600,
    )
    return out, proc
