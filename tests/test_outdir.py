"""Output directory safety: refusal inside the data, writability, the lock, atomic writes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from archive_builder.archive import outdir
from archive_builder.errors import ExitCode, OutputError


def test_output_inside_data_dir_is_refused(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    with pytest.raises(OutputError) as info:
        outdir.prepare(data / "out", data)
    assert info.value.exit_code == ExitCode.output_unusable
    assert "位于数据目录" in info.value.message
    assert str(outdir.default_output(data)) in info.value.hint


def test_output_containing_data_dir_is_refused(tmp_path):
    data = tmp_path / "out" / "data"
    data.mkdir(parents=True)
    with pytest.raises(OutputError, match="包含了数据目录"):
        outdir.prepare(tmp_path / "out", data)


@pytest.mark.skipif(os.name == "nt" or os.geteuid() == 0, reason="root ignores directory permissions")
def test_unwritable_output_fails_before_work(tmp_path):
    locked = tmp_path / "ro"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(OutputError, match="无法写入输出目录"):
            outdir.prepare(locked / "out", tmp_path / "data")
    finally:
        locked.chmod(0o700)


def test_output_that_is_a_file_fails(tmp_path):
    target = tmp_path / "out"
    target.write_text("x")
    with pytest.raises(OutputError, match="是一个文件，不是文件夹"):
        outdir.prepare(target, tmp_path / "data")


def test_default_output_is_beside_the_data(tmp_path):
    assert outdir.default_output(tmp_path / "样例") == tmp_path.resolve() / "样例-档案输出"


def test_second_build_on_same_output_is_told_clearly(tmp_path):
    out = outdir.prepare(tmp_path / "out", tmp_path / "data")
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from pathlib import Path
            from archive_builder.archive import outdir
            with outdir.build_lock(Path({str(out)!r})):
                print("locked", flush=True)
                time.sleep(30)
        """)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(OutputError) as info, outdir.build_lock(out, wait_seconds=0.3):
            pass
        assert "另一个生成任务正在使用输出目录" in info.value.message
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    # The kernel released the dead holder's lock: no stale lock file blocks the next build.
    with outdir.build_lock(out):
        pass


def test_atomic_write_leaves_no_temp_files(tmp_path):
    target = tmp_path / "a" / "manifest.json"
    outdir.atomic_write_json(target, {"名": 1})
    outdir.atomic_write_json(target, {"名": 2})
    assert outdir.read_json(target, None) == {"名": 2}
    assert [p.name for p in target.parent.iterdir()] == ["manifest.json"]


def _refusing_replace(monkeypatch, refusals):
    """os.replace refused ``refusals`` times (Windows: the file is open in a reader), then done."""
    real = os.replace
    calls = []

    def replace(src, dst):
        calls.append(dst)
        if len(calls) <= refusals:
            raise PermissionError(13, "另一个程序正在使用此文件，进程无法访问。", str(dst))
        return real(src, dst)

    monkeypatch.setattr(outdir.os, "replace", replace)
    monkeypatch.setattr(outdir.time, "sleep", lambda seconds: None)
    return calls


def test_replace_refused_for_a_moment_is_tried_again(tmp_path, monkeypatch):
    target = tmp_path / "档卡.pdf"
    target.write_bytes(b"old")
    calls = _refusing_replace(monkeypatch, refusals=2)
    outdir.atomic_write(target, b"new")
    assert target.read_bytes() == b"new" and len(calls) == 3
    assert [p.name for p in tmp_path.iterdir()] == ["档卡.pdf"]


def test_file_kept_open_by_another_program_is_named_with_the_fix(tmp_path, monkeypatch):
    target = tmp_path / "档卡.pdf"
    target.write_bytes(b"old")
    _refusing_replace(monkeypatch, refusals=100)
    with pytest.raises(OutputError) as info:
        outdir.atomic_write(target, b"new")
    assert str(target) in info.value.message and "正被其他程序打开" in info.value.message
    assert "关闭" in info.value.hint
    assert target.read_bytes() == b"old"  # the previous file is intact, and no temp file is left
    assert [p.name for p in tmp_path.iterdir()] == ["档卡.pdf"]
