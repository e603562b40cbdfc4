"""Web app benchmark: prints server times, asserts nothing.

    python benchmarks/serve.py [--households 2000] [--villages 10] [--runs 5] [--skip-big]

Times requests through the ASGI app in this process (Starlette's test client: server time
plus a negligible in-process transport), once the records are warm: the township page, a
village page, a search by a member's name, a household page, and regenerating one packet
(render + record its version) — for the sample and for a synthetic township of
``--households`` households (benchmarks/generate.py's generator, without photos).
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _median_ms(function: Callable[[], Any], runs: int) -> float:
    function()  # warm: fonts, templates, caches
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def measure(name: str, data: Path, runs: int) -> None:
    from starlette.testclient import TestClient

    from archive_builder.web.app import create_app

    out = data.parent / f"{data.name}-out"
    started = time.perf_counter()
    app = create_app(data, out)
    app.state.workspace.ensure_loaded()
    load = time.perf_counter() - started
    workspace = app.state.workspace
    village = workspace.villages[0]
    row = village.rows[len(village.rows) // 2]
    member = row.names[-1]
    print(f"\n== {name}: {len(workspace.rows)} 户, {len(workspace.villages)} 个村 ==")
    print(f"load + validate at start       {load * 1000:8.0f} ms")
    with TestClient(app) as client:
        page = client.get(f"/household/{row.household_id}")
        csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
        assert csrf
        timings = {
            "township page": lambda: client.get("/"),
            "village page 1": lambda: client.get(f"/village/{village.code}"),
            "village last page": lambda: client.get(f"/village/{village.code}", params={"page": "9999"}),
            "search by member name": lambda: client.get("/search", params={"q": member}),
            "household page": lambda: client.get(f"/household/{row.household_id}"),
            "regenerate one packet (HTTP)": lambda: client.post(
                f"/household/{row.household_id}/regenerate", data={"csrf": csrf.group(1)}, follow_redirects=False),
            "regenerate one packet (core)": lambda: workspace.regenerate(row.household_id),
        }
        for label, function in timings.items():
            print(f"{label:30s} {_median_ms(function, runs):8.1f} ms")
        versions = workspace.versions(row.household_id)
        print(f"(packet of {row.household_id}: {versions[-1].pages} 页)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="archive-builder serve 服务端耗时 / web app server times")
    ap.add_argument("--households", type=int, default=2000)
    ap.add_argument("--villages", type=int, default=10)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--skip-big", action="store_true", help="只测样例数据")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="serve-bench-") as tmp:
        sample = Path(tmp) / "households_sample"
        shutil.copytree(ROOT / "households_sample", sample)
        measure("households_sample", sample, args.runs)
        if not args.skip_big:
            try:
                from archive_builder.synthetic import VILLAGE_NAMES, write_dataset
            except ImportError:  # the generator lives with the tests in later layouts
                sys.path.insert(0, str(ROOT / "tests"))
                from synthetic import VILLAGE_NAMES, write_dataset  # type: ignore[no-redef]

            per, extra = divmod(args.households, args.villages)
            villages = [(f"411621105{201 + k:03d}", VILLAGE_NAMES[k % len(VILLAGE_NAMES)] + (
                "" if k < len(VILLAGE_NAMES) else str(k)), per + (1 if k < extra else 0))
                for k in range(args.villages)]
            big = Path(tmp) / "township"
            write_dataset(big, villages, seed="serve", photos_per_household=0)
            measure(f"synthetic township ({args.households})", big, args.runs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
