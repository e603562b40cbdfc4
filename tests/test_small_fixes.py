"""Smaller things a new user hit: a GBK record in ``packet``, mistyped IDs in ``history``,
mistyped options, counted warnings, the README's example."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from archive_builder.archive.build import BuildSummary
from archive_builder.archive.packet import make_packet
from archive_builder.cli import main
from archive_builder.errors import StoreError
from archive_builder.problems import warning
from archive_builder.versions.store import VersionStore

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "households_sample"
SMALL = "4116211052030010"


def test_packet_warns_about_a_gbk_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARCHIVE_BUILDER_CACHE_DIR", str(tmp_path / "cache"))
    source = next(SAMPLE.glob(f"*/{SMALL}*"))
    data = tmp_path / "data"
    shutil.copytree(source.parent, data / source.parent.name)
    shutil.copy(SAMPLE / "archive.toml", data)
    record = data / source.parent.name / source.name / "household.yaml"
    record.write_bytes(record.read_text(encoding="utf-8").encode("gbk"))
    made = make_packet(data, SMALL, tmp_path / "cards")
    assert any("GBK 编码" in p.message for p in made.warnings)


def test_history_of_a_mistyped_id_lists_near_ones(tmp_path: Path) -> None:
    pdf = tmp_path / "p.pdf"
    pdf.write_bytes(b"%PDF fake")
    store = VersionStore(tmp_path)
    for hid in ("4116211052010003", "4116211052010013", "4116211052030010"):
        store.record(household_id=hid, village_code=hid[:12], content_hash="ab" * 32, record_json=b"{}",
                     packet_pdf=pdf, evidence_hashes={}, template_set="default", program_version="0",
                     pages=1, built_at="2025-01-01T00:00:00+00:00")
    with pytest.raises(StoreError) as info:
        store.versions("411621105201003") or store.get("411621105201003", 1)
    assert info.value.hint is not None and "4116211052010003" in info.value.hint
    result = CliRunner().invoke(main, ["history", "-o", str(tmp_path), "411621105201003"])
    assert result.exit_code != 0 and "相近的户编号：4116211052010003" in result.output


def test_a_mistyped_option_suggests_only_the_one_meant(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["build", str(tmp_path), "--forse"])
    assert result.exit_code == 2
    assert "'--force'" in result.output and "--jobs" not in result.output and "--format" not in result.output
    assert "是否想用" not in CliRunner().invoke(main, ["build", str(tmp_path), "--xyzzy"]).output


def test_the_summary_line_counts_warnings() -> None:
    summary = BuildSummary(rendered=2, warnings=["a", "b"], problems=[warning("c")])
    assert "警告 3 条" in summary.line()
    assert "警告" not in BuildSummary(rendered=2).line()


def test_readme_verify_example_names_a_sample_household() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    (example,) = re.findall(r"archive-builder verify -o \S+ \"AB1\|(\d+)\|", readme)
    assert list(SAMPLE.glob(f"*/{example}*")), example
