"""The running part of a sync connection: what the sync client does with session events, how
it sends the session's output, and the ticker that drives everything that is due with time.

A mixin of `SyncClient` (its state lives in `SyncClient.__init__`). Per connection a ticker
task runs every `tick_interval_s` (or sooner when woken by a local change) and:

- saves the mailbox cursor when frames moved it (never once per frame: a flood of junk
  frames must not append a meta record per frame to this device's log);
- keeps the heartbeat: after `heartbeat_interval_s` of silence it pings the relay; if nothing
  arrives within `heartbeat_timeout_s` more, the connection is dropped (→ offline →
  reconnect), so a connection that died without a close is noticed;
- flushes local writes `flush_debounce_s` after they were made while peers are connected;
- drives `session.tick` (retries, anti-entropy hellos) and pushes newly sealed own writes.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from ..core.errors import ClosedError, OstraconError, ProtocolError, TransportError
from ..core.protocol import relay as P
from ..core.protocol.events import Diverged, Equivocated, GapDetected, PeerSeen, ProtocolViolation
from ..core.protocol.frames import FrameSender
from ..core.protocol.session import SyncSession
from .base import DatabaseReplica, Transport
from .members import MemberSync


class SessionDriver:
    """Session events, output and the per-connection ticker (mixed into `SyncClient`)."""

    db: Any
    space: Any
    room: str
    session: SyncSession | None
    replica: DatabaseReplica
    members: MemberSync
    stats: dict[str, int]
    equivocations: deque
    tick_interval_s: float
    heartbeat_interval_s: float
    heartbeat_timeout_s: float
    flush_debounce_s: float | None
    _epoch: Any
    _members_out: deque[bytes]
    _unacked: deque[int]
    _last_error: BaseException | None
    _settled: bool
    _settle_deadline: float
    _caught_up: bool
    _moved: bool
    _peers: int
    _meta_dirty: bool
    _stop: asyncio.Event
    _hint: asyncio.Event
    _send_lock: asyncio.Lock
    _unflushed_since: float | None
    _ping_sent: float | None
    _last_rx: float
    _clock: Callable[[], int]
    _random: Callable[[int], bytes]

    def _emit(self, force: bool = False) -> None:
        raise NotImplementedError  # SyncClient's

    def _error(self, err: BaseException) -> None:
        raise NotImplementedError  # SyncClient's

    def _save_meta(self) -> None:
        raise NotImplementedError  # SyncClient's

    def _drop_connection(self, reason: TransportError) -> None:
        raise NotImplementedError  # SyncClient's

    def _publish_members(self) -> None:
        """Queue our member log for the room if the room has not seen exactly it."""
        data = self.members.outgoing()
        if data is not None:
            self._members_out.append(data)

    def _session_events(self, events: list) -> None:
        for ev in events:
            if isinstance(ev, ProtocolViolation):
                self.stats["violations"] += 1
                self._last_error = ev.error or ProtocolError(ev.reason)
            elif isinstance(ev, GapDetected):
                self.stats["gaps"] += 1
            elif isinstance(ev, PeerSeen):
                if ev.actor:
                    self._settled = True
            elif isinstance(ev, Equivocated):
                self.stats["equivocations"] = self.stats.get("equivocations", 0) + 1
                self.equivocations.append(ev)
            elif isinstance(ev, Diverged):
                self._last_error = ProtocolError("a peer holds different blocks under the same version "
                                                 "vector (an actor equivocated)")
            elif hasattr(ev, "new"):
                self.stats["blocks_new"] += ev.new

    async def _drain(self, t: Transport, sender: FrameSender) -> None:
        session = self.session
        if session is None:
            return
        async with self._send_lock:
            while self._members_out:
                data = self._members_out.popleft()
                self._unacked.append(0)
                await t.send(P.encode_publish(sender.seal(data)))
                self.stats["frames_out"] += 1
            if self._epoch.key_id != self.space.key_id:
                # This room's epoch is over (we only announce the rotation here): nothing
                # written since may be sealed under its key, which the removed device holds.
                if self._caught_up and self.members.room_has_log():
                    self.members.mark_told(self._epoch.key_id, self.space.key_id)
                return
            for out in session.outgoing():
                frame = sender.seal(out.data)
                if out.durable:
                    self._unacked.append(out.own_upto)
                    await t.send(P.encode_publish(frame))
                else:
                    await t.send(P.encode_ephemeral(frame))
                self.stats["frames_out"] += 1

    async def _ticker(self, t: Transport, sender: FrameSender) -> None:
        while not self._stop.is_set():
            # asyncio.wait, not wait_for: on 3.11 wait_for can swallow a cancellation that
            # races with the inner wait finishing, and the ticker would outlive its connection.
            waiter = asyncio.ensure_future(self._hint.wait())
            timeout = self.tick_interval_s
            if self._unflushed_since is not None and self.flush_debounce_s is not None:
                due = self._unflushed_since + self.flush_debounce_s - time.monotonic()
                timeout = max(0.0, min(timeout, due))
            try:
                await asyncio.wait({waiter}, timeout=timeout)
            finally:
                waiter.cancel()
            self._hint.clear()
            session = self.session
            if session is None:
                return
            if self._meta_dirty:
                self._save_meta()
            if not await self._heartbeat(t):
                return
            try:
                self._flush_for_peers()
                self.db.tick()
            except ClosedError:
                return
            except OstraconError as exc:
                self._error(exc)
            if self._caught_up:
                self._publish_members()
                if self.space.room_id != self.room:
                    self._moved = True  # a local rotation (remove): publish the log here, then move
                if not self._settled and time.monotonic() >= self._settle_deadline:
                    self._settled = True
                self._session_events(session.tick(self._clock()))
                if self.replica.own_sealed() > session.pushed_upto:
                    session.on_local_change()
            await self._drain(t, sender)
            self._emit()
            if self._moved and self._caught_up:
                await t.close()  # wakes the receive loop; run() rejoins in the new room
                return

    async def _heartbeat(self, t: Transport) -> bool:
        """Ping after `heartbeat_interval_s` of silence; False (and the connection dropped)
        after `heartbeat_timeout_s` more without any message."""
        now = time.monotonic()
        if self._ping_sent is not None:
            if now - self._ping_sent >= self.heartbeat_timeout_s:
                silent = now - self._last_rx
                self._drop_connection(TransportError(
                    f"the relay connection is dead: nothing received for {silent:.1f} s (heartbeat)"))
                return False
        elif now - self._last_rx >= self.heartbeat_interval_s:
            self._ping_sent = now
            try:
                async with self._send_lock:
                    await t.send(P.encode_ping(self._random(P.MAX_PING_TOKEN)))
            except TransportError:
                return False
        return True

    def _flush_for_peers(self) -> None:
        """Flush local writes `flush_debounce_s` after they were made while peers are
        connected (the sink's own triggers would hold them back for seconds)."""
        if self.flush_debounce_s is None or self._peers == 0 or self.replica.pending_local() == 0:
            self._unflushed_since = None
            return
        now = time.monotonic()
        if self._unflushed_since is None:
            self._unflushed_since = now
        if now - self._unflushed_since >= self.flush_debounce_s:
            self._unflushed_since = None
            self.db.flush()
