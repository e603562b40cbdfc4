"""The field-level diff of two household records, and its wording.

``diff_records`` compares two canonical record dicts (the record-format shape). Lists are
matched by what identifies their entries (members by ID number, income by year, measures by
year/category/item/provider/date with fuzzy pairing for edits …), never by position, so
reordering a list is not a change. Each change is a ``FieldChange`` named with the record
format's Chinese labels ("家庭成员「董留柱」· 姓名"); ``summarize`` and ``format_value`` word
them for ``diff``, ``history``, ``verify`` and the web app.

Why one module of this size: the label table, the list-matching rules and the differ that
applies them are one piece of knowledge about the record format; they change together.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

Kind = Literal["added", "removed", "changed"]
Labels = Callable[[str], str]


@dataclass(frozen=True)
class FieldChange:
    """One changed field (or one added/removed list entry) between two records."""

    path: str  # e.g. "members[id=411621196707160235].name"
    label: str  # e.g. "家庭成员「董留柱」· 姓名"
    kind: Kind
    old: Any
    new: Any
    #: what ``summarize`` counts this change under (e.g. "收入情况", "姓名")
    group: str = ""
    #: True when a whole list entry was added or removed
    entry: bool = False
    #: schema path of the field (list positions dropped), e.g. "members.name"
    schema: str = ""


# -- labels -------------------------------------------------------------------------------

#: Labels of record-format.md §4, keyed by schema path (list indices dropped).
#: Used when ``records.models`` offers no label for a key.
FALLBACK_LABELS: dict[str, str] = {
    "household_id": "户编号",
    "village_code": "村代码",
    "group": "村民组",
    "address": "家庭住址",
    "phone": "联系电话",
    "household_type": "户类型",
    "poverty_attribute": "贫困户属性",
    "poverty_status": "脱贫状态",
    "identified_on": "识别时间",
    "exit_year": "脱贫年度",
    "monitor": "监测信息",
    "monitor.category": "监测对象类别",
    "monitor.risks": "风险类型",
    "monitor.identified_on": "风险识别时间",
    "monitor.eliminated": "风险是否消除",
    "monitor.eliminate_method": "风险消除方式",
    "monitor.eliminated_on": "风险消除时间",
    "causes": "致贫原因",
    "causes.main": "主要致贫原因",
    "causes.others": "其他致贫原因",
    "causes.note": "致贫原因说明",
    "members": "家庭成员",
    "members.name": "姓名",
    "members.id_number": "公民身份号码",
    "members.relation": "与户主关系",
    "members.sex": "性别",
    "members.birth_date": "出生日期",
    "members.ethnicity": "民族",
    "members.education": "文化程度",
    "members.student_status": "在校生状况",
    "members.health": "健康状况",
    "members.labour": "劳动技能",
    "members.work_place": "务工地点",
    "members.work_months": "务工时间(月)",
    "members.insured": "参保情况",
    "members.dibao": "低保",
    "members.tekun": "特困供养",
    "living": "生产生活条件",
    "living.house_area_m2": "住房面积(㎡)",
    "living.house_structure": "住房结构",
    "living.dangerous_house": "危房",
    "living.safe_drinking_water": "安全饮水",
    "living.electricity": "生活用电",
    "living.farmland_mu": "耕地面积(亩)",
    "helpers": "帮扶责任人",
    "helpers.name": "姓名",
    "helpers.unit": "帮扶单位",
    "helpers.unit_level": "单位层级",
    "helpers.position": "职务",
    "helpers.phone": "联系电话",
    "helpers.start": "开始时间",
    "helpers.end": "结束时间",
    "application": "申请书",
    "application.date": "申请日期",
    "application.text": "申请内容",
    "application.signed": "本人签名",
    "procedure": "识别/退出程序",
    "procedure.kind": "程序环节",
    "procedure.date": "日期",
    "procedure.date_to": "截止日期",
    "procedure.result": "结果",
    "procedure.evidence": "佐证材料",
    "plan": "帮扶计划",
    "plan.year": "年度",
    "plan.needs": "帮扶需求",
    "plan.plan": "计划内容",
    "measures": "帮扶措施",
    "measures.year": "年度",
    "measures.category": "措施类别",
    "measures.item": "帮扶项目",
    "measures.provider": "帮扶单位",
    "measures.content": "帮扶内容",
    "measures.amount": "金额(元)",
    "measures.date": "日期",
    "measures.signed": "户主签名",
    "measures.evidence": "佐证材料",
    "income": "收入情况",
    "income.year": "年度",
    "income.wage": "工资性收入",
    "income.business": "生产经营性收入",
    "income.property": "财产性收入",
    "income.transfer": "转移性收入",
    "income.costs": "生产经营性支出",
    "income.members_counted": "计算人数",
    "visits": "走访记录",
    "visits.date": "走访日期",
    "visits.visitor": "走访人",
    "visits.content": "走访内容",
    "visits.evidence": "佐证材料",
    "outcomes": "帮扶成效",
    "outcomes.date": "日期",
    "outcomes.content": "成效内容",
    "outcomes.signed": "签名",
    "notes": "户说明",
    "evidence": "佐证材料",
    "evidence.file": "文件",
    "evidence.type": "材料类型",
    "evidence.title": "标题",
    "evidence.date": "日期",
    "evidence.sensitive": "敏感材料",
    "evidence_files": "佐证材料文件",
}


_FIELD_ORDER = {path: n for n, path in enumerate(FALLBACK_LABELS)}


def _model_labels() -> Labels | None:
    """Return the label function of ``records.models`` when it offers one."""
    try:
        from ..records import models
    except ImportError:
        return None
    table = getattr(models, "FIELD_LABELS", None)
    if isinstance(table, dict):
        return lambda path: str(table.get(path, ""))
    func = getattr(models, "field_label", None)
    if callable(func):
        return func  # type: ignore[no-any-return]
    return None


def _labeller(labels: Labels | None) -> Callable[[str], str]:
    primary = labels if labels is not None else _model_labels()

    def label(schema_path: str) -> str:
        if primary is not None:
            try:
                found = primary(schema_path)
            except (KeyError, ValueError, LookupError):
                found = ""
            if found and found != schema_path:
                return str(found)
        if schema_path in FALLBACK_LABELS:
            return FALLBACK_LABELS[schema_path]
        # unknown keys (income sub-items such as 务工) are shown as written
        return schema_path.rsplit(".", 1)[-1]

    return label


# -- values -------------------------------------------------------------------------------


def _absent(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float, Decimal)):
        return Decimal(str(value))
    if isinstance(value, str):
        try:
            return Decimal(value.strip())
        except InvalidOperation:
            return None
    return None


def _same_scalar(a: Any, b: Any) -> bool:
    if a == b or (_absent(a) and _absent(b)):
        return True
    # 12000 and "12000.00" are the same amount; two strings are compared as written
    if isinstance(a, str) and isinstance(b, str):
        return False
    na, nb = _number(a), _number(b)
    return na is not None and nb is not None and na == nb


def _freeze(value: Any) -> Any:
    """Return a hashable, order-insensitive form of a value (for multiset comparison)."""
    if isinstance(value, dict):
        return tuple(
            sorted((k, _freeze(v)) for k, v in value.items() if not _absent(v))
        )
    if isinstance(value, list):
        return tuple(sorted((_freeze(v) for v in value), key=repr))
    number = _number(value)
    if number is not None and not isinstance(value, str):
        return number.normalize()
    return value


def format_value(value: Any, labels: Labels | None = None, prefix: str = "") -> str:
    """Return a value as an inspector reads it (是/否, lists with 、, entries as 键：值)."""
    if value is None or value == "" or value == [] or value == {}:
        return "（无）"
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (list, tuple)):
        return "、".join(format_value(v, labels, prefix) for v in value)
    if isinstance(value, dict):
        label = _labeller(labels)
        parts = []
        for key, item in value.items():
            if _absent(item):
                continue
            name = label(f"{prefix}.{key}" if prefix else str(key))
            parts.append(f"{name}：{format_value(item, labels, f'{prefix}.{key}')}")
        return "；".join(parts)
    return str(value)


# -- list matching --------------------------------------------------------------------------

KeyFn = Callable[[dict], Any]


@dataclass(frozen=True)
class _ListSpec:
    """How the entries of one list are identified, described and paired."""

    keys: Sequence[KeyFn]  # tried in order: exact key, then looser keys
    path_key: Callable[[dict], str]  # the "[id=…]" part of a field path
    describe: Callable[[dict], str]  # the "「张三」" part of a label
    fuzzy: bool = False


def _get(*names: str) -> KeyFn:
    def key(item: dict) -> Any:
        values = tuple(_freeze(item.get(n)) for n in names)
        return values if any(not _absent(v) for v in values) else None

    return key


def _text(item: dict, *names: str) -> str:
    return " ".join(str(item[n]) for n in names if not _absent(item.get(n)))


_MEASURE_FIELDS = ("year", "category", "item", "provider", "date")

LIST_SPECS: dict[str, _ListSpec] = {
    "members": _ListSpec(
        keys=[_get("id_number"), _get("name")],
        path_key=lambda m: f"id={m.get('id_number') or m.get('name', '?')}",
        describe=lambda m: f"「{m.get('name') or m.get('id_number') or '?'}」",
    ),
    "income": _ListSpec(
        keys=[_get("year")],
        path_key=lambda m: f"year={m.get('year')}",
        describe=lambda m: f" {m.get('year')}年",
    ),
    "plan": _ListSpec(
        keys=[_get("year")],
        path_key=lambda m: f"year={m.get('year')}",
        describe=lambda m: f" {m.get('year')}年",
        fuzzy=True,
    ),
    "measures": _ListSpec(
        keys=[_get(*_MEASURE_FIELDS), _get("year", "category", "item")],
        path_key=lambda m: "|".join(str(m.get(n) or "") for n in _MEASURE_FIELDS),
        describe=lambda m: f"「{_text(m, 'year', 'category', 'item')}」",
        fuzzy=True,
    ),
    "helpers": _ListSpec(
        keys=[_get("name")],
        path_key=lambda m: f"name={m.get('name')}",
        describe=lambda m: f"「{m.get('name')}」",
    ),
    "visits": _ListSpec(
        keys=[_get("date", "visitor"), _get("date")],
        path_key=lambda m: f"{m.get('date')}|{m.get('visitor')}",
        describe=lambda m: f"「{_text(m, 'date', 'visitor')}」",
        fuzzy=True,
    ),
    "procedure": _ListSpec(
        keys=[_get("kind", "date"), _get("kind")],
        path_key=lambda m: f"{m.get('kind')}|{m.get('date')}",
        describe=lambda m: f"「{_text(m, 'kind', 'date')}」",
        fuzzy=True,
    ),
    "outcomes": _ListSpec(
        keys=[_get("date", "content"), _get("date")],
        path_key=lambda m: f"date={m.get('date')}",
        describe=lambda m: f"「{m.get('date')}」",
        fuzzy=True,
    ),
    "evidence": _ListSpec(
        keys=[_get("file")],
        path_key=lambda m: f"file={m.get('file')}",
        describe=lambda m: f"「{m.get('file')}」",
    ),
}

_GENERIC = _ListSpec(
    keys=[lambda m: _freeze(m)],
    path_key=lambda m: json.dumps(m, ensure_ascii=False, sort_keys=True, default=str)[
        :40
    ],
    describe=lambda m: "",
    fuzzy=True,
)

#: two unmatched entries with at least this share of equal fields are one edited entry
FUZZY_THRESHOLD = 0.5


def _similarity(a: dict, b: dict) -> float:
    keys = {
        k for k in a.keys() | b.keys() if not (_absent(a.get(k)) and _absent(b.get(k)))
    }
    if not keys:
        return 1.0
    same = sum(1 for k in keys if _freeze(a.get(k)) == _freeze(b.get(k)))
    return same / len(keys)


def _match(
    old: list[dict], new: list[dict], spec: _ListSpec
) -> list[tuple[dict | None, dict | None]]:
    """Pair old and new entries: exact keys first, then looser keys, then similarity."""
    left = list(range(len(old)))
    right = list(range(len(new)))
    pairs: list[tuple[int, int]] = []
    for key in spec.keys:
        by_key: dict[Any, list[int]] = {}
        for j in right:
            k = key(new[j])
            if k is not None:
                by_key.setdefault(k, []).append(j)
        still_left = []
        for i in left:
            k = key(old[i])
            candidates = by_key.get(k) if k is not None else None
            if candidates:
                pairs.append((i, candidates.pop(0)))
            else:
                still_left.append(i)
        used = {j for _, j in pairs}
        left, right = still_left, [j for j in right if j not in used]
    if spec.fuzzy and left and right:
        scored = sorted(
            ((_similarity(old[i], new[j]), i, j) for i in left for j in right),
            key=lambda t: (-t[0], t[1], t[2]),
        )
        taken_i: set[int] = set()
        taken_j: set[int] = set()
        for score, i, j in scored:
            if score < FUZZY_THRESHOLD:
                break
            if i in taken_i or j in taken_j:
                continue
            pairs.append((i, j))
            taken_i.add(i)
            taken_j.add(j)
        left = [i for i in left if i not in taken_i]
        right = [j for j in right if j not in taken_j]
    result: list[tuple[dict | None, dict | None]] = [
        (old[i], new[j]) for i, j in sorted(pairs, key=lambda p: (p[1], p[0]))
    ]
    result += [(old[i], None) for i in left]
    result += [(None, new[j]) for j in right]
    return result


# -- the record diff ------------------------------------------------------------------------


def _normalise_entry(list_name: str, item: Any) -> Any:
    # evidence may be written as a bare path string
    if list_name == "evidence" and isinstance(item, str):
        return {"file": item}
    return item


def _join(label: str, name: str) -> str:
    if not label:
        return name
    return f"{label}· {name}" if label.endswith("」") else f"{label} · {name}"


@dataclass(frozen=True)
class _Where:
    """Where the differ is: field path, schema path, label and summary group."""

    path: str = ""
    schema: str = ""
    label: str = ""
    group: str = ""

    def child(self, key: str, name: str) -> _Where:
        # inside a member, count changes by field (姓名 1 项) rather than by section
        in_member = self.schema == "members" and self.path.startswith("members[")
        return _Where(
            f"{self.path}.{key}" if self.path else key,
            f"{self.schema}.{key}" if self.schema else key,
            _join(self.label, name),
            name if in_member else self.group or name,
        )


class _Differ:
    def __init__(self, labels: Labels | None) -> None:
        self.label = _labeller(labels)
        self.changes: list[FieldChange] = []

    def emit(
        self, at: _Where, kind: Kind, old: Any, new: Any, entry: bool = False
    ) -> None:
        self.changes.append(
            FieldChange(at.path, at.label, kind, old, new, at.group, entry, at.schema)
        )

    def value(self, at: _Where, old: Any, new: Any) -> None:
        if isinstance(old, dict) or isinstance(new, dict):
            self.mapping(at, old or {}, new or {})
        elif isinstance(old, list) or isinstance(new, list):
            self.sequence(at, old or [], new or [])
        elif not _same_scalar(old, new):
            self.emit(at, _kind(old, new), old, new)

    def mapping(self, at: _Where, old: Any, new: Any) -> None:
        if not isinstance(old, dict) or not isinstance(new, dict):
            if not _same_scalar(old, new):
                self.emit(at, "changed", old, new)
            return
        keys = [str(k) for k in old] + [str(k) for k in new if k not in old]
        # record-format order, whatever order the JSON keys were written in
        keys.sort(
            key=lambda k: _FIELD_ORDER.get(
                f"{at.schema}.{k}" if at.schema else k, 1 << 20
            )
        )
        for key in keys:
            name = self.label(f"{at.schema}.{key}" if at.schema else key)
            self.value(at.child(key, name), old.get(key), new.get(key))

    def sequence(self, at: _Where, old: list, new: list) -> None:
        list_name = at.schema.rsplit(".", 1)[-1]
        old = [_normalise_entry(list_name, x) for x in old]
        new = [_normalise_entry(list_name, x) for x in new]
        if not all(isinstance(x, dict) for x in old + new):
            # plain values (health, risks, evidence paths): compared as multisets
            if Counter(map(_freeze, old)) != Counter(map(_freeze, new)):
                self.emit(at, _kind(old, new), old, new)
            return
        spec = LIST_SPECS.get(at.schema, _GENERIC) if "." not in at.schema else _GENERIC
        if list_name == "evidence":
            spec = LIST_SPECS["evidence"]
        for a, b in _match(old, new, spec):
            item = a if a is not None else b
            assert item is not None
            item_at = _Where(
                f"{at.path}[{spec.path_key(item)}]",
                at.schema,
                f"{at.label}{spec.describe(item)}",
                at.group,
            )
            if a is None or b is None:
                self.emit(item_at, _kind(a, b), a, b, entry=True)
            else:
                self.mapping(item_at, a, b)


def _kind(old: Any, new: Any) -> Kind:
    return "added" if _absent(old) else "removed" if _absent(new) else "changed"


def diff_records(
    old: dict, new: dict, labels: Labels | None = None
) -> list[FieldChange]:
    """Return the field changes from ``old`` to ``new`` (canonical record dicts).

    ``labels`` maps a schema path such as ``"members.name"`` to its Chinese label; by default
    the labels of ``records.models`` are used, with this module's table as fallback.
    """
    differ = _Differ(labels)
    differ.mapping(_Where(), old, new)
    return differ.changes


def summarize(changes: Sequence[FieldChange]) -> str:
    """Return a one-line Chinese summary such as "收入情况 2 项 · 家庭成员 +1 · 姓名 1 项"."""
    if not changes:
        return "无变化"
    groups: dict[
        str, list[int]
    ] = {}  # group -> [added entries, removed entries, fields]
    for change in changes:
        counts = groups.setdefault(change.group or change.label, [0, 0, 0])
        if change.entry:
            counts[0 if change.kind == "added" else 1] += 1
        else:
            counts[2] += 1
    parts = []
    for name, (added, removed, fields) in groups.items():
        bits = []
        if added:
            bits.append(f"+{added}")
        if removed:
            bits.append(f"−{removed}")
        text = f"{name} {' '.join(bits)}" if bits else name
        if fields:
            text = f"{text}，{fields} 项" if bits else f"{name} {fields} 项"
        parts.append(text)
    return " · ".join(parts)


def diff_evidence_files(old: dict[str, str], new: dict[str, str]) -> list[FieldChange]:
    """Return changes of evidence file contents (path → sha256 maps of two versions)."""
    label = FALLBACK_LABELS["evidence_files"]
    changes = []
    for path in sorted(old.keys() | new.keys()):
        a, b = old.get(path), new.get(path)
        if a == b:
            continue
        kind: Kind = "added" if a is None else "removed" if b is None else "changed"
        changes.append(
            FieldChange(
                f"evidence_files[{path}]",
                f"{label}「{path}」· 文件内容",
                kind,
                a[:12] if a else None,
                b[:12] if b else None,
                label,
            )
        )
    return changes


def _change_line(c: FieldChange) -> str:
    old, new = (
        format_value(c.old, prefix=c.schema),
        format_value(c.new, prefix=c.schema),
    )
    if c.kind == "added":
        return f"{c.label}：新增 {new}"
    if c.kind == "removed":
        return f"{c.label}：删除（原为 {old}）"
    return f"{c.label}：{old} → {new}"
