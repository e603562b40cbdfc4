"""Text changes of two packet versions, compared on the rendered document model.

The PDF's text lines follow its line wraps: a table cell cut at a wrap (之儿/媳) or a row whose
label wrapped onto the previous row's line cannot be compared as lines. Here both versions'
records are rendered into the document model (sections → headings, paragraphs, key/value
pairs, table rows with their column headers) and compared item by item, so a change reads
"收入 · 2024 年度（计算人口 8 人） · 家庭纯收入 · 金额（元）：92,669.32 → 90,669.32". The page of
each change is the number printed on it (the packet's own 第 N 页), found by its text in the
version's PDF.

The archive and village settings of a past version are not stored, so both versions are
rendered with the same (empty) ones: the changes shown are those of the records.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import document as dm


@dataclass(frozen=True)
class Item:
    """One comparable piece of a packet: where it is, what it is, its text."""

    section: str
    context: str  # the heading (or table caption) it is under, "" at the top of a section
    label: str  # row label · column header, key, or "第 n 段"
    text: str

    @property
    def key(self) -> tuple[str, str, str]:
        return self.section, self.context, self.label

    def where(self) -> str:
        return " · ".join(p for p in (self.section, self.context, self.label) if p)


def document_items(document: dm.Document) -> list[Item]:
    """Return the comparable items of a document, in reading order (keys made unique)."""
    items: list[Item] = []
    for section in document.sections:
        items.extend(_section_items(section))
    seen: dict[tuple[str, str, str], int] = {}
    unique = []
    for item in items:
        count = seen[item.key] = seen.get(item.key, 0) + 1
        unique.append(item if count == 1 else Item(item.section, item.context, f"{item.label}（{count}）", item.text))
    return unique


def _section_items(section: dm.Section) -> Iterator[Item]:
    title = section.title
    context = ""
    paragraph = 0
    for block in section.blocks:
        if isinstance(block, dm.Title):
            continue
        if isinstance(block, dm.Heading):
            context, paragraph = block.text, 0
        elif isinstance(block, dm.Paragraph):
            paragraph += 1
            yield Item(title, context, f"第 {paragraph} 段", block.text)
        elif isinstance(block, dm.KeyValue):
            for key, value in block.rows:
                yield Item(title, context, key, value)
        elif isinstance(block, dm.Table):
            yield from _table_items(title, block.caption or context, block)
        elif isinstance(block, dm.Signature):
            if block.date:
                yield Item(title, context, "日期", block.date)
        elif isinstance(block, dm.Evidence):
            caption = " · ".join(p for p in (block.title, block.kind, block.date) if p)
            yield Item(title, context, block.display_path, caption)


def _table_items(section: str, context: str, table: dm.Table) -> Iterator[Item]:
    header = table.header
    for row in (*table.rows, *table.footer):
        label = row[0] if row else ""
        for i, cell in enumerate(row[1:], 1):
            column = header[i] if i < len(header) else f"第 {i + 1} 列"
            yield Item(section, context, f"{label} · {column}" if label else column, cell)
        if len(row) == 1:
            yield Item(section, context, header[0] if header else "第 1 列", label)


@dataclass(frozen=True)
class ItemChange:
    kind: str  # "added" | "removed" | "changed"
    old: Item | None
    new: Item | None

    @property
    def item(self) -> Item:
        return self.new or self.old  # type: ignore[return-value]

    def line(self, page: str = "") -> str:
        # "新第 3 页（档案第 57 页）" reads "（新第 3 页，档案第 57 页）" at the end of the line
        where = f"（{page.replace('（', '，').replace('）', '')}）" if page else ""
        if self.kind == "added":
            return f"+ {self.item.where()}：{self.item.text}{where}"
        if self.kind == "removed":
            return f"- {self.item.where()}：{self.item.text}{where}"
        assert self.old is not None and self.new is not None
        return f"~ {self.item.where()}：{self.old.text or '（空）'} → {self.new.text or '（空）'}{where}"


def diff_items(old: Sequence[Item], new: Sequence[Item]) -> list[ItemChange]:
    """Return what changed between two item lists, in the new document's order."""
    before = {i.key: i for i in old}
    after = {i.key: i for i in new}
    changes = []
    for item in new:
        previous = before.get(item.key)
        if previous is None:
            if item.text:
                changes.append(ItemChange("added", None, item))
        elif previous.text != item.text:
            changes.append(ItemChange("changed", previous, item))
    changes += [ItemChange("removed", i, None) for i in old if i.key not in after and i.text]
    return changes


def record_document(record: Mapping[str, Any], template_set: str) -> dm.Document:
    """Render a stored record into the document model with the named built-in template set."""
    from . import templates
    from .context import build_context

    tset = templates.resolve_set(template_set)
    context = build_context(record, folder=Path("."), archive={}, village={})
    allowed = frozenset(item["source"] for item in context["evidence_items"])
    sections = templates.render_sections(tset, context, allowed_sources=allowed)
    return dm.Document(title="", sections=tuple(sections), page=tset.page)


def printed_page(page_lines: Sequence[Sequence[str]], names: Sequence[str | None],
                 item: Item, fallback: str = "") -> str:
    """Return the name of the first numbered page showing the item's text, e.g. "第 N 页"
    (``names``: each page's name as printed, None for a page without a number)."""
    import re

    # the pieces of the text (a list's entries may be printed in another order) and the row label
    pieces = ["".join(p.split()) for p in re.split(r"[、，；\n]", item.text) if p.strip()]
    label = "".join(item.label.split(" · ")[0].split())
    if not pieces:
        return fallback
    for lines, name in zip(page_lines, names):
        joined = "".join("".join(lines).split())
        if name is not None and all(p in joined for p in pieces) and (not label or label in joined):
            return name
    return fallback
