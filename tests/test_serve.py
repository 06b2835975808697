"""`ostracon serve`'s HTTP surface: Host allow-list (HTTP and WebSocket), security headers on
every response, precompressed static files with validators, and POST /graphql that opens the
store read-only (beside a running writer), refuses expensive documents and runs under a budget."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import socket
import stat
import threading

import brotli
import pytest
from websockets.asyncio.client import connect

import ostracon
from ostracon.crypto import DeterministicRandom
from ostracon.graphql_limits import GraphQLLimits
from ostracon.relay.precompress import precompress
from ostracon.relay.server import Relay, RelayConfig
from ostracon.serve import (
    MAX_SCRIPT_HASHES,
    GraphQLEndpoint,
    allowed_hosts_for,
    content_security_policy,
    inline_script_hashes,
    main_serve,
    security_headers,
    security_headers_for,
)
from polling import until

DEADLINE = 20.0
SDL = "type Todo { title: String! }"


async def http(port, method, path, host, body=b"", headers=()):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {len(body)}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
    writer.write(head.encode() + body)
    data = await asyncio.wait_for(reader.read(), DEADLINE)
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    hdrs = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), hdrs, body


def test_allowed_hosts_and_csp():
    assert allowed_hosts_for("127.0.0.1", None) == {"127.0.0.1", "localhost", "[::1]"}
    assert allowed_hosts_for("::1", ["Notes.example"]) == {"notes.example", "[::1]", "localhost", "127.0.0.1"}
    assert allowed_hosts_for("192.0.2.5", None) == {"192.0.2.5"}
    assert allowed_hosts_for("0.0.0.0", None) == {"127.0.0.1", "localhost", "[::1]"}
    assert allowed_hosts_for("192.0.2.5", ["*"]) is None
    csp = content_security_policy("127.0.0.1:8787")
    assert "unsafe-inline" not in csp and "'unsafe-eval'" not in csp
    assert "frame-ancestors 'none'" in csp and "ws://127.0.0.1:8787" in csp
    assert "ws://" not in content_security_policy("bad host\r\n")


H1 = "'sha256-" + "A" * 43 + "='"
H2 = "'sha256-" + "b+/9" * 10 + "xyz='"


@pytest.mark.parametrize("info, expected", [
    ({"csp_script_hashes": [H2, H1, H1]}, (H1, H2)),
    ({"files": {}}, ()),
    ({"csp_script_hashes": []}, ()),
    ({"csp_script_hashes": [H1, "'unsafe-inline'"]}, ()),
    ({"csp_script_hashes": [H1 + "; script-src *"]}, ()),
    ({"csp_script_hashes": ["'sha384-" + "A" * 64 + "'"]}, ()),
    ({"csp_script_hashes": H1}, ()),
    ({"csp_script_hashes": [H1] * (MAX_SCRIPT_HASHES + 1)}, ()),
    ([H1], ()),
    ("not json {", ()),
])
def test_inline_script_hashes_come_only_from_a_sound_build_info(tmp_path, capsys, info, expected):
    (tmp_path / "build-info.json").write_text(info if isinstance(info, str) else json.dumps(info))
    assert inline_script_hashes(tmp_path) == expected
    sound = expected or info in ({"files": {}}, {"csp_script_hashes": []})
    assert (capsys.readouterr().err == "") == bool(sound)
    assert inline_script_hashes(None) == () and inline_script_hashes(tmp_path / "absent") == ()


def test_csp_allows_exactly_the_given_inline_scripts():
    csp = content_security_policy("localhost:1", (H1, H2))
    script_src = next(d for d in csp.split("; ") if d.startswith("script-src "))
    assert script_src == f"script-src 'self' 'wasm-unsafe-eval' {H1} {H2}"
    assert "unsafe-inline" not in csp
    assert "sha256" not in content_security_policy("localhost:1")


def test_security_headers_carry_the_inline_script_hashes():
    from ostracon.relay.http import HttpRequest, HttpResponse

    async def inner(_req):
        return HttpResponse(200, b"x")

    req = HttpRequest("GET", "/", "/", {}, (("host", "localhost:1"),), b"")
    got = asyncio.run(security_headers_for((H1,))(req, inner))
    csp = dict((k.lower(), v) for k, v in got.headers)["content-security-policy"]
    assert csp == content_security_policy("localhost:1", (H1,))


@pytest.fixture
def web(tmp_path):
    d = tmp_path / "web"
    d.mkdir()
    (d / "index.html").write_text("<!doctype html><title>x</title>")
    (d / "app.js").write_text("export const answer = 42;\n" * 200)
    assert precompress(d) == 2  # app.js.gz and app.js.br; index.html is too small
    assert precompress(d) == 0  # up to date
    return d


def test_host_allow_list_security_headers_and_precompressed_files(web):
    async def main():
        relay = Relay(RelayConfig(), static_dir=web, http_wrap=security_headers,
                      allowed_hosts=allowed_hosts_for("127.0.0.1", None))
        async with relay:
            port = relay.port
            ok = f"127.0.0.1:{port}"
            # DNS rebinding: the right address under a foreign name is refused, HTTP and WebSocket.
            status, _, _ = await http(port, "GET", "/", "evil.example")
            assert status == 421
            upgrade = ("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Version", "13"), \
                ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
            status, _, _ = await http(port, "GET", "/v1/room/" + "ab" * 32, "evil.example", headers=upgrade)
            assert status == 421
            status, _, _ = await http(port, "GET", "/v1/room/" + "ab" * 32, ok, headers=upgrade + (("Host", ok),))
            assert status == 400  # two Host headers
            ws = await connect(relay.room_url("ab" * 32), open_timeout=DEADLINE)
            await ws.close()
            for path in ("/", "/healthz", "/nope", "/app.js"):
                status, h, _ = await http(port, "GET", path, f"localhost:{port}")
                assert status in (200, 404), path
                assert "unsafe-inline" not in h["content-security-policy"]
                assert "frame-ancestors 'none'" in h["content-security-policy"]
                assert h["x-content-type-options"] == "nosniff" and h["referrer-policy"] == "no-referrer"
            raw = (web / "app.js").read_bytes()
            bodies = {}
            for accept, coding in (("br, gzip", "br"), ("gzip", "gzip"), ("br;q=0, gzip", "gzip"), ("", None)):
                status, h, body = await http(port, "GET", "/app.js", ok, headers=(("Accept-Encoding", accept),))
                assert status == 200 and h.get("content-encoding") == coding, accept
                assert h["vary"] == "Accept-Encoding" and h["content-type"].startswith("text/javascript")
                decoded = brotli.decompress(body) if coding == "br" else gzip.decompress(body) if coding else body
                assert decoded == raw
                bodies[coding] = h["etag"]
                # Validators: the same representation is not sent twice.
                status, _, body = await http(port, "GET", "/app.js", ok,
                                             headers=(("Accept-Encoding", accept), ("If-None-Match", h["etag"])))
                assert status == 304 and body == b""
                status, _, _ = await http(port, "GET", "/app.js", ok,
                                          headers=(("Accept-Encoding", accept),
                                                   ("If-Modified-Since", h["last-modified"])))
                assert status == 304
            assert len(set(bodies.values())) == 3
            # A stale compressed sibling is never served.
            st = (web / "app.js.gz").stat()
            os.utime(web / "app.js", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
            os.utime(web / "app.js.br", ns=(st.st_atime_ns, st.st_mtime_ns))
            status, h, body = await http(port, "GET", "/app.js", ok, headers=(("Accept-Encoding", "gzip, br"),))
            assert h.get("content-encoding") is None and body == raw

    asyncio.run(main())


def _make_db(path):
    db = ostracon.open(str(path), random_bytes=DeterministicRandom("serve"))
    db.define_schema(SDL)
    db.collection("Todo").create({"title": "first"}, id="t1")
    db.flush()
    return db


async def _post(endpoint, query, variables=None, host="127.0.0.1"):
    from ostracon.relay.http import HttpRequest
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    resp = await endpoint(HttpRequest("POST", "/graphql", "/graphql", {}, (("host", host),), body))
    return resp.status, json.loads(resp.body)


def test_read_only_graphql_runs_beside_a_writer_and_sees_its_writes(tmp_path):
    async def main():
        writer = _make_db(tmp_path / "db")  # holds the writer's lock for the whole test
        endpoint = GraphQLEndpoint(str(tmp_path / "db"), False, GraphQLLimits())
        try:
            status, out = await _post(endpoint, "{ Todo { _docID title } }")
            assert status == 200 and out == {"data": {"Todo": [{"_docID": "t1", "title": "first"}]}}
            writer.collection("Todo").create({"title": "second"}, id="t2")
            writer.flush()
            status, out = await _post(endpoint, "{ Todo { _docID } }")
            assert sorted(d["_docID"] for d in out["data"]["Todo"]) == ["t1", "t2"]
            status, out = await _post(endpoint, 'mutation { create_Todo(input: [{title: "x"}]) { title } }')
            assert out["errors"][0]["message"] == "writes are disabled on this endpoint"
        finally:
            endpoint.close()
            writer.close()

    asyncio.run(main())


def test_graphql_limits_are_enforced_by_the_endpoint(tmp_path):
    async def main():
        _make_db(tmp_path / "db").close()
        path = str(tmp_path / "db")
        endpoint = GraphQLEndpoint(path, False, GraphQLLimits(max_aliases=2))
        try:
            flood = "{ " + " ".join(f"a{i}: Todo {{ title }}" for i in range(100)) + " }"
            status, out = await _post(endpoint, flood)
            assert status == 400 and "aliases" in out["errors"][0]["message"]
        finally:
            endpoint.close()
        # The cost is checked against the schema: an embedded object is one, not a list.
        with ostracon.open(path) as db:
            db.define_schema("type Todo { title: String! author: Author } type Author { name: String }")
        endpoint = GraphQLEndpoint(path, False, GraphQLLimits())
        try:
            status, out = await _post(endpoint, "{ Todo { title author { name } } }")
            assert status == 200 and out == {"data": {"Todo": [{"title": "first", "author": None}]}}, out
            status, out = await _post(endpoint, '{ __type(name: "Todo") { fields { name type { name } } } }')
            assert status == 200 and {f["name"] for f in out["data"]["__type"]["fields"]} >= {"title", "author"}
        finally:
            endpoint.close()
        endpoint = GraphQLEndpoint(path, False, GraphQLLimits(max_response_bytes=10))
        try:
            status, out = await _post(endpoint, "{ Todo { title } }")
            assert status == 413 and "larger than" in out["errors"][0]["message"]
        finally:
            endpoint.close()
        # A query that outlives its budget: the client gets an error while the loop stays free,
        # and the next request is refused until the running one ends (one runs at a time).
        endpoint = GraphQLEndpoint(path, False, GraphQLLimits(time_budget_s=0.05))
        release = threading.Event()
        real_run = endpoint._run

        def stuck_run(*args):
            release.wait(DEADLINE)
            return real_run(*args)

        endpoint._run = stuck_run
        try:
            status, out = await _post(endpoint, "{ Todo { title } }")
            assert status == 503 and "time budget" in out["errors"][0]["message"]
            status, out = await _post(endpoint, "{ Todo { title } }")
            assert status == 503 and "another GraphQL request" in out["errors"][0]["message"]
            release.set()
            await until(lambda: not endpoint._busy, "the stuck query to finish")
            endpoint._run = real_run
            status, out = await _post(endpoint, "{ Todo { title } }")
            assert status == 200 and out == {"data": {"Todo": [{"title": "first"}]}}
        finally:
            release.set()
            endpoint.close()

    asyncio.run(main())


def test_a_graphql_request_looks_its_schema_up_once(tmp_path, monkeypatch):
    # The cost check takes the schema the request then runs against (no second lookup, and
    # no schema change between the check and the run).
    async def main():
        _make_db(tmp_path / "db").close()
        endpoint = GraphQLEndpoint(str(tmp_path / "db"), False, GraphQLLimits())
        calls = []
        real = endpoint._db._graphql_api
        monkeypatch.setattr(endpoint._db, "_graphql_api", lambda *a: calls.append(a) or real(*a))
        try:
            status, out = await _post(endpoint, "{ Todo { title } }")
            assert status == 200 and out == {"data": {"Todo": [{"title": "first"}]}}
            assert len(calls) == 1
            status, out = await _post(endpoint, "{ " + " ".join(f"a{i}: Todo {{ title }}" for i in range(100)) + " }")
            assert status == 400 and "aliases" in out["errors"][0]["message"] and len(calls) == 2
        finally:
            endpoint.close()

    asyncio.run(main())


@pytest.mark.parametrize("body", [b"[" * 100_000 + b"]" * 100_000,
                                  b'{"query": "{ Todo { title } }", "variables": {"v": NaN}}',
                                  b'{"query": "{ Todo { title } }", "variables": {"v": -Infinity}}',
                                  b"[1]", b"\xff"])
def test_graphql_bodies_that_are_not_json_requests_are_400_not_500(tmp_path, body):
    async def main():
        from ostracon.relay.http import HttpRequest
        _make_db(tmp_path / "db").close()
        endpoint = GraphQLEndpoint(str(tmp_path / "db"), False, GraphQLLimits())
        try:
            resp = await endpoint(HttpRequest("POST", "/graphql", "/graphql", {}, (("host", "127.0.0.1"),), body))
            assert resp.status == 400, resp.body[:200]
            assert json.loads(resp.body)["errors"][0]["message"].startswith("bad request: ")
        finally:
            endpoint.close()

    asyncio.run(main())


def test_serve_creates_private_data_directory(tmp_path, monkeypatch):
    import argparse

    from ostracon.serve import add_serve_arguments
    p = argparse.ArgumentParser()
    add_serve_arguments(p)
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    args = p.parse_args(["--data", str(tmp_path / "data" / "inner"), "--port", str(taken.getsockname()[1]),
                         "--max-connections", "7"])
    old = os.umask(0o022)
    try:
        assert main_serve(args) == 1  # the port is taken; the data dir was prepared before
    finally:
        os.umask(old)
        taken.close()
    for d in (tmp_path / "data", tmp_path / "data" / "inner"):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700
    mb = tmp_path / "data" / "inner" / "mailbox.sqlite"
    assert stat.S_IMODE(mb.stat().st_mode) == 0o600
    args = p.parse_args(["--data", str(tmp_path / "d2"), "--send-queue-bytes", "1"])
    assert main_serve(args) == 2  # relay limits are validated
