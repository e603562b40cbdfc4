"""Content hashes: what decides whether a household must be rendered again.

A household's hash covers its canonical record, the bytes of its evidence files, the
village and archive settings that print on its pages, the template set, the fonts and the
program version — never file times.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

from .. import __version__

_CHUNK = 1 << 20


def canonical_json(value: Any) -> bytes:
    """Return the canonical JSON bytes of ``value`` (sorted keys, UTF-8, no spaces)."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=_default).encode()


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Path):
        return value.as_posix()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def file_sha256(path: Path) -> str | None:
    """Return the sha256 of a file's bytes, or None when it cannot be read."""
    digest = hashlib.sha256()
    try:
        with open_regular(path) as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    except OSError:
        return None
    return digest.hexdigest()


def open_regular(path: Path) -> Any:
    """Open ``path`` for reading if it is a regular file; raise ``OSError`` otherwise.

    Opening never blocks: a FIFO (named pipe) put where a photo should be would wait for a
    writer forever with a plain ``open``. Directories, pipes, sockets and devices are refused.
    """
    import errno
    import os
    import stat

    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            code = errno.EISDIR if stat.S_ISDIR(mode) else errno.EINVAL
            raise OSError(code, "not a regular file", str(path))
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


class HashMemo:
    """sha256 of files remembered by stat (size, mtime, ctime, inode), kept in a JSON file.

    The hashes stay content hashes; the memo only avoids reading unchanged photos (and font
    files) again on every run, as git's index does. Any stat change means reading the file.
    ``keep_unused`` keeps the entries a run did not look at (a memo shared by many runs that
    each hash a few files, like the font cache's); otherwise ``save`` keeps only those used.
    """

    def __init__(self, path: Path | None, *, keep_unused: bool = False) -> None:
        self.path = path
        self.keep_unused = keep_unused
        self.entries: dict[str, list[Any]] = {}
        self.used: dict[str, list[Any]] = {}
        if path is not None:
            try:
                loaded = json.loads(path.read_bytes())
                if isinstance(loaded, dict):
                    self.entries = loaded
            except (OSError, ValueError):
                pass

    def sha256(self, path: Path) -> str | None:
        key = str(path)
        try:
            st = path.stat()
        except OSError:
            return None
        stamp = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
        entry = self.entries.get(key)
        if isinstance(entry, list) and len(entry) == 5 and entry[:4] == stamp and isinstance(entry[4], str):
            self.used[key] = entry
            return str(entry[4])
        digest = file_sha256(path)
        if digest is not None:
            self.used[key] = [*stamp, digest]
        return digest

    def save(self) -> None:
        """Write the entries this run used (and, with ``keep_unused``, the others it read)."""
        kept = {**self.entries, **self.used} if self.keep_unused else self.used
        if self.path is not None and kept != self.entries:
            from .outdir import atomic_write_json

            atomic_write_json(self.path, kept, depth=1, durable=False)  # a line a file; a cache


_MEMO: HashMemo | None = None


def use_memo(memo: HashMemo | None) -> None:
    """Let :func:`evidence_hashes` in this process consult ``memo`` (None: always read files)."""
    global _MEMO
    _MEMO = memo


def evidence_hashes(sources: Iterable[tuple[str, Path]]) -> dict[str, str]:
    """Return ``{display path: sha256 or "missing"}`` for the given evidence files."""
    sha = _MEMO.sha256 if _MEMO is not None else file_sha256
    return {display: sha(path) or "missing" for display, path in sources}


def household_hash(
    record: Mapping[str, Any] | bytes,
    *,
    evidence: Mapping[str, str],
    settings: Mapping[str, Any],
    template_fingerprint: str,
    font_fingerprint: str,
) -> str:
    """Return the household's content hash (hex sha256); ``record`` may be its canonical JSON."""
    digest = hashlib.sha256()
    for part in (
        record if isinstance(record, bytes) else canonical_json(record),
        canonical_json(dict(evidence)),
        canonical_json(dict(settings)),
        template_fingerprint.encode(),
        font_fingerprint.encode(),
        __version__.encode(),
    ):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()
