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

import hashlib
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

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
        if ":" in template:
            prefix, _, rest = template.partition(":")
            folders = [self.builtin / prefix]
            template = rest
        else:
            folders = self.search
        for folder in folders:
            path = folder / template
            if path.is_file():
                mtime = path.stat().st_mtime_ns
                source = path.read_text(encoding="utf-8")
                return source, str(path), lambda p=path, m=mtime: p.stat().st_mtime_ns == m
        raise jinja2.TemplateNotFound(template, message="；".join(str(f / template) for f in folders))


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

    folder = user_cache_dir("templates")
    if folder is None:
        return None
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return jinja2.FileSystemBytecodeCache(str(folder))


@lru_cache(maxsize=16)
def _environment(search: tuple[Path, ...], builtin: Path) -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(
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
    return env


def render_section_xml(tset: TemplateSet, template: str, context: Mapping[str, Any]) -> str:
    """Return the XML text a section template renders for ``context``."""
    env = _environment(tset.search_path, builtin_root())
    try:
        return env.get_template(template).render(context)
    except jinja2.TemplateNotFound as exc:
        searched = exc.message or ""
        raise TemplateError(f"找不到模板 {template}", hint=f"已查找：{searched}") from exc
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(
            f"模板 {exc.filename or template} 第 {exc.lineno} 行有语法错误：{exc.message}",
            hint="请检查 {{ }} 与 {% %} 标记是否成对、拼写是否正确",
        ) from exc
    except jinja2.exceptions.SecurityError as exc:
        raise TemplateError(f"模板 {template} 试图执行不允许的操作：{exc}", hint="模板只能读取数据，不能调用内部方法") from exc
    except (jinja2.TemplateError, TypeError, ValueError, ArithmeticError, AttributeError) as exc:
        raise TemplateError(f"模板 {template} 渲染失败：{exc}", hint="请检查模板中引用的字段名与运算") from exc


# --------------------------------------------------------------------------- XML → model

_WS = re.compile(r"\s*\n\s*")


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
        return dm.Heading(_text(el), level=int(at.get("level", "1")))
    if tag == "p":
        size = at.get("size")
        return dm.Paragraph(
            _text(el),
            align=at.get("align", "justify"),  # type: ignore[arg-type]
            indent=_bool(at.get("indent"), True),
            role=at.get("role", "body"),  # type: ignore[arg-type]
            size=float(size) if size else None,
        )
    if tag == "kv":
        pairs = tuple((r.attrib.get("key", ""), _text(r)) for r in el if r.tag == "row")
        wide = tuple(r.attrib.get("key", "") for r in el if r.tag == "row" and _bool(r.attrib.get("wide"), False))
        return dm.KeyValue(pairs, columns=int(at.get("columns", "2")), wide=wide)
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
        return dm.Spacer(float(at.get("mm", "5")))
    if tag == "pagebreak":
        return dm.PageBreak()
    if tag == "qr":
        return dm.QRCode(_text(el), size_mm=float(at.get("size", "28")), caption=at.get("caption", ""))
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
    try:
        blocks = tuple(b for b in (_block(el, allowed_sources) for el in root) if b is not None)
    except TemplateError as exc:
        name = template or spec.template
        if name in exc.message:
            raise
        raise TemplateError(f"模板 {name}：{exc.message}", hint=exc.hint) from exc
    return dm.Section(
        key=spec.key,
        title=root.attrib.get("title", spec.title),
        blocks=blocks,
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
