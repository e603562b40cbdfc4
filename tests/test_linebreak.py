"""CJK line breaking (禁则) in archive_builder.render.linebreak."""

from __future__ import annotations

import pytest

from archive_builder.render.linebreak import (
    CLOSING,
    OPENING,
    break_lines,
    break_lines_widths,
    gap_count,
    is_cjk,
)


def width(s: str) -> float:
    """CJK = 1 em, everything else = 0.5 em."""
    return sum(1.0 if is_cjk(c) else 0.5 for c in s)


def check(lines: list[str], max_width: float, indent: float = 0.0) -> None:
    for i, line in enumerate(lines):
        avail = max_width - (indent if i == 0 else 0.0)
        assert width(line) <= avail + 1e-9, (line, avail)


@pytest.mark.parametrize("mark", list("，。、；：？！）》」』】〕”’…—%") + list(",.;:?!)]}"))
def test_no_line_starts_with_closing_punctuation(mark: str) -> None:
    # the mark falls exactly at the start of the second line if breaking naively
    text = "一二三四五" + mark + "六七八九"
    lines = break_lines(text, width, 5)
    check(lines, 5)
    assert "".join(lines) == text
    for line in lines:
        assert line[0] not in CLOSING, lines
    assert lines[0] == "一二三四"
    assert lines[1].startswith("五" + mark)


def test_double_closing_marks_stay_with_previous_char() -> None:
    lines = break_lines("他说：“好的”。……然后", width, 4)
    assert all(line[0] not in CLOSING for line in lines), lines
    assert "".join(lines) == "他说：“好的”。……然后"


@pytest.mark.parametrize("mark", list("（《「『【〔“‘") + list("([{"))
def test_no_line_ends_with_opening_punctuation(mark: str) -> None:
    text = "一二三四" + mark + "五六七"
    lines = break_lines(text, width, 5 if is_cjk(mark) else 4.5)
    assert "".join(lines) == text
    for line in lines:
        assert line[-1] not in OPENING, lines
    assert lines[1].startswith(mark + "五")


@pytest.mark.parametrize(
    "token", ["41162119850312003X", "12,345.67", "2024-05-01", "archive", "13800138000", "¥1,200"]
)
def test_unbreakable_runs_are_not_split(token: str) -> None:
    prefix = "身份证号码为"
    for max_width in (7, 8, 9, 10, 11, 12, 13):
        if width(token) > max_width:
            continue
        lines = break_lines(prefix + token + "经核实无误", width, max_width)
        check(lines, max_width)
        assert any(token in line for line in lines), (max_width, lines)


def test_english_words_break_at_spaces_only() -> None:
    text = "Poverty alleviation archive 档卡 builder"
    lines = break_lines(text, width, 8)
    check(lines, 8)
    words = {w for line in lines for w in line.split()}
    assert {"Poverty", "alleviation", "archive", "builder"} <= words
    assert all(not line.startswith(" ") and not line.endswith(" ") for line in lines)


def test_overlong_run_is_cut_by_characters_as_last_resort() -> None:
    token = "41162119850312003X"  # 9 em wide
    lines = break_lines(token, width, 4)
    assert "".join(lines) == token
    check(lines, 4)
    assert lines == ["41162119", "85031200", "3X"]


def test_hard_line_breaks_and_blank_lines() -> None:
    lines = break_lines("第一行\n第二行\n\n新段落", width, 10, first_indent=2)
    assert lines == ["第一行", "第二行", "", "新段落"]
    lines = break_lines("一二三四五六七八九十甲乙", width, 10, first_indent=2)
    assert lines == ["一二三四五六七八", "九十甲乙"]
    # the indent applies again after a blank line
    lines = break_lines("一二三四五六七八九\n\n一二三四五六七八九", width, 8, first_indent=2)
    assert lines == ["一二三四五六", "七八九", "", "一二三四五六", "七八九"]


def test_width_never_exceeded_on_long_mixed_text() -> None:
    text = ("申请人张三，身份证号41162119850312003X，2024-05-01申请，年收入12,345.67元（其中"
            "务工收入8,000元）。English words mixed in, “引号”和《书名号》都要遵守规则。") * 5
    for max_width in (5, 7.5, 10, 13, 28):
        lines = break_lines(text, width, max_width, first_indent=2 if max_width > 5 else 0)
        check(lines, max_width, 2 if max_width > 5 else 0)
        assert "".join(lines).replace(" ", "") == text.replace(" ", "")
        for line in lines:
            assert line[0] not in CLOSING and line[-1] not in OPENING


def test_fast_variant_matches() -> None:
    text = "申请人张三，身份证号41162119850312003X，年收入12,345.67元（其中务工收入）。" * 3
    table: dict[str, float] = {}
    fast = break_lines_widths(text, table, 9, 2, missing=width)
    assert fast == break_lines(text, width, 9, 2)
    assert table["申"] == 1.0


def test_gap_count() -> None:
    assert gap_count("一二三") == 2
    assert gap_count("ab12") == 0
    assert gap_count("一ab二") == 2
    assert gap_count("") == 0
