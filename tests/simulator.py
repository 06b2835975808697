"""A seeded replica simulator: random writers, a hostile network, then healing.

Used by tests/test_simulator.py (many seeds) and by the cross-runtime checks (the same seed
gives the same final state hash in every runtime: everything random comes from `seed`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import ostracon
from ostracon.crypto.identity import Identity

FIELDS = ["title", "body", "tags", "n", "votes", "meta"]


def _value(rng: random.Random):
    kind = rng.randrange(7)
    if kind == 0:
        return rng.randrange(-5, 100)
    if kind == 1:
        return rng.choice([0.5, -2.25, 1e10, 3.0])
    if kind == 2:
        return rng.choice(["", "a", "héllo", "zz" * rng.randrange(5)])
    if kind == 3:
        return None
    if kind == 4:
        return [rng.randrange(5) for _ in range(rng.randrange(4))]
    if kind == 5:
        return {"k": rng.randrange(3), "a": [True, None]}
    return rng.random() < 0.5


@dataclass
class Sim:
    seed: int
    replicas: int = 5
    steps: int = 80
    drop: float = 0.2
    dup: float = 0.1
    log: list = field(default_factory=list)

    def run(self) -> list:
        rng = random.Random(self.seed)
        clocks = [1_700_000_000_000 + rng.randrange(-5000, 5000) for _ in range(self.replicas)]
        dbs = []
        for i in range(self.replicas):
            ident = Identity.from_seed(bytes([i + 1]) * 32)
            r = random.Random(self.seed * 1000 + i)
            dbs.append(ostracon.open(identity=ident, clock=(lambda i=i: clocks[i]),
                                     random_bytes=lambda n, r=r: r.randbytes(n),
                                     sink_batch_ops=rng.randrange(1, 8)))
        in_flight: list[tuple[int, list[bytes]]] = []
        partition = set()
        ids = [f"doc{k}" for k in range(6)]
        for _ in range(self.steps):
            i = rng.randrange(self.replicas)
            db = dbs[i]
            # Clocks drift and sometimes jump backwards; the HLC must cope.
            clocks[i] += rng.choice([0, 1, 7, 1000, -3000])
            col = db.collection(rng.choice(["todos", "notes"]))
            doc_id = rng.choice(ids)
            try:
                act = rng.randrange(6)
                if col.get(doc_id) is None and rng.random() < 0.8:
                    act = 0
                if act == 0:
                    col.create({f: _value(rng) for f in rng.sample(FIELDS, rng.randrange(0, 4))}, id=doc_id)
                elif act == 1:
                    col.patch(doc_id, {rng.choice(FIELDS): _value(rng)})
                elif act == 2:
                    col.increment(doc_id, "votes", rng.choice([1, 2, -1, 0.5]))
                elif act == 3:
                    col.delete(doc_id)
                elif act == 4:
                    col.update(doc_id, {rng.choice(FIELDS): _value(rng)})
                else:
                    db.flush()
            except (ostracon.NotFoundError, ostracon.ConflictError):
                pass
            # Network events.
            if rng.random() < 0.1:
                a, b = rng.sample(range(self.replicas), 2)
                partition ^= {(min(a, b), max(a, b))}
            if rng.random() < 0.5:
                a, b = rng.sample(range(self.replicas), 2)
                if (min(a, b), max(a, b)) not in partition:
                    msg = dbs[a].blocks_since(dbs[b].version_vector())
                    msg = [e for e in msg if rng.random() >= self.drop]
                    msg += [e for e in msg if rng.random() < self.dup]
                    rng.shuffle(msg)
                    in_flight.append((b, msg))
            if in_flight and rng.random() < 0.6:
                dest, msg = in_flight.pop(rng.randrange(len(in_flight)))
                dbs[dest].apply_blocks(msg)
        # Heal: deliver what is in flight (late), flush everyone, then anti-entropy rounds.
        for dest, msg in in_flight:
            dbs[dest].apply_blocks(msg)
        for db in dbs:
            db.flush()
        for _ in range(3):
            for a in range(self.replicas):
                for b in range(self.replicas):
                    if a != b:
                        dbs[b].apply_blocks(dbs[a].blocks_since(dbs[b].version_vector()))
        return dbs
