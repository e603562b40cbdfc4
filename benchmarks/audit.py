"""Time ``archive-builder audit`` on a township (问题台账基准).

Usage: python benchmarks/audit.py [DATA] [--households 2000 --villages 8]

Without DATA, a synthetic township is generated once (benchmarks/generate.py, no photos) in a
temporary folder. Prints the time of a cold audit (records parsed; the record cache filled)
and of a warm one (records from the cache), each with the rule evaluation alone.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="问题台账检查用时 / time the audit of a township")
    ap.add_argument("data", type=Path, nargs="?", help="数据目录（默认：生成合成乡镇）")
    ap.add_argument("--households", type=int, default=2000)
    ap.add_argument("--villages", type=int, default=8)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ab-audit-") as work:
        os.environ["ARCHIVE_BUILDER_CACHE_DIR"] = str(Path(work) / "cache")
        data = args.data
        if data is None:
            from benchmarks.generate import main as generate

            data = Path(work) / "township"
            generate([str(data), "--households", str(args.households), "--villages", str(args.villages),
                      "--photos", "0"])
        from archive_builder.checks import audit_dataset, run_audit
        from archive_builder.records.loader import load_dataset

        for label in ("冷启动（解析记录）", "热启动（记录缓存）"):
            t0 = time.perf_counter()
            result = run_audit(data)
            total = time.perf_counter() - t0
            print(f"{label}：{result.households} 户，{len(result.rows)} 条问题，用时 {total:.2f} 秒")
        dataset = load_dataset(data)
        t0 = time.perf_counter()
        audit_dataset(dataset)
        print(f"仅规则检查（记录已载入）：用时 {time.perf_counter() - t0:.2f} 秒")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
