"""Durable workloads, one (system, workload) per process; prints one JSON line.

D1: 100,000 field sets (10,000 docs × 10 fields) with a flush every 100 writes, vs sqlite3
    in WAL mode committing every 100 rows (synchronous=FULL: both fsync at each commit).
D2: open time of a 1,000,000-op store (100,000 docs × 10 fields) with and without a snapshot.
L1: write latency in a file database with the default sink (100 ops / 5 s): p50 and p99 of
    every write, and the median latency of the writes that fill a batch (every 100th), with
    the background driver (default) and without it (the writer flushes inline), same run.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from core_bench import DOCS, FIELDS, _doc, _open_ost, _rss_mb  # noqa: E402

D2_DOCS = int(os.environ.get("BENCH_D2_DOCS", "100000"))


def ost_d1() -> dict:
    with tempfile.TemporaryDirectory() as d:
        db = _open_ost(os.path.join(d, "db"))
        col = db.collection("docs")
        t0 = time.perf_counter()
        for i in range(DOCS):
            col.create(_doc(i), id=f"doc{i:06d}")  # the sink flushes (fsync) every 100 writes
        db.flush()
        dt = time.perf_counter() - t0
        db.close()
    return {"ops_per_s": DOCS * FIELDS / dt, "seconds": dt, "peak_rss_mb": _rss_mb()}


def sqlite_d1() -> dict:
    with tempfile.TemporaryDirectory() as d:
        con = sqlite3.connect(os.path.join(d, "db.sqlite"), isolation_level=None)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=FULL")
        cols = ", ".join(f"f{k}" for k in range(FIELDS))
        con.execute(f"CREATE TABLE docs (id TEXT PRIMARY KEY, {cols})")
        sql = f"INSERT INTO docs VALUES (?, {', '.join('?' * FIELDS)})"
        t0 = time.perf_counter()
        con.execute("BEGIN")
        for i in range(DOCS):
            doc = _doc(i)
            con.execute(sql, [f"doc{i:06d}"] + [doc[f"f{k}"] for k in range(FIELDS)])
            if (i + 1) % 100 == 0:
                con.execute("COMMIT")
                con.execute("BEGIN")
        con.execute("COMMIT")
        dt = time.perf_counter() - t0
        con.close()
    return {"ops_per_s": DOCS * FIELDS / dt, "seconds": dt, "peak_rss_mb": _rss_mb()}


def ost_d2() -> dict:
    import ostracon
    out = {}
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "db")
        db = _open_ost(path)
        col = db.collection("docs")
        for i in range(D2_DOCS):
            col.create(_doc(i), id=f"doc{i:07d}")
        db.close()
        t0 = time.perf_counter()
        db = ostracon.open(path)
        db.collection("docs").get("doc0000000")
        out["log_only_seconds"] = time.perf_counter() - t0
        db.compact()
        db.close()
        t0 = time.perf_counter()
        db = ostracon.open(path)
        db.collection("docs").get("doc0000000")
        out["snapshot_seconds"] = time.perf_counter() - t0
        db.close()
    out["ops"] = D2_DOCS * FIELDS
    out["peak_rss_mb"] = _rss_mb()
    return out


L1_WRITES = int(os.environ.get("BENCH_L1_WRITES", "20000"))


def _latencies(driver: bool) -> dict:
    import ostracon
    from ostracon.crypto.identity import Identity
    with tempfile.TemporaryDirectory() as d:
        db = ostracon.open(os.path.join(d, "db"), identity=Identity.from_seed(b"\x01" * 32),
                           driver=driver)
        col = db.collection("docs")
        lat = []
        for i in range(L1_WRITES):
            doc = _doc(i)
            t0 = time.perf_counter()
            col.create(doc, id=f"doc{i:06d}")
            lat.append(time.perf_counter() - t0)
        db.close()
    ordered = sorted(lat)
    hundredth = sorted(lat[99::100])
    return {"p50_us": ordered[len(ordered) // 2] * 1e6,
            "p99_us": ordered[int(len(ordered) * 0.99)] * 1e6,
            "hundredth_us": hundredth[len(hundredth) // 2] * 1e6}


def ost_l1() -> dict:
    out = {f"driver_{k}": v for k, v in _latencies(True).items()}
    out.update({f"inline_{k}": v for k, v in _latencies(False).items()})
    out["peak_rss_mb"] = _rss_mb()
    return out


RUNS = {("ostracon", "L1"): ost_l1, ("ostracon", "D1"): ost_d1, ("sqlite3", "D1"): sqlite_d1,
        ("ostracon", "D2"): ost_d2}

if __name__ == "__main__":
    print(json.dumps(RUNS[(sys.argv[1], sys.argv[2])]()))
