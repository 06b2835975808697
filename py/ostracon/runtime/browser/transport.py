"""Browser sync transport (Pyodide only): the sync/base.py Transport on the browser's WebSocket.

The socket lives in JS (web/bridge.js `wsConnect`, binaryType "arraybuffer"); its callbacks
feed an asyncio queue that `recv` awaits, so the runtime-agnostic SyncClient
(`ostracon.sync.client`) drives it exactly like the native `websockets` transport. Pyodide's
asyncio loop is the browser's event loop: no threads are involved.

    from ostracon.runtime.browser.transport import BrowserWebSocketTransport, start_sync
    client = await start_sync(db, "ws://127.0.0.1:8787", space, on_status=...)

Backpressure: the browser WebSocket has no read backpressure; incoming messages queue in
memory. The relay bounds what it sends (frame size × its send window), and `recv_queue`
bounds what we hold: past it the connection is closed (TransportClosed, code 1008) rather than
growing without limit, and the client reconnects and resumes from its mailbox cursor.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from ...core.errors import TransportError, ValidationError
from ...sync.base import SyncStatus, Transport, TransportClosed
from . import bridge as _bridge_mod

#: Time allowed for the WebSocket opening handshake (same default as the native transport).
DEFAULT_OPEN_TIMEOUT_S = 10.0
#: Messages held between the socket and `recv`. A healthy client drains them within a tick;
#: 1024 × the relay's 1 MiB max frame bounds the worst case at what the relay may send.
DEFAULT_RECV_QUEUE = 1024
#: Close code used when our receive queue overflows (1008 policy violation).
CLOSE_QUEUE_OVERFLOW = 1008


def _bridge() -> Any:
    return _bridge_mod.load(TransportError)


class BrowserWebSocketTransport(Transport):
    """One connection attempt over the browser's WebSocket (connect once, then send/recv)."""

    def __init__(self, *, open_timeout: float = DEFAULT_OPEN_TIMEOUT_S,
                 recv_queue: int = DEFAULT_RECV_QUEUE) -> None:
        if recv_queue < 1:
            raise ValidationError("recv_queue must be >= 1")
        self.open_timeout = open_timeout
        self.recv_queue = recv_queue
        self._handle: Any = None
        self._proxies: list[Any] = []
        self._queue: asyncio.Queue = asyncio.Queue()
        self._opened: asyncio.Future | None = None
        self._closed_exc: TransportClosed | None = None
        self._closed = False

    # JS callbacks (run on the browser event loop, i.e. the asyncio loop's thread).
    def _on_message(self, data: Any) -> None:
        if self._closed_exc is not None:
            return
        if self._queue.qsize() >= self.recv_queue:
            self._fail(TransportClosed("receive queue overflow: the client is not keeping up",
                                       CLOSE_QUEUE_OVERFLOW, "receive queue overflow"))
            if self._handle is not None:
                self._handle.close(CLOSE_QUEUE_OVERFLOW, "receive queue overflow")
            return
        self._queue.put_nowait(data.to_bytes())

    def _on_status(self, state: str, code: Any = None, reason: Any = None) -> None:
        if state == "open":
            if self._opened is not None and not self._opened.done():
                self._opened.set_result(True)
        elif state == "closed":
            c = int(code) if isinstance(code, (int, float)) and code else None
            r = str(reason) if isinstance(reason, str) else ""
            if c == 1006:  # abnormal closure: no close frame was received
                c = None
            self._fail(TransportClosed(
                f"relay connection closed (code {c}{': ' + r if r else ''})", c, r))
        # "error" is always followed by "closed" in the WebSocket API: handled there.

    def _fail(self, exc: TransportClosed) -> None:
        if self._closed_exc is None:
            self._closed_exc = exc
        if self._opened is not None and not self._opened.done():
            self._opened.set_exception(exc)
        self._queue.put_nowait(None)  # wakes a pending recv

    async def connect(self, url: str) -> None:
        from pyodide.ffi import create_proxy

        if self._handle is not None or self._closed:
            raise TransportClosed("a transport connects once; make a new one to reconnect")
        if not isinstance(url, str) or not url.startswith(("ws://", "wss://")):
            raise ValidationError(f"invalid relay URL: {url!r}")
        loop = asyncio.get_running_loop()
        self._opened = loop.create_future()
        on_msg = create_proxy(self._on_message)
        on_status = create_proxy(self._on_status)
        self._proxies = [on_msg, on_status]
        try:
            self._handle = _bridge().wsConnect(url, on_msg, on_status)
        except Exception as e:  # noqa: BLE001 - a bad URL or no WebSocket: fail like a refused connection
            self._closed = True
            self._destroy()
            raise TransportClosed(f"cannot connect to the relay: {getattr(e, 'message', e)}") from None
        try:
            await asyncio.wait_for(asyncio.shield(self._opened), self.open_timeout)
        except TransportClosed as e:
            await self.close()
            raise TransportClosed(f"cannot connect to the relay: {e}", e.code, e.reason) from None
        except TimeoutError:
            await self.close()
            raise TransportClosed(f"cannot connect to the relay: no answer within {self.open_timeout} s") from None

    async def send(self, message: bytes) -> None:
        if self._handle is None:
            raise TransportClosed("not connected")
        if self._closed or self._closed_exc is not None:
            raise self._closed_exc or TransportClosed("transport closed")
        from pyodide.ffi import to_js

        if not self._handle.send(to_js(bytes(message))):
            raise self._closed_exc or TransportClosed("relay connection is not open")

    async def recv(self) -> bytes:
        if self._handle is None:
            raise TransportClosed("not connected")
        if self._closed:
            raise self._closed_exc or TransportClosed("transport closed")
        if not self._queue.empty() or self._closed_exc is None:
            item = await self._queue.get()
            if item is not None:
                return item
            self._queue.put_nowait(None)  # keep waking later callers
        raise self._closed_exc or TransportClosed("transport closed")

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._closed_exc is None:
            self._closed_exc = TransportClosed("transport closed", 1000, "")
        if self._handle is not None:
            self._handle.close(1000, "")
        self._queue.put_nowait(None)
        self._destroy()

    def _destroy(self) -> None:
        # The JS socket may still fire onclose after this: detach first so the bridge never
        # calls a destroyed proxy, then free the proxies.
        if self._handle is not None:
            self._handle.detach()
        for p in self._proxies:
            try:
                p.destroy()
            except Exception:  # noqa: BLE001 - already destroyed
                pass
        self._proxies = []


async def start_sync(db: Any, relay_url: str, space: Any, *,
                     on_status: Callable[[SyncStatus], None] | None = None,
                     transport_options: dict | None = None, **options: Any) -> Any:
    """Start syncing `db` with `space` through the relay at `relay_url` (browser flavour of
    `ostracon.sync.native.start_sync`). Returns the running SyncClient."""
    from ...sync.client import SyncClient

    opts = dict(transport_options or {})
    client = SyncClient(db, relay_url, space, on_status=on_status,
                        transport_factory=lambda: BrowserWebSocketTransport(**opts), **options)
    return client.start()


__all__ = ["BrowserWebSocketTransport", "start_sync"]
