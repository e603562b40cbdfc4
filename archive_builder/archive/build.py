"""The village build: :meth:`Build.run` is the whole pipeline, read top to bottom.

load → validate → plan (content hashes) → render packets → collate boxes and record versions →
audit → manifest. Each stage is a method that takes the values the stages before it returned;
the worker processes are :mod:`archive_builder.archive.scheduler`'s. Stages overlap because the
scheduler lets them: planning hands each changed household to the workers as soon as it is
planned (so packets render while the rest are checked); a village whose packets are done has
its boxes handed to the workers and its versions recorded at once, and the audit runs while
the workers collate. A run with nothing to do ends after ``uptodate.check``; households unchanged
since the last run are not read again (``known``).

Why one module of this size: the pipeline, its stage methods and the plan records they hand
each other; a stage is read beside the ones it feeds.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Iterable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .. import __version__
from ..document import SectionPages
from ..errors import ArchiveError, OutputError, disk_full, disk_full_error
from ..problems import Problem, Severity, error, warning
from ..versions.placement import record_box_pages
from ..versions.store import STORE_DIR
from . import hashing, known, outdir, uptodate
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
from .scheduler import Scheduler, Task, bounded_jobs, default_jobs, young_gc

if TYPE_CHECKING:
    from ..config import ArchiveConfig
    from ..records.loader import Dataset, Village
    from ..validate import Validation
    from ..versions.store import VersionStore

SCHEMA_VERSION = 1
STATE_FILE = ".state/households.json"
BOX_STATE_FILE = ".state/boxes.json"
PACKETS_DIR = "分户档卡"
CHANGED_DURING_RUN = ("生成期间，数据目录以外的模板、字体或佐证材料文件有改动：本次的档卡可能有一部分按改动前的文件生成。"
                      "请再运行一次生成，受影响的户会重新生成")


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


@dataclass(frozen=True)
class Settings:
    """archive.toml, read once, with the command's options applied."""

    config: ArchiveConfig
    #: what loading archive.toml found wrong (reported with the dataset's problems)
    config_problems: tuple[Problem, ...]
    jobs: int
    #: () = each village's template set decides
    formats: tuple[str, ...]
    build_date: str

    @property
    def template_set(self) -> str:
        return self.config.templates.set


def read_settings(data_dir: Path, options: BuildOptions) -> Settings:
    """Return the build's settings: archive.toml's, overridden by the options given."""
    from ..config import load_archive_config, require_usable
    from ..records import loader  # noqa: F401 - the record models, imported once before workers fork

    config, problems = load_archive_config(data_dir / "archive.toml")
    require_usable(problems)  # (checked before writing by ``_check_inputs``; this run reads it again)
    config = config.with_overrides(templates__set=options.template_set)
    formats = options.formats
    if formats is None:  # archive.toml [output] word_copy = true asks for Word copies
        formats = ("pdf", "docx") if config.output.word_copy else ()
    return Settings(config=config, config_problems=tuple(problems),
                    jobs=default_jobs(options.jobs, config.build.workers), formats=formats,
                    build_date=options.build_date or document_date(config))


@dataclass(slots=True)  # one a household of the township: no __dict__ each
class HouseholdPlan:
    household_id: str
    village_code: str
    item_no: int
    head: str
    members: int
    household_type: str
    content_hash: str
    #: the render handed to the scheduler; None = unchanged (``result`` set)
    task: Task | None
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
    #: planned from what the last run remembered (``known``): unchanged, its version stored
    known: bool = False


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
class BuildPlan:
    """What the build will produce: the chosen villages' households, changed or not."""

    dataset: Dataset
    villages: list[VillagePlan]
    #: households.json: what each household's packet was last built from
    state: dict[str, Any]
    store: VersionStore
    #: each household's newest content hash in the store (read when stubs are planned)
    stored: dict[str, str] = field(default_factory=dict)

    def households(self) -> Iterable[tuple[VillagePlan, HouseholdPlan]]:
        return ((v, h) for v in self.villages for h in v.households)


@dataclass
class Collation:
    """Boxes handed to the workers (``tasks``) and those reused as they are."""

    options: Any  # collate.PrintOptions
    box_state: dict[str, Any]
    jobs: list[tuple[str, int, str]]  # (village code, box number, fingerprint)
    tasks: list[Task]
    files: dict[str, int]  # village code → number of boxes
    fonts: Any = None  # () -> the font configuration
    build_date: str = ""
    scheduler: Any = None
    #: villages planned whose packets are not all taken yet, in order
    rendering: list[VillagePlan] = field(default_factory=list)
    #: packets rendered in this run and taken before ``render`` (while planning)
    taken: int = 0
    #: plan_boxes' warnings by village code
    problems: dict[str, list[Problem]] = field(default_factory=dict)
    #: the villages whose boxes, packets and spine are as the last run left them
    kept: set[str] = field(default_factory=set)


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


class Build:
    """One run of ``archive-builder build``: where it reads, where it writes, what it reports."""

    def __init__(self, data_dir: Path, out_dir: Path, options: BuildOptions, reporter: Reporter | None = None):
        self.data_dir = Path(data_dir)
        self.data = self.data_dir.resolve()
        self.out = Path(out_dir)
        self.options = options
        self.reporter = reporter or SilentReporter()
        self.summary = BuildSummary()
        #: rendering failures, for the manifest's problems (the CLI reports them from ``failed``)
        self._render_problems: list[Problem] = []
        #: renders waiting for the batch conversion of their Word forms (``_convert_forms``)
        self._form_renders: list[Task] = []
        #: the record cache, where households are parked between loading and planning
        self._records: Any = None
        #: a record was let go without being parked (the audit then reads the data again)
        self._dropped = False
        #: households were loaded as stubs of what the last run found (``known``)
        self._stubs = False
        self.settings: Settings | None = None
        #: when the versions this run records were built
        self._built_at = datetime.now(UTC).isoformat(timespec="seconds")

    def run(self) -> BuildSummary:
        """Run the build; a full disk anywhere is the output folder's error, not an internal one."""
        try:
            return self._run()
        except Exception as exc:
            if not isinstance(exc, OutputError) and disk_full(exc, self.out):
                raise disk_full_error(self.out) from exc
            raise

    def _run(self) -> BuildSummary:
        """load → validate → plan → render → collate → record versions → manifest."""
        import time

        from ..records.loader import select_villages, unbuildable

        started = time.monotonic()
        self._check_inputs()
        self.out = self.summary.out_dir = outdir.prepare(self.out, self.data_dir)
        with outdir.build_lock(self.out), young_gc():
            walked = uptodate.walk_data(self.data)  # before anything is read
            recorded = uptodate.check(self.data, self.out, self.options, walked)
            if recorded is not None:  # nothing changed since the last run: report what it did
                return self._replay(recorded, time.monotonic() - started)
            # stamped before anything outside the data directory is read (the workers start below)
            watch = uptodate.watch_external(self.out, *known.external(self.out))
            uptodate.forget(self.out)
            digest = uptodate.data_digest(self.data, walked)
            clean_work_files(self.out)
            settings = self.settings = read_settings(self.data_dir, self.options)
            self._say_lowered_jobs(settings)
            with ExitStack() as later, Scheduler(settings.jobs) as scheduler:
                scheduler.start_early(functools.partial(_warm_worker, self.data, settings.config))
                dataset = self.load(settings, scheduler, later, walked)
                villages = select_villages(dataset.villages, self.options.villages)
                # a village with a broken or missing village.toml: its households are not built
                villages, unbuilt = unbuildable(dataset, villages, everything=not self.options.villages)
                self.summary.failed.extend(unbuilt)
                self.dataset, self.villages = dataset, villages  # for the audit line (``build``)
                fonts = functools.partial(_font_config, self.data, settings, villages)
                scheduler.on_start = lambda: font_set(fonts())  # workers inherit registered fonts
                validation = self.validate(dataset, settings)
                collation = self.start_collation(settings, fonts, scheduler)
                plan = self.plan(dataset, villages, validation, settings, scheduler, collation)
                self.render(plan, scheduler, collation)  # a village done: its boxes to the workers, record_versions
                audit = self.audit(dataset, villages)  # while the workers collate
                boxes = self.finish_collation(plan, collation, settings, fonts, scheduler)
                changed_meanwhile = watch.changed()
                if changed_meanwhile:  # the next run must not take this run's outputs as current
                    known.forget(self.out)
                    self._warn(CHANGED_DURING_RUN)
                else:
                    self._remember(walked, dataset, plan, validation, audit, settings, fonts)
            self.write_manifest(plan, boxes, settings)
            if not self.summary.failed and not changed_meanwhile:
                self._record_uptodate(digest, plan, villages, settings, fonts)
        self.summary.seconds = time.monotonic() - started
        return self.summary

    # ------------------------------------------------------------------ stages
    def load(self, settings: Settings, scheduler: Scheduler, later: ExitStack,
             walked: uptodate.Walked | None = None) -> Dataset:
        """Read every record (parsing only those the record cache does not hold); a household
        whose folder is as the last run found it is a stub of what that run remembered
        (:mod:`~archive_builder.archive.known`): nothing of it is read."""
        from ..records.cache import RecordCache
        from ..records.loader import keep_cached, load_dataset, park
        from ..validate import repeated

        self.reporter.stage("读取与校验数据")
        # written as parsed, a few at a time; each household's record is parked there until
        # planning takes it back (``_unpark``): the township's records are never all in memory
        records = self._records = RecordCache(self.out / ".cache" / "records.pickle", stream=True)
        later.callback(records.close)
        def loaded(household: Any) -> None:
            if records.holds(household.cache_key):
                park(household)

        remembered = known.unchanged(self.data, self.out, walked, self.options) if walked is not None else {}
        def stub(folder: Path) -> Any:
            entry = remembered.get(f"{folder.parent.name}/{folder.name}")
            if entry is None:
                return None
            keep_cached(records, entry.cache_key)  # unpark reads it if anything needs the record
            return known.stub(entry, folder)

        def read(use_known: bool) -> Dataset:
            return load_dataset(self.data_dir, cache=records, parse_many=scheduler.parse_many,
                                archive=(settings.config, list(settings.config_problems)), loaded=loaded,
                                known=stub if use_known and remembered else None)

        dataset = read(True)
        self._stubs = bool(remembered)
        if remembered and repeated(dataset):
            # a repeated 户编号 or ID number is reported where the other household's file says
            # (line and column): read every household
            dataset = read(False)
            self._stubs = False
        records.save()
        dataset.config = settings.config
        return dataset

    def _release(self, household: Any) -> None:
        """Let go of a planned household's record: parked in the record cache (the audit takes
        it back), else dropped."""
        from ..records.loader import park

        if self._records is not None and self._records.holds(household.cache_key):
            park(household)
        elif household.record is not None or household.partial is not None:
            household.record = household.partial = None
            self._dropped = True

    def _unpark(self, dataset: Dataset, village: Village, household: Any) -> None:
        from ..records.loader import unpark

        unpark(household, self._records, dataset.root, village.config.name)

    def validate(self, dataset: Dataset, settings: Settings) -> Validation:
        """Check the rules across households now; each household's own rules are checked as
        it is planned (``plan``), so its packet renders while the next one is checked."""
        from ..records.cache import RecordCache
        from ..validate import Validation

        return Validation(dataset, strict=self.options.strict,
                          cache=RecordCache(self.out / ".cache" / "rules.pickle", prune=not self._stubs, stream=True))

    def plan(self, dataset: Dataset, villages: list[Village], validation: Validation, settings: Settings,
             scheduler: Scheduler, collation: Collation) -> BuildPlan:
        """Hash every household's inputs; hand those that changed to the scheduler to render.

        A village whose packets are all rendered while later ones are planned has its boxes
        handed to the workers at once (``_collate_rendered``)."""
        from ..versions.store import VersionStore

        self.reporter.stage("比对内容哈希")
        plan = BuildPlan(dataset, [], _read_state(self.out / STATE_FILE), VersionStore(self.out))
        if self._stubs:
            plan.stored = plan.store.latest_hashes()
        errors = _errors_by_household(validation.dataset_problems())
        # with stubs, only the households that changed are hashed: their few files are read
        # without the memo (a county's takes 16 MB), which stays as it is for a later full run
        memo = None if self._stubs else hashing.HashMemo(self.out / ".cache" / "file-hashes.json")
        hashing.use_memo(memo)
        try:
            for village in villages:
                plan.villages.append(self._plan_village(plan, village, validation, errors, settings, scheduler,
                                                        collation))
                collation.rendering.append(plan.villages[-1])
                self._collate_rendered(plan, collation)
        finally:
            hashing.use_memo(None)
        if memo is not None:
            memo.save()
        # the villages not built are validated too: the report covers the whole data directory
        for village in dataset.villages:
            if all(village is not chosen for chosen in villages):
                for household in village.households:
                    if household.known is None:
                        self._unpark(dataset, village, household)
                    validation.household(village, household)
                    self._release(household)
        self.summary.problems = validation.problems()
        if validation.cache is not None:
            validation.cache.save()
        for _, household in dataset.households():
            _release_validation_data(household)
        self.summary.villages = len(plan.villages)
        self.summary.households = sum(len(v.households) for v in plan.villages) + len(self.summary.failed)
        return plan

    def _plan_village(self, plan: BuildPlan, village: Village, validation: Validation,
                      errors: dict[tuple[str, str], list[Problem]], settings: Settings,
                      scheduler: Scheduler, collation: Collation) -> VillagePlan:
        vconf, archive = village.config, settings.config.archive
        tset = template_set(settings.template_set, self.data, village.path.resolve())
        formats = settings.formats or tset.formats
        template_fingerprint = tset.fingerprint()
        vfolder = self.out / outdir.safe_file_name(f"{vconf.code}_{vconf.name}")
        vplan = VillagePlan(code=vconf.code, name=vconf.name, folder=vfolder, households=[], info={
            "code": vconf.code, "name": vconf.name, "county": archive.county, "township": archive.township,
            "year": archive.year, "fonds_no": archive.fonds_no, "retention": archive.retention,
            "fonds_name": archive.fonds_name or f"{archive.township}人民政府",
        })
        item_no, last_id = 0, None
        for household in sorted(village.households, key=lambda h: str(h.household_id)):
            # numbered by 户编号 among all the village's households, produced or not: a record
            # with errors keeps its 件号 (noted on its box's 备考表), so fixing it changes no
            # other household's cover; folders with the same 户编号 (a copied folder: an
            # error) share one, so the copy moves no other household either
            if str(household.household_id) != last_id:
                item_no, last_id = item_no + 1, str(household.household_id)
            reused = self._plan_known(plan, vplan, household, item_no, formats, errors)
            if reused is not None:
                vplan.households.append(reused)
                self.summary.unchanged += 1
                continue
            self._unpark(plan.dataset, village, household)
            hid = str(household.household_id)
            _errors_by_household(validation.household(village, household), errors)
            _release_validation_data(household)
            found = errors.get((vconf.name, hid), [])
            if household.record is None or found:
                # its own file's first error (folders sharing a 户编号 each name the other)
                own = [p for p in found if p.file == household.display] or found
                reason = own[0].message if own else "记录无法读取"
                self.summary.failed.append((hid, f"数据有误：{reason}"))
                vplan.failed.extend(found)
                if not any(entry[0] == item_no for entry in vplan.missing[-1:]):  # a 件号 missing once
                    vplan.missing.append((item_no, hid, _head_name(household)))
                self._release(household)
                continue
            pdf = _inside(self.out, vfolder / PACKETS_DIR / f"{outdir.safe_file_name(hid)}.pdf")
            docx = pdf.with_suffix(".docx") if "docx" in formats else None
            planned = plan_packet(
                plan.dataset, village, household, out_pdf=pdf, out_docx=docx, cache_dir=self.out / ".cache" / "evidence",
                item_no=item_no, build_date=settings.build_date, version_of=plan.store.next_number,
                template_fingerprint=template_fingerprint,
            )
            previous = plan.state.get(hid)
            unchanged = (
                not self.options.force
                and previous is not None
                and previous.get("content_hash") == planned.content_hash
                and previous.get("formats") == list(formats)
                and previous.get("file") == _file_stamp(pdf)
                and (docx is None or docx.is_file())
            )
            record = planned.request.record
            self._release(household)  # the plan keeps what the build needs
            vplan.households.append(HouseholdPlan(
                household_id=hid, village_code=vconf.code, item_no=item_no, head=planned.head,
                members=len(record.get("members", [])), household_type=record.get("household_type", ""),
                content_hash=planned.content_hash,
                task=None if unchanged else self._submit_render(scheduler, planned.request, tset, plan, collation),
                record_json=planned.record_json, evidence=dict(planned.evidence),
                result=previous if unchanged else None, formats=list(formats), sources=planned.sources,
            ))
            self.summary.unchanged += unchanged
        return vplan

    def _plan_known(self, plan: BuildPlan, vplan: VillagePlan, household: Any, item_no: int,
                    formats: Sequence[str], errors: dict[tuple[str, str], list[Problem]]) -> HouseholdPlan | None:
        """The plan of a stub whose packet is as the last run remembered it, else None (the
        household is then read and planned as any other)."""
        entry = household.known
        if entry is None or entry.plan is None:
            return None
        remembered, hid = entry.plan, str(household.household_id)
        if (remembered.item_no != item_no or list(remembered.formats) != list(formats)
                or any(p.is_error for p in entry.problems) or (vplan.name, hid) in errors
                or plan.stored.get(hid) != remembered.content_hash):
            return None
        # the path the last run planned (and checked to stay inside the output folder); as a
        # string: Path objects cost 0.1 s a county
        pdf = os.path.join(vplan.folder, PACKETS_DIR, f"{outdir.safe_file_name(hid)}.pdf")
        previous = plan.state.get(hid)
        if (previous is None or previous.get("content_hash") != remembered.content_hash
                or previous.get("formats") != list(formats) or previous.get("file") != _file_stamp(pdf)
                or ("docx" in formats and not os.path.isfile(pdf[:-4] + ".docx"))):
            return None
        return HouseholdPlan(
            household_id=hid, village_code=vplan.code, item_no=item_no, head=remembered.head,
            members=remembered.members, household_type=remembered.household_type,
            content_hash=remembered.content_hash, task=None, result=previous, formats=list(formats),
            sources=remembered.sources, known=True,
        )

    def _submit_render(self, scheduler: Scheduler, request: PacketRequest, tset: Any, plan: BuildPlan,
                       collation: Collation) -> Task:
        """Hand a household's render to the workers; one with Word forms waits for the batch
        conversion of every household's forms (``render``)."""
        if tset.form_sections:
            task = Task(_safe_render, (request,))
            self._form_renders.append(task)
            return task
        task = scheduler.submit(_safe_render, request, throttle=True)
        self._collate_rendered(plan, collation)
        return task

    def _collate_rendered(self, plan: BuildPlan, collation: Collation) -> None:
        """Take the packets of the villages (in order) whose renders have all finished, and
        hand their boxes to the workers, while later households are still being planned."""
        while collation.rendering:
            vplan = collation.rendering[0]
            tasks = [h.task for h in vplan.households if h.task is not None]
            if not all(t.future is not None and t.future.done() for t in tasks):
                return
            collation.rendering.pop(0)
            collation.taken += len(tasks)
            self._take_renders(plan, vplan, [t.future.result() for t in tasks])  # type: ignore[union-attr]
            self._collate_village(vplan, collation)
            self.record_versions(plan, vplan)

    def _convert_forms(self, plan: BuildPlan, scheduler: Scheduler, work: Path) -> None:
        """Fill and convert the Word forms of the households waiting for it, in one
        LibreOffice run per worker (:mod:`~archive_builder.render.batchconvert`); then hand
        their renders to the workers."""
        from ..render import batchconvert, forms

        deferred, self._form_renders = self._form_renders, []
        requests = [task.args[0] for task in deferred]
        timeouts = [float(template_set(r.template_set, r.data_dir, r.village_dir).settings.get(
            "form_timeout", forms.DEFAULT_TIMEOUT)) for r in requests]
        prepared = batchconvert.prepare_forms(
            requests, work, jobs=scheduler.jobs, timeout=max(timeouts),
            run_fill=lambda args: scheduler.gather([scheduler.submit(batchconvert.fill, *a) for a in args]))
        by_task = {id(task): scheduler.submit(_safe_render, request, throttle=True)
                   for task, request in zip(deferred, prepared, strict=True)}
        for _, household in plan.households():
            if household.task is not None and id(household.task) in by_task:
                household.task = by_task[id(household.task)]

    def render(self, plan: BuildPlan, scheduler: Scheduler, collation: Collation) -> None:
        """Wait for the packets planning handed over, noting each one's result in the state;
        each village's boxes go to the workers and its versions to the store as soon as its
        packets are done."""
        todo = sum(1 for _, h in plan.households() if h.task is not None)
        with ExitStack() as stack:
            if todo:
                self.reporter.stage("生成分户档卡")
                self.reporter.start(todo + collation.taken, "档卡")
                for _ in range(collation.taken):
                    self.reporter.advance()
            if self._form_renders:
                import tempfile

                work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ab-forms-")))
                self._convert_forms(plan, scheduler, work)
            for vplan in collation.rendering:
                tasks = [h.task for h in vplan.households if h.task is not None]
                self._take_renders(plan, vplan, scheduler.gather(tasks, self.reporter.advance))  # type: ignore[arg-type]
                self._collate_village(vplan, collation)
                self.record_versions(plan, vplan)
            collation.rendering.clear()
        _write_state(self.out / STATE_FILE, plan.state)

    def _take_renders(self, plan: BuildPlan, vplan: VillagePlan, outcomes: list[Any]) -> None:
        """Note the outcomes of a village's renders (in the order of its households)."""
        todo = [h for h in vplan.households if h.task is not None]
        for household, outcome in zip(todo, outcomes, strict=True):
            household.task = None
            if isinstance(outcome, BaseException):
                self._render_failed(household, outcome, vplan.name)
            else:
                self._rendered(household, outcome, plan.state)

    def _render_failed(self, household: HouseholdPlan, outcome: BaseException, village: str | None) -> None:
        hid = household.household_id
        message = getattr(outcome, "message", None) or f"{type(outcome).__name__}: {outcome}"
        hint = getattr(outcome, "hint", None)
        self.summary.failed.append((hid, message))
        self._render_problems.append(error(message, hint, village=village, household_id=hid))
        self.reporter.warn(f"户 {hid} 未生成：{message}" + (f"\n  提示：{hint}" if hint else ""))
        household.result = None

    def _rendered(self, household: HouseholdPlan, outcome: PacketResult, state: dict[str, Any]) -> None:
        self.summary.rendered += 1
        household.result = state[household.household_id] = {
            "content_hash": household.content_hash,
            "pdf": outcome.pdf.relative_to(self.out).as_posix(),
            "docx": outcome.docx.relative_to(self.out).as_posix() if outcome.docx else None,
            "pages": outcome.pages,
            "sections": [(s.key, s.title, s.first, s.last, s.number) for s in outcome.sections],
            "separators": tuple(outcome.separators),
            "warnings": list(outcome.warnings),
            "formats": household.formats,
            # The packet file as this run left it: a file replaced since (by a run that was
            # killed before it could record its state) is rendered again.
            "file": _file_stamp(outcome.pdf),
        }
        _compact_result(household.result)
        household.fonts = outcome.fonts
        household.packet_sha256 = outcome.sha256
        for text in outcome.warnings:
            self.reporter.warn(_naming_household(household.household_id, text))
            self.summary.warnings.append(_naming_household(household.household_id, text))

    def start_collation(self, settings: Settings, fonts: Any, scheduler: Scheduler) -> Collation:
        """Read the last run's boxes: a box whose households did not change is reused."""
        from .collate import PrintOptions

        printing = settings.config.print
        options = PrintOptions(duplex=printing.duplex, sheets_per_box=printing.sheets_per_box,
                               spine_width_mm=printing.spine_width_mm)
        return Collation(options, outdir.read_json(self.out / BOX_STATE_FILE, {}), [], [], {},
                         fonts=fonts, build_date=settings.build_date, scheduler=scheduler)

    def _collate_village(self, vplan: VillagePlan, collation: Collation) -> None:
        """Plan a village's boxes from its packets; hand those whose households changed to the workers.

        A village whose packets, numbers and missing items are all as the last run left them
        keeps its boxes without planning them again."""
        from .collate import MissingItem, PacketInfo, VillageInfo, assign_missing, box_fingerprint, plan_boxes

        options, date = collation.options, collation.build_date
        missing_items = [
            *(MissingItem(h.item_no, h.household_id, h.head) for h in vplan.households if h.result is None),
            *(MissingItem(*entry) for entry in vplan.missing),
        ]
        key = _village_key(vplan, options, date, missing_items)
        previous = collation.box_state.get(f"{vplan.code}/*")
        kept = [collation.box_state.get(f"{vplan.code}/{n}") for n in range(1, previous["boxes"] + 1)] if previous else []
        if (not self.options.force and previous is not None and previous["key"] == key
                and all(box is not None and (self.out / box["box"]["file"]).is_file() for box in kept)):
            collation.files[vplan.code] = previous["boxes"]
            collation.problems[vplan.code] = [Problem.from_json(p) for p in previous["problems"]]
            collation.kept.add(vplan.code)
            return
        info = VillageInfo(**vplan.info)
        packets = [
            PacketInfo(
                household_id=h.household_id, head=h.head, members=h.members, household_type=h.household_type,
                item_no=h.item_no, pdf=self.out / h.result["pdf"], pages=h.result["pages"],
                sections=tuple(SectionPages(*s) for s in h.result["sections"]),
                separators=tuple(h.result["separators"]), fonts=h.fonts, sha256=h.packet_sha256,
            )
            for h in vplan.households
            if h.result is not None
        ]
        hashes = {h.household_id: h.content_hash for h in vplan.households}
        problems = collation.problems.setdefault(vplan.code, [])
        boxes = plan_boxes(packets, options, problems=problems)
        # households not produced keep their number: the 备考表 of their box says it is missing
        notes = assign_missing(boxes, missing_items)
        collation.files[vplan.code] = len(boxes)
        # (written with the boxes' entries, once they are collated)
        collation.box_state[f"{vplan.code}/*"] = {"key": key, "boxes": len(boxes),
                                                  "problems": [p.to_json() for p in problems]}
        for box_no, box in enumerate(boxes, start=1):
            missing = notes[box_no - 1]
            fingerprint = box_fingerprint(vplan.info, box_no, len(boxes), options, date,
                                          [(p, hashes[p.household_id]) for p in box], missing)
            previous = collation.box_state.get(f"{vplan.code}/{box_no}")
            if (not self.options.force and previous is not None and previous["fingerprint"] == fingerprint
                    and (self.out / previous["box"]["file"]).is_file()):
                continue
            collation.jobs.append((vplan.code, box_no, fingerprint))
            collation.tasks.append(collation.scheduler.submit(
                _collate_box, collation.fonts(), info, box_no, len(boxes), box, vplan.folder, options, date, missing))

    def audit(self, dataset: Dataset, villages: list[Village]) -> dict[int, dict[str, int]]:
        """Count the built villages' problems by the audit rules (the summary's 问题台账 line).

        Each household's record is taken back from the record cache for its rules, one village
        at a time; a stub's counts are the last run's. Returns the counts of each household
        audited now (by ``id``), for the next run to remember.
        """
        import dataclasses

        from ..checks.audit import _collector_paused, audit_counts, format_line

        if self._dropped:  # a record could not be parked: the audit reads the data directory
            self.summary.audit = _audit_line(self)
            return {}
        counted: dict[int, dict[str, int]] = {}
        shared: dict[tuple[tuple[str, int], ...], dict[str, int]] = {}
        def found(household: Any, counts: dict[str, int]) -> None:  # most households' counts are alike
            counted[id(household)] = shared.setdefault(tuple(sorted(counts.items())), counts)

        try:
            with _collector_paused():
                counts = audit_counts(dataclasses.replace(dataset, villages=villages), parked=self._records,
                                      known=lambda h: h.known.audit if h.known is not None else None, found=found)
            self.summary.audit = format_line(counts)
        except ArchiveError as exc:  # a county's broken rule file must not fail the build
            self.summary.audit = f"问题台账：未检查（{exc.message}）"
        return counted

    def record_versions(self, plan: BuildPlan, vplan: VillagePlan) -> None:
        """Add a version to the store for each packet of the village whose content changed, as
        soon as its packets are rendered; let go of the records' JSON."""
        from ..versions.store import Entry

        assert self.settings is not None
        entries = [
            Entry(
                household_id=h.household_id, village_code=vplan.code, content_hash=h.content_hash,
                record_json=h.record_json, packet_pdf=self.out / h.result["pdf"], evidence_hashes=h.evidence,
                template_set=self.settings.template_set, program_version=__version__, pages=h.result["pages"],
                built_at=self._built_at, packet_sha256=h.packet_sha256 or None,
            )
            for h in vplan.households
            if h.result is not None and not h.known  # a stub's version is the store's newest
        ]
        # one batch a village: its blobs are made durable together, then its rows
        self.summary.versions_recorded += sum(v is not None for v in plan.store.record_many(entries))
        for h in vplan.households:  # ~10 KB a household (boxes are planned): a county's would not fit
            h.record_json, h.evidence, h.fonts, h.packet_sha256 = b"", {}, (), ""

    def finish_collation(self, plan: BuildPlan, collation: Collation, settings: Settings, fonts: Any,
                         scheduler: Scheduler) -> dict[str, tuple[list[dict[str, Any]], str]]:
        """Wait for the boxes; write the spines of villages whose boxes changed (on the workers),
        drop stale files, record in the version store where each packet sits in its box.

        Returns each village's boxes (as recorded in boxes.json) and its spine file.
        """
        from .collate import VillageInfo, remove_stale_boxes

        for vplan in plan.villages:  # plan_boxes' warnings, in the villages' order
            self.summary.problems.extend(collation.problems.get(vplan.code, ()))
        if collation.tasks:
            self.reporter.stage("整理村档案盒")
            self.reporter.start(len(collation.tasks), "盒")
        box_state = collation.box_state
        changed_villages = set()
        for (code, box_no, fingerprint), result in zip(
                collation.jobs, scheduler.gather(collation.tasks, self.reporter.advance), strict=True):
            box_state[f"{code}/{box_no}"] = {"fingerprint": fingerprint, "box": {
                "file": result.file.relative_to(self.out).as_posix(), "box_no": result.box_no,
                "pages": result.pages, "sheets": result.sheets, "first_item": result.first_item,
                "last_item": result.last_item, "households": [list(h) for h in result.households],
                "numbers": [list(n) for n in result.numbers],
            }}
            changed_villages.add(code)
        villages: dict[str, tuple[list[dict[str, Any]], str]] = {}
        spines = []
        for vplan in plan.villages:
            info = VillageInfo(**vplan.info)
            count = collation.files[vplan.code]
            boxes = [box_state[f"{vplan.code}/{n}"]["box"] for n in range(1, count + 1)]
            for n in range(count + 1, 10_000):  # forget boxes the village no longer has
                if box_state.pop(f"{vplan.code}/{n}", None) is None:
                    break
            if vplan.code not in collation.kept:
                remove_stale_boxes(info, vplan.folder, [self.out / b["file"] for b in boxes])
            self._remove_stale_packets(vplan)
            spine = vplan.folder / f"{outdir.safe_file_name(f'{vplan.code}_{vplan.name}')}_竖条.pdf"
            if boxes and (vplan.code in changed_villages or not spine.is_file()):
                spines.append(scheduler.submit(_write_spine, fonts(), info, boxes, self.out, spine,
                                               collation.options.spine_width_mm))
                self.summary.villages_collated += 1
            villages[vplan.code] = (boxes, spine.relative_to(self.out).as_posix() if boxes else "")
        # a village kept as it was has its placements recorded already (before its boxes.json)
        moved = [v for v in plan.villages if v.code not in collation.kept]
        record_box_pages(plan.store, ((h.household_id, h.content_hash, h.result) for v in moved for h in v.households),
                         {v.code: villages[v.code] for v in moved})
        scheduler.gather(spines)
        _write_state(self.out / BOX_STATE_FILE, box_state)
        return villages

    def write_manifest(self, plan: BuildPlan, boxes: dict[str, tuple[list[dict[str, Any]], str]],
                       settings: Settings) -> None:
        """Write manifest.json: every village's boxes, spine and households, and the problems."""
        villages: list[dict[str, Any]] = []
        for vplan in plan.villages:
            village_boxes, spine = boxes.get(vplan.code, ([], ""))
            where: dict[str, tuple[int, int, int]] = {}
            for box in village_boxes:
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
                "boxes": [{k: b[k] for k in ("file", "pages", "sheets", "first_item", "last_item")}
                          for b in village_boxes],
                "spine_labels": spine or None,
                "households": households,
            })
        failed = [{"household_id": hid, "reason": reason} for hid, reason in self.summary.failed]
        # what rendering found (unreadable evidence, rasterised pages, characters no font has),
        # for every packet in the folder, rendered by this run or an earlier one
        rendering = [
            warning(_naming_household(h.household_id, text), village=vplan.name, household_id=h.household_id)
            for vplan, h in plan.households()
            if h.result is not None
            for text in h.result.get("warnings", ())
        ]
        kept_villages, kept_failed = self._unselected_entries(plan)
        # in the data directory's order (a village kept for a broken village.toml: by its folder)
        folders = sorted([*(v.path.name for v in plan.dataset.villages), *(f.name for f in plan.dataset.unread)])
        order = {v.config.code: folders.index(v.path.name) for v in plan.dataset.villages
                 if v.config.code and not v.errors}

        def place(entry: dict[str, Any]) -> int:
            code = str(entry.get("code") or "")
            found = order.get(code)
            if found is None:
                found = next((i for i, name in enumerate(folders) if code and name.startswith(code)), len(folders))
            return found

        villages = sorted([*villages, *kept_villages], key=place)
        failed += kept_failed
        manifest = {
            "schema_version": SCHEMA_VERSION,
            "program_version": __version__,
            "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "build_date": settings.build_date,
            "villages": villages,
            "failed": failed,
            "problems": [p.to_json() for p in [*self.summary.problems, *self._render_problems, *rendering]],
        }
        outdir.atomic_write_json(self.out / "manifest.json", manifest, depth=4)  # a line a household

    def _remember(self, walked: uptodate.Walked, dataset: Dataset, plan: BuildPlan, validation: Validation,
                  audited: dict[int, dict[str, int]], settings: Settings, fonts: Any) -> None:
        """Remember what this run found of each household, for the next run's stubs (``known``)."""
        planned = {(h.village_code, h.household_id): h for _, h in plan.households()}
        built = {v.code for v in plan.villages}

        def remembered(village: Village, household: Any) -> known.KnownHousehold | None:
            if not self._records.holds(household.cache_key):
                return None
            previous = household.known
            h = planned.get((village.config.code, str(household.household_id)))
            if (previous is not None and id(household) not in audited
                    and (h.known if h is not None else village.config.code not in built)):
                return previous  # nothing of it was read again
            result: known.KnownPlan | None
            if h is not None and h.result is not None:
                result = known.KnownPlan(h.item_no, h.head, h.members, h.household_type, h.content_hash,
                                         tuple(h.formats), tuple(h.sources))
            else:  # not planned: a village not built keeps what an earlier run planned
                result = previous.plan if previous is not None and village.config.code not in built else None
            return known.remember(household.folder, household, problems=validation.household(village, household),
                                  plan=result, audit=audited.get(id(household),
                                                                 previous.audit if previous is not None else None))

        sources = [s for _, h in plan.households() for s in h.sources]
        sources += [s for _, h in dataset.households() if h.known is not None and h.known.plan is not None
                    for s in h.known.plan.sources]
        trees, files = self._external_inputs(dataset.villages, sources, settings, fonts)
        known.write(self.out, self.data, walked, self.options, trees=trees, files=files,
                    folders=[f"{h.folder.parent.name}/{h.folder.name}" for _, h in dataset.households()],
                    households=(e for v, h in dataset.households() if (e := remembered(v, h)) is not None))

    def _external_inputs(self, villages: Sequence[Village], sources: Iterable[str], settings: Settings,
                         fonts: Any) -> tuple[list[str], list[str]]:
        """The folders and files outside the data directory that the outputs depend on: the
        template sets, the font folders and files, and evidence read from elsewhere."""
        import os

        from ..render.fonts import font_search_dirs

        tsets = [template_set(settings.template_set, self.data, v.path.resolve()) for v in villages]
        faces = font_set(fonts(), register=False) if villages else None
        files = [str(f.path) for f in ([*faces.faces.values(), *faces.fallbacks] if faces else [])]
        inside = f"{self.data}{os.sep}"
        files += [s for s in sources if not s.startswith(inside)]
        trees = [str(p) for t in tsets for p in t.search_path if p.is_dir()]
        trees += [str(p) for p in font_search_dirs() if p.is_dir()]
        return trees, files

    # ------------------------------------------------------------------ helpers
    def _say_lowered_jobs(self, settings: Settings) -> None:
        lowered = bounded_jobs(self.options.jobs, settings.config.build.workers)[1]
        if lowered:
            self._warn(lowered)

    def _warn(self, text: str) -> None:
        self.summary.warnings.append(text)
        self.reporter.warn(text)

    def _check_inputs(self) -> None:
        """Fail on an unusable data directory or an unknown ``--village`` before the output
        folder is created: a build that cannot start leaves nothing behind."""
        from ..records.loader import open_villages, select_villages

        select_villages(open_villages(self.data_dir), self.options.villages)

    def _replay(self, recorded: dict[str, Any], seconds: float) -> BuildSummary:
        """Report what the last run reported: nothing changed since it (see uptodate.py)."""
        self.summary.villages = recorded["villages"]
        self.summary.households = self.summary.unchanged = recorded["households"]
        self.summary.problems = [Problem.from_json(p) for p in recorded["problems"]]
        self.summary.seconds = seconds
        return self.summary

    def _record_uptodate(self, digest: str, plan: BuildPlan, villages: list[Village], settings: Settings,
                         fonts: Any) -> None:
        """Remember the stat signature of this run's inputs and outputs for the next run."""
        tsets = [template_set(settings.template_set, self.data, v.path.resolve()) for v in villages]
        if any(t.form_sections for t in tsets):
            return  # their packets also depend on whether LibreOffice is installed
        trees, files = self._external_inputs(villages, (s for _, h in plan.households() for s in h.sources),
                                             settings, fonts)
        uptodate.record(digest, self.out, self.options, trees=trees, files=files, summary={
            "villages": self.summary.villages, "households": self.summary.households,
            "problems": [p.to_json() for p in self.summary.problems],
        })

    def _remove_stale_packets(self, vplan: VillagePlan) -> None:
        """Delete packets in the village's 分户档卡 folder of households no longer in its archive.

        A household removed from the data, or one not produced this run, would otherwise keep an
        outdated packet beside the current ones, ready to be printed by mistake (its versions
        stay in the version store).
        """
        import os

        folder = vplan.folder / PACKETS_DIR
        prefix = folder.relative_to(self.out).as_posix() + "/"
        # (names compared as strings: Path objects cost 0.1 s a county)
        keep = {
            path[len(prefix):]
            for h in vplan.households
            if h.result is not None
            for path in (h.result["pdf"], h.result.get("docx"))
            if path and path.startswith(prefix)
        }
        try:
            entries = list(os.scandir(folder))
        except OSError:
            return
        for entry in entries:
            if entry.name.endswith((".pdf", ".docx")) and not entry.name.startswith(".") and entry.name not in keep:
                Path(entry.path).unlink(missing_ok=True)

    def _unselected_entries(self, plan: BuildPlan) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Return the last manifest's villages (and failed households) that this run did not build.

        The manifest describes the whole output folder: with ``--village`` the folder still holds
        the other villages' boxes, and a village not built because its ``village.toml`` is
        broken or missing keeps its earlier boxes; their entries are kept while their box files
        exist. (The failed households of a broken village are this run's.)
        """
        built = {v.code for v in plan.villages}
        others = {
            v.config.code: {str(h.household_id) for h in v.households}
            for v in plan.dataset.villages
            if self.options.villages and v.config.code not in built and not v.errors
        }
        broken = [v.path.name for v in plan.dataset.villages if v.errors]
        broken += [folder.name for folder in plan.dataset.unread]
        if not others and not broken:
            return [], []
        previous = outdir.read_json(self.out / "manifest.json", {})

        def kept(entry: dict[str, Any]) -> bool:
            code = str(entry.get("code") or "")
            if code in built:
                return False
            return (code in others or any(code and name.startswith(code) for name in broken)) and all(
                (self.out / b["file"]).is_file() for b in entry.get("boxes", []))

        villages = [v for v in previous.get("villages", []) if kept(v)]
        ids = {hid for v in villages if v["code"] in others for hid in others[v["code"]]}
        failed = [f for f in previous.get("failed", []) if f.get("household_id") in ids]
        return villages, failed


def _write_state(path: Path, value: Any) -> None:
    """Write one of the build's own state files: a line an entry, streamed (see
    ``outdir.atomic_write_json``)."""
    outdir.atomic_write_json(path, value, depth=1)


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


#: the section layouts of packets seen by this process (``_compact_result``)
_SECTIONS: dict[tuple[Any, ...], tuple[Any, ...]] = {}


def _read_state(path: Path) -> dict[str, Any]:
    """households.json, each entry's section lists made tuples of shared strings as it is
    decoded: 5.6 KB an entry as read, 1.5 KB so (20,000 households: 80 MB less, never all
    held at once)."""
    import json

    def entry(value: dict[str, Any]) -> dict[str, Any]:
        if "sections" in value and "content_hash" in value:
            _compact_result(value)
        return value

    try:
        found = json.loads(path.read_bytes(), object_hook=entry)
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def _compact_result(result: dict[str, Any]) -> None:
    import sys

    intern = sys.intern
    sections = tuple(tuple(intern(v) if isinstance(v, str) else v for v in section)
                     for section in result.get("sections", ()))
    if len(_SECTIONS) > 100_000:
        _SECTIONS.clear()
    # packets of as many pages share their layout: one tuple for all of them
    result["sections"] = _SECTIONS.setdefault(sections, sections)
    result["separators"] = tuple(result.get("separators", ()))
    result["formats"] = [intern(f) for f in result.get("formats", ())]


def _village_key(vplan: VillagePlan, options: Any, date: str, missing: Sequence[Any]) -> str:
    """The digest of everything a village's boxes are planned from (see ``_collate_village``)."""
    from .collate import COLLATE_FORMAT

    return hashlib.sha256(hashing.canonical_json([
        vplan.info, options.__dict__, date, __version__, COLLATE_FORMAT,
        [[h.household_id, h.item_no, h.content_hash, h.result["pdf"], h.result.get("docx"), h.result["pages"],
          h.result["sections"], h.result["separators"]] for h in vplan.households if h.result is not None],
        [[m.item_no, m.household_id, m.head] for m in missing],
    ])).hexdigest()


def _naming_household(household_id: str, text: str) -> str:
    """A packet's warning as a village build shows it: with the household it is about."""
    return text if text.startswith(f"户 {household_id}") else f"户 {household_id}：{text}"


def _head_name(household: Any) -> str:
    """The 户主's name of a household whose record has errors (empty when it cannot be read)."""
    for record in (household.record, getattr(household, "partial", None)):
        if record is not None and record.head is not None:
            return str(record.head.name)
    return ""


def _file_stamp(path: Path | str) -> list[int] | None:
    """Return ``[size, mtime_ns]`` of a file, or None when it does not exist."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return [stat.st_size, stat.st_mtime_ns]


def _errors_by_household(problems: Iterable[Problem],
                         into: dict[tuple[str, str], list[Problem]] | None = None) -> dict[tuple[str, str], list[Problem]]:
    """Return the errors of ``problems`` by (village name, 户编号), added to ``into``."""
    found = {} if into is None else into
    for problem in problems:
        if problem.severity is Severity.error and problem.household_id:
            found.setdefault((problem.village or "", problem.household_id), []).append(problem)
    return found


def _font_config(data: Path, settings: Settings, villages: Sequence[Village]) -> dict[str, Any]:
    """The fonts the build's documents use (the template set's, then archive.toml's); with no
    village to build (each one's village.toml has an error), the data directory's set's."""
    tset = template_set(settings.template_set, data, villages[0].path.resolve() if villages else data)
    return configured_fonts(tset, settings.config, data)


def _warm_worker(data: Path, config: ArchiveConfig) -> None:
    """Load the rendering modules and the fonts in a worker started early (see scheduler).

    The fonts are those of archive.toml and the data directory's template set (a village's
    own templates may add more later); the worker reads them itself, so the build process
    does not wait for it.
    """
    from PIL import Image

    from ..render import evidence, pdf  # noqa: F401 - evidence: loaded by the first photo
    from . import collate  # noqa: F401 - imported for the side effect of loading it

    Image.preinit()  # the common image plugins (JPEG, PNG …), also loaded by the first photo
    tset = template_set(config.templates.set, data, data)
    pdf.warm_up(font_set(configured_fonts(tset, config, data)))


def _write_spine(font_config: dict[str, Any], info: Any, boxes: list[dict[str, Any]], out: Path, spine: Path,
                 width_mm: int) -> None:
    """Write a village's spine labels (in a worker: its fonts are registered there already)."""
    from ..render.spine import write_spine_labels
    from .collate import BoxResult

    results = [
        BoxResult(file=out / b["file"], box_no=b["box_no"], pages=b["pages"], sheets=b["sheets"],
                  first_item=b["first_item"], last_item=b["last_item"],
                  households=tuple(tuple(h) for h in b["households"]))
        for b in boxes
    ]
    write_spine_labels([(info, r) for r in results], spine, width_mm=width_mm, fonts=font_set(font_config))


def _collate_box(font_config: dict[str, Any], *args: Any) -> Any:
    """Collate one box in a worker process (fonts are discovered once per process)."""
    from .collate import collate_box

    fonts = font_set(font_config)
    info, box_no, box_count, packets, folder, options, date, missing = args
    return collate_box(info, box_no, box_count, packets, folder, options, fonts=fonts, date=date, missing=missing)


def _safe_render(request: PacketRequest) -> PacketResult | BaseException:
    """Render in a worker; return the exception instead of raising so one bad household is isolated."""
    try:
        return render_packet(request)
    except ArchiveError as exc:
        return exc
    except Exception as exc:  # noqa: BLE001 - reported per household, never kills the build
        from ..errors import RenderError

        return RenderError(f"户 {request.household_id} 的档卡生成失败：{type(exc).__name__}: {exc}")


def build(data_dir: Path, out_dir: Path | None = None, options: BuildOptions | None = None,
          reporter: Reporter | None = None) -> BuildSummary:
    """Build every (or the chosen) village's archive; return what happened."""
    return Build(data_dir, out_dir or configured_output(data_dir), options or BuildOptions(), reporter).run()


def _audit_line(run: Build) -> str:
    """The audit counts of the villages built, read again from the data directory (when the
    build could not park every record: see ``Build.audit``), with the record cache the build
    has just written."""
    from ..checks.audit import run_audit

    if getattr(run, "dataset", None) is None:  # nothing was built (no change since the last run)
        return ""
    try:
        return run_audit(run.data_dir, villages=run.options.villages,
                         record_cache=run.out / ".cache" / "records.pickle",  # this build's, also with -o
                         stream=True).line()  # one village's records in memory at a time
    except ArchiveError as exc:  # a county's broken rule file must not fail the build
        return f"问题台账：未检查（{exc.message}）"


configured_output = outdir.configured_output


def clean_work_files(out_dir: Path) -> None:
    """Remove leftovers of killed runs: ``*.part`` temp files of atomic writes, and the version
    store's staged blobs (``tmp-*`` in its blob folder: written, never committed)."""
    for path in out_dir.rglob(".*.part"):
        path.unlink(missing_ok=True)
    for path in (out_dir / STORE_DIR / "blobs").glob("tmp-*"):
        path.unlink(missing_ok=True)