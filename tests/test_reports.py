"""Issue 22: village statistics (贫情分析, 三色管理) and public notices (公示/公告).

The statistics are checked against counts recomputed here from the sample's record files
read as plain YAML/JSON (not through the models); the PDFs and Word files are read back
(pypdf, python-docx) and scanned for personal data.
"""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter, defaultdict
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from pypdf import PdfReader

from archive_builder.cli import main
from archive_builder.errors import ExitCode, PeriodTooShortError, TemplateError
from archive_builder.reports.notice import make_notice, phased_steps, plan_notice, scrub
from archive_builder.reports.stats import compute_stats, village_tables
from archive_builder.reports.stats_write import write_stats

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "households_sample"
KINDS = ("识别公示", "退出公示", "监测公示", "公告")

pytestmark = pytest.mark.skipif(not (SAMPLE / "archive.toml").exists(), reason="households_sample/ not present")


# --------------------------------------------------------------------------- independent recount


def _raw_villages() -> dict[str, list[dict[str, Any]]]:
    """Village name → the raw records of its households (YAML/JSON, no models)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for village_toml in sorted(SAMPLE.glob("*/village.toml")):
        name = re.search(r'^name = "(.*)"$', village_toml.read_text("utf-8"), re.MULTILINE).group(1)  # type: ignore[union-attr]
        records = []
        for folder in sorted(p for p in village_toml.parent.iterdir() if p.is_dir()):
            for file_name in ("household.yaml", "household.yml", "household.json"):
                path = folder / file_name
                if path.is_file():
                    text = path.read_text("utf-8")
                    records.append(json.loads(text) if file_name.endswith("json") else yaml.safe_load(text))
        out[name] = records
    return out


def _per_capita(record: dict[str, Any], year: int) -> Decimal | None:
    for entry in record.get("income") or []:
        if entry["year"] == year:
            total = Decimal(0)
            for part in ("wage", "business", "property", "transfer"):
                total += sum((Decimal(str(v)) for v in (entry.get(part) or {}).values()), Decimal(0))
            total -= sum((Decimal(str(v)) for v in (entry.get("costs") or {}).values()), Decimal(0))
            count = entry.get("members_counted") or len(record["members"])
            return (total / count).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    return None


def _color(record: dict[str, Any]) -> str:
    status = record.get("poverty_status")
    monitor = record.get("monitor")
    if status in ("未脱贫", "预脱贫", "返贫") or (monitor and not monitor.get("eliminated")):
        return "红"
    if any(m.get("dibao") or m.get("tekun") for m in record["members"]) or record.get("poverty_attribute") in (
        "低保贫困户", "特困供养贫困户"
    ):
        return "绿"
    if (status or "").startswith("已脱贫") or monitor:
        return "蓝"
    return "未分色"


def _by_label(table: Any) -> dict[str, tuple[Any, ...]]:
    return {str(row[0]): tuple(row[1:]) for row in table.rows}


def _copy_sample(tmp_path: Path) -> Path:
    """Copy the sample's records and settings (not its photos and scans: reports never read them)."""
    data = tmp_path / "data"
    shutil.copytree(SAMPLE, data, ignore=shutil.ignore_patterns("*.jpg", "*.png", "*.tif", "*.pdf", "*.heic"))
    return data


@pytest.fixture(scope="module")
def stats() -> Any:
    return compute_stats(SAMPLE)


def test_stats_counts_match_the_records(stats: Any) -> None:
    raw = _raw_villages()
    assert [v.name for v in stats.villages] == list(raw)
    assert not stats.problems
    threshold = Decimal(8050)
    for village in stats.villages:
        records = raw[village.name]
        assert village.households == len(records)
        assert village.persons == sum(len(r["members"]) for r in records)
        groups = list(village.groups)
        for key, value_of in (
            ("household_type", lambda r: [r["household_type"]]),
            ("poverty_attribute", lambda r: [r.get("poverty_attribute")]),
            ("poverty_status", lambda r: [r.get("poverty_status")]),
            ("monitor_category", lambda r: [(r.get("monitor") or {}).get("category")]),
            ("monitor_risk", lambda r: (r.get("monitor") or {}).get("risks") or []),
            ("cause", lambda r: [r["causes"]["main"]]),
            ("colors", lambda r: [_color(r)]),
            ("income", lambda r: [_band(_per_capita(r, 2025), threshold)]),
        ):
            width = 2 + 2 * len(groups)
            expected: dict[str, list[int]] = defaultdict(lambda: [0] * width)
            for record in records:
                size = len(record["members"])
                for value in value_of(record):
                    if not value:
                        continue
                    cells = expected[value]
                    cells[0] += 1
                    cells[1] += size
                    g = groups.index(record.get("group"))
                    cells[2 + 2 * g] += 1
                    cells[3 + 2 * g] += size
            got = {label: list(cells) for label, cells in _by_label(village.table(key)).items() if any(cells)}
            assert got == dict(expected), (village.name, key)
        footer = village.table("household_type").footer[0]
        assert footer[1:3] == (len(records), sum(len(r["members"]) for r in records))


def _band(per_capita: Decimal | None, threshold: Decimal) -> str:
    if per_capita is None:
        return "无该年度收入数据"
    if per_capita < threshold:
        return "低于标准"
    return "接近标准" if per_capita <= threshold * Decimal("1.1") else "高于标准"


def test_stats_measures_and_coverage_match_the_records(stats: Any) -> None:
    raw = _raw_villages()
    for village in stats.villages:
        records = raw[village.name]
        count: Counter[tuple[str, str]] = Counter()
        amount: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
        for record in records:
            for m in record.get("measures") or []:
                count[(str(m["year"]), m["category"])] += 1
                amount[(str(m["year"]), m["category"])] += Decimal(str(m.get("amount") or 0))
        table = village.table("measures")
        rows = {(r[0], r[1]): (r[3], r[4]) for r in table.rows if r[1] != "小计"}
        assert rows == {k: (count[k], amount[k]) for k in count}
        assert table.footer[0][3] == sum(count.values())
        assert table.footer[0][4] == sum(amount.values())
        coverage = _by_label(village.table("coverage"))
        water = sum(1 for r in records if (r.get("living") or {}).get("safe_drinking_water") is True)
        assert coverage["饮水安全"][2] == water
        persons = sum(len(r["members"]) for r in records)
        assert coverage["基本医疗"][1] == persons


def test_stats_leave_out_a_broken_household_and_say_so(tmp_path: Path) -> None:
    data = _copy_sample(tmp_path)
    broken = next(data.glob("*李庄村/4116211052010005/household.yaml"))
    broken.write_text("household_id: '4116211052010005'\nmembers: [\n", "utf-8")
    result = runner_invoke(["stats", str(data), "--village", "李庄村", "-o", str(tmp_path / "统计.xlsx")])
    assert result.exit_code == ExitCode.ok, result.output
    assert "户 4116211052010005 的数据有错误，未计入" in result.output
    village = village_tables(data, "李庄村")
    assert village.households == len(_raw_villages()["李庄村"]) - 1
    assert village.to_json()["skipped"] == ["4116211052010005"]
    json.dumps(village.to_json(), ensure_ascii=False)  # the web app's shape


def test_stats_colour_rules_come_from_the_template_set(tmp_path: Path) -> None:
    data = _copy_sample(tmp_path)
    override = data / "templates" / "stats"
    override.mkdir(parents=True)
    (override / "stats.toml").write_text(
        '[[colors]]\nname = "黄"\nmeaning = "全部"\nrgb = "#FFD600"\nwhen = [{ monitored = false }, { monitored = true }]\n',
        "utf-8",
    )
    village = village_tables(data, "李庄村")
    rows = _by_label(village.table("colors"))
    assert list(rows) == ["黄"]
    assert rows["黄"][0] == village.households
    (override / "stats.toml").write_text('[[colors]]\nname = "黄"\nwhen = [{ sick = true }]\n', "utf-8")
    with pytest.raises(TemplateError, match="未知条件 sick"):
        village_tables(data, "李庄村")


def test_stats_pdf_charts_carry_chinese_text(stats: Any, tmp_path: Path) -> None:
    out = write_stats(stats, tmp_path / "统计.pdf")
    reader = PdfReader(out.path)
    text = "\n".join(page.extract_text() for page in reader.pages)
    # chart titles, pie legend and labels exist only in the drawings
    for label in ("各类型户数", "三色管理（户数）", "2025年人均纯收入分布（户）", "帮扶资金按措施类别（元）"):
        assert label in text
    assert re.search(r"蓝：\d+ 户（[\d.]+%）", text)
    assert re.search(r"红 \d+户", text)
    for page in reader.pages:
        for font in (page["/Resources"].get("/Font") or {}).values():
            font = font.get_object()
            assert "Helvetica" not in str(font["/BaseFont"])
            descendant = font["/DescendantFonts"][0].get_object()
            assert "/FontFile2" in descendant["/FontDescriptor"]
    # each village's report is numbered from 1 and has its outline entry
    numbers = [page.extract_text().strip().splitlines()[-1] for page in reader.pages]
    assert numbers.count("— 1 —") == len(stats.villages)
    assert [item.title for item in reader.outline] == [v.title for v in stats.villages]
    again = write_stats(stats, tmp_path / "again.pdf")
    assert again.path.read_bytes() == out.path.read_bytes()


def test_stats_xlsx_one_sheet_per_table(stats: Any, tmp_path: Path) -> None:
    from openpyxl import load_workbook

    result = runner_invoke(["stats", str(SAMPLE), "--village", "王楼村", "-o", str(tmp_path / "统计.xlsx")])
    assert result.exit_code == ExitCode.ok, result.output
    book = load_workbook(tmp_path / "统计.xlsx")
    village = next(v for v in stats.villages if v.name == "王楼村")
    assert len(book.sheetnames) == len(village.tables)
    sheet = book["户类型"]
    assert sheet.freeze_panes == "B5"
    labels = [sheet.cell(r, 1).value for r in range(5, 5 + len(village.table("household_type").rows))]
    assert labels == [row[0] for row in village.table("household_type").rows]
    assert sheet.cell(5, 2).value == village.table("household_type").rows[0][1]


# --------------------------------------------------------------------------- notices

ID_PATTERN = re.compile(r"(?<![0-9])[0-9]{17}[0-9Xx](?![0-9])")
PHONE_PATTERN = re.compile(r"(?<![0-9])1[0-9]{10}(?![0-9])")
LONG_DIGITS = re.compile(r"[0-9]{12,}")


def _health_words() -> list[str]:
    data = yaml.safe_load((ROOT / "archive_builder/records/vocab/health.yaml").read_text("utf-8"))
    # 因病/因残 are causes and monitoring risks (columns the notices must show), not a health status
    return ["健康状况", *data["labels"], *(v for v in data.get("variants", {}) if len(v) > 1)]


def _docx_text(path: Path) -> str:
    import docx

    document = docx.Document(str(path))
    parts = [p.text for p in document.paragraphs]
    for table in document.tables:
        for row in table.rows:
            parts.extend(cell.text for cell in row.cells)
    return "\n".join(parts)


def _assert_no_personal_data(text: str) -> None:
    assert not ID_PATTERN.search(text), text
    assert not PHONE_PATTERN.search(text), text
    assert not LONG_DIGITS.search(re.sub(r"[\s-]", "", text)), text
    for word in _health_words():
        assert word not in text, word


@pytest.mark.parametrize("kind", KINDS)
def test_notice_pdf_and_docx_without_personal_data(kind: str, tmp_path: Path) -> None:
    for village in ("李庄村", "王楼村", "前进村"):
        pdf = make_notice(SAMPLE, village, kind, tmp_path / f"{village}{kind}.pdf")
        plan = pdf.plan
        assert plan.rows, (village, kind)
        docx = make_notice(SAMPLE, village, kind, tmp_path / f"{village}{kind}.docx")
        pdf_text = "\n".join(page.extract_text() for page in PdfReader(pdf.path).pages)
        word_text = _docx_text(docx.path)
        for text in (pdf_text, word_text):
            _assert_no_personal_data(text)
            assert f"{village}村民委员会" in text
            assert "监督电话" in text and re.search(r"0394-62\d{5}", text)
            for row in plan.rows:
                assert row[2] in text  # 户主姓名
            assert re.search(r"时间：\d{4}年\d+月\d+日至\d{4}年\d+月\d+日（共\d+天）", text)
        assert "序号" in pdf_text and "家庭人口数" in pdf_text


def test_notice_chooses_households_by_procedure_phase() -> None:
    # 4116211052020001: identified 2019, exited 2020, monitored again from 2023
    plans = {kind: plan_notice(SAMPLE, "王楼村", kind, start=start, days=days) for kind, start, days in (
        ("识别公示", date(2019, 4, 29), 7), ("退出公示", date(2020, 9, 10), 7), ("监测公示", date(2023, 2, 2), 7),
    )}
    for plan in plans.values():
        assert "4116211052020001" in plan.household_ids
    monitoring = plans["监测公示"]
    row = monitoring.rows[monitoring.household_ids.index("4116211052020001")]
    assert row[4:] == ("纳入监测", "脱贫不稳定户", "因病、因务工就业不稳")


def test_phases_of_a_monitored_household() -> None:
    from archive_builder.records.loader import load_household

    dataset = load_household(SAMPLE, "4116211052020001")
    (_, household), = list(dataset.households())
    phases = [(p.step.kind, p.phase) for p in phased_steps(household.record) if p.step.kind == "公示"]
    assert phases == [("公示", "识别"), ("公示", "退出"), ("公示", "监测")]


def test_notice_period_too_short_is_refused_in_chinese(tmp_path: Path) -> None:
    out = tmp_path / "公示.pdf"
    result = runner_invoke(["notice", str(SAMPLE), "--village", "李庄村", "--kind", "监测公示", "--days", "4",
                            "-o", str(out)])
    assert result.exit_code == ExitCode.input_unusable, result.output
    assert "公示期不足：监测公示的公示期为 4 天，少于规定的 5 天。规定：" in result.output
    assert "不少于5天" in result.output
    assert not out.exists()
    with pytest.raises(PeriodTooShortError, match="少于规定的 7 天"):
        plan_notice(SAMPLE, "李庄村", "退出公示", days=6)


def test_notice_id_column_is_masked_and_forbidden_fields_refused(tmp_path: Path) -> None:
    data = _copy_sample(tmp_path)
    override = data / "templates" / "notice"
    override.mkdir(parents=True)
    toml = (ROOT / "templates/default/notice/notice.toml").read_text("utf-8")
    toml = toml.replace('columns = ["index", "group", "head", "size", "cause"]',
                        'columns = ["index", "group", "head", "id_number", "size", "cause"]')
    toml = toml.replace("widths = [1, 2, 2, 1.6, 2.4]", "widths = [1, 2, 2, 4, 1.6, 2.4]")
    (override / "notice.toml").write_text(toml, "utf-8")
    result = make_notice(data, "李庄村", "识别公示", tmp_path / "id.pdf")
    text = "\n".join(page.extract_text() for page in PdfReader(result.path).pages)
    _assert_no_personal_data(text)
    assert re.search(r"\d{6}\*{8}\d{3}[\dX]", text)
    (override / "notice.toml").write_text(toml.replace('"id_number", "size"', '"phone", "size"'), "utf-8")
    with pytest.raises(TemplateError, match="不能公示的字段：phone"):
        plan_notice(data, "李庄村", "识别公示")


def test_scrub_masks_ids_phones_and_account_numbers() -> None:
    assert scrub("户主 11010519491231002X 电话 13812345678 账号 6222 0212 3456 7890") == (
        "户主 110105********002X 电话 138****5678 账号 622*********7890"
    )
    assert scrub("第二村民组 2020") == "第二村民组 2020"


def runner_invoke(args: list[str]) -> Any:
    return CliRunner().invoke(main, args)


def test_notice_on_a_small_data_dir(make_data_dir: Any, tmp_path: Path) -> None:
    from datadir import valid_household

    record = valid_household()
    record["procedure"][1]["result"] = "户主电话 13800138000，身份证 " + record["members"][0]["id_number"]
    data = make_data_dir([record])
    result = runner_invoke(["notice", str(data), "--village", "冯老村", "--kind", "识别公示",
                            "--households", "４１１６２１１０５２０１０００１", "-o", str(tmp_path / "公示.pdf")])
    assert result.exit_code == ExitCode.ok, result.output
    assert "未设置监督电话 supervision_phone" in result.output
    # the record's 公示 step ran 3.10–3.17: 8 days, both ends counted
    assert "识别公示：1 户，2016-03-10 至 2016-03-17（8 天）" in result.output
    text = "\n".join(page.extract_text() for page in PdfReader(tmp_path / "公示.pdf").pages)
    _assert_no_personal_data(text)
    assert "慢性病" not in text and "张建国" in text and "监督电话" in text
    # no 退出 steps at all: a clear Chinese refusal, nothing written
    result = runner_invoke(["notice", str(data), "--village", "冯老村", "--kind", "退出公示",
                            "-o", str(tmp_path / "退出.pdf")])
    assert result.exit_code == ExitCode.input_unusable, result.output
    assert "冯老村没有任何户有「公示」（退出阶段）的程序记录" in result.output
    assert not (tmp_path / "退出.pdf").exists()
    result = runner_invoke(["notice", str(data), "--village", "冯老村", "--kind", "识别公示",
                            "--households", "4116211052019999", "-o", str(tmp_path / "x.pdf")])
    assert result.exit_code == ExitCode.input_unusable, result.output
    assert "冯老村没有户编号为 4116211052019999 的户" in result.output
    stats = runner_invoke(["stats", str(data), "-o", str(tmp_path / "统计.pdf")])
    assert stats.exit_code == ExitCode.ok, stats.output


@pytest.mark.slow
def test_commands_in_a_real_process(tmp_path: Path) -> None:
    import subprocess
    import sys

    stats = subprocess.run([sys.executable, "-m", "archive_builder", "stats", str(SAMPLE), "--village", "前进村",
                            "-o", str(tmp_path / "统计.pdf")], check=False, capture_output=True, text=True,
                            encoding="utf-8")
    assert stats.returncode == 0, stats.stderr
    assert stats.stdout.startswith(str(tmp_path / "统计.pdf"))
    notice = subprocess.run([sys.executable, "-m", "archive_builder", "notice", str(SAMPLE), "--village", "前进村",
                             "--kind", "退出公示", "-o", str(tmp_path / "退出公示.docx")],
                            check=False, capture_output=True, text=True,
                            encoding="utf-8")
    assert notice.returncode == 0, notice.stderr
    assert "退出公示：" in notice.stdout
    _assert_no_personal_data(_docx_text(tmp_path / "退出公示.docx"))


def test_report_templates_do_not_change_the_packets_fingerprint(tmp_path: Path) -> None:
    from archive_builder.templates import resolve_set

    data = _copy_sample(tmp_path)
    before = resolve_set("default", data_dir=data).fingerprint()
    (data / "templates" / "notice").mkdir(parents=True)
    (data / "templates" / "notice" / "notice.toml").write_text("[kinds]\n", "utf-8")
    assert resolve_set("default", data_dir=data).fingerprint() == before
    (data / "templates" / "sections").mkdir()
    (data / "templates" / "sections" / "notes.xml").write_text("<section/>", "utf-8")
    assert resolve_set("default", data_dir=data).fingerprint() != before


def test_stats_pdf_prints_rare_characters_with_a_fallback_face(tmp_path: Path) -> None:
    from archive_builder.reports.stats import Stats, StatsTable, VillageStats
    from archive_builder.reports.stats_write import stats_pdf

    table = StatsTable(key="household_type", title="户类型", columns=("户类型", "户数"),
                       rows=(("脱贫户", 1),), chart="bar", chart_title="各类型户数", chart_data=(("脱贫户", 1.0),))
    village = VillageStats(code="411621105201", name="𠮷堃村", title="𠮷堃村贫情分析统计表", groups=("喆组",),
                           households=1, persons=1, tables=(table,))
    stats = Stats(county="清河县", township="大李庄乡", year=2025, date="2025-12-31", income_threshold=None,
                  villages=(village,))
    data, pages, warnings = stats_pdf(stats)
    (tmp_path / "rare.pdf").write_bytes(data)
    text = PdfReader(tmp_path / "rare.pdf").pages[0].extract_text()
    assert "𠮷堃村贫情分析统计表" in text
    from archive_builder.archive.packet import font_set

    fonts = font_set()
    ((face, _),) = fonts.runs("𠮷", "title")
    if face == fonts.faces["title"].rl_name or fonts.missing_chars("𠮷", "title"):
        pytest.skip("no fallback face for 𠮷 on this machine")
    from reportlab.pdfbase import pdfmetrics

    name = pdfmetrics.getFont(face).face.name
    name = name.decode() if isinstance(name, bytes) else str(name)
    fonts_used = [str(f.get_object()["/BaseFont"]) for f in PdfReader(tmp_path / "rare.pdf").pages[0]["/Resources"]
                  ["/Font"].values()]
    assert any(used.endswith("+" + name) for used in fonts_used), fonts_used  # the fallback face drew 𠮷
    assert pages == 1 and warnings == ()
