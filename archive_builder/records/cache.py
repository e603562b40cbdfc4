"""Content-keyed caches of parsed households and of their per-household validation results.

Parsing a record with source positions and running its rules costs ~10 ms a household, which
dominated a rebuild where nothing changed. Entries are keyed by everything the result depends
on (file bytes, where the file is, village settings, the run's date, the state of its evidence
files, the program version), so a hit is always what a fresh parse would give.

The file is an SQLite database of pickled entries, one row a key (its name, ``records.pickle``,
is kept from when it was one pickle). A run reads only the rows it asks for, never the whole
file, and ``save`` writes only the entries the run added, in the build's own process, a few at
a time: no forked copy of the process. With ``stream`` (the build), ``put`` writes them as they
come, so the parsed township is never held in memory at once. Entries
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

#: 4: parked households keep ParkedPositions, slotted ParkedRecord (3: an SQLite database of
#: pickled entries; 2: text is checked on reading, issue 17)
_FORMAT = 5  # 5: validation messages reworded (repeated IDs, unknown keys, YAML errors)
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

    def __init__(self, path: Path | None, *, stream: bool = False, prune: bool = True) -> None:
        """``stream``: ``put`` writes its entries at once (64 at a time, in a transaction that
        ``save`` commits) instead of holding them until ``save`` (the build: flat memory).
        ``prune=False``: keep the entries this run did not use (a build whose unchanged
        households were not checked again)."""
        self.path = path
        self.stream = stream
        self.prune = prune
        #: False once writing failed: the entries put since are not all in the file
        self.writable = path is not None
        self._salt = f"{_FORMAT}|{__version__}|{_vocab_fingerprint()}"
        #: entries added by this run, not yet written (the objects: pickled when written)
        self._pending: dict[str, Any] = {}
        #: the hashes of the keys this run read or added (a township's 64-character keys
        #: took 0.8 KB a household; a hash is unique enough to decide what to keep)
        self._used: set[int] = set()
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
            value = self._pending[key]
            return pickle.loads(value) if self.stream else value
        if self._db is None:
            return None
        try:
            row = self._db.execute("SELECT value FROM entries WHERE key = ?", (key,)).fetchone()
            value = pickle.loads(row[0]) if row is not None else None  # our own file in the output folder
        except (sqlite3.Error, pickle.UnpicklingError, EOFError, AttributeError, ImportError, TypeError,
                ValueError):
            return None
        if value is not None:
            self._used.add(hash(key))
        return value

    def put(self, key: str, value: Any) -> None:
        # streamed entries are pickled now: the caller may change (park) its object next
        self._pending[key] = pickle.dumps(value, protocol=5) if self.stream else value
        self._used.add(hash(key))
        if self.stream and len(self._pending) >= _BATCH:
            self._flush()

    def touch(self, key: str) -> None:
        """Count ``key`` as used by this run (kept when unused entries are dropped)."""
        self._used.add(hash(key))

    def holds(self, key: str) -> bool:
        """Whether ``get(key)`` gives the entry back as it was put or read, whatever happens
        to the object since (streamed entries only)."""
        return self.stream and self.writable and hash(key) in self._used

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
            self._flush()
            if self.writable and self._db is not None and self._db.in_transaction:
                self._commit()
        self.path.with_name(self.path.name + ".new").unlink(missing_ok=True)  # of format 2

    def _flush(self) -> None:
        """Write the pending entries in this run's transaction (begun here)."""
        if not self.writable:
            return
        try:
            db = self._create() if self._db is None else self._db
            if db is None:
                return
            if not db.in_transaction:
                # a lost cache is only rebuilt: no fsync
                db.execute("PRAGMA synchronous = OFF")
                db.execute("BEGIN IMMEDIATE")
            pending = list(self._pending.items())
            for start in range(0, len(pending), _BATCH):
                db.executemany("INSERT OR REPLACE INTO entries VALUES (?, ?)", [
                    (k, v if self.stream else pickle.dumps(v, protocol=5)) for k, v in pending[start:start + _BATCH]])
        except (OSError, sqlite3.Error, pickle.PicklingError):
            self.writable = False  # the entries stay in memory; nothing more is written
            return
        self._pending.clear()

    def _commit(self) -> None:
        assert self._db is not None
        try:
            stored = self.keys()
            unused = {k for k in stored if hash(k) not in self._used}
            if self.prune and len(unused) * 2 > len(stored):
                self._db.executemany("DELETE FROM entries WHERE key = ?", [(k,) for k in unused])
            self._db.execute("COMMIT")
        except sqlite3.Error:
            self.writable = False
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")

    def _create(self) -> sqlite3.Connection | None:
        assert self.path is not None
        if not self._pending:
            return None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.unlink(missing_ok=True)  # damaged, foreign or of an older format
        self._db = sqlite3.connect(self.path, timeout=5, isolation_level=None, check_same_thread=False)
        self._db.executescript(
            "PRAGMA journal_mode = DELETE;"
            "CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT);"
            "CREATE TABLE entries (key TEXT PRIMARY KEY, value BLOB) WITHOUT ROWID;")
        self._db.execute("INSERT INTO meta VALUES ('salt', ?)", (self._salt,))
        return self._db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001, S110 - interpreter shutdown
            pass
