"""Editing households in a real browser: Debian's headless Chromium driven by Playwright.

As in test_web_browser.py, the app runs on 127.0.0.1 in this process over a copy of the
sample; screenshots are saved under each test's tmp dir. Skipped, saying so, without
/usr/bin/chromium.
"""

from __future__ import annotations

import io
import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
SAMPLE = Path(__file__).resolve().parents[1] / "households_sample"
HID = "4116211052030003"  # 前进村, 闫春梅
OTHER = "4116211052010001"  # 李庄村, 李长河

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="需要 Debian 的 chromium（/usr/bin/chromium）：apt-get install chromium"),
]

playwright_api = pytest.importorskip("playwright.sync_api")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(root: Path, with_accounts: bool) -> Iterator[dict[str, Any]]:
    import uvicorn

    from archive_builder.web import accounts
    from archive_builder.web.app import create_app

    data = root / "households_sample"
    shutil.copytree(SAMPLE, data)
    out = root / "out"
    if with_accounts:
        accounts.add(out, "王秘书", "村文书", ("前进村",), "qianjin-2026")
    app = create_app(data, out, preload=True)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "服务没有启动"
        time.sleep(0.05)
    try:
        yield {"url": f"http://127.0.0.1:{port}", "data": data, "out": out, "app": app}
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    yield from _serve(tmp_path_factory.mktemp("edit-browser"), with_accounts=False)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as p:
        launched = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"],
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    tab = context.new_page()
    tab.set_default_timeout(60_000)
    try:
        yield tab
    finally:
        context.close()


def _shot(page: Any, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 1000
    return path


def _field(page: Any, name: str) -> Any:
    return page.locator(f'[name="{name}"]')


def _checked(page: Any) -> None:
    page.wait_for_function("document.getElementById('check-state').textContent.indexOf('正在检查') < 0"
                           " && document.getElementById('check-state').textContent !== ''")


def test_change_a_name_and_an_income_figure_save_and_see_the_packet_and_journal(
        page: Any, server: dict[str, Any], tmp_path: Path) -> None:
    page.goto(f"{server['url']}/household/{HID}")
    page.click("#edit-link")
    page.wait_for_selector("#edit-form")
    _checked(page)
    _field(page, "members[0].name").fill("闫春花")
    amount = page.locator('[name$=".transfer.v"]').first
    amount_name = amount.get_attribute("name")
    amount.fill("9999.50")
    page.fill("#editor", "张三")
    _checked(page)
    assert "检查通过" in page.locator("#check-state").inner_text() or "可以保存" in page.locator("#check-state").inner_text()
    _shot(page, tmp_path, "edit-form")
    page.click("#save")
    page.wait_for_selector(".notice")
    notice = page.locator(".notice").inner_text()
    assert "已保存" in notice and "已重新生成档卡（版本" in notice, notice
    assert "闫春花 户" in page.locator("h1").inner_text()
    journal = page.locator("ul.journal").inner_text()
    assert "张三 修改了 家庭成员「闫春梅」· 姓名：闫春梅 → 闫春花" in journal
    assert "9999.5" in journal
    assert page.locator(".pages img").count() >= 1  # the regenerated packet's pages
    page.locator("#editing").scroll_into_view_if_needed()
    _shot(page, tmp_path, "household-after-save")
    text = (server["data"] / "411621105203_前进村" / HID / "household.yaml").read_text(encoding="utf-8")
    assert "name: 闫春花" in text and "9999.5" in text
    assert amount_name


def test_a_wrong_check_digit_shows_the_chinese_error_beside_the_field(
        page: Any, server: dict[str, Any], tmp_path: Path) -> None:
    page.goto(f"{server['url']}/household/{HID}/edit")
    _checked(page)
    box = _field(page, "members[0].id_number")
    number = box.input_value()
    box.fill(number[:-1] + ("0" if number[-1] != "0" else "1"))
    message = page.locator('.field[data-field="members[0].id_number"] .msg .err')
    message.wait_for()
    assert "校验" in message.inner_text()
    assert "有 1 处错误" in page.locator("#check-state").inner_text()
    _field(page, "members[0].id_number").scroll_into_view_if_needed()
    _shot(page, tmp_path, "wrong-check-digit")
    # a row added and removed again leaves the form as it was
    page.click('button.add-row[data-for="plan"]')
    assert page.locator('fieldset.row-item.new[data-list="plan"]').count() == 1
    page.locator('fieldset.row-item.new[data-list="plan"] .remove-row').click()
    assert page.locator('fieldset.row-item.new[data-list="plan"]').count() == 0


def test_a_save_from_the_browser_keeps_untouched_text_and_leaving_asks_only_when_changed(
        page: Any, server: dict[str, Any], tmp_path: Path) -> None:
    """A real browser sends a textarea's line breaks as CR LF: the untouched 户说明 stays as it is."""
    path = server["data"] / "411621105201_李庄村" / "4116211052010001_李长河" / "household.yaml"
    original = path.read_text(encoding="utf-8")
    asked: list[str] = []

    def answer(dialog: Any) -> None:
        asked.append(f"{dialog.type}:{dialog.message}")
        dialog.dismiss() if dialog.type == "confirm" else dialog.accept()

    page.on("dialog", answer)
    edit_url = f"{server['url']}/household/{OTHER}/edit"
    page.goto(edit_url)
    _checked(page)
    page.click("a.button:text('取消')")  # nothing changed: no question
    page.wait_for_url(f"{server['url']}/household/{OTHER}")
    assert asked == []
    page.goto(edit_url)
    _checked(page)
    amount = page.locator('[name$=".transfer.v"]').first
    amount.fill("5905")
    page.click("p.crumbs a >> nth=1")  # a changed form: asked, and staying (dismissed) keeps it
    assert len(asked) == 1 and "离开后未保存的修改将丢失" in asked[0], asked
    assert page.url == edit_url and amount.input_value() == "5905"
    if page.locator("#editor").input_value() == "":
        page.fill("#editor", "张三")
    page.click("#save")
    page.wait_for_selector(".notice")
    assert "已保存" in page.locator(".notice").inner_text()
    assert len(asked) == 1  # saving is not leaving
    after = path.read_bytes()
    assert b"\r" not in after
    assert after.decode("utf-8") == original.replace("{养老金: 5904, 残疾人补贴: 1440, 耕地地力保护补贴: 562.56}",
                                                     "{养老金: 5905, 残疾人补贴: 1440, 耕地地力保护补贴: 562.56}", 1)
    # the same form saved again without a change: nothing written, and closing the tab asks only once changed
    page.goto(edit_url)
    _checked(page)
    page.click("#save")
    page.wait_for_selector(".notice")
    assert "没有修改，未保存" in page.locator(".notice").inner_text()
    assert path.read_bytes() == after
    page.goto(edit_url)
    _checked(page)
    page.locator('[name="notes"]').fill("改过的说明")
    page.close(run_before_unload=True)
    page.wait_for_event("close") if not page.is_closed() else None
    assert len(asked) == 2 and asked[1].startswith("beforeunload"), asked


def _jpeg_with_orientation(orientation: int) -> bytes:
    from PIL import Image

    img = Image.new("RGB", (300, 200), (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, 100, 200))  # the stored left third: the top once upright
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    img.save(buffer, "JPEG", quality=95, exif=exif.tobytes())
    return buffer.getvalue()


def test_upload_a_sideways_phone_photo_and_see_it_upright_in_the_packet(
        page: Any, server: dict[str, Any], tmp_path: Path) -> None:
    photo = tmp_path / "mmexport1701234567890.jpg"
    photo.write_bytes(_jpeg_with_orientation(6))
    page.goto(f"{server['url']}/household/{HID}")
    page.click("#upload-box summary")
    if page.locator('#upload-box [name="editor"]').input_value() == "":
        page.fill('#upload-box [name="editor"]', "张三")
    page.set_input_files('#upload-box input[type=file]', str(photo))
    page.select_option('#upload-box select[name="type"]', "银行流水")
    page.fill('#upload-box [name="title"]', "分红银行流水")
    page.click("#upload")
    page.wait_for_selector(".notice")
    notice = page.locator(".notice").inner_text()
    assert "已上传" in notice and "已重新生成档卡（版本" in notice, notice
    number = int(re.search(r"版本 (\d+)", notice).group(1))
    assert "上传了佐证材料" in page.locator("ul.journal").inner_text()
    pdf = server["app"].state.workspace.version_pdf(HID, number)
    from PIL import ImageStat
    from pypdf import PdfReader

    found = False
    for index, pdf_page in enumerate(PdfReader(pdf).pages):
        for image in pdf_page.images:
            picture = image.image.convert("RGB")
            w, h = picture.size
            if h > w:
                top = ImageStat.Stat(picture.crop((0, 0, w, h // 4))).mean
                bottom = ImageStat.Stat(picture.crop((0, 3 * h // 4, w, h))).mean
                if top[0] > 180 and top[2] < 90 and bottom[2] > 180:
                    found = True
                    page.locator(".pages figure").nth(index).scroll_into_view_if_needed()
    assert found, "the photo is upright (red on top) in the packet"
    _shot(page, tmp_path, "after-upload")


@pytest.fixture(scope="module")
def accounts_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    yield from _serve(tmp_path_factory.mktemp("accounts-browser"), with_accounts=True)


def test_a_village_secretary_cannot_open_or_post_another_villages_form(
        page: Any, accounts_server: dict[str, Any], tmp_path: Path) -> None:
    url = accounts_server["url"]
    page.goto(url + "/")
    page.wait_for_url("**/login")
    page.fill('[name="name"]', "王秘书")
    page.fill('[name="password"]', "qianjin-2026")
    page.click(".login button[type=submit]")
    page.wait_for_url(url + "/")
    assert "王秘书（村文书）" in page.locator("header").inner_text()
    own = page.goto(f"{url}/household/{HID}/edit")
    assert own.status == 200
    csrf = page.locator('#edit-form [name="csrf"]').input_value()
    other = page.goto(f"{url}/household/{OTHER}/edit")
    assert other.status == 403
    assert "李庄村" in page.locator(".message").inner_text()
    _shot(page, tmp_path, "forbidden")
    status = page.evaluate(
        """([url, csrf]) => { const f = new FormData(); f.append('csrf', csrf); f.append('members[0].name', '某某');
             return fetch(url, {method: 'POST', body: f, credentials: 'same-origin'}).then(r => r.status); }""",
        [f"{url}/household/{OTHER}/edit", csrf])
    assert status == 403
