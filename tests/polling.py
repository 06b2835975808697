"""The one place tests wait for something another thread, task or process does.

`wait_until` polls a condition; its deadline is a safety net against a hung test, never a
performance threshold (a slow machine only makes the test take longer). `until` is the same
for asyncio code.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

#: Safety net for one wait: far above anything a correct run needs on a loaded machine.
DEADLINE_S = 120.0
#: Poll period: short enough to keep tests quick, long enough not to steal the CPU.
POLL_S = 0.01


def wait_until(condition: Callable[[], T], what: str, deadline_s: float = DEADLINE_S) -> T:
    """Return the first truthy value of `condition()`; AssertionError naming `what` when
    it stays falsy past the safety deadline."""
    end = time.monotonic() + deadline_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"gave up waiting for: {what}")
        time.sleep(POLL_S)


async def until(condition: Callable[[], object], what: str, deadline_s: float = DEADLINE_S) -> None:
    """The asyncio form of :func:`wait_until`."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    while not condition():
        if loop.time() > end:
            raise AssertionError(f"gave up waiting for: {what}")
        await asyncio.sleep(POLL_S)


def read_line(stream, what: str) -> str:
    """The next line a child process prints (blocking); AssertionError if it exited."""
    line = stream.readline()
    if not line:
        raise AssertionError(f"child exited before printing: {what}")
    return line.decode().strip() if isinstance(line, bytes) else line.strip()


def run_in_thread(fn: Callable[[], object], what: str, deadline_s: float = DEADLINE_S) -> None:
    """Run `fn` in another thread and wait for it to end; AssertionError naming `what` when it
    is still running past the safety deadline (a lock this thread holds blocks it for good:
    the test fails instead of hanging). An exception of `fn` is raised here."""
    import threading

    errors: list[BaseException] = []

    def run() -> None:
        try:
            fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            errors.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(deadline_s)
    if t.is_alive():
        raise AssertionError(f"gave up waiting for: {what}")
    if errors:
        raise errors[0]
