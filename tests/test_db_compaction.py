"""Compaction in steps (ostracon.db.compaction) on file storage: writes made between steps are
kept after the cut and survive reopen, other threads write while it runs, and a crash between
steps or at any file operation of the swap opens to every acknowledged write."""

from __future__ import annotations

import contextlib
import random
import threading

import pytest

import ostracon
from fakefs import Crash, FakeFS
from ostracon.core.errors import ClosedError
from ostracon.crypto import DeterministicRandom
from ostracon.crypto.identity import Identity
from ostracon.storage.file import FileStorage
from polling import run_in_thread

IDENT = Identity.from_seed(bytes(range(32)))
#: Seeds of the crash tests (each prints its seed on failure).
CRASH_SEEDS = range(3)


class Clock:
    def __init__(self) -> None:
        self.t = 1_700_000_000_000

    def __call__(self) -> int:
        self.t += 3
        return self.t


def _open(storage) -> ostracon.Database:
    return ostracon.open(storage=storage, identity=IDENT, clock=Clock(), random_bytes=DeterministicRandom(7))


def _fill(db, n: int = 60) -> None:
    c = db.collection("c")
    for i in range(n):
        c.create({"i": i, "s": "x" * (i % 9)}, id=f"d{i:03}")
    for i in range(0, n, 4):
        c.patch(f"d{i:03}", {"i": -i})
    db.flush()


def _state(db) -> tuple:
    return db.state_hash(), sorted((d["_id"], d["i"]) for d in db.collection("c").find())


def test_writes_between_steps_are_kept_after_the_cut_and_survive_reopen(tmp_path):
    db = _open(FileStorage(tmp_path / "db"))
    _fill(db)
    run = db.compaction(step_docs=4)
    c, k = db.collection("c"), 0
    while not run.step():
        k += 1
        c.patch(f"d{k % 60:03}", {"i": 1000 + k})
        c.create({"i": 2000 + k}, id=f"new{k:03}")
    assert k > 5 and run.position == run.cut
    expected = _state(db)
    db.close()
    s = FileStorage(tmp_path / "db")
    assert s.snapshot_positions() == [run.cut] and s.open_report().records == s.last_position() - run.cut > 0
    db = _open(s)
    assert _state(db) == expected
    assert db.verify() == []
    db.close()


def test_compact_lets_other_threads_write_between_steps(tmp_path):
    db = _open(FileStorage(tmp_path / "db"))
    _fill(db)
    stepped, written = threading.Event(), threading.Event()
    order: list[str] = []

    def writer() -> None:
        assert stepped.wait(60)
        db.collection("c").create({"i": -1}, id="from-thread")  # needs the state lock
        order.append("written")
        written.set()

    t = threading.Thread(target=writer)
    t.start()
    run = db.compaction(step_docs=4)
    while not run.step():
        if not stepped.is_set():
            order.append("step")
            stepped.set()
            assert written.wait(60), "a writer waited for the whole compaction"
    order.append("compacted")
    t.join()
    assert order == ["step", "written", "compacted"]
    db.close()
    db = _open(FileStorage(tmp_path / "db"))
    assert db.collection("c").get("from-thread")["i"] == -1
    db.close()


def test_a_new_run_abandons_the_unfinished_one_and_close_ends_it(tmp_path):
    db = _open(FileStorage(tmp_path / "db"))
    _fill(db)
    first = db.compaction(step_docs=2)
    first.step()
    second = db.compaction(step_docs=2)
    assert first.done and first.step() and first.position is None
    second.step()
    db.close()
    assert second.done and second.step() and second.position is None
    with pytest.raises(ClosedError):
        db.compaction()
    s = FileStorage(tmp_path / "db")
    assert s.snapshot_positions() == []
    s.close()


def test_nothing_new_since_the_last_snapshot_is_finished_at_once(tmp_path):
    db = _open(FileStorage(tmp_path / "db"))
    _fill(db)
    assert db.compact() > 0
    run = db.compaction()
    assert run.done and run.step() and run.position is None
    db.close()


def _crash_world(seed: int):
    fs = FakeFS(dirs=("/",))
    db = _open(FileStorage("/db", fs=fs))
    _fill(db, 30)
    return fs, db, random.Random(seed)


@pytest.mark.parametrize("seed", CRASH_SEEDS)
def test_a_crash_between_steps_opens_to_every_acknowledged_write(seed):
    fs, db, rng = _crash_world(seed)
    total = 0
    run = db.compaction(step_docs=3)
    while not run.step():
        total += 1
    db.close()
    for k in range(total + 1):
        fs, db, rng = _crash_world(seed * 1000 + k)
        run = db.compaction(step_docs=3)
        for j in range(k):
            assert not run.step()
            db.collection("c").patch(f"d{j % 30:03}", {"i": 500 + j})
            db.flush()
        expected = _state(db)
        db2 = _open(FileStorage("/db", fs=fs.crash(rng)))
        assert _state(db2) == expected, f"seed {seed}: crash after step {k}"
        db2.close()


@pytest.mark.parametrize("seed", CRASH_SEEDS)
def test_a_crash_at_any_file_operation_of_the_swap_opens_to_every_acknowledged_write(seed):
    fs, db, rng = _crash_world(seed)
    run = db.compaction(step_docs=1000)
    db.collection("c").patch("d001", {"i": 77})
    db.flush()
    before = fs.ops
    while not run.step():
        pass
    ops = fs.ops - before
    db.close()
    assert ops > 3
    for j in range(1, ops + 1):
        fs, db, rng = _crash_world(seed * 1000 + j)
        run = db.compaction(step_docs=1000)
        db.collection("c").patch("d001", {"i": 77})
        db.flush()
        expected = _state(db)
        fs.crash_at = fs.ops + j
        with pytest.raises(Crash):
            while not run.step():
                pass
        with contextlib.suppress(Crash):
            db.close()  # the machine is down: nothing more reaches the disk
        db2 = _open(FileStorage("/db", fs=fs.crash(rng)))
        assert _state(db2) == expected, f"seed {seed}: crash at file operation {j} of the swap"
        db2.close()


def test_writes_and_sink_flushes_go_on_while_the_snapshot_is_written(tmp_path):
    """The snapshot's file is written and synced with no lock held: another thread's write
    and flush complete meanwhile (they land after the cut and survive the swap)."""
    storage = FileStorage(tmp_path / "db")
    db = _open(storage)
    _fill(db)
    run = db.compaction(step_docs=1000)
    stage = storage.stage_snapshot

    def stage_while_writing(data, position):
        def write() -> None:
            db.collection("c").create({"i": -1}, id="during")
            db.flush()
        run_in_thread(write, "a write and a sink flush while the snapshot is staged")
        return stage(data, position)

    storage.stage_snapshot = stage_while_writing
    while not run.step():
        pass
    assert run.position == run.cut and storage.last_position() > run.cut
    expected = _state(db)
    db.close()
    db2 = _open(FileStorage(tmp_path / "db"))
    assert _state(db2) == expected and db2.collection("c").get("during")["i"] == -1
    db2.close()


def test_a_store_opened_from_an_old_format_snapshot_is_rewritten_by_the_next_compaction():
    """A format-4 snapshot opens by replaying its blocks; the first compaction after such an
    open writes a current-format one although nothing is new, so later opens load its rows."""
    from ostracon.core import snapshot
    from ostracon.core.replica import Replica
    from ostracon.storage.memory import MemoryStorage
    from test_snapshot import _as_format_4

    storage = MemoryStorage()
    db = ostracon.open(storage=storage)
    col = db.collection("t")
    for i in range(40):
        col.create({"i": i, "tags": ["a", {"b": i}]}, id=f"d{i}")
    col.delete("d2")
    position = db.compact()
    expected, ident = db.state_hash(), db.identity
    assert not db.snapshot_outdated
    storage.write_snapshot(_as_format_4(storage.load_snapshot()[0]), position)
    db.close()

    def reopen():
        storage._closed = False  # the same in-memory storage, opened again
        return ostracon.open(storage=storage, identity=ident)

    old = reopen()
    assert old.snapshot_outdated and old.state_hash() == expected
    assert old.compact() == position and not old.snapshot_outdated
    data, at = storage.load_snapshot()
    assert at == position
    assert snapshot.load(Replica(ident.actor, require_signatures=False), data) == snapshot.SNAPSHOT_FORMAT
    old.compact()  # nothing new and current: no rewrite
    assert storage.load_snapshot()[0] is data
    old.close()
    again = reopen()
    assert not again.snapshot_outdated and again.state_hash() == expected
    again.close()
