"""The core API: what the command line and the web app call.

Every function takes plain arguments (paths, strings, numbers), returns a result object and
raises the typed errors of :mod:`archive_builder.errors`. None of them prints, reads stdin or
imports click; long ones take an optional ``progress`` callback.

========================================================  ==========================================
function                                                  returns
========================================================  ==========================================
``load(data_dir)``                                        ``Dataset`` (villages, households, config)
``validate(data_dir, *, strict, today)``                  ``validate.Report`` (problems, summary)
``render_packet(data_dir, household_id, out, ...)``       ``PacketOutcome`` (PDF path, pages, warnings)
``build(data_dir, out, *, villages, jobs, ..., progress)`` ``BuildSummary``
``history(out, household_id)``                            ``History`` (versions with change summaries)
``compare(out, household_id, v1, v2)``                    ``Comparison`` of two stored versions
``compare_pdfs(a, b)``                                    ``Comparison`` of two PDF files
``write_report(path, comparison)``                        the written .html/.pdf report's path
``verify(out, text=None, image=None)``                    ``VerifyResult`` (current/outdated/unknown)
``check_store(out)``                                      ``StoreCheck`` (ok, Chinese text)
``import_sheet(file, data_dir, *, force, dry_run)``       ``ImportReport``
``export_sheet(data_dir, out)``                           ``ExportResult`` (file, rows)
``audit(data_dir, *, rules, previous, today, villages)``  ``AuditResult`` (问题台账 rows, counts)
``write_ledger(result, path, *, as_pdf, data_dir)``       the written .xlsx (or PDF) ledger's path
``stats(data_dir, out, *, villages)``                     ``StatsResult`` (the tables, the file written)
``notice(data_dir, village, kind, out, ...)``             ``NoticeResult`` (公示/公告 file, households)
``check_output_file(data_dir, out, *, what, suffixes, ...)`` raises OutputError for a folder, a wrong
                                                          suffix or a file inside the data directory
``parse_day(text)``                                       a ``date`` spelled as records may spell it
========================================================  ==========================================

``out`` is always the build's output folder (the one holding ``manifest.json`` and ``.store``).

Progress: ``progress`` is called with one :class:`ProgressEvent` at a time, from the calling
thread: ``stage`` (a new stage begins: ``name``), ``start`` (``total`` items of ``label``
follow), ``advance`` (one item done: ``done`` of ``total``) and ``warn`` (``text``, a Chinese
warning about the run, e.g. a missing font).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from .errors import ArgumentError, OutputError, StoreError

if TYPE_CHECKING:
    from .archive.build import BuildSummary
    from .archive.packet import PacketOutcome
    from .checks.audit import AuditResult
    from .io.spreadsheet import ImportReport
    from .records.loader import Dataset
    from .reports.notice import NoticeResult
    from .reports.stats import Stats
    from .reports.stats_write import StatsOutput
    from .validate import Report
    from .versions.diff import Comparison, HistoryEntry
    from .versions.store import VersionStore
    from .versions.verify import VerifyResult

__all__ = [
    "ExportResult", "History", "audit", "write_ledger", "ProgressEvent", "StatsResult", "StoreCheck", "build", "check_store",
    "compare", "compare_pdfs", "export_sheet", "history", "import_sheet", "load", "notice", "render_packet",
    "stats", "validate", "verify", "write_report",
]


@dataclass(frozen=True)
class ProgressEvent:
    """One step of a long call (see the module docstring)."""

    kind: Literal["stage", "start", "advance", "warn"]
    name: str = ""  # stage: its Chinese name
    label: str = ""  # start: what is counted
    total: int = 0  # start, advance
    done: int = 0  # advance
    text: str = ""  # warn


Progress = Callable[[ProgressEvent], None]


class _Events:
    """The build's reporter interface (``stage``/``start``/``advance``/``warn``) over a callback."""

    def __init__(self, progress: Progress | None) -> None:
        self.progress = progress
        self.total = self.done = 0

    def _send(self, event: ProgressEvent) -> None:
        if self.progress is not None:
            self.progress(event)

    def stage(self, name: str) -> None:
        self._send(ProgressEvent("stage", name=name))

    def start(self, total: int, label: str) -> None:
        self.total, self.done = total, 0
        self._send(ProgressEvent("start", label=label, total=total))

    def advance(self, text: str = "") -> None:
        self.done += 1
        self._send(ProgressEvent("advance", total=self.total, done=self.done, text=text))

    def warn(self, text: str) -> None:
        self._send(ProgressEvent("warn", text=text))


# --- records -------------------------------------------------------------------------------------


def load(data_dir: Path | str) -> Dataset:
    """Return every village and household of ``data_dir`` (records parsed, not validated)."""
    from .records.loader import load_dataset

    return load_dataset(Path(data_dir))


def validate(data_dir: Path | str, *, strict: bool = False, today: date | None = None) -> Report:
    """Return the validation report of ``data_dir`` (``strict``: warnings count as errors).

    Raises DataDirError or ConfigError when the folder cannot be used at all.
    """
    from .validate import check_data_dir

    return check_data_dir(Path(data_dir), strict=strict, today=today)


#: the date spellings records accept, as a user is told them
DAY_FORMS = "2025-06-02、2025/6/2、2025.6.2 或 2025年6月2日"


def parse_day(text: str) -> date:
    """Return the date ``text`` spells as records may (2025-06-02, 2025/6/2, 2025.6.2,
    2025年6月2日); raise ArgumentError, in Chinese, naming the accepted forms."""
    from pydantic import TypeAdapter, ValidationError

    from .records.models import Day

    try:
        return TypeAdapter(Day).validate_python(str(text))
    except ValidationError as exc:
        why = "不是有效日期" if any(e["type"] == "date_value" for e in exc.errors()) else "不是日期"
        raise ArgumentError(f"「{text}」{why}", hint=f"日期可写为 {DAY_FORMS}") from None


# --- packets and builds ---------------------------------------------------------------------


def render_packet(
    data_dir: Path | str,
    household_id: str,
    out: Path | str | None = None,
    *,
    formats: tuple[str, ...] | None = None,
    strict: bool = False,
    template_set: str | None = None,
    today: date | None = None,
    store_dir: Path | str | None = None,
) -> PacketOutcome:
    """Validate one household and render its packet; return the file, its pages and warnings.

    ``out`` is a ``.pdf`` file or a folder (default: the current folder). ``formats`` ``None``
    follows archive.toml and the template set; ``("pdf", "docx")`` adds a Word copy.
    Raises HouseholdNotFoundError, and ValidationFailed (its ``problems`` attached) when the
    record has errors. The packet is recorded as a version in the build's version store
    (``store_dir``, else the one the data directory's build uses), so its paper copy verifies.
    """
    from .archive.packet import make_packet

    return make_packet(Path(data_dir), household_id, Path(out) if out is not None else None,
                       formats=formats, strict=strict, today=today, template_set_name=template_set,
                       store_dir=Path(store_dir) if store_dir is not None else None)


def build(
    data_dir: Path | str,
    out: Path | str | None = None,
    *,
    villages: tuple[str, ...] = (),
    jobs: int | None = None,
    force: bool = False,
    formats: tuple[str, ...] | None = None,
    strict: bool = False,
    template_set: str | None = None,
    progress: Progress | None = None,
) -> BuildSummary:
    """Build every (or the chosen) village's packets, boxes and manifest; return what happened.

    ``out`` defaults to archive.toml's ``[output] dir``, else ``<数据目录名>-档案输出`` beside
    the data. Households whose records have errors are listed in ``BuildSummary.failed``;
    the others are still built. Raises DataDirError, OutputError, WorkerLostError.
    """
    from .archive.build import BuildOptions
    from .archive.build import build as run_build

    options = BuildOptions(villages=tuple(villages), jobs=jobs, force=force, formats=formats, strict=strict,
                           template_set=template_set)
    return run_build(Path(data_dir), Path(out) if out is not None else None, options, _Events(progress))


# --- versions ----------------------------------------------------------------------------------


def output_folder(data_dir: Path | str) -> Path:
    """The output folder a build of ``data_dir`` uses when none is given: archive.toml's
    ``[output] dir``, else ``<数据目录名>-档案输出`` beside the data directory."""
    from .archive.outdir import configured_output

    return configured_output(Path(data_dir))


def village_names(data_dir: Path | str) -> list[tuple[str, str]]:
    """(code, name) of every village of a data directory, read from the village.toml files only."""
    from .records.loader import _open_root, _village_folders, _village_only

    root, _config, problems = _open_root(Path(data_dir))
    found = []
    for folder in _village_folders(root, problems):
        config = _village_only(root, folder, problems).config
        found.append((str(config.code), str(config.name)))
    return found


def _open_store(out: Path | str) -> VersionStore:
    from .versions.store import VersionStore

    store = VersionStore(Path(out))
    if Path(out).exists() and not Path(out).is_dir():
        raise StoreError(f"{out} 是一个文件，不是输出目录",
                         hint="-o 应指向 build 生成的输出目录（文件夹），例如 数据目录旁的「<数据目录名>-档案输出」")
    if not store.exists():
        raise StoreError(f"输出目录 {out} 中没有版本记录",
                         hint="请先运行 archive-builder build，或用 -o 指定正确的输出目录")
    return store


@dataclass(frozen=True)
class History:
    """Every version of one household, oldest first, each with what changed."""

    household_id: str
    entries: list[HistoryEntry]

    def format_text(self) -> str:
        """Return the Chinese text ``history`` prints: one line per version."""
        lines = [f"户 {self.household_id} 共 {len(self.entries)} 个版本："]
        return "\n".join([*lines, *(entry.format() for entry in self.entries)])


def history(out: Path | str, household_id: str) -> History:
    """Return the versions of ``household_id`` recorded in the output folder ``out``."""
    from .versions.diff import history as entries

    return History(household_id, entries(_open_store(out), household_id))


def compare(out: Path | str, household_id: str, v1: int | None = None, v2: int | None = None) -> Comparison:
    """Compare two stored versions of a household (default: the last two; ``v1`` alone: with
    the latest). ``Comparison.identical`` says whether anything changed."""
    from .versions.diff import compare_versions

    return compare_versions(_open_store(out), household_id, v1, v2)


def compare_pdfs(a: Path | str, b: Path | str) -> Comparison:
    """Compare two PDF files by text (per section) and by rendered pages."""
    from .versions.diff import compare_pdfs as compare_files

    return compare_files(Path(a), Path(b))


def check_report_path(path: Path | str) -> None:
    """Raise ReportError when a comparison report cannot be written to ``path`` (call it first)."""
    from .versions.diffreport import check_report_path as check

    check(Path(path))


def write_report(path: Path | str, comparison: Comparison) -> Path:
    """Write ``comparison`` as an HTML or PDF report (chosen by the suffix); return its path."""
    from .versions.diff import write_report as write

    return write(Path(path), comparison)


def verify(out: Path | str, text: str | None = None, image: Path | str | None = None) -> VerifyResult:
    """Return whether the paper copy whose cover QR reads ``text`` (or is photographed in
    ``image``) is the current version in the output folder ``out``."""
    from .versions.verify import decode_qr_image
    from .versions.verify import verify as check

    if image is not None:
        text = decode_qr_image(Path(image))
    if not text:
        raise ArgumentError("请给出二维码文字，或用 --image 指定封面照片")
    return check(_open_store(out), text)


@dataclass(frozen=True)
class StoreCheck:
    """The outcome of re-hashing every blob of a version store."""

    ok: bool
    text: str

    def format_text(self) -> str:
        return self.text


def check_store(out: Path | str) -> StoreCheck:
    """Re-hash every blob of the version store in ``out``; report damaged or missing ones."""
    ok, text = _open_store(out).check_text()
    return StoreCheck(ok, text)


# --- spreadsheets ----------------------------------------------------------------------------


def import_sheet(file: Path | str, data_dir: Path | str, *, force: bool = False, dry_run: bool = False) -> ImportReport:
    """Import a national-system spreadsheet into ``data_dir``; return what was (or would be) done."""
    from .io.spreadsheet import import_sheet as run_import

    return run_import(Path(file), Path(data_dir), force=force, dry_run=dry_run)


@dataclass(frozen=True)
class ExportResult:
    """An exported spreadsheet and the number of person rows in it."""

    file: Path
    rows: int

    def format_text(self) -> str:
        return f"已导出 {self.rows} 行到 {self.file}"


def export_sheet(data_dir: Path | str, out: Path | str) -> ExportResult:
    """Write every household of ``data_dir`` to the .xlsx file ``out``, one row per person."""
    from .io.spreadsheet import export_sheet as run_export

    refuse_inside_data(data_dir, out, example="导出.xlsx")
    return ExportResult(Path(out), run_export(Path(data_dir), Path(out)))


# --- reports ---------------------------------------------------------------------------------


def refuse_inside_data(data_dir: Path | str, out: Path | str, *, option: str = "-o", example: str = "") -> None:
    """Raise OutputError when ``out`` lies inside ``data_dir``: only ``import`` writes there."""
    data, target = Path(data_dir).resolve(), Path(out).resolve()
    if data == target or data in target.parents:
        instead = f"，例如 {option} {example}" if example else ""
        raise OutputError(
            f"输出位置 {out} 位于数据目录 {data_dir} 之内",
            hint=f"程序不在数据目录中写文件：请用 {option} 指定数据目录之外的位置{instead}",
        )


def check_output_file(data_dir: Path | str | None, out: Path | str, *, what: str, suffixes: Sequence[str],
                      stem: str, option: str = "-o", hint: str = "") -> Path:
    """Raise OutputError unless ``out`` names a file of one of ``suffixes`` outside ``data_dir``.

    ``what`` names the document (统计表), ``stem`` a file name for the examples (统计);
    ``hint`` replaces the example given for a wrong suffix."""
    out = Path(out)
    if out.is_dir():
        raise OutputError(f"{out} 是一个文件夹：{what}要保存为一个文件，请给出文件名",
                          hint=f"例如 {option} {out / (stem + suffixes[0])}")
    if out.suffix.lower() not in suffixes:
        raise OutputError(f"{what}只能保存为 {' 或 '.join(suffixes)}：{out.name}",
                          hint=hint or "例如 " + " 或 ".join(f"{option} {stem}{s}" for s in suffixes))
    if data_dir is not None:
        refuse_inside_data(data_dir, out, option=option, example=stem + suffixes[0])
    return out


#: (what, suffixes, stem) of each report file: the messages name the document and an example
_STATS_OUT = ("统计表", (".xlsx", ".pdf"), "统计")
_NOTICE_OUT = ("公示", (".pdf", ".docx"), "公示")
_LEDGER_OUT = ("问题台账", (".xlsx",), "台账")
_LEDGER_PDF_OUT = ("可打印的问题台账", (".pdf",), "台账")


def check_ledger_path(path: Path | str, data_dir: Path | str | None = None, *, as_pdf: bool = False) -> Path:
    """Raise OutputError unless the ledger can be written to ``path``: an .xlsx (with ``as_pdf``
    a .pdf) file, not a folder, outside ``data_dir``. Call it before a long audit."""
    what, suffixes, stem = _LEDGER_PDF_OUT if as_pdf else _LEDGER_OUT
    option = "--pdf" if as_pdf else "-o"
    hint = "" if as_pdf else "例如 -o 台账.xlsx；可打印的 PDF 请用 --pdf 台账.pdf"
    return check_output_file(data_dir, path, what=what, suffixes=suffixes, stem=stem, option=option, hint=hint)


@dataclass(frozen=True)
class StatsResult:
    """A village statistics report: the tables computed and the file they were written to."""

    stats: Stats
    output: StatsOutput


def stats(data_dir: Path | str, out: Path | str, *, villages: tuple[str, ...] = ()) -> StatsResult:
    """Count households, people, measures and incomes by village and group; write them to
    ``out`` (.xlsx, one sheet per table, or .pdf with charts). Households whose data cannot
    be read are left out and listed in ``StatsResult.stats.problems``."""
    from .reports.stats import compute_stats
    from .reports.stats_write import write_stats

    what, suffixes, stem = _STATS_OUT
    check_output_file(data_dir, out, what=what, suffixes=suffixes, stem=stem)
    tables = compute_stats(Path(data_dir), villages)
    return StatsResult(tables, write_stats(tables, Path(out)))


def notice(data_dir: Path | str, village: str, kind: str, out: Path | str, *, households: Sequence[str] = (),
           start: date | None = None, days: int | None = None) -> NoticeResult:
    """Write a public notice (公示/公告) of ``kind`` for ``village`` to ``out`` (.pdf or .docx):
    the households chosen by their procedure records (or ``households``), no personal data.
    Raises NoticeError (e.g. PeriodTooShortError) when it cannot be made as asked."""
    from .reports.notice import make_notice

    what, suffixes, stem = _NOTICE_OUT
    check_output_file(data_dir, out, what=what, suffixes=suffixes, stem=stem)
    return make_notice(Path(data_dir), village, kind, Path(out), households=households, start=start, days=days)


def audit(data_dir: Path | str, *, rules: Sequence[Path | str] = (), previous: Path | str | None = None,
          today: date | None = None, villages: Sequence[str] = (), jobs: int | None = None) -> AuditResult:
    """Check every (or the chosen) village's households against the policy rules (built-in,
    then ``DATA/rules/*.yaml``, then ``rules``); return the 问题台账. ``previous``: last round's
    ledger (.xlsx) whose 整改状态 and 备注 carry over. ``jobs``: processes reading records
    (1 from a threaded server). Raises RuleFileError, DataDirError."""
    from .checks import run_audit

    return run_audit(Path(data_dir), rules=[Path(r) for r in rules],
                     previous=Path(previous) if previous is not None else None, today=today, villages=villages,
                     jobs=jobs)


def write_ledger(result: AuditResult, path: Path | str, *, as_pdf: bool = False,
                 data_dir: Path | str | None = None) -> Path:
    """Write the 问题台账 to ``path``: the .xlsx workbook, or with ``as_pdf`` the printable PDF
    (``data_dir``: in the fonts its archive.toml names). Return the path written.
    Raises OutputError for a path that is a folder, has the wrong suffix or lies inside the
    data directory audited."""
    from .checks import write_pdf, write_xlsx

    path = check_ledger_path(path, data_dir if data_dir is not None else result.data_dir, as_pdf=as_pdf)
    if as_pdf:
        return write_pdf(result, path, data_dir=Path(data_dir) if data_dir is not None else None)
    return write_xlsx(result, path)
