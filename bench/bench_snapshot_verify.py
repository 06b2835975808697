"""What verifying snapshot rows costs, natively (`python bench/bench_snapshot_verify.py`).

A replica holds `DOCS` documents (10 fields each, one block each). Reported (median of
`ROUNDS`): the snapshot's encoding (`dump`) and its part spent on row digests; a lazy load
(`load(lazy=True)`: unpack, CIDs, columns) and its part spent on the index digest; building
every document on first use and its part spent on row digests; an eager load; the bytes the
digests add. A format-4 snapshot of the same replica (no digests) is timed beside it: its
load rebuilds the documents from the blocks. Timings are reported, never asserted.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "py"))

import msgpack  # noqa: E402

import ostracon  # noqa: E402
from ostracon.core import snapshot  # noqa: E402
from ostracon.core.replica import Replica  # noqa: E402

DOCS = 10_000
ROUNDS = 5


def _replica(docs: int) -> Replica:
    db = ostracon.open(driver=False)
    ops = [{"collection": "c", "kind": "create", "id": f"d{i}",
            "doc": {f"f{j}": (i * 31 + j if j % 3 else f"v{i}-{j}") for j in range(10)}}
           for i in range(docs)]
    for b in range(0, docs, 500):
        db.send_many(ops[b:b + 500])
    db.flush()
    return db.replica


def _median(fn, rounds: int) -> float:
    out = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return statistics.median(out) * 1000


def _as_format_4(data: bytes) -> bytes:
    v = msgpack.unpackb(zlib.decompress(data), strict_map_key=False)
    v[0] = 4
    ci, ids, live, deletes, rows, _ = v[6]
    v[6] = [ci, ids, live, [dict(deletes).get(i, []) for i in range(len(ids))], snapshot.split_rows(rows)]
    del v[8]["index"]
    return zlib.compress(msgpack.packb(v, use_bin_type=True), snapshot.SNAPSHOT_ZLIB_LEVEL)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=DOCS)
    ap.add_argument("--rounds", type=int, default=ROUNDS)
    a = ap.parse_args()
    src = _replica(a.docs)
    actor = src.actor
    data = snapshot.dump(src)
    v = msgpack.unpackb(zlib.decompress(data), strict_map_key=False)
    rows = snapshot.split_rows(v[6][4])

    def fresh() -> Replica:
        return Replica(actor, require_signatures=False)

    def lazy() -> Replica:
        r = fresh()
        snapshot.load(r, data, lazy=True)
        return r

    def build_all() -> None:
        r = lazy()
        t = time.perf_counter()
        for d in r.collections["c"].values():
            d.heads  # noqa: B018 - first use builds the state
        built.append(time.perf_counter() - t)

    built: list[float] = []
    old = _as_format_4(data)
    res = {
        "dump_ms": _median(lambda: snapshot.dump(src), a.rounds),
        "row_digests_ms": _median(lambda: list(map(snapshot.row_digest, rows)), a.rounds),
        "lazy_load_ms": _median(lazy, a.rounds),
        "index_digest_ms": _median(lambda: snapshot.index_digest(v[2], v[3], v[4], v[5], v[6], v[7], v[8]), a.rounds),
        "eager_load_ms": _median(lambda: snapshot.load(fresh(), data), a.rounds),
        "format4_load_ms": _median(lambda: snapshot.load(fresh(), old, lazy=True), a.rounds),
    }
    for _ in range(a.rounds):
        build_all()
    res["first_use_all_ms"] = statistics.median(built) * 1000
    res["digest_bytes"] = len(data) - len(_as_format_4(data))
    res["snapshot_bytes"] = len(data)
    print(f"{a.docs} documents, median of {a.rounds}")
    for k, x in res.items():
        print(f"  {k:18} {x:12.1f}" if isinstance(x, float) else f"  {k:18} {x:12d}")


if __name__ == "__main__":
    main()
