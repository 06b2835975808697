"""Snapshots: every block and seal plus the materialized CRDT state, for a fast cold open.

Replaying blocks costs a decode and a merge per block; a snapshot also carries each
document's merged state, so opening is one msgpack unpack plus rebuilding Python objects.
Block bytes are always included (history, sync and `verify` need them) and CIDs are
recomputed from them on load, so a snapshot cannot smuggle in a block under a false CID.
The state part is trusted like the log it replaces: storage protects it with a CRC, and
`ostracon verify` re-derives everything from the blocks.

Layout (msgpack array): [4, blocks, seals, actors, collections, info, docs, clock, extra]
- blocks: block bytes in apply order (causal), None for a block pruned by compaction;
  seals: seal bytes.
- extra: {"pruned": [[block idx, cid], ...], "checkpoint": {...} or None,
  "side": [block idx, ...] (blocks outside a quarantined actor's frozen log)}.
- actors / collections: tables; other parts refer to them by index.
- info: five columns, one entry per block: [collection idx], [doc_id], [actor idx], [seq],
  [height] (flat lists of scalars unpack an order of magnitude faster than one list per block).
- docs: five columns, one entry per document: [collection idx], [doc_id], [live], [deletes],
  [row] where row is the msgpack bytes of [collection idx, doc_id, heads, height, version,
  min_t, max_t, fields, incs, deletes, [live, past], cids, texts] with stamps as [hlc, actor
  idx, block idx]; deletes: block indices of the document's deletes; past: [[block idx,
  [delete block idx, ...]], ...] (core/state.py: the deletes in each change's causal past); a
  field row's `present` is 2 when the field shows its text; texts: [[field, text state
  (core/textcodec.py)], ...] — the compact CRDT state, so opening does not replay keystrokes.
  A row stays bytes until its document is built, so a lazy load (`load(lazy=True)`) unpacks
  only the columns.
Format 3 (info and docs as one list per block and per document, the rows inline) is still read.
Format 2 (which kept one tombstone stamp per document) is read by replaying its blocks: its
state part predates the delete rule of core/state.py.

Bytes: format 3 is stored zlib-compressed (`SNAPSHOT_ZLIB_LEVEL`): a snapshot holds every
block plus the materialized state, and uncompressed it was larger than the log it replaces,
so compaction grew the store. Snapshots stay local (never hashed or synced), so the zlib
version's exact output does not matter. Format 2 snapshots (plain msgpack) are still read.
"""

from __future__ import annotations

import zlib
from typing import Any

import msgpack

from . import cid as cidlib
from .encoding import _ext_hook
from .errors import CorruptSnapshotError
from .limits import MAX_PORTABLE_INT
from .replica import BlockInfo, Replica
from .state import _ABSENT, _TEXT, DocState
from .textcodec import load_state

SNAPSHOT_FORMAT = 4
#: Older layouts `load` still reads (module docstring).
READABLE_FORMATS = (2, 3, SNAPSHOT_FORMAT)
#: zlib level of snapshot bytes: 6 (zlib's default) is within a few % of 9 at a third of
#: the time on block-heavy data.
SNAPSHOT_ZLIB_LEVEL = 6
#: A decompressed snapshot larger than this is refused as corrupt (a zlib bomb guard).
#: MAX_PORTABLE_INT (2 GiB - 1): zlib's max_length is a C Py_ssize_t, 32-bit in Pyodide, so a
#: larger bound raises OverflowError there on every load; and 2 GiB is beyond what a process
#: with 32-bit WebAssembly memory could load anyway.
MAX_SNAPSHOT_BYTES = MAX_PORTABLE_INT


def dump(replica: Replica) -> bytes:
    """Snapshot bytes of a replica (pending blocks are not part of it: they are not applied).
    In one go; `snapshot_encode.SnapshotEncoder` makes the same bytes in bounded steps."""
    from .snapshot_encode import SnapshotEncoder

    return SnapshotEncoder(replica, step_docs=1 << 30, watch=False).run()


def load(replica: Replica, data: bytes, *, lazy: bool = False) -> None:
    """Fill an empty replica from snapshot bytes. Raises CorruptSnapshotError.

    lazy=True: each document's state is built on its first use rather than here (a
    `DocState.deferred`; opening 10,000 documents then costs the unpack and the block table,
    not 10,000 states). The rows are checked for shape here; damage inside a row that only
    building the state finds (a text state, a stamp's index) raises CorruptSnapshotError at
    that first use instead of at load."""
    try:
        if data[:1] == b"\x78":  # a zlib stream (format 3); a msgpack 9-array starts 0x99
            d = zlib.decompressobj()
            data = d.decompress(data, MAX_SNAPSHOT_BYTES)
            if d.unconsumed_tail or not d.eof:
                raise ValueError("compressed snapshot is truncated or too large")
        v = msgpack.unpackb(data, raw=False, use_list=True, strict_map_key=False, ext_hook=_ext_hook)
        if type(v) is not list or len(v) != 9 or v[0] not in READABLE_FORMATS:
            raise ValueError("unknown snapshot layout")
        fmt, blocks, seals, actors, cols, rows, docs, last, extra = v
        if fmt == SNAPSHOT_FORMAT:
            rows, docs = _rows_of(_columns(rows)), _columns(docs)
        elif fmt == 3:  # one row per document, inline: the same parts, taken from the row
            docs = [[r[0] for r in docs], [r[1] for r in docs], [r[10][0] for r in docs],
                    [r[9] for r in docs], docs]
        _load(replica, blocks, seals, actors, cols, rows, docs if fmt != 2 else None, last, extra, lazy)
    except CorruptSnapshotError:
        raise
    except Exception as exc:  # any structural surprise in a snapshot is corruption
        raise CorruptSnapshotError(f"snapshot is malformed: {exc.__class__.__name__}: {exc}") from None


def _load(r: Replica, blocks: Any, seals: Any, actors: Any, cols: Any, rows: Any, docs: Any, last: Any,
          extra: Any, lazy: bool = False) -> None:
    # The arguments are decoded, not yet validated snapshot parts: anything malformed raises.
    if r.blocks or len(rows) != len(blocks):
        raise ValueError("snapshot needs an empty replica and one info row per block")
    compute = cidlib.compute
    pruned = {i: c for i, c in extra["pruned"]}
    order = [compute(b) if b is not None else pruned[i] for i, b in enumerate(blocks)]
    r.order = order
    r.blocks = {c: b for c, b in zip(order, blocks, strict=False) if b is not None}
    r.pruned = set(pruned.values())
    r.checkpoint = extra["checkpoint"]
    info = r.info
    by_actor = r.by_actor
    side = set(extra.get("side", ()))
    for i, (ci, doc_id, ai, seq, height) in enumerate(rows):
        actor = actors[ai]
        c = order[i]
        info[c] = BlockInfo(cols[ci], doc_id, actor, seq, i, height)
        log = by_actor.get(actor)
        if log is None:
            log = by_actor[actor] = []
        if i in side:
            r.mark_side(c, actor, seq)  # a quarantined actor's block outside its frozen log
            continue
        if seq != len(log) + 1:
            raise ValueError(f"actor log out of order at block {i}")
        log.append(c)
    if docs is None:
        _replay_docs(r)
    elif lazy:
        _defer_docs(r, actors, cols, docs)
    else:
        _load_docs(r, actors, cols, docs)
    for data in seals:
        r.add_trusted_seal(data)
    r.clock.observe(last)


def _columns(v: Any) -> list[list]:
    """Five equally long columns (format 4's info and docs)."""
    if type(v) is not list or len(v) != 5 or any(type(c) is not list for c in v) \
            or len({len(c) for c in v}) != 1:
        raise ValueError("snapshot columns are malformed")
    return v


def _rows_of(cols: list[list]) -> list[tuple]:
    return list(zip(*cols, strict=True))


def _row(v: Any) -> list:
    """A document row: inline (format 3) or its msgpack bytes (format 4)."""
    if type(v) is bytes:
        v = msgpack.unpackb(v, raw=False, use_list=True, strict_map_key=False, ext_hook=_ext_hook)
    if type(v) is not list or len(v) != 13:
        raise ValueError("document row has the wrong length")
    return v


def _replay_docs(r: Replica) -> None:
    if r.pruned:
        raise ValueError("a format-2 snapshot with pruned history cannot be upgraded")
    collections = r.collections
    for c in r.order:
        ch = r.change(c)
        docs = collections.setdefault(ch.collection, {})
        d = docs.get(ch.doc_id)
        if d is None:
            d = docs[ch.doc_id] = DocState(ch.collection, ch.doc_id)
        d.apply(c, ch)


def _check_doc(ci: Any, doc_id: Any, live: Any, deletes: Any, cols: list, n: int) -> None:
    if (type(ci) is not int or not 0 <= ci < len(cols) or type(doc_id) is not str or type(live) is not bool
            or type(deletes) is not list or not all(type(c) is int and 0 <= c < n for c in deletes)):
        raise ValueError("document entry is malformed")


def _load_docs(r: Replica, actors: list, cols: list, docs: list) -> None:
    order = r.order
    collections = r.collections
    shared: dict[tuple, frozenset] = {}  # one object per distinct set, as apply() shares them
    for ci, doc_id, live, deletes, raw in zip(*docs, strict=True):
        _check_doc(ci, doc_id, live, deletes, cols, len(order))
        row = _row(raw)
        if row[0] != ci or row[1] != doc_id:
            raise ValueError("document row names another document")
        d = DocState(cols[ci], doc_id)
        _fill(d, row, order, actors, shared)
        col = collections.get(d.collection)
        if col is None:
            col = collections[d.collection] = {}
        col[doc_id] = d


def _defer_docs(r: Replica, actors: list, cols: list, docs: list) -> None:
    order = r.order
    collections = r.collections
    shared: dict[tuple, frozenset] = {}

    def filler(ci: int, doc_id: str, raw: Any) -> Any:
        def fill(d: DocState) -> None:
            try:
                row = _row(raw)
                if row[0] != ci or row[1] != doc_id:
                    raise ValueError("document row names another document")
                _fill(d, row, order, actors, shared)
            except Exception as exc:
                raise CorruptSnapshotError(f"snapshot row of document {d.collection}/{d.doc_id} is malformed: "
                                           f"{exc.__class__.__name__}: {exc}") from None
        return fill

    n = len(order)
    for ci, doc_id, live, deletes, raw in zip(*docs, strict=True):
        _check_doc(ci, doc_id, live, deletes, cols, n)
        name = cols[ci]
        d = DocState.deferred(name, doc_id, live, {order[c] for c in deletes}, filler(ci, doc_id, raw))
        col = collections.get(name)
        if col is None:
            col = collections[name] = {}
        col[doc_id] = d


def _fill(d: DocState, row: list, order: list, actors: list, shared: dict) -> None:
    """Build a document's state from its snapshot row (the layout in the module docstring)."""
    _, _, heads, height, version, min_t, max_t, fields, incs, deletes, live_past, cids, texts = row
    d.heads = {order[h] for h in heads}
    d.height, d.version, d.min_t, d.max_t = height, version, min_t, max_t
    d.fields = {f: ((t, actors[a], order[c]),
                    (_TEXT if present == 2 else v) if present else _ABSENT)
                for f, t, a, c, present, v in fields}
    d.texts = {f: load_state(state) for f, state in texts}
    if any(v is _TEXT and f not in d.texts for f, (_, v) in d.fields.items()):
        raise ValueError("a text field has no text state")
    d.incs = {f: [((t, actors[a], order[c]), delta) for t, a, c, delta in lst] for f, lst in incs}
    d.deletes = {order[c] for c in deletes}
    live, past = live_past
    d.live = live is True
    d.past = {}
    for c, xs in past:
        key = tuple(xs)
        fs = shared.get(key)
        if fs is None:
            fs = shared[key] = frozenset(order[x] for x in xs)
        d.past[order[c]] = fs
    d.cids = [order[c] for c in cids]
