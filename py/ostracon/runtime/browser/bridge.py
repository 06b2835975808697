"""The one way Python reaches web/bridge.js (IndexedDB, WebCrypto, WebSocket, the gate).

The worker's loader (web/loader.js) calls `install(bridge_module)` once after loading the
wheel; it registers the JS module under `BRIDGE_MODULE`, the only place that name is spelled.
The adapters in this package call `load(error_class)` to get it, and `run_blocking` to wait on
one of its promises inside the suspension gate (see web/bridge.js and docs/BROWSER.md).

Natively nothing is registered: `load` raises the caller's error type, so the adapters import
fine and fail typed when used outside a browser. Tests register a fake module with
`install(fake)` (it only needs the attributes they call).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

#: The importable name of web/bridge.js inside Pyodide.
BRIDGE_MODULE = "ostracon_bridge"


def install(module: Any) -> None:
    """Make `module` (web/bridge.js as a JsProxy, or a fake in tests) importable as the bridge."""
    if sys.platform == "emscripten":
        from pyodide.ffi import JsProxy, register_js_module

        if isinstance(module, JsProxy):
            register_js_module(BRIDGE_MODULE, module)
            return
    sys.modules[BRIDGE_MODULE] = module


def uninstall() -> None:
    """Forget the bridge (tests)."""
    sys.modules.pop(BRIDGE_MODULE, None)


def load(error: type[Exception]) -> Any:
    """The bridge module; raises `error` when it was never installed (native, or a bare
    Pyodide without web/loader.js)."""
    try:
        return importlib.import_module(BRIDGE_MODULE)
    except ImportError as e:
        raise error(f"the browser runtime needs the JS bridge module {BRIDGE_MODULE!r} "
                    "(installed by web/loader.js)") from e


def _current_task() -> Any:
    import asyncio

    try:
        return asyncio.current_task()
    except RuntimeError:  # no running loop: entered from the worker's RPC path
        return None


def gate_kind() -> str:
    """"task" inside an asyncio task (the sync client), else "rpc" (see web/bridge.js)."""
    return "task" if _current_task() is not None else "rpc"


#: The asyncio tasks whose stack is suspended in a blocking wait right now (in `gate`).
_suspended_tasks: list[Any] = []


@contextmanager
def gate(error: type[Exception] = RuntimeError) -> Iterator[None]:
    """Bracket one blocking wait (`run_sync` on a bridge promise) with the suspension gate.

    While the stack is suspended, the worker starts no RPC batch (web/bridge.js) and, once
    `install_asyncio_gate` ran, no other sync client task takes a step: that task could enter
    the engine in the middle of this stack's operation, and a lock this stack holds would
    block the only thread for good (or, being re-entrant, let the second task in)."""
    b = load(error)
    task = _current_task()
    kind = "task" if task is not None else "rpc"
    b.gateEnter(kind)
    if task is not None:
        _suspended_tasks.append(task)
    try:
        yield
    finally:
        if task is not None:
            _suspended_tasks.remove(task)
        b.gateExit(kind)


#: Open while a blocking wait waits on the sync client itself (`sync_tasks_may_run`).
_sync_steps_allowed = 0


@contextmanager
def sync_tasks_may_run() -> Iterator[None]:
    """Let the sync client's tasks take steps during the blocking wait inside this block.

    For a wait on the sync client itself (stopping it at close): the waiting stack is at a
    point where no engine operation is half done, and the client cannot stop without taking
    steps (its cancelled tasks must run to finish), so holding them back would only make the
    wait run into its timeout, leaving the mailbox cursor unsaved."""
    global _sync_steps_allowed
    _sync_steps_allowed += 1
    try:
        yield
    finally:
        _sync_steps_allowed -= 1


def run_blocking(awaitable: Any, error: type[Exception] = RuntimeError) -> Any:
    """Block on a JS promise with `run_sync` (JSPI) inside the bridge's suspension gate: while
    this Python stack is suspended, the worker and the asyncio loop do not enter Python."""
    from pyodide.ffi import run_sync

    with gate(error):
        return run_sync(awaitable)


#: How long a deferred asyncio callback waits before checking the gate again. Blocking waits
#: (an IndexedDB commit, a WebCrypto call) take ~0.3-5 ms.
GATE_RETRY_S = 0.001
_gate_installed = False


def install_asyncio_gate() -> None:
    """Defer the sync client's task steps while an RPC batch or another task is suspended in a
    blocking wait.

    Pyodide's WebLoop schedules every callback (task steps, future callbacks, timers) through
    `call_later`. The sync client is an asyncio task; under JSPI an RPC batch that blocks on
    IndexedDB suspends and lets the JS event loop run, which would start a task step inside the
    engine's unfinished operation. Wrapping `call_later` makes such a callback re-check a
    millisecond later instead (and drop itself if its handle was cancelled meanwhile).
    A suspended task itself is resumed by a loop callback, so its own steps are never held
    back; the steps of every other sync client task are (`gate`), so the reader and the ticker
    never interleave inside one operation.
    """
    global _gate_installed
    if _gate_installed:
        return
    import asyncio

    b = load(RuntimeError)
    loop = asyncio.get_event_loop()
    orig = loop.call_later

    def call_later(delay: float, callback: Any, *args: Any, context: Any = None) -> Any:
        holder: list = []

        owner = getattr(callback, "__self__", None)
        if not (isinstance(owner, asyncio.Task) and _is_sync_task(owner)):
            # Everything else runs as scheduled: Pyodide's run_sync may itself need loop
            # callbacks to resume a suspended stack, so they must never be held back.
            return orig(delay, callback, *args, context=context)

        def guarded(*a: Any) -> None:
            if holder and holder[0].cancelled():
                return
            if not _sync_steps_allowed and (b.gateRpcBusy() or (_suspended_tasks and owner not in _suspended_tasks)):
                orig(GATE_RETRY_S, guarded, *a, context=context)
                return
            callback(*a)

        h = orig(delay, guarded, *args, context=context)
        holder.append(h)
        return h

    loop.call_later = call_later  # type: ignore[method-assign,assignment]  # call_soon/call_at use it too
    _gate_installed = True


def _is_sync_task(task: Any) -> bool:
    """A step or wake-up of the sync client's tasks (its reader loop and its ticker)."""
    coro = task.get_coro()
    return getattr(coro, "__qualname__", "").startswith("SyncClient.")
