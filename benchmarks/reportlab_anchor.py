"""The plain reportlab route of the performance anchors, to time the build against it.

    python benchmarks/reportlab_anchor.py DATA OUT.pdf [--jobs 2]

What the anchor measured ("reportlab, one PDF per household → pypdf merge, on 2 processes"):
for each household of DATA (a data directory as ``benchmarks/village.py`` generates it), a
short packet — cover, members, cause, measures, income, one page per photo (the JPEG passed
through) — drawn with reportlab's canvas and platypus tables in a pool of ``--jobs`` processes,
then a village cover and contents page, and one pypdf merge with an outline entry per
household. No validation, no caches, no version store: the floor the build is compared to.
Prints the wall time; asserts nothing.
"""

from __future__ import annotations

import argparse
import io
import multiprocessing
import sys
import time
from pathlib import Path

FONT_FILES = ("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc", "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")


def _font() -> str:
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    if "CJK" not in pdfmetrics.getRegisteredFontNames():
        for path in FONT_FILES:
            if Path(path).is_file():
                pdfmetrics.registerFont(TTFont("CJK", path, subfontIndex=0))
                break
        else:
            sys.exit("no CJK font found")
    return "CJK"


def packet(folder: str) -> tuple[str, bytes, int]:
    import reportlab.rl_config
    import yaml
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.platypus import Image, PageBreak, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    reportlab.rl_config.useA85 = 0
    font = _font()
    record = yaml.safe_load((Path(folder) / "household.yaml").read_text(encoding="utf-8"))
    body = ParagraphStyle("b", fontName=font, fontSize=11, leading=16)
    title = ParagraphStyle("t", fontName=font, fontSize=20, leading=28, alignment=1)
    style = TableStyle([("FONT", (0, 0), (-1, -1), font, 9), ("GRID", (0, 0), (-1, -1), 0.5, colors.black)])
    members = record.get("members", [])
    head = next((m["name"] for m in members if m.get("relation") == "户主"), "")
    story = [Spacer(1, 60 * mm), Paragraph("一户一档", title), Spacer(1, 20 * mm),
             Paragraph(f"户编号：{record['household_id']}", body), Paragraph(f"户主：{head}", body),
             Paragraph(f"住址：{record.get('address', '')}", body), PageBreak(),
             Paragraph("家庭成员", title),
             Table([["姓名", "身份证号码", "关系", "性别", "出生日期", "文化程度", "健康"]]
                   + [[m.get("name"), m.get("id_number"), m.get("relation"), m.get("sex"), str(m.get("birth_date")),
                       m.get("education"), "、".join(m.get("health") or [])] for m in members], style=style),
             PageBreak(), Paragraph("致贫返贫风险", title),
             Paragraph(f"主要原因：{(record.get('causes') or {}).get('main', '')}", body),
             Paragraph((record.get("causes") or {}).get("note", ""), body), PageBreak(),
             Paragraph("帮扶措施", title),
             Table([["年度", "类别", "项目", "内容", "金额"]]
                   + [[str(m.get("year")), m.get("category"), m.get("item"), Paragraph(m.get("content", ""), body),
                       str(m.get("amount"))] for m in record.get("measures") or []],
                   colWidths=[15 * mm, 25 * mm, 30 * mm, 80 * mm, 20 * mm], style=style),
             PageBreak(), Paragraph("收入情况", title)]
    for year in record.get("income") or []:
        story.append(Paragraph(f"{year.get('year')} 年：" + "，".join(
            f"{k} {v}" for k, v in year.items() if k != "year" and not isinstance(v, dict)), body))
    for photo in sorted(Path(folder).rglob("*.jpg")):
        story += [PageBreak(), Paragraph("佐证照片", title), Image(str(photo), width=120 * mm, height=160 * mm)]
    buffer = io.BytesIO()
    doc = SimpleDocTemplate(buffer, pagesize=A4)
    doc.build(story)
    return str(record["household_id"]), buffer.getvalue(), doc.page


def main() -> int:
    ap = argparse.ArgumentParser(description="reportlab 对照脚本 / the plain reportlab anchor route")
    ap.add_argument("data", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    started = time.perf_counter()
    folders = sorted(str(p.parent) for p in args.data.rglob("household.yaml"))
    with multiprocessing.get_context("fork").Pool(args.jobs) as pool:
        packets = pool.map(packet, folders, chunksize=4)

    from pypdf import PdfReader, PdfWriter
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    front = io.BytesIO()
    c = canvas.Canvas(front, pagesize=A4)
    c.setFont(_font(), 24)
    c.drawCentredString(A4[0] / 2, A4[1] * 0.6, "村档案")
    c.showPage()
    c.setFont(_font(), 9)
    y, page = A4[1] - 60, 3
    for hid, _, pages in packets:
        if y < 60:
            c.showPage()
            c.setFont(_font(), 9)
            y = A4[1] - 60
        c.drawString(60, y, f"{hid}  第 {page} 页")
        y, page = y - 14, page + pages
    c.showPage()
    c.save()
    writer = PdfWriter()
    writer.append(PdfReader(io.BytesIO(front.getvalue())))
    for hid, data, _ in packets:
        at = len(writer.pages)
        writer.append(PdfReader(io.BytesIO(data)))
        writer.add_outline_item(title=hid, page_number=at)
    with args.out.open("wb") as fh:
        writer.write(fh)
    print(f"reportlab route: {len(packets)} households, {len(writer.pages)} pages, "
          f"{time.perf_counter() - started:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
