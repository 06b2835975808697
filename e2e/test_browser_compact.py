"""Compaction in the Chromium worker gives way to calls (runtime/browser/idle.py): a call sent
while the idle tick compacts runs before the compaction is finished (the tick returns between
two steps to serve it; later ticks finish it) and every document is kept. The order of events
in the worker, never timings. Writes made meanwhile land after the cut and survive a reopen."""

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
#: Milliseconds between sending a tick and a call: lets the tick start before the call is
#: queued (not a timing assertion: a call that comes too early only postpones that tick).
GAP_MS = 10

RUN = """async ([name, docs, probe, rounds, gap]) => {
  const db = await Ostracon.open({name, testing: true, tabs: "exclusive"});
  await db._call("__testInstall", "/home/pyodide/probe", {"bench_compact_probe.py": probe});
  const state = () => db._call("__testCall", "bench_compact_probe", "state", []);
  const hold = (on) => db._call("__testCall", "bench_compact_probe", "hold", [on]);
  // The worker's own idle ticks could compact the whole log while it is written, before the
  // loop below watches: held until then.
  await hold(true);
  const c = db.collection("c");
  for (let b = 0; b < docs; b += 500) {
    const batch = [];
    for (let i = b; i < Math.min(docs, b + 500); i++) batch.push({i, s: `v${i}`});
    await c.createMany(batch);
  }
  await db.flush();
  await hold(false);
  // Ticks (the worker's own and these) compact; a call is sent while each runs. The pause
  // before it only lets the tick start first (a call queued with the tick postpones it).
  let s = await state(), wrote = false;
  for (let a = 0; a < rounds && !(!s.running && s.snapshot > 0); a++) {
    const tick = db._call("tick");
    await new Promise((r) => setTimeout(r, gap));
    await c.count();
    if (s.running && !wrote) {  // a write during compaction: after the cut
      await c.create({late: true});
      wrote = true;
    }
    await tick;
    s = await state();
  }
  const events = await db._call("__testCall", "bench_compact_probe", "events", []);
  const count = await c.count(), hash = await db.stateHash();
  await db.close();
  const again = await Ostracon.open({name, tabs: "exclusive"});
  const reopened = {count: await again.collection("c").count(), hash: await again.stateHash()};
  await again.close();
  return {events, count, hash, reopened, snapshot: s.snapshot, steps: s.steps};
}"""


def test_a_call_during_compaction_runs_before_it_finishes(shared_page, e2e_url) -> None:
    page = shared_page
    goto_e2e(page, e2e_url)
    r = page.evaluate(RUN, [f"compact-{uuid.uuid4().hex[:8]}", DOCS, PROBE, ROUNDS, GAP_MS])
    ev = r["events"]
    assert r["count"] == DOCS + 1 and r["snapshot"] > 0 and "done" in ev, r
    assert r["reopened"] == {"count": r["count"], "hash": r["hash"]}, r  # writes meanwhile kept
    # The order of events in the worker: compaction steps, a call answered while they go on,
    # then more steps and the swap.
    first, done = ev.index("step"), ev.index("done")
    during = [i for i, e in enumerate(ev) if e == "call" and first < i < done]
    assert during and ev[during[0] + 1:done].count("step") > 0, f"no call ran during compaction: {ev}"
