"""The build gives the same bytes every time (fresh, rebuilt, spawned workers); the parallel
loader gives what the serial one gives; archive.toml's paths, worker count and warnings.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from build_helpers import (
    REPO,
    break_id,
    change_phone,
    make_data,
    manifest,
    pdf_snapshot,
    run_build,
    subprocess_build,
    summary_line,
)
from click.testing import CliRunner
from synthetic import dump_household_yaml, iter_records

from archive_builder.cli import main
from archive_builder.errors import ExitCode

# --------------------------------------------------------------------------- 6. reproducible


def _pdf_bytes(out: Path) -> dict[str, bytes]:
    return {k: v[1] for k, v in pdf_snapshot(out).items()}


def _differences(first: dict[str, bytes], second: dict[str, bytes]) -> list[str]:
    assert first.keys() == second.keys()
    assert any(k.endswith("盒.pdf") for k in first) and any("分户档卡" in k for k in first)
    assert any(k.endswith("竖条.pdf") for k in first)
    return sorted(k for k in first if first[k] != second[k])


def _fresh_process_build(data: Path, out: Path, jobs: str) -> None:
    # a fresh interpreter each time: no module state left over from other builds in this process
    proc = subprocess_build(data, out, "-j", jobs)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == ExitCode.ok, stderr


@pytest.mark.slow
def test_rebuild_from_scratch_is_byte_identical(tmp_path, small):
    """Same data, same output path, one worker then two: the same bytes (boxes, packets, spines)."""
    data, _, _ = small
    target = tmp_path / "out"
    _fresh_process_build(data, target, "1")
    first = _pdf_bytes(target)
    shutil.rmtree(target)
    _fresh_process_build(data, target, "2")
    assert _differences(first, _pdf_bytes(target)) == []


def test_versions_store_the_packets_as_written(small):
    """The store takes each packet's hash from its renderer (the file is not hashed again):
    every recorded PDF blob is the packet file's bytes, and `store check` finds the store sound."""
    from archive_builder.versions.store import VersionStore

    _data, out, _ = small
    store = VersionStore(out)
    manifest = json.loads((out / "manifest.json").read_text("utf-8"))
    packets = [h for v in manifest["villages"] for h in v["households"]]
    assert packets
    for h in packets:
        latest = store.latest(h["household_id"])
        data = (out / h["packet"]).read_bytes()
        assert latest is not None and latest.pdf_sha == hashlib.sha256(data).hexdigest()
        assert store.blob_path(latest.pdf_sha).read_bytes() == data
    assert store.check() == []


def test_two_fresh_builds_are_byte_identical(tmp_path, small):
    data, out, _ = small
    other = tmp_path / "again"
    result = run_build(data, "-o", other, "-j", "1")
    assert result.exit_code == ExitCode.ok, result.output
    assert _differences(_pdf_bytes(out), _pdf_bytes(other)) == []


_SPAWN_BUILD = """
import multiprocessing, sys
if __name__ == "__main__":
    multiprocessing.set_start_method("spawn")
    from archive_builder.cli import entry
    sys.argv[0] = "archive-builder"
    entry()
"""


@pytest.mark.slow
def test_spawned_workers_give_the_same_bytes(tmp_path, small):
    """Windows and macOS start workers by spawning, not forking: the build still works there,
    without the fork-only shortcuts (workers parsing records, the forked cache saver), and its
    files are byte for byte those of a forked build."""
    data, out, _ = small
    spawned = tmp_path / "spawned"
    proc = subprocess.run(
        [sys.executable, "-c", _SPAWN_BUILD, "build", str(data), "-o", str(spawned), "-j", "2"],
        check=False, cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == ExitCode.ok, proc.stderr
    assert _differences(_pdf_bytes(out), _pdf_bytes(spawned)) == []
    manifest = json.loads((spawned / "manifest.json").read_text(encoding="utf-8"))
    assert sum(len(v["households"]) for v in manifest["villages"]) == 12


# --------------------------------------------------------------------------- parallel loading


@pytest.mark.parametrize("jobs", [2, 3])
def test_parallel_load_gives_what_the_serial_load_gives(tmp_path, monkeypatch, jobs):
    """A first build parses its households in worker processes; the dataset, its problems and
    the record cache are exactly what the serial loader gives, in the same order."""
    from contextlib import ExitStack

    from archive_builder.archive import scheduler as scheduler_module
    from archive_builder.archive.build import Build, BuildOptions, read_settings
    from archive_builder.archive.outdir import prepare
    from archive_builder.archive.scheduler import Scheduler
    from archive_builder.records.cache import RecordCache
    from archive_builder.records.loader import ParkedRecord, load_dataset
    from archive_builder.validate import validate_dataset

    data = make_data(tmp_path / "data")
    records = list(iter_records(data))
    path, record = records[1]
    break_id(record)  # a rule's error, with its line
    path.write_text(dump_household_yaml(record), encoding="utf-8")
    path, record = records[3]
    record["members"][0]["birth_date"] = "not a date"  # a model error: a partial record
    path.write_text(dump_household_yaml(record), encoding="utf-8")
    records[4][0].write_text("household_id: [unclosed\n", encoding="utf-8")  # YAML syntax
    records[7][0].with_name("household.json").write_text("{}", encoding="utf-8")  # two files

    pools: list[int] = []

    class CountingPool(scheduler_module.ProcessPoolExecutor):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            pools.append(kwargs.get("max_workers") or args[0])
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(scheduler_module, "ProcessPoolExecutor", CountingPool)
    monkeypatch.setattr(scheduler_module, "PARSE_PER_WORKER", 2)

    def household_view(dataset: Any) -> list[Any]:
        return [
            (v.config.code, h.folder, h.file, h.display, h.household_id, h.raw, h.positions,
             h.problems, h.record, h.partial, h.cache_key)
            for v, h in dataset.households()
        ]

    serial_cache = RecordCache(tmp_path / "serial.pickle")
    serial = load_dataset(data, cache=serial_cache)
    serial_problems = validate_dataset(serial, cache=RecordCache(None))
    assert any(h.record is None for _, h in serial.households())
    assert any(h.partial is not None for _, h in serial.households())

    out = tmp_path / "out"
    for run in (1, 2):  # the second run finds every household in the record cache
        b = Build(data, out, BuildOptions(jobs=jobs))
        b.out = prepare(out, data)
        settings = read_settings(data, b.options)
        with ExitStack() as later, Scheduler(settings.jobs) as scheduler:
            dataset = b.load(settings, scheduler, later)
            parked = sum(isinstance(h.record, ParkedRecord) for _, h in dataset.households())
            assert parked == sum(h.record is not None for _, h in serial.households())  # until planned
            for village, household in dataset.households():
                b._unpark(dataset, village, household)
        # the first run parsed in a pool (started for it) and in this process; the second
        # found all cached
        assert pools == [jobs], pools
        assert household_view(dataset) == household_view(serial)
        assert dataset.problems == serial.problems
        assert b.validate(dataset, settings).problems() == serial_problems
    serial_cache.save()
    cached = {k for k in RecordCache(out / ".cache" / "records.pickle").keys() if not k.startswith("parked|")}
    assert cached and cached == RecordCache(tmp_path / "serial.pickle").keys()


def test_archive_toml_output_dir_and_fonts_are_relative_to_the_data(tmp_path):
    from archive_builder.archive.build import configured_output
    from archive_builder.archive.packet import configured_fonts
    from archive_builder.records.loader import load_dataset
    from archive_builder.render.fonts import FontSet
    from archive_builder.templates import resolve_set

    data = make_data(tmp_path / "data")
    (data / "fonts").mkdir()
    ukai = next(p for p in FontSet.discover().faces.values() if "ukai" in str(p.path).lower()).path
    (data / "fonts" / "kai.ttc").symlink_to(ukai)
    toml = data / "archive.toml"
    toml.write_text(
        toml.read_text(encoding="utf-8") + '\n[fonts]\nbody = "fonts/kai.ttc#0"\n\n[output]\ndir = "../成品"\n',
        encoding="utf-8",
    )
    assert configured_output(data) == (tmp_path / "成品").resolve()
    dataset = load_dataset(data)
    fonts = configured_fonts(resolve_set("default", data_dir=data), dataset.config, data)
    assert fonts["body"] == str((data / "fonts" / "kai.ttc").resolve()) + "#0"
    assert FontSet.discover(fonts).faces["body"].path.resolve() == ukai.resolve()
    result = CliRunner().invoke(main, ["build", str(data), "-j", "1"])
    assert result.exit_code == ExitCode.ok, result.output
    assert (tmp_path / "成品" / "manifest.json").is_file()


def test_rendering_warnings_name_the_household_and_stay_in_the_manifest(tmp_path):
    """A photo cut off in copying is found only when rendering: the clerk sees the household on
    screen, and manifest.json keeps the warning while that packet is in the folder."""
    data = make_data(tmp_path / "data", villages=(("411621105201", "李庄村", 3),))
    photo = min(data.rglob("*.jpg"))
    photo.write_bytes(photo.read_bytes()[: photo.stat().st_size // 2])
    hid = photo.relative_to(data).parts[1]
    out = tmp_path / "out"
    first = run_build(data, "-o", out)
    assert first.exit_code == ExitCode.ok, first.output
    assert f"警告：户 {hid}：佐证材料 evidence/photo_01.jpg 无法读取" in first.stderr

    def rendering_warnings() -> list[dict[str, Any]]:
        return [p for p in manifest(out)["problems"] if p["severity"] == "warning" and "占位页" in p["message"]]
    (problem,) = rendering_warnings()
    assert problem["household_id"] == hid and problem["village"] == "李庄村"
    other = next(h["household_id"] for h in manifest(out)["villages"][0]["households"] if h["household_id"] != hid)
    change_phone(data, other)
    again = run_build(data, "-o", out)
    assert summary_line(again).startswith("渲染 1 户"), again.stdout
    assert [p["household_id"] for p in rendering_warnings()] == [hid]


@pytest.mark.parametrize(("setting", "expected"), [
    ("workers = 1", 1), ("workers = 3", 3), ('workers = "two"', "error"), ("workers = 0", "error"), ("", None),
])
def test_worker_count_comes_from_archive_toml_read_once(tmp_path, setting, expected):
    """[build] workers is read with the rest of archive.toml, before the records (a bad value
    stops the build, as any error in archive.toml); -j wins; with one worker no pool is started early."""
    from archive_builder.archive.build import BuildOptions, read_settings
    from archive_builder.archive.scheduler import Scheduler
    from archive_builder.errors import ConfigError

    data = tmp_path / "data"
    data.mkdir()
    (data / "archive.toml").write_text(f"[build]\n{setting}\n", encoding="utf-8")
    if expected == "error":
        with pytest.raises(ConfigError, match="build.workers"):
            read_settings(data, BuildOptions())
        return
    settings = read_settings(data, BuildOptions())
    cpus = os.cpu_count() or 1
    # archive.toml's setting is bounded by the CPUs (workers = 100000 must not run away)
    assert settings.jobs == min(expected or cpus, cpus)
    assert read_settings(data, BuildOptions(jobs=2)).jobs == 2
    if expected == 1:
        with Scheduler(settings.jobs) as scheduler:
            scheduler.start_early()
            assert scheduler._pool is None


def test_a_villages_boxes_go_to_the_workers_while_later_villages_are_planned(tmp_path, monkeypatch):
    """Collation overlaps rendering: once a village's packets are done, its boxes are handed
    to the workers before the next village's households are planned and rendered."""
    from concurrent.futures import Future

    from archive_builder.archive import build as build_module
    from archive_builder.archive.build import BuildOptions, build
    from archive_builder.archive.scheduler import Scheduler, Task

    handed: list[str] = []

    def submit(self: Scheduler, function: Any, *args: Any, throttle: bool = False) -> Task:
        # a pool that finishes every task at once, in order
        handed.append(function.__name__ if hasattr(function, "__name__") else str(function))
        future: Future[Any] = Future()
        future.set_result(function(*args))
        return Task(function, (), future)

    monkeypatch.setattr(Scheduler, "submit", submit)
    monkeypatch.setattr(Scheduler, "start_early", lambda self, warm=None: None)
    data = make_data(tmp_path / "data")
    summary = build(data, tmp_path / "out", BuildOptions(jobs=2))
    assert not summary.failed and summary.villages == 2
    first_box = handed.index(build_module._collate_box.__name__)
    renders = [i for i, name in enumerate(handed) if name == build_module._safe_render.__name__]
    assert renders[0] < first_box < renders[-1]
    # then the last village's boxes, then the two villages' spines (also on the workers)
    assert set(handed[renders[-1] + 1:-2]) == {build_module._collate_box.__name__}
    assert handed[-2:] == [build_module._write_spine.__name__] * 2


def test_records_parked_while_loading_still_meet_the_rules_across_households(tmp_path):
    """The build parks each household's record in the record cache as soon as it is read
    (flat memory); the rules across households still see every ID number, in the first run
    (records parsed) and the next (records from the cache)."""
    from archive_builder.archive.build import BuildOptions, build

    data = make_data(tmp_path / "data")
    records = list(iter_records(data))
    (_, first), (path, second) = records[0], records[5]
    second["members"][-1]["id_number"] = first["members"][0]["id_number"]
    path.write_text(dump_household_yaml(second), encoding="utf-8")
    for run in (1, 2):
        summary = build(data, tmp_path / "out", BuildOptions(jobs=2, force=run == 2))
        duplicates = [p for p in summary.problems if "重复" in p.message and p.is_error]
        assert len(duplicates) == 2, (run, [p.message for p in summary.problems])
        assert {p.household_id for p in duplicates} == {first["household_id"], second["household_id"]}
        assert all(first["members"][0]["id_number"] in p.message for p in duplicates)
        # neither household is built: either may hold the other's number
        assert {hid for hid, _ in summary.failed} == {first["household_id"], second["household_id"]}


def test_a_copied_household_folder_moves_no_other_households_number(tmp_path):
    """Windows' copy and paste makes 「… - 副本」 beside the folder, with the same 户编号 inside:
    both are errors (neither built), they share the one 件号, no other household's 件号,
    cover or version changes, and each 未生成 line names the other folder."""
    data = make_data(tmp_path / "data")
    out = tmp_path / "out"
    assert run_build(data, "-o", out).exit_code == ExitCode.ok
    before = {h["household_id"]: h["item_no"] for v in manifest(out)["villages"] for h in v["households"]}
    pdfs = _pdf_bytes(out)
    folder = sorted(p.parent for p in data.rglob("household.yaml"))[2]
    shutil.copytree(folder, folder.with_name(f"{folder.name} - 副本"))
    result = run_build(data, "-o", out)
    assert result.exit_code == ExitCode.partial, result.output
    assert summary_line(result).startswith(f"渲染 0 户 · 未变化 {len(before) - 1} 户 · 未生成 2 户")
    failed = [line for line in result.output.splitlines() if line.startswith("未生成")]
    assert len(failed) == 2 and failed[0] != failed[1] and any("副本" in line for line in failed)
    after = {h["household_id"]: h["item_no"] for v in manifest(out)["villages"] for h in v["households"]}
    assert after == {hid: n for hid, n in before.items() if hid != folder.name}
    now = _pdf_bytes(out)  # (the household not built has no packet now: none to print by mistake)
    changed = [name for name, data in pdfs.items() if "分户档卡" in name and folder.name not in name
               and now.get(name) != data]
    assert changed == [], changed
