"""``archive-builder packet`` as the village secretary runs it: a real process, exit codes,
messages on stderr, where the file goes, byte-identical output across processes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from archive_builder.archive.packet import font_set

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "households_sample"
SMALL = "4116211052030010"  # 李 village 3, one photo: a quick packet
#: CJK Extension I: no font this project installs (or finds) covers it
NO_GLYPH = "\U0002EBF0"

pytestmark = pytest.mark.slow


def packet(*args: Any, cache: Path, seed: str = "0", cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ARCHIVE_BUILDER_CACHE_DIR": str(cache), "PYTHONHASHSEED": seed,
           "PYTHONIOENCODING": "utf-8"}
    return subprocess.run(
        [sys.executable, "-m", "archive_builder", "packet", *map(str, args)],
        check=False, capture_output=True, text=True, encoding="utf-8", env=env, cwd=cwd, timeout=120,
    )


def copy_household(tmp: Path, household_id: str, edit: Any = None) -> Path:
    source = next(p for p in SAMPLE.glob(f"*/{household_id}*") if p.is_dir())
    data = tmp / "data"
    village = data / source.parent.name
    village.mkdir(parents=True)
    shutil.copy(SAMPLE / "archive.toml", data / "archive.toml")
    shutil.copy(source.parent / "village.toml", village / "village.toml")
    shutil.copytree(source, village / source.name)
    if edit is not None:
        path = village / source.name / "household.yaml"
        record = yaml.safe_load(path.read_text(encoding="utf-8"))
        edit(record)
        path.write_text(yaml.safe_dump(record, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return data


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cli-cache")


def test_prints_path_and_page_count(tmp_path: Path, cache: Path) -> None:
    result = packet(SAMPLE, SMALL, "-o", f"{tmp_path}/out/", cache=cache)
    assert result.returncode == 0, result.stderr
    path, pages = result.stdout.strip().split("\t")
    assert Path(path) == tmp_path / "out" / f"{SMALL}_宋水旺.pdf"
    assert Path(path).is_file()
    from pypdf import PdfReader

    assert pages == f"{len(PdfReader(path).pages)} 页"


def test_output_to_a_named_file_or_into_a_folder(tmp_path: Path, cache: Path) -> None:
    named = packet(SAMPLE, SMALL, "-o", tmp_path / "sub" / "档卡.pdf", cache=cache)
    assert named.returncode == 0, named.stderr
    assert named.stdout.startswith(str(tmp_path / "sub" / "档卡.pdf"))
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["档卡.pdf"]
    (tmp_path / "existing").mkdir()
    into = packet(SAMPLE, SMALL, "-o", tmp_path / "existing", cache=cache)  # no trailing slash
    assert into.returncode == 0, into.stderr
    assert [p.name for p in (tmp_path / "existing").iterdir()] == [f"{SMALL}_宋水旺.pdf"]
    here = packet(SAMPLE, SMALL, cache=cache, cwd=tmp_path)  # default: the current folder
    assert here.returncode == 0, here.stderr
    assert (tmp_path / f"{SMALL}_宋水旺.pdf").is_file()


_OPEN_ELSEWHERE = """
import os, sys
real = os.replace
def replace(src, dst):
    if str(dst).endswith(".pdf"):  # Windows: the packet is still open in the PDF reader
        raise PermissionError(13, "另一个程序正在使用此文件，进程无法访问。")
    return real(src, dst)
os.replace = replace
from archive_builder.cli import entry
sys.argv[0] = "archive-builder"
entry()
"""


def test_packet_open_in_a_reader_is_named_with_the_fix(tmp_path: Path, cache: Path) -> None:
    target = tmp_path / "档卡.pdf"
    target.write_bytes(b"%PDF- the copy the secretary is looking at")
    env = {**os.environ, "ARCHIVE_BUILDER_CACHE_DIR": str(cache), "PYTHONIOENCODING": "utf-8"}
    result = subprocess.run(
        [sys.executable, "-c", _OPEN_ELSEWHERE, "packet", str(SAMPLE), SMALL, "-o", str(target)],
        check=False, capture_output=True, text=True, encoding="utf-8", env=env, timeout=120,
    )
    assert result.returncode == 4, result.stderr
    assert f"无法覆盖文件 {target}" in result.stderr and "正被其他程序打开" in result.stderr
    assert "请关闭打开该文件的程序后重新运行" in result.stderr
    assert "Traceback" not in result.stderr
    assert target.read_bytes() == b"%PDF- the copy the secretary is looking at"
    assert [p.name for p in tmp_path.iterdir()] == ["档卡.pdf"]


def test_unknown_household_lists_near_matches(tmp_path: Path, cache: Path) -> None:
    result = packet(SAMPLE, "4116211052010091", "-o", f"{tmp_path}/", cache=cache)
    assert result.returncode == 2
    assert "找不到该户" in result.stderr and "4116211052010091" in result.stderr
    assert "相近的户编号" in result.stderr
    near = result.stderr.split("相近的户编号：", 1)[1].splitlines()[0].split("、")
    known = {p.name[:16] for p in SAMPLE.glob("*/*") if p.is_dir()}
    assert near and set(near) <= known
    # (the ranking is difflib's: 0018…0014 here, not 0001/0011/0019 that differ by one
    # keystroke — reported, not asserted)
    assert result.stdout == "" and not list(tmp_path.glob("*.pdf"))


def test_household_with_errors_is_not_rendered(tmp_path: Path, cache: Path) -> None:
    def edit(record: dict[str, Any]) -> None:
        head = record["members"][0]
        digits = head["id_number"]
        head["id_number"] = digits[:-1] + ("0" if digits[-1] != "0" else "1")  # bad check digit

    data = copy_household(tmp_path, SMALL, edit)
    out = tmp_path / "out"
    result = packet(data, SMALL, "-o", f"{out}/", cache=cache)
    assert result.returncode == 1
    assert "数据有误" in result.stderr and "未生成档卡" in result.stderr
    assert "id_number" in result.stderr or "身份证" in result.stderr  # the problem itself
    assert "household.yaml" in result.stderr
    assert result.stdout == ""
    assert not out.exists() or not any(out.iterdir())


def test_missing_glyph_is_a_warning_naming_household_field_and_code_point(tmp_path: Path, cache: Path) -> None:
    fonts = font_set(register=False)
    assert fonts.missing_chars(NO_GLYPH, "body") == [NO_GLYPH]  # no installed font has it

    def edit(record: dict[str, Any]) -> None:
        record["members"][1]["name"] = "宋" + NO_GLYPH

    data = copy_household(tmp_path, SMALL, edit)
    result = packet(data, SMALL, "-o", tmp_path / "out.pdf", cache=cache)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out.pdf").is_file()
    warning = next(line for line in result.stderr.splitlines() if "U+2EBF0" in line)
    assert SMALL in warning and "members[1].name" in warning


def test_two_processes_give_identical_bytes(tmp_path: Path) -> None:
    """Different hash seeds and fresh caches: nothing process-dependent reaches the file."""
    hid = "4116211052010001"  # photos (EXIF 6), camera-size JPEGs, statement PDFs, 𠮷-free
    a = packet(SAMPLE, hid, "-o", tmp_path / "a.pdf", cache=tmp_path / "c1", seed="1")
    b = packet(SAMPLE, hid, "-o", tmp_path / "b.pdf", cache=tmp_path / "c2", seed="2")
    assert a.returncode == b.returncode == 0, a.stderr + b.stderr
    assert (tmp_path / "a.pdf").read_bytes() == (tmp_path / "b.pdf").read_bytes()
    # and once more from a warm cache
    c = packet(SAMPLE, hid, "-o", tmp_path / "c.pdf", cache=tmp_path / "c1", seed="3")
    assert c.returncode == 0
    assert (tmp_path / "c.pdf").read_bytes() == (tmp_path / "a.pdf").read_bytes()


@pytest.mark.skipif(shutil.which("archive-builder") is None, reason="console script not installed")
def test_console_script(tmp_path: Path, cache: Path) -> None:
    env = {**os.environ, "ARCHIVE_BUILDER_CACHE_DIR": str(cache), "PYTHONIOENCODING": "utf-8"}
    result = subprocess.run(
        ["archive-builder", "packet", str(SAMPLE), SMALL, "-o", f"{tmp_path}/"],
        check=False, capture_output=True, text=True, encoding="utf-8", env=env, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith(" 页")


def test_packet_with_another_template_set(tmp_path):
    """--templates picks the set for this run (here the anchors' benchmark set, a path)."""
    from click.testing import CliRunner

    from archive_builder.cli import main
    from archive_builder.errors import ExitCode

    anchor = Path(__file__).resolve().parent.parent / "benchmarks" / "templates" / "anchor"
    sample = Path(__file__).resolve().parent.parent / "households_sample"
    result = CliRunner().invoke(
        main, ["packet", str(sample), "4116211052010002", "-o", str(tmp_path) + "/", "--templates", str(anchor)]
    )
    assert result.exit_code == ExitCode.ok, result.output
    from pypdf import PdfReader

    text = "".join(p.extract_text() for p in PdfReader(next(tmp_path.glob("*.pdf"))).pages)
    assert "家庭成员情况" in text and "目　录" not in text  # the anchor set has no contents page


def test_damaged_evidence_pdf_prints_only_our_chinese_warning(tmp_path: Path, cache: Path) -> None:
    """pypdf logs "EOF marker not found" for a cut-off PDF; the secretary sees only ours."""
    def edit(record: Any) -> None:
        record["evidence"] = [*record.get("evidence", []), "扫描件.pdf"]

    data = copy_household(tmp_path, SMALL, edit)
    whole = next((SAMPLE / "411621105201_李庄村").glob("*/*/*.pdf")).read_bytes()
    (next(p for p in data.glob("*/*") if p.is_dir()) / "扫描件.pdf").write_bytes(whole[:3000])
    result = packet(data, SMALL, "-o", tmp_path / "out.pdf", cache=cache)
    assert result.returncode == 0, result.stderr
    assert "佐证材料 扫描件.pdf 无法读取" in result.stderr
    assert "EOF" not in result.stderr and "pypdf" not in result.stderr, result.stderr


def test_an_output_that_is_a_file_is_called_a_file(tmp_path: Path) -> None:
    """``-o 档卡`` naming an existing file (no .pdf): taken for a folder, it cannot be made; the
    message says it is a file and how to name a file; ``history -o FILE`` likewise."""
    from click.testing import CliRunner

    from archive_builder.cli import main

    blocker = tmp_path / "档卡"
    blocker.write_bytes(b"")
    packet = CliRunner().invoke(main, ["packet", str(SAMPLE), "4116211052010001", "-o", str(blocker)])
    assert packet.exit_code == 4 and "是一个文件，不是文件夹" in packet.output and ".pdf" in packet.output
    assert "文件已存在" not in packet.output
    history = CliRunner().invoke(main, ["history", "-o", str(blocker), "4116211052010001"])
    assert history.exit_code == 2 and "是一个文件，不是输出目录" in history.output
