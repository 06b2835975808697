"""The storage adapter contract, as plain functions over a harness (no pytest in here).

Every adapter must pass every function in CONTRACT. Python adapters run them through
tests/test_storage_<adapter>.py; the browser (IndexedDB under Pyodide) can import this
module and call the same functions with its own harness.

A harness has `persistent: bool` and `open() -> Storage`, which opens the same store every
time (empty the first time). For a non-persistent adapter the reopen steps are skipped.
"""

from __future__ import annotations

import random

from ostracon.core.errors import ClosedError, StorageError


def _raises(exc_type, fn, *args):
    try:
        result = fn(*args)
        if hasattr(result, "__next__"):
            list(result)  # records() may be lazy: the error must come at the latest on iteration
    except exc_type:
        return
    raise AssertionError(f"{getattr(fn, '__name__', fn)}{args!r} did not raise {exc_type.__name__}")


def _reopen(h, s):
    if not h.persistent:
        return s
    s.close()
    return h.open()


def check_empty_and_large_records(h):
    rng = random.Random(1)
    big = rng.randbytes(1024 * 1024 + 17)  # >= 1 MiB
    s = h.open()
    assert s.append([b"", big, b"x"]) == 3
    assert list(s.records()) == [(1, b""), (2, big), (3, b"x")]  # served before any flush
    s.flush()
    s = _reopen(h, s)
    assert list(s.records()) == [(1, b""), (2, big), (3, b"x")]
    assert s.append([b""]) == 4
    s.flush()
    assert list(s.records(3)) == [(4, b"")]
    s.close()


def check_ordering_and_positions(h):
    s = h.open()
    assert s.last_position() == 0
    assert list(s.records()) == []
    assert s.append([]) == 0
    expected = []
    for batch in range(20):
        recs = [b"%d.%d" % (batch, i) for i in range(batch % 5 + 1)]
        last = s.append(recs)
        expected += recs
        assert last == len(expected) == s.last_position()
        if batch % 3 == 0:
            s.flush()
    assert [r for _, r in s.records()] == expected
    assert [p for p, _ in s.records()] == list(range(1, len(expected) + 1))
    for after in (0, 1, 7, len(expected) - 1, len(expected), len(expected) + 5):
        assert list(s.records(after)) == [(i + 1, r) for i, r in enumerate(expected) if i + 1 > after]
    it = s.records()
    first = next(it)
    s.append([b"late"])           # appended while a reader is iterating: the reader is not hurt
    s.flush()
    rest = list(it)
    # A reader sees the records that existed when it started, whatever happens meanwhile.
    assert [first] + rest == [(i + 1, r) for i, r in enumerate(expected)]
    assert list(s.records(len(expected))) == [(len(expected) + 1, b"late")]
    s.flush()
    s = _reopen(h, s)
    assert [r for _, r in s.records()] == expected + [b"late"]
    assert s.append([b"next"]) == len(expected) + 2  # positions continue, never reused
    s.close()


def check_compact_keeps_the_newest_snapshots_asked_for(h):
    s = h.open()
    for i in range(4):
        s.append([bytes([i])])
        s.flush()
        s.write_snapshot(b"state%d" % i, s.last_position())
    _raises(ValueError, s.compact, 4, 0)
    try:
        s.compact(4, 3)
    except StorageError:  # an adapter that keeps one snapshot says so, and keeps one
        s.compact(4)
        assert s.snapshot_positions() == [4] and s.load_snapshot() == (b"state3", 4)
        s.close()
        return
    assert s.snapshot_positions() == [2, 3, 4]
    assert s.load_snapshot() == (b"state3", 4) and list(s.records()) == []
    s = _reopen(h, s)
    assert s.snapshot_positions() == [2, 3, 4]
    s.append([b"z"])
    s.flush()
    s.write_snapshot(b"state4", 5)
    s.compact(5)
    assert s.snapshot_positions() == [5]
    s.close()


def check_reopen_keeps_everything_flushed(h):
    s = h.open()
    s.append([b"a", b"b"])
    s.set_meta("k", b"v1")
    s.flush()
    s.write_snapshot(b"S", 1)
    s.append([b"c"])
    s.set_meta("k", b"v2")
    s.flush()
    s = _reopen(h, s)
    assert list(s.records()) == [(1, b"a"), (2, b"b"), (3, b"c")]
    assert s.get_meta("k") == b"v2"
    assert s.load_snapshot() == (b"S", 1)
    assert s.last_position() == 3
    report = s.open_report()
    assert report.truncated_bytes == 0 and report.quarantined == ()
    s.close()


def check_snapshot_replacement(h):
    s = h.open()
    assert s.load_snapshot() is None
    s.append([b"r%d" % i for i in range(6)])
    s.write_snapshot(b"first", 2)
    assert s.load_snapshot() == (b"first", 2)
    s.write_snapshot(b"second", 5)
    assert s.load_snapshot() == (b"second", 5)
    s.write_snapshot(b"", 5)      # same position, new content: the newest one wins
    assert s.load_snapshot() == (b"", 5)
    big = random.Random(2).randbytes(1024 * 1024 + 3)
    s.write_snapshot(big, 6)
    s = _reopen(h, s)
    assert s.load_snapshot() == (big, 6)
    assert s.load_snapshot() == (big, 6)  # loading twice gives the same answer
    _raises(StorageError, s.write_snapshot, b"x", 7)   # beyond the last position
    _raises(StorageError, s.write_snapshot, b"x", -1)
    s.close()


def check_meta_key_prefix_collisions(h):
    s = h.open()
    keys = {"doc1": b"one", "doc10": b"ten", "doc": b"", "doc1/x": b"slash", "doc1\x00": b"nul",
            "d\u00e9j\u00e0": b"unicode"}
    for k, v in keys.items():
        s.set_meta(k, v)
    for k, v in keys.items():
        assert s.get_meta(k) == v, k
    assert s.get_meta("doc2") is None and s.get_meta("do") is None
    s.set_meta("doc1", b"ONE")
    s.flush()
    s = _reopen(h, s)
    assert s.get_meta("doc1") == b"ONE" and s.get_meta("doc10") == b"ten" and s.get_meta("doc") == b""
    _raises(StorageError, s.set_meta, "", b"x")
    _raises(StorageError, s.set_meta, 5, b"x")
    _raises(StorageError, s.set_meta, "k", "not bytes")
    s.close()


def check_compact_positions(h):
    s = h.open()
    s.append([b"r%d" % i for i in range(1, 11)])
    s.flush()
    _raises(StorageError, s.compact, 6)      # no snapshot covers 1..6 yet
    s.write_snapshot(b"S6", 6)
    _raises(StorageError, s.compact, 7)      # the snapshot only covers 1..6
    _raises(StorageError, s.compact, 11)     # beyond the last position
    s.compact(6)
    assert [p for p, _ in s.records()] == [7, 8, 9, 10]
    assert [p for p, _ in s.records(8)] == [9, 10]
    assert s.last_position() == 10
    assert s.load_snapshot() == (b"S6", 6)
    assert s.append([b"r11"]) == 11
    s.flush()
    s = _reopen(h, s)
    assert [p for p, _ in s.records()] == [7, 8, 9, 10, 11]
    assert s.last_position() == 11
    s.write_snapshot(b"S11", 11)
    s.compact(11)                             # everything covered: an empty log remains
    assert list(s.records()) == [] and s.last_position() == 11
    s = _reopen(h, s)
    assert list(s.records()) == [] and s.last_position() == 11
    assert s.load_snapshot() == (b"S11", 11)
    assert s.append([b"r12"]) == 12
    s.compact(3)                              # older than what is already compacted: no-op
    assert list(s.records()) == [(12, b"r12")]
    s.close()


def check_closed_storage_refuses(h):
    s = h.open()
    s.append([b"a"])
    s.flush()
    s.close()
    s.close()  # idempotent
    for name, args in [("append", ([b"b"],)), ("flush", ()), ("records", ()), ("write_snapshot", (b"", 0)),
                       ("load_snapshot", ()), ("get_meta", ("k",)), ("set_meta", ("k", b"v")),
                       ("compact", (0,))]:
        _raises(ClosedError, getattr(s, name), *args)


def check_bad_records_refused(h):
    s = h.open()
    _raises(StorageError, s.append, ["text"])
    _raises(StorageError, s.append, [b"ok", None])
    assert s.last_position() == 0 and list(s.records()) == []  # nothing half-appended
    s.append([bytearray(b"ba"), memoryview(b"mv")])
    assert list(s.records()) == [(1, b"ba"), (2, b"mv")]
    assert all(type(r) is bytes for _, r in s.records())
    s.close()


CONTRACT = [
    check_empty_and_large_records,
    check_ordering_and_positions,
    check_reopen_keeps_everything_flushed,
    check_compact_keeps_the_newest_snapshots_asked_for,
    check_snapshot_replacement,
    check_meta_key_prefix_collisions,
    check_compact_positions,
    check_closed_storage_refuses,
    check_bad_records_refused,
]
