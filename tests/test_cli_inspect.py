"""The inspector commands (history, diff, verify, store check) through click's CliRunner:
exit codes and messages, on a version store filled directly (no build; fast).

The end-to-end version over real builds is ``test_inspect_e2e.py``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from synthetic import generate_household

from archive_builder.cli import main
from archive_builder.errors import ExitCode
from archive_builder.versions.store import VersionStore
from archive_builder.versions.verify import qr_payload

HID = "4116211052010007"


def cli(*args: Any) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def _pdf(path: Path, lines: list[str]) -> Path:
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    c = canvas.Canvas(str(path), pagesize=A4, invariant=True)
    c.setFont("Helvetica", 14)
    for n, line in enumerate(lines):
        c.drawString(72, 760 - 24 * n, line)
    c.showPage()
    c.save()
    return path


def _record(
    store: VersionStore, tmp_path: Path, record: dict[str, Any], lines: list[str]
) -> Any:
    data = json.dumps(record, ensure_ascii=False, sort_keys=True).encode()
    content_hash = hashlib.sha256(data).hexdigest()
    pdf = _pdf(tmp_path / f"{content_hash[:8]}.pdf", lines)
    return store.record(
        household_id=record["household_id"],
        village_code="411621105201",
        content_hash=content_hash,
        record_json=data,
        packet_pdf=pdf,
        evidence_hashes={"evidence/photo_01.jpg": "ab" * 32},
        template_set="default",
        program_version="0.1",
        pages=1,
        built_at="2025-06-01T10:00:00+08:00",
    )


@pytest.fixture
def record() -> dict[str, Any]:
    rec = generate_household(
        random.Random("cli-inspect"), HID, "411621105201", 2025, size=3
    )
    return json.loads(json.dumps(rec, default=str))  # canonical JSON shape


@pytest.fixture
def out(tmp_path: Path, record: dict[str, Any]) -> Path:
    """An output directory whose store holds two versions of HID: a member renamed."""
    folder = tmp_path / "out"
    new = copy.deepcopy(record)
    new["members"][1]["name"] = "王嘉懿"
    with VersionStore(folder) as store:
        _record(
            store,
            tmp_path,
            record,
            ["name: " + record["members"][1]["id_number"], "v1"],
        )
        _record(
            store, tmp_path, new, ["name: " + record["members"][1]["id_number"], "v2"]
        )
    return folder


def _payload(out: Path, number: int) -> str:
    with VersionStore(out) as store:
        return qr_payload(HID, number, store.get(HID, number).content_hash)


# -- history ------------------------------------------------------------------------------------


def test_history(out: Path, record: dict[str, Any]) -> None:
    result = cli("history", "-o", out, HID)
    assert result.exit_code == ExitCode.ok, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"户 {HID} 共 2 个版本："
    assert lines[1].startswith("版本 1  ") and lines[1].endswith("  1 页  首个版本")
    assert lines[2].endswith("  1 页  姓名 1 项")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("history", "-o", "{out}", "4116219999999999"),
            "版本库中没有户 4116219999999999 的任何版本",
        ),
        (("history", "-o", "{empty}", HID), "中没有版本记录"),
        (("store", "check", "-o", "{empty}"), "中没有版本记录"),
        (("verify", "-o", "{empty}", "AB1|x|v1|0123456789abcdef"), "中没有版本记录"),
        (
            ("diff", "-o", "{out}", HID, "1", "9"),
            f"户 {HID} 没有版本 9；已有版本：1、2。",
        ),
        (("diff", "-o", "{out}", HID, "0"), "已有版本：1、2"),
        (
            ("diff", "-o", "{out}", "4116219999999999"),
            "没有户 4116219999999999 的任何版本",
        ),
        (("verify", "-o", "{out}", "这不是二维码"), "不是档卡封面二维码的内容"),
        (
            ("verify", "-o", "{out}", f"AB1|{HID}|1|0123456789abcdef"),
            "不是档卡封面二维码的内容",
        ),
    ],
)
def test_input_errors_exit_2_in_chinese(
    out: Path, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = cli(*(a.format(out=out, empty=empty) for a in args))
    assert result.exit_code == ExitCode.input_unusable, result.output
    assert message in result.output
    assert "内部错误" not in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(
    "args",
    [
        ("history", HID),  # -o is required
        ("diff", HID),  # comparing versions needs -o
        ("diff", "-o", "{out}", HID, "a", "b"),
        ("diff", "-o", "{out}", HID, "1", "2", "3"),
        ("diff", "only-one.pdf"),
        ("verify", "-o", "{out}"),
    ],
)
def test_usage_errors_exit_2(out: Path, args: tuple[str, ...]) -> None:
    result = cli(*(a.format(out=out) for a in args))
    assert result.exit_code == ExitCode.input_unusable, result.output


# -- diff ---------------------------------------------------------------------------------------


def test_diff_exit_codes(out: Path, record: dict[str, Any]) -> None:
    result = cli("diff", "-o", out, HID)
    assert result.exit_code == ExitCode.problems, result.output
    old = record["members"][1]["name"]
    assert f"  家庭成员「{old}」· 姓名：{old} → 王嘉懿" in result.output
    assert "变化的页面（1 处）：\n  原封面 → 新封面" in result.output  # the page carries no number
    for same in (("1", "1"), ("2",), ("v2", "2")):
        result = cli("diff", "-o", out, HID, *same)
        assert result.exit_code == ExitCode.ok, (same, result.output)
        assert "结论：两者相同。" in result.output


def test_only_one_version_is_an_input_error(
    tmp_path: Path, record: dict[str, Any]
) -> None:
    with VersionStore(tmp_path / "out") as store:
        _record(store, tmp_path, record, ["v1"])
    result = cli("diff", "-o", tmp_path / "out", HID)
    assert result.exit_code == ExitCode.input_unusable, result.output
    assert f"户 {HID} 只有 1 个版本" in result.output


def test_reordered_record_has_no_field_change(
    tmp_path: Path, record: dict[str, Any]
) -> None:
    reordered = copy.deepcopy(record)
    reordered["members"].reverse()
    reordered["measures"].reverse()
    reordered["income"].reverse()
    with VersionStore(tmp_path / "out") as store:
        _record(store, tmp_path, record, ["a", "b"])
        _record(store, tmp_path, reordered, ["b", "a"])
    result = cli("diff", "-o", tmp_path / "out", HID)
    # the packets differ (rows moved): exit 1, but no field is reported as changed
    assert result.exit_code == ExitCode.problems, result.output
    assert "字段变化：无（记录数据相同；以下仅为顺序或版式的变化）" in result.output
    assert "字段变化（" not in result.output
    history = cli("history", "-o", tmp_path / "out", HID).output
    assert history.rstrip().endswith("字段无变化（仅顺序或版式不同）")


@pytest.mark.parametrize("name", ["报告.txt", "报告", "报告.docx"])
def test_unknown_report_format_fails_before_comparing(
    out: Path, tmp_path: Path, name: str
) -> None:
    result = cli("diff", "-o", out, HID, "--report", tmp_path / name)
    assert result.exit_code == ExitCode.input_unusable, result.output
    assert "不支持的报告格式" in result.output
    assert (
        "比较" not in result.output.split("不支持")[0]
    )  # nothing compared or printed first


def test_report_in_an_unwritable_place(out: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "是文件"
    blocker.write_text("x", encoding="utf-8")
    result = cli("diff", "-o", out, HID, "--report", blocker / "r.html")
    assert result.exit_code == ExitCode.output_unusable, result.output
    assert "报告无法写入：无法写入报告" in result.output


def test_reports_on_a_long_value(tmp_path: Path, record: dict[str, Any]) -> None:
    """A changed value longer than a page (an application letter) still gives a PDF report."""
    from pypdf import PdfReader

    new = copy.deepcopy(record)
    new.setdefault("application", {})["text"] = "本人因病致贫，申请纳入帮扶。" * 400
    with VersionStore(tmp_path / "out") as store:
        _record(store, tmp_path, record, ["v1"])
        _record(store, tmp_path, new, ["v2"])
    for name in ("r.pdf", "r.html"):
        result = cli("diff", "-o", tmp_path / "out", HID, "--report", tmp_path / name)
        assert result.exit_code == ExitCode.problems, result.output
    text = "".join(page.extract_text() for page in PdfReader(tmp_path / "r.pdf").pages)
    assert "申请书 · 申请内容" in text
    assert not list(tmp_path.glob(".*.tmp"))


def test_pdf_mode(tmp_path: Path) -> None:
    a = _pdf(tmp_path / "a.pdf", ["one", "two"])
    b = _pdf(tmp_path / "b.pdf", ["one", "three"])
    result = cli("diff", a, b)
    assert result.exit_code == ExitCode.problems, result.output
    assert "- two" in result.output and "+ three" in result.output
    assert (
        cli("diff", a, _pdf(tmp_path / "c.pdf", ["one", "two"])).exit_code
        == ExitCode.ok
    )
    (tmp_path / "bad.pdf").write_bytes(b"%PDF-1.4\n%%EOF garbage")
    for args in (
        (a, tmp_path / "bad.pdf"),
        (tmp_path / "missing.pdf", a),
        (tmp_path / "bad.pdf", a),
    ):
        result = cli("diff", *args)
        assert result.exit_code == ExitCode.input_unusable, result.output
        assert result.output.startswith("PDF 无法比较：")


# -- verify -------------------------------------------------------------------------------------


def test_verify_current_and_outdated(out: Path, record: dict[str, Any]) -> None:
    current = cli("verify", "-o", out, _payload(out, 2))
    assert current.exit_code == ExitCode.ok, current.output
    assert "：是最新版本。" in current.output
    outdated = cli("verify", "-o", out, _payload(out, 1))
    assert outdated.exit_code == ExitCode.problems, outdated.output
    assert "：已过期，最新为版本 2（" in outdated.output
    assert "此后的变化：姓名 1 项" in outdated.output
    assert f"archive-builder diff -o {out} {HID} 1 2" in outdated.output


def test_verify_accepts_what_people_type(out: Path) -> None:
    typed = "  " + _payload(out, 2).replace("|", "｜").replace("|v2|", "|V2|") + "\n"
    result = cli("verify", "-o", out, typed)
    assert result.exit_code == ExitCode.ok, result.output


def test_verify_a_mistyped_version_number_goes_by_the_hash(out: Path) -> None:
    text = _payload(out, 1).replace("|v1|", "|v2|")
    result = cli("verify", "-o", out, text)
    assert result.exit_code == ExitCode.problems, result.output
    assert "二维码中的版本号 2 与哈希不符，按哈希认定为版本 1。" in result.output


def test_verify_an_unknown_copy(out: Path) -> None:
    result = cli("verify", "-o", out, f"AB1|{HID}|v1|0123456789abcdef")
    assert result.exit_code == ExitCode.problems, result.output
    assert "版本库中没有登记这一版" in result.output and "改动" not in result.output


def test_verify_an_image_without_a_qr_code(out: Path, tmp_path: Path) -> None:
    pytest.importorskip("zxingcpp")
    from PIL import Image

    Image.new("RGB", (200, 200), "white").save(tmp_path / "白纸.png")
    result = cli("verify", "-o", out, "--image", tmp_path / "白纸.png")
    assert result.exit_code == ExitCode.input_unusable, result.output
    assert "二维码无法读取：在图片 白纸.png 中没有找到档卡二维码。" in result.output
    (tmp_path / "坏图.jpg").write_bytes(b"\xff\xd8\xff not really")
    result = cli("verify", "-o", out, "--image", tmp_path / "坏图.jpg")
    assert result.exit_code == ExitCode.input_unusable, result.output


# -- store check --------------------------------------------------------------------------------


def test_store_check(out: Path) -> None:
    result = cli("store", "check", "-o", out)
    assert result.exit_code == ExitCode.ok, result.output
    assert result.output == "版本库完好：1 户，2 个版本，所有数据块哈希一致。\n"
    with VersionStore(out) as store:
        v2 = store.get(HID, 2)
    blob = VersionStore(out).blob_path(v2.pdf_sha)
    blob.write_bytes(blob.read_bytes() + b"\n")
    result = cli("store", "check", "-o", out)
    assert result.exit_code == ExitCode.problems, result.output
    assert (
        f"版本 2（户 {HID}）的PDF数据块 {v2.pdf_sha[:2]}/{v2.pdf_sha[2:10]}… 已损坏：哈希不符"
        in result.output
    )
    assert "提示：从备份恢复 .store 目录" in result.output
