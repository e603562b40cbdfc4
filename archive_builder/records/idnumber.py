"""Citizen ID numbers (公民身份号码, GB 11643-1999): check character, birth date, sex, masking.

A lowercase final ``x`` is accepted (it is unambiguous and common in exports from older
systems and spreadsheets) but reported as a warning by the validator, because the contract
(record-format §5) says ``X`` and the printed archive should show the canonical form.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
CHECK_CHARS = "10X98765432"

_SHAPE = re.compile(r"[0-9]{17}[0-9X]")


@dataclass(frozen=True)
class IdInfo:
    """What an ID number says about its holder."""

    number: str
    region: str
    birth_date: date
    sex: str  # "男" or "女"


class IdNumberError(ValueError):
    """An ID number that cannot be right; ``message`` and ``hint`` are for the clerk."""

    def __init__(self, code: str, message: str, hint: str) -> None:
        super().__init__(message)
        self.code = code  # length | chars | birth_date | check
        self.message = message
        self.hint = hint


def check_char(first17: str) -> str:
    """Return the GB 11643 check character for the first 17 digits."""
    if len(first17) != 17 or not first17.isascii() or not first17.isdigit():
        raise ValueError("check_char needs exactly 17 ASCII digits")
    total = sum(int(digit) * weight for digit, weight in zip(first17, WEIGHTS))
    return CHECK_CHARS[total % 11]


def normalize_id(value: str) -> str:
    """Return the ID with surrounding blanks removed and a final ``x`` upper-cased."""
    value = value.strip()
    if value.endswith("x"):
        value = value[:-1] + "X"
    return value


def parse_id(value: str) -> IdInfo:
    """Return the region, birth date and sex encoded in ``value``; raise IdNumberError."""
    number = normalize_id(value)
    if len(number) != 18:
        hint = "请核对身份证原件，公民身份号码应为 18 位"
        if len(number) == 15 and number.isdigit():
            hint = "这是 15 位旧号码，请换成身份证上的 18 位号码"
        raise IdNumberError(
            "length",
            f"公民身份号码 {value} 位数不对：应为 18 位，实为 {len(number)} 位",
            hint,
        )
    if not _SHAPE.fullmatch(number):
        raise IdNumberError(
            "chars",
            f"公民身份号码 {value} 含有不允许的字符：前 17 位应为数字，第 18 位为数字或 X",
            "请删除空格、全角字符或其他符号，并核对身份证原件",
        )
    birth = _birth_date(number)
    if birth is None:
        raise IdNumberError(
            "birth_date",
            f"公民身份号码 {number} 中的出生日期 {number[6:14]} 不是有效日期",
            "请核对身份证原件后更正第 7–14 位",
        )
    expected = check_char(number[:17])
    if number[17] != expected:
        raise IdNumberError(
            "check",
            f"公民身份号码 {number} 校验位错误：应为 {expected}，实为 {number[17]}",
            "请核对身份证原件后更正第 18 位（或前 17 位中抄错的数字）",
        )
    sex = "男" if int(number[16]) % 2 == 1 else "女"
    return IdInfo(number=number, region=number[:6], birth_date=birth, sex=sex)


def mask_id(value: str) -> str:
    """Return the ID as shown in public notices: first 6 and last 4 kept (411621********1234)."""
    number = normalize_id(value)
    if len(number) <= 10:
        return "*" * len(number)
    return number[:6] + "*" * (len(number) - 10) + number[-4:]


def _birth_date(number: str) -> date | None:
    try:
        return date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        return None
