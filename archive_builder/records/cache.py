"""Content-keyed caches of parsed households and of their per-household validation results.

Parsing a record with source positions and running its rules costs ~10 ms a household, which
dominated a rebuild where nothing changed. Entries are keyed by everything the result depends
on (file bytes, where the file is, village settings, the run's date, the state of its evidence
files, the program version), so a hit is always what a fresh parse would give; entries not
used by a run are dropped when the file is rewritten.

A run that changed a few households does not pickle the 231 others again (0.13 s): new entries
go to a small second file (``<name>.new``) beside the main one, and the two are merged into the
main file only once the second grows past a quarter of the first or most of the main file's
entries are no longer used.
"""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path
from typing import Any

from .. import __version__

#: 2: text is checked on reading (surrogates, control characters, length: issue 17)
_FORMAT = 2


def _vocab_fingerprint() -> str:
    folder = Path(__file__).resolve().parent / "vocab"
    digest = hashlib.sha256()
    for path in sorted(folder.glob("*.yaml")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


class RecordCache:
    """Pickled results by key, read once and written atomically at the end of a run."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._old: dict[str, Any] = {}
        self._new: dict[str, Any] = {}
        self._dirty = False
        self._salt = f"{_FORMAT}|{__version__}|{_vocab_fingerprint()}"
        self._base: dict[str, Any] = {}  # the main file's entries
        self._base_id = ""
        if path is not None:
            stored = self._read(path)
            if stored is not None:
                self._base = stored["entries"]
                self._base_id = str(stored.get("id", ""))
                added = self._read(self._added_path)
                if added is not None and added.get("base") == self._base_id:
                    self._old = {**self._base, **added["entries"]}
                else:
                    self._old = dict(self._base)

    @property
    def _added_path(self) -> Path:
        assert self.path is not None
        return self.path.with_name(self.path.name + ".new")

    def _read(self, path: Path) -> dict[str, Any] | None:
        try:
            with path.open("rb") as handle:
                stored = pickle.load(handle)  # our own file in the output folder
            if stored.get("salt") == self._salt and isinstance(stored["entries"], dict):
                return stored
        except (OSError, EOFError, pickle.UnpicklingError, AttributeError, KeyError, TypeError,
                ValueError, ImportError):
            pass  # a damaged or foreign cache is simply rebuilt
        return None

    def key(self, *parts: str | bytes) -> str:
        digest = hashlib.sha256()
        for part in parts:
            data = part if isinstance(part, bytes) else part.encode()
            digest.update(len(data).to_bytes(8, "big"))
            digest.update(data)
        return digest.hexdigest()

    def get(self, key: str) -> Any | None:
        value = self._new.get(key)
        if value is None:
            value = self._old.get(key)
            if value is not None:
                self._new[key] = value
        return value

    def put(self, key: str, value: Any) -> None:
        self._new[key] = value
        self._dirty = True

    def save(self) -> None:
        """Write the entries this run added; rewrite the main file when that is due."""
        if self.path is None or (not self._dirty and self._new.keys() == self._old.keys()):
            return
        added = {k: v for k, v in self._new.items() if k not in self._base}
        unused = sum(1 for k in self._base if k not in self._new)
        if self._base and len(added) * 4 <= len(self._base) and unused * 2 <= len(self._base):
            self._dump(self._added_path, {"salt": self._salt, "base": self._base_id, "entries": added})
            return
        import secrets

        base_id = secrets.token_hex(8)
        # the main file first: the old second file names the old main file's id, so it is ignored
        self._dump(self.path, {"salt": self._salt, "id": base_id, "entries": self._new})
        self._added_path.unlink(missing_ok=True)

    def save_in_background(self) -> Any:
        """``save()`` in a forked copy of this process; return something to ``join()``.

        The build calls this once the records are parsed: the copy pickles them as they were,
        while this process goes on (and frees parts of them). Where the build does not fork
        (Windows, macOS) it saves here and returns None.
        """
        import multiprocessing

        if self.path is None or multiprocessing.get_start_method() != "fork":  # as _parse_many
            self.save()
            return None
        context = multiprocessing.get_context("fork")
        process = context.Process(target=_save_quietly, args=(self,), name="record-cache")
        process.start()
        return process

    @staticmethod
    def _dump(path: Path, value: Any) -> None:
        # streamed: for 2,000 households the pickle is ~100 MB, which need not exist in memory
        from ..outdir import atomic_file

        with atomic_file(path, durable=False) as handle:  # a lost cache is only rebuilt
            pickle.dump(value, handle, protocol=5)


def _save_quietly(cache: RecordCache) -> None:
    """The forked saver: writes the cache and ends without touching the parent's stdio.

    A thread of the parent (a progress bar) may have held the stderr lock at the fork, so the
    copy must not print, not even a traceback; a cache that could not be written is rebuilt.
    """
    import os

    try:
        cache.save()
    except BaseException:  # noqa: BLE001 - see the docstring
        os._exit(1)
    os._exit(0)
