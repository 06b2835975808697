"""The relay: a dumb WebSocket server that forwards opaque frames between members of a room.

It sees room ids (hex, derived by clients from their space key), frame sizes and timing;
never keys or plaintext. Wire protocol: docs/RELAY.md and :mod:`ostracon.core.protocol.relay`.

Shape of one connection:

* the receive loop (the websockets handler) reads client messages, applies the rate limit,
  stores ``C_PUBLISH`` payloads in the mailbox and puts the encoded frame into the bounded send
  queue of every other member;
* the sender task writes ``welcome``, an optional ``gap``, the mailbox replay (read page by
  page straight from the mailbox, so a replay costs no queue memory), ``caught-up``, then the
  queue. While a member replays, stored frames are *not* queued for it: its replay loop reads
  them from the mailbox; the switch to live happens right after an empty mailbox read with no
  await in between, so nothing is lost or duplicated.

Memory per connection is bounded by ``recv_queue_frames × max_frame_bytes`` (incoming),
``send_queue_bytes`` (outgoing queue) and ``write_buffer_bytes`` plus one frame in the
transport. A member whose queue would overflow is disconnected (4001) instead of buffering.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import time
import weakref
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from ..core.errors import OstraconError, ValidationError
from ..core.protocol import relay as P
from .admission import DEFAULT_ADMISSION_TIMEOUT_S, admit
from .http import Handler, HttpFront, HttpLimits, HttpRequest, HttpResponse, StaticFiles
from .mailbox import Mailbox, MemoryMailbox, Resume, RoomInfo

log = logging.getLogger("ostracon.relay")

KiB = 1024
MiB = 1024 * 1024


def _doc(text: str) -> dict[str, str]:
    return {"doc": text}


@dataclass(frozen=True)
class RelayConfig:
    """Every limit of the relay, with its default and the reason for it.

    Floats set to ``None`` (where allowed) disable that timer.
    """

    max_frame_bytes: int = field(default=1 * MiB, metadata=_doc(
        "Largest client message (kind byte + payload). Sync frames are <= 512 KiB plus AEAD and "
        "header overhead; 1 MiB leaves headroom. Larger messages are closed with 1009."))
    rate_frames_per_s: float | None = field(default=500.0, metadata=_doc(
        "Sustained client messages per second per connection (token bucket). Clients batch many "
        "changes per frame, so honest traffic is far below this; exceeding it closes with 1008."))
    rate_frames_burst: int = field(default=2000, metadata=_doc(
        "Bucket size for messages: a reconnecting client may flush a backlog at once."))
    rate_bytes_per_s: float | None = field(default=16.0 * MiB, metadata=_doc(
        "Sustained bytes per second per connection; bounds the disk and fan-out work one "
        "client can cause. Exceeding it closes with 1008."))
    rate_bytes_burst: int = field(default=64 * MiB, metadata=_doc(
        "Bucket size for bytes: an initial upload of a mid-sized database fits in one burst."))
    max_connections: int = field(default=1000, metadata=_doc(
        "WebSocket connections at once. Past it new connections are closed with 1013."))
    max_rooms: int = field(default=1000, metadata=_doc(
        "Rooms with at least one member at once. Past it joins of new rooms are closed with 1013."))
    max_room_members: int = field(default=256, metadata=_doc(
        "Connections in one room: fan-out costs O(members) per frame. Past it: 1013."))
    send_queue_frames: int = field(default=256, metadata=_doc(
        "Messages waiting to be written to one member. A member that falls this far behind is "
        "disconnected with 4001 (it resumes from its cursor via the mailbox) so relay memory "
        "stays bounded."))
    send_queue_bytes: int = field(default=8 * MiB, metadata=_doc(
        "Bytes waiting to be written to one member; same policy as send_queue_frames. Must hold "
        "at least one max-size frame."))
    send_timeout_s: float | None = field(default=60.0, metadata=_doc(
        "Longest one write to a member may block (peer not reading). Then: 4001."))
    recv_queue_frames: int = field(default=4, metadata=_doc(
        "Incoming messages websockets buffers per connection before it stops reading the "
        "socket (TCP backpressure); bounds incoming memory to this × max_frame_bytes."))
    write_buffer_bytes: int = field(default=64 * KiB, metadata=_doc(
        "Transport write buffer high-water mark before a send waits for the peer."))
    ping_interval_s: float | None = field(default=20.0, metadata=_doc(
        "Keepalive ping period: detects dead peers and keeps NAT mappings open."))
    ping_timeout_s: float | None = field(default=20.0, metadata=_doc(
        "A peer that does not answer a ping within this is dropped."))
    idle_timeout_s: float | None = field(default=3600.0, metadata=_doc(
        "A connection that sends no message for this long is closed with 4002, freeing "
        "resources held by abandoned tabs. Clients reconnect transparently."))
    open_timeout_s: float = field(default=10.0, metadata=_doc(
        "Time allowed for the WebSocket opening handshake."))
    close_timeout_s: float = field(default=5.0, metadata=_doc(
        "Time allowed for a closing handshake before the TCP connection is aborted."))
    shutdown_timeout_s: float = field(default=10.0, metadata=_doc(
        "Graceful shutdown budget: then remaining connections are aborted and the mailbox "
        "flushed anyway."))
    replay_page_frames: int = field(default=64, metadata=_doc(
        "Frames read from the mailbox per replay step."))
    replay_page_bytes: int = field(default=4 * MiB, metadata=_doc(
        "Bytes read from the mailbox per replay step (at least one frame is always read)."))
    prune_interval_s: float | None = field(default=300.0, metadata=_doc(
        "How often aged-out mailbox frames are swept (byte limits apply on every append)."))
    admission_timeout_s: float = field(default=DEFAULT_ADMISSION_TIMEOUT_S, metadata=_doc(
        "Time a new connection has to answer the room challenge (relay/admission.py); then 4003."))
    http_max_head_bytes: int = field(default=16 * KiB, metadata=_doc(
        "Largest HTTP request head (request line + headers); 431 past it."))
    http_max_body_bytes: int = field(default=1 * MiB, metadata=_doc(
        "Largest HTTP request body (e.g. POST /graphql); 413 past it."))
    http_timeout_s: float = field(default=10.0, metadata=_doc(
        "Time to receive an HTTP request head and body, and for each response write step."))
    http_max_connections: int = field(default=256, metadata=_doc(
        "Plain HTTP connections in progress at once; extra ones are dropped."))

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if f.type in ("int",):
                if type(v) is not int or v <= 0:
                    raise ValidationError(f"RelayConfig.{f.name} must be a positive int")
            elif "None" in str(f.type):
                if v is not None and (not isinstance(v, (int, float)) or isinstance(v, bool) or not v > 0):
                    raise ValidationError(f"RelayConfig.{f.name} must be > 0 or None")
            else:
                if not isinstance(v, (int, float)) or isinstance(v, bool) or not v > 0:
                    raise ValidationError(f"RelayConfig.{f.name} must be > 0")
        if self.send_queue_bytes < self.max_frame_bytes + 64:
            raise ValidationError("send_queue_bytes must hold one max-size frame (max_frame_bytes + 64)")
        if self.rate_bytes_burst < self.max_frame_bytes:
            raise ValidationError("rate_bytes_burst must be >= max_frame_bytes")
        if self.max_frame_bytes < 2:
            raise ValidationError("max_frame_bytes must be >= 2")

    def http_limits(self) -> HttpLimits:
        return HttpLimits(self.http_max_head_bytes, 100, self.http_max_body_bytes, self.http_timeout_s,
                          self.http_max_connections)


class TokenBucket:
    """Classic token bucket; ``now`` is passed in (the loop's monotonic clock)."""

    __slots__ = ("rate", "burst", "tokens", "t")

    def __init__(self, rate: float, burst: float, now: float):
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.t = now

    def take(self, now: float, amount: float = 1.0) -> bool:
        self.tokens = min(self.burst, self.tokens + max(0.0, now - self.t) * self.rate)
        self.t = now
        if self.tokens >= amount:
            self.tokens -= amount
            return True
        return False


DROP_REASONS = ("oversize", "rate_limit", "slow_consumer", "idle", "bad_message", "max_connections",
                "max_rooms", "room_full", "mailbox_error")


@dataclass
class RelayMetrics:
    connections_total: int = 0
    frames_in: int = 0
    bytes_in: int = 0
    frames_out: int = 0
    control_out: int = 0
    bytes_out: int = 0
    stored_frames: int = 0
    http_requests: int = 0
    queued_bytes: int = 0  # bytes in all send queues now
    queue_high_water_bytes: int = 0  # largest single-member queue ever seen
    drops: dict[str, int] = field(default_factory=lambda: {r: 0 for r in DROP_REASONS})


class _Room:
    __slots__ = ("id", "members", "peers_pending")

    def __init__(self, room_id: str):
        self.id = room_id
        self.members: set[_Member] = set()
        self.peers_pending = False


class _Member:
    __slots__ = ("ws", "room", "queue", "queue_bytes", "wakeup", "replaying", "closing", "frames_bucket",
                 "bytes_bucket", "sender", "close_reason", "__weakref__")

    def __init__(self, ws: ServerConnection, room: _Room, cfg: RelayConfig, now: float):
        self.ws = ws
        self.room = room
        self.queue: deque[tuple[bytes, bool]] = deque()
        self.queue_bytes = 0
        self.wakeup = asyncio.Event()
        self.replaying = True
        self.closing = False
        self.frames_bucket = TokenBucket(cfg.rate_frames_per_s, cfg.rate_frames_burst, now) \
            if cfg.rate_frames_per_s is not None else None
        self.bytes_bucket = TokenBucket(cfg.rate_bytes_per_s, cfg.rate_bytes_burst, now) \
            if cfg.rate_bytes_per_s is not None else None
        self.sender: asyncio.Task[None] | None = None
        self.close_reason = ""


class _NoDebugFilter(logging.Filter):
    """websockets' debug logs include frame data previews: never let them through."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.DEBUG


def _room_tag(room_id: str) -> str:
    return room_id[:8]


class Relay:
    """The relay server. ``async with Relay(config, mailbox, port=0) as relay: relay.port``.

    ``static_dir`` serves a built web app (``/`` → ``index.html``); ``http_handlers`` maps exact
    paths to ``async def handler(HttpRequest) -> HttpResponse`` for extra routes (any method,
    bodies up to ``http_max_body_bytes``; e.g. ``{"/graphql": graphql_handler}``). Handlers are
    checked first, then ``/healthz``, ``/metrics``, ``/metrics.json``, then static files.
    """

    def __init__(self, config: RelayConfig | None = None, mailbox: Mailbox | None = None, *,
                 host: str = "127.0.0.1", port: int = 0, static_dir: str | Path | None = None,
                 static_headers: Mapping[str, str] | None = None,
                 http_handlers: Mapping[str, Handler] | None = None):
        self.config = config or RelayConfig()
        self._owns_mailbox = mailbox is None
        self.mailbox: Mailbox = mailbox if mailbox is not None else MemoryMailbox()
        self.host = host
        self._requested_port = port
        self._static = StaticFiles(static_dir, static_headers) if static_dir is not None else None
        self._http_handlers: dict[str, Handler] = dict(http_handlers or {})
        for path in self._http_handlers:
            if not isinstance(path, str) or not path.startswith("/"):
                raise ValidationError(f"http_handlers keys are paths starting with '/': {path!r}")
        self.metrics = RelayMetrics()
        self._rooms: dict[str, _Room] = {}
        self._members: set[_Member] = set()
        self._admitting = 0  # connections answering the admission challenge now
        self._joins: weakref.WeakKeyDictionary[ServerConnection, tuple[str, int | None, str | None]] = \
            weakref.WeakKeyDictionary()
        self._http_conns: set[HttpFront] = set()
        self._bg: set[asyncio.Task[Any]] = set()
        self._server: Server | None = None
        self._prune_task: asyncio.Task[None] | None = None
        self._closing = False
        self._closed: asyncio.Event | None = None
        self._started_at = time.monotonic()
        self._ws_logger = logging.getLogger("ostracon.relay.websockets")
        if not any(isinstance(f, _NoDebugFilter) for f in self._ws_logger.filters):
            self._ws_logger.addFilter(_NoDebugFilter())
        if self._ws_logger.level == logging.NOTSET or self._ws_logger.level < logging.INFO:
            self._ws_logger.setLevel(logging.INFO)  # also keeps websockets from building debug text

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> Relay:
        if self._server is not None:
            raise OstraconError("relay already started")
        cfg = self.config
        self._closed = asyncio.Event()
        limits = cfg.http_limits()

        def make_connection(protocol: Any, server: Any, **kw: Any) -> HttpFront:
            # websockets' documented create_connection hook: every TCP connection starts as
            # HTTP; only Upgrade requests reach this ServerConnection (see http.py).
            return HttpFront(ServerConnection(protocol, server, **kw), self._route_http, limits, self._http_conns)

        self._server = await serve(
            self._handle_ws, self.host, self._requested_port,
            create_connection=make_connection,  # type: ignore[arg-type]
            process_request=self._process_request,
            compression=None,  # ciphertext does not compress; avoids zip-bomb style memory use
            max_size=cfg.max_frame_bytes,
            max_queue=cfg.recv_queue_frames,
            write_limit=cfg.write_buffer_bytes,
            ping_interval=cfg.ping_interval_s,
            ping_timeout=cfg.ping_timeout_s,
            open_timeout=cfg.open_timeout_s,
            close_timeout=cfg.close_timeout_s,
            logger=self._ws_logger,
            server_header="ostracon-relay",
        )
        self._started_at = time.monotonic()
        if cfg.prune_interval_s is not None:
            self._prune_task = asyncio.get_running_loop().create_task(self._prune_loop(cfg.prune_interval_s))
        log.info("relay listening on %s:%d", self.host, self.port)
        return self

    async def __aenter__(self) -> Relay:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def port(self) -> int:
        if self._server is None:
            raise OstraconError("relay not started")
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def http_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def url(self) -> str:
        """Base WebSocket URL (``ws://host:port``); rooms live under ``/v1/room/<id>``."""
        return "ws" + self.http_url[len("http"):]

    def room_url(self, room: str, since: int | None = None, epoch: str | None = None) -> str:
        return self.url + P.room_path(room, since, epoch)

    async def serve_forever(self) -> None:
        assert self._closed is not None, "start() first"
        await self._closed.wait()

    async def close(self) -> None:
        """Graceful shutdown: stop accepting, close members with 1001, flush the mailbox."""
        if self._server is None or self._closed is None:
            return
        if self._closing:
            await self._closed.wait()
            return
        self._closing = True
        cfg = self.config
        log.info("relay shutting down (%d connections)", len(self._members))
        if self._prune_task is not None:
            self._prune_task.cancel()
        for front in list(self._http_conns):
            front.abort()
        # Stop listening; we close members ourselves because websockets' own close() can wait
        # forever on a peer that does not read.
        self._server.close(close_connections=False)
        members = list(self._members)
        for m in members:
            m.closing = True
        if members:
            await asyncio.wait([asyncio.ensure_future(self._close_ws(m.ws, P.CLOSE_GOING_AWAY, "relay shutting down"))
                                for m in members])
        try:
            async with asyncio.timeout(cfg.shutdown_timeout_s):
                await self._server.wait_closed()
        except TimeoutError:
            log.warning("relay shutdown timed out; aborting remaining connections")
            for m in list(self._members):
                m.ws.transport.abort()
            for conn in list(self._server.connections):
                conn.transport.abort()
        for t in list(self._bg):
            t.cancel()
        try:
            self.mailbox.flush()
            if self._owns_mailbox:
                self.mailbox.close()
        except OstraconError:
            log.exception("mailbox flush failed during shutdown")
        metrics = self.metrics
        log.info("relay stopped: frames_in=%d frames_out=%d bytes_in=%d bytes_out=%d", metrics.frames_in,
                 metrics.frames_out, metrics.bytes_in, metrics.bytes_out)
        self._closed.set()

    async def _prune_loop(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                n = self.mailbox.prune(keep=set(self._rooms))
                if n:
                    log.info("mailbox: pruned %d aged-out frames", n)
            except OstraconError:
                log.exception("mailbox prune failed")

    # --- HTTP ------------------------------------------------------------------------------------

    def _process_request(self, conn: ServerConnection, request: Any) -> Any:
        """Validate a WebSocket upgrade: path, room id, since/epoch. Errors are HTTP statuses."""
        if self._closing:
            return conn.respond(503, "relay shutting down\n")
        parts = urlsplit(request.path)
        if not parts.path.startswith(P.ROOM_PATH_PREFIX):
            return conn.respond(404, f"not found; rooms live under {P.ROOM_PATH_PREFIX}<room_id>\n")
        room = parts.path[len(P.ROOM_PATH_PREFIX):]
        if not P.valid_room_id(room):
            return conn.respond(400, "room id must be 32..128 lower-case hex digits\n")
        query = parse_qs(parts.query, keep_blank_values=True)
        since: int | None = None
        epoch: str | None = None
        if "since" in query:
            raw = query["since"][-1]
            if not raw.isdigit() or len(raw) > 19 or int(raw) > P.MAX_CURSOR:
                return conn.respond(400, "since must be a cursor (a non-negative integer)\n")
            since = int(raw)
        if "epoch" in query:
            epoch = query["epoch"][-1]
            if not P.valid_epoch(epoch):
                return conn.respond(400, "epoch must be 1..32 lower-case hex digits\n")
        self._joins[conn] = (room, since, epoch)
        return None

    async def _route_http(self, request: HttpRequest) -> HttpResponse:
        self.metrics.http_requests += 1
        handler = self._http_handlers.get(request.path)
        if handler is not None:
            return await handler(request)
        if request.path in ("/healthz", "/metrics", "/metrics.json"):
            if request.method not in ("GET", "HEAD"):
                return HttpResponse.text(405, "method not allowed\n", headers=(("Allow", "GET, HEAD"),))
            nocache = (("Cache-Control", "no-store"),)
            if request.path == "/healthz":
                status = 503 if self._closing else 200
                body = {"status": "shutting_down" if self._closing else "ok", "connections": len(self._members),
                        "rooms": len(self._rooms), "uptime_s": round(time.monotonic() - self._started_at, 3),
                        "protocol": P.PROTOCOL_VERSION}
                return HttpResponse.json(status, json.dumps(body), headers=nocache)
            if request.path == "/metrics.json" or request.query.get("format") == ["json"]:
                return HttpResponse.json(200, json.dumps(self.metrics_snapshot(), sort_keys=True), headers=nocache)
            return HttpResponse(200, self.prometheus_text().encode(),
                                content_type="text/plain; version=0.0.4; charset=utf-8", headers=nocache)
        if request.path.startswith(P.ROOM_PATH_PREFIX):
            return HttpResponse.text(426, "this is a WebSocket endpoint\n", headers=(("Upgrade", "websocket"),))
        if self._static is not None:
            return await self._static(request)
        return HttpResponse.text(404, "not found\n")

    def metrics_snapshot(self) -> dict[str, Any]:
        m = self.metrics
        try:
            ms = self.mailbox.stats()
            mailbox = {"rooms": ms.rooms, "frames": ms.frames, "bytes": ms.bytes, "dropped": dict(ms.dropped)}
        except OstraconError:
            mailbox = {"error": "unavailable"}
        return {
            "connections": len(self._members),
            "connections_total": m.connections_total,
            "rooms": len(self._rooms),
            "frames_in": m.frames_in,
            "bytes_in": m.bytes_in,
            "frames_out": m.frames_out,
            "control_out": m.control_out,
            "bytes_out": m.bytes_out,
            "stored_frames": m.stored_frames,
            "http_requests": m.http_requests,
            "queued_bytes": m.queued_bytes,
            "queue_high_water_bytes": m.queue_high_water_bytes,
            "drops": dict(m.drops),
            "mailbox": mailbox,
            "uptime_s": round(time.monotonic() - self._started_at, 3),
        }

    def prometheus_text(self) -> str:
        s = self.metrics_snapshot()
        out: list[str] = []

        def metric(name: str, kind: str, help_: str, samples: list[tuple[str, Any]]) -> None:
            out.append(f"# HELP ostracon_relay_{name} {help_}")
            out.append(f"# TYPE ostracon_relay_{name} {kind}")
            for labels, value in samples:
                out.append(f"ostracon_relay_{name}{labels} {value}")

        metric("connections", "gauge", "Open WebSocket connections.", [("", s["connections"])])
        metric("connections_total", "counter", "WebSocket connections accepted.", [("", s["connections_total"])])
        metric("rooms", "gauge", "Rooms with at least one member.", [("", s["rooms"])])
        metric("frames_in_total", "counter", "Client messages received.", [("", s["frames_in"])])
        metric("bytes_in_total", "counter", "Client message bytes received.", [("", s["bytes_in"])])
        metric("frames_out_total", "counter", "Frames delivered (live and replayed).", [("", s["frames_out"])])
        metric("control_out_total", "counter", "Control messages sent.", [("", s["control_out"])])
        metric("bytes_out_total", "counter", "Bytes sent to clients.", [("", s["bytes_out"])])
        metric("stored_frames_total", "counter", "Frames stored in the mailbox.", [("", s["stored_frames"])])
        metric("http_requests_total", "counter", "Plain HTTP requests.", [("", s["http_requests"])])
        metric("queued_bytes", "gauge", "Bytes waiting in send queues.", [("", s["queued_bytes"])])
        metric("queue_high_water_bytes", "gauge", "Largest send queue seen.", [("", s["queue_high_water_bytes"])])
        metric("drops_total", "counter", "Connections closed or refused, by reason.",
               [(f'{{reason="{r}"}}', n) for r, n in sorted(s["drops"].items())])
        mb = s["mailbox"]
        if "error" not in mb:
            metric("mailbox_rooms", "gauge", "Rooms with a mailbox record.", [("", mb["rooms"])])
            metric("mailbox_frames", "gauge", "Frames retained in the mailbox.", [("", mb["frames"])])
            metric("mailbox_bytes", "gauge", "Bytes retained in the mailbox.", [("", mb["bytes"])])
            metric("mailbox_dropped_total", "counter", "Frames pruned from the mailbox, by reason.",
                   [(f'{{reason="{r}"}}', n) for r, n in sorted(mb["dropped"].items())])
        metric("uptime_seconds", "gauge", "Seconds since start.", [("", s["uptime_s"])])
        return "\n".join(out) + "\n"

    # --- WebSocket members -----------------------------------------------------------------------

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

    def _kick(self, m: _Member, code: int, reason: str) -> None:
        """Disconnect a member from synchronous code (fan-out); frees its queue at once."""
        if m.closing:
            return
        m.closing = True
        m.close_reason = reason
        self.metrics.queued_bytes -= m.queue_bytes
        m.queue.clear()
        m.queue_bytes = 0
        m.wakeup.set()
        log.info("room %s: disconnecting a member: %s (%d)", _room_tag(m.room.id), reason, code)
        t = asyncio.get_running_loop().create_task(self._close_ws(m.ws, code, reason))
        self._bg.add(t)
        t.add_done_callback(self._bg.discard)

    def _enqueue(self, m: _Member, data: bytes, is_frame: bool) -> None:
        if m.closing:
            return
        cfg = self.config
        if len(m.queue) >= cfg.send_queue_frames or m.queue_bytes + len(data) > cfg.send_queue_bytes:
            self._drop("slow_consumer")
            self._kick(m, P.CLOSE_SLOW_CONSUMER, "slow consumer: send queue full")
            return
        m.queue.append((data, is_frame))
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
            self._enqueue(m, msg, False)

    async def _handle_ws(self, ws: ServerConnection) -> None:
        join = self._joins.pop(ws, None)
        if join is None:  # pragma: no cover - process_request always records the join
            await self._reject(ws, P.CLOSE_INTERNAL, "internal error")
            return
        room_id, since, epoch = join
        cfg = self.config
        if self._closing:
            await self._reject(ws, P.CLOSE_GOING_AWAY, "relay shutting down")
            return
        # Admission: only holders of the room key become members (relay/admission.py).
        # Connections still answering the challenge count against max_connections too.
        if self._admitting + len(self._members) >= cfg.max_connections:
            self._drop("max_connections")
            await self._reject(ws, P.CLOSE_TRY_AGAIN, "too many connections")
            return
        self._admitting += 1
        try:
            refused = await admit(ws, room_id, timeout_s=cfg.admission_timeout_s)
        except ConnectionClosed:
            return
        finally:
            self._admitting -= 1
        if refused is not None:
            self._drop("not_admitted")
            await self._reject(ws, P.CLOSE_NOT_ADMITTED, refused)
            return
        if len(self._members) >= cfg.max_connections:
            self._drop("max_connections")
            await self._reject(ws, P.CLOSE_TRY_AGAIN, "too many connections")
            return
        room = self._rooms.get(room_id)
        if room is None:
            if len(self._rooms) >= cfg.max_rooms:
                self._drop("max_rooms")
                await self._reject(ws, P.CLOSE_TRY_AGAIN, "too many rooms")
                return
            room = _Room(room_id)
        if len(room.members) >= cfg.max_room_members:
            self._drop("room_full")
            await self._reject(ws, P.CLOSE_TRY_AGAIN, "room full")
            return
        try:
            info = self.mailbox.info(room_id, create=True)
            resume = info.resume(since, epoch)
        except OstraconError:
            log.exception("room %s: mailbox unavailable on join", _room_tag(room_id))
            self._drop("mailbox_error")
            await self._reject(ws, P.CLOSE_INTERNAL, "mailbox unavailable")
            return
        # No await since the checks above: registering cannot race with another join.
        self._rooms[room_id] = room
        m = _Member(ws, room, cfg, asyncio.get_running_loop().time())
        m.replaying = resume.replay
        room.members.add(m)
        self._members.add(m)
        self.metrics.connections_total += 1
        self._schedule_peers(room)
        log.debug("room %s: member joined (%d members)", _room_tag(room_id), len(room.members))
        m.sender = asyncio.get_running_loop().create_task(self._sender(m, info, resume, since))
        try:
            await self._receive(m)
        finally:
            await self._leave(m)

    async def _leave(self, m: _Member) -> None:
        m.closing = True
        self.metrics.queued_bytes -= m.queue_bytes
        m.queue.clear()
        m.queue_bytes = 0
        m.wakeup.set()
        self._members.discard(m)
        room = m.room
        room.members.discard(m)
        if not room.members:
            if self._rooms.get(room.id) is room:
                del self._rooms[room.id]
            try:
                self.mailbox.discard_if_empty(room.id)
            except OstraconError:
                log.exception("room %s: mailbox discard failed", _room_tag(room.id))
        else:
            self._schedule_peers(room)
        if m.sender is not None:
            m.sender.cancel()
            try:
                await m.sender
            except (asyncio.CancelledError, Exception):
                pass
        log.debug("room %s: member left (%d members), close code %s", _room_tag(room.id), len(room.members),
                  m.ws.close_code)

    async def _receive(self, m: _Member) -> None:
        """Read until the connection closes. After a close was started (by us) keep reading and
        discarding: websockets stops reading the socket when its small receive queue is full,
        and the peer's close reply would never be seen."""
        ws = m.ws
        cfg = self.config
        loop = asyncio.get_running_loop()
        room = m.room
        while True:
            try:
                if cfg.idle_timeout_s is not None and not m.closing:
                    async with asyncio.timeout(cfg.idle_timeout_s):
                        msg = await ws.recv()
                else:
                    msg = await ws.recv()
            except TimeoutError:
                self._drop("idle")
                self._kick(m, P.CLOSE_IDLE, "idle timeout")
                continue
            except ConnectionClosed as exc:
                if exc.sent is not None and exc.sent.code == P.CLOSE_TOO_BIG:
                    self._drop("oversize")
                return
            if m.closing:
                continue
            if isinstance(msg, str):
                self._drop("bad_message")
                self._kick(m, P.CLOSE_UNSUPPORTED, "binary messages only")
                continue
            n = len(msg)
            self.metrics.frames_in += 1
            self.metrics.bytes_in += n
            now = loop.time()
            if (m.frames_bucket is not None and not m.frames_bucket.take(now)) or \
                    (m.bytes_bucket is not None and not m.bytes_bucket.take(now, n)):
                self._drop("rate_limit")
                self._kick(m, P.CLOSE_POLICY, "rate limit exceeded")
                continue
            kind = msg[0] if n else -1
            if n < 2 or kind not in (P.C_PUBLISH, P.C_EPHEMERAL, P.C_PING):
                self._drop("bad_message")
                self._kick(m, P.CLOSE_UNSUPPORTED, "unknown message kind or empty frame")
                continue
            payload = msg[1:]
            if kind == P.C_PING:
                if n - 1 > P.MAX_PING_TOKEN:
                    self._drop("bad_message")
                    self._kick(m, P.CLOSE_UNSUPPORTED, "ping token too long")
                    continue
                self._enqueue(m, P.encode_pong(payload), False)
                continue
            if kind == P.C_PUBLISH:
                try:
                    cursor = self.mailbox.append(room.id, payload)
                except OstraconError:
                    log.exception("room %s: mailbox append failed", _room_tag(room.id))
                    self._drop("mailbox_error")
                    self._kick(m, P.CLOSE_INTERNAL, "mailbox unavailable")
                    continue
                self.metrics.stored_frames += 1
                out = P.encode_frame(cursor, payload)
                for other in list(room.members):
                    # Replaying members read this frame from the mailbox themselves.
                    if other is not m and not other.replaying:
                        self._enqueue(other, out, True)
                self._enqueue(m, P.encode_ack(cursor), False)
            else:
                out = P.encode_ephemeral_out(payload)
                for other in list(room.members):
                    if other is not m:
                        self._enqueue(other, out, True)

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

    async def _sender(self, m: _Member, info: RoomInfo, resume: Resume, since: int | None) -> None:
        cfg = self.config
        room_id = m.room.id
        try:
            assert info.epoch is not None
            welcome = P.Welcome(P.PROTOCOL_VERSION, info.epoch, info.head, info.oldest, cfg.max_frame_bytes,
                                len(m.room.members))
            if not await self._send(m, P.encode_welcome(welcome), False):
                return
            last = resume.after
            if resume.gap is not None:
                gap = P.Gap(resume.gap, since or 0, info.oldest, info.head)
                if not await self._send(m, P.encode_gap(gap), False):
                    return
            if resume.replay:
                while not m.closing:
                    cur = self.mailbox.info(room_id)
                    if last < cur.pruned_through:  # pruned while this member was replaying
                        if not await self._send(m, P.encode_gap(P.Gap("pruned", last, cur.oldest, cur.head)), False):
                            return
                        last = cur.pruned_through
                        continue
                    page = self.mailbox.read(room_id, last, cfg.replay_page_frames, cfg.replay_page_bytes)
                    if not page:
                        # No await between the empty read and this switch: every later frame
                        # gets queued for us by the fan-out.
                        m.replaying = False
                        break
                    for cursor, payload in page:
                        if not await self._send(m, P.encode_frame(cursor, payload), True):
                            return
                        last = cursor
            m.replaying = False
            if not await self._send(m, P.encode_caught_up(P.CaughtUp(last)), False):
                return
            while True:
                while not m.queue:
                    if m.closing:
                        return
                    m.wakeup.clear()
                    await m.wakeup.wait()
                if m.closing:
                    return
                data, is_frame = m.queue.popleft()
                m.queue_bytes -= len(data)
                self.metrics.queued_bytes -= len(data)
                if not await self._send(m, data, is_frame):
                    return
        except asyncio.CancelledError:
            raise
        except OstraconError:
            log.exception("room %s: mailbox failed during replay", _room_tag(room_id))
            self._drop("mailbox_error")
            self._kick(m, P.CLOSE_INTERNAL, "mailbox unavailable")
        except Exception:
            log.exception("room %s: sender failed", _room_tag(room_id))
            self._kick(m, P.CLOSE_INTERNAL, "internal error")


async def run_relay(config: RelayConfig, host: str, port: int, mailbox: Mailbox, *,
                    extra_http: Mapping[str, Handler] | None = None, static_dir: str | Path | None = None,
                    static_headers: Mapping[str, str] | None = None,
                    ready: Callable[[Relay], None] | None = None,
                    stop: asyncio.Event | None = None) -> None:
    """Run a relay until SIGTERM/SIGINT (or ``stop`` is set), then shut down gracefully.

    ``ready(relay)`` is called once the port is bound (e.g. to print the URL). The mailbox is
    flushed but not closed: the caller owns it.
    """
    relay = Relay(config, mailbox, host=host, port=port, static_dir=static_dir, static_headers=static_headers,
                  http_handlers=extra_http)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread / platform
            pass
    try:
        await relay.start()
        if ready is not None:
            ready(relay)
        await stop.wait()
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
        await relay.close()
