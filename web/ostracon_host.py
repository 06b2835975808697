"""The Python side of the Web Worker: one open database, driven by RPC from web/worker.js.

Loaded by the worker (and by the Node runner) as the module `ostracon_host`. Every entry is
called through `PyProxy.callPromising`, so the storage and crypto adapters can block on
IndexedDB/WebCrypto promises with `run_sync` (JSPI).

Protocol (see docs/BROWSER.md): `Host.run(requests)` takes a batch of `[id, method, args]`
(already converted to Python by `pyodide.toPy`) and returns one response per request:
`{"id", "result"}` or `{"id", "error": {"name", "message", "names"}}`, converted back to
plain JS values. Batching lets the worker run every RPC that queued up while Python was busy
in a single entry (one JSPI switch instead of one per call).

Value conversion (both directions, documented in docs/BROWSER.md):

    JS                          Python
    null / undefined            None   (Python None → null)
    boolean                     bool
    number, safe integer        int    (so 1.0 in JS is the int 1: JS cannot tell them apart)
    number, otherwise           float  (1.5, 1e300, 2**60 as a Number, NaN → refused on write)
    BigInt                      int    (Python ints outside ±(2**53-1) come back as BigInt)
    string                      str
    Uint8Array / ArrayBuffer    bytes  (bytes come back as Uint8Array)
    Array                       list
    plain object                dict with str keys
    anything else (Date, Map…)  ValidationError
"""

from __future__ import annotations

import hashlib
import sys
from typing import Any

import ostracon
from ostracon.core.errors import OstraconError, ValidationError, WrongKeyError

# Meta keys this host keeps in the database's own storage.
META_IDENTITY = "browser/identity"   # the device's Ed25519 seed (the browser's identity.key)
META_SPACE = "browser/space-check"   # sha256 of the space's room id: detects a wrong passphrase
# Events buffered per subscription between two deliveries. The worker delivers after every
# RPC batch, so this only fills when one batch (e.g. a sync apply) changes many documents;
# past it the subscriber gets one "overflow" event and must rescan (never a silent drop).
SUBSCRIPTION_BUFFER = 1000
# Largest nesting the converters walk; deeper values are refused rather than overflowing
# Python's recursion limit (which is lower in the browser).
MAX_DEPTH = 100
# Number.MAX_SAFE_INTEGER: the largest int a JS number holds exactly.
MAX_SAFE_INTEGER = 2**53 - 1


# ---- value conversion ----------------------------------------------------------------------

def _py_types() -> tuple:
    from pyodide.ffi import JsBigInt, JsNull, JsProxy  # type: ignore[attr-defined]

    return JsBigInt, JsNull, JsProxy


def from_js(v: Any, depth: int = 0) -> Any:
    """Finish `pyodide.toPy(value, {depth: -1})`: jsnull → None, BigInt → int, buffers → bytes."""
    if depth > MAX_DEPTH:
        raise ValidationError(f"value nested deeper than {MAX_DEPTH} levels")
    t = type(v)
    if t is str or t is bool or t is float or t is int or v is None:
        return v
    if t is dict:
        out = {}
        for k, x in v.items():
            if type(k) is not str:
                raise ValidationError(f"object keys must be strings, not {type(k).__name__}")
            out[k] = from_js(x, depth + 1)
        return out
    if t is list:
        return [from_js(x, depth + 1) for x in v]
    if t is memoryview or t is bytearray:
        return bytes(v)
    JsBigInt, JsNull, JsProxy = _py_types()
    if isinstance(v, JsNull):
        return None
    if isinstance(v, JsBigInt):
        return int(v)
    if isinstance(v, int):  # bool/int subclasses
        return int(v)
    if isinstance(v, JsProxy):
        if getattr(v, "ostraconNegativeZero", None) is True:  # worker.js: JS -0 is the float -0.0
            return -0.0
        tname = getattr(v, "constructor", None)
        tname = getattr(tname, "name", None) or type(v).__name__
        raise ValidationError(f"cannot store a JS {tname}: use null, booleans, numbers, BigInt, strings, "
                              "Uint8Array, arrays and plain objects")
    raise ValidationError(f"cannot store a {t.__name__}")


def _prep(v: Any, depth: int = 0) -> Any:
    from pyodide.ffi import jsnull  # type: ignore[attr-defined]

    if depth > MAX_DEPTH:
        raise ValidationError(f"value nested deeper than {MAX_DEPTH} levels")
    t = type(v)
    if v is None:
        return jsnull
    if t is int:
        # Pyodide turns some safe integers into BigInt; the rule here is exact: within
        # ±(2**53-1) a JS number (the float is exact there), beyond a BigInt.
        return float(v) if -MAX_SAFE_INTEGER <= v <= MAX_SAFE_INTEGER else v
    if t is dict:
        return {str(k): _prep(x, depth + 1) for k, x in v.items()}
    if t is list or t is tuple:
        return [_prep(x, depth + 1) for x in v]
    return v


def to_js_value(v: Any) -> Any:
    """Python value → plain JS value (objects, arrays, null, BigInt, Uint8Array)."""
    import js
    from pyodide.ffi import to_js

    return to_js(_prep(v), dict_converter=js.Object.fromEntries, create_pyproxies=False)


def error_info(e: BaseException) -> dict:
    names = [c.__name__ for c in type(e).__mro__ if c not in (object, BaseException)]
    info = {"name": type(e).__name__, "message": str(e), "names": names}
    if not isinstance(e, OstraconError):
        import traceback

        info["traceback"] = "".join(traceback.format_exception(e))
    return info


# ---- the asyncio gate ----------------------------------------------------------------------

#: How long a deferred asyncio callback waits before checking the gate again. Blocking waits
#: (an IndexedDB commit, a WebCrypto call) take ~0.3-5 ms.
GATE_RETRY_S = 0.001
_gate_installed = False


def install_asyncio_gate() -> None:
    """Defer the sync client's task steps while an RPC batch is suspended in a blocking wait.

    Pyodide's WebLoop schedules every callback (task steps, future callbacks, timers) through
    `call_later`. The sync client is an asyncio task; under JSPI an RPC batch that blocks on
    IndexedDB suspends and lets the JS event loop run, which would start a task step inside the
    engine's unfinished operation. Wrapping `call_later` makes such a callback re-check a
    millisecond later instead (and drop itself if its handle was cancelled meanwhile).
    Suspensions inside asyncio tasks cannot be covered this way (they are resumed by a loop
    callback); the worker still never starts an RPC batch while one is pending.
    """
    global _gate_installed
    if _gate_installed:
        return
    import asyncio
    import importlib

    bridge = importlib.import_module("ostracon_bridge")
    loop = asyncio.get_event_loop()
    orig = loop.call_later

    def call_later(delay: float, callback: Any, *args: Any, context: Any = None) -> Any:
        holder: list = []

        owner = getattr(callback, "__self__", None)
        if not (isinstance(owner, asyncio.Task) and _is_sync_task(owner)):
            # Everything else runs as scheduled: Pyodide's run_sync may itself need loop
            # callbacks to resume a suspended stack, so they must never be held back.
            return orig(delay, callback, *args, context=context)

        def guarded(*a: Any) -> None:
            if holder and holder[0].cancelled():
                return
            if bridge.gateRpcBusy():
                orig(GATE_RETRY_S, guarded, *a, context=context)
                return
            callback(*a)

        h = orig(delay, guarded, *args, context=context)
        holder.append(h)
        return h

    loop.call_later = call_later  # instance attribute: call_soon/call_at go through it too
    _gate_installed = True


def _is_sync_task(task: Any) -> bool:
    """A step or wake-up of the sync client's tasks (its reader loop and its ticker)."""
    coro = task.get_coro()
    return getattr(coro, "__qualname__", "").startswith("SyncClient.")


def _blocking(awaitable: Any) -> Any:
    from ostracon.storage.indexeddb import run_blocking

    return run_blocking(awaitable)


def _status_dict(st: Any) -> dict:
    err = st.last_error
    return {
        "state": st.state, "pending": st.pending, "peers": st.peers, "synced": st.synced,
        "attempt": st.attempt, "cursor": st.cursor, "dropped": dict(st.dropped),
        "error": None if err is None else {"name": type(err).__name__, "message": str(err)},
    }


# ---- the host ------------------------------------------------------------------------------

def _opts(v: Any) -> dict:
    if v is None:
        return {}
    if type(v) is not dict:
        raise ValidationError("options must be an object")
    return v


def _cas(o: dict) -> dict:
    return {"if_version": o.get("ifVersion"), "if_heads": o.get("ifHeads"), "where": o.get("where")}


class Host:
    def __init__(self) -> None:
        self.db: Any = None
        self.storage: Any = None
        self.space: Any = None
        self.name: str | None = None
        self.subs: dict[int, Any] = {}
        self._next_sub = 1
        self.progress: Any = None  # JS callback (phase, detail) set by the worker
        self.on_sync: Any = None   # JS callback (status dict) set by the worker
        self.wake: Any = None      # JS callback: events are waiting outside an RPC batch
        self.sync: Any = None
        self.relay: str | None = None
        self._woken = False
        self._feed_sub: Any = None
        self._sync_failed: dict | None = None  # why sync could not start (WrongKeyError)

    # -- lifecycle --

    def _progress(self, phase: str, detail: Any = None) -> None:
        if self.progress is not None:
            self.progress(phase, to_js_value(detail))

    def open(self, options: Any) -> dict:
        from ostracon.crypto.identity import Identity
        from ostracon.crypto.space import Space
        from ostracon.crypto.webcrypto import WebCrypto
        from ostracon.storage.indexeddb import IndexedDBStorage

        o = _opts(options)
        if self.db is not None:
            raise ValidationError("this worker already has a database open")
        name = o.get("name")
        if type(name) is not str or not name:
            raise ValidationError("Ostracon.open needs a non-empty `name`")
        crypto = WebCrypto()
        space = None
        spec = o.get("space")
        # Member spaces (a random space this device creates, or an invite) are kept in the
        # database's meta and need its identity: opened below (crypto/spacestore.py).
        so = _opts(spec) if spec is not None else {}
        member_spec = spec is not None and (
            "create" in so or "invite" in so or ("passphrase" in so and "name" not in so))
        if spec is not None and not member_spec:
            self._progress("space", {"kdf": "pbkdf2"})
            space = self._space(spec, crypto, Space)
        self._progress("storage", {"name": name})
        storage = IndexedDBStorage.open_sync(name)
        try:
            if space is not None:
                check = hashlib.sha256(b"ostracon/browser/space-check\x00" + space.room_id_bytes).digest()
                stored = storage.get_meta(META_SPACE)
                if stored is not None and stored != check:
                    raise WrongKeyError(
                        f"{name!r} belongs to another space: wrong passphrase, space name or invite")
                if stored is None:
                    storage.set_meta(META_SPACE, check)
            seed = storage.get_meta(META_IDENTITY)
            if seed is None:
                identity = Identity.generate(crypto)
                storage.set_meta(META_IDENTITY, identity.export_seed())
            else:
                identity = Identity.from_seed(seed, crypto)
            if member_spec:
                from ostracon.crypto import spacestore

                self._progress("space", {"kdf": "invite" if "invite" in _opts(spec) else "create"})
                space = spacestore.open_space(storage, _opts(spec), identity=identity, crypto=crypto)
            storage.flush()
            rep = storage.open_report()
            self._progress("replay", {"records": rep.records})
            limits = {k: o[k] for k in ("sink_batch_ops", "sink_interval_ms") if type(o.get(k)) is int}
            db = ostracon.open(storage=storage, identity=identity, crypto=crypto, **limits)
        except BaseException:
            storage.close()
            raise
        self.db, self.storage, self.space, self.name = db, storage, space, name
        # Changes made outside an RPC batch (sync applying remote blocks) must reach the
        # subscribers promptly: the feed callback asks the worker for a delivery round.
        self._feed_sub = db.subscribe(self._on_change)
        relay = o.get("relay")
        if relay:
            self._start_sync(relay, o.get("sync") or {})
        self._progress("ready", None)
        return self.info()

    def _on_change(self, _event: Any) -> None:
        if self.wake is not None and not self._woken and self.subs:
            self._woken = True
            self.wake()

    def _start_sync(self, relay: Any, opts: Any) -> None:
        import asyncio

        from ostracon.sync.browser import BrowserWebSocketTransport
        from ostracon.sync.client import SyncClient

        if type(relay) is not str:
            raise ValidationError("relay must be a ws:// or wss:// URL")
        if self.space is None:
            raise ValidationError("syncing through a relay needs a space ({passphrase, name} or {invite})")
        install_asyncio_gate()
        kw = {k: opts[k] for k in ("backoff_initial_s", "backoff_max_s", "tick_interval_s", "settle_s")
              if isinstance(opts.get(k), (int, float))}
        if isinstance(opts.get("room_id"), str):  # join a room explicitly (a link)
            kw["room_id"] = opts["room_id"]
        try:
            client = SyncClient(self.db, relay, self.space, transport_factory=BrowserWebSocketTransport,
                                on_status=self._sync_status, **kw)
        except WrongKeyError as exc:
            # Another space's room (a wrong passphrase or invite, or a database that belongs to
            # another space): reported as the sync status, like every sync problem.
            from ostracon.sync.base import STOPPED, SyncStatus

            self._sync_failed = _status_dict(SyncStatus(STOPPED, last_error=exc))
            self._sync_status(SyncStatus(STOPPED, last_error=exc))
            return
        self.sync, self.relay = client, relay
        # start() needs a running loop: WebLoop installs itself as running inside callbacks.
        asyncio.get_event_loop().call_soon(client.start)

    def _sync_status(self, st: Any) -> None:
        if self.on_sync is not None:
            self.on_sync(to_js_value(_status_dict(st)))
        self._on_change(None)

    @staticmethod
    def _space(spec: Any, crypto: Any, Space: Any) -> Any:
        s = _opts(spec)
        if "invite" in s:
            return Space.from_invite(s["invite"], crypto=crypto)
        if "passphrase" in s:
            kw = {}
            if s.get("iterations") is not None:
                kw["iterations"] = s["iterations"]
            return Space.from_passphrase(s["passphrase"], s.get("name"), crypto=crypto, **kw)
        if "key" in s:
            return Space.from_key(s["key"], s.get("name"), crypto=crypto)
        raise ValidationError("space must be {passphrase, name}, {invite} or {key, name}")

    def info(self) -> dict:
        db = self._db()
        return {
            "name": self.name,
            "actor": db.actor,
            "fingerprint": db.identity.fingerprint,
            "room": self.space.room_id if self.space is not None else None,
            "role": self.space.role(db.identity.actor) if self.space is not None else None,
            "relay": self.relay,
            "spaceName": self.space.name if self.space is not None else None,
            "collections": db.collections(),
            "records": self.storage.last_position(),
            "python": sys.version.split()[0],
            "ostracon": ostracon.__version__,
        }

    def _db(self) -> Any:
        if self.db is None:
            raise ostracon.ClosedError("no database is open in this worker")
        return self.db

    def close(self) -> None:
        client, self.sync = self.sync, None
        if client is not None:
            _blocking(client.stop())  # persists the mailbox cursor and flushes
        db, self.db = self.db, None
        for sub in self.subs.values():
            sub.close()
        self.subs.clear()
        if self._feed_sub is not None:
            self._feed_sub.close()
            self._feed_sub = None
        if db is not None:
            db.close()

    # -- the RPC entry --

    def run(self, requests: Any) -> Any:
        """[[id, method, args], ...] → [{id, result} | {id, error}, ...] (as JS values)."""
        out = []
        for req in requests:
            rid, method, args = req[0], req[1], req[2]
            try:
                fn = getattr(self, "rpc_" + str(method), None)
                if fn is None:
                    raise ValidationError(f"unknown method {method!r}")
                result = fn(*from_js(args if args is not None else []))
                out.append({"id": rid, "result": result})
            except BaseException as e:  # every failure goes back to the caller, typed
                if isinstance(e, (KeyboardInterrupt, SystemExit)):
                    raise
                out.append({"id": rid, "error": error_info(e)})
        self._woken = False
        events = self.drain_events()
        if self.sync is not None:
            self.sync.notify_local_change()  # push new writes without waiting for a tick
        return to_js_value({"responses": out, "events": events})

    def drain_events(self) -> list:
        out = []
        for sid, sub in list(self.subs.items()):
            evs = sub.poll()
            if evs:
                out.append({"sub": sid, "events": [e.to_dict() for e in evs]})
        return out

    # -- database methods --

    def rpc_open(self, options: Any = None) -> dict:
        return self.open(options)

    def rpc_info(self) -> dict:
        return self.info()

    def rpc_close(self) -> None:
        self.close()

    def rpc_flush(self) -> None:
        self._db().flush()

    def rpc_tick(self) -> None:
        if self.db is not None:
            self.db.tick()

    def rpc_events(self) -> None:
        """No-op: its batch delivers the subscription events queued by sync."""

    def rpc_syncStatus(self) -> Any:
        if self.sync is None:
            return self._sync_failed
        return _status_dict(self.sync.status)

    def rpc_invite(self, relay_url: Any = None, opts: Any = None) -> str:
        """An invite string for this database's space (another device joins with it). In a
        member space it admits one device with `opts.role` (admin | writer | reader)."""
        db = self._db()
        if self.space is None:
            raise ValidationError("this database was opened without a space: there is nothing to invite to")
        if not isinstance(relay_url, str) or not relay_url:
            raise ValidationError("invite needs the relay URL (ws://host:port)")
        if self.space.members is None:
            return self.space.invite(relay_url)
        role = _opts(opts).get("role", "writer")
        self.space.adopt(db.identity)
        text = self.space.invite(relay_url, role=role)
        self._members_changed()
        return text

    def rpc_members(self) -> list:
        """[{actor, fingerprint, role, me}] of the space's members ([] for an open space)."""
        from ostracon.crypto.spacestore import member_rows

        db = self._db()
        if self.space is None:
            return []
        return member_rows(self.space, db.identity.actor)

    def rpc_remove(self, actor: Any) -> list:
        """Remove a member (actor hex) and rotate the space key; returns the members left."""
        db = self._db()
        if self.space is None or self.space.members is None:
            raise ValidationError("this database's space has no member list")
        if not isinstance(actor, str):
            raise ValidationError("remove needs the member's actor id (hex)")
        try:
            raw = bytes.fromhex(actor)
        except ValueError:
            raise ValidationError("actor must be hex") from None
        self.space.adopt(db.identity)
        self.space.remove(raw, upto=db.version_vector().get(actor, 0))
        self._members_changed()
        return self.rpc_members()

    def _members_changed(self) -> None:
        # Keep the log with the database; a running sync client publishes it (and, after a
        # rotation, announces it in the old room and moves to the new one).
        from ostracon.sync.members import save_log

        save_log(self._db(), self.space)
        if self.sync is not None:
            self.sync.notify_local_change()

    def rpc_stateHash(self) -> str:
        return self._db().state_hash()

    def rpc_heads(self) -> list:
        return self._db().heads()

    def rpc_versionVector(self) -> dict:
        return self._db().version_vector()

    def rpc_collections(self) -> list:
        return self._db().collections()

    def rpc_changes(self, collection: Any = None, after: Any = None, limit: Any = None) -> dict:
        events, cursor = self._db().changes(collection, after, limit)
        return {"events": [e.to_dict() for e in events], "cursor": cursor}

    def rpc_blocksSince(self, vector: Any = None) -> list:
        return self._db().blocks_since(vector or {})

    def rpc_applyBlocks(self, envelopes: Any) -> int:
        return self._db().apply_blocks(envelopes)

    def rpc_subscribe(self, collection: Any = None, buffer: Any = None) -> int:
        sub = self._db().subscribe(collection=collection, buffer=buffer or SUBSCRIPTION_BUFFER)
        sid = self._next_sub
        self._next_sub += 1
        self.subs[sid] = sub
        return sid

    def rpc_unsubscribe(self, sid: Any) -> bool:
        sub = self.subs.pop(sid, None)
        if sub is None:
            return False
        sub.close()
        return True

    # -- collection methods: first argument is the collection name --

    def _col(self, name: Any) -> Any:
        return self._db().collection(name)

    def rpc_create(self, col: str, doc: Any, id: Any = None) -> str:
        return self._col(col).create(doc, id=id)

    def rpc_createMany(self, col: str, docs: Any) -> list:
        # Not atomic: like calling create for each (the engine has no multi-doc transaction);
        # stops at the first error, which carries how many were created.
        c = self._col(col)
        if type(docs) is not list:
            raise ValidationError("createMany needs an array of documents")
        ids = []
        for d in docs:
            ids.append(c.create(d))
        return ids

    def rpc_get(self, col: str, id: str, at: Any = None) -> Any:
        return self._col(col).get(id, at=at)

    def rpc_getMany(self, col: str, ids: Any) -> list:
        return self._col(col).get_many(ids)

    def rpc_scan(self, col: str, opts: Any = None) -> dict:
        o = _opts(opts)
        kw = {k: o[k] for k in ("prefix", "after", "limit") if o.get(k) is not None}
        docs, cursor = self._col(col).scan(**kw)
        return {"docs": docs, "next": cursor}

    def rpc_find(self, col: str, filter: Any = None, opts: Any = None) -> list:
        o = _opts(opts)
        return self._col(col).find(filter, order=o.get("order"), limit=o.get("limit"))

    def rpc_count(self, col: str) -> int:
        return self._col(col).count()

    def rpc_update(self, col: str, id: str, doc: Any, opts: Any = None) -> str:
        return self._col(col).update(id, doc, **_cas(_opts(opts)))

    def rpc_patch(self, col: str, id: str, fields: Any, opts: Any = None) -> str:
        o = _opts(opts)
        return self._col(col).patch(id, fields, unset=o.get("unset") or (), **_cas(o))

    def rpc_delete(self, col: str, id: str, opts: Any = None) -> str:
        return self._col(col).delete(id, **_cas(_opts(opts)))

    def rpc_increment(self, col: str, id: str, field: str, by: Any = 1) -> str:
        return self._col(col).increment(id, field, 1 if by is None else by)

    def rpc_history(self, col: str, id: str) -> list:
        return self._col(col).history(id)

    def rpc_blame(self, col: str, id: str) -> dict:
        return self._col(col).blame(id)


HOST = Host()
