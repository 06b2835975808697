"""The relay's plain-HTTP side: static files, extra handlers, limits. Raw sockets on port 0."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os

import pytest
from websockets.asyncio.client import connect

from ostracon.core.errors import ValidationError
from ostracon.core.protocol import relay as P
from ostracon.relay.http import HttpRequest, HttpResponse, StaticFiles, mime_type
from ostracon.relay.server import Relay, RelayConfig
from relay_clients import DEADLINE, run
from room_keys import answer, room_for


async def raw(port: int, data: bytes, *, then_wait: bool = True) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    resp = await asyncio.wait_for(reader.read(), DEADLINE)
    writer.close()
    head, _, body = resp.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return status, hdrs, body


async def get(port: int, path: str, method: str = "GET", headers: str = "") -> tuple[int, dict[str, str], bytes]:
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{headers}\r\n"
    return await raw(port, head.encode())


@pytest.fixture
def site(tmp_path):
    root = tmp_path / "site"
    root.mkdir()
    (root / "index.html").write_text("<!doctype html><title>notes</title>")
    files = {
        "app.mjs": b"export const x = 1;", "worker.js": b"self.onmessage = null;", "pyodide.asm.wasm": b"\0asm\1\0\0\0",
        "manifest.webmanifest": b"{}", "lock.json": b"{}", "icon.svg": b"<svg/>", "icon.png": b"\x89PNG",
        "style.css": b"body{}", "python_stdlib.zip": b"PK", "ostracon-0.1-py3-none-any.whl": b"PK",
    }
    for name, data in files.items():
        (root / name).write_bytes(data)
    (root / "sub").mkdir()
    (root / "sub" / "index.html").write_text("sub index")
    (root / ".hidden").write_text("secret")
    (tmp_path / "outside.txt").write_text("outside secret")
    (root / "escape").symlink_to(tmp_path / "outside.txt")
    return root


EXPECTED_TYPES = {
    "app.mjs": "text/javascript", "worker.js": "text/javascript", "pyodide.asm.wasm": "application/wasm",
    "manifest.webmanifest": "application/manifest+json", "lock.json": "application/json",
    "icon.svg": "image/svg+xml", "icon.png": "image/png", "style.css": "text/css",
    "python_stdlib.zip": "application/octet-stream", "ostracon-0.1-py3-none-any.whl": "application/octet-stream",
    "index.html": "text/html",
}


def test_static_files_with_mime_types_index_and_head(site):
    async def main():
        async with Relay(static_dir=site) as relay:
            for name, ctype in EXPECTED_TYPES.items():
                status, hdrs, body = await get(relay.port, "/" + name)
                assert status == 200, name
                assert hdrs["content-type"].split(";")[0] == ctype, name
                assert body == (site / name).read_bytes()
                assert int(hdrs["content-length"]) == len(body)
                assert hdrs["x-content-type-options"] == "nosniff"
            status, hdrs, body = await get(relay.port, "/")
            assert status == 200 and body == (site / "index.html").read_bytes()
            status, hdrs, body = await get(relay.port, "/sub/")
            assert status == 200 and body == b"sub index"
            status, hdrs, _ = await get(relay.port, "/sub")
            assert status == 301 and hdrs["location"] == "/sub/"
            status, hdrs, body = await get(relay.port, "/app.mjs?v=3")
            assert status == 200 and body == b"export const x = 1;"
            status, hdrs, body = await get(relay.port, "/app.mjs", method="HEAD")
            assert status == 200 and body == b"" and hdrs["content-length"] == "19"
            # Conditional GET.
            _, hdrs, _ = await get(relay.port, "/style.css")
            status, _, body = await get(relay.port, "/style.css", headers=f"If-None-Match: {hdrs['etag']}\r\n")
            assert status == 304 and body == b""
            assert (await get(relay.port, "/style.css", method="POST"))[0] == 405
            assert (await get(relay.port, "/missing.js"))[0] == 404
    run(main())


def test_precompressed_copies_go_to_clients_that_take_gzip(site):
    import gzip

    (site / "worker.js.gz").write_bytes(gzip.compress((site / "worker.js").read_bytes(), mtime=0))

    async def main():
        async with Relay(static_dir=site) as relay:
            status, hdrs, body = await get(relay.port, "/worker.js", headers="Accept-Encoding: br, gzip\r\n")
            assert status == 200 and hdrs["content-encoding"] == "gzip" and hdrs["vary"] == "Accept-Encoding"
            assert hdrs["content-type"].split(";")[0] == "text/javascript"
            assert gzip.decompress(body) == (site / "worker.js").read_bytes()
            for refused in ("", "Accept-Encoding: br\r\n", "Accept-Encoding: gzip;q=0\r\n"):
                status, hdrs, body = await get(relay.port, "/worker.js", headers=refused)
                assert status == 200 and "content-encoding" not in hdrs and body == (site / "worker.js").read_bytes()
            # a file without a precompressed copy is sent as it is
            status, hdrs, body = await get(relay.port, "/style.css", headers="Accept-Encoding: br, gzip\r\n")
            assert "content-encoding" not in hdrs and body == b"body{}"
    run(main())


@pytest.mark.parametrize("path", [
    "/../outside.txt", "/sub/../../outside.txt", "/%2e%2e/outside.txt", "/%2E%2E%2Foutside.txt",
    "/sub/%2e%2e/%2e%2e/outside.txt", "/..%5coutside.txt", "/.hidden", "/sub/../.hidden", "/escape",
    "/index.html%00.png", "/%ff",
])
def test_path_traversal_and_hidden_files_are_refused(site, path):
    async def main():
        async with Relay(static_dir=site) as relay:
            status, _, body = await get(relay.port, path)
            assert status in (400, 404), (path, status)
            assert b"secret" not in body
    run(main())


def test_static_resolve_unit(site):
    s = StaticFiles(site)
    assert s.resolve("/app.mjs") == (site / "app.mjs").resolve()
    assert s.resolve("/") == site.resolve()
    for bad in ("/../x", "/a/../../x", "/%2e%2e/x", "/.hidden", "relative", "/a\\b", "/a%00", "/escape"):
        assert s.resolve(bad) is None, bad
    with pytest.raises(ValidationError):
        StaticFiles(site / "index.html")
    assert mime_type("x.WASM") == "application/wasm"
    assert mime_type("x.unknownext") == "application/octet-stream"


def test_large_file_streams_intact(site):
    data = os.urandom(3 * 1024 * 1024 + 17)
    (site / "big.wasm").write_bytes(data)

    async def main():
        async with Relay(static_dir=site) as relay:
            status, hdrs, body = await get(relay.port, "/big.wasm")
            assert status == 200 and int(hdrs["content-length"]) == len(data)
            assert hashlib.sha256(body).digest() == hashlib.sha256(data).digest()
    run(main())


def test_handlers_post_bodies_errors_and_limits(site):
    seen = []

    async def echo(req: HttpRequest) -> HttpResponse:
        seen.append(req)
        return HttpResponse.json(200, json.dumps({"method": req.method, "body": req.body.decode(),
                                                  "q": req.query.get("a"), "ct": req.header("content-type")}))

    async def boom(req: HttpRequest) -> HttpResponse:
        raise RuntimeError("handler bug")

    cfg = RelayConfig(http_max_body_bytes=1000, http_max_head_bytes=2048)

    async def main():
        async with Relay(cfg, static_dir=site, http_handlers={"/graphql": echo, "/boom": boom}) as relay:
            body = b'{"query":"{ a }"}'
            status, _, resp = await raw(relay.port, b"POST /graphql?a=1 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                        b"Connection: close\r\nContent-Type: application/json\r\n"
                                        b"Content-Length: %d\r\n\r\n%s"
                                        % (len(body), body))
            assert status == 200
            assert json.loads(resp) == {"method": "POST", "body": body.decode(), "q": ["1"], "ct": "application/json"}
            # Expect: 100-continue (curl does this for bodies > 1 KiB).
            reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
            writer.write(b"POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nExpect: 100-continue\r\n"
                         b"Content-Length: 4\r\n\r\n")
            assert (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), DEADLINE)).startswith(b"HTTP/1.1 100")
            writer.write(b"abcd")
            rest = await asyncio.wait_for(reader.read(), DEADLINE)
            writer.close()
            assert rest.startswith(b"HTTP/1.1 200") and b'"body": "abcd"' in rest
            # Handler failure → 500, and the exception text is not sent to the client.
            status, _, resp = await get(relay.port, "/boom")
            assert status == 500 and b"handler bug" not in resp
            # Limits and malformed requests.
            host = b"Host: 127.0.0.1\r\n"
            status, _, _ = await raw(relay.port,
                                     b"POST /graphql HTTP/1.1\r\n" + host + b"Content-Length: 1001\r\n\r\n")
            assert status == 413
            status, _, _ = await raw(relay.port, b"GET / HTTP/1.1\r\n" + host + b"X-Big: " + b"a" * 3000 + b"\r\n\r\n")
            assert status == 431
            # Chunked bodies are read within the body limit; other transfer codings are not.
            status, _, resp = await raw(relay.port, b"POST /graphql HTTP/1.1\r\n" + host + b"Connection: close\r\n"
                                        b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n")
            assert status == 200 and json.loads(resp)["body"] == "{}"
            status, _, _ = await raw(relay.port, b"POST /graphql HTTP/1.1\r\n" + host
                                     + b"Transfer-Encoding: chunked\r\n\r\n3e9\r\n" + b"a" * 1001 + b"\r\n0\r\n\r\n")
            assert status == 413
            status, _, _ = await raw(relay.port,
                                     b"POST /graphql HTTP/1.1\r\n" + host + b"Transfer-Encoding: gzip\r\n\r\n")
            assert status == 501
            for bad in (b"GARBAGE\r\n\r\n", b"GET /x HTTP/2.0\r\n\r\n", b"GET http://evil/ HTTP/1.1\r\n\r\n",
                        b"GET / HTTP/1.1\r\nno colon here\r\n\r\n", b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n",
                        b"GET / HTTP/1.1\r\n\r\n"):  # HTTP/1.1 without Host (RFC 9112 3.2)
                status, _, _ = await raw(relay.port, bad)
                assert status in (400, 505), bad
            assert len(seen) == 3
            # The relay still serves WebSockets after all that.
            room = room_for("http")
            async with connect(relay.room_url(room), open_timeout=DEADLINE) as ws:
                await answer(ws, room, DEADLINE)
                assert isinstance(P.decode_server_message(await ws.recv()), P.Welcome)
    run(main())


def test_ambiguous_framing_and_host_headers_are_400():
    # RFC 9112 3.2 and 6.3: more than one Host or differing Content-Lengths are refused (front
    # ends may pick another one than this server); a length is ASCII digits only ("\xb2" is
    # str.isdigit()). Identical repeated lengths are one length (RFC 9110 8.6).
    seen = []

    async def echo(req: HttpRequest) -> HttpResponse:
        seen.append(req)
        return HttpResponse.json(200, "{}")

    async def main():
        async with Relay(RelayConfig(), http_handlers={"/graphql": echo}) as relay:
            for bad in (b"POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: \xb2\r\n\r\n{}",
                        b"POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: \xd9\xa1\r\n\r\n{}",
                        b"POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\n"
                        b"Content-Length: 30\r\n\r\n{}",
                        b"GET /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: evil.example\r\n\r\n"):
                status, _, _ = await raw(relay.port, bad)
                assert status == 400, bad
            assert seen == []
            status, _, _ = await raw(relay.port, b"POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                                     b"Content-Length: 2\r\nContent-Length: 2\r\n\r\n{}")
            assert status == 200 and len(seen) == 1
    run(main())


def test_slow_request_times_out_with_408():
    async def main():
        async with Relay(RelayConfig(http_timeout_s=0.2)) as relay:
            status, _, _ = await raw(relay.port, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # head never ends
            assert status == 408
    run(main())


def test_idle_sockets_make_room_for_new_connections_instead_of_locking_them_out():
    async def main():
        async with Relay(RelayConfig(http_max_connections=2, http_timeout_s=30.0)) as relay:
            idle = [await asyncio.open_connection("127.0.0.1", relay.port) for _ in range(2)]
            # Opened but silent connections fill the table; a newcomer evicts the oldest silent
            # one and is answered, long before the head timeout.
            async with asyncio.timeout(DEADLINE):
                while len(relay._http_conns) < 2:
                    await asyncio.sleep(0.01)
            for round_ in range(3):
                reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
                writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                assert (await asyncio.wait_for(reader.read(), DEADLINE)).startswith(b"HTTP/1.1 200"), round_
                writer.close()
            # The oldest idle one was closed to make room; answered requests free their slot.
            assert await asyncio.wait_for(idle[0][0].read(), DEADLINE) == b""
            assert relay.metrics_snapshot()["drops"]["pending_evicted"] == 1
            for _r, w in idle:
                w.close()
    run(main())


def test_response_validation():
    with pytest.raises(ValidationError):
        HttpResponse(99)
    with pytest.raises(ValidationError):
        HttpResponse(200, headers=(("Bad Header", "x"),))
    with pytest.raises(ValidationError):
        HttpResponse(200, headers=(("X-Ok", "a\r\nInjected: 1"),))
    with pytest.raises(ValidationError):
        HttpResponse(200, body="text")  # type: ignore[arg-type]


def test_loopback_relay_without_allowed_hosts_refuses_foreign_host_names():
    # DNS rebinding: a page on evil.example re-points its name at 127.0.0.1 and talks to a
    # relay bound to loopback; its requests still say "Host: evil.example". Without
    # configured names such a relay answers loopback names only.
    async def main():
        async with Relay(RelayConfig(), host="127.0.0.1") as relay:
            for name in ("evil.example", f"evil.example:{relay.port}", "127.0.0.1.evil.example", "[::2]"):
                status, _, _ = await raw(relay.port, f"GET /healthz HTTP/1.1\r\nHost: {name}\r\n\r\n".encode())
                assert status == 421, name
            for name in ("127.0.0.1", f"localhost:{relay.port}", "LOCALHOST", f"[::1]:{relay.port}"):
                status, _, _ = await raw(relay.port, f"GET /healthz HTTP/1.1\r\nHost: {name}\r\n"
                                         "Connection: close\r\n\r\n".encode())
                assert status == 200, name
            room = room_for("rebind")
            upgrade = (f"GET {P.room_path(room)} HTTP/1.1\r\nHost: evil.example\r\nUpgrade: websocket\r\n"
                       "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                       "Sec-WebSocket-Version: 13\r\n\r\n").encode()
            status, _, _ = await raw(relay.port, upgrade)
            assert status == 421
        # "*" turns the check off (a relay behind a proxy that rewrites Host).
        async with Relay(RelayConfig(), host="127.0.0.1", allowed_hosts=["*"]) as relay:
            status, _, _ = await raw(relay.port, b"GET /healthz HTTP/1.1\r\nHost: relay.example\r\n"
                                     b"Connection: close\r\n\r\n")
            assert status == 200
    run(main())
