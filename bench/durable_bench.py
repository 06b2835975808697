"""Durable workloads, one (system, workload) per process; prints one JSON line.

D1: 100,000 field sets (10,000 docs × 10 fields) with a flush every 100 writes, vs sqlite3
    in WAL mode committing every 100 rows (synchronous=FULL: both fsync at each commit).
D2: open time of a 1,000,000-op store (100,000 docs × 10 fields) with and without a snapshot.
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


RUNS = {("ostracon", "D1"): ost_d1, ("sqlite3", "D1"): sqlite_d1, ("ostracon", "D2"): ost_d2}

if __name__ == "__main__":
    print(json.dumps(RUNS[(sys.argv[1], sys.argv[2])]()))
