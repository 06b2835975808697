"""The audit trail as self-contained NDJSON lines, and its replay.

Each line describes one block completely: `cid`, `collection`, `id`, `parents`, `height`,
`clock` (the hybrid logical clock stamp) and `time` (its wall ms), `actor`, `seq`, `ops`
(the block's operations as lists, values in the one lossless JSON form of tagged_json.py:
`from_json_value` gives back the decoded operations exactly, a user's map whose keys look
like tags included), `meta` (commit metadata or null), `schema`, `block` (the exact block bytes, base64) and
`seal` (the signed seal covering the block, base64, or null while unsealed). The decoded
fields are for people and tools; `block` and `seal` are what a replay trusts — every CID is
recomputed from the bytes and every seal is verified by the receiving replica, exactly as
for blocks arriving by sync. A replay therefore rebuilds the same DAG, CIDs and signatures.
Blocks whose bodies compaction pruned have no line (their CIDs stay in the checkpoint).
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Iterator
from typing import Any

from ..core import cid as cidlib
from ..core.block import KIND_BLOCK, KIND_SEAL, decode_change, envelope, meta_text
from ..core.errors import CorruptBlockError, ValidationError
from ..core.replica import Replica
from ..tagged_json import decode_base64, to_json_value

#: Lines applied per `apply_blocks` call during a replay: bounds the memory of one step;
#: seals that arrive before the blocks they cover wait in the replica's bounded pending set.
REPLAY_BATCH = 1000
#: Length of one audit line accepted by `replay` (a block is at most 256 KiB: base64 and
#: the decoded copy of the ops fit well within 2 MiB).
MAX_LINE_CHARS = 2 * 1024 * 1024


def _seal_index(replica: Replica) -> dict[bytes, list[tuple[int, int, bytes]]]:
    return {a: sorted(s) for a, s in replica.seals.items()}


def audit_entries(replica: Replica) -> Iterator[dict]:
    """One self-contained entry per block held, in apply order (causal: parents first)."""
    seals = _seal_index(replica)
    for cid in replica.order:
        data = replica.blocks.get(cid)
        if data is None:  # pruned by compaction
            continue
        ch = decode_change(data, trusted=True)
        seal = next((s for f, last, s in seals.get(ch.actor, ()) if f <= ch.seq <= last), None)
        yield {
            "cid": cidlib.format_cid(cid), "collection": ch.collection, "id": ch.doc_id,
            "parents": [cidlib.format_cid(p) for p in ch.parents], "height": ch.height,
            "clock": ch.hlc, "time": ch.hlc >> 16, "actor": ch.actor.hex(), "seq": ch.seq,
            "ops": to_json_value([list(op) for op in ch.ops]), "meta": meta_text(ch.meta),
            "schema": None if ch.schema is None else cidlib.format_cid(ch.schema),
            "block": base64.b64encode(data).decode("ascii"),
            "seal": None if seal is None else base64.b64encode(seal).decode("ascii"),
        }


def entry_envelopes(entry: Any) -> tuple[bytes, bytes | None]:
    """(block envelope, seal envelope or None) of one audit entry. The block's CID is
    recomputed and must equal the entry's `cid`. Raises ValidationError/CorruptBlockError."""
    if type(entry) is not dict:
        raise ValidationError("an audit line must be a JSON object")
    data = decode_base64(entry.get("block"), "block")
    if cidlib.compute(data) != cidlib.parse_cid(entry.get("cid", "")):
        raise CorruptBlockError(f"block bytes do not hash to {entry.get('cid')!r:.80}")
    decode_change(data)
    seal = entry.get("seal")
    return envelope(KIND_BLOCK, data), None if seal is None else envelope(KIND_SEAL, decode_base64(seal, "seal"))


def is_audit_entry(entry: Any) -> bool:
    """Whether a parsed NDJSON line is an audit entry (as opposed to a document export)."""
    return type(entry) is dict and "block" in entry and "cid" in entry


def replay(db: Any, entries: Iterable[Any]) -> int:
    """Apply audit entries to `db` (a Database) through the same checks as sync; returns
    the number of new blocks. Raises ValidationError/CorruptBlockError for a bad line."""
    seen_seals: set[bytes] = set()
    batch: list[bytes] = []
    new = 0
    for entry in entries:
        block, seal = entry_envelopes(entry)
        if seal is not None and seal not in seen_seals:
            seen_seals.add(seal)
            batch.append(seal)
        batch.append(block)
        if len(batch) >= REPLAY_BATCH:
            new += db.apply_blocks(batch)
            batch = []
    if batch:
        new += db.apply_blocks(batch)
    return new
