"""The HTTP/1.1 front door that shares one port with the WebSocket relay.

Why this exists: ``websockets`` only parses bodiless GET requests (its parser rejects any
``Content-Length`` other than 0), so ``process_request`` cannot serve ``POST /graphql``.
Instead of a second server or a proxy, every TCP connection on the relay's port starts in
:class:`HttpFront`, an ``asyncio.Protocol`` that feeds the bytes to an ``h11`` connection
(sans-IO HTTP/1.1: request heads, body framing, response framing, keep-alive) and keeps a copy
of the raw bytes of the request being read:

* ``Upgrade: websocket`` → the connection is handed to the ``websockets`` connection object
  that ``websockets.asyncio.server.serve`` built for it (through its documented
  ``create_connection`` hook): ``transport.set_protocol(ws)``, ``ws.connection_made(...)``,
  then the raw bytes of that request are fed to it. From there on ``websockets`` owns the
  connection (handshake, ``process_request``, keepalive, close, shutdown with 1001).
* anything else → routed to an async handler. Bodies are ``Content-Length`` or chunked, up to
  ``HttpLimits.max_body_bytes``. Connections persist (RFC 9112 9.3): pipelined requests are
  answered one at a time in order, an idle connection closes after ``keepalive_timeout_s``,
  and ``Connection: close`` from either side, HTTP/1.0 or any error ends it.

Refused beyond h11's own checks: heads over ``max_head_bytes`` or ``max_headers`` (431),
obsolete line folding, absolute-form targets, ``Content-Length`` together with
``Transfer-Encoding`` (400), versions other than 1.0 and 1.1 (505). Static files are streamed
with flow control, so a 10 MB ``pyodide.asm.wasm`` never sits in memory more than one chunk at
a time per connection.
"""
from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from http import HTTPStatus
from pathlib import Path
from urllib.parse import parse_qs

import h11

from ..core.errors import ValidationError
from .limits import PendingConnections, client_key

log = logging.getLogger("ostracon.relay.http")


#: Bytes read from disk and written per step when streaming a file.
STATIC_CHUNK_BYTES = 256 * 1024


_TOKEN_RE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


@dataclass(frozen=True)
class HttpRequest:
    method: str
    target: str  # raw request target, e.g. "/graphql?x=1"
    path: str  # target without the query, not percent-decoded
    query: Mapping[str, list[str]]
    headers: tuple[tuple[str, str], ...]  # (lower-case name, value), in order
    body: bytes = b""
    client: str = ""

    def header(self, name: str, default: str | None = None) -> str | None:
        name = name.lower()
        for k, v in self.headers:
            if k == name:
                return v
        return default


@dataclass(frozen=True)
class HttpResponse:
    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()
    file: Path | None = None  # stream this file instead of ``body``
    file_size: int = 0

    def __post_init__(self) -> None:
        if type(self.status) is not int or not 100 <= self.status <= 599:
            raise ValidationError("status must be an int in [100, 599]")
        if not isinstance(self.body, bytes):
            raise ValidationError("body must be bytes")
        for k, v in self.headers:
            if not _TOKEN_RE.fullmatch(k) or "\r" in v or "\n" in v:
                raise ValidationError("invalid response header")

    @classmethod
    def text(cls, status: int, text: str, **kw: object) -> HttpResponse:
        return cls(status, text.encode(), **kw)  # type: ignore[arg-type]

    @classmethod
    def json(cls, status: int, data: bytes | str, **kw: object) -> HttpResponse:
        body = data.encode() if isinstance(data, str) else data
        return cls(status, body, content_type="application/json", **kw)  # type: ignore[arg-type]


Handler = Callable[[HttpRequest], Awaitable[HttpResponse]]


@dataclass(frozen=True)
class HttpLimits:
    """Limits of the plain-HTTP side (see RelayConfig for the reasons of the first six).

    ``keepalive_timeout_s``: seconds an answered connection may wait for its next request.
    Long enough for the burst of requests of a page load or a reload; short so idle sockets
    give back their slot (idle ones are also the first evicted when the table is full).
    ``max_requests_per_connection``: answers per connection, the last one says
    ``Connection: close``; connections rotate, so one client cannot keep one forever.
    ``linger_s``: after an error answer, how long input is still read and dropped before the
    close (see ``HttpFront._linger``); a few round trips on a slow link.
    """

    max_head_bytes: int = 16 * 1024
    max_headers: int = 100
    max_body_bytes: int = 1024 * 1024
    timeout_s: float = 10.0
    max_connections: int = 256
    max_connections_per_ip: int = 64
    keepalive_timeout_s: float = 5.0
    max_requests_per_connection: int = 1000
    linger_s: float = 2.0

    def __post_init__(self) -> None:
        for name in ("max_head_bytes", "max_headers", "max_body_bytes", "max_connections",
                     "max_connections_per_ip", "max_requests_per_connection"):
            v = getattr(self, name)
            if type(v) is not int or v <= 0:
                raise ValidationError(f"{name} must be a positive int")
        for name in ("timeout_s", "keepalive_timeout_s", "linger_s"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
                raise ValidationError(f"{name} must be > 0")


#: obs-fold (RFC 9112 5.2): a field line that starts with SP or HTAB continues the previous one.
#: h11 unfolds it; a front end in front of the relay might not, and would then read other
#: fields than this server (``Transfer-Encoding:\r\n chunked``), so such heads are refused.
_OBS_FOLD_RE = re.compile(rb"\n[ \t]")


_VERSIONS = (b"1.1", b"1.0")


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Status"


class HttpFront(asyncio.Protocol):
    """First protocol of every connection: HTTP/1.1 (parsed by h11), WebSocket upgrades to ``ws``.

    States: ``head`` (a request head is due; ``timeout_s`` runs from the connection or from the
    first byte of the head), ``body`` (same timer), ``respond`` (the handler runs and the answer
    is written; reading is paused, so pipelined requests wait in h11's buffer and are answered
    in order), ``idle`` (kept alive between requests; ``keepalive_timeout_s`` runs and ends in a
    silent close), ``lingering`` (after an error answer), ``upgraded`` and ``closed``.
    """

    def __init__(self, ws: asyncio.Protocol, router: Handler, limits: HttpLimits,
                 registry: PendingConnections, server_header: str = "ostracon-relay"):
        self._ws = ws
        self._router = router
        self._limits = limits
        self._registry = registry
        self._server_header = server_header
        self._h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=limits.max_head_bytes)
        # Bytes of the current request cycle until its head is parsed: the exact head size, and
        # what websockets is handed on an upgrade (it parses the head again itself).
        self._raw = bytearray()
        self._body = bytearray()
        self._request: HttpRequest | None = None
        self._answered = 0
        self._state = "head"  # head → body → respond → idle → head ... | lingering | upgraded | closed
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self._paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._client = ""

    # --- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)  # a stream server hands out stream transports
        self._transport = transport
        peer = transport.get_extra_info("peername")
        self._client = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else ""
        self.client_key = client_key(peer)
        # Full table: the oldest connection still waiting for a head makes room (see limits.py).
        if not self._registry.admit(self, self.client_key):
            log.warning("http: too many connections, refusing %s", self._client)
            self._state = "closed"
            transport.abort()
            return
        self._start_timer(self._limits.timeout_s)

    def data_received(self, data: bytes) -> None:
        if self._state == "idle":
            self._state = "head"
            self._start_timer(self._limits.timeout_s)  # from the first byte, not per byte
        if self._state == "head":
            self._raw += data
        if self._state in ("head", "body", "respond"):
            self._h11.receive_data(data)  # while responding it waits there, in order
            self._pump()

    def eof_received(self) -> bool | None:
        if self._state in ("head", "body", "idle", "lingering"):
            self._close()
        elif self._state == "respond":
            self._h11.receive_data(b"")  # answer, then close (a half-closing client still reads)
            return True
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._state = "closed" if self._state != "upgraded" else self._state
        self._registry.discard(self)
        if self._timer is not None:
            self._timer.cancel()
        if self._task is not None and not self._task.done():
            self._task.cancel()
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)

    # --- PendingConnections and relay shutdown ------------------------------------------------

    def waiting_for_head(self) -> bool:
        """True while no request is being answered: such a connection may be evicted."""
        return self._state in ("head", "idle", "lingering")

    def evict(self) -> None:
        """Make room for a newer connection (PendingConnections); the peer sees a reset."""
        self._state = "closed"
        if self._timer is not None:
            self._timer.cancel()
        if self._transport is not None:
            self._transport.abort()

    def abort(self) -> None:
        """Drop the connection now (relay shutdown)."""
        if self._transport is not None and self._state != "upgraded":
            self._transport.abort()

    # --- reading requests ----------------------------------------------------------------------

    def _start_timer(self, seconds: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(seconds, self._on_timeout)

    def _on_timeout(self) -> None:
        if self._state in ("idle", "lingering"):
            self._close()  # RFC 9112 9.8: an idle persistent connection may close at any time
        elif self._state in ("head", "body"):
            self._reply_error(408, "request timeout")

    def _pump(self) -> None:
        """Turn buffered bytes into h11 events until a request is complete or more is needed."""
        while self._state in ("head", "body", "idle"):
            try:
                event = self._h11.next_event()
            except h11.RemoteProtocolError as exc:
                # h11's text names the rule, then quotes the bytes: only the rule goes back.
                self._reply_error(exc.error_status_hint, str(exc).split(":", 1)[0])
                return
            if event is h11.NEED_DATA:
                return
            if isinstance(event, h11.Request):
                self._on_head(event)
            elif isinstance(event, h11.Data):
                self._body += event.data
                if len(self._body) > self._limits.max_body_bytes:  # chunked: no length up front
                    self._reply_error(413, "request body too large")
            elif isinstance(event, h11.EndOfMessage):
                self._dispatch()
            else:  # ConnectionClosed (PAUSED cannot happen before the request is complete)
                self._close()

    def _on_head(self, event: h11.Request) -> None:
        self._state = "body"
        head_size = len(self._raw) - len(self._h11.trailing_data[0])
        # h11 bounds only heads still incomplete; one that arrived whole is measured here.
        if head_size > self._limits.max_head_bytes:
            return self._reply_error(431, "request head too large")
        if len(event.headers) > self._limits.max_headers:
            return self._reply_error(431, "too many headers")
        if _OBS_FOLD_RE.search(self._raw, 0, head_size):
            return self._reply_error(400, "obsolete line folding")
        if event.http_version not in _VERSIONS:
            return self._reply_error(505, "HTTP/1.x only")
        target = event.target.decode("ascii")  # h11 admits visible ASCII only
        if not target.startswith("/"):  # origin-form only: this is no proxy
            return self._reply_error(400, "bad request target")
        headers = tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in event.headers)
        fields = dict(headers)
        if "websocket" in fields.get("upgrade", "").lower():
            return self._upgrade()
        if "content-length" in fields and "transfer-encoding" in fields:
            # RFC 9112 6.1: the request-smuggling pair; refused, and the connection closes.
            return self._reply_error(400, "both Content-Length and Transfer-Encoding")
        if int(fields.get("content-length", "0")) > self._limits.max_body_bytes:
            return self._reply_error(413, "request body too large")
        self._raw = bytearray()
        path, _, query = target.partition("?")
        self._request = HttpRequest(event.method.decode("ascii"), target, path,
                                    parse_qs(query, keep_blank_values=True), headers, b"", self._client)
        if self._h11.they_are_waiting_for_100_continue:
            self._send(h11.InformationalResponse(status_code=100, headers=[]))

    def _upgrade(self) -> None:
        assert self._transport is not None
        if self._timer is not None:
            self._timer.cancel()
        self._state = "upgraded"
        self._registry.discard(self)
        buffered = bytes(self._raw)
        self._raw = bytearray()
        # Reading was paused if an earlier pipelined request was answered; from here websockets
        # pauses and resumes it (its receive queue, the relay's rate limits).
        self._transport.resume_reading()
        # Hand the raw connection to websockets exactly as if it had accepted it itself.
        self._transport.set_protocol(self._ws)
        self._ws.connection_made(self._transport)
        self._ws.data_received(buffered)

    def _dispatch(self) -> None:
        assert self._transport is not None and self._request is not None
        request = replace(self._request, body=bytes(self._body))
        self._body = bytearray()
        self._state = "respond"
        # From here the handler runs as long as it needs; a stalled reader is caught per write
        # (each drain waits at most timeout_s).
        if self._timer is not None:
            self._timer.cancel()
        self._transport.pause_reading()
        self._task = asyncio.get_running_loop().create_task(self._respond(request))

    # --- writing responses ---------------------------------------------------------------------

    async def _respond(self, request: HttpRequest) -> None:
        try:
            try:
                response = await self._router(request)
                if not isinstance(response, HttpResponse):
                    raise TypeError(f"handler returned {type(response).__name__}, not HttpResponse")
                if response.status < 200:
                    raise ValueError(f"handler returned the interim status {response.status}")
            except asyncio.CancelledError:
                raise
            except Exception:
                # The request line only: bodies may carry user data and never reach the logs.
                log.exception("http: handler failed for %s %s", request.method, request.path)
                response = HttpResponse.text(500, "internal server error\n")
            await self._write_response(request, response)
        except (asyncio.CancelledError, ConnectionError, TimeoutError):
            self._close()
            return
        except h11.LocalProtocolError:
            log.exception("http: could not frame the response to %s %s", request.method, request.path)
            self._close()
            return
        self._next_cycle()

    async def _write_response(self, request: HttpRequest, response: HttpResponse) -> None:
        length = response.file_size if response.file is not None else len(response.body)
        no_body = response.status in (204, 304)
        headers = [("Server", self._server_header)]
        if not no_body:
            headers += [("Content-Type", response.content_type), ("Content-Length", str(length))]
        if not any(k.lower() == "x-content-type-options" for k, _ in response.headers):
            headers.append(("X-Content-Type-Options", "nosniff"))
        headers.extend(response.headers)
        self._answered += 1
        if self._answered >= self._limits.max_requests_per_connection:
            headers.append(("Connection", "close"))  # h11 then closes after this answer
        self._send(h11.Response(status_code=response.status, headers=headers, reason=_phrase(response.status)))
        if request.method != "HEAD" and not no_body:
            if response.file is None:
                self._send(h11.Data(data=response.body))
            else:
                await self._send_file(response.file, length)
        self._send(h11.EndOfMessage())

    async def _send_file(self, path: Path, length: int) -> None:
        sent = 0
        with open(path, "rb") as f:
            while sent < length:
                chunk = f.read(min(STATIC_CHUNK_BYTES, length - sent))
                if not chunk:
                    # The file shrank while serving: the declared length cannot be met, so the
                    # connection closes and the client sees a short body and retries.
                    raise ConnectionError("file shrank while being sent")
                self._send(h11.Data(data=chunk))
                sent += len(chunk)
                await self._drain()

    def _send(self, event: h11.Event) -> None:
        assert self._transport is not None
        for piece in self._h11.send_with_data_passthrough(event) or ():
            self._transport.write(piece)

    async def _drain(self) -> None:
        if self._transport is None or self._transport.is_closing():
            raise ConnectionError("connection closed")
        if self._paused:
            self._drain_waiter = asyncio.get_running_loop().create_future()
            async with asyncio.timeout(self._limits.timeout_s):
                await self._drain_waiter
            if self._transport.is_closing():
                raise ConnectionError("connection closed")

    def _next_cycle(self) -> None:
        """After an answer: keep the connection for the next request, or close it."""
        if self._state != "respond" or self._transport is None:
            return
        if self._h11.our_state is not h11.DONE or self._h11.their_state is not h11.DONE:
            self._close()  # "Connection: close" either way, HTTP/1.0, or the request cap
            return
        self._h11.start_next_cycle()
        self._request = None
        self._raw = bytearray(self._h11.trailing_data[0])  # a pipelined request, if any
        self._state = "head" if self._raw else "idle"
        self._start_timer(self._limits.timeout_s if self._raw else self._limits.keepalive_timeout_s)
        self._pump()
        if self._state in ("head", "body", "idle"):
            self._transport.resume_reading()

    def _reply_error(self, status: int, message: str) -> None:
        self._state = "respond"
        body = (message + "\n").encode()
        try:
            self._send(h11.Response(status_code=status, reason=_phrase(status), headers=[
                ("Server", self._server_header), ("Connection", "close"),
                ("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))]))
            self._send(h11.Data(data=body))
            self._send(h11.EndOfMessage())
        except h11.LocalProtocolError:
            self._close()  # a response had already started: closing is all that is left
            return
        self._linger()

    def _linger(self) -> None:
        """Staged close after an error answer (RFC 9112 9.6): stop sending, drop what still comes.

        A client may still be sending (a body past the limit, a dribbled head). Closing with
        unread input makes the kernel send a reset, which can destroy the answer before the
        client reads it; so the write side closes first and input is discarded until the
        client closes too, or ``linger_s`` passes. Lingering connections may be evicted.
        """
        assert self._transport is not None
        if self._transport.is_closing() or not self._transport.can_write_eof():
            return self._close()
        self._state = "lingering"
        self._transport.write_eof()
        self._transport.resume_reading()
        self._start_timer(self._limits.linger_s)

    def _close(self) -> None:
        if self._state == "upgraded":
            return
        self._state = "closed"
        if self._timer is not None:
            self._timer.cancel()
        self._registry.discard(self)
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()  # flushes what was written, then closes
