"""The web app's one door into the core: every core call the pages make goes through here.

When ``archive_builder.api`` lands, only this module changes. Nothing here prints, imports
click or the web framework; functions take plain arguments, return plain values and raise
the core's typed errors (``ArchiveError``).

``Workspace`` keeps the parsed records of one data directory warm, indexed once for search,
so a page of a 2,000-household township is a slice of a list, not a walk of the disk.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import (
    ArchiveError,
    OutputError,
    StoreError,
    ValidationFailed,
)
from ..problems import Problem, Severity


class UploadError(ArchiveError):
    """An uploaded file is refused (too large, wrong kind, does not open)."""

    kind = "上传的文件无法使用"


class BuildBusy(OutputError):
    """Another build (the CLI or this server) holds the output folder."""


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
    row.haystack = " ".join((hid, *names)).lower()
    if record is not None:
        row.id_numbers = frozenset(str(m.id_number) for m in record.members)
    return row


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

    def ensure_loaded(self) -> None:
        if not self.loaded_at:
            with self.lock:
                if not self.loaded_at:
                    self.load()

    def refresh_up_to_date(self) -> None:
        from ..archive import uptodate
        from ..archive.build import BuildOptions

        try:
            self.up_to_date = uptodate.check(self.data_dir, self.out_dir, BuildOptions()) is not None
        except Exception:  # noqa: BLE001 - an unreadable state file means "not known to be current"
            self.up_to_date = False

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

        ``load_household`` scans every record of the data directory for clashes (~1.2 s for
        2,000 households); the server already holds that index. None when the folder moved.
        """
        from ..problems import error
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
        record = household.record or household.partial
        numbers = {str(m.id_number) for m in record.members} if record is not None else set()
        for other in self.rows:
            if other is row:
                continue
            if other.household_id == household_id:
                problems.append(error(f"户编号 {household_id} 重复：{other.loaded.display} 中也使用了这个户编号",
                                      "户编号在整个数据目录中必须唯一，请核对后改正其中一户",
                                      field="household_id", **where))
            for number in numbers.intersection(other.id_numbers):
                problems.append(error(f"公民身份号码 {number} 重复：户 {other.household_id}（{other.loaded.display}）中也有此人",
                                      "同一人只能登记在一户中，请核对后改正", field="members", **where))
        return Dataset(root, config, [village], problems)

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


# --- record display -------------------------------------------------------------------------


def _show(value: Any) -> str:
    if value is None or value == "" or value == []:
        return ""
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, list | tuple):
        return "、".join(_show(v) for v in value)
    if isinstance(value, dict) and "file" in value:  # an evidence reference: its name
        return str(value.get("title") or value["file"])
    if isinstance(value, dict):
        return "；".join(f"{k} {_show(v)}" for k, v in value.items())
    return str(value)


def _title(model: Any, name: str) -> str:
    info = type(model).model_fields.get(name)
    return str(info.title) if info is not None and info.title else name


def record_sections(loaded: Any) -> list[dict[str, Any]]:
    """The record as sections: {title, fields: [(label, text)]} or {title, columns, rows}."""
    from pydantic import BaseModel

    record = loaded.record or loaded.partial
    if record is None:
        return []
    basic: list[tuple[str, str]] = []
    sections: list[dict[str, Any]] = [{"title": "基本信息", "fields": basic}]
    for name in type(record).model_fields:
        value = getattr(record, name)
        title = _title(record, name)
        if isinstance(value, list) and value and isinstance(value[0], BaseModel):
            columns = [n for n in type(value[0]).model_fields
                       if any(_show(_plain(getattr(item, n))) for item in value)]
            sections.append({
                "title": title,
                "columns": [_title(value[0], n) for n in columns],
                "rows": [[_show(_plain(getattr(item, n))) for n in columns] for item in value],
                "collapse": len(value) > 12 and name != "members",
            })
        elif isinstance(value, BaseModel):
            fields = [(_title(value, n), _show(_plain(getattr(value, n)))) for n in type(value).model_fields]
            sections.append({"title": title, "fields": [(k, v) for k, v in fields if v]})
        else:
            text = _show(_plain(value))
            if text:
                basic.append((title, text))
    return sections


def _plain(value: Any) -> Any:
    from pydantic import BaseModel

    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if hasattr(value, "isoformat") or type(value).__name__ in ("PartialDate", "VocabRef"):
        return str(value)
    return value


def field_label(path: str | None) -> str:
    """A problem's field path in Chinese, e.g. members[2].id_number → 家庭成员 第 3 项 公民身份号码."""
    if not path:
        return ""
    from ..records.models import Household

    model: Any = Household
    parts = []
    for piece in re.split(r"\.", path):
        match = re.fullmatch(r"([A-Za-z_]+)(?:\[(\d+)\])?", piece)
        if not match or model is None:
            parts.append(piece)
            continue
        name, index = match.groups()
        info = getattr(model, "model_fields", {}).get(name)
        parts.append(str(info.title) if info is not None and info.title else name)
        if index is not None:
            parts.append(f"第 {int(index) + 1} 项")
        nested = None
        if info is not None:
            nested = _inner_model(info.annotation)
        model = nested
    return " ".join(parts)


def _inner_model(annotation: Any) -> Any:
    from typing import get_args

    from pydantic import BaseModel

    stack = [annotation]
    while stack:
        item = stack.pop()
        if isinstance(item, type) and issubclass(item, BaseModel):
            return item
        stack.extend(get_args(item))
    return None


# --- versions, comparison, pages ------------------------------------------------------------


def history(workspace: Workspace, household_id: str) -> list[Any]:
    from ..versions.diff import history as core_history

    store = workspace.store()
    if not store.exists():
        return []
    with store:
        if not store.versions(household_id):  # not regenerated yet while others were
            return []
        return core_history(store, household_id)


def compare(workspace: Workspace, household_id: str, old: int, new: int) -> dict[str, Any]:
    """The comparison of two versions, as ``diff --report`` draws it: fields and page pairs."""
    import base64

    from ..versions.diff import compare_versions
    from ..versions.diffreport import REPORT_DPI, _field_rows, _pictures

    store = workspace.store()
    if not store.exists():
        raise StoreError("还没有任何版本记录", hint="请先生成档案")
    with store:
        comparison = compare_versions(store, household_id, old, new)
        pictures = []
        for pic in _pictures(comparison, REPORT_DPI, 30):
            pictures.append({
                "old": pic.old, "new": pic.new, "regions": pic.regions,
                # the pages as printed: "第 3 页（档案第 57 页）"
                "old_name": comparison.old_page(pic.old) if pic.old else None,
                "new_name": comparison.new_page(pic.new) if pic.new else None,
                "old_png": base64.b64encode(pic.old_png).decode() if pic.old_png else None,
                "new_png": base64.b64encode(pic.new_png).decode() if pic.new_png else None,
            })
        return {
            "title": comparison.title, "old_name": comparison.old_name, "new_name": comparison.new_name,
            "identical": comparison.identical, "summary": comparison.summary(), "notes": comparison.notes,
            "fields": _field_rows(comparison), "texts": comparison.text_changes,
            "pages": comparison.pages, "pictures": pictures,
        }


def page_png(pdf: Path, page: int, dpi: float = 50) -> bytes:
    """One page of a PDF as PNG bytes (1-based page number)."""
    from ..versions.pdfdiff import _open

    with _open(pdf) as document:
        if not 1 <= page <= len(document.doc):
            raise ValueError(f"page {page} out of range")
        image = document.render(page - 1, dpi)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


# --- paper copies and sheets ----------------------------------------------------------------


def check_image(data: bytes) -> None:
    """Raise UploadError unless ``data`` is an image Pillow can open."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
    except Exception as exc:
        raise UploadError("上传的文件不是可识别的图片，或图片已损坏",
                          hint="请上传封面的 JPG 或 PNG 照片，保证二维码清晰") from exc


def change_rows(changes: list[Any]) -> list[tuple[str, str, str, str]]:
    """Field changes as table rows (字段, 原值, 新值, 类型), as the comparison report shows them."""
    from ..versions.diff import format_value

    kinds = {"added": "新增", "removed": "删除", "changed": "修改"}
    return [(c.label, format_value(c.old, prefix=c.schema), format_value(c.new, prefix=c.schema),
             kinds.get(c.kind, c.kind)) for c in changes]


def verify_text(workspace: Workspace, text: str) -> Any:
    from ..versions.verify import verify

    store = workspace.store()
    if not store.exists():
        raise StoreError("输出目录中还没有版本记录，无法核对", hint="请先生成档案")
    with store:
        return verify(store, text.strip())


def verify_photo(workspace: Workspace, data: bytes, suffix: str) -> Any:
    from ..versions.verify import decode_qr_image

    check_image(data)
    with tempfile.TemporaryDirectory(prefix="archive-builder-web-") as tmp:
        path = Path(tmp) / f"封面{suffix}"
        path.write_bytes(data)
        text = decode_qr_image(path)
    return verify_text(workspace, text)


SHEET_SUFFIXES = (".xlsx", ".xls", ".csv")


def check_sheet(path: Path) -> None:
    """Raise UploadError unless ``path`` is a sheet that opens."""
    from ..io.spreadsheet import read_rows

    try:
        read_rows(path)
    except ArchiveError as exc:
        raise UploadError(exc.message, hint=exc.hint or "请上传从国家系统导出的 .xlsx、.xls 或 .csv 表格") from exc
    except Exception as exc:
        raise UploadError("上传的表格无法打开：文件已损坏或不是表格",
                          hint="请上传从国家系统导出的 .xlsx、.xls 或 .csv 表格") from exc


def export_sheet(data_dir: Path, path: Path) -> int:
    """Write the data directory as a one-row-per-person .xlsx; return the rows written."""
    from ..io.spreadsheet import export_sheet as core_export

    return int(core_export(Path(data_dir), Path(path)))


def build_now(data_dir: Path, out_dir: Path, villages: tuple[str, ...] = (), reporter: Any = None,
              jobs: int | None = 1) -> Any:
    """Run a build in this process (the pages start theirs in a child: ``BuildJob``)."""
    from ..archive.build import BuildOptions, build

    return build(Path(data_dir), Path(out_dir), BuildOptions(villages=villages, jobs=jobs), reporter)


def hold_build_lock(out_dir: Path) -> Any:
    """The output folder's build lock, as the CLI takes it (a context manager)."""
    from ..archive.outdir import build_lock

    return build_lock(Path(out_dir))


def import_sheet(workspace: Workspace, path: Path, *, dry_run: bool, force: bool = False) -> Any:
    from ..io.spreadsheet import import_sheet as core_import

    return core_import(path, workspace.data_dir, force=force, dry_run=dry_run)


# --- builds ---------------------------------------------------------------------------------


def lock_held(out_dir: Path) -> bool:
    """Whether another build (any process) holds the output folder's lock right now."""
    from ..archive.outdir import LOCK, build_lock

    if not (out_dir / LOCK).exists():
        return False
    try:
        with build_lock(out_dir):
            return False
    except OutputError:
        return True
    except OSError:
        return False


@dataclass
class BuildState:
    running: bool = False
    villages: tuple[str, ...] = ()
    stage: str = ""
    total: int = 0
    done: int = 0
    label: str = ""
    finished: bool = False
    summary: str = ""
    failed: list[tuple[str, str]] = field(default_factory=list)
    error: dict[str, str] | None = None
    started_at: float = 0.0


class BuildJob:
    """At most one build started from the pages at a time; progress read by polling."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self.state = BuildState()
        self._lock = threading.Lock()

    def start(self, villages: tuple[str, ...]) -> None:
        with self._lock:
            if self.state.running:
                raise BuildBusy("已有一个生成任务在进行中", hint="请等待它结束")
            if lock_held(self.workspace.out_dir):
                raise BuildBusy("另一个生成任务（例如命令行中的 archive-builder build）正在使用输出目录",
                                hint="请等待该任务结束后再生成")
            self.state = BuildState(running=True, villages=villages, stage="准备中", started_at=time.time())
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "archive_builder.web.buildchild", str(self.workspace.data_dir),
                 str(self.workspace.out_dir), *villages],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                text=True, encoding="utf-8",
            )
        except OSError as exc:
            self.state.running = False
            raise OutputError("无法启动生成进程", hint="请检查程序安装是否完整") from exc
        threading.Thread(target=self._follow, args=(process,), daemon=True).start()

    def _follow(self, process: Any) -> None:
        state = self.state
        try:
            with process.stdout:
                for line in process.stdout:
                    self._event(state, line)
            process.wait()
            if not state.finished:
                state.error = {"kind": "生成中断", "message": "生成进程意外退出，本次生成没有完成",
                               "hint": "已写出的文件都是完整的；请重新生成"}
                state.finished = True
            self.workspace.load()
        finally:
            state.running = False

    @staticmethod
    def _event(state: BuildState, line: str) -> None:
        try:
            kind, value = json.loads(line)
        except ValueError:
            return
        if kind == "stage":
            state.stage, state.total, state.done, state.label = value, 0, 0, ""
        elif kind == "start":
            state.total, state.label = value
            state.done = 0
        elif kind == "advance":
            state.done += 1
        elif kind == "done":
            state.summary, state.failed = value["line"], [tuple(f) for f in value["failed"]]
            state.finished = True
        elif kind == "error":
            state.error, state.finished = value, True

    def as_json(self) -> dict[str, Any]:
        s = self.state
        return {
            "running": s.running, "stage": s.stage, "total": s.total, "done": s.done, "label": s.label,
            "finished": s.finished and not s.running, "summary": s.summary, "error": s.error,
            "failed": [f"户 {hid}：{reason}" for hid, reason in s.failed],
            "villages": list(s.villages),
            "other": (not s.running) and lock_held(self.workspace.out_dir),
        }


def problems_json(problems: list[Problem]) -> list[dict[str, Any]]:
    return [{"severity": p.severity.label, "error": p.severity is Severity.error, "message": p.message,
             "hint": p.hint or "", "field": field_label(p.field)} for p in problems]


def village_stats(workspace: Workspace, code: str) -> dict[str, Any]:
    """The statistics tables of one village (贫情分析, 三色), as the ``stats`` command counts them."""
    from ..reports.stats import village_tables

    return village_tables(workspace.data_dir, code).to_json()


def village_ledger(workspace: Workspace, code: str) -> list[Any]:
    """The 问题台账 rows of one village: the policy audit, as the ``audit`` command finds them."""
    from ..checks.audit import village_ledger as ledger

    return ledger(workspace.data_dir, code)


def household_ledger(workspace: Workspace, household_id: str) -> list[Any]:
    """The 问题台账 rows of one household (an empty list when its record cannot be audited)."""
    from ..checks.audit import household_ledger as ledger
    from ..errors import ArchiveError

    try:
        return ledger(workspace.data_dir, household_id)
    except ArchiveError:
        return []  # its data problems are shown already; the audit needs a readable record

