"""The text CRDT (core/text.py, core/textcodec.py): edits, merge, cursors, codecs, real traces."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ostracon.core import textcodec
from ostracon.core.errors import ValidationError
from ostracon.core.text import MAX_CHUNK_RUNS, Cursor, TextCRDT

TRACES = Path(__file__).parent / "data" / "editing-traces"
A, B, C = b"\x0a" * 32, b"\x0b" * 32, b"\x0c" * 32


class Net:
    """Replicas exchanging batches with causal delivery (a batch carries what its author had)."""

    def __init__(self, actors):
        self.docs = {a: TextCRDT(a) for a in actors}
        self.seen = {a: set() for a in actors}
        self.batches = {}  # id -> (actor, payload, deps)

    def commit(self, a):
        p = self.docs[a].take_batch()
        if p is None:
            return None
        bid = len(self.batches)
        self.batches[bid] = (a, p, frozenset(self.seen[a]))
        self.seen[a].add(bid)
        return bid

    def deliver(self, bid, to):
        if bid in self.seen[to]:
            return
        actor, payload, deps = self.batches[bid]
        for d in sorted(deps):
            self.deliver(d, to)
        self.docs[to].apply_batch(actor, payload)
        self.seen[to].add(bid)

    def sync_all(self, rng):
        for to in self.docs:
            self.commit(to)
        for to in self.docs:
            ids = list(self.batches)
            rng.shuffle(ids)
            for bid in ids:
                self.deliver(bid, to)


def edit(t: TextCRDT, rng: random.Random, alphabet="abcdefgh") -> None:
    if t.length and rng.random() < 0.35:
        pos = rng.randrange(t.length)
        t.delete(pos, rng.randint(1, min(4, t.length - pos)))
    else:
        t.insert(rng.randint(0, t.length), "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 4))))


# ---------------------------------------------------------------- local edits

def test_insert_delete_splice_and_cache():
    t = TextCRDT(A)
    t.insert(0, "hello")
    t.insert(5, " world")
    t.insert(0, ">> ")
    assert str(t) == ">> hello world" and len(t) == 14
    t.delete(0, 3)
    t.splice(0, 5, "HELLO")
    assert str(t) == "HELLO world"
    assert str(t) is str(t)  # materialized once, cached until the next change
    t.delete(5, 6)
    assert str(t) == "HELLO"


@pytest.mark.parametrize("call", [
    lambda t: t.insert(-1, "x"), lambda t: t.insert(4, "x"), lambda t: t.insert(0, 5),
    lambda t: t.insert(True, "x"), lambda t: t.delete(2, 2), lambda t: t.delete(0, -1),
    lambda t: t.insert(0, "\ud800"), lambda t: t.cursor(4),
])
def test_bad_edits_raise_validation_error(call):
    t = TextCRDT(A)
    t.insert(0, "abc")
    with pytest.raises(ValidationError):
        call(t)
    assert str(t) == "abc"


def test_unbound_replica_refuses_local_edits():
    with pytest.raises(ValidationError):
        TextCRDT().insert(0, "x")


def test_code_points_surrogate_pairs_and_combining_marks_stay_whole():
    t = TextCRDT(A)
    s = "a😀e\u0301🇫🇷z"
    t.insert(0, s)
    assert len(t) == len(s) == 7
    t.insert(2, "|")          # between the emoji (one code point) and "e"
    t.delete(0, 1)
    assert str(t) == "😀|e\u0301🇫🇷z"
    assert str(t).encode("utf-8").decode("utf-8") == str(t)
    assert textcodec.load_state(textcodec.encode_state(t)).__str__() == str(t)


def test_many_runs_split_chunks_and_stay_consistent():
    rng = random.Random(7)
    t, ref = TextCRDT(A), []
    for _ in range(3000):
        if ref and rng.random() < 0.4:
            p = rng.randrange(len(ref))
            n = rng.randint(1, min(3, len(ref) - p))
            t.delete(p, n)
            del ref[p:p + n]
        else:
            p = rng.randint(0, len(ref))
            ch = rng.choice("xyz")
            t.insert(p, ch)
            ref[p:p] = ch
    assert str(t) == "".join(ref)
    assert len(t.chunks) > 1 and all(len(c.runs) <= MAX_CHUNK_RUNS for c in t.chunks)
    assert all(c.vis == sum(r.n for r in c.runs if r.s is not None) for c in t.chunks)


# ---------------------------------------------------------------- merge

def test_concurrent_inserts_at_one_position_order_by_actor_everywhere():
    net = Net([A, B, C])
    for a, word in ((A, "aaa"), (B, "bbb"), (C, "ccc")):
        net.docs[a].insert(0, word)
    net.sync_all(random.Random(1))
    assert {str(d) for d in net.docs.values()} == {"aaabbbccc"}


def test_concurrent_typing_does_not_interleave_forwards_or_backwards():
    net = Net([A, B])
    net.docs[A].insert(0, "[]")
    net.sync_all(random.Random(2))
    for ch in "one":   # forwards, one keystroke at a time, each its own batch
        net.docs[A].insert(len(net.docs[A]) - 1, ch)
        net.commit(A)
    for ch in "owt":   # backwards: always at the same spot
        net.docs[B].insert(1, ch)
        net.commit(B)
    net.sync_all(random.Random(3))
    assert {str(d) for d in net.docs.values()} in ({"[onetwo]"}, {"[twoone]"})


def test_delete_and_concurrent_insert_inside_deleted_range():
    net = Net([A, B])
    net.docs[A].insert(0, "abcdef")
    net.sync_all(random.Random(4))
    net.docs[A].delete(1, 4)
    net.docs[B].insert(3, "XY")
    net.sync_all(random.Random(5))
    assert {str(d) for d in net.docs.values()} == {"aXYf"}


def test_own_batch_applied_again_is_a_no_op():
    t = TextCRDT(A)
    t.insert(0, "hello")
    t.delete(1, 2)
    p = t.take_batch()
    before = textcodec.encode_state(t)
    t.apply_batch(A, p)
    assert textcodec.encode_state(t) == before and str(t) == "hlo"
    assert t.take_batch() is None


def test_batch_sends_characters_deleted_in_the_same_batch_without_text():
    t = TextCRDT(A)
    t.insert(0, "secret")
    t.delete(0, 6)
    t.insert(0, "ok")
    foreign, ints, text = t.take_batch()
    assert text == "ok" and foreign == []
    r = TextCRDT()
    r.apply_batch(A, [foreign, ints, text])
    assert str(r) == "ok"
    assert textcodec.encode_state(r) == textcodec.encode_state(t)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), replicas=st.integers(2, 4), rounds=st.integers(1, 6))
def test_random_concurrent_edits_converge_to_identical_state(seed, replicas, rounds):
    rng = random.Random(seed)
    actors = [bytes([i + 1]) * 32 for i in range(replicas)]
    net = Net(actors)
    for _ in range(rounds):
        for a in actors:
            for _ in range(rng.randint(0, 5)):
                edit(net.docs[a], rng)
                if rng.random() < 0.3:
                    net.commit(a)
        # partial, random exchange
        for to in actors:
            for bid in rng.sample(list(net.batches), k=len(net.batches) // 2):
                net.deliver(bid, to)
    net.sync_all(rng)
    strings = {str(d) for d in net.docs.values()}
    states = {textcodec.encode_state(d) for d in net.docs.values()}
    assert len(strings) == 1 and len(states) == 1, f"seed={seed}"
    loaded = textcodec.load_state(states.pop())
    assert str(loaded) == strings.pop(), f"seed={seed}"


# ---------------------------------------------------------------- cursors and blame

def test_cursor_survives_remote_edits_and_deletion():
    net = Net([A, B])
    net.docs[A].insert(0, "hello world")
    net.sync_all(random.Random(6))
    cur = net.docs[A].cursor(6)            # before "world"
    end = net.docs[A].cursor(11)
    assert end == Cursor(None, 0)
    net.docs[B].insert(0, ">>> ")
    net.sync_all(random.Random(7))
    assert net.docs[A].resolve(cur) == 10 and net.docs[A].resolve(end) == 15
    net.docs[A].delete(8, 5)               # "hello " .. deletes "o wor"
    assert net.docs[A].resolve(cur) == 8
    with pytest.raises(ValidationError):
        net.docs[A].resolve(Cursor(C, 0))


def test_blame_names_who_wrote_which_characters():
    net = Net([A, B])
    net.docs[A].insert(0, "hello")
    net.sync_all(random.Random(8))
    net.docs[B].insert(5, " world")
    net.docs[B].delete(0, 1)
    net.docs[B].insert(0, "H")
    net.sync_all(random.Random(9))
    assert net.docs[A].blame() == [(B, "H"), (A, "ello"), (B, " world")]


# ---------------------------------------------------------------- hostile input

@pytest.mark.parametrize("payload", [
    None, [], [[], [], ""], [[b"x"], [0, 0, 0, 0, 1], ""],
    [[], [0, 1, 0, 1], ""], [[], [0, 1, 0, 2], "a"], [[], [0, 1, 0, 1], "ab"],
    [[], [0, 1, 64, 1], "a"], [[], [0, 1, 6, 1], "a"], [[], [0, 1, 2, 1], "a"],
    [[], [0, 1, 4, 1], "a"], [[], [0, 1, 4, 1, 5], "a"], [[], [0, 0, 1, 0], ""],
    [[], [0, 0, 0, 0, 0], ""], [[], [0, 0, 9, 0, 1], ""], [[], [0, 1, 0, True], "a"],
    [[], [0, 1, 0, 1.0], "a"], [[], [0, 1, 0, -1], "a"], [[], [2**53, 1, 0, 1], "a"],
    [[A], [0, 1, 0, 1], "a"], [[B, B], [0, 1, 0, 1], "a"], [[], [3, 1, 4, 1, 0, 9], "a"],
])
def test_malformed_batches_raise_validation_error(payload):
    with pytest.raises(ValidationError):
        textcodec.parse_batch(payload, A)
    with pytest.raises(ValidationError):
        TextCRDT(B).apply_batch(A, payload)


def test_mutated_batches_never_crash():
    rng = random.Random(11)
    net = Net([A, B])
    for _ in range(30):
        edit(net.docs[A], rng)
        edit(net.docs[B], rng)
    net.sync_all(rng)
    for _ in range(20):
        edit(net.docs[B], rng)
    foreign, ints, text = net.docs[B].take_batch()
    for _ in range(400):
        seed = rng.randrange(2**32)
        r = random.Random(seed)
        m = list(ints)
        for _ in range(r.randint(1, 3)):
            m[r.randrange(len(m))] = r.choice([0, 1, 2, 3, 7, 15, 31, 100, 2**20])
        target = textcodec.load_state(textcodec.encode_state(net.docs[A]))
        try:
            target.apply_batch(B, [foreign, m, text])
        except ValidationError:
            continue
        assert len(str(target)) == len(target), f"seed={seed}"


def test_malformed_state_raises_validation_error():
    t = TextCRDT(A)
    t.insert(0, "abc")
    good = msgpack.unpackb(textcodec.encode_state(t))
    for bad in (b"\xc1", msgpack.packb([2] + good[1:]), msgpack.packb(good[:-1] + ["abcd"]),
                msgpack.packb(good[:2] + [[5]] + good[3:]), msgpack.packb(good[:3] + [[-5]] + good[4:])):
        with pytest.raises(ValidationError):
            textcodec.load_state(bad)


# ---------------------------------------------------------------- real editing traces

def _trace(name):
    with gzip.open(TRACES / name) as f:
        return json.load(f)


def test_automerge_paper_trace_replays_exactly():
    d = _trace("automerge-paper.json.gz")
    t = TextCRDT(A)
    batches = []
    for i, tx in enumerate(d["txns"]):
        for pos, n, ins in tx["patches"]:
            t.splice(pos, n, ins)
        if i % 2000 == 1999:
            batches.append(t.take_batch())
    batches.append(t.take_batch())
    assert str(t) == d["endContent"]
    remote = TextCRDT()
    for p in batches:
        remote.apply_batch(A, p)
    assert str(remote) == d["endContent"]
    state = textcodec.encode_state(t)
    assert textcodec.encode_state(remote) == state
    assert str(textcodec.load_state(state)) == d["endContent"]


def test_friendsforever_concurrent_trace_replays_exactly():
    """One replica per agent (each agent's txns form a chain in this trace); before a txn its
    agent's replica receives the other agents' txns its parents include, in causal order."""
    d = _trace("friendsforever.json.gz")
    txns = d["txns"]
    n = d["numAgents"]
    agents = [bytes([0xF0 + i]) * 32 for i in range(n)]
    replicas = [TextCRDT(a) for a in agents]
    have = [[0] * n for _ in range(n)]       # have[g][h]: txns of agent h applied at g
    chains = [[] for _ in range(n)]          # per agent: its batches in order
    clocks = []                              # per txn: version vector of its state
    for tx in txns:
        g = tx["agent"]
        vv = [0] * n
        for p in tx["parents"]:
            vv = [max(x, y) for x, y in zip(vv, clocks[p], strict=True)]
        assert vv[g] == len(chains[g]) == have[g][g], "agent edits are not a chain"
        t = replicas[g]
        for h in range(n):
            assert have[g][h] <= vv[h], "replica is ahead of the state this txn edits"
            for k in range(have[g][h], vv[h]):
                if chains[h][k] is not None:
                    t.apply_batch(agents[h], chains[h][k])
            have[g][h] = vv[h]
        for pos, dl, ins in tx["patches"]:
            t.splice(pos, dl, ins)
        chains[g].append(t.take_batch())
        have[g][g] += 1
        vv[g] = have[g][g]
        clocks.append(vv)
    last = clocks[-1]
    assert last == [len(c) for c in chains]
    for g, t in enumerate(replicas):
        for h in range(n):
            for k in range(have[g][h], len(chains[h])):
                if chains[h][k] is not None:
                    t.apply_batch(agents[h], chains[h][k])
        assert str(t) == d["endContent"]
    assert len({textcodec.encode_state(t) for t in replicas}) == 1


def test_insert_whose_right_origin_is_not_right_of_its_left_is_refused_without_burning_ids():
    t = TextCRDT(A)
    t.insert(0, "abc")
    r = TextCRDT()
    r.apply_batch(A, t.take_batch())
    # B claims to insert between 'c' (left) and 'a' (right): impossible, so refused.
    r.apply_batch(B, [[A], [0, 1, 4 | 3 << 3, 1, 1, 2, 1, 0], "X"])
    assert str(r) == "abc"
    r.apply_batch(B, [[A], [0, 1, 4 | 2 << 3, 1, 1, 0], "Y"])   # B's counter 0 is still free
    assert str(r) == "aYbc"


def test_a_seed_is_added_once_however_many_devices_migrate_it():
    src = b"\x01\x71" + bytes(36)
    a, b = TextCRDT(A), TextCRDT(B)
    assert a.seed(src, "old body")
    pa = a.take_batch()
    assert pa[3] == [src, "old body"]
    a.insert(8, "!")
    pa2 = a.take_batch()
    assert b.seed(src, "old body")                  # the same migration, concurrently
    b.insert(0, ">")
    pb = b.take_batch()
    a.apply_batch(B, pb)
    b.apply_batch(A, pa)
    b.apply_batch(A, pa2)
    assert str(a) == str(b) == ">old body!"
    assert textcodec.encode_state(a) == textcodec.encode_state(b)
    seeder = textcodec.seed_actor(src, "old body")
    assert seeder not in (A, B) and [x for x, _ in a.blame()] == [B, seeder, A]
    assert not a.seed(src, "old body")              # known already: nothing to send
    assert a.take_batch() is None
    other = TextCRDT(C)                             # a different value is another seed
    other.seed(src, "other body")
    a.apply_batch(C, other.take_batch())
    assert "other body" in str(a)


@pytest.mark.parametrize("seed", [1, [b"x"], [b"", "t"], [bytes(65), "t"], [b"x", ""],
                                  [b"x", 5], [b"x", "t", 1]])
def test_malformed_seeds_raise_validation_error(seed):
    with pytest.raises(ValidationError):
        TextCRDT(A).apply_batch(B, [[], [0, 0], "", seed])


def test_far_apart_origins_scan_at_most_the_budget_and_refuse_the_rest(monkeypatch):
    from ostracon.core import text as text_mod
    budget = 5_000
    monkeypatch.setattr(textcodec, "MAX_TEXT_SCAN_RUNS", budget)
    t = TextCRDT(A)
    for _ in range(2_000):                          # typing backwards: one run per character
        t.insert(0, "a")
    t.take_batch()
    visits = 0
    real_pos = text_mod.TextCRDT._pos

    def counting_pos(self, r, c):
        nonlocal visits
        visits += 1
        return real_pos(self, r, c)

    monkeypatch.setattr(text_mod.TextCRDT, "_pos", counting_pos)
    # Hostile: 50 one-character inserts, each between the document start and its end.
    t.apply_batch(B, [[], [0, 50] + [0, 1] * 50, "x" * 50])
    assert visits <= 2 * budget + 50                # each scanned run: at most 2 lookups
    assert 0 < str(t).count("x") < 50 and len(t) == 2_000 + str(t).count("x")
    before = str(t)
    t.apply_batch(B, [[], [50, 1, 0, 1], "y"])      # the writer's later inserts stay refused
    assert str(t) == before
    t.insert(0, "ok")                               # honest local edits go on
    assert str(t).startswith("ok")
