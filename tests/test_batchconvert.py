"""Word forms converted in batches: one LibreOffice run per worker, a bad form retried alone.

A shell script stands in for soffice: it "converts" each source by copying a real one-page
PDF, logs each run, and fails (or hangs) on a source whose name says so.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from reportlab.pdfgen.canvas import Canvas

from archive_builder.cli import main
from archive_builder.errors import ExitCode, ExternalToolError
from archive_builder.render import batchconvert, forms

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX shell script stands in for soffice")


def fake_soffice(tmp_path: Path, *, bad: str = "bad", how: str = "exit 1") -> tuple[Path, Path]:
    """A soffice that copies a one-page PDF per source and runs ``how`` on a source named *bad*."""
    page = tmp_path / "page.pdf"
    canvas = Canvas(str(page), invariant=1)
    canvas.drawString(100, 700, "form")
    canvas.showPage()
    canvas.save()
    log = tmp_path / "runs.log"
    script = tmp_path / "bin" / "soffice"
    script.parent.mkdir(exist_ok=True)
    script.write_text(f"""#!/bin/sh
echo "$@" >> "{log}"
out=""; next=""
for a in "$@"; do
  if [ "$next" = out ]; then out="$a"; next=""; continue; fi
  if [ "$next" = skip ]; then next=""; continue; fi
  case "$a" in
    --outdir) next=out ;;
    --convert-to) next=skip ;;
    -*) ;;
    *{bad}*) {how} ;;
    *) cp "{page}" "$out/$(basename "$a" .docx).pdf" ;;
  esac
done
""", encoding="utf-8")
    script.chmod(0o755)
    return script, log


def sources(tmp_path: Path, names: list[str]) -> list[Path]:
    made = []
    for name in names:
        path = tmp_path / "in" / f"{name}.docx"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"PK")
        made.append(path)
    return made


def runs(log: Path) -> list[str]:
    return log.read_text(encoding="utf-8").splitlines()


def test_one_run_for_the_whole_batch(tmp_path):
    script, log = fake_soffice(tmp_path)
    files = sources(tmp_path, ["a", "b", "c", "d"])
    results = batchconvert.convert_batch(files, tmp_path / "out", timeout=30, executable=str(script))
    assert all(isinstance(results[f], Path) and results[f].is_file() for f in files)
    assert len(runs(log)) == 1


def test_a_form_that_breaks_the_batch_is_retried_alone(tmp_path):
    """LibreOffice fails on the second file: the first is kept, the others are converted one
    by one, and only the bad file has an error."""
    script, log = fake_soffice(tmp_path)
    files = sources(tmp_path, ["a", "bad", "c", "d"])
    results = batchconvert.convert_batch(files, tmp_path / "out", timeout=30, executable=str(script))
    assert isinstance(results[files[1]], ExternalToolError)
    assert "LibreOffice" in results[files[1]].message
    for good in (files[0], files[2], files[3]):
        assert isinstance(results[good], Path) and results[good].name == f"{good.stem}.pdf"
    assert len(runs(log)) == 1 + 3  # the batch, then bad, c and d alone


def test_a_hung_batch_is_killed_and_the_rest_converted(tmp_path, monkeypatch):
    monkeypatch.setattr(batchconvert, "SECONDS_PER_FORM", 0.1)
    script, log = fake_soffice(tmp_path, how="sleep 60")
    files = sources(tmp_path, ["a", "bad", "c"])
    results = batchconvert.convert_batch(files, tmp_path / "out", timeout=1, executable=str(script))
    assert isinstance(results[files[1]], ExternalToolError) and "超过 1 秒" in results[files[1]].message
    assert isinstance(results[files[0]], Path) and isinstance(results[files[2]], Path)


def test_batch_timeout_grows_with_the_batch():
    assert batchconvert.batch_timeout(120, 1) == 120
    assert batchconvert.batch_timeout(120, 11) == 120 + 10 * batchconvert.SECONDS_PER_FORM


def test_split_into_worker_batches():
    assert batchconvert.split(list(range(5)), 2) == [[0, 1, 2], [3, 4]]
    assert batchconvert.split([1], 4) == [[1]]
    assert batchconvert.split([], 2) == []


def test_build_converts_all_forms_in_one_run_and_isolates_a_bad_one(tmp_path, monkeypatch):
    """``build`` with county forms: one LibreOffice run for all households (-j 1); when the
    second household's form breaks it, that household alone is not produced."""
    from test_word_pipeline import forms_data

    data = forms_data(tmp_path / "data")
    script, log = fake_soffice(tmp_path, bad="h00001")
    monkeypatch.setenv(forms.SOFFICE_ENV, str(script))
    monkeypatch.setattr(forms, "_CONVERTERS", {})
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["build", str(data), "-o", str(out), "-j", "1"], catch_exceptions=False)
    assert result.exit_code == ExitCode.partial, result.output
    assert "渲染 2 户" in result.output and "未生成 1 户" in result.output
    assert "4116211052010002" in result.output and "无法转换为 PDF" in result.output
    state = json.loads((out / ".state" / "households.json").read_text(encoding="utf-8"))
    assert sorted(state) == ["4116211052010001", "4116211052010003"]
    assert len(runs(log)) == 1 + 2  # the batch, then the bad form and the one after it alone

    log.write_text("", encoding="utf-8")
    script.write_text(script.read_text(encoding="utf-8").replace("h00001", "no-such-file"), encoding="utf-8")
    result = CliRunner().invoke(main, ["build", str(data), "-o", str(out), "-j", "1"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "渲染 1 户" in result.output  # only the failed household is built again
    assert len(runs(log)) == 1
