"""Replication between databases (db/replication.py): blocks_since, apply_blocks, version
vectors, state hashes, and merged changes reaching the feed."""

import pytest

from db_helpers import ID_A, ID_B, open_db
from ostracon import CorruptBlockError, ValidationError


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


def test_remote_changes_reach_the_feed():
    a, b = open_db(ID_A), open_db(ID_B, seed=2)
    a.collection("t").create({"v": 1}, id="d")
    a.flush()
    b.apply_blocks(a.blocks_since({}))
    evs, _ = b.changes()
    assert [(e.collection, e.id, e.version) for e in evs] == [("t", "d", 1)]
