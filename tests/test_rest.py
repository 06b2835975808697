"""Read-only REST (rest.py): documents, pages and histories with strong ETags and 304s,
typed JSON errors, 405 for writes; and `ostracon serve --observe` beside a writer running
in another process (REST and GraphQL follow its flushes and its compaction)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from urllib.parse import parse_qs, quote, urlsplit

import pytest

import observer_writer
import ostracon
from ostracon.relay.http import HttpRequest
from ostracon.rest import RestEndpoint, RestLimits, etag_matches
from polling import read_line, wait_until


def get(endpoint, target, method="GET", headers=()):
    parts = urlsplit(target)
    req = HttpRequest(method, target, parts.path, parse_qs(parts.query), (("host", "127.0.0.1"), *headers))
    resp = asyncio.run(endpoint(req))
    hdrs = {k.lower(): v for k, v in resp.headers}
    body = json.loads(resp.body) if resp.body else None
    return resp.status, hdrs, body


@pytest.fixture
def served(tmp_path):
    """A writer, an observer (refreshed by the test) and the REST endpoint over it."""
    path = tmp_path / "db"
    w = ostracon.open(path, sink_interval_ms=3_600_000)
    pages = w.collection("pages")
    for i in range(5):
        pages.create({"n": i, "tag": "even" if i % 2 == 0 else "odd"}, id=f"p{i}")
    pages.create({"raw": b"\x00\xff", "odd": {"$x": 1}}, id="bin ary/é")
    w.flush()
    o = ostracon.open(path, read_only=True, follow=False)
    rest = RestEndpoint(o, RestLimits(max_limit=3))
    yield w, o, rest
    rest.close()
    o.close()
    w.close()


def test_document_etag_changes_with_each_commit_and_answers_304(served):
    w, o, rest = served
    status, hdrs, doc = get(rest, "/api/pages/p1")
    assert status == 200 and doc["n"] == 1 and doc["_id"] == "p1"
    etag = hdrs["etag"]
    assert re.fullmatch(r'"doc-1-[0-9a-f]{32}"', etag) and hdrs["cache-control"] == "no-cache"
    assert get(rest, "/api/pages/p1", headers=(("if-none-match", etag),))[:2] == (304, hdrs)
    assert get(rest, "/api/pages/p1", headers=(("if-none-match", f'"x", W/{etag}'),))[0] == 304
    assert get(rest, "/api/pages/p1", headers=(("if-none-match", "*"),))[0] == 304
    w.collection("pages").patch("p1", {"n": 11})
    w.flush()
    assert get(rest, "/api/pages/p1", headers=(("if-none-match", etag),))[0] == 304   # not yet read
    o.refresh()
    status, hdrs2, doc = get(rest, "/api/pages/p1", headers=(("if-none-match", etag),))
    assert status == 200 and doc["n"] == 11 and hdrs2["etag"] != etag
    status, hdrs3, _ = get(rest, "/api/pages/p1", method="HEAD")   # the HTTP layer drops the body
    assert status == 200 and hdrs3["etag"] == hdrs2["etag"]


def test_a_lens_arriving_later_changes_the_document_etag(tmp_path):
    # The same commits read differently once the writer registers a lens: a client holding
    # the old tag must get the translated document, not a 304 for the stale one.
    w = ostracon.open(tmp_path / "db", sink_interval_ms=3_600_000)
    v1 = w.define_schema("type notes { text: String }")["notes"]
    w.collection("notes").create({"text": "hi"}, id="n1")
    w.flush()
    o = ostracon.open(tmp_path / "db", read_only=True, follow=False)
    rest = RestEndpoint(o)
    try:
        _, hdrs, doc = get(rest, "/api/notes/n1")
        assert doc["text"] == "hi"
        _, history_hdrs, _ = get(rest, "/api/notes/n1/history")
        v2 = w.define_schema("type notes { body: String }")["notes"]
        w.register_lens(v1, v2, [{"op": "rename", "from": "text", "to": "body"}])
        w.flush()
        o.refresh()
        status, hdrs2, doc2 = get(rest, "/api/notes/n1", headers=(("if-none-match", hdrs["etag"]),))
        assert status == 200 and doc2["body"] == "hi" and "text" not in doc2
        assert doc2["_version"] == doc["_version"] and hdrs2["etag"] != hdrs["etag"]
        assert get(rest, "/api/notes/n1/history", headers=(("if-none-match", history_hdrs["etag"]),))[0] == 304
    finally:
        rest.close()
        o.close()
        w.close()


def test_values_are_tagged_losslessly_and_ids_percent_decoded(served):
    _, _, rest = served
    status, _, doc = get(rest, "/api/pages/" + quote("bin ary/é", safe=""))
    assert status == 200 and doc["raw"] == {"$bytes": "AP8="} and doc["odd"] == {"$map": {"$x": 1}}


@pytest.mark.parametrize("flt, ids", [
    ({"raw": {"_eq": {"$bytes": "AP8="}}}, ["bin ary/é"]),    # bytes, written as responses show them
    ({"raw": {"_eq": {"$bytes": "AAA="}}}, []),
    ({"odd": {"_eq": {"$map": {"$x": 1}}}}, ["bin ary/é"]),  # a map with `$` keys, in its wrapper
])
def test_a_filter_reads_values_in_the_responses_tagged_form(served, flt, ids):
    _, _, rest = served
    status, _, page = get(rest, f"/api/pages?filter={quote(json.dumps(flt))}")
    assert status == 200 and [d["_id"] for d in page["docs"]] == ids


def test_pages_follow_the_cursor_with_filter_and_order(served):
    _, _, rest = served
    flt = quote(json.dumps({"tag": {"_eq": "even"}}))
    status, hdrs, page = get(rest, f"/api/pages?filter={flt}&order=n&limit=2")
    assert status == 200 and [d["n"] for d in page["docs"]] == [0, 2] and page["next"]
    assert get(rest, f"/api/pages?filter={flt}&order=n&limit=2",
               headers=(("if-none-match", hdrs["etag"]),))[0] == 304
    status, _, page2 = get(rest, f"/api/pages?filter={flt}&order=n&limit=2&cursor={quote(page['next'])}")
    assert [d["n"] for d in page2["docs"]] == [4] and page2["next"] is None
    order = quote(json.dumps([{"n": "DESC"}]))
    status, _, page = get(rest, f"/api/pages?filter={quote(json.dumps({'n': {'_ge': 0}}))}&order={order}")
    assert status == 200 and [d["n"] for d in page["docs"]] == [4, 3, 2]   # max_limit 3 is the default cap
    status, _, page = get(rest, "/api/pages?limit=3&order=-n")
    assert status == 200 and [d["n"] for d in page["docs"]] == [4, 3, 2]


def test_history_lists_every_commit_and_has_its_own_etag(served):
    w, o, rest = served
    w.collection("pages").patch("p2", {"n": 22})
    w.flush()
    o.refresh()
    status, hdrs, hist = get(rest, "/api/pages/p2/history")
    assert status == 200 and [c["height"] for c in hist] == [1, 2]
    assert hist[1]["ops"] == [["s", "n", 22]] and hdrs["etag"].startswith('"history-2-')
    assert hdrs["etag"] != get(rest, "/api/pages/p2")[1]["etag"]


@pytest.mark.parametrize("target, status, kind", [
    ("/api/nope", 404, "NotFoundError"),
    ("/api/nope/x", 404, "NotFoundError"),
    ("/api/pages/missing", 404, "NotFoundError"),
    ("/api/pages/missing/history", 404, "NotFoundError"),
    ("/api/pages/p1/blame", 404, "NotFoundError"),
    ("/api/pages/p1/history/x", 404, "NotFoundError"),
    ("/api/", 404, "NotFoundError"),
    ("/api/pages/%ff", 400, "ValidationError"),
    ("/api/pages?filter={", 400, "ValidationError"),
    ("/api/pages?filter=[1]", 400, "ValidationError"),
    ("/api/pages?filter=" + quote('{"n": NaN}'), 400, "ValidationError"),
    ("/api/pages?filter=" + "[" * 100_000, 400, "ValidationError"),
    ("/api/pages?filter=" + quote('{"n": {"_bogus": 1}}'), 400, "ValidationError"),
    ("/api/pages?filter=" + quote('{"raw": {"_eq": {"$bytes": "not base64!"}}}'), 400, "ValidationError"),
    ("/api/pages?limit=0", 400, "ValidationError"),
    ("/api/pages?limit=4", 400, "ValidationError"),
    ("/api/pages?limit=" + "9" * 5000, 400, "ValidationError"),
    ("/api/pages?limit=1&limit=2", 400, "ValidationError"),
    ("/api/pages?cursor=garbage", 400, "QueryCursorError"),
    ("/api/pages?sort=n", 400, "ValidationError"),
    ("/api/pages/p1?x=1", 400, "ValidationError"),
])
def test_errors_are_typed_json(served, target, status, kind):
    _, _, rest = served
    got, hdrs, body = get(rest, target)
    assert (got, body["error"]["type"]) == (status, kind), body
    assert "etag" not in hdrs and body["error"]["message"]


def test_a_deleted_document_is_gone_and_writes_are_refused(served):
    w, o, rest = served
    w.collection("pages").delete("p3")
    w.flush()
    o.refresh()
    assert get(rest, "/api/pages/p3")[0] == 404
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        status, hdrs, body = get(rest, "/api/pages/p1", method=method)
        assert status == 405 and hdrs["allow"] == "GET, HEAD" and body["error"]["type"] == "MethodNotAllowed"


def test_etag_matching_rules():
    assert etag_matches('"a", "b"', '"b"') and etag_matches('W/"b"', '"b"') and etag_matches(" * ", '"b"')
    assert not etag_matches(None, '"b"') and not etag_matches('"bb"', '"b"') and not etag_matches("", '"b"')


# ------------------------------------------------------------------ two processes


def http(url, method="GET", headers=None, data=None):
    req = urllib.request.Request(url, method=method, headers=headers or {}, data=data)
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, dict(resp.headers), json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        body = exc.read()
        return exc.code, dict(exc.headers), json.loads(body) if body else None


def spawn_serve(path: str, data: str) -> tuple[subprocess.Popen, str]:
    here = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(here, "..", "py")] + sys.path))
    proc = subprocess.Popen([sys.executable, "-m", "ostracon.cli", "serve", "--port", "0", "--data", data,
                             "--web", data, "--observe", path],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    line = read_line(proc.stdout, "the serve banner")
    m = re.search(r"open (http://127\.0\.0\.1:\d+)/", line)
    assert m, line
    return proc, m.group(1)


def test_serve_observe_beside_a_writer_process(tmp_path):
    path = str(tmp_path / "db")
    writer = observer_writer.spawn(path)
    server = None
    try:
        observer_writer.command(writer, 'put p0 {"n": 0}')
        observer_writer.command(writer, "flush")
        server, base = spawn_serve(path, str(tmp_path / "serve"))
        status, hdrs, doc = http(f"{base}/api/pages/p0")
        assert status == 200 and doc["n"] == 0
        assert {"content-security-policy", "x-content-type-options"} <= {k.lower() for k in hdrs}
        etag = hdrs["ETag"]
        assert http(f"{base}/api/pages/p0", headers={"If-None-Match": etag})[0] == 304
        # HEAD: the GET's headers, Content-Length included (RFC 9110 9.3.2), and no body.
        status, head_hdrs, head_body = http(f"{base}/api/pages/p0", "HEAD")
        assert status == 200 and head_body is None and head_hdrs["ETag"] == etag
        assert head_hdrs["Content-Length"] == hdrs["Content-Length"] != "0"
        for i in range(1, 5):
            observer_writer.command(writer, f'put p{i} {{"n": {i}}}')
            observer_writer.command(writer, f'put p0 {{"n": {10 * i}}}')
            observer_writer.command(writer, "compact" if i == 2 else "flush")
            wait_until(lambda i=i: http(f"{base}/api/pages/p{i}")[0] == 200, f"REST to serve p{i}")
            status, hdrs, doc = http(f"{base}/api/pages/p0", headers={"If-None-Match": etag})
            assert status == 200 and doc["n"] == 10 * i and hdrs["ETag"] != etag
            etag = hdrs["ETag"]
        status, _, page = http(f"{base}/api/pages?order=n&limit=2")
        assert status == 200 and [d["_id"] for d in page["docs"]] == ["p1", "p2"]
        assert len(http(f"{base}/api/pages/p0/history")[2]) == 5
        gql = json.dumps({"query": "{ pages { _docID } }"}).encode()
        status, _, out = http(f"{base}/graphql", "POST", {"Content-Type": "application/json"}, gql)
        assert status == 200 and sorted(d["_docID"] for d in out["data"]["pages"]) == [f"p{i}" for i in range(5)]
        assert http(f"{base}/api/pages/p0", "DELETE")[0] == 405
        observer_writer.stop(writer)
    finally:
        for proc in (writer, server):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.communicate(timeout=120)
