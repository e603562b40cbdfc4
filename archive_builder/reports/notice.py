"""Public notices (两公示一公告, 防止返贫监测公示) with personal data left out.

``plan_notice`` chooses the households — by the procedure steps of the notice's kind in the
period, or as listed — checks the period against the kind's minimum and builds the list from
a whitelist of fields; ``make_notice`` renders it through the template set's
``notice/*.xml`` into the program's document model and writes a PDF or a Word file with the
packets' writers (GB/T 9704 page, embedded fonts, rare characters).

What a notice can never show: ID numbers (a template's ID column is masked 411621********1234),
phone numbers, bank accounts, health. The template context holds only the whitelisted,
scrubbed values, so a county's template cannot reach the record.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from ..checks.phases import PhasedStep, phased_steps
from ..checks.rules import publicity_days, rule_params
from ..errors import (
    ExitCode,
    HouseholdNotFoundError,
    NoticeError,
    OutputError,
    PeriodTooShortError,
    TemplateError,
    os_reason,
)
from ..records.idnumber import mask_id
from ..records.loader import typed_household_id
from ..records.models import Household, ProcedureStep
from .common import (
    as_mapping,
    group_of,
    group_order,
    load_villages,
    read_template_toml,
    template_file,
)

NOTICE_FILE = "notice/notice.toml"
KINDS = ("识别公示", "退出公示", "监测公示", "公告")
PHASES = ("识别", "退出", "监测")

#: the fields a notice's list may show, with their default headers
FIELDS: dict[str, str] = {
    "index": "序号",
    "group": "村民组",
    "head": "户主姓名",
    "size": "家庭人口数",
    "cause": "主要致贫原因",
    "exit_year": "脱贫年度",
    "monitor_category": "监测类别",
    "risks": "风险类型",
    "matter": "事项",
    "household_type": "户类型",
    "poverty_attribute": "贫困户属性",
    "eliminate_method": "消除方式",
    "id_number": "户主身份证号",
}
_CENTERED = {"index", "size", "exit_year", "group", "head", "matter"}


@dataclass(frozen=True)
class NoticeKind:
    """One ``[kinds.…]`` entry of ``notice/notice.toml``."""

    name: str
    template: str
    step: str
    phases: tuple[str, ...]
    min_days: int
    rule: str
    columns: tuple[str, ...]
    headers: Mapping[str, str] = field(default_factory=dict)
    widths: tuple[float, ...] = ()

    @property
    def period_word(self) -> str:
        return "公告" if self.step == "公告" else "公示"


def read_kinds(path: Path, params: Mapping[str, Any] | None = None) -> dict[str, NoticeKind]:
    """Return the notice kinds of a ``notice/notice.toml``; raise TemplateError naming the fault.

    A kind's fewest days (``min_days``) are the audit rule set's (``params``, see
    ``checks.rules.publicity_days``: 公示天数, 监测公示天数, 公告天数) unless the kind sets its
    own; ``{min_days}`` in its ``rule`` text is replaced by them."""
    if params is None:
        params = rule_params()
    data = read_template_toml(path)
    where = str(path)
    kinds = {}
    for name, raw in as_mapping(data.get("kinds", {}), where).items():
        raw = as_mapping(raw, where)
        columns = tuple(str(c) for c in raw.get("columns", ("index", "group", "head", "size")))
        unknown = [c for c in columns if c not in FIELDS]
        if unknown:
            raise TemplateError(
                f"模板文件 {where} 中「{name}」的 columns 有不能公示的字段：{'、'.join(unknown)}",
                hint="可用字段：" + "、".join(f"{k}（{v}）" for k, v in FIELDS.items())
                + "；身份证号码、电话、银行账号、健康状况不得公示",
            )
        phases = raw.get("phases", [])
        phases = (phases,) if isinstance(phases, str) else tuple(phases)
        if not phases or any(p not in PHASES for p in phases):
            raise TemplateError(f"模板文件 {where} 中「{name}」的 phases 应为 识别、退出、监测 中的一个或几个")
        step = str(raw.get("step", "公示"))
        min_days = raw.get("min_days")
        if min_days is None:
            min_days = publicity_days(params, phases, step)
        elif isinstance(min_days, bool) or not isinstance(min_days, int) or min_days < 1:
            raise TemplateError(f"模板文件 {where} 中「{name}」的 min_days 应为正整数",
                                hint="不写 min_days 时用规则参数（公示天数、监测公示天数、公告天数）")
        widths = tuple(float(w) for w in raw.get("widths", ()))
        if widths and len(widths) != len(columns):
            raise TemplateError(f"模板文件 {where} 中「{name}」的 widths 个数（{len(widths)}）与 columns（{len(columns)}）不同")
        kinds[str(name)] = NoticeKind(
            name=str(name),
            template=str(raw.get("template", "notice/base.xml")),
            step=step,
            phases=phases,
            min_days=min_days,
            rule=str(raw.get("rule", "")).replace("{min_days}", str(min_days)),
            columns=columns,
            headers={str(k): str(v) for k, v in as_mapping(raw.get("headers", {}), where).items()},
            widths=widths,
        )
    return kinds


# --------------------------------------------------------------------------- which phase


# --------------------------------------------------------------------------- scrubbing

_ID = re.compile(r"(?<![0-9A-Za-z])([0-9]{6})[0-9]{8}([0-9]{3}[0-9Xx])(?![0-9A-Za-z])")
_LONG_DIGITS = re.compile(r"[0-9][0-9 -]{9,}[0-9]")


def scrub(text: str) -> str:
    """Return ``text`` with ID numbers masked and phone-, bank-like digit runs hidden."""
    text = _ID.sub(lambda m: mask_id(m.group(0)), text)

    def hide(match: re.Match[str]) -> str:
        digits = re.sub(r"[ -]", "", match.group(0))
        if len(digits) < 11:
            return match.group(0)
        return digits[:3] + "*" * (len(digits) - 7) + digits[-4:]

    return _LONG_DIGITS.sub(hide, text)


def field_value(key: str, record: Household, matter: str, index: int) -> str:
    """Return the text of one whitelisted column for one household."""
    head = record.head
    monitor = record.monitor
    if key == "index":
        return str(index)
    if key == "group":
        return group_of(record)
    if key == "head":
        return head.name if head else ""
    if key == "size":
        return str(len(record.members))
    if key == "cause":
        return record.causes.main
    if key == "exit_year":
        return str(record.exit_year) if record.exit_year else ""
    if key == "monitor_category":
        return monitor.category if monitor else ""
    if key == "risks":
        return "、".join(monitor.risks) if monitor else ""
    if key == "matter":
        return matter
    if key == "household_type":
        return record.household_type
    if key == "poverty_attribute":
        return record.poverty_attribute or ""
    if key == "eliminate_method":
        return (monitor.eliminate_method or "") if monitor and monitor.eliminated else ""
    if key == "id_number":
        return mask_id(head.id_number) if head else ""
    raise KeyError(key)  # read_kinds admits only FIELDS


# --------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class NoticePlan:
    """A notice ready to render: who is listed, for which period, with which columns."""

    kind: NoticeKind
    village: str
    village_code: str
    township: str
    county: str
    committee: str
    phone: str
    start: date
    days: int
    household_ids: tuple[str, ...]
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    warnings: tuple[str, ...] = ()

    @property
    def end(self) -> date:
        return last_day(self.start, self.days)

    def context(self) -> dict[str, Any]:
        """Return the template context: only the notice's public values."""
        kind = self.kind
        aligns = ",".join("center" if c in _CENTERED else "left" for c in kind.columns)
        return {
            "notice": {
                "kind": kind.name, "title": f"{self.village}{kind.name}", "village": self.village,
                "township": self.township, "county": self.county, "committee": self.committee,
                "phone": self.phone, "date": self.start.isoformat(), "start": self.start.isoformat(),
                "end": self.end.isoformat(), "days": self.days, "count": len(self.rows),
                "period_word": kind.period_word, "min_days": kind.min_days, "rule": kind.rule,
            },
            "columns": list(self.columns),
            "rows": [list(row) for row in self.rows],
            "widths": ",".join(f"{w:g}" for w in kind.widths),
            "aligns": aligns,
        }


def last_day(start: date, days: int) -> date:
    """The last day of a period of ``days`` days from ``start``, both counted (as the audit's
    公示 rule counts them: 3月1日至3月7日 is 7 days)."""
    return start + timedelta(days=days - 1)


def _overlaps(step: ProcedureStep, start: date, end: date) -> bool:
    assert step.date is not None
    return step.date <= end and (step.date_to or step.date) >= start


def check_period(kind: NoticeKind, days: int) -> None:
    """Raise PeriodTooShortError, quoting the rule, when ``days`` is below the kind's minimum."""
    if days < kind.min_days:
        raise PeriodTooShortError(
            f"{kind.name}的{kind.period_word}期为 {days} 天，少于规定的 {kind.min_days} 天。"
            f"规定：{kind.rule or f'{kind.period_word}期不少于{kind.min_days}天。'}",
            hint=f"请把 --days 改为 {kind.min_days} 或更多",
        )


def plan_notice(
    data_dir: Path,
    village: str,
    kind: str,
    *,
    households: Sequence[str] = (),
    start: date | None = None,
    days: int | None = None,
) -> NoticePlan:
    """Return what the notice lists; raise NoticeError / PeriodTooShortError / HouseholdNotFoundError.

    Without ``households``, the households are those with a procedure step of the kind's
    ``step`` and phase in the period. Without ``start``, the period starts at the latest such
    step of the village; without ``days`` it lasts the kind's minimum (or that step's own
    length, when longer).
    """
    dataset, (loaded,) = load_villages(Path(data_dir), [village])
    return _plan(dataset, loaded, kind, households=households, start=start, days=days)


def _plan(
    dataset: Any, loaded: Any, kind: str, *, households: Sequence[str], start: date | None, days: int | None
) -> NoticePlan:
    if days is not None and days < 1:
        raise NoticeError(f"公示天数应为正整数：{days}", hint="例如 --days 7")
    config = dataset.config
    vconf = loaded.village.config
    kinds = read_kinds(template_file(dataset, loaded.village, NOTICE_FILE),
                       rule_params(Path(dataset.root), Path(loaded.village.path)))
    if kind not in kinds:
        raise NoticeError(f"没有这种公示：{kind}", hint="可选：" + "、".join(kinds))
    spec = kinds[kind]
    if days is not None:
        check_period(spec, days)

    by_id = {r.household_id: r for r in loaded.records}
    matching: dict[str, list[PhasedStep]] = {
        r.household_id: [p for p in phased_steps(r) if p.step.kind == spec.step and p.phase in spec.phases]
        for r in loaded.records
    }
    listed = list(dict.fromkeys(typed_household_id(h) for h in households if h.strip()))
    if start is None:
        # the latest such step of the listed households, or of the whole village
        pool = [matching.get(h, []) for h in listed] if listed else list(matching.values())
        latest = max((p for steps in pool for p in steps), key=lambda p: p.step.date, default=None)  # type: ignore[arg-type,return-value]
        if latest is None and not listed:
            raise NoticeError(
                f"{vconf.name}没有任何户有「{spec.step}」（{'、'.join(spec.phases)}阶段）的程序记录，无法确定{spec.period_word}日期",
                hint="请用 --from 指定开始日期、--households 列出户编号",
            )
        if latest is not None and latest.step.date is not None:
            start = latest.step.date
            if days is None and latest.step.date_to is not None:
                days = max(spec.min_days, (latest.step.date_to - latest.step.date).days + 1)
        else:
            from ..archive.packet import document_date

            start = date.fromisoformat(document_date(config))
    days = spec.min_days if days is None else days
    check_period(spec, days)
    end = last_day(start, days)

    chosen: list[tuple[Household, str]] = []
    if listed:
        _refuse_ineligible(spec, [(by_id[h], matching[h]) for h in listed if h in by_id])
        skipped = {p.household_id for p in loaded.skipped}
        for hid in listed:
            record = by_id.get(hid)
            if record is None:
                if hid in skipped:
                    raise NoticeError(f"户 {hid} 的数据有错误，不能公示",
                                      hint="请运行 archive-builder validate 查看并改正该户的数据")
                raise HouseholdNotFoundError(
                    f"{vconf.name}没有户编号为 {hid} 的户",
                    hint="请核对户编号；--households 只能列出 --village 所指村的户",
                )
            steps = [p for p in matching[hid] if _overlaps(p.step, start, end)] or matching[hid]
            chosen.append((record, steps[-1].matter if steps else _default_matter(spec, record)))
    else:
        for hid, steps in matching.items():
            inside = [p for p in steps if _overlaps(p.step, start, end)]
            if inside:
                chosen.append((by_id[hid], inside[-1].matter))
        if not chosen:
            raise NoticeError(
                f"{vconf.name}在 {start} 至 {end} 期间没有「{spec.step}」（{'、'.join(spec.phases)}阶段）的户",
                hint="请用 --from 改开始日期，或用 --households 列出要公示的户编号",
            )

    groups = group_order(loaded.village, [r for r, _ in chosen])
    chosen.sort(key=lambda item: (groups.index(group_of(item[0])), item[0].household_id))
    rows = tuple(
        tuple(scrub(field_value(c, record, matter, i)) for c in spec.columns)
        for i, (record, matter) in enumerate(chosen, start=1)
    )
    warnings = []
    if not vconf.supervision_phone:
        warnings.append(f"{loaded.village.display or vconf.name} 未设置监督电话 supervision_phone，公示中留空待填写")
    return NoticePlan(
        kind=spec, village=vconf.name, village_code=vconf.code, township=config.archive.township,
        county=config.archive.county, committee=f"{vconf.name}村民委员会", phone=vconf.supervision_phone or "",
        start=start, days=days, household_ids=tuple(r.household_id for r, _ in chosen),
        columns=tuple(spec.headers.get(c, FIELDS[c]) for c in spec.columns), rows=rows, warnings=tuple(warnings),
    )


class IneligibleHouseholdsError(NoticeError):
    """Households listed for a notice (``--households``) that its kind cannot show: a 监测公示
    of a household that is not monitored would publish that it is."""

    exit_code = ExitCode.problems


#: the household types that are on the 识别 and 退出 notices (建档立卡 households)
POOR_TYPES = ("贫困户", "脱贫户")


def ineligible_reason(spec: NoticeKind, record: Household, steps: Sequence[PhasedStep]) -> str:
    """Why ``record`` cannot be listed on a notice of ``spec`` ("" when it can).

    The default list is the households with the kind's procedure step (``steps``); a household
    named explicitly may lack that step yet (the notice being posted is that step), but its
    data must fit one of the kind's phases: monitored (``monitor``) for 监测, a 贫困户 or 脱贫户
    for 识别 and 退出."""
    if steps:
        return ""
    if "监测" in spec.phases and record.monitor is not None:
        return ""
    if {"识别", "退出"} & set(spec.phases) and record.household_type in POOR_TYPES:
        return ""
    facts = [f"户类型为{record.household_type or '（未填）'}"]
    if "监测" in spec.phases:
        facts.append("没有监测信息（monitor）")
    wanted = "、".join(spec.phases)
    facts.append(f"也没有{wanted}阶段的「{spec.step}」程序记录")
    return "，".join(facts)


def _who_may_be_listed(spec: NoticeKind) -> str:
    kinds = []
    if "监测" in spec.phases:
        kinds.append("监测对象（household.yaml 中有 monitor 监测信息的户）")
    if {"识别", "退出"} & set(spec.phases):
        kinds.append("户类型为贫困户或脱贫户的户")
    return f"{spec.name}只能列出{'和'.join(kinds)}，或有{'、'.join(spec.phases)}阶段「{spec.step}」程序记录的户"


def _refuse_ineligible(spec: NoticeKind, listed: Sequence[tuple[Household, Sequence[PhasedStep]]]) -> None:
    """Raise IneligibleHouseholdsError naming every listed household the kind cannot show."""
    wrong = [(record, why) for record, steps in listed if (why := ineligible_reason(spec, record, steps))]
    if not wrong:
        return
    lines = []
    for record, why in wrong:
        head = f"（{record.head.name}）" if record.head and record.head.name else ""
        lines.append(f"  户 {record.household_id}{head}：{why}")
    raise IneligibleHouseholdsError(
        f"以下 {len(wrong)} 户不能列入{spec.name}，否则公示内容与事实不符：\n" + "\n".join(lines),
        hint=f"{_who_may_be_listed(spec)}。请从 --households 中去掉这些户，或先改正其数据",
    )


def _default_matter(spec: NoticeKind, record: Household) -> str:
    if "监测" in spec.phases:
        return "风险消除" if record.monitor and record.monitor.eliminated else "纳入监测"
    if "退出" in spec.phases and "识别" not in spec.phases:
        return "脱贫退出"
    return "识别纳入"


# --------------------------------------------------------------------------- rendering


@dataclass(frozen=True)
class NoticeResult:
    """What ``make_notice`` wrote."""

    path: Path
    plan: NoticePlan
    pages: int | None  # None for a Word file
    warnings: tuple[str, ...] = ()


def notice_document(plan: NoticePlan, tset: Any, doc_date: str) -> Any:
    """Return the notice as the program's document model (one prose section)."""
    from .. import document as dm
    from ..templates import SectionSpec, parse_section, render_section_xml

    spec = SectionSpec(key="notice", title=plan.kind.name, template=plan.kind.template, in_contents=False)
    xml = render_section_xml(tset, spec.template, plan.context())
    section = parse_section(xml, spec, template=spec.template, allowed_sources=frozenset())
    if section is None:
        raise TemplateError(f"模板 {spec.template} 没有生成任何内容", hint="公示模板不能写 skip=\"true\"")
    title = next((b.text for b in section.blocks if isinstance(b, dm.Title)), plan.kind.name)
    return dm.Document(
        title=title, sections=(section,), page=tset.page, subject=plan.kind.name,
        author=plan.committee, date=doc_date,
    )


def make_notice(
    data_dir: Path,
    village: str,
    kind: str,
    out: Path,
    *,
    households: Sequence[str] = (),
    start: date | None = None,
    days: int | None = None,
) -> NoticeResult:
    """Plan the notice and write it to ``out`` (.pdf or .docx, by its suffix), atomically."""
    from ..archive.outdir import atomic_file
    from ..archive.packet import configured_fonts, font_set, template_set

    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in (".pdf", ".docx"):
        raise OutputError(f"公示只能保存为 .pdf 或 .docx：{out.name}", hint="例如 -o 公示.pdf 或 -o 公示.docx")
    dataset, (loaded,) = load_villages(Path(data_dir), [village])
    plan = _plan(dataset, loaded, kind, households=households, start=start, days=days)
    data_dir = dataset.root.resolve()
    dataset_config = dataset.config
    tset = template_set(dataset_config.templates.set, data_dir, loaded.village.path.resolve())
    document = notice_document(plan, tset, plan.start.isoformat())
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        if suffix == ".pdf":
            from ..render.pdf import write_pdf

            fonts = font_set(configured_fonts(tset, dataset_config, data_dir))
            with atomic_file(out) as handle:
                result = write_pdf(document, handle, fonts=fonts)
            return NoticeResult(out, plan, result.pages, plan.warnings + tuple(result.warnings))
        from ..render.docx import write_docx

        docx = write_docx(document, out, evidence=None, font_names=dict(tset.word_fonts))
        return NoticeResult(out, plan, None, plan.warnings + tuple(docx.warnings))
    except OSError as exc:
        raise OutputError(f"无法写入 {out}：{os_reason(exc)}",
                          hint="请检查文件是否正被 PDF 阅读器、WPS 或 Word 打开，文件夹是否可写") from exc
