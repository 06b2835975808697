"""Writers during compaction, natively (`python bench/bench_compact.py`).

A file-storage database holds `DOCS` documents (10 fields each); a writer thread patches one
document after another while the main thread compacts. Two modes, alternating over `ROUNDS`:
"one go" (one encoding step holding the state lock throughout, as compaction did before it
ran in steps) and "in steps" (`Database.compact()`). Reported: the longest and the median
time one write took during compaction, the writes done meanwhile, the compaction's wall time.
Timings are reported, never asserted.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "py"))

import ostracon  # noqa: E402

DOCS = 9_000
ROUNDS = 3


def _round(docs: int, one_go: bool) -> dict:
    with tempfile.TemporaryDirectory() as d:
        db = ostracon.open(Path(d) / "db", driver=False)
        ops = [{"collection": "c", "kind": "create", "id": f"d{i}",
                "doc": {f"f{j}": (i * 31 + j if j % 3 else f"v{i}-{j}") for j in range(10)}}
               for i in range(docs)]
        for b in range(0, docs, 500):
            db.send_many(ops[b:b + 500])
        db.flush()
        waits: list[float] = []
        stop = threading.Event()

        def writer() -> None:
            c, k = db.collection("c"), 0
            while not stop.is_set():
                t = time.perf_counter()
                c.patch(f"d{k % docs}", {"w": k})
                waits.append(time.perf_counter() - t)
                k += 1
                time.sleep(0.001)

        th = threading.Thread(target=writer)
        th.start()
        t0 = time.perf_counter()
        run = db.compaction(step_docs=1 << 30 if one_go else ostracon.db.compaction.STEP_DOCS)
        while not run.step():
            pass
        wall = time.perf_counter() - t0
        stop.set()
        th.join()
        db.close()
    return {"max_ms": max(waits, default=0) * 1000, "median_ms": statistics.median(waits) * 1000 if waits else 0,
            "writes": len(waits), "wall_ms": wall * 1000}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=DOCS)
    ap.add_argument("--rounds", type=int, default=ROUNDS)
    a = ap.parse_args()
    runs: dict[str, list[dict]] = {"one go": [], "in steps": []}
    for _ in range(a.rounds):
        for mode in runs:
            runs[mode].append(_round(a.docs, mode == "one go"))
    med = statistics.median
    print(f"writes during compaction of {a.docs} documents, file storage (median of {a.rounds} rounds)")
    print(f"{'mode':10} {'longest write':>14} {'median write':>13} {'writes':>7} {'compaction':>11}")
    for mode, rs in runs.items():
        print(f"{mode:10} {med(r['max_ms'] for r in rs):>11.1f} ms {med(r['median_ms'] for r in rs):>10.2f} ms "
              f"{med(r['writes'] for r in rs):>7.0f} {med(r['wall_ms'] for r in rs):>8.0f} ms")


if __name__ == "__main__":
    main()
