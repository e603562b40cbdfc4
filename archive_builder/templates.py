"""Template sets: discovery, the search path, and sandboxed Jinja2 → document model.

A template set is a folder with ``templateset.toml`` (page geometry, font roles, the section
list and its grouping) and ``sections/*.xml``: Jinja2 templates, autoescaped and sandboxed,
that render a small XML vocabulary which :func:`parse_section` turns into the document model
(``archive_builder.document``). A county edits XML and TOML, never Python.

Search path (first match wins): the village's override folder → the data directory's
``templates/`` → the built-in set. ``{% extends "default:sections/cover.xml" %}`` always
reaches the built-in set, so an override can extend the template it replaces.

The parts: ``templatejinja`` (the sandboxed Jinja2 environment and its filters) and
``templatexml`` (section XML → document model); this module finds and reads template sets
and renders a packet's sections with them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from . import document as dm
from .errors import TemplateError, os_reason

# the section templates' filters: the reports and the Word forms take them from here
from .templatejinja import cn_date, join_labels, mask_id, money, paragraphs, render_section_xml, yes_no  # noqa: F401
from .templatexml import _none_section, parse_section

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
