"""The build's output is safe: a killed or dying worker, SIGKILL, concurrent builds and refused
output folders; and ``--village`` builds only the villages chosen.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from build_helpers import (
    REPO,
    check_build,
    check_manifest_schema,
    kill_group,
    make_data,
    manifest,
    run_build,
    subprocess_build,
    summary_line,
)
from pypdf import PdfReader

from archive_builder.errors import ExitCode

# --------------------------------------------------------------------------- 4. safe output


def _wait_for(condition: Any, proc: subprocess.Popen[str], timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.005)
    return False


def _valid_pdf(path: Path) -> int:
    """Page count of a complete PDF (raises when it is truncated or damaged)."""
    data = path.read_bytes()
    assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF"), path
    return len(PdfReader(path, strict=True).pages)


def _worker_dies(request: Any) -> Any:
    """Stands in for build._safe_render: the worker process ends as if killed."""
    os._exit(9)


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="forked workers inherit the stand-in")
def test_a_worker_that_dies_is_reported_and_the_rerun_completes(tmp_path, monkeypatch):
    from archive_builder.archive import build as build_module

    data = make_data(tmp_path / "data")
    out = tmp_path / "out"
    monkeypatch.setattr(build_module, "_safe_render", _worker_dies)
    result = run_build(data, "-o", out, "--jobs", "2")
    assert result.exit_code == ExitCode.interrupted, result.output
    assert "生成进程意外退出" in result.output and "重新运行" in result.output
    assert "内部错误" not in result.output and "Traceback" not in result.output
    assert not (out / "manifest.json").exists()
    monkeypatch.undo()

    again = run_build(data, "-o", out)
    assert again.exit_code == ExitCode.ok, again.output
    check_build(out)


@pytest.mark.slow
def test_killed_first_build_then_rerun(tmp_path):
    data = make_data(tmp_path / "data")
    out = tmp_path / "out"
    proc = subprocess_build(data, out)
    try:
        started = _wait_for(lambda: any(out.glob("*/分户档卡/*.pdf")), proc)
    finally:
        kill_group(proc)
    assert started and proc.returncode == -signal.SIGKILL, "生成在被终止前已结束，测试无效"
    assert not (out / "manifest.json").exists()

    result = run_build(data, "-o", out)
    assert result.exit_code == ExitCode.ok, result.output
    check_build(out)
    assert sum(len(v["households"]) for v in manifest(out)["villages"]) == 12


#: run as ``python -c``: a build whose box collation stops for good with a box's temporary file
#: written and not yet published (a marker file says so), so that the test kills it there and
#: not by chance (the temporary file of a box lives for milliseconds)
_STOP_WHILE_COLLATING = """
import contextlib, sys, time
from pathlib import Path
from archive_builder.archive import collate
from archive_builder.cli import main

real = collate.atomic_file
marker = Path(sys.argv[1])

@contextlib.contextmanager
def stopping(path, *args, **kwargs):
    with real(path, *args, **kwargs) as fh:
        yield fh
        fh.flush()
        part = next(path.parent.glob("." + path.name + ".*.part"))
        marker.write_text(str(part), encoding="utf-8")
        time.sleep(600)

collate.atomic_file = stopping
sys.argv = ["archive-builder", *sys.argv[2:]]
main()
"""


def _build_stopping_while_collating(data: Path, out: Path, marker: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _STOP_WHILE_COLLATING, str(marker), "build", str(data), "-o", str(out),
         "-j", "2", "--force"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )


@pytest.mark.slow
@pytest.mark.parametrize("moment", ["rendering", "collating"])
def test_kill_during_rebuild_keeps_previous_outputs(tmp_path, moment):
    data = make_data(tmp_path / "data")
    out = tmp_path / "out"
    first = run_build(data, "-o", out)
    assert first.exit_code == ExitCode.ok, first.output
    boxes = {b["file"]: b["pages"] for v in manifest(out)["villages"] for b in v["boxes"]}
    box_paths = [out / f for f in boxes]
    marker = tmp_path / "collating"

    def box_part() -> bool:
        # complete at every moment: each published box ends with %%EOF while the rebuild runs
        for path in box_paths:
            assert path.read_bytes().rstrip().endswith(b"%%EOF"), path
        return marker.exists()

    def packet_part() -> bool:
        return any(out.glob("*/分户档卡/.*.part"))

    if moment == "rendering":
        proc = subprocess_build(data, out, "--force")
    else:
        proc = _build_stopping_while_collating(data, out, marker)
    try:
        caught = _wait_for(packet_part if moment == "rendering" else box_part, proc, timeout=120)
        if moment == "collating" and caught:
            part = Path(marker.read_text(encoding="utf-8"))
            assert part.name.endswith(".part") and part.stat().st_size > 0, part  # written, unpublished
    finally:
        kill_group(proc)
    assert caught and proc.returncode == -signal.SIGKILL, "未能在生成途中终止（测试无效）"
    for f, pages in boxes.items():
        assert _valid_pdf(out / f) == pages, f
    check_build_ok = manifest(out)  # the previous manifest is still whole
    check_manifest_schema(check_build_ok)

    result = run_build(data, "-o", out)
    assert result.exit_code == ExitCode.ok, result.output
    check_build(out)


@pytest.mark.slow
def test_concurrent_build_is_refused(tmp_path):
    data = make_data(tmp_path / "data")
    out = tmp_path / "out"
    lock = out / ".archive-builder.lock"
    proc = subprocess_build(data, out)
    try:
        assert _wait_for(lambda: lock.is_file() and lock.read_text().strip() == str(proc.pid), proc)
        second = run_build(data, "-o", out)
        assert proc.poll() is None, "第一个生成任务已结束，测试无效"
        assert second.exit_code == ExitCode.output_unusable, second.output
        assert "另一个生成任务正在使用输出目录" in second.stderr
        assert second.stdout == ""
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            kill_group(proc)
    assert proc.returncode == ExitCode.ok, stderr
    assert "渲染 12 户" in stdout
    check_build(out)


def test_output_inside_data_is_refused(small):
    data, _, _ = small
    result = run_build(data, "-o", data / "档案输出")
    assert result.exit_code == ExitCode.output_unusable, result.output
    assert "位于数据目录" in result.stderr
    assert not (data / "档案输出").exists()


def test_output_under_a_file_fails_before_work(tmp_path, small, monkeypatch):
    from archive_builder.records import loader

    data, _, _ = small
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")

    def no_reading(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("records were read before the output folder was checked")

    monkeypatch.setattr(loader, "load_dataset", no_reading)
    result = run_build(data, "-o", blocker / "out")
    assert result.exit_code == ExitCode.output_unusable, result.output
    assert "是一个文件，不是文件夹" in result.stderr
    assert blocker.read_text() == "x"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not-a-folder"]


# --------------------------------------------------------------------------- 5. --village


def test_village_by_name(tmp_path, small):
    data, _, _ = small
    out = tmp_path / "out"
    result = run_build(data, "-o", out, "--village", "王楼村")
    assert result.exit_code == ExitCode.ok, result.output
    assert "渲染 6 户" in summary_line(result)
    m = check_build(out)
    assert [v["code"] for v in m["villages"]] == ["411621105202"]
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "411621105202_王楼村", "manifest.json",
    ]


def test_village_by_code(tmp_path, small):
    data, _, _ = small
    out = tmp_path / "out"
    result = run_build(data, "-o", out, "--village", "411621105201")
    assert result.exit_code == ExitCode.ok, result.output
    assert [v["name"] for v in manifest(out)["villages"]] == ["李庄村"]


def test_village_rebuild_keeps_the_other_villages_in_the_manifest(tmp_path, small):
    """After a whole-township build, ``--village`` rebuilds one village; the manifest still
    describes every village whose boxes are in the output folder."""
    data, built, _ = small
    out = tmp_path / "out"
    shutil.copytree(built, out)
    before = manifest(out)
    result = run_build(data, "-o", out, "--village", "王楼村")
    assert result.exit_code == ExitCode.ok, result.output
    assert summary_line(result).startswith("渲染 0 户 · 未变化 6 户"), result.stdout
    after = check_build(out)
    assert after["villages"] == before["villages"]


def test_unknown_village(tmp_path, small):
    data, _, _ = small
    result = run_build(data, "-o", tmp_path / "out", "--village", "张湾村")
    assert result.exit_code == ExitCode.input_unusable, result.output
    assert "找不到村：张湾村" in result.stderr
    assert "李庄村（411621105201）" in result.stderr and "王楼村（411621105202）" in result.stderr
    assert not (tmp_path / "out" / "manifest.json").exists()
