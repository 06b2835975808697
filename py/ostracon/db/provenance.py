"""Provenance: commit metadata on writes, and the queries that trace a value back to the
stage, inputs and model that produced it.

A write made inside `db.provenance({...})` (or a sink op carrying `meta`) stores the
metadata in its block (key `e`, core/block.py `check_meta`): it is covered by the block's
CID and by the seal of its batch, so it cannot be changed after the fact without the change
showing. `history()`, `ostracon log` and GraphQL `_commits` show it; `commits(stage=...)`
lists the commits a stage wrote; `trace(collection, id, field)` goes blame → commit →
inputs (each input resolved to its own commit, collection and document).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..core import cid as cidlib
from ..core.actors import is_actor
from ..core.block import check_doc_id, check_field, check_meta, meta_text
from ..core.errors import HistoryPrunedError, NotFoundError, ValidationError
from .docops import commit_info
from .locking import locked

if TYPE_CHECKING:
    from .engine import Engine

#: Commits `commits()` returns at most per call (newest first); the scan itself is linear
#: in the blocks held, so a page bound keeps one call's answer small.
COMMITS_LIMIT = 1000


class ProvenanceMixin:
    """`provenance`, `commits`, `trace` for Database (uses the engine `_engine`)."""

    _engine: Engine

    @contextlib.contextmanager
    def provenance(self, meta: dict) -> Iterator[dict]:
        """Within the `with` block, every write of this thread carries `meta` (nested scopes:
        the innermost wins). Keys: stage, provider, model, run, note (str of at most 256
        chars) and inputs (up to 64 CIDs the write was derived from). Raises
        ValidationError for unknown keys, wrong types or more than 4 KiB encoded."""
        checked = check_meta(meta)
        local = self._engine.local
        outer = getattr(local, "meta", None)
        local.meta = checked
        try:
            yield meta_text(checked) or {}
        finally:
            local.meta = outer

    @contextlib.contextmanager
    def as_identity(self, identity: Any) -> Iterator[str]:
        """Within the `with` block, writes of this thread are made and signed by `identity`
        (an Identity: `actor` public key and `sign`) instead of the database's own — one
        identity per pipeline stage or worker, so blame and history name who wrote what.
        Its blocks are sealed at the next flush with its key and served to peers only once
        sealed and durable, like the database's own. Yields the actor (hex). Collaborative
        text edits stay with the database's own identity (ValidationError inside).
        Caveat: the own-sequence record that protects the database's own actor against
        reusing sequence numbers after its storage was restored from an older copy is kept
        for the database's own identity only."""
        e = self._engine
        actor: Any = getattr(identity, "actor", None)
        sign = getattr(identity, "sign", None)
        if not is_actor(actor) or not callable(sign):
            raise ValidationError("identity must have an `actor` id (Ed25519 or P-256, core/actors.py) "
                                  "and a `sign` callable")
        with e.lock:
            e.check_writable()
            if actor != e.replica.actor:
                known = e.sink.stage_signers.get(actor)
                if known is None:
                    e.replica.add_stage_actor(actor)
                    e.sink.stage_signers[actor] = sign
        local = e.local
        outer = getattr(local, "actor", None)
        local.actor = None if actor == e.replica.actor else actor
        try:
            yield actor.hex()
        finally:
            local.actor = outer

    @locked
    def commits(self, *, stage: str | None = None, collection: str | None = None,
                doc_id: str | None = None, actor: str | None = None,
                limit: int = COMMITS_LIMIT, **meta: str) -> list[dict]:
        """Commits held by this replica matching every given condition, newest applied
        first, as `history()` describes them. `stage` and other text metadata keys
        (provider, model, run) match exactly; pruned commits are skipped. Linear in the
        number of blocks held. Raises ValidationError for an unknown metadata key."""
        self._engine.check_open()
        want = dict(meta)
        if stage is not None:
            want["stage"] = stage
        for k, v in want.items():
            if k not in ("stage", "provider", "model", "run") or type(v) is not str:
                raise ValidationError(f"commits() filters on stage, provider, model, run (str), not {k!r}")
        if type(limit) is not int or limit < 1:
            raise ValidationError("limit must be a positive int")
        limit = min(limit, COMMITS_LIMIT)
        try:
            actor_raw = None if actor is None else bytes.fromhex(actor)
        except (TypeError, ValueError):
            raise ValidationError(f"actor must be hex: {actor!r:.80}") from None
        r = self._engine.replica
        out: list[dict] = []
        for cid in reversed(r.order):
            info = r.info.get(cid)
            if info is None or cid in r.pruned:
                continue
            if collection is not None and info.collection != collection:
                continue
            if doc_id is not None and info.doc_id != doc_id:
                continue
            if actor_raw is not None and info.actor != actor_raw:
                continue
            if want:
                m = r.change(cid).meta
                if m is None or any(m.get(k) != v for k, v in want.items()):
                    continue
            out.append(self._describe(cid))
            if len(out) >= limit:
                break
        return out

    def _describe(self, cid: bytes) -> dict:
        r = self._engine.replica
        info = r.info[cid]
        return {"collection": info.collection, "id": info.doc_id, **commit_info(r, cid)}

    @locked
    def trace(self, collection: str, doc_id: str, field: str) -> dict:
        """Where the current value of `collection/doc_id.field` came from: the commit that
        wrote it (with its metadata: stage, provider, model ...) and each input CID of that
        commit resolved to its commit (`None` when this replica does not hold it).
        Raises NotFoundError when the document or field does not exist."""
        self._engine.check_open()
        check_doc_id(doc_id)
        check_field(field)
        r = self._engine.replica
        state = r.doc(collection, doc_id)
        if state is None or state.deleted:
            raise NotFoundError(f"{collection}/{doc_id} does not exist")
        writer = state.blame().get(field)
        if writer is None:
            raise NotFoundError(f"{collection}/{doc_id} has no field {field!r}")
        commit = self._describe(writer[2])
        inputs: list[dict[str, Any]] = []
        for text in (commit.get("meta") or {}).get("inputs", []):
            raw = cidlib.parse_cid(text)
            if raw not in r.info:
                inputs.append({"cid": text, "commit": None})
                continue
            try:
                inputs.append({"cid": text, "commit": self._describe(raw)})
            except HistoryPrunedError:
                inputs.append({"cid": text, "commit": None, "pruned": True})
        return {"collection": collection, "id": doc_id, "field": field,
                "value": state.user_fields().get(field), "commit": commit, "inputs": inputs}
