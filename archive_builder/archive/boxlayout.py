"""The layout of box PDFs (盒): which packets go in which box, and where each page lands.

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

This module is the pure part (no PDF is read or written): the plan, the page layout of a
box, its page labels and file names. ``collate.py`` assembles the PDF that follows it.
"""

from __future__ import annotations

import itertools
import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from archive_builder.archive.outdir import safe_file_name
from archive_builder.document import SectionPages
from archive_builder.problems import Problem, warning
from archive_builder.render.boxpages import MissingItem, contents_pages

log = logging.getLogger("archive_builder.archive.collate")

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
