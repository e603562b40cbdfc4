"""Word (.docx) writer: renders the same :class:`~archive_builder.document.Document` as the
PDF writer, so a village secretary gets an editable copy of a household packet.

Design notes
------------
* python-docx is used for the package (parts, relationships, pictures); the body is built
  as raw WordprocessingML because python-docx has no API for East Asian fonts
  (``w:rFonts/@w:eastAsia``), repeated header rows, grid spans or fields.
* Every run carries ``w:rFonts`` with ``w:ascii``, ``w:hAnsi``, ``w:eastAsia`` and ``w:cs``
  set to the role's font, and the styles (docDefaults, Normal, Title, Heading 1–3, the
  table style) carry the same, with the default template's theme-font attributes removed:
  a theme attribute (``w:eastAsiaTheme``) wins over an explicit name in Word, which is why
  python-docx documents show East Asian text in MS Mincho (python-docx #1601).
* Each model section is one Word section (section break "next page"), so each starts on a
  new page and cover/separator pages can have a footer without a page number.  A separator
  sheet (隔页纸) is its own Word section, vertically centred.  Page numbers are a PAGE field
  in the footer, formatted after ``PageSetup.page_number_format`` ("— {n} —"); odd pages
  right, even pages left (GB/T 9704 §7.5, duplex).
* "prose" sections get the GB/T 9704 document grid (22 lines × 28 characters).
* Warm: python-docx's default template is read and restyled once per process (page setup
  and fonts); each packet starts from a copy of that prepared package. A packet without
  Word forms shares its unchanged parts (styles, settings, theme …), whose zip members are
  deflated once; run properties, table rows and cells are copies of prototypes built once
  per font set.
* Each section starts with a hidden bookmark ``_ab<NNN>_<key>``; :func:`section_texts` uses
  them to read the text of each section back (tests compare it with the PDF's text).
* Output is deterministic: core properties are taken from ``Document.date`` and the zip is
  written with fixed member timestamps, so the same document gives the same bytes
  (with the same python-docx, Pillow, pypdfium2 and zlib).
* Word cannot know where pages break, so the contents page shows the PDF's page numbers
  only when ``page_numbers`` is given (section key → printed number).

Modules: this one is the public API (:func:`write_docx`, :func:`section_texts`);
:mod:`.docxwriter` writes the body (mirroring ``render/pdf.py``; tables in :mod:`.docxtables`,
pictures in :mod:`.docxpictures`);
:mod:`.docxpackage` the prepared package, styles, zip and pictures; :mod:`.wordml` the XML
helpers and constants they share; :mod:`.forms` fills and inserts Word forms.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..archive.outdir import atomic_file
from ..document import Document
from .docxpackage import _BASES, _base_package, _doc_datetime, _package_bytes, _set_core, pdf_page_png, qr_png
from .docxwriter import _Writer
from .wordml import (
    BOOKMARK_PREFIX,
    DEFAULT_FONT_NAMES,
    SEPARATOR_BOOKMARK_PREFIX,
    W_NS,
    clean_text,
    w,
)

__all__ = ["DEFAULT_FONT_NAMES", "DocxResult", "W_NS", "_BASES", "clean_text", "normalise_text", "pdf_page_png",
           "qr_png", "resolve_fonts", "section_texts", "write_docx"]


@dataclass(frozen=True)
class DocxResult:
    """What :func:`write_docx` returns besides the file itself."""

    path: Path
    #: keys of the sections written, in order
    sections: tuple[str, ...]
    #: Chinese warnings (placeholder evidence, form parts that could not be carried over)
    warnings: tuple[str, ...] = ()
    #: keys of sections taken from Word forms
    form_sections: tuple[str, ...] = ()
    #: time spent, seconds (for the build's statistics)
    seconds: float = 0.0



# ---------------------------------------------------------------------- public API


def resolve_fonts(font_names: Mapping[str, str] | None) -> dict[str, str]:
    fonts = dict(DEFAULT_FONT_NAMES)
    for role, name in (font_names or {}).items():
        if name:
            fonts[role] = name
    return fonts


def write_docx(
    doc: Document,
    out: Path,
    *,
    evidence: Any,
    font_names: Mapping[str, str] | None = None,
    forms: Mapping[str, Path] | None = None,
    context: Mapping[str, Any] | None = None,
    page_numbers: Mapping[str, str] | None = None,
) -> DocxResult:
    """Write ``doc`` as an editable Word file to ``out`` (atomically) and return a summary.

    ``evidence``: an :class:`~archive_builder.render.evidence.EvidenceCache` (only used when
    the document has Evidence blocks).  ``font_names``: role → font family name as Word
    knows it (title/body/heading/kai/table); missing roles use :data:`DEFAULT_FONT_NAMES`.
    ``forms``: section key → Word form; the form replaces that section's blocks.  When
    ``context`` is given the forms are docxtpl templates rendered with it (autoescaped);
    otherwise they are already-rendered ``.docx`` files.  ``page_numbers``: section key →
    printed page number in the PDF, shown on the contents page.
    """
    import time


    started = time.perf_counter()
    out = Path(out)
    fonts = resolve_fonts(font_names)
    package_doc, packed = _base_package(doc.page, fonts, share=not forms)
    body = package_doc.element.body
    writer = _Writer(doc=doc, package_doc=package_doc, fonts=fonts, evidence=evidence,
                     page_numbers=page_numbers or {}, body=body)
    _set_core(package_doc, doc)

    rendered_forms: dict[str, Path] = {}
    tmpdir = None
    try:
        if forms and context is not None:
            import tempfile

            from .forms import render_form

            tmpdir = tempfile.TemporaryDirectory(prefix="ab-forms-")
            for key, template in forms.items():
                target = Path(tmpdir.name) / f"{len(rendered_forms)}.docx"
                writer.warnings.extend(render_form(Path(template), context, target))
                rendered_forms[key] = target
        else:
            rendered_forms = {k: Path(v) for k, v in (forms or {}).items()}
        form_keys = writer.write_sections(rendered_forms)
    finally:
        if tmpdir is not None:
            tmpdir.cleanup()

    data = _package_bytes(package_doc, _doc_datetime(doc.date), packed)
    # like the packet's PDF: the rename survives a killed process; no fsync (the build
    # checks its outputs and can remake them)
    with atomic_file(out, durable=False) as handle:
        handle.write(data)
    return DocxResult(path=out, sections=tuple(s.key for s in doc.sections),
                      warnings=tuple(writer.warnings), form_sections=tuple(form_keys),
                      seconds=time.perf_counter() - started)


# ---------------------------------------------------------------------- reading back


def _element_text(el: Any) -> str:
    parts: list[str] = []
    for node in el.iter(w("t"), w("tab"), w("br"), w("cr"), w("p"), w("instrText"),
                        w("fldChar")):
        if node.tag == w("t"):
            parts.append(node.text or "")
        elif node.tag == w("tab") and node.getparent().tag == w("r"):
            parts.append("\t")
        elif node.tag in (w("br"), w("cr")) or node.tag == w("p") and parts:
            parts.append("\n")
    return "".join(parts)


def section_texts(path: Path) -> dict[str, str]:
    """Read a docx written by :func:`write_docx`; return section key → its text.

    The text is that of paragraphs and table cells in reading order (tables row by row),
    without the separator sheet printed before a section.  Keys come from the section
    bookmarks (non-ASCII letters of a key are shown as ``_``).
    """
    import docx as python_docx

    body = python_docx.Document(str(path)).element.body
    texts: dict[str, list[str]] = {}
    current: list[str] | None = None
    for child in body:
        marks = [child] if child.tag == w("bookmarkStart") else []
        for m in marks:
            name = m.get(w("name"), "")
            if name.startswith(SEPARATOR_BOOKMARK_PREFIX):
                current = None
            elif name.startswith(BOOKMARK_PREFIX) and len(name) > 7 and name[3:6].isdigit():
                current = texts.setdefault(name[7:], [])
        if current is None or child.tag not in (w("p"), w("tbl")):
            continue
        current.append(_element_text(child))
    return {k: "\n".join(v) for k, v in texts.items()}


def normalise_text(text: str) -> str:
    """Text without any whitespace (for comparing the Word and PDF texts of a section)."""
    return re.sub(r"\s+", "", text.replace("\u3000", " "))
