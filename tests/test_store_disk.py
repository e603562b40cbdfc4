"""The version store and the output folder's packets share no writable bytes: an edit of a
packet never changes a stored version; an unchanged rebuild adds no byte to the store; the
benchmark's disk figures (outdir.disk_usage) split the folder into boxes, packets and store."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from build_helpers import make_data

from archive_builder.archive import outdir
from archive_builder.archive.build import BuildOptions, build
from archive_builder.versions import store as st
from archive_builder.versions.store import Entry, VersionStore


def _files(folder: Path) -> dict[str, tuple[int, str]]:
    """Every file under ``folder``: its size and sha256 (the catalog's WAL files aside)."""
    found = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.name.endswith(("-wal", "-shm")):
            found[path.relative_to(folder).as_posix()] = (path.stat().st_size, hashlib.sha256(path.read_bytes()).hexdigest())
    return found


def _entry(pdf: Path, hid: str = "H1", content: str = "a") -> Entry:
    return Entry(
        household_id=hid, village_code="411621105201", content_hash=hashlib.sha256(content.encode()).hexdigest(),
        record_json=b'{"c": "' + content.encode() + b'"}', packet_pdf=pdf, evidence_hashes={},
        template_set="default", program_version="0.1", pages=1, built_at="2025-01-01T00:00:00+08:00",
        packet_sha256=hashlib.sha256(pdf.read_bytes()).hexdigest(),
    )


@pytest.mark.parametrize("reflink", [True, False])
def test_editing_an_output_packet_never_changes_the_stored_version(tmp_path: Path, monkeypatch, reflink: bool) -> None:
    if not reflink:  # the plain copy, as on ext4 or NTFS
        monkeypatch.setattr(st, "sys", type("Sys", (), {"platform": "other"}))
    packet = tmp_path / "分户档卡" / "H1.pdf"
    packet.parent.mkdir()
    original = b"%PDF-1.7 packet " + os.urandom(200_000)
    packet.write_bytes(original)
    store = VersionStore(tmp_path)
    (version,) = store.record_many([_entry(packet)])
    assert version is not None
    # an editor writing into the file in place, as root would even on a read-only file
    with open(packet, "r+b") as fh:
        fh.seek(100)
        fh.write(b"EDITED" * 100)
        fh.truncate(150_000)
    assert store.blob(version.pdf_sha) == original
    assert store.check() == []
    assert os.stat(store.blob_path(version.pdf_sha)).st_ino != os.stat(packet).st_ino  # never a hard link


def test_clone_or_copy_falls_back_to_a_copy(tmp_path: Path) -> None:
    source = tmp_path / "a"
    source.write_bytes(b"x" * 10_000)
    shared = st.clone_or_copy(source, tmp_path / "b")
    assert (tmp_path / "b").read_bytes() == source.read_bytes()
    assert shared == outdir.reflink_supported(tmp_path)


@pytest.mark.slow
def test_unchanged_rebuild_adds_no_bytes_to_the_store(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("ARCHIVE_BUILDER_CACHE_DIR", str(tmp_path / "cache"))
    data = make_data(tmp_path / "data", villages=(("411621105201", "李庄村", 3),))
    out = tmp_path / "out"
    build(data, out, BuildOptions(jobs=1))
    before = _files(out / ".store" / "blobs")
    with VersionStore(out) as store:
        versions = store.stats()
        catalog = [tuple(r) for r in store._connect(create=False).execute("SELECT * FROM versions")]
        placed = store._connect(create=False).execute("SELECT COUNT(*) FROM placements").fetchone()[0]
    assert placed == 3
    # every packet rendered again (same bytes): no blob, row or placement is added
    build(data, out, BuildOptions(jobs=1, force=True))
    assert _files(out / ".store" / "blobs") == before
    with VersionStore(out) as store:
        assert store.stats() == versions
        assert [tuple(r) for r in store._connect(create=False).execute("SELECT * FROM versions")] == catalog
        assert store._connect(create=False).execute("SELECT COUNT(*) FROM placements").fetchone()[0] == placed
    usage = outdir.disk_usage(out)
    assert usage.households == 3
    assert usage.boxes > 0 and usage.packets > 0 and usage.store > 0
    # one copy of each packet in the store (sharing blocks with them where the file system can)
    packets = sum(p.stat().st_size for p in out.rglob("分户档卡/*.pdf"))
    assert sum(size for size, _ in before.values()) == packets
    assert usage.per_household()["total"] == pytest.approx(usage.total / 3)
