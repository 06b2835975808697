"""Contract every sync Transport (sync/base.py) must meet, against a running relay.

Usage (any runtime with an asyncio loop):

    from transport_contract import CONTRACT
    for check in CONTRACT:
        await check(make_transport, room_url)

`make_transport()` returns a fresh, unconnected Transport; `room_url(room, since=None)`
returns the relay URL of a room. Each check raises AssertionError on failure.
"""

from __future__ import annotations

import asyncio

from ostracon.core.protocol import relay as P
from ostracon.sync.base import TransportClosed
from room_keys import answer, new_room


async def _join(make, room_url, room, since=None):
    t = make()
    await t.connect(room_url(room, since))
    await answer(t, room, 5, P.relay_name(room_url(room)))
    welcome = P.decode_server_message(await asyncio.wait_for(t.recv(), 5))
    assert isinstance(welcome, P.Welcome), welcome
    if since is not None:
        while True:  # the replay (if any) ends with caught-up
            m = P.decode_server_message(await asyncio.wait_for(t.recv(), 5))
            if isinstance(m, P.CaughtUp):
                break
    return t, welcome


async def check_connect_and_welcome(make, room_url):
    room = new_room()
    t, welcome = await _join(make, room_url, room)
    assert welcome.members == 1 and welcome.head == 0
    await t.close()


async def check_publish_is_acked_and_forwarded(make, room_url):
    room = new_room()
    a, _ = await _join(make, room_url, room)
    b, _ = await _join(make, room_url, room)
    await a.send(P.encode_publish(b"\xa1stored"))
    got_ack = got_frame = False
    while not got_ack:
        m = P.decode_server_message(await asyncio.wait_for(a.recv(), 5))
        got_ack = isinstance(m, P.Ack) and m.cursor == 1
    while not got_frame:
        m = P.decode_server_message(await asyncio.wait_for(b.recv(), 5))
        got_frame = isinstance(m, P.Frame) and m.payload == b"\xa1stored" and m.cursor == 1
    await b.send(P.encode_ephemeral(b"\xa1live"))
    while True:
        m = P.decode_server_message(await asyncio.wait_for(a.recv(), 5))
        if isinstance(m, P.Ephemeral):
            assert m.payload == b"\xa1live"
            break
    await a.close()
    await b.close()


async def check_mailbox_replay_with_since(make, room_url):
    room = new_room()
    a, _ = await _join(make, room_url, room)
    for i in range(3):
        await a.send(P.encode_publish(bytes([0xA1, i])))
    acks = 0
    while acks < 3:
        if isinstance(P.decode_server_message(await asyncio.wait_for(a.recv(), 5)), P.Ack):
            acks += 1
    c = make()
    await c.connect(room_url(room, 1))
    await answer(c, room, 5, P.relay_name(room_url(room)))
    seen = []
    while True:
        m = P.decode_server_message(await asyncio.wait_for(c.recv(), 5))
        if isinstance(m, P.Frame):
            seen.append(m.cursor)
        if isinstance(m, P.CaughtUp):
            break
    assert seen == [2, 3]
    await a.close()
    await c.close()


async def check_close_makes_recv_and_send_fail(make, room_url):
    t, _ = await _join(make, room_url, new_room())
    await t.close()
    await t.close()  # idempotent
    for op in (lambda: t.recv(), lambda: t.send(P.encode_ephemeral(b"x"))):
        try:
            await asyncio.wait_for(op(), 5)
        except TransportClosed:
            pass
        else:
            raise AssertionError("a closed transport must raise TransportClosed")


async def check_oversize_message_is_closed_with_1009(make, room_url, max_frame_bytes: int = 1024 * 1024):
    t, welcome = await _join(make, room_url, new_room())
    try:
        await t.send(P.encode_publish(b"\xa1" * (welcome.max_frame_bytes + 1)))
        while True:
            await asyncio.wait_for(t.recv(), 5)
    except TransportClosed as exc:
        assert exc.code == P.CLOSE_TOO_BIG, exc.code
    else:  # pragma: no cover
        raise AssertionError("expected the relay to close the connection")
    finally:
        await t.close()


async def check_unreachable_relay_fails_cleanly(make, room_url, dead_url: str | None = None):
    t = make()
    url = dead_url or "ws://127.0.0.1:9/v1/room/" + "ab" * 16
    try:
        await t.connect(url)
    except TransportClosed:
        pass
    else:  # pragma: no cover
        raise AssertionError("connecting to a closed port must raise TransportClosed")
    finally:
        await t.close()


CONTRACT = [
    check_connect_and_welcome,
    check_publish_is_acked_and_forwarded,
    check_mailbox_replay_with_since,
    check_close_makes_recv_and_send_fail,
    check_oversize_message_is_closed_with_1009,
    check_unreachable_relay_fails_cleanly,
]
