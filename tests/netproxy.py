"""A TCP proxy that can silently drop packets: a connection that dies without a close.

    proxy = await DroppingProxy("127.0.0.1", relay_port).start()   # proxy.port, proxy.url
    proxy.drop = True    # bytes in both directions vanish; sockets stay open (NAT rebinding)
    proxy.drop = False   # forwarding resumes for new bytes (connections opened meanwhile too)
    await proxy.close()

Used by the native sync tests (asyncio, in-process) and, through `ThreadedDroppingProxy`, by
the browser e2e tests (its own event loop in a thread).
"""

from __future__ import annotations

import asyncio
import threading

#: Bytes read per socket read; small enough that a dropped chunk is one WebSocket frame or so.
CHUNK = 65536


class DroppingProxy:
    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.drop = False
        self.dropped_bytes = 0
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> DroppingProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def _pipe(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            while True:
                data = await r.read(CHUNK)
                if not data:
                    break
                if self.drop:
                    self.dropped_bytes += len(data)
                    continue
                w.write(data)
                await w.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            w.close()

    async def _handle(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        try:
            sr, sw = await asyncio.open_connection(*self.target)
        except OSError:
            cw.close()
            return
        self._writers |= {cw, sw}
        await asyncio.gather(self._pipe(cr, sw), self._pipe(sr, cw))
        self._writers -= {cw, sw}

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for w in list(self._writers):
                w.close()
            await self._server.wait_closed()


class ThreadedDroppingProxy:
    """`DroppingProxy` on its own event loop in a daemon thread (for synchronous tests)."""

    def __init__(self, host: str, port: int) -> None:
        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._loop.run_forever, name="dropping-proxy", daemon=True).start()
        self.proxy = asyncio.run_coroutine_threadsafe(DroppingProxy(host, port).start(), self._loop).result(10)

    @property
    def url(self) -> str:
        return self.proxy.url

    def set_drop(self, drop: bool) -> None:
        self._loop.call_soon_threadsafe(setattr, self.proxy, "drop", drop)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.proxy.close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
