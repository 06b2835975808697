"""Damaged files and every StorageError path of FileStorage.

A 50-record log is truncated at every byte offset and has every bit flipped, one at a
time: a damaged record is never returned, damage in the last commit group is a torn tail
(cut and reported), damage anywhere else is CorruptLogError naming segment and offset,
repair=True keeps exactly the valid prefix, and nothing but StorageError subclasses escapes.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys

import pytest

from fakefs import FakeFS
from ostracon.core.errors import (
    CorruptLogError,
    CorruptSnapshotError,
    DiskFullError,
    LockedError,
    StorageError,
    StorageUnavailableError,
)
from ostracon.storage import logformat as lf
from ostracon.storage.file import FileStorage

SEG = "/db/" + lf.segment_name(1)


def build_log(seed: int = 5):
    """50 records in commit groups of 1..5; returns (fs, records, group_ends, record_starts)
    where group_ends[i] = (end offset of group i, last position in it)."""
    rng = random.Random(seed)
    fs = FakeFS()
    s = FileStorage("/db", fs=fs)
    recs = [rng.randbytes(rng.randint(0, 24)) for _ in range(50)]
    group_ends = [(len(fs.read_file(SEG)), 0)]  # header + checkpoint group
    i = 0
    while i < 50:
        n = min(rng.randint(1, 5), 50 - i)
        s.append(recs[i:i + n])
        if rng.random() < 0.2:
            s.set_meta("doc1", rng.randbytes(4))
        s.flush()
        i += n
        group_ends.append((len(fs.read_file(SEG)), i))
    s.close()
    fs.sync_all()
    mv = memoryview(fs.read_file(SEG))
    starts, _ = lf.walk(mv, lf.SEG_HEADER_SIZE, len(mv), 1 << 20, 1 << 20)
    return fs, recs, group_ends, [r[0] for r in starts]


def open_and_read(data: bytes, **kwargs):
    fs = FakeFS(dirs=("/", "/db"))
    fs.write_file(SEG, data)
    s = FileStorage("/db", fs=fs, **kwargs)
    try:
        return list(s.records()), s.open_report(), fs
    finally:
        s.close()


def test_truncate_at_every_offset():
    fs, recs, group_ends, _ = build_log()
    data = fs.read_file(SEG)
    for cut in range(len(data) + 1):
        got, report, _ = open_and_read(data[:cut])
        whole = [(end, last) for end, last in group_ends if end <= cut]
        kept = whole[-1][1] if whole else 0
        assert got == [(i + 1, recs[i]) for i in range(kept)], f"cut at {cut}"
        expect_cut = cut - whole[-1][0] if whole else cut
        assert report.truncated_bytes == expect_cut, f"cut at {cut}: {report}"


def test_flip_every_bit():
    fs, recs, group_ends, starts = build_log()
    data = fs.read_file(SEG)
    last_group_start = group_ends[-2][0]
    record_start = {}
    for k in range(len(data)):
        before = [s for s in starts if s <= k]
        record_start[k] = before[-1] if before and k >= lf.SEG_HEADER_SIZE else 0
    for k in range(len(data)):
        for bit in range(8):
            bad = bytearray(data)
            bad[k] ^= 1 << bit
            bad = bytes(bad)
            if k >= last_group_start:  # inside the last group: a torn tail, not corruption
                got, report, _ = open_and_read(bad)
                assert got == [(i + 1, recs[i]) for i in range(group_ends[-2][1])], f"byte {k} bit {bit}"
                assert report.truncated_bytes == len(data) - last_group_start
                continue
            with pytest.raises(CorruptLogError) as err:
                open_and_read(bad)
            assert err.value.segment == lf.segment_name(1) and err.value.offset == record_start[k], \
                f"byte {k} bit {bit}: {err.value} offset {err.value.offset}"
            if bit == 0:  # repair once per byte: the valid prefix, the rest quarantined
                got, report, rfs = open_and_read(bad, repair=True)
                whole = [last for end, last in group_ends if end <= record_start[k]]
                kept = whole[-1] if whole else 0
                assert got == [(i + 1, recs[i]) for i in range(kept)], f"repair byte {k}"
                assert len(report.quarantined) == 1
                assert bad.endswith(rfs.read_file("/db/" + report.quarantined[0]))


def test_damage_in_an_older_segment_is_found_on_read_and_repaired():
    fs = FakeFS()
    s = FileStorage("/db", fs=fs, segment_bytes=200)
    recs = [b"%02d" % i * 5 for i in range(30)]
    for i in range(0, 30, 3):
        s.append(recs[i:i + 3])
        s.flush()
    s.close()
    fs.sync_all()
    segs = sorted(p for p in fs.entries if "/seg-" in p)
    assert len(segs) >= 3
    first = fs.read_file(segs[0])
    for k in range(len(first)):
        bad = bytearray(first)
        bad[k] ^= 0x10
        disk = FakeFS(dirs=("/", "/db"))
        for p in fs.entries:
            disk.write_file(p, fs.read_file(p))
        disk.write_file(segs[0], bytes(bad))
        try:
            s = FileStorage("/db", fs=disk, segment_bytes=200)
            got = []
            with pytest.raises(CorruptLogError):
                for item in s.records():
                    got.append(item)
            assert got == [(i + 1, recs[i]) for i in range(len(got))]  # never a damaged one
            s.close()
        except CorruptLogError as exc:
            assert k < lf.SEG_HEADER_SIZE and exc.offset == 0  # a damaged header is caught at open
        s = FileStorage("/db", fs=disk, segment_bytes=200, repair=True)
        got = list(s.records())
        assert got == [(i + 1, recs[i]) for i in range(len(got))] and len(got) < 30
        assert s.open_report().quarantined
        s.append([b"after repair"])
        s.close()
        assert list(FileStorage("/db", fs=disk, segment_bytes=200).records())[-1][1] == b"after repair"


def snapshot_store():
    fs = FakeFS()
    s = FileStorage("/db", fs=fs)
    s.append([b"a", b"b", b"c"])
    s.write_snapshot(b"older", 1)
    s.write_snapshot(b"newest snapshot", 3)
    s.close()
    fs.sync_all()
    return fs, "/db/" + lf.snapshot_name(2)


def test_malformed_snapshot_every_bit_and_every_length():
    fs, path = snapshot_store()
    good = fs.read_file(path)
    variants = [good[:n] for n in range(len(good))]
    variants += [bytes(b ^ (1 << bit) if i == k else b for i, b in enumerate(good))
                 for k in range(len(good)) for bit in range(8)]
    for bad in variants:
        fs.write_file(path, bad)
        with pytest.raises(CorruptSnapshotError, match=lf.snapshot_name(2)):
            FileStorage("/db", fs=fs)
    fs.write_file(path, variants[0])
    s = FileStorage("/db", fs=fs, repair=True)
    assert s.load_snapshot() == (b"older", 1)
    assert any("quarantine-snap" in q for q in s.open_report().quarantined)
    assert [r for _, r in s.records()] == [b"a", b"b", b"c"]
    s.close()


def test_unwritable_directory(tmp_path):
    db = tmp_path / "db"
    FileStorage(db).close()
    os.chmod(db, 0o500)
    try:
        probe = db / "probe"
        try:  # root (and some file systems) ignore the mode bits: check what really happens
            probe.write_bytes(b"")
            probe.unlink()
            chmod_blocks = False
        except PermissionError:
            chmod_blocks = True
        if chmod_blocks:
            with pytest.raises(StorageUnavailableError, match="not writable"):
                FileStorage(db)
            FileStorage(db, read_only=True).close()  # reading still works
    finally:
        os.chmod(db, 0o700)
    if not chmod_blocks:  # the same path through the fake file layer, which does refuse
        fs = FakeFS()
        FileStorage("/db", fs=fs).close()
        fs.readonly_dirs.add("/db")
        with pytest.raises(StorageUnavailableError, match="not writable"):
            FileStorage("/db", fs=fs)
        FileStorage("/db", fs=fs, read_only=True).close()
        fs.readonly_dirs = {"/"}
        with pytest.raises(StorageUnavailableError, match="not writable"):
            FileStorage("/new", fs=fs)  # cannot even create the directory


def test_lock_held_by_another_process(tmp_path):
    db = str(tmp_path / "db")
    FileStorage(db).close()
    code = ("import sys; from ostracon.storage.file import FileStorage; s = FileStorage(sys.argv[1]); "
            "s.append([b'from child']); s.flush(); print('ready', flush=True); sys.stdin.read()")
    child = subprocess.Popen([sys.executable, "-c", code, db], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert child.stdout.readline() == b"ready\n", child.stderr.read().decode()
        with pytest.raises(LockedError, match="another process"):
            FileStorage(db)
        r = FileStorage(db, read_only=True)
        assert list(r.records()) == [(1, b"from child")]
        r.close()
    finally:
        child.communicate(b"", timeout=30)
    FileStorage(db).close()  # the lock died with its holder


def test_disk_full_paths():
    fs = FakeFS(capacity=10)
    with pytest.raises(DiskFullError, match="no space left"):
        FileStorage("/db", fs=fs)  # cannot even write the first segment
    fs = FakeFS()
    s = FileStorage("/db", fs=fs)
    s.append([b"x" * 50])
    s.write_snapshot(b"S" * 10, 1)
    fs.capacity = fs._used() + 20
    with pytest.raises(DiskFullError):
        s.write_snapshot(b"S" * 100, 1)
    assert not [p for p in fs.entries if p.endswith(".tmp")]  # no half snapshot left behind
    assert s.load_snapshot() == (b"S" * 10, 1)
    s.append([b"y" * 100])
    with pytest.raises(DiskFullError):
        s.flush()
    with pytest.raises(DiskFullError):
        s.close()  # close tries to flush the queue and says it could not
    s = FileStorage("/db", fs=fs)
    assert [r for _, r in s.records()] == [b"x" * 50]  # the acknowledged one, nothing damaged
    s.close()


def test_only_typed_errors_escape_random_damage():
    """Random multi-byte damage of a multi-segment store with snapshots: open and read must
    either work (returning only true records) or raise a StorageError subclass."""
    rng = random.Random(11)
    fs = FakeFS()
    s = FileStorage("/db", fs=fs, segment_bytes=300)
    recs = [rng.randbytes(rng.randint(0, 40)) for _ in range(80)]
    for i in range(0, 80, 4):
        s.append(recs[i:i + 4])
        s.flush()
        if i % 20 == 0:
            s.write_snapshot(b"snap%d" % i, i + 4)
    s.close()
    fs.sync_all()
    paths = sorted(fs.entries)
    for trial in range(400):
        disk = FakeFS(dirs=("/", "/db"))
        for p in paths:
            disk.write_file(p, fs.read_file(p))
        victim = rng.choice(paths)
        data = bytearray(disk.read_file(victim))
        for _ in range(rng.randint(1, 4)):
            if data and rng.random() < 0.7:
                data[rng.randrange(len(data))] = rng.getrandbits(8)
            else:
                del data[rng.randrange(len(data) + 1):]
        disk.write_file(victim, bytes(data))
        for repair in (False, True):
            try:
                s = FileStorage("/db", fs=disk, segment_bytes=300, repair=repair)
                try:
                    for pos, rec in s.records():
                        assert rec == recs[pos - 1], f"trial {trial}: damaged record {pos} returned"
                    s.load_snapshot()
                finally:
                    s.close()
            except StorageError as exc:
                assert not repair, f"trial {trial}: repair failed on {victim}: {exc!r}"
