"""Calls during compaction in the Chromium worker (runs alone:
`python e2e/bench_compact.py --dist dist/web`).

A database in a new page gets `DOCS` documents (10 fields each, one record per document), so
its log is long enough for the worker's idle tick to compact it. The page then starts the tick
and, while compaction runs, sends one small call (`count`) every `CALL_GAP_MS`, recording each
call's wait (sent → answered). Two modes, alternating over `ROUNDS` rounds in one context:
- "one go": the tick's pause between compaction steps is disabled through a test hook, so the
  steps run back to back without the worker's event loop running in between: a call waits
  for the whole encoding, as it did before compaction ran in steps;
- "in steps": the worker as shipped (runtime/browser/idle.py).
Reported: the longest and the median wait of a call during compaction, the compaction's wall
time, the calls answered meanwhile, and (last round) the steps, the longest one ([number, ms])
and the last one (the swap: storing the snapshot, dropping the covered records). Timings are reported, never asserted.
"""

from __future__ import annotations

import json
import statistics
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "e2e"), str(ROOT / "tests")]

from bench_setup import FILL_DOCS_JS, bench_arguments, chromium, open_page, serve_bundle, stop  # noqa: E402

#: Documents stored before compaction (~9,000 blocks: the size the issue measured).
DOCS = 9_000
#: Rounds per mode; the median of each number is reported.
ROUNDS = 2
#: Pause between two calls sent during compaction: calls are spaced like a user's, so the
#: idle tick is not kept from starting (it gives way to every waiting call).
CALL_GAP_MS = 25

PROBE = '''
import time

from ostracon.db import compaction
from ostracon.runtime.browser import idle
from ostracon.runtime.browser.host import HOST

_LOG_RECORDS = idle.COMPACT_LOG_RECORDS

STEPS = []  # (step number, ms) of the compaction steps of this page
EVENTS = []  # "step", "done" (the snapshot swapped in) and "call" (a count ran), in order
_step = compaction.Compaction.step


def _timed(self):
    t = time.perf_counter()
    try:
        done = _step(self)
        EVENTS.append("done" if done else "step")
        return done
    finally:
        STEPS.append((self.steps, (time.perf_counter() - t) * 1000))


compaction.Compaction.step = _timed
_count = HOST.rpc_count


def _counted(*args):
    EVENTS.append("call")
    return _count(*args)


HOST.rpc_count = _counted


def events():
    return list(EVENTS)


def mode(one_go):
    HOST.pause = (lambda: None) if one_go else None
    return True


def hold(on):
    """on: the worker's idle ticks never start a compaction (the log is never long enough);
    off: they do again, at the usual length. A test that writes first holds it until then."""
    idle.COMPACT_LOG_RECORDS = 10**12 if on else _LOG_RECORDS
    return True


def state():
    run = HOST._compact_run
    snap = HOST.storage.load_snapshot()
    longest = max(STEPS, key=lambda s: s[1], default=(0, 0))
    return {"running": run is not None, "snapshot": 0 if snap is None else snap[1],
            "steps": len(STEPS), "longest_step": [longest[0], round(longest[1], 1)],
            "last_step_ms": round(STEPS[-1][1], 1) if STEPS else 0}
'''

ROUND = """async ([name, docs, oneGo, gap]) => {
  FILL_DOCS_JS
  const db = await Ostracon.open({name, testing: true, tabs: "exclusive"});
  await db._call("__testInstall", "/home/pyodide/bench", {"bench_compact_probe.py": PROBE});
  await db._call("__testCall", "bench_compact_probe", "mode", [oneGo]);
  const c = db.collection("c");
  await fillDocs(c, docs);
  await db.flush();
  const waits = [];
  let done = false, ticks = 0, last = null;
  const t0 = performance.now();
  const ticking = (async () => {
    for (;;) {
      await db._call("tick");
      ticks++;
      last = await db._call("__testCall", "bench_compact_probe", "state", []);
      if (!last.running && last.snapshot > 0) break;
    }
    done = true;
  })();
  while (!done) {
    await new Promise((r) => setTimeout(r, gap));
    if (done) break;
    const t = performance.now();
    await c.count();
    waits.push(performance.now() - t);
  }
  await ticking;
  const wallMs = performance.now() - t0;
  const count = await c.count();
  await db.close();
  return {waits, wallMs, ticks, count, snapshot: last.snapshot, steps: last.steps,
          longestStep: last.longest_step, lastStepMs: last.last_step_ms};
}""".replace("PROBE", json.dumps(PROBE)).replace("FILL_DOCS_JS", FILL_DOCS_JS)


def measure(browser, url: str, docs: int = DOCS, rounds: int = ROUNDS) -> dict:
    """{mode: {max_wait_ms, median_wait_ms, calls, wall_ms, ticks}} medians over the rounds."""
    ctx = browser.new_context()
    runs: dict[str, list[dict]] = {"one go": [], "in steps": []}
    try:
        for _ in range(rounds):
            for mode in runs:
                page = open_page(ctx, url)
                r = page.evaluate(ROUND, [f"cb-{uuid.uuid4().hex[:8]}", docs, mode == "one go", CALL_GAP_MS])
                page.close()
                if r["count"] != docs or r["snapshot"] <= 0:
                    raise RuntimeError(f"{mode}: compaction did not finish as expected: {r}")
                runs[mode].append(r)
    finally:
        ctx.close()
    med = statistics.median
    out = {}
    for mode, rs in runs.items():
        out[mode] = {
            "max_wait_ms": round(med(max(r["waits"], default=0) for r in rs)),
            "median_wait_ms": round(med(med(r["waits"]) if r["waits"] else 0 for r in rs), 1),
            "calls": round(med(len(r["waits"]) for r in rs)),
            "wall_ms": round(med(r["wallMs"] for r in rs)),
            "ticks": round(med(r["ticks"] for r in rs)),
            "steps": rs[-1]["steps"], "longest_step": rs[-1]["longestStep"], "swap_ms": rs[-1]["lastStepMs"],
        }
    return out


def main() -> None:
    a = bench_arguments(DOCS, ROUNDS)
    srv, url = serve_bundle(Path(a.dist))
    try:
        with chromium() as b:
            r = measure(b, url, a.docs, a.rounds)
    finally:
        stop(srv)
    print(f"calls during compaction of {a.docs} documents (median of {a.rounds} rounds)")
    print(f"{'mode':10} {'longest wait':>13} {'median wait':>12} {'calls':>6} {'compaction':>11} {'ticks':>6}")
    for mode, m in r.items():
        print(f"{mode:10} {m['max_wait_ms']:>10} ms {m['median_wait_ms']:>9} ms {m['calls']:>6} "
              f"{m['wall_ms']:>8} ms {m['ticks']:>6}")
    print(json.dumps(r, indent=1))


if __name__ == "__main__":
    main()
