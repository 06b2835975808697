"""The Python side of the Web Worker: one open database, driven by RPC from web/worker.js.

web/loader.js imports this module from the wheel (`ostracon.runtime.browser.host`) and hands
`HOST` to the worker. Every entry is called through `PyProxy.callPromising`, so the storage
and crypto adapters can block on IndexedDB/WebCrypto promises with `run_sync` (JSPI).

Protocol (see docs/BROWSER.md): `Host.run(requests)` takes a batch of `[id, method, args]`
(already converted to Python by `pyodide.toPy`) and returns one response per request:
`{"id", "result"}` or `{"id", "error": {"name", "message", "names"}}`, converted back to
plain JS values (rules in `convert`). Batching lets the worker run every RPC that queued up
while Python was busy in a single entry (one JSPI switch instead of one per call).

The adapters are injected (`open_storage`, `make_crypto`, `transport_factory`, `ffi`), so the
RPC dispatch runs natively in tests with file storage and the native crypto backend.
"""

from __future__ import annotations

import gc
import hashlib
import sys
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import ostracon
from ostracon.core.actors import ALGORITHMS, ED25519
from ostracon.core.errors import ClosedError, ValidationError, WrongKeyError
from ostracon.crypto import spacestore

from . import bridge
from .convert import NativeFfi, default_ffi, error_info, from_js, to_js_value
from .docrpc import DocumentRpc, _opts
from .idle import IdleWork
from .spacerpc import SpaceRpc
from .texthost import TextRpc

# Meta keys this host keeps in the database's own storage.
META_IDENTITY = "browser/identity"   # the device's private key (the browser's identity.key)
# Its algorithm, "ed25519" or "p256" (core/actors.py), written before the key; databases made
# before P-256 existed have none and are Ed25519.
META_IDENTITY_ALGORITHM = "browser/identity-algorithm"
META_SPACE = "browser/space-check"   # sha256 of the space's room id: detects a wrong passphrase
# Events buffered per subscription between two deliveries. The worker delivers after every
# RPC batch, so this only fills when one batch (e.g. a sync apply) changes many documents;
# past it the subscriber gets one "overflow" event and must rescan (never a silent drop).
SUBSCRIPTION_BUFFER = 1000
#: How long close() waits for the sync client to say goodbye to the relay. The database is
#: flushed before (durable locally whatever the relay does); an unreachable relay must not
#: keep the page waiting. The JS side bounds the whole close as well (CLOSE_TIMEOUT_MS).
CLOSE_SYNC_TIMEOUT_S = 2.0
#: Sync options the JS API passes through to SyncClient (numbers, in seconds).
SYNC_OPTIONS = ("backoff_initial_s", "backoff_max_s", "tick_interval_s", "settle_s",
                "heartbeat_interval_s", "heartbeat_timeout_s", "flush_debounce_s")


#: The cyclic collector's first threshold in the browser runtime (CPython's default: 2,000).
#: The engine keeps what it builds (a document's state, its block, its index entries), so a
#: run of writes is a run of surviving allocations: at 2,000 the collector ran ~100 times
#: over 10,000 writes (W1), each pass also taking its increment of the old generation, and
#: took 3-12% of the run under Pyodide. At 20,000 it runs ~10 times for about a third of the
#: time, while a pass stays short (at 100,000 single passes took 0.2-0.9 s). Garbage cycles
#: wait at most that many allocations longer to be freed. Set by `tune_collector`, which
#: web/loader.js calls once per start (never at import: natively the host module is imported
#: by tests in a process whose collector is not ours to tune).
COLLECTOR_THRESHOLD = 20_000
#: After an open, the cyclic collector stays off until the worker's first idle tick, or at most
#: this long (ms) while calls keep the worker busy (`resume_collector`). Its first pass after an
#: open that built tens of thousands of objects also marks the interpreter's heap: ~30 ms in
#: Chromium after opening 10,000 documents, a tenth of what they add to the open. Neither the
#: open's reply nor the page's first calls need to wait for it; garbage cycles made meanwhile
#: wait at most this long to be freed.
COLLECTOR_RESUME_MS = 2_000
#: Whether an open leaves the collector off until then: in the worker, whose interpreter is the
#: engine's own. Natively the host runs in a process whose collector is not its to keep off
#: (tests): it is on again when the open returns.
DEFER_COLLECTOR = sys.platform == "emscripten"


def tune_collector(threshold: int = COLLECTOR_THRESHOLD) -> tuple[int, ...]:
    """Set the collector's first threshold to `threshold` (an int >= 1; the other thresholds
    are kept); returns the thresholds it replaced. Nothing is frozen (gc.freeze is not used:
    snapshot.py, "Why the collector is not frozen"). Raises ValidationError for a bad value."""
    if type(threshold) is not int or threshold < 1:
        raise ValidationError(f"collector threshold must be an int >= 1, not {threshold!r}")
    old = gc.get_threshold()
    gc.set_threshold(threshold, *old[1:])
    return old


#: The sink's bound on waiting for another flush's storage I/O (db/sink.py IoLock). In the
#: worker there is one thread, so a wait for a held I/O lock could never end: 0 raises at once.
#: Natively (this host under tests) a driver thread may be flushing: wait for it as usual.
IO_WAIT_MS: int | None = 0 if sys.platform == "emscripten" else None


def _ms_since(t: float) -> float:
    return round((time.perf_counter() - t) * 1000, 1)


def _status_dict(st: Any) -> dict:
    err = st.last_error
    return {
        "state": st.state, "pending": st.pending, "peers": st.peers, "synced": st.synced,
        "attempt": st.attempt, "cursor": st.cursor, "dropped": dict(st.dropped),
        "error": None if err is None else {"name": type(err).__name__, "message": str(err)},
        "gate": bridge.gate_stats(),  # what the suspension gate cost the client (docs/BROWSER.md)
    }


def _indexeddb_open(name: str) -> Any:
    from .indexeddb import IndexedDBStorage
    from .snapshot import load_deferred

    # The extension packages left out of the memory snapshot start now, while the worker's
    # read of the database may still be running (web/bridge.js idbPrefetch), instead of at
    # the stored snapshot's first unpack.
    load_deferred()
    return IndexedDBStorage.open_sync(name)


def _webcrypto() -> Any:
    from .webcrypto import WebCrypto

    return WebCrypto()


def _browser_transport() -> Any:
    from .transport import BrowserWebSocketTransport

    return BrowserWebSocketTransport()


def _broadcast_transport() -> Any:
    from .broadcast import BroadcastChannelTransport

    return BroadcastChannelTransport()


#: The `relay` value that syncs over the origin's BroadcastChannel instead of a relay
#: (tabs and workers of one origin, docs/TRANSPORTS.md).
BROADCAST = "broadcast"


class Host(DocumentRpc, TextRpc, SpaceRpc, IdleWork):
    """One database per worker, reached through `run` (the RPC entry).

    `open_storage(name)` → Storage (default: IndexedDB), `make_crypto()` → CryptoBackend
    (default: WebCrypto), `transport_factory()` → sync Transport (default: the browser
    WebSocket), `broadcast_factory()` → the Transport for `relay: "broadcast"` (default: the
    BroadcastChannel), `ffi` → the JS side of value conversion (default: Pyodide's).
    """

    def __init__(self, *, open_storage: Callable[[str], Any] = _indexeddb_open,
                 make_crypto: Callable[[], Any] = _webcrypto,
                 transport_factory: Callable[[], Any] = _browser_transport,
                 broadcast_factory: Callable[[], Any] = _broadcast_transport,
                 ffi: NativeFfi | None = None) -> None:
        self.open_storage = open_storage
        self.make_crypto = make_crypto
        self.transport_factory = transport_factory
        self.broadcast_factory = broadcast_factory
        self._ffi = ffi
        self.db: Any = None
        self.storage: Any = None
        self.space: Any = None
        self.name: str | None = None
        self.subs: dict[int, Any] = {}
        self._next_sub = 1
        self.progress: Any = None  # JS callback (phase, detail) set by the worker
        self.on_sync: Any = None   # JS callback (status dict) set by the worker
        self.on_background: Any = None  # JS callback (background status) set by the worker
        self.wake: Any = None      # JS callback: events are waiting outside an RPC batch
        self.sync: Any = None
        self.relay: str | None = None
        self._woken = False
        self._feed_sub: Any = None
        self.network: bool | None = None  # navigator.onLine as last reported by the worker
        self._sync_failed: dict | None = None  # why sync could not start (WrongKeyError)
        self._compact_tried = 0  # log position of the last compaction attempt
        # JS callback: are calls waiting in the worker's queue? (None: never, e.g. natively)
        self.calls_waiting: Any = None
        self._later_in_batch = 0   # requests after the current one in this RPC batch
        self._seen_seq = 0         # the change feed's position at the last idle tick
        self._view_lag_ticks = 0   # idle ticks the read view has lagged while writes came in
        self.texts: dict = {}      # open text handles (texthost.py)
        self._next_text = 1
        self._collector_off_at: float | None = None  # when an open left the collector off

    # -- lifecycle --

    @property
    def ffi(self) -> NativeFfi:
        if self._ffi is None:
            self._ffi = default_ffi()
        return self._ffi

    def _progress(self, phase: str, detail: Any = None) -> None:
        if self.progress is not None:
            self.progress(phase, to_js_value(detail, self.ffi))

    def open(self, options: Any) -> dict:
        # The collector is off for the whole open (not only the load), and nothing is frozen
        # afterwards: a frozen engine makes CPython 3.14's incremental collector crash under
        # Pyodide's JSPI (runtime/browser/snapshot.py, "Why the collector is not frozen").
        # In the worker it stays off until the first idle tick (COLLECTOR_RESUME_MS).
        was = gc.isenabled()
        gc.disable()
        opened = False
        try:
            out = self._open(options)
            opened = True
            return out
        finally:
            if was and opened and DEFER_COLLECTOR:
                self._collector_off_at = self.clock_ms()
            elif was:
                gc.enable()

    def resume_collector(self, *, idle: bool) -> bool:
        """Turn the collector on again if an open left it off: at an idle tick (`idle`), or
        once COLLECTOR_RESUME_MS went by since the open. True if it did."""
        at = self._collector_off_at
        if at is None or not (idle or self.clock_ms() - at >= COLLECTOR_RESUME_MS):
            return False
        self._collector_off_at = None
        gc.enable()
        return True

    def _open(self, options: Any) -> dict:
        from ostracon.crypto.identity import Identity
        from ostracon.crypto.space import Space

        o = _opts(options)
        if self.db is not None:
            raise ValidationError("this worker already has a database open")
        bridge.reset_gate_stats()
        name = o.get("name")
        if type(name) is not str or not name:
            raise ValidationError("Ostracon.open needs a non-empty `name`")
        crypto = self.make_crypto()
        space = None
        spec = o.get("space")
        # Member spaces (a random space this device creates, an invite, the space kept in this
        # database, a migration) are kept in the database's meta and need its identity: opened
        # below (crypto/spacestore.py). {passphrase, name} is an earlier version's space.
        so = _opts(spec) if spec is not None else {}
        member_spec = spec is not None and "key" not in so and (
            "create" in so or "invite" in so or "migrate" in so or "name" not in so)
        if spec is not None and not member_spec:
            self._progress("space", {"kdf": "pbkdf2"})
            space = self._space(spec, crypto, Space)
        self.background_errors, self.background_error = 0, None
        self._progress("storage", {"name": name})
        took, at = {}, time.perf_counter()  # ms of the open's steps: the "ready" detail
        storage = self.open_storage(name)
        took["storage"], at = _ms_since(at), time.perf_counter()
        old = None
        try:
            if space is not None and "key" not in so and storage.get_meta(spacestore.META_STATE) is not None:
                # This database keeps a member space (created or migrated here): the passphrase
                # unlocks it; deriving an earlier-version space from it would fork silently.
                space, member_spec = None, True
            if space is not None:
                self._check_legacy(storage, space, name, first=True)
            identity = self._identity(storage, o.get("algorithm"), crypto, Identity)
            if member_spec and "migrate" in so:
                self._progress("space", {"kdf": "migrate"})
                old = self._space(_opts(so["migrate"]), crypto, Space)
                self._check_legacy(storage, old, name, first=False)
                space = spacestore.migrate_space(storage, old, identity=identity, passphrase=so.get("passphrase"))
            elif member_spec:
                self._progress("space", {"kdf": "invite" if "invite" in so else "create" if "create" in so else "kept"})
                space = spacestore.open_space(storage, so, identity=identity, crypto=crypto)
            storage.flush()
            rep = storage.open_report()
            self._progress("replay", {"records": rep.records, "snapshot": rep.snapshot_position})
            limits = {k: o[k] for k in ("sink_batch_ops", "sink_interval_ms") if type(o.get(k)) is int}
            at = time.perf_counter()
            db = ostracon.open(storage=storage, identity=identity, crypto=crypto, lazy_snapshot=True,
                               sink_io_wait_ms=IO_WAIT_MS, sink_size_trigger="tick",
                               on_sink_error=partial(self.background_failed, "flush"), **limits)
            took["load"], at = _ms_since(at), time.perf_counter()
        except BaseException:
            storage.close()
            raise
        try:
            self._attach_view(db, storage)
            took["view"] = _ms_since(at)
        except BaseException:
            db.close()
            raise
        self.db, self.storage, self.space, self.name = db, storage, space, name
        from ostracon.sync.members import check_binding, load_log

        if old is not None:
            check_binding(db, space, rebind_from=old)  # the move is recorded: explicit, no fork
        if space is not None:
            load_log(db, space)  # invites, joins and rotations since the space state was kept
        relay = o.get("relay")
        if relay:
            self._start_sync(relay, o.get("sync") or {})
        self._progress("ready", {"ms": took})
        return self.info()

    def _attach_view(self, db: Any, storage: Any) -> None:
        """Keep the materialized read view (readview.py) in storages that hold one; rebuilt
        here when the stored view does not reflect the stored records."""
        attach = getattr(storage, "attach_view", None)
        if attach is None:
            return
        from .readview import ReadView

        view = ReadView(db)
        live = sum(db.collection(n).count() for n in db.collections())
        if not storage.view_current(live):
            self._progress("view", {"rebuild": True})
        attach(view, live)

    @staticmethod
    def _check_legacy(storage: Any, space: Any, name: str, *, first: bool) -> None:
        """An earlier-version passphrase space is checked against the room id this database
        recorded: a wrong passphrase or name raises WrongKeyError instead of opening an empty
        space. ``first``: record it when nothing is recorded (a new database); otherwise (a
        migration) there must be a recorded space to move."""
        check = hashlib.sha256(b"ostracon/browser/space-check\x00" + space.room_id_bytes).digest()
        stored = storage.get_meta(META_SPACE)
        if stored is None and not first:
            raise ValidationError(f"{name!r} holds no passphrase space of an earlier version to migrate")
        if stored is not None and bytes(stored) != check:
            raise WrongKeyError(f"{name!r} belongs to another space: wrong passphrase, space name or invite")
        if stored is None:
            storage.set_meta(META_SPACE, check)

    def _watch_feed(self) -> None:
        """Changes made outside an RPC batch (sync applying remote blocks) must reach the
        subscribers promptly: while there are subscriptions, a feed callback asks the worker
        for a delivery round. Without any, nothing listens (the callback would cost every
        write a call for nothing)."""
        if self.subs and self._feed_sub is None and self.db is not None:
            self._feed_sub = self.db.subscribe(self._on_change)
        elif not self.subs and self._feed_sub is not None:
            self._feed_sub.close()
            self._feed_sub = None

    def _on_change(self, _event: Any) -> None:
        if self.wake is not None and not self._woken and self.subs:
            self._woken = True
            self.wake()

    def _start_sync(self, relay: Any, opts: Any) -> None:
        import asyncio

        from ostracon.sync.client import SyncClient

        if type(relay) is not str:
            raise ValidationError('relay must be a ws:// or wss:// URL, or "broadcast"')
        if self.space is None:
            raise ValidationError("syncing through a relay needs a space ({passphrase, name} or {invite})")
        if sys.platform == "emscripten":
            bridge.install_asyncio_gate()
        kw: dict[str, Any] = {k: opts[k] for k in SYNC_OPTIONS
                              if isinstance(opts.get(k), (int, float)) and type(opts.get(k)) is not bool}
        if isinstance(opts.get("room_id"), str):  # join a room explicitly (a link)
            kw["room_id"] = opts["room_id"]
        try:
            url, factory = relay, self.transport_factory
            if relay == BROADCAST:
                from .broadcast import BROADCAST_URL

                url, factory = BROADCAST_URL, self.broadcast_factory
            client = SyncClient(self.db, url, self.space, transport_factory=factory,
                                on_status=self._sync_status, **kw)
        except WrongKeyError as exc:
            # Another space's room (a wrong passphrase or invite, or a database that belongs to
            # another space): reported as the sync status, like every sync problem.
            from ostracon.sync.base import STOPPED, SyncStatus

            self._sync_failed = _status_dict(SyncStatus(STOPPED, last_error=exc))
            self._sync_status(SyncStatus(STOPPED, last_error=exc))
            return
        self.sync, self.relay = client, relay
        if self.network is False:
            client.set_network(False)
        # start() needs a running loop: WebLoop installs itself as running inside callbacks.
        asyncio.get_event_loop().call_soon(client.start)

    def post_background(self, status: dict) -> None:
        if self.on_background is not None:
            self.on_background(to_js_value(status, self.ffi))

    def _sync_status(self, st: Any) -> None:
        if self.on_sync is not None:
            self.on_sync(to_js_value(_status_dict(st), self.ffi))
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

    def _identity(self, storage: Any, algorithm: Any, crypto: Any, identity_cls: Any) -> Any:
        """The database's identity, made with `algorithm` (default Ed25519) when it has
        none; ValidationError when it has one of another algorithm than asked for."""
        if algorithm is not None and algorithm not in ALGORITHMS:
            raise ValidationError(f"algorithm must be one of {', '.join(ALGORITHMS)}: {algorithm!r:.40}")
        seed = storage.get_meta(META_IDENTITY)
        if seed is None:
            identity = identity_cls.generate(crypto, algorithm=algorithm or ED25519)
            storage.set_meta(META_IDENTITY_ALGORITHM, identity.algorithm.encode("ascii"))
            storage.set_meta(META_IDENTITY, identity.export_seed())
            return identity
        stored = storage.get_meta(META_IDENTITY_ALGORITHM)
        have = ED25519 if stored is None else bytes(stored).decode("ascii", "replace")
        if algorithm is not None and algorithm != have:
            raise ValidationError(f"this database's identity is {have}; a database keeps the identity it was made with")
        return identity_cls.from_seed(seed, crypto, algorithm=have)

    def info(self) -> dict:
        db = self._db()
        return {
            "name": self.name,
            "actor": db.actor,
            "algorithm": db.identity.algorithm,
            "fingerprint": db.identity.fingerprint,
            "room": self.space.room_id if self.space is not None else None,
            "role": self.space.role(db.identity.actor) if self.space is not None else None,
            "relay": self.relay,
            "spaceName": self.space.name if self.space is not None else None,
            "spaceId": self.space.space_id.hex() if self.space is not None and self.space.space_id else None,
            "removed": bool(self.space is not None and self.space.members is not None and self.space.removed),
            "collections": db.collections(),
            "records": self.storage.last_position(),
            "background": self.background_status(),
            "python": sys.version.split()[0],
            "ostracon": ostracon.__version__,
        }

    def _db(self) -> Any:
        if self.db is None:
            raise ClosedError("no database is open in this worker")
        return self.db

    def close(self) -> None:
        """Flush (durable locally first), stop sync within CLOSE_SYNC_TIMEOUT_S, close."""
        self.resume_collector(idle=True)
        if self.db is not None:
            self.db.flush()
        client, self.sync = self.sync, None
        if client is not None:
            import asyncio

            try:  # persists the mailbox cursor; an unreachable relay only costs the timeout
                with bridge.sync_tasks_may_run():   # stopping needs the client's own steps
                    bridge.run_blocking(asyncio.wait_for(client.stop(), CLOSE_SYNC_TIMEOUT_S))
            except TimeoutError:
                # A task may still be suspended inside the engine: it finishes first.
                bridge.run_blocking(bridge.no_task_suspended())
        db, self.db = self.db, None
        self.texts.clear()
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
        requests = list(requests)
        bridge.yield_to_held_steps()  # nothing half done yet: starved sync steps go first
        for n, req in enumerate(requests):
            self._later_in_batch = len(requests) - n - 1
            rid, method, args = req[0], req[1], req[2]
            try:
                fn = getattr(self, "rpc_" + str(method), None)
                if fn is None:
                    raise ValidationError(f"unknown method {method!r}")
                result = fn(*from_js(args if args is not None else [], self.ffi))
                out.append({"id": rid, "result": result})
            except BaseException as e:  # every failure goes back to the caller, typed
                if isinstance(e, (KeyboardInterrupt, SystemExit)):
                    raise
                out.append({"id": rid, "error": error_info(e)})
        # Calls first, but background work is not starved (the worker's own requests, the
        # tick and event deliveries, are not calls).
        self.idle_floor(sum(1 for r in requests if r[1] not in ("tick", "events")))
        self._woken = False
        self.resume_collector(idle=any(r[1] == "tick" for r in requests))
        events = self.drain_events()
        if self.sync is not None:
            self.sync.notify_local_change()  # push new writes without waiting for a tick
        return to_js_value({"responses": out, "events": events}, self.ffi)

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
        """Durable on return, and so is the read view (its rows ride in the same transaction
        as the sink's batch)."""
        db = self._db()
        request = getattr(self.storage, "request_view", None)
        if request is not None:
            request()
        db.flush()
        write = getattr(self.storage, "write_view", None)
        if write is not None:
            write()  # nothing was left to flush: the rows go on their own

    def rpc_events(self) -> None:
        """No-op: its batch delivers the subscription events queued by sync."""

    def rpc_network(self, online: Any) -> None:
        """The worker's word on `navigator.onLine` (and its online/offline events)."""
        self.network = bool(online)
        if self.sync is not None:
            self.sync.set_network(self.network)

    def rpc_rebuildView(self) -> int:
        """Rewrite the whole read view (readview.py) in one transaction; the number of
        documents written (0 where the storage keeps no view)."""
        db = self._db()
        rebuild = getattr(self.storage, "rebuild_view", None)
        if rebuild is None:
            return 0
        db.flush()  # every document's blocks stored: the rebuild leaves none pending
        return int(rebuild())

    def rpc_syncStatus(self) -> Any:
        if self.sync is None:
            return self._sync_failed
        return _status_dict(self.sync.status)

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
        self._watch_feed()
        return sid

    def rpc_unsubscribe(self, sid: Any) -> bool:
        sub = self.subs.pop(sid, None)
        if sub is None:
            return False
        sub.close()
        self._watch_feed()
        return True


HOST = Host()
