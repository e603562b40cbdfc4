"""What the reports share: loading the chosen villages and reading a template set's TOML."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import TemplateError
from ..problems import Problem, warning
from ..records.loader import Dataset, LoadedHousehold, Village, load_dataset, require_usable_villages, select_villages
from ..records.models import Household

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef,import-not-found,unused-ignore]


@dataclass(frozen=True)
class LoadedVillage:
    """One village with the records that could be read, and a problem for each that could not."""

    village: Village
    records: tuple[Household, ...]
    skipped: tuple[Problem, ...]


def _unreadable(village: Village, household: LoadedHousehold) -> Problem:
    return warning(
        f"户 {household.household_id} 的数据有错误，未计入",
        "请运行 archive-builder validate 查看并改正该户的数据",
        file=household.display or None,
        village=village.config.name,
        household_id=household.household_id,
    )


def load_villages(data_dir: Path, villages: Iterable[str] = ()) -> tuple[Dataset, list[LoadedVillage]]:
    """Return the data directory and its chosen villages with their readable records."""
    dataset = load_dataset(Path(data_dir), settings_required=True)  # archive.toml's values are printed
    chosen = select_villages(dataset.villages, villages)
    require_usable_villages(dataset, chosen, everything=not any(v.strip() for v in villages))
    loaded = []
    for village in chosen:
        records: list[Household] = []
        skipped: list[Problem] = []
        for household in sorted(village.households, key=lambda h: str(h.household_id)):
            if household.record is None:
                skipped.append(_unreadable(village, household))
            else:
                records.append(household.record)
        loaded.append(LoadedVillage(village, tuple(records), tuple(skipped)))
    return dataset, loaded


def template_file(dataset: Dataset, village: Village, relpath: str) -> Path:
    """Return the template-set file ``relpath`` for ``village`` (village → data dir → set)."""
    from ..archive.packet import template_set

    tset = template_set(dataset.config.templates.set, dataset.root.resolve(), village.path.resolve())
    return tset.find(relpath)


def read_template_toml(path: Path) -> dict[str, Any]:
    """Return a template set's TOML file; a syntax error is a TemplateError naming the file."""
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise TemplateError(f"模板文件 {path} 有语法错误：{exc}", hint="请按 TOML 语法修改该文件") from exc
    except OSError as exc:
        from ..errors import os_reason

        raise TemplateError(f"无法读取模板文件 {path}：{os_reason(exc)}") from exc


def group_order(village: Village, records: Iterable[Household]) -> list[str]:
    """Return the village's 村民组 in village.toml order, then any other group the records name."""
    groups = list(dict.fromkeys(village.config.groups))
    extra = sorted({r.group or NO_GROUP for r in records} - set(groups), key=lambda g: (g == NO_GROUP, g))
    return groups + extra


NO_GROUP = "未填村民组"


def group_of(record: Household) -> str:
    return record.group or NO_GROUP


def as_mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise TemplateError(f"模板文件 {where} 格式不对：应为「名称 = 取值」的表")
    return value
