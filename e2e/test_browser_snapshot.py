"""The worker's memory snapshot in Chromium (web/loader.js, docs/BROWSER.md "Engine start").

- the first start in a context makes the snapshot (and goes on serving), the next restores
  it, and the restored engine works (writes, durable flush through JSPI, reads, a lazily loaded
  GraphQL call: graphql-core installed on demand, the engine's GraphQL glue imported for the
  first time from the wheel the snapshot's zipimport cache points at);
- `snapshot: false` neither uses nor makes one;
- a damaged snapshot (one bit flipped) is caught by its digest before the restore, deleted,
  and the start falls back to the ordinary path; the start after that makes a new one.
"""

from __future__ import annotations

import uuid

from conftest import goto_e2e

# A first start (no snapshot yet) under a loaded machine can take tens of seconds.
BOOT_TIMEOUT_MS = 300_000

OPEN = """async ([name, snapshot]) => {
  let state = null;
  window.db = await Ostracon.open({name, snapshot, testing: true, onProgress: (p) => {
    if (p.phase === "packages") state = p.detail.snapshot; }});
  return state;
}"""

# Resolves once the background put of the snapshot has landed in Cache Storage.
SNAPSHOT_STORED = """async () => {
  const c = await caches.open("ostracon-snapshot");
  return (await c.keys()).length === 1;
}"""

# One bit flipped in the middle of the memory image, the stored digest kept: the header still
# reads fine, so only the digest check stands between this image and the interpreter.
DAMAGE = """async () => {
  const c = await caches.open("ostracon-snapshot");
  const [req] = await c.keys();
  const res = await c.match(req);
  const bytes = new Uint8Array(await res.arrayBuffer());
  bytes[bytes.length >> 1] ^= 1;
  await c.put(req, new Response(bytes, {headers: res.headers}));
  return req.url;
}"""

USE = """async () => {
  const t = db.collection("notes");
  const id = await t.create({title: "snap", n: 3});
  await db.flush();
  const doc = await t.get(id);
  const g = await db.graphql("{ __typename }");
  return {title: doc.title, n: doc.n, graphql: g.data};
}"""


# Where a module was imported from, read in the worker after the fact.
PROBE = "import sys\n\ndef origin(name):\n    m = sys.modules.get(name)\n    return m and m.__file__\n"
ORIGIN = """async ([probe, name]) => {
  await db._call("__testInstall", "/home/pyodide/probe", {"snapshot_probe.py": probe});
  return db._call("__testCall", "snapshot_probe", "origin", [name]);
}"""


def _start(ctx, e2e_url: str, snapshot: bool = True) -> tuple:
    page = ctx.new_page()
    page.set_default_timeout(BOOT_TIMEOUT_MS)
    goto_e2e(page, e2e_url)
    state = page.evaluate(OPEN, [f"snap-{uuid.uuid4().hex[:8]}", snapshot])
    return page, state


def _stop(page) -> None:
    page.evaluate("async () => db.close()")
    page.close()


def test_made_then_restored_and_the_restored_engine_works(browser, e2e_url):
    ctx = browser.new_context()
    try:
        page, state = _start(ctx, e2e_url)
        assert state == "made"
        # The instance that made the snapshot goes on serving the page.
        assert page.evaluate(USE)["n"] == 3
        page.wait_for_function(SNAPSHOT_STORED, polling=100)
        _stop(page)
        page, state = _start(ctx, e2e_url)
        assert state == "restored"
        assert page.evaluate(USE) == {"title": "snap", "n": 3, "graphql": {"__typename": "Query"}}
        # Not in the snapshot (tests/test_browser_snapshot.py), imported on the first GraphQL
        # call from the wheel file on sys.path.
        glue = page.evaluate(ORIGIN, [PROBE, "ostracon.db.graphql"])
        assert glue.startswith("/lib/wheels/ostracon-") and ".whl/ostracon/db/graphql.py" in glue
        assert page.evaluate(ORIGIN, [PROBE, "msgpack"]).startswith("/lib/python3")  # unpacked: it has a C extension
        _stop(page)
        page, state = _start(ctx, e2e_url, snapshot=False)
        assert state == "off"
        _stop(page)
    finally:
        ctx.close()


def test_a_damaged_snapshot_is_replaced(browser, e2e_url):
    ctx = browser.new_context()
    try:
        page, state = _start(ctx, e2e_url)
        assert state == "made"
        page.wait_for_function(SNAPSHOT_STORED, polling=100)
        assert "__ostracon_snapshot__" in page.evaluate(DAMAGE)
        _stop(page)
        page, state = _start(ctx, e2e_url)
        assert state == "failed"
        assert page.evaluate(USE)["title"] == "snap"
        assert page.evaluate(SNAPSHOT_STORED) is False  # deleted, not retried on every start
        _stop(page)
        page, state = _start(ctx, e2e_url)
        assert state == "made"
        _stop(page)
    finally:
        ctx.close()
