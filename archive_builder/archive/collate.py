"""Collate rendered household packets into bound-ready box PDFs (盒), with pikepdf (qpdf).

``boxlayout.py`` decides the layout (which packets go in which box, where every page lands,
page labels, file names: the rules are listed there); this module writes each box as it
says: the cover, contents and 备考表 (``render/boxpages.py``), the packets' pages copied with
qpdf's foreign-object copy (each object a packet's pages share copied once), blank versos,
archive page numbers (``render/stamp.py``), outline and page labels, and one copy of each
font face (``render/sharedfonts.py``, ``render/fontmerge.py``).

* **Reproducible bytes**: no wall-clock time; dates come from the ``date`` argument and the
  file identifier (/ID) is a hash of every input (packet bytes, village, options, date).
* **Atomic**: each box is written to a temporary file in ``out_dir`` and moved into place
  with ``os.replace``.
* **Worker-friendly**: :func:`collate_box` takes plain, picklable arguments (the box's plan,
  packet file paths, options, font set) and returns a :class:`BoxResult`; boxes are
  independent, so a worker pool may write them in any order.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from archive_builder import __version__
from archive_builder.archive.boxlayout import (  # noqa: F401 - the layout's names re-exported
    BoxResult,
    PacketInfo,
    PrintOptions,
    VillageInfo,
    _box_file_pattern,
    _label_runs,
    _Layout,
    _layout,
    _number_range,
    _ordered,
    _Part,
    assign_missing,
    box_file_name,
    box_pages,
    box_sheets,
    packet_offsets,
    plan_boxes,
    sheets_for,
)
from archive_builder.archive.outdir import atomic_file
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

#: bump when the box files change for the same input (part of the /ID hash and of the box
#: fingerprint, so boxes written before are collated again)
COLLATE_FORMAT = 3

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

    def add_packet(self, part: _Part, stamper: NumberStamper, duplex: bool) -> None:
        """Copy the packet of ``part`` with the blank versos its layout asks for; stamp its
        archive numbers."""
        p = part.packet
        assert p is not None
        source = self.open(p, p.fonts)
        llx, lly, urx, ury = (float(v) for v in source.pages[0].obj.MediaBox)
        width, height = urx - llx, ury - lly
        if part.offsets[-1] == p.pages - 1:  # no blank inside: one copy of every page
            self.append(source, 0, p.pages)
        else:
            for i in range(p.pages):
                while len(self) < part.index(i):  # blank versos around separator sheets
                    self.blank(width, height)
                self.append(source, i, i + 1)
        for i, number in enumerate(part.numbers):
            if number:
                index = part.index(i)
                stamper.stamp(self.pdf.pages[index], number, recto=(index % 2 == 0) or not duplex)
        while len(self) < part.first + part.span:
            self.blank(width, height)

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
    with atomic_file(path) as fh:  # temp file beside it, fsync, os.replace
        pdf.save(
            fh,
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
            box.add_packet(part, stamper, duplex)
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
        info, box_no, box_count, options.__dict__, date, __version__, COLLATE_FORMAT,
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
