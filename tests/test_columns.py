"""Table column widths come from the content: no label, ID number, date or amount is split
over two lines (PDF and .docx); the template's widths are preferences; a widths/align list of
the wrong length is a template error naming the file."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml

from archive_builder.errors import TemplateError
from archive_builder.render.columns import allocate, column_widths, unbreakable_words
from archive_builder.render.docxtables import natural_pieces

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "households_sample"
HOUSEHOLD = "4116211052010001"  # 9 members: 之儿媳, 弱劳动力或半劳动力, 文盲或半文盲, 长期慢性病


def test_unbreakable_words() -> None:
    assert unbreakable_words("之儿媳") == ["之儿媳"]
    assert unbreakable_words("居民医保、大病保险") == ["居民医保", "大病保险"]
    assert unbreakable_words("务工时间（月）") == ["务工时间", "（月）"]
    assert unbreakable_words("41162119420722028X") == ["41162119420722028X"]
    assert unbreakable_words("92,669.32") == ["92,669.32"]
    sentence = "到户了解生产生活情况，身体状况稳定，按时服药，医疗费用已按规定报销2024年"
    assert unbreakable_words("到户了解生产生活情况身体状况稳定按时服药医疗费用2024年") == ["2024"]
    assert "身体状况稳定" in unbreakable_words(sentence)


def test_allocate_keeps_minimums_and_gives_spare_room_to_wrapping_columns() -> None:
    # column 0 prefers little but needs 30; column 2 is free text that wants 200 on one line
    widths = allocate(300, [30, 10, 20], [30, 10, 200], [1, 1, 1])
    assert sum(widths) == pytest.approx(300)
    assert widths[0] >= 30 and widths[1] >= 10
    # the wrapping column first gets what it needs for one line, then the rest is shared
    assert widths == pytest.approx([30 + 20, 10 + 20, 200 + 20])
    assert allocate(200, [30, 10, 20], [30, 10, 400], [5, 5, 1]) == pytest.approx([30, 10, 160])
    # everything fits on one line: the rest is shared by preference
    assert allocate(100, [10, 10], [20, 20], [3, 1]) == pytest.approx([20 + 60 * 0.75, 20 + 60 * 0.25])
    # preferences cannot make a column narrower than its longest word
    assert allocate(100, [50, 10], [50, 10], [1, 9])[0] >= 50


def test_long_labels_break_only_at_their_natural_points_in_word() -> None:
    from archive_builder.render.docxtables import natural_words

    assert natural_pieces("弱劳动力或半劳动力") == ["弱劳动力或", "半劳动力"]
    assert natural_pieces("文盲或半文盲") == ["文盲或", "半文盲"]
    assert natural_pieces("或者") == ["或者"] and natural_pieces("之儿媳") == ["之儿媳"]
    assert natural_words("411621196912060233") == ["411621196912060233"]


def test_table_text_shrinks_rather_than_breaking_words() -> None:
    widths, scale = column_widths(100, ("a", "b"), [("x" * 60, "y" * 60)], (), lambda t, h: float(len(t)), 0)
    assert scale == pytest.approx(100 / 120, rel=0.01) and sum(widths) == pytest.approx(100)


def _sample_household(tmp_path: Path) -> tuple[Path, dict]:
    data = tmp_path / "data"
    source = next(SAMPLE.glob(f"*/{HOUSEHOLD}*"))
    shutil.copytree(source.parent, data / source.parent.name)
    shutil.copy(SAMPLE / "archive.toml", data)
    record = yaml.safe_load((source / "household.yaml").read_text(encoding="utf-8"))
    return data, record


def _members_words(record: dict) -> set[str]:
    words = set()
    for m in record["members"]:
        words |= {m["id_number"], m["relation"], m.get("labour") or "", m.get("education") or "",
                  m.get("student_status") or ""}
    return words - {""}


def _lines_of_page_with(pdf: Path, marker: str) -> list[str]:
    import subprocess

    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True,
                          check=True).stdout
    page = next(p for p in text.split("\f") if marker in p)
    return page.splitlines()


def _members_table_sizes(docx: Path) -> list[float]:
    """The text sizes (pt) of the .docx table whose header has 公民身份号码."""
    import zipfile

    from lxml import etree

    from archive_builder.render.docx import W_NS

    root = etree.fromstring(zipfile.ZipFile(docx).read("word/document.xml"))
    table = next(t for t in root.iter(f"{{{W_NS}}}tbl")
                 if "公民身份号码" in "".join(t.itertext()))
    return [int(sz.get(f"{{{W_NS}}}val")) / 2 for sz in table.iter(f"{{{W_NS}}}sz")]


def _whole_on_a_line(lines: list[str], words: set[str]) -> list[str]:
    cells = {c for line in lines for c in re.split(r"\s{1,}", line.strip())}
    return sorted(w for w in words if w not in cells)


def test_members_table_breaks_no_label_or_id_in_the_pdf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from archive_builder.archive.packet import make_packet

    monkeypatch.setenv("ARCHIVE_BUILDER_CACHE_DIR", str(tmp_path / "cache"))
    data, record = _sample_household(tmp_path)
    made = make_packet(data, HOUSEHOLD, tmp_path / "out")
    lines = _lines_of_page_with(made.result.pdf, "家庭成员情况")
    assert "之儿媳" in _members_words(record)
    assert _whole_on_a_line(lines, _members_words(record)) == []
    header = next(line for line in lines if "公民身份号码" in line)
    assert {"与户主关系", "性别", "在校生状况"} <= set(header.split())


@pytest.mark.slow
def test_members_table_breaks_no_label_or_id_in_the_docx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from archive_builder.archive.packet import make_packet
    from archive_builder.render.forms import find_soffice

    soffice = find_soffice()
    if soffice is None:
        pytest.skip("LibreOffice not installed")
    import subprocess

    monkeypatch.setenv("ARCHIVE_BUILDER_CACHE_DIR", str(tmp_path / "cache"))
    data, record = _sample_household(tmp_path)
    made = make_packet(data, HOUSEHOLD, tmp_path / "out", formats=("pdf", "docx"))
    assert made.result.docx is not None
    profile = tmp_path / "lo-profile"
    subprocess.run([str(soffice), f"-env:UserInstallation={profile.as_uri()}", "--headless", "--convert-to", "pdf",
                    "--outdir", str(tmp_path / "lo"), str(made.result.docx)], check=True, capture_output=True,
                   timeout=300)
    converted = tmp_path / "lo" / made.result.docx.with_suffix(".pdf").name
    lines = _lines_of_page_with(converted, "家庭成员情况")
    # a long label may break at its natural point (弱劳动力或|半劳动力), never elsewhere
    words = {piece for word in _members_words(record) for piece in natural_pieces(word)}
    assert _whole_on_a_line(lines, words) == []
    header = next(line for line in lines if "公民身份号码" in line)
    assert {"与户主关系", "性别", "在校生状况"} <= set(header.split())
    # and the table's text is not made smaller than 3/4 of its size (10.5 pt → 7.9 pt)
    assert _members_table_sizes(made.result.docx) and min(_members_table_sizes(made.result.docx)) >= 0.75 * 10.5
    cover = _lines_of_page_with(converted, "保管期限")
    for label in ("县（市、区）：", "户主姓名：", "保管期限："):
        assert any(label in line for line in cover), label


@pytest.mark.parametrize(("attribute", "value"), [("widths", "1,2"), ("align", "left,center")])
def test_widths_or_align_of_the_wrong_length_is_a_template_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, attribute: str, value: str) -> None:
    from archive_builder.archive.packet import make_packet

    monkeypatch.setenv("ARCHIVE_BUILDER_CACHE_DIR", str(tmp_path / "cache"))
    data, _ = _sample_household(tmp_path)
    text = (ROOT / "templates" / "default" / "sections" / "members.xml").read_text(encoding="utf-8")
    text = re.sub(rf'<table widths="[^"]*" {attribute}="[^"]*"' if attribute == "align" else r'<table widths="[^"]*"',
                  f'<table {attribute}="{value}"', text, count=1)
    mine = data / "templates" / "sections" / "members.xml"  # the county's copy (README: 模板)
    mine.parent.mkdir(parents=True)
    mine.write_text(text, encoding="utf-8")
    with pytest.raises(TemplateError) as info:
        make_packet(data, HOUSEHOLD, tmp_path / "out")
    assert str(mine) in info.value.message, info.value.message
    assert f"{attribute} 有 2 项，但表格有 9 列" in info.value.message
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())
