"""``archive.toml`` and ``village.toml``: models, layered defaults, problems with positions.

Layers: model defaults < the file < options actually given on the command line
(``ArchiveConfig.with_overrides`` drops the ``None`` of options not given). Reading never
raises for a bad file: syntax errors and wrong values become problems (with line and column
where TOML gives them) and the defaults stand in, so every other problem is still found.
"""

from __future__ import annotations

import copy
import datetime as dt
import re
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef,import-not-found,unused-ignore]

from .errors import ConfigError, os_reason
from .problems import Problem, error, warning


class Section(BaseModel):
    """Base of every configuration table; unknown keys are reported as warnings."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


class ArchiveSection(Section):
    """``[archive]``: who keeps the archive and for which year."""

    county: str = Field(default="", title="县(市、区)")
    township: str = Field(default="", title="乡(镇)")
    year: int | None = Field(default=None, title="归档年度")
    fonds_no: str = Field(default="", title="全宗号")
    #: printed on box covers; default: the township's 人民政府
    fonds_name: str = Field(default="", title="全宗名称")
    retention: Literal["永久", "30年", "10年"] = Field(default="永久", title="保管期限")
    #: 当年监测收入标准 (元/人·年); a province sets it per year, so it is data, not code
    income_threshold: Decimal | None = Field(default=None, title="监测收入标准")

    @field_validator("retention", mode="before")
    @classmethod
    def _retention_as_written(cls, value: Any) -> Any:
        """DA/T 22 writes 定期30年 and 定期10年; spaces and full-width digits are common too."""
        if isinstance(value, str):
            import unicodedata

            value = re.sub(r"\s+", "", unicodedata.normalize("NFKC", value)).removeprefix("定期")
        return value


class PrintSection(Section):
    """``[print]``: paper and binding."""

    paper: str = Field(default="A4", title="纸张")
    duplex: bool = Field(default=True, title="双面打印")
    sheets_per_box: int = Field(default=200, gt=0, title="每盒张数")
    spine_width_mm: Literal[20, 30, 40, 50] = Field(default=30, title="盒脊宽度（毫米）")


class TemplatesSection(Section):
    """``[templates]``: which template set to use."""

    set: str = Field(default="default", title="模板套")


class OutputSection(Section):
    """``[output]``: where documents go when the command line does not say."""

    dir: str | None = Field(default=None, title="输出目录")
    word_copy: bool = Field(default=False, title="同时生成 Word 文档")


class BuildSection(Section):
    """``[build]``: knobs for reproducible and fast builds."""

    #: the date printed in documents and stored as the PDF creation date; pinning it makes
    #: rebuilding the same data give the same bytes (None = the day of the run)
    date: dt.date | None = Field(default=None, title="文档日期")
    workers: int | None = Field(default=None, gt=0, title="并行进程数")


class ArchiveConfig(Section):
    """The whole ``archive.toml``."""

    archive: ArchiveSection = Field(default_factory=ArchiveSection, title="档案")
    print: PrintSection = Field(default_factory=PrintSection, title="打印")
    templates: TemplatesSection = Field(default_factory=TemplatesSection, title="模板")
    #: font role (title/body/heading/kai/table) → font file, relative to the data directory
    fonts: dict[str, str] = Field(default_factory=dict, title="字体")
    output: OutputSection = Field(default_factory=OutputSection, title="输出")
    build: BuildSection = Field(default_factory=BuildSection, title="生成")

    def with_overrides(self, **options: Any) -> ArchiveConfig:
        """Return a copy with ``section__key=value`` options applied; ``None`` values are ignored.

        ``cfg.with_overrides(print__duplex=False, build__date=None)`` changes only duplex.
        """
        data = self.model_dump()
        for key, value in options.items():
            if value is None:
                continue
            section, _, name = key.partition("__")
            data.setdefault(section, {})[name] = value
        return ArchiveConfig.model_validate(data)


class VillageConfig(Section):
    """``village.toml``."""

    code: str = Field(default="", title="村代码")
    name: str = Field(default="", title="村名")
    groups: list[str] = Field(default_factory=list, title="村民组")
    first_secretary: str | None = Field(default=None, title="驻村第一书记")
    #: printed on public notices (公示/公告) so villagers can object; a landline or hotline
    supervision_phone: str | None = Field(default=None, title="监督电话")


_POSITION = re.compile(r"\(at line (\d+), column (\d+)\)")
#: tomllib's messages (English) → what the clerk reads; the first match wins
_TOML_MESSAGES = (
    ("Expected newline or end of document after a statement",
     "值后面多了内容（一行只能写一项）：文字值要用英文双引号括起来，数字不带单位，如 year = 2025"),
    ("Invalid value", "值的写法不对：文字要用英文双引号括起来，数字不带单位，true/false 用英文小写"),
    ("Invalid statement", "这一行不是「名称 = 值」的写法"),
    ("Expected '=' after a key", "名称后缺少等号「=」"),
    ("Invalid initial character for a key part", "名称中有不允许的字符（名称只用英文字母、数字、下划线）"),
    ("Expected ']' at the end of a table declaration", "表名（[名称]）缺少右方括号「]」"),
    ("Expected ']]' at the end of an array declaration", "缺少「]]」"),
    ("Unterminated string", "引号没有配对：文字值的两端都要有英文双引号"),
    ("Unclosed array", "列表缺少右方括号「]」"),
    ("Unclosed inline table", "缺少右花括号「}」"),
    ("Invalid date or datetime", "日期不对（应为 2025-12-31 这样的写法）"),
    ("Cannot declare", "同一个表（[名称]）写了两次"),
    ("Cannot overwrite a value", "同一项写了两次"),
    ("Cannot redefine namespace", "同一个表（[名称]）写了两次"),
    ("Cannot mutate immutable namespace", "同一项写了两次"),
    ("Duplicate inline table key", "同一项写了两次"),
    ("Illegal character '\\n'", "引号没有配对：文字值的两端都要有英文双引号，且在同一行"),
    ("Illegal character", "有不允许的字符（如中文引号、全角符号或不可见字符）"),
    ("Found invalid character", "有不允许的字符（如中文引号、全角符号或不可见字符）"),
    ("Unescaped '\\' in a string", "文字中的反斜杠「\\」要写成两个「\\\\」，或改用正斜杠「/」"),
    ("Escaped character is not a Unicode scalar value", "文字中的转义字符不对"),
    ("Invalid hex value", "文字中的转义字符不对"),
    ("Expected", "缺少应有的符号"),
)


def _toml_message(message: str) -> str:
    """tomllib's message in Chinese (its own text when it is not a known one)."""
    for english, chinese in _TOML_MESSAGES:
        if message.startswith(english):
            return chinese
    return message

M = TypeVar("M", bound=BaseModel)


def read_toml(
    path: Path, display: str
) -> tuple[dict[str, Any] | None, str, list[Problem]]:
    """Return (table or None, text, problems) for a TOML file; never raises for bad content."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return (
            None,
            "",
            [
                error(
                    f"无法读取 {display}：{os_reason(exc)}",
                    "请检查文件权限",
                    file=display,
                )
            ],
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return (
            None,
            "",
            [
                error(
                    f"{display} 不是 UTF-8 编码",
                    "请用记事本或 WPS 另存为 UTF-8 编码",
                    file=display,
                )
            ],
        )
    try:
        return tomllib.loads(text), text, []
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = _POSITION.search(message)
        line = column = None
        if match:
            line, column = int(match.group(1)), int(match.group(2))
            message = message[: match.start()].strip()
        message = _toml_message(message)
        return (
            None,
            text,
            [
                error(
                    f"{display} 格式错误（TOML 语法）：{message}",
                    "请检查该行的引号、等号和方括号；文字值要用英文双引号括起来",
                    file=display,
                    line=line,
                    column=column,
                )
            ],
        )


def key_position(
    text: str, key: str, section: str | None = None
) -> tuple[int | None, int | None]:
    """Return (line, column) of ``key =`` in TOML ``text``, inside ``[section]`` when given."""
    in_section = section is None
    pattern = re.compile(rf"^\s*[\"']?{re.escape(key)}[\"']?\s*=")
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith("["):
            name = stripped.strip("[] \t")
            if section is not None:
                in_section = name == section
            if name == key and section is None:
                return number, line.index("[") + 1
            continue
        if in_section and pattern.match(line):
            return number, len(line) - len(line.lstrip()) + 1
    return None, None


def _validate(
    model: type[M], data: dict[str, Any], text: str, display: str
) -> tuple[M | None, list[Problem]]:
    problems: list[Problem] = []
    data = copy.deepcopy(data)
    for _attempt in range(5):  # drop each wrong value so the rest still counts
        try:
            result = model.model_validate(data)
        except ValidationError as exc:
            for item in exc.errors():
                problems.append(_value_problem(item, text, display))
                _drop(data, item["loc"])
            continue
        problems.extend(_unknown_keys(result, text, display))
        return result, problems
    return None, problems


def _drop(data: Any, loc: tuple[Any, ...]) -> None:
    for part in loc[:-1]:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return
    if isinstance(data, dict):
        data.pop(loc[-1], None)


def _value_problem(item: Any, text: str, display: str) -> Problem:
    loc = [str(part) for part in item["loc"]]
    section = loc[0] if len(loc) > 1 else None
    line, column = key_position(text, loc[-1], section) if loc else (None, None)
    return error(
        f"{display} 中「{'.'.join(loc)}」的值不对：{_explain(item)}",
        "请改正该项，或删除该行使用默认值",
        file=display,
        line=line,
        column=column,
        field=".".join(loc),
    )


def _explain(item: Any) -> str:
    kind = item["type"]
    if kind == "literal_error":
        from .records.messages import choices

        return f"应为{choices(item.get('ctx', {}).get('expected', ''))}之一"
    if kind.startswith("int"):
        return "应为整数"
    if kind.startswith("bool"):
        return "应为 true 或 false"
    if kind.startswith(("decimal", "float")):
        return "应为数字"
    if kind.startswith("date"):
        return "应为日期（如 2025-12-31）"
    if kind.startswith("string"):
        return "应为文字（用英文双引号括起来）"
    if kind in ("greater_than", "greater_than_equal"):
        return "应为正数"
    if kind in ("dict_type", "model_type"):
        return "应为一个表（[名称] 开头的一段）"
    if kind == "list_type":
        return '应为列表（如 ["第一村民组", "第二村民组"]）'
    return "格式不对"


def _unknown_keys(
    model: BaseModel, text: str, display: str, section: str | None = None
) -> list[Problem]:
    problems = []
    for key in model.model_extra or {}:
        line, column = key_position(text, key, section)
        where = f"[{section}] 中的" if section else ""
        problems.append(
            warning(
                f"{display} {where}未知设置项「{key}」，已忽略",
                "请检查拼写；可用的设置项见文档",
                file=display,
                line=line,
                column=column,
                field=f"{section}.{key}" if section else key,
            )
        )
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, Section):
            problems.extend(_unknown_keys(value, text, display, name))
    return problems


def load_archive_config(
    path: Path, display: str = "archive.toml"
) -> tuple[ArchiveConfig, list[Problem]]:
    """Return the archive configuration (defaults where the file is unusable) and its problems."""
    data, text, problems = read_toml(path, display)
    if data is None:
        return ArchiveConfig(), problems
    config, more = _validate(ArchiveConfig, data, text, display)
    problems.extend(more)
    if config is None:
        return ArchiveConfig(), problems
    if config.archive.year is None:
        problems.append(
            warning(
                f"{display} 未设置归档年度 [archive] year",
                "请在 [archive] 下加一行，如 year = 2025",
                file=display,
            )
        )
    return config, problems


def require_usable(problems: list[Problem], display: str = "archive.toml") -> None:
    """Raise ConfigError when ``problems`` (of one settings file) hold an error.

    A command whose output prints the settings (县、乡、年度, the income standard) must not
    run on the defaults that stand in for a wrong value: every cover would be blank or wrong.
    The message lists each error with its place and fix; warnings (an unknown key) are left
    to the caller to report.
    """
    errors = [p for p in problems if p.is_error]
    if not errors:
        return
    lines = "\n".join("  " + p.format().replace("\n", "\n  ") for p in errors)
    raise ConfigError(
        f"{display} 有 {len(errors)} 处错误，数据目录无法使用：\n{lines}",
        hint=f"请按上面的提示改正 {display} 后重新运行（archive-builder validate 可检查整个数据目录）",
    )


_VILLAGE_CODE = re.compile(r"\d{12}")


def load_village_config(
    path: Path, display: str, folder_name: str
) -> tuple[VillageConfig, list[Problem]]:
    """Return the village configuration (name defaults to the folder name) and its problems."""
    data, text, problems = read_toml(path, display)
    config: VillageConfig | None = None
    if data is not None:
        config, more = _validate(VillageConfig, data, text, display)
        problems.extend(more)
    if config is None:
        return VillageConfig(name=folder_name), problems
    if not config.name.strip():
        problems.append(
            warning(
                f"{display} 未设置村名 name，暂用文件夹名「{folder_name}」",
                '请加一行，如 name = "冯老村"',
                file=display,
            )
        )
        config = config.model_copy(update={"name": folder_name})
    if not _VILLAGE_CODE.fullmatch(config.code):
        line, column = key_position(text, "code")
        message = (
            f"{display} 村代码「{config.code}」不是 12 位统计用区划代码"
            if config.code
            else f"{display} 未设置村代码 code"
        )
        problems.append(
            error(
                message,
                '请填写该村的 12 位统计用区划代码，如 code = "411621105201"',
                file=display,
                line=line,
                column=column,
                field="code",
            )
        )
    return config, problems
