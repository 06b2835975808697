"""Two pages of one origin sync through the BroadcastChannel with no relay running
(`relay: "broadcast"`, runtime/browser/broadcast.py): each page has its own database and
worker; writes on either side reach the other and the state hashes become equal."""

from __future__ import annotations

import uuid

from conftest import goto_e2e
from test_browser_sync import CONVERGE_TIMEOUT_MS, FAST, OPEN, WAIT_DOC, WAIT_HASH


def test_two_pages_sync_over_broadcast_channel_without_a_relay(browser, e2e_url):
    space = {"passphrase": f"pw-{uuid.uuid4().hex}", "name": "tabs"}
    ctx = browser.new_context()   # one origin, one storage partition: one BroadcastChannel
    try:
        pages = []
        for name in ("bc-a", "bc-b"):
            page = ctx.new_page()
            goto_e2e(page, e2e_url)
            info = page.evaluate(OPEN, [f"{name}-{uuid.uuid4().hex[:8]}", space, "broadcast", FAST])
            assert info["relay"] == "broadcast"
            pages.append(page)
        a, b = pages
        doc = a.evaluate("async () => { const id = await db.collection('n').create({t: 'from a'}); "
                         "await db.flush(); return id; }")
        assert b.evaluate(WAIT_DOC, ["n", doc, "t", "from a", CONVERGE_TIMEOUT_MS])
        b.evaluate("async (id) => { await db.collection('n').patch(id, {b: true}); await db.flush(); }", doc)
        assert a.evaluate(WAIT_DOC, ["n", doc, "b", True, CONVERGE_TIMEOUT_MS])
        ha = a.evaluate("async () => db.stateHash()")
        assert b.evaluate(WAIT_HASH, [ha, CONVERGE_TIMEOUT_MS]) is True
        assert "online" in b.evaluate("window.syncStates")
    finally:
        ctx.close()
