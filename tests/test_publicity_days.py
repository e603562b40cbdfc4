"""The 公示 / 公告 periods are the rule set's parameters, read by the audit and the notices alike."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from archive_builder.checks import run_audit
from archive_builder.checks.rules import RuleFileError, load_rule_set, rule_files, rule_params
from archive_builder.errors import PeriodTooShortError
from archive_builder.reports.common import template_file
from archive_builder.reports.notice import NOTICE_FILE, plan_notice, read_kinds

SAMPLE = Path(__file__).resolve().parents[1] / "households_sample"
VILLAGE = "411621105201_李庄村"
HOUSEHOLD = "4116211052010001_李长河"
HID = "4116211052010001"


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARCHIVE_BUILDER_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def data(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    shutil.copytree(SAMPLE, root, ignore=shutil.ignore_patterns("*.pdf", "*.jpg", "*.png"))
    return root


def _plant(data: Path, change: Any) -> None:
    path = data / VILLAGE / HOUSEHOLD / "household.yaml"
    record = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(record)
    path.write_text(yaml.safe_dump(record, allow_unicode=True, sort_keys=False), encoding="utf-8")


def _publicity(data: Path) -> dict[str, str]:
    result = run_audit(data, today=dt.date(2026, 1, 5), villages=["李庄村"])
    return {row.key: row.description for row in result.rows
            if row.rule_id == "publicity-days" and row.household_id == HID}


def test_builtin_notice_periods_are_the_rule_sets() -> None:
    params = load_rule_set(rule_files()).params
    from archive_builder.templates import resolve_set

    kinds = read_kinds(resolve_set("default").find(NOTICE_FILE))
    assert {name: kind.min_days for name, kind in kinds.items()} == {
        "识别公示": params["公示天数"], "退出公示": params["公示天数"], "监测公示": params["监测公示天数"],
        "公告": params["公告天数"]}
    assert (params["公示天数"], params["监测公示天数"], params["公告天数"]) == (7, 5, 7)
    assert "不少于5天" in kinds["监测公示"].rule and "{min_days}" not in kinds["公告"].rule


def test_a_county_changes_the_periods_once_for_audit_and_notices(data: Path) -> None:
    (data / "rules").mkdir()
    (data / "rules" / "县.yaml").write_text("参数:\n  公示天数: 9\n  监测公示天数: 10\n", encoding="utf-8")
    with pytest.raises(PeriodTooShortError, match="少于规定的 10 天。规定：.*不少于10天"):
        plan_notice(data, "李庄村", "监测公示", start=dt.date(2024, 5, 1), days=7)
    plan = plan_notice(data, "王楼村", "识别公示", start=dt.date(2019, 4, 29))
    assert plan.days == 9  # the fewest days by default
    found = _publicity(data)  # the sample's 8-day 公示 are now too short
    assert found and all("少于9天" in text for text in found.values())


def test_a_monitored_households_identification_publicity_needs_seven_days(data: Path) -> None:
    def change(r: dict[str, Any]) -> None:
        r["monitor"] = {"category": "脱贫不稳定户", "risks": ["因病"], "identified_on": "2025-03", "eliminated": False}
        r["procedure"][3]["date_to"] = dt.date(2018, 3, 12)  # identification: 3.08–3.12, 5 days
        r["procedure"] += [{"kind": "申请", "date": dt.date(2025, 3, 1)},
                           {"kind": "公示", "date": dt.date(2025, 3, 5), "date_to": dt.date(2025, 3, 9)}]  # 5 days

    _plant(data, change)
    found = _publicity(data)
    assert list(found) == [f"publicity-days|{HID}|程序公示/2018-03-08"]
    assert "共5天，少于7天" in found[f"publicity-days|{HID}|程序公示/2018-03-08"]


def test_a_period_that_is_no_number_is_a_chinese_error(data: Path) -> None:
    (data / "rules").mkdir()
    (data / "rules" / "县.yaml").write_text("参数:\n  监测公示天数: 五天\n", encoding="utf-8")
    assert rule_params(data)["监测公示天数"] == "五天"
    with pytest.raises(RuleFileError, match="监测公示天数.*正整数"):
        read_kinds(template_file(*_village(data), NOTICE_FILE), rule_params(data))
    with pytest.raises(RuleFileError, match="监测公示天数.*正整数"):
        run_audit(data)  # when the rules are read, not per household


def _village(data: Path) -> tuple[Any, Any]:
    from archive_builder.records.loader import load_household

    dataset = load_household(data, HID)
    return dataset, dataset.villages[0]


def test_notice_and_audit_count_the_days_alike(data: Path) -> None:
    """Both count the first and the last day: a 7-day 公示 from 5月1日 ends on 5月7日, and a
    notice timed by a recorded 公示 step of 3.08–3.14 lasts the 7 days the audit counts there."""
    plan = plan_notice(data, "李庄村", "识别公示", households=[HID], start=dt.date(2024, 5, 1), days=7)
    assert (plan.start, plan.end, plan.days) == (dt.date(2024, 5, 1), dt.date(2024, 5, 7), 7)

    def week(record: dict[str, Any]) -> None:
        record["procedure"][3]["date_to"] = dt.date(2018, 3, 14)  # identification: 3.08–3.14

    _plant(data, week)
    assert _publicity(data) == {}  # the audit counts 7 days: no problem
    plan = plan_notice(data, "李庄村", "识别公示", households=[HID])
    assert (plan.start, plan.end, plan.days) == (dt.date(2018, 3, 8), dt.date(2018, 3, 14), 7)
