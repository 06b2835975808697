"""The relay: a dumb WebSocket server that forwards opaque frames between members of a room.

It sees room ids (hex, derived by clients from their space key), frame sizes and timing;
never keys or plaintext. Wire protocol: docs/RELAY.md and :mod:`ostracon.core.protocol.relay`.

Shape of one connection:

* the receive loop (the websockets handler) reads client messages, charges the rate buckets of
  its room and client address (and stops reading while they are in debt: backpressure, not
  disconnection), charges ``C_PUBLISH`` payloads to the address's store budget over all rooms
  (past it: refused, 1008), stores them in the mailbox, hands them to the room's
  fan-out and publishes them on the backend's bus for sibling relay processes;
* the sender task writes ``welcome``, an optional ``gap``, the mailbox replay (read page by
  page straight from the mailbox, so a replay costs no queue memory), ``caught-up``, then the
  queue. While a member replays, stored frames are *not* queued for it: its replay loop reads
  them from the mailbox; the switch to live happens right after an empty mailbox read with no
  await in between, so nothing is lost. Every member remembers the highest stored cursor sent
  (``sent``) and queued (``queued``): duplicates are skipped, and a member that would miss a
  frame (its queue overflowed, or frames reached this process out of order from the bus) is
  sent back to the mailbox replay instead of being disconnected.

Memory per connection is bounded by ``recv_queue_frames × max_frame_bytes`` (incoming),
``send_queue_bytes`` (queued frames; past it the member replays from the mailbox),
``send_queue_frames`` control messages and ``write_buffer_bytes`` plus one frame in the
transport. Only a member that stops reading for ``send_timeout_s`` is disconnected (4001).
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import time
import weakref
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from ..core.errors import OstraconError, ValidationError
from ..core.protocol import relay as P
from .admission import admit
from .backend import Backend, Bus, LocalBus
from .config import KiB, MiB, RelayConfig, TokenBucket  # noqa: F401  (re-exported)
from .fanout import _ACK, _CONTROL, FanOut, _Member, _Room, _room_tag
from .http import Handler, HttpFront, HttpRequest, HttpResponse, StaticFiles, host_allowed, resolve_allowed_hosts
from .limits import Limits, LocalLimits, PendingConnections, StoreBudget, client_key
from .mailbox import FRAME_OVERHEAD_BYTES, Mailbox, MemoryMailbox
from .metrics import DROP_REASONS, RelayMetrics, metrics_snapshot, prometheus_text  # noqa: F401  (re-exported)

log = logging.getLogger("ostracon.relay")

class _NoDebugFilter(logging.Filter):
    """websockets' debug logs include frame data previews: never let them through."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.DEBUG


class Relay(FanOut):
    """The relay server. ``async with Relay(config, mailbox, port=0) as relay: relay.port``.

    ``backend`` (instead of ``mailbox``) shares mailbox, limits and fan-out with other relay
    processes (see backend.py); the caller owns it. ``static_dir`` serves a built web app
    (``/`` → ``index.html``); ``http_handlers`` maps exact paths to ``async def
    handler(HttpRequest) -> HttpResponse`` for extra routes (any method, bodies up to
    ``http_max_body_bytes``; e.g. ``{"/graphql": graphql_handler}``). Handlers are checked
    first, then ``/healthz``, ``/metrics``, ``/metrics.json``, then static files. ``http_wrap``
    may post-process every plain-HTTP response (security headers, Host checks: serve.py).
    """

    def __init__(self, config: RelayConfig | None = None, mailbox: Mailbox | None = None, *,
                 backend: Backend | None = None,
                 host: str = "127.0.0.1", port: int = 0, static_dir: str | Path | None = None,
                 static_headers: Mapping[str, str] | None = None,
                 http_handlers: Mapping[str, Handler] | None = None,
                 http_wrap: Callable[[HttpRequest, Handler], Any] | None = None,
                 allowed_hosts: Collection[str] | None = None):
        self.config = config or RelayConfig()
        # Host allow-list for HTTP and WebSocket requests (None: any); see http.resolve_allowed_hosts.
        self.allowed_hosts = resolve_allowed_hosts(host, allowed_hosts)
        # The names an admission answer may be signed for (admission.names_this_relay): the
        # configured ones (port ignored), else the request's own Host, port included. The
        # loopback default above is not a list of this relay's names: another relay on another
        # port of this machine answers to the same ones.
        self._relay_names = self.allowed_hosts if allowed_hosts is not None else None
        if backend is not None and mailbox is not None:
            raise ValidationError("pass a mailbox or a backend, not both")
        self._owns_mailbox = mailbox is None and backend is None
        if backend is not None:
            mailbox = backend.mailbox
        self.mailbox: Mailbox = mailbox if mailbox is not None else MemoryMailbox()
        self.bus: Bus = backend.bus if backend is not None else LocalBus()
        self.limits: Limits = (backend.limits if backend is not None and backend.limits is not None
                               else LocalLimits(time.monotonic))
        share = self.config.max_address_share
        # At least one largest frame, so a small mailbox never refuses every publish.
        self._store_budget = None if share is None else StoreBudget(self.limits, max(
            int(self.mailbox.max_total_bytes * share), self.config.max_frame_bytes + FRAME_OVERHEAD_BYTES),
            self.mailbox.max_age_s)
        self.host = host
        self._requested_port = port
        self._static = StaticFiles(static_dir, static_headers) if static_dir is not None else None
        self._http_handlers: dict[str, Handler] = dict(http_handlers or {})
        self._http_wrap = http_wrap
        for path in self._http_handlers:
            if not isinstance(path, str) or not path.startswith("/"):
                raise ValidationError(f"http_handlers keys are paths starting with '/': {path!r}")
        self.metrics = RelayMetrics()
        self._rooms: dict[str, _Room] = {}
        self._members: set[_Member] = set()
        self._admitting = 0  # connections answering the admission challenge now
        self._joins: weakref.WeakKeyDictionary[ServerConnection, tuple[str, int | None, str | None, str]] = \
            weakref.WeakKeyDictionary()
        self._http_conns = PendingConnections(self.config.http_max_connections,
                                              self.config.http_max_connections_per_ip)
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

        await self.bus.start(self._deliver)
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
            front.abort()  # type: ignore[attr-defined]
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
            await self.bus.close()
        except Exception:
            log.exception("bus close failed during shutdown")
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
        hosts = request.headers.get_all("Host")
        if len(hosts) != 1:
            return conn.respond(400, "exactly one Host header is required\n")
        if not host_allowed(hosts[0], self.allowed_hosts):
            return conn.respond(421, "this host name is not served here\n")
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
            # isdigit() alone takes "²" (int() refuses it) and "٣" (int() reads it): ASCII only.
            if not (raw.isascii() and raw.isdigit()) or len(raw) > 19 or int(raw) > P.MAX_CURSOR:
                return conn.respond(400, "since must be a cursor (a non-negative integer)\n")
            since = int(raw)
        if "epoch" in query:
            epoch = query["epoch"][-1]
            if not P.valid_epoch(epoch):
                return conn.respond(400, "epoch must be 1..32 lower-case hex digits\n")
        self._joins[conn] = (room, since, epoch, hosts[0])
        return None

    @property
    def saturated(self) -> bool:
        """True when a new connection would be refused: /healthz answers 503 then."""
        return (self._closing or self._admitting + len(self._members) >= self.config.max_connections
                or self._http_conns.saturated)

    async def _route_http(self, request: HttpRequest) -> HttpResponse:
        if not host_allowed(request.header("host"), self.allowed_hosts):
            return HttpResponse.text(421, "this host name is not served here\n")
        if self._http_wrap is not None:
            return await self._http_wrap(request, self._route_http_inner)
        return await self._route_http_inner(request)

    async def _route_http_inner(self, request: HttpRequest) -> HttpResponse:
        self.metrics.http_requests += 1
        handler = self._http_handlers.get(request.path)
        if handler is not None:
            return await handler(request)
        if request.path in ("/healthz", "/metrics", "/metrics.json"):
            if request.method not in ("GET", "HEAD"):
                return HttpResponse.text(405, "method not allowed\n", headers=(("Allow", "GET, HEAD"),))
            nocache = (("Cache-Control", "no-store"),)
            if request.path == "/healthz":
                saturated = self.saturated
                status = "shutting_down" if self._closing else "saturated" if saturated else "ok"
                body = {"status": status, "connections": len(self._members),
                        "max_connections": self.config.max_connections,
                        "pending_connections": len(self._http_conns), "rooms": len(self._rooms),
                        "uptime_s": round(time.monotonic() - self._started_at, 3),
                        "protocol": P.PROTOCOL_VERSION}
                return HttpResponse.json(503 if saturated else 200, json.dumps(body), headers=nocache)
            if request.path == "/metrics.json" or request.query.get("format") == ["json"]:
                return HttpResponse.json(200, json.dumps(self.metrics_snapshot(), sort_keys=True), headers=nocache)
            return HttpResponse(200, prometheus_text(self.metrics_snapshot()).encode(),
                                content_type="text/plain; version=0.0.4; charset=utf-8", headers=nocache)
        if request.path.startswith(P.ROOM_PATH_PREFIX):
            return HttpResponse.text(426, "this is a WebSocket endpoint\n", headers=(("Upgrade", "websocket"),))
        if self._static is not None:
            return await self._static(request)
        return HttpResponse.text(404, "not found\n")

    def metrics_snapshot(self) -> dict[str, Any]:
        return metrics_snapshot(self.metrics, self.mailbox, connections=len(self._members),
                                pending=len(self._http_conns), pending_evicted=self._http_conns.evicted,
                                rooms=len(self._rooms), saturated=self.saturated,
                                uptime_s=time.monotonic() - self._started_at)

    def prometheus_text(self) -> str:
        return prometheus_text(self.metrics_snapshot())

    # --- WebSocket members -----------------------------------------------------------------------

    async def _handle_ws(self, ws: ServerConnection) -> None:
        join = self._joins.pop(ws, None)
        if join is None:  # pragma: no cover - process_request always records the join
            await self._reject(ws, P.CLOSE_INTERNAL, "internal error")
            return
        room_id, since, epoch, host = join
        cfg = self.config
        key = client_key(ws.remote_address)
        if self._closing:
            await self._reject(ws, P.CLOSE_GOING_AWAY, "relay shutting down")
            return
        # Connections still answering the admission challenge count against the caps too.
        if self._admitting + len(self._members) >= cfg.max_connections:
            self._drop("max_connections")
            await self._reject(ws, P.CLOSE_TRY_AGAIN, "too many connections")
            return
        got = await self._acquire(ws, "ip", key, cfg.max_connections_per_ip)
        if got is None:
            return
        if not got:
            self._drop("per_ip")
            await self._reject(ws, P.CLOSE_TRY_AGAIN, "too many connections from your address")
            return
        try:
            # Admission: only holders of the room key become members (relay/admission.py).
            self._admitting += 1
            try:
                refused = await admit(ws, room_id, host_header=host, allowed_hosts=self._relay_names,
                                      timeout_s=cfg.admission_timeout_s)
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
            await self._join(ws, key, room_id, since, epoch)
        finally:
            self._release("ip", key)

    async def _acquire(self, ws: ServerConnection, kind: str, key: str, cap: int) -> bool | None:
        """`limits.acquire`; None when the shared limits store failed (a Redis backend that is
        down): the connection is then closed with 1011 like a mailbox failure, and the error
        goes no further than this connection."""
        try:
            return self.limits.acquire(kind, key, cap)
        except OstraconError:
            log.exception("connection limits unavailable (%s)", kind)
            self._drop("mailbox_error")
            await self._reject(ws, P.CLOSE_INTERNAL, "relay storage unavailable")
            return None

    def _release(self, kind: str, key: str) -> None:
        # A failed release is logged only: a Redis count held by this process expires with
        # the process's heartbeat (relay/redis_backend.py), and the connection is over anyway.
        try:
            self.limits.release(kind, key)
        except OstraconError:
            log.exception("connection limits unavailable on release (%s)", kind)

    async def _join(self, ws: ServerConnection, key: str, room_id: str, since: int | None,
                    epoch: str | None) -> None:
        cfg = self.config
        if room_id not in self._rooms and len(self._rooms) >= cfg.max_rooms:
            self._drop("max_rooms")
            await self._reject(ws, P.CLOSE_TRY_AGAIN, "too many rooms")
            return
        got = await self._acquire(ws, "room", room_id, cfg.max_room_members)
        if got is None:
            return
        if not got:
            self._drop("room_full")
            await self._reject(ws, P.CLOSE_TRY_AGAIN, "room full")
            return
        try:
            try:
                info = self.mailbox.info(room_id, create=True)
                resume = info.resume(since, epoch)
            except OstraconError:
                log.exception("room %s: mailbox unavailable on join", _room_tag(room_id))
                self._drop("mailbox_error")
                await self._reject(ws, P.CLOSE_INTERNAL, "mailbox unavailable")
                return
            # No await since the checks above: registering cannot race with another join.
            room = self._rooms.get(room_id)
            if room is None:
                room = self._rooms[room_id] = _Room(room_id, info.head)
                self._background(self._watch_room(room))
            m = _Member(ws, room, key, resume.after, resume.replay)
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
        finally:
            self._release("room", room_id)

    async def _leave(self, m: _Member) -> None:
        m.closing = True
        self._clear_queue(m, False)
        m.wakeup.set()
        self._members.discard(m)
        room = m.room
        room.members.discard(m)
        if not room.members:
            if self._rooms.get(room.id) is room:
                del self._rooms[room.id]
                self._background(self._unwatch_room(room.id))
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

    def _charge(self, m: _Member, n: int) -> float:
        """Charge one message of ``n`` bytes to the member's room + address buckets; return the
        seconds to stop reading (0.0: none)."""
        cfg = self.config
        wait = 0.0
        if cfg.rate_frames_per_s is not None:
            wait = self.limits.throttle(f"f:{m.room.id}:{m.key}", cfg.rate_frames_per_s, cfg.rate_frames_burst, 1)
        if cfg.rate_bytes_per_s is not None:
            wait = max(wait, self.limits.throttle(f"b:{m.room.id}:{m.key}", cfg.rate_bytes_per_s,
                                                  cfg.rate_bytes_burst, n))
        return wait

    def _within_store_budget(self, m: _Member, n: int) -> bool:
        """Charge ``n`` stored bytes to the member's address over all rooms; past the budget the
        frame is refused (not stored, not charged) and the connection closed with 1008."""
        try:
            if self._store_budget is None or self._store_budget.take(m.key, n):
                return True
            self._drop("store_budget")
            self._kick(m, P.CLOSE_POLICY, "address storage budget exceeded")
        except OstraconError:
            log.exception("room %s: limits unavailable", _room_tag(m.room.id))
            self._drop("mailbox_error")
            self._kick(m, P.CLOSE_INTERNAL, "relay backend unavailable")
        return False

    async def _receive(self, m: _Member) -> None:
        """Read until the connection closes. After a close was started (by us) keep reading and
        discarding: websockets stops reading the socket when its small receive queue is full,
        and the peer's close reply would never be seen."""
        ws = m.ws
        cfg = self.config
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
            try:
                wait = self._charge(m, n)
            except OstraconError:
                log.exception("room %s: limits unavailable", _room_tag(room.id))
                self._drop("mailbox_error")
                self._kick(m, P.CLOSE_INTERNAL, "relay backend unavailable")
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
                self._enqueue(m, P.encode_pong(payload), 0, _CONTROL)
                continue
            if kind == P.C_PUBLISH:
                if not self._within_store_budget(m, len(payload) + FRAME_OVERHEAD_BYTES):
                    continue
                try:
                    cursor = self.mailbox.append(room.id, payload, m.key)
                except OstraconError:
                    log.exception("room %s: mailbox append failed", _room_tag(room.id))
                    self._drop("mailbox_error")
                    self._kick(m, P.CLOSE_INTERNAL, "mailbox unavailable")
                    continue
                self.metrics.stored_frames += 1
                self._on_stored(room, cursor, payload, m)
                self._enqueue(m, P.encode_ack(cursor), cursor, _ACK)
                self._publish(room.id, cursor, payload)
            else:
                self._on_ephemeral(room, payload, m)
                self._publish(room.id, 0, payload)
            if wait > 0:
                # Backpressure: while we do not read, websockets' small receive queue fills
                # and TCP pushes back on the sender. Nobody is disconnected for being fast.
                self._drop("rate_limit")
                self.metrics.throttled_s += wait
                await asyncio.sleep(wait)

async def run_relay(config: RelayConfig, host: str, port: int, mailbox: Mailbox | Backend, *,
                    extra_http: Mapping[str, Handler] | None = None, static_dir: str | Path | None = None,
                    static_headers: Mapping[str, str] | None = None,
                    http_wrap: Callable[[HttpRequest, Handler], Any] | None = None,
                    allowed_hosts: Collection[str] | None = None,
                    ready: Callable[[Relay], None] | None = None,
                    stop: asyncio.Event | None = None) -> None:
    """Run a relay until SIGTERM/SIGINT (or ``stop`` is set), then shut down gracefully.

    ``mailbox`` may be a whole :class:`Backend`. ``ready(relay)`` is called once the port is
    bound (e.g. to print the URL). The mailbox is flushed but not closed: the caller owns it.
    """
    if isinstance(mailbox, Backend):
        relay = Relay(config, backend=mailbox, host=host, port=port, static_dir=static_dir,
                      static_headers=static_headers, http_handlers=extra_http, http_wrap=http_wrap,
                      allowed_hosts=allowed_hosts)
    else:
        relay = Relay(config, mailbox, host=host, port=port, static_dir=static_dir, static_headers=static_headers,
                      http_handlers=extra_http, http_wrap=http_wrap, allowed_hosts=allowed_hosts)
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
