"""QR payloads of paper copies and checking them against the version store."""

from __future__ import annotations

import copy
import hashlib
import json
import random
from pathlib import Path

import pytest
from synthetic import generate_household

from archive_builder.errors import ExitCode
from archive_builder.versions.store import VersionStore
from archive_builder.versions.verify import PayloadError, parse_payload, qr_payload, verify


def _build(store: VersionStore, tmp_path: Path, record: dict):
    data = json.dumps(record, ensure_ascii=False, sort_keys=True, default=str).encode()
    pdf = tmp_path / "packet.pdf"
    pdf.write_bytes(b"%PDF fake " + data)
    return store.record(
        household_id=record["household_id"],
        village_code="411621105201",
        content_hash=hashlib.sha256(data).hexdigest(),
        record_json=data,
        packet_pdf=pdf,
        evidence_hashes={},
        template_set="default",
        program_version="0.1",
        pages=12,
        built_at="2025-06-01T10:00:00+08:00",
    )


@pytest.fixture
def record() -> dict:
    rec = generate_household(
        random.Random("verify"), "4116210007", "411621105201", 2025, size=3
    )
    return json.loads(json.dumps(rec, default=str))  # canonical JSON shape


def test_payload_round_trip() -> None:
    text = qr_payload("4116210007", 3, "3F9A0C1D2E4B5A69" + "0" * 48)
    assert text == "AB1|4116210007|v3|3f9a0c1d2e4b5a69"
    assert parse_payload(f"  {text}\n") == ("4116210007", 3, "3f9a0c1d2e4b5a69")
    assert parse_payload(text.replace("|", "｜")) == (
        "4116210007",
        3,
        "3f9a0c1d2e4b5a69",
    )


@pytest.mark.parametrize(
    "text",
    [
        "",
        "hello",
        "AB1|4116210007|3|3f9a0c1d",
        "AB1|x|v1|zzzzzzzz",
        "AB2|x|v1|3f9a0c1d",
    ],
)
def test_malformed_payload(text: str) -> None:
    with pytest.raises(PayloadError) as info:
        parse_payload(text)
    assert "不是档卡封面二维码的内容" in info.value.message
    assert info.value.exit_code == ExitCode.input_unusable


def test_current_and_outdated(tmp_path: Path, record: dict) -> None:
    store = VersionStore(tmp_path)
    v1 = _build(store, tmp_path, record)
    paper = qr_payload(record["household_id"], v1.number, v1.content_hash)
    current = verify(store, paper)
    assert current.status == "current" and current.exit_code == ExitCode.ok
    assert "是最新版本" in current.format_text()

    changed = copy.deepcopy(record)
    changed["members"][0]["name"] = "张喆"
    year = changed["income"][0]
    year["wage"][next(iter(year["wage"]))] += 500
    v2 = _build(store, tmp_path, changed)
    assert v2.number == 2
    outdated = verify(store, paper)
    assert outdated.status == "outdated" and outdated.exit_code == ExitCode.problems
    assert outdated.latest == v2
    assert outdated.summary == "姓名 1 项 · 收入情况 1 项"
    text = outdated.format_text()
    assert "已过期，最新为版本 2" in text and "姓名 1 项 · 收入情况 1 项" in text
    assert "张喆" in text


def test_unknown_copies(tmp_path: Path, record: dict) -> None:
    store = VersionStore(tmp_path)
    assert verify(store, "AB1|4116210007|v1|0123456789abcdef").status == "unknown"
    v1 = _build(store, tmp_path, record)
    result = verify(store, "AB1|4116210007|v1|0123456789abcdef")
    assert result.status == "unknown"
    # the honest explanation, without suggesting tampering or contradicting the paper's 第 1 版
    assert "从未在此输出目录登记过" in result.reason and "第 1 版哈希为" in result.reason
    assert "改动" not in result.format_text() and "对不上" not in result.format_text()
    missing = verify(store, "AB1|4116210007|v3|0123456789abcdef")
    assert "只登记了第 1 版，没有第 3 版" in missing.reason
    # a mistyped version number is corrected by the hash
    wrong_number = verify(store, qr_payload("4116210007", 5, v1.content_hash))
    assert wrong_number.status == "current" and wrong_number.copy == v1
    assert "按哈希认定为版本 1" in wrong_number.reason


def test_decode_qr_from_a_photo(tmp_path: Path) -> None:
    pytest.importorskip("zxingcpp")
    import pypdfium2
    from reportlab.graphics import renderPDF
    from reportlab.graphics.barcode.qr import QrCodeWidget
    from reportlab.graphics.shapes import Drawing
    from reportlab.pdfgen import canvas

    from archive_builder.versions.verify import decode_qr_image

    payload = "AB1|4116210007|v2|3f9a0c1d2e4b5a69"
    pdf = tmp_path / "cover.pdf"
    c = canvas.Canvas(str(pdf), pagesize=(300, 300), invariant=1)
    widget = QrCodeWidget(payload)
    drawing = Drawing(120, 120)
    drawing.add(widget)
    renderPDF.draw(drawing, c, 150, 150)
    c.showPage()
    c.save()
    doc = pypdfium2.PdfDocument(str(pdf))
    photo = tmp_path / "photo.jpg"
    doc[0].render(scale=3).to_pil().rotate(90, expand=True).save(photo, quality=80)
    doc.close()
    assert decode_qr_image(photo) == payload


def test_a_cover_without_a_version_claim_is_explained() -> None:
    with pytest.raises(PayloadError) as info:
        parse_payload("4116210007|0123456789abcdef")
    assert "没有登记版本" in info.value.message and "--store" in (info.value.hint or "")


def test_a_hash_one_digit_off_shows_where_it_differs(tmp_path: Path, record: dict) -> None:
    """The stored and the printed hash are shown as long as the printed one, so they look different."""
    store = VersionStore(tmp_path)
    v1 = _build(store, tmp_path, record)
    printed = v1.content_hash[:16]
    last = "0" if printed[-1] != "0" else "1"
    wrong = printed[:-1] + last
    result = verify(store, f"AB1|{record['household_id']}|v1|{wrong}")
    assert result.status == "unknown"
    assert f"第 1 版哈希为 {printed}，与纸质件的 {wrong} 不同" in result.reason


def test_the_headline_names_the_version_the_hash_identifies(tmp_path: Path, record: dict) -> None:
    """A number that disagrees with the hash: the verdict is about the version the hash is,
    and the disagreement is said whatever the verdict."""
    store = VersionStore(tmp_path)
    v1 = _build(store, tmp_path, record)
    changed = copy.deepcopy(record)
    changed["members"][0]["name"] = "张喆"
    v2 = _build(store, tmp_path, changed)
    old_hash_new_number = verify(store, qr_payload(record["household_id"], v2.number, v1.content_hash))
    assert old_hash_new_number.status == "outdated" and old_hash_new_number.shown == 1
    text = old_hash_new_number.format_text()
    assert text.startswith(f"户 {record['household_id']} 版本 1（") and "已过期，最新为版本 2" in text
    no_such_number = verify(store, qr_payload(record["household_id"], 9, v2.content_hash))
    assert no_such_number.status == "current" and no_such_number.shown == 2
    text = no_such_number.format_text()
    assert "版本 2（" in text and "版本号 9 与哈希不符，按哈希认定为版本 2" in text
