"""Per-member queues and fan-out of the relay (mixed into :class:`~ostracon.relay.server.Relay`).

A stored frame reaches a live member through its bounded queue, in cursor order; a member that
would overflow its queue, or would see a cursor jump (frames of other relay processes arriving
late over the bus), is sent back to the mailbox replay instead: its sender reads the missing
range page by page and goes live again after an empty read. Only a member whose writes stall
for ``send_timeout_s`` (or whose control queue overflows) is disconnected.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING, Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from ..core.errors import OstraconError
from ..core.protocol import relay as P
from .backend import Bus
from .mailbox import Mailbox, Resume, RoomInfo
from .metrics import RelayMetrics

if TYPE_CHECKING:
    from .config import RelayConfig

log = logging.getLogger("ostracon.relay")

# Kinds of queued messages.
_FRAME, _ACK, _CONTROL, _EPHEMERAL = 1, 2, 3, 4


class _Room:
    __slots__ = ("id", "members", "peers_pending", "live_head")

    def __init__(self, room_id: str, head: int):
        self.id = room_id
        self.members: set[_Member] = set()
        self.peers_pending = False
        self.live_head = head  # highest stored cursor fanned out to this room's live members


class _Member:
    __slots__ = ("ws", "room", "key", "queue", "queue_bytes", "controls", "wakeup", "replaying", "closing",
                 "sent", "queued", "sender", "close_reason", "__weakref__")

    def __init__(self, ws: ServerConnection, room: _Room, key: str, after: int, replaying: bool):
        self.ws = ws
        self.room = room
        self.key = key  # client address key the limits are charged to
        self.queue: deque[tuple[bytes, int, int]] = deque()  # (data, cursor, kind)
        self.queue_bytes = 0
        self.controls = 0  # _ACK/_CONTROL items queued
        self.wakeup = asyncio.Event()
        self.replaying = replaying
        self.closing = False
        self.sent = after  # highest stored cursor written to the client (frame or ack)
        self.queued = after  # highest stored cursor queued or sent
        self.sender: asyncio.Task[None] | None = None
        self.close_reason = ""


def _room_tag(room_id: str) -> str:
    return room_id[:8]



class FanOut:
    """The member-facing half of the relay; the attributes below are set by Relay.__init__."""

    config: RelayConfig
    metrics: RelayMetrics
    mailbox: Mailbox
    bus: Bus
    _rooms: dict[str, _Room]
    _bg: set[asyncio.Task[Any]]

    def _drop(self, reason: str) -> None:
        self.metrics.drops[reason] = self.metrics.drops.get(reason, 0) + 1

    async def _close_ws(self, ws: ServerConnection, code: int, reason: str) -> None:
        """Close with a code, but never wait longer than close_timeout_s (a stalled peer cannot
        even receive the close frame): then abort the TCP connection."""
        try:
            async with asyncio.timeout(self.config.close_timeout_s):
                await ws.close(code, reason)
        except TimeoutError:
            ws.transport.abort()
        except Exception:  # closing must never raise into the relay
            ws.transport.abort()

    async def _reject(self, ws: ServerConnection, code: int, reason: str) -> None:
        """Close a connection that never became a member, reading (and discarding) whatever it
        sends meanwhile so its close reply is seen."""
        async def discard() -> None:
            try:
                while True:
                    await ws.recv()
            except ConnectionClosed:
                pass

        drain = asyncio.get_running_loop().create_task(discard())
        try:
            await self._close_ws(ws, code, reason)
        finally:
            drain.cancel()

    def _background(self, coro: Any) -> None:
        t = asyncio.get_running_loop().create_task(coro)
        self._bg.add(t)
        t.add_done_callback(self._bg.discard)

    def _clear_queue(self, m: _Member, keep_controls: bool) -> None:
        if keep_controls:
            kept = deque(item for item in m.queue if item[2] in (_ACK, _CONTROL))
        else:
            kept = deque()
        size = sum(len(item[0]) for item in kept)
        self.metrics.queued_bytes -= m.queue_bytes - size
        m.queue = kept
        m.queue_bytes = size
        m.controls = len(kept)

    def _kick(self, m: _Member, code: int, reason: str) -> None:
        """Disconnect a member from synchronous code (fan-out); frees its queue at once."""
        if m.closing:
            return
        m.closing = True
        m.close_reason = reason
        self._clear_queue(m, False)
        m.wakeup.set()
        log.info("room %s: disconnecting a member: %s (%d)", _room_tag(m.room.id), reason, code)
        self._background(self._close_ws(m.ws, code, reason))

    def _resync(self, m: _Member) -> None:
        """Send a live member back to the mailbox: it drops its queued frames (memory) and its
        sender replays from the last cursor it wrote. Acks stay queued, so they still follow
        every frame stored before them."""
        if m.closing or m.replaying:
            return
        self._drop("resync")
        self._clear_queue(m, True)
        m.replaying = True
        m.queued = m.sent
        m.wakeup.set()

    def _enqueue(self, m: _Member, data: bytes, cursor: int, kind: int) -> None:
        if m.closing:
            return
        cfg = self.config
        if kind in (_ACK, _CONTROL):
            if m.controls >= cfg.send_queue_frames:
                self._drop("slow_consumer")
                self._kick(m, P.CLOSE_SLOW_CONSUMER, "slow consumer: send queue full")
                return
            m.controls += 1
        elif m.queue_bytes + len(data) > cfg.send_queue_bytes:
            if kind == _EPHEMERAL:
                self._drop("ephemeral_dropped")  # live-only by contract: dropping is allowed
            else:
                self._resync(m)
            return
        if kind == _FRAME:
            m.queued = cursor
        m.queue.append((data, cursor, kind))
        m.queue_bytes += len(data)
        self.metrics.queued_bytes += len(data)
        if m.queue_bytes > self.metrics.queue_high_water_bytes:
            self.metrics.queue_high_water_bytes = m.queue_bytes
        m.wakeup.set()

    def _schedule_peers(self, room: _Room) -> None:
        # Coalesced: a burst of joins costs one peers message per member, not one per join.
        if not room.peers_pending:
            room.peers_pending = True
            asyncio.get_running_loop().call_soon(self._send_peers, room)

    def _send_peers(self, room: _Room) -> None:
        room.peers_pending = False
        if self._rooms.get(room.id) is not room:
            return
        msg = P.encode_peers(P.Peers(len(room.members)))
        for m in list(room.members):
            self._enqueue(m, msg, 0, _CONTROL)

    def _on_stored(self, room: _Room, cursor: int, payload: bytes, origin: _Member | None) -> None:
        """Fan a stored frame out to the room's live members, in cursor order per member."""
        if cursor <= room.live_head and origin is None:
            return  # already fanned out (or read from the mailbox by everyone who needs it)
        room.live_head = max(room.live_head, cursor)
        out: bytes | None = None
        for other in list(room.members):
            if other.closing or other.replaying or cursor <= other.queued:
                continue
            if cursor > other.queued + 1:
                # A frame this member has not seen came first (another process's, still on
                # the bus): read the range from the mailbox instead of delivering out of order.
                self._resync(other)
                continue
            if other is origin:
                other.queued = cursor  # the ack tells it; its own frame is not echoed
                continue
            if out is None:
                out = P.encode_frame(cursor, payload)
            self._enqueue(other, out, cursor, _FRAME)

    def _on_ephemeral(self, room: _Room, payload: bytes, origin: _Member | None) -> None:
        out = P.encode_ephemeral_out(payload)
        for other in list(room.members):
            if other is not origin:
                self._enqueue(other, out, 0, _EPHEMERAL)

    def _deliver(self, room_id: str, cursor: int, payload: bytes) -> None:
        """A sibling relay process accepted a frame for a room we may have members in."""
        room = self._rooms.get(room_id)
        if room is None or not payload:
            return
        if cursor:
            self._on_stored(room, cursor, payload, None)
        else:
            self._on_ephemeral(room, payload, None)

    async def _watch_room(self, room: _Room) -> None:
        try:
            await self.bus.subscribe(room.id)
            # Frames stored by other processes before the subscription took effect never reach
            # us on the bus: bring live members up to the mailbox head once.
            head = self.mailbox.info(room.id).head
            if self._rooms.get(room.id) is room and head > room.live_head:
                room.live_head = head
                for m in list(room.members):
                    if m.queued < head:
                        self._resync(m)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("room %s: bus subscribe failed", _room_tag(room.id))

    async def _unwatch_room(self, room_id: str) -> None:
        if room_id in self._rooms:
            return  # somebody joined again meanwhile
        try:
            await self.bus.unsubscribe(room_id)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("room %s: bus unsubscribe failed", _room_tag(room_id))

    def _publish(self, room_id: str, cursor: int, payload: bytes) -> None:
        try:
            self.bus.publish(room_id, cursor, payload)
        except Exception:  # siblings catch up from the mailbox on the next frame
            log.exception("room %s: bus publish failed", _room_tag(room_id))

    async def _send(self, m: _Member, data: bytes, is_frame: bool) -> bool:
        """Write one message; False when the member is gone or was disconnected for stalling."""
        if m.closing:
            return False
        try:
            if self.config.send_timeout_s is not None:
                async with asyncio.timeout(self.config.send_timeout_s):
                    await m.ws.send(data)
            else:
                await m.ws.send(data)
        except TimeoutError:
            self._drop("slow_consumer")
            self._kick(m, P.CLOSE_SLOW_CONSUMER, "slow consumer: send timed out")
            return False
        except ConnectionClosed:
            return False
        if is_frame:
            self.metrics.frames_out += 1
        else:
            self.metrics.control_out += 1
        self.metrics.bytes_out += len(data)
        return True

    async def _replay(self, m: _Member) -> bool:
        """Send stored frames after ``m.sent`` until the mailbox has no more, then go live."""
        cfg = self.config
        room_id = m.room.id
        while not m.closing:
            cur = self.mailbox.info(room_id)
            if m.sent < cur.pruned_through:  # pruned while this member was away or replaying
                if not await self._send(m, P.encode_gap(P.Gap("pruned", m.sent, cur.oldest, cur.head)), False):
                    return False
                m.sent = cur.pruned_through
                continue
            page = self.mailbox.read(room_id, m.sent, cfg.replay_page_frames, cfg.replay_page_bytes)
            if not page:
                # No await between the empty read and this switch: every later frame gets
                # queued for us by the fan-out.
                m.replaying = False
                m.queued = m.sent
                return True
            for cursor, payload in page:
                if not await self._send(m, P.encode_frame(cursor, payload), True):
                    return False
                m.sent = cursor
        return False

    async def _sender(self, m: _Member, info: RoomInfo, resume: Resume, since: int | None) -> None:
        cfg = self.config
        room_id = m.room.id
        try:
            assert info.epoch is not None
            welcome = P.Welcome(P.PROTOCOL_VERSION, info.epoch, info.head, info.oldest, cfg.max_frame_bytes,
                                len(m.room.members))
            if not await self._send(m, P.encode_welcome(welcome), False):
                return
            if resume.gap is not None:
                gap = P.Gap(resume.gap, since or 0, info.oldest, info.head)
                if not await self._send(m, P.encode_gap(gap), False):
                    return
            if m.replaying and not await self._replay(m):
                return
            if not await self._send(m, P.encode_caught_up(P.CaughtUp(m.sent)), False):
                return
            while not m.closing:
                if m.replaying:
                    if not await self._replay(m):
                        return
                    continue
                if not m.queue:
                    m.wakeup.clear()
                    await m.wakeup.wait()
                    continue
                data, cursor, kind = m.queue.popleft()
                m.queue_bytes -= len(data)
                self.metrics.queued_bytes -= len(data)
                if kind in (_ACK, _CONTROL):
                    m.controls -= 1
                if kind == _FRAME and cursor <= m.sent:
                    continue  # already replayed from the mailbox
                if not await self._send(m, data, kind in (_FRAME, _EPHEMERAL)):
                    return
                if kind in (_FRAME, _ACK) and cursor > m.sent:
                    m.sent = cursor
        except asyncio.CancelledError:
            raise
        except OstraconError:
            log.exception("room %s: mailbox failed during replay", _room_tag(room_id))
            self._drop("mailbox_error")
            self._kick(m, P.CLOSE_INTERNAL, "mailbox unavailable")
        except Exception:
            log.exception("room %s: sender failed", _room_tag(room_id))
            self._kick(m, P.CLOSE_INTERNAL, "internal error")
