"""The decorator that makes a public method thread-safe (docs/STORAGE.md, Threads)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from .engine import Engine

F = TypeVar("F", bound=Callable[..., Any])


def locked(method: F) -> F:
    """Run a public method under the database's state lock (any thread may call it).

    Work that must not run under the lock (a flush a write asked for: it waits for the
    disk) runs after the outermost locked call of the thread releases the lock."""
    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        e: Engine = self._e
        local = e.local
        depth = getattr(local, "depth", 0)
        local.depth = depth + 1
        try:
            with e.lock:
                return method(self, *args, **kwargs)
        finally:
            local.depth = depth
            if depth == 0 and e.flush_wanted:
                e.after_unlock()
    return wrapper  # type: ignore[return-value]
