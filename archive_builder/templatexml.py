"""The section XML vocabulary → the document model (``archive_builder.document``).

``parse_section`` reads what a section template rendered; every attribute is checked and a
bad one is a ``TemplateError`` naming the template, the element and the allowed values.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING, Any

from . import document as dm
from .errors import TemplateError

if TYPE_CHECKING:  # pragma: no cover
    from .templates import SectionSpec


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
