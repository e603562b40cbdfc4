"""Running a rule set over households: one compiled template per rule set.

Evaluating each condition as its own ``compile_expression`` costs ~25 µs a call (a new
Jinja context each time), which for a 2,000-household township (150,000 rule × item pairs)
is several seconds. Instead the conditions of a rule set are put, as parsed expression nodes,
into one template per scope group: ``if cond: hit(rule, index)`` for the household rules, and
``for member in household.members`` loops around the member rules, and so on. One render per
household then evaluates every rule on every item. When a render fails (a rule that raises on
some unusual record), the household's rules are run one by one so the others still count and
the failing rule is named.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import jinja2
from jinja2 import nodes

from ..records.models import Household
from .rules import (
    SCOPES,
    Rule,
    RuleFileError,
    RuleSet,
    UnknownField,
    as_date,
    compile_message,
    make_environment,
    param_mapping,
    parse_expression,
    trust,
)

#: variables bound inside each loop before the rules run: name → helper factory (Facts method)
_LOOP_BINDINGS = {
    "成员": (("age_on", "age_fn"), ("age", "age_now"), ("birth", "birth_of")),
    "帮扶措施": (("has_evidence", "evidence_fn"),),
    "程序": (("has_evidence", "evidence_fn"),),
}


@dataclass(frozen=True)
class Hit:
    """A rule that fired on one household (or village) and item."""

    rule: Rule
    #: position of the item in its list (members[i] …); None for household and village rules
    index: int | None
    key: str
    message: str


@dataclass(frozen=True)
class RuleRunError:
    """A rule that raised while running on one household (the rule's fault, not the data's)."""

    rule: Rule
    household_id: str
    text: str

    def format(self) -> str:
        return f"{self.rule.where()}：在户 {self.household_id} 上运行出错：{self.text}"


def _birth_date(member: Any) -> dt.date | None:
    if member is None:
        return None
    if getattr(member, "birth_date", None):
        return member.birth_date  # type: ignore[no-any-return]
    number = str(getattr(member, "id_number", "") or "")
    try:
        return dt.date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        return None


def years_between(start: Any, end: Any) -> int | None:
    """Whole years from ``start`` to ``end`` (an age); None when either is not a date."""
    a, b = as_date(start), as_date(end)
    if a is None or b is None:
        return None
    return b.year - a.year - ((b.month, b.day) < (a.month, a.day))


def days_between(start: Any, end: Any) -> int | None:
    """Days from ``start`` to ``end`` (end − start); None when either is not a date."""
    a, b = as_date(start), as_date(end)
    if a is None or b is None:
        return None
    return (b - a).days


def has_any(values: Any, *wanted: Any) -> bool:
    """True when the list ``values`` (or a single value) contains one of ``wanted``."""
    if values is None:
        return False
    if isinstance(values, (str, int)):
        values = [values]
    return any(v in wanted for v in values)


def make_date(year: int, month: int = 1, day: int = 1) -> dt.date:
    return dt.date(int(year), int(month), int(day))


class Facts:
    """The helpers a rule calls about one household (bound to it)."""

    def __init__(self, record: Household, archive: Any, params: dict[str, Any], ref_date: dt.date) -> None:
        self.record = record
        self.archive = archive
        self.params = params
        self.ref_date = ref_date
        self._types: dict[str, str] | None = None
        self._phases: dict[int, str] | None = None

    # -- income
    def income_of(self, year: Any) -> Any:
        for entry in self.record.income:
            if entry.year == year:
                return entry
        return None

    def per_capita(self, year: Any) -> Decimal | None:
        """人均纯收入 of ``year`` (or of an income entry); None when there is no such year."""
        entry = year if hasattr(year, "net_income") else self.income_of(year)
        return None if entry is None else self.record.per_capita_income(entry)

    def threshold(self, year: Any = None) -> Decimal | None:
        """The income standard of ``year``: ``参数.收入标准[year]`` or archive.toml's income_threshold."""
        by_year = param_mapping(self.params.get("收入标准"))
        value = by_year.get(year, by_year.get(str(year))) if year is not None else None
        if value is None:
            value = self.archive.income_threshold
        return None if value is None else Decimal(str(value)).quantize(Decimal("0.01"))

    # -- measures, visits, helpers, procedure
    def measures_of(self, category: Any = None, year: Any = None, since: Any = None) -> list[Any]:
        cats = category if isinstance(category, (list, tuple)) else (category,)
        out = []
        for m in self.record.measures:
            if category is not None and m.category not in cats:
                continue
            if year is not None and m.year != year:
                continue
            if since is not None:
                start = as_date(since)
                when = m.date or (dt.date(m.year, 12, 31) if m.year else None)
                if start is not None and (when is None or when < start):
                    continue
            out.append(m)
        return out

    def has_measure(self, category: Any = None, year: Any = None, since: Any = None) -> bool:
        return bool(self.measures_of(category, year, since))

    def visits_in(self, year: Any) -> int:
        return sum(1 for v in self.record.visits if v.date is not None and v.date.year == year)

    def current_helpers(self) -> list[Any]:
        on = self.ref_date
        return [h for h in self.record.helpers
                if (h.start is None or h.start <= on) and (h.end is None or h.end >= on)]

    def steps(self, *kinds: str) -> list[Any]:
        return [s for s in self.record.procedure if not kinds or s.kind in kinds]

    def last_step(self, *kinds: str) -> Any:
        """The dated step of one of ``kinds`` with the latest date (None when there is none)."""
        dated = [s for s in self.steps(*kinds) if s.date is not None]
        return max(dated, key=lambda s: s.date) if dated else None

    def first_step(self, kind: str, after: Any = None) -> Any:
        """The earliest dated step of ``kind`` on or after ``after`` (None when there is none)."""
        start = as_date(after)
        dated = [s for s in self.steps(kind) if s.date is not None and (start is None or s.date >= start)]
        return min(dated, key=lambda s: s.date) if dated else None

    def _matches(self, member: Any, name: str, values: tuple[Any, ...]) -> bool:
        value = getattr(member, name, None)
        if not values:
            return bool(value)
        return has_any(value, *values)

    def any_member(self, name: str, *values: Any) -> bool:
        """Some member's field ``name`` is true (or, with values, is / contains one of them)."""
        return any(self._matches(m, name, values) for m in self.record.members)

    def all_members(self, name: str, *values: Any) -> bool:
        """Every member's field ``name`` is true (or, with values, is / contains one of them)."""
        return bool(self.record.members) and all(self._matches(m, name, values) for m in self.record.members)

    # -- members
    def age_fn(self, member: Any) -> Callable[..., int | None]:
        def age_on(on: Any = None, person: Any = None) -> int | None:
            return years_between(_birth_date(person or member), on or self.ref_date)
        return age_on

    def age_of(self, member: Any, on: Any = None) -> int | None:
        return years_between(_birth_date(member), on or self.ref_date)

    def age_on(self, on: Any = None, person: Any = None) -> int | None:
        return self.age_of(person, on)

    def age_now(self, member: Any) -> int | None:
        return self.age_of(member)

    def birth_of(self, member: Any) -> dt.date | None:
        return _birth_date(member)

    # -- evidence
    def _evidence_types(self) -> dict[str, str]:
        if self._types is None:
            self._types = {ref.file: ref.type for ref in self.record.evidence if ref.type}
        return self._types

    def types_of(self, item: Any) -> set[str]:
        """The 佐证材料类型 of an item's evidence (a path's type is looked up in the household's list)."""
        known = self._evidence_types()
        refs = getattr(item, "evidence", None) or []
        return {ref.type or known.get(ref.file, "") for ref in refs} - {""}

    def has_evidence(self, *types: Any) -> bool:
        """Household level: the record's evidence list has one of ``types`` (any at all without)."""
        wanted = _flatten(types)
        found = {ref.type for ref in self.record.evidence if ref.type}
        return bool(found & wanted) if wanted else bool(self.record.evidence)

    def evidence_fn(self, item: Any) -> Callable[..., bool]:
        def has_evidence(*types: Any) -> bool:
            wanted = _flatten(types)
            if not wanted:
                return bool(getattr(item, "evidence", None))
            return bool(self.types_of(item) & wanted)
        return has_evidence

    def expected_evidence(self, measure: Any) -> list[str]:
        """The evidence types ``参数.措施佐证`` expects for a measure (by item, else by category)."""
        table = param_mapping(self.params.get("措施佐证"))
        found = table.get(measure.item or "") or table.get(measure.category or "") or []
        return [found] if isinstance(found, str) else list(found)

    def publicity_min(self, step: Any) -> int:
        """The fewest days the 公示 (or 公告) ``step`` must last, by the phase it belongs to
        (识别 / 退出 / 监测; the parameters 公示天数, 监测公示天数, 公告天数 — the notices use them too)."""
        from .phases import phased_steps
        from .rules import publicity_days

        if self._phases is None:
            self._phases = {id(p.step): p.phase for p in phased_steps(self.record)}
        return publicity_days(self.params, [self._phases.get(id(step), "识别")], getattr(step, "kind", "公示"))

    def variables(self) -> dict[str, Any]:
        return {
            "household": self.record,
            "archive": self.archive,
            "params": self.params,
            "ref_date": self.ref_date,
            "year": self.archive.year,
            "income_of": self.income_of,
            "per_capita": self.per_capita,
            "threshold": self.threshold,
            "measures_of": self.measures_of,
            "has_measure": self.has_measure,
            "visits_in": self.visits_in,
            "current_helpers": self.current_helpers,
            "steps": self.steps,
            "last_step": self.last_step,
            "first_step": self.first_step,
            "any_member": self.any_member,
            "all_members": self.all_members,
            "age_of": self.age_of,
            "age_on": self.age_on,
            "has_evidence": self.has_evidence,
            "evidence_types": self.types_of,
            "expected_evidence": self.expected_evidence,
            "min_days": self.publicity_min,
            # factories bound inside loops
            "age_fn": self.age_fn,
            "age_now": self.age_now,
            "birth_of": self.birth_of,
            "evidence_fn": self.evidence_fn,
        }


def _flatten(values: Iterable[Any]) -> set[str]:
    out: set[str] = set()
    for value in values:
        if isinstance(value, (list, tuple, set)):
            out.update(str(v) for v in value)
        elif value is not None:
            out.add(str(value))
    return out


COMMON = {
    "years_between": years_between,
    "days_between": days_between,
    "has_any": has_any,
    "date": make_date,
    "as_date": as_date,
}
trust(*COMMON.values(), *(v for k, v in vars(Facts).items() if callable(v) and not k.startswith("__")))
trust(Facts.age_fn(None, None), Facts.evidence_fn(None, None))  # type: ignore[arg-type]  # the closures' code


def item_key(scope: str, item: Any) -> str:
    """The stable part of a problem key that names the item (member, measure, year, step)."""
    if scope == "成员":
        digest = hashlib.sha1(str(item.id_number).encode()).hexdigest()[:10]
        return f"成员{digest}"
    if scope == "帮扶措施":
        return f"措施{item.year or ''}/{item.item or item.category}/{item.date or ''}"
    if scope == "收入年度":
        return f"收入{item.year}"
    if scope == "程序":
        return f"程序{item.kind}/{item.date or ''}"
    return ""


def _loop_vars(scope: str, item: Any, facts: Facts) -> dict[str, Any]:
    spec = SCOPES[scope]
    if spec is None:
        return {}
    variables = {spec[0]: item}
    for name, factory in _LOOP_BINDINGS.get(scope, ()):
        variables[name] = getattr(facts, factory)(item)
    return variables


class Auditor:
    """A compiled rule set; ``household`` and ``village`` return the rules' hits."""

    def __init__(self, rule_set: RuleSet, archive: Any, ref_date: dt.date) -> None:
        self.rule_set = rule_set
        self.archive = archive
        self.ref_date = ref_date
        self.env = make_environment()
        self.env.globals.update(COMMON)
        self.rules = rule_set.rules
        self.messages = {rule.id: compile_message(self.env, rule) for rule in self.rules}
        self._singles: dict[str, Any] = {}
        self.household_template = self._compile([r for r in self.rules if r.scope != "村"])
        self.village_rules = [r for r in self.rules if r.scope == "村"]
        self.village_template = self._compile(self.village_rules)

    # -- compiling
    def _hit_call(self, number: int, index: nodes.Expr) -> nodes.Stmt:
        call = nodes.Call(nodes.Name("hit", "load"), [nodes.Const(number), index], [], None, None)
        return nodes.ExprStmt(call)

    def _compile(self, rules: Sequence[Rule]) -> jinja2.Template | None:
        if not rules:
            return None
        body: list[nodes.Node] = []
        for scope, spec in SCOPES.items():
            numbered = [(n, r) for n, r in enumerate(self.rules) if r in rules and r.scope == scope]
            if not numbered:
                continue
            if spec is None:
                body.extend(nodes.If(parse_expression(self.env, r), [self._hit_call(n, nodes.Const(None))], [], [])
                            for n, r in numbered)
                continue
            var, attr = spec
            index = nodes.Getattr(nodes.Name("loop", "load"), "index0", "load")
            inner: list[nodes.Node] = [
                nodes.Assign(nodes.Name(name, "store"),
                             nodes.Call(nodes.Name(factory, "load"), [nodes.Name(var, "load")], [], None, None))
                for name, factory in _LOOP_BINDINGS.get(scope, ())
            ]
            inner.extend(nodes.If(parse_expression(self.env, r), [self._hit_call(n, index)], [], [])
                         for n, r in numbered)
            iterable = nodes.Getattr(nodes.Name("household", "load"), attr, "load")
            body.append(nodes.For(nodes.Name(var, "store"), iterable, inner, [], None, False))
        tree = nodes.Template(body, lineno=1)
        tree.set_environment(self.env)
        for node in tree.find_all(nodes.Node):
            if getattr(node, "lineno", None) is None:
                node.lineno = 1
        code = self.env.compile(tree)
        return self.env.template_class.from_code(self.env, code, self.env.make_globals(None), None)

    def _single(self, rule: Rule) -> Any:
        compiled = self._singles.get(rule.id)
        if compiled is None:
            compiled = self._singles[rule.id] = self.env.compile_expression(rule.condition, undefined_to_none=False)
        return compiled

    # -- running
    def _render(self, template: jinja2.Template, variables: dict[str, Any]) -> list[tuple[int, int | None]]:
        found: list[tuple[int, int | None]] = []
        variables = {**variables, "hit": _hitter(found)}
        for _ in template.root_render_func(template.new_context(variables)):
            pass
        return found

    def _one_by_one(self, rules: Sequence[Rule], variables: dict[str, Any], facts: Facts | None,
                    owner: str, errors: list[RuleRunError]) -> list[tuple[int, int | None]]:
        found: list[tuple[int, int | None]] = []
        numbers = {r.id: n for n, r in enumerate(self.rules)}
        for rule in rules:
            spec = SCOPES[rule.scope]
            items: list[tuple[int | None, dict[str, Any]]] = [(None, {})]
            if spec is not None and facts is not None:
                items = [(i, _loop_vars(rule.scope, item, facts))
                         for i, item in enumerate(getattr(facts.record, spec[1]))]
            for index, extra in items:
                try:
                    if self._single(rule)(**{**variables, **extra}):
                        found.append((numbers[rule.id], index))
                except Exception as exc:  # noqa: BLE001 - a county's rule may fail on odd data
                    errors.append(RuleRunError(rule, owner, _explain(exc)))
                    break
        return found

    def household(self, record: Household, errors: list[RuleRunError]) -> list[Hit]:
        """The hits of every non-village rule on one household."""
        if self.household_template is None:
            return []
        facts = Facts(record, self.archive, self.rule_set.params, self.ref_date)
        variables = facts.variables()
        try:
            found = self._render(self.household_template, variables)
        except Exception:  # noqa: BLE001 - find the rule that failed, keep the others' hits
            rules = [r for r in self.rules if r.scope != "村"]
            found = self._one_by_one(rules, variables, facts, str(record.household_id), errors)
        return [self._hit(number, index, variables, facts) for number, index in found]

    def village(self, village: Any, records: list[Household], errors: list[RuleRunError]) -> list[Hit]:
        """The hits of the village rules (``village``: the village.toml settings; ``households``)."""
        if self.village_template is None:
            return []
        variables = {"village": village, "households": records, "archive": self.archive,
                     "params": self.rule_set.params, "ref_date": self.ref_date, "year": self.archive.year}
        try:
            found = self._render(self.village_template, variables)
        except Exception:  # noqa: BLE001
            found = self._one_by_one(self.village_rules, variables, None, f"村 {village.name}", errors)
        return [self._hit(number, index, variables, None) for number, index in found]

    def _hit(self, number: int, index: int | None, variables: dict[str, Any], facts: Facts | None) -> Hit:
        rule = self.rules[number]
        spec = SCOPES[rule.scope]
        extra: dict[str, Any] = {}
        key_part = ""
        if spec is not None and index is not None and facts is not None:
            item = getattr(facts.record, spec[1])[index]
            extra = _loop_vars(rule.scope, item, facts)
            key_part = item_key(rule.scope, item)
        try:
            message = self.messages[rule.id].render({**variables, **extra}).strip()
        except Exception as exc:  # noqa: BLE001 - a broken message still reports the problem
            message = f"{rule.description}（消息模板出错：{_explain(exc)}）"
        return Hit(rule, index, key_part, message or rule.description)


def _hitter(found: list[tuple[int, int | None]]) -> Callable[[int, int | None], None]:
    def hit(number: int, index: int | None) -> None:
        found.append((number, index))
    return hit


trust(_hitter([]))


def _explain(exc: BaseException) -> str:
    if isinstance(exc, UnknownField):
        return str(exc)
    if isinstance(exc, jinja2.UndefinedError):
        return f"使用了未定义的名称：{exc.message}"
    if isinstance(exc, TypeError):
        return f"值的类型不能这样运算（{exc}），请先判断该值是否存在，例如 x is not none and x < 5"
    if isinstance(exc, jinja2.exceptions.SecurityError):
        return f"规则中不允许的操作：{exc}"
    if isinstance(exc, ZeroDivisionError):
        return "除数为 0，请先判断除数不为 0，例如 n > 0 and x / n < 5"
    if isinstance(exc, LookupError):
        return f"取不到这一项（{exc}），请先判断它是否存在"
    if isinstance(exc, ValueError | ArithmeticError):
        return f"值无法这样计算或转换（{exc}）"
    return f"计算出错（{exc}）"


# --- checking a rule set on a complete sample record ------------------------------------------

_SAMPLE: dict[str, Any] = {
    "household_id": "000000000000",
    "group": "第一村民组",
    "household_type": "防止返贫致贫对象",
    "poverty_attribute": "低保贫困户",
    "poverty_status": "已脱贫(享受政策)",
    "identified_on": "2016-03",
    "exit_year": 2019,
    "monitor": {"category": "脱贫不稳定户", "risks": ["因病"], "identified_on": "2022-05-01", "eliminated": True,
                "eliminate_method": "帮扶消除", "eliminated_on": "2023-06-30"},
    "causes": {"main": "因病", "others": ["缺劳动力"]},
    "members": [
        {"name": "甲", "id_number": "11010519491231002X", "relation": "户主", "education": "小学",
         "student_status": "非在校生", "health": ["健康"], "labour": "普通劳动力", "insured": ["居民医保"],
         "dibao": True, "tekun": False, "birth_date": "1949-12-31", "sex": "女", "work_months": 3,
         "work_place": "本县"},
    ],
    "living": {"house_area_m2": 80, "house_structure": "砖混", "dangerous_house": "否", "safe_drinking_water": True,
               "electricity": True, "farmland_mu": 3},
    "helpers": [{"name": "乙", "unit": "县直单位", "unit_level": "县直", "start": "2020-01-01", "end": "2030-01-01"}],
    "application": {"date": "2016-02-01", "signed": True},
    "procedure": [{"kind": "公示", "date": "2016-03-01", "date_to": "2016-03-08", "result": "无异议",
                   "evidence": [{"file": "a.jpg", "type": "照片"}]}],
    "plan": [{"year": 2020, "needs": "x", "plan": "y"}],
    "measures": [{"year": 2020, "category": "产业帮扶", "item": "企业带贫分红", "provider": "x", "content": "y",
                  "amount": 100, "date": "2020-05-01", "signed": True, "evidence": ["a.jpg"]}],
    "income": [{"year": 2020, "wage": {"务工": 1000}, "business": {"种植": 1}, "property": {"分红": 1},
                "transfer": {"低保金": 1}, "costs": {"种植": 1}, "members_counted": 1}],
    "visits": [{"date": "2020-06-01", "visitor": "乙", "content": "走访"}],
    "outcomes": [{"date": "2020-12-01", "content": "x", "signed": True}],
    "notes": "说明",
    "evidence": [{"file": "a.jpg", "type": "照片", "title": "t", "date": "2020-01-01", "sensitive": False}],
}


def dry_run(rule_set: RuleSet) -> None:
    """Run each rule once on a complete sample record and village; RuleFileError on the first
    rule that fails (unknown field or name, wrong types), naming its file, line and id."""
    from ..config import ArchiveSection, VillageConfig

    record = Household.model_validate(_SAMPLE)
    archive = ArchiveSection(year=2020, income_threshold=Decimal("6000"))
    village = VillageConfig(code="000000000000", name="样例村", groups=["第一村民组"])
    auditor = Auditor.__new__(Auditor)
    auditor.rule_set, auditor.archive, auditor.ref_date = rule_set, archive, dt.date(2020, 12, 31)
    auditor.env = make_environment()
    auditor.env.globals.update(COMMON)
    auditor.rules = rule_set.rules
    auditor._singles = {}
    facts = Facts(record, archive, rule_set.params, auditor.ref_date)
    for rule in rule_set.rules:
        errors: list[RuleRunError] = []
        if rule.scope == "村":
            variables = {"village": village, "households": [record], "archive": archive, "params": rule_set.params,
                         "ref_date": auditor.ref_date, "year": 2020}
            auditor._one_by_one([rule], variables, None, "样例", errors)
        else:
            auditor._one_by_one([rule], facts.variables(), facts, "样例", errors)
        if errors:
            raise RuleFileError(f"{rule.where()}：「条件」无法运行：{errors[0].text}",
                                hint="请核对字段名（见数据格式说明）和可用的函数名")
