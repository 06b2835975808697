"""Snapshot encoding in bounded steps, over a fixed cut of a replica that keeps changing.

`dump(replica)` (core/snapshot.py) encodes the whole state in one go: for 9,000 blocks that
is ~1-2 s of Python in a browser worker, and everything else waits. `SnapshotEncoder` makes
the same bytes in steps, so a caller can do other work (answer calls, accept writes) between
them.

The cut: the encoder takes the replica as it is when it is made (`cut` blocks in apply order,
the actor and collection tables, the seals, the clock, the documents then existing). Blocks
applied later are after the cut and are not part of the snapshot (storage keeps them in its
log after the snapshot's position). Block bytes, block info and the seals stored so far never
change once applied, so the encoder reads them when it gets to them. A document's state does
change in place: `before_change(state)` is the replica's hook (`Replica.before_change`), called
before a document is changed (a merge in `Replica._apply`, a local text edit); it encodes that
document's row at once, while it is still the state of the cut (copy-on-write, one row).

The finished bytes are those of `dump` of the replica at the cut, step size notwithstanding:
the same parts in the same order, packed by the same msgpack calls, compressed by one zlib
stream whose output does not depend on how its input was split.

While an encoder runs, nothing may remove what it reads: `Replica.prune` and batch rollbacks
of blocks before the cut (a rollback only undoes blocks applied during its own batch, which
starts after the cut or ends before it, under the state lock the cut is taken with).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from typing import Any

import msgpack

from .encoding import _default
from .replica import Replica
from .snapshot import SNAPSHOT_FORMAT, SNAPSHOT_ZLIB_LEVEL, index_digest, join_rows, row_digest
from .state import _ABSENT, _TEXT, DocState
from .textcodec import encode_state

#: Work in one step: document rows encoded (the costly part, ~0.1 ms each natively and
#: 3-5x that in Pyodide at 10 fields), or 8x as many block rows (a block row is five list
#: appends), or as many KiB of packed snapshot packed and compressed (zlib level 6 runs at
#: ~10-20 MB/s natively on a loaded machine, slower in WebAssembly). 100 keeps a step to
#: ~10-30 ms natively and ~30-100 ms in a loaded browser worker, the longest a call arriving
#: during compaction waits, while the per-step overhead (a generator resume; in the worker a
#: look at the call queue and a zero-delay timer) stays a small part of the step.
STEP_DOCS = 100
#: Block rows per document row of work (see STEP_DOCS).
BLOCKS_PER_DOC = 8
#: Packed bytes compressed per document row of work (see STEP_DOCS).
BYTES_PER_DOC = 1024
#: A list of at most this many lists is packed list by list (the groups of five and six
#: columns); longer lists are packed in slices.
COLUMN_GROUP = 16

__all__ = ["BLOCKS_PER_DOC", "BYTES_PER_DOC", "STEP_DOCS", "SnapshotEncoder", "encode_row"]


def encode_row(d: DocState, ci: int, name: str, doc_id: str, pos: dict[bytes, int] | None,
               info: dict, aidx: dict[bytes, int]) -> tuple[bool, list[int], bytes]:
    """(live, delete block indices, row bytes) of one document: the first docs columns of
    the snapshot format (layout: core/snapshot.py; the digest column is `row_digest` of the
    row bytes). `pos`: block index by CID, or None to read it from `info`."""
    index = pos if pos is not None else _Positions(info)
    fields = [[f, s[0], aidx[s[1]], index[s[2]], 2 if v is _TEXT else v is not _ABSENT,
               None if v is _ABSENT or v is _TEXT else v]
              for f, (s, v) in d.fields.items()]
    incs = [[f, [[s[0], aidx[s[1]], index[s[2]], delta] for s, delta in lst]]
            for f, lst in d.incs.items()]
    deletes = sorted(index[c] for c in d.deletes)
    row = [ci, doc_id, sorted(index[h] for h in d.heads), d.height, d.version,
           d.min_t, d.max_t, fields, incs, deletes,
           [d.live, sorted([index[c], sorted(index[x] for x in xs)] for c, xs in d.past.items())],
           [index[c] for c in d.cids],
           [[f, encode_state(t)] for f, t in sorted(d.texts.items())]]
    return d.live, deletes, msgpack.packb(row, use_bin_type=True, default=_default)


def _bin_header(n: int) -> bytes:
    """msgpack's header of a bin of `n` bytes (bin 8, 16 or 32: the form `packb` writes)."""
    if n < 1 << 8:
        return b"\xc4" + n.to_bytes(1, "big")
    if n < 1 << 16:
        return b"\xc5" + n.to_bytes(2, "big")
    return b"\xc6" + n.to_bytes(4, "big")


class _Positions:
    """A block's index in apply order, read from its `BlockInfo` (a row encoded by the hook
    may come before the encoder's own index is built)."""

    __slots__ = ("info",)

    def __init__(self, info: dict) -> None:
        self.info = info

    def __getitem__(self, cid: bytes) -> int:
        return int(self.info[cid].position)


class SnapshotEncoder:
    """`dump(replica)` at the moment of construction, made in bounded steps.

    `step()` does at most `step_docs` units of work (STEP_DOCS) and returns True once the
    snapshot is finished; `data` is then its bytes (those of `snapshot.dump` at the cut).
    `cut` is the number of blocks (in apply order) the snapshot holds. Constructing installs
    the replica's `before_change` hook; `close()` (also called when the last step is done)
    removes it. watch=False: no hook (for a caller that runs every step before the replica
    can change, as `snapshot.dump` does). Raises ValueError for a step size < 1 and
    RuntimeError when another encoder already watches the replica.
    """

    def __init__(self, replica: Replica, *, step_docs: int = STEP_DOCS, watch: bool = True) -> None:
        if type(step_docs) is not int or step_docs < 1:
            raise ValueError(f"step_docs must be an int >= 1, not {step_docs!r:.40}")
        if watch and replica.before_change is not None:
            raise RuntimeError("another snapshot encoder is running on this replica")
        self.replica = replica
        self.step_docs = step_docs
        self.cut = len(replica.order)
        self.actors = sorted(replica.by_actor)
        self.aidx = {a: i for i, a in enumerate(self.actors)}
        self.cols = sorted(replica.collections)
        self.seals = [data for a in self.actors for _, _, data in replica.seals.get(a, [])]
        self.clock = replica.clock.last
        self.checkpoint = replica.checkpoint
        # The documents of the cut, in dump's order; row i is encoded by a step or the hook.
        self.docs: list[tuple[int, str, DocState]] = [
            (ci, doc_id, d) for ci, name in enumerate(self.cols)
            for doc_id, d in list(replica.collections[name].items())]
        self._slot = {(self.cols[ci], doc_id): i for i, (ci, doc_id, _) in enumerate(self.docs)}
        self._early: dict[int, tuple[bool, list[int], bytes]] = {}
        self.data: bytes | None = None
        self._steps = self._run()
        if watch:
            replica.before_change = self.before_change

    def before_change(self, state: DocState) -> None:
        """The replica's hook: `state` is about to change; keep its row as of the cut."""
        i = self._slot.pop((state.collection, state.doc_id), None)
        if i is not None:
            ci, doc_id, d = self.docs[i]
            self._early[i] = encode_row(d, ci, self.cols[ci], doc_id, None, self.replica.info, self.aidx)

    def step(self) -> bool:
        """One bounded step; True once `data` holds the finished snapshot."""
        if self.data is not None:
            return True
        try:
            next(self._steps)
        except StopIteration:
            self.close()
            return True
        except BaseException:
            self.close()
            raise
        return False

    def run(self) -> bytes:
        """Every remaining step at once; the snapshot bytes."""
        while not self.step():
            pass
        assert self.data is not None
        return self.data

    def close(self) -> None:
        """Stop watching the replica (idempotent); an unfinished snapshot is abandoned."""
        if self.replica.before_change == self.before_change:
            self.replica.before_change = None
        self._slot = {}

    def _run(self) -> Iterator[None]:
        r, n, budget = self.replica, self.cut, self.step_docs
        order, info, blocks = r.order, r.info, r.blocks
        cidx = {c: i for i, c in enumerate(self.cols)}
        aidx = self.aidx
        rows: list[list] = [[], [], [], [], []]
        index: dict[bytes, int] = {}
        chunk = budget * BLOCKS_PER_DOC
        for start in range(0, n, chunk):
            for i in range(start, min(n, start + chunk)):
                c = order[i]
                index[c] = i
                b = info[c]
                for col_, v in zip(rows, (cidx[b.collection], b.doc_id, aidx[b.actor], b.seq, b.height),
                                   strict=True):
                    col_.append(v)
            yield
        block_bytes = [blocks.get(c) for c in order[:n]]
        side, pruned = r.side, r.pruned
        extra: dict[str, Any] = {"checkpoint": self.checkpoint,
                 "side": [i for i, c in enumerate(order[:n]) if c in side],
                 "pruned": [[i, c] for i, c in enumerate(order[:n]) if c in pruned]}
        yield
        docs: list[list] = [[], [], [], [], [], []]
        for start in range(0, len(self.docs), budget):
            for i in range(start, min(len(self.docs), start + budget)):
                ci, doc_id, d = self.docs[i]
                got = self._early.pop(i, None)
                if got is None:
                    del self._slot[(self.cols[ci], doc_id)]
                    got = encode_row(d, ci, self.cols[ci], doc_id, index, info, aidx)
                for col_, v in zip(docs, (ci, doc_id, got[0], got[1], got[2], row_digest(got[2])), strict=True):
                    col_.append(v)
            yield
        self.close()  # every row is taken: later changes no longer concern this snapshot
        yield
        ci_col, id_col, live_col, del_col, row_col, dig_col = docs
        part: list[Any] = [ci_col, id_col, live_col, [[i, d] for i, d in enumerate(del_col) if d],
                           join_rows(row_col), b"".join(dig_col)]
        extra["index"] = index_digest(self.seals, self.actors, self.cols, rows, part, self.clock, extra)
        yield
        z = zlib.compressobj(SNAPSHOT_ZLIB_LEVEL)
        out: list[bytes] = []
        for piece in self._packed([SNAPSHOT_FORMAT, block_bytes, self.seals, self.actors, self.cols, rows, part,
                                   self.clock, extra]):
            out.append(z.compress(piece))
            yield
        out.append(z.flush())
        self.data = b"".join(out)

    def _packed(self, parts: list) -> Iterator[bytes]:
        """The msgpack bytes of `parts` (those of one `packb(parts)`) in pieces of about
        `step_docs * BLOCKS_PER_DOC` list items or `step_docs * BYTES_PER_DOC` bytes: a
        list packs as its header followed by its items, so long lists are packed a slice at
        a time (the slice's own header cut off)."""
        packer = msgpack.Packer(use_bin_type=True, default=_default)
        items, size = self.step_docs * BLOCKS_PER_DOC, self.step_docs * BYTES_PER_DOC

        def pieces(v: object) -> Iterator[bytes]:
            if type(v) is list and 0 < len(v) <= COLUMN_GROUP and all(type(x) in (list, bytes) for x in v):
                yield packer.pack_array_header(len(v))  # the snapshot's parts, a group of columns
                for x in v:
                    yield from pieces(x)
            elif type(v) is list and len(v) > items:
                yield packer.pack_array_header(len(v))
                for start in range(0, len(v), items):
                    chunk = v[start:start + items]
                    yield packer.pack(chunk)[len(packer.pack_array_header(len(chunk))):]
            elif type(v) is bytes and len(v) > size:  # the rows blob: packed as bin, cut in pieces
                yield _bin_header(len(v))
                for start in range(0, len(v), size):
                    yield v[start:start + size]
            else:
                yield packer.pack(v)

        yield packer.pack_array_header(len(parts))
        parts_pieces = (p for part in parts for p in pieces(part))
        buf: list[bytes] = []
        held = 0
        for piece in parts_pieces:
            buf.append(piece)
            held += len(piece)
            if held >= size:
                yield b"".join(buf)
                buf, held = [], 0
        if buf:
            yield b"".join(buf)
