"""The append-only version store kept in an output directory.

Layout::

    OUT/.store/catalog.sqlite     one row per (household, version number); WAL mode; and the
                                  small blobs (records, evidence lists) in table ``blobs``
    OUT/.store/blobs/ab/cdef...   the packet PDFs: content-addressed files named by their sha256

Disk: a packet's bytes are stored once however many versions (of any household) have them;
an unchanged household adds nothing. A blob is made from the output folder's packet by a
reflink where the file system has them (``clone_or_copy``): then the store and the packets
share their blocks, and an edit of either never reaches the other. Never by a hard link.

Crash safety rests on one ordering: every blob file a version refers to is written to a
temporary file, fsynced and renamed into place *before* the transaction that inserts the
version row commits; small blobs are inserted in that same transaction. A process killed at any
point therefore leaves either no new row, or a row whose blobs all exist. Orphan blob files
(written, but the row never committed) are harmless and are reused by the next run because
blobs are named by their content. Rows and small blobs are protected against UPDATE and DELETE
by triggers; blob files are never rewritten or deleted. Stores written before small blobs moved
into the catalog (schema 1) keep theirs as files, which are read as before.

Why one module of this size: the schema, its migrations and the batched, fsync-ordered blob
writes make one durability argument that has to be read as a whole.
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import json
import os
import shutil
import socket
import sqlite3
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from ..errors import StoreError, VersionNotFoundError

STORE_DIR = ".store"
CATALOG = "catalog.sqlite"
SCHEMA_VERSION = 3
_CHUNK = 1 << 20
#: blobs up to this size (the record's JSON, the evidence list) live in the catalog: a build
#: wrote, fsynced and renamed two such files per household (0.2 CPU-seconds of a
#: 231-household build, and thousands of tiny files to copy when the output is backed up)
SMALL_BLOB = 256 * 1024

#: Test hooks, called by name at the critical points of ``record`` and ``record_many`` (see
#: tests/test_store.py): "after_blobs" once the blob files of a batch are durable,
#: "before_commit" just before its rows and small blobs commit.
#: Production code never sets them.
HOOKS: dict[str, Callable[[], None]] = {}


def _hook(name: str) -> None:
    func = HOOKS.get(name)
    if func is not None:
        func()


@dataclass(frozen=True)
class Version:
    """One recorded version of one household's packet."""

    household_id: str
    number: int
    created_at: str
    content_hash: str
    record_sha: str
    pdf_sha: str
    evidence: dict[str, str] = field(hash=False)
    template_set: str
    program_version: str
    pages: int
    user: str
    host: str
    village_code: str = ""
    built_at: str = ""
    evidence_sha: str = ""

    @property
    def short_hash(self) -> str:
        return self.content_hash[:12]

    @property
    def when(self) -> str:
        """Return the creation time as printed: "2025-03-01 14:05:09" (the builder's local time)."""
        return self.created_at.replace("T", " ")[:19]


@dataclass(frozen=True)
class Placement:
    """Where a version's packet sits in a box: the box file (relative to the output folder)
    and, for each packet page (index 0 = its first page), the archive page number stamped on
    it in that box (0: not numbered, e.g. a separator sheet)."""

    box: str
    numbers: tuple[int, ...]


@dataclass(frozen=True)
class Entry:
    """One version to record with :meth:`VersionStore.record_many` (the arguments of ``record``)."""

    household_id: str
    village_code: str
    content_hash: str
    record_json: bytes
    packet_pdf: Path
    evidence_hashes: dict[str, str]
    template_set: str
    program_version: str
    pages: int
    built_at: str
    #: sha256 of ``packet_pdf`` when the caller wrote it and knows it (the file is then copied
    #: by the kernel instead of being read and hashed)
    packet_sha256: str | None = None


def _migrate_0_to_1(conn: sqlite3.Connection) -> None:
    # one execute() per statement: executescript() would commit the migration transaction
    statements = [
        """
        CREATE TABLE versions (
            household_id    TEXT    NOT NULL,
            number          INTEGER NOT NULL CHECK (number >= 1),
            created_at      TEXT    NOT NULL,
            built_at        TEXT    NOT NULL,
            village_code    TEXT    NOT NULL,
            content_hash    TEXT    NOT NULL,
            record_sha      TEXT    NOT NULL,
            pdf_sha         TEXT    NOT NULL,
            evidence_sha    TEXT    NOT NULL,
            evidence_json   TEXT    NOT NULL,
            template_set    TEXT    NOT NULL,
            program_version TEXT    NOT NULL,
            pages           INTEGER NOT NULL,
            user            TEXT    NOT NULL,
            host            TEXT    NOT NULL,
            PRIMARY KEY (household_id, number)
        )
        """,
        "CREATE INDEX versions_by_hash ON versions (content_hash)",
        """
        CREATE TRIGGER versions_no_update BEFORE UPDATE ON versions
            BEGIN SELECT RAISE(ABORT, 'versions are append-only'); END
        """,
        """
        CREATE TRIGGER versions_no_delete BEFORE DELETE ON versions
            BEGIN SELECT RAISE(ABORT, 'versions are append-only'); END
        """,
    ]
    for statement in statements:
        conn.execute(statement)


def _migrate_1_to_2(conn: sqlite3.Connection) -> None:
    for statement in (
        "CREATE TABLE blobs (sha TEXT PRIMARY KEY, data BLOB NOT NULL) WITHOUT ROWID",
        """
        CREATE TRIGGER blobs_no_update BEFORE UPDATE ON blobs
            BEGIN SELECT RAISE(ABORT, 'blobs are append-only'); END
        """,
        """
        CREATE TRIGGER blobs_no_delete BEFORE DELETE ON blobs
            BEGIN SELECT RAISE(ABORT, 'blobs are append-only'); END
        """,
    ):
        conn.execute(statement)


def _migrate_2_to_3(conn: sqlite3.Connection) -> None:
    # where a version's packet sits in a box of the output: the box file and the archive page
    # number (编页) stamped on each of its pages (0 = unnumbered); appended whenever a build
    # places the version at other numbers, the newest row is where it sits now
    for statement in (
        """
        CREATE TABLE placements (
            household_id TEXT    NOT NULL,
            number       INTEGER NOT NULL,
            box          TEXT    NOT NULL,
            numbers      TEXT    NOT NULL,
            placed_at    TEXT    NOT NULL
        )
        """,
        "CREATE INDEX placements_by_version ON placements (household_id, number)",
        """
        CREATE TRIGGER placements_no_update BEFORE UPDATE ON placements
            BEGIN SELECT RAISE(ABORT, 'placements are append-only'); END
        """,
        """
        CREATE TRIGGER placements_no_delete BEFORE DELETE ON placements
            BEGIN SELECT RAISE(ABORT, 'placements are append-only'); END
        """,
    ):
        conn.execute(statement)


#: MIGRATIONS[n] brings a catalog from user_version n to n + 1.
MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_migrate_0_to_1, _migrate_1_to_2, _migrate_2_to_3]
assert len(MIGRATIONS) == SCHEMA_VERSION


def migrate(conn: sqlite3.Connection) -> None:
    """Bring the catalog schema up to ``SCHEMA_VERSION``, one step per transaction."""
    current = conn.execute("PRAGMA user_version").fetchone()[0]
    if current > SCHEMA_VERSION:
        raise StoreError(
            f"版本库的格式版本为 {current}，而本程序只支持到 {SCHEMA_VERSION}。",
            hint="请使用更新版本的 archive-builder 打开该输出目录。",
        )
    while current < SCHEMA_VERSION:
        conn.execute("BEGIN IMMEDIATE")
        try:
            # re-read inside the lock: another process may have migrated meanwhile
            current = conn.execute("PRAGMA user_version").fetchone()[0]
            if current < SCHEMA_VERSION:
                MIGRATIONS[current](conn)
                current += 1
                conn.execute(f"PRAGMA user_version = {current}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


_COLUMNS = (
    "household_id, number, created_at, built_at, village_code, content_hash, record_sha, "
    "pdf_sha, evidence_sha, evidence_json, template_set, program_version, pages, user, host"
)


def _row_to_version(row: sqlite3.Row) -> Version:
    return Version(
        household_id=row["household_id"],
        number=row["number"],
        created_at=row["created_at"],
        content_hash=row["content_hash"],
        record_sha=row["record_sha"],
        pdf_sha=row["pdf_sha"],
        evidence=json.loads(row["evidence_json"]),
        template_set=row["template_set"],
        program_version=row["program_version"],
        pages=row["pages"],
        user=row["user"],
        host=row["host"],
        village_code=row["village_code"],
        built_at=row["built_at"],
        evidence_sha=row["evidence_sha"],
    )


def _fsync_dir(path: Path) -> None:
    # Directories cannot be opened on Windows; there the rename is durable enough.
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_all(function: Callable[[Path], None], paths: Sequence[Path]) -> None:
    """Call ``function`` (an fsync) on every path; several at once, so the file system can
    commit them together (fsync releases the GIL; ext4 joins concurrent fsyncs into one
    journal commit)."""
    if len(paths) < 4:
        for path in paths:
            function(path)
        return
    with ThreadPoolExecutor(max_workers=min(16, len(paths))) as pool:
        for _ in pool.map(function, paths):  # re-raises the first error
            pass


#: Linux's FICLONE ioctl (``fcntl.FICLONE`` from Python 3.12 on)
_FICLONE = 0x40049409


def clone_or_copy(source: Path, target: Path) -> bool:
    """Copy ``source`` to ``target``; return True when the copy shares the source's blocks.

    Where the file system can (Btrfs, XFS, bcachefs, OCFS2: the FICLONE ioctl, "reflink") the
    copy takes no new space, and stays a copy: a write to either file makes the file system
    copy the blocks written, never change the other file. This is why a version store may
    share its blobs with the output folder's packets this way and never by hard links, which
    a program editing the packet in place (as root, or after chmod) would write through.
    Elsewhere (ext4, NTFS, network shares) the bytes are copied by the kernel.
    """
    if sys.platform == "linux":
        import fcntl

        try:
            with open(source, "rb") as src, open(target, "wb") as dst:
                fcntl.ioctl(dst.fileno(), getattr(fcntl, "FICLONE", _FICLONE), src.fileno())
            return True
        except OSError:
            pass  # EOPNOTSUPP, EXDEV, EINVAL…: copy instead (the copy overwrites target)
    shutil.copyfile(source, target)  # sendfile on Linux, fcopyfile on macOS
    return False


def short_blob(sha: str) -> str:
    """Return the short form ``ab/cdef0123…`` used in messages."""
    return f"{sha[:2]}/{sha[2:10]}…"


def _user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError, ImportError):  # no login name (some containers)
        return "?"


class VersionStore:
    """The version store of one output directory; created on the first ``record``."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = Path(out_dir)
        self.root = self.out_dir / STORE_DIR
        self.catalog_path = self.root / CATALOG
        self.blob_dir = self.root / "blobs"
        self._conn: sqlite3.Connection | None = None

    # -- connection -------------------------------------------------------------------

    def exists(self) -> bool:
        return self.catalog_path.is_file()

    def _connect(self, create: bool) -> sqlite3.Connection | None:
        if self._conn is not None:
            return self._conn
        if not create and not self.exists():
            return None
        try:
            self.blob_dir.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.catalog_path, timeout=60, isolation_level=None)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            migrate(conn)
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                f"无法打开版本库 {self.catalog_path}：{exc}",
                hint="检查输出目录是否可写；若文件已损坏，请从备份恢复 .store 目录。",
            ) from exc
        self._conn = conn
        return conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> VersionStore:  # noqa: PYI034
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _rows(self, sql: str, params: tuple = ()) -> list[Version]:
        conn = self._connect(create=False)
        if conn is None:
            return []
        return [_row_to_version(r) for r in conn.execute(sql, params)]

    # -- blobs ------------------------------------------------------------------------

    def blob_path(self, sha: str) -> Path:
        """Return where the blob with this sha256 lives (whether or not it exists)."""
        return self.blob_dir / sha[:2] / sha[2:]

    def _small_blob(self, sha: str) -> bytes | None:
        """The blob's bytes when the catalog holds it (a small blob), else None."""
        conn = self._connect(create=False)
        if conn is None:
            return None
        row = conn.execute("SELECT data FROM blobs WHERE sha = ?", (sha,)).fetchone()
        return None if row is None else bytes(row[0])

    def blob(self, sha: str) -> bytes:
        """Return a blob's bytes, checked against its hash."""
        path = self.blob_path(sha)
        data = self._small_blob(sha)
        if data is None:
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                raise StoreError(
                    f"版本库缺少数据块 {short_blob(sha)}（{path}）。",
                    hint="运行 archive-builder store check 查看受影响的版本。",
                ) from None
        if hashlib.sha256(data).hexdigest() != sha:
            raise StoreError(
                f"版本库数据块 {short_blob(sha)} 已损坏：哈希不符。",
                hint="运行 archive-builder store check 查看受影响的版本，并从备份恢复 .store 目录。",
            )
        return data

    # -- writing ----------------------------------------------------------------------

    def next_number(self, household_id: str, content_hash: str) -> int:
        """Return the number this content has or will get (for printing it on the cover)."""
        latest = self.latest(household_id)
        if latest is None:
            return 1
        if latest.content_hash == content_hash:
            return latest.number
        return latest.number + 1

    def record(
        self,
        *,
        household_id: str,
        village_code: str,
        content_hash: str,
        record_json: bytes,
        packet_pdf: Path,
        evidence_hashes: dict[str, str],
        template_set: str,
        program_version: str,
        pages: int,
        built_at: str,
    ) -> Version | None:
        """Return the new version, or None when ``content_hash`` equals the latest one's.

        Blobs are written and made durable first, then the row is committed (see record_many).
        """
        entry = Entry(
            household_id=household_id, village_code=village_code, content_hash=content_hash,
            record_json=record_json, packet_pdf=packet_pdf, evidence_hashes=evidence_hashes,
            template_set=template_set, program_version=program_version, pages=pages, built_at=built_at,
        )
        return self.record_many([entry])[0]

    def record_many(self, entries: Sequence[Entry]) -> list[Version | None]:
        """Record many versions; return, for each entry, its new version or None (unchanged).

        Same result as calling ``record`` for each entry in order, at a fraction of the cost:
        every new blob of every entry is written first, then all are fsynced together, renamed
        into place and their folders fsynced; only then are the rows inserted. A process killed
        at any point leaves no row whose blobs are missing.
        """
        if not entries:
            return []
        conn = self._connect(create=True)
        assert conn is not None
        # household -> (number, content_hash) of its newest version, before this batch
        latest = {
            row["household_id"]: (row["number"], row["content_hash"])
            for row in conn.execute(
                "SELECT household_id, MAX(number) AS number, content_hash FROM versions "
                "GROUP BY household_id"
            )
        }
        todo: list[tuple[int, Entry, str, str, str, str]] = []  # (index, entry, shas…, evidence json)
        pending = dict(latest)
        writer = _BlobBatch(self)
        try:
            for index, entry in enumerate(entries):
                previous = pending.get(entry.household_id)
                if previous is not None and previous[1] == entry.content_hash:
                    continue  # no blob is written for an unchanged household
                pending[entry.household_id] = (
                    (previous[0] if previous else 0) + 1,
                    entry.content_hash,
                )
                evidence_json = json.dumps(entry.evidence_hashes, ensure_ascii=False, sort_keys=True)
                record_sha = writer.put_bytes(entry.record_json)
                pdf_sha = writer.put_file(Path(entry.packet_pdf), sha=entry.packet_sha256)
                evidence_sha = writer.put_bytes(evidence_json.encode("utf-8"))
                todo.append((index, entry, record_sha, pdf_sha, evidence_sha, evidence_json))
            # 1. blobs first, all durable before any row commits
            writer.commit()
        finally:
            writer.discard()

        # 2. then the rows, numbered and committed in one write transaction: one commit (one
        #    fsync of the journal) instead of one per household (0.3 s of a 231-household
        #    build). A batch killed before its commit leaves none of its rows; the next build
        #    records those households again (their blobs are already in place).
        results: list[Version | None] = [None] * len(entries)
        user, host = _user(), socket.gethostname()
        _hook("after_blobs")
        rows = [(entry, record_sha, pdf_sha, evidence_sha, evidence_json)
                for _, entry, record_sha, pdf_sha, evidence_sha, evidence_json in todo]
        inserted = self._insert_many(conn, rows, user, host, writer.small)
        for (index, *_), version in zip(todo, inserted):
            results[index] = version
        return results

    def _insert_many(
        self,
        conn: sqlite3.Connection,
        rows: Sequence[tuple[Entry, str, str, str, str]],
        user: str,
        host: str,
        small: Mapping[str, bytes],
    ) -> list[Version | None]:
        """Insert a version for each (entry, record sha, pdf sha, evidence sha, evidence json)
        whose content differs from its household's newest, and the batch's ``small`` blobs
        (sha -> bytes); all in one transaction."""
        if not rows:
            return []
        created_at = datetime.now().astimezone().isoformat(timespec="seconds")
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise StoreError(
                f"版本库被占用，无法写入：{exc}",
                hint="等待其他正在运行的生成任务结束后重试。",
            ) from exc
        try:
            conn.executemany("INSERT OR IGNORE INTO blobs (sha, data) VALUES (?, ?)", small.items())
            versions = [self._insert(conn, *row, user, host, created_at) for row in rows]
            _hook("before_commit")
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        return versions

    def _insert(
        self,
        conn: sqlite3.Connection,
        entry: Entry,
        record_sha: str,
        pdf_sha: str,
        evidence_sha: str,
        evidence_json: str,
        user: str,
        host: str,
        created_at: str,
    ) -> Version | None:
        """Insert one version row inside the caller's transaction (None: content unchanged)."""
        row = conn.execute(
            "SELECT number, content_hash FROM versions WHERE household_id = ? "
            "ORDER BY number DESC LIMIT 1",
            (entry.household_id,),
        ).fetchone()
        if row is not None and row["content_hash"] == entry.content_hash:
            return None
        number = 1 if row is None else row["number"] + 1
        version = Version(
            household_id=entry.household_id,
            number=number,
            created_at=created_at,
            content_hash=entry.content_hash,
            record_sha=record_sha,
            pdf_sha=pdf_sha,
            evidence=json.loads(evidence_json),
            template_set=entry.template_set,
            program_version=entry.program_version,
            pages=entry.pages,
            user=user,
            host=host,
            village_code=entry.village_code,
            built_at=entry.built_at,
            evidence_sha=evidence_sha,
        )
        conn.execute(
            f"INSERT INTO versions ({_COLUMNS}) VALUES ({', '.join('?' * 15)})",
            (
                version.household_id,
                version.number,
                version.created_at,
                version.built_at,
                version.village_code,
                version.content_hash,
                version.record_sha,
                version.pdf_sha,
                version.evidence_sha,
                evidence_json,
                version.template_set,
                version.program_version,
                version.pages,
                version.user,
                version.host,
            ),
        )
        return version

    def record_placements(self, placed: Sequence[tuple[str, str, Placement]]) -> int:
        """Note where the packets of (household id, content hash) sit in their boxes; return the
        rows added. The version meant is the household's newest one with that content; a
        placement equal to the version's newest one adds nothing (an unchanged rebuild writes
        nothing); content the store has no version of is skipped."""
        conn = self._connect(create=False)
        if conn is None or not placed:
            return 0
        wanted = {household_id for household_id, _, _ in placed}
        numbers: dict[tuple[str, str], int] = {}
        current: dict[tuple[str, int], tuple[str, str]] = {}
        for row in conn.execute("SELECT household_id, number, content_hash FROM versions ORDER BY number"):
            if row[0] in wanted:
                numbers[(row[0], row[2])] = row[1]
        for row in conn.execute("SELECT household_id, number, box, numbers FROM placements ORDER BY rowid"):
            if row[0] in wanted:
                current[(row[0], row[1])] = (row[2], row[3])
        rows = []
        placed_at = datetime.now().astimezone().isoformat(timespec="seconds")
        for household_id, content_hash, placement in placed:
            number = numbers.get((household_id, content_hash))
            if number is None:
                continue
            value = (placement.box, json.dumps(list(placement.numbers)))
            if current.get((household_id, number)) != value:
                current[(household_id, number)] = value
                rows.append((household_id, number, *value, placed_at))
        if rows:
            try:
                with contextlib.closing(conn.cursor()) as cursor:
                    cursor.execute("BEGIN IMMEDIATE")
                    cursor.executemany(
                        "INSERT INTO placements (household_id, number, box, numbers, placed_at) "
                        "VALUES (?, ?, ?, ?, ?)", rows)
                    cursor.execute("COMMIT")
            except sqlite3.Error as exc:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise StoreError(
                    f"版本库被占用或无法写入：{exc}",
                    hint="等待其他正在运行的生成任务结束后重试。",
                ) from exc
        return len(rows)

    def placement(self, household_id: str, number: int) -> Placement | None:
        """Where version ``number`` of the household sits in a box now (None: never boxed)."""
        conn = self._connect(create=False)
        if conn is None:
            return None
        row = conn.execute(
            "SELECT box, numbers FROM placements WHERE household_id = ? AND number = ? "
            "ORDER BY rowid DESC LIMIT 1", (household_id, number)).fetchone()
        return None if row is None else Placement(row[0], tuple(json.loads(row[1])))

    # -- reading ----------------------------------------------------------------------

    def versions(self, household_id: str) -> list[Version]:
        """Return every version of the household, oldest first."""
        return self._rows(
            f"SELECT {_COLUMNS} FROM versions WHERE household_id = ? ORDER BY number",
            (household_id,),
        )

    def households(self) -> list[str]:
        """Return every household id that has at least one version."""
        conn = self._connect(create=False)
        if conn is None:
            return []
        rows = conn.execute(
            "SELECT DISTINCT household_id FROM versions ORDER BY household_id"
        )
        return [r[0] for r in rows]

    def get(self, household_id: str, number: int) -> Version:
        """Return version ``number`` of the household; StoreError naming the existing ones."""
        found = self._rows(
            f"SELECT {_COLUMNS} FROM versions WHERE household_id = ? AND number = ?",
            (household_id, number),
        )
        if found:
            return found[0]
        existing = [v.number for v in self.versions(household_id)]
        if not existing:
            from ..records.loader import find_similar_ids

            similar = find_similar_ids(self.households(), household_id)
            raise StoreError(
                f"版本库中没有户 {household_id} 的任何版本。",
                hint=f"相近的户编号：{'、'.join(similar)}" if similar
                else "检查户编号和输出目录（-o）是否正确；该户需至少生成过一次。",
            )
        listed = "、".join(str(n) for n in existing)
        raise VersionNotFoundError(
            f"户 {household_id} 没有版本 {number}；已有版本：{listed}。",
            hint="请从已有版本中选择。",
        )

    def latest_hashes(self) -> dict[str, str]:
        """Return each household's newest content hash (one query, for the whole store)."""
        conn = self._connect(create=False)
        if conn is None:
            return {}
        return {row[0]: row[2] for row in conn.execute(
            "SELECT household_id, MAX(number), content_hash FROM versions GROUP BY household_id")}

    def latest(self, household_id: str) -> Version | None:
        """Return the household's newest version, or None."""
        found = self._rows(
            f"SELECT {_COLUMNS} FROM versions WHERE household_id = ? "
            "ORDER BY number DESC LIMIT 1",
            (household_id,),
        )
        return found[0] if found else None

    def find_by_hash(self, content_hash_prefix: str) -> list[Version]:
        """Return the versions whose content hash starts with the (hex) prefix."""
        prefix = content_hash_prefix.strip().lower()
        if not prefix or any(c not in "0123456789abcdef" for c in prefix):
            return []
        return self._rows(
            f"SELECT {_COLUMNS} FROM versions WHERE substr(content_hash, 1, ?) = ? "
            "ORDER BY household_id, number",
            (len(prefix), prefix),
        )

    def stats(self) -> tuple[int, int]:
        """Return (households, versions) in the store."""
        conn = self._connect(create=False)
        if conn is None:
            return 0, 0
        row = conn.execute(
            "SELECT COUNT(DISTINCT household_id), COUNT(*) FROM versions"
        ).fetchone()
        return int(row[0]), int(row[1])

    # -- checking ---------------------------------------------------------------------

    def check_text(self) -> tuple[bool, str]:
        """Return (sound, the Chinese text ``store check`` prints)."""
        reports = self.check()
        households, versions = self.stats()
        if not reports:
            return (
                True,
                f"版本库完好：{households} 户，{versions} 个版本，所有数据块哈希一致。",
            )
        lines = [
            f"版本库有 {len(reports)} 处损坏（共 {households} 户，{versions} 个版本）："
        ]
        lines += [f"  {line}" for line in reports]
        lines.append(
            "提示：从备份恢复 .store 目录，或重新生成受影响的户（会记录为新版本）。"
        )
        return False, "\n".join(lines)

    def check(self) -> list[str]:
        """Return Chinese damage reports (empty when the store is sound)."""
        conn = self._connect(create=False)
        if conn is None:
            raise StoreError(
                f"输出目录 {self.out_dir} 中没有版本库（{STORE_DIR}）。",
                hint="检查 -o 指定的输出目录；版本库在第一次生成后才会出现。",
            )
        reports: list[str] = []
        integrity = [r[0] for r in conn.execute("PRAGMA integrity_check")]
        if integrity != ["ok"]:
            reports.append(
                "版本目录数据库（catalog.sqlite）损坏：" + "；".join(integrity[:5])
            )
        rows = self._rows(
            f"SELECT {_COLUMNS} FROM versions ORDER BY household_id, number"
        )
        state: dict[str, str] = {}  # sha -> "ok" | "missing" | "corrupt"
        expected: dict[str, int] = {}
        for v in rows:
            expected[v.household_id] = expected.get(v.household_id, 0) + 1
            if v.number != expected[v.household_id]:
                reports.append(
                    f"户 {v.household_id} 的版本号不连续：应为 {expected[v.household_id]}，"
                    f"实为 {v.number}"
                )
                expected[v.household_id] = v.number
            for what, sha in (
                ("记录", v.record_sha),
                ("PDF", v.pdf_sha),
                ("佐证材料清单", v.evidence_sha),
            ):
                if sha not in state:
                    state[sha] = self._check_blob(sha)
                if state[sha] == "missing":
                    reports.append(
                        f"版本 {v.number}（户 {v.household_id}）的{what}数据块 "
                        f"{short_blob(sha)} 缺失"
                    )
                elif state[sha] == "corrupt":
                    reports.append(
                        f"版本 {v.number}（户 {v.household_id}）的{what}数据块 "
                        f"{short_blob(sha)} 已损坏：哈希不符"
                    )
        return reports

    def _check_blob(self, sha: str) -> str:
        data = self._small_blob(sha)
        if data is not None:
            return "ok" if hashlib.sha256(data).hexdigest() == sha else "corrupt"
        path = self.blob_path(sha)
        digest = hashlib.sha256()
        try:
            with open(path, "rb") as fh:
                while chunk := fh.read(_CHUNK):
                    digest.update(chunk)
        except FileNotFoundError:
            return "missing"
        return "ok" if digest.hexdigest() == sha else "corrupt"


class _BlobBatch:
    """New blobs written to temporary files now, made durable and renamed into place together.

    ``put_*`` return the sha256 at once; nothing is visible under a blob name before ``commit``,
    which fsyncs every file, renames each into place, then fsyncs the folders that changed.
    Small byte strings (``SMALL_BLOB``) are kept in ``small`` instead, for the caller to insert
    into the catalog together with the rows that refer to them.
    """

    def __init__(self, store: VersionStore) -> None:
        self.store = store
        self.pending: dict[str, Path] = {}  # sha -> temporary file
        self.small: dict[str, bytes] = {}  # sha -> bytes, for the catalog
        self.dirs: set[Path] = set()  # folders of blobs referred to, new or already there
        store.blob_dir.mkdir(parents=True, exist_ok=True)

    def _existing(self, sha: str) -> bool:
        if sha in self.pending or sha in self.small or self.store._small_blob(sha) is not None:
            return True
        target = self.store.blob_path(sha)
        if target.exists():
            self.dirs.add(target.parent)
            return True
        return False

    def put_bytes(self, data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
        if not self._existing(sha):
            if len(data) <= SMALL_BLOB:
                self.small[sha] = data
            else:
                self._write(sha, iter([data]))
        return sha

    def put_file(self, path: Path, *, sha: str | None = None) -> str:
        """Store the file ``path``; ``sha``: its sha256 when the caller knows it (it wrote the
        file): an existing blob is then not read at all, and a new one is copied by the kernel
        (65 MB of packets were read, hashed and written back by this process)."""
        if sha is not None:
            if not self._existing(sha):
                self._copy(sha, path)
            return sha

        def chunks() -> Iterator[bytes]:
            with open(path, "rb") as fh:
                while chunk := fh.read(_CHUNK):
                    yield chunk

        return self._write(None, chunks())

    def _copy(self, sha: str, path: Path) -> None:
        fd, tmp_name = tempfile.mkstemp(prefix="tmp-", dir=self.store.blob_dir)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            clone_or_copy(path, tmp)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        self.pending[sha] = tmp

    def _write(self, sha: str | None, chunks: Iterator[bytes]) -> str:
        digest = hashlib.sha256()
        fd, tmp_name = tempfile.mkstemp(prefix="tmp-", dir=self.store.blob_dir)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as fh:
                for chunk in chunks:
                    if sha is None:
                        digest.update(chunk)
                    fh.write(chunk)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        if sha is None:
            sha = digest.hexdigest()
            if self._existing(sha):  # content-addressed: an existing blob is never rewritten
                tmp.unlink()
                return sha
        self.pending[sha] = tmp
        return sha

    def commit(self) -> None:
        """Make every new blob durable under its name, and every referred folder too."""
        _fsync_all(_fsync_path, list(self.pending.values()))
        created = False
        while self.pending:
            sha, tmp = self.pending.popitem()
            target = self.store.blob_path(sha)
            if not target.parent.is_dir():
                target.parent.mkdir(exist_ok=True)
                created = True
            os.replace(tmp, target)
            self.dirs.add(target.parent)
        if created:
            self.dirs.add(self.store.blob_dir)
        _fsync_all(_fsync_dir, sorted(self.dirs))

    def discard(self) -> None:
        """Remove the temporary files of blobs not committed (after an error)."""
        while self.pending:
            _, tmp = self.pending.popitem()
            with contextlib.suppress(OSError):
                tmp.unlink()
