"""A content-keyed cache of parsed households and their per-household validation results.

Parsing a record with source positions and running its rules costs ~10 ms a household, which
dominated a rebuild where nothing changed. Entries are keyed by everything the result depends
on (file bytes, where the file is, village settings, the run's date, the state of its evidence
files, the program version), so a hit is always what a fresh parse would give; entries not
used by a run are dropped when it saves.
"""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path
from typing import Any

from .. import __version__

_FORMAT = 1


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
        if path is not None:
            try:
                with path.open("rb") as handle:
                    stored = pickle.load(handle)
                if stored.get("salt") == self._salt:
                    self._old = stored["entries"]
            except (OSError, EOFError, pickle.UnpicklingError, AttributeError, KeyError, TypeError,
                    ValueError, ImportError):
                self._old = {}  # a damaged or foreign cache is simply rebuilt

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
        """Write the entries this run used (dropping the rest), if anything changed."""
        if self.path is None or (not self._dirty and self._new.keys() == self._old.keys()):
            return
        from ..outdir import atomic_write

        atomic_write(self.path, pickle.dumps({"salt": self._salt, "entries": self._new}, protocol=5))
