"""Mutated evidence files (PDFs and images made from valid ones) never fail a packet.

Each example flips, cuts, repeats or inserts bytes of a valid file; the evidence cache must
return assets (a placeholder at worst) and the PDF writer must place them. The number of
examples is fixed, and every example runs under pytest-timeout, so the test is bounded.
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, TiffImagePlugin

from archive_builder.document import Document, Evidence, Section
from archive_builder.render.evidence import EvidenceCache, ImageAsset, PdfPageAsset, Placeholder
from archive_builder.render.pdf import write_pdf

pytestmark = pytest.mark.timeout(300)


def _pdf() -> bytes:
    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=(300, 400))
    c.setFillColorRGB(0.2, 0.4, 0.6)
    c.rect(20, 20, 200, 300, fill=1)
    c.showPage()
    c.rect(40, 40, 100, 100, fill=0)
    c.showPage()
    c.save()
    return buf.getvalue()


def _image(fmt: str) -> bytes:
    img = Image.new("RGB", (64, 48), (250, 250, 250))
    img.paste((200, 0, 0), (0, 0, 16, 16))
    buf = io.BytesIO()
    if fmt == "TIFF":
        info = TiffImagePlugin.ImageFileDirectory_v2()
        info[0x0112] = 6
        img.convert("1").save(buf, "TIFF", compression="group4", tiffinfo=info)
    elif fmt == "JPEG":
        exif = Image.Exif()
        exif[0x0112] = 3
        img.save(buf, "JPEG", quality=80, exif=exif.tobytes())
    else:
        img.save(buf, fmt)
    return buf.getvalue()


SEEDS = {".pdf": _pdf(), ".jpg": _image("JPEG"), ".png": _image("PNG"), ".tif": _image("TIFF"),
         ".gif": _image("GIF")}

MUTATION = st.one_of(
    st.tuples(st.just("flip"), st.floats(0, 1), st.integers(1, 255)),
    st.tuples(st.just("cut"), st.floats(0, 1), st.just(0)),
    st.tuples(st.just("repeat"), st.floats(0, 1), st.integers(1, 64)),
    st.tuples(st.just("insert"), st.floats(0, 1), st.integers(0, 255)),
    st.tuples(st.just("number"), st.floats(0, 1), st.sampled_from([0, -1, 99999999, 2**31])),
)


def mutate(data: bytes, mutations: list[tuple[str, float, int]]) -> bytes:
    out = bytearray(data)
    for kind, where, value in mutations:
        if not out:
            break
        at = min(len(out) - 1, int(where * len(out)))
        if kind == "flip":
            out[at] ^= value
        elif kind == "cut":
            del out[max(1, at):]
        elif kind == "repeat":
            out[at:at] = out[at:at + value] * 3
        elif kind == "insert":
            out.insert(at, value)
        else:  # replace a run of digits (a length, an offset, a size) by an odd number
            start = at
            while start < len(out) and not chr(out[start]).isdigit():
                start += 1
            end = start
            while end < len(out) and chr(out[end]).isdigit():
                end += 1
            if start < len(out):
                out[start:end] = str(value).encode()
    return bytes(out)


@settings(max_examples=60, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(suffix=st.sampled_from(sorted(SEEDS)), mutations=st.lists(MUTATION, min_size=1, max_size=4))
def test_mutated_evidence_is_placed_or_a_placeholder(font_set, suffix: str, mutations: list) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        source = root / f"evidence{suffix}"
        source.write_bytes(mutate(SEEDS[suffix], mutations))
        cache = EvidenceCache(root / "cache")
        assets = cache.assets(source, display_path=source.name)
        assert assets and all(isinstance(a, ImageAsset | PdfPageAsset | Placeholder) for a in assets)
        doc = Document(title="fuzz", sections=(
            Section("e", "佐证材料", (Evidence(str(source), source.name, title="佐证"),)),
        ))
        result = write_pdf(doc, io.BytesIO(), fonts=font_set, evidence=cache)
        assert result.pages >= 1
