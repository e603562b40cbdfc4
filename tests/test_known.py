"""Rebuilds that cost what changed (archive_builder/archive/known.py).

A household whose folder is as the last run found it is not read, checked, hashed or audited
again: its results are the last run's. That shortcut must never change an output: every
history below is built twice, with the shortcut and without it, and the two output folders
must hold the same bytes, the same manifest and report the same problems.
"""

from __future__ import annotations

import datetime as _dt
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from synthetic import dump_household_yaml, iter_records, make_id_number, write_archive_toml, write_dataset

from archive_builder.archive import build as build_module
from archive_builder.archive import known
from archive_builder.archive.build import Build, BuildOptions
from archive_builder.checks import audit as audit_module
from archive_builder.checks.audit import run_audit

REPO = Path(__file__).resolve().parents[1]
VILLAGES = (("411621105201", "李庄村", 4), ("411621105202", "王楼村", 3))


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("known")
    tset = root / "templates-anchor"
    shutil.copytree(REPO / "benchmarks" / "templates" / "anchor", tset)
    data = write_dataset(root / "data", VILLAGES, seed=11, photos_per_household=1, photo_size=(120, 160))
    write_archive_toml(data, templates={"set": str(tset)}, print={"duplex": False})
    return data


def run(data: Path, out: Path, **options: Any) -> Any:
    return Build(data, out, BuildOptions(jobs=1, **options)).run()


def records(data: Path) -> list[tuple[Path, dict[str, Any]]]:
    return list(iter_records(data))


def write(path: Path, record: dict[str, Any]) -> None:
    path.write_text(dump_household_yaml(record), encoding="utf-8")


def change_income(data: Path) -> None:
    path, record = records(data)[1]
    record["phone"] = "13912345678" if record.get("phone") != "13912345678" else "13812345678"
    write(path, record)


def delete_unchanged_packet(data: Path, out: Path) -> None:
    next(iter(sorted(out.rglob("分户档卡/*.pdf")))).unlink()


def repeat_an_id_number(data: Path) -> None:
    found = records(data)
    path, record = found[-1]
    record["members"][-1]["id_number"] = found[0][1]["members"][0]["id_number"]
    write(path, record)


def _birth(id_number: str) -> _dt.date:
    return _dt.datetime.strptime(id_number[6:14], "%Y%m%d").date()


def undo_the_repeat(data: Path) -> None:
    found = records(data)
    path, record = found[-1]
    member = record["members"][-1]
    member["id_number"] = make_id_number("410102", _birth(member["id_number"]), 917)
    write(path, record)


def add_household(data: Path) -> None:
    path, record = records(data)[2]
    folder = path.parent.with_name("4116211052010000")  # first of the village: the others' 件号 move
    shutil.copytree(path.parent, folder)
    record["household_id"] = "4116211052010000"
    for number, member in enumerate(record["members"]):
        member["id_number"] = make_id_number("410102", _birth(member["id_number"]), 930 + number)
    write(folder / path.name, record)


def remove_household(data: Path) -> None:
    shutil.rmtree(records(data)[0][0].parent)  # the first: the others' 件号 move


def touch_village_toml(data: Path) -> None:
    toml = next(data.glob("*/village.toml"))
    toml.write_text(toml.read_text(encoding="utf-8"), encoding="utf-8")


def replace_photo(data: Path) -> None:
    from PIL import Image

    photo = sorted(data.rglob("*.jpg"))[4]
    Image.new("RGB", (120, 160), (200, 30, 30)).save(photo, quality=80)


def head_renamed(data: Path) -> None:
    path, record = records(data)[5]
    record["members"][0]["name"] = record["members"][0]["name"][:1] + "新名"
    write(path, record)


def hide_a_record(data: Path) -> None:
    """Windows hid the extension: the record is household.yaml.txt (unreadable, keeps its 件号)."""
    path = records(data)[3][0]
    path.rename(path.with_name("household.yaml.txt"))


def unhide_the_record(data: Path) -> None:
    (hidden,) = data.glob("*/*/household.yaml.txt")
    hidden.rename(hidden.with_name("household.yaml"))


STEPS: list[Callable[..., None]] = [
    change_income, delete_unchanged_packet, repeat_an_id_number, change_income, undo_the_repeat,
    add_household, change_income, remove_household, touch_village_toml, replace_photo, head_renamed,
    hide_a_record, change_income, unhide_the_record,
]


def _outputs(out: Path) -> dict[str, bytes]:
    found = {}
    for path in sorted(out.rglob("*")):
        rel = path.relative_to(out).as_posix()
        if not path.is_file() or rel.startswith((".store", ".cache", ".state")) or rel == ".archive-builder.lock":
            continue
        data = path.read_bytes()
        if rel == "manifest.json":
            manifest = json.loads(data)
            manifest.pop("built_at")
            data = json.dumps(manifest, ensure_ascii=False, sort_keys=True).encode()
        found[rel] = data
    return found


def counting(monkeypatch: pytest.MonkeyPatch, calls: dict[str, int], name: str, owner: Any, attr: str) -> None:
    """Count the calls of ``owner.attr`` in ``calls[name]``."""
    real = getattr(owner, attr)

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls[name] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, attr, spy)


def twins(base: Path, tmp_path: Path) -> tuple[dict[str, Path], dict[str, Path]]:
    """Two copies of the data directory ("with" and "without" the remembered households) and
    their output folders."""
    data = {kind: tmp_path / kind / "data" for kind in ("with", "without")}
    for kind in data:
        shutil.copytree(base, data[kind])
        shutil.copytree(base.parent / "templates-anchor", tmp_path / kind / "templates-anchor")
        write_archive_toml(data[kind], templates={"set": str(tmp_path / kind / "templates-anchor")},
                           print={"duplex": False})
    return data, {kind: tmp_path / kind / "out" for kind in data}


def build_both(monkeypatch: pytest.MonkeyPatch, data: dict[str, Path], out: dict[str, Path],
               planned: dict[str, int], **options: Any) -> dict[str, tuple[Any, dict[str, bytes]]]:
    """Build each copy, one with the remembered households and one without; count the
    households each planned."""
    results = {}
    for kind in data:
        with monkeypatch.context() as patch:
            if kind == "without":
                patch.setattr(known, "unchanged", lambda *a: {})
            counting(patch, planned, kind, build_module, "plan_packet")
            results[kind] = (_summary(run(data[kind], out[kind], **options)), _outputs(out[kind]))
    return results


def _summary(summary: Any) -> tuple[Any, ...]:
    return (summary.rendered, summary.unchanged, sorted(summary.failed), summary.audit,
            [p.to_json() for p in summary.problems], summary.villages_collated, summary.versions_recorded)


@pytest.mark.slow
def test_rebuilds_with_remembered_households_give_the_outputs_of_rebuilds_without(
        base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data, out = twins(base, tmp_path)
    planned = {kind: 0 for kind in data}
    for step in [None, *STEPS]:
        for kind in data:
            if step is delete_unchanged_packet:
                step(data[kind], out[kind])
            elif step is not None:
                step(data[kind])
        results = build_both(monkeypatch, data, out, planned)
        name = step.__name__ if step else "first build"
        assert results["with"][0] == results["without"][0], name
        assert results["with"][1].keys() == results["without"][1].keys(), name
        for rel, blob in results["with"][1].items():
            assert blob == results["without"][1][rel], f"{name}: {rel}"
    assert planned["with"] < planned["without"]  # the households remembered were not planned again


@pytest.mark.slow
def test_one_household_changed_is_the_only_one_read_checked_planned_and_audited(
        base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = shutil.copytree(base, tmp_path / "data")
    out = tmp_path / "out"
    run(data, out)
    change_income(data)
    calls: dict[str, int] = {"plan": 0, "rules": 0, "audit": 0, "parse": 0}

    from archive_builder import validate
    from archive_builder.records import loader

    counting(monkeypatch, calls, "plan", build_module, "plan_packet")
    counting(monkeypatch, calls, "rules", validate._HouseholdRules, "run")
    counting(monkeypatch, calls, "audit", audit_module, "_household_rows")
    counting(monkeypatch, calls, "parse", loader, "parse_household")
    summary = run(data, out)
    assert (summary.rendered, summary.unchanged) == (1, 6)
    assert calls == {"plan": 1, "rules": 1, "audit": 1, "parse": 1}
    monkeypatch.undo()
    assert summary.audit == run_audit(data, jobs=1).line()


@pytest.mark.slow
def test_anything_else_changed_reads_every_household(base: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    data = shutil.copytree(base, tmp_path / "data")
    out = tmp_path / "out"
    run(data, out)
    touch_village_toml(data)
    change_income(data)
    planned: list[str] = []
    real = build_module.plan_packet
    monkeypatch.setattr(build_module, "plan_packet", lambda *a, **k: planned.append("") or real(*a, **k))
    summary = run(data, out)
    assert (summary.rendered, summary.unchanged) == (1, 6)
    assert len(planned) == 7
    # and a strict build does not take what a lenient one remembered
    planned.clear()
    change_income(data)
    run(data, out)
    assert len(planned) == 1
    change_income(data)
    run(data, out, strict=True)
    assert len(planned) == 1 + 7


def test_a_damaged_or_foreign_file_is_not_used(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / ".cache").mkdir(parents=True)
    (out / known.KNOWN_FILE).write_bytes(b"not a pickle")
    assert known.read(out) is None
    import pickle

    (out / known.KNOWN_FILE).write_bytes(pickle.dumps((1, "0.0.0-other", "", (), ())) + pickle.dumps(None))
    assert known.read(out) is None


@pytest.mark.slow
def test_a_run_with_stubs_keeps_the_cached_parses_rules_and_hashes_of_the_others(
        base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """After a run that read only the changed household, a change elsewhere (village.toml
    touched: every household is read again) still finds every other household's parse, rule
    results and photo hashes in the caches."""
    from archive_builder import validate
    from archive_builder.archive import hashing
    from archive_builder.records import loader

    data = shutil.copytree(base, tmp_path / "data")
    out = tmp_path / "out"
    run(data, out)
    change_income(data)
    assert run(data, out).rendered == 1  # with stubs
    touch_village_toml(data)
    calls = {"parse": 0, "rules": 0, "hash": 0}
    counting(monkeypatch, calls, "parse", loader, "parse_household")
    counting(monkeypatch, calls, "rules", validate._HouseholdRules, "run")
    counting(monkeypatch, calls, "hash", hashing, "file_sha256")
    summary = run(data, out)
    assert (summary.rendered, summary.unchanged) == (0, 7)
    assert calls == {"parse": 0, "rules": 0, "hash": 0}


@pytest.mark.slow
def test_builds_of_one_village_with_remembered_households_give_the_outputs_of_builds_without(
        base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--village``: the villages not built keep what an earlier run remembered of them, and a
    later build of everything gives the same bytes as without the shortcut."""
    data, out = twins(base, tmp_path)
    planned = {kind: 0 for kind in data}
    steps: list[tuple[Callable[[Path], None] | None, tuple[str, ...]]] = [
        (None, ()), (change_income, ("411621105201",)), (head_renamed, ("王楼村",)), (change_income, ()),
        (None, ("411621105202",)), (touch_village_toml, ("411621105201",)), (None, ()),
    ]
    for step, villages in steps:
        for kind in data:
            if step is not None:
                step(data[kind])
        results = build_both(monkeypatch, data, out, planned, villages=villages)
        name = f"{step.__name__ if step else 'no change'} {villages}"
        assert results["with"][0] == results["without"][0], name
        assert results["with"][1] == results["without"][1], name
    assert planned["with"] < planned["without"]
