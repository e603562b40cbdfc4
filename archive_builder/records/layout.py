"""Where records are in a data directory: the one walker and the one 户编号 scan.

A data directory holds one folder per village (with ``village.toml``) and in it one folder
per household with its record file. The loader, the spreadsheet import/export and the
validator all walk it with these functions, so they skip the same folders and find the
same record files and the same 户编号.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

#: the names a household's record file may have, in the order they are looked for
HOUSEHOLD_FILES = ("household.yaml", "household.yml", "household.json")
#: the file that marks an output folder placed inside the data directory
OUTPUT_MARKER = ".archive-builder-output"
#: folders of a data directory or village that hold no households
SKIPPED_FOLDERS = frozenset({"templates", "rules"})  # a village's own templates and audit rules

#: the ``household_id`` line of a YAML record, or its key in a JSON one, found without parsing
HOUSEHOLD_ID_LINE = re.compile(r"""^[\s{]*"?household_id"?\s*:\s*["']?([^"',}\s#]+)""", re.MULTILINE)


def household_id_in(text: str) -> str | None:
    """Return the 户编号 written in a record file's text (no YAML or JSON parsing), or None."""
    match = HOUSEHOLD_ID_LINE.search(text)
    return match.group(1) if match else None


def is_skipped(folder: Path) -> bool:
    """True for folders that hold no households: hidden ones, templates, rules, output."""
    return folder.name.startswith(".") or folder.name in SKIPPED_FOLDERS or (folder / OUTPUT_MARKER).exists()


def subfolders(folder: Path) -> list[Path]:
    """The folders in ``folder`` that may hold villages or households, sorted; [] if unreadable."""
    try:
        with os.scandir(folder) as entries:  # the entry's type comes with it: no stat a folder
            found = [folder / entry.name for entry in entries if entry.is_dir()]
    except OSError:
        return []
    return sorted(p for p in found if not is_skipped(p))


def record_files(folder: Path) -> list[Path]:
    """The record files present in a household folder, in the order of ``HOUSEHOLD_FILES``."""
    return [folder / name for name in HOUSEHOLD_FILES if (folder / name).is_file()]


def record_file(folder: Path) -> Path | None:
    """The household folder's record file (the first of ``HOUSEHOLD_FILES`` present), or None."""
    found = record_files(folder)
    return found[0] if found else None
