"""The relay server, in process on port 0, against abusive or broken clients: oversize
frames, rates, connection, room and member limits, slow consumers, idle connections, frames of
the wrong kind, and a failing mailbox. Every test runs its own event loop via asyncio.run."""

from __future__ import annotations

import asyncio
import os
import socket
import time

import pytest
from websockets.exceptions import ConnectionClosed

from ostracon.core.protocol import relay as P
from ostracon.relay.backend import Backend, LocalBus
from ostracon.relay.limits import LocalLimits
from ostracon.relay.mailbox import FRAME_OVERHEAD_BYTES as O
from ostracon.relay.mailbox import MailboxError, MemoryMailbox, SqliteMailbox
from ostracon.relay.redis_backend import redis_backend
from ostracon.relay.server import Relay, RelayConfig
from redis_server import redis_server  # noqa: F401  (fixture)
from relay_clients import DEADLINE, ROOM, ROOM2, Client, run, wait_for
from relay_process import RawClient
from room_keys import new_room, signature


def test_oversize_frame_is_closed_with_1009():
    async def main():
        async with Relay() as relay:
            a = await Client.join(relay)
            await a.caught_up()
            await a.ws.send(P.encode_publish(b"\0" * (2 * 1024 * 1024)))
            assert await a.close_code() == P.CLOSE_TOO_BIG
            await wait_for(lambda: relay.metrics.drops["oversize"] == 1)
            assert relay.mailbox.stats().frames == 0
    run(main())


class FrozenClock:
    """A monotonic clock that only moves when the test says so (rate buckets never refill)."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_rate_limits_throttle_instead_of_disconnecting_and_survive_reconnects():
    async def main():
        clock = FrozenClock()
        # 1000 frames/s keeps each enforced pause at a millisecond; the frozen clock means the
        # bucket never refills, so every frame past the burst is held back.
        cfg = RelayConfig(rate_frames_per_s=1000.0, rate_frames_burst=3)
        backend = Backend(MemoryMailbox(), LocalBus(), LocalLimits(clock))
        async with Relay(cfg, backend=backend) as relay:
            a = await Client.join(relay)
            await a.caught_up()
            for i in range(8):
                await a.publish(b"x%d" % i)
            acks = [m.cursor for m in await a.until(lambda m: isinstance(m, P.Ack) and m.cursor == 8)
                    if isinstance(m, P.Ack)]
            assert acks == list(range(1, 9))  # nothing refused, nobody disconnected
            assert relay.metrics.drops["rate_limit"] == 5 and relay.metrics.throttled_s > 0
            await a.close()
            # A new connection from the same address to the same room gets no fresh allowance.
            b = await Client.join(relay, since=8)
            await b.caught_up()
            await b.publish(b"again")
            await b.until(lambda m: isinstance(m, P.Ack))
            assert relay.metrics.drops["rate_limit"] == 6
            # Another room is another bucket.
            c = await Client.join(relay, ROOM2)
            await c.caught_up()
            await c.publish(b"other")
            await c.until(lambda m: isinstance(m, P.Ack))
            assert relay.metrics.drops["rate_limit"] == 6
            await b.close()
            await c.close()
    run(main())


def test_connection_room_and_member_limits_close_with_1013():
    async def main():
        async with Relay(RelayConfig(max_connections=2)) as relay:
            a = await Client.join(relay)
            b = await Client.join(relay, ROOM2)
            c = await Client.join(relay)
            assert await c.close_code() == P.CLOSE_TRY_AGAIN
            assert relay.metrics.drops["max_connections"] == 1
            await a.close()
            await wait_for(lambda: relay.metrics_snapshot()["connections"] == 1)
            d = await Client.join(relay)
            assert isinstance(await d.next(), P.Welcome)  # a slot freed up
            await b.close()
            await d.close()
        async with Relay(RelayConfig(max_rooms=1, max_room_members=2)) as relay:
            a = await Client.join(relay)
            b = await Client.join(relay, ROOM2)
            assert await b.close_code() == P.CLOSE_TRY_AGAIN
            c = await Client.join(relay)
            d = await Client.join(relay)
            assert await d.close_code() == P.CLOSE_TRY_AGAIN
            assert relay.metrics.drops["max_rooms"] == 1 and relay.metrics.drops["room_full"] == 1
            await a.close()
            await c.close()
    run(main())


async def _raw_join_never_read(port: int, room: str) -> socket.socket:
    """A WebSocket client that completes the handshake and then never reads again."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # keep the kernel's buffering small
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", port))
    req = (f"GET {P.room_path(room)} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
           "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    await loop.sock_sendall(sock, req.encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = await asyncio.wait_for(loop.sock_recv(sock, 1), DEADLINE)
        assert chunk, "relay closed during handshake"
        buf += chunk
    assert buf.startswith(b"HTTP/1.1 101"), buf
    # Answer the admission challenge by hand (one unmasked server frame in, one masked out).
    head = b""
    while len(head) < 2:
        head += await asyncio.wait_for(loop.sock_recv(sock, 2 - len(head)), DEADLINE)
    n = head[1] & 0x7F
    body = b""
    while len(body) < n:
        body += await asyncio.wait_for(loop.sock_recv(sock, n - len(body)), DEADLINE)
    challenge = P.decode_server_message(body)
    auth = P.encode_auth(signature(room, challenge.nonce, f"127.0.0.1:{port}"), f"127.0.0.1:{port}")
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(auth))
    await loop.sock_sendall(sock, bytes([0x82, 0x80 | len(auth)]) + mask + masked)
    return sock


def test_slow_consumer_is_disconnected_and_relay_memory_stays_bounded():
    async def main():
        # Past send_queue_bytes the non-reader is sent back to the mailbox (no memory); it is
        # disconnected once one write stalls for send_timeout_s.
        cfg = RelayConfig(max_frame_bytes=64 * 1024 + 1, send_queue_frames=8, send_queue_bytes=256 * 1024,
                          write_buffer_bytes=16 * 1024, rate_frames_per_s=None, rate_bytes_per_s=None,
                          close_timeout_s=0.5, send_timeout_s=0.5)
        async with Relay(cfg) as relay:
            writer = await Client.join(relay)
            healthy = await Client.join(relay)
            await writer.caught_up()
            await healthy.caught_up()
            slow = await _raw_join_never_read(relay.port, ROOM)
            await wait_for(lambda: relay.metrics_snapshot()["connections"] == 3)
            received = []
            acked = []
            progress = asyncio.Event()

            async def read_all(client, sink, kind):
                try:
                    while True:
                        m = await client.next()
                        if isinstance(m, kind):
                            sink.append(m.cursor)
                            progress.set()
                except ConnectionClosed:
                    pass

            async def window(limit):
                # Pace the writer to the healthy reader, so only the non-reader falls behind.
                while len(received) < sent - limit or len(acked) < sent - limit:
                    progress.clear()
                    await asyncio.wait_for(progress.wait(), DEADLINE)

            readers = [asyncio.create_task(read_all(healthy, received, P.Frame)),
                       asyncio.create_task(read_all(writer, acked, P.Ack))]
            payload = bytes(range(256)) * 256  # 64 KiB
            sent = 0
            # Far more than kernel buffers + queue can hold for a reader that never reads.
            while relay.metrics.drops["slow_consumer"] == 0 and sent < 2000:
                await writer.publish(payload)
                sent += 1
                await window(2)
            assert relay.metrics.drops["slow_consumer"] == 1, "the non-reading client was never dropped"
            # Bounded: no member's queue ever went past the configured limit.
            assert relay.metrics.queue_high_water_bytes <= cfg.send_queue_bytes
            await wait_for(lambda: relay.metrics_snapshot()["connections"] == 2)
            # The others are unaffected: everything sent is delivered and acknowledged.
            for _i in range(20):
                await writer.publish(payload)
                sent += 1
                await window(2)
            await window(0)
            assert received == list(range(1, sent + 1)) and acked == received
            assert relay.metrics.drops["slow_consumer"] == 1
            slow.close()
            await writer.close()
            await healthy.close()
            await asyncio.gather(*readers)
    run(main())


def test_idle_connection_is_closed_with_4002():
    async def main():
        async with Relay(RelayConfig(idle_timeout_s=0.2)) as relay:
            a = await Client.join(relay)
            assert await a.close_code() == P.CLOSE_IDLE
            assert relay.metrics.drops["idle"] == 1
    run(main())



def test_a_failing_limits_store_closes_that_connection_with_1011_and_the_relay_keeps_serving():
    # A shared limits store (Redis) that is down raises MailboxError from acquire/release:
    # the connection gets 1011, not an unhandled error in the handler, and the next join
    # (store back) is served.
    class FlakyLimits(LocalLimits):
        down = {"ip": False, "room": False, "release": False}

        def acquire(self, kind, key, cap):
            if self.down[kind]:
                raise MailboxError("redis: connection refused")
            return super().acquire(kind, key, cap)

        def release(self, kind, key):
            super().release(kind, key)
            if self.down["release"]:
                raise MailboxError("redis: connection refused")

    async def main():
        limits = FlakyLimits(time.monotonic)
        backend = Backend(mailbox=MemoryMailbox(), bus=LocalBus(), limits=limits)
        async with Relay(RelayConfig(), backend=backend) as relay:
            for kind in ("ip", "room"):
                limits.down[kind] = True
                a = await Client.join(relay)
                assert await a.close_code() == P.CLOSE_INTERNAL, kind
                limits.down[kind] = False
            assert relay.metrics.drops["mailbox_error"] == 2
            limits.down["release"] = True
            a = await Client.join(relay)
            await a.caught_up()
            await a.ws.close()
            limits.down["release"] = False
            b = await Client.join(relay)
            await b.caught_up()
            await b.publish(b"still serving")
            await b.until(lambda m: isinstance(m, P.Ack))
            await b.ws.close()
            await wait_for(lambda: not relay._members)
            assert limits.held("room", ROOM) == 0
    run(main())


def test_text_unknown_kind_and_empty_frames_close_with_1003():
    async def main():
        async with Relay() as relay:
            for bad in ("text", b"\x07payload", b"\x01", b""):
                a = await Client.join(relay)
                await a.caught_up()
                await a.ws.send(bad)
                assert await a.close_code() == P.CLOSE_UNSUPPORTED, bad
            assert relay.metrics.drops["bad_message"] == 4
            assert relay.mailbox.stats().frames == 0
    run(main())


def test_mailbox_failure_closes_with_1011():
    class BrokenMailbox(MemoryMailbox):
        def append(self, room, frame, writer=""):
            raise MailboxError("disk on fire")

    async def main():
        async with Relay(RelayConfig(), BrokenMailbox()) as relay:
            a = await Client.join(relay)
            await a.caught_up()
            await a.publish(b"x")
            assert await a.close_code() == P.CLOSE_INTERNAL
            assert relay.metrics.drops["mailbox_error"] == 1
    run(main())


MiB = 1024 * 1024
OTHER_HOST = "127.0.0.2"  # another client address (loopback), as a different host would be


@pytest.fixture(params=["memory", "sqlite", "redis"])
def small_backend(request, tmp_path):
    """A backend with a 1 MiB room and 4 MiB total mailbox (the 64 MiB / 1 GiB defaults, scaled)."""
    limits = dict(max_room_bytes=MiB, max_total_bytes=4 * MiB)
    if request.param == "redis":
        backend = redis_backend(request.getfixturevalue("redis_server").url, **limits)
    elif request.param == "sqlite":
        backend = Backend(SqliteMailbox(tmp_path / "mailbox.sqlite", **limits), LocalBus())
    else:
        backend = Backend(MemoryMailbox(**limits), LocalBus())
    yield backend
    backend.close()


async def _fill(client: RawClient, frames: list[bytes]) -> int | None:
    """Publish ``frames``; None when all were acknowledged, else the close code."""
    for f in frames:
        await client.publish(f)
    acks = []
    try:
        await client.until(lambda m: isinstance(m, P.Ack) and acks.append(m) is None and len(acks) == len(frames))
        return None
    except ConnectionClosed as exc:
        return exc.rcvd.code if exc.rcvd is not None else None


@pytest.mark.parametrize("share", [0.25, None])
def test_an_outsider_filling_rooms_of_its_own_cannot_evict_another_rooms_mailbox(small_backend, share):
    """Rooms are free to create (a room id is a key the client makes): one address filling
    rooms of its own must not push another room's frames out of the total budget. Either
    defence holds alone: the address's store budget (refused with 1008), and without it the
    mailbox's eviction of the heaviest writer's frames under the total budget."""
    async def main():
        async with Relay(RelayConfig(max_address_share=share), backend=small_backend) as relay:
            victim = new_room()
            v = await RawClient.join(relay.url, victim, since=None, local_addr=(OTHER_HOST, 0))
            await v.until(lambda m: isinstance(m, P.CaughtUp))
            assert await _fill(v, [b"victim-frame-%d" % i + bytes(1000) for i in range(10)]) is None
            await v.close()
            codes = []
            for _ in range(6):  # 6 x 0.9 MiB: more than the whole 4 MiB mailbox
                a = await Client.join(relay, new_room())
                await a.caught_up()
                codes.append(await _fill(a, [os.urandom(100_000) for _ in range(9)]))
                await a.close()
            d = await RawClient.join(relay.url, victim, since=0, local_addr=(OTHER_HOST, 0))
            msgs = await d.until(lambda m: isinstance(m, P.CaughtUp))
            await d.close()
            assert [m.cursor for m in msgs if isinstance(m, P.Frame)] == list(range(1, 11))
            assert not [m for m in msgs if isinstance(m, P.Gap)]
            if share is None:  # everything stored; the outsider's own oldest frames went
                assert codes == [None] * 6 and relay.mailbox.stats().dropped["total_bytes"] > 0
                return
            assert codes[0] is None and codes[-1] == P.CLOSE_POLICY  # refused past its budget
            assert relay.metrics.drops["store_budget"] >= 1
            assert relay.mailbox.stats().bytes <= 2 * MiB
    run(main())


def test_honest_heavy_use_within_the_address_budget_is_untouched(small_backend):
    """An address spending its budget over several rooms gets every frame stored; another
    address has a budget of its own; a refused frame is not charged."""
    async def main():
        async with Relay(RelayConfig(max_address_share=0.25), backend=small_backend) as relay:
            budget = relay._store_budget.burst  # max(total x share, one largest frame)
            frame = 60_000
            fits = budget // (frame + O)
            rooms = [new_room() for _ in range(3)]
            sent = 0
            for i, room in enumerate(rooms):
                n = fits // 3 if i < 2 else fits - 2 * (fits // 3)
                c = await Client.join(relay, room)
                await c.caught_up()
                assert await _fill(c, [os.urandom(frame) for _ in range(n)]) is None
                await c.close()
                sent += n
            assert sent == fits and relay.metrics.drops["store_budget"] == 0
            other = await RawClient.join(relay.url, rooms[0], since=None, local_addr=(OTHER_HOST, 0))
            await other.until(lambda m: isinstance(m, P.CaughtUp))
            assert await _fill(other, [os.urandom(frame) for _ in range(3)]) is None
            await other.close()
            # The spent address: a frame past the budget is refused, a small one still fits.
            c = await Client.join(relay, rooms[1])
            await c.caught_up()
            assert await _fill(c, [os.urandom(frame)]) == P.CLOSE_POLICY
            c = await Client.join(relay, rooms[1])
            await c.caught_up()
            left = budget - fits * (frame + O)
            if left > O:
                await c.publish(b"x" * (left - O))
                await c.until(lambda m: isinstance(m, P.Ack))
            await c.close()
            for room in rooms:
                assert relay.mailbox.info(room).pruned_through == 0
    run(main())
