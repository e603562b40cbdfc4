"""The cover's QR code decodes back to its text, in the PDF and in Word output."""

from __future__ import annotations

import io

import pytest

from archive_builder import document as dm
from archive_builder.render.qr import qr_matrix, qr_runs

zxingcpp = pytest.importorskip("zxingcpp")
pdfium = pytest.importorskip("pypdfium2")

PAYLOAD = "AB1|4116211052010001|v12|3f9a0c1d2e4b5a69"


def decode(image) -> list[str]:
    return [r.text for r in zxingcpp.read_barcodes(image)]


def test_pdf_cover_qr_decodes(tmp_path, font_set):
    from archive_builder.render.pdf import write_pdf

    doc = dm.Document("t", (dm.Section("cover", "封面", (dm.Title("封面"), dm.QRCode(PAYLOAD, caption="核对")), layout="cover"),))
    out = tmp_path / "c.pdf"
    write_pdf(doc, out, fonts=font_set)
    page = pdfium.PdfDocument(str(out))[0]
    image = page.render(scale=200 / 72).to_pil()
    assert decode(image) == [PAYLOAD]


def test_word_qr_png_decodes():
    from PIL import Image

    from archive_builder.render.docx import qr_png

    assert decode(Image.open(io.BytesIO(qr_png(PAYLOAD)))) == [PAYLOAD]


def test_matrix_is_cached_and_square():
    matrix = qr_matrix(PAYLOAD)
    assert matrix is qr_matrix(PAYLOAD)
    assert all(len(row) == len(matrix) for row in matrix)


def test_runs_read_from_the_encoder_are_the_matrix_runs():
    """qr_runs (what the PDF draws) gives every horizontal run of dark modules of the matrix."""
    for text in (PAYLOAD, "AB1|4116210000000001|v12|0123456789abcdef", "x" * 120):
        matrix = qr_matrix(text)
        expected = []
        for r, row in enumerate(matrix):
            c = 0
            while c < len(row):
                if row[c]:
                    start = c
                    while c < len(row) and row[c]:
                        c += 1
                    expected.append((r, start, c - start))
                else:
                    c += 1
        assert qr_runs(text) == (len(matrix), expected)
