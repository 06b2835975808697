"""A minimal HTTP/1.1 front door that shares one port with the WebSocket relay.

Why this exists: ``websockets`` only parses bodiless GET requests (its parser rejects any
``Content-Length`` other than 0), so ``process_request`` cannot serve ``POST /graphql``.
Instead of a second server or a proxy, every TCP connection on the relay's port starts in
:class:`HttpFront`, an ``asyncio.Protocol`` that reads the request head:

* ``Upgrade: websocket`` → the connection is handed to the ``websockets`` connection object
  that ``websockets.asyncio.server.serve`` built for it (through its documented
  ``create_connection`` hook): ``transport.set_protocol(ws)``, ``ws.connection_made(...)``,
  then the buffered head is fed to it. From there on ``websockets`` owns the connection
  (handshake, ``process_request``, keepalive, close, shutdown with 1001).
* anything else → parsed here (GET/HEAD/POST/..., ``Content-Length`` bodies up to a limit,
  no chunked uploads), routed to an async handler, answered with ``Connection: close``.

One request per connection keeps the code small; browsers open parallel connections and on
loopback the cost is negligible. Static files are streamed with flow control, so a 10 MB
``pyodide.asm.wasm`` never sits in memory more than one chunk at a time per connection.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import mimetypes
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from email.utils import formatdate, parsedate_to_datetime
from http import HTTPStatus
from pathlib import Path
from urllib.parse import parse_qs, unquote

from ..core.errors import ValidationError
from ._allowed_hosts import ANY_HOST as ANY_HOST
from ._allowed_hosts import LOOPBACK_NAMES as LOOPBACK_NAMES
from ._allowed_hosts import host_allowed as host_allowed
from ._allowed_hosts import resolve_allowed_hosts as resolve_allowed_hosts
from .limits import PendingConnections, client_key

log = logging.getLogger("ostracon.relay.http")

#: Explicit types for what the web app ships; browsers refuse to compile WebAssembly
#: streaming or run module scripts served with the wrong type, so never guess these.
MIME_TYPES: dict[str, str] = {
    ".html": "text/html; charset=utf-8",
    ".htm": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".webmanifest": "application/manifest+json",
    ".wasm": "application/wasm",
    ".zip": "application/octet-stream",
    ".whl": "application/octet-stream",
    ".tar": "application/octet-stream",
    ".data": "application/octet-stream",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".ico": "image/x-icon",
    ".txt": "text/plain; charset=utf-8",
    ".py": "text/plain; charset=utf-8",
    ".woff2": "font/woff2",
}

#: Bytes read from disk and written per step when streaming a file.
STATIC_CHUNK_BYTES = 256 * 1024

_TOKEN_RE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def mime_type(path: str | Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix in MIME_TYPES:
        return MIME_TYPES[suffix]
    guessed, _ = mimetypes.guess_type(str(path))
    return guessed or "application/octet-stream"


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
    """Limits of the plain-HTTP side (see RelayConfig for the reasons of the defaults)."""

    max_head_bytes: int = 16 * 1024
    max_headers: int = 100
    max_body_bytes: int = 1024 * 1024
    timeout_s: float = 10.0
    max_connections: int = 256
    max_connections_per_ip: int = 64

    def __post_init__(self) -> None:
        for name in ("max_head_bytes", "max_headers", "max_body_bytes", "max_connections",
                     "max_connections_per_ip"):
            v = getattr(self, name)
            if type(v) is not int or v <= 0:
                raise ValidationError(f"{name} must be a positive int")
        if not self.timeout_s > 0:
            raise ValidationError("timeout_s must be > 0")


#: Precompressed siblings served when the client accepts them, best first (RFC 9110 §8.4).
PRECOMPRESSED = ((".br", "br"), (".gz", "gzip"))


def accepted_encodings(header: str | None) -> set[str]:
    """Codings the client accepts (``Accept-Encoding``), ignoring any with ``q=0``."""
    out: set[str] = set()
    for part in (header or "").split(","):
        name, _, params = part.strip().partition(";")
        q = params.strip().replace(" ", "")
        if name and q not in ("q=0", "q=0.0", "q=0.00", "q=0.000"):
            out.add(name.strip().lower())
    return out


class StaticFiles:
    """Serve files under ``root``; ``/`` and directories serve their ``index.html``.

    Refused (404): ``..`` or ``.``-prefixed segments (hidden files), NUL, backslashes, and
    anything whose resolved path (after symlinks) is outside ``root``. A ``file.br`` or
    ``file.gz`` next to ``file`` is sent instead (with ``Content-Encoding`` and
    ``Vary: Accept-Encoding``) to clients that accept it; ``ETag`` differs per encoding and
    ``Last-Modified`` / ``If-Modified-Since`` work too.
    """

    def __init__(self, root: str | Path, headers: Mapping[str, str] | None = None):
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise ValidationError(f"static_dir is not a directory: {root}")
        self.headers = tuple((k, v) for k, v in (headers or {}).items())

    def resolve(self, url_path: str) -> Path | None:
        try:
            decoded = unquote(url_path, errors="strict")
        except UnicodeDecodeError:
            return None
        if "\x00" in decoded or "\\" in decoded or not decoded.startswith("/"):
            return None
        segments = [s for s in decoded.split("/") if s]
        if any(s == ".." or s.startswith(".") for s in segments):
            return None
        candidate = self.root.joinpath(*segments)
        try:
            resolved = candidate.resolve()
        except (OSError, RuntimeError):
            return None
        if resolved != self.root and not resolved.is_relative_to(self.root):
            return None
        return resolved

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method not in ("GET", "HEAD"):
            return HttpResponse.text(405, "method not allowed\n", headers=(("Allow", "GET, HEAD"),))
        path = self.resolve(request.path)
        if path is None:
            return HttpResponse.text(404, "not found\n")
        if path.is_dir():
            if not request.path.endswith("/"):
                return HttpResponse(301, headers=(("Location", request.path + "/"),))
            path = path / "index.html"
        try:
            st = path.stat()
        except OSError:
            return HttpResponse.text(404, "not found\n")
        if not path.is_file():
            return HttpResponse.text(404, "not found\n")
        content_type = mime_type(path)
        encoding = ""
        accepted = accepted_encodings(request.header("accept-encoding"))
        for suffix, coding in PRECOMPRESSED:
            if coding not in accepted:
                continue
            sibling = path.with_name(path.name + suffix)
            try:
                sst = sibling.stat()
            except OSError:
                continue
            # A stale sibling (older than the file) is never served.
            if sibling.is_file() and sst.st_mtime_ns >= st.st_mtime_ns:
                path, st, encoding = sibling, sst, coding
                break
        etag = '"' + hashlib.sha256(f"{st.st_mtime_ns}:{st.st_size}:{path}".encode()).hexdigest()[:32] + '"'
        headers: tuple[tuple[str, str], ...] = (("ETag", etag), ("Last-Modified", _http_date(st.st_mtime)),
                                                ("Cache-Control", "no-cache"), ("Vary", "Accept-Encoding"))
        if encoding:
            headers += (("Content-Encoding", encoding),)
        headers += self.headers
        inm = request.header("if-none-match")
        if inm is not None:
            if etag in (t.strip() for t in inm.split(",")) or inm.strip() == "*":
                return HttpResponse(304, headers=headers)
        elif _not_modified_since(request.header("if-modified-since"), st.st_mtime):
            return HttpResponse(304, headers=headers)
        return HttpResponse(200, content_type=content_type, headers=headers, file=path, file_size=st.st_size)


def _http_date(ts: float) -> str:
    return formatdate(ts, usegmt=True)


def _not_modified_since(header: str | None, mtime: float) -> bool:
    if not header:
        return False
    try:
        since = parsedate_to_datetime(header)
    except (TypeError, ValueError, IndexError):
        return False
    if since.tzinfo is None:
        return False
    return int(mtime) <= int(since.timestamp())


class _BadRequest(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _parse_head(head: bytes, limits: HttpLimits) -> tuple[str, str, str, tuple[tuple[str, str], ...]]:
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes every byte
        raise _BadRequest(400, "bad encoding") from None
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3:
        raise _BadRequest(400, "bad request line")
    method, target, version = parts
    if not _TOKEN_RE.fullmatch(method):
        raise _BadRequest(400, "bad method")
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        raise _BadRequest(505, "HTTP/1.x only")
    if not target.startswith("/") or any(ord(c) <= 32 or ord(c) >= 127 for c in target):
        raise _BadRequest(400, "bad request target")
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not _TOKEN_RE.fullmatch(name):
            raise _BadRequest(400, "bad header line")
        headers.append((name.lower(), value.strip(" \t")))
    if len(headers) > limits.max_headers:
        raise _BadRequest(431, "too many headers")
    for single in _SINGLE_HEADERS:
        # RFC 9112 3.2 and 6.3: a proxy in front may act on another copy than this server
        # (Host allow-list, body framing), so more than one is refused.
        if sum(1 for name, _ in headers if name == single) > 1:
            raise _BadRequest(400, f"more than one {single} header")
    return method, target, version, tuple(headers)


_SINGLE_HEADERS = ("host", "content-length")


def _status_line(status: int) -> str:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Status"
    return f"HTTP/1.1 {status} {phrase}\r\n"


class HttpFront(asyncio.Protocol):
    """First protocol of every connection: plain HTTP here, WebSocket upgrades to ``ws``."""

    def __init__(self, ws: asyncio.Protocol, router: Handler, limits: HttpLimits,
                 registry: PendingConnections, server_header: str = "ostracon-relay"):
        self._ws = ws
        self._router = router
        self._limits = limits
        self._registry = registry
        self._server_header = server_header
        self._buf = bytearray()
        self._state = "head"  # head → body → respond | upgraded | closed
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self._paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._method = self._target = ""
        self._headers: tuple[tuple[str, str], ...] = ()
        self._body_len = 0
        self._client = ""

    # --- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)  # a stream server hands out stream transports
        self._transport = transport
        peer = transport.get_extra_info("peername")
        self._client = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else ""
        self.client_key = client_key(peer)
        # Full table: the oldest connection still waiting for its head makes room (see limits.py).
        if not self._registry.admit(self, self.client_key):
            log.warning("http: too many connections, refusing %s", self._client)
            self._state = "closed"
            transport.abort()
            return
        self._timer = asyncio.get_running_loop().call_later(self._limits.timeout_s, self._on_timeout)

    def data_received(self, data: bytes) -> None:
        if self._state == "head":
            self._buf += data
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buf) > self._limits.max_head_bytes:
                    self._reply_error(431, "request head too large")
                return
            if end + 4 > self._limits.max_head_bytes:
                self._reply_error(431, "request head too large")
                return
            try:
                method, target, _version, headers = _parse_head(bytes(self._buf[:end]), self._limits)
            except _BadRequest as exc:
                self._reply_error(exc.status, str(exc))
                return
            self._method, self._target, self._headers = method, target, headers
            hdr = dict(headers)
            if "websocket" in hdr.get("upgrade", "").lower():
                self._upgrade()
                return
            if "transfer-encoding" in hdr:
                self._reply_error(501, "chunked request bodies are not supported")
                return
            cl = hdr.get("content-length", "0")
            if not (cl.isascii() and cl.isdigit()) or len(cl) > 18:  # isdigit() alone takes "²"
                self._reply_error(400, "bad content-length")
                return
            self._body_len = int(cl)
            if self._body_len > self._limits.max_body_bytes:
                self._reply_error(413, "request body too large")
                return
            del self._buf[: end + 4]
            self._state = "body"
            if hdr.get("expect", "").lower() == "100-continue" and len(self._buf) < self._body_len:
                assert self._transport is not None
                self._transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            self._maybe_dispatch()
        elif self._state == "body":
            self._buf += data
            if len(self._buf) > self._body_len + self._limits.max_head_bytes:
                self._reply_error(400, "unexpected data after the request body")
                return
            self._maybe_dispatch()
        # "respond": ignore pipelined data (the connection closes after the response).

    def eof_received(self) -> bool | None:
        if self._state in ("head", "body"):
            self._close()
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

    # --- internals -------------------------------------------------------------------------

    def waiting_for_head(self) -> bool:
        """True until the request head is complete: such a connection may be evicted."""
        return self._state == "head"

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

    def _on_timeout(self) -> None:
        if self._state in ("head", "body"):
            self._reply_error(408, "request timeout")
        elif self._state == "respond":
            log.info("http: response to %s timed out", self._client)
            self.abort()

    def _upgrade(self) -> None:
        assert self._transport is not None
        if self._timer is not None:
            self._timer.cancel()
        self._state = "upgraded"
        self._registry.discard(self)
        buffered = bytes(self._buf)
        self._buf = bytearray()
        # Hand the raw connection to websockets exactly as if it had accepted it itself.
        self._transport.set_protocol(self._ws)
        self._ws.connection_made(self._transport)
        self._ws.data_received(buffered)

    def _maybe_dispatch(self) -> None:
        if len(self._buf) < self._body_len:
            return
        assert self._transport is not None
        body = bytes(self._buf[: self._body_len])
        self._buf = bytearray()
        self._state = "respond"
        # From here the handler runs as long as it needs; a stalled reader is caught per write
        # (each drain waits at most timeout_s).
        if self._timer is not None:
            self._timer.cancel()
        self._transport.pause_reading()
        path, _, query = self._target.partition("?")
        request = HttpRequest(self._method, self._target, path, parse_qs(query, keep_blank_values=True),
                              self._headers, body, self._client)
        self._task = asyncio.get_running_loop().create_task(self._respond(request))

    async def _respond(self, request: HttpRequest) -> None:
        try:
            try:
                response = await self._router(request)
                if not isinstance(response, HttpResponse):
                    raise TypeError(f"handler returned {type(response).__name__}, not HttpResponse")
            except asyncio.CancelledError:
                raise
            except Exception:
                # The request line only: bodies may carry user data and never reach the logs.
                log.exception("http: handler failed for %s %s", request.method, request.path)
                response = HttpResponse.text(500, "internal server error\n")
            await self._write_response(request, response)
        except (asyncio.CancelledError, ConnectionError, TimeoutError):
            pass
        finally:
            self._close()

    async def _write_response(self, request: HttpRequest, response: HttpResponse) -> None:
        assert self._transport is not None
        length = response.file_size if response.file is not None else len(response.body)
        no_body = response.status in (204, 304) or 100 <= response.status < 200
        lines = [_status_line(response.status), f"Server: {self._server_header}\r\n", "Connection: close\r\n"]
        if not no_body:
            lines.append(f"Content-Type: {response.content_type}\r\n")
            lines.append(f"Content-Length: {length}\r\n")
        if not any(k.lower() == "x-content-type-options" for k, _ in response.headers):
            lines.append("X-Content-Type-Options: nosniff\r\n")
        lines.extend(f"{k}: {v}\r\n" for k, v in response.headers)
        lines.append("\r\n")
        self._transport.write("".join(lines).encode("latin-1"))
        if request.method == "HEAD" or no_body:
            return
        if response.file is None:
            self._transport.write(response.body)
            return
        sent = 0
        with open(response.file, "rb") as f:
            while sent < length:
                chunk = f.read(min(STATIC_CHUNK_BYTES, length - sent))
                if not chunk:
                    break  # file shrank while serving: the client sees a short body and retries
                self._transport.write(chunk)
                sent += len(chunk)
                await self._drain()

    async def _drain(self) -> None:
        if self._transport is None or self._transport.is_closing():
            raise ConnectionError("connection closed")
        if self._paused:
            self._drain_waiter = asyncio.get_running_loop().create_future()
            async with asyncio.timeout(self._limits.timeout_s):
                await self._drain_waiter
            if self._transport.is_closing():
                raise ConnectionError("connection closed")

    def _reply_error(self, status: int, message: str) -> None:
        assert self._transport is not None
        self._state = "respond"
        body = (message + "\n").encode()
        self._transport.write((_status_line(status) + f"Server: {self._server_header}\r\nConnection: close\r\n"
                               "Content-Type: text/plain; charset=utf-8\r\n"
                               f"Content-Length: {len(body)}\r\n\r\n").encode("latin-1") + body)
        self._close()

    def _close(self) -> None:
        if self._state == "upgraded":
            return
        self._state = "closed"
        if self._timer is not None:
            self._timer.cancel()
        self._registry.discard(self)
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()  # flushes what was written, then closes
