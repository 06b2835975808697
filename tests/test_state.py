"""CRDT document state (core/state.py): merge rules and order independence."""

import hashlib
import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ostracon.core import cid as cidlib
from ostracon.core.block import Change
from ostracon.core.encoding import encode_canonical
from ostracon.core.replica import Replica
from ostracon.core.state import DocState, flat_doc
from ostracon.crypto import default_backend
from ostracon.crypto.identity import Identity

CRYPTO = default_backend()
IDS = [Identity.from_seed(bytes([i + 1]) * 32) for i in range(3)]
A, B, C = (sorted(i.actor for i in IDS))  # A < B < C bytewise
W = 1_700_000_000_000


def stamp(wall, counter=0):
    return (wall << 16) | counter


# ----------------------------------------------------------------------------- unit helpers

class Doc:
    """A DocState fed hand-made concurrent changes (all roots: no causal constraints)."""

    def __init__(self):
        self.state = DocState("c", "d")
        self.seq = {}

    def change(self, actor, t, *ops, parents=()):
        self.seq[actor] = self.seq.get(actor, 0) + 1
        ch = Change("c", "d", tuple(parents), 1 if not parents else 2, actor, self.seq[actor], t, tuple(ops))
        return cidlib.compute(ch.encode()), ch


def fields_for(changes, order):
    st_ = DocState("c", "d")
    for i in order:
        st_.apply(*changes[i])
    return st_


def all_orders_agree(changes):
    """Apply concurrent changes in every order; return the one visible result (asserting agreement)."""
    results = set()
    out = None
    for order in itertools.permutations(range(len(changes))):
        s = fields_for(changes, order)
        results.add((encode_canonical(s.user_fields()), s.deleted, s.digest()))
        out = s
    assert len(results) == 1, f"{len(results)} different results depending on order"
    return out


# ----------------------------------------------------------------------------- LWW

def test_higher_clock_wins_in_any_order():
    d = Doc()
    chs = [d.change(A, stamp(W + 2), ("s", "f", "late")), d.change(B, stamp(W + 1), ("s", "f", "early"))]
    assert all_orders_agree(chs).user_fields() == {"f": "late"}


def test_equal_clock_larger_actor_wins():
    d = Doc()
    chs = [d.change(A, stamp(W), ("s", "f", "from A")), d.change(C, stamp(W), ("s", "f", "from C")),
           d.change(B, stamp(W), ("s", "f", "from B"))]
    assert all_orders_agree(chs).user_fields() == {"f": "from C"}


def test_equal_clock_and_actor_larger_cid_wins():
    d = Doc()
    chs = [d.change(A, stamp(W), ("s", "f", v)) for v in ("x", "y", "z")]
    winner = max(chs, key=lambda c: c[0])
    assert all_orders_agree(chs).user_fields() == {"f": winner[1].ops[0][2]}


def test_unset_is_an_lww_write():
    d = Doc()
    chs = [d.change(A, stamp(W), ("s", "f", 1), ("s", "g", 2)), d.change(B, stamp(W + 1), ("u", "f")),
           d.change(C, stamp(W - 1), ("u", "g"))]
    assert all_orders_agree(chs).user_fields() == {"g": 2}


def test_independent_fields_merge():
    d = Doc()
    chs = [d.change(A, stamp(W), ("s", "a", 1)), d.change(B, stamp(W), ("s", "b", 2)),
           d.change(C, stamp(W), ("s", "c", [3]))]
    assert all_orders_agree(chs).user_fields() == {"a": 1, "b": 2, "c": [3]}


def test_values_compare_by_stamp_not_by_value():
    d = Doc()
    chs = [d.change(A, stamp(W + 1), ("s", "f", 0)), d.change(C, stamp(W), ("s", "f", 10**30))]
    assert all_orders_agree(chs).user_fields() == {"f": 0}


# ----------------------------------------------------------------------------- delete wins

def causal_orders_agree(changes):
    """Like all_orders_agree, over every order that delivers parents before children."""
    results = set()
    out = None
    for order in itertools.permutations(range(len(changes))):
        seen = set()
        ok = True
        for i in order:
            if not set(changes[i][1].parents) <= seen:
                ok = False
                break
            seen.add(changes[i][0])
        if not ok:
            continue
        s = fields_for(changes, order)
        results.add((encode_canonical(s.user_fields()), s.deleted, s.digest()))
        out = s
    assert out is not None and len(results) == 1, f"{len(results)} different results depending on order"
    return out


def test_delete_hides_the_writes_it_saw():
    d = Doc()
    c0 = d.change(A, stamp(W), ("s", "f", 1), ("s", "g", 1))
    x = d.change(B, stamp(W + 5), ("x",), parents=[c0[0]])
    s = causal_orders_agree([c0, x])
    assert s.deleted and s.user_fields() == {} and s.blame() == {}


def test_delete_wins_against_a_concurrent_later_stamped_edit():
    # The edit saw the document (parent c0) but not the delete: it is hidden, whatever its clock.
    d = Doc()
    c0 = d.change(A, stamp(W), ("s", "title", "t"), ("s", "body", "b"), ("i", "n", 5))
    x = d.change(A, stamp(W + 1), ("x",), parents=[c0[0]])
    e = d.change(B, stamp(W + 1000), ("s", "done", True), ("i", "n", 1), parents=[c0[0]])
    s = causal_orders_agree([c0, x, e])
    assert s.deleted and s.user_fields() == {}


def test_write_after_the_delete_starts_a_fresh_document():
    d = Doc()
    c0 = d.change(A, stamp(W), ("s", "f", 1), ("s", "g", 1), ("i", "n", 5))
    x = d.change(B, stamp(W + 5), ("x",), parents=[c0[0]])
    again = d.change(C, stamp(W + 9), ("s", "g", 2), ("i", "n", 1), parents=[x[0]])
    s = causal_orders_agree([c0, x, again])
    assert not s.deleted and s.user_fields() == {"g": 2, "n": 1}


def test_re_created_document_loses_to_a_concurrent_delete():
    # A deletes and re-creates; B deletes concurrently: B's delete never saw the re-creation.
    d = Doc()
    c0 = d.change(A, stamp(W), ("s", "f", 1))
    xa = d.change(A, stamp(W + 1), ("x",), parents=[c0[0]])
    again = d.change(A, stamp(W + 2), ("s", "f", 2), parents=[xa[0]])
    xb = d.change(B, stamp(W + 1), ("x",), parents=[c0[0]])
    s = causal_orders_agree([c0, xa, again, xb])
    assert s.deleted and s.user_fields() == {}
    # Whoever saw both deletes saw a deleted document: what they write next starts afresh.
    both = d.change(C, stamp(W + 3), ("s", "h", 3), parents=sorted([again[0], xb[0]]))
    s = causal_orders_agree([c0, xa, again, xb, both])
    assert not s.deleted and s.user_fields() == {"h": 3}


def test_concurrent_edits_after_a_delete_merge_normally():
    d = Doc()
    c0 = d.change(A, stamp(W), ("s", "f", 1))
    x = d.change(A, stamp(W + 1), ("x",), parents=[c0[0]])
    r = d.change(A, stamp(W + 2), ("s", "f", 2), ("s", "g", 2), parents=[x[0]])
    e1 = d.change(B, stamp(W + 3), ("s", "g", 3), ("i", "n", 1), parents=[r[0]])
    e2 = d.change(C, stamp(W + 4), ("s", "h", 4), ("i", "n", 2), parents=[r[0]])
    s = causal_orders_agree([c0, x, r, e1, e2])
    assert s.user_fields() == {"f": 2, "g": 3, "h": 4, "n": 3}
    assert s.blame()["n"][2] == e2[0] and s.blame()["f"][2] == r[0]


def test_empty_write_after_delete_revives_an_empty_document():
    d = Doc()
    c0 = d.change(A, stamp(W), ("s", "f", 1))
    x = d.change(B, stamp(W + 5), ("x",), parents=[c0[0]])
    e = d.change(C, stamp(W + 6), parents=[x[0]])
    s = causal_orders_agree([c0, x, e])
    assert not s.deleted and s.user_fields() == {}


def test_concurrent_roots_with_a_delete_are_hidden():
    d = Doc()
    chs = [d.change(A, stamp(W), ("s", "f", 1)), d.change(B, stamp(W + 5), ("x",)),
           d.change(C, stamp(W + 9), ("s", "g", 2))]
    s = all_orders_agree(chs)
    assert s.deleted and s.user_fields() == {}


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_visible_state_is_always_one_editors_view_plus_concurrent_edits(data):
    """Random DAGs of writes and deletes: whatever is visible never contains a value written
    before a delete the value's writer had not seen (no fragment), in any causal order."""
    d = Doc()
    changes = []
    for k in range(data.draw(st.integers(2, 7), label="n")):
        parents = sorted(set(data.draw(st.lists(st.sampled_from([c[0] for c in changes]), max_size=2),
                                       label=f"parents{k}"))) if changes else []
        actor = data.draw(st.sampled_from([A, B, C]), label=f"actor{k}")
        if data.draw(st.booleans(), label=f"delete{k}") and changes:
            ch = d.change(actor, stamp(W + k), ("x",), parents=parents)
        else:
            ch = d.change(actor, stamp(W + k), ("s", f"f{k}", k), ("i", "n", 1), parents=parents)
        changes.append(ch)
    order = list(range(len(changes)))
    s = fields_for(changes, order)
    rev = fields_for(changes, data.draw(st.permutations(order).filter(
        lambda o: all(set(changes[i][1].parents) <= {changes[j][0] for j in o[:o.index(i)]} for i in o)),
        label="order"))
    assert s.digest() == rev.digest()
    # Ancestors of each change, to check the rule directly.
    anc: dict = {}
    for c, ch in changes:
        a = set(ch.parents)
        for p in ch.parents:
            a |= anc[p]
        anc[c] = a
    deletes = [c for c, ch in changes if ch.ops and ch.ops[0][0] == "x"]
    visible = [k for k, (c, ch) in enumerate(changes)
               if not (ch.ops and ch.ops[0][0] == "x") and all(x in anc[c] for x in deletes)]
    assert s.user_fields() == ({f"f{k}": k for k in visible} | ({"n": len(visible)} if visible else {}))
    assert s.deleted == (bool(deletes) and not visible)


# ----------------------------------------------------------------------------- counters

def test_concurrent_increments_sum():
    d = Doc()
    chs = [d.change(a, stamp(W), ("i", "n", k)) for a, k in ((A, 1), (B, 2), (C, 3))]
    chs.append(d.change(A, stamp(W + 1), ("i", "n", 10)))
    assert all_orders_agree(chs).user_fields() == {"n": 16}


def test_increments_start_from_the_numeric_base():
    d = Doc()
    chs = [d.change(A, stamp(W), ("s", "n", 100)), d.change(B, stamp(W + 1), ("i", "n", 5)),
           d.change(C, stamp(W + 2), ("i", "n", -1))]
    assert all_orders_agree(chs).user_fields() == {"n": 104}


def test_set_after_increments_resets():
    d = Doc()
    chs = [d.change(A, stamp(W), ("i", "n", 5)), d.change(B, stamp(W + 1), ("i", "n", 7)),
           d.change(C, stamp(W + 2), ("s", "n", 0)), d.change(A, stamp(W + 3), ("i", "n", 2))]
    assert all_orders_agree(chs).user_fields() == {"n": 2}


def test_increments_on_a_non_numeric_base_are_ignored():
    d = Doc()
    chs = [d.change(A, stamp(W), ("s", "n", "text")), d.change(B, stamp(W + 1), ("i", "n", 5))]
    assert all_orders_agree(chs).user_fields() == {"n": "text"}
    d = Doc()
    chs = [d.change(A, stamp(W), ("s", "n", True)), d.change(B, stamp(W + 1), ("i", "n", 5))]
    assert all_orders_agree(chs).user_fields() == {"n": True}  # bool is not a number here


def test_unset_after_increments_removes_then_later_increments_count_from_zero():
    d = Doc()
    chs = [d.change(A, stamp(W), ("i", "n", 5)), d.change(B, stamp(W + 1), ("u", "n"))]
    assert all_orders_agree(chs).user_fields() == {}
    chs.append(d.change(C, stamp(W + 2), ("i", "n", 3)))
    assert all_orders_agree(chs).user_fields() == {"n": 3}


def test_increments_before_a_delete_are_hidden():
    d = Doc()
    i0 = d.change(A, stamp(W), ("i", "n", 5))
    x = d.change(B, stamp(W + 1), ("x",), parents=[i0[0]])
    i1 = d.change(C, stamp(W + 2), ("i", "n", 1), parents=[x[0]])
    s = causal_orders_agree([i0, x, i1])
    assert not s.deleted and s.user_fields() == {"n": 1}


def test_float_sums_do_not_depend_on_delivery_order():
    # Chosen so that naive summation in different orders gives different floats.
    deltas = [0.1, 0.2, 0.3, 1e16, -1e16]
    assert len({sum(p) for p in itertools.permutations(deltas)}) > 1
    d = Doc()
    actors = [A, B, C, A, B]
    chs = [d.change(actors[i], stamp(W + i), ("i", "n", x)) for i, x in enumerate(deltas)]
    s = all_orders_agree(chs)
    assert type(s.user_fields()["n"]) is float


def test_increments_leaving_the_counter_range_are_skipped_in_every_order():
    d = Doc()
    chs = [d.change(A, stamp(W), ("s", "n", 2**63 - 3)), d.change(B, stamp(W + 1), ("i", "n", 2**63 - 1)),
           d.change(C, stamp(W + 2), ("i", "n", 2)), d.change(A, stamp(W + 3), ("i", "n", 1))]
    # +2**63-1 would leave the range: skipped; +2 and +1 fit (in stamp order), so they count.
    assert all_orders_agree(chs).user_fields() == {"n": 2**63 - 1 - 1 + 1}


def test_huge_int_base_with_float_increment_stays_readable():
    d = Doc()
    chs = [d.change(A, stamp(W), ("s", "n", 2**1000)), d.change(B, stamp(W + 1), ("i", "n", 0.5))]
    s = all_orders_agree(chs)
    assert s.user_fields() == {"n": 2**1000} and len(s.digest()) == 32


def test_float_counter_never_reaches_infinity():
    d = Doc()
    chs = [d.change(A, stamp(W), ("s", "n", 1.5e308)), d.change(B, stamp(W + 1), ("i", "n", 1.5e308)),
           d.change(C, stamp(W + 2), ("i", "n", -1e308))]
    assert all_orders_agree(chs).user_fields() == {"n": 1.5e308 - 1e308}


def test_counter_add_is_total():
    from ostracon.core.state import COUNTER_MAX, COUNTER_MIN, counter_add
    assert counter_add(COUNTER_MAX, 1) is None and counter_add(COUNTER_MIN, -1) is None
    assert counter_add(2**2000, 1.0) is None and counter_add(1e308, 1e308) is None
    assert counter_add(COUNTER_MAX, -1.0) == float(COUNTER_MAX) - 1.0 and counter_add(1, 2) == 3


def test_blame_points_at_the_deciding_write():
    d = Doc()
    c1 = d.change(A, stamp(W), ("s", "f", 1), ("i", "n", 1))
    c2 = d.change(B, stamp(W + 1), ("s", "g", 2), ("i", "n", 1))
    s = fields_for([c1, c2], [1, 0])
    blame = s.blame()
    assert blame["f"][2] == c1[0] and blame["g"][2] == c2[0] and blame["n"][2] == c2[0]


def test_metadata():
    d = Doc()
    chs = [d.change(A, stamp(W + 10), ("s", "f", 1)), d.change(B, stamp(W), ("s", "g", 1))]
    s = fields_for(chs, [0, 1])
    doc = s.to_doc()
    assert doc["_version"] == 2 and doc["_created"] == W and doc["_updated"] == W + 10
    assert doc["_deleted"] is False
    assert doc["_heads"] == [cidlib.format_cid(c) for c in sorted(c[0] for c in chs)]  # binary order
    assert s.data_hash() == hashlib.sha256(encode_canonical({"f": 1, "g": 1})).hexdigest()
    assert list(doc) == ["f", "g", "_id", "_collection", "_version", "_created", "_updated",
                         "_deleted", "_heads"]   # user fields first, metadata in this order


def test_flat_doc_takes_the_heads_text_or_leaves_it_out():
    d = Doc()
    s = fields_for([d.change(A, stamp(W), ("s", "f", 1))], [0])
    assert flat_doc(s, None) == {k: v for k, v in s.to_doc().items() if k != "_heads"}
    assert flat_doc(s, ["given"])["_heads"] == ["given"]
    assert flat_doc(s, None) is not flat_doc(s, None)   # a new dict each time


# ----------------------------------------------------------------------------- replicas

def state_hash(r: Replica) -> str:
    h = hashlib.sha256()
    for name in sorted(r.collections):
        for doc_id in sorted(r.collections[name]):
            h.update(r.collections[name][doc_id].digest())
    return h.hexdigest()


def new_replica(i: int) -> Replica:
    return Replica(IDS[i].actor, verify=CRYPTO.ed25519_verify)


def build_block_set(seed: int, steps: int = 40) -> tuple[Replica, list[bytes]]:
    """Three actors editing shared documents with partial syncs; returns a replica holding
    everything and its envelopes (blocks + seals), causally closed."""
    rng = random.Random(seed)
    reps = [new_replica(i) for i in range(3)]
    walls = [W + rng.randrange(-5, 5) for _ in reps]
    for _ in range(steps):
        i = rng.randrange(3)
        r = reps[i]
        walls[i] += rng.choice([0, 0, 1, 5, -20])
        act = rng.random()
        if act < 0.15:  # pull from someone
            j = rng.randrange(3)
            reps[j].seal_local(IDS[j].sign)
            r.apply_envelopes(reps[j].envelopes_since(r.version_vector()))
            continue
        doc = rng.choice(["d1", "d2", "d3"])
        col = rng.choice(["todos", "notes"])
        f = rng.choice(["a", "b", "n"])
        k = rng.random()
        if k < 0.35:
            ops = [("s", f, rng.choice([1, 2.5, "x", None, [1, {"k": "v"}], True]))]
        elif k < 0.45:
            ops = [("u", f)]
        elif k < 0.75:
            ops = [("i", "n", rng.choice([1, -2, 0.1, 0.2, 1e16]))]
        elif k < 0.85:
            ops = [("x",)]
        elif k < 0.9:
            ops = []
        else:
            ops = [("s", "a", rng.randrange(100)), ("i", "n", 1), ("u", "b")]
        r.commit(col, doc, ops, walls[i])
        if rng.random() < 0.2:
            r.seal_local(IDS[i].sign)
    for i, r in enumerate(reps):
        r.seal_local(IDS[i].sign)
    full = new_replica(0)
    for r in reps:
        full.apply_envelopes(r.envelopes_since({}))
    assert full.pending_count == 0
    return full, full.all_envelopes()


BLOCK_SETS = [build_block_set(seed) for seed in range(4)]


def test_block_sets_are_interesting():
    for full, _envs in BLOCK_SETS:
        assert len(full.by_actor) == 3 and len(full.order) > 20
        assert any(len(d.heads) > 1 or d.height > 3 for col in full.collections.values() for d in col.values())


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_any_permutation_and_duplication_gives_the_same_state(data):
    full, envs = BLOCK_SETS[data.draw(st.integers(0, len(BLOCK_SETS) - 1), label="set")]
    n = len(envs)
    order = data.draw(st.permutations(list(range(n))), label="order")
    dups = data.draw(st.lists(st.integers(0, n - 1), max_size=n // 2), label="dups")
    stream = [envs[i] for i in order]
    for d in dups:
        stream.insert(data.draw(st.integers(0, len(stream))), envs[d])
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6), label="batches"))
    r = Replica(b"\xee" * 32, verify=CRYPTO.ed25519_verify)
    prev = 0
    for c in cuts + [len(stream)]:
        r.apply_envelopes(stream[prev:c])
        prev = c
    assert r.pending_count == 0
    assert state_hash(r) == state_hash(full)
    assert r.heads() == full.heads()
    assert r.version_vector() == full.version_vector()


def test_state_hash_is_the_same_on_every_writer_after_full_exchange():
    full, envs = BLOCK_SETS[0]
    others = [new_replica(i) for i in range(3)]
    for r in others:
        r.apply_envelopes(list(reversed(envs)))
        assert state_hash(r) == state_hash(full)


@pytest.mark.parametrize("seed", range(3))
def test_one_at_a_time_random_order(seed):
    full, envs = BLOCK_SETS[seed]
    rng = random.Random(seed)
    stream = envs + rng.sample(envs, len(envs) // 2)
    rng.shuffle(stream)
    r = Replica(b"\xee" * 32, verify=CRYPTO.ed25519_verify)
    for e in stream:
        r.apply_envelopes([e])
    assert r.pending_count == 0 and state_hash(r) == state_hash(full), f"seed {seed}"

