"""`ostracon serve`: the relay, the built web app and /healthz on one loopback port.

Embedded defaults: the relay mailbox is an SQLite file under `--data`. With `--graphql-db`
a database directory is exposed at `POST /graphql` (read-only unless `--graphql-writes`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .db import Database
    from .relay.http import Handler, HttpRequest, HttpResponse
    from .relay.server import Relay


def _default_web_dir() -> Path | None:
    for cand in (Path.cwd() / "dist" / "web", Path(__file__).resolve().parents[2] / "dist" / "web"):
        if (cand / "index.html").exists():
            return cand
    return None


def _graphql_handler(db_path: str, allow_writes: bool) -> tuple[Handler, Database]:
    import ostracon

    from .relay.http import HttpResponse

    db = ostracon.open(db_path)

    async def handle(req: HttpRequest) -> HttpResponse:  # POST {"query": ..., "variables": ...} → GraphQL response JSON
        if req.method != "POST":
            return HttpResponse(405, b"POST a GraphQL request\n", headers=(("allow", "POST"),))
        # Any web page can POST to 127.0.0.1: browsers send Origin, so refuse foreign ones
        # (scripts like curl send none and are allowed: they already run on this machine).
        origin = next((v for k, v in req.headers if k == "origin"), None)
        host = next((v for k, v in req.headers if k == "host"), "")
        if origin is not None and origin not in (f"http://{host}", f"https://{host}"):
            out = {"errors": [{"message": "cross-origin GraphQL requests are refused"}]}
            return HttpResponse(403, json.dumps(out).encode(), "application/json")
        try:
            body = json.loads(req.body or b"{}")
            query, variables = body.get("query"), body.get("variables") or {}
            if not isinstance(query, str):
                raise ValueError("`query` must be a string")
        except (ValueError, AttributeError) as exc:
            out = {"errors": [{"message": f"bad request: {exc}"}]}
            return HttpResponse(400, json.dumps(out).encode(), "application/json")
        result = db.graphql(query, variables, allow_mutations=allow_writes)
        return HttpResponse(200, json.dumps(result, default=str).encode(), "application/json")

    return handle, db


def main_serve(args: argparse.Namespace) -> int:
    from .relay.mailbox import parse_mailbox_spec
    from .relay.server import RelayConfig, run_relay

    data = Path(args.data)
    try:
        data.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"ostracon serve: cannot create data directory {data}: {exc.strerror}", file=sys.stderr)
        return 2
    web = Path(args.web) if args.web else _default_web_dir()
    if web is None or not (web / "index.html").exists():
        print("ostracon serve: the web app is not built (run `make web`); serving the relay only",
              file=sys.stderr)
        web = None
    mailbox = parse_mailbox_spec(f"sqlite:{data / 'mailbox.sqlite'}")
    handlers = {}
    gdb = None
    if args.graphql_db:
        handlers["/graphql"], gdb = _graphql_handler(args.graphql_db, args.graphql_writes)

    def ready(relay: Relay) -> None:
        print(f"Ostracon is running: open {relay.http_url}/  (relay at {relay.url}/v1/room/<room>, "
              f"health at {relay.http_url}/healthz)", flush=True)

    try:
        asyncio.run(run_relay(RelayConfig(), args.host, args.port, mailbox, static_dir=web,
                              extra_http=handlers, ready=ready))
    except OSError as exc:
        print(f"ostracon serve: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}",
              file=sys.stderr)
        return 1
    finally:
        mailbox.close()
        if gdb is not None:
            gdb.close()
    return 0
