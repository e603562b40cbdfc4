"""Audit rules as data: reading rule files, checking them, compiling their expressions.

A rule file is YAML::

    参数:                       # parameters the rules read as params["…"]; a county overrides any
      每年走访次数: 2
    停用: [visits-per-year]      # built-in rules this file switches off (by id)
    规则:
      - id: insured
        类别: 三保障
        描述: 家庭成员未参加基本医疗保险
        依据: 《关于……的通知》……
        严重程度: 严重            # 严重 | 一般 | 提示
        整改建议: 为该成员办理居民医保参保登记
        范围: 成员               # 户 | 成员 | 帮扶措施 | 收入年度 | 程序 | 村
        条件: not has_any(member.insured, "居民医保", "职工医保")
        消息: 成员{{ member.name }}未参加基本医疗保险   # 多行消息用「|-」，各行连成一行
        整改时限: 15             # days from the audit (optional; by severity otherwise)

The built-in set lives in ``builtin/*.yaml`` inside this package. Counties add or override rules
in ``DATA/rules/*.yaml`` and ``<village>/rules/*.yaml`` (the search order of templates: the
village's folder wins over the data directory's, which wins over the built-in set). A rule with
the id of an earlier one replaces the keys it gives; ``停用`` (or ``停用: true`` on a rule)
switches a rule off. Every error names the file, the line and the rule id, in Chinese.

Conditions are Jinja2 expressions run in a sandbox (no file or attribute access beyond the
record's fields); messages are Jinja2 templates rendered with the same names.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import jinja2
import yaml
from jinja2 import nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment
from pydantic import BaseModel

from ..errors import ArchiveError, ExitCode, os_reason

SEVERITIES = ("严重", "一般", "提示")
#: days given to fix a problem when the rule does not say
DEFAULT_DAYS = {"严重": 15, "一般": 30, "提示": 60}

#: scope label → (loop variable, attribute of the household iterated); None = no loop
SCOPES: dict[str, tuple[str, str] | None] = {
    "户": None,
    "成员": ("member", "members"),
    "帮扶措施": ("measure", "measures"),
    "收入年度": ("income", "income"),
    "程序": ("step", "procedure"),
    "村": None,
}
SCOPE_ALIASES = {
    "household": "户", "member": "成员", "measure": "帮扶措施", "income": "收入年度",
    "procedure": "程序", "village": "村", "家庭": "户", "措施": "帮扶措施", "收入": "收入年度",
    "程序步骤": "程序", "家庭成员": "成员",
}

KEYS = ("id", "类别", "描述", "依据", "严重程度", "整改建议", "范围", "条件", "消息", "整改时限", "停用")
REQUIRED = ("类别", "描述", "依据", "严重程度", "整改建议", "范围", "条件", "消息")
TOP_KEYS = ("规则集", "说明", "参数", "停用", "规则")


class RuleFileError(ArchiveError):
    """A rule file cannot be read or one of its rules is wrong."""

    exit_code = ExitCode.input_unusable
    kind = "规则文件错误"


class UnknownField(Exception):
    """A rule read a field the record does not have (a typo in the rule)."""


class RuleEnvironment(ImmutableSandboxedEnvironment):
    """The sandbox rules run in: ``None.x`` is None (optional parts of a record are often
    missing), but a field the model does not have is an error, so a misspelt field name in a
    county's rule is reported instead of silently never matching."""

    #: functions of ours a rule may call without the sandbox's per-call checks (by code object)
    trusted: set[Any] = set()

    def getattr(self, obj: Any, attribute: str) -> Any:
        if obj is None:
            return None
        # fast path: a record field is plain data (a model's fields live in its __dict__)
        fields = _model_fields(type(obj))
        if fields is not None and attribute in fields:
            try:
                return obj.__dict__[attribute]
            except KeyError:
                pass
        if fields is not None:
            extra = obj.__pydantic_extra__ or {}
            if attribute in extra:
                return extra[attribute]
            if attribute not in _own_attributes(type(obj)):
                # pydantic's own methods (parse_file reads files …) are not for rules
                names = "、".join(type(obj).model_fields)
                raise UnknownField(f"记录中没有字段「{attribute}」（可用字段：{names}）")
        return super().getattr(obj, attribute)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        code = getattr(getattr(__obj, "__func__", __obj), "__code__", None)
        if code is not None and code in __self.trusted:
            kwargs.pop("_loop_vars", None)  # what Jinja passes for its own context.call
            kwargs.pop("_block_vars", None)
            return __obj(*args, **kwargs)
        return super().call(__context, __obj, *args, **kwargs)

    def getitem(self, obj: Any, argument: Any) -> Any:
        if obj is None:
            return None
        if isinstance(argument, str) and _model_fields(type(obj)) is not None:
            return self.getattr(obj, argument)  # record["x"], map(attribute="x"): the same fields only
        return super().getitem(obj, argument)


_FIELDS: dict[type, frozenset[str] | None] = {}


def _model_fields(cls: type) -> frozenset[str] | None:
    """The field names of a pydantic model class (None for any other class), memoised."""
    try:
        return _FIELDS[cls]
    except KeyError:
        found = frozenset(cls.model_fields) if issubclass(cls, BaseModel) else None
        _FIELDS[cls] = found
        return found


_OWN: dict[type, frozenset[str]] = {}


def _own_attributes(cls: type) -> frozenset[str]:
    """Public attributes a record class of ours defines (``head``, ``net_income`` …), memoised."""
    found = _OWN.get(cls)
    if found is None:
        names: set[str] = set()
        for klass in cls.__mro__:
            if klass.__module__.startswith("archive_builder"):
                names.update(name for name in vars(klass) if not name.startswith("_"))
        found = _OWN[cls] = frozenset(names)
    return found


def trust(*functions: Any) -> None:
    """Let rules call ``functions`` (helpers of ours) without the sandbox's per-call checks."""
    for function in functions:
        code = getattr(getattr(function, "__func__", function), "__code__", None)
        if code is not None:
            RuleEnvironment.trusted.add(code)


def make_environment() -> RuleEnvironment:
    env = RuleEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)
    env.filters["join_labels"] = lambda value, sep="、": sep.join(str(v) for v in value or ()) or "无"
    return env


@dataclass(frozen=True)
class Rule:
    """One audit rule, after the rule files that mention it were merged."""

    id: str
    category: str
    description: str
    basis: str
    severity: str
    advice: str
    scope: str
    condition: str
    message: str
    days: int
    #: where the rule was (last) defined: file shown to the clerk, line
    file: str = ""
    line: int = 0
    order: int = 0

    def where(self) -> str:
        return f"{self.file} 第 {self.line} 行（规则 {self.id}）"


@dataclass
class RuleSet:
    """The rules that apply to a village, with their parameters."""

    rules: list[Rule]
    params: dict[str, Any]
    files: list[str] = field(default_factory=list)
    disabled: list[str] = field(default_factory=list)

    def by_id(self) -> dict[str, Rule]:
        return {rule.id: rule for rule in self.rules}


# --- reading YAML with line numbers -----------------------------------------------------------


class _Map(dict):  # type: ignore[type-arg]
    """A mapping that remembers its line and the lines of its keys."""

    line: int = 0
    key_lines: dict[str, int]


class _LineLoader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> _Map:
    loader.flatten_mapping(node)
    result = _Map()
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, (str, int, float, bool)) and key is not None:
            raise yaml.constructor.ConstructorError(None, None, "键不能是列表或映射", key_node.start_mark)
        result[str(key)] = loader.construct_object(value_node, deep=True)
        result.key_lines[str(key)] = key_node.start_mark.line + 1
    return result


_LineLoader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)  # type: ignore[arg-type]


def _read_yaml(path: Path, display: str) -> Any:
    from ..records.loader import _YAML_MESSAGES, _translate

    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise RuleFileError(f"无法读取规则文件 {display}：{os_reason(exc)}") from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            text = raw.decode("gb18030")
        except UnicodeDecodeError:
            raise RuleFileError(f"规则文件 {display} 不是 UTF-8 编码，无法读取",
                                hint="请用记事本或 WPS 另存为 UTF-8 编码") from None
    try:
        return yaml.load(text, Loader=_LineLoader)  # a SafeLoader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        what, hint = _translate(f"{exc.problem} {exc.context}", _YAML_MESSAGES)
        where = f"第 {mark.line + 1} 行第 {mark.column + 1} 列" if mark else ""
        raise RuleFileError(f"规则文件 {display} {where}：YAML 格式错误：{what}（{exc.problem or exc.context}）",
                            hint=hint) from None
    except yaml.YAMLError as exc:
        raise RuleFileError(f"规则文件 {display}：YAML 格式错误：{exc}", hint="请检查文件内容是否完整") from None


# --- checking and merging ---------------------------------------------------------------------


def _error(display: str, line: int, rule_id: str | None, text: str, hint: str | None = None) -> RuleFileError:
    rule = f"（规则 {rule_id}）" if rule_id else ""
    return RuleFileError(f"规则文件 {display} 第 {line} 行{rule}：{text}", hint=hint)


def _text(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (str, int, float)):
        return str(value).strip()
    return None


def _merge_file(data: Any, display: str, rules: dict[str, dict[str, Any]], params: dict[str, Any],
                disabled: dict[str, tuple[str, int]], order: list[str]) -> None:
    if data is None:
        return
    if not isinstance(data, _Map):
        raise RuleFileError(f"规则文件 {display} 的内容应为映射（含「规则:」列表）",
                            hint="参照内置规则文件的写法：参数、停用、规则 三部分")
    for key in data:
        if key not in TOP_KEYS:
            raise _error(display, data.key_lines.get(key, data.line), None, f"未知的项目「{key}」",
                         hint="规则文件的顶层只能有：" + "、".join(TOP_KEYS))
    extra_params = data.get("参数") or {}
    if not isinstance(extra_params, dict):
        raise _error(display, data.key_lines.get("参数", data.line), None, "「参数」应为映射（名称: 值）")
    params.update(extra_params)
    off = data.get("停用") or []
    if isinstance(off, str):
        off = [off]
    if not isinstance(off, list) or not all(isinstance(x, (str, int)) for x in off):
        raise _error(display, data.key_lines.get("停用", data.line), None, "「停用」应为规则 id 的列表",
                     hint="例如：停用: [visits-per-year]")
    for rule_id in off:
        disabled[str(rule_id)] = (display, data.key_lines.get("停用", data.line))
    items = data.get("规则") or []
    if not isinstance(items, list):
        raise _error(display, data.key_lines.get("规则", data.line), None, "「规则」应为列表，每项以「- id:」开始")
    for item in items:
        if not isinstance(item, _Map):
            raise _error(display, data.key_lines.get("规则", data.line), None, "「规则」的每一项应为映射（以「- id:」开始）")
        rule_id = _text(item.get("id"))
        if not rule_id:
            raise _error(display, item.line, None, "规则缺少 id", hint="每条规则以「- id: 规则编号」开始")
        for key in item:
            if key not in KEYS:
                raise _error(display, item.key_lines.get(key, item.line), rule_id, f"未知的项目「{key}」",
                             hint="规则可用的项目：" + "、".join(KEYS))
        if item.get("停用") is True:
            disabled[rule_id] = (display, item.line)
            continue
        merged = dict(rules.get(rule_id, {}))
        merged.update({k: v for k, v in item.items() if k != "停用"})
        merged["__file__"], merged["__line__"] = display, item.line
        merged["__lines__"] = {k: item.key_lines.get(k, item.line) for k in item}
        if rule_id not in rules:
            order.append(rule_id)
        else:
            merged["__lines__"] = {**rules[rule_id].get("__lines__", {}), **merged["__lines__"]}
        rules[rule_id] = merged


def _to_rule(rule_id: str, raw: dict[str, Any], order: int) -> Rule:
    display, line = raw["__file__"], raw["__line__"]
    lines = raw.get("__lines__", {})

    def fail(key: str, text: str, hint: str | None = None) -> RuleFileError:
        return _error(display, lines.get(key, line), rule_id, text, hint)

    for key in REQUIRED:
        if _text(raw.get(key)) in (None, ""):
            raise fail(key, f"缺少「{key}」或其值不是文字", hint="每条规则都要写：" + "、".join(REQUIRED))
    severity = _text(raw["严重程度"]) or ""
    if severity not in SEVERITIES:
        raise fail("严重程度", f"严重程度「{severity}」无效", hint="可选：严重、一般、提示")
    scope = _text(raw["范围"]) or ""
    scope = SCOPE_ALIASES.get(scope, scope)
    if scope not in SCOPES:
        raise fail("范围", f"范围「{raw['范围']}」无效", hint="可选：" + "、".join(SCOPES))
    days_raw = raw.get("整改时限", DEFAULT_DAYS[severity])
    if isinstance(days_raw, bool) or not isinstance(days_raw, int) or days_raw < 0:
        raise fail("整改时限", f"整改时限「{days_raw}」应为天数（非负整数）", hint="例如：整改时限: 30")
    return Rule(
        id=rule_id, category=_text(raw["类别"]) or "", description=_text(raw["描述"]) or "",
        basis=_text(raw["依据"]) or "", severity=severity, advice=_text(raw["整改建议"]) or "",
        scope=scope, condition=_text(raw["条件"]) or "", message="".join(part.strip() for part in str(raw["消息"]).splitlines()), days=days_raw,
        file=display, line=line, order=order,
    )


def builtin_files() -> list[Path]:
    """The built-in rule files (national rules), in name order."""
    folder = Path(__file__).resolve().parent / "builtin"
    return sorted(folder.glob("*.yaml"))


def _display(path: Path, root: Path | None) -> str:
    builtin = Path(__file__).resolve().parent / "builtin"
    try:
        return "内置规则/" + path.resolve().relative_to(builtin).as_posix()
    except ValueError:
        pass
    if root is not None:
        try:
            return path.resolve().relative_to(Path(root).resolve()).as_posix()
        except ValueError:
            pass
    return str(path)


def rule_files(data_dir: Path | None = None, village_dir: Path | None = None,
               extra: Iterable[Path] = ()) -> list[Path]:
    """The rule files that apply, from the least to the most specific (later ones win)."""
    files = builtin_files()
    for folder in (data_dir, village_dir):
        if folder is not None and (Path(folder) / "rules").is_dir():
            found = [p for p in (Path(folder) / "rules").iterdir()
                     if p.suffix.lower() in (".yaml", ".yml") and p.is_file() and not p.name.startswith(".")]
            files.extend(sorted(found))
    files.extend(Path(p) for p in extra)
    return files


def load_rule_set(files: Iterable[Path], *, root: Path | None = None) -> RuleSet:
    """Read ``files`` in order, merge them, check every rule; raise RuleFileError."""
    rules: dict[str, dict[str, Any]] = {}
    params: dict[str, Any] = {}
    disabled: dict[str, tuple[str, int]] = {}
    order: list[str] = []
    shown: list[str] = []
    for path in files:
        display = _display(Path(path), root)
        if not Path(path).is_file():
            raise RuleFileError(f"找不到规则文件 {display}", hint="请检查 --rules 给出的路径")
        shown.append(display)
        _merge_file(_read_yaml(Path(path), display), display, rules, params, disabled, order)
    for rule_id, (display, line) in disabled.items():
        if rule_id not in rules:
            raise _error(display, line, rule_id, f"要停用的规则「{rule_id}」不存在",
                         hint="可停用的规则：" + "、".join(order))
    result = [_to_rule(rule_id, rules[rule_id], n) for n, rule_id in enumerate(order) if rule_id not in disabled]
    rule_set = RuleSet(result, params, shown, sorted(disabled))
    check_rule_set(rule_set)
    return rule_set


# --- parameters the notices share ------------------------------------------------------------

#: the rule-set parameters that fix the 公示 / 公告 periods (days): the audit's publicity rule
#: and the notices (``archive-builder notice``) both read them, so a county changes them once
PUBLICITY_DAYS = "公示天数"  # identification and exit 公示 (两公示一公告)
MONITOR_PUBLICITY_DAYS = "监测公示天数"  # 防止返贫监测 公示
ANNOUNCEMENT_DAYS = "公告天数"  # the county's 公告


def rule_params(data_dir: Path | None = None, village_dir: Path | None = None) -> dict[str, Any]:
    """The rule set's ``参数`` (built-in, then the data directory's and the village's rule files),
    without checking or compiling the rules; RuleFileError when a file or its 参数 is wrong."""
    params: dict[str, Any] = {}
    for path in rule_files(data_dir, village_dir):
        display = _display(Path(path), data_dir)
        data = _read_yaml(Path(path), display)
        if not isinstance(data, _Map):
            continue  # load_rule_set reports it (the audit); the parameters are the others'
        extra = data.get("参数") or {}
        if not isinstance(extra, dict):
            raise _error(display, data.key_lines.get("参数", data.line), None, "「参数」应为映射（名称: 值）")
        params.update(extra)
    return params


def publicity_days(params: Mapping[str, Any], phases: Iterable[str], step: str = "公示") -> int:
    """The fewest days a 公示 (``step`` = 公示) of ``phases`` (识别 / 退出 / 监测) or a 公告 must last."""
    name = ANNOUNCEMENT_DAYS if step == "公告" else MONITOR_PUBLICITY_DAYS if "监测" in phases else PUBLICITY_DAYS
    value = params.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise RuleFileError(f"规则参数「{name}」应为正整数（天数），现在是：{value!r}",
                            hint=f"在数据目录 rules/ 的规则文件中写，例如：参数: {{{name}: 7}}")
    return value


# --- compiling --------------------------------------------------------------------------------


def parse_expression(env: jinja2.Environment, rule: Rule) -> nodes.Expr:
    """The condition of ``rule`` as a Jinja2 expression node; RuleFileError when it is not one."""
    from jinja2.parser import Parser

    try:
        parser = Parser(env, rule.condition, state="variable")
        expr = parser.parse_expression()
        if not parser.stream.eos:
            token = parser.stream.current
            raise jinja2.TemplateSyntaxError(f"表达式后有多余内容「{token.value}」", token.lineno)
    except jinja2.TemplateSyntaxError as exc:
        raise RuleFileError(f"{rule.where()}：「条件」不是有效的表达式：{exc.message}",
                            hint="条件是一个表达式，例如：member.insured 和 not has_measure(\"住房安全保障\")") from None
    return expr


def compile_message(env: jinja2.Environment, rule: Rule) -> jinja2.Template:
    try:
        return env.from_string(rule.message)
    except jinja2.TemplateSyntaxError as exc:
        raise RuleFileError(f"{rule.where()}：「消息」模板有语法错误：{exc.message}",
                            hint="消息中的变量写作 {{ member.name }}，成对使用花括号") from None


def check_rule_set(rule_set: RuleSet) -> None:
    """Compile every condition and message, and try each rule once on a complete sample record,
    so that a misspelt field or helper is reported with its rule now, not per household later."""
    from .engine import dry_run

    env = make_environment()
    for rule in rule_set.rules:
        parse_expression(env, rule)
        compile_message(env, rule)
    for phase, step in (("识别", "公示"), ("监测", "公示"), ("识别", "公告")):
        publicity_days(rule_set.params, [phase], step)  # the notices' periods too: a wrong one is named now
    dry_run(rule_set)


def with_params(rule_set: RuleSet, **params: Any) -> RuleSet:
    """A copy of ``rule_set`` with parameters changed (tests, callers)."""
    return replace(rule_set, params={**rule_set.params, **params})


def as_date(value: Any) -> dt.date | None:
    """A date from a date, a PartialDate (its first day) or an ISO text; None otherwise."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    first_day = getattr(value, "first_day", None)
    if first_day is not None:
        return first_day()  # type: ignore[no-any-return]
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            return None
    return None


def param_mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
