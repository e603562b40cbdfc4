"""Write the sample Word form templates/county-forms/forms/申请书.docx (a docxtpl template).

Run from the repository root:  python tools/make_form.py [output.docx]

The form stands in for a county's own 申请书 form.  It is rendered with the same context as
the section templates (archive_builder/context.py ``build_context``) and the same filters
(money, cn_date, mask_id, yes_no, join_labels, paragraphs).  Variables it uses:

    application_title    申请书 / 纳入防止返贫监测申请书
    application_kind     建档立卡贫困户 / 防止返贫监测对象
    village.name         村名
    archive.township     乡镇
    hh.household_id      户编号
    hh.group             村民小组
    hh.address           家庭住址 (optional; else township + village + group)
    hh.causes.main       主要致贫原因;  hh.causes.others  其他致贫原因 (list)
    causes_phrase        致贫原因的句中说法（「因病、缺技术」）
    hh.application.text  申请理由 (paragraphs separated by blank lines; optional)
    hh.application.date  申请日期 (optional)
    head.name, head.id_number, head.phone   户主
    members[]            name, relation, sex, birth_date, id_number
    build_date           生成日期

ID numbers are printed masked (``|mask_id``: first 6 and last 4 characters).
"""

from __future__ import annotations

import sys
from pathlib import Path

import docx
from docx.enum.table import WD_TABLE_ALIGNMENT
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.oxml.ns import qn
from docx.shared import Mm, Pt

SONG, FANGSONG, HEI = "宋体", "仿宋", "黑体"


def set_font(run_or_style, name: str, size: float | None = None, bold: bool = False) -> None:
    """Set a run's/style's font including w:eastAsia (python-docx has no API for it)."""
    font = run_or_style.font
    font.name = name
    if size:
        font.size = Pt(size)
    font.bold = bold or None
    el = run_or_style.element
    rpr = el.get_or_add_rPr()
    rfonts = rpr.get_or_add_rFonts()
    for attr in ("w:ascii", "w:hAnsi", "w:eastAsia", "w:cs"):
        rfonts.set(qn(attr), name)
    for attr in ("w:asciiTheme", "w:hAnsiTheme", "w:eastAsiaTheme", "w:cstheme"):
        rfonts.attrib.pop(qn(attr), None)


def para(doc, text: str = "", *, font: str = FANGSONG, size: float = 14, bold: bool = False,
         align=None, indent: bool = False, cell=None):
    p = (cell.paragraphs[0] if cell is not None and not cell.paragraphs[0].text and
         not cell.paragraphs[0].runs else (cell.add_paragraph() if cell is not None else doc.add_paragraph()))
    if align is not None:
        p.alignment = align
    if indent:
        p.paragraph_format.first_line_indent = Pt(size * 2)
    p.paragraph_format.space_after = Pt(0)
    if text:
        set_font(p.add_run(text), font, size, bold)
    return p


def shade(cell, fill: str = "E0E0E0") -> None:
    tcpr = cell._tc.get_or_add_tcPr()
    shd = tcpr.makeelement(qn("w:shd"), {qn("w:val"): "clear", qn("w:color"): "auto", qn("w:fill"): fill})
    tcpr.append(shd)


def build(out: Path) -> None:
    doc = docx.Document()
    for style_name in ("Normal",):
        set_font(doc.styles[style_name], FANGSONG, 14)
    sec = doc.sections[0]
    sec.page_width, sec.page_height = Mm(210), Mm(297)
    sec.top_margin, sec.bottom_margin = Mm(30), Mm(25)
    sec.left_margin, sec.right_margin = Mm(25), Mm(25)

    para(doc, "{{ application_title }}", font=SONG, size=22, bold=True, align=WD_ALIGN_PARAGRAPH.CENTER)
    para(doc, "（{{ application_kind }}）", font=FANGSONG, size=14, align=WD_ALIGN_PARAGRAPH.CENTER)
    para(doc, "{{ village.name }}村民委员会：", size=14)

    # household data
    t = doc.add_table(rows=3, cols=4)
    t.style = doc.styles["Table Grid"]
    t.alignment = WD_TABLE_ALIGNMENT.CENTER
    cells = [
        ("户主姓名", "{{ head.name }}", "身份证号", "{{ head.id_number|mask_id }}"),
        ("户编号", "{{ hh.household_id }}", "家庭人口", "{{ members|length }} 人"),
        ("家庭住址", ("{% if hh.address %}{{ hh.address }}{% else %}{{ archive.township }}{{ village.name }}"
                      "{{ hh.group }}{% endif %}"), "联系电话", "{{ (hh.phone or head.phone)|mask_id }}"),
    ]
    for r, values in enumerate(cells):
        for c, value in enumerate(values):
            cell = t.cell(r, c)
            para(doc, value, font=SONG, size=10.5, cell=cell,
                 align=WD_ALIGN_PARAGRAPH.CENTER if c % 2 == 0 else None)
            if c % 2 == 0:
                shade(cell)

    para(doc, "家庭成员", font=HEI, size=14)
    header = ("序号", "姓名", "与户主关系", "性别", "出生日期", "身份证号")
    mt = doc.add_table(rows=4, cols=len(header))
    mt.style = doc.styles["Table Grid"]
    mt.alignment = WD_TABLE_ALIGNMENT.CENTER
    for c, h in enumerate(header):
        para(doc, h, font=HEI, size=10.5, cell=mt.cell(0, c), align=WD_ALIGN_PARAGRAPH.CENTER)
        shade(mt.cell(0, c))
    # repeat the header row on every page
    trpr = mt.rows[0]._tr.get_or_add_trPr()
    trpr.append(trpr.makeelement(qn("w:tblHeader"), {}))
    para(doc, "{%tr for m in members %}", font=SONG, size=10.5, cell=mt.cell(1, 0))
    row = ("{{ loop.index }}", "{{ m.name }}", "{{ m.relation }}", "{{ m.sex }}",
           "{{ m.birth_date|cn_date }}", "{{ m.id_number|mask_id }}")
    for c, value in enumerate(row):
        para(doc, value, font=SONG, size=10.5, cell=mt.cell(2, c), align=WD_ALIGN_PARAGRAPH.CENTER)
    para(doc, "{%tr endfor %}", font=SONG, size=10.5, cell=mt.cell(3, 0))

    para(doc, "致贫原因", font=HEI, size=14)
    para(doc, "{{ hh.causes.main }}{% if hh.causes.others %}、{{ hh.causes.others|join_labels }}{% endif %}",
         indent=True)
    para(doc, "申请理由", font=HEI, size=14)
    para(doc, "{%p if hh.application and hh.application.text %}")
    para(doc, "{%p for text in hh.application.text|paragraphs %}")
    para(doc, "{{ text }}", indent=True)
    para(doc, "{%p endfor %}")
    para(doc, "{%p else %}")
    para(doc, "本人{{ head.name }}，系{{ archive.township }}{{ village.name }}{{ hh.group }}村民，"
              "家庭人口{{ members|length }}人，{{ causes_phrase or '因其他原因' }}导致家庭生活困难，"
              "现自愿申请纳入{{ application_kind }}。", indent=True)
    para(doc, "{%p endif %}")
    para(doc, "申请人承诺", font=HEI, size=14)
    para(doc, "本人承诺以上所填家庭成员、收入、财产等情况真实、准确、完整，同意村、乡（镇）"
              "对家庭经济状况进行核查；如有隐瞒或虚报，愿承担相应责任。", indent=True)
    para(doc, "")
    para(doc, "申请人（户主）签名（按手印）：________________", align=WD_ALIGN_PARAGRAPH.RIGHT)
    para(doc, "{% if hh.application and hh.application.date %}{{ hh.application.date|cn_date }}"
              "{% else %}年　　月　　日{% endif %}", align=WD_ALIGN_PARAGRAPH.RIGHT)
    para(doc, "村民委员会意见：________________", align=WD_ALIGN_PARAGRAPH.RIGHT)
    para(doc, "（盖章）　　年　　月　　日", align=WD_ALIGN_PARAGRAPH.RIGHT)

    core = doc.core_properties
    core.title = "申请书（Word 表单样例）"
    core.author = "archive-builder"
    out.parent.mkdir(parents=True, exist_ok=True)
    doc.save(str(out))


if __name__ == "__main__":
    root = Path(__file__).resolve().parent.parent
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else root / "templates" / "county-forms" / "forms" / "申请书.docx"
    build(target)
    print(target)
