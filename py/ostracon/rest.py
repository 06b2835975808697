"""Read-only REST over one database, beside GraphQL in `ostracon serve --observe PATH`.

Routes (GET, and HEAD: GET's status and headers, Content-Length included, without the body;
every other method answers 405 with `Allow: GET, HEAD`):

- `GET /api/{collection}/{id}`: the document (fields and `_` metadata, as `get` returns it).
- `GET /api/{collection}?filter=<json>&order=<json or field>&limit=N&cursor=C`: one page of
  `find_page` as `{"docs": [...], "next": cursor or null}` (keyset pagination: pass `next`
  back as `cursor` with the same filter and order).
- `GET /api/{collection}/{id}/history`: every commit of the document (as `history` returns it).

Path segments are percent-decoded UTF-8. Values use the export's lossless JSON tagging
(bytes as `{"$bytes": base64}`), both in responses and in a filter (which is read with
`tagged_json.from_json_value`, so a filter on a bytes value is written as the response shows
it, and a map with `$` keys in a filter is written in its `{"$map": ...}` wrapper).
Responses carry a strong `ETag`: for a document and its history, from the document's
version, head CIDs and the body (a new commit changes it, and so does a schema lens that
reads the same commits differently); for a page, from its body.
`If-None-Match` with a matching tag (or `*`) answers 304 without a body.
Errors are JSON `{"error": {"type": <error class>, "message": ...}}`:
400 for a malformed request (bad JSON, filter, cursor, limit) or a query too expensive to
run without an index, 404 for an unknown route, collection or document (a deleted document
too), 405 for writes, 413 for a response over the size limit, 503 when the database is
closed or a read exceeded its time budget. Reads run on a worker thread so a slow one never
blocks the event loop that serves the relay.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from .core.errors import (
    ClosedError,
    CursorError,
    NotFoundError,
    OstraconError,
    QueryTooExpensiveError,
    ValidationError,
)
from .relay.http import HttpRequest, HttpResponse
from .tagged_json import from_json_value, to_json_value  # the export's lossless form: one JSON form everywhere

if TYPE_CHECKING:
    from .db import Database

PREFIX = "/api/"


@dataclass(frozen=True)
class RestLimits:
    """Limits of the REST reads (`ostracon serve` passes the defaults)."""

    #: Page size when `limit` is not given: a screenful, small enough to answer fast.
    default_limit: int = 100
    #: Largest `limit` accepted: bounds the work and memory of one request; page with `cursor`.
    max_limit: int = 1000
    #: Largest response body; a larger one answers 413 (ask for fewer documents).
    max_response_bytes: int = 8 * 1024 * 1024
    #: Seconds one read may take before the client gets 503 (it finishes in the background).
    time_budget_s: float = 10.0
    #: Reads running at once; more wait for a worker (reads also share the database lock).
    workers: int = 2


class _Answer(Exception):
    """An error answer: status, error type name, message."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status, self.kind = status, kind


def error_body(kind: str, message: str) -> bytes:
    return json.dumps({"error": {"type": kind, "message": message}}, sort_keys=True).encode()


def _dumps(value: Any) -> bytes:
    return json.dumps(to_json_value(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=str).encode()


def doc_etag(doc: dict, body: bytes, what: str = "doc") -> str:
    """Strong ETag of a document representation: version, sorted head CIDs and the body.

    The body takes part because the same commits can read differently: a lens registered
    (or replicated) later rewrites old documents on read without a new commit of theirs."""
    heads = ",".join(sorted(doc.get("_heads") or []))
    digest = hashlib.sha256(f"{what}\0{doc.get('_version')}\0{heads}\0".encode() + body).hexdigest()[:32]
    return f'"{what}-{doc.get("_version")}-{digest}"'


def etag_matches(header: str | None, etag: str) -> bool:
    """If-None-Match: `*` or any listed tag equal under the weak comparison (RFC 9110 13.1.2)."""
    if header is None:
        return False
    if header.strip() == "*":
        return True
    want = etag.removeprefix("W/")
    return any(t.strip().removeprefix("W/") == want for t in header.split(","))


def _segments(path: str) -> list[str]:
    try:
        parts = [unquote(p, errors="strict") for p in path[len(PREFIX):].split("/")]
    except UnicodeDecodeError:
        raise _Answer(400, "ValidationError", "path segments must be percent-encoded UTF-8") from None
    if parts and parts[-1] == "":
        parts.pop()
    if not parts or any(p == "" for p in parts) or len(parts) > 3 or (len(parts) == 3 and parts[2] != "history"):
        raise _Answer(404, "NotFoundError", "no such route: use /api/{collection}, /api/{collection}/{id} "
                      "or /api/{collection}/{id}/history")
    return parts


def _one(query: Any, name: str) -> str | None:
    values = query.get(name) or []
    if len(values) > 1:
        raise _Answer(400, "ValidationError", f"query parameter {name!r} given more than once")
    return values[0] if values else None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _json_param(name: str, raw: str) -> Any:
    """A JSON query parameter: strict JSON (no NaN/Infinity), nesting bounded by the parser."""
    try:
        return json.loads(raw, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):
        raise _Answer(400, "ValidationError", f"{name} is not valid JSON") from None


class RestEndpoint:
    """The `/api/...` handler over one open database (see the module docstring)."""

    def __init__(self, db: Database, limits: RestLimits | None = None) -> None:
        self.db = db
        self.limits = limits or RestLimits()
        self._executor = ThreadPoolExecutor(max_workers=self.limits.workers, thread_name_prefix="ostracon-rest")

    async def __call__(self, req: HttpRequest) -> HttpResponse:
        if req.method not in ("GET", "HEAD"):
            return HttpResponse(405, error_body("MethodNotAllowed", "the REST API is read-only (GET, HEAD)"),
                                "application/json", headers=(("Allow", "GET, HEAD"),))
        fut = asyncio.get_running_loop().run_in_executor(self._executor, self._answer, req)
        try:
            status, body, etag = await asyncio.wait_for(asyncio.shield(fut), self.limits.time_budget_s)
        except TimeoutError:
            return HttpResponse(503, error_body("Timeout", f"the read exceeded its time budget of "
                                                f"{self.limits.time_budget_s} s"), "application/json",
                                headers=(("Retry-After", "5"),))
        headers: tuple[tuple[str, str], ...] = (("Cache-Control", "no-cache"),)
        if etag is not None:
            headers += (("ETag", etag),)
            if etag_matches(req.header("if-none-match"), etag):
                return HttpResponse(304, b"", "application/json", headers=headers)
        # HEAD keeps the body: the HTTP layer sends its Content-Length and drops the bytes.
        return HttpResponse(status, body, "application/json", headers=headers)

    def _answer(self, req: HttpRequest) -> tuple[int, bytes, str | None]:
        try:
            status, body, etag = self._read(req)
        except _Answer as exc:
            return exc.status, error_body(exc.kind, str(exc)), None
        except ClosedError as exc:
            return 503, error_body(type(exc).__name__, str(exc)), None
        except NotFoundError as exc:
            return 404, error_body(type(exc).__name__, str(exc)), None
        except (ValidationError, CursorError, QueryTooExpensiveError) as exc:
            return 400, error_body(type(exc).__name__, str(exc)), None
        except OstraconError as exc:
            return 500, error_body(type(exc).__name__, str(exc)), None
        if len(body) > self.limits.max_response_bytes:
            return 413, error_body("ResponseTooLarge", f"response larger than {self.limits.max_response_bytes} "
                                   "bytes; ask for fewer documents (limit)"), None
        return status, body, etag

    def _read(self, req: HttpRequest) -> tuple[int, bytes, str | None]:
        parts = _segments(req.path)
        name = parts[0]
        if name not in self.db.collections():
            raise _Answer(404, "NotFoundError", f"no collection {name!r}")
        col = self.db.collection(name)
        if len(parts) == 1:
            return self._page(col, req.query)
        if req.query:
            raise _Answer(400, "ValidationError", "a document route takes no query parameters")
        doc = col.get(parts[1])
        if doc is None:
            raise _Answer(404, "NotFoundError", f"{name}/{parts[1]} does not exist")
        body = _dumps(doc) if len(parts) == 2 else _dumps(col.history(parts[1], allow_pruned=True))
        return 200, body, doc_etag(doc, body, "doc" if len(parts) == 2 else "history")

    def _page(self, col: Any, query: Any) -> tuple[int, bytes, str | None]:
        unknown = sorted(set(query) - {"filter", "order", "limit", "cursor"})
        if unknown:
            raise _Answer(400, "ValidationError", f"unknown query parameter {unknown[0]!r} "
                          "(filter, order, limit, cursor)")
        raw_filter, raw_order = _one(query, "filter"), _one(query, "order")
        raw_limit, cursor = _one(query, "limit"), _one(query, "cursor")
        flt = None if raw_filter is None else _json_param("filter", raw_filter)
        if flt is not None and type(flt) is not dict:
            raise _Answer(400, "ValidationError", "filter must be a JSON object")
        if flt is not None:
            try:
                flt = from_json_value(flt)
            except RecursionError:
                raise _Answer(400, "ValidationError", "filter is nested too deeply") from None
        order: Any = None
        if raw_order is not None:
            bare = raw_order[:1] not in ("[", "{", '"')
            order = raw_order if bare else _json_param("order", raw_order)   # bare: a field name
        limit = min(self.limits.default_limit, self.limits.max_limit)
        if raw_limit is not None:
            if (not (raw_limit.isascii() and raw_limit.isdigit()) or len(raw_limit) > 9
                    or not 1 <= int(raw_limit) <= self.limits.max_limit):
                raise _Answer(400, "ValidationError", f"limit must be an integer in 1..{self.limits.max_limit}")
            limit = int(raw_limit)
        docs, nxt = col.find_page(flt, order, limit, after=cursor or None)
        body = _dumps({"docs": docs, "next": nxt})
        return 200, body, f'"page-{hashlib.sha256(body).hexdigest()[:32]}"'

    def close(self) -> None:
        self._executor.shutdown(wait=True)
