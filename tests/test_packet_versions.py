"""A packet made by ``packet`` is the village build's document and is recorded like it, so the
paper copy of a regenerated household verifies (the secretary's workflow in the README)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from archive_builder.archive.build import BuildOptions, build
from archive_builder.archive.packet import make_packet
from archive_builder.errors import OutputError
from archive_builder.versions.store import VersionStore
from archive_builder.versions.verify import decode_qr_image, verify

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "households_sample"
VILLAGE = "411621105201_李庄村"
HOUSEHOLD = "4116211052010003"  # has a 之儿媳 and a 务工 income


@pytest.fixture
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ARCHIVE_BUILDER_CACHE_DIR", str(tmp_path / "cache"))
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(SAMPLE / "archive.toml", data / "archive.toml")
    shutil.copytree(SAMPLE / VILLAGE, data / VILLAGE)
    return data


def _cover_photo(pdf: Path, photo: Path) -> Path:
    import pypdfium2

    doc = pypdfium2.PdfDocument(str(pdf))
    doc[0].render(scale=2).to_pil().rotate(3, expand=True, fillcolor="white").save(photo, quality=85)
    doc.close()
    return photo


def _qr_text(store: VersionStore, number: int) -> str:
    from archive_builder.versions.verify import qr_payload

    return qr_payload(HOUSEHOLD, number, store.get(HOUSEHOLD, number).content_hash)


def _edit_wage(data: Path) -> None:
    path = next((data / VILLAGE).glob(f"{HOUSEHOLD}*")) / "household.yaml"
    record = yaml.safe_load(path.read_text(encoding="utf-8"))
    year = next(y for y in record["income"] if "务工" in (y.get("wage") or {}))
    year["wage"]["务工"] -= 2000
    path.write_text(yaml.safe_dump(record, allow_unicode=True, sort_keys=False), encoding="utf-8")


@pytest.mark.slow
def test_regenerated_packet_verifies_and_the_previous_cover_is_outdated(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    build(data, out, BuildOptions(jobs=1))
    built = next(out.glob(f"{VILLAGE}/*/{HOUSEHOLD}.pdf"))

    # unchanged household: the very document the build made, and its version
    same = make_packet(data, HOUSEHOLD, tmp_path / "cards", store_dir=out)
    assert same.version == 1 and not same.new_version and same.item_no == 3
    assert same.result.pdf.read_bytes() == built.read_bytes()
    store = VersionStore(out)
    first_cover = _cover_photo(same.result.pdf, tmp_path / "first.jpg")
    assert verify(store, decode_qr_image(first_cover)).status == "current"

    _edit_wage(data)
    again = make_packet(data, HOUSEHOLD, tmp_path / "cards2", store_dir=out)
    assert again.version == 2 and again.new_version and again.store_dir == out.resolve()
    new_text = decode_qr_image(_cover_photo(again.result.pdf, tmp_path / "second.jpg"))
    assert new_text == _qr_text(store, 2)
    assert verify(store, new_text).status == "current"
    old = verify(store, decode_qr_image(first_cover))
    assert old.status == "outdated" and old.latest is not None and old.latest.number == 2
    assert "务工" in old.format_text() and "已过期" in old.format_text()

    # the next build makes the same packet and records nothing new
    summary = build(data, out, BuildOptions(jobs=1))
    assert summary.versions_recorded == 0
    assert next(out.glob(f"{VILLAGE}/*/{HOUSEHOLD}.pdf")).read_bytes() == again.result.pdf.read_bytes()


def test_configured_output_folder_is_the_store(data: Path, tmp_path: Path) -> None:
    with (data / "archive.toml").open("a", encoding="utf-8") as toml:
        toml.write('\n[output]\ndir = "../档案输出"\n')
    made = make_packet(data, HOUSEHOLD, tmp_path / "cards")
    assert made.version == 1 and made.new_version and not made.not_recorded
    assert made.store_dir == (tmp_path / "档案输出").resolve()
    assert [v.number for v in VersionStore(tmp_path / "档案输出").versions(HOUSEHOLD)] == [1]
    assert verify(VersionStore(tmp_path / "档案输出"), _qr_text(VersionStore(tmp_path / "档案输出"), 1)).status == "current"


def test_without_an_output_folder_the_cover_claims_no_version(data: Path, tmp_path: Path) -> None:
    from pypdf import PdfReader

    made = make_packet(data, HOUSEHOLD, tmp_path / "cards")
    assert made.version is None and made.store_dir is None
    assert "没有登记版本" in made.not_recorded and "--store" in made.not_recorded
    cover = PdfReader(made.result.pdf).pages[0].extract_text()
    assert "未登记" in cover and "第 1 版" not in cover
    assert not (tmp_path / "data-档案输出").exists()


@pytest.mark.parametrize("where", ["data", "data/sub", "out"])
def test_refuses_output_in_the_data_folder_or_a_build_outputs_root(data: Path, tmp_path: Path, where: str) -> None:
    from archive_builder.archive.outdir import prepare

    prepare(tmp_path / "out", data)
    with pytest.raises(OutputError):
        make_packet(data, HOUSEHOLD, tmp_path / where)
    with pytest.raises(OutputError):
        make_packet(data, HOUSEHOLD, tmp_path / where / "档卡.pdf")


def test_output_named_docx_writes_that_file(data: Path, tmp_path: Path) -> None:
    made = make_packet(data, HOUSEHOLD, tmp_path / "x.docx", formats=("pdf",))
    assert made.result.docx == (tmp_path / "x.docx").resolve() and made.result.docx.is_file()
    assert made.result.pdf == (tmp_path / "x.pdf").resolve()
    with pytest.raises(OutputError, match="既不是文件夹"):
        make_packet(data, HOUSEHOLD, tmp_path / "x.txt")
    assert not (tmp_path / "x.txt").exists()
