"""Changing a household record file without losing anything (round-trip YAML).

``open_record`` reads ``household.yaml`` with ruamel.yaml's round-trip loader, which keeps
comments, key order, quoting and the way every untouched value was written. ``merge`` applies
the wanted values (plain Python data, as a form produces them) to that document, touching only
the values that really differ; ``render`` writes it back with the file's own indentation and
line endings; ``replace`` puts the new text in place atomically, but only while the file still
holds the bytes the edit started from (``EditConflict`` otherwise: never a silent overwrite).

``.json`` records are rewritten as JSON (key order kept; JSON has no comments).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import re
import threading
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from ..errors import ArchiveError

#: key of a list item in the wanted data: the position of the item it continues in the file
ORIGIN = "\0origin"
#: a wanted value meaning "remove this key"
DELETE = object()

_WRITE_LOCK = threading.Lock()


class EditConflict(ArchiveError):
    """The file changed on disk since the edit started."""

    kind = "保存冲突"


class RecordUnwritable(ArchiveError):
    """The record file cannot be parsed round-trip or written."""

    kind = "无法保存"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class EditableRecord:
    """One record file as read for editing."""

    path: Path
    raw: bytes
    sha: str
    text: str
    doc: Any  # ruamel CommentedMap (or a dict for .json)
    indent: tuple[int, int] = (2, 0)  # (mapping/sequence indent, dash offset)
    newline: str = "\n"
    bom: bool = False

    @property
    def is_json(self) -> bool:
        return self.path.suffix.lower() == ".json"


def _yaml() -> Any:
    from ruamel.yaml import YAML

    y = YAML(typ="rt")
    y.preserve_quotes = True
    y.width = 4096  # never fold a long line the clerk wrote on one line
    y.allow_unicode = True
    return y


def decode(raw: bytes) -> tuple[str, bool]:
    bom = raw.startswith(b"\xef\xbb\xbf")
    if bom:
        raw = raw[3:]
    try:
        return raw.decode("utf-8"), bom
    except UnicodeDecodeError:
        return raw.decode("gb18030"), bom


def _guess_indent(text: str) -> tuple[int, int]:
    """(indent, dash offset) of the file's block sequences: ``- a`` under a key at 0 or 2."""
    lines = text.splitlines()
    for number, line in enumerate(lines[:-1]):
        match = re.match(r"^( *)[^\s#-][^:#]*:\s*(#.*)?$", line)
        if not match:
            continue
        following = lines[number + 1]
        dash = re.match(r"^( *)- ", following)
        if dash:
            offset = len(dash.group(1)) - len(match.group(1))
            return (max(2, offset + 2), max(0, offset))
    return 2, 0


def newline_of(text: str) -> str:
    """The file's own line ending: CR LF when most of its lines end so, else LF."""
    crlf = text.count("\r\n")
    return "\r\n" if crlf and crlf * 2 > text.count("\n") else "\n"


def plain_newlines(text: str) -> str:
    """``text`` with CR LF and lone CR as LF (browsers send a textarea's line breaks as CR LF)."""
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


def parse(path: Path, raw: bytes) -> EditableRecord:
    text, bom = decode(raw)
    newline = newline_of(text)
    try:
        if path.suffix.lower() == ".json":
            doc = json.loads(text)
        else:
            doc = _yaml().load(text)
    except Exception as exc:
        raise RecordUnwritable(f"{path.name} 无法按原样读取，不能在网页中修改：{type(exc).__name__}",
                               hint="请先用 archive-builder validate 找出语法错误并在文本编辑器中改正") from exc
    if not isinstance(doc, dict):
        raise RecordUnwritable(f"{path.name} 的内容不是「键: 值」形式的一户数据，不能在网页中修改",
                               hint="请先在文本编辑器中改正")
    return EditableRecord(path, raw, sha256(raw), text, doc, _guess_indent(text), newline, bom)


def open_record(path: Path) -> EditableRecord:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        from ..errors import os_reason

        raise RecordUnwritable(f"无法读取 {path.name}：{os_reason(exc)}", hint="请检查文件权限") from exc
    return parse(path, raw)


# --- comparing and converting values ---------------------------------------------------------


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float | Decimal):
        try:
            return Decimal(str(value))
        except InvalidOperation:
            return None
    return None


def same(old: Any, new: Any) -> bool:
    """Whether the file's value ``old`` already says what ``new`` says (so it stays as written)."""
    if new is DELETE:
        return old is None
    if isinstance(old, bool) or isinstance(new, bool):
        return type(old) is type(new) and old == new
    a, b = _number(old), _number(new)
    if a is not None and b is not None:
        return a == b
    if isinstance(old, dt.date) or isinstance(new, dt.date):
        return str(old) == str(new)
    if isinstance(old, dict) and isinstance(new, dict):
        return list(old) == list(new) and all(same(old[k], new[k]) for k in old)
    if isinstance(old, list) and isinstance(new, list):
        return len(old) == len(new) and all(same(a, b) for a, b in zip(old, new, strict=True))
    if isinstance(old, str) and isinstance(new, str):
        return old.strip() == new.strip()
    if old is None or new is None:
        return old is None and new is None
    return str(old) == str(new)


def _to_yaml(value: Any, flow_lists: bool = True) -> Any:
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        out = CommentedMap()
        for k, v in value.items():
            if k != ORIGIN and v is not DELETE:
                out[k] = _to_yaml(v)
        return out
    if isinstance(value, list):
        seq = CommentedSeq(_to_yaml(v) for v in value)
        if flow_lists and all(not isinstance(v, dict | list) for v in value):
            seq.fa.set_flow_style()
        return seq
    if isinstance(value, str):
        return _text(value)
    return value


def _text(value: str) -> str:
    """A string as written to the file: never with a CR (the file's line endings are ``render``'s)."""
    if "\r" not in value:
        return value
    if type(value) is str:
        return plain_newlines(value)
    try:
        return type(value)(plain_newlines(value))  # a ruamel string keeps its style
    except TypeError:
        return plain_newlines(value)


def _to_json(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _to_json(v) for k, v in value.items() if k != ORIGIN and v is not DELETE}
    if isinstance(value, list):
        return [_to_json(v) for v in value]
    if isinstance(value, str):
        return plain_newlines(value)
    return value


# --- merging ---------------------------------------------------------------------------------


def merge(doc: dict[str, Any], wanted: dict[str, Any], *, json_mode: bool = False) -> None:
    """Apply ``wanted`` to ``doc`` in place.

    Keys absent from ``wanted`` stay as they are (fields the form does not show, unknown keys);
    a key whose wanted value is ``DELETE`` goes; a value ``same`` as the file's stays as
    written. Lists of mappings follow ``ORIGIN``: an item continues the file's item at that
    position (its comments and untouched keys kept); an item without one is new.
    """
    convert = _to_json if json_mode else _to_yaml
    for key, value in wanted.items():
        if key == ORIGIN:
            continue
        if value is DELETE:
            if key in doc and doc[key] not in (None, "", [], {}):
                del doc[key]  # an empty value written in the file stays as it was
            continue
        if key not in doc:
            if value not in ([], {}):  # an empty list the form always sends is not a change
                doc[key] = convert(value)
            continue
        old = doc[key]
        if isinstance(old, dict) and isinstance(value, dict) and not _is_amounts(value):
            merge(old, value, json_mode=json_mode)
        elif isinstance(old, dict) and isinstance(value, dict):
            _merge_amounts(old, value, convert)
        elif isinstance(old, list) and isinstance(value, list) and any(isinstance(v, dict) for v in value):
            _merge_list(old, value, convert, json_mode)
        elif isinstance(old, list) and isinstance(value, list) and not any(isinstance(v, dict) for v in old):
            if not same(old, value):
                doc[key] = _flow_like(old, convert(value))
        elif not same(old, value):
            doc[key] = convert(value)


class Amounts(dict):  # type: ignore[type-arg]
    """A wanted mapping of free keys to amounts (an income breakdown): merged key by key."""


def _is_amounts(value: Any) -> bool:
    return isinstance(value, Amounts)


def _merge_amounts(old: dict[str, Any], new: dict[str, Any], convert: Any) -> None:
    for key in [k for k in old if k not in new]:
        del old[key]
    for key, value in new.items():
        if key not in old or not same(old[key], value):
            old[key] = convert(value)


def _scalar_item_kept(old: Any, wanted: dict[str, Any]) -> bool:
    """Whether a list item written as a bare value (an evidence path) says what ``wanted`` says."""
    if isinstance(old, dict | list):
        return False
    rest = {k: v for k, v in wanted.items() if k != ORIGIN and v is not DELETE and v not in ([], {})}
    return set(rest) <= {"file"} and same(old, rest.get("file"))


def _flow_like(old: Any, new: Any) -> Any:
    fa_old, fa_new = getattr(old, "fa", None), getattr(new, "fa", None)
    if fa_old is not None and fa_new is not None and not fa_old.flow_style():
        fa_new.set_block_style()
    return new


def _merge_list(old: list[Any], wanted: list[Any], convert: Any, json_mode: bool) -> None:
    items: list[Any] = []
    origins: list[int | None] = []
    for value in wanted:
        found = value.get(ORIGIN) if isinstance(value, dict) else None
        origin: int = found if isinstance(found, int) else -1
        known = 0 <= origin < len(old) and origin not in origins
        if known and isinstance(old[origin], dict):
            merge(old[origin], value, json_mode=json_mode)
            items.append(old[origin])
            origins.append(origin)
        elif known and _scalar_item_kept(old[origin], value):
            items.append(old[origin])  # a bare path (``- 照片/a.jpg``) the form did not change
            origins.append(origin)
        else:
            items.append(convert(value))
            origins.append(None)
    if origins == list(range(len(old))):
        return  # edited in place: nothing added, removed or moved
    comments = getattr(old, "ca", None)
    if comments is not None:  # comments between items follow positions: keep only the first ones'
        kept = {n: comments.items[o] for n, o in enumerate(origins) if o is not None and o in comments.items}
        comments.items.clear()
        comments.items.update(kept)
    old[:] = items


# --- writing ---------------------------------------------------------------------------------


def render(record: EditableRecord) -> bytes:
    """The record's document as file bytes, in the file's own indentation and line endings."""
    if record.is_json:
        text = json.dumps(record.doc, ensure_ascii=False, indent=2) + "\n"
    else:
        y = _yaml()
        indent, offset = record.indent
        y.indent(mapping=2, sequence=indent, offset=offset)
        buffer = io.StringIO()
        y.dump(record.doc, buffer)
        # ruamel keeps the CR of a CR LF file inside comments: one line ending for all first
        text = plain_newlines(buffer.getvalue())
    if record.newline != "\n":
        text = text.replace("\n", record.newline)
    data = text.encode("utf-8")
    return b"\xef\xbb\xbf" + data if record.bom else data


def replace(path: Path, data: bytes, expected_sha: str) -> None:
    """Write ``data`` to ``path`` atomically if the file still holds the bytes of ``expected_sha``."""
    from ..archive.outdir import atomic_write

    with _WRITE_LOCK:
        try:
            current = sha256(path.read_bytes())
        except OSError:
            current = ""
        if current != expected_sha:
            raise EditConflict(f"{path.name} 在您打开编辑页之后已被修改（可能是他人在文本编辑器或另一个浏览器中保存了）",
                               hint="为避免覆盖他人的修改，本次没有保存。请对照两个版本，在最新数据上重新修改。")
        atomic_write(path, data)
