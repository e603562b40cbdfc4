"""Interleaved A/B of the full village build: this checkout against another commit.

    python benchmarks/ab.py 2beae6a --runs 8

This machine's speed drifts by ±15 % within an hour, so a figure measured now cannot be
compared with one measured earlier. This script builds the benchmark village (the one
``benchmarks/village.py`` generates, which must exist: run it once first) alternately with
a temporary ``git worktree`` of COMMIT and with this checkout, and prints the median wall
time and CPU (user + system of all processes) of each. Prints figures, asserts nothing.
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


def build(checkout: Path, data: Path, out: Path, jobs: int) -> tuple[float, float]:
    """Wall seconds and CPU seconds (all processes) of one fresh build with ``checkout``'s code."""
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "archive_builder", "-q", "build", str(data), "-o", str(out),
                    "-j", str(jobs)], cwd=checkout, env=env, check=True, capture_output=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("commit", help="the commit to compare with (e.g. the session's starting one)")
    parser.add_argument("--runs", type=int, default=6)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--households", type=int, default=231)
    parser.add_argument("--work", type=Path, default=Path("/tmp/archive-builder-bench"))
    args = parser.parse_args()

    data = args.work / f"data-{args.households}"
    if not (data / "archive.toml").is_file():
        sys.exit(f"{data} does not exist: run benchmarks/village.py --households {args.households} first")
    with tempfile.TemporaryDirectory(prefix="ab-") as tmp:
        other = Path(tmp) / "other"
        subprocess.run(["git", "worktree", "add", "-q", "--detach", str(other), args.commit], cwd=ROOT, check=True)
        try:
            checkouts = {args.commit: other, "this": ROOT}
            for checkout in checkouts.values():  # an installed package has compiled bytecode
                compileall.compile_dir(str(checkout / "archive_builder"), quiet=1)
            results: dict[str, list[tuple[float, float]]] = {name: [] for name in checkouts}
            for _ in range(args.runs):
                for name, checkout in checkouts.items():
                    results[name].append(build(checkout, data, Path(tmp) / f"out-{name}", args.jobs))
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(other)], cwd=ROOT, check=False)
    for name, runs in results.items():
        walls = sorted(w for w, _ in runs)
        print(f"{name:>12}  full build {statistics.median(walls):.2f} s median "
              f"({walls[0]:.2f}–{walls[-1]:.2f}), {statistics.median(c for _, c in runs):.2f} CPU-s")


if __name__ == "__main__":
    main()
