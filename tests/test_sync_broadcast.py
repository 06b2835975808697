"""sync/broadcast.py beyond the transport contract: junk posted on the channel itself, a
member posting under another's id, the receive bound, members coming and going."""

from __future__ import annotations

import asyncio

import pytest

from ostracon.core.protocol import relay as P
from ostracon.crypto import DeterministicRandom
from ostracon.sync.base import TransportClosed
from ostracon.sync.broadcast import CHANNEL_PREFIX, M_FRAME, M_JOIN, BroadcastTransport, LocalBroadcast
from room_keys import new_room

_made = [0]


async def _open(medium, room, **kw):
    _made[0] += 1
    t = BroadcastTransport(medium.open, DeterministicRandom(f"member{_made[0]}"), **kw)
    await t.connect(f"ws://broadcast/v1/room/{room}")
    msgs = [P.decode_server_message(await t.recv()) for _ in range(2)]
    assert isinstance(msgs[0], P.Welcome) and msgs[1] == P.CaughtUp(0)
    return t, msgs[0]


async def _next_frame(t):
    while True:
        m = P.decode_server_message(await asyncio.wait_for(t.recv(), 30))
        if isinstance(m, P.Ephemeral):
            return m.payload


def test_junk_on_the_channel_is_dropped_and_honest_frames_flow():
    async def main():
        medium, room = LocalBroadcast(), new_room()
        a, _ = await _open(medium, room)
        b, wb = await _open(medium, room)
        assert wb.members == 2
        raw = medium.open(CHANNEL_PREFIX + room, lambda data: None)
        for junk in (b"", b"\x01", b"\x09" + b"x" * 8, bytes([M_FRAME]) + b.sender + b"\xa1spoofed",
                     bytes([M_FRAME]) + b"y" * 8, bytes([M_JOIN]) + b"z" * 8 + b"extra"):
            raw.post(junk)
        await a.send(P.encode_publish(b"\xa1honest"))
        assert await _next_frame(b) == b"\xa1honest"
        assert b.dropped == 6   # every junk message (a spoofed sender id and an empty frame too)
        await a.close()
        await b.close()

    asyncio.run(main())


def test_an_overflowing_receiver_is_closed_with_1008():
    async def main():
        medium, room = LocalBroadcast(), new_room()
        a, _ = await _open(medium, room)
        b, _ = await _open(medium, room, recv_queue=4)
        for i in range(10):
            await a.send(P.encode_ephemeral(bytes([0xA1, i])))
        await asyncio.sleep(0)   # let the medium deliver (it posts asynchronously)
        await asyncio.sleep(0)
        with pytest.raises(TransportClosed) as exc:
            while True:
                await asyncio.wait_for(b.recv(), 30)
        assert exc.value.code == 1008
        await a.close()

    asyncio.run(main())


def test_members_are_counted_as_they_come_and_go():
    async def main():
        medium, room = LocalBroadcast(), new_room()
        a, wa = await _open(medium, room)
        assert wa.members == 1
        b, _ = await _open(medium, room)
        c, wc = await _open(medium, room)
        assert wc.members == 3
        counts = []
        await b.close()
        await c.close()
        while counts[-1:] != [1]:
            m = P.decode_server_message(await asyncio.wait_for(a.recv(), 30))
            if isinstance(m, P.Peers):
                counts.append(m.count)
        assert counts == [2, 3, 2, 1]
        await a.close()

    asyncio.run(main())
