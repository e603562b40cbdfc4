"""The output directory: safety checks, the build lock and atomic writes.

Every file a build publishes is written to a temporary file in the same folder and moved
into place with ``os.replace``, so a run killed at any moment leaves either the old file or
the new one — never half of one.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from ..errors import OutputError, os_reason

MARKER = ".archive-builder-output"
LOCK = ".archive-builder.lock"


def user_cache_dir(name: str) -> Path | None:
    """Return the per-user cache folder ``name`` (fonts, evidence, templates), or None.

    ``$ARCHIVE_BUILDER_CACHE_DIR/<name>`` when set; else ``%LOCALAPPDATA%\\archive-builder\\<name>``
    on Windows and ``$XDG_CACHE_HOME`` (``~/.cache``)``/archive-builder/<name>`` elsewhere.
    """
    env = os.environ.get("ARCHIVE_BUILDER_CACHE_DIR")
    if env:
        return Path(env) / name
    if os.name == "nt":
        base = os.environ.get("LOCALAPPDATA")
        return Path(base) / "archive-builder" / name if base else None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "archive-builder" / name


#: characters no file name may hold on Windows (and "/" nowhere), plus control characters
_UNSAFE_CHARS = re.compile(r'[\\/:*?"<>|\x00-\x1f]')


def safe_file_name(text: str) -> str:
    """``text`` usable as one file or folder name everywhere: unsafe characters become ``_``.

    Village and head names are printed as written; only the names of output files and
    folders made from them pass through here (a village named 李庄/东组 must not become a
    sub-folder, and ``:`` or ``?`` cannot be written on Windows). Trailing dots and spaces,
    which Windows drops, go too.
    """
    return _UNSAFE_CHARS.sub("_", text).strip().rstrip(". ").lstrip(".") or "_"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()


@contextlib.contextmanager
def atomic_file(path: Path, *, durable: bool = True) -> Iterator[BinaryIO]:
    """Yield a handle whose content appears at ``path`` only if the block finishes.

    The temporary file lives beside ``path`` (same filesystem, so ``os.replace`` is atomic)
    and gets the permissions an ordinary new file would have. ``durable`` fsyncs it before the
    move (survives a power cut); the rename alone already survives a killed process, which is
    enough for files the build checks and can remake (packets: ~4 ms of fsync each).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.chmod(tmp, _FILE_MODE)
        _replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


#: seconds to wait before each new try of a refused ``os.replace`` (about 1.5 s in all)
_REPLACE_RETRIES = (0.05, 0.1, 0.2, 0.4, 0.8)


def _replace(tmp: str, path: Path) -> None:
    """``os.replace``, tried again for a while when it is refused; then a clear ``OutputError``.

    On Windows a file cannot be replaced while another program holds it open without
    sharing: a secretary regenerating a packet still shown in the PDF reader, or a Word copy
    open in WPS or Word. A virus scanner looking at a file just written holds it for a
    moment too, so the move is tried again before the clerk is told which file to close.
    """
    for delay in (*_REPLACE_RETRIES, None):
        try:
            os.replace(tmp, path)
            return
        except PermissionError as exc:
            if delay is None:
                raise OutputError(
                    f"无法覆盖文件 {path}：该文件正被其他程序打开（如 PDF 阅读器、WPS、Word），"
                    f"或没有写入权限（{os_reason(exc)}）",
                    hint="请关闭打开该文件的程序后重新运行；仍然失败时，请检查该文件夹的写入权限。",
                ) from exc
            time.sleep(delay)


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_file(path) as handle:
        handle.write(data)


def atomic_write_json(path: Path, value: Any, *, depth: int | None = None, durable: bool = True) -> None:
    """Write ``value`` as indented JSON; with ``depth``, what is nested deeper than that is
    written on one line, by the C encoder (the indented encoder is pure Python: 0.25 s for a
    manifest of 5,000 households), and streamed to the file as it is encoded (a county's
    manifest or state is never held as one string)."""
    if depth is None:
        atomic_write(path, json.dumps(value, ensure_ascii=False, indent=2).encode() + b"\n")
        return
    with atomic_file(path, durable=durable) as handle:
        buffer: list[str] = []
        size = 0
        for piece in _json_pieces(value, depth):
            buffer.append(piece)
            size += len(piece)
            if size > 1 << 16:
                handle.write("".join(buffer).encode())
                buffer, size = [], 0
        buffer.append("\n")
        handle.write("".join(buffer).encode())


def _json_pieces(value: Any, depth: int, indent: str = "") -> Iterator[str]:
    """``value`` as JSON, in pieces: indented down to ``depth``, each deeper value on one line."""
    if depth <= 0 or not isinstance(value, (dict, list)) or not value:
        yield json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
        return
    inner = indent + "  "
    items = value.items() if isinstance(value, dict) else ((None, v) for v in value)
    yield "{" if isinstance(value, dict) else "["
    for index, (key, item) in enumerate(items):
        yield ",\n" if index else "\n"
        yield inner if key is None else f"{inner}{json.dumps(str(key), ensure_ascii=False)}: "
        yield from _json_pieces(item, depth - 1, inner)
    yield f"\n{indent}}}" if isinstance(value, dict) else f"\n{indent}]"


def read_json(path: Path, default: Any) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return default


def default_output(data_dir: Path) -> Path:
    """Return the default output folder: beside the data directory, never inside it."""
    data_dir = data_dir.resolve()
    return data_dir.parent / f"{data_dir.name}-档案输出"


def configured_output(data_dir: Path) -> Path:
    """Return archive.toml's ``[output] dir`` (relative to the data directory), else the default."""
    from ..config import load_archive_config

    toml = Path(data_dir) / "archive.toml"
    if toml.is_file():
        config, _ = load_archive_config(toml)
        if config.output.dir:
            return (Path(data_dir) / config.output.dir).resolve()
    return default_output(data_dir)


def prepare(out_dir: Path, data_dir: Path) -> Path:
    """Check that ``out_dir`` can take a build's output; create it; return it resolved."""
    out = out_dir.resolve()
    data = data_dir.resolve()
    if out == data or data in out.parents:
        raise OutputError(
            f"输出目录 {out_dir} 位于数据目录 {data_dir} 之内",
            hint=f"请把输出放在数据目录之外，例如 -o {default_output(data_dir)}",
        )
    if out in data.parents:
        raise OutputError(
            f"输出目录 {out_dir} 包含了数据目录 {data_dir}",
            hint="请另选一个单独的输出目录",
        )
    _not_a_file(out, out_dir, data_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise OutputError(
            f"无法写入输出目录 {out_dir}：{os_reason(exc)}",
            hint="请检查该目录的权限与磁盘空间，或用 -o 指定其他目录",
        ) from exc
    marker = out / MARKER
    if not marker.exists():
        atomic_write(marker, "archive-builder 输出目录（请勿把数据放在此处）\n".encode())
    return out


def _not_a_file(out: Path, given: Path, data_dir: Path) -> None:
    """Raise OutputError when ``out``, or a folder it would be made in, is a file."""
    for path in (out, *out.parents):
        if path.exists():
            if path.is_dir():
                return
            where = f"输出目录 {given}" if path == out else f"输出目录 {given} 的上级 {path}"
            raise OutputError(
                f"{where} 是一个文件，不是文件夹",
                hint=f"输出目录须是文件夹（不存在时会自动新建）：请用 -o 另选一个文件夹，例如 -o {default_output(data_dir)}",
            )


@contextlib.contextmanager
def build_lock(out_dir: Path, *, wait_seconds: float = 0.0) -> Iterator[None]:
    """Hold the output directory's lock; another build on the same folder fails clearly.

    The lock is an OS file lock (released by the kernel when a process dies, so a killed
    build never leaves a stale lock behind).
    """
    path = out_dir / LOCK
    handle = open(path, "a+b")  # noqa: SIM115 - held for the duration of the build
    deadline = time.monotonic() + wait_seconds
    try:
        while True:
            try:
                _lock(handle)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK) and not isinstance(
                    exc, BlockingIOError
                ):
                    raise
                if time.monotonic() >= deadline:
                    raise OutputError(
                        f"另一个生成任务正在使用输出目录 {out_dir}",
                        hint="请等待该任务结束后再运行，或用 -o 指定其他输出目录",
                    ) from exc
                time.sleep(0.2)
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n".encode())
        handle.flush()
        yield
    finally:
        with contextlib.suppress(OSError):
            _unlock(handle)
        handle.close()


if os.name == "nt":  # pragma: no cover - Windows
    import msvcrt

    def _lock(handle: Any) -> None:
        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]

    def _unlock(handle: Any) -> None:
        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)  # type: ignore[attr-defined]

else:
    import fcntl

    def _lock(handle: Any) -> None:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)

    def _unlock(handle: Any) -> None:
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


#: the folder of each village holding its households' packets (the build's PACKETS_DIR)
PACKETS_FOLDER = "分户档卡"


@dataclass(frozen=True)
class DiskUsage:
    """Bytes an output folder takes on disk (allocated blocks; a file with several hard links
    counted once), by kind. Blocks a file system shares between files by reflink are counted
    in each file: ``stat`` cannot see the sharing (``store_shared`` says whether the store
    could share blocks with the packets here)."""

    households: int
    boxes: int  # box PDFs and spine labels
    packets: int  # the per-household packets (PDF and Word) in each village's 分户档卡
    store: int  # .store: every version's record and packet
    other: int  # caches, build state, manifest
    store_shared: bool = False

    @property
    def total(self) -> int:
        return self.boxes + self.packets + self.store + self.other

    def per_household(self) -> dict[str, float]:
        """Bytes per household of each kind (and "total")."""
        n = max(1, self.households)
        return {k: getattr(self, k) / n for k in ("boxes", "packets", "store", "other", "total")}


def disk_usage(out_dir: Path) -> DiskUsage:
    """Measure a build output folder: what its boxes, packets, version store and the rest take,
    and how many households its manifest lists (for the benchmarks)."""
    out_dir = Path(out_dir)
    sizes = {"boxes": 0, "packets": 0, "store": 0, "other": 0}
    seen: set[tuple[int, int]] = set()
    for folder, _, files in os.walk(out_dir):
        parts = Path(folder).relative_to(out_dir).parts
        for name in files:
            try:
                st = os.lstat(os.path.join(folder, name))
            except FileNotFoundError:
                continue
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            size = getattr(st, "st_blocks", 0) * 512 or st.st_size
            if parts and parts[0] == ".store":
                kind = "store"
            elif parts and parts[0].startswith("."):
                kind = "other"
            elif PACKETS_FOLDER in parts:
                kind = "packets"
            elif name.lower().endswith(".pdf") and parts:
                kind = "boxes"
            else:
                kind = "other"
            sizes[kind] += size
    manifest = read_json(out_dir / "manifest.json", {})
    households = sum(len(v.get("households", ())) for v in manifest.get("villages", ()))
    return DiskUsage(households=households, **sizes, store_shared=reflink_supported(out_dir))


def reflink_supported(folder: Path) -> bool:
    """Whether the file system of ``folder`` can share blocks between files (reflink)."""
    from ..versions.store import clone_or_copy

    folder = Path(folder)
    try:
        fd, name = tempfile.mkstemp(prefix=".reflink-", dir=folder)
    except OSError:
        return False
    source = Path(name)
    target = source.with_name(source.name + "-copy")
    try:
        os.write(fd, b"x")
        os.close(fd)
        return clone_or_copy(source, target)
    except OSError:
        return False
    finally:
        for path in (source, target):
            with contextlib.suppress(OSError):
                path.unlink()
