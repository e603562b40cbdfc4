"""Time ``archive-builder audit`` on a township (问题台账基准).

Usage:
    python benchmarks/audit.py [DATA] [--households 2000 --villages 8]
    python benchmarks/audit.py [DATA] --against COMMIT [--runs 5]

Without DATA, a synthetic township is generated once (benchmarks/generate.py, no photos) in a
temporary folder. The first form prints, in this process, the time of a cold audit (records
parsed, the record cache filled), of a warm one (records from the cache) and of the rule
evaluation alone.

With ``--against``, the whole command (``archive-builder -q audit DATA``, a new process each
time, as a clerk runs it) is timed alternately with a temporary ``git worktree`` of COMMIT and
with this checkout, cold (an empty record cache) and warm (the cache the cold run wrote), and
the median wall time and CPU time (user + system, the command and its worker processes) of each
are printed. The machine's speed drifts, so only figures of the same run compare. Prints
figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import compileall
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _cpu() -> tuple[float, float]:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


def in_process(data: Path) -> None:
    from archive_builder.checks import audit_dataset, run_audit
    from archive_builder.records.loader import load_dataset

    for label in ("冷启动（解析记录）", "热启动（记录缓存）"):
        t0, (own0, children0) = time.perf_counter(), _cpu()
        result = run_audit(data)
        total, (own1, children1) = time.perf_counter() - t0, _cpu()
        print(f"{label}：{result.households} 户，{len(result.rows)} 条问题，用时 {total:.2f} 秒"
              f"（CPU 本进程 {own1 - own0:.2f} 秒 + 子进程 {children1 - children0:.2f} 秒）")
    dataset = load_dataset(data)
    t0 = time.perf_counter()
    audit_dataset(dataset)
    print(f"仅规则检查（记录已载入）：用时 {time.perf_counter() - t0:.2f} 秒")


def _command(checkout: Path, data: Path, cache: Path) -> tuple[float, float]:
    """Wall and CPU seconds (with worker processes) of one ``audit`` command."""
    env = {**os.environ, "PYTHONPATH": str(checkout), "ARCHIVE_BUILDER_CACHE_DIR": str(cache)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "archive_builder", "-q", "audit", str(data)], cwd=checkout,
                          env=env, capture_output=True, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode not in (0, 1):
        sys.exit(f"{checkout}: audit failed ({done.returncode}): {done.stderr.decode()[-2000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def against(commit: str, data: Path, runs: int, work: Path) -> None:
    other = work / "other"
    subprocess.run(["git", "worktree", "add", "-q", "--detach", str(other), commit], cwd=ROOT, check=True)
    try:
        checkouts = {commit: other, "this": ROOT}
        for checkout in checkouts.values():  # an installed package has compiled bytecode
            compileall.compile_dir(str(checkout / "archive_builder"), quiet=1)
        results: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for _ in range(runs):
            for name, checkout in checkouts.items():
                cache = work / f"cache-{name}"
                shutil.rmtree(cache, ignore_errors=True)
                results.setdefault((name, "冷启动"), []).append(_command(checkout, data, cache))
                results.setdefault((name, "热启动"), []).append(_command(checkout, data, cache))
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(other)], cwd=ROOT, check=False)
    for (name, label), figures in results.items():
        walls = sorted(w for w, _ in figures)
        print(f"{name:>12} {label}：用时中位数 {statistics.median(walls):.2f} 秒（{walls[0]:.2f}–{walls[-1]:.2f}），"
              f"CPU {statistics.median(c for _, c in figures):.2f} 秒")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="问题台账检查用时 / time the audit of a township")
    ap.add_argument("data", type=Path, nargs="?", help="数据目录（默认：生成合成乡镇）")
    ap.add_argument("--households", type=int, default=2000)
    ap.add_argument("--villages", type=int, default=8)
    ap.add_argument("--against", metavar="COMMIT", help="与该提交交替运行整个命令，比较用时")
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ab-audit-") as work:
        os.environ["ARCHIVE_BUILDER_CACHE_DIR"] = str(Path(work) / "cache")
        data = args.data
        if data is None:
            from benchmarks.generate import main as generate

            data = Path(work) / "township"
            generate([str(data), "--households", str(args.households), "--villages", str(args.villages),
                      "--photos", "0"])
        if args.against:
            against(args.against, data.resolve(), args.runs, Path(work))
        else:
            in_process(data)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
