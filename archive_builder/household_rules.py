"""The rules of one household record (record-format.md §5): one method per rule.

``_HouseholdRules`` checks a validated record against the rules that need more than its
types (ID numbers against birth dates and sex, amounts, dates, vocabulary, evidence files
present …) and returns every problem, each with the field, its position and a fix.
``validate`` runs it for every household and adds the rules across households.

Why one class of this size: a rule is read beside its neighbours, and the list of methods
is the contract of ``validate``; they share the record walk and the problem helpers.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Collection, Iterable, Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from .errors import os_reason
from .problems import Problem, Severity
from .records import vocab
from .records.idnumber import IdNumberError, parse_id
from .records.layout import HOUSEHOLD_FILES
from .records.loader import Dataset, EvidencePathError, LoadedHousehold, Village, resolve_evidence
from .records.messages import unknown_key_text
from .records.models import Household, Member, PartialDate, field_label, vocab_of

#: the first year of 建档立卡; an exit year before it cannot be right
FIRST_EXIT_YEAR = 2014
MAX_RISKS = 5
MAX_AMOUNT = Decimal(100000000)  # 1 亿元: more than any household amount, catches typos
#: dates that may lie in the future (a helper's planned end of duty)
FUTURE_ALLOWED = frozenset({"end"})


#: field names of each model class (pydantic's ``model_fields`` is a descriptor call each time)
_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _walk(model: BaseModel, path: str = "") -> list[tuple[BaseModel, str, str, Any]]:
    """(model, field name, field path, value) of every field set in a model tree, depth first
    in field order (a list: a recursive generator was a large share of the per-household
    rules)."""
    out: list[tuple[BaseModel, str, str, Any]] = []
    _walk_into(model, path, out)
    return out


#: values that hold no model: the walk tests these by exact type before anything else
#: (``isinstance(x, BaseModel)`` goes through ABCMeta: ~480,000 calls for 231 records)
_LEAF_TYPES = frozenset((str, int, float, bool, type(None), Decimal, date))


def _walk_into(model: BaseModel, path: str, out: list[tuple[BaseModel, str, str, Any]]) -> None:
    cls = type(model)
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(cls.model_fields)
    append = out.append
    leaf = _LEAF_TYPES
    for name in names:
        value = getattr(model, name)
        here = f"{path}.{name}" if path else name
        append((model, name, here, value))
        if type(value) in leaf:
            continue
        if isinstance(value, BaseModel):
            _walk_into(value, here, out)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                if type(item) not in leaf and isinstance(item, BaseModel):
                    _walk_into(item, f"{here}[{index}]", out)


def _extras(
    model: BaseModel, path: str = "", walked: Iterable[tuple[BaseModel, str, str, Any]] | None = None
) -> Iterator[tuple[str, str, type[BaseModel]]]:
    """Yield (field path, key, model class) of every unknown key; ``walked``: ``_walk(model,
    path)`` if known."""
    for key in model.model_extra or {}:
        yield (f"{path}.{key}" if path else str(key)), str(key), type(model)
    leaf = _LEAF_TYPES
    for _, _, here, value in _walk(model, path) if walked is None else walked:
        if type(value) in leaf:
            continue
        if isinstance(value, BaseModel):
            for key in value.model_extra or {}:
                yield f"{here}.{key}", str(key), type(value)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, BaseModel):
                    for key in item.model_extra or {}:
                        yield f"{here}[{index}].{key}", str(key), type(item)


class _HouseholdRules:
    """The per-household rules of §4 and §5."""

    def __init__(
        self,
        dataset: Dataset,
        village: Village,
        household: LoadedHousehold,
        record: Household,
        today: date,
    ) -> None:
        self.dataset = dataset
        self.village = village
        self.household = household
        self.record = record
        self.today = today
        self.problems: list[Problem] = []

    def add(
        self, severity: Severity, field: str | None, message: str, hint: str
    ) -> None:
        line, column = self.household.position(field) if field else (None, None)
        self.problems.append(
            Problem(
                severity,
                message,
                hint,
                file=self.household.display,
                line=line,
                column=column,
                village=self.village.config.name,
                household_id=self.household.household_id,
                field=field,
            )
        )

    def err(self, field: str | None, message: str, hint: str) -> None:
        self.add(Severity.error, field, message, hint)

    def warn(self, field: str | None, message: str, hint: str) -> None:
        self.add(Severity.warning, field, message, hint)

    def run(self) -> list[Problem]:
        self.unknown_keys()
        self.labels()
        self.household_fields()
        self.members()
        self.dates()
        self.money()
        self.monitor()
        self.income()
        self.evidence()
        return self.problems

    # -- structure and vocabularies --

    @functools.cached_property
    def fields(self) -> list[tuple[BaseModel, str, str, Any]]:
        """Every field of the record (``_walk``), walked once for the rules that need them all."""
        return _walk(self.record)

    def unknown_keys(self) -> None:
        if self.household.record is None:  # a rejected record's were reported as it was read
            return
        for path, key, model_cls in _extras(self.record, walked=self.fields):
            self.warn(path, *unknown_key_text(model_cls, key))

    def labels(self) -> None:
        for model, name, path, value in self.fields:
            vocab_name = vocab_of(type(model), name)
            if vocab_name is None or value is None:
                continue
            vocabulary = vocab.get(vocab_name)
            values = value if isinstance(value, list) else [value]
            for index, item in enumerate(values):
                if item in vocabulary:
                    continue
                where = f"{path}[{index}]" if isinstance(value, list) else path
                sample = "、".join(vocabulary.labels[:8]) + (
                    "…" if len(vocabulary.labels) > 8 else ""
                )
                hint = f"请使用{vocabulary.title}的标准名称，如：{sample}"
                if str(item).strip().isdigit():
                    hint = f"请填写中文名称，不要用数字代码；{vocabulary.title}的标准名称如：{sample}"
                self.warn(
                    where,
                    f"{field_label(Household, where)}「{item}」不在{vocabulary.title}词表中",
                    hint,
                )

    def household_fields(self) -> None:
        record = self.record
        if not record.household_id.strip():
            self.err("household_id", "户编号为空", "请填写户编号")
        groups = self.village.config.groups
        if record.group and groups and record.group not in groups:
            self.warn(
                "group",
                f"村民组「{record.group}」不在{self.village.config.name}的村民组名单中",
                f"请改为 {'、'.join(groups)} 之一，或在 {self.village.display} 的 groups 中补充",
            )
        if (
            record.exit_year is not None
            and not FIRST_EXIT_YEAR <= record.exit_year <= self.today.year
        ):
            self.err(
                "exit_year",
                f"脱贫年度 {record.exit_year} 不合理：应在 {FIRST_EXIT_YEAR} 至 {self.today.year} 年之间",
                "请核对脱贫年度（四位数年份）",
            )

    # -- members --

    def members(self) -> None:
        heads = [i for i, m in enumerate(self.record.members) if m.relation == "户主"]
        if not heads:
            self.err(
                "members", "家庭成员中没有户主", "请把其中一人的与户主关系填为「户主」"
            )
        for index in heads[1:]:
            first = self.record.members[heads[0]]
            member = self.record.members[index]
            self.err(
                f"members[{index}].relation",
                f"户主不止一人：{first.name} 和 {member.name} 的与户主关系都是「户主」",
                "每户只能有一位户主，请改正其中一人的与户主关系",
            )
        for index, member in enumerate(self.record.members):
            self.member(index, member)

    def member(self, index: int, member: Member) -> None:
        path = f"members[{index}]"
        raw_number = self._raw_member(index).get("id_number")
        if isinstance(raw_number, str) and raw_number.strip().endswith("x"):
            self.warn(
                f"{path}.id_number",
                f"公民身份号码 {raw_number.strip()} 末位应为大写 X",
                "已按大写 X 处理；请在数据中改为大写 X",
            )
        derived_sex = None
        try:
            info = parse_id(member.id_number)
        except IdNumberError as exc:
            self.err(f"{path}.id_number", f"{member.name}的{exc.message}", exc.hint)
            info = None
        if info is not None:
            derived_sex = info.sex
            if info.birth_date > self.today:
                self.err(
                    f"{path}.id_number",
                    f"{member.name}的公民身份号码 {member.id_number} 中的出生日期 {info.birth_date} 晚于今天",
                    "请核对身份证原件后更正第 7–14 位",
                )
            if member.sex is not None and member.sex != info.sex:
                self.err(
                    f"{path}.sex",
                    f"{member.name}的性别填为「{member.sex}」，但公民身份号码第 17 位表明是{info.sex}性",
                    "请核对身份证原件，改正性别或公民身份号码",
                )
            if member.birth_date is not None and member.birth_date != info.birth_date:
                self.err(
                    f"{path}.birth_date",
                    f"{member.name}的出生日期填为 {member.birth_date}，但公民身份号码中是 {info.birth_date}",
                    "请核对身份证原件，改正出生日期或公民身份号码（出生日期可不填，由号码推出）",
                )
        sex = (
            derived_sex or member.sex
        )  # the ID wins: a wrong 性别 is reported once, above
        implied = vocab.implied_sex(member.relation)
        if implied and sex and implied != sex:
            self.err(
                f"{path}.relation",
                f"{member.name}的与户主关系为「{member.relation}」，应为{implied}性，但性别为{sex}",
                "请核对与户主关系（如 之子/之女、之父/之母）或公民身份号码",
            )
        if member.work_months is not None and not 0 <= member.work_months <= 12:
            self.err(
                f"{path}.work_months",
                f"{member.name}的务工时间 {member.work_months} 个月不合理：应在 0 至 12 之间",
                "请填写一年中务工的月数",
            )

    def _raw_member(self, index: int) -> dict[str, Any]:
        raw = self.household.raw or {}
        members = raw.get("members")
        if (
            isinstance(members, list)
            and index < len(members)
            and isinstance(members[index], dict)
        ):
            return members[index]
        return {}

    # -- dates, money, monitoring, income --

    def dates(self) -> None:
        for _model, name, path, value in self.fields:
            if name in FUTURE_ALLOWED:
                continue
            if isinstance(value, PartialDate):
                late = (value.year, value.month, value.day or 1) > (
                    self.today.year,
                    self.today.month,
                    self.today.day,
                )
            elif isinstance(value, date):
                late = value > self.today
            else:
                continue
            if late:
                self.err(
                    path,
                    f"{field_label(Household, path)} {value} 晚于今天（{self.today}）",
                    "请核对日期：还没有发生的事不能记入档案",
                )
        for index, step in enumerate(self.record.procedure):
            if step.date and step.date_to and step.date_to < step.date:
                self.err(
                    f"procedure[{index}].date_to",
                    f"{step.kind}的截止日期 {step.date_to} 早于开始日期 {step.date}",
                    "请核对两个日期，截止日期应不早于开始日期",
                )
        for index, helper in enumerate(self.record.helpers):
            if helper.start and helper.end and helper.end < helper.start:
                self.err(
                    f"helpers[{index}].end",
                    f"帮扶责任人{helper.name}的帮扶结束时间 {helper.end} 早于开始时间 {helper.start}",
                    "请核对帮扶起止时间",
                )

    def _amounts(self) -> Iterator[tuple[str, Decimal]]:
        for index, measure in enumerate(self.record.measures):
            if measure.amount is not None:
                yield f"measures[{index}].amount", measure.amount
        for index, entry in enumerate(self.record.income):
            for part in ("wage", "business", "property", "transfer", "costs"):
                for key, amount in getattr(entry, part).items():
                    yield f"income[{index}].{part}.{key}", amount

    def money(self) -> None:
        for path, amount in self._amounts():
            label = field_label(Household, path)
            if amount < 0:
                self.err(
                    path,
                    f"{label}金额 {amount} 为负数",
                    "金额不能为负数；支出请填在 costs（生产经营性支出）中",
                )
            elif amount > MAX_AMOUNT:
                self.err(
                    path,
                    f"{label}金额 {amount} 过大",
                    "请核对金额（单位为元），是否多写了数字",
                )
            elif amount != amount.quantize(Decimal("0.01"), rounding="ROUND_DOWN"):
                self.err(
                    path,
                    f"{label}金额 {amount} 超过两位小数",
                    "金额最多保留两位小数（到分）",
                )
        living = self.record.living
        for name in ("house_area_m2", "farmland_mu"):
            value = getattr(living, name, None) if living else None
            if value is not None and value < 0:
                self.err(
                    f"living.{name}",
                    f"{field_label(Household, 'living.' + name)} {value} 为负数",
                    "请填写 0 或正数",
                )

    def monitor(self) -> None:
        monitor = self.record.monitor
        if monitor is None:
            return
        if len(monitor.risks) > MAX_RISKS:
            self.err(
                "monitor.risks",
                f"风险类型有 {len(monitor.risks)} 项，最多 {MAX_RISKS} 项",
                "请只保留最主要的 5 项风险",
            )
        if monitor.eliminated and monitor.eliminated_on is None:
            self.warn(
                "monitor.eliminated",
                "已标记风险消除，但缺少风险消除时间",
                "请填写 monitor.eliminated_on",
            )
        if monitor.eliminated and monitor.eliminate_method is None:
            self.warn(
                "monitor.eliminated",
                "已标记风险消除，但缺少消除方式",
                "请填写 monitor.eliminate_method（帮扶消除 / 自然消除）",
            )
        if (
            monitor.identified_on
            and monitor.eliminated_on
            and monitor.eliminated_on < monitor.identified_on.first_day()
        ):
            self.err(
                "monitor.eliminated_on",
                f"风险消除时间 {monitor.eliminated_on} 早于风险识别时间 {monitor.identified_on}",
                "请核对两个日期",
            )

    def income(self) -> None:
        years: dict[int, int] = {}
        for index, entry in enumerate(self.record.income):
            path = f"income[{index}]"
            if entry.year in years:
                self.err(
                    f"{path}.year",
                    f"收入情况中 {entry.year} 年出现了两次",
                    "每年只能有一条收入记录，请合并",
                )
            years.setdefault(entry.year, index)
            if entry.year > self.today.year:
                self.err(
                    f"{path}.year", f"收入年度 {entry.year} 晚于今年", "请核对年度"
                )
            if entry.members_counted is not None and entry.members_counted < 1:
                self.err(
                    f"{path}.members_counted",
                    f"{entry.year} 年收入的计算人数为 {entry.members_counted}，至少应为 1",
                    "请填写计算人均收入的人数，或删除该项（默认为家庭成员人数）",
                )

    # -- evidence --

    def evidence(self) -> None:
        folder = self.household.folder
        missing: dict[
            Path, list[str]
        ] = {}  # one warning per missing file, however often named
        # the files other entries name are not what a missing one meant: never suggested
        named = {ref.file.strip().replace("\\", "/").lower() for _, ref in self.record.evidence_refs()}
        for path, ref in self.record.evidence_refs():
            field = f"{path}.file" if self._is_mapping(path) else path
            try:
                target = resolve_evidence(folder, ref.file)
            except EvidencePathError as exc:
                self.err(field, exc.message, exc.hint)
                continue
            shown = ref.file.strip()
            try:
                exists = target.exists()
            except (OSError, ValueError) as exc:
                self.err(
                    field,
                    f"佐证材料路径「{shown[:60]}」无法使用：{os_reason(exc)}",
                    "请改用较短的文件夹名和文件名（只含汉字、字母、数字和 -_.）",
                )
                continue
            if not exists:
                missing.setdefault(target, []).append(field)
                if len(missing[target]) == 1:
                    near = _nearest_file(folder, shown, taken=named)
                    self.warn(
                        field,
                        f"佐证材料文件「{shown}」不存在，档案中将以占位页代替",
                        f"本户文件夹中有「{near}」，是否指它？请改正记录中的文件名" if near
                        else "请把该文件放入本户文件夹，或改正文件名（注意扩展名和大小写）",
                    )
            elif target.is_dir():
                self.warn(
                    field,
                    f"佐证材料「{shown}」是文件夹，不是文件",
                    "请写出文件夹中具体的文件名",
                )
            elif not target.is_file():
                self.warn(
                    field,
                    f"佐证材料「{shown}」不是普通文件（是管道、设备或套接字），档案中将以占位页代替",
                    "请把实际的文件（照片、扫描件或 PDF）放在这里",
                )
            elif not os.access(target, os.R_OK):
                self.warn(field, f"佐证材料文件「{shown}」无法读取", "请检查文件权限")

    def _is_mapping(self, path: str) -> bool:
        """True when the evidence entry at ``path`` was written as a mapping (``file: …``)."""
        return f"{path}.file" in self.household.positions


def _nearest_file(folder: Path, wanted: str, limit: int = 500, *, taken: Collection[str] = ()) -> str | None:
    """The household's file whose path is closest to ``wanted`` (another case, extension or a
    slip of one character), as written in a record; None when nothing is close. Files in
    ``taken`` (lower-case paths another evidence entry names) are never suggested."""
    import difflib

    wanted = wanted.replace("\\", "/")
    taken = set(taken) - {wanted.lower()}
    try:
        files: list[str] = []
        for path in folder.rglob("*"):
            if len(files) >= limit:
                break
            if path.is_file() and path.name not in HOUSEHOLD_FILES and not path.name.startswith("."):
                relative = path.relative_to(folder).as_posix()
                if relative.lower() not in taken:
                    files.append(relative)
    except OSError:
        return None
    same = [f for f in files if f.lower() == wanted.lower()]
    if same:
        return same[0]
    close = difflib.get_close_matches(wanted.lower(), [f.lower() for f in files], n=1, cutoff=0.8)
    return next((f for f in files if close and f.lower() == close[0]), None)
