"""Compaction in the Chromium worker gives way to calls (runtime/browser/idle.py): a call sent
while the idle tick compacts runs before the compaction is finished (the tick returns between
two steps to serve it; later ticks finish it) and every document is kept. The order of events
in the worker, never timings."""

from __future__ import annotations

import uuid

import pytest

from bench_compact import PROBE
from conftest import goto_e2e

pytestmark = pytest.mark.browser

#: Documents written before compaction: a log long enough to compact (COMPACT_LOG_RECORDS),
#: encoded in a dozen or more steps of COMPACT_STEP_DOCS.
DOCS = 1_500
#: Ticks sent (with calls between them) until compaction is done: a safety net.
ROUNDS = 1000

RUN = """async ([name, docs, probe, rounds]) => {
  const db = await Ostracon.open({name, testing: true, tabs: "exclusive"});
  await db._call("__testInstall", "/home/pyodide/probe", {"bench_compact_probe.py": probe});
  const state = () => db._call("__testCall", "bench_compact_probe", "state", []);
  const c = db.collection("c");
  for (let b = 0; b < docs; b += 500) {
    const batch = [];
    for (let i = b; i < Math.min(docs, b + 500); i++) batch.push({i, s: `v${i}`});
    await c.createMany(batch);
  }
  await db.flush();
  // Ticks (the worker's own and these) compact; counts are sent meanwhile, a macrotask apart.
  let s = await state();
  for (let a = 0; a < rounds && !(!s.running && s.snapshot > 0); a++) {
    const tick = db._call("tick");
    for (let k = 0; k < 5; k++) {
      await new Promise((r) => setTimeout(r, 0));
      await c.count();
    }
    await tick;
    s = await state();
  }
  const events = await db._call("__testCall", "bench_compact_probe", "events", []);
  const count = await c.count();
  await db.close();
  return {events, count, snapshot: s.snapshot, steps: s.steps};
}"""


def test_a_call_during_compaction_runs_before_it_finishes(shared_page, e2e_url) -> None:
    page = shared_page
    goto_e2e(page, e2e_url)
    r = page.evaluate(RUN, [f"compact-{uuid.uuid4().hex[:8]}", DOCS, PROBE, ROUNDS])
    ev = r["events"]
    assert r["count"] == DOCS and r["snapshot"] > 0 and "done" in ev, r
    # The order of events in the worker: compaction steps, a call answered while they go on,
    # then more steps and the swap.
    first, done = ev.index("step"), ev.index("done")
    during = [i for i, e in enumerate(ev) if e == "call" and first < i < done]
    assert during and ev[during[0] + 1:done].count("step") > 0, f"no call ran during compaction: {ev}"
