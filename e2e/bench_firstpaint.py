"""First paint and fast reopen in Chromium (part of `make bench-web`; runs alone too:
`python e2e/bench_firstpaint.py --dist dist/web`).

- First paint: a page that, like the Notes app, reads the stored documents from the read view
  (`Ostracon.peek`) while it starts the engine (`Ostracon.open`): milliseconds from navigation
  to the list painted from the view, and to the engine being ready, in a new page of a warm
  context with `DOCS` documents stored.
- Reopen: engine ready for a database holding `DOCS` documents (written, flushed and compacted
  by the worker's idle tick, as an app leaves it) minus engine ready for an empty one; each is
  the median of `ROUNDS` new pages, alternating, so both see the same machine load.
Timings are reported, never asserted.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "e2e"), str(ROOT / "tests")]

from conftest import CHROMIUM, CHROMIUM_ARGS, serve_directory  # noqa: E402

# Documents stored (10 fields each, like W1): the reopen size.
DOCS = 10_000
# Pages per measured case; the median is reported.
ROUNDS = 3
# Goals of the browser runtime (docs/BROWSER.md, "First paint and reopen").
GOAL_FIRST_PAINT_MS = 300
GOAL_PAINT_TO_READY = 0.1
GOAL_REOPEN_ADDS_MS = 300

PAGE = "/__firstpaint__.html"
# Reads the view and starts the engine at once, as web/demo/firstpaint.js does; times are
# performance.now(), i.e. milliseconds since navigation started.
PAGE_HTML = """<!doctype html>
<html><head><meta charset="utf-8"><title>first paint</title></head><body><ul id="list"></ul>
<script type="module">
import Ostracon from "/ostracon.js";
const q = new URLSearchParams(location.search);
const out = window.__fp = {moduleMs: performance.now()};
const opened = Ostracon.open({name: q.get("name"), tabs: "exclusive",
  onProgress: (p) => { (out.phases = out.phases || {})[p.phase] = p.ms; }})
  .then((db) => { out.readyMs = performance.now(); window.db = db; },
        (e) => { out.error = `${e.name}: ${e.message}`; });
const r = await Ostracon.peek(q.get("name"), q.get("col"));
out.peekMs = performance.now();
out.count = r.docs ? r.docs.length : null;
out.reason = r.reason;
if (r.docs) {
  const ul = document.getElementById("list");
  const frag = document.createDocumentFragment();
  for (const d of r.docs) {
    const li = document.createElement("li");
    li.textContent = `${d._id} ${String(d.f0)} ${String(d.f1)}`;
    frag.append(li);
  }
  ul.append(frag);
}
requestAnimationFrame(() => setTimeout(() => { out.paintMs = performance.now(); }, 0));
await opened;
out.done = true;
</script></body></html>"""

FILL = """async ([name, docs]) => {
  const db = await Ostracon.open({name, tabs: "exclusive"});
  const t = db.collection("notes");
  for (let b = 0; b < docs; b += 500) {
    const batch = [];
    for (let i = b; i < Math.min(docs, b + 500); i++) {
      const d = {}; for (let j = 0; j < 10; j++) d["f" + j] = j % 3 ? i * 31 + j : `v${i}-${j}`;
      batch.push(d);
    }
    await t.createMany(batch);
  }
  await db.flush();
  await db._call("tick");  // the worker's idle tick: compacts the log into a snapshot
  const count = await t.count();
  await db.close();
  return count;
}"""

OPEN = """async (name) => {
  const t0 = performance.now(); const phases = {};
  const db = await Ostracon.open({name, tabs: "exclusive", onProgress: (p) => { phases[p.phase] = p.ms; }});
  const ms = performance.now() - t0;
  const n = await db.collection("notes").count();
  await db.close();
  return {ms, phases, docs: n};
}"""


def _page(ctx, url: str, path: str):
    page = ctx.new_page()
    page.goto(url + path)
    page.wait_for_function("window.__fp ? window.__fp.done === true : window.__ostraconLoaded === true",
                           timeout=900_000)
    error = page.evaluate("window.__fp && window.__fp.error")
    if error:
        raise RuntimeError(f"engine did not open: {error}")
    return page


def measure(browser, url: str, docs: int = DOCS, rounds: int = ROUNDS) -> dict:
    """First paint and reopen numbers (dict; `rows` turns it into the bench table's rows)."""
    ctx = browser.new_context()
    ctx.route(f"{url}{PAGE}*", lambda route: route.fulfill(status=200, body=PAGE_HTML,
                                                              content_type="text/html; charset=utf-8"))
    name = f"fp-{uuid.uuid4().hex[:8]}"
    try:
        page = _page(ctx, url, "/__e2e__.html")
        stored = page.evaluate(FILL, [name, docs])
        page.close()
        paints, opens, empties = [], [], []
        for _ in range(rounds):
            page = _page(ctx, url, f"{PAGE}?name={name}&col=notes")
            paints.append(page.evaluate("window.__fp"))
            page.close()
            for target, out in ((name, opens), (f"fp-empty-{uuid.uuid4().hex[:8]}", empties)):
                page = _page(ctx, url, "/__e2e__.html")
                out.append(page.evaluate(OPEN, target))
                page.close()
    finally:
        ctx.close()
    med = statistics.median
    paint_ms = med(p["paintMs"] for p in paints)
    ready_ms = med(p["readyMs"] for p in paints)
    reopen_ms, empty_ms = med(o["ms"] for o in opens), med(o["ms"] for o in empties)
    return {
        "docs": stored, "rounds": rounds,
        "first_paint_ms": round(paint_ms), "peek_ms": round(med(p["peekMs"] for p in paints)),
        "module_ms": round(med(p["moduleMs"] for p in paints)), "painted_docs": paints[0]["count"],
        "peek_reason": paints[0]["reason"], "ready_ms": round(ready_ms),
        "paint_to_ready": round(paint_ms / ready_ms, 3),
        "reopen_ms": round(reopen_ms), "empty_open_ms": round(empty_ms),
        "reopen_adds_ms": round(reopen_ms - empty_ms),
        "reopen_phases": opens[-1]["phases"], "empty_phases": empties[-1]["phases"],
        "reopen_docs": opens[-1]["docs"],
    }


def rows(r: dict | None) -> list[tuple[str, str, str]]:
    """(target, measured, goal) rows for the bench-web table."""
    if not r:
        return [("first paint from the read view", "not measured", f"<= {GOAL_FIRST_PAINT_MS} ms"),
                ("reopen, 10,000 docs (compacted) adds", "not measured", f"<= {GOAL_REOPEN_ADDS_MS} ms")]
    n = f"{r['docs']:,}"
    return [
        (f"first paint, {n} docs from the read view", f"{r['first_paint_ms']} ms",
         f"<= {GOAL_FIRST_PAINT_MS} ms after navigation"),
        ("first paint / engine ready (same page)", f"{r['paint_to_ready']:.2f}x ({r['ready_ms']} ms)",
         f"<= {GOAL_PAINT_TO_READY}x"),
        (f"reopen, {n} docs (compacted) adds", f"{r['reopen_adds_ms']} ms",
         f"<= {GOAL_REOPEN_ADDS_MS} ms ({r['reopen_ms']} vs {r['empty_open_ms']} ms)"),
    ]


def main() -> None:
    from playwright.sync_api import sync_playwright

    ap = argparse.ArgumentParser()
    ap.add_argument("--dist", default=str(ROOT / "dist" / "web"))
    ap.add_argument("--docs", type=int, default=DOCS)
    ap.add_argument("--rounds", type=int, default=ROUNDS)
    a = ap.parse_args()
    srv, url = serve_directory(Path(a.dist))
    try:
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            r = measure(b, url, a.docs, a.rounds)
            b.close()
    finally:
        srv.shutdown()
    print(f"{'target':44} {'measured':>24}  goal")
    for t, m, g in rows(r):
        print(f"{t:44} {m:>24}  {g}")
    print(json.dumps(r, indent=1))


if __name__ == "__main__":
    main()
