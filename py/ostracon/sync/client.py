"""The sync client: drives a SyncSession over a Transport to a relay room, with encryption,
mailbox catch-up, reconnects and status. Runtime-agnostic (asyncio only: it runs natively and
under Pyodide's event loop); the WebSocket itself is the injected Transport.

Per connection:

1. join `/v1/room/<room>?since=<cursor>&epoch=<epoch>` (both persisted in the database's
   storage meta, so a restart resumes the mailbox where it stopped);
2. `welcome` → new FrameSender (fresh sender id, counter 0) and FrameReceiver, new session;
3. the mailbox replay is decrypted and applied as it arrives; `caught-up` → `session.start()`
   pushes our own blocks the mailbox lacks (durably: C_PUBLISH) and says hello (live only);
4. from then on: live frames in, session output out (one frame per message), a ticker drives
   `session.tick`, the database's time-triggered flush and pushes of newly sealed writes
   (sync/driving.py: session events, output, heartbeat and ticker).

A dropped connection → `offline`, then a reconnect after exponential backoff with jitter
(`backoff_initial_s` doubling up to `backoff_max_s`, times a random factor in [0.5, 1)).

A connection that dies without a close (NAT rebinding, a Wi-Fi switch) is found by heartbeats:
when nothing arrived for `heartbeat_interval_s` the client sends a relay ping; if still nothing
arrives within `heartbeat_timeout_s` the connection is dropped (→ offline → reconnect). The
runtime can also say the network went away or came back (`set_network`, from the browser's
`navigator.onLine`): offline drops the connection at once and stops attempts; online ends the
backoff wait and reconnects now.

While other members are connected, local writes are flushed `flush_debounce_s` after they
were made, so they reach the peers at once (only durable, sealed blocks are ever shared).
"""

from __future__ import annotations

import asyncio
import logging
import random as _random
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import msgpack

from ..core.errors import (
    CatchUpIncompleteError,
    ClosedError,
    OstraconError,
    ProtocolError,
    TransportError,
    ValidationError,
    WrongKeyError,
)
from ..core.protocol import relay as P
from ..core.protocol.frames import (
    COMMITMENT_FIELD,
    DEFAULT_MAX_FRAME_SIZE,
    FRAME_OVERHEAD,
    HEADER_SIZE,
    SENDER_FIELD,
    FrameKeys,
    FrameReceiver,
    FrameSender,
)
from ..core.protocol.session import DEFAULT_HELLO_INTERVAL_MS, DEFAULT_NEED_TIMEOUT_MS, SyncSession
from ..crypto.space import NotAMemberError
from .base import CONNECTING, OFFLINE, ONLINE, STOPPED, DatabaseReplica, SyncStatus, Transport
from .driving import SessionDriver
from .members import MemberSync, check_binding, is_members_payload
from .options import (
    DEFAULT_BACKOFF_INITIAL_S,
    DEFAULT_BACKOFF_MAX_S,
    DEFAULT_FLUSH_DEBOUNCE_S,
    DEFAULT_HEARTBEAT_INTERVAL_S,
    DEFAULT_HEARTBEAT_TIMEOUT_S,
    DEFAULT_SETTLE_S,
    DEFAULT_TICK_INTERVAL_S,
    RoomMoved,
    backoff_delay,
    base_url,
    meta_key,
)

log = logging.getLogger("ostracon.sync")

class SyncClient(SessionDriver):
    """Keeps one database in sync with one space through one relay until `stop()`."""

    def __init__(self, db: Any, relay_url: str, space: Any, *,
                 transport_factory: Callable[[], Transport],
                 on_status: Callable[[SyncStatus], None] | None = None,
                 random_bytes: Callable[[int], bytes] | None = None,
                 jitter: Callable[[], float] | None = None,
                 clock_ms: Callable[[], int] | None = None,
                 room_id: str | None = None,
                 migrate_from: Any = None,
                 backoff_initial_s: float = DEFAULT_BACKOFF_INITIAL_S,
                 backoff_max_s: float = DEFAULT_BACKOFF_MAX_S,
                 tick_interval_s: float = DEFAULT_TICK_INTERVAL_S,
                 settle_s: float = DEFAULT_SETTLE_S,
                 max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
                 hello_interval_ms: int = DEFAULT_HELLO_INTERVAL_MS,
                 need_timeout_ms: int = DEFAULT_NEED_TIMEOUT_MS,
                 heartbeat_interval_s: float = DEFAULT_HEARTBEAT_INTERVAL_S,
                 heartbeat_timeout_s: float = DEFAULT_HEARTBEAT_TIMEOUT_S,
                 flush_debounce_s: float | None = DEFAULT_FLUSH_DEBOUNCE_S,
                 compress: bool = False) -> None:
        self.db = db
        self.base_url = base_url(relay_url)
        self.relay_name = P.relay_name(self.base_url)  # what admission answers are bound to
        self.space = space
        if space.members is not None:
            space.adopt(db.identity)  # membership is per device: the database's identity
        check_binding(db, space, rebind_from=migrate_from)
        self.members = MemberSync(db, space)
        if room_id is not None and room_id != space.room_id:
            # The room id is the public key of the room key: only the space's own room can be
            # joined (the relay admits nobody else), so another id is a wrong invite or key.
            raise WrongKeyError("this room belongs to another space key: wrong passphrase or invite")
        self.explicit_room = room_id is not None
        self.aead = space.crypto
        self._transport_factory = transport_factory
        self._on_status = on_status
        self._random = random_bytes or self.aead.random_bytes
        self._jitter = jitter or _random.random
        self._clock = clock_ms or (lambda: time.monotonic_ns() // 1_000_000)
        if not 0 < backoff_initial_s <= backoff_max_s:
            raise ValidationError("need 0 < backoff_initial_s <= backoff_max_s")
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.tick_interval_s = tick_interval_s
        self.settle_s = settle_s
        self.max_frame_size = max_frame_size
        self.hello_interval_ms = hello_interval_ms
        self.need_timeout_ms = need_timeout_ms
        self.compress = compress
        if not (heartbeat_interval_s > 0 and heartbeat_timeout_s > 0):
            raise ValidationError("heartbeat_interval_s and heartbeat_timeout_s must be > 0")
        if flush_debounce_s is not None and flush_debounce_s < 0:
            raise ValidationError("flush_debounce_s must be >= 0 (or None: no flush for peers)")
        self.heartbeat_interval_s = heartbeat_interval_s
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self.flush_debounce_s = flush_debounce_s
        self.replica = DatabaseReplica(db, write_limit=space.write_limit if space.members is not None else None)
        self.session: SyncSession | None = None
        self.receiver: FrameReceiver | None = None
        self._receivers: dict[bytes, FrameReceiver] = {}
        #: Equivocation proofs seen (session.Equivocated events), newest last, at most 64.
        self.equivocations: deque = deque(maxlen=64)
        self.stats = {"connections": 0, "frames_in": 0, "frames_out": 0, "own_echoes": 0, "gaps": 0,
                      "violations": 0, "blocks_new": 0}
        self._dropped: dict[str, int] = {}
        self._state = CONNECTING
        self._peers = 0
        self._attempt = 0
        self._last_error: BaseException | None = None
        self._caught_up = False
        self._settled = False
        self._unacked: deque[int] = deque()
        self._stop = asyncio.Event()
        self._changed = asyncio.Event()   # status changed: wakes wait_synced
        self._hint = asyncio.Event()      # local writes flushed: wakes the ticker early
        self._task: asyncio.Task | None = None
        self._send_lock = asyncio.Lock()
        self._network = True               # what the runtime says of the device's network
        self._network_changed = asyncio.Event()
        self._transport: Transport | None = None
        self._abort: TransportError | None = None  # why the client dropped the connection
        self._last_rx = 0.0                # monotonic time of the last message received
        self._ping_sent: float | None = None
        self._unflushed_since: float | None = None
        self._members_out: deque[bytes] = deque()
        self._moved = False
        self._last_status: tuple | None = None
        self._enter_room()

    def _enter_room(self) -> None:
        """Use the space's current epoch: its room, frame keys and mailbox cursor. After a
        rotation this device has not announced yet, first visit the previous epoch's room to
        publish the member log there (members who were offline still listen in it)."""
        epoch = self.space.current
        prev = self.space.previous_epoch()
        if prev is not None and self.members.told(prev.key_id) != epoch.key_id:
            epoch = prev
        self._epoch = epoch
        self.keys: FrameKeys = epoch.frames
        self.room = epoch.room.hex()
        self.meta_key = meta_key(self.base_url, self.room)
        self._meta = self._load_meta()
        self._meta_dirty = False
        self.members.new_room()

    # ------------------------------------------------------------ public

    def start(self) -> SyncClient:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self.run())
        return self

    async def stop(self) -> None:
        """Disconnect, persist the cursor and flush the database (if still open)."""
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        self._save_meta()
        try:
            self.db.flush()
        except ClosedError:
            pass
        self._state = STOPPED
        self._emit(force=True)

    @property
    def status(self) -> SyncStatus:
        return SyncStatus(self._state, self._pending(), self._peers, self._is_synced(), self._last_error,
                          dict(self._dropped), self._attempt, self._meta["cursor"])

    async def wait_synced(self, timeout: float | None = None) -> SyncStatus:
        """Flush the database, then wait until `status.synced` (see SyncStatus)."""
        try:
            self.db.flush()
        except ClosedError:
            raise
        self._hint.set()

        async def _wait() -> SyncStatus:
            while True:
                self._changed.clear()
                if self._state == ONLINE and self._is_synced():
                    return self.status
                if self._task is not None and self._task.done():
                    raise TransportError("sync client stopped")
                await self._changed.wait()

        if timeout is None:
            return await _wait()
        try:
            return await asyncio.wait_for(_wait(), timeout)
        except TimeoutError:
            err = self._last_error
            raise TransportError(f"not synced within {timeout} s (state {self._state}, last error: {err!r})") \
                from (err if isinstance(err, BaseException) else None)

    def notify_local_change(self) -> None:
        """Tell the client that local writes were made (it also polls every tick)."""
        self._hint.set()

    def set_network(self, online: bool) -> None:
        """The runtime's word on the device's network (the browser's `navigator.onLine` and
        its online/offline events). Offline: drop the connection now and make no attempts
        until online. Online: end the backoff wait and reconnect at once."""
        online = bool(online)
        if online == self._network:
            return
        self._network = online
        self._network_changed.set()
        if not online:
            self._drop_connection(TransportError("the device is offline"))

    def _drop_connection(self, reason: TransportError) -> None:
        t = self._transport
        if t is None:
            return
        self._abort = reason
        # get_event_loop: the browser host calls set_network from an RPC, outside a callback.
        asyncio.get_event_loop().create_task(t.close())

    # ------------------------------------------------------------ status

    def _pending(self) -> int:
        try:
            own = self.replica.own_sealed()
            unsealed = self.replica.pending_local()
        except ClosedError:
            return 0
        return unsealed + max(0, own - self._meta["pushed"])

    def _is_synced(self) -> bool:
        s = self.session
        return (self._caught_up and self._settled and s is not None and not self._unacked
                and self._pending() == 0 and s.is_synced)

    def _emit(self, force: bool = False) -> None:
        st = self.status
        key = (st.state, st.pending, st.peers, st.synced, id(st.last_error), sum(st.dropped.values()), st.attempt)
        self._changed.set()
        if not force and key == self._last_status:
            return
        self._last_status = key
        if self._on_status is not None:
            try:
                self._on_status(st)
            except Exception:  # a faulty callback must not stop sync
                log.exception("on_status callback failed")

    def _error(self, err: BaseException) -> None:
        self._last_error = err
        self._emit()

    # ------------------------------------------------------------ meta (cursor persistence)

    def _load_meta(self) -> dict:
        default = {"epoch": None, "cursor": 0, "pushed": 0}
        try:
            raw = self.db.storage.get_meta(self.meta_key)
        except OstraconError:
            return default
        if raw is None:
            return default
        try:
            m = msgpack.unpackb(raw, raw=False)
            epoch, cursor, pushed = m["epoch"], m["cursor"], m["pushed"]
            if (epoch is None or P.valid_epoch(epoch)) and type(cursor) is int and type(pushed) is int \
                    and 0 <= cursor <= P.MAX_CURSOR and pushed >= 0:
                return {"epoch": epoch, "cursor": cursor, "pushed": pushed}
        except Exception:
            pass
        log.warning("ignoring malformed sync meta %s", self.meta_key)
        return default

    def _save_meta(self) -> None:
        self._meta_dirty = False
        try:
            self.db.storage.set_meta(self.meta_key, msgpack.packb(self._meta, use_bin_type=True))
        except OstraconError:
            pass

    # ------------------------------------------------------------ the reconnect loop

    async def run(self) -> None:
        failures = 0
        try:
            while not self._stop.is_set():
                if not self._network:
                    self._state = OFFLINE
                    self._last_error = TransportError("the device is offline")
                    self._emit()
                    await self._wait_stop_or_network(None)
                    continue
                self._state = CONNECTING
                self._attempt = failures + 1
                self._emit()
                transport = self._transport_factory()
                self._transport = transport
                self._abort = None
                online = False
                try:
                    online = await self._connection(transport)
                    err: BaseException | None = None
                except (TransportError, ProtocolError, OstraconError) as exc:
                    err = self._abort or exc
                    online = online or self.session is not None
                finally:
                    self._transport = None
                    try:
                        await transport.close()
                    except Exception:
                        pass
                if self._stop.is_set():
                    break
                if self._moved:
                    # A rotation: rejoin at once in the new epoch's room (no backoff).
                    self._moved = False
                    self._save_meta()
                    self._enter_room()
                    self.session = None
                    self._caught_up = False
                    self._unacked.clear()
                    failures = 0
                    continue
                was_online = self.session is not None
                self.session = None
                self._caught_up = False
                self._unacked.clear()
                self._save_meta()
                self._state = OFFLINE
                if err is not None:
                    self._last_error = err
                self._emit()
                failures = 1 if was_online else failures + 1
                delay = backoff_delay(failures, self.backoff_initial_s, self.backoff_max_s, self._jitter())
                await self._wait_stop_or_network(delay)
        finally:
            self._state = STOPPED
            self.session = None
            self._emit()

    async def _wait_stop_or_network(self, timeout: float | None) -> None:
        """Wait `timeout` seconds (None: forever), less if stopped or the network changes."""
        self._network_changed.clear()
        waiters = {asyncio.ensure_future(self._stop.wait()), asyncio.ensure_future(self._network_changed.wait())}
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()

    async def _connection(self, t: Transport) -> bool:
        meta = self._meta
        url = self.base_url + P.room_path(self.room, meta["cursor"], meta["epoch"])
        await t.connect(url)
        self.stats["connections"] += 1
        first = P.decode_server_message(await t.recv())
        if isinstance(first, P.Challenge):
            # Room admission (docs/RELAY.md): prove we hold the room key, for the relay we
            # dialled (never a name the relay tells us), then the welcome.
            sig = self.space.sign_challenge(first.nonce, self._epoch, relay=self.relay_name)
            await t.send(P.encode_auth(sig, self.relay_name))
            first = P.decode_server_message(await t.recv())
        if not isinstance(first, P.Welcome):
            raise ProtocolError(f"relay did not start with welcome but {type(first).__name__}")
        if first.version != P.PROTOCOL_VERSION:
            raise ProtocolError(f"relay speaks protocol {first.version}, this client {P.PROTOCOL_VERSION}")
        if first.epoch != meta["epoch"]:
            # A new mailbox (first join, or the relay lost it): cursors restart and our own
            # blocks must be pushed again so devices joining later find them.
            meta.update(epoch=first.epoch, cursor=0, pushed=0)
        max_frame = min(self.max_frame_size, first.max_frame_bytes - 1)
        sender = FrameSender(self.keys, self.aead, self._random, compress=self.compress,
                             max_frame_size=max_frame)
        self._receivers = {c: FrameReceiver(k, self.aead, max_frame_size=max(max_frame, self.max_frame_size))
                           for c, k in self.space.keyring().items()}
        self.receiver = self._receivers[self.keys.commitment]
        self.session = SyncSession(self.replica, self._random, pushed_upto=meta["pushed"],
                                   max_message_bytes=max_frame - FRAME_OVERHEAD,
                                   hello_interval_ms=self.hello_interval_ms,
                                   need_timeout_ms=self.need_timeout_ms, now_ms=self._clock())
        self._caught_up = False
        self._settled = first.members <= 1
        self._peers = max(0, first.members - 1)
        self._state = ONLINE
        self._last_rx = time.monotonic()
        self._ping_sent = None
        self._emit()
        ticker = asyncio.get_running_loop().create_task(self._ticker(t, sender))
        try:
            while True:
                msg = P.decode_server_message(await t.recv())
                self._last_rx = time.monotonic()
                self._ping_sent = None  # anything from the relay proves the connection alive
                await self._handle(t, sender, msg)
        finally:
            ticker.cancel()
            try:
                await ticker
            except (asyncio.CancelledError, Exception):
                pass

    async def _handle(self, t: Transport, sender: FrameSender, msg: Any) -> None:
        session = self.session
        assert session is not None
        if isinstance(msg, (P.Frame, P.Ephemeral)):
            self._open(msg.payload, sender)
            if isinstance(msg, P.Frame):
                # Saved by the ticker, not per frame: a flood of (junk) frames must not append a
                # meta record to this device's log for each one. Losing it re-reads a few frames.
                self._meta["cursor"] = max(self._meta["cursor"], msg.cursor)
                self._meta_dirty = True
        elif isinstance(msg, P.Ack):
            # The cursor is the max over frame, ack and caught-up (docs/RELAY.md): acks come in
            # the relay's order, after every frame stored before ours. Without this, each new
            # connection (new sender id) replayed and decrypted our own earlier pushes again.
            self._meta["cursor"] = max(self._meta["cursor"], msg.cursor)
            upto = self._unacked.popleft() if self._unacked else 0
            if upto > self._meta["pushed"]:
                self._meta["pushed"] = upto
                self._save_meta()
        elif isinstance(msg, P.CaughtUp):
            self._meta["cursor"] = max(self._meta["cursor"], msg.cursor)
            self._save_meta()
            if not self._caught_up:
                self._caught_up = True
                self._publish_members()
                self._session_events(session.start())
                self._settle_deadline = time.monotonic() + self.settle_s
        elif isinstance(msg, P.Gap):
            log.info("relay mailbox gap (%s): frames before %d are gone; peers fill it live",
                     msg.reason, msg.oldest)
            if msg.reason == "pruned":
                # Said plainly in status.last_error: the mailbox alone cannot complete this device.
                self._error(CatchUpIncompleteError(
                    f"the relay mailbox no longer holds frames before cursor {msg.oldest}: sync with another "
                    "device of this space while it is online to get them", msg.reason, msg.oldest))
            if msg.reason in ("epoch", "ahead"):
                self._meta.update(cursor=0, pushed=0)
                session.pushed_upto = 0
        elif isinstance(msg, P.Peers):
            self._peers = max(0, msg.count - 1)
            if self._peers == 0:
                self._settled = True
        elif isinstance(msg, P.Welcome):
            raise ProtocolError("second welcome on one connection")
        elif isinstance(msg, P.Pong):
            pass  # its arrival already counted as a sign of life
        await self._drain(t, sender)
        self._emit()
        if self._moved and self._caught_up:
            raise RoomMoved("the space moved to a new key epoch")

    def _open(self, frame: bytes, sender: FrameSender) -> None:
        assert self.receiver is not None and self.session is not None
        self.stats["frames_in"] += 1
        if frame[SENDER_FIELD] == sender.sender and len(frame) > HEADER_SIZE:
            self.stats["own_echoes"] += 1  # our own frame replayed from the mailbox
            return
        # Every epoch this device holds stays readable; the commitment names the epoch.
        receiver = self._receivers.get(bytes(frame[COMMITMENT_FIELD]), self.receiver)
        opened = receiver.receive(frame)
        if opened is None:
            reason = receiver.last_drop or "malformed"
            self._dropped[reason] = self._dropped.get(reason, 0) + 1
            if reason == "wrong_key" or (reason == "foreign_room" and self.explicit_room):
                self._error(WrongKeyError(
                    "frames in this room are sealed with another space key: wrong passphrase or invite"))
            return
        if is_members_payload(opened.payload):
            if self.members.receive(opened.payload):
                self._moved = True
            for c, k in self.space.keyring().items():
                self._receivers.setdefault(c, FrameReceiver(k, self.aead, max_frame_size=receiver.max_frame_size))
            if self.space.removed:
                self._error(NotAMemberError("this device was removed from the space"))
            return
        self._session_events(self.session.receive_plaintext(opened.payload))
