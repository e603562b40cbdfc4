"""Turn pydantic validation errors on a household record into located Chinese problems."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from ..problems import Problem, error, warning
from .models import Household, close_field, field_label, join_path, model_at, split_path, unknown_keys

#: pydantic error type → (what it should be, how to fix)
_EXPECTED: dict[str, tuple[str, str]] = {
    "string_type": ("应为文字", "请填写文字；如果是一个列表或映射，请改为一段文字"),
    "int_type": ("应为整数", "请填写整数，如 2024"),
    "int_parsing": ("应为整数", "请填写整数，如 2024"),
    "int_from_float": ("应为整数，不能有小数", "请去掉小数部分"),
    "bool_type": ("应为 是 或 否", "请填写 是/否（或 true/false）"),
    "bool_parsing": ("应为 是 或 否", "请填写 是/否（或 true/false）"),
    "date_type": ("应为日期", "请按「年-月-日」填写，如 2024-03-15"),
    "date_value": ("不是有效日期", "请核对年、月、日，如 2024-02-30 这样的日期不存在"),
    "money_type": (
        "应为数字",
        "请只填写数字，如 1200 或 1200.50，不要带「元」或其他文字",
    ),
    "list_type": ("应为列表", "请在每一项前加「- 」，每项一行"),
    "dict_type": ("应为映射（键: 值）", "请按「键: 值」的形式填写，每项一行并缩进"),
    "model_type": ("应为映射（键: 值）", "请按「键: 值」的形式填写，每项一行并缩进"),
    "model_attributes_type": (
        "应为映射（键: 值）",
        "请按「键: 值」的形式填写，每项一行并缩进",
    ),
    "literal_error": ("取值不对", "请从允许的取值中选择"),
    "too_short": ("至少应有 1 项", "请补充该项内容"),
    "too_long": ("项数太多", "请删去多余的项"),
    "greater_than": ("应大于 0", "请改为正数"),
    "greater_than_equal": ("不能为负数", "请改为 0 或正数"),
    "float_type": ("应为数字", "请只填写数字"),
    "float_parsing": ("应为数字", "请只填写数字"),
    "int_too_big": ("数字太大", "请核对该数字"),
    "household_id_unsafe": (
        "不能用作文件名（含有 / \\ : * ? \" < > | 、控制字符，或以 . 开头或结尾）",
        "户编号只能由数字、字母、汉字和 - _ 组成，请按国家系统中的户编号改正",
    ),
    "recursion_loop": ("引用了自身", "请去掉 YAML 锚点（&）与别名（*）的循环引用"),
}

Locate = Callable[[str], tuple[int | None, int | None]]


def choices(expected: str) -> str:
    """pydantic's "'永久', '30年' or '10年'" as 「永久」「30年」「10年」."""
    import re

    values = re.findall(r"'((?:[^'\\]|\\.)*)'", expected)
    if not values:  # numbers are not quoted: "20, 30, 40 or 50"
        values = [v for v in re.split(r",\s*|\s+or\s+", expected) if v]
    return "".join(f"「{v}」" for v in values)


def _shown(value: Any) -> str:
    text = repr(value) if not isinstance(value, str) else value
    return text if len(text) <= 40 else text[:37] + "…"


def loc_to_path(loc: tuple[Any, ...]) -> str:
    """Return the field path of a pydantic ``loc`` (dropping pydantic's own markers)."""
    parts = [
        part for part in loc if not (isinstance(part, str) and part.startswith("["))
    ]
    return join_path(parts)


def problem_from_error(item: Any, locate: Locate, raw: Any = None, **where: Any) -> Problem:
    """Return one problem for one entry of ``ValidationError.errors()``; ``raw``: the mapping
    validated (a missing key misspelt in it is named)."""
    path = loc_to_path(item["loc"])
    label = field_label(Household, path) if path else "记录"
    kind = item["type"]
    line, column = locate(path)
    if kind == "missing":
        name = path.rsplit(".", 1)[-1]
        typo = _misspelt(raw, path)
        if typo is not None:  # the key is there, misspelt: say so where it is
            line, column = locate(typo[0])
            return error(
                f"缺少必填项「{label}」：键名「{typo[1]}」是否为 {name} 的误写？",
                f"请把键名「{typo[1]}」改为 {name}",
                line=line,
                column=column,
                field=path,
                **where,
            )
        return error(
            f"缺少必填项「{label}」",
            f"请补充「{label}」（键名 {name}）",
            line=line,
            column=column,
            field=path,
            **where,
        )
    expected, hint = _EXPECTED.get(kind, ("格式不对", "请按数据格式说明改正"))
    if kind == "literal_error":
        expected = f"应为{choices(item.get('ctx', {}).get('expected', ''))}之一"
    if kind == "too_short" and path == "members":
        expected, hint = "至少应有 1 人", "请填写家庭成员，其中一人与户主关系为「户主」"
    shown = _shown(item.get("input"))
    return error(
        f"{label}{expected}，实为「{shown}」",
        hint,
        line=line,
        column=column,
        field=path,
        **where,
    )


def problems_from_validation_error(
    exc: ValidationError, locate: Locate, raw: Any = None, **where: Any
) -> list[Problem]:
    """Return one problem per error of ``exc``, located by ``locate(field_path)``; with ``raw``
    (the mapping validated), its unknown keys too (a rejected record has no ``model_extra``
    for the rules to report them from), but those a missing key's error names."""
    problems = [problem_from_error(item, locate, raw, **where) for item in exc.errors()]
    if raw is not None:
        named = {
            typo[0] for item in exc.errors() if item["type"] == "missing"
            and (typo := _misspelt(raw, loc_to_path(item["loc"]))) is not None
        }
        for path, key, model_cls in unknown_keys(raw):
            if path not in named:
                message, hint = unknown_key_text(model_cls, key)
                line, column = locate(path)
                problems.append(warning(message, hint, line=line, column=column, field=path, **where))
    return problems


def unknown_key_text(model_cls: Any, key: str) -> tuple[str, str]:
    """(message, hint) of an unknown key of a ``model_cls`` mapping: a near field is suggested."""
    near = close_field(model_cls, key)
    if near is not None:
        label = model_cls.model_fields[near].title or near
        return (
            f"未知字段「{key}」，已忽略。是否为 {near}（{label}）？",
            f"若是，请把键名改为 {near}；可用的字段见数据格式说明（archive-builder help 数据格式）",
        )
    return (
        f"未知字段「{key}」，已忽略",
        "请检查键名拼写；可用的字段见数据格式说明（archive-builder help 数据格式）",
    )


def _misspelt(raw: Any, path: str) -> tuple[str, str] | None:
    """(field path, key) of the key of ``raw`` next to missing ``path`` that is its misspelling."""
    if not isinstance(raw, dict) or not path:
        return None
    parts = split_path(path)
    parent: Any = raw
    for part in parts[:-1]:
        try:
            parent = parent[part]
        except (KeyError, IndexError, TypeError):
            return None
    model_cls = model_at(join_path(parts[:-1]))
    if not isinstance(parent, dict) or model_cls is None:
        return None
    for key in parent:
        if isinstance(key, str) and close_field(model_cls, key) == parts[-1]:
            return join_path([*parts[:-1], key]), key
    return None


def repeated_id_number(number: str, name: str, others: list[tuple[str, int, str]]) -> tuple[str, str]:
    """(message, hint) of an ID number that ``name`` shares with ``others``: each one's place
    (``李庄村 户 … （文件）``, or "" for the same household), member position (from 0; -1 when not known) and name.

    Every holder gets such an error (each naming the others), so neither household is built
    with a number that may be someone else's; differing names mean one number is miscopied.
    """
    places = "、".join(
        f"{place or '本户'}第 {index + 1} 位成员{other}" if index >= 0 else f"{place}中"  # found by text only
        for place, index, other in others
    )
    message = f"公民身份号码 {number}（{name}）重复：{places}也使用了这个号码"
    if any(index >= 0 and other != name for _, index, other in others):
        message += "，但姓名不同，可能有一处号码抄错了"
        hint = "请核对各人的身份证原件，改正抄错的号码"
    else:
        hint = "同一人只能登记在一户中；请核对身份证原件，从其中一户删除此人（或改正号码）"
    return message, hint
