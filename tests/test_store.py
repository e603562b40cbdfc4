"""The version store: numbering, append-only rows, crash safety, damage detection."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from archive_builder.errors import StoreError
from archive_builder.versions.store import SCHEMA_VERSION, Entry, VersionStore, short_blob

REPO = Path(__file__).resolve().parents[1]


def _record(store: VersionStore, tmp_path: Path, hid: str, content: str, **extra):
    pdf = tmp_path / f"{hid}-{content}.pdf"
    pdf.write_bytes(b"%PDF-1.4 fake " + content.encode())
    args = {
        "household_id": hid,
        "village_code": "411621105201",
        "content_hash": hashlib.sha256(content.encode()).hexdigest(),
        "record_json": json.dumps({"household_id": hid, "c": content}).encode(),
        "packet_pdf": pdf,
        "evidence_hashes": {"id.jpg": "00" * 32},
        "template_set": "default",
        "program_version": "0.1",
        "pages": 3,
        "built_at": "2025-01-01T00:00:00+08:00",
    }
    args.update(extra)
    return store.record(**args)


def test_store_created_lazily(tmp_path: Path) -> None:
    store = VersionStore(tmp_path)
    assert store.versions("H1") == []
    assert store.latest("H1") is None
    assert not (tmp_path / ".store").exists()


def test_new_version_only_when_hash_changes(tmp_path: Path) -> None:
    store = VersionStore(tmp_path)
    v1 = _record(store, tmp_path, "H1", "a")
    assert v1 is not None and v1.number == 1
    assert _record(store, tmp_path, "H1", "a") is None
    v2 = _record(store, tmp_path, "H1", "b")
    assert v2 is not None and v2.number == 2
    assert _record(store, tmp_path, "H2", "a").number == 1
    assert [v.number for v in store.versions("H1")] == [1, 2]
    assert store.latest("H1") == v2
    assert (
        v2.user and v2.host and v2.pages == 3 and v2.evidence == {"id.jpg": "00" * 32}
    )
    assert json.loads(store.blob(v1.record_sha))["c"] == "a"
    assert store.blob_path(v2.pdf_sha).read_bytes().endswith(b"b")
    assert store.next_number("H1", v2.content_hash) == 2
    assert store.next_number("H1", "ff" * 32) == 3
    assert store.next_number("H9", "ff" * 32) == 1


def test_get_missing_lists_existing_numbers(tmp_path: Path) -> None:
    store = VersionStore(tmp_path)
    _record(store, tmp_path, "H1", "a")
    _record(store, tmp_path, "H1", "b")
    with pytest.raises(StoreError) as info:
        store.get("H1", 7)
    assert info.value.message == "户 H1 没有版本 7；已有版本：1、2。"
    with pytest.raises(StoreError) as info:
        store.get("H9", 1)
    assert "没有户 H9 的任何版本" in info.value.message


def test_find_by_hash(tmp_path: Path) -> None:
    store = VersionStore(tmp_path)
    v1 = _record(store, tmp_path, "H1", "a")
    assert store.find_by_hash(v1.content_hash[:16]) == [v1]
    assert store.find_by_hash(v1.content_hash[:16].upper()) == [v1]
    assert store.find_by_hash("zz") == []
    assert store.find_by_hash("%") == []


def test_rows_are_append_only(tmp_path: Path) -> None:
    store = VersionStore(tmp_path)
    _record(store, tmp_path, "H1", "a")
    conn = sqlite3.connect(tmp_path / ".store" / "catalog.sqlite")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("UPDATE versions SET pages = 9")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("DELETE FROM versions")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    store = VersionStore(tmp_path)
    _record(store, tmp_path, "H1", "a")
    store.close()
    conn = sqlite3.connect(tmp_path / ".store" / "catalog.sqlite")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="格式版本"):
        VersionStore(tmp_path).versions("H1")


def test_check_detects_corrupt_and_missing_blob(tmp_path: Path) -> None:
    store = VersionStore(tmp_path)
    v1 = _record(store, tmp_path, "H1", "a")
    assert store.check() == []
    path = store.blob_path(v1.pdf_sha)
    data = bytearray(path.read_bytes())
    data[3] ^= 0xFF
    path.write_bytes(bytes(data))
    assert store.check() == [
        f"版本 1（户 H1）的PDF数据块 {short_blob(v1.pdf_sha)} 已损坏：哈希不符"
    ]
    with pytest.raises(StoreError, match="已损坏"):
        store.blob(v1.pdf_sha)
    store.blob_path(v1.pdf_sha).unlink()
    assert f"版本 1（户 H1）的PDF数据块 {short_blob(v1.pdf_sha)} 缺失" in store.check()
    # a small blob (the record) lives in the catalog: altered there, it is reported too
    store.close()
    conn = sqlite3.connect(tmp_path / ".store" / "catalog.sqlite")
    conn.execute("DROP TRIGGER blobs_no_update")
    conn.execute("UPDATE blobs SET data = ? WHERE sha = ?", (b"{}", v1.record_sha))
    conn.commit()
    conn.close()
    assert f"版本 1（户 H1）的记录数据块 {short_blob(v1.record_sha)} 已损坏：哈希不符" in store.check()
    with pytest.raises(StoreError, match="已损坏"):
        store.blob(v1.record_sha)


def test_small_blobs_live_in_the_catalog_and_cannot_be_changed(tmp_path: Path) -> None:
    store = VersionStore(tmp_path)
    v1 = _record(store, tmp_path, "H1", "a")
    assert not store.blob_path(v1.record_sha).exists() and not store.blob_path(v1.evidence_sha).exists()
    assert store.blob_path(v1.pdf_sha).is_file()
    assert json.loads(store.blob(v1.record_sha))["c"] == "a"
    assert json.loads(store.blob(v1.evidence_sha)) == v1.evidence
    conn = store._connect(create=False)
    for sql in ("UPDATE blobs SET data = x'00'", "DELETE FROM blobs"):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute(sql)


def test_schema_1_store_is_migrated_and_its_blob_files_still_read(tmp_path: Path) -> None:
    """A store written before small blobs moved into the catalog keeps them as files."""
    from archive_builder.versions import store as st

    old = VersionStore(tmp_path)
    real = st.SMALL_BLOB
    st.SMALL_BLOB = -1  # every blob a file, as schema 1 wrote them
    try:
        v1 = _record(old, tmp_path, "H1", "a")
    finally:
        st.SMALL_BLOB = real
    old.close()
    conn = sqlite3.connect(tmp_path / ".store" / "catalog.sqlite")
    conn.execute("DROP TABLE blobs")  # back to schema 1
    conn.execute("DROP TABLE placements")
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    store = VersionStore(tmp_path)
    assert json.loads(store.blob(v1.record_sha))["c"] == "a"  # read from its file
    assert store.check() == []
    v2 = _record(store, tmp_path, "H1", "b")
    assert v2.number == 2 and not store.blob_path(v2.record_sha).exists()
    assert store._connect(create=False).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert store.check() == []


def test_check_without_store_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="没有版本库"):
        VersionStore(tmp_path).check()


# -- crash safety -------------------------------------------------------------------------

_CHILD = textwrap.dedent(
    """
    import hashlib, json, sys, time
    from pathlib import Path
    from archive_builder.versions import store as st

    out, pause, start = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    if pause != "none":
        def stop():
            print("ready", flush=True)
            time.sleep(60)
        st.HOOKS[pause] = stop
    s = st.VersionStore(out)
    pdf = out / "packet.pdf"
    for i in range(start, start + 10_000):
        pdf.write_bytes(b"%PDF fake " + str(i).encode() * 1000)
        s.record(
            household_id="H" + str(i % 3), village_code="1", pages=1,
            content_hash=hashlib.sha256(str(i).encode()).hexdigest(),
            record_json=json.dumps({"i": i}).encode(), packet_pdf=pdf,
            evidence_hashes={}, template_set="default", program_version="t",
            built_at="2025-01-01",
        )
        if pause == "none":
            print(i, flush=True)
    """
)


def _run_child(out: Path, pause: str, start: int) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(out), pause, str(start)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


def _assert_consistent(store: VersionStore) -> None:
    if not store.exists():  # killed before the catalog was first created
        return
    assert store.check() == []
    for hid in store.households():
        numbers = [v.number for v in store.versions(hid)]
        assert numbers == list(range(1, len(numbers) + 1))


@pytest.mark.parametrize("pause", ["after_blobs", "before_commit"])
def test_sigkill_during_record_leaves_no_half_version(
    tmp_path: Path, pause: str
) -> None:
    proc = _run_child(tmp_path, pause, 0)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    store = VersionStore(tmp_path)
    assert store.versions("H0") == []  # the killed version is not visible
    _assert_consistent(store)
    v = _record(store, tmp_path, "H0", "after-crash")
    assert v is not None and v.number == 1
    _assert_consistent(store)


def _kill_at_random_points(tmp_path: Path, launch: Callable[..., subprocess.Popen], delays: tuple[float, ...]) -> None:
    """Kill a recording child at several moments; the store must stay consistent each time.

    Delays count from the child's first recorded version, so a slow start (a loaded machine)
    cannot make the kill land before anything was written.
    """
    start = 0
    for delay in delays:
        proc = launch(tmp_path, "none", start)
        assert proc.stdout is not None
        first = proc.stdout.readline()
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        recorded = first.split() + proc.stdout.read().split()
        proc.stdout.close()
        assert recorded, "the child was killed before recording anything"
        start += 10_000
        _assert_consistent(VersionStore(tmp_path))


def test_sigkill_at_random_points(tmp_path: Path) -> None:
    _kill_at_random_points(tmp_path, _run_child, (0.0, 0.013, 0.05, 0.21))
    store = VersionStore(tmp_path)
    before = len(store.versions("H1"))
    assert _record(store, tmp_path, "H1", "final").number == before + 1
    _assert_consistent(store)


def test_check_text(tmp_path: Path) -> None:
    store = VersionStore(tmp_path)
    v1 = _record(store, tmp_path, "H1", "a")
    _record(store, tmp_path, "H2", "b")  # its own packet (the same one would be one blob)
    assert store.stats() == (2, 2)
    assert store.check_text() == (True, "版本库完好：2 户，2 个版本，所有数据块哈希一致。")
    store.blob_path(v1.pdf_sha).unlink()
    sound, text = store.check_text()
    assert not sound
    assert text.splitlines()[0] == "版本库有 1 处损坏（共 2 户，2 个版本）："


# -- record_many: the batch the build uses ------------------------------------------------------


def _entry(tmp_path: Path, hid: str, content: str, **extra) -> Entry:
    pdf = tmp_path / f"{hid}-{content}.pdf"
    pdf.write_bytes(b"%PDF-1.4 fake " + content.encode() * 100)
    args = {
        "household_id": hid,
        "village_code": "411621105201",
        "content_hash": hashlib.sha256(content.encode()).hexdigest(),
        "record_json": json.dumps({"household_id": hid, "c": content}).encode(),
        "packet_pdf": pdf,
        "evidence_hashes": {"id.jpg": "00" * 32, "b.jpg": hid},
        "template_set": "default",
        "program_version": "0.1",
        "pages": 3,
        "built_at": "2025-01-01T00:00:00+08:00",
    }
    args.update(extra)
    return Entry(**args)


def test_record_many_numbers_and_skips_like_record(tmp_path: Path) -> None:
    store = VersionStore(tmp_path)
    assert store.record_many([]) == []
    _record(store, tmp_path, "H1", "a")
    entries = [
        _entry(tmp_path, "H1", "a"),  # unchanged: skipped
        _entry(tmp_path, "H2", "a"),  # same content hash as H1's: its own version 1
        _entry(tmp_path, "H1", "b"),  # changed: version 2
        _entry(tmp_path, "H1", "b"),  # the same again within the batch: skipped
        _entry(tmp_path, "H1", "c"),  # and changed again: version 3
        _entry(tmp_path, "H3", "x"),
    ]
    results = store.record_many(entries)
    assert [None if v is None else (v.household_id, v.number) for v in results] == [
        None, ("H2", 1), ("H1", 2), None, ("H1", 3), ("H3", 1),
    ]
    # what it returns is what is stored, and what record() would have stored
    for v in results:
        if v is not None:
            assert store.get(v.household_id, v.number) == v
    v = results[2]
    assert v.evidence == {"b.jpg": "H1", "id.jpg": "00" * 32} and v.pages == 3 and v.user and v.host
    assert json.loads(store.blob(v.record_sha))["c"] == "b"
    assert store.blob(v.pdf_sha) == entries[2].packet_pdf.read_bytes()
    assert json.loads(store.blob(v.evidence_sha)) == v.evidence
    assert [x.number for x in store.versions("H1")] == [1, 2, 3]
    assert store.record_many(entries[4:]) == [None, None]  # nothing new: no row, no blob
    _assert_consistent(store)
    assert not list(store.blob_dir.glob("tmp-*"))  # no temporary file left behind
    # record() continues the numbering
    assert _record(store, tmp_path, "H1", "d").number == 4


def test_a_packet_hash_the_caller_knows_is_used_without_reading_the_file(tmp_path: Path, monkeypatch) -> None:
    """A build passes the sha256 its renderer computed: a new packet blob is copied (by the
    kernel) under that name, an existing one is not read at all, and the result is the
    same store as when the file is hashed here."""
    import dataclasses

    known = tmp_path / "known"
    plain = tmp_path / "plain"
    entries = [_entry(tmp_path, f"H{i}", c) for i, c in enumerate("abca")]
    with_sha = [dataclasses.replace(e, packet_sha256=hashlib.sha256(e.packet_pdf.read_bytes()).hexdigest())
                for e in entries]
    VersionStore(plain).record_many(entries)
    store = VersionStore(known)
    from archive_builder.versions import store as st

    hashed: list[bytes] = []

    class Sha256:
        def __init__(self, data: bytes = b"") -> None:
            self._h = hashlib.sha256(data)
            hashed.append(bytes(data))

        def update(self, data: bytes) -> None:
            hashed.append(bytes(data))
            self._h.update(data)

        def hexdigest(self) -> str:
            return self._h.hexdigest()

    monkeypatch.setattr(st, "hashlib", type("hashlib", (), {"sha256": Sha256}))
    results = store.record_many(with_sha)
    monkeypatch.undo()
    assert hashed and not [d for d in hashed if d.startswith(b"%PDF")]  # no packet hashed here
    for v, e in zip(results, entries):
        assert v is not None and store.blob(v.pdf_sha) == e.packet_pdf.read_bytes()
        assert v.pdf_sha == VersionStore(plain).latest(e.household_id).pdf_sha
    assert sorted(p.name for p in store.blob_dir.rglob("*") if p.is_file()) == sorted(
        p.name for p in VersionStore(plain).blob_dir.rglob("*") if p.is_file())
    assert not list(store.blob_dir.glob("tmp-*"))
    _assert_consistent(store)


def test_record_many_blobs_durable_before_any_row(tmp_path: Path, monkeypatch) -> None:
    from archive_builder.versions import store as st

    store = VersionStore(tmp_path)
    entries = [_entry(tmp_path, f"H{i}", f"c{i}") for i in range(6)]
    blob_shas = {hashlib.sha256(e.packet_pdf.read_bytes()).hexdigest() for e in entries}
    record_shas = {hashlib.sha256(e.record_json).hexdigest() for e in entries}
    synced: set[str] = set()
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        real_fsync(fd)
        synced.add(os.readlink(f"/proc/self/fd/{fd}"))

    monkeypatch.setattr(os, "fsync", fsync)
    seen: list[int] = []

    def after_blobs() -> None:
        # every blob of the batch is at its final name, fsynced, and its folder fsynced
        for sha in blob_shas:
            path = store.blob_path(sha)
            assert path.is_file()
            assert str(path.parent) in synced
        # the small blobs (records) go into the catalog with the rows, not before
        assert all(store._small_blob(sha) is None for sha in record_shas)
        seen.append(store.stats()[1])

    monkeypatch.setitem(st.HOOKS, "after_blobs", after_blobs)
    store.record_many(entries)
    assert seen == [0]  # rows only after all the blob files
    assert store.stats()[1] == 6  # then all of them, in one transaction
    assert all(store._small_blob(sha) is not None for sha in record_shas)
    _assert_consistent(store)


_BATCH_CHILD = textwrap.dedent(
    """
    import hashlib, json, sys, time
    from pathlib import Path
    from archive_builder.versions import store as st

    out, pause, start = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    if pause != "none":
        def stop():
            print("ready", flush=True)
            time.sleep(60)
        st.HOOKS[pause] = stop
    s = st.VersionStore(out)
    for batch in range(start, start + 10_000, 7):
        entries = []
        for i in range(batch, batch + 7):
            pdf = out / f"packet-{i % 7}.pdf"
            pdf.write_bytes(b"%PDF fake " + str(i).encode() * 1000)
            entries.append(st.Entry(
                household_id="H" + str(i % 5), village_code="1", pages=1,
                content_hash=hashlib.sha256(str(i).encode()).hexdigest(),
                record_json=json.dumps({"i": i}).encode(), packet_pdf=pdf,
                evidence_hashes={"e": str(i % 2)}, template_set="default",
                program_version="t", built_at="2025-01-01",
            ))
        s.record_many(entries)
        if pause == "none":
            print(batch, flush=True)
    """
)


def _run_batch_child(out: Path, pause: str, start: int) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen(
        [sys.executable, "-c", _BATCH_CHILD, str(out), pause, str(start)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


@pytest.mark.parametrize("pause", ["after_blobs", "before_commit"])
def test_sigkill_during_record_many_leaves_no_half_version(tmp_path: Path, pause: str) -> None:
    """Killed after the batch's blobs are written (or with a row about to commit): no row of
    the batch points at a missing blob, and numbering continues from what committed."""
    proc = _run_batch_child(tmp_path, pause, 0)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    store = VersionStore(tmp_path)
    assert store.stats() == (0, 0)  # the batch had not committed
    # the batch's blob files were all in place before the kill (orphans now, reused later);
    # its small blobs (the records) were to commit with the rows, so none is there
    for i in range(7):
        pdf = hashlib.sha256(b"%PDF fake " + str(i).encode() * 1000).hexdigest()
        assert store.blob_path(pdf).is_file()
        assert store._small_blob(hashlib.sha256(json.dumps({"i": i}).encode()).hexdigest()) is None
    _assert_consistent(store)
    results = store.record_many([_entry(tmp_path, "H0", "after-crash"), _entry(tmp_path, "H1", "x")])
    assert [v.number for v in results] == [1, 1]
    _assert_consistent(store)


def test_sigkill_record_many_at_random_points(tmp_path: Path) -> None:
    _kill_at_random_points(tmp_path, _run_batch_child, (0.0, 0.007, 0.031, 0.13))
    store = VersionStore(tmp_path)
    before = len(store.versions("H1"))
    assert store.record_many([_entry(tmp_path, "H1", "final")])[0].number == before + 1
    _assert_consistent(store)


def test_placements_follow_each_version_and_are_append_only(tmp_path: Path) -> None:
    from archive_builder.versions.placement import packet_numbers
    from archive_builder.versions.store import Placement

    assert packet_numbers(57, 5, [2]) == (57, 58, 0, 59, 60)
    store = VersionStore(tmp_path)
    _record(store, tmp_path, "H1", "a")
    sha = hashlib.sha256
    first = Placement("村/第01盒.pdf", (10, 11, 12))
    assert store.record_placements([("H1", sha(b"a").hexdigest(), first)]) == 1
    assert store.record_placements([("H1", sha(b"a").hexdigest(), first)]) == 0  # unchanged: nothing added
    assert store.record_placements([("H9", sha(b"a").hexdigest(), first)]) == 0  # no such version
    _record(store, tmp_path, "H1", "b")
    moved = Placement("村/第01盒.pdf", (13, 14, 15))
    store.record_placements([("H1", sha(b"b").hexdigest(), moved)])
    assert store.placement("H1", 1) == first and store.placement("H1", 2) == moved
    conn = store._connect(create=False)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("DELETE FROM placements")
