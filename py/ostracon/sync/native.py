"""Native sync: the asyncio `websockets` transport and the entry points behind `db.sync(...)`.

    handle = await start_sync(db, "ws://127.0.0.1:8787", space, on_status=print)
    await handle.wait_synced(timeout=10)
    ...
    await handle.stop()

    status = sync_once_blocking(db, "ws://127.0.0.1:8787", space, timeout=30)   # scripts
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from ..core.errors import TransportError, ValidationError, WrongKeyError
from .base import SyncStatus, Transport, TransportClosed
from .client import SyncClient

#: Time allowed for the TCP + WebSocket opening handshake before the attempt counts as failed.
DEFAULT_OPEN_TIMEOUT_S = 10.0
#: Keepalive ping period (detects a dead relay behind a silent network) and its timeout.
DEFAULT_PING_INTERVAL_S = 20.0
DEFAULT_PING_TIMEOUT_S = 20.0
#: Incoming messages buffered before websockets stops reading (TCP backpressure); bounds
#: client memory to this × the largest frame.
DEFAULT_RECV_QUEUE = 16
#: Largest message accepted from the relay: one max-size frame + the relay's 9-byte prefix,
#: with headroom for a relay configured with bigger frames (1 MiB, the relay's own default).
DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024 + 64


class WebSocketTransport(Transport):
    """asyncio transport on the `websockets` package (imported on first use, so the module
    loads under Pyodide, which uses the browser transport instead)."""

    def __init__(self, *, open_timeout: float = DEFAULT_OPEN_TIMEOUT_S,
                 ping_interval: float | None = DEFAULT_PING_INTERVAL_S,
                 ping_timeout: float | None = DEFAULT_PING_TIMEOUT_S,
                 max_size: int = DEFAULT_MAX_MESSAGE_BYTES, max_queue: int = DEFAULT_RECV_QUEUE) -> None:
        self.open_timeout = open_timeout
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.max_size = max_size
        self.max_queue = max_queue
        self._ws: Any = None
        self._closed = False

    async def connect(self, url: str) -> None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import InvalidHandshake, InvalidURI

        if self._ws is not None or self._closed:
            raise TransportClosed("a transport connects once; make a new one to reconnect")
        try:
            self._ws = await connect(url, open_timeout=self.open_timeout, ping_interval=self.ping_interval,
                                     ping_timeout=self.ping_timeout, max_size=self.max_size,
                                     max_queue=self.max_queue, compression=None)
        except InvalidURI as exc:
            raise ValidationError(f"invalid relay URL: {exc}") from None
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            self._closed = True
            raise TransportClosed(f"cannot connect to the relay: {exc.__class__.__name__}: {exc}") from None

    def _closed_error(self, exc: BaseException | None = None) -> TransportClosed:
        # The relay's close frame (rcvd) says why; without one, ours (sent) or nothing.
        frame = getattr(exc, "rcvd", None) or getattr(exc, "sent", None)
        code = frame.code if frame is not None else None
        reason = frame.reason if frame is not None else ""
        msg = f"relay connection closed (code {code}{': ' + reason if reason else ''})"
        return TransportClosed(msg, code, reason)

    async def send(self, message: bytes) -> None:
        from websockets.exceptions import ConnectionClosed

        if self._ws is None or self._closed:
            raise TransportClosed("not connected" if self._ws is None else "transport closed")
        try:
            await self._ws.send(message)
        except ConnectionClosed as exc:
            raise self._closed_error(exc) from None

    async def recv(self) -> bytes:
        from websockets.exceptions import ConnectionClosed

        if self._ws is None or self._closed:
            raise TransportClosed("not connected" if self._ws is None else "transport closed")
        try:
            data = await self._ws.recv()
        except ConnectionClosed as exc:
            raise self._closed_error(exc) from None
        if isinstance(data, str):
            raise TransportClosed("relay sent a text message (protocol violation)", None)
        return data

    async def close(self) -> None:
        self._closed = True
        if self._ws is not None:
            try:
                await self._ws.close()
            except Exception:
                pass


def _factory(transport_options: dict | None) -> Callable[[], Transport]:
    opts = dict(transport_options or {})
    return lambda: WebSocketTransport(**opts)


async def start_sync(db: Any, relay_url: str, space: Any, *,
                     on_status: Callable[[SyncStatus], None] | None = None,
                     transport_factory: Callable[[], Transport] | None = None,
                     transport_options: dict | None = None, **options: Any) -> SyncClient:
    """Start syncing `db` with `space` through the relay at `relay_url` (ws://host:port).

    Returns the running SyncClient: `await h.wait_synced(timeout)`, `h.status`,
    `await h.stop()`. Options: see SyncClient (backoff_initial_s, backoff_max_s,
    tick_interval_s, settle_s, max_frame_size, room_id, random_bytes, jitter, clock_ms, ...).
    """
    client = SyncClient(db, relay_url, space, on_status=on_status,
                        transport_factory=transport_factory or _factory(transport_options), **options)
    return client.start()


async def sync(db: Any, relay_url: str, space: Any, **options: Any) -> SyncClient:
    """Alias of start_sync (the name `db.sync(...)` delegates to)."""
    return await start_sync(db, relay_url, space, **options)


def sync_once_blocking(db: Any, relay_url: str, space: Any, timeout: float = 30.0,
                       **options: Any) -> SyncStatus:
    """For scripts: connect, push local writes, pull everything, return the final status.

    Runs its own event loop (so it must not be called from async code: use `await
    start_sync(...)` there). Raises WrongKeyError if the room holds frames of another space
    key, TransportError if not synced within `timeout` seconds.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise ValidationError("sync_once_blocking cannot run inside an event loop; use `await start_sync(...)`")

    async def _once() -> SyncStatus:
        client = await start_sync(db, relay_url, space, **options)
        try:
            status = await client.wait_synced(timeout)
        except TransportError as exc:
            if isinstance(client.status.last_error, WrongKeyError):
                raise client.status.last_error from None
            raise exc
        finally:
            await client.stop()
        if isinstance(status.last_error, WrongKeyError):
            raise status.last_error
        return status   # as it was when the exchange converged (stop() goes offline)

    return asyncio.run(_once())


__all__ = ["WebSocketTransport", "start_sync", "sync", "sync_once_blocking", "SyncClient", "SyncStatus"]
