"""The data directory is walked one way: the loader and the spreadsheet import/export see the
same villages, skip the same folders and read the same 户编号 from a record's text."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from datadir import valid_household

from archive_builder.io.spreadsheet import scan_data_dir
from archive_builder.records.layout import household_id_in
from archive_builder.records.loader import OUTPUT_MARKER, load_dataset, scan_index

RECORD_TEXTS = [
    ("household_id: H-1\n", "H-1"),
    ("household_id: 'H-2'  # 户编号\n", "H-2"),
    ('household_id: "H-3"\n', "H-3"),
    ('"household_id": "H-4"\n', "H-4"),
    ('{\n  "household_id": "H-5",\n  "group": "x"\n}\n', "H-5"),
    ('{"household_id": "H-6", "group": "x"}\n', "H-6"),
    ("group: x\n  household_id: H-7\n", "H-7"),
    ("group: x\n", None),
    ("household_id:\n", None),
]


@pytest.mark.parametrize(("text", "expected"), RECORD_TEXTS)
def test_household_id_in_record_text(text: str, expected: str | None) -> None:
    assert household_id_in(text) == expected


def test_loader_and_spreadsheet_find_the_same_households(make_data_dir: Any) -> None:
    households = [
        {**valid_household(f"41162110520100{i:02d}", serial=i), "_folder": f"f{i}"} for i in range(3)
    ]
    households.append({"_text": json.dumps(valid_household("4116211052010077", serial=7)), "_format": "json",
                       "_folder": "j"})
    households.append({"_text": "group: 第一村民组\n", "_folder": "no-id"})
    root = make_data_dir(households)
    village = root / "冯老村"
    # folders both must pass over: a village's templates, an output folder, a hidden folder
    for skipped in ("templates", "out", ".hidden"):
        (village / skipped / "h").mkdir(parents=True)
        (village / skipped / "h" / "household.yaml").write_text("household_id: SKIPPED\n", "utf-8")
    (village / "out" / OUTPUT_MARKER).write_text("", "utf-8")

    from_loader = {entry.household_id: entry.file for entry in scan_index(root)}
    from_sheet = scan_data_dir(root).households
    assert from_loader == from_sheet
    assert set(from_sheet) == {"4116211052010000", "4116211052010001", "4116211052010002",
                               "4116211052010077", "no-id"}
    loaded = {h.folder.name for _, h in load_dataset(root).households()}
    assert loaded == {path.parent.name for path in from_sheet.values()}


def test_spreadsheet_export_skips_what_the_loader_skips(make_data_dir: Any, tmp_path: Path) -> None:
    from archive_builder.io.sheetexport import _iter_data

    root = make_data_dir([valid_household("4116211052010001")])
    (root / "冯老村" / "templates" / "h").mkdir(parents=True)
    (root / "冯老村" / "templates" / "h" / "household.yaml").write_text("household_id: SKIPPED\n", "utf-8")
    assert [record["household_id"] for _, record in _iter_data(root)] == ["4116211052010001"]
