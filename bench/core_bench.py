"""Core workloads W1-W3 for Ostracon and pycrdt. One (system, workload) per call,
so each runs in a fresh process and its peak RSS is its own. Prints one JSON line.

    python bench/core_bench.py ostracon W1
"""

from __future__ import annotations

import json
import os
import resource
import sys
import tempfile
import time

DOCS = int(os.environ.get("BENCH_DOCS", "10000"))
FIELDS = 10
W2_DOCS = int(os.environ.get("BENCH_W2_DOCS", "5000"))  # × 10 fields = 50,000 field writes per replica


def _doc(i: int) -> dict:
    return {f"f{k}": (i * 31 + k) if k % 3 else f"value {i}-{k}" for k in range(FIELDS)}


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ------------------------------------------------------------------ ostracon

def _open_ost(path=None, seed=1, driver=True):
    import ostracon
    from ostracon.crypto.identity import Identity
    t = [1_700_000_000_000]

    def clock():
        t[0] += 1
        return t[0]
    return ostracon.open(path, identity=Identity.from_seed(bytes([seed]) * 32), clock=clock, driver=driver)


def ost_w1() -> dict:
    db = _open_ost()
    col = db.collection("docs")
    t0 = time.perf_counter()
    for i in range(DOCS):
        col.create(_doc(i), id=f"doc{i:06d}")
    db.flush()
    dt = time.perf_counter() - t0
    return {"ops_per_s": DOCS * FIELDS / dt, "seconds": dt, "peak_rss_mb": _rss_mb()}


def ost_w2() -> dict:
    a, b = _open_ost(seed=1), _open_ost(seed=2)
    half = W2_DOCS // 2
    for i in range(W2_DOCS):
        a.collection("docs").create(_doc(i), id=f"doc{i:06d}")
        b.collection("docs").create(_doc(i + 7), id=f"doc{i + half:06d}")
    a.flush()
    b.flush()
    t0 = time.perf_counter()
    to_b = a.blocks_since(b.version_vector())
    to_a = b.blocks_since(a.version_vector())
    b.apply_blocks(to_b)
    a.apply_blocks(to_a)
    dt = time.perf_counter() - t0
    assert a.state_hash() == b.state_hash()
    nbytes = sum(map(len, to_a)) + sum(map(len, to_b))
    return {"seconds": dt, "bytes": nbytes, "peak_rss_mb": _rss_mb()}


def ost_w3() -> dict:
    import ostracon
    with tempfile.TemporaryDirectory() as d:
        db = _open_ost(os.path.join(d, "db"))
        col = db.collection("docs")
        for i in range(DOCS):
            col.create(_doc(i), id=f"doc{i:06d}")
        db.compact()
        db.close()
        t0 = time.perf_counter()
        db = ostracon.open(os.path.join(d, "db"))
        first = db.collection("docs").get("doc000000")
        dt = time.perf_counter() - t0
        assert first is not None and first["f1"] == 1
        t1 = time.perf_counter()
        n = len(db.collection("docs").scan(limit=DOCS + 1)[0])
        all_dt = time.perf_counter() - t1 + dt
        assert n == DOCS
        size = sum(os.path.getsize(os.path.join(d, "db", f)) for f in os.listdir(os.path.join(d, "db")))
        db.close()
    return {"seconds": dt, "read_all_seconds": all_dt, "bytes": size, "peak_rss_mb": _rss_mb()}


# ------------------------------------------------------------------ pycrdt

def y_w1() -> dict:
    from pycrdt import Doc, Map
    doc = Doc()
    root = doc.get("docs", type=Map)
    t0 = time.perf_counter()
    for i in range(DOCS):
        with doc.transaction():
            root[f"doc{i:06d}"] = Map(_doc(i))
    dt = time.perf_counter() - t0
    return {"ops_per_s": DOCS * FIELDS / dt, "seconds": dt, "peak_rss_mb": _rss_mb()}


def y_w2() -> dict:
    from pycrdt import Doc, Map
    a, b = Doc(client_id=1), Doc(client_id=2)
    ra, rb = a.get("docs", type=Map), b.get("docs", type=Map)
    half = W2_DOCS // 2
    for i in range(W2_DOCS):
        with a.transaction():
            ra[f"doc{i:06d}"] = Map(_doc(i))
        with b.transaction():
            rb[f"doc{i + half:06d}"] = Map(_doc(i + 7))
    t0 = time.perf_counter()
    to_b = a.get_update(b.get_state())
    to_a = b.get_update(a.get_state())
    b.apply_update(to_b)
    a.apply_update(to_a)
    dt = time.perf_counter() - t0
    assert len(ra) == len(rb)
    return {"seconds": dt, "bytes": len(to_a) + len(to_b), "peak_rss_mb": _rss_mb()}


def y_w3() -> dict:
    from pycrdt import Doc, Map
    doc = Doc()
    root = doc.get("docs", type=Map)
    for i in range(DOCS):
        with doc.transaction():
            root[f"doc{i:06d}"] = Map(_doc(i))
    blob = doc.get_update()
    del doc, root
    t0 = time.perf_counter()
    doc = Doc()
    doc.apply_update(blob)
    everything = doc.get("docs", type=Map).to_py()
    dt = time.perf_counter() - t0
    assert everything["doc000000"]["f1"] == 1 and len(everything) == DOCS
    return {"seconds": dt, "read_all_seconds": dt, "bytes": len(blob), "peak_rss_mb": _rss_mb()}


RUNS = {("ostracon", "W1"): ost_w1, ("ostracon", "W2"): ost_w2, ("ostracon", "W3"): ost_w3,
        ("pycrdt", "W1"): y_w1, ("pycrdt", "W2"): y_w2, ("pycrdt", "W3"): y_w3}

if __name__ == "__main__":
    system, workload = sys.argv[1], sys.argv[2]
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "py"))
    print(json.dumps(RUNS[(system, workload)]()))
