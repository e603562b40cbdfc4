"""Word writer: every block type, East Asian fonts, repeated header rows, page geometry,
section texts, deterministic bytes."""

from __future__ import annotations

import zipfile
from pathlib import Path

import docx as python_docx
import pytest
from lxml import etree
from PIL import Image

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
from archive_builder.render.docx import (
    W_NS,
    normalise_text,
    section_texts,
    write_docx,
)

W = f"{{{W_NS}}}"
R = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
CJK = ("\u3400", "\u9fff")


class _Img:
    def __init__(self, path, w, h):
        self.path, self.width_px, self.height_px, self.source, self.page = path, w, h, path, 0


@pytest.fixture()
def evidence(tmp_path):
    from archive_builder.render.evidence import EvidenceCache

    return EvidenceCache(tmp_path / "cache")


def _doc(tmp_path: Path) -> Document:
    photo = tmp_path / "photo.jpg"
    Image.new("RGB", (640, 480), (120, 30, 30)).save(photo)
    return Document(
        title="冯老村 张三 档卡", date="2024-03-01", author="冯老村",
        sections=(
            Section("cover", "封面", (Spacer(30), Title("脱贫户档案", "冯老村"),
                                     KeyValue((("户主", "张三"), ("村", "冯老村"))),
                                     QRCode("HH-1|abc", caption="扫码核对")),
                    layout="cover", in_contents=False),
            Section("contents", "目录", (Title("目录"), Contents()), in_contents=False),
            Section("basic", "户基本情况",
                    (Title("户基本情况"),
                     KeyValue((("户主", "张三"), ("人口", "4"), ("地址", "某县<&>村"),
                               ("备注", "很长的备注")), wide=("备注",))),
                    separator="识别认定"),
            Section("members", "家庭成员",
                    (Title("家庭成员"),
                     Table(("姓名", "关系", "身份证号"),
                           tuple((f"成员{i}", "子女", "11010519491231002X") for i in range(40)),
                           widths=(1, 1, 3), footer=(("合计", "", "40人"),), caption="成员表"))),
            Section("application", "申请书",
                    (Title("申请书"), Heading("一、情况"), Heading("（一）收入", level=2),
                     Paragraph("本人张三，因病致贫，特此申请。"), Paragraph("第二行\n换行"),
                     Signature(("户主签名",), fingerprint=True), PageBreak(),
                     Paragraph("下一页")), layout="prose"),
            Section("evidence", "佐证材料",
                    (Evidence(str(photo), "材料/照片.jpg", title="住房照片", kind="照片"),
                     Evidence(str(tmp_path / "missing.jpg"), "材料/缺失.jpg", title="缺失")),
                    separator="佐证材料"),
        ),
    )


EXPECTED = {
    "basic": "户基本情况 户主 张三 人口 4 地址 某县<&>村 备注 很长的备注",
    "members": "家庭成员 成员表 姓名 关系 身份证号 "
               + " ".join(f"成员{i} 子女 11010519491231002X" for i in range(40)) + " 合计 40人",
    "application": "申请书 一、情况 （一）收入 本人张三，因病致贫，特此申请。 第二行 换行 "
                   "户主签名 按手印 年　月　日 下一页",
    "contents": "目录 序号 材料名称 页码 1 户基本情况 3 2 家庭成员 4–5 3 申请书 6 4 佐证材料 7–8",
}


@pytest.fixture()
def written(tmp_path, evidence):
    doc = _doc(tmp_path)
    out = tmp_path / "out.docx"
    numbers = {"basic": "3", "members": "4–5", "application": "6", "evidence": "7–8"}
    result = write_docx(doc, out, evidence=evidence, page_numbers=numbers)
    return doc, out, result


def test_reads_back_and_section_texts(written):
    doc, out, result = written
    python_docx.Document(str(out))  # python-docx can open it
    texts = section_texts(out)
    assert list(texts) == [s.key for s in doc.sections]
    for key, expected in EXPECTED.items():
        assert normalise_text(texts[key]) == normalise_text(expected), key
    assert "材料缺失/无法读取：材料/缺失.jpg" in texts["evidence"]
    assert "住房照片 · 照片 · 材料/照片.jpg" in texts["evidence"]
    # a missing file is validation's warning (with its line), not the writer's a second time
    assert not any("材料/缺失.jpg" in w for w in result.warnings)
    # separator titles are not part of any section's text
    assert "识别认定" not in "".join(texts.values())


def _xml(out: Path, member: str):
    with zipfile.ZipFile(out) as z:
        return etree.fromstring(z.read(member))


def test_every_cjk_run_has_east_asian_font(written):
    _, out, _ = written
    with zipfile.ZipFile(out) as z:
        footers = [n for n in z.namelist() if n.startswith("word/footer")]
    for member in ["word/document.xml"] + footers:
        root = _xml(out, member)
        runs = [r for r in root.iter(f"{W}r")
                if any(ord(ch) > 127 for t in r.iter(f"{W}t") for ch in (t.text or ""))]
        assert runs or member != "word/document.xml"
        for r in runs:
            rf = r.find(f"{W}rPr/{W}rFonts")
            assert rf is not None and rf.get(f"{W}eastAsia"), etree.tostring(r, encoding=str)
            assert rf.get(f"{W}ascii") and rf.get(f"{W}hAnsi")
    styles = _xml(out, "word/styles.xml")
    for sid in ("Normal", "Title", "Heading1", "Heading2"):
        st = styles.find(f"{W}style[@{W}styleId='{sid}']")
        assert st.find(f"{W}rPr/{W}rFonts").get(f"{W}eastAsia"), sid
    assert styles.find(f"{W}docDefaults//{W}rFonts").get(f"{W}eastAsia") == "仿宋"
    # no theme font may override the explicit names (python-docx #1601)
    assert not [rf for rf in styles.iter(f"{W}rFonts") if rf.get(f"{W}eastAsiaTheme")]


def test_font_names_configurable(tmp_path, evidence):
    doc = Document(title="t", sections=(Section("a", "甲", (Title("标题"), Paragraph("正文"))),))
    out = tmp_path / "f.docx"
    write_docx(doc, out, evidence=evidence, font_names={"title": "方正小标宋_GBK", "body": "仿宋_GB2312"})
    root = _xml(out, "word/document.xml")
    east = {rf.get(f"{W}eastAsia") for rf in root.iter(f"{W}rFonts")}
    assert {"方正小标宋_GBK", "仿宋_GB2312"} <= east
    title_run = next(r for r in root.iter(f"{W}r") if "".join(r.itertext()) == "标题")
    assert title_run.find(f"{W}rPr/{W}b") is None  # 小标宋 is not set bold


def test_header_rows_repeat_and_widths(written):
    _, out, _ = written
    d = python_docx.Document(str(out))
    members = next(t for t in d.tables if t.cell(0, 0).text == "姓名")
    tr_pr = members.rows[0]._tr.find(f"{W}trPr")
    assert tr_pr is not None and tr_pr.find(f"{W}tblHeader") is not None
    assert all(r._tr.find(f"{W}trPr/{W}tblHeader") is None for r in members.rows[1:])
    grid = [int(g.get(f"{W}w")) for g in members._tbl.find(f"{W}tblGrid")]
    assert abs(sum(grid) - round(156 * 1440 / 25.4)) <= 2
    assert grid[2] > grid[0]  # widths follow the content; the template's are preferences


def test_page_geometry(written):
    _, out, _ = written
    d = python_docx.Document(str(out))
    mm = 36000
    for s in d.sections:
        assert abs(s.page_width - 210 * mm) < mm and abs(s.page_height - 297 * mm) < mm
        assert abs(s.top_margin - 37 * mm) < mm and abs(s.left_margin - 28 * mm) < mm
        assert abs(s.page_width - s.left_margin - s.right_margin - 156 * mm) < mm
        assert abs(s.page_height - s.top_margin - s.bottom_margin - 225 * mm) < mm
    # cover, contents, separator, basic, members, application, separator, evidence
    assert len(d.sections) == 8
    root = _xml(out, "word/document.xml")
    starts = [p.get(f"{W}start") for p in root.iter(f"{W}pgNumType")]
    assert starts[0] == "1"  # contents page is page 1 like in the PDF
    assert "3" in starts  # after the separator: the PDF's number


def test_page_number_footer(written):
    _, out, _ = written
    with zipfile.ZipFile(out) as z:
        footers = [z.read(n).decode() for n in z.namelist() if n.startswith("word/footer")]
    assert any(" PAGE " in f and "— " in f for f in footers)


def test_sections_share_one_footer_of_each_kind(written):
    """Cover, separator and numbered sections alternate: one numbered and one blank footer
    part, referenced by every section that shows it; each section still names its footer
    where the kind changes, and the zip holds the pictures as they are (stored)."""
    _, out, _ = written
    with zipfile.ZipFile(out) as z:
        footers = sorted(n for n in z.namelist() if n.startswith("word/footer"))
        assert z.testzip() is None
        pictures = [i for i in z.infolist() if i.filename.startswith("word/media/")]
    assert len(footers) == 2
    assert pictures and all(i.compress_type == zipfile.ZIP_STORED for i in pictures)
    body = _xml(out, "word/document.xml")
    refs = [r.get(f"{{{R}}}id") for r in body.iter(f"{W}footerReference")]
    assert len(refs) >= 4 and len(set(refs)) == 2


def test_deterministic_bytes(tmp_path, evidence):
    doc = _doc(tmp_path)
    a, b = tmp_path / "a.docx", tmp_path / "b.docx"
    write_docx(doc, a, evidence=evidence)
    write_docx(doc, b, evidence=evidence)
    assert a.read_bytes() == b.read_bytes()
    core = python_docx.Document(str(a)).core_properties
    assert core.created.year == 2024 and core.title == "冯老村 张三 档卡"


def test_warm_writer_gives_the_cold_bytes(tmp_path, evidence):
    """The prepared package is reused across packets: a packet with a Word form (which adds
    styles and lists to its copy) leaves the next packet exactly as a fresh process writes it."""
    from test_forms import CONTEXT, FORM

    from archive_builder.render import docx as docx_module

    doc = _doc(tmp_path)
    docx_module._BASES.clear()
    cold = tmp_path / "cold.docx"
    write_docx(doc, cold, evidence=evidence)
    assert len(docx_module._BASES) == 1
    write_docx(doc, tmp_path / "form.docx", evidence=evidence, forms={"application": FORM}, context=CONTEXT)
    warm = tmp_path / "warm.docx"
    write_docx(doc, warm, evidence=evidence)
    assert len(docx_module._BASES) == 1
    assert warm.read_bytes() == cold.read_bytes()
    styles = _xml(warm, "word/styles.xml")
    assert not [s for s in styles.iter(f"{{{W_NS}}}style") if s.get(f"{{{W_NS}}}styleId", "").startswith("F1")]


def test_pdf_evidence_page_rendered(tmp_path, evidence):
    from reportlab.pdfgen import canvas

    pdf = tmp_path / "s.pdf"
    c = canvas.Canvas(str(pdf))
    c.drawString(100, 700, "statement")
    c.showPage()
    c.drawString(100, 700, "page 2")
    c.save()
    doc = Document(title="t", sections=(Section("ev", "佐证", (Evidence(str(pdf), "s.pdf", title="流水"),)),))
    out = tmp_path / "e.docx"
    write_docx(doc, out, evidence=evidence)
    with zipfile.ZipFile(out) as z:
        media = [n for n in z.namelist() if n.startswith("word/media/")]
    assert len(media) == 2
    text = section_texts(out)["ev"]
    assert "（第 2 页，共 2 页）" in text


def test_control_characters_do_not_break_output(tmp_path, evidence):
    doc = Document(title="t", sections=(Section("a", "甲", (Paragraph("坏\x0b字符\x00<&>"),)),))
    out = tmp_path / "c.docx"
    write_docx(doc, out, evidence=evidence)
    assert normalise_text(section_texts(out)["a"]) == "坏字符<&>"


def test_external_pages_without_word_original_are_pictures(tmp_path):
    from reportlab.pdfgen.canvas import Canvas

    from archive_builder.document import ExternalPages

    pdf = tmp_path / "form.pdf"
    c = Canvas(str(pdf), pagesize=(595.28, 841.89), invariant=1)
    for n in (1, 2):
        c.drawString(100, 700, f"page {n}")
        c.showPage()
    c.save()
    doc = Document(title="t", sections=(
        Section("application", "申请书", (ExternalPages(str(pdf), 2),)),
        Section("notes", "户说明", (Paragraph("说明"),)),
    ))
    out = tmp_path / "x.docx"
    result = write_docx(doc, out, evidence=None)
    assert result.warnings == ()
    assert len(python_docx.Document(str(out)).inline_shapes) == 2
    assert normalise_text(section_texts(out)["notes"]) == "说明"
