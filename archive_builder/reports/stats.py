"""Village statistics (贫情分析, 三色管理): tables computed from the records.

``compute_stats`` reads the chosen villages and returns plain tables (``StatsTable``) that the
.xlsx and PDF writers (``stats_write.py``) and the web app's village page show as they are.
Rules that counties set — the three colours, the income year and the "near the threshold"
ratio — come from the template set's ``stats/stats.toml``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

from ..errors import TemplateError
from ..problems import Problem
from ..records import vocab
from ..records.idnumber import IdNumberError, parse_id
from ..records.models import Household, Member
from ..templates import money
from .common import (
    as_mapping,
    group_of,
    group_order,
    load_villages,
    read_template_toml,
    template_file,
)

Value = int | Decimal | str

STATS_FILE = "stats/stats.toml"
UNCOLORED = "未分色"


@dataclass(frozen=True)
class StatsTable:
    """One table: a header, rows of values and totals; the PDF draws ``chart`` from it."""

    key: str
    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Value, ...], ...]
    footer: tuple[tuple[Value, ...], ...] = ()
    #: an optional top header row: (label, number of columns it spans), covering all columns
    bands: tuple[tuple[str, int], ...] = ()
    note: str = ""
    #: "pie", "bar" or "" (no chart), drawn from ``chart_data``
    chart: str = ""
    chart_title: str = ""
    chart_data: tuple[tuple[str, float], ...] = ()
    #: one "#RRGGBB" per chart_data entry; empty = the writer's palette
    chart_colors: tuple[str, ...] = ()


@dataclass(frozen=True)
class VillageStats:
    """The tables of one village."""

    code: str
    name: str
    title: str
    groups: tuple[str, ...]
    households: int
    persons: int
    tables: tuple[StatsTable, ...]
    #: households of the village that could not be counted (their data has errors)
    skipped: tuple[Problem, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """Return the village's tables as JSON-ready values (amounts as strings, e.g. "1234.50")."""

        def cell(value: Value) -> Any:
            return str(value) if isinstance(value, Decimal) else value

        return {
            "code": self.code, "name": self.name, "title": self.title, "groups": list(self.groups),
            "households": self.households, "persons": self.persons,
            "skipped": [p.household_id for p in self.skipped],
            "tables": [
                {
                    "key": t.key, "title": t.title, "columns": list(t.columns),
                    "bands": [list(b) for b in t.bands], "note": t.note,
                    "rows": [[cell(v) for v in row] for row in t.rows],
                    "footer": [[cell(v) for v in row] for row in t.footer],
                    "chart": t.chart, "chart_title": t.chart_title,
                    "chart_data": [list(d) for d in t.chart_data], "chart_colors": list(t.chart_colors),
                }
                for t in self.tables
            ],
        }

    def table(self, key: str) -> StatsTable:
        """Return the table called ``key`` (KeyError when there is none)."""
        for table in self.tables:
            if table.key == key:
                return table
        raise KeyError(key)


@dataclass(frozen=True)
class Stats:
    """The statistics of a data directory's chosen villages."""

    county: str
    township: str
    year: int
    date: str
    income_threshold: Decimal | None
    villages: tuple[VillageStats, ...]
    problems: tuple[Problem, ...] = ()


# --------------------------------------------------------------------------- the rules


@dataclass(frozen=True)
class ColorRule:
    """One colour of the 三色 classification: the first rule one of whose conditions holds wins."""

    name: str
    meaning: str
    rgb: str
    when: tuple[Mapping[str, Any], ...]


LABEL_FACTS = ("household_type", "poverty_attribute", "poverty_status", "monitor_category")
FLAG_FACTS = ("monitored", "risk_eliminated", "dibao", "tekun", "has_measures")


@dataclass(frozen=True)
class StatsRules:
    """What ``stats/stats.toml`` says."""

    title: str = "{village}贫情分析统计表"
    income_year: int | None = None
    near_ratio: Decimal = Decimal("0.10")
    colors: tuple[ColorRule, ...] = ()


def read_rules(path: Path) -> StatsRules:
    """Return the rules of a ``stats/stats.toml``; raise TemplateError naming what is wrong."""
    data = read_template_toml(path)
    where = str(path)
    income = as_mapping(data.get("income", {}), where)
    year = income.get("year")
    if year is not None and (not isinstance(year, int) or isinstance(year, bool)):
        raise TemplateError(f"模板文件 {where} 中 [income] year = {year!r} 应为年份（整数）", hint="例如 year = 2025")
    ratio = income.get("near_ratio", 0.10)
    if isinstance(ratio, bool) or not isinstance(ratio, int | float) or not 0 <= ratio <= 1:
        raise TemplateError(f"模板文件 {where} 中 [income] near_ratio = {ratio!r} 应为 0 到 1 之间的小数",
                            hint="例如 near_ratio = 0.10 表示 10%")
    colors = []
    for index, entry in enumerate(data.get("colors", []), start=1):
        entry = as_mapping(entry, where)
        name = str(entry.get("name", "")).strip()
        if not name:
            raise TemplateError(f"模板文件 {where} 中第 {index} 个 [[colors]] 没有 name", hint='例如 name = "红"')
        when = entry.get("when", [])
        if isinstance(when, Mapping):
            when = [when]
        conditions = []
        for condition in when:
            condition = as_mapping(condition, where)
            for key, value in condition.items():
                if key in FLAG_FACTS:
                    if not isinstance(value, bool):
                        raise TemplateError(f"模板文件 {where} 中颜色「{name}」的条件 {key} 应为 true 或 false")
                elif key in LABEL_FACTS:
                    if not isinstance(value, list | str):
                        raise TemplateError(f"模板文件 {where} 中颜色「{name}」的条件 {key} 应为取值列表",
                                            hint=f'例如 {key} = ["…", "…"]')
                else:
                    raise TemplateError(
                        f"模板文件 {where} 中颜色「{name}」有未知条件 {key}",
                        hint="可用条件：" + "、".join((*LABEL_FACTS, *FLAG_FACTS)),
                    )
            conditions.append(dict(condition))
        colors.append(ColorRule(name, str(entry.get("meaning", "")), str(entry.get("rgb", "")), tuple(conditions)))
    return StatsRules(
        title=str(data.get("title", StatsRules.title)),
        income_year=year,
        near_ratio=Decimal(str(ratio)),
        colors=tuple(colors),
    )


def household_facts(record: Household, year: int) -> dict[str, Any]:
    """Return what the colour rules can ask about one household."""
    monitor = record.monitor
    return {
        "household_type": record.household_type,
        "poverty_attribute": record.poverty_attribute,
        "poverty_status": record.poverty_status,
        "monitor_category": monitor.category if monitor else None,
        "monitored": monitor is not None,
        "risk_eliminated": bool(monitor and monitor.eliminated),
        "dibao": any(m.dibao for m in record.members),
        "tekun": any(m.tekun for m in record.members),
        "has_measures": any(m.year == year for m in record.measures),
    }


def _holds(condition: Mapping[str, Any], facts: Mapping[str, Any]) -> bool:
    for key, wanted in condition.items():
        value = facts.get(key)
        if key in FLAG_FACTS:
            if bool(value) is not wanted:
                return False
        else:
            options = [wanted] if isinstance(wanted, str) else list(wanted)
            if value not in options:
                return False
    return True


def classify(facts: Mapping[str, Any], colors: Sequence[ColorRule]) -> str:
    """Return the name of the first colour one of whose conditions holds, else 未分色."""
    for rule in colors:
        if any(_holds(condition, facts) for condition in rule.when):
            return rule.name
    return UNCOLORED


# --------------------------------------------------------------------------- counting


def _ordered_labels(vocab_name: str | None, seen: Iterable[str]) -> list[str]:
    seen = list(dict.fromkeys(seen))
    known = list(vocab.get(vocab_name).labels) if vocab_name else []
    return [label for label in known if label in seen] + sorted(label for label in seen if label not in known)


def breakdown(
    key: str,
    title: str,
    records: Sequence[Household],
    groups: Sequence[str],
    values_of: Callable[[Household], Iterable[str]],
    *,
    vocab_name: str | None = None,
    order: Sequence[str] | None = None,
    label: str = "",
    footer_label: str = "合计",
    note: str | None = None,
) -> StatsTable:
    """Return households and persons per value, for the village and for each 村民组.

    A household with several values (风险类型) counts once under each; the footer counts
    every household with at least one value once.
    """
    per_value: dict[str, list[Household]] = {}
    counted: list[Household] = []
    for record in records:
        values = list(dict.fromkeys(v for v in values_of(record) if v))
        if values:
            counted.append(record)
        for value in values:
            per_value.setdefault(value, []).append(record)
    labels = list(order) if order is not None else _ordered_labels(vocab_name, per_value)

    def cells(chosen: Sequence[Household]) -> tuple[int, ...]:
        out = [len(chosen), sum(len(r.members) for r in chosen)]
        for group in groups:
            in_group = [r for r in chosen if group_of(r) == group]
            out += [len(in_group), sum(len(r.members) for r in in_group)]
        return tuple(out)

    rows: tuple[tuple[Value, ...], ...] = tuple((name, *cells(per_value.get(name, []))) for name in labels)
    columns = (label or title, *(["户数", "人数"] * (len(groups) + 1)))
    bands = (("", 1), ("全村", 2), *((group, 2) for group in groups))
    missing = len(records) - len(counted)
    if note is None:
        note = f"另有 {missing} 户未填{title}，未计入本表。" if missing else ""
    return StatsTable(
        key=key, title=title, columns=columns, rows=rows, footer=((footer_label, *cells(counted)),),
        bands=bands, note=note,
    )


def _per_capita(record: Household, year: int) -> Decimal | None:
    for entry in record.income:
        if entry.year == year:
            return record.per_capita_income(entry)
    return None


INCOME_ROWS = ("低于标准", "接近标准", "高于标准", "无该年度收入数据")


def income_band(per_capita: Decimal | None, threshold: Decimal | None, near_ratio: Decimal) -> str:
    """Return which row of the income table a 人均纯收入 falls in."""
    if per_capita is None or threshold is None:
        return INCOME_ROWS[3]
    if per_capita < threshold:
        return INCOME_ROWS[0]
    if per_capita <= threshold * (1 + near_ratio):
        return INCOME_ROWS[1]
    return INCOME_ROWS[2]


def _money(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def _percent(part: int, whole: int) -> str:
    if not whole:
        return "—"
    return f"{Decimal(part * 100) / whole:.1f}%"


def measures_table(records: Sequence[Household]) -> StatsTable:
    """Return measures per year and category: households reached, measures, amount (元)."""
    cells: dict[tuple[int | None, str], list[Any]] = {}
    for record in records:
        for measure in record.measures:
            entry = cells.setdefault((measure.year, measure.category), [set(), 0, Decimal(0)])
            entry[0].add(record.household_id)
            entry[1] += 1
            entry[2] += measure.amount or Decimal(0)
    years = sorted({y for y, _ in cells}, key=lambda y: (y is None, y or 0))
    order = list(vocab.get("measure_category").labels)
    rows: list[tuple[Value, ...]] = []
    totals: dict[str, list[Any]] = {}
    for year in years:
        categories = [c for y, c in cells if y == year]
        categories.sort(key=lambda c: (order.index(c) if c in order else len(order), c))
        year_households: set[str] = set()
        year_count, year_amount = 0, Decimal(0)
        for category in categories:
            households, count, amount = cells[(year, category)]
            rows.append((str(year) if year else "未填年度", category, len(households), count, _money(amount)))
            year_households |= households
            year_count += count
            year_amount += amount
            total = totals.setdefault(category, [set(), 0, Decimal(0)])
            total[0] |= households
            total[1] += count
            total[2] += amount
        rows.append((str(year) if year else "未填年度", "小计", len(year_households), year_count, _money(year_amount)))
    all_households = set().union(*(t[0] for t in totals.values())) if totals else set()
    footer = (("合计", "", len(all_households), sum(t[1] for t in totals.values()),
               _money(sum((t[2] for t in totals.values()), Decimal(0)))),)
    ranked = sorted(totals.items(), key=lambda item: (-item[1][2], item[0]))
    return StatsTable(
        key="measures", title="帮扶措施（按年度、类别）",
        columns=("年度", "措施类别", "受益户数", "措施项数", "金额（元）"),
        rows=tuple(rows), footer=footer,
        chart="bar", chart_title="帮扶资金按措施类别（元）",
        chart_data=tuple((name, float(total[2])) for name, total in ranked if total[2] > 0),
    )


def _age(member: Member, on: date) -> int | None:
    born = member.birth_date
    if born is None:
        try:
            born = parse_id(member.id_number).birth_date
        except IdNumberError:
            return None
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


SCHOOL_AGE = (6, 15)
MEDICAL = ("居民医保", "职工医保")


def coverage_table(records: Sequence[Household], on: date) -> StatsTable:
    """Return 三保障 and 饮水安全: who should be covered, who is, who is not, who is unknown."""
    children = [m for r in records for m in r.members
                if (age := _age(m, on)) is not None and SCHOOL_AGE[0] <= age <= SCHOOL_AGE[1]]
    in_school = [m for m in children if m.student_status and m.student_status != "非在校生"]
    unknown_school = [m for m in children if not m.student_status]
    persons = [m for r in records for m in r.members]
    insured = [m for m in persons if any(i in MEDICAL for i in m.insured)]
    unknown_insured = [m for m in persons if not m.insured]
    living = [r.living for r in records]
    houses = [x for x in living if x is not None and x.dangerous_house]
    safe_houses = [x for x in houses if x.dangerous_house == "否"]
    waters = [x for x in living if x is not None and x.safe_drinking_water is not None]
    safe_water = [x for x in waters if x.safe_drinking_water]

    def row(item: str, basis: str, total: int, ok: int, unknown: int) -> tuple[Value, ...]:
        return (item, basis, total, ok, total - ok - unknown, unknown, _percent(ok, total - unknown))

    return StatsTable(
        key="coverage", title="“三保障”和饮水安全",
        columns=("项目", "统计口径", "应保障", "已保障", "未保障", "未填报", "保障率"),
        rows=(
            row("义务教育", f"{SCHOOL_AGE[0]}—{SCHOOL_AGE[1]}周岁人口在校", len(children), len(in_school),
                len(unknown_school)),
            row("基本医疗", "参加居民医保或职工医保（人）", len(persons), len(insured), len(unknown_insured)),
            row("住房安全", "非危房（户）", len(records), len(safe_houses), len(records) - len(houses)),
            row("饮水安全", "饮水安全有保障（户）", len(records), len(safe_water), len(records) - len(waters)),
        ),
        note=f"年龄按 {on.year} 年 {on.month} 月 {on.day} 日计算；保障率 = 已保障 ÷（应保障 − 未填报）。",
    )


# --------------------------------------------------------------------------- one village


def village_stats(
    code: str,
    name: str,
    groups: Sequence[str],
    records: Sequence[Household],
    rules: StatsRules,
    *,
    year: int,
    on: date,
    threshold: Decimal | None,
    skipped: Sequence[Problem] = (),
) -> VillageStats:
    """Return the tables of one village from its records (no files read)."""
    groups = list(groups)
    income_year = rules.income_year or year
    tables: list[StatsTable] = []
    household_types = breakdown("household_type", "户类型", records, groups, lambda r: [r.household_type],
                                vocab_name="household_type")
    tables.append(_with_chart(household_types, "bar", "各类型户数"))
    tables.append(breakdown("poverty_attribute", "贫困户属性", records, groups, lambda r: [r.poverty_attribute or ""],
                            vocab_name="poverty_attribute"))
    tables.append(breakdown("poverty_status", "脱贫状态", records, groups, lambda r: [r.poverty_status or ""],
                            vocab_name="poverty_status"))
    tables.append(breakdown("monitor_category", "监测类别", records, groups,
                            lambda r: [r.monitor.category if r.monitor else ""], vocab_name="monitor_category",
                            footer_label="监测对象合计", note=""))
    risk_state = breakdown("risk_state", "风险消除情况", records, groups, _risk_state,
                           order=RISK_STATES, footer_label="监测对象合计", note="")
    tables.append(StatsTable(**{**risk_state.__dict__,  # the last row only when a record needs it
                                "rows": tuple(r for r in risk_state.rows if r[0] != RISK_STATES[3] or r[1])}))
    tables.append(breakdown("monitor_risk", "风险类型", records, groups,
                            lambda r: r.monitor.risks if r.monitor else [], vocab_name="monitor_risk",
                            footer_label="监测对象合计", note="一户有多种风险的，在每种风险下各计一次。"))
    tables.append(breakdown("cause", "主要致贫原因", records, groups, lambda r: [r.causes.main], vocab_name="cause"))
    colors = breakdown(
        "colors", "三色管理", records, groups, lambda r: [classify(household_facts(r, year), rules.colors)],
        order=[c.name for c in rules.colors] + [UNCOLORED], label="颜色",
        note="；".join(f"{c.name}：{c.meaning}" for c in rules.colors if c.meaning) + "（规则见模板 stats/stats.toml）",
    )
    palette = {c.name: c.rgb for c in rules.colors}
    rows = tuple(row for row in colors.rows if row[0] != UNCOLORED or row[1])  # 未分色 only when there is one
    colors = _with_chart(
        StatsTable(**{**colors.__dict__, "rows": rows}), "pie", "三色管理（户数）",
        colors=tuple(palette.get(str(row[0]), "#9E9E9E") or "#9E9E9E" for row in rows),
    )
    tables.append(colors)
    near = f"{format((rules.near_ratio * 100).normalize(), 'f')}%"
    income_note = (
        f"{income_year} 年家庭人均纯收入与监测收入标准 {money(threshold)} 元比较：低于标准；接近标准（达到标准，高出不超过 {near}）；高于标准（高出 {near} 以上）。"
        if threshold is not None else "archive.toml 未设置监测收入标准 income_threshold，无法比较。"
    )
    income = breakdown(
        "income", f"人均纯收入（{income_year}年）", records, groups,
        lambda r: [income_band(_per_capita(r, income_year), threshold, rules.near_ratio)],
        order=INCOME_ROWS, label="收入区间", note=income_note,
    )
    tables.append(_with_chart(income, "bar", f"{income_year}年人均纯收入分布（户）"))
    tables.append(measures_table(records))
    tables.append(coverage_table(records, on))
    title = rules.title.replace("{village}", name).replace("{year}", str(year))
    return VillageStats(
        code=code, name=name, title=title, groups=tuple(groups), households=len(records),
        persons=sum(len(r.members) for r in records), tables=tuple(tables), skipped=tuple(skipped),
    )


RISK_STATES = ("风险未消除", "帮扶消除", "自然消除", "已消除（未填方式）")


def _risk_state(record: Household) -> list[str]:
    monitor = record.monitor
    if monitor is None:
        return []
    if not monitor.eliminated:
        return [RISK_STATES[0]]
    if monitor.eliminate_method in RISK_STATES:
        return [monitor.eliminate_method]
    return [RISK_STATES[3]]


def _with_chart(table: StatsTable, kind: str, title: str, colors: tuple[str, ...] = ()) -> StatsTable:
    data = tuple((str(row[0]), float(row[1])) for row in table.rows if isinstance(row[1], int))
    return StatsTable(**{**table.__dict__, "chart": kind, "chart_title": title, "chart_data": data,
                         "chart_colors": colors})


# --------------------------------------------------------------------------- the API


def compute_stats(data_dir: Path, villages: Iterable[str] = ()) -> Stats:
    """Return the statistics of the chosen villages (all when none is named).

    Raises DataDirError for an unusable data directory or an unknown village, TemplateError
    for a wrong ``stats/stats.toml``. Households whose data cannot be read are left out and
    listed in ``Stats.problems``.
    """
    from ..packet import document_date

    dataset, loaded = load_villages(Path(data_dir), villages)
    config = dataset.config
    day = date.fromisoformat(document_date(config))
    year = config.archive.year or day.year
    threshold = config.archive.income_threshold
    results = []
    problems: list[Problem] = []
    for entry in loaded:
        village = entry.village
        rules = read_rules(template_file(dataset, village, STATS_FILE))
        results.append(village_stats(
            village.config.code, village.config.name, group_order(village, entry.records), entry.records, rules,
            year=year, on=day, threshold=threshold, skipped=entry.skipped,
        ))
        problems.extend(entry.skipped)
    return Stats(
        county=config.archive.county, township=config.archive.township, year=year, date=day.isoformat(),
        income_threshold=threshold, villages=tuple(results), problems=tuple(problems),
    )


def village_tables(data_dir: Path, village: str) -> VillageStats:
    """Return the statistics of one village (code or name): what the web app's village page shows."""
    (result,) = compute_stats(data_dir, [village]).villages
    return result


__all__ = [
    "ColorRule", "Stats", "StatsRules", "StatsTable", "VillageStats", "classify", "compute_stats",
    "household_facts", "income_band", "read_rules", "village_stats", "village_tables",
]
