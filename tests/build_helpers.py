"""Helpers shared by the build tests (test_build*.py): a small generated township, the CLI
run in this process, box PDFs read back with pypdf. Their fixtures are in conftest.py."""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from pypdf import PdfReader
from synthetic import dump_household_yaml, iter_records, write_dataset

from archive_builder.cli import main

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


def change_phone(data: Path, household_id: str) -> None:
    for path, record in iter_records(data):
        if record["household_id"] == household_id:
            record["phone"] = "13912345678" if record.get("phone") != "13912345678" else "13812345678"
            path.write_text(dump_household_yaml(record), encoding="utf-8")
            return
    raise AssertionError(household_id)


def break_id(record: dict[str, Any]) -> None:
    idn = record["members"][0]["id_number"]
    record["members"][0]["id_number"] = idn[:-1] + ("0" if idn[-1] != "0" else "1")
