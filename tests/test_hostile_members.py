"""A hostile or buggy *member* (holds the space key) cannot break a space.

Scenarios of the integrity audit: far-future and maximal clocks (1), forged unsealed ranges
(2), equivocation (3), unbounded pending data (4) and poison values (5). Disk faults (6, 7)
are in tests/test_verify.py; the seeded simulator runs hostile members in
tests/test_sync_sim_hostile.py.
"""

from __future__ import annotations

import pytest

import ostracon
from ostracon.cli import main
from ostracon.core import cid as cidlib
from ostracon.core.block import KIND_BLOCK, MAX_PARENTS, Change, envelope, make_seal
from ostracon.core.clock import DEFAULT_MAX_CLOCK_SKEW_MS, MAX_WALL_MS, wall_ms
from ostracon.core.errors import ValidationError
from ostracon.core.replica import MAX_SEAL_BLOCKS, Replica
from ostracon.crypto.identity import Identity

NOW = 1_700_000_000_000


def ident(n: int) -> Identity:
    return Identity.from_seed(bytes([n]) * 32)


class Clock:
    def __init__(self, t: int = NOW) -> None:
        self.t = t

    def __call__(self) -> int:
        self.t += 1
        return self.t


def member(n: int, t: int = NOW, path=None, **kw) -> tuple[ostracon.Database, Clock]:
    clock = Clock(t)
    return ostracon.open(path, identity=ident(n), clock=clock, **kw), clock


def hostile(n: int) -> tuple[Replica, Identity]:
    """A raw replica: writes whatever it likes, bypassing every local-write check."""
    i = ident(n)
    return Replica(i.actor, require_signatures=False), i


def sealed(r: Replica, i: Identity) -> list[bytes]:
    r.seal_local(i.sign)
    return r.envelopes_since({})


def sync(src: ostracon.Database, dst: ostracon.Database) -> int:
    src.flush()
    return dst.apply_blocks(src.blocks_since(dst.version_vector()))


# --------------------------------------------------------------- 1. clocks


@pytest.mark.parametrize("far", [MAX_WALL_MS, 253402300799999, NOW + DEFAULT_MAX_CLOCK_SKEW_MS + 1000])
def test_far_future_block_is_held_and_never_drives_the_local_clock(far, tmp_path):
    evil = ident(9)
    with ostracon.open(identity=evil, clock=lambda: far) as m:
        m.collection("notes").create({"title": "from the future"}, id="n1")
        m.flush()
        envs = m.blocks_since({})
    a, clock = member(1, path=tmp_path / "a")
    assert a.apply_blocks(envs) == 0
    assert a.last_apply.held == 1 and a.collection("notes").get("n1") is None
    for k in range(50):
        a.collection("notes").create({"k": k})
    a.flush()
    stamps = [ch["hlc"] for d in a.collection("notes").scan()[0] for ch in a.collection("notes").history(d["_id"])]
    assert max(wall_ms(t) for t in stamps) <= clock.t  # never adopted the far-future time
    a.close()
    a, clock = member(1, path=tmp_path / "a")  # reopen: still writable, block still not there
    a.collection("notes").create({"after": "reopen"})
    assert a.collection("notes").get("n1") is None
    a.close()


def test_held_block_applies_once_the_receiver_clock_catches_up():
    ahead = NOW + 3_600_000
    with ostracon.open(identity=ident(9), clock=lambda: ahead) as m:
        m.collection("notes").create({"title": "early"}, id="n1")
        m.flush()
        envs = m.blocks_since({})
    a, clock = member(1)
    a.apply_blocks(envs)
    assert a.collection("notes").get("n1") is None and a.replica.held_count == 1
    clock.t = ahead - DEFAULT_MAX_CLOCK_SKEW_MS + 10
    a.tick()
    assert a.collection("notes").get("n1")["title"] == "early" and a.replica.held_count == 0


def test_every_legal_stamp_prints_in_log_and_history(tmp_path, capsys):
    path = tmp_path / "db"
    with ostracon.open(path, identity=ident(3), clock=lambda: MAX_WALL_MS) as db:
        db.collection("notes").create({"title": "last ms"}, id="n1")
    assert main(["log", str(path)]) == 0
    assert "10889-08-02T05:31:50.655Z" in capsys.readouterr().out
    assert main(["history", str(path), "notes", "n1"]) == 0
    assert "10889-08-02T05:31:50.655Z" in capsys.readouterr().out


# --------------------------------------------------------------- 2. forged unsealed ranges


def test_forged_unsealed_range_never_blocks_the_real_sealed_blocks():
    victim, _ = member(1)
    b, _ = member(2)

    def fakes(first: int) -> list[bytes]:
        # The forger claims the victim's next 14 sequence numbers with unsealed blocks.
        return [envelope(KIND_BLOCK, Change("notes", f"fake{seq}", (), 1, victim.replica.actor, seq,
                                            (NOW + seq) << 16, (("s", "title", "forged"),)).encode())
                for seq in range(first, first + 14)]
    for rnd in range(2):
        forged = fakes(14 * rnd + 1)
        b.apply_blocks(forged)
        assert b.replica.pending_count == 14
        for k in range(14):
            victim.collection("notes").create({"title": f"real {k}"}, id=f"r{rnd}-{k}")
        sync(victim, b)
        assert b.collection("notes").count() == victim.collection("notes").count() == 14 * (rnd + 1)
        assert b.replica.pending_count == 0 and b.state_hash() == victim.state_hash()
        b.apply_blocks(forged)  # arriving after the seal: contradicted, never applied
        assert b.collection("notes").get("fake3") is None and b.replica.pending_count == 0
    fresh, _ = member(3)
    fresh.apply_blocks(fakes(1) + victim.blocks_since({}))
    assert fresh.state_hash() == victim.state_hash()


# --------------------------------------------------------------- 3. equivocation


def test_equivocation_is_reported_quarantined_and_honest_edits_still_converge():
    evil = ident(9)
    rx, _ = Replica(evil.actor, require_signatures=False), None
    base, _, _ = rx.commit("notes", "n1", [("s", "title", "v0")], NOW)
    rx.seal_local(evil.sign)
    common = rx.envelopes_since({})
    # Two different signed blocks for seq 2, one to each side.
    x = Change("notes", "n1", (base,), 2, evil.actor, 2, (NOW + 10) << 16, (("s", "title", "X"),)).encode()
    y = Change("notes", "n1", (base,), 2, evil.actor, 2, (NOW + 11) << 16, (("s", "title", "Y"),)).encode()
    bundle = {}
    for name, blk in (("x", x), ("y", y)):
        seal = make_seal(evil.actor, 2, [cidlib.compute(blk)], evil.sign).encode()
        bundle[name] = [envelope(KIND_BLOCK, blk), envelope(2, seal)]
    a, _ = member(1)
    b, _ = member(2)
    a.apply_blocks(common + bundle["x"])
    b.apply_blocks(common + bundle["y"])
    # An honest member on A's side edits the note (its parent is X) and keeps writing.
    for k in range(6):
        a.collection("notes").patch("n1", {"body": f"edit {k}"})
    a.flush()
    # The equivocator's other branch reaches both sides (the relay broadcasts).
    a.apply_blocks(bundle["y"])
    [ev] = a.last_apply.equivocations
    assert ev.actor == evil.actor and ev.seq == 2
    assert set(ev.cids) == {cidlib.compute(x), cidlib.compute(y)}
    b.apply_blocks(bundle["x"])
    assert b.last_apply.equivocations[0].seq == 2
    sync(a, b)
    sync(b, a)
    assert a.state_hash() == b.state_hash() and a.version_vector() == b.version_vector()
    assert b.collection("notes").get("n1")["body"] == "edit 5"
    assert evil.actor.hex() not in a.version_vector() or a.version_vector()[evil.actor.hex()] == 1
    # A brand-new device converges too (the proof travels with the blocks).
    c, _ = member(3)
    sync(a, c)
    assert c.state_hash() == a.state_hash() and c.replica.quarantined == {evil.actor: 2}


# --------------------------------------------------------------- 4. bounded resources


def test_pending_bytes_are_bounded_not_just_counted():
    b, _ = member(2)
    forger, _ = hostile(9)
    big = "x" * 250_000
    envs = []
    for seq in range(2, 402):  # seq 1 never comes: none of these can apply
        ch = Change("notes", f"d{seq}", (), 1, forger.actor, seq, (NOW + seq) << 16, (("s", "blob", big),))
        envs.append(envelope(KIND_BLOCK, ch.encode()))
    for k in range(0, len(envs), 20):
        b.apply_blocks(envs[k:k + 20], strict=False)
    r = b.replica
    assert r._pending_bytes <= r.max_unsealed_bytes_per_actor <= r.max_pending_bytes
    # Honest traffic from someone else still gets through.
    h, _ = member(3)
    h.collection("notes").create({"title": "honest"}, id="h1")
    sync(h, b)
    assert b.collection("notes").get("h1")["title"] == "honest"


def fan(doc_cid: bytes, forker: Identity, width: int) -> list[bytes]:
    """`width` sealed changes by `forker`, each a child of `doc_cid` alone: that many heads."""
    blocks = [Change("notes", "n1", (doc_cid,), 2, forker.actor, seq, (NOW + seq) << 16,
                     (("s", f"f{seq}", seq),)).encode() for seq in range(1, width + 1)]
    envs = [envelope(KIND_BLOCK, blk) for blk in blocks]
    for first in range(1, width + 1, MAX_SEAL_BLOCKS):
        cids = [cidlib.compute(blk) for blk in blocks[first - 1:first - 1 + MAX_SEAL_BLOCKS]]
        envs.append(envelope(2, make_seal(forker.actor, first, cids, forker.sign).encode()))
    return envs


def test_a_fan_of_more_heads_than_a_block_may_merge_never_blocks_local_writes(tmp_path):
    a, _ = member(1, path=tmp_path / "a")
    notes = a.collection("notes")
    notes.create({"title": "v0"}, id="n1")
    a.flush()
    root = cidlib.parse_cid(notes.get("n1")["_heads"][0])
    width = 2 * MAX_PARENTS + 52        # two merge changes, then the write itself
    assert a.apply_blocks(fan(root, ident(9), width)) == width
    assert len(notes.get("n1")["_heads"]) == width
    with pytest.raises(ValidationError, match="block may hold"):   # refused: no merge is left behind
        notes.patch("n1", {"title": "x" * 300_000})
    assert len(notes.get("n1")["_heads"]) == width
    notes.patch("n1", {"title": "mine"})
    doc = notes.get("n1")
    assert doc["title"] == "mine" and len(doc["_heads"]) == 1 and doc["f7"] == 7
    merges = [c for c in notes.history("n1") if c["actor"] == a.actor and c["ops"] == []]
    assert [len(c["parents"]) for c in merges] == [MAX_PARENTS, MAX_PARENTS]
    # A batch on such a document merges too, and a refused batch undoes the merges with it.
    b, _ = member(2)
    sync(a, b)
    b.apply_blocks(fan(root, ident(8), width))
    before = b.collection("notes").get("n1")
    with pytest.raises(ValidationError):
        b.send_many([{"collection": "notes", "kind": "patch", "id": "n1", "doc": {"by": "b"}},
                     {"collection": "notes", "kind": "create", "doc": {"bad": float("nan")}}])
    assert b.collection("notes").get("n1") == before
    b.send_many([{"collection": "notes", "kind": "patch", "id": "n1", "doc": {"by": "b"}}])
    # Every replica converges, and the merges survive a reopen and a full verification.
    sync(b, a)
    sync(a, b)
    assert a.state_hash() == b.state_hash() and a.collection("notes").get("n1")["by"] == "b"
    a.close()
    with ostracon.open(tmp_path / "a", identity=ident(1)) as again:
        assert again.verify() == [] and again.collection("notes").get("n1")["by"] == "b"


def test_pending_seals_are_bounded():
    from ostracon.core.replica import MAX_PENDING_SEALS_PER_ACTOR
    b, _ = member(2)
    evil = ident(9)
    seals = [envelope(2, make_seal(evil.actor, 10 + k, [bytes(36)], evil.sign).encode()) for k in range(500)]
    b.apply_blocks(seals, strict=False)
    assert len(b.replica.unresolved_seals()) <= MAX_PENDING_SEALS_PER_ACTOR


def test_an_honest_batch_of_more_seals_than_may_wait_applies_in_one_call():
    # The bound is on seals still waiting for their blocks: an honest stream of many flushes
    # (each block right before its seal) resolves as it is read, so one call applies it all.
    from ostracon.core.replica import MAX_PENDING_SEALS_PER_ACTOR
    a, _ = member(1)
    b, _ = member(2)
    col = a.collection("c")
    for i in range(3 * MAX_PENDING_SEALS_PER_ACTOR):
        col.create({"i": i}, id=f"d{i}")
        a.flush()
    applied = b.apply_blocks(a.blocks_since(b.version_vector()))
    assert applied == 3 * MAX_PENDING_SEALS_PER_ACTOR and b.last_apply.rejected == []
    assert b.state_hash() == a.state_hash() and b.replica.unresolved_seals() == []


# --------------------------------------------------------------- 5. poison values


def test_counter_results_outside_the_range_are_refused_at_write_and_skipped_at_apply():
    a, _ = member(1)
    col = a.collection("c")
    col.create({"n": 2**1000, "f": 1.5e308}, id="x")
    with pytest.raises(ValidationError):
        col.increment("x", "n", 0.5)
    with pytest.raises(ValidationError):
        col.increment("x", "f", 1.5e308)
    # A hostile member skips the check; its increments do not count anywhere.
    rx, evil = hostile(9)
    a.flush()
    rx.apply_envelopes(a.blocks_since({}), trusted=True)
    head = sorted(rx.doc("c", "x").heads)
    rx.commit("c", "x", [("i", "n", 0.5), ("i", "f", 1.5e308)], NOW + 100)
    a.apply_blocks(sealed(rx, evil))
    col.create_index("n")
    assert col.get("x")["n"] == 2**1000 and col.get("x")["f"] == 1.5e308 and head
    assert [d["_id"] for d in col.find({"n": {"_gt": 0}})] == ["x"]
    assert len(a.state_hash()) == 64 and col.scan()[0] and col.history("x")


def test_huge_ints_have_one_limit_enforced_at_the_edge(tmp_path, capsys):
    a, _ = member(1, path=tmp_path / "a")
    col = a.collection("c")
    with pytest.raises(ValidationError):
        col.create({"n": 10**20_000})
    with pytest.raises(ValidationError):
        col.find({"n": 10**4301})
    col.create({"n": -(2**1023)}, id="edge")
    rx, evil = hostile(9)
    rx.commit("c", "poison", [("s", "n", 10**20_000)], NOW)
    envs = sealed(rx, evil)
    assert a.apply_blocks(envs, strict=False) == 0 and a.last_apply.rejected
    a.close()
    assert main(["export", str(tmp_path / "a")]) == 0
    assert str(-(2**1023)) in capsys.readouterr().out
