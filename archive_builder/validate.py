"""Validation rules (record-format.md §4–5) → problems, all of them, never just the first.

``validate_dataset`` returns every problem of a loaded data directory (``Validation`` does the
same a household at a time, for the build); ``check_data_dir`` is
the one core function behind ``archive-builder validate``; ``format_report`` is its text form.
Rules warn or err without knowing about ``--strict``: strict mode turns every warning into an
error at the end (``problems.escalate``).

The rules of one household are in ``household_rules``; this module runs them and adds the
rules across households (village codes, duplicate ID numbers and 户编号).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from .household_rules import _HouseholdRules
from .problems import Problem, count, error, escalate
from .records.cache import RecordCache
from .records.loader import Dataset, LoadedHousehold, Village, load_dataset, real_path
from .records.messages import repeated_id_number
from .records.models import Household


@dataclass(frozen=True)
class Summary:
    """The counts printed under a validation report."""

    villages: int
    households: int
    errors: int
    warnings: int

    def line(self) -> str:
        """Return ``村数 3 · 户数 48 · 错误 0 · 警告 2``."""
        return f"村数 {self.villages} · 户数 {self.households} · 错误 {self.errors} · 警告 {self.warnings}"

    def to_json(self) -> dict[str, int]:
        return {
            "villages": self.villages,
            "households": self.households,
            "errors": self.errors,
            "warnings": self.warnings,
        }


@dataclass(frozen=True)
class Report:
    """What ``archive-builder validate`` prints."""

    problems: list[Problem]
    summary: Summary

    def to_json(self) -> dict[str, Any]:
        return {
            "problems": [p.to_json() for p in self.problems],
            "summary": self.summary.to_json(),
        }

    def format_text(self, *, quiet: bool = False) -> str:
        """Return the Chinese report ``validate`` prints (``quiet``: errors only)."""
        return format_report(self, quiet=quiet)


def check_data_dir(
    data_dir: Path, *, strict: bool = False, today: date | None = None
) -> Report:
    """Return the validation report of ``data_dir``; raise DataDirError if it is unusable.

    The caches of the last build into the configured output folder are read (never written):
    a record or rule result is reused only for byte-identical inputs, so re-checking a
    township after a build reads and checks only what changed.
    """
    records, rules = _build_caches(data_dir)
    dataset = load_dataset(data_dir, cache=records)
    problems = validate_dataset(dataset, strict=strict, today=today, cache=rules)
    errors, warnings = count(problems)
    households = sum(len(v.households) for v in dataset.villages)
    return Report(
        problems, Summary(len(dataset.villages), households, errors, warnings)
    )


def _build_caches(data_dir: Path) -> tuple[RecordCache | None, RecordCache | None]:
    """The record and rule caches a build left in the configured output folder, if any."""
    from .archive.outdir import configured_output

    try:
        folder = configured_output(Path(data_dir)) / ".cache"
    except Exception:  # noqa: BLE001 - an unusable archive.toml is reported by the load itself
        return None, None
    if not (folder / "records.pickle").is_file():
        return None, None
    return RecordCache(folder / "records.pickle"), RecordCache(folder / "rules.pickle")


def validate_dataset(
    dataset: Dataset,
    *,
    strict: bool = False,
    today: date | None = None,
    cache: RecordCache | None = None,
) -> list[Problem]:
    """Return every problem of ``dataset`` (warnings become errors when ``strict``).

    With ``cache``, a household's own rules are not run again when nothing they read changed.
    """
    return Validation(dataset, strict=strict, today=today, cache=cache).problems()


class Validation:
    """``validate_dataset`` a household at a time: the build validates a household just before
    it plans it, so rendering starts without waiting for the whole township to be checked.

    The rules across households (village codes, repeated 户编号 and ID numbers) run at once;
    ``household`` runs one household's own rules (once); ``problems`` returns the same list,
    in the same order, as ``validate_dataset``.
    """

    def __init__(
        self,
        dataset: Dataset,
        *,
        strict: bool = False,
        today: date | None = None,
        cache: RecordCache | None = None,
    ) -> None:
        self.dataset = dataset
        self.strict = strict
        self.today = today or date.today()
        self.cache = cache
        self._archive_json = dataset.config.model_dump_json()
        self.head = [*dataset.problems, *_village_codes(dataset)]
        self.tail = _duplicates(dataset)
        self._households: dict[int, list[Problem]] = {}

    def dataset_problems(self) -> list[Problem]:
        """The problems found across households (and of the data directory itself)."""
        found = [*self.head, *self.tail]
        return escalate(found) if self.strict else found

    def household(self, village: Village, household: LoadedHousehold) -> list[Problem]:
        """The problems of one household: reading its record, and its own rules."""
        found = self._households.get(id(household))
        if found is None and household.known is not None:  # a build's stub: as the last run found
            found = self._households[id(household)] = list(household.known.problems)
        if found is None:
            found = [*household.problems, *self._rules(village, household)]
            if self.strict:
                found = escalate(found)
            self._households[id(household)] = found
        return found

    def _rules(self, village: Village, household: LoadedHousehold) -> list[Problem]:
        record = household.record or household.partial
        if record is None:
            return []
        cache, key = self.cache, None
        if cache is not None and household.cache_key:
            key = cache.key(
                "rules", household.cache_key, village.config.model_dump_json(), self._archive_json,
                self.today.isoformat(), _evidence_state(household, record),
            )
            cached = cache.get(key)
            if cached is not None:
                return list(cached)
        found = _HouseholdRules(self.dataset, village, household, record, self.today).run()
        if key is not None and cache is not None:
            cache.put(key, found)
        return found

    def problems(self) -> list[Problem]:
        """Every problem, in ``validate_dataset``'s order (households not checked yet are now)."""
        problems = list(self.head)
        for village, household in self.dataset.households():
            problems.extend(self.household(village, household))
        problems.extend(self.tail)
        return escalate(problems) if self.strict else problems


def _evidence_state(household: LoadedHousehold, record: Household) -> str:
    """Return what the evidence rules see of the filesystem: each path's real target and existence."""
    state = []
    for _, ref in record.evidence_refs():
        path = household.folder / str(ref.file)
        try:
            state.append(f"{ref.file}|{real_path(household.folder, str(ref.file))}|{path.exists()}")
        except (OSError, ValueError):  # unusable path: the evidence rule reports it
            state.append(f"{ref.file}|?")
    return "\n".join(state)


# --- dataset-wide rules --------------------------------------------------------------------


def _village_codes(dataset: Dataset) -> list[Problem]:
    seen: dict[str, Village] = {}
    problems = []
    for village in dataset.villages:
        code = village.config.code
        if code and code in seen:
            first = seen[code]
            problems.append(
                error(
                    f"村代码 {code} 重复：{first.display}（{first.config.name}）中也使用了这个代码",
                    "每个村的统计用区划代码不同，请核对后改正",
                    file=village.display,
                    village=village.config.name,
                    field="code",
                )
            )
        seen.setdefault(code, village)
    return problems


def repeated(dataset: Dataset) -> bool:
    """Whether a 户编号 or an ID number is used twice (reads only what a parked record keeps)."""
    households: set[str] = set()
    people: set[str] = set()
    for _, household in dataset.households():
        if household.household_id in households:
            return True
        households.add(household.household_id)
        record = household.record or household.partial
        for member in record.members if record else ():
            if len(member.id_number) == 18:
                if member.id_number in people:
                    return True
                people.add(member.id_number)
    return False


def _where(dataset: Dataset, village: Village, household: LoadedHousehold) -> str:
    return f"{village.config.name} 户 {household.household_id}（{household.display}）"


def _duplicates(dataset: Dataset) -> list[Problem]:
    """Return the errors of repeated 户编号 and ID numbers: each household holding one gets an
    error naming the others (a build must make none of them: any may hold the wrong number).
    Within one household, the later member's entry names the earlier one."""
    problems = []
    households: dict[str, list[tuple[Village, LoadedHousehold]]] = {}
    people: dict[str, list[tuple[Village, LoadedHousehold, int, str]]] = {}
    for village, household in dataset.households():
        households.setdefault(household.household_id, []).append((village, household))
        record = household.record or household.partial
        for index, member in enumerate(record.members if record else []):
            if len(member.id_number) == 18:
                people.setdefault(member.id_number, []).append((village, household, index, member.name))
    for village, household in dataset.households():
        hid = household.household_id
        holders = households[hid]
        if len(holders) > 1:
            places = [_where(dataset, v, h) for v, h in holders if h is not household]
            line, column = household.position("household_id")
            problems.append(
                error(
                    f"户编号 {hid} 重复：{'、'.join(places)}也使用了这个户编号",
                    "户编号在整个数据目录中必须唯一，请核对后改正其中一户",
                    file=household.display,
                    line=line,
                    column=column,
                    village=village.config.name,
                    household_id=hid,
                    field="household_id",
                )
            )
        record = household.record or household.partial
        for index, member in enumerate(record.members if record else []):
            number = member.id_number
            holders_of = people.get(number, ()) if len(number) == 18 else ()
            if len(holders_of) < 2:
                continue
            others: list[tuple[str, int, str]] = [
                ("" if h is household else _where(dataset, v, h), i, name)
                for v, h, i, name in holders_of
                if h is not household or i < index
            ]
            if not others:  # the first of its household, and no other household has it
                continue
            message, hint = repeated_id_number(number, member.name, others)
            path = f"members[{index}].id_number"
            line, column = household.position(path)
            problems.append(
                error(
                    message,
                    hint,
                    file=household.display,
                    line=line,
                    column=column,
                    village=village.config.name,
                    household_id=hid,
                    field=path,
                )
            )
    return problems


# --- text report ---------------------------------------------------------------------------


def format_report(report: Report, *, quiet: bool = False) -> str:
    """Return problems grouped by village, then household, and the summary line.

    ``quiet`` leaves warnings out (the summary still counts them).
    """
    shown = [p for p in report.problems if p.is_error] if quiet else report.problems
    villages: dict[str, dict[str, list[Problem]]] = {}
    for problem in shown:
        households = villages.setdefault(problem.village or "", {})
        households.setdefault(problem.household_id or "", []).append(problem)
    lines: list[str] = []
    for village, households in villages.items():
        lines.append(f"【{village}】" if village else "【数据目录】")
        for household, problems in households.items():
            indent = "  "
            if household:
                lines.append(f"  户 {household}")
                indent = "    "
            for problem in problems:
                lines.extend(indent + text for text in problem.format().splitlines())
    lines.append(report.summary.line())
    return "\n".join(lines)
