"""Every use of pdfium holds the process's pdfium lock from opening a document to closing it.

pdfium is not thread-safe, and the web app renders page images, comparisons, single packets
and Word copies on the threads of one process: two of them in pdfium at once crashed the
server process (a segfault, not an exception). These tests open documents through every path
that uses pdfium and check, at each opening, that another thread could not take the lock.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pypdfium2
import pytest
from reportlab.lib.pagesizes import A4
from reportlab.pdfgen import canvas

from archive_builder.render.pdfiumlock import PDFIUM


def _pdf(path: Path, text: str, font: str = "Helvetica") -> Path:
    c = canvas.Canvas(str(path), pagesize=A4, invariant=1, initialFontName=font)
    c.drawString(72, 720, text)
    c.showPage()
    c.save()
    return path


@pytest.fixture
def openings(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Patch pdfium's document class: record, for each opening, whether the lock was held."""
    seen: list[bool] = []
    real = pypdfium2.PdfDocument

    def held_elsewhere() -> bool:
        got: list[bool] = []

        def probe() -> None:
            got.append(PDFIUM.acquire(blocking=False))
            if got[0]:
                PDFIUM.release()

        thread = threading.Thread(target=probe)
        thread.start()
        thread.join()
        return not got[0]

    def opening(*args: Any, **kwargs: Any) -> Any:
        seen.append(held_elsewhere())
        return real(*args, **kwargs)

    monkeypatch.setattr(pypdfium2, "PdfDocument", opening)
    return seen


def test_the_probe_sees_a_free_lock(openings: list[bool], tmp_path: Path) -> None:
    document = pypdfium2.PdfDocument(str(_pdf(tmp_path / "a.pdf", "free")))
    document.close()
    assert openings == [False]


def test_comparisons_and_page_images_hold_the_lock(openings: list[bool], tmp_path: Path) -> None:
    from archive_builder.versions.pdfdiff import compare_pdf_files
    from archive_builder.web.core import page_png

    a, b = _pdf(tmp_path / "a.pdf", "old text"), _pdf(tmp_path / "b.pdf", "new text")
    compare_pdf_files(a, b)
    assert page_png(a, 1).startswith(b"\x89PNG")
    assert openings and all(openings)


def test_evidence_rasterising_and_word_pictures_hold_the_lock(openings: list[bool], tmp_path: Path) -> None:
    from archive_builder.render.docxpackage import pdf_page_png
    from archive_builder.render.evidence import EvidenceCache

    statement = _pdf(tmp_path / "statement.pdf", "Account statement")  # unembedded: rasterised
    assets = EvidenceCache(tmp_path / "cache").assets(statement, display_path="statement.pdf")
    assert assets
    pdf_page_png(statement, 0)
    assert len(openings) == 2 and all(openings)
