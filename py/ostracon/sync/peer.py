"""Peer-to-peer sync without a relay (docs/TRANSPORTS.md): one process holds the room and its
peers dial it directly over a loopback or LAN WebSocket.

    hub = await PeerHub(space, host="0.0.0.0", port=8790).start()     # the holding device
    mine = await start_sync(db, hub.url, space, transport_factory=hub.transport)
    # another process / device:
    theirs = await start_sync(db2, "ws://192.168.1.5:8790", space, transport_factory=PeerTransport)

The hub is a `LocalRoom` (core/protocol/peerlink.py): the relay protocol without a mailbox.
Frames are sealed and encrypted by the sync clients exactly as through a relay; the hub and the
dialer prove the room key to each other (mutual admission), so neither side talks to anyone
outside the space. `hub.transport()` is the holding process's own member (in-process queues,
no socket); with `listen=False` the hub is an in-memory room (tests, several databases of one
process).
"""

from __future__ import annotations

import asyncio
import contextlib
import urllib.parse
from collections.abc import Callable
from typing import Any

from ..core.errors import ProtocolError, TransportClosed, ValidationError
from ..core.protocol import peerlink as L
from ..core.protocol import relay as P
from .base import Transport

#: Time a dialer may take to prove the room key; an honest one answers in one round trip.
DEFAULT_ADMISSION_TIMEOUT_S = 10.0
#: Connections still proving the room key at once; more are closed at once (1013, try
#: again). Bounds what anyone who can reach the port makes the hub hold without the key.
DEFAULT_MAX_PENDING = 64
#: Messages queued for one member before it counts as a slow consumer and is closed (4001),
#: like a relay does: bounds the hub's memory at this × max_frame_bytes per member.
DEFAULT_MEMBER_QUEUE = 256
#: Time allowed for the TCP + WebSocket opening handshake of a dialer.
DEFAULT_OPEN_TIMEOUT_S = 10.0
#: Per remote member: frames and bytes per second read from it, and the bursts allowed (the
#: relay's defaults). Enforced by backpressure: past its allowance a member's socket is not
#: read until the bucket refills, so an honest bulk push completes at this rate, never cut off.
DEFAULT_RATE_FRAMES_PER_S = 500.0
DEFAULT_RATE_FRAMES_BURST = 2000
DEFAULT_RATE_BYTES_PER_S = 16.0 * 1024 * 1024
DEFAULT_RATE_BYTES_BURST = 64 * 1024 * 1024


class TokenBucket:
    """`rate` tokens per second, at most `burst` held; `charge` returns the seconds to wait
    before the next read (0 while within the allowance). Times are the caller's (monotonic s)."""

    def __init__(self, rate: float, burst: float, now: float) -> None:
        if not (rate > 0 and burst > 0):
            raise ValidationError("rate and burst must be > 0")
        self.rate, self.burst, self.tokens, self.t = rate, float(burst), float(burst), now

    def charge(self, amount: float, now: float) -> float:
        self._refill(now)
        self.tokens -= amount
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate

    def take(self, amount: float, now: float) -> bool:
        """Debit `amount` if it is held now (True); otherwise debit nothing (False)."""
        self._refill(now)
        if self.tokens < amount:
            return False
        self.tokens -= amount
        return True

    def _refill(self, now: float) -> None:
        self.tokens = min(self.burst, self.tokens + max(0.0, now - self.t) * self.rate)
        self.t = max(self.t, now)


def room_of(url: str) -> str:
    """The room id (hex) in a `ws://host:port/v1/room/<room>?...` URL; ValidationError if none."""
    path = urllib.parse.urlsplit(url).path if "://" in url else url.split("?", 1)[0]
    if not path.startswith(P.ROOM_PATH_PREFIX):
        raise ValidationError(f"not a room URL: {url!r:.120}")
    room = path[len(P.ROOM_PATH_PREFIX):]
    if not P.valid_room_id(room):
        raise ValidationError(f"not a room id: {room!r:.80}")
    return room


class _Member:
    """One member's inbound queue; `None` in it means closed (see `error`)."""

    def __init__(self, size: int) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(size + 1)  # +1: the close marker
        self.size = size
        self.error: TransportClosed | None = None


class PeerHub:
    """The room of a space held by this process, reachable at `url` (ws://host:port).

    Serves the space's current epoch room (and the previous epoch's, which hears about a
    rotation). Limits: `max_members`, `max_frame_bytes` (a larger message closes its sender
    with 1009), `member_queue` (a member that falls this many messages behind is closed with
    4001), `admission_timeout_s`, `max_pending` (connections not admitted yet), `rate_*` (per
    remote member, by backpressure; None: no limit). Raises OSError from `start()` when the port is taken.
    """

    def __init__(self, space: Any, *, host: str = "127.0.0.1", port: int = 0, listen: bool = True,
                 max_members: int = L.DEFAULT_MAX_MEMBERS, max_frame_bytes: int = L.DEFAULT_MAX_FRAME_BYTES,
                 member_queue: int = DEFAULT_MEMBER_QUEUE,
                 admission_timeout_s: float = DEFAULT_ADMISSION_TIMEOUT_S,
                 max_pending: int = DEFAULT_MAX_PENDING,
                 rate_frames_per_s: float | None = DEFAULT_RATE_FRAMES_PER_S,
                 rate_frames_burst: int = DEFAULT_RATE_FRAMES_BURST,
                 rate_bytes_per_s: float | None = DEFAULT_RATE_BYTES_PER_S,
                 rate_bytes_burst: int = DEFAULT_RATE_BYTES_BURST,
                 random_bytes: Callable[[int], bytes] | None = None) -> None:
        if type(member_queue) is not int or member_queue < 1:
            raise ValidationError("member_queue must be an int >= 1")
        self.space = space
        self.host = host
        self.port = port
        self.listen = listen
        self.max_members = max_members
        self.max_frame_bytes = max_frame_bytes
        self.member_queue = member_queue
        self.admission_timeout_s = admission_timeout_s
        self.max_pending = max_pending
        self._pending = 0
        if rate_bytes_per_s is not None and rate_bytes_burst < max_frame_bytes:
            raise ValidationError("rate_bytes_burst must be >= max_frame_bytes (one frame must fit)")
        self.rates = ((rate_frames_per_s, rate_frames_burst), (rate_bytes_per_s, rate_bytes_burst))
        self._random = random_bytes or space.crypto.random_bytes
        self._rooms: dict[str, L.LocalRoom] = {}
        self._members: dict[int, tuple[str, _Member]] = {}
        self._next = 0
        self._server: Any = None
        self._closed = False
        self.stats = {"admitted": 0, "refused": 0, "closed": 0}

    @property
    def pending(self) -> int:
        """Connections still proving the room key."""
        return self._pending

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    async def start(self) -> PeerHub:
        if self.listen and self._server is None:
            from websockets.asyncio.server import serve

            self._server = await serve(self._serve, self.host, self.port, max_size=self.max_frame_bytes + 64,
                                       max_queue=16, compression=None)
            self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        """Close every member (1001, going away) and stop listening; idempotent."""
        self._closed = True
        for mid in list(self._members):
            self._end(mid, P.CLOSE_GOING_AWAY, "the hub is closing")
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> PeerHub:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def transport(self) -> Transport:
        """A transport for this process's own member (pass as `transport_factory`)."""
        return LocalTransport(self)

    # ------------------------------------------------------------ the room

    def _epoch_of(self, room: str) -> Any:
        for epoch in (self.space.current, self.space.previous_epoch()):
            if epoch is not None and epoch.room.hex() == room:
                return epoch
        return None

    def join(self, room: str) -> tuple[int, _Member]:
        """A new member of `room` (its welcome is queued); TransportClosed if not served."""
        if self._closed:
            raise TransportClosed("the hub is closed", P.CLOSE_GOING_AWAY)
        if self._epoch_of(room) is None:
            raise TransportClosed("this hub does not hold that room", P.CLOSE_NOT_ADMITTED)
        self._next += 1
        mid = self._next
        member = _Member(self.member_queue)
        self._members[mid] = (room, member)
        lr = self._rooms.setdefault(room, L.LocalRoom(max_members=self.max_members,
                                                      max_frame_bytes=self.max_frame_bytes))
        self._deliver(lr.join(mid))
        return mid, member

    def receive(self, mid: int, data: object) -> None:
        entry = self._members.get(mid)
        if entry is not None:
            self._deliver(self._rooms[entry[0]].receive(mid, data))

    def leave(self, mid: int) -> None:
        entry = self._members.pop(mid, None)
        if entry is not None:
            self._deliver(self._rooms[entry[0]].leave(mid))

    def _deliver(self, outs: list[L.Out]) -> None:
        for o in outs:
            entry = self._members.get(o.member)
            if entry is None:
                continue
            if isinstance(o, L.Close):
                self._end(o.member, o.code, o.reason)
                continue
            q = entry[1].queue
            if q.qsize() >= entry[1].size:
                self._end(o.member, P.CLOSE_SLOW_CONSUMER, "too far behind")
            else:
                q.put_nowait(o.data)

    def _end(self, mid: int, code: int, reason: str) -> None:
        entry = self._members.get(mid)
        if entry is None:
            return
        member = entry[1]
        member.error = TransportClosed(f"peer room closed the connection (code {code}: {reason})", code, reason)
        member.queue.put_nowait(None)
        self.stats["closed"] += 1
        self.leave(mid)

    # ------------------------------------------------------------ remote members

    async def _admit(self, ws: Any, room: str) -> bool:
        epoch = self._epoch_of(room)
        if epoch is None:
            return False
        # Both proofs name this hub as the dialer dialled it (its Host header), like a relay's
        # admission (docs/RELAY.md "Admission").
        request = getattr(ws, "request", None)
        name = (request.headers.get("Host") or "").strip().lower() if request is not None else ""
        if not P.valid_relay_name(name):
            return False
        nonce = self._random(P.CHALLENGE_NONCE_SIZE)
        await ws.send(P.encode_challenge(P.Challenge(P.PROTOCOL_VERSION, nonce)))
        try:
            async with asyncio.timeout(self.admission_timeout_s):
                answer = await ws.recv()
            sig, theirs = L.decode_peer_auth(answer)
        except (TimeoutError, ProtocolError):
            return False
        message = P.auth_message(epoch.room, L.peer_challenge(L.ROLE_DIALER, nonce, theirs), name)
        if not self.space.crypto.ed25519_verify(epoch.room, message, sig):
            return False
        proof = self.space.sign_challenge(L.peer_challenge(L.ROLE_HOST, nonce, theirs), epoch, relay=name)
        await ws.send(L.encode_peer_proof(proof))
        return True

    async def _serve(self, ws: Any) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            room = room_of(ws.request.path)
        except ValidationError:
            await ws.close(P.CLOSE_NOT_ADMITTED, "not a room path")
            return
        if self._pending >= self.max_pending:
            await ws.close(P.CLOSE_TRY_AGAIN, "too many connections waiting for admission")
            return
        self._pending += 1
        try:
            admitted = await self._admit(ws, room)
        except ConnectionClosed:
            return
        finally:
            self._pending -= 1
        if not admitted:
            self.stats["refused"] += 1
            await ws.close(P.CLOSE_NOT_ADMITTED, "not admitted: no proof of the room key")
            return
        self.stats["admitted"] += 1
        try:
            mid, member = self.join(room)
        except TransportClosed as exc:
            await ws.close(exc.code or P.CLOSE_GOING_AWAY, exc.reason or "")
            return
        loop = asyncio.get_running_loop()
        writer = loop.create_task(self._write(ws, member))
        now = loop.time()
        buckets = [(TokenBucket(rate, burst, now), i) for i, (rate, burst) in enumerate(self.rates)
                   if rate is not None]
        try:
            async for data in ws:
                self.receive(mid, data)
                if mid not in self._members:
                    break
                wait = max([b.charge(1 if i == 0 else len(data), loop.time()) for b, i in buckets] or [0.0])
                if wait > 0:
                    await asyncio.sleep(wait)   # backpressure: this member is not read meanwhile
        except ConnectionClosed:
            pass
        finally:
            self.leave(mid)
            if member.error is None:
                member.error = TransportClosed("left", None)
                member.queue.put_nowait(None)
            with contextlib.suppress(Exception):
                await writer
            err = member.error
            with contextlib.suppress(Exception):
                await ws.close(err.code or 1000, (err.reason or "")[:120])

    async def _write(self, ws: Any, member: _Member) -> None:
        while True:
            data = await member.queue.get()
            if data is None:
                # Closed by the room (full, too big, junk, too slow) or left: closing the socket
                # here also ends the read loop, which may be waiting on a silent member.
                err = member.error
                code = err.code if err is not None and err.code else 1000
                await ws.close(code, ((err.reason if err is not None else "") or "")[:120])
                return
            await ws.send(data)


class LocalTransport(Transport):
    """The hub process's own member: a Transport over in-process queues (no socket, no
    admission: this process holds the space)."""

    def __init__(self, hub: PeerHub) -> None:
        self.hub = hub
        self._mid: int | None = None
        self._member: _Member | None = None
        self._closed = False

    async def connect(self, url: str) -> None:
        if self._member is not None or self._closed:
            raise TransportClosed("a transport connects once; make a new one to reconnect")
        try:
            self._mid, self._member = self.hub.join(room_of(url))
        except TransportClosed:
            self._closed = True
            raise

    def _gone(self) -> TransportClosed:
        m = self._member
        if m is not None and m.error is not None:
            return m.error
        return TransportClosed("not connected" if m is None else "transport closed")

    async def send(self, message: bytes) -> None:
        if self._closed or self._member is None or self._member.error is not None:
            raise self._gone()
        assert self._mid is not None
        self.hub.receive(self._mid, bytes(message))

    async def recv(self) -> bytes:
        m = self._member
        if self._closed or m is None:
            raise self._gone()
        data = await m.queue.get()
        if data is None:
            m.queue.put_nowait(None)   # every later recv fails the same way
            raise self._gone()
        return data

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._mid is not None and self._member is not None:
            if self._member.error is None:
                self._member.error = TransportClosed("transport closed", 1000)
                self._member.queue.put_nowait(None)
            self.hub.leave(self._mid)


class PeerTransport(Transport):
    """Dials a peer's hub (`ws://host:port/v1/room/<room>`) and proves the room key both ways.

    The dialer's proof is the sync client's own answer to the challenge this transport hands
    it (derived from both nonces, core/protocol/peerlink.py); the hub's proof is checked here
    against the room id (the room's public key) before anything else reaches the client, so a
    listener that does not hold the room key is refused with TransportClosed (code 4003).
    """

    def __init__(self, *, crypto: Any = None, open_timeout: float = DEFAULT_OPEN_TIMEOUT_S,
                 max_size: int = L.DEFAULT_MAX_FRAME_BYTES + 64, max_queue: int = 16,
                 ping_interval: float | None = 20.0, ping_timeout: float | None = 20.0) -> None:
        from .native import WebSocketTransport

        if crypto is None:
            from ..crypto import default_backend

            crypto = default_backend()
        self.crypto = crypto
        self._ws = WebSocketTransport(open_timeout=open_timeout, max_size=max_size, max_queue=max_queue,
                                      ping_interval=ping_interval, ping_timeout=ping_timeout)
        self._room = b""
        self._name = ""
        self._nonces: tuple[bytes, bytes] | None = None   # (host's, ours) once challenged
        self._proved = False                               # the hub proved the room key

    async def connect(self, url: str) -> None:
        self._room = bytes.fromhex(room_of(url))
        self._name = P.relay_name(url)  # what both proofs are bound to
        if len(self._room) != P.ROOM_KEY_HEX // 2:
            raise ValidationError("a peer room id is a room public key (64 hex digits)")
        await self._ws.connect(url)

    async def send(self, message: bytes) -> None:
        if not self._proved and self._nonces is not None and message[:1] == bytes([P.C_AUTH]):
            sig = P.decode_auth(message).sig
            await self._ws.send(L.encode_peer_auth(sig, self._nonces[1]))
            return
        await self._ws.send(message)

    async def recv(self) -> bytes:
        data = await self._ws.recv()
        if self._proved:
            return data
        if self._nonces is None:
            # A hub must challenge first: one that does not is not admitting anyone.
            try:
                first = P.decode_server_message(data)
            except ProtocolError:
                first = None
            if not isinstance(first, P.Challenge):
                raise await self._refuse()
            ours = self.crypto.random_bytes(P.CHALLENGE_NONCE_SIZE)
            self._nonces = (first.nonce, ours)
            derived = L.peer_challenge(L.ROLE_DIALER, first.nonce, ours)
            return P.encode_challenge(P.Challenge(P.PROTOCOL_VERSION, derived))
        host, ours = self._nonces
        try:
            sig = L.decode_peer_proof(data)
        except ProtocolError:
            raise await self._refuse() from None
        message = P.auth_message(self._room, L.peer_challenge(L.ROLE_HOST, host, ours), self._name)
        if not self.crypto.ed25519_verify(self._room, message, sig):
            raise await self._refuse()
        self._proved = True
        return await self._ws.recv()

    async def _refuse(self) -> TransportClosed:
        await self._ws.close()
        return TransportClosed("the peer did not prove it holds the room key (not a member of the space)",
                               P.CLOSE_NOT_ADMITTED, "peer not admitted")

    async def close(self) -> None:
        await self._ws.close()
