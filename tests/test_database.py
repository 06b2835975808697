"""The public API (ostracon.open, Database, Collection): opening, documents, history, feeds and errors."""

import hashlib

import pytest

import ostracon
from ostracon import (
    ClosedError,
    ConflictError,
    CorruptBlockError,
    CursorError,
    NotFoundError,
    StorageError,
    ValidationError,
)
from ostracon.core import cid as cidlib
from ostracon.core.block import KIND_BLOCK, KIND_SEAL, open_envelope
from ostracon.core.encoding import encode_canonical
from ostracon.crypto import DeterministicRandom
from ostracon.crypto.identity import Identity
from ostracon.storage.memory import MemoryStorage

T0 = 1_700_000_000_000
ID_A = Identity.from_seed(bytes(range(32)))
ID_B = Identity.from_seed(bytes(range(1, 33)))


class Clock:
    def __init__(self, t=T0):
        self.t = t

    def __call__(self):
        return self.t


class SpyStorage(MemoryStorage):
    """Counts flushes; `broken` makes flush fail like a full disk."""

    def __init__(self):
        super().__init__()
        self.flushes = 0
        self.broken = False
        self.appended = []

    def flush(self):
        if self.broken:
            raise StorageError("disk on fire")
        super().flush()
        self.flushes += 1

    def append(self, records):
        pos = super().append(records)
        self.appended.extend(open_envelope(r)[0] for r in records)
        return pos

    def kinds(self):
        return list(self.appended)  # readable after close too


def open_db(identity=ID_A, clock=None, storage=None, seed=1, **kw):
    return ostracon.open(identity=identity, clock=clock or Clock(), storage=storage,
                         random_bytes=DeterministicRandom(seed), **kw)


@pytest.fixture
def db():
    d = open_db()
    yield d
    d.close()


@pytest.fixture
def col(db):
    return db.collection("todos")


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


@pytest.mark.parametrize("progress", [5, "x", [print]])
def test_verify_refuses_a_progress_that_is_not_callable(db, progress):
    with pytest.raises(ValidationError, match="progress"):
        db.verify(progress=progress)


@pytest.mark.parametrize("timeout", [float("nan"), float("inf"), 0, -1, "5", True])
def test_sync_blocking_refuses_a_timeout_that_is_not_a_finite_positive_number(db, timeout):
    with pytest.raises(ValidationError, match="timeout"):
        db.sync_blocking("ws://127.0.0.1:9/never", object(), timeout=timeout)


@pytest.mark.parametrize("kw", [{"callback": 5}, {"collection": 5}, {"collection": b"todos"}])
def test_subscribe_refuses_a_callback_or_collection_of_the_wrong_kind(db, kw):
    with pytest.raises(ValidationError):
        db.subscribe(**kw)


# ----------------------------------------------------------------------------- create / get

def test_create_and_get(db, col):
    doc_id = col.create({"title": "a", "done": False})
    assert isinstance(doc_id, str) and len(doc_id) == 26
    doc = col.get(doc_id)
    assert doc["title"] == "a" and doc["done"] is False
    assert doc["_id"] == doc_id and doc["_version"] == 1 and doc["_deleted"] is False
    assert doc["_created"] == doc["_updated"] == T0
    assert len(doc["_heads"]) == 1 and cidlib.parse_cid(doc["_heads"][0])


def test_generated_ids_sort_by_creation_time():
    clock = Clock()
    d = open_db(clock=clock)
    ids = []
    for i in range(5):
        clock.t += 1
        ids.append(d.collection("c").create({"i": i}))
    assert ids == sorted(ids) and len(set(ids)) == 5


def test_create_with_explicit_id_and_conflict(col):
    assert col.create({"a": 1}, id="doc1") == "doc1"
    with pytest.raises(ConflictError):
        col.create({"a": 2}, id="doc1")
    assert col.get("doc1")["a"] == 1


def test_create_over_a_deleted_document_resurrects_it_with_only_the_new_fields(col):
    col.create({"a": 1, "b": 2}, id="d")
    col.delete("d")
    col.create({"b": 3}, id="d")
    doc = col.get("d")
    assert {k: v for k, v in doc.items() if not k.startswith("_")} == {"b": 3}
    assert doc["_version"] == 3


def test_get_missing_and_get_many(col):
    col.create({"a": 1}, id="x")
    assert col.get("nope") is None
    got = col.get_many(["x", "nope", "x"])
    assert got[0]["a"] == 1 and got[1] is None and got[2]["_id"] == "x"


def test_get_returns_a_copy(col):
    col.create({"tags": ["a"], "meta": {"k": 1}}, id="x")
    doc = col.get("x")
    doc["tags"].append("b")
    doc["meta"]["k"] = 2
    assert col.get("x")["tags"] == ["a"] and col.get("x")["meta"] == {"k": 1}


def test_values_round_trip_through_the_api(col):
    value = {"big": 2**100, "neg": -(2**70), "bytes": b"\x00\xff", "f": 1.5, "u": "日本 👩‍💻",
             "nested": {"z": [1, {"y": None}], "a": True}}
    col.create(value, id="v")
    doc = col.get("v")
    assert {k: doc[k] for k in value} == value
    assert list(doc["nested"]) == ["a", "z"]


# ----------------------------------------------------------------------------- scan

def test_scan_prefix_distinguishes_doc1_from_doc10(col):
    for i in [1, 2, 10, 11, 100, 3]:
        col.create({"i": i}, id=f"doc{i}")
    col.create({}, id="doc")
    col.create({}, id="dob")
    docs, cur = col.scan(prefix="doc1")
    assert [d["_id"] for d in docs] == ["doc1", "doc10", "doc100", "doc11"] and cur is None
    docs, _ = col.scan(prefix="doc10")
    assert [d["_id"] for d in docs] == ["doc10", "doc100"]
    docs, _ = col.scan()
    assert [d["_id"] for d in docs] == ["dob", "doc", "doc1", "doc10", "doc100", "doc11", "doc2", "doc3"]


def test_scan_pages_with_after_and_limit(col):
    for i in range(7):
        col.create({"i": i}, id=f"k{i}")
    pages, cur = [], None
    while True:
        docs, cur = col.scan(after=cur, limit=3)
        pages.append([d["_id"] for d in docs])
        if cur is None:
            break
    assert pages == [["k0", "k1", "k2"], ["k3", "k4", "k5"], ["k6"]]
    docs, cur = col.scan(prefix="k", after="k4")
    assert [d["_id"] for d in docs] == ["k5", "k6"]
    for bad in (5, b"k1", ["k1"]):
        with pytest.raises(ValidationError):
            col.scan(after=bad)


def test_scan_is_stable_under_inserts(col):
    for i in range(0, 10, 2):
        col.create({}, id=f"k{i}")
    docs, cur = col.scan(limit=2)          # k0 k2
    assert [d["_id"] for d in docs] == ["k0", "k2"]
    col.create({}, id="k1")                # before the cursor: not repeated, not seen
    col.create({}, id="k3")                # after the cursor: seen
    col.create({}, id="k9")
    rest = []
    while cur is not None:
        docs, cur = col.scan(after=cur, limit=2)
        rest += [d["_id"] for d in docs]
    assert rest == ["k3", "k4", "k6", "k8", "k9"]


def test_scan_skips_deleted_and_validates(col):
    col.create({}, id="a")
    col.create({}, id="b")
    col.delete("a")
    assert [d["_id"] for d in col.scan()[0]] == ["b"]
    assert [d["_id"] for d in col.scan(include_deleted=True)[0]] == ["a", "b"]
    for bad in (dict(limit=0), dict(limit="3"), dict(prefix=5)):
        with pytest.raises(ValidationError):
            col.scan(**bad)


# ----------------------------------------------------------------------------- writes

def user(doc):
    return {k: v for k, v in doc.items() if not k.startswith("_")}


def test_update_replaces_patch_merges(col):
    col.create({"a": 1, "b": 2}, id="d")
    cid1 = col.update("d", {"a": 5, "c": 3})
    assert cidlib.parse_cid(cid1)
    assert user(col.get("d")) == {"a": 5, "c": 3}
    col.patch("d", {"b": 9}, unset=["a"])
    assert user(col.get("d")) == {"b": 9, "c": 3}
    with pytest.raises(ValidationError):
        col.patch("d", {"b": 1}, unset=["b"])


def test_update_of_a_document_wider_than_one_block_of_removals_succeeds_atomically():
    # Fields gathered by many small writes (here another member's) need more unset ops than
    # one block holds: update() removes them in blocks of their own, as one atomic unit.
    a, b = open_db(ID_A), open_db(ID_B, seed=2)
    a.collection("notes").create({"title": "t"}, id="n1")
    a.flush()
    b.apply_blocks(a.blocks_since({}))
    wide = [f"f{i:04d}" + "x" * 250 for i in range(2_400)]    # ~620 KB of field names
    for k in range(0, len(wide), 600):
        b.collection("notes").patch("n1", dict.fromkeys(wide[k:k + 600], 1))
    b.flush()
    a.apply_blocks(b.blocks_since(a.version_vector()))
    notes = a.collection("notes")
    version = notes.get("n1")["_version"]
    with pytest.raises(ValidationError, match="block may hold"):   # refused after the removals
        notes.update("n1", {"title": "x" * 300_000})
    assert notes.get("n1")["_version"] == version and len(user(notes.get("n1"))) == 2_401
    notes.update("n1", {"title": "fresh"})
    assert user(notes.get("n1")) == {"title": "fresh"} and notes.get("n1")["_version"] > version + 1
    a.flush()
    b.apply_blocks(a.blocks_since(b.version_vector()))
    assert b.state_hash() == a.state_hash() and user(b.collection("notes").get("n1")) == {"title": "fresh"}
    # Inside send_many the removals join the caller's batch.
    for k in range(0, len(wide), 600):
        b.collection("notes").patch("n1", dict.fromkeys(wide[k:k + 600], 2))
    b.send_many([{"collection": "notes", "kind": "update", "id": "n1", "doc": {"title": "again"}}])
    assert user(b.collection("notes").get("n1")) == {"title": "again"}


def test_delete_and_increment(col):
    col.create({"n": 1}, id="d")
    col.increment("d", "n")
    col.increment("d", "n", by=2.5)
    col.increment("d", "m", by=-3)
    assert user(col.get("d")) == {"n": 4.5, "m": -3}
    col.delete("d")
    assert col.get("d") is None
    assert col.get("d", include_deleted=True)["_deleted"] is True
    assert col.count() == 0 and col.count(include_deleted=True) == 1


@pytest.mark.parametrize("by", [float("nan"), float("inf"), "1", None, True, 2**63])
def test_increment_validation(col, by):
    col.create({}, id="d")
    with pytest.raises(ValidationError):
        col.increment("d", "n", by=by)


@pytest.mark.parametrize("call", [
    lambda c: c.update("missing", {"a": 1}), lambda c: c.patch("missing", {"a": 1}),
    lambda c: c.delete("missing"), lambda c: c.increment("missing", "n"),
    lambda c: c.history("missing"), lambda c: c.blame("missing"),
    lambda c: c.update("gone", {"a": 1}), lambda c: c.patch("gone", {}), lambda c: c.delete("gone"),
    lambda c: c.increment("gone", "n"), lambda c: c.blame("gone"),
])
def test_not_found(col, call):
    col.create({"a": 1}, id="gone")
    col.delete("gone")
    with pytest.raises(NotFoundError):
        call(col)


@pytest.mark.parametrize("call", [
    lambda c: c.create({"_x": 1}), lambda c: c.patch("d", {"_x": True}), lambda c: c.patch("d", {}, unset=["_heads"]),
    lambda c: c.update("d", {"ok": 1, "_id": "other"}), lambda c: c.update("d", {"ok": 1, "_collection": "x"}),
    lambda c: c.increment("d", "_n"), lambda c: c.create({"_id": "x"}, id="y"),
])
def test_reserved_names_are_refused(db, col, call):
    col.create({"a": 1}, id="d")
    before = db.state_hash()
    with pytest.raises(ValidationError):
        call(col)
    assert db.state_hash() == before and col.get("d")["_version"] == 1


@pytest.mark.parametrize("doc", [
    [1], "x", None, {1: "a"}, {"a": float("nan")}, {"a": {1, 2}}, {"a": object()}, {"": 1},
    {"x" * 257: 1}, {"\ud800": 1}, {"a": "\udc00"}, {"a": {"b": float("inf")}},
])
def test_invalid_documents_are_refused_and_leave_no_trace(db, col, doc):
    before = db.state_hash()
    with pytest.raises(ValidationError):
        col.create(doc, id="d")
    assert db.state_hash() == before and col.get("d") is None and db.heads() == []
    col.create({"ok": 1}, id="d")  # the id is still free
    assert col.get("d")["_version"] == 1


def test_oversized_document_is_refused_and_leaves_no_trace(db, col):
    with pytest.raises(ValidationError):
        col.create({"blob": b"x" * (300 * 1024)}, id="big")
    assert col.get("big") is None and db.heads() == []


@pytest.mark.parametrize("name", ["", "_x", "a b", "é", "x" * 129, None])
def test_collection_names(db, name):
    with pytest.raises(ValidationError):
        db.collection(name)


@pytest.mark.parametrize("doc_id", ["", "a\x00", "x" * 257, 5])
def test_bad_doc_ids(col, doc_id):
    with pytest.raises(ValidationError):
        col.create({}, id=doc_id)


# ----------------------------------------------------------------------------- compare-and-set

def test_if_version(db, col):
    col.create({"a": 1}, id="d")
    col.patch("d", {"a": 2}, if_version=1)
    before, events = db.state_hash(), db.changes()[0]
    for call in (lambda: col.patch("d", {"a": 3}, if_version=1), lambda: col.update("d", {"a": 3}, if_version=5),
                 lambda: col.delete("d", if_version=1)):
        with pytest.raises(ConflictError):
            call()
    assert db.state_hash() == before and db.changes()[0] == events
    assert col.get("d")["a"] == 2 and col.get("d")["_version"] == 2
    col.delete("d", if_version=2)
    assert col.get("d") is None


def test_if_heads(db, col):
    col.create({"a": 1}, id="d")
    heads = col.get("d")["_heads"]
    col.patch("d", {"a": 2}, if_heads=heads)
    before = db.state_hash()
    with pytest.raises(ConflictError):
        col.patch("d", {"a": 3}, if_heads=heads)        # stale
    assert db.state_hash() == before
    now = col.get("d")["_heads"]
    col.update("d", {"a": 4}, if_heads=now[0])           # a single CID string works too
    assert col.get("d")["a"] == 4
    with pytest.raises(ValidationError):
        col.patch("d", {"a": 5}, if_heads=["not a cid"])


def test_where(db, col):
    col.create({"done": False, "n": 1}, id="d")
    col.patch("d", {"done": True}, where={"done": {"_eq": False}})
    before = db.state_hash()
    with pytest.raises(ConflictError):
        col.patch("d", {"n": 2}, where={"done": {"_eq": False}})
    with pytest.raises(ConflictError):
        col.delete("d", where={"n": {"_gt": 5}})
    assert db.state_hash() == before
    col.delete("d", where={"_and": [{"done": {"_eq": True}}, {"n": {"_le": 1}}]})
    assert col.get("d") is None


# ----------------------------------------------------------------------------- time travel, history

def test_time_travel(col):
    clock_cids = []
    col.create({"a": 1}, id="d")
    clock_cids.append(col.get("d")["_heads"][0])
    clock_cids.append(col.patch("d", {"a": 2, "b": 1}))
    clock_cids.append(col.patch("d", {}, unset=["a"]))
    col.delete("d")
    assert user(col.get("d", at=clock_cids[0])) == {"a": 1}
    assert user(col.get("d", at=clock_cids[1])) == {"a": 2, "b": 1}
    assert col.get("d", at=[clock_cids[2]])["_version"] == 3
    assert col.get("d", at=clock_cids[1])["_version"] == 2
    assert col.get("d") is None
    with pytest.raises(NotFoundError):
        col.get("d", at=cidlib.format_cid(cidlib.compute(b"unknown")))
    col.create({}, id="other")
    with pytest.raises(NotFoundError):
        col.get("d", at=col.get("other")["_heads"])
    with pytest.raises(ValidationError):
        col.get("d", at="garbage")
    with pytest.raises(ValidationError):
        col.get("d", at=[])
    for odd in (5, 1.5, {"x": 1}, {clock_cids[0]: 1}):   # not a CID nor a list of them
        with pytest.raises(ValidationError):
            col.get("d", at=odd)


def test_time_travel_with_concurrent_heads():
    a, b = open_db(ID_A), open_db(ID_B, seed=2)
    ca, cb = a.collection("t"), b.collection("t")
    ca.create({"x": 0}, id="d")
    a.flush()
    b.apply_blocks(a.blocks_since(b.version_vector()))
    h_a = ca.patch("d", {"x": 1})
    h_b = cb.patch("d", {"y": 2})
    a.flush()
    b.flush()
    a.apply_blocks(b.blocks_since(a.version_vector()))
    assert sorted(ca.get("d")["_heads"]) == sorted([h_a, h_b])
    assert user(ca.get("d", at=[h_a, h_b])) == user(ca.get("d"))
    assert user(ca.get("d", at=h_b)) == {"x": 0, "y": 2}


def test_history_order_parents_and_signature_status(db, col):
    col.create({"a": 1}, id="d")
    col.patch("d", {"a": 2})
    col.increment("d", "n")
    hist = col.history("d")
    assert [h["height"] for h in hist] == [1, 2, 3]
    assert hist[0]["parents"] == [] and hist[1]["parents"] == [hist[0]["cid"]]
    assert hist[2]["parents"] == [hist[1]["cid"]]
    assert [h["seq"] for h in hist] == [1, 2, 3] and {h["actor"] for h in hist} == {ID_A.actor.hex()}
    assert hist[1]["ops"] == [["s", "a", 2]] and hist[2]["ops"] == [["i", "n", 1]]
    assert all(h["signature"]["status"] == "pending" for h in hist)
    db.flush()
    hist = col.history("d")
    assert all(h["signature"]["status"] == "verified" for h in hist)
    assert hist[0]["signature"]["signer"] == ID_A.actor.hex()


def test_blame(col):
    c1 = col.create({"a": 1, "b": 1}, id="d")
    first = col.get("d")["_heads"][0]
    c2 = col.patch("d", {"b": 2})
    c3 = col.increment("d", "n", 5)
    blame = col.blame("d")
    assert blame["a"]["cid"] == first and blame["b"]["cid"] == c2 and blame["n"]["cid"] == c3
    assert blame["a"]["actor"] == ID_A.actor.hex() and c1 == "d"



def test_blame_decodes_each_commit_once_not_once_per_field(col, monkeypatch):
    # A document of many fields written by one block (legal: a block holds up to 256 KiB, and a
    # member may send one) decoded that block per field: quadratic, minutes under the lock.
    from ostracon.core.replica import Replica
    col.create({f"f{i}": i for i in range(300)}, id="wide")
    c2 = col.patch("wide", {"f7": "again"})
    decoded = []
    real = Replica.change

    def counting(self, cid):
        decoded.append(cid)
        return real(self, cid)

    monkeypatch.setattr(Replica, "change", counting)
    blame = col.blame("wide")
    assert len(blame) == 300 and blame["f7"]["cid"] == c2
    assert len(decoded) <= 2, len(decoded)


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


def test_remote_changes_reach_the_feed():
    a, b = open_db(ID_A), open_db(ID_B, seed=2)
    a.collection("t").create({"v": 1}, id="d")
    a.flush()
    b.apply_blocks(a.blocks_since({}))
    evs, _ = b.changes()
    assert [(e.collection, e.id, e.version) for e in evs] == [("t", "d", 1)]


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


# ----------------------------------------------------------------------------- replication

def test_two_databases_exchange_and_converge():
    a, b = open_db(ID_A), open_db(ID_B, seed=2)
    ca, cb = a.collection("t"), b.collection("t")
    ca.create({"title": "x", "n": 0}, id="d")
    a.flush()
    assert b.apply_blocks(a.blocks_since(b.version_vector())) == 1
    assert b.apply_blocks(a.blocks_since(b.version_vector())) == 0
    ca.patch("d", {"title": "from a"})
    cb.patch("d", {"title": "from b"})
    ca.increment("d", "n", 1)
    cb.increment("d", "n", 2)
    cb.create({}, id="only-b")
    a.flush()
    b.flush()
    b.apply_blocks(a.blocks_since(b.version_vector()))
    a.apply_blocks(b.blocks_since(a.version_vector()))
    assert a.state_hash() == b.state_hash() and a.heads() == b.heads()
    assert a.version_vector() == b.version_vector()
    assert ca.get("d")["n"] == 3 and ca.get("d")["title"] == cb.get("d")["title"]
    assert a.blocks_since(b.version_vector()) == []


def test_apply_blocks_with_garbage_applies_nothing():
    a, b = open_db(ID_A), open_db(ID_B, seed=2)
    a.collection("t").create({"v": 1}, id="d")
    a.flush()
    good = a.blocks_since({})
    before = (b.state_hash(), b.heads(), b.version_vector())
    for bad in (b"not msgpack", b"\x92\x01\xc4\x02\x00\x00", b"", b"\x92\x02\xc4\x01\x00"):
        with pytest.raises(CorruptBlockError):
            b.apply_blocks(good + [bad])
        assert (b.state_hash(), b.heads(), b.version_vector()) == before
    assert b.apply_blocks(good) == 1


def test_tampered_block_is_never_applied():
    a, b = open_db(ID_A), open_db(ID_B, seed=2)
    a.collection("t").create({"v": "hello"}, id="d")
    a.flush()
    blk, seal = a.blocks_since({})
    tampered = blk.replace(b"hello", b"jello")
    assert tampered != blk
    assert b.apply_blocks([tampered, seal]) == 0
    assert b.collection("t").get("d") is None
    assert b.apply_blocks([blk]) == 1 and b.collection("t").get("d")["v"] == "hello"


def test_blocks_since_validates_the_vector(db):
    with pytest.raises(ValidationError):
        db.blocks_since({"zz": 1})
    with pytest.raises(ValidationError):
        db.blocks_since({ID_A.actor.hex(): -1})
    for odd in (5, "abc", [(ID_A.actor.hex(), 1)]):   # a vector is a dict (or None)
        with pytest.raises(ValidationError):
            db.blocks_since(odd)


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
                 lambda: d.apply_blocks([]), lambda: d.version_vector(), lambda: d.subscribe()):
        with pytest.raises(ClosedError):
            call()


def test_closed_collection_count_raises():
    # count() checks the database is open like every other method.
    d = open_db()
    c = d.collection("t")
    d.close()
    with pytest.raises(ClosedError):
        c.count()


def test_context_manager():
    storage = SpyStorage()
    with open_db(storage=storage) as d:
        d.collection("t").create({"a": 1}, id="x")
    assert storage.flushes == 1
    with pytest.raises(ClosedError):
        d.collection("t")
    with ostracon.open() as plain:
        assert plain.collection("t").get("x") is None


def test_verify_before_a_flush_reports_no_problem_and_still_finds_forgeries(tmp_path):
    # Own writes not yet flushed wait for the next batch's seal: honest work, not damage.
    db = ostracon.open(tmp_path / "db", sink_interval_ms=3_600_000)
    db.collection("t").create({"a": 1}, id="x")
    assert db.pending_writes == 1
    assert db.verify() == []
    db.flush()
    assert db.verify() == []
    db.close()
