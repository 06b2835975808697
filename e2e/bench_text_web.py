"""The automerge-paper trace in the browser runtimes, as ratios to native (`make bench-web`).

bench/bench_text.py's ostracon rows (the text CRDT committing a block per burst through a
Replica; the database API's `coll.text(...).splice` per transaction) run natively, in
Pyodide under Node and in Chromium's worker (through its test hooks), on the same trace file.
Printed: seconds per runtime, the ratio to native, and whether each ended at `endContent`.
Not part of `make test` (timings are not asserted).

    .venv/bin/python e2e/bench_text_web.py [--dist dist/web]
"""

from __future__ import annotations

import argparse
import base64
import json
import subprocess
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "e2e"), str(ROOT / "bench"), str(ROOT / "py")]

import bench_text  # noqa: E402
from conftest import CHROMIUM, CHROMIUM_ARGS, serve_directory  # noqa: E402

BENCH_DIR = "/home/pyodide/bench_text"
TRACE_B64 = "automerge-paper.json.gz.b64"


def files() -> dict[str, str]:
    return {"bench_text.py": (ROOT / "bench" / "bench_text.py").read_text(),
            TRACE_B64: base64.b64encode(bench_text.TRACE.read_bytes()).decode()}


def node(dist: Path) -> dict:
    script = ROOT / "e2e" / "node" / "bench_text.mjs"
    r = subprocess.run(["node", "--experimental-wasm-stack-switching", str(script), "--dist", str(dist)],
                       capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(r.stdout.strip().splitlines()[-1])


def chromium(dist: Path) -> dict:
    from playwright.sync_api import sync_playwright

    srv, url = serve_directory(dist)
    try:
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = b.new_context().new_page()
            page.goto(f"{url}/__e2e__.html")
            page.wait_for_function("window.__ostraconLoaded === true")
            page.evaluate("async (name) => { window.db = await Ostracon.open({name, testing: true}); }",
                          f"bench-text-{uuid.uuid4().hex[:8]}")
            page.evaluate("async ([d, f]) => db._call('__testInstall', d, f)", [BENCH_DIR, files()])
            out = json.loads(page.evaluate(
                "async ([p]) => db._call('__testCall', 'bench_text', 'ostracon_json', [p])",
                [f"{BENCH_DIR}/{TRACE_B64}"]))
            page.evaluate("async () => db.close()")
            b.close()
            return out
    finally:
        srv.shutdown()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dist", default=str(ROOT / "dist" / "web"))
    dist = Path(ap.parse_args().dist)
    rows = {"native": json.loads(bench_text.ostracon_json())}
    for name, fn in (("pyodide/node", node), ("chromium", chromium)):
        try:
            rows[name] = fn(dist)
        except Exception as e:  # noqa: BLE001 - one runtime failing still prints the others
            print(f"{name}: failed: {type(e).__name__}: {e}", file=sys.stderr)
    print("automerge-paper trace in the browser runtimes (bench/bench_text.py's ostracon rows)")
    print(f"{'path':24} {'runtime':14} {'time s':>8} {'× native':>9} {'load s':>8}  exact")
    for path, label in (("core", "core + blocks"), ("db", "database API")):
        base = rows["native"][path]["s"]
        for rt, r in rows.items():
            if path in r:
                x = r[path]
                print(f"{label:24} {rt:14} {x['s']:8.2f} {x['s'] / base:9.2f} {x['load_s']:8.3f}  {x['exact']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
