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
