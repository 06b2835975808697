"""The one place tests wait for something to become true (no ad-hoc sleeps elsewhere).

Timeouts only guard against hangs; nothing asserts how fast a condition became true.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

DEFAULT_TIMEOUT_S = 30.0
POLL_S = 0.01


def wait_until(pred: Callable[[], object], what: str, timeout: float = DEFAULT_TIMEOUT_S) -> None:
    """Block until ``pred()`` is truthy; AssertionError naming ``what`` after ``timeout``."""
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(POLL_S)


async def until(pred: Callable[[], object], what: str, timeout: float = DEFAULT_TIMEOUT_S) -> None:
    """The asyncio form of :func:`wait_until`."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not pred():
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(POLL_S)
