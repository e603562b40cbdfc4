"""Editing households through ``archive-builder serve`` (ASGI test client, no browser).

Round-trip saves (a file differs only where the form changed it), refusals (errors, a file
changed on disk), the journal, evidence uploads, accounts and their villages.
"""

from __future__ import annotations

import difflib
import io
import re
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from formdata import as_data, form_fields, set_field

pytest.importorskip("starlette")
pytest.importorskip("httpx")

from starlette.testclient import TestClient

from archive_builder.versions import journal
from archive_builder.web import accounts
from archive_builder.web.app import create_app

SAMPLE = Path(__file__).resolve().parents[1] / "households_sample"
HID = "4116211052030003"  # 前进村, 闫春梅 (one member)
OTHER_VILLAGE_HID = "4116211052010001"  # 李庄村, 李长河
FOLDER = f"411621105203_前进村/{HID}"

COMMENTED = """# 合成数据（虚构，仅供测试和演示）。
# 第二行注释：由村文书核对过
household_id: '4116211052030003'
group: 第一村民组   # 组别按 2023 年调整
address: 清河县大李庄乡前进村第一村民组43号
"""


@pytest.fixture
def site(tmp_path: Path) -> Iterator[dict[str, Any]]:
    data = tmp_path / "data"
    shutil.copytree(SAMPLE, data)
    out = tmp_path / "out"
    app = create_app(data, out)
    with TestClient(app, follow_redirects=True) as client:
        yield {"data": data, "out": out, "client": client, "yaml": data / FOLDER / "household.yaml"}


def _open_form(client: TestClient, hid: str = HID) -> list[tuple[str, str]]:
    page = client.get(f"/household/{hid}/edit")
    assert page.status_code == 200, page.text[:300]
    return form_fields(page.text, "edit-form")


def _diff(old: str, new: str) -> list[str]:
    return [line for line in difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=0)
            if line[:1] in "+-" and not line.startswith(("+++", "---"))]


def test_one_field_changed_through_the_form_changes_only_that_line(site: dict[str, Any]) -> None:
    path: Path = site["yaml"]
    text = path.read_text(encoding="utf-8")
    head, rest = text.split("group: 第一村民组\naddress: 清河县大李庄乡前进村第一村民组43号\n", 1)
    rest = rest.replace("- kind: 入户核查\n", "# 入户核查由两名干部完成\n- kind: 入户核查   # 见照片\n", 1)
    original = COMMENTED + rest
    path.write_text(original, encoding="utf-8")
    client = site["client"]
    client.post("/reload", data={"csrf": dict(_open_form(client))["csrf"]})

    fields = set_field(_open_form(client), "members[0].name", "闫春花")
    fields = set_field(fields, "editor", "张三")
    saved = client.post(f"/household/{HID}/edit", data=as_data(fields))
    assert saved.status_code == 200 and "已保存" in saved.text, saved.text[:2000]
    assert _diff(original, path.read_text(encoding="utf-8")) == ["-- name: 闫春梅", "+- name: 闫春花"]


def test_name_and_income_change_regenerates_the_packet_and_writes_the_journal(site: dict[str, Any]) -> None:
    client = site["client"]
    fields = _open_form(client)
    income = [k for k, v in fields if re.fullmatch(r"income\[\d+\]\.transfer\.v", k)]
    assert income, "the form shows the income breakdowns"
    # the first amount of the last income year's 转移性收入
    last_year = max(int(re.match(r"income\[(\d+)\]", k).group(1)) for k in income)
    name = f"income[{last_year}].transfer.v"
    index = next(i for i, (k, _) in enumerate(fields) if k == name)
    old_amount = fields[index][1]
    fields[index] = (name, "9999.50")
    fields = set_field(fields, "members[0].name", "闫春花")
    fields = set_field(fields, "editor", "张三")
    saved = client.post(f"/household/{HID}/edit", data=as_data(fields))
    assert saved.status_code == 200
    assert "已重新生成档卡（版本 1）" in saved.text
    text = site["yaml"].read_text(encoding="utf-8")
    assert "name: 闫春花" in text and "9999.5" in text
    # the journal, on the page and in the store's database
    assert "张三 修改了 家庭成员「闫春梅」· 姓名：闫春梅 → 闫春花" in saved.text
    assert f"{old_amount} → 9999.50" in saved.text or f"{old_amount} → 9999.5" in saved.text
    entries = journal.entries(site["out"], HID)
    assert len(entries) == 1 and entries[0].user == "张三"
    assert any("姓名：闫春梅 → 闫春花" in line for line in entries[0].changes)
    # the editor's name is remembered for the next form
    assert 'value="张三"' in client.get(f"/household/{HID}/edit").text


def test_journal_entries_are_never_rewritten(site: dict[str, Any]) -> None:
    journal.record(site["out"], user="张三", household_id=HID, village_code="411621105203", action="修改了",
                   changes=["家庭住址：甲 → 乙"])
    conn = sqlite3.connect(site["out"] / ".store" / "catalog.sqlite")
    try:
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("UPDATE journal SET user = '李四'")
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("DELETE FROM journal")
    finally:
        conn.close()


def test_wrong_check_digit_is_reported_beside_the_field_and_the_save_refused(site: dict[str, Any]) -> None:
    client = site["client"]
    before = site["yaml"].read_bytes()
    fields = _open_form(client)
    number = dict(fields)["members[0].id_number"]
    wrong = number[:-1] + ("0" if number[-1] != "0" else "1")
    fields = set_field(set_field(fields, "members[0].id_number", wrong), "editor", "张三")
    checked = client.post(f"/household/{HID}/check", data=as_data(fields)).json()
    beside = [p for p in checked["problems"] if p["path"] == "members[0].id_number" and p["error"]]
    assert beside and "校验" in beside[0]["message"], checked
    refused = client.post(f"/household/{HID}/edit", data=as_data(fields))
    assert refused.status_code == 400
    assert "没有保存" in refused.text and "校验" in refused.text
    assert wrong in refused.text  # what was typed is still in the form
    assert site["yaml"].read_bytes() == before
    assert journal.entries(site["out"], HID) == []


def test_unknown_vocabulary_value_is_a_warning_and_saves(site: dict[str, Any]) -> None:
    client = site["client"]
    fields = set_field(set_field(_open_form(client), "members[0].labour", "半劳力（自填）"), "editor", "张三")
    checked = client.post(f"/household/{HID}/check", data=as_data(fields)).json()
    assert checked["errors"] == 0
    assert any(p["path"] == "members[0].labour" and not p["error"] for p in checked["problems"])
    saved = client.post(f"/household/{HID}/edit", data=as_data(fields))
    assert "已保存" in saved.text
    assert "labour: 半劳力（自填）" in site["yaml"].read_text(encoding="utf-8")


def test_duplicate_id_names_the_other_household(site: dict[str, Any]) -> None:
    client = site["client"]
    other = dict(_open_form(client, OTHER_VILLAGE_HID))["members[0].id_number"]
    fields = set_field(_open_form(client), "members[0].id_number", other)
    checked = client.post(f"/household/{HID}/check", data=as_data(fields)).json()
    clash = [p for p in checked["problems"] if p["path"] == "members[0].id_number" and "重复" in p["message"]]
    assert clash and OTHER_VILLAGE_HID in clash[0]["message"]
    # worded as validation words it: the number's holder here, and no claim that it is the same person
    assert "也使用了这个号码" in clash[0]["message"] and "也有此人" not in clash[0]["message"]


def test_a_save_after_the_file_changed_on_disk_is_refused_and_nothing_is_lost(site: dict[str, Any]) -> None:
    client = site["client"]
    fields = set_field(set_field(_open_form(client), "members[0].name", "闫春花"), "editor", "张三")
    # meanwhile someone edits the file in a text editor
    path: Path = site["yaml"]
    theirs = path.read_text(encoding="utf-8").replace("address: 清河县大李庄乡前进村第一村民组43号",
                                                      "address: 清河县大李庄乡前进村第一村民组45号")
    path.write_text(theirs, encoding="utf-8")
    refused = client.post(f"/household/{HID}/edit", data=as_data(fields))
    assert refused.status_code == 409
    assert path.read_text(encoding="utf-8") == theirs  # their change kept, ours not written over it
    assert "已被修改" in refused.text
    assert "第一村民组45号" in refused.text  # the version on disk is shown
    assert "name: 闫春花" in refused.text  # and ours, in full, to copy from
    assert "姓名：闫春梅 → 闫春花" in refused.text
    assert journal.entries(site["out"], HID) == []


def test_a_conflict_lists_only_the_changes_made_in_this_form(site: dict[str, Any]) -> None:
    client = site["client"]
    fields = set_field(set_field(_open_form(client), "members[0].name", "闫春花"), "editor", "张三")
    path: Path = site["yaml"]
    text = path.read_text(encoding="utf-8")
    phone = re.search(r"^phone: '?(\d+)'?$", text, re.M)
    assert phone
    path.write_text(text.replace(phone.group(1), "13900000000", 1), encoding="utf-8")  # someone else's change
    refused = client.post(f"/household/{HID}/edit", data=as_data(fields))
    assert refused.status_code == 409
    changes = re.search(r'<ul class="changes">(.*?)</ul>', refused.text, re.S)
    assert changes, refused.text[:3000]
    assert "姓名：闫春梅 → 闫春花" in changes.group(1)
    assert "联系电话" not in changes.group(1) and "13900000000" not in changes.group(1), changes.group(1)


def test_rows_are_added_and_removed_and_the_rest_kept(site: dict[str, Any]) -> None:
    client = site["client"]
    path: Path = site["yaml"]
    original = path.read_text(encoding="utf-8")
    fields = _open_form(client)
    measures = sorted({int(m.group(1)) for k, _ in fields if (m := re.match(r"measures\[(\d+)\]\.", k))})
    assert len(measures) >= 2
    # drop the first measure, renumber the rest as the page's script does, add a plan row
    kept = []
    for k, v in fields:
        found = re.match(r"measures\[(\d+)\](.*)", k)
        if found and int(found.group(1)) == 0:
            continue
        if found:
            k = f"measures[{int(found.group(1)) - 1}]{found.group(2)}"
        kept.append((k, v))
    plans = sorted({int(m.group(1)) for k, _ in kept if (m := re.match(r"plan\[(\d+)\]\.", k))})
    new = len(plans)
    kept += [(f"plan[{new}].__origin", ""), (f"plan[{new}].year", "2026"), (f"plan[{new}].needs", "稳定增收"),
             (f"plan[{new}].plan", "继续落实公益岗位")]
    kept = set_field(kept, "editor", "张三")
    saved = client.post(f"/household/{HID}/edit", data=as_data(kept))
    assert "已保存" in saved.text, saved.text[:3000]
    lines = _diff(original, path.read_text(encoding="utf-8"))
    removed = [line for line in lines if line.startswith("-")]
    added = [line for line in lines if line.startswith("+")]
    assert "-  item: 特困人员供养" in removed
    assert all("特困人员供养" in line or "综合保障" in line or "清河县民政局" in line or "分散供养" in line
               or "5640" in line or "2023" in line or "signed" in line for line in removed), removed
    assert added == ["+- year: 2026", "+  needs: 稳定增收", "+  plan: 继续落实公益岗位"], added
    page = client.get(f"/household/{HID}")
    assert "帮扶措施" in page.text and "新增" in page.text


def _jpeg_with_orientation(orientation: int) -> bytes:
    """300×200 as stored, red left third: upright (orientation 6) it is 200×300, red on top."""
    from PIL import Image

    img = Image.new("RGB", (300, 200), (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, 100, 200))
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    img.save(buffer, "JPEG", quality=95, exif=exif.tobytes())
    return buffer.getvalue()


def _upload(client: TestClient, hid: str, data: bytes, name: str, **fields: str) -> Any:
    page = client.get(f"/household/{hid}")
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text).group(1)
    form = {"csrf": csrf, "editor": "张三", "type": "银行流水", "title": "2025年分红银行流水", "replace": ""}
    form.update(fields)
    return client.post(f"/household/{hid}/evidence", data=form, files={"file": (name, data, "image/jpeg")})


def packet_images(pdf: Path) -> list[Any]:
    from pypdf import PdfReader

    return [image.image for page in PdfReader(pdf).pages for image in page.images]


@pytest.mark.slow
def test_evidence_upload_is_stored_safely_and_upright_in_the_packet(site: dict[str, Any]) -> None:
    client = site["client"]
    done = _upload(client, HID, _jpeg_with_orientation(6), "mmexport1701234567890.jpg", date="2025-06-30")
    assert done.status_code == 200 and "已上传" in done.text, done.text[:2000]
    folder = site["data"] / FOLDER
    stored = folder / "银行流水_2025年分红银行流水.jpg"
    assert stored.is_file()
    text = site["yaml"].read_text(encoding="utf-8")
    assert "file: 银行流水_2025年分红银行流水.jpg" in text and "type: 银行流水" in text
    assert "date: 2025-06-30" in text
    assert "张三 上传了佐证材料" in done.text
    version = re.search(r"已重新生成档卡（版本 (\d+)）", done.text)
    assert version, done.text[:2000]
    pdf = site["client"].app.state.workspace.version_pdf(HID, int(version.group(1)))
    from PIL import ImageStat

    upright = []
    for image in packet_images(pdf):
        w, h = image.size
        if h > w:
            top = ImageStat.Stat(image.convert("RGB").crop((0, 0, w, h // 4))).mean
            bottom = ImageStat.Stat(image.convert("RGB").crop((0, 3 * h // 4, w, h))).mean
            upright.append(top[0] > 180 and top[2] < 90 and bottom[2] > 180 and bottom[0] < 90)
    assert any(upright), "the uploaded photo is upright (red on top) in the packet"

    # replacing keeps the old file, renamed
    index = re.search(r'<option value="(\d+)">替换：2025年分红银行流水', client.get(f"/household/{HID}").text).group(1)
    again = _upload(client, HID, _jpeg_with_orientation(1), "IMG_0002.jpg", replace=index, title="")
    assert again.status_code == 200 and "已上传" in again.text
    kept = [p.name for p in folder.iterdir() if "_已替换_" in p.name]
    assert len(kept) == 1 and kept[0].startswith("银行流水_2025年分红银行流水")
    assert "替换了佐证材料" in again.text


def test_an_upload_that_is_not_a_picture_is_refused(site: dict[str, Any]) -> None:
    before = sorted(p.name for p in (site["data"] / FOLDER).iterdir())
    refused = _upload(site["client"], HID, b"MZ\x90\x00 not a picture", "照片.jpg")
    assert refused.status_code == 400 and "不是可识别的图片" in refused.text
    assert sorted(p.name for p in (site["data"] / FOLDER).iterdir()) == before


def _noisy_jpeg() -> bytes:
    from PIL import Image

    img = Image.effect_noise((600, 400), 60).convert("RGB")
    buffer = io.BytesIO()
    img.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def _png_header_only_big(width: int, height: int) -> bytes:
    """A valid 1-bit PNG of ``width`` × ``height`` white pixels (small: the rows compress to nothing)."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    row = b"\x00" + b"\xff" * ((width + 7) // 8)
    packer = zlib.compressobj(9)
    rows = b"".join(packer.compress(row * 1000) for _ in range(height // 1000)) + packer.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
            + chunk(b"IDAT", rows) + chunk(b"IEND", b""))


def test_a_cut_off_photo_is_refused_before_anything_is_written(site: dict[str, Any]) -> None:
    before = sorted(p.name for p in (site["data"] / FOLDER).iterdir())
    record = site["yaml"].read_bytes()
    photo = _noisy_jpeg()
    refused = _upload(site["client"], HID, photo[: len(photo) // 3], "IMG_0001.jpg")
    assert refused.status_code == 400, refused.text[:2000]
    assert "数据不完整" in refused.text and "已上传" not in refused.text
    assert sorted(p.name for p in (site["data"] / FOLDER).iterdir()) == before
    assert site["yaml"].read_bytes() == record
    assert journal.entries(site["out"], HID) == []


def test_a_picture_beyond_the_pixel_limit_is_refused_as_too_large(site: dict[str, Any]) -> None:
    before = sorted(p.name for p in (site["data"] / FOLDER).iterdir())
    for width in (40000, 10000):  # far beyond the limit (refused from the header), and just beyond it
        refused = _upload(site["client"], HID, _png_header_only_big(width, width), "扫描件.png")
        assert refused.status_code == 400, refused.text[:2000]
        assert "太大" in refused.text and "万像素" in refused.text and "缩小" in refused.text, width
        assert "不是可识别的图片" not in refused.text
    assert sorted(p.name for p in (site["data"] / FOLDER).iterdir()) == before


def test_a_heic_photo_without_a_decoder_is_refused_in_chinese(site: dict[str, Any]) -> None:
    pytest.importorskip("PIL")
    try:
        import pillow_heif  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("pillow-heif is installed here: HEIC photos are accepted")
    heic = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64
    before = sorted(p.name for p in (site["data"] / FOLDER).iterdir())
    refused = _upload(site["client"], HID, heic, "IMG_1234.HEIC")
    assert refused.status_code == 400 and "pillow-heif" in refused.text
    assert sorted(p.name for p in (site["data"] / FOLDER).iterdir()) == before


@pytest.fixture
def accounts_site(tmp_path: Path) -> Iterator[dict[str, Any]]:
    data = tmp_path / "data"
    shutil.copytree(SAMPLE, data)
    out = tmp_path / "out"
    accounts.add(out, "王秘书", "村文书", ("前进村",), "qianjin-2026")
    accounts.add(out, "赵检查", "检查员", (), "jiancha-2026")
    app = create_app(data, out)
    with TestClient(app, follow_redirects=False) as client:
        yield {"data": data, "out": out, "client": client}


def _login(client: TestClient, name: str, password: str) -> Any:
    token = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text)
    assert token is not None
    return client.post("/login", data={"name": name, "password": password, "csrf": token.group(1)})


def test_a_login_needs_the_pages_csrf_token_and_pauses_after_wrong_passwords(
        accounts_site: dict[str, Any]) -> None:
    from archive_builder.web.editpages import LOGIN_ATTEMPTS

    client = accounts_site["client"]
    accounts.add(accounts_site["out"], "钱检查", "检查员", (), "qian-2026")  # paused below: its own account
    # posted from elsewhere (no token): refused, and no account cookie is set
    forged = client.post("/login", data={"name": "钱检查", "password": "qian-2026"})
    assert forged.status_code == 403 and "安全令牌" in forged.text
    assert "set-cookie" not in forged.headers or "ab_account" not in forged.headers["set-cookie"]
    for _ in range(LOGIN_ATTEMPTS):
        assert _login(client, "钱检查", "guess").status_code == 403
    paused = _login(client, "钱检查", "qian-2026")  # even the right password waits now
    assert paused.status_code == 429 and "分钟后再试" in paused.text


def test_accounts_need_a_login_with_the_right_password(accounts_site: dict[str, Any]) -> None:
    client = accounts_site["client"]
    assert client.get("/").status_code == 303  # to the login page
    assert "密码" in client.get("/login").text
    assert _login(client, "王秘书", "wrong-password").status_code == 403
    done = _login(client, "王秘书", "qianjin-2026")
    assert done.status_code == 303
    cookie = done.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert client.get("/").status_code == 200
    stored = (accounts_site["out"] / "users.json").read_text(encoding="utf-8")
    assert "qianjin-2026" not in stored and "$argon2" in stored


def test_a_village_secretary_may_not_edit_another_village(accounts_site: dict[str, Any]) -> None:
    client = accounts_site["client"]
    _login(client, "王秘书", "qianjin-2026")
    assert client.get(f"/household/{HID}/edit").status_code == 200  # their own village
    other = client.get(f"/household/{OTHER_VILLAGE_HID}/edit")
    assert other.status_code == 403 and "李庄村" in other.text
    path = accounts_site["data"] / "411621105201_李庄村" / "4116211052010001_李长河" / "household.yaml"
    before = path.read_bytes()
    fields = set_field(_open_form(client), "members[0].name", "某某")
    for url in (f"/household/{OTHER_VILLAGE_HID}/edit", f"/household/{OTHER_VILLAGE_HID}/evidence",
                f"/household/{OTHER_VILLAGE_HID}/regenerate"):
        assert client.post(url, data=as_data(fields)).status_code == 403, url
    assert path.read_bytes() == before
    assert "修改本户数据" not in client.get(f"/household/{OTHER_VILLAGE_HID}").text
    # the account's name goes into the journal
    saved = client.post(f"/household/{HID}/edit", data=as_data(fields), follow_redirects=True)
    assert "王秘书 修改了" in saved.text


def test_an_inspector_reads_but_does_not_change(accounts_site: dict[str, Any]) -> None:
    client = accounts_site["client"]
    _login(client, "赵检查", "jiancha-2026")
    assert client.get(f"/household/{HID}").status_code == 200
    assert client.get(f"/household/{HID}/edit").status_code == 403
    page = client.get("/")
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text).group(1)
    assert client.post(f"/household/{HID}/regenerate", data={"csrf": csrf}).status_code == 403
    assert client.post("/build", data={"csrf": csrf}).status_code == 403


def test_users_command_adds_an_account(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from archive_builder.cli import main

    data = tmp_path / "data"
    shutil.copytree(SAMPLE, data)
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["users", "add", "张三", "--role", "村文书", "--village", "李庄村", "-d",
                                       str(data), "-o", str(out), "--password-stdin"], input="long-password\n")
    assert result.exit_code == 0, result.output
    assert "已添加账号 张三（村文书，所管村：李庄村）" in result.output
    assert accounts.load(out)["张三"].villages == ("李庄村",)
    wrong = CliRunner().invoke(main, ["users", "add", "李四", "--role", "村文书", "--village", "没有这个村", "-d",
                                      str(data), "-o", str(out), "--password-stdin"], input="long-password\n")
    assert wrong.exit_code != 0 and "没有这个村" in wrong.output


def test_serving_beyond_loopback_with_accounts_needs_no_token(tmp_path: Path) -> None:
    from archive_builder.web.serve import ServeOptions, ServeRefused, check_options

    data = tmp_path / "data"
    shutil.copytree(SAMPLE, data)
    out = tmp_path / "out"
    with pytest.raises(ServeRefused):
        check_options(ServeOptions(data=data, out=out, host="0.0.0.0"))
    accounts.add(out, "张三", "档案员", (), "long-password")
    assert check_options(ServeOptions(data=data, out=out, host="0.0.0.0")) is None


@pytest.mark.slow
def test_saving_an_unchanged_form_leaves_every_sample_record_byte_for_byte(site: dict[str, Any]) -> None:
    client = site["client"]
    workspace = client.app.state.workspace
    workspace.ensure_loaded()
    for row in workspace.rows:
        before = row.loaded.file.read_bytes()
        fields = set_field(_open_form(client, row.household_id), "editor", "张三")
        checked = client.post(f"/household/{row.household_id}/check", data=as_data(fields)).json()
        assert checked["errors"] == 0, (row.household_id, checked)
        saved = client.post(f"/household/{row.household_id}/edit", data=as_data(_as_browser(fields)))
        assert "没有修改，未保存" in saved.text, row.household_id
        assert row.loaded.file.read_bytes() == before, row.household_id


# --- what a browser really sends ------------------------------------------------------------------

LI_FOLDER = "411621105201_李庄村/4116211052010001_李长河"


def _as_browser(fields: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The fields as a browser posts them: a textarea's line breaks as CR LF (HTML spec)."""
    return [(k, v.replace("\n", "\r\n")) for k, v in fields]


def _first_amount(fields: list[tuple[str, str]], value: str) -> list[tuple[str, str]]:
    index = next(i for i, (k, _) in enumerate(fields) if re.fullmatch(r"income\[\d+\]\.transfer\.v", k))
    out = list(fields)
    out[index] = (fields[index][0], value)
    return out


def test_crlf_line_breaks_from_the_browser_leave_untouched_text_byte_for_byte(site: dict[str, Any]) -> None:
    client = site["client"]
    path: Path = site["data"] / LI_FOLDER / "household.yaml"
    original = path.read_text(encoding="utf-8")
    assert "notes: |-" in original and "\n\n" in original.split("notes: |-", 1)[1]
    fields = set_field(_first_amount(_open_form(client, OTHER_VILLAGE_HID), "5905"), "editor", "张三")
    saved = client.post(f"/household/{OTHER_VILLAGE_HID}/edit", data=as_data(_as_browser(fields)))
    assert "已保存" in saved.text, saved.text[:2000]
    after = path.read_bytes()
    assert b"\r" not in after
    assert _diff(original, after.decode("utf-8")) == [
        "-  transfer: {养老金: 5904, 残疾人补贴: 1440, 耕地地力保护补贴: 562.56}",
        "+  transfer: {养老金: 5905, 残疾人补贴: 1440, 耕地地力保护补贴: 562.56}"]
    entries = journal.entries(site["out"], OTHER_VILLAGE_HID)
    assert len(entries) == 1 and not any("户说明" in line for line in entries[0].changes), entries[0].changes
    versions = len(client.app.state.workspace.versions(OTHER_VILLAGE_HID))

    # the same form sent again, nothing changed: nothing written, no version, no journal line
    again = set_field(_open_form(client, OTHER_VILLAGE_HID), "editor", "张三")
    unchanged = client.post(f"/household/{OTHER_VILLAGE_HID}/edit", data=as_data(_as_browser(again)))
    assert "没有修改，未保存" in unchanged.text
    assert path.read_bytes() == after
    assert len(journal.entries(site["out"], OTHER_VILLAGE_HID)) == 1
    assert len(client.app.state.workspace.versions(OTHER_VILLAGE_HID)) == versions


def test_a_file_with_crlf_line_endings_keeps_them(site: dict[str, Any]) -> None:
    client = site["client"]
    path: Path = site["data"] / LI_FOLDER / "household.yaml"
    original = path.read_bytes().replace(b"\n", b"\r\n")
    path.write_bytes(original)
    client.post("/reload", data={"csrf": dict(_open_form(client))["csrf"]})
    fields = set_field(_first_amount(_open_form(client, OTHER_VILLAGE_HID), "5905"), "editor", "张三")
    saved = client.post(f"/household/{OTHER_VILLAGE_HID}/edit", data=as_data(_as_browser(fields)))
    assert "已保存" in saved.text, saved.text[:2000]
    after = path.read_bytes()
    assert after.count(b"\r\n") == after.count(b"\n") == original.count(b"\r\n")
    assert after == original.replace("养老金: 5904, 残疾人补贴: 1440, 耕地地力".encode(),
                                      "养老金: 5905, 残疾人补贴: 1440, 耕地地力".encode(), 1)


def test_the_yaml_writer_never_writes_a_carriage_return(tmp_path: Path) -> None:
    from archive_builder.records import yamlwrite

    path = tmp_path / "household.yaml"
    path.write_bytes("household_id: '1'\nnotes: |-\n  一\n\n  二\naddress: 甲\n".encode())
    record = yamlwrite.open_record(path)
    yamlwrite.merge(record.doc, {"notes": "一\r\n\r\n二\r三", "address": "乙"})
    data = yamlwrite.render(record)
    assert data.decode() == "household_id: '1'\nnotes: |-\n  一\n\n  二\n  三\naddress: 乙\n"


def test_the_editor_name_is_kept_after_a_refused_save(site: dict[str, Any]) -> None:
    client = site["client"]
    fields = _open_form(client)
    number = dict(fields)["members[0].id_number"]
    wrong = number[:-1] + ("0" if number[-1] != "0" else "1")
    fields = set_field(set_field(fields, "members[0].id_number", wrong), "editor", "张三")
    refused = client.post(f"/household/{HID}/edit", data=as_data(fields))
    assert refused.status_code == 400
    assert dict(form_fields(refused.text, "edit-form"))["editor"] == "张三"
    assert 'data-typed="1"' in refused.text  # leaving this page asks: it holds typed values
    assert 'data-typed' not in client.get(f"/household/{HID}/edit").text


def test_dates_typed_in_chinese_are_saved_in_the_records_spelling(site: dict[str, Any]) -> None:
    client = site["client"]
    fields = set_field(_open_form(client), "identified_on", "2018年3月")
    fields = set_field(fields, "application.date", "２０１９年９月２６日")
    fields = set_field(set_field(fields, "procedure[1].date", "2019/9/29"), "editor", "张三")
    saved = client.post(f"/household/{HID}/edit", data=as_data(fields))
    assert "已保存" in saved.text, saved.text[:2000]
    text = site["yaml"].read_text(encoding="utf-8")
    assert "identified_on: 2018-03\n" in text
    assert "application:\n  date: 2019-09-26\n" in text and "  date: 2019-09-29\n" in text
    # what is no date at all (or a month where a day is needed) is shown beside the field
    fields = set_field(set_field(_open_form(client), "visits[0].date", "去年三月"), "application.date", "2019年9月")
    checked = client.post(f"/household/{HID}/check", data=as_data(fields)).json()
    paths = {p["path"] for p in checked["problems"] if p["error"]}
    assert {"visits[0].date", "application.date"} <= paths, checked


def test_a_pasted_full_width_id_number_and_a_lowercase_x_are_converted(site: dict[str, Any]) -> None:
    client = site["client"]
    fields = _open_form(client, OTHER_VILLAGE_HID)
    numbers = {k: v for k, v in fields if re.fullmatch(r"members\[\d+\]\.id_number", k)}
    with_x = next(k for k, v in numbers.items() if v.endswith("X"))
    plain = next(k for k, v in numbers.items() if not v.endswith("X"))
    full_width = " " + "".join(chr(ord(c) + 0xFEE0) for c in numbers[plain][:6]) + " " + numbers[plain][6:]
    fields = set_field(set_field(fields, plain, full_width), with_x, numbers[with_x][:-1] + "x")
    fields = set_field(fields, "editor", "张三")
    checked = client.post(f"/household/{OTHER_VILLAGE_HID}/check", data=as_data(fields)).json()
    assert not [p for p in checked["problems"] if p["path"] in (plain, with_x)], checked
    path: Path = site["data"] / LI_FOLDER / "household.yaml"
    before = path.read_bytes()
    saved = client.post(f"/household/{OTHER_VILLAGE_HID}/edit", data=as_data(fields))
    assert "没有修改，未保存" in saved.text  # the same numbers as the file's
    assert path.read_bytes() == before


def test_a_whole_number_field_error_gives_an_example_that_fits(site: dict[str, Any]) -> None:
    client = site["client"]
    fields = _open_form(client)
    counted = next(k for k, _ in fields if re.fullmatch(r"income\[\d+\]\.members_counted", k))
    year = next(k for k, _ in fields if re.fullmatch(r"income\[\d+\]\.year", k))
    fields = set_field(set_field(fields, counted, "八"), year, "二〇二四")
    checked = client.post(f"/household/{HID}/check", data=as_data(fields)).json()
    hints = {p["path"]: p["hint"] for p in checked["problems"] if p["error"]}
    assert "整数" in hints[counted] and "2024" not in hints[counted], hints
    assert "2024" in hints[year], hints
