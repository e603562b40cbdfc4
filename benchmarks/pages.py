"""PDF writer speed: ms per typical text page and per prose page (prints figures only).

    python benchmarks/pages.py [--pages 200] [--repeat 5] [--profile]

"Typical text page" = a form page holding a KeyValue block (8 pairs), a 20-row table and two
paragraphs.  The platypus figure is a naive reportlab script drawing the same content with
Paragraph/Table flowables (wordWrap="CJK"), for comparison.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from archive_builder.document import (
    Document,
    KeyValue,
    Paragraph,
    Section,
    Table,
    Title,
)
from archive_builder.render.fonts import FontSet
from archive_builder.render.pdf import write_pdf

SURNAMES = "张王李赵刘陈杨黄周吴徐孙胡朱高林何郭马罗"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华堃喆"
PARA = ("该户于2014年识别为建档立卡贫困户，致贫原因为缺劳力、因病。2024年家庭纯收入12,345.67元，"
        "人均纯收入3,086.42元，已落实产业帮扶、就业帮扶和健康帮扶措施，帮扶责任人每月入户走访一次，"
        "户主身份证号41162119850312003X，联系电话13800138000。")


def name(i: int) -> str:
    return SURNAMES[i % len(SURNAMES)] + GIVEN[(i * 7) % len(GIVEN)] + GIVEN[(i * 13) % len(GIVEN)]


def form_section(k: int) -> Section:
    kv = KeyValue(tuple((label, f"{name(k)}{label}{k}") for label in
                        ("户主姓名", "户编号", "家庭人口", "劳动力", "贫困户属性", "致贫原因", "联系电话", "开户银行")))
    rows = tuple((str(i), name(k * 31 + i), "41162119850312003X", "户主" if i == 1 else "子女",
                  f"{(k * 97 + i * 131) % 9000 + 1000:,.2f}") for i in range(1, 21))
    table = Table(("序号", "姓名", "身份证号", "关系", "收入（元）"), rows, widths=(1, 2, 4, 1.5, 2),
                  align=("center", "left", "left", "center", "right"))
    return Section(f"form{k}", f"户基本情况{k}", (
        Title("户基本情况表"), kv, table, Paragraph(PARA), Paragraph(PARA[:60]),
    ))


def prose_section(k: int, pages: int) -> Section:
    return Section(f"prose{k}", f"申请书{k}", (Paragraph(PARA * 4 * pages),), layout="prose")


def time_render(doc: Document, fonts: FontSet, repeat: int) -> tuple[float, int]:
    runs = []
    pages = 0
    for _ in range(repeat):
        buf = io.BytesIO()
        t = time.perf_counter()
        result = write_pdf(doc, buf, fonts=fonts, evidence=None)
        runs.append(time.perf_counter() - t)
        pages = result.pages
    # the machine is shared: the fastest run is the least disturbed one
    return min(runs), pages


def platypus(n: int, fonts: FontSet) -> tuple[float, int]:
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.platypus import PageBreak, SimpleDocTemplate, Spacer
    from reportlab.platypus import Paragraph as P
    from reportlab.platypus import Table as T

    body = fonts.faces["body"].rl_name
    st = ParagraphStyle("b", fontName=body, fontSize=12, leading=19, wordWrap="CJK", firstLineIndent=24)
    ts = ParagraphStyle("t", fontName=body, fontSize=22, leading=30, alignment=1)
    cs = ParagraphStyle("c", fontName=body, fontSize=10.5, leading=13, wordWrap="CJK")
    story = []
    for k in range(n):
        sec = form_section(k)
        story.append(P("户基本情况表", ts))
        kv = sec.blocks[1]
        data = [[P(a, cs), P(b, cs), P(c, cs), P(d, cs)] for (a, b), (c, d) in zip(kv.rows[::2], kv.rows[1::2])]
        story.append(T(data, colWidths=[28 * mm, 50 * mm, 28 * mm, 50 * mm],
                       style=[("GRID", (0, 0), (-1, -1), 0.5, colors.black),
                              ("BACKGROUND", (0, 0), (0, -1), colors.lightgrey)]))
        story.append(Spacer(1, 6))
        tb = sec.blocks[2]
        data = [[P(c, cs) for c in tb.header]] + [[P(c, cs) for c in r] for r in tb.rows]
        story.append(T(data, repeatRows=1, style=[("GRID", (0, 0), (-1, -1), 0.5, colors.black)]))
        story.append(P(PARA, st))
        story.append(P(PARA[:60], st))
        story.append(PageBreak())
    buf = io.BytesIO()
    t = time.perf_counter()
    d = SimpleDocTemplate(buf, pagesize=A4, leftMargin=28 * mm, rightMargin=26 * mm,
                          topMargin=37 * mm, bottomMargin=35 * mm, initialFontName=body)
    d.build(story)
    return time.perf_counter() - t, d.page


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pages", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()

    from reportlab import rl_config
    rl_config.useA85 = 0
    fonts = FontSet.discover()
    fonts.register()

    forms = Document(title="bench", sections=tuple(form_section(k) for k in range(args.pages)))
    prose = Document(title="bench", sections=(prose_section(0, args.pages),))
    write_pdf(Document(title="warm", sections=(form_section(0), prose_section(0, 1))), io.BytesIO(),
              fonts=fonts, evidence=None)  # load fonts and fill width tables once

    if args.profile:
        import cProfile
        import pstats
        cProfile.runctx("write_pdf(forms, io.BytesIO(), fonts=fonts, evidence=None)", globals(),
                        {"forms": forms, "fonts": fonts, "io": io, "write_pdf": write_pdf}, "/tmp/pages.prof")
        pstats.Stats("/tmp/pages.prof").sort_stats("tottime").print_stats(25)
        return

    t, n = time_render(forms, fonts, args.repeat)
    print(f"form pages (KeyValue + 20-row table + paragraphs): {n} pages, {t * 1000:.0f} ms, "
          f"{t * 1000 / n:.2f} ms/page")
    t, n = time_render(prose, fonts, args.repeat)
    print(f"prose pages (22 × 28):                          {n} pages, {t * 1000:.0f} ms, "
          f"{t * 1000 / n:.2f} ms/page")
    small = Document(title="one household", sections=tuple(form_section(k) for k in range(5)))
    t, n = time_render(small, fonts, args.repeat * 4)
    print(f"one 5-page document (warm process):             {n} pages, {t * 1000:.1f} ms, "
          f"{t * 1000 / n:.2f} ms/page")
    try:
        t, n = platypus(min(args.pages, 100), fonts)
        print(f"naive platypus, same content:                   {n} pages, {t * 1000:.0f} ms, "
              f"{t * 1000 / n:.2f} ms/page")
    except Exception as e:  # noqa: BLE001 - a comparison only; never fail the benchmark for it
        print(f"platypus comparison skipped: {e!r}")


if __name__ == "__main__":
    main()
