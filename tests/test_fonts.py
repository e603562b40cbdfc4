"""Tests of archive_builder.render.fonts (needs the Debian CJK fonts listed in the README)."""

from __future__ import annotations

import io
import os
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

pytest.importorskip("reportlab")
pytest.importorskip("pypdf")

from pdffonts import font_report
from pypdf import PdfReader
from reportlab import rl_config
from reportlab.pdfgen.canvas import Canvas

from archive_builder.render import facecache, fontmerge, fontprogram, sfntprogram, ttfont
from archive_builder.render import fonts as F
from archive_builder.render.fonts import (
    ROLES,
    FontNotFoundError,
    FontSet,
    merge_font_subsets,
)

UMING = Path("/usr/share/fonts/truetype/arphic/uming.ttc")
ZENHEI = Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc")
UKAI = Path("/usr/share/fonts/truetype/arphic/ukai.ttc")
BABEL = Path("/usr/share/fonts/truetype/babelstone/BabelStoneHan.ttf")
DEJAVU = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")

needs_debian_fonts = pytest.mark.skipif(
    not (UMING.exists() and ZENHEI.exists() and UKAI.exists()),
    reason="fonts-arphic-uming / fonts-wqy-zenhei / fonts-arphic-ukai not installed",
)
needs_rare = pytest.mark.skipif(not BABEL.exists(), reason="fonts-babelstone-han not installed")

RARE = "\U00020BB7"  # 𠮷


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("ARCHIVE_BUILDER_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))
    monkeypatch.delenv("ARCHIVE_BUILDER_FONT_DIRS", raising=False)
    rl_config.useA85 = 0


@pytest.fixture(scope="module")
def fs() -> FontSet:
    if not UMING.exists():
        pytest.skip("no Debian CJK fonts")
    s = FontSet.discover()
    s.register()
    return s


def render(fs: FontSet, lines: list[str], roles=("body",), pages: int = 1) -> bytes:
    buf = io.BytesIO()
    c = Canvas(buf)  # no initialFontName: register() must have replaced Helvetica
    for _ in range(pages):
        y = 800.0
        for k, line in enumerate(lines):
            role = roles[k % len(roles)]
            x = 50.0
            for name, s in fs.runs(line, role):
                c.setFont(name, 12)
                c.drawString(x, y, s)
                x += fs.string_width(s, role, 12)
            y -= 18
        c.showPage()
    c.save()
    return buf.getvalue()


def fonts_of(pdf: bytes, tmp_path: Path, name: str = "x.pdf") -> list[dict]:
    p = tmp_path / name
    p.write_bytes(pdf)
    return font_report(p)


def tounicode_codes(pdf: bytes) -> dict[str, dict[str, int]]:
    """PostScript name (without tag) -> {char: code}."""
    out: dict[str, dict[str, int]] = {}
    r = PdfReader(io.BytesIO(pdf))
    for ref in r.pages[0]["/Resources"]["/Font"].values():
        font = ref.get_object()
        name = str(font["/BaseFont"]).split("+", 1)[1]
        data = font["/ToUnicode"].get_object().get_data()
        m = {}
        for code, uni in re.findall(rb"<([0-9A-F]{4})> <([0-9A-F]+)>", data):
            m[bytes.fromhex(uni.decode()).decode("utf-16-be")] = int(code, 16)
        out[name] = m
    return out


# ------------------------------------------------------------------------ discovery


@needs_debian_fonts
def test_discovery_finds_debian_faces(fs):
    assert set(fs.faces) == set(ROLES)
    assert fs.faces["body"].path == UMING and fs.faces["body"].subfont_index == 0
    assert fs.faces["heading"].path == ZENHEI
    assert fs.faces["kai"].path == UKAI
    assert fs.faces["body"].rl_name == "AB-uming-0"
    assert "CN" in fs.faces["body"].family
    if BABEL.exists():
        assert fs.fallbacks[0].path == BABEL


def _fake_cff(path: Path) -> None:
    # sfnt header 'OTTO' with a CFF table entry: what Noto Sans CJK .otf looks like
    path.write_bytes(b"OTTO" + struct.pack(">HHHH", 1, 16, 0, 0)
                     + b"CFF " + struct.pack(">III", 0, 28, 4) + b"\0" * 4)


@needs_debian_fonts
def test_cff_font_is_skipped_with_reason(tmp_path, monkeypatch):
    fake = tmp_path / "NotoSansCJKsc-Regular.otf"
    _fake_cff(fake)
    monkeypatch.setenv("ARCHIVE_BUILDER_FONT_DIRS", str(tmp_path))
    s = FontSet.discover()
    reasons = dict(s.skipped)
    assert str(fake) in reasons
    assert "CFF" in reasons[str(fake)]
    assert all(f.path != fake for f in s.faces.values())


def test_configured_cff_font_raises_chinese_message(tmp_path):
    fake = tmp_path / "fonts" / "songti.otf"
    fake.parent.mkdir()
    _fake_cff(fake)
    with pytest.raises(FontNotFoundError) as ei:
        FontSet.discover({"body": "fonts/songti.otf"}, base_dir=tmp_path)
    msg = ei.value.message
    assert "archive.toml" in msg and "body" in msg and "CFF" in msg


def test_configured_missing_file_raises(tmp_path):
    with pytest.raises(FontNotFoundError) as ei:
        FontSet.discover({"title": "fonts/nope.ttf"}, base_dir=tmp_path)
    assert "文件不存在" in ei.value.message
    assert ei.value.hint


def test_no_cjk_font_at_all_raises_with_install_hint(tmp_path, monkeypatch):
    monkeypatch.setattr(F, "_standard_dirs", lambda: [tmp_path])
    with pytest.raises(FontNotFoundError) as ei:
        FontSet.discover()
    text = str(ei.value)
    assert "apt-get install fonts-arphic-uming" in text
    assert "[fonts]" in text


@needs_debian_fonts
def test_configured_font_with_index(tmp_path):
    s = FontSet.discover({"kai": f"{UKAI}#2", "fallback": [str(UMING) + "#0"]})
    assert s.faces["kai"].subfont_index == 2
    assert s.faces["kai"].rl_name == "AB-ukai-2"
    assert s.fallbacks[0].path == UMING


# ------------------------------------------------------------------------ runs / widths


@needs_debian_fonts
@needs_rare
def test_runs_split_rare_character_into_fallback(fs):
    runs = fs.runs(f"张{RARE}三 堃喆", "body")
    assert runs[0] == ("AB-uming-0", "张")
    assert runs[1] == ("AB-babelstonehan-0", RARE)
    assert runs[2] == ("AB-uming-0", "三 堃喆")
    assert "".join(s for _n, s in runs) == f"张{RARE}三 堃喆"
    assert fs.runs("户主姓名", "heading") == [("AB-wqy-zenhei-0", "户主姓名")]
    assert fs.runs("", "body") == []


@needs_debian_fonts
def test_missing_chars(fs):
    nothing = "\U0010FFFD"  # private use plane 16: no font has it
    unassigned = "\u0378"
    text = f"张三 {nothing}\n{unassigned}{RARE}\t"
    assert fs.missing_chars(text, "body") == [nothing, unassigned]
    # chars nobody has stay in the role face's run
    assert fs.runs(nothing, "body") == [("AB-uming-0", nothing)]


@needs_debian_fonts
def test_string_width_matches_reportlab(fs):
    from reportlab.pdfbase.pdfmetrics import stringWidth

    s = "户主：张三 ABC 123"
    assert fs.string_width(s, "body", 16) == pytest.approx(stringWidth(s, "AB-uming-0", 16))
    mixed = f"张{RARE}三"
    total = sum(stringWidth(t, n, 12) for n, t in fs.runs(mixed, "body"))
    assert fs.string_width(mixed, "body", 12) == pytest.approx(total)
    a, d = fs.ascent_descent("body")
    assert 0.5 < a < 1.2 and -0.5 < d < 0


@needs_debian_fonts
def test_fingerprint_changes_with_font_file(tmp_path):
    font = tmp_path / "myfont.ttf"
    shutil.copy(DEJAVU if DEJAVU.exists() else UMING, font)
    s1 = FontSet.discover({"table": str(font)})
    fp1 = s1.fingerprint()
    assert fp1 == FontSet.discover({"table": str(font)}).fingerprint()
    with open(font, "ab") as fh:
        fh.write(b"\0\0\0\0")
    os.utime(font, ns=(1, 1))
    assert FontSet.discover({"table": str(font)}).fingerprint() != fp1
    assert len(fp1) == 64


# ------------------------------------------------------------------------ PDF output


@needs_debian_fonts
@needs_rare
def test_pdf_embeds_all_fonts_and_extracts_text(fs, tmp_path):
    text = f"户主：王堃 妻：李喆 子：张{RARE}（ab 12）"
    pdf = render(fs, [text], roles=("body", "heading", "kai"))
    report = fonts_of(pdf, tmp_path)
    assert report, "no fonts"
    for f in report:
        assert f["embedded"], f
        assert "Helvetica" not in f["name"]
    r = PdfReader(io.BytesIO(pdf))
    for ref in r.pages[0]["/Resources"]["/Font"].values():
        font = ref.get_object()
        desc = font["/DescendantFonts"][0].get_object()["/FontDescriptor"].get_object()
        assert "/FontFile2" in desc
        assert re.fullmatch(r"[A-Z]{6}\+.+", str(font["/BaseFont"])[1:])
    extracted = r.pages[0].extract_text()
    for ch in ("堃", "喆", RARE, "王", "（ab 12）"):
        assert ch in extracted
    assert b"Helvetica" not in pdf


@needs_debian_fonts
def test_codes_are_consistent_across_documents(fs):
    a = tounicode_codes(render(fs, ["张三李四王五 户主 abc"]))
    b = tounicode_codes(render(fs, ["王五赵六 户主 xyz 李"]))
    ua, ub = a["UMingCN-0"], b["UMingCN-0"]
    shared = set(ua) & set(ub)
    assert {"王", "五", "户", "主", "李"} <= shared
    assert all(ua[c] == ub[c] for c in shared)
    assert len(set(ua.values())) == len(ua)  # one code per character


@needs_debian_fonts
def test_each_document_embeds_only_used_glyphs(fs, tmp_path):
    small = fonts_of(render(fs, ["户主"]), tmp_path, "s.pdf")
    big = fonts_of(render(fs, ["".join(chr(c) for c in range(0x4E00, 0x4E00 + 400))]), tmp_path, "b.pdf")
    assert small[0]["bytes"] < 5000
    assert big[0]["bytes"] > 4 * small[0]["bytes"]


@needs_debian_fonts
@needs_rare
def test_merge_twenty_packets_shares_fonts(fs, tmp_path):
    import random

    rnd = random.Random(5)
    pool = [chr(c) for c in range(0x4E00, 0x4E00 + 200)]  # packets share most characters
    texts = []
    pdfs = []
    for i in range(20):
        t = f"户主{i}号 堃喆{RARE} " + "".join(rnd.choice(pool) for _k in range(60))
        texts.append(t)
        pdfs.append(render(fs, [t[:40], t[40:]], roles=("body", "heading")))
    sum_bytes = sum(sum(f["bytes"] for f in fonts_of(p, tmp_path)) for p in pdfs)
    # a stock-reportlab packet (AAAAAA+ tags) collated with ours must end with unique tags too
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    if "STOCK-zenhei" not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics._fonts["STOCK-zenhei"] = TTFont("STOCK-zenhei", str(ZENHEI))
    stock = []
    for t in ("第一份外来文件", "第二份外来文件"):
        buf = io.BytesIO()
        c = Canvas(buf, initialFontName="STOCK-zenhei")
        c.setFont("STOCK-zenhei", 12)
        c.drawString(50, 800, t)
        c.save()
        stock.append(buf.getvalue())

    import pikepdf

    w = pikepdf.new()
    sources = [pikepdf.open(io.BytesIO(p)) for p in pdfs + stock]
    for source in sources:
        w.pages.extend(source.pages)
    stats = merge_font_subsets(w)
    out = tmp_path / "merged.pdf"
    w.save(out)

    assert stats["conflicts"] == 0
    assert stats["fonts_before"] > stats["fonts_after"]
    report = font_report(out)
    ours = [f for f in report if f["subtype"] == "Type0"]
    faces = [f["name"].split("+", 1)[1] for f in ours]
    assert sorted(faces) == sorted(set(faces))  # one font per face
    assert len({f["program"] for f in ours}) == len(ours)
    tags = {}
    for f in report:
        tag = f["name"][:6]
        assert tags.setdefault(tag, f["program"]) == f["program"], "duplicate subset tag"
    ours_bytes = sum(f["bytes"] for f in ours)
    assert ours_bytes < sum_bytes / 4
    r = PdfReader(out)
    assert len(r.pages) == 22
    for i, page in enumerate(r.pages[:20]):
        got = page.extract_text().replace("\n", "")
        assert texts[i].replace(" ", "") in got.replace(" ", "")
    assert "第二份外来文件" in r.pages[21].extract_text()

    if shutil.which("pdffonts"):
        res = subprocess.run(["pdffonts", str(out)], capture_output=True, text=True, check=True)
        rows = res.stdout.splitlines()[2:]
        assert rows
        for row in rows:
            assert " yes yes " in row or row.split()[-5] == "yes", row
            assert "Helvetica" not in row


@needs_debian_fonts
def test_pdffonts_reports_embedded(fs, tmp_path):
    if not shutil.which("pdffonts"):
        pytest.skip("poppler-utils not installed")
    p = tmp_path / "p.pdf"
    p.write_bytes(render(fs, ["户主 王堃", "户主 王堃"], roles=("body", "kai")))
    res = subprocess.run(["pdffonts", str(p)], capture_output=True, text=True, check=True)
    rows = res.stdout.splitlines()[2:]
    assert len(rows) == 2
    for row in rows:
        cols = row.split()
        assert cols[-5:-2] == ["yes", "yes", "yes"], row  # emb sub uni


# ------------------------------------------------------------------------ merge from font files


def _merged(pdfs: list[bytes], fonts=None, strip_marker: tuple[int, ...] = ()) -> tuple[bytes, dict]:
    """Append ``pdfs`` to one writer, merge the fonts, return the written bytes and stats."""
    import pikepdf

    w = pikepdf.new()
    sources = []
    for i, p in enumerate(pdfs):
        r = pikepdf.open(io.BytesIO(p))
        sources.append(r)
        if i in strip_marker:  # a packet from before the marker existed
            for page in r.pages:
                for font in page.obj.Resources.Font.values():
                    if fontprogram._FACE_KEY in font:
                        del font[fontprogram._FACE_KEY]
        w.pages.extend(r.pages)
    stats = merge_font_subsets(w, fonts)
    buf = io.BytesIO()
    w.save(buf, deterministic_id=True)
    return buf.getvalue(), stats


def _packets(fs: FontSet, n: int = 6) -> list[bytes]:
    import random

    rnd = random.Random(11)
    pool = [chr(c) for c in range(0x4E00, 0x4E00 + 300)]
    out = []
    for i in range(n):
        t = f"户主{i}号 A·b（）" + "".join(rnd.choice(pool) for _k in range(50))
        out.append(render(fs, [t[:20], t[20:40], t[40:]], roles=("body", "heading", "kai")))
    return out


@needs_debian_fonts
def test_fonts_carry_deterministic_face_marker(fs):
    docs = [render(fs, ["户主 张三"]), render(fs, ["王五 李"])]
    fonts = [ref.get_object() for d in docs
             for ref in PdfReader(io.BytesIO(d)).pages[0]["/Resources"]["/Font"].values()]
    markers = {str(f[fontprogram._FACE_KEY]) for f in fonts}  # one per face, whatever the text
    assert len(markers) == 1 and re.fullmatch(r"/AB[0-9a-f]{32}", markers.pop())
    assert set(fontmerge._marker_sources(fs)) >= {str(f[fontprogram._FACE_KEY])[1:] for f in fonts}


@needs_debian_fonts
def test_merge_from_font_files_equals_merge_from_programs(fs, monkeypatch):
    """The marker route (glyphs from the font files, no program decompressed) writes the same
    bytes as reading every packet's program back; so does a box mixing both kinds."""
    pdfs = _packets(fs)
    from_programs, stats_p = _merged(pdfs, fonts=None)
    split = []
    monkeypatch.setattr(fontmerge, "_split_program", lambda prog: split.append(1) or _real_split(prog))
    from_files, stats_f = _merged(pdfs, fonts=fs)
    assert not split, "marked fonts must not be decompressed"
    assert from_files == from_programs
    assert stats_f == stats_p and stats_f["conflicts"] == 0 and stats_f["fonts_after"] == 3
    mixed, stats_m = _merged(pdfs, fonts=fs, strip_marker=(0, 3))
    assert len(split) == 2 * 3  # only the two unmarked packets' three fonts were read back
    assert stats_m["fonts_after"] == 3 and stats_m["conflicts"] == 0
    # same union program; only the outline-free object numbering may differ
    assert _programs(mixed) == _programs(from_programs)


_real_split = fontmerge._split_program


def _programs(pdf: bytes) -> list[bytes]:
    r = PdfReader(io.BytesIO(pdf))
    out = []
    for page in r.pages[:1]:
        for ref in page["/Resources"]["/Font"].values():
            cid = ref.get_object()["/DescendantFonts"][0].get_object()
            out.append(cid["/FontDescriptor"].get_object()["/FontFile2"].get_object().get_data())
    return sorted(out)


@needs_debian_fonts
def test_merge_from_font_files_text_and_tags(fs, tmp_path):
    pdfs = _packets(fs, 4)
    merged, _stats = _merged(pdfs, fonts=fs)
    out = tmp_path / "m.pdf"
    out.write_bytes(merged)
    ours = [f for f in font_report(out) if f["subtype"] == "Type0"]
    assert len(ours) == 3 and len({f["name"][:6] for f in ours}) == 3
    r = PdfReader(out)
    for page, p in zip(r.pages, pdfs):
        assert page.extract_text() == PdfReader(io.BytesIO(p)).pages[0].extract_text()


def _check_sfnt_checksums(program: bytes) -> None:
    f = F._Sfnt(program)
    for tag, (off, length) in f.tables.items():
        data = program[off : off + length]
        if tag == b"head":
            data = data[:8] + b"\0\0\0\0" + data[12:]
        assert sfntprogram._checksum(data) == struct.unpack(">I", program[12 + 16 * sorted(f.tables).index(tag) + 4 :][:4])[0], tag
    assert sfntprogram._checksum(program) == 0xB1B0AFBA


@needs_debian_fonts
@pytest.mark.parametrize("glyph_size", [40, 900])  # short and long loca formats
def test_built_program_checksums_are_valid(fs, glyph_size):
    import random

    rnd = random.Random(glyph_size)
    face = fs._font(fs.faces["body"]).face
    base = sfntprogram._base_tables_from_face(face)
    glyphs = {g: bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, glyph_size)))
              for g in rnd.sample(range(1, 4000), 400)}
    glyphs[7] = b""  # an empty glyph is left out
    metrics = {g: (rnd.randrange(2000), rnd.randrange(-300, 300)) for g in [0, *glyphs]}
    program = sfntprogram._build_program(base, glyphs, metrics)
    loc_fmt = struct.unpack(">h", F._Sfnt(program).table(b"head")[50:52])[0]
    assert loc_fmt == (1 if glyph_size == 900 else 0)
    _check_sfnt_checksums(program)
    _base, got_glyphs, got_metrics = fontmerge._split_program(program)
    assert got_glyphs == {g: d + b"\0" * (-len(d) & 3) for g, d in glyphs.items() if d}
    assert all(got_metrics[g] == metrics[g] for g in got_metrics)


@needs_debian_fonts
def test_embedded_program_is_spliced_from_glyph_blocks_and_inflates_exactly(fs, monkeypatch):
    """A packet's font programs are compressed from cached per-glyph blocks: each stream must
    inflate (as any reader inflates it) to exactly the program that was built, with valid
    checksums, whichever glyphs an earlier document already put in the cache."""
    import zlib

    built: list[bytes] = []
    real = ttfont._assemble_compact

    def spy(*args, **kwargs):
        result = real(*args, **kwargs)
        built.append(result[0])
        return result

    monkeypatch.setattr(ttfont, "_assemble_compact", spy)
    for i in range(3):  # overlapping characters: later documents reuse cached blocks
        built.clear()
        text = f"户主{i}号 A·b（）" + "".join(chr(0x4E00 + (i * 37 + k * 11) % 200) for k in range(40))
        doc = render(fs, [text[:20], text[20:40], text[40:]], roles=("body", "heading", "kai"))
        r = PdfReader(io.BytesIO(doc))
        embedded = []
        for ref in r.pages[0]["/Resources"]["/Font"].values():
            cid = ref.get_object()["/DescendantFonts"][0].get_object()
            stream = cid["/FontDescriptor"].get_object()["/FontFile2"].get_object()
            program = zlib.decompress(stream._data)  # the raw stream, not pypdf's tolerant decoder
            assert stream["/Length1"] == len(program)
            _check_sfnt_checksums(program)
            embedded.append(program)
        assert sorted(embedded) == sorted(built) and len(built) == 3


def test_glyph_blocks_do_not_depend_on_what_was_compressed_before():
    """Each glyph's deflate block is what a new compressor makes of it alone (the copied
    pristine compressor keeps no state between glyphs), so packets are reproducible whatever
    order a process met the glyphs in."""
    import random
    import zlib

    rnd = random.Random(7)
    glyphs = [bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 700))) for _ in range(60)]
    blocks = [sfntprogram._glyph_block(g, 0, 0, len(g)) for g in glyphs]
    for g, (padded, checksum, block) in zip(glyphs, blocks):
        fresh = zlib.compressobj(1, zlib.DEFLATED, -15)
        assert padded == g + b"\0" * (-len(g) & 3) and checksum == sfntprogram._checksum(padded)
        assert block == fresh.compress(padded) + fresh.flush(zlib.Z_SYNC_FLUSH)
    assert zlib.decompress(b"".join(b for _p, _c, b in reversed(blocks)) + b"\x03\x00", -15) == b"".join(
        p for p, _c, _b in reversed(blocks))


@needs_debian_fonts
def test_missing_chars_answer_is_stable(fs):
    text = "户主\U0010FFFD王" + RARE
    first = fs.missing_chars(text, "kai")
    assert first == fs.missing_chars(text, "kai") == ["\U0010FFFD"]


@needs_debian_fonts
def test_face_cache_gives_the_parsed_font(fs, tmp_path, monkeypatch):
    """A face loaded from the font cache is the face reportlab parses, attribute by attribute
    (the cache path re-creates what TTFont.__init__ sets)."""
    monkeypatch.setenv("ARCHIVE_BUILDER_CACHE_DIR", str(tmp_path))
    face = fs.faces["heading"]
    assert facecache._cached_face(face) is None
    parsed = F.GlobalCodeTTFont("AB-cache-test", face)  # parses and stores
    assert facecache._face_cache_file(face).is_file()
    hits = []
    real = ttfont._cached_face
    monkeypatch.setattr(ttfont, "_cached_face", lambda f: hits.append(1) or real(f))
    cached = F.GlobalCodeTTFont("AB-cache-test", face)
    assert hits and cached.face is not parsed.face
    va, vb = vars(parsed), vars(cached)
    assert va.keys() == vb.keys()
    for k in va:
        if k not in ("face", "state", "encoding"):
            assert va[k] == vb[k], k
    assert type(va["encoding"]) is type(vb["encoding"]) and type(va["state"]) is type(vb["state"])
    fa, fb = vars(parsed.face), vars(cached.face)
    assert fa.keys() == fb.keys()
    for k in fa:
        if k not in ("_pdfScale", "_ttf_data"):
            assert fa[k] == fb[k], k
    assert fa["_pdfScale"](1234) == fb["_pdfScale"](1234)
    # both keep the file mapped, not read into memory
    assert fa["_ttf_data"][:] == fb["_ttf_data"][:] == face.path.read_bytes()
    assert not isinstance(fb["_ttf_data"], bytes)
    text = "户主王堃 abc"
    assert cached.stringWidth(text, 12) == parsed.stringWidth(text, 12)
    assert [cached.cid_of(ord(c)) for c in text] == [parsed.cid_of(ord(c)) for c in text]
    # a damaged cache file is ignored
    facecache._face_cache_file(face).write_bytes(b"not a pickle")
    assert real(face) is None


def test_compact_tables_behave_like_the_dicts_they_replace():
    """charToGlyph/charWidths/hmetrics are kept as arrays (cheap to load); lookups are unchanged."""
    import pickle

    table = {0x20: 3, 0x5802: 12000, 0x20BB7: 40001}
    compact = facecache._CompactMap.of(table, "I")
    assert [compact.get(k) for k in table] == list(table.values())
    assert compact.get(0x41) is None and compact.get(0x41, 7) == 7
    assert 0x5802 in compact and 0x41 not in compact and "x" not in compact
    assert compact[0x20BB7] == 40001
    with pytest.raises(KeyError):
        compact[0x41]
    assert dict(compact.items()) == table and list(compact) == sorted(table) and len(compact) == 3
    assert pickle.loads(pickle.dumps(compact)) == compact
    widths = facecache._CompactMap.of({0x20: 500, 0x5802: 1000.5}, "d")
    assert widths.get(0x5802) == 1000.5 and widths.get(0x20) == 500
    metrics = facecache._Metrics.of([(1000, 0), (500, -12)])
    assert metrics[1] == (500, -12) and len(metrics) == 2
    assert pickle.loads(pickle.dumps(metrics)) == metrics


@needs_debian_fonts
def test_packet_programs_number_their_glyphs_compactly(fs):
    """A packet's program holds glyph 0, the glyphs drawn and their components, numbered
    from 0 (loca and hmtx used to run to the face's largest glyph id used), and every code
    still reaches its own outline and metrics through CIDToGIDMap, composites included:
    É, Ç and i are composite glyphs in AR PL UMing, whose component ids are renumbered."""
    text = "户主王堃ÉÇij一兀"
    pdf = render(fs, [text], roles=("body",))
    reader = PdfReader(io.BytesIO(pdf))
    fonts = [ref.get_object() for ref in reader.pages[0]["/Resources"]["/Font"].values()]
    sources = fontmerge._marker_sources(fs)
    composites = 0
    for font in fonts:
        source = sources[str(font[fontprogram._FACE_KEY])[1:]]
        cid = font["/DescendantFonts"][0].get_object()
        program = cid["/FontDescriptor"].get_object()["/FontFile2"].get_object().get_data()
        _check_sfnt_checksums(program)
        _base, glyphs, metrics = fontmerge._split_program(program)
        raw = cid["/CIDToGIDMap"].get_object().get_data()
        codes = [int(m.group(1), 16)
                 for m in fontprogram._BFCHAR_RE.finditer(font["/ToUnicode"].get_object().get_data())]
        c2g = {c: struct.unpack(">H", raw[2 * c : 2 * c + 2])[0] for c in codes}
        face_side = fontmerge._GlyphSource(source)
        packet_side = fontmerge._GlyphSource(glyphs=glyphs, metrics=metrics, c2g=c2g)
        for c in codes:
            tree = face_side.tree(face_side.gid(c))
            assert packet_side.tree(packet_side.gid(c)) == tree, chr(c)
            composites += bool(tree[2])
        # glyph 0, the glyphs drawn and, transitively, their components: nothing else
        used = {0, *(face_side.gid(c) for c in codes)}
        todo = list(used)
        while todo:
            for component in sfntprogram._components(face_side.outline(todo.pop())):
                if component not in used:
                    used.add(component)
                    todo.append(component)
        assert struct.unpack(">H", F._Sfnt(program).table(b"maxp")[4:6])[0] == len(used)
    assert composites >= 4
    assert reader.pages[0].extract_text().strip() == text


@needs_debian_fonts
def test_merged_union_renumbers_composite_glyphs(fs):
    """Packets drawing composite glyphs merge from their programs into a union whose glyphs
    are the face's, components included (the union numbers glyphs its own way)."""
    pdfs = [render(fs, [t], roles=("body",)) for t in ("王ÉÇ", "李ij", "张É一")]
    merged, stats = _merged(pdfs, fonts=None)
    assert stats["conflicts"] == 0 and stats["fonts_after"] == 1
    reader = PdfReader(io.BytesIO(merged))
    font = next(iter(reader.pages[0]["/Resources"]["/Font"].values())).get_object()
    cid = font["/DescendantFonts"][0].get_object()
    program = cid["/FontDescriptor"].get_object()["/FontFile2"].get_object().get_data()
    _check_sfnt_checksums(program)
    _base, glyphs, metrics = fontmerge._split_program(program)
    raw = cid["/CIDToGIDMap"].get_object().get_data()
    source = fs._font(fs.faces["body"])
    face_side = fontmerge._GlyphSource(source)
    union = fontmerge._GlyphSource(glyphs=glyphs, metrics=metrics, c2g={})
    for ch in "王ÉÇ李ij张一":
        c = source.cid_of(ord(ch))
        assert union.tree(struct.unpack(">H", raw[2 * c : 2 * c + 2])[0]) == face_side.tree(face_side.gid(c)), ch
    assert [p.extract_text().strip() for p in reader.pages] == ["王ÉÇ", "李ij", "张É一"]


@needs_debian_fonts
def test_a_face_keeps_its_last_subsets(fs):
    """``GlobalCodeTTFont.subset`` keeps the subsets of the last few character sets: the
    faces of headings draw the same characters in most packets. A kept subset is the one
    made from scratch, and two documents drawing the same characters write the same font."""
    from reportlab.pdfbase import pdfmetrics

    font = pdfmetrics.getFont(fs.faces["heading"].rl_name)
    font._subsets.clear()
    made = font.subset(set("家庭成员帮扶措施"), spliced=True)
    assert font.subset(frozenset("施措扶帮员成庭家"), spliced=True) is made
    fresh = font._subset(frozenset("家庭成员帮扶措施"), spliced=True)
    assert fresh == made
    assert font.subset(set("家庭成员帮扶措施"), spliced=False) is not made
    for i in range(ttfont._SUBSETS + 2):
        font.subset({chr(0x4E00 + i)}, spliced=True)
    assert len(font._subsets) == ttfont._SUBSETS
    assert font.subset(set("家庭成员帮扶措施"), spliced=True) is not made  # dropped, made again
    many = {chr(0x4E00 + i) for i in range(ttfont._SUBSET_CHARS + 1)}  # a packet's body text
    assert font.subset(many, spliced=True) == font.subset(many, spliced=True)
    assert frozenset(many) not in {chars for chars, _spliced in font._subsets}  # not kept

    def draw(text: str) -> bytes:
        buf = io.BytesIO()
        c = Canvas(buf, invariant=1)
        c.setFont(font.fontName, 12)
        c.drawString(72, 720, text)
        c.showPage()
        c.save()
        return buf.getvalue()

    assert draw("帮扶措施 2024") == draw("帮扶措施 2024")
