"""Disk use of a build output folder: prints figures, asserts nothing.

    python benchmarks/disk.py OUT [OUT ...]

For each output folder: the bytes on disk per household of the box PDFs (and spines), the
per-household packets, the version store and the rest (caches, state), and whether the file
system lets the store share blocks with the packets (reflink). ``disk_usage`` in
archive_builder/archive/outdir.py computes them; other benchmarks call it too.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from archive_builder.archive.outdir import disk_usage


def main(argv: list[str]) -> None:
    for out in argv or ["."]:
        usage = disk_usage(Path(out))
        each = usage.per_household()
        print(f"{out}: {usage.households} households, {usage.total / 1e6:.1f} MB on disk "
              f"({'reflink: the store shares blocks with the packets' if usage.store_shared else 'no reflink: the store holds copies'})")
        for kind in ("boxes", "packets", "store", "other", "total"):
            total = usage.total if kind == "total" else getattr(usage, kind)
            print(f"  {kind:<8} {total / 1e6:8.1f} MB  {each[kind] / 1e3:7.0f} kB/household")


if __name__ == "__main__":
    main(sys.argv[1:])
