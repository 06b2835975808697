"""FileStorage: the storage contract (real disk, every durability mode, and the fake file
layer) plus what only a file adapter has: segments, locking, read-only opens, failures."""

from __future__ import annotations

import os
import random

import pytest

import ostracon
from fakefs import FakeFS
from ostracon.core.errors import DiskFullError, LockedError, ReadOnlyError, StorageError, StorageUnavailableError
from ostracon.storage import logformat as lf
from ostracon.storage.file import FileStorage, StorageFailedError
from polling import run_in_thread
from storage_contract import CONTRACT


class FileHarness:
    persistent = True

    def __init__(self, path, **kwargs):
        self.path, self.kwargs = path, kwargs

    def open(self):
        return FileStorage(self.path, **self.kwargs)


VARIANTS = {
    "flush": {},
    "always": {"durability": "always"},
    "none-small-segments": {"durability": "none", "segment_bytes": 200},
    "fake-fs": "fake",
}


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("check", CONTRACT, ids=lambda f: f.__name__)
def test_contract(check, variant, tmp_path):
    kwargs = VARIANTS[variant]
    if kwargs == "fake":
        check(FileHarness("/db", fs=FakeFS(), segment_bytes=500))
    else:
        check(FileHarness(str(tmp_path / "db"), **kwargs))


def test_segments_roll_and_read_across(tmp_path):
    s = FileStorage(tmp_path / "db", segment_bytes=300)
    recs = [os.urandom(i % 50) for i in range(200)]
    for i in range(0, 200, 7):
        s.append(recs[i:i + 7])
        s.flush()
    segs = [n for n in os.listdir(tmp_path / "db") if n.startswith("seg-")]
    assert len(segs) > 10
    assert [r for _, r in s.records()] == recs
    assert list(s.records(150)) == [(i + 1, recs[i]) for i in range(150, 200)]
    assert s.verify() == 200
    s.close()
    s = FileStorage(tmp_path / "db", segment_bytes=300)
    assert [r for _, r in s.records()] == recs
    s.close()


def test_compact_deletes_covered_segments_and_old_snapshots(tmp_path):
    s = FileStorage(tmp_path / "db", segment_bytes=300)
    for i in range(40):
        s.append([b"%03d" % i + b"-" * 30])
        s.flush()
    s.write_snapshot(b"old", 10)
    s.write_snapshot(b"new", 30)
    before = s.describe()
    s.compact(30)
    after = s.describe()
    assert len(after["segments"]) < len(before["segments"])
    assert [n for n, _, _ in after["snapshots"]] == [before["snapshots"][1][0]]
    assert [p for p, _ in s.records()] == list(range(31, 41))
    s.close()
    s = FileStorage(tmp_path / "db", segment_bytes=300)
    assert [p for p, _ in s.records()] == list(range(31, 41))
    assert s.open_report().records == 10 and s.open_report().snapshot_position == 30
    s.close()


def test_reads_never_wait_for_flush(tmp_path):
    s = FileStorage(tmp_path / "db")
    s.append([b"a", b"b"])
    s.flush()
    s.append([b"c"])                      # queued in memory only
    assert list(s.records(1)) == [(2, b"b"), (3, b"c")]
    assert os.path.getsize(tmp_path / "db" / lf.segment_name(1)) < 200
    s.close()                             # close flushes the queue
    s = FileStorage(tmp_path / "db")
    assert [r for _, r in s.records()] == [b"a", b"b", b"c"]
    s.close()


def test_second_writer_in_same_process_is_locked_out_and_read_only_works(tmp_path):
    w = FileStorage(tmp_path / "db")
    w.append([b"one"])
    w.flush()
    with pytest.raises(LockedError, match="already open for writing"):
        FileStorage(tmp_path / "db")
    r = FileStorage(tmp_path / "db", read_only=True)
    assert list(r.records()) == [(1, b"one")]
    for call, args in [(r.append, ([b"x"],)), (r.set_meta, ("k", b"v")), (r.write_snapshot, (b"", 0)),
                       (r.compact, (0,))]:
        with pytest.raises(ReadOnlyError):
            call(*args)
    r.flush()  # nothing to flush: not an error
    w.append([b"two"])
    w.flush()
    assert list(r.records()) == [(1, b"one")]  # a read-only view is fixed at open
    r.close()
    w.close()
    FileStorage(tmp_path / "db").close()       # the lock is released on close


def test_open_refuses_bad_locations(tmp_path):
    with pytest.raises(StorageUnavailableError, match="parent directory"):
        FileStorage(tmp_path / "missing" / "db")
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(StorageUnavailableError, match="not a directory"):
        FileStorage(tmp_path / "file")
    with pytest.raises(StorageUnavailableError, match="does not exist"):
        FileStorage(tmp_path / "nothing", read_only=True)
    with pytest.raises(StorageError, match="durability"):
        FileStorage(tmp_path / "db", durability="sometimes")
    with pytest.raises(StorageError, match="read_only"):
        FileStorage(tmp_path / "db", read_only=True, repair=True)


def test_disk_full_is_reported_by_flush_and_retry_succeeds():
    fs = FakeFS()
    s = FileStorage("/db", fs=fs)
    s.append([b"a" * 100])
    s.flush()
    fs.capacity = fs._used() + 150           # room for part of the next batch only
    s.append([b"b" * 100, b"c" * 100])
    with pytest.raises(DiskFullError, match="no space left"):
        s.flush()
    assert [r[:1] for _, r in s.records()] == [b"a", b"b", b"c"]  # still readable, still queued
    fs.capacity = None                        # space was freed
    s.flush()
    s.close()
    s = FileStorage("/db", fs=fs)
    assert [r[:1] for _, r in s.records()] == [b"a", b"b", b"c"]
    assert s.open_report().truncated_bytes == 0  # the partial write was undone
    s.close()


def test_fsync_failure_fails_the_adapter_until_reopen():
    fs = FakeFS()
    s = FileStorage("/db", fs=fs)
    s.append([b"a"])
    s.flush()
    fs.fail_fsync_at = fs.fsyncs + 1
    s.append([b"b"])
    with pytest.raises(StorageError, match="fsync"):
        s.flush()
    with pytest.raises(StorageFailedError, match="reopen"):
        s.flush()
    with pytest.raises(StorageFailedError):
        s.append([b"c"])
    assert [r for _, r in s.records()] == [b"a", b"b"]  # reads still work
    s.close()
    fs.fail_fsync_at = None
    s = FileStorage("/db", fs=fs)
    assert [r for _, r in s.records()][:1] == [b"a"]  # acknowledged record kept
    s.close()


def test_record_size_limit(tmp_path):
    s = FileStorage(tmp_path / "db", max_record_bytes=1000)
    s.append([b"x" * 1000])
    with pytest.raises(StorageError, match="max_record_bytes"):
        s.append([b"x" * 1001])
    assert s.last_position() == 1
    s.close()


def test_leftover_temp_files_are_removed(tmp_path):
    s = FileStorage(tmp_path / "db")
    s.close()
    (tmp_path / "db" / "snap-0000000000000001.snap.tmp").write_bytes(b"half")
    (tmp_path / "db" / "notes.txt").write_bytes(b"mine")
    s = FileStorage(tmp_path / "db")
    notes = " ".join(s.open_report().notes)
    assert "snap-0000000000000001.snap.tmp" in notes and "notes.txt" in notes
    assert not (tmp_path / "db" / "snap-0000000000000001.snap.tmp").exists()
    assert s.load_snapshot() is None
    s.close()


@pytest.mark.parametrize("stray", ["seg-" + "\u00b2" * 16 + ".log", "seg-" + "\u0660" * 15 + "\u0661.log",
                                   "snap-" + "\u0660" * 15 + "\u0669.snap", "snap-" + "\uff11" * 16 + ".snap"])
def test_a_stray_file_named_with_non_ascii_digits_is_ignored(tmp_path, stray):
    # str.isdigit() takes these; int() refuses "²" and reads "٠٠…١" as 1, which would make
    # the file pose as segment 1 or snapshot 9 under a name the store never writes.
    with ostracon.open(tmp_path / "db") as db:
        db.collection("t").create({"a": 1}, id="x")
    (tmp_path / "db" / stray).write_bytes(b"")
    assert lf.parse_segment_name(stray) is None and lf.parse_snapshot_name(stray) is None
    with ostracon.open(tmp_path / "db") as db:
        assert db.collection("t").get("x")["a"] == 1
        assert f"ignored unknown file {stray}" in db.open_report().notes


def test_a_folder_of_other_files_is_not_taken_over(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "cat.jpg").write_bytes(b"jpeg")
    (folder / "x.tmp").write_bytes(b"mine too")
    with pytest.raises(StorageUnavailableError, match="not an Ostracon database"):
        FileStorage(folder)
    assert sorted(os.listdir(folder)) == ["cat.jpg", "x.tmp"]  # no LOCK, no log, nothing removed
    with pytest.raises(StorageUnavailableError, match="not an Ostracon database"):
        ostracon.open(folder)
    assert sorted(os.listdir(folder)) == ["cat.jpg", "x.tmp"]
    empty = tmp_path / "empty"
    empty.mkdir()
    FileStorage(empty).close()  # an empty directory becomes a database


def test_meta_survives_many_segment_rolls_and_compaction(tmp_path):
    rng = random.Random(3)
    s = FileStorage(tmp_path / "db", segment_bytes=128)
    expected = {}
    for i in range(60):
        k = f"k{rng.randint(0, 9)}"
        expected[k] = rng.randbytes(8)
        s.set_meta(k, expected[k])
        s.append([b"r"])
        s.flush()
        if i % 20 == 19:
            s.write_snapshot(b"s", s.last_position())
            s.compact(s.last_position())
    s.close()
    s = FileStorage(tmp_path / "db", segment_bytes=128)
    assert {k: s.get_meta(k) for k in expected} == expected
    assert len(s.describe()["segments"]) < 30
    s.close()


def test_enospc_while_creating_segment_keeps_previous(tmp_path):
    fs = FakeFS()
    s = FileStorage("/db", fs=fs, segment_bytes=100)
    s.append([b"a" * 60])
    s.flush()
    fs.capacity = fs._used() + 10
    s.append([b"b" * 60])
    with pytest.raises(DiskFullError):
        s.flush()
    fs.capacity = None
    s.flush()
    s.close()
    s = FileStorage("/db", fs=fs, segment_bytes=100)
    assert [r[:1] for _, r in s.records()] == [b"a", b"b"]
    s.close()


def test_oserror_mapping_names_the_path():
    fs = FakeFS()
    s = FileStorage("/db", fs=fs)
    s.close()
    fs.readonly_dirs.add("/db")
    with pytest.raises(StorageUnavailableError, match="/db.*not writable"):
        FileStorage("/db", fs=fs)


def test_files_are_private_whatever_the_umask(tmp_path):
    """Databases and identities: files 0600 in a 0700 directory (another local user must not
    read a note's plaintext), even under a permissive umask."""
    import os
    import stat

    import ostracon
    old = os.umask(0o002)
    try:
        db = ostracon.open(str(tmp_path / "db"))
        db.collection("notes").create({"text": "private"})
        db.close()
    finally:
        os.umask(old)
    d = tmp_path / "db"
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    names = sorted(os.listdir(d))
    assert "identity.key" in names and any(n.startswith("seg-") for n in names)
    for name in names:
        assert stat.S_IMODE((d / name).stat().st_mode) == 0o600, name


class _HookedFS(FakeFS):
    """Calls `on_fsync(path)` before each file fsync (the snapshot's is the slow one)."""

    on_fsync = None

    def open_write(self, path, **kw):
        handle = super().open_write(path, **kw)
        fs, sync = self, handle.fsync

        def fsync():
            if fs.on_fsync is not None:
                fs.on_fsync(path)
            sync()

        handle.fsync = fsync
        return handle


def test_appends_and_flushes_go_on_while_a_snapshot_is_written():
    fs = _HookedFS()
    s = FileStorage("/db", fs=fs)
    s.append([b"a", b"b"])
    s.flush()
    seen: list[int] = []

    def during(path: str) -> None:
        if path.endswith(".snap.tmp") and not seen:
            seen.append(1)
            run_in_thread(lambda: (s.append([b"c"]), s.flush(), seen.append(s.last_position())),
                          "an append and a flush while the snapshot's file is synced")

    fs.on_fsync = during
    s.write_snapshot(b"state", 2)
    assert seen == [1, 3] and s.load_snapshot() == (b"state", 2)
    assert [p for p, _ in s.records(2)] == [3]
    s.close()
    s = FileStorage("/db", fs=fs.crash(random.Random(1)))
    assert s.load_snapshot() == (b"state", 2) and s.last_position() == 3
    s.close()


def test_a_staged_snapshot_covers_only_durable_records_and_is_refused_once_superseded():
    fs = FakeFS()
    s = FileStorage("/db", fs=fs)
    s.append([b"a", b"b", b"c"])
    with pytest.raises(StorageError, match="not yet flushed"):
        s.stage_snapshot(b"x", 1)
    s.flush()
    old = s.stage_snapshot(b"old", 2)
    new = s.stage_snapshot(b"new", 3)
    assert old.path != new.path
    s.commit_snapshot(new)
    with pytest.raises(StorageError, match="superseded"):
        s.commit_snapshot(old)     # it would hide record 3, which the newest covers
    assert not fs.exists(old.path) and s.load_snapshot() == (b"new", 3)
    dropped = s.stage_snapshot(b"dropped", 3)
    s.discard_snapshot(dropped)
    assert not fs.exists(dropped.path) and s.snapshot_positions() == [3]
    s.compact(3)
    late = s.stage_snapshot(b"late", 3)
    s.commit_snapshot(late)    # covers what the floor covers: fine
    assert s.load_snapshot() == (b"late", 3)
    s.close()


def test_a_staged_snapshot_left_by_a_crash_is_removed_at_open():
    fs = FakeFS()
    s = FileStorage("/db", fs=fs)
    s.append([b"a"])
    s.flush()
    staged = s.stage_snapshot(b"never committed", 1)
    fs.sync_all()                        # the file and its directory entry reached the disk
    disk = fs.crash(random.Random(3))
    assert disk.exists(staged.path)
    s2 = FileStorage("/db", fs=disk)
    assert s2.load_snapshot() is None and not disk.exists(staged.path)
    assert any("removed unfinished temporary file" in n for n in s2.open_report().notes)
    s2.close()
