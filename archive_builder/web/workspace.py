"""The warm index of one data directory for the web app.

``Workspace`` keeps the parsed records of one data directory warm, indexed once for search,
so a page of a 2,000-household township is a slice of a list, not a walk of the disk; it
reloads what changed on disk (by file stamps) before answering.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import OutputError, StoreError, ValidationFailed
from ..problems import Problem
from .builds import BuildBusy, BuildJob

# --- the warm index -----------------------------------------------------------------------


@dataclass
class Row:
    """One household as listed and searched."""

    household_id: str
    village_code: str
    village_name: str
    head: str
    names: tuple[str, ...]
    members: int
    household_type: str
    poverty_status: str
    monitor: str
    errors: int
    warnings: int
    problems: list[Problem]
    loaded: Any  # records.loader.LoadedHousehold
    haystack: str = ""
    id_numbers: frozenset[str] = frozenset()

    @property
    def status(self) -> str:
        return self.monitor or self.poverty_status or ""


@dataclass
class VillageInfo:
    code: str
    name: str
    rows: list[Row] = field(default_factory=list)

    @property
    def households(self) -> int:
        return len(self.rows)

    @property
    def people(self) -> int:
        return sum(r.members for r in self.rows)

    @property
    def errors(self) -> int:
        return sum(r.errors for r in self.rows)

    @property
    def warnings(self) -> int:
        return sum(r.warnings for r in self.rows)

    def counts(self, attribute: str, empty: str = "（未填）") -> list[tuple[str, int]]:
        counter = Counter(getattr(r, attribute) or empty for r in self.rows)
        return sorted(counter.items(), key=lambda kv: -kv[1])


def _row(village: Any, household: Any, problems: list[Problem]) -> Row:
    record = household.record or household.partial
    hid = str(household.household_id)
    names: tuple[str, ...] = ()
    head = htype = status = monitor = ""
    if record is not None:
        names = tuple(str(m.name) for m in record.members)
        head = next((str(m.name) for m in record.members if m.relation == "户主"), names[0] if names else "")
        htype = str(record.household_type or "")
        status = str(record.poverty_status or "")
        monitor = str(record.monitor.category) if record.monitor is not None else ""
    errors = sum(1 for p in problems if p.is_error)
    row = Row(hid, str(village.config.code), str(village.config.name), head, names, len(names), htype,
              status, monitor, errors, len(problems) - errors, problems, household)
    if record is not None:
        row.id_numbers = frozenset(str(m.id_number) for m in record.members if m.id_number)
    # a member's 公民身份号码 finds the household too (the lists show no ID numbers)
    row.haystack = " ".join((hid, *names, *sorted(row.id_numbers))).lower()
    return row


@dataclass(frozen=True)
class BoxStatus:
    """Whether one village's boxes hold its latest data (``Workspace.box_status``).

    ``state``: "current", "stale" (``changed`` households differ from their packet in the
    boxes), "unknown" (the build's records cannot tell) or "none" (no boxes yet).
    """

    state: str
    changed: int = 0
    #: the boxes (numbers from 1) holding a household whose packet is out of date
    boxes: frozenset[int] = frozenset()

    @property
    def text(self) -> str:
        if self.state == "current":
            return "已是最新数据"
        if self.state == "stale":
            return f"需要重新整理（{self.changed} 户有改动）" if self.changed else "需要重新整理"
        if self.state == "unknown":
            return "可能需要重新整理（设置、模板或日期有变化，生成一次即可核对）"
        return "尚未生成"


def _village_box_status(info: VillageInfo, built: dict[str, Any] | None, remembered: dict[str, Any],
                        packets: dict[str, Any], boxes: dict[str, Any], out_dir: Path) -> BoxStatus:
    if not built or not built.get("boxes"):
        return BoxStatus("none")
    if not remembered:
        return BoxStatus("unknown")
    in_boxes: dict[str, int] = {}
    for name, entry in boxes.items():
        if name.startswith(f"{info.code}/") and isinstance(entry, dict) and isinstance(entry.get("box"), dict):
            number = entry["box"].get("box_no")
            in_boxes.update((str(h[0]), number) for h in entry["box"].get("households", []) if h)
    changed = 0
    stale: set[int] = set()
    for row in info.rows:
        folder = f"{row.loaded.folder.parent.name}/{row.loaded.folder.name}"
        entry = remembered.get(folder)
        packet = packets.get(row.household_id)
        if (entry is None or entry.plan is None or not isinstance(packet, dict)
                or packet.get("content_hash") != entry.plan.content_hash or row.household_id not in in_boxes):
            changed += 1
            number = in_boxes.get(row.household_id)
            if isinstance(number, int):
                stale.add(number)
            else:  # a new household goes into the last box (or a new one)
                stale.add(len(built["boxes"]))
    if len(in_boxes) != len(info.rows):  # a household removed (or one the boxes could not take)
        changed = max(changed, 1)
    for number, box in enumerate(built["boxes"], 1):
        relative = box.get("file") if isinstance(box, dict) else None
        if not isinstance(relative, str) or not (out_dir / relative).is_file():
            stale.add(number)
    return BoxStatus("stale", changed, frozenset(stale)) if changed or stale else BoxStatus("current")


class Workspace:
    """One data directory and its output folder, loaded once and kept in memory."""

    def __init__(self, data_dir: Path, out_dir: Path | None = None) -> None:
        from ..archive.outdir import configured_output

        self.data_dir = Path(data_dir).resolve()
        if not (self.data_dir / "archive.toml").is_file():
            from ..errors import DataDirError

            raise DataDirError(f"{data_dir} 不是数据目录（其中没有 archive.toml）",
                               hint="请指定含 archive.toml 和各村文件夹的数据目录")
        self.out_dir = Path(out_dir).resolve() if out_dir else configured_output(self.data_dir)
        self.lock = threading.RLock()
        self.rows: list[Row] = []
        self.by_id: dict[str, Row] = {}
        self.villages: list[VillageInfo] = []
        self.dataset_problems: list[Problem] = []
        self.config: Any = None
        self.township = ""
        self.loaded_at = 0.0
        self.up_to_date: bool | None = None
        self._box_status: tuple[Any, dict[str, BoxStatus]] | None = None
        self._remembered: tuple[Any, dict[str, Any]] | None = None
        self._ledger_counts: dict[str, tuple[Any, dict[str, int]]] = {}
        self._counting = False
        self.job = BuildJob(self)

    # loading ------------------------------------------------------------------------------
    def load(self) -> None:
        """(Re)read and validate the data directory; index every household."""
        from ..records.cache import RecordCache
        from ..records.loader import load_dataset
        from ..validate import validate_dataset

        cache_dir = self.out_dir / ".cache"
        records = RecordCache(cache_dir / "records.pickle") if (cache_dir / "records.pickle").is_file() else None
        rules = RecordCache(cache_dir / "rules.pickle") if (cache_dir / "rules.pickle").is_file() else None
        dataset = load_dataset(self.data_dir, cache=records)
        problems = validate_dataset(dataset, cache=rules)
        by_household: dict[str, list[Problem]] = {}
        general: list[Problem] = []
        for p in problems:
            (by_household.setdefault(p.household_id, []) if p.household_id else general).append(p)
        rows: list[Row] = []
        villages: list[VillageInfo] = []
        for village in dataset.villages:
            info = VillageInfo(str(village.config.code), str(village.config.name))
            for household in village.households:
                row = _row(village, household, by_household.get(str(household.household_id), []))
                info.rows.append(row)
                rows.append(row)
            villages.append(info)
        with self.lock:
            self.config = dataset.config
            archive = dataset.config.archive
            self.township = f"{archive.county or ''}{archive.township or ''}"
            self.rows, self.villages, self.dataset_problems = rows, villages, general
            self.by_id = {r.household_id: r for r in rows}
            self.loaded_at = time.time()
        self.refresh_up_to_date()
        self.box_status()  # worked out with the records, not on the overview's first request

    def ensure_loaded(self) -> None:
        if not self.loaded_at:
            with self.lock:
                if not self.loaded_at:
                    self.load()

    def box_status(self) -> dict[str, BoxStatus]:
        """Whether each village's boxes (what gets printed) hold its latest data, by village code.

        Decided by the build's own records, not guessed: the run's signature
        (``archive/uptodate.py``) when nothing at all changed; else, household by household,
        what the last run remembered (``archive/known.py``: the stamps of each household
        folder and the content hash planned from them) against the packet each box was
        collated from (``.state/households.json``) and the households the boxes hold
        (``.state/boxes.json``). A village none of this can vouch for (settings, templates,
        program version or the day changed since) is "unknown": the next build finds out.
        The answer is kept until a file of the data directory or of the build's state changes.
        """
        from ..archive import known, uptodate
        from ..archive.build import BOX_STATE_FILE, STATE_FILE, BuildOptions
        from ..archive.outdir import read_json

        walked = uptodate.walk_data(self.data_dir)
        stamps: list[tuple[int, int, int] | None] = []
        for name in (uptodate.STATE_FILE, known.KNOWN_FILE, STATE_FILE, BOX_STATE_FILE, "manifest.json"):
            try:
                st = (self.out_dir / name).stat()
                stamps.append((st.st_size, st.st_mtime_ns, st.st_ino))
            except OSError:
                stamps.append(None)
        key = (hash(tuple(walked)), tuple(stamps), self.loaded_at)
        cached = self._box_status
        if cached is not None and cached[0] == key:
            return cached[1]
        manifest = self.manifest()
        built = {str(v.get("code")): v for v in manifest.get("villages", []) if isinstance(v, dict)}
        options = BuildOptions()
        found: dict[str, BoxStatus] = {}
        try:
            everything_current = uptodate.check(self.data_dir, self.out_dir, options, walked) is not None
        except Exception:  # noqa: BLE001 - an unreadable state file means "not known to be current"
            everything_current = False
        remembered = known.unchanged(self.data_dir, self.out_dir, walked, options)
        if everything_current:
            for info in self.villages:
                found[info.code] = BoxStatus("current") if info.code in built else BoxStatus("none")
        else:
            packets = read_json(self.out_dir / STATE_FILE, {})
            boxes = read_json(self.out_dir / BOX_STATE_FILE, {})
            packets = packets if isinstance(packets, dict) else {}
            boxes = boxes if isinstance(boxes, dict) else {}
            for info in self.villages:
                found[info.code] = _village_box_status(info, built.get(info.code), remembered, packets, boxes,
                                                       self.out_dir)
        self._box_status = (key, found)
        self._remembered = (self._village_keys(walked), remembered)
        self.up_to_date = all(s.state == "current" for s in found.values()) if found else False
        return found

    # the 问题台账's counts ---------------------------------------------------------------------
    def ledger_counts(self, *, fresh: bool = True) -> dict[str, dict[str, int] | None]:
        """Each village's 问题台账 counts by 严重程度 (None: being counted now, in the background).

        The same audit as the ledger page (``checks.audit``): taken from what the last build
        remembered of each unchanged household (``known``: its audit's counts), else from the
        village's ledger as last computed for the same data, else computed once in a
        background thread, one village after another, so the overview never waits for it.
        """
        import datetime as dt

        if fresh or self._remembered is None:  # (else box_status has just looked at the data directory)
            self.box_status()
        keys, remembered = self._remembered or ({}, {})
        today = dt.date.today()
        found: dict[str, dict[str, int] | None] = {}
        missing: list[tuple[str, Any]] = []
        for info in self.villages:
            key = (keys.get(info.code), today)
            cached = self._ledger_counts.get(info.code)
            if cached is not None and cached[0] == key:
                found[info.code] = cached[1]
                continue
            entries = [remembered.get(f"{r.loaded.folder.parent.name}/{r.loaded.folder.name}") for r in info.rows]
            if all(e is not None and e.audit is not None for e in entries):
                counts: Counter[str] = Counter()
                for entry in entries:
                    counts.update(entry.audit)  # type: ignore[union-attr]
                found[info.code] = dict(counts)
            else:
                found[info.code] = None
                missing.append((info.code, key))
        if missing:
            self._count_ledgers(missing)
        return found

    def _village_keys(self, walked: list[tuple[str, int]]) -> dict[str, int]:
        """A digest of the stamps of each village's folder and of what all villages share
        (archive.toml, rules): a village's ledger is counted again only when one of them changed."""
        folders = {r.loaded.folder.parent.name: info.code for info in self.villages for r in info.rows[:1]}
        shared: list[tuple[str, int]] = []
        by_folder: dict[str, list[tuple[str, int]]] = {}
        for rel, stamp in walked:
            top = rel.split("/", 1)[0]
            (by_folder.setdefault(top, []) if top in folders else shared).append((rel, stamp))
        common = hash(tuple(shared))
        return {code: hash((common, tuple(by_folder.get(folder, ())))) for folder, code in folders.items()}

    def remember_ledger(self, code: str, rows: list[Any]) -> None:
        """Keep the counts of a village's ledger just computed (by the ledger page) for the overview."""
        import datetime as dt

        from ..archive import uptodate

        key = (self._village_keys(uptodate.walk_data(self.data_dir)).get(code), dt.date.today())
        self._ledger_counts[code] = (key, dict(Counter(str(r.severity) for r in rows)))

    def _count_ledgers(self, villages: list[tuple[str, Any]]) -> None:
        """Count the ledgers of ``villages`` ((code, key) pairs) in one background thread."""
        with self.lock:
            if self._counting:
                return
            self._counting = True

        def run() -> None:
            from ..checks.audit import village_ledger

            try:
                for code, key in villages:
                    try:
                        rows = village_ledger(self.data_dir, code)
                    except Exception:  # noqa: BLE001, S112 - the ledger page shows the error itself
                        continue
                    self._ledger_counts[code] = (key, dict(Counter(str(r.severity) for r in rows)))
            finally:
                self._counting = False

        threading.Thread(target=run, daemon=True, name="ledger-counts").start()

    def wait_for_ledger_counts(self, timeout: float = 120) -> None:
        """Wait until the background counting has finished (for tests and the benchmark)."""
        deadline = time.monotonic() + timeout
        while self._counting and time.monotonic() < deadline:
            time.sleep(0.05)

    def refresh_up_to_date(self) -> None:
        """Forget the boxes' status (it is worked out again when a page asks)."""
        self._box_status = None
        self.up_to_date = None

    # queries ------------------------------------------------------------------------------
    def village(self, code: str) -> VillageInfo | None:
        return next((v for v in self.villages if v.code == code), None)

    def row(self, household_id: str) -> Row | None:
        return self.by_id.get(household_id)

    def search(self, rows: list[Row], query: str = "", status: str = "", problems: bool = False) -> list[Row]:
        query = query.strip().lower()
        found = rows
        if query:
            found = [r for r in found if query in r.haystack]
        if status:
            found = [r for r in found if status in (r.household_type, r.poverty_status, r.monitor)]
        if problems:
            found = [r for r in found if r.errors or r.warnings]
        return found

    def manifest(self) -> dict[str, Any]:
        from ..archive.outdir import read_json

        value = read_json(self.out_dir / "manifest.json", {})
        return value if isinstance(value, dict) else {}

    def store(self) -> Any:
        from ..versions.store import VersionStore

        return VersionStore(self.out_dir)

    def versions(self, household_id: str) -> list[Any]:
        store = self.store()
        if not store.exists():
            return []
        with store:
            return store.versions(household_id)

    def latest_numbers(self, household_ids: list[str]) -> dict[str, int]:
        store = self.store()
        if not store.exists():
            return {}
        with store:
            found = {}
            for hid in household_ids:
                latest = store.latest(hid)
                if latest is not None:
                    found[hid] = latest.number
            return found

    # files by id ----------------------------------------------------------------------------
    def version_pdf(self, household_id: str, number: int) -> Path:
        """The stored PDF of one version (StoreError when there is none)."""
        store = self.store()
        if not store.exists():
            raise StoreError("还没有任何版本记录", hint="请先生成档案或重新生成该户档卡")
        with store:
            version = store.get(household_id, number)
            store.blob(version.pdf_sha)  # a damaged blob fails here, in Chinese
            return Path(store.blob_path(version.pdf_sha))

    def output_file(self, relative: str) -> Path | None:
        """A file the manifest names, only when it lies inside the output folder."""
        path = (self.out_dir / relative).resolve()
        if not path.is_relative_to(self.out_dir) or not path.is_file():
            return None
        return path

    # actions -------------------------------------------------------------------------------
    def regenerate(self, household_id: str) -> tuple[Any, bool]:
        """Render one household's packet from its current data and record the version.

        Takes the output folder's build lock (a CLI build running is reported, not raced).
        Returns (version, new) where ``new`` is False when the content was already recorded.
        """
        from .. import __version__
        from ..archive.outdir import build_lock, prepare
        from ..archive.packet import (
            default_cache_dir,
            document_date,
            plan_packet,
            render_packet,
        )
        from ..records.loader import load_household
        from ..validate import validate_dataset

        out = prepare(self.out_dir, self.data_dir)
        try:
            lock = build_lock(out)
            lock.__enter__()
        except OutputError as exc:
            raise BuildBusy("另一个生成任务（命令行或本页面）正在使用输出目录，请等它结束后再重新生成",
                            hint="生成结束后刷新本页再试") from exc
        try:
            dataset = self._load_one(household_id) or load_household(self.data_dir, household_id)
            problems = validate_dataset(dataset)
            (village, household), = list(dataset.households())
            self._update_row(village, household, problems)
            errors = [p for p in problems if p.is_error]
            if errors:
                raise ValidationFailed(f"户 {household_id} 的数据有 {len(errors)} 处错误，未生成档卡", problems,
                                       hint="请按本页列出的问题修改数据后再重新生成")
            item_no: int | str = ""
            for v in self.manifest().get("villages", []):
                for h in v.get("households", []):
                    if h.get("household_id") == household_id:
                        item_no = h.get("item_no") or ""
            store = self.store()
            with store, tempfile.TemporaryDirectory(prefix=".web-", dir=out) as work:
                planned = plan_packet(
                    dataset, village, household, out_pdf=Path(work) / f"{household_id}.pdf",
                    cache_dir=default_cache_dir(), item_no=item_no, build_date=document_date(dataset.config),
                    version_of=store.next_number,
                )
                result = render_packet(planned.request)
                version = store.record(
                    household_id=household_id, village_code=str(village.config.code),
                    content_hash=planned.content_hash, record_json=planned.record_json,
                    packet_pdf=result.pdf, evidence_hashes=dict(planned.evidence),
                    template_set=dataset.config.templates.set, program_version=__version__,
                    pages=result.pages, built_at=datetime.now(UTC).isoformat(timespec="seconds"),
                )
                if version is None:
                    return store.latest(household_id), False
                return version, True
        finally:
            lock.__exit__(None, None, None)

    def _load_one(self, household_id: str) -> Any:
        """The household re-read from its folder, checked for clashes against the warm index.

        ``load_household`` scans every record of the data directory for clashes (slow for a
        township); the server already holds that index. None when the folder moved.
        """
        from ..records.loader import (
            Dataset,
            _open_root,
            _village_only,
            load_household_folder,
        )

        row = self.by_id.get(household_id)
        if row is None or not row.loaded.folder.is_dir():
            return None
        root, config, problems = _open_root(self.data_dir)
        village = _village_only(root, row.loaded.folder.parent, problems)
        household = load_household_folder(root, row.loaded.folder, village.config.name)
        if household is None or str(household.household_id) != household_id:
            return None
        village.households.append(household)
        where = {"file": household.display, "village": village.config.name, "household_id": household_id}
        problems += self.clashes(row, household_id, household.record or household.partial, where)
        return Dataset(root, config, [village], problems)

    def clashes(self, row: Row, household_id: str, record: Any, where: dict[str, Any]) -> list[Problem]:
        """The errors of ``record`` (``row``'s, as loaded or as a form would save it) against
        the other households: a repeated 户编号 or ID number, worded as validation words them."""
        from ..problems import error
        from ..records.messages import repeated_id_number

        members = list(record.members) if record is not None else []
        problems = []
        for other in self.rows:
            if other is row:
                continue
            if other.household_id == household_id:
                problems.append(error(f"户编号 {household_id} 重复：{other.loaded.display} 中也使用了这个户编号",
                                      "户编号在整个数据目录中必须唯一，请核对后改正其中一户",
                                      field="household_id", **where))
            for index, member in enumerate(members):
                number = str(member.id_number)
                if number in other.id_numbers:
                    place = f"户 {other.household_id}（{other.head}，{other.loaded.display}）"
                    message, hint = repeated_id_number(number, str(member.name), [(place, -1, "")])
                    problems.append(error(message, hint, field=f"members[{index}].id_number", **where))
        return problems

    def _update_row(self, village: Any, household: Any, problems: list[Problem]) -> None:
        row = _row(village, household, [p for p in problems if p.household_id])
        with self.lock:
            old = self.by_id.get(row.household_id)
            if old is not None:
                old.__dict__.update({k: v for k, v in row.__dict__.items()})

    def word_copy(self, household_id: str, folder: Path) -> Path:
        """Render the household's packet with its Word copy into ``folder``; return the .docx."""
        from ..archive.packet import make_packet

        outcome = make_packet(self.data_dir, household_id, folder / f"{household_id}.pdf", formats=("pdf", "docx"))
        if outcome.result.docx is None:
            raise OutputError("没有生成 Word 文档", hint="请检查模板集是否支持 Word 输出")
        return Path(outcome.result.docx)
