"""County-scale build benchmark: prints figures, asserts nothing.

    python benchmarks/scale.py [--sizes 230,2000,5000] [--jobs 2] [--runs 3] [--cache-dir DIR] [--keep]
    python benchmarks/scale.py --sizes 2000 --against main --runs 2


For each size, generates (once; kept in ``--cache-dir``) a synthetic township of that many
households (``tests/synthetic.py``'s templated generator, 2 photos a household, villages of
``--per-village`` households), then times whole ``archive-builder build`` processes: a full
build into an empty folder, a no-change rebuild and a rebuild after one household changed
(medians of ``--runs``). For each it prints wall and CPU seconds (user + system of every
process of the run) and the peak RSS of the build process and of its largest child
process (workers and any helper process; sampled from /proc, plus the kernel's maximum over
all processes that ended), and the output folder's bytes per household (boxes, packets,
version store). The one-changed household's record is put back afterwards, so the cached
data directory stays as generated. ``--against COMMIT`` instead times full builds of this
checkout and of COMMIT's code (exported with ``git archive``) alternately, in the same minutes.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the synthetic data generators

from synthetic import VILLAGE_NAMES, write_templated_dataset

PAGE = os.sysconf("SC_PAGE_SIZE")


def generate(cache: Path, households: int, per_village: int, seed: str) -> Path:
    """Return the data directory of ``households`` households, generating it if not cached."""
    data = cache / f"data-{households}-{per_village}-{seed}"
    if (data / ".complete").is_file():
        return data
    shutil.rmtree(data, ignore_errors=True)
    count = max(1, -(-households // per_village))
    per, extra = divmod(households, count)
    villages = [(f"411621105{201 + k:03d}", VILLAGE_NAMES[k % len(VILLAGE_NAMES)] + ("" if k < len(VILLAGE_NAMES) else str(k)),
                 per + (1 if k < extra else 0)) for k in range(count)]
    started = time.perf_counter()
    write_templated_dataset(data, villages, seed=seed)
    (data / ".complete").write_text("")
    print(f"generated {households} households in {count} villages in {time.perf_counter() - started:.1f} s: {data}")
    return data


def _children(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/task/{p}/children") as f:
                kids = [int(x) for x in f.read().split()]
        except OSError:
            continue
        found += kids
        todo += kids
    return found


def _hwm_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class Sampler(threading.Thread):
    """Peak RSS (VmHWM) of a process and of each of its descendants, read every 20 ms."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peaks, self.done = pid, {}, threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            for p in [self.pid, *_children(self.pid)]:
                kib = _hwm_kib(p)
                if kib:
                    self.peaks[p] = max(self.peaks.get(p, 0), kib)
            self.done.wait(0.02)


def run_build(data: Path, out: Path, jobs: int, checkout: Path | None = None) -> dict[str, float]:
    """One ``archive-builder build`` process (of ``checkout``'s code, else this one's): wall,
    CPU, peak RSS of it and its largest child."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": str(checkout)} if checkout else None
    proc = subprocess.Popen(
        [sys.executable, "-m", "archive_builder", "-q", "build", str(data), "-o", str(out), "-j", str(jobs)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=checkout or ROOT)
    sampler = Sampler(proc.pid)
    sampler.start()
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - started
    sampler.done.set()
    sampler.join()
    if proc.returncode != 0:
        print(stdout, stderr, file=sys.stderr)
        raise SystemExit(f"build failed with exit code {proc.returncode}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    children = [kib for pid, kib in sampler.peaks.items() if pid != proc.pid]
    return {
        "wall": wall,
        "cpu": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        "parent_mib": sampler.peaks.get(proc.pid, 0) / 1024,
        "child_mib": max(children, default=0) / 1024,
        "children": len(children),
        # the kernel's figure: the largest process that ended so far in this benchmark
        "any_mib": after.ru_maxrss / 1024,
    }


def change_one(data: Path) -> tuple[Path, str]:
    """Change one household's income (one packet, one box); return its file and old text."""
    import yaml

    village = sorted(p for p in data.iterdir() if p.is_dir())[0]
    folders = sorted(p for p in village.iterdir() if p.is_dir())
    record_file = folders[len(folders) // 2] / "household.yaml"
    old = record_file.read_text(encoding="utf-8")
    record = yaml.safe_load(old)
    income = record.setdefault("income", [{"year": 2024}])
    income[0].setdefault("transfer", {})["临时救助"] = float(time.time_ns() % 1000 + 1)
    record_file.write_text(yaml.safe_dump(record, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return record_file, old


def output_bytes(out: Path) -> dict[str, int]:
    """Bytes on disk of the output folder: boxes (and spines), packets, version store, the rest."""
    parts = {"boxes": 0, "packets": 0, "store": 0, "other": 0}
    for dirpath, _, files in os.walk(out):
        rel = Path(dirpath).relative_to(out).parts
        for name in files:
            try:
                size = os.lstat(os.path.join(dirpath, name)).st_blocks * 512
            except OSError:
                continue
            if rel and rel[0] == ".store":
                parts["store"] += size
            elif "分户档卡" in rel:
                parts["packets"] += size
            elif name.endswith(".pdf") and rel and not rel[0].startswith("."):
                parts["boxes"] += size
            else:
                parts["other"] += size
    return parts


def median(rows: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def show(label: str, rows: list[dict[str, float]]) -> None:
    print(f"  {label:<12} wall {median(rows, 'wall'):7.2f} s  cpu {median(rows, 'cpu'):7.2f} s  "
          f"peak RSS: build {max(r['parent_mib'] for r in rows):6.0f} MiB, largest child "
          f"{max(r['child_mib'] for r in rows):6.0f} MiB ({max(r['children'] for r in rows):.0f} children), "
          f"any process {max(r['any_mib'] for r in rows):6.0f} MiB")


def export(commit: str, cache: Path) -> Path:
    """The package of ``commit`` (``git archive``, no worktree), compiled like an installed one."""
    import compileall

    rev = subprocess.run(["git", "rev-parse", "--short", commit], cwd=ROOT, check=True, capture_output=True,
                         text=True).stdout.strip()
    target = cache / f"src-{rev}"
    if not (target / "archive_builder").is_dir():
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        tar = subprocess.run(["git", "archive", rev, "archive_builder", "templates"], cwd=ROOT, check=True, capture_output=True)
        subprocess.run(["tar", "-x", "-C", str(target)], input=tar.stdout, check=True)
    compileall.compile_dir(str(target / "archive_builder"), quiet=1)
    return target


def against(size: int, args: argparse.Namespace) -> None:
    """Full builds of this checkout and of ``--against``, alternately, in the same minutes."""
    import compileall

    compileall.compile_dir(str(ROOT / "archive_builder"), quiet=1)
    data = generate(args.cache_dir, size, args.per_village, args.seed)
    other = export(args.against, args.cache_dir)
    rows: dict[str, list[dict[str, float]]] = {args.against: [], "this": []}
    for _ in range(args.runs):
        for name, checkout in ((args.against, other), ("this", None)):
            out = args.cache_dir / f"out-ab-{size}"
            shutil.rmtree(out, ignore_errors=True)
            rows[name].append(run_build(data, out, args.jobs, checkout))
            shutil.rmtree(out, ignore_errors=True)
    print(f"{size} households, full build, {args.runs} alternating runs (medians):")
    for name, found in rows.items():
        show(name, found)


def bench(size: int, args: argparse.Namespace) -> None:
    import compileall

    # an installed package has compiled bytecode (PYTHONDONTWRITEBYTECODE would otherwise have
    # every run compile every module: 0.2-0.4 s of a rebuild's time)
    compileall.compile_dir(str(ROOT / "archive_builder"), quiet=1)
    data = generate(args.cache_dir, size, args.per_village, args.seed)
    out = args.cache_dir / f"out-{size}"
    shutil.rmtree(out, ignore_errors=True)
    print(f"{size} households (-j {args.jobs}, medians of {args.runs} rebuilds):", flush=True)
    full = [run_build(data, out, args.jobs)]
    show("full", full)
    show("no change", [run_build(data, out, args.jobs) for _ in range(args.runs)])
    changed = []
    for _ in range(args.runs):
        record_file, old = change_one(data)
        try:
            changed.append(run_build(data, out, args.jobs))
        finally:
            record_file.write_text(old, encoding="utf-8")
    show("one changed", changed)
    run_build(data, out, args.jobs)  # back to the data as generated
    parts = output_bytes(out)
    total = sum(parts.values())
    print(f"  output       {total / size / 1e3:7.0f} kB a household ({total / 1e6:.0f} MB: "
          + ", ".join(f"{k} {v / size / 1e3:.0f} kB" for k, v in parts.items()) + ")", flush=True)
    if not args.keep:
        shutil.rmtree(out, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="县级规模基准：全量、无变化、改一户的构建 / county-scale build benchmark")
    ap.add_argument("--sizes", default="230,2000,5000", help="户数，逗号分隔 / household counts, comma-separated")
    ap.add_argument("--per-village", type=int, default=250, help="每村户数 / households per village")
    ap.add_argument("--jobs", type=int, default=2, help="工作进程数 / worker processes")
    ap.add_argument("--runs", type=int, default=3, help="重建次数（取中位数） / rebuilds per kind (median)")
    ap.add_argument("--seed", default="scale", help="随机种子 / seed")
    ap.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "archive-builder-scale",
                    help="缓存生成的数据目录 / where generated data directories are kept")
    ap.add_argument("--keep", action="store_true", help="保留输出文件夹 / keep the output folders")
    ap.add_argument("--clean", action="store_true", help="结束后删除缓存的数据 / delete the cached data afterwards")
    ap.add_argument("--against", metavar="COMMIT",
                    help="只比较全量构建：与该提交交替运行 / only full builds, alternating with COMMIT's code")
    args = ap.parse_args(argv)
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    for size in (int(s) for s in args.sizes.split(",") if s.strip()):
        (against if args.against else bench)(size, args)
    if args.clean:
        shutil.rmtree(args.cache_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
