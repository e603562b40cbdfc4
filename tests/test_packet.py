"""Issue 3 "Done when", checked on real output: every sample household's packet PDF.

All 48 sample packets are rendered once per session through the ``packet`` command
(in-process, click's runner) into one folder, with one shared evidence cache; the checks
read the PDFs back (pdfium for page text, pypdf for exact extraction, font resources and
image XObjects, ``pdffonts`` when installed) and compare with the records, never with the
writer's own bookkeeping.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pypdfium2 as pdfium
import pytest
import yaml
from click.testing import CliRunner
from pdffonts import font_report
from PIL import Image
from pypdf import PdfReader, PdfWriter

from archive_builder.cli import main
from archive_builder.context import build_context, evidence_items
from archive_builder.records.loader import load_household

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "households_sample"
SAMPLE_IDS = sorted(p.name[:16] for p in SAMPLE.glob("*/*") if p.is_dir() and p.name[:16].isdigit())
FOOTER = re.compile(r"^— (\d+) —$")
CONTENTS_ROW = re.compile(r"^(\d+) (.+?) (\d+)(?:–(\d+))?$")
#: closing punctuation that must never start a line (issue 3 §5)
CLOSING = "，。、；：？！）》」』"

#: section title (as the contents page lists it) → heading its first page starts with
HEADINGS: dict[str, tuple[str, ...]] = {
    "户基本情况": ("户基本情况",),
    "家庭成员": ("家庭成员情况",),
    "申请书": ("申请书", "纳入防止返贫监测申请书"),
    "程序记录": ("识别（退出）程序记录",),
    "致贫原因": ("致贫（返贫）原因",),
    "帮扶责任人": ("帮扶责任人",),
    "帮扶计划": ("帮扶计划",),
    "帮扶措施": ("帮扶措施落实情况",),
    "走访记录": ("入户走访记录",),
    "收入台账": ("家庭收入台账",),
    "退出/风险消除": ("脱贫退出情况", "风险消除情况"),
    "帮扶成效": ("帮扶成效",),
    "户说明": ("户情况说明",),
    "佐证材料": (),  # starts with the first evidence file's caption (checked separately)
    "备考表": ("备\u3000考\u3000表",),
}
ORDER = list(HEADINGS)
GROUPS = {"识别认定", "致贫原因与帮扶", "收入", "退出/风险消除", "佐证材料"}


# --------------------------------------------------------------------------- helpers


def page_texts(pdf: Path) -> list[list[str]]:
    """Lines of text per page (pdfium: fast, one line per drawn text line)."""
    doc = pdfium.PdfDocument(str(pdf))
    try:
        out = []
        for page in doc:
            text = page.get_textpage().get_text_bounded()
            out.append([line.strip() for line in text.replace("\r\n", "\n").split("\n") if line.strip()])
        return out
    finally:
        doc.close()


def footer_number(lines: list[str]) -> int | None:
    m = FOOTER.match(lines[-1]) if lines else None
    return int(m.group(1)) if m else None


def outline(pdf: Path) -> list[tuple[str, int]]:
    reader = PdfReader(pdf)
    return [(item.title, reader.get_destination_page_number(item)) for item in reader.outline]


def record_of(data_dir: Path, household_id: str) -> tuple[dict[str, Any], Path, dict[str, Any]]:
    """Return (canonical record, household folder, archive settings) via the project's loader."""
    dataset = load_household(data_dir, household_id)
    (_village, household), = list(dataset.households())
    record = household.record.model_dump(mode="json", warnings=False)
    return record, Path(household.folder), dataset.config.archive.model_dump(mode="json")


def expected_sections(record: dict[str, Any], folder: Path, archive: dict[str, Any]) -> list[str]:
    """The sections the default template set prints for this record, in order (from the data)."""
    ctx = build_context(record, folder=folder, archive=archive, village={})
    present = {
        "户基本情况": True,
        "家庭成员": True,
        "申请书": ctx["application_wanted"],
        "程序记录": bool(record.get("procedure")),
        "致贫原因": True,
        "帮扶责任人": bool(record.get("helpers")),
        "帮扶计划": bool(record.get("plan")),
        "帮扶措施": bool(record.get("measures")),
        "走访记录": bool(record.get("visits")),
        "收入台账": True,  # printed as a 无 page when empty
        "退出/风险消除": ctx["exit_wanted"],
        "帮扶成效": bool(record.get("outcomes")),
        "户说明": bool(record.get("notes")),
        "佐证材料": bool(evidence_items(record, folder)),
        "备考表": True,
    }
    return [title for title in ORDER if present[title]]


def run_packet(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(main, ["packet", *map(str, args)], env=env, catch_exceptions=False)


def copy_household(tmp: Path, household_id: str, edit: Callable[[dict[str, Any]], None] | None = None,
                   files: dict[str, bytes] | None = None) -> Path:
    """A data directory holding one sample household (its village and archive.toml), edited."""
    source = next(p for p in SAMPLE.glob(f"*/{household_id}*") if p.is_dir())
    data = tmp / "data"
    village = data / source.parent.name
    village.mkdir(parents=True)
    shutil.copy(SAMPLE / "archive.toml", data / "archive.toml")
    shutil.copy(source.parent / "village.toml", village / "village.toml")
    target = village / source.name
    shutil.copytree(source, target)
    record_file = target / "household.yaml"
    if edit is not None:
        record = yaml.safe_load(record_file.read_text(encoding="utf-8"))
        edit(record)
        record_file.write_text(yaml.safe_dump(record, allow_unicode=True, sort_keys=False), encoding="utf-8")
    for name, blob in (files or {}).items():
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        (target / name).write_bytes(blob)
    return data


# --------------------------------------------------------------------------- fixtures


@dataclass
class Rendered:
    household_id: str
    exit_code: int
    stdout: str
    stderr: str
    pdf: Path


@pytest.fixture(scope="session")
def evidence_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One evidence cache for the whole session (normalised photos are reused)."""
    root = tmp_path_factory.mktemp("abcache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ARCHIVE_BUILDER_CACHE_DIR", str(root))
        yield root


@pytest.fixture(scope="session")
def sample_packets(evidence_cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Rendered]:
    out = tmp_path_factory.mktemp("packets")
    rendered = {}
    for hid in SAMPLE_IDS:
        result = run_packet(SAMPLE, hid, "-o", f"{out}/")
        line = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
        rendered[hid] = Rendered(hid, result.exit_code, result.stdout, result.stderr, Path(line.split("\t")[0]))
    return rendered


@pytest.fixture()
def cache_env(evidence_cache_dir: Path) -> Path:
    return evidence_cache_dir


# --------------------------------------------------------------------------- every household


def test_sample_has_48_households() -> None:
    assert len(SAMPLE_IDS) == 48


@pytest.mark.slow
@pytest.mark.parametrize("household_id", SAMPLE_IDS)
def test_packet_for_every_sample_household(sample_packets: dict[str, Rendered], household_id: str) -> None:
    r = sample_packets[household_id]
    assert r.exit_code == 0, r.stderr
    path_text, pages_text = r.stdout.strip().splitlines()[-1].split("\t")
    assert Path(path_text).is_file() and Path(path_text).name.startswith(household_id)
    texts = page_texts(r.pdf)
    assert pages_text == f"{len(texts)} 页"
    record, folder, archive = record_of(SAMPLE, household_id)
    marks = outline(r.pdf)

    # --- the contents page lists the expected sections, in order ----------------------------
    contents_page = dict(marks)["目录"]
    rows = [CONTENTS_ROW.match(line) for line in texts[contents_page]]
    entries = [(m.group(2), int(m.group(3)), int(m.group(4) or m.group(3))) for m in rows if m]
    assert [int(m.group(1)) for m in rows if m] == list(range(1, len(entries) + 1))
    titles = [title for title, _a, _b in entries]
    assert titles == expected_sections(record, folder, archive)
    assert [t for t, _ in marks] == ["封面", "目录", *titles]  # one bookmark per section

    # --- printed page numbers: cover and separator sheets none, the rest 1, 2, 3 … ----------
    numbers = [footer_number(lines) for lines in texts]
    assert numbers[0] is None  # cover
    separators = [i for i, lines in enumerate(texts) if lines in ([g] for g in GROUPS)]
    assert all(numbers[i] is None for i in separators)
    numbered = [n for n in numbers if n is not None]
    assert numbered == list(range(1, len(numbered) + 1))
    assert len(numbered) + len(separators) + 1 == len(texts)

    # --- each section starts where the contents page says, with its heading -----------------
    first_page = {title: page for title, page in marks}
    starts = []
    for index, (title, first, last) in enumerate(entries):
        page = first_page[title]
        starts.append(page)
        assert numbers[page] == first, f"{title}: contents says {first}, its first page shows {numbers[page]}"
        body = texts[page]
        if title == "佐证材料":
            caption = evidence_items(record, folder)[0]["title"]
            assert body[0].startswith(caption)
        else:
            assert body[0] in HEADINGS[title], (title, body[0])
        # the section's last page is the last numbered page before the next section starts
        end = first_page[entries[index + 1][0]] if index + 1 < len(entries) else len(texts)
        assert max(n for n in numbers[page:end] if n is not None) == last, title
        if index + 1 < len(entries):
            assert last + 1 == entries[index + 1][1]
    assert starts == sorted(starts)  # titles in order through the document

    # --- the household's data ----------------------------------------------------------------
    all_lines = [line for lines in texts for line in lines]
    assert any(household_id in line for line in all_lines)
    for member in record["members"]:
        assert any(member["name"] in line for line in all_lines), member["name"]
        # within one line: an ID number is never split (issue 3 §5)
        assert any(member["id_number"] in line for line in all_lines), member["id_number"]

    # --- every font embedded -------------------------------------------------------------------
    fonts = font_report(r.pdf)
    assert fonts and all(f["embedded"] for f in fonts), [f for f in fonts if not f["embedded"]]
    if shutil.which("pdffonts"):
        listing = subprocess.run(["pdffonts", str(r.pdf)], capture_output=True, text=True, check=True).stdout
        rows_ = listing.splitlines()[2:]
        assert rows_ and all(line.split()[-5] == "yes" for line in rows_), listing


# --------------------------------------------------------------------------- rare characters


RARE = "堃喆犇\U00020BB7"


@pytest.mark.slow
def test_rare_names_extract_exactly(sample_packets: dict[str, Rendered]) -> None:
    """Names with 堃, 喆, 犇 and 𠮷 (U+20BB7, CJK Ext. B, drawn by a fallback font) read back."""
    seen = set()
    for hid in SAMPLE_IDS:
        record, _folder, _archive = record_of(SAMPLE, hid)
        names = [m["name"] for m in record["members"] if any(c in m["name"] for c in RARE)]
        if not names:
            continue
        reader = PdfReader(sample_packets[hid].pdf)
        page = dict(outline(sample_packets[hid].pdf))["家庭成员"]
        text = reader.pages[page].extract_text() + reader.pages[0].extract_text()
        for name in names:
            assert name in text, (hid, name)
            seen.update(c for c in name if c in RARE)
    assert seen == set(RARE)  # the sample covers every one of them


# --------------------------------------------------------------------------- literal text


MARKUP = "<b>&amp;{{x}}"


def test_markup_like_values_print_literally(tmp_path: Path, cache_env: Path) -> None:
    def edit(record: dict[str, Any]) -> None:
        record["notes"] = f"说明：{MARKUP}，原样打印。"
        record["measures"][0]["content"] = MARKUP

    data = copy_household(tmp_path, "4116211052030010", edit)
    result = run_packet(data, "4116211052030010", "-o", tmp_path / "out.pdf")
    assert result.exit_code == 0, result.stderr
    reader = PdfReader(tmp_path / "out.pdf")
    marks = dict(outline(tmp_path / "out.pdf"))
    notes = reader.pages[marks["户说明"]].extract_text()
    measures = reader.pages[marks["帮扶措施"]].extract_text()
    assert f"说明：{MARKUP}，原样打印。" in notes
    assert MARKUP in measures  # a table cell
    assert "&amp;amp;" not in notes + measures and "<b>" in notes


# --------------------------------------------------------------------------- evidence


def image_xobjects(page: Any) -> list[tuple[int, int]]:
    xobjects = page["/Resources"].get("/XObject") or {}
    sizes = []
    for ref in xobjects.values():
        obj = ref.get_object()
        if obj.get("/Subtype") == "/Image":
            sizes.append((int(obj["/Width"]), int(obj["/Height"])))
    return sizes


def test_exif_orientation_6_photo_is_placed_upright(sample_packets: dict[str, Rendered]) -> None:
    hid = "4116211052010001"
    record, folder, _ = record_of(SAMPLE, hid)
    item = next(e for e in evidence_items(record, folder) if "EXIF旋转6" in e["title"])
    with Image.open(item["source"]) as img:
        assert img.getexif().get(0x0112) == 6
        stored_w, stored_h = img.size
    assert stored_w > stored_h  # stored landscape, shown portrait
    pdf = sample_packets[hid].pdf
    texts = page_texts(pdf)
    page = next(i for i, lines in enumerate(texts) if lines and lines[0].startswith(item["title"]))
    (width, height), = image_xobjects(PdfReader(pdf).pages[page])
    assert height > width
    assert width / height == pytest.approx(stored_h / stored_w, rel=0.01)


def test_evidence_pdf_with_unembedded_fonts_is_rasterised_with_a_warning(
    sample_packets: dict[str, Rendered],
) -> None:
    """The sample's bank statement carries unembedded Helvetica: placed as images, warned."""
    r = sample_packets["4116211052010001"]
    assert "银行流水_2024.pdf 第 1–3 页使用了未嵌入的字体，已转为图像以保证打印一致" in r.stderr
    texts = page_texts(r.pdf)
    reader = PdfReader(r.pdf)
    pages = [i for i, lines in enumerate(texts) if "银行流水" in (lines[0] if lines else "")]
    assert len(pages) == 3
    for i in pages:
        assert len(image_xobjects(reader.pages[i])) == 1


def broken_files() -> dict[str, bytes]:
    jpeg = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(jpeg, "JPEG")
    writer = PdfWriter()
    writer.add_blank_page(200, 300)
    writer.encrypt("secret")
    locked = io.BytesIO()
    writer.write(locked)
    big = io.BytesIO()
    Image.new("L", (400, 300), 255).save(big, "PNG")
    return {
        "佐证材料/损坏照片.jpg": jpeg.getvalue()[: len(jpeg.getvalue()) // 3],
        "佐证材料/加密.pdf": locked.getvalue(),
        "佐证材料/说明.docx": b"PK\x03\x04 not really a Word file",
        "佐证材料/超大图片.png": big.getvalue(),
    }


def test_each_kind_of_broken_evidence_gives_a_placeholder_page(
    tmp_path: Path, cache_env: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    names = ["佐证材料/不存在.jpg", *broken_files()]

    def edit(record: dict[str, Any]) -> None:
        record["evidence"] = [*record.get("evidence", []), *names]

    data = copy_household(tmp_path, "4116211052030010", edit, files=broken_files())
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 400 * 300 // 2 - 1)  # 超大图片.png is "over 2×"
    result = run_packet(data, "4116211052030010", "-o", tmp_path / "out.pdf")
    assert result.exit_code == 0, result.stderr
    texts = ["".join(lines) for lines in page_texts(tmp_path / "out.pdf")]
    for name in names:
        placeholder = [t for t in texts if f"材料缺失/无法读取：{name}" in t]
        assert len(placeholder) == 1, name
        if name == names[0]:  # missing: validation's warning (its line), not a second one from the render
            assert result.stderr.count(f"「{name}」不存在") == 1 and f"佐证材料 {name} 无法读取" not in result.stderr
        else:
            assert f"佐证材料 {name} 无法读取" in result.stderr, name
    reasons = {
        "不存在.jpg": ("文件不存在",),
        "损坏照片.jpg": ("图片数据不完整", "文件已损坏"),
        "加密.pdf": ("PDF 已加密",),
        "说明.docx": ("不支持的文件类型：.docx",),
        "超大图片.png": ("图片像素超过安全上限",),
    }
    for name, accepted in reasons.items():
        page = next(t for t in texts if f"材料缺失/无法读取：佐证材料/{name}" in t)
        assert any(f"原因：{reason}" in page for reason in accepted), (name, page)


# --------------------------------------------------------------------------- reproducible


def test_two_runs_give_identical_bytes_with_evidence(tmp_path: Path) -> None:
    """Different processes' caches: the evidence is normalised afresh in each run."""
    hid = "4116211052010001"  # photos (EXIF 6), camera-size JPEGs, statement PDFs
    first = run_packet(SAMPLE, hid, "-o", f"{tmp_path}/a/", env={"ARCHIVE_BUILDER_CACHE_DIR": str(tmp_path / "c1")})
    second = run_packet(SAMPLE, hid, "-o", f"{tmp_path}/b/", env={"ARCHIVE_BUILDER_CACHE_DIR": str(tmp_path / "c2")})
    assert first.exit_code == second.exit_code == 0
    a, = (tmp_path / "a").iterdir()
    b, = (tmp_path / "b").iterdir()
    assert a.read_bytes() == b.read_bytes()
    assert any((tmp_path / "c2").rglob("*.jpg"))  # the second run did normalise


# --------------------------------------------------------------------------- line breaking


def test_no_line_of_a_prose_page_starts_with_closing_punctuation(tmp_path: Path, cache_env: Path) -> None:
    """Put each closing mark exactly where a line would break (26 chars after the 2-char
    indent, then every 28) and check the rendered lines."""
    filler = "扶贫档案整理归档工作按规定程序办理完毕"

    def paragraph(mark: str, line: int) -> str:
        at = 26 + 28 * line
        body = (filler * 10)[:at]
        return body + mark + filler[:9] + "。"

    paragraphs = [paragraph(mark, i % 3) for i, mark in enumerate(CLOSING)]

    def edit(record: dict[str, Any]) -> None:
        record["notes"] = "\n\n".join(paragraphs)

    data = copy_household(tmp_path, "4116211052030010", edit)
    result = run_packet(data, "4116211052030010", "-o", tmp_path / "out.pdf")
    assert result.exit_code == 0, result.stderr
    pdf = tmp_path / "out.pdf"
    marks = outline(pdf)
    start = dict(marks)["户说明"]
    end = next((p for t, p in marks if p > start), len(PdfReader(pdf).pages))
    lines = [line for page in page_texts(pdf)[start:end] for line in page]
    assert lines[0] == "户情况说明"
    body = [line for line in lines if filler[:4] in line or line[:1] in CLOSING]
    assert len(body) >= 2 * len(CLOSING)
    offenders = [line for line in body if line[0] in CLOSING]
    assert not offenders
    # the rule did act: each mark would have started a line; it moved down with the
    # character before it instead ("推出")
    moved = {line[1] for line in body if len(line) > 1 and line[1] in CLOSING}
    assert moved == set(CLOSING)
    assert all(len(line) <= 28 for line in body)


def test_template_set_evidence_dpi_sets_the_print_resolution(tmp_path: Path, cache_env: Path) -> None:
    """[settings] evidence_dpi = 150: a camera photo is reduced to 150 dpi over the text block."""
    buf = io.BytesIO()
    Image.new("RGB", (3000, 2000), (90, 140, 60)).save(buf, "JPEG", quality=90)
    data = copy_household(tmp_path, "4116211052030010", files={"照片/photo_01.jpg": buf.getvalue()})
    tset = data / "templates" / "县标准"
    tset.mkdir(parents=True)
    (tset / "templateset.toml").write_text('extends = "default"\n\n[settings]\nevidence_dpi = 150\n', "utf-8")
    toml = data / "archive.toml"
    toml.write_text(toml.read_text(encoding="utf-8").replace('set = "default"', 'set = "县标准"'), "utf-8")
    result = run_packet(data, "4116211052030010", "-o", tmp_path / "out.pdf")
    assert result.exit_code == 0, result.stderr
    reader = PdfReader(tmp_path / "out.pdf")
    sizes = [size for page in reader.pages for size in image_xobjects(page)]
    text_width_px = int(156 / 25.4 * 150)  # the default set's text block, 156 mm
    assert (text_width_px, int(2000 * text_width_px / 3000)) in sizes, sizes


def test_household_id_typed_with_spaces_or_full_width_digits(tmp_path: Path, cache_env: Path) -> None:
    data = copy_household(tmp_path, "4116211052030010")
    result = run_packet(data, " ４１１６２１１０５２０３００１０ ", "-o", f"{tmp_path}/out/")
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "out" / "4116211052030010_宋水旺.pdf").is_file()


def test_disk_full_while_writing_is_told_in_chinese(tmp_path: Path, cache_env: Path, monkeypatch) -> None:
    import errno

    from archive_builder.render import pdf as pdf_writer

    def full(*args: Any, **kwargs: Any) -> Any:
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "out.pdf"))

    monkeypatch.setattr(pdf_writer, "write_pdf", full)
    data = copy_household(tmp_path, "4116211052030010")
    result = run_packet(data, "4116211052030010", "-o", tmp_path / "out.pdf")
    assert result.exit_code == 4, result.stderr
    assert "磁盘空间不足" in result.stderr and "No space" not in result.stderr
    assert not (tmp_path / "out.pdf").exists()
