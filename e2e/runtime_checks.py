"""Checks that run inside Pyodide (under Node, and in Chromium's worker) and natively.

The same functions run in both runtimes; the callers compare the outputs:
- e2e/node/run.mjs (`make test-node`) runs `native` with the venv's Python, then `pyodide` in
  Pyodide under Node with IndexedDB (fake-indexeddb) and WebCrypto (Node's), and compares;
- e2e/test_browser.py does the same in Chromium through the worker's test hooks.

Each check returns plain JSON-able data. Contract suites raise on failure; `run_checks`
turns every check into {"ok": bool, "error": str, "ms": float, "value": ...}.

Usage natively:  python e2e/runtime_checks.py native [--seeds N]  → JSON on stdout
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

import runtime_checks_storage
from runtime_checks_storage import idb_layout

HERE = os.path.dirname(os.path.abspath(__file__))
# Where the contract suites and vectors live: tests/ in the repo, or the directory the
# worker/runner installed them into (passed as `tests_dir`).
DEFAULT_TESTS_DIR = os.path.join(os.path.dirname(HERE), "tests")
# Seeds of the replica simulator replayed in both runtimes: enough to cover drops,
# duplicates, partitions and clock skew, few enough that the Pyodide run stays ~10 s.
SIM_SEEDS = 12


def _in_pyodide() -> bool:
    return sys.platform == "emscripten"


def _use_tests_dir(tests_dir: str | None) -> str:
    d = tests_dir or DEFAULT_TESTS_DIR
    if d not in sys.path:
        sys.path.insert(0, d)
    return d


def crypto_factory() -> Callable[[], Any]:
    if _in_pyodide():
        from ostracon.runtime.browser.webcrypto import WebCrypto

        return WebCrypto
    from ostracon.crypto.native import NativeCrypto

    return NativeCrypto


# ---- the individual checks ----------------------------------------------------------------

def crypto_contract(tests_dir: str | None = None) -> list[str]:
    _use_tests_dir(tests_dir)
    import crypto_contract as cc

    return cc.run_all(crypto_factory())


def crypto_vectors(tests_dir: str | None = None) -> dict:
    d = _use_tests_dir(tests_dir)
    import crypto_contract as cc

    path = os.path.join(d, "vectors", "crypto.json")
    vectors = cc.load_vectors(path)
    cc.check_vectors(crypto_factory(), vectors)
    return cc.compute_vectors(crypto_factory(), vectors["inputs"])


def storage_contract(tests_dir: str | None = None, prefix: str = "contract") -> list[str]:
    """tests/storage_contract.py: IndexedDBStorage under Pyodide, MemoryStorage natively
    (runtime_checks_storage.py)."""
    _use_tests_dir(tests_dir)
    return runtime_checks_storage.run_storage_contract(prefix)


def sim_hashes(seeds: int = SIM_SEEDS, tests_dir: str | None = None) -> dict:
    """Seeded convergence scenarios: every replica's final state hash, per seed."""
    _use_tests_dir(tests_dir)
    from simulator import Sim

    out = {}
    for seed in range(seeds):
        dbs = Sim(seed).run()
        hashes = sorted({db.state_hash() for db in dbs})
        heads = sorted({",".join(db.heads()) for db in dbs})
        if len(hashes) != 1 or len(heads) != 1:
            raise AssertionError(f"seed {seed} diverged inside one runtime: {hashes}")
        out[str(seed)] = {"state_hash": hashes[0], "heads": heads[0]}
    return out


def core_vectors(tests_dir: str | None = None) -> dict:
    """tests/vectors/core.json replayed with tests/vectors/replay.py: every encoding, CID,
    seal, state_hash and final document must equal what the file pins. Returns the replay
    output (compared across runtimes by the callers too)."""
    import importlib.util

    d = _use_tests_dir(tests_dir)
    path = os.path.join(d, "vectors", "core.json")
    spec = importlib.util.spec_from_file_location("ostracon_core_vector_replay",
                                                  os.path.join(d, "vectors", "replay.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    with open(path, encoding="utf-8") as f:
        vectors = json.load(f)  # Python's json: big ints and 1.0 vs 1 survive
    encodings = []
    for case in vectors["encoding"]:
        got = mod.replay_encoding(case)
        if got != {"hex": case["hex"], "cid": case["cid"]}:
            raise AssertionError(f"encoding vector {case['value']!r}: {got} != {case['hex']}, {case['cid']}")
        encodings.append(got["cid"])
    scenarios = {}
    for sc in vectors["scenarios"]:
        got = mod.replay(sc)
        for i, (g, w) in enumerate(zip(got["steps"], sc["expected"]["steps"], strict=False)):
            if g != w:
                raise AssertionError(f"scenario {sc['name']} step {i} {sc['steps'][i]}: {g} != {w}")
        if got != sc["expected"]:
            raise AssertionError(f"scenario {sc['name']}: final state differs")
        scenarios[sc["name"]] = {n: f["state_hash"] for n, f in got["final"].items()}
    return {"encodings": encodings, "scenarios": scenarios}


def snapshot_vectors(tests_dir: str | None = None) -> dict:
    """tests/vectors/snapshot.json checked with tests/vectors/snapshot_replicas.py: seeded
    replicas' snapshots, encoded in one go and in steps, give the same bytes at every step
    size, and their uncompressed payloads are the ones the file pins (made natively).
    Returns the payloads' sizes and digests (compared across runtimes by the callers too)."""
    import importlib.util

    d = _use_tests_dir(tests_dir)
    spec = importlib.util.spec_from_file_location("ostracon_snapshot_vectors",
                                                  os.path.join(d, "vectors", "snapshot_replicas.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.check(os.path.join(d, "vectors", mod.VECTOR_FILE))


def p256_store(tests_dir: str | None = None) -> dict:
    """tests/vectors/p256_store.json (a P-256-signed store made natively) verifies in this
    runtime, and a store made here with this runtime's crypto verifies here too. `made` is
    carried to the other runtime by the callers (`verify_store_json`): ECDSA is randomised,
    so runtimes are compared by verification, not by bytes."""
    d = _use_tests_dir(tests_dir)
    import p256_store as ps

    pinned = ps.verify_store(ps.load_vector(os.path.join(d, "vectors", "p256_store.json")))
    made = ps.make_store()
    ps.verify_store(made)
    return {"pinned": pinned, "made": made}


def make_store_json(tests_dir: str | None = None) -> str:
    """A fresh P-256-signed store made in this runtime (tests/p256_store.py), as JSON."""
    _use_tests_dir(tests_dir)
    import p256_store as ps

    return json.dumps(ps.make_store())


def verify_store_json(store_json: str, tests_dir: str | None = None) -> str:
    """Verify a store made by the other runtime (tests/p256_store.py); JSON in, JSON out."""
    _use_tests_dir(tests_dir)
    import p256_store as ps

    t0 = time.perf_counter()
    try:
        out = {"ok": True, "value": ps.verify_store(json.loads(store_json))}
    except BaseException as e:  # noqa: BLE001 - reported to the caller
        out = {"ok": False, "error": "".join(traceback.format_exception(e))[-4000:]}
    out["ms"] = round((time.perf_counter() - t0) * 1000, 1)
    return json.dumps(out)


class _ContractEnv:
    """An env for tests/transport_contract.py: `make` builds a transport, `base` is the URL the
    rooms hang off (a relay, or the broadcast medium's name)."""

    def __init__(self, name: str, make, base: str, dead_url: str | None, mailbox: bool) -> None:
        from ostracon.crypto import default_backend
        from ostracon.crypto.space import Space
        from room_keys import remember

        self.name, self.make, self.base, self.dead_url, self.mailbox = name, make, base, dead_url, mailbox
        self.space = Space.from_key(default_backend().random_bytes(32), "contract", crypto=default_backend())
        remember(self.space)

    async def new_room(self) -> str:
        from room_keys import new_room

        return new_room()

    def room_url(self, room: str) -> str:
        from ostracon.core.protocol import relay as P

        return self.base.rstrip("/") + P.room_path(room, 0)

    async def sync(self, db, i, **options):
        from ostracon.sync.client import SyncClient

        fast = dict(backoff_initial_s=0.05, backoff_max_s=0.3, tick_interval_s=0.02, settle_s=0.2)
        return SyncClient(db, self.base, self.space, transport_factory=self.make, **{**fast, **options}).start()


async def transport_contract(relay_url: str, tests_dir: str | None = None) -> list[str]:
    """tests/transport_contract.py on the relay WebSocket transport and the BroadcastChannel
    transport: the browser ones under Pyodide (Node's WebSocket client and its global
    BroadcastChannel), the native ones (`websockets`, the in-process medium) natively."""
    _use_tests_dir(tests_dir)
    import transport_contract as tc

    if _in_pyodide():
        from ostracon.runtime.browser.broadcast import BROADCAST_URL, BroadcastChannelTransport
        from ostracon.runtime.browser.transport import BrowserWebSocketTransport as ws_make

        bc_make = BroadcastChannelTransport
    else:
        from ostracon.crypto import default_backend
        from ostracon.sync.broadcast import BroadcastTransport, LocalBroadcast
        from ostracon.sync.native import WebSocketTransport as ws_make

        medium = LocalBroadcast()
        BROADCAST_URL = "ws://broadcast.invalid"

        def bc_make():
            return BroadcastTransport(medium.open, default_backend().random_bytes)

    envs = [_ContractEnv("relay websocket", ws_make, relay_url, "ws://127.0.0.1:9/v1/room/" + "ab" * 32, True),
            _ContractEnv("broadcast channel", bc_make, BROADCAST_URL, None, False)]
    passed = []
    for env in envs:
        passed += [f"{env.name}: {n}" for n in await tc.run_contract(env)]
    return passed


async def transport_contract_json(relay_url: str, tests_dir: str | None = None) -> str:
    t0 = time.perf_counter()
    try:
        out = {"ok": True, "value": await transport_contract(relay_url, tests_dir)}
    except BaseException as e:  # noqa: BLE001 - reported to the caller
        out = {"ok": False, "error": "".join(traceback.format_exception(e))[-4000:]}
    out["ms"] = round((time.perf_counter() - t0) * 1000, 1)
    return json.dumps(out)


# Edits of the seeded text script: enough for splits, merges, deletes across runs, three
# devices syncing at random, a migrated plain body and astral characters.
TEXT_SCRIPT_STEPS = 300
TEXT_SCRIPT_ALPHABET = ["a", "b", " ", "\n", "é", "e\u0301", "😀", "👍🏽", "中", "ß"]


def text_script(seed: int = 7, steps: int = TEXT_SCRIPT_STEPS) -> dict:
    """A seeded script of text edits on three devices (deterministic identities, clocks and
    randomness), synced at random: the final text, every block's CID and the state hash.
    Must be identical natively, in Pyodide under Node and in Chromium's worker."""
    import random

    import ostracon
    from ostracon.crypto.identity import Identity

    rng = random.Random(seed)
    clocks = [1_700_000_000_000 + 1000 * i for i in range(3)]
    rngs = [random.Random(seed * 10 + i) for i in range(3)]
    dbs = [ostracon.open(identity=Identity.from_seed(bytes([i + 1]) * 32),
                         clock=(lambda i=i: clocks[i]), random_bytes=rngs[i].randbytes)
           for i in range(3)]
    cols = [db.collection("notes") for db in dbs]
    cols[0].create({"title": "t", "body": "a plain body to migrate"}, id="n1")

    def sync(a: int, b: int) -> None:
        dbs[a].flush()
        dbs[b].apply_blocks(dbs[a].blocks_since(dbs[b].version_vector()))

    for a in range(1, 3):
        sync(0, a)
    handles = [c.text("n1", "body") for c in cols]
    for _ in range(steps):
        i = rng.randrange(3)
        clocks[i] += rng.randrange(1, 400)
        h = handles[i]
        n = len(h)
        if n and rng.random() < 0.3:
            pos = rng.randrange(n)
            h.delete(pos, rng.randint(1, min(5, n - pos)))
        else:
            word = "".join(rng.choice(TEXT_SCRIPT_ALPHABET) for _ in range(rng.randint(1, 6)))
            h.insert(rng.randint(0, n), word)
        if rng.random() < 0.15:
            sync(i, rng.randrange(3))
    for a in range(3):
        for b in range(3):
            if a != b:
                sync(a, b)
    texts = {str(h) for h in handles}
    hashes = {db.state_hash() for db in dbs}
    if len(texts) != 1 or len(hashes) != 1:
        raise AssertionError("the devices diverged inside one runtime")
    cids = [c["cid"] for c in cols[0].history("n1")]
    return {"text": texts.pop(), "state_hash": hashes.pop(), "cids": cids}


GRAPHQL_SDL = "type books { title: String  year: Int @index  tags: [String]  price: Float }"
GRAPHQL_QUERIES = [
    "query { books(order: {year: ASC}) { title year tags price } }",
    'query { books(filter: {year: {_gt: 1950}, title: {_like: "%a%"}}) { title year } }',
    "query { books(filter: {_or: [{year: {_lt: 1900}}, {price: {_ge: 20.5}}]}, order: {title: DESC}) { title } }",
    "query { books(filter: {year: {_eq: 1}}) { title } }",
    "query { nosuchfield }",
]


def graphql_answers(tests_dir: str | None = None) -> list:
    """The same GraphQL requests over the same documents: the answers (data and error
    messages) must be identical natively and in Pyodide (graphql-core in both)."""
    import ostracon

    if _in_pyodide():
        from ostracon.runtime.browser.host import HOST

        HOST.load_graphql()  # not loaded at start in the browser
    db = ostracon.open()
    try:
        db.define_schema(GRAPHQL_SDL)
        col = db.collection("books")
        for i, (title, year, tags, price) in enumerate([
            ("Dune", 1965, ["sf"], 9.99), ("Emma", 1815, [], 4.5), ("Ubik", 1969, ["sf", "pkd"], 21.0),
            ("Ulysses", 1922, ["modernism"], 30.25), ("Solaris", 1961, ["sf"], 12.0),
        ]):
            col.create({"title": title, "year": year, "tags": tags, "price": price}, id=f"b{i}")
        return [db.graphql(q) for q in GRAPHQL_QUERIES]
    finally:
        db.close()


# Strings whose Unicode normalisation differs between the runtimes' Unicode databases
# (U+113C2 U+113C2 composes under Unicode 16, not under 14) or that NFC/NFKC would change:
# the text policy (docs/CRYPTO.md) keeps every one of them exactly as typed, everywhere.
TEXT_POLICY_STRINGS = ["café", "cafe\u0301", "\U000113c2\U000113c2", "\uff21\u212b", "\u1e9b\u0323", "x\u0378"]
# A fixed salt and a low iteration count: this compares bytes across runtimes, it protects
# nothing.
TEXT_POLICY_SALT = bytes(range(16))
TEXT_POLICY_ITERATIONS = 1_000


def text_policy(tests_dir: str | None = None) -> dict:
    """Passphrases and space names as the crypto layer uses them: the exact UTF-8 bytes of
    each string, the PBKDF2 key they give (WebCrypto in the browser, `cryptography`/hashlib
    natively) and the names invites keep. Identical everywhere, or two devices would derive
    different keys from the same passphrase and never meet. `legacy_salt`: the earlier
    passphrase derivation's NFC salt, or the error type when the name holds characters newer
    than Unicode 14 (refused alike everywhere, crypto/space.py `_legacy_nfc`)."""
    from ostracon.core.errors import OstraconError
    from ostracon.crypto.invites import _check_name
    from ostracon.crypto.space import space_salt
    from ostracon.crypto.spacefile import passphrase_bytes

    backend = crypto_factory()()
    out = {}
    for text in TEXT_POLICY_STRINGS:
        pw = passphrase_bytes(text)
        out[pw.hex()] = {
            "kek": backend.pbkdf2_sha256(pw, TEXT_POLICY_SALT, TEXT_POLICY_ITERATIONS, 32).hex(),
            "name": _check_name(text, allow_none=False).encode("utf-8").hex(),
        }
        try:
            out[pw.hex()]["legacy_salt"] = space_salt(text).hex()
        except OstraconError as exc:
            out[pw.hex()]["legacy_salt"] = type(exc).__name__
    return out


# What a JS caller's values become in the engine: JS has one number type, so `-0` must
# arrive as the float -0.0 (its own block), integral numbers as ints, others as floats.
# `JS_VALUES_JS` is evaluated in the page; `JS_VALUES` is what the worker must hand over.
JS_VALUES_JS = "({z: -0, i: 0, n: -1, f: 0.5, l: [-0, 0, -1.5, [-0]], m: {a: -0, b: 0}})"
JS_VALUES = {"z": -0.0, "i": 0, "n": -1, "f": 0.5, "l": [-0.0, 0, -1.5, [-0.0]], "m": {"a": -0.0, "b": 0}}


def _describe(v: Any) -> Any:
    """Types and signs spelled out (-0.0 == 0 in Python, so a plain comparison hides it)."""
    if type(v) is dict:
        return {k: _describe(x) for k, x in v.items()}
    if type(v) is list:
        return [_describe(x) for x in v]
    if type(v) is float:
        return f"float:{v!r}"
    return f"{type(v).__name__}:{v!r}"


def js_values(tests_dir: str | None = None, js_doc: Any = None) -> dict:
    """`JS_VALUES` written as a document by a seeded replica (tests/vectors/replay.py): the
    value types and the block, CID and state hash they give. In Pyodide `js_doc` is the JS
    object `JS_VALUES_JS` as the worker passes it (worker.js marks -0, `from_js` converts);
    natively `JS_VALUES` itself. The two results must be identical. Not in `CHECKS`: without
    a JS caller (Node runs the checks from Python) there is no JS value to convert."""
    import importlib.util

    d = _use_tests_dir(tests_dir)
    if _in_pyodide() and js_doc is not None:
        from ostracon.runtime.browser.convert import default_ffi, from_js

        doc = from_js(js_doc, default_ffi())
    else:
        doc = JS_VALUES
    spec = importlib.util.spec_from_file_location("ostracon_core_vector_replay",
                                                  os.path.join(d, "vectors", "replay.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    scenario = {"replicas": [{"name": "a", "seed": "07" * 32, "clock": 1_700_000_000_000, "random": "js-values"}],
                "steps": [{"op": "create", "replica": "a", "col": "v", "id": "v", "doc": doc},
                          {"op": "flush", "replica": "a"},
                          {"op": "find", "replica": "a", "col": "v", "filter": {"z": {"_eq": 0}}}]}
    return {"types": _describe(doc), "replay": mod.replay(scenario)}


async def js_values_json(js_doc: Any, tests_dir: str | None = None) -> str:
    """Entry for the browser test: `js_values` as {"ok", "value" | "error"} JSON text."""
    try:
        out = {"ok": True, "value": js_values(tests_dir, js_doc)}
    except BaseException as e:  # noqa: BLE001 - reported to the caller
        out = {"ok": False, "error": "".join(traceback.format_exception(e))[-4000:]}
    return json.dumps(out, sort_keys=True)


def host_values() -> dict:
    """Round trip of the value conversions used by the worker (Pyodide only)."""
    if not _in_pyodide():
        return {}
    import js
    from pyodide.ffi import to_js

    from ostracon.runtime.browser import convert as h

    cases = {
        "int": 3, "float": 3.5, "neg": -7, "big": 2**70, "minus_big": -(2**64), "edge": 2**53 - 1,
        "beyond": 2**53, "true": True, "none": None, "str": "héllo ✓", "bytes": b"\x00\xff",
        "list": [1, [2, [3, None]], {"a": b"x"}], "nested": {"a": {"b": {"c": [1.25, False]}}},
    }
    js_val = h.to_js_value(cases)
    back = h.from_js(js_val.to_py(depth=-1) if hasattr(js_val, "to_py") else js_val)
    if back != cases:
        raise AssertionError(f"round trip changed values: {back!r} != {cases!r}")
    # A JS integral number is an int in Python; a non-integral one a float.
    num = js.JSON.parse("[1, 1.0, 1.5, 9007199254740993]").to_py()
    conv = h.from_js(num)
    if [type(x).__name__ for x in conv] != ["int", "int", "float", "float"]:
        raise AssertionError(f"number conversion: {conv!r}")
    # JS null → None, BigInt → int, Uint8Array → bytes.
    v = js.eval("({n: null, b: 12345678901234567890123n, u: new Uint8Array([1, 2])})")
    got = h.from_js(js.Object.fromEntries(js.Object.entries(v)).to_py(depth=-1))
    if got != {"n": None, "b": 12345678901234567890123, "u": b"\x01\x02"}:
        raise AssertionError(f"special values: {got!r}")
    # Unsupported JS objects are refused with a ValidationError.
    from ostracon.core.errors import ValidationError

    try:
        h.from_js(js.eval("new Date(0)"))
    except ValidationError:
        pass
    else:
        raise AssertionError("a Date was accepted")
    del to_js
    return {"ok": True}


CHECKS: dict[str, Callable[..., Any]] = {
    "crypto_contract": crypto_contract,
    "crypto_vectors": crypto_vectors,
    "storage_contract": storage_contract,
    "idb_layout": idb_layout,
    "sim_hashes": sim_hashes,
    "core_vectors": core_vectors,
    "snapshot_vectors": snapshot_vectors,
    "host_values": host_values,
    "graphql_answers": graphql_answers,
    "p256_store": p256_store,
    "text_policy": text_policy,
    "text_script": text_script,
}


def run_checks(names: list[str] | None = None, tests_dir: str | None = None, **kw: Any) -> dict:
    """Run the named checks (all by default); never raises: failures are in the result."""
    out = {}
    for name in names or list(CHECKS):
        fn = CHECKS[name]
        t0 = time.perf_counter()
        try:
            if name in ("host_values", "text_script"):
                value = fn()
            elif name == "sim_hashes":
                value = fn(kw.get("seeds", SIM_SEEDS), tests_dir)
            else:
                value = fn(tests_dir)
            out[name] = {"ok": True, "value": value}
        except FileNotFoundError as e:
            out[name] = {"ok": None, "error": f"missing: {e}"}
        except ModuleNotFoundError as e:
            out[name] = {"ok": None, "error": f"missing: {e}"}
        except BaseException as e:  # noqa: BLE001 - reported to the caller
            out[name] = {"ok": False, "error": "".join(traceback.format_exception(e))[-4000:]}
        out[name]["ms"] = round((time.perf_counter() - t0) * 1000, 1)
    return out


def run_checks_json(names: Any = None, tests_dir: str | None = None, seeds: int = SIM_SEEDS) -> str:
    """Entry for the JS runners: JSON text in, JSON text out (no proxy juggling)."""
    if isinstance(names, str):  # "a,b" from the JS runners ("" = all)
        names = [n for n in names.split(",") if n] or None
    return json.dumps(run_checks(names, tests_dir, seeds=seeds), sort_keys=True)


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["native", "verify-store"],
                    help="native: run the checks; verify-store: verify the store JSON on stdin")
    ap.add_argument("--checks", default="")
    ap.add_argument("--seeds", type=int, default=SIM_SEEDS)
    a = ap.parse_args()
    if a.mode == "verify-store":
        print(verify_store_json(sys.stdin.read()))
        sys.exit(0)
    names = [c for c in a.checks.split(",") if c] or None
    print(run_checks_json(names, None, a.seeds))
