"""Schemas of a database: the registry (SDL, versions, lenses; core/query/schema_registry.py), which
version a document was written under, reads brought to the current version, and the
stored list of versions (storage meta, durable at the next flush).

Schema versions are replicated like data: each version is a document of the reserved
collection `SCHEMA_COLLECTION` whose id is the version id and whose field `schema` holds
the canonical bytes, so it travels in signed blocks through the same DAG and sync as
everything else. A received version is adopted only if its bytes hash to its id and its
parents are known (a version whose parents have not arrived yet waits for them).

Declarative lenses (core/query/lenses.py) travel the same way: the document of version T
holds, in field `LENS_PREFIX + S`, the canonical bytes of the lens S → T. A received lens
is adopted once both versions are known; concurrent lenses for one direction resolve like
any field (last writer wins), so every replica ends with the same lens; a record unset
by a later write drops the lens everywhere. Lens functions
(callables) are local to one open database and never replicated."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import msgpack

from ..core import cid as cidlib
from ..core.block import OP_SET, check_collection
from ..core.errors import ConflictError, NotFoundError, StorageError, ValidationError
from ..core.query.lenses import DeclaredLens, lens_from_bytes
from ..core.query.schema import LensNotFoundError, Schema, schema_from_canonical
from ..core.query.schema_registry import SchemaRegistry
from ..core.query.sdl import parse_sdl
from ..core.replica import Replica
from ..core.state import DocState
from ..storage.base import Storage
from .exchange import check_definitions, export_definitions
from .locking import locked

if TYPE_CHECKING:
    from .collection import Collection
    from .engine import Engine

#: Head CID -> (hlc, schema id) entries cached to find which schema version a document was
#: written under without decoding its head block on every read; cleared when it grows past.
SCHEMA_CACHE_MAX = 100_000
#: Storage meta key of every schema version (canonical bytes).
META_SCHEMAS = "ostracon/schemas"
#: The reserved collection that carries schema versions between replicas (a name users
#: cannot open: `Database.collection` refuses it).
SCHEMA_COLLECTION = "ostracon.schemas"
#: Field of a schema-version document holding the canonical bytes.
SCHEMA_FIELD = "schema"
#: Prefix of the fields of a schema-version document that hold declarative lenses into that
#: version, keyed by the source version id (CIDs are base32: no '.', so a plain field).
LENS_PREFIX = "lens-"


class SchemaCatalog:
    """The schema registry of one database plus what reads and writes need from it."""

    def __init__(self, replica: Replica) -> None:
        self.registry = SchemaRegistry()
        self._replica = replica
        # Declarative lenses this replica holds a record of in the DAG (adopted or written):
        # the record is their truth, so one unset or deleted there is dropped here too.
        self.replicated_lenses: set[tuple[str, str]] = set()
        self._head_schema: dict[bytes, tuple[int, bytes | None]] = {}
        self.dirty = False   # versions changed since they were last written to storage meta

    def define(self, sdl: str) -> tuple[dict[str, Schema], bool]:
        """Register the types of `sdl` as next versions: ({name: schema}, whether any
        version changed). Collection names are checked before anything is registered."""
        for name in parse_sdl(sdl):
            check_collection(name)
        reg = self.registry
        before = {n: reg.get(n).version_id for n in reg.names()}
        out = reg.register(sdl)
        changed = any(before.get(n) != s.version_id for n, s in out.items())
        return out, changed

    def doc_schema_id(self, state: DocState) -> str | None:
        """The schema version the document was last written under: that of its newest head
        (by clock, then CID). None: written without a schema."""
        cache = self._head_schema
        best = None
        for h in state.heads:
            e = cache.get(h)
            if e is None:
                ch = self._replica.change(h)
                if len(cache) >= SCHEMA_CACHE_MAX:
                    cache.clear()
                e = cache[h] = (ch.hlc, ch.schema)
            if best is None or (e[0], h) > best[0]:
                best = ((e[0], h), e[1])
        if best is None or best[1] is None:
            return None
        return cidlib.format_cid(best[1])

    def migrated(self, head: Schema | None, state: DocState, doc: dict) -> dict:
        """`doc` (a view of `state`) brought to the schema version `head` through lenses;
        unchanged when no lens applies (additive change) or the version is unknown here."""
        sid = self.doc_schema_id(state)
        if sid is None or head is None or sid == head.version_id:
            return doc
        reg = self.registry
        try:
            reg.version(sid)
        except NotFoundError:
            return doc  # written under a version this replica has not been given
        try:
            return reg.migrate(doc, sid, head.version_id, check=False)
        except LensNotFoundError:
            return doc  # no lens: the change was additive (e.g. a new optional field)

    # ------------------------------------------------------------ replication

    def unpublished(self) -> list[tuple[str, bytes]]:
        """(version id, canonical bytes) of every known version not yet a document of
        SCHEMA_COLLECTION, parents first."""
        docs = self._replica.collections.get(SCHEMA_COLLECTION, {})
        reg = self.registry
        out = []
        for n in reg.names():
            for sch in reg.history(n):
                if sch.version_id not in docs:
                    out.append((sch.version_id, sch.canonical_bytes()))
        return out

    @staticmethod
    def version_ops(data: bytes) -> list:
        return [(OP_SET, SCHEMA_FIELD, data)]

    def adopt(self) -> bool:
        """Add every version received as a SCHEMA_COLLECTION document that is valid (its
        bytes hash to its id) and whose parents are known. Returns whether any was added."""
        docs = self._replica.collections.get(SCHEMA_COLLECTION)
        if not docs:
            return False
        reg = self.registry
        pending = []
        for vid in sorted(docs):
            state = docs[vid]
            if state.deleted:
                continue
            data = state.user_fields().get(SCHEMA_FIELD)
            if type(data) is not bytes or reg.has(vid):
                continue
            try:
                sch = schema_from_canonical(data)
                check_collection(sch.name)
            except ValidationError:
                continue  # not a schema: ignored (a hostile or broken peer)
            if sch.version_id == vid:
                pending.append(sch)
        added = False
        while pending:
            rest = [s for s in pending if not all(reg.has(p) for p in s.parents)]
            for sch in pending:
                if sch not in rest:
                    try:
                        reg.add(sch)
                        added = True
                    except ValidationError:
                        pass
            if len(rest) == len(pending):
                break  # parents not here yet: adopted when they arrive
            pending = rest
        return self._adopt_lenses(docs) or added

    def _adopt_lenses(self, docs: dict[str, DocState]) -> bool:
        """Register every replicated declarative lens whose two versions are known and
        that differs from the one registered. Returns whether any lens changed."""
        reg = self.registry
        changed = False
        present: set[tuple[str, str]] = set()
        for to_id in sorted(docs):
            state = docs[to_id]
            if state.deleted or not reg.has(to_id):
                continue
            fields = state.user_fields()
            for name in sorted(fields):
                if not name.startswith(LENS_PREFIX):
                    continue
                from_id = name[len(LENS_PREFIX):]
                if not reg.has(from_id):
                    continue  # the source version has not arrived yet
                try:
                    lens = lens_from_bytes(fields[name])
                    if reg.declared_lens(from_id, to_id) != lens:
                        reg.register_lens(from_id, to_id, lens)
                        changed = True
                    present.add((from_id, to_id))
                except ValidationError:
                    continue  # not a lens this version understands: ignored, like a bad schema
        # A lens whose record was unset or deleted (a later write won) is read by a replica
        # that merges everything at once, or reopens, as absent: every replica drops it.
        for key in reg.declared_lenses():
            if key in self.replicated_lenses and key not in present:
                reg.drop_declared_lens(*key)
                changed = True
        self.replicated_lenses = present
        return changed

    @staticmethod
    def lens_ops(from_id: str, lens: DeclaredLens) -> list:
        """Ops that store `lens` (from `from_id`) in the document of its target version."""
        return [(OP_SET, LENS_PREFIX + from_id, lens.data)]

    def register_lens(self, from_version: str, to_version: str, fn: Callable[[dict], dict],
                      reverse: Callable[[dict], dict] | None = None) -> None:
        self.registry.register_lens(from_version, to_version, fn, reverse=reverse)

    # ------------------------------------------------------------ storage meta

    def meta_record(self) -> bytes:
        """Every schema version (canonical bytes) as stored in storage meta (`META_SCHEMAS`)."""
        reg = self.registry
        versions = [s.canonical_bytes() for n in reg.names() for s in reg.history(n)]
        return msgpack.packb(versions, use_bin_type=True)

    def load(self, storage: Storage) -> None:
        raw = storage.get_meta(META_SCHEMAS)
        if raw is None:
            return
        try:
            versions = msgpack.unpackb(raw, raw=False)
            if type(versions) is not list:
                raise ValueError("not a list")
        except Exception as exc:  # noqa: BLE001 - msgpack raises several types
            raise StorageError(f"stored schemas are unreadable: {exc}") from None
        pending = [schema_from_canonical(v) for v in versions]
        reg = self.registry

        def known(version_id: str) -> bool:
            try:
                reg.version(version_id)
            except NotFoundError:
                return False
            return True

        while pending:  # parents first; tolerate any stored order
            rest = [s for s in pending if not all(known(p) for p in s.parents)]
            for s in pending:
                if s not in rest:
                    reg.add(s)
            if len(rest) == len(pending):
                raise StorageError("stored schemas reference unknown parent versions")
            pending = rest


class SchemaMethods:
    """The schema methods of `Database` (kept here with the rest of schemas)."""

    _engine: Engine
    _e: Engine
    _collections: dict[str, Collection]
    _gql: dict[bool, Any]
    _meta_dirty: bool

    @property
    def schemas(self) -> SchemaRegistry:   # provided by Database
        raise NotImplementedError

    def collection(self, name: str) -> Collection:   # provided by Database
        raise NotImplementedError

    def collections(self) -> list[str]:   # provided by Database
        raise NotImplementedError

    @locked
    def define_schema(self, sdl: str) -> dict[str, str]:
        """Register the types of `sdl` (DefraDB-like SDL; see docs/QUERIES.md) as the next
        schema versions of the collections of the same names. Returns {name: version id}
        (the CID of the canonical schema). Unchanged types keep their version. Writes to
        those collections are validated from now on and their blocks carry the version id;
        `@index` fields get indexes. Persisted in storage meta. ReadOnlyError on a read-only
        open (a schema is written: a version block and meta), ClosedError after close."""
        e = self._engine
        e.check_writable()
        out, changed = e.schemas.define(sdl)
        if changed:
            e.schemas.dirty = True
            self._meta_dirty = True
            self._schemas_changed()
        self._publish_schemas()
        for name, s in out.items():
            col = self.collection(name)
            for field, unique in s.indexes():
                col.create_index(field, unique=unique)
        return {n: s.version_id for n, s in out.items()}

    def _publish_schemas(self) -> None:
        """Write every schema version not yet in the DAG as a signed block (replicated to
        peers like data; see the module doc)."""
        e = self._engine
        if e.storage.read_only:
            return
        for vid, data in e.schemas.unpublished():
            e.write(SCHEMA_COLLECTION, vid, e.schemas.version_ops(data))

    def _adopt_schemas(self) -> None:
        """Adopt schema versions received from peers (after a merge touched them)."""
        e = self._engine
        if not e.schemas.adopt():
            return
        e.schemas.dirty = True
        self._meta_dirty = True
        self._schemas_changed()
        reg = e.schemas.registry
        for name in reg.names():
            col = self._collections.get(name)
            if col is None:
                continue
            self._lenses_changed(name)
            for field, unique in reg.get(name).indexes():
                try:
                    col.create_index(field, unique=unique)
                except ConflictError:
                    pass  # merged duplicates: the index waits for define_schema/create_index

    def _schemas_changed(self) -> None:
        self._gql.clear()
        for col in self._collections.values():
            col.refresh_schema()
        for name in self.schemas.names():
            if name not in self._collections:
                try:
                    self.collection(name)
                except ValidationError:
                    pass  # a type name that is no collection name (cannot hold documents)

    @locked
    def register_lens(self, from_version: str, to_version: str,
                      lens: Callable[[dict], dict] | list[dict], *,
                      reverse: Callable[[dict], dict] | list[dict] | None = None) -> None:
        """A lens translating a document's user fields from one schema version to another
        (and optionally back). Reads of documents written under an older version go through
        the shortest chain of lenses to the current one (additive steps need none).

        `lens` is either declarative — a list of steps (rename, copy, default, drop,
        convert; core/query/lenses.py) stored in the DAG with the target version, replicated
        and applied identically by every replica, persisted — or a function, which is local
        to this open database only (register it again after every open; other replicas do
        not see it). A function cannot replace a declarative lens of the same direction.
        Raises ValidationError for a malformed lens or versions of different schemas,
        NotFoundError for an unknown version."""
        e = self._engine
        e.check_open()
        fwd = DeclaredLens(lens) if isinstance(lens, (list, tuple)) else lens
        back = DeclaredLens(reverse) if isinstance(reverse, (list, tuple)) else reverse
        e.schemas.register_lens(from_version, to_version, fwd, reverse=back)
        if not e.storage.read_only:
            for src, dst, f in ((from_version, to_version, fwd), (to_version, from_version, back)):
                if isinstance(f, DeclaredLens):
                    e.write(SCHEMA_COLLECTION, dst, e.schemas.lens_ops(src, f))
                    e.schemas.replicated_lenses.add((src, dst))
        self._lenses_changed(e.schemas.registry.version(to_version).name)

    def _lenses_changed(self, name: str) -> None:
        """Reads of `name` changed shape: its index entries were built from the old views."""
        col = self._collections.get(name)
        if col is not None:
            col.rebuild_indexes()

    @locked
    def schema_history(self, name: str) -> list[dict]:
        """Every version of a schema, parents before children."""
        self._engine.check_open()
        return [{"version_id": s.version_id, "parents": list(s.parents), "height": s.height,
                 "sdl": s.to_sdl()} for s in self.schemas.history(name)]

    @locked
    def schema_versions(self) -> dict[str, str]:
        """{collection: current schema version id}."""
        self._engine.check_open()
        return {n: self.schemas.get(n).version_id for n in self.schemas.names()}

    # ------------------------------------------------------------ export / import

    @locked
    def definitions(self) -> list[dict]:
        """Schema versions, declarative lenses and index definitions as JSON-ready records
        (db/exchange.py): what `ostracon export` writes before the documents. Lens
        functions are local to this open database and not included."""
        e = self._engine
        e.check_open()
        # Collections with index definitions but no documents (yet) count too.
        names = set(self.collections()) | set(e.indexing.catalog.collections())
        names.discard(SCHEMA_COLLECTION)
        indexes = {n: self.collection(n).indexes() for n in sorted(names)}
        return export_definitions(self.schemas, indexes)

    @locked
    def import_definitions(self, records: Iterable[Any]) -> dict[str, int]:
        """Take schema versions, declarative lenses and index definitions exported by
        `definitions()`: all of them or, when one is refused, none (every record is checked
        first; the versions and lenses are written as one atomic batch, indexes made here
        are dropped again). Versions and lenses already held are skipped, identical index
        definitions too. Returns how many {"schemas", "lenses", "indexes"} were new.
        Raises ValidationError for a malformed or hostile record, NotFoundError for a
        version whose parent is neither held nor imported, ConflictError for a unique
        index the documents already break; ReadOnlyError, ClosedError."""
        e = self._engine
        e.check_writable()
        d = check_definitions(e.schemas.registry, records if type(records) is list else list(records))
        reg = e.schemas.registry
        lenses = [(a, b, lens) for a, b, lens in d.lenses if reg.declared_lens(a, b) != lens]
        made: list[tuple[Collection, str]] = []
        try:
            for name, fields, unique, index_name in d.indexes:
                col = self.collection(name)
                held = {i["name"] for i in col.indexes()}
                got = col.create_index(fields, unique=unique, name=index_name)
                if got not in held:
                    made.append((col, got))
            if d.versions or lenses:
                with e.atomic(len(d.versions) + len(lenses)):
                    for sch in d.versions:
                        e.write(SCHEMA_COLLECTION, sch.version_id, e.schemas.version_ops(sch.canonical_bytes()))
                    for a, b, lens in lenses:
                        e.write(SCHEMA_COLLECTION, b, e.schemas.lens_ops(a, lens))
        except BaseException:
            for col, index_name in reversed(made):
                col.drop_index(index_name)
            raise
        # Checked against a copy of the registry: these cannot be refused now.
        for sch in d.versions:
            reg.add(sch)
        for a, b, lens in lenses:
            reg.register_lens(a, b, lens)
            e.schemas.replicated_lenses.add((a, b))
        if d.versions or lenses:
            e.schemas.dirty = True
            self._meta_dirty = True
            self._schemas_changed()
            for name in sorted({reg.version(b).name for _, b, _ in lenses}):
                self._lenses_changed(name)
            for name in sorted({sch.name for sch in d.versions}):
                for field, unique in reg.get(name).indexes():
                    try:
                        self.collection(name).create_index(field, unique=unique)
                    except ConflictError:
                        pass  # duplicates already stored: reported by unique_violations()
        return {"schemas": len(d.versions), "lenses": len(lenses), "indexes": len(made)}
