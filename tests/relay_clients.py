"""Clients of an in-process relay for the relay server tests: `Client` (a member joined to a
room through the admission challenge), `run` (one event loop per test, with a safety
deadline) and `wait_for` (polls relay state that changes asynchronously)."""

from __future__ import annotations

import asyncio

from ostracon.core.protocol import relay as P
from polling import until
from relay_process import RawClient
from room_keys import room_for

ROOM = room_for("ROOM")
ROOM2 = room_for("ROOM2")
DEADLINE = 20.0  # generous per-step deadline; the tests never depend on how fast things are


def run(coro):
    async def guarded():
        async with asyncio.timeout(45):
            return await coro
    return asyncio.run(guarded())


class Client(RawClient):
    """A member of a room of an in-process relay (relay_process.RawClient dialling the relay's
    own URL), with reads that skip Peers updates or wait for CaughtUp."""

    @classmethod
    async def join(cls, relay, room=ROOM, since=None, epoch=None):
        """Join `room` (`since`, `epoch`: as in relay.room_path); a refusal before the
        admission challenge (e.g. shutting down) shows in close_code()."""
        return await super().join(relay.url, room, since, epoch)

    async def next_data(self):
        """Next message that is not a Peers update."""
        while True:
            m = await self.next()
            if not isinstance(m, P.Peers):
                return m

    async def caught_up(self):
        msgs = await self.until(lambda m: isinstance(m, P.CaughtUp))
        return msgs


async def wait_for(pred):
    """Poll relay state that changes asynchronously (e.g. after a peer disconnects)."""
    await until(pred, "relay state to change", DEADLINE)
