"""The Database facade (db/database.py): opening and its options, collections, the change
feed, the write sink's triggers and flush, and the lifecycle."""

import hashlib

import pytest

import ostracon
from db_helpers import ID_A, ID_B, T0, Clock, SpyStorage, open_db
from ostracon import ClosedError, CursorError, StorageError, ValidationError
from ostracon.core.block import KIND_BLOCK, KIND_SEAL
from ostracon.core.encoding import encode_canonical
from ostracon.storage.memory import MemoryStorage


@pytest.mark.parametrize("path", [5, b"db", ["db"], "db\x00x"])
def test_open_refuses_a_path_that_is_not_a_str_or_path(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValidationError):
        ostracon.open(path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("identity", ["me", b"\x00" * 32, ID_A.actor])
def test_open_refuses_an_identity_that_is_not_an_identity(identity, tmp_path):
    with pytest.raises(ValidationError, match="identity"):
        ostracon.open(tmp_path / "db", identity=identity)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("option", ["clock", "random_bytes", "on_sink_error"])
def test_open_refuses_a_callback_option_that_is_not_callable(option):
    with pytest.raises(ValidationError, match=option):
        ostracon.open(None, identity=ID_A, **{option: 5})


@pytest.mark.parametrize("wrong", [b"", b"\x00" * 3, bytearray(8), "01234567", None])
def test_a_random_source_giving_the_wrong_bytes_is_refused_before_any_id_is_made(wrong):
    # b"" would give every id the same random part; a bytearray or str is not bytes.
    with pytest.raises(ValidationError, match="random_bytes"):
        ostracon.open(None, identity=ID_A, clock=Clock(), random_bytes=lambda n: wrong)


@pytest.mark.parametrize("timeout", [float("nan"), float("inf"), 0, -1, "5", True])
def test_sync_blocking_refuses_a_timeout_that_is_not_a_finite_positive_number(db, timeout):
    with pytest.raises(ValidationError, match="timeout"):
        db.sync_blocking("ws://127.0.0.1:9/never", object(), timeout=timeout)


@pytest.mark.parametrize("kw", [{"callback": 5}, {"collection": 5}, {"collection": b"todos"}])
def test_subscribe_refuses_a_callback_or_collection_of_the_wrong_kind(db, kw):
    with pytest.raises(ValidationError):
        db.subscribe(**kw)


@pytest.mark.parametrize("name", ["", "_x", "a b", "é", "x" * 129, None])
def test_collection_names(db, name):
    with pytest.raises(ValidationError):
        db.collection(name)


# ----------------------------------------------------------------------------- change feed

def test_changes_and_cursors(db, col):
    notes = db.collection("notes")
    col.create({"a": 1}, id="d")
    notes.create({"x": 1}, id="n")
    col.patch("d", {"a": 2})
    col.delete("d")
    evs, cur = db.changes()
    assert [(e.collection, e.id, e.version, e.deleted) for e in evs] == [
        ("todos", "d", 1, False), ("notes", "n", 1, False), ("todos", "d", 2, False), ("todos", "d", 3, True)]
    assert [e.seq for e in evs] == [1, 2, 3, 4]
    assert evs[2].data_hash == hashlib.sha256(encode_canonical({"a": 2})).hexdigest()
    assert evs[0].created == evs[0].updated == T0
    assert [e.id for e in db.changes(collection="notes")[0]] == ["n"]
    col.create({}, id="e")
    more, _ = db.changes(after=cur)
    assert [e.id for e in more] == ["e"]
    other = open_db(seed=7)
    with pytest.raises(CursorError):
        other.changes(after=cur)


def test_subscribe(db, col):
    sub = db.subscribe(buffer=2)
    seen = []
    db.subscribe(seen.append, collection="todos")
    col.create({}, id="a")
    assert [e.id for e in sub.poll()] == ["a"]
    for i in range(3):
        col.create({}, id=f"b{i}")
    got = sub.poll()
    assert len(got) == 1 and got[0].kind == "overflow"
    assert [e.id for e in seen] == ["a", "b0", "b1", "b2"]


# ----------------------------------------------------------------------------- write sink

def test_size_trigger_at_100_writes():
    storage = SpyStorage()
    d = open_db(storage=storage)
    c = d.collection("t")
    for i in range(99):
        c.create({"i": i}, id=f"d{i}")
    assert storage.flushes == 0 and storage.last_position() == 0 and d.pending_writes == 99
    c.create({}, id="last")
    assert storage.flushes == 1
    assert storage.kinds().count(KIND_BLOCK) == 100 and storage.kinds().count(KIND_SEAL) == 1
    assert d.pending_writes == 0


def test_time_trigger_at_5_seconds():
    storage, clock = SpyStorage(), Clock()
    d = open_db(storage=storage, clock=clock)
    c = d.collection("t")
    c.create({}, id="a")
    clock.t += 4999
    c.create({}, id="b")
    d.tick()
    assert storage.flushes == 0
    clock.t += 1
    c.create({}, id="c")       # 5 s after the first unflushed write
    assert storage.flushes == 1 and storage.kinds() == [1, 1, 1, 2]
    c.create({}, id="e")
    clock.t += 5000
    d.tick()                   # no write needed: tick() lets the timer fire
    assert storage.flushes == 2 and storage.kinds()[-2:] == [1, 2]


def test_flush_seals_and_makes_everything_offerable():
    storage = SpyStorage()
    d = open_db(storage=storage)
    d.collection("t").create({}, id="a")
    assert d.blocks_since({}) == [] and d.version_vector() == {}
    d.flush()
    assert storage.flushes == 1 and storage.kinds() == [1, 2]
    assert len(d.blocks_since({})) == 2 and d.version_vector() == {ID_A.actor.hex(): 1}


def test_failing_storage_writes_return_then_flush_raises_then_nothing_is_lost():
    storage = SpyStorage()
    d = open_db(storage=storage, sink_batch_ops=3)
    c = d.collection("t")
    storage.broken = True
    ids = [c.create({"i": i}, id=f"d{i}") for i in range(7)]   # auto flushes fail quietly
    assert ids == [f"d{i}" for i in range(7)] and c.get("d6")["i"] == 6
    with pytest.raises(StorageError):
        d.flush()
    storage.broken = False
    d.flush()
    state = d.state_hash()
    # reopen from what storage holds: everything is there and verifies
    copy = MemoryStorage()
    copy.append([r for _, r in storage.records()])
    again = open_db(storage=copy)
    assert again.state_hash() == state and again.collection("t").count() == 7
    fresh = open_db(ID_B, seed=3)
    assert fresh.apply_blocks(d.blocks_since({})) == 7 and fresh.state_hash() == state


# ----------------------------------------------------------------------------- lifecycle

def test_close_then_closed_error():
    storage = SpyStorage()
    d = open_db(storage=storage)
    c = d.collection("t")
    c.create({}, id="x")
    d.close()
    assert storage.flushes == 1 and storage.kinds() == [1, 2]   # close flushes
    d.close()                                                   # idempotent
    for call in (lambda: c.get("x"), lambda: c.create({}), lambda: c.scan(), lambda: c.patch("x", {}),
                 lambda: c.history("x"), lambda: d.collection("t"), lambda: d.flush(), lambda: d.changes(),
                 lambda: d.heads(), lambda: d.state_hash(), lambda: d.blocks_since({}),
                 lambda: d.apply_blocks([]), lambda: d.version_vector(), lambda: d.subscribe(),
                 lambda: d.collections(), lambda: d.send_many([]), d.__enter__):
        with pytest.raises(ClosedError):
            call()


def test_context_manager():
    storage = SpyStorage()
    with open_db(storage=storage) as d:
        d.collection("t").create({"a": 1}, id="x")
    assert storage.flushes == 1
    with pytest.raises(ClosedError):
        d.collection("t")
    with ostracon.open() as plain:
        assert plain.collection("t").get("x") is None
