"""runtime/browser/broadcast.py as the browser host uses it: `relay: "broadcast"` syncs two
workers' databases over the broadcast medium, no relay. Natively the medium is the in-process
one (the BroadcastChannel itself runs the transport contract under Node, `make test-node`,
and in Chromium, e2e/test_browser_broadcast.py)."""

from __future__ import annotations

import asyncio

from ostracon.runtime.browser.broadcast import BROADCAST_URL
from ostracon.runtime.browser.host import BROADCAST, Host
from ostracon.sync.broadcast import LocalBroadcast
from polling import until
from test_browser_host import broadcast_host, call, close_hosts

SPACE = {"key": bytes(range(32)), "name": "tabs"}


def test_two_hosts_sync_over_the_broadcast_medium(tmp_path):
    medium = LocalBroadcast()

    def host() -> Host:
        return broadcast_host(tmp_path, medium)

    async def main():
        a, b = host(), host()
        try:
            info = call(a, "open", {"name": "a", "space": SPACE, "relay": BROADCAST,
                                    "sync": {"tick_interval_s": 0.02, "settle_s": 0.2}})
            assert info["relay"] == BROADCAST
            call(b, "open", {"name": "b", "space": SPACE, "relay": BROADCAST})
            call(a, "create", "notes", {"t": "from a"}, "n1")
            call(b, "create", "notes", {"t": "from b"}, "n2")
            call(a, "flush")
            call(b, "flush")
            await until(lambda: a.db.state_hash() == b.db.state_hash() and a.db.collection("notes").count() == 2,
                        "the two workers converge over the broadcast medium")
            assert a.sync.base_url == b.sync.base_url == BROADCAST_URL
        finally:
            await close_hosts(a, b)

    asyncio.run(main())
