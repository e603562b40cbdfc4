"""``archive-builder serve``: the pages through Starlette's test client (no browser)."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from datadir import mutate, valid_household, write_data_dir

pytest.importorskip("starlette")
pytest.importorskip("httpx")

from starlette.testclient import TestClient

from archive_builder.web import app as web_app
from archive_builder.web.app import create_app

FIRST = "4116211052010001"
SECOND = "4116211052010002"


def _tree(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_size for p in sorted(root.rglob("*")) if p.is_file()}


def _csrf(client: TestClient, url: str = "/") -> str:
    page = client.get(url)
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
    assert found, page.text[:500]
    return found.group(1)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("web")
    second = mutate(valid_household(SECOND, serial=1), members__0__name="周桂英")
    second["members"][1]["name"] = "孙立新"
    data = write_data_dir(root / "data", [valid_household(FIRST), second])
    out = root / "out"
    from archive_builder.web import core

    summary = core.build_now(data, out)
    assert not summary.failed, summary.failed
    app = create_app(data, out)
    with TestClient(app, follow_redirects=True) as client:
        yield {"data": data, "out": out, "client": client, "app": app}


def test_township_page_is_chinese_and_counts(site: dict[str, Any]) -> None:
    page = site["client"].get("/")
    assert page.status_code == 200
    assert "乡镇总览" in page.text and "冯老村" in page.text
    assert "第1盒" in page.text and "竖条" in page.text  # downloads of the build's boxes
    assert 'lang="zh-CN"' in page.text


def test_search_finds_a_household_by_a_members_name(site: dict[str, Any]) -> None:
    client = site["client"]
    found = client.get("/search", params={"q": "孙立新"})
    assert found.url.path == f"/household/{SECOND}"  # a single match opens the household
    assert "周桂英 户" in found.text
    listing = client.get("/village/411621105201", params={"q": "4116211052010"})
    assert FIRST in listing.text and SECOND in listing.text
    none = client.get("/village/411621105201", params={"q": "不存在的人"})
    assert "没有符合条件的户" in none.text


def test_village_pages(site: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(web_app, "PAGE_SIZE", 1)
    client = site["client"]
    first = client.get("/village/411621105201")
    assert "第 1 / 2 页" in first.text and "下一页" in first.text
    second = client.get("/village/411621105201", params={"page": "2"})
    assert "第 2 / 2 页" in second.text
    junk = client.get("/village/411621105201", params={"page": "abc"})
    assert junk.status_code == 200


def test_household_page_shows_sections_with_chinese_labels(site: dict[str, Any]) -> None:
    page = site["client"].get(f"/household/{FIRST}")
    assert page.status_code == 200
    for label in ("家庭成员", "公民身份号码", "户类型", "版本记录", "重新生成", "下载 PDF"):
        assert label in page.text
    image = site["client"].get(f"/household/{FIRST}/v/1/page/1.png")
    assert image.status_code == 200 and image.content.startswith(b"\x89PNG")


def test_post_without_csrf_is_refused(site: dict[str, Any]) -> None:
    client = site["client"]
    before = _tree(site["out"] / ".store")
    for data in ({}, {"csrf": "0" * 40}):
        refused = client.post(f"/household/{FIRST}/regenerate", data=data)
        assert refused.status_code == 403
        assert "安全令牌" in refused.text
    assert client.post("/build", data={}).status_code == 403
    assert _tree(site["out"] / ".store") == before


def test_regenerate_records_versions_and_compare_highlights(site: dict[str, Any]) -> None:
    client, data = site["client"], site["data"]
    csrf = _csrf(client, f"/household/{FIRST}")
    same = client.post(f"/household/{FIRST}/regenerate", data={"csrf": csrf})
    assert "数据未变化，仍为版本 1" in same.text  # the build's version: same content, same number
    path = data / "冯老村" / FIRST / "household.yaml"
    record = yaml.safe_load(path.read_text(encoding="utf-8"))
    record["phone"] = "13912345678"
    path.write_text(yaml.safe_dump(record, allow_unicode=True, sort_keys=False), encoding="utf-8")
    changed = client.post(f"/household/{FIRST}/regenerate", data={"csrf": csrf})
    assert "已重新生成，记录为版本 2" in changed.text
    assert client.get(f"/household/{FIRST}/v/2.pdf").content.startswith(b"%PDF")
    compared = client.get(f"/household/{FIRST}/compare", params={"a": "1", "b": "2"})
    assert compared.status_code == 200
    assert "13912345678" in compared.text and "联系电话" in compared.text
    assert 'class="changed"' in compared.text and "红框标出" in compared.text
    # pages named as printed: version 1 sits in the build's box, with its archive page number
    assert re.search(r"原封面（档案第 \d+ 页） ↔ 新封面", compared.text), compared.text


@pytest.mark.parametrize("url", [
    "/household/..%2F..%2Fetc%2Fpasswd",
    "/household/../../etc/passwd",
    "/household/%2e%2e/v/1.pdf",
    f"/household/{FIRST}/v/99.pdf",
    f"/household/{FIRST}/v/1/page/999.png",
    "/output/box/..%2F..%2Fetc/1",
    "/output/box/411621105201/99",
    "/output/spine/..",
    "/output/..%2Fmanifest.json",
    "/static/../archive.toml",
    "/static/..%2F..%2Fcore.py",
])
def test_paths_from_requests_are_never_files(site: dict[str, Any], url: str) -> None:
    response = site["client"].get(url)
    assert response.status_code == 404
    assert "root:" not in response.text and "Traceback" not in response.text


def test_files_by_id(site: dict[str, Any]) -> None:
    client = site["client"]
    box = client.get("/output/box/411621105201/1")
    assert box.status_code == 200 and box.content.startswith(b"%PDF")
    assert client.get("/output/manifest").json()["villages"][0]["code"] == "411621105201"


def _cover_photo(site: dict[str, Any], number: int) -> bytes:
    from archive_builder.web import core

    path = site["app"].state.workspace.version_pdf(FIRST, number)
    return core.page_png(path, 1, dpi=150)


def test_verify_by_text_and_by_photo(site: dict[str, Any]) -> None:
    pytest.importorskip("zxingcpp")
    client = site["client"]
    csrf = _csrf(client, "/verify")
    versions = site["app"].state.workspace.versions(FIRST)
    latest = versions[-1]
    text = f"AB1|{FIRST}|v{latest.number}|{latest.content_hash[:12]}"
    current = client.post("/verify", data={"csrf": csrf, "text": text})
    assert "是最新版本" in current.text
    photo = _cover_photo(site, versions[-1].number)
    shown = client.post("/verify", data={"csrf": csrf}, files={"photo": ("封面.png", photo, "image/png")})
    assert shown.status_code == 200 and "是最新版本" in shown.text
    if len(versions) > 1:
        old = client.post("/verify", data={"csrf": csrf},
                          files={"photo": ("封面.png", _cover_photo(site, 1), "image/png")})
        assert "已过期" in old.text


def test_corrupt_photo_is_refused_and_writes_nothing(site: dict[str, Any]) -> None:
    client = site["client"]
    csrf = _csrf(client, "/verify")
    before = _tree(site["out"])
    refused = client.post("/verify", data={"csrf": csrf},
                          files={"photo": ("封面.jpg", b"\xff\xd8\xff not really a jpeg", "image/jpeg")})
    assert refused.status_code == 400
    assert "不是可识别的图片" in refused.text
    assert _tree(site["out"]) == before


def test_corrupt_sheet_is_refused_and_writes_nothing(site: dict[str, Any]) -> None:
    client = site["client"]
    csrf = _csrf(client, "/import")
    before = _tree(site["data"])
    for name, body in (("人员.xlsx", b"PK\x03\x04 broken zip"), ("人员.exe", b"MZ")):
        refused = client.post("/import", data={"csrf": csrf},
                              files={"sheet": (name, body, "application/octet-stream")})
        assert refused.status_code == 400, refused.text
        assert "上传的文件无法使用" in refused.text
    assert _tree(site["data"]) == before


def test_upload_size_limit(tmp_path: Path) -> None:
    data = write_data_dir(tmp_path / "data")
    with TestClient(create_app(data, tmp_path / "out", max_upload=1000)) as client:
        csrf = _csrf(client, "/verify")
        big = client.post("/verify", data={"csrf": csrf}, files={"photo": ("a.png", b"x" * 5000, "image/png")})
        assert big.status_code == 413 and "文件太大" in big.text
        huge = client.post("/import", data={"csrf": csrf},
                           files={"sheet": ("a.xlsx", b"x" * 200_000, "application/octet-stream")})
        assert huge.status_code == 413 and "未接收" in huge.text  # refused by its length, unread
    assert not (tmp_path / "out").exists()


def test_import_dry_run_then_apply(site: dict[str, Any], tmp_path: Path) -> None:
    import openpyxl

    client = site["client"]
    exported = client.get("/export.xlsx")
    assert exported.status_code == 200 and exported.content.startswith(b"PK")
    book = openpyxl.load_workbook(io.BytesIO(exported.content))
    rows = list(book.active.iter_rows())
    header = [c.value for c in rows[0]]
    column = next(i for i, h in enumerate(header) if h and "联系电话" in str(h))
    for row in rows[1:]:
        row[column].value = "13700001111"
    buffer = io.BytesIO()
    book.save(buffer)
    csrf = _csrf(client, "/import")
    before = _tree(site["data"])
    dry = client.post("/import", data={"csrf": csrf, "force": "1"},
                      files={"sheet": ("人员.xlsx", buffer.getvalue(), "application/octet-stream")})
    assert dry.status_code == 200, dry.text
    assert "试运行结果" in dry.text and "将更新" in dry.text
    assert _tree(site["data"]) == before  # the dry run wrote nothing
    upload = re.search(r'name="upload" value="([0-9a-f]+)"', dry.text)
    assert upload
    assert 'name="editor"' in dry.text  # who imports is asked before 确认导入
    nameless = client.post("/import/apply", data={"csrf": csrf, "upload": upload.group(1)})
    assert nameless.status_code == 400 and "请填写您的姓名" in nameless.text
    assert _tree(site["data"]) == before
    applied = client.post("/import/apply", data={"csrf": csrf, "upload": upload.group(1), "editor": "王会计"})
    assert "已导入" in applied.text
    assert "13700001111" in (site["data"] / "冯老村" / SECOND / "household.yaml").read_text(encoding="utf-8")
    from archive_builder.versions import journal

    entries = journal.entries(site["out"], SECOND)
    assert [(e.user, e.action) for e in entries] == [("王会计", "导入表格「人员.xlsx」时修改了")]
    assert any("13700001111" in line for line in entries[0].changes), entries[0].changes
    household = client.get(f"/household/{SECOND}")
    assert "王会计 导入表格「人员.xlsx」时修改了" in household.text and "13700001111" in household.text
    again = client.post("/import/apply", data={"csrf": csrf, "upload": upload.group(1)})
    assert again.status_code == 404  # applied once only


def test_build_is_refused_while_another_build_holds_the_lock(site: dict[str, Any]) -> None:
    from archive_builder.archive.outdir import build_lock  # as the CLI takes it

    client = site["client"]
    csrf = _csrf(client)
    with build_lock(site["out"]):
        assert client.get("/build/status").json()["other"] is True
        refused = client.post("/build", data={"csrf": csrf})
        assert refused.status_code == 409
        assert "另一个生成任务" in refused.text
        busy = client.post(f"/household/{FIRST}/regenerate", data={"csrf": csrf})
        assert busy.status_code == 409
    assert client.get("/build/status").json()["other"] is False


def test_failures_render_a_chinese_page_and_the_server_keeps_serving(
    site: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    workspace = site["app"].state.workspace

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(workspace, "search", broken)
    failed = site["client"].get("/village/411621105201")
    assert failed.status_code == 500
    assert "服务器内部错误" in failed.text and "Traceback" not in failed.text
    monkeypatch.undo()
    assert site["client"].get("/village/411621105201").status_code == 200
    assert "找不到" in site["client"].get("/household/123").text


def test_token_is_required_when_set(tmp_path: Path) -> None:
    data = write_data_dir(tmp_path / "data")
    with TestClient(create_app(data, tmp_path / "out", token="s3cret-token")) as client:
        locked = client.get("/")
        assert locked.status_code == 403 and "需要登录" in locked.text
        assert client.get("/login", params={"token": "wrong-token"}).status_code == 403
        opened = client.get("/login", params={"token": "s3cret-token"})
        assert opened.status_code == 200 and "乡镇总览" in opened.text


def test_non_loopback_host_needs_a_token() -> None:
    from archive_builder.web.serve import ServeOptions, ServeRefused, check_options

    with pytest.raises(ServeRefused, match="登录令牌"):
        check_options(ServeOptions(Path("data"), host="0.0.0.0"))
    assert check_options(ServeOptions(Path("data"), host="127.0.0.1")) is None
    assert check_options(ServeOptions(Path("data"), host="::1")) is None
    assert len(check_options(ServeOptions(Path("data"), host="0.0.0.0", token="auto")) or "") >= 16


def test_cli_refuses_a_network_host_without_token(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from archive_builder.cli import main

    data = write_data_dir(tmp_path / "data")
    result = CliRunner().invoke(main, ["serve", str(data), "--host", "0.0.0.0"])
    assert result.exit_code == 2
    assert "无法启动服务" in result.output and "--token auto" in result.output


def test_word_copy_download(site: dict[str, Any]) -> None:
    word = site["client"].get(f"/household/{FIRST}/word.docx")
    assert word.status_code == 200
    assert word.content.startswith(b"PK")
    assert "attachment" in word.headers["content-disposition"]


def test_a_household_with_errors_shows_them_and_is_not_regenerated(tmp_path: Path) -> None:
    bad = mutate(valid_household(FIRST), members__0__id_number="411621198503120000")
    data = write_data_dir(tmp_path / "data", [bad])
    with TestClient(create_app(data, tmp_path / "out")) as client:
        page = client.get(f"/household/{FIRST}")
        assert page.status_code == 200
        assert "错误" in page.text and "家庭成员 第 1 项 公民身份号码" in page.text
        csrf = _csrf(client, f"/household/{FIRST}")
        refused = client.post(f"/household/{FIRST}/regenerate", data={"csrf": csrf})
        assert refused.status_code == 400
        assert "未生成档卡" in refused.text and "公民身份号码" in refused.text
        assert "Traceback" not in refused.text
    assert not list((tmp_path / "out").glob(".store/**/*.pdf"))


def test_token_auto_prints_the_login_url_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    from archive_builder.web.serve import ServeOptions, run

    monkeypatch.setattr(uvicorn.Server, "run", lambda self: None)
    data = write_data_dir(tmp_path / "data")
    shown: list[str] = []
    list(run(ServeOptions(data, tmp_path / "out", host="0.0.0.0", port=8499, token="auto"), shown.extend))
    logins = [line for line in shown if "/login?token=" in line]
    assert len(logins) == 1 and ":8499/login?token=" in logins[0]
    assert any("只显示这一次" in line for line in shown)


def test_reload_reads_changes_made_elsewhere(tmp_path: Path) -> None:
    data = write_data_dir(tmp_path / "data")
    with TestClient(create_app(data, tmp_path / "out")) as client:
        assert "周大勇" not in client.get("/search", params={"q": FIRST}).text
        path = data / "冯老村" / FIRST / "household.yaml"
        record = yaml.safe_load(path.read_text(encoding="utf-8"))
        record["members"][0]["name"] = "周大勇"
        path.write_text(yaml.safe_dump(record, allow_unicode=True, sort_keys=False), encoding="utf-8")
        csrf = _csrf(client)
        client.post("/reload", data={"csrf": csrf})
        assert "周大勇" in client.get("/search", params={"q": "周大勇"}).text


def test_other_host_names_are_refused_on_loopback(tmp_path: Path) -> None:
    from archive_builder.web.serve import allowed_hosts

    data = write_data_dir(tmp_path / "data")
    hosts = allowed_hosts("127.0.0.1", None)
    assert hosts is not None and allowed_hosts("0.0.0.0", "a-token-123") is None
    app = create_app(data, tmp_path / "out", allowed_hosts=hosts)
    with TestClient(app, base_url="http://127.0.0.1:8421") as client:
        assert client.get("/").status_code == 200
        rebound = client.get("/", headers={"host": "evil.example:8421"})
        assert rebound.status_code == 400 and "不是本服务的地址" in rebound.text
        assert client.get("/", headers={"host": "localhost:8421"}).status_code == 200
        assert client.get("/", headers={"host": "[::1]:8421"}).status_code == 200


def test_uploads_do_not_outlive_the_server(tmp_path: Path) -> None:
    data = write_data_dir(tmp_path / "data")
    app = create_app(data, tmp_path / "out")
    uploads = app.state.uploads
    with TestClient(app) as client:
        csrf = _csrf(client, "/import")
        client.post("/import", data={"csrf": csrf}, files={"sheet": ("a.csv", "户编号,姓名\n".encode(), "text/csv")})
        assert uploads.is_dir()
    assert not uploads.exists()


# --------------------------------------------------------------------------- statistics and ledger pages


@pytest.fixture(scope="module")
def sample_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    import shutil

    root = tmp_path_factory.mktemp("web-sample")
    data = root / "households_sample"
    shutil.copytree(Path(__file__).resolve().parents[1] / "households_sample", data)
    app = create_app(data, root / "out")
    with TestClient(app, follow_redirects=True) as client:
        yield {"data": data, "client": client}


def test_village_statistics_page_shows_the_stats_commands_tables(sample_site: dict[str, Any]) -> None:
    from archive_builder.reports.stats import village_tables

    stats = village_tables(sample_site["data"], "411621105201")
    page = sample_site["client"].get("/village/411621105201")
    assert "/village/411621105201/stats" in page.text and "/village/411621105201/ledger" in page.text
    shown = sample_site["client"].get("/village/411621105201/stats")
    assert shown.status_code == 200
    assert stats.title in shown.text and f"{stats.households} 户，{stats.persons} 人" in shown.text
    for table in stats.tables:
        assert table.title in shown.text
    assert shown.text.count("<table") == len(stats.tables)


def test_village_ledger_page_lists_the_audits_problems(sample_site: dict[str, Any]) -> None:
    from archive_builder.checks.audit import village_ledger

    rows = village_ledger(sample_site["data"], "411621105201")
    assert rows  # the sample has measures without evidence
    shown = sample_site["client"].get("/village/411621105201/ledger")
    assert shown.status_code == 200 and f"共 {len(rows)} 条" in shown.text
    assert shown.text.count("<tr>") == len(rows) + 1  # the header and one row per problem
    for row in rows:
        assert f'<a href="/household/{row.household_id}">' in shown.text and row.category in shown.text


def test_household_page_shows_its_ledger_with_basis_and_advice(sample_site: dict[str, Any]) -> None:
    from archive_builder.checks.audit import household_ledger

    rows = household_ledger(sample_site["data"], "4116211052010001")
    assert rows
    shown = sample_site["client"].get("/household/4116211052010001")
    assert "问题台账（政策检查）" in shown.text
    assert rows[0].basis in shown.text and rows[0].advice in shown.text


@pytest.mark.parametrize("url", ["/village/999999999999/stats", "/village/..%2F..%2Fetc/ledger"])
def test_statistics_and_ledger_of_an_unknown_village_are_404(sample_site: dict[str, Any], url: str) -> None:
    assert sample_site["client"].get(url).status_code == 404
