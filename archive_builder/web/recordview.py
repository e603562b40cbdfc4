"""A household record as the web pages show it: sections of labelled fields, in Chinese."""

from __future__ import annotations

import re
from typing import Any

# --- record display -------------------------------------------------------------------------


def _show(value: Any) -> str:
    if value is None or value == "" or value == []:
        return ""
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, list | tuple):
        return "、".join(_show(v) for v in value)
    if isinstance(value, dict) and "file" in value:  # an evidence reference: its name
        return str(value.get("title") or value["file"])
    if isinstance(value, dict):
        return "；".join(f"{k} {_show(v)}" for k, v in value.items())
    return str(value)


def _title(model: Any, name: str) -> str:
    info = type(model).model_fields.get(name)
    return str(info.title) if info is not None and info.title else name


def record_sections(loaded: Any) -> list[dict[str, Any]]:
    """The record as sections: {title, fields: [(label, text)]} or {title, columns, rows}."""
    from pydantic import BaseModel

    record = loaded.record or loaded.partial
    if record is None:
        return []
    basic: list[tuple[str, str]] = []
    sections: list[dict[str, Any]] = [{"title": "基本信息", "fields": basic}]
    for name in type(record).model_fields:
        value = getattr(record, name)
        title = _title(record, name)
        if isinstance(value, list) and value and isinstance(value[0], BaseModel):
            columns = [n for n in type(value[0]).model_fields
                       if any(_show(_plain(getattr(item, n))) for item in value)]
            sections.append({
                "title": title,
                "columns": [_title(value[0], n) for n in columns],
                "rows": [[_show(_plain(getattr(item, n))) for n in columns] for item in value],
                "collapse": len(value) > 12 and name != "members",
            })
        elif isinstance(value, BaseModel):
            fields = [(_title(value, n), _show(_plain(getattr(value, n)))) for n in type(value).model_fields]
            sections.append({"title": title, "fields": [(k, v) for k, v in fields if v]})
        else:
            text = _show(_plain(value))
            if text:
                basic.append((title, text))
    return sections


def _plain(value: Any) -> Any:
    from pydantic import BaseModel

    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if hasattr(value, "isoformat") or type(value).__name__ in ("PartialDate", "VocabRef"):
        return str(value)
    return value


def field_label(path: str | None) -> str:
    """A problem's field path in Chinese, e.g. members[2].id_number → 家庭成员 第 3 项 公民身份号码."""
    if not path:
        return ""
    from ..records.models import Household

    model: Any = Household
    parts = []
    for piece in re.split(r"\.", path):
        match = re.fullmatch(r"([A-Za-z_]+)(?:\[(\d+)\])?", piece)
        if not match or model is None:
            parts.append(piece)
            continue
        name, index = match.groups()
        info = getattr(model, "model_fields", {}).get(name)
        parts.append(str(info.title) if info is not None and info.title else name)
        if index is not None:
            parts.append(f"第 {int(index) + 1} 项")
        nested = None
        if info is not None:
            nested = _inner_model(info.annotation)
        model = nested
    return " ".join(parts)


def _inner_model(annotation: Any) -> Any:
    from typing import get_args

    from pydantic import BaseModel

    stack = [annotation]
    while stack:
        item = stack.pop()
        if isinstance(item, type) and issubclass(item, BaseModel):
            return item
        stack.extend(get_args(item))
    return None
