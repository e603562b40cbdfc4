"""What the last run learned of each household, reused while nothing it was made from changed.

A rebuild after one household was edited used to read every household's record back from the
record cache, check its rules again, hash its inputs and audit it: work proportional to the
township (10 s at 5,000 households) for one packet and one box. Like ``uptodate`` for the whole
run, this module decides per household from ``stat`` alone.

At the end of a run, each household whose record is in the record cache is remembered
(:class:`KnownHousehold`): the stamps (size, times, inode) of every file in its folder as they
were before the run read them, what validation found, what planning computed (its content
hash, cover data, the files it read) and how many problems of each 严重程度 the audit found.

The next run walks the data directory once. When everything outside the household folders
(``archive.toml``, ``village.toml``, rules, templates, the folders themselves), the files outside
the data directory the last run read (templates, fonts, evidence), the options, the program
version and the day are as they were, each household whose files all have the same stamps is
loaded as a *stub*: a parked household (:func:`~archive_builder.records.loader.park`) that
carries its :class:`KnownHousehold`. Validation, planning and the audit take their results from
it; anything that needs the record itself brings it back from the record cache
(``unpark``), so a stub is never wrong, only cheaper. A household whose folder changed is read
and checked as before. Anything else (a new household folder, a touched ``village.toml``) makes
every household be read as before.

What is remembered is a function of what was read: a run killed half-way leaves the previous
file, still true of the households whose stamps match. The file is a cache (``.cache``):
removing it only costs time.
"""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import __version__
from . import uptodate

KNOWN_FILE = ".cache/households.pickle"
_FORMAT = 2  # 2: the problems remembered are worded as validation words them now


@dataclass(slots=True)  # one a household of the county
class KnownHousehold:
    """One household as the last run left it (see the module's docstring)."""

    #: the household's folder, relative to the data directory ("村文件夹/户文件夹")
    folder: str
    #: (path, stamp) of the folder and of everything below it, as walked before the run read them
    stamps: tuple[tuple[str, int], ...]
    household_id: str
    #: the record file's name in the folder, and as messages show it
    file_name: str
    display: str
    #: its entry in the record cache (``unpark`` brings the record back from there)
    cache_key: str
    #: "record", "partial" or "" (nothing usable): which of the loaded household's was set
    kind: str
    #: (ID number, name) of each member: what the rules across households read
    people: tuple[tuple[str, str], ...]
    #: the problems of reading the record, and ``Validation.household``'s (reading + own rules)
    load_problems: list[Any] = field(default_factory=list)
    problems: list[Any] = field(default_factory=list)
    #: what planning computed (``KnownPlan``), None when the household was not planned
    plan: KnownPlan | None = None
    #: the audit's open problems by 严重程度 (None when not audited)
    audit: dict[str, int] | None = None


@dataclass(frozen=True)
class KnownPlan:
    """What planning computed of an unchanged household (``build.HouseholdPlan``'s fields)."""

    item_no: int
    head: str
    members: int
    household_type: str
    content_hash: str
    formats: tuple[str, ...]
    sources: tuple[str, ...]


@dataclass
class Known:
    """The households remembered, and what their stubs may be trusted under."""

    #: digest of everything else the households' results depend on (``inputs_key``)
    key: str = ""
    #: the folders and files outside the data directory that the key covers
    trees: tuple[str, ...] = ()
    files: tuple[str, ...] = ()
    households: dict[str, KnownHousehold] = field(default_factory=dict)


#: the last ``_split``: (the walk, the folders, its result) — a run splits its walk twice
_last_split: list[Any] = [None, None, None]


def _split(walked: uptodate.Walked, folders: Iterable[str]) -> tuple[dict[str, list[tuple[str, int]]],
                                                                     list[tuple[str, int]]]:
    """Split the walk into each household folder's entries and the rest."""
    folders = set(folders)
    if _last_split[0] is walked and _last_split[1] == folders:
        return _last_split[2]  # type: ignore[no-any-return]
    _last_split[:] = [walked, folders, _split_walk(walked, folders)]
    return _last_split[2]  # type: ignore[no-any-return]


def _split_walk(walked: uptodate.Walked, folders: set[str]) -> tuple[dict[str, list[tuple[str, int]]],
                                                                    list[tuple[str, int]]]:
    groups: dict[str, list[tuple[str, int]]] = {f: [] for f in folders}
    rest = []
    for rel, stamp in walked:
        first = rel.find("/")
        second = rel.find("/", first + 1) if first >= 0 else -1
        group = groups.get(rel if second < 0 else rel[:second]) if first >= 0 else None
        if group is None:
            rest.append((rel, stamp))
        else:
            group.append((rel, stamp))
    return groups, rest


def _options_key(options: Any) -> dict[str, Any]:
    """The build options a household's results depend on (not which villages are built)."""
    return {"formats": list(options.formats) if options.formats else None, "strict": options.strict,
            "build_date": options.build_date, "template_set": options.template_set, "known": _FORMAT}


def inputs_key(data: Path, rest: list[tuple[str, int]], options: Any, trees: Iterable[str],
               files: Iterable[str]) -> str:
    """The digest of what every household's remembered results depend on besides its folder."""
    h = hashlib.sha256(str(data).encode("utf-8", "surrogatepass"))
    for rel, stamp in rest:
        h.update(f"\0{rel}\0{stamp}".encode("utf-8", "surrogatepass"))
    return uptodate.inputs_digest(h.hexdigest(), _options_key(options), trees, files)


def read(out_dir: Path) -> Known | None:
    """The last run's file, or None (missing, damaged, of another program version)."""
    try:
        with open(out_dir / KNOWN_FILE, "rb") as handle:
            # our own file in the output folder, like the record cache: a header, then the
            # households in chunks (``write``), then None
            header = _header(handle)
            if header is None:
                return None
            key, trees, files = header
            households = {}
            while (rows := pickle.load(handle)) is not None:
                for row in rows:
                    (folder, stamps, household_id, file_name, display, cache_key, kind, people, load_problems,
                     problems, plan, audit) = row
                    households[folder] = KnownHousehold(
                        folder, stamps, household_id, file_name, display, cache_key, kind, people, load_problems,
                        problems, KnownPlan(*plan) if plan else None, audit)
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError, TypeError, ValueError):
        return None
    return Known(key, trees, files, households)


def external(out_dir: Path) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The folders and files outside the data directory that the last run's file depends on
    (read from its header only)."""
    try:
        with open(out_dir / KNOWN_FILE, "rb") as handle:
            header = _header(handle)
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError, TypeError, ValueError):
        header = None
    return (tuple(header[1]), tuple(header[2])) if header is not None else ((), ())


def _header(handle: Any) -> tuple[str, Any, Any] | None:
    """(key, trees, files) of the file's header, or None when another format or program version wrote it."""
    found = pickle.load(handle)
    if not isinstance(found, tuple) or len(found) != 5 or found[:2] != (_FORMAT, __version__):
        return None
    return found[2], found[3], found[4]


def forget(out_dir: Path) -> None:
    """Remove the file: what this run found must not be remembered."""
    try:
        (out_dir / KNOWN_FILE).unlink()
    except FileNotFoundError:
        pass


def unchanged(data: Path, out_dir: Path, walked: uptodate.Walked, options: Any) -> dict[str, KnownHousehold]:
    """The remembered households whose folders are as they were, by folder (relative to ``data``).

    Empty when anything outside the household folders changed, or with ``--force``.
    """
    if options.force:
        return {}
    known = read(out_dir)
    if known is None or not known.households:
        return {}
    groups, rest = _split(walked, known.households)
    if inputs_key(data, rest, options, known.trees, known.files) != known.key:
        return {}
    return {folder: entry for folder, entry in known.households.items() if tuple(groups[folder]) == entry.stamps}


def write(out_dir: Path, data: Path, walked: uptodate.Walked, options: Any, *, trees: Iterable[str],
          files: Iterable[str], folders: Iterable[str], households: Iterable[KnownHousehold]) -> None:
    """Remember ``households`` (without their stamps yet) for the next run.

    ``walked``: the data directory as this run walked it before reading anything; ``folders``:
    every household folder of the data directory (relative to it). The households are written
    as they come, a chunk at a time: a county's are never all held twice.
    """
    from itertools import islice

    from .outdir import atomic_file

    groups, rest = _split(walked, folders)
    trees, files = tuple(sorted(set(trees))), tuple(sorted(set(files)))
    key = inputs_key(data, rest, options, trees, files)
    pending = iter(households)
    with atomic_file(out_dir / KNOWN_FILE, durable=False) as handle:  # a cache: a lost file costs time
        pickle.dump((_FORMAT, __version__, key, trees, files), handle, protocol=5)
        while chunk := list(islice(pending, 1000)):
            # plain tuples: pickled by C code (dataclasses cost 0.15 s for 5,000 households)
            rows = [(e.folder, stamps, e.household_id, e.file_name, e.display, e.cache_key, e.kind, e.people,
                     e.load_problems, e.problems, _plan_row(e.plan), e.audit)
                    for e in chunk if (stamps := tuple(groups.get(e.folder, ())))]
            pickle.dump(rows, handle, protocol=5)
        pickle.dump(None, handle, protocol=5)
    _last_split[:] = [None, None, None]  # (a long-running web app keeps no walk)


def _plan_row(plan: KnownPlan | None) -> tuple[Any, ...] | None:
    if plan is None:
        return None
    return (plan.item_no, plan.head, plan.members, plan.household_type, plan.content_hash, plan.formats,
            plan.sources)



def stub(entry: KnownHousehold, folder: Path) -> Any:
    """The loaded household of a remembered one: parked (its record stays in the record cache)
    and carrying ``entry``."""
    from ..records.loader import LoadedHousehold, ParkedPerson, ParkedRecord

    parked: Any = ParkedRecord(tuple(ParkedPerson(number, name) for number, name in entry.people))
    return LoadedHousehold(
        folder, folder / entry.file_name, entry.household_id, parked if entry.kind == "record" else None, None,
        {}, list(entry.load_problems), entry.display, entry.cache_key,
        parked if entry.kind == "partial" else None, known=entry,
    )


def remember(folder: Path, household: Any, *, problems: list[Any], plan: KnownPlan | None,
             audit: dict[str, int] | None) -> KnownHousehold | None:
    """What to remember of a household the build has parked (None when it is not parked)."""
    from ..records.loader import ParkedRecord

    value = household.record if household.record is not None else household.partial
    if household.file is None or (value is not None and not isinstance(value, ParkedRecord)):
        return None
    previous = household.known
    return KnownHousehold(
        folder=f"{folder.parent.name}/{folder.name}", stamps=(), household_id=str(household.household_id),
        file_name=household.file.name, display=household.display, cache_key=household.cache_key,
        kind="record" if household.record is not None else "partial" if household.partial is not None else "",
        people=tuple((p.id_number, p.name) for p in value.members) if value is not None else (),
        load_problems=list(previous.load_problems if previous is not None else household.problems),
        problems=list(problems), plan=plan, audit=audit,
    )
