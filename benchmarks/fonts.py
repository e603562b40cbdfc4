"""Benchmark of archive_builder.render.fonts.

Run: ``python benchmarks/fonts.py [packets]`` (default 50).

Prints:
* discovery / registration / fingerprint times (cold process);
* µs per ``runs`` and ``string_width`` call on 20-character strings (warm caches);
* per-packet render time and font bytes, this module vs. stock reportlab ``TTFont``;
* collation of N packets with pikepdf: font programs and font bytes before/after
  ``merge_font_subsets``, and the same for stock reportlab packets (pages copied only).
"""

from __future__ import annotations

import io
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # tests/pdffonts.py

from reportlab import rl_config

rl_config.useA85 = 0

import pikepdf
from pdffonts import font_report
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas

from archive_builder.render.fonts import FontSet, merge_font_subsets

ROLES_DRAWN = ("body", "heading", "kai", "title")
PAGES = 7


def packet_text(i: int, pool: list[str]) -> list[str]:
    r = random.Random(i)
    names = "张王李赵刘陈杨黄周吴"
    head = f"户主：{r.choice(names)}堃  身份证号：41162119850312003X  家庭成员 {r.randint(1, 7)} 人  喆 𠮷"
    lines = [head]
    for _ in range(PAGES * 14):
        lines.append("".join(r.choice(pool) for _ in range(28)))
    return lines


def render_ours(fs: FontSet, lines: list[str]) -> bytes:
    buf = io.BytesIO()
    c = Canvas(buf, initialFontName=fs.faces["body"].rl_name)
    per_page = len(lines) // PAGES
    for p in range(PAGES):
        y = 800.0
        for k, line in enumerate(lines[p * per_page:(p + 1) * per_page]):
            role = ROLES_DRAWN[k % 4]
            x = 60.0
            for name, s in fs.runs(line, role):
                c.setFont(name, 14)
                c.drawString(x, y, s)
                x += fs.string_width(s, role, 14)
            y -= 22
        c.showPage()
    c.save()
    return buf.getvalue()


def render_stock(stock: dict[str, str], lines: list[str]) -> bytes:
    buf = io.BytesIO()
    c = Canvas(buf, initialFontName=stock["body"])
    per_page = len(lines) // PAGES
    for p in range(PAGES):
        y = 800.0
        for k, line in enumerate(lines[p * per_page:(p + 1) * per_page]):
            role = ROLES_DRAWN[k % 4]
            c.setFont(stock[role], 14)
            c.drawString(60, y, line)
            y -= 22
        c.showPage()
    c.save()
    return buf.getvalue()


def font_bytes(pdf: bytes) -> tuple[int, int]:
    p = Path("/tmp/_fontbench.pdf")
    p.write_bytes(pdf)
    rep = font_report(p)
    return len(rep), sum(d["bytes"] for d in rep)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    t = time.perf_counter()
    fs = FontSet.discover()
    t1 = time.perf_counter()
    fs.register()
    t2 = time.perf_counter()
    fp = fs.fingerprint()
    t3 = time.perf_counter()
    print(f"discover {1e3 * (t1 - t):.1f} ms, register {1e3 * (t2 - t1):.0f} ms, "
          f"fingerprint {1e3 * (t3 - t2):.0f} ms ({fp[:12]}…)")

    face = pdfmetrics.getFont(fs.faces["body"].rl_name).face
    pool = [chr(c) for c in range(0x4E00, 0x9FA6) if c in face.charToGlyph][:2500]
    r = random.Random(7)
    samples = ["".join(r.choice(pool) for _ in range(20)) for _ in range(2000)]
    for s in samples:  # warm-up
        fs.runs(s, "body")
        fs.string_width(s, "body", 16)
    k = 20
    t = time.perf_counter()
    for _ in range(k):
        for s in samples:
            fs.string_width(s, "body", 16)
    tw = (time.perf_counter() - t) / (k * len(samples))
    t = time.perf_counter()
    for _ in range(k):
        for s in samples:
            fs.runs(s, "body")
    tr = (time.perf_counter() - t) / (k * len(samples))
    t = time.perf_counter()
    for _ in range(k):
        for s in samples:
            pdfmetrics.stringWidth(s, fs.faces["body"].rl_name, 16)
    ts = (time.perf_counter() - t) / (k * len(samples))
    rare = "张𠮷堃喆张三李四王五赵六钱七孙八周九吴"
    fs.runs(rare, "body")
    t = time.perf_counter()
    for _ in range(20000):
        fs.runs(rare, "body")
    trr = (time.perf_counter() - t) / 20000
    print(f"20-char string: string_width {1e6 * tw:.2f} µs, runs {1e6 * tr:.2f} µs "
          f"(with a fallback char {1e6 * trr:.2f} µs); reportlab pdfmetrics.stringWidth {1e6 * ts:.2f} µs")

    stock = {}
    for role in ROLES_DRAWN:
        f = fs.faces[role]
        name = "STOCK-" + f.rl_name
        if name not in pdfmetrics.getRegisteredFontNames():
            font = TTFont(name, str(f.path), subfontIndex=f.subfont_index)
            pdfmetrics._fonts[name] = font  # bypass face-name aliasing to our font
        stock[role] = name

    texts = [packet_text(i, pool[:1200]) for i in range(n)]
    render_ours(fs, texts[0])
    render_stock(stock, texts[0])
    t = time.perf_counter()
    ours = [render_ours(fs, x) for x in texts]
    t_ours = (time.perf_counter() - t) / n
    t = time.perf_counter()
    stk = [render_stock(stock, x) for x in texts]
    t_stock = (time.perf_counter() - t) / n
    fo = [font_bytes(p) for p in ours[:10]]
    fsk = [font_bytes(p) for p in stk[:10]]
    print(f"packet ({PAGES} pages, ~{len(''.join(texts[0]))} chars): "
          f"ours {1e3 * t_ours:.1f} ms ({1e3 * t_ours / PAGES:.2f} ms/page), "
          f"{sum(len(p) for p in ours) / n / 1024:.1f} KB, "
          f"{sum(b for _, b in fo) / len(fo) / 1024:.1f} KB fonts in {fo[0][0]} font objects | "
          f"stock {1e3 * t_stock:.1f} ms ({1e3 * t_stock / PAGES:.2f} ms/page), "
          f"{sum(len(p) for p in stk) / n / 1024:.1f} KB, "
          f"{sum(b for _, b in fsk) / len(fsk) / 1024:.1f} KB fonts in {fsk[0][0]} font objects")

    for label, pdfs in (("ours", ours), ("stock", stk)):
        w = pikepdf.new()
        t = time.perf_counter()
        sources = [pikepdf.open(io.BytesIO(p)) for p in pdfs]
        for source in sources:
            w.pages.extend(source.pages)
        t_app = time.perf_counter() - t
        t = time.perf_counter()
        stats = merge_font_subsets(w) if label == "ours" else {}
        t_merge = time.perf_counter() - t
        out = io.BytesIO()
        w.save(out, static_id=True)
        data = out.getvalue()
        cnt, fb = font_bytes(data)
        print(f"collate {n} packets [{label}]: append {t_app:.2f} s, font step {t_merge:.2f} s, "
              f"file {len(data) / 1e6:.2f} MB, {cnt} font objects, {fb / 1e6:.2f} MB font programs"
              + (f"; stats {stats}" if stats else ""))


if __name__ == "__main__":
    main()
