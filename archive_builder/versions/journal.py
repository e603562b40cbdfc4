"""The edit journal: who changed which household's data, when, field by field.

Kept in the version store's database (``OUT/.store/catalog.sqlite``), table ``journal``, which
triggers protect against UPDATE and DELETE like the version rows: entries are never rewritten.
The table is created when the first entry is written (``CREATE TABLE IF NOT EXISTS``), so the
store's schema version stays as it is and older programs simply do not see it.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ..errors import StoreError

_SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS journal (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        at           TEXT    NOT NULL,
        user         TEXT    NOT NULL,
        household_id TEXT    NOT NULL,
        village_code TEXT    NOT NULL,
        action       TEXT    NOT NULL,
        summary      TEXT    NOT NULL,
        changes_json TEXT    NOT NULL,
        before_sha   TEXT    NOT NULL,
        after_sha    TEXT    NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS journal_by_household ON journal (household_id, id)",
    """
    CREATE TRIGGER IF NOT EXISTS journal_no_update BEFORE UPDATE ON journal
        BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END
    """,
    """
    CREATE TRIGGER IF NOT EXISTS journal_no_delete BEFORE DELETE ON journal
        BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END
    """,
)


@dataclass(frozen=True)
class JournalEntry:
    at: str
    user: str
    household_id: str
    village_code: str
    action: str  # "修改了" | "上传了" …
    summary: str
    changes: list[str]
    before_sha: str
    after_sha: str

    @property
    def when(self) -> str:
        return self.at.replace("T", " ")[:16]

    def lines(self) -> list[str]:
        """The entry as read on the household page: ``2026-12-07 14:03 张三 修改了 …``."""
        head = f"{self.when} {self.user} {self.action}"
        if not self.changes:
            return [f"{head} {self.summary}".rstrip()]
        return [f"{head} {change}" for change in self.changes]


def _connect(out_dir: Path) -> sqlite3.Connection:
    from .store import VersionStore

    store = VersionStore(out_dir)
    try:
        conn = store._connect(create=True)  # migrations of the versions tables run here
        assert conn is not None
        for statement in _SCHEMA:
            conn.execute(statement)
    except sqlite3.DatabaseError as exc:
        store.close()
        raise StoreError(f"无法打开版本库中的修改记录：{exc}", hint="检查输出目录是否可写") from exc
    return conn


def record(out_dir: Path, *, user: str, household_id: str, village_code: str, action: str,
           changes: list[str], summary: str = "", before_sha: str = "", after_sha: str = "") -> JournalEntry:
    """Append one entry and return it."""
    entry = JournalEntry(datetime.now().astimezone().isoformat(timespec="seconds"), user or "?", household_id,
                         village_code, action, summary, list(changes), before_sha, after_sha)
    conn = _connect(out_dir)
    try:
        conn.execute(
            "INSERT INTO journal (at, user, household_id, village_code, action, summary, changes_json, "
            "before_sha, after_sha) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (entry.at, entry.user, household_id, village_code, action, summary,
             json.dumps(entry.changes, ensure_ascii=False), before_sha, after_sha),
        )
    finally:
        conn.close()
    return entry


def entries(out_dir: Path, household_id: str) -> list[JournalEntry]:
    """The household's entries, newest first (none when nothing was ever edited)."""
    from .store import CATALOG, STORE_DIR

    path = Path(out_dir) / STORE_DIR / CATALOG
    if not path.is_file():
        return []
    conn = sqlite3.connect(path, timeout=60)
    try:
        rows: list[Any] = conn.execute(
            "SELECT at, user, household_id, village_code, action, summary, changes_json, before_sha, after_sha "
            "FROM journal WHERE household_id = ? ORDER BY id DESC", (household_id,)).fetchall()
    except sqlite3.OperationalError:  # no journal table yet
        return []
    finally:
        conn.close()
    return [JournalEntry(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6]), r[7], r[8]) for r in rows]
