"""The PDF writer (archive_builder.render.pdf): layout, page numbers, fonts, reproducibility."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from pypdf import PdfReader

from archive_builder.document import (
    Contents,
    Document,
    Evidence,
    Heading,
    KeyValue,
    PageBreak,
    Paragraph,
    QRCode,
    Section,
    Signature,
    Spacer,
    Table,
    Title,
)
from archive_builder.render.fonts import FontSet
from archive_builder.render.pdf import write_pdf

RARE = "堃 喆 𠮷"
LITERAL = "<b>&amp;{{x}}"
LONG_TEXT = ("我叫张三，身份证号41162119850312003X，家住冯老村三组，2024-05-01申请纳入监测，"
             "上年家庭纯收入12,345.67元。") * 12


@pytest.fixture(scope="module")
def fonts() -> FontSet:
    fs = FontSet.discover()
    fs.register()
    return fs


def member_rows(n: int) -> tuple[tuple[str, ...], ...]:
    return tuple((str(i), f"成员{i}", "41162119850312003X", f"{i * 1234.5:,.2f}") for i in range(1, n + 1))


def full_document(evidence: tuple[Evidence, ...] = ()) -> Document:
    sections = [
        Section("cover", "封面", (
            Title("扶贫档案", subtitle="一户一档"),
            KeyValue((("户主", "张三"), ("村", "冯老村"), ("编号", "001"))),
            QRCode("archive:001", caption="扫码核对版本"),
        ), layout="cover", in_contents=False),
        Section("contents", "目录", (Title("目　录"), Contents())),
        Section("basic", "户基本情况", (
            Title("户基本情况表"),
            KeyValue((("户主姓名", "张三" + RARE), ("身份证号", "41162119850312003X"),
                      ("家庭住址", "河南省驻马店市某某县某某乡冯老村三组" * 3), ("人口", "4")),
                     wide=("家庭住址",)),
            Heading("一、基本情况"),
            Heading("（一）人口", level=2),
            Paragraph("本户共有人口4人，其中劳动力2人。"),
            Spacer(5),
            Paragraph(LITERAL, indent=False, align="left"),
        ), separator="识别认定"),
        Section("members", "家庭成员", (
            Title("家庭成员"),
            Table(("序号", "姓名", "身份证号", "金额"), member_rows(75), widths=(1, 2, 4, 2),
                  align=("center", "left", "left", "right"), footer=(("合计", "", "", "12,345.67"),)),
        )),
        Section("application", "申请书", (
            Title("申请书"),
            Paragraph(LONG_TEXT),
            Signature(("申请人签名", "村委会意见"), fingerprint=True),
        ), layout="prose", separator="申请材料"),
        Section("notes", "户说明", (Title("户说明"), Paragraph("无。"), PageBreak(), Paragraph("续页。"))),
    ]
    if evidence:
        sections.append(Section("evidence", "佐证材料", evidence, layout="evidence", separator="佐证材料"))
    return Document(title="冯老村 张三 档卡", sections=tuple(sections), subject="档卡",
                    keywords=("冯老村", "张三"), author="冯老村村委会", date="2024-05-01")


def render(doc: Document, fonts: FontSet, **kw):
    buf = io.BytesIO()
    result = write_pdf(doc, buf, fonts=fonts, **kw)
    return buf.getvalue(), result


@pytest.fixture(scope="module")
def rendered(fonts):
    data, result = render(full_document(), fonts)
    reader = PdfReader(io.BytesIO(data))
    texts = [p.extract_text() for p in reader.pages]
    return data, result, reader, texts


def test_every_block_type_renders(rendered) -> None:
    data, result, reader, texts = rendered
    assert data.startswith(b"%PDF")
    assert result.pages == len(reader.pages)
    # cover, contents, sep, basic, members ×3, sep, application ×2, notes ×2
    assert result.pages == 12, [r for r in result.sections]
    assert "扶贫档案" in texts[0] and "扫码核对版本" in texts[0]


def test_section_titles_in_order(rendered) -> None:
    _, result, _, texts = rendered
    whole = "\n".join(texts[2:])  # after the contents page
    pos = [whole.index(t) for t in ("户基本情况表", "家庭成员", "申请书", "户说明")]
    assert pos == sorted(pos)
    assert [s.key for s in result.sections] == ["cover", "contents", "basic", "members",
                                               "application", "notes"]


def page_number(text: str) -> str:
    m = re.search(r"— (\d+) —\s*$", text)
    return m.group(1) if m else ""


def test_contents_numbers_are_true_pages(rendered) -> None:
    _, result, _, texts = rendered
    contents = texts[1]
    expected = {"basic": "户基本情况表", "members": "家庭成员", "application": "申请书", "notes": "户说明"}
    for sp in result.sections:
        if sp.key not in expected:
            continue
        # the page where the section's title is printed carries the number the contents shows
        page = next(i for i, t in enumerate(texts) if t.lstrip().startswith(expected[sp.key]))
        assert page == sp.first
        printed = page_number(texts[page])
        assert printed == sp.number
        last = page_number(texts[sp.last])
        shown = printed if last == printed else f"{printed}–{last}"
        assert re.search(rf"{re.escape(sp.title)}\s+{shown}\b", contents), (sp, contents)


def test_separators_and_cover_unnumbered(rendered) -> None:
    _, result, _, texts = rendered
    assert result.separators == (2, 7)
    assert texts[2].strip() == "识别认定"
    assert texts[7].strip() == "申请材料"
    for i in (0, *result.separators):
        assert page_number(texts[i]) == ""
    numbers = [int(page_number(t)) for i, t in enumerate(texts) if page_number(t)]
    assert numbers == list(range(1, len(numbers) + 1))
    assert len(numbers) == result.pages - 3


def test_table_header_repeats(rendered) -> None:
    _, result, _, texts = rendered
    members = next(s for s in result.sections if s.key == "members")
    assert members.last - members.first + 1 == 3
    for i in range(members.first, members.last + 1):
        assert "序号 姓名 身份证号 金额" in texts[i]
    whole = "".join(texts[members.first:members.last + 1])
    assert "75 成员75" in whole and "合计" in whole
    assert whole.count("序号 姓名 身份证号 金额") == 3


def test_outline_targets(rendered) -> None:
    _, result, reader, _ = rendered
    outline = reader.outline
    assert len(outline) == len(result.sections)
    for item, sp in zip(outline, result.sections):
        assert item.title == sp.title
        assert reader.get_destination_page_number(item) == sp.first


def test_metadata(rendered) -> None:
    _, _, reader, _ = rendered
    meta = reader.metadata
    assert meta.title == "冯老村 张三 档卡"
    assert meta.subject == "档卡"
    assert meta.author == "冯老村村委会"
    assert meta.creator == "archive-builder"
    assert meta["/Keywords"] == "冯老村, 张三"
    assert str(meta["/CreationDate"]).startswith("D:20240501")


def test_fonts_embedded_no_helvetica(rendered) -> None:
    data, _, reader, _ = rendered
    assert b"Helvetica" not in data
    seen = 0
    for page in reader.pages:
        fonts = page["/Resources"]["/Font"]
        for ref in fonts.values():
            font = ref.get_object()
            if font["/Subtype"] == "/Type0":
                font = font["/DescendantFonts"][0].get_object()
            desc = font["/FontDescriptor"].get_object()
            assert "/FontFile2" in desc, font
            seen += 1
    assert seen


def test_rare_and_literal_text_extracts_exactly(rendered) -> None:
    _, _, _, texts = rendered
    whole = "\n".join(texts)
    assert RARE in whole
    assert "张三" + RARE in whole
    assert LITERAL in whole


def test_byte_identical(fonts, rendered) -> None:
    again, _ = render(full_document(), fonts)
    assert again == rendered[0]


def test_memoised_reportlab_formatting_writes_the_same_bytes(fonts, rendered, monkeypatch) -> None:
    """rlformat's memoised pdfdoc.format/PDFName change no byte; they are reportlab's own
    outside ``rlformat.settings()`` (never patched at import)."""
    from reportlab import rl_config
    from reportlab.pdfbase import pdfdoc

    from archive_builder.render import rlformat

    plain_format, plain_a85 = pdfdoc.format, rl_config.useA85
    with rlformat.settings():
        assert pdfdoc.format is not plain_format and rl_config.useA85 == 0
        assert pdfdoc.PDFName("A b#") == "/A#20b#23"
        assert pdfdoc.PDFName("ab", "a", "z") == "/ab"
    assert (pdfdoc.format, rl_config.useA85) == (plain_format, plain_a85)
    monkeypatch.setattr(rlformat, "MEMO", False)
    plain, _ = render(full_document(), fonts)
    assert plain == rendered[0]
    monkeypatch.undo()
    memoised, _ = render(full_document(), fonts)  # and with the memos filled
    assert memoised == plain


def test_prose_grid(fonts) -> None:
    doc = Document(title="t", sections=(Section("p", "申请书", (Paragraph("国" * 2000),), layout="prose"),))
    data, _ = render(doc, fonts)
    reader = PdfReader(io.BytesIO(data))
    ys: list[float] = []
    widths: list[int] = []

    def visit(text, cm, tm, font_dict, font_size):
        line = text.strip()
        if line and line.strip("国") == "":
            ys.append(round(tm[5], 2))
            widths.append(len(line))

    reader.pages[0].extract_text(visitor_text=visit)
    assert len(set(ys)) == 22
    assert set(widths) == {26, 28}  # first line indented two characters
    assert widths.count(28) == 21
    pitch = (ys[0] - ys[-1]) / 21
    assert pitch == pytest.approx(225 / 22 * 72 / 25.4, rel=1e-3)


def test_missing_glyph_warning(fonts) -> None:
    # U+0378 (unassigned) is in no font
    doc = Document(title="t", sections=(Section("p", "测试", (Paragraph("张\u0378"),)),))
    _, result = render(doc, fonts)
    assert any("U+0378" in w for w in result.warnings)
    # the width tables are shared between renders: the warning must repeat
    _, result = render(doc, fonts)
    assert any("U+0378" in w for w in result.warnings)


# --- evidence --------------------------------------------------------------------------------

def make_evidence_files(tmp: Path) -> dict[str, Path]:
    from PIL import Image
    from reportlab.pdfgen.canvas import Canvas

    photo = tmp / "photo.jpg"
    Image.new("RGB", (400, 300), (200, 30, 30)).save(photo, quality=80)
    pdf = tmp / "statement.pdf"
    c = Canvas(str(pdf), pagesize=(300, 400), invariant=1)
    c.drawString(20, 350, "PAGE ONE")
    c.showPage()
    c.setPageRotation(90)
    c.drawString(20, 150, "PAGE TWO")
    c.showPage()
    c.save()
    return {"photo": photo, "pdf": pdf, "missing": tmp / "nope.jpg"}


def test_evidence_pages(fonts, tmp_path: Path) -> None:
    from archive_builder.render.evidence import EvidenceCache

    files = make_evidence_files(tmp_path)
    ev = (
        Evidence(str(files["photo"]), "佐证/photo.jpg", title="房屋照片", kind="照片", date="2024-05-01"),
        Evidence(str(files["pdf"]), "佐证/statement.pdf", title="银行流水", kind="流水"),
        Evidence(str(files["missing"]), "佐证/nope.jpg", title="缺失材料"),
    )
    cache = EvidenceCache(tmp_path / "cache")
    data, result = render(full_document(ev), fonts, evidence=cache)
    reader = PdfReader(io.BytesIO(data))
    sec = result.sections[-1]
    assert sec.key == "evidence"
    assert sec.last - sec.first + 1 == 4  # photo, two PDF pages, placeholder
    texts = [reader.pages[i].extract_text() for i in range(sec.first, sec.last + 1)]
    assert "房屋照片 · 照片 · 2024-05-01 · 佐证/photo.jpg" in texts[0]
    assert "/XObject" in reader.pages[sec.first]["/Resources"]
    assert "PAGE ONE" in texts[1] and "银行流水" in texts[1]
    assert "PAGE TWO" in texts[2]
    assert "材料缺失/无法读取：佐证/nope.jpg" in texts[3]
    # a missing file is validation's warning (with its line), not the writer's a second time
    assert not any("佐证/nope.jpg" in w for w in result.warnings)
    again, _ = render(full_document(ev), fonts, evidence=cache)
    assert again == data


def test_write_to_path(fonts, tmp_path: Path) -> None:
    out = tmp_path / "x.pdf"
    doc = Document(title="t", sections=(Section("a", "甲", (Paragraph("一"),)),))
    result = write_pdf(doc, out, fonts=fonts, evidence=None)
    assert out.read_bytes().startswith(b"%PDF") and result.pages == 1


def test_tall_row_is_split_and_rows_are_kept_whole(fonts) -> None:
    tall = "很长的说明文字。" * 800
    doc = Document(title="t", sections=(Section("t", "表", (
        Table(("项目", "说明"), (("甲", "短"), ("乙", tall), ("丙", "短")), widths=(1, 5)),
        KeyValue(tuple((f"项目{i}", "内容" * 30) for i in range(40)), columns=2),
    )),))
    data, result = render(doc, fonts)
    reader = PdfReader(io.BytesIO(data))
    texts = [p.extract_text() for p in reader.pages]
    assert result.pages >= 4
    # the tall row continues on following pages, each with the header repeated
    assert sum("项目 说明" in t for t in texts) >= 3
    body = "".join(re.sub(r"— \d+ —|项目 说明", "", t) for t in texts).replace("\n", "")
    assert body.count("很长的说明文字。") == 800
    # every KeyValue label is printed exactly once (a row is never split)
    whole = "".join(texts)
    for i in range(40):
        assert whole.count(f"项目{i} ") + whole.count(f"项目{i}\n") == 1, i


def test_empty_document(fonts) -> None:
    data, result = render(Document(title="空", sections=()), fonts)
    assert result.pages == len(PdfReader(io.BytesIO(data)).pages) == 1


def test_one_line_fast_path_breaks_as_the_breaker(fonts) -> None:
    """``_Fonts.break_lines`` returns a fitting one-line text as is: exactly what the
    breaker gives, at the limit too (random texts of CJK, Latin, digits, spaces, punctuation)."""
    import random

    from archive_builder.render.linebreak import break_lines_widths
    from archive_builder.render.pdfmodel import _Fonts

    f = _Fonts(fonts)
    rng = random.Random(7)
    alphabet = "张三冯老村，。、：“”（）《》ab Z09.-\u3000\t" + RARE.replace(" ", "")
    checked = 0
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 14)))
        size = rng.choice((9.0, 10.5, 12.0))
        full = f.width(text, "body", size) if text else 0.0
        # widths around the text's own: below, at and just above it
        for max_width in (full * rng.uniform(0.5, 1.5), full, full + 1e-4, full + 0.01, full + 3):
            indent = rng.choice((0.0, 0.0, size * 2))
            expected = break_lines_widths(text, f.table("body"), max_width / size, indent / size,
                                          f.measurer("body"))
            assert f.break_lines(text, "body", size, max_width, indent) == expected, (text, max_width)
            checked += 1
    assert checked == 15000


_WARM_SCRIPT = """
import hashlib, io, sys
sys.path.insert(0, {tests!r})
from test_pdf_writer import full_document
from archive_builder.render.fonts import FontSet
from archive_builder.render.pdf import warm_up, write_pdf
fonts = FontSet.discover()
fonts.register()
if sys.argv[1] == "warm":
    warm_up(fonts)
buf = io.BytesIO()
write_pdf(full_document(), buf, fonts=fonts)
print(hashlib.sha256(buf.getvalue()).hexdigest())
"""


@pytest.mark.slow
def test_warm_up_changes_no_byte() -> None:
    """A worker's warm-up (render.pdf.warm_up) fills per-process caches only: a fresh process
    writes the same document to the same bytes with and without it."""
    import subprocess
    import sys

    script = _WARM_SCRIPT.format(tests=str(Path(__file__).parent))
    digests = [subprocess.run([sys.executable, "-c", script, mode], check=True, capture_output=True,
                              text=True).stdout.strip() for mode in ("cold", "warm")]
    assert digests[0] == digests[1] and len(digests[0]) == 64


def test_memoised_number_text_is_the_formatted_number() -> None:
    from archive_builder.render.pdfmodel import _f, _n

    for x in (-0.0, 0.0, 0, 1, 1.0, 12.345, -3.14159, 595.2756, 1e-9, -1e-9):
        for _ in range(2):  # formatted, then from the memo
            assert _n(x) == f"{x:.2f}" and _f(x) == f"{x:.4f}", x


def test_a_heading_never_ends_a_page_without_its_table(fonts) -> None:
    """A heading goes to the next page with its table when the table's header row and first
    row do not fit under it (it used to need room for one more line only)."""
    for filler in range(200, 262, 2):  # somewhere in this range the heading lands at a page's foot
        blocks = (Spacer(filler), Heading("2024 年度", level=2),
                  Table(("类别", "项目"), (("产业帮扶", "到户产业奖补"),)))
        data, _ = render(Document(title="t", sections=(Section("s", "措施", blocks),)), fonts)
        for page in PdfReader(io.BytesIO(data)).pages:
            text = page.extract_text()
            if "2024 年度" in text:
                assert "产业帮扶" in text, (filler, text)


def test_remembered_widths_are_the_measured_ones(fonts) -> None:
    """``_Fonts.width`` remembers a text's width at 1 pt per role (shared by the renders of a
    FontSet): asked again, at any size, it gives what measuring character by character gives,
    and a character no font has is still reported by a later render that draws it."""
    import random

    from archive_builder.render.pdfmodel import _Fonts

    f = _Fonts(fonts)
    rng = random.Random(3)
    alphabet = "张三冯老村，。、：ab Z09.-" + RARE.replace(" ", "")
    for _ in range(2000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        role = rng.choice(("body", "table", "heading"))
        size = rng.choice((9.0, 10.5, 12.0))
        for _ in range(2):  # measured, then remembered
            assert f.width(text, role, size) == sum(f.table(role)[ch] for ch in text) * size
    missing = "\U000f0001"  # a private-use character: no font has it
    f.width(f"户主{missing}", "body", 10.5)
    later = _Fonts(fonts)
    later.width(f"户主{missing}", "body", 10.5)  # remembered: not measured again
    later.used["body"] = set(f"户主{missing}")
    assert any("U+F0001" in w for w in later.warnings())


def test_remembered_line_coding_writes_the_same_bytes(fonts) -> None:
    """The painter remembers each line's font runs and codes for the process (``code_runs``):
    a document written with them remembered is the document written with none remembered,
    rare characters (a fallback face, characters no font has) included."""
    from archive_builder.render.pdfmodel import _shared_cache

    doc = full_document()
    extra = Document(title="另一户", sections=(Section("s", "家庭成员", (
        Paragraph(f"张{RARE}三 户主 \U000f0001 冯老村"), Table(("姓名", "关系"), (("张三", "户主"), (f"李{RARE}", "之子"))),
    )),))
    coded = _shared_cache(fonts).setdefault("coded", {})
    coded.clear()
    cold = [render(d, fonts)[0] for d in (doc, extra)]
    assert coded  # lines were remembered
    warm = [render(d, fonts)[0] for d in (extra, doc)][::-1]
    assert warm == cold
