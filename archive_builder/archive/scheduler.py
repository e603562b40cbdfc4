"""The worker processes of a build: one pool, started once, fed while the build still plans.

The build hands work over as it finds it (``submit``) and collects the results in order
(``gather``); this module decides where the work runs:

- with one job, or while only one task waits and no pool runs, in the build's own process
  when the results are gathered (starting workers costs more than one task);
- otherwise in a pool of worker processes kept for the whole build. With ``fork``, the pool
  can be started *early* (``start_early``), before the records are read: the workers are
  small then, and they load the rendering modules and fonts while the parent reads the data
  directory. A pool started later runs ``on_start`` first (the build registers the fonts
  there), so every worker inherits what it prepared.

Only the parent reports progress (``gather``'s ``advance``). A worker that dies (killed, out
of memory) ends the build with :class:`~archive_builder.errors.WorkerLostError`.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, as_completed, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Self

from ..errors import WorkerLostError, quiet_library_logs

#: allocations between collections of the youngest generation (Python's default: 700).
#: Rendering and collating allocate millions of short-lived objects, nearly all freed by
#: reference counting; a higher threshold runs the cycle collector far less often.
GC_YOUNG = 20_000
#: households to parse per worker process at least (fewer are parsed in the parent)
PARSE_PER_WORKER = 32
#: households a worker parses per task
_CHUNK = 16
#: tasks waiting or running per worker process before ``submit(throttle=True)`` waits
IN_FLIGHT_PER_WORKER = 8
#: the parent parses this share of the households itself while the workers parse the rest,
#: so that all finish together: own·1 + rest·u = rest/jobs·(1 + p), with unpickling u ≈ 0.2
#: and pickling p ≈ 0.1 of parsing
_UNPICKLE, _PICKLE = 0.2, 0.1


def default_jobs(jobs: int | None, configured: int | None) -> int:
    """Return the number of worker processes: ``jobs``, else ``configured``, else the CPUs."""
    return bounded_jobs(jobs, configured)[0]


def bounded_jobs(jobs: int | None, configured: int | None) -> tuple[int, str | None]:
    """The number of worker processes and, when the setting was lowered, a sentence saying so.

    archive.toml's ``[build] workers`` is at most the CPUs (each worker is a whole process with
    its own fonts; ``workers = 100000`` must not start 100,000 of them); ``-j``, typed for this
    run, at most four per CPU.
    """
    cpus = os.cpu_count() or 1
    wanted = jobs or configured or cpus
    limit = 4 * cpus if jobs else cpus
    if wanted <= limit:
        return max(1, wanted), None
    where = f"-j {wanted}" if jobs else f"archive.toml 中 [build] workers = {wanted}"
    return limit, f"{where} 超过本机的处理器数 {cpus}，已按 {limit} 个并行进程运行"


@contextmanager
def young_gc() -> Iterator[None]:
    """Collect the youngest generation less often for the duration (workers forked inside inherit it)."""
    threshold = gc.get_threshold()
    gc.set_threshold(GC_YOUNG, *threshold[1:])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)


@dataclass(eq=False)
class Task:
    """One unit of work handed to the scheduler; ``future`` is set once it went to a worker."""

    function: Callable[..., Any]
    args: tuple[Any, ...]
    future: Future[Any] | None = None

    def run_here(self) -> Any:
        return self.function(*self.args)


@dataclass(eq=False)
class Scheduler:
    """The worker pool of one build. Use as a context manager: leaving it shuts the pool down."""

    jobs: int
    #: run in the parent just before a pool is started by ``submit`` (not by ``start_early``)
    on_start: Callable[[], None] | None = None
    _pool: ProcessPoolExecutor | None = None
    _waiting: list[Task] = field(default_factory=list)
    _in_flight: list[Future[Any]] = field(default_factory=list)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None
        if isinstance(exc, BrokenProcessPool):
            raise WorkerLostError(
                "一个生成进程意外退出（可能是内存不足，或被系统、杀毒软件结束），本次生成没有完成；"
                "已写出的文件都是完整的，manifest.json 仍是上次生成的",
                hint="关闭占用内存较多的程序后重新运行，即可补全；若反复出现，请用 --jobs 1 运行，"
                "并加 -v 把输出报告给维护人员",
            ) from exc

    @property
    def forks(self) -> bool:
        return self.jobs >= 2 and multiprocessing.get_start_method() == "fork"

    def start_early(self, warm: Callable[[], None] | None = None) -> None:
        """Start the pool now when workers are forked (spawning one costs ~0.4 s): before the
        parent grows, each worker running ``warm`` (module-level, picklable) to load what
        its first task needs."""
        if self.forks and self._pool is None:
            self._start(warm)

    def _start(self, warm: Callable[[], None] | None = None) -> None:
        pool = ProcessPoolExecutor(max_workers=self.jobs, initializer=_start_worker, initargs=(warm,))
        # The parent's objects are frozen for the fork: the workers' garbage collector then
        # never walks them, which would touch, and copy, most of the parent's memory.
        gc.freeze()
        try:
            # With fork, the first submit forks every worker before it returns; not waiting
            # for the task lets the parent go on while the workers start up.
            pool.submit(int)
        finally:
            gc.unfreeze()
        self._pool = pool

    def parse_many(self, function: Callable[..., Any], argument_lists: list[tuple[Any, ...]]) -> Iterator[Any]:
        """Yield ``function(*args)`` for each, in order: in chunks on the workers, a share in the parent.

        The parent parses every few chunks itself, between those it takes from the workers,
        and at most ``IN_FLIGHT_PER_WORKER`` chunks a worker are handed over ahead: the results
        are consumed as they come, never all held at once (flat memory)."""
        count = len(argument_lists)
        if not self.forks or count < PARSE_PER_WORKER:
            yield from (function(*args) for args in argument_lists)
            return
        if self._pool is None:
            self._start()
        assert self._pool is not None
        share = max(0.0, (1.1 / self.jobs - _UNPICKLE) / (1 - _UNPICKLE + 1.1 / self.jobs))
        chunks = [argument_lists[i:i + _CHUNK] for i in range(0, count, _CHUNK)]
        # chunk i is the parent's when it crosses the next multiple of 1/share
        mine = {i for i in range(len(chunks)) if int((i + 1) * share) > int(i * share)}
        theirs = [i for i in range(len(chunks)) if i not in mine]
        futures: dict[int, Future[Any]] = {}
        ahead = IN_FLIGHT_PER_WORKER * self.jobs
        handed = 0
        for i, chunk in enumerate(chunks):
            while handed < len(theirs) and len(futures) < ahead:
                futures[theirs[handed]] = self._pool.submit(_run_chunk, function, chunks[theirs[handed]])
                handed += 1
            if i in mine:
                yield from (function(*args) for args in chunk)
            else:
                yield from futures.pop(i).result()

    def submit(self, function: Callable[..., Any], *args: Any, throttle: bool = False) -> Task:
        """Hand over ``function(*args)``; it starts on a worker at once when a pool runs (or
        two tasks wait with several jobs). ``throttle``: wait while many tasks are in flight,
        so their arguments are not all held in memory at once."""
        task = Task(function, args)
        self._waiting.append(task)
        if self._pool is None and (self.jobs < 2 or len(self._waiting) < 2):
            return task
        if self._pool is None:
            if self.on_start is not None:
                self.on_start()
            self._start()
        assert self._pool is not None
        for waiting in self._waiting:
            waiting.future = self._pool.submit(waiting.function, *waiting.args)
            waiting.args = ()  # a worker has them now
            self._in_flight.append(waiting.future)
        self._waiting.clear()
        if throttle:
            self._in_flight = [f for f in self._in_flight if not f.done()]
            if len(self._in_flight) > IN_FLIGHT_PER_WORKER * self.jobs:
                wait(self._in_flight, return_when=FIRST_COMPLETED)
        return task

    def gather(self, tasks: Sequence[Task], advance: Callable[[], None] | None = None) -> list[Any]:
        """Return the tasks' results in order, calling ``advance`` as each one finishes."""
        step = advance or (lambda: None)
        results: dict[int, Any] = {}
        started = {task.future: index for index, task in enumerate(tasks) if task.future is not None}
        for index, task in enumerate(tasks):
            if task.future is None:
                self._waiting.remove(task)
                results[index] = task.run_here()
                step()
        for future in as_completed(started):
            results[started[future]] = future.result()
            step()
        return [results[index] for index in range(len(tasks))]


def _start_worker(warm: Callable[[], None] | None) -> None:
    """Initialise a worker process: quiet library logs, the build's GC threshold, ``warm``."""
    quiet_library_logs()
    gc.set_threshold(GC_YOUNG, *gc.get_threshold()[1:])  # spawned workers do not inherit it
    if warm is None:
        return
    try:
        warm()
    except Exception:  # noqa: BLE001, S110 - only a head start: the tasks report real problems
        pass


def _run_chunk(function: Callable[..., Any], argument_lists: list[tuple[Any, ...]]) -> list[Any]:
    return [function(*args) for args in argument_lists]
