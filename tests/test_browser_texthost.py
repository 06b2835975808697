"""Text handles over the worker RPC (runtime/browser/texthost.py), natively."""

from __future__ import annotations

from ostracon.runtime.browser.texthost import MAX_TEXT_HANDLES
from test_browser_host import JS_NULL, call, make_host  # noqa: F401  (fixture)


def opened(make_host):  # noqa: F811
    h = make_host()
    call(h, "open", {"name": "notes"})
    call(h, "create", "notes", {"title": "t", "body": "old body"}, "n1")
    return h


def test_open_splice_pull_adopt_and_read_as_a_string(make_host):  # noqa: F811
    h = opened(make_host)
    t = call(h, "textOpen", "notes", "n1", "body")
    assert t["text"] == "old body"
    hid = t["hid"]
    assert call(h, "textSplice", hid, 8, 0, " 😀!") is JS_NULL   # code points
    assert call(h, "textSplice", hid, 0, 4, "") is JS_NULL
    assert call(h, "get", "notes", "n1")["body"] == "body 😀!"
    pulled = call(h, "textPull", hid, [6])
    assert pulled["text"] == "body 😀!" and pulled["positions"] == [6]
    assert call(h, "textAdopt", hid, pulled["token"]) is True
    cur = call(h, "textCursor", hid, 5)
    call(h, "textSplice", hid, 0, 0, ">> ")
    res = call(h, "textResolve", hid, [cur])
    assert res["positions"] == [8] and res["text"][8] == "😀"
    assert "".join(r["text"] for r in call(h, "textBlame", hid)) == res["text"]
    assert isinstance(call(h, "textCommit", hid), (str, type(JS_NULL)))
    assert call(h, "textClose", hid) is True


def test_bad_requests_are_typed_errors(make_host):  # noqa: F811
    h = opened(make_host)
    hid = call(h, "textOpen", "notes", "n1", "body")["hid"]
    for method, args, name in [("textSplice", (hid, 99, 0, "x"), "ValidationError"),
                               ("textSplice", (hid, 0, 0, 5), "ValidationError"),
                               ("textPull", (hid, ["x"]), "ValidationError"),
                               ("textResolve", (hid, [{"actor": "zz", "counter": 1}]), "ValidationError"),
                               ("textSplice", (12345, 0, 0, "x"), "NotFoundError"),
                               ("textOpen", ("notes", "nope", "body"), "NotFoundError")]:
        kind, err = call(h, method, *args)
        assert kind == "error" and err["name"] == name, (method, args, err)


def test_handles_are_bounded(make_host):  # noqa: F811
    h = opened(make_host)
    hids = [call(h, "textOpen", "notes", "n1", "body")["hid"] for _ in range(MAX_TEXT_HANDLES + 1)]
    kind, err = call(h, "textPull", hids[0], [])
    assert kind == "error" and err["name"] == "NotFoundError"
    assert call(h, "textPull", hids[-1], [])["text"] == "old body"
