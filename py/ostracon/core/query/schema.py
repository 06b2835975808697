"""Collection schemas in a DefraDB-like SDL, content-addressed versions, and lenses.

SDL subset (hand-written tokenizer/parser: pure, no dependency, same in Pyodide)::

    # comments, commas and "descriptions" are allowed and ignored
    type Todo {
      title: String!
      done: Boolean
      votes: Int @crdt(type: pncounter)
      tags: [String!]
      author: Author            # another type of the same SDL (or already registered)
      email: String @index(unique: true)
    }
    type Author { name: String }

Scalars: String, Int (any size), Float (accepts ints), Boolean, ID (string), Blob/Bytes
(bytes), JSON (any JSON-like value), DateTime (RFC 3339 string, core/lexical.py), Text (a
collaborative text field, docs/TEXT.md: read and validated as a string; a str written to it
becomes a text). `[T]` lists, `!` required
(present and non-null on a full write; never set to null by a patch). A field of object type
is an embedded map validated against that type (DefraDB's relations between collections are
not part of this subset). Directives: `@crdt(type: lww|pncounter|pcounter)` (counters need
Int or Float), `@index` and `@index(unique: true)` (the Database creates these indexes).
Unknown types, directives or arguments are errors, so a typo never silently disappears.

Versions: the canonical form of a schema is a plain map (sorted keys) of its name, fields,
the object types it embeds, and the version ids of its predecessors (`parents`); encoded
with canonical msgpack, its CIDv1 (codec messagepack 0x0201, sha2-256, base32 `b…`) is the
schema version id. Parents make the versions a Merkle DAG (no cycles; re-registering an old
shape after a change makes a new version). Registering an SDL whose shape equals the current
head's is a no-op; a new version's parents are all current leaves, so registering after
concurrent versions arrived from peers merges them. The head of a name is the childless version with the greatest
(height, id), so replicas that learn the same versions agree on it.

Lenses: `register_lens(from_id, to_id, fn)` registers a function that rewrites a document's
user fields from one version to another; reads apply the lenses along the shortest lens path
(`migrate`), so old blocks stay valid history and are translated only when read.

Encoding: the canonical msgpack of core/encoding.py and the CIDs of core/cid.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .. import cid, encoding
from ..errors import CorruptBlockError, LensNotFoundError, NotFoundError, SchemaValidationError, ValidationError  # noqa: F401  (re-exported)
from ..lexical import is_datetime
from .sdl import (
    SCALARS,
    Field,
    FieldType,
    TypeDef,
    parse_type_str,
)

__all__ = ["Schema", "SchemaValidationError", "LensNotFoundError", "schema_from_canonical"]

_META = frozenset({"_id", "_version", "_created", "_updated", "_deleted", "_heads", "_docID"})
MAX_VALIDATE_DEPTH = 64    # nesting of embedded objects/lists inside one document


@dataclass(frozen=True)
class Schema:
    """One version of one collection's schema (frozen; validated on construction)."""

    root: TypeDef
    embedded: tuple[TypeDef, ...] = ()
    parents: tuple[str, ...] = ()
    version_id: str = field(init=False, default="")
    height: int = field(init=False, default=1, compare=False)

    def __post_init__(self) -> None:
        emb = tuple(sorted(self.embedded, key=lambda t: t.name))
        names = [t.name for t in emb]
        if len(set(names)) != len(names) or self.root.name in names:
            raise ValidationError(f"schema {self.root.name}: an embedded type appears twice")
        object.__setattr__(self, "embedded", emb)
        known = {self.root.name, *names}
        for t in (self.root, *emb):
            for f in t.fields:
                b = f.type.base
                if b not in SCALARS and b not in known:
                    raise ValidationError(f"{t.name}.{f.name}: unknown type {b}")
        parents = tuple(sorted(set(self.parents)))
        for p in parents:
            if not isinstance(p, str) or not p.startswith("b"):
                raise ValidationError(f"schema {self.root.name}: bad parent id {p!r}")
        object.__setattr__(self, "parents", parents)
        object.__setattr__(self, "version_id", _cid(self.canonical_bytes()))

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def fields(self) -> tuple[Field, ...]:
        return self.root.fields

    def get_field(self, name: str) -> Field | None:
        for f in self.root.fields:
            if f.name == name:
                return f
        return None

    def shape(self) -> dict:
        """Canonical map without the parent links (what 'same schema' compares)."""
        return {"v": 1, "name": self.root.name, "fields": self.root.canonical()["fields"],
                "types": {t.name: t.canonical() for t in self.embedded}}

    def canonical(self) -> dict:
        return {**self.shape(), "parents": list(self.parents)}

    def canonical_bytes(self) -> bytes:
        return _canonical_bytes(self.canonical())

    def indexes(self) -> list[tuple[str, bool]]:
        """(field, unique) for each @index directive: the Database creates these."""
        return [(f.name, f.index == "unique") for f in self.root.fields if f.index]

    def to_sdl(self) -> str:
        out = []
        for t in (self.root, *self.embedded):
            out.append(f"type {t.name} {{")
            for f in t.fields:
                d = ""
                if f.crdt != "lww":
                    d += f" @crdt(type: {f.crdt})"
                if f.index == "index":
                    d += " @index"
                elif f.index == "unique":
                    d += " @index(unique: true)"
                out.append(f"  {f.name}: {f.type}{d}")
            out.append("}")
        return "\n".join(out) + "\n"

    # --- validation ----------------------------------------------------------------------
    def validate(self, doc: Any, partial: bool = False) -> None:
        """Raise SchemaValidationError naming the field if `doc` does not fit.

        partial=True is for patches: absent fields are fine, but a present required field
        may not be null. Metadata names are ignored; other `_` names are refused."""
        types = {t.name: t.field_map() for t in (self.root, *self.embedded)}
        _check_object(types, self.root.name, doc, self.root.name, partial, 0)

    def validate_increment(self, field_name: str, by: Any) -> None:
        """An increment must target a counter field, with a delta of its numeric type."""
        where = f"{self.name}.{field_name}"
        f = self.get_field(field_name)
        if f is None:
            raise SchemaValidationError(f"{where}: not a field of {self.name}", field=where)
        if f.crdt == "lww":
            raise SchemaValidationError(
                f"{where}: not a counter; declare it with @crdt(type: pncounter)", field=where)
        if type(by) is bool or not isinstance(by, (int, float)) or (
                f.type.name == "Int" and not isinstance(by, int)):
            raise SchemaValidationError(f"{where}: increment must be a {f.type.name}, got {by!r}",
                                        field=where)
        if f.crdt == "pcounter" and by < 0:
            raise SchemaValidationError(f"{where}: a pcounter only grows (got {by})", field=where)


def _type_name(v: Any) -> str:
    if v is None:
        return "null"
    return {bool: "Boolean", int: "Int", float: "Float", str: "String", bytes: "Bytes",
            list: "list", dict: "object"}.get(type(v), type(v).__name__)


def _check_object(types: dict, tname: str, doc: Any, where: str, partial: bool, depth: int) -> None:
    if depth > MAX_VALIDATE_DEPTH:
        raise SchemaValidationError(f"{where}: nested deeper than {MAX_VALIDATE_DEPTH}", field=where)
    if not isinstance(doc, dict):
        raise SchemaValidationError(f"{where}: expected a {tname} object, got {_type_name(doc)}",
                                    field=where)
    fields = types[tname]
    for k, v in doc.items():
        if not isinstance(k, str):
            raise SchemaValidationError(f"{where}: field names must be strings", field=where)
        path = f"{where}.{k}"
        if k.startswith("_"):
            if depth == 0 and k in _META:
                continue
            raise SchemaValidationError(f"{path}: names beginning with '_' are reserved", field=path)
        f = fields.get(k)
        if f is None:
            raise SchemaValidationError(f"{path}: {tname} has no field {k!r}", field=path)
        _check_value(types, f.type, v, path, depth)
    if not partial:
        for name, f in fields.items():
            if f.type.required and doc.get(name) is None:
                raise SchemaValidationError(f"{where}.{name}: required ({f.type}) but missing",
                                            field=f"{where}.{name}")


def _check_value(types: dict, t: FieldType, v: Any, where: str, depth: int) -> None:
    if v is None:
        if t.required:
            raise SchemaValidationError(f"{where}: required ({t}), got null", field=where)
        return
    if t.of is not None:
        if not isinstance(v, (list, tuple)):
            raise SchemaValidationError(f"{where}: expected {t}, got {_type_name(v)}", field=where)
        for i, x in enumerate(v):
            _check_value(types, t.of, x, f"{where}[{i}]", depth + 1)
        return
    n = t.name
    assert n is not None  # a type that is not a list has a name
    ok = True
    if n in ("String", "ID", "Text"):
        ok = isinstance(v, str)
    elif n == "Int":
        ok = isinstance(v, int) and not isinstance(v, bool)
    elif n == "Float":
        ok = isinstance(v, (int, float)) and not isinstance(v, bool)
        if ok and isinstance(v, float) and v != v:
            ok = False
    elif n == "Boolean":
        ok = isinstance(v, bool)
    elif n in ("Blob", "Bytes"):
        ok = isinstance(v, (bytes, bytearray))
    elif n == "DateTime":
        ok = isinstance(v, str) and _is_datetime(v)
        if not ok:
            raise SchemaValidationError(
                f"{where}: expected DateTime (ISO 8601 string), got {v!r}"[:300], field=where)
    elif n == "JSON":
        ok = _is_json(v, 0)
    else:
        _check_object(types, n, v, where, False, depth + 1)
        return
    if not ok:
        raise SchemaValidationError(f"{where}: expected {t}, got {_type_name(v)}", field=where)


def _is_datetime(s: str) -> bool:
    """The DateTime grammar (core/lexical.py): the same answer in every runtime."""
    return is_datetime(s)


def _is_json(v: Any, depth: int) -> bool:
    if depth > MAX_VALIDATE_DEPTH:
        return False
    if v is None or isinstance(v, (bool, int, str, bytes)):
        return True
    if isinstance(v, float):
        return v == v and v not in (float("inf"), float("-inf"))
    if isinstance(v, (list, tuple)):
        return all(_is_json(x, depth + 1) for x in v)
    if isinstance(v, dict):
        return all(isinstance(k, str) and _is_json(x, depth + 1) for k, x in v.items())
    return False


# --------------------------------------------------------------------------------------
# Canonical bytes and CIDs (local until core/encoding.py and core/cid.py exist)

def _canonical_bytes(obj: dict) -> bytes:
    return encoding.encode(obj)


def _cid(data: bytes) -> str:
    return cid.format_cid(cid.compute(data))


def schema_from_canonical(data: bytes) -> Schema:
    """Rebuild a Schema from its canonical bytes (a version received from a peer)."""
    try:
        obj = encoding.decode(data)
    except CorruptBlockError as e:
        raise ValidationError(f"schema record: {e}") from None
    try:
        if obj["v"] != 1:
            raise ValidationError("schema record: unknown version")

        def tdef(name: str, fields: dict) -> TypeDef:
            out = []
            for fname, fd in fields.items():
                out.append(Field(fname, parse_type_str(fd["type"]), fd["crdt"], fd["index"]))
            return TypeDef(name, tuple(out))
        root = tdef(obj["name"], obj["fields"])
        emb = tuple(tdef(n, t["fields"]) for n, t in obj["types"].items())
        s = Schema(root, emb, tuple(obj["parents"]))
    except ValidationError:
        raise
    except (KeyError, TypeError, AttributeError, ValueError):
        raise ValidationError("schema record: malformed") from None
    if s.canonical_bytes() != data:
        raise ValidationError("schema record: not in canonical form")
    return s


