"""The audit: every rule over every household of a data directory → the 问题台账 rows.

``run_audit`` is the core of ``archive-builder audit``; it never prints. Each problem has a
stable key (rule id + 户编号 + the member / measure / year / step it is about), so the next
round's ledger can be matched against this one (``previous``): what clerks typed in 整改状态
and 备注 is kept, and each problem is marked 新增, 仍未整改 or 已整改 (gone from the data).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import hashlib
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ExitCode
from .engine import Auditor, Facts, RuleRunError
from .rules import SEVERITIES, RuleSet, load_rule_set, rule_files

#: the ledger's columns, in order (the first 13 are the county's form; the rest keep rounds apart)
COLUMNS = ("序号", "村", "村民组", "户编号", "户主", "问题类别", "问题描述", "依据", "严重程度", "整改建议",
           "帮扶责任人", "整改时限", "整改状态", "复核结果", "备注", "问题编码")
#: what a clerk chooses in 整改状态 (a drop-down in the .xlsx)
STATUSES = ("未整改", "整改中", "已整改", "不属实")
REVIEW_NEW, REVIEW_OPEN, REVIEW_FIXED = "新增", "仍未整改", "已整改"


@dataclass
class LedgerRow:
    """One problem in the 问题台账."""

    key: str
    rule_id: str
    village: str
    village_code: str
    group: str
    household_id: str
    head: str
    category: str
    description: str
    basis: str
    severity: str
    advice: str
    helpers: str
    deadline: str
    status: str = "未整改"
    review: str = REVIEW_NEW
    note: str = ""

    @property
    def is_open(self) -> bool:
        """Still in the data (not 已整改 by the last audit)."""
        return self.review != REVIEW_FIXED

    def cells(self, number: int) -> tuple[Any, ...]:
        """The row's values in ``COLUMNS`` order."""
        return (number, self.village, self.group, self.household_id, self.head, self.category, self.description,
                self.basis, self.severity, self.advice, self.helpers, self.deadline, self.status, self.review,
                self.note, self.key)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class AuditResult:
    """What ``run_audit`` found."""

    rows: list[LedgerRow]
    #: the run's date (整改时限 counts from it)
    date: dt.date
    county: str = ""
    township: str = ""
    #: village names in data-directory order (every village, with problems or not)
    villages: list[str] = field(default_factory=list)
    households: int = 0
    #: households whose record could not be read: (户编号, why) — run validate first
    skipped: list[tuple[str, str]] = field(default_factory=list)
    #: rules that failed on some household (the county's rule needs fixing)
    rule_errors: list[str] = field(default_factory=list)
    rule_files: list[str] = field(default_factory=list)
    disabled: list[str] = field(default_factory=list)
    rules: int = 0
    #: 类别 in the order of the rule set (the summary's columns)
    category_order: list[str] = field(default_factory=list)
    #: the data directory audited (a ledger is never written inside it)
    data_dir: Path | None = None

    @property
    def open_rows(self) -> list[LedgerRow]:
        return [row for row in self.rows if row.is_open]

    def counts(self) -> dict[str, int]:
        """Open problems by 严重程度 (every severity present, 0 when none)."""
        found = Counter(row.severity for row in self.open_rows)
        return {severity: found.get(severity, 0) for severity in SEVERITIES}

    @property
    def exit_code(self) -> ExitCode:
        """1 when a 严重 problem is open, else 0."""
        return ExitCode.problems if self.counts()["严重"] else ExitCode.ok

    def categories(self) -> list[str]:
        """The 类别 found, in the rule set's order."""
        found = {row.category for row in self.rows}
        return [c for c in dict.fromkeys([*self.category_order, *(row.category for row in self.rows)]) if c in found]

    def by_village(self) -> dict[str, list[LedgerRow]]:
        out: dict[str, list[LedgerRow]] = {name: [] for name in self.villages}
        for row in self.rows:
            out.setdefault(row.village, []).append(row)
        return out

    def table(self) -> list[tuple[str, dict[str, int], int]]:
        """Open problems per village × 类别: (village, {类别: n}, 已整改 count)."""
        categories = self.categories()
        out = []
        for village, rows in self.by_village().items():
            counter = Counter(row.category for row in rows if row.is_open)
            out.append((village, {c: counter.get(c, 0) for c in categories}, sum(not r.is_open for r in rows)))
        return out

    def for_village(self, village: str) -> list[LedgerRow]:
        """The rows of one village (by name or 12-digit code)."""
        return [row for row in self.rows if village in (row.village, row.village_code)]

    def for_household(self, household_id: str) -> list[LedgerRow]:
        return [row for row in self.rows if row.household_id == household_id]

    def line(self) -> str:
        """One Chinese line: 问题台账：严重 2 条 · 一般 5 条 · 提示 0 条."""
        return format_line(self.counts(), len(self.rows) - len(self.open_rows))

    def to_json(self) -> dict[str, Any]:
        return {
            "date": self.date.isoformat(),
            "county": self.county,
            "township": self.township,
            "households": self.households,
            "counts": self.counts(),
            "fixed": len(self.rows) - len(self.open_rows),
            "rule_files": self.rule_files,
            "disabled": self.disabled,
            "skipped": [{"household_id": h, "reason": r} for h, r in self.skipped],
            "rule_errors": self.rule_errors,
            "problems": [row.to_json() for row in self.rows],
        }


def format_line(counts: dict[str, int], fixed: int = 0) -> str:
    """``AuditResult.line``: the open problems by 严重程度 (and those fixed since last round)."""
    text = "问题台账：" + " · ".join(f"{k} {v} 条" for k, v in counts.items())
    if fixed:
        text += f" · 已整改 {fixed} 条"
    return text


def _record_cache(data_dir: Path) -> Any:
    """The record cache of a build of this data directory, else a per-user one for audits."""
    from ..archive.outdir import configured_output, user_cache_dir
    from ..records.cache import RecordCache

    try:
        built = configured_output(data_dir) / ".cache" / "records.pickle"
        if built.is_file():
            return RecordCache(built)
    except Exception:  # noqa: BLE001, S110 - an unusable archive.toml is reported by the load itself
        pass
    folder = user_cache_dir("audit")
    if folder is None:
        return None
    digest = hashlib.sha256(str(Path(data_dir).resolve()).encode()).hexdigest()[:16]
    return RecordCache(folder / f"records-{digest}.pickle")


def _ref_date(config: Any) -> dt.date:
    from ..archive.packet import document_date

    return dt.date.fromisoformat(document_date(config))


def _helpers(facts: Facts) -> str:
    return "、".join(h.name for h in facts.current_helpers())


class _RuleSets:
    """The rule set of each village (most villages share one: compiled once)."""

    def __init__(self, root: Path, extra: Sequence[Path], archive: Any, ref_date: dt.date) -> None:
        self.root, self.extra, self.archive, self.ref_date = root, extra, archive, ref_date
        self._by_files: dict[tuple[Path, ...], tuple[RuleSet, Auditor]] = {}

    def get(self, village_dir: Path | None) -> tuple[RuleSet, Auditor]:
        files = tuple(rule_files(self.root, village_dir, self.extra))
        found = self._by_files.get(files)
        if found is None:
            key = (_signature(files), str(self.root), self.archive.model_dump_json(), self.ref_date)
            found = _COMPILED.get(key)
            if found is None:  # compiling a rule set takes ~0.3 s: once per process (the web app)
                rule_set = load_rule_set(files, root=self.root)
                found = (rule_set, Auditor(rule_set, self.archive, self.ref_date))
                if len(_COMPILED) >= 16:
                    _COMPILED.pop(next(iter(_COMPILED)))
                _COMPILED[key] = found
            self._by_files[files] = found
        return found


#: compiled rule sets of this process, by what they were made from
_COMPILED: dict[tuple[Any, ...], tuple[RuleSet, Auditor]] = {}


def _signature(files: Sequence[Path]) -> tuple[tuple[str, int, int], ...]:
    """Each rule file's path, size and modification time (a changed file is read again)."""
    out = []
    for path in files:
        try:
            stat = Path(path).stat()
            out.append((str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns))
        except OSError:
            out.append((str(path), -1, -1))  # load_rule_set reports it
    return tuple(out)


def _household_rows(auditor: Auditor, rule_set: RuleSet, record: Any, archive: Any, ref_date: dt.date,
                    today: dt.date, village: tuple[str, str], errors: list[RuleRunError]) -> list[LedgerRow]:
    """The ledger rows of one household's problems (``village``: its name and code)."""
    hits = auditor.household(record, errors)
    if not hits:
        return []
    facts = Facts(record, archive, rule_set.params, ref_date)
    head = record.head.name if record.head else ""
    helpers = _helpers(facts)
    seen: set[str] = set()
    rows = []
    for hit in hits:
        rule = hit.rule
        key = base = "|".join(p for p in (rule.id, str(record.household_id), hit.key) if p)
        n = 2
        while key in seen:  # two measures alike in year, item and date
            key, n = f"{base}#{n}", n + 1
        seen.add(key)
        rows.append(LedgerRow(
            key=key, rule_id=rule.id, village=village[0], village_code=village[1],
            group=record.group or "", household_id=str(record.household_id), head=head,
            category=rule.category, description=f"{rule.description}：{hit.message}", basis=rule.basis,
            severity=rule.severity, advice=rule.advice, helpers=helpers,
            deadline=(today + dt.timedelta(days=rule.days)).isoformat(),
        ))
    return rows


def packet_problems(root: Path, config: Any, village: Any, record: Any) -> list[dict[str, str]]:
    """The problems of one household for its packet's audit page (``[audit] page = true``).

    ``village``: the loaded village (its folder's rules apply). Dated by the documents' date
    (archive.toml), not today, so a packet built again from the same data is the same.
    Raises RuleFileError when a rule file is wrong.
    """
    ref_date = _ref_date(config)
    sets = _RuleSets(Path(root), [], config.archive, ref_date)
    rule_set, auditor = sets.get(Path(village.path))
    vname = village.config.name or Path(village.path).name
    rows = _household_rows(auditor, rule_set, record, config.archive, ref_date, ref_date,
                           (vname, village.config.code), [])  # a rule's run error: the audit reports it
    fields = ("category", "description", "basis", "severity", "advice", "deadline", "helpers")
    return [{name: getattr(row, name) for name in fields} for row in rows]


def audit_dataset(dataset: Any, *, rules: Sequence[Path] = (), today: dt.date | None = None,
                  previous: Path | None = None, parked: Any = None) -> AuditResult:
    """Audit a loaded ``Dataset`` (see ``run_audit``).

    ``parked``: the record cache the records were parked in while loading; each village's are
    brought back for its rules and parked again after them (one village in memory at a time)."""
    from ..records.loader import park, unpark

    today = today or dt.date.today()
    config = dataset.config
    ref_date = _ref_date(config)
    sets = _RuleSets(Path(dataset.root), [Path(p) for p in rules], config.archive, ref_date)
    rows: list[LedgerRow] = []
    errors: list[RuleRunError] = []
    result = AuditResult(rows, today, config.archive.county, config.archive.township, data_dir=Path(dataset.root))
    first_set: RuleSet | None = None
    for village in dataset.villages:
        rule_set, auditor = sets.get(village.path)
        first_set = first_set or rule_set
        vname = village.config.name or Path(village.path).name
        result.villages.append(vname)
        records = []
        for household in village.households:
            result.households += 1
            if parked is not None:
                unpark(household, parked, Path(dataset.root), village.config.name)
            record = household.record
            if record is None:
                why = next((p.message for p in household.problems if p.is_error), "数据有误")
                result.skipped.append((household.household_id, why))
                continue
            records.append(record)
            rows.extend(_household_rows(auditor, rule_set, record, config.archive, ref_date, today,
                                        (vname, village.config.code), errors))
        for hit in auditor.village(village.config, records, errors):
            rule = hit.rule
            rows.append(LedgerRow(
                key=f"{rule.id}|村{village.config.code or vname}", rule_id=rule.id, village=vname,
                village_code=village.config.code, group="", household_id="", head="", category=rule.category,
                description=f"{rule.description}：{hit.message}", basis=rule.basis, severity=rule.severity,
                advice=rule.advice, helpers="", deadline=(today + dt.timedelta(days=rule.days)).isoformat(),
            ))
        if parked is not None:
            for household in village.households:
                park(household)
    if first_set is None:  # no village: still check the rule files
        first_set, _ = sets.get(None)
    result.rule_files = first_set.files
    result.disabled = first_set.disabled
    result.rules = len(first_set.rules)
    result.category_order = list(dict.fromkeys(rule.category for rule in first_set.rules))
    result.rule_errors = list(dict.fromkeys(e.format() for e in errors))
    if previous is not None:
        from .ledger import merge_previous

        merge_previous(result, previous)
    return result


def audit_counts(dataset: Any, *, parked: Any = None, known: Callable[[Any], dict[str, int] | None] | None = None,
                 found: Callable[[Any, dict[str, int]], None] | None = None) -> dict[str, int]:
    """The open problems of ``dataset`` by 严重程度: ``audit_dataset(dataset).counts()``, cheaper.

    The build's audit line. ``parked``: the record cache its records are parked in (see
    ``audit_dataset``). ``known(household)`` returns a household's counts when they are
    remembered (its record is then not read); ``found(household, counts)`` is told the counts
    of each household audited here. A village whose rule set has village rules has every
    record read (their counts are not told: they depend on the other households too); a
    village whose households' counts are all remembered has no rule set compiled.
    Raises RuleFileError (a rule file is wrong).
    """
    from ..records.loader import park, unpark

    config = dataset.config
    ref_date = _ref_date(config)
    sets = _RuleSets(Path(dataset.root), [], config.archive, ref_date)
    today = dt.date.today()
    total: Counter[str] = Counter()
    errors: list[RuleRunError] = []
    if not dataset.villages:
        sets.get(None)  # still check the rule files
    for village in dataset.villages:
        remembered = [known(h) for h in village.households] if known is not None else []
        if remembered and all(c is not None for c in remembered):  # (only remembered without village rules)
            for counts in remembered:
                total.update(counts)
            continue
        rule_set, auditor = sets.get(village.path)
        names = (village.config.name or Path(village.path).name, village.config.code)
        village_rules = auditor.village_template is not None
        records, unparked = [], []
        for index, household in enumerate(village.households):
            counts = remembered[index] if remembered and not village_rules else None
            if counts is None:
                if parked is not None:
                    unpark(household, parked, Path(dataset.root), village.config.name)
                    unparked.append(household)
                record = household.record
                rows = [] if record is None else _household_rows(auditor, rule_set, record, config.archive, ref_date,
                                                                 today, names, errors)
                counts = dict(Counter(row.severity for row in rows))
                if found is not None and not village_rules:  # a village rule may read any record
                    found(household, counts)
                if record is not None:
                    records.append(record)
            total.update(counts)
        if village_rules:
            total.update(hit.rule.severity for hit in auditor.village(village.config, records, errors))
        for household in unparked:
            park(household)
    return {severity: total.get(severity, 0) for severity in SEVERITIES}


def run_audit(data_dir: Path, *, rules: Path | Sequence[Path] | None = None, previous: Path | None = None,
              today: dt.date | None = None, villages: Iterable[str] = (), jobs: int | None = None,
              record_cache: Path | None = None, stream: bool = False) -> AuditResult:
    """Audit every household of ``data_dir`` against the rules; return the ledger.

    ``rules``: extra rule file(s), applied after ``DATA/rules/*.yaml``. ``previous``: last round's
    ledger (.xlsx written by this program) to carry 整改状态 and 备注 over. ``today``: the audit's
    date (整改时限 counts from it). ``villages``: only these villages (code or name).
    ``jobs``: processes that parse the records the record cache does not hold (default: one per
    CPU; 1 in a threaded server). ``record_cache``: the record cache file to use (a build's,
    ``OUT/.cache/records.pickle``); by default the configured output folder's, else a per-user one.
    ``stream`` (the build's audit line, after the build filled the cache): each record is parked
    in the cache as it is read and brought back for its village only, so the township's records
    are never all in memory at once.
    Raises RuleFileError (a rule file is wrong), DataDirError, LedgerError.
    """
    from ..archive.scheduler import Scheduler
    from ..records.cache import RecordCache
    from ..records.loader import load_dataset, park, require_usable_villages, select_villages

    with _collector_paused(), contextlib.ExitStack() as later:
        if record_cache is not None:
            cache: RecordCache | None = RecordCache(record_cache, stream=stream)
        else:
            cache = _record_cache(Path(data_dir))
        if cache is not None and stream:
            later.callback(cache.close)

        def loaded(household: Any) -> None:
            if stream and cache is not None and cache.holds(household.cache_key):
                park(household)

        with Scheduler(jobs or os.cpu_count() or 1) as scheduler:  # a first run parses on every CPU
            dataset = load_dataset(Path(data_dir), cache=cache, parse_many=scheduler.parse_many, loaded=loaded,
                                   settings_required=True)  # the income standard and year come from it
        if cache is not None:
            try:
                cache.save()  # the next audit (or build) reads the records from it
            except OSError:
                pass  # a cache that cannot be written only costs time next run
        wanted = [v.strip() for v in villages if v.strip()]
        if wanted:
            dataset.villages = select_villages(dataset.villages, wanted)
        require_usable_villages(dataset, dataset.villages, everything=not wanted)
        extra = [rules] if isinstance(rules, (str, Path)) else list(rules or ())
        return audit_dataset(dataset, rules=[Path(p) for p in extra], today=today, previous=previous,
                             parked=cache if stream else None)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off while the records are read and checked.

    A 2,000-household township's records are ~330,000 objects the collector tracks, all alive
    until the ledger is made; it walked them again and again as they were created (about half
    of a warm audit's CPU time, a sixth of a cold one's) and found nothing to free. Nested or concurrent use (the web
    app's threads) only re-enables it when it was the one that turned it off.
    """
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


def household_ledger(data_dir: Path, household_id: str, *, today: dt.date | None = None) -> list[LedgerRow]:
    """The ledger rows of one household (for the web app's household page); fast: reads one record."""
    from ..records.loader import load_household

    dataset = load_household(Path(data_dir), household_id)
    result = audit_dataset(dataset, today=today)
    return result.for_household(str(household_id))


def village_ledger(data_dir: Path, village: str, *, today: dt.date | None = None) -> list[LedgerRow]:
    """The ledger rows of one village (code or name), for the web app's village page."""
    # jobs=1: the web app calls this from a thread, and forking a threaded process is unsafe
    return run_audit(Path(data_dir), today=today, villages=[village], jobs=1).for_village(village)
