"""The village build: a pipeline of named stages over one :class:`BuildContext`.

load → validate → plan (content hashes) → render packets (worker processes) → collate
villages → record versions → write the manifest → report. Stages overlap where one would
otherwise wait: households render while the rest are planned, and versions are recorded while
the workers collate boxes. A run with nothing to do ends after ``uptodate.check``. Only this
module orchestrates; each stage calls one module that knows nothing of the others.
"""

from __future__ import annotations

import gc
import hashlib
import multiprocessing
import os
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, as_completed, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from . import __version__, hashing, outdir, uptodate
from .document import SectionPages
from .errors import (
    ArchiveError,
    DataDirError,
    OutputError,
    WorkerLostError,
    disk_full,
    disk_full_error,
    quiet_library_logs,
)
from .packet import (
    PacketRequest,
    PacketResult,
    configured_fonts,
    document_date,
    font_set,
    plan_packet,
    render_packet,
    template_set,
)
from .problems import Problem, Severity, error, warning

SCHEMA_VERSION = 1
STATE_FILE = ".state/households.json"
BOX_STATE_FILE = ".state/boxes.json"
PACKETS_DIR = "分户档卡"
#: allocations between collections of the youngest generation (Python's default: 700).
#: Rendering and collating allocate millions of short-lived objects, nearly all freed by
#: reference counting; at 700 the cycle collector ran ~1,200 times in a 231-household build
#: and took 0.36 CPU-seconds, at 20,000 ~25 times and 0.13 CPU-seconds, for a few MB more.
_GC_YOUNG = 20_000
#: households to parse per worker process at least (fewer are parsed in the build's own process)
_PARSE_PER_WORKER = 32
#: render requests waiting or running per worker process while planning goes on
_IN_FLIGHT_PER_WORKER = 8


class Reporter(Protocol):
    """What the build tells the person running it (the CLI draws bars or prints lines)."""

    def stage(self, name: str) -> None: ...
    def start(self, total: int, label: str) -> None: ...
    def advance(self, text: str = "") -> None: ...
    def warn(self, text: str) -> None: ...


class SilentReporter:
    def stage(self, name: str) -> None:
        pass

    def start(self, total: int, label: str) -> None:
        pass

    def advance(self, text: str = "") -> None:
        pass

    def warn(self, text: str) -> None:
        pass


@dataclass(frozen=True)
class BuildOptions:
    villages: tuple[str, ...] = ()  # codes or names; empty = all
    jobs: int | None = None
    force: bool = False
    formats: tuple[str, ...] | None = None  # None = template set / archive.toml default
    strict: bool = False
    build_date: str | None = None  # documents' date; default archive.toml build.date or today
    template_set: str | None = None  # overrides archive.toml [templates] set


@dataclass
class HouseholdPlan:
    household_id: str
    village_code: str
    item_no: int
    head: str
    members: int
    household_type: str
    content_hash: str
    request: PacketRequest | None  # None = unchanged (``result`` set), or handed to a worker
    record_json: bytes = b""
    evidence: dict[str, str] = field(default_factory=dict)
    result: dict[str, Any] | None = None  # state entry once rendered
    formats: list[str] = field(default_factory=list)
    sources: tuple[str, ...] = ()  # evidence files read (absolute)
    #: ``PacketResult.fonts`` when rendered in this run (collation then reads no font back)
    fonts: tuple[tuple[str, str, str], ...] = ()
    #: ``PacketResult.sha256`` when rendered in this run (the store and collation then do not
    #: hash the file again)
    packet_sha256: str = ""


@dataclass
class VillagePlan:
    code: str
    name: str
    folder: Path
    households: list[HouseholdPlan]
    failed: list[Problem] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    #: (件号, 户编号, 户主) of the households whose records have errors (no packet)
    missing: list[tuple[int, str, str]] = field(default_factory=list)


@dataclass
class BuildSummary:
    rendered: int = 0
    unchanged: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (household_id, reason)
    villages_collated: int = 0
    villages: int = 0
    households: int = 0
    seconds: float = 0.0
    out_dir: Path | None = None
    problems: list[Problem] = field(default_factory=list)
    #: what rendering warned about in this run (shown as it happened; counted in ``line``)
    warnings: list[str] = field(default_factory=list)
    versions_recorded: int = 0
    #: the audit's counts (``checks.AuditResult.line``), "" when not audited
    audit: str = ""

    def line(self) -> str:
        """Return the one-line Chinese summary, e.g. 渲染 3 户 · 未变化 228 户 · 用时 1.2 秒."""
        parts = [f"渲染 {self.rendered} 户", f"未变化 {self.unchanged} 户"]
        if self.failed:
            parts.append(f"未生成 {len(self.failed)} 户")
        parts.append(f"整理 {self.villages_collated} 个村")
        warnings = len(self.warnings) + sum(1 for p in self.problems if not p.is_error)
        if warnings:
            parts.append(f"警告 {warnings} 条")
        parts.append(f"用时 {self.seconds:.1f} 秒")
        if self.audit:
            parts.append(self.audit)
        return " · ".join(parts)


def _select(villages: Sequence[Any], wanted: Iterable[str]) -> list[Any]:
    wanted = [w.strip() for w in wanted if w.strip()]
    if not wanted:
        return list(villages)
    chosen = [v for v in villages if v.config.code in wanted or v.config.name in wanted]
    unknown = [w for w in wanted if not any(w in (v.config.code, v.config.name) for v in villages)]
    if unknown:
        known = "、".join(f"{v.config.name}（{v.config.code}）" for v in villages)
        raise DataDirError(f"找不到村：{'、'.join(unknown)}", hint=f"可选的村：{known}")
    return chosen


class Build:
    """One run of ``archive-builder build``."""

    def __init__(self, data_dir: Path, out_dir: Path, options: BuildOptions, reporter: Reporter | None = None):
        self.data_dir = data_dir
        self.out_dir = out_dir
        self.options = options
        self.reporter = reporter or SilentReporter()
        self.summary = BuildSummary()
        #: rendering failures, for the manifest's problems (the CLI reports them from ``failed``)
        self.render_problems: list[Problem] = []
        self._pool: ProcessPoolExecutor | None = None
        #: households planned for rendering before the pool started, and the renders started
        self._waiting: list[HouseholdPlan] = []
        self._started: dict[str, Any] = {}
        self._in_flight: list[Any] = []  # the started renders not known to be done

    # ------------------------------------------------------------------ stages
    def run(self) -> BuildSummary:
        threshold = gc.get_threshold()
        gc.set_threshold(_GC_YOUNG, *threshold[1:])  # workers forked from here inherit it
        try:
            return self._run()
        finally:
            gc.set_threshold(*threshold)

    def _run(self) -> BuildSummary:
        try:
            return self._run_steps()
        except Exception as exc:
            out = getattr(self, "out", self.out_dir)
            if not isinstance(exc, OutputError) and disk_full(exc, out):
                raise disk_full_error(out) from exc
            raise

    def _run_steps(self) -> BuildSummary:
        started = time.monotonic()
        self._check_inputs()
        self.out = outdir.prepare(self.out_dir, self.data_dir)
        self.summary.out_dir = self.out
        with outdir.build_lock(self.out):
            recorded = uptodate.check(self.data_dir.resolve(), self.out, self.options)
            if recorded is not None:
                self._replay(recorded)
                self.summary.seconds = time.monotonic() - started
                return self.summary
            uptodate.forget(self.out)
            self._data_digest = uptodate.data_digest(self.data_dir.resolve())
            clean_work_files(self.out)
            self._saving = None
            try:
                self._start_early_pool()
                self.load()
                self.plan()
                self.render()
                self.collate()
            except BrokenProcessPool as exc:
                raise WorkerLostError(
                    "一个生成进程意外退出（可能是内存不足，或被系统、杀毒软件结束），本次生成没有完成；"
                    "已写出的文件都是完整的，manifest.json 仍是上次生成的",
                    hint="关闭占用内存较多的程序后重新运行，即可补全；若反复出现，请用 --jobs 1 运行，"
                    "并加 -v 把输出报告给维护人员",
                ) from exc
            finally:
                if self._pool is not None:
                    self._pool.shutdown(cancel_futures=True)
                if self._saving is not None:
                    self._saving.join(timeout=600)  # seconds for 2,000 households; never hang
                    if self._saving.is_alive():
                        self._saving.kill()
            self.write_manifest()
            if not self.summary.failed:
                self._record_uptodate()
        self.summary.seconds = time.monotonic() - started
        return self.summary

    def _check_inputs(self) -> None:
        """Fail on an unusable data directory or an unknown ``--village`` before the output
        folder is created: a build that cannot start leaves nothing behind."""
        from .records.loader import open_villages

        _select(open_villages(self.data_dir), self.options.villages)

    def load(self) -> None:
        from .records.cache import RecordCache
        from .records.loader import load_dataset
        from .validate import Validation

        self.reporter.stage("读取与校验数据")
        records = RecordCache(self.out / ".cache" / "records.pickle")
        self.dataset = load_dataset(self.data_dir, cache=records, parse_many=self._parse_many)
        # pickled as parsed, while planning goes on and releases what it no longer needs
        self._saving = records.save_in_background()
        self.dataset.config = self.dataset.config.with_overrides(templates__set=self.options.template_set)
        # the rules across households now; each household's own rules just before it is
        # planned (``_plan_villages``), so its packet renders while the next is checked
        self._rules_cache = RecordCache(self.out / ".cache" / "rules.pickle")
        self.validation = Validation(self.dataset, strict=self.options.strict, cache=self._rules_cache)
        self.villages = _select(self.dataset.villages, self.options.villages)
        config = self.dataset.config
        self.build_date = self.options.build_date or document_date(config)
        self.tset_name = config.templates.set
        formats = self.options.formats
        if formats is None:
            formats = tuple(getattr(config.templates, "formats", None) or ())
        if formats == () and config.output.word_copy:  # archive.toml [output] word_copy = true
            formats = ("pdf", "docx")
        self.formats = formats
        self.errors_by_household: dict[tuple[str, str], list[Problem]] = {}
        self._note_errors(self.validation.dataset_problems())

    def _note_errors(self, problems: Iterable[Problem]) -> None:
        for problem in problems:
            if problem.severity is Severity.error and problem.household_id:
                self.errors_by_household.setdefault((problem.village or "", problem.household_id), []).append(problem)

    def _replay(self, recorded: dict[str, Any]) -> None:
        """Report what the last run reported: nothing changed since it (see uptodate.py)."""
        self.summary.villages = recorded["villages"]
        self.summary.households = self.summary.unchanged = recorded["households"]
        self.summary.problems = [Problem.from_json(p) for p in recorded["problems"]]

    def _record_uptodate(self) -> None:
        """Remember the stat signature of this run's inputs and outputs for the next run."""
        from .render.fonts import font_search_dirs

        tsets = [template_set(self.tset_name, self.data_dir.resolve(), v.path.resolve()) for v in self.villages]
        if any(t.form_sections for t in tsets):
            return  # their packets also depend on whether LibreOffice is installed
        data = self.data_dir.resolve()
        fonts = font_set(self._font_config(), register=False) if self.villages else None
        files = [str(f.path) for f in ([*fonts.faces.values(), *fonts.fallbacks] if fonts else [])]
        files += [s for v in self.plans for h in v.households for s in h.sources if not s.startswith(f"{data}{os.sep}")]
        trees = [str(p) for t in tsets for p in t.search_path if p.is_dir()]
        trees += [str(p) for p in font_search_dirs() if p.is_dir()]
        uptodate.record(self._data_digest, self.out, self.options, trees=trees, files=files, summary={
            "villages": self.summary.villages, "households": self.summary.households,
            "problems": [p.to_json() for p in self.summary.problems],
        })

    def _parse_many(self, function: Any, argument_lists: list[tuple[Any, ...]]) -> list[Any]:
        """Parse the households the record cache did not have; many at once in worker processes.

        The workers are the build's pool, started here while this process is still small: a
        forked worker counts what it inherits in its RSS, and workers forked after loading
        each carried the township's parsed records (286 MiB for 2,000 households). They load
        the fonts when they first need them (~0.05 s from the face cache). This process
        parses a share itself while they work: it has to unpickle what they send back anyway
        (about 0.2 of the cost of parsing it), and parsing here warms up what validation uses.
        """
        count = len(argument_lists)
        jobs = self._early_jobs()
        if jobs < 2 or count < _PARSE_PER_WORKER or multiprocessing.get_start_method() != "fork":
            return [function(*args) for args in argument_lists]  # spawning costs ~0.4 s a worker
        if self._pool is None:
            self._start_pool(jobs, register_fonts=False)
        assert self._pool is not None
        # own share so that all finish together: own·1 + rest·u = rest/jobs·(1 + p), with
        # unpickling u ≈ 0.2 and pickling p ≈ 0.1 of parsing (measured: 1.65, 0.3, 0.2 ms a
        # household): 26 % here with two workers
        share = max(0.0, (1.1 / jobs - 0.2) / (0.8 + 1.1 / jobs))
        own = round(count * share)
        rest = argument_lists[own:]
        futures = [self._pool.submit(_parse_chunk, function, rest[i:i + 16]) for i in range(0, len(rest), 16)]
        results = [function(*args) for args in argument_lists[:own]]
        for future in futures:
            results.extend(future.result())
        return results

    def _start_early_pool(self) -> None:
        """Start the workers as soon as the build knows it has work, before reading records.

        Forked now, they are small, and they load the rendering modules and fonts
        (``_start_worker``) while this process lists and reads the data directory, when the
        second processor had nothing to do; they then parse records and render. With one job,
        or where workers are spawned (~0.4 s each), the pool is started later, when needed.
        """
        jobs = self._early_jobs()
        if jobs >= 2 and multiprocessing.get_start_method() == "fork":
            # The record models (pydantic, ~0.17 s to import), which this process needs next
            # anyway, are imported before the fork: each worker would import them again.
            from .records import loader  # noqa: F401
            self._start_pool(jobs, register_fonts=False, warm=(self.data_dir, self.options.template_set))

    def _early_jobs(self) -> int:
        """``_jobs()`` before the dataset is loaded: archive.toml's ``[build] workers`` read
        on its own, with tomllib (loading the validated configuration first cost ~0.08 s of
        imports before any worker could start); loading the dataset reports a bad value."""
        import tomllib

        workers = None
        if not self.options.jobs:
            try:
                text = (self.data_dir / "archive.toml").read_text(encoding="utf-8-sig")
                value = tomllib.loads(text).get("build", {}).get("workers")
                if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                    workers = value
            except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, AttributeError):
                workers = None
        return self._bounded(workers)

    def plan(self) -> None:
        from .store import VersionStore

        self.reporter.stage("比对内容哈希")
        self.state: dict[str, Any] = outdir.read_json(self.out / STATE_FILE, {})
        self.store = VersionStore(self.out)
        cache_dir = self.out / ".cache" / "evidence"
        config = self.dataset.config
        self.plans: list[VillagePlan] = []
        memo = hashing.HashMemo(self.out / ".cache" / "file-hashes.json")
        hashing.use_memo(memo)
        try:
            self._plan_villages(cache_dir, config)
        finally:
            hashing.use_memo(None)
        memo.save()
        # the villages not built are validated too: the report covers the whole data directory
        self.summary.problems = self.validation.problems()
        self._rules_cache.save()
        for _, household in self.dataset.households():
            _release_validation_data(household)
        self.summary.villages = len(self.plans)
        self.summary.households = sum(len(v.households) for v in self.plans) + len(self.summary.failed)

    def _plan_villages(self, cache_dir: Path, config: Any) -> None:
        for village in self.villages:
            vconf = village.config
            tset = template_set(self.tset_name, self.data_dir.resolve(), village.path.resolve())
            formats = self.formats or tset.formats
            template_fingerprint = tset.fingerprint()
            vfolder = self.out / outdir.safe_file_name(f"{vconf.code}_{vconf.name}")
            vplan = VillagePlan(code=vconf.code, name=vconf.name, folder=vfolder, households=[])
            item_no = 0
            for household in sorted(village.households, key=lambda h: str(h.household_id)):
                hid = str(household.household_id)
                self._note_errors(self.validation.household(village, household))
                _release_validation_data(household)
                errors = self.errors_by_household.get((vconf.name, hid), [])
                # numbered by 户编号 among all the village's households, produced or not: a record
                # with errors keeps its 件号 (noted on its box's 备考表), so fixing it changes no
                # other household's cover
                item_no += 1
                if household.record is None or errors:
                    reason = errors[0].message if errors else "记录无法读取"
                    self.summary.failed.append((hid, f"数据有误：{reason}"))
                    vplan.failed.extend(errors)
                    vplan.missing.append((item_no, hid, _head_name(household)))
                    household.record = household.partial = None
                    continue
                pdf = _inside(self.out, vfolder / PACKETS_DIR / f"{outdir.safe_file_name(hid)}.pdf")
                docx = pdf.with_suffix(".docx") if "docx" in formats else None
                planned = plan_packet(
                    self.dataset, village, household, out_pdf=pdf, out_docx=docx, cache_dir=cache_dir,
                    item_no=item_no, build_date=self.build_date, version_of=self.store.next_number,
                    template_fingerprint=template_fingerprint,
                )
                previous = self.state.get(hid)
                unchanged = (
                    not self.options.force
                    and previous is not None
                    and previous.get("content_hash") == planned.content_hash
                    and previous.get("formats") == list(formats)
                    and previous.get("file") == _file_stamp(pdf)
                    and (docx is None or docx.is_file())
                )
                record = planned.request.record
                household.record = household.partial = None  # the plan keeps what the build needs
                vplan.households.append(
                    HouseholdPlan(
                        household_id=hid, village_code=vconf.code, item_no=item_no, head=planned.head,
                        members=len(record.get("members", [])), household_type=record.get("household_type", ""),
                        content_hash=planned.content_hash, request=None if unchanged else planned.request,
                        record_json=planned.record_json, evidence=dict(planned.evidence),
                        result=previous if unchanged else None,
                        formats=list(formats), sources=planned.sources,
                    )
                )
                if not unchanged:
                    self._render_early(vplan.households[-1])
            vplan.info = {
                "code": vconf.code, "name": vconf.name, "county": config.archive.county,
                "township": config.archive.township, "year": config.archive.year,
                "fonds_no": config.archive.fonds_no, "retention": config.archive.retention,
                "fonds_name": getattr(config.archive, "fonds_name", None) or f"{config.archive.township}人民政府",
            }
            self.plans.append(vplan)

    def _render_early(self, household: HouseholdPlan) -> None:
        """Start rendering a household while the others are still being planned.

        The pool is started at the second household that needs rendering (one alone is
        rendered in this process, which costs less than starting workers).
        """
        self._waiting.append(household)
        if self._pool is None and (self._jobs() < 2 or len(self._waiting) < 2):
            return
        if self._pool is None:
            self._start_pool()
        assert self._pool is not None
        for h in self._waiting:
            assert h.request is not None  # handed to a worker once, here
            future = self._started[h.household_id] = self._pool.submit(_safe_render, h.request)
            self._in_flight.append(future)
            h.request = None
        self._waiting.clear()
        # A submitted request (its whole record) stays in memory until its packet is done;
        # planning waits while many are, so a 2,000-household run holds a few, not all.
        self._in_flight = [f for f in self._in_flight if not f.done()]
        if len(self._in_flight) > _IN_FLIGHT_PER_WORKER * self._jobs():
            wait(self._in_flight, return_when=FIRST_COMPLETED)

    def render(self) -> None:
        todo = [h for v in self.plans for h in v.households if h.result is None]
        self.summary.unchanged = sum(1 for v in self.plans for h in v.households if h.result is not None)
        if not todo:
            return
        self.reporter.stage("生成分户档卡")
        self.reporter.start(len(todo), "档卡")
        if self._started:  # submitted while planning
            futures = {self._started[h.household_id]: h.household_id for h in todo}
            done: dict[str, Any] = {}
            for future in as_completed(futures):
                done[futures[future]] = future.result()
                self.reporter.advance()
            outcomes = [done[h.household_id] for h in todo]
        else:
            outcomes = self._run_parallel(_safe_render, [(h.request,) for h in todo])
        self._collect(zip((h.household_id for h in todo), outcomes), {h.household_id: h for h in todo})

    def _collect(self, outcomes: Iterable[tuple[str, Any]], by_id: dict[str, HouseholdPlan]) -> None:
        for hid, outcome in outcomes:
            plan = by_id[hid]
            if isinstance(outcome, BaseException):
                message = getattr(outcome, "message", None) or f"{type(outcome).__name__}: {outcome}"
                self.summary.failed.append((hid, message))
                village = next((v.name for v in self.plans if v.code == plan.village_code), None)
                self.render_problems.append(
                    error(message, getattr(outcome, "hint", None), village=village, household_id=hid)
                )
                hint = getattr(outcome, "hint", None)
                self.reporter.warn(f"户 {hid} 未生成：{message}" + (f"\n  提示：{hint}" if hint else ""))
                plan.result = None
            else:
                self.summary.rendered += 1
                plan.result = {
                    "content_hash": plan.content_hash,
                    "pdf": outcome.pdf.relative_to(self.out).as_posix(),
                    "docx": outcome.docx.relative_to(self.out).as_posix() if outcome.docx else None,
                    "pages": outcome.pages,
                    "sections": [[s.key, s.title, s.first, s.last, s.number] for s in outcome.sections],
                    "separators": list(outcome.separators),
                    "warnings": list(outcome.warnings),
                    "formats": plan.formats,
                    # The packet file as this run left it: a file replaced since (by a run that
                    # was killed before it could record its state) is rendered again.
                    "file": _file_stamp(outcome.pdf),
                }
                plan.fonts = outcome.fonts
                plan.packet_sha256 = outcome.sha256
                for text in outcome.warnings:
                    self.reporter.warn(_naming_household(hid, text))
                    self.summary.warnings.append(_naming_household(hid, text))
                self.state[hid] = plan.result
        outdir.atomic_write_json(self.out / STATE_FILE, self.state)

    def collate(self) -> None:
        """Write every box whose households changed; reuse the others as they are."""
        from .collate import (
            MissingItem,
            PacketInfo,
            PrintOptions,
            VillageInfo,
            assign_missing,
            plan_boxes,
            remove_stale_boxes,
        )

        print_conf = self.dataset.config.print
        options = PrintOptions(
            duplex=bool(print_conf.duplex),
            sheets_per_box=int(print_conf.sheets_per_box),
            spine_width_mm=int(getattr(print_conf, "spine_width_mm", 30) or 30),
        )
        box_state: dict[str, Any] = outdir.read_json(self.out / BOX_STATE_FILE, {})
        self.boxes: dict[str, list[dict[str, Any]]] = {}
        self.spines: dict[str, str] = {}
        jobs: list[tuple[str, str, tuple[Any, ...]]] = []  # (village code, fingerprint, collate_box args)
        planned: dict[str, tuple[VillageInfo, list[str]]] = {}
        for vplan in self.plans:
            info = VillageInfo(**vplan.info)
            packets = [
                PacketInfo(
                    household_id=h.household_id, head=h.head, members=h.members, household_type=h.household_type,
                    item_no=h.item_no, pdf=self.out / h.result["pdf"], pages=h.result["pages"],
                    sections=tuple(SectionPages(*s) for s in h.result["sections"]),
                    separators=tuple(h.result["separators"]),
                    fonts=h.fonts,
                    sha256=h.packet_sha256,
                )
                for h in vplan.households
                if h.result is not None
            ]
            hashes = {h.household_id: h.content_hash for h in vplan.households}
            warnings: list[Problem] = []
            plan = plan_boxes(packets, options, problems=warnings)
            self.summary.problems.extend(warnings)
            # households not produced keep their number: the 备考表 of their box says it is missing
            notes = assign_missing(plan, [
                *(MissingItem(h.item_no, h.household_id, h.head) for h in vplan.households if h.result is None),
                *(MissingItem(*entry) for entry in vplan.missing),
            ])
            files = []
            for box_no, box in enumerate(plan, start=1):
                missing = notes[box_no - 1]
                fingerprint = hashlib.sha256(hashing.canonical_json([
                    vplan.info, box_no, len(plan), options.__dict__, self.build_date, __version__,
                    [[p.household_id, p.item_no, p.pages, hashes[p.household_id]] for p in box],
                    [[m.item_no, m.household_id, m.head] for m in missing],
                ])).hexdigest()
                key = f"{vplan.code}/{box_no}"
                previous = box_state.get(key)
                if (
                    not self.options.force
                    and previous is not None
                    and previous["fingerprint"] == fingerprint
                    and (self.out / previous["box"]["file"]).is_file()
                ):
                    files.append(previous["box"]["file"])
                    continue
                files.append(None)
                jobs.append((vplan.code, fingerprint,
                             (info, box_no, len(plan), box, vplan.folder, options, self.build_date, missing)))
            planned[vplan.code] = (info, files)

        font_args = self._font_config() if jobs else None
        gather = self._start_parallel(_collate_box, [(font_args, *args) for _, _, args in jobs])
        # The version store's blob writes and fsyncs take the main process ~0.4 s on a full
        # build: done while the workers collate, instead of after them.
        self.record_versions()
        if jobs:
            self.reporter.stage("整理村档案盒")
            self.reporter.start(len(jobs), "盒")
        results = gather()
        changed_villages = set()
        for (code, fingerprint, args), result in zip(jobs, results):
            entry = {
                "file": result.file.relative_to(self.out).as_posix(), "box_no": result.box_no,
                "pages": result.pages, "sheets": result.sheets, "first_item": result.first_item,
                "last_item": result.last_item, "households": [list(h) for h in result.households],
                "numbers": [list(n) for n in result.numbers],
            }
            box_state[f"{code}/{args[1]}"] = {"fingerprint": fingerprint, "box": entry}
            changed_villages.add(code)

        for vplan in self.plans:
            info, files = planned[vplan.code]
            boxes = [box_state[f"{vplan.code}/{n}"]["box"] for n in range(1, len(files) + 1)]
            for n in range(len(files) + 1, 10_000):  # forget boxes the village no longer has
                if box_state.pop(f"{vplan.code}/{n}", None) is None:
                    break
            remove_stale_boxes(info, vplan.folder, [self.out / b["file"] for b in boxes])
            self._remove_stale_packets(vplan)
            self.boxes[vplan.code] = boxes
            spine = vplan.folder / f"{outdir.safe_file_name(f'{vplan.code}_{vplan.name}')}_竖条.pdf"
            if boxes and (vplan.code in changed_villages or not spine.is_file()):
                self._write_spine(info, boxes, spine, options)
                self.summary.villages_collated += 1
            self.spines[vplan.code] = spine.relative_to(self.out).as_posix() if boxes else ""
        outdir.atomic_write_json(self.out / BOX_STATE_FILE, box_state)

    def _remove_stale_packets(self, vplan: VillagePlan) -> None:
        """Delete packets in the village's 分户档卡 folder of households no longer in its archive.

        A household removed from the data, or one not produced this run, would otherwise keep an
        outdated packet beside the current ones, ready to be printed by mistake (its versions
        stay in the version store).
        """
        keep = {
            self.out / path
            for h in vplan.households
            if h.result is not None
            for path in (h.result["pdf"], h.result.get("docx"))
            if path
        }
        folder = vplan.folder / PACKETS_DIR
        for path in folder.glob("*") if folder.is_dir() else ():
            if path.suffix in (".pdf", ".docx") and not path.name.startswith(".") and path not in keep:
                path.unlink(missing_ok=True)

    def _write_spine(self, info: Any, boxes: list[dict[str, Any]], spine: Path, options: Any) -> None:
        from .collate import BoxResult
        from .render.spine import write_spine_labels

        results = [
            BoxResult(file=self.out / b["file"], box_no=b["box_no"], pages=b["pages"], sheets=b["sheets"],
                      first_item=b["first_item"], last_item=b["last_item"],
                      households=tuple(tuple(h) for h in b["households"]))
            for b in boxes
        ]
        write_spine_labels([(info, r) for r in results], spine, width_mm=options.spine_width_mm,
                           fonts=font_set(self._font_config()))

    def _font_config(self) -> dict[str, Any]:
        tset = template_set(self.tset_name, self.data_dir.resolve(), self.villages[0].path.resolve())
        return configured_fonts(tset, self.dataset.config, self.data_dir.resolve())

    def _jobs(self) -> int:
        """Return the number of worker processes: -j, else archive.toml [build] workers, else CPUs;
        never more than the CPUs (each worker is a whole process with its own fonts)."""
        return self._bounded(self.dataset.config.build.workers)

    def _bounded(self, workers: int | None) -> int:
        """The configured number of workers, at most the CPUs (``-j``, typed for this run,
        at most four per CPU); a lowered setting is reported once."""
        cpus = os.cpu_count() or 1
        wanted = self.options.jobs or workers or cpus
        limit = 4 * cpus if self.options.jobs else cpus
        if wanted > limit and not getattr(self, "_lowered", False):
            self._lowered = True
            where = f"-j {wanted}" if self.options.jobs else f"archive.toml 中 [build] workers = {wanted}"
            text = f"{where} 超过本机的处理器数 {cpus}，已按 {limit} 个并行进程运行"
            self.summary.warnings.append(text)
            self.reporter.warn(text)
        return max(1, min(wanted, limit))

    def _run_parallel(self, function: Any, argument_lists: list[tuple[Any, ...]]) -> list[Any]:
        return self._start_parallel(function, argument_lists)()

    def _start_parallel(self, function: Any, argument_lists: list[tuple[Any, ...]]) -> Any:
        """Start ``function(*args)`` for every argument tuple; return a function that waits for
        the results (in order), advancing the progress as each one finishes.

        Work goes to one pool of worker processes kept for the whole build; with fork, workers
        inherit the fonts the planning stage registered. Without a pool (one job), the work is
        done when that function is called.
        """
        if not argument_lists:
            return list
        jobs = max(1, min(self._jobs(), len(argument_lists)))
        if jobs == 1 and self._pool is None:
            def serial() -> list[Any]:
                results = []
                for args in argument_lists:
                    results.append(function(*args))
                    self.reporter.advance()
                return results

            return serial
        if self._pool is None:
            self._start_pool(jobs)  # no more workers than pieces of work
        assert self._pool is not None
        futures = {self._pool.submit(function, *args): index for index, args in enumerate(argument_lists)}

        def gather() -> list[Any]:
            ordered: list[Any] = [None] * len(argument_lists)
            for future in as_completed(futures):
                ordered[futures[future]] = future.result()
                self.reporter.advance()
            return ordered

        return gather

    def _start_pool(self, jobs: int | None = None, *, register_fonts: bool = True,
                    warm: tuple[Path, str | None] | None = None) -> None:
        """Start the worker processes kept for the rest of the build.

        Started during planning, the fonts are registered first, so every worker inherits them
        instead of loading each face again (``_parse_many`` starts it earlier, before there is
        anything to inherit; ``warm``: the data directory and template set whose modules and
        fonts each worker loads at once, see ``_start_worker``). This process's objects are
        frozen for the fork (``gc.freeze``): the workers' garbage collector then never walks
        them, which would touch, and copy, most of this process's memory in each worker.
        """
        if register_fonts:
            font_set(self._font_config())
        # a forked worker has this process's logging; a spawned one (Windows) is told the same
        pool = ProcessPoolExecutor(max_workers=jobs or self._jobs(), initializer=_start_worker, initargs=(warm,))
        gc.freeze()
        try:
            # With fork, the first submit forks every worker before it returns: they have the
            # frozen heap. Not waiting for the task lets this process read records while the
            # workers load fonts (waiting for their start-up cost ~0.15 s before any work).
            pool.submit(int)
        finally:
            gc.unfreeze()
        self._pool = pool

    def record_versions(self) -> None:
        from .store import Entry

        self.reporter.stage("登记版本")
        built_at = datetime.now(UTC).isoformat(timespec="seconds")
        entries = [
            Entry(
                household_id=h.household_id, village_code=vplan.code, content_hash=h.content_hash,
                record_json=h.record_json, packet_pdf=self.out / h.result["pdf"], evidence_hashes=h.evidence,
                template_set=self.tset_name, program_version=__version__, pages=h.result["pages"],
                built_at=built_at, packet_sha256=h.packet_sha256 or None,
            )
            for vplan in self.plans
            for h in vplan.households
            if h.result is not None
        ]
        # one batch: the blobs of every changed household are made durable together, then rows
        self.summary.versions_recorded += sum(v is not None for v in self.store.record_many(entries))

    def write_manifest(self) -> None:
        villages: list[dict[str, Any]] = []
        for vplan in self.plans:
            boxes = self.boxes.get(vplan.code, [])
            where: dict[str, tuple[int, int, int]] = {}
            for box in boxes:
                for hid, first, last in box["households"]:
                    where[hid] = (box["box_no"], first, last)
            households = []
            for h in vplan.households:
                if h.result is None:
                    continue
                box_no, first, last = where.get(h.household_id, (None, None, None))
                households.append({
                    "household_id": h.household_id, "head": h.head, "item_no": h.item_no, "box": box_no,
                    "first_page": first, "last_page": last, "packet": h.result["pdf"],
                    "docx": h.result.get("docx"), "content_hash": h.content_hash,
                })
            villages.append({
                "code": vplan.code, "name": vplan.name,
                "boxes": [{k: b[k] for k in ("file", "pages", "sheets", "first_item", "last_item")} for b in boxes],
                "spine_labels": self.spines.get(vplan.code) or None,
                "households": households,
            })
        failed = [{"household_id": hid, "reason": reason} for hid, reason in self.summary.failed]
        # what rendering found (unreadable evidence, rasterised pages, characters no font has),
        # for every packet in the folder, rendered by this run or an earlier one
        rendering = [
            warning(_naming_household(h.household_id, text), village=vplan.name, household_id=h.household_id)
            for vplan in self.plans
            for h in vplan.households
            if h.result is not None
            for text in h.result.get("warnings", ())
        ]
        kept_villages, kept_failed = self._unselected_entries()
        order = {v.config.code: i for i, v in enumerate(self.dataset.villages)}
        villages = sorted([*villages, *kept_villages], key=lambda v: order.get(v["code"], len(order)))
        failed += kept_failed
        manifest = {
            "schema_version": SCHEMA_VERSION,
            "program_version": __version__,
            "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "build_date": self.build_date,
            "villages": villages,
            "failed": failed,
            "problems": [p.to_json() for p in [*self.summary.problems, *self.render_problems, *rendering]],
        }
        outdir.atomic_write_json(self.out / "manifest.json", manifest)


    def _unselected_entries(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Return the last manifest's villages (and failed households) that this run did not build.

        With ``--village`` the output folder still holds the other villages' boxes; the manifest
        describes the whole folder, so their entries are kept while their box files exist.
        """
        if not self.options.villages:
            return [], []
        previous = outdir.read_json(self.out / "manifest.json", {})
        built = {v.code for v in self.plans}
        others = {
            v.config.code: {str(h.household_id) for h in v.households}
            for v in self.dataset.villages
            if v.config.code not in built
        }
        villages = [
            v for v in previous.get("villages", [])
            if v.get("code") in others and all((self.out / b["file"]).is_file() for b in v.get("boxes", []))
        ]
        ids = {hid for v in villages for hid in others[v["code"]]}
        failed = [f for f in previous.get("failed", []) if f.get("household_id") in ids]
        return villages, failed


def _release_validation_data(household: Any) -> None:
    """Drop what only validation reads: source positions and the raw mapping (85 KB a
    household, 170 MB for a 2,000-household township)."""
    household.positions = {}
    household.raw = None


def _inside(out: Path, path: Path) -> Path:
    """``path`` if it stays under the output folder ``out``; a name never makes it leave."""
    if not path.resolve().is_relative_to(out.resolve()):
        raise OutputError(f"输出文件 {path} 不在输出文件夹 {out} 之内，已拒绝写入")
    return path


def _naming_household(household_id: str, text: str) -> str:
    """A packet's warning as a village build shows it: with the household it is about."""
    return text if text.startswith(f"户 {household_id}") else f"户 {household_id}：{text}"


def _head_name(household: Any) -> str:
    """The 户主's name of a household whose record has errors (empty when it cannot be read)."""
    for record in (household.record, getattr(household, "partial", None)):
        if record is not None and record.head is not None:
            return str(record.head.name)
    return ""


def _file_stamp(path: Path) -> list[int] | None:
    """Return ``[size, mtime_ns]`` of a file, or None when it does not exist."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return [stat.st_size, stat.st_mtime_ns]


def _start_worker(warm: tuple[Path, str | None] | None) -> None:
    """Initialise a worker process: quiet library logs; with ``warm`` (data directory,
    template set option), also load the rendering modules and the fonts now.

    The pool is started while this build is still reading records, when the processors are
    not yet busy: a worker's first packet otherwise paid ~0.1 s for these, on top of the
    work, once the build was. The fonts are those of archive.toml and the data directory's
    template set (a village's own templates may add more later); the worker reads them
    itself, so the build process does not wait for it.
    """
    quiet_library_logs()
    gc.set_threshold(_GC_YOUNG, *gc.get_threshold()[1:])  # as the build's (spawned workers)
    if warm is None:
        return
    try:
        from PIL import Image

        from . import collate  # noqa: F401 - imported for the side effect of loading it
        from .config import load_archive_config
        from .packet import configured_fonts
        from .render import evidence, pdf  # noqa: F401 - evidence: loaded by the first photo

        Image.preinit()  # the common image plugins (JPEG, PNG …), also loaded by the first photo

        data_dir, set_option = warm
        config = load_archive_config(data_dir / "archive.toml")[0]
        data = data_dir.resolve()
        tset = template_set(set_option or config.templates.set, data, data)
        pdf.warm_up(font_set(configured_fonts(tset, config, data)))
    except Exception:  # noqa: BLE001, S110 - only a head start: the tasks report real problems
        pass


def _collate_box(font_config: dict[str, Any], *args: Any) -> Any:
    """Collate one box in a worker process (fonts are discovered once per process)."""
    from .collate import collate_box

    fonts = font_set(font_config)
    info, box_no, box_count, packets, folder, options, date, missing = args
    return collate_box(info, box_no, box_count, packets, folder, options, fonts=fonts, date=date, missing=missing)


def _parse_chunk(function: Any, argument_lists: list[tuple[Any, ...]]) -> list[Any]:
    return [function(*args) for args in argument_lists]


def _safe_render(request: PacketRequest) -> PacketResult | BaseException:
    """Render in a worker; return the exception instead of raising so one bad household is isolated."""
    try:
        return render_packet(request)
    except ArchiveError as exc:
        return exc
    except Exception as exc:  # noqa: BLE001 - reported per household, never kills the build
        from .errors import RenderError

        return RenderError(f"户 {request.household_id} 的档卡生成失败：{type(exc).__name__}: {exc}")


def build(data_dir: Path, out_dir: Path | None = None, options: BuildOptions | None = None,
          reporter: Reporter | None = None) -> BuildSummary:
    """Build every (or the chosen) village's archive; return what happened."""
    run = Build(data_dir, out_dir or configured_output(data_dir), options or BuildOptions(), reporter)
    summary = run.run()
    summary.audit = _audit_line(run)
    return summary


def _audit_line(run: Build) -> str:
    """The audit counts of the villages built (checks.audit_dataset on the loaded records)."""
    import dataclasses

    from .checks import audit_dataset

    if getattr(run, "dataset", None) is None:
        return ""
    try:
        dataset = dataclasses.replace(run.dataset, villages=list(getattr(run, "villages", run.dataset.villages)))
        return audit_dataset(dataset).line()
    except ArchiveError as exc:  # a county's broken rule file must not fail the build
        return f"问题台账：未检查（{exc.message}）"


configured_output = outdir.configured_output


def clean_work_files(out_dir: Path) -> None:
    """Remove leftovers of killed runs (``*.part`` temp files of atomic writes)."""
    for path in out_dir.rglob(".*.part"):
        path.unlink(missing_ok=True)