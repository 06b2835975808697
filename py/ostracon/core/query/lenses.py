"""Declarative lenses: a schema migration written as data, so that it can be stored in the
DAG beside the schema version it leads to and applied identically on every replica and
runtime. PURE.

A lens is a list of steps applied in order to a document's user fields (top-level field
names; metadata never reaches a lens). The step vocabulary follows Cambria (Litt, van
Hardenberg, Henry: "Project Cambria: Translate your data with lenses", Ink & Switch, 2020),
reduced to the operations whose result does not depend on the runtime:

- `{"op": "rename", "from": a, "to": b}`: the value of `a` moves to `b` (replacing `b`);
  nothing happens when `a` is absent.
- `{"op": "copy", "from": a, "to": b}`: `b` becomes a copy of `a` (when `a` is present).
- `{"op": "default", "field": f, "value": v}`: `f` becomes `v` when it is absent or null.
- `{"op": "drop", "field": f}`: `f` is removed.
- `{"op": "convert", "field": f, "to": T}`: `f` converted to the scalar type T where the
  conversion is exact and defined the same everywhere: Int → String (ASCII decimal),
  Boolean → String ("true"/"false"), Int → Float (|n| ≤ 2**53), Float → Int (integral,
  |x| ≤ 2**53), String → Int (`core/lexical.parse_ascii_int`: ASCII digits, optional `-`, no
  leading zeros, at most `MAX_CONVERT_DIGITS` digits), String → Boolean ("true"/"false").
  Any other value is left as it is (a document that then breaks its schema is reported by
  `schema_violations()`, never guessed at).
- `{"op": "convert", "field": f, "map": [[from, to], ...]}`: a lookup table (Cambria's
  `convert` with a mapping); values compare by type and value (1 ≠ 1.0 ≠ True), a value not
  in the table is left as it is.

Field names follow the write rule (no '.', no leading '_'). The canonical form of a lens is
the canonical msgpack of its normalized step list (`lens_bytes`); `lens_from_bytes` is its
inverse and refuses anything that `DeclaredLens` would not accept (hostile peers).
"""

from __future__ import annotations

from typing import Any

from ..block import check_write_field
from ..encoding import canonical, decode, encode
from ..errors import CorruptBlockError, ValidationError
from ..lexical import parse_ascii_int

#: Steps per lens: migrations are a handful of renames and defaults; the cap bounds the
#: work a replicated (possibly hostile) lens can ask of every read.
MAX_LENS_STEPS = 64
#: Canonical bytes of one lens: far above any real migration (the mapping tables of
#: `convert` are the large part), small enough to keep a schema document small.
MAX_LENS_BYTES = 64 * 1024
#: Entries of one `convert` mapping table (same reason as MAX_LENS_STEPS).
MAX_MAP_ENTRIES = 1024
#: Digits of a String → Int conversion: 2**63 has 19; beyond that integers need the
#: big-int encoding, which a migration has no business producing from text.
MAX_CONVERT_DIGITS = 19
#: Magnitude up to which every integer is exactly a float64 (IEEE 754 binary64 mantissa).
EXACT_FLOAT_INT = 2 ** 53

OPS = ("rename", "copy", "default", "drop", "convert")
CONVERT_TYPES = ("String", "Int", "Float", "Boolean")
_KEYS = {"rename": {"op", "from", "to"}, "copy": {"op", "from", "to"},
         "default": {"op", "field", "value"}, "drop": {"op", "field"}}


def _field(step: dict, key: str, where: str) -> str:
    name = step.get(key)
    try:
        return check_write_field(name)
    except ValidationError as exc:
        raise ValidationError(f"{where}: {key!r}: {exc}") from None


def _normalize_step(step: Any, i: int) -> dict:
    where = f"lens step {i}"
    if type(step) is not dict:
        raise ValidationError(f"{where}: a step is a map with an 'op' key")
    op = step.get("op")
    if op not in OPS:
        raise ValidationError(f"{where}: op must be one of {', '.join(OPS)}; not {op!r:.40}")
    if op == "convert":
        keys = set(step)
        if keys not in ({"op", "field", "to"}, {"op", "field", "map"}):
            raise ValidationError(f"{where}: convert takes 'field' and one of 'to' or 'map'")
        out: dict[str, Any] = {"op": op, "field": _field(step, "field", where)}
        if "to" in step:
            if step["to"] not in CONVERT_TYPES:
                raise ValidationError(f"{where}: convert 'to' must be one of {', '.join(CONVERT_TYPES)}")
            out["to"] = step["to"]
            return out
        table = step["map"]
        if type(table) is not list or len(table) > MAX_MAP_ENTRIES or not all(
                type(p) is list and len(p) == 2 for p in table):
            raise ValidationError(f"{where}: convert 'map' is a list of at most "
                                  f"{MAX_MAP_ENTRIES} [from, to] pairs")
        out["map"] = canonical(table)
        return out
    if set(step) != _KEYS[op]:
        raise ValidationError(f"{where}: {op} takes exactly {', '.join(sorted(_KEYS[op] - {'op'}))}")
    out = {"op": op}
    for key in sorted(_KEYS[op] - {"op", "value"}):
        out[key] = _field(step, key, where)
    if op == "default":
        out["value"] = canonical(step["value"])
    if op in ("rename", "copy") and out["from"] == out["to"]:
        raise ValidationError(f"{where}: {op} needs two different fields")
    return out


def _to_type(value: Any, to: str) -> Any:
    """`value` as scalar type `to`, or `value` itself where no exact conversion exists."""
    t = type(value)
    if to == "String":
        if t is bool:
            return "true" if value else "false"
        if t is int:
            return str(value)  # ASCII decimal for every int (no locale, no digit grouping)
    elif to == "Int":
        if t is float and value.is_integer() and abs(value) <= EXACT_FLOAT_INT:
            return int(value)
        if t is str:
            try:  # ASCII only: int() would also take other scripts' digits
                return parse_ascii_int(value, signed=True, max_digits=MAX_CONVERT_DIGITS)
            except ValidationError:
                return value
    elif to == "Float":
        if t is int and abs(value) <= EXACT_FLOAT_INT:
            return float(value)
    elif to == "Boolean":
        if t is str and value in ("true", "false"):
            return value == "true"
    return value


def _same(a: Any, b: Any) -> bool:
    """Equal by type and value at every level (True, 1 and 1.0 are three values)."""
    if type(a) is not type(b):
        return False
    if type(a) is dict:
        return a.keys() == b.keys() and all(_same(v, b[k]) for k, v in a.items())
    if type(a) is list:
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


class DeclaredLens:
    """A lens given as data (see the module docstring). Callable like a lens function:
    `lens(user_fields) -> user_fields`: a new top-level dict (the argument is not changed)
    whose nested values are shared with the argument and the lens, as views share them with
    the replica's state (whoever hands a document out copies it first).
    Raises ValidationError for a malformed step list."""

    __slots__ = ("steps", "data")

    def __init__(self, steps: Any) -> None:
        if type(steps) not in (list, tuple) or not steps:
            raise ValidationError("a declarative lens is a non-empty list of steps")
        if len(steps) > MAX_LENS_STEPS:
            raise ValidationError(f"a lens has at most {MAX_LENS_STEPS} steps")
        self.steps = tuple(_normalize_step(s, i) for i, s in enumerate(steps))
        self.data = encode([dict(s) for s in self.steps])
        if len(self.data) > MAX_LENS_BYTES:
            raise ValidationError(f"a lens is at most {MAX_LENS_BYTES} bytes in canonical form")

    def __call__(self, doc: dict) -> dict:
        out = dict(doc)
        for s in self.steps:
            op = s["op"]
            if op == "rename":
                if s["from"] in out:
                    out[s["to"]] = out.pop(s["from"])
            elif op == "copy":
                if s["from"] in out:
                    out[s["to"]] = out[s["from"]]
            elif op == "default":
                if out.get(s["field"]) is None:
                    out[s["field"]] = s["value"]
            elif op == "drop":
                out.pop(s["field"], None)
            elif s["field"] in out:  # convert
                v = out[s["field"]]
                if "to" in s:
                    out[s["field"]] = _to_type(v, s["to"])
                else:
                    for a, b in s["map"]:
                        if _same(a, v):
                            out[s["field"]] = b
                            break
        return out

    def to_list(self) -> list[dict]:
        """The normalized steps (a copy)."""
        return decode(self.data)  # a fresh copy of every nested value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DeclaredLens) and other.data == self.data

    def __hash__(self) -> int:
        return hash(self.data)

    def __repr__(self) -> str:
        return f"DeclaredLens({self.to_list()!r})"


def lens_bytes(steps: Any) -> bytes:
    """Canonical bytes of a declarative lens (validates it: ValidationError)."""
    return DeclaredLens(steps).data


def lens_from_bytes(data: Any) -> DeclaredLens:
    """The lens stored as `data`; ValidationError unless `data` is exactly the canonical
    form of a valid lens (so every replica reads the same steps from the same bytes)."""
    if type(data) is not bytes or len(data) > MAX_LENS_BYTES:
        raise ValidationError("a stored lens is at most MAX_LENS_BYTES of canonical msgpack")
    try:
        steps = decode(data)
    except CorruptBlockError as exc:
        raise ValidationError(f"a stored lens is not canonical msgpack: {exc}") from None
    lens = DeclaredLens(steps)
    if lens.data != data:
        raise ValidationError("a stored lens is not in canonical form")
    return lens
