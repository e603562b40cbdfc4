"""How the audit reads the records: the record cache (its own, or a build's) and worker processes."""

from __future__ import annotations

import gc
import shutil
from pathlib import Path
from typing import Any

import pytest
from synthetic import write_dataset

import archive_builder.records.loader as loader
from archive_builder.checks import audit as audit_module
from archive_builder.checks.audit import run_audit
from archive_builder.checks.rules import RuleFileError

SAMPLE = Path(__file__).resolve().parents[1] / "households_sample"


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARCHIVE_BUILDER_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The households parsed in this process (not read from a record cache)."""
    found: list[str] = []
    original = loader._load_household_folder

    def counted(*args: Any) -> Any:
        found.append(str(args[1]))
        return original(*args)

    monkeypatch.setattr(loader, "_load_household_folder", counted)
    return found


def _rows(result: Any) -> list[tuple[str, str]]:
    return [(row.key, row.description) for row in result.rows]


def test_first_audit_fills_the_record_cache_and_the_second_parses_nothing(tmp_path: Path, parses: list[str]) -> None:
    data = tmp_path / "data"
    shutil.copytree(SAMPLE, data)
    first = run_audit(data, jobs=1)
    assert len(parses) == first.households > 0
    parses.clear()
    second = run_audit(data, jobs=1)
    assert parses == [] and _rows(second) == _rows(first)


def test_worker_processes_give_the_same_ledger(tmp_path: Path) -> None:
    data = write_dataset(tmp_path / "data", (("411621105201", "李庄村", 24), ("411621105202", "王楼村", 24)),
                         photos_per_household=0)
    serial = run_audit(data, jobs=1, record_cache=tmp_path / "one.pickle")
    parallel = run_audit(data, jobs=2, record_cache=tmp_path / "two.pickle")  # 48 households: parsed by workers
    assert serial.households == parallel.households == 48
    assert _rows(parallel) == _rows(serial) and serial.rows


def test_collector_is_on_again_after_an_audit(tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(SAMPLE, data)
    assert gc.isenabled()
    run_audit(data, jobs=1)
    assert gc.isenabled()
    (data / "rules").mkdir()
    (data / "rules" / "坏.yaml").write_text("规则: [\n", encoding="utf-8")
    with pytest.raises(RuleFileError):
        run_audit(data, jobs=1)
    assert gc.isenabled()


@pytest.mark.slow
def test_builds_audit_line_counts_the_records_the_build_parked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              parses: list[str]) -> None:
    """The build's 问题台账 line is counted from the records the build parked in its own record
    cache (also with an output folder archive.toml does not name): nothing is parsed again, and
    the counts are those of a plain audit."""
    from archive_builder import api
    from archive_builder.archive.build import Build

    data = tmp_path / "data"
    shutil.copytree(SAMPLE, data)
    out = tmp_path / "别处"  # not the output folder archive.toml names
    during: list[list[str]] = []
    original = Build.audit

    def spy(self: Build, *args: Any) -> Any:
        parses.clear()
        result = original(self, *args)
        during.append(list(parses))
        return result

    monkeypatch.setattr(Build, "audit", spy)
    monkeypatch.setattr(audit_module, "run_audit", lambda *a, **k: pytest.fail("the data directory read again"))
    summary = api.build(data, out, jobs=1)
    monkeypatch.undo()
    assert during == [[]]  # every record came back from the build's cache
    assert summary.audit == run_audit(data, jobs=1).line()


@pytest.mark.slow
def test_streamed_audit_holds_one_village_s_records_and_gives_the_same_ledger(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The build's audit line (``stream``): records are parked in the build's record cache as
    they are read and brought back village by village, so while a village is checked no other
    village's household holds its record; the ledger is the one a plain audit gives."""
    from archive_builder import api

    data = write_dataset(tmp_path / "data", (("411621105201", "李庄村", 6), ("411621105202", "王楼村", 6)),
                         photos_per_household=0)
    out = tmp_path / "out"
    api.build(data, out, jobs=1)
    cache = out / ".cache" / "records.pickle"
    seen: list[int] = []
    datasets: list[Any] = []
    real_load, real_rows = loader.load_dataset, audit_module._household_rows

    def load(*args: Any, **kwargs: Any) -> Any:
        datasets.append(real_load(*args, **kwargs))
        return datasets[-1]

    def rows(auditor: Any, rule_set: Any, record: Any, *args: Any) -> Any:
        village = args[-2][0]
        seen.append(sum(1 for v in datasets[-1].villages if v.config.name != village
                        for h in v.households if isinstance(h.record, loader.Household)))
        return real_rows(auditor, rule_set, record, *args)

    monkeypatch.setattr(loader, "load_dataset", load)
    monkeypatch.setattr(audit_module, "_household_rows", rows)
    streamed = run_audit(data, jobs=1, record_cache=cache, stream=True)
    assert seen and set(seen) == {0}
    seen.clear()
    plain = run_audit(data, jobs=1, record_cache=cache)
    assert seen and max(seen) > 0  # the plain audit holds every record
    assert _rows(streamed) == _rows(plain) and streamed.households == 12
