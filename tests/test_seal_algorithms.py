"""Authorship with two signature algorithms (core/actors.py, core/block.py seals, core/slots.py):
ECDSA P-256 beside Ed25519, chosen per identity, recorded in the seal, verified everywhere a
seal is, and unable to fork a seal's identity through ECDSA's malleable, randomised signatures.
"""

from __future__ import annotations

import random

import pytest

import ostracon
from ostracon import Text
from ostracon.core import actors as A
from ostracon.core import cid as cidlib
from ostracon.core.block import (
    KIND_BLOCK,
    KIND_SEAL,
    SEAL_ALG_ES256,
    Seal,
    decode_seal,
    envelope,
    make_seal,
    seal_message,
)
from ostracon.core.encoding import decode, encode_canonical
from ostracon.core.errors import CorruptBlockError, SignatureError
from ostracon.core.protocol.messages import Hello, Need
from ostracon.core.replica import Replica
from ostracon.crypto import DeterministicRandom, default_backend
from ostracon.crypto.identity import Identity
from ostracon.storage.memory import MemoryStorage

CRYPTO = default_backend()
ED = Identity.from_seed(bytes(range(32)))
P1 = Identity.from_seed(bytes(range(1, 33)), algorithm="p256")
P2 = Identity.from_seed(bytes(range(2, 34)), algorithm="p256")
W = 1_700_000_000_000


def rep(ident: Identity | None = None) -> Replica:
    return Replica(ident.actor if ident else b"\xee" * 32, verify=CRYPTO.verify_actor)


def _sealed(ident: Identity, n: int = 1) -> tuple[Replica, list[bytes], bytes]:
    r = rep(ident)
    for i in range(n):
        r.commit("t", "x", [("s", "f", i)], W + i)
    (seal,) = r.seal_local(ident.sign)
    return r, [envelope(KIND_BLOCK, r.blocks[c]) for c in r.order], seal


def _with_s(seal: bytes, s: int) -> bytes:
    m = decode(seal)
    return encode_canonical({**m, "g": m["g"][:32] + s.to_bytes(32, "big")})


def _high_s_twin(seal: bytes) -> bytes:
    """The malleated copy anybody can make of an ECDSA signature: (r, n - s)."""
    s = int.from_bytes(decode(seal)["g"][32:], "big")
    return _with_s(seal, A.P256_N - s)


# ------------------------------------------------------------------ seal form


def test_ed25519_seals_keep_their_form_and_p256_seals_record_the_algorithm():
    _, _, ed_seal = _sealed(ED)
    _, _, p_seal = _sealed(P1)
    assert set(decode(ed_seal)) == set("afglvx")
    m = decode(p_seal)
    assert set(m) == set("afgklvx") and m["k"] == SEAL_ALG_ES256 and m["a"] == P1.actor
    s = decode_seal(p_seal)
    assert s.algorithm == A.P256 and s.encode() == p_seal and decode_seal(ed_seal).algorithm == A.ED25519
    # the algorithm is inside what is signed, so a signature is bound to it
    assert b"\xa1k\xa5es256" in seal_message(P1.actor, 1, 1, bytes(32))
    assert b"\xa1k" not in seal_message(ED.actor, 1, 1, bytes(32))
    assert s.verify(CRYPTO.verify_actor)


@pytest.mark.parametrize("change", ["drop k", "k on ed25519", "other k", "k as ed25519"])
def test_a_seal_whose_algorithm_does_not_match_its_actor_is_corrupt(change):
    _, _, p_seal = _sealed(P1)
    _, _, ed_seal = _sealed(ED)
    if change == "drop k":
        m = {k: v for k, v in decode(p_seal).items() if k != "k"}
    elif change == "k on ed25519":
        m = {**decode(ed_seal), "k": SEAL_ALG_ES256}
    elif change == "other k":
        m = {**decode(p_seal), "k": "es384"}
    else:
        m = {**decode(p_seal), "k": "ed25519"}
    with pytest.raises(CorruptBlockError, match="algorithm|malformed"):
        decode_seal(encode_canonical(dict(sorted(m.items()))))


def test_high_s_and_out_of_range_signatures_are_corrupt():
    _, _, p_seal = _sealed(P1)
    for bad in (_high_s_twin(p_seal), _with_s(p_seal, 0), _with_s(p_seal, A.P256_N // 2 + 1)):
        with pytest.raises(CorruptBlockError, match="low s"):
            decode_seal(bad)
    m = decode(p_seal)
    with pytest.raises(CorruptBlockError):
        decode_seal(encode_canonical({**m, "g": m["g"][:63]}))
    with pytest.raises(CorruptBlockError, match="actor"):  # off-curve point in the actor
        decode_seal(encode_canonical({**m, "a": A.P256_PREFIX + b"\x02" + b"\xff" * 32}))


def test_make_seal_normalises_a_high_s_signer_and_refuses_garbage():
    cids = [cidlib.compute(b"x")]
    high = _high_s_twin(make_seal(P1.actor, 1, cids, P1.sign).encode())
    high_sig = decode(high)["g"]
    seal = make_seal(P1.actor, 1, cids, lambda _m: high_sig)
    assert A.p256_signature_ok(seal.signature) and seal.verify(CRYPTO.verify_actor)
    with pytest.raises(SignatureError):
        make_seal(P1.actor, 1, cids, lambda _m: bytes(64))  # r = s = 0
    with pytest.raises(SignatureError):
        make_seal(P1.actor, 1, cids, lambda _m: b"short")


# ------------------------------------------------------------------ replica


def test_p256_blocks_apply_once_their_seal_verifies():
    _, blocks, seal = _sealed(P1, 3)
    rb = rep(ED)
    res = rb.apply_envelopes(blocks + [envelope(KIND_SEAL, seal)])
    assert res.new == 3 and res.rejected == [] and rb.version_vector() == {P1.actor: 3}


@pytest.mark.parametrize("forger", ["other p256 key", "ed25519 key"])
def test_forged_p256_seals_are_refused(forger):
    ra, blocks, _ = _sealed(P1)
    signer = P2.sign if forger == "other p256 key" else ED.sign
    forged = Seal(P1.actor, 1, 1, decode_seal(_sealed(P1)[2]).digest,
                  A.p256_low_s(signer(seal_message(P1.actor, 1, 1, bytes(32)))))
    fake = make_seal(P1.actor, 1, list(ra.order), lambda m: A.p256_low_s(signer(m)))
    rb = rep()
    for bad in (forged.encode(), fake.encode()):
        res = rb.apply_envelopes(blocks + [envelope(KIND_SEAL, bad)])
        assert res.new == 0 and res.rejected and "signature" in res.rejected[0][1]


def test_a_malleated_copy_is_refused_and_proves_nothing():
    _, blocks, seal = _sealed(P1)
    rb = rep()
    rb.apply_envelopes(blocks + [envelope(KIND_SEAL, seal)])
    res = rb.apply_envelopes([envelope(KIND_SEAL, _high_s_twin(seal))], strict=False)
    assert res.rejected and "low s" in res.rejected[0][1]
    assert res.equivocations == [] and rb.quarantined == {}


def test_the_same_seal_signed_twice_is_one_seal_not_an_equivocation():
    """ECDSA is randomised: re-signing a seal gives other bytes for the same statement."""
    ra, blocks, seal = _sealed(P1, 2)
    again = make_seal(P1.actor, 1, list(ra.order), P1.sign).encode()
    assert again != seal and decode_seal(again).content == decode_seal(seal).content
    for order in ([seal, again], [again, seal]):
        rb = rep()
        res = rb.apply_envelopes(blocks + [envelope(KIND_SEAL, order[0])])
        res2 = rb.apply_envelopes([envelope(KIND_SEAL, order[1])])
        assert res.new == 2 and res2.duplicates == 1 and res2.equivocations == []
        assert rb.quarantined == {} and len(rb.seals[P1.actor]) == 1
        # both copies in one batch, before the blocks
        rc = rep()
        res = rc.apply_envelopes([envelope(KIND_SEAL, s) for s in order] + blocks)
        assert res.new == 2 and res.duplicates == 1 and rc.quarantined == {}


def test_a_p256_actor_that_signs_two_histories_is_still_quarantined():
    ra, _, _ = _sealed(P1)
    other = make_seal(P1.actor, 1, [cidlib.compute(b"else")], P1.sign).encode()
    rb = rep()
    rb.apply_envelopes(ra.envelopes_since({}))
    res = rb.apply_envelopes([envelope(KIND_SEAL, other)])
    [ev] = res.equivocations
    assert ev.actor == P1.actor and ev.seq == 1 and rb.quarantined == {P1.actor: 1}


def test_sync_messages_carry_p256_actors():
    Hello(peer=bytes(16), version_vector=((ED.actor, 1), (P1.actor, 2)), actor=P1.actor)
    Need(peer=bytes(16), request=1, ranges=((ED.actor, 1, 2), (P1.actor, 1, 1)))
    with pytest.raises(ostracon.ValidationError):
        Hello(peer=bytes(16), version_vector=((A.P256_PREFIX + b"\x02" + b"\xff" * 32, 1),))


# ------------------------------------------------------------------ databases


class Clock:
    def __init__(self, t: int = W) -> None:
        self.t = t

    def __call__(self) -> int:
        self.t += 1
        return self.t


def _open(ident: Identity, seed: int, storage=None):
    return ostracon.open(identity=ident, clock=Clock(), storage=storage, random_bytes=DeterministicRandom(seed))


def _sync(a, b) -> None:
    b.apply_blocks(a.blocks_since(b.version_vector()))
    a.apply_blocks(b.blocks_since(a.version_vector()))


def test_mixed_algorithm_dag_syncs_converges_and_verifies():
    seed = random.randrange(2**32)
    rnd = random.Random(seed)
    stage = Identity.generate(algorithm="p256")
    dbs = [_open(ED, 1), _open(P1, 2), _open(P2, 3)]
    try:
        dbs[0].collection("d").create({"n": 0, "body": Text("start")}, id="x")
        dbs[0].flush()
        for db in dbs[1:]:
            _sync(dbs[0], db)
        for step in range(30):
            db = dbs[rnd.randrange(3)]
            col = db.collection("d")
            if rnd.random() < 0.3:
                t = col.text("x", "body")
                t.insert(rnd.randrange(len(t) + 1), "ab"[step % 2])
            elif rnd.random() < 0.3 and db is dbs[1]:
                with db.as_identity(stage), db.provenance({"stage": "enrich"}):
                    col.increment("x", "n", 1)
            else:
                col.patch("x", {f"f{rnd.randrange(4)}": step})
            db.flush()
            if rnd.random() < 0.4:
                a, b = rnd.sample(dbs, 2)
                _sync(a, b)
        for _ in range(2):
            for a in dbs:
                for b in dbs:
                    if a is not b:
                        _sync(a, b)
        assert len({db.state_hash() for db in dbs}) == 1, f"seed {seed}"
        for db in dbs:
            assert db.verify() == [], f"seed {seed}"
            signers = {c["actor"] for c in db.collection("d").history("x")}
            assert {len(a) for a in signers} == {2 * A.ED25519_ACTOR_LEN, 2 * A.P256_ACTOR_LEN}, f"seed {seed}"
            assert all(c["signature"]["status"] == "verified" for c in db.collection("d").history("x"))
    finally:
        for db in dbs:
            db.close()


def test_p256_stage_identities_sign_and_blame_names_them_after_reopen():
    storage = MemoryStorage()
    db = _open(ED, 4, storage)
    col = db.collection("pages")
    col.create({"n": 0}, id="p")
    with db.as_identity(P2) as who, db.provenance({"stage": "ocr", "model": "m1"}):
        assert who == P2.actor.hex() and len(who) == 70
        col.patch("p", {"text": "x"})
    db.flush()
    assert col.blame("p")["text"]["actor"] == P2.actor.hex()
    assert [c["seq"] for c in db.commits(actor=P2.actor.hex())] == [1]
    assert db.trace("pages", "p", "text")["commit"]["meta"] == {"model": "m1", "stage": "ocr"}
    copy = MemoryStorage()
    copy.append([r for _, r in storage.records()])
    db.close()
    again = _open(ED, 5, copy)
    try:
        assert again.verify() == []
        assert all(c["signature"]["status"] == "verified" for c in again.collection("pages").history("p"))
    finally:
        again.close()


def test_a_p256_database_verifies_its_own_store_at_open(tmp_path):
    ident = Identity.generate(algorithm="p256")
    path = str(tmp_path / "db")
    db = ostracon.open(path, identity=ident)
    db.collection("c").create({"v": 1}, id="a")
    db.close()
    db = ostracon.open(path, identity=ident)  # the watermark is signed with P-256 too
    try:
        assert db.verify() == [] and db.collection("c").get("a")["v"] == 1
        [c] = db.collection("c").history("a")
        assert c["signature"] == {"status": "verified", "signer": ident.actor.hex()}
    finally:
        db.close()


def test_blocks_with_a_malformed_p256_actor_are_corrupt():
    from ostracon.core.block import Change, decode_change

    r, _, _ = _sealed(P1)
    good = r.blocks[r.order[0]]
    assert decode_change(good).actor == P1.actor
    m = decode(good)
    for bad in (A.P256_PREFIX + b"\x02" + b"\xff" * 32,       # x > p
                A.P256_PREFIX + b"\x04" + P1.actor[3:],        # not a compressed point
                b"\x80\x25" + P1.actor[2:],                    # another multicodec
                P1.actor[:34]):
        with pytest.raises(CorruptBlockError, match="actor"):
            decode_change(encode_canonical({**m, "a": bad}))
        with pytest.raises(ostracon.ValidationError):
            Change("t", "x", (), 1, bad, 1, W, ())


def test_an_observer_follows_and_verifies_a_p256_writer(tmp_path):
    ident = Identity.generate(algorithm="p256")
    path = tmp_path / "db"
    w = ostracon.open(path, identity=ident, sink_interval_ms=3_600_000)
    o = ostracon.open(path, read_only=True, follow=False)
    try:
        w.collection("c").create({"n": 1}, id="a")
        for i in range(20):   # history a snapshot folds away: compaction shrinks the store
            w.collection("c").patch("a", {"i": i})
        w.flush()
        assert o.refresh() == 21 and o.collection("c").get("a")["n"] == 1
        assert o.state_hash() == w.state_hash() and o.verify() == []
        assert o.collection("c").history("a")[0]["signature"]["status"] == "verified"
        w.compact()                       # o had read everything: no reset
        w.collection("c").create({"n": 2}, id="b")
        w.flush()
        assert o.refresh() == 1
        w.collection("c").create({"n": 3}, id="c")
        for i in range(20):
            w.collection("c").patch("c", {"i": i})
        w.compact()                       # records o has not read are compacted: o resets
        w.collection("c").create({"n": 4}, id="d")
        w.flush()
        assert o.refresh() == 22 and o.follow_status["resets"] == 1 and o.follow_status["last_error"] is None
        assert o.state_hash() == w.state_hash() and o.verify() == []
    finally:
        o.close()
        w.close()
