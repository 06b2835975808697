"""The write API of a collection: create, update, patch, upsert, delete, increment.

A mixin of `Collection` (its state lives in `Collection.__init__`). Every write validates
against the schema and unique indexes, then goes through the engine's write path
(docs/STORAGE.md): built into a block, applied to memory, handed to the sink.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ..core import cid as cidlib
from ..core.block import (
    OP_DELETE,
    OP_INCR,
    OP_SET,
    OP_UNSET,
    check_collection,
    check_doc_id,
    check_write_field,
)
from ..core.encoding import encode
from ..core.errors import (
    ConflictError,
    NotFoundError,
    ValidationError,
)
from ..core.query.filters import compile_filter
from ..core.query.schema import SchemaValidationError
from ..core.state import DocState, counter_add
from .docops import (
    MISSING,
    schema_texts,
    set_ops,
    split_texts,
    strip_meta,
    type_name,
    with_texts,
)
from .locking import locked
from .views import DocViews

if TYPE_CHECKING:
    from ..core.replica import Replica
    from .engine import Engine
    from .indexing import CollectionIndexes, IndexedCollection

#: Encoded bytes of the unset ops `update` puts in one block. The fields to remove are the
#: document's, and its fields may come from many writes (other members' too): past this, the
#: removals go first in blocks of their own, half a block each (room for parents and
#: metadata), so a wide document never makes `update` exceed MAX_BLOCK_BYTES.
UNSET_CHUNK_BYTES = 128 * 1024


#: Encoded bytes of the migration ops (the lens result, `_migration_ops`) a partial write to
#: a document of an older schema version puts in one block. Every field of the document may
#: change shape, and its fields may come from many blocks: past this, the migration goes first
#: in blocks of their own, half a block each as for UNSET_CHUNK_BYTES (the same reason).
MIGRATION_CHUNK_BYTES = 128 * 1024


def _runs(items: list, size: Callable[[Any], int], budget: int) -> list[list]:
    """`items` cut greedily into runs of at most `budget` total `size` (an item larger than
    the budget makes a run alone); at least one run."""
    out: list[list] = [[]]
    held = 0
    for x in items:
        n = size(x)
        if out[-1] and held + n > budget:
            out.append([])
            held = 0
        out[-1].append(x)
        held += n
    return out


def unset_chunks(fields: list[str]) -> list[list[str]]:
    """`fields` cut into runs whose unset ops encode to about UNSET_CHUNK_BYTES at most (an
    op is the field's UTF-8 bytes plus a few bytes of framing); at least one run."""
    return _runs(fields, lambda f: len(f.encode("utf-8")) + 8, UNSET_CHUNK_BYTES)


def migration_chunks(ops: list) -> list[list]:
    """Migration ops cut into runs of at most MIGRATION_CHUNK_BYTES encoded (an op whose
    value alone is larger makes a block alone); at least one run."""
    return _runs(ops, lambda op: len(encode(op)), MIGRATION_CHUNK_BYTES)


class CollectionWrites:
    """Writes of one collection (mixed into `Collection`)."""

    name: str
    _e: Engine
    _replica: Replica
    _views: DocViews
    _ci: CollectionIndexes
    _entry: IndexedCollection

    def _access(self) -> None:
        raise NotImplementedError  # Collection's

    def _state(self, doc_id: str) -> DocState | None:
        raise NotImplementedError  # Collection's

    # ------------------------------------------------------------ writes

    def _write(self, doc_id: str, ops: list) -> str:
        return cidlib.format_cid(self._e.write(self.name, doc_id, ops, self._views.schema_raw))

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
            if not compile_filter(where).match(self._views.view(state)):
                raise ConflictError(f"{self.name}/{state.doc_id} does not match the `where` condition")

    def _has_unique(self) -> bool:
        ci = self._ci
        return bool(len(ci)) and any(i.unique for i in ci)

    def _check_unique(self, fields: dict, doc_id: str, state: DocState | None = None) -> None:
        """The full resulting document against every unique index, before anything is
        written: a new duplicate → ConflictError and nothing changes. A key the write leaves
        as it is never refuses it (a merge may have made it a duplicate: that is reported by
        unique_violations(), and must not freeze the document)."""
        self._e.indexing.ready_unique(self._entry)
        d = dict(fields)
        d["_id"] = doc_id
        current = None
        if state is not None and not state.deleted:
            current = self._views.view(state, False)
        self._ci.check_unique(d, doc_id, current)

    def _migration_ops(self, state: DocState) -> list | None:
        """Ops that rewrite a document written under an older schema version into the current
        one (the lens result), so a partial write never mixes old and new field shapes.
        None when the document is current (or there is no schema history)."""
        v = self._views
        if not v.lens or v.schema is None:
            return None
        sid = self._e.schemas.doc_schema_id(state)
        if sid is None or sid == v.schema.version_id:
            return None
        user = v.user_view(state)
        raw = state.user_fields()
        changed = {k: v for k, v in user.items()
                   if k not in raw or type(raw[k]) is not type(v) or raw[k] != v}
        ops = set_ops(changed)
        ops.extend((OP_UNSET, k) for k in raw if k not in user)
        return ops

    @locked
    def create(self, doc: dict, id: str | None = None) -> str:
        """Create a document; returns its id. An id of a live document → ConflictError.
        A `Text` value makes the field a collaborative text (see `text`).

        Metadata fields in `doc` (as `get` returns them) are ignored, except that `_id` is
        the id when `id` is not given, and `_id`/`_collection` contradicting the call are
        refused (ValidationError)."""
        doc, meta_id = strip_meta(doc, self.name, id)
        if id is None:
            id = meta_id
        doc, texts = split_texts(schema_texts(self._views.schema, doc))
        ops = set_ops(doc)
        e = self._e
        e.check_writable()
        check_collection(self.name)
        self._access()
        schema = self._views.schema
        if schema is not None:
            schema.validate(doc)
        if id is None:
            id = e.new_id()
        else:
            check_doc_id(id)
            state = self._replica.doc(self.name, id)
            if state is not None and not state.deleted:
                raise ConflictError(f"{self.name}/{id} already exists")
        if len(self._ci) and self._has_unique():
            self._check_unique(doc, id)
        state = self._replica.doc(self.name, id)
        is_new = state is None
        ops = with_texts(e, state, ops, texts)
        e.write(self.name, id, ops, self._views.schema_raw)
        if is_new:
            self._views.note_id(id)
        return id

    @locked
    def update(self, doc_id: str, doc: dict, *, if_version: int | None = None,
               if_heads: Any = None, where: Any = None) -> str:
        """Replace the user fields (fields not given are removed). Returns the commit CID.
        Metadata fields in `doc` are ignored, so `update(id, get(id))` works. Removals beyond
        UNSET_CHUNK_BYTES go first in blocks of their own, atomically with the write."""
        doc, _ = strip_meta(doc, self.name, check_doc_id(doc_id))
        doc, texts = split_texts(schema_texts(self._views.schema, doc))
        ops = set_ops(doc)
        self._e.check_writable()
        self._access()
        state = self._live(doc_id)
        self._check_cas(state, if_version, if_heads, where)
        schema = self._views.schema
        if schema is not None:
            schema.validate(doc)
        if len(self._ci) and self._has_unique():
            self._check_unique(doc, doc_id, state)
        given = {op[1] for op in ops} | set(texts)
        *first, last = unset_chunks([f for f in state.user_fields() if f not in given])
        ops.extend((OP_UNSET, f) for f in last)
        return self._write_in_steps(doc_id, [[(OP_UNSET, f) for f in fields] for fields in first],
                                    lambda: with_texts(self._e, state, ops, texts))

    def _write_in_steps(self, doc_id: str, first: list[list], last: Callable[[], list]) -> str:
        """A block for each op list of `first`, then one of `last()` (made after them), as one
        atomic unit: inside the caller's batch, or a batch of their own. Returns the last CID."""
        if first and self._e.batch is None:
            with self._e.atomic(len(first) + 1):
                return self._write_in_steps(doc_id, first, last)
        for ops in first:
            self._write(doc_id, ops)
        return self._write(doc_id, last())

    def _write_migrated(self, doc_id: str, mig: list, ops: list, *, sort: bool) -> str:
        """`ops` written to a document of an older schema version, with its migration ops
        `mig` (those of fields `ops` does not write): in one block (`mig` then `ops`, sorted
        by field when `sort`) when the migration fits MIGRATION_CHUNK_BYTES, else the
        migration first in blocks of their own, atomically with the write (as `update` does
        wide removals): a lens result never makes a partial write exceed MAX_BLOCK_BYTES."""
        *first, last = migration_chunks(mig)
        last = last + ops
        if sort:
            last.sort(key=lambda op: op[1])
        return self._write_in_steps(doc_id, first, lambda: last)

    @locked
    def patch(self, doc_id: str, fields: dict, *, unset: Iterable[str] = (),
              if_version: int | None = None, if_heads: Any = None, where: Any = None) -> str:
        """Set the given fields (and remove those in `unset`). Returns the commit CID.
        Metadata fields in `fields` are ignored. A field name never contains '.': to change
        a nested value, patch the whole top-level field."""
        fields, _ = strip_meta(fields, self.name, check_doc_id(doc_id))
        fields, texts = split_texts(schema_texts(self._views.schema, fields))
        ops = set_ops(fields)
        if isinstance(unset, str):
            raise ValidationError("unset must be a list of field names, not a str")
        unset = [check_write_field(f) for f in unset]
        if ({op[1] for op in ops} | set(texts)) & set(unset):
            raise ValidationError("a field cannot be both set and unset")
        self._e.check_writable()
        self._access()
        state = self._live(doc_id)
        self._check_cas(state, if_version, if_heads, where)
        sch = self._views.schema
        if sch is not None:
            sch.validate(fields, partial=True)
            for f in unset:
                fd = sch.get_field(f)
                if fd is not None and fd.type.required:
                    where_ = f"{sch.name}.{f}"
                    raise SchemaValidationError(f"{where_}: required ({fd.type}); it cannot be "
                                                f"removed", field=where_)
        if len(self._ci) and self._has_unique():
            result = self._views.user_view(state)
            result.update(fields)
            for f in unset:
                result.pop(f, None)
            self._check_unique(result, doc_id, state)
        ops = with_texts(self._e, state, ops, texts)
        ops.extend((OP_UNSET, f) for f in sorted(set(unset)))
        mig = self._migration_ops(state)
        if mig:   # what the write sets or removes replaces the lens result of that field
            own = {op[1] for op in ops}
            return self._write_migrated(doc_id, [op for op in mig if op[1] not in own], ops, sort=True)
        return self._write(doc_id, ops)

    @locked
    def upsert(self, doc_id: str, fields: dict) -> str:
        """Create the document with `fields` when it does not exist (or is deleted), else
        set the given fields (like `patch`). Returns the commit CID."""
        check_doc_id(doc_id)
        self._access()
        state = self._replica.doc(self.name, doc_id)
        if state is None or state.deleted:
            self.create(fields, id=doc_id)
            state = self._replica.doc(self.name, doc_id)
            assert state is not None
            return self._e.heads_text(state.heads)[0]
        return self.patch(doc_id, fields)

    @locked
    def delete(self, doc_id: str, *, if_version: int | None = None, if_heads: Any = None,
               where: Any = None) -> str:
        """Tombstone the document (history is kept). Returns the commit CID."""
        self._e.check_writable()
        self._access()
        state = self._live(doc_id)
        self._check_cas(state, if_version, if_heads, where)
        return self._write(doc_id, [(OP_DELETE,)])

    @locked
    def increment(self, doc_id: str, field: str, by: int | float = 1) -> str:
        """Add `by` to a counter field (concurrent increments all count). The field must be
        absent (it starts from 0) or hold a number: a string, bool, list, map, bytes or null
        → ValidationError, and nothing is written."""
        check_write_field(field)
        if type(by) not in (int, float) or by != by or by in (float("inf"), float("-inf")):
            raise ValidationError("increment must be a finite int or float")
        if type(by) is int and not -(2**63) <= by < 2**63:
            raise ValidationError("increment must fit in 64 bits")
        self._e.check_writable()
        self._access()
        state = self._live(doc_id)
        schema = self._views.schema
        if schema is not None:
            schema.validate_increment(field, by)
        cur = self._views.user_view(state).get(field, MISSING)
        if cur is not MISSING and type(cur) not in (int, float):
            raise ValidationError(f"{self.name}/{doc_id}: cannot increment {field!r}: it holds "
                                  f"a {type_name(cur)}, not a number")
        if cur is not MISSING and counter_add(cur, by) is None:
            raise ValidationError(f"incrementing {field} by {by!r} leaves the counter range (ints in "
                                  f"[-2**63, 2**63-1], finite floats): refused")
        ops: list = [(OP_INCR, field, by)]
        mig = self._migration_ops(state)
        if mig:
            # A set and an increment of one field in one block share a stamp, and the
            # increment would not count (it must be stamped after the base): fold it in.
            setter = next((op for op in mig if op[1] == field and op[0] == OP_SET), None)
            if setter is not None and type(setter[2]) in (int, float):
                mig = [op for op in mig if op is not setter] + [(OP_SET, field, setter[2] + by)]
                ops = []
        if len(self._ci) and self._has_unique():
            result = self._views.user_view(state)
            cur = result.get(field)
            result[field] = (cur if type(cur) is int or type(cur) is float else 0) + by
            self._check_unique(result, doc_id, state)
        if mig:   # the field's own migration op stays in the block of the increment
            return self._write_migrated(doc_id, [op for op in mig if op[1] != field],
                                        [op for op in mig if op[1] == field] + ops, sort=False)
        return self._write(doc_id, ops)
