"""Value conversion between the JS API and the engine (both directions).

    JS                          Python
    null / undefined            None   (Python None → null)
    boolean                     bool
    number, safe integer        int    (so 1.0 in JS is the int 1: JS cannot tell them apart)
    number, otherwise           float  (1.5, 1e300, 2**60 as a Number, NaN → refused on write)
    -0                          float -0.0 (worker.js marks it: toPy would make it the int 0)
    BigInt                      int    (Python ints outside ±(2**53-1) come back as BigInt)
    string                      str
    Uint8Array / ArrayBuffer    bytes  (bytes come back as Uint8Array)
    Array                       list
    plain object                dict with str keys
    anything else (Date, Map…)  ValidationError

The worker converts a request with `pyodide.toPy(value, {depth: -1})`, which leaves JS null,
BigInt and foreign objects as proxies; `from_js` finishes the job. `prepare` turns a result
into what `pyodide.ffi.to_js` maps onto these rules. The JS side of the rules is carried by an
`Ffi` object, so the conversion runs natively in tests with `NativeFfi` (no JS types exist
there: anything that is not a plain Python value is refused).
"""

from __future__ import annotations

from typing import Any

from ...core.errors import OstraconError, ValidationError

#: Largest nesting the converters walk; deeper values are refused rather than overflowing
#: Python's recursion limit (which is lower in the browser).
MAX_DEPTH = 100
#: Number.MAX_SAFE_INTEGER: the largest int a JS number holds exactly.
MAX_SAFE_INTEGER = 2**53 - 1


class NativeFfi:
    """The JS side of the conversion where there is no JS (native tests): null is None and
    results stay Python values."""

    null: Any = None

    def classify(self, v: Any) -> str | None:
        """"null", "bigint", "negzero" (worker.js's marker for JS -0), "proxy" (another JS
        object) or None (not a JS value)."""
        return None

    def bigint_value(self, v: Any) -> int:
        raise ValidationError("no BigInt outside a browser")

    def proxy_type(self, v: Any) -> str:
        return type(v).__name__

    def to_js(self, prepared: Any) -> Any:
        return prepared


class PyodideFfi(NativeFfi):
    """The conversion through `pyodide.ffi` (inside the worker)."""

    def __init__(self) -> None:
        import js
        from pyodide.ffi import JsBigInt, JsNull, JsProxy, jsnull, to_js

        self._types = (JsNull, JsBigInt, JsProxy)
        self.null = jsnull
        self._to_js = to_js
        self._from_entries = js.Object.fromEntries

    def classify(self, v: Any) -> str | None:
        js_null, js_bigint, js_proxy = self._types
        if isinstance(v, js_null):
            return "null"
        if isinstance(v, js_bigint):
            return "bigint"
        if isinstance(v, js_proxy):
            # JS has one number type and toPy turns -0 into the int 0; the canonical value
            # (docs/MERGE.md) is the float -0.0, so worker.js sends -0 as a marked object.
            if getattr(v, "ostraconNegativeZero", None) is True:
                return "negzero"
            return "proxy"
        return None

    def bigint_value(self, v: Any) -> int:
        return int(v)

    def proxy_type(self, v: Any) -> str:
        ctor = getattr(v, "constructor", None)
        return getattr(ctor, "name", None) or type(v).__name__

    def to_js(self, prepared: Any) -> Any:
        return self._to_js(prepared, dict_converter=self._from_entries, create_pyproxies=False)


_default_ffi: NativeFfi | None = None


def default_ffi() -> NativeFfi:
    """`PyodideFfi` under Pyodide, else `NativeFfi` (created once)."""
    global _default_ffi
    if _default_ffi is None:
        import sys

        _default_ffi = PyodideFfi() if sys.platform == "emscripten" else NativeFfi()
    return _default_ffi


def from_js(v: Any, ffi: NativeFfi | None = None, depth: int = 0) -> Any:
    """A request value (after `toPy`) → the engine's value. Raises ValidationError for values
    the engine cannot store (Date, Map, functions, non-string keys, nesting > MAX_DEPTH)."""
    if depth > MAX_DEPTH:
        raise ValidationError(f"value nested deeper than {MAX_DEPTH} levels")
    t = type(v)
    if t is str or t is bool or t is float or t is int or v is None:
        return v
    if t is dict:
        out = {}
        for k, x in v.items():
            if type(k) is not str:
                raise ValidationError(f"object keys must be strings, not {type(k).__name__}")
            out[k] = from_js(x, ffi, depth + 1)
        return out
    if t is list:
        return [from_js(x, ffi, depth + 1) for x in v]
    if t is memoryview or t is bytearray or t is bytes:
        return bytes(v)
    f = ffi or default_ffi()
    kind = f.classify(v)
    if kind == "null":
        return None
    if kind == "bigint":
        return f.bigint_value(v)
    if kind == "negzero":
        return -0.0
    if isinstance(v, int):  # int subclasses
        return int(v)
    if kind == "proxy":
        raise ValidationError(f"cannot store a JS {f.proxy_type(v)}: use null, booleans, numbers, BigInt, "
                              "strings, Uint8Array, arrays and plain objects")
    raise ValidationError(f"cannot store a {t.__name__}")


def prepare(v: Any, null: Any = None, depth: int = 0) -> Any:
    """An engine value → what `to_js` maps onto the table above: None → `null`, ints within
    ±MAX_SAFE_INTEGER → float (a JS number; exact there), larger ints stay ints (BigInt),
    tuples → lists, dict keys → str."""
    if depth > MAX_DEPTH:
        raise ValidationError(f"value nested deeper than {MAX_DEPTH} levels")
    t = type(v)
    if v is None:
        return null
    if t is int:
        return float(v) if -MAX_SAFE_INTEGER <= v <= MAX_SAFE_INTEGER else v
    if t is dict:
        return {str(k): prepare(x, null, depth + 1) for k, x in v.items()}
    if t is list or t is tuple:
        return [prepare(x, null, depth + 1) for x in v]
    return v


def to_js_value(v: Any, ffi: NativeFfi | None = None) -> Any:
    """Python value → plain JS value (objects, arrays, null, BigInt, Uint8Array)."""
    f = ffi or default_ffi()
    return f.to_js(prepare(v, f.null))


def error_info(e: BaseException) -> dict:
    """A failure as the JS API reports it: {name, message, names[, opIndex][, traceback]}
    where `names` is the class and its bases (so `err.is("StorageError")` holds for
    DiskFullError) and `opIndex` the position of the refused op of an atomic batch
    (`OstraconError.op_index`; only when set). Never raises: an error whose text cannot be
    made is still reported, with a message saying so."""
    names = [c.__name__ for c in type(e).__mro__ if c not in (object, BaseException)]
    try:
        message = str(e)
    except Exception:  # noqa: BLE001 - a failure is told even when it cannot describe itself
        message = "(the error could not be described)"
    info: dict[str, Any] = {"name": type(e).__name__, "message": message, "names": names}
    if isinstance(e, OstraconError) and e.op_index is not None:
        info["opIndex"] = e.op_index
    if not isinstance(e, OstraconError):
        import traceback

        info["traceback"] = "".join(traceback.format_exception(e))
    return info
