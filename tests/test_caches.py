"""The build's own caches in OUT/.cache: parsed records (RecordCache) and file hashes (HashMemo).

Both only save work; what they return must be what recomputing gives.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from archive_builder.archive import hashing
from archive_builder.records.cache import RecordCache


def test_record_cache_writes_only_what_a_run_added(tmp_path: Path):
    path = tmp_path / "records.pickle"
    cache = RecordCache(path)
    for i in range(8):
        cache.put(f"k{i}", {"value": i})
    cache.save()
    assert RecordCache(path).keys() == {f"k{i}" for i in range(8)}

    cache = RecordCache(path)
    assert [cache.get(f"k{i}") for i in range(8)] == [{"value": i} for i in range(8)]
    cache.put("k8", {"value": 8})
    cache.save()
    cache = RecordCache(path)
    assert [cache.get(f"k{i}") for i in range(9)] == [{"value": i} for i in range(9)]
    cache.close()

    reader = RecordCache(path)  # validation and the web app read and never save
    reader.put("k9", 9)
    assert reader.get("k9") == 9
    reader.close()
    assert RecordCache(path).get("k9") is None


def test_record_cache_drops_entries_most_runs_no_longer_use(tmp_path: Path):
    path = tmp_path / "records.pickle"
    cache = RecordCache(path)
    for i in range(8):
        cache.put(f"k{i}", i)
    cache.save()
    cache = RecordCache(path)
    for i in range(8, 11):
        cache.put(f"k{i}", i)
    for i in range(4):  # half of them used: all kept
        cache.get(f"k{i}")
    cache.save()
    assert RecordCache(path).keys() == {f"k{i}" for i in range(11)}
    # most entries unused: they are dropped
    cache = RecordCache(path)
    cache.get("k0")
    cache.put("k11", 11)
    cache.save()
    assert RecordCache(path).keys() == {"k0", "k11"}


def test_record_cache_keeps_entries_as_they_were_when_saved(tmp_path: Path):
    """The build saves the parsed records, then releases parts of its own objects: the file
    holds them as they were when saved."""
    path = tmp_path / "records.pickle"
    cache = RecordCache(path)
    values = [{"value": i, "record": [i]} for i in range(5)]
    for i, value in enumerate(values):
        cache.put(f"k{i}", value)
    cache.save()
    for value in values:  # what the build does to a household once it is planned
        value["record"] = None
    assert [RecordCache(path).get(f"k{i}") for i in range(5)] == [{"value": i, "record": [i]} for i in range(5)]


@pytest.mark.parametrize("content", [b"garbage", b"\x80\x05N."])
def test_record_cache_replaces_a_damaged_or_older_file(tmp_path: Path, content: bytes):
    path = tmp_path / "records.pickle"
    path.write_bytes(content)  # e.g. the single pickle of an older version
    (tmp_path / "records.pickle.new").write_bytes(b"old")
    cache = RecordCache(path)
    assert cache.get("k") is None
    cache.put("k", 1)
    cache.save()
    assert RecordCache(path).get("k") == 1
    assert not (tmp_path / "records.pickle.new").exists()


def test_hash_memo_rereads_a_file_whose_stat_changed(tmp_path: Path):
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(b"first")
    memo_file = tmp_path / "hashes.json"
    memo = hashing.HashMemo(memo_file)
    assert memo.sha256(photo) == hashing.file_sha256(photo)
    memo.save()

    memo = hashing.HashMemo(memo_file)
    reads = []
    real = hashing.file_sha256
    try:
        hashing.file_sha256 = lambda p: reads.append(p) or real(p)  # type: ignore[assignment]
        assert memo.sha256(photo) == real(photo) and reads == []
        photo.write_bytes(b"other")  # same size, new content
        st = photo.stat()
        os.utime(photo, ns=(st.st_atime_ns, st.st_mtime_ns))
        assert memo.sha256(photo) == real(photo) and reads == [photo]
        assert memo.sha256(tmp_path / "missing.jpg") is None
    finally:
        hashing.file_sha256 = real  # type: ignore[assignment]
    memo.save()
    assert list(hashing.HashMemo(memo_file).entries) == [str(photo)]


def test_evidence_hashes_use_the_memo_only_while_set(tmp_path: Path):
    photo = tmp_path / "a.jpg"
    photo.write_bytes(b"x")
    memo = hashing.HashMemo(None)
    hashing.use_memo(memo)
    try:
        assert hashing.evidence_hashes([("a.jpg", photo)]) == {"a.jpg": hashing.file_sha256(photo)}
        assert str(photo) in memo.used
    finally:
        hashing.use_memo(None)
    assert hashing.evidence_hashes([("b.jpg", tmp_path / "b.jpg")]) == {"b.jpg": "missing"}


def test_positions_are_a_compact_mapping():
    """Source positions of a record (~550 per household) kept as interned paths + one array."""
    import pickle

    from archive_builder.records.loader import Positions

    plain = {"members[1].id_number": (12, 17), "household_id": (1, 1), "members[1]": (11, 5)}
    positions = Positions(plain)
    assert dict(positions) == plain and len(positions) == 3
    assert positions["members[1].id_number"] == (12, 17) and positions.get("x") is None
    assert "household_id" in positions and "x" not in positions and 3 not in positions
    assert positions == plain and positions == Positions(plain)
    again = pickle.loads(pickle.dumps(positions))
    assert again == positions
    assert next(iter(again)) is next(iter(Positions(plain)))  # paths shared between records


def test_valid_records_keep_only_what_the_rules_read_of_their_mapping(tmp_path):
    from synthetic import write_dataset

    from archive_builder.records.loader import load_dataset

    data = write_dataset(tmp_path / "data", (("411621105201", "李庄村", 2),), seed=5, photos_per_household=0)
    for _, household in load_dataset(data).households():
        assert household.record is not None
        assert household.raw == {"members": [{"id_number": m.id_number} for m in household.record.members]}


def test_font_file_hashes_go_through_the_hash_memo_and_keep_each_other(tmp_path: Path, monkeypatch):
    """The font cache remembers file hashes in the same memo as the build, without one font
    file's entry pushing out another's (each process hashes only the fonts it uses)."""
    import json

    from archive_builder.render import fontfiles

    monkeypatch.setenv("ARCHIVE_BUILDER_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(fontfiles, "_FILE_SHA", {})
    a, b = tmp_path / "a.ttf", tmp_path / "b.ttf"
    a.write_bytes(b"font a")
    b.write_bytes(b"font b")
    assert fontfiles._file_sha256(a) == hashing.file_sha256(a)
    assert fontfiles._file_sha256(b) == hashing.file_sha256(b)
    memo = json.loads((tmp_path / "cache" / "fonts" / "file-hashes.json").read_text("utf-8"))
    assert sorted(memo) == [str(a), str(b)]
    assert hashing.HashMemo(tmp_path / "cache" / "fonts" / "file-hashes.json").sha256(a) == hashing.file_sha256(a)


def test_clean_work_files_removes_a_killed_run_s_temp_files_in_the_evidence_cache(tmp_path: Path, monkeypatch):
    """The evidence cache writes through the project's atomic-write helper, so the temp file a
    run killed mid-write leaves in OUT/.cache/evidence is one ``clean_work_files`` removes."""
    import shutil

    from archive_builder.archive import outdir
    from archive_builder.archive.build import clean_work_files
    from archive_builder.render import evidence

    left: list[str] = []

    def killed(tmp: str, path: Path) -> None:  # the process dies before the rename
        shutil.copy(tmp, tmp + ".copy")
        left.append(tmp)
        raise KeyboardInterrupt

    out = tmp_path / "out"
    entry = out / ".cache" / "evidence" / "ab" / "abcd.json"
    monkeypatch.setattr(outdir, "_replace", killed)
    with pytest.raises(KeyboardInterrupt):
        evidence._atomic_write(entry, b"{}")
    monkeypatch.undo()
    os.replace(left[0] + ".copy", left[0])
    assert [p.name for p in entry.parent.iterdir()] == [Path(left[0]).name]
    kept = out / "冯老村" / "封面.pdf"
    kept.parent.mkdir(parents=True)
    kept.write_bytes(b"%PDF")
    clean_work_files(out)
    assert list(entry.parent.iterdir()) == []
    assert kept.read_bytes() == b"%PDF"


def test_clean_work_files_removes_the_store_s_uncommitted_blobs(tmp_path: Path):
    """A run killed between staging a version's blob and committing it leaves ``tmp-*`` in the
    store's blob folder; the next run removes it, and keeps the committed blobs."""
    from archive_builder.archive.build import clean_work_files

    blobs = tmp_path / "out" / ".store" / "blobs"
    (blobs / "ab").mkdir(parents=True)
    committed = blobs / "ab" / ("ab" + "0" * 62)
    committed.write_bytes(b"%PDF committed")
    (blobs / "tmp-x1y2z3").write_bytes(b"%PDF half")
    clean_work_files(tmp_path / "out")
    assert sorted(p.name for p in blobs.rglob("*") if p.is_file()) == [committed.name]
