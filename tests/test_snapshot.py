"""Snapshots: dump + load gives the same replica as replaying the blocks."""

import msgpack
import pytest

import ostracon
from ostracon.core import snapshot
from ostracon.core.replica import Replica
from ostracon.storage.memory import MemoryStorage
from simulator import Sim


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
    v = msgpack.unpackb(good)
    v[5] = v[5][:-1]  # drop an info row
    with pytest.raises(ostracon.CorruptSnapshotError):
        snapshot.load(Replica(b"\x01" * 32, require_signatures=False), msgpack.packb(v))
