"""FileStorage.tail(): a read-only open follows a writer's flushed groups (storage/tail.py):
complete groups only, torn tails waited on, corruption typed, roll-over and compaction
followed (seamlessly, or by a reset when the records it missed were compacted away).
Seeded randomised runs print their seed on failure."""

from __future__ import annotations

import os
import random

import msgpack
import pytest

from ostracon.core.errors import CorruptLogError
from ostracon.storage import logformat as lf
from ostracon.storage.file import FileStorage
from ostracon.storage.memory import MemoryStorage


def rec(i: int) -> bytes:
    return f"record-{i}".encode() * (1 + i % 3)


def last_segment(path) -> str:
    return os.path.join(path, sorted(n for n in os.listdir(path) if n.startswith("seg-"))[-1])


def open_reader(path) -> tuple[FileStorage, dict[int, bytes]]:
    """A read-only open and what it holds at open (position -> record)."""
    r = FileStorage(path, read_only=True)
    seen: dict[int, bytes] = {}
    snap = r.load_snapshot()
    if snap is not None:
        seen.update(enumerate(msgpack.unpackb(snap[0]), 1))
    seen.update(r.records(snap[1] if snap else 0))
    return r, seen


def follow(reader: FileStorage, seen: dict[int, bytes]) -> bool:
    """One tail() into `seen` (position -> record); rebuild on reset. Returns reset."""
    t = reader.tail()
    assert t is not None
    if t.reset:
        seen.clear()
        snap = reader.load_snapshot()
        if snap is not None:
            for pos, r in enumerate(msgpack.unpackb(snap[0]), 1):
                seen[pos] = r
        after = snap[1] if snap else 0
        t_records = list(reader.records(after))
    else:
        t_records = list(t.records)
    for pos, r in t_records:
        assert pos not in seen or seen[pos] == r
        seen[pos] = r
    return t.reset


def test_writable_and_memory_stores_have_nothing_to_follow(tmp_path):
    with FileStorage(tmp_path / "db") as w:
        assert w.tail() is None
    assert MemoryStorage().tail() is None


def test_reader_sees_each_flush_and_meta_but_nothing_unflushed(tmp_path):
    path = tmp_path / "db"
    with FileStorage(path) as w:
        w.append([rec(1)])
        w.flush()
        r = FileStorage(path, read_only=True)
        assert [p for p, _ in r.records()] == [1]
        assert r.tail().records == ()
        w.append([rec(2), rec(3)])
        w.set_meta("k", b"v1")
        assert r.tail().records == ()          # queued in the writer, not flushed
        w.flush()
        t = r.tail()
        assert t.records == ((2, rec(2)), (3, rec(3))) and not t.reset
        assert r.get_meta("k") == b"v1" and r.last_position() == 3
        assert [p for p, _ in r.records()] == [1, 2, 3]
        assert r.tail().records == ()
        r.close()


def test_torn_tail_is_waited_on_then_taken_when_complete(tmp_path):
    path = tmp_path / "db"
    with FileStorage(path) as w:
        w.append([rec(1)])
    r = FileStorage(path, read_only=True)
    group = lf.encode_group([(lf.KIND_DATA, 2, rec(2)), (lf.KIND_DATA, 3, rec(3))])
    seg = last_segment(path)
    for cut in (1, lf.REC_HEADER_SIZE + 3, len(group) - 1):
        with open(seg, "ab") as f:
            f.write(group[:cut])
        assert r.tail().records == ()             # a flush in progress: wait
        with open(seg, "r+b") as f:
            f.truncate(os.path.getsize(seg) - cut)
    with open(seg, "ab") as f:
        f.write(group[:10])
    assert r.tail().records == ()
    with open(seg, "ab") as f:
        f.write(group[10:])
    assert [p for p, _ in r.tail().records] == [2, 3]
    r.close()
    with FileStorage(path) as w:                 # the writer agrees
        assert w.last_position() == 3


def test_damage_followed_by_a_complete_group_is_corruption(tmp_path):
    path = tmp_path / "db"
    with FileStorage(path) as w:
        w.append([rec(1)])
    r = FileStorage(path, read_only=True)
    seg = last_segment(path)
    at = os.path.getsize(seg)
    bad = bytearray(lf.encode_group([(lf.KIND_DATA, 3, rec(2))]))
    bad[-1] ^= 0xFF
    good = lf.encode_group([(lf.KIND_DATA, 2, rec(2))])
    with open(seg, "ab") as f:
        f.write(good + bytes(bad) + lf.encode_group([(lf.KIND_DATA, 4, rec(3))]))
    assert r.tail().records == ((2, rec(2)),)       # the good group before the damage first
    for _ in range(2):
        with pytest.raises(CorruptLogError) as err:
            r.tail()
        assert err.value.segment == os.path.basename(seg) and err.value.offset == at + len(good)
    r.close()


def test_segment_roll_over_and_compaction_are_followed_without_a_reset(tmp_path):
    path = tmp_path / "db"
    with FileStorage(path, segment_bytes=300) as w:
        w.append([rec(0)])
        w.flush()
        r, seen = open_reader(path)
        assert not follow(r, seen)
        for i in range(1, 40):
            w.append([rec(i)])
            w.flush()
            assert not follow(r, seen)
        assert len(os.listdir(path)) > 5            # several segments were followed
        w.write_snapshot(msgpack.packb([rec(i) for i in range(40)]), 40)
        w.compact(40)
        for i in range(40, 45):
            w.append([rec(i)])
            w.flush()
        assert not follow(r, seen)                  # it had read up to 40: continues seamlessly
        assert seen == {i + 1: rec(i) for i in range(45)}
        r.close()


def test_records_compacted_away_before_they_were_read_make_a_reset(tmp_path):
    path = tmp_path / "db"
    with FileStorage(path) as w:
        w.append([rec(0)])
        w.flush()
        r, seen = open_reader(path)
        assert not follow(r, seen)
        w.append([rec(1), rec(2)])
        w.write_snapshot(msgpack.packb([rec(i) for i in range(3)]), 3)
        w.compact(3)
        w.append([rec(3)])
        w.flush()
        assert follow(r, seen)                      # records 2..3 are gone from the log
        assert seen == {i + 1: rec(i) for i in range(4)}
        w.append([rec(4)])
        w.flush()
        assert not follow(r, seen) and seen[5] == rec(4)
        r.close()


def test_a_store_rewritten_shorter_makes_a_reset(tmp_path):
    path = tmp_path / "db"
    with FileStorage(path) as w:
        w.append([rec(0), rec(1)])
    r = FileStorage(path, read_only=True)
    seg = last_segment(path)
    size = os.path.getsize(seg)
    data = open(seg, "rb").read()
    os.remove(seg)
    with open(seg, "wb") as f:                      # a repair rewrote it: shorter
        f.write(data[:size - 5])
    t = r.tail()
    assert t.reset and r.last_position() == 0
    r.close()


@pytest.mark.parametrize("seed", [11, 12, 13, 14])
def test_randomised_writer_and_reader(tmp_path, seed):
    """Random flushes, roll-overs, compactions, writer restarts and reader looks: the
    reader's rebuilt view always equals the writer's flushed records."""
    rng = random.Random(seed)
    path = tmp_path / "db"
    written: list[bytes] = []
    w = FileStorage(path, segment_bytes=rng.choice([200, 600, 4096]))
    r, seen = open_reader(path)
    try:
        for step in range(300):
            x = rng.random()
            if x < 0.5:
                batch = [rec(len(written) + k) for k in range(rng.randrange(1, 4))]
                w.append(batch)
                written.extend(batch)
                w.flush()
            elif x < 0.58 and written:
                w.write_snapshot(msgpack.packb(written), len(written))
                w.compact(len(written), keep_snapshots=rng.choice([1, 2]))
            elif x < 0.62:
                w.close()
                w = FileStorage(path, segment_bytes=rng.choice([200, 600, 4096]))
            else:
                follow(r, seen)
                assert seen == {i + 1: v for i, v in enumerate(written)}, f"seed {seed} step {step}"
        follow(r, seen)
        assert seen == {i + 1: v for i, v in enumerate(written)}, f"seed {seed}"
    finally:
        w.close()
        r.close()
