"""Live observers (db/observer.py): a read-only open follows a writer's flushes, verifies
them like a remote replica's blocks, publishes change events, survives the writer's
compaction (seamlessly or by a reset), waits on torn tails and refuses forged records.
The last test runs the writer in another process."""

from __future__ import annotations

import os

import pytest

import observer_writer
import ostracon
from ostracon.core.errors import CorruptBlockError, ValidationError
from ostracon.storage import logformat as lf
from ostracon.storage.file import FileStorage
from polling import wait_until


def last_segment(path) -> str:
    return os.path.join(path, sorted(n for n in os.listdir(path) if n.startswith("seg-"))[-1])


def ids(db) -> list[str]:
    return sorted(d["_id"] for d in db.collection("pages").iter_docs())


@pytest.fixture
def pair(tmp_path):
    """A writer and an observer without a follower thread (the test calls refresh())."""
    path = tmp_path / "db"
    w = ostracon.open(path, sink_interval_ms=3_600_000)
    w.collection("pages").create({"n": 0}, id="p0")
    w.flush()
    o = ostracon.open(path, read_only=True, follow=False)
    yield path, w, o
    o.close()
    w.close()


def test_observer_sees_each_flush_and_publishes_change_events(pair):
    _, w, o = pair
    pages = w.collection("pages")
    sub = o.subscribe(collection="pages")
    assert ids(o) == ["p0"] and o.refresh() == 0
    for i in range(1, 4):
        pages.create({"n": i}, id=f"p{i}")
        assert o.refresh() == 0                       # not flushed yet: not visible
        w.flush()
        assert o.refresh() == 1
        assert o.collection("pages").get(f"p{i}")["n"] == i
        assert [e.path for e in sub.poll()] == [f"pages/p{i}"]
    pages.patch("p1", {"n": 10})
    pages.delete("p2")
    w.flush()
    assert o.refresh() == 2
    assert o.collection("pages").get("p1")["n"] == 10 and ids(o) == ["p0", "p1", "p3"]
    assert o.state_hash() == w.state_hash() and o.heads() == w.heads()
    assert o.follow_status["blocks"] == 5 and o.follow_status["last_error"] is None
    assert w.refresh() == 0                           # a writer has nothing to follow
    assert o.verify() == []


def test_an_observer_catches_up_on_more_flushes_than_seals_may_wait(pair):
    # Each flush is a seal; one look reads them all, each right after its blocks.
    from ostracon.core.replica import MAX_PENDING_SEALS_PER_ACTOR
    _, w, o = pair
    pages = w.collection("pages")
    for i in range(2 * MAX_PENDING_SEALS_PER_ACTOR):
        pages.create({"n": i}, id=f"q{i}")
        w.flush()
    assert o.refresh() == 2 * MAX_PENDING_SEALS_PER_ACTOR
    assert o.state_hash() == w.state_hash() and o.follow_status["stopped"] is None


def test_observer_follows_compaction_seamlessly_and_across_a_reset(pair):
    _, w, o = pair
    pages = w.collection("pages")
    pages.create({"n": 1}, id="p1")
    w.flush()
    o.refresh()
    w.compact()                                       # o had read everything: no reset
    pages.create({"n": 2}, id="p2")
    w.flush()
    assert o.refresh() == 1 and o.follow_status["resets"] == 0
    pages.create({"n": 3}, id="p3")
    for _ in range(3):  # enough records that a snapshot is smaller than what it replaces
        pages.patch("p3", {"n": 3})
    w.compact()                                       # p3's records are compacted before o reads them
    pages.create({"n": 4}, id="p4")
    w.flush()
    assert o.refresh() == 5 and o.follow_status["resets"] == 1   # p3's 4 blocks and p4's
    assert ids(o) == ["p0", "p1", "p2", "p3", "p4"] and o.state_hash() == w.state_hash()


def test_observer_follows_segment_roll_over(tmp_path):
    path = tmp_path / "db"
    w = ostracon.open(storage=FileStorage(path, segment_bytes=2048), sink_interval_ms=3_600_000)
    o = ostracon.open(path, read_only=True, follow=False)
    try:
        for i in range(30):
            w.collection("pages").create({"n": i, "pad": "x" * 200}, id=f"p{i:02d}")
            w.flush()
            if i % 7 == 0:
                o.refresh()
        o.refresh()
        assert len([n for n in os.listdir(path) if n.startswith("seg-")]) > 3
        assert len(ids(o)) == 30 and o.state_hash() == w.state_hash()
    finally:
        o.close()
        w.close()


def _foreign_envelopes() -> list[bytes]:
    """A valid block and its seal, by another identity (in memory)."""
    with ostracon.open(None) as other:
        other.collection("pages").create({"n": 99}, id="x")
        other.flush()
        return other.blocks_since({})


def _append_raw(path, envelopes: list[bytes], *, cut: int | None = None) -> bytes:
    """Append `envelopes` as one commit group to the last segment (all of it, or `cut`
    bytes); returns the group's bytes."""
    with FileStorage(path, read_only=True) as s:
        first = s.last_position() + 1
    group = lf.encode_group([(lf.KIND_DATA, first + i, e) for i, e in enumerate(envelopes)])
    with open(last_segment(path), "ab") as f:
        f.write(group if cut is None else group[:cut])
    return group


def test_torn_tail_is_waited_on_and_a_forged_seal_is_refused(tmp_path):
    path = tmp_path / "db"
    with ostracon.open(path) as w:
        w.collection("pages").create({"n": 0}, id="p0")
    o = ostracon.open(path, read_only=True, follow=False)
    try:
        envs = _foreign_envelopes()
        group = _append_raw(path, envs, cut=40)
        assert o.refresh() == 0 and ids(o) == ["p0"]          # a flush in progress
        with open(last_segment(path), "ab") as f:
            f.write(group[40:])
        assert o.refresh() == 1 and ids(o) == ["p0", "x"]
        block, seal = _foreign_envelopes()
        forged = seal[:-1] + bytes([seal[-1] ^ 1])             # last byte of the signature
        _append_raw(path, [block, forged])
        with pytest.raises(CorruptBlockError, match="fails verification"):
            o.refresh()
        with pytest.raises(CorruptBlockError, match="following stopped"):
            o.refresh()                                          # for good: no silent gap
        assert ids(o) == ["p0", "x"] and o.follow_status["stopped"]
    finally:
        o.close()


def test_a_malformed_record_stops_following_with_a_typed_error(tmp_path):
    path = tmp_path / "db"
    with ostracon.open(path) as w:
        w.collection("pages").create({"n": 0}, id="p0")
    o = ostracon.open(path, read_only=True, follow=False)
    try:
        _append_raw(path, [b"\x92\x01\xc4\x03abc"])              # an envelope whose block is garbage
        _append_raw(path, _foreign_envelopes())
        for _ in range(2):
            with pytest.raises(CorruptBlockError, match="following stopped"):
                o.refresh()
        assert ids(o) == ["p0"]
    finally:
        o.close()


def test_follower_thread_reports_errors_and_options_are_checked(tmp_path):
    path = tmp_path / "db"
    with ostracon.open(path) as w:
        w.collection("pages").create({"n": 0}, id="p0")
    with pytest.raises(ValidationError):
        ostracon.open(path, read_only=True, follow_interval_ms=0)
    o = ostracon.open(path, read_only=True, follow_interval_ms=5)
    try:
        assert o.follow_status["following"]
        block, seal = _foreign_envelopes()
        _append_raw(path, [block, seal[:-1] + bytes([seal[-1] ^ 1])])
        err = wait_until(lambda: o.follow_status["last_error"], "the follower to report the forged seal")
        assert err.startswith("CorruptBlockError")
    finally:
        o.close()


def test_follower_thread_steps_index_rebuilds(tmp_path):
    path = tmp_path / "db"
    with ostracon.open(path) as w:
        pages = w.collection("pages")
        pages.create_index("n")
        for i in range(50):
            pages.create({"n": i}, id=f"p{i:02d}")
    o = ostracon.open(path, read_only=True, follow_interval_ms=5, index_sync_build_docs=0,
                      fallback_docs_max=10)
    try:
        wait_until(lambda: o.rebuild_status() and o.rebuild_status()[0]["state"] == "done",
                   "the observer's index rebuild")
        assert [d["_id"] for d in o.collection("pages").find({"n": 3})] == ["p03"]
    finally:
        o.close()


def test_writer_and_observer_in_two_processes(tmp_path):
    path = str(tmp_path / "db")
    child = observer_writer.spawn(path)
    try:
        observer_writer.command(child, 'put p0 {"n": 0}')
        observer_writer.command(child, "flush")
        o = ostracon.open(path, read_only=True)
        sub = o.subscribe(collection="pages")
        seen: list[str] = []
        try:
            for i in range(1, 8):
                observer_writer.command(child, f'put p{i} {{"n": {i}}}')
                if i == 4:
                    observer_writer.command(child, "compact")   # compaction while observing
                else:
                    observer_writer.command(child, "flush")
                wait_until(lambda i=i: o.collection("pages").get(f"p{i}"), f"the observer to see p{i}")
                seen += [e.path for e in sub.poll()]
            assert seen == [f"pages/p{i}" for i in range(1, 8)]
            assert o.follow_status["last_error"] is None
        finally:
            o.close()
        observer_writer.stop(child)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate(timeout=120)
