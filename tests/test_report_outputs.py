"""Where the inspectors' commands write (audit, stats, notice, export): only the file named,
of the kind it must be, and never inside the data directory; their dates and lists as typed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from archive_builder import api
from archive_builder.cli import main
from archive_builder.errors import ExitCode, OutputError


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARCHIVE_BUILDER_CACHE_DIR", str(tmp_path / "cache"))


def run(*args: Any) -> Any:
    return CliRunner().invoke(main, [str(a) for a in args])


def _listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# --- audit -o: a .xlsx file ---------------------------------------------------------------------


def test_audit_output_is_an_xlsx_file(make_data_dir: Any, tmp_path: Path) -> None:
    data = make_data_dir()
    help_text = run("audit", "--help").output
    assert "-o, --output 台账文件" in help_text and "输出目录" not in help_text
    assert "上一轮台账无法使用" in help_text
    for name in ("台账.pdf", "台账"):
        result = run("audit", data, "-o", tmp_path / name)
        assert result.exit_code == ExitCode.output_unusable, result.output
        assert f"问题台账只能保存为 .xlsx：{name}" in result.output
        assert "--pdf 台账.pdf" in result.output
        assert not (tmp_path / name).exists()
    (tmp_path / "somefolder").mkdir()
    result = run("audit", data, "-o", tmp_path / "somefolder")
    assert result.exit_code == ExitCode.output_unusable, result.output
    assert "是一个文件夹" in result.output and "请给出文件名" in result.output
    assert "WPS" not in result.output
    result = run("audit", data, "--pdf", tmp_path / "台账.xlsx")
    assert result.exit_code == ExitCode.output_unusable, result.output
    assert "只能保存为 .pdf：台账.xlsx" in result.output
    result = run("audit", data, "-o", tmp_path / "台账.XLSX")
    assert result.exit_code in (ExitCode.ok, ExitCode.problems), result.output
    assert (tmp_path / "台账.XLSX").read_bytes()[:2] == b"PK"


def test_readme_and_audit_help_give_the_same_exit_codes() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text("utf-8")
    help_text = " ".join(run("audit", "--help").output.split())
    codes = help_text.split("退出码：", 1)[1].split("。", 1)[0].split(" 参数：")[0]
    assert codes.replace(" ", "") in readme.replace(" ", "")


# --- nothing is written inside the data directory -----------------------------------------------


@pytest.mark.parametrize("command", [
    ("stats", "{data}", "-o", "{data}/统计.xlsx"),
    ("audit", "{data}", "-o", "{data}/台账.xlsx"),
    ("audit", "{data}", "--pdf", "{data}/冯老村/台账.pdf"),
    ("notice", "{data}", "--village", "冯老村", "--kind", "识别公示", "-o", "{data}/冯老村/公示.pdf"),
    ("export", "{data}", "-o", "{data}/导出.xlsx"),
], ids=lambda c: " ".join(c[:1] + c[2:3]))
def test_outputs_inside_the_data_directory_are_refused(command: tuple[str, ...], make_data_dir: Any) -> None:
    data = make_data_dir()
    before = _listing(data)
    result = run(*(part.format(data=data) for part in command))
    assert result.exit_code == ExitCode.output_unusable, result.output
    assert "位于数据目录" in result.output and "之内" in result.output
    assert "Traceback" not in result.output
    assert _listing(data) == before


def test_the_core_refuses_too(make_data_dir: Any) -> None:
    """The web app calls api.*: the refusal is there, not only in the command line."""
    data = make_data_dir()
    with pytest.raises(OutputError, match="位于数据目录"):
        api.stats(data, data / "统计.pdf")
    with pytest.raises(OutputError, match="位于数据目录"):
        api.notice(data, "冯老村", "识别公示", data / "公示.docx")
    result = api.audit(data)
    with pytest.raises(OutputError, match="位于数据目录"):
        api.write_ledger(result, data / "台账.xlsx")
    with pytest.raises(OutputError, match="只能保存为 .xlsx"):
        api.write_ledger(result, data.parent / "台账.pdf")


# --- messages in Chinese only; dates as records spell them ---------------------------------------


@pytest.mark.parametrize("name, content, reason", [
    ("坏.xlsx", b"not a workbook", "文件已损坏，或不是 Excel 工作簿"),
    ("台账.pdf", b"%PDF-1.7\n", "这是 .pdf 文件，不是 Excel 工作簿"),
])
def test_a_previous_ledger_that_is_no_workbook_is_said_in_chinese(name: str, content: bytes, reason: str,
                                                                   make_data_dir: Any, tmp_path: Path) -> None:
    data = make_data_dir()
    (tmp_path / name).write_bytes(content)
    result = run("audit", data, "--previous", tmp_path / name)
    assert result.exit_code == ExitCode.input_unusable, result.output
    assert f"不是有效的 .xlsx 文件（{reason}）" in result.output
    assert "BadZipFile" not in result.output and "Exception" not in result.output


@pytest.mark.parametrize("spelled", ["2016-03-10", "2016.3.10", "2016/3/10", "2016年3月10日"])
def test_notice_from_takes_the_dates_records_take(spelled: str, make_data_dir: Any, tmp_path: Path) -> None:
    data = make_data_dir()
    result = run("notice", data, "--village", "冯老村", "--kind", "识别公示", "--from", spelled,
                 "-o", tmp_path / "公示.docx")
    assert result.exit_code == ExitCode.ok, result.output
    assert "2016-03-10 至 2016-03-16（7 天）" in result.output


@pytest.mark.parametrize("command", [("notice", "--village", "冯老村", "--kind", "识别公示", "--from"),
                                     ("audit", "--today"), ("validate", "--today")])
def test_a_date_option_names_the_accepted_forms(command: tuple[str, ...], make_data_dir: Any,
                                                tmp_path: Path) -> None:
    data = make_data_dir()
    out = () if command[0] == "validate" else ("-o", tmp_path / "x.pdf")
    result = run(command[0], data, *command[1:], "2016.13.10", *out)
    assert result.exit_code == ExitCode.input_unusable, result.output
    assert "「2016.13.10」不是有效日期" in result.output and "2025年6月2日" in result.output
    assert "%Y" not in result.output


# --- notice --households: only households the kind may show -------------------------------------


def _households(make_data_dir: Any) -> Path:
    from datadir import make_id, valid_household

    poor = valid_household("4116211052010001", serial=1)  # 脱贫户 with an identification 公示, not monitored
    monitored = valid_household("4116211052010002", serial=2)
    monitored.update(household_type="防止返贫致贫对象", poverty_attribute=None, poverty_status=None, exit_year=None,
                     procedure=[], monitor={"category": "边缘易致贫户", "risks": ["因病"], "identified_on": "2025-03",
                                            "eliminated": False})
    plain = valid_household("4116211052010003", serial=3)
    plain.update(household_type="一般农户", poverty_attribute=None, poverty_status=None, exit_year=None, procedure=[])
    plain["members"][0]["id_number"] = make_id("19700101", "031")
    return make_data_dir([poor, monitored, plain])


def test_notice_refuses_listed_households_its_kind_cannot_show(make_data_dir: Any, tmp_path: Path) -> None:
    data = _households(make_data_dir)
    out = tmp_path / "公示.docx"
    result = run("notice", data, "--village", "冯老村", "--kind", "监测公示", "--from", "2025-06-02",
                 "--households", "4116211052010001", "--households", "4116211052010002", "-o", out)
    assert result.exit_code == ExitCode.problems, result.output
    assert "以下 1 户不能列入监测公示" in result.output
    assert "户 4116211052010001（张建国）：户类型为脱贫户，没有监测信息（monitor）" in result.output
    assert "4116211052010002" not in result.output  # monitored: may be listed
    assert not out.exists()
    result = run("notice", data, "--village", "冯老村", "--kind", "识别公示", "--from", "2025-06-02",
                 "--households", "4116211052010003,4116211052010002", "-o", out)
    assert result.exit_code == ExitCode.problems, result.output
    assert "以下 2 户不能列入识别公示" in result.output
    assert "户类型为一般农户" in result.output and "户类型为防止返贫致贫对象" in result.output
    assert "贫困户或脱贫户" in result.output
    for kind in ("退出公示", "公告"):
        result = run("notice", data, "--village", "冯老村", "--kind", kind, "--from", "2025-06-02",
                     "--households", "4116211052010003", "-o", out)
        assert result.exit_code == ExitCode.problems, result.output
        assert not out.exists()


def test_notice_lists_several_households_after_one_flag(make_data_dir: Any, tmp_path: Path) -> None:
    data = _households(make_data_dir)
    for listed in (["4116211052010001,4116211052010002"], ["4116211052010001 4116211052010002"],
                   ["4116211052010001", "--households", "4116211052010002"]):
        result = run("notice", data, "--village", "冯老村", "--kind", "监测公示", "--from", "2025-06-02",
                     "--households", "4116211052010002", "-o", tmp_path / "监测.docx")
        assert result.exit_code == ExitCode.ok, result.output
        result = run("notice", data, "--village", "冯老村", "--kind", "识别公示", "--from", "2025-06-02",
                     "--households", *listed, "-o", tmp_path / "识别.docx")
        assert result.exit_code == ExitCode.problems, result.output  # 002 is refused, so both were read
        assert "以下 1 户不能列入识别公示" in result.output and "4116211052010002" in result.output
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text("utf-8")
    assert "--households 户编号 …" not in readme and "`--households 户编号,户编号`" in readme
