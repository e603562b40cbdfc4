"""``archive-builder serve``: what the pages tell people who use a browser, not a terminal."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from datadir import DEFAULT_VILLAGE, valid_household, write_data_dir

pytest.importorskip("starlette")
pytest.importorskip("httpx")

from starlette.testclient import TestClient

from archive_builder.web import core
from archive_builder.web.app import create_app

FIRST = "4116211052010001"
OTHER = "4116211052020001"
SECOND_VILLAGE = {"folder": "王楼村", "code": "411621105202", "name": "王楼村"}


def _csrf(client: TestClient, url: str = "/") -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', client.get(url).text)
    assert found
    return found.group(1)


def _box_cells(text: str) -> dict[str, str]:
    """The 档案盒 cell of each village row of the overview, by village code."""
    cells = {}
    for row in re.findall(r"<tr>(.*?)</tr>", text, re.S):
        code = re.search(r"<small>(\d{12})</small>", row)
        if code:
            cells[code.group(1)] = re.sub(r"<[^>]+>", "", re.findall(r"<td>(.*?)</td>", row, re.S)[-1])
    return cells


@pytest.fixture()
def two_villages(tmp_path: Path) -> Iterator[dict[str, Any]]:
    other = valid_household(OTHER, serial=2)
    other["_village"] = "王楼村"
    data = write_data_dir(tmp_path / "data", [valid_household(FIRST), other],
                          villages=[DEFAULT_VILLAGE, SECOND_VILLAGE])
    out = tmp_path / "out"
    assert not core.build_now(data, out).failed
    with TestClient(create_app(data, out), follow_redirects=True) as client:
        yield {"data": data, "out": out, "client": client}


@pytest.mark.slow
def test_overview_tells_per_village_whether_the_boxes_hold_the_latest_data(two_villages: dict[str, Any]) -> None:
    client, data, out = two_villages["client"], two_villages["data"], two_villages["out"]
    page = client.get("/")
    assert "都已包含最新数据" in page.text
    record = data / "冯老村" / FIRST / "household.yaml"
    record.write_text(record.read_text(encoding="utf-8").replace("12号", "13号"), encoding="utf-8")
    client.post("/reload", data={"csrf": _csrf(client)})
    # the packet is regenerated from its page: the box still holds the old one
    client.post(f"/household/{FIRST}/regenerate", data={"csrf": _csrf(client, f"/household/{FIRST}")})
    page = client.get("/")
    assert "是最新的" not in page.text and "都已包含最新数据" not in page.text
    cells = _box_cells(page.text)
    assert "第1盒" in cells["411621105201"] and "需要重新整理" in cells["411621105201"]
    assert "需要重新整理" not in cells["411621105202"] and "已是最新数据" in cells["411621105202"]
    # a build of the other village leaves this one's boxes as they were
    assert not core.build_now(data, out, ("411621105202",)).failed
    cells = _box_cells(client.get("/").text)
    assert "需要重新整理" in cells["411621105201"] and "已是最新数据" in cells["411621105202"]
    # a build of this village brings its boxes up to date: the whole township is then current
    assert not core.build_now(data, out, ("411621105201",)).failed
    page = client.get("/")
    assert "都已包含最新数据" in page.text and "需要" not in page.text
    assert core.build_now(data, out).rendered == 0


def test_build_result_lists_the_warnings_its_summary_counts(tmp_path: Path) -> None:
    from archive_builder.web.builds import BuildJob, BuildState

    data = write_data_dir(tmp_path / "data", [valid_household(FIRST)])
    job = BuildJob(core.Workspace(data, tmp_path / "out"))
    job.state = BuildState()
    job._event(job.state, '["done", {"line": "渲染 1 户 · 警告 1 条", "failed": [], '
                          '"warnings": ["户 4116211052010001：佐证材料 a.pdf 已转为图像"], "more_warnings": 0}]')
    shown = job.as_json()
    assert shown["warnings"] == ["户 4116211052010001：佐证材料 a.pdf 已转为图像"]
    script = (Path(core.__file__).parent / "static" / "app.js").read_text(encoding="utf-8")
    assert "s.warnings" in script and "条警告" in script


# --- a small township built once for the page tests below ----------------------------------


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("web-pages")
    other = valid_household(OTHER, serial=2)
    other["_village"] = "王楼村"
    data = write_data_dir(root / "data", [valid_household(FIRST), other], villages=[DEFAULT_VILLAGE, SECOND_VILLAGE])
    out = root / "out"
    assert not core.build_now(data, out).failed
    app = create_app(data, out)
    with TestClient(app, follow_redirects=True) as client:
        yield {"data": data, "out": out, "client": client, "app": app}


def test_core_hints_for_the_command_line_are_put_in_browser_words() -> None:
    from archive_builder.problems import error

    shown = core.problems_json([error("缺少必填项「姓名」", "请补充「姓名」（键名 name）", field="members[0].name")])
    assert shown[0]["hint"] == "请补充「姓名」" and "name" not in shown[0]["message"] + shown[0]["hint"]
    assert core.browser_text("金额不能为负数；支出请填在 costs（生产经营性支出）中") == "金额不能为负数；支出请填在生产经营性支出中"
    for text in ("该户在此输出目录的版本库中没有任何版本；请检查 -o 指定的输出目录。",
                 "最新为版本 3；请打印最新版本，或用 -o 指定生成这份档卡时的输出目录。",
                 "确认要用表格内容更新时加 --force（表格没有的字段会保留）",
                 "请用 archive-builder packet 数据目录 户编号 --store 档案输出目录 重新生成并打印，或打印 build 生成的档卡。"):
        plain = core.browser_text(text)
        assert "-o" not in plain and "--" not in plain and "archive-builder" not in plain, plain
    assert core.FORCE_CHECKBOX in core.browser_text("确认要用表格内容更新时加 --force")
    assert core.browser_text("没有版本 abc（现有版本 1–2）") == "没有版本 abc（现有版本 1–2）"  # not a record key


def test_ledger_and_stats_pages_speak_to_browser_users_and_offer_downloads(built: dict[str, Any]) -> None:
    client = built["client"]
    for url in ("/village/411621105201/ledger", "/village/411621105201/stats"):
        text = re.search(r"<main>(.*)</main>", client.get(url).text, re.S).group(1)
        for word in ("archive-builder", "--previous", "audit 命令", "stats.toml", "<code>"):
            assert word not in text, (url, word)
    ledger = client.get("/village/411621105201/ledger").text
    assert "/village/411621105201/ledger.xlsx" in ledger
    assert "/village/411621105201/stats.pdf" in client.get("/village/411621105201/stats").text
    for suffix, magic in (("xlsx", b"PK"), ("pdf", b"%PDF")):
        for kind in ("ledger", "stats"):
            got = client.get(f"/village/411621105201/{kind}.{suffix}")
            assert got.status_code == 200 and got.content.startswith(magic), (kind, suffix)
            assert "attachment" in got.headers["content-disposition"]
    assert client.get("/village/411621105201/ledger.exe").status_code == 404
    assert client.get("/village/411621105201/..%2F..%2Fetc.xlsx").status_code == 404
    assert client.get("/village/999999999999/ledger.xlsx").status_code == 404


def test_unknown_version_is_a_chinese_404(built: dict[str, Any]) -> None:
    client = built["client"]
    assert client.get(f"/household/{FIRST}", params={"v": "1"}).status_code == 200
    for asked in ("99", "abc", "0"):
        page = client.get(f"/household/{FIRST}", params={"v": asked})
        assert page.status_code == 404 and f"没有版本 {asked}" in page.text
    compare = client.get(f"/household/{FIRST}/compare", params={"a": "1", "b": "99"})
    # a version the household does not have is not a damaged store
    assert compare.status_code == 404 and "找不到版本" in compare.text and "版本库错误" not in compare.text


def test_search_finds_a_household_by_a_members_id_number(built: dict[str, Any]) -> None:
    client = built["client"]
    number = str(valid_household(FIRST)["members"][1]["id_number"])
    found = client.get("/search", params={"q": number})
    assert found.url.path == f"/household/{FIRST}"
    listing = client.get("/village/411621105201", params={"q": number.lower()})
    table = re.search(r"<table.*</table>", listing.text, re.S).group(0)
    assert FIRST in table and number not in table  # the list shows no ID numbers


def test_verify_submitted_empty_says_what_to_do(built: dict[str, Any]) -> None:
    client = built["client"]
    page = client.post("/verify", data={"csrf": _csrf(client, "/verify"), "text": ""})
    assert page.status_code == 400
    assert "上传的文件无法使用" not in page.text and "请先粘贴封面二维码扫出的文字，或选择一张封面照片" in page.text


def test_unusable_sheet_is_named_as_the_user_named_it(built: dict[str, Any]) -> None:
    client = built["client"]
    page = client.post("/import", data={"csrf": _csrf(client, "/import")},
                       files={"sheet": ("假表格.xlsx", b"not a sheet", "application/octet-stream")})
    assert page.status_code == 400
    assert "假表格.xlsx" in page.text and "表格.xlsx：" not in page.text.replace("假表格.xlsx", "")


def test_csv_problems_name_the_uploaded_file(built: dict[str, Any]) -> None:
    import csv
    import io

    import openpyxl

    client = built["client"]
    exported = openpyxl.load_workbook(io.BytesIO(client.get("/export.xlsx").content))
    rows = [list(row) for row in exported.active.iter_rows(values_only=True)]
    rows[1][rows[0].index("户编号")] = None  # a person without 户编号: a problem naming the row
    text = io.StringIO()
    csv.writer(text).writerows([["" if v is None else v for v in row] for row in rows])
    page = client.post("/import", data={"csrf": _csrf(client, "/import")},
                       files={"sheet": ("abc.csv", text.getvalue().encode("utf-8"), "text/csv")})
    assert page.status_code == 200, page.text
    assert "工作表「abc.csv」第 2 行" in page.text and "表格.csv" not in page.text


def test_xls_is_read_out_of_the_box(built: dict[str, Any]) -> None:
    import importlib.metadata

    required = importlib.metadata.requires("archive-builder") or []
    assert any(r.startswith("python-calamine") and "extra" not in r for r in required), required
    xlwt = pytest.importorskip("xlwt")  # only to make a .xls file in the test
    import io

    import openpyxl

    client = built["client"]
    exported = openpyxl.load_workbook(io.BytesIO(client.get("/export.xlsx").content))
    book = xlwt.Workbook(encoding="utf-8")
    sheet = book.add_sheet("人员信息")
    for r, row in enumerate(exported.active.iter_rows(values_only=True)):
        for c, value in enumerate(row):
            if value is not None:
                sheet.write(r, c, str(value))
    buffer = io.BytesIO()
    book.save(buffer)
    page = client.post("/import", data={"csrf": _csrf(client, "/import")},
                       files={"sheet": ("人员.xls", buffer.getvalue(), "application/vnd.ms-excel")})
    assert page.status_code == 200, page.text
    assert "试运行结果：人员.xls" in page.text


def test_compare_names_the_editor_from_the_journal(built: dict[str, Any]) -> None:
    from archive_builder.versions import journal

    client, data, out = built["client"], built["data"], built["out"]
    record = data / "冯老村" / FIRST / "household.yaml"
    record.write_text(record.read_text(encoding="utf-8").replace("12号", "14号"), encoding="utf-8")
    journal.record(out, user="张会计", household_id=FIRST, village_code="411621105201", action="修改了",
                   changes=["地址：冯老村第一村民组12号 → 冯老村第一村民组14号"])
    client.post(f"/household/{FIRST}/regenerate", data={"csrf": _csrf(client, f"/household/{FIRST}")})
    page = client.get(f"/household/{FIRST}/compare", params={"a": "1", "b": "2"})
    assert page.status_code == 200
    assert "修改人 张会计" in page.text
    import getpass

    assert f"{getpass.getuser()}@" not in page.text


def test_overview_counts_the_ledger_of_each_village(built: dict[str, Any]) -> None:
    from collections import Counter

    from archive_builder.checks.audit import village_ledger

    client, data = built["client"], built["data"]
    workspace = built["app"].state.workspace
    client.get("/")
    workspace.wait_for_ledger_counts()
    page = client.get("/")
    for code in ("411621105201", "411621105202"):
        expected = Counter(r.severity for r in village_ledger(data, code))
        row = next(r for r in re.findall(r"<tr>(.*?)</tr>", page.text, re.S) if f"<small>{code}</small>" in r)
        cell = re.sub(r"<[^>]+>", " ", re.search(r'class="ledger-counts">(.*?)</td>', row, re.S).group(1))
        for level, count in expected.items():
            assert f"{level} {count} 条" in cell, (code, cell)
        assert expected or "无" in cell
