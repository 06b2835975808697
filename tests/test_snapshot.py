"""Snapshots: dump + load gives the same replica as replaying the blocks."""

import random
import zlib

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ostracon
from ostracon.core import snapshot
from ostracon.core.replica import Replica
from ostracon.core.state import DocState
from ostracon.storage.memory import MemoryStorage
from simulator import Sim


def _sealed(w, rows=False):
    """Damaged parts made consistent with the snapshot's digests (rows too if asked), so a
    test reaches the structural check behind them (a forger can do the same)."""
    if rows:
        w[6][5] = b"".join(map(snapshot.row_digest, _rows(w)))
    w[8]["index"] = snapshot.index_digest(w[2], w[3], w[4], w[5], w[6], w[7], w[8])
    return w


def _rows(w) -> list[bytes]:
    """The document rows of an unpacked snapshot `w`, in docs order."""
    return snapshot.split_rows(w[6][4])


def _set_row(w, k: int, row: bytes) -> None:
    rows = _rows(w)
    rows[k] = row
    w[6][4] = snapshot.join_rows(rows)


def _deletes(w, k: int) -> list:
    return dict(w[6][3]).get(k, [])


def _set_deletes(w, k: int, deletes: list) -> None:
    by_doc = {**dict(w[6][3]), k: deletes}
    w[6][3] = [[i, by_doc[i]] for i in sorted(by_doc) if by_doc[i]]


def _clone_via_snapshot(db):
    r = Replica(db.replica.actor, verify=db.crypto.ed25519_verify)
    snapshot.load(r, snapshot.dump(db.replica))
    return r


@pytest.mark.parametrize("seed", range(25))
def test_snapshot_round_trip_equals_replay(seed):
    db = Sim(seed).run()[0]
    r = _clone_via_snapshot(db)
    assert r.order == db.replica.order
    assert r.version_vector() == db.replica.version_vector()
    assert r.sealed_upto == db.replica.sealed_upto
    for name, docs in db.replica.collections.items():
        for doc_id, d in docs.items():
            e = r.collections[name][doc_id]
            assert e.to_doc() == d.to_doc() and e.digest() == d.digest() and e.blame() == d.blame()
            assert e.cids == d.cids


def test_database_reopens_from_snapshot_and_tail():
    storage = MemoryStorage()
    db = ostracon.open(storage=storage)
    col = db.collection("t")
    for i in range(50):
        col.create({"i": i, "tags": ["a", {"b": i}]}, id=f"d{i}")
    col.increment("d1", "votes", 2)
    col.delete("d2")
    db.compact()
    col.patch("d3", {"i": -1})           # the tail after the snapshot
    db.flush()
    expected = db.state_hash(), db.heads(), db.collection("t").history("d1")
    ident = db.identity
    storage._closed = False               # reuse the same in-memory storage as a "reopen"
    db2 = ostracon.open(storage=storage, identity=ident)
    assert (db2.state_hash(), db2.heads(), db2.collection("t").history("d1")) == expected
    # Writes continue after the snapshot with the next sequence number and later stamps.
    db2.collection("t").patch("d4", {"i": 99})
    assert db2.collection("t").history("d4")[-1]["seq"] == db.replica.seq_of(db.replica.actor) + 1


def test_a_malformed_snapshot_is_a_typed_error():
    with pytest.raises(ostracon.CorruptSnapshotError):
        snapshot.load(Replica(b"\x01" * 32, require_signatures=False), b"\x93\x02\x90\x90")
    with pytest.raises(ostracon.CorruptSnapshotError):
        snapshot.load(Replica(b"\x01" * 32, require_signatures=False), b"garbage")
    good = snapshot.dump(Sim(1).run()[0].replica)
    v = msgpack.unpackb(zlib.decompress(good))
    v[5][0] = v[5][0][:-1]  # drop a block's collection from the info columns
    _sealed(v)
    with pytest.raises(ostracon.CorruptSnapshotError):
        snapshot.load(Replica(b"\x01" * 32, require_signatures=False), zlib.compress(msgpack.packb(v)))
    for bad in (good[:-5], good[:2] + bytes(len(good) - 2), b"\x78" + good):
        with pytest.raises(ostracon.CorruptSnapshotError):
            snapshot.load(Replica(b"\x01" * 32, require_signatures=False), bad)


def test_compaction_never_grows_a_store(tmp_path):
    import os
    import random

    def size(p):
        return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(p) for f in fs)
    for seed in range(12):
        rng = random.Random(seed)
        path = tmp_path / f"s{seed}"
        db = ostracon.open(path)
        col = db.collection("c")
        for _ in range(rng.choice([0, 1, 3, 10, 60, 400])):
            col.create({"t": "lorem ipsum " * rng.randrange(8), "n": rng.random()})
        for _ in range(3):
            db.flush()
            before = size(path)
            db.compact()
            assert size(path) <= before, f"seed {seed}: compaction grew the store"
            if rng.random() < 0.5 and col.count():
                col.patch(col.scan(limit=1)[0][0]["_id"], {"x": rng.random()})
        state = db.state_hash()
        db.close()
        again = ostracon.open(path)
        assert again.state_hash() == state, f"seed {seed}"
        again.close()


def test_a_format_2_snapshot_is_upgraded_by_replaying_its_blocks():
    db = Sim(2).run()[0]
    v = msgpack.unpackb(zlib.decompress(snapshot.dump(db.replica)))
    v[0] = 2
    v[5] = [list(r) for r in zip(*v[5], strict=True)]  # format 2 kept one info row per block
    v[6] = []  # format 2's state part is not read: the blocks are replayed
    r = Replica(db.replica.actor, verify=db.crypto.ed25519_verify)
    snapshot.load(r, msgpack.packb(v))
    assert {(n, i): d.digest() for n, docs in r.collections.items() for i, d in docs.items()} == {
        (n, i): d.digest() for n, docs in db.replica.collections.items() for i, d in docs.items()}


def _filled(state) -> bool:
    try:
        return object.__getattribute__(state, "_pending") is None
    except AttributeError:
        return True  # an ordinary state


@pytest.mark.parametrize("seed", range(10))
def test_a_lazy_load_builds_documents_on_first_use_and_equals_an_eager_one(seed):
    db = Sim(seed).run()[0]
    data = snapshot.dump(db.replica)
    r = Replica(db.replica.actor, verify=db.crypto.ed25519_verify)
    snapshot.load(r, data, lazy=True)
    states = [d for docs in r.collections.values() for d in docs.values()]
    assert states and not any(_filled(d) for d in states)
    # Deleted or not, and counting, never build a state.
    assert {(d.collection, d.doc_id): d.deleted for d in states} == {
        (n, i): d.deleted for n, docs in db.replica.collections.items() for i, d in docs.items()}
    assert DocState.count_deleted(states) == sum(d.deleted for d in states)
    assert not any(_filled(d) for d in states)
    for name, docs in db.replica.collections.items():
        for doc_id, d in docs.items():
            e = r.collections[name][doc_id]
            assert e.to_doc() == d.to_doc() and e.digest() == d.digest() and e.blame() == d.blame()
            assert e.cids == d.cids and e.heads == d.heads and e.past == d.past
    assert all(_filled(d) for d in states)


def test_a_lazy_load_makes_no_object_per_document_but_its_state_and_lets_built_rows_go():
    # Every object an open makes is one more for the collector's first pass after it (tens
    # of ms in WebAssembly for 10,000 documents): per document only the state, per block
    # its BlockInfo.
    import gc
    from collections import Counter

    storage = MemoryStorage()
    db = ostracon.open(storage=storage)
    db.send_many([{"collection": "t", "kind": "create", "doc": {"i": i}, "id": f"d{i:03}"} for i in range(300)])
    db.collection("t").delete("d005")
    data = snapshot.dump(db.replica)
    db.close()
    r = Replica(db.replica.actor, require_signatures=False)
    gc.collect()
    gc.disable()
    try:
        before = Counter(map(type, gc.get_objects()))
        snapshot.load(r, data, lazy=True)
        made = Counter(map(type, gc.get_objects())) - before
    finally:
        gc.enable()
    assert made[DocState] == 300 and made[snapshot.BlockInfo] == 301
    assert sum(made.values()) - 601 < 100, made.most_common(5)
    rows = object.__getattribute__(r.collections["t"]["d007"], "_pending")
    assert rows.raw is None  # format 6: the rows stay one blob, no object per row
    assert r.collections["t"]["d007"].to_doc()["i"] == 7
    assert r.collections["t"]["d005"].deleted and rows.deletes.keys() == {5}


def test_a_database_opened_lazily_answers_and_writes_like_an_eager_one():
    storage = MemoryStorage()
    db = ostracon.open(storage=storage)
    col = db.collection("t")
    for i in range(30):
        col.create({"i": i, "tags": ["a", {"b": i}]}, id=f"d{i}")
    col.delete("d2")
    db.compact()
    ident, expected = db.identity, (db.state_hash(), db.heads(), col.count(), col.find({"i": {"_gt": 20}}))
    db.close()
    storage._closed = False
    lazy = ostracon.open(storage=storage, identity=ident, lazy_snapshot=True)
    lc = lazy.collection("t")
    assert (lazy.state_hash(), lazy.heads(), lc.count(), lc.find({"i": {"_gt": 20}})) == expected
    lc.patch("d5", {"i": -5})  # a write to a state that was built on use
    assert lc.get("d5")["i"] == -5 and lc.get("d5")["_version"] == 2
    lazy.close()


def test_a_format_3_snapshot_is_still_read():
    db = Sim(3).run()[0]
    v = msgpack.unpackb(zlib.decompress(snapshot.dump(db.replica)), strict_map_key=False)
    v[0] = 3
    v[5] = [list(r) for r in zip(*v[5], strict=True)]
    v[6] = [msgpack.unpackb(b, strict_map_key=False) for b in _rows(v)]  # rows inline
    for lazy in (False, True):
        r = Replica(db.replica.actor, verify=db.crypto.ed25519_verify)
        snapshot.load(r, zlib.compress(msgpack.packb(v, use_bin_type=True)), lazy=lazy)
        assert {(n, i): d.digest() for n, docs in r.collections.items() for i, d in docs.items()} == {
            (n, i): d.digest() for n, docs in db.replica.collections.items() for i, d in docs.items()}


def test_malformed_document_columns_are_corrupt():
    good = snapshot.dump(Sim(1).run()[0].replica)
    for damage in (lambda v: v[6][2].__setitem__(0, "yes"),      # live is not a bool
                   lambda v: _set_deletes(v, 0, [10**6]),        # a delete beyond the blocks
                   lambda v: v[6].pop(),                         # a column missing
                   lambda v: v[6][1].__setitem__(0, 7)):         # an id that is not a str
        w = msgpack.unpackb(zlib.decompress(good), strict_map_key=False)
        damage(w)
        if len(w[6]) == 6:
            _sealed(w)
        for lazy in (False, True):
            with pytest.raises(ostracon.CorruptSnapshotError):
                snapshot.load(Replica(b"\x01" * 32, require_signatures=False),
                              zlib.compress(msgpack.packb(w, use_bin_type=True)), lazy=lazy)



def _repacked(good: bytes, damage) -> bytes:
    w = msgpack.unpackb(zlib.decompress(good), strict_map_key=False)
    damage(w)
    _sealed(w)
    return zlib.compress(msgpack.packb(w, use_bin_type=True))


def _swap_actors(w):
    w[3] = [w[3][0], w[3][0]]


@pytest.mark.parametrize("damage", [
    lambda w: w[5][2].__setitem__(0, -1),                   # a negative actor index
    lambda w: w[5][2].__setitem__(0, len(w[3])),            # an actor index past the table
    lambda w: w[5][0].__setitem__(0, 1.0),                  # a collection index that is a float
    lambda w: w[5][3].__setitem__(0, 1.0),                  # a sequence number that is a float
    lambda w: w[5][3].__setitem__(-1, 10**6),               # a gap in an actor's log
    lambda w: w[5][4].__setitem__(0, "1"),                  # a height that is not an int
    lambda w: w[3].append(w[3][0]),                         # an actor named twice
    lambda w: w[4].append(w[4][0]),                         # a collection named twice
    lambda w: w[1].__setitem__(0, "not bytes"),             # a block body of another type
    lambda w: w[1].pop(),                                   # a block without its info row
], ids=["neg-actor", "actor-past-table", "float-collection", "float-seq", "seq-gap", "str-height",
        "actor-twice", "collection-twice", "block-type", "block-missing"])
def test_malformed_block_columns_are_corrupt(damage):
    _refused_eagerly_and_lazily(_repacked(snapshot.dump(Sim(4).run()[0].replica), damage))


def _refused_eagerly_and_lazily(bad: bytes) -> None:
    for lazy in (False, True):
        with pytest.raises(ostracon.CorruptSnapshotError):
            snapshot.load(Replica(b"\x01" * 32, require_signatures=False), bad, lazy=lazy)


def test_an_out_of_order_log_names_its_first_block():
    good = snapshot.dump(Sim(4).run()[0].replica)
    w = msgpack.unpackb(zlib.decompress(good), strict_map_key=False)
    actor = w[5][2][0]
    mine = [i for i, a in enumerate(w[5][2]) if a == actor]
    w[5][3][mine[1]], w[5][3][mine[2]] = w[5][3][mine[2]], w[5][3][mine[1]]
    _sealed(w)
    with pytest.raises(ostracon.CorruptSnapshotError, match=f"out of order at block {mine[1]}"):
        snapshot.load(Replica(b"\x01" * 32, require_signatures=False),
                      zlib.compress(msgpack.packb(w, use_bin_type=True)), lazy=True)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.booleans()), max_size=40))
def test_actor_logs_from_columns_follow_the_stepwise_rule(steps):
    # Each step: a block by actor a, numbered in order (True) or one past (a gap, False).
    seqs: dict[int, int] = {}
    ai_col, seq_col = [], []
    for a, in_order in steps:
        seqs[a] = seqs.get(a, 0) + (1 if in_order else 2)
        ai_col.append(a)
        seq_col.append(seqs[a])
    actors = [bytes([a]) * 32 for a in range(4)]
    actor_col = [actors[a] for a in ai_col]
    order = [i.to_bytes(4, "big") for i in range(len(ai_col))]
    fast, step = Replica(b"\x09" * 32, require_signatures=False), Replica(b"\x09" * 32, require_signatures=False)
    try:
        snapshot._fill_logs_stepwise(step, order, actor_col, seq_col, set())
    except ValueError:
        assert not snapshot._fill_logs(fast, order, ai_col, actor_col, seq_col) and fast.by_actor == {}
        return
    assert snapshot._fill_logs(fast, order, ai_col, actor_col, seq_col)
    assert list(fast.by_actor.items()) == list(step.by_actor.items())  # same logs, same actor order


@settings(max_examples=100, deadline=None)
@given(st.lists(st.booleans(), min_size=1, max_size=60))
def test_one_actors_log_from_columns_follows_the_stepwise_rule(in_order):
    # One device's database: the columns' shortcut (no sort) must agree with the stepwise rule.
    seq, seq_col = 0, []
    for ok in in_order:
        seq += 1 if ok else 2
        seq_col.append(seq)
    ai_col, actor_col = [0] * len(seq_col), [b"\x05" * 32] * len(seq_col)
    order = [i.to_bytes(4, "big") for i in range(len(seq_col))]
    fast, step = Replica(b"\x09" * 32, require_signatures=False), Replica(b"\x09" * 32, require_signatures=False)
    if not all(in_order):
        with pytest.raises(ValueError):
            snapshot._fill_logs_stepwise(step, order, actor_col, seq_col, set())
        assert not snapshot._fill_logs(fast, order, ai_col, actor_col, seq_col) and fast.by_actor == {}
        return
    snapshot._fill_logs_stepwise(step, order, actor_col, seq_col, set())
    assert snapshot._fill_logs(fast, order, ai_col, actor_col, seq_col)
    assert fast.by_actor == step.by_actor == {b"\x05" * 32: order}


def _lazy_row_damage(w, k: int):
    raw = _rows(w)[k]
    return {"cut": raw[:-3], "other-doc": msgpack.packb([w[6][0][k], w[6][1][k] + "x", *msgpack.unpackb(
        raw, strict_map_key=False)[2:]], use_bin_type=True), "not-a-row": msgpack.packb(7)}


@pytest.mark.parametrize("kind", ["cut", "other-doc", "not-a-row"])
def test_a_damaged_row_is_a_typed_error_at_first_use_of_a_lazy_load(kind):
    db = Sim(5).run()[0]
    good = snapshot.dump(db.replica)
    w = msgpack.unpackb(zlib.decompress(good), strict_map_key=False)
    k = len(w[6][1]) // 2
    _set_row(w, k, _lazy_row_damage(w, k)[kind])
    _sealed(w, rows=True)  # the row's structure is what fails, not its digest
    bad = zlib.compress(msgpack.packb(w, use_bin_type=True))
    with pytest.raises(ostracon.CorruptSnapshotError):
        snapshot.load(Replica(b"\x01" * 32, require_signatures=False), bad)
    r = Replica(b"\x01" * 32, require_signatures=False)
    snapshot.load(r, bad, lazy=True)  # the columns are whole: the open succeeds
    name, doc_id = w[4][w[6][0][k]], w[6][1][k]
    d = r.collections[name][doc_id]
    assert d.deleted == db.replica.collections[name][doc_id].deleted  # answered from the columns
    for _ in range(2):  # and again: a failed build is not taken for a built state
        with pytest.raises(ostracon.CorruptSnapshotError, match=doc_id):
            d.to_doc()
    others = [(n, i) for n, docs in r.collections.items() for i in docs if (n, i) != (name, doc_id)]
    for n, i in others:  # the other documents are whole
        assert r.collections[n][i].digest() == db.replica.collections[n][i].digest()


def _compacted_store(docs: dict[str, dict]):
    """A closed in-memory store whose snapshot holds collection "t" with `docs` (id -> doc):
    (storage, identity, the snapshot unpacked, its position)."""
    storage = MemoryStorage()
    db = ostracon.open(storage=storage)
    col = db.collection("t")
    for doc_id, doc in docs.items():
        col.create(doc, id=doc_id)
    db.flush()
    db.compact()
    ident = db.identity
    db.close()
    storage._closed = False
    data, position = storage.load_snapshot()
    return storage, ident, msgpack.unpackb(zlib.decompress(data), strict_map_key=False), position


def _store_snapshot(storage, w, position: int) -> None:
    storage.write_snapshot(zlib.compress(msgpack.packb(w, use_bin_type=True)), position)


@pytest.mark.parametrize("lazy", [False, True])
def test_a_snapshot_block_changed_on_disk_fails_the_open(lazy):
    storage, ident, w, position = _compacted_store({f"d{i}": {"i": i, "t": "lorem ipsum " * 5} for i in range(300)})
    body = bytearray(w[1][7])
    body[-1] ^= 1  # the block is known by the CID of these bytes, which no seal covers
    w[1][7] = bytes(body)
    _store_snapshot(storage, w, position)
    with pytest.raises(ostracon.CorruptBlockError, match="does not match"):
        ostracon.open(storage=storage, identity=ident, lazy_snapshot=lazy)


def test_the_decompression_bound_fits_a_32_bit_size():
    # zlib's max_length is a C Py_ssize_t: a larger bound fails every load in Pyodide.
    from ostracon.core.limits import MAX_PORTABLE_INT
    from ostracon.core.snapshot import MAX_SNAPSHOT_BYTES
    assert 0 < MAX_SNAPSHOT_BYTES <= MAX_PORTABLE_INT


def _flip_bit(data: bytes, bit: int) -> bytes:
    b = bytearray(data)
    b[bit // 8] ^= 1 << (bit % 8)
    return bytes(b)


@pytest.mark.parametrize("seed", range(20))
def test_a_flipped_bit_in_a_row_fails_at_first_and_every_use(seed):
    rng = random.Random(seed)
    db = Sim(seed % 7).run()[0]
    w = msgpack.unpackb(zlib.decompress(snapshot.dump(db.replica)), strict_map_key=False)
    rows = _rows(w)
    k = rng.randrange(len(rows))
    _set_row(w, k, _flip_bit(rows[k], rng.randrange(8 * len(rows[k]))))
    bad = zlib.compress(msgpack.packb(w, use_bin_type=True))
    name, doc_id = w[4][w[6][0][k]], w[6][1][k]
    with pytest.raises(ostracon.CorruptSnapshotError, match="digest"):
        snapshot.load(Replica(b"\x01" * 32, require_signatures=False), bad)
    r = Replica(b"\x01" * 32, require_signatures=False)
    snapshot.load(r, bad, lazy=True)  # the index is whole: the open stays lazy and succeeds
    for _ in range(3):
        with pytest.raises(ostracon.CorruptSnapshotError, match=f"{doc_id}.*digest"):
            r.collections[name][doc_id].to_doc()
    for n, docs in db.replica.collections.items():
        for i, d in docs.items():
            if (n, i) != (name, doc_id):
                assert r.collections[n][i].digest() == d.digest(), f"seed {seed}"


@pytest.mark.parametrize("part", ["live", "deletes", "digest", "info", "actors", "clock", "checkpoint"])
def test_a_damaged_index_fails_the_load(part):
    db = Sim(6).run()[0]
    w = msgpack.unpackb(zlib.decompress(snapshot.dump(db.replica)), strict_map_key=False)
    {"live": lambda: w[6][2].__setitem__(0, not w[6][2][0]),
     "deletes": lambda: _set_deletes(w, 0, [*_deletes(w, 0), 0]),
     "digest": lambda: w[6].__setitem__(5, _flip_bit(w[6][5], 3)),
     "info": lambda: w[5][4].__setitem__(0, w[5][4][0] + 1),
     "actors": lambda: w[3].__setitem__(0, _flip_bit(w[3][0], 9)),
     "clock": lambda: w.__setitem__(7, w[7] + (1 << 40)),
     "checkpoint": lambda: w[8].__setitem__("checkpoint", {"state": b"x"})}[part]()
    bad = zlib.compress(msgpack.packb(w, use_bin_type=True))
    for lazy in (False, True):
        with pytest.raises(ostracon.CorruptSnapshotError, match="index does not match"):
            snapshot.load(Replica(b"\x01" * 32, require_signatures=False), bad, lazy=lazy)


@pytest.mark.parametrize("part", ["live", "deletes"])
def test_docs_columns_that_disagree_with_their_row_fail_at_build(part):
    # Consistent digests (as a forger could make them) but a column that says otherwise than
    # the row: what the column answered before the build is not let stand after it.
    db = Sim(6).run()[0]
    w = msgpack.unpackb(zlib.decompress(snapshot.dump(db.replica)), strict_map_key=False)
    if part == "live":
        w[6][2][0] = not w[6][2][0]
    else:
        _set_deletes(w, 0, [*_deletes(w, 0), 0])
    bad = zlib.compress(msgpack.packb(_sealed(w), use_bin_type=True))
    with pytest.raises(ostracon.CorruptSnapshotError, match="disagree"):
        snapshot.load(Replica(b"\x01" * 32, require_signatures=False), bad)
    r = Replica(b"\x01" * 32, require_signatures=False)
    snapshot.load(r, bad, lazy=True)
    for _ in range(2):
        with pytest.raises(ostracon.CorruptSnapshotError, match="disagree"):
            r.collections[w[4][w[6][0][0]]][w[6][1][0]].to_doc()


def _as_format_4(data: bytes) -> bytes:
    v = msgpack.unpackb(zlib.decompress(data), strict_map_key=False)
    v[0] = 4
    ci, ids, live, deletes, _, _ = v[6]
    v[6] = [ci, ids, live, [dict(deletes).get(i, []) for i in range(len(ids))], _rows(v)]  # no digests
    del v[8]["index"]
    return zlib.compress(msgpack.packb(v, use_bin_type=True))


def _digests(collections) -> dict:
    return {(n, i): d.digest() for n, docs in collections.items() for i, d in docs.items()}


def test_a_format_4_snapshot_is_rebuilt_from_its_blocks():
    db = Sim(3).run()[0]
    old = msgpack.unpackb(zlib.decompress(_as_format_4(snapshot.dump(db.replica))), strict_map_key=False)
    k = len(old[6][4]) // 2
    old[6][4][k] = b"\xc0"  # its rows are not read: the blocks are replayed
    for lazy in (False, True):
        r = Replica(db.replica.actor, verify=db.crypto.ed25519_verify)
        assert snapshot.load(r, zlib.compress(msgpack.packb(old, use_bin_type=True)), lazy=lazy) == 4
        states = [d for docs in r.collections.values() for d in docs.values()]
        assert all(_filled(d) for d in states)
        assert _digests(r.collections) == _digests(db.replica.collections)


def test_a_pruned_format_4_snapshot_is_built_at_load():
    storage = MemoryStorage()
    db = ostracon.open(storage=storage, clock=lambda: 1_000_000)
    col = db.collection("t")
    for i in range(20):
        col.create({"i": i}, id=f"d{i}")
    for i in range(20):
        col.patch(f"d{i}", {"i": -i})
    db.flush()
    db.compact(prune_before=2_000_000)
    assert db.replica.pruned
    data = _as_format_4(storage.load_snapshot()[0])
    r = Replica(db.replica.actor, verify=db.crypto.ed25519_verify)
    assert snapshot.load(r, data, lazy=True) == 4  # no replay possible: every row built now
    assert all(_filled(d) for docs in r.collections.values() for d in docs.values())
    assert _digests(r.collections) == _digests(db.replica.collections)
    db.close()


def test_a_lazily_opened_database_reports_a_damaged_row_on_every_read():
    storage, ident, w, position = _compacted_store({f"d{i:02}": {"i": i, "note": "n" * 20} for i in range(40)})
    k = w[6][1].index("d07")
    row = _rows(w)[k]
    _set_row(w, k, row.replace(b"\x07", b"\x08", 1))  # i: 7 -> 8, still a well-formed row
    assert msgpack.unpackb(_rows(w)[k], strict_map_key=False) != msgpack.unpackb(row, strict_map_key=False)
    _store_snapshot(storage, w, position)
    lazy = ostracon.open(storage=storage, identity=ident, lazy_snapshot=True)
    lc = lazy.collection("t")
    assert lc.get("d06")["i"] == 6
    for _ in range(2):
        with pytest.raises(ostracon.CorruptSnapshotError, match="d07"):
            lc.get("d07")
    lazy.close()


@pytest.mark.parametrize("seed", range(8))
def test_the_index_is_checked_over_its_stored_bytes_as_index_digest_packs_it(seed):
    data = zlib.decompress(snapshot.dump(Sim(seed).run()[0].replica))
    v, index = snapshot._unpack(data)
    assert index is not None, f"seed {seed}"
    _, _, seals, actors, cols, info, docs, clock, extra = v
    assert index(extra) == snapshot.index_digest(seals, actors, cols, info, docs, clock, extra) \
        == extra["index"], f"seed {seed}"


def _with_wide_seq(w: list) -> bytes:
    """The snapshot `w` packed as `packb` would, except for the first block's sequence number,
    stored as a uint8 (0xcc) instead of its canonical positive fixint: the same values."""
    pack = msgpack.Packer(use_bin_type=True).pack
    seq = w[5][3]
    assert 0 <= seq[0] < 128
    col = bytes([0xdc]) + len(seq).to_bytes(2, "big") if len(seq) > 15 else bytes([0x90 + len(seq)])
    col += b"\xcc" + bytes([seq[0]]) + b"".join(pack(x) for x in seq[1:])
    info = b"\x95" + b"".join(col if i == 3 else pack(c) for i, c in enumerate(w[5]))
    return b"\x99" + b"".join(info if i == 5 else pack(p) for i, p in enumerate(w))


def test_an_index_part_stored_in_another_form_fails_the_load():
    w = msgpack.unpackb(zlib.decompress(snapshot.dump(Sim(3).run()[0].replica)), strict_map_key=False)
    wide = _with_wide_seq(w)
    assert msgpack.unpackb(wide, strict_map_key=False) == w  # the same values, other bytes
    for lazy in (False, True):
        with pytest.raises(ostracon.CorruptSnapshotError, match="index does not match"):
            snapshot.load(Replica(b"\x01" * 32, require_signatures=False), zlib.compress(wide), lazy=lazy)


def test_trailing_bytes_after_a_snapshot_are_corrupt():
    data = zlib.decompress(snapshot.dump(Sim(2).run()[0].replica))
    with pytest.raises(ostracon.CorruptSnapshotError, match="trailing"):
        snapshot.load(Replica(b"\x01" * 32, require_signatures=False), zlib.compress(data + b"\xc0"))


class _InflatingStorage(MemoryStorage):
    """A store that hands over its snapshot already inflated, as the IndexedDB adapter does
    (`plain` gives the inflated bytes to hand over, from the stored ones)."""

    def __init__(self, base: MemoryStorage, plain) -> None:
        self.__dict__.update(base.__dict__)
        self.plain, self.taken = plain, 0

    def take_inflated_snapshot(self, data: bytes) -> bytes | None:
        self.taken += 1
        return self.plain(data)


@pytest.mark.parametrize("lazy", [False, True])
def test_a_snapshot_handed_over_inflated_is_loaded_and_checked_like_a_stored_one(lazy):
    docs = {f"d{i}": {"i": i} for i in range(50)}
    base, ident, w, position = _compacted_store(docs)
    storage = _InflatingStorage(base, zlib.decompress)
    db = ostracon.open(storage=storage, identity=ident, lazy_snapshot=lazy)
    assert storage.taken == 1 and db.collection("t").get("d7")["i"] == 7
    db.close()
    w[6][2][0] = not w[6][2][0]  # a live flag changed in the inflated bytes only
    storage = _InflatingStorage(base, lambda _: msgpack.packb(w, use_bin_type=True))
    storage._closed = False
    with pytest.raises(ostracon.CorruptSnapshotError, match="index does not match"):
        ostracon.open(storage=storage, identity=ident, lazy_snapshot=lazy)


def _as_format_5(data: bytes) -> bytes:
    """A format-6 snapshot in format 5's layout: a list of deletes, a row and a digest per
    document, the index digest over those columns."""
    v = msgpack.unpackb(zlib.decompress(data), strict_map_key=False)
    ci, ids, live, deletes, rows, digests = v[6]
    v[0] = 5
    v[6] = [ci, ids, live, [dict(deletes).get(i, []) for i in range(len(ids))], _rows(v),
            [digests[i:i + snapshot.ROW_DIGEST_BYTES] for i in range(0, len(digests), snapshot.ROW_DIGEST_BYTES)]]
    return zlib.compress(msgpack.packb(_sealed(v), use_bin_type=True))


@pytest.mark.parametrize("seed", range(6))
def test_a_format_5_snapshot_is_still_read_lazily_and_checked(seed):
    db = Sim(seed).run()[0]
    old = _as_format_5(snapshot.dump(db.replica))
    for lazy in (False, True):
        r = Replica(db.replica.actor, verify=db.crypto.ed25519_verify)
        assert snapshot.load(r, old, lazy=lazy) == 5, f"seed {seed}"
        assert _digests(r.collections) == _digests(db.replica.collections), f"seed {seed}"
    # Its rows are still checked against their digests at first use.
    v = msgpack.unpackb(zlib.decompress(old), strict_map_key=False)
    v[6][4][0] = _flip_bit(v[6][4][0], 5)
    r = Replica(db.replica.actor, require_signatures=False)
    snapshot.load(r, zlib.compress(msgpack.packb(v, use_bin_type=True)), lazy=True)
    with pytest.raises(ostracon.CorruptSnapshotError, match="digest"):
        r.collections[v[4][v[6][0][0]]][v[6][1][0]].to_doc()


def test_rows_join_and_split_back():
    rows = [b"a", b"", b"bcd", bytes(300)]
    part = snapshot.join_rows(rows)
    assert part[0] == b"abcd" + bytes(300) and len(part[1]) == 4 * len(rows)
    assert snapshot.split_rows(part) == rows and snapshot.split_rows(snapshot.join_rows([])) == []
    for bad in ([part[0]], [part[0], part[1][:-1]], [part[0] + b"x", part[1]], "x",
                [part[0], part[1][:8] + part[1][12:16] + part[1][8:12]]):
        with pytest.raises(ValueError):
            snapshot.split_rows(bad)


def _swap_row_ends(w):
    ends = w[6][4][1]
    w[6][4][1] = ends[4:8] + ends[:4] + ends[8:]


@pytest.mark.parametrize("damage", [
    lambda w: w[6].__setitem__(4, w[6][4][0]),                      # rows not [blob, ends]
    lambda w: w[6][4].__setitem__(1, w[6][4][1][:-4]),              # an end offset missing
    lambda w: w[6][4].__setitem__(0, w[6][4][0] + b"\x00"),         # the blob longer than its rows
    lambda w: w[6].__setitem__(5, w[6][5][:-1]),                    # a digest cut short
    lambda w: w[6].__setitem__(5, [w[6][5]]),                       # digests not bytes
    lambda w: w[6].__setitem__(3, [[0, []]]),                       # an empty list of deletes
    lambda w: w[6].__setitem__(3, [[1, [0]], [0, [0]]]),            # deletes out of docs order
    lambda w: w[6].__setitem__(3, [[0, [0]], [0, [0]]]),            # a document listed twice
    lambda w: w[6].__setitem__(3, [[len(w[6][1]), [0]]]),           # a document past the columns
    lambda w: w[6].__setitem__(3, [[-1, [0]]]),                     # a negative position
    lambda w: w[6].__setitem__(3, [["0", [0]]]),                    # a position that is not an int
    lambda w: w[6].__setitem__(3, {0: [0]}),                        # deletes not a list
    lambda w: w[6][2].pop(),                                        # a live flag missing
], ids=["rows-shape", "end-missing", "blob-long", "digest-short", "digest-type", "deletes-empty",
        "deletes-order", "deletes-twice", "deletes-past", "deletes-negative", "deletes-str", "deletes-map",
        "live-missing"])
def test_a_malformed_format_6_docs_part_is_corrupt(damage):
    _refused_eagerly_and_lazily(_repacked(snapshot.dump(Sim(5).run()[0].replica), damage))


def test_row_ends_that_cut_the_rows_wrongly_cost_only_those_documents():
    # Offsets out of order still cover the blob: the rows they cut wrongly (the first two
    # and the third, which starts at the swapped offset) fail their digests at first use;
    # the other documents are whole.
    db = Sim(5).run()[0]
    w = msgpack.unpackb(zlib.decompress(snapshot.dump(db.replica)), strict_map_key=False)
    _swap_row_ends(w)
    r = Replica(b"\x01" * 32, require_signatures=False)
    snapshot.load(r, zlib.compress(msgpack.packb(w, use_bin_type=True)), lazy=True)
    names = [(w[4][ci], doc_id) for ci, doc_id in zip(w[6][0], w[6][1], strict=True)]
    for name, doc_id in names[:3]:
        with pytest.raises(ostracon.CorruptSnapshotError, match="digest"):
            r.collections[name][doc_id].to_doc()
    for name, doc_id in names[3:]:
        assert r.collections[name][doc_id].digest() == db.replica.collections[name][doc_id].digest()
