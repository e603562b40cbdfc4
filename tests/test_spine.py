"""Spine labels: strips per sheet, content, embedded fonts, cut marks outside the strips."""

from __future__ import annotations

import io
import math
import re
from pathlib import Path

import pytest

from archive_builder.archive.collate import BoxResult, VillageInfo
from archive_builder.render.spine import (
    MIN_MARGIN_MM,
    PAGE_W_MM,
    _units,
    strips_per_page,
    write_spine_labels,
)

pypdf = pytest.importorskip("pypdf")
from pypdf import PdfReader
from test_collate import all_fonts, get_fonts

VILLAGES = [
    VillageInfo("411621101201", "冯老村", "扶沟县", "练寺镇", 2024, "Z012", "练寺镇人民政府", "永久"),
    VillageInfo("411621101202", "堃喆村", "扶沟县", "练寺镇", 2024, "Z012-LS-2024", "练寺镇人民政府", "D30"),
]


def boxes(n: int) -> list[tuple[VillageInfo, BoxResult]]:
    out = []
    for i in range(n):
        v = VILLAGES[i % 2]
        out.append((v, BoxResult(Path(f"b{i}.pdf"), i + 1, 100, 50, 40 * i + 1, 40 * i + 40, ())))
    return out


@pytest.fixture(scope="module")
def fonts():
    return get_fonts()


def test_strips_per_page():
    assert [strips_per_page(w) for w in (20, 30, 40, 50)] == [9, 6, 4, 3]
    for w in (20, 30, 40, 50):
        assert strips_per_page(w) * w <= PAGE_W_MM - 2 * MIN_MARGIN_MM


def test_units_vertical_writing():
    assert _units("冯老村档案") == list("冯老村档案")
    assert _units("30年") == ["30", "年"]
    assert _units("Z012 号") == ["Z012", "号"]


@pytest.mark.parametrize("width", [20, 30, 40, 50])
def test_spine_pages_and_strips(tmp_path, fonts, width):
    n = 11
    out = tmp_path / f"spine{width}.pdf"
    pages = write_spine_labels(boxes(n), out, width_mm=width, fonts=fonts)
    per = strips_per_page(width)
    assert pages == math.ceil(n / per)
    r = PdfReader(out)
    assert len(r.pages) == pages
    counts = []
    for page in r.pages:
        text = page.extract_text()
        counts.append(text.count("全宗号"))
        assert text.count("起止件号") == counts[-1] and text.count("盒号") == counts[-1]
    assert counts == [per] * (n // per) + ([n % per] if n % per else [])
    everything = "".join(p.extract_text() for p in r.pages)
    assert "2024" in everything and "0001" in everything and "0440" in everything
    assert re.search(r"冯\s*老\s*村", everything)
    # fonts: all embedded, no standard-14 Helvetica anywhere
    found = all_fonts(r)
    assert found
    for font in found:
        assert "Helvetica" not in str(font.get("/BaseFont"))
        if font.get("/Subtype") == "/Type0":
            continue
        desc = font["/FontDescriptor"].get_object()
        assert any(k in desc for k in ("/FontFile", "/FontFile2", "/FontFile3"))
    assert "/Helvetica" not in out.read_bytes().decode("latin-1")


def test_cut_marks_outside_strips(tmp_path, fonts):
    """Every line segment of the cut marks lies outside the strips' area."""
    out = tmp_path / "s.pdf"
    write_spine_labels(boxes(3), out, width_mm=30, fonts=fonts)
    page = PdfReader(out).pages[0]
    data = page.get_contents().get_data().decode("latin-1")
    # strip area (points): 6 strips per page, centred; 3 drawn left-aligned in the 6-slot grid
    mm = 72 / 25.4
    x0 = (210 - 6 * 30) / 2 * mm
    y0 = (297 - 250) / 2 * mm
    x1, y1 = x0 + 3 * 30 * mm, y0 + 250 * mm
    segs = re.findall(r"([\d.]+) ([\d.]+) m ([\d.]+) ([\d.]+) l", data)
    outside = 0
    for xa, ya, xb, yb in segs:
        xa, ya, xb, yb = map(float, (xa, ya, xb, yb))
        if ya == yb and (xb <= x0 + 0.01 or xa >= x1 - 0.01):
            outside += 1  # horizontal marks left/right
        elif xa == xb and (max(ya, yb) <= y0 + 0.01 or min(ya, yb) >= y1 - 0.01):
            outside += 1  # vertical marks above/below
    assert outside == 2 * 4 + 4  # 4 boundaries × (above, below) + 2 edges × (left, right)


def test_bad_width(tmp_path, fonts):
    with pytest.raises(ValueError):
        write_spine_labels(boxes(1), tmp_path / "x.pdf", width_mm=5, fonts=fonts)


def test_deterministic(tmp_path, fonts):
    a, b = tmp_path / "a.pdf", tmp_path / "b.pdf"
    write_spine_labels(boxes(5), a, width_mm=40, fonts=fonts)
    write_spine_labels(boxes(5), b, width_mm=40, fonts=fonts)
    assert a.read_bytes() == b.read_bytes()


def test_spine_and_box_pages_share_the_canvas_set_up(fonts, tmp_path: Path):
    """Both are A4, deterministic, and name only embedded faces (the one a4_canvas set-up)."""
    from archive_builder.render.boxpages import ContentsRow, render_box_pages

    out = tmp_path / "spine.pdf"
    write_spine_labels(boxes(3), out, width_mm=30, fonts=fonts)
    v, _ = boxes(1)[0]
    rows = [ContentsRow(i + 1, f"H{i}", "张三", 3, "脱贫户", i * 10 + 1, i * 10 + 10) for i in range(3)]
    box = render_box_pages(v, 1, rows, 30, fonts, "2025-06-01")
    again = tmp_path / "again.pdf"
    write_spine_labels(boxes(3), again, width_mm=30, fonts=fonts)
    assert again.read_bytes() == out.read_bytes()
    assert render_box_pages(v, 1, rows, 30, fonts, "2025-06-01") == box
    for reader in (PdfReader(out), PdfReader(io.BytesIO(box))):
        for page in reader.pages:
            assert [round(float(x)) for x in page.mediabox[2:]] == [595, 842]
            for font in (page["/Resources"].get("/Font") or {}).values():
                font = font.get_object()
                descendant = font["/DescendantFonts"][0].get_object() if "/DescendantFonts" in font else font
                assert "/FontFile2" in descendant["/FontDescriptor"], font["/BaseFont"]
