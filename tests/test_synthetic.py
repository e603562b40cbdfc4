"""Tests for the synthetic data generator and the committed sample (households_sample/)."""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.util
import json
import random
import re

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef,import-not-found,unused-ignore]
from decimal import Decimal
from pathlib import Path

import pytest
import synthetic as syn
import yaml

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "households_sample"
TODAY_LIMIT = dt.date(2026, 11, 22)
REQUIRED = ("household_id", "household_type", "causes", "members")
MALE_RELATIONS = {"之子", "之女婿", "之孙子", "之父"}
FEMALE_RELATIONS = {"之女", "之儿媳", "之孙女", "之母"}


# --- ID numbers ---------------------------------------------------------------


@pytest.mark.parametrize("valid", ["11010519491231002X", "440524188001010014"])
def test_check_char_examples(valid: str) -> None:
    assert syn.id_check_char(valid[:17]) == valid[17]
    assert syn.is_valid_id_number(valid)


def test_make_id_number() -> None:
    assert (
        syn.make_id_number("110105", dt.date(1949, 12, 31), 2) == "11010519491231002X"
    )
    assert syn.make_id_number("440524", dt.date(1880, 1, 1), 1) == "440524188001010014"
    idn = syn.make_id_number("411621", dt.date(2001, 2, 28), 37)
    assert syn.is_valid_id_number(idn) and int(idn[16]) % 2 == 1
    assert not syn.is_valid_id_number("440524188001010015")
    assert not syn.is_valid_id_number("440524188002300014")  # 30 February
    with pytest.raises(ValueError):
        syn.id_check_char("12345")
    with pytest.raises(ValueError):
        syn.make_id_number("41162", dt.date(2000, 1, 1), 1)


def test_generated_ids_valid_and_unique() -> None:
    used: set[str] = set()
    seen: list[str] = []
    for i in range(1, 401):
        rng = random.Random(f"t:{i}")
        rec = syn.generate_household(
            rng, f"411621105201{i:04d}", "411621105201", 2025, used_ids=used
        )
        seen += [m["id_number"] for m in rec["members"]]
    assert len(seen) == len(set(seen)) == len(used)
    assert all(syn.is_valid_id_number(x) for x in seen)


# --- a record checker mirroring record-format.md §5 ------------------------------


def _date(v: object) -> dt.date | None:
    if isinstance(v, dt.date):
        return v
    if isinstance(v, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", v):
        return dt.date.fromisoformat(v)
    if isinstance(v, str) and re.fullmatch(r"\d{4}-\d{2}", v):
        return dt.date(int(v[:4]), int(v[5:]), 1)
    return None


def _walk(obj: object, path: str = ""):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _walk(v, f"{path}.{k}" if path else str(k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _walk(v, f"{path}[{i}]")
    else:
        yield path, obj


def check_record(rec: dict, folder: Path) -> list[str]:
    problems: list[str] = []
    for key in REQUIRED:
        if key not in rec:
            problems.append(f"missing {key}")
    members = rec.get("members") or []
    if [m["relation"] for m in members].count("户主") != 1:
        problems.append("not exactly one 户主")
    head = next((m for m in members if m["relation"] == "户主"), None)
    for i, m in enumerate(members):
        idn = m["id_number"]
        if not syn.is_valid_id_number(idn):
            problems.append(f"members[{i}] invalid id {idn}")
            continue
        male = int(idn[16]) % 2 == 1
        if "sex" in m and m["sex"] != ("男" if male else "女"):
            problems.append(f"members[{i}] sex disagrees with id")
        if "birth_date" in m and _date(m["birth_date"]) != dt.date(
            int(idn[6:10]), int(idn[10:12]), int(idn[12:14])
        ):
            problems.append(f"members[{i}] birth_date disagrees with id")
        if (
            m["relation"] in MALE_RELATIONS
            and not male
            or m["relation"] in FEMALE_RELATIONS
            and male
        ):
            problems.append(f"members[{i}] relation {m['relation']} vs sex")
        if (
            m["relation"] == "配偶"
            and head
            and syn.is_valid_id_number(head["id_number"])
            and (int(head["id_number"][16]) % 2 == 1) == male
        ):
            problems.append(f"members[{i}] 配偶 has the same sex as 户主")
    for path, value in _walk(rec):
        d = _date(value)
        if d is not None and not path.endswith("household_id") and d > TODAY_LIMIT:
            problems.append(f"{path} in the future")
        leaf = path.rsplit(".", 1)[-1]
        money_path = leaf == "amount" or re.search(
            r"income\[\d+\]\.(wage|business|property|transfer|costs)\.", path
        )
        if money_path:
            amount = Decimal(str(value))
            if amount < 0 or amount != amount.quantize(Decimal("0.01")):
                problems.append(f"{path} bad money {value}")
    for section in ("procedure",):
        for i, e in enumerate(rec.get(section) or []):
            start, end = _date(e.get("date")), _date(e.get("date_to"))
            if start is None or ("date_to" in e and (end is None or end < start)):
                problems.append(f"{section}[{i}] bad date/date_to")
    for rel in syn.evidence_paths(rec):
        p = Path(rel)
        if p.is_absolute() or ".." in p.parts:
            problems.append(f"evidence {rel} leaves the folder")
        elif not (folder / rel).is_file():
            problems.append(f"evidence {rel} missing")
    return problems


def _check_tree(root: Path) -> tuple[int, int]:
    ids: dict[str, Path] = {}
    hids: set[str] = set()
    n_village = n_household = 0
    assert (root / "archive.toml").is_file()
    tomllib.loads((root / "archive.toml").read_text(encoding="utf-8"))
    for vt in sorted(root.glob("*/village.toml")):
        village = tomllib.loads(vt.read_text(encoding="utf-8"))
        assert re.fullmatch(r"\d{12}", village["code"]) and village["name"]
        n_village += 1
        for path, rec in syn.iter_records(vt.parent):
            n_household += 1
            assert isinstance(rec, dict), path
            problems = check_record(rec, path.parent)
            assert not problems, (path, problems)
            assert rec["household_id"] not in hids
            hids.add(rec["household_id"])
            if rec.get("group") and village.get("groups"):
                assert rec["group"] in village["groups"], path
            for m in rec["members"]:
                assert m["id_number"] not in ids, (path, ids.get(m["id_number"]))
                ids[m["id_number"]] = path
    return n_village, n_household


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# --- generator output -----------------------------------------------------------


def test_write_dataset_valid(tmp_path: Path) -> None:
    syn.write_dataset(
        tmp_path,
        [("411621105201", "李庄村", 12), ("411621105202", "王楼村", 9)],
        seed=3,
        photos_per_household=2,
        photo_size=(240, 320),
    )
    assert _check_tree(tmp_path) == (2, 21)
    for path in tmp_path.rglob("household.yaml"):
        rec = yaml.safe_load(path.read_text(encoding="utf-8"))
        for key in REQUIRED:
            assert key in rec
        assert "&id" not in path.read_text(encoding="utf-8")


def test_templated_dataset_valid_and_distinct(tmp_path: Path) -> None:
    """The county-scale generator copies a few households: still valid records, unique ID
    numbers and photos with bytes of their own, the same files for a seed."""
    from archive_builder.validate import check_data_dir

    villages = [("411621105201", "李庄村", 30), ("411621105202", "王楼村", 25)]
    syn.write_templated_dataset(tmp_path / "a", villages, seed=3, templates=4, photo_size=(240, 320))
    syn.write_templated_dataset(tmp_path / "b", villages, seed=3, templates=4, photo_size=(240, 320))
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    ids = [m["id_number"] for _, rec in syn.iter_records(tmp_path / "a") for m in rec["members"]]
    assert len(ids) == len(set(ids)) and all(syn.is_valid_id_number(i) for i in ids)
    photos = [p.read_bytes() for p in (tmp_path / "a").rglob("*.jpg")]
    assert len(photos) == 110 and len(set(photos)) == 110
    assert check_data_dir(tmp_path / "a").summary.errors == 0


def test_determinism(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for out, seed in ((a, 7), (b, 7), (c, 8)):
        syn.write_dataset(
            out, [("411621105201", "李庄村", 5)], seed=seed, photo_size=(300, 400)
        )
    assert _digest(a) == _digest(b)
    assert _digest(a) != _digest(c)


def test_photo_bytes_differ_and_size() -> None:
    one = syn._jpeg_bytes(syn.make_photo("h1:1"))
    two = syn._jpeg_bytes(syn.make_photo("h1:2"))
    assert one != two
    assert 60_000 < len(one) < 200_000
    assert one == syn._jpeg_bytes(syn.make_photo("h1:1"))


def test_household_sizes_and_labels() -> None:
    for size in range(1, 10):
        rec = syn.generate_household(
            random.Random(size),
            f"411621105201{size:04d}",
            "411621105201",
            2025,
            size=size,
        )
        assert len(rec["members"]) == size
        assert not check_record(rec, Path("."))
    rec = syn.generate_household(
        random.Random(1),
        "4116211052010001",
        "411621105201",
        2025,
        monitor_category="突发严重困难户",
    )
    assert (
        rec["household_type"] == "防止返贫致贫对象" and "poverty_attribute" not in rec
    )
    assert rec["monitor"]["category"] == "突发严重困难户"


def test_archive_toml_overrides(tmp_path: Path) -> None:
    syn.write_archive_toml(
        tmp_path, county="测试县", duplex=False, templates={"set": "x"}
    )
    data = tomllib.loads((tmp_path / "archive.toml").read_text(encoding="utf-8"))
    assert data["archive"]["county"] == "测试县"
    assert data["print"]["duplex"] is False
    assert data["templates"]["set"] == "x"


def test_json_and_yml_written(tmp_path: Path) -> None:
    rec = syn.generate_household(
        random.Random(5), "4116211052010005", "411621105201", 2025, photos=1
    )
    p1 = syn.write_household(
        tmp_path / "j", rec, seed=1, photo_size=(100, 100), fmt="json"
    )
    p2 = syn.write_household(
        tmp_path / "y", rec, seed=1, photo_size=(100, 100), fmt="yml"
    )
    assert (
        json.loads(p1.read_text(encoding="utf-8"))["household_id"] == "4116211052010005"
    )
    assert (
        yaml.safe_load(p2.read_text(encoding="utf-8"))["household_id"]
        == "4116211052010005"
    )
    assert (tmp_path / "j" / "evidence" / "photo_01.jpg").is_file()


# --- the committed sample ---------------------------------------------------------

needs_sample = pytest.mark.skipif(
    not (SAMPLE / "archive.toml").exists(), reason="households_sample/ not present"
)


@needs_sample
def test_sample_valid() -> None:
    villages, households = _check_tree(SAMPLE)
    assert villages >= 3 and households >= 45


@needs_sample
def test_sample_coverage() -> None:
    recs = [rec for _, rec in syn.iter_records(SAMPLE)]
    sizes = {len(r["members"]) for r in recs}
    assert set(range(1, 10)) <= sizes
    assert {"一般贫困户", "低保贫困户", "特困供养贫困户"} <= {
        r.get("poverty_attribute") for r in recs
    }
    assert {"脱贫不稳定户", "边缘易致贫户", "突发严重困难户"} <= {
        r.get("monitor", {}).get("category") for r in recs
    }
    names = "".join(m["name"] for r in recs for m in r["members"])
    for ch in ("堃", "喆", "犇", "\U00020bb7"):
        assert ch in names
    assert any(len(r.get("measures") or []) >= 20 for r in recs)
    assert any("<" in (r.get("notes") or "") and "{{" in r["notes"] for r in recs)
    cats = {m["category"] for r in recs for m in r.get("measures") or []}
    assert len(cats) >= 8
    files = [p.name for p in SAMPLE.rglob("household.*")]
    assert "household.json" in files and "household.yml" in files


@needs_sample
def test_sample_odd_evidence() -> None:
    from PIL import Image, ImageOps

    orientations, modes, tiff_pages = set(), set(), 0
    for p in SAMPLE.rglob("*"):
        suffix = p.suffix.lower()
        if suffix in (".jpg", ".jpeg", ".png", ".tif", ".tiff"):
            with Image.open(p) as im:
                modes.add(im.mode)
                orientations.add(im.getexif().get(0x0112))
                if suffix in (".tif", ".tiff"):
                    tiff_pages = max(tiff_pages, getattr(im, "n_frames", 1))
                if im.getexif().get(0x0112) in (6, 8):
                    up = ImageOps.exif_transpose(im)
                    assert up.height > up.width  # upright portrait after applying EXIF
    assert {6, 8} <= orientations
    assert {"CMYK", "RGBA", "I;16"} <= modes
    assert tiff_pages >= 3
    pdfs = list(SAMPLE.rglob("*.pdf"))
    multi = [
        p
        for p in pdfs
        if len(re.findall(rb"/Type\s*/Page(?![a-zA-Z])", p.read_bytes())) >= 2
    ]
    assert len(multi) >= 3, pdfs
    total = sum(p.stat().st_size for p in SAMPLE.rglob("*") if p.is_file())
    assert total < 16 * 1024 * 1024


@pytest.mark.slow
@needs_sample
def test_sample_reproducible(tmp_path: Path) -> None:
    """tools/make_sample.py recreates the committed text files byte for byte."""
    spec = importlib.util.spec_from_file_location(
        "make_sample", ROOT / "tools" / "make_sample.py"
    )
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "sample"
    mod.build(out)
    text = (".yaml", ".yml", ".json", ".toml", ".md")
    fresh = {k: v for k, v in _digest(out).items() if k.endswith(text)}
    committed = {k: v for k, v in _digest(SAMPLE).items() if k.endswith(text)}
    assert fresh == committed
    assert set(_digest(out)) == set(_digest(SAMPLE))
