"""The national system's one-row-per-person columns (record-format §6) and header matching.

``COLUMNS`` maps every header (and its common variants) to a record key, its level
(household, member, income …) and the kind of its value; ``match_header`` finds the column
of a header as written in a sheet, ignoring brackets, spaces and punctuation variants.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

# --- the column table --------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """One known column: its §6 header, where it goes and how its cells are read."""

    header: str
    key: str  # dotted target in the record, or a pseudo key (county, village, size …)
    level: str  # archive | village | household | member | unmapped
    kind: str  # text | code | id | int | bool | date | month | label | labels | insured_major
    vocab: str | None = None
    aliases: tuple[str, ...] = ()
    reason: str = ""  # unmapped columns: why they are not imported


def _c(header: str, key: str, level: str, kind: str = "text", vocab: str | None = None,
       *aliases: str, reason: str = "") -> Column:
    return Column(header, key, level, kind, vocab, aliases, reason)


#: §6 columns first (in §6 order, which is also the export order), then accepted extras
COLUMNS: tuple[Column, ...] = (
    _c("县(市、区、旗)", "county", "archive", "text", None, "县", "县区", "县市区", "县(市、区)",
       "县(市)", "县(区)", "县(市区)", "县(市、区、旗、团场)", "区县"),
    _c("乡(镇)", "township", "archive", "text", None, "乡镇", "乡", "镇", "乡(镇、街道)",
       "乡镇(街道)", "乡(镇、街道、办事处)"),
    _c("行政村", "village", "village", "text", None, "村", "村名", "行政村名称", "所在村",
       "村(社区)", "行政村(社区)"),
    _c("自然村", "group", "household", "text", None, "村民组", "组", "自然村(组)", "村民小组"),
    _c("户编号", "household_id", "household", "code", None, "户码", "户编码", "户代码", "户号"),
    _c("人编号", "person_no", "unmapped", "text", None, "人码", "人员编号", "成员编号",
       reason="记录格式没有对应字段"),
    _c("姓名", "name", "member", "text", None, "成员姓名", "家庭成员姓名", "人员姓名"),
    _c("证件号码", "id_number", "member", "id", None, "身份证号码", "身份证号", "公民身份号码",
       "证件号", "身份证件号码", "公民身份证号码", "身份证件号"),
    _c("人数", "size", "household", "int", None, "家庭人口数", "家庭人数", "户人数", "人口数",
       "家庭人口", "户人口数"),
    _c("与户主关系", "relation", "member", "label", "relation", "与户主的关系", "家庭关系", "关系"),
    _c("民族", "ethnicity", "member", "label", "ethnicity"),
    _c("文化程度", "education", "member", "label", "education", "学历"),
    _c("在校生状况", "student_status", "member", "label", "student_status", "在校生情况",
       "在校情况", "在校状况"),
    _c("健康状况", "health", "member", "labels", "health", "健康情况"),
    _c("劳动技能", "labour", "member", "label", "labour", "劳动能力"),
    _c("务工时间（月）", "work_months", "member", "int", None, "务工时间", "务工月数",
       "务工时长(月)", "务工时间(个月)"),
    _c("是否参加大病保险", "insured_major", "member", "insured_major", None, "参加大病保险",
       "大病保险", "是否参加大病医疗保险"),
    _c("致贫原因1", "causes.main", "household", "label", "cause", "致贫原因", "主要致贫原因",
       "致贫原因(1)", "主要致贫原因1"),
    _c("危房户", "living.dangerous_house", "household", "label", "dangerous_house", "是否危房户",
       "危房等级", "危房"),
    _c("是否解决安全饮用水", "living.safe_drinking_water", "household", "bool", None,
       "安全饮用水", "饮水安全", "是否饮水安全", "是否解决饮水安全"),
    _c("人均纯收入", "per_capita", "unmapped", "text", None, "人均纯收入(元)", "家庭人均纯收入",
       reason="人均纯收入由收入台账计算，不保存"),
    _c("户联系电话", "phone", "household", "code", None, "联系电话", "户主联系电话",
       "家庭联系电话", "户主电话"),
    _c("人联系电话", "person_phone", "unmapped", "text", None, "成员联系电话", "个人联系电话",
       reason="记录格式的家庭成员没有联系电话字段"),
    _c("首次识别时间", "identified_on", "household", "month", None, "识别时间", "识别年月",
       "首次识别年月", "纳入时间"),
    _c("人员识别时间", "person_identified_on", "unmapped", "text", None, "成员识别时间",
       reason="记录格式的家庭成员没有识别时间字段"),
    _c("户类型", "household_type", "household", "label", "household_type", "户属性类型", "农户类型"),
    _c("易返贫致贫户(监测对象)类型", "monitor.category", "household", "label", "monitor_category",
       "监测对象类型", "监测类型", "易返贫致贫户类型", "监测对象类别", "监测户类型",
       "防止返贫监测对象类型"),
    _c("风险是否消除", "monitor.eliminated", "household", "bool", None, "是否消除风险",
       "风险消除", "是否风险消除"),
    _c("风险识别时间", "monitor.identified_on", "household", "month", None, "监测识别时间",
       "纳入监测时间"),
    _c("风险消除时间", "monitor.eliminated_on", "household", "date", None, "消除风险时间"),
    # --- not in §6, but common in exports and present in the record format
    _c("贫困户属性", "poverty_attribute", "household", "label", "poverty_attribute", "贫困属性"),
    _c("脱贫状态", "poverty_status", "household", "label", "poverty_status", "贫困户状态",
       "脱贫属性"),
    _c("脱贫年度", "exit_year", "household", "int", None, "脱贫年份", "计划脱贫年度"),
    _c("家庭住址", "address", "household", "text", None, "住址", "家庭地址"),
    _c("其他致贫原因", "causes.others", "household", "labels", "cause", "次要致贫原因"),
    _c("风险类型", "monitor.risks", "household", "labels", "monitor_risk", "致贫返贫风险",
       "返贫致贫风险", "风险类别"),
    _c("风险消除方式", "monitor.eliminate_method", "household", "label", "eliminate_method",
       "消除方式"),
    _c("性别", "sex", "member", "text", None),
    _c("出生日期", "birth_date", "member", "date", None, "出生年月日"),
    _c("务工地点", "work_place", "member", "text", None, "务工所在地", "务工地"),
    _c("是否低保", "dibao", "member", "bool", None, "低保", "是否享受低保"),
    _c("是否特困供养", "tekun", "member", "bool", None, "特困供养", "是否特困", "特困"),
)
SECTION6 = COLUMNS[:30]
REQUIRED = ("户编号", "姓名", "证件号码", "与户主关系", "行政村")
BY_KEY = {column.key: column for column in COLUMNS}

_FOLD = str.maketrans({"（": "(", "）": ")", "，": "、", ",": "、", "\u3000": "", " ": "",
                       "\t": "", "\n": "", "\r": "", "：": "", ":": ""})


def _fold_header(text: str) -> str:
    return text.translate(_FOLD).strip().strip("*＊")


_ALIASES: dict[str, Column] = {}
for _column in COLUMNS:
    for _name in (_column.header, *_column.aliases):
        _ALIASES.setdefault(_fold_header(_name), _column)


def match_header(text: str) -> Column | None:
    """Return the known column a header cell names (variants and bracket widths folded)."""
    return _ALIASES.get(_fold_header(text))


def _suggest(text: str) -> Column | None:
    folded = _fold_header(text)
    if not folded:
        return None
    found = difflib.get_close_matches(folded, list(_ALIASES), n=1, cutoff=0.6)
    return _ALIASES[found[0]] if found else None
