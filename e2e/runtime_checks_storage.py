"""Storage checks of e2e/runtime_checks.py (which lists them in its `CHECKS`): the storage
contract on this runtime's storage adapter, and IndexedDB's row layout (Pyodide only).
Installed next to runtime_checks.py wherever that runs (e2e/node/run.mjs, e2e/test_browser.py).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any


def _in_pyodide() -> bool:
    return sys.platform == "emscripten"


class _Harness:
    """What tests/storage_contract.py expects: `persistent` and `open()` (same store each time)."""

    def __init__(self, persistent: bool, open_fn: Callable[[], Any]) -> None:
        self.persistent = persistent
        self.open = open_fn


def run_storage_contract(prefix: str = "contract") -> list[str]:
    """tests/storage_contract.py (the tests directory is on sys.path: the caller put it there):
    IndexedDBStorage under Pyodide, MemoryStorage natively. Returns the checks passed."""
    import storage_contract as sc

    passed = []
    for i, check in enumerate(sc.CONTRACT):
        if _in_pyodide():
            from ostracon.runtime.browser.indexeddb import IndexedDBStorage

            name = f"{prefix}-{time.time_ns()}-{i}"
            h = _Harness(True, lambda name=name: IndexedDBStorage.open_sync(name))
        else:
            from ostracon.storage.memory import MemoryStorage

            h = _Harness(False, MemoryStorage)
        try:
            check(h)
        except BaseException as e:
            raise AssertionError(f"{check.__name__}: {type(e).__name__}: {e}") from e
        passed.append(check.__name__)
    return passed


def idb_layout(tests_dir: str | None = None, prefix: str = "layout") -> dict:
    """IndexedDB rows (Pyodide only): a format-1 database (one row per record) reads and
    upgrades; a batch is stored as one run row; compaction through a run keeps its tail; a
    damaged run refuses to open."""
    if not _in_pyodide():
        return {}
    import js
    from pyodide.ffi import run_sync, to_js

    from ostracon.core.errors import StorageError
    from ostracon.runtime.browser import indexeddb as idb

    b = idb.bridge()
    name = f"{prefix}-{time.time_ns()}"

    def raw_write(**fields: Any) -> None:
        handle = run_sync(b.idbOpen(idb.DB_NAME_PREFIX + name))
        try:
            run_sync(b.idbWrite(handle, to_js(fields, dict_converter=js.Object.fromEntries)))
        finally:
            b.idbClose(handle)

    # Format 1: one row per record, as an older adapter wrote it.
    raw_write(positions=[1, 2, 3], records=[b"a", b"bb", b""], metaKeys=[idb.SYS_FORMAT], metaValues=[b"1"])
    s = idb.IndexedDBStorage.open_sync(name, lock=False)
    if list(s.records()) != [(1, b"a"), (2, b"bb"), (3, b"")]:
        raise AssertionError(f"format-1 rows read back as {list(s.records())!r}")
    s.append([b"r%d" % i for i in range(4, 14)])
    s.flush()
    s.close()
    s = idb.IndexedDBStorage.open_sync(name, lock=False)
    if [p for p, _ in s.records()] != list(range(1, 14)) or s._meta.get(idb.SYS_FORMAT) != idb.FORMAT_VERSION:
        raise AssertionError("format-1 database not upgraded in place")
    # Compaction through the run 4..13 keeps 9..13.
    s.write_snapshot(b"S8", 8)
    s.compact(8)
    s.close()
    s = idb.IndexedDBStorage.open_sync(name, lock=False)
    if list(s.records()) != [(p, b"r%d" % p) for p in range(9, 14)]:
        raise AssertionError(f"after compact(8): {list(s.records())!r}")
    s.close()
    # A run whose offsets do not match its bytes must not read as fewer records.
    bad = to_js({"first": 14, "ends": [1, 5], "data": b"xyz"}, dict_converter=js.Object.fromEntries)
    handle = run_sync(b.idbOpen(idb.DB_NAME_PREFIX + name))
    try:
        tx = handle.transaction(to_js(["records"]), "readwrite")
        tx.objectStore("records").put(bad, 15)
        run_sync(js.Promise.new(lambda res, rej: setattr(tx, "oncomplete", lambda *_: res(True))))
    finally:
        b.idbClose(handle)
    try:
        idb.IndexedDBStorage.open_sync(name, lock=False)
    except StorageError as e:
        refused = type(e).__name__
    else:
        raise AssertionError("a damaged run was read")
    return {"damaged": refused, "inflated": _idb_inflated_snapshot(f"{name}-z")}


def _idb_inflated_snapshot(name: str) -> dict:
    """The bridge inflates a zlib snapshot while reading (given once, only for that snapshot's
    bytes), leaves other bytes and a damaged stream to the engine, and the worker's read
    ahead (idbPrefetch) is what the next open of that name takes."""
    import zlib

    from ostracon.runtime.browser import indexeddb as idb

    b = idb.bridge()
    plain = bytes(range(256)) * 64
    out = {}
    for label, data, want in (("zlib", zlib.compress(plain), plain), ("raw", b"\x78not zlib", None),
                              ("cut", zlib.compress(plain)[:-9], None), ("other", b"S1", None)):
        s = idb.IndexedDBStorage.open_sync(name)
        s.append([b"r"])
        s.write_snapshot(data, s.last_position())
        s.close()
        b.idbPrefetch(name)
        s = idb.IndexedDBStorage.open_sync(name)
        try:
            if b.takePrefetched(idb.DB_NAME_PREFIX + name) is not None:
                raise AssertionError("the open did not take the read ahead")
            stored = s.load_snapshot()[0]
            if stored != data:
                raise AssertionError(f"{label}: the snapshot read back as other bytes")
            got = s.take_inflated_snapshot(stored)
            if got != want or s.take_inflated_snapshot(stored) is not None:
                raise AssertionError(f"{label}: inflated as {None if got is None else len(got)} bytes")
            out[label] = None if got is None else len(got)
        finally:
            s.close()
    return out
