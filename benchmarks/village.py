"""Village build benchmark: prints figures, asserts nothing.

    python benchmarks/village.py [--households 231] [--jobs 2] [--runs 3] [--set anchor|default] [--stages] [--anchor]

Generates a synthetic village (2 print-size photos per household), then times whole `archive-builder build` processes — full build, no-change rebuild and a
rebuild after one household changed — and reports pages per second, peak RSS (the largest
process of the run, workers included), output size, the bytes of embedded font programs and
the output folder's bytes on disk per household (boxes / packets / version store / the rest;
``python benchmarks/disk.py OUT`` prints the same for any output folder).

``--set anchor`` (the default) renders a short packet (cover, members, cause, measures,
income, photos; simplex) with benchmarks/templates/anchor; ``--set default`` renders the
full default packet (contents, separator sheets, every section, duplex). ``--stages`` adds
one more full build whose worker tasks report their CPU time: rendering, collating, parsing,
and the build process itself, and the least wall time the workers' own CPU allows on JOBS
cores. ``--anchor`` runs the plain reportlab route of the performance anchors
(``benchmarks/reportlab_anchor.py``) alternately with the full builds, in the same minutes,
and prints the build's share of its time.
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
sys.path.insert(0, str(ROOT / "tests"))  # the synthetic data generators

from synthetic import write_archive_toml, write_dataset

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


def run_anchor(data: Path, pdf: Path, jobs: int) -> float:
    """Wall seconds of one whole process of the plain reportlab route (the performance anchors')."""
    started = time.perf_counter()
    subprocess.run([sys.executable, str(Path(__file__).resolve().parent / "reportlab_anchor.py"), str(data), str(pdf),
                    "--jobs", str(jobs)], check=True, capture_output=True)
    return time.perf_counter() - started


def font_bytes(pdf: Path) -> int:
    from pdffonts import font_report

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


#: A full build in a fresh process whose worker tasks log their own CPU time (fork only: the
#: workers must inherit the wrapped functions). Prints one line per stage, in core-seconds.
_STAGES = """
import collections, os, resource, sys, tempfile, time
from pathlib import Path
import archive_builder.archive.build as B

log = tempfile.mktemp(prefix="ab-stages-")
import archive_builder.archive.scheduler as S

def wrap(module, name):
    task = getattr(module, name)
    def timed(*args, **kwargs):
        started = time.process_time()
        try:
            return task(*args, **kwargs)
        finally:
            with open(log, "a") as fh:
                fh.write(f"{name} {time.process_time() - started}\\n")
    timed.__name__ = timed.__qualname__ = name
    timed.__module__ = module.__name__
    setattr(module, name, timed)
for module, name in ((B, "_safe_render"), (B, "_collate_box"), (S, "_run_chunk")):
    wrap(module, name)
data, out, jobs = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
started = time.perf_counter()
B.Build(data, out, B.BuildOptions(jobs=jobs)).run()
wall = time.perf_counter() - started
total, count = collections.Counter(), collections.Counter()
for line in open(log):
    name, seconds = line.split()
    total[name] += float(seconds)
    count[name] += 1
os.unlink(log)
me = resource.getrusage(resource.RUSAGE_SELF)
kids = resource.getrusage(resource.RUSAGE_CHILDREN)
labels = {"_safe_render": "rendering packets", "_collate_box": "collating boxes", "_run_chunk": "parsing in workers"}
print(f"stage CPU             wall {wall:.2f} s; all processes {me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime:.2f} core-s")
for name, label in labels.items():
    each = total[name] / count[name] * 1000 if count[name] else 0
    print(f"  {label:19s} {total[name]:5.2f} core-s ({count[name]} tasks, {each:.1f} ms each)")
print(f"  {'build process':19s} {me.ru_utime + me.ru_stime:5.2f} core-s (user {me.ru_utime:.2f}, system {me.ru_stime:.2f})")
floor = sum(total.values()) / jobs
print(f"  workers alone      {floor:5.2f} s at least on {jobs} cores (their tasks' CPU / jobs; nothing else counted)")
"""


def stages(data: Path, out: Path, jobs: int) -> None:
    """Where the CPU of one full build goes (see ``_STAGES``)."""
    import multiprocessing

    if multiprocessing.get_start_method() != "fork":
        print("stage CPU             (needs the fork start method: Linux)")
        return
    shutil.rmtree(out, ignore_errors=True)
    proc = subprocess.run([sys.executable, "-c", _STAGES, str(data), str(out), str(jobs)],
                          check=False, capture_output=True, text=True, cwd=ROOT)
    print(proc.stdout.rstrip() if proc.returncode == 0 else f"stage CPU             failed: {proc.stderr[-500:]}")


def disk_report(out: Path) -> str:
    """The output folder's bytes on disk per household: boxes / packets / store / the rest."""
    from archive_builder.archive.outdir import disk_usage

    usage = disk_usage(out)
    each = usage.per_household()
    shared = "store shares blocks with the packets (reflink)" if usage.store_shared else "no reflink here: store copies"
    return (f"output folder         {usage.total / 1e6:.1f} MB = {each['total'] / 1e3:.0f} kB/household: "
            f"boxes {each['boxes'] / 1e3:.0f} / packets {each['packets'] / 1e3:.0f} / store {each['store'] / 1e3:.0f}"
            f" / other {each['other'] / 1e3:.0f} kB ({shared})")


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
    parser.add_argument("--stages", action="store_true", help="also print the CPU of each stage of one full build")
    parser.add_argument("--anchor", action="store_true",
                        help="also time the plain reportlab route (benchmarks/reportlab_anchor.py), alternately")
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

    # last: the anchor's processes would count in the peak RSS of every run after them
    paired = []
    for _ in range(args.runs if args.anchor else 0):
        shutil.rmtree(out, ignore_errors=True)
        paired.append((run_build(data, out, args.jobs)[0], run_anchor(data, args.work / "anchor.pdf", args.jobs)))

    full = statistics.median(fulls)
    print(f"households            {args.households}  (template set {args.set}, jobs {args.jobs}, median of {args.runs})")
    print(f"box PDFs              {len(boxes)}  ({pages} pages)")
    print(f"full build            {full:.2f} s   ({pages / full:.0f} pages/s, {full / args.households * 1000:.1f} ms/household)")
    print(f"no-change rebuild     {statistics.median(nochange):.2f} s")
    print(f"one household changed {statistics.median(one):.2f} s")
    if paired:
        build, anchor = (statistics.median(p[i] for p in paired) for i in (0, 1))
        print(f"reportlab route       {anchor:.2f} s, alternating with full builds of {build:.2f} s: "
              f"the build takes {build / anchor:.2f}× its time")
    print(f"peak RSS              {max(rss):.0f} MiB (largest single process)")
    print(f"output (box PDFs)     {size / 1e6:.1f} MB")
    print(f"font programs         {fonts / 1e6:.2f} MB in the box PDFs")
    print(disk_report(out))
    if args.stages:
        stages(data, args.work / "out-stages", args.jobs)


if __name__ == "__main__":
    main()
