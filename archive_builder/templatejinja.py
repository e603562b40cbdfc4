"""The sandboxed Jinja2 environment that renders a template set's sections to XML.

Templates are found along the set's search path (``{% extends "default:…" %}`` reaches the
built-in set), autoescaped, and run in an immutable sandbox with a budget of output size,
steps and time, so a county's template can neither reach the program nor hang a build. The
filters (``money``, ``cn_date``, ``mask_id`` …) are the ones the section templates use.
"""

from __future__ import annotations

import contextvars
import re
import time
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
from jinja2.exceptions import SecurityError
from jinja2.loaders import split_template_path
from jinja2.sandbox import ImmutableSandboxedEnvironment, safe_range

from .errors import TemplateError

if TYPE_CHECKING:  # pragma: no cover
    from .templates import TemplateSet


# --------------------------------------------------------------------------- Jinja


class _SearchPathLoader(jinja2.BaseLoader):
    """Loads ``sections/x.xml`` from the first folder that has it; ``default:x`` from the built-in set."""

    def __init__(self, search: Sequence[Path], builtin: Path) -> None:
        self.search = list(search)
        self.builtin = builtin

    def get_source(self, environment: jinja2.Environment, template: str) -> tuple[str, str, Callable[[], bool]]:
        folders, pieces = self._where(template)
        for folder in folders:
            path = folder.joinpath(*pieces)
            if path.is_file() and _within(path, folder):
                mtime = path.stat().st_mtime_ns
                try:
                    source = path.read_text(encoding="utf-8")
                except (OSError, UnicodeDecodeError) as exc:
                    # the reason only: a template's (or another file's) text never reaches a message
                    raise jinja2.TemplateNotFound(template, message=f"{path} 无法读取（不是 UTF-8 文本或无法访问）") from exc
                return source, str(path), lambda p=path, m=mtime: p.stat().st_mtime_ns == m
        raise jinja2.TemplateNotFound(template, message="；".join(str(f.joinpath(*pieces)) for f in folders))

    def _where(self, template: str) -> tuple[list[Path], list[str]]:
        """The folders to look in and the name's parts; a name may not leave its folder.

        Allowed: ``sections/x.xml`` (searched along the set's search path) and
        ``default:sections/x.xml`` (a built-in set). Refused: absolute names, ``..``, drive
        letters, backslashes and any prefix that is not a built-in set's name.
        """
        prefix, sep, rest = template.partition(":")
        if sep:
            if not _SET_NAME.fullmatch(prefix) or not (self.builtin / prefix).is_dir():
                raise _refused(template)
            folders, name = [self.builtin / prefix], rest
        else:
            folders, name = self.search, template
        if "\\" in name or "\0" in name or name.startswith("/") or not name:
            raise _refused(template)
        try:
            pieces = split_template_path(name)  # refuses ".." (and drops "." and empty parts)
        except jinja2.TemplateNotFound:
            raise _refused(template) from None
        if not pieces:
            raise _refused(template)
        return folders, pieces


_SET_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


def _refused(template: str) -> jinja2.TemplateNotFound:
    shown = template if len(template) <= 80 else template[:77] + "…"
    return jinja2.TemplateNotFound(
        template,
        message=f"模板名 {shown} 不允许：只能引用模板文件夹内的文件（不能用绝对路径、..、盘符或反斜杠）",
    )


def _within(path: Path, folder: Path) -> bool:
    """True if ``path`` (symlinks resolved) lies inside ``folder``."""
    try:
        return path.resolve().is_relative_to(folder.resolve())
    except (OSError, RuntimeError):
        return False


def money(value: Any, places: int = 2) -> str:
    """Format an amount as ``1,234.50``; empty for None."""
    from decimal import Decimal, InvalidOperation

    if value is None or value == "":
        return ""
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return str(value)
    return f"{number:,.{places}f}"


def cn_date(value: Any) -> str:
    """Format a date (or ``YYYY-MM`` string) as ``2024年5月1日``."""
    if value is None or value == "":
        return ""
    text = str(value)
    match = re.fullmatch(r"(\d{4})-(\d{1,2})(?:-(\d{1,2}))?", text[:10] if len(text) >= 10 else text)
    if not match:
        return text
    year, month, day = match.groups()
    result = f"{int(year)}年{int(month)}月"
    return result + (f"{int(day)}日" if day else "")


def mask_id(value: Any) -> str:
    """Mask an ID number for public use: first 6 and last 4 characters kept."""
    text = str(value or "")
    return text[:6] + "*" * (len(text) - 10) + text[-4:] if len(text) > 10 else text


def yes_no(value: Any, yes: str = "是", no: str = "否") -> str:
    if value is None:
        return ""
    return yes if value else no


def join_labels(value: Any, sep: str = "、") -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return sep.join(str(v) for v in value if v not in (None, ""))


def paragraphs(value: Any) -> list[str]:
    """Split free text on blank lines / newlines into paragraphs."""
    if not value:
        return []
    return [p.strip() for p in re.split(r"\n\s*\n|\n", str(value)) if p.strip()]


def _bytecode_cache() -> jinja2.BytecodeCache | None:
    """Compiled templates kept between runs (keyed by each template's source checksum)."""
    from .archive.outdir import user_cache_dir

    # "-2": templates are compiled with bounded * and ** since then; older bytecode is not
    folder = user_cache_dir("templates-2")
    if folder is None:
        return None
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return jinja2.FileSystemBytecodeCache(str(folder))


#: the filters the section templates know (the Word forms take the same)
FILTERS: dict[str, Callable[..., Any]] = {
    "money": money, "cn_date": cn_date, "mask_id": mask_id, "yes_no": yes_no, "join_labels": join_labels,
    "paragraphs": paragraphs,
}


@lru_cache(maxsize=16)
def _environment(search: tuple[Path, ...], builtin: Path) -> ImmutableSandboxedEnvironment:
    env = _BoundedSandbox(
        loader=_SearchPathLoader(search, builtin),
        bytecode_cache=_bytecode_cache(),
        autoescape=True,
        undefined=jinja2.ChainableUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        # A missing optional value prints as nothing, never as "None".
        finalize=lambda value: "" if value is None else value,
    )
    env.filters.update(FILTERS)
    # what can make a gigabyte in one call is bounded (loops are charged by ``range``)
    env.globals["range"] = _bounded_range
    env.globals.pop("lipsum", None)
    for name in ("center", "indent", "wordwrap", "truncate", "format"):
        env.filters[name] = _bounded_filter(env.filters[name])
    return env


_HUGE_WIDTH = re.compile(r"\d{7,}|\*")


def _bounded_filter(function: Callable[..., Any]) -> Callable[..., Any]:
    """``function`` refusing widths (or %-format widths) that would make huge strings."""
    import functools

    @functools.wraps(function)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        for value in (*args[1:], *kwargs.values()):
            if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_OUTPUT:
                raise SecurityError(f"过滤器 {function.__name__} 的参数 {value} 过大")
        if function.__name__ == "do_format" and args and isinstance(args[0], str) and _HUGE_WIDTH.search(args[0]):
            raise SecurityError("format 过滤器的宽度过大")
        return function(*args, **kwargs)

    return bounded


#: bounds of one section's rendering: output characters, loop steps and sequence items made
#: (``range`` calls and ``*`` repetitions), seconds; a section of a real household is ~10 KB
MAX_OUTPUT = 5_000_000
MAX_STEPS = 2_000_000
MAX_SECONDS = 60.0


class _Budget:
    """What one rendering may still spend; ``charge`` raises SecurityError past a bound."""

    def __init__(self) -> None:
        self.steps = MAX_STEPS
        self.deadline = time.monotonic() + MAX_SECONDS

    def charge(self, steps: int) -> None:
        self.steps -= max(0, steps)
        if self.steps < 0:
            raise SecurityError(f"模板的循环或重复次数超过上限 {MAX_STEPS}")
        if time.monotonic() > self.deadline:
            raise SecurityError(f"模板渲染超过 {MAX_SECONDS:g} 秒")


_BUDGET: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar("template_budget", default=None)


def _charge(steps: int) -> None:
    budget = _BUDGET.get()
    if budget is not None:
        budget.charge(steps)


def _bounded_range(*args: int) -> range:
    rng = safe_range(*args)
    _charge(len(rng))
    return rng


class _BoundedSandbox(ImmutableSandboxedEnvironment):
    """The sandbox, with ``*`` and ``**`` bounded: ``'a' * 10**9`` must not take 8 GB."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(left, int) and isinstance(right, int):
            if right > 0 and abs(left) > 1 and right * max(1, abs(left).bit_length()) > 4096:
                raise SecurityError("模板中的乘方结果过大")
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(times, int) and not isinstance(times, bool):
                    size = len(seq) * max(0, times)
                    if size > MAX_OUTPUT:
                        raise SecurityError(f"模板中重复生成的内容过大（{size} 项）")
                    _charge(size)
        return super().call_binop(context, operator, left, right)


def _template_line(exc: BaseException) -> str:
    """「sections/x.xml 第 N 行」 of the innermost template frame of ``exc``'s traceback."""
    where = ""
    tb = exc.__traceback__
    while tb is not None:
        name = tb.tb_frame.f_code.co_filename
        if name.endswith((".xml", ".html", ".j2", ".txt")) or "/templates/" in name.replace("\\", "/"):
            where = f"（{name} 第 {tb.tb_lineno} 行）"
        tb = tb.tb_next
    return where


def render_section_xml(tset: TemplateSet, template: str, context: Mapping[str, Any]) -> str:
    """Return the XML text a section template renders for ``context``, within the bounds
    above (output size, loop steps, time): a template is a file anyone may edit."""
    from .templates import builtin_root  # templates imports this module

    env = _environment(tset.search_path, builtin_root())
    token = _BUDGET.set(_Budget())
    try:
        parts: list[str] = []
        size = 0
        budget = _BUDGET.get()
        assert budget is not None
        for chunk in env.get_template(template).generate(context):
            size += len(chunk)
            if size > MAX_OUTPUT:
                raise SecurityError(f"模板生成的内容超过 {MAX_OUTPUT} 个字符")
            budget.charge(1)
            parts.append(chunk)
        return "".join(parts)
    except RecursionError as exc:
        raise TemplateError(
            f"模板 {template} 无限递归（引用了自身，或宏调用自己）{_template_line(exc)}",
            hint="请检查 {% include %}、{% extends %}、{% import %} 与宏，不要让模板引用自己",
        ) from None
    except MemoryError:
        raise TemplateError(f"模板 {template} 生成的内容过大，内存不足", hint="请检查模板中的循环与重复") from None
    except jinja2.TemplateNotFound as exc:
        searched = exc.message or ""
        raise TemplateError(f"找不到模板 {template}", hint=f"已查找：{searched}") from exc
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(
            f"模板 {exc.filename or template} 第 {exc.lineno} 行有语法错误：{exc.message}",
            hint="请检查 {{ }} 与 {% %} 标记是否成对、拼写是否正确",
        ) from exc
    except jinja2.exceptions.SecurityError as exc:
        raise TemplateError(
            f"模板 {template} 试图执行不允许的操作：{str(exc)[:200]}{_template_line(exc)}",
            hint="模板只能读取数据，不能调用内部方法；循环、重复和生成的内容都有上限",
        ) from None
    except (jinja2.TemplateError, TypeError, ValueError, ArithmeticError, AttributeError, LookupError) as exc:
        raise TemplateError(
            f"模板 {template} 渲染失败{_template_line(exc)}：{str(exc)[:200]}",
            hint="请检查模板中引用的字段名与运算",
        ) from None
    finally:
        _BUDGET.reset(token)
