"""The write sink and its public face: one flush rule, send / send_sync / send_many,
upsert, and errors of fire-and-forget writes (status, callback, raised by the next flush)."""

from __future__ import annotations

import pytest

import ostracon
from ostracon.core.errors import StorageError
from ostracon.storage.memory import MemoryStorage


class FlakyStorage(MemoryStorage):
    """Memory storage whose flush fails while `failing` is set (a full or broken disk)."""

    failing = False

    def flush(self) -> None:
        if self.failing:
            raise StorageError("disk says no")
        super().flush()


def scripted(**kw):
    t = [1_000]
    db = ostracon.open(clock=lambda: t[0], **kw)
    return db, t


def test_one_flush_rule_size_or_age_of_the_oldest_change():
    db, t = scripted(sink_batch_ops=3, sink_interval_ms=100)
    col = db.collection("c")
    col.create({"a": 1})
    col.create({"a": 2})
    assert db.pending_writes == 2
    col.create({"a": 3})                      # the size trigger
    assert db.pending_writes == 0
    col.create({"a": 4})
    t[0] += 99
    db.tick()
    assert db.pending_writes == 1             # not yet 100 ms old
    t[0] += 1
    db.tick()                                 # the time trigger, counted from the oldest change
    assert db.pending_writes == 0
    db.close()


def test_size_trigger_tick_leaves_full_batches_to_the_next_tick():
    # The browser worker's setting: a burst inside one call is not stopped for a flush every
    # `sink_batch_ops` writes; the tick flushes, and backpressure still bounds the queue.
    db, t = scripted(sink_batch_ops=3, sink_interval_ms=100, sink_max_queued=7, sink_size_trigger="tick")
    col = db.collection("c")
    for i in range(5):
        col.create({"a": i})
    assert db.pending_writes == 5             # two full batches' worth, still queued
    db.tick()                                 # the size trigger, taken by the tick
    assert db.pending_writes == 0
    for i in range(6):
        col.create({"b": i})
    assert db.pending_writes == 6
    col.create({"b": 6})                      # the 7th waiting change: the writer flushes itself
    assert db.pending_writes == 0
    col.create({"c": 1})
    t[0] += 100
    db.tick()                                 # the time trigger is unchanged
    assert db.pending_writes == 0
    assert db.sink_status["errors"] == 0
    db.close()


def test_size_trigger_tick_keeps_the_time_trigger_of_writes():
    # Only the size trigger moves to the tick: a stream of writes that leaves no room for a
    # tick (a busy browser worker) still makes its changes durable within sink_interval_ms,
    # as with "write", instead of holding them until sink_max_queued.
    db, t = scripted(sink_batch_ops=100, sink_interval_ms=100, sink_size_trigger="tick")
    col = db.collection("c")
    col.create({"a": 1})
    t[0] += 99
    col.create({"a": 2})
    assert db.pending_writes == 2             # the oldest is not yet 100 ms old
    t[0] += 1
    col.create({"a": 3})                      # the time trigger, fired by the write
    assert db.pending_writes == 0
    assert db.sink_status["durable_total"] == 3
    db.close()


def test_size_trigger_tick_writes_retry_a_failed_time_trigger_after_the_retry_pause():
    # A refused flush is not retried by every write that follows (a transaction and a
    # signature each, and a failure posted for each), only once the retry pause has passed.
    from ostracon.db.driver import RETRY_MS

    storage = FlakyStorage()
    seen = []
    t = [1_000]
    db = ostracon.open(storage=storage, clock=lambda: t[0], sink_interval_ms=100,
                       sink_size_trigger="tick", on_sink_error=seen.append)
    col = db.collection("c")
    col.create({"a": 0})
    storage.failing = True
    t[0] += 100
    col.create({"a": 1})                      # the time trigger fires in the write: refused
    assert len(seen) == 1
    for i in range(5):
        t[0] += 10
        col.create({"b": i})
    assert len(seen) == 1                     # within the retry pause: not tried again
    storage.failing = False
    t[0] += RETRY_MS
    col.create({"c": 1})                      # past it: retried, and everything is durable
    assert db.pending_writes == 0 and db.sink_status["last_error"] is None
    db.close()


@pytest.mark.parametrize("bad", ["driver", "", None, 1, ["tick"]])
def test_size_trigger_must_be_write_or_tick(bad):
    with pytest.raises(ostracon.ValidationError, match="sink_size_trigger"):
        ostracon.open(sink_size_trigger=bad)


def test_send_returns_the_id_at_once_and_send_sync_once_durable():
    db, _ = scripted()
    doc_id = db.send({"collection": "todos", "kind": "create", "doc": {"title": "a"}})
    assert db.collection("todos").get(doc_id)["title"] == "a"
    assert db.pending_writes == 1
    assert db.send_sync({"collection": "todos", "kind": "patch", "id": doc_id, "doc": {"done": True}}) == doc_id
    assert db.pending_writes == 0
    ids = db.send_many([
        {"collection": "todos", "kind": "create", "id": "x", "doc": {"n": 1}},
        {"collection": "todos", "kind": "upsert", "id": "x", "doc": {"m": 2}},
        {"collection": "todos", "kind": "upsert", "id": "y", "doc": {"n": 3}},
        {"collection": "todos", "kind": "update", "id": "y", "doc": {"k": 4}},
        {"collection": "todos", "kind": "delete", "id": doc_id},
    ])
    assert ids == ["x", "x", "y", "y", doc_id]
    col = db.collection("todos")
    assert {k: v for k, v in col.get("x").items() if k[0] != "_"} == {"n": 1, "m": 2}
    assert {k: v for k, v in col.get("y").items() if k[0] != "_"} == {"k": 4}
    assert col.get(doc_id) is None
    db.close()


@pytest.mark.parametrize("op", [
    None, [], {"collection": "c", "kind": "create"},                      # no doc
    {"collection": "c", "kind": "merge", "doc": {}},                      # unknown kind
    {"collection": "c", "kind": "patch", "doc": {}},                      # no id
    {"collection": "c", "kind": "delete", "id": "a", "doc": {}},          # delete with doc
    {"collection": 1, "kind": "create", "doc": {}},
    {"collection": "c", "kind": "create", "doc": {}, "id": 5},
    {"collection": "c", "kind": "create", "doc": {}, "extra": 1},
])
def test_malformed_ops_are_refused_before_anything_is_applied(op):
    db, _ = scripted()
    good = {"collection": "c", "kind": "create", "id": "ok", "doc": {}}
    with pytest.raises(ostracon.ValidationError):
        db.send_many([good, op])
    assert db.collection("c").get("ok") is None
    with pytest.raises(ostracon.ValidationError):
        db.send(op)
    db.close()


def test_upsert_creates_patches_and_revives():
    db, _ = scripted()
    col = db.collection("c")
    cid = col.upsert("a", {"x": 1})
    assert col.history("a")[-1]["cid"] == cid
    col.upsert("a", {"y": 2})
    assert col.get("a")["x"] == 1 and col.get("a")["y"] == 2
    col.delete("a")
    col.upsert("a", {"z": 3})
    assert {k: v for k, v in col.get("a").items() if k[0] != "_"} == {"z": 3}
    db.close()


def test_errors_of_fire_and_forget_writes_are_reported_and_raised_by_the_next_flush():
    storage = FlakyStorage()
    seen = []
    t = [1_000]
    db = ostracon.open(storage=storage, clock=lambda: t[0], sink_batch_ops=2,
                       on_sink_error=seen.append)
    storage.failing = True
    db.send({"collection": "c", "kind": "create", "id": "a", "doc": {}})
    db.send({"collection": "c", "kind": "create", "id": "b", "doc": {}})   # size trigger: fails
    status = db.sink_status
    assert status["errors"] == 1 and isinstance(status["last_error"], StorageError)
    assert len(seen) == 1 and isinstance(seen[0], StorageError)
    with pytest.raises(StorageError):
        db.flush()
    with pytest.raises(StorageError):
        db.send_sync({"collection": "c", "kind": "create", "id": "c", "doc": {}})
    storage.failing = False
    db.flush()                                   # the retry makes everything durable
    assert db.sink_status["last_error"] is None and db.pending_writes == 0
    db.close()


def test_current_cursor_and_changes_from_none_at_any_feed_length():
    db, _ = scripted(feed_retention=5)
    col = db.collection("c")
    for i in range(12):
        col.create({"i": i})
    evs, cur = db.changes(after=None)
    assert [e.fields["i"] for e in evs] == [7, 8, 9, 10, 11]
    assert cur == db.current_cursor()
    col.create({"i": 12})
    evs, _ = db.changes(after=cur)
    assert [e.fields["i"] for e in evs] == [12]
    db.close()


def test_a_bounded_io_wait_raises_instead_of_waiting_and_loses_nothing(tmp_path):
    # sink_io_wait_ms=0 is what the browser host uses: a flush that finds another flush's
    # storage I/O in progress raises StorageError at once (in a one-thread worker the wait
    # could never end); the writes stay queued and the next flush makes them durable.
    db, _ = scripted(path=tmp_path / "db", sink_io_wait_ms=0, sink_batch_ops=1000)
    col = db.collection("c")
    doc_id = col.create({"a": 1})
    sink = db._engine.sink
    with sink.io_lock:  # another flush, suspended in its storage call
        with pytest.raises(StorageError, match="busy with another flush"):
            db.flush()
        assert db.pending_writes == 1
    db.flush()
    assert db.pending_writes == 0
    db.close()
    with ostracon.open(tmp_path / "db") as again:
        assert again.collection("c").get(doc_id)["a"] == 1


def test_io_wait_is_unbounded_by_default_and_validated():
    db, _ = scripted()
    assert db._engine.sink.io_lock.wait_ms is None
    db.close()
    for bad in (-1, 1.5, True, "0"):
        with pytest.raises(ostracon.ValidationError):
            ostracon.open(sink_io_wait_ms=bad)


@pytest.mark.parametrize("trigger", ["write", "tick"])
def test_a_background_flush_the_disk_refused_to_make_durable_is_retried_by_a_later_tick(trigger):
    # Storage took the batch but could not make it durable: the changes are still not
    # durable, so they still count, and the time trigger retries without another write.
    storage = FlakyStorage()
    seen = []
    t = [1_000]
    db = ostracon.open(storage=storage, clock=lambda: t[0], sink_interval_ms=100,
                       sink_size_trigger=trigger, on_sink_error=seen.append)
    db.collection("c").create({"a": 1})
    storage.failing = True
    t[0] += 100
    db.tick()                                 # the time trigger: the flush fails
    assert len(seen) == 1 and db.sink_status["errors"] == 1
    assert db.pending_writes == 1             # not durable
    storage.failing = False
    for _ in range(3):                        # later ticks, past the retry pause
        t[0] += 2_000
        db.tick()
    status = db.sink_status
    assert db.pending_writes == 0 and status["last_error"] is None
    assert status["durable_total"] == status["queued_total"] == 1
    assert db.replica.own_durable == db.replica.seq_of(db.replica.actor)   # shareable now
    db.close()
