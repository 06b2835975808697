"""The schema SDL (a DefraDB-like subset): its type model and its hand-written tokenizer and parser. PURE.

Pure Python with no parser dependency so it behaves the same natively and in Pyodide. SDL arrives
from users and peers, so every size is bounded (the MAX_* limits below) and every unknown type,
directive or argument is a `ValidationError`, never silently dropped."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from ..errors import CorruptBlockError, LensNotFoundError, NotFoundError, SchemaValidationError, ValidationError  # noqa: F401  (re-exported)

SCALARS = frozenset({"String", "Int", "Float", "Boolean", "ID", "Blob", "Bytes", "JSON", "DateTime",
                     "Text"})
CRDT_TYPES = frozenset({"lww", "pncounter", "pcounter"})

# Limits (named, documented): SDL arrives from users and peers; these bound parse work.
MAX_SDL_CHARS = 256 * 1024
MAX_TYPES = 256
MAX_FIELDS = 1024          # per type
MAX_FIELD_NAME = 256       # same as the engine's field-name limit
MAX_LIST_NESTING = 8
#: A number literal in a directive argument: far above any meaningful value, and below
#: int()'s 4,300-digit default, an interpreter setting that must not decide what parses.
MAX_NUMBER_CHARS = 64
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


def parse_type_str(s: str) -> FieldType:
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
        got = tok[1][:80] or "end of input"   # a token can be long; the start locates it
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

    def number(self, tok: tuple[str, str, int]) -> int | float:
        text = tok[1]
        if len(text) > MAX_NUMBER_CHARS:
            raise self.err(f"number literal longer than {MAX_NUMBER_CHARS} characters", tok)
        if not any(c in text for c in ".eE"):
            return int(text)
        f = float(text)
        if f != f or f in (float("inf"), float("-inf")):
            raise self.err(f"number literal {text} is not finite as a float64", tok)
        return f

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
            return self.number(tok)
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


def type_closure(root: TypeDef, defs: dict[str, TypeDef]) -> tuple[TypeDef, ...]:
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
