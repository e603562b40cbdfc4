"""Progress on stderr: a bar when stderr is a terminal, plain lines otherwise.

Only the CLI creates a reporter and passes it to ``api.build`` as the progress callback. Nothing here ever writes
to stdout, which carries results only.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO


class TerminalReporter:
    """Implements ``build.Reporter`` for a person at a terminal (or a log file)."""

    def __init__(self, stream: TextIO | None = None, *, quiet: bool = False, verbose: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.verbose = verbose
        self.interactive = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._bar: Any = None
        self._task: Any = None
        self._total = 0
        self._done = 0
        self._last_line = 0.0
        self.warnings: list[str] = []
        self._repeats: dict[str, int] = {}

    def _print(self, text: str) -> None:
        if self._bar is not None:
            self._bar.console.print(text, markup=False, highlight=False)
        else:
            print(text, file=self.stream, flush=True)

    def __call__(self, event: Any) -> None:
        """Show one ``api.ProgressEvent``."""
        if event.kind == "stage":
            self.stage(event.name)
        elif event.kind == "start":
            self.start(event.total, event.label)
        elif event.kind == "advance":
            self.advance(event.text)
        elif event.kind == "warn":
            self.warn(event.text)

    def stage(self, name: str) -> None:
        self._finish_bar()
        if not self.quiet:
            self._print(f"▶ {name}")

    def start(self, total: int, label: str) -> None:
        self._finish_bar()
        self._total, self._done = total, 0
        if self.quiet:
            return
        if self.interactive:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(
                TextColumn(label),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("剩余"),
                TimeRemainingColumn(),
                console=Console(file=self.stream),
                transient=True,
            )
            self._bar.start()
            self._task = self._bar.add_task(label, total=total)

    def advance(self, text: str = "") -> None:
        self._done += 1
        if self._bar is not None:
            self._bar.advance(self._task)
            return
        if self.quiet or not self._total:
            return
        now = time.monotonic()
        # A log gets a line every 2 seconds and at the end, not one per household.
        if now - self._last_line >= 2.0 or self._done == self._total:
            self._last_line = now
            self._print(f"  已完成 {self._done}/{self._total}")

    def warn(self, text: str) -> None:
        """Show a warning once; identical ones (e.g. the same missing font in every packet) are counted."""
        self.warnings.append(text)
        if text in self._repeats:
            self._repeats[text] += 1
            return
        self._repeats[text] = 1
        if not self.quiet:
            self._print(f"警告：{text}")

    def _finish_bar(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def close(self) -> None:
        self._finish_bar()
        repeated = sum(n - 1 for n in self._repeats.values() if n > 1)
        if repeated and not self.quiet:
            self._print(f"（另有 {repeated} 条与上面相同的警告未重复显示）")
