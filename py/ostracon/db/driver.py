"""The native driver: one background thread per open database that does the work nobody
should have to call `tick()` for: it fires the write sink's time trigger
(also while the program idles), flushes full batches so the writer of the 100th change
never waits for sealing or fsync, steps index rebuilds under their throttle, and sweeps
tiers. It sleeps until the next of those is due or a write wakes it; it stops on
`close()`.

The thread holds only a weak reference to the engine, so a database nobody references is
still collected (and `Database.__del__` warns and closes it). Where threads cannot start
(Pyodide: `threading.Thread.start` raises) there is no driver and the worker's timer calls
`tick()` instead.

Also here: the registry of open databases that an `atexit` hook flushes and closes.
"""

from __future__ import annotations

import atexit
import sys
import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .engine import Engine

#: After a failed background flush, wait this long before the next attempt (a full disk
#: must not turn the driver into a busy loop); a write or an explicit flush retries sooner.
RETRY_MS = 1000
#: Sweep interval for idle tiering (auto_tier): demotion thresholds are minutes, so a
#: second of lateness does not matter.
SWEEP_MS = 1000


class Driver:
    """The background thread of one database (see the module docstring)."""

    def __init__(self, engine: Engine, name: str) -> None:
        self._engine = weakref.ref(engine)
        self._cond = threading.Condition(threading.Lock())
        self._kicked = False
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.errors: list[BaseException] = []   # unexpected errors of the loop (kept, newest last)
        # An engine collected without close() must not leave an idle thread behind.
        weakref.finalize(engine, self._request_stop)

    def start(self) -> bool:
        """Start the thread; False where threads are unavailable (Pyodide)."""
        if sys.platform == "emscripten":
            return False
        try:
            self._thread.start()
        except (RuntimeError, OSError):   # "can't start new thread"
            return False
        return True

    def kick(self) -> None:
        """Wake the driver now (a batch is full, or a new deadline must be armed)."""
        with self._cond:
            self._kicked = True
            self._cond.notify()

    def _request_stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()

    def stop(self) -> None:
        """Stop and join the thread (not from the thread itself)."""
        self._request_stop()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join()

    def _run(self) -> None:
        timeout: float | None = 0.0
        while True:
            with self._cond:
                if not self._kicked and not self._stopping:
                    self._cond.wait(timeout)
                self._kicked = False
                if self._stopping:
                    return
            engine = self._engine()
            if engine is None:
                return
            try:
                timeout = engine.drive_once()
            except Exception as exc:  # noqa: BLE001 - keep driving; the error is kept
                self.errors.append(exc)
                del self.errors[:-20]
                timeout = RETRY_MS / 1000
            del engine


# ------------------------------------------------------------------ open databases at exit

_open: weakref.WeakSet[Any] = weakref.WeakSet()
_hook_installed = False


def register(db: Any) -> None:
    """Remember an open database so that interpreter exit flushes and closes it."""
    global _hook_installed
    _open.add(db)
    if not _hook_installed:
        _hook_installed = True
        atexit.register(close_all)


def unregister(db: Any) -> None:
    _open.discard(db)


def close_all(report: Callable[[str], Any] | None = None) -> None:
    """Flush and close every open database (the atexit hook); errors are reported on
    stderr, never raised (other databases still get closed)."""
    for db in list(_open):
        try:
            db.close()
        except Exception as exc:  # noqa: BLE001 - at exit, report and go on
            (report or sys.stderr.write)(f"ostracon: closing a database at exit failed: {exc!r}\n")
