"""web/tabs.js against the engine it fronts: what another tab may call on the leader's engine.

Any page of the origin can post on the tabs' BroadcastChannel, so the leader runs only the
API's methods for it, never the engine's lifecycle (close, open, tick, ...). The list in
tabs.js must name every other RPC method of the browser host, or followers lose a method.
"""

from __future__ import annotations

import re
from pathlib import Path

from ostracon.runtime.browser.host import Host

ROOT = Path(__file__).resolve().parent.parent

#: Engine methods only the tab that runs the engine calls (worker.js, ostracon.js WorkerEngine).
LIFECYCLE = {"open", "close", "tick", "events", "network", "subscribe", "unsubscribe"}


def follower_methods() -> set[str]:
    src = (ROOT / "web" / "tabs.js").read_text()
    block = re.search(r"export const FOLLOWER_METHODS = new Set\(\[(.*?)\]\);", src, re.S)
    assert block is not None, "FOLLOWER_METHODS not found in web/tabs.js"
    return set(re.findall(r'"([A-Za-z]+)"', block.group(1)))


def test_followers_may_call_every_api_method_and_no_lifecycle_method():
    rpc = {name[4:] for name in dir(Host) if name.startswith("rpc_")}
    assert LIFECYCLE <= rpc  # the names above are real methods
    assert follower_methods() == rpc - LIFECYCLE
