"""The Word pipeline end to end: editable .docx copies from a build, Word-form sections in both
outputs (docxtpl → .docx as is, LibreOffice → PDF pages in place), a build without LibreOffice,
and the content hash covering the form.

Section texts are compared per section: the .docx section (``section_texts``) against the
PDF text of the section's page range as the packet's RenderResult recorded it (the build's
state file).  Page furniture is removed first: page numbers, table header rows the PDF repeats
on continuation pages, and the 按手印 label drawn inside the fingerprint box.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import docx as python_docx
import pytest
from click.testing import CliRunner
from datadir import ARCHIVE_TOML, mutate, valid_household, write_data_dir
from lxml import etree
from pypdf import PdfReader

from archive_builder.cli import main
from archive_builder.document import (
    Contents,
    Document,
    ExternalPages,
    Paragraph,
    Section,
    Title,
)
from archive_builder.errors import ExitCode
from archive_builder.render import forms
from archive_builder.render.docx import W_NS, normalise_text, section_texts
from archive_builder.render.forms import LibreOffice, find_soffice

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "households_sample"
W = f"{{{W_NS}}}"
ADDRESS = "东街<3号>&西院"
REASON = "因病申请 A<B & C>D"
PACKAGE = "libreoffice-writer-nogui"
PAGE_NUMBER = re.compile(r"^\s*—\s*\d+\s*—\s*$", re.MULTILINE)
RARE_NAME = "张𠮷"  # CJK Extension B: a font the form names may lack it
CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")

needs_lo = pytest.mark.skipif(find_soffice() is None, reason="LibreOffice not installed")


# --------------------------------------------------------------------------- helpers


def forms_data(root: Path, *, set_name: str = "county-forms") -> Path:
    """Three households under the county-forms set: the first with ``<&>`` in its address and
    application, the third without an application (so no form section)."""
    households = [
        mutate(valid_household(f"411621105201{i:04d}", serial=i), application={"date": "2016-03-01", "signed": True})
        for i in (1, 2)
    ]
    households[0] = mutate(households[0], address=ADDRESS,
                           application={"date": "2016-03-01", "text": f"{REASON}\n\n第二段"})
    households[1] = mutate(households[1], members__2__name=RARE_NAME)
    households.append(valid_household("4116211052010003", serial=3))
    return write_data_dir(root, households,
                          archive=ARCHIVE_TOML.replace('set = "default"', f'set = "{set_name}"'))


def state(out: Path) -> dict[str, Any]:
    """The packets' RenderResults as the build recorded them (sections with page ranges)."""
    return json.loads((out / ".state" / "households.json").read_text(encoding="utf-8"))


def header_rows(docx: Path) -> set[str]:
    """Normalised texts of the table rows Word repeats on each page (w:tblHeader)."""
    with zipfile.ZipFile(docx) as z:
        root = etree.fromstring(z.read("word/document.xml"))
    rows = set()
    for tr in root.iter(W + "tr"):
        if tr.find(f"{W}trPr/{W}tblHeader") is not None:
            rows.add(normalise_text("".join(t.text or "" for t in tr.iter(W + "t"))))
    return {r for r in rows if r}


def pdf_section_texts(pdf: Path, sections: list[list[Any]], docx_texts: dict[str, str],
                      headers: set[str]) -> dict[str, str]:
    """Normalised PDF text per section, page furniture removed (see the module docstring)."""
    reader = PdfReader(pdf)
    result = {}
    for key, _title, first, last, _number in sections:
        pages = [normalise_text(PAGE_NUMBER.sub("", reader.pages[i].extract_text()))
                 for i in range(first, last + 1)]
        expected = normalise_text(docx_texts.get(key, ""))
        excess = {h: sum(p.count(h) for p in pages) - expected.count(h) for h in headers}
        for k in range(1, len(pages)):  # a header row repeated at the top of a continuation page
            for h in headers:
                if excess[h] > 0 and pages[k].startswith(h):
                    pages[k] = pages[k][len(h):]
                    excess[h] -= 1
        result[key] = "".join(pages).replace("按手印", "")
    return result


def assert_sections_match(out: Path, entry: dict[str, Any]) -> dict[str, str]:
    docx = out / entry["docx"]
    docx_texts = section_texts(docx)
    assert list(docx_texts) == [s[0] for s in entry["sections"]]
    pdf_texts = pdf_section_texts(out / entry["pdf"], entry["sections"], docx_texts, header_rows(docx))
    for key, text in docx_texts.items():
        assert pdf_texts[key] == normalise_text(text).replace("按手印", ""), key
    return docx_texts


def assert_east_asian_fonts(docx: Path) -> int:
    """Every run with Chinese text names its East Asian font; return how many were checked."""
    with zipfile.ZipFile(docx) as z:
        root = etree.fromstring(z.read("word/document.xml"))
    checked = 0
    for run in root.iter(W + "r"):
        text = "".join(t.text or "" for t in run.iter(W + "t"))
        if not CJK.search(text):
            continue
        rfonts = run.find(f"{W}rPr/{W}rFonts")
        assert rfonts is not None and rfonts.get(W + "eastAsia"), text
        checked += 1
    return checked


# --------------------------------------------------------------------------- the sample with Word copies


@pytest.fixture(scope="module")
def sample_docx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One village of ``households_sample`` built with ``--format pdf,docx`` by a subprocess."""
    out = tmp_path_factory.mktemp("sample-docx") / "档案输出"
    proc = subprocess.run(
        [sys.executable, "-m", "archive_builder", "build", str(SAMPLE), "-o", str(out), "--format", "pdf,docx",
         "--village", "411621105201", "-j", "2"],
        cwd=REPO, capture_output=True, text=True, timeout=900, check=False,
    )
    assert proc.returncode == ExitCode.ok, proc.stderr
    return out


@pytest.mark.slow
def test_sample_word_copies_match_pdf(sample_docx):
    out = sample_docx
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    households = manifest["villages"][0]["households"]
    assert len(households) >= 10
    entries = state(out)
    for h in households:
        pdf, docx = out / h["packet"], out / h["docx"]
        assert docx == pdf.with_suffix(".docx") and docx.is_file()
        python_docx.Document(str(docx))  # python-docx reads it back
        assert_sections_match(out, entries[h["household_id"]])
        assert assert_east_asian_fonts(docx) > 20


@pytest.mark.slow
@needs_lo
def test_sample_word_copies_convert_with_libreoffice(sample_docx, tmp_path):
    docs = sorted((sample_docx).rglob("*.docx"))[:2]
    with LibreOffice(timeout=180) as lo:
        pdfs = lo.convert_many(docs, tmp_path)
    for docx, pdf in zip(docs, pdfs):
        reader = PdfReader(pdf)
        assert len(reader.pages) >= 5
        head = python_docx.Document(str(docx)).core_properties.title
        assert head and "档卡" in head
        text = "".join(p.extract_text() for p in reader.pages)
        assert "家庭成员" in text and "目" in text


# --------------------------------------------------------------------------- a Word-form section


@pytest.fixture(scope="module")
def forms_build(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    root = tmp_path_factory.mktemp("forms")
    data = forms_data(root / "data")
    out = root / "out"
    result = CliRunner().invoke(main, ["build", str(data), "-o", str(out), "--format", "pdf,docx", "-j", "2"],
                                catch_exceptions=False)
    return out, result


@pytest.mark.slow
@needs_lo
def test_form_section_in_both_outputs(forms_build):
    out, result = forms_build
    assert result.exit_code == ExitCode.ok, result.output
    entries = state(out)
    entry = entries["4116211052010001"]
    docx_texts = assert_sections_match(out, entry)  # the form's PDF pages say what the .docx says
    app = docx_texts["application"]
    # the form, not sections/application.xml: its own wording, its own table
    assert "申请人承诺" in app and "家庭住址" in app
    assert ADDRESS in app and REASON in app  # <, & and > intact in the .docx

    sections = {s[0]: s for s in entry["sections"]}
    _key, _title, first, last, number = sections["application"]
    reader = PdfReader(out / entry["pdf"])
    pdf_text = "".join(reader.pages[i].extract_text() for i in range(first, last + 1))
    for value in (ADDRESS, REASON):
        assert normalise_text(value) in normalise_text(pdf_text)  # intact in the PDF
    assert "申请人承诺" in pdf_text
    # in place: between 家庭成员 and 程序记录, numbers continuing across its pages
    order = [s[0] for s in entry["sections"]]
    assert order.index("members") + 1 == order.index("application") == order.index("procedure") - 1
    after = sections["procedure"]
    assert int(after[4]) == int(number) + (last - first + 1)
    # the contents page and the outline agree with where the pages landed
    contents = sections["contents"]
    listing = normalise_text(reader.pages[contents[2]].extract_text())
    span = number if last == first else f"{number}–{int(number) + last - first}"
    assert re.search(rf"申请书{span}\d+程序记录{after[4]}", listing), listing
    outline = {item.title: reader.get_destination_page_number(item) for item in reader.outline
               if not isinstance(item, list)}
    assert outline["申请书"] == first and outline["程序记录"] == after[2]
    # Chinese runs of the form carry East Asian fonts too
    assert_east_asian_fonts(out / entry["docx"])

    # a character LibreOffice could not print is a warning, never silently lost
    entry2 = entries["4116211052010002"]
    app2 = {s[0]: s for s in entry2["sections"]}["application"]
    reader2 = PdfReader(out / entry2["pdf"])
    printed = "𠮷" in "".join(reader2.pages[i].extract_text() for i in range(app2[2], app2[3] + 1))
    lost = [w for w in entry2["warnings"] if "丢失了字符「𠮷」" in w]
    assert printed != bool(lost), entry2["warnings"]
    assert RARE_NAME in section_texts(out / entry2["docx"])["application"]

    # a household without an application has no form section and no conversion
    assert "application" not in [s[0] for s in entries["4116211052010003"]["sections"]]
    assert_sections_match(out, entries["4116211052010003"])
    assert not any(PACKAGE in w for e in entries.values() for w in e["warnings"])


@pytest.mark.slow
@needs_lo
def test_form_build_is_incremental(forms_build):
    out, _ = forms_build
    before = {hid: e["content_hash"] for hid, e in state(out).items()}
    data = out.parent / "data"
    again = CliRunner().invoke(main, ["build", str(data), "-o", str(out), "--format", "pdf,docx", "-j", "1"],
                               catch_exceptions=False)
    assert again.exit_code == ExitCode.ok
    assert "渲染 0 户" in again.output
    assert {hid: e["content_hash"] for hid, e in state(out).items()} == before


# --------------------------------------------------------------------------- without LibreOffice


def test_missing_libreoffice_gives_placeholder_and_warning(tmp_path, monkeypatch):
    """Always runs: ARCHIVE_BUILDER_SOFFICE names nothing, PATH has no soffice, no usual place."""
    monkeypatch.setenv(forms.SOFFICE_ENV, str(tmp_path / "no-such-soffice"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    monkeypatch.setattr(forms, "CANDIDATE_PATHS", ())
    monkeypatch.setattr(forms, "_CONVERTERS", {})
    assert find_soffice() is None
    data = forms_data(tmp_path / "data")
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["build", str(data), "-o", str(out), "--format", "pdf,docx", "-j", "1"],
                                catch_exceptions=False)
    # the section failed, the households did not: every packet is there, with a warning
    assert result.exit_code == ExitCode.ok, result.output
    assert "渲染 3 户" in result.output
    entries = state(out)
    assert sorted(entries) == ["4116211052010001", "4116211052010002", "4116211052010003"]
    for hid in ("4116211052010001", "4116211052010002"):
        entry = entries[hid]
        warning = [w for w in entry["warnings"] if PACKAGE in w]
        assert len(warning) == 1 and "申请书" in warning[0] and "未找到 LibreOffice" in warning[0]
        sections = {s[0]: s for s in entry["sections"]}
        first = sections["application"][2]
        reader = PdfReader(out / entry["pdf"])
        page = reader.pages[first].extract_text()
        assert "未能转换为 PDF" in page and PACKAGE in page and "申请书.docx" in page
        # every other section is complete and agrees with the .docx
        docx_texts = section_texts(out / entry["docx"])
        others = [s for s in entry["sections"] if s[0] != "application"]
        pdf_texts = pdf_section_texts(out / entry["pdf"], others, docx_texts, header_rows(out / entry["docx"]))
        for s in others:
            assert pdf_texts[s[0]] == normalise_text(docx_texts[s[0]]).replace("按手印", ""), s[0]
        # the Word copy does not need LibreOffice: the filled form is there
        assert "申请人承诺" in docx_texts["application"]
    assert ADDRESS in section_texts(out / entries["4116211052010001"]["docx"])["application"]
    assert PACKAGE in result.output  # the clerk sees it in the build's warnings
    assert not any(PACKAGE in w for w in entries["4116211052010003"]["warnings"])


def test_packet_command_without_libreoffice(tmp_path, monkeypatch):
    monkeypatch.setattr(forms, "find_soffice", lambda: None)
    monkeypatch.setattr(forms, "_CONVERTERS", {})
    data = forms_data(tmp_path / "data")
    result = CliRunner().invoke(main, ["packet", str(data), "4116211052010001", "-o", str(tmp_path / "p"),
                                       "--format", "pdf,docx"], catch_exceptions=False)
    assert result.exit_code == ExitCode.ok, result.output
    assert PACKAGE in result.output
    assert len(list((tmp_path / "p").glob("*.pdf"))) == 1 and len(list((tmp_path / "p").glob("*.docx"))) == 1


# --------------------------------------------------------------------------- content hash


def _plan_hash(data: Path) -> str:
    from archive_builder.archive.packet import _template_set, plan_packet
    from archive_builder.records.loader import load_dataset

    _template_set.cache_clear()
    dataset = load_dataset(data)
    village = dataset.villages[0]
    household = min(village.households, key=lambda h: str(h.household_id))
    planned = plan_packet(dataset, village, household, out_pdf=data.parent / "x.pdf",
                          cache_dir=data.parent / "cache", build_date="2025-12-31")
    return planned.content_hash


def test_content_hash_covers_the_form(tmp_path, monkeypatch):
    from archive_builder.templates import builtin_root, resolve_set

    data = forms_data(tmp_path / "data", set_name="本县表单")
    shutil.copytree(builtin_root() / "county-forms", data / "templates" / "本县表单")
    monkeypatch.setattr(forms, "find_soffice", lambda: "/usr/bin/soffice")
    tset = resolve_set("本县表单", data_dir=data)
    form = tset.form_path(tset.form_sections[0])
    assert form == data / "templates" / "本县表单" / "forms" / "申请书.docx"
    fingerprint, content_hash = tset.fingerprint(), _plan_hash(data)

    document = python_docx.Document(str(form))
    document.add_paragraph("本县补充说明")
    document.save(str(form))
    assert tset.fingerprint() != fingerprint  # the form is inside the set folder
    assert _plan_hash(data) != content_hash

    # a packet made without LibreOffice (placeholder page) is rebuilt once it is installed
    changed = _plan_hash(data)
    monkeypatch.setattr(forms, "find_soffice", lambda: None)
    assert _plan_hash(data) != changed


def test_unknown_form_section_and_missing_form_are_template_errors(tmp_path):
    from archive_builder.errors import TemplateError
    from archive_builder.templates import resolve_set

    root = tmp_path / "data"
    (root / "templates" / "a").mkdir(parents=True)
    (root / "templates" / "a" / "templateset.toml").write_text(
        'extends = "default"\n[forms]\nno_such = "forms/x.docx"\n', encoding="utf-8")
    with pytest.raises(TemplateError) as e:
        resolve_set("a", data_dir=root)
    assert "no_such" in e.value.message
    (root / "templates" / "a" / "templateset.toml").write_text(
        'extends = "default"\n[forms]\napplication = "forms/缺少.docx"\n', encoding="utf-8")
    with pytest.raises(TemplateError) as e:
        resolve_set("a", data_dir=root)
    assert "forms/缺少.docx" in e.value.message


# --------------------------------------------------------------------------- external pages in the PDF


def _two_page_pdf(path: Path) -> Path:
    from reportlab.pdfgen.canvas import Canvas

    c = Canvas(str(path), pagesize=(595.28, 841.89), invariant=1)
    for n in (1, 2):
        c.setFont("Helvetica", 20)
        c.drawString(100, 700, f"FORM PAGE {n}")
        c.showPage()
    c.save()
    return path


def test_external_pages_keep_numbers_and_outline(tmp_path, font_set):
    from archive_builder.render.pdf import write_pdf

    source = _two_page_pdf(tmp_path / "form.pdf")
    doc = Document(title="t", sections=(
        Section("contents", "目录", (Title("目录"), Contents()), in_contents=False),
        Section("application", "申请书", (ExternalPages(str(source), 2),), separator="识别认定"),
        Section("notes", "户说明", (Paragraph("说明"),)),
    ))
    out = tmp_path / "p.pdf"
    result = write_pdf(doc, out, fonts=font_set)
    app = result.sections[1]
    assert (app.first, app.last, app.number) == (2, 3, "2")
    assert result.sections[2].number == "4" and result.pages == 5
    reader = PdfReader(out)
    assert "FORM PAGE 1" in reader.pages[2].extract_text() and "— 2 —" in reader.pages[2].extract_text()
    assert "FORM PAGE 2" in reader.pages[3].extract_text() and "— 3 —" in reader.pages[3].extract_text()
    assert normalise_text("1 申请书 2–3 2 户说明 4") in normalise_text(reader.pages[0].extract_text())
    outline = {item.title: reader.get_destination_page_number(item) for item in reader.outline}
    assert outline == {"目录": 0, "申请书": 2, "户说明": 4}
    assert reader.pages[2].mediabox.width == pytest.approx(595.28, abs=0.5)


# --------------------------------------------------------------------------- defaults for Word output


def test_word_copy_setting_makes_docx(tmp_path):
    from archive_builder.archive.build import BuildOptions, build
    from archive_builder.archive.packet import make_packet

    archive = ARCHIVE_TOML + "\n[output]\nword_copy = true\n"
    data = write_data_dir(tmp_path / "data", [valid_household()], archive=archive)
    summary = build(data, tmp_path / "out", BuildOptions(jobs=1))
    assert summary.rendered == 1 and not summary.failed
    assert len(list((tmp_path / "out").rglob("*.docx"))) == 1
    # the command line still decides when it says so
    summary = build(data, tmp_path / "out2", BuildOptions(jobs=1, formats=("pdf",)))
    assert not list((tmp_path / "out2").rglob("*.docx"))
    # the secretary's packet command follows the setting when given no format
    outcome = make_packet(data, "4116211052010001", tmp_path / "p", formats=None)
    assert outcome.result.docx is not None and outcome.result.docx.is_file()


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX shell script stands in for soffice")
def test_failing_libreoffice_fails_those_households_only(tmp_path, monkeypatch):
    """LibreOffice present but producing nothing: the households with a form are not produced
    (and so retried by the next build), the one without a form is."""
    fake = tmp_path / "bin" / "soffice"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    monkeypatch.setenv(forms.SOFFICE_ENV, str(fake))
    monkeypatch.setattr(forms, "_CONVERTERS", {})
    data = forms_data(tmp_path / "data")
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["build", str(data), "-o", str(out), "-j", "1"], catch_exceptions=False)
    assert result.exit_code == ExitCode.partial, result.output
    assert "渲染 1 户" in result.output and "未生成 2 户" in result.output
    assert "无法转换为 PDF" in result.output and "申请书" in result.output
    assert sorted(state(out)) == ["4116211052010003"]


def test_lost_characters(tmp_path):
    from reportlab.pdfgen.canvas import Canvas

    d = python_docx.Document()
    d.add_paragraph("AB C")
    d.add_paragraph("x𠮷y")
    d.save(str(tmp_path / "f.docx"))
    c = Canvas(str(tmp_path / "f.pdf"), invariant=1)
    c.drawString(100, 700, "ABC xy")
    c.showPage()
    c.save()
    assert forms.lost_characters(tmp_path / "f.docx", tmp_path / "f.pdf") == ["𠮷"]


@pytest.mark.slow
@needs_lo
def test_sample_village_with_the_county_form(tmp_path):
    """The sample build exercises the Word form: ``--templates county-forms`` on one village."""
    out = tmp_path / "档案输出"
    proc = subprocess.run(
        [sys.executable, "-m", "archive_builder", "build", str(SAMPLE), "-o", str(out), "--templates", "county-forms",
         "--village", "前进村", "-j", "2"],
        cwd=REPO, capture_output=True, text=True, timeout=900, check=False,
    )
    assert proc.returncode == ExitCode.ok, proc.stderr
    entries = state(out)
    with_form = 0
    for entry in entries.values():
        sections = {s[0]: s for s in entry["sections"]}
        if "application" not in sections:
            continue
        _, _, first, last, _ = sections["application"]
        reader = PdfReader(out / entry["pdf"])
        text = "".join(reader.pages[i].extract_text() for i in range(first, last + 1))
        assert "申请理由" in text  # a heading only the Word form has, not the built-in template
        with_form += 1
    assert with_form >= 5
