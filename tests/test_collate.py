"""Collation into box PDFs: planning, page order, true contents, duplex, stamps, outline."""

from __future__ import annotations

import io
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from collation import collate_village

from archive_builder.archive.collate import (
    CONTENTS_ROWS,
    MM,
    PacketInfo,
    PrintOptions,
    VillageInfo,
    box_pages,
    box_sheets,
    draw_text,
    packet_offsets,
    plan_boxes,
)
from archive_builder.document import SectionPages
from archive_builder.render import fontmerge, fontprogram

pypdf = pytest.importorskip("pypdf")
import itertools

from pypdf import PdfReader

UMING = "/usr/share/fonts/truetype/arphic/uming.ttc"


# --------------------------------------------------------------------------- helpers


class FakeFonts:
    """Stands in for render.fonts.FontSet: one CJK TrueType face for every role."""

    name = "ABTestMing"

    def __init__(self) -> None:
        from reportlab.pdfbase import pdfmetrics
        from reportlab.pdfbase.ttfonts import TTFont

        if self.name not in pdfmetrics.getRegisteredFontNames():
            pdfmetrics.registerFont(TTFont(self.name, UMING, subfontIndex=0))
        face = SimpleNamespace(rl_name=self.name)
        self.faces = {r: face for r in ("title", "body", "heading", "kai", "table")}

    def runs(self, text: str, role: str) -> list[tuple[str, str]]:
        return [(self.name, text)] if text else []

    def string_width(self, text: str, role: str, size: float) -> float:
        from reportlab.pdfbase.pdfmetrics import stringWidth

        return stringWidth(text, self.name, size)


_FONTS = None


def get_fonts():
    """The real FontSet when it exists, else the fake (one instance per process)."""
    global _FONTS
    if _FONTS is None:
        try:
            from archive_builder.render.fonts import FontSet
        except ImportError:
            _FONTS = FakeFonts()
        else:
            _FONTS = FontSet.discover()
            _FONTS.register()
    return _FONTS


def marker(hid: str, n: int) -> str:
    return f"HOUSEHOLD-{hid}-PAGE-{n}"


def make_packet(
    path: Path, hid: str, pages: int, *, separator: int | None = None, fonts=None, reported=None
) -> tuple[tuple[SectionPages, ...], tuple[int, ...]]:
    """A small reportlab packet with a marker on every page and one bookmark per section."""
    from reportlab.pdfgen import canvas

    fonts = fonts or get_fonts()
    body = fonts.faces["body"].rl_name
    c = canvas.Canvas(str(path), pagesize=(210 * MM, 297 * MM), invariant=1, initialFontName=body)
    sections = [SectionPages("cover", "封面", 0, 0), SectionPages("members", "家庭成员", 1, 1)]
    seps: tuple[int, ...] = ()
    if separator is not None:
        seps = (separator,)
        sections.append(SectionPages("measures", "帮扶措施", separator + 1, pages - 1))
        if separator > 2:
            sections.insert(2, SectionPages("plan", "帮扶计划", 2, separator - 1))
    else:
        sections.append(SectionPages("measures", "帮扶措施", 2, pages - 1))
    starts = {s.first: s for s in sections}
    for i in range(pages):
        if i in starts:
            s = starts[i]
            c.bookmarkPage(f"{s.key}")
            c.addOutlineEntry(s.title, s.key, level=0)
        draw_text(c, fonts, marker(hid, i + 1), "body", 12, 30 * MM, 200 * MM)
        draw_text(
            c, fonts, "隔页纸" if i in seps else f"户 {hid} 第 {i + 1} 页", "body", 12, 30 * MM, 180 * MM
        )
        c.showPage()
    c.save()
    if reported is not None:  # what the renderer reports of its fonts (RenderResult.fonts)
        reported.extend(c._doc.__dict__.get(fontprogram._DOC_FONTS, ()))
    return tuple(sections), seps


def make_packets(tmp: Path, count: int = 12, sizes=(3, 4, 5, 6, 7)) -> list[PacketInfo]:
    fonts = get_fonts()
    out = []
    for i in range(count):
        hid = f"411621{i + 1:010d}"
        pages = sizes[i % len(sizes)]
        sep = 2 if pages >= 5 else None
        pdf = tmp / f"{hid}.pdf"
        sections, seps = make_packet(pdf, hid, pages, separator=sep, fonts=fonts)
        out.append(
            PacketInfo(
                household_id=hid,
                head=f"张{'一二三四五六七八九十'[i % 10]}{i}",
                members=1 + i % 6,
                household_type="脱贫户" if i % 3 else "监测对象",
                item_no=i + 1,
                pdf=pdf,
                pages=pages,
                sections=sections,
                separators=seps,
            )
        )
    return out


VILLAGE = VillageInfo(
    code="411621101201",
    name="冯老村",
    county="扶沟县",
    township="练寺镇",
    year=2024,
    fonds_no="Z012",
    fonds_name="练寺镇人民政府",
    retention="永久",
)


def page_texts(reader: PdfReader) -> list[str]:
    return [p.extract_text() or "" for p in reader.pages]


def number_positions(page) -> list[tuple[str, float, float]]:
    """Digit-only text chunks with their (x, y) in user space."""
    found: list[tuple[str, float, float]] = []

    def visit(text, cm, tm, font_dict, font_size):
        t = text.strip()
        if t.isdigit():
            x = tm[4] * cm[0] + tm[5] * cm[2] + cm[4]
            y = tm[4] * cm[1] + tm[5] * cm[3] + cm[5]
            found.append((t, x, y))

    page.extract_text(visitor_text=visit)
    return found


@pytest.fixture(scope="module")
def fonts():
    return get_fonts()


@pytest.fixture(scope="module")
def built(tmp_path_factory, fonts):
    tmp = tmp_path_factory.mktemp("collate")
    packets = make_packets(tmp)
    out = tmp / "out"
    opts = PrintOptions(duplex=True, sheets_per_box=14)
    boxes = collate_village(VILLAGE, packets, out, opts, fonts=fonts, date="2025-03-01")
    return SimpleNamespace(tmp=tmp, packets=packets, out=out, opts=opts, boxes=boxes)


# --------------------------------------------------------------------------- planning


def fake_info(i: int, pages: int) -> PacketInfo:
    return PacketInfo(f"h{i:04d}", "户主", 3, "脱贫户", i, Path(f"/nonexistent/{i}.pdf"), pages)


@pytest.mark.parametrize("duplex", [True, False])
@pytest.mark.parametrize("limit", [8, 15, 40, 200])
def test_plan_never_splits_and_respects_capacity(duplex, limit):
    sizes = [3, 7, 4, 5, 1, 9, 6, 2, 7, 7, 3, 30, 4]
    packets = [fake_info(i + 1, n) for i, n in enumerate(sizes)]
    opts = PrintOptions(duplex=duplex, sheets_per_box=limit)
    problems: list = []
    boxes = plan_boxes(packets, opts, problems=problems)
    flat = [p for box in boxes for p in box]
    assert [p.item_no for p in flat] == list(range(1, len(sizes) + 1))  # all, in order, once
    for box in boxes:
        if len(box) > 1:
            assert box_sheets(box, opts) <= limit
        else:
            assert box_sheets(box, opts) <= limit or len(box) == 1
    oversized = [p for p in packets if box_sheets([p], opts) > limit]
    assert len(problems) == len(oversized)
    for p in oversized:
        assert [p] in boxes
    for msg in problems:
        assert "单独装一盒" in msg.message
    # greedy: the next household would not have fitted into the previous box
    for a, b in itertools.pairwise(boxes):
        assert box_sheets([*a, b[0]], opts) > limit


def test_plan_sheet_arithmetic():
    packets = [fake_info(1, 3), fake_info(2, 4)]
    # duplex: cover 2 + contents 2 + 4 + 4 + 备考表 1 = 13 pages = 7 sheets
    assert box_pages(packets, PrintOptions(duplex=True)) == 13
    assert box_sheets(packets, PrintOptions(duplex=True)) == 7
    # simplex: 1 + 1 + 3 + 4 + 1
    assert box_sheets(packets, PrintOptions(duplex=False)) == 10
    many = [fake_info(i + 1, 2) for i in range(CONTENTS_ROWS + 1)]
    assert box_pages(many, PrintOptions(duplex=False)) == 1 + 2 + 2 * len(many) + 1


def test_packet_offsets_separator_sheets():
    p = PacketInfo("h", "户主", 3, "脱贫户", 1, Path("x.pdf"), 7, separators=(2, 5))
    # 0 1 | separator on recto 2, blank 3 | 4 5 | separator on recto 6, blank 7 | 8, blank 9
    offsets, span = packet_offsets(p, PrintOptions(duplex=True))
    assert offsets == [0, 1, 2, 4, 5, 6, 8]
    assert all(offsets[i] % 2 == 0 for i in p.separators)
    assert span == 10
    assert packet_offsets(p, PrintOptions(duplex=True, separator_own_sheet=False)) == (list(range(7)), 8)
    assert packet_offsets(p, PrintOptions(duplex=False)) == (list(range(7)), 7)


def test_plan_rejects_duplicate_item_numbers():
    with pytest.raises(ValueError):
        plan_boxes([fake_info(1, 3), fake_info(1, 4)], PrintOptions())


# --------------------------------------------------------------------------- box PDFs


def test_box_files_and_results(built):
    boxes = built.boxes
    assert len(boxes) >= 2
    names = [b.file.name for b in boxes]
    assert names == sorted(names)
    assert names[0] == "411621101201_冯老村_第01盒.pdf"
    assert sorted(p.name for p in built.out.iterdir()) == names  # no temp files left
    items = [hid for b in boxes for hid, _, _ in b.households]
    assert items == [p.household_id for p in built.packets]
    for b in boxes:
        r = PdfReader(b.file)
        assert len(r.pages) == b.pages
        assert b.sheets == (b.pages + 1) // 2 <= built.opts.sheets_per_box
        assert b.first_item == int(
            b.households
            and built.packets[[p.household_id for p in built.packets].index(b.households[0][0])].item_no
        )


def test_page_order_and_true_contents(built):
    by_id = {p.household_id: p for p in built.packets}
    for b in built.boxes:
        r = PdfReader(b.file)
        texts = page_texts(r)
        assert "练寺镇人民政府" in texts[0] and "第 " in texts[0]  # box cover first
        contents_idx = [i for i, t in enumerate(texts) if "卷 内 目 录" in t]
        assert contents_idx and contents_idx[0] == 2  # duplex: cover + blank verso
        assert "备" in texts[-1] and "本盒共" in texts[-1]
        contents = "\n".join(texts[i] for i in contents_idx)
        last_seen = -1
        for (hid, first, last), (hid2, n1, n2) in zip(b.households, b.numbers):
            assert hid == hid2
            p = by_id[hid]
            # find the page with the household's first-page marker
            hits = [i for i, t in enumerate(texts) if marker(hid, 1) in t]
            assert hits == [first - 1]
            assert marker(hid, p.pages) in texts[last - 1]
            assert first - 1 > last_seen  # 件号 order
            last_seen = last - 1
            # the number stamped on that page equals the contents' 起止页
            stamped = [t for t, _, _ in number_positions(r.pages[first - 1])]
            assert stamped == [str(n1)]
            stamped_last = [t for t, _, _ in number_positions(r.pages[last - 1])]
            assert stamped_last == [str(n2)]
            assert n2 - n1 + 1 == p.pages - len(p.separators)
            row = re.search(rf"{p.item_no:04d}\s*{hid}.*?(\d+)—(\d+)", contents, re.DOTALL)
            assert row, contents
            assert (int(row[1]), int(row[2])) == (n1, n2)


def test_numbering_is_consecutive_and_separators_unnumbered(built):
    for b in built.boxes:
        r = PdfReader(b.file)
        seen = []
        for i, page in enumerate(r.pages):
            nums = number_positions(page)
            text = page.extract_text() or ""
            if "HOUSEHOLD-" in text and "隔页纸" not in text:
                assert len(nums) == 1, (i, text)
                seen.append(int(nums[0][0]))
            elif "隔页纸" in text:
                assert nums == []
        assert seen == list(range(1, len(seen) + 1))
        assert b.numbered_pages == len(seen)
        assert f"本盒共 {len(b.households)} 件 {len(seen)} 页" in page_texts(r)[-1]


def test_duplex_rectos_and_blank_versos(built):
    separators = 0
    for b in built.boxes:
        r = PdfReader(b.file)
        for hid, first, last in b.households:
            assert first % 2 == 1  # odd 1-based page = recto
        texts = page_texts(r)
        assert texts[1] == "" and "/Contents" not in r.pages[1]  # blank verso after the cover
        for i, page in enumerate(r.pages):
            if "/Contents" not in page:
                assert texts[i] == ""
                assert number_positions(page) == []
                assert i % 2 == 1  # blanks are versos
        # 备考表 on a recto
        assert len(r.pages) % 2 == 1
        # separator sheets: a sheet of their own (recto, blank verso)
        seps = [i for i, t in enumerate(texts) if "隔页纸" in t and "HOUSEHOLD-" in t]
        separators += len(seps)
        for i in seps:
            assert i % 2 == 0 and "/Contents" not in r.pages[i + 1]
    assert separators == sum(len(p.separators) for p in built.packets)


def test_stamp_positions(built):
    r = PdfReader(built.boxes[0].file)
    width = float(r.pages[0].mediabox.width)
    height = float(r.pages[0].mediabox.height)
    checked = {True: 0, False: 0}
    for i, page in enumerate(r.pages):
        for text, x, y in number_positions(page):
            if "HOUSEHOLD-" not in (page.extract_text() or ""):
                continue
            assert y > height - 20 * MM  # top
            recto = i % 2 == 0
            if recto:
                assert x > width / 2
                assert x < width - 10 * MM
            else:
                assert x < 20 * MM
            checked[recto] += 1
    assert checked[True] and checked[False]


def test_simplex_numbers_always_top_right(tmp_path, fonts):
    packets = make_packets(tmp_path, count=4)
    boxes = collate_village(
        VILLAGE, packets, tmp_path / "out", PrintOptions(duplex=False), fonts=fonts, date="2025-03-01"
    )
    assert len(boxes) == 1
    r = PdfReader(boxes[0].file)
    assert len(r.pages) == boxes[0].pages == boxes[0].sheets == 1 + 1 + sum(p.pages for p in packets) + 1
    width = float(r.pages[0].mediabox.width)
    n = 0
    for page in r.pages:
        assert "/Contents" in page  # no blank pages in simplex
        for _, x, _ in number_positions(page):
            if "HOUSEHOLD-" in (page.extract_text() or ""):
                assert x > width / 2
                n += 1
    assert n == boxes[0].numbered_pages


def test_outline(built):
    by_id = {p.household_id: p for p in built.packets}
    for b in built.boxes:
        r = PdfReader(b.file)
        outline = r.outline
        top = [o for o in outline if not isinstance(o, list)]
        titles = [o.title for o in top]
        assert titles[0] == "封面" and titles[1] == "卷内目录" and titles[-1] == "备考表"
        assert r.get_destination_page_number(top[-1]) == b.pages - 1
        households = top[2:-1]
        assert len(households) == len(b.households)
        # children lists follow their parent
        children = [o for o in outline if isinstance(o, list)]
        assert len(children) == len(households)
        for item, kids, (hid, first, last) in zip(households, children, b.households):
            p = by_id[hid]
            assert item.title == f"{p.item_no:04d} {p.head}（户编号 {hid}）"
            assert r.get_destination_page_number(item) == first - 1
            assert [k.title for k in kids] == [s.title for s in p.sections]
            for k, s in zip(kids, p.sections):
                target = r.get_destination_page_number(k)
                assert first - 1 <= target <= last - 1
                assert marker(hid, s.first + 1) in r.pages[target].extract_text()


def test_page_labels(built):
    b = built.boxes[0]
    r = PdfReader(b.file)
    labels = r.page_labels
    assert labels[0] == "封面"
    assert labels[2] == "目录-1"
    _hid, first, _ = b.households[0]
    assert labels[first - 1] == str(b.numbers[0][1]) == "1"
    assert labels[-1] == "备考表"


def all_fonts(reader: PdfReader) -> list:
    """Every simple/composite font dictionary used by any page (descendants included)."""
    seen: dict[int, object] = {}
    for page in reader.pages:
        res = page.get("/Resources")
        if res is None:
            continue
        for ref in res.get_object().get("/Font", {}).values():
            font = ref.get_object()
            seen[id(font)] = font
            for d in font.get("/DescendantFonts", []):
                seen[id(d.get_object())] = d.get_object()
    return list(seen.values())


def test_fonts_embedded(built):
    for b in built.boxes:
        fonts = all_fonts(PdfReader(b.file))
        assert fonts
        for font in fonts:
            if font.get("/Subtype") == "/Type0":
                continue
            desc = font.get("/FontDescriptor")
            assert desc is not None, font.get("/BaseFont")
            desc = desc.get_object()
            assert any(k in desc for k in ("/FontFile", "/FontFile2", "/FontFile3")), font.get("/BaseFont")
            assert "Helvetica" not in str(font.get("/BaseFont"))


def test_subset_tags_unique_after_merge(built):
    from archive_builder.render import fonts as fonts_mod

    if not hasattr(fonts_mod, "merge_font_subsets"):
        pytest.skip("merge_font_subsets not available yet")
    for b in built.boxes:
        r = PdfReader(b.file)
        # ISO 32000-1 §9.6.4: different subsets in one file have different tags
        programs_by_tag: dict[str, set] = {}
        for font in all_fonts(r):
            desc = font.get("/FontDescriptor")
            if desc is None:
                continue
            desc = desc.get_object()
            ref = desc.get("/FontFile2") or desc.get("/FontFile3") or desc.get("/FontFile")
            tag = str(font["/BaseFont"])[1:7]
            programs_by_tag.setdefault(tag, set()).add(ref.indirect_reference.idnum)
        assert all(len(ids) == 1 for ids in programs_by_tag.values()), programs_by_tag
        if not isinstance(get_fonts(), FakeFonts):
            # one shared copy of the body face for all households in the box
            body = [f for f in all_fonts(r) if f.get("/Subtype") == "/CIDFontType2"]
            names = [str(f["/BaseFont"]).split("+", 1)[1] for f in body]
            assert len(names) == len(set(names)), names


def test_deterministic_bytes(built, fonts, tmp_path):
    again = collate_village(VILLAGE, built.packets, tmp_path, built.opts, fonts=fonts, date="2025-03-01")
    assert [a.file.read_bytes() for a in again] == [b.file.read_bytes() for b in built.boxes]
    other = collate_village(
        VILLAGE, built.packets, tmp_path / "d", built.opts, fonts=fonts, date="2025-03-02"
    )
    assert other[0].file.read_bytes() != built.boxes[0].file.read_bytes()
    # the file identifier is deterministic and present
    r = PdfReader(built.boxes[0].file)
    assert r.trailer["/ID"][0] == PdfReader(again[0].file).trailer["/ID"][0]
    assert r.metadata.title == "冯老村 档案 第1盒"


def test_shared_fonts_do_not_depend_on_the_faces_loaded(built, fonts, tmp_path, monkeypatch):
    """Collation shares one copy of each face without reading any packet's font program,
    and a face the collating process has not loaded yet is loaded: the box bytes are the same
    whichever faces were loaded before (what a worker rendered earlier must not matter)."""
    from archive_builder.render import fonts as fonts_mod

    if isinstance(fonts, FakeFonts) or not hasattr(fonts_mod, "SharedFonts"):
        pytest.skip("needs the real FontSet")
    split = []
    real = fontmerge._split_program
    monkeypatch.setattr(fontmerge, "_split_program", lambda prog: split.append(1) or real(prog))
    fast = collate_village(VILLAGE, built.packets, tmp_path / "fast", built.opts, fonts=fonts, date="2025-03-01")
    monkeypatch.setattr(fontmerge, "_marker_sources", lambda fonts: {})
    cold = collate_village(VILLAGE, built.packets, tmp_path / "cold", built.opts, fonts=fonts, date="2025-03-01")
    assert not split, "no packet font program is decompressed"
    assert [a.file.read_bytes() for a in fast] == [b.file.read_bytes() for b in cold]


def test_fonts_without_marker_are_merged_from_their_programs(tmp_path, fonts):
    """Packets whose fonts carry no face marker (older packets, other fonts) are copied and
    merged from their embedded programs: still one copy of each face, the same text."""
    from pdffonts import font_report
    from pypdf import PdfWriter

    if isinstance(fonts, FakeFonts):
        pytest.skip("needs the real FontSet")
    packets = make_packets(tmp_path, count=4)
    marked = collate_village(VILLAGE, packets, tmp_path / "marked", PrintOptions(), fonts=fonts, date="2025-03-01")
    for p in packets:
        writer = PdfWriter(clone_from=p.pdf)
        for obj in writer._objects:
            if isinstance(obj, dict) and fontprogram._FACE_KEY in obj:
                del obj[fontprogram._FACE_KEY]
        with open(p.pdf, "wb") as fh:
            writer.write(fh)
    plain = collate_village(VILLAGE, packets, tmp_path / "plain", PrintOptions(), fonts=fonts, date="2025-03-01")
    report = font_report(plain[0].file)
    faces = [f["name"].split("+")[1] for f in report]
    assert faces and len(faces) == len(set(faces))  # one copy of each face
    assert page_texts(PdfReader(plain[0].file)) == page_texts(PdfReader(marked[0].file))


def test_stale_boxes_removed_and_single_box_name(built, fonts, tmp_path):
    out = tmp_path / "o"
    many = collate_village(VILLAGE, built.packets, out, built.opts, fonts=fonts, date="2025-03-01")
    assert len(many) >= 2
    (out / "unrelated.pdf").write_bytes(b"x")
    one = collate_village(
        VILLAGE, built.packets, out, PrintOptions(sheets_per_box=500), fonts=fonts, date="2025-03-01"
    )
    assert len(one) == 1
    assert sorted(p.name for p in out.iterdir()) == ["411621101201_冯老村_第01盒.pdf", "unrelated.pdf"]


def test_many_households_contents_spans_pages(tmp_path, fonts):
    packets = make_packets(tmp_path, count=CONTENTS_ROWS + 3, sizes=(1, 2))
    boxes = collate_village(
        VILLAGE, packets, tmp_path / "out", PrintOptions(sheets_per_box=500), fonts=fonts, date="2025-03-01"
    )
    assert len(boxes) == 1
    r = PdfReader(boxes[0].file)
    texts = page_texts(r)
    assert "第 1 页" in texts[2] and "共 2 页" in texts[2] and "第 2 页" in texts[3]
    first_packet = boxes[0].households[0][1]
    assert first_packet == 5  # cover, blank, contents ×2, then the first packet
    last_hid = packets[-1].household_id
    assert last_hid in texts[3]
    for hid, first, _ in boxes[0].households:
        assert marker(hid, 1) in texts[first - 1]


def test_numbers_with_cjk_fallback_font(tmp_path, fonts, monkeypatch):
    """Without a Latin TTF the digits come from the template set's table face (2-byte codes)."""
    from archive_builder.render import stamp

    monkeypatch.setattr(stamp, "_number_font_file", lambda: None)
    packets = make_packets(tmp_path, count=3)
    (box,) = collate_village(VILLAGE, packets, tmp_path / "o", PrintOptions(), fonts=fonts, date="2025-03-01")
    r = PdfReader(box.file)
    for (hid, first, last), (_, n1, n2) in zip(box.households, box.numbers, strict=True):
        assert [t for t, _, _ in number_positions(r.pages[first - 1])] == [str(n1)]
        assert [t for t, _, _ in number_positions(r.pages[last - 1])] == [str(n2)]


def test_numbers_share_the_table_face_of_the_box(built, fonts):
    """The digits are drawn with the box's merged table face: no font program of their own."""
    from pdffonts import font_report

    if isinstance(fonts, FakeFonts):
        pytest.skip("needs the real FontSet")
    report = font_report(built.boxes[0].file)
    assert all(f["subtype"] == "Type0" for f in report), report
    assert len({f["name"].split("+")[1] for f in report}) == len(report)  # one copy per face
    r = PdfReader(built.boxes[0].file)
    _hid, first, _last = built.boxes[0].households[0]
    page = r.pages[first - 1]
    number_font = page["/Resources"]["/Font"].raw_get("/ABArchNo")
    assert number_font.idnum in {f["object"] for f in report}  # the union copy of a face


def test_number_font_comes_from_the_cache_the_second_time(tmp_path, fonts, monkeypatch):
    """Without a face of ours, the Latin digits PDF is made once per user (parsing the Latin
    TTF costs ~0.09 s a process)."""
    from archive_builder.render import stamp

    if stamp._number_font_file() is None:
        pytest.skip("no Latin TTF for the numbers")
    monkeypatch.setattr(stamp, "_shared_face", lambda fonts: None)
    monkeypatch.setenv("ARCHIVE_BUILDER_CACHE_DIR", str(tmp_path / "cache"))
    made = []
    real = stamp._make_digits_pdf
    monkeypatch.setattr(stamp, "_make_digits_pdf", lambda *a: made.append(1) or real(*a))
    first = stamp._digits_pdf(fonts)
    second = stamp._digits_pdf(fonts)
    assert made == [1] and first == second
    assert PdfReader(io.BytesIO(second[0])).pages[0].extract_text().strip() == "0123456789"
    assert set(second[1]) == set("0123456789") and all(w > 0 for w in second[1].values())


def test_box_files_readable_by_others(built):
    """Published files get ordinary permissions (mkstemp alone would leave them 0600)."""
    import os

    umask = os.umask(0)
    os.umask(umask)
    for b in built.boxes:
        assert b.file.stat().st_mode & 0o777 == 0o666 & ~umask


def test_shared_font_of_a_face_set_but_never_drawn(tmp_path, fonts):
    """A font whose ToUnicode lists no character (set on a page, nothing drawn) still gets a
    complete shared copy: the box is written and its fonts are embedded."""
    import pikepdf

    from archive_builder.render import fonts as fonts_mod

    if isinstance(fonts, FakeFonts):
        pytest.skip("needs the real FontSet")
    packets = make_packets(tmp_path, count=1, sizes=(3,))
    packet = pikepdf.open(packets[0].pdf)
    font = next(iter(packet.pages[0].obj.Resources.Font.values()))
    font.ToUnicode = pikepdf.Stream(packet, b"begincmap\nendcmap\n" + fontprogram._CMAP_MARKER.encode())
    box = pikepdf.new()
    shared = fonts_mod.SharedFonts(box, fonts)
    ref = shared.adopt_font(font)
    assert ref is not None
    shared.finish()
    assert ref.Subtype == "/Type0" and "/DescendantFonts" in ref
    box.pages.append(packet.pages[0])
    box.pages[0].obj.Resources.Font = pikepdf.Dictionary({"/F1": ref})
    out = io.BytesIO()
    box.save(out)
    from pdffonts import font_report

    path = tmp_path / "box.pdf"
    path.write_bytes(out.getvalue())
    assert [f["embedded"] for f in font_report(path)] == [True]


# --------------------------------------------------------------------------- missing item numbers


def test_missing_items_go_to_the_box_they_would_have_been_filed_in():
    from archive_builder.archive.collate import MissingItem, assign_missing

    boxes = [[fake_info(2, 3), fake_info(3, 3)], [fake_info(5, 3), fake_info(7, 3)]]
    missing = [MissingItem(n, f"h{n}", "户主") for n in (8, 1, 4, 6)]
    notes = assign_missing(boxes, missing)
    assert [[m.item_no for m in box] for box in notes] == [[1, 4], [6, 8]]
    assert assign_missing([], missing) == []


def test_remarks_name_missing_items_and_stay_inside_their_frame(tmp_path, fonts):
    from archive_builder.archive.collate import MissingItem

    packets = make_packets(tmp_path, count=3, sizes=(1, 2))
    first = [MissingItem(99, "4116211052010099", "张三")]
    boxes = collate_village(VILLAGE, packets, tmp_path / "one", PrintOptions(), fonts=fonts,
                            date="2025-03-01", missing=first)
    remarks = page_texts(PdfReader(boxes[0].file))[-1]
    assert "缺 1 件" in remarks
    assert re.search(r"缺第\s*0099\s*件.*张三.*4116211052010099", remarks, re.DOTALL), remarks

    many = [MissingItem(100 + n, f"41162110520101{n:02d}", "李四") for n in range(40)]
    boxes = collate_village(VILLAGE, packets, tmp_path / "many", PrintOptions(), fonts=fonts,
                            date="2025-03-01", missing=many)
    remarks = page_texts(PdfReader(boxes[0].file))[-1]
    listed = re.findall(r"缺第\s*(\d{4})\s*件", remarks)
    assert listed and listed[0] == "0100" and len(listed) < 40
    assert f"另缺 {40 - len(listed)} 件" in remarks, remarks


def test_fonts_reported_by_the_renderer_give_the_same_box(tmp_path, fonts):
    """Fonts the renderer reported (``PacketInfo.fonts``) are not read back from the packet,
    and the box is the same file as when every font is read back."""
    from dataclasses import replace

    packets = []
    for i, pages in enumerate((3, 5, 4)):
        hid = f"4116219{i:09d}"
        reported: list = []
        sections, seps = make_packet(tmp_path / f"{hid}.pdf", hid, pages, fonts=fonts, reported=reported)
        assert reported and all(name.startswith("/F") and chars for name, _m, chars in reported)
        packets.append(PacketInfo(hid, f"王{i}", 2, "脱贫户", i + 1, tmp_path / f"{hid}.pdf", pages,
                                  sections, seps, fonts=tuple(reported)))
    opts = PrintOptions(duplex=True, sheets_per_box=100)
    real = fontmerge.SharedFonts._adopt
    read: list[int] = []

    def collate(out: Path, infos: list) -> tuple[list[bytes], int]:
        read.clear()
        with pytest.MonkeyPatch.context() as mp:
            # a font whose ToUnicode map is read back
            mp.setattr(fontmerge.SharedFonts, "_adopt", lambda self, font: read.append(1) or real(self, font))
            boxes = collate_village(VILLAGE, infos, out, opts, fonts=fonts, date="2025-03-01")
        return [b.file.read_bytes() for b in boxes], len(read)

    given, read_given = collate(tmp_path / "given", packets)
    back, read_back = collate(tmp_path / "back", [replace(p, fonts=()) for p in packets])
    assert given == back
    # only the box's own pages (cover, contents, remarks) had their fonts read back
    assert read_back - read_given == sum(len(p.fonts) for p in packets) > 0


# --------------------------------------------------------------------------- packets as qpdf copies them


def test_collation_reports_a_wrong_page_count(tmp_path, fonts):
    from dataclasses import replace

    packets = make_packets(tmp_path, count=2)
    with pytest.raises(ValueError, match="档卡页数不符"):
        collate_village(VILLAGE, [replace(packets[0], pages=packets[0].pages + 1), packets[1]],
                        tmp_path / "out", PrintOptions(), fonts=fonts, date="2025-03-01")


def test_an_unreadable_packet_is_named_in_chinese(tmp_path, fonts):
    packets = make_packets(tmp_path, count=2)
    packets[1].pdf.write_bytes(b"not a PDF at all")
    with pytest.raises(ValueError, match=f"户 {packets[1].household_id} 的档卡文件.*无法读取"):
        collate_village(VILLAGE, packets, tmp_path / "out", PrintOptions(), fonts=fonts, date="2025-03-01")
    assert not list((tmp_path / "out").glob("*.pdf"))  # no half-written box


def test_a_packet_pypdf_rewrote_still_collates(tmp_path, fonts):
    from pypdf import PdfWriter

    packets = make_packets(tmp_path, count=2)
    out = io.BytesIO()
    PdfWriter(clone_from=PdfReader(packets[0].pdf)).write(out)
    packets[0].pdf.write_bytes(out.getvalue())
    boxes = collate_village(VILLAGE, packets, tmp_path / "out", PrintOptions(), fonts=fonts, date="2025-03-01")
    text = "".join(page_texts(PdfReader(boxes[0].file)))
    assert marker(packets[0].household_id, 1) in text and marker(packets[1].household_id, 1) in text


def test_inline_font_dictionaries_share_the_box_fonts(tmp_path, fonts):
    """Pages whose font dictionary is inline (not the renderer's shape) are pointed at the
    box's shared fonts page by page: the same text, one copy of each face."""
    import pikepdf
    from pdffonts import font_report

    if isinstance(fonts, FakeFonts):
        pytest.skip("needs the real FontSet")
    packets = make_packets(tmp_path, count=3)
    shared = collate_village(VILLAGE, packets, tmp_path / "shared", PrintOptions(), fonts=fonts, date="2025-03-01")
    with pikepdf.open(packets[1].pdf, allow_overwriting_input=True) as pdf:
        for page in pdf.pages:
            page.obj.Resources.Font = pikepdf.Dictionary(dict(page.obj.Resources.Font.items()))
        pdf.save(packets[1].pdf)
    inline = collate_village(VILLAGE, packets, tmp_path / "inline", PrintOptions(), fonts=fonts, date="2025-03-01")
    report = font_report(inline[0].file)
    faces = [f["name"].split("+")[1] for f in report]
    assert faces and len(faces) == len(set(faces))
    assert page_texts(PdfReader(inline[0].file)) == page_texts(PdfReader(shared[0].file))


def test_images_are_copied_byte_for_byte_and_once(tmp_path, fonts):
    """A packet's image shared by two pages is one object in the box, its bytes unchanged."""
    from PIL import Image
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfgen.canvas import Canvas

    img = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(img, "PNG")
    path = tmp_path / "4116210000000009.pdf"
    c = Canvas(str(path), invariant=1)
    reader = ImageReader(io.BytesIO(img.getvalue()))
    for _ in range(2):
        c.drawImage(reader, 72, 500, 40, 40)
        c.showPage()
    c.save()
    info = PacketInfo("4116210000000009", "王", 1, "脱贫户", 1, path, 2)
    (box,) = collate_village(VILLAGE, [info], tmp_path / "out", PrintOptions(duplex=False), fonts=fonts,
                             date="2025-03-01")
    r = PdfReader(box.file)
    _hid, first, last = box.households[0]
    refs = [next(iter(r.pages[i]["/Resources"]["/XObject"].values())) for i in (first - 1, last - 1)]
    assert refs[0].idnum == refs[1].idnum
    original = PdfReader(path).pages[0]["/Resources"]["/XObject"]
    assert refs[0].get_object()._data == next(iter(original.values())).get_object()._data


def test_box_fingerprint_follows_the_collation_format(monkeypatch):
    """Boxes written by an earlier collation (other bytes for the same input) are collated again."""
    from archive_builder.archive import collate

    args = ({"code": "1"}, 1, 1, PrintOptions(), "2025-03-01", [(fake_info(1, 3), "h")], [])
    before = collate.box_fingerprint(*args)
    monkeypatch.setattr(collate, "COLLATE_FORMAT", collate.COLLATE_FORMAT + 1)
    assert collate.box_fingerprint(*args) != before
