"""Box collation alone: prints figures, asserts nothing.

    python benchmarks/collate.py [--packets 13] [--runs 15] [--work /tmp/archive-builder-bench]
    python benchmarks/collate.py --ab <commit> [--rounds 8]

Collates one box of the first PACKETS household packets of the benchmark village's last
build (``benchmarks/village.py`` makes it; run it once first) again and again, and prints
the median wall and CPU milliseconds of ``collate_box``. The font set is loaded and one box
written before timing starts (a worker collating a village's boxes has them loaded too).

``--ab COMMIT`` times the same box alternately with a temporary ``git worktree`` of COMMIT
and with this checkout, a few collations per turn, so both see the same machine minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _packets(out: Path, count: int) -> list[Any]:
    import pikepdf

    from archive_builder.archive.collate import PacketInfo

    folder = next(out.glob("*/分户档卡"))
    infos = []
    for item_no, pdf in enumerate(sorted(folder.glob("*.pdf"))[:count], start=1):
        with pikepdf.open(pdf) as doc:
            pages = len(doc.pages)
        infos.append(PacketInfo(pdf.stem, f"户主{item_no}", 3, "脱贫户", item_no, pdf, pages))
    return infos


def child(work: Path, count: int, runs: int) -> None:
    """Collate ``runs`` times with the code on ``sys.path``; print the times as JSON."""
    from archive_builder.archive.build import BuildOptions, read_settings
    from archive_builder.archive.collate import PrintOptions, VillageInfo, collate_box
    from archive_builder.archive.packet import configured_fonts, font_set, template_set

    data = work / "data-231"
    config = read_settings(data, BuildOptions()).config
    fonts = font_set(configured_fonts(template_set(config.templates.set, data, data), config, data))
    packets = _packets(work / "out", count)
    village = VillageInfo("411621105201", "李庄村", "扶沟县", "练寺镇", 2024, "Z012", "练寺镇人民政府", "永久")
    options = PrintOptions(duplex=True, sheets_per_box=10_000)
    walls, cpus = [], []
    with tempfile.TemporaryDirectory(prefix="collate-") as tmp:
        result = None
        for run in range(runs + 1):
            wall, cpu = time.perf_counter(), time.process_time()
            result = collate_box(village, 1, 1, packets, Path(tmp), options, fonts=fonts, date="2025-03-01")
            if run:  # the first one loads what a worker has loaded already
                walls.append(time.perf_counter() - wall)
                cpus.append(time.process_time() - cpu)
        assert result is not None
        print(json.dumps({"walls": walls, "cpus": cpus, "pages": result.pages,
                          "bytes": result.file.stat().st_size}))


def _run(checkout: Path, work: Path, count: int, runs: int) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "collate.py"), "--child", "--work", str(work),
                           "--packets", str(count), "--runs", str(runs)],
                          cwd=checkout, env=env, check=True, capture_output=True, text=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _print(name: str, results: list[dict[str, Any]]) -> None:
    walls = [w for r in results for w in r["walls"]]
    cpus = [c for r in results for c in r["cpus"]]
    print(f"{name:>12}  {results[0]['pages']} pages, {results[0]['bytes'] / 1e6:.2f} MB: "
          f"{1000 * statistics.median(walls):.0f} ms wall median ({1000 * min(walls):.0f}–{1000 * max(walls):.0f}), "
          f"{1000 * statistics.median(cpus):.0f} ms CPU")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--packets", type=int, default=13)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--rounds", type=int, default=8, help="--ab: turns of each checkout")
    parser.add_argument("--work", type=Path, default=Path("/tmp/archive-builder-bench"))
    parser.add_argument("--ab", metavar="COMMIT", help="compare with this commit, interleaved")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not (args.work / "out").is_dir():
        sys.exit(f"{args.work}/out does not exist: run benchmarks/village.py first")
    if args.child:
        child(args.work, args.packets, args.runs)
        return
    if not args.ab:
        _print("this", [_run(ROOT, args.work, args.packets, args.runs)])
        return
    with tempfile.TemporaryDirectory(prefix="ab-collate-") as tmp:
        other = Path(tmp) / "other"
        subprocess.run(["git", "worktree", "add", "-q", "--detach", str(other), args.ab], cwd=ROOT, check=True)
        try:
            # the child script of this checkout runs against either checkout's package
            checkouts = {args.ab: other, "this": ROOT}
            results: dict[str, list[dict[str, Any]]] = {name: [] for name in checkouts}
            for _ in range(args.rounds):
                for name, checkout in checkouts.items():
                    results[name].append(_run(checkout, args.work, args.packets, 3))
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(other)], cwd=ROOT, check=False)
    for name, runs in results.items():
        _print(name, runs)


if __name__ == "__main__":
    main()
