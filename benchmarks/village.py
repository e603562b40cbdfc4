"""Village build benchmark: prints figures, asserts nothing.

    python benchmarks/village.py [--households 231] [--jobs 2] [--runs 3] [--set anchor|default]

Generates a synthetic village (2 print-size photos per household), then times whole `archive-builder build` processes — full build, no-change rebuild and a
rebuild after one household changed — and reports pages per second, peak RSS (the largest
process of the run, workers included), output size and the bytes of embedded font programs.

``--set anchor`` (the default) renders the packet the performance anchors measured (cover,
members, cause, measures, income, photos; simplex) with benchmarks/templates/anchor, so the
figures compare with ../shared/research/performance-anchors.md; ``--set default`` renders the
full default packet (contents, separator sheets, every section, duplex).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from archive_builder.synthetic import write_archive_toml, write_dataset

ANCHOR_SET = Path(__file__).resolve().parent / "templates" / "anchor"


def run_build(data: Path, out: Path, jobs: int, *extra: str) -> tuple[float, float]:
    """Return (wall seconds, peak RSS MiB of the largest process) of one build process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "archive_builder", "-q", "build", str(data), "-o", str(out), "-j", str(jobs), *extra],
        check=False, capture_output=True, text=True,
    )
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        print(proc.stdout, proc.stderr, file=sys.stderr)
        raise SystemExit(f"build failed with exit code {proc.returncode}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, max(peak, before) / 1024


def font_bytes(pdf: Path) -> int:
    from archive_builder.render.fonts import font_report

    return sum(f.get("bytes") or 0 for f in font_report(pdf))


def touch_one(data: Path) -> Path:
    """Change one household's income so exactly one packet is re-rendered."""
    import yaml

    record_file = sorted(data.rglob("household.yaml"))[len(list(data.rglob("household.yaml"))) // 2]
    record = yaml.safe_load(record_file.read_text(encoding="utf-8"))
    income = record.setdefault("income", [{"year": 2024}])
    income[0].setdefault("transfer", {})["临时救助"] = float(time.time_ns() % 1000)
    record_file.write_text(yaml.safe_dump(record, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return record_file


def main() -> None:
    # An installed package has compiled bytecode (pip compiles it); a checkout run with
    # PYTHONDONTWRITEBYTECODE would otherwise compile every module in every build process.
    import compileall

    compileall.compile_dir(str(ROOT / "archive_builder"), quiet=1)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--households", type=int, default=231)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--work", type=Path, default=Path("/tmp/archive-builder-bench"))
    parser.add_argument("--set", choices=("anchor", "default"), default="anchor")
    args = parser.parse_args()

    data = args.work / f"data-{args.households}"
    if not (data / "archive.toml").is_file():
        shutil.rmtree(data, ignore_errors=True)
        started = time.perf_counter()
        write_dataset(data, villages=[("411621105201", "李庄村", args.households)], seed=1)
        print(f"generated {args.households} households in {time.perf_counter() - started:.1f} s")
    if args.set == "anchor":
        write_archive_toml(data, templates={"set": str(ANCHOR_SET)}, print={"duplex": False})
    else:
        write_archive_toml(data, templates={"set": "default"}, print={"duplex": True})

    fulls, rss = [], []
    out = args.work / "out"
    for _ in range(args.runs):
        shutil.rmtree(out, ignore_errors=True)
        # The evidence cache lives in OUT, so every full build normalises every photo again.
        wall, peak = run_build(data, out, args.jobs)
        fulls.append(wall)
        rss.append(peak)
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    boxes = [out / b["file"] for v in manifest["villages"] for b in v["boxes"]]
    pages = sum(b["pages"] for v in manifest["villages"] for b in v["boxes"])
    size = sum(b.stat().st_size for b in boxes)
    fonts = sum(font_bytes(b) for b in boxes)

    nochange = [run_build(data, out, args.jobs)[0] for _ in range(args.runs)]
    one = []
    for _ in range(args.runs):
        touch_one(data)
        one.append(run_build(data, out, args.jobs)[0])

    full = statistics.median(fulls)
    print(f"households            {args.households}  (template set {args.set}, jobs {args.jobs}, median of {args.runs})")
    print(f"box PDFs              {len(boxes)}  ({pages} pages)")
    print(f"full build            {full:.2f} s   ({pages / full:.0f} pages/s, {full / args.households * 1000:.1f} ms/household)")
    print(f"no-change rebuild     {statistics.median(nochange):.2f} s")
    print(f"one household changed {statistics.median(one):.2f} s")
    print(f"peak RSS              {max(rss):.0f} MiB (largest single process)")
    print(f"output (box PDFs)     {size / 1e6:.1f} MB")
    print(f"font programs         {fonts / 1e6:.2f} MB in the box PDFs")


if __name__ == "__main__":
    main()
