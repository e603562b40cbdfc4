"""The core API (archive_builder.api): plain arguments in, result objects out, typed errors,
nothing printed; the CLI is a layer over it and nothing else of the core."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml
from datadir import valid_household

from archive_builder import api
from archive_builder.errors import ArgumentError, DataDirError, HouseholdNotFoundError, StoreError, ValidationFailed
from archive_builder.versions.verify import qr_payload

ROOT = Path(__file__).resolve().parent.parent
HID = "4116211052010001"


def test_load_and_validate(make_data_dir, capsys) -> None:
    data = make_data_dir()
    dataset = api.load(data)
    assert dataset.household_ids() == [HID]
    report = api.validate(str(data))
    assert (report.summary.households, report.summary.errors) == (1, 0)
    assert "户数 1" in report.format_text()
    assert capsys.readouterr() == ("", "")


def test_validate_reports_errors_and_unusable_folders(make_data_dir, tmp_path: Path) -> None:
    bad = valid_household()
    good = bad["members"][0]["id_number"]
    bad["members"][0]["id_number"] = good[:17] + ("1" if good[17] != "1" else "2")  # wrong check character
    data = make_data_dir([bad])
    report = api.validate(data)
    assert report.summary.errors >= 1
    assert any(p.household_id == HID for p in report.problems)
    with pytest.raises(DataDirError):
        api.validate(tmp_path / "nowhere")


def test_render_packet_refuses_records_with_errors(make_data_dir, tmp_path: Path) -> None:
    bad = valid_household()
    good = bad["members"][0]["id_number"]
    bad["members"][0]["id_number"] = good[:17] + ("1" if good[17] != "1" else "2")  # wrong check character
    data = make_data_dir([bad])
    with pytest.raises(ValidationFailed) as caught:
        api.render_packet(data, HID, tmp_path / "out.pdf")
    assert caught.value.problems
    assert not (tmp_path / "out.pdf").exists()
    with pytest.raises(HouseholdNotFoundError):
        api.render_packet(data, "4116211052019999", tmp_path)


def test_build_history_compare_verify(make_data_dir, tmp_path: Path, capsys) -> None:
    data = make_data_dir()
    out = tmp_path / "out"
    events: list[api.ProgressEvent] = []
    summary = api.build(data, out, jobs=1, progress=events.append)
    assert (summary.rendered, summary.failed) == (1, [])
    assert (out / "manifest.json").is_file()
    kinds = {e.kind for e in events}
    assert {"stage", "start", "advance"} <= kinds
    advances = [e for e in events if e.kind == "advance"]
    assert advances[-1].done == advances[-1].total

    record_file = next(data.rglob("household.yaml"))
    record = yaml.safe_load(record_file.read_text(encoding="utf-8"))
    record["phone"] = "13900139000"
    record_file.write_text(yaml.safe_dump(record, allow_unicode=True), encoding="utf-8")
    assert api.build(data, out, jobs=1).rendered == 1

    versions = api.history(out, HID)
    assert [e.version.number for e in versions.entries] == [1, 2]
    assert versions.format_text().startswith(f"户 {HID} 共 2 个版本")
    comparison = api.compare(out, HID)
    assert not comparison.identical
    assert any(c.path.endswith("phone") for c in comparison.field_changes)

    first = versions.entries[0].version
    result = api.verify(out, qr_payload(HID, first.number, first.content_hash))
    assert result.status == "outdated"
    assert api.check_store(out).ok
    assert capsys.readouterr() == ("", "")


def test_versions_need_a_store_and_verify_needs_a_text(tmp_path: Path) -> None:
    with pytest.raises(StoreError):
        api.history(tmp_path, HID)
    with pytest.raises(ArgumentError):
        api.verify(tmp_path)


def test_export_then_import_round_trip(make_data_dir, tmp_path: Path) -> None:
    data = make_data_dir()
    exported = api.export_sheet(data, tmp_path / "表.xlsx")
    assert exported.rows == 3 and exported.file.is_file()
    report = api.import_sheet(exported.file, tmp_path / "again", dry_run=True)
    assert report.created == [HID]
    assert not (tmp_path / "again").exists()


def _imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:
            names.update(f"{node.module}.{a.name}" if node.module else a.name for a in node.names)
    return names


def test_the_cli_imports_only_the_api_and_the_errors() -> None:
    """Commands are a layer over the API: of the core, cli.py imports the API and the errors
    (and its own helpers: click's messages in Chinese, the terminal reporter)."""
    names = _imported_modules(ROOT / "archive_builder" / "cli.py")
    names |= _imported_modules(ROOT / "archive_builder" / "cli_group.py")  # its help and error boundary
    imported = {name.split(".")[0] for name in names}
    # ``serve`` starts the other face (the web app), which is a layer over the same API
    allowed = {"api", "errors", "cli_group", "cli_messages", "progress", "manual", "web", "textmatch", "__version__"}
    assert imported <= allowed, imported


def test_the_api_never_prints_or_imports_click() -> None:
    source = (ROOT / "archive_builder" / "api.py").read_text(encoding="utf-8")
    tree = ast.parse(source)
    calls = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    assert "print" not in calls
    modules = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    modules |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not any(m.split(".")[0] == "click" for m in modules)


def test_stats_through_the_api(make_data_dir, tmp_path: Path) -> None:
    data = make_data_dir()
    result = api.stats(data, tmp_path / "统计.xlsx")
    assert result.output.kind == "xlsx" and result.output.path.is_file()
    assert result.output.parts >= 1 and not result.stats.problems
