"""Hostile *members* in the seeded sync simulator (the space key does not make a member honest).

Honest members sync through sessions over a lossy, reordering room while a hostile member
(sessions of its own are not needed: it writes raw protocol messages) tries every attack of
the integrity audit: far-future and maximal clocks, forged unsealed ranges claiming honest
members' next sequence numbers, equivocation (different signed blocks for one slot, each to a
different part of the room), oversized pending data, amplification (needs for everything,
floods of invented peers with huge vectors) and poison values. After healing, every honest
write reaches every honest replica, honest replicas converge, nothing honest is refused, and
every per-peer resource stays under its named bound.

OSTRACON_HOSTILE_SIM_SEEDS=<n> runs more seeds; OSTRACON_HOSTILE_SIM_SEED=<n> replays one.
"""

from __future__ import annotations

import os
import random

import ostracon
from ostracon.core import cid as cidlib
from ostracon.core.block import KIND_BLOCK, KIND_SEAL, Change, envelope, make_seal
from ostracon.core.clock import MAX_WALL_MS
from ostracon.core.protocol.session import (
    Blocks,
    Equivocated,
    Hello,
    Need,
    ProtocolViolation,
    SyncSession,
    encode_message,
)
from ostracon.core.replica import Replica
from ostracon.crypto.identity import Identity
from ostracon.crypto.native import NativeCrypto
from ostracon.sync.base import DatabaseReplica

SEEDS = int(os.environ.get("OSTRACON_HOSTILE_SIM_SEEDS", "200"))
ONLY = os.environ.get("OSTRACON_HOSTILE_SIM_SEED")
CRYPTO = NativeCrypto()
NOW = 1_700_000_000_000
IDS = [f"d{k}" for k in range(4)]
ATTACKS = ("clock", "forge", "equivocate", "oversize", "amplify", "poison")


class Honest:
    def __init__(self, sim: HostileSim, i: int) -> None:
        self.clock = NOW + sim.rng.randrange(-5000, 5000)
        r = random.Random(sim.seed * 100 + i)
        self.db = ostracon.open(identity=Identity.from_seed(bytes([i + 1]) * 32, crypto=CRYPTO), crypto=CRYPTO,
                                clock=lambda: self.clock, random_bytes=r.randbytes,
                                sink_batch_ops=sim.rng.randrange(1, 5))
        self.session = SyncSession(DatabaseReplica(self.db), r.randbytes, now_ms=0, need_timeout_ms=1000,
                                   hello_interval_ms=5000, peer_ttl_ms=60_000, max_peers=64,
                                   max_tracked_entries=512)
        self.violations: list = []
        self.rejected_honest = 0
        self.equivocations = 0

    def write(self, rng: random.Random) -> None:
        self.clock += rng.choice([1, 7, 900])
        col = self.db.collection("notes")
        doc_id = rng.choice(IDS)
        try:
            if col.get(doc_id) is None:
                col.create({"title": f"t{rng.randrange(100)}"}, id=doc_id)
            elif rng.random() < 0.3:
                col.increment(doc_id, "votes", rng.choice([1, -1, 2]))
            else:
                col.patch(doc_id, {rng.choice(["title", "body"]): rng.randrange(1000)})
        except ostracon.ValidationError:
            pass  # a poisoned counter refuses a result out of range: refused up front, typed
        if rng.random() < 0.4:
            self.db.flush()
            self.session.on_local_change()


class HostileSim:
    def __init__(self, seed: int, *, honest: int = 3, steps: int = 35) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.steps = steps
        self.members = [Honest(self, i) for i in range(honest)]
        self.queue: list[tuple[object, bytes, list]] = []   # (sender, plaintext, recipients)
        self.now = 0
        self.evil_n = 0
        self.done: set[str] = set()

    # --- the room --------------------------------------------------------------------------

    def collect(self, m: Honest) -> None:
        for out in m.session.outgoing():
            self.queue.append((m, out.data, [x for x in self.members if x is not m]))

    def deliver(self, to: Honest, data: bytes) -> None:
        for ev in to.session.receive_plaintext(data):
            if isinstance(ev, ProtocolViolation):
                to.violations.append(ev)
            elif isinstance(ev, Equivocated):
                to.equivocations += 1
        self.collect(to)

    def step_network(self, lossy: bool) -> None:
        if not self.queue:
            return
        rng = self.rng
        i = rng.randrange(len(self.queue)) if lossy and rng.random() < 0.5 else 0
        sender, data, to = self.queue.pop(i)
        if lossy and rng.random() < 0.15:
            return
        for m in to:
            self.deliver(m, data)

    def inject(self, envelopes: list[bytes], to: list[Honest] | None = None) -> None:
        msg = Blocks(self.rng.randbytes(16), tuple(envelopes), (), (), True)
        self.queue.append((None, encode_message(msg), self.members if to is None else to))

    # --- the hostile member ----------------------------------------------------------------

    def evil(self) -> tuple[Replica, Identity]:
        self.evil_n += 1
        ident = Identity.from_seed(bytes([200, self.seed % 256, self.evil_n % 256]) + bytes(29), crypto=CRYPTO)
        return Replica(ident.actor, require_signatures=False), ident

    def attack(self) -> None:
        rng = self.rng
        kind = rng.choice(ATTACKS)
        self.done.add(kind)
        if kind == "clock":
            r, ident = self.evil()
            r.commit("notes", rng.choice(IDS) + "-evil", [("s", "title", "future")],
                     rng.choice([MAX_WALL_MS, 253402300799999, NOW + 86_400_000]))
            r.seal_local(ident.sign)
            self.inject(r.envelopes_since({}))
        elif kind == "forge":
            victim = rng.choice(self.members).db.replica
            nxt = victim.seq_of(victim.actor) + 1
            self.inject([envelope(KIND_BLOCK, Change("notes", rng.choice(IDS), (), 1, victim.actor, s,
                                                     (NOW + s) << 16, (("s", "title", "forged"),)).encode())
                         for s in range(nxt, nxt + rng.randrange(1, 15))])
        elif kind == "equivocate":
            r, ident = self.evil()
            base, _, _ = r.commit("notes", "shared-evil", [("s", "title", "v0")], NOW)
            r.seal_local(ident.sign)
            common = r.envelopes_since({})
            half = rng.randrange(1, len(self.members))
            order = self.members[:]
            rng.shuffle(order)
            for part, value in ((order[:half], "X"), (order[half:], "Y")):
                blk = Change("notes", "shared-evil", (base,), 2, ident.actor, 2, (NOW + 5) << 16,
                             (("s", "title", value),)).encode()
                seal = make_seal(ident.actor, 2, [cidlib.compute(blk)], ident.sign).encode()
                self.inject(common + [envelope(KIND_BLOCK, blk), envelope(KIND_SEAL, seal)], part)
        elif kind == "oversize":
            r, ident = self.evil()
            self.inject([envelope(KIND_BLOCK, Change("notes", f"big{s}", (), 1, ident.actor, s, NOW << 16,
                                                     (("s", "blob", "x" * 200_000),)).encode())
                         for s in range(2, 2 + rng.randrange(5, 25))])
        elif kind == "amplify":
            vv = self.members[0].db.replica.version_vector()
            ranges = tuple(sorted((a, 1, max(n, 1)) for a, n in vv.items())) or ((bytes(32), 1, 1),)
            for _ in range(rng.randrange(5, 40)):
                need = Need(rng.randbytes(16), ranges, rng.randrange(1, 2**31), b"", 2)
                self.queue.append((None, encode_message(need), self.members))
            for _ in range(rng.randrange(1, 6)):
                fake = tuple(sorted((rng.randbytes(32), rng.randrange(1, 10**6)) for _ in range(100)))
                self.queue.append((None, encode_message(Hello(rng.randbytes(16), fake)), self.members))
        else:  # poison values: out-of-range counter results, and an int beyond the limit
            r, ident = self.evil()
            doc = "poison-evil"
            r.commit("notes", doc, [("s", "n", 2**1000), ("s", "f", 1.5e308)], NOW)
            r.commit("notes", doc, [("i", "n", 0.5), ("i", "f", 1.5e308)], NOW + 1)
            r.seal_local(ident.sign)
            envs = r.envelopes_since({})
            r2, ident2 = self.evil()
            r2.commit("notes", "huge-evil", [("s", "n", 10**400)], NOW)
            r2.seal_local(ident2.sign)
            self.inject(envs + r2.envelopes_since({}))

    # --- the run ---------------------------------------------------------------------------

    def run(self) -> None:
        rng = self.rng
        for m in self.members:
            m.session.start()
            self.collect(m)
        for _ in range(self.steps):
            m = rng.choice(self.members)
            if rng.random() < 0.5:
                m.write(rng)
                self.collect(m)
            if rng.random() < 0.25:
                self.attack()
            for _ in range(rng.randrange(0, 4)):
                self.step_network(lossy=True)
            if rng.random() < 0.1:
                self.tick(rng.choice([100, 1500, 6000]))
        for m in self.members:
            m.db.flush()
            m.session.on_local_change()
            self.collect(m)
        for _ in range(15):
            while self.queue:
                self.step_network(lossy=False)
            if self.converged():
                break
            self.tick(6000)

    def tick(self, dt: int) -> None:
        self.now += dt
        for m in self.members:
            m.clock += dt
            m.db.tick()
            m.session.tick(self.now)
            self.collect(m)

    def converged(self) -> bool:
        honest = [m.db.replica.actor for m in self.members]
        views = set()
        for m in self.members:
            vv = m.db.replica.version_vector()
            views.add((m.db.state_hash(), tuple(m.db.heads()), tuple(vv.get(a, 0) for a in honest)))
        return len(views) == 1


def check_seed(seed: int) -> HostileSim:
    hint = f"replay with OSTRACON_HOSTILE_SIM_SEED={seed}"
    sim = HostileSim(seed)
    try:
        sim.run()
    except AssertionError:
        raise
    except Exception as exc:  # any crash is a failure that names its seed
        raise AssertionError(f"seed {seed} crashed ({exc!r}); {hint}") from exc
    assert sim.converged(), f"seed {seed}: honest replicas did not converge; {hint}"
    for m in sim.members:
        own = m.db.replica.seq_of(m.db.replica.actor)
        for other in sim.members:
            got = other.db.replica.version_vector().get(m.db.replica.actor, 0)
            assert got == own, f"seed {seed}: {got} of {own} honest writes arrived; {hint}"
        r, s = m.db.replica, m.session
        assert r.pending_bytes <= r.max_pending_bytes, f"seed {seed}: pending bytes unbounded; {hint}"
        assert len(r.unresolved_seals()) <= r.max_pending_seals, f"seed {seed}: pending seals; {hint}"
        assert s.tracked_entries <= s.max_tracked_entries and len(s.peers) <= s.max_peers, f"seed {seed}; {hint}"
        assert r.clock.last >> 16 < NOW + 10**8, f"seed {seed}: remote input moved the clock; {hint}"
        assert not m.violations, f"seed {seed}: {m.violations[0]}; {hint}"
    return sim


def test_hostile_members_never_stop_honest_writes_and_stay_bounded():
    done: set[str] = set()
    equivocations = 0
    for seed in ([int(ONLY)] if ONLY else range(SEEDS)):
        sim = check_seed(seed)
        done |= sim.done
        equivocations += sum(m.equivocations for m in sim.members)
    if not ONLY:
        assert done == set(ATTACKS) and equivocations > 0, (done, equivocations)


def test_hostile_simulation_is_deterministic():
    a = HostileSim(7)
    a.run()
    b = HostileSim(7)
    b.run()
    assert [m.db.state_hash() for m in a.members] == [m.db.state_hash() for m in b.members]
