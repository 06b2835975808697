"""Database and Collection: the public face. Drives the pure core with a storage adapter,
a crypto backend, an identity and a wall clock (all injectable; defaults read here, never
in the core).

Writes are memory first: a write validates, builds a block, applies it and returns. The
write sink persists in batches: after `sink_batch_ops` writes, when `sink_interval_ms` has
passed (checked on each write and by `tick()`; there are no threads), or on `flush()`. At a
flush the new local blocks are sealed (one signature per batch), appended to storage with
every received block applied since the last flush, and storage is made durable. `flush()`
returns only when that is done; a failed automatic flush is reported by the next `flush()`.
Only sealed (flushed) blocks are ever offered to other replicas.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any, Callable, Iterable

import msgpack

from .core import cid as cidlib
from .core import clock as hlc
from .core import snapshot
from .core.block import (OP_DELETE, OP_INCR, OP_SET, OP_UNSET, KIND_BLOCK, check_collection,
                         check_doc_id, check_field, decode_change, envelope)
from .core.encoding import canonical
from .core.errors import (ClosedError, ConflictError, CorruptBlockError, CorruptSnapshotError,
                          HistoryPrunedError,
                          NotFoundError, ReadOnlyError, StorageError, ValidationError)
from .core.feed import FEED_RETENTION, SUBSCRIBER_BUFFER, ChangeFeed, ChangeEvent, Subscription
from .core.replica import MAX_PENDING_BLOCKS, ApplyResult, Replica
from .core.state import DocState
from .storage.base import OpenReport, Storage

#: Size trigger of the write sink (DESIGN.md §4): one signature and one storage
#: transaction per 100 writes keeps both costs well under the cost of the writes.
SINK_BATCH_OPS = 100
#: Time trigger: at most this long between a write and its persistence when writes trickle.
SINK_INTERVAL_MS = 5000
#: Default page size of `scan`: large enough for UIs, small enough to bound one call.
SCAN_LIMIT = 500
#: Subscriber callback exceptions kept for inspection (the newest ones).
CALLBACK_ERRORS_KEPT = 20

_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


def _copy(value: Any) -> Any:
    """Deep copy of a stored value, so callers cannot mutate the replica's state."""
    t = type(value)
    if t is dict:
        return {k: _copy(v) for k, v in value.items()}
    if t is list:
        return [_copy(v) for v in value]
    return value


def _parse_actor(a: Any) -> bytes:
    if type(a) is bytes and len(a) == 32:
        return a
    if type(a) is str and len(a) == 64:
        try:
            return bytes.fromhex(a)
        except ValueError:
            pass
    raise ValidationError(f"actor must be 32 bytes or 64 hex chars: {a!r:.80}")


def _commit_info(replica: Replica, cid: bytes, verified_upto: dict) -> dict:
    ch = replica.change(cid)
    sealed = ch.seq <= verified_upto.get(ch.actor, 0)
    if sealed:
        status = "verified"
    elif ch.actor == replica.actor:
        status = "pending"  # not flushed yet: the seal is made at the next flush
    else:
        status = "unsigned"
    return {
        "cid": cidlib.format_cid(cid), "height": ch.height,
        "parents": [cidlib.format_cid(p) for p in ch.parents],
        "actor": ch.actor.hex(), "seq": ch.seq, "hlc": ch.hlc, "time": hlc.wall_ms(ch.hlc),
        "ops": [list(op) for op in ch.ops],
        "signature": {"status": status, "signer": ch.actor.hex() if sealed else None},
    }


class Collection:
    """Documents of one collection. Get it with `db.collection(name)`."""

    def __init__(self, db: "Database", name: str) -> None:
        self.db = db
        self.name = name
        self._ids: list[str] | None = None  # sorted ids, rebuilt lazily when new ids appear

    # ------------------------------------------------------------ reads

    def _state(self, doc_id: str) -> DocState | None:
        self.db._check_open()
        return self.db._replica.doc(self.name, doc_id)

    def get(self, doc_id: str, at: str | list[str] | None = None, *,
            include_deleted: bool = False) -> dict | None:
        """The document, or None if it does not exist (or is deleted).

        `at`: a commit CID or a list of head CIDs: the document as it was then.
        """
        check_doc_id(doc_id)
        state = self._state(doc_id)
        if state is None:
            return None
        if at is not None:
            state = self.db._state_at(state, at)
        if state.deleted and not include_deleted:
            return None
        return _copy(state.to_doc())

    def get_many(self, ids: Iterable[str], *, include_deleted: bool = False) -> list[dict | None]:
        return [self.get(i, include_deleted=include_deleted) for i in ids]

    def _sorted_ids(self) -> list[str]:
        if self._ids is None:
            docs = self.db._replica.collections.get(self.name, {})
            self._ids = sorted(docs)
        return self._ids

    def scan(self, prefix: str = "", after: str | None = None, limit: int = SCAN_LIMIT, *,
             include_deleted: bool = False) -> tuple[list[dict], str | None]:
        """Documents ordered by id, whose id starts with `prefix`, after the cursor `after`.

        Returns (docs, next_cursor); next_cursor is None at the end. Cursors are ids, so a
        scan stays consistent while writes happen (new ids after the cursor are included).
        """
        import bisect

        self.db._check_open()
        if type(prefix) is not str:
            raise ValidationError("prefix must be a str")
        if type(limit) is not int or limit < 1:
            raise ValidationError("limit must be a positive int")
        ids = self._sorted_ids()
        start = prefix if after is None or after < prefix else after
        i = bisect.bisect_right(ids, start) if after is not None and after >= prefix else bisect.bisect_left(ids, start)
        docs = self.db._replica.collections.get(self.name, {})
        out: list[dict] = []
        while i < len(ids):
            doc_id = ids[i]
            if not doc_id.startswith(prefix):
                return out, None
            state = docs[doc_id]
            i += 1
            if state.deleted and not include_deleted:
                continue
            out.append(_copy(state.to_doc()))
            if len(out) >= limit:
                more = i < len(ids) and ids[i].startswith(prefix)
                return out, (doc_id if more else None)
        return out, None

    def count(self, *, include_deleted: bool = False) -> int:
        self.db._check_open()
        docs = self.db._replica.collections.get(self.name, {})
        if include_deleted:
            return len(docs)
        return sum(1 for d in docs.values() if not d.deleted)

    def find(self, filter: dict | None = None, order: Any = None, limit: int | None = None,
             **kw: Any) -> list[dict]:
        """Documents matching a DefraDB-style filter (see docs/QUERIES.md)."""
        return self.db._query(self, filter, order, limit, **kw)

    def history(self, doc_id: str, *, allow_pruned: bool = False) -> list[dict]:
        """Every commit of the document, parents before children (height, clock, cid).

        If compaction pruned some of them, HistoryPrunedError is raised; with
        allow_pruned=True the kept commits are returned after one marker entry
        `{"pruned": n, "horizon": ms}` so a short history is never silent.
        """
        state = self._state(check_doc_id(doc_id))
        if state is None:
            raise NotFoundError(f"{self.name}/{doc_id} does not exist")
        r = self.db._replica
        cids = state.cids
        marker = []
        if r.pruned:
            kept = [c for c in cids if c not in r.pruned]
            if len(kept) != len(cids):
                horizon = (r.checkpoint or {}).get("horizon")
                if not allow_pruned:
                    raise HistoryPrunedError(
                        f"{len(cids) - len(kept)} commit(s) of {self.name}/{doc_id} are older than "
                        f"the pruning horizon ({horizon}); pass allow_pruned=True for the rest")
                marker = [{"pruned": len(cids) - len(kept), "horizon": horizon}]
                cids = kept
        infos = [_commit_info(r, c, r.sealed_upto) for c in cids]
        infos.sort(key=lambda i: (i["height"], i["hlc"], i["cid"]))
        return marker + infos

    def blame(self, doc_id: str) -> dict[str, dict]:
        """field -> the commit that wrote its current value."""
        state = self._state(check_doc_id(doc_id))
        if state is None or state.deleted:
            raise NotFoundError(f"{self.name}/{doc_id} does not exist")
        return {f: {"cid": cidlib.format_cid(s[2]), "actor": s[1].hex(), "hlc": s[0],
                    "time": hlc.wall_ms(s[0])} for f, s in state.blame().items()}

    # ------------------------------------------------------------ writes

    def _live(self, doc_id: str) -> DocState:
        state = self._state(check_doc_id(doc_id))
        if state is None or state.deleted:
            raise NotFoundError(f"{self.name}/{doc_id} does not exist")
        return state

    def _check_cas(self, state: DocState, if_version: int | None, if_heads: Any, where: Any) -> None:
        if if_version is not None:
            if type(if_version) is not int:
                raise ValidationError("if_version must be an int")
            if state.version != if_version:
                raise ConflictError(f"{self.name}/{state.doc_id} is at version {state.version}, "
                                    f"not {if_version}")
        if if_heads is not None:
            if isinstance(if_heads, str):
                if_heads = [if_heads]
            want = {cidlib.parse_cid(h) for h in if_heads}
            if want != state.heads:
                raise ConflictError(f"{self.name}/{state.doc_id} heads have changed")
        if where is not None:
            if not self.db._matches(where, state.to_doc()):
                raise ConflictError(f"{self.name}/{state.doc_id} does not match the `where` condition")

    def create(self, doc: dict, id: str | None = None) -> str:
        """Create a document; returns its id. An id of a live document → ConflictError."""
        ops = _set_ops(doc)
        db = self.db
        db._check_writable()
        check_collection(self.name)
        if id is None:
            id = db._new_id()
        else:
            check_doc_id(id)
            state = db._replica.doc(self.name, id)
            if state is not None and not state.deleted:
                raise ConflictError(f"{self.name}/{id} already exists")
        is_new = db._replica.doc(self.name, id) is None
        db._write_raw(self, id, ops)
        if is_new and self._ids is not None:
            self._ids = None
        return id

    def update(self, doc_id: str, doc: dict, *, if_version: int | None = None,
               if_heads: Any = None, where: Any = None) -> str:
        """Replace the user fields (fields not given are removed). Returns the commit CID."""
        ops = _set_ops(doc)
        self.db._check_writable()
        state = self._live(doc_id)
        self._check_cas(state, if_version, if_heads, where)
        given = {op[1] for op in ops}
        ops.extend((OP_UNSET, f) for f in state.user_fields() if f not in given)
        return self.db._write(self, doc_id, ops)

    def patch(self, doc_id: str, fields: dict, *, unset: Iterable[str] = (),
              if_version: int | None = None, if_heads: Any = None, where: Any = None) -> str:
        """Set the given fields (and remove those in `unset`). Returns the commit CID."""
        ops = _set_ops(fields)
        unset = [check_field(f) for f in unset]
        if {op[1] for op in ops} & set(unset):
            raise ValidationError("a field cannot be both set and unset")
        self.db._check_writable()
        state = self._live(doc_id)
        self._check_cas(state, if_version, if_heads, where)
        ops.extend((OP_UNSET, f) for f in sorted(set(unset)))
        return self.db._write(self, doc_id, ops)

    def delete(self, doc_id: str, *, if_version: int | None = None, if_heads: Any = None,
               where: Any = None) -> str:
        """Tombstone the document (history is kept). Returns the commit CID."""
        self.db._check_writable()
        state = self._live(doc_id)
        self._check_cas(state, if_version, if_heads, where)
        return self.db._write(self, doc_id, [(OP_DELETE,)])

    def increment(self, doc_id: str, field: str, by: int | float = 1) -> str:
        """Add `by` to a counter field (concurrent increments all count)."""
        check_field(field)
        if type(by) not in (int, float) or by != by or by in (float("inf"), float("-inf")):
            raise ValidationError("increment must be a finite int or float")
        if type(by) is int and not -(2**63) <= by < 2**63:
            raise ValidationError("increment must fit in 64 bits")
        self.db._check_writable()
        self._live(doc_id)
        return self.db._write(self, doc_id, [(OP_INCR, field, by)])


_SCALARS = (str, int, float, bool, type(None), bytes)


def _set_ops(doc: Any) -> list:
    if type(doc) is not dict:
        raise ValidationError(f"a document must be a dict, not {type(doc).__name__}")
    try:
        names = sorted(doc)
    except TypeError:
        raise ValidationError("field names must be str") from None
    ops = []
    for name in names:
        if type(name) is not str or not name or name[0] == "_" or len(name) > 256:
            check_field(name)  # raises the precise error
        v = doc[name]
        t = type(v)
        if t is float or t not in _SCALARS:  # floats: NaN/Inf check; containers: full walk
            v = canonical(v)
        ops.append((OP_SET, name, v))
    return ops


class Database:
    """An open Ostracon database. Use `ostracon.open(...)`."""

    def __init__(self, storage: Storage, *, identity: Any, crypto: Any,
                 clock: Callable[[], int] | None = None, random_bytes: Callable[[int], bytes] | None = None,
                 require_signatures: bool = True, sink_batch_ops: int = SINK_BATCH_OPS,
                 sink_interval_ms: int = SINK_INTERVAL_MS, feed_retention: int = FEED_RETENTION,
                 max_pending_blocks: int = MAX_PENDING_BLOCKS) -> None:
        if sink_batch_ops < 1 or sink_interval_ms < 0:
            raise ValidationError("sink_batch_ops must be >= 1 and sink_interval_ms >= 0")
        self.storage = storage
        self.identity = identity
        self.crypto = crypto
        self.clock = clock or _wall_ms
        self._random = random_bytes or crypto.random_bytes
        self.sink_batch_ops = sink_batch_ops
        self.sink_interval_ms = sink_interval_ms
        self._replica = Replica(identity.actor, require_signatures=require_signatures,
                                verify=crypto.ed25519_verify, max_pending_blocks=max_pending_blocks)
        self._collections: dict[str, Collection] = {}
        self._unpersisted: list[bytes] = []
        self._writes_since_flush = 0
        self._last_flush_ms: int | None = None
        self._sink_error: StorageError | None = None
        self._closed = False
        self._listeners: list[Callable[[str, str, DocState], None]] = []
        self.callback_errors: list[Exception] = []
        self._load()
        self._replica.own_durable = self._replica.seq_of(self._replica.actor)  # all from storage
        self.feed = ChangeFeed(self._random(6).hex(), feed_retention)

    # ------------------------------------------------------------ lifecycle

    def _load(self) -> None:
        snap = self.storage.load_snapshot()
        after = 0
        if snap is not None:
            data, after = snap
            if data[:1] == b"\x92":  # format 1: [1, envelopes], replayed block by block
                try:
                    v = msgpack.unpackb(data, raw=False, use_list=True)
                    if type(v) is not list or len(v) != 2 or v[0] != 1 or type(v[1]) is not list:
                        raise ValueError("wrong snapshot layout")
                except Exception as exc:
                    raise CorruptSnapshotError(f"snapshot is not a valid Ostracon snapshot: {exc}") from None
                self._replay(v[1], "snapshot")
            else:
                snapshot.load(self._replica, data)
        batch: list[bytes] = []
        for _, rec in self.storage.records(after):
            batch.append(rec)
            if len(batch) >= 10_000:
                self._replay(batch, "log")
                batch = []
        if batch:
            self._replay(batch, "log")

    def _replay(self, envelopes: list[bytes], where: str) -> None:
        try:
            self._replica.apply_envelopes(envelopes, trusted=True, strict=True)
        except CorruptBlockError as exc:
            raise StorageError(f"stored {where} holds a malformed block ({exc}); open with "
                               f"repair=True or restore from a replica") from None

    def __enter__(self) -> "Database":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError("the database is closed")

    def _check_writable(self) -> None:
        self._check_open()
        if self.storage.read_only:
            raise ReadOnlyError("the database was opened read-only")

    def close(self) -> None:
        if self._closed:
            return
        try:
            if not self.storage.read_only:
                self.flush()
        finally:
            self._closed = True
            self.storage.close()

    @property
    def actor(self) -> str:
        return self._replica.actor.hex()

    def open_report(self) -> OpenReport:
        return self.storage.open_report()

    def collection(self, name: str) -> Collection:
        self._check_open()
        col = self._collections.get(name)
        if col is None:
            check_collection(name)
            col = self._collections[name] = Collection(self, name)
        return col

    def collections(self) -> list[str]:
        return sorted(self._replica.collections)

    # ------------------------------------------------------------ write path

    def _new_id(self) -> str:
        """Time-sortable id: the 64-bit clock stamp then 64 random bits, base32 (26 chars)."""
        stamp = self._replica.clock.now(self.clock())
        n = (stamp << 64) | int.from_bytes(self._random(8), "big")
        return "".join(_CROCKFORD[(n >> s) & 31] for s in range(125, -1, -5))

    def _write(self, col: Collection, doc_id: str, ops: list) -> str:
        return cidlib.format_cid(self._write_raw(col, doc_id, ops))

    def _write_raw(self, col: Collection, doc_id: str, ops: list) -> bytes:
        now = self.clock()
        cid, data, state = self._replica.commit(col.name, doc_id, ops, now)
        self._unpersisted.append(envelope(KIND_BLOCK, data))
        self._writes_since_flush += 1
        self._publish(col.name, doc_id, state)
        if self._last_flush_ms is None:
            self._last_flush_ms = now
        if (self._writes_since_flush >= self.sink_batch_ops
                or now - self._last_flush_ms >= self.sink_interval_ms):
            self._auto_flush(now)
        return cid

    def _publish(self, collection: str, doc_id: str, state: DocState) -> None:
        # The change is applied already: a failing subscriber callback must not make the
        # write look failed. Errors are kept (bounded) in `callback_errors` for the app.
        try:
            self.feed.publish(collection, doc_id, state.version, state.deleted,
                              state.min_t >> 16, state.max_t >> 16, state.user_fields())
        except Exception as exc:  # noqa: BLE001 - user code
            self._callback_error(exc)
        for fn in self._listeners:
            fn(collection, doc_id, state)

    def _callback_error(self, exc: Exception) -> None:
        self.callback_errors.append(exc)
        del self.callback_errors[:-CALLBACK_ERRORS_KEPT]

    def _auto_flush(self, now: int) -> None:
        try:
            self._flush(now)
        except StorageError as exc:
            self._sink_error = exc  # reported by the next explicit flush()

    def tick(self) -> None:
        """Let the time trigger of the sink fire without a write (drivers call this)."""
        self._check_open()
        now = self.clock()
        if (self._unpersisted or self._replica.unsealed_count()) and self._last_flush_ms is not None \
                and now - self._last_flush_ms >= self.sink_interval_ms:
            self._auto_flush(now)

    def _flush(self, now: int) -> None:
        r = self._replica
        seals = r.seal_local(self.identity.sign)
        self._unpersisted.extend(envelope(2, s) for s in seals)
        if self._unpersisted:
            batch = self._unpersisted
            self.storage.append(batch)
            self._unpersisted = []
        # Raises on failure; then our new blocks stay unshareable (own_durable unchanged):
        # only blocks that survived a flush are ever offered to other replicas.
        self.storage.flush()
        r.own_durable = r.seq_of(r.actor)
        self._writes_since_flush = 0
        self._last_flush_ms = now
        self._sink_error = None

    def flush(self) -> None:
        """Return once every earlier write is durable; raise StorageError if it is not.

        A failed automatic flush left its batch queued; this retries it, so an error is
        raised here exactly when something acknowledged-looking is still not durable."""
        self._check_open()
        if self.storage.read_only:
            return
        self._flush(self.clock())

    def compact(self, prune_before: int | None = None) -> int:
        """Flush, write a snapshot of every block and seal, and let storage drop the log it
        covers. Returns the snapshot's record position.

        History stays complete unless `prune_before` (wall ms) is given: then the bodies of
        blocks older than it (except current heads) are dropped, keeping a verifiable
        checkpoint (state hash, frontier CIDs, digest of the pruned CIDs). CIDs, DAG links
        and seals stay; history, time travel and sync that need a dropped body raise
        HistoryPrunedError instead of answering short.
        """
        self._check_writable()
        self.flush()
        if prune_before is not None:
            self._prune(prune_before)
        position = self.storage.last_position()
        self.storage.write_snapshot(snapshot.dump(self._replica), position)
        self.storage.compact(position)
        return position

    def _prune(self, horizon: int) -> None:
        if type(horizon) is not int or horizon < 0:
            raise ValidationError("prune_before must be a wall time in ms (int >= 0)")
        r = self._replica
        heads = set(r.heads())
        drop = [c for c in r.order
                if c in r.blocks and c not in heads and hlc.wall_ms(r.change(c).hlc) < horizon]
        if not drop:
            return
        dropped = set(drop)
        frontier = set()
        for c in r.order:
            if c in r.blocks and c not in dropped:
                frontier.update(p for p in r.change(c).parents if p in dropped or p in r.pruned)
        for c in drop:
            del r.blocks[c]
        r.pruned |= dropped
        prev = r.checkpoint or {}
        r.checkpoint = {
            "horizon": max(horizon, prev.get("horizon", 0)),
            "pruned": len(r.pruned),
            "pruned_digest": hashlib.sha256(b"".join(c for c in r.order if c in r.pruned)).hexdigest(),
            "frontier": sorted(cidlib.format_cid(c) for c in frontier),
            "state_hash": self.state_hash(),
        }

    @property
    def checkpoint(self) -> dict | None:
        """The pruning checkpoint (None if nothing was ever pruned)."""
        return self._replica.checkpoint

    @property
    def pending_writes(self) -> int:
        """Writes not yet acknowledged by storage."""
        return self._writes_since_flush

    # ------------------------------------------------------------ replication

    def heads(self) -> list[str]:
        self._check_open()
        return [cidlib.format_cid(h) for h in self._replica.heads()]

    def version_vector(self) -> dict[str, int]:
        self._check_open()
        return {a.hex(): n for a, n in self._replica.version_vector().items()}

    def state_hash(self) -> str:
        """sha256 over every document's (collection, id, deleted, fields, heads), sorted."""
        self._check_open()
        h = hashlib.sha256()
        cols = self._replica.collections
        for name in sorted(cols):
            docs = cols[name]
            for doc_id in sorted(docs):
                h.update(docs[doc_id].digest())
        return h.hexdigest()

    def blocks_since(self, vector: dict | None = None) -> list[bytes]:
        """Envelopes (blocks and their seals) that a replica with `vector` lacks."""
        self._check_open()
        vec = {}
        for a, n in (vector or {}).items():
            if type(n) is not int or n < 0:
                raise ValidationError("version vector values must be ints >= 0")
            vec[_parse_actor(a)] = n
        return self._replica.envelopes_since(vec)

    def apply_blocks(self, envelopes: Iterable[bytes], *, strict: bool = True) -> int:
        """Verify and merge envelopes from another replica; returns how many blocks were new.

        strict=True: any malformed envelope → CorruptBlockError and nothing of the batch is
        applied. Details of the last call are in `last_apply`.
        """
        self._check_writable()
        envs = list(envelopes)
        before_seals = {a: list(s) for a, s in self._replica.seals.items()}
        result = self._replica.apply_envelopes(envs, strict=strict)
        self.last_apply: ApplyResult = result
        self._persist_applied(result, before_seals)
        seen = set()
        for key in result.changed_docs:
            if key not in seen:
                seen.add(key)
                col = self._collections.get(key[0])
                if col is not None:
                    col._ids = None
                self._publish(key[0], key[1], self._replica.doc(*key))
        return result.new

    def _persist_applied(self, result: ApplyResult, before_seals: dict) -> None:
        r = self._replica
        if result.new:
            for c in r.order[len(r.order) - result.new:]:
                self._unpersisted.append(envelope(KIND_BLOCK, r.blocks[c]))
        for actor, seals in r.seals.items():
            old = before_seals.get(actor, [])
            if len(seals) != len(old):
                known = set(old)
                for s in seals:
                    if s not in known:
                        self._unpersisted.append(envelope(2, s[2]))
        if result.new or result.seals:
            self._writes_since_flush += result.new
            now = self.clock()
            if self._last_flush_ms is None:
                self._last_flush_ms = now
            if self._writes_since_flush >= self.sink_batch_ops:
                self._auto_flush(now)

    # ------------------------------------------------------------ sync

    async def sync(self, relay_url: str, space: Any, **options: Any) -> Any:
        """Start syncing with `space` through the relay (asyncio). Returns the running client:
        `await h.wait_synced()`, `h.status`, `await h.stop()`. See docs/SYNC.md."""
        self._check_open()
        import sys
        if sys.platform == "emscripten":
            from .sync.browser import start_sync
        else:
            from .sync.native import start_sync
        return await start_sync(self, relay_url, space, **options)

    def sync_blocking(self, relay_url: str, space: Any, timeout: float = 30.0, **options: Any) -> Any:
        """For scripts: connect, exchange everything, disconnect; returns the final status."""
        self._check_open()
        from .sync.native import sync_once_blocking
        return sync_once_blocking(self, relay_url, space, timeout=timeout, **options)

    # ------------------------------------------------------------ time travel

    def _state_at(self, state: DocState, at: Any) -> DocState:
        heads = [at] if isinstance(at, (str, bytes)) else list(at)
        if not heads:
            raise ValidationError("`at` needs at least one CID")
        r = self._replica
        wanted: set[bytes] = set()
        stack = []
        for h in heads:
            raw = cidlib.parse_cid(h)
            info = r.info.get(raw)
            if info is None or info[0] != state.collection or info[1] != state.doc_id:
                raise NotFoundError(f"{h} is not a commit of {state.collection}/{state.doc_id}")
            stack.append(raw)
        while stack:
            c = stack.pop()
            if c in wanted:
                continue
            wanted.add(c)
            stack.extend(r.change(c).parents)
        past = DocState(state.collection, state.doc_id)
        for c in state.cids:  # apply order is causal, so parents come first
            if c in wanted:
                past.apply(c, r.change(c))
        return past

    # ------------------------------------------------------------ queries

    def _matches(self, where: Any, doc: dict) -> bool:
        from .core.query import compile_filter
        return compile_filter(where)(doc)

    def _query(self, col: Collection, filter: Any, order: Any, limit: Any, **kw: Any) -> list[dict]:
        from .core.query import run_query
        docs = self._replica.collections.get(col.name, {})
        return [_copy(d) for d in run_query((s.to_doc() for s in docs.values() if not s.deleted),
                                            filter, order=order, limit=limit, **kw)]

    # ------------------------------------------------------------ change feed

    def changes(self, collection: str | None = None, after: str | None = None,
                limit: int | None = None) -> tuple[list[ChangeEvent], str]:
        """Change events after the cursor `after`, and the cursor to resume from."""
        self._check_open()
        return self.feed.since(after, collection, limit)

    def subscribe(self, callback: Callable[[ChangeEvent], None] | None = None, *,
                  collection: str | None = None, buffer: int = SUBSCRIBER_BUFFER) -> Subscription:
        self._check_open()
        return self.feed.subscribe(collection, buffer, callback)


IDENTITY_FILE = "identity.key"


def open_database(path: Any = None, *, identity: Any = None, clock: Callable[[], int] | None = None,
                  storage: Storage | None = None, crypto: Any = None, durability: str = "flush",
                  read_only: bool = False, repair: bool = False, require_signatures: bool = True,
                  random_bytes: Callable[[int], bytes] | None = None, **limits: Any) -> Database:
    """Open (or create) a database.

    path None → in memory. A directory path → durable file storage (see docs/STORAGE.md);
    the directory's identity is kept in `identity.key` (mode 0600) unless one is given.
    clock: wall time in ms (default: the system clock). random_bytes: id randomness.
    """
    import os

    from .crypto import default_backend
    from .crypto.identity import Identity

    crypto = crypto or default_backend()
    if storage is None:
        if path is None:
            from .storage.memory import MemoryStorage
            storage = MemoryStorage()
        else:
            from .storage.file import FileStorage
            storage = FileStorage(os.fspath(path), durability=durability, read_only=read_only,
                                  repair=repair)
    try:
        if identity is None:
            if path is not None:
                key_path = os.path.join(os.fspath(path), IDENTITY_FILE)
                if read_only:
                    identity = (Identity.load(key_path, crypto=crypto) if os.path.exists(key_path)
                                else Identity.generate(crypto))
                else:
                    identity = Identity.load_or_generate(key_path, crypto=crypto)
            else:
                identity = Identity.generate(crypto)
        return Database(storage, identity=identity, crypto=crypto, clock=clock,
                        random_bytes=random_bytes, require_signatures=require_signatures, **limits)
    except BaseException:
        storage.close()
        raise
