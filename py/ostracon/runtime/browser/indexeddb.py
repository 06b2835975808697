"""IndexedDB storage for the browser (Pyodide only).

Design: **preload + write-behind, with a blocking flush through JSPI.**

IndexedDB is asynchronous; the `Storage` contract is synchronous. We bridge the two like this:

- `open` is async (``await IndexedDBStorage.open(name)``): it reads the whole database in one
  read-only transaction (records, the newest snapshot, meta) into memory. Reads
  (`records`, `load_snapshot`, `get_meta`, `last_position`) are then served from memory and
  never wait for I/O, which is what the engine expects of reads. The worker starts that read
  (under the writer lock) as soon as a page asks to open, while the interpreter starts, and
  `open_sync` takes it (web/bridge.js idbPrefetch); a zlib snapshot comes inflated by the
  browser's native zlib too (`take_inflated_snapshot`).
- `append` / `set_meta` only queue in memory and return at once.
- `flush` commits everything queued in ONE read-write transaction and returns only after the
  transaction's `oncomplete` (the browser's durability acknowledgement). It blocks the Python
  caller with `pyodide.ffi.run_sync`, which needs JS Promise Integration (JSPI): on in
  Chromium, and in Node 20 with ``--experimental-wasm-stack-switching``. Python must have been
  entered through `runPythonAsync` or `PyProxy.callPromising` (the worker does this for every
  RPC). Without JSPI, `flush` raises StorageError; async code can always use
  ``await storage.flush_async()`` instead.
- `write_snapshot` and `compact` are durable on return in the same way (one transaction each,
  carrying any queued records with it, so a snapshot never refers to records that are not
  stored).

Why not one IndexedDB transaction per `append`? ~1,100 transactions/s versus 9,000-15,000
records/s at 100-1,000 per transaction (PLATFORM.md): the engine's sink already batches, so one
transaction per flush is the natural unit. Inside it, the batch's records go into one row
(a run of consecutive positions, `RUN_RECORDS` at most): IndexedDB costs per put, not per byte,
so this is ~10x the records/s of one put per record. Why not read through to IndexedDB on each
`records()` call? It would need a JSPI switch per read; the engine reads the log once at open
and then works from memory anyway.

Failure: a rejected transaction writes nothing (IndexedDB transactions are atomic). The queued
batch stays queued, so a later `flush` retries it; the error is raised typed:
QuotaExceededError → DiskFullError, a closed/blocked database → StorageUnavailableError,
anything else → StorageError.

Layout (object stores created by web/bridge.js): ``records`` position → bytes, or last
position → ``{first, ends, data}`` for a run of consecutive records (web/bridge.js);
``snapshots`` position → bytes; ``meta`` "u/<key>" → bytes for user meta and "s/<name>" for
this adapter's own bookkeeping (the last assigned position, so positions are never reused even
after compaction removed every record); ``view`` [collection, id] → document: the materialized
read view (`readview.py`) once a `ReadView` is attached (`attach_view`). Its rows are not
written with every batch: the transaction after `request_view` carries them (with every record
still queued), `write_view` brings them up to date in steps; until then the view's marker
lags and readers see it as stale.

Single writer: `open` takes an exclusive Web Lock named after the database (released on
`close`, or by the browser when the tab/worker dies); a second writer gets LockedError.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator, Sequence
from typing import Any

from ...core.errors import (
    ClosedError,
    DiskFullError,
    LockedError,
    StorageError,
    StorageUnavailableError,
)
from ...storage.base import OpenReport, Storage, check_keep, check_meta
from . import bridge as _bridge
from .convert import default_ffi
from .readview import VIEW_MARKER, ReadView, ViewRows, marker, parse_marker, to_batch

# Prefix of IndexedDB database names, so an app's own databases never collide with ours.
DB_NAME_PREFIX = "ostracon:"
# Meta keys inside the `meta` store: user keys and this adapter's bookkeeping never collide.
USER_META_PREFIX = "u/"
SYS_LAST_POSITION = "s/last_position"
SYS_FORMAT = "s/format"
# Version of this adapter's layout inside the object stores. 1: one row per record; 2: also
# runs of consecutive records in one row. A version-1 database is read as is and marked 2 by
# its first write (from then on an older adapter refuses it instead of misreading runs).
FORMAT_VERSION = b"2"
READABLE_FORMATS = (b"1", b"2")
# Records per row of the `records` store when a batch is written. IndexedDB's cost is per put
# (~0.1-0.3 ms each: a structured clone and a round trip to the browser's storage process), so
# one row per sink batch (100 records) is what lifts the sink above 10,000 records/s. The
# bound keeps a single row (rewritten whole when compaction cuts through it) small even when
# a long offline stretch flushes at once: 1,000 records of typical block size is < 1 MB.
RUN_RECORDS = 1000


_JS_API: tuple[Any, Any] | None = None


def _js_api() -> tuple[Any, Any]:
    """(JS `Object`, `pyodide.ffi.to_js`), looked up once: reading a property of the worker's
    global scope through Pyodide's `js` module costs ~1 ms in Chromium (µs under Node), too
    much for every batch."""
    global _JS_API
    if _JS_API is None:
        import js
        from pyodide.ffi import to_js

        _JS_API = (js.Object, to_js)
    return _JS_API


def bridge() -> Any:
    """The JS bridge module (this file must import fine natively)."""
    return _bridge.load(StorageUnavailableError)


def js_error_to_storage(e: BaseException, what: str) -> StorageError:
    """Map a rejected bridge promise (JsException) to the storage error hierarchy."""
    name = getattr(e, "name", None)
    if name is None:
        js = getattr(e, "js_error", None)
        name = getattr(js, "name", None) if js is not None else None
    msg = f"{what}: {getattr(e, 'message', None) or e}"
    if name == "QuotaExceededError":
        return DiskFullError(f"{msg} (browser storage quota exceeded)")
    if name in ("StorageUnavailableError", "StorageClosedError"):
        return StorageUnavailableError(msg)
    return StorageError(msg)


def _to_bytes(v: Any) -> bytes:
    """A JS Uint8Array (JsProxy) or Python buffer → bytes."""
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v)
    return v.to_bytes()


def run_blocking(awaitable: Any) -> Any:
    """Wait on a bridge promise inside the suspension gate (see `bridge.run_blocking`)."""
    return _bridge.run_blocking(awaitable, StorageUnavailableError)


def _bridge_for(name: str) -> Any:
    """The bridge, once `name` is known to be a database name."""
    if not isinstance(name, str) or not name:
        raise StorageUnavailableError("IndexedDB database name must be a non-empty string")
    return bridge()


def _check_can_block(what: str, awaitable: Any = None) -> None:
    """Raise unless this Python stack can block on a promise (Pyodide with JSPI)."""
    try:
        from pyodide.ffi import can_run_sync
    except ImportError:
        if hasattr(awaitable, "close"):
            awaitable.close()
        raise StorageUnavailableError(f"{what}: IndexedDB storage runs only under Pyodide") from None

    if not can_run_sync():
        raise StorageError(
            f"{what}: cannot block on IndexedDB here: enter Python through runPythonAsync/"
            "callPromising with JSPI enabled, or use `await flush_async()`"
        )


def _run_sync(awaitable: Any, what: str) -> Any:
    _check_can_block(what, awaitable)
    return run_blocking(awaitable)


class IndexedDBStorage(Storage):
    """Storage on IndexedDB; construct with ``await IndexedDBStorage.open(name)``."""

    def __init__(self, name: str, handle: Any, loaded: Any, release_lock: Any = None) -> None:
        # Use `open`/`open_sync`: the constructor takes the already-loaded database.
        self.name = name
        self._db = handle
        self._release_lock = release_lock
        self._closed = False
        self._records: list[tuple[int, bytes]] = []
        self._snapshot: tuple[bytes, int] | None = None
        self._meta: dict[str, bytes] = {}
        self._pending_records: list[tuple[int, bytes]] = []
        self._pending_meta: dict[str, bytes] = {}
        positions = list(loaded.positions)
        packed = getattr(loaded, "packed", None)
        if packed is not None:
            # The bridge packs every record into one buffer with end offsets: one conversion
            # for the whole log instead of one proxy per record.
            buf = _to_bytes(packed)
            ends = [int(e) for e in loaded.ends]
            if len(ends) != len(positions) or (ends and ends[-1] != len(buf)) \
                    or any(b < a for a, b in zip([0, *ends], ends, strict=False)):
                raise StorageError(f"{name}: the records store came back with inconsistent offsets")
            values: list[Any] = [buf[a:b] for a, b in zip([0, *ends], ends, strict=False)]
        else:
            values = list(loaded.records)
        if len(positions) != len(values):
            raise StorageError(f"{name}: records store returned {len(positions)} keys for {len(values)} values")
        prev = 0
        for pos, val in zip(positions, values, strict=False):
            p = int(pos)
            if p <= prev:
                raise StorageError(f"{name}: record keys out of order at {p}")
            self._records.append((p, _to_bytes(val)))
            prev = p
        snap = getattr(loaded, "snapshot", None)
        # The newest snapshot inflated by the bridge (None: not read through it, or not inflated).
        self._inflated: bytes | None = None
        if snap is not None and hasattr(snap, "data"):  # absent: undefined → None
            self._snapshot = (_to_bytes(snap.data), int(snap.position))
            plain = getattr(snap, "plain", None)  # absent (undefined) unless inflated
            if isinstance(plain, (bytes, bytearray, memoryview)) or hasattr(plain, "to_bytes"):
                self._inflated = _to_bytes(plain)
        for k, v in zip(list(loaded.metaKeys), list(loaded.metaValues), strict=False):
            self._meta[str(k)] = _to_bytes(v)
        fmt = self._meta.get(SYS_FORMAT)
        if fmt is not None and fmt not in READABLE_FORMATS:
            raise StorageUnavailableError(f"{name}: unknown IndexedDB layout version {fmt!r}")
        last_meta = self._meta.get(SYS_LAST_POSITION)
        self._last = max(
            int(last_meta.decode()) if last_meta else 0,
            self._records[-1][0] if self._records else 0,
            self._snapshot[1] if self._snapshot else 0,
        )
        self._durable_last = self._last
        self._view: ReadView | None = None
        self._view_rows: ViewRows | None = None  # rows of the transaction being written
        self._view_settles = False  # ... and whether they leave nothing pending
        self._view_noted = self._last  # records up to here are in the view's `pending`
        self._view_want: int | None = -1  # documents the next transaction writes (-1: none, None: all)
        # Rows in the view store when it was loaded (-1: the bridge did not say).
        vc = getattr(loaded, "viewCount", None)
        self._view_count = int(vc) if isinstance(vc, (int, float)) and not isinstance(vc, bool) else -1
        if fmt != FORMAT_VERSION:
            self._pending_meta[SYS_FORMAT] = FORMAT_VERSION

    # ---- opening -------------------------------------------------------------------------

    @classmethod
    async def open(cls, name: str, *, lock: bool = True) -> IndexedDBStorage:
        """Open (creating if needed) the database `name` and preload it into memory; the
        newest snapshot comes inflated as well (`take_inflated_snapshot`)."""
        b = _bridge_for(name)
        try:
            got = await b.idbOpenLoad(DB_NAME_PREFIX + name, lock)
        except StorageError:
            raise
        except Exception as e:
            raise js_error_to_storage(e, f"open {name}") from None
        return cls._opened(name, got)

    @classmethod
    def open_sync(cls, name: str, *, lock: bool = True) -> IndexedDBStorage:
        """`open` for synchronous callers (needs JSPI, like `flush`). Takes the read the
        worker started ahead when the page asked to open `name` (web/bridge.js idbPrefetch),
        else reads now."""
        b = _bridge_for(name)
        what = f"open {name}"
        _check_can_block(what)
        pending = b.takePrefetched(DB_NAME_PREFIX + name) if lock else None
        if pending is None:
            pending = b.idbOpenLoad(DB_NAME_PREFIX + name, lock)
        try:
            got = _run_sync(pending, what)
        except StorageError:
            raise
        except Exception as e:
            raise js_error_to_storage(e, what) from None
        return cls._opened(name, got)

    @classmethod
    def _opened(cls, name: str, got: Any) -> IndexedDBStorage:
        """The storage over what bridge.js idbOpenLoad resolved to (closed again on failure)."""
        if got.locked:
            raise LockedError(f"{name}: another tab or worker has this database open for writing")
        try:
            return cls(name, got.db, got.loaded, got.release)
        except BaseException as e:
            got.db.close()
            if got.release is not None:
                got.release()
            if isinstance(e, StorageError):
                raise
            raise js_error_to_storage(e, f"load {name}") from None

    @staticmethod
    async def delete(name: str) -> None:
        """Delete the whole database (every record, snapshot and meta value)."""
        try:
            await bridge().idbDelete(DB_NAME_PREFIX + name)
        except StorageError:
            raise
        except Exception as e:
            raise js_error_to_storage(e, f"delete {name}") from None

    # ---- Storage -------------------------------------------------------------------------

    def _check(self) -> None:
        if self._closed:
            raise ClosedError("storage is closed")

    def append(self, records: Sequence[bytes]) -> int:
        self._check()
        batch = []
        pos = self._last
        for rec in records:
            if not isinstance(rec, (bytes, bytearray, memoryview)):
                raise StorageError(f"records must be bytes, not {type(rec).__name__}")
            pos += 1
            batch.append((pos, bytes(rec)))
        # Validate the whole batch before changing anything: append is all or nothing.
        self._records.extend(batch)
        self._pending_records.extend(batch)
        self._last = pos
        return self._last

    def _note_view(self) -> None:
        """Hand the records written since the last call to the view (their documents become
        pending): before records are dropped (compaction) and before rows are computed."""
        rv = self._view
        if rv is None or self._view_noted >= self._last:
            return
        noted = self._view_noted
        rv.note(r for p, r in self.records(noted))
        self._view_noted = self._last

    def _rows_for_view(self, view: ViewRows | None) -> ViewRows | None:
        """View rows for this transaction (None: no rows this time)."""
        if view is not None:
            self._view_settles = self._view is None or self._view.settles(view)
            return view
        rv, want = self._view, self._view_want
        if rv is None or (want is not None and want < 0) or not self.view_lagging():
            return None
        self._note_view()
        rows = rv.rows(limit=want)
        self._view_settles = rv.settles(rows)
        return rows

    def _batch(self, snapshot: tuple[bytes, int] | None = None, drop_upto: int | None = None,
               drop_snapshots_below: int | None = None, view: ViewRows | None = None) -> Any:
        js_object, to_js = _js_api()
        meta = dict(self._pending_meta)
        if self._last != self._durable_last:
            meta[SYS_LAST_POSITION] = str(self._last).encode()
        batch = js_object.new()
        batch.view = None
        self._view_rows = rows = self._rows_for_view(view)
        batch.metaDeleteKeys = None
        if rows is not None:
            if self._view_settles:
                meta[VIEW_MARKER] = marker(self._last)
            elif VIEW_MARKER in self._meta:  # rows beyond the marker: it must not claim them
                batch.metaDeleteKeys = to_js([VIEW_MARKER])
            if rows:
                ffi = default_ffi()
                batch.view = ffi.to_js(to_batch(rows, ffi.null))
        # The records cross as ONE buffer and their end offsets: one conversion per batch
        # instead of one Uint8Array proxy per record (the bridge slices them apart). Positions
        # and offsets cross as Float64Arrays (exact below 2**53): a buffer is copied in one
        # step, where a list is converted element by element (~10x the cost for 100 records).
        recs = self._pending_records
        ends, end = array("d"), 0
        for _, r in recs:
            end += len(r)
            ends.append(end)
        positions = [p for p, _ in recs]
        batch.positions = to_js(array("d", positions))
        batch.packed = to_js(b"".join(r for _, r in recs))
        batch.ends = to_js(ends)
        # Appends assign consecutive positions, so the queue is one run; rows of RUN_RECORDS.
        consecutive = all(b == a + 1 for a, b in zip(positions, positions[1:], strict=False))
        batch.runRecords = RUN_RECORDS if consecutive else 0
        batch.metaKeys = to_js(list(meta))
        batch.metaValues = to_js(list(meta.values()))
        if snapshot is not None:
            s = js_object.new()
            s.data = to_js(snapshot[0])
            s.position = snapshot[1]
            batch.snapshot = s
        else:
            batch.snapshot = None
        batch.dropRecordsUpTo = drop_upto
        batch.dropSnapshotsBelow = drop_snapshots_below
        return batch

    def _committed(self, n_records: int, meta: dict[str, bytes], last: int) -> None:
        del self._pending_records[:n_records]
        for k, v in meta.items():
            if self._pending_meta.get(k) is v:
                del self._pending_meta[k]
        self._durable_last = max(self._durable_last, last)
        rows, self._view_rows = self._view_rows, None
        self._view_want = -1  # the request this transaction answered
        if rows is not None:
            if self._view_settles:
                self._meta[VIEW_MARKER] = marker(last)
            else:
                self._meta.pop(VIEW_MARKER, None)
            if self._view is not None:
                self._view.committed(rows)

    def _write(self, what: str, **kw: Any) -> None:
        n, meta, last = len(self._pending_records), dict(self._pending_meta), self._last
        batch = self._batch(**kw)
        try:
            _run_sync(bridge().idbWrite(self._db, batch), what)
        except StorageError:
            raise
        except Exception as e:
            raise js_error_to_storage(e, f"{what} {self.name}") from None
        self._committed(n, meta, last)

    async def _write_async(self, what: str, **kw: Any) -> None:
        n, meta, last = len(self._pending_records), dict(self._pending_meta), self._last
        batch = self._batch(**kw)
        try:
            await bridge().idbWrite(self._db, batch)
        except StorageError:
            raise
        except Exception as e:
            raise js_error_to_storage(e, f"{what} {self.name}") from None
        self._committed(n, meta, last)

    def _dirty(self) -> bool:
        return bool(self._pending_records or self._pending_meta or self._last != self._durable_last
                    or (self._view_want != -1 and self.view_lagging()))

    # ---- the read view (readview.py) -----------------------------------------------------

    def attach_view(self, view: ReadView, live: int | None = None) -> None:
        """Maintain the read view from now on: the documents later records change are noted,
        and their rows written when asked (`request_view`, `write_view`, `close`). Rebuilds
        the whole view first (one transaction, durable on return) unless `view_current(live)`."""
        self._check()
        self._view = view
        self._view_noted = self._last
        if not self.view_current(live):
            self.rebuild_view()

    def view_lagging(self) -> bool:
        """Does the stored view miss rows for stored or queued records (writes since its
        marker, documents left pending)? False when no view is attached."""
        rv = self._view
        if rv is None:
            return False
        return bool(rv.pending) or self._view_noted < self._last \
            or parse_marker(self._meta.get(VIEW_MARKER)) != self._last

    def view_backlog(self) -> int:
        """Documents (or, not yet noted, records) whose rows the view still needs."""
        rv = self._view
        return 0 if rv is None else len(rv.pending) + max(0, self._last - self._view_noted)

    def request_view(self, limit: int | None = None) -> None:
        """The next transaction (the next `flush`, even with no records queued) also writes
        the rows of up to `limit` pending documents (None: all of them), and moves the marker
        when that leaves none pending. A smaller earlier request is widened, never narrowed."""
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise StorageError(f"view limit must be a positive int or None, not {limit!r}")
        want = self._view_want
        if want is None or (limit is not None and want >= limit):
            return
        self._view_want = limit

    def write_view(self, limit: int | None = None) -> bool:
        """Write the rows of up to `limit` pending documents (None: all) with whatever is
        queued, in one transaction (durable on return). True when the view is current."""
        self._check()
        if self._view is None or not self.view_lagging():
            return self._view is not None
        self.request_view(limit)
        try:
            self._write("view")
        finally:
            self._view_want = -1
        return not self.view_lagging()

    def rebuild_view(self) -> int:
        """Rewrite the whole view from the attached `ReadView` (one transaction, durable on
        return); the number of documents written."""
        self._check()
        if self._view is None:
            raise StorageError(f"{self.name}: no read view is attached")
        self._view_noted = self._last  # the rebuild reads the engine's whole state
        rows = self._view.all_rows()
        self._write("view", view=rows)
        self._view_count = len(rows.puts)
        return len(rows.puts)

    def view_current(self, live: int | None = None) -> bool:
        """Does the stored view reflect every stored record (its marker names the last stored
        position) and, given the engine's number of `live` documents, hold as many rows (a
        store emptied or cut short under the marker is rebuilt, not trusted)?"""
        if parse_marker(self._meta.get(VIEW_MARKER)) != self._durable_last:
            return False
        return live is None or live == self._view_count

    def flush(self) -> None:
        self._check()
        if self._dirty():
            self._write("flush")

    async def flush_async(self) -> None:
        """`flush` for async callers: works without JSPI."""
        self._check()
        if self._dirty():
            await self._write_async("flush")

    def pending(self) -> int:
        """Records appended but not yet acknowledged by IndexedDB."""
        return len(self._pending_records)

    def records(self, after: int = 0) -> Iterator[tuple[int, bytes]]:
        self._check()
        # Snapshot the list: appends during iteration must not change what is yielded.
        recs = self._records
        lo, hi = 0, len(recs)
        while lo < hi:  # first index with position > after
            mid = (lo + hi) // 2
            if recs[mid][0] <= after:
                lo = mid + 1
            else:
                hi = mid
        yield from recs[lo:]

    def last_position(self) -> int:
        return self._last

    def write_snapshot(self, data: bytes, position: int) -> None:
        self._check()
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise StorageError(f"snapshot must be bytes, not {type(data).__name__}")
        if isinstance(position, bool) or not isinstance(position, int) or not 0 <= position <= self._last:
            raise StorageError(f"snapshot position {position} outside 0..{self._last}")
        snap = (bytes(data), int(position))
        # Queued records go in the same transaction: the snapshot never covers records that
        # are not stored.
        self._write("snapshot", snapshot=snap)
        self._snapshot = snap  # the newest written wins (the engine writes them in order)

    def load_snapshot(self) -> tuple[bytes, int] | None:
        self._check()
        return self._snapshot

    def take_inflated_snapshot(self, data: bytes) -> bytes | None:
        """The zlib-inflated form of `data` if it is the snapshot this storage was opened with
        and the bridge inflated it while reading (the browser's zlib is native, the engine's
        is WebAssembly), else None; given once (the engine loads a snapshot once). The bytes
        are checked by whoever loads them, exactly as if the engine had inflated them."""
        plain, self._inflated = self._inflated, None
        snap = self._snapshot
        return plain if snap is not None and snap[0] is data else None

    def get_meta(self, key: str) -> bytes | None:
        self._check()
        k = USER_META_PREFIX + key
        v = self._pending_meta.get(k)
        return v if v is not None else self._meta.get(k)

    def set_meta(self, key: str, value: bytes) -> None:
        self._check()
        v = check_meta(key, value)
        k = USER_META_PREFIX + key
        self._meta[k] = v
        self._pending_meta[k] = v

    def compact(self, position: int, keep_snapshots: int = 1) -> None:
        self._check()
        if check_keep(keep_snapshots) > 1:
            raise StorageError("IndexedDB storage keeps one snapshot; keep_snapshots must be 1")
        if isinstance(position, bool) or not isinstance(position, int) or not 0 <= position <= self._last:
            raise StorageError(f"compact position {position!r} outside 0..{self._last}")
        covered = self._snapshot[1] if self._snapshot is not None else 0
        if covered < position:
            raise StorageError(f"compact({position}) needs a snapshot covering position {position}; "
                               f"the newest covers {covered}")
        self._note_view()  # the view still needs the documents of the records dropped here
        # Queued records that are compacted away need not be written at all (and must not be:
        # the bridge deletes before it puts).
        self._pending_records = [(p, r) for p, r in self._pending_records if p > position]
        # Snapshots older than `position` go; the one covering it (and newer ones) stay.
        self._write("compact", drop_upto=position, drop_snapshots_below=position or None)
        self._records = [(p, r) for p, r in self._records if p > position]

    def open_report(self) -> OpenReport:
        return OpenReport(
            records=len(self._records),
            snapshot_position=self._snapshot[1] if self._snapshot else 0,
            notes=(f"indexeddb:{DB_NAME_PREFIX}{self.name}",),
        )

    def _unlock(self) -> None:
        release, self._release_lock = self._release_lock, None
        if release is None:
            return
        done = release()  # a promise settled once the browser has really released the lock
        from pyodide.ffi import can_run_sync

        if done is not None and can_run_sync():
            try:
                run_blocking(done)  # so a reopen right after close finds the lock free
            except Exception:  # noqa: BLE001 - releasing is best effort; the browser frees it anyway
                pass

    def close(self) -> None:
        """Flush what is queued (when blocking is possible), then close.

        Without JSPI a close cannot wait for IndexedDB: call `await flush_async()` first, or
        queued writes are lost (and reported as a StorageError here).
        """
        if self._closed:
            return
        lost = 0
        try:
            if self._view is not None:
                self.request_view()  # a reopen finds the view current
            if self._dirty():
                from pyodide.ffi import can_run_sync

                if can_run_sync():
                    self._write("close")
                else:
                    lost = len(self._pending_records) + len(self._pending_meta)
        finally:
            self._closed = True
            try:
                bridge().idbClose(self._db)
            finally:
                self._unlock()
        if lost:
            raise StorageError(f"{self.name}: closed with {lost} unflushed writes (no JSPI: use flush_async)")

