"""Issue 5 end to end: real builds, then history / diff / verify / store check through the CLI.

One module-scoped fixture builds a synthetic village of four households, copies the first
packets, then changes one household's income and one member's name (household A) and
reorders the members and measures of another (household B), and builds again. The tests
only read that output (tests that damage it work on a copy).
"""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result
from synthetic import write_dataset

from archive_builder.cli import main
from archive_builder.errors import ExitCode
from archive_builder.versions.store import VersionStore
from archive_builder.versions.verify import decode_qr_image

REPO = Path(__file__).resolve().parents[1]
VILLAGE = ("411621105201", "李庄村", 4)
PACKETS = "411621105201_李庄村/分户档卡"
LABELS = {"wage": "工资性收入", "business": "生产经营性收入", "property": "财产性收入",
          "transfer": "转移性收入", "costs": "生产经营性支出"}  # fmt: skip


def cli(*args: Any) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def _household_files(data: Path) -> dict[str, Path]:
    return {p.parent.name: p for p in sorted(data.rglob("household.yaml"))}


def _load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _dump(path: Path, record: dict[str, Any]) -> None:
    path.write_text(
        yaml.safe_dump(record, allow_unicode=True, sort_keys=False), encoding="utf-8"
    )


def _build(data: Path, out: Path) -> None:
    result = cli("-q", "build", data, "-o", out, "-j", "1")
    assert result.exit_code == ExitCode.ok, result.output


def change_income_and_name(path: Path) -> tuple[str, str]:
    """Raise one income amount by 1000 and rename the second member; return the two lines
    ``diff`` must print for them."""
    record = _load(path)
    income = record["income"][-1]
    key = next(k for k in LABELS if isinstance(income.get(k), dict) and income[k])
    item, amount = next(iter(income[key].items()))
    income[key][item] = amount + 1000
    member = record["members"][1]
    old_name, member["name"] = member["name"], member["name"][0] + "嘉懿"
    _dump(path, record)
    return (
        f"家庭成员「{old_name}」· 姓名：{old_name} → {member['name']}",
        f"收入情况 {income['year']}年 · {LABELS[key]} · {item}：{amount} → {amount + 1000}",
    )


def reverse_members_and_measures(path: Path) -> None:
    record = _load(path)
    record["members"].reverse()
    record["measures"].reverse()
    _dump(path, record)


@dataclass
class Built:
    data: Path
    out: Path
    a: str  # income and a name changed
    b: str  # members and measures reordered
    unchanged: list[str]
    expected_lines: tuple[str, str]
    v1_pdfs: dict[str, Path]  # packets of the first build
    first_histories: dict[str, str]
    snapshot: Path  # data + out after the first build, for tests that build again

    def packet(self, hid: str) -> Path:
        return self.out / PACKETS / f"{hid}.pdf"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    root = tmp_path_factory.mktemp("inspect")
    data, out = root / "data", root / "out"
    write_dataset(
        data, (VILLAGE,), seed=3, photos_per_household=1, photo_size=(300, 400)
    )
    _build(data, out)
    files = _household_files(data)
    records = {hid: _load(p) for hid, p in files.items()}
    wide = [
        h
        for h, r in records.items()
        if len(r["members"]) >= 2 and len(r.get("measures", [])) >= 2
    ]
    assert len(wide) >= 2, (
        "the synthetic village needs two households with 2+ members and measures"
    )
    a, b = wide[0], wide[1]
    first_histories = {hid: cli("history", "-o", out, hid).output for hid in files}
    snapshot = root / "snapshot"
    shutil.copytree(data, snapshot / "data")
    shutil.copytree(out, snapshot / "out")
    (root / "v1").mkdir()
    v1_pdfs = {
        hid: Path(shutil.copy(out / PACKETS / f"{hid}.pdf", root / "v1" / f"{hid}.pdf"))
        for hid in files
    }

    expected = change_income_and_name(files[a])
    reverse_members_and_measures(files[b])
    _build(data, out)
    return Built(data, out, a, b, [h for h in files if h not in (a, b)], expected, v1_pdfs,
                 first_histories, snapshot)  # fmt: skip


def _cover_png(pdf: Path, target: Path, dpi: int = 100) -> Path:
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(str(pdf))
    try:
        doc[0].render(scale=dpi / 72).to_pil().save(target)
    finally:
        doc.close()
    return target


def _qr_text(pdf: Path, tmp_path: Path) -> str:
    """Return the QR text of a packet's cover, decoded as an inspector's scanner would."""
    return decode_qr_image(_cover_png(pdf, tmp_path / f"{pdf.stem}-cover.png"))


_HISTORY_LINE = re.compile(
    r"^版本 (\d+)  (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)  ([0-9a-f]{12})  (\d+) 页  (.+)$"
)


def _history(out: Path, hid: str) -> list[tuple[str, ...]]:
    result = cli("history", "-o", out, hid)
    assert result.exit_code == ExitCode.ok, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"户 {hid} 共 {len(lines) - 1} 个版本："
    parsed = [_HISTORY_LINE.match(line) for line in lines[1:]]
    assert all(parsed), result.output
    return [m.groups() for m in parsed if m]


def _field_lines(output: str) -> list[str]:
    """Return the lines under 字段变化（n 项）： in diff's output."""
    match = re.search(r"^字段变化（(\d+) 项）：\n((?:  .*\n?)*)", output, re.MULTILINE)
    if match is None:
        return []
    lines = [line.strip() for line in match.group(2).splitlines()]
    assert len(lines) == int(match.group(1))
    return lines


# -- versions and history ---------------------------------------------------------------------


def test_first_build_gives_every_household_version_1(built: Built) -> None:
    for hid, output in built.first_histories.items():
        assert output.startswith(f"户 {hid} 共 1 个版本：\n版本 1  "), output
        assert output.rstrip().endswith("首个版本")


def test_second_build_adds_version_2_only_where_data_changed(built: Built) -> None:
    for hid in built.unchanged:
        assert [line[0] for line in _history(built.out, hid)] == ["1"]
    for hid in (built.a, built.b):
        assert [line[0] for line in _history(built.out, hid)] == ["1", "2"]
    with VersionStore(built.out) as store:
        assert store.stats() == (4, 6)


def test_history_lines(built: Built) -> None:
    (_, _, hash1, pages1, summary1), (_, _, hash2, pages2, summary2) = _history(
        built.out, built.a
    )
    assert summary1 == "首个版本"
    assert hash1 != hash2 and int(pages1) > 5 and int(pages2) > 5
    assert sorted(summary2.split(" · ")) == ["姓名 1 项", "收入情况 1 项"]
    # the cover of each build printed the number and hash the store then recorded
    with VersionStore(built.out) as store:
        assert store.get(built.a, 1).content_hash.startswith(hash1)
        assert store.latest(built.a).pages == int(pages2)  # type: ignore[union-attr]


def test_history_of_a_reordered_household_says_no_field_changed(built: Built) -> None:
    lines = _history(built.out, built.b)
    assert lines[1][4] == "字段无变化（仅顺序或版式不同）"


# -- diff of two versions -----------------------------------------------------------------------


def test_diff_lists_exactly_the_two_field_changes(built: Built) -> None:
    result = cli("diff", "-o", built.out, built.a)
    assert result.exit_code == ExitCode.problems, result.output
    assert result.output.startswith(f"户 {built.a} 版本 1 与版本 2 的比较\n")
    assert sorted(_field_lines(result.output)) == sorted(built.expected_lines)
    # the rendered side: the members and income sections changed, each change on its page
    # as printed, named by section, heading, row and column
    assert "\n  ▌家庭成员\n" in result.output and "\n  ▌收入台账\n" in result.output
    text = result.output[result.output.index("文本变化"):result.output.index("变化的页面")]
    changes = [line.strip() for line in text.splitlines() if line.startswith("    ")]
    assert changes and all(re.match(r"^[~+-] (家庭成员|收入台账) · ", line) for line in changes), changes
    # both versions were built into the box: the page as printed in the packet and in the box
    assert any(" · 家庭纯收入 · 金额（元）：" in line and re.search(r"（新第 \d+ 页，档案第 \d+ 页）$", line)
               for line in changes)
    assert "\n变化的页面（" in result.output


def test_diff_explicit_versions(built: Built) -> None:
    same = cli("diff", "-o", built.out, built.a, "1", "1")
    assert same.exit_code == ExitCode.ok, same.output
    assert "结论：两者相同。" in same.output and "字段变化" not in same.output
    assert cli("diff", "-o", built.out, built.a, "v2", "v2").exit_code == ExitCode.ok
    backwards = cli("diff", "-o", built.out, built.a, "2", "1")
    assert backwards.exit_code == ExitCode.problems, backwards.output
    name_line = next(line for line in _field_lines(backwards.output) if "姓名" in line)
    old, new = built.expected_lines[0].rsplit("：", 1)[1].split(" → ")
    assert name_line.endswith(f"{new} → {old}")
    # one number: that version against the latest
    assert _field_lines(
        cli("diff", "-o", built.out, built.a, "1").output
    ) == _field_lines(cli("diff", "-o", built.out, built.a).output)


def test_reordering_members_and_measures_is_no_field_change(built: Built) -> None:
    """A reordered list changes the packet (table rows move), so the content hash changes and
    a version is recorded, but no field changed. ``diff`` then reports no field change and
    still exits 1, like diff(1): the two packets differ, and the text and page sections show
    where. Exit 0 is kept for truly identical versions."""
    result = cli("diff", "-o", built.out, built.b)
    assert result.exit_code == ExitCode.problems, result.output
    assert _field_lines(result.output) == []
    assert "字段变化：无（记录数据相同；以下仅为顺序或版式的变化）" in result.output
    assert "结论：有变化（字段无变化 · 文本变化" in result.output
    sections = re.findall(r"^  ▌(\S+?)（", result.output, re.MULTILINE)
    assert set(sections) <= {"封面", "家庭成员", "帮扶措施"}, sections


def test_reordered_copy_is_outdated_without_field_changes(
    built: Built, tmp_path: Path
) -> None:
    result = cli("verify", "-o", built.out, _qr_text(built.v1_pdfs[built.b], tmp_path))
    assert result.exit_code == ExitCode.problems, result.output
    assert "已过期" in result.output
    assert "此后的变化：字段无变化（仅顺序或版式不同）" in result.output


# -- reports ------------------------------------------------------------------------------------


def _red_pixels(png: bytes) -> int:
    from PIL import Image, ImageChops

    with Image.open(io.BytesIO(png)) as image:
        r, g, b = image.convert("RGB").split()
    # the highlight frame is drawn in (220, 0, 0); the packet itself is black on white
    red = r.point(lambda v: 255 if v > 180 else 0)
    not_green = g.point(lambda v: 255 if v < 60 else 0)
    not_blue = b.point(lambda v: 255 if v < 60 else 0)
    mask = ImageChops.multiply(red, ImageChops.multiply(not_green, not_blue))
    return mask.histogram()[255]


def test_html_report(built: Built, tmp_path: Path) -> None:
    report = tmp_path / "比较报告.html"
    result = cli("diff", "-o", built.out, built.a, "--report", report)
    assert result.exit_code == ExitCode.problems, result.output
    assert f"报告：{report}" in result.output
    text = report.read_text(encoding="utf-8")
    table = text[text.index("<table>") : text.index("</table>")]
    for line in built.expected_lines:
        label, values = line.rsplit("：", 1)
        old, new = values.split(" → ")
        assert f"<td>{label}</td><td>{old}</td><td>{new}</td>" in table, line
    images = re.findall(
        r'<img alt="([^"]+)" src="data:image/png;base64,([^"]+)">', text
    )
    assert len(images) >= 2
    highlighted = [
        alt for alt, data in images if _red_pixels(base64.b64decode(data)) > 50
    ]
    # the changed member page is drawn highlighted on both sides
    member_page = re.search(r"家庭成员 · [^<]*（新第 (\d+) 页，档案第 \d+ 页）", text)
    assert member_page is not None
    assert any(re.fullmatch(rf"原第 {member_page.group(1)} 页（档案第 \d+ 页）", alt) for alt in highlighted), highlighted


def _fonts_embedded(reader: Any) -> list[tuple[str, bool]]:
    fonts = []
    for page in reader.pages:
        for font in (page["/Resources"].get("/Font") or {}).values():
            font = font.get_object()
            descriptor = font.get("/FontDescriptor")
            if descriptor is None and "/DescendantFonts" in font:
                descriptor = (
                    font["/DescendantFonts"][0].get_object().get("/FontDescriptor")
                )
            descriptor = descriptor.get_object() if descriptor is not None else {}
            embedded = any(
                k in descriptor for k in ("/FontFile", "/FontFile2", "/FontFile3")
            )
            fonts.append((str(font["/BaseFont"]), embedded))
    return fonts


def test_pdf_report(built: Built, tmp_path: Path) -> None:
    from pypdf import PdfReader

    report = tmp_path / "比较报告.pdf"
    result = cli("diff", "-o", built.out, built.a, "--report", report)
    assert result.exit_code == ExitCode.problems, result.output
    reader = PdfReader(report)
    fonts = _fonts_embedded(reader)
    assert fonts and all(embedded for _, embedded in fonts), fonts
    text = "".join(page.extract_text() for page in reader.pages)
    for label in ("字段变化（2 项）", "家庭成员", "姓名", "收入情况", "变化的页面"):
        assert label in text, label
    assert any(page.images for page in reader.pages), "the changed pages are drawn"


# -- verify a paper copy ------------------------------------------------------------------------


def test_verify_the_first_copy_is_outdated(built: Built, tmp_path: Path) -> None:
    text = _qr_text(built.v1_pdfs[built.a], tmp_path)
    assert text.startswith(f"AB1|{built.a}|v1|")
    result = cli("verify", "-o", built.out, text)
    assert result.exit_code == ExitCode.problems, result.output
    first = result.output.splitlines()[0]
    assert (
        first.startswith(f"户 {built.a} 版本 1（")
        and "：已过期，最新为版本 2（" in first
    )
    assert "此后的变化：" in result.output
    for line in built.expected_lines:
        assert line in result.output
    assert f"archive-builder diff -o {built.out} {built.a} 1 2" in result.output


def test_verify_the_current_copy(built: Built, tmp_path: Path) -> None:
    text = _qr_text(built.packet(built.a), tmp_path)
    assert text.startswith(f"AB1|{built.a}|v2|")
    result = cli("verify", "-o", built.out, text)
    assert result.exit_code == ExitCode.ok, result.output
    assert (
        result.output.startswith(f"户 {built.a} 版本 2（")
        and "：是最新版本。" in result.output
    )
    # an unchanged household's first copy is still current
    hid = built.unchanged[0]
    assert (
        cli("verify", "-o", built.out, _qr_text(built.packet(hid), tmp_path)).exit_code
        == ExitCode.ok
    )


def test_verify_a_photo_of_the_cover(built: Built, tmp_path: Path) -> None:
    old_cover = _cover_png(built.v1_pdfs[built.a], tmp_path / "旧封面.png", dpi=150)
    result = cli("verify", "-o", built.out, "--image", old_cover)
    assert result.exit_code == ExitCode.problems, result.output
    assert "已过期" in result.output
    new_cover = _cover_png(built.packet(built.a), tmp_path / "新封面.png", dpi=150)
    result = cli("verify", "-o", built.out, "--image", new_cover)
    assert result.exit_code == ExitCode.ok, result.output
    assert "是最新版本" in result.output


# -- PDF against PDF ----------------------------------------------------------------------------


def test_pdf_against_pdf(built: Built, tmp_path: Path) -> None:
    old, new = built.v1_pdfs[built.a], built.packet(built.a)
    result = cli("diff", old, new)
    assert result.exit_code == ExitCode.problems, result.output
    assert result.output.startswith("PDF 文件比较\n")
    pages = re.search(
        r"^变化的页面（(\d+) 处）：\n  (.+)$", result.output, re.MULTILINE
    )
    assert pages is not None, result.output
    pairs = re.findall(r"原(第 \d+ 页|封面) → 新(第 \d+ 页|封面)", pages.group(2))
    assert ("封面", "封面") in pairs  # the cover: its QR code and version line
    assert len(pairs) == int(pages.group(1)) and len(pairs) < 10
    assert "▌家庭成员（" in result.output and "▌收入台账（" in result.output

    assert cli("diff", old, built.v1_pdfs[built.a]).exit_code == ExitCode.ok
    same = cli("diff", old, shutil.copy(old, tmp_path / "副本.pdf"))
    assert same.exit_code == ExitCode.ok and "结论：两者相同。" in same.output


def test_pdf_against_pdf_with_report(built: Built, tmp_path: Path) -> None:
    report = tmp_path / "r.html"
    result = cli(
        "diff", built.v1_pdfs[built.a], built.packet(built.a), "--report", report
    )
    assert result.exit_code == ExitCode.problems, result.output
    text = report.read_text(encoding="utf-8")
    assert "两个 PDF 文件没有记录数据" in text and "<img" in text


@pytest.mark.parametrize(
    "content",
    [b"not a pdf at all\n", b"%PDF-1.7\n1 0 obj <<", None],
    ids=["text", "truncated", "missing"],
)
def test_pdf_against_a_broken_file(
    built: Built, tmp_path: Path, content: bytes | None
) -> None:
    broken = tmp_path / "坏文件.pdf"
    if content is not None:
        broken.write_bytes(content)
    for args in ((broken, built.packet(built.a)), (built.packet(built.a), broken)):
        result = cli("diff", *args)
        assert result.exit_code == ExitCode.input_unusable, result.output
        assert "PDF 无法比较：" in result.output and str(broken) in result.output
        assert "内部错误" not in result.output


def test_a_file_not_named_pdf_is_compared_as_pdf(built: Built, tmp_path: Path) -> None:
    note = tmp_path / "说明.txt"
    note.write_text("不是 PDF", encoding="utf-8")
    result = cli("diff", note, built.packet(built.a))
    assert result.exit_code == ExitCode.input_unusable, result.output
    assert "PDF 无法比较：无法打开 PDF 文件" in result.output


# -- error paths --------------------------------------------------------------------------------


def test_errors_exit_2_in_chinese(built: Built) -> None:
    result = cli("history", "-o", built.out, "4116219999999999")
    assert result.exit_code == ExitCode.input_unusable, result.output
    assert "版本库中没有户 4116219999999999 的任何版本" in result.output

    result = cli("diff", "-o", built.out, built.a, "1", "7")
    assert result.exit_code == ExitCode.input_unusable, result.output
    assert f"户 {built.a} 没有版本 7；已有版本：1、2。" in result.output

    result = cli("diff", "-o", built.out, built.unchanged[0])
    assert result.exit_code == ExitCode.input_unusable, result.output
    assert "只有 1 个版本" in result.output

    for text in ("扫码失败", f"AB1|{built.a}|2|abc", ""):
        result = cli("verify", "-o", built.out, text)
        assert result.exit_code == ExitCode.input_unusable, (text, result.output)


def test_verify_a_copy_from_elsewhere(built: Built) -> None:
    result = cli("verify", "-o", built.out, f"AB1|{built.a}|v1|0123456789abcdef")
    assert result.exit_code == ExitCode.problems, result.output
    assert (
        "版本库中没有登记这一版" in result.output and "最新版本为第 2 版" in result.output
        and "改动" not in result.output
    )


# -- the store ----------------------------------------------------------------------------------


def test_store_check_is_clean(built: Built) -> None:
    result = cli("store", "check", "-o", built.out)
    assert result.exit_code == ExitCode.ok, result.output
    assert result.output.strip() == "版本库完好：4 户，6 个版本，所有数据块哈希一致。"


def _flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    os.chmod(path, 0o644)
    path.write_bytes(bytes(data))


def test_store_check_finds_a_corrupted_blob(built: Built, tmp_path: Path) -> None:
    out = Path(shutil.copytree(built.out, tmp_path / "out"))
    with VersionStore(out) as store:
        v1 = store.get(built.a, 1)
        pdf_blob = store.blob_path(v1.pdf_sha)
    _flip_a_byte(pdf_blob)
    result = cli("store", "check", "-o", out)
    assert result.exit_code == ExitCode.problems, result.output
    assert result.output.startswith("版本库有 1 处损坏（共 4 户，6 个版本）：\n")
    assert (
        f"版本 1（户 {built.a}）的PDF数据块 {v1.pdf_sha[:2]}/{v1.pdf_sha[2:10]}… 已损坏：哈希不符"
        in result.output
    )
    # comparing with the damaged version fails clearly instead of comparing garbage
    result = cli("diff", "-o", out, built.a)
    assert result.exit_code == ExitCode.input_unusable, result.output
    assert "已损坏" in result.output

    # the record is a small blob in the catalog (append-only: altered here behind its back)
    conn = sqlite3.connect(out / ".store" / "catalog.sqlite")
    conn.execute("DROP TRIGGER blobs_no_update")
    conn.execute("UPDATE blobs SET data = ? WHERE sha = ?", (b'{"edited": 1}', v1.record_sha))
    conn.commit()
    conn.close()
    result = cli("store", "check", "-o", out)
    assert result.exit_code == ExitCode.problems, result.output
    assert (
        "版本库有 2 处损坏" in result.output
        and "的记录数据块" in result.output
        and "已损坏" in result.output
    )
    history = _history(out, built.a)
    assert history[1][4].startswith("（记录数据块缺失或损坏")


# -- SIGKILL during the version write -----------------------------------------------------------

_KILLING_BUILD = textwrap.dedent(
    """
    import os, signal, sys, time
    from pathlib import Path
    from archive_builder.versions import store
    from archive_builder.cli import main

    point, nth, how, marker = sys.argv[1], int(sys.argv[2]), sys.argv[3], Path(sys.argv[4])
    calls = 0

    def hook():
        global calls
        calls += 1
        if calls < nth:
            return
        if how == "self":
            os.kill(os.getpid(), signal.SIGKILL)
        marker.write_text("in the version write")  # the test kills the process group now
        time.sleep(60)

    store.HOOKS[point] = hook
    main(sys.argv[5:], prog_name="archive-builder")
    """
)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("point", "nth", "how"),
    [
        ("before_commit", 1, "self"),
        ("after_blobs", 1, "self"),
        ("after_blobs", 1, "killpg"),
    ],
)
def test_sigkill_during_the_version_write(
    built: Built, tmp_path: Path, point: str, nth: int, how: str
) -> None:
    data = Path(shutil.copytree(built.snapshot / "data", tmp_path / "data"))
    out = Path(shutil.copytree(built.snapshot / "out", tmp_path / "out"))
    files = _household_files(data)
    change_income_and_name(files[built.a])
    reverse_members_and_measures(files[built.b])
    marker = tmp_path / "marker"
    command = [sys.executable, "-c", _KILLING_BUILD, point, str(nth), how, str(marker),
               "build", str(data), "-o", str(out), "-j", "1"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(command, env=env, start_new_session=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    if how == "killpg":
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, (
                "the build never reached the version write"
            )
            time.sleep(0.05)
        os.killpg(process.pid, signal.SIGKILL)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == -signal.SIGKILL, stderr.decode()
    # a village's versions are recorded as soon as its packets are rendered
    assert "生成分户档卡" in stderr.decode() and "整理村档案盒" not in stderr.decode()

    # killed: nothing half-written is visible (the batch's rows commit together), the store
    # is sound
    with VersionStore(out) as store:
        assert store.stats() == (4, 4)
    check = cli("store", "check", "-o", out)
    assert check.exit_code == ExitCode.ok, check.output

    # re-run: the missing version is recorded, numbers stay contiguous
    _build(data, out)
    check = cli("store", "check", "-o", out)
    assert check.exit_code == ExitCode.ok, check.output
    assert "4 户，6 个版本" in check.output
    for hid in (built.a, built.b):
        assert [line[0] for line in _history(out, hid)] == ["1", "2"]
    for hid in built.unchanged:
        assert [line[0] for line in _history(out, hid)] == ["1"]
    # the cover printed by the killed run names the version the re-run recorded
    qr = _qr_text(out / PACKETS / f"{built.a}.pdf", tmp_path)
    assert qr.startswith(f"AB1|{built.a}|v2|")
    assert cli("verify", "-o", out, qr).exit_code == ExitCode.ok
    assert sorted(_field_lines(cli("diff", "-o", out, built.a).output)) == sorted(
        built.expected_lines
    )


# -- the real command line ----------------------------------------------------------------------


@pytest.mark.slow
def test_python_m_archive_builder(built: Built) -> None:
    def run(*args: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "archive_builder", *map(str, args)], check=False, capture_output=True,
                              text=True, encoding="utf-8", env={**os.environ, "PYTHONPATH": str(REPO)})  # fmt: skip

    assert run("history", "-o", built.out, built.a).returncode == ExitCode.ok
    diff = run("diff", "-o", built.out, built.a)
    assert diff.returncode == ExitCode.problems and sorted(
        _field_lines(diff.stdout)
    ) == sorted(built.expected_lines)
    assert run("diff", "-o", built.out, built.a, "1", "1").returncode == ExitCode.ok
    assert run("store", "check", "-o", built.out).returncode == ExitCode.ok
    missing = run("history", "-o", built.out, "nobody")
    assert (
        missing.returncode == ExitCode.input_unusable
        and "版本库错误：" in missing.stderr
    )
