"""(Re)create households_sample/ deterministically (合成样例数据).

    python tools/make_sample.py [OUT]        # default: households_sample/ next to tools/

Everything is synthetic: the generator in archive_builder/synthetic.py makes the bulk of
each household, and the hand-curated edits below add the edge cases the sample must cover
(生僻字 names, 20+ measures, long and markup-like notes, odd evidence files …).  Running the
script twice gives identical bytes.
"""

from __future__ import annotations

import datetime as dt
import random
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from archive_builder import synthetic as syn

SEED = "households_sample-v1"
YEAR = 2025
COUNTY = "清河县"
TOWNSHIP = "大李庄乡"
PHOTO_SIZE = (1200, 1600)
D = dt.date


class Ctx:
    """What a curate function may use: the record's folder and a seeded rng."""

    def __init__(self, folder: Path, hid: str, rng: random.Random) -> None:
        self.folder, self.hid, self.rng = folder, hid, rng

    def add(self, rel: str, data: bytes) -> str:
        target = self.folder / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        return rel


def _replace_text(obj: Any, old: str, new: str) -> Any:
    if isinstance(obj, str):
        return obj.replace(old, new)
    if isinstance(obj, list):
        return [_replace_text(v, old, new) for v in obj]
    if isinstance(obj, dict):
        return {k: _replace_text(v, old, new) for k, v in obj.items()}
    return obj


def rename(rec: dict, index: int, given: str) -> dict:
    """Give member ``index`` a new given name (surname kept), also in free text."""
    old = rec["members"][index]["name"]
    new = old[0] + given
    rec = _replace_text(rec, old, new) if old != new else rec
    rec["members"][index]["name"] = new
    return rec


def member_index(rec: dict, *relations: str) -> int:
    for i, m in enumerate(rec["members"]):
        if m["relation"] in relations:
            return i
    raise LookupError(relations)


def set_monitor(
    rec: dict,
    rng: random.Random,
    *,
    identified: dt.date,
    eliminated: bool,
    method: str | None = None,
    on: dt.date | None = None,
    risks: list[str] | None = None,
) -> None:
    mon = rec["monitor"]
    mon["identified_on"] = identified
    if risks:
        mon["risks"] = risks
    mon["eliminated"] = eliminated
    mon.pop("eliminate_method", None)
    mon.pop("eliminated_on", None)
    # rebuild the procedure: identification (+ exit for former poor households) + elimination
    keep = [p for p in rec["procedure"] if p["date"] < D(2021, 1, 1)]
    app = identified - dt.timedelta(days=25)
    rec["application"]["date"] = app
    proc = keep + syn._procedure(rng, app, "识别", monitor=True)
    if eliminated:
        assert method and on
        mon["eliminate_method"] = method
        mon["eliminated_on"] = on
        proc += syn._procedure(rng, on - dt.timedelta(days=30), "消除", monitor=True)
    rec["procedure"] = proc


def add_evidence(rec: dict, entry: Any) -> None:
    rec.setdefault("evidence", []).append(entry)


# ---------------------------------------------------------------------------
# Hand-curated households
# ---------------------------------------------------------------------------

LONG_NOTES = """\
一、关于家庭人口变化的说明：户主之母长期随户主共同生活，2024年“回头看”时已与公安户籍信息核对一致；孙辈出生后均及时办理了户口登记并纳入家庭成员，家庭成员信息已在系统中同步更新。

二、关于收入核算的说明：2024年“回头看”排查中，逐人核实在外务工成员的务工时间和收入，工资性收入按务工证明和银行流水据实计算；村级光伏收益分配和企业带贫分红计入财产性收入，未重复计入转移性收入。

三、关于小额信贷的说明：2021年4月申请扶贫小额信贷5万元，用于发展肉牛养殖，已于2024年3月按期全额还款，无逾期记录，还款凭证附后。

四、关于档卡整改的说明：2025年县级互查档卡时指出“帮扶措施台账部分年份缺少户主签字”，已逐项补签并附签名页；走访记录中个别日期笔误已更正，原记录保留备查。

以上情况属实，特此说明。"""


def curate_big_family(rec: dict, ctx: Ctx) -> dict:
    """9 members, 20+ measures over five years, long notes, camera photo (EXIF 6), PDFs."""
    rng = ctx.rng
    head = rec["members"][0]
    kid = member_index(rec, "之孙子", "之孙女")
    rec = rename(rec, kid, "犇犇" if rec["members"][kid]["sex"] == "男" else "喆")
    extra = []
    plan = [
        (2021, "小额信贷", None),
        (2021, "贴息", None),
        (2021, "产业奖补", None),
        (2021, "分红", None),
        (2021, "慰问", None),
        (2022, "分红", None),
        (2022, "贴息", None),
        (2022, "改厕", None),
        (2022, "家医签约", None),
        (2022, "交通补贴", None),
        (2023, "分红", None),
        (2023, "贴息", None),
        (2023, "公益岗", None),
        (2023, "技能培训", None),
        (2023, "自来水", None),
        (2024, "分红", None),
        (2024, "公益岗", None),
        (2024, "稳岗补贴", None),
        (2024, "消费帮扶", None),
        (2024, "道路", f"{VILLAGE1}村民委员会"),
        (2025, "分红", None),
        (2025, "公益岗", None),
        (2025, "慰问", None),
        (2025, "医疗救助", None),
    ]
    for year, key, provider in plan:
        extra.append(syn._measure(rng, key, year, D(YEAR, 10, 31), provider=provider))
    rec["measures"] = sorted(
        rec["measures"] + extra, key=lambda m: (m["date"], m["category"], m["item"])
    )
    rec["notes"] = LONG_NOTES
    cam = ctx.add(
        "照片/IMG_20240315_093012.jpg",
        syn.oriented_jpeg(f"{ctx.hid}:cam6", (3000, 4000), 6),
    )
    bank_rows = []
    balance = 1200.00
    for k in range(66):
        d = D(2024, 1, 3) + dt.timedelta(days=k * 5)
        what, amt = [
            ("公益岗补贴", 300.00),
            ("务工工资", 4200.00),
            ("企业带贫分红", 800.00),
            ("取现", -1500.00),
            ("消费", -268.50),
            ("耕地地力保护补贴", 356.42),
        ][k % 6]
        balance = round(balance + amt, 2)
        bank_rows.append(
            f"{d:%Y-%m-%d}    {what:<10}    {amt:>10.2f}    {balance:>10.2f}"
        )
    header = [
        f"户名：{head['name']}    账号：6228 **** **** 3071    币种：人民币",
        "交易日期      摘要              金额          余额",
        "",
    ]
    pages = [
        header + bank_rows[0:28],
        bank_rows[28:58],
        bank_rows[58:] + ["", "（本流水为合成测试数据）"],
    ]
    bank = ctx.add(
        "佐证材料/银行流水_2024.pdf",
        syn.pdf_document_bytes("清河县农村商业银行 个人账户交易明细", pages),
    )
    agreement_pages = [
        [
            "借款人：" + head["name"],
            "贷款人：清河县农村商业银行大李庄支行",
            "",
            "第一条  借款金额：人民币伍万元整（¥50000.00）。",
            "第二条  借款用途：发展肉牛养殖。",
            "第三条  借款期限：自2021年4月12日至2024年4月11日。",
            "第四条  借款利率：执行贷款市场报价利率，由县财政全额贴息。",
            "第五条  还款方式：按季付息，到期一次还本。",
        ],
        [
            "第六条  借款人应按约定用途使用借款，不得挪作他用。",
            "第七条  本协议一式三份，借款人、贷款人、乡政府各执一份。",
            "",
            "借款人（签字、手印）：____________",
            "贷款人（盖章）：____________",
            "",
            "签订日期：2021年4月12日",
            "",
            "（合成测试数据，非真实协议）",
        ],
    ]
    agreement = ctx.add(
        "佐证材料/小额信贷借款协议.pdf",
        syn.pdf_document_bytes("扶贫小额信贷借款协议", agreement_pages),
    )
    loan = next(m for m in rec["measures"] if m["item"] == "小额信贷")
    loan["amount"] = 50000
    loan["evidence"] = [agreement]
    rec["measures"][-1].setdefault("evidence", []).append(bank)
    add_evidence(
        rec,
        {
            "file": cam,
            "type": "照片",
            "title": "户主在养牛棚前（手机拍摄，EXIF旋转6）",
            "date": D(2024, 3, 15),
            "sensitive": False,
        },
    )
    add_evidence(
        rec,
        {
            "file": bank,
            "type": "银行流水",
            "title": "2024年银行流水（3页）",
            "date": D(2024, 12, 31),
            "sensitive": True,
        },
    )
    add_evidence(
        rec,
        {
            "file": agreement,
            "type": "协议",
            "title": "小额信贷借款协议（2页）",
            "date": D(2021, 4, 12),
            "sensitive": True,
        },
    )
    rec["income"] = [
        syn._income(rng, rec["members"], y, rec.get("poverty_attribute"))
        for y in (2023, 2024, 2025)
    ]
    rec["income"][1]["members_counted"] = len(rec["members"]) - 1
    return rec


def curate_tekun_rare(rec: dict, ctx: Ctx) -> dict:
    rec = rename(rec, 0, "堃" if rec["members"][0]["sex"] == "男" else "喆")
    rec["members"][0]["health"] = ["长期慢性病", "残疾"]
    rec["members"][0]["labour"] = "丧失劳动力"
    idcard = ctx.add(
        "身份证.jpg",
        syn._jpeg_bytes(
            syn.scan_page(f"{ctx.hid}:id", (856, 540), mode="RGB", lines=5)
        ),
    )
    add_evidence(
        rec,
        {
            "file": idcard,
            "type": "身份证",
            "title": "户主身份证复印件",
            "sensitive": True,
        },
    )
    return rec


def curate_markup_notes(rec: dict, ctx: Ctx) -> dict:
    rec["notes"] = (
        "收入<8050元的核实说明 & 补充 {{待定}}：经核实，2024年家庭人均纯收入>8050元，<script>不是代码</script>。"
    )
    card = ctx.add("低保证.jpg", syn.cmyk_jpeg(f"{ctx.hid}:dibao"))
    add_evidence(
        rec,
        {
            "file": card,
            "type": "低保证",
            "title": "农村低保证（CMYK扫描件）",
            "date": D(2022, 6, 1),
            "sensitive": True,
        },
    )
    return rec


def curate_application_text(rec: dict, ctx: Ctx) -> dict:
    head = rec["members"][0]["name"]
    rec["application"]["text"] = (
        f"本人{head}，家住{COUNTY}{TOWNSHIP}{VILLAGE1}{rec.get('group', '')}，家庭人口{len(rec['members'])}人。"
        "因家中缺少劳动力、收入来源单一，生活困难，特申请纳入建档立卡贫困户，请村委会和乡政府予以审核。\n\n"
        "本人承诺所报家庭收入、人口等情况真实，如有虚假，自愿承担责任。"
    )
    return rec


def curate_unsigned(rec: dict, ctx: Ctx) -> dict:
    rec["application"]["signed"] = False
    rec["notes"] = (
        "申请书户主外出务工期间由配偶代填，户主返乡后补签，补签页见佐证材料。"
    )
    return rec


def curate_rare_child(rec: dict, ctx: Ctx) -> dict:
    i = member_index(rec, "之子", "之女")
    return rename(rec, i, "𠮷祥" if rec["members"][i]["sex"] == "男" else "𠮷雅")


def curate_signature(rec: dict, ctx: Ctx) -> dict:
    sig = ctx.add("签名页.png", syn.signature_png(ctx.hid))
    add_evidence(
        rec,
        {
            "file": sig,
            "type": "签名页",
            "title": "户主签名及手印（透明背景PNG）",
            "date": D(2025, 3, 2),
            "sensitive": False,
        },
    )
    notice = "照片/公示现场.jpg"
    for p in rec["procedure"]:
        if p["kind"] == "公示":
            p["evidence"] = [notice]
            break
    add_evidence(rec, notice)
    return rec


def curate_monitor_elim_natural(rec: dict, ctx: Ctx) -> dict:
    set_monitor(
        rec,
        ctx.rng,
        identified=D(2022, 4, 18),
        eliminated=True,
        method="自然消除",
        on=D(2023, 11, 20),
    )
    return rec


def curate_monitor_open(rec: dict, ctx: Ctx) -> dict:
    set_monitor(rec, ctx.rng, identified=D(2024, 7, 9), eliminated=False)
    return rec


def curate_three_incomes(rec: dict, ctx: Ctx) -> dict:
    rec["income"] = [
        syn._income(ctx.rng, rec["members"], y, rec.get("poverty_attribute"))
        for y in (2023, 2024, 2025)
    ]
    rec["income"][2]["members_counted"] = max(1, len(rec["members"]) - 1)
    rec["income"][0]["transfer"] = dict(
        rec["income"][0].get("transfer", {}), 临时救助=1234.56
    )
    return rec


def curate_returned(rec: dict, ctx: Ctx) -> dict:
    """返贫 household: camera photo with EXIF orientation 8, 𠮷 in the head's name."""
    rec = rename(rec, 0, "𠮷庆" if rec["members"][0]["sex"] == "男" else "𠮷雅")
    set_monitor(
        rec,
        ctx.rng,
        identified=D(2023, 2, 16),
        eliminated=False,
        risks=["因病", "因务工就业不稳"],
    )
    cam = ctx.add(
        "照片/IMG_20230301_161544.jpg",
        syn.oriented_jpeg(f"{ctx.hid}:cam8", (3000, 4000), 8),
    )
    add_evidence(
        rec,
        {
            "file": cam,
            "type": "照片",
            "title": "入户核查照片（手机拍摄，EXIF旋转8）",
            "date": D(2023, 3, 1),
            "sensitive": False,
        },
    )
    for p in rec["procedure"]:
        if p["kind"] == "入户核查" and p["date"] >= D(2023, 1, 1):
            p["evidence"] = [cam]
            break
    return rec


def curate_medical(rec: dict, ctx: Ctx) -> dict:
    i = member_index(rec, "户主")
    rec["members"][i]["health"] = ["患有大病"]
    rec["members"][i]["labour"] = "弱劳动力或半劳动力"
    rec = rename(rec, i, "喆")
    name = rec["members"][i]["name"]
    set_monitor(
        rec,
        ctx.rng,
        identified=D(2022, 9, 5),
        eliminated=True,
        method="帮扶消除",
        on=D(2024, 6, 28),
        risks=["因病"],
    )
    rec["causes"] = {
        "main": "因病",
        "others": ["缺资金"],
        "note": "户主患病住院治疗，医疗支出大。",
    }
    pages = [
        [
            f"患者姓名：{name}    性别：{rec['members'][i]['sex']}    医保类型：城乡居民医保",
            "住院科室：心血管内科    住院日期：2022-08-11 至 2022-08-29",
            "",
            "项目              金额（元）",
            "床位费              540.00",
            "检查费             3260.50",
            "化验费             1875.20",
            "治疗费             9820.00",
            "药品费            12468.35",
            "材料费            15230.00",
            "合计              43194.05",
        ],
        [
            "基本医保报销      27516.22",
            "大病保险报销       6830.18",
            "医疗救助           4560.00",
            "个人自付           4287.65",
            "",
            "收费单位：清河县人民医院（盖章）",
            "",
            "（合成测试数据，非真实票据）",
        ],
    ]
    bill = ctx.add(
        "医疗票据/住院收费票据_2022.pdf",
        syn.pdf_document_bytes("河南省医疗住院收费票据", pages),
    )
    add_evidence(
        rec,
        {
            "file": bill,
            "type": "医疗票据",
            "title": "2022年住院收费票据及结算单（2页）",
            "date": D(2022, 8, 29),
            "sensitive": True,
        },
    )
    m = syn._measure(ctx.rng, "医疗救助", 2022, D(YEAR, 10, 31))
    m.update(amount=4560, date=D(2022, 9, 20), evidence=[bill])
    rec["measures"] = sorted(
        rec["measures"] + [m], key=lambda x: (x["date"], x["category"])
    )
    return rec


def curate_disaster(rec: dict, ctx: Ctx) -> dict:
    set_monitor(
        rec,
        ctx.rng,
        identified=D(2023, 8, 2),
        eliminated=False,
        risks=["因灾", "住房出现安全问题"],
    )
    rec["living"]["dangerous_house"] = "C级"
    tif = ctx.add("户口簿.tif", syn.multipage_tiff_bytes(f"{ctx.hid}:hukou", 3))
    add_evidence(
        rec,
        {
            "file": tif,
            "type": "户口簿",
            "title": "户口簿复印件（3页TIFF）",
            "sensitive": True,
        },
    )
    rec["notes"] = "2023年7月暴雨致房屋后墙开裂，经鉴定为C级危房，已纳入危房改造计划。"
    return rec


def curate_house_16bit(rec: dict, ctx: Ctx) -> dict:
    set_monitor(
        rec,
        ctx.rng,
        identified=D(2021, 10, 12),
        eliminated=True,
        method="帮扶消除",
        on=D(2023, 3, 8),
    )
    scan = ctx.add("房屋鉴定.png", syn.gray16_png(f"{ctx.hid}:house"))
    add_evidence(
        rec,
        {
            "file": scan,
            "type": "房屋鉴定",
            "title": "农村住房安全性鉴定表（16位灰度PNG）",
            "date": D(2021, 11, 3),
            "sensitive": False,
        },
    )
    cam = ctx.add(
        "照片/DSC_0042.JPG", syn.oriented_jpeg(f"{ctx.hid}:cam1", (3000, 4000), 1)
    )
    add_evidence(
        rec,
        {
            "file": cam,
            "type": "照片",
            "title": "房屋加固后外景（相机原图）",
            "date": D(2022, 5, 20),
        },
    )
    return rec


def curate_large_camera(rec: dict, ctx: Ctx) -> dict:
    rec = rename(rec, 0, "堃" if rec["members"][0]["sex"] == "男" else "喆")
    cam = ctx.add(
        "照片/IMG_4608.jpg",
        syn.oriented_jpeg(f"{ctx.hid}:big", (3456, 4608), 1, quality=88),
    )
    add_evidence(rec, cam)
    work = ctx.add(
        "务工证明.jpg",
        syn._jpeg_bytes(syn.scan_page(f"{ctx.hid}:work", (1240, 1754), mode="RGB")),
    )
    add_evidence(
        rec,
        {
            "file": work,
            "type": "务工证明",
            "title": "务工证明",
            "date": D(2024, 12, 20),
        },
    )
    return rec


def curate_dividend(rec: dict, ctx: Ctx) -> dict:
    proof = ctx.add(
        "分红凭证.jpg",
        syn._jpeg_bytes(
            syn.scan_page(f"{ctx.hid}:div", (1240, 877), mode="RGB", lines=8)
        ),
    )
    add_evidence(
        rec,
        {
            "file": proof,
            "type": "分红凭证",
            "title": "企业带贫分红领取凭证",
            "date": D(2025, 1, 18),
        },
    )
    m = syn._measure(ctx.rng, "分红", 2025, D(YEAR, 10, 31))
    m.update(amount=800, date=D(2025, 1, 18), evidence=[proof])
    rec["measures"].append(m)
    rec["measures"].sort(key=lambda x: (x["date"], x["category"]))
    return rec


def curate_students(rec: dict, ctx: Ctx) -> dict:
    i = member_index(rec, "之子", "之女", "之孙子", "之孙女")
    rec = rename(rec, i, "𠮷祥" if rec["members"][i]["sex"] == "男" else "𠮷雅")
    proof = ctx.add(
        "学籍证明.jpg",
        syn._jpeg_bytes(
            syn.scan_page(f"{ctx.hid}:xueji", (1240, 1754), mode="RGB", lines=14)
        ),
    )
    add_evidence(
        rec,
        {
            "file": proof,
            "type": "学籍证明",
            "title": "在校学籍证明",
            "date": D(2024, 9, 10),
            "sensitive": True,
        },
    )
    return rec


# ---------------------------------------------------------------------------
# The township
# ---------------------------------------------------------------------------

VILLAGE1, VILLAGE2, VILLAGE3 = "李庄村", "王楼村", "前进村"

# (size, household_type, poverty_attribute, poverty_status, monitor_category, options)
# options: photos, fmt, folder_suffix (append 户主 name), curate, income_years
Spec = tuple[int, str, Any, Any, Any, dict]
T, G, M = "脱贫户", "一般农户", "防止返贫致贫对象"
YB, DB, TK = "一般贫困户", "低保贫困户", "特困供养贫困户"
XS, BX = "已脱贫(享受政策)", "已脱贫(不再享受政策)"

VILLAGES: list[tuple[str, str, list[str], str, list[Spec]]] = [
    (
        "411621105201",
        VILLAGE1,
        ["第一村民组", "第二村民组", "第三村民组", "第四村民组"],
        "赵建伟",
        [
            (
                9,
                T,
                YB,
                XS,
                None,
                {"curate": curate_big_family, "named_folder": True, "photos": 2},
            ),
            (1, T, TK, XS, None, {"curate": curate_tekun_rare, "named_folder": True}),
            (5, T, DB, XS, None, {"curate": curate_markup_notes, "photos": 2}),
            (3, "贫困户", YB, "未脱贫", None, {"curate": curate_application_text}),
            (2, "贫困户", DB, "预脱贫", None, {}),
            (4, G, None, None, None, {"fmt": "json"}),
            (2, T, YB, BX, None, {"curate": curate_unsigned}),
            (6, M, YB, XS, "脱贫不稳定户", {"photos": 2}),
            (3, M, None, None, "边缘易致贫户", {"curate": curate_monitor_open}),
            (4, T, YB, XS, None, {"curate": curate_rare_child, "photos": 2}),
            (7, T, DB, XS, None, {}),
            (1, T, TK, BX, None, {}),
            (5, M, None, None, "突发严重困难户", {}),
            (3, T, YB, XS, None, {"curate": curate_signature}),
            (4, G, None, None, None, {}),
            (2, M, None, None, "边缘易致贫户", {"curate": curate_monitor_elim_natural}),
            (8, T, YB, XS, None, {"curate": curate_students, "photos": 2}),
            (3, T, YB, XS, None, {"curate": curate_three_incomes}),
        ],
    ),
    (
        "411621105202",
        VILLAGE2,
        ["第一村民组", "第二村民组", "第三村民组"],
        "孙慧敏",
        [
            (
                6,
                M,
                YB,
                "返贫",
                "脱贫不稳定户",
                {"curate": curate_returned, "photos": 2},
            ),
            (7, M, None, None, "边缘易致贫户", {"curate": curate_medical}),
            (8, M, None, None, "突发严重困难户", {"curate": curate_disaster}),
            (4, T, YB, XS, None, {"fmt": "yml", "photos": 2}),
            (2, T, YB, BX, None, {}),
            (3, T, DB, XS, None, {"curate": curate_dividend}),
            (5, T, YB, XS, None, {"photos": 2}),
            (1, T, TK, XS, None, {}),
            (4, M, YB, XS, "脱贫不稳定户", {}),
            (9, T, YB, XS, None, {"curate": curate_students}),
            (2, G, None, None, None, {}),
            (3, M, None, None, "边缘易致贫户", {}),
            (6, T, DB, BX, None, {"photos": 2}),
            (4, T, YB, XS, None, {}),
            (5, M, YB, XS, "脱贫不稳定户", {"curate": curate_monitor_open}),
            (3, T, YB, XS, None, {}),
        ],
    ),
    (
        "411621105203",
        VILLAGE3,
        ["第一村民组", "第二村民组", "第三村民组"],
        "周海涛",
        [
            (5, M, None, None, "边缘易致贫户", {"curate": curate_house_16bit}),
            (4, T, YB, XS, None, {"curate": curate_large_camera, "named_folder": True}),
            (1, T, TK, XS, None, {}),
            (2, T, DB, XS, None, {"photos": 2}),
            (3, T, YB, BX, None, {}),
            (4, M, None, None, "突发严重困难户", {}),
            (5, T, YB, XS, None, {}),
            (6, M, YB, XS, "脱贫不稳定户", {"photos": 2}),
            (7, T, YB, XS, None, {"curate": curate_dividend}),
            (2, G, None, None, None, {}),
            (3, T, DB, XS, None, {}),
            (4, T, YB, XS, None, {}),
            (8, T, YB, BX, None, {"photos": 2}),
            (9, M, YB, XS, "脱贫不稳定户", {}),
        ],
    ),
]


README = """\
# households_sample — 合成样例数据

**本目录中的全部数据均为虚构的合成数据**（姓名、身份证号、电话、金额、日期都是编造的，身份证号
仅满足 GB 11643 校验规则），用于测试、演示和基准。不要手工修改：请修改 `tools/make_sample.py`
后重新运行 `python tools/make_sample.py`。同一环境下重复运行，生成的文件逐字节相同
（图片和 PDF 的字节取决于 Pillow、reportlab 的版本）。

县/乡：{county}{township}（虚构）。行政村：

{villages}

覆盖的情形：

- 户类型 脱贫户、贫困户、一般农户、防止返贫致贫对象；贫困户属性 一般贫困户、低保贫困户、特困供养贫困户
  （一般农户和边缘易致贫户、突发严重困难户不填贫困户属性）；脱贫状态 未脱贫、预脱贫、已脱贫(享受政策)、
  已脱贫(不再享受政策)、返贫。
- 监测类别 脱贫不稳定户、边缘易致贫户、突发严重困难户，风险已消除（帮扶消除、自然消除）和未消除。
- 家庭人口 1 至 9 人各有；在校生、残疾、慢性病、大病成员；低保、特困供养标记；参保情况。
- 姓名含 GB 2312 以外的字：堃、喆、犇、𠮷（U+20BB7，扩展B区）。
- 一户 20 条以上帮扶措施（表格跨页）；多段落的户说明；含 `<`、`&`、`>`、`{{{{ }}}}` 的户说明；
  自定义申请书正文、未签名申请书；两年和三年收入台账、`members_counted`。
- 记录文件格式：`household.yaml`，以及一户 `household.json`、一户 `household.yml`；部分户文件夹名带户主姓名。
- 佐证材料：字符串和映射两种写法，措施、走访、程序中引用的佐证；中文文件名。

特殊佐证文件（全部由 `archive_builder/synthetic.py` 用 Pillow / reportlab 生成，无真实图像）：
3000×4000 及 3456×4608 的相机原图 JPEG，EXIF 方向 6 和 8 的照片（画面中大箭头指向正上方即为摆正），
CMYK JPEG（低保证），带透明通道的 PNG（签名页），16 位灰度 PNG（房屋鉴定），3 页 TIFF（户口簿），
多页 PDF（银行流水 3 页、小额信贷协议 2 页、医疗票据 2 页）。样例中没有损坏的文件，损坏文件的情形由测试生成。

---

**All data here is synthetic and made up** (names, ID numbers with valid GB 11643 check
characters, phones, amounts, dates), generated by `tools/make_sample.py` from
`archive_builder/synthetic.py` plus hand-curated edits; do not edit by hand — change the script
and re-run it (output is byte-for-byte deterministic for given Pillow/reportlab versions). {households} households in {n_villages}
villages of the fictional {county}{township}. It covers every 贫困户属性, 脱贫状态 and 监测 category,
households of 1–9 members, rare characters (堃 喆 犇 𠮷), a household with 20+ measures, long
and markup-like notes, `.json`/`.yml` records, and odd evidence files: camera-size JPEGs, EXIF
orientation 6/8 (the big arrow points up when shown upright), CMYK JPEG, RGBA PNG, 16-bit PNG,
a 3-page TIFF and multi-page PDFs, all drawn by Pillow/reportlab (no real images). Broken-file
cases are made by the tests, not stored here.
"""


def build(out: Path) -> tuple[int, int]:
    """Write the whole sample into ``out`` (replaced if it exists). Returns (villages, households)."""
    out = Path(out)
    if out.exists():
        if any(out.iterdir()) and not (out / "archive.toml").exists():
            raise SystemExit(f"拒绝覆盖：{out} 不是样例数据目录（缺少 archive.toml）")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    syn.write_archive_toml(
        out,
        county=COUNTY,
        township=TOWNSHIP,
        year=YEAR,
        fonds_no="J031",
        income_threshold=8050.0,
    )
    used: set[str] = set()
    total = 0
    lines = []
    for code, vname, groups, secretary, specs in VILLAGES:
        vdir = out / f"{code}_{vname}"
        vdir.mkdir()
        (vdir / "village.toml").write_text(
            "# 合成数据（虚构）。Synthetic data.\n"
            + syn.toml_dumps(
                {
                    "code": code,
                    "name": vname,
                    "groups": groups,
                    "first_secretary": secretary,
                    "supervision_phone": f"0394-62{code[-3:]}12",
                }
            ),
            encoding="utf-8",
        )
        lines.append(f"- {vname}（{code}）：{len(specs)} 户")
        for i, (size, htype, attr, status, cat, opts) in enumerate(specs, start=1):
            hid = f"{code}{i:04d}"
            rng = random.Random(f"{SEED}:{hid}")
            surname = (
                vname[0] if rng.random() < 0.6 and vname[0] in syn.SURNAMES else None
            )
            rec = syn.generate_household(
                rng,
                hid,
                code,
                YEAR,
                photos=opts.get("photos", 1),
                size=size,
                household_type=htype,
                poverty_attribute=attr,
                poverty_status=status,
                monitor_category=cat,
                surname=surname,
                groups=groups,
                village_name=vname,
                used_ids=used,
                evidence_dir="照片",
            )
            staging = vdir / hid
            curate: Callable[[dict, Ctx], dict] | None = opts.get("curate")
            if curate is not None:
                rec = curate(
                    rec, Ctx(staging, hid, random.Random(f"{SEED}:curate:{hid}"))
                )
            folder = staging
            if opts.get("named_folder"):
                folder = vdir / f"{hid}_{rec['members'][0]['name']}"
                if staging.exists():
                    staging.rename(folder)
            syn.write_household(
                folder,
                rec,
                seed=f"{SEED}:{hid}",
                photo_size=PHOTO_SIZE,
                fmt=opts.get("fmt", "yaml"),
            )
            total += 1
    (out / "README.md").write_text(
        README.format(
            county=COUNTY,
            township=TOWNSHIP,
            villages="\n".join(lines),
            households=total,
            n_villages=len(VILLAGES),
        ),
        encoding="utf-8",
    )
    return len(VILLAGES), total


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    out = (
        Path(argv[0])
        if argv
        else Path(__file__).resolve().parents[1] / "households_sample"
    )
    villages, households = build(out)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(
        f"已生成样例数据：{out}（{villages} 个村，{households} 户，{size / 1e6:.1f} MB）"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
