"""click's own messages reach the user in Chinese (usage errors, help headings, metavars)."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from archive_builder import cli_messages
from archive_builder.cli import main

ENGLISH = re.compile(r"Error|Usage|Try '|No such|Missing|Invalid|not a valid|Did you mean|requires|"
                     r"Got unexpected|OPTIONS|INTEGER|\[PATH|\bTEXT\b(?! 为)")


@pytest.mark.parametrize(("argv", "chinese"), [
    (["build", "--nope"], "没有选项 '--nope'"),
    (["build"], "缺少参数 '数据目录'。"),
    (["build", "data", "-j", "x"], "'x' 不是有效的数字"),
    (["build", "data", "-j", "0"], "不在范围"),
    (["build", "data", "--format"], "需要一个取值"),
    (["nope"], "没有命令 'nope'"),
    (["packet", "data", "1", "2"], "多余的参数"),
])
def test_usage_errors_are_chinese(argv, chinese):
    result = CliRunner().invoke(main, argv)
    assert result.exit_code == 2
    assert chinese in result.output and "错误：" in result.output
    assert not ENGLISH.search(result.output), result.output


@pytest.mark.parametrize("argv", [["--help"], ["build", "--help"], ["packet", "--help"], ["store", "--help"]])
def test_help_pages_have_chinese_placeholders(argv):
    result = CliRunner().invoke(main, argv)
    assert result.exit_code == 0 and "[选项]" in result.output
    assert "选项：" in result.output and "选项:" not in result.output
    assert not ENGLISH.search(result.output), result.output


def test_help_columns_count_chinese_as_two():
    assert cli_messages.display_width("路径") == 4 and cli_messages.display_width("\x1b[1mab\x1b[0m") == 2
    lines = CliRunner().invoke(main, ["build", "--help"]).output.splitlines()
    starts = {cli_messages.display_width(line.split("  ")[1]) for line in lines
              if line.startswith("  -") and "  " in line.strip()}
    assert starts


def test_unknown_messages_fall_back_to_click_english():
    assert cli_messages.gettext("Some new click message") == "Some new click message"
    assert cli_messages.ngettext("one {n}", "many {n}", 2) == "many {n}"


def test_os_errors_are_told_in_chinese(tmp_path):
    import errno

    from archive_builder.errors import os_reason

    assert os_reason(FileNotFoundError(errno.ENOENT, "No such file or directory")) == "文件或文件夹不存在"
    assert os_reason(PermissionError(errno.EACCES, "Permission denied")) == "没有访问权限"
    assert os_reason(OSError(errno.ENOSPC, "No space left on device")) == "磁盘空间不足"
    sharing = OSError(errno.EACCES, "另一个程序正在使用此文件")
    sharing.winerror = 32
    assert os_reason(sharing) == "文件正被其他程序使用"
    assert os_reason(OSError(errno.ENOEXEC, "Exec format error")) == "Exec format error"  # rare: the system's text
    result = CliRunner().invoke(main, ["diff", str(tmp_path / "无.pdf"), str(tmp_path / "也无.pdf")])
    assert "文件或文件夹不存在" in result.output and "No such file" not in result.output
