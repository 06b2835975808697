"""Text fields in the document model: the text op in blocks, merge in DocState, snapshots."""

from __future__ import annotations

import random
import zlib

import msgpack
import pytest

from ostracon.core import snapshot, textcodec
from ostracon.core.block import KIND_BLOCK, KIND_SEAL, OP_TEXT, decode_change, envelope
from ostracon.core.errors import CorruptBlockError
from ostracon.core.replica import Replica
from ostracon.core.text import TextCRDT
from ostracon.crypto import default_backend
from ostracon.crypto.identity import Identity

CRYPTO = default_backend()
IDS = [Identity.from_seed(bytes([i]) * 32) for i in range(3)]
W = 1_700_000_000_000


def rep(ident) -> Replica:
    return Replica(ident.actor, verify=CRYPTO.ed25519_verify)


def edit(r: Replica, ident, doc: str, fn, wall: int):
    """Run `fn(text)` on the doc's body as a local edit and commit it as one block."""
    state = r.doc("notes", doc)
    t = state.local_text("body", ident.actor) if state is not None else TextCRDT(ident.actor)
    fn(t)
    if state is not None:
        state.touch()
    return r.commit("notes", doc, [(OP_TEXT, "body", t.take_batch())], wall)


def sync(src: Replica, src_id, dst: Replica) -> None:
    src.seal_local(src_id.sign)
    envs = [envelope(KIND_BLOCK, src.blocks[c]) for c in src.order]
    envs += [envelope(KIND_SEAL, s) for a in src.seals for _, _, s in src.seals[a]]
    res = dst.apply_envelopes(envs)
    assert not res.rejected, res.rejected


def body(r: Replica, doc="n1"):
    return r.doc("notes", doc).user_fields().get("body")


def test_two_devices_typing_at_the_end_keep_both_texts():
    a, b = rep(IDS[0]), rep(IDS[1])
    edit(a, IDS[0], "n1", lambda t: t.insert(0, "Shopping:"), W)
    sync(a, IDS[0], b)
    edit(a, IDS[0], "n1", lambda t: t.insert(len(t), " milk"), W + 10)
    edit(b, IDS[1], "n1", lambda t: t.insert(len(t), " eggs"), W + 11)
    sync(a, IDS[0], b)
    sync(b, IDS[1], a)
    assert body(a) == body(b) == "Shopping: milk eggs"
    assert a.doc("notes", "n1").digest() == b.doc("notes", "n1").digest()
    assert a.doc("notes", "n1").text_blame("body") == [
        (IDS[0].actor, "Shopping: milk"), (IDS[1].actor, " eggs")]


def test_set_after_text_replaces_it_and_a_later_text_edit_shows_the_text_again():
    a, b = rep(IDS[0]), rep(IDS[1])
    edit(a, IDS[0], "n1", lambda t: t.insert(0, "draft"), W)
    sync(a, IDS[0], b)
    b.commit("notes", "n1", [("s", "body", "plain")], W + 5)
    sync(b, IDS[1], a)
    assert body(a) == body(b) == "plain"
    assert not a.doc("notes", "n1").is_text("body")
    edit(a, IDS[0], "n1", lambda t: t.insert(5, "!"), W + 9)
    sync(a, IDS[0], b)
    assert body(a) == body(b) == "draft!"


def test_own_block_is_not_applied_twice():
    a = rep(IDS[0])
    edit(a, IDS[0], "n1", lambda t: t.insert(0, "abc"), W)
    state = a.doc("notes", "n1")
    t = state.local_text("body", IDS[0].actor)
    t.insert(3, "def")
    state.touch()
    assert body(a) == "abcdef"           # local edits show before their block exists
    a.commit("notes", "n1", [(OP_TEXT, "body", t.take_batch())], W + 1)
    assert body(a) == "abcdef"


@pytest.mark.parametrize("seed", range(8))
def test_any_delivery_order_gives_the_same_state_and_snapshot(seed):
    rng = random.Random(seed)
    reps = [rep(i) for i in IDS]
    edit(reps[0], IDS[0], "n1", lambda t: t.insert(0, "base text"), W)
    for r in reps[1:]:
        sync(reps[0], IDS[0], r)
    for k in range(12):
        i = rng.randrange(3)

        def fn(t, rng=rng):
            if len(t) and rng.random() < 0.3:
                p = rng.randrange(len(t))
                t.delete(p, 1)
            else:
                t.insert(rng.randint(0, len(t)), rng.choice(["x", "yy", "😀", "e\u0301"]))
        edit(reps[i], IDS[i], "n1", fn, W + 10 + k)
    for i in range(3):
        for j in rng.sample(range(3), 3):
            if i != j:
                sync(reps[j], IDS[j], reps[i])
    for i in range(3):
        for j in range(3):
            if i != j:
                sync(reps[j], IDS[j], reps[i])
    docs = [r.doc("notes", "n1") for r in reps]
    assert len({d.digest() for d in docs}) == 1, f"seed={seed}"
    assert len({textcodec.encode_state(d.text("body")) for d in docs}) == 1, f"seed={seed}"
    # A replica rebuilt from a snapshot has the same state without replaying the blocks.
    r2 = rep(IDS[0])
    snapshot.load(r2, snapshot.dump(reps[0]))
    d2 = r2.doc("notes", "n1")
    assert d2.to_doc() == docs[0].to_doc() and d2.digest() == docs[0].digest()
    assert textcodec.encode_state(d2.text("body")) == textcodec.encode_state(docs[0].text("body"))


def test_blocks_with_malformed_text_ops_are_corrupt():
    a = rep(IDS[0])
    _, data, _ = edit(a, IDS[0], "n1", lambda t: t.insert(0, "abc"), W)
    ch = decode_change(data)
    assert ch.ops[0][0] == OP_TEXT and ch.ops[0][2] == [[], [0, 1, 0, 3], "abc"]
    m = msgpack.unpackb(data)
    for bad in ([[], [0, 1, 0, 4], "abc"], [[IDS[0].actor], [0, 1, 0, 3], "abc"], "abc", None,
                [[], [0, 1, 0, 3], "abc", 1]):
        m["o"] = [["t", "body", bad]]
        with pytest.raises(CorruptBlockError):
            decode_change(msgpack.packb(m, use_bin_type=True))
    m["o"] = [["t", "_body", [[], [0, 1, 0, 3], "abc"]]]
    with pytest.raises(CorruptBlockError):
        decode_change(msgpack.packb(m, use_bin_type=True))
    m["o"] = [["t", "body", [[], [0, 1, 0, 3], "abc"]], ["s", "body", 1]]
    with pytest.raises(CorruptBlockError):
        decode_change(msgpack.packb(m, use_bin_type=True))


def test_snapshot_with_damaged_text_state_is_corrupt():
    from ostracon.core.errors import CorruptSnapshotError
    a = rep(IDS[0])
    edit(a, IDS[0], "n1", lambda t: t.insert(0, "abc"), W)
    v = msgpack.unpackb(zlib.decompress(snapshot.dump(a)), strict_map_key=False)
    row = msgpack.unpackb(snapshot.split_rows(v[6][4])[0], strict_map_key=False)  # the document's row
    row[12][0][1] = b"\x93\x01"
    packed = msgpack.packb(row, use_bin_type=True)
    v[6][4] = snapshot.join_rows([packed])
    # Digests that match the damaged row: the text state's own check is what must refuse it.
    v[6][5] = snapshot.row_digest(packed)
    v[8]["index"] = snapshot.index_digest(v[2], v[3], v[4], v[5], v[6], v[7], v[8])
    with pytest.raises(CorruptSnapshotError) as got:
        snapshot.load(rep(IDS[0]), zlib.compress(msgpack.packb(v, use_bin_type=True)))
    assert "digest" not in str(got.value)
    # Loaded lazily, the damage is found when the document is first used, typed the same.
    lazy = rep(IDS[0])
    snapshot.load(lazy, zlib.compress(msgpack.packb(v, use_bin_type=True)), lazy=True)
    with pytest.raises(CorruptSnapshotError) as got:
        lazy.doc(*next((n, i) for n, docs in lazy.collections.items() for i in docs)).user_fields()
    assert "digest" not in str(got.value)
