"""The packet's audit page: only when the template set asks (``[audit] page = true``)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from datadir import sample_household

from archive_builder.archive.packet import build_document, document_date, make_packet, plan_packet
from archive_builder.errors import TemplateError
from archive_builder.records.loader import load_household
from archive_builder.templates import resolve_set, wants_audit

SAMPLE = Path(__file__).resolve().parents[1] / "households_sample"
VILLAGE = "411621105201_李庄村"
HOUSEHOLD = "4116211052010001_李长河"
HID = "4116211052010001"


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARCHIVE_BUILDER_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """The sample township reduced to one household (its dividends have no 分红凭证: one problem)."""
    return sample_household(tmp_path / "data", VILLAGE, HOUSEHOLD)


def _asking_set(data: Path, audit: str = "page = true") -> str:
    folder = data / "templates" / "审计页"
    folder.mkdir(parents=True)
    (folder / "templateset.toml").write_text(f'extends = "default"\n\n[audit]\n{audit}\n', encoding="utf-8")
    return "审计页"


def _sections(data: Path, set_name: str | None = None) -> list[tuple[str, str]]:
    """(key, title) of the household's packet sections as planned by the build."""
    dataset = load_household(data, HID)
    if set_name is not None:
        dataset.config.templates.set = set_name
    village = dataset.villages[0]
    planned = plan_packet(dataset, village, village.households[0], out_pdf=data / "x.pdf", cache_dir=data / "c",
                          build_date=document_date(dataset.config))
    document = build_document(planned.request, resolve_set(dataset.config.templates.set, data_dir=data))
    return [(section.key, section.title) for section in document.sections]


def test_default_set_adds_no_audit_page(data: Path) -> None:
    assert not wants_audit(resolve_set("default"))
    keys = [key for key, _ in _sections(data)]
    assert "audit" not in keys and keys[-1] == "remarks"


def test_a_set_that_asks_adds_the_households_problems_before_the_remarks(data: Path) -> None:
    name = _asking_set(data)
    assert wants_audit(resolve_set(name, data_dir=data))
    keys = [key for key, _ in _sections(data, name)]
    assert keys[-2:] == ["audit", "remarks"]
    assert len(keys) == len(_sections(data)) + 1  # one page more, nothing else changed


def test_household_without_problems_gets_no_page_unless_asked(data: Path) -> None:
    (data / "rules").mkdir()
    (data / "rules" / "off.yaml").write_text("停用: [measure-evidence]\n", encoding="utf-8")  # its only problem
    name = _asking_set(data)
    assert "audit" not in [key for key, _ in _sections(data, name)]
    shutil.rmtree(data / "templates")
    name = _asking_set(data, 'page = true\nif_empty = "none"\ntitle = "整改问题"')
    assert ("audit", "整改问题") in _sections(data, name)


@pytest.mark.parametrize("audit", ["page = 1", "pages = true", 'page = true\nif_empty = "skip"'])
def test_wrong_audit_setting_is_a_chinese_error(data: Path, audit: str) -> None:
    name = _asking_set(data, audit)
    with pytest.raises(TemplateError) as caught:
        resolve_set(name, data_dir=data)
    assert "[audit]" in caught.value.message and "page" in (caught.value.hint or "")


@pytest.mark.slow
def test_packet_prints_the_problems_in_chinese(data: Path, tmp_path: Path) -> None:
    name = _asking_set(data)
    outcome = make_packet(data, HID, tmp_path / "out.pdf", template_set_name=name, record=False)
    text = subprocess.run(["pdftotext", "-layout", str(outcome.result.pdf), "-"], capture_output=True, text=True,
                          check=True).stdout
    assert "问题台账（本户）" in text
    assert "分红凭证" in text and "严重程度" in text  # the rule's message and the table's header
    assert re.search(r"帮扶责任人签名", text)
    plain = make_packet(data, HID, tmp_path / "plain.pdf", record=False)
    assert "问题台账（本户）" not in subprocess.run(["pdftotext", str(plain.result.pdf), "-"], capture_output=True,
                                                 text=True, check=True).stdout
