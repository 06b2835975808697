"""Snapshots: every block and seal plus the materialized CRDT state, for a fast cold open.

Replaying blocks costs a decode and a merge per block; a snapshot also carries each
document's merged state, so opening is one msgpack unpack plus rebuilding Python objects.
Block bytes are always included (history, sync and `verify` need them) and CIDs are
recomputed from them on load, so a snapshot cannot smuggle in a block under a false CID.
The state part is verified in two tiers, so a lazy load stays lazy: the index (seals,
tables, block info and docs columns with each row's digest, clock, extra) is hashed whole
at every load (`index_digest`), and each document's row is checked against its digest
(`row_digest`) before it is used, at load or, lazily, at the document's first use. A row
damaged where storage keeps no checksum (IndexedDB) is thus an error, not a wrong value,
and it costs that document only; a row is also checked to agree with its docs columns
(live, deletes) when it is built. `ostracon verify` re-derives everything from the blocks.

Verification at open is eager, once per block: every CID is recomputed from its bytes
(`cid.compute_many`, one sha256 each, no Python step per block), and the seal chain then
checks those CIDs (db/verification.py), so a body changed on disk fails the open. It is not
deferred to a block's first use because the replica indexes everything by CID (apply order,
block info, actor logs, the body table): the CIDs must exist at open, and a CID taken from
the snapshot instead of computed would be trusted data. One digest over the whole snapshot
would need a signature by the device key made at compaction (a format change) and saves
little: hashing 10,000 blocks one by one costs ~1.5x hashing their concatenation.

Opening does no Python-level step per block or per document where a C-level `map`/`zip`/
`dict` does the same (in Pyodide an interpreted step costs several times its native cost):
the info columns become `BlockInfo`s and actor logs in bulk (one stepwise pass only when
side blocks exist or a log is out of order, to name the block), and the document columns
are type- and range-checked as whole columns.

Layout (msgpack array): [6, blocks, seals, actors, collections, info, docs, clock, extra]
- blocks: block bytes in apply order (causal), None for a block pruned by compaction;
  seals: seal bytes.
- extra: {"pruned": [[block idx, cid], ...], "checkpoint": {...} or None,
  "side": [block idx, ...] (blocks outside a quarantined actor's frozen log),
  "index": `index_digest` of every part but the block bodies and the rows}.
- actors / collections: tables; other parts refer to them by index.
- info: five columns, one entry per block: [collection idx], [doc_id], [actor idx], [seq],
  [height] (flat lists of scalars unpack an order of magnitude faster than one list per block).
- docs: [[collection idx], [doc_id], [live], deletes, rows, digests]: three columns with one
  entry per document, then
  - deletes: [[document position, [block idx, ...]], ...] for the documents that have a delete
    (the block indices of its deletes), in docs order, each document once;
  - rows: [blob, ends], every document's row bytes concatenated in docs order and each row's
    end offset in the blob as a 4-byte little-endian unsigned int (`join_rows`/`split_rows`);
  - digests: `row_digest` of each row, ROW_DIGEST_BYTES each, concatenated in docs order.
  A row is the msgpack bytes of [collection idx, doc_id, heads, height, version, min_t, max_t,
  fields, incs, deletes, [live, past], cids, texts] with stamps as [hlc, actor idx, block idx];
  deletes: block indices of the document's deletes; past: [[block idx, [delete block idx,
  ...]], ...] (core/state.py: the deletes in each change's causal past); a field row's
  `present` is 2 when the field shows its text; texts: [[field, text state
  (core/textcodec.py)], ...] — the compact CRDT state, so opening does not replay keystrokes.
  A row stays in the blob until its document is built, so a lazy load (`load(lazy=True)`)
  unpacks only the columns: three byte strings instead of a row, a digest and a list of
  deletes per document (10,000 documents: 30,000 fewer objects to make at open).
Format 5 kept the same with one entry per document in every docs column (a list of deletes
each, a row's bytes each, a digest each); it is read as it is, lazily, and the first compaction
after such an open writes format 6 (db/maintenance.py `snapshot_outdated`).
Formats 4 (format 5 without the digest column) and 3 (info and docs as one list per block and
per document, the rows inline) are still read: their rows have nothing to be checked against,
so the documents are rebuilt by replaying the blocks, as for format 2 (a slower open until a
compaction writes a format-6 snapshot). If blocks
were pruned, replay cannot rebuild the state: then every row is built and checked at load,
trusted as those formats were.
Format 2 (which kept one tombstone stamp per document) is read by replaying its blocks: its
state part predates the delete rule of core/state.py.

Bytes: format 3 is stored zlib-compressed (`SNAPSHOT_ZLIB_LEVEL`): a snapshot holds every
block plus the materialized state, and uncompressed it was larger than the log it replaces,
so compaction grew the store. Snapshots stay local (never hashed or synced), so the zlib
version's exact output does not matter. Format 2 snapshots (plain msgpack) are still read.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections import Counter, deque
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from itertools import accumulate, chain, compress, repeat
from typing import Any, NamedTuple

import msgpack

from . import cid as cidlib
from .encoding import _default, _ext_hook
from .errors import CorruptSnapshotError
from .limits import MAX_PORTABLE_INT
from .replica import BlockInfo, Replica
from .state import _ABSENT, _NO_DELETES, _TEXT, DocState
from .textcodec import load_state

SNAPSHOT_FORMAT = 6
#: Older layouts `load` still reads (module docstring).
READABLE_FORMATS = (2, 3, 4, 5, SNAPSHOT_FORMAT)
#: Layouts whose index is checked against its digest (`index_digest`).
INDEXED_FORMATS = (5, SNAPSHOT_FORMAT)
#: Bytes kept of a row's sha256 (`row_digest`). The digest guards against damage (a flipped
#: bit in storage without a checksum, IndexedDB's, or a row rewritten short), not against a
#: forger: one who can rewrite the snapshot rewrites its digests too, and a key to make them
#: a MAC would live in the same storage. 8 bytes miss a damaged row with probability 2^-64
#: (storage frames settle for a 32-bit CRC); digests do not compress, and at 10,000 documents
#: of 10 fields each 8 bytes add ~10% to the compressed snapshot where 16 add ~18%.
ROW_DIGEST_BYTES = 8
#: zlib level of snapshot bytes: 6 (zlib's default) is within a few % of 9 at a third of
#: the time on block-heavy data.
SNAPSHOT_ZLIB_LEVEL = 6
#: A decompressed snapshot larger than this is refused as corrupt (a zlib bomb guard).
#: MAX_PORTABLE_INT (2 GiB - 1): zlib's max_length is a C Py_ssize_t, 32-bit in Pyodide, so a
#: larger bound raises OverflowError there on every load; and 2 GiB is beyond what a process
#: with 32-bit WebAssembly memory could load anyway.
MAX_SNAPSHOT_BYTES = MAX_PORTABLE_INT
#: A row's end offset in the rows part of format 6: an unsigned 32-bit little-endian int (a
#: snapshot is at most MAX_SNAPSHOT_BYTES, so every offset fits).
_END = struct.Struct("<I")


def join_rows(rows: list[bytes]) -> list[bytes]:
    """The rows part of format 6 for document rows in docs order: [blob, ends], the rows
    concatenated and each one's end offset in the blob (`_END`, 4 bytes each)."""
    return [b"".join(rows), b"".join(map(_END.pack, accumulate(map(len, rows))))]


def split_rows(part: Any) -> list[bytes]:
    """The document rows of a format-6 rows part (`join_rows`), in docs order. Raises
    ValueError for a part of another shape or whose offsets do not cut the blob."""
    blob, ends = _rows_part(part)
    offsets = [e for (e,) in _END.iter_unpack(ends)]
    if offsets != sorted(offsets) or (offsets and offsets[-1] != len(blob)):
        raise ValueError("snapshot row offsets do not cut the rows")
    return [blob[a:b] for a, b in zip([0, *offsets][:len(offsets)], offsets, strict=True)]


def _rows_part(part: Any) -> tuple[bytes, bytes]:
    if type(part) is not list or len(part) != 2 or type(part[0]) is not bytes or type(part[1]) is not bytes \
            or len(part[1]) % _END.size:
        raise ValueError("the snapshot's rows part is malformed")
    return part[0], part[1]


def dump(replica: Replica) -> bytes:
    """Snapshot bytes (format `SNAPSHOT_FORMAT`) of a replica (pending blocks are not part
    of it: they are not applied).
    In one go; `snapshot_encode.SnapshotEncoder` makes the same bytes in bounded steps."""
    from .snapshot_encode import SnapshotEncoder

    return SnapshotEncoder(replica, step_docs=1 << 30, watch=False).run()


def load(replica: Replica, data: bytes, *, lazy: bool = False) -> int:
    """Fill an empty replica from snapshot bytes. Raises CorruptSnapshotError.

    lazy=True: each document's state is built on its first use rather than here (a
    `DocState.deferred_many` state holding its row's bytes; opening 10,000 documents then costs the
    unpack, the CIDs and the block table, not 10,000 states). The columns are checked here;
    damage inside a row, which only building the state finds (a row whose digest does not
    match, a truncated row, a row naming another document, a text state, a stamp's index),
    raises CorruptSnapshotError at that first use (and again at every later use) instead of
    at load. Block bodies are verified here in both modes (module docstring). Returns the
    snapshot's format (older formats are rebuilt or built eagerly: module docstring)."""
    try:
        if data[:1] == b"\x78":  # a zlib stream (format 3); a msgpack 9-array starts 0x99
            d = zlib.decompressobj()
            data = d.decompress(data, MAX_SNAPSHOT_BYTES)
            if d.unconsumed_tail or not d.eof:
                raise ValueError("compressed snapshot is truncated or too large")
        v, stored_index = _unpack(data)
        if type(v) is not list or len(v) != 9 or type(v[0]) is not int or v[0] not in READABLE_FORMATS:
            raise ValueError("unknown snapshot layout")
        fmt, blocks, seals, actors, cols, rows, docs, last, extra = v
        info = _columns(rows, 5) if fmt >= 4 else _columns_of_rows(rows)
        if fmt in INDEXED_FORMATS:
            if type(extra) is not dict or stored_index is None or extra.get("index") != stored_index(extra):
                raise ValueError("the snapshot's index does not match its digest (damaged)")
            docs = _docs_of_format_6(docs) if fmt == 6 else _docs_of_format_5(_columns(docs, 6))
        elif fmt == 4:  # no digests: a legacy state part (module docstring)
            docs = _legacy_docs(*_columns(docs, 5))
        elif fmt == 3:  # one row per document, inline: the same parts, taken from the row
            docs = _legacy_docs([r[0] for r in docs], [r[1] for r in docs], [r[10][0] for r in docs],
                                [r[9] for r in docs], docs)
        _load(replica, blocks, seals, actors, cols, info, docs if fmt != 2 else None, last, extra, lazy)
        return int(fmt)
    except CorruptSnapshotError:
        raise
    except Exception as exc:  # any structural surprise in a snapshot is corruption
        raise CorruptSnapshotError(f"snapshot is malformed: {exc.__class__.__name__}: {exc}") from None


_UNPACK_OPTIONS: dict[str, Any] = {"raw": False, "use_list": True, "strict_map_key": False, "ext_hook": _ext_hook}


def _unpack(data: bytes) -> tuple[Any, Callable[[dict], bytes] | None]:
    """The snapshot's value and, for a format-5 or 6 layout, `index(extra)`: its `index_digest`
    taken from the stored bytes of the index's parts instead of packing them again (the
    pack was most of the check's cost). The two are equal whenever the stored parts are
    msgpack's canonical form of their values, which is what `snapshot_encode` writes (one
    `packb`, in pieces); a part stored in any other form, damaged or not, fails the check,
    as a changed value does. None for other layouts (the caller then refuses formats 5 and 6)."""
    size = max(len(data), 1)
    u = msgpack.Unpacker(None, max_buffer_size=size, **_UNPACK_OPTIONS)
    u.feed(data)
    try:
        n = u.read_array_header()
        fmt = u.unpack() if n == 9 else None
    except (msgpack.OutOfData, ValueError, TypeError):
        n, fmt = -1, None
    if n != 9 or type(fmt) is not int or fmt not in INDEXED_FORMATS:
        return msgpack.unpackb(data, **_UNPACK_OPTIONS), None
    spans: list[tuple[int, int]] = []  # where each part hashed by index_digest is stored

    def part() -> Any:
        at = u.tell()
        v = u.unpack()
        spans.append((at, u.tell()))
        return v

    blocks = u.unpack()
    seals, actors, cols, info = part(), part(), part(), part()
    if u.read_array_header() != 6:
        raise ValueError("snapshot columns are malformed")
    docs = [part(), part(), part(), part(), u.unpack(), part()]
    clock = part()
    extra = u.unpack()
    if u.tell() != len(data):
        raise ValueError("snapshot has trailing bytes")
    packer = msgpack.Packer(use_bin_type=True, default=_default)
    view = memoryview(data)

    def index(extra: dict) -> bytes:
        h = hashlib.sha256(packer.pack_array_header(8))
        for i, (a, b) in enumerate(spans):
            if i == 4:  # docs[:4] is packed as an array of its own
                h.update(packer.pack_array_header(4))
            h.update(view[a:b])
        h.update(packer.pack({k: v for k, v in extra.items() if k != "index"}))
        return h.digest()

    return [fmt, blocks, seals, actors, cols, info, docs, clock, extra], index


def _load(r: Replica, blocks: Any, seals: Any, actors: Any, cols: Any, info: list[list], docs: Any,
          last: Any, extra: Any, lazy: bool = False) -> None:
    # The arguments are decoded, not yet validated snapshot parts: anything malformed raises.
    # Per-block and per-document work is done by C-level map/zip/dict/set calls wherever a
    # rule allows (in Pyodide a Python-level loop step costs several times its native cost,
    # and opening 10,000 documents is dominated by them).
    ci_col, doc_col, ai_col, seq_col, height_col = info
    if r.blocks or type(blocks) is not list or len(ci_col) != len(blocks):
        raise ValueError("snapshot needs an empty replica and one info row per block")
    if type(actors) is not list or type(cols) is not list or len(set(actors)) != len(actors) \
            or len(set(cols)) != len(cols):
        raise ValueError("snapshot tables are malformed (or name an actor or collection twice)")
    pruned = {i: c for i, c in extra["pruned"]}
    if pruned:
        compute = cidlib.compute
        order = [compute(b) if b is not None else pruned[i] for i, b in enumerate(blocks)]
        r.blocks = {c: b for c, b in zip(order, blocks, strict=False) if b is not None}
    else:  # every body is present: each one's CID is recomputed from its bytes
        order = cidlib.compute_many(blocks)
        r.blocks = dict(zip(order, blocks, strict=True))
    r.order = order
    r.pruned = set(pruned.values())
    r.checkpoint = extra["checkpoint"]
    n = len(order)
    side = set(extra.get("side", ()))
    _check_indices(ci_col, len(cols), "a block's collection")
    _check_indices(ai_col, len(actors), "a block's actor")
    if blocks and not set(map(type, chain(seq_col, height_col))) <= {int}:
        raise ValueError("a block's sequence number or height is not an int")
    # One collection or one actor (a device's own notes): the column is one value repeated.
    actor_col = [actors[0]] * n if len(actors) == 1 else list(map(actors.__getitem__, ai_col))
    col_of = repeat(cols[0], n) if len(cols) == 1 else map(cols.__getitem__, ci_col)
    r.info = dict(zip(order, map(tuple.__new__, repeat(BlockInfo), zip(
        col_of, doc_col, actor_col, seq_col, range(n), height_col, strict=True)), strict=True))
    if side or not _fill_logs(r, order, ai_col, actor_col, seq_col):
        _fill_logs_stepwise(r, order, actor_col, seq_col, side)
    if docs is None or (docs.digests is None and not r.pruned):
        _replay_docs(r)  # no state part, or one without digests: rebuilt from the verified blocks
    else:
        _load_docs(r, actors, cols, docs, lazy and docs.digests is not None)
    for data in seals:
        r.add_trusted_seal(data)
    r.clock.observe(last)



def _columns_of_rows(rows: Any) -> list[list]:
    """Formats 2 and 3 kept one info row per block: the same five columns."""
    if type(rows) is not list or any(type(x) is not list or len(x) != 5 for x in rows):
        raise ValueError("block info rows are malformed")
    return [list(c) for c in zip(*rows, strict=True)] if rows else [[] for _ in range(5)]


def _check_indices(col: Any, size: int, what: str) -> None:
    """Every entry of `col` is an int in [0, size) (a negative index would pick from the end)."""
    if col and (not set(map(type, col)) <= {int} or min(col) < 0 or max(col) >= size):
        raise ValueError(f"{what} index is malformed")


def _fill_logs(r: Replica, order: list, ai_col: list, actor_col: list, seq_col: list) -> bool:
    """Each actor's log (`Replica.by_actor`, CIDs by sequence number) in C-level steps; False
    when an actor's sequence numbers are not exactly 1, 2, 3 ... in apply order (the stepwise
    path then names the first block out of order)."""
    if ai_col and min(ai_col) == max(ai_col):  # one actor (one device's database): no sort
        if seq_col != list(range(1, len(seq_col) + 1)):
            return False
        r.by_actor[actor_col[0]] = list(order)
        return True
    by_pos = sorted(range(len(order)), key=ai_col.__getitem__)  # stable: apply order per actor
    starts: dict[int, int] = {}
    at = 0
    counts = Counter(ai_col)
    for a in sorted(counts):
        starts[a] = at
        at += counts[a]
    by_actor = r.by_actor
    for a in dict.fromkeys(ai_col):  # actors in order of their first block, like apply()
        k = counts[a]
        mine = by_pos[starts[a]:starts[a] + k]
        if list(map(seq_col.__getitem__, mine)) != list(range(1, k + 1)):
            r.by_actor = {}
            return False
        by_actor[actor_col[mine[0]]] = list(map(order.__getitem__, mine))
    return True


def _fill_logs_stepwise(r: Replica, order: list, actor_col: list, seq_col: list, side: set) -> None:
    """The actor logs one block at a time: with side blocks (a quarantined actor's blocks
    outside its frozen log), and to name the first block out of order."""
    by_actor = r.by_actor = {}
    for i, (actor, seq) in enumerate(zip(actor_col, seq_col, strict=True)):
        c = order[i]
        log = by_actor.get(actor)
        if log is None:
            log = by_actor[actor] = []
        if i in side:
            r.mark_side(c, actor, seq)  # a quarantined actor's block outside its frozen log
            continue
        if seq != len(log) + 1:
            raise ValueError(f"actor log out of order at block {i}")
        log.append(c)


def _columns(v: Any, k: int) -> list[list]:
    """`k` equally long columns (info and docs of formats 4 and 5)."""
    if type(v) is not list or len(v) != k or any(type(c) is not list for c in v) \
            or len({len(c) for c in v}) != 1:
        raise ValueError("snapshot columns are malformed")
    return v


def _row(v: Any) -> list:
    """A document row: inline (format 3) or its msgpack bytes (formats 4 and 5)."""
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


def row_digest(row: bytes) -> bytes:
    """The digest a snapshot (formats 5 and 6) keeps of a document's row bytes: sha256 (FIPS 180-4),
    its first `ROW_DIGEST_BYTES` bytes."""
    return hashlib.sha256(row).digest()[:ROW_DIGEST_BYTES]


def index_digest(seals: list, actors: list, cols: list, info: list[list], docs: list, clock: Any,
                 extra: dict) -> bytes:
    """sha256 over a snapshot's index: every part but the block bodies (verified by their
    CIDs) and the rows (by their own digests, so a damaged row costs its document only),
    i.e. the seals, tables, block info columns, docs parts but the rows (with the row
    digests), the clock and `extra` without "index", packed as one msgpack array. Checked at
    every load of formats 5 and 6, so what a lazy state answers from before its row is built (live,
    deletes) is verified too. A C-level pack and hash: `bench/bench_snapshot_verify.py`."""
    rest = {k: v for k, v in extra.items() if k != "index"}
    return hashlib.sha256(msgpack.packb([seals, actors, cols, info, docs[:4], docs[5], clock, rest],
                                        use_bin_type=True, default=_default)).digest()


class _DocsPart(NamedTuple):
    """A snapshot's docs part, whatever its format: the columns, the deletes of the documents
    that have one (docs position -> block indices), the rows (a list in docs order, inline or
    bytes, for formats 3-5; format 6's (blob, ends)) and the rows' digests
    (ROW_DIGEST_BYTES each, in docs order; None for rows without digests, formats 3 and 4)."""

    ci: list
    ids: list
    live: list
    deletes: dict[int, list]
    rows: list | tuple[bytes, bytes]
    digests: bytes | None


def _docs_of_format_6(v: Any) -> _DocsPart:
    if type(v) is not list or len(v) != 6 or any(type(c) is not list for c in v[:4]) \
            or not len(v[0]) == len(v[1]) == len(v[2]):
        raise ValueError("snapshot columns are malformed")
    ci, ids, live, dels, rows, dig = v
    blob, ends = _rows_part(rows)
    n = len(ids)
    if len(ends) != n * _END.size or (n and _END.unpack_from(ends, len(ends) - _END.size)[0] != len(blob)):
        raise ValueError("the snapshot's rows part does not match its docs columns")
    if type(dig) is not bytes or len(dig) != n * ROW_DIGEST_BYTES:
        raise ValueError("the snapshot's row digests do not match its docs columns")
    if any(type(x) is not list or len(x) != 2 or type(x[0]) is not int or type(x[1]) is not list or not x[1]
           for x in dels):
        raise ValueError("a document's deletes are malformed")
    positions = [x[0] for x in dels]
    if positions != sorted(set(positions)) or (positions and (positions[0] < 0 or positions[-1] >= n)):
        raise ValueError("the documents with deletes are not listed once each, in docs order")
    return _DocsPart(ci, ids, live, dict(dels), (blob, ends), dig)


def _docs_of_format_5(v: list[list]) -> _DocsPart:
    ci, ids, live, dels, raw, dig = v
    if raw and not set(map(type, raw)) <= {bytes}:
        raise ValueError("a document's row is not bytes")
    if dig and (not set(map(type, dig)) <= {bytes} or set(map(len, dig)) != {ROW_DIGEST_BYTES}):
        raise ValueError("a document's row digest is malformed")
    legacy = _legacy_docs(ci, ids, live, dels, raw)
    return _DocsPart(ci, ids, live, legacy.deletes, raw, b"".join(dig))


def _legacy_docs(ci: list, ids: list, live: list, dels: list, rows: list) -> _DocsPart:
    """Formats 3-5: a list of deletes per document."""
    if dels and not set(map(type, dels)) <= {list}:
        raise ValueError("a document's deletes are not a list")
    return _DocsPart(ci, ids, live, {i: dels[i] for i in compress(range(len(dels)), dels)}, rows, None)


def _check_docs(part: _DocsPart, cols: list, n: int) -> None:
    """The document columns (collection, id, live, deletes) are well typed, in range and as
    long as each other."""
    k = len(part.ids)
    if not len(part.ci) == len(part.live) == k or (type(part.rows) is list and len(part.rows) != k):
        raise ValueError("the docs columns differ in length")
    _check_indices(part.ci, len(cols), "a document's collection")
    if part.ids and not set(map(type, part.ids)) <= {str}:
        raise ValueError("a document id is not a str")
    if part.live and not set(map(type, part.live)) <= {bool}:
        raise ValueError("a document's live flag is not a bool")
    _check_indices(list(chain.from_iterable(part.deletes.values())), n, "a document's delete")


class _Rows:
    """What building a document from its row needs (shared by every document of a load): the
    rows, their digests and docs columns, and the tables the rows refer to. A lazy load's
    deferred states hold this object and their position (`DocState.deferred_many`)."""

    __slots__ = ("actors", "cols", "order", "shared", "raw", "blob", "ends", "digests", "live", "deletes")

    def __init__(self, actors: list, cols: list, order: list, part: _DocsPart) -> None:
        self.actors, self.cols, self.order = actors, cols, order
        self.shared: dict[tuple, frozenset] = {}  # one object per distinct set, as apply() shares them
        # Format 6 keeps the rows as one blob (no object per row until it is built); older
        # formats a list of rows, each let go once built.
        self.raw: list | None = None
        self.blob = self.ends = b""
        if isinstance(part.rows, tuple):
            self.blob, self.ends = part.rows
        else:
            self.raw = part.rows
        self.digests, self.live, self.deletes = part.digests, part.live, part.deletes

    def row(self, i: int) -> Any:
        """Row `i`: its bytes (or, format 3, the inline row)."""
        if self.raw is not None:
            return self.raw[i]
        end = _END.unpack_from(self.ends, i * _END.size)[0]
        return self.blob[_END.unpack_from(self.ends, (i - 1) * _END.size)[0] if i else 0:end]

    def __call__(self, i: int, d: DocState) -> None:
        """Build `d`, the document at position `i` of the docs columns, from its row (the
        deferred states' loader). Raises CorruptSnapshotError naming the document."""
        try:
            self.fill_checked(i, d)
        except Exception as exc:
            raise CorruptSnapshotError(f"snapshot row of document {d.collection}/{d.doc_id} is malformed: "
                                       f"{exc.__class__.__name__}: {exc}") from None
        if self.raw is not None:
            self.raw[i] = None  # built: its bytes are not needed again

    def fill_checked(self, i: int, d: DocState) -> None:
        """Build `d` from row `i`, raising what it finds as it is. Rows without digests
        (digests None) are legacy rows."""
        raw = self.row(i)
        if self.digests is not None and \
                row_digest(raw) != self.digests[i * ROW_DIGEST_BYTES:(i + 1) * ROW_DIGEST_BYTES]:
            raise ValueError("the row does not match its digest (damaged)")
        row = _row(raw)
        ci = row[0]
        if type(ci) is not int or not 0 <= ci < len(self.cols) or self.cols[ci] != d.collection \
                or row[1] != d.doc_id:
            raise ValueError("document row names another document")
        # The columns answered `deleted` and counting before the row was built: they must
        # say what the row says.
        if row[9] != self.deletes.get(i, []) or type(row[10]) is not list or not row[10] \
                or row[10][0] is not self.live[i]:
            raise ValueError("the docs columns disagree with the document's row")
        _fill(d, row, self.order, self.actors, self.shared)


def _load_docs(r: Replica, actors: list, cols: list, part: _DocsPart, lazy: bool) -> None:
    """Every document of the snapshot into `r.collections`; lazy: as `DocState.deferred_many`
    states (one object per document, its row still bytes) built on first use."""
    order = r.order
    _check_docs(part, cols, len(order))
    ci_col, doc_col, n = part.ci, part.ids, len(part.ids)
    rows = _Rows(actors, cols, order, part)
    tables: list[dict[str, DocState]] = [{} for _ in cols]
    if lazy:
        deletes: list[AbstractSet[bytes]] = [_NO_DELETES] * n  # shared: DocState replaces, never adds to it
        for i, ds in part.deletes.items():
            deletes[i] = frozenset(map(order.__getitem__, ds))
        states = DocState.deferred_many(map(cols.__getitem__, ci_col), doc_col, part.live, deletes, rows)
        if len(cols) == 1:
            tables[0] = dict(zip(doc_col, states, strict=True))
        else:
            deque(map(dict.__setitem__, map(tables.__getitem__, ci_col), doc_col, states), maxlen=0)
    else:
        for i, (ci, doc_id) in enumerate(zip(ci_col, doc_col, strict=True)):
            d = tables[ci][doc_id] = DocState(cols[ci], doc_id)
            rows.fill_checked(i, d)
    if sum(map(len, tables)) != n:
        raise ValueError("a document is listed twice")
    collections = r.collections
    for name, table in zip(cols, tables, strict=True):
        if table:
            collections[name] = table


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
