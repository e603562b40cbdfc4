"""Collate rendered household packets into bound-ready box PDFs (盒), village by village.

A village's packets (one PDF per household, rendered by ``render/pdf.py``) are split into
boxes of at most ``PrintOptions.sheets_per_box`` sheets without ever splitting a household.
Each box becomes one PDF::

    盒封面 → 卷内目录 (1..k pages) → packets in 件号 order → 备考表

Decisions (documented here because the manifest, the tests and the clerk rely on them):

* **File names** always carry the box number, even for a village that fits one box:
  ``<code>_<村名>_第01盒.pdf`` (two digits; three when a village has 100 boxes or more), so
  names sort in shelf order and never change when a village grows into a second box.
  Stale box files of the same village with a higher number are removed.
* **Duplex** (``PrintOptions.duplex``): the cover, the contents, every packet and the 备考表
  start on a recto (odd PDF page); truly blank pages (no content stream, no number) are
  inserted as versos where needed. No blank page is added after the 备考表. A separator
  sheet (隔页纸) inside a packet is a sheet of its own: it starts on a recto and gets a
  blank verso, so the section after it starts on a recto as well
  (``PrintOptions.separator_own_sheet``; the packet renderer knows nothing of duplex).
  Sheets = ceil(pages / 2) when duplex, else pages.
* **Archive page numbers** (DA/T 22-2015 编页): numbered consecutively from 1 within each box
  over every page of the packets that carries content — blank versos, the packets'
  separator sheets (隔页纸, ``PacketInfo.separators``), the box cover, the box contents and
  the 备考表 are not numbered and do not consume a number. The number is stamped at
  collation in 10.5 pt with the template set's table face (embedded, in the box's one copy
  of that face): recto top-right, verso top-left (simplex: always top-right). The contents'
  起止页 column lists these archive numbers.
* ``BoxResult.households`` gives ``(household_id, first_page, last_page)`` as 1-based *PDF
  page indexes* of the packet's first and last page in the box file (what the manifest
  records); ``BoxResult.numbers`` gives the archive numbers stamped on those pages.
* **Page labels** (/PageLabels): 封面, 目录-1…, the archive number on numbered pages,
  隔页 on separator sheets, 空白 on blank versos, 备考表 — a viewer shows the number printed
  on the paper.
* **Outline**: 封面, 卷内目录, one closed item per household
  ("0001 张三（户编号 …）") with one child per packet section, 备考表.
* **Reproducible bytes**: no wall-clock time; dates come from the ``date`` argument and the
  file identifier (/ID) is a hash of every input (packet bytes, village, options, date).
* **Atomic**: each box is written to a temporary file in ``out_dir`` and moved into place
  with ``os.replace``.

Why one module of this size: the box layout rules (listed above) and the assembly that
follows them are read together; the layout part is pure and tested on its own.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from archive_builder import __version__
from archive_builder.archive.outdir import atomic_file, safe_file_name
from archive_builder.document import SectionPages
from archive_builder.problems import Problem, warning
from archive_builder.render.boxpages import (  # noqa: F401 - MM, draw_text, fit_size re-exported
    A4_H,
    A4_W,
    CONTENTS_ROWS,
    MM,
    ContentsRow,
    MissingItem,
    contents_pages,
    draw_text,
    fit_size,
    pdf_date,
    render_box_pages,
)
from archive_builder.render.fonts import SharedFonts, merge_font_subsets
from archive_builder.render.stamp import NumberStamper

if TYPE_CHECKING:  # pragma: no cover
    from archive_builder.render.fonts import FontSet

log = logging.getLogger(__name__)

#: bump when the box layout changes (part of the /ID hash)
COLLATE_FORMAT = 2

# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class PacketInfo:
    """One rendered household packet."""

    household_id: str
    head: str
    members: int
    household_type: str
    #: 件号 within the village (1-based; the caller decides the order)
    item_no: int
    pdf: Path
    pages: int
    #: from RenderResult: 0-based page indexes within the packet
    sections: tuple[SectionPages, ...] = ()
    #: 0-based indexes of unnumbered separator sheets in the packet
    separators: tuple[int, ...] = ()
    #: ``RenderResult.fonts`` when the packet was rendered by this build (else read back)
    fonts: tuple[tuple[str, str, str], ...] = ()
    #: ``RenderResult.sha256`` when the packet was rendered by this build (else computed)
    sha256: str = ""


@dataclass(frozen=True)
class VillageInfo:
    code: str
    name: str
    county: str
    township: str
    year: int
    fonds_no: str
    fonds_name: str
    retention: str


@dataclass(frozen=True)
class PrintOptions:
    duplex: bool = True
    sheets_per_box: int = 200
    #: 20/30/40/50
    spine_width_mm: int = 30
    #: duplex only: a separator sheet (隔页纸) is a sheet of its own — on a recto, blank verso
    separator_own_sheet: bool = True


@dataclass(frozen=True)
class BoxResult:
    file: Path
    box_no: int
    #: PDF pages in the box file (including blank versos)
    pages: int
    sheets: int
    first_item: int
    last_item: int
    #: (household_id, first_page, last_page): 1-based PDF page indexes in this box file
    households: tuple[tuple[str, int, int], ...]
    #: (household_id, first_no, last_no): archive page numbers stamped on those pages
    numbers: tuple[tuple[str, int, int], ...] = ()
    #: pages carrying an archive number (the M of 本盒共 N 件 M 页)
    numbered_pages: int = 0

    @property
    def items(self) -> int:
        return self.last_item - self.first_item + 1 if self.households else 0


# --------------------------------------------------------------------------- planning


def _span(pages: int, duplex: bool) -> int:
    """PDF pages a part occupies, with the blank verso that makes the next part a recto."""
    return pages + (pages % 2 if duplex else 0)


def packet_offsets(packet: PacketInfo, options: PrintOptions) -> tuple[list[int], int]:
    """Where each packet page lands relative to the packet's first PDF page, and the span.

    With duplex the span is even (blank verso after an odd page count) and, with
    ``separator_own_sheet``, every separator sheet starts on a recto and has a blank verso,
    so the section after it starts on a recto too.
    """
    own = options.duplex and options.separator_own_sheet
    seps = set(packet.separators) if own else set()
    offsets: list[int] = []
    pos = 0
    for i in range(packet.pages):
        if i in seps and pos % 2:
            pos += 1  # blank verso before the separator
        offsets.append(pos)
        pos += 1
        if i in seps and i < packet.pages - 1:
            pos += 1  # blank verso behind the separator
    return offsets, _span(pos, options.duplex)


def box_pages(packets: Sequence[PacketInfo], options: PrintOptions) -> int:
    """PDF pages of a box holding ``packets`` (cover, contents, packets, 备考表)."""
    d = options.duplex
    return (
        _span(1, d)
        + _span(contents_pages(len(packets)), d)
        + sum(packet_offsets(p, options)[1] for p in packets)
        + 1
    )


def sheets_for(pages: int, duplex: bool) -> int:
    return math.ceil(pages / 2) if duplex else pages


def box_sheets(packets: Sequence[PacketInfo], options: PrintOptions) -> int:
    return sheets_for(box_pages(packets, options), options.duplex)


def _ordered(packets: Sequence[PacketInfo]) -> list[PacketInfo]:
    ordered = sorted(packets, key=lambda p: p.item_no)
    for a, b in itertools.pairwise(ordered):
        if a.item_no == b.item_no:
            raise ValueError(f"件号重复：{a.item_no}（户编号 {a.household_id} 与 {b.household_id}）")
    for p in ordered:
        if p.pages < 1:
            raise ValueError(f"户 {p.household_id} 的档卡没有页面")
    return ordered


def plan_boxes(
    packets: Sequence[PacketInfo], options: PrintOptions, *, problems: list[Problem] | None = None
) -> list[list[PacketInfo]]:
    """Split packets (in 件号 order) into boxes of at most ``options.sheets_per_box`` sheets.

    A household is never split. The box overhead (cover, contents, 备考表, blank versos)
    counts against the capacity. A household that does not fit an empty box gets a box of
    its own; a Chinese warning is logged and appended to ``problems`` if given.
    """
    if options.sheets_per_box < 1:
        raise ValueError("每盒张数必须大于 0")
    boxes: list[list[PacketInfo]] = []
    current: list[PacketInfo] = []
    for packet in _ordered(packets):
        if box_sheets([*current, packet], options) <= options.sheets_per_box:
            current.append(packet)
            continue
        if current:
            boxes.append(current)
            current = []
        if box_sheets([packet], options) > options.sheets_per_box:
            need = box_sheets([packet], options)
            msg = (
                f"户 {packet.household_id}（{packet.head}，件号 {packet.item_no:04d}）的档卡共 "
                f"{packet.pages} 页，装盒需要 {need} 张，超过每盒 {options.sheets_per_box} 张，已单独装一盒"
            )
            log.warning(msg)
            if problems is not None:
                problems.append(
                    warning(
                        msg,
                        hint="可调大 print.sheets_per_box，或选用更厚的档案盒",
                        household_id=packet.household_id,
                    )
                )
            boxes.append([packet])
            continue
        current = [packet]
    if current:
        boxes.append(current)
    return boxes


# --------------------------------------------------------------------------- layout


@dataclass
class _Part:
    """One part of a box in page order."""

    kind: str  # "cover", "contents", "packet", "remarks"
    first: int  # 0-based PDF page index
    pages: int
    packet: PacketInfo | None = None
    #: archive numbers of the pages (0 = unnumbered), packets only
    numbers: list[int] = field(default_factory=list)
    #: PDF offset of each page from ``first`` (packets: blanks may sit in between)
    offsets: list[int] = field(default_factory=list)
    #: PDF pages taken, blank versos included
    span: int = 0

    def index(self, page: int) -> int:
        """0-based PDF index of the part's ``page`` (0-based)."""
        return self.first + self.offsets[page]


@dataclass
class _Layout:
    parts: list[_Part]
    pages: int
    numbered: int

    def packet_parts(self) -> list[_Part]:
        return [p for p in self.parts if p.kind == "packet"]


def _layout(packets: Sequence[PacketInfo], options: PrintOptions) -> _Layout:
    duplex = options.duplex
    parts: list[_Part] = []
    pos = 0
    number = 0

    def add(kind: str, pages: int, packet: PacketInfo | None = None) -> _Part:
        nonlocal pos
        if packet is not None:
            offsets, span = packet_offsets(packet, options)
        else:
            offsets, span = (list(range(pages)), (pages if kind == "remarks" else _span(pages, duplex)))
        part = _Part(kind, pos, pages, packet, offsets=offsets, span=span)
        parts.append(part)
        pos += span
        return part

    add("cover", 1)
    add("contents", contents_pages(len(packets)))
    for packet in packets:
        part = add("packet", packet.pages, packet)
        separators = set(packet.separators)
        for i in range(packet.pages):
            if i in separators:
                part.numbers.append(0)
            else:
                number += 1
                part.numbers.append(number)
    add("remarks", 1)
    return _Layout(parts, pos, number)


def _number_range(part: _Part) -> tuple[int, int]:
    nums = [n for n in part.numbers if n]
    return (nums[0], nums[-1]) if nums else (0, 0)


def box_file_name(village: VillageInfo, box_no: int, boxes: int) -> str:
    """``<code>_<村名>_第01盒.pdf`` (unsafe characters replaced by ``_``)."""
    width = max(2, len(str(boxes)))
    stem = safe_file_name(f"{village.code}_{village.name}")
    return f"{stem}_第{box_no:0{width}d}盒.pdf"


def _box_file_pattern(village: VillageInfo) -> re.Pattern[str]:
    stem = re.escape(safe_file_name(f"{village.code}_{village.name}"))
    return re.compile(rf"^{stem}_第(\d+)盒\.pdf$")


# --------------------------------------------------------------------------- assembly


def _page_labels(pdf: Any, labels: list[tuple[int, dict[str, Any]]]) -> None:
    """Write /PageLabels from (first page index, {"P": prefix, "S": style, "St": start})."""
    from pikepdf import Array, Dictionary, Name, String

    nums: list[Any] = []
    for index, spec in labels:
        d = Dictionary()
        if "P" in spec:
            d.P = String(spec["P"])
        if "S" in spec:
            d.S = Name("/" + spec["S"])
        if spec.get("St", 1) != 1:
            d.St = spec["St"]
        nums += [index, d]
    pdf.Root.PageLabels = pdf.make_indirect(Dictionary(Nums=Array(nums)))


def _label_runs(layout: _Layout) -> list[tuple[int, dict[str, Any]]]:
    """One label per page, collapsed into ranges."""
    # (prefix, style, value) — value used with style D; blank versos are labelled 空白
    per_page: list[tuple[str, str, int]] = [("空白", "", 0)] * layout.pages
    for part in layout.parts:
        for i in range(part.pages):
            if part.kind == "cover":
                label = ("封面", "", 0)
            elif part.kind == "contents":
                label = ("目录-", "D", i + 1)
            elif part.kind == "packet":
                n = part.numbers[i]
                label = ("", "D", n) if n else ("隔页", "", 0)
            else:
                label = ("备考表", "", 0)
            per_page[part.index(i)] = label
    runs: list[tuple[int, dict[str, Any]]] = []
    prev: tuple[str, str, int] | None = None
    for index, (prefix, style, value) in enumerate(per_page):
        continues = (
            prev is not None
            and style == "D"
            and prev[0] == prefix
            and prev[1] == "D"
            and value == prev[2] + 1
        )
        if not continues:
            spec: dict[str, Any] = {}
            if prefix:
                spec["P"] = prefix
            if style:
                spec["S"] = style
                spec["St"] = value
            runs.append((index, spec))
        prev = (prefix, style, value)
    return runs


def _open_packet(p: PacketInfo) -> Any:
    """The packet file of ``p`` opened with pikepdf (read as needed), its page count checked."""
    import pikepdf

    try:
        pdf = pikepdf.open(p.pdf)
    except pikepdf.PdfError as exc:
        raise ValueError(f"户 {p.household_id} 的档卡文件 {p.pdf} 无法读取（{exc}），请重新生成该户档卡") from exc
    if len(pdf.pages) != p.pages:
        count = len(pdf.pages)
        pdf.close()
        raise ValueError(f"户 {p.household_id} 的档卡页数不符：记录为 {p.pages} 页，文件 {p.pdf} 实有 {count} 页")
    return pdf


class _Box:
    """A box PDF being assembled with pikepdf: pages are copied from their sources (qpdf's
    foreign-object copy: each shared object once), fonts of ours pointed at the box's one
    copy of each face, archive numbers stamped."""

    def __init__(self, fonts: Any) -> None:
        import pikepdf

        self.pdf = pikepdf.new()
        self.shared = SharedFonts(self.pdf, fonts)
        #: sources whose stream data the copied objects read until the box is saved
        self.sources: list[Any] = []
        #: ids of the sources with inline font dictionaries (see ``SharedFonts.adopt``)
        self.inline: set[int] = set()

    def open(self, data: bytes | PacketInfo, known: Sequence[tuple[str, str, str]] = ()) -> Any:
        """A source PDF (bytes, or a packet's file) with its fonts adopted, kept open until the
        box is saved."""
        import pikepdf

        source = _open_packet(data) if isinstance(data, PacketInfo) else pikepdf.open(io.BytesIO(data))
        self.sources.append(source)
        if self.shared.adopt(source, known=known):
            self.inline.add(id(source))
        return source

    def append(self, source: Any, start: int, stop: int) -> None:
        """Copy the pages ``start:stop`` of ``source`` (one of ``open``) to the end of the box."""
        first = len(self.pdf.pages)
        self.pdf.pages.extend(source.pages[start:stop])
        if id(source) in self.inline:
            for i in range(first, len(self.pdf.pages)):
                self.shared.link(self.pdf.pages[i])

    def blank(self, width: float, height: float) -> None:
        """A truly blank page: no content stream, no number."""
        from pikepdf import Array, Dictionary, Name, Page

        page = Dictionary(Type=Name.Page, MediaBox=Array([0, 0, width, height]), Resources=Dictionary())
        self.pdf.pages.append(Page(self.pdf.make_indirect(page)))

    def __len__(self) -> int:
        return len(self.pdf.pages)

    def close(self) -> None:
        for source in self.sources:
            source.close()
        self.pdf.close()


def _outline(pdf: Any, layout: _Layout, remarks_index: int) -> None:
    """封面, 卷内目录, one closed item per household with its sections, 备考表."""
    from pikepdf import Name, OutlineItem

    with pdf.open_outline() as outline:
        items = outline.root
        items.append(OutlineItem("封面", 0))
        items.append(OutlineItem("卷内目录", layout.parts[1].first))
        for part in layout.packet_parts():
            p = part.packet
            assert p is not None
            item = OutlineItem(f"{p.item_no:04d} {p.head}（户编号 {p.household_id}）", part.first)
            item.is_closed = True
            item.children.extend(OutlineItem(s.title, part.index(s.first)) for s in p.sections
                                 if 0 <= s.first < p.pages)
            items.append(item)
        items.append(OutlineItem("备考表", remarks_index))
    pdf.Root.PageMode = Name.UseOutlines


def _save(pdf: Any, path: Path, info: dict[str, str], file_id: bytes) -> None:
    """Write the box atomically, the same bytes for the same input.

    The document information is ours (no clock). The first /ID word is our hash of every
    input; qpdf keeps it and, with ``static_id``, writes a constant second word
    (``deterministic_id`` would hash the written file again, as long as writing it, for
    nothing the first word does not already give). Streams are written as they are (the
    packets' compressed or not, as their renderer chose; compressing them again here tripled
    the time of a box), without object streams, whatever qpdf's defaults.
    """
    import pikepdf
    from pikepdf import Array, Dictionary, String

    pdf.trailer.Info = pdf.make_indirect(Dictionary({k: String(v) for k, v in info.items()}))
    pdf.trailer.ID = Array([String(file_id), String(file_id)])
    out = io.BytesIO()  # one write to the file (qpdf writing to a Python file calls back per chunk)
    pdf.save(
        out,
        static_id=True,
        object_stream_mode=pikepdf.ObjectStreamMode.disable,
        compress_streams=False,
        stream_decode_level=pikepdf.StreamDecodeLevel.none,
        recompress_flate=False,
        normalize_content=False,
        linearize=False,
        qdf=False,
        fix_metadata_version=False,
    )
    with atomic_file(path) as fh:  # temp file beside it, fsync, os.replace
        fh.write(out.getbuffer())


def _write_box(
    village: VillageInfo,
    box_no: int,
    packets: Sequence[PacketInfo],
    path: Path,
    options: PrintOptions,
    fonts: Any,
    date: str,
    *,
    missing: Sequence[MissingItem] = (),
) -> BoxResult:
    duplex = options.duplex
    layout = _layout(packets, options)
    digest = hashlib.sha256()
    digest.update(
        repr((COLLATE_FORMAT, __version__, village, box_no, options, date, path.name, tuple(missing)))
        .encode("utf-8")
    )

    rows = []
    for part in layout.packet_parts():
        p = part.packet
        assert p is not None
        rows.append(
            ContentsRow(p.item_no, p.household_id, p.head, p.members, p.household_type, *_number_range(part))
        )
    k = contents_pages(len(packets))
    box = _Box(fonts)
    try:
        matter = box.open(render_box_pages(village, box_no, rows, layout.numbered, fonts, date, missing))
        stamper = NumberStamper(box.pdf, fonts, box.shared)

        def blank_after(pages: int) -> None:
            if duplex and pages % 2:
                box.blank(A4_W, A4_H)

        box.append(matter, 0, 1)
        blank_after(1)
        box.append(matter, 1, 1 + k)
        blank_after(k)

        households: list[tuple[str, int, int]] = []
        numbers: list[tuple[str, int, int]] = []
        for part in layout.packet_parts():
            p = part.packet
            assert p is not None
            digest.update(
                repr((p.household_id, p.head, p.members, p.household_type, p.item_no, p.pages, p.sections,
                      p.separators)).encode("utf-8")
            )
            digest.update(bytes.fromhex(p.sha256) if p.sha256 else hashlib.sha256(Path(p.pdf).read_bytes()).digest())
            assert len(box) == part.first, (len(box), part.first)
            source = box.open(p, p.fonts)
            llx, lly, urx, ury = (float(v) for v in source.pages[0].obj.MediaBox)
            width, height = urx - llx, ury - lly
            if part.offsets[-1] == p.pages - 1:
                box.append(source, 0, p.pages)
            else:
                for i in range(p.pages):
                    while len(box) < part.index(i):  # blank versos around separator sheets
                        box.blank(width, height)
                    box.append(source, i, i + 1)
            for i, number in enumerate(part.numbers):
                if number:
                    index = part.index(i)
                    stamper.stamp(box.pdf.pages[index], number, recto=(index % 2 == 0) or not duplex)
            while len(box) < part.first + part.span:
                box.blank(width, height)
            households.append((p.household_id, part.index(0) + 1, part.index(p.pages - 1) + 1))
            a, b = _number_range(part)
            numbers.append((p.household_id, a, b))

        remarks_index = len(box)
        box.append(matter, 1 + k, 2 + k)
        assert len(box) == layout.pages, (len(box), layout.pages)

        _outline(box.pdf, layout, remarks_index)
        _page_labels(box.pdf, _label_runs(layout))
        box.shared.finish()
        # with the FontSet the union's glyphs come from the font files (no packet program is
        # decompressed)
        merge_font_subsets(box.pdf, fonts)

        stamp_date = pdf_date(date)
        info = {
            "/Title": f"{village.name} 档案 第{box_no}盒",
            "/Author": village.fonds_name,
            "/Subject": f"{village.county}{village.township}{village.name} {village.year}年度 "
            f"件号 {packets[0].item_no:04d}—{packets[-1].item_no:04d}",
            "/Creator": "archive-builder",
            "/Producer": "archive-builder (pikepdf)",
            "/CreationDate": stamp_date,
            "/ModDate": stamp_date,
        }
        _save(box.pdf, path, info, digest.digest()[:16])
    finally:
        box.close()
    return BoxResult(
        file=path,
        box_no=box_no,
        pages=layout.pages,
        sheets=sheets_for(layout.pages, duplex),
        first_item=packets[0].item_no,
        last_item=packets[-1].item_no,
        households=tuple(households),
        numbers=tuple(numbers),
        numbered_pages=layout.numbered,
    )


def box_fingerprint(info: dict[str, Any], box_no: int, box_count: int, options: PrintOptions, date: str,
                    packets: Sequence[tuple[PacketInfo, str]], missing: Sequence[MissingItem]) -> str:
    """Return the hash of everything a box's file depends on: the village, its place among the
    village's boxes, the print options, the date, the program, and each packet (with its
    household's content hash) and missing item. The same fingerprint means the same file."""
    from archive_builder.archive import hashing

    return hashlib.sha256(hashing.canonical_json([
        info, box_no, box_count, options.__dict__, date, __version__,
        [[p.household_id, p.item_no, p.pages, content_hash] for p, content_hash in packets],
        [[m.item_no, m.household_id, m.head] for m in missing],
    ])).hexdigest()


def collate_box(
    village: VillageInfo,
    box_no: int,
    box_count: int,
    packets: Sequence[PacketInfo],
    out_dir: Path,
    options: PrintOptions,
    *,
    fonts: FontSet,
    date: str,
    missing: Sequence[MissingItem] = (),
) -> BoxResult:
    """Write one box (``packets`` = one entry of :func:`plan_boxes`) into ``out_dir``.

    Boxes are independent: a caller with worker processes may write the boxes of a
    village in parallel and then call :func:`remove_stale_boxes`. ``missing``: the item
    numbers of this box without a packet (see :func:`assign_missing`), noted on its 备考表.
    """
    if not packets:
        raise ValueError("空盒：没有要装盒的档卡")
    out_dir = Path(out_dir)
    path = out_dir / box_file_name(village, box_no, box_count)
    return _write_box(
        village, box_no, _ordered(packets), path, options, fonts, date, missing=missing
    )


def assign_missing(
    boxes: Sequence[Sequence[PacketInfo]], missing: Sequence[MissingItem]
) -> list[list[MissingItem]]:
    """For each box of :func:`plan_boxes`, the missing item numbers its 备考表 notes.

    A missing number belongs to the box holding the packets just before it (the first box
    when it comes before every packet), where it would have been filed.
    """
    notes: list[list[MissingItem]] = [[] for _ in boxes]
    firsts = [min(p.item_no for p in box) for box in boxes]
    for item in sorted(missing, key=lambda m: m.item_no):
        if notes:
            notes[max((i for i, first in enumerate(firsts) if first <= item.item_no), default=0)].append(item)
    return notes


def remove_stale_boxes(village: VillageInfo, out_dir: Path, keep: Sequence[Path | str]) -> list[Path]:
    """Delete this village's box files in ``out_dir`` other than ``keep`` (left by a larger build)."""
    names = {Path(k).name for k in keep}
    pattern = _box_file_pattern(village)
    removed: list[Path] = []
    if not Path(out_dir).is_dir():  # a village none of whose households was produced
        return removed
    for old in Path(out_dir).iterdir():
        if pattern.match(old.name) and old.name not in names:
            try:
                old.unlink()
                removed.append(old)
            except OSError:
                pass
    return removed
