"""Replication entry points of a Database: heads, version vectors, state hashes, and
blocks exchanged with another replica (`blocks_since` / `apply_blocks`).

A mixin of `Database` (its state lives in `Database.__init__`). Merged blocks are verified
by the replica (signatures, seals, causal order); documents they change are re-checked
against schemas and unique indexes and published on the change feed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..core import cid as cidlib
from ..core.actors import MAX_ACTOR_LEN, is_actor
from ..core.errors import ValidationError
from ..core.replica import ApplyResult
from .locking import locked
from .schemas import SCHEMA_COLLECTION

if TYPE_CHECKING:
    from ..storage.base import Storage
    from .collection import Collection
    from .engine import Engine


def _parse_actor(a: Any) -> bytes:
    """An actor id (core/actors.py: Ed25519 32 bytes, P-256 35 bytes), as bytes or hex."""
    if type(a) is str and len(a) <= 2 * MAX_ACTOR_LEN:
        try:
            a = bytes.fromhex(a)
        except ValueError:
            pass
    if is_actor(a):
        return a
    raise ValidationError(f"actor must be an actor id (32-byte Ed25519 key or 35-byte P-256 id), "
                          f"as bytes or hex: {a!r:.80}")


#: Compaction writes a snapshot only if it is smaller than the snapshot and records it


class ReplicationMixin:
    """Replication methods of `Database`."""

    _engine: Engine
    _collections: dict[str, Collection]
    storage: Storage
    last_apply: ApplyResult

    def collection(self, name: str) -> Collection:  # provided by Database
        raise NotImplementedError

    def _adopt_schemas(self) -> None:  # provided by SchemaMethods
        raise NotImplementedError

    @locked
    def heads(self) -> list[str]:
        self._engine.check_open()
        return [cidlib.format_cid(h) for h in self._engine.replica.heads()]

    @locked
    def version_vector(self) -> dict[str, int]:
        self._engine.check_open()
        return {a.hex(): n for a, n in self._engine.replica.version_vector().items()}

    @locked
    def state_hash(self) -> str:
        """sha256 over every document's (collection, id, deleted, fields, heads), sorted."""
        self._engine.check_open()
        self._engine.texts.commit_all()
        return self._state_hash()

    def _state_hash(self) -> str:
        h = hashlib.sha256()
        cols = self._engine.replica.collections
        for name in sorted(cols):
            docs = cols[name]
            for doc_id in sorted(docs):
                h.update(docs[doc_id].digest())
        return h.hexdigest()

    @locked
    def blocks_since(self, vector: dict | None = None) -> list[bytes]:
        """Envelopes (blocks and their seals) that a replica with `vector` lacks."""
        self._engine.check_open()
        self._engine.texts.commit_all()
        if vector is not None and not isinstance(vector, dict):
            raise ValidationError(f"a version vector is a dict of actor → seq, not {type(vector).__name__}")
        vec = {}
        for a, n in (vector or {}).items():
            if type(n) is not int or n < 0:
                raise ValidationError("version vector values must be ints >= 0")
            vec[_parse_actor(a)] = n
        return self._engine.replica.envelopes_since(vec)

    @locked
    def apply_blocks(self, envelopes: Iterable[bytes], *, strict: bool = True) -> int:
        """Verify and merge envelopes from another replica; returns how many blocks were new.

        strict=True: any malformed envelope → CorruptBlockError and nothing of the batch is
        applied. Details of the last call are in `last_apply`.
        """
        e = self._engine
        e.check_writable()
        r = e.replica
        result = r.apply_envelopes(list(envelopes), strict=strict, wall_ms=e.clock())
        self.last_apply = result
        now = e.clock()
        e.sink.add_merged(r.new_blocks(result.new), result.new_seals, now)
        e.sink_triggers(now)
        self._publish_merged(result)
        return result.new

    def _publish_merged(self, result: ApplyResult) -> None:
        """Documents a merge changed → schema adoption, rule checks, indexes, change feed
        (state lock held)."""
        e = self._engine
        r = e.replica
        if any(key[0] == SCHEMA_COLLECTION for key in result.changed_docs):
            self._adopt_schemas()  # before the documents are checked against them
        seen = set()
        for key in result.changed_docs:
            if key[0] == SCHEMA_COLLECTION:
                continue
            if key not in seen:
                seen.add(key)
                col = self._collections.get(key[0])
                if col is None and key[0] in e.schemas.registry.names():
                    col = self.collection(key[0])  # a schema to check the merge against
                if col is not None:
                    col.note_id(key[1])
                state = r.doc(*key)
                assert state is not None
                e.publish(key[0], key[1], state, None if col is None else col.violations_of)

    def _release_held(self) -> None:
        """Blocks held back for clock skew whose time has come (background step)."""
        if self._engine.replica.held_count and not self.storage.read_only:
            self.apply_blocks([])
