"""W1: 10,000 documents x 10 fields, one write per document, then flush.

The same function runs natively, in Pyodide under Node and inside the browser worker, so the
numbers compare the runtimes and not the workloads. Reported as field sets per second (the
the benchmark's "ops") and documents per second.
"""

from __future__ import annotations

import time
from typing import Any

DOCS = 10_000
FIELDS = 10


def w1(db: Any, docs: int = DOCS, fields: int = FIELDS, collection: str = "w1") -> dict:
    col = db.collection(collection)
    names = [f"f{j}" for j in range(fields)]
    t0 = time.perf_counter()
    for i in range(docs):
        col.create({name: i * 31 + j if j % 3 else f"v{i}-{j}" for j, name in enumerate(names)})
    t_writes = time.perf_counter() - t0
    db.flush()
    total = time.perf_counter() - t0
    return {"docs": docs, "fields": fields, "seconds": round(total, 3),
            "writes_seconds": round(t_writes, 3), "ops_per_s": round(docs * fields / total),
            "docs_per_s": round(docs / total)}


def w1_memory(docs: int = DOCS, fields: int = FIELDS) -> dict:
    """W1 on a fresh in-memory database with this runtime's default crypto backend."""
    import ostracon

    db = ostracon.open()
    try:
        return w1(db, docs, fields)
    finally:
        db.close()


def w1_host(docs: int = DOCS, fields: int = FIELDS) -> dict:
    """W1 on the database the worker has open (IndexedDB + WebCrypto)."""
    from ostracon.runtime.browser.host import HOST

    return w1(HOST.db, docs, fields)


def w1_json(kind: str = "memory", docs: int = DOCS, fields: int = FIELDS) -> str:
    import json

    return json.dumps(w1_host(docs, fields) if kind == "host" else w1_memory(docs, fields))


def idb_sink_json(records: int = 10_000, batch: int = 100, size: int = 200) -> str:
    """The IndexedDB storage adapter alone (inside the worker): `records` records of `size`
    bytes appended and flushed `batch` at a time (one transaction per flush, as the sink
    does). Records per second."""
    import json
    import os as _os

    from ostracon.runtime.browser.indexeddb import IndexedDBStorage

    name = f"bench-sink-{_os.urandom(4).hex()}"
    st = IndexedDBStorage.open_sync(name, lock=False)
    payload = [bytes([i % 251]) * size for i in range(batch)]
    t0 = time.perf_counter()
    for _ in range(records // batch):
        st.append(payload)
        st.flush()
    seconds = time.perf_counter() - t0
    st.close()
    return json.dumps({"records": records, "batch": batch, "bytes": size, "seconds": round(seconds, 3),
                       "records_per_s": round(records / seconds)})


def w1_profile_json(kind: str = "host", docs: int = DOCS, fields: int = FIELDS) -> str:
    """W1 with its phases timed (seconds): the sink's signatures, the IndexedDB batches (the
    read view's rows, their conversion to JS, the rest of the batch, the wait for the
    transaction) and the rest of the write path. ``kind`` "memory" profiles a fresh in-memory
    database of this runtime (where the IndexedDB phases are zero)."""
    import json

    import ostracon
    from ostracon.runtime.browser import convert, indexeddb, readview

    spent: dict[str, float] = {}
    counts: dict[str, int] = {}
    undo: list = []

    def timed(owner: Any, attr: str, key: str) -> None:
        fn = getattr(owner, attr)

        def wrapper(*a: Any, **kw: Any) -> Any:
            t = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                spent[key] = spent.get(key, 0.0) + time.perf_counter() - t
                counts[key] = counts.get(key, 0) + 1

        setattr(owner, attr, wrapper)
        undo.append((owner, attr, fn))

    db = ostracon.open() if kind == "memory" else None
    if db is None:
        from ostracon.runtime.browser.host import HOST

        db = HOST.db
    import gc

    gc_started: list[float] = []

    def on_gc(phase: str, info: dict) -> None:
        if phase == "start":
            gc_started.append(time.perf_counter())
        elif gc_started:
            key = f"gc gen{info.get('generation')}"
            spent[key] = spent.get(key, 0.0) + time.perf_counter() - gc_started.pop()
            counts[key] = counts.get(key, 0) + 1

    gc.callbacks.append(on_gc)
    timed(db.sink, "flush", "sink flush (all)")
    timed(db.sink, "sign", "sign (per batch)")
    timed(type(db.crypto), "_call", "crypto bridge calls") if hasattr(type(db.crypto), "_call") else None
    timed(db._engine, "random_bytes", "random_bytes")
    timed(db.feed, "publish", "feed publish")
    timed(db.sink, "_write", "sink batch (storage)")
    if db.sink.on_batch is not None:
        timed(db.sink, "on_batch", "sink on_batch")
    for owner, attr, key in ((readview.ReadView, "rows", "view rows"),
                             (readview.ReadView, "touched", "view touched"),
                             (indexeddb, "to_batch", "view prepare"),
                             (convert.PyodideFfi, "to_js", "view to_js"),
                             (indexeddb.IndexedDBStorage, "append", "idb append"),
                             (indexeddb.IndexedDBStorage, "_committed", "idb committed"),
                             (indexeddb.IndexedDBStorage, "flush", "idb flush"),
                             (indexeddb.IndexedDBStorage, "_batch", "idb batch build (incl. view)"),
                             (indexeddb, "run_sync", "idb transaction wait")):
        timed(owner, attr, key)
    try:
        res = w1(db, docs, fields, collection=f"w1p{len(db.collections())}")
    finally:
        gc.callbacks.remove(on_gc)
        for owner, attr, fn in reversed(undo):
            setattr(owner, attr, fn)
        if kind == "memory":
            db.close()
    res["phases"] = {k: [round(v, 3), counts[k]] for k, v in sorted(spent.items())}
    return json.dumps(res)


def w1_cprofile_json(kind: str = "host", docs: int = DOCS, fields: int = FIELDS, top: int = 40) -> str:
    """W1 under cProfile: the `top` functions by own time (seconds) and call counts."""
    import cProfile
    import json
    import pstats

    import ostracon

    db = ostracon.open() if kind == "memory" else None
    if db is None:
        from ostracon.runtime.browser.host import HOST

        db = HOST.db
    prof = cProfile.Profile()
    prof.enable()
    try:
        res = w1(db, docs, fields, collection=f"w1c{len(db.collections())}")
    finally:
        prof.disable()
        if kind == "memory":
            db.close()
    st = pstats.Stats(prof)
    rows = sorted(st.stats.items(), key=lambda kv: -kv[1][2])[:top]  # type: ignore[attr-defined]
    res["top"] = [[f"{fn[0].rsplit('/', 2)[-1]}:{fn[1]}:{fn[2]}", round(v[2], 3), round(v[3], 3), v[1]]
                  for fn, v in rows]
    return json.dumps(res)
