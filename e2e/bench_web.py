"""`make bench-web`: the browser runtime's numbers beside native, in one run.

- W1 (10,000 docs x 10 fields, one write per doc, then flush): native (memory, file),
  Pyodide under Node (memory), the Chromium worker (IndexedDB + WebCrypto) running the loop
  in Python, and the same through the JS API (one RPC per write, pipelined; and createMany);
- Pyodide boot under Node and Chromium, page load → first query result;
- cold open of the 10,000 documents from IndexedDB in a new page;
- IndexedDB write throughput through the sink (records per second of W1 in the worker).
Not part of `make test` (timings are not asserted).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "e2e"), str(ROOT / "tests")]

import ostracon  # noqa: E402
from bench_w1 import w1  # noqa: E402
from conftest import CHROMIUM, CHROMIUM_ARGS, serve_directory  # noqa: E402


def native() -> dict:
    out = {"memory": w1(ostracon.open())}
    with tempfile.TemporaryDirectory() as d:
        db = ostracon.open(os.path.join(d, "w1"))
        out["file"] = w1(db)
        db.close()
    return out


def node(dist: Path) -> dict:
    r = subprocess.run(["node", "--experimental-wasm-stack-switching", str(ROOT / "e2e/node/bench.mjs"),
                        "--dist", str(dist)], capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(r.stdout.strip().splitlines()[-1])


OPEN = """async (name) => {
  const t0 = performance.now(); const phases = {};
  window.db = await Ostracon.open({name, testing: true, onProgress: (p) => { phases[p.phase] = p.ms; }});
  const t1 = performance.now();
  const first = await db.collection("w1").scan({limit: 1});
  return {open_ms: t1 - t0, first_query_ms: performance.now() - t0, phases,
          docs_seen: first.docs.length, since_navigation_ms: performance.now()};
}"""


def chromium(dist: Path) -> dict:
    from playwright.sync_api import sync_playwright

    srv, url = serve_directory(dist)
    name = f"bench-{uuid.uuid4().hex[:8]}"
    res: dict = {}
    try:
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            ctx = b.new_context()
            page = ctx.new_page()
            page.goto(f"{url}/__e2e__.html")
            page.wait_for_function("window.__ostraconLoaded === true")
            res["open_cold"] = page.evaluate(OPEN, name)
            page.evaluate("async (src) => db._call('__testInstall', '/home/pyodide/bench', {'bench_w1.py': src})",
                          (ROOT / "e2e" / "bench_w1.py").read_text())
            res["w1_worker_python"] = json.loads(page.evaluate(
                "async () => db._call('__testCall', 'bench_w1', 'w1_json', ['host'])"))
            res["w1_js_api_per_call"] = page.evaluate("""async () => {
              const t = db.collection("w1js"); const t0 = performance.now(); const ps = [];
              for (let i = 0; i < 10000; i++) {
                const d = {}; for (let j = 0; j < 10; j++) d["f" + j] = j % 3 ? i * 31 + j : `v${i}-${j}`;
                ps.push(t.create(d));
              }
              await Promise.all(ps); await db.flush();
              const s = (performance.now() - t0) / 1000;
              return {seconds: s, ops_per_s: Math.round(100000 / s), docs_per_s: Math.round(10000 / s)};
            }""")
            res["w1_js_api_createMany"] = page.evaluate("""async () => {
              const t = db.collection("w1many"); const t0 = performance.now();
              for (let b = 0; b < 100; b++) {
                const docs = [];
                for (let i = b * 100; i < b * 100 + 100; i++) {
                  const d = {}; for (let j = 0; j < 10; j++) d["f" + j] = j % 3 ? i * 31 + j : `v${i}-${j}`;
                  docs.push(d);
                }
                await t.createMany(docs);
              }
              await db.flush();
              const s = (performance.now() - t0) / 1000;
              return {seconds: s, ops_per_s: Math.round(100000 / s), docs_per_s: Math.round(10000 / s)};
            }""")
            page.evaluate("async () => db.close()")
            page.close()
            # Cold open of the 30,000 stored documents (the W1 collections) in a new page.
            page = ctx.new_page()
            t0 = time.perf_counter()
            page.goto(f"{url}/__e2e__.html")
            page.wait_for_function("window.__ostraconLoaded === true")
            res["reopen"] = page.evaluate(OPEN, name)
            res["reopen"]["page_load_to_first_query_ms"] = round((time.perf_counter() - t0) * 1000)
            res["reopen"]["docs"] = page.evaluate("async () => db.collection('w1').count()")
            page.evaluate("async () => db.close()")
            b.close()
    finally:
        srv.shutdown()
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dist", default=str(ROOT / "dist" / "web"))
    a = ap.parse_args()
    dist = Path(a.dist)
    nat = native()
    nd = node(dist)
    ch = chromium(dist)
    base = nat["memory"]["ops_per_s"]
    rows = [
        ("native, memory storage", nat["memory"]),
        ("native, file storage", nat["file"]),
        ("pyodide/node, memory storage", nd["w1"]),
        ("chromium worker, python loop, IndexedDB", ch["w1_worker_python"]),
        ("chromium JS API, 1 RPC per write", ch["w1_js_api_per_call"]),
        ("chromium JS API, createMany(100)", ch["w1_js_api_createMany"]),
    ]
    print("\nW1: 10,000 docs x 10 fields (100,000 field sets), one write per doc, then flush")
    print(f"{'runtime':44} {'seconds':>8} {'ops/s':>9} {'docs/s':>8} {'x native mem':>12}")
    for label, r in rows:
        print(f"{label:44} {r['seconds']:8.2f} {r['ops_per_s']:9,} {r['docs_per_s']:8,} {r['ops_per_s'] / base:12.2f}")
    fs = nat["file"]["ops_per_s"]
    print(f"\nchromium worker (IndexedDB) vs native file storage: {ch['w1_worker_python']['ops_per_s'] / fs:.2f}x "
          f"(target >= 0.4x)")
    print(f"IndexedDB sink throughput in W1: ~{ch['w1_worker_python']['docs_per_s']:,} records/s "
          f"(one transaction per 100 blocks + 1 seal)")
    print(f"\npyodide boot under node: {nd['boot']['pyodideMs']:.0f} ms + wheels {nd['boot']['packagesMs']:.0f} ms")
    oc, ro = ch["open_cold"], ch["reopen"]
    print(f"chromium, new context: Ostracon.open {oc['open_ms']:.0f} ms (phases {oc['phases']}), "
          f"first query {oc['first_query_ms']:.0f} ms")
    print(f"chromium, reopen with {ro['docs']:,} docs in 'w1' (30,000 stored): open {ro['open_ms']:.0f} ms "
          f"(phases {ro['phases']}), page load -> first query result {ro['page_load_to_first_query_ms']} ms")
    print(json.dumps({"native": nat, "node": nd, "chromium": ch}, indent=1), file=sys.stderr)


if __name__ == "__main__":
    main()
