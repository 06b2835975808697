"""The relay's plain-HTTP side: static files for ``ostracon serve`` and the request/response types.

The connection itself (h11 parsing, keep-alive, the WebSocket hand-off) is
:mod:`ostracon.relay.http_front`; its names are re-exported here, the import path handlers use.
"""

from __future__ import annotations

import hashlib
import mimetypes
from collections.abc import Mapping
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path
from urllib.parse import unquote

from ..core.errors import ValidationError
from ._allowed_hosts import ANY_HOST as ANY_HOST
from ._allowed_hosts import LOOPBACK_NAMES as LOOPBACK_NAMES
from ._allowed_hosts import host_allowed as host_allowed
from ._allowed_hosts import resolve_allowed_hosts as resolve_allowed_hosts
from .http_front import STATIC_CHUNK_BYTES as STATIC_CHUNK_BYTES
from .http_front import Handler as Handler
from .http_front import HttpFront as HttpFront
from .http_front import HttpLimits as HttpLimits
from .http_front import HttpRequest as HttpRequest
from .http_front import HttpResponse as HttpResponse

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


def mime_type(path: str | Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix in MIME_TYPES:
        return MIME_TYPES[suffix]
    guessed, _ = mimetypes.guess_type(str(path))
    return guessed or "application/octet-stream"


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
