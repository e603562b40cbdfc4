"""``archive-builder serve`` in a real browser: Debian's headless Chromium driven by Playwright.

The app runs on 127.0.0.1 in this process (uvicorn in a thread) over a copy of the sample.
Each test saves a screenshot under its pytest tmp dir. No browser is downloaded: the tests
use /usr/bin/chromium and are skipped, saying so, when it is absent.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

CHROMIUM = Path("/usr/bin/chromium")
SAMPLE = Path(__file__).resolve().parents[1] / "households_sample"
HOUSEHOLD = "4116211052030003"  # in 前进村, the smallest village of the sample

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="需要 Debian 的 chromium（/usr/bin/chromium）：apt-get install chromium"),
]

playwright_api = pytest.importorskip("playwright.sync_api")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    import uvicorn

    from archive_builder.web.app import create_app

    root = tmp_path_factory.mktemp("browser")
    data = root / "households_sample"
    shutil.copytree(SAMPLE, data)
    out = root / "out"
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
def browser(server: dict[str, Any]) -> Iterator[Any]:
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
def page(browser: Any, server: dict[str, Any], tmp_path: Path) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    tab = context.new_page()
    tab.set_default_timeout(60_000)
    tab.goto(server["url"] + "/")
    try:
        yield tab
    finally:
        context.close()


def _shot(page: Any, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 1000
    return path


def _regenerate(page: Any) -> None:
    page.click("#regenerate")
    page.wait_for_selector(".notice")


def test_township_page_and_find_by_member_name(page: Any, tmp_path: Path) -> None:
    assert page.locator("h1").inner_text() == "乡镇总览"
    assert page.locator("table.list tbody tr").count() == 3
    _shot(page, tmp_path, "township")
    # a household found by a member who is not its head (李长河's wife 崔秀芝)
    page.fill("header input[name=q]", "崔秀芝")
    page.press("header input[name=q]", "Enter")
    page.wait_for_url("**/household/4116211052010001")
    assert "李长河 户" in page.locator("h1").inner_text()
    assert page.get_by_text("崔秀芝").count() >= 1
    _shot(page, tmp_path, "household")


def test_village_search_and_filter(page: Any, server: dict[str, Any], tmp_path: Path) -> None:
    page.click("table.list a:text-is(\"李庄村\")")
    page.wait_for_selector("form.filters")
    page.fill("form.filters input[name=q]", "李")
    page.click("form.filters button")
    page.wait_for_url("**q=**")
    rows = page.locator("table.households tbody tr")
    assert rows.count() >= 2
    assert all("李" in text for text in rows.all_inner_texts())
    _shot(page, tmp_path, "village")


def test_regenerate_and_compare_two_versions(page: Any, server: dict[str, Any], tmp_path: Path) -> None:
    page.goto(f"{server['url']}/household/{HOUSEHOLD}")
    _regenerate(page)
    first = page.locator(".notice").inner_text()
    assert "版本" in first
    path = next((server["data"]).glob(f"*/{HOUSEHOLD}*/household.yaml"))
    record = yaml.safe_load(path.read_text(encoding="utf-8"))
    record["phone"] = "13911112222"
    path.write_text(yaml.safe_dump(record, allow_unicode=True, sort_keys=False), encoding="utf-8")
    _regenerate(page)
    assert "已重新生成" in page.locator(".notice").inner_text()
    page.wait_for_selector(".pages img")
    _shot(page, tmp_path, "regenerated")
    page.click("#compare")
    page.wait_for_selector("img.changed")
    assert "13911112222" in page.locator("table.fields-diff").inner_text()
    assert page.locator("img.changed").count() >= 2
    assert "红框标出" in page.locator("main").inner_text()
    _shot(page, tmp_path, "compare")


def test_verify_a_cover_photo(page: Any, server: dict[str, Any], tmp_path: Path) -> None:
    pytest.importorskip("zxingcpp")
    from archive_builder.web import core

    workspace = server["app"].state.workspace
    if not workspace.versions(HOUSEHOLD):
        workspace.regenerate(HOUSEHOLD)
    number = workspace.versions(HOUSEHOLD)[0].number
    photo = tmp_path / "封面照片.png"
    photo.write_bytes(core.page_png(workspace.version_pdf(HOUSEHOLD, number), 1, dpi=150))
    page.click("text=核对纸质件")
    page.set_input_files("input[name=photo]", str(photo))
    page.click("form.stack button")
    page.wait_for_selector("#verify-result")
    text = page.locator("#verify-result").inner_text()
    assert HOUSEHOLD in text and ("最新版本" in text or "已过期" in text)
    _shot(page, tmp_path, "verify")


def test_import_a_sheet(page: Any, server: dict[str, Any], tmp_path: Path) -> None:
    import openpyxl

    from archive_builder.web import core

    sheet = tmp_path / "人员信息.xlsx"
    core.export_sheet(server["data"], sheet)
    book = openpyxl.load_workbook(sheet)
    rows = list(book.active.iter_rows())
    column = next(i for i, c in enumerate(rows[0]) if c.value and "联系电话" in str(c.value))
    rows[1][column].value = "13655556666"
    book.save(sheet)
    page.click("text=导入表格")
    page.set_input_files("input[name=sheet]", str(sheet))
    page.check("input[name=force]")
    page.click("form.stack button")
    page.wait_for_selector("#import-report")
    assert "试运行结果" in page.locator("#import-report").inner_text()
    _shot(page, tmp_path, "import-dry-run")
    page.fill("#editor", "王会计")  # who imports, for the households' 修改记录
    page.click("#apply")
    page.wait_for_selector("text=已导入")
    _shot(page, tmp_path, "import-applied")


def test_build_a_village_and_see_progress_reach_the_end(page: Any, tmp_path: Path) -> None:
    page.select_option("select[name=village]", label="前进村（411621105203）")
    page.click(".build-form button")
    page.wait_for_selector("#progress:not([hidden])")
    page.wait_for_function(
        "document.getElementById('stage').textContent.startsWith('生成完成')", timeout=180_000
    )
    assert "渲染" in page.locator("#result").inner_text()
    assert page.locator(".fill.done").count() == 1
    _shot(page, tmp_path, "build-done")
    page.wait_for_load_state("load")
    page.reload()
    page.wait_for_selector("text=第1盒")


@pytest.mark.parametrize("width", [1280, 1024])
def test_ledger_and_search_fields_fit_the_window(browser: Any, server: dict[str, Any], tmp_path: Path,
                                                 width: int) -> None:
    context = browser.new_context(viewport={"width": width, "height": 900}, locale="zh-CN")
    try:
        tab = context.new_page()
        tab.set_default_timeout(60_000)
        tab.goto(server["url"] + "/village/411621105201/ledger")
        tab.wait_for_selector("table.ledger")
        overflow = tab.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, f"问题台账比窗口宽 {overflow} px"
        # each household number stays on its line, inside its column
        assert tab.evaluate("""[...document.querySelectorAll('table.ledger td.hh a')].every(
            a => a.getBoundingClientRect().right <= a.closest('td').getBoundingClientRect().right + 1)""")
        _shot(tab, tmp_path, f"ledger-{width}")
        tab.goto(server["url"] + "/village/411621105201")
        for selector in ("form.filters input[name=q]", "header input[name=q]"):
            room, needed = tab.evaluate("""(selector) => {
                const input = document.querySelector(selector), style = getComputedStyle(input);
                const ctx = document.createElement('canvas').getContext('2d');
                ctx.font = style.font;
                const room = input.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
                return [room, ctx.measureText(input.placeholder).width];
            }""", selector)
            assert needed <= room, f"{selector} 的提示文字被截断（需要 {needed:.0f} px，只有 {room:.0f} px）"
    finally:
        context.close()
