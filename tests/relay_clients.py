"""Clients of an in-process relay for the relay server tests: `Client` (a member joined to a
room through the admission challenge), `run` (one event loop per test, with a safety
deadline) and `wait_for` (polls relay state that changes asynchronously)."""

from __future__ import annotations

import asyncio

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from ostracon.core.protocol import relay as P
from room_keys import answer, room_for

ROOM = room_for("ROOM")
ROOM2 = room_for("ROOM2")
DEADLINE = 20.0  # generous per-step deadline; the tests never depend on how fast things are


def run(coro):
    async def guarded():
        async with asyncio.timeout(45):
            return await coro
    return asyncio.run(guarded())


class Client:
    def __init__(self, ws):
        self.ws = ws

    @classmethod
    async def join(cls, relay, room=ROOM, since=None, epoch=None):
        ws = await connect(relay.room_url(room, since, epoch), max_size=None, open_timeout=DEADLINE)
        try:
            await answer(ws, room, DEADLINE)
        except ConnectionClosed:
            pass  # refused before the challenge (e.g. shutting down): close_code() tells
        return cls(ws)

    async def next(self):
        return P.decode_server_message(await asyncio.wait_for(self.ws.recv(), DEADLINE))

    async def until(self, pred):
        """Read messages until ``pred(msg)``; return them all (including the matching one)."""
        seen = []
        while True:
            m = await self.next()
            seen.append(m)
            if pred(m):
                return seen

    async def next_data(self):
        """Next message that is not a Peers update."""
        while True:
            m = await self.next()
            if not isinstance(m, P.Peers):
                return m

    async def caught_up(self):
        msgs = await self.until(lambda m: isinstance(m, P.CaughtUp))
        return msgs

    async def publish(self, payload: bytes) -> None:
        await self.ws.send(P.encode_publish(payload))

    async def close_code(self):
        try:
            while True:
                await asyncio.wait_for(self.ws.recv(), DEADLINE)
        except ConnectionClosed as exc:
            return exc.rcvd.code if exc.rcvd is not None else None

    async def close(self):
        await self.ws.close()


async def wait_for(pred):
    """Poll relay state that changes asynchronously (e.g. after a peer disconnects)."""
    async with asyncio.timeout(DEADLINE):
        while not pred():
            await asyncio.sleep(0.01)
