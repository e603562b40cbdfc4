"""A build with nothing to do ends after comparing stat signatures (archive_builder/uptodate.py).

The shortcut must never hide a change: every kind of change below has to reach the normal run
(which then decides from content hashes what to render), and a run that left households out
must not record a signature at all.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from synthetic import (
    dump_household_yaml,
    iter_records,
    write_archive_toml,
    write_dataset,
)

from archive_builder.archive import uptodate
from archive_builder.archive.build import Build, BuildOptions, SilentReporter

REPO = Path(__file__).resolve().parents[1]
LOAD_STAGE = "读取与校验数据"


class Stages(SilentReporter):
    """Records the stages a run went through."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def stage(self, name: str) -> None:
        self.names.append(name)


def build(data: Path, out: Path, **options: Any) -> tuple[Any, list[str]]:
    stages = Stages()
    summary = Build(data, out, BuildOptions(jobs=1, **options), stages).run()
    return summary, stages.names


def stamps(out: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(out)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in out.rglob("*")
        if p.is_file() and p.name != ".archive-builder.lock"
    }


@pytest.fixture()
def built(tmp_path: Path) -> tuple[Path, Path]:
    tset = tmp_path / "templates-anchor"
    shutil.copytree(REPO / "benchmarks" / "templates" / "anchor", tset)
    data = write_dataset(tmp_path / "data", (("411621105201", "李庄村", 3),), seed=3,
                         photos_per_household=1, photo_size=(120, 160))
    write_archive_toml(data, templates={"set": str(tset)}, print={"duplex": False})
    out = tmp_path / "out"
    summary, stages = build(data, out)
    assert summary.rendered == 3 and not summary.failed and LOAD_STAGE in stages
    assert (out / uptodate.STATE_FILE).is_file()
    return data, out


def test_nothing_changed_replays_the_last_summary_and_touches_nothing(built):
    data, out = built
    first = stamps(out)
    summary, stages = build(data, out)
    assert stages == []  # not even the records were read
    assert (summary.rendered, summary.unchanged, summary.households, summary.villages) == (0, 3, 3, 1)
    assert not summary.failed
    assert stamps(out) == first
    # the validation warnings are reported again, as the normal run reports them
    again, stages = build(data, out, force=True)
    assert stages and again.rendered == 3
    assert [p.to_json() for p in summary.problems] == [p.to_json() for p in again.problems]


def _touch_record(data: Path, out: Path) -> None:
    path, record = next(iter_records(data))
    path.write_text(dump_household_yaml(record), encoding="utf-8")  # same content, new stat


def _change_record(data: Path, out: Path) -> None:
    path, record = next(iter_records(data))
    record["phone"] = "13912345678" if record.get("phone") != "13912345678" else "13812345678"
    path.write_text(dump_household_yaml(record), encoding="utf-8")


def _stray_data_file(data: Path, out: Path) -> None:
    (data / "说明.txt").write_text("新加的文件", encoding="utf-8")


def _evidence_replaced(data: Path, out: Path) -> None:
    photo = next(data.rglob("*.jpg"))
    blob = photo.read_bytes()
    photo.unlink()
    photo.write_bytes(blob)  # same bytes, other inode


def _template_touched(data: Path, out: Path) -> None:
    toml = data.parent / "templates-anchor" / "templateset.toml"
    toml.write_text(toml.read_text(encoding="utf-8") + "\n", encoding="utf-8")


def _box_deleted(data: Path, out: Path) -> None:
    next(out.rglob("*盒*.pdf")).unlink()


def _packet_edited(data: Path, out: Path) -> None:
    packet = next(out.rglob("分户档卡/*.pdf"))
    packet.write_bytes(packet.read_bytes() + b"\n")


def _stray_output_file(data: Path, out: Path) -> None:
    folder = next(out.rglob("分户档卡"))
    (folder / "9999.pdf").write_bytes(b"%PDF-1.4\n")


def _store_removed(data: Path, out: Path) -> None:
    shutil.rmtree(out / ".store")


def _env_changed(data: Path, out: Path) -> None:
    os.environ["ARCHIVE_BUILDER_TEST_SETTING"] = "1"


@pytest.mark.parametrize("change", [
    _touch_record, _change_record, _stray_data_file, _evidence_replaced, _template_touched,
    _box_deleted, _packet_edited, _stray_output_file, _store_removed, _env_changed,
])
def test_every_change_reaches_the_normal_run(built, change, monkeypatch):
    data, out = built
    monkeypatch.delenv("ARCHIVE_BUILDER_TEST_SETTING", raising=False)
    change(data, out)
    summary, stages = build(data, out)
    assert LOAD_STAGE in stages, change.__name__
    assert not summary.failed
    # and the normal run records a new signature: the next run has nothing to do again
    summary, stages = build(data, out)
    assert stages == [] and summary.unchanged == 3
    if change is _box_deleted:
        assert len(list(out.rglob("*盒*.pdf"))) >= 1
    if change is _stray_output_file:
        assert not list(out.rglob("分户档卡/9999.pdf"))


def test_other_options_reach_the_normal_run(built):
    data, out = built
    for options in ({"force": True}, {"strict": True}, {"villages": ("李庄村",)}, {"build_date": "2025-06-30"}):
        _, stages = build(data, out, **options)
        assert LOAD_STAGE in stages, options


def test_a_run_with_failures_records_no_signature(built):
    data, out = built
    path, record = next(iter_records(data))
    record["members"][0]["id_number"] = "123"
    path.write_text(dump_household_yaml(record), encoding="utf-8")
    summary, _ = build(data, out)
    assert summary.failed
    assert not (out / uptodate.STATE_FILE).exists()
    again, stages = build(data, out)
    assert LOAD_STAGE in stages and again.failed  # reported again, every run


def test_a_file_edited_while_the_run_reads_the_data_is_seen_by_the_next_run(built, monkeypatch):
    data, out = built
    _touch_record(data, out)
    real_load = Build.load

    def load_then_edit(self: Build, *args: Any) -> Any:
        dataset = real_load(self, *args)
        _change_record(data, out)  # after the records were read
        return dataset

    monkeypatch.setattr(Build, "load", load_then_edit)
    build(data, out)
    monkeypatch.setattr(Build, "load", real_load)
    summary, stages = build(data, out)
    assert LOAD_STAGE in stages and summary.rendered == 1


def test_a_template_edited_while_the_run_renders_is_seen_by_the_next_run(built, monkeypatch):
    """A template outside the data directory, edited after the run read it: the run leaves
    neither a signature nor remembered households that would take its packets as current."""
    from archive_builder.archive import known
    from archive_builder.archive.build import CHANGED_DURING_RUN

    data, out = built
    _touch_record(data, out)  # something to do
    real_audit = Build.audit

    def audit_then_edit(self: Build, *args: Any) -> Any:
        counts = real_audit(self, *args)
        _template_touched(data, out)  # the packets are rendered by now
        return counts

    monkeypatch.setattr(Build, "audit", audit_then_edit)
    summary, _ = build(data, out)
    assert CHANGED_DURING_RUN in summary.warnings
    assert not (out / uptodate.STATE_FILE).exists() and not (out / known.KNOWN_FILE).exists()
    monkeypatch.setattr(Build, "audit", real_audit)
    summary, stages = build(data, out)
    assert LOAD_STAGE in stages and summary.rendered == 3 and not summary.warnings
    _, stages = build(data, out)
    assert stages == []  # and then nothing to do again


def test_a_run_that_reads_nothing_changed_meanwhile_records_its_signature(built):
    """The watch over the last run's external folders does not fire by itself."""
    data, out = built
    _touch_record(data, out)
    summary, stages = build(data, out)
    assert LOAD_STAGE in stages and not summary.warnings
    assert (out / uptodate.STATE_FILE).is_file()
