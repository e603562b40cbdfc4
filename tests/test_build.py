"""The village build end to end (issue 4): a full build read back with pypdf, incremental
runs and failure isolation. Safe output and village selection: test_build_output.py;
reproducible bytes and the build's internals: test_build_repro.py.

Most tests use a small generated township (two villages of six households, one small photo
each, 50 sheets per box so every village fills two boxes); one slow test builds the sample
township ``households_sample`` through a subprocess, as the clerk would.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from build_helpers import (
    SAMPLE,
    all_fonts,
    break_id,
    change_phone,
    check_build,
    check_subset_tags,
    check_village,
    evidence_unembedded_fonts,
    is_cover_of,
    make_data,
    manifest,
    page_texts,
    pdf_snapshot,
    run_build,
    summary_line,
    unembedded_fonts,
)
from pypdf import PdfReader
from synthetic import dump_household_yaml, iter_records

from archive_builder.errors import ExitCode

# --------------------------------------------------------------------------- 1. full build


@pytest.mark.slow
def test_sample_build_subprocess(sample):
    out, proc = sample
    assert proc.returncode == ExitCode.ok, proc.stderr
    # stdout carries results only: the manifest path and the summary
    lines = proc.stdout.splitlines()
    assert lines[0] == str(out.resolve() / "manifest.json")
    # the sample's three evidence PDFs with unembedded fonts: one warning each, counted
    assert re.fullmatch(r"渲染 48 户 · 未变化 0 户 · 整理 3 个村 · 警告 3 条 · 用时 [\d.]+ 秒 · 问题台账：严重 \d+ 条 · .*",
                        lines[1]), lines
    assert len(lines) == 2, lines
    assert "▶" in proc.stderr  # progress went to stderr
    # the audit counts are those of `audit` over the same data (the build releases records
    # as it plans; the line must not count an emptied data set)
    from archive_builder.checks.audit import run_audit

    assert lines[1].endswith(run_audit(SAMPLE).line()), lines[1]
    assert "严重 0 条 · 一般 0 条" not in lines[1]


@pytest.mark.slow
def test_sample_boxes_agree_with_manifest(sample):
    out, proc = sample
    assert proc.returncode == ExitCode.ok, proc.stderr
    m = check_build(out)
    assert [v["code"] for v in m["villages"]] == ["411621105201", "411621105202", "411621105203"]
    assert sum(len(v["households"]) for v in m["villages"]) == 48
    assert m["failed"] == []


@pytest.mark.slow
def test_sample_fonts(sample):
    """Every font in the boxes and spines is embedded — even though some sample evidence PDFs
    (bank statements made by tools/make_sample.py) use an unembedded Helvetica, which the
    packet renderer rasterises — and subset tags are unique per font program in each box."""
    out, proc = sample
    assert proc.returncode == ExitCode.ok, proc.stderr
    assert evidence_unembedded_fonts(SAMPLE), "样例数据应含未嵌入字体的佐证 PDF（测试前提）"
    for village in manifest(out)["villages"]:
        for box in village["boxes"]:
            reader = PdfReader(out / box["file"])
            check_subset_tags(reader, box["file"])
            assert unembedded_fonts(reader) == set(), box["file"]
        spine = next((out / Path(village["boxes"][0]["file"]).parent).glob("*竖条.pdf"))
        assert unembedded_fonts(PdfReader(spine)) == set()


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("qpdf") is None, reason="qpdf not installed")
def test_sample_pdfs_pass_qpdf_check(sample):
    """Every PDF of the sample build — boxes, spines, packets — passes ``qpdf --check``, an
    independent reader that parses every object and decodes every stream (the packets' font
    programs are spliced from per-glyph deflate blocks; the boxes are written by pypdf)."""
    out, proc = sample
    assert proc.returncode == ExitCode.ok, proc.stderr
    pdfs = sorted(p for p in out.rglob("*.pdf") if ".store" not in p.parts and ".cache" not in p.parts)
    assert any("分户档卡" in p.parts for p in pdfs) and any("盒" in p.name for p in pdfs)
    for pdf in pdfs:
        check = subprocess.run(["qpdf", "--check", str(pdf)], capture_output=True, text=True, check=False)
        assert check.returncode == 0, (pdf, check.stdout[-800:], check.stderr[-800:])
        assert "No syntax or stream encoding errors found" in check.stdout, pdf


def test_small_build_reads_back(small):
    _data, out, result = small
    assert re.fullmatch(r"渲染 12 户 · 未变化 0 户 · 整理 2 个村 · 用时 [\d.]+ 秒 · 问题台账：严重 \d+ 条 · .*", summary_line(result))
    assert result.stdout.strip().splitlines()[0] == str(out.resolve() / "manifest.json")
    m = check_build(out)
    assert [len(v["boxes"]) for v in m["villages"]] == [2, 2], "每村应装两盒（测试前提）"
    assert [h["item_no"] for v in m["villages"] for h in v["households"]] == [1, 2, 3, 4, 5, 6] * 2
    assert m["failed"] == [] and m["problems"] == []


def test_small_build_fonts_embedded_and_tags_unique(small):
    data, out, _ = small
    assert evidence_unembedded_fonts(data) == set()  # no third-party PDFs in generated data
    for path in sorted(out.rglob("*盒.pdf")) + sorted(out.rglob("*竖条.pdf")):
        reader = PdfReader(path)
        assert all_fonts(reader), path
        assert unembedded_fonts(reader) == set(), path
        check_subset_tags(reader, path.name)


def test_simplex_build(tmp_path):
    data = make_data(tmp_path / "data", villages=(("411621105203", "前进村", 2),), print={"duplex": False})
    result = run_build(data, "-o", tmp_path / "out")
    assert result.exit_code == ExitCode.ok, result.output
    m = check_build(tmp_path / "out", duplex=False)
    for box in m["villages"][0]["boxes"]:
        assert all("/Contents" in page for page in PdfReader(tmp_path / "out" / box["file"]).pages)


# --------------------------------------------------------------------------- 2. incremental


@pytest.mark.slow
def test_incremental(tmp_path):
    data = make_data(tmp_path / "data")
    out = tmp_path / "out"
    first = run_build(data, "-o", out)
    assert first.exit_code == ExitCode.ok, first.output
    before = pdf_snapshot(out)
    m1 = manifest(out)

    # nothing changed: nothing rendered, no PDF touched
    again = run_build(data, "-o", out)
    assert again.exit_code == ExitCode.ok, again.output
    assert summary_line(again).startswith("渲染 0 户 · 未变化 12 户 · 整理 0 个村"), again.stdout
    assert pdf_snapshot(out) == before
    assert manifest(out)["villages"] == m1["villages"]

    # one household changed: only it is rendered, only its box (and its village's spine) rewritten
    village = m1["villages"][0]
    target = village["households"][1]
    assert target["box"] == 1 and len(village["boxes"]) == 2
    change_phone(data, target["household_id"])
    one = run_build(data, "-o", out)
    assert one.exit_code == ExitCode.ok, one.output
    assert summary_line(one).startswith("渲染 1 户 · 未变化 11 户 · 整理 1 个村"), one.stdout
    after = pdf_snapshot(out)
    assert after.keys() == before.keys()
    changed = {k for k in before if after[k] != before[k]}
    spine1 = next(k for k in before if k.startswith(f"{village['code']}_") and k.endswith("竖条.pdf"))
    assert changed - {spine1} == {target["packet"], village["boxes"][0]["file"]}, sorted(changed)
    m2 = check_build(out)
    assert m2["villages"][1] == m1["villages"][1]
    hashes = {h["household_id"]: h["content_hash"] for v in m2["villages"] for h in v["households"]}
    old = {h["household_id"]: h["content_hash"] for v in m1["villages"] for h in v["households"]}
    assert {k for k in old if old[k] != hashes[k]} == {target["household_id"]}

    # --force: everything rendered and rewritten again, to the same bytes
    forced = run_build(data, "-o", out, "--force")
    assert forced.exit_code == ExitCode.ok, forced.output
    assert summary_line(forced).startswith("渲染 12 户 · 未变化 0 户 · 整理 2 个村"), forced.stdout
    rebuilt = pdf_snapshot(out)
    assert all(rebuilt[k][0] != after[k][0] for k in after), "--force 应重写全部 PDF"
    assert {k: v[1] for k, v in rebuilt.items()} == {k: v[1] for k, v in after.items()}
    check_build(out)


def test_packet_replaced_behind_the_state_is_rendered_again(tmp_path):
    """A run killed after replacing a packet but before recording its state leaves a packet the
    state does not describe; if the data then goes back to what the state says, that packet
    must not be reused."""
    data = make_data(tmp_path / "data")
    out = tmp_path / "out"
    assert run_build(data, "-o", out).exit_code == ExitCode.ok
    target = manifest(out)["villages"][0]["households"][0]
    packet = out / target["packet"]
    original = packet.read_bytes()
    packet.write_bytes(original.replace(b"%%EOF", b"%%EOF\n% newer run"))  # same name, other content
    again = run_build(data, "-o", out)
    assert again.exit_code == ExitCode.ok, again.output
    assert summary_line(again).startswith("渲染 1 户 · 未变化 11 户"), again.stdout
    assert packet.read_bytes() == original


@pytest.mark.slow
def test_removed_households_leave_no_stale_files(tmp_path, small):
    """Households deleted from the data: the village shrinks to one box, and neither the old
    second box nor the deleted households' packets stay in the output folder."""
    data, built, _ = small
    data = shutil.copytree(data, tmp_path / "data")
    out = shutil.copytree(built, tmp_path / "out")
    village = data / "411621105201_李庄村"
    for hid in ("4116211052010002", "4116211052010005", "4116211052010006"):
        shutil.rmtree(village / hid)
    result = run_build(data, "-o", out)
    assert result.exit_code == ExitCode.ok, result.output
    m = check_build(out)
    first = m["villages"][0]
    assert [h["household_id"][-4:] for h in first["households"]] == ["0001", "0003", "0004"]
    assert [h["item_no"] for h in first["households"]] == [1, 2, 3]
    folder = out / "411621105201_李庄村"
    assert sorted(p.name for p in folder.glob("*盒.pdf")) == [Path(b["file"]).name for b in first["boxes"]]
    for v in m["villages"]:
        packets = sorted(p.relative_to(out).as_posix() for p in out.glob(f"{v['code']}_*/分户档卡/*"))
        assert packets == sorted(h["packet"] for h in v["households"])


# --------------------------------------------------------------------------- 3. failure isolation


@pytest.mark.slow
def test_failures_are_isolated(tmp_path):
    data = make_data(
        tmp_path / "data",
        villages=(("411621105201", "李庄村", 3), ("411621105202", "王楼村", 3), ("411621105203", "前进村", 2)),
    )
    records = {r["household_id"]: (p, r) for p, r in iter_records(data)}
    bad_id, bad_template = "4116211052010002", "4116211052020001"
    path, record = records[bad_id]
    break_id(record)
    path.write_text(dump_household_yaml(record), encoding="utf-8")
    path, record = records[bad_template]
    record["notes"] = "户主于 2024 年外出务工，家中由配偶照看。"
    path.write_text(dump_household_yaml(record), encoding="utf-8")
    override = path.parent.parent / "templates" / "sections" / "notes.xml"
    override.parent.mkdir(parents=True)
    override.write_text('<section layout="prose" title="户说明"><title>户说明</title><p>未闭合</section', "utf-8")

    out = tmp_path / "out"
    result = run_build(data, "-o", out)
    assert result.exit_code == ExitCode.partial, result.output
    assert "未生成 2 户" in summary_line(result)
    assert f"未生成：户 {bad_id}：数据有误" in result.stderr and "校验位错误" in result.stderr
    assert f"未生成：户 {bad_template}：" in result.stderr and "notes.xml" in result.stderr

    m = manifest(out)
    failed = {f["household_id"]: f["reason"] for f in m["failed"]}
    assert failed.keys() == {bad_id, bad_template}
    assert "校验位错误" in failed[bad_id] and "notes.xml" in failed[bad_template]
    errors = {p["household_id"]: p for p in m["problems"] if p["severity"] == "error"}
    assert errors.keys() == {bad_id, bad_template}, m["problems"]
    assert errors[bad_id]["field"] == "members[0].id_number" and errors[bad_id]["line"]
    assert "notes.xml" in errors[bad_template]["message"]

    # every other household and village is built, and the failed ones are nowhere in the boxes
    built = {h["household_id"] for v in m["villages"] for h in v["households"]}
    assert built == set(records) - {bad_id, bad_template}
    for village in m["villages"]:
        check_village(out, village, consecutive=False)
        for box in village["boxes"]:
            texts = page_texts(PdfReader(out / box["file"]))
            assert not any(is_cover_of(t, bad_id) or is_cover_of(t, bad_template) for t in texts)
    assert [len(v["households"]) for v in m["villages"]] == [2, 2, 2]

    # both keep their 件号 (the record with errors 0002 of 李庄村, the one that failed to render
    # 0001 of 王楼村, before every packet): the 备考表 of the box each belongs to says so
    villages = {v["name"]: v for v in m["villages"]}
    assert [h["item_no"] for h in villages["李庄村"]["households"]] == [1, 3]
    assert [h["item_no"] for h in villages["王楼村"]["households"]] == [2, 3]
    remarks = {
        b["file"]: page_texts(PdfReader(out / b["file"]))[-1] for v in m["villages"] for b in v["boxes"]
    }
    noted = {}
    for village, number, hid in (("李庄村", "0002", bad_id), ("王楼村", "0001", bad_template)):
        box = villages[village]["boxes"][0]["file"]
        assert "备 考 表" in remarks[box] and "缺 1 件" in remarks[box]
        assert re.search(rf"缺第\s*{number}\s*件.*{hid}", remarks[box], re.DOTALL), remarks[box]
        noted[box] = True
    assert not any("缺第" in text for name, text in remarks.items() if name not in noted)

    # the failures are not forgotten by the next run
    again = run_build(data, "-o", out)
    assert again.exit_code == ExitCode.partial, again.output
    assert {f["household_id"] for f in manifest(out)["failed"]} == {bad_id, bad_template}


def test_fixing_a_record_with_errors_renders_only_it(tmp_path):
    """Its 件号 was kept while it was wrong, so no other household's cover changes."""
    data = make_data(tmp_path / "data", villages=(("411621105201", "李庄村", 6),))
    path, record = list(iter_records(data))[1]
    good = path.read_text(encoding="utf-8")
    break_id(record)
    path.write_text(dump_household_yaml(record), encoding="utf-8")
    out = tmp_path / "out"
    assert run_build(data, "-o", out).exit_code == ExitCode.partial
    path.write_text(good, encoding="utf-8")
    fixed = run_build(data, "-o", out)
    assert fixed.exit_code == ExitCode.ok, fixed.output
    assert summary_line(fixed).startswith("渲染 1 户 · 未变化 5 户"), fixed.stdout
    (village,) = manifest(out)["villages"]
    assert [h["item_no"] for h in village["households"]] == [1, 2, 3, 4, 5, 6]


def test_a_misnamed_record_file_keeps_the_households_number_and_fails_the_build(tmp_path):
    """Windows hid the extension: household.yaml is household.yaml.txt. The household is not
    built (exit 3) but keeps its 件号, so renaming the file back renders it alone."""
    data = make_data(tmp_path / "data", villages=(("411621105201", "李庄村", 4),))
    path, record = list(iter_records(data))[1]
    hidden = path.with_name("household.yaml.txt")
    path.rename(hidden)
    out = tmp_path / "out"
    result = run_build(data, "-o", out)
    assert result.exit_code == ExitCode.partial, result.output
    assert f"未生成：户 {record['household_id']}：数据有误" in result.stderr
    assert "请把 household.yaml.txt 改名为 household.yaml" in result.stderr
    (village,) = manifest(out)["villages"]
    assert [h["item_no"] for h in village["households"]] == [1, 3, 4]
    assert [f["household_id"] for f in manifest(out)["failed"]] == [record["household_id"]]
    remarks = page_texts(PdfReader(out / village["boxes"][0]["file"]))[-1]
    assert re.search(rf"缺第\s*0002\s*件.*{record['household_id']}", remarks, re.DOTALL), remarks
    hidden.rename(path)
    fixed = run_build(data, "-o", out)
    assert fixed.exit_code == ExitCode.ok, fixed.output
    assert summary_line(fixed).startswith("渲染 1 户 · 未变化 3 户"), fixed.stdout


def test_village_with_no_household_built_does_not_stop_the_others(tmp_path):
    """Every household of 王楼村 has a bad ID number: it gets no box, the others do (exit 3)."""
    data = make_data(tmp_path / "data", villages=(("411621105201", "李庄村", 2), ("411621105202", "王楼村", 2)))
    for path, record in iter_records(data):
        if record["household_id"].startswith("411621105202"):
            break_id(record)
            path.write_text(dump_household_yaml(record), encoding="utf-8")
    out = tmp_path / "out"
    result = run_build(data, "-o", out)
    assert result.exit_code == ExitCode.partial, result.output
    assert "内部错误" not in result.output
    m = manifest(out)
    villages = {v["name"]: v for v in m["villages"]}
    assert len(villages["李庄村"]["households"]) == 2 and villages["李庄村"]["boxes"]
    assert villages["王楼村"]["households"] == [] and villages["王楼村"]["boxes"] == []
    assert len(m["failed"]) == 2
    again = run_build(data, "-o", out)  # and a second run agrees
    assert again.exit_code == ExitCode.partial, again.output


def test_village_name_with_characters_no_file_name_may_hold(tmp_path):
    """The cover prints 李庄/东组:一? as written; file and folder names use _ instead."""
    data = make_data(tmp_path / "data", villages=(("411621105201", "李庄村", 2),))
    (village_toml,) = data.glob("*/village.toml")
    text = village_toml.read_text(encoding="utf-8")
    village_toml.write_text(re.sub(r'(?m)^name = .*$', 'name = "李庄/东组:一?"', text), encoding="utf-8")
    out = tmp_path / "out"
    result = run_build(data, "-o", out)
    assert result.exit_code == ExitCode.ok, result.output
    (folder,) = [p for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert folder.name == "411621105201_李庄_东组_一_"
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted(["411621105201_李庄_东组_一__第01盒.pdf",
                           "411621105201_李庄_东组_一__竖条.pdf", "分户档卡"])
    (village,) = manifest(out)["villages"]
    assert village["name"] == "李庄/东组:一?"
    for box in village["boxes"]:
        assert (out / box["file"]).is_file()
        assert "李庄/东组:一?" in page_texts(PdfReader(out / box["file"]))[0]
