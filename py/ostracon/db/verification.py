"""Loading a database from storage, verifying what it loads (docs/STORAGE.md,
"Verification at open"), and the bookkeeping each flush and compaction adds for it.

- Every block's CID is recomputed from its bytes and every seal's digest is checked against
  the blocks it names (core/replica.py does both while replaying).
- Seal signatures are checked for the seals not covered by the device's verified-seals
  watermark (core/verify.py): one signature check plus the seals stored since.
- A mismatch raises CorruptBlockError naming segment, offset and CID of every block
  concerned; with repair=True those blocks are quarantined instead (left out of the
  database, recorded in storage meta so later opens skip them too) and reported in
  `open_report()`; `on_corrupt="report"` (used by `ostracon verify`) keeps the findings
  for `Database.verify()` without changing anything.
- The device's highest own sequence number is recorded at every flush, apart from
  snapshots; if the loaded log is shorter, local writes are refused until sync pulls the
  missing blocks back (OwnHistoryMissingError), so a sequence number is never reused.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import msgpack

from ..core import cid as cidlib
from ..core import snapshot
from ..core.block import KIND_BLOCK, KIND_SEAL, open_envelope
from ..core.errors import CorruptBlockError, StorageError
from ..core.replica import Replica
from ..core.verify import WATERMARK_META, Problem, SealChain, open_problems, read_watermark
from ..storage.base import Storage

#: Prefix of the meta key recording a device's highest own sequence number; the key ends with
#: the actor (hex), so a directory opened under another identity does not inherit the floor.
OWN_SEQ_META = "ostracon/own-seq/"
QUARANTINE_META = "ostracon/quarantined-blocks"
#: Records replayed per batch at open: bounds the memory of one decode pass.
REPLAY_BATCH = 10_000
#: What open does when stored data fails verification: raise CorruptBlockError (default),
#: or "report": keep the findings for `Database.verify()` (what `ostracon verify` uses).
ON_CORRUPT = ("raise", "report")


@dataclass
class Loaded:
    """What a verified load produced."""

    replica: Replica
    chain: SealChain
    notes: list[str] = field(default_factory=list)      # for open_report()
    problems: list[str] = field(default_factory=list)   # on_corrupt="report" findings
    snapshot_format: int | None = None  # the loaded snapshot's format (None: no snapshot)


def _cids(raw: bytes | None) -> set[bytes]:
    if raw is None:
        return set()
    try:
        v = msgpack.unpackb(raw, raw=False)
        return {c for c in v if cidlib.is_cid(c)}
    except (ValueError, TypeError, msgpack.UnpackException):
        raise StorageError("stored list of quarantined blocks is unreadable") from None


def _replay(r: Any, batch: list[bytes]) -> None:
    try:
        r.apply_envelopes(batch, trusted=True, strict=True)
    except CorruptBlockError as exc:
        raise CorruptBlockError(f"stored log holds a malformed block ({exc}); open with repair=True "
                                "or restore from a replica") from None


@contextmanager
def collector_paused() -> Iterator[None]:
    """Loading creates several objects per block and per document, and every one of them stays
    alive: the cyclic garbage collector's passes over them find nothing and doubled the open
    time of 10,000 documents. It runs again as soon as the load is done. The browser host keeps
    it off over a whole open, and in the worker until its first idle tick after it
    (runtime/browser/host.py `resume_collector`)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _load_into(r: Replica, storage: Storage, verify: Callable, wall_ms: int,
               skip: set[bytes], lazy: bool = False) -> tuple[list[Problem], SealChain, int | None]:
    r.set_wall(wall_ms)
    wm = read_watermark(storage.get_meta(WATERMARK_META), r.actor, verify)
    chain, seals, upto = SealChain(), [], 0

    def add_seal(data: bytes) -> None:
        nonlocal upto
        chain.add(data)
        seals.append(data)
        if wm is not None and chain.count == wm[0] and chain.digest == wm[1]:
            upto = wm[0]
    snap = storage.load_snapshot()
    after, fmt = 0, None
    if snap is not None:
        data, after = snap
        # A storage that read the snapshot through a faster zlib hands its inflated bytes over
        # (runtime/browser/indexeddb.py); they are checked like any snapshot bytes.
        inflated = getattr(storage, "take_inflated_snapshot", None)
        plain = inflated(data) if inflated is not None else None
        fmt = snapshot.load(r, data if plain is None else plain, lazy=lazy)
        for a in sorted(r.by_actor):  # the order snapshot.dump writes them in
            for _, _, s in r.seals.get(a, []):
                add_seal(s)
    batch: list[bytes] = []
    for _, rec in storage.records(after):
        kind = rec[1] if len(rec) > 1 else 0
        if kind == KIND_SEAL:
            add_seal(open_envelope(rec)[1])
        elif kind == KIND_BLOCK and skip and cidlib.compute(open_envelope(rec)[1]) in skip:
            continue
        batch.append(rec)
        if len(batch) >= REPLAY_BATCH:
            _replay(r, batch)
            batch = []
    if batch:
        _replay(r, batch)
    return open_problems(r, verify, seals, upto), chain, fmt


def _locate(storage: Any, cids: set[bytes]) -> dict[bytes, tuple[str, int | None]]:
    """Where each block is stored: (segment, offset of its record), or ("snapshot", None)."""
    pos_of: dict[bytes, int] = {}
    for pos, rec in storage.records(0):
        if len(rec) > 1 and rec[1] == KIND_BLOCK:
            c = cidlib.compute(open_envelope(rec)[1])
            if c in cids:
                pos_of[c] = pos
    locate = getattr(storage, "locate", None)
    out: dict[bytes, tuple[str, int | None]] = {}
    for c in cids:
        p = pos_of.get(c)
        if p is None:
            out[c] = ("snapshot", None)
        else:
            out[c] = locate(p) if locate is not None else (f"record {p}", None)
    return out


def _describe(problems: list[Problem], where: dict) -> list[str]:
    lines = []
    for pr in problems:
        for c in pr.cids:
            seg, off = where.get(c, ("?", None))
            lines.append(f"block {cidlib.format_cid(c)} in {seg} at offset {off}: {pr.what}")
        if not pr.cids:
            lines.append(pr.what)
    return lines


def load(new_replica: Callable[[], Replica], storage: Storage, verify: Callable, wall_ms: int, *,
         repair: bool, on_corrupt: str, lazy: bool = False) -> Loaded:
    """Fill a new replica from storage, verified (module docstring). Raises
    CorruptBlockError (naming segment, offset and CID) unless `repair` or "report".
    lazy: documents of the snapshot are built on first use (`snapshot.load`)."""
    if on_corrupt not in ON_CORRUPT:
        raise StorageError(f"on_corrupt must be one of {ON_CORRUPT}, not {on_corrupt!r}")
    skip = _cids(storage.get_meta(QUARANTINE_META))
    r = new_replica()
    with collector_paused():
        problems, chain, fmt = _load_into(r, storage, verify, wall_ms, skip, lazy)
    out = Loaded(r, chain, snapshot_format=fmt)
    out.notes = [f"block {cidlib.format_cid(c)} is quarantined (failed verification earlier)" for c in sorted(skip)]
    if problems:
        bad = {c for pr in problems for c in pr.cids}
        lines = _describe(problems, _locate(storage, bad))
        if on_corrupt == "report":
            out.problems = lines
        elif not repair or storage.read_only:
            first = next((c for pr in problems for c in pr.cids), None)
            seg, off = _locate(storage, {first})[first] if first is not None else (None, None)
            raise CorruptBlockError(
                "stored data fails verification: " + "; ".join(lines) + "; open with repair=True to "
                "quarantine it (peers can supply the authentic blocks)", segment=seg, offset=off,
                cid=None if first is None else cidlib.format_cid(first), problems=tuple(lines))
        else:
            skip |= bad
            storage.set_meta(QUARANTINE_META, msgpack.packb(sorted(skip), use_bin_type=True))
            out.replica = r = new_replica()
            problems, out.chain, out.snapshot_format = _load_into(r, storage, verify, wall_ms, skip, lazy)
            out.notes += [f"repair: quarantined {line}" for line in lines]
            out.notes += [f"repair: still unverified after quarantine: {pr.what}" for pr in problems]
    raw = storage.get_meta(OWN_SEQ_META + r.actor.hex())
    recorded = int.from_bytes(raw, "big") if raw else 0
    r.own_floor = recorded
    if r.seq_of(r.actor) < recorded:
        out.notes.append(f"this device's own blocks {r.seq_of(r.actor) + 1}..{recorded} are missing: "
                         "writes wait until sync pulls them back from peers")
    return out


def record_flush(r: Replica, storage: Storage, chain: SealChain, sign: Callable[[bytes], bytes],
                 batch: list[bytes], own_seq: int | None = None) -> None:
    """Before a flush: extend the seal chain by the batch's seals, re-sign the watermark and
    record the own sequence number (all in the same durable group as the batch). own_seq:
    the highest own sequence number in the batch (writes of other threads made after the
    batch was taken are not in it and must not be recorded yet)."""
    grew = False
    for env in batch:
        if len(env) > 1 and env[1] == KIND_SEAL:
            chain.add(open_envelope(env)[1])
            grew = True
    if grew:
        storage.set_meta(WATERMARK_META, chain.watermark(r.actor, sign))
    own = r.seq_of(r.actor) if own_seq is None else own_seq
    if own > r.own_floor:
        r.own_floor = own
        storage.set_meta(OWN_SEQ_META + r.actor.hex(), own.to_bytes(8, "big"))
