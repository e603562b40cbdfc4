"""Where each version's packet sits in a box of the build output: the archive page numbers
(编页) stamped on its pages there, so that ``diff`` names a page as it is printed in the box
("第 3 页（档案第 57 页）"), version by version.

Boxes number every packet page but the separator sheets consecutively from 1 (see
archive/collate.py); a box records each packet's first and last number, from which, with the
packet's separator sheets, every page's number follows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .store import Placement, VersionStore


def packet_numbers(first_no: int, pages: int, separators: Iterable[int]) -> tuple[int, ...]:
    """The archive number of each packet page (0 on separator sheets), numbering from ``first_no``."""
    skip = set(separators)
    numbers, number = [], first_no
    for page in range(pages):
        if page in skip:
            numbers.append(0)
        else:
            numbers.append(number)
            number += 1
    return tuple(numbers)


def record_box_pages(store: VersionStore, households: Iterable[tuple[str, str, Mapping[str, Any] | None]],
                     boxes: Mapping[str, tuple[Sequence[Mapping[str, Any]], str]]) -> int:
    """Record in ``store`` where each household's packet sits in the village boxes of a build.

    ``households``: (household id, content hash, the build's packet result or None);
    ``boxes``: village code -> (its boxes as recorded in the build state, spine file).
    Returns the placements added (0 when nothing moved).
    """
    results = {hid: (content_hash, result) for hid, content_hash, result in households if result is not None}
    placed: list[tuple[str, str, Placement]] = []
    for village_boxes, _ in boxes.values():
        for box in village_boxes:
            for hid, first_no, last_no in box.get("numbers", ()):
                if hid not in results or not first_no:
                    continue
                content_hash, result = results[hid]
                numbers = packet_numbers(first_no, result["pages"], result.get("separators", ()))
                if max(numbers, default=0) != last_no:  # another layout than collation's: do not guess
                    continue
                placed.append((hid, content_hash, Placement(box["file"], numbers)))
    return store.record_placements(placed)
