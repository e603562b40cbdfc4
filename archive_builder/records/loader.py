"""Reading a data directory (record-format.md §1–4) into records with source positions.

Nothing here writes into the data directory. A broken file is a problem attached to its
household, never an exception: the other households still load. Only a data directory that
cannot be used at all (missing, no ``archive.toml``, unreadable) raises ``DataDirError``.

Positions: YAML is composed node by node (PyYAML ``compose``) so every key keeps its line and
column; JSON keys are found by a light text search. ``LoadedHousehold.position(path)`` gives
the line/column of a field path or of its nearest present parent.

Why one module of this size: reading records with source positions (YAML with line and
column, JSON), the fast single-household path and the record cache hooks share the parsed
representation.
"""

from __future__ import annotations

import bisect
import copy
import functools
import json
import os
import re
import sys
import unicodedata
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import yaml
from pydantic import ValidationError

from ..config import (
    ArchiveConfig,
    VillageConfig,
    load_archive_config,
    load_village_config,
    require_usable,
)
from ..errors import DataDirError, HouseholdNotFoundError, os_reason
from ..problems import Problem, error, warning
from ..textmatch import edit_distance
from .cache import RecordCache
from .layout import HOUSEHOLD_FILES, OUTPUT_MARKER  # noqa: F401 - imported from here
from .layout import HOUSEHOLD_ID_LINE as _HOUSEHOLD_ID
from .layout import record_files as _record_files
from .layout import subfolders as _subfolders
from .messages import problems_from_validation_error, repeated_id_number
from .models import Household, join_path, split_path

Position = tuple[int | None, int | None]


class Positions(Mapping[str, tuple[int, int]]):
    """Field path → (line, column) in the record file, kept compact.

    A record has ~550 positions; as a dict of tuples they took ~43 KB a household, more than the
    record itself. Here the paths are interned strings (the same paths recur in every record)
    in one sorted tuple, and the positions packed into one array: ~8 KB. Looked up only to
    place a problem, by binary search.
    """

    __slots__ = ("_keys", "_packed")

    def __init__(self, items: Mapping[str, tuple[int, int]] | None = None) -> None:
        items = items or {}
        keys = sorted(items)  # the paths are unique: no need to compare positions
        self._keys = tuple(map(sys.intern, keys))
        self._packed = array("Q", [(line << 32) | column for line, column in map(items.__getitem__, keys)])

    def _index(self, key: str) -> int:
        i = bisect.bisect_left(self._keys, key)
        return i if i < len(self._keys) and self._keys[i] == key else -1

    def __getitem__(self, key: str) -> tuple[int, int]:
        i = self._index(key) if isinstance(key, str) else -1
        if i < 0:
            raise KeyError(key)
        packed = self._packed[i]
        return packed >> 32, packed & 0xFFFFFFFF

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._index(key) >= 0

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Positions):
            return self._keys == other._keys and self._packed == other._packed
        return Mapping.__eq__(self, other)

    __hash__ = None  # type: ignore[assignment]

    def __reduce__(self) -> Any:
        return (_positions, (self._keys, self._packed))


class ParkedPositions(Positions):
    """The few positions a parked household keeps (see ``park``)."""

    __slots__ = ()

    def __reduce__(self) -> Any:
        return (ParkedPositions, (dict(self.items()),))


def _positions(keys: tuple[str, ...], packed: Any) -> Positions:
    # unpickling: the paths interned again, so records from the cache share them too
    positions = Positions.__new__(Positions)
    positions._keys = tuple(sys.intern(k) for k in keys)
    positions._packed = packed
    return positions


@dataclass
class LoadedHousehold:
    """One household folder as read: the record (None when unusable) and what went wrong."""

    folder: Path
    file: Path | None
    household_id: str
    record: Household | None
    #: the parsed mapping when the model rejected it (problems are reported from it); for a
    #: valid record only what the rules read of it (see ``_raw_for_rules``)
    raw: dict[str, Any] | None
    positions: Mapping[str, tuple[int, int]]  # a Positions
    problems: list[Problem]
    #: ``file`` relative to the data directory, with forward slashes (for messages)
    display: str = ""
    #: key of this household's parse in a RecordCache ("" when loaded without one)
    cache_key: str = ""
    #: when ``record`` is None because of wrong values: the record with those values left out,
    #: so the validator can still check the rest. Never render from it.
    partial: Household | None = None
    #: a stub's remembered results (``archive.known.KnownHousehold``); None when read
    known: Any = None

    def position(self, path: str) -> Position:
        """Return (line, column) of ``path`` or of its nearest parent present in the file."""
        parts = split_path(path)
        while parts:
            found = self.positions.get(join_path(parts))
            if found:
                return found
            parts.pop()
        return None, None

    def evidence_path(self, file: str) -> Path | None:
        """Return the resolved path of an evidence file, or None when it leaves the folder."""
        try:
            return resolve_evidence(self.folder, file)
        except EvidencePathError:
            return None


@dataclass(frozen=True, slots=True)
class ParkedPerson:
    id_number: str
    name: str


@dataclass(frozen=True, slots=True)
class ParkedRecord:
    """A record put back in the record cache while other households load (flat memory): what
    the rules across households read of it (each member's ID number and name), ~60 KB less."""

    members: tuple[ParkedPerson, ...]


def park(household: LoadedHousehold) -> None:
    """Replace the household's record (or partial record) by a :class:`ParkedRecord`, and its
    source positions by those the rules across households report (户编号, ID numbers).

    Only for a household whose parse is in the record cache (``cache_key``); ``unpark``
    brings the record, its positions and raw mapping back before anything else reads them.
    A parked household keeps ~1 KB of its ~10 KB (a county of 20,000: 180 MB less).
    """
    if not household.cache_key:
        return
    parked = False
    for name in ("record", "partial"):
        value = getattr(household, name)
        if value is not None and not isinstance(value, ParkedRecord):
            people = tuple(ParkedPerson(str(getattr(m, "id_number", "") or ""), str(getattr(m, "name", "") or ""))
                           for m in getattr(value, "members", None) or ())
            setattr(household, name, ParkedRecord(people))
            parked = True
        if isinstance(getattr(household, name), ParkedRecord):
            parked = True
    if parked and type(household.positions) is Positions:
        value = household.record if household.record is not None else household.partial
        paths = ["household_id", *(f"members[{i}].id_number" for i in range(len(value.members)))]  # type: ignore[union-attr]
        kept: dict[str, tuple[int, int]] = {}
        for path in paths:
            line, column = household.position(path)
            if line is not None and column is not None:
                kept[path] = (line, column)
        household.positions = ParkedPositions(kept)
        household.raw = None


def unpark(household: LoadedHousehold, cache: RecordCache | None, root: Path, village_name: str) -> None:
    """Bring back a parked household's record: from the record cache, else parsed again."""
    if not isinstance(household.record, ParkedRecord) and not isinstance(household.partial, ParkedRecord):
        return
    found = cache.get(household.cache_key) if cache is not None else None
    if found is None:  # the cache could not be written: read the file again
        found = load_household_folder(root, household.folder, village_name)
    assert found is not None
    household.record, household.partial = found.record, found.partial
    if type(household.positions) is not Positions:  # parked: what validation reads comes back too
        household.positions, household.raw = found.positions, found.raw


@dataclass
class Village:
    """One village folder."""

    path: Path
    config: VillageConfig
    households: list[LoadedHousehold] = field(default_factory=list)
    #: ``village.toml`` relative to the data directory
    display: str = ""
    #: the errors of its ``village.toml``: its code or name cannot be trusted, so it is not built
    errors: tuple[Problem, ...] = ()


@dataclass
class Dataset:
    """A whole data directory."""

    root: Path
    config: ArchiveConfig
    villages: list[Village]
    #: problems not tied to one household (archive.toml, village.toml, folder layout)
    problems: list[Problem]
    #: village folders with households but no ``village.toml`` (not read; an error in ``problems``)
    unread: list[Path] = field(default_factory=list)

    def households(self) -> Iterator[tuple[Village, LoadedHousehold]]:
        """Yield every (village, household) in folder order."""
        for village in self.villages:
            for household in village.households:
                yield village, household

    def household_ids(self) -> list[str]:
        """Return every 户编号 of the data directory."""
        return [h.household_id for _, h in self.households()]


# --- evidence paths ------------------------------------------------------------------------


class EvidencePathError(ValueError):
    """An evidence path that leaves the household folder (or is empty)."""

    def __init__(self, code: str, message: str, hint: str) -> None:
        super().__init__(message)
        self.code = code  # empty | absolute | parent | escape
        self.message = message
        self.hint = hint


_DRIVE = re.compile(r"^[A-Za-z]:")


def resolve_evidence(folder: Path, file: str) -> Path:
    """Return the absolute path of evidence ``file`` inside ``folder``; raise EvidencePathError."""
    text = file.strip().replace("\\", "/")  # records written on Windows use backslashes
    keep = "请把文件复制到本户文件夹中，并写相对于本户文件夹的路径，如 照片/门前.jpg"
    if not text:
        raise EvidencePathError(
            "empty", "佐证材料路径为空", "请填写文件路径，或删除该项"
        )
    if any(ord(ch) < 32 or ch == "\x7f" for ch in text):
        raise EvidencePathError(
            "control",
            f"佐证材料路径「{file.encode('unicode_escape').decode()}」含有不可见的控制字符",
            "请重新输入该路径（常见于从其他软件复制粘贴），只保留文件夹名和文件名",
        )
    if text.startswith("/") or _DRIVE.match(text):
        raise EvidencePathError(
            "absolute",
            f"佐证材料路径「{file}」是绝对路径，不能指向本户文件夹以外",
            keep,
        )
    if ".." in text.split("/"):
        raise EvidencePathError(
            "parent", f"佐证材料路径「{file}」含有「..」，指向了本户文件夹以外", keep
        )
    base = _resolved_folder(os.path.abspath(folder))
    try:
        resolved = _resolve_below(base, _normalised_name(base, text))
    except (OSError, RuntimeError) as exc:  # a symbolic link that points to itself (a loop)
        raise EvidencePathError(
            "loop",
            f"佐证材料「{file}」是一个循环的符号链接（指向自己），无法打开",
            "请删除这个链接，把实际文件复制到本户文件夹中",
        ) from exc
    if not resolved.is_relative_to(base):
        raise EvidencePathError(
            "escape",
            f"佐证材料「{file}」是一个链接，实际指向本户文件夹以外的 {resolved}",
            "请把实际文件复制到本户文件夹中，不要使用快捷方式或符号链接",
        )
    return resolved


def _normalised_name(base: Path, relative: str) -> str:
    """``relative`` with each missing component replaced by the folder's entry that is the same
    name after Unicode normalisation (macOS writes names decomposed, NFD, and records are
    typed composed, NFC: the two look identical). Costs nothing when the file exists."""
    if os.path.lexists(base / relative) or relative.isascii():
        return relative
    parts = [p for p in relative.split("/") if p not in ("", ".")]
    found = base
    out: list[str] = []
    for part in parts:
        if not os.path.lexists(found / part):
            wanted = unicodedata.normalize("NFC", part)
            try:
                names = os.listdir(found)
            except OSError:
                return relative
            match = next((n for n in names if unicodedata.normalize("NFC", n) == wanted), None)
            if match is None:
                return relative
            part = match
        out.append(part)
        found = found / part
    return "/".join(out)


def evidence_source(folder: Path, file: str) -> str:
    """The absolute path to read evidence ``file`` of ``folder`` from, as ``resolve_evidence``
    finds it (backslashes as separators, names matched after Unicode normalisation); a path
    that it refuses falls back to the plain join (validation reports it, nothing reads it)."""
    try:
        return str(resolve_evidence(folder, file))
    except EvidencePathError:
        return os.path.abspath(folder / file.replace("\\", "/"))


@functools.lru_cache(maxsize=256)
def _resolved_folder(folder: str) -> Path:
    """``Path(folder).resolve()`` of an absolute ``folder``, once per household folder and
    process (a build resolves each folder for every evidence file, in validation and in
    planning). Callers pass ``os.path.abspath``: a relative name would outlive a ``chdir``."""
    return Path(folder).resolve()


def _resolve_below(base: Path, relative: str) -> Path:
    """``(base / relative).resolve()`` for a resolved ``base``: only the components below it
    are looked at (``realpath`` would ``lstat`` every component of the whole path again).
    A symbolic link among them is resolved in full, so an escape is still seen. Windows has
    junctions as well, which ``is_symlink`` does not report: there the path is resolved."""
    if os.name == "nt":
        return (base / relative).resolve()
    path = base
    for part in relative.split("/"):
        if part in ("", "."):
            continue
        path = path / part
        try:
            link = path.is_symlink()
        except OSError:  # e.g. a name longer than the file system allows: no such file
            link = False
        if link:
            return (base / relative).resolve()
    return path


def real_path(folder: Path, file: str) -> str:
    """``os.path.realpath(folder / file)``, cheaper for the usual relative path (see above)."""
    try:
        if file and "\\" not in file and not file.startswith("/") and ".." not in file.split("/"):
            return str(_resolve_below(_resolved_folder(os.path.abspath(folder)), file))
    except (OSError, RuntimeError):  # a symbolic link loop
        pass
    return os.path.realpath(folder / file)


# --- reading files -------------------------------------------------------------------------


_BaseLoader: Any = getattr(
    yaml, "CSafeLoader", yaml.SafeLoader
)  # libyaml is ~20× faster


_STR = "tag:yaml.org,2002:str"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_ScalarNode, _SequenceNode = yaml.ScalarNode, yaml.SequenceNode


class _Loader(_BaseLoader):  # type: ignore[misc,valid-type]
    """Safe loader that keeps an impossible date (2024-02-30) as text for the validator.

    ``resolve`` is memoised: a safe loader's tag for a scalar depends only on its kind, text
    and implicitness (there are no path resolvers), and records repeat the same keys and
    short values (是, 男, dates), whose implicit resolvers' regular expressions were a fifth
    of parsing a record.
    """

    _tags: ClassVar[dict[str, str]] = {}  # plain scalar text -> tag, shared by every loader

    # Called by libyaml's composer for every node, to track path resolvers, which a safe
    # loader has none of: builtins that accept the arguments and do nothing are cheaper than
    # the Python methods (a tenth of composing). Builtins do not bind to the instance.
    descend_resolver: Any = {}.get  # (parent, index) -> index, ignored
    ascend_resolver: Any = int  # () -> 0, ignored

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        # What BaseResolver.resolve returns when there are no path resolvers, without its
        # generic steps: quoted scalars and collections get the default tags; a plain scalar's
        # tag depends only on its text (called once per scalar: ~a third of composing).
        if self.yaml_path_resolvers:
            return super().resolve(kind, value, implicit)
        if kind is _ScalarNode:
            if not implicit[0]:
                return _STR
            tag = self._tags.get(value)
            if tag is None:
                tag = super().resolve(kind, value, implicit)
                if len(value) <= 48:
                    if len(self._tags) >= 20_000:
                        self._tags.clear()
                    self._tags[value] = tag
            return tag
        if kind is _SequenceNode:
            return _SEQ
        return _MAP


def _timestamp(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    try:
        return yaml.SafeLoader.construct_yaml_timestamp(loader, node)  # type: ignore[arg-type]
    except ValueError:
        return loader.construct_scalar(node)  # type: ignore[arg-type]


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp)


def load_yaml(text: str) -> Any:
    """``yaml.safe_load`` with libyaml when it is installed (~13 ms → ~1 ms for a household),
    keeping an impossible date as text like the record loader."""
    return yaml.load(text, Loader=_Loader)  # _Loader is a safe loader

#: (text PyYAML's problem or context contains, what it means, how to fix), first match wins
_YAML_MESSAGES = (
    (
        "found a tab character",
        "含有制表符（Tab）",
        "YAML 只能用空格缩进，请把 Tab 换成空格",
    ),
    (
        "found character '\\t'",
        "含有制表符（Tab）",
        "YAML 只能用空格缩进，请把 Tab 换成空格",
    ),
    (
        "mapping values are not allowed",
        "此处不能出现「: 」",
        "值里含有英文冒号时，请给整个值加引号",
    ),
    (
        "could not find expected ':'",
        "缺少英文冒号「:」",
        "请检查这一行或上一行是否写成了「键 值」或用了中文冒号",
    ),
    ("found unexpected end of stream", "文件意外结束", "请检查引号或括号是否成对"),
    (
        "found undefined alias",
        "使用了未定义的别名（*）",
        "请删除该别名或先定义对应的锚点（&）；值以 * 开头时请给整个值加引号",
    ),
    (
        "did not find expected ',' or ']'",
        "方括号「[」没有闭合，或列表的各项之间缺少英文逗号",
        "请补上「]」，或在各项之间加英文逗号「,」；值以 [ 开头时请给整个值加引号",
    ),
    (
        "did not find expected ',' or '}'",
        "花括号「{」没有闭合，或各项之间缺少英文逗号",
        "请补上「}」，或在各项之间加英文逗号「,」；值以 { 开头时请给整个值加引号",
    ),
    (
        "found character that cannot start any token",
        "含有不能作为值开头的字符（如 @、`、%）",
        "以这些字符开头的值请给整个值加引号，如 '@某某'",
    ),
    (
        "block sequence entries are not allowed",
        "此处不能出现列表项「- 」",
        "列表项要另起一行，并比所属的键多缩进；若「- 」是值的一部分，请给整个值加引号",
    ),
    (
        "did not find expected node content",
        "此处缺少值，或有多余的括号",
        "请检查这一行的括号和引号是否成对",
    ),
    (
        "did not find expected <document start>",
        "文件结束标记后还有内容",
        "请删除「...」或「---」以及之后多余的内容",
    ),
    (
        "did not find expected alphabetic or numeric character",
        "锚点或别名（& 或 *）后缺少名字",
        "值以 & 或 * 开头时请给整个值加引号",
    ),
    ("expected <block end>", "缩进不一致", "同一层的键要对齐；请检查这一行的缩进"),
    (
        "did not find expected key",
        "缩进不一致或缺少键",
        "同一层的键要对齐；请检查这一行的缩进，以及引号后是否还有多余的文字",
    ),
    (
        "did not find expected '-' indicator",
        "列表项缩进不一致",
        "同一列表的各项「- 」要对齐",
    ),
    ("found duplicate anchor", "锚点（&）重复", "请给每个锚点起不同的名字"),
    (
        "expected a single document",
        "一个文件中只能有一户的数据",
        "请删除「---」分隔的多余部分",
    ),
    (
        "could not determine a constructor",
        "使用了不支持的标签（!）",
        "请删除以「!」开头的标签；值以 ! 开头时请给整个值加引号",
    ),
    (
        "found undefined tag handle",
        "使用了不支持的标签（!）",
        "请删除以「!」开头的标签；值以 ! 开头时请给整个值加引号",
    ),
    (
        "found unknown escape character",
        "字符串中有无效的转义符「\\」",
        "请改用单引号，或把 \\ 写成 \\\\",
    ),
    (
        "did not find expected hexdecimal number",
        "字符串中有无效的转义符「\\x」或「\\u」",
        "请改用单引号，或把 \\ 写成 \\\\",
    ),
    ("found unhashable key", "键不能是列表或映射", "请检查这一行的键名"),
    (
        "while scanning a block scalar",
        "多行文字（| 或 >）的写法不对",
        "「|」或「>」后面应直接换行，下面各行比键多缩进",
    ),
)

_JSON_MESSAGES = (
    ("Expecting ',' delimiter", "缺少逗号", "请在两项之间加英文逗号「,」"),
    (
        "Expecting property name",
        "键名应使用英文双引号（或多了一个逗号）",
        "请检查键名的引号和末尾多余的逗号",
    ),
    ("Expecting ':' delimiter", "缺少英文冒号「:」", "请在键名后加英文冒号"),
    ("Expecting value", "缺少值或有多余的逗号", "请检查该处的值"),
    ("Unterminated string", "字符串的引号没有闭合", "请补上英文双引号"),
    ("Extra data", "数据结束后还有多余内容", "请删除多余内容"),
    (
        "Invalid control character",
        "字符串中有换行或控制字符",
        "字符串中的换行请写成 \\n",
    ),
    ("Invalid \\escape", "字符串中有无效的转义符「\\」", "请把 \\ 写成 \\\\"),
)


def _translate(
    message: str, table: tuple[tuple[str, str, str], ...]
) -> tuple[str, str]:
    for needle, text, hint in table:
        if needle in message:
            return text, hint
    return "格式不对", "请检查这一行及上一行的缩进、冒号和引号"


def _line_column(text: str, position: Any) -> tuple[int | None, int | None]:
    """1-based line and column of character ``position`` of ``text`` (None when unknown)."""
    if not isinstance(position, int) or position < 0:
        return None, None
    before = text[:position]
    return before.count("\n") + 1, position - (before.rfind("\n") + 1) + 1


@dataclass
class _Parsed:
    data: Any = None
    positions: dict[str, tuple[int, int]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    ok: bool = False


def _decode(raw: bytes, display: str, parsed: _Parsed) -> str | None:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        text = raw.decode("gb18030")
    except UnicodeDecodeError:
        parsed.problems.append(
            error(
                "文件不是 UTF-8 编码，无法读取",
                "请用记事本或 WPS 另存为 UTF-8 编码",
                file=display,
            )
        )
        return None
    parsed.problems.append(
        warning(
            "文件是 GBK 编码，已按 GBK 读取",
            "建议用记事本或 WPS 另存为 UTF-8 编码，以免在其他电脑上出现乱码",
            file=display,
        )
    )
    return text


def _parse_yaml(text: str, display: str, parsed: _Parsed) -> None:
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            parsed.data = None
        else:
            before = len(parsed.problems)  # e.g. how the file was decoded: kept
            try:
                parsed.data = _YamlBuilder(loader, parsed, display).value(node, "")
            except _Unusual:
                parsed.positions.clear()
                del parsed.problems[before:]
                _walk_yaml(node, [], parsed, display, set())
                parsed.data = loader.construct_document(node)
        parsed.ok = True
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        what, hint = _translate(f"{exc.problem} {exc.context}", _YAML_MESSAGES)
        lines = text.splitlines()
        if (
            mark
            and mark.line < len(lines)
            and "\t" in lines[mark.line][: mark.column + 1]
        ):
            what, hint = _translate("found character '\\t'", _YAML_MESSAGES)
        parsed.problems.append(
            error(
                f"YAML 格式错误：{what}",  # the path is the problem's location: not repeated
                hint,
                file=display,
                line=mark.line + 1 if mark else None,
                column=mark.column + 1 if mark else None,
            )
        )
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow (pure-Python reader)
        line, column = _line_column(text, exc.position)
        parsed.problems.append(
            error(
                f"YAML 格式错误：含有不允许的字符 U+{exc.character:04X}" if isinstance(exc.character, int)
                else "YAML 格式错误：含有不允许的字符",
                "请删除该字符（常见于从 Word 或网页复制粘贴），或重新输入这一行",
                file=display,
                line=line,
                column=column,
            )
        )
    except RecursionError:
        parsed.problems.append(
            error(
                "YAML 格式错误：嵌套层数太多",
                "请检查文件内容是否完整，或是否误粘贴了其他内容",
                file=display,
            )
        )
    except (yaml.YAMLError, ValueError, TypeError) as exc:
        what, hint = _translate(str(exc), _YAML_MESSAGES)
        parsed.problems.append(
            error(
                f"YAML 格式错误：{what}",
                hint if what != "格式不对" else "请检查文件内容是否完整",
                file=display,
            )
        )
    finally:
        loader.dispose()


class _Unusual(Exception):
    """A document ``_YamlBuilder`` leaves to PyYAML's constructor (tags, merge keys, cycles)."""



class _YamlBuilder:
    """Build a document's data from its node tree, recording each key's position and the
    duplicated keys on the way (what ``_walk_yaml`` and ``construct_document`` do, in one
    pass: parsing records was ~0.9 CPU-seconds of a 231-household build, a third of it those
    two walks).

    Plain mappings, sequences and strings are built here; other scalars (numbers, dates,
    booleans, null) by the loader's constructors, as before. Anything else — explicit tags,
    merge keys (``<<``), an alias inside itself — raises ``_Unusual`` and the document is
    built the old way (tested: both routes give the same data, positions and problems).
    """

    def __init__(self, loader: Any, parsed: _Parsed, display: str) -> None:
        self.loader = loader
        self.parsed = parsed
        self.display = display
        self.built: dict[int, Any] = {}  # id(node) -> value: an alias gives the same object
        self.building: set[int] = set()

    def value(self, node: yaml.Node, path: str) -> Any:
        if node.__class__ is yaml.ScalarNode:  # most nodes: no alias bookkeeping needed
            return self.scalar(node)
        key = id(node)
        if key in self.built:
            return self.built[key]
        if key in self.building:
            raise _Unusual  # a recursive alias
        tag = node.tag
        if isinstance(node, yaml.ScalarNode):
            value = self.scalar(node)
        elif isinstance(node, yaml.MappingNode) and tag == _MAP:
            self.building.add(key)
            value = self.mapping(node, path)
            self.building.discard(key)
        elif isinstance(node, yaml.SequenceNode) and tag == _SEQ:
            self.building.add(key)
            positions = self.parsed.positions
            value = []
            for index, item in enumerate(node.value):
                here = f"{path}[{index}]"
                if here not in positions:
                    mark = item.start_mark
                    positions[here] = (mark.line + 1, mark.column + 1)
                value.append(self.value(item, here))
            self.building.discard(key)
        else:
            raise _Unusual
        self.built[key] = value
        return value

    def scalar(self, node: yaml.ScalarNode) -> Any:
        """A scalar's value: its text, or what the loader's constructor makes of it. Numbers,
        booleans, null and dates are immutable and recur (是, 0, 2024-01-01): memoised."""
        tag = node.tag
        if tag == _STR:
            return node.value
        if tag not in _IMMUTABLE:
            return self.loader.construct_object(node, deep=True)
        key = (tag, node.value)
        try:
            return _SCALARS[key]
        except KeyError:
            pass
        value = self.loader.construct_object(node, deep=True)
        if len(_SCALARS) >= 20_000:
            _SCALARS.clear()
        _SCALARS[key] = value
        return value

    def mapping(self, node: yaml.MappingNode, path: str) -> dict[Any, Any]:
        positions = self.parsed.positions
        out: dict[Any, Any] = {}
        first: dict[str, int] = {}
        for key_node, value_node in node.value:
            if key_node.__class__ is not yaml.ScalarNode:
                raise _Unusual
            name = key_node.value
            if key_node.tag == _STR:
                key = name
            elif key_node.tag == "tag:yaml.org,2002:merge":
                raise _Unusual
            else:
                key = self.scalar(key_node)
            mark = key_node.start_mark
            line = mark.line + 1
            here = f"{path}.{name}" if path else name
            if name in first:
                self.parsed.problems.append(
                    error(
                        f"键「{name}」重复出现（第 {first[name]} 行和第 {line} 行），只有后一个会被读取",
                        "请删除或合并重复的项",
                        file=self.display,
                        line=line,
                        column=mark.column + 1,
                        field=here,
                    )
                )
            else:
                first[name] = line
            if here not in positions:
                positions[here] = (line, mark.column + 1)
            if value_node.__class__ is yaml.ScalarNode and value_node.tag == _STR:
                out[key] = value_node.value
            else:
                out[key] = self.value(value_node, here)
        return out


#: tags of the scalars the safe loader makes immutable values of (what implicit resolving
#: gives plain scalars); ``_YamlBuilder.scalar`` memoises them by tag and text
_IMMUTABLE = frozenset(
    f"tag:yaml.org,2002:{name}" for name in ("bool", "int", "float", "null", "timestamp")
)
_SCALARS: dict[tuple[str, str], Any] = {}


def _walk_yaml(
    node: yaml.Node,
    path: list[str | int],
    parsed: _Parsed,
    display: str,
    seen: set[int],
) -> None:
    if id(node) in seen:  # an alias: its nodes were walked where the anchor stands
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        first: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            line, column = key_node.start_mark.line + 1, key_node.start_mark.column + 1
            if key is None:
                continue
            if key in first:
                parsed.problems.append(
                    error(
                        f"键「{key}」重复出现（第 {first[key]} 行和第 {line} 行），只有后一个会被读取",
                        "请删除或合并重复的项",
                        file=display,
                        line=line,
                        column=column,
                        field=join_path([*path, key]),
                    )
                )
            first.setdefault(key, line)
            child = [*path, key]
            parsed.positions.setdefault(join_path(child), (line, column))
            _walk_yaml(value_node, child, parsed, display, seen)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            child = [*path, index]
            parsed.positions.setdefault(
                join_path(child), (item.start_mark.line + 1, item.start_mark.column + 1)
            )
            _walk_yaml(item, child, parsed, display, seen)


def _parse_json(text: str, display: str, parsed: _Parsed) -> None:
    duplicates: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in items:
            if key in result:
                duplicates.append(key)
            result[key] = value
        return result

    try:
        parsed.data = json.loads(text, object_pairs_hook=pairs, parse_float=str)
    except json.JSONDecodeError as exc:
        what, hint = _translate(exc.msg, _JSON_MESSAGES)
        parsed.problems.append(
            error(
                f"JSON 格式错误：{what}",
                hint,
                file=display,
                line=exc.lineno,
                column=exc.colno,
            )
        )
        return
    except (ValueError, RecursionError):
        parsed.problems.append(
            error(
                "JSON 格式错误：嵌套层数太多或内容无法识别",
                "请检查文件内容是否完整",
                file=display,
            )
        )
        return
    parsed.ok = True
    _json_positions(text, parsed.data, [], 0, parsed.positions)
    for key in duplicates:
        parsed.problems.append(
            error(
                f"键「{key}」重复出现，只有后一个会被读取",
                "请删除或合并重复的项",
                file=display,
            )
        )


def _json_positions(
    text: str,
    value: Any,
    path: list[str | int],
    start: int,
    out: dict[str, tuple[int, int]],
) -> int:
    """Record the position of each key by searching its quoted name after ``start`` (light)."""
    cursor = start
    if isinstance(value, dict):
        for key, child in value.items():
            found = text.find(json.dumps(key, ensure_ascii=False), cursor)
            if found < 0:
                found = text.find(json.dumps(key), cursor)
            if found < 0:
                continue
            line = text.count("\n", 0, found) + 1
            column = found - (text.rfind("\n", 0, found) + 1) + 1
            out.setdefault(join_path([*path, key]), (line, column))
            cursor = _json_positions(text, child, [*path, key], found + 1, out)
    elif isinstance(value, list):
        for index, child in enumerate(value):
            cursor = _json_positions(text, child, [*path, index], cursor, out)
    return cursor


def read_record_file(path: Path, display: str) -> _Parsed:
    """Return the parsed data, key positions and syntax problems of one record file."""
    parsed = _Parsed()
    try:
        raw = path.read_bytes()
    except OSError as exc:
        parsed.problems.append(
            error(
                f"无法读取该文件：{os_reason(exc)}",
                "请检查文件权限",
                file=display,
            )
        )
        return parsed
    text = _decode(raw, display, parsed)
    if text is None:
        return parsed
    if path.suffix.lower() == ".json":
        _parse_json(text, display, parsed)
    else:
        _parse_yaml(text, display, parsed)
    if parsed.ok and not _plain_text(text):
        parsed.data = _checked_text(parsed.data, [], parsed, display)
    return parsed


def _plain_text(text: str) -> bool:
    """True when no value parsed from ``text`` can need ``_checked_text``: the file is no
    longer than one value may be, and has neither a character it refuses nor a backslash (an
    escape such as ``\\u000b`` is the only other way to write one). Most records: walking
    every value for the check was a sixth of parsing a record."""
    return len(text) <= MAX_TEXT and "\\" not in text and not _BAD_TEXT.search(text)


#: longest text a field may hold (a 户说明 of several pages is ~3,000 characters)
MAX_TEXT = 10_000
#: lone surrogates (not Unicode text), C0/C1 control characters but tab and line breaks,
#: and the non-characters U+FFFE/U+FFFF: none can be printed or written to XML or UTF-8
_BAD_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _checked_text(value: Any, path: list[str | int], parsed: _Parsed, display: str) -> Any:
    """``value`` with its text made printable, each repair or refusal a problem of its field.

    A lone surrogate (``"\\ud800"`` in JSON) is not text at all: an error, shown as U+FFFD.
    Control characters (Word's Shift+Enter is U+000B) are a warning: a vertical tab becomes a
    line break, the others are removed. Text longer than ``MAX_TEXT`` is an error.
    """
    if isinstance(value, str):
        if len(value) > MAX_TEXT:
            _text_problem(parsed, display, path, error,
                          f"太长（{len(value)} 个字符，上限 {MAX_TEXT}）",
                          "请核对该项内容，删去多余的文字（可能是误粘贴了整个文件）")
            return value[:MAX_TEXT]
        if not _BAD_TEXT.search(value):
            return value
        if _SURROGATE.search(value):
            codes = sorted({f"U+{ord(c):04X}" for c in _SURROGATE.findall(value)})
            _text_problem(parsed, display, path, error,
                          f"含有无效的 Unicode 字符（单独的代理项 {'、'.join(codes[:3])}），不是有效的文字",
                          "请重新输入该项（常见于其他程序错误导出的 JSON 文件）")
            value = _SURROGATE.sub("\ufffd", value)
        controls = _BAD_TEXT.findall(value)
        if controls:
            codes = sorted({f"U+{ord(c):04X}" for c in controls})
            _text_problem(parsed, display, path, warning,
                          f"含有不可见的控制字符（{'、'.join(codes[:5])}），打印时已去除（垂直制表符 U+000B 改为换行）",
                          "请重新输入该项（常见于从 Word 或网页复制粘贴），或确认打印结果")
            value = _BAD_TEXT.sub(lambda m: "\n" if m.group() == "\x0b" else "", value)
        return value
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            name = _checked_text(key, path, parsed, display) if isinstance(key, str) else key
            out[name] = _checked_text(item, [*path, name], parsed, display)
        return out
    if isinstance(value, list):
        return [_checked_text(item, [*path, index], parsed, display) for index, item in enumerate(value)]
    return value


def _text_problem(parsed: _Parsed, display: str, path: list[str | int], make: Any, what: str, hint: str) -> None:
    from .models import field_label

    where = join_path(path)
    try:
        label = field_label(Household, where) if where else "记录"
    except Exception:  # noqa: BLE001 - an unknown key: its own name
        label = where
    line, column = parsed.positions.get(where) or (None, None)
    parsed.problems.append(
        make(f"「{label}」{what}", hint, file=display, line=line, column=column, field=where or None)
    )


# --- households ----------------------------------------------------------------------------


def _relative(root: Path, path: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def _drop(data: Any, loc: tuple[Any, ...]) -> bool:
    """Delete the value at ``loc`` (a pydantic error location) from ``data``; True if it did."""
    parts = [p for p in loc if not (isinstance(p, str) and p.startswith("["))]
    for part in parts[:-1]:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return False
    if parts and isinstance(data, dict) and parts[-1] in data:
        del data[parts[-1]]
        return True
    return False


def _build_record(lh: LoadedHousehold, village_name: str) -> None:
    where = {
        "file": lh.display,
        "village": village_name,
        "household_id": lh.household_id,
    }
    try:
        lh.record = Household.model_validate(lh.raw)
        return
    except ValidationError as exc:
        lh.problems.extend(problems_from_validation_error(exc, lh.position, lh.raw, **where))
        errors = exc.errors()
    # Leave the wrong values out and try again, so the validator can still check the rest.
    salvage = copy.deepcopy(lh.raw)
    for _attempt in range(5):
        dropped = [
            _drop(salvage, item["loc"]) for item in errors
        ]  # every one, not just the first
        if not any(dropped):
            return
        try:
            lh.partial = Household.model_validate(salvage)
            return
        except ValidationError as exc:
            errors = exc.errors()
        except RecursionError:
            return


def _guess_id(raw: Any, folder: Path) -> str:
    if isinstance(raw, dict):
        value = raw.get("household_id")
        if (
            isinstance(value, (str, int))
            and not isinstance(value, bool)
            and str(value).strip()
        ):
            return str(value).strip()
    return folder.name


def load_household_folder(
    root: Path, folder: Path, village_name: str, cache: RecordCache | None = None
) -> LoadedHousehold | None:
    """Return the household of ``folder`` (None when the folder holds no record file)."""
    found = _household_or_job(root, folder, village_name, cache)
    if not isinstance(found, _ParseJob):
        return found
    return found.finish(parse_household(*found.args), cache)


@dataclass
class _ParseJob:
    """A household folder still to parse (no cache hit): ``parse_household(*args)``."""

    args: tuple[Path, Path, str, list[Path], str]
    key: str  # its RecordCache key ("" without a cache)

    def finish(self, lh: LoadedHousehold, cache: RecordCache | None) -> LoadedHousehold:
        if self.key and cache is not None:
            lh.cache_key = self.key
            cache.put(self.key, lh)
            if cache.stream:  # the parked copy too, which the next run's loading reads instead
                parked = copy.copy(lh)
                park(parked)
                cache.put(_PARKED + self.key, parked)
        return lh


#: key prefix of a parked household's row in a streamed record cache (see ``park``)
_PARKED = "parked|"


def keep_cached(cache: RecordCache, key: str) -> None:
    """Count a household's rows (its record and its parked copy) as used by this run: a build
    that did not read them (a stub, ``archive.known``) still keeps them for the next run."""
    cache.touch(key)
    cache.touch(_PARKED + key)


def _household_or_job(
    root: Path, folder: Path, village_name: str, cache: RecordCache | None
) -> LoadedHousehold | _ParseJob | None:
    """Return the cached household of ``folder``, the parse still to do, or None (no record)."""
    files = _record_files(folder)
    if not files:
        return None
    display = _relative(root, files[0])
    args = (root, folder, village_name, files, display)
    if cache is not None and len(files) == 1:
        try:
            data = files[0].read_bytes()
        except OSError:
            data = None
        if data is not None:
            key = cache.key(data, display, str(folder), village_name)
            # a build (streamed cache) reads the parked copy: planning takes the record later
            hit = cache.get(_PARKED + key) if cache.stream else None
            if hit is not None:
                cache.touch(key)
                return hit
            hit = cache.get(key)
            if hit is not None:
                if cache.stream:  # cached before parked copies were
                    _ParseJob(args, key).finish(hit, cache)
                return hit
            return _ParseJob(args, key)
    return _ParseJob(args, "")


def parse_household(
    root: Path, folder: Path, village_name: str, files: list[Path], display: str
) -> LoadedHousehold:
    """Parse one household folder (picklable by reference, for worker processes)."""
    return _load_household_folder(root, folder, village_name, files, display)


def _load_household_folder(
    root: Path, folder: Path, village_name: str, files: list[Path], display: str
) -> LoadedHousehold:
    lh = LoadedHousehold(folder, files[0], folder.name, None, None, {}, [], display)
    if len(files) > 1:
        names = "、".join(f.name for f in files)
        lh.problems.append(
            error(
                f"本户文件夹中有多个记录文件：{names}，无法确定用哪一个",
                "请只保留一个记录文件",
                file=_relative(root, folder),
                village=village_name,
                household_id=folder.name,
            )
        )
        return lh
    parsed = read_record_file(files[0], display)
    lh.positions = Positions(parsed.positions)
    lh.household_id = _guess_id(parsed.data, folder)
    for problem in parsed.problems:
        lh.problems.append(
            _with(problem, village=village_name, household_id=lh.household_id)
        )
    if not parsed.ok:
        return lh
    if not isinstance(parsed.data, dict):
        lh.problems.append(
            error(
                "文件的内容应为「键: 值」形式的一户数据"
                + ("，但文件是空的" if parsed.data is None else ""),
                "请参照数据格式说明填写，第一行一般是 household_id: 户编号",
                file=display,
                line=1,
                column=1,
                village=village_name,
                household_id=lh.household_id,
            )
        )
        return lh
    lh.raw = parsed.data
    _build_record(lh, village_name)
    if lh.record is not None and lh.partial is None:
        lh.raw = _raw_for_rules(lh.raw)
    return lh


def _raw_for_rules(raw: dict[str, Any]) -> dict[str, Any]:
    """What the validator reads of a valid record's mapping: each member's ID number as written.

    The whole mapping (~40 KB a household) stays only for records the model rejected, whose
    problems are reported from it; a 2,000-household township keeps 80 MB less.
    """
    members = raw.get("members")
    if not isinstance(members, list):
        return {}
    return {"members": [{"id_number": m.get("id_number")} if isinstance(m, dict) else {} for m in members]}


def _with(problem: Problem, **where: Any) -> Problem:
    from dataclasses import replace

    return replace(problem, **where)


# --- the data directory --------------------------------------------------------------------


def _open_root(
    data_dir: Path, archive: tuple[ArchiveConfig, list[Problem]] | None = None, *, settings_required: bool = False
) -> tuple[Path, ArchiveConfig, list[Problem]]:
    """The data directory, its archive.toml and what is wrong with it; ``settings_required``:
    raise ConfigError when archive.toml has an error (for commands that print its values)."""
    root = Path(data_dir)
    if not root.exists():
        raise DataDirError(f"数据目录不存在：{root}", hint="请检查路径是否写对")
    if not root.is_dir():
        raise DataDirError(
            f"{root} 不是文件夹", hint="请指定包含 archive.toml 的数据目录"
        )
    toml = root / "archive.toml"
    try:
        present = toml.is_file()
        os.listdir(root)
    except OSError as exc:
        raise DataDirError(
            f"无法读取数据目录 {root}：{os_reason(exc)}", hint="请检查文件夹权限"
        ) from exc
    if not present:
        raise DataDirError(
            f"{root} 中没有 archive.toml，不是数据目录",
            hint="请指定包含 archive.toml 的文件夹（如 households_sample），或参照数据格式说明新建 archive.toml",
        )
    config, problems = archive or load_archive_config(toml, "archive.toml")
    if settings_required:
        require_usable(problems)
    return root, config, problems


def _village_folders(root: Path, problems: list[Problem], unread: list[Path] | None = None) -> list[Path]:
    """The village folders (with ``village.toml``); ``unread`` gets those with households but
    without it (an error each)."""
    villages = []
    for folder in _subfolders(root):
        if (folder / "village.toml").is_file():
            villages.append(folder)
        elif _record_files(folder) or any(
            _record_files(sub) for sub in _subfolders(folder)
        ):
            problems.append(
                error(
                    f"文件夹「{folder.name}」中有农户数据，但缺少 village.toml，未读取",
                    '请在该文件夹中新建 village.toml（写明 code = "12 位村代码" 和 name = "村名"），或把它移出数据目录',
                    file=_relative(root, folder),
                )
            )
            if unread is not None:
                unread.append(folder)
        elif _looks_like_village(folder):
            problems.append(
                warning(
                    f"文件夹「{folder.name}」中既没有 village.toml，也没有农户文件夹，未当作村读取",
                    '若这是一个村，请在其中新建 village.toml（写明 code 和 name）并放入各户的文件夹；否则请把它移出数据目录',
                    file=_relative(root, folder),
                )
            )
    if not villages:
        problems.append(
            warning(
                "数据目录中没有任何村：没有找到含 village.toml 的村文件夹",
                "请确认选对了数据目录；每个村一个文件夹，其中有 village.toml 和各户的文件夹",
                file="archive.toml",
            )
        )
    return villages


_VILLAGE_LIKE = re.compile(r"^\d{12}|(村|社区|居委会)$")


def _looks_like_village(folder: Path) -> bool:
    """A folder named like a village (12-digit code first, or 村/社区 last), not one of the
    data directory's own folders (fonts, documents)."""
    return bool(_VILLAGE_LIKE.search(folder.name))


def _village_errors(config_problems: list[Problem]) -> tuple[Problem, ...]:
    return tuple(p for p in config_problems if p.is_error)


def _load_village(
    root: Path,
    folder: Path,
    problems: list[Problem],
    cache: RecordCache | None = None,
    jobs: list[tuple[Village, int, _ParseJob]] | None = None,
    loaded: Callable[[LoadedHousehold], None] | None = None,
    known: Callable[[Path], LoadedHousehold | None] | None = None,
) -> Village:
    """Read one village; with ``jobs``, households to parse are left as None and listed there.
    ``known``: a household folder's stub when its remembered results hold (see ``load_dataset``)."""
    display = _relative(root, folder / "village.toml")
    config, more = load_village_config(folder / "village.toml", display, folder.name)
    problems.extend(_with(p, village=config.name) for p in more)
    village = Village(folder, config, [], display, _village_errors(more))
    if _record_files(folder):
        problems.append(
            warning(
                f"村文件夹「{folder.name}」中直接放有记录文件，未读取",
                "每户应有自己的文件夹：请新建以户编号命名的文件夹，把记录文件和佐证材料移进去",
                file=_relative(root, _record_files(folder)[0]),
                village=config.name,
            )
        )
    for sub in _subfolders(folder):
        if _links_out(root, sub):
            problems.append(
                error(
                    f"户文件夹「{sub.name}」是一个链接，实际指向数据目录以外的 {_link_target(sub)}，未读取",
                    "请把该户的文件夹（连同佐证材料）复制到数据目录中，不要使用快捷方式或符号链接",
                    file=_relative(root, sub),
                    village=config.name,
                )
            )
            continue
        household: LoadedHousehold | None = known(sub) if known is not None else None
        if household is not None:
            pass  # a build's stub (see load_dataset)
        elif jobs is None:
            household = load_household_folder(root, sub, config.name, cache)
        else:
            found = _household_or_job(root, sub, config.name, cache)
            if isinstance(found, _ParseJob):
                jobs.append((village, len(village.households), found))
                household = None
                village.households.append(household)  # type: ignore[arg-type]  # filled below
                continue
            household = found
        if household is not None:
            village.households.append(household)
            if loaded is not None:
                loaded(household)
        elif (orphan := unreadable_household(root, sub, config.name)) is not None:
            village.households.append(orphan)  # not built, but keeps its 件号
        else:
            problems.append(_no_record(root, sub, config.name))
    if not village.households and not _subfolders(folder) and not _record_files(folder):
        problems.append(
            warning(
                f"村文件夹「{folder.name}」中没有任何农户文件夹，该村没有档案可生成",
                "请把该村各户的文件夹（每户一个，内有 household.yaml）放进这个文件夹；若该村不需要建档，请把它移出数据目录",
                file=_relative(root, folder),
                village=config.name,
            )
        )
    return village


def _link_target(folder: Path) -> str:
    try:
        return str(folder.resolve())
    except (OSError, RuntimeError):
        return "（无法解析）"


def _links_out(root: Path, folder: Path) -> bool:
    """True if ``folder`` is a symbolic link (or junction) that leads out of the data directory."""
    try:
        junction = os.name == "nt" and bool(getattr(folder, "is_junction", lambda: False)())
        if not folder.is_symlink() and not junction:
            return False
        return not folder.resolve().is_relative_to(root.resolve())
    except (OSError, RuntimeError):
        return True


#: a folder named like a household: its 户编号 (16 or 18 digits), maybe followed by a name
_HOUSEHOLD_FOLDER = re.compile(r"^([0-9]{18}|[0-9]{16})(?![0-9])")


def _record_like(folder: Path) -> list[str]:
    """Names of the files in ``folder`` that look like a misnamed record file
    (``household.yaml.txt``, ``Household.YAML``, ``4116….yaml``), sorted."""
    try:
        names = sorted(p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    except OSError:
        return []
    return [n for n in names if n.lower().startswith("household") or n.lower().endswith((".yaml", ".yml", ".json"))]


def unreadable_household(root: Path, folder: Path, village_name: str) -> LoadedHousehold | None:
    """The household of a village's folder that looks like a household's (named by a 户编号,
    or holding a misnamed record file such as ``household.yaml.txt``) but has no record file:
    not built, with an error naming the file to rename. None for any other folder.

    Like a record with errors, it keeps its place among the village's households (its 件号):
    a misnamed file must not renumber every later household, nor drop one silently.
    """
    named = _HOUSEHOLD_FOLDER.match(folder.name)
    files = _record_like(folder)
    nested = next((sub for sub in _subfolders(folder) if _record_files(sub)), None)
    if named is None and not files and nested is None:
        return None
    household_id = named.group(1) if named else None
    if household_id is None:
        for name in files:
            try:
                found = _HOUSEHOLD_ID.search((folder / name).read_text("utf-8-sig", errors="replace")[:4096])
            except OSError:
                continue
            if found:
                household_id = found.group(1)
                break
    household_id = household_id or folder.name
    display = _relative(root, folder)
    explorer = "Windows 可能隐藏了扩展名：请在资源管理器的「查看」中勾选「文件扩展名」后改名"
    if nested is not None and not files:  # unzipped into a folder of the same name
        message = (f"户文件夹「{folder.name}」中没有记录文件 household.yaml，它在下一层的「{nested.name}」文件夹中，"
                   "这一户无法读取")
        hint = f"请把「{nested.name}」中的全部文件移到「{folder.name}」中，再删除空的「{nested.name}」（常见于解压时多了一层文件夹）"
    elif files:
        file = files[0]
        wanted = "household.json" if ".json" in file.lower() else "household.yml" if ".yml" in file.lower() else "household.yaml"
        listed = "、".join(files[:5])
        message = (f"户文件夹「{folder.name}」中没有记录文件 household.yaml，只有 {listed}，这一户无法读取"
                   if len(files) == 1 else
                   f"户文件夹「{folder.name}」中没有记录文件 household.yaml（文件夹中有：{listed}），这一户无法读取")
        hint = f"请把 {file} 改名为 {wanted}" + (f"（{explorer}）" if file.lower().endswith(".txt") else "")
        if named is None:
            hint += "；若该文件夹不是一户，请把它移出村文件夹"
        display = _relative(root, folder / file)
    else:
        message = f"户文件夹「{folder.name}」中没有记录文件 household.yaml，这一户无法读取"
        hint = ("请把这一户的记录文件放进该文件夹并命名为 household.yaml（" + explorer
                + "）；若该户已不存在，请把文件夹移出村文件夹")
    problem = error(message, hint, file=display, village=village_name, household_id=household_id)
    return LoadedHousehold(folder, None, household_id, None, None, Positions(), [problem], display)


def _no_record(root: Path, folder: Path, village_name: str) -> Problem:
    """A folder in a village without a record file: most often a misnamed file, so say so."""
    try:
        names = sorted(p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    except OSError:
        names = []
    near = [n for n in names if n.lower().startswith("household") or n.lower().endswith((".yaml", ".yml", ".json"))]
    found = f"（文件夹中有：{'、'.join(near[:5])}）" if near else ""
    return warning(
        f"文件夹「{folder.name}」中没有记录文件 household.yaml，这一户未读取{found}",
        "每户文件夹中的记录文件须命名为 household.yaml；Windows 可能隐藏了扩展名（实际是 household.yaml.txt），"
        "请在资源管理器的「查看」中勾选「文件扩展名」后改名。若该文件夹不是一户，请把它移出村文件夹",
        file=_relative(root, folder),
        village=village_name,
    )


#: ``parse_many(parse_household, argument_tuples)`` -> the households, in order (e.g. a pool's)
ParseMany = Callable[[Callable[..., LoadedHousehold], list[tuple[Any, ...]]], Iterable[LoadedHousehold]]


def load_dataset(
    data_dir: Path, *, cache: RecordCache | None = None, parse_many: ParseMany | None = None,
    archive: tuple[ArchiveConfig, list[Problem]] | None = None,
    loaded: Callable[[LoadedHousehold], None] | None = None,
    known: Callable[[Path], LoadedHousehold | None] | None = None,
    settings_required: bool = False,
) -> Dataset:
    """Return every village and household of ``data_dir``; raise DataDirError if it is unusable.

    With ``cache``, a household whose record file is byte-for-byte unchanged is not parsed again.
    With ``parse_many``, the households to parse are handed to it all at once (to parse them in
    worker processes); the result is the same as without. ``archive``: archive.toml as the
    caller already read it (``load_archive_config``), with its problems. ``loaded`` is called
    with each household as soon as it is read (the build parks it: :func:`park`). ``known``
    returns, for a household folder, the build's stub of it (a parked household carrying what
    the last run found, :mod:`archive_builder.archive.known`), or None to read it.
    ``settings_required``: raise ConfigError when archive.toml has an error (a command whose
    documents print its values); else its errors are among the dataset's problems.
    """
    root, config, problems = _open_root(data_dir, archive, settings_required=settings_required)
    jobs: list[tuple[Village, int, _ParseJob]] | None = [] if parse_many is not None else None
    unread: list[Path] = []
    villages = [
        _load_village(root, folder, problems, cache, jobs, loaded, known)
        for folder in _village_folders(root, problems, unread)
    ]
    if jobs:
        assert parse_many is not None
        parsed = parse_many(parse_household, [job.args for _, _, job in jobs])
        for (village, index, job), lh in zip(jobs, parsed, strict=True):
            village.households[index] = job.finish(lh, cache)
            if loaded is not None:
                loaded(village.households[index])
    return Dataset(root, config, villages, problems, unread)


# --- one household, fast -------------------------------------------------------------------

_ID_NUMBER = re.compile(r"(?<![0-9])[0-9]{17}[0-9Xx](?![0-9A-Za-z])")


@dataclass(frozen=True)
class IndexEntry:
    """What a cheap text scan of one record file finds (no YAML parsing)."""

    village_folder: Path
    folder: Path
    file: Path
    household_id: str
    id_numbers: frozenset[str]


def scan_index(data_dir: Path) -> list[IndexEntry]:
    """Return 户编号 and ID numbers of every record file, found by regular expressions only."""
    root = Path(data_dir)
    entries = []
    for village in _village_folders(root, []):
        entries.extend(_village_index(village))
    return entries


def _village_index(village: Path) -> list[IndexEntry]:
    entries = []
    for folder in _subfolders(village):
        for file in _record_files(folder)[:1]:
            try:
                text = file.read_text("utf-8-sig", errors="replace")
            except OSError:
                continue
            match = _HOUSEHOLD_ID.search(text)
            ids = frozenset(m.upper() for m in _ID_NUMBER.findall(text))
            entries.append(IndexEntry(village, folder, file, match.group(1) if match else folder.name, ids))
    return entries


def item_number(village_folder: Path, household_id: str) -> int | str:
    """Return the household's 件号 as ``build`` numbers it: its place among the village's
    distinct 户编号 in order (those with errors count too; a folder copied with its 户编号 does
    not move the others); "" when it is not listed."""
    village = Path(village_folder)
    ids = sorted({*(e.household_id for e in _village_index(village)), *(h.household_id for h in _unreadable(village))})
    return ids.index(household_id) + 1 if household_id in ids else ""


def _unreadable(village: Path, village_name: str = "") -> list[LoadedHousehold]:
    """The village's household folders without a record file (``unreadable_household``)."""
    found = []
    for folder in _subfolders(village):
        if not _record_files(folder):
            household = unreadable_household(village.parent, folder, village_name)
            if household is not None:
                found.append(household)
    return found


def find_similar_ids(
    ids: Dataset | list[str], household_id: str, limit: int = 5
) -> list[str]:
    """Return up to ``limit`` 户编号 that look like ``household_id`` (typos, missing digits).

    户编号 share long prefixes (the village code), so similarity is the number of edits
    (a mistyped, missing or extra digit is one), not difflib's ratio; IDs ending with what was
    typed (the last digits only) come next.
    """
    known = ids.household_ids() if isinstance(ids, Dataset) else list(ids)
    scored = sorted((edit_distance(household_id, k, 4), k) for k in known)
    close = [k for distance, k in scored if distance <= 3]
    tail = [k for k in sorted(known) if household_id and k.endswith(household_id) and k not in close]
    return (close + tail)[:limit]


def typed_household_id(text: str) -> str:
    """A 户编号 as someone typed or pasted it: spaces dropped, full-width digits made ASCII
    (a Chinese input method types １２３; cells copied from Excel or WeChat bring spaces)."""
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text))


def load_household(data_dir: Path, household_id: str, *, settings_required: bool = False) -> Dataset:
    """Return a dataset holding only the household ``household_id`` (for ``packet``).

    The folder named like the 户编号 is tried first; otherwise a cheap text scan finds it.
    Uniqueness of the 户编号 and of its members' ID numbers across the whole data directory is
    checked against the same scan; clashes are added to ``Dataset.problems``.
    Raises HouseholdNotFoundError (with near matches as the hint) when it is not there, and
    with ``settings_required`` ConfigError when archive.toml has an error.
    """
    root, config, problems = _open_root(data_dir, settings_required=settings_required)
    index = scan_index(root)
    candidates = [e for e in index if e.folder.name == household_id]
    candidates += [
        e for e in index if e.household_id == household_id and e not in candidates
    ]
    for entry in candidates:
        village_problems: list[Problem] = []
        village = _village_only(root, entry.village_folder, village_problems)
        household = load_household_folder(root, entry.folder, village.config.name)
        if household is None or household.household_id != household_id:
            continue
        village.households.append(household)
        problems.extend(village_problems)
        problems.extend(_clashes(root, household, village.config.name, index))
        return Dataset(root, config, [village], problems)
    for village_folder in _village_folders(root, []):  # a household folder whose record is misnamed
        for household in _unreadable(village_folder):
            if household_id in (household.household_id, household.folder.name):
                village_problems = []
                village = _village_only(root, village_folder, village_problems)
                household.problems = [_with(p, village=village.config.name) for p in household.problems]
                village.households.append(household)
                return Dataset(root, config, [village], [*problems, *village_problems])
    similar = find_similar_ids([e.household_id for e in index], household_id)
    named = _named(index, household_id)
    if named:
        hint = "「{}」不是户编号，请改用户编号生成。家庭成员中有此人的农户：{}".format(
            household_id, "、".join(f"{e.household_id}（{_relative(root, e.folder)}）" for e in named[:5])
        )
    elif similar:
        hint = f"相近的户编号：{'、'.join(similar)}"
    else:
        hint = "请用 archive-builder validate 查看数据目录中的所有农户"
    raise HouseholdNotFoundError(
        f"数据目录 {root} 中没有户编号为 {household_id} 的农户", hint=hint
    )


def _named(index: list[IndexEntry], name: str) -> list[IndexEntry]:
    """The households with a member called ``name`` (a head's name typed instead of the 户编号):
    the folder name, or a ``name:`` line of the record, by text only (an error path)."""
    if not name or name.isascii():
        return []
    line = re.compile(rf"""(?m)["']?name["']?\s*:\s*["']?{re.escape(name)}["']?\s*,?\s*$""")
    found = []
    for entry in index:
        try:
            text = entry.file.read_text("utf-8-sig", errors="replace")
        except OSError:
            continue
        if name in entry.folder.name or line.search(text):
            found.append(entry)
    return found


def require_usable_villages(dataset: Dataset, chosen: Sequence[Village], *, everything: bool) -> None:
    """Raise ConfigError when a chosen village's ``village.toml`` has an error, or (``everything``
    chosen) a folder with households has none: a ledger, a statistics table or a notice would
    name the village wrongly or leave its households out without a word. (``build`` builds the
    other villages and lists these households as not built instead.)"""
    from ..errors import ConfigError

    lines = ["  " + p.format().replace("\n", "\n  ") for v in chosen for p in v.errors]
    lines += [f"  村文件夹「{folder.name}」中有农户数据，但缺少 village.toml" for folder in (dataset.unread if everything else ())]
    if lines:
        raise ConfigError("村的设置文件 village.toml 有错误或缺失，无法按村统计、检查或公示：\n" + "\n".join(lines),
                          hint="请按上面的提示改正或补上 village.toml 后重新运行（archive-builder validate 可检查整个数据目录）")


def select_villages(villages: Sequence[Village], wanted: Iterable[str]) -> list[Village]:
    """Return the villages named by code or name (all when none is named); raise DataDirError.

    A village whose ``village.toml`` cannot be trusted (an error, no code) is also found by its
    folder's name or a part of it (``411621105201_李庄村``): the build then says why it is not
    built instead of 找不到村.
    """
    from ..errors import DataDirError

    names = [w.strip() for w in wanted if w and w.strip()]
    if not names:
        return list(villages)

    def named(village: Village, name: str) -> bool:
        if name in (village.config.code, village.config.name):
            return True
        folder = village.path.name
        return (bool(village.errors) or not village.config.code) and name in (folder, *folder.split("_", 1))

    unknown = [w for w in names if not any(named(v, w) for v in villages)]
    if unknown:
        def shown(village: Village) -> str:
            if village.errors:
                return f"{village.path.name}（village.toml 有错误）"
            return f"{village.config.name}（{village.config.code or '未设村代码'}）"

        raise DataDirError(f"找不到村：{'、'.join(unknown)}", hint=f"可选的村：{'、'.join(shown(v) for v in villages)}")
    return [v for v in villages if any(named(v, w) for w in names)]


def open_villages(data_dir: Path) -> list[Village]:
    """Return the data directory's villages without their households (archive.toml checked).

    Cheap (no household is read): a build checks its inputs with it before it writes anything.
    Raises DataDirError when the folder is not a data directory, ConfigError when archive.toml
    has an error.
    """
    root, _config, problems = _open_root(data_dir, settings_required=True)
    return [_village_only(root, folder, problems) for folder in _village_folders(root, problems)]


def _village_only(root: Path, folder: Path, problems: list[Problem]) -> Village:
    display = _relative(root, folder / "village.toml")
    config, more = load_village_config(folder / "village.toml", display, folder.name)
    problems.extend(_with(p, village=config.name) for p in more)
    return Village(folder, config, [], display, _village_errors(more))


def unbuildable(dataset: Dataset, chosen: list[Village], *, everything: bool) -> tuple[list[Village], list[tuple[str, str]]]:
    """Split the chosen villages into those that can be built and the households that cannot.

    A village whose ``village.toml`` has an error (a wrong code, a syntax error) is not built:
    its folder, boxes and covers would carry a wrong or empty code. Nor is a folder with
    households but no ``village.toml`` (``Dataset.unread``, only when ``everything`` was
    chosen). Returns (the buildable villages, (户编号, reason) of each household not built).
    """
    buildable, failed = [], []
    for village in chosen:
        if not village.errors:
            buildable.append(village)
            continue
        reason = f"村文件夹「{village.path.name}」的 village.toml 有错误，该村未生成（请先改正 village.toml）"
        failed += [(str(h.household_id), reason) for h in sorted(village.households, key=lambda h: str(h.household_id))]
    for folder in dataset.unread if everything else ():
        reason = f"村文件夹「{folder.name}」中缺少 village.toml，该村未生成（请先新建 village.toml）"
        failed += [(hid, reason) for hid in sorted({e.household_id for e in _village_index(folder)})]
    return buildable, failed


def _clashes(
    root: Path, household: LoadedHousehold, village: str, index: list[IndexEntry]
) -> list[Problem]:
    others = [e for e in index if e.folder.resolve() != household.folder.resolve()]
    where = {
        "file": household.display,
        "village": village,
        "household_id": household.household_id,
    }
    problems = []
    for entry in others:
        if entry.household_id == household.household_id:
            problems.append(
                error(
                    f"户编号 {household.household_id} 重复：{_relative(root, entry.file)} 中也使用了这个户编号",
                    "户编号在整个数据目录中必须唯一，请核对后改正其中一户",
                    field="household_id",
                    **where,
                )
            )
    record = household.record or household.partial
    for i, member in enumerate(record.members if record else []):
        holders = [entry for entry in others if member.id_number in entry.id_numbers]
        if not holders:
            continue
        message, hint = repeated_id_number(
            member.id_number, member.name, [_holder(root, entry, member.id_number) for entry in holders]
        )
        line, column = household.position(f"members[{i}].id_number")
        problems.append(
            error(message, hint, field=f"members[{i}].id_number", line=line, column=column, **where)
        )
    return problems


def _holder(root: Path, entry: IndexEntry, number: str) -> tuple[str, int, str]:
    """(place, member position, name) of the member of ``entry``'s household with ID ``number``,
    as ``validate`` names a repeated ID number's other holder (read only on a clash)."""
    village = _village_only(root, entry.village_folder, [])
    other = load_household_folder(root, entry.folder, village.config.name)
    record = (other.record or other.partial) if other is not None else None
    place = f"{village.config.name} 户 {entry.household_id}（{_relative(root, entry.file)}）"
    for index, member in enumerate(record.members if record else []):
        if member.id_number == number:
            return place, index, member.name
    return place, -1, ""
