"""Snapshots: every block and seal plus the materialized CRDT state, for a fast cold open.

Replaying blocks costs a decode and a merge per block; a snapshot also carries each
document's merged state, so opening is one msgpack unpack plus rebuilding Python objects.
Block bytes are always included (history, sync and `verify` need them) and CIDs are
recomputed from them on load, so a snapshot cannot smuggle in a block under a false CID.
The state part is trusted like the log it replaces: storage protects it with a CRC, and
`ostracon verify` re-derives everything from the blocks.

Layout (msgpack array): [3, blocks, seals, actors, collections, info, docs, clock, extra]
- blocks: block bytes in apply order (causal), None for a block pruned by compaction;
  seals: seal bytes.
- extra: {"pruned": [[block idx, cid], ...], "checkpoint": {...} or None,
  "side": [block idx, ...] (blocks outside a quarantined actor's frozen log)}.
- actors / collections: tables; other parts refer to them by index.
- info: per block [collection idx, doc_id, actor idx, seq, height].
- docs: per document [collection idx, doc_id, heads, height, version, min_t, max_t,
  fields, incs, deletes, [live, past], cids, texts] with stamps as [hlc, actor idx, block
  idx]; deletes: block indices of the document's deletes; past: [[block idx, [delete block
  idx, ...]], ...] (core/state.py: the deletes in each change's causal past); a field row's
  `present` is 2 when the field shows its text; texts: [[field, text state
  (core/textcodec.py)], ...] — the compact CRDT state, so opening does not replay keystrokes.
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
from .encoding import _default, _ext_hook
from .errors import CorruptSnapshotError
from .limits import MAX_PORTABLE_INT
from .replica import BlockInfo, Replica
from .state import _ABSENT, _TEXT, DocState
from .textcodec import encode_state, load_state

SNAPSHOT_FORMAT = 3
#: zlib level of snapshot bytes: 6 (zlib's default) is within a few % of 9 at a third of
#: the time on block-heavy data.
SNAPSHOT_ZLIB_LEVEL = 6
#: A decompressed snapshot larger than this is refused as corrupt (a zlib bomb guard).
#: MAX_PORTABLE_INT (2 GiB - 1): zlib's max_length is a C Py_ssize_t, 32-bit in Pyodide, so a
#: larger bound raises OverflowError there on every load; and 2 GiB is beyond what a process
#: with 32-bit WebAssembly memory could load anyway.
MAX_SNAPSHOT_BYTES = MAX_PORTABLE_INT


def dump(replica: Replica) -> bytes:
    """Snapshot bytes of a replica (pending blocks are not part of it: they are not applied)."""
    order = replica.order
    index = {c: i for i, c in enumerate(order)}
    actors = sorted(replica.by_actor)
    aidx = {a: i for i, a in enumerate(actors)}
    cols = sorted(replica.collections)
    cidx = {c: i for i, c in enumerate(cols)}
    blocks = replica.blocks
    info = replica.info

    rows = []
    for c in order:
        i = info[c]
        rows.append([cidx[i.collection], i.doc_id, aidx[i.actor], i.seq, i.height])
    docs = []
    for name in cols:
        for doc_id, d in replica.collections[name].items():
            fields = [[f, s[0], aidx[s[1]], index[s[2]], 2 if v is _TEXT else v is not _ABSENT,
                       None if v is _ABSENT or v is _TEXT else v]
                      for f, (s, v) in d.fields.items()]
            incs = [[f, [[s[0], aidx[s[1]], index[s[2]], delta] for s, delta in lst]]
                    for f, lst in d.incs.items()]
            docs.append([cidx[name], doc_id, sorted(index[h] for h in d.heads), d.height, d.version,
                         d.min_t, d.max_t, fields, incs, sorted(index[c] for c in d.deletes),
                         [d.live, sorted([index[c], sorted(index[x] for x in xs)] for c, xs in d.past.items())],
                         [index[c] for c in d.cids],
                         [[f, encode_state(t)] for f, t in sorted(d.texts.items())]])
    seals = [data for a in actors for _, _, data in replica.seals.get(a, [])]
    pruned = replica.pruned
    extra = {"checkpoint": replica.checkpoint, "side": [i for i, c in enumerate(order) if c in replica.side],
             "pruned": [[i, c] for i, c in enumerate(order) if c in pruned]}
    raw = msgpack.packb([SNAPSHOT_FORMAT, [blocks.get(c) for c in order], seals, actors, cols, rows,
                         docs, replica.clock.last, extra], use_bin_type=True, default=_default)
    return zlib.compress(raw, SNAPSHOT_ZLIB_LEVEL)


def load(replica: Replica, data: bytes) -> None:
    """Fill an empty replica from snapshot bytes. Raises CorruptSnapshotError."""
    try:
        if data[:1] == b"\x78":  # a zlib stream (format 3); a msgpack 9-array starts 0x99
            d = zlib.decompressobj()
            data = d.decompress(data, MAX_SNAPSHOT_BYTES)
            if d.unconsumed_tail or not d.eof:
                raise ValueError("compressed snapshot is truncated or too large")
        v = msgpack.unpackb(data, raw=False, use_list=True, strict_map_key=False, ext_hook=_ext_hook)
        if type(v) is not list or len(v) != 9 or v[0] not in (2, SNAPSHOT_FORMAT):
            raise ValueError("unknown snapshot layout")
        fmt, blocks, seals, actors, cols, rows, docs, last, extra = v
        _load(replica, blocks, seals, actors, cols, rows, docs if fmt == SNAPSHOT_FORMAT else None,
              last, extra)
    except CorruptSnapshotError:
        raise
    except Exception as exc:  # any structural surprise in a snapshot is corruption
        raise CorruptSnapshotError(f"snapshot is malformed: {exc.__class__.__name__}: {exc}") from None


def _load(r: Replica, blocks: Any, seals: Any, actors: Any, cols: Any, rows: Any, docs: Any, last: Any,
          extra: Any) -> None:
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
    else:
        _load_docs(r, actors, cols, docs)
    for data in seals:
        r.add_trusted_seal(data)
    r.clock.observe(last)


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


def _load_docs(r: Replica, actors: list, cols: list, docs: list) -> None:
    order = r.order
    collections = r.collections
    for row in docs:
        if len(row) != 13:
            raise ValueError("document row has the wrong length")
        ci, doc_id, heads, height, version, min_t, max_t, fields, incs, deletes, live_past, cids, texts = row
        name = cols[ci]
        d = DocState(name, doc_id)
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
        shared: dict[tuple, frozenset] = {}  # one object per distinct set, as apply() shares them
        for c, xs in past:
            key = tuple(xs)
            fs = shared.get(key)
            if fs is None:
                fs = shared[key] = frozenset(order[x] for x in xs)
            d.past[order[c]] = fs
        d.cids = [order[c] for c in cids]
        col = collections.get(name)
        if col is None:
            col = collections[name] = {}
        col[doc_id] = d
