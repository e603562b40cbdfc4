"""GB 11643 ID numbers: check character, birth date, sex, masking."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from archive_builder.records.idnumber import (
    IdNumberError,
    check_char,
    mask_id,
    normalize_id,
    parse_id,
)


@pytest.mark.parametrize("number", ["11010519491231002X", "440524188001010014"])
def test_standard_examples_are_valid(number: str) -> None:
    assert parse_id(number).number == number
    assert check_char(number[:17]) == number[17]


def test_parse_gives_region_birth_date_and_sex() -> None:
    info = parse_id("11010519491231002X")
    assert (info.region, info.birth_date, info.sex) == (
        "110105",
        date(1949, 12, 31),
        "女",
    )
    assert parse_id("440524188001010014").sex == "男"  # 17th digit 1 is odd


def test_lowercase_x_is_normalised() -> None:
    assert normalize_id(" 11010519491231002x ") == "11010519491231002X"
    assert parse_id("11010519491231002x").number == "11010519491231002X"


def test_wrong_check_character() -> None:
    with pytest.raises(IdNumberError) as caught:
        parse_id("110105194912310021")
    assert caught.value.code == "check"
    assert (
        caught.value.message
        == "公民身份号码 110105194912310021 校验位错误：应为 X，实为 1"
    )
    assert (
        caught.value.hint == "请核对身份证原件后更正第 18 位（或前 17 位中抄错的数字）"
    )


def test_wrong_length() -> None:
    with pytest.raises(IdNumberError) as caught:
        parse_id("1101051949123100")
    assert caught.value.code == "length"
    assert (
        caught.value.message
        == "公民身份号码 1101051949123100 位数不对：应为 18 位，实为 16 位"
    )


def test_fifteen_digit_old_number_gets_its_own_hint() -> None:
    with pytest.raises(IdNumberError) as caught:
        parse_id("110105491231002")
    assert caught.value.hint == "这是 15 位旧号码，请换成身份证上的 18 位号码"


@pytest.mark.parametrize(
    "number",
    ["11010519491231002Y", "1101051949123100 X", "１１０１０５１９４９１２３１００２X"],
)
def test_bad_characters(number: str) -> None:
    with pytest.raises(IdNumberError) as caught:
        parse_id(number)
    assert caught.value.code in ("chars", "length")


def test_impossible_birth_date() -> None:
    first17 = "41162119850230003"  # 30 February
    with pytest.raises(IdNumberError) as caught:
        parse_id(first17 + check_char(first17))
    assert caught.value.code == "birth_date"
    assert (
        caught.value.message
        == f"公民身份号码 {first17 + check_char(first17)} 中的出生日期 19850230 不是有效日期"
    )


def test_mask_keeps_first_six_and_last_four() -> None:
    assert mask_id("411621198503120034") == "411621********0034"
    assert mask_id("11010519491231002x") == "110105********002X"
    assert mask_id("123") == "***"


def test_check_char_needs_17_digits() -> None:
    with pytest.raises(ValueError):
        check_char("123")


@given(
    region=st.integers(110000, 829999),
    birth=st.dates(date(1900, 1, 1), date(2024, 12, 31)),
    seq=st.integers(0, 999),
)
def test_any_well_formed_number_round_trips(region: int, birth: date, seq: int) -> None:
    first17 = f"{region}{birth:%Y%m%d}{seq:03d}"
    info = parse_id(first17 + check_char(first17))
    assert info.birth_date == birth
    assert info.sex == ("男" if seq % 2 else "女")
    wrong = next(c for c in "0123456789X" if c != check_char(first17))
    with pytest.raises(IdNumberError):
        parse_id(first17 + wrong)
