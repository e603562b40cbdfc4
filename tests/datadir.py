"""Build small data directories in code (record-format.md §1–4) for tests.

``write_data_dir`` writes archive.toml, village folders and household folders from plain
dicts; ``valid_household`` gives a complete record that validates clean, to mutate per test.
Used through the ``make_data_dir`` fixture of ``conftest.py``.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import yaml

from archive_builder.records.idnumber import check_char

ARCHIVE_TOML = """[archive]
county = "扶沟县"
township = "大李庄乡"
year = 2025
fonds_no = ""
retention = "永久"
income_threshold = 8050.0

[print]
paper = "A4"
duplex = true
sheets_per_box = 200

[templates]
set = "default"
"""

DEFAULT_VILLAGE = {
    "folder": "冯老村",
    "code": "411621105201",
    "name": "冯老村",
    "groups": ["第一村民组", "第二村民组", "第三村民组"],
}


def make_id(birth: str = "19850312", seq: str = "003", region: str = "411621") -> str:
    """Return a valid 18-character ID number (GB 11643 check character computed)."""
    first17 = f"{region}{birth}{seq}"
    return first17 + check_char(first17)


def valid_household(
    household_id: str = "4116211052010001", serial: int = 0
) -> dict[str, Any]:
    """Return a complete, valid household record; ``serial`` keeps ID numbers unique."""
    s = f"{serial % 100:02d}"
    return {
        "household_id": household_id,
        "group": "第一村民组",
        "address": "冯老村第一村民组12号",
        "phone": "13800138000",
        "household_type": "脱贫户",
        "poverty_attribute": "一般贫困户",
        "poverty_status": "已脱贫(享受政策)",
        "identified_on": "2016-03",
        "exit_year": 2019,
        "causes": {"main": "因病", "others": ["缺劳动力"], "note": "户主患慢性病"},
        "members": [
            {
                "name": "张建国",
                "id_number": make_id("19650101", f"{s}1"),
                "relation": "户主",
                "sex": "男",
                "health": ["长期慢性病"],
                "labour": "弱劳动力或半劳动力",
                "insured": ["居民医保"],
            },
            {
                "name": "李秀英",
                "id_number": make_id("19670202", f"{s}2"),
                "relation": "配偶",
                "sex": "女",
            },
            {
                "name": "张堃",
                "id_number": make_id("20100303", f"{s}3"),
                "relation": "之子",
                "birth_date": "2010-03-03",
                "student_status": "七年级",
            },
        ],
        "helpers": [
            {
                "name": "王强",
                "unit": "扶沟县农业农村局",
                "unit_level": "县直",
                "start": "2016-05-01",
            }
        ],
        "procedure": [
            {"kind": "申请", "date": "2016-03-01"},
            {
                "kind": "公示",
                "date": "2016-03-10",
                "date_to": "2016-03-17",
                "evidence": ["公示照片.jpg"],
            },
        ],
        "measures": [
            {
                "year": 2023,
                "category": "产业帮扶",
                "item": "企业带贫分红",
                "amount": 1500,
                "date": "2023-12-20",
                "evidence": [{"file": "佐证/分红凭证.pdf", "type": "分红凭证"}],
            },
        ],
        "income": [
            {
                "year": 2024,
                "wage": {"务工": 12000},
                "business": {"种植": 3000.5},
                "transfer": {"养老金": 1560},
                "costs": {"种植": 1200},
            },
        ],
        "visits": [
            {"date": "2024-05-06", "visitor": "王强", "content": "了解务工情况"}
        ],
        "evidence": [
            "户口簿.jpg",
            {
                "file": "佐证/银行流水.pdf",
                "type": "银行流水",
                "title": "2024 年银行流水",
            },
        ],
    }


#: the evidence files ``valid_household`` names
VALID_FILES = ("公示照片.jpg", "佐证/分红凭证.pdf", "户口簿.jpg", "佐证/银行流水.pdf")


def write_household(
    folder: Path, record: Any, *, fmt: str = "yaml", files: Any = VALID_FILES
) -> Path:
    """Write one household folder; ``record`` may be a dict or the literal file text."""
    folder.mkdir(parents=True, exist_ok=True)
    name = "household.json" if fmt == "json" else f"household.{fmt}"
    path = folder / name
    if isinstance(record, (str, bytes)):
        data = record.encode("utf-8") if isinstance(record, str) else record
        path.write_bytes(data)
    elif fmt == "json":
        path.write_text(
            json.dumps(record, ensure_ascii=False, indent=2), encoding="utf-8"
        )
    else:
        path.write_text(
            yaml.safe_dump(record, allow_unicode=True, sort_keys=False),
            encoding="utf-8",
        )
    for relative in files or ():
        target = folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(
            b"%PDF-1.4 test\n" if relative.endswith(".pdf") else b"\xff\xd8\xff test"
        )
    return path


def write_data_dir(
    root: Path,
    households: list[dict[str, Any]] | None = None,
    *,
    villages: list[dict[str, Any]] | None = None,
    archive: str = ARCHIVE_TOML,
) -> Path:
    """Write a data directory and return its path.

    Each household dict is a record; optional private keys steer the writing:
    ``_village`` (village folder, default the first village), ``_folder`` (default the
    household_id), ``_format`` (yaml | yml | json), ``_text`` (literal file content instead
    of the record), ``_files`` (evidence files to create, default ``VALID_FILES``).
    """
    root.mkdir(parents=True, exist_ok=True)
    (root / "archive.toml").write_text(archive, encoding="utf-8")
    villages = villages if villages is not None else [DEFAULT_VILLAGE]
    for village in villages:
        folder = root / village["folder"]
        folder.mkdir(exist_ok=True)
        if "toml" in village:
            (folder / "village.toml").write_text(village["toml"], encoding="utf-8")
            continue
        groups = ", ".join(
            json.dumps(g, ensure_ascii=False) for g in village.get("groups", [])
        )
        (folder / "village.toml").write_text(
            f'code = "{village["code"]}"\nname = "{village["name"]}"\ngroups = [{groups}]\n',
            encoding="utf-8",
        )
    for index, given in enumerate(
        households if households is not None else [valid_household()]
    ):
        record = {k: v for k, v in given.items() if not k.startswith("_")}
        village_folder = given.get("_village", villages[0]["folder"])
        folder_name = given.get("_folder") or str(
            record.get("household_id", f"户{index}")
        )
        write_household(
            root / village_folder / folder_name,
            given.get("_text", record),
            fmt=given.get("_format", "yaml"),
            files=given.get("_files", VALID_FILES),
        )
    return root


def mutate(record: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """Return a deep copy of ``record`` with dotted-path changes (``members.0.sex="女"``).

    A value of ``DELETE`` removes the key.
    """
    result = copy.deepcopy(record)
    for dotted, value in changes.items():
        parts = dotted.split("__")
        target: Any = result
        for part in parts[:-1]:
            target = target[int(part)] if part.isdigit() else target[part]
        last: Any = int(parts[-1]) if parts[-1].isdigit() else parts[-1]
        if value is DELETE:
            del target[last]
        else:
            target[last] = value
    return result


DELETE = object()


SAMPLE = Path(__file__).resolve().parents[1] / "households_sample"


def sample_household(root: Path, village: str, household: str) -> Path:
    """A copy of the sample township reduced to one household: archive.toml, the village's
    village.toml and the household's folder, under ``root``."""
    root.mkdir()
    shutil.copy(SAMPLE / "archive.toml", root / "archive.toml")
    (root / village).mkdir()
    shutil.copy(SAMPLE / village / "village.toml", root / village / "village.toml")
    shutil.copytree(SAMPLE / village / household, root / village / household)
    return root
