"""Builds started from the web app: one at a time per output directory, in a child process,
with its progress kept for the page that shows it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import OutputError

if TYPE_CHECKING:  # pragma: no cover
    from .workspace import Workspace


class BuildBusy(OutputError):
    """Another build (the CLI or this server) holds the output folder."""



# --- builds ---------------------------------------------------------------------------------


def lock_held(out_dir: Path) -> bool:
    """Whether another build (any process) holds the output folder's lock right now."""
    from ..archive.outdir import LOCK, build_lock

    if not (out_dir / LOCK).exists():
        return False
    try:
        with build_lock(out_dir):
            return False
    except OutputError:
        return True
    except OSError:
        return False


@dataclass
class BuildState:
    running: bool = False
    villages: tuple[str, ...] = ()
    stage: str = ""
    total: int = 0
    done: int = 0
    label: str = ""
    finished: bool = False
    summary: str = ""
    failed: list[tuple[str, str]] = field(default_factory=list)
    #: the warnings the summary line counts (the first 500), and how many more there were
    warnings: list[str] = field(default_factory=list)
    more_warnings: int = 0
    error: dict[str, str] | None = None
    started_at: float = 0.0


class BuildJob:
    """At most one build started from the pages at a time; progress read by polling."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self.state = BuildState()
        self._lock = threading.Lock()

    def start(self, villages: tuple[str, ...]) -> None:
        with self._lock:
            if self.state.running:
                raise BuildBusy("已有一个生成任务在进行中", hint="请等待它结束")
            if lock_held(self.workspace.out_dir):
                raise BuildBusy("另一个生成任务（例如命令行中的 archive-builder build）正在使用输出目录",
                                hint="请等待该任务结束后再生成")
            self.state = BuildState(running=True, villages=villages, stage="准备中", started_at=time.time())
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "archive_builder.web.buildchild", str(self.workspace.data_dir),
                 str(self.workspace.out_dir), *villages],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                text=True, encoding="utf-8",
            )
        except OSError as exc:
            self.state.running = False
            raise OutputError("无法启动生成进程", hint="请检查程序安装是否完整") from exc
        threading.Thread(target=self._follow, args=(process,), daemon=True).start()

    def _follow(self, process: Any) -> None:
        state = self.state
        try:
            with process.stdout:
                for line in process.stdout:
                    self._event(state, line)
            process.wait()
            if not state.finished:
                state.error = {"kind": "生成中断", "message": "生成进程意外退出，本次生成没有完成",
                               "hint": "已写出的文件都是完整的；请重新生成"}
                state.finished = True
            self.workspace.load()
        finally:
            state.running = False

    @staticmethod
    def _event(state: BuildState, line: str) -> None:
        try:
            kind, value = json.loads(line)
        except ValueError:
            return
        if kind == "stage":
            state.stage, state.total, state.done, state.label = value, 0, 0, ""
        elif kind == "start":
            state.total, state.label = value
            state.done = 0
        elif kind == "advance":
            state.done += 1
        elif kind == "done":
            state.summary, state.failed = value["line"], [tuple(f) for f in value["failed"]]
            state.warnings = [str(w) for w in value.get("warnings", [])]
            state.more_warnings = int(value.get("more_warnings", 0))
            state.finished = True
        elif kind == "error":
            state.error, state.finished = value, True

    def as_json(self) -> dict[str, Any]:
        s = self.state
        return {
            "running": s.running, "stage": s.stage, "total": s.total, "done": s.done, "label": s.label,
            "finished": s.finished and not s.running, "summary": s.summary, "error": s.error,
            "failed": [f"户 {hid}：{reason}" for hid, reason in s.failed],
            "warnings": s.warnings, "more_warnings": s.more_warnings,
            "villages": list(s.villages),
            # shown with the result, which stays until the next build: "生成完成（23:40）"
            "started": time.strftime("%H:%M", time.localtime(s.started_at)) if s.started_at else "",
            "other": (not s.running) and lock_held(self.workspace.out_dir),
        }
