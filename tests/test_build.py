"""The village build end to end (issue 4): boxes read back with pypdf, incremental runs,
failure isolation, safe output (SIGKILL, concurrent builds, refused output folders),
village selection and reproducible bytes.

Most tests use a small generated township (two villages of six households, one small photo
each, 50 sheets per box so every village fills two boxes); one slow test builds the sample
township ``households_sample`` through a subprocess, as the clerk would.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from pypdf import PdfReader

from archive_builder.cli import main
from archive_builder.errors import ExitCode
from archive_builder.synthetic import dump_household_yaml, iter_records, write_dataset

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "households_sample"
MM = 72 / 25.4

VILLAGES = (("411621105201", "李庄村", 6), ("411621105202", "王楼村", 6))


# --------------------------------------------------------------------------- helpers


def make_data(root: Path, villages: Any = VILLAGES, **archive: Any) -> Path:
    """A small township: one 300×400 photo per household, 50 sheets per box (two boxes a village)."""
    archive.setdefault("print", {"sheets_per_box": 50})
    return write_dataset(root, villages, seed=7, photos_per_household=1, photo_size=(300, 400), **archive)


def run_build(*args: Any) -> Any:
    """Invoke ``archive-builder build`` in this process (two workers)."""
    argv = ["build", *[str(a) for a in args]]
    if "-j" not in argv and "--jobs" not in argv:
        argv += ["-j", "2"]
    return CliRunner().invoke(main, argv, catch_exceptions=False)


def subprocess_build(data: Path, out: Path, *extra: str) -> subprocess.Popen[str]:
    """Start ``python -m archive_builder build`` in its own process group (workers included)."""
    return subprocess.Popen(
        [sys.executable, "-m", "archive_builder", "build", str(data), "-o", str(out),
         *([] if "-j" in extra else ["-j", "2"]), *extra],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def kill_group(proc: subprocess.Popen[str]) -> None:
    """SIGKILL the build and its worker processes; reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.communicate(timeout=30)


def manifest(out: Path) -> dict[str, Any]:
    return json.loads((out / "manifest.json").read_text(encoding="utf-8"))


def summary_line(result: Any) -> str:
    return result.stdout.strip().splitlines()[-1]


def pdf_snapshot(out: Path) -> dict[str, tuple[int, bytes]]:
    """(mtime_ns, bytes) of every published PDF under ``out`` (work folders excluded)."""
    return {
        p.relative_to(out).as_posix(): (p.stat().st_mtime_ns, p.read_bytes())
        for p in sorted(out.rglob("*.pdf"))
        if not any(part.startswith(".") for part in p.relative_to(out).parts)
    }


def temp_files(out: Path) -> list[Path]:
    return sorted(out.rglob("*.part"))


def page_texts(reader: PdfReader) -> list[str]:
    return [page.extract_text() or "" for page in reader.pages]


def read_page(page: Any) -> tuple[str, list[int]]:
    """The page's text and the archive numbers stamped at collation on it (digit-only text
    in the top 20 mm of the page), from one pass over its content."""
    height = float(page.mediabox.height)
    found: list[int] = []

    def visit(text: str, cm: Any, tm: Any, font_dict: Any, font_size: Any) -> None:
        t = text.strip()
        if t.isdigit():
            y = tm[4] * cm[1] + tm[5] * cm[3] + cm[5]
            if y > height - 20 * MM:
                found.append(int(t))

    return page.extract_text(visitor_text=visit) or "", found


def is_cover_of(text: str, household_id: str) -> bool:
    """The household packet's cover: 户编号 after a colon, with the cover's 归档年度 line."""
    return bool(re.search(rf"户编号：\s*{household_id}", text)) and "归档年度" in text


def contents_row(contents: str, item_no: int, household_id: str) -> tuple[int, int]:
    row = re.search(rf"{item_no:04d}\s*{household_id}.*?(\d+)—(\d+)", contents, re.DOTALL)
    assert row, f"卷内目录中没有件号 {item_no:04d} 户 {household_id}:\n{contents}"
    return int(row[1]), int(row[2])


@dataclass
class Checked:
    """What :func:`check_village` established (for callers that want more)."""

    pages_checked: int = 0
    households: int = 0


def check_village(out: Path, village: dict[str, Any], *, duplex: bool = True, consecutive: bool = True) -> Checked:
    """Read every box of ``village`` back and check it against itself and the manifest."""
    checked = Checked()
    households = sorted(village["households"], key=lambda h: h["item_no"])
    assert [h["item_no"] for h in households] == sorted({h["item_no"] for h in households})
    assert village["boxes"], village
    for box_no, box in enumerate(village["boxes"], start=1):
        path = out / box["file"]
        assert path.is_file(), path
        assert path.name.endswith(f"第{box_no:02d}盒.pdf")
        reader = PdfReader(path)
        read = [read_page(page) for page in reader.pages]
        texts = [text for text, _ in read]
        stamps = [numbers for _, numbers in read]
        assert len(reader.pages) == box["pages"]
        assert box["sheets"] == (math.ceil(box["pages"] / 2) if duplex else box["pages"])
        in_box = [h for h in households if h["box"] == box_no]
        assert in_box, f"盒 {box_no} 没有户"
        assert (in_box[0]["item_no"], in_box[-1]["item_no"]) == (box["first_item"], box["last_item"])
        if consecutive:
            assert [h["item_no"] for h in in_box] == list(range(box["first_item"], box["last_item"] + 1))

        # box cover: 全宗名称, village, 盒号, 起止件号
        cover = texts[0]
        assert "全宗名称" in cover and village["name"] in cover, cover
        assert f"第 {box_no} 盒" in cover, cover
        assert re.search(rf"{box['first_item']:04d}\s*—\s*{box['last_item']:04d}", cover), cover

        # contents (卷内目录) on a recto right after the cover
        contents_at = [i for i, t in enumerate(texts) if "卷 内 目 录" in t]
        assert contents_at and contents_at[0] == (2 if duplex else 1), contents_at
        contents = "\n".join(texts[i] for i in contents_at)

        labels = reader.page_labels
        previous_last = contents_at[-1]
        for h in in_box:
            hid = h["household_id"]
            covers = [i for i, t in enumerate(texts) if is_cover_of(t, hid)]
            assert covers == [h["first_page"] - 1], (hid, covers, h)
            first, last = h["first_page"] - 1, h["last_page"] - 1
            assert previous_last < first <= last < len(texts) - 1  # 件号 order, before the 备考表
            if duplex:
                assert first % 2 == 0, f"户 {hid} 的档卡从第 {first + 1} 页（偶数页）开始"
            # the contents' 起止页 are the archive numbers really stamped on the first and last page
            start_no, end_no = contents_row(contents, h["item_no"], hid)
            assert stamps[first] == [start_no], (hid, first)
            assert stamps[last] == [end_no], (hid, last)
            assert labels[first] == str(start_no)
            # only blank versos between the previous part and this packet
            assert all("/Contents" not in reader.pages[i] for i in range(previous_last + 1, first)), (hid, first)
            # nothing of another household between its first and last page
            for i in range(first + 1, last + 1):
                assert not ("户编号：" in texts[i] and "归档年度" in texts[i]), (hid, i)
            previous_last = last
            checked.households += 1
        # the box's 备考表 right after the last packet (and its blank verso)
        assert all("/Contents" not in reader.pages[i] for i in range(previous_last + 1, len(texts) - 1))

        # archive numbers: consecutive from 1 over numbered pages; blank pages carry nothing
        numbers: list[int] = []
        for i, page in enumerate(reader.pages):
            if "/Contents" not in page:
                assert texts[i] == "", (path.name, i)
                assert duplex and i % 2 == 1, f"{path.name}: 第 {i + 1} 页空白页不是背面"
                continue
            numbers.extend(stamps[i])
            checked.pages_checked += 1
        assert numbers == list(range(1, len(numbers) + 1)), numbers
        assert f"本盒共 {len(in_box)} 件 {len(numbers)} 页" in texts[-1], texts[-1]
        assert "备" in texts[-1] and "考" in texts[-1]

        check_outline(reader, in_box, texts)
    return checked


def check_outline(reader: PdfReader, in_box: list[dict[str, Any]], texts: list[str]) -> None:
    outline = reader.outline
    top = [o for o in outline if not isinstance(o, list)]
    children = [o for o in outline if isinstance(o, list)]
    assert [o.title for o in top[:2]] == ["封面", "卷内目录"] and top[-1].title == "备考表"
    entries = top[2:-1]
    assert len(entries) == len(in_box) == len(children)
    for entry, kids, h in zip(entries, children, in_box, strict=True):
        first, last = h["first_page"] - 1, h["last_page"] - 1
        assert entry.title == f"{h['item_no']:04d} {h['head']}（户编号 {h['household_id']}）"
        assert reader.get_destination_page_number(entry) == first
        targets = [reader.get_destination_page_number(k) for k in kids]
        assert targets == sorted(targets) and all(first <= t <= last for t in targets), targets
        titles = [k.title for k in kids]
        assert "家庭成员" in titles, titles
        members_page = targets[titles.index("家庭成员")]
        assert "家庭成员情况" in texts[members_page], texts[members_page][:200]
        assert titles[0] == "封面" and targets[0] == first


def check_manifest_schema(m: dict[str, Any]) -> None:
    """The names issue 4 item 4 promises to outside tools (extra keys are allowed)."""
    assert {"schema_version", "program_version", "built_at", "villages", "problems"} <= m.keys()
    assert isinstance(m["schema_version"], int) and isinstance(m["program_version"], str)
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", m["built_at"])
    assert isinstance(m["problems"], list)
    for village in m["villages"]:
        assert {"code", "name", "boxes", "households"} <= village.keys()
        for box in village["boxes"]:
            assert {"file", "pages", "sheets", "first_item", "last_item"} <= box.keys()
            assert isinstance(box["file"], str) and not Path(box["file"]).is_absolute()
            assert all(isinstance(box[k], int) for k in ("pages", "sheets", "first_item", "last_item"))
        for h in village["households"]:
            keys = ("household_id", "head", "item_no", "box", "first_page", "last_page", "packet", "content_hash")
            assert set(keys) <= h.keys()
            assert all(isinstance(h[k], int) for k in ("item_no", "box", "first_page", "last_page"))
            assert re.fullmatch(r"[0-9a-f]{64}", h["content_hash"])
    for problem in m["problems"]:
        assert {"severity", "file", "line", "column", "village", "household_id", "field", "message", "hint"} == (
            problem.keys()
        )


def check_build(out: Path, *, duplex: bool = True) -> dict[str, Any]:
    """The whole output folder: manifest schema, every village's boxes, spines, packets, no temp files."""
    m = manifest(out)
    check_manifest_schema(m)
    for village in m["villages"]:
        check_village(out, village, duplex=duplex)
        for h in village["households"]:
            assert (out / h["packet"]).is_file()
        spines = sorted((out / Path(village["boxes"][0]["file"]).parent).glob("*竖条.pdf"))
        assert len(spines) == 1, spines
        spine = "".join(page_texts(PdfReader(spines[0]))[0].split())
        assert f"{village['name']}档案" in spine
        for box in village["boxes"]:
            assert f"{box['first_item']:04d}{box['last_item']:04d}" in spine or (
                f"{box['first_item']:04d}" in spine and f"{box['last_item']:04d}" in spine
            )
    assert temp_files(out) == []
    return m


# --------------------------------------------------------------------------- fonts


def _fonts(resources: Any, seen: set[int]) -> Iterator[Any]:
    """Every font dictionary reachable from ``resources`` (form XObjects and descendants included)."""
    if resources is None:
        return
    resources = resources.get_object()
    for ref in (resources.get("/Font") or {}).values():
        font = ref.get_object()
        yield font
        for d in font.get("/DescendantFonts", []):
            yield d.get_object()
    for ref in (resources.get("/XObject") or {}).values():
        key = getattr(ref, "idnum", None) or id(ref)
        if key in seen:
            continue
        seen.add(key)
        xobject = ref.get_object()
        if xobject.get("/Subtype") == "/Form":
            yield from _fonts(xobject.get("/Resources"), seen)


def all_fonts(reader: PdfReader) -> list[Any]:
    seen: set[int] = set()
    found: dict[int, Any] = {}
    for page in reader.pages:
        for font in _fonts(page.get("/Resources"), seen):
            found[id(font)] = font
    return list(found.values())


def font_program(font: Any) -> Any:
    desc = font.get("/FontDescriptor")
    if desc is None:
        return None
    desc = desc.get_object()
    for key in ("/FontFile2", "/FontFile3", "/FontFile"):
        if key in desc:
            return desc[key].get_object()
    return None


def unembedded_fonts(reader: PdfReader) -> set[str]:
    """BaseFont names of fonts without an embedded program (Type0 parents and Type3 excepted)."""
    names = set()
    for font in all_fonts(reader):
        if font.get("/Subtype") in ("/Type0", "/Type3"):
            continue
        if font_program(font) is None:
            names.add(str(font.get("/BaseFont")))
    return names


def check_subset_tags(reader: PdfReader, where: str) -> None:
    """ISO 32000-1 §9.6.4: one subset tag names one font program within a file."""
    programs: dict[str, set[str]] = {}
    for font in all_fonts(reader):
        base = str(font.get("/BaseFont", ""))
        program = font_program(font)
        if program is None or len(base) < 8 or base[7] != "+":
            continue
        programs.setdefault(base[1:7], set()).add(hashlib.sha256(program.get_data()).hexdigest())
    assert programs, where
    clashes = {tag: len(p) for tag, p in programs.items() if len(p) > 1}
    assert not clashes, f"{where}: 子集标记重复 {clashes}"
    # one shared copy of each of the program's own CJK faces per box, not one per household
    own = [str(f["/BaseFont"]).split("+", 1)[-1] for f in all_fonts(reader) if f.get("/Subtype") == "/Type0"]
    assert len(own) == len(set(own)), f"{where}: {sorted(own)}"


def evidence_unembedded_fonts(data: Path) -> set[str]:
    """Unembedded fonts of the evidence PDFs shipped in a data folder (third-party files)."""
    names: set[str] = set()
    for pdf in data.rglob("*.pdf"):
        names |= unembedded_fonts(PdfReader(pdf))
    return names


# --------------------------------------------------------------------------- fixtures


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


# --------------------------------------------------------------------------- 1. full build


@pytest.mark.slow
def test_sample_build_subprocess(sample):
    out, proc = sample
    assert proc.returncode == ExitCode.ok, proc.stderr
    # stdout carries results only: the manifest path and the summary
    lines = proc.stdout.splitlines()
    assert lines[0] == str(out.resolve() / "manifest.json")
    # the sample's three evidence PDFs with unembedded fonts: one warning each, counted
    assert re.fullmatch(r"渲染 48 户 · 未变化 0 户 · 整理 3 个村 · 警告 3 条 · 用时 [\d.]+ 秒 · 问题台账：严重 \d+ 条 · .*",
                        lines[1]), lines
    assert len(lines) == 2, lines
    assert "▶" in proc.stderr  # progress went to stderr


@pytest.mark.slow
def test_sample_boxes_agree_with_manifest(sample):
    out, proc = sample
    assert proc.returncode == ExitCode.ok, proc.stderr
    m = check_build(out)
    assert [v["code"] for v in m["villages"]] == ["411621105201", "411621105202", "411621105203"]
    assert sum(len(v["households"]) for v in m["villages"]) == 48
    assert m["failed"] == []


@pytest.mark.slow
def test_sample_fonts(sample):
    """Every font in the boxes and spines is embedded — even though some sample evidence PDFs
    (bank statements made by tools/make_sample.py) use an unembedded Helvetica, which the
    packet renderer rasterises — and subset tags are unique per font program in each box."""
    out, proc = sample
    assert proc.returncode == ExitCode.ok, proc.stderr
    assert evidence_unembedded_fonts(SAMPLE), "样例数据应含未嵌入字体的佐证 PDF（测试前提）"
    for village in manifest(out)["villages"]:
        for box in village["boxes"]:
            reader = PdfReader(out / box["file"])
            check_subset_tags(reader, box["file"])
            assert unembedded_fonts(reader) == set(), box["file"]
        spine = next((out / Path(village["boxes"][0]["file"]).parent).glob("*竖条.pdf"))
        assert unembedded_fonts(PdfReader(spine)) == set()


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("qpdf") is None, reason="qpdf not installed")
def test_sample_pdfs_pass_qpdf_check(sample):
    """Every PDF of the sample build — boxes, spines, packets — passes ``qpdf --check``, an
    independent reader that parses every object and decodes every stream (the packets' font
    programs are spliced from per-glyph deflate blocks; the boxes are written by pypdf)."""
    out, proc = sample
    assert proc.returncode == ExitCode.ok, proc.stderr
    pdfs = sorted(p for p in out.rglob("*.pdf") if ".store" not in p.parts and ".cache" not in p.parts)
    assert any("分户档卡" in p.parts for p in pdfs) and any("盒" in p.name for p in pdfs)
    for pdf in pdfs:
        check = subprocess.run(["qpdf", "--check", str(pdf)], capture_output=True, text=True, check=False)
        assert check.returncode == 0, (pdf, check.stdout[-800:], check.stderr[-800:])
        assert "No syntax or stream encoding errors found" in check.stdout, pdf


def test_small_build_reads_back(small):
    _data, out, result = small
    assert re.fullmatch(r"渲染 12 户 · 未变化 0 户 · 整理 2 个村 · 用时 [\d.]+ 秒 · 问题台账：严重 \d+ 条 · .*", summary_line(result))
    assert result.stdout.strip().splitlines()[0] == str(out.resolve() / "manifest.json")
    m = check_build(out)
    assert [len(v["boxes"]) for v in m["villages"]] == [2, 2], "每村应装两盒（测试前提）"
    assert [h["item_no"] for v in m["villages"] for h in v["households"]] == [1, 2, 3, 4, 5, 6] * 2
    assert m["failed"] == [] and m["problems"] == []


def test_small_build_fonts_embedded_and_tags_unique(small):
    data, out, _ = small
    assert evidence_unembedded_fonts(data) == set()  # no third-party PDFs in generated data
    for path in sorted(out.rglob("*盒.pdf")) + sorted(out.rglob("*竖条.pdf")):
        reader = PdfReader(path)
        assert all_fonts(reader), path
        assert unembedded_fonts(reader) == set(), path
        check_subset_tags(reader, path.name)


def test_simplex_build(tmp_path):
    data = make_data(tmp_path / "data", villages=(("411621105203", "前进村", 2),), print={"duplex": False})
    result = run_build(data, "-o", tmp_path / "out")
    assert result.exit_code == ExitCode.ok, result.output
    m = check_build(tmp_path / "out", duplex=False)
    for box in m["villages"][0]["boxes"]:
        assert all("/Contents" in page for page in PdfReader(tmp_path / "out" / box["file"]).pages)


# --------------------------------------------------------------------------- 2. incremental


def _change_phone(data: Path, household_id: str) -> None:
    for path, record in iter_records(data):
        if record["household_id"] == household_id:
            record["phone"] = "13912345678" if record.get("phone") != "13912345678" else "13812345678"
            path.write_text(dump_household_yaml(record), encoding="utf-8")
            return
    raise AssertionError(household_id)


@pytest.mark.slow
def test_incremental(tmp_path):
    data = make_data(tmp_path / "data")
    out = tmp_path / "out"
    first = run_build(data, "-o", out)
    assert first.exit_code == ExitCode.ok, first.output
    before = pdf_snapshot(out)
    m1 = manifest(out)

    # nothing changed: nothing rendered, no PDF touched
    again = run_build(data, "-o", out)
    assert again.exit_code == ExitCode.ok, again.output
    assert summary_line(again).startswith("渲染 0 户 · 未变化 12 户 · 整理 0 个村"), again.stdout
    assert pdf_snapshot(out) == before
    assert manifest(out)["villages"] == m1["villages"]

    # one household changed: only it is rendered, only its box (and its village's spine) rewritten
    village = m1["villages"][0]
    target = village["households"][1]
    assert target["box"] == 1 and len(village["boxes"]) == 2
    _change_phone(data, target["household_id"])
    one = run_build(data, "-o", out)
    assert one.exit_code == ExitCode.ok, one.output
    assert summary_line(one).startswith("渲染 1 户 · 未变化 11 户 · 整理 1 个村"), one.stdout
    after = pdf_snapshot(out)
    assert after.keys() == before.keys()
    changed = {k for k in before if after[k] != before[k]}
    spine1 = next(k for k in before if k.startswith(f"{village['code']}_") and k.endswith("竖条.pdf"))
    assert changed - {spine1} == {target["packet"], village["boxes"][0]["file"]}, sorted(changed)
    m2 = check_build(out)
    assert m2["villages"][1] == m1["villages"][1]
    hashes = {h["household_id"]: h["content_hash"] for v in m2["villages"] for h in v["households"]}
    old = {h["household_id"]: h["content_hash"] for v in m1["villages"] for h in v["households"]}
    assert {k for k in old if old[k] != hashes[k]} == {target["household_id"]}

    # --force: everything rendered and rewritten again, to the same bytes
    forced = run_build(data, "-o", out, "--force")
    assert forced.exit_code == ExitCode.ok, forced.output
    assert summary_line(forced).startswith("渲染 12 户 · 未变化 0 户 · 整理 2 个村"), forced.stdout
    rebuilt = pdf_snapshot(out)
    assert all(rebuilt[k][0] != after[k][0] for k in after), "--force 应重写全部 PDF"
    assert {k: v[1] for k, v in rebuilt.items()} == {k: v[1] for k, v in after.items()}
    check_build(out)


def test_packet_replaced_behind_the_state_is_rendered_again(tmp_path):
    """A run killed after replacing a packet but before recording its state leaves a packet the
    state does not describe; if the data then goes back to what the state says, that packet
    must not be reused."""
    data = make_data(tmp_path / "data")
    out = tmp_path / "out"
    assert run_build(data, "-o", out).exit_code == ExitCode.ok
    target = manifest(out)["villages"][0]["households"][0]
    packet = out / target["packet"]
    original = packet.read_bytes()
    packet.write_bytes(original.replace(b"%%EOF", b"%%EOF\n% newer run"))  # same name, other content
    again = run_build(data, "-o", out)
    assert again.exit_code == ExitCode.ok, again.output
    assert summary_line(again).startswith("渲染 1 户 · 未变化 11 户"), again.stdout
    assert packet.read_bytes() == original


def test_removed_households_leave_no_stale_files(tmp_path, small):
    """Households deleted from the data: the village shrinks to one box, and neither the old
    second box nor the deleted households' packets stay in the output folder."""
    data, built, _ = small
    data = shutil.copytree(data, tmp_path / "data")
    out = shutil.copytree(built, tmp_path / "out")
    village = data / "411621105201_李庄村"
    for hid in ("4116211052010002", "4116211052010005", "4116211052010006"):
        shutil.rmtree(village / hid)
    result = run_build(data, "-o", out)
    assert result.exit_code == ExitCode.ok, result.output
    m = check_build(out)
    first = m["villages"][0]
    assert [h["household_id"][-4:] for h in first["households"]] == ["0001", "0003", "0004"]
    assert [h["item_no"] for h in first["households"]] == [1, 2, 3]
    folder = out / "411621105201_李庄村"
    assert sorted(p.name for p in folder.glob("*盒.pdf")) == [Path(b["file"]).name for b in first["boxes"]]
    for v in m["villages"]:
        packets = sorted(p.relative_to(out).as_posix() for p in out.glob(f"{v['code']}_*/分户档卡/*"))
        assert packets == sorted(h["packet"] for h in v["households"])


# --------------------------------------------------------------------------- 3. failure isolation


def _break_id(record: dict[str, Any]) -> None:
    idn = record["members"][0]["id_number"]
    record["members"][0]["id_number"] = idn[:-1] + ("0" if idn[-1] != "0" else "1")


@pytest.mark.slow
def test_failures_are_isolated(tmp_path):
    data = make_data(
        tmp_path / "data",
        villages=(("411621105201", "李庄村", 3), ("411621105202", "王楼村", 3), ("411621105203", "前进村", 2)),
    )
    records = {r["household_id"]: (p, r) for p, r in iter_records(data)}
    bad_id, bad_template = "4116211052010002", "4116211052020001"
    path, record = records[bad_id]
    _break_id(record)
    path.write_text(dump_household_yaml(record), encoding="utf-8")
    path, record = records[bad_template]
    record["notes"] = "户主于 2024 年外出务工，家中由配偶照看。"
    path.write_text(dump_household_yaml(record), encoding="utf-8")
    override = path.parent.parent / "templates" / "sections" / "notes.xml"
    override.parent.mkdir(parents=True)
    override.write_text('<section layout="prose" title="户说明"><title>户说明</title><p>未闭合</section', "utf-8")

    out = tmp_path / "out"
    result = run_build(data, "-o", out)
    assert result.exit_code == ExitCode.partial, result.output
    assert "未生成 2 户" in summary_line(result)
    assert f"未生成：户 {bad_id}：数据有误" in result.stderr and "校验位错误" in result.stderr
    assert f"未生成：户 {bad_template}：" in result.stderr and "notes.xml" in result.stderr

    m = manifest(out)
    failed = {f["household_id"]: f["reason"] for f in m["failed"]}
    assert failed.keys() == {bad_id, bad_template}
    assert "校验位错误" in failed[bad_id] and "notes.xml" in failed[bad_template]
    errors = {p["household_id"]: p for p in m["problems"] if p["severity"] == "error"}
    assert errors.keys() == {bad_id, bad_template}, m["problems"]
    assert errors[bad_id]["field"] == "members[0].id_number" and errors[bad_id]["line"]
    assert "notes.xml" in errors[bad_template]["message"]

    # every other household and village is built, and the failed ones are nowhere in the boxes
    built = {h["household_id"] for v in m["villages"] for h in v["households"]}
    assert built == set(records) - {bad_id, bad_template}
    for village in m["villages"]:
        check_village(out, village, consecutive=False)
        for box in village["boxes"]:
            texts = page_texts(PdfReader(out / box["file"]))
            assert not any(is_cover_of(t, bad_id) or is_cover_of(t, bad_template) for t in texts)
    assert [len(v["households"]) for v in m["villages"]] == [2, 2, 2]

    # both keep their 件号 (the record with errors 0002 of 李庄村, the one that failed to render
    # 0001 of 王楼村, before every packet): the 备考表 of the box each belongs to says so
    villages = {v["name"]: v for v in m["villages"]}
    assert [h["item_no"] for h in villages["李庄村"]["households"]] == [1, 3]
    assert [h["item_no"] for h in villages["王楼村"]["households"]] == [2, 3]
    remarks = {
        b["file"]: page_texts(PdfReader(out / b["file"]))[-1] for v in m["villages"] for b in v["boxes"]
    }
    noted = {}
    for village, number, hid in (("李庄村", "0002", bad_id), ("王楼村", "0001", bad_template)):
        box = villages[village]["boxes"][0]["file"]
        assert "备 考 表" in remarks[box] and "缺 1 件" in remarks[box]
        assert re.search(rf"缺第\s*{number}\s*件.*{hid}", remarks[box], re.DOTALL), remarks[box]
        noted[box] = True
    assert not any("缺第" in text for name, text in remarks.items() if name not in noted)

    # the failures are not forgotten by the next run
    again = run_build(data, "-o", out)
    assert again.exit_code == ExitCode.partial, again.output
    assert {f["household_id"] for f in manifest(out)["failed"]} == {bad_id, bad_template}


def test_fixing_a_record_with_errors_renders_only_it(tmp_path):
    """Its 件号 was kept while it was wrong, so no other household's cover changes."""
    data = make_data(tmp_path / "data", villages=(("411621105201", "李庄村", 6),))
    path, record = list(iter_records(data))[1]
    good = path.read_text(encoding="utf-8")
    _break_id(record)
    path.write_text(dump_household_yaml(record), encoding="utf-8")
    out = tmp_path / "out"
    assert run_build(data, "-o", out).exit_code == ExitCode.partial
    path.write_text(good, encoding="utf-8")
    fixed = run_build(data, "-o", out)
    assert fixed.exit_code == ExitCode.ok, fixed.output
    assert summary_line(fixed).startswith("渲染 1 户 · 未变化 5 户"), fixed.stdout
    (village,) = manifest(out)["villages"]
    assert [h["item_no"] for h in village["households"]] == [1, 2, 3, 4, 5, 6]


def test_village_with_no_household_built_does_not_stop_the_others(tmp_path):
    """Every household of 王楼村 has a bad ID number: it gets no box, the others do (exit 3)."""
    data = make_data(tmp_path / "data", villages=(("411621105201", "李庄村", 2), ("411621105202", "王楼村", 2)))
    for path, record in iter_records(data):
        if record["household_id"].startswith("411621105202"):
            _break_id(record)
            path.write_text(dump_household_yaml(record), encoding="utf-8")
    out = tmp_path / "out"
    result = run_build(data, "-o", out)
    assert result.exit_code == ExitCode.partial, result.output
    assert "内部错误" not in result.output
    m = manifest(out)
    villages = {v["name"]: v for v in m["villages"]}
    assert len(villages["李庄村"]["households"]) == 2 and villages["李庄村"]["boxes"]
    assert villages["王楼村"]["households"] == [] and villages["王楼村"]["boxes"] == []
    assert len(m["failed"]) == 2
    again = run_build(data, "-o", out)  # and a second run agrees
    assert again.exit_code == ExitCode.partial, again.output


def test_village_name_with_characters_no_file_name_may_hold(tmp_path):
    """The cover prints 李庄/东组:一? as written; file and folder names use _ instead."""
    data = make_data(tmp_path / "data", villages=(("411621105201", "李庄村", 2),))
    (village_toml,) = data.glob("*/village.toml")
    text = village_toml.read_text(encoding="utf-8")
    village_toml.write_text(re.sub(r'(?m)^name = .*$', 'name = "李庄/东组:一?"', text), encoding="utf-8")
    out = tmp_path / "out"
    result = run_build(data, "-o", out)
    assert result.exit_code == ExitCode.ok, result.output
    (folder,) = [p for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert folder.name == "411621105201_李庄_东组_一_"
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted(["411621105201_李庄_东组_一__第01盒.pdf",
                           "411621105201_李庄_东组_一__竖条.pdf", "分户档卡"])
    (village,) = manifest(out)["villages"]
    assert village["name"] == "李庄/东组:一?"
    for box in village["boxes"]:
        assert (out / box["file"]).is_file()
        assert "李庄/东组:一?" in page_texts(PdfReader(out / box["file"]))[0]


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


@pytest.mark.skipif(sys.platform == "win32", reason="forked workers inherit the stand-in")
def test_a_worker_that_dies_is_reported_and_the_rerun_completes(tmp_path, monkeypatch):
    from archive_builder import build as build_module

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


@pytest.mark.slow
@pytest.mark.parametrize("moment", ["rendering", "collating"])
def test_kill_during_rebuild_keeps_previous_outputs(tmp_path, moment):
    data = make_data(tmp_path / "data")
    out = tmp_path / "out"
    first = run_build(data, "-o", out)
    assert first.exit_code == ExitCode.ok, first.output
    boxes = {b["file"]: b["pages"] for v in manifest(out)["villages"] for b in v["boxes"]}
    box_paths = [out / f for f in boxes]

    def box_part() -> bool:
        # complete at every moment: each published box ends with %%EOF while the rebuild runs
        for path in box_paths:
            assert path.read_bytes().rstrip().endswith(b"%%EOF"), path
        folder = out / "411621105201_李庄村"
        return any(folder.glob(".*盒.pdf.*.part")) or any((out / "411621105202_王楼村").glob(".*盒.pdf.*.part"))

    def packet_part() -> bool:
        return any(out.glob("*/分户档卡/.*.part"))

    proc = subprocess_build(data, out, "--force")
    try:
        caught = _wait_for(packet_part if moment == "rendering" else box_part, proc)
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


def test_output_under_a_file_fails_before_work(tmp_path, small):
    data, _, _ = small
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    started = time.monotonic()
    result = run_build(data, "-o", blocker / "out")
    assert result.exit_code == ExitCode.output_unusable, result.output
    assert "无法写入输出目录" in result.stderr
    assert time.monotonic() - started < 5
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


# --------------------------------------------------------------------------- 6. reproducible


def _pdf_bytes(out: Path) -> dict[str, bytes]:
    return {k: v[1] for k, v in pdf_snapshot(out).items()}


def _differences(first: dict[str, bytes], second: dict[str, bytes]) -> list[str]:
    assert first.keys() == second.keys()
    assert any(k.endswith("盒.pdf") for k in first) and any("分户档卡" in k for k in first)
    assert any(k.endswith("竖条.pdf") for k in first)
    return sorted(k for k in first if first[k] != second[k])


def _fresh_process_build(data: Path, out: Path, jobs: str) -> None:
    # a fresh interpreter each time: no module state left over from other builds in this process
    proc = subprocess_build(data, out, "-j", jobs)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == ExitCode.ok, stderr


@pytest.mark.slow
def test_rebuild_from_scratch_is_byte_identical(tmp_path, small):
    """Same data, same output path, one worker then two: the same bytes (boxes, packets, spines)."""
    data, _, _ = small
    target = tmp_path / "out"
    _fresh_process_build(data, target, "1")
    first = _pdf_bytes(target)
    shutil.rmtree(target)
    _fresh_process_build(data, target, "2")
    assert _differences(first, _pdf_bytes(target)) == []


def test_versions_store_the_packets_as_written(small):
    """The store takes each packet's hash from its renderer (the file is not hashed again):
    every recorded PDF blob is the packet file's bytes, and `store check` finds the store sound."""
    from archive_builder.store import VersionStore

    _data, out, _ = small
    store = VersionStore(out)
    manifest = json.loads((out / "manifest.json").read_text("utf-8"))
    packets = [h for v in manifest["villages"] for h in v["households"]]
    assert packets
    for h in packets:
        latest = store.latest(h["household_id"])
        data = (out / h["packet"]).read_bytes()
        assert latest is not None and latest.pdf_sha == hashlib.sha256(data).hexdigest()
        assert store.blob_path(latest.pdf_sha).read_bytes() == data
    assert store.check() == []


def test_two_fresh_builds_are_byte_identical(tmp_path, small):
    data, out, _ = small
    other = tmp_path / "again"
    result = run_build(data, "-o", other, "-j", "1")
    assert result.exit_code == ExitCode.ok, result.output
    assert _differences(_pdf_bytes(out), _pdf_bytes(other)) == []


_SPAWN_BUILD = """
import multiprocessing, sys
if __name__ == "__main__":
    multiprocessing.set_start_method("spawn")
    from archive_builder.cli import entry
    sys.argv[0] = "archive-builder"
    entry()
"""


@pytest.mark.slow
def test_spawned_workers_give_the_same_bytes(tmp_path, small):
    """Windows and macOS start workers by spawning, not forking: the build still works there,
    without the fork-only shortcuts (workers parsing records, the forked cache saver), and its
    files are byte for byte those of a forked build."""
    data, out, _ = small
    spawned = tmp_path / "spawned"
    proc = subprocess.run(
        [sys.executable, "-c", _SPAWN_BUILD, "build", str(data), "-o", str(spawned), "-j", "2"],
        check=False, cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == ExitCode.ok, proc.stderr
    assert _differences(_pdf_bytes(out), _pdf_bytes(spawned)) == []
    manifest = json.loads((spawned / "manifest.json").read_text(encoding="utf-8"))
    assert sum(len(v["households"]) for v in manifest["villages"]) == 12


# --------------------------------------------------------------------------- parallel loading


@pytest.mark.parametrize("jobs", [2, 3])
def test_parallel_load_gives_what_the_serial_load_gives(tmp_path, monkeypatch, jobs):
    """A first build parses its households in worker processes; the dataset, its problems and
    the record cache are exactly what the serial loader gives, in the same order."""
    from archive_builder import build as build_module
    from archive_builder.build import Build, BuildOptions
    from archive_builder.outdir import prepare
    from archive_builder.records.cache import RecordCache
    from archive_builder.records.loader import load_dataset
    from archive_builder.validate import validate_dataset

    data = make_data(tmp_path / "data")
    records = list(iter_records(data))
    path, record = records[1]
    _break_id(record)  # a rule's error, with its line
    path.write_text(dump_household_yaml(record), encoding="utf-8")
    path, record = records[3]
    record["members"][0]["birth_date"] = "not a date"  # a model error: a partial record
    path.write_text(dump_household_yaml(record), encoding="utf-8")
    records[4][0].write_text("household_id: [unclosed\n", encoding="utf-8")  # YAML syntax
    records[7][0].with_name("household.json").write_text("{}", encoding="utf-8")  # two files

    pools: list[int] = []

    class CountingPool(build_module.ProcessPoolExecutor):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            pools.append(kwargs.get("max_workers") or args[0])
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(build_module, "ProcessPoolExecutor", CountingPool)
    monkeypatch.setattr(build_module, "_PARSE_PER_WORKER", 2)

    def household_view(dataset: Any) -> list[Any]:
        return [
            (v.config.code, h.folder, h.file, h.display, h.household_id, h.raw, h.positions,
             h.problems, h.record, h.partial, h.cache_key)
            for v, h in dataset.households()
        ]

    serial_cache = RecordCache(tmp_path / "serial.pickle")
    serial = load_dataset(data, cache=serial_cache)
    serial_problems = validate_dataset(serial, cache=RecordCache(None))
    assert any(h.record is None for _, h in serial.households())
    assert any(h.partial is not None for _, h in serial.households())

    out = tmp_path / "out"
    for run in (1, 2):  # the second run finds every household in the record cache
        b = Build(data, out, BuildOptions(jobs=jobs))
        b.out = prepare(out, data)
        b._saving = None
        b.load()
        if b._saving is not None:
            b._saving.join()
        if b._pool is not None:
            b._pool.shutdown()
        # the first run parsed in the build's pool (started for it) and in this process; the
        # second found all cached
        assert pools == [jobs], pools
        assert household_view(b.dataset) == household_view(serial)
        assert b.dataset.problems == serial.problems
        assert b.validation.problems() == serial_problems
    serial_cache.save()
    cached = RecordCache(out / ".cache" / "records.pickle")._old
    assert cached and cached.keys() == RecordCache(tmp_path / "serial.pickle")._old.keys()


def test_archive_toml_output_dir_and_fonts_are_relative_to_the_data(tmp_path):
    from archive_builder.build import configured_output
    from archive_builder.packet import configured_fonts
    from archive_builder.records.loader import load_dataset
    from archive_builder.render.fonts import FontSet
    from archive_builder.templates import resolve_set

    data = make_data(tmp_path / "data")
    (data / "fonts").mkdir()
    ukai = next(p for p in FontSet.discover().faces.values() if "ukai" in str(p.path).lower()).path
    (data / "fonts" / "kai.ttc").symlink_to(ukai)
    toml = data / "archive.toml"
    toml.write_text(
        toml.read_text(encoding="utf-8") + '\n[fonts]\nbody = "fonts/kai.ttc#0"\n\n[output]\ndir = "../成品"\n',
        encoding="utf-8",
    )
    assert configured_output(data) == (tmp_path / "成品").resolve()
    dataset = load_dataset(data)
    fonts = configured_fonts(resolve_set("default", data_dir=data), dataset.config, data)
    assert fonts["body"] == str((data / "fonts" / "kai.ttc").resolve()) + "#0"
    assert FontSet.discover(fonts).faces["body"].path.resolve() == ukai.resolve()
    result = CliRunner().invoke(main, ["build", str(data), "-j", "1"])
    assert result.exit_code == ExitCode.ok, result.output
    assert (tmp_path / "成品" / "manifest.json").is_file()


def test_rendering_warnings_name_the_household_and_stay_in_the_manifest(tmp_path):
    """A photo cut off in copying is found only when rendering: the clerk sees the household on
    screen, and manifest.json keeps the warning while that packet is in the folder."""
    data = make_data(tmp_path / "data", villages=(("411621105201", "李庄村", 3),))
    photo = min(data.rglob("*.jpg"))
    photo.write_bytes(photo.read_bytes()[: photo.stat().st_size // 2])
    hid = photo.relative_to(data).parts[1]
    out = tmp_path / "out"
    first = run_build(data, "-o", out)
    assert first.exit_code == ExitCode.ok, first.output
    assert f"警告：户 {hid}：佐证材料 evidence/photo_01.jpg 无法读取" in first.stderr

    def rendering_warnings() -> list[dict[str, Any]]:
        return [p for p in manifest(out)["problems"] if p["severity"] == "warning" and "占位页" in p["message"]]
    (problem,) = rendering_warnings()
    assert problem["household_id"] == hid and problem["village"] == "李庄村"
    other = next(h["household_id"] for h in manifest(out)["villages"][0]["households"] if h["household_id"] != hid)
    _change_phone(data, other)
    again = run_build(data, "-o", out)
    assert summary_line(again).startswith("渲染 1 户"), again.stdout
    assert [p["household_id"] for p in rendering_warnings()] == [hid]


@pytest.mark.parametrize(("setting", "expected"), [
    ("workers = 1", 1), ("workers = 3", 3), ('workers = "two"', None), ("workers = 0", None), ("", None),
])
def test_early_worker_count_comes_from_archive_toml(tmp_path, setting, expected):
    """Before the dataset is loaded, [build] workers is read on its own (a bad value is left
    for loading to report); with one worker no pool is started early."""
    from archive_builder.build import Build, BuildOptions

    data = tmp_path / "data"
    data.mkdir()
    (data / "archive.toml").write_text(f"[build]\n{setting}\n", encoding="utf-8")
    b = Build(data, tmp_path / "out", BuildOptions())
    cpus = os.cpu_count() or 1
    # archive.toml's setting is bounded by the CPUs (issue 17: workers = 100000 ran away)
    assert b._early_jobs() == min(expected or cpus, cpus)
    assert Build(data, tmp_path / "out", BuildOptions(jobs=2))._early_jobs() == 2
    if expected == 1:
        b._start_early_pool()
        assert b._pool is None
