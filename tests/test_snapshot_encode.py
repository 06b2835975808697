"""Snapshot encoding in steps (ostracon.core.snapshot_encode): any step size gives the bytes of
the one-shot `snapshot.dump`, and a replica that changes between steps (merges, local writes,
text edits, rolled-back batches, new documents and collections) still gives the snapshot of
the cut."""

from __future__ import annotations

import random
import zlib

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ostracon
from ostracon import Text
from ostracon.core import snapshot
from ostracon.core.encoding import _default, _ext_hook
from ostracon.core.replica import Replica
from ostracon.core.snapshot_encode import SnapshotEncoder
from ostracon.crypto import DeterministicRandom
from ostracon.crypto.identity import Identity
from simulator import Sim

T0 = 1_700_000_000_000


class Clock:
    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> int:
        self.t += 7
        return self.t


def _db(seed: int, name: bytes = b"a") -> ostracon.Database:
    ident = Identity.from_seed(bytes([seed % 251]) * 31 + name[:1])
    return ostracon.open(identity=ident, clock=Clock(), random_bytes=DeterministicRandom(seed))


def _digests(r: Replica) -> dict:
    return {(name, doc_id): d.digest() for name, docs in r.collections.items() for doc_id, d in docs.items()}


def _stepped(replica: Replica, step_docs: int) -> tuple[bytes, int]:
    enc = SnapshotEncoder(replica, step_docs=step_docs)
    steps = 1
    while not enc.step():
        steps += 1
    assert enc.data is not None and replica.before_change is None
    return enc.data, steps


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), step_docs=st.integers(1, 64))
def test_any_step_size_gives_the_one_shot_bytes(seed, step_docs):
    db = Sim(seed, replicas=3, steps=40).run()[0]
    data, _ = _stepped(db.replica, step_docs)
    assert data == snapshot.dump(db.replica), f"seed {seed}, step_docs {step_docs}"
    # One packb of the whole structure and one zlib.compress of it: the one-shot encoding.
    raw = zlib.decompress(data)
    parts = msgpack.unpackb(raw, raw=False, strict_map_key=False, ext_hook=_ext_hook)
    assert msgpack.packb(parts, use_bin_type=True, default=_default) == raw, f"seed {seed}, step_docs {step_docs}"
    assert zlib.compress(raw, snapshot.SNAPSHOT_ZLIB_LEVEL) == data, f"seed {seed}, step_docs {step_docs}"


@settings(max_examples=60, deadline=None)
@given(raw=st.binary(max_size=20_000), cuts=st.lists(st.integers(1, 5000), max_size=12))
def test_a_zlib_stream_does_not_depend_on_how_its_input_is_split(raw, cuts):
    """What the encoder relies on to compress in steps (SNAPSHOT_ZLIB_LEVEL)."""
    z = zlib.compressobj(snapshot.SNAPSHOT_ZLIB_LEVEL)
    out, at = [], 0
    for n in cuts:
        out.append(z.compress(raw[at:at + n]))
        at += n
    out += [z.compress(raw[at:]), z.flush()]
    assert b"".join(out) == zlib.compress(raw, snapshot.SNAPSHOT_ZLIB_LEVEL)


def test_the_snapshot_loads_into_the_same_state():
    db = Sim(3).run()[0]
    data, steps = _stepped(db.replica, 5)
    assert steps > 3
    r = Replica(db.replica.actor, verify=db.crypto.ed25519_verify)
    snapshot.load(r, data)
    assert r.order == db.replica.order and _digests(r) == _digests(db.replica)


def _populate(db, rng: random.Random) -> None:
    notes, tags = db.collection("notes"), db.collection("tags")
    for i in range(40):
        notes.create({"n": i, "title": f"t{i}", "body": Text("x" * rng.randrange(1, 20))}, id=f"n{i:02}")
        if i % 3 == 0:
            tags.create({"name": f"g{i}", "votes": 0}, id=f"g{i:02}")
    for i in range(0, 40, 7):
        notes.delete(f"n{i:02}")
    for i in range(0, 40, 3):
        tags.increment(f"g{i:02}", "votes", rng.randrange(1, 5))
    db.flush()


def _mutate(db, other, rng: random.Random, k: int) -> None:
    """One change of the kinds that reach a replica between two encoding steps."""
    notes = db.collection("notes")
    kind = rng.randrange(7)
    doc = f"n{rng.randrange(40):02}"
    live = notes.get(doc) is not None
    if kind == 0 and live:
        notes.patch(doc, {"n": -k, "extra": {"k": k}})
    elif kind == 1 and live:
        body = notes.text(doc, "body")
        body.insert(rng.randrange(len(body) + 1), "ins")
        if rng.random() < 0.5:
            db.flush_text()
    elif kind == 2:
        db.collection(f"new{k % 3}").create({"k": k})
    elif kind == 3:
        db.collection("tags").increment(f"g{rng.randrange(0, 40, 3):02}", "votes", 1)
    elif kind == 4:
        # A batch refused half-way is rolled back: blocks, logs and document states.
        with pytest.raises(ostracon.OstraconError):
            db.send_many([{"collection": "notes", "kind": "patch", "id": doc, "fields": {"n": k}},
                          {"collection": "notes", "kind": "create", "id": "n01", "doc": {"dup": True}}])
    elif kind == 5:
        # A remote peer's changes to documents of the cut: merged through apply_blocks.
        o = other.collection("notes")
        if o.get(doc) is not None:
            o.patch(doc, {"remote": k})
        other.flush()
        db.apply_blocks(other.blocks_since(db.version_vector()))
    elif live:
        notes.delete(doc)


@pytest.mark.parametrize("seed", range(8))
def test_changes_between_steps_leave_the_snapshot_of_the_cut(seed):
    rng = random.Random(seed)
    db, other = _db(seed), _db(seed, b"b")
    _populate(db, rng)
    other.apply_blocks(db.blocks_since({}))
    db.apply_blocks(other.blocks_since({}))
    db.flush()
    expected = snapshot.dump(db.replica)
    cut = len(db.replica.order)
    enc = SnapshotEncoder(db.replica, step_docs=rng.choice([1, 2, 3, 7]))
    k = 0
    while not enc.step():
        for _ in range(rng.randrange(3)):
            k += 1
            _mutate(db, other, rng, k)
    assert enc.cut == cut and len(db.replica.order) > cut, f"seed {seed}: nothing changed meanwhile"
    assert enc.data == expected, f"seed {seed}: the snapshot is not that of the cut"
    # The replica itself is untouched by the encoding: its own snapshot round-trips.
    r = Replica(db.replica.actor, verify=db.crypto.ed25519_verify)
    snapshot.load(r, snapshot.dump(db.replica))
    assert _digests(r) == _digests(db.replica), f"seed {seed}"


def test_one_encoder_at_a_time_and_close_releases_the_replica():
    db = _db(1)
    db.collection("c").create({"a": 1})
    enc = SnapshotEncoder(db.replica, step_docs=1)
    with pytest.raises(RuntimeError):
        SnapshotEncoder(db.replica)
    assert snapshot.dump(db.replica)  # one-shot dumps do not watch: they run beside it
    enc.close()
    assert db.replica.before_change is None
    with pytest.raises(ValueError):
        SnapshotEncoder(db.replica, step_docs=0)
    SnapshotEncoder(db.replica).run()


def test_the_pinned_snapshot_payloads_are_made_natively_at_every_step_size():
    # tests/vectors/snapshot.json: the same file is checked in Pyodide (e2e/runtime_checks.py).
    import importlib.util
    import os

    here = os.path.join(os.path.dirname(__file__), "vectors")
    spec = importlib.util.spec_from_file_location("ostracon_snapshot_vectors",
                                                  os.path.join(here, "snapshot_replicas.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    got = mod.check(os.path.join(here, mod.VECTOR_FILE))
    assert got["snapshot_format"] == snapshot.SNAPSHOT_FORMAT and len(got["replicas"]) == 4
