"""Connections that die without a close, the browser's offline signal, and close().

- a relay connection whose packets silently vanish (a proxy that drops them) is noticed by
  the heartbeat: the engine goes offline, reconnects when the network heals and converges;
- `context.set_offline(True)` moves the engine to offline at once, back online after;
- close() resolves with the relay unreachable, and what was written is durable;
- every call after close() rejects at once with ClosedError.
"""

from __future__ import annotations

import uuid

from conftest import goto_e2e
from netproxy import ThreadedDroppingProxy
from test_browser_sync import CONVERGE_TIMEOUT_MS, FAST, OPEN, WAIT_DOC, relay_url  # noqa: F401 (fixture)

# The heartbeat as short as the test can make it; the defaults are 10 s + 10 s.
QUICK = {**FAST, "heartbeat_interval_s": 0.5, "heartbeat_timeout_s": 0.5}
WAIT_STATE = """async ([state, ms]) => {
  const t0 = performance.now();
  while (performance.now() - t0 < ms) {
    if (db.status.sync === state) return true;
    await new Promise((r) => setTimeout(r, 25));
  }
  return db.status.sync;
}"""


def _space() -> dict:
    return {"passphrase": f"pw-{uuid.uuid4().hex}", "name": "e2e"}


def _open(browser, e2e_url, relay, space, sync=QUICK, name=None):
    ctx = browser.new_context()
    page = ctx.new_page()
    goto_e2e(page, e2e_url)
    page.evaluate(OPEN, [name or f"live-{uuid.uuid4().hex[:8]}", space, relay, sync])
    return ctx, page


def test_dead_connection_goes_offline_then_reconnects_and_converges(browser, e2e_url, relay_url):  # noqa: F811
    proxy = ThreadedDroppingProxy("127.0.0.1", int(relay_url.rsplit(":", 1)[1]))
    space = _space()
    ca, a = _open(browser, e2e_url, proxy.url, space)
    cb, b = _open(browser, e2e_url, relay_url, space)
    try:
        assert a.evaluate(WAIT_STATE, ["online", CONVERGE_TIMEOUT_MS]) is True
        proxy.set_drop(True)
        assert a.evaluate(WAIT_STATE, ["offline", CONVERGE_TIMEOUT_MS]) is True
        err = a.evaluate("async () => (await db.syncStatus()).error")
        assert err is not None and "heartbeat" in err["message"]
        a.evaluate("async () => db.collection('n').create({from: 'a'}, 'a1')")
        b.evaluate("async () => db.collection('n').create({from: 'b'}, 'b1')")
        proxy.set_drop(False)
        assert a.evaluate(WAIT_STATE, ["online", CONVERGE_TIMEOUT_MS]) is True
        # No flush() anywhere: writes reach connected peers on their own.
        assert b.evaluate(WAIT_DOC, ["n", "a1", "from", "a", CONVERGE_TIMEOUT_MS])
        assert a.evaluate(WAIT_DOC, ["n", "b1", "from", "b", CONVERGE_TIMEOUT_MS])
    finally:
        ca.close()
        cb.close()
        proxy.close()


def test_the_browsers_offline_signal_moves_the_engine(browser, e2e_url, relay_url):  # noqa: F811
    ctx, page = _open(browser, e2e_url, relay_url, _space(), sync=FAST)
    try:
        assert page.evaluate(WAIT_STATE, ["online", CONVERGE_TIMEOUT_MS]) is True
        ctx.set_offline(True)
        assert page.evaluate(WAIT_STATE, ["offline", CONVERGE_TIMEOUT_MS]) is True
        assert "offline" in page.evaluate("async () => (await db.syncStatus()).error.message")
        ctx.set_offline(False)
        assert page.evaluate(WAIT_STATE, ["online", CONVERGE_TIMEOUT_MS]) is True
    finally:
        ctx.close()


def test_close_resolves_with_the_relay_unreachable_and_keeps_the_data(browser, e2e_url, relay_url):  # noqa: F811
    proxy = ThreadedDroppingProxy("127.0.0.1", int(relay_url.rsplit(":", 1)[1]))
    name = f"close-{uuid.uuid4().hex[:8]}"
    space = _space()
    ctx, page = _open(browser, e2e_url, proxy.url, space, name=name)
    try:
        assert page.evaluate(WAIT_STATE, ["online", CONVERGE_TIMEOUT_MS]) is True
        proxy.set_drop(True)
        page.evaluate("async () => db.collection('n').create({kept: true}, 'k1')")
        # The bound only tells a hang from a slow close (close itself gives up after 5 s).
        outcome = page.evaluate("""async () => Promise.race([
            db.close().then(() => 'closed', (e) => 'failed: ' + e.name),
            new Promise((r) => setTimeout(() => r('still waiting'), 60000))])""")
        assert outcome == "closed"
        kept = page.evaluate("""async ([name, space]) => { const d = await Ostracon.open({name, space});
            const doc = await d.collection('n').get('k1'); await d.close(); return doc && doc.kept; }""", [name, space])
        assert kept is True
    finally:
        ctx.close()
        proxy.close()


def test_every_call_after_close_rejects_at_once(browser, e2e_url):
    ctx = browser.new_context()
    page = ctx.new_page()
    goto_e2e(page, e2e_url)
    try:
        got = page.evaluate("""async (name) => {
          const db = await Ostracon.open({name});
          const c = db.collection('n');
          await c.create({x: 1}, 'x');
          await db.close();
          const calls = {get: () => c.get('x'), create: () => c.create({x: 2}), patch: () => c.patch('x', {y: 1}),
                         find: () => c.find({}), flush: () => db.flush(), stateHash: () => db.stateHash(),
                         subscribe: () => db.subscribe(() => {}).ready};
          const out = {};
          for (const [k, f] of Object.entries(calls)) {
            const settled = f().then(() => 'resolved', (e) => e.name);
            const later = Promise.resolve().then(() => Promise.resolve()).then(() => 'pending');
            out[k] = await Promise.race([settled, later]);
          }
          out.closeAgain = await db.close().then(() => 'ok');
          return out; }""", f"after-close-{uuid.uuid4().hex[:8]}")
        assert got == {"get": "ClosedError", "create": "ClosedError", "patch": "ClosedError", "find": "ClosedError",
                       "flush": "ClosedError", "stateHash": "ClosedError", "subscribe": "ClosedError",
                       "closeAgain": "ok"}
    finally:
        ctx.close()
