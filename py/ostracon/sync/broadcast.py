"""Sync over a broadcast medium shared by every member, with no relay: the tabs and workers of
one origin on a BroadcastChannel (docs/TRANSPORTS.md). Runtime-agnostic: the medium is
injected (`runtime/browser/broadcast.py` opens a real BroadcastChannel; `LocalBroadcast`
below is an in-process one for native use and tests).

`BroadcastTransport` presents the medium as a relay room without a mailbox, so the unchanged
SyncClient drives it: a welcome (after a short discovery of who else is listening), an
immediate caught-up, members' frames as live frames, a publish acknowledged once posted, a
peers count as members come and go, pings answered locally (the medium is in-process: it
cannot die silently while this side lives). Frames stay sealed and encrypted by the client;
anything on the channel that is not well formed is dropped and counted.

Trust: every script of the origin can open the channel, and can read the origin's storage
anyway, so the origin is the boundary here; there is no admission round. A script of the
origin that does not hold the space key can only post frames the client drops.

Channel messages (binary): kind ‖ sender (8 random bytes) ‖ body

    0x01 frame   body = the sealed frame          (publish and ephemeral alike)
    0x02 join    body = empty                     (every member answers "here")
    0x03 here    body = the joining sender (8)
    0x04 leave   body = empty
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol

from ..core.errors import TransportClosed, ValidationError
from ..core.protocol import relay as P
from ..core.protocol.peerlink import DEFAULT_MAX_FRAME_BYTES, LINK_EPOCH
from .base import Transport

M_FRAME, M_JOIN, M_HERE, M_LEAVE = 0x01, 0x02, 0x03, 0x04
SENDER_SIZE = 8
#: Channel name prefix; the room id follows, so each space epoch has its own channel.
CHANNEL_PREFIX = "ostracon/v1/room/"
#: How long a new member listens for "here" answers before its welcome. Members of one origin
#: answer within a task or two; one that answers later still shows up in a peers message and
#: in the sync session's hello exchange, so this only makes the first count exact.
DEFAULT_DISCOVERY_S = 0.05
#: Messages held between the channel and `recv` (the channel has no backpressure): past it
#: the transport closes with 1008 and the client reconnects, as with the browser WebSocket.
DEFAULT_RECV_QUEUE = 1024
#: Members remembered in the peers count: bounds what junk "join"s can make us hold.
DEFAULT_MAX_MEMBERS = 256


class Channel(Protocol):
    """An open broadcast channel: `post` reaches every other channel of the same name
    (never this one), in order per sender; `close` stops delivery to this one."""

    def post(self, data: bytes) -> None: ...

    def close(self) -> None: ...


OpenChannel = Callable[[str, Callable[[bytes], None]], Channel]


class LocalBroadcast:
    """An in-process broadcast medium (BroadcastChannel semantics: never delivered to the
    poster, delivered asynchronously, in order)."""

    def __init__(self) -> None:
        self._channels: dict[str, list[_LocalChannel]] = {}

    def open(self, name: str, on_message: Callable[[bytes], None]) -> Channel:
        ch = _LocalChannel(self, name, on_message)
        self._channels.setdefault(name, []).append(ch)
        return ch

    def _post(self, sender: _LocalChannel, data: bytes) -> None:
        loop = asyncio.get_running_loop()
        for ch in list(self._channels.get(sender.name, ())):
            if ch is not sender:
                loop.call_soon(ch.deliver, data)


class _LocalChannel:
    def __init__(self, medium: LocalBroadcast, name: str, on_message: Callable[[bytes], None]) -> None:
        self.medium, self.name, self.on_message = medium, name, on_message
        self.open = True

    def post(self, data: bytes) -> None:
        if self.open:
            self.medium._post(self, bytes(data))

    def deliver(self, data: bytes) -> None:
        if self.open:
            self.on_message(data)

    def close(self) -> None:
        if self.open:
            self.open = False
            self.medium._channels[self.name].remove(self)


class BroadcastTransport(Transport):
    """One member's connection to the room of `room_of(url)` on a broadcast medium.

    `open_channel(name, on_message)` opens the medium; `random_bytes` makes the sender id.
    Limits: `max_frame_bytes` (a larger message closes this transport with 1009, as a relay
    would), `recv_queue`, `max_members`; `discovery_s` (see DEFAULT_DISCOVERY_S).
    """

    def __init__(self, open_channel: OpenChannel, random_bytes: Callable[[int], bytes], *,
                 max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES, recv_queue: int = DEFAULT_RECV_QUEUE,
                 max_members: int = DEFAULT_MAX_MEMBERS, discovery_s: float = DEFAULT_DISCOVERY_S) -> None:
        if recv_queue < 1 or max_members < 1 or max_frame_bytes < 2 or discovery_s < 0:
            raise ValidationError("recv_queue, max_members >= 1, max_frame_bytes >= 2, discovery_s >= 0")
        self._open = open_channel
        self.sender = random_bytes(SENDER_SIZE)
        self.max_frame_bytes = max_frame_bytes
        self.recv_queue = recv_queue
        self.max_members = max_members
        self.discovery_s = discovery_s
        self.dropped = 0
        self._channel: Channel | None = None
        self._members: set[bytes] = set()
        self._welcomed = False
        self._early: list[bytes] = []   # frames received before the welcome went out
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._error: TransportClosed | None = None

    async def connect(self, url: str) -> None:
        from .peer import room_of

        if self._channel is not None or self._error is not None:
            raise TransportClosed("a transport connects once; make a new one to reconnect")
        room = room_of(url)
        self._channel = self._open(CHANNEL_PREFIX + room, self._on_message)
        self._post(M_JOIN)
        await asyncio.sleep(self.discovery_s)
        self._welcomed = True
        welcome = P.Welcome(P.PROTOCOL_VERSION, LINK_EPOCH, 0, 1, self.max_frame_bytes, 1 + len(self._members))
        early, self._early = self._early, []
        self._put(P.encode_welcome(welcome))
        self._put(P.encode_caught_up(P.CaughtUp(0)))
        for data in early:   # frames that came during discovery follow the welcome
            self._put(data)

    def _post(self, kind: int, body: bytes = b"") -> None:
        assert self._channel is not None
        self._channel.post(bytes([kind]) + self.sender + body)

    def _put(self, data: bytes) -> None:
        if self._error is not None:
            return
        if self._queue.qsize() >= self.recv_queue:
            self._fail(TransportClosed("receive queue overflow: the client is not keeping up", 1008,
                                       "receive queue overflow"))
            return
        self._queue.put_nowait(data)

    def _on_message(self, data: Any) -> None:
        if self._error is not None:
            return
        if not isinstance(data, (bytes, bytearray)) or len(data) < 1 + SENDER_SIZE:
            self.dropped += 1
            return
        kind, sender, body = data[0], bytes(data[1:1 + SENDER_SIZE]), bytes(data[1 + SENDER_SIZE:])
        if sender == self.sender:
            self.dropped += 1    # someone posting under our id
        elif kind == M_FRAME and body and len(body) < self.max_frame_bytes:
            if self._welcomed:
                self._put(P.encode_ephemeral_out(body))
            elif len(self._early) < self.recv_queue:
                self._early.append(P.encode_ephemeral_out(body))
            else:
                self.dropped += 1
        elif kind == M_JOIN and not body:
            self._post(M_HERE, sender)
            self._count(sender, True)
        elif kind == M_HERE and body == self.sender:
            self._count(sender, True)
        elif kind == M_LEAVE and not body:
            self._count(sender, False)
        elif kind != M_HERE:
            self.dropped += 1

    def _count(self, sender: bytes, present: bool) -> None:
        before = len(self._members)
        if present and sender not in self._members and before < self.max_members:
            self._members.add(sender)
        elif not present:
            self._members.discard(sender)
        if self._welcomed and len(self._members) != before:
            self._put(P.encode_peers(P.Peers(1 + len(self._members))))

    def _fail(self, exc: TransportClosed) -> None:
        if self._error is None:
            self._error = exc
            if self._channel is not None:
                self._post(M_LEAVE)
                self._channel.close()
        self._queue.put_nowait(None)

    async def send(self, message: bytes) -> None:
        if self._channel is None:
            raise TransportClosed("not connected")
        if self._error is not None:
            raise self._error
        if not message:
            return self._refuse(P.CLOSE_UNSUPPORTED, "empty message")
        if len(message) > self.max_frame_bytes:
            return self._refuse(P.CLOSE_TOO_BIG, f"message larger than {self.max_frame_bytes} bytes")
        kind, body = message[0], bytes(message[1:])
        if kind in (P.C_PUBLISH, P.C_EPHEMERAL) and body:
            self._post(M_FRAME, body)
            if kind == P.C_PUBLISH:
                self._put(P.encode_ack(0))
        elif kind == P.C_PING and 1 <= len(body) <= P.MAX_PING_TOKEN:
            self._put(P.encode_pong(body))
        else:
            self._refuse(P.CLOSE_UNSUPPORTED, f"unexpected message kind 0x{kind:02x}")

    def _refuse(self, code: int, reason: str) -> None:
        self._fail(TransportClosed(f"broadcast room closed the connection (code {code}: {reason})", code, reason))
        assert self._error is not None
        raise self._error

    async def recv(self) -> bytes:
        if self._channel is None:
            raise TransportClosed("not connected")
        if self._error is not None:
            raise self._error
        item = await self._queue.get()
        if item is None:
            self._queue.put_nowait(None)   # every later recv fails the same way
            assert self._error is not None
            raise self._error
        return item

    async def close(self) -> None:
        self._fail(TransportClosed("transport closed", 1000))
