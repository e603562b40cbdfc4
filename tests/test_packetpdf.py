"""packetpdf: our own packets are copied into a box as bytes, anything else goes to pypdf."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from collation import collate_village
from pypdf import PdfReader, PdfWriter

from archive_builder.archive import collate, packetpdf
from archive_builder.archive.collate import PacketInfo, PrintOptions
from archive_builder.archive.packetpdf import NotOurs, RawStream, _parse, _Ref, append_packet
from archive_builder.render.fontmerge import SharedFonts
from tests.test_collate import (
    VILLAGE,
    _two_page_pdf,
    get_fonts,
    make_packet,
    make_packets,
    page_texts,
)


@pytest.fixture(scope="module")
def fonts():
    return get_fonts()


def test_parse_our_dictionaries():
    page = _parse(
        b"\n<<\n/Contents 37 0 R /MediaBox [ 0 0 595.2756 841.8898 ] /Parent 36 0 R /Resources <<\n"
        b"/Font 1 0 R /ProcSet [ /PDF /Text ]\n>> /Rotate 0 /Trans <<\n\n>> \n  /Type /Page\n>>\n"
    )
    assert page == {
        "Contents": _Ref(37),
        "MediaBox": [b"0", b"0", b"595.2756", b"841.8898"],
        "Parent": _Ref(36),
        "Resources": {"Font": _Ref(1), "ProcSet": ["PDF", "Text"]},
        "Rotate": b"0",
        "Trans": {},
        "Type": "Page",
    }
    assert _parse(b"[/A/B 1 0 R[]<<>>/]") == ["A", "B", _Ref(1), [], {}, ""]


@pytest.mark.parametrize("text", [
    b"<< /Title (a string) >>",  # strings never occur in ours
    b"<< /A <414243> >>",
    b"<< /A 1 >> >>",
    b"<< /A [ 1 >>",
    b"<< /A >>",
    b"<< /A 1 /A 2 >>",
    b"<< 1 2 >>",
    b"[ 1 R ]",
    b"[ 1.5 0 R ]",
    b"<< /A true >>",
    b"<< /A#20B 1 >>",  # escaped names are pypdf's to decode
    b"",
    b"1 2",
])
def test_parse_refuses_anything_else(text):
    with pytest.raises(NotOurs):
        _parse(text)


def _box(tmp_path: Path, packets: list[PacketInfo], fonts, *, fast: bool, monkeypatch) -> list[bytes]:
    calls: list[bool] = []
    real = append_packet  # the module's own, even when an earlier call patched it

    def spy(*args, **kwargs):
        result = real(*args, **kwargs) if fast else None
        calls.append(result is not None)
        return result

    monkeypatch.setattr(packetpdf, "append_packet", spy)
    boxes = collate_village(VILLAGE, packets, tmp_path, PrintOptions(duplex=True, sheets_per_box=14),
                            fonts=fonts, date="2025-03-01")
    assert calls == [fast] * len(packets)
    return [b.file.read_bytes() for b in boxes]


def _images(reader: PdfReader) -> list[bytes]:
    out = []
    for page in reader.pages:
        xobjects = page["/Resources"].get("/XObject", {})
        out.extend(x.get_object().get_data() for x in xobjects.values())
    return out


def test_fast_route_gives_the_box_pypdf_gives(tmp_path, fonts, monkeypatch):
    """Our packets take packetpdf's route; the box reads back as pypdf's route writes it:
    the same pages, text, archive numbers, outline and fonts."""
    packets = make_packets(tmp_path, count=6)
    fast = _box(tmp_path / "fast", packets, fonts, fast=True, monkeypatch=monkeypatch)
    slow = _box(tmp_path / "slow", packets, fonts, fast=False, monkeypatch=monkeypatch)
    assert len(fast) == len(slow) > 0
    for a, b in zip(fast, slow):
        ra, rb = PdfReader(io.BytesIO(a)), PdfReader(io.BytesIO(b))
        assert page_texts(ra) == page_texts(rb)
        assert [p.mediabox for p in ra.pages] == [p.mediabox for p in rb.pages]
        assert [o.title for o in ra.outline if not isinstance(o, list)] == [
            o.title for o in rb.outline if not isinstance(o, list)
        ]
        assert ra.page_labels == rb.page_labels
        fonts_a = {f.get_object()["/BaseFont"] for p in ra.pages for f in p.get("/Resources", {}).get("/Font", {}).values()}
        fonts_b = {f.get_object()["/BaseFont"] for p in rb.pages for f in p.get("/Resources", {}).get("/Font", {}).values()}
        assert fonts_a == fonts_b
    # and twice the same bytes
    assert _box(tmp_path / "again", packets, fonts, fast=True, monkeypatch=monkeypatch) == fast


def _image_pdf(font: str) -> bytes:
    """Two pages in ``font`` sharing one image XObject."""
    from PIL import Image
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfgen.canvas import Canvas

    img = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(img, "PNG")
    reader = ImageReader(io.BytesIO(img.getvalue()))
    buf = io.BytesIO()
    c = Canvas(buf, invariant=1, initialFontName=font)
    for n in (1, 2):
        c.setFont(font, 12)
        c.drawString(72, 700, f"第 {n} 页")
        c.drawImage(reader, 72, 500, 40, 40)
        c.showPage()
    c.save()
    return buf.getvalue()


def test_a_font_not_of_ours_takes_pypdfs_route():
    class AnyFace:
        def knows(self, marker):
            return True

    writer = PdfWriter()
    before = len(writer._objects)
    # reportlab's Helvetica carries no /ABFace marker
    assert append_packet(writer, _image_pdf("Helvetica"), AnyFace()) is None
    assert len(writer._objects) == before


def test_images_are_copied_byte_for_byte_and_once(fonts):
    """Two pages sharing one image keep sharing one copy of its bytes."""
    data = _image_pdf(fonts.faces["body"].rl_name)
    writer = PdfWriter()
    shared = SharedFonts(writer, fonts)
    assert append_packet(writer, data, shared, pages=2) == pytest.approx((595.2756, 841.8898))
    shared.finish()
    assert sum(isinstance(o, RawStream) for o in writer._objects) == 3  # two content streams, one image
    out = io.BytesIO()
    writer.write(out)
    back, original = PdfReader(io.BytesIO(out.getvalue())), PdfReader(io.BytesIO(data))
    assert [t.strip() for t in page_texts(back)] == ["第 1 页", "第 2 页"]
    refs = [next(iter(p["/Resources"]["/XObject"].values())) for p in back.pages]
    assert refs[0].idnum == refs[1].idnum
    image = next(iter(original.pages[0]["/Resources"]["/XObject"].values())).get_object()
    assert refs[0].get_object().get_data() == image.get_data()
    assert refs[0].get_object()._data == image._data


def test_page_count_mismatch_raises_before_anything_is_added(tmp_path, fonts):
    packet = tmp_path / "p.pdf"
    make_packet(packet, "4116210000000001", 3, fonts=fonts)
    writer = PdfWriter()
    shared = SharedFonts(writer, fonts)
    before = len(writer._objects)
    with pytest.raises(packetpdf.PageCountMismatch):
        append_packet(writer, packet.read_bytes(), shared, pages=4)
    assert len(writer._objects) == before


def test_collation_reports_a_wrong_page_count(tmp_path, fonts):
    from dataclasses import replace

    packets = make_packets(tmp_path, count=2)
    with pytest.raises(ValueError, match="档卡页数不符"):
        collate_village(VILLAGE, [replace(packets[0], pages=packets[0].pages + 1), packets[1]],
                        tmp_path / "out", PrintOptions(), fonts=fonts, date="2025-03-01")


@pytest.mark.parametrize("damage", ["annotation", "pypdf", "truncated", "length", "xref"])
def test_anything_unusual_takes_pypdfs_route(tmp_path, fonts, damage):
    packet = tmp_path / "p.pdf"
    make_packet(packet, "4116210000000001", 2, fonts=fonts)
    data = packet.read_bytes()
    if damage == "annotation":
        data = data.replace(b"/Rotate 0 /Trans", b"/Annots [ ] /Rotate 0 /Trans", 1)
    elif damage == "pypdf":  # rewritten by pypdf (as when an evidence PDF is merged in)
        out = io.BytesIO()
        PdfWriter(clone_from=PdfReader(io.BytesIO(data))).write(out)
        data = out.getvalue()
    elif damage == "truncated":
        data = data[: len(data) // 2]
    elif damage == "length":
        data = data.replace(b"/Length ", b"/Length 1", 1)
    else:
        data = data.replace(b"startxref\n", b"startxref\n1", 1)
    writer = PdfWriter()
    shared = SharedFonts(writer, fonts)
    before = len(writer._objects)
    assert append_packet(writer, data, shared, pages=2) is None
    assert len(writer._objects) == before


def test_a_packet_pypdf_rewrote_still_collates(tmp_path, fonts):
    packets = make_packets(tmp_path, count=2)
    out = io.BytesIO()
    PdfWriter(clone_from=PdfReader(packets[0].pdf)).write(out)
    packets[0].pdf.write_bytes(out.getvalue())
    boxes = collate_village(VILLAGE, packets, tmp_path / "out", PrintOptions(), fonts=fonts, date="2025-03-01")
    text = "".join(page_texts(PdfReader(boxes[0].file)))
    assert "HOUSEHOLD-4116210000000001-PAGE-1" in text and "HOUSEHOLD-4116210000000002-PAGE-1" in text


def test_collate_uses_the_fast_route_only_with_shared_fonts(monkeypatch):
    """Without SharedFonts (no fonts helper) collation parses with pypdf as before."""
    seen = []
    monkeypatch.setattr(packetpdf, "append_packet", lambda *a, **k: seen.append(1))
    data = _two_page_pdf(False)
    info = PacketInfo("4116210000000001", "王", 1, "脱贫户", 1, Path("p.pdf"), 2)
    writer = PdfWriter()
    assert collate._append_packet(writer, data, None, info) == pytest.approx((595.2756, 841.8898))
    assert not seen and len(writer.pages) == 2


def test_damaged_packets_never_raise(tmp_path, fonts):
    """A byte changed anywhere: the packet is copied (stream data is not looked into) or left
    to pypdf (None), with nothing added to the writer; never an exception."""
    import random

    packet = tmp_path / "p.pdf"
    make_packet(packet, "4116210000000001", 2, fonts=fonts)
    data = packet.read_bytes()
    rng = random.Random(3)
    outcomes = set()
    for _ in range(300):
        damaged = bytearray(data)
        for _ in range(rng.randint(1, 3)):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        writer = PdfWriter()
        shared = SharedFonts(writer, fonts)
        before = len(writer._objects)
        result = append_packet(writer, bytes(damaged), shared)
        outcomes.add(result is None)
        if result is None:
            assert len(writer._objects) == before
    assert outcomes == {True, False}
