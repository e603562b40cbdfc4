"""``collate_village``: a whole village's boxes in one call (the build collates box by box in
worker processes; tests and benchmarks use this)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from archive_builder.archive.collate import (
    BoxResult,
    MissingItem,
    PacketInfo,
    PrintOptions,
    VillageInfo,
    assign_missing,
    collate_box,
    plan_boxes,
    remove_stale_boxes,
)
from archive_builder.problems import Problem
from archive_builder.render.fonts import FontSet


def collate_village(
    village: VillageInfo,
    packets: Sequence[PacketInfo],
    out_dir: Path,
    options: PrintOptions,
    *,
    fonts: FontSet,
    date: str,
    problems: list[Problem] | None = None,
    missing: Sequence[MissingItem] = (),
) -> list[BoxResult]:
    """Write the village's box PDFs into ``out_dir``; return one result per box.

    ``date`` (ISO ``YYYY-MM-DD``) is the collation date printed on the 备考表 and written as
    the PDF dates. Warnings (oversized households) go to ``problems`` if given. Box files of
    this village numbered beyond the new box count (left from an earlier, larger build) are
    removed. ``missing``: item numbers without a packet, noted on the 备考表 of their box.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plan = plan_boxes(packets, options, problems=problems)
    notes = assign_missing(plan, missing)
    results = [
        collate_box(
            village, box_no, len(plan), box, out_dir, options, fonts=fonts, date=date,
            missing=notes[box_no - 1],
        )
        for box_no, box in enumerate(plan, start=1)
    ]
    remove_stale_boxes(village, out_dir, [r.file for r in results])
    return results
