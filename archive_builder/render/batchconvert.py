"""Word forms of a whole build converted in batches: one LibreOffice run per worker.

Starting LibreOffice costs about a second; converting one more file in a run that is already
up costs a fraction of that. So a build whose template set has Word forms does not convert
each household's form while rendering it (:class:`~archive_builder.archive.packet.FormSections`
does that for a single packet); instead (:func:`prepare_forms`):

1. every household's forms are filled first (docxtpl, in the worker processes: ``fill``);
2. the filled forms are split into one batch per worker and each batch is converted by one
   ``soffice --convert-to pdf`` run (:func:`convert_batches`), all runs at the same time, each
   with its own profile directory and a timeout that grows with the batch
   (:func:`batch_timeout`); a run that times out is killed with everything it started;
3. a form the batch did not convert (LibreOffice failed, crashed or hung on it, or on a file
   before it) is converted again alone, so one bad file never fails the others;
4. the packets are rendered as usual, each taking its converted forms from its request
   (:class:`PreparedForm`): the pages are merged in place like a single conversion's.

Only what LibreOffice does is batched: warnings, lost characters and failures are still
reported per household, in the same words.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ExternalToolError
from . import forms

#: seconds a batch may take per form on top of the single-form timeout
SECONDS_PER_FORM = 10.0


@dataclass(frozen=True)
class PreparedForm:
    """One filled form of one household and what converting it gave (plain values: sent to
    the worker that renders the packet)."""

    docx: str
    #: the converted PDF; "" when it failed (``error``)
    pdf: str = ""
    warnings: tuple[str, ...] = ()
    #: the Chinese reason LibreOffice could not convert it, and the hint
    error: str = ""
    hint: str = ""


def batch_timeout(single: float, count: int) -> float:
    """The timeout of one run over ``count`` forms: the single form's, plus some per form."""
    return float(single) + SECONDS_PER_FORM * max(0, count - 1)


def fill(request: Any, work: str, stem: str) -> dict[str, PreparedForm] | BaseException:
    """Fill the household's forms into ``work`` as ``<stem>_<n>.docx`` (in a worker).

    Returns section key → :class:`PreparedForm` (not converted yet), or the exception (a bad
    form tag, …): the household's render then meets it again and reports it as usual.
    """
    from ..archive.packet import packet_context, template_set

    try:
        tset = template_set(request.template_set, request.data_dir, request.village_dir)
        context = packet_context(request)
        out: dict[str, PreparedForm] = {}
        for n, spec in enumerate(tset.form_sections):
            filled = Path(work) / f"{stem}_{n}.docx"
            warnings = forms.render_form(tset.form_path(spec), context, filled)
            out[spec.key] = PreparedForm(str(filled), warnings=tuple(warnings))
        return out
    except Exception as exc:  # noqa: BLE001 - the render reports it for this household
        return exc


def _complete(pdf: Path) -> bool:
    """A PDF LibreOffice finished writing (a run killed mid-file can leave a partial one)."""
    try:
        size = pdf.stat().st_size
        if size == 0:
            return False
        with pdf.open("rb") as handle:
            handle.seek(max(0, size - 1024))
            return b"%%EOF" in handle.read()
    except OSError:
        return False


def convert_batch(sources: Sequence[Path], out_dir: Path, *, timeout: float,
                  executable: str | None = None) -> dict[Path, Path | ExternalToolError]:
    """Convert ``sources`` (unique stems) to PDFs in ``out_dir``: one LibreOffice run over all of
    them, then each one it did not convert alone. Returns source → PDF, or the error of its
    own conversion. Raises :class:`ExternalToolError` only when LibreOffice is missing."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results: dict[Path, Path | ExternalToolError] = {}
    with forms.LibreOffice(executable, timeout=batch_timeout(timeout, len(sources))) as office:
        batch_failed = False
        if len(sources) > 1:
            try:
                office._run(office.command(sources, out_dir), list(sources))
            except ExternalToolError:
                batch_failed = True  # the files it finished are kept; the others go alone
            for source in sources:
                pdf = out_dir / f"{Path(source).stem}.pdf"
                # after a failed run, only the files LibreOffice finished writing count
                done = _complete(pdf) if batch_failed else pdf.is_file() and pdf.stat().st_size > 0
                if done:
                    results[Path(source)] = pdf
        office.timeout = float(timeout)
        for source in sources:
            if Path(source) in results:
                continue
            pdf = out_dir / f"{Path(source).stem}.pdf"
            pdf.unlink(missing_ok=True)
            try:
                results[Path(source)] = office.convert(Path(source), out_dir)
            except ExternalToolError as exc:
                results[Path(source)] = exc
    return results


def split(items: Sequence[Any], parts: int) -> list[list[Any]]:
    """``items`` in ``parts`` contiguous runs of nearly equal length (none empty)."""
    parts = max(1, min(parts, len(items)))
    size, extra = divmod(len(items), parts)
    out, start = [], 0
    for i in range(parts):
        end = start + size + (1 if i < extra else 0)
        out.append(list(items[start:end]))
        start = end
    return [run for run in out if run]


def convert_batches(sources: Sequence[Path], out_dir: Path, *, jobs: int, timeout: float,
                    executable: str | None = None) -> dict[Path, Path | ExternalToolError]:
    """Convert ``sources`` in ``jobs`` LibreOffice runs at the same time (one per batch)."""
    batches = split(list(sources), jobs)
    results: dict[Path, Path | ExternalToolError] = {}
    lock = threading.Lock()

    def one(batch: list[Path]) -> None:
        made = convert_batch(batch, out_dir, timeout=timeout, executable=executable)
        with lock:
            results.update(made)

    with ThreadPoolExecutor(max_workers=max(1, len(batches))) as pool:
        for future in [pool.submit(one, batch) for batch in batches]:
            future.result()
    return results


def prepare_forms(requests: Sequence[Any], work: Path, *, jobs: int, timeout: float,
                  run_fill: Callable[[list[tuple[Any, str, str]]], list[Any]]) -> list[Any]:
    """Fill and convert the Word forms of ``requests`` (see the module's notes); return the
    requests with ``prepared_forms`` set, in the same order.

    ``run_fill(argument_lists)`` runs :func:`fill` over the argument lists (the build's
    workers). A household whose forms could not be filled, and every household when
    LibreOffice is missing, is returned unchanged: its render fills and converts (or explains)
    as for a single packet.
    """
    import dataclasses

    executable = forms.find_soffice()
    if executable is None or not requests:
        return list(requests)
    work = Path(work)
    filled_dir = work / "docx"
    filled_dir.mkdir(parents=True, exist_ok=True)
    filled = run_fill([(request, str(filled_dir), f"h{index:05d}") for index, request in enumerate(requests)])
    sources = [Path(form.docx) for made in filled if isinstance(made, Mapping) for form in made.values()]
    converted = convert_batches(sources, work / "pdf", jobs=jobs, timeout=timeout, executable=executable) \
        if sources else {}
    out = []
    for request, made in zip(requests, filled, strict=True):
        if not isinstance(made, Mapping):
            out.append(request)
            continue
        prepared = {}
        for key, form in made.items():
            result = converted.get(Path(form.docx))
            if isinstance(result, Path):
                prepared[key] = dataclasses.replace(form, pdf=str(result))
            else:
                error = result or ExternalToolError("LibreOffice 没有转换该表单")
                prepared[key] = dataclasses.replace(form, error=error.message, hint=error.hint or "")
        out.append(dataclasses.replace(request, prepared_forms=prepared))
    return out
