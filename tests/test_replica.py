"""The replica engine (core/replica.py): local writes and seals, version vectors and
envelopes for sync. Delivery of received blocks: test_delivery.py."""

import pytest

from ostracon.core.block import MAX_BLOCK_BYTES
from ostracon.core.errors import ValidationError
from ostracon.core.replica import Replica
from replica_helpers import CRYPTO, ID_A, ID_B, A, W, kinds, rep, writer

# ----------------------------------------------------------------------------- sync support

def test_version_vector_and_envelopes_since_offer_only_sealed_blocks():
    ra = writer()
    for i in range(3):
        ra.commit("t", "x", [("s", "f", i)], W + i)
    assert ra.version_vector() == {} and ra.envelopes_since({}) == []
    assert ra.unsealed_count() == 3
    ra.seal_local(ID_A.sign)
    for i in range(2):
        ra.commit("t", "y", [("s", "f", i)], W + 10 + i)
    assert ra.version_vector() == {A: 3} and ra.seq_of(A) == 5
    envs = ra.envelopes_since({})
    assert kinds(envs) == [1, 1, 1, 2]
    assert kinds(ra.envelopes_since({A: 2})) == [1, 2]
    assert ra.envelopes_since({A: 3}) == []
    ra.seal_local(ID_A.sign)
    # The seal ending at the requester's tip comes first (proof if the requester logged another block there).
    assert kinds(ra.envelopes_since({A: 3})) == [2, 1, 1, 2]
    assert kinds(ra.envelopes_since({})) == [1, 1, 1, 2, 1, 1, 2]


def test_relaying_through_a_third_replica():
    ra, rb, rc = writer(), rep(ID_B), rep()
    for i in range(4):
        ra.commit("t", f"d{i % 2}", [("i", "n", 1)], W + i)
        if i % 2:
            ra.seal_local(ID_A.sign)
    rb.apply_envelopes(ra.envelopes_since(rb.version_vector()))
    rc.apply_envelopes(rb.envelopes_since(rc.version_vector()))
    assert rc.version_vector() == rb.version_vector() == ra.version_vector() == {A: 4}
    assert rc.heads() == ra.heads()
    assert rb.envelopes_since(rc.version_vector()) == []


def test_constructor_validation():
    with pytest.raises(ValidationError):
        Replica(b"short", verify=CRYPTO.ed25519_verify)
    with pytest.raises(ValidationError):
        Replica(A)  # signatures required but nothing to verify them with
    Replica(A, require_signatures=False)


def test_oversized_local_write_is_refused_and_leaves_no_trace():
    ra = writer()
    with pytest.raises(ValidationError):
        ra.commit("t", "x", [("s", "f", "x" * MAX_BLOCK_BYTES)], W)
    assert ra.doc("t", "x") is None and ra.seq_of(A) == 0 and ra.heads() == []
    ra.commit("t", "x", [("s", "f", "x" * (MAX_BLOCK_BYTES - 200))], W)
    ra.seal_local(ID_A.sign)
    assert rep().apply_envelopes(ra.envelopes_since({})).new == 1
