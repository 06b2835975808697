"""`ostracon serve`: the relay, the built web app and /healthz on one port.

Embedded defaults: the relay mailbox is an SQLite file under `--data` (0600 in a 0700
directory). With `--graphql-db` a database directory is exposed at `POST /graphql`: opened
read-only (no writer's lock; each request first reads what the writer flushed) unless
`--graphql-writes`. With `--observe PATH` the directory is followed read-only
(db/observer.py) and served at `POST /graphql` and as read-only REST under `/api/`
(rest.py). Every request is checked against a Host allow-list (default: the bound
host and, on loopback, its usual names), which stops DNS-rebinding pages; every app response
carries a strict Content-Security-Policy (no `unsafe-inline`), `frame-ancestors 'none'`,
`nosniff` and `Referrer-Policy: no-referrer`; the app's own inline scripts run by their hash
(`script-src 'sha256-…'`, listed by the build in build-info.json), never by 'unsafe-inline'.
GraphQL requests pass static cost/alias limits (graphql_limits.py) and run on a worker thread
under a time budget, so one query can never freeze the event loop that serves the relay.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .db import Database
    from .graphql_limits import GraphQLLimits
    from .relay.http import Handler, HttpRequest, HttpResponse
    from .relay.server import Relay

#: The key of the web build's build-info.json that lists the CSP hash-sources of the inline
#: scripts of its pages (wasm-build/inline.py).
SCRIPT_HASHES_KEY = "csp_script_hashes"
#: Most inline-script hashes taken from a build: a page has one or two; more is not a build.
MAX_SCRIPT_HASHES = 64
#: A CSP Level 3 hash-source of SHA-256 (base64 of 32 bytes): the only form accepted.
HASH_SOURCE_RE = re.compile(r"'sha256-[A-Za-z0-9+/]{43}='")


def _default_web_dir() -> Path | None:
    for cand in (Path.cwd() / "dist" / "web", Path(__file__).resolve().parents[2] / "dist" / "web"):
        if (cand / "index.html").exists():
            return cand
    return None


def allowed_hosts_for(bind_host: str, extra: list[str] | None) -> frozenset[str] | None:
    """The Host allow-list: ``extra`` names plus the bound host (and loopback names when the
    bound host is loopback). ``"*"`` in ``extra`` turns the check off; a wildcard bind
    (0.0.0.0, ::) without ``extra`` allows only the loopback names."""
    from .relay.http import LOOPBACK_NAMES
    names = {h.lower() for h in (extra or [])}
    if "*" in names:
        return None
    host = bind_host.lower()
    if host in ("0.0.0.0", "::", ""):
        return frozenset(names | LOOPBACK_NAMES)
    names.add(f"[{host}]" if ":" in host else host)
    if host in ("localhost", "::1") or host.startswith("127."):
        names |= LOOPBACK_NAMES
    return frozenset(names)


def inline_script_hashes(web: Path | None) -> tuple[str, ...]:
    """The CSP hash-sources (``'sha256-<base64>'``) of the inline scripts of the web app in
    ``web``, from its build-info.json (SCRIPT_HASHES_KEY), sorted. ``()`` when there is no web
    app, no such file or key; the file is checked like any input: if it is unreadable or any
    entry is not a hash-source (or there are more than MAX_SCRIPT_HASHES) a warning is printed
    and ``()`` returned, so the browser refuses the inline scripts rather than the policy
    loosening (the pages then work without them, only slower to first paint)."""
    if web is None:
        return ()
    path = web / "build-info.json"
    try:
        info = json.loads(path.read_bytes())
    except FileNotFoundError:
        return ()
    except (OSError, ValueError) as exc:
        print(f"ostracon serve: {path} unreadable ({exc}); inline scripts will not run", file=sys.stderr)
        return ()
    hashes = info.get(SCRIPT_HASHES_KEY, []) if isinstance(info, dict) else None
    if (not isinstance(hashes, list) or len(hashes) > MAX_SCRIPT_HASHES
            or not all(isinstance(h, str) and HASH_SOURCE_RE.fullmatch(h) for h in hashes)):
        print(f"ostracon serve: {path}: {SCRIPT_HASHES_KEY} is malformed; inline scripts will not run",
              file=sys.stderr)
        return ()
    return tuple(sorted(set(hashes)))


def content_security_policy(host: str | None, script_hashes: tuple[str, ...] = ()) -> str:
    """CSP for the app. Scripts only from this origin, plus the inline scripts whose
    hash-sources are in ``script_hashes`` (checked by the caller, inline_script_hashes);
    WebAssembly compiled by Pyodide needs 'wasm-unsafe-eval' (not 'unsafe-eval'); the worker
    may be a blob; WebSockets only to this host (listed explicitly because older browsers do
    not map 'self' to ws:)."""
    connect = "'self'"
    if host and all(c.isalnum() or c in ".-:[]" for c in host):
        connect += f" ws://{host} wss://{host}"
    scripts = " ".join(("'self'", "'wasm-unsafe-eval'", *script_hashes))
    return (f"default-src 'self'; script-src {scripts}; worker-src 'self' blob:; "
            f"connect-src {connect}; img-src 'self' data: blob:; style-src 'self'; font-src 'self'; "
            "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


HttpWrap = Callable[["HttpRequest", "Handler"], Awaitable["HttpResponse"]]


def security_headers_for(script_hashes: tuple[str, ...] = ()) -> HttpWrap:
    """http_wrap for the relay: add the security headers to every plain-HTTP response, the
    CSP allowing the inline scripts of ``script_hashes`` (inline_script_hashes)."""

    async def wrap(request: HttpRequest, inner: Handler) -> HttpResponse:
        response = await inner(request)
        have = {k.lower() for k, _ in response.headers}
        add = [("Content-Security-Policy", content_security_policy(request.header("host"), script_hashes)),
               ("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "no-referrer"),
               ("X-Frame-Options", "DENY"), ("Cross-Origin-Opener-Policy", "same-origin")]
        extra = tuple((k, v) for k, v in add if k.lower() not in have)
        return replace(response, headers=response.headers + extra)
    return wrap


#: The security headers without inline scripts (a relay serving no web app).
security_headers = security_headers_for()


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def with_rest(rest: Handler, script_hashes: tuple[str, ...] = ()) -> HttpWrap:
    """http_wrap that routes `/api/...` to the REST handler (the relay's own routes match
    whole paths), then adds the security headers to every response."""
    from .rest import PREFIX
    headers = security_headers_for(script_hashes)

    async def wrap(request: HttpRequest, inner: Handler) -> HttpResponse:
        async def routed(req: HttpRequest) -> HttpResponse:
            if req.path.startswith(PREFIX) or req.path == PREFIX.rstrip("/"):
                return await rest(req)
            return await inner(req)
        return await headers(request, routed)
    return wrap


class GraphQLEndpoint:
    """``POST /graphql`` over one database directory; see the module docstring."""

    def __init__(self, db_path: str, allow_writes: bool, limits: GraphQLLimits, db: Database | None = None):
        import ostracon
        self.path = db_path
        self.allow_writes = allow_writes
        self.limits = limits
        # Opened here so a bad path fails at startup. A read-only open follows the writer
        # (db/observer.py); given `db` (an observer shared with REST) its own follower
        # keeps it current, otherwise each request first reads what the writer flushed.
        self._shared = db is not None
        self._db = db if db is not None else ostracon.open(db_path, read_only=not allow_writes)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ostracon-graphql")
        self._busy = False

    def _database(self) -> Database:
        if not self.allow_writes and not self._shared:
            from .core.errors import OstraconError
            try:
                self._db.refresh()
            except OstraconError:
                pass   # answer from what was verified; follow_status keeps the error
        return self._db

    def _run(self, query: str, variables: dict[str, Any], operation_name: str | None) -> tuple[int, bytes]:
        from .graphql_limits import QueryRejected, check_query
        db = self._database()

        def check(schema: Any) -> None:
            # The cost check knows the schema the query runs against: only lists multiply.
            check_query(query, variables, self.limits, operation_name, schema=schema)

        try:
            result = db.graphql(query, variables, allow_mutations=self.allow_writes,
                                operation_name=operation_name, check=check)
        except QueryRejected as exc:
            return 400, _gql_error(f"query refused: {exc}")
        body = json.dumps(result, default=str).encode()
        if len(body) > self.limits.max_response_bytes:
            return 413, _gql_error(f"response larger than {self.limits.max_response_bytes} bytes; "
                                   "ask for fewer documents (limit) or fields")
        return 200, body

    async def __call__(self, req: HttpRequest) -> HttpResponse:
        from .relay.http import HttpResponse
        if req.method != "POST":
            return HttpResponse(405, b"POST a GraphQL request\n", headers=(("allow", "POST"),))
        # Any web page can POST to 127.0.0.1: browsers send Origin, so refuse foreign ones
        # (scripts like curl send none and are allowed: they already run on this machine).
        origin = req.header("origin")
        host = req.header("host") or ""
        if origin is not None and origin not in (f"http://{host}", f"https://{host}"):
            return HttpResponse(403, _gql_error("cross-origin GraphQL requests are refused"), "application/json")
        try:
            # Strict JSON (NaN and Infinity are not JSON); nesting past the parser's recursion
            # limit is the client's error, not the server's.
            body = json.loads(req.body or b"{}", parse_constant=_refuse_constant)
            query, variables = body.get("query"), body.get("variables") or {}
            operation_name = body.get("operationName")
            if not isinstance(query, str):
                raise ValueError("`query` must be a string")
            if not isinstance(variables, dict) or not (operation_name is None or isinstance(operation_name, str)):
                raise ValueError("`variables` must be an object and `operationName` a string")
        except (ValueError, AttributeError) as exc:
            return HttpResponse(400, _gql_error(f"bad request: {exc}"), "application/json")
        except RecursionError:
            return HttpResponse(400, _gql_error("bad request: JSON nested too deeply"), "application/json")
        if self._busy:
            return HttpResponse(503, _gql_error("another GraphQL request is running; retry shortly"),
                                "application/json", headers=(("Retry-After", "1"),))
        self._busy = True
        fut = asyncio.get_running_loop().run_in_executor(self._executor, self._run, query, variables,
                                                         operation_name)
        fut.add_done_callback(lambda _f: setattr(self, "_busy", False))
        try:
            status, out = await asyncio.wait_for(asyncio.shield(fut), self.limits.time_budget_s)
        except TimeoutError:
            return HttpResponse(503, _gql_error(f"query exceeded its time budget of {self.limits.time_budget_s} s"),
                                "application/json", headers=(("Retry-After", "5"),))
        return HttpResponse(status, out, "application/json")

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        if not self._shared:
            self._db.close()


def _graphql_handler(db_path: str, allow_writes: bool,
                     limits: GraphQLLimits | None = None) -> tuple[GraphQLEndpoint, GraphQLEndpoint]:
    """(handler, closable) for ``POST /graphql`` over ``db_path`` with default limits."""
    from .graphql_limits import GraphQLLimits
    endpoint = GraphQLEndpoint(db_path, allow_writes, limits or GraphQLLimits())
    return endpoint, endpoint


def _gql_error(message: str) -> bytes:
    return json.dumps({"errors": [{"message": message}]}).encode()


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``ostracon serve``: listen address, data, app, GraphQL and every relay limit."""
    from .relay.cli import add_limit_arguments
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8787)
    parser.add_argument("--data", default=".data", help="directory for the mailbox and server state (0700)")
    parser.add_argument("--web", default=None, help="built web app directory (default: dist/web)")
    parser.add_argument("--graphql-db", default=None, help="database directory exposed at POST /graphql")
    parser.add_argument("--graphql-writes", action="store_true", help="allow mutations through /graphql")
    parser.add_argument("--observe", default=None, metavar="PATH",
                        help="follow the database at PATH read-only (beside its writer) and serve it at "
                             "GET /api/{collection}[/{id}[/history]] and POST /graphql")
    parser.add_argument("--allowed-host", action="append", default=None, metavar="NAME",
                        help="also accept requests with this Host name (repeatable; '*' turns the check off). "
                             "Default: the bound host, plus localhost names on loopback")
    group = parser.add_argument_group("GraphQL limits")
    from .graphql_limits import GraphQLLimits
    for f in fields(GraphQLLimits):
        group.add_argument("--graphql-" + f.name.replace("_", "-"), dest=f"gql_{f.name}",
                           type=float if isinstance(f.default, float) else int, default=f.default, metavar="N",
                           help=f"{f.metadata['doc']} (default {f.default})".replace("%", "%%"))
    add_limit_arguments(parser)


def main_serve(args: argparse.Namespace) -> int:
    from .core.errors import OstraconError, ValidationError
    from .relay.cli import config_from_args
    from .relay.http import ANY_HOST
    from .relay.mailbox import parse_mailbox_spec, private_dir
    from .relay.server import run_relay

    data = Path(args.data)
    try:
        private_dir(data)
    except OSError as exc:
        print(f"ostracon serve: cannot create data directory {data}: {exc.strerror}", file=sys.stderr)
        return 2
    try:
        config = config_from_args(args)
        gql_limits = None
        observe = getattr(args, "observe", None)
        if observe and args.graphql_db:
            raise ValidationError("--observe serves GraphQL over the observed database; drop --graphql-db")
        if args.graphql_db or observe:
            from .graphql_limits import GraphQLLimits
            gql_limits = GraphQLLimits(**{f.name: getattr(args, f"gql_{f.name}") for f in fields(GraphQLLimits)
                                          if hasattr(args, f"gql_{f.name}")})
    except OstraconError as exc:
        print(f"ostracon serve: {exc}", file=sys.stderr)
        return 2
    web = Path(args.web) if args.web else _default_web_dir()
    if web is None or not (web / "index.html").exists():
        print("ostracon serve: the web app is not built (run `make web`); serving the relay only",
              file=sys.stderr)
        web = None
    allowed = allowed_hosts_for(args.host, getattr(args, "allowed_host", None))
    script_hashes = inline_script_hashes(web)
    mailbox = parse_mailbox_spec(f"sqlite:{data / 'mailbox.sqlite'}")
    handlers: dict[str, Handler] = {}
    endpoint = observed = rest = None
    wrap: HttpWrap = security_headers_for(script_hashes)
    try:
        if observe and gql_limits is not None:
            import ostracon

            from .rest import RestEndpoint
            observed = ostracon.open(observe, read_only=True, follow=True)
            endpoint = GraphQLEndpoint(observe, False, gql_limits, db=observed)
            rest = RestEndpoint(observed)
            wrap = with_rest(rest, script_hashes)
            handlers["/graphql"] = endpoint
        elif args.graphql_db and gql_limits is not None:
            endpoint = GraphQLEndpoint(args.graphql_db, args.graphql_writes, gql_limits)
            handlers["/graphql"] = endpoint
    except OstraconError as exc:
        mailbox.close()
        if observed is not None:
            observed.close()
        print(f"ostracon serve: cannot open {observe or args.graphql_db}: {exc}", file=sys.stderr)
        return 2

    def ready(relay: Relay) -> None:
        print(f"Ostracon is running: open {relay.http_url}/  (relay at {relay.url}/v1/room/<room>, "
              f"health at {relay.http_url}/healthz)", flush=True)

    try:
        asyncio.run(run_relay(config, args.host, args.port, mailbox, static_dir=web, extra_http=handlers,
                              http_wrap=wrap, allowed_hosts=allowed if allowed is not None else (ANY_HOST,),
                              ready=ready))
    except OSError as exc:
        print(f"ostracon serve: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}",
              file=sys.stderr)
        return 1
    finally:
        mailbox.close()
        if endpoint is not None:
            endpoint.close()
        if rest is not None:
            rest.close()
        if observed is not None:
            observed.close()
    return 0
