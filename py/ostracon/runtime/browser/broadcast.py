"""Browser sync without a relay: the sync Transport on the origin's BroadcastChannel (Pyodide
only), for tabs and workers of one origin on one machine (docs/TRANSPORTS.md).

The room logic is runtime-agnostic (`ostracon.sync.broadcast.BroadcastTransport`); this module
only opens the channel through web/bridge.js (`bcOpen`), which posts and delivers bytes as
Uint8Array (BroadcastChannel structured-clones them).

    from ostracon.runtime.browser.broadcast import BroadcastChannelTransport, BROADCAST_URL
    client = SyncClient(db, BROADCAST_URL, space, transport_factory=BroadcastChannelTransport)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ...core.errors import TransportError
from ...sync.broadcast import BroadcastTransport, Channel
from . import bridge as _bridge_mod

#: The base URL a SyncClient is given for broadcast sync: it names the medium (and keys the
#: client's stored cursor state); the room path is appended by the client.
BROADCAST_URL = "ws://broadcast.invalid"


class _JsChannel:
    def __init__(self, name: str, on_message: Callable[[bytes], None]) -> None:
        from pyodide.ffi import create_proxy

        self._proxy = create_proxy(lambda data: on_message(data.to_bytes()))
        self._handle: Any = _bridge_mod.load(TransportError).bcOpen(name, self._proxy)

    def post(self, data: bytes) -> None:
        from pyodide.ffi import to_js

        if self._handle is not None:
            self._handle.post(to_js(bytes(data)))

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
            self._proxy.destroy()


def open_channel(name: str, on_message: Callable[[bytes], None]) -> Channel:
    """Open the origin's BroadcastChannel `name`."""
    return _JsChannel(name, on_message)


class BroadcastChannelTransport(BroadcastTransport):
    """BroadcastTransport on the browser's BroadcastChannel (options: see BroadcastTransport)."""

    def __init__(self, **options: Any) -> None:
        import secrets

        super().__init__(open_channel, secrets.token_bytes, **options)


__all__ = ["BROADCAST_URL", "BroadcastChannelTransport", "open_channel"]
