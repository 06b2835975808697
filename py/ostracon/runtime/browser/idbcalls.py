"""The IndexedDB adapter's calls into web/bridge.js: loading the bridge, blocking on its
promises inside the suspension gate (JSPI), and mapping its rejections to the storage error
hierarchy (runtime/browser/indexeddb.py uses them; this module imports fine natively)."""

from __future__ import annotations

from typing import Any

from ...core.errors import DiskFullError, StorageError, StorageUnavailableError
from . import bridge as _bridge

_JS_API: tuple[Any, Any] | None = None


def js_api() -> tuple[Any, Any]:
    """(JS `Object`, `pyodide.ffi.to_js`), looked up once: reading a property of the worker's
    global scope through Pyodide's `js` module costs ~1 ms in Chromium (µs under Node), too
    much for every batch."""
    global _JS_API
    if _JS_API is None:
        import js
        from pyodide.ffi import to_js

        _JS_API = (js.Object, to_js)
    return _JS_API


def bridge() -> Any:
    """The JS bridge module (this file must import fine natively)."""
    return _bridge.load(StorageUnavailableError)


def js_error_to_storage(e: BaseException, what: str) -> StorageError:
    """Map a rejected bridge promise (JsException) to the storage error hierarchy."""
    name = getattr(e, "name", None)
    if name is None:
        js = getattr(e, "js_error", None)
        name = getattr(js, "name", None) if js is not None else None
    msg = f"{what}: {getattr(e, 'message', None) or e}"
    if name == "QuotaExceededError":
        return DiskFullError(f"{msg} (browser storage quota exceeded)")
    if name in ("StorageUnavailableError", "StorageClosedError"):
        return StorageUnavailableError(msg)
    return StorageError(msg)


def to_bytes(v: Any) -> bytes:
    """A JS Uint8Array (JsProxy) or Python buffer → bytes."""
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v)
    return v.to_bytes()


def run_blocking(awaitable: Any) -> Any:
    """Wait on a bridge promise inside the suspension gate (see `bridge.run_blocking`)."""
    return _bridge.run_blocking(awaitable, StorageUnavailableError)


def bridge_for(name: str) -> Any:
    """The bridge, once `name` is known to be a database name."""
    if not isinstance(name, str) or not name:
        raise StorageUnavailableError("IndexedDB database name must be a non-empty string")
    return bridge()


def check_can_block(what: str, awaitable: Any = None) -> None:
    """Raise unless this Python stack can block on a promise (Pyodide with JSPI)."""
    try:
        from pyodide.ffi import can_run_sync
    except ImportError:
        if hasattr(awaitable, "close"):
            awaitable.close()
        raise StorageUnavailableError(f"{what}: IndexedDB storage runs only under Pyodide") from None

    if not can_run_sync():
        raise StorageError(
            f"{what}: cannot block on IndexedDB here: enter Python through runPythonAsync/"
            "callPromising with JSPI enabled, or use `await flush_async()`"
        )


def run_sync(awaitable: Any, what: str) -> Any:
    check_can_block(what, awaitable)
    return run_blocking(awaitable)
