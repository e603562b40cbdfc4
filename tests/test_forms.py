"""Word forms: docxtpl with autoescape, font warnings, LibreOffice conversion and failures."""

from __future__ import annotations

import os
import stat
import sys
import time
from pathlib import Path

import docx as python_docx
import pytest

from archive_builder.document import Document, Paragraph, Section, Title
from archive_builder.errors import ExternalToolError, TemplateError
from archive_builder.render import forms
from archive_builder.render.docx import normalise_text, section_texts, write_docx
from archive_builder.render.forms import LibreOffice, find_soffice, render_form

ROOT = Path(__file__).resolve().parent.parent
FORM = ROOT / "templates" / "county-forms" / "forms" / "申请书.docx"
NASTY = "A<B & C>D"

CONTEXT = {
    "application_title": "申请书",
    "application_kind": "建档立卡贫困户",
    "village": {"name": "冯老<&>村"},
    "archive": {"township": "某镇"},
    "hh": {"household_id": "HH-1", "group": "一组",
           "causes": {"main": "因病", "others": ["缺劳力"]},
           "application": {"text": f"第一段 {NASTY}\n\n第二段", "date": "2024-03-01"}},
    "head": {"name": "张<三>", "id_number": "11010519491231002X", "phone": "13800001111"},
    "members": [
        {"name": "张<三>", "relation": "户主", "sex": "男", "birth_date": "1949-12-31",
         "id_number": "11010519491231002X"},
        {"name": "李&四", "relation": "配偶", "sex": "女", "birth_date": "1950-01-01",
         "id_number": "440524188001010014"},
    ],
}


def _text(path: Path) -> str:
    d = python_docx.Document(str(path))
    parts = [p.text for p in d.paragraphs]
    for t in d.tables:
        for r in t.rows:
            parts.extend(c.text for c in r.cells)
    return "\n".join(parts)


@pytest.fixture()
def rendered(tmp_path):
    out = tmp_path / "form.docx"
    warnings = render_form(FORM, CONTEXT, out)
    return out, warnings


def test_sample_form_exists_and_is_regenerable(tmp_path):
    assert FORM.is_file()
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import make_form
    finally:
        sys.path.pop(0)
    make_form.build(tmp_path / "x.docx")
    assert _text(tmp_path / "x.docx") == _text(FORM)


def test_autoescape_keeps_markup_characters(rendered):
    out, _ = rendered
    text = _text(out)
    for value in (NASTY, "冯老<&>村", "张<三>", "李&四"):
        assert value in text
    # the row loop produced one row per member, IDs masked
    assert "110105********002X" in text and "11010519491231002X" not in text
    assert "第二段" in text and "申请人承诺" in text  # nothing after "<" was lost


def test_missing_variables_and_fonts_are_warned(tmp_path, monkeypatch):
    monkeypatch.setattr(forms, "installed_font_families", lambda: frozenset({"宋体"}))
    warnings = render_form(FORM, {"members": []}, tmp_path / "empty.docx")
    assert any("没有数据" in w and "head" in w for w in warnings)
    font = [w for w in warnings if "字体" in w]
    assert font and "仿宋" in font[0] and "黑体" in font[0] and "宋体、" not in font[0]


def test_bad_tags_raise_template_error(tmp_path):
    d = python_docx.Document()
    d.add_paragraph("{% if %}")
    bad = tmp_path / "bad.docx"
    d.save(str(bad))
    with pytest.raises(TemplateError) as e:
        render_form(bad, {}, tmp_path / "o.docx")
    assert "bad.docx" in e.value.message
    (tmp_path / "old.doc").write_bytes(b"\xd0\xcf\x11\xe0 not a zip")
    with pytest.raises(TemplateError):
        render_form(tmp_path / "old.doc", {}, tmp_path / "o.docx")


def test_form_inserted_into_word_packet(tmp_path):
    doc = Document(title="t", sections=(
        Section("cover", "封面", (Title("封面"),), layout="cover", in_contents=False),
        Section("application", "申请书", (Title("内置申请书"),)),
        Section("notes", "户说明", (Paragraph("说明"),)),
    ))
    out = tmp_path / "p.docx"
    result = write_docx(doc, out, evidence=None, forms={"application": FORM}, context=CONTEXT)
    assert result.form_sections == ("application",)
    texts = section_texts(out)
    assert NASTY in texts["application"] and "李&四" in texts["application"]
    assert "内置申请书" not in texts["application"]
    assert normalise_text(texts["notes"]) == "说明"
    # the form keeps its own styles (prefixed) and does not restyle the packet
    styles = python_docx.Document(str(out)).styles
    names = {s.name for s in styles}
    assert any(n.startswith("F1 ") for n in names) and "Normal" in names


def _alive(pid: int) -> bool:
    """True if ``pid`` runs (a killed but not yet reaped zombie counts as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    if status.exists():
        return "\nState:\tZ" not in status.read_text()
    return True


needs_lo = pytest.mark.skipif(find_soffice() is None, reason="LibreOffice not installed")


@needs_lo
def test_libreoffice_converts_rendered_form(rendered, tmp_path):
    import pypdfium2 as pdfium

    out, _ = rendered
    with LibreOffice() as lo:
        pdf = lo.convert(out, tmp_path / "pdf")
    assert pdf.is_file() and pdf.name == "form.pdf"
    d = pdfium.PdfDocument(str(pdf))
    text = "".join(d[i].get_textpage().get_text_range() for i in range(len(d)))
    assert NASTY in text and "冯老<&>村" in text


def test_missing_libreoffice_message(monkeypatch):
    monkeypatch.delenv(forms.SOFFICE_ENV, raising=False)
    monkeypatch.setattr(forms.shutil, "which", lambda name: None)
    monkeypatch.setattr(forms, "CANDIDATE_PATHS", ())
    assert find_soffice() is None
    with pytest.raises(ExternalToolError) as e:
        LibreOffice()
    assert "libreoffice-writer-nogui" in e.value.message
    assert "未找到 LibreOffice" in e.value.message


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX shell script stands in for soffice")
def test_timeout_kills_process_group(tmp_path):
    pidfile = tmp_path / "child.pid"
    fake = tmp_path / "soffice"
    fake.write_text(f"#!/bin/sh\nsleep 60 &\necho $! > {pidfile}\nwait\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    src = tmp_path / "a.docx"
    src.write_bytes(b"x")
    lo = LibreOffice(str(fake), timeout=1.0)
    with pytest.raises(ExternalToolError) as e:
        lo.convert(src, tmp_path / "out")
    assert "超过 1 秒" in e.value.message
    child = int(pidfile.read_text())
    time.sleep(0.2)
    assert not _alive(child)  # the grandchild was killed with the group
    lo.close()
    assert not lo.profile_dir.exists()


def test_failed_conversion_is_reported(tmp_path):
    fake = tmp_path / "soffice"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    src = tmp_path / "a.docx"
    src.write_bytes(b"x")
    if sys.platform == "win32":
        pytest.skip("POSIX shell script")
    with LibreOffice(str(fake)) as lo, pytest.raises(ExternalToolError) as e:
        lo.convert(src, tmp_path / "out")
    assert "未能把 a.docx 转换为 PDF" in e.value.message


def test_filled_form_keeps_only_the_styles_it_uses(tmp_path, monkeypatch):
    """A filled form drops the template's unused styles, latent styles, stylesWithEffects and
    thumbnail (LibreOffice reads them all for each form it converts); what it uses stays."""
    import re
    import zipfile

    out = tmp_path / "filled.docx"
    render_form(FORM, CONTEXT, out)
    with zipfile.ZipFile(FORM) as z:
        before = z.read("word/styles.xml")
    with zipfile.ZipFile(out) as z:
        names = set(z.namelist())
        styles = z.read("word/styles.xml")
        document = z.read("word/document.xml") + z.read("word/numbering.xml")
    assert b"latentStyles" in before and b"latentStyles" not in styles
    assert "word/stylesWithEffects.xml" not in names and "docProps/thumbnail.jpeg" not in names
    assert len(styles) < len(before) / 4
    ids = set(re.findall(rb'w:styleId="([^"]+)"', styles))
    assert set(re.findall(rb'w:(?:pStyle|rStyle|tblStyle) w:val="([^"]+)"', document)) <= ids
    based = set(re.findall(rb'w:(?:basedOn|link|next) w:val="([^"]+)"', styles))
    assert based <= ids
    assert "张<三>" in _text(out)
    monkeypatch.setattr(forms, "slim", lambda document: None)
    render_form(FORM, CONTEXT, tmp_path / "whole.docx")
    assert _text(out) == _text(tmp_path / "whole.docx")
