"""First paint and fast reopen in Chromium (part of `make bench-web`; runs alone too:
`python e2e/bench_firstpaint.py --dist dist/web`).

- First paint: a page that, like the Notes app, reads the stored documents from the read view
  (`Ostracon.peek`) while it starts the engine (`Ostracon.open`): milliseconds from navigation
  to the list painted from the view, and to the engine being ready, in a new page of a warm
  context with `DOCS` documents stored.
- Reopen: engine ready for a database holding `DOCS` documents (written, flushed and compacted
  by the worker's idle tick, as an app leaves it) minus engine ready for an empty one; each is
  the median of `ROUNDS` new pages, alternating, so both see the same machine load.
Both are measured twice (`measure_all`): in a browser profile on disk, as a returning visitor's
ordinary window, and in a private window (bench_setup.VISITORS), where Chromium keeps no code
cache and every page runs the engine's WebAssembly from V8's baseline tier again.
The bench page is served by the bench's own server over the bundle (serve_bench), like the
app's page, rather than through a Playwright route: a route sends every request of the page
through Playwright and turns off Chromium's HTTP cache, which added tens of ms to each module
fetch and made the engine recompile its WebAssembly on every page; a real visit has neither.
Numbers measured before that change are therefore not directly comparable (both the paint and
the engine's ready time are lower without the route). `phases_ms` breaks a first paint down
(PHASES). Timings are reported, never asserted.
"""

from __future__ import annotations

import json
import re
import statistics
import sys
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "e2e"), str(ROOT / "tests")]

from bench_setup import FILL_DOCS_JS, VISITORS, bench_arguments, open_page, serve_bundle, visitor_context  # noqa: E402
from conftest import DIST, _Server  # noqa: E402

# Documents stored (10 fields each, like W1): the reopen size.
DOCS = 10_000
# Pages per measured case; the median is reported (9: a new page's open varies by ±150 ms on
# the bench machine, as much as the reopen's own cost, and the medians of 5 pages still put
# the reopen's difference anywhere between 49 and 396 ms around a steady ~250 ms load step).
ROUNDS = 9
# Goals of the browser runtime (docs/BROWSER.md, "First paint and reopen").
GOAL_FIRST_PAINT_MS = 300
GOAL_PAINT_TO_READY = 0.1
GOAL_REOPEN_ADDS_MS = 300

PAGE = "/__firstpaint__.html"
# The Notes app's start (web/demo/index.html, early.js, firstscreen.js, boot.js), without the
# rest of the app: the build's two inline scripts, taken from dist/web/demo/index.html and put
# where the app page has them (EARLY, FIRST_SCREEN): early.js at the top of <head>, which
# starts reading the remembered space's first screen from the read view (startRead) while the
# page is parsed; firstscreen.js right after the list's elements, which draws the remembered
# first screen's rows from localStorage at once (on a returning visit: the app remembers them
# whenever it shows live data). Then the page's module, as boot.js does, paints the read view's
# first screen (web/demo/firstpaint.js) with the app's list (web/demo/listview.js), fills in
# the rest in idle pages, and only then starts the engine (after that paint, or
# FIRST_PAINT_HEAD_START_MS). Once the engine is ready the list shows live data, which also
# remembers the first screen for the next visit (the first visit has none: it reads the whole
# view before painting). The page's own inline script after FIRST_SCREEN (not the app's) only
# measures: the first paint is the first list drawn (the remembered rows, else the view's),
# and its time is rAF+setTimeout after drawing. Times are performance.now(), i.e. milliseconds
# since navigation.
PAGE_HTML = """<!doctype html>
<html><head><meta charset="utf-8"><title>first paint</title>
<!--EARLY--><link rel="modulepreload" href="/demo/early.js"><link rel="modulepreload" href="/readview.js">
<link rel="modulepreload" href="/demo/format.js"><link rel="modulepreload" href="/demo/remembered.js">
<link rel="modulepreload" href="/demo/state.js"><link rel="modulepreload" href="/demo/firstpaint.js">
<link rel="modulepreload" href="/demo/listview.js"><link rel="modulepreload" href="/demo/noterow.js"></head><body>
<main id="app" hidden><input id="search"><select id="filter"><option value="all" selected>all</option></select>
<select id="sort"><option value="updated" selected>updated</option></select>
<p id="empty" hidden>no notes</p><span id="list-count"></span><ul id="notes"></ul></main>
<!--FIRST_SCREEN--><link rel="modulepreload" href="/demo/firstscreen.js">
<script>
{
  const out = window.__fp = {};
  const r = window.__ostraconNotesRemembered;
  if (r) {
    out.rememberedStartMs = r.startedAt;
    out.rememberedMs = out.drawnMs = r.at;
    out.paintedIds = [...document.querySelectorAll(".note-item")].map((b) => b.dataset.id);
    requestAnimationFrame(() => setTimeout(() => { out.paintMs = performance.now(); }, 0));
  }
}
</script>
<script type="module">
import { takeStartedRead } from "/demo/early.js";
import { FIRST_SCREEN_ROWS, firstPaint, headStart, mark } from "/demo/firstpaint.js";
import { REMEMBERED_SLOT } from "/demo/firstscreen.js";
import { addNotes, compareNotes, paintNotes, renderList } from "/demo/listview.js";
import { state } from "/demo/state.js";
const q = new URLSearchParams(location.search);
const name = q.get("name"), col = q.get("col");
const out = window.__fp;
out.moduleMs = performance.now();
const remembered = globalThis[REMEMBERED_SLOT];
if (remembered) {
  delete globalThis[REMEMBERED_SLOT];
  mark("remembered", remembered);
}
const shown = () => [...document.querySelectorAll(".note-item")].slice(0, FIRST_SCREEN_ROWS).map((b) => b.dataset.id);
const run = firstPaint(name, col, {sort: "updated", compare: compareNotes("updated"), fill: addNotes,
  read: takeStartedRead(name, col, "updated"),
  paint: (docs) => {
    paintNotes(docs);
    out.viewIds = shown();
    out.viewDrawnMs = performance.now();
    if (out.drawnMs !== undefined) return;
    out.paintedIds = out.viewIds;
    out.drawnMs = out.viewDrawnMs;
    requestAnimationFrame(() => setTimeout(() => { out.paintMs = performance.now(); }, 0));
  }});
run.filled.then(() => { out.filledMs = performance.now(); });
try {
  await headStart(run);
  const { default: Ostracon } = await import("/ostracon.js");
  out.runtimeLoadedMs = performance.now();
  const db = await Ostracon.open({name, tabs: "exclusive",
    onProgress: (p) => { (out.phases = out.phases || {})[p.phase] = p.ms; }});
  out.readyMs = performance.now();
  run.live(db);
  state.db = db;
  state.live = true;
  const notes = new Map();
  for (let after = null; ;) {
    const page = await db.collection(col).scan({after, limit: 500});
    for (const d of page.docs) notes.set(d._id, d);
    if (!page.next) break;
    after = page.next;
  }
  state.notes = notes;
  renderList();
  out.liveIds = shown();
  out.liveMs = performance.now();
  window.db = db;
} catch (e) {
  out.error = `${e.name}: ${e.message}`;
}
out.timeline = window.__notes.timeline;
const nav = performance.getEntriesByType("navigation")[0];
out.nav = {responseEnd: nav.responseEnd, domInteractive: nav.domInteractive};
// The first paint's modules: when the last of them had arrived.
const mods = performance.getEntriesByType("resource").filter((r) => r.startTime < out.moduleMs
  && r.name.endsWith(".js") && (r.name.includes("/demo/") || r.name.endsWith("/readview.js")));
out.modulesMs = Math.max(...mods.map((r) => r.responseEnd));
out.done = true;
</script></body></html>"""

# What the Notes app remembers about its space (web/demo/early.js): the database to open, so
# that early.js starts the first screen's read at page load, as it does for a returning user.
REMEMBER_SPACE = """(name) => localStorage.setItem("ostracon-notes/space",
  JSON.stringify({kind: "kept", db: name, name: "bench", locked: false}))"""

FILL = """async ([name, docs]) => {
  FILL_DOCS_JS
  const db = await Ostracon.open({name, tabs: "exclusive"});
  const t = db.collection("notes");
  await fillDocs(t, docs);
  await db.flush();
  // The worker's idle ticks, as while an app sits idle: the first ones may write the read
  // view's rows, later ones compact the whole log into a snapshot (one tick may leave a tail
  // of the log, which every reopen would then replay: not what this bench measures).
  for (let i = 0; i < 30; i++) await db._call("tick");
  const count = await t.count();
  await db.close();
  return count;
}""".replace("FILL_DOCS_JS", FILL_DOCS_JS)

OPEN = """async (name) => {
  const t0 = performance.now(); const phases = {}; let steps = {};
  const db = await Ostracon.open({name, tabs: "exclusive", onProgress: (p) => {
    phases[p.phase] = p.ms;
    if (p.phase === "ready" && p.detail && p.detail.ms) steps = p.detail.ms;
  }});
  const ms = performance.now() - t0;
  const n = await db.collection("notes").count();
  await db.close();
  return {ms, phases, steps, docs: n};
}"""


def _page(ctx, url: str, path: str):
    page = open_page(ctx, url, path, "window.__fp ? window.__fp.done === true : window.__ostraconLoaded === true")
    error = page.evaluate("window.__fp && window.__fp.error")
    if error:
        raise RuntimeError(f"engine did not open: {error}")
    return page


# Where PAGE_HTML takes the app page's inline scripts (wasm-build/inline.py writes each as
# <script>…</script><link rel="modulepreload" href="MODULE">): placeholder -> module.
INLINE_SCRIPTS = {"<!--EARLY-->": "early.js", "<!--FIRST_SCREEN-->": "firstscreen.js"}
INLINE_SCRIPT_RE = re.compile(r'(<script>.*?</script>)<link rel="modulepreload" href="([^"]+)">', re.S)


def inline_scripts(dist: Path) -> dict[str, str]:
    """The inline <script> elements of the built app page, by the module each inlines."""
    page = dist / "demo" / "index.html"
    found = {m.group(2): m.group(1) for m in INLINE_SCRIPT_RE.finditer(page.read_text(encoding="utf-8"))}
    missing = sorted(set(INLINE_SCRIPTS.values()) - set(found))
    if missing:
        raise RuntimeError(f"{page} has no inline script of {', '.join(missing)}: rebuild it (make web)")
    return found


def bench_page(dist: Path) -> str:
    """PAGE_HTML with the app page's inline scripts in their places."""
    scripts = inline_scripts(dist)
    html = PAGE_HTML
    for mark, module in INLINE_SCRIPTS.items():
        html = html.replace(mark, scripts[module])
    return html


def serve_bench(dist: Path, workdir: Path) -> tuple[_Server, str]:
    """Serve the bundle `dist` and the bench page (written to `workdir` with the app page's
    inline scripts, served as a file like the app's page: e2e/bench_setup.py) on a loopback
    port: (server, base URL)."""
    return serve_bundle(dist, {PAGE: bench_page(dist)}, workdir)


def _visit(ctx, url: str, name: str) -> dict:
    page = _page(ctx, url, f"{PAGE}?name={name}&col=notes")
    fp = page.evaluate("window.__fp")
    page.close()
    peek = next(e for e in fp["timeline"] if e["event"] == "peek")
    filled = [e for e in fp["timeline"] if e["event"] == "filled"]
    first = [e for e in fp["timeline"] if e["event"] == "firstpaint"]
    painted = fp.get("paintedIds") or []
    return {
        "html_ms": fp["nav"]["responseEnd"], "read_start_ms": peek["startedAt"],
        "remembered_start_ms": fp.get("rememberedStartMs"), "remembered_ms": fp.get("rememberedMs"),
        "idb_open_ms": (peek.get("timing") or {}).get("openMs"), "read_ms": (peek.get("timing") or {}).get("readMs"),
        "read_done_ms": peek["doneAt"], "modules_ms": fp["modulesMs"],
        "parsed_ms": fp["nav"]["domInteractive"], "module_ms": fp["moduleMs"], "peek_ms": peek["at"],
        "view_drawn_ms": fp.get("viewDrawnMs"), "drawn_ms": fp.get("drawnMs"), "paint_ms": fp.get("paintMs"),
        "filled_ms": fp.get("filledMs"), "remembered": fp.get("rememberedMs") is not None,
        "ready_ms": fp["readyMs"], "runtime_loaded_ms": fp["runtimeLoadedMs"],
        "painted": first[0]["count"] if first else 0, "reason": peek["reason"], "early": peek["early"],
        "inline": peek["inline"],
        "hinted": peek["hinted"], "filled_docs": filled[0]["count"] if filled else None,
        "same_order": all(ids == (fp.get("liveIds") or [])[:len(ids)] for ids in (painted, fp.get("viewIds") or [])),
    }


# Where a first paint's milliseconds go, in page order (each: ms after navigation, except the
# two durations inside the read): the page's HTML received; the early read started
# (early.js); the remembered first screen's script started and its rows drawn
# (firstscreen.js; none on a visit without remembered rows); IndexedDB opened (duration), the
# rows read and checked (duration), the read answered; the first paint's modules all
# received; the page parsed; the page's module running; the read taken up; the view's rows
# drawn; the first list drawn (the remembered rows, else the view's); the frame painted; the
# whole view filled in; the runtime loaded; the engine ready.
PHASES = ("html_ms", "read_start_ms", "remembered_start_ms", "remembered_ms", "idb_open_ms", "read_ms",
          "read_done_ms", "modules_ms", "parsed_ms", "module_ms", "peek_ms", "view_drawn_ms", "drawn_ms",
          "paint_ms", "filled_ms", "runtime_loaded_ms", "ready_ms")


def measure(ctx, visitor: str, docs: int = DOCS, rounds: int = ROUNDS, dist: Path = DIST) -> dict:
    """First paint and reopen numbers in the browser context `ctx` of `visitor`
    (bench_setup.VISITORS, from `visitor_context`); a dict that `rows` turns into the bench
    table's rows. The pages come from a server of this bench over the bundle `dist`
    (serve_bench)."""
    workdir = tempfile.TemporaryDirectory(prefix="ostracon-bench-firstpaint-")
    srv, url = serve_bench(dist, Path(workdir.name))
    name = f"fp-{uuid.uuid4().hex[:8]}"
    try:
        page = _page(ctx, url, "/__e2e__.html")
        stored = page.evaluate(FILL, [name, docs])
        page.evaluate(REMEMBER_SPACE, name)
        page.close()
        # The first visit has no remembered first screen: it reads the whole view to paint.
        unhinted = _visit(ctx, url, name)
        paints, opens, empties = [], [], []
        for _ in range(rounds):
            paints.append(_visit(ctx, url, name))
            for target, out in ((name, opens), (f"fp-empty-{uuid.uuid4().hex[:8]}", empties)):
                page = _page(ctx, url, "/__e2e__.html")
                out.append(page.evaluate(OPEN, target))
                page.close()
    finally:
        srv.shutdown()
        srv.server_close()
        workdir.cleanup()
    med = statistics.median

    def phase(key: str) -> int | None:
        vals = [p[key] for p in paints if p[key] is not None]
        return round(med(vals)) if vals else None

    # A visit that painted nothing before its engine was ready (the read timed out on a
    # loaded machine, say) counts as painting when the engine was ready.
    paint_ms = med(p["paint_ms"] if p["paint_ms"] is not None else p["ready_ms"] for p in paints)
    ready_ms = med(p["ready_ms"] for p in paints)
    reopen_ms, empty_ms = med(o["ms"] for o in opens), med(o["ms"] for o in empties)
    return {
        "visitor": visitor, "docs": stored, "rounds": rounds,
        "first_paint_ms": round(paint_ms), "ready_ms": round(ready_ms),
        "paint_to_ready": round(paint_ms / ready_ms, 3),
        "phases_ms": {k: phase(k) for k in PHASES},
        "painted_docs": paints[0]["painted"], "peek_reason": paints[0]["reason"],
        "early_read": all(p["early"] for p in paints), "inline_read": all(p["inline"] for p in paints),
        "hinted": all(p["hinted"] for p in paints), "filled_docs": paints[0]["filled_docs"],
        "remembered_paint": all(p["remembered"] for p in paints),
        "first_screen_order_kept": all(p["same_order"] for p in paints),
        "first_visit_paint_ms": round(unhinted["paint_ms"] or unhinted["ready_ms"]),
        "first_visit_painted": unhinted["painted"], "unpainted_visits": sum(p["paint_ms"] is None for p in paints),
        "reopen_ms": round(reopen_ms), "empty_open_ms": round(empty_ms),
        "reopen_adds_ms": round(reopen_ms - empty_ms),
        "reopen_phases": opens[-1]["phases"], "empty_phases": empties[-1]["phases"],
        # The open's own steps (the "ready" progress detail), median ms of each.
        "reopen_steps_ms": _median_steps(opens), "empty_steps_ms": _median_steps(empties),
        "reopen_docs": opens[-1]["docs"],
    }


def _median_steps(opens: list[dict]) -> dict:
    keys = sorted({k for o in opens for k in o.get("steps") or {}})
    return {k: statistics.median((o.get("steps") or {}).get(k, 0) for o in opens) for k in keys}


def rows(r: dict | None, visitor: str = "profile") -> list[tuple[str, str, str]]:
    """(target, measured, goal) rows for the bench-web table of one `measure` result (None:
    not measured, in the browser of `visitor`). A private window's rows say so."""
    where = "" if (r["visitor"] if r else visitor) == "profile" else ", private window"
    if not r:
        return [(f"first paint from the read view{where}", "not measured", f"<= {GOAL_FIRST_PAINT_MS} ms"),
                (f"reopen, {DOCS:,} docs (compacted) adds{where}", "not measured", f"<= {GOAL_REOPEN_ADDS_MS} ms")]
    n = f"{r['docs']:,}"
    return [
        (f"first paint, {n} docs stored ({'remembered rows' if r['remembered_paint'] else 'read view'}){where}",
         f"{r['first_paint_ms']} ms",
         f"<= {GOAL_FIRST_PAINT_MS} ms after navigation"),
        (f"first paint / engine ready (same page){where}", f"{r['paint_to_ready']:.2f}x ({r['ready_ms']} ms)",
         f"<= {GOAL_PAINT_TO_READY}x"),
        (f"reopen, {n} docs (compacted) adds{where}", f"{r['reopen_adds_ms']} ms",
         f"<= {GOAL_REOPEN_ADDS_MS} ms ({r['reopen_ms']} vs {r['empty_open_ms']} ms)"),
    ]


def measure_all(p, docs: int = DOCS, rounds: int = ROUNDS, dist: Path = DIST) -> dict[str, dict]:
    """`measure` in each browser of bench_setup.VISITORS (a browser of its own each, so no
    worker of an earlier bench runs beside them), by visitor. `p`: a started `sync_playwright()`."""
    out = {}
    for visitor in VISITORS:
        with visitor_context(p, visitor) as ctx:
            out[visitor] = measure(ctx, visitor, docs, rounds, dist)
    return out


def main() -> None:
    from playwright.sync_api import sync_playwright

    a = bench_arguments(DOCS, ROUNDS)
    with sync_playwright() as p:
        results = measure_all(p, a.docs, a.rounds, Path(a.dist))
    print(f"{'target':60} {'measured':>24}  goal")
    for r in results.values():
        for t, m, g in rows(r):
            print(f"{t:60} {m:>24}  {g}")
    for visitor, r in results.items():
        print(f"first paint phases, {visitor} (median ms after navigation): "
              + ", ".join(f"{k.removesuffix('_ms')} {v}" for k, v in r["phases_ms"].items()))
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
