"""The attacks of the relay abuse suite, replayed against real relay processes.

Each scenario runs one attack, checks that a legitimate client still connects and converges
while it runs (from another loopback address, 127.0.0.2, as a different host would), and
returns figures: what the attacker got, what was refused, how long the honest round took.
tests/test_relay_abuse.py runs them at test size and asserts behaviour (never timing);
bench/relay_abuse.py runs them at bench size and writes the figures to docs/RELAY.md.
All loops are bounded and all traffic stays on loopback.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from pathlib import Path

import ostracon
from ostracon.core.errors import CatchUpIncompleteError, TransportClosed
from ostracon.core.protocol import relay as P
from ostracon.crypto import DeterministicRandom
from ostracon.crypto.native import NativeCrypto
from ostracon.crypto.space import Space
from ostracon.sync.native import WebSocketTransport, start_sync
from relay_process import RawClient, RelayProcess
from room_keys import room_for, signature

CRYPTO = NativeCrypto()
LEGIT_ADDR = "127.0.0.2"
FAST = dict(backoff_initial_s=0.05, backoff_max_s=0.5, tick_interval_s=0.02, settle_s=0.2)
TIMEOUT = 60.0
MiB = 1024 * 1024


class FromAddress(WebSocketTransport):
    """The native transport, bound to another loopback source address."""

    def __init__(self, addr: str, **kw):
        super().__init__(**kw)
        self.addr = addr

    async def connect(self, url: str) -> None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import InvalidHandshake
        try:
            self._ws = await connect(url, open_timeout=self.open_timeout, max_size=self.max_size,
                                     max_queue=self.max_queue, compression=None, local_addr=(self.addr, 0))
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            self._closed = True
            raise TransportClosed(f"cannot connect: {exc}") from None


def space(tag: str) -> Space:
    return Space.from_key(DeterministicRandom(f"abuse/{tag}")(32), "abuse", crypto=CRYPTO)


async def legit_round(url: str, tmp: Path, tag: str, docs: int = 3) -> float:
    """Two honest devices on 127.0.0.2 write and converge through the relay; returns seconds."""
    t0 = time.monotonic()
    sp = space(tag)
    dbs = [ostracon.open(str(tmp / f"{tag}-{i}"), random_bytes=DeterministicRandom(f"{tag}/{i}")) for i in range(2)]
    try:
        for i, db in enumerate(dbs):
            for k in range(docs):
                db.collection("notes").create({"by": i, "k": k}, id=f"{tag}-{i}-{k}")
            db.flush()
        handles = [await start_sync(db, url, sp, transport_factory=lambda: FromAddress(LEGIT_ADDR), **FAST)
                   for db in dbs]
        try:
            end = time.monotonic() + TIMEOUT
            while not (dbs[0].state_hash() == dbs[1].state_hash()
                       and dbs[0].collection("notes").count() == 2 * docs):
                if time.monotonic() > end:
                    raise AssertionError(f"honest devices did not converge ({tag}): "
                                         f"{[h.status for h in handles]}")
                await asyncio.sleep(0.02)
        finally:
            for h in handles:
                await h.stop()
    finally:
        for db in dbs:
            db.close()
    return time.monotonic() - t0


async def _healthz(port: int, addr: str = LEGIT_ADDR) -> int:
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port, local_addr=(addr, 0)),
                                            TIMEOUT)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    data = await asyncio.wait_for(reader.read(), TIMEOUT)
    writer.close()
    return int(data.split(b" ", 2)[1])


async def _idle_socket(port: int) -> socket.socket:
    loop = asyncio.get_running_loop()
    s = socket.socket()
    s.setblocking(False)
    await loop.sock_connect(s, ("127.0.0.1", port))
    return s


async def idle_tcp(relay: RelayProcess, tmp: Path, sockets: int, reopen_rounds: int) -> dict:
    """Hold ``sockets`` idle TCP connections (no bytes) and keep reopening the ones the relay
    drops, while an honest client asks /healthz and syncs."""
    held = [await _idle_socket(relay.port) for _ in range(sockets)]
    opened = sockets
    t0 = time.monotonic()
    status = await _healthz(relay.port)
    first_answer = time.monotonic() - t0
    honest = await legit_round(relay.url, tmp, "idle-tcp")
    for _ in range(reopen_rounds):  # the attacker replaces what was closed, then probes again
        for i, s in enumerate(held):
            try:
                dead = s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
            except BlockingIOError:
                dead = False
            except OSError:
                dead = True
            if dead:
                s.close()
                held[i] = await _idle_socket(relay.port)
                opened += 1
        assert await _healthz(relay.port) == 200
    honest2 = await legit_round(relay.url, tmp, "idle-tcp2")
    m = relay.metrics()
    for s in held:
        s.close()
    return {"attack": f"{sockets} idle TCP sockets, reopened {reopen_rounds}x", "healthz": status,
            "opened": opened, "evicted": m["drops"]["pending_evicted"],
            "first_answer_s": round(first_answer, 3), "honest_sync_s": round(max(honest, honest2), 3)}


async def idle_websockets(relay: RelayProcess, tmp: Path, attempts: int) -> dict:
    """One host opens ``attempts`` idle WebSockets; an honest host still syncs."""
    from websockets.exceptions import ConnectionClosed
    held, refused = [], 0
    for i in range(attempts):
        c = await RawClient.join(relay.url, room_for(f"idle-ws{i}"))
        try:
            first = await c.next()
        except ConnectionClosed:  # refused: 1013 right after the handshake
            refused += 1
            continue
        assert isinstance(first, P.Welcome)
        held.append(c)
    honest = await legit_round(relay.url, tmp, "idle-ws")
    m = relay.metrics()
    health = await _healthz(relay.port)
    for c in held:
        await c.close()
    return {"attack": f"{attempts} idle WebSockets from one host", "held": len(held), "refused": refused,
            "per_ip_drops": m["drops"]["per_ip"], "healthz": health, "honest_sync_s": round(honest, 3)}


async def saturation(relay: RelayProcess, fill: int) -> dict:
    """Fill max_connections from several addresses: /healthz says 503 until they leave."""
    clients = []
    for i in range(fill):
        addr = f"127.0.1.{i % 250 + 1}"
        c = await RawClient.join(relay.url, room_for(f"sat{i}"), local_addr=(addr, 0))
        await c.until(lambda m: isinstance(m, P.CaughtUp))
        clients.append(c)
    during = await _healthz(relay.port)
    t0 = time.monotonic()
    for c in clients:
        await c.close()
    while await _healthz(relay.port) != 200:
        if time.monotonic() - t0 > TIMEOUT:
            raise AssertionError("relay did not recover from saturation")
        await asyncio.sleep(0.02)
    return {"attack": f"{fill} connections = max_connections", "healthz_during": during,
            "recover_s": round(time.monotonic() - t0, 3)}


async def big_upload(relay: RelayProcess, tmp: Path, megabytes: int) -> dict:
    """A device pushes a database of about ``megabytes`` MB for the first time; a new device
    then relies on the mailbox alone."""
    import random
    rng = random.Random(megabytes)
    sp = space("big")
    db = ostracon.open(str(tmp / "big"), random_bytes=DeterministicRandom("big"))
    docs = 0
    per_batch = 20
    body = 25_000  # hex characters per document
    while docs * body < megabytes * 1_000_000:
        for _ in range(per_batch):
            db.collection("notes").create({"body": rng.randbytes(body // 2).hex()}, id=f"n{docs}")
            docs += 1
        db.flush()
    t0 = time.monotonic()
    h = await start_sync(db, relay.url, sp, **FAST)
    await h.wait_synced(max(TIMEOUT, megabytes * 2.0))
    upload_s = time.monotonic() - t0
    connections = h.stats["connections"]
    await h.stop()
    m = relay.metrics()
    late = ostracon.open(str(tmp / "late"), random_bytes=DeterministicRandom("late"))
    hl = await start_sync(late, relay.url, sp, **FAST)
    # Either it syncs from the mailbox alone, or it is told plainly that it cannot.
    end = time.monotonic() + max(TIMEOUT, megabytes * 2.0)
    while not (hl.status.synced or isinstance(hl.status.last_error, CatchUpIncompleteError)):
        if time.monotonic() > end:
            raise AssertionError(f"new device neither synced nor told why: {hl.status}")
        await asyncio.sleep(0.05)
    status = hl.status
    error = type(status.last_error).__name__ if status.last_error is not None else "none"
    got = late.collection("notes").count()
    same = late.state_hash() == db.state_hash()
    await hl.stop()
    late.close()
    db.close()
    return {"attack": f"first upload of {megabytes} MB", "connections": connections,
            "relay_received_mb": round(m["bytes_in"] / 1e6, 1), "upload_s": round(upload_s, 1),
            "throttled_s": m["throttled_s"], "new_device_docs": f"{got}/{docs}", "identical": same,
            "new_device_error": error, "peers_seen_by_new_device": status.peers}


async def junk_rooms(relay: RelayProcess, rooms: int) -> dict:
    """One small frame in each of many rooms: accounting must count what they really cost."""
    rss0 = relay.rss_bytes()
    for i in range(rooms):
        c = await RawClient.join(relay.url, room_for(f"junk{i}"))
        await c.until(lambda m: isinstance(m, P.CaughtUp))
        await c.publish(b"j")
        await c.until(lambda m: isinstance(m, P.Ack))
        await c.close()
    m = relay.metrics()
    return {"attack": f"1-byte frame in each of {rooms} rooms", "accounted_bytes": m["mailbox"]["bytes"],
            "payload_bytes": rooms, "rss_growth_mb": round((relay.rss_bytes() - rss0) / MiB, 1)}


async def _answer_raw(loop, sock: socket.socket, room: str) -> None:
    """Finish the handshake and answer the admission challenge on a raw socket (the member
    then never reads again)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = await asyncio.wait_for(loop.sock_recv(sock, 1), TIMEOUT)
        assert chunk, "relay closed during handshake"
        buf += chunk
    assert buf.startswith(b"HTTP/1.1 101"), buf
    head = b""
    while len(head) < 2:
        head += await asyncio.wait_for(loop.sock_recv(sock, 2 - len(head)), TIMEOUT)
    n = head[1] & 0x7F
    body = b""
    while len(body) < n:
        body += await asyncio.wait_for(loop.sock_recv(sock, n - len(body)), TIMEOUT)
    challenge = P.decode_server_message(body)
    auth = P.encode_auth(signature(room, challenge.nonce, "127.0.0.1"), "127.0.0.1")
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(auth))
    await loop.sock_sendall(sock, bytes([0x82, 0x80 | len(auth)]) + mask + masked)


async def flood_with_stalled_reader(relay: RelayProcess, tmp: Path, frames: int) -> dict:
    """A writer floods a room where one member never reads; an honest reader keeps up."""
    room = room_for("flood")
    rss0 = relay.rss_bytes()
    loop = asyncio.get_running_loop()
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.setblocking(False)
    await loop.sock_connect(stalled, ("127.0.0.1", relay.port))
    await loop.sock_sendall(stalled, (f"GET {P.room_path(room, 0)} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                      "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                                      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                      "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    await _answer_raw(loop, stalled, room)
    writer = await RawClient.join(relay.url, room)
    reader = await RawClient.join(relay.url, room, local_addr=(LEGIT_ADDR, 0))
    await writer.until(lambda m: isinstance(m, P.CaughtUp))
    await reader.until(lambda m: isinstance(m, P.CaughtUp))
    payload = bytes(range(256)) * 256
    received = []

    async def read():
        while len(received) < frames:
            m = await reader.next()
            if isinstance(m, P.Frame):
                received.append(m.cursor)

    task = asyncio.create_task(read())
    for _ in range(frames):
        await writer.publish(payload)
    await asyncio.wait_for(task, TIMEOUT)
    m = relay.metrics()
    stalled.close()
    honest = await legit_round(relay.url, tmp, "flood")
    await writer.close()
    await reader.close()
    return {"attack": f"{frames} x 64 KiB flood, one member never reads", "reader_in_order": received == list(
        range(1, frames + 1)), "resyncs": m["drops"]["resync"], "kicked": m["drops"]["slow_consumer"],
        "queue_high_water_mb": round(m["queue_high_water_bytes"] / MiB, 2),
        "rss_growth_mb": round((relay.rss_bytes() - rss0) / MiB, 1), "honest_sync_s": round(honest, 3)}


async def garbage(relay: RelayProcess, tmp: Path, messages: int) -> dict:
    """Garbage messages (unknown kinds, text, empty) over and over, reconnecting each time."""
    closed = 0
    sent = 0
    c = None
    for i in range(messages):
        if c is None:
            c = await RawClient.join(relay.url, room_for("garbage"))
        try:
            kind = i % 3
            await c.ws.send(b"\x7fjunk" if kind == 0 else "text" if kind == 1 else b"\x01")
            sent += 1
        except Exception:
            closed += 1
            c = None
            continue
        if kind != 2:  # the relay closes on a bad message: reconnect
            await c.close_code()
            closed += 1
            c = None
    if c is not None:
        await c.close()
    honest = await legit_round(relay.url, tmp, "garbage")
    m = relay.metrics()
    return {"attack": f"{messages} garbage messages", "sent": sent, "closed": closed,
            "bad_message_drops": m["drops"]["bad_message"], "honest_sync_s": round(honest, 3)}


async def reconnect_flood(relay: RelayProcess, seconds: float, rate: float, burst: int) -> dict:
    """Publish as fast as possible over repeated reconnects: the allowance does not refill."""
    room = room_for("reconnect")
    accepted = 0
    t0 = time.monotonic()
    payload = b"x" * 16_000
    while time.monotonic() - t0 < seconds:
        c = await RawClient.join(relay.url, room, since=None)
        await c.until(lambda m: isinstance(m, P.CaughtUp))
        for _ in range(20):
            await c.publish(payload)
        acks = await asyncio.wait_for(c.until(lambda m: isinstance(m, P.Ack) and m.cursor % 20 == 0), TIMEOUT)
        accepted += sum(1 for m in acks if isinstance(m, P.Ack)) * len(payload)
        await c.close()
    elapsed = time.monotonic() - t0
    return {"attack": "publish flood over reconnects", "accepted_bytes": accepted,
            "allowed_bytes": int(burst + rate * elapsed), "elapsed_s": round(elapsed, 2),
            "throttled_s": relay.metrics()["throttled_s"]}
