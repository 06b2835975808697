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

#: Oracle mode: a collection with a schema and a unique index. Replica 0 never defines the
#: schema, so its writes can break it once merged; two emails for four ids make duplicates.
USERS_SDL = "type users { email: String!, name: String, votes: Int @crdt(type: pncounter) }"
EMAILS = ["a@x.org", "b@x.org"]


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


class _Skip(Exception):
    """The step wrote to the oracle's collection instead."""


@dataclass
class Sim:
    seed: int
    replicas: int = 5
    steps: int = 80
    drop: float = 0.2
    dup: float = 0.1
    #: check after every merge that each document satisfies its collection's schema and
    #: unique index, or is reported (schema_violations / unique_violations)
    oracle: bool = False
    log: list = field(default_factory=list)
    failures: list = field(default_factory=list)

    def _users_step(self, rng: random.Random, i: int, db) -> None:
        users = db.collection("users")
        doc_id = f"u{rng.randrange(4)}"
        act = rng.randrange(5)
        if users.get(doc_id) is None:
            act = 0
        if act == 0:
            doc = {"email": rng.choice(EMAILS), "name": rng.choice(["ann", "bo"])}
            if i == 0 and rng.random() < 0.5:
                del doc["email"]                 # no schema here: valid locally only
            users.create(doc, id=doc_id)
        elif act == 1:
            users.patch(doc_id, {rng.choice(["email", "name"]): rng.choice(EMAILS)})
        elif act == 2:
            users.increment(doc_id, "votes", rng.choice([1, -1]))
        elif act == 3:
            users.delete(doc_id)
        else:
            users.update(doc_id, {**users.get(doc_id), "name": "upd"})

    def check(self, db, where: str) -> None:
        """The merge-validity oracle (see `oracle`), computed from the documents."""
        users = db.collection("users")
        reported = {v["id"] for v in users.schema_violations()}
        for v in users.unique_violations():
            reported.update(v["ids"])
        live = users.find({}, fallback_docs_max=10**6)
        by_email: dict = {}
        for d in live:
            if type(d.get("email")) is str:
                by_email.setdefault(d["email"], []).append(d["_id"])
        for d in live:
            ok = by_email.get(d.get("email"), [d["_id"]]) == [d["_id"]]
            if ok and users.schema is not None:
                try:
                    users.schema.validate({k: v for k, v in d.items() if k[0] != "_"})
                except ostracon.SchemaValidationError:
                    ok = False
            if not ok and d["_id"] not in reported:
                self.failures.append((where, d["_id"]))

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
        if self.oracle:
            for i, db in enumerate(dbs):
                if i:
                    db.define_schema(USERS_SDL)
                db.collection("users").create_index("email", unique=True)
        in_flight: list[tuple[int, list[bytes]]] = []
        partition = set()
        ids = [f"doc{k}" for k in range(6)]
        for step in range(self.steps):
            i = rng.randrange(self.replicas)
            db = dbs[i]
            # Clocks drift and sometimes jump backwards; the HLC must cope.
            clocks[i] += rng.choice([0, 1, 7, 1000, -3000])
            col = db.collection(rng.choice(["todos", "notes"]))
            doc_id = rng.choice(ids)
            try:
                if self.oracle and rng.random() < 0.4:
                    self._users_step(rng, i, db)
                    raise _Skip
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
            except (_Skip, ostracon.NotFoundError, ostracon.ConflictError, ostracon.ValidationError):
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
                if self.oracle:
                    self.check(dbs[dest], f"seed {self.seed} step {step} replica {dest}")
        # Heal: deliver what is in flight (late), flush everyone, then anti-entropy rounds.
        for dest, msg in in_flight:
            dbs[dest].apply_blocks(msg)
            if self.oracle:
                self.check(dbs[dest], f"seed {self.seed} heal replica {dest}")
        for db in dbs:
            db.flush()
        for _ in range(3):
            for a in range(self.replicas):
                for b in range(self.replicas):
                    if a != b:
                        dbs[b].apply_blocks(dbs[a].blocks_since(dbs[b].version_vector()))
                        if self.oracle:
                            self.check(dbs[b], f"seed {self.seed} anti-entropy {a}->{b}")
        return dbs
