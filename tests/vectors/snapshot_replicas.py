"""Snapshot bytes pinned across runtimes (tests/vectors/snapshot.json).

A snapshot (core/snapshot.py) is made in bounded steps (core/snapshot_encode.py) and must be
the same bytes whatever the step size. This file builds a few seeded replicas — simulator
runs (deletes, counters, concurrent writes, seals) and a text document edited in bursts —
and, for each, encodes its snapshot in one go and in steps of several sizes. Inside one
runtime the compressed bytes must all be equal; across runtimes the *uncompressed* payload
must be (zlib's output may differ between zlib builds, and snapshots are local, so only
the payload is pinned). It is also loaded back lazily and every document rebuilt, so the
row digests are checked in the runtime that runs this.

Used natively by tests/test_snapshot_encode.py and in Pyodide by e2e/runtime_checks.py
(`snapshot_vectors`). Depends only on `ostracon` and tests/simulator.py.

Regenerate after a deliberate format change:
    PYTHONPATH=py .venv/bin/python tests/vectors/snapshot_replicas.py --write
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import sys
import zlib
from typing import Any

#: Step sizes the encoder runs with beside the one-go dump: one document per step, a few,
#: and the default.
STEP_SIZES = (1, 3, 100)
#: Simulator seeds whose first replica is snapshotted.
SIM_SEEDS = (0, 1, 2)
VECTOR_FILE = "snapshot.json"


def _text_replica() -> Any:
    """One device: a text body edited in bursts (astral characters, deletes), a counter and
    a deleted document; a fixed identity, clock and randomness."""
    import ostracon
    from ostracon.crypto.identity import Identity

    clock = [1_700_000_000_000]
    rng = random.Random(11)
    db = ostracon.open(identity=Identity.from_seed(bytes([7]) * 32), clock=lambda: clock[0],
                       random_bytes=rng.randbytes)
    notes = db.collection("notes")
    notes.create({"title": "t", "body": "a plain body", "n": 1}, id="n1")
    h = notes.text("n1", "body")
    for i in range(40):
        clock[0] += 250
        if i % 5 == 4:
            h.delete(i % len(h), 2)
        else:
            h.insert(len(h) // 2, ["ab", "é", "😀", "中 ", "e\u0301"][i % 5])
        if i % 10 == 9:
            db.flush()
    notes.increment("n1", "n", 4)
    notes.create({"title": "gone"}, id="n2")
    notes.delete("n2")
    db.flush()
    return db


def replicas() -> dict[str, Any]:
    """The seeded replicas by name (the same in every runtime)."""
    from simulator import Sim

    out = {f"sim{seed}": Sim(seed).run()[0].replica for seed in SIM_SEEDS}
    out["text"] = _text_replica().replica
    return out


def describe(replica: Any) -> dict:
    """{"bytes", "sha256"} of the replica's uncompressed snapshot payload. Raises
    AssertionError when a step size gives other bytes than the one-go dump, or when the
    snapshot loaded back lazily does not rebuild every document as it was."""
    from ostracon.core import snapshot
    from ostracon.core.replica import Replica
    from ostracon.core.snapshot_encode import SnapshotEncoder

    data = snapshot.dump(replica)
    for k in STEP_SIZES:
        stepped = SnapshotEncoder(replica, step_docs=k, watch=False).run()
        if stepped != data:
            raise AssertionError(f"step size {k} gives other snapshot bytes than the one-go dump")
    back = Replica(replica.actor, require_signatures=False)
    if snapshot.load(back, data, lazy=True) != snapshot.SNAPSHOT_FORMAT:
        raise AssertionError("the snapshot was not read in the current format")
    for name, docs in replica.collections.items():
        for doc_id, d in docs.items():
            if back.collections[name][doc_id].digest() != d.digest():
                raise AssertionError(f"{name}/{doc_id} loaded back lazily differs")
    payload = zlib.decompress(data)
    return {"bytes": len(payload), "sha256": hashlib.sha256(payload).hexdigest()}


def compute() -> dict:
    return {"format": "ostracon-snapshot-vectors", "snapshot_format": _format(),
            "replicas": {name: describe(r) for name, r in replicas().items()}}


def _format() -> int:
    from ostracon.core.snapshot import SNAPSHOT_FORMAT

    return SNAPSHOT_FORMAT


def check(path: str) -> dict:
    """What `compute` gives, raising AssertionError naming each replica whose payload is not
    the one `path` pins."""
    with open(path, encoding="utf-8") as f:
        want = json.load(f)
    got = compute()
    bad = [n for n in sorted(set(want["replicas"]) | set(got["replicas"]))
           if want["replicas"].get(n) != got["replicas"].get(n)]
    if bad or want["snapshot_format"] != got["snapshot_format"]:
        raise AssertionError(f"snapshot payloads differ from {VECTOR_FILE} for {bad or 'the format'}: {got}")
    return got


if __name__ == "__main__":
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, os.path.dirname(here))  # tests/: the simulator
    out = json.dumps(compute(), indent=1, sort_keys=True) + "\n"
    if "--write" in sys.argv:
        with open(os.path.join(here, VECTOR_FILE), "w", encoding="utf-8") as f:
            f.write(out)
    else:
        print(out, end="")
