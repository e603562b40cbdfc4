"""Record diffs (matching, labels, summary), PDF text/page diffs and the reports."""

from __future__ import annotations

import copy
import random
import re
from pathlib import Path

import pytest
from pypdf import PdfReader
from reportlab.lib.pagesizes import A4
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen import canvas
from synthetic import generate_household

from archive_builder.errors import ExitCode
from archive_builder.versions.diff import (
    FieldChange,
    changed_pages,
    compare_pdfs,
    diff_pdf_text,
    diff_records,
    raster_diff,
    summarize,
    write_report,
)

UMING = Path("/usr/share/fonts/truetype/arphic/uming.ttc")


@pytest.fixture
def record() -> dict:
    return generate_household(
        random.Random("diff"), "4116210001", "411621105201", 2025, photos=1, size=4
    )


# -- record diffs -------------------------------------------------------------------------


def test_identical_records_have_no_changes(record: dict) -> None:
    assert diff_records(record, copy.deepcopy(record)) == []
    assert summarize([]) == "无变化"


def test_reordering_lists_is_not_a_change(record: dict) -> None:
    new = copy.deepcopy(record)
    for key in (
        "members",
        "measures",
        "income",
        "helpers",
        "procedure",
        "visits",
        "evidence",
    ):
        new[key] = list(reversed(new.get(key) or []))
    new["members"][0]["insured"] = list(
        reversed(new["members"][0].get("insured") or [])
    )
    assert diff_records(record, new) == []


def test_one_changed_name_is_one_change(record: dict) -> None:
    new = copy.deepcopy(record)
    new["members"].reverse()
    member = new["members"][1]
    old_name = member["name"]
    member["name"] = "张堃"
    changes = diff_records(record, new)
    assert len(changes) == 1
    change = changes[0]
    assert change.path == f"members[id={member['id_number']}].name"
    assert change.label == f"家庭成员「{old_name}」· 姓名"
    assert (change.kind, change.old, change.new) == ("changed", old_name, "张堃")
    assert summarize(changes) == "姓名 1 项"


def test_member_added_and_removed_by_id_number(record: dict) -> None:
    new = copy.deepcopy(record)
    removed = new["members"].pop()
    new["members"].insert(
        0, {"name": "王五", "id_number": "11010519491231002X", "relation": "之父"}
    )
    changes = diff_records(record, new)
    kinds = sorted((c.kind, c.path) for c in changes)
    assert kinds == [
        ("added", "members[id=11010519491231002X]"),
        ("removed", f"members[id={removed['id_number']}]"),
    ]
    assert summarize(changes) == "家庭成员 +1 −1"


def test_corrected_id_number_is_a_field_change(record: dict) -> None:
    new = copy.deepcopy(record)
    new["members"][0]["id_number"] = "440524188001010014"
    changes = diff_records(record, new)
    assert [(c.label.split("· ")[-1], c.kind) for c in changes] == [
        ("公民身份号码", "changed")
    ]


def test_income_change(record: dict) -> None:
    new = copy.deepcopy(record)
    year = new["income"][0]
    item = next(iter(year["wage"]))
    year["wage"][item] += 1000
    changes = diff_records(record, new)
    assert len(changes) == 1
    assert changes[0].label == f"收入情况 {year['year']}年 · 工资性收入 · {item}"
    assert changes[0].path == f"income[year={year['year']}].wage.{item}"
    assert summarize(changes) == "收入情况 1 项"


def test_amounts_compare_as_numbers(record: dict) -> None:
    new = copy.deepcopy(record)
    for measure in new["measures"]:
        measure["amount"] = f"{measure['amount']:.2f}" if "amount" in measure else None
    assert diff_records(record, new) == []


def test_edited_measure_is_paired_not_added_and_removed(record: dict) -> None:
    new = copy.deepcopy(record)
    new["measures"].reverse()
    measure = new["measures"][0]
    measure["date"] = "2025-12-01"
    measure["amount"] = 123.45
    changes = diff_records(record, new)
    assert {c.kind for c in changes} == {"changed"}
    assert {c.path.rsplit(".", 1)[-1] for c in changes} == {"date", "amount"}
    assert all(c.label.startswith("帮扶措施「") for c in changes)
    assert summarize(changes) == "帮扶措施 2 项"


def test_scalar_lists_are_sets(record: dict) -> None:
    new = copy.deepcopy(record)
    new["members"][0]["health"] = ["残疾", *new["members"][0].get("health", [])]
    changes = diff_records(record, new)
    assert len(changes) == 1
    assert changes[0].label.endswith("· 健康状况")


def test_evidence_paths_and_mappings_are_the_same_entry(record: dict) -> None:
    old = {
        "household_id": "H",
        "evidence": ["a.jpg", {"file": "b.jpg", "type": "照片"}],
    }
    new = {
        "household_id": "H",
        "evidence": [{"file": "b.jpg", "type": "照片"}, {"file": "a.jpg"}],
    }
    assert diff_records(old, new) == []
    new["evidence"][0]["type"] = "协议"
    (change,) = diff_records(old, new)
    assert change.path == "evidence[file=b.jpg].type"


def test_summary_mixes_groups() -> None:
    changes = [
        FieldChange("income[year=2024].wage.务工", "x", "changed", 1, 2, "收入情况"),
        FieldChange("income[year=2024].costs.种植", "x", "changed", 1, 2, "收入情况"),
        FieldChange("members[id=1]", "x", "added", None, {}, "家庭成员", entry=True),
        FieldChange("members[id=2].name", "x", "changed", "a", "b", "姓名"),
    ]
    assert summarize(changes) == "收入情况 2 项 · 家庭成员 +1 · 姓名 1 项"


def test_labels_callable_overrides(record: dict) -> None:
    new = copy.deepcopy(record)
    new["address"] = "别处"
    (change,) = diff_records(
        record, new, labels=lambda p: "住址" if p == "address" else ""
    )
    assert change.label == "住址"


# -- PDF diffs ------------------------------------------------------------------------------


def _make_pdf(path: Path, sections: list[tuple[str, list[list[str]]]]) -> Path:
    if "ABTestMing" not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(TTFont("ABTestMing", str(UMING), subfontIndex=0))
    c = canvas.Canvas(str(path), pagesize=A4, invariant=1)
    n = 0
    for title, pages in sections:
        for k, lines in enumerate(pages):
            n += 1
            if k == 0:
                c.bookmarkPage(f"p{n}")
                c.addOutlineEntry(title, f"p{n}", level=0)
            c.setFont("ABTestMing", 14)
            for row, line in enumerate(lines):
                c.drawString(80, 750 - 24 * row, line)
            c.setFont("ABTestMing", 10)
            c.drawCentredString(A4[0] / 2, 30, f"— {n} —")
            c.showPage()
    c.save()
    return path


OLD = [
    ("封面", [["户编号 H1", "户主 张三"]]),
    ("家庭成员", [["张三 户主", "李四 配偶"]]),
    ("收入台账", [["2024 务工 12000"], ["合计 20000"]]),
]
NEW = [
    ("封面", [["户编号 H1", "户主 张三"]]),
    ("家庭成员", [["张三 户主", "李五 配偶"], ["王六 之子"]]),
    ("收入台账", [["2024 务工 13000"], ["合计 20000"]]),
]


@pytest.fixture
def pdfs(tmp_path: Path) -> tuple[Path, Path]:
    return _make_pdf(tmp_path / "old.pdf", OLD), _make_pdf(tmp_path / "new.pdf", NEW)


def test_pdf_text_diff_by_section(pdfs: tuple[Path, Path]) -> None:
    changes = diff_pdf_text(*pdfs)
    assert [(c.section, c.kind, c.old_pages, c.new_pages) for c in changes] == [
        ("家庭成员", "changed", (2, 2), (2, 3)),
        ("收入台账", "changed", (3, 4), (4, 5)),
    ]
    assert changes[0].lines == ["- 李四 配偶", "+ 李五 配偶", "+ 王六 之子"]
    assert changes[0].heading() == "家庭成员（原第 2 页 → 新第 2–3 页）"


def test_changed_pages_ignore_moved_page_numbers(pdfs: tuple[Path, Path]) -> None:
    # 合计 page moved from 4 to 5: only its page number differs, so it is not listed
    assert changed_pages(*pdfs) == [(2, 2), (None, 3), (3, 4)]


def test_raster_diff_finds_the_changed_line(pdfs: tuple[Path, Path]) -> None:
    img_a, img_b, boxes = raster_diff(pdfs[0], 2, pdfs[1], 2, dpi=72)
    assert img_a.size == img_b.size
    assert abs(img_a.width - 595) <= 1 and abs(img_a.height - 842) <= 1
    assert len(boxes) == 1
    x0, y0, x1, y1 = boxes[0]
    # "李四" → "李五" is the second line, drawn at y = 726 pt from the bottom
    assert x0 <= 110 and x1 >= 100 and y0 <= 842 - 726 <= y1


def test_compare_pdfs_exit_codes(pdfs: tuple[Path, Path], tmp_path: Path) -> None:
    same = compare_pdfs(pdfs[0], _make_pdf(tmp_path / "same.pdf", OLD))
    assert same.identical and same.exit_code == ExitCode.ok
    assert "两者相同" in same.format_text()
    different = compare_pdfs(*pdfs)
    assert not different.identical and different.exit_code == ExitCode.problems
    text = different.format_text()
    assert "▌家庭成员（原第 2 页 → 新第 2–3 页）" in text
    assert "原第 2 页 → 新第 2 页；新增 新第 3 页；原第 3 页 → 新第 4 页" in text


def test_pdf_without_outline_is_one_section(tmp_path: Path) -> None:
    old = _make_pdf(tmp_path / "a.pdf", [("x", [["甲"], ["乙"]])])
    new = _make_pdf(tmp_path / "b.pdf", [("x", [["甲"], ["丙"]])])
    changes = diff_pdf_text(old, new)
    assert [c.lines for c in changes] == [["- 乙", "+ 丙"]]


def test_unreadable_pdf_is_an_input_error(
    tmp_path: Path, pdfs: tuple[Path, Path]
) -> None:
    from archive_builder.versions.pdfdiff import PdfDiffError

    bad = tmp_path / "bad.pdf"
    bad.write_bytes(b"not a pdf")
    with pytest.raises(PdfDiffError) as info:
        compare_pdfs(bad, pdfs[1])
    assert info.value.exit_code == ExitCode.input_unusable


# -- reports --------------------------------------------------------------------------------


def test_html_report(pdfs: tuple[Path, Path], tmp_path: Path) -> None:
    comparison = compare_pdfs(*pdfs)
    comparison.field_changes = [
        FieldChange(
            "members[id=1].name",
            "家庭成员「李四」· 姓名",
            "changed",
            "李四",
            "李五",
            "姓名",
        )
    ]
    out = write_report(tmp_path / "report.html", comparison)
    html = out.read_text(encoding="utf-8")
    assert "<th>字段</th><th>原值</th><th>新值</th>" in html
    assert "家庭成员「李四」· 姓名" in html and "李五" in html
    # pages (2, 2) and (3, 4) side by side, the added page 3 alone
    assert len(re.findall(r'<img [^>]*src="data:image/png;base64,', html)) == 5
    assert "（无对应页）" in html
    assert "http://" not in html and "https://" not in html  # self-contained


def test_pdf_report_embeds_its_fonts(pdfs: tuple[Path, Path], tmp_path: Path) -> None:
    comparison = compare_pdfs(*pdfs)
    comparison.field_changes = [
        FieldChange("address", "家庭住址", "changed", "甲村", "乙村<&>", "家庭住址")
    ]
    out = write_report(tmp_path / "report.pdf", comparison)
    reader = PdfReader(out)
    text = "".join(page.extract_text() for page in reader.pages)
    assert "字段变化" in text and "乙村<&>" in text
    fonts = set()
    for page in reader.pages:
        for font in (page["/Resources"].get("/Font") or {}).values():
            font = font.get_object()
            descendants = font.get("/DescendantFonts")
            descriptor = (descendants[0].get_object() if descendants else font).get(
                "/FontDescriptor"
            )
            embedded = descriptor is not None and any(
                k in descriptor.get_object()
                for k in ("/FontFile", "/FontFile2", "/FontFile3")
            )
            fonts.add((str(font["/BaseFont"]), embedded))
    assert fonts and all(embedded for _, embedded in fonts), fonts
    assert not any("Helvetica" in name for name, _ in fonts)


# -- stored versions ------------------------------------------------------------------------


def _store_version(store, tmp_path: Path, rec: dict, pdf: Path):
    import hashlib
    import json

    from archive_builder.versions.store import VersionStore

    assert isinstance(store, VersionStore)
    data = json.dumps(rec, ensure_ascii=False, sort_keys=True, default=str).encode()
    return store.record(
        household_id=rec["household_id"],
        village_code="411621105201",
        content_hash=hashlib.sha256(data).hexdigest(),
        record_json=data,
        packet_pdf=pdf,
        evidence_hashes={"evidence/photo_01.jpg": "ab" * 32},
        template_set="default",
        program_version="0.1",
        pages=len(PdfReader(pdf).pages),
        built_at="2025-06-01T10:00:00+08:00",
    )


def test_compare_versions_and_history(tmp_path: Path, record: dict, pdfs) -> None:
    from archive_builder.errors import StoreError
    from archive_builder.versions.diff import compare_versions, format_history, history
    from archive_builder.versions.store import VersionStore

    store = VersionStore(tmp_path / "out")
    hid = record["household_id"]
    _store_version(store, tmp_path, record, pdfs[0])
    with pytest.raises(StoreError, match="只有 1 个版本"):
        compare_versions(store, hid)
    new = copy.deepcopy(record)
    new["members"][1]["name"] = "张堃"
    year = new["income"][0]
    year["wage"][next(iter(year["wage"]))] += 1000
    _store_version(store, tmp_path, new, pdfs[1])

    comparison = compare_versions(store, hid)
    assert comparison.exit_code == ExitCode.problems
    assert [c.label.rsplit("· ", 1)[-1] for c in comparison.field_changes] == [
        "姓名",
        next(iter(year["wage"])),
    ]
    assert comparison.pages == [(2, 2), (None, 3), (3, 4)]
    text = comparison.format_text()
    assert text.startswith(f"户 {hid} 版本 1 与版本 2 的比较")
    assert "→ 张堃" in text

    same = compare_versions(store, hid, 2, 2)
    assert same.identical and same.exit_code == ExitCode.ok
    with pytest.raises(StoreError, match="已有版本：1、2"):
        compare_versions(store, hid, 1, 9)

    entries = history(store, hid)
    assert [e.summary for e in entries] == ["首个版本", "姓名 1 项 · 收入情况 1 项"]
    lines = format_history(store, hid).splitlines()
    assert lines[0] == f"户 {hid} 共 2 个版本："
    assert lines[2].startswith("版本 2  ") and lines[2].endswith(
        "5 页  姓名 1 项 · 收入情况 1 项"
    )

    html = write_report(tmp_path / "r.html", comparison).read_text(encoding="utf-8")
    assert "张堃" in html and "data:image/png;base64," in html
