"""Content-keyed caches of parsed households and of their per-household validation results.

Parsing a record with source positions and running its rules costs ~10 ms a household, which
dominated a rebuild where nothing changed. Entries are keyed by everything the result depends
on (file bytes, where the file is, village settings, the run's date, the state of its evidence
files, the program version), so a hit is always what a fresh parse would give.

The file is an SQLite database of pickled entries, one row a key (its name, ``records.pickle``,
is kept from when it was one pickle). A run reads only the rows it asks for, never the whole
file, and ``save`` writes only the entries the run added, in the build's own process, a few at
a time: no forked copy of the process, nothing proportional to the township in memory. Entries
not used by a run are dropped when most of the file went unused. Readers that never call
``save`` (validation, the web app, the audit) never write.
"""

from __future__ import annotations

import hashlib
import pickle
import sqlite3
from pathlib import Path
from typing import Any

from .. import __version__

#: 3: an SQLite database of pickled entries (2: text is checked on reading, issue 17)
_FORMAT = 3
#: entries pickled and written at once by ``save``
_BATCH = 64


def _vocab_fingerprint() -> str:
    folder = Path(__file__).resolve().parent / "vocab"
    digest = hashlib.sha256()
    for path in sorted(folder.glob("*.yaml")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


class RecordCache:
    """Pickled results by key in an SQLite file; new entries are written by ``save``."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._salt = f"{_FORMAT}|{__version__}|{_vocab_fingerprint()}"
        #: entries added by this run, not yet written (the objects: pickled when written)
        self._pending: dict[str, Any] = {}
        #: keys this run read or added
        self._used: set[str] = set()
        self._db: sqlite3.Connection | None = None
        if path is not None and path.is_file():
            self._db = self._open(path)

    def _open(self, path: Path) -> sqlite3.Connection | None:
        try:
            db = sqlite3.connect(path, timeout=5, isolation_level=None, check_same_thread=False)
            row = db.execute("SELECT value FROM meta WHERE name = 'salt'").fetchone()
            if row is not None and row[0] == self._salt:
                return db
            db.close()
        except sqlite3.Error:
            pass  # a damaged or foreign cache (an older pickle) is simply rebuilt
        return None

    def key(self, *parts: str | bytes) -> str:
        digest = hashlib.sha256()
        for part in parts:
            data = part if isinstance(part, bytes) else part.encode()
            digest.update(len(data).to_bytes(8, "big"))
            digest.update(data)
        return digest.hexdigest()

    def get(self, key: str) -> Any | None:
        if key in self._pending:
            return self._pending[key]
        if self._db is None:
            return None
        try:
            row = self._db.execute("SELECT value FROM entries WHERE key = ?", (key,)).fetchone()
            value = pickle.loads(row[0]) if row is not None else None  # our own file in the output folder
        except (sqlite3.Error, pickle.UnpicklingError, EOFError, AttributeError, ImportError, TypeError,
                ValueError):
            return None
        if value is not None:
            self._used.add(key)
        return value

    def put(self, key: str, value: Any) -> None:
        self._pending[key] = value
        self._used.add(key)

    def keys(self) -> set[str]:
        """Every key in the file (tests and maintenance)."""
        if self._db is None:
            return set()
        return {k for (k,) in self._db.execute("SELECT key FROM entries")}

    def save(self) -> None:
        """Write the entries this run added (pickled as they are now); drop unused ones when due."""
        if self.path is None:
            return
        if self._pending or (self._db is not None and self._used):
            self._write()
        self.path.with_name(self.path.name + ".new").unlink(missing_ok=True)  # of format 2

    def _write(self) -> None:
        assert self.path is not None
        if self._db is None:
            if not self._pending:
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.unlink(missing_ok=True)  # damaged, foreign or of an older format
            self._db = sqlite3.connect(self.path, timeout=5, isolation_level=None, check_same_thread=False)
            self._db.executescript(
                "PRAGMA journal_mode = DELETE;"
                "CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT);"
                "CREATE TABLE entries (key TEXT PRIMARY KEY, value BLOB) WITHOUT ROWID;")
            self._db.execute("INSERT INTO meta VALUES ('salt', ?)", (self._salt,))
        db = self._db
        # a lost cache is only rebuilt: no fsync, one transaction
        db.execute("PRAGMA synchronous = OFF")
        db.execute("BEGIN IMMEDIATE")
        try:
            pending = list(self._pending.items())
            for start in range(0, len(pending), _BATCH):
                db.executemany("INSERT OR REPLACE INTO entries VALUES (?, ?)", [
                    (k, pickle.dumps(v, protocol=5)) for k, v in pending[start:start + _BATCH]])
            stored = self.keys()
            unused = stored - self._used
            if len(unused) * 2 > len(stored):
                db.executemany("DELETE FROM entries WHERE key = ?", [(k,) for k in unused])
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self._pending.clear()

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001, S110 - interpreter shutdown
            pass
