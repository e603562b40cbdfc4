"""Deterministic generator of synthetic household records (合成数据).

Everything produced here is made up: names, ID numbers (with valid GB 11643 check
characters), amounts and dates.  The output follows the record format described in
``docs/record-format.md``: canonical English keys, enumerated values as Chinese labels.

The generator is deterministic: the same seed gives the same records and the same file
bytes (seeded ``random.Random`` with string seeds, fixed JPEG quality, no timestamps).
It is used by the tests, the benchmarks (``benchmarks/generate.py``) and the sample
builder (``tools/make_sample.py``).

Only the standard library, PyYAML and Pillow are needed.
"""

from __future__ import annotations

import datetime as _dt
import io
import json
import random
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "DEFAULT_COUNTY",
    "DEFAULT_TOWNSHIP",
    "ID_CHECK_CHARS",
    "ID_WEIGHTS",
    "VILLAGE_NAMES",
    "cmyk_jpeg",
    "dump_household_yaml",
    "evidence_paths",
    "generate_household",
    "gray16_png",
    "id_check_char",
    "is_valid_id_number",
    "make_id_number",
    "make_photo",
    "multipage_tiff_bytes",
    "oriented_jpeg",
    "pdf_document_bytes",
    "scan_page",
    "signature_png",
    "toml_dumps",
    "write_archive_toml",
    "write_dataset",
    "write_household",
    "write_templated_dataset",
    "write_village",
]

# ---------------------------------------------------------------------------
# GB 11643 citizen ID numbers
# ---------------------------------------------------------------------------

ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CHECK_CHARS = "10X98765432"


def id_check_char(first17: str) -> str:
    """Return the GB 11643 (MOD 11-2) check character for the first 17 digits."""
    if len(first17) != 17 or not first17.isdigit():
        raise ValueError(f"need 17 digits, got {first17!r}")
    total = sum(int(c) * w for c, w in zip(first17, ID_WEIGHTS))
    return ID_CHECK_CHARS[total % 11]


def make_id_number(region6: str, birth: _dt.date, seq: int) -> str:
    """Build an 18-character ID number; an odd ``seq`` means male, even female."""
    if len(region6) != 6 or not region6.isdigit():
        raise ValueError(f"region code must be 6 digits, got {region6!r}")
    if not 0 <= seq <= 999:
        raise ValueError(f"sequence must be 0..999, got {seq}")
    first17 = f"{region6}{birth:%Y%m%d}{seq:03d}"
    return first17 + id_check_char(first17)


def is_valid_id_number(value: str) -> bool:
    """True if ``value`` is 18 characters with a real birth date and a correct check char."""
    if not isinstance(value, str) or len(value) != 18 or not value[:17].isdigit():
        return False
    try:
        _dt.date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        return False
    return value[17] == id_check_char(value[:17])


# ---------------------------------------------------------------------------
# Vocabulary and name pools (all synthetic)
# ---------------------------------------------------------------------------

DEFAULT_COUNTY = "清河县"
DEFAULT_TOWNSHIP = "大李庄乡"

VILLAGE_NAMES = (
    "李庄村", "王楼村", "前进村", "张湾村", "刘寨村", "陈岗村", "杨桥村", "赵屯村",
    "后营村", "马集村", "孙庄村", "东周村", "西郭村", "南岗村", "北徐村", "黄泥湾村",
)

SURNAMES = (
    "李", "王", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴", "徐", "孙", "马", "朱", "胡",
    "郭", "何", "高", "郑", "宋", "韩", "冯", "曹", "田", "董", "袁", "魏", "吕", "丁", "任",
    "姚", "卢", "崔", "范", "贾", "付", "白", "孟", "秦", "闫", "段", "侯", "史", "郝", "牛",
)

# Given names by cohort; a few carry characters outside GB 2312 (堃 喆 犇 𠮷).
MALE_OLD = ("建国", "国强", "保国", "振华", "德胜", "书田", "长河", "金锁", "铁柱", "满仓",
            "富贵", "新民", "宝山", "玉林", "水旺", "春生", "广田", "发财", "留柱", "树林")
FEMALE_OLD = ("桂兰", "秀英", "玉梅", "凤琴", "素珍", "翠花", "春梅", "爱玲", "金凤", "秀芝",
              "粉英", "玉兰", "桂芝", "巧云", "月娥", "荣花", "素英", "小焕")
MALE_MID = ("伟", "军", "勇", "红伟", "建伟", "海涛", "志强", "永刚", "卫东", "新峰", "国栋",
            "晓辉", "东亮", "长江", "朝阳", "小军", "俊峰", "犇", "喆")
FEMALE_MID = ("丽", "艳", "红霞", "晓燕", "海燕", "娟", "丽娜", "雪梅", "彩霞", "俊霞", "慧敏",
              "亚丽", "春霞", "静", "喆")
MALE_YOUNG = ("浩", "鹏飞", "子豪", "俊杰", "宇航", "一鸣", "浩然", "博文", "嘉乐", "梓轩",
              "子墨", "天佑", "堃", "犇犇", "𠮷祥", "明轩")
FEMALE_YOUNG = ("欣怡", "梦瑶", "雨涵", "佳琪", "思雨", "一诺", "紫涵", "若曦", "可馨", "诗琪",
                "梓萱", "雨桐", "𠮷雅", "晓喆")

# Region codes for ID numbers: the home county and a few neighbours (for spouses who
# married in; the ID region is where the ID was issued, not where the person lives).
NEIGHBOUR_REGIONS = ("411622", "411623", "411624", "411625", "410225", "411722")

WORK_PLACES = ("广东省东莞市", "广东省深圳市", "浙江省宁波市", "浙江省义乌市", "江苏省苏州市",
               "江苏省昆山市", "河南省郑州市", "上海市", "北京市", "本县产业园", "本乡扶贫车间")

HOUSE_STRUCTURES = ("砖混", "砖木", "框架", "砖混", "砖混")

GROUPS_DEFAULT = ("第一村民组", "第二村民组", "第三村民组", "第四村民组")

MONITOR_RISKS = ("因病", "因残", "因学", "因灾", "因意外事故", "因产业项目失败", "因务工就业不稳",
                 "缺劳动力", "住房出现安全问题", "家庭收入大幅缩减", "其他")

# ---------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------


def _money(rng: random.Random, lo: float, hi: float, *, cents: bool = False,
           step: int = 1) -> int | float:
    """A money amount in [lo, hi]: whole yuan (multiple of ``step``) or with cents."""
    if cents:
        value = rng.randint(int(lo * 100), int(hi * 100))
        if value % 100 == 0:
            return value // 100
        return round(value / 100, 2)
    return rng.randint(int(lo) // step, int(hi) // step) * step


def _rand_date(rng: random.Random, start: _dt.date, end: _dt.date) -> _dt.date:
    end = max(end, start)
    return start + _dt.timedelta(days=rng.randint(0, (end - start).days))


def _last_day(year: int) -> _dt.date:
    """Latest date any generated event may carry (keeps data out of the future)."""
    return _dt.date(year, 10, 31)


def _age(birth: _dt.date, on: _dt.date) -> int:
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


def _birth(rng: random.Random, year: int) -> _dt.date:
    return _dt.date(year, rng.randint(1, 12), rng.randint(1, 28))


def _pick_given(rng: random.Random, birth_year: int, male: bool, year: int) -> str:
    age = year - birth_year
    pool: tuple[str, ...]
    if age >= 50:
        pool = MALE_OLD if male else FEMALE_OLD
    elif age >= 25:
        pool = MALE_MID if male else FEMALE_MID
    else:
        pool = MALE_YOUNG if male else FEMALE_YOUNG
    return rng.choice(pool)


# ---------------------------------------------------------------------------
# Family structure
# ---------------------------------------------------------------------------

# Slot codes: H head, S spouse, C child (son or daughter), SON married son, DIL 之儿媳,
# DAU married daughter, SIL 之女婿, G grandchild, F 之父, M 之母.
_TEMPLATES: dict[int, Sequence[Sequence[str]]] = {
    1: (("H",),),
    2: (("H", "S"), ("H", "S"), ("H", "C"), ("H", "M")),
    3: (("H", "S", "C"), ("H", "S", "C"), ("H", "M", "C"), ("H", "C", "C")),
    4: (("H", "S", "C", "C"), ("H", "S", "M", "C"), ("H", "S", "SON", "DIL")),
    5: (("H", "S", "C", "C", "C"), ("H", "S", "SON", "DIL", "G"), ("H", "S", "F", "M", "C"),
        ("H", "S", "DAU", "SIL", "G")),
    6: (("H", "S", "SON", "DIL", "G", "G"), ("H", "S", "M", "C", "C", "C")),
    7: (("H", "S", "SON", "DIL", "G", "G", "C"), ("H", "S", "M", "SON", "DIL", "G", "G")),
    8: (("H", "S", "SON", "DIL", "SON", "DIL", "G", "G"), ("H", "S", "M", "SON", "DIL", "G", "G", "G")),
    9: (("H", "S", "M", "SON", "DIL", "G", "G", "G", "C"),
        ("H", "S", "F", "M", "SON", "DIL", "G", "G", "C")),
}


def _household_size(rng: random.Random) -> int:
    return rng.choices(range(1, 10), weights=(10, 22, 20, 20, 13, 7, 4, 2, 2))[0]


def _build_family(rng: random.Random, size: int, year: int, surname: str) -> list[dict[str, Any]]:
    """Return members as dicts with private keys (_birth, _male, _slot) set."""
    slots = list(rng.choice(_TEMPLATES[size]))
    has_g = "G" in slots
    has_parent = "F" in slots or "M" in slots
    has_child = any(s in slots for s in ("C", "SON", "DAU"))
    if has_g:
        head_age = rng.randint(52, 74)
    elif has_parent:
        head_age = rng.randint(36, 56)
    elif has_child:
        head_age = rng.randint(30, 66)
    elif size == 1:
        head_age = rng.randint(48, 86)
    else:
        head_age = rng.randint(32, 82)
    if "SON" in slots or "DAU" in slots:
        head_age = max(head_age, 50)
    head_male = rng.random() < (0.85 if "S" in slots else 0.65)
    head_birth = _birth(rng, year - head_age)
    members: list[dict[str, Any]] = []
    married_children: list[dict[str, Any]] = []

    def add(slot: str, birth: _dt.date, male: bool, relation: str, family: str | None = None) -> dict:
        fam = surname if family is None else family
        m = {"_slot": slot, "_birth": birth, "_male": male, "relation": relation,
             "name": fam + _pick_given(rng, birth.year, male, year)}
        members.append(m)
        return m

    add("H", head_birth, head_male, "户主")
    child_base = head_birth.year
    for slot in slots[1:]:
        if slot == "S":
            b = _birth(rng, head_birth.year + rng.randint(-4, 4))
            add(slot, b, not head_male, "配偶", rng.choice(SURNAMES))
            child_base = min(head_birth.year, b.year)
        elif slot in ("F", "M"):
            b = _birth(rng, min(head_birth.year - rng.randint(22, 30), year - 60))
            add(slot, b, slot == "F", "之父" if slot == "F" else "之母",
                surname if slot == "F" else rng.choice(SURNAMES))
        elif slot in ("SON", "DAU"):
            lo = child_base + 21
            hi = min(child_base + 30, year - 23)
            b = _birth(rng, rng.randint(lo, max(lo, hi)))
            m = add(slot, b, slot == "SON", "之子" if slot == "SON" else "之女")
            married_children.append(m)
        elif slot == "DIL":
            son = married_children[-1]
            b = _birth(rng, son["_birth"].year + rng.randint(-3, 2))
            son["_partner"] = add(slot, b, False, "之儿媳", rng.choice(SURNAMES))
        elif slot == "SIL":
            dau = married_children[-1]
            b = _birth(rng, dau["_birth"].year + rng.randint(-2, 3))
            dau["_partner"] = add(slot, b, True, "之女婿", rng.choice(SURNAMES))
        elif slot == "C":
            lo = child_base + 20
            hi = min(child_base + 42, year - 1)
            if married_children:
                lo = max(lo, married_children[0]["_birth"].year + 1)
            b = _birth(rng, rng.randint(lo, max(lo, hi)))
            male = rng.random() < 0.5
            add(slot, b, male, "之子" if male else "之女")
        elif slot == "G":
            parent = married_children[rng.randrange(len(married_children))]
            lo = max(parent["_birth"].year, parent.get("_partner", parent)["_birth"].year) + 20
            hi = min(lo + 16, year - 0)
            b = _birth(rng, rng.randint(lo, max(lo, hi)))
            male = rng.random() < 0.5
            family = parent["name"][0] if parent["_slot"] == "SON" else parent["_partner"]["name"][0]
            add(slot, b, male, "之孙子" if male else "之孙女", family)
    # Nobody is born after mid-year of the archive year.
    limit = _dt.date(year, 6, 30)
    for m in members:
        if m["_birth"] > limit:
            m["_birth"] = _dt.date(year, rng.randint(1, 6), rng.randint(1, 28))
    return members


def _education(rng: random.Random, birth: _dt.date, year: int) -> tuple[str, str]:
    """(文化程度, 在校生状况) for a birth date in the archive year (age on 1 Sept)."""
    age = _age(birth, _dt.date(year, 9, 1))
    if age < 3:
        return "学龄前儿童", "非在校生"
    if age < 6:
        return "学龄前儿童", "学前教育"
    if age < 12:
        return "小学", "小学"
    if age < 15:
        return "初中", ("七年级", "八年级", "九年级")[age - 12]
    if age < 18:
        grade = ("一", "二", "三")[age - 15]
        if rng.random() < 0.3:
            return "中职", f"中职{grade}年级"
        if rng.random() < 0.15:
            return "初中", "非在校生"
        return "高中", f"高中{grade}年级"
    if age < 22 and rng.random() < 0.55:
        return "高中", "大专及以上"
    if birth.year < 1955:
        return rng.choice(("文盲或半文盲", "文盲或半文盲", "小学")), "非在校生"
    if birth.year < 1970:
        return rng.choice(("小学", "初中", "初中")), "非在校生"
    if birth.year < 1990:
        return rng.choice(("初中", "初中", "高中", "小学")), "非在校生"
    return rng.choice(("初中", "高中", "中职", "大专", "本科及以上")), "非在校生"


# ---------------------------------------------------------------------------
# Measures catalogue: (category, item, provider, content, (lo, hi), cents, step)
# ---------------------------------------------------------------------------

_MEASURES: dict[str, tuple[str, str, str, str, tuple[float, float], bool, int]] = {
    "分红": ("产业帮扶", "企业带贫分红", "清河县宏达食品有限公司", "到户增收资金入股带贫企业，年度保底分红", (600, 1000), False, 100),
    "产业奖补": ("产业帮扶", "到户产业奖补", "大李庄乡人民政府", "发展肉牛、山羊养殖，按养殖规模给予一次性奖补", (1000, 5000), False, 500),
    "光伏": ("产业帮扶", "光伏收益分配", "村股份经济合作社", "村级光伏电站收益按公益岗位和奖补形式分配", (500, 1500), False, 100),
    "交通补贴": ("就业帮扶", "务工交通补贴", "清河县人力资源和社会保障局", "跨省务工一次性交通补贴", (300, 800), False, 100),
    "技能培训": ("就业帮扶", "技能培训", "清河县职业技能培训中心", "参加电焊、家政服务等技能培训并取得结业证书，发放培训生活补贴", (300, 900), False, 100),
    "稳岗补贴": ("就业帮扶", "稳岗就业补贴", "清河县人力资源和社会保障局", "在本县扶贫车间稳定就业6个月以上，发放稳岗补贴", (1000, 2000), False, 500),
    "小额信贷": ("金融帮扶", "小额信贷", "清河县农村商业银行", "5万元以下、3年期以内、免担保免抵押、基准利率放贷、财政贴息", (20000, 50000), False, 10000),
    "贴息": ("金融帮扶", "小额信贷贴息", "清河县财政局", "小额信贷年度财政贴息", (800, 2200), True, 1),
    "公益岗": ("公益岗位帮扶", "公益岗", "大李庄乡人民政府", "村级保洁员公益岗位，每月补贴300元", (3600, 3600), False, 1),
    "护林员": ("公益岗位帮扶", "生态护林员", "清河县林业局", "聘任生态护林员，年度劳务补助", (6000, 6000), False, 1),
    "家医签约": ("健康帮扶", "家庭医生签约服务", "大李庄乡卫生院", "签订家庭医生服务协议，每季度随访一次，慢性病用药指导", (0, 0), False, 1),
    "医疗救助": ("健康帮扶", "医疗救助", "清河县医疗保障局", "住院费用经基本医保、大病保险报销后给予医疗救助", (800, 9000), True, 1),
    "慢病报销": ("健康帮扶", "门诊慢特病报销", "清河县医疗保障局", "门诊慢性病费用按规定比例报销", (300, 2500), True, 1),
    "营养餐": ("义务教育保障", "营养改善计划", "清河县教育局", "农村义务教育学生营养改善计划，每生每天5元", (1000, 1000), False, 1),
    "寄宿补助": ("义务教育保障", "寄宿生生活补助", "清河县教育局", "义务教育阶段家庭经济困难寄宿生生活补助", (1000, 1250), False, 250),
    "雨露计划": ("其他教育帮扶", "雨露计划", "清河县乡村振兴局", "中高职在校生雨露计划补助，每学期1500元", (3000, 3000), False, 1),
    "高中助学金": ("其他教育帮扶", "普通高中国家助学金", "清河县教育局", "普通高中家庭经济困难学生国家助学金", (2000, 2000), False, 1),
    "助学贷款": ("其他教育帮扶", "生源地信用助学贷款", "国家开发银行河南省分行", "大学在校生生源地信用助学贷款", (8000, 12000), False, 1000),
    "危房改造": ("住房安全保障", "农村危房改造", "清河县住房和城乡建设局", "C级危房维修加固", (8000, 20000), False, 1000),
    "自来水": ("饮水安全保障", "自来水入户", "清河县水利局", "农村饮水安全巩固提升工程自来水入户", (0, 300), False, 100),
    "低保金": ("综合保障", "农村低保", "清河县民政局", "纳入农村最低生活保障，按月发放低保金", (2400, 4800), False, 60),
    "特困金": ("综合保障", "特困人员供养", "清河县民政局", "分散供养特困人员基本生活费和照料护理费", (5400, 7200), False, 120),
    "两项补贴": ("综合保障", "残疾人两项补贴", "清河县残疾人联合会", "困难残疾人生活补贴和重度残疾人护理补贴", (960, 1920), False, 120),
    "慰问": ("社会帮扶", "节日慰问", "清河县农业农村局", "春节走访慰问，送米、面、油和慰问金", (300, 800), False, 100),
    "消费帮扶": ("社会帮扶", "消费帮扶", "清河县供销合作社", "帮助销售自产小杂粮、红薯粉条", (500, 2000), False, 100),
    "改厕": ("生产生活条件改善", "农村户厕改造", "大李庄乡人民政府", "旱厕改造为三格式无害化卫生厕所", (1000, 1000), False, 1),
    "道路": ("基础设施建设", "入户道路硬化", "村民委员会", "硬化入户道路约60米", (3000, 5000), False, 500),
    "搬迁": ("搬迁", "易地扶贫搬迁", "清河县发展和改革委员会", "搬迁至乡集中安置点，人均住房面积25平方米", (0, 0), False, 1),
}


def _measure(rng: random.Random, key: str, year: int, last: _dt.date, *,
             provider: str | None = None) -> dict[str, Any]:
    cat, item, prov, content, (lo, hi), cents, step = _MEASURES[key]
    d = _rand_date(rng, _dt.date(year, 1, 5), min(_dt.date(year, 12, 20), last))
    return {
        "year": year,
        "category": cat,
        "item": item,
        "provider": provider or prov,
        "content": content,
        "amount": _money(rng, lo, hi, cents=cents, step=step),
        "date": d,
        "signed": rng.random() < 0.9,
    }


# ---------------------------------------------------------------------------
# Household generator
# ---------------------------------------------------------------------------

_HELPER_UNITS = (
    ("清河县农业农村局", "县直", ("科员", "副局长", "办公室主任")),
    ("清河县乡村振兴局", "县直", ("科员", "股长")),
    ("清河县人民医院", "县直", ("医师", "副院长")),
    ("周口市生态环境局", "市直", ("科员", "副科长")),
    ("河南省交通运输厅", "省直", ("驻村第一书记", "主任科员")),
    ("大李庄乡人民政府", "乡镇", ("包村干部", "副乡长", "乡村振兴办主任")),
    ("大李庄乡中心学校", "乡镇", ("教师",)),
)


def _phone(rng: random.Random) -> str:
    return rng.choice(("138", "139", "150", "151", "155", "158", "176", "187")) + f"{rng.randrange(10**8):08d}"


def generate_household(
    rng: random.Random,
    household_id: str,
    village_code: str,
    year: int,
    *,
    photos: int = 0,
    size: int | None = None,
    household_type: str | None = None,
    poverty_attribute: str | None = None,
    poverty_status: str | None = None,
    monitor_category: str | None = None,
    surname: str | None = None,
    groups: Sequence[str] = GROUPS_DEFAULT,
    village_name: str = "李庄村",
    used_ids: set[str] | None = None,
    income_years: int = 2,
    evidence_dir: str = "evidence",
) -> dict[str, Any]:
    """Return one synthetic household as a plain dict in the record format (§4).

    ``photos`` adds that many photo paths (``<evidence_dir>/photo_NN.jpg``) to the
    evidence; the caller writes the files (see :func:`write_household`).  ``used_ids``,
    when given, is shared across a data set: ID numbers are made unique against it and
    added to it.  Dates never pass 31 October of ``year``.
    """
    last = _last_day(year)
    index = int(household_id[-4:]) if household_id[-4:].isdigit() else rng.randrange(10000)
    region = village_code[:6] if len(village_code) >= 6 and village_code[:6].isdigit() else "411621"
    used = used_ids if used_ids is not None else set()

    # --- status --------------------------------------------------------------
    if household_type is None:
        if monitor_category is not None:
            household_type = "防止返贫致贫对象"
        else:
            household_type = rng.choices(("脱贫户", "防止返贫致贫对象", "一般农户"), weights=(62, 28, 10))[0]
    if household_type == "防止返贫致贫对象" and monitor_category is None:
        monitor_category = rng.choices(("脱贫不稳定户", "边缘易致贫户", "突发严重困难户"), weights=(45, 40, 15))[0]
    was_poor = household_type in ("脱贫户", "贫困户") or monitor_category == "脱贫不稳定户"
    if was_poor and poverty_attribute is None:
        poverty_attribute = rng.choices(("一般贫困户", "低保贫困户", "特困供养贫困户"), weights=(68, 24, 8))[0]
    if size is None:
        size = 1 if poverty_attribute == "特困供养贫困户" and rng.random() < 0.8 else _household_size(rng)
    if poverty_status is None and was_poor:
        if household_type == "贫困户":
            poverty_status = rng.choice(("未脱贫", "预脱贫"))
        else:
            poverty_status = rng.choices(("已脱贫(享受政策)", "已脱贫(不再享受政策)"), weights=(80, 20))[0]

    surname = surname or rng.choice(SURNAMES)
    people = _build_family(rng, size, year, surname)

    # --- members -------------------------------------------------------------
    members: list[dict[str, Any]] = []
    include_birth = rng.random() < 0.5
    any_disabled = any_ill = any_student = False
    for k, p in enumerate(people):
        birth, male = p["_birth"], p["_male"]
        if p["relation"] in ("配偶", "之儿媳", "之女婿") and rng.random() < 0.5:
            id_region = rng.choice(NEIGHBOUR_REGIONS)
        else:
            id_region = region
        base = 1 + (index * 10 + k) % 499
        for _ in range(500):
            idn = make_id_number(id_region, birth, 2 * base + (1 if male else 0))
            if idn not in used:
                break
            base = base % 499 + 1
        else:  # pragma: no cover - 500 people born on one day in one region
            raise RuntimeError("ran out of ID sequence numbers")
        used.add(idn)
        age = _age(birth, _dt.date(year, 9, 1))
        edu, stu = _education(rng, birth, year)
        health: list[str] = []
        r = rng.random()
        if age >= 55 and r < 0.38:
            health.append("长期慢性病")
        elif age >= 5 and r > 0.9:
            health.append("残疾")
        elif age >= 30 and 0.38 <= r < 0.43:
            health.append("患有大病")
        if not health:
            health = ["健康"]
        any_disabled |= "残疾" in health
        any_ill |= "长期慢性病" in health or "患有大病" in health
        student = stu not in ("非在校生",)
        any_student |= student and stu != "学前教育"
        if age < 16 or student:
            labour = "无劳动力"
        elif "残疾" in health and rng.random() < 0.6:
            labour = "丧失劳动力"
        elif age >= 70:
            labour = "丧失劳动力" if "健康" not in health else "无劳动力"
        elif age >= 60 or "健康" not in health:
            labour = "弱劳动力或半劳动力"
        else:
            labour = rng.choices(("普通劳动力", "技能劳动力"), weights=(75, 25))[0]
        m: dict[str, Any] = {"name": p["name"], "id_number": idn, "relation": p["relation"],
                             "sex": "男" if male else "女"}
        if include_birth:
            m["birth_date"] = birth
        m["ethnicity"] = "回族" if index % 23 == 7 else "汉族"
        m["education"] = edu
        m["student_status"] = stu
        m["health"] = health
        m["labour"] = labour
        if labour in ("普通劳动力", "技能劳动力") and rng.random() < 0.7:
            m["work_place"] = rng.choice(WORK_PLACES)
            m["work_months"] = rng.randint(3, 12)
        insured = ["居民医保"]
        if was_poor or household_type == "防止返贫致贫对象":
            insured.append("大病保险")
        if age >= 16 and not student:
            insured.append("居民养老")
        m["insured"] = insured
        members.append(m)

    if poverty_attribute == "低保贫困户":
        for m in members:
            m["dibao"] = True
    elif poverty_attribute == "特困供养贫困户":
        members[0]["tekun"] = True
        for m in members[1:]:
            m["dibao"] = False
    elif monitor_category == "突发严重困难户":
        for m in members:
            m["dibao"] = rng.random() < 0.5 and m["relation"] == "户主"

    # --- record header -------------------------------------------------------
    head = members[0]
    rec: dict[str, Any] = {"household_id": household_id}
    group = rng.choice(list(groups)) if groups else None
    if group:
        rec["group"] = group
    rec["address"] = f"{DEFAULT_COUNTY}{DEFAULT_TOWNSHIP}{village_name}{group or ''}{rng.randint(1, 120)}号"
    rec["phone"] = _phone(rng)
    rec["household_type"] = household_type
    if poverty_attribute:
        rec["poverty_attribute"] = poverty_attribute
    if poverty_status:
        rec["poverty_status"] = poverty_status

    ident_year = rng.randint(2016, 2019) if was_poor else rng.randint(2021, max(2021, year - 1))
    identified = _rand_date(rng, _dt.date(ident_year, 3, 1), _dt.date(ident_year, 11, 30))
    if was_poor:
        rec["identified_on"] = identified if rng.random() < 0.6 else f"{identified:%Y-%m}"
    exit_year = None
    if poverty_status and poverty_status.startswith("已脱贫") or poverty_status == "返贫":
        exit_year = rng.randint(min(ident_year + 1, 2020), 2020)
        rec["exit_year"] = exit_year

    monitor_start = None
    if monitor_category:
        mstart_year = rng.randint(max(2021, (exit_year or 2020) + 1), max(2021, year - 1))
        monitor_start = _rand_date(rng, _dt.date(mstart_year, 2, 1), _dt.date(mstart_year, 11, 30))
        risks = []
        if any_ill:
            risks.append("因病")
        if any_disabled:
            risks.append("因残")
        if any_student and rng.random() < 0.5:
            risks.append("因学")
        if monitor_category == "突发严重困难户":
            risks.append(rng.choice(("因灾", "因意外事故", "住房出现安全问题")))
        if not risks or rng.random() < 0.3:
            risks.append(rng.choice(("因务工就业不稳", "因产业项目失败", "缺劳动力", "其他")))
        mon: dict[str, Any] = {"category": monitor_category, "risks": risks[:5],
                               "identified_on": monitor_start}
        eliminated = monitor_start.year < year and rng.random() < 0.6
        mon["eliminated"] = eliminated
        if eliminated:
            mon["eliminate_method"] = rng.choices(("帮扶消除", "自然消除"), weights=(80, 20))[0]
            mon["eliminated_on"] = _rand_date(rng, monitor_start + _dt.timedelta(days=180), last)
        rec["monitor"] = mon

    # --- causes --------------------------------------------------------------
    cands = []
    if any_ill:
        cands.append("因病")
    if any_disabled:
        cands.append("因残")
    if any_student:
        cands.append("因学")
    if not any(mm["labour"] in ("普通劳动力", "技能劳动力") for mm in members):
        cands.append("缺劳动力")
    cands += ["缺资金", "缺技术", "自身发展动力不足", "交通条件落后"]
    main = cands[0] if cands[0] in ("因病", "因残", "因学", "缺劳动力") and rng.random() < 0.8 else rng.choice(cands)
    others = [c for c in dict.fromkeys(cands) if c != main][: rng.randint(0, 2)]
    causes: dict[str, Any] = {"main": main, "others": others}
    if rng.random() < 0.3:
        causes["note"] = {
            "因病": f"户主{head['name']}常年患病，需长期服药，医疗支出大。",
            "因残": "家中有残疾人，需专人照料，影响外出务工。",
            "因学": "子女上学支出较大，家庭负担重。",
            "缺劳动力": "家庭成员年老体弱，缺少劳动力。",
        }.get(main, "缺少发展资金和技术，收入来源单一。")
    rec["causes"] = causes
    rec["members"] = members

    rec["living"] = {
        "house_area_m2": _money(rng, 60, 180, step=5),
        "house_structure": rng.choice(HOUSE_STRUCTURES),
        "dangerous_house": "否",
        "safe_drinking_water": True,
        "electricity": True,
        "farmland_mu": round(rng.randint(5, 40) * 0.3, 1),
    }

    # --- helpers -------------------------------------------------------------
    helpers: list[dict[str, Any]] = []
    start_year = max(ident_year, 2016) if was_poor else (monitor_start.year if monitor_start else 2021)
    units = _HELPER_UNITS + ((f"{village_name}村民委员会", "村级", ("村党支部书记", "村委委员", "村文书")),)
    for h in range(rng.randint(1, 2)):
        unit, level, positions = rng.choice(units)
        male = rng.random() < 0.6
        hname = rng.choice(SURNAMES) + rng.choice(MALE_MID if male else FEMALE_MID)
        start = _rand_date(rng, _dt.date(start_year, 3, 1), _dt.date(start_year, 12, 31))
        helper: dict[str, Any] = {"name": hname, "unit": unit, "unit_level": level,
                                  "position": rng.choice(positions), "phone": _phone(rng),
                                  "start": min(start, last)}
        if h == 0 and len(helpers) == 0 and rng.random() < 0.25 and start.year < year - 2:
            helper["end"] = _rand_date(rng, start + _dt.timedelta(days=365), _dt.date(year - 1, 12, 31))
        helpers.append(helper)
    rec["helpers"] = helpers
    helper_name = helpers[-1]["name"]

    # --- application and procedure ------------------------------------------
    first = identified if was_poor else (monitor_start or identified)
    app_date = first - _dt.timedelta(days=rng.randint(20, 40))
    proc: list[dict[str, Any]] = []
    if was_poor or monitor_category:  # an ordinary household (一般农户) never applied
        rec["application"] = {"date": app_date, "signed": rng.random() < 0.95}
        proc = _procedure(rng, app_date, "识别", monitor=not was_poor)
    if exit_year:
        ex = _rand_date(rng, _dt.date(exit_year, 9, 1), _dt.date(exit_year, 11, 1))
        proc += _procedure(rng, ex, "退出", monitor=False)
    mon_rec = rec.get("monitor")
    if mon_rec and mon_rec.get("eliminated"):
        proc += _procedure(rng, mon_rec["eliminated_on"] - _dt.timedelta(days=30), "消除", monitor=True)
    proc = [p for p in proc if p["date"] <= last]
    if proc:
        rec["procedure"] = proc

    # --- plan, measures ------------------------------------------------------
    first_year = first.year
    years = list(range(max(first_year, year - 4), year + 1))
    rec["plan"] = [
        {"year": y, "needs": _needs(main), "plan": _plan_text(main, any_student)}
        for y in years[-2:]
    ]
    keys = ["家医签约"] if any_ill else []
    if any_ill:
        keys += ["医疗救助", "慢病报销"]
    if any_disabled:
        keys.append("两项补贴")
    if poverty_attribute == "低保贫困户" or any(mm.get("dibao") for mm in members):
        keys.append("低保金")
    if poverty_attribute == "特困供养贫困户":
        keys.append("特困金")
    kids = [mm for mm in members if mm["student_status"] != "非在校生"]
    for kid in kids:
        s = kid["student_status"]
        if s in ("小学", "七年级", "八年级", "九年级"):
            keys += ["营养餐", "寄宿补助"] if rng.random() < 0.5 else ["营养餐"]
        elif s.startswith("高中"):
            keys.append("高中助学金")
        elif s.startswith(("中职", "高职")):
            keys.append("雨露计划")
        elif s == "大专及以上":
            keys.append("雨露计划" if rng.random() < 0.6 else "助学贷款")
    if any(mm.get("work_place") for mm in members):
        keys += ["交通补贴"] + (["技能培训"] if rng.random() < 0.4 else [])
    if any(mm["labour"] == "弱劳动力或半劳动力" for mm in members) and rng.random() < 0.6:
        keys.append("公益岗")
    keys += rng.sample(["分红", "产业奖补", "光伏", "小额信贷", "慰问", "消费帮扶", "改厕", "自来水", "道路"],
                       k=rng.randint(1, 3))
    measures = []
    for key in keys:
        span = years if key in ("分红", "光伏", "低保金", "特困金", "两项补贴", "公益岗", "营养餐",
                                 "雨露计划", "高中助学金", "家医签约") else [rng.choice(years)]
        for y in span[-3:]:
            measures.append(_measure(rng, key, y, last,
                                     provider=f"{village_name}村民委员会" if key == "道路" else None))
    measures.sort(key=lambda x: (x["date"], x["category"]))
    rec["measures"] = measures

    # --- income --------------------------------------------------------------
    rec["income"] = [_income(rng, members, y, poverty_attribute) for y in range(year - income_years + 1, year + 1)]

    # --- visits, outcomes ----------------------------------------------------
    visits = []
    for y in years[-2:]:
        for _ in range(rng.randint(1, 2)):
            d = _rand_date(rng, _dt.date(y, 1, 10), min(_dt.date(y, 12, 20), last))
            visits.append({"date": d, "visitor": helper_name, "content": _visit_text(rng, main, head["name"])})
    visits.sort(key=lambda v: v["date"])
    rec["visits"] = visits
    rec["outcomes"] = [{
        "date": _rand_date(rng, _dt.date(year, 6, 1), last),
        "content": "通过落实" + "、".join(dict.fromkeys(mm["item"] for mm in measures[:3])) +
                   "等措施，家庭收入稳定，“两不愁三保障”及饮水安全有保障。",
        "signed": True,
    }]

    # --- evidence ------------------------------------------------------------
    evidence: list[Any] = []
    for k in range(1, photos + 1):
        path = f"{evidence_dir}/photo_{k:02d}.jpg"
        if k % 2 == 1:
            evidence.append({"file": path, "type": "照片", "title": f"入户走访照片{k}",
                             "date": visits[min(k - 1, len(visits) - 1)]["date"], "sensitive": False})
        else:
            evidence.append(path)
        if k == 1 and visits:
            visits[-1]["evidence"] = [path]
        if k == 2 and measures:
            measures[-1]["evidence"] = [path]
    if evidence:
        rec["evidence"] = evidence
    return rec


def _procedure(rng: random.Random, start: _dt.date, phase: str, *, monitor: bool) -> list[dict[str, Any]]:
    d = start
    out: list[dict[str, Any]] = []

    def step(kind: str, days: tuple[int, int], result: str, span: int | None = None) -> None:
        nonlocal d
        d = d + _dt.timedelta(days=rng.randint(*days))
        e: dict[str, Any] = {"kind": kind, "date": d}
        if span:
            e["date_to"] = d + _dt.timedelta(days=span)
            d = e["date_to"]
        e["result"] = result
        out.append(e)

    if phase == "识别":
        out.append({"kind": "申请", "date": d, "result": "农户自愿申请" if not monitor else "农户自主申报"})
        step("入户核查", (3, 8), "核查属实")
        step("民主评议", (3, 10), "参会代表一致同意")
        step("公示", (1, 3), "村内公示无异议", span=7)
        step("乡镇审核", (2, 6), "审核通过")
        step("县级审定", (3, 12), "同意纳入" if not monitor else "同意纳入监测对象")
        if not monitor:
            step("公告", (1, 3), "县级公告无异议", span=7)
    elif phase == "退出":
        out.append({"kind": "预退出", "date": d, "result": "达到退出标准，拟退出"})
        step("民主评议", (3, 10), "同意退出")
        step("公示", (1, 3), "村内公示无异议", span=7)
        step("乡镇审核", (2, 6), "审核通过")
        step("退出确认", (3, 10), "户主签字确认，同意退出")
        step("公告", (1, 3), "县级公告无异议", span=7)
    else:  # risk elimination
        out.append({"kind": "入户核查", "date": d, "result": "风险已稳定消除"})
        step("民主评议", (3, 8), "同意风险消除")
        step("公示", (1, 3), "村内公示无异议", span=5)
        step("乡镇审核", (2, 6), "审核通过")
        step("县级审定", (2, 8), "同意标注风险消除")
    return out


def _needs(cause: str) -> str:
    return {
        "因病": "减轻医疗负担，落实慢性病签约服务",
        "因残": "落实残疾人补贴，提供适合的就业岗位",
        "因学": "落实教育资助，保障子女顺利完成学业",
        "缺劳动力": "兜底保障，提供照料服务",
    }.get(cause, "发展产业，增加务工收入")


def _plan_text(cause: str, student: bool) -> str:
    parts = {
        "因病": ["落实先诊疗后付费和一站式结算", "家庭医生签约服务", "申请医疗救助"],
        "因残": ["申请残疾人两项补贴", "安排公益岗位"],
        "因学": ["落实雨露计划和助学金"],
        "缺劳动力": ["落实低保兜底", "参加村集体资产收益分红"],
    }.get(cause, ["参加技能培训", "推荐外出务工", "申请小额信贷发展养殖"])
    if student and cause != "因学":
        parts.append("落实教育资助政策")
    return "；".join(parts) + "。"


def _visit_text(rng: random.Random, cause: str, head: str) -> str:
    opening = rng.choice(("入户走访，", "到户了解生产生活情况，", "开展遍访，"))
    body = {
        "因病": f"{head}身体状况稳定，按时服药，医疗费用已按规定报销。",
        "因残": "残疾人补贴按时到账，家人照料到位。",
        "因学": "孩子在校表现良好，教育资助已发放到位。",
        "缺劳动力": "家中老人生活能自理，低保金按时发放。",
    }.get(cause, "家庭成员务工稳定，庄稼长势良好。")
    close = rng.choice(("宣讲惠民政策。", "核实家庭收入。", "帮助解决实际困难。", "“两不愁三保障”无问题。"))
    return opening + body + close


def _income(rng: random.Random, members: Sequence[dict[str, Any]], y: int, attribute: str | None) -> dict[str, Any]:
    wage: dict[str, int | float] = {}
    business: dict[str, int | float] = {}
    prop: dict[str, int | float] = {}
    transfer: dict[str, int | float] = {}
    costs: dict[str, int | float] = {}
    workers = [m for m in members if m.get("work_place")]
    if workers:
        wage["务工"] = sum(m["work_months"] * rng.randint(18, 45) * 100 for m in workers)
    if any(m["labour"] == "弱劳动力或半劳动力" for m in members) and rng.random() < 0.5:
        wage["公益岗"] = 3600
    if rng.random() < 0.8:
        business["种植"] = _money(rng, 1500, 6000, step=100)
        costs["种植"] = _money(rng, 400, 1400, step=50)
    if rng.random() < 0.35:
        business["养殖"] = _money(rng, 1000, 8000, step=100)
        costs["养殖"] = _money(rng, 300, 2000, step=50)
    prop["资产收益分红"] = _money(rng, 500, 1000, step=100)
    if rng.random() < 0.5:
        prop["土地流转"] = _money(rng, 400, 2400, step=100)
    elders = [m for m in members if m["labour"] in ("无劳动力", "丧失劳动力", "弱劳动力或半劳动力")
              and m["student_status"] == "非在校生" and "居民养老" in m["insured"]]
    if elders:
        transfer["养老金"] = len(elders) * 1476
    if attribute == "低保贫困户" or any(m.get("dibao") for m in members):
        transfer["低保金"] = len(members) * _money(rng, 2400, 3600, step=60)
    if attribute == "特困供养贫困户":
        transfer["特困供养金"] = _money(rng, 5400, 7200, step=120)
    if any("残疾" in m["health"] for m in members):
        transfer["残疾人补贴"] = 1440
    if rng.random() < 0.4:
        transfer["耕地地力保护补贴"] = _money(rng, 100, 900, cents=True)
    entry: dict[str, Any] = {"year": y}
    for key, val in (("wage", wage), ("business", business), ("property", prop),
                     ("transfer", transfer), ("costs", costs)):
        if val:
            entry[key] = val
    if len(members) > 2 and rng.random() < 0.15:
        entry["members_counted"] = len(members) - 1
    return entry


def evidence_paths(record: dict[str, Any]) -> list[str]:
    """Every evidence path a record names (top-level list, measures, visits, procedure)."""
    out: list[str] = []

    def take(items: Iterable[Any] | None) -> None:
        for e in items or ():
            p = e.get("file") if isinstance(e, dict) else e
            if isinstance(p, str) and p not in out:
                out.append(p)

    take(record.get("evidence"))
    for section in ("measures", "visits", "procedure"):
        for entry in record.get(section) or ():
            take(entry.get("evidence"))
    return out


# ---------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------


def _smooth_background(rng: random.Random, size: tuple[int, int]):
    from PIL import Image

    small = Image.frombytes("RGB", (3, 4), rng.randbytes(36))
    return small.resize(size, Image.Resampling.BICUBIC)


def make_photo(seed: str | int, size: tuple[int, int] = (1200, 1600), *, quality: int = 85,
               noise: int = 6, arrow: bool = False, mode: str = "RGB") -> Any:
    """Return a synthetic, text-free photo as a PIL image (deterministic for ``seed``).

    Smooth colour gradient, a few shapes (house, people, sun) and fine noise so that a
    1200×1600 JPEG at quality 85 is about 100–150 KB.  With ``arrow`` a large arrow
    pointing up and a marker in the top-left corner show the true orientation.
    """
    from PIL import Image, ImageDraw

    rng = random.Random(f"photo:{seed}")
    w, h = size
    img = _smooth_background(rng, size)
    draw = ImageDraw.Draw(img)
    s = min(w, h)

    def col() -> tuple[int, int, int]:
        return (rng.randrange(256), rng.randrange(256), rng.randrange(256))

    # ground, house, sun, people
    draw.rectangle((0, int(h * 0.72), w, h), fill=col())
    hx, hy, hw = rng.randint(0, w // 3), int(h * rng.uniform(0.42, 0.52)), int(w * rng.uniform(0.4, 0.55))
    draw.rectangle((hx, hy, hx + hw, int(h * 0.74)), fill=col())
    draw.polygon([(hx - s // 20, hy), (hx + hw // 2, hy - s // 5), (hx + hw + s // 20, hy)], fill=col())
    draw.rectangle((hx + hw // 3, hy + (int(h * 0.74) - hy) // 3, hx + hw // 2, int(h * 0.74)), fill=col())
    r = s // 12
    sx, sy = rng.randint(w // 2, w - r - 1), rng.randint(r, h // 4)
    draw.ellipse((sx - r, sy - r, sx + r, sy + r), fill=(250, 220, 90))
    for _ in range(rng.randint(1, 3)):
        px = rng.randint(w // 10, w - w // 10)
        py = int(h * rng.uniform(0.6, 0.7))
        pr = s // 30
        c = col()
        draw.ellipse((px - pr, py - 3 * pr, px + pr, py - pr), fill=c)
        draw.rectangle((px - pr, py - pr, px + pr, py + 3 * pr), fill=c)
    if arrow:
        cx, top, bottom = w // 2, int(h * 0.12), int(h * 0.82)
        hw2 = s // 4
        draw.rectangle((cx - s // 14, top + hw2, cx + s // 14, bottom), fill=(200, 20, 20), outline=(0, 0, 0), width=max(2, s // 200))
        draw.polygon([(cx, top), (cx - hw2, top + hw2), (cx + hw2, top + hw2)], fill=(200, 20, 20), outline=(0, 0, 0))
        m = s // 10
        draw.ellipse((m // 2, m // 2, m // 2 + m, m // 2 + m), fill=(20, 20, 200))
        draw.rectangle((w - m * 2, h - m, w - m // 2, h - m // 2), fill=(20, 150, 20))
    if noise:
        nw, nh = max(1, w // 3), max(1, h // 3)
        grain = Image.frombytes("L", (nw, nh), rng.randbytes(nw * nh)).resize(size, Image.Resampling.BILINEAR)
        grain_rgb = Image.merge("RGB", (grain, grain, grain))
        img = Image.blend(img, grain_rgb, noise / 255)
    if mode != "RGB":
        img = img.convert(mode)
    return img


def _jpeg_bytes(img: Any, quality: int = 85, exif: Any = None) -> bytes:
    buf = io.BytesIO()
    kwargs: dict[str, Any] = {"quality": quality, "optimize": False, "progressive": False}
    if exif is not None:
        kwargs["exif"] = exif
    img.save(buf, "JPEG", **kwargs)
    return buf.getvalue()


def oriented_jpeg(seed: str | int, size: tuple[int, int] = (3000, 4000), orientation: int = 1, *,
                  quality: int = 90, noise: int = 2) -> bytes:
    """A camera-like JPEG whose *upright* picture has ``size`` and shows a big arrow pointing
    up.  For EXIF orientation 6 or 8 the pixels are stored rotated and the Orientation tag
    (0x0112) says how to turn them back, as phones do."""
    from PIL import Image

    img = make_photo(seed, size, noise=noise, arrow=True)
    if orientation == 6:
        img = img.transpose(Image.Transpose.ROTATE_90)
    elif orientation == 8:
        img = img.transpose(Image.Transpose.ROTATE_270)
    elif orientation == 3:
        img = img.transpose(Image.Transpose.ROTATE_180)
    exif = None
    if orientation != 1:
        exif = Image.Exif()
        exif[0x0112] = orientation
    return _jpeg_bytes(img, quality=quality, exif=exif)


def scan_page(seed: str | int, size: tuple[int, int] = (1240, 1754), *, mode: str = "L",
              lines: int = 24) -> Any:
    """A text-free 'scanned document' page: paper tone, a header bar and grey bars standing
    for lines of text, a stamp-like circle.  Compresses well (no noise)."""
    from PIL import Image, ImageDraw

    rng = random.Random(f"scan:{seed}")
    w, h = size
    img = Image.new("RGB", size, (246, 244, 238))
    draw = ImageDraw.Draw(img)
    m = w // 12
    draw.rectangle((m, m, w - m, m + h // 30), fill=(60, 60, 60))
    y = m + h // 15
    step = (h - y - m) // max(1, lines)
    for _ in range(lines):
        x2 = w - m - rng.randint(0, w // 3)
        draw.rectangle((m, y, x2, y + max(2, step // 3)), fill=(150, 150, 150))
        y += step
    r = w // 9
    cx, cy = w - m - r, h - m - r
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), outline=(200, 30, 30), width=max(2, w // 150))
    return img.convert(mode) if mode != "RGB" else img


def multipage_tiff_bytes(seed: str | int, pages: int = 3, size: tuple[int, int] = (1240, 1754)) -> bytes:
    """A multi-page greyscale TIFF (deflate-compressed) of scanned pages."""
    imgs = [scan_page(f"{seed}:{k}", size) for k in range(pages)]
    buf = io.BytesIO()
    imgs[0].save(buf, "TIFF", save_all=True, append_images=imgs[1:], compression="tiff_deflate",
                 dpi=(150, 150))
    return buf.getvalue()


def png_bytes(img: Any) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG", optimize=False, compress_level=6)
    return buf.getvalue()


def signature_png(seed: str | int, size: tuple[int, int] = (900, 360)) -> bytes:
    """A transparent (RGBA) PNG with a scribbled 'signature' and a red fingerprint mark."""
    from PIL import Image, ImageDraw

    rng = random.Random(f"sig:{seed}")
    w, h = size
    img = Image.new("RGBA", size, (255, 255, 255, 0))
    draw = ImageDraw.Draw(img)
    pts = [(w // 10 + k * (w * 8 // 10) // 40, h // 2 + rng.randint(-h // 4, h // 4)) for k in range(41)]
    draw.line(pts, fill=(20, 20, 90, 255), width=max(3, h // 60), joint="curve")
    r = h // 6
    cx, cy = w - w // 6, h // 2
    draw.ellipse((cx - r, cy - int(r * 1.3), cx + r, cy + int(r * 1.3)), fill=(210, 30, 40, 170))
    return png_bytes(img)


def gray16_png(seed: str | int, size: tuple[int, int] = (800, 1100)) -> bytes:
    """A 16-bit greyscale PNG (mode I;16) of a scanned page."""
    from PIL import Image

    base = scan_page(seed, size, mode="L")
    data = bytearray()
    for v in base.tobytes():
        data += (v * 257).to_bytes(2, "little")
    return png_bytes(Image.frombytes("I;16", size, bytes(data)))


def cmyk_jpeg(seed: str | int, size: tuple[int, int] = (1000, 700), *, quality: int = 85) -> bytes:
    """A CMYK JPEG (as produced by some scanners and print workflows)."""
    return _jpeg_bytes(scan_page(seed, size, mode="RGB").convert("CMYK"), quality=quality)


CJK_FONT_CANDIDATES = (
    ("/usr/share/fonts/truetype/arphic/uming.ttc", 0),
    ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", 0),
    ("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc", 0),
)


def _cjk_font() -> tuple[str, Any] | None:
    """Register a CJK TrueType font with reportlab; None when no candidate is installed."""
    from reportlab.pdfbase import pdfmetrics  # type: ignore[import-untyped]
    from reportlab.pdfbase.ttfonts import TTFont  # type: ignore[import-untyped]

    for path, index in CJK_FONT_CANDIDATES:
        if Path(path).is_file():
            name = "SynthCJK"
            try:
                font = pdfmetrics.getFont(name)
            except KeyError:
                font = TTFont(name, path, subfontIndex=index)
                pdfmetrics.registerFont(font)
            return name, font
    return None


def pdf_document_bytes(title: str, pages: Sequence[Sequence[str]], *,
                       fallback_title: str = "Synthetic document",
                       fallback_pages: Sequence[Sequence[str]] | None = None) -> bytes:
    """A simple multi-page A4 PDF (reportlab, invariant mode: no dates, stable ids).

    Each page is a list of text lines; the title heads the first page and each page gets a
    footer ``第 n 页 共 m 页``.  Chinese needs a CJK TTF (:data:`CJK_FONT_CANDIDATES`); if
    none is installed, or a character is missing from it, the Latin fallback text is used.
    """
    from reportlab.lib.pagesizes import A4  # type: ignore[import-untyped]
    from reportlab.pdfgen import canvas  # type: ignore[import-untyped]

    reg = _cjk_font()
    text_ok = reg is not None and all(
        ord(ch) in reg[1].face.charToGlyph for line in [title, *[line for p in pages for line in p]]
        for ch in line if not ch.isspace())
    if not text_ok:
        title = fallback_title
        pages = fallback_pages or [[f"Page {k + 1}"] for k in range(len(pages))]
        font = "Helvetica"
    else:
        assert reg is not None
        font = reg[0]
    from archive_builder.render.rlformat import settings

    buf = io.BytesIO()
    with settings():  # the same stream encoding whatever this process rendered before
        c = canvas.Canvas(buf, pagesize=A4, invariant=1, pageCompression=1)
        c.setTitle(title)
        c.setAuthor("archive-builder synthetic data")
        w, h = A4
        for k, lines in enumerate(pages):
            y = h - 72
            if k == 0:
                c.setFont(font, 18)
                c.drawCentredString(w / 2, y, title)
                y -= 40
            c.setFont(font, 11)
            for line in lines:
                c.drawString(64, y, line)
                y -= 20
            c.setFont(font, 9)
            c.drawCentredString(w / 2, 40, f"第 {k + 1} 页 共 {len(pages)} 页" if text_ok else f"{k + 1} / {len(pages)}")
            c.showPage()
        c.save()
    return buf.getvalue()


# ---------------------------------------------------------------------------
# Writing files
# ---------------------------------------------------------------------------


class _Dumper(yaml.SafeDumper):
    """Readable YAML: block style, flow style for short scalar lists/maps, | for text."""

    def ignore_aliases(self, data: Any) -> bool:  # no &id001 anchors in hand-readable files
        return True


def _repr_str(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    if "\n" in data:
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", data)


def _scalar(v: Any) -> bool:
    return isinstance(v, (str, int, float, bool, _dt.date)) and not (isinstance(v, str) and len(v) > 40)


def _repr_list(dumper: yaml.SafeDumper, data: list) -> yaml.Node:
    flow = bool(data) and len(data) <= 6 and all(_scalar(v) for v in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


def _repr_dict(dumper: yaml.SafeDumper, data: dict) -> yaml.Node:
    flow = bool(data) and len(data) <= 5 and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                for v in data.values())
    return dumper.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=flow)


_Dumper.add_representer(str, _repr_str)
_Dumper.add_representer(list, _repr_list)
_Dumper.add_representer(dict, _repr_dict)

YAML_HEADER = "# 合成数据（虚构，仅供测试和演示）。Synthetic data, made up for tests and demos.\n"


def dump_household_yaml(record: dict[str, Any], *, header: str = YAML_HEADER) -> str:
    """Serialise a record as readable UTF-8 YAML (keys in record order)."""
    body = yaml.dump(record, Dumper=_Dumper, allow_unicode=True, sort_keys=False,
                     default_flow_style=False, width=100, indent=2)
    return header + body


def _json_default(o: Any) -> str:
    if isinstance(o, _dt.date):
        return o.isoformat()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def write_household(folder: Path, record: dict[str, Any], *, seed: str | int,
                    photo_size: tuple[int, int] = (1200, 1600), fmt: str = "yaml",
                    photo_cache: dict[Any, bytes] | None = None) -> Path:
    """Write ``household.<fmt>`` and a synthetic JPEG for every referenced ``.jpg`` path
    that does not exist yet.  Returns the record file's path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for rel in evidence_paths(record):
        target = folder / rel
        if target.exists() or not rel.lower().endswith((".jpg", ".jpeg")):
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        key = (str(seed), rel, tuple(photo_size))
        data = photo_cache.get(key) if photo_cache is not None else None
        if data is None:
            data = _jpeg_bytes(make_photo(f"{seed}:{rel}", photo_size))
            if photo_cache is not None:
                photo_cache[key] = data
        target.write_bytes(data)
    if fmt == "json":
        path = folder / "household.json"
        path.write_text(json.dumps(record, ensure_ascii=False, indent=2, default=_json_default) + "\n",
                        encoding="utf-8")
    else:
        path = folder / ("household.yml" if fmt == "yml" else "household.yaml")
        path.write_text(dump_household_yaml(record), encoding="utf-8")
    return path


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, _dt.date):
        return v.isoformat()
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def toml_dumps(data: dict[str, Any]) -> str:
    """Minimal TOML writer for flat tables of scalars and lists (enough for our files)."""
    lines: list[str] = []
    for k, v in data.items():
        if not isinstance(v, dict):
            lines.append(f"{k} = {_toml_value(v)}")
    for k, v in data.items():
        if isinstance(v, dict):
            if lines:
                lines.append("")
            lines.append(f"[{k}]")
            lines += [f"{kk} = {_toml_value(vv)}" for kk, vv in v.items()]
    return "\n".join(lines) + "\n"


_ARCHIVE_DEFAULTS: dict[str, dict[str, Any]] = {
    "archive": {"county": DEFAULT_COUNTY, "township": DEFAULT_TOWNSHIP, "year": 2025, "fonds_no": "",
                "retention": "永久", "income_threshold": 8050.0},
    "print": {"paper": "A4", "duplex": True, "sheets_per_box": 200},
    "templates": {"set": "default"},
}


def write_archive_toml(root: Path, **overrides: Any) -> Path:
    """Write ``root/archive.toml`` (§2).  Overrides are plain keys (``county="…"``,
    ``duplex=False``; placed in the section that holds them, else ``[archive]``) or whole
    sections (``print={"duplex": False}``)."""
    data = {sec: dict(vals) for sec, vals in _ARCHIVE_DEFAULTS.items()}
    for key, value in overrides.items():
        if isinstance(value, dict):
            data.setdefault(key, {}).update(value)
            continue
        for sec in data.values():
            if key in sec:
                sec[key] = value
                break
        else:
            data["archive"][key] = value
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    path = root / "archive.toml"
    path.write_text("# 合成数据（虚构）。Synthetic data.\n" + toml_dumps(data), encoding="utf-8")
    return path


def _village_name(code: str) -> str:
    tail = int(code[-3:]) if code[-3:].isdigit() else 0
    return VILLAGE_NAMES[(tail - 201) % len(VILLAGE_NAMES)] if tail >= 201 else VILLAGE_NAMES[tail % len(VILLAGE_NAMES)]


def write_village(
    root: Path,
    *,
    n: int,
    seed: int | str,
    code: str = "411621105201",
    name: str | None = None,
    photos_per_household: int = 2,
    photo_size: tuple[int, int] = (1200, 1600),
    year: int = 2025,
    used_ids: set[str] | None = None,
    groups: Sequence[str] = GROUPS_DEFAULT[:3],
    first_secretary: str | None = None,
) -> Path:
    """Write ``root/<code>_<name>/village.toml`` and ``n`` household folders.

    Household ids are ``code`` + 4 digits (0001…).  Returns the village folder.
    """
    name = name or _village_name(code)
    vdir = Path(root) / f"{code}_{name}"
    vdir.mkdir(parents=True, exist_ok=True)
    vrng = random.Random(f"village:{seed}:{code}")
    secretary = first_secretary or (vrng.choice(SURNAMES) + vrng.choice(MALE_MID))
    village = {"code": code, "name": name, "groups": list(groups), "first_secretary": secretary}
    (vdir / "village.toml").write_text(toml_dumps(village), encoding="utf-8")
    used = used_ids if used_ids is not None else set()
    surname = name[0] if name[0] in SURNAMES else None
    cache: dict[Any, bytes] = {}
    for i in range(1, n + 1):
        hid = f"{code}{i:04d}"
        rng = random.Random(f"household:{seed}:{hid}")
        sur = surname if surname and rng.random() < 0.6 else None
        rec = generate_household(rng, hid, code, year, photos=photos_per_household, groups=groups,
                                 village_name=name, used_ids=used, surname=sur)
        write_household(vdir / hid, rec, seed=f"{seed}:{hid}", photo_size=photo_size, photo_cache=cache)
    return vdir


def write_dataset(
    root: Path,
    villages: Sequence[tuple[str, str, int]] = (("411621105201", "李庄村", 10),),
    seed: int | str = 1,
    *,
    photos_per_household: int = 2,
    photo_size: tuple[int, int] = (1200, 1600),
    year: int = 2025,
    **archive_overrides: Any,
) -> Path:
    """Write a whole data directory: ``archive.toml`` plus each ``(code, name, n)`` village.
    ID numbers are unique across the data set.  Returns ``root``."""
    root = Path(root)
    write_archive_toml(root, year=year, **archive_overrides)
    used: set[str] = set()
    for code, name, n in villages:
        write_village(root, n=n, seed=seed, code=code, name=name, photos_per_household=photos_per_household,
                      photo_size=photo_size, year=year, used_ids=used)
    return root


def _distinct_jpeg(data: bytes, tag: str) -> bytes:
    """``data`` (a JPEG) with a comment segment naming ``tag`` after its SOI marker: other
    bytes (so content-addressed caches see another photo), the same picture, no re-encoding."""
    comment = tag.encode("utf-8")[:60000]
    return data[:2] + b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment + data[2:]


def write_templated_dataset(
    root: Path,
    villages: Sequence[tuple[str, str, int]] = (("411621105201", "李庄村", 10),),
    seed: int | str = 1,
    *,
    templates: int | None = None,
    photos_per_household: int = 2,
    photo_size: tuple[int, int] = (1200, 1600),
    year: int = 2025,
    **archive_overrides: Any,
) -> Path:
    """Write a data directory like :func:`write_dataset`, fast enough for county-sized sets.

    ``templates`` households (default: 40, or one per 400 households) are generated in full
    (record, photos); every other household copies one of them with another 户编号, other
    surnames, other ID numbers (same birth date and sex, valid check characters, unique in the
    data set), another phone number and house number, and its photos with a distinct comment
    segment (same picture, other bytes). Deterministic for a seed.
    """
    import re

    root = Path(root)
    write_archive_toml(root, year=year, **archive_overrides)
    total = sum(n for _, _, n in villages)
    count = max(1, min(total, templates or max(40, -(-total // 400))))
    used: set[str] = set()
    rng = random.Random(f"templated:{seed}")
    protos: list[tuple[dict[str, Any], str, dict[str, bytes]]] = []
    first_code, first_name = villages[0][0], villages[0][1] or _village_name(villages[0][0])
    cache: dict[Any, bytes] = {}
    for k in range(count):
        hid = f"{first_code}{9000 + k:04d}"
        record = generate_household(random.Random(f"household:{seed}:{hid}"), hid, first_code, year,
                                    photos=photos_per_household, village_name=first_name, used_ids=used,
                                    groups=GROUPS_DEFAULT[:3])
        photos = {}
        for rel in evidence_paths(record):
            if rel.lower().endswith((".jpg", ".jpeg")):
                key = (str(seed), k % 8, rel, tuple(photo_size))  # 8 sets of pictures are variety enough
                if key not in cache:
                    cache[key] = _jpeg_bytes(make_photo(f"{seed}:{k % 8}:{rel}", photo_size))
                photos[rel] = cache[key]
        protos.append((record, dump_household_yaml(record), photos))
    used.clear()
    for code, name, n in villages:
        name = name or _village_name(code)
        vdir = root / f"{code}_{name}"
        vdir.mkdir(parents=True, exist_ok=True)
        vrng = random.Random(f"village:{seed}:{code}")
        village = {"code": code, "name": name, "groups": list(GROUPS_DEFAULT[:3]),
                   "first_secretary": vrng.choice(SURNAMES) + vrng.choice(MALE_MID)}
        (vdir / "village.toml").write_text(toml_dumps(village), encoding="utf-8")
        for i in range(1, n + 1):
            hid = f"{code}{i:04d}"
            record, text, photos = protos[rng.randrange(count)]
            text = text.replace(record["household_id"], hid).replace(first_name, name)
            old_surname = record["members"][0]["name"][0]
            surname = rng.choice(SURNAMES)
            for member in record["members"]:
                old_id = member["id_number"]
                region, birth, seq = old_id[:6], old_id[6:14], int(old_id[14:17])
                region = code[:6] if code[:6].isdigit() else region
                for _ in range(5000):
                    seq = rng.randrange(seq % 2, 1000, 2)  # the same parity: the same sex
                    new_id = f"{region}{birth}{seq:03d}"
                    new_id += id_check_char(new_id)
                    if new_id not in used:
                        break
                else:
                    raise ValueError(f"no free ID number for birth date {birth}: use more templates")
                used.add(new_id)
                text = text.replace(old_id, new_id)
                old_name = member["name"]
                if old_name.startswith(old_surname) and surname != old_surname:
                    text = text.replace(old_name, surname + old_name[len(old_surname):])
            if record.get("phone"):
                text = text.replace(str(record["phone"]), f"1{rng.choice('35789')}{rng.randrange(10**9):09d}")
            text = re.sub(r"(address: .*?)(\d+)号", lambda m: f"{m.group(1)}{rng.randrange(1, 300)}号", text, count=1)
            folder = vdir / hid
            folder.mkdir()
            (folder / "household.yaml").write_text(text, encoding="utf-8")
            for rel, data in photos.items():
                target = folder / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(_distinct_jpeg(data, f"{hid}/{rel}"))
    return root


def iter_records(root: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Yield (file, record) for every household file under a data directory (test helper)."""
    for path in sorted(Path(root).rglob("household.*")):
        if path.suffix in (".yaml", ".yml"):
            yield path, yaml.safe_load(path.read_text(encoding="utf-8"))
        elif path.suffix == ".json":
            yield path, json.loads(path.read_text(encoding="utf-8"))
