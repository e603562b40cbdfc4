"""Text and raster comparison of two PDFs (pypdfium2 for text and rendering, Pillow for pixels).

Pages are grouped into sections by the top-level outline items (the packet's bookmarks), and
sections are matched by title. Inside a matched section, pages are aligned by their text
(difflib over whole pages), so inserting one page does not mark every later page as changed.
Page numbers move when a page is inserted; a page whose only difference is its page number
line (and the pixels in the top or bottom margin band) is therefore not reported as changed.

Page numbers in this module's public API are 1-based, as printed.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pypdfium2 as pdfium
from PIL import Image, ImageChops

from ..errors import ArchiveError, ExitCode, os_reason
from ..render.pdfiumlock import PDFIUM

Box = tuple[int, int, int, int]

#: resolution used to decide whether two pages differ (fast); reports render finer
DETECT_DPI = 36
#: pixel differences at or below this (0–255) are anti-aliasing noise
PIXEL_THRESHOLD = 48
#: share of the page height at the top and bottom where page numbers are printed
MARGIN_BAND = 0.12
#: lines that are only a page number: "— 3 —", "3", "第 3 页", "第 3 页 共 9 页"
_PAGE_NUMBER = re.compile(
    r"^[—\-–\s]*\d{1,5}[—\-–\s]*$|^第\s*\d+\s*页(\s*共\s*\d+\s*页)?$"
)
_NO_OUTLINE = "全文"
_BEFORE_OUTLINE = "（首个书签之前）"


class PdfDiffError(ArchiveError):
    """A PDF given to ``diff`` cannot be opened."""

    exit_code = ExitCode.input_unusable
    kind = "PDF 无法比较"


@dataclass(frozen=True)
class SectionTextChange:
    """Changed text of one section (a top-level bookmark) of the packet."""

    section: str
    kind: str  # "added" | "removed" | "changed"
    old_pages: tuple[int, int] | None  # first and last page, 1-based
    new_pages: tuple[int, int] | None
    #: unified-diff-like lines: "- old text", "+ new text", "@@ 第 n 页"
    lines: list[str] = field(default_factory=list)

    def heading(self) -> str:
        """Return "家庭成员（原第 3–4 页 → 新第 3–5 页）"."""

        def pages(p: tuple[int, int] | None) -> str:
            if p is None:
                return "无"
            return f"第 {p[0]} 页" if p[0] == p[1] else f"第 {p[0]}–{p[1]} 页"

        kind = {"added": "，新增", "removed": "，删除"}.get(self.kind, "")
        if self.old_pages is None and self.new_pages is None:
            return f"{self.section}{f'（{kind[1:]}）' if kind else ''}"
        return f"{self.section}（原{pages(self.old_pages)} → 新{pages(self.new_pages)}{kind}）"


@dataclass(frozen=True)
class _Section:
    title: str
    start: int  # 0-based, inclusive
    end: int  # 0-based, exclusive


#: the most pixels one page is rendered with for comparing (an A3 page at 60 dpi is 0.7
#: million; a MediaBox of 200 inches square would be 144 million)
MAX_RENDER_PIXELS = 4_000_000


class _Pdf:
    """An open PDF with its page texts and sections."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.doc = pdfium.PdfDocument(str(path))
        except (pdfium.PdfiumError, OSError) as exc:
            reason = os_reason(exc) if isinstance(exc, OSError) else "不是有效的 PDF，或文件已损坏、已加密"
            raise PdfDiffError(
                f"无法打开 PDF 文件 {path}：{reason}",
                hint="检查文件是否存在、是否为完整的 PDF（未损坏、未加密）。",
            ) from exc
        try:
            self.count = len(self.doc)
            self.raw: list[list[str]] = [self._lines(i) for i in range(self.count)]
        except pdfium.PdfiumError as exc:  # a page tree that loops, a page that cannot be read
            self.doc.close()
            raise PdfDiffError(
                f"PDF 文件 {path} 的页面结构已损坏（页面无法读取），无法比较",
                hint="请用 PDF 阅读器打开该文件另存（或重新生成）后再比较。",
            ) from exc
        self.text: list[list[str]] = [
            [line for line in lines if not _PAGE_NUMBER.match(line)]
            for lines in self.raw
        ]
        self.sections = self._sections()
        #: the page number printed on each page ("— 3 —", "第 3 页"), None where there is none
        self.printed: list[int | None] = [_printed_number(lines) for lines in self.raw]

    def _lines(self, index: int) -> list[str]:
        page = self.doc[index]
        textpage = page.get_textpage()
        try:
            text = textpage.get_text_range()
        finally:
            textpage.close()
            page.close()
        lines = (line.strip() for line in text.replace("\r\n", "\n").split("\n"))
        return [line for line in lines if line]

    def _sections(self) -> list[_Section]:
        starts: list[tuple[int, str]] = []
        for bookmark in self.doc.get_toc(max_depth=1):
            dest = bookmark.get_dest()
            index = dest.get_index() if dest is not None else None
            if index is not None and 0 <= index < self.count:
                starts.append((index, bookmark.get_title().strip() or "（无标题）"))
        if not starts:
            return [_Section(_NO_OUTLINE, 0, self.count)]
        starts.sort(key=lambda s: s[0])
        sections = []
        if starts[0][0] > 0:
            sections.append(_Section(_BEFORE_OUTLINE, 0, starts[0][0]))
        for n, (index, title) in enumerate(starts):
            end = starts[n + 1][0] if n + 1 < len(starts) else self.count
            if end > index:
                sections.append(_Section(title, index, end))
        return sections

    def render(self, index: int, dpi: float) -> Image.Image:
        """The page at ``dpi``, or smaller: never more than ``MAX_RENDER_PIXELS`` pixels."""
        try:
            page = self.doc[index]
            try:
                width, height = page.get_size()
                scale = dpi / 72
                area = max(1.0, abs(width * height)) * scale * scale
                if area > MAX_RENDER_PIXELS:
                    # a poster-sized MediaBox (0.99: pdfium rounds the pixel size up)
                    scale *= 0.99 * (MAX_RENDER_PIXELS / area) ** 0.5
                bitmap = page.render(scale=scale)
                image = bitmap.to_pil().convert("RGB")
            finally:
                page.close()
        except (pdfium.PdfiumError, MemoryError) as exc:
            raise PdfDiffError(
                f"PDF 文件 {self.path} 的第 {index + 1} 页无法绘制，无法比较",
                hint="请用 PDF 阅读器打开该文件另存（或重新生成）后再比较。",
            ) from exc
        return image

    def close(self) -> None:
        self.doc.close()


def _printed_number(lines: list[str]) -> int | None:
    """The page number printed on a page: its last line that is only a page number."""
    for line in reversed(lines):
        if _PAGE_NUMBER.match(line):
            digits = re.search(r"\d+", line)
            return int(digits.group()) if digits else None
    return None


@contextmanager
def _open(path: Path) -> Iterator[_Pdf]:
    with PDFIUM:  # from opening to closing: pdfium is not thread-safe
        pdf = _Pdf(Path(path))
        try:
            yield pdf
        finally:
            pdf.close()


def _match_sections(a: _Pdf, b: _Pdf) -> list[tuple[_Section | None, _Section | None]]:
    """Pair sections by (title, occurrence of that title), in the new document's order."""

    def keyed(pdf: _Pdf) -> dict[tuple[str, int], _Section]:
        seen: dict[str, int] = {}
        out = {}
        for s in pdf.sections:
            seen[s.title] = seen.get(s.title, 0) + 1
            out[(s.title, seen[s.title])] = s
        return out

    old, new = keyed(a), keyed(b)
    pairs: list[tuple[_Section | None, _Section | None]] = [
        (old.get(k), s) for k, s in new.items()
    ]
    pairs += [(s, None) for k, s in old.items() if k not in new]
    return pairs


def _span(s: _Section | None, pdf: _Pdf | None = None) -> tuple[int, int] | None:
    """The section's first and last page: as printed on them when they are numbered."""
    if s is None:
        return None
    if pdf is not None:
        numbers = [n for n in pdf.printed[s.start:s.end] if n is not None]
        if numbers:
            return numbers[0], numbers[-1]
    return (s.start + 1, s.end)


def _section_text_change(
    a: _Pdf, b: _Pdf, sa: _Section | None, sb: _Section | None
) -> SectionTextChange | None:
    def numbered(pdf: _Pdf, s: _Section | None) -> list[str]:
        if s is None:
            return []
        return [line for i in range(s.start, s.end) for line in pdf.text[i]]

    old_lines, new_lines = numbered(a, sa), numbered(b, sb)
    if old_lines == new_lines:
        if sa is None or sb is None:
            # a section of blank (image-only) pages added or removed
            kind = "added" if sa is None else "removed"
            title = (sb or sa).title  # type: ignore[union-attr]
            return SectionTextChange(title, kind, _span(sa, a), _span(sb, b), [])
        return None
    lines = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(
        None, old_lines, new_lines, autojunk=False
    ).get_opcodes():
        if tag == "equal":
            continue
        lines += [f"- {line}" for line in old_lines[i1:i2]]
        lines += [f"+ {line}" for line in new_lines[j1:j2]]
    kind = "added" if sa is None else "removed" if sb is None else "changed"
    title = (sb or sa).title  # type: ignore[union-attr]
    return SectionTextChange(title, kind, _span(sa, a), _span(sb, b), lines)


def _page_pairs(
    a: _Pdf, b: _Pdf, sa: _Section | None, sb: _Section | None
) -> list[tuple[int | None, int | None]]:
    """Align the pages of two matching sections by their text (0-based indices)."""
    old = list(range(sa.start, sa.end)) if sa else []
    new = list(range(sb.start, sb.end)) if sb else []
    matcher = difflib.SequenceMatcher(
        None,
        ["\n".join(a.text[i]) for i in old],
        ["\n".join(b.text[j]) for j in new],
        autojunk=False,
    )
    pairs: list[tuple[int | None, int | None]] = []
    for _tag, i1, i2, j1, j2 in matcher.get_opcodes():
        for k in range(max(i2 - i1, j2 - j1)):
            pairs.append(
                (
                    old[i1 + k] if i1 + k < i2 else None,
                    new[j1 + k] if j1 + k < j2 else None,
                )
            )
    return pairs


def _pad(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    if image.size == size:
        return image
    canvas = Image.new("RGB", size, "white")
    canvas.paste(image, (0, 0))
    return canvas


def diff_boxes(
    img_a: Image.Image, img_b: Image.Image, cell: int = 8, gap: int = 2
) -> list[Box]:
    """Return bounding boxes (pixels) of the clustered areas where two images differ."""
    size = (max(img_a.width, img_b.width), max(img_a.height, img_b.height))
    a, b = _pad(img_a, size).convert("L"), _pad(img_b, size).convert("L")
    mask = ImageChops.difference(a, b).point(
        lambda v: 255 if v > PIXEL_THRESHOLD else 0
    )
    if mask.getbbox() is None:
        return []
    gw, gh = -(-size[0] // cell), -(-size[1] // cell)
    grid = Image.new("L", (gw * cell, gh * cell), 0)
    grid.paste(mask, (0, 0))
    small = grid.resize((gw, gh), Image.Resampling.BOX).tobytes()
    occupied = {(n % gw, n // gw) for n, v in enumerate(small) if v}
    boxes: list[Box] = []
    while occupied:
        stack = [occupied.pop()]
        x0 = x1 = stack[0][0]
        y0 = y1 = stack[0][1]
        while stack:
            x, y = stack.pop()
            x0, x1, y0, y1 = min(x0, x), max(x1, x), min(y0, y), max(y1, y)
            for dx in range(-gap, gap + 1):
                for dy in range(-gap, gap + 1):
                    neighbour = (x + dx, y + dy)
                    if neighbour in occupied:
                        occupied.remove(neighbour)
                        stack.append(neighbour)
        boxes.append(
            (
                x0 * cell,
                y0 * cell,
                min(size[0], (x1 + 1) * cell),
                min(size[1], (y1 + 1) * cell),
            )
        )
    return _merge_overlapping(sorted(boxes, key=lambda bx: (bx[1], bx[0])))


def _merge_overlapping(boxes: list[Box]) -> list[Box]:
    merged = True
    while merged:
        merged = False
        out: list[Box] = []
        for box in boxes:
            for n, other in enumerate(out):
                if (
                    box[0] <= other[2]
                    and other[0] <= box[2]
                    and box[1] <= other[3]
                    and other[1] <= box[3]
                ):
                    out[n] = (
                        min(box[0], other[0]),
                        min(box[1], other[1]),
                        max(box[2], other[2]),
                        max(box[3], other[3]),
                    )
                    merged = True
                    break
            else:
                out.append(box)
        boxes = out
    return boxes


def _outside_margin_bands(boxes: list[Box], height: int) -> list[Box]:
    band = height * MARGIN_BAND
    return [bx for bx in boxes if bx[1] < height - band and bx[3] > band]


def _pages_differ(a: _Pdf, i: int, b: _Pdf, j: int) -> bool:
    if a.text[i] != b.text[j]:
        return True
    img_a, img_b = a.render(i, DETECT_DPI), b.render(j, DETECT_DPI)
    boxes = diff_boxes(img_a, img_b)
    if boxes and a.raw[i] != b.raw[j]:
        # only the page number line differs in the text: ignore pixels where it is printed
        boxes = _outside_margin_bands(boxes, max(img_a.height, img_b.height))
    return bool(boxes)


@dataclass
class PdfComparison:
    """Text and page changes between two PDFs."""

    old_pages: int
    new_pages: int
    text_changes: list[SectionTextChange]
    #: changed pages as (old, new), 1-based; None where a page has no counterpart
    pages: list[tuple[int | None, int | None]]
    #: 1-based page -> the number printed on it (numbered pages only)
    old_printed: dict[int, int] = field(default_factory=dict)
    new_printed: dict[int, int] = field(default_factory=dict)
    #: each page's text lines and printed number (for placing changes found elsewhere)
    old_text: list[list[str]] = field(default_factory=list)
    new_text: list[list[str]] = field(default_factory=list)


def _numbers(pdf: _Pdf) -> dict[int, int]:
    return {i + 1: n for i, n in enumerate(pdf.printed) if n is not None}


def _compare_open(a: _Pdf, b: _Pdf, *, raster: bool = True) -> PdfComparison:
    text_changes = []
    pages: list[tuple[int | None, int | None]] = []
    for sa, sb in _match_sections(a, b):
        change = _section_text_change(a, b, sa, sb)
        if change is not None:
            text_changes.append(change)
        for i, j in _page_pairs(a, b, sa, sb):
            if i is None or j is None or a.text[i] != b.text[j]:
                changed = True
            else:
                changed = raster and _pages_differ(a, i, b, j)
            if changed:
                pages.append(
                    (None if i is None else i + 1, None if j is None else j + 1)
                )
    return PdfComparison(a.count, b.count, text_changes, pages, _numbers(a), _numbers(b), a.text, b.text)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise PdfDiffError(
            f"无法读取文件 {path}：{os_reason(exc)}",
            hint="检查文件名和路径是否正确、文件是否可读。",
        ) from exc


def compare_pdf_files(
    old_pdf: Path, new_pdf: Path, *, raster: bool = True
) -> PdfComparison:
    """Return the text changes and the changed pages of two PDF files."""
    if _read(Path(old_pdf)) == _read(Path(new_pdf)):
        with _open(old_pdf) as a:
            return PdfComparison(a.count, a.count, [], [], _numbers(a), _numbers(a), a.text, a.text)
    with _open(old_pdf) as a, _open(new_pdf) as b:
        return _compare_open(a, b, raster=raster)


def diff_pdf_text(old_pdf: Path, new_pdf: Path) -> list[SectionTextChange]:
    """Return the section-level text changes between two PDFs."""
    with _open(old_pdf) as a, _open(new_pdf) as b:
        return _compare_open(a, b, raster=False).text_changes


def changed_pages(old_pdf: Path, new_pdf: Path) -> list[tuple[int | None, int | None]]:
    """Return pairs of 1-based page numbers whose text or rendering differs."""
    return compare_pdf_files(old_pdf, new_pdf).pages


def render_page(pdf_path: Path, page: int, dpi: float = 60) -> Image.Image:
    """Return page ``page`` (1-based) rendered as an RGB image."""
    with _open(pdf_path) as pdf:
        return pdf.render(page - 1, dpi)


def raster_diff(
    old_pdf: Path, page_a: int, new_pdf: Path, page_b: int, dpi: float = 60
) -> tuple[Image.Image, Image.Image, list[Box]]:
    """Return both pages rendered (1-based numbers) and the boxes (pixels) where they differ."""
    img_a = render_page(old_pdf, page_a, dpi)
    img_b = render_page(new_pdf, page_b, dpi)
    return img_a, img_b, diff_boxes(img_a, img_b)
