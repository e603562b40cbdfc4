"""From grouped sheet rows to record files: building, merging and writing records.

``sheet_record`` turns one household's rows into a record; ``merge_record`` lays it over a
record already in the data directory (keeping what the sheet does not carry);
``scan_data_dir`` finds the villages and records an import may update; ``dump_record``,
``archive_toml`` and ``village_toml`` give the text of the files an import writes.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..archive.outdir import safe_file_name
from ..errors import os_reason
from ..records.layout import household_id_in, record_file, subfolders
from ..records.loader import load_yaml
from ..records.models import Causes, Household, Living, Member, Monitor
from .sheetcolumns import BY_KEY

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef,import-not-found,unused-ignore]

DEFAULT_INCOME_THRESHOLD = 8050.0


# --- grouping rows into households ------------------------------------------------------------


@dataclass
class _Row:
    sheet: str
    number: int  # spreadsheet row number, 1-based
    values: dict[str, Any]  # column key → parsed value (blank cells absent)
    headers: dict[str, str]  # column key → header as written in the sheet
    positions: dict[str, int]  # column key → 1-based column index

    def where(self) -> str:
        return f"工作表「{self.sheet}」第 {self.number} 行"


@dataclass
class _Household:
    household_id: str
    rows: list[_Row] = field(default_factory=list)
    fatal: bool = False
    fields: dict[str, tuple[Any, _Row]] = field(default_factory=dict)


# --- building records ----------------------------------------------------------------------

HOUSEHOLD_KEYS = tuple(Household.model_fields)
ORDER = {
    "": HOUSEHOLD_KEYS,
    "monitor": tuple(Monitor.model_fields),
    "causes": tuple(Causes.model_fields),
    "living": tuple(Living.model_fields),
    "member": tuple(Member.model_fields),
}
MEMBER_FIELDS = ("name", "id_number", "relation", "sex", "birth_date", "ethnicity", "education",
                 "student_status", "health", "labour", "work_place", "work_months", "dibao", "tekun")


def _ordered(data: dict[str, Any], order: tuple[str, ...]) -> dict[str, Any]:
    known = {key: data[key] for key in order if key in data}
    known.update({key: value for key, value in data.items() if key not in known})
    return known


def sheet_record(household: _Household) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, bool]]:
    """Return (household-level fields, members, 大病保险 per ID) carried by the sheet's rows."""
    top: dict[str, Any] = {"household_id": household.household_id}
    for key, (value, _row) in household.fields.items():
        column = BY_KEY[key]
        if column.level != "household" or key == "size":
            continue
        if "." in key:
            parent, child = key.split(".", 1)
            top.setdefault(parent, {})[child] = value
        else:
            top[key] = value
    members: list[dict[str, Any]] = []
    major: dict[str, bool] = {}
    for row in household.rows:
        member = {key: row.values[key] for key in MEMBER_FIELDS if key in row.values}
        if "insured_major" in row.values and "id_number" in member:
            major[member["id_number"]] = row.values["insured_major"]
        members.append(member)
    return top, members, major


def merge_record(existing: dict[str, Any] | None, household: _Household) -> dict[str, Any]:
    """Return the record the sheet gives, laid over ``existing``: sheet fields replace, others kept.

    A blank cell carries nothing, so it keeps the existing value. Members are matched by ID
    number; members missing from the sheet are dropped (the sheet lists the whole family).
    """
    top, members, major = sheet_record(household)
    record = copy.deepcopy(existing) if existing else {}
    for key, value in top.items():
        if isinstance(value, dict):
            merged = dict(record.get(key) or {})
            merged.update(value)
            record[key] = _ordered(merged, ORDER[key])
        else:
            record[key] = value
    old = {str(m.get("id_number")): m for m in (record.get("members") or []) if isinstance(m, dict)}
    new_members = []
    for member in members:
        merged = dict(old.get(member.get("id_number", ""), {}))
        merged.update(member)
        if member.get("id_number") in major:
            insured = [item for item in (merged.get("insured") or []) if item != "大病保险"]
            if major[member["id_number"]]:
                # keep the usual order 居民医保, 大病保险, 居民养老
                position = 1 if insured[:1] in (["居民医保"], ["职工医保"]) else len(insured)
                insured.insert(position, "大病保险")
            if insured:
                merged["insured"] = insured
            else:
                merged.pop("insured", None)
        new_members.append(_ordered(merged, ORDER["member"]))
    record["members"] = new_members
    return _ordered(record, HOUSEHOLD_KEYS)


def check_record(record: dict[str, Any]) -> list[tuple[str, str]]:
    """Return (message, hint) for what would make the record unusable (missing required fields)."""
    found = []
    if not record.get("household_type"):
        found.append(("没有「户类型」", "请在该户各行填写户类型，例如 脱贫户、一般农户、防止返贫致贫对象"))
    if not (record.get("causes") or {}).get("main"):
        found.append(("没有「致贫原因1」", "请在该户各行填写主要致贫原因，例如 因病、因残、缺劳动力"))
    monitor = record.get("monitor")
    if monitor and not monitor.get("category"):
        found.append(("有风险信息但没有「易返贫致贫户(监测对象)类型」",
                      "请填写监测对象类型，例如 脱贫不稳定户、边缘易致贫户、突发严重困难户"))
    heads = [m for m in record.get("members", []) if m.get("relation") == "户主"]
    if len(heads) != 1:
        found.append((f"户主有 {len(heads)} 人，应恰好 1 人", "请核对各成员的「与户主关系」，每户只能有一位户主"))
    for member in record.get("members", []):
        for key, label in (("name", "姓名"), ("id_number", "证件号码"), ("relation", "与户主关系")):
            if not member.get(key):
                found.append((f"有成员没有「{label}」", f"请为每位成员填写{label}"))
    return found


# --- the data directory ------------------------------------------------------------------

def _why(exc: BaseException) -> str:
    """A file that could not be read: the system's reason, or that its content is malformed."""
    return os_reason(exc) if isinstance(exc, OSError) else "文件格式有误"


def _folder_name(name: str) -> str:
    return safe_file_name(name)


@dataclass
class _Existing:
    villages: dict[str, Path] = field(default_factory=dict)  # village name → folder
    households: dict[str, Path] = field(default_factory=dict)  # household_id → record file


def scan_data_dir(data_dir: Path) -> _Existing:
    """Return the villages (by name) and household records (by 户编号) already in ``data_dir``."""
    found = _Existing()
    if not data_dir.is_dir():
        return found
    for folder in subfolders(data_dir):
        try:
            name = _village_name(folder)
        except (OSError, ValueError):
            name = folder.name
        found.villages.setdefault(name, folder)
        found.villages.setdefault(folder.name, folder)
        for sub in subfolders(folder):
            path = record_file(sub)
            if path is not None:
                found.households.setdefault(_household_id_of(path) or sub.name, path)
    return found


def _village_name(folder: Path) -> str:
    """The village's name from its ``village.toml``, else the folder's name."""
    toml_path = folder / "village.toml"
    if toml_path.is_file():
        return str(tomllib.loads(toml_path.read_text("utf-8-sig")).get("name") or folder.name)
    return folder.name


def _household_id_of(path: Path) -> str | None:
    try:
        return household_id_in(path.read_text("utf-8-sig"))
    except (OSError, UnicodeDecodeError):
        return None


def _load_record(path: Path) -> dict[str, Any]:
    text = path.read_text("utf-8-sig")
    data = json.loads(text) if path.suffix == ".json" else load_yaml(text)
    if not isinstance(data, dict):
        raise ValueError("not a mapping")  # noqa: TRY004 - reported like a syntax error
    return data


def update_wanted(old: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    """What ``yamlwrite.merge`` must change in ``old``'s file to make it say ``record``.

    Only the keys whose value differs; members continue the file's member of the same ID
    number (``ORIGIN``), so their comments and untouched values stay as written.
    """
    from ..records.yamlwrite import DELETE, ORIGIN

    wanted = {key: value for key, value in record.items() if key != "members" and old.get(key) != value}
    found = old.get("members")
    old_members: list[Any] = found if isinstance(found, list) else []
    positions: dict[str, int] = {}
    for index, member in enumerate(old_members):
        if isinstance(member, dict) and member.get("id_number"):
            positions.setdefault(str(member["id_number"]), index)
    members = []
    for member in record.get("members") or []:
        item = dict(member)
        origin = positions.get(str(member.get("id_number")))
        if origin is not None:
            item[ORIGIN] = origin
            item.update({key: DELETE for key in old_members[origin] if key not in member})
        members.append(item)
    wanted["members"] = members
    return wanted


def update_file(path: Path, raw: bytes, old: dict[str, Any], record: dict[str, Any]) -> bytes | None:
    """The bytes of ``path`` (holding ``raw``, which loads as ``old``) changed to say ``record``.

    Round-trip YAML (``records.yamlwrite``, as the web edit form): comments, flow style,
    quoting, BOM and line endings of what did not change stay as they were. None when the
    file cannot be merged that way (the caller then writes the whole record).
    """
    from ..records import yamlwrite

    if path.suffix.lower() == ".json":
        return None
    try:
        document = yamlwrite.parse(path, raw)
        yamlwrite.merge(document.doc, update_wanted(old, record))
        data = yamlwrite.render(document)
        merged = load_yaml(yamlwrite.decode(data)[0])
    except Exception:  # noqa: BLE001 - anything odd: the caller rewrites the whole record
        return None
    return data if merged == load_yaml(dump_record(record)) else None


def dump_record(record: dict[str, Any], suffix: str = ".yaml") -> str:
    """Return the record as the text of household.yaml (or .json), keys in record order."""
    if suffix == ".json":
        return json.dumps(record, ensure_ascii=False, indent=2, default=str) + "\n"
    # libyaml writes much faster, but escapes characters beyond the BMP (周𠮷祥 would read
    # "周\U00020BB7祥" in the file a secretary edits): those records go through PyYAML's emitter
    dumper = yaml.SafeDumper if _FAST_DUMPER is None or _beyond_bmp(record) else _FAST_DUMPER
    return yaml.dump(record, Dumper=dumper, allow_unicode=True, sort_keys=False, default_flow_style=False,
                     width=1000)


_FAST_DUMPER: Any = getattr(yaml, "CSafeDumper", None)


def _beyond_bmp(value: Any) -> bool:
    if isinstance(value, str):
        return not all(ord(ch) <= 0xFFFF for ch in value)
    if isinstance(value, dict):
        return any(_beyond_bmp(k) or _beyond_bmp(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_beyond_bmp(v) for v in value)
    return False


def _toml_text(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def archive_toml(county: str, township: str, year: int) -> str:
    """Return a new archive.toml with the defaults of record-format §2."""
    return (
        "# 由 archive-builder import 根据表格生成，请核对。\n"
        "[archive]\n"
        f"county = {_toml_text(county)}\n"
        f"township = {_toml_text(township)}\n"
        f"year = {year}\n"
        'fonds_no = ""\n'
        'retention = "永久"\n'
        f"income_threshold = {DEFAULT_INCOME_THRESHOLD}  # 默认值，请按本省当年监测收入标准修改\n"
        "\n[print]\npaper = \"A4\"\nduplex = true\nsheets_per_box = 200\n"
        "\n[templates]\nset = \"default\"\n"
    )


def village_toml(code: str, name: str, groups: list[str]) -> str:
    """Return a new village.toml."""
    group_text = ", ".join(_toml_text(g) for g in groups)
    comment = "  # 由户编号前 12 位推得，请核对" if code else "  # 请填写 12 位统计用区划代码"
    return (
        "# 由 archive-builder import 根据表格生成，请核对。\n"
        f"code = {_toml_text(code)}{comment}\n"
        f"name = {_toml_text(name)}\n"
        f"groups = [{group_text}]\n"
    )
