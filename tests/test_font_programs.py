"""Every TrueType program we embed is a font another tool can read: fontTools parses each
table of each subset program of a packet and of a box, and every glyph a code maps to."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pytest
from pypdf import PdfReader

from archive_builder import api

fontTools = pytest.importorskip("fontTools.ttLib")
HID = "4116211052010001"


def _type0_fonts(pdf: Path) -> dict[int, object]:
    """Every Type0 font of the file, by object number."""
    reader = PdfReader(pdf)
    fonts: dict[int, object] = {}
    for page in reader.pages:
        resources = page.get("/Resources")
        for ref in (resources.get_object().get("/Font") or {}).values() if resources else ():
            font = ref.get_object()
            if font.get("/Subtype") == "/Type0":
                fonts[ref.idnum] = font
    return fonts


def _check_programs(pdf: Path) -> int:
    """Parse every embedded program with fontTools; return how many there were."""
    fonts = _type0_fonts(pdf)
    assert fonts, pdf
    for font in fonts.values():
        cid = font["/DescendantFonts"][0].get_object()  # type: ignore[index]
        program = cid["/FontDescriptor"].get_object()["/FontFile2"].get_object().get_data()
        tt = fontTools.TTFont(io.BytesIO(program), lazy=False)
        for tag in tt.keys():
            if tag != "GlyphOrder":
                tt[tag]  # decompiles the table: raises on a malformed one
        glyph_count = tt["maxp"].numGlyphs
        assert len(tt.getGlyphOrder()) == glyph_count
        assert len(tt["hmtx"].metrics) == glyph_count
        glyf = tt["glyf"]
        for name in tt.getGlyphOrder():
            glyph = glyf[name]
            glyph.expand(glyf)
            glyph.getCoordinates(glyf)  # composites: their components exist
        c2g = cid["/CIDToGIDMap"]
        if c2g != "/Identity":
            raw = c2g.get_object().get_data()
            gids = struct.unpack(f">{len(raw) // 2}H", raw)
            assert max(gids) < glyph_count
    return len(fonts)


def test_fonttools_reads_every_subset_program_of_a_packet_and_a_box(make_data_dir, tmp_path: Path) -> None:
    data = make_data_dir()
    packet = api.render_packet(data, HID, tmp_path / "packet.pdf")
    assert _check_programs(packet.result.pdf) >= 2
    out = tmp_path / "out"
    summary = api.build(data, out, jobs=1)
    assert not summary.failed
    boxes = sorted(out.rglob("*盒.pdf"))
    assert boxes
    for box in boxes:
        assert _check_programs(box) >= 2
