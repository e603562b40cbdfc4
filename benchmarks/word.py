"""The Word route against the PDF route: prints figures, asserts nothing.

    python benchmarks/word.py [--runs 3] [--jobs 2] [--only pdf,docx,forms,packet,lo] [--against COMMIT]

On ``households_sample`` (a copy), each a fresh build (``-j 2``) in a new process, the kinds
alternated run by run (this machine's speed drifts within minutes), medians printed:

- ``pdf``:    ``build --format pdf``
- ``docx``:   ``build --format pdf,docx`` (and its cost over ``pdf``, per household)
- ``forms``:  ``build --templates county-forms`` (the 申请书 a Word form, converted by LibreOffice)
- ``packet``: ``packet --templates county-forms`` of one household, cold process (LibreOffice
  started for it); and the warm figure: the same packet rendered again in one process (the
  web app's regenerate: the process's LibreOffice profile is kept, soffice started per form)
- ``lo``: LibreOffice alone on one filled form, the choice of the single-packet path: one
  ``soffice --convert-to`` with a new profile, with a kept profile, and handed to a resident
  soffice through its own pipe (a second ``soffice`` forwards its arguments), with whether
  the resident is still there afterwards

each with wall seconds and CPU seconds (user + sys of the command and everything it
started, LibreOffice included), and the number of LibreOffice processes each run started (``soffice`` is wrapped by a
script that counts its calls, through ``ARCHIVE_BUILDER_SOFFICE``). ``--against COMMIT``
runs every measurement with a temporary ``git worktree`` of COMMIT too, alternating with this
checkout, and prints both.
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
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "households_sample"
WARM_SCRIPT = """
import resource, sys, time
from pathlib import Path
from archive_builder.archive.packet import make_packet
def cpu():
    return sum(getattr(resource.getrusage(who), f) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
               for f in ("ru_utime", "ru_stime"))
data, hid, out = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
make_packet(data, hid, out / "first.pdf", template_set_name="county-forms")
times = []
for i in range(3):
    started, used = time.perf_counter(), cpu()
    make_packet(data, hid, out / f"again{i}.pdf", template_set_name="county-forms")
    times.append((time.perf_counter() - started, cpu() - used))
print(*sorted(times)[1])
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


def children_cpu() -> float:
    """CPU seconds (user + sys) of the finished children and everything they waited for."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def run(cmd: list[str], env: dict[str, str], log: Path, cwd: Path) -> tuple[float, float, int]:
    log.write_text("", encoding="utf-8")
    started, used = time.perf_counter(), children_cpu()
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, check=False)
    wall, cpu = time.perf_counter() - started, children_cpu() - used
    if proc.returncode not in (0, 1):
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr.decode()[-2000:]}")
    return wall, cpu, len(log.read_text(encoding="utf-8").splitlines())


LO_SCRIPT = """
import sys
from pathlib import Path
from archive_builder.render.forms import render_form
render_form(Path(sys.argv[1]), {}, Path(sys.argv[2]))
"""
LO_OPTIONS = ["--headless", "--invisible", "--nologo", "--norestore", "--nolockcheck", "--nodefault"]


def measure_lo(real: str, work: Path, run_no: int) -> dict[str, tuple[float, float, int]]:
    """LibreOffice alone on the sample's filled 申请书: wall, CPU, and (for the resident)
    whether it was still running after the conversion handed to it."""
    form = work / f"lo-{run_no}" / "form.docx"
    form.parent.mkdir()
    subprocess.run([sys.executable, "-c", LO_SCRIPT, str(ROOT / "templates/county-forms/forms/申请书.docx"),
                    str(form)], cwd=ROOT, check=True, capture_output=True)
    out: dict[str, tuple[float, float, int]] = {}
    kept = work / f"lo-{run_no}" / "kept"

    def convert(profile: Path, name: str) -> tuple[float, float]:
        started, used = time.perf_counter(), children_cpu()
        subprocess.run([real, f"-env:UserInstallation={profile.as_uri()}", *LO_OPTIONS, "--convert-to", "pdf",
                        "--outdir", str(form.parent / name), str(form)], check=True, capture_output=True,
                       timeout=300)
        if not (form.parent / name / "form.pdf").is_file():
            sys.exit(f"LibreOffice did not convert the form ({name})")
        return time.perf_counter() - started, children_cpu() - used

    out["new profile"] = (*convert(work / f"lo-{run_no}" / "new", "new"), 0)
    convert(kept, "warmup")
    out["kept profile"] = (*convert(kept, "kept"), 0)
    resident_profile = work / f"lo-{run_no}" / "resident"
    convert(resident_profile, "warmup2")
    resident = subprocess.Popen([real, f"-env:UserInstallation={resident_profile.as_uri()}", *LO_OPTIONS,
                                 f"--accept=pipe,name=ab_word_{os.getpid()}_{run_no};urp;"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        time.sleep(8)  # let it start (not measured)
        wall, cpu = convert(resident_profile, "resident")
        time.sleep(1)
        alive = resident.poll() is None
    finally:
        try:
            os.killpg(resident.pid, 9)
        except OSError:
            pass
        resident.wait()
    out["resident (pipe)"] = (wall, cpu, int(alive))
    return out


def measure(checkout: Path, data: Path, work: Path, kinds: list[str], jobs: int, soffice: Path, log: Path,
            results: dict[str, list[tuple[float, float, int]]], warm: list[tuple[float, float]], run_no: int) -> None:
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
        if kind not in commands:
            continue
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
        wall, cpu = proc.stdout.strip().splitlines()[-1].split()
        warm.append((float(wall), float(cpu)))
        shutil.rmtree(out, ignore_errors=True)


LABELS = {"pdf": "PDF only", "docx": "PDF + .docx", "forms": "county-forms (batch)",
          "packet": "county-forms packet (cold)"}


def report(name: str, count: int, results: dict[str, list[tuple[float, float, int]]],
           warm: list[tuple[float, float]]) -> None:
    print(f"== {name}")
    median = {k: statistics.median(w for w, _, _ in v) for k, v in results.items() if v}
    cpu = {k: statistics.median(c for _, c, _ in v) for k, v in results.items() if v}
    for kind, runs in results.items():
        if not runs:
            continue
        walls = sorted(w for w, _, _ in runs)
        procs = statistics.median(n for _, _, n in runs)
        per = 1 if kind == "packet" else count
        print(f"{LABELS[kind]:>28}: {median[kind]:6.2f} s ({walls[0]:.2f}–{walls[-1]:.2f})"
              f"  {median[kind] / per * 1000:6.0f} ms wall, {cpu[kind] / per * 1000:6.0f} ms CPU per household"
              f"  soffice runs {procs:g}")
    if "pdf" in median and "docx" in median:
        print(f"{'.docx over PDF':>28}: {(median['docx'] - median['pdf']) / count * 1000:+6.0f} ms wall, "
              f"{(cpu['docx'] - cpu['pdf']) / count * 1000:+6.0f} ms CPU per household")
    if warm:
        print(f"{'county-forms packet (warm)':>28}: {statistics.median(w for w, _ in warm):6.2f} s wall, "
              f"{statistics.median(c for _, c in warm):.2f} s CPU  (make_packet again in the same process)")


def report_lo(runs: list[dict[str, tuple[float, float, int]]]) -> None:
    print("== LibreOffice alone, one filled 申请书 (the single-packet path's choice)")
    for key in runs[0]:
        wall = statistics.median(r[key][0] for r in runs)
        cpu = statistics.median(r[key][1] for r in runs)
        note = ""
        if key.startswith("resident"):
            alive = sum(r[key][2] for r in runs)
            note = (f"  resident still running afterwards in {alive} of {len(runs)} runs"
                    + ("" if alive else " (LibreOffice ends after a forwarded --convert-to: not a warm converter)"))
        if key.startswith("resident"):
            note = " (the forwarding soffice's; the resident's own not counted)" + note
        print(f"{key:>28}: {wall:6.2f} s wall, {cpu:5.2f} s CPU{note}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--only", default="pdf,docx,forms,packet,lo")
    parser.add_argument("--against", help="a commit to measure too, alternating with this checkout")
    args = parser.parse_args()
    kinds = [k.strip() for k in args.only.split(",") if k.strip()]

    with tempfile.TemporaryDirectory(prefix="ab-word-") as tmp:
        work = Path(tmp)
        data = work / "data"
        shutil.copytree(SAMPLE, data)
        count = len(households(data))
        real = find_soffice()
        wrapper, log = counting_wrapper(work, real)
        checkouts = {"this checkout": ROOT}
        if args.against:
            other = work / "other"
            subprocess.run(["git", "worktree", "add", "-q", "--detach", str(other), args.against], cwd=ROOT, check=True)
            checkouts = {args.against: other, **checkouts}
        lo_runs: list[dict[str, tuple[float, float, int]]] = []
        try:
            results: dict[str, dict[str, list[tuple[float, float, int]]]] = {
                name: {k: [] for k in kinds if k in LABELS} for name in checkouts}
            warm: dict[str, list[tuple[float, float]]] = {name: [] for name in checkouts}
            for i in range(args.runs):
                for name, checkout in checkouts.items():
                    measure(checkout, data, work, kinds, args.jobs, wrapper, log, results[name], warm[name],
                            i)
                if "lo" in kinds:
                    lo_runs.append(measure_lo(real, work, i))
        finally:
            if args.against:
                subprocess.run(["git", "worktree", "remove", "--force", str(work / "other")], cwd=ROOT, check=False)
    print(f"households_sample: {count} households, -j {args.jobs}, {args.runs} runs each, medians")
    for name in checkouts:
        report(name, count, results[name], warm[name])
    if lo_runs:
        report_lo(lo_runs)


if __name__ == "__main__":
    main()
