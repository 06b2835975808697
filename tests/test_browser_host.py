"""The browser runtime's host (ostracon.runtime.browser.host) and value conversion, natively.

The host is the worker's RPC entry. Here it runs on file storage and the native crypto
backend, with a fake JS side (`JsLikeFfi`: JS null, BigInt and foreign objects as stand-in
classes, results put through the same number rules as a JS round trip), so its dispatch,
errors, subscriptions and open/identity/space logic are checked without a browser. The real
adapters run under Node and Chromium (make test-node, make test-e2e).
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ostracon.core.errors import (
    ClosedError,
    ConflictError,
    ValidationError,
    WrongKeyError,
)
from ostracon.crypto.native import NativeCrypto
from ostracon.crypto.space import Space
from ostracon.runtime.browser import bridge, convert
from ostracon.runtime.browser import host as host_module
from ostracon.runtime.browser.convert import MAX_DEPTH, MAX_SAFE_INTEGER, NativeFfi
from ostracon.runtime.browser.host import META_IDENTITY, Host
from ostracon.storage.file import FileStorage
from ostracon.sync.broadcast import BroadcastTransport

# ---- a fake JS side ------------------------------------------------------------------------

class JsNull:
    """Stands for `pyodide.ffi.jsnull`."""


JS_NULL = JsNull()


class JsBigInt:
    def __init__(self, n: int) -> None:
        self.n = n


class JsObject:
    """A JS object that is not plain data (a Date, a Map, a function)."""

    def __init__(self, ctor: str) -> None:
        self.ctor = ctor


class JsNegativeZero:
    """worker.js's marker for a JS -0 (toPy alone would turn it into the int 0)."""


class JsLikeFfi(NativeFfi):
    """What crosses the worker boundary, without a browser: null/BigInt/foreign objects are
    recognised like Pyodide's proxies; `to_js` then `back` behaves like JS numbers do
    (a float with an integral, safe value reads back as an int, as `toPy` gives it)."""

    null = JS_NULL

    def classify(self, v):
        if isinstance(v, JsNull):
            return "null"
        if isinstance(v, JsBigInt):
            return "bigint"
        if isinstance(v, JsNegativeZero):
            return "negzero"
        if isinstance(v, JsObject):
            return "proxy"
        return None

    def bigint_value(self, v):
        return v.n

    def proxy_type(self, v):
        return v.ctor

    def to_js(self, prepared):
        return prepared

    def back(self, v):
        """JS value → what `pyodide.toPy(v, {depth: -1})` hands to Python."""
        if v is JS_NULL:
            return JS_NULL
        if type(v) is float and v.is_integer() and abs(v) <= MAX_SAFE_INTEGER:
            return int(v)
        if type(v) is int:  # a Python int outside the safe range went out as a BigInt
            return JsBigInt(v)
        if type(v) is dict:
            return {k: self.back(x) for k, x in v.items()}
        if type(v) is list:
            return [self.back(x) for x in v]
        return v


FFI = JsLikeFfi()


# ---- conversion ----------------------------------------------------------------------------

values = st.recursive(
    st.none() | st.booleans() | st.text(max_size=8) | st.binary(max_size=8)
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: not f.is_integer()),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=20,
)


def test_js_negative_zero_is_the_float_negative_zero():
    out = convert.from_js({"x": JsNegativeZero(), "l": [JsNegativeZero(), 0]}, FFI)
    assert type(out["x"]) is float and math.copysign(1.0, out["x"]) == -1.0
    assert type(out["l"][0]) is float and math.copysign(1.0, out["l"][0]) == -1.0
    assert type(out["l"][1]) is int


@settings(max_examples=200, deadline=None)
@given(values)
def test_a_value_survives_the_round_trip_through_js(v):
    assert convert.from_js(FFI.back(convert.to_js_value(v, FFI)), FFI) == v


def test_ints_become_js_numbers_only_where_exact():
    out = convert.prepare({"a": 1, "b": MAX_SAFE_INTEGER, "c": MAX_SAFE_INTEGER + 1, "d": -(2**64), "t": (1, True)})
    assert out == {"a": 1.0, "b": float(MAX_SAFE_INTEGER), "c": MAX_SAFE_INTEGER + 1, "d": -(2**64), "t": [1.0, True]}
    assert type(out["a"]) is float and type(out["c"]) is int and type(out["t"][1]) is bool


def test_none_becomes_the_js_null():
    assert convert.prepare([None, {"x": None}], null=JS_NULL) == [JS_NULL, {"x": JS_NULL}]


def test_js_null_and_bigint_arrive_as_python_values():
    got = convert.from_js({"n": JS_NULL, "b": JsBigInt(2**80), "u": memoryview(b"\x01\x02")}, FFI)
    assert got == {"n": None, "b": 2**80, "u": b"\x01\x02"}
    assert type(got["u"]) is bytes


@pytest.mark.parametrize("ctor", ["Date", "Map", "Function"])
def test_foreign_js_objects_are_refused_by_name(ctor):
    with pytest.raises(ValidationError, match=ctor):
        convert.from_js({"when": JsObject(ctor)}, FFI)


def test_non_string_keys_and_deep_nesting_are_refused():
    with pytest.raises(ValidationError, match="keys must be strings"):
        convert.from_js({1: "x"}, FFI)
    deep: list = []
    for _ in range(MAX_DEPTH + 2):
        deep = [deep]
    with pytest.raises(ValidationError, match="nested deeper"):
        convert.from_js(deep, FFI)
    with pytest.raises(ValidationError, match="nested deeper"):
        convert.prepare(deep)


def test_natively_anything_but_plain_values_is_refused():
    with pytest.raises(ValidationError, match="cannot store a set"):
        convert.from_js({1, 2}, NativeFfi())


def test_error_info_names_the_class_and_its_bases():
    info = convert.error_info(WrongKeyError("nope"))
    assert info["name"] == "WrongKeyError" and info["message"] == "nope"
    assert info["names"][0] == "WrongKeyError" and "OstraconError" in info["names"]
    assert "traceback" not in info
    info = convert.error_info(ZeroDivisionError("x"))
    assert "ZeroDivisionError" in info["traceback"]


def test_error_info_carries_the_op_index_of_a_refused_batch_op():
    assert "opIndex" not in convert.error_info(ConflictError("taken"))
    err = ConflictError("op 4: taken")
    err.op_index = 4
    info = convert.error_info(err)
    assert info["opIndex"] == 4 and type(info["opIndex"]) is int
    assert convert.prepare(info)["opIndex"] == 4.0   # a JS number


# ---- the host ------------------------------------------------------------------------------

@pytest.fixture()
def make_host(tmp_path):
    hosts: list[Host] = []

    def make() -> Host:
        h = Host(open_storage=lambda name: FileStorage(str(tmp_path / name)),
                 make_crypto=NativeCrypto, ffi=FFI)
        h.progress_log = []
        h.progress = lambda phase, detail: h.progress_log.append(phase)
        h.clock_ms = lambda: 0.0   # the idle floor counts calls only: load never changes a test
        hosts.append(h)
        return h

    yield make
    for h in hosts:
        h.close()


def call(host: Host, method: str, *args):
    """One request through the RPC entry, as the worker sends it."""
    out = host.run([[7, method, FFI.back(convert.prepare(list(args), JS_NULL))]])
    (resp,) = out["responses"]
    assert resp["id"] == 7
    if "error" in resp:
        return ("error", resp["error"])
    return FFI.back(resp["result"])


SPACE = {"key": bytes(range(32)), "name": "family"}


def broadcast_host(tmp_path, medium) -> Host:
    """A worker host whose `relay: "broadcast"` sync runs over `medium` (an in-process
    `LocalBroadcast`), with file storage under `tmp_path`."""
    crypto = NativeCrypto()
    return Host(open_storage=lambda name: FileStorage(str(tmp_path / name)), make_crypto=NativeCrypto,
                broadcast_factory=lambda: BroadcastTransport(medium.open, crypto.random_bytes), ffi=FFI)


async def close_hosts(*hosts: Host) -> None:
    """Stop each host's sync client (on the running loop), then close its database."""
    for h in hosts:
        if h.sync is not None:
            await h.sync.stop()
            h.sync = None
        h.close()


def test_tune_collector_sets_the_first_threshold_and_keeps_the_rest():
    import gc

    before = gc.get_threshold()
    try:
        assert host_module.tune_collector() == before
        assert gc.get_threshold() == (host_module.COLLECTOR_THRESHOLD, *before[1:])
        assert host_module.tune_collector(5000) == (host_module.COLLECTOR_THRESHOLD, *before[1:])
        assert gc.get_threshold()[0] == 5000 and gc.get_freeze_count() == 0
        for bad in (0, -1, 2.5, True, "20000"):
            with pytest.raises(ValidationError):
                host_module.tune_collector(bad)
        assert gc.get_threshold()[0] == 5000
    finally:
        gc.set_threshold(*before)


def test_open_reports_progress_and_info(make_host):
    h = make_host()
    info = call(h, "open", {"name": "notes", "space": SPACE})
    assert info["name"] == "notes" and info["spaceName"] == "family"
    assert info["room"] == Space.from_key(SPACE["key"], "family", crypto=NativeCrypto()).room_id
    assert info["relay"] is JS_NULL
    assert h.progress_log == ["space", "storage", "replay", "ready"]


def test_an_open_holds_the_collector_and_freezes_nothing(make_host):
    import gc

    assert gc.isenabled() and gc.get_freeze_count() == 0
    during: list[bool] = []
    base = make_host()

    def storage(name):
        during.append(gc.isenabled())
        return base.open_storage(name)
    h = Host(open_storage=storage, make_crypto=NativeCrypto, ffi=FFI)
    try:
        call(h, "open", {"name": "plain"})
        assert during == [False]  # the collector is off while the database loads
        # ...and on again after, with nothing frozen (a frozen engine crashed Pyodide's collector)
        assert gc.isenabled() and gc.get_freeze_count() == 0
    finally:
        h.close()
    failed = Host(open_storage=base.open_storage, make_crypto=NativeCrypto, ffi=FFI)
    assert call(failed, "open", {"name": ""})[0] == "error"
    assert gc.isenabled() and gc.get_freeze_count() == 0


def test_in_the_worker_an_open_leaves_the_collector_off_until_the_first_idle_tick(make_host, monkeypatch):
    import gc

    monkeypatch.setattr(host_module, "DEFER_COLLECTOR", True)
    now = [0.0]
    h = make_host()
    h.clock_ms = lambda: now[0]
    try:
        call(h, "open", {"name": "deferred"})
        assert not gc.isenabled()            # the open's reply does not wait for a collection
        call(h, "info")
        now[0] = host_module.COLLECTOR_RESUME_MS - 1
        call(h, "info")
        assert not gc.isenabled()            # calls keep coming, within the bound: still off
        h.run([[-1, "tick", []]])
        assert gc.isenabled() and gc.get_freeze_count() == 0   # the idle tick turned it on
        assert not h.resume_collector(idle=True)               # once
    finally:
        gc.enable()
    busy = make_host()
    busy.clock_ms = lambda: now[0]
    try:
        call(busy, "open", {"name": "busy"})
        assert not gc.isenabled()
        now[0] += host_module.COLLECTOR_RESUME_MS
        call(busy, "info")                   # no idle tick came: the bound turns it on
        assert gc.isenabled()
        call(busy, "close")
        closing = make_host()
        call(closing, "open", {"name": "closing"})
        assert not gc.isenabled()
        call(closing, "close")               # closing turns it on too
        assert gc.isenabled()
        failed = make_host()
        assert call(failed, "open", {"name": ""})[0] == "error"
        assert gc.isenabled()                # a failed open never leaves it off
    finally:
        gc.enable()


def test_identity_is_kept_in_the_database(make_host):
    h = make_host()
    actor = call(h, "open", {"name": "notes"})["actor"]
    assert h.storage.get_meta(META_IDENTITY) is not None
    call(h, "close")
    assert call(make_host(), "open", {"name": "notes"})["actor"] == actor


def test_a_p256_identity_is_chosen_at_creation_and_kept(make_host):
    h = make_host()
    info = call(h, "open", {"name": "signed", "algorithm": "p256"})
    assert info["algorithm"] == "p256" and len(info["actor"]) == 70 and info["actor"].startswith("8024")
    call(h, "close")
    again = make_host()
    assert call(again, "open", {"name": "signed"})["actor"] == info["actor"]  # kept without asking
    call(again, "close")
    err = call(make_host(), "open", {"name": "signed", "algorithm": "ed25519"})
    assert err[0] == "error" and err[1]["name"] == "ValidationError" and "p256" in err[1]["message"]
    err = call(make_host(), "open", {"name": "other", "algorithm": "rsa"})
    assert err[0] == "error" and err[1]["name"] == "ValidationError"
    assert call(make_host(), "open", {"name": "plain"})["algorithm"] == "ed25519"


def test_another_space_cannot_open_the_database(make_host):
    h = make_host()
    call(h, "open", {"name": "notes", "space": SPACE})
    call(h, "close")
    err = call(make_host(), "open", {"name": "notes", "space": {**SPACE, "key": bytes(32)}})
    assert err[0] == "error" and err[1]["name"] == "WrongKeyError"


def test_open_needs_a_name_and_happens_once(make_host):
    h = make_host()
    assert call(h, "open", {})[1]["name"] == "ValidationError"
    call(h, "open", {"name": "a"})
    assert "already has a database" in call(h, "open", {"name": "b"})[1]["message"]


def test_document_calls_dispatch_to_the_collection(make_host):
    h = make_host()
    call(h, "open", {"name": "notes"})
    a = call(h, "create", "todos", {"title": "milk", "n": 1})
    b = call(h, "create", "todos", {"title": "eggs", "n": 2}, "fixed-id")
    assert b == "fixed-id"
    ids = call(h, "createMany", "todos", [{"title": "x", "n": 3}, {"title": "y", "n": 4}])
    assert len(ids) == 2
    assert call(h, "count", "todos") == 4
    assert call(h, "get", "todos", a)["title"] == "milk"
    call(h, "patch", "todos", a, {"done": True}, {"unset": ["n"]})
    doc = call(h, "get", "todos", a)
    assert doc["done"] is True and "n" not in doc
    found = call(h, "find", "todos", {"n": {"_gt": 2}}, {"order": ["n"]})
    assert [d["title"] for d in found] == ["x", "y"]
    page = call(h, "scan", "todos", {"limit": 3})
    assert len(page["docs"]) == 3 and page["next"] is not JS_NULL
    assert [d["_id"] for d in call(h, "getMany", "todos", [b, "missing"]) if d is not JS_NULL] == [b]
    call(h, "increment", "todos", b, "votes", 5)
    assert call(h, "get", "todos", b)["votes"] == 5
    assert len(call(h, "history", "todos", b)) == 2
    call(h, "delete", "todos", b)
    assert call(h, "get", "todos", b) is JS_NULL
    assert call(h, "collections") == ["todos"]


def test_failures_come_back_typed_and_the_batch_goes_on(make_host):
    h = make_host()
    call(h, "open", {"name": "notes"})
    a = call(h, "create", "todos", {"title": "milk"})
    out = h.run([
        [1, "update", ["todos", a, {"title": "x"}, {"ifVersion": 99}]],
        [2, "noSuchMethod", []],
        [3, "create", ["todos", {"when": JsObject("Date")}]],
        [4, "get", ["todos", a]],
    ])
    r = {x["id"]: x for x in out["responses"]}
    assert r[1]["error"]["name"] == ConflictError.__name__
    assert r[2]["error"]["name"] == "ValidationError" and "noSuchMethod" in r[2]["error"]["message"]
    assert r[3]["error"]["name"] == "ValidationError" and "Date" in r[3]["error"]["message"]
    assert r[4]["result"]["title"] == "milk"


def test_subscribers_see_events_in_the_batch_that_caused_them(make_host):
    h = make_host()
    call(h, "open", {"name": "notes"})
    sid = call(h, "subscribe", "todos", JS_NULL)
    other = call(h, "subscribe", "other", JS_NULL)
    out = h.run([[1, "create", ["todos", {"title": "milk"}, "m1"]]])
    (ev,) = out["events"]
    assert ev["sub"] == sid and ev["events"][0]["id"] == "m1"
    assert all(e["sub"] != other for e in out["events"])
    assert call(h, "unsubscribe", sid) is True
    assert call(h, "unsubscribe", sid) is False
    assert h.run([[1, "create", ["todos", {"title": "x"}]]])["events"] == []


def test_changes_outside_a_batch_wake_the_worker_only_while_someone_subscribes(make_host):
    h = make_host()
    woken: list[int] = []
    h.wake = lambda: woken.append(1)
    call(h, "open", {"name": "notes"})
    h.db.collection("todos").create({"title": "a"})  # as sync applies remote blocks
    assert woken == [] and h._feed_sub is None  # no feed callback on every write for nothing
    sid = call(h, "subscribe", "todos", JS_NULL)
    h.db.collection("todos").create({"title": "b"})
    h.db.collection("todos").create({"title": "c"})
    assert woken == [1]  # one delivery round asked for, until the next batch delivers
    (ev,) = h.run([[1, "events", []]])["events"]
    assert [e["payload"]["title"] for e in ev["events"]] == ["b", "c"]
    h.db.collection("todos").create({"title": "d"})
    assert woken == [1, 1]
    call(h, "unsubscribe", sid)
    h.db.collection("todos").create({"title": "e"})
    assert woken == [1, 1] and h._feed_sub is None


def test_every_call_after_close_is_a_closed_error(make_host):
    h = make_host()
    call(h, "open", {"name": "notes"})
    call(h, "create", "todos", {"title": "milk"}, "m1")
    assert call(h, "close") is JS_NULL
    for method, args in [("get", ["todos", "m1"]), ("create", ["todos", {}]), ("flush", []), ("info", [])]:
        err = call(h, method, *args)
        assert err[0] == "error" and err[1]["name"] == ClosedError.__name__, method
    # and nothing acknowledged was lost
    h2 = make_host()
    call(h2, "open", {"name": "notes"})
    assert call(h2, "get", "todos", "m1")["title"] == "milk"


def test_sync_needs_a_space_and_a_url(make_host):
    h = make_host()
    err = call(h, "open", {"name": "notes", "relay": "ws://127.0.0.1:1"})
    assert err[1]["name"] == "ValidationError" and "space" in err[1]["message"]


def test_a_resumed_create_answers_the_existing_id(make_host):
    h = make_host()
    call(h, "open", {"name": "notes"})
    assert call(h, "create", "todos", {"t": 1}, "a") == "a"
    assert call(h, "create", "todos", {"t": 2}, "a")[1]["name"] == ConflictError.__name__
    assert call(h, "create", "todos", {"t": 2}, "a", {"resume": True}) == "a"
    assert call(h, "get", "todos", "a")["t"] == 1
    assert call(h, "createMany", "todos", [{"t": 1}, {"t": 2}], ["a", "b"], {"resume": True}) == ["a", "b"]
    assert call(h, "get", "todos", "b")["t"] == 2
    assert call(h, "createMany", "todos", [{"t": 1}], ["x", "y"])[1]["name"] == "ValidationError"
    # Documents that exist already are skipped; a refused one is still named by its place in
    # `docs`, not in the batch that was sent.
    call(h, "create", "todos", {"t": 0}, "taken")
    err = call(h, "createMany", "todos", [{"t": 1}, {"t": 2}, {"t": 3}, {"_bad": 1}],
               ["a", "b", "c", "d"], {"resume": True})[1]
    assert err["name"] == "ValidationError" and err["opIndex"] == 3 and err["message"].startswith("op 3: ")
    err = call(h, "createMany", "todos", [{"t": 1}, 5], ["a", "z"], {"resume": True})[1]
    assert err["opIndex"] == 1 and err["message"] == "op 1: doc must be a dict"
    err = call(h, "createMany", "todos", [{"t": 1}, {"t": 2}, {"t": 3}], ["a", "e", "taken"])[1]
    assert err["name"] == ConflictError.__name__ and err["opIndex"] == 0   # `a` exists: no resume
    assert call(h, "get", "todos", "c") is JS_NULL and call(h, "get", "todos", "e") is JS_NULL


def test_create_many_is_atomic(make_host):
    h = make_host()
    call(h, "open", {"name": "notes"})
    call(h, "create", "todos", {"t": 0}, "taken")
    err = call(h, "createMany", "todos", [{"t": 1}, {"t": 2}, {"t": 3}], ["p", "taken", "q"])[1]
    assert err["name"] == ConflictError.__name__ and err["message"].startswith("op 1: ")
    assert err["opIndex"] == 1
    assert call(h, "get", "todos", "p") is JS_NULL and call(h, "count", "todos") == 1
    ids = call(h, "createMany", "todos", [{"t": 1}, {"t": 2}])
    assert len(ids) == 2 and call(h, "count", "todos") == 3


def test_scan_lists_deleted_documents_on_request(make_host):
    h = make_host()
    call(h, "open", {"name": "notes"})
    call(h, "create", "n", {"t": 1}, "a")
    call(h, "create", "n", {"t": 2}, "b")
    call(h, "delete", "n", "a")
    assert [d["_id"] for d in call(h, "scan", "n", {})["docs"]] == ["b"]
    docs = call(h, "scan", "n", {"includeDeleted": True})["docs"]
    assert {d["_id"]: d["_deleted"] for d in docs} == {"a": True, "b": False}
    # a deleted document comes back under its id
    assert call(h, "create", "n", {"t": 3}, "a") == "a"
    assert call(h, "get", "n", "a")["t"] == 3


def test_queries_indexes_schemas_and_graphql_through_the_rpc(make_host):
    h = make_host()
    call(h, "open", {"name": "notes"})
    assert call(h, "defineSchema", "type todos { title: String  n: Int @index }") == call(h, "schemaVersions")
    for i in range(5):
        call(h, "create", "todos", {"title": f"t{i}", "n": i}, f"id{i}")
    assert [i["fields"] for i in call(h, "indexes", "todos")] == [["n"]]
    name = call(h, "createIndex", "todos", "title", {"unique": True})
    assert name in [i["name"] for i in call(h, "indexes", "todos")]
    page = call(h, "findPage", "todos", {"n": {"_ge": 1}}, {"order": ["n"], "limit": 2})
    assert [d["n"] for d in page["docs"]] == [1, 2]
    rest = call(h, "findPage", "todos", {"n": {"_ge": 1}}, {"order": ["n"], "limit": 10, "after": page["next"]})
    assert [d["n"] for d in rest["docs"]] == [3, 4] and rest["next"] is JS_NULL
    assert call(h, "explain", "todos", {"n": {"_eq": 1}})["collection"] == "todos"
    call(h, "dropIndex", "todos", name)
    assert name not in [i["name"] for i in call(h, "indexes", "todos")]
    got = call(h, "graphql", "query { todos(filter: {n: {_lt: 2}}, order: {n: ASC}) { title n } }")
    assert got == {"data": {"todos": [{"title": "t0", "n": 0}, {"title": "t1", "n": 1}]}}
    assert call(h, "schemaHistory", "todos")[0]["version_id"] == call(h, "schemaVersions")["todos"]
    assert call(h, "setSchema", "todos", "type other { x: Int }")[1]["name"] == "ValidationError"


def test_an_idle_tick_compacts_a_long_log_and_reopen_loads_it_lazily(make_host):
    from ostracon.runtime.browser.idle import COMPACT_LOG_RECORDS

    h = make_host()
    call(h, "open", {"name": "long"})
    n = COMPACT_LOG_RECORDS + 10
    for start in range(0, n, 500):   # a createMany is one atomic batch: at most 1000
        call(h, "createMany", "c", [{"i": i} for i in range(start, min(n, start + 500))])
    call(h, "flush")
    call(h, "tick")
    assert h.storage.load_snapshot() is not None and h.storage.open_report().records == 0
    assert h.maybe_compact() is False  # nothing new since: not tried again
    expected = call(h, "stateHash")
    call(h, "close")
    h2 = make_host()
    call(h2, "open", {"name": "long"})
    states = list(h2.db.replica.collections["c"].values())
    assert len(states) == n
    assert call(h2, "count", "c") == n
    # Opened from the snapshot without building one document (counting does not either).
    assert all(object.__getattribute__(s, "_pending") is not None for s in states)
    assert call(h2, "stateHash") == expected


# ---- member spaces through the RPC (crypto/spacestore.py; docs/CRYPTO.md "Membership") ----

RELAY = "ws://127.0.0.1:1"


def test_a_created_space_invites_and_reopens_from_the_database(make_host):
    h = make_host()
    info = call(h, "open", {"name": "admin", "space": {"create": True, "name": "team"}})
    me = info["actor"]
    assert info["role"] == "admin" and info["removed"] is False and len(info["spaceId"]) == 32
    assert call(h, "members") == [{"actor": me, "fingerprint": info["fingerprint"], "role": "admin", "me": True}]
    assert call(h, "invite")[1]["name"] == "ValidationError"  # no relay to name in the invite
    writer = call(h, "invite", RELAY, {"role": "writer"})
    reader = call(h, "invite", RELAY, {"role": "reader"})
    assert writer.startswith("ost2") and reader.startswith("ost2") and writer != reader
    call(h, "close")
    h = make_host()
    again = call(h, "open", {"name": "admin", "space": {}})
    assert again["spaceId"] == info["spaceId"] and again["role"] == "admin"
    # Devices that open the invites are in the space; they become members with the roles the
    # invites carry once their join entries reach the log (sync carries them).
    d, r = make_host(), make_host()
    assert call(d, "open", {"name": "d", "space": {"invite": writer}})["spaceId"] == info["spaceId"]
    assert call(r, "open", {"name": "r", "space": {"invite": reader}})["spaceId"] == info["spaceId"]
    for joined in (d, r):
        joined.space.members.merge(h.space.members.export())
        h.space.members.merge(joined.space.members.export())
    roles = {m["actor"]: m["role"] for m in call(h, "members")}
    assert roles == {me: "admin", d.info()["actor"]: "writer", r.info()["actor"]: "reader"}


def test_an_invite_of_another_space_is_a_wrong_key_error(make_host):
    h = make_host()
    call(h, "open", {"name": "a", "space": {"create": True, "name": "team"}})
    invite = call(h, "invite", RELAY)
    j = make_host()
    call(j, "open", {"name": "j", "space": {"invite": invite}})
    call(j, "close")
    stranger = Space.generate("team", identity=None, crypto=NativeCrypto())
    err = call(make_host(), "open", {"name": "j", "space": {"invite": stranger.invite(RELAY)}})
    assert err[0] == "error" and err[1]["name"] == "WrongKeyError"
    assert call(make_host(), "open", {"name": "nothing", "space": {}})[1]["name"] == "ValidationError"


def test_removing_a_member_rotates_and_answers_the_members_left(make_host):
    h = make_host()
    call(h, "open", {"name": "a", "space": {"create": True, "name": "team"}})
    room = h.space.room_id
    other = make_host()
    call(other, "open", {"name": "b", "space": {"invite": call(h, "invite", RELAY)}})
    h.space.members.merge(other.space.members.export())  # what sync carries between them
    assert {m["role"] for m in call(h, "members")} == {"admin", "writer"}
    left = call(h, "remove", other.info()["actor"])
    assert [m["role"] for m in left] == ["admin"] and h.space.room_id != room
    assert call(h, "remove", "zz")[1]["name"] == "ValidationError"


def test_an_earlier_passphrase_space_is_migrated_only_on_request(make_host):
    legacy = {"passphrase": "old secret", "name": "family"}
    h = make_host()
    first = call(h, "open", {"name": "n", "space": legacy})
    assert first["spaceId"] is JS_NULL and first["role"] == "writer"  # an open space: no member list
    call(h, "create", "notes", {"t": "kept"}, "k")
    call(h, "close")
    wrong = call(make_host(), "open", {"name": "n", "space": {"migrate": {**legacy, "passphrase": "guess"}}})
    assert wrong[1]["name"] == "WrongKeyError"
    m = make_host()
    moved = call(m, "open", {"name": "n", "space": {"migrate": legacy}})
    assert moved["role"] == "admin" and len(moved["spaceId"]) == 32 and moved["room"] != first["room"]
    assert call(m, "get", "notes", "k")["t"] == "kept"
    call(m, "close")
    # The old form now opens the member space kept here: nothing forks silently.
    again = make_host()
    assert call(again, "open", {"name": "n", "space": legacy})["spaceId"] == moved["spaceId"]
    call(again, "close")
    assert call(make_host(), "open", {"name": "n", "space": {"migrate": legacy}})[1]["name"] == "ValidationError"
    fresh = call(make_host(), "open", {"name": "fresh", "space": {"migrate": legacy}})
    assert fresh[1]["name"] == "ValidationError"



def test_the_sync_status_carries_the_gate_counts_of_this_database(make_host):
    from ostracon.runtime.browser.host import _status_dict
    from ostracon.sync.base import OFFLINE, SyncStatus

    bridge.STATS.hold(None, 0.0)   # an earlier database's held step
    h = make_host()
    call(h, "open", {"name": "gate"})
    st = _status_dict(SyncStatus(OFFLINE))
    assert st["gate"] == {"heldSteps": 0, "longestHoldMs": 0.0, "heldNow": 0, "yields": 0, "yieldTimeouts": 0}
    bridge.STATS.release(bridge.STATS.hold(None, 1.0), 1.5)
    assert _status_dict(SyncStatus(OFFLINE))["gate"]["longestHoldMs"] == 500.0
    bridge.reset_gate_stats()
