"""The Word route against the PDF route: prints figures, asserts nothing.

    python benchmarks/word.py [--runs 3] [--jobs 2] [--only pdf,docx,forms,packet] [--against COMMIT]

On ``households_sample`` (a copy), each a fresh build (``-j 2``) in a new process, the kinds
alternated run by run (this machine's speed drifts within minutes), medians printed:

- ``pdf``:    ``build --format pdf``
- ``docx``:   ``build --format pdf,docx`` (and its cost over ``pdf``, per household)
- ``forms``:  ``build --templates county-forms`` (the 申请书 a Word form, converted by LibreOffice)
- ``packet``: ``packet --templates county-forms`` of one household, cold process (LibreOffice
  started for it); and the warm figure: the same packet rendered again in one process

with the number of LibreOffice processes each run started (``soffice`` is wrapped by a
script that counts its calls, through ``ARCHIVE_BUILDER_SOFFICE``). ``--against COMMIT``
runs every measurement with a temporary ``git worktree`` of COMMIT too, alternating with this
checkout, and prints both.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "households_sample"
WARM_SCRIPT = """
import sys, time
from pathlib import Path
from archive_builder.archive.packet import make_packet
data, hid, out = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
make_packet(data, hid, out / "first.pdf", template_set_name="county-forms")
times = []
for i in range(3):
    started = time.perf_counter()
    make_packet(data, hid, out / f"again{i}.pdf", template_set_name="county-forms")
    times.append(time.perf_counter() - started)
print(sorted(times)[1])
"""


def find_soffice() -> str:
    from archive_builder.render.forms import find_soffice as find

    exe = find()
    if not exe:
        sys.exit("LibreOffice (soffice) is not installed")
    return exe


def counting_wrapper(work: Path, real: str) -> tuple[Path, Path]:
    """A shell script that logs one line per call, then execs the real soffice (same pid,
    so killing its process group still kills LibreOffice)."""
    log = work / "soffice-calls.log"
    script = work / "soffice"
    script.write_text(f'#!/bin/sh\necho x >> "{log}"\nexec "{real}" "$@"\n', encoding="utf-8")
    script.chmod(0o755)
    return script, log


def households(data: Path) -> list[str]:
    return sorted(p.name.split("_")[0] for v in data.iterdir() if v.is_dir() and not v.name.startswith(".")
                  for p in v.iterdir() if p.is_dir() and p.name[:1].isdigit())


def run(cmd: list[str], env: dict[str, str], log: Path, cwd: Path) -> tuple[float, int]:
    log.write_text("", encoding="utf-8")
    started = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, check=False)
    wall = time.perf_counter() - started
    if proc.returncode not in (0, 1):
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr.decode()[-2000:]}")
    return wall, len(log.read_text(encoding="utf-8").splitlines())


def measure(checkout: Path, data: Path, work: Path, kinds: list[str], jobs: int, soffice: Path, log: Path,
            results: dict[str, list[tuple[float, int]]], warm: list[float], run_no: int) -> None:
    """One run of each kind with ``checkout``'s code."""
    env = {**os.environ, "ARCHIVE_BUILDER_SOFFICE": str(soffice), "PYTHONPATH": str(checkout)}
    exe = [sys.executable, "-m", "archive_builder", "-q"]
    build = [*exe, "build", str(data), "-j", str(jobs)]
    ids = households(data)
    commands = {
        "pdf": [*build, "--format", "pdf", "-o"],
        "docx": [*build, "--format", "pdf,docx", "-o"],
        "forms": [*build, "--templates", "county-forms", "--format", "pdf", "-o"],
        "packet": [*exe, "packet", str(data), ids[0], "--templates", "county-forms", "-o"],
    }
    for kind in kinds:
        out = work / f"out-{kind}-{run_no}"
        target = out / "p.pdf" if kind == "packet" else out
        out.mkdir()
        results[kind].append(run([*commands[kind], str(target)], env, log, checkout))
        shutil.rmtree(out, ignore_errors=True)
    if "packet" in kinds:
        out = work / f"warm-{run_no}"
        out.mkdir()
        proc = subprocess.run([sys.executable, "-c", WARM_SCRIPT, str(data), ids[0], str(out)],
                              env=env, cwd=checkout, capture_output=True, check=True, text=True)
        warm.append(float(proc.stdout.strip().splitlines()[-1]))
        shutil.rmtree(out, ignore_errors=True)


def report(name: str, count: int, results: dict[str, list[tuple[float, int]]], warm: list[float]) -> None:
    print(f"== {name}")
    median = {k: statistics.median(w for w, _ in v) for k, v in results.items()}
    for kind, runs in results.items():
        walls = sorted(w for w, _ in runs)
        procs = statistics.median(n for _, n in runs)
        per = median[kind] / (1 if kind == "packet" else count)
        label = {"pdf": "PDF only", "docx": "PDF + .docx", "forms": "county-forms (batch)",
                 "packet": "county-forms packet (cold)"}[kind]
        print(f"{label:>28}: {median[kind]:6.2f} s ({walls[0]:.2f}–{walls[-1]:.2f})"
              f"  {per * 1000:7.0f} ms per household  soffice runs {procs:g}")
    if "pdf" in median and "docx" in median:
        print(f"{'.docx over PDF':>28}: {(median['docx'] - median['pdf']) / count * 1000:+7.0f} ms per household")
    if warm:
        print(f"{'county-forms packet (warm)':>28}: {statistics.median(warm):6.2f} s"
              "  (make_packet again in the same process)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--only", default="pdf,docx,forms,packet")
    parser.add_argument("--against", help="a commit to measure too, alternating with this checkout")
    args = parser.parse_args()
    kinds = [k.strip() for k in args.only.split(",") if k.strip()]

    with tempfile.TemporaryDirectory(prefix="ab-word-") as tmp:
        work = Path(tmp)
        data = work / "data"
        shutil.copytree(SAMPLE, data)
        count = len(households(data))
        wrapper, log = counting_wrapper(work, find_soffice())
        checkouts = {"this checkout": ROOT}
        if args.against:
            other = work / "other"
            subprocess.run(["git", "worktree", "add", "-q", "--detach", str(other), args.against], cwd=ROOT, check=True)
            checkouts = {args.against: other, **checkouts}
        try:
            results = {name: {k: [] for k in kinds} for name in checkouts}
            warm: dict[str, list[float]] = {name: [] for name in checkouts}
            for i in range(args.runs):
                for name, checkout in checkouts.items():
                    measure(checkout, data, work, kinds, args.jobs, wrapper, log, results[name], warm[name],
                            i)
        finally:
            if args.against:
                subprocess.run(["git", "worktree", "remove", "--force", str(work / "other")], cwd=ROOT, check=False)
    print(f"households_sample: {count} households, -j {args.jobs}, {args.runs} runs each, medians")
    for name in checkouts:
        report(name, count, results[name], warm[name])


if __name__ == "__main__":
    main()
