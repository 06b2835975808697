"""Causal delivery (core/delivery.py, on the seal slots of core/slots.py): blocks wait for
their predecessors, parents and seals; seals, forgeries and equivocation; the bounded pending
buffer; strict and lenient batches; trusted replay of our own storage."""

import pytest

from ostracon.core import cid as cidlib
from ostracon.core.block import Change, Seal, make_seal
from ostracon.core.errors import CorruptBlockError
from ostracon.core.replica import Replica
from replica_helpers import ID_A, ID_B, A, B, W, block_env, fields, rep, seal_env, writer

# ----------------------------------------------------------------------------- causal buffering

def test_child_before_parent_waits_for_the_parent():
    ra = writer()
    _, b1, _ = ra.commit("t", "x", [("s", "f", 1)], W)
    _, b2, _ = ra.commit("t", "x", [("s", "f", 2)], W + 1)
    (seal,) = ra.seal_local(ID_A.sign)
    rb = rep()
    res = rb.apply_envelopes([block_env(b2), seal_env(seal)])
    assert res.new == 0 and res.pending == 1 and fields(rb) is None
    res = rb.apply_envelopes([block_env(b1)])
    assert res.new == 2 and res.pending == 0 and res.seals == 1
    assert fields(rb) == {"f": 2}
    assert rb.heads() == ra.heads()


def test_sequence_gap_waits_for_the_missing_seq():
    ra = writer()
    _, b1, _ = ra.commit("t", "x", [("s", "f", 1)], W)
    (s1,) = ra.seal_local(ID_A.sign)
    _, b2, _ = ra.commit("t", "y", [("s", "f", 2)], W + 1)  # another document: no parent link
    (s2,) = ra.seal_local(ID_A.sign)
    rb = rep()
    res = rb.apply_envelopes([block_env(b2), seal_env(s2)])
    assert res.new == 0 and res.pending == 1 and rb.version_vector() == {}
    res = rb.apply_envelopes([block_env(b1), seal_env(s1)])
    assert res.new == 2 and res.pending == 0
    assert rb.version_vector() == {A: 2}
    assert fields(rb, "y") == {"f": 2}


def test_parent_from_another_actor():
    ra, rb, rc = writer(), rep(ID_B), rep()
    ra.commit("t", "x", [("s", "f", 1)], W)
    ra.seal_local(ID_A.sign)
    from_a = ra.envelopes_since({})
    rb.apply_envelopes(from_a)
    rb.commit("t", "x", [("s", "g", 2)], W + 1)       # child of A's block
    rb.seal_local(ID_B.sign)
    only_b = rb.envelopes_since({A: 1})
    assert len(only_b) == 2
    res = rc.apply_envelopes(only_b)
    assert res.new == 0 and res.pending == 1
    res = rc.apply_envelopes(from_a)
    assert res.new == 2 and fields(rc) == {"f": 1, "g": 2}


def test_seal_before_blocks():
    ra = writer()
    ra.commit("t", "x", [("s", "f", 1)], W)
    ra.commit("t", "x", [("s", "f", 2)], W)
    envs = ra.seal_local(ID_A.sign)
    rb = rep()
    assert rb.apply_envelopes([seal_env(envs[0])]).pending == 0
    res = rb.apply_envelopes([block_env(ra.blocks[c]) for c in ra.order])
    assert res.new == 2 and fields(rb) == {"f": 2}


def test_duplicates_are_counted_and_ignored():
    ra = writer()
    ra.commit("t", "x", [("s", "f", 1)], W)
    ra.seal_local(ID_A.sign)
    envs = ra.envelopes_since({})
    rb = rep()
    assert rb.apply_envelopes(envs + envs).new == 1
    res = rb.apply_envelopes(envs)
    assert res.new == 0 and res.duplicates == 2


# ----------------------------------------------------------------------------- seals

def test_unsigned_blocks_stay_pending():
    ra = writer()
    ra.commit("t", "x", [("s", "f", 1)], W)
    rb = rep()
    res = rb.apply_envelopes([block_env(ra.blocks[c]) for c in ra.order])
    assert res.new == 0 and res.pending == 1
    assert fields(rb) is None and rb.version_vector() == {} and rb.heads() == []
    (seal,) = ra.seal_local(ID_A.sign)
    assert rb.apply_envelopes([seal_env(seal)]).new == 1
    assert fields(rb) == {"f": 1}


def _bad_signature(seal_bytes: bytes) -> bytes:
    from ostracon.core.block import decode_seal
    s = decode_seal(seal_bytes)
    return Seal(s.actor, s.first, s.last, s.digest, bytes([s.signature[0] ^ 1]) + s.signature[1:]).encode()


def test_forged_seal_is_rejected_and_nothing_applied():
    ra = writer()
    ra.commit("t", "x", [("s", "f", 1)], W)
    (seal,) = ra.seal_local(ID_A.sign)
    blocks = [block_env(ra.blocks[c]) for c in ra.order]
    rb = rep()
    res = rb.apply_envelopes(blocks + [seal_env(_bad_signature(seal))])
    assert res.new == 0 and res.pending == 1 and len(res.rejected) == 1
    assert "signature" in res.rejected[0][1]
    # signed by somebody else, claiming to be A
    other = make_seal(A, 1, list(ra.order), ID_B.sign).encode()
    res = rb.apply_envelopes([seal_env(other)])
    assert res.new == 0 and res.rejected and fields(rb) is None
    # the real seal still works afterwards
    assert rb.apply_envelopes([seal_env(seal)]).new == 1


def test_seal_that_does_not_match_the_blocks_applies_nothing():
    ra = writer()
    ra.commit("t", "x", [("s", "f", 1)], W)
    wrong = make_seal(A, 1, [cidlib.compute(b"something else")], ID_A.sign).encode()
    rb = rep()
    res = rb.apply_envelopes([block_env(ra.blocks[ra.order[0]]), seal_env(wrong)])
    assert res.new == 0 and res.seals == 0 and fields(rb) is None and rb.version_vector() == {}
    (right,) = ra.seal_local(ID_A.sign)
    assert rb.apply_envelopes([seal_env(right)]).new == 1


def test_second_signed_seal_for_an_applied_slot_proves_equivocation_and_changes_no_state():
    ra = writer()
    cid1, _, _ = ra.commit("t", "x", [("s", "f", 1)], W)
    ra.seal_local(ID_A.sign)
    rb = rep()
    rb.apply_envelopes(ra.envelopes_since({}))
    wrong = make_seal(A, 1, [cidlib.compute(b"else")], ID_A.sign).encode()
    heads = rb.heads()
    res = rb.apply_envelopes([seal_env(wrong)])
    # Two signed seals for slot 1: proof by itself (its block need not arrive).
    [ev] = res.equivocations
    assert ev.seq == 1 and ev.cids == (cid1, None) and wrong in ev.seals
    assert res.seals == 0 and res.new == 0 and rb.quarantined == {A: 1}
    assert fields(rb) == {"f": 1} and rb.version_vector() == {} and rb.heads() == heads


def test_a_forged_block_received_first_does_not_block_the_real_one():
    """Blocks are unsigned one by one: anybody can claim (actor A, seq 1). The real block and
    seal arriving later must still apply, and the forgery must be dropped."""
    ra = writer()
    ra.commit("t", "x", [("s", "f", "real")], W)
    (seal,) = ra.seal_local(ID_A.sign)
    real = block_env(ra.blocks[ra.order[0]])
    forged = block_env(Change("t", "x", (), 1, A, 1, W << 16, (("s", "f", "forged"),)).encode())
    for order in ([forged, real, seal_env(seal)], [forged, seal_env(seal), real], [real, forged, seal_env(seal)]):
        rb = rep()
        for e in order:
            rb.apply_envelopes([e])
        assert fields(rb) == {"f": "real"}, order
        assert rb.pending_count == 0


def test_actor_equivocation_after_apply_is_reported_and_quarantined():
    ra = writer()
    cid1, _, _ = ra.commit("t", "x", [("s", "f", 1)], W)
    ra.seal_local(ID_A.sign)
    rb = rep()
    rb.apply_envelopes(ra.envelopes_since({}))
    # A signs a second, different block with the same seq
    fork = Change("t", "x", (), 1, A, 1, (W + 5) << 16, (("s", "f", 666),)).encode()
    fork_seal = make_seal(A, 1, [cidlib.compute(fork)], ID_A.sign).encode()
    res = rb.apply_envelopes([block_env(fork), seal_env(fork_seal)])
    [ev] = res.equivocations
    assert ev.actor == A and ev.seq == 1 and ev.cids == (cid1, cidlib.compute(fork))
    # Both branches are kept (as DAG members); the actor's log is frozen before slot 1.
    assert res.new == 1 and rb.quarantined == {A: 1} and rb.version_vector() == {}
    assert cidlib.compute(fork) in rb.side and fields(rb) == {"f": 666} and rb.pending_count == 0


def test_equivocation_while_both_pending_resolves_by_the_seal_in_any_order():
    one = Change("t", "x", (), 1, A, 1, W << 16, (("s", "f", 1),)).encode()
    two = Change("t", "x", (), 1, A, 1, W << 16, (("s", "f", 2),)).encode()
    seal = make_seal(A, 1, [cidlib.compute(two)], ID_A.sign).encode()
    for order in ([one, two], [two, one]):
        rb = rep()
        rb.apply_envelopes([block_env(b) for b in order])
        assert rb.pending_count == 2
        res = rb.apply_envelopes([seal_env(seal)])
        assert res.new == 1 and fields(rb) == {"f": 2} and rb.pending_count == 0


def test_pending_buffer_is_bounded():
    ra = writer()
    for i in range(3):
        ra.commit("t", f"d{i}", [("s", "f", i)], W)
    rb = rep(max_pending_blocks=2)
    res = rb.apply_envelopes([block_env(ra.blocks[c]) for c in ra.order])
    assert rb.pending_count == 2
    assert [r for _, r in res.rejected] == ["pending buffer full"]


def test_blocks_linking_to_another_document_are_rejected():
    ra = writer()
    c1, _, _ = ra.commit("t", "x", [("s", "f", 1)], W)
    bad = Change("t", "other", (c1,), 2, A, 2, (W + 1) << 16, (("s", "f", 1),)).encode()
    wrong_height = Change("t", "x", (c1,), 5, A, 2, (W + 1) << 16, (("s", "f", 1),)).encode()
    for blk in (bad, wrong_height):
        seals = [make_seal(A, 1, [c1, cidlib.compute(blk)], ID_A.sign).encode()]
        rb = rep()
        res = rb.apply_envelopes([block_env(ra.blocks[c1]), block_env(blk), seal_env(seals[0])])
        assert res.new == 1 and len(res.rejected) == 1
        assert fields(rb, "other") is None and fields(rb) == {"f": 1}


# ----------------------------------------------------------------------------- strictness

def test_strict_batch_with_garbage_applies_nothing():
    ra = writer()
    ra.commit("t", "x", [("s", "f", 1)], W)
    ra.seal_local(ID_A.sign)
    envs = ra.envelopes_since({})
    rb = rep()
    with pytest.raises(CorruptBlockError):
        rb.apply_envelopes(envs + [b"\x92\x01\xc4\x03abc"])
    with pytest.raises(CorruptBlockError):
        rb.apply_envelopes([b"garbage"] + envs)
    assert rb.pending_count == 0 and not rb.blocks and fields(rb) is None


def test_non_strict_reports_and_skips_garbage():
    ra = writer()
    ra.commit("t", "x", [("s", "f", 1)], W)
    ra.seal_local(ID_A.sign)
    envs = ra.envelopes_since({})
    rb = rep()
    res = rb.apply_envelopes([b"garbage"] + envs, strict=False)
    assert res.new == 1 and res.rejected[0][0] == 0


# ----------------------------------------------------------------------------- sync support

def test_trusted_replay_needs_no_seals():
    ra = writer()
    for i in range(3):
        ra.commit("t", "x", [("s", "f", i)], W + i)
    blocks = [block_env(ra.blocks[c]) for c in ra.order]
    again = rep(ID_A)
    res = again.apply_envelopes(blocks, trusted=True)
    assert res.new == 3 and fields(again) == {"f": 2}
    # a replay of our own log continues the sequence and the clock
    c, data, _ = again.commit("t", "x", [("s", "f", 9)], 0)
    from ostracon.core.block import decode_change
    ch = decode_change(data)
    assert ch.seq == 4 and ch.hlc > (W + 2) << 16
    # untrusted replay of the same blocks waits for seals
    assert rep().apply_envelopes(blocks).new == 0


def test_repeated_batches_do_not_grow_internal_waiting_lists():
    ra = writer()
    ra.commit("t", "x", [("s", "f", 1)], W)
    ra.commit("t", "x", [("s", "f", 2)], W)
    ra.seal_local(ID_A.sign)
    envs = ra.envelopes_since({})
    rb = rep()
    rb.apply_envelopes([envs[1], envs[2]])  # child + seal: waits for the first block
    for _ in range(50):
        rb.apply_envelopes([])
    assert sum(len(v) for v in rb._waiting_parent.values()) <= 1
    rb.apply_envelopes([envs[0]])
    assert fields(rb) == {"f": 2} and rb.pending_count == 0


def test_without_required_signatures_blocks_apply_unsealed():
    ra = writer()
    ra.commit("t", "x", [("s", "f", 1)], W)
    rb = Replica(B, require_signatures=False)
    assert rb.apply_envelopes([block_env(ra.blocks[ra.order[0]])]).new == 1


def test_several_forgeries_over_a_sealed_range_are_sorted_out():
    ra = writer()
    ra.commit("t", "x", [("s", "f", 1)], W)
    ra.commit("t", "y", [("s", "f", 2)], W)
    (seal,) = ra.seal_local(ID_A.sign)
    forged = [block_env(Change("t", d, (), 1, A, seq, W << 16, (("s", "f", f"fake{k}"),)).encode())
              for seq, d in ((1, "x"), (2, "y")) for k in range(2)]
    real = [block_env(ra.blocks[c]) for c in ra.order]
    rb = rep()
    rb.apply_envelopes(forged)
    res = rb.apply_envelopes(real + [seal_env(seal)])
    assert res.new == 2 and rb.pending_count == 0
    assert fields(rb, "x") == {"f": 1} and fields(rb, "y") == {"f": 2}
