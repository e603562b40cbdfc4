"""Template sets: discovery, the search path, and sandboxed Jinja2 → document model.

A template set is a folder with ``templateset.toml`` (page geometry, font roles, the section
list and its grouping) and ``sections/*.xml``: Jinja2 templates, autoescaped and sandboxed,
that render a small XML vocabulary which :func:`parse_section` turns into the document model
(``archive_builder.document``). A county edits XML and TOML, never Python.

Search path (first match wins): the village's override folder → the data directory's
``templates/`` → the built-in set. ``{% extends "default:sections/cover.xml" %}`` always
reaches the built-in set, so an override can extend the template it replaces.
"""

from __future__ import annotations

import contextvars
import hashlib
import math
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
from jinja2.exceptions import SecurityError
from jinja2.loaders import split_template_path
from jinja2.sandbox import ImmutableSandboxedEnvironment, safe_range

from . import document as dm
from .errors import TemplateError, os_reason

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - 3.10
    import tomli as tomllib  # type: ignore[no-redef]

SET_FILE = "templateset.toml"
BUILTIN_PREFIX = "default"


@lru_cache(maxsize=1)
def builtin_root() -> Path:
    """Return the folder holding the built-in template sets (looked up once per process:
    every section rendered asked, resolving the package's path each time).

    Installed, they live in the package as ``archive_builder/builtin_templates`` (setup.cfg maps
    the top-level ``templates/`` there); in a checkout or an editable install, ``templates/``.
    """
    here = Path(__file__).resolve().parent
    installed = here / "builtin_templates"
    if (installed / "default" / SET_FILE).is_file():
        return installed
    return here.parent / "templates"


@dataclass(frozen=True)
class SectionSpec:
    """One entry of a template set's section list."""

    key: str
    title: str
    template: str
    group: str | None = None
    #: context key whose truthiness decides whether the section has data
    requires: str | None = None
    #: "omit" = leave the section out; "none" = print a page saying 无
    if_empty: str = "omit"
    in_contents: bool = True
    #: a Word form (docxtpl .docx) replacing the XML template, relative to the set folder
    form: str | None = None


@dataclass(frozen=True)
class TemplateSet:
    """A resolved template set: where its files are and what it says."""

    name: str
    search_path: tuple[Path, ...]  # folders searched for templates, first wins
    sections: tuple[SectionSpec, ...]
    page: dm.PageSetup
    fonts: Mapping[str, str] = field(default_factory=dict)  # role -> "path[#index]"
    word_fonts: Mapping[str, str] = field(default_factory=dict)  # role -> font name in Word
    formats: tuple[str, ...] = ("pdf",)
    settings: Mapping[str, Any] = field(default_factory=dict)

    def fingerprint(self) -> str:
        """Return a hash of every file on the search path (content, not mtimes), once per set."""
        return _tree_hash(self.search_path)

    @property
    def form_sections(self) -> tuple[SectionSpec, ...]:
        """The sections that come from Word forms (they need LibreOffice for the PDF)."""
        return tuple(spec for spec in self.sections if spec.form)

    def form_path(self, spec: SectionSpec) -> Path:
        """Return the Word form of ``spec`` (first match on the search path, like templates)."""
        if not spec.form:
            raise TemplateError(f"模板集 {self.name} 的「{spec.title}」没有指定 Word 表单")
        return self.find(spec.form)

    def find(self, relpath: str) -> Path:
        """Return the first file named ``relpath`` on the search path."""
        for folder in self.search_path:
            candidate = folder / relpath
            if candidate.is_file():
                return candidate
        raise TemplateError(
            f"找不到模板文件 {relpath}",
            hint="已查找：" + "；".join(str(p / relpath) for p in self.search_path),
        )


_TREE_HASHES: dict[tuple[Any, ...], str] = {}


#: template folders the packets never read (village reports): editing them rebuilds no packet
REPORT_FOLDERS = frozenset({"stats", "notice"})


def _tree_hash(folders: Iterable[Path]) -> str:
    """Return a hash of the files' names and bytes; bytes are read again only when a stat changes."""
    files = []
    for folder in folders:
        if folder.is_dir():
            for path in sorted(p for p in folder.rglob("*")
                               if p.is_file() and p.relative_to(folder).parts[0] not in REPORT_FOLDERS):
                stat = path.stat()
                files.append((folder, path, stat.st_size, stat.st_mtime_ns))
    listing = tuple(files)
    cached = _TREE_HASHES.get(listing)
    if cached is None:
        digest = hashlib.sha256()
        for folder, path, _, _ in files:
            digest.update(str(path.relative_to(folder)).encode())
            digest.update(path.read_bytes())
        cached = _TREE_HASHES[listing] = digest.hexdigest()
    return cached


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise TemplateError(f"模板集配置 {path} 有语法错误：{exc}", hint="请按 TOML 语法修改该文件") from exc
    except OSError as exc:
        raise TemplateError(f"无法读取模板集配置 {path}：{os_reason(exc)}") from exc


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def resolve_set(
    name_or_path: str = "default",
    *,
    data_dir: Path | None = None,
    village_dir: Path | None = None,
) -> TemplateSet:
    """Return the template set named in archive.toml, with its override folders in front.

    ``name_or_path`` is a folder under ``DATA/templates/`` or the built-in root, or a path.
    Override folders (searched before the set itself): ``<village>/templates/`` and
    ``DATA/templates/`` (when it is not itself the chosen set).
    """
    builtin = builtin_root()
    candidates: list[Path] = []
    as_path = Path(name_or_path)
    if as_path.is_absolute():
        candidates.append(as_path)
    elif data_dir is not None:
        candidates.append(data_dir / name_or_path)
        candidates.append(data_dir / "templates" / name_or_path)
    candidates.append(builtin / name_or_path)
    chosen = next((c for c in candidates if (c / SET_FILE).is_file()), None)
    if chosen is None:
        raise TemplateError(
            f"找不到模板集「{name_or_path}」",
            hint="已查找：" + "；".join(str(c) for c in candidates) + "。请检查 archive.toml 中 [templates] set 的取值",
        )

    # The set's own config, layered over its parent (extends = "default").
    config = _read_toml(chosen / SET_FILE)
    chain = [chosen]
    parent = config.get("extends")
    while parent:
        parent_dir = builtin / parent
        if not (parent_dir / SET_FILE).is_file() or parent_dir in chain:
            raise TemplateError(f"模板集 {chosen} 声明 extends = \"{parent}\"，但找不到该模板集", hint=f"已查找：{parent_dir}")
        chain.append(parent_dir)
        parent_config = _read_toml(parent_dir / SET_FILE)
        config = _merge(parent_config, {k: v for k, v in config.items() if k != "extends"})
        parent = parent_config.get("extends")

    overrides: list[Path] = []
    if village_dir is not None and (village_dir / "templates").is_dir():
        overrides.append(village_dir / "templates")
    shared = data_dir / "templates" if data_dir is not None else None
    if shared is not None and shared.is_dir() and shared not in chain and not (shared / SET_FILE).is_file():
        overrides.append(shared)
    search = tuple(dict.fromkeys([*overrides, *chain]))
    # Font files named by a set are relative to the set's folder.
    config = {**config, "fonts": {role: absolute_font(value, chosen) for role, value in config.get("fonts", {}).items()}}
    tset = _build_set(config, chosen.name, search)
    for spec in tset.form_sections:
        path = tset.form_path(spec)  # a missing form is the set's error, not one household's
        if path.suffix.lower() != ".docx":
            raise TemplateError(
                f"模板集 {tset.name} 中「{spec.title}」的 Word 表单 {spec.form} 不是 .docx 文件",
                hint="请用 Word 或 WPS 打开后另存为 .docx（Word 文档）",
            )
    return tset


def absolute_font(value: str, base: Path) -> str:
    """Return a ``path[#index]`` font setting with the path made absolute against ``base``."""
    path, sep, index = str(value).partition("#")
    if not path or Path(path).is_absolute():
        return str(value)
    return str((base / path).resolve()) + sep + index


def _build_set(config: Mapping[str, Any], name: str, search: tuple[Path, ...]) -> TemplateSet:
    page_conf = dict(config.get("page", {}))
    sizes = {**dm.PageSetup().sizes, **page_conf.pop("sizes", {})}
    allowed = {f for f in dm.PageSetup.__dataclass_fields__ if f != "sizes"}
    unknown = set(page_conf) - allowed
    if unknown:
        raise TemplateError(
            f"模板集 {name} 的 [page] 中有未知设置：{'、'.join(sorted(unknown))}",
            hint="可用设置：" + "、".join(sorted(allowed)),
        )
    page = dm.PageSetup(**page_conf, sizes=sizes)
    sections = []
    for index, entry in enumerate(config.get("sections", [])):
        try:
            sections.append(SectionSpec(**entry))
        except TypeError as exc:
            raise TemplateError(
                f"模板集 {name} 的第 {index + 1} 个 [[sections]] 条目无效：{exc}",
                hint="每个条目需要 key、title、template，可选 group、requires、if_empty、in_contents、form",
            ) from exc
    if not sections:
        raise TemplateError(f"模板集 {name} 没有定义任何 [[sections]]", hint="请在 templateset.toml 中列出各部分")
    # [forms] key = "forms/x.docx": a Word form replaces that section's XML template, so a
    # set that extends another need not repeat the whole section list
    forms = config.get("forms", {})
    if not isinstance(forms, Mapping):
        raise TemplateError(f"模板集 {name} 的 [forms] 应为「部分 key = 表单路径」", hint='例如 application = "forms/申请书.docx"')
    keys = {spec.key for spec in sections}
    unknown_forms = [key for key in forms if key not in keys]
    if unknown_forms:
        raise TemplateError(
            f"模板集 {name} 的 [forms] 中有未知的部分：{'、'.join(unknown_forms)}",
            hint="可用的部分：" + "、".join(spec.key for spec in sections),
        )
    sections = [replace(spec, form=str(forms[spec.key]) or None) if spec.key in forms else spec for spec in sections]
    sections = _with_audit_page(name, config.get("audit", {}), sections)
    formats = tuple(config.get("output", {}).get("formats", ["pdf"]))
    settings = _settings(name, config.get("settings", {}))
    return TemplateSet(
        name=name,
        search_path=search,
        sections=tuple(sections),
        page=page,
        fonts=dict(config.get("fonts", {})),
        word_fonts=dict(config.get("word_fonts", {})),
        formats=formats,
        settings=settings,
    )


#: the packet's audit page ([audit] page = true): the household's 问题台账 rows, before 备考表
AUDIT_SECTION = SectionSpec(key="audit", title="问题台账", template="sections/audit.xml", requires="audit")


def _with_audit_page(name: str, raw: Any, sections: list[SectionSpec]) -> list[SectionSpec]:
    """``sections`` with the audit page added when the set's ``[audit]`` asks (``page = true``).

    Off unless asked: the default set prints no such page. A household without problems gets
    none, unless ``if_empty = "none"`` (a page saying 无)."""
    allowed = {"page": "true 时在档卡中加入本户问题台账页", "title": "该页在目录中的标题，默认「问题台账」",
               "if_empty": "\"omit\"（默认）没有问题时不加该页；\"none\" 加一页写「无」"}
    hint = "可用设置：" + "；".join(f"{k}：{v}" for k, v in allowed.items())
    if not isinstance(raw, Mapping) or any(key not in allowed for key in raw):
        raise TemplateError(f"模板集 {name} 的 [audit] 设置无效", hint=hint)
    page, title, if_empty = raw.get("page", False), raw.get("title", AUDIT_SECTION.title), raw.get("if_empty", "omit")
    if not isinstance(page, bool) or not isinstance(title, str) or not title.strip() or if_empty not in ("omit", "none"):
        raise TemplateError(f"模板集 {name} 的 [audit] 设置无效：page 应为 true 或 false，title 为文字，"
                            "if_empty 为 \"omit\" 或 \"none\"", hint=hint)
    if not page or any(spec.key == AUDIT_SECTION.key for spec in sections):
        return sections  # a set may also list the section itself, wherever it likes
    spec = replace(AUDIT_SECTION, title=title.strip(), if_empty=if_empty)
    at = next((i for i, s in enumerate(sections) if s.key == "remarks"), len(sections))
    return [*sections[:at], spec, *sections[at:]]


def wants_audit(tset: TemplateSet) -> bool:
    """True when the set's packets have the audit page (the build then audits each household)."""
    return any(spec.requires == AUDIT_SECTION.requires for spec in tset.sections)


#: [settings] of a template set: key → (lowest, highest, what it is, in Chinese)
SETTINGS: dict[str, tuple[float, float, str]] = {
    "evidence_dpi": (72, 600, "照片和扫描件的打印分辨率（dpi），默认 200"),
    "form_timeout": (1, 3600, "LibreOffice 转换一份 Word 表单的最长秒数，默认 120"),
}


def _settings(name: str, raw: Any) -> dict[str, Any]:
    """Check ``[settings]`` now, so a typo is one clear error instead of a failure per household."""
    allowed = "；".join(f"{key}：{what}（{low:g}–{high:g}）" for key, (low, high, what) in SETTINGS.items())
    if not isinstance(raw, Mapping):
        raise TemplateError(f"模板集 {name} 的 [settings] 应为「名称 = 数值」", hint="可用设置：" + allowed)
    for key, value in raw.items():
        if key not in SETTINGS:
            raise TemplateError(f"模板集 {name} 的 [settings] 中有未知设置：{key}", hint="可用设置：" + allowed)
        low, high, what = SETTINGS[key]
        number = value if isinstance(value, int | float) and not isinstance(value, bool) else None
        if number is None or not low <= number <= high or (key == "evidence_dpi" and number != int(number)):
            raise TemplateError(
                f"模板集 {name} 的 [settings] {key} = {value!r} 无效：应为 {low:g} 到 {high:g} 之间的"
                f"{'整数' if key == 'evidence_dpi' else '数字'}",
                hint=f"{key}：{what}",
            )
    return dict(raw)


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
    env.filters.update(
        money=money, cn_date=cn_date, mask_id=mask_id, yes_no=yes_no, join_labels=join_labels, paragraphs=paragraphs
    )
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


# --------------------------------------------------------------------------- XML → model

_WS = re.compile(r"\s*\n\s*")
#: characters XML 1.0 cannot hold (control characters, surrogates, U+FFFE/U+FFFF)
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _text(element: ET.Element) -> str:
    """Return the element's text with template line breaks removed and <br/> kept."""
    parts = [_WS.sub("", element.text or "")]
    for child in element:
        if child.tag == "br":
            parts.append("\n")
        else:
            parts.append(_text(child))
        parts.append(_WS.sub("", child.tail or ""))
    return "".join(parts).strip()


def _bool(value: str | None, default: bool) -> bool:
    if value is None:
        return default
    return value.strip().lower() in ("1", "true", "yes", "是")


def _cells(row: ET.Element) -> tuple[str, ...]:
    return tuple(_text(c) for c in row if c.tag in ("c", "td", "th"))


def _floats(value: str | None) -> tuple[float, ...]:
    if not value:
        return ()
    try:
        numbers = tuple(float(v) for v in value.replace("，", ",").split(","))
    except ValueError:
        raise TemplateError(f"<table> 的 widths=\"{value}\" 不是一组数字",
                            hint="应为用逗号分隔的相对宽度，例如 widths=\"4,3,10\"") from None
    if any(not (n >= 0) or n == float("inf") for n in numbers):
        raise TemplateError(f"<table> 的 widths=\"{value}\" 中有负数或无效的数",
                            hint="相对宽度应为非负数，例如 widths=\"4,3,10\"")
    return numbers


_ALIGNS = ("left", "center", "right", "justify")


class _BadAttribute(ValueError):
    """An attribute of a template's XML that is not a usable number."""


def _number(value: str | None, name: str, low: float, high: float, default: float | None = None) -> float:
    """``value`` as a finite number within [low, high]; raise _BadAttribute naming ``name``."""
    if value is None:
        assert default is not None
        return default
    try:
        number = float(value.strip())
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or not low <= number <= high:
        raise _BadAttribute(f"{name}=\"{value[:20]}\" 不是 {low:g} 到 {high:g} 之间的数字")
    return number


def _integer(value: str | None, name: str, low: int, high: int, default: int) -> int:
    number = _number(value, name, low, high, default)
    if number != int(number):
        raise _BadAttribute(f"{name}=\"{value}\" 应为整数")
    return int(number)


def _aligns(value: str | None) -> tuple[Any, ...]:
    if not value:
        return ()
    aligns = tuple(v.strip() for v in value.replace("，", ",").split(","))
    unknown = [a for a in aligns if a not in _ALIGNS]
    if unknown:
        raise TemplateError(f"<table> 的 align 中有未知的对齐方式：{'、'.join(unknown)}",
                            hint="可用：left、center、right、justify")
    return aligns


def _block(el: ET.Element, allowed_sources: frozenset[str] | None) -> dm.Block | None:
    tag, at = el.tag, el.attrib
    if tag == "title":
        return dm.Title(_text(el), subtitle=at.get("subtitle", ""))
    if tag == "heading":
        return dm.Heading(_text(el), level=_integer(at.get("level"), "level", 1, 2, 1))
    if tag == "p":
        size = at.get("size")
        return dm.Paragraph(
            _text(el),
            align=at.get("align", "justify"),  # type: ignore[arg-type]
            indent=_bool(at.get("indent"), True),
            role=at.get("role", "body"),  # type: ignore[arg-type]
            size=_number(size, "size", 4.0, 72.0) if size else None,
        )
    if tag == "kv":
        pairs = tuple((r.attrib.get("key", ""), _text(r)) for r in el if r.tag == "row")
        wide = tuple(r.attrib.get("key", "") for r in el if r.tag == "row" and _bool(r.attrib.get("wide"), False))
        return dm.KeyValue(pairs, columns=_integer(at.get("columns"), "columns", 1, 6, 2), wide=wide)
    if tag == "table":
        header: tuple[str, ...] = ()
        rows: list[tuple[str, ...]] = []
        footer: list[tuple[str, ...]] = []
        for child in el:
            if child.tag == "th":
                header = _cells(child)
            elif child.tag == "tr":
                rows.append(_cells(child))
            elif child.tag == "tfoot":
                footer.extend(_cells(r) for r in child if r.tag == "tr")
        columns = len(header) or max((len(r) for r in rows), default=0)
        widths, aligns = _floats(at.get("widths")), _aligns(at.get("align"))
        for name, values in (("widths", widths), ("align", aligns)):
            if values and columns and len(values) != columns:
                raise TemplateError(
                    f"<table> 的 {name} 有 {len(values)} 项，但表格有 {columns} 列",
                    hint=f"{name} 应为 {columns} 个用逗号分隔的值，每列一个（或删去 {name}）",
                )
        return dm.Table(
            header, tuple(rows), widths=widths, align=aligns,
            footer=tuple(footer), caption=at.get("caption", ""),
        )
    if tag == "signature":
        labels = tuple(_text(c) for c in el if c.tag == "label") or tuple(
            x for x in at.get("labels", "").split("|") if x
        )
        return dm.Signature(labels, date=at.get("date", ""), fingerprint=_bool(at.get("fingerprint"), False))
    if tag == "spacer":
        return dm.Spacer(_number(at.get("mm"), "mm", 0.0, 300.0, 5.0))
    if tag == "pagebreak":
        return dm.PageBreak()
    if tag == "qr":
        return dm.QRCode(_text(el), size_mm=_number(at.get("size"), "size", 10.0, 100.0, 28.0), caption=at.get("caption", ""))
    if tag == "contents":
        return dm.Contents()
    if tag == "evidence":
        source = at.get("source", "")
        if allowed_sources is not None and source not in allowed_sources:
            raise TemplateError(
                f"模板引用的佐证材料 {at.get('display', source)} 不属于本户",
                hint="<evidence> 只能使用上下文 evidence_items 中的文件",
            )
        return dm.Evidence(
            source, at.get("display", source), title=at.get("title", ""), kind=at.get("kind", ""),
            date=at.get("date", ""),
        )
    raise TemplateError(
        f"模板中出现未知标记 <{tag}>",
        hint="可用标记：title、heading、p、kv/row、table/th/tr/tfoot/c、signature/label、spacer、pagebreak、qr、contents、evidence",
    )


def parse_section(
    xml_text: str, spec: SectionSpec, *, template: str = "", allowed_sources: frozenset[str] | None = None
) -> dm.Section | None:
    """Return the section the XML describes, or None when it says ``skip="true"``."""
    if _NOT_XML.search(xml_text):
        # record text read elsewhere than the loader (which reports them): map, never fail
        xml_text = _NOT_XML.sub(lambda m: "\n" if m.group() == "\x0b" else "", xml_text)
    try:
        root = ET.fromstring(xml_text)
    except ET.ParseError as exc:
        line = exc.position[0] if exc.position else 0
        snippet = xml_text.splitlines()[line - 1].strip() if 0 < line <= len(xml_text.splitlines()) else ""
        raise TemplateError(
            f"模板 {template or spec.template} 生成的内容不是有效的 XML（第 {line} 行）：{snippet[:80]}",
            hint="请检查标记是否闭合；数据会自动转义，不要在模板中使用 |safe",
        ) from exc
    if root.tag != "section":
        raise TemplateError(f"模板 {template or spec.template} 的最外层标记应为 <section>，实为 <{root.tag}>")
    if _bool(root.attrib.get("skip"), False):
        return None
    name = template or spec.template
    blocks = []
    for el in root:
        try:
            block = _block(el, allowed_sources)
        except _BadAttribute as exc:
            raise TemplateError(
                f"模板 {name} 中 <{el.tag}> 的属性 {exc}",
                hint="请改正模板中该标记的属性",
            ) from None
        except TemplateError as exc:
            if name in exc.message:
                raise
            raise TemplateError(f"模板 {name}：{exc.message}", hint=exc.hint) from exc
        if block is not None:
            blocks.append(block)
    return dm.Section(
        key=spec.key,
        title=root.attrib.get("title", spec.title),
        blocks=tuple(blocks),
        layout=root.attrib.get("layout", "form"),  # type: ignore[arg-type]
        in_contents=_bool(root.attrib.get("in_contents"), spec.in_contents),
    )


def _none_section(spec: SectionSpec) -> dm.Section:
    return dm.Section(spec.key, spec.title, (dm.Title(spec.title), dm.Paragraph("无", align="center", indent=False)))


def _present(context: Mapping[str, Any], key: str | None) -> bool:
    if not key:
        return True
    value: Any = context
    for part in key.split("."):
        value = value.get(part) if isinstance(value, Mapping) else getattr(value, part, None)
    return bool(value)


def render_sections(
    tset: TemplateSet,
    context: Mapping[str, Any],
    *,
    allowed_sources: frozenset[str] | None = None,
    form_section: Callable[[SectionSpec], dm.Section | None] | None = None,
) -> list[dm.Section]:
    """Return the packet's sections in order, separators assigned to the first of each group."""
    sections: list[dm.Section] = []
    last_group: str | None = None
    for spec in tset.sections:
        if not _present(context, spec.requires):
            if spec.if_empty != "none":
                continue
            section: dm.Section | None = _none_section(spec)
        elif spec.form and form_section is not None:
            section = form_section(spec)
        else:
            xml_text = render_section_xml(tset, spec.template, context)
            try:
                section = parse_section(xml_text, spec, template=spec.template, allowed_sources=allowed_sources)
            except TemplateError as exc:  # name the file itself: a county's copy or the built-in one
                where = str(tset.find(spec.template))
                raise TemplateError(exc.message.replace(f"模板 {spec.template}", f"模板 {where}", 1),
                                    hint=exc.hint) from exc
        if section is None:
            continue
        if spec.group and spec.group != last_group:
            section = replace(section, separator=spec.group)
        last_group = spec.group
        sections.append(section)
    return sections
