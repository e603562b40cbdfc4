"""A build started from the pages runs here, in its own process: ``python -m archive_builder.web.buildchild``.

The server's threads stay apart from the build's worker pool. Progress goes to the server
as one JSON object per line on stdout (the protocol of this pipe, not text for people).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from ..errors import ArchiveError


class _PipeReporter:
    """``build.Reporter`` writing progress events for the server."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def _send(self, kind: str, value: Any) -> None:
        self.stream.write(json.dumps([kind, value], ensure_ascii=False) + "\n")
        self.stream.flush()

    def stage(self, name: str) -> None:
        self._send("stage", name)

    def start(self, total: int, label: str) -> None:
        self._send("start", [total, label])

    def advance(self, text: str = "") -> None:
        self._send("advance", text)

    def warn(self, text: str) -> None:
        self._send("warn", text)


def _problem_text(problem: Any) -> str:
    where = f"户 {problem.household_id}：" if getattr(problem, "household_id", None) else ""
    hint = f"（{problem.hint}）" if getattr(problem, "hint", None) else ""
    return f"{where}{problem.message}{hint}"


def main(argv: list[str]) -> int:
    from .core import build_now

    data_dir, out_dir, *villages = argv
    reporter = _PipeReporter(sys.stdout)
    try:
        summary = build_now(Path(data_dir), Path(out_dir), tuple(villages), reporter, jobs=None)
        warnings = [str(w) for w in summary.warnings]
        warnings += [_problem_text(p) for p in summary.problems if not p.is_error]
        reporter._send("done", {"line": summary.line(), "failed": [list(f) for f in summary.failed[:50]],
                                "warnings": warnings[:500], "more_warnings": max(0, len(warnings) - 500)})
    except ArchiveError as exc:
        reporter._send("error", {"kind": exc.kind, "message": exc.message, "hint": exc.hint or ""})
    except Exception as exc:  # noqa: BLE001 - reported on the page, never a traceback
        reporter._send("error", {"kind": "内部错误", "message": f"{type(exc).__name__}: {exc}", "hint": ""})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
