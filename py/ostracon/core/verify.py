"""Verification of a replica's stored history: the one implementation behind open-time
checks, `Database.verify()` and `ostracon verify`. PURE (signature checks are passed in).

What "verified" means (docs/STORAGE.md, "Verification at open"):
- every block's CID is recomputed from its bytes (the replica does this on load);
- every seal's digest is checked against the blocks it names (the replica does this on
  load too: a seal whose blocks do not match stays *unresolved*);
- every seal's signature is checked, except those covered by the device's *verified-seals
  watermark*: a hash chain over every stored seal, in storage order, signed by the device
  itself after it verified them. Open then checks one signature plus the seals added since.

A block counts as verified (`history()` status "verified") only when a seal whose digest
matched it is stored; a seal is stored only once its signature was verified (when
received, or via the watermark at open).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

import msgpack

from . import cid as cidlib
from .actors import short_actor
from .block import batch_digest, decode_change, decode_seal
from .errors import OstraconError

#: Storage meta key of the verified-seals watermark.
WATERMARK_META = "verified-seals"
WATERMARK_DOMAIN = b"ostracon/verified-seals/v1\x00"
_CHAIN_START = hashlib.sha256(WATERMARK_DOMAIN).digest()

Verify = Callable[[bytes, bytes, bytes], bool]


class SealChain:
    """Running hash chain over seal bytes, in the order a database loads them (snapshot
    seals in snapshot order, then log records in position order)."""

    __slots__ = ("count", "digest")

    def __init__(self) -> None:
        self.count = 0
        self.digest = _CHAIN_START

    def add(self, seal: bytes) -> None:
        self.digest = hashlib.sha256(self.digest + hashlib.sha256(seal).digest()).digest()
        self.count += 1

    def message(self, actor: bytes) -> bytes:
        return WATERMARK_DOMAIN + actor + self.count.to_bytes(8, "big") + self.digest

    def watermark(self, actor: bytes, sign: Callable[[bytes], bytes]) -> bytes:
        """The meta value recording that the first `count` seals were verified."""
        return msgpack.packb([self.count, self.digest, sign(self.message(actor))], use_bin_type=True)


def read_watermark(raw: bytes | None, actor: bytes, verify: Verify) -> tuple[int, bytes] | None:
    """(count, chain digest) of a stored watermark whose signature (by `actor`) verifies."""
    if raw is None:
        return None
    try:
        count, digest, sig = msgpack.unpackb(raw, raw=False)
        probe = SealChain()
        probe.count, probe.digest = count, digest
        if type(count) is int and count >= 0 and type(digest) is bytes and type(sig) is bytes \
                and verify(actor, probe.message(actor), sig):
            return count, digest
    except (ValueError, TypeError, OverflowError, msgpack.UnpackException):
        pass
    return None


@dataclass(frozen=True)
class Problem:
    """One finding. `cids`: the blocks it concerns (empty for a seal-only problem)."""

    what: str
    cids: tuple[bytes, ...] = ()

    def __str__(self) -> str:
        return self.what


def open_problems(replica: Any, verify: Verify, seals: list[bytes], verified_upto: int) -> list[Problem]:
    """What a freshly loaded replica failed: seals whose blocks do not match (the blocks are
    named) and seal signatures that do not verify. `seals`: every loaded seal in load
    order; the first `verified_upto` are covered by the watermark."""
    out: list[Problem] = []
    for seal in replica.unresolved_seals():
        log = replica.by_actor.get(seal.actor, [])
        named = tuple(log[seal.first - 1:seal.last])
        label = f"seal {short_actor(seal.actor.hex())} {seal.first}..{seal.last}"
        if len(named) < seal.last - seal.first + 1:
            continue  # its blocks were never stored (still pending when the seal was): sync brings them
        else:
            out.append(Problem(f"{label}: its digest does not match the stored blocks "
                               f"{', '.join(cidlib.format_cid(c) for c in named)}", named))
    for actor in sorted(replica.seals):  # seals stored from a snapshot: digests not yet checked
        q = replica.quarantined.get(actor)
        log = replica.by_actor.get(actor, [])
        for first, last, data in replica.seals[actor]:
            if (q is None or last < q) and last <= len(log):
                seal = decode_seal(data)
                if batch_digest(log[first - 1:last]) != seal.digest:
                    named = tuple(log[first - 1:last])
                    out.append(Problem(f"seal {short_actor(actor.hex())} {first}..{last}: its digest does not match "
                                       f"the stored blocks {', '.join(cidlib.format_cid(c) for c in named)}",
                                       named))
    for data in seals[verified_upto:]:
        seal = decode_seal(data)
        if not seal.verify(verify):
            log = replica.by_actor.get(seal.actor, [])
            out.append(Problem(f"seal {short_actor(seal.actor.hex())} {seal.first}..{seal.last}: signature does "
                               "not verify", tuple(log[seal.first - 1:seal.last])))
    return out


def verify_replica(replica: Any, verify: Verify, progress: Callable[[int, int], None] | None = None, *,
                   awaiting_seal: Collection[bytes] = ()) -> list[str]:
    """The full audit: recompute every CID, DAG link, sequence slot, seal digest and seal
    signature of a loaded replica. Returns the problems found (empty: all verified).

    `awaiting_seal`: actors whose unsealed blocks are this open database's own writes, which
    its next flush seals (docs/ARCHITECTURE.md, Seal): not a problem while it runs."""
    r = replica
    problems: list[str] = []
    total = len(r.order)
    side: set[bytes] = getattr(r, "side", set())
    for n, c in enumerate(r.order, 1):
        data = r.blocks.get(c)
        where = cidlib.format_cid(c)
        if data is None:
            if c not in r.pruned:
                problems.append(f"block {where}: body missing")
            continue  # pruned: its CID still takes part in the seal digests checked below
        if cidlib.compute(data) != c:
            problems.append(f"block {where}: bytes do not match the CID")
            continue
        try:
            ch = decode_change(data)
        except OstraconError as exc:
            problems.append(f"block {where}: {exc}")
            continue
        top = 0
        for p in ch.parents:
            info = r.info.get(p)
            if info is None:
                problems.append(f"block {where}: parent {cidlib.format_cid(p)} is missing")
            elif (info[0], info[1]) != (ch.collection, ch.doc_id):
                problems.append(f"block {where}: parent {cidlib.format_cid(p)} is another document's")
            else:
                top = max(top, info[5])
        if ch.height != top + 1:
            problems.append(f"block {where}: height {ch.height} should be {top + 1}")
        log = r.by_actor.get(ch.actor, [])
        if c not in side and (ch.seq > len(log) or log[ch.seq - 1] != c):
            problems.append(f"block {where}: not at seq {ch.seq} of actor {short_actor(ch.actor.hex())}")
        if progress and (n % 1000 == 0 or n == total):
            progress(n, total)
    for actor, seals in r.seals.items():
        q = r.quarantined.get(actor) if hasattr(r, "quarantined") else None
        for first, last, data in seals:
            seal = decode_seal(data)
            label = f"seal {short_actor(actor.hex())} {first}..{last}"
            if not seal.verify(verify):
                problems.append(f"{label}: signature does not verify")
                continue
            log = r.by_actor.get(actor, [])
            if q is not None and last >= q:
                continue  # one side of a recorded equivocation: checked when it was accepted
            if last > len(log):
                problems.append(f"{label}: covers blocks this database does not have")
            elif batch_digest(log[first - 1:last]) != seal.digest:
                problems.append(f"{label}: digest does not match the blocks")
    for actor, log in r.by_actor.items():
        if r.sealed_upto.get(actor, 0) < len(log) and actor not in awaiting_seal:
            problems.append(f"actor {short_actor(actor.hex())}: blocks {r.sealed_upto.get(actor, 0) + 1}.."
                            f"{len(log)} are not covered by a seal")
    return problems
