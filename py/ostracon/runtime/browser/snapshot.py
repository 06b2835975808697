"""The Python half of the worker's memory snapshot (fast engine start, docs/BROWSER.md).

Starting the interpreter and importing the engine costs seconds in WebAssembly; restoring a
Pyodide memory snapshot (`loadPyodide({_loadSnapshot})`) costs a fraction of that. The worker
(web/loader.js) makes the snapshot once per bundle on the device, right after a normal start:

1. `prepare()` imports every module the worker needs to open a database and serve calls
   (`PRELOAD`), with the packages that carry a C extension (`DEFERRED`) replaced by
   `DeferredModule` placeholders;
2. the loader takes `makeMemorySnapshot()` and keeps it (Cache Storage);
3. a later start restores it, installs the wheels again (their files are not part of the
   memory image, and their extension libraries must be loaded into this instance) and calls
   `resume()`.

Why the placeholders: a snapshot holds the WebAssembly memory but not the functions that a
loaded extension library adds to the function table. A C extension imported before the
snapshot would point at functions that no longer exist after the restore. The placeholder is
what the engine's modules bind (``import msgpack``) while the snapshot is made; its first
attribute access after the restore imports the real package and copies the real module's
namespace into the placeholder, so later lookups are ordinary dictionary hits.

Why the collector is not frozen: `gc.freeze()` before the snapshot would keep the engine's
objects out of the cyclic collector's work, but it makes a running interpreter crash
("RuntimeError: memory access out of bounds" inside the collector), with or without a
snapshot. CPython 3.14's incremental collector starts each scavenge by walking the frames of
every thread state (`mark_stacks`), including the C-stack entry frames; under JSPI, Pyodide
gives every suspended promising task (an asyncio step or an RPC blocked in `run_sync`) its
own thread state, and the part of the C stack holding that task's entry frames may have been
copied aside and overwritten by another task while it waits. With the engine frozen, the old
generation holds only new objects, each scavenge ends after a few increments and the walk
over all stacks comes that much more often: the transport contract suite crashed in about one
run of three. `tests/test_browser_snapshot.py` checks that nothing is frozen.

What the restored interpreter shares with the one that made the snapshot: the state of the
`random` module (re-seeded from the OS by `resume()`) and the seed of `hash()` for str/bytes
(nothing that reaches bytes, keys or results depends on it: docs/ARCHITECTURE.md). Keys and
nonces come from `crypto.getRandomValues`, never from the memory image.

Natively nothing calls `prepare`/`resume`; the module imports and its logic is tested with
pytest (tests/test_browser_snapshot.py).
"""

from __future__ import annotations

import gc
import importlib
import sys
import types
from collections.abc import Iterable
from typing import Any

#: Packages with a C extension: bound as placeholders while the snapshot is made.
DEFERRED: tuple[str, ...] = ("msgpack",)

#: Modules imported into the snapshot: what opening a database on IndexedDB/WebCrypto, the
#: RPC host and the sync client import (measured with a worker opening, writing and syncing).
#: GraphQL glue is left out on purpose: graphql-core is loaded on the first GraphQL call.
PRELOAD: tuple[str, ...] = (
    "asyncio",
    "hmac",
    "difflib",
    "unicodedata",
    "ostracon",
    "ostracon.core.protocol.frames",
    "ostracon.core.protocol.relay",
    "ostracon.crypto.identity",
    "ostracon.crypto.invites",
    "ostracon.crypto.members",
    "ostracon.crypto.space",
    "ostracon.crypto.spacestore",
    "ostracon.runtime.browser.host",
    "ostracon.runtime.browser.indexeddb",
    "ostracon.runtime.browser.webcrypto",
    "ostracon.runtime.browser.transport",
    "ostracon.sync.client",
)


class SnapshotError(RuntimeError):
    """The interpreter is in no state to be snapshotted (an extension is already loaded)."""


class DeferredModule(types.ModuleType):
    """Stands in for package `name` until one of its attributes is used.

    The first missing-attribute lookup imports the real package (`sys.modules[name]` then
    holds the real module) and copies its namespace here. Raises whatever the real import
    raises (ImportError when the package is not installed), leaving the placeholder in place
    so a later lookup can try again.
    """

    def __getattr__(self, attr: str) -> Any:
        real = self._load()
        try:
            return real.__dict__[attr]
        except KeyError:
            raise AttributeError(f"module {self.__name__!r} has no attribute {attr!r}") from None

    def _load(self) -> types.ModuleType:
        name = self.__name__
        if sys.modules.get(name) is self:
            del sys.modules[name]
        try:
            real = importlib.import_module(name)
        except BaseException:
            sys.modules.setdefault(name, self)
            raise
        self.__dict__.update(real.__dict__)
        return real


def defer(names: Iterable[str]) -> list[str]:
    """Put a `DeferredModule` in `sys.modules` for each of `names` not imported yet.

    Returns the names deferred. Raises SnapshotError if one of them is already imported for
    real (its extension library would be part of the snapshot).
    """
    done = []
    for name in names:
        mod = sys.modules.get(name)
        if isinstance(mod, DeferredModule):
            continue
        if mod is not None:
            raise SnapshotError(f"{name} is already imported: a snapshot cannot hold its extension")
        sys.modules[name] = DeferredModule(name)
        done.append(name)
    return done


def deferred_loaded(names: Iterable[str] = DEFERRED) -> list[str]:
    """The `names` whose real package has been imported (placeholder gone or filled)."""
    out = []
    for name in names:
        mod = sys.modules.get(name)
        if mod is not None and not isinstance(mod, DeferredModule):
            out.append(name)
        elif isinstance(mod, DeferredModule) and "__file__" in mod.__dict__:
            out.append(name)
    return out


def load_deferred(names: Iterable[str] = DEFERRED) -> list[str]:
    """Import now the real package behind each of `names` that a placeholder still holds (or
    that is not imported at all); returns the names loaded by this call. Works whichever copy
    of this module made the placeholder (web/loader.js loads this file under another name, so
    no isinstance test). The host calls it while IndexedDB reads the database: a C extension's
    start (msgpack's: ~40-120 ms in Chromium, its module init running in the baseline wasm
    tier) then overlaps that wait instead of being paid by the snapshot's first unpack.
    Raises what the real import raises."""
    done = []
    for name in names:
        mod = sys.modules.get(name)
        if mod is None:
            importlib.import_module(name)
            done.append(name)
        elif "__file__" not in mod.__dict__:
            getattr(mod, "__file__", None)  # a placeholder's first lookup imports the package
            done.append(name)
    return done


def prepare(preload: Iterable[str] = PRELOAD, deferred: Iterable[str] = DEFERRED) -> int:
    """Import `preload` with `deferred` as placeholders; returns the number of modules loaded.

    Raises SnapshotError if a preloaded module used a deferred package at import time (the
    snapshot would then hold an extension library), ImportError if a module is missing.
    """
    deferred = tuple(deferred)
    defer(deferred)
    for name in preload:
        importlib.import_module(name)
    used = deferred_loaded(deferred)
    if used:
        raise SnapshotError(f"importing the engine loaded {', '.join(used)}: it must stay deferred")
    # The image starts without cyclic garbage. Nothing is frozen (gc.freeze): see
    # "Why the collector is not frozen" above.
    gc.collect()
    return len(sys.modules)


def resume() -> None:
    """First call after a restore: fresh randomness for the `random` module."""
    rnd = sys.modules.get("random")
    if rnd is not None:
        rnd.seed()
