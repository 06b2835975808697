"""The sans-IO sync session (core/protocol/session.py): messages, flows, gaps, idempotence, hostility."""

from __future__ import annotations

import hashlib
import random

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ostracon.core.encoding import encode
from ostracon.core.errors import ProtocolError, ValidationError
from ostracon.core.protocol.session import (
    DEFAULT_MAX_MESSAGE_BYTES,
    MIN_MESSAGE_BYTES,
    Blocks,
    BlocksApplied,
    Diverged,
    GapDetected,
    Hello,
    MalformedMessageError,
    Need,
    Outgoing,
    PeerLost,
    PeerSeen,
    ProtocolViolation,
    Synced,
    SyncSession,
    decode_message,
    encode_message,
    tips_digest,
)
from ostracon.core.replica import Replica
from ostracon.crypto.identity import Identity
from ostracon.crypto.native import NativeCrypto

CRYPTO = NativeCrypto()
P1, P2 = b"\x01" * 16, b"\x02" * 16
A1, A2 = b"\xaa" * 32, b"\xbb" * 32


class Node:
    def __init__(self, i: int, seed: int = 0, *, ident: Identity | None = None, **opts) -> None:
        self.ident = ident or Identity.from_seed(bytes([i + 1]) * 32, crypto=CRYPTO)
        self.replica = Replica(self.ident.actor, verify=CRYPTO.ed25519_verify)
        self.rng = random.Random(seed * 100 + i)
        self.session = SyncSession(self.replica, self.rng.randbytes, **opts)
        self.events: list = []
        self.t = 1_700_000_000_000

    def write(self, n: int, doc: str = "d", size: int = 1) -> None:
        for k in range(n):
            self.t += 1
            self.replica.commit("todos", f"{doc}{k % 7}", [("s", "x", "v" * size)], self.t)
        self.replica.seal_local(self.ident.sign)
        self.session.on_local_change()

    def state(self):
        h = hashlib.sha256()
        for name in sorted(self.replica.collections):
            for doc_id in sorted(self.replica.collections[name]):
                h.update(self.replica.collections[name][doc_id].digest())
        return h.hexdigest(), tuple(self.replica.heads()), tuple(sorted(self.replica.version_vector().items()))


class Net:
    """A room: every message goes to every other member. `drop(sender, msg_bytes)` filters."""

    def __init__(self, nodes, drop=None) -> None:
        self.nodes = nodes
        self.drop = drop
        self.sent: list[tuple[Node, Outgoing]] = []

    def pump(self, limit: int = 10_000) -> int:
        rounds = 0
        moved = True
        while moved:
            moved = False
            rounds += 1
            assert rounds < limit, "no quiescence"
            for n in self.nodes:
                for out in n.session.outgoing():
                    moved = True
                    self.sent.append((n, out))
                    if self.drop is not None and self.drop(n, out):
                        continue
                    for m in self.nodes:
                        if m is not n:
                            m.events.extend(m.session.receive_plaintext(out.data))
        return rounds

    def tick(self, now: int) -> None:
        for n in self.nodes:
            n.events.extend(n.session.tick(now))

    def kinds(self):
        return [decode_message(o.data).__class__.__name__ for _, o in self.sent]


def start(nodes):
    for n in nodes:
        n.events.extend(n.session.start())


# --- messages ----------------------------------------------------------------------------------

def test_messages_round_trip_canonically():
    msgs = [
        Hello(P1, ((A1, 3), (A2, 1)), b"\x07" * 32, A1, b""),
        Hello(P1, (), b"", b"", P2),
        Need(P1, ((A1, 1, 5), (A2, 2, 2)), 77, P2, 2),
        Blocks(P1, (b"\x92\x01\xc4\x01x",), ((A1, 5),), ((P2, 77),), False),
        Blocks(P1, (), (), (), True),
    ]
    for m in msgs:
        data = encode_message(m)
        assert decode_message(data) == m
        assert encode_message(decode_message(data)) == data


@pytest.mark.parametrize("make", [
    lambda: Hello(b"short", ()),
    lambda: Hello(P1, ((A2, 1), (A1, 1))),             # unsorted
    lambda: Hello(P1, ((A1, 1), (A1, 2))),             # duplicate actor
    lambda: Hello(P1, ((A1, 0),)),                     # seq 0 is never announced
    lambda: Hello(P1, ((b"x" * 31, 1),)),
    lambda: Hello(P1, (), b"\x00" * 31),
    lambda: Need(P1, (), 1),                           # asks for nothing
    lambda: Need(P1, ((A1, 5, 4),), 1),                # from > to
    lambda: Need(P1, ((A1, 0, 4),), 1),
    lambda: Need(P1, ((A1, 1, 4),), 0),                # request id 0
    lambda: Need(P1, ((A1, 1, 4),), 2**32),
    lambda: Need(P1, ((A1, 1, 4),), 1, attempt=0),
    lambda: Blocks(P1, (b"",)),
    lambda: Blocks(P1, ("str",)),
    lambda: Blocks(P1, (), last=1),
    lambda: Blocks(P1, (), answers=((P2, 0),)),
])
def test_invalid_messages_are_refused_on_construction(make):
    with pytest.raises(ValidationError):
        make()


@pytest.mark.parametrize("data", [
    b"", b"\xc1", b"\x80", encode([1, 2]), encode({"t": "hello", "v": 2, "p": P1, "vv": []}),
    encode({"t": "nope", "v": 1}), encode({"t": "hello", "v": 1}),
    encode({"t": "need", "v": 1, "p": P1, "q": 1, "r": [[A1, 2, 1]]}),
    msgpack.packb({"v": 1, "t": "hello", "p": P1, "vv": []}),  # keys not sorted: not canonical
    encode({"t": "hello", "v": True, "p": P1, "vv": []}),
])
def test_malformed_bytes_raise_only_malformed_message_error(data):
    with pytest.raises(MalformedMessageError):
        decode_message(data)
    assert issubclass(MalformedMessageError, ProtocolError)


def test_unknown_fields_are_ignored_for_forward_compatibility():
    wire = Hello(P1, ((A1, 1),)).to_wire()
    wire["zz"] = "from a newer peer"
    assert decode_message(encode(wire)) == Hello(P1, ((A1, 1),))


def test_session_limits_are_validated():
    r = Replica(A1, require_signatures=False)
    with pytest.raises(ValidationError):
        SyncSession(r, random.Random(0).randbytes, max_message_bytes=MIN_MESSAGE_BYTES - 1)
    with pytest.raises(ValidationError):
        SyncSession(r, random.Random(0).randbytes, need_timeout_ms=0)
    assert DEFAULT_MAX_MESSAGE_BYTES == 512 * 1024 - 90


# --- flows ------------------------------------------------------------------------------------

def test_two_sessions_exchange_everything_and_report_synced():
    a, b = Node(0), Node(1)
    a.write(30)
    b.write(1200)  # more than one seal range (MAX_SEAL_BLOCKS = 1000)
    start([a, b])
    Net([a, b]).pump()
    assert a.state() == b.state()
    assert a.session.is_synced and b.session.is_synced
    assert any(isinstance(e, PeerSeen) and e.actor == b.ident.actor for e in a.events)
    assert sum(e.new for e in a.events if isinstance(e, BlocksApplied)) == 1200


def test_live_pushes_reach_every_member_of_a_room():
    nodes = [Node(i) for i in range(4)]
    start(nodes)
    net = Net(nodes)
    net.pump()
    for i, n in enumerate(nodes):
        n.write(5 + i, doc=f"n{i}-")
        net.pump()
    states = {n.state() for n in nodes}
    assert len(states) == 1
    # Pushes carried everything: nobody had to ask.
    assert "Need" not in net.kinds()
    assert all(n.session.is_synced for n in nodes)


def test_a_dropped_push_is_detected_and_fetched_from_the_author():
    a, b, c = Node(0), Node(1), Node(2)
    start([a, b, c])
    dropped = []

    def drop(sender, out):
        if sender is a and out.kind == "push" and not dropped:
            dropped.append(out)
            return True
        return False

    net = Net([a, b, c], drop)
    net.pump()
    a.write(3)
    net.pump()  # lost: nobody knows yet
    assert b.replica.version_vector() == {}
    a.write(2)  # the next push says "a is at 5": b and c ask for 1..5
    net.pump()
    assert a.state() == b.state() == c.state()
    needs = [decode_message(o.data) for n, o in net.sent if o.kind == "need"]
    assert needs and all(r[0] == a.ident.actor and r[1] == 1 for n in needs for r in n.ranges)


def test_lost_answer_part_is_a_gap_that_is_asked_again():
    a, b = Node(0, max_message_bytes=MIN_MESSAGE_BYTES), Node(1, max_message_bytes=MIN_MESSAGE_BYTES)
    a.write(8, size=100_000)  # ~800 KB: the answer spans several messages
    start([a, b])
    first_answer_dropped = []

    def drop(sender, out):
        if sender is a and out.kind == "blocks" and not first_answer_dropped:
            first_answer_dropped.append(out)
            return True
        return False

    net = Net([a, b], drop)
    # a's start pushed everything (push, not an answer). Lose that push entirely so that b
    # must ask, then lose the first part of the answer.
    pushes = [o for o in a.session.outgoing()]
    assert len([o for o in pushes if o.kind == "push"]) > 1
    assert sum(o.durable for o in pushes) == len(pushes) - 1  # the hello is not stored
    hello = [o for o in pushes if o.kind == "hello"][0]
    b.events.extend(b.session.receive_plaintext(hello.data))
    net.pump()
    assert a.state() == b.state()
    gaps = [e for e in b.events if isinstance(e, GapDetected)]
    assert gaps and gaps[0].actor == a.ident.actor and gaps[0].want == 8
    attempts = [decode_message(o.data).attempt for n, o in net.sent if o.kind == "need"]
    assert attempts[0] == 1 and max(attempts) >= 2
    for _, o in net.sent:
        assert len(o.data) <= MIN_MESSAGE_BYTES


def test_answers_contain_only_what_the_requester_lacks():
    a, b = Node(0), Node(1)
    a.write(10)
    # b already has a's blocks 1..6 (and their seal is for 1..10: b holds them pending).
    envs = a.replica.envelopes_since({})
    b.replica.apply_envelopes(envs[:6], strict=False)
    b.session.start()
    b.session.outgoing()
    need = Need(b.session.peer_id, ((a.ident.actor, 7, 10),), 99, a.session.peer_id)
    a.session.start()
    a.session.outgoing()
    a.session.receive_plaintext(encode_message(need))
    out = a.session.outgoing()
    assert len(out) == 1 and not out[0].durable
    blocks = decode_message(out[0].data)
    assert blocks.answers == ((b.session.peer_id, 99),) and blocks.last
    assert len(blocks.envelopes) == 5  # blocks 7..10 and the seal; nothing b already has
    b.session.receive_plaintext(out[0].data)
    assert b.state() == a.state()


def test_needs_for_other_peers_are_ignored_and_duplicates_coalesce():
    a, b, c = Node(0), Node(1), Node(2)
    a.write(4)
    for n in (a, b, c):
        n.session.start()
        n.session.outgoing()
    other = Need(b.session.peer_id, ((a.ident.actor, 1, 4),), 5, c.session.peer_id)
    a.session.receive_plaintext(encode_message(other))
    assert a.session.outgoing() == []
    for n, q in ((b, 1), (c, 2)):
        a.session.receive_plaintext(encode_message(Need(n.session.peer_id, ((a.ident.actor, 1, 4),), q,
                                                        a.session.peer_id)))
    out = a.session.outgoing()
    assert len(out) == 1  # one broadcast answer serves both
    assert set(decode_message(out[0].data).answers) == {(b.session.peer_id, 1), (c.session.peer_id, 2)}
    # A later first-attempt need for the same range (it crossed our answer) is acknowledged
    # without resending; a retry (attempt 2) is served in full.
    a.session.receive_plaintext(encode_message(Need(b.session.peer_id, ((a.ident.actor, 1, 4),), 3,
                                                    a.session.peer_id)))
    assert decode_message(a.session.outgoing()[0].data).envelopes == ()
    a.session.receive_plaintext(encode_message(Need(b.session.peer_id, ((a.ident.actor, 1, 4),), 4,
                                                    a.session.peer_id, 2)))
    assert len(decode_message(a.session.outgoing()[0].data).envelopes) == 5


def test_newcomer_gets_few_hello_replies_in_a_big_room():
    nodes = [Node(i) for i in range(8)]
    for i, n in enumerate(nodes):
        n.write(2, doc=f"n{i}-")
    start(nodes)
    net = Net(nodes)
    net.pump()
    assert len({n.state() for n in nodes}) == 1
    newcomer = Node(50)
    net.nodes.append(newcomer)
    net.sent.clear()
    start([newcomer])
    net.pump()
    assert newcomer.state() == nodes[0].state()
    replies = [decode_message(o.data) for _, o in net.sent if o.kind == "hello"]
    replies = [h for h in replies if h.reply_to == newcomer.session.peer_id]
    assert 1 <= len(replies) <= 2  # reply_fanout, not one per member
    needs = [o for _, o in net.sent if o.kind == "need"]
    assert len(needs) <= 2


def test_every_message_delivered_twice_changes_nothing():
    a, b, c = Node(0), Node(1), Node(2)
    for n in (a, b, c):
        n.write(20, doc=f"{n.ident.actor[:2].hex()}-")
    start([a, b, c])
    moved = True
    while moved:
        moved = False
        for n in (a, b, c):
            for out in n.session.outgoing():
                moved = True
                for m in (a, b, c):
                    if m is not n:
                        m.session.receive_plaintext(out.data)
                        m.session.receive_plaintext(out.data)
    assert a.state() == b.state() == c.state()
    assert all(n.session.stats["violations"] == 0 for n in (a, b, c))


def test_need_timeout_retries_elsewhere_and_silent_peers_are_forgotten():
    a, b, c = Node(0), Node(1), Node(2)
    a.write(5)
    # b hears hellos from a and c claiming a's blocks, but every answer is lost.
    start([a, b, c])
    net = Net([a, b, c], drop=lambda s, o: o.kind in ("blocks", "push"))
    net.pump()
    assert c.replica.version_vector() == {}
    net.drop = None
    net.tick(10_000)  # need_timeout_ms default
    net.pump()
    assert a.state() == b.state() == c.state()
    assert any(isinstance(e, GapDetected) for e in b.events)
    b.events.clear()
    b.events.extend(b.session.tick(10_000 + 90_000))  # peer_ttl_ms default: nobody spoke since
    assert {e.peer for e in b.events if isinstance(e, PeerLost)} == {a.session.peer_id, c.session.peer_id}


def test_periodic_hello_heals_a_lost_last_push():
    a, b = Node(0), Node(1)
    start([a, b])
    net = Net([a, b])
    net.pump()
    net.drop = lambda s, o: o.kind == "push"
    a.write(3)
    net.pump()
    assert b.replica.version_vector() == {}
    net.drop = None
    net.tick(30_000)  # hello_interval_ms default
    net.pump()
    assert a.state() == b.state()


def test_a_peer_that_cannot_serve_gets_an_empty_answer_and_the_gap_is_reported():
    a, b = Node(0), Node(1)
    start([a, b])
    Net([a, b]).pump()
    # A (lying or stale) hello claims a has 50 blocks of some actor.
    liar = Hello(a.session.peer_id, ((A2, 50),), b"", a.ident.actor)
    b.session.receive_plaintext(encode_message(liar))
    net = Net([a, b])
    net.pump()
    gaps = [e for e in b.events if isinstance(e, GapDetected)]
    assert gaps and gaps[0].actor == A2 and gaps[0].have == 0
    assert not b.session.is_synced
    # It does not loop: attempts are capped until the next tick.
    assert sum(1 for _, o in net.sent if o.kind == "need") <= 3


def test_diverged_replicas_are_reported():
    ident = Identity.from_seed(b"\x09" * 32, crypto=CRYPTO)
    a, b = Node(0, ident=ident), Node(1, ident=ident)
    a.replica.commit("todos", "x", [("s", "f", 1)], 1)
    b.replica.commit("todos", "y", [("s", "f", 2)], 1)
    for n in (a, b):
        n.replica.seal_local(ident.sign)
    start([a, b])
    Net([a, b]).pump()
    assert any(isinstance(e, Diverged) for e in a.events + b.events)
    assert tips_digest(a.replica, a.replica.version_vector()) != tips_digest(b.replica, b.replica.version_vector())


def test_own_messages_reflected_back_are_ignored():
    a = Node(0)
    a.write(2)
    a.session.start()
    for out in a.session.outgoing():
        assert a.session.receive_plaintext(out.data) == []
    assert a.session.stats["echoes"] >= 2


def test_badly_signed_blocks_are_rejected_not_applied():
    a, b = Node(0), Node(1)
    mallory = Identity.from_seed(b"\x66" * 32, crypto=CRYPTO)
    a.replica.commit("todos", "x", [("s", "f", 1)], 1)
    a.replica.seal_local(mallory.sign)  # a seal signed with the wrong key
    envs = a.replica.envelopes_since({})
    b.session.start()
    ev = b.session.receive_plaintext(encode_message(Blocks(P1, tuple(envs), ((a.ident.actor, 1),))))
    applied = [e for e in ev if isinstance(e, BlocksApplied)][0]
    assert applied.new == 0 and applied.rejected
    assert b.replica.version_vector() == {}


# --- hostile input ----------------------------------------------------------------------------

_fields = st.one_of(st.none(), st.booleans(), st.integers(-2, 2**64 - 1), st.binary(max_size=40),
                    st.text(max_size=5), st.lists(st.lists(st.one_of(st.binary(min_size=32, max_size=32),
                                                                      st.integers(0, 2**63)), max_size=4),
                                                  max_size=4))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(t=st.sampled_from(["hello", "need", "blocks", "x"]), v=st.sampled_from([1, 1, 1, 0, 2]),
       p=st.sampled_from([P1, P2, b"", b"\x00" * 16]),
       extra=st.dictionaries(st.sampled_from(["vv", "r", "q", "to", "n", "e", "re", "last", "d", "a"]), _fields))
def test_hostile_messages_never_crash_the_session(t, v, p, extra):
    a = Node(0)
    a.write(3)
    a.session.start()
    a.session.outgoing()
    msg = {"t": t, "v": v, "p": p, **extra}
    try:
        data = encode(msg)
    except ValidationError:
        return
    events = a.session.receive_plaintext(data)
    for e in events:
        assert isinstance(e, (ProtocolViolation, PeerSeen, BlocksApplied, GapDetected, Synced, Diverged))
    for out in a.session.outgoing():
        decode_message(out.data)  # whatever we answer is well-formed
    a.session.tick(10**6)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_are_a_protocol_violation(data):
    s = SyncSession(Replica(A1, require_signatures=False), random.Random(0).randbytes)
    s.start()
    events = s.receive_plaintext(data)
    assert all(isinstance(e, (ProtocolViolation, PeerSeen, BlocksApplied, GapDetected, Synced)) for e in events)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10**6), n=st.integers(2, 4), loss=st.floats(0, 0.5))
def test_any_loss_pattern_heals_with_ticks(seed, n, loss):
    rng = random.Random(seed)
    nodes = [Node(i, seed) for i in range(n)]
    for node in nodes:
        node.write(rng.randrange(0, 15), doc=f"{node.ident.actor[:1].hex()}-")
    start(nodes)
    net = Net(nodes, drop=lambda s, o: rng.random() < loss)
    net.pump()
    net.drop = None
    for k in range(1, 6):
        if len({x.state() for x in nodes}) == 1:
            break
        net.tick(k * 30_000)
        net.pump()
    assert len({x.state() for x in nodes}) == 1, f"seed {seed}"


def test_a_multi_part_push_reports_progress_per_part_and_resumes_where_it_stopped():
    """An interrupted first upload must not restart: each durable part says which own sequence
    numbers it completes (the end of the last seal range in it), and a session started with that
    `pushed_upto` pushes only the rest. A receiver that got the first parts and then the rest
    ends up identical to the author."""
    opts = dict(max_message_bytes=MIN_MESSAGE_BYTES)
    a = Node(0, 1, **opts)
    for batch in range(12):  # 12 sealed batches of 6 blocks of ~60 KB: several parts
        a.write(6, doc=f"b{batch}-", size=60_000)
    total = a.replica.version_vector()[a.ident.actor]
    a.session.start()
    parts = [out for out in a.session.outgoing() if out.durable]
    assert len(parts) > 3
    uptos = [p.own_upto for p in parts]
    assert uptos[-1] == total and uptos == sorted(uptos)
    assert 0 < uptos[len(parts) // 2] < total  # progress before the last part
    # The connection drops after the middle part was acknowledged.
    k = len(parts) // 2
    acked = max(uptos[: k + 1])
    b = Node(1, 1, **opts)
    b.session.start()
    list(b.session.outgoing())
    for p in parts[: k + 1]:
        b.session.receive_plaintext(p.data)
    resumed = SyncSession(a.replica, random.Random(7).randbytes, pushed_upto=acked, **opts)
    resumed.start()
    rest = [out for out in resumed.outgoing() if out.durable]
    assert rest and sum(len(p.data) for p in rest) < sum(len(p.data) for p in parts)
    for p in rest:
        b.session.receive_plaintext(p.data)
    assert b.state() == a.state()


# --- membership write limits ----------------------------------------------------------------------

class _Limited:
    """A replica whose space refuses everything of `refused` beyond seq `cap` (a reader has 0)."""

    def __init__(self, replica: Replica, refused: bytes, cap: int) -> None:
        self._r, self._refused, self._cap = replica, refused, cap
        self.actor = replica.actor

    def write_limit(self, actor: bytes):
        return self._cap if actor == self._refused else None

    def version_vector(self):
        return self._r.version_vector()

    def envelopes_since(self, vector):
        return self._r.envelopes_since(vector)

    def apply_envelopes(self, envelopes, *, strict=False):
        from ostracon.sync.base import filter_writable

        kept, _ = filter_writable(envelopes, self.write_limit)
        return self._r.apply_envelopes(kept, strict=strict)


@pytest.mark.parametrize("cap", [0, 3])
def test_a_refused_writer_is_never_asked_for_and_does_not_block_synced(cap):
    reader, member = Node(1), Node(2)
    member.session = SyncSession(_Limited(member.replica, reader.replica.actor, cap), member.rng.randbytes)
    # Two sealed batches (1..3, 4..5): a cut taken from what an admin had seen (its servable
    # vector) always falls on a seal boundary.
    reader.write(3)
    reader.write(2)
    net = Net([reader, member])
    start([reader, member])
    net.pump()
    got = member.replica.version_vector().get(reader.replica.actor, 0)
    assert got == cap  # what it wrote while it could (cap), nothing beyond
    assert member.session.is_synced
    asks = [decode_message(o.data) for n, o in net.sent if n is member]
    assert all(r[2] <= cap for m in asks if isinstance(m, Need) for r in m.ranges)
