"""Run every benchmark side by side with its peers in one run and print ratio tables.

    make bench                 # everything
    python bench/run.py core   # one group: core | durable | query | sync
Each measurement runs in a fresh process (so peak RSS is its own), REPEAT times; the median
is reported. Timing numbers are never asserted in tests: this is the only place they live.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPEAT = int(os.environ.get("BENCH_REPEAT", "3"))


def measure(script: str, *args: str) -> dict:
    runs = []
    for _ in range(REPEAT):
        out = subprocess.run([sys.executable, os.path.join(HERE, script), *args], check=True,
                             capture_output=True, text=True).stdout.strip().splitlines()[-1]
        runs.append(json.loads(out))
    keys = runs[0].keys()
    return {k: statistics.median(r[k] for r in runs) for k in keys}


def table(title: str, rows: list[tuple]) -> None:
    print(f"\n### {title}\n")
    print("| workload | metric | ostracon | peer | peer value | ratio (ostracon/peer) | target |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(str(x) for x in r) + " |")


def fmt(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:.3f}"


def core() -> None:
    rows = []
    o, p = measure("core_bench.py", "ostracon", "W1"), measure("core_bench.py", "pycrdt", "W1")
    rows.append(("W1 10k docs × 10 fields", "ops/s", fmt(o["ops_per_s"]), "pycrdt", fmt(p["ops_per_s"]),
                 f"{o['ops_per_s'] / p['ops_per_s']:.2f}×", "≥ 1.0×"))
    rows.append(("W1", "peak RSS MB", fmt(o["peak_rss_mb"]), "pycrdt", fmt(p["peak_rss_mb"]),
                 f"{o['peak_rss_mb'] / p['peak_rss_mb']:.2f}×", "-"))
    o, p = measure("core_bench.py", "ostracon", "W2"), measure("core_bench.py", "pycrdt", "W2")
    rows.append(("W2 exchange 2 × 50k field writes", "seconds", fmt(o["seconds"]), "pycrdt", fmt(p["seconds"]),
                 f"{o['seconds'] / p['seconds']:.2f}×", "≤ 2×"))
    rows.append(("W2", "bytes exchanged", fmt(o["bytes"]), "pycrdt", fmt(p["bytes"]),
                 f"{o['bytes'] / p['bytes']:.2f}×", "-"))
    o, p = measure("core_bench.py", "ostracon", "W3"), measure("core_bench.py", "pycrdt", "W3")
    rows.append(("W3 cold open → first read", "seconds", fmt(o["seconds"]), "pycrdt load+read all",
                 fmt(p["seconds"]), f"{o['seconds'] / p['seconds']:.2f}×", "≤ 1×"))
    rows.append(("W3 cold open → read all", "seconds", fmt(o["read_all_seconds"]), "pycrdt load+read all",
                 fmt(p["seconds"]), f"{o['read_all_seconds'] / p['seconds']:.2f}×", "-"))
    rows.append(("W3", "bytes on disk / update", fmt(o["bytes"]), "pycrdt", fmt(p["bytes"]),
                 f"{o['bytes'] / p['bytes']:.2f}×", "-"))
    table("Core: Ostracon vs pycrdt", rows)


def durable() -> None:
    o, s = measure("durable_bench.py", "ostracon", "D1"), measure("durable_bench.py", "sqlite3", "D1")
    rows = [("D1 durable 100k field sets, flush/100", "ops/s", fmt(o["ops_per_s"]), "sqlite3 WAL",
             fmt(s["ops_per_s"]), f"{o['ops_per_s'] / s['ops_per_s']:.2f}×", "≥ 2×")]
    d = measure("durable_bench.py", "ostracon", "D2")
    rows.append((f"D2 open {d['ops']:,.0f} ops: log only", "seconds", fmt(d["log_only_seconds"]),
                 "with snapshot", fmt(d["snapshot_seconds"]),
                 f"{d['log_only_seconds'] / d['snapshot_seconds']:.2f}×", "snapshot faster"))
    table("Durable storage", rows)
    lat = measure("durable_bench.py", "ostracon", "L1")
    ordinary = lat["driver_p50_us"]
    rows = [("L1 write latency, file db, default sink", "p50 µs", fmt(ordinary), "writer flushes inline",
             fmt(lat["inline_p50_us"]), f"{ordinary / lat['inline_p50_us']:.2f}×", "-"),
            ("L1", "p99 µs", fmt(lat["driver_p99_us"]), "writer flushes inline",
             fmt(lat["inline_p99_us"]), f"{lat['driver_p99_us'] / lat['inline_p99_us']:.2f}×", "-"),
            ("L1", "100th write µs (median)", fmt(lat["driver_hundredth_us"]), "writer flushes inline",
             fmt(lat["inline_hundredth_us"]), f"{lat['driver_hundredth_us'] / lat['inline_hundredth_us']:.2f}×",
             f"≤ 3× p50 (is {lat['driver_hundredth_us'] / ordinary:.1f}×)")]
    table("Write latency (driver vs inline flush)", rows)


def query() -> None:
    script = os.path.join(HERE, "bench_query.py")
    if os.path.exists(script):
        print(subprocess.run([sys.executable, script], check=True, capture_output=True, text=True).stdout)


def sync() -> None:
    script = os.path.join(HERE, "bench_sync.py")
    if os.path.exists(script):
        print(subprocess.run([sys.executable, script], check=True, capture_output=True, text=True).stdout)


GROUPS = {"core": core, "durable": durable, "query": query, "sync": sync}

if __name__ == "__main__":
    for name in sys.argv[1:] or list(GROUPS):
        GROUPS[name]()
