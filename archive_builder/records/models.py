"""pydantic models of one household record (record-format.md §4), with Chinese labels.

Every field carries its Chinese label as ``title``; ``label_of`` turns a field path such as
``members[2].id_number`` into ``家庭成员[3].公民身份号码`` (list positions counted from 1, as a
clerk counts). The models accept what people actually type (an ID number YAML read as an int,
``是``/``否`` for booleans, a single label where a list is expected, known label variants) and
leave the rules of §5 (check digits, money ≥ 0, dates not in the future …) to ``validate.py``,
so that a wrong value becomes a located problem instead of a crash.

Why one module of this size: the record is one schema; its models, their lenient value types
and the label table are read together, as record-format.md §4 is.
"""

from __future__ import annotations

import builtins
import functools
import math
import re
import types
import typing
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
)
from pydantic_core import PydanticCustomError

from . import vocab
from .idnumber import normalize_id

CENT = Decimal("0.01")


# --- value types -------------------------------------------------------------------------


def _text(value: Any) -> Any:
    # YAML reads unquoted digits (ID numbers, phone numbers, 户编号) as int: take them back.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def _to_decimal(value: Any) -> Decimal:
    if isinstance(value, bool):
        raise PydanticCustomError("money_type", "应为数字")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise PydanticCustomError("money_type", "应为数字")
        result = Decimal(
            repr(value)
        )  # repr keeps the digits the clerk typed: 0.1, not 0.1000…
    elif isinstance(value, str):
        try:
            result = Decimal(value.strip().replace(",", ""))
        except InvalidOperation:
            raise PydanticCustomError("money_type", "应为数字") from None
    else:
        raise PydanticCustomError("money_type", "应为数字")
    if not result.is_finite():
        raise PydanticCustomError("money_type", "应为数字")
    return result


_DATE_SEPARATORS = re.compile(r"^(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?$")
_MONTH = re.compile(r"^(\d{4})[-/.年](\d{1,2})月?$")


def _to_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        match = _DATE_SEPARATORS.match(value.strip())
        if match:
            try:
                return date(*(int(part) for part in match.groups()))
            except ValueError:
                raise PydanticCustomError("date_value", "不是有效日期") from None
    raise PydanticCustomError("date_type", "应为日期")


@dataclass(frozen=True, order=True)
class PartialDate:
    """A date that may lack its day (``identified_on: 2016-03``)."""

    year: int
    month: int
    day: int | None = None

    def __str__(self) -> str:
        if self.day is None:
            return f"{self.year:04d}-{self.month:02d}"
        return f"{self.year:04d}-{self.month:02d}-{self.day:02d}"

    def first_day(self) -> date:
        """Return the earliest real date this value can stand for."""
        return date(self.year, self.month, self.day or 1)


def _to_partial_date(value: Any) -> PartialDate:
    if isinstance(value, PartialDate):
        return value
    if isinstance(value, str):
        match = _MONTH.match(value.strip())
        if match:
            year, month = (int(part) for part in match.groups())
            if not 1 <= month <= 12:
                raise PydanticCustomError("date_value", "不是有效日期")
            return PartialDate(year, month)
    day = _to_date(value)
    return PartialDate(day.year, day.month, day.day)


_TRUE = {"是", "有", "已", "true", "yes", "y", "1"}
_FALSE = {"否", "无", "未", "false", "no", "n", "0"}


def _to_bool(value: Any) -> Any:
    if isinstance(value, str):
        folded = value.strip().lower()
        if folded in _TRUE:
            return True
        if folded in _FALSE:
            return False
    return value


def _listify(value: Any) -> Any:
    if value is None:
        return []
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return [value]
    if (
        isinstance(value, dict) and "file" in value
    ):  # one evidence mapping instead of a list
        return [value]
    return value


def _empty_mapping(value: Any) -> Any:
    if value is None:
        return {}
    if isinstance(value, (int, float, str, Decimal)) and not isinstance(value, bool):
        return {"合计": value}  # a bare total instead of a breakdown
    return value


def _sex(value: Any) -> Any:
    if isinstance(value, str):
        return {"男性": "男", "女性": "女", "m": "男", "f": "女"}.get(
            value.strip().lower(), value
        )
    return value


#: characters a 户编号 may not contain: it names the household's output files
_UNSAFE_ID = re.compile(r'[\\/:*?"<>|\x00-\x1f\x7f]')


def _household_id(value: Any) -> Any:
    """A 户编号 names output files: no path separators, drive letters, ``..`` or leading dot."""
    value = _text(value)
    if isinstance(value, str):
        text = value.strip()
        if text and (_UNSAFE_ID.search(text) or text.startswith(".") or text.endswith(".")):
            raise PydanticCustomError("household_id_unsafe", "户编号不能用作文件名")
    return value


def _id_number(value: Any) -> Any:
    value = _text(value)
    return normalize_id(value) if isinstance(value, str) else value


@dataclass(frozen=True)
class VocabRef:
    """Marks a field whose values come from an open vocabulary."""

    name: str


def _label_normalizer(name: str) -> Any:
    def normalize(value: Any) -> Any:
        value = _text(value)
        return vocab.normalize(name, value) if isinstance(value, str) else value

    return normalize


def Label(name: str) -> Any:
    """Return the annotated type of a label from vocabulary ``name``."""
    return Annotated[str, BeforeValidator(_label_normalizer(name)), VocabRef(name)]


def Labels(name: str) -> Any:
    """Return the annotated type of a list of labels from vocabulary ``name``."""
    return Annotated[list[Label(name)], BeforeValidator(_listify)]  # type: ignore[valid-type,misc]


Text = Annotated[str, BeforeValidator(_text)]
Money = Annotated[Decimal, PlainValidator(_to_decimal), PlainSerializer(str)]
Day = Annotated[date, PlainValidator(_to_date)]
MonthOrDay = Annotated[
    PartialDate, PlainValidator(_to_partial_date), PlainSerializer(str)
]
Flag = Annotated[bool, BeforeValidator(_to_bool)]
Sex = Annotated[Literal["男", "女"], BeforeValidator(_sex)]
IdNumber = Annotated[str, BeforeValidator(_id_number)]
HouseholdId = Annotated[str, BeforeValidator(_household_id)]
Amounts = Annotated[dict[str, Money], BeforeValidator(_empty_mapping)]


class Record(BaseModel):
    """Base of every record model: unknown keys are kept (and reported as warnings)."""

    model_config = ConfigDict(extra="allow", str_strip_whitespace=True)


# --- structures --------------------------------------------------------------------------


class EvidenceRef(Record):
    """佐证材料: a path string or a mapping; both are read into this form."""

    file: Text = Field(title="文件")
    type: Label("evidence_type") | None = Field(default=None, title="材料类型")  # type: ignore[valid-type]
    title: Text | None = Field(default=None, title="名称")
    date: Day | None = Field(default=None, title="日期")
    sensitive: Flag | None = Field(default=None, title="敏感")

    @classmethod
    def _coerce(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"file": value}
        return value


def _evidence_item(value: Any) -> Any:
    return EvidenceRef._coerce(value)


EvidenceItem = Annotated[EvidenceRef, BeforeValidator(_evidence_item)]
EvidenceList = Annotated[list[EvidenceItem], BeforeValidator(_listify)]


class Member(Record):
    """家庭成员 (§4.1)."""

    name: Text = Field(title="姓名")
    id_number: IdNumber = Field(title="公民身份号码")
    relation: Label("relation") = Field(title="与户主关系")  # type: ignore[valid-type]
    sex: Sex | None = Field(default=None, title="性别")
    birth_date: Day | None = Field(default=None, title="出生日期")
    ethnicity: Label("ethnicity") = Field(default="汉族", title="民族")  # type: ignore[valid-type]
    education: Label("education") | None = Field(default=None, title="文化程度")  # type: ignore[valid-type]
    student_status: Label("student_status") | None = Field(  # type: ignore[valid-type]
        default=None, title="在校生状况"
    )
    health: Labels("health") = Field(default_factory=list, title="健康状况")  # type: ignore[valid-type]
    labour: Label("labour") | None = Field(default=None, title="劳动技能")  # type: ignore[valid-type]
    work_place: Text | None = Field(default=None, title="务工地点")
    work_months: int | None = Field(default=None, title="务工时间(月)")
    insured: Labels("insurance") = Field(default_factory=list, title="参保情况")  # type: ignore[valid-type]
    dibao: Flag | None = Field(default=None, title="低保")
    tekun: Flag | None = Field(default=None, title="特困供养")


class Monitor(Record):
    """监测信息."""

    category: Label("monitor_category") = Field(title="监测类别")  # type: ignore[valid-type]
    risks: Labels("monitor_risk") = Field(default_factory=list, title="风险类型")  # type: ignore[valid-type]
    identified_on: MonthOrDay | None = Field(default=None, title="风险识别时间")
    eliminated: Flag | None = Field(default=None, title="风险是否消除")
    eliminate_method: Label("eliminate_method") | None = Field(  # type: ignore[valid-type]
        default=None, title="消除方式"
    )
    eliminated_on: Day | None = Field(default=None, title="风险消除时间")


class Causes(Record):
    """致贫原因."""

    main: Label("cause") = Field(title="主要致贫原因")  # type: ignore[valid-type]
    others: Labels("cause") = Field(default_factory=list, title="其他致贫原因")  # type: ignore[valid-type]
    note: Text | None = Field(default=None, title="说明")


class Living(Record):
    """生产生活条件."""

    house_area_m2: Money | None = Field(default=None, title="住房面积(平方米)")
    house_structure: Text | None = Field(default=None, title="住房结构")
    dangerous_house: Label("dangerous_house") | None = Field(  # type: ignore[valid-type]
        default=None, title="危房等级"
    )
    safe_drinking_water: Flag | None = Field(default=None, title="饮水安全")
    electricity: Flag | None = Field(default=None, title="通生活用电")
    farmland_mu: Money | None = Field(default=None, title="耕地面积(亩)")


class Helper(Record):
    """帮扶责任人."""

    name: Text = Field(title="姓名")
    unit: Text | None = Field(default=None, title="工作单位")
    unit_level: Label("unit_level") | None = Field(default=None, title="单位级别")  # type: ignore[valid-type]
    position: Text | None = Field(default=None, title="职务")
    phone: Text | None = Field(default=None, title="联系电话")
    start: Day | None = Field(default=None, title="帮扶开始时间")
    end: Day | None = Field(default=None, title="帮扶结束时间")


class Application(Record):
    """申请书."""

    date: Day | None = Field(default=None, title="申请日期")
    text: Text | None = Field(default=None, title="申请内容")
    signed: Flag | None = Field(default=None, title="已签名")


class ProcedureStep(Record):
    """识别/退出程序的一步."""

    kind: Label("procedure_kind") = Field(title="程序类型")  # type: ignore[valid-type]
    date: Day | None = Field(default=None, title="日期")
    date_to: Day | None = Field(default=None, title="截止日期")
    result: Text | None = Field(default=None, title="结果")
    evidence: EvidenceList = Field(default_factory=list, title="佐证材料")


class PlanItem(Record):
    """帮扶计划."""

    year: int | None = Field(default=None, title="年度")
    needs: Text | None = Field(default=None, title="帮扶需求")
    plan: Text | None = Field(default=None, title="帮扶计划")


class Measure(Record):
    """帮扶措施 (§4.2)."""

    year: int | None = Field(default=None, title="年度")
    category: Label("measure_category") = Field(title="措施类别")  # type: ignore[valid-type]
    item: Text | None = Field(default=None, title="帮扶项目")
    provider: Text | None = Field(default=None, title="帮扶单位")
    content: Text | None = Field(default=None, title="帮扶内容")
    amount: Money | None = Field(default=None, title="金额(元)")
    date: Day | None = Field(default=None, title="日期")
    signed: Flag | None = Field(default=None, title="户主签名")
    evidence: EvidenceList = Field(default_factory=list, title="佐证材料")


class IncomeYear(Record):
    """收入台账的一年 (§4.3); 纯收入 and 人均纯收入 are derived, never stored."""

    year: int = Field(title="年度")
    wage: Amounts = Field(default_factory=dict, title="工资性收入")
    business: Amounts = Field(default_factory=dict, title="生产经营性收入")
    property: Amounts = Field(default_factory=dict, title="财产性收入")
    transfer: Amounts = Field(default_factory=dict, title="转移性收入")
    costs: Amounts = Field(default_factory=dict, title="生产经营性支出")
    members_counted: int | None = Field(default=None, title="计算人数")

    @staticmethod
    def _sum(amounts: dict[str, Decimal]) -> Decimal:
        return sum(amounts.values(), Decimal(0))

    @builtins.property  # the field ``property`` shadows the builtin in this class body
    def gross_income(self) -> Decimal:
        """Return 工资性 + 生产经营性 + 财产性 + 转移性收入."""
        parts = (self.wage, self.business, self.property, self.transfer)
        return sum((self._sum(part) for part in parts), Decimal(0))

    @builtins.property
    def net_income(self) -> Decimal:
        """Return 家庭纯收入 = wage + business + property + transfer − costs."""
        return self.gross_income - self._sum(self.costs)

    def per_capita(self, default_count: int) -> Decimal | None:
        """Return 人均纯收入 rounded to 0.01 元 (half up); None when it cannot be computed."""
        count = (
            self.members_counted if self.members_counted is not None else default_count
        )
        if count < 1:
            return None
        try:
            return (self.net_income / count).quantize(CENT, rounding=ROUND_HALF_UP)
        except InvalidOperation:  # absurdly large amounts: the validator reports them
            return None


class Visit(Record):
    """走访记录."""

    date: Day | None = Field(default=None, title="走访日期")
    visitor: Text | None = Field(default=None, title="走访人")
    content: Text | None = Field(default=None, title="走访内容")
    evidence: EvidenceList = Field(default_factory=list, title="佐证材料")


class Outcome(Record):
    """帮扶成效."""

    date: Day | None = Field(default=None, title="日期")
    content: Text | None = Field(default=None, title="成效")
    signed: Flag | None = Field(default=None, title="户主签名")


def _items(model: type) -> Any:
    return Annotated[list[model], BeforeValidator(_listify_models)]  # type: ignore[valid-type]


def _listify_models(value: Any) -> Any:
    return [] if value is None else value


class Household(Record):
    """一户 (§4): the whole record of ``household.yaml``."""

    household_id: HouseholdId = Field(title="户编号")
    group: Text | None = Field(default=None, title="村民组")
    address: Text | None = Field(default=None, title="家庭住址")
    phone: Text | None = Field(default=None, title="联系电话")
    household_type: Label("household_type") = Field(title="户类型")  # type: ignore[valid-type]
    poverty_attribute: Label("poverty_attribute") | None = Field(  # type: ignore[valid-type]
        default=None, title="贫困户属性"
    )
    poverty_status: Label("poverty_status") | None = Field(  # type: ignore[valid-type]
        default=None, title="脱贫状态"
    )
    identified_on: MonthOrDay | None = Field(default=None, title="识别时间")
    exit_year: int | None = Field(default=None, title="脱贫年度")
    monitor: Monitor | None = Field(default=None, title="监测信息")
    causes: Causes = Field(title="致贫原因")
    members: _items(Member) = Field(min_length=1, title="家庭成员")  # type: ignore[valid-type]
    living: Living | None = Field(default=None, title="生产生活条件")
    helpers: _items(Helper) = Field(default_factory=list, title="帮扶责任人")  # type: ignore[valid-type]
    application: Application | None = Field(default=None, title="申请书")
    procedure: _items(ProcedureStep) = Field(  # type: ignore[valid-type]
        default_factory=list, title="识别/退出程序"
    )
    plan: _items(PlanItem) = Field(default_factory=list, title="帮扶计划")  # type: ignore[valid-type]
    measures: _items(Measure) = Field(default_factory=list, title="帮扶措施")  # type: ignore[valid-type]
    income: _items(IncomeYear) = Field(default_factory=list, title="收入情况")  # type: ignore[valid-type]
    visits: _items(Visit) = Field(default_factory=list, title="走访记录")  # type: ignore[valid-type]
    outcomes: _items(Outcome) = Field(default_factory=list, title="帮扶成效")  # type: ignore[valid-type]
    notes: Text | None = Field(default=None, title="户说明")
    evidence: EvidenceList = Field(default_factory=list, title="佐证材料")

    @property
    def head(self) -> Member | None:
        """Return the first member whose relation is 户主."""
        return next((m for m in self.members if m.relation == "户主"), None)

    def per_capita_income(self, entry: IncomeYear) -> Decimal | None:
        """Return 人均纯收入 of one income year (members_counted defaults to the member count)."""
        return entry.per_capita(len(self.members))

    def evidence_refs(self) -> list[tuple[str, EvidenceRef]]:
        """Return every evidence reference of the record with its field path."""
        refs = [(f"evidence[{i}]", ref) for i, ref in enumerate(self.evidence)]
        for name in ("procedure", "measures", "visits"):
            for i, entry in enumerate(getattr(self, name)):
                for j, ref in enumerate(entry.evidence):
                    refs.append((f"{name}[{i}].evidence[{j}]", ref))
        return refs


# --- labels ------------------------------------------------------------------------------

_PATH_TOKEN = re.compile(r"\[(\d+)\]|\.?([^.\[\]]+)")


def split_path(path: str) -> list[str | int]:
    """Return the parts of a field path: ``members[2].id_number`` → ``['members', 2, 'id_number']``."""
    parts: list[str | int] = []
    for index, name in _PATH_TOKEN.findall(path):
        parts.append(int(index) if index else name)
    return parts


def join_path(parts: typing.Iterable[str | int]) -> str:
    """Return the field path text of ``parts`` (inverse of ``split_path``)."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def _unwrap(annotation: Any) -> Any:
    """Return the model class or container inside Optional/Annotated wrappers."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            annotation = args[0]
        else:
            return annotation


def _child(annotation: Any) -> tuple[Any, bool]:
    """Return (inner annotation, is_container) for list/dict annotations."""
    annotation = _unwrap(annotation)
    origin = typing.get_origin(annotation)
    if origin is list:
        return _unwrap(typing.get_args(annotation)[0]), True
    if origin is dict:
        return _unwrap(typing.get_args(annotation)[1]), True
    return annotation, False


def label_of(model_cls: type[BaseModel] | str, field_path: str | None = None) -> str:
    """Return the Chinese label path of a field path: ``members[2].id_number`` → ``家庭成员[3].公民身份号码``.

    ``label_of(path)`` is short for ``label_of(Household, path)``. Unknown parts stay as written.
    """
    path = model_cls if isinstance(model_cls, str) else field_path or ""
    out: list[str] = []
    current: Any = Household if isinstance(model_cls, str) else model_cls
    for part in split_path(path):
        if isinstance(part, int):
            if out:
                out[-1] += f"[{part + 1}]"
            continue
        is_model = isinstance(current, type) and issubclass(current, BaseModel)
        info = current.model_fields.get(part) if is_model else None
        if info is None:
            out.append(str(part))
            current = None
            continue
        out.append(info.title or part)
        current, _ = _child(info.annotation)
    return ".".join(out)


def field_label(model_cls: type[BaseModel] | str, field_path: str | None = None) -> str:
    """Return the Chinese label of the last part of a field path (``公民身份号码``)."""
    if isinstance(model_cls, str):
        model_cls, field_path = Household, model_cls  # type: ignore[assignment]  # a path alone
    # list positions do not change the label: one lookup per field, not per list item
    return _field_label(model_cls, _POSITION.sub("", field_path or ""))


_POSITION = re.compile(r"\[\d+\]")


@functools.lru_cache(maxsize=4096)
def _field_label(model_cls: type[BaseModel], field_path: str) -> str:
    return label_of(model_cls, field_path).rsplit(".", 1)[-1].split("[", 1)[0]


def _collect_labels(
    model_cls: type[BaseModel], prefix: str, out: dict[str, str]
) -> None:
    for name, info in model_cls.model_fields.items():
        path = f"{prefix}.{name}" if prefix else name
        out[path] = info.title or name
        inner, _ = _child(info.annotation)
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            _collect_labels(inner, path, out)


#: every field path of a household (without list positions) → its Chinese label
FIELD_LABELS: dict[str, str] = {}
_collect_labels(Household, "", FIELD_LABELS)


def model_at(path: str) -> type[BaseModel] | None:
    """The model class of the mapping at field path ``path`` ("" is the household, list
    positions may be there or not), or None when no model is there."""
    return _model_at(_POSITION.sub("", path))


@functools.lru_cache(maxsize=256)
def _model_at(path: str) -> type[BaseModel] | None:
    current: Any = Household
    for part in split_path(path):
        info = current.model_fields.get(part) if isinstance(part, str) else None
        if info is None:
            return None
        current, _ = _child(info.annotation)
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
    return current  # type: ignore[no-any-return]


def unknown_keys(data: Any, path: str = "", model_cls: type[BaseModel] | None = Household) -> list[tuple[str, str, type[BaseModel]]]:
    """(field path, key, model class of its mapping) of every key of the raw mapping ``data``
    that its model does not know, depth first in file order: what ``model_extra`` keeps of a
    validated record, found without validating (a rejected record has none)."""
    out: list[tuple[str, str, type[BaseModel]]] = []
    if model_cls is None or not isinstance(data, dict):
        return out
    fields = model_cls.model_fields
    for key, value in data.items():
        here = f"{path}.{key}" if path else str(key)
        info = fields.get(key) if isinstance(key, str) else None
        if info is None:
            out.append((here, str(key), model_cls))
            continue
        inner, _ = _child(info.annotation)
        if not (isinstance(inner, type) and issubclass(inner, BaseModel)):
            continue
        if isinstance(value, dict):
            out.extend(unknown_keys(value, here, inner))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                out.extend(unknown_keys(item, f"{here}[{index}]", inner))
    return out


def close_field(model_cls: type[BaseModel], key: str) -> str | None:
    """The field of ``model_cls`` that ``key`` looks like a misspelling of (``ethnicty`` →
    ``ethnicity``), or None."""
    import difflib

    if not isinstance(key, str) or key in model_cls.model_fields:
        return None
    found = difflib.get_close_matches(key.strip().lower(), list(model_cls.model_fields), n=1, cutoff=0.75)
    return found[0] if found else None


@functools.cache
def vocab_of(model_cls: type[BaseModel], name: str) -> str | None:
    """Return the vocabulary name of field ``name`` of ``model_cls`` (None for free text)."""
    info = model_cls.model_fields.get(name)
    if info is None:
        return None
    stack = [info.annotation, *info.metadata]
    while stack:
        item = stack.pop()
        if isinstance(item, VocabRef):
            return item.name
        if typing.get_origin(item) is not None:
            stack.extend(typing.get_args(item))
        elif hasattr(item, "__metadata__"):
            stack.extend(item.__metadata__)
    return None
