"""The template context: a household's canonical record plus everything derived from it.

Works on the canonical JSON form of a record (the record-format shape, dates as ISO strings,
amounts as decimal strings), so it is independent of the pydantic models and equally usable
for the content hash and the version store. Amounts are summed with ``Decimal``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import Any

CENT = Decimal("0.01")

INCOME_CATEGORIES = (
    ("wage", "工资性收入"),
    ("business", "生产经营性收入"),
    ("property", "财产性收入"),
    ("transfer", "转移性收入"),
    ("costs", "生产经营性支出"),
)

EXIT_KINDS = ("预退出", "退出确认", "退出公示", "风险消除", "退出")


def decimal(value: Any) -> Decimal:
    """Return ``value`` as a Decimal (0 for empty or unreadable values)."""
    if value is None or value == "" or isinstance(value, bool):
        return Decimal(0)
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return Decimal(0)


def _sum_items(items: Any) -> tuple[Decimal, str]:
    """Return the total of an ``{item: amount}`` mapping (or a bare number) and its detail text."""
    if isinstance(items, Mapping):
        total = sum((decimal(v) for v in items.values()), Decimal(0))
        detail = "、".join(f"{k} {decimal(v):,.2f}" for k, v in items.items())
        return total, detail
    return decimal(items), ""


@dataclass(frozen=True)
class IncomeYear:
    year: int
    categories: tuple[dict[str, Any], ...]
    net: Decimal
    per_capita: Decimal
    members_counted: int
    below_threshold: bool


def income_year(entry: Mapping[str, Any], members: int, threshold: Decimal | None) -> IncomeYear:
    """Return one year's account: 纯收入 = 四类收入 − 生产经营性支出; 人均 = 纯收入 ÷ 人数."""
    categories = []
    totals: dict[str, Decimal] = {}
    for key, label in INCOME_CATEGORIES:
        total, detail = _sum_items(entry.get(key))
        totals[key] = total
        categories.append({"key": key, "label": label, "total": total, "detail": detail})
    net = totals["wage"] + totals["business"] + totals["property"] + totals["transfer"] - totals["costs"]
    counted = entry.get("members_counted") or members or 1
    try:
        counted = max(int(counted), 1)
    except (TypeError, ValueError):
        counted = max(members, 1)
    per_capita = (net / counted).quantize(CENT, rounding=ROUND_HALF_UP)
    return IncomeYear(
        year=int(entry.get("year") or 0),
        categories=tuple(categories),
        net=net.quantize(CENT, rounding=ROUND_HALF_UP),
        per_capita=per_capita,
        members_counted=counted,
        below_threshold=threshold is not None and per_capita < threshold,
    )


def _sorted(items: Sequence[Mapping[str, Any]] | None, key: str) -> list[Mapping[str, Any]]:
    return sorted(items or [], key=lambda item: str(item.get(key) or ""))


def id_sex(id_number: str) -> str:
    if len(id_number) == 18 and id_number[16].isdigit():
        return "男" if int(id_number[16]) % 2 else "女"
    return ""


def id_birth(id_number: str) -> str:
    if len(id_number) == 18 and id_number[6:14].isdigit():
        return f"{id_number[6:10]}-{id_number[10:12]}-{id_number[12:14]}"
    return ""


def evidence_items(record: Mapping[str, Any], folder: Path) -> list[dict[str, str]]:
    """Return every evidence file the record names, once each, in record order.

    The household's own list comes first, then files named by procedure steps, measures and
    visits (titled after what they document).
    """
    from .records.loader import evidence_source

    found: dict[str, dict[str, str]] = {}

    def add(ref: Any, title: str = "", kind: str = "", date: Any = "") -> None:
        if isinstance(ref, Mapping):
            path = str(ref.get("file") or "")
            title = str(ref.get("title") or title)
            kind = str(ref.get("type") or kind)
            date = ref.get("date") or date
        else:
            path = str(ref or "")
        if not path or path in found:
            return
        found[path] = {
            # absolute, as validation finds it: backslashes are separators, names match after
            # Unicode normalisation (only components below the folder are looked at)
            "source": evidence_source(folder, path),
            "display": path,
            "title": title or Path(path).stem,
            "kind": kind,
            "date": str(date or ""),
        }

    for ref in record.get("evidence") or []:
        add(ref)
    for step in record.get("procedure") or []:
        for ref in step.get("evidence") or []:
            add(ref, f"{step.get('kind') or '程序'}材料", "其他", step.get("date"))
    for measure in record.get("measures") or []:
        for ref in measure.get("evidence") or []:
            add(ref, f"{measure.get('item') or measure.get('category') or '帮扶措施'}凭证", "其他", measure.get("date"))
    for visit in record.get("visits") or []:
        for ref in visit.get("evidence") or []:
            add(ref, "走访照片", "照片", visit.get("date"))
    return list(found.values())


def causes_phrase(causes: Any) -> str:
    """The causes as a sentence says them: 「因病、缺技术」 (因 once, before the main cause when
    its label does not start with it: 「因缺劳动力」), or "" when there are none."""
    if not isinstance(causes, Mapping):
        return ""
    others = causes.get("others") or []
    labels = [str(c) for c in (causes.get("main"), *(others if isinstance(others, list) else [others]))
              if c not in (None, "")]
    if not labels:
        return ""
    if not labels[0].startswith("因"):
        labels[0] = f"因{labels[0]}"
    return "、".join(labels)


def build_context(
    record: Mapping[str, Any],
    *,
    folder: Path,
    archive: Mapping[str, Any],
    village: Mapping[str, Any],
    item_no: int | str = "",
    content_hash: str = "",
    version: int | None = None,
    build_date: str = "",
    qr_text: str = "",
) -> dict[str, Any]:
    """Return the mapping every section template is rendered with."""
    hh = dict(record)
    for key, sort_key in (("procedure", "date"), ("visits", "date"), ("outcomes", "date"), ("plan", "year")):
        hh[key] = _sorted(hh.get(key), sort_key)

    members = []
    for member in hh.get("members") or []:
        member = dict(member)
        id_number = str(member.get("id_number") or "")
        member.setdefault("sex", None)
        member["sex"] = member["sex"] or id_sex(id_number)
        member["birth_date"] = member.get("birth_date") or id_birth(id_number)
        member["ethnicity"] = member.get("ethnicity") or "汉族"
        members.append(member)
    head = next((m for m in members if m.get("relation") == "户主"), members[0] if members else {})

    threshold = decimal(archive.get("income_threshold")) or None
    income = [income_year(entry, len(members), threshold) for entry in _sorted(hh.get("income"), "year")]

    years: dict[int, list[Mapping[str, Any]]] = {}
    for measure in hh.get("measures") or []:
        years.setdefault(int(measure.get("year") or 0), []).append(measure)
    totals = {year: sum((decimal(m.get("amount")) for m in items), Decimal(0)) for year, items in years.items()}
    measure_years = [
        {"year": year, "measures": items, "total": totals[year]} for year, items in sorted(years.items())
    ]

    monitor = hh.get("monitor") or None
    exit_steps = [s for s in hh["procedure"] if any(k in str(s.get("kind") or "") for k in EXIT_KINDS)]
    household_type = str(hh.get("household_type") or "")
    application_kind = "防止返贫监测对象" if monitor else "建档立卡贫困户"
    evidence = evidence_items(record, folder)

    return {
        "hh": hh,
        "archive": dict(archive),
        "village": dict(village),
        "members": members,
        "head": head,
        "income": income,
        "threshold": threshold,
        "measure_years": measure_years,
        "measures_total": sum(totals.values(), Decimal(0)),
        "exit_steps": exit_steps,
        "exit_wanted": bool(monitor or hh.get("exit_year") or exit_steps or "已脱贫" in str(hh.get("poverty_status") or "")),
        "application_wanted": bool(hh.get("application")) or household_type in ("贫困户", "防止返贫致贫对象"),
        "application_title": "纳入防止返贫监测申请书" if monitor else "申请书",
        "application_kind": application_kind,
        "causes_phrase": causes_phrase(hh.get("causes")),
        "evidence_items": evidence,
        "item_no": item_no,
        "content_hash": content_hash,
        "version": version,
        "version_label": f"第 {version} 版 · {content_hash[:8]}" if version else f"未登记 · {content_hash[:8]}",
        "qr_text": qr_text or f"{hh.get('household_id', '')}|{content_hash[:16]}",
        "build_date": build_date,
    }
