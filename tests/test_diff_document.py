"""The diff of two versions follows the document, not the PDF's line wraps, names pages by
the numbers printed on them, and its PDF report keeps headings with what they introduce."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml

from archive_builder.archive.build import BuildOptions, build
from archive_builder.archive.packet import make_packet
from archive_builder.versions.diff import compare_versions, write_report
from archive_builder.versions.store import VersionStore

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "households_sample"
VILLAGE = "411621105201_李庄村"
HOUSEHOLD = "4116211052010003"  # a 之儿媳 among the members, a 务工 income

pytestmark = pytest.mark.slow


def _change_income(tmp: Path) -> tuple[Path, Path]:
    """Build the sample's first village, then lower the household's 务工 income by 2,000."""
    data = tmp / "data"
    data.mkdir()
    shutil.copy(SAMPLE / "archive.toml", data)
    shutil.copytree(SAMPLE / VILLAGE, data / VILLAGE)
    out = tmp / "out"
    build(data, out, BuildOptions(jobs=1))
    path = next((data / VILLAGE).glob(f"{HOUSEHOLD}*")) / "household.yaml"
    record = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert any(m["relation"] == "之儿媳" for m in record["members"])
    year = next(y for y in record["income"] if "务工" in (y.get("wage") or {}))
    year["wage"]["务工"] -= 2000
    path.write_text(yaml.safe_dump(record, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return data, out


def _box_number_of(out: Path, *texts: str) -> int:
    """The archive page number (编页) the box of the output prints on the household's page
    showing ``texts``, read from the box file's page labels."""
    import json

    from pypdf import PdfReader

    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    village = next(v for v in manifest["villages"] if v["code"] == VILLAGE.split("_")[0])
    entry = next(h for h in village["households"] if h["household_id"] == HOUSEHOLD)
    reader = PdfReader(out / village["boxes"][entry["box"] - 1]["file"])
    for index in range(entry["first_page"] - 1, entry["last_page"]):
        text = "".join(reader.pages[index].extract_text().split())
        if all("".join(t.split()) in text for t in texts):
            return int(reader.page_labels[index])
    raise AssertionError(texts)


@pytest.fixture(scope="module")
def boxed(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, Path, Path, int]:
    """The household changed and the village built again: both versions sit in a box."""
    tmp = tmp_path_factory.mktemp("docdiff-boxed")
    mp = pytest.MonkeyPatch()
    mp.setenv("ARCHIVE_BUILDER_CACHE_DIR", str(tmp / "cache"))
    try:
        data, out = _change_income(tmp)
        old_box = _box_number_of(out, "家庭纯收入")
        build(data, out, BuildOptions(jobs=1))
        comparison = compare_versions(VersionStore(out), HOUSEHOLD)
        pdf = next((out / VILLAGE).rglob(f"{HOUSEHOLD}*.pdf"))
        return comparison, pdf, out, old_box
    finally:
        mp.undo()


def test_pages_of_boxed_versions_carry_their_archive_page_numbers(boxed) -> None:
    comparison, pdf, out, old_box = boxed
    (section,) = comparison.text_changes
    line = next(line for line in section.lines if "家庭纯收入" in line)
    match = re.search(r"（新第 (\d+) 页，档案第 (\d+) 页）$", line)
    assert match is not None, line
    new_value = re.search(r"→ ([\d,.]+)", line).group(1)
    assert int(match.group(1)) == _printed_page_of(pdf, "家庭纯收入", new_value)
    assert int(match.group(2)) == _box_number_of(out, "家庭纯收入", new_value)
    # the changed pages: each version with the numbers of its own box
    page = int(match.group(1))
    pages = comparison.format_text()
    assert f"原第 {page} 页（档案第 {old_box} 页） → 新第 {page} 页（档案第 {match.group(2)} 页）" in pages
    assert "原版本装在档案盒" in pages and "新版本装在档案盒" in pages


@pytest.fixture(scope="module")
def compared(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, Path]:
    tmp = tmp_path_factory.mktemp("docdiff")
    mp = pytest.MonkeyPatch()
    mp.setenv("ARCHIVE_BUILDER_CACHE_DIR", str(tmp / "cache"))
    try:
        data, out = _change_income(tmp)
        made = make_packet(data, HOUSEHOLD, tmp / "cards", store_dir=out)
        comparison = compare_versions(VersionStore(out), HOUSEHOLD)
        return comparison, made.result.pdf
    finally:
        mp.undo()


def _printed_page_of(pdf: Path, *texts: str) -> int:
    from pypdf import PdfReader

    for page in PdfReader(pdf).pages:
        text = "".join(page.extract_text().split())
        if all("".join(t.split()) in text for t in texts):
            number = re.search(r"—(\d+)—\s*$", text)
            assert number is not None
            return int(number.group(1))
    raise AssertionError(texts)


def test_income_change_named_by_section_year_row_and_printed_page(compared) -> None:
    comparison, pdf = compared
    (section,) = comparison.text_changes  # only the income ledger changed
    assert section.section == "收入台账"
    line = next(line for line in section.lines if "家庭纯收入" in line)
    match = re.fullmatch(r"~ 收入台账 · (\d{4}) 年度[^·]* · 家庭纯收入 · 金额（元）：([\d,.]+) → ([\d,.]+)（新第 (\d+) 页）",
                         line)
    assert match is not None, line
    old, new = (float(v.replace(",", "")) for v in match.group(2, 3))
    assert old - new == pytest.approx(2000)
    assert int(match.group(4)) == _printed_page_of(pdf, "家庭纯收入", match.group(3))


def test_no_text_change_names_half_a_word(compared) -> None:
    comparison, _ = compared
    text = comparison.format_text()
    assert "之儿" not in text.replace("之儿媳", "")  # a member's relation is no change at all
    for change in comparison.text_changes:
        for line in change.lines:
            assert re.match(r"^[~+-] 收入台账 · ", line), line


def test_changed_pages_are_named_as_printed(compared) -> None:
    comparison, pdf = compared
    text = comparison.format_text()
    pages = text[text.index("变化的页面"):]
    # the old version sits in the box of the build, the new one (made by ``packet``) in none yet
    assert re.search(r"原封面（档案第 \d+ 页） → 新封面；", pages), pages
    wage_page = _printed_page_of(pdf, "家庭纯收入")
    assert re.search(rf"原第 {wage_page} 页（档案第 \d+ 页） → 新第 {wage_page} 页(；|$)", pages), pages


def test_pdf_report_keeps_headings_with_their_pages_and_centres_captions(compared, tmp_path: Path) -> None:
    from pypdf import PdfReader

    comparison, _ = compared
    report = write_report(tmp_path / "比较.pdf", comparison)
    reader = PdfReader(report)
    texts = [page.extract_text() for page in reader.pages]
    heading = next(i for i, t in enumerate(texts) if "变化的页面（" in t)
    assert re.search(r"原封面（档案第 \d+ 页） → 新封面", texts[heading])  # not alone at the bottom of a page
    assert reader.pages[heading]["/Resources"]["/XObject"]  # the first pair's images with it
    # the captions are centred under their images: the halves of the page
    found: list[tuple[str, float]] = []

    def visit(text: str, cm: list[float], tm: list[float], *_: object) -> None:
        if text.strip() == "新封面" or text.strip().startswith("原封面（"):
            # half the caption's width: 9 pt a Chinese character, 4.5 pt a digit or space
            half_width = sum(4.5 if c.isdigit() or c == " " else 9 for c in text.strip()) / 2
            found.append((text.strip()[:3], tm[4] * cm[0] + cm[4] + half_width))

    reader.pages[heading].extract_text(visitor_text=visit)
    width = float(reader.pages[heading].mediabox.width)
    positions = dict(found)
    assert set(positions) == {"原封面", "新封面"}
    # each caption's middle is the middle of its half of the 15 mm-margined page
    margin = 15 * 72 / 25.4
    half = (width - 2 * margin) / 2
    for name, centre in (("原封面", margin + half / 2), ("新封面", margin + 1.5 * half)):
        assert positions[name] == pytest.approx(centre, abs=3), (name, positions)
