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

import json
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .. import cid, encoding
from ..errors import CorruptBlockError, LensNotFoundError, NotFoundError, SchemaValidationError, ValidationError  # noqa: F401  (re-exported)
from ..lexical import is_datetime

__all__ = ["FieldType", "Field", "TypeDef", "Schema", "SchemaRegistry", "SchemaValidationError",
           "LensNotFoundError", "parse_sdl", "SCALARS", "schema_from_canonical"]

SCALARS = frozenset({"String", "Int", "Float", "Boolean", "ID", "Blob", "Bytes", "JSON", "DateTime",
                     "Text"})
CRDT_TYPES = frozenset({"lww", "pncounter", "pcounter"})
_META = frozenset({"_id", "_version", "_created", "_updated", "_deleted", "_heads", "_docID"})

# Limits (named, documented): SDL arrives from users and peers; these bound parse work.
MAX_SDL_CHARS = 256 * 1024
MAX_TYPES = 256
MAX_FIELDS = 1024          # per type
MAX_FIELD_NAME = 256       # same as the engine's field-name limit
MAX_LIST_NESTING = 8
MAX_VALIDATE_DEPTH = 64    # nesting of embedded objects/lists inside one document
MAX_LENS_PATH = 64


# --------------------------------------------------------------------------------------
# Model

@dataclass(frozen=True)
class FieldType:
    name: str | None = None            # scalar or object type name; None for a list
    of: FieldType | None = None        # element type of a list
    required: bool = False

    def __post_init__(self) -> None:
        if (self.name is None) == (self.of is None):
            raise ValidationError("FieldType: exactly one of name / of")

    def __str__(self) -> str:
        base = f"[{self.of}]" if self.of is not None else str(self.name)
        return base + ("!" if self.required else "")

    @property
    def base(self) -> str:
        t = self
        while t.of is not None:
            t = t.of
        return t.name  # type: ignore[return-value]

    @property
    def is_list(self) -> bool:
        return self.of is not None


@dataclass(frozen=True)
class Field:
    name: str
    type: FieldType
    crdt: str = "lww"
    index: str | None = None           # None | "index" | "unique"

    def __post_init__(self) -> None:
        _check_field_name(self.name, self.name)
        if self.crdt not in CRDT_TYPES:
            raise ValidationError(f"{self.name}: unknown crdt type {self.crdt!r} "
                                  f"(one of {sorted(CRDT_TYPES)})")
        if self.crdt != "lww" and (self.type.is_list or self.type.name not in ("Int", "Float")):
            raise ValidationError(f"{self.name}: @crdt(type: {self.crdt}) needs Int or Float, "
                                  f"not {self.type}")
        if self.index not in (None, "index", "unique"):
            raise ValidationError(f"{self.name}: index must be None, 'index' or 'unique'")

    def canonical(self) -> dict:
        return {"type": str(self.type), "crdt": self.crdt, "index": self.index}


@dataclass(frozen=True)
class TypeDef:
    name: str
    fields: tuple[Field, ...]

    def __post_init__(self) -> None:
        _check_type_name(self.name)
        if len(self.fields) > MAX_FIELDS:
            raise ValidationError(f"type {self.name}: more than {MAX_FIELDS} fields")
        names = [f.name for f in self.fields]
        if len(set(names)) != len(names):
            dup = sorted(n for n in names if names.count(n) > 1)[0]
            raise ValidationError(f"type {self.name}: field {dup} is declared twice")
        object.__setattr__(self, "fields", tuple(sorted(self.fields, key=lambda f: f.name)))

    def field_map(self) -> dict[str, Field]:
        return {f.name: f for f in self.fields}

    def canonical(self) -> dict:
        return {"fields": {f.name: f.canonical() for f in self.fields}}


def _check_type_name(name: Any) -> None:
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name):
        raise ValidationError(f"type name {name!r} must match [A-Za-z][A-Za-z0-9_]*")
    if name in SCALARS:
        raise ValidationError(f"type name {name!r} is a built-in scalar")


def _check_field_name(name: Any, where: str) -> None:
    if not isinstance(name, str) or not name or len(name) > MAX_FIELD_NAME:
        raise ValidationError(f"{where}: field names are 1..{MAX_FIELD_NAME} characters")
    if name.startswith("_"):
        raise ValidationError(f"{where}: field names beginning with '_' are reserved")


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
                out.append(Field(fname, _parse_type_str(fd["type"]), fd["crdt"], fd["index"]))
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


def _parse_type_str(s: str) -> FieldType:
    toks = _tokenize(s)
    p = _Parser(toks, s)
    t = p.type_ref(0)
    if p.peek()[0] != "EOF":
        raise ValidationError(f"bad type {s!r}")
    return t


# --------------------------------------------------------------------------------------
# SDL tokenizer and parser

_TOKEN_RE = re.compile(r"""
    (?P<ws>[\s,\ufeff]+|\#[^\n\r]*)
  | (?P<block>\"\"\"(?:[^"\\]|\\.|"(?!""))*\"\"\")
  | (?P<str>"(?:[^"\\\n\r]|\\.)*")
  | (?P<num>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
  | (?P<name>[_A-Za-z][_0-9A-Za-z]*)
  | (?P<punct>[{}()\[\]:!@=|&])
""", re.VERBOSE | re.DOTALL | re.ASCII)


def _tokenize(src: str) -> list[tuple[str, str, int]]:
    out: list[tuple[str, str, int]] = []
    pos, n = 0, len(src)
    while pos < n:
        m = _TOKEN_RE.match(src, pos)
        if m is None:
            line = src.count("\n", 0, pos) + 1
            raise ValidationError(f"SDL line {line}: unexpected character {src[pos]!r}")
        kind = m.lastgroup
        assert kind is not None  # every alternative of _TOKEN_RE is a named group
        if kind != "ws":
            out.append((kind, m.group(), pos))
        pos = m.end()
    out.append(("EOF", "", n))
    return out


class _Parser:
    def __init__(self, toks: list[tuple[str, str, int]], src: str) -> None:
        self.toks = toks
        self.i = 0
        self.src = src

    def peek(self) -> tuple[str, str, int]:
        return self.toks[self.i]

    def err(self, msg: str, tok: tuple[str, str, int] | None = None) -> ValidationError:
        tok = tok or self.peek()
        line = self.src.count("\n", 0, tok[2]) + 1
        got = tok[1] or "end of input"
        return ValidationError(f"SDL line {line}: {msg} (at {got!r})")

    def take(self, kind: str | None = None, value: str | None = None) -> tuple[str, str, int]:
        tok = self.peek()
        if (kind and tok[0] != kind) or (value is not None and tok[1] != value):
            raise self.err(f"expected {value or kind}")
        self.i += 1
        return tok

    def skip_description(self) -> None:
        while self.peek()[0] in ("str", "block"):
            self.i += 1

    def document(self) -> list[tuple[str, list]]:
        types: list[tuple[str, list]] = []
        while True:
            self.skip_description()
            tok = self.peek()
            if tok[0] == "EOF":
                return types
            if tok[0] != "name" or tok[1] != "type":
                raise self.err("only `type Name { … }` definitions are supported")
            self.i += 1
            name = self.take("name")[1]
            _check_type_name(name)
            if self.peek()[1] == "@":
                raise self.err("type-level directives are not supported")
            self.take("punct", "{")
            fields = []
            while True:
                self.skip_description()
                if self.peek()[1] == "}":
                    self.i += 1
                    break
                fields.append(self.field_def(name))
                if len(fields) > MAX_FIELDS:
                    raise self.err(f"more than {MAX_FIELDS} fields")
            types.append((name, fields))
            if len(types) > MAX_TYPES:
                raise self.err(f"more than {MAX_TYPES} types")

    def field_def(self, tname: str) -> Field:
        tok = self.take("name")
        fname = tok[1]
        where = f"{tname}.{fname}"
        if fname.startswith("_"):
            raise ValidationError(f"{where}: field names beginning with '_' are reserved")
        if self.peek()[1] == "(":
            raise self.err(f"{where}: field arguments are not supported")
        self.take("punct", ":")
        ftype = self.type_ref(0)
        crdt, index = "lww", None
        while self.peek()[1] == "@":
            self.i += 1
            dname = self.take("name")[1]
            args = self.arguments() if self.peek()[1] == "(" else {}
            if dname == "crdt":
                if set(args) != {"type"} or not isinstance(args["type"], str):
                    raise ValidationError(f"{where}: @crdt takes exactly (type: lww|pncounter|pcounter)")
                crdt = args["type"]
            elif dname == "index":
                if set(args) - {"unique"} or not isinstance(args.get("unique", False), bool):
                    raise ValidationError(f"{where}: @index takes only (unique: true|false)")
                index = "unique" if args.get("unique") else "index"
            else:
                raise ValidationError(f"{where}: unknown directive @{dname} (supported: @crdt, @index)")
        try:
            return Field(fname, ftype, crdt, index)
        except ValidationError as e:
            raise ValidationError(f"{tname}.{e}") from None

    def type_ref(self, depth: int) -> FieldType:
        if depth > MAX_LIST_NESTING:
            raise self.err(f"lists nested deeper than {MAX_LIST_NESTING}")
        if self.peek()[1] == "[":
            self.i += 1
            inner = self.type_ref(depth + 1)
            self.take("punct", "]")
            t = FieldType(of=inner)
        else:
            t = FieldType(name=self.take("name")[1])
        if self.peek()[1] == "!":
            self.i += 1
            t = FieldType(t.name, t.of, True)
        return t

    def arguments(self) -> dict:
        self.take("punct", "(")
        out = {}
        while self.peek()[1] != ")":
            k = self.take("name")[1]
            self.take("punct", ":")
            if k in out:
                raise self.err(f"argument {k} given twice")
            out[k] = self.value(0)
        self.i += 1
        return out

    def value(self, depth: int) -> Any:
        if depth > 16:
            raise self.err("value nested too deeply")
        tok = self.peek()
        self.i += 1
        if tok[0] == "name":
            return {"true": True, "false": False, "null": None}.get(tok[1], tok[1])
        if tok[0] == "str":
            try:
                return json.loads(tok[1])
            except ValueError:
                raise self.err("bad string literal", tok) from None
        if tok[0] == "num":
            return float(tok[1]) if any(c in tok[1] for c in ".eE") else int(tok[1])
        if tok[1] == "[":
            out = []
            while self.peek()[1] != "]":
                if self.peek()[0] == "EOF":
                    raise self.err("unterminated list")
                out.append(self.value(depth + 1))
            self.i += 1
            return out
        if tok[1] == "{":
            obj = {}
            while self.peek()[1] != "}":
                k = self.take("name")[1]
                self.take("punct", ":")
                obj[k] = self.value(depth + 1)
            self.i += 1
            return obj
        raise self.err("expected a value", tok)


def parse_sdl(sdl: str) -> dict[str, TypeDef]:
    """Parse SDL into TypeDefs by name (no reference resolution; see SchemaRegistry)."""
    if not isinstance(sdl, str):
        raise ValidationError("SDL must be a string")
    if len(sdl) > MAX_SDL_CHARS:
        raise ValidationError(f"SDL longer than {MAX_SDL_CHARS} characters")
    p = _Parser(_tokenize(sdl), sdl)
    out: dict[str, TypeDef] = {}
    for name, fields in p.document():
        if name in out:
            raise ValidationError(f"type {name} is defined twice")
        out[name] = TypeDef(name, tuple(fields))
    if not out:
        raise ValidationError("SDL defines no type")
    return out


def _closure(root: TypeDef, defs: dict[str, TypeDef]) -> tuple[TypeDef, ...]:
    """Every object type `root` reaches, excluding root itself."""
    seen: dict[str, TypeDef] = {}
    todo = [root]
    while todo:
        t = todo.pop()
        for f in t.fields:
            b = f.type.base
            if b in SCALARS or b == root.name or b in seen:
                continue
            d = defs.get(b)
            if d is None:
                raise ValidationError(f"{t.name}.{f.name}: unknown type {b}")
            seen[b] = d
            todo.append(d)
    return tuple(seen.values())


# --------------------------------------------------------------------------------------
# Registry: version DAG + lenses

Lens = Callable[[dict], dict]


class SchemaRegistry:
    def __init__(self) -> None:
        self._versions: dict[str, Schema] = {}
        self._by_name: dict[str, list[str]] = {}
        self._children: dict[str, set[str]] = {}
        self._lenses: dict[str, dict[str, Lens]] = {}

    # --- versions ------------------------------------------------------------------------
    def register(self, sdl: str) -> dict[str, Schema]:
        """Parse `sdl` and register every type in it as its collection's next version.

        Object types are resolved against the SDL first, then against the registered heads.
        Returns {name: Schema}; an unchanged type returns its current head."""
        defs = parse_sdl(sdl)
        lookup = {n: self.get(n).root for n in self._by_name}
        lookup.update(defs)
        out = {}
        for name, td in defs.items():
            emb = _closure(td, lookup)
            head = self._head_id(name)
            # A new version links every leaf: concurrent versions are merged by it.
            cand = Schema(td, emb, tuple(self._leaves(name)))
            if head and self._versions[head].shape() == cand.shape():
                out[name] = self._versions[head]
                continue
            out[name] = self.add(cand)
        return out

    def add(self, schema: Schema) -> Schema:
        """Add a version (from register or from a peer). Parents must be known already."""
        if not isinstance(schema, Schema):
            raise ValidationError("add: expected a Schema")
        if schema.version_id in self._versions:
            return self._versions[schema.version_id]
        h = 1
        for p in schema.parents:
            ps = self._versions.get(p)
            if ps is None:
                raise NotFoundError(f"schema {schema.name}: parent version {p} is unknown")
            if ps.name != schema.name:
                raise ValidationError(f"schema {schema.name}: parent {p} belongs to {ps.name}")
            h = max(h, ps.height + 1)
        object.__setattr__(schema, "height", h)
        self._versions[schema.version_id] = schema
        self._by_name.setdefault(schema.name, []).append(schema.version_id)
        for p in schema.parents:
            self._children.setdefault(p, set()).add(schema.version_id)
        return schema

    def _leaves(self, name: str) -> list[str]:
        return [i for i in self._by_name.get(name, ()) if not self._children.get(i)]

    def _head_id(self, name: str) -> str | None:
        leaves = self._leaves(name)
        if not leaves:
            return None
        return max(leaves, key=lambda i: (self._versions[i].height, i))

    def names(self) -> list[str]:
        return sorted(self._by_name)

    def get(self, name: str) -> Schema:
        head = self._head_id(name)
        if head is None:
            raise NotFoundError(f"no schema named {name!r}")
        return self._versions[head]

    def has(self, version_id: str) -> bool:
        """Whether this registry holds the version `version_id`."""
        return version_id in self._versions

    def version(self, version_id: str) -> Schema:
        try:
            return self._versions[version_id]
        except KeyError:
            raise NotFoundError(f"unknown schema version {version_id!r}") from None

    def history(self, name: str) -> list[Schema]:
        """Every version of `name`, parents before children ((height, id) order)."""
        ids = self._by_name.get(name)
        if not ids:
            raise NotFoundError(f"no schema named {name!r}")
        return sorted((self._versions[i] for i in ids), key=lambda s: (s.height, s.version_id))

    # --- lenses --------------------------------------------------------------------------
    def register_lens(self, from_id: str, to_id: str, fn: Lens, *, reverse: Lens | None = None) -> None:
        a, b = self.version(from_id), self.version(to_id)
        if a.name != b.name:
            raise ValidationError(f"a lens must stay within one schema ({a.name} → {b.name})")
        if not callable(fn) or (reverse is not None and not callable(reverse)):
            raise ValidationError("a lens must be callable")
        if from_id == to_id:
            raise ValidationError("a lens needs two different versions")
        self._lenses.setdefault(from_id, {})[to_id] = fn
        if reverse is not None:
            self._lenses.setdefault(to_id, {})[from_id] = reverse

    def lens_path(self, from_id: str, to_id: str) -> list[str]:
        """Shortest chain of version ids from → to through registered lenses."""
        self.version(from_id)
        self.version(to_id)
        prev: dict[str, str | None] = {from_id: None}
        q = deque([from_id])
        while q:
            cur = q.popleft()
            if cur == to_id:
                path = [cur]
                while prev[path[-1]] is not None:
                    path.append(prev[path[-1]])  # type: ignore[arg-type]
                path.reverse()
                if len(path) - 1 > MAX_LENS_PATH:
                    break
                return path
            for nxt in sorted(set(self._lenses.get(cur, {})) | self._additive_children(cur)):
                if nxt not in prev:
                    prev[nxt] = cur
                    q.append(nxt)
        raise LensNotFoundError(f"no lens path from schema version {from_id} to {to_id}")

    def _additive_children(self, version_id: str) -> set[str]:
        """Child versions that only add optional fields: the identity is their lens, so a
        chain v1 →(additive) v2 →(lens) v3 composes without a lens for the additive step."""
        a = self._versions[version_id]
        out = set()
        for cid_ in self._children.get(version_id, ()):
            b = self._versions[cid_]
            if b.embedded != a.embedded:
                continue
            old = {f.name: f for f in a.fields}
            new = {f.name: f for f in b.fields}
            if all(new.get(n) == f for n, f in old.items()) and not any(
                    f.type.required for n, f in new.items() if n not in old):
                out.add(cid_)
        return out

    def _step(self, a: str, b: str) -> Lens:
        fn = self._lenses.get(a, {}).get(b)
        return fn if fn is not None else dict  # an additive step: the identity

    def migrate(self, doc: dict, from_id: str, to_id: str, *, check: bool = True) -> dict:
        """Translate a document's user fields along the lens path; metadata is kept.

        With `check` the result is validated against the target version, so a lens bug is
        reported (naming the field) instead of surfacing later."""
        if from_id == to_id:
            return doc
        path = self.lens_path(from_id, to_id)
        meta = {k: v for k, v in doc.items() if isinstance(k, str) and k.startswith("_")}
        user = {k: v for k, v in doc.items() if not (isinstance(k, str) and k.startswith("_"))}
        for a, b in zip(path, path[1:], strict=False):
            try:
                user = self._step(a, b)(dict(user))
            except Exception as e:  # a lens is user code: report which step failed
                raise ValidationError(f"lens {a} → {b} failed: {type(e).__name__}: {e}") from e
            if not isinstance(user, dict):
                raise ValidationError(f"lens {a} → {b} returned {type(user).__name__}, not a dict")
        if check:
            self.version(to_id).validate(user)
        return {**user, **meta}

    def read(self, doc: dict, version_id: str | None, *, check: bool = True) -> dict:
        """Bring a document written under `version_id` to its schema's current head."""
        if version_id is None:
            return doc
        target = self.get(self.version(version_id).name).version_id
        return self.migrate(doc, version_id, target, check=check)
