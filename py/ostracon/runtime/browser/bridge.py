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
        if task is not None:
            _wake_waiters()


#: Open while a blocking wait waits on the sync client itself (`sync_tasks_may_run`).
_sync_steps_allowed = 0


@contextmanager
def sync_tasks_may_run() -> Iterator[None]:
    """Let the sync client's tasks take steps during the blocking wait inside this block.

    For a wait on the sync client itself (stopping it at close, or `yield_to_held_steps` at
    the start of an RPC batch): the waiting stack is at a point where no engine operation is
    half done, and the client cannot go on without taking steps (cancelled tasks must run to
    finish), so holding them back would only make the wait run into its timeout. It lifts
    the hold of the suspended RPC stack only: while one sync client task is suspended in a
    blocking wait, the others are still held back."""
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
#: A sync client step held back this long by suspended RPC batches makes the next RPC batch
#: let the held steps run first (`yield_to_held_steps`). Back-to-back RPC batches that each
#: block on IndexedDB keep the gate's RPC side busy at every moment the loop runs a callback,
#: so without this floor the sync client (its pushes, its heartbeats) could wait as long as
#: the page keeps calling. 0.25 s is well under the relay heartbeat (10 s) and far above one
#: blocking wait (~0.3-5 ms), so a page that pauses between calls never pays for it.
GATE_MAX_HOLD_S = 0.25
#: The longest an RPC batch waits at its start for held sync client steps to run
#: (`yield_to_held_steps`). A step is a bounded piece of work (one frame, one flush); the
#: bound keeps a client whose steps keep being held by its own suspended task (a long
#: IndexedDB write) from holding the calls up in turn.
GATE_YIELD_TIMEOUT_S = 0.1
_gate_installed = False


class GateStats:
    """What the gate cost the sync client since `reset_gate_stats` (one database per worker).

    `held_steps`: sync client steps (task steps and wake-ups) that were held back at least
    once; `longest_hold_ms`: the longest any of them waited; `yields`: RPC batches that let
    held steps run first (`GATE_MAX_HOLD_S`); `yield_timeouts`: of those, the ones whose wait
    ran into `GATE_YIELD_TIMEOUT_S`. Times come from the event loop's clock (seconds)."""

    def __init__(self) -> None:
        self.held_steps = 0
        self.longest_hold_s = 0.0
        self.yields = 0
        self.yield_timeouts = 0
        #: Steps held right now: a token → when it was first held (loop time).
        self.holding: dict[int, float] = {}
        self._next = 0

    def hold(self, token: int | None, now: float) -> int:
        """Record one more hold of a step (`token` None: its first); its token."""
        if token is None:
            self._next += 1
            token = self._next
            self.held_steps += 1
            self.holding[token] = now
        return token

    def release(self, token: int | None, now: float) -> None:
        """The step ran, or was dropped (its handle cancelled)."""
        if token is None:
            return
        since = self.holding.pop(token, None)
        if since is not None:
            self.longest_hold_s = max(self.longest_hold_s, now - since)
        _wake_waiters()

    def oldest_hold_s(self, now: float) -> float:
        """How long the longest-held step waits so far (0.0: none is held)."""
        return max((now - t for t in self.holding.values()), default=0.0)

    def as_dict(self) -> dict:
        """The JS API's shape (`syncStatus().gate`, docs/BROWSER.md): camelCase, ms."""
        return {"heldSteps": self.held_steps, "longestHoldMs": round(self.longest_hold_s * 1000, 3),
                "heldNow": len(self.holding), "yields": self.yields, "yieldTimeouts": self.yield_timeouts}


STATS = GateStats()
#: (condition, future) of `_wait_until` calls, resolved once the condition holds.
_waiters: list[tuple[Any, Any]] = []
#: The clock of hold times (seconds): None is the wrapped loop's `time()`; tests inject one.
clock: Any = None


def _wake_waiters() -> None:
    for entry in list(_waiters):
        cond, fut = entry
        if fut.done():
            _waiters.remove(entry)
        elif cond():
            _waiters.remove(entry)
            fut.set_result(True)


async def _wait_until(cond: Any, timeout_s: float | None) -> bool:
    """Wait until `cond()` holds (checked when a held step is released or a task leaves the
    gate, and again when this waiter resumes: a step that ran meanwhile may have suspended in
    a blocking wait); False when `timeout_s` (None: no bound) passed first."""
    import asyncio

    loop = asyncio.get_running_loop()
    end = None if timeout_s is None else loop.time() + timeout_s
    while not cond():
        left = None if end is None else end - loop.time()
        if left is not None and left <= 0:
            return False
        fut = loop.create_future()
        entry = (cond, fut)
        _waiters.append(entry)
        try:
            await asyncio.wait_for(fut, left)
        except TimeoutError:
            return bool(cond())
        finally:
            if entry in _waiters:
                _waiters.remove(entry)
    return True


def _no_task_suspended() -> bool:
    return not _suspended_tasks


async def no_task_suspended() -> None:
    """Wait until no sync client task is suspended in a blocking wait. Unbounded here: each
    such wait is on a bridge promise (IndexedDB, WebCrypto) that settles without Python, the
    same wait the worker makes before every RPC batch (`gateIdle`). A stack that goes on into
    the engine before that would enter the suspended task's unfinished operation."""
    await _wait_until(_no_task_suspended, None)


def reset_gate_stats() -> None:
    """Start counting afresh (a database was opened in this worker)."""
    global STATS
    STATS = GateStats()


def gate_stats() -> dict:
    """`GateStats.as_dict` of the current database."""
    return STATS.as_dict()


#: The loop `install_asyncio_gate` wrapped (its clock times the holds).
_loop: Any = None


def _now() -> float:
    if clock is not None:
        return float(clock())
    return float(_loop.time()) if _loop is not None else 0.0


def steps_starved() -> bool:
    """Has a sync client step been held back longer than `GATE_MAX_HOLD_S`?"""
    return bool(STATS.holding) and STATS.oldest_hold_s(_now()) >= GATE_MAX_HOLD_S


async def held_steps_ran(timeout_s: float) -> bool:
    """Wait until no sync client step is held back and no task is suspended, for at most
    `timeout_s` for the held steps (False: it passed), then for as long as a task stays
    suspended (`no_task_suspended`): the caller goes on into the engine afterwards."""
    ran = await _wait_until(lambda: not STATS.holding and not _suspended_tasks, timeout_s)
    if not ran:
        await no_task_suspended()
    return ran


async def let_held_steps_run() -> bool:
    """Wait, with the RPC side of the gate lifted (`sync_tasks_may_run`), until no sync client
    step is held back or `GATE_YIELD_TIMEOUT_S` passed; False on timeout. Counted in
    `STATS.yields` / `STATS.yield_timeouts`."""
    STATS.yields += 1
    with sync_tasks_may_run():
        ran = await held_steps_ran(GATE_YIELD_TIMEOUT_S)
    if not ran:
        STATS.yield_timeouts += 1
    return ran


def yield_to_held_steps() -> bool:
    """At the start of an RPC batch (no engine operation half done): when a sync client step
    has been held longer than `GATE_MAX_HOLD_S`, block on `let_held_steps_run` first. True
    if it did (never natively: the gate is only installed under Pyodide)."""
    if not _gate_installed or not steps_starved():
        return False
    run_blocking(let_held_steps_run())
    return True


def install_asyncio_gate(*task_classes: type) -> None:
    """Defer the sync client's task steps while an RPC batch or another task is suspended in a
    blocking wait.

    `task_classes` (default: `ostracon.sync.client.SyncClient`) are the classes whose
    coroutine methods run as the sync client's tasks (`sync_task_codes`).

    Pyodide's WebLoop schedules every callback (task steps, future callbacks, timers) through
    `call_later`. The sync client is an asyncio task; under JSPI an RPC batch that blocks on
    IndexedDB suspends and lets the JS event loop run, which would start a task step inside the
    engine's unfinished operation. Wrapping `call_later` makes such a callback re-check a
    millisecond later instead (and drop itself if its handle was cancelled meanwhile).
    A suspended task itself is resumed by a loop callback, so its own steps are never held
    back; the steps of every other sync client task are (`gate`), so the reader and the ticker
    never interleave inside one operation. Holds are counted in `STATS`.
    """
    global _gate_installed, _loop, _sync_codes
    if _gate_installed:
        return
    import asyncio

    b = load(RuntimeError)
    if not task_classes:
        from ostracon.sync.client import SyncClient

        task_classes = (SyncClient,)
    _sync_codes = sync_task_codes(*task_classes)
    loop = asyncio.get_event_loop()
    orig = loop.call_later

    def call_later(delay: float, callback: Any, *args: Any, context: Any = None) -> Any:
        holder: list = []

        owner = getattr(callback, "__self__", None)
        if not (isinstance(owner, asyncio.Task) and _is_sync_task(owner)):
            # Everything else runs as scheduled: Pyodide's run_sync may itself need loop
            # callbacks to resume a suspended stack, so they must never be held back.
            return orig(delay, callback, *args, context=context)

        def guarded(*a: Any, token: int | None = None) -> None:
            if holder and holder[0].cancelled():
                STATS.release(token, _now())
                return
            rpc_holds = not _sync_steps_allowed and b.gateRpcBusy()
            if rpc_holds or (_suspended_tasks and owner not in _suspended_tasks):
                held = STATS.hold(token, _now())
                orig(GATE_RETRY_S, lambda: guarded(*a, token=held), context=context)
                return
            STATS.release(token, _now())
            callback(*a)

        h = orig(delay, guarded, *args, context=context)
        holder.append(h)
        return h

    loop.call_later = call_later  # type: ignore[method-assign,assignment]  # call_soon/call_at use it too
    _loop = loop
    _gate_installed = True


#: Code objects of the coroutine methods the sync client's tasks run (`sync_task_codes`).
_sync_codes: frozenset = frozenset()
#: `inspect.CO_COROUTINE`: the flag of an `async def` function's code (inspect itself is not
#: imported at the worker's start for this one constant).
_CO_COROUTINE = 0x80


def sync_task_codes(*classes: type) -> frozenset:
    """The code objects of every coroutine function defined on `classes` or any of their
    bases: a task whose coroutine runs one of them is a sync client task.

    By the code, not the name: the client's methods live on its mixins too (its ticker is
    `SessionDriver._ticker`, sync/driving.py), and a task the gate does not recognise takes
    steps inside an RPC batch's unfinished operation."""
    codes = (getattr(f, "__code__", None) for cls in classes for base in cls.__mro__ for f in vars(base).values())
    return frozenset(c for c in codes if c is not None and c.co_flags & _CO_COROUTINE)


def _is_sync_task(task: Any) -> bool:
    """A step or wake-up of the sync client's tasks (its reader loop and its ticker)."""
    return getattr(task.get_coro(), "cr_code", None) in _sync_codes
