"""Mailbox contract: the same tests run against MemoryMailbox, SqliteMailbox and RedisMailbox
(a real redis-server on a loopback port, see tests/redis_server.py).

Sizes are accounted with FRAME_OVERHEAD_BYTES per frame (``O`` below)."""

from __future__ import annotations

import os
import random

import pytest

from ostracon.core.errors import LockedError, StorageUnavailableError, ValidationError
from ostracon.relay.mailbox import FRAME_OVERHEAD_BYTES as O
from ostracon.relay.mailbox import MailboxError, MemoryMailbox, RoomInfo, SqliteMailbox, parse_mailbox_spec
from ostracon.relay.redis_backend import RedisMailbox
from redis_server import redis_server  # noqa: F401  (fixture)

R1 = "a1" * 32
R2 = "b2" * 32
R3 = "c3" * 16  # shortest allowed room id


class FakeClock:
    def __init__(self, t: float = 1_000_000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture(params=["memory", "sqlite", "redis"])
def make(request, tmp_path):
    opened = []
    server = request.getfixturevalue("redis_server") if request.param == "redis" else None

    def factory(**limits):
        if request.param == "memory":
            mb = MemoryMailbox(**limits)
        elif request.param == "redis":
            mb = RedisMailbox(server.client(), **limits)
        else:
            mb = SqliteMailbox(tmp_path / "mailbox.sqlite", **limits)
        opened.append(mb)
        return mb

    factory.kind = request.param
    yield factory
    for mb in opened:
        mb.close()


def test_cursors_are_contiguous_per_room_and_rooms_are_isolated(make):
    mb = make()
    assert [mb.append(R1, b"x%d" % i) for i in range(5)] == [1, 2, 3, 4, 5]
    assert mb.append(R2, b"other") == 1
    assert mb.append(R1, b"x5") == 6
    assert mb.read(R1, 0) == [(i + 1, b"x%d" % i) for i in range(6)]
    assert mb.read(R2, 0) == [(1, b"other")]
    assert mb.read(R3, 0) == []
    info = mb.info(R1)
    assert (info.head, info.pruned_through, info.frames, info.bytes, info.oldest) == (6, 0, 6, 12 + 6 * O, 1)
    assert info.epoch is not None and info.epoch != mb.info(R2).epoch


def test_read_after_limit_and_max_bytes(make):
    mb = make()
    for i in range(10):
        mb.append(R1, bytes([i]) * (i + 1))
    assert [c for c, _ in mb.read(R1, 3, limit=4)] == [4, 5, 6, 7]
    assert mb.read(R1, 10) == []
    assert mb.read(R1, 99) == []
    # max_bytes stops before exceeding, but the first frame always comes.
    assert [c for c, _ in mb.read(R1, 0, max_bytes=6)] == [1, 2, 3]
    assert [c for c, _ in mb.read(R1, 9, max_bytes=1)] == [10]


def test_prune_by_room_bytes_drops_oldest_and_reports_gap(make):
    mb = make(max_room_bytes=1000 + 3 * O, max_total_bytes=10_000)
    for i in range(10):
        mb.append(R1, bytes([i]) * 300)
    info = mb.info(R1)
    assert info.bytes <= 1000 + 3 * O and info.frames == 3
    assert info.pruned_through == 7 and info.oldest == 8 and info.head == 10
    assert [c for c, _ in mb.read(R1, 0)] == [8, 9, 10]
    assert mb.stats().dropped["room_bytes"] == 7
    # A client that saw cursor 5 missed 6 and 7: gap. One that saw 7 did not.
    r = info.resume(5)
    assert (r.gap, r.after, r.replay) == ("pruned", 7, True)
    assert info.resume(7).gap is None and info.resume(7).after == 7
    assert info.resume(0).gap == "pruned"
    # Other rooms are untouched.
    mb.append(R2, b"z" * 900)
    assert mb.info(R2).frames == 1


def test_room_budget_evicts_only_the_flooding_writers_frames(make):
    mb = make(max_room_bytes=10 * (100 + O), max_total_bytes=100_000)
    for i in range(3):
        assert mb.append(R1, b"b%d" % i + b"." * 98, "198.51.100.7") == i + 1
    for _i in range(20):
        mb.append(R1, b"a" * 100, "203.0.113.9")
    info = mb.info(R1)
    assert (info.frames, info.head, info.pruned_through, info.oldest) == (10, 23, 16, 1)
    assert [c for c, _ in mb.read(R1, 0)] == [1, 2, 3, *range(17, 24)]
    assert [f[:2] for _, f in mb.read(R1, 0, limit=3)] == [b"b0", b"b1", b"b2"]
    assert mb.stats().dropped["room_bytes"] == 13
    # A reader behind the holes is told about the gap and still gets the survivors.
    r = info.resume(2)
    assert (r.gap, r.after) == ("pruned", 2)
    assert [c for c, _ in mb.read(R1, r.after)] == [3, *range(17, 24)]
    assert info.resume(16).gap is None


def test_room_budget_tie_evicts_the_writer_with_the_oldest_frame(make):
    mb = make(max_room_bytes=4 * (10 + O), max_total_bytes=100_000)
    for writer in ("c", "a", "c", "a", "b"):
        mb.append(R1, b"x" * 10, writer)
    assert [c for c, _ in mb.read(R1, 0)] == [2, 3, 4, 5]
    mb.append(R1, b"x" * 10, "a")  # a now holds the most bytes: its oldest (2) goes
    assert [c for c, _ in mb.read(R1, 0)] == [3, 4, 5, 6]
    assert mb.info(R1).pruned_through == 2


def test_prune_by_total_bytes_drops_globally_oldest(make):
    clock = FakeClock()
    mb = make(max_room_bytes=1500, max_total_bytes=2000 + 5 * O, clock=clock)
    for _i in range(3):
        mb.append(R1, b"a" * 400)  # R1: cursors 1..3 are the oldest
        clock.t += 1
    for _i in range(3):
        mb.append(R2, b"b" * 400)
        clock.t += 1
    # 2400 > 2000: the globally oldest frames (R1's first ones) went.
    s = mb.stats()
    assert s.bytes <= 2000 + 5 * O
    assert mb.info(R1).pruned_through == 1 and mb.info(R2).pruned_through == 0
    assert s.dropped["total_bytes"] == mb.info(R1).pruned_through
    assert s.bytes == mb.info(R1).bytes + mb.info(R2).bytes


def test_total_budget_evicts_the_heaviest_writer_over_all_rooms_not_the_oldest_frames(make):
    """A writer filling rooms of its own (room ids are free) evicts its own frames under the
    total budget, never those of a writer holding less, however old they are."""
    clock = FakeClock()
    F = 100 + O
    mb = make(max_room_bytes=10 * F, max_total_bytes=10 * F, clock=clock)
    for i in range(3):
        mb.append(R1, b"v%099d" % i, "victim")
        clock.t += 1
    for i in range(14):  # 14 frames over two rooms of its own: 7 fit beside the victim's 3
        mb.append(R2 if i % 2 else R3, b"x" * 100, "outsider")
        clock.t += 1
    v = mb.info(R1)
    assert (v.frames, v.pruned_through) == (3, 0)
    assert mb.read(R1, 0) == [(i + 1, b"v%099d" % i) for i in range(3)]
    s = mb.stats()
    assert s.bytes == 10 * F and s.dropped["total_bytes"] == 7
    assert mb.info(R2).frames + mb.info(R3).frames == 7
    # The outsider's oldest 7 went: R3 (even i) cursors 1..4, R2 (odd i) cursors 1..3.
    assert mb.info(R3).pruned_through == 4 and mb.info(R2).pruned_through == 3
    # A writer holding more than the one appending loses first: "victim" now holds 3 frames,
    # "outsider" 7; a newcomer's frame takes the outsider's oldest, not the victim's older ones.
    mb.append(R1, b"n" * 100, "newcomer")
    assert mb.info(R1).pruned_through == 0 and mb.info(R2).pruned_through == 4
    if make.kind != "memory":  # the writer totals come back on reopen
        mb.close()
        mb = make(max_room_bytes=10 * F, max_total_bytes=10 * F, clock=clock)
        mb.append(R3, b"x" * 100, "outsider")
        assert mb.info(R1).frames == 4 and mb.info(R3).pruned_through == 5


def test_total_budget_tie_evicts_the_writer_with_the_oldest_frame(make):
    clock = FakeClock()
    F = 100 + O
    mb = make(max_room_bytes=4 * F, max_total_bytes=4 * F, clock=clock)
    for room, writer in ((R2, "b"), (R1, "a"), (R2, "b"), (R1, "a")):
        mb.append(room, b"y" * 100, writer)
        clock.t += 1
    mb.append(R3, b"c" * 100, "c")  # a and b hold 2 frames each; b's first frame is the oldest
    assert mb.info(R2).pruned_through == 1 and mb.info(R1).pruned_through == 0
    assert mb.stats().bytes == 4 * F


def test_random_rooms_and_writers_evict_like_the_memory_mailbox(make):
    """Seeded random appends of four writers over three rooms under both budgets (timestamps
    often equal): every backend keeps exactly the frames the memory mailbox keeps."""
    seed = int(os.environ.get("OSTRACON_TEST_SEED", random.randrange(2**32)))
    rng = random.Random(seed)
    clock = FakeClock()
    limits = dict(max_room_bytes=3000, max_total_bytes=6000, clock=clock)
    mb, ref = make(**limits), MemoryMailbox(**limits)
    for _ in range(300):
        room, writer = rng.choice([R1, R2, R3]), rng.choice(["w1", "w2", "w3", "w4"])
        frame = rng.randbytes(rng.randint(1, 600))
        assert mb.append(room, frame, writer) == ref.append(room, frame, writer), seed
        clock.t += rng.choice([0.0, 0.5])
    for room in (R1, R2, R3):
        assert mb.read(room, 0, limit=1000) == ref.read(room, 0, limit=1000), seed
        assert mb.info(room).pruned_through == ref.info(room).pruned_through, seed
    got, want = mb.stats(), ref.stats()
    assert (got.bytes, got.frames, got.dropped["total_bytes"]) == (want.bytes, want.frames,
                                                                    want.dropped["total_bytes"]), seed


def test_prune_by_age_with_injected_clock(make):
    clock = FakeClock()
    mb = make(max_age_s=100.0, clock=clock)
    mb.append(R1, b"old1")
    mb.append(R1, b"old2")
    mb.append(R2, b"r2")
    clock.t += 60
    mb.append(R1, b"new")
    clock.t += 50  # old1/old2/r2 are 110 s old, "new" is 50 s old
    assert mb.prune(keep={R2}) == 3
    assert mb.read(R1, 0) == [(3, b"new")]
    assert mb.info(R1).pruned_through == 2
    assert mb.stats().dropped["age"] == 3
    # R2 is empty and silent for > max_age_s, but the relay says it has live members: kept,
    # so its epoch and cursors stay valid for them.
    r2 = mb.info(R2)
    assert (r2.frames, r2.head, r2.pruned_through) == (0, 1, 1) and r2.epoch is not None
    mb.prune()
    assert mb.info(R2).epoch is None  # forgotten: a returning client gets an epoch gap
    # Appending also expires the room's aged-out frames.
    clock.t += 60
    assert mb.append(R1, b"newer") == 4
    assert mb.read(R1, 0) == [(4, b"newer")]


def test_clock_going_backwards_keeps_prefix_pruning(make):
    clock = FakeClock()
    mb = make(max_age_s=100.0, clock=clock)
    mb.append(R1, b"a")
    clock.t -= 500  # wall clock stepped back
    mb.append(R1, b"b")
    clock.t += 550
    assert mb.prune() == 0  # frames are stamped no earlier than their predecessor
    clock.t += 100
    assert mb.prune(keep={R1}) == 2
    assert mb.info(R1).pruned_through == 2


def test_resume_rules():
    info = RoomInfo(R1, "e1", head=10, pruned_through=4, frames=6, bytes=60)
    assert info.resume(None) == info.resume(None, "zz")
    r = info.resume(None)
    assert (r.after, r.gap, r.replay) == (10, None, False)
    assert info.resume(6, "e1").after == 6 and info.resume(6, "e1").gap is None
    assert info.resume(6, None).gap is None  # no epoch given: trust the cursor
    r = info.resume(6, "e2")
    assert (r.gap, r.after) == ("epoch", 4)
    r = info.resume(11, "e1")
    assert (r.gap, r.after) == ("ahead", 4)
    assert info.resume(3).gap == "pruned"
    assert info.resume(4).gap is None
    # since=0 ("nothing yet") never needs an epoch match.
    assert info.resume(0, "e2").gap == "pruned"
    assert RoomInfo(R1, "e1", 3, 0, 3, 9).resume(0, "other").gap is None
    with pytest.raises(ValidationError):
        info.resume(-1)


def test_info_create_and_discard_if_empty(make):
    mb = make()
    assert mb.info(R1).epoch is None
    e = mb.info(R1, create=True).epoch
    assert e is not None and mb.info(R1).epoch == e
    assert mb.stats().rooms == 1
    assert mb.discard_if_empty(R1) is True
    assert mb.info(R1).epoch is None
    mb.append(R1, b"x")
    assert mb.discard_if_empty(R1) is False
    assert mb.info(R1).head == 1


def test_validation(make):
    mb = make(max_room_bytes=100, max_total_bytes=1000)
    for bad_room in ("", "AB" * 32, "ab" * 15, "ab" * 65, "zz" * 32, 5):
        with pytest.raises(ValidationError):
            mb.append(bad_room, b"x")
    with pytest.raises(ValidationError):
        mb.append(R1, b"")
    for bad_writer in (5, b"w", "w" * 129):
        with pytest.raises(ValidationError):
            mb.append(R1, b"x", bad_writer)
    with pytest.raises(ValidationError):
        mb.append(R1, b"x" * (101 - O))
    with pytest.raises(ValidationError):
        mb.read(R1, -1)
    with pytest.raises(ValidationError):
        mb.read(R1, 0, limit=0)
    with pytest.raises(ValidationError):
        make(max_room_bytes=0)
    with pytest.raises(ValidationError):
        make(max_room_bytes=100, max_total_bytes=50)
    with pytest.raises(ValidationError):
        make(max_age_s=0)


def test_random_workload_matches_model(make):
    """Seeded random appends/prunes against a simple list model."""
    seed = int(os.environ.get("OSTRACON_TEST_SEED", random.randrange(2**32)))
    rng = random.Random(seed)
    clock = FakeClock()
    mb = make(max_room_bytes=5000, max_total_bytes=8000, max_age_s=50.0, clock=clock)
    try:
        for _ in range(300):
            room = rng.choice([R1, R2, R3])
            op = rng.random()
            if op < 0.8:
                frame = rng.randbytes(rng.randint(1, 900))
                c = mb.append(room, frame)
                assert c == mb.info(room).head
                assert mb.read(room, c - 1)[0] == (c, frame)
            elif op < 0.9:
                clock.t += rng.uniform(0, 30)
            else:
                mb.prune()
            for r in (R1, R2, R3):
                info = mb.info(r)
                frames = mb.read(r, 0, limit=10_000)
                cursors = [c for c, _ in frames]
                # Retained frames are exactly (pruned_through, head], contiguous.
                assert cursors == list(range(info.pruned_through + 1, info.head + 1))
                assert info.bytes == sum(len(f) + O for _, f in frames) <= 5000
            assert mb.stats().bytes <= 8000
    except Exception:
        print(f"seed={seed}")
        raise


def test_random_writers_keep_accounting_and_gaps_honest(make):
    """Seeded random appends from several writers: holes only at or below pruned_through,
    exact byte accounting, ``oldest`` is the lowest retained cursor, the newest frame stays."""
    seed = int(os.environ.get("OSTRACON_TEST_SEED", random.randrange(2**32)))
    rng = random.Random(seed)
    clock = FakeClock()
    mb = make(max_room_bytes=5000, max_total_bytes=8000, max_age_s=50.0, clock=clock)
    try:
        for _ in range(300):
            room = rng.choice([R1, R2])
            if rng.random() < 0.9:
                frame = rng.randbytes(rng.randint(1, 900))
                c = mb.append(room, frame, rng.choice(["w1", "w2", "w3"]))
                assert mb.read(room, c - 1)[0] == (c, frame)
            else:
                clock.t += rng.uniform(0, 30)
            for r in (R1, R2):
                info = mb.info(r)
                cursors = [c for c, _ in mb.read(r, 0, limit=10_000)]
                assert cursors == sorted(cursors) and all(0 < c <= info.head for c in cursors)
                missing = set(range(1, info.head + 1)) - set(cursors)
                assert all(c <= info.pruned_through for c in missing)
                assert info.oldest == (cursors[0] if cursors else info.head + 1)
                assert info.bytes == sum(len(f) + O for _, f in mb.read(r, 0, limit=10_000)) <= 5000
            assert mb.stats().bytes <= 8000
    except Exception:
        print(f"seed={seed}")
        raise


def test_sqlite_reopen_keeps_frames_cursors_and_epoch(tmp_path):
    path = tmp_path / "mb.sqlite"
    mb = SqliteMailbox(path)
    mb.append(R1, b"one")
    mb.append(R1, b"two")
    epoch = mb.info(R1).epoch
    mb.close()
    mb.close()  # idempotent
    mb = SqliteMailbox(path)
    try:
        assert mb.read(R1, 0) == [(1, b"one"), (2, b"two")]
        assert mb.info(R1).epoch == epoch
        assert mb.append(R1, b"three") == 3
        assert mb.stats().bytes == 11 + 3 * O
    finally:
        mb.close()


def test_sqlite_migrates_a_file_without_writer_tags(tmp_path):
    import sqlite3
    path = tmp_path / "mb.sqlite"
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
        CREATE TABLE rooms (room TEXT PRIMARY KEY, epoch TEXT NOT NULL, head INTEGER NOT NULL,
          pruned_through INTEGER NOT NULL, last_ts REAL NOT NULL, last_active REAL NOT NULL);
        CREATE TABLE frames (room TEXT NOT NULL, cursor INTEGER NOT NULL, ts REAL NOT NULL,
          size INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY (room, cursor));
        INSERT INTO meta VALUES ('schema', '1');
    """)
    db.execute("INSERT INTO rooms VALUES (?, 'e0', 2, 0, 1.0, 1.0)", (R1,))
    db.executemany("INSERT INTO frames VALUES (?,?,1.0,?,?)",
                   [(R1, 1, 10 + O, b"x" * 10), (R1, 2, 10 + O, b"y" * 10)])
    db.commit()
    db.close()
    mb = SqliteMailbox(path, max_room_bytes=3 * (10 + O), max_total_bytes=100_000, clock=lambda: 2.0)
    try:
        assert mb.read(R1, 0) == [(1, b"x" * 10), (2, b"y" * 10)]
        # Untagged frames count as one writer: it is the heaviest, so its oldest goes first.
        mb.append(R1, b"z" * 10, "192.0.2.1")
        mb.append(R1, b"w" * 10, "192.0.2.1")
        assert [c for c, _ in mb.read(R1, 0)] == [2, 3, 4]
    finally:
        mb.close()
    mb = SqliteMailbox(path)  # the migrated file opens again as the current version
    try:
        assert mb.info(R1).head == 4
    finally:
        mb.close()


def test_sqlite_second_process_is_locked_out(tmp_path):
    path = tmp_path / "mb.sqlite"
    mb = SqliteMailbox(path)
    try:
        with pytest.raises(LockedError):
            SqliteMailbox(path)
    finally:
        mb.close()


def test_sqlite_missing_directory(tmp_path):
    with pytest.raises(StorageUnavailableError):
        SqliteMailbox(tmp_path / "nope" / "mb.sqlite")


@pytest.mark.parametrize("content", [bytes(range(256)) * 20, b"SQLite format 3\x00" + b"\xff" * 4000])
def test_sqlite_file_that_is_not_a_mailbox_is_a_typed_error_and_kept(tmp_path, content):
    path = tmp_path / "mb.sqlite"
    path.write_bytes(content)
    with pytest.raises(MailboxError, match="mb.sqlite"):
        SqliteMailbox(path)
    assert path.read_bytes() == content   # someone's file: refused, never rewritten


def test_memory_mailbox_is_fresh_after_restart():
    # A restarted memory relay has new epochs: clients holding old cursors get a gap.
    a = MemoryMailbox()
    a.append(R1, b"x")
    e1 = a.info(R1).epoch
    b = MemoryMailbox()
    b.append(R1, b"y")
    assert b.info(R1).epoch != e1
    assert b.info(R1).resume(1, e1).gap == "epoch"


def test_parse_mailbox_spec(tmp_path):
    m = parse_mailbox_spec("memory", max_room_bytes=10, max_total_bytes=100)
    assert isinstance(m, MemoryMailbox) and m.max_room_bytes == 10
    s = parse_mailbox_spec(f"sqlite:{tmp_path / 'x.sqlite'}")
    assert isinstance(s, SqliteMailbox)
    s.close()
    for bad in ("", "sqlite:", "postgres:x", "MEMORY"):
        with pytest.raises(ValidationError):
            parse_mailbox_spec(bad)


def test_sqlite_room_cache_is_bounded_and_reloads_exactly(tmp_path, monkeypatch):
    import ostracon.relay.mailbox as mailbox_module
    monkeypatch.setattr(mailbox_module, "MAX_CACHED_ROOMS", 8)
    mb = SqliteMailbox(tmp_path / "mb.sqlite", max_room_bytes=2000, max_total_bytes=100_000)
    try:
        rooms = [f"{i:032x}" for i in range(40)]
        for i, room in enumerate(rooms):
            for _k in range(i % 5 + 1):
                mb.append(room, b"f" * 700)
            assert len(mb._cache) <= 8
        for i, room in enumerate(rooms):  # reloaded records match what was written
            n = i % 5 + 1
            info = mb.info(room)
            kept = min(n, 2)  # 2000 bytes hold two 700-byte frames with overhead
            assert (info.head, info.frames, info.pruned_through) == (n, kept, n - kept), room
            assert mb.append(room, b"g") == n + 1
    finally:
        mb.close()

