"""Atomic batches (db/batch.py): `send_many` applies every op or none; a refused op leaves
blocks, heads, indexes, id order, change events and the sink exactly as they were; other
threads and subscribers never see part of a batch; storage gets the batch in one flush
group under one seal."""

from __future__ import annotations

import contextlib
import random
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ostracon
from fakefs import Crash, FakeFS
from ostracon.core.errors import ConflictError, NotFoundError, ValidationError
from ostracon.core.query.schema import SchemaValidationError
from ostracon.db.batch import MAX_BATCH_OPS
from ostracon.storage.file import FileStorage
from ostracon.storage.memory import MemoryStorage

NOTE = "type Note { title: String! n: Int }"


def scripted(identity=None, storage=None, **kw):
    t = [1_000]
    seq = [0]

    def rnd(n: int) -> bytes:   # deterministic ids, so twin databases mint the same ones
        seq[0] += 1
        return seq[0].to_bytes(n, "big")
    db = ostracon.open(clock=lambda: t[0], identity=identity, storage=storage, random_bytes=rnd,
                       require_signatures=True, **kw)
    return db, t


def setup(db) -> None:
    users = db.collection("users")
    users.create_index("email", unique=True)
    users.create_index("age")
    db.collection("Note").set_schema(NOTE)
    for i in range(6):
        users.create({"email": f"u{i}@x", "age": 20 + i}, id=f"u{i}")
    db.collection("Note").create({"title": "first"}, id="n0")
    users.delete("u5")


def fingerprint(db) -> dict:
    """Everything a reader can observe of the stored state."""
    out: dict = {"hash": db.state_hash(), "heads": db.heads(), "vv": db.version_vector(),
                 "collections": db.collections(), "pending": db.pending_writes}
    for name in db.collections():
        col = db.collection(name)
        out[name] = col.scan(limit=1000, include_deleted=True)
        out[name + "/ids"] = [d["_id"] for d in col.find(limit=1000)]
        if name == "users":
            out["by-email"] = {d["email"]: d["_id"] for d in col.find({"email": {"_ne": None}})}
            out["by-age"] = [d["_id"] for d in col.find({"age": {"_ge": 0}}, order="age")]
            out["indexes"] = col.indexes()
        out[name + "/history"] = {d["_id"]: col.history(d["_id"]) for d in out[name][0]}
    return out


def good_op(rng: random.Random, k: int) -> dict:
    """An op that succeeds against `setup`'s state plus earlier good ops of the batch."""
    choice = rng.randrange(5)
    if choice == 0:
        return {"collection": "users", "kind": "create", "id": f"new{k}",
                "doc": {"email": f"new{k}@x", "age": rng.randrange(100)}}
    if choice == 1:
        return {"collection": "users", "kind": "patch", "id": f"u{rng.randrange(3)}",
                "doc": {"age": rng.randrange(100)}}
    if choice == 2:
        return {"collection": "Note", "kind": "upsert", "id": f"n{k}", "doc": {"title": f"t{k}"}}
    if choice == 3:
        return {"collection": "other", "kind": "create", "id": f"o{k}", "doc": {"v": [k, {"w": k}]}}
    return {"collection": "users", "kind": "update", "id": "u3", "doc": {"email": "u3@x", "age": k}}


#: Ops refused against `setup`'s state (or the batch's own earlier ops), with their errors.
BAD = [
    ({"collection": "users", "kind": "create", "id": "u1", "doc": {"email": "z@x"}}, ConflictError),
    ({"collection": "users", "kind": "create", "id": "dup", "doc": {"email": "u2@x"}}, ConflictError),
    ({"collection": "users", "kind": "patch", "id": "nobody", "doc": {"age": 1}}, NotFoundError),
    ({"collection": "users", "kind": "delete", "id": "u5"}, NotFoundError),
    ({"collection": "Note", "kind": "create", "id": "bad", "doc": {"n": 1}}, SchemaValidationError),
    ({"collection": "Note", "kind": "patch", "id": "n0", "doc": {"n": "x"}}, SchemaValidationError),
    ({"collection": "users", "kind": "create", "id": "big", "doc": {"b": "x" * 300_000}}, ValidationError),
    ({"collection": "users", "kind": "patch", "id": "u0", "doc": {"$x": 1}}, ValidationError),
]


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_a_batch_with_one_refused_op_anywhere_changes_nothing(seed):
    rng = random.Random(seed)
    identity = ostracon.Identity.generate()
    db, _ = scripted(identity)
    twin, _ = scripted(identity)
    setup(db)
    setup(twin)
    events: list = []
    db.subscribe(events.append)
    twin.subscribe(lambda ev: None)
    before = fingerprint(db)
    good = [good_op(rng, k) for k in range(rng.randint(0, 12))]
    bad, error = rng.choice(BAD)
    at = rng.randint(0, len(good))
    # Also refused when an earlier op of the batch is what it collides with.
    intra = rng.random() < 0.3
    if intra:
        good.insert(0, {"collection": "users", "kind": "create", "id": "fresh", "doc": {"email": "fresh@x"}})
        bad, error, at = ({"collection": "users", "kind": "create", "id": "fresh2",
                           "doc": {"email": "fresh@x"}}, ConflictError, rng.randint(1, len(good)))
    batch = good[:at] + [bad] + good[at:]
    with pytest.raises(error) as caught:
        db.send_many(batch)
    assert caught.value.op_index == at
    assert str(caught.value).startswith(f"op {at}: ")
    assert fingerprint(db) == before
    assert events == []
    # The database is as if the batch never ran: the same writes next give the same CIDs
    # as on a twin that never saw it.
    assert db.send_many(good) == twin.send_many(good)
    assert db.heads() == twin.heads() and db.state_hash() == twin.state_hash()
    assert fingerprint(db) == fingerprint(twin)
    assert len(events) == len(good)
    db.close()
    twin.close()


def test_a_batch_block_is_the_block_of_the_same_single_write():
    identity = ostracon.Identity.generate()
    db, _ = scripted(identity)
    single, _ = scripted(identity)
    ops = [{"collection": "c", "kind": "create", "id": "a", "doc": {"x": 1}},
           {"collection": "c", "kind": "patch", "id": "a", "doc": {"y": 2}},
           {"collection": "d", "kind": "create", "id": "b", "doc": {}},
           {"collection": "c", "kind": "delete", "id": "a"}]
    db.send_many(ops, meta={"stage": "import"})
    with single.provenance({"stage": "import"}):
        for op in ops:
            single.send(op)
    assert db.heads() == single.heads()
    assert db.collection("c").history("a", ) == single.collection("c").history("a")
    db.close()
    single.close()


def test_later_ops_see_earlier_ones_and_events_follow_the_whole_batch():
    db, _ = scripted()
    db.collection("users").create_index("email", unique=True)
    seen: list = []

    def on_event(ev) -> None:   # a subscriber reading from its callback sees the whole batch
        seen.append((ev.id, ev.version, ev.fields, db.collection("users").count()))
    db.subscribe(on_event)
    ids = db.send_many([
        {"collection": "users", "kind": "create", "id": "a", "doc": {"email": "a@x"}},
        {"collection": "users", "kind": "update", "id": "a", "doc": {"email": "b@x"}},
        {"collection": "users", "kind": "create", "id": "c", "doc": {"email": "a@x"}},  # freed above
        {"collection": "users", "kind": "delete", "id": "c"},
        {"collection": "users", "kind": "create", "id": "c", "doc": {"email": "c@x"}},   # revived
    ])
    assert ids == ["a", "a", "c", "c", "c"]
    assert seen == [("a", 1, {"email": "a@x"}, 2), ("a", 2, {"email": "b@x"}, 2),
                    ("c", 1, {"email": "a@x"}, 2), ("c", 2, {}, 2), ("c", 3, {"email": "c@x"}, 2)]
    assert db.callback_errors == []
    assert db.collection("users").find({"email": "c@x"})[0]["_id"] == "c"
    db.close()


def test_generated_ids_and_a_new_collection_vanish_with_a_refused_batch():
    db, _ = scripted()
    col = db.collection("c")
    col.create({}, id="m")
    assert [d["_id"] for d in col.scan()[0]] == ["m"]   # the sorted id list is built
    with pytest.raises(NotFoundError):
        db.send_many([{"collection": "c", "kind": "create", "doc": {"k": 1}},
                      {"collection": "c", "kind": "create", "id": "a", "doc": {}},
                      {"collection": "fresh", "kind": "create", "doc": {}},
                      {"collection": "c", "kind": "patch", "id": "zz", "doc": {}}])
    assert [d["_id"] for d in col.scan()[0]] == ["m"]
    assert db.collections() == ["c"]
    assert col.count() == 1
    db.close()


def test_batch_limits_and_empty_batches():
    db, _ = scripted()
    assert db.send_many([]) == []
    ops = [{"collection": "c", "kind": "create", "doc": {}}] * (MAX_BATCH_OPS + 1)
    with pytest.raises(ValidationError):
        db.send_many(ops)
    assert db.collections() == []
    assert len(db.send_many(ops[:MAX_BATCH_OPS])) == MAX_BATCH_OPS
    db.close()


@pytest.mark.parametrize("bad", [5, {"collection": "c", "kind": "create", "doc": {}, "x": 1},
                                 {"collection": "c", "kind": "nope", "doc": {}},
                                 {"collection": "c", "kind": "create", "doc": [1]},
                                 {"collection": "c", "kind": "patch", "doc": {}}])
def test_a_malformed_op_is_named_by_its_position_too(bad):
    db, _ = scripted()
    good = {"collection": "c", "kind": "create", "doc": {}}
    with pytest.raises(ValidationError) as caught:
        db.send_many([good, good, bad, good])
    assert caught.value.op_index == 2 and str(caught.value).startswith("op 2")
    assert db.collections() == []
    db.close()


def test_another_threads_reader_never_sees_part_of_a_batch():
    db = ostracon.open()
    col = db.collection("c")
    size, batches = 25, 40
    stop = threading.Event()
    odd: list = []

    def read() -> None:
        while not stop.is_set():
            n = col.count()
            if n % size:
                odd.append(n)
            hits = len(col.find({"k": {"_ge": 0}}))
            if hits % size:
                odd.append(hits)
    reader = threading.Thread(target=read)
    reader.start()
    try:
        for b in range(batches):
            db.send_many([{"collection": "c", "kind": "create", "doc": {"k": b * size + i}}
                          for i in range(size)])
            if b % 3 == 2:   # a refused batch in between: never visible either
                with pytest.raises(ConflictError):
                    db.send_many([{"collection": "c", "kind": "create", "id": f"x{b}", "doc": {}},
                                  {"collection": "c", "kind": "create", "id": f"x{b}", "doc": {}}])
    finally:
        stop.set()
        reader.join()
    assert odd == []
    assert col.count() == size * batches
    db.close()


class RecordingStorage(MemoryStorage):
    """Memory storage that remembers each append (one flush group each)."""

    def __init__(self) -> None:
        super().__init__()
        self.appends: list[list[bytes]] = []

    def append(self, records):
        self.appends.append(list(records))
        return super().append(records)


def _kinds(records: list[bytes]) -> str:
    return "".join("b" if rec[1] == 1 else "s" for rec in records)


def test_a_batch_reaches_storage_in_one_append_under_one_seal():
    storage = RecordingStorage()
    db, _ = scripted(storage=storage, sink_batch_ops=7)
    for i in range(995):   # unsealed blocks before the batch: it starts a fresh seal range
        db.send({"collection": "c", "kind": "create", "id": f"pre{i}", "doc": {}})
        if i == 500:
            db.flush()
    storage.appends.clear()
    db.flush()
    before = len(storage.appends)
    db.send_many([{"collection": "c", "kind": "create", "id": f"b{i}", "doc": {}} for i in range(20)])
    db.flush()
    groups = storage.appends[before:]
    assert len(groups) == 1
    # Earlier blocks, then the batch's 20 blocks, then one seal over exactly the batch.
    assert _kinds(groups[0]) == "b" * 20 + "s"
    db.close()


def test_a_batch_after_unsealed_writes_is_sealed_apart_when_it_would_straddle_a_range():
    storage = RecordingStorage()
    db, _ = scripted(storage=storage, sink_batch_ops=10_000)
    for i in range(MAX_BATCH_OPS - 5):
        db.send({"collection": "c", "kind": "create", "id": f"pre{i}", "doc": {}})
    db.send_many([{"collection": "c", "kind": "create", "id": f"b{i}", "doc": {}} for i in range(20)])
    db.flush()
    kinds = _kinds(storage.appends[-1])
    assert kinds == "b" * (MAX_BATCH_OPS - 5) + "s" + "b" * 20 + "s"
    db.close()


def test_text_fields_are_restored_by_a_refused_batch():
    db, _ = scripted()
    col = db.collection("docs")
    col.create({"body": ostracon.Text("hello")}, id="t")
    handle = col.text("t", "body")
    handle.insert(5, " world")   # an open editing burst: committed before the batch
    with pytest.raises(NotFoundError):
        db.send_many([{"collection": "docs", "kind": "update", "id": "t", "doc": {"body": ostracon.Text("new")}},
                      {"collection": "docs", "kind": "create", "id": "u", "doc": {"body": ostracon.Text("x")}},
                      {"collection": "docs", "kind": "delete", "id": "missing"}])
    assert col.get("t")["body"] == "hello world"
    assert col.get("u") is None
    versions = len(col.history("t"))
    handle.insert(0, ">")
    handle.commit()
    assert col.get("t")["body"] == ">hello world"
    assert len(col.history("t")) == versions + 1
    db.send_many([{"collection": "docs", "kind": "patch", "id": "t", "doc": {"body": ostracon.Text("new")}}])
    assert col.get("t")["body"] == "new"
    db.close()


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_a_crash_while_a_batch_is_stored_keeps_all_of_it_or_none(seed):
    rng = random.Random(seed)
    identity = ostracon.Identity.generate()
    fs = FakeFS(crash_at=rng.randint(1, 60))
    durability = rng.choice(["flush", "always"])
    acked: set[str] = set()
    batches: list[list[str]] = []
    db = None
    try:
        # Small size triggers: a flush asked for inside a batch waits until it is whole.
        db, _ = scripted(identity, storage=FileStorage("/db", fs=fs, durability=durability),
                         sink_batch_ops=rng.randint(1, 8))
        for b in range(rng.randint(1, 4)):
            ids = [f"b{b}.{i}" for i in range(rng.randint(1, 30))]
            if rng.random() < 0.5:   # a single write before the batch: flushed with it
                db.send({"collection": "c", "kind": "create", "id": f"s{b}", "doc": {"b": b}})
                ids_single = [f"s{b}"]
            else:
                ids_single = []
            batches.append(ids)
            db.send_many([{"collection": "c", "kind": "create", "id": i, "doc": {"v": "x" * rng.randrange(200)}}
                          for i in ids])
            db.flush()
            acked.update(ids + ids_single)
        db.close()
    except Crash:
        if db is not None:   # the machine is down: closing only marks the object closed
            with contextlib.suppress(Crash):
                db.close()
    disk = fs.crash(rng, rng.choice([16, 64, 512]))
    again, _ = scripted(identity, storage=FileStorage("/db", fs=disk))
    col = again.collection("c")
    present = {d["_id"] for d in col.scan(limit=10_000)[0]}
    assert acked <= present
    for ids in batches:
        got = [i in present for i in ids]
        assert all(got) or not any(got), f"a batch came back in part: {got}"
    # Writing after the recovery works, and a further reopen agrees.
    again.send_many([{"collection": "c", "kind": "create", "id": "after", "doc": {}}])
    again.flush()
    expect = again.state_hash()
    again.close()
    third, _ = scripted(identity, storage=FileStorage("/db", fs=disk.crash(rng, 64)))
    assert third.state_hash() == expect
    third.close()


@pytest.mark.parametrize("before", [0, 3, MAX_BATCH_OPS - 5])
def test_a_peer_receiving_envelope_by_envelope_applies_a_batch_whole(before):
    a, _ = scripted(sink_batch_ops=10_000)
    b, _ = scripted()
    for i in range(before):   # unsealed writes ahead of the batch
        a.send({"collection": "pre", "kind": "create", "id": f"p{i}", "doc": {}})
    a.send_many([{"collection": "c", "kind": "create", "id": f"b{i}", "doc": {"i": i}} for i in range(20)])
    a.flush()
    counts = set()
    for env in a.blocks_since({}):
        b.apply_blocks([env])
        counts.add(b.collection("c").count())
    assert counts == {0, 20}
    a.close()
    b.close()


def test_an_observer_following_the_store_never_sees_part_of_a_batch(tmp_path):
    path = tmp_path / "db"
    w = ostracon.open(path, sink_batch_ops=3)   # size triggers fire inside every batch
    w.flush()
    o = ostracon.open(path, read_only=True, follow=False)
    size, batches = 10, 30
    done = threading.Event()

    def write() -> None:
        try:
            for b in range(batches):
                w.send_many([{"collection": "c", "kind": "create", "id": f"{b}.{i}", "doc": {}}
                             for i in range(size)])
        finally:
            done.set()
    writer = threading.Thread(target=write)
    writer.start()
    seen = set()
    while not done.is_set():
        o.refresh()
        seen.add(o.collection("c").count())
    writer.join()
    w.flush()
    o.refresh()
    seen.add(o.collection("c").count())
    assert all(n % size == 0 for n in seen), sorted(seen)
    assert o.collection("c").count() == size * batches
    o.close()
    w.close()
