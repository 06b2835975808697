"""Definitions a store carries beside its documents, as JSON-ready records for
`ostracon export` / `import` (and `Database.definitions` / `import_definitions`):

- `{"schema": {"id": version id, "data": base64}}`: a schema version, its canonical bytes
  exactly (so its id, which is their CID, is the same in the importing store), parents
  before children;
- `{"lens": {"from": id, "to": id, "data": base64}}`: a declarative lens
  (core/query/lenses.py), its canonical bytes;
- `{"index": {"collection", "fields", "unique", "name"}}`: a secondary index definition.

Lens *functions* (`register_lens` with a callable) are local to one open database and are
not carried: register them again after an import. Index entries are not carried either;
the importing store builds them.

An import checks every record before it changes anything (`check_definitions`: versions
decoded and hashed to their ids against a scratch copy of the registry, lenses decoded
and placed between known versions, index definitions well-formed), so a malformed or
hostile record raises ValidationError (or NotFoundError for a version whose parent is
neither known nor imported) and nothing is half-imported.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

from ..core.block import check_collection
from ..core.errors import NotFoundError, ValidationError
from ..core.query.lenses import DeclaredLens, lens_from_bytes
from ..core.query.schema import Schema, schema_from_canonical
from ..core.query.schema_registry import SchemaRegistry
from ..tagged_json import decode_base64
from .batch import MAX_BATCH_OPS

#: Definition records one import takes: a store has a handful of schemas, versions and
#: indexes, and the versions and lenses are written as one atomic batch (MAX_BATCH_OPS).
MAX_DEFINITIONS = MAX_BATCH_OPS
#: Fields of one index definition (compound indexes name a few fields).
MAX_INDEX_FIELDS = 16
KINDS = ("schema", "lens", "index")


@dataclass
class Definitions:
    """Checked definition records, ready to apply (`check_definitions`)."""

    versions: list[Schema] = field(default_factory=list)          # new ones, parents first
    lenses: list[tuple[str, str, DeclaredLens]] = field(default_factory=list)
    indexes: list[tuple[str, list[str], bool, str | None]] = field(default_factory=list)


def is_definition(entry: Any) -> bool:
    """Whether an export line is a definition record (not a document)."""
    return type(entry) is dict and len(entry) == 1 and next(iter(entry)) in KINDS


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def export_definitions(registry: SchemaRegistry, indexes: dict[str, list[dict]]) -> list[dict]:
    """Every schema version (parents first, by collection name), every declarative lens
    and the given index definitions ({collection: `Collection.indexes()`}) as records."""
    out: list[dict] = []
    for name in registry.names():
        for s in registry.history(name):
            out.append({"schema": {"id": s.version_id, "data": _b64(s.canonical_bytes())}})
    for a, b in registry.declared_lenses():
        lens = registry.declared_lens(a, b)
        assert lens is not None
        out.append({"lens": {"from": a, "to": b, "data": _b64(lens.data)}})
    for name in sorted(indexes):
        for ix in indexes[name]:
            if ix.get("state") != "dropped":
                out.append({"index": {"collection": name, "fields": list(ix["fields"]),
                                      "unique": bool(ix["unique"]), "name": ix["name"]}})
    return out


def _body(entry: Any, i: int, keys: set[str]) -> tuple[str, dict]:
    where = f"definition {i}"
    if not is_definition(entry):
        raise ValidationError(f"{where}: expected one of {', '.join(KINDS)}")
    kind, body = next(iter(entry.items()))
    if type(body) is not dict or set(body) != keys:
        raise ValidationError(f"{where}: a {kind} record has exactly the keys {sorted(keys)}")
    return f"{where} ({kind})", body


def _scratch(registry: SchemaRegistry) -> SchemaRegistry:
    """A registry holding what `registry` holds (declarative lenses included)."""
    out = SchemaRegistry()
    for name in registry.names():
        for s in registry.history(name):
            out.add(s)
    for a, b in registry.declared_lenses():
        lens = registry.declared_lens(a, b)
        assert lens is not None
        out.register_lens(a, b, lens)
    return out


def check_definitions(registry: SchemaRegistry, records: list[Any],
                      max_records: int = MAX_DEFINITIONS) -> Definitions:
    """Check definition records against `registry` without changing it (module docstring).
    Raises ValidationError / NotFoundError naming the record."""
    if type(records) is not list:
        raise ValidationError("definitions must be a list of records")
    if len(records) > max_records:
        raise ValidationError(f"at most {max_records} definition records, not {len(records)}")
    scratch = _scratch(registry)
    out = Definitions()
    pending: list[tuple[str, Schema]] = []
    for i, entry in enumerate(records):
        kind = next(iter(entry)) if is_definition(entry) else None
        if kind == "schema":
            where, body = _body(entry, i, {"id", "data"})
            s = schema_from_canonical(decode_base64(body["data"], f"{where}: data"))
            if type(body["id"]) is not str or s.version_id != body["id"]:
                raise ValidationError(f"{where}: the schema's bytes do not hash to its id")
            check_collection(s.name)
            if not scratch.has(s.version_id) and all(p.version_id != s.version_id for _, p in pending):
                pending.append((where, s))
        elif kind == "lens":
            where, body = _body(entry, i, {"from", "to", "data"})
            lens = lens_from_bytes(decode_base64(body["data"], f"{where}: data"))
            if type(body["from"]) is not str or type(body["to"]) is not str:
                raise ValidationError(f"{where}: from and to must be version ids")
            # A later record for the same direction wins, as a later write would.
            out.lenses = [x for x in out.lenses if x[:2] != (body["from"], body["to"])]
            out.lenses.append((body["from"], body["to"], lens))
        elif kind == "index":
            where, body = _body(entry, i, {"collection", "fields", "unique", "name"})
            collection, fields, name = body["collection"], body["fields"], body["name"]
            if (type(collection) is not str or type(fields) is not list or not fields
                    or len(fields) > MAX_INDEX_FIELDS or not all(type(f) is str for f in fields)
                    or type(body["unique"]) is not bool or (name is not None and type(name) is not str)):
                raise ValidationError(f"{where}: collection (str), fields (1..{MAX_INDEX_FIELDS} "
                                      f"str), unique (bool), name (str or null)")
            check_collection(collection)
            out.indexes.append((collection, list(fields), body["unique"], name))
        else:
            _body(entry, i, set())   # raises
    # Versions in any order: parents first, as far as they resolve.
    while pending:
        rest = [(w, s) for w, s in pending if not all(scratch.has(p) for p in s.parents)]
        for w, s in pending:
            if (w, s) not in rest:
                try:
                    scratch.add(s)
                except ValidationError as exc:
                    raise ValidationError(f"{w}: {exc}") from None
                out.versions.append(s)
        if len(rest) == len(pending):
            w, s = rest[0]
            raise NotFoundError(f"{w}: parent version of {s.name} {s.version_id} is neither known "
                                "nor imported")
        pending = rest
    for a, b, lens in out.lenses:
        try:
            scratch.register_lens(a, b, lens)
        except (ValidationError, NotFoundError) as exc:
            raise type(exc)(f"lens {a} → {b}: {exc}") from None
    return out
