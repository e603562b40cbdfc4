"""The console entry ends the process with os._exit: exit codes and output must survive it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "archive_builder", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120, check=False)


def test_output_through_a_pipe_is_complete_and_the_code_kept():
    result = run("validate", "--json", "households_sample")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)  # all of it flushed before the process ended
    assert report["summary"]["households"] == 48


def test_usage_error_code_and_message():
    result = run("build", "--nope")
    assert result.returncode == 2
    assert "没有选项 '--nope'" in result.stderr and result.stdout == ""


def test_archive_error_code():
    result = run("packet", "households_sample", "999")
    assert result.returncode == 2 and "找不到该户" in result.stderr
