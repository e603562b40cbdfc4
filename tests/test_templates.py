"""Template sets: search path, sandboxing, escaping, XML → document model, the context."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from archive_builder import document as dm
from archive_builder import templatejinja as jinja
from archive_builder import templates as t
from archive_builder.context import build_context, evidence_items, income_year
from archive_builder.errors import TemplateError

ARCHIVE = {"county": "清河县", "township": "大李庄乡", "year": 2025, "retention": "永久", "income_threshold": 8050}
VILLAGE = {"name": "冯老村", "code": "411621105201"}


def record(**extra):
    base = {
        "household_id": "4116211052010001",
        "group": "第一村民组",
        "household_type": "脱贫户",
        "causes": {"main": "因病", "others": ["缺技术"]},
        "members": [
            {"name": "张堃", "id_number": "11010519491231002X", "relation": "户主"},
            {"name": "张𠮷", "id_number": "440524188001010014", "relation": "之子"},
        ],
    }
    base.update(extra)
    return base


def render(rec, tset=None, folder=Path("/tmp/hh")):
    tset = tset or t.resolve_set("default")
    ctx = build_context(rec, folder=folder, archive=ARCHIVE, village=VILLAGE, content_hash="ab" * 32, version=2)
    allowed = frozenset(e["source"] for e in ctx["evidence_items"])
    return t.render_sections(tset, ctx, allowed_sources=allowed)


def texts(section: dm.Section) -> str:
    out = []
    for block in section.blocks:
        for value in vars(block).values():
            out.append(str(value))
    return " ".join(out)


def test_builtin_set_found_and_ordered():
    tset = t.resolve_set("default")
    keys = [s.key for s in tset.sections]
    assert keys[:4] == ["cover", "contents", "basic", "members"]
    assert keys[-2:] == ["evidence", "remarks"]
    assert tset.page.prose_lines == 22 and tset.page.prose_chars == 28


def test_sections_without_data_are_left_out_or_print_none():
    sections = render(record())
    keys = [s.key for s in sections]
    assert "measures" not in keys and "visits" not in keys
    income = next(s for s in sections if s.key == "income")  # if_empty = "none"
    assert any(isinstance(b, dm.Paragraph) and b.text == "无" for b in income.blocks)


def test_separator_on_first_section_of_each_group():
    sections = render(record(measures=[{"year": 2024, "category": "产业帮扶", "item": "分红", "amount": "800"}]))
    separators = [(s.key, s.separator) for s in sections if s.separator]
    assert separators[:2] == [("basic", "识别认定"), ("causes", "致贫原因与帮扶")]
    assert sum(1 for s in sections if s.separator == "识别认定") == 1


def test_data_prints_literally():
    hostile = "<b>&amp;{{x}}</b> {% if %}"
    sections = render(record(notes=hostile, address=hostile))
    notes = next(s for s in sections if s.key == "notes")
    assert any(isinstance(b, dm.Paragraph) and b.text == hostile for b in notes.blocks)
    basic = next(s for s in sections if s.key == "basic")
    assert ("家庭住址", hostile) in basic.blocks[1].rows


def test_income_uses_decimal_and_threshold():
    year = income_year(
        {"year": 2024, "wage": {"务工": "0.10"}, "business": {"种植": "0.20"}, "costs": {"x": "0.05"}, "members_counted": 3},
        members=5,
        threshold=Decimal(8050),
    )
    assert year.net == Decimal("0.25")
    assert year.per_capita == Decimal("0.08")  # 0.0833… rounded half up to cents
    assert year.members_counted == 3 and year.below_threshold


def test_evidence_items_collected_once_in_record_order(tmp_path):
    rec = record(
        evidence=["a.jpg", {"file": "b.pdf", "type": "银行流水", "title": "银行流水"}],
        measures=[{"year": 2024, "category": "产业帮扶", "evidence": ["a.jpg", "c.jpg"]}],
    )
    items = evidence_items(rec, tmp_path)
    assert [i["display"] for i in items] == ["a.jpg", "b.pdf", "c.jpg"]
    assert items[1]["kind"] == "银行流水"
    assert items[0]["source"] == str((tmp_path / "a.jpg").resolve())


def test_override_in_data_dir_extends_builtin(tmp_path):
    sections_dir = tmp_path / "templates" / "sections"
    sections_dir.mkdir(parents=True)
    (sections_dir / "notes.xml").write_text(
        '{% extends "default:sections/notes.xml" %}', encoding="utf-8"
    )
    (sections_dir / "remarks.xml").write_text(
        '<section title="备考表"><title>县定备考表</title></section>', encoding="utf-8"
    )
    tset = t.resolve_set("default", data_dir=tmp_path)
    assert tset.search_path[0] == tmp_path / "templates"
    sections = render(record(notes="说明"), tset)
    remarks = next(s for s in sections if s.key == "remarks")
    assert remarks.blocks == (dm.Title("县定备考表"),)
    assert any(isinstance(b, dm.Paragraph) and b.text == "说明" for b in next(s for s in sections if s.key == "notes").blocks)


def test_village_override_wins_over_data_dir(tmp_path):
    for folder, text in ((tmp_path / "templates", "乡"), (tmp_path / "v" / "templates", "村")):
        (folder / "sections").mkdir(parents=True)
        (folder / "sections" / "remarks.xml").write_text(
            f'<section title="备考表"><title>{text}</title></section>', encoding="utf-8"
        )
    tset = t.resolve_set("default", data_dir=tmp_path, village_dir=tmp_path / "v")
    remarks = next(s for s in render(record(), tset) if s.key == "remarks")
    assert remarks.blocks == (dm.Title("村"),)


def test_missing_template_lists_every_place_searched(tmp_path):
    (tmp_path / "templates").mkdir()
    tset = t.resolve_set("default", data_dir=tmp_path)
    with pytest.raises(TemplateError) as info:
        t.render_section_xml(tset, "sections/nope.xml", {})
    assert "找不到模板 sections/nope.xml" in info.value.message
    assert str(tmp_path / "templates" / "sections/nope.xml") in info.value.hint
    assert "default" in info.value.hint


def test_unknown_set_names_candidates(tmp_path):
    with pytest.raises(TemplateError) as info:
        t.resolve_set("县标准", data_dir=tmp_path)
    assert "找不到模板集「县标准」" in info.value.message
    assert str(tmp_path / "templates" / "县标准") in info.value.hint


def test_sandbox_blocks_python_internals(tmp_path):
    sections_dir = tmp_path / "templates" / "sections"
    sections_dir.mkdir(parents=True)
    (sections_dir / "remarks.xml").write_text(
        "<section><p>{{ hh.__class__.__mro__[1].__subclasses__() }}</p></section>", encoding="utf-8"
    )
    tset = t.resolve_set("default", data_dir=tmp_path)
    with pytest.raises(TemplateError):
        render(record(), tset)


def test_broken_markup_and_unknown_tag_are_template_errors(tmp_path):
    sections_dir = tmp_path / "templates" / "sections"
    sections_dir.mkdir(parents=True)
    (sections_dir / "remarks.xml").write_text("<section><p>未闭合</section>", encoding="utf-8")
    tset = t.resolve_set("default", data_dir=tmp_path)
    with pytest.raises(TemplateError, match="不是有效的 XML"):
        render(record(), tset)
    (sections_dir / "remarks.xml").write_text("<section><blink>x</blink></section>", encoding="utf-8")
    tset = t.resolve_set("default", data_dir=tmp_path / ".." / tmp_path.name)
    with pytest.raises(TemplateError, match="未知标记 <blink>"):
        render(record(), tset)


def test_template_cannot_pull_files_from_outside_the_household(tmp_path):
    sections_dir = tmp_path / "templates" / "sections"
    sections_dir.mkdir(parents=True)
    (sections_dir / "evidence.xml").write_text(
        '<section layout="evidence"><evidence source="/etc/passwd" display="x"/></section>', encoding="utf-8"
    )
    tset = t.resolve_set("default", data_dir=tmp_path)
    with pytest.raises(TemplateError, match="不属于本户"):
        render(record(evidence=["a.jpg"]), tset)


def test_fingerprint_changes_with_a_template_file(tmp_path):
    (tmp_path / "templates" / "sections").mkdir(parents=True)
    before = t.resolve_set("default", data_dir=tmp_path).fingerprint()
    (tmp_path / "templates" / "sections" / "remarks.xml").write_text("<section/>", encoding="utf-8")
    after = t.resolve_set("default", data_dir=tmp_path).fingerprint()
    assert before != after


def test_filters():
    assert jinja.money("1234.5") == "1,234.50"
    assert jinja.cn_date("2024-05-01") == "2024年5月1日"
    assert jinja.cn_date("2019-03") == "2019年3月"
    assert jinja.mask_id("41162119850312003X") == "411621********003X"
    assert jinja.paragraphs("一\n\n二\n三") == ["一", "二", "三"]


def test_missing_optional_values_print_as_nothing():
    rec = record()
    rec["members"][0].update(work_place=None, work_months=None)
    members = next(s for s in render(rec) if s.key == "members")
    cells = [c for b in members.blocks if isinstance(b, dm.Table) for row in b.rows for c in row]
    assert "None" not in cells


@pytest.mark.slow
def test_builtin_set_found_after_plain_install(tmp_path):
    """A non-editable install (what a clerk gets) must still find templates/default."""
    import shutil
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    source = tmp_path / "src"
    for name in ("archive_builder", "templates", "docs"):
        shutil.copytree(root / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "builtin_templates"))
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(root / name, source / name)
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(source)],
        check=True, capture_output=True,
    )
    probe = "from archive_builder.templates import builtin_root, resolve_set; print(builtin_root()); print(len(resolve_set('default').sections))"
    # -S: no .pth files, so a developer's editable install cannot shadow the installed copy.
    import os
    import site

    path = os.pathsep.join([str(target), *site.getsitepackages()])
    result = subprocess.run(
        [sys.executable, "-S", "-c", probe], env={"PYTHONPATH": path}, cwd=tmp_path,
        capture_output=True, text=True, check=True,
    )
    root_line, count = result.stdout.split()
    assert root_line.startswith(str(target)) and root_line.endswith("builtin_templates")
    assert int(count) > 10


def _set_with_settings(tmp_path: Path, settings: str) -> Path:
    folder = tmp_path / "templates" / "县标准"
    folder.mkdir(parents=True)
    (folder / "templateset.toml").write_text(f'extends = "default"\n\n[settings]\n{settings}\n', encoding="utf-8")
    return tmp_path


def test_settings_are_read():
    tset = t.resolve_set("county-forms")
    assert tset.settings == {"form_timeout": 120}


@pytest.mark.parametrize(("settings", "said"), [
    ("evidence_dpi = 150", None),
    ('evidence_dpi = "高"', "evidence_dpi = '高' 无效"),
    ("evidence_dpi = 0", "应为 72 到 600 之间的整数"),
    ("evidence_dpi = 150.5", "应为 72 到 600 之间的整数"),
    ("form_timeout = -1", "应为 1 到 3600 之间的数字"),
    ("evidnce_dpi = 150", "未知设置：evidnce_dpi"),
])
def test_bad_settings_are_one_clear_error(tmp_path, settings, said):
    data = _set_with_settings(tmp_path, settings)
    if said is None:
        assert t.resolve_set("县标准", data_dir=data).settings == {"evidence_dpi": 150}
        return
    with pytest.raises(TemplateError) as info:
        t.resolve_set("县标准", data_dir=data)
    assert "县标准" in info.value.message and said in info.value.message, info.value.message
    assert "evidence_dpi" in info.value.hint or "form_timeout" in info.value.hint


@pytest.mark.parametrize(("main", "expected"), [
    ("因病", "家庭人口2人。因病、缺技术，家庭生活困难"),  # the label already says 因: not 因因病
    ("缺劳动力", "家庭人口2人。因缺劳动力、缺技术，家庭生活困难"),
    (None, "家庭人口2人。家庭生活困难"),
])
def test_application_letter_names_the_causes_once(main, expected):
    causes = {"main": main, "others": ["缺技术"]} if main else None
    sections = render(record(causes=causes, household_type="贫困户"))
    application = next(s for s in sections if s.key == "application")
    text = texts(application)
    assert expected in text and "因因" not in text
