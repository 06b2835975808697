"""The relay's HTTP front door per connection: keep-alive, pipelining, hostile request heads.

Most tests drive :class:`HttpFront` on its own (a plain asyncio server on port 0) so limits
such as the keep-alive idle timeout can be set directly; the WebSocket hand-off on a reused
connection goes through a whole :class:`Relay`.
"""

from __future__ import annotations

import asyncio
import json
from contextlib import asynccontextmanager

import pytest

from ostracon.core.protocol import relay as P
from ostracon.relay.http import HttpFront, HttpLimits, HttpRequest, HttpResponse
from ostracon.relay.limits import PendingConnections
from ostracon.relay.server import Relay, RelayConfig
from relay_clients import DEADLINE, run


class FakeWs(asyncio.Protocol):
    """Stands in for the websockets connection: records what the front door hands over."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.data += data


class Front:
    def __init__(self, port: int, seen: list[HttpRequest], registry: PendingConnections, ws: list[FakeWs]):
        self.port, self.seen, self.registry, self.ws = port, seen, registry, ws

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", self.port)


@asynccontextmanager
async def front(limits: HttpLimits | None = None):
    """An HttpFront server answering every request with a JSON echo of it."""
    limits = limits or HttpLimits()
    seen: list[HttpRequest] = []
    fakes: list[FakeWs] = []
    registry = PendingConnections(limits.max_connections, limits.max_connections_per_ip)

    async def echo(req: HttpRequest) -> HttpResponse:
        seen.append(req)
        return HttpResponse.json(200, json.dumps({"method": req.method, "target": req.target,
                                                  "body": req.body.decode("latin-1")}))

    def make() -> HttpFront:
        fakes.append(FakeWs())
        return HttpFront(fakes[-1], echo, limits, registry)

    server = await asyncio.get_running_loop().create_server(make, "127.0.0.1", 0)
    try:
        yield Front(server.sockets[0].getsockname()[1], seen, registry, fakes)
    finally:
        server.close()
        for conn in list(registry):
            conn.abort()  # type: ignore[attr-defined]
        for fake in fakes:
            if fake.transport is not None:
                fake.transport.close()


async def read_response(reader: asyncio.StreamReader, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    """One response, framed by its Content-Length (no reading to EOF: the connection may stay)."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), DEADLINE)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    hdrs: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            k, _, v = line.partition(":")
            hdrs[k.strip().lower()] = v.strip()
    n = 0 if method == "HEAD" or status in (204, 304) else int(hdrs.get("content-length", "0"))
    body = await asyncio.wait_for(reader.readexactly(n), DEADLINE)
    return status, hdrs, body


async def at_eof(reader: asyncio.StreamReader) -> bytes:
    """What the server still sends before it closes the connection (b"" for a plain close)."""
    try:
        return await asyncio.wait_for(reader.read(), DEADLINE)
    except ConnectionResetError:
        return b""


def req(method: str, target: str, body: bytes = b"", headers: str = "") -> bytes:
    length = f"Content-Length: {len(body)}\r\n" if body else ""
    return f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n{length}{headers}\r\n".encode() + body


# --- keep-alive ---------------------------------------------------------------------------------

def test_two_requests_on_one_connection():
    async def main():
        async with front() as f:
            reader, writer = await f.connect()
            writer.write(req("GET", "/one"))
            status, hdrs, body = await read_response(reader)
            assert status == 200 and json.loads(body)["target"] == "/one"
            assert "close" not in hdrs.get("connection", "").lower()
            writer.write(req("POST", "/two", b"payload"))
            status, hdrs, body = await read_response(reader)
            assert status == 200 and json.loads(body) == {"method": "POST", "target": "/two", "body": "payload"}
            writer.write(req("HEAD", "/three"))
            status, hdrs, body = await read_response(reader, "HEAD")
            assert status == 200 and body == b"" and int(hdrs["content-length"]) > 0
            writer.write(req("GET", "/four", headers="Connection: close\r\n"))
            status, hdrs, body = await read_response(reader)
            assert status == 200 and hdrs["connection"] == "close" and json.loads(body)["target"] == "/four"
            assert await at_eof(reader) == b""
            writer.close()
            assert [r.target for r in f.seen] == ["/one", "/two", "/three", "/four"]
    run(main())


def test_pipelined_requests_are_answered_in_order():
    async def main():
        async with front() as f:
            reader, writer = await f.connect()
            # All in one write, bodies included; the last one asks to close.
            writer.write(req("GET", "/a") + req("POST", "/b", b"x" * 5000) + req("HEAD", "/c")
                         + req("POST", "/d", b"{}") + req("GET", "/e", headers="Connection: close\r\n")
                         + req("GET", "/never"))
            got = []
            for method in ("GET", "POST", "HEAD", "POST", "GET"):
                status, hdrs, body = await read_response(reader, method)
                assert status == 200
                got.append(json.loads(body)["target"] if body else method)
            assert got == ["/a", "/b", "HEAD", "/d", "/e"]
            assert await at_eof(reader) == b""  # /never comes after "Connection: close"
            writer.close()
            assert [r.target for r in f.seen] == ["/a", "/b", "/c", "/d", "/e"]
            assert f.seen[1].body == b"x" * 5000
    run(main())


def test_pipelined_requests_split_at_every_byte_boundary():
    data = req("GET", "/a") + req("POST", "/b", b"0123456789") + req("GET", "/c", headers="Connection: close\r\n")

    async def main():
        async with front() as f:
            for cut in range(1, len(data), 7):
                reader, writer = await f.connect()
                writer.write(data[:cut])
                await writer.drain()
                await asyncio.sleep(0)
                writer.write(data[cut:])
                targets = [json.loads((await read_response(reader))[2])["target"] for _ in range(3)]
                assert targets == ["/a", "/b", "/c"], cut
                assert await at_eof(reader) == b""
                writer.close()
    run(main())


def test_idle_keepalive_connection_is_closed_silently():
    async def main():
        async with front(HttpLimits(keepalive_timeout_s=0.2)) as f:
            reader, writer = await f.connect()
            writer.write(req("GET", "/one"))
            assert (await read_response(reader))[0] == 200
            assert await at_eof(reader) == b""  # no 408 for a connection between requests
            writer.close()
    run(main())


def test_request_cap_per_connection_closes_after_the_last_answer():
    async def main():
        async with front(HttpLimits(max_requests_per_connection=3)) as f:
            reader, writer = await f.connect()
            writer.write(b"".join(req("GET", f"/{i}") for i in range(5)))
            heads = [(await read_response(reader))[1] for _ in range(3)]
            assert [h.get("connection", "") for h in heads] == ["", "", "close"]
            assert await at_eof(reader) == b""
            writer.close()
            assert len(f.seen) == 3
    run(main())


def test_http_1_0_gets_one_answer_and_a_close():
    async def main():
        async with front() as f:
            reader, writer = await f.connect()
            writer.write(b"GET /old HTTP/1.0\r\n\r\nGET /again HTTP/1.0\r\n\r\n")
            status, hdrs, body = await read_response(reader)
            assert status == 200 and hdrs["connection"] == "close" and json.loads(body)["target"] == "/old"
            assert await at_eof(reader) == b""
            writer.close()
    run(main())


def test_an_error_closes_a_kept_alive_connection():
    async def main():
        async with front() as f:
            reader, writer = await f.connect()
            writer.write(req("GET", "/ok") + b"GET /bad\x01 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" + req("GET", "/later"))
            assert (await read_response(reader))[0] == 200
            status, hdrs, _ = await read_response(reader)
            assert status == 400 and hdrs["connection"] == "close"
            assert await at_eof(reader) == b""
            writer.close()
            assert [r.target for r in f.seen] == ["/ok"]
    run(main())


def test_idle_keepalive_connections_make_room_for_newcomers():
    async def main():
        async with front(HttpLimits(max_connections=2, keepalive_timeout_s=30.0)) as f:
            kept = []
            for _ in range(2):
                reader, writer = await f.connect()
                writer.write(req("GET", "/"))
                assert (await read_response(reader))[0] == 200
                kept.append((reader, writer))
            reader, writer = await f.connect()
            writer.write(req("GET", "/new", headers="Connection: close\r\n"))
            assert (await read_response(reader))[0] == 200
            assert await at_eof(kept[0][0]) == b""  # the oldest idle one was evicted
            for _, w in [*kept, (reader, writer)]:
                w.close()
    run(main())


def test_upgrade_hands_over_the_raw_bytes_on_a_reused_connection():
    upgrade = (b"GET /room HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    first_frame = b"\x81\x85\x00\x00\x00\x00hello"

    async def main():
        async with front() as f:
            reader, writer = await f.connect()
            writer.write(req("GET", "/before"))
            assert (await read_response(reader))[0] == 200
            writer.write(upgrade + first_frame)
            await writer.drain()
            async with asyncio.timeout(DEADLINE):
                while bytes(f.ws[0].data) != upgrade + first_frame:
                    await asyncio.sleep(0.01)
            assert len(f.registry) == 0  # no longer an HTTP connection
            writer.close()
    run(main())


def test_upgrade_pipelined_behind_a_plain_request_gets_the_rest_of_the_stream():
    upgrade = (b"GET /room HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")

    async def main():
        async with front() as f:
            reader, writer = await f.connect()
            writer.write(req("GET", "/before") + upgrade + b"first")
            assert (await read_response(reader))[0] == 200
            writer.write(b"second")  # read only if the hand-off resumed reading
            async with asyncio.timeout(DEADLINE):
                while bytes(f.ws[0].data) != upgrade + b"firstsecond":
                    await asyncio.sleep(0.01)
            writer.close()
    run(main())


def test_websocket_upgrade_after_a_plain_request_on_the_same_socket():
    async def main():
        async with Relay(RelayConfig()) as relay:
            reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
            writer.write(req("GET", "/healthz"))
            assert (await read_response(reader))[0] == 200
            room = "ab" * 16
            writer.write((f"GET {P.room_path(room)} HTTP/1.1\r\nHost: 127.0.0.1:{relay.port}\r\n"
                          "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                          "Sec-WebSocket-Version: 13\r\n\r\n").encode())
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), DEADLINE)
            assert head.startswith(b"HTTP/1.1 101"), head
            writer.close()
    run(main())



def test_relay_config_limits_reach_the_front_door():
    # The relay's own server (not a bare front): its RelayConfig fields are what `ostracon
    # relay --http-max-requests-per-connection ...` sets.
    async def main():
        cfg = RelayConfig(http_max_requests_per_connection=2, http_keepalive_timeout_s=0.2)
        async with Relay(cfg) as relay:
            reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
            writer.write(req("GET", "/healthz") + req("GET", "/healthz"))
            assert (await read_response(reader))[0] == 200
            status, headers, _ = await read_response(reader)
            assert status == 200 and headers.get("connection") == "close"
            assert await at_eof(reader) == b""
            writer.close()
            reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
            writer.write(req("GET", "/healthz"))
            assert (await read_response(reader))[0] == 200
            assert await at_eof(reader) == b""  # idle past http_keepalive_timeout_s
            writer.close()
    run(main())


# --- chunked request bodies ------------------------------------------------------------------

def test_chunked_bodies_are_accepted_within_the_body_limit():
    async def main():
        async with front(HttpLimits(max_body_bytes=10)) as f:
            reader, writer = await f.connect()
            writer.write(b"POST /c HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                         b"3\r\nabc\r\n7;ext=1\r\ndefghij\r\n0\r\n\r\n")
            status, _, body = await read_response(reader)
            assert status == 200 and json.loads(body)["body"] == "abcdefghij"
            writer.write(b"POST /c HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                         b"6\r\nabcdef\r\n6\r\nghijkl\r\n0\r\n\r\n")
            status, hdrs, _ = await read_response(reader)
            assert status == 413 and hdrs["connection"] == "close"
            assert await at_eof(reader) == b""
            writer.close()
            assert len(f.seen) == 1
    run(main())


def test_transfer_codings_other_than_chunked_are_501():
    async def main():
        async with front() as f:
            reader, writer = await f.connect()
            writer.write(b"POST /c HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n")
            assert (await read_response(reader))[0] == 501
            assert await at_eof(reader) == b""
            writer.close()
    run(main())


# --- hostile request heads -------------------------------------------------------------------

async def one_answer(f: Front, data: bytes) -> tuple[int, dict[str, str], bytes, bytes]:
    """Send ``data``; return the first response and whatever follows it until the close."""
    reader, writer = await f.connect()
    writer.write(data)
    status, hdrs, body = await read_response(reader)
    rest = await at_eof(reader)
    writer.close()
    return status, hdrs, body, rest


@pytest.mark.parametrize("line", [
    b"GARBAGE", b"GET", b"GET /", b"GET  / HTTP/1.1", b"GET / HTTP/1.1 extra", b"GET /a b HTTP/1.1",
    b"G\x00T / HTTP/1.1", b"GET /\xff HTTP/1.1", b"GET / HTTX/1.1", b"GET http://evil/ HTTP/1.1",
    b"GET * HTTP/1.1", b"(GET) / HTTP/1.1",
])
def test_malformed_request_lines_are_400(line):
    async def main():
        async with front() as f:
            status, hdrs, _, rest = await one_answer(f, line + b"\r\nHost: 127.0.0.1\r\n\r\n" + req("GET", "/x"))
            assert status == 400 and hdrs["connection"] == "close" and rest == b""
            assert f.seen == []
    run(main())


@pytest.mark.parametrize("version", [b"HTTP/2.0", b"HTTP/0.9", b"HTTP/1.2"])
def test_other_http_versions_are_505(version):
    async def main():
        async with front() as f:
            status, _, _, rest = await one_answer(f, b"GET / " + version + b"\r\nHost: 127.0.0.1\r\n\r\n")
            assert status == 505 and rest == b"" and f.seen == []
    run(main())


@pytest.mark.parametrize("head", [
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: one\r\n two\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: one\r\n\ttwo\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding:\r\n chunked\r\nContent-Length: 3\r\n\r\nabc",
    b"GET / HTTP/1.1\r\n Host: 127.0.0.1\r\n\r\n",
])
def test_obsolete_line_folding_is_400(head):
    # RFC 9112 5.2: reject or unfold; a front end that does the other thing would see other headers.
    async def main():
        async with front() as f:
            status, _, _, rest = await one_answer(f, head)
            assert status == 400 and rest == b"" and f.seen == []
    run(main())


@pytest.mark.parametrize("headers", [
    b"Content-Length: 2\r\nContent-Length: 30\r\n", b"Content-Length: 2, 3\r\n", b"Content-Length: -2\r\n",
    b"Content-Length: +2\r\n", b"Content-Length: 0x2\r\n", b"Content-Length: \xb2\r\n",
    b"Content-Length: 99999999999999999999999999\r\n", b"Host: evil.example\r\n", b"Header : x\r\n",
    b"X: a\x00b\r\n",
])
def test_ambiguous_or_malformed_fields_are_400(headers):
    async def main():
        async with front() as f:
            status, _, _, rest = await one_answer(f, b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\n" + headers
                                                  + b"\r\n{}" + req("GET", "/smuggled"))
            assert status == 400 and rest == b"" and f.seen == []
    run(main())


def test_identical_duplicate_content_lengths_are_one_length():
    # RFC 9110 8.6 lets a recipient merge identical values: the framing is not ambiguous.
    async def main():
        async with front() as f:
            status, _, body, _ = await one_answer(f, b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\n"
                                                     b"Content-Length: 2\r\nConnection: close\r\n\r\n{}")
            assert status == 200 and json.loads(body)["body"] == "{}"
    run(main())


@pytest.mark.parametrize("framing", [
    b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n", b"Transfer-Encoding: chunked\r\nContent-Length: 4\r\n",
])
def test_content_length_with_transfer_encoding_is_refused_and_closed(framing):
    # The classic request-smuggling pair (RFC 9112 6.1): whatever follows is never read as a request.
    async def main():
        async with front() as f:
            status, hdrs, _, rest = await one_answer(f, b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\n" + framing
                                                     + b"\r\n0\r\n\r\n" + req("GET", "/smuggled"))
            assert status == 400 and hdrs["connection"] == "close" and rest == b""
            assert f.seen == []
    run(main())


def test_oversized_heads_are_431_whether_dribbled_or_in_one_piece():
    async def main():
        async with front(HttpLimits(max_head_bytes=1024, max_headers=10)) as f:
            big = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 2000 + b"\r\n\r\n"
            assert (await one_answer(f, big))[0] == 431  # complete head, past the limit
            assert (await one_answer(f, big[:1500]))[0] == 431  # incomplete head, past the limit
            many = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(10)) + b"\r\n"
            assert (await one_answer(f, many))[0] == 431
            # The limit counts bytes on the wire, padding included.
            padded = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad:" + b" " * 1100 + b"x\r\n\r\n"
            assert (await one_answer(f, padded))[0] == 431
            # The same limit for a second request on a kept-alive connection.
            reader, writer = await f.connect()
            writer.write(req("GET", "/ok") + big)
            assert (await read_response(reader))[0] == 200
            assert (await read_response(reader))[0] == 431
            writer.close()
            assert [r.target for r in f.seen] == ["/ok"]
    run(main())


def test_slowloris_head_gets_408_even_when_bytes_keep_coming():
    async def main():
        async with front(HttpLimits(timeout_s=0.3)) as f:
            reader, writer = await f.connect()
            writer.write(req("GET", "/first"))
            assert (await read_response(reader))[0] == 200
            # A second head dribbled one byte at a time: the timeout runs from its first byte.
            answer = asyncio.ensure_future(read_response(reader))
            dribble = b"GET /slow HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Long: " + b"a" * 100_000
            for byte in dribble:
                if answer.done():
                    break
                writer.write(bytes([byte]))
                await asyncio.sleep(0.02)
            status, hdrs, _ = await answer
            assert status == 408 and hdrs["connection"] == "close"
            writer.close()
    run(main())


def test_a_client_still_uploading_past_the_limit_reads_its_413():
    # The answer must survive the close: input still arriving must not turn it into a reset.
    async def main():
        async with front(HttpLimits(max_body_bytes=1000)) as f:
            reader, writer = await f.connect()
            writer.write(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000000\r\n\r\n")
            answer = asyncio.ensure_future(read_response(reader))
            for _ in range(2000):
                if answer.done():
                    break
                writer.write(b"x" * 4096)
                await asyncio.sleep(0.005)
            status, hdrs, _ = await answer
            assert status == 413 and hdrs["connection"] == "close"
            writer.close()
            assert f.seen == []
    run(main())


def test_slow_body_gets_408():
    async def main():
        async with front(HttpLimits(timeout_s=0.3)) as f:
            partial = b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10\r\n\r\nab"
            status, _, _, rest = await one_answer(f, partial)
            assert status == 408 and rest == b"" and f.seen == []
    run(main())


def test_new_limits_are_validated():
    from ostracon.core.errors import ValidationError

    for bad in ({"keepalive_timeout_s": 0}, {"keepalive_timeout_s": -1.0}, {"max_requests_per_connection": 0},
                {"max_requests_per_connection": 1.5}, {"linger_s": 0}, {"keepalive_timeout_s": True}):
        with pytest.raises(ValidationError):
            HttpLimits(**bad)  # type: ignore[arg-type]
