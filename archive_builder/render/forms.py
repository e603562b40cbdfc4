"""Organisation-supplied Word forms (docxtpl) and their conversion to PDF (LibreOffice).

* :func:`render_form` fills a ``.docx`` with docxtpl tags and drops the styles the filled
  form does not use (:func:`slim`: LibreOffice reads every style of every form it converts).
  Autoescaping is ALWAYS on:
  with docxtpl's default a value containing ``<`` silently truncates the document and a bare
  ``&`` disappears.  The Jinja environment is sandboxed (forms come from
  outside) and records variables the form uses but the context lacks; those, and fonts the
  form names that this machine lacks, come back as Chinese warnings.
* :class:`LibreOffice` converts a rendered form to PDF headless, with its own profile
  directory (one converter per worker process: :func:`converter`), a timeout that kills the
  whole process group, and a Chinese :class:`~archive_builder.errors.ExternalToolError`
  naming the package to install when LibreOffice is missing.
* :func:`insert_form` (used by ``render/docx.py``) copies a rendered form into a Word packet
  as its own section: styles are copied under a per-form prefix (so the form keeps its own
  look and does not restyle the packet), images, hyperlinks and lists come along, theme
  fonts are resolved to the form's own font names, page size and margins are the form's.

Why one module of this size: filling a Word form and converting it with LibreOffice are one
boundary with an external program; its time-outs, profiles and font checks are read
together.
"""

from __future__ import annotations

import atexit
import copy
import functools
import io
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from lxml import etree

from ..errors import ExternalToolError, TemplateError, os_reason

W_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
R_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
A_NS = "http://schemas.openxmlformats.org/drawingml/2006/main"
WP_NS = "http://schemas.openxmlformats.org/drawingml/2006/wordprocessingDrawing"
RT_IMAGE = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/image"
RT_HYPERLINK = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/hyperlink"

LIBREOFFICE_MISSING = (
    "未找到 LibreOffice，无法把 Word 表单转换为 PDF。请安装：sudo apt-get install "
    "libreoffice-writer-nogui（Windows/macOS：安装 LibreOffice 并确保 soffice 在 PATH 中）"
)
#: environment variable naming the soffice executable explicitly
SOFFICE_ENV = "ARCHIVE_BUILDER_SOFFICE"
#: where LibreOffice usually lives when it is not on PATH
CANDIDATE_PATHS: tuple[str, ...] = (
    "/usr/bin/soffice",
    "/usr/lib/libreoffice/program/soffice",
    "/opt/libreoffice/program/soffice",
    "/snap/bin/libreoffice",
    "/Applications/LibreOffice.app/Contents/MacOS/soffice",
    r"C:\Program Files\LibreOffice\program\soffice.exe",
    r"C:\Program Files (x86)\LibreOffice\program\soffice.exe",
)
DEFAULT_TIMEOUT = 120.0


def w(tag: str) -> str:
    return f"{{{W_NS}}}{tag}"


# ====================================================================== rendering


def _clean(value: Any) -> Any:
    """Jinja ``finalize``: strip characters XML cannot carry from printed strings."""
    if isinstance(value, str):
        from .wordml import clean_text

        return clean_text(value)
    return value


#: the variables the form being rendered (in this thread) used but the context lacks
_MISSING = threading.local()
#: compiled templates kept per source (docxtpl compiles each part's XML on every render)
COMPILED_LIMIT = 64


@functools.lru_cache(maxsize=1)
def _environment() -> Any:
    """The process's Jinja environment for forms (sandboxed, autoescaped), built once: it keeps
    each part's compiled template, so the next household's form is not compiled again."""
    from jinja2 import ChainableUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class RecordingUndefined(ChainableUndefined):
        """Prints as empty (like the section templates), but remembers what was missing."""

        __slots__ = ()

        def __str__(self) -> str:
            missing = getattr(_MISSING, "names", None)
            if self._undefined_name and missing is not None:
                missing.add(str(self._undefined_name))
            return ""

    class FormEnvironment(ImmutableSandboxedEnvironment):
        compiled: dict[str, Any]

        def from_string(self, source: Any, globals: Any = None, template_class: Any = None) -> Any:
            if globals is not None or template_class is not None or not isinstance(source, str):
                return super().from_string(source, globals, template_class)
            template = self.compiled.get(source)
            if template is None:
                template = super().from_string(source)
                if len(self.compiled) >= COMPILED_LIMIT:
                    self.compiled.clear()
                self.compiled[source] = template
            return template

    env = FormEnvironment(autoescape=True, undefined=RecordingUndefined, finalize=_clean)
    env.compiled = {}
    # the filters the built-in section templates know, so a form can use the same
    from ..templatejinja import FILTERS

    env.filters.update(FILTERS)
    return env


def render_form(template: Path, context: Mapping[str, Any], out: Path) -> list[str]:
    """Render the docxtpl form ``template`` with ``context`` into ``out``; return warnings.

    Values are autoescaped, so ``<``, ``&`` and ``>`` in the data come out intact.  Raises
    :class:`TemplateError` (Chinese) when the form is missing, not a Word file, or its tags
    are invalid.
    """
    from docxtpl import DocxTemplate
    from jinja2 import TemplateError as JinjaError

    template = Path(template)
    name = template.name
    if not template.is_file():
        raise TemplateError(f"找不到 Word 表单：{template}", hint="请检查模板集中 form 指定的路径")
    if not zipfile.is_zipfile(template):
        raise TemplateError(f"Word 表单 {name} 不是 .docx 文件（可能是旧的 .doc 格式或已损坏）",
                            hint="请用 Word 或 WPS 打开后另存为 .docx")
    missing: set[str] = set()
    _MISSING.names = missing
    try:
        tpl = DocxTemplate(str(template))
        tpl.render(dict(context), jinja_env=_environment(), autoescape=True)
    except JinjaError as e:
        lines = getattr(e, "docx_context", None)
        where = "；附近内容：" + " ".join(x.strip() for x in lines if x.strip())[:80] if lines else ""
        raise TemplateError(f"Word 表单 {name} 中的标签有误：{e}{where}",
                            hint="检查 {{ }}、{% %} 是否成对，{%tr %} 等标签是否单独占一行/一格") from e
    except etree.XMLSyntaxError as e:
        raise TemplateError(f"Word 表单 {name} 填入数据后不是有效的 Word 文档：{e}",
                            hint="标签可能被 Word 拆进了不同的格式片段；请重新输入整个标签") from e
    finally:
        _MISSING.names = None
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    slim(tpl.docx)
    tpl.save(str(out))
    warnings = []
    if missing:
        names = "、".join(sorted(missing))
        warnings.append(f"Word 表单 {name} 用到的数据项 {names} 没有数据，已留空；请检查表单中的变量名")
    warnings.extend(_template_font_warnings(template, name))
    return warnings


#: relationships of parts a filled form does not need
_UNNEEDED = ("/stylesWithEffects", "/metadata/thumbnail")


def slim(document: Any) -> None:
    """Drop what a filled form carries but neither LibreOffice nor the Word packet needs:
    styles nothing uses (with their ``basedOn``/``link``/``next`` chains and the defaults
    kept), the latent-style list, Word 2010's ``stylesWithEffects`` copy and the thumbnail.

    Forms made from Word's or python-docx's default template carry ~160 styles (~800 KB of
    XML) for a handful used; LibreOffice reads them all for every form it converts.
    """
    package = document.part.package
    styles = document.styles.element
    used: set[str] = set()
    for part in package.iter_parts():
        root = getattr(part, "_element", None)
        if root is None or root is styles:
            continue
        for node in root.iter(w("pStyle"), w("rStyle"), w("tblStyle"), w("numStyleLink"), w("styleLink")):
            if node.get(w("val")):
                used.add(node.get(w("val")))
    by_id = {st.get(w("styleId")): st for st in styles.findall(w("style"))}
    used |= {sid for sid, st in by_id.items() if st.get(w("default")) in ("1", "true", "on")}
    todo = list(used)
    while todo:
        st = by_id.get(todo.pop())
        if st is None:
            continue
        for tag in ("basedOn", "link", "next"):
            ref = st.find(w(tag))
            if ref is not None and ref.get(w("val")) not in used:
                used.add(ref.get(w("val")))
                todo.append(ref.get(w("val")))
    for sid, st in by_id.items():
        if sid not in used:
            styles.remove(st)
    latent = styles.find(w("latentStyles"))
    if latent is not None:
        styles.remove(latent)
    for rels in (document.part.rels, package.rels):
        for rid, rel in list(rels.items()):
            if rel.reltype.endswith(_UNNEEDED):
                rels.pop(rid)


def _template_font_warnings(template: Path, label: str) -> list[str]:
    """:func:`missing_font_warnings` of the form itself: its fonts do not depend on the data,
    so they are read once per version of the file in a process."""
    stat = template.stat()
    return missing_font_warnings(template, label=label,
                                 fonts=_form_fonts_of(template.resolve(), stat.st_mtime_ns, stat.st_size))


@functools.lru_cache(maxsize=32)
def _form_fonts_of(template: Path, mtime_ns: int, size: int) -> frozenset[str]:
    return frozenset(form_fonts(template))


# ====================================================================== fonts


def form_fonts(docx: Path) -> set[str]:
    """Font names a Word file's text can use: document defaults, the styles its paragraphs,
    runs and tables use (with their basedOn chains), and fonts named on runs directly."""
    names: set[str] = set()

    def add(root: Any) -> None:
        for rf in root.iter(w("rFonts")):
            for attr in ("ascii", "hAnsi", "eastAsia"):
                v = rf.get(w(attr))
                if v:
                    names.add(v)

    with zipfile.ZipFile(docx) as z:
        members = set(z.namelist())
        parts = [m for m in members if re.fullmatch(r"word/(document|header\d*|footer\d*)\.xml", m)]
        used: set[str] = set()
        for member in parts:
            try:
                root = etree.fromstring(z.read(member))
            except etree.XMLSyntaxError:
                continue
            add(root)
            for node in root.iter(w("pStyle"), w("rStyle"), w("tblStyle")):
                used.add(node.get(w("val"), ""))
        if "word/styles.xml" in members:
            try:
                styles = etree.fromstring(z.read("word/styles.xml"))
            except etree.XMLSyntaxError:
                return names
            defaults = styles.find(w("docDefaults"))
            if defaults is not None:
                add(defaults)
            by_id = {st.get(w("styleId")): st for st in styles.findall(w("style"))}
            todo = list(used) + [sid for sid, st in by_id.items() if st.get(w("default")) == "1"]
            seen: set[str] = set()
            while todo:
                sid = todo.pop()
                if sid in seen or sid not in by_id:
                    continue
                seen.add(sid)
                add(by_id[sid])
                for ref in ("basedOn", "link"):
                    el = by_id[sid].find(w(ref))
                    if el is not None:
                        todo.append(el.get(w("val"), ""))
    return names


@functools.lru_cache(maxsize=1)
def installed_font_families() -> frozenset[str] | None:
    """Family names fontconfig knows (all localised names), or None without fc-list."""
    fc = shutil.which("fc-list")
    if not fc:
        return None
    try:
        out = subprocess.run([fc, ":", "family"], capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    families: set[str] = set()
    for line in out.stdout.decode("utf-8", "replace").splitlines():
        for name in line.split(","):
            name = name.strip().replace("\\-", "-")
            if name:
                families.add(name.casefold())
    return frozenset(families)


def missing_font_warnings(docx: Path, *, label: str = "", fonts: Iterable[str] | None = None) -> list[str]:
    """Chinese warnings for fonts the form names that are not installed (needs fc-list);
    ``fonts``: the form's fonts when already known (:func:`form_fonts`)."""
    installed = installed_font_families()
    if installed is None:
        return []
    missing = sorted(n for n in (form_fonts(docx) if fonts is None else fonts) if n.casefold() not in installed)
    if not missing:
        return []
    return [
        (
            f"Word 表单 {label or Path(docx).name} 使用的字体 {'、'.join(missing)} 在本机未安装，"
            "转换为 PDF 时会用其他字体代替，版式可能变化；请安装这些字体后执行 fc-cache -f"
        )
    ]


def lost_characters(docx: Path, pdf: Path) -> list[str]:
    """Characters of the filled form's body that its converted PDF does not contain.

    LibreOffice silently drops a character when the font a run names is missing and its
    stand-in lacks the glyph (e.g. 𠮷 in a 宋体 run on a machine without 宋体); the PDF
    writer's own fallback fonts do not help there, so the caller warns instead.
    """
    import pypdfium2 as pdfium

    with zipfile.ZipFile(docx) as z:
        root = etree.fromstring(z.read("word/document.xml"))
    wanted = {ch for t in root.iter(w("t")) for ch in (t.text or "") if not ch.isspace()}
    from .pdfiumlock import PDFIUM

    with PDFIUM:  # pdfium is not thread-safe (the web app's Word copies)
        document = pdfium.PdfDocument(str(pdf))
        try:
            found: set[str] = set()
            for i in range(len(document)):
                page = document[i]
                textpage = page.get_textpage()
                found.update(textpage.get_text_range())
                textpage.close()
                page.close()
        finally:
            document.close()
    return sorted(wanted - found)


# ====================================================================== LibreOffice


def find_soffice() -> str | None:
    """Return the LibreOffice executable: $ARCHIVE_BUILDER_SOFFICE, PATH, usual places."""
    explicit = os.environ.get(SOFFICE_ENV)
    if explicit and Path(explicit).is_file():
        return explicit
    for name in ("soffice", "libreoffice"):
        found = shutil.which(name)
        if found:
            return found
    for candidate in CANDIDATE_PATHS:
        if Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


class LibreOffice:
    """A headless LibreOffice converter with a private profile directory.

    One instance per worker process (:func:`converter`): two soffice processes sharing a
    profile block each other.  Each :meth:`convert` runs one soffice; the profile is kept,
    so only the first conversion pays for creating it.
    """

    def __init__(self, executable: str | None = None, *, timeout: float = DEFAULT_TIMEOUT,
                 profile_dir: Path | None = None) -> None:
        exe = executable or find_soffice()
        if not exe:
            raise ExternalToolError(LIBREOFFICE_MISSING)
        self.executable = exe
        self.timeout = float(timeout)
        self._own_profile = profile_dir is None
        self.profile_dir = Path(profile_dir) if profile_dir else Path(
            tempfile.mkdtemp(prefix=f"ab-lo-{os.getpid()}-"))

    def __enter__(self) -> LibreOffice:  # noqa: PYI034 - typing.Self needs Python 3.11
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._own_profile:
            shutil.rmtree(self.profile_dir, ignore_errors=True)

    def command(self, sources: Iterable[Path], out_dir: Path) -> list[str]:
        return [
            self.executable,
            f"-env:UserInstallation={self.profile_dir.resolve().as_uri()}",
            "--headless", "--invisible", "--nologo", "--norestore", "--nolockcheck",
            "--nodefault", "--convert-to", "pdf", "--outdir", str(out_dir),
            *(str(s) for s in sources),
        ]

    def convert(self, docx: Path, out_dir: Path) -> Path:
        """Convert ``docx`` to ``out_dir/<stem>.pdf`` and return that path."""
        return self.convert_many([docx], out_dir)[0]

    def convert_many(self, sources: list[Path], out_dir: Path) -> list[Path]:
        """Convert several files in one soffice run (much cheaper than one run each)."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        sources = [Path(s).resolve() for s in sources]
        for s in sources:
            if not s.is_file():
                raise ExternalToolError(f"要转换的 Word 文件不存在：{s}")
        # a private directory: parallel conversions into the same out_dir cannot collide
        work = Path(tempfile.mkdtemp(prefix=".lo-", dir=out_dir))
        try:
            stdout, stderr = self._run(self.command(sources, work), sources)
            results = []
            for s in sources:
                made = work / f"{s.stem}.pdf"
                if not made.is_file() or made.stat().st_size == 0:
                    detail = (stderr or stdout).strip().splitlines()[-3:]
                    raise ExternalToolError(
                        f"LibreOffice 未能把 {s.name} 转换为 PDF" +
                        (f"：{' '.join(detail)}" if detail else ""),
                        hint="请用 Word/WPS/LibreOffice 打开该文件检查是否损坏")
                target = out_dir / made.name
                os.replace(made, target)
                results.append(target)
            return results
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _run(self, cmd: list[str], sources: list[Path]) -> tuple[str, str]:
        kwargs: dict[str, Any] = {}
        if sys.platform == "win32":
            kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP  # type: ignore[attr-defined]
        else:
            kwargs["start_new_session"] = True
        env = dict(os.environ)
        env.setdefault("SAL_USE_VCLPLUGIN", "svp")
        try:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    stdin=subprocess.DEVNULL, env=env, **kwargs)
        except OSError as e:
            raise ExternalToolError(f"无法启动 LibreOffice（{self.executable}）：{os_reason(e)}",
                                    hint=LIBREOFFICE_MISSING) from e
        try:
            out, err = proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            names = "、".join(s.name for s in sources)
            raise ExternalToolError(
                f"LibreOffice 转换 {names} 超过 {self.timeout:g} 秒仍未完成，已强制结束",
                hint="请检查该表单是否过大或损坏；也可调大转换超时后重试") from None
        text_out = out.decode("utf-8", "replace")
        text_err = err.decode("utf-8", "replace")
        if proc.returncode != 0:
            raise ExternalToolError(
                f"LibreOffice 转换失败（退出码 {proc.returncode}）：{text_err.strip()[-300:]}",
                hint="请检查 LibreOffice 能否正常启动（soffice --headless --version）")
        return text_out, text_err


def _kill_group(proc: subprocess.Popen) -> None:
    """Kill soffice and everything it started (oosplash → soffice.bin)."""
    try:
        if sys.platform == "win32":
            subprocess.run(["taskkill", "/F", "/T", "/PID", str(proc.pid)],
                           capture_output=True, check=False)
        else:
            os.killpg(proc.pid, signal.SIGKILL)
    except (OSError, ProcessLookupError):
        pass
    try:
        proc.kill()
    except OSError:
        pass
    try:
        proc.communicate(timeout=10)
    except (subprocess.TimeoutExpired, ValueError, OSError):
        pass


_CONVERTERS: dict[int, LibreOffice] = {}


def converter(timeout: float = DEFAULT_TIMEOUT) -> LibreOffice:
    """The converter of this process (created on first use, profile removed at exit).

    Raises :class:`ExternalToolError` (Chinese, naming the package) when LibreOffice is
    missing; nothing is cached then, so a later call finds a newly installed one.
    """
    pid = os.getpid()
    conv = _CONVERTERS.get(pid)
    if conv is None:
        conv = LibreOffice(timeout=timeout)
        _CONVERTERS[pid] = conv
        atexit.register(conv.close)
        # worker processes of a pool end with os._exit, which skips atexit handlers but
        # runs multiprocessing's finalizers: remove the profile there too
        from multiprocessing import util

        util.Finalize(conv, conv.close, exitpriority=10)
    conv.timeout = float(timeout)
    return conv


# ====================================================================== into a Word packet


def _theme_fonts(form: Any) -> dict[str, str]:
    """Theme font slots of a form (minorEastAsia → 宋体 …), to replace theme references."""
    out: dict[str, str] = {}
    for rel in form.part.rels.values():
        if rel.reltype.endswith("/theme") and not rel.is_external:
            try:
                root = etree.fromstring(rel.target_part.blob)
            except etree.XMLSyntaxError:
                return out
            for kind in ("major", "minor"):
                font = root.find(f".//{{{A_NS}}}{kind}Font")
                if font is None:
                    continue
                latin = font.find(f"{{{A_NS}}}latin")
                ea = font.find(f"{{{A_NS}}}ea")
                cs = font.find(f"{{{A_NS}}}cs")
                hans = font.find(f"{{{A_NS}}}font[@script='Hans']")
                ea_name = (ea.get("typeface") if ea is not None else "") or (
                    hans.get("typeface") if hans is not None else "")
                if latin is not None and latin.get("typeface"):
                    out[f"{kind}HAnsi"] = out[f"{kind}Ascii"] = latin.get("typeface")
                if ea_name:
                    out[f"{kind}EastAsia"] = ea_name
                if cs is not None and cs.get("typeface"):
                    out[f"{kind}Bidi"] = cs.get("typeface")
    return out


def _resolve_theme(root: Any, theme: Mapping[str, str]) -> None:
    pairs = (("asciiTheme", "ascii"), ("hAnsiTheme", "hAnsi"), ("eastAsiaTheme", "eastAsia"),
             ("cstheme", "cs"))
    for rf in root.iter(w("rFonts")):
        for theme_attr, attr in pairs:
            slot = rf.get(w(theme_attr))
            if slot is None:
                continue
            del rf.attrib[w(theme_attr)]
            name = theme.get(slot)
            if name and not rf.get(w(attr)):
                rf.set(w(attr), name)


def insert_form(writer: Any, path: Path) -> tuple[list[Any], list[str]]:
    """Append the body of the rendered form ``path`` at the writer's position.

    Returns the form's page geometry (children of its last ``w:sectPr``: pgSz, pgMar,
    cols, docGrid) for the packet's section properties, and Chinese warnings.
    """
    import docx as python_docx


    warnings: list[str] = []
    name = Path(path).name
    try:
        form = python_docx.Document(str(path))
    except Exception as e:
        raise TemplateError(f"无法读取 Word 表单 {name}：{e}") from e
    target = writer.package_doc
    tpart = target.part
    writer.form_count = getattr(writer, "form_count", 0) + 1
    prefix = f"F{writer.form_count}"
    theme = _theme_fonts(form)

    # ---- styles: copy every form style under a prefixed id
    fstyles = form.styles.element
    tstyles = target.styles.element
    id_map: dict[str, str] = {}
    defaults: dict[str, str] = {}
    for st in fstyles.findall(w("style")):
        sid = st.get(w("styleId"))
        if sid:
            id_map[sid] = prefix + sid
            if st.get(w("default")) == "1":
                defaults[st.get(w("type"), "")] = prefix + sid
    doc_defaults = fstyles.find(w("docDefaults"))
    for st in fstyles.findall(w("style")):
        new = copy.deepcopy(st)
        new.set(w("styleId"), id_map[st.get(w("styleId"))])
        new.attrib.pop(w("default"), None)
        nm = new.find(w("name"))
        if nm is not None:
            nm.set(w("val"), f"{prefix} {nm.get(w('val'))}")
        for ref in ("basedOn", "next", "link"):
            el = new.find(w(ref))
            if el is not None:
                if el.get(w("val")) in id_map:
                    el.set(w("val"), id_map[el.get(w("val"))])
                else:
                    new.remove(el)
        # root styles inherit the form's document defaults (the packet has its own)
        if new.find(w("basedOn")) is None and doc_defaults is not None and \
                st.get(w("type")) in ("paragraph", "character", "table"):
            _merge_defaults(new, doc_defaults, st.get(w("type")))
        _resolve_theme(new, theme)
        tstyles.append(new)

    # ---- lists
    num_map = _copy_numbering(form, target, prefix)
    for st in tstyles.findall(w("style")):
        if st.get(w("styleId"), "").startswith(prefix):
            _remap_num(st, num_map)

    # ---- body
    fbody = form.element.body
    children = [c for c in fbody if c.tag != w("sectPr")]
    sect = fbody.find(w("sectPr"))
    geometry = []
    if sect is not None:
        for tag in ("pgSz", "pgMar", "cols", "docGrid"):
            el = sect.find(w(tag))
            if el is not None:
                geometry.append(copy.deepcopy(el))
        has_hdrftr = bool(sect.findall(w("headerReference")) or sect.findall(w("footerReference")))
        if has_hdrftr and any("".join(p.itertext()).strip() for p in _hdrftr_roots(form)):
            warnings.append(f"Word 表单 {name} 的页眉页脚未带入 Word 档卡（档卡使用统一页码）")
    if writer.pending_break:
        writer.flush_break()
    dropped: set[str] = set()
    start = len(writer.body)
    for child in children:
        el = copy.deepcopy(child)
        for inner in el.findall(f".//{w('sectPr')}"):
            inner.getparent().remove(inner)
        writer.body.append(el)
    inserted = list(writer.body)[start:]
    for el in inserted:
        _resolve_theme(el, theme)
        _remap_num(el, num_map)
        for node in el.iter(w("pStyle"), w("rStyle"), w("tblStyle")):
            v = node.get(w("val"))
            if v in id_map:
                node.set(w("val"), id_map[v])
            else:
                node.getparent().remove(node)
        for p in el.iter(w("p")):
            ppr = p.find(w("pPr"))
            if ppr is None:
                ppr = etree.Element(w("pPr"))
                p.insert(0, ppr)
            if ppr.find(w("pStyle")) is None and "paragraph" in defaults:
                ppr.insert(0, etree.Element(w("pStyle"), {w("val"): defaults["paragraph"]}))
        for tbl in el.iter(w("tbl")):
            tblpr = tbl.find(w("tblPr"))
            if tblpr is not None and tblpr.find(w("tblStyle")) is None and "table" in defaults:
                tblpr.insert(0, etree.Element(w("tblStyle"), {w("val"): defaults["table"]}))
        for tag, what in (("footnoteReference", "脚注"), ("endnoteReference", "尾注"),
                          ("commentReference", "批注"), ("commentRangeStart", "批注"),
                          ("commentRangeEnd", "批注")):
            for node in list(el.iter(w(tag))):
                node.getparent().remove(node)
                dropped.add(what)
        _copy_relationships(el, form.part, tpart, dropped)
        # bookmarks: the form's ids may clash with the packet's; Word's _GoBack is noise
        for node in list(el.iter(w("bookmarkStart"))):
            if node.get(w("name")) == "_GoBack":
                bid = node.get(w("id"))
                node.getparent().remove(node)
                for end in list(el.iter(w("bookmarkEnd"))):
                    if end.get(w("id")) == bid:
                        end.getparent().remove(end)
    _renumber(inserted, writer)
    if dropped:
        warnings.append(f"Word 表单 {name} 中的{'、'.join(sorted(dropped))}未能带入 Word 档卡")
    writer.page_has_content = True
    return geometry, warnings


def _merge_defaults(style: Any, doc_defaults: Any, kind: str) -> None:
    from .wordml import PPR_ORDER, RPR_ORDER, STYLE_ORDER, _ordered

    for section, order in (("rPr", RPR_ORDER), ("pPr", PPR_ORDER)):
        if kind != "paragraph" and section == "pPr":
            continue
        src = doc_defaults.find(f"{w(section + 'Default')}/{w(section)}")
        if src is None:
            continue
        dst = style.find(w(section))
        if dst is None:
            dst = _ordered(style, section, STYLE_ORDER)
        for child in src:
            local = etree.QName(child).localname
            if local in order and dst.find(child.tag) is None:
                _ordered(dst, local, order)
                dst.replace(dst.find(child.tag), copy.deepcopy(child))


def _hdrftr_roots(form: Any) -> list[Any]:
    roots = []
    for rel in form.part.rels.values():
        if not rel.is_external and (rel.reltype.endswith("/header") or rel.reltype.endswith("/footer")):
            try:
                roots.append(etree.fromstring(rel.target_part.blob))
            except (etree.XMLSyntaxError, AttributeError):
                pass
    return roots


def _copy_relationships(el: Any, src_part: Any, dst_part: Any, dropped: set[str]) -> None:
    """Re-create images and hyperlinks the copied XML refers to; drop other objects."""
    for node in list(el.iter()):
        if node.getparent() is None and node is not el:
            continue  # removed with an ancestor
        for attr, rid in list(node.attrib.items()):
            if not attr.startswith(f"{{{R_NS}}}"):
                continue
            rel = src_part.rels.get(rid)
            if rel is None:
                del node.attrib[attr]
                continue
            if rel.reltype == RT_IMAGE and not rel.is_external:
                new_rid, _ = dst_part.get_or_add_image(io.BytesIO(rel.target_part.blob))
                node.set(attr, new_rid)
            elif rel.reltype == RT_HYPERLINK and rel.is_external:
                node.set(attr, dst_part.relate_to(rel.target_ref, RT_HYPERLINK, is_external=True))
            else:
                run = node
                while run is not None and run.tag != w("r"):
                    run = run.getparent()
                if run is not None and run.getparent() is not None:
                    run.getparent().remove(run)
                else:
                    del node.attrib[attr]
                dropped.add("嵌入对象")


def _copy_numbering(form: Any, target: Any, prefix: str) -> dict[str, str]:
    try:
        fnum = form.part.numbering_part.element
    except (KeyError, NotImplementedError, AttributeError):
        return {}
    try:
        tnum = target.part.numbering_part.element
    except (KeyError, NotImplementedError, AttributeError):
        return {}
    ids = [int(x) for x in tnum.xpath("./w:abstractNum/@w:abstractNumId") if x.isdigit()]
    next_abs = max(ids, default=0) + 1
    nums = [int(x) for x in tnum.xpath("./w:num/@w:numId") if x.isdigit()]
    next_num = max(nums, default=0) + 1
    abs_map: dict[str, str] = {}
    first_num = tnum.find(w("num"))
    for a in fnum.findall(w("abstractNum")):
        new = copy.deepcopy(a)
        abs_map[a.get(w("abstractNumId"))] = str(next_abs)
        new.set(w("abstractNumId"), str(next_abs))
        for link in new.findall(w("numStyleLink")) + new.findall(w("styleLink")):
            new.remove(link)
        for ps in new.iter(w("pStyle")):
            ps.set(w("val"), prefix + ps.get(w("val"), ""))
        next_abs += 1
        if first_num is not None:
            first_num.addprevious(new)
        else:
            tnum.append(new)
    num_map: dict[str, str] = {}
    for n in fnum.findall(w("num")):
        new = copy.deepcopy(n)
        num_map[n.get(w("numId"))] = str(next_num)
        new.set(w("numId"), str(next_num))
        ref = new.find(w("abstractNumId"))
        if ref is not None and ref.get(w("val")) in abs_map:
            ref.set(w("val"), abs_map[ref.get(w("val"))])
        next_num += 1
        tnum.append(new)
    return num_map


def _remap_num(el: Any, num_map: Mapping[str, str]) -> None:
    for node in el.iter(w("numId")):
        v = node.get(w("val"))
        if v in num_map:
            node.set(w("val"), num_map[v])


def _renumber(elements: list[Any], writer: Any) -> None:
    """Give copied drawings and bookmarks ids that do not clash with the packet's."""
    base = getattr(writer, "next_object_id", 10000)
    for el in elements:
        for node in el.iter(f"{{{WP_NS}}}docPr"):
            node.set("id", str(base))
            base += 1
        mapping: dict[str, str] = {}
        for node in el.iter(w("bookmarkStart"), w("bookmarkEnd")):
            old = node.get(w("id"))
            if old not in mapping:
                mapping[old] = str(base)
                base += 1
            node.set(w("id"), mapping[old])
    writer.next_object_id = base
