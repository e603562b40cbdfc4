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
