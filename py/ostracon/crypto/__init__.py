"""Crypto backends, identities and spaces.

`default_backend()` picks the backend for the running platform: `NativeCrypto`
(`cryptography`) natively, `WebCrypto` under Pyodide (sys.platform == "emscripten"), where
`cryptography` has no wheel and hashlib has no PBKDF2. Both are imported lazily so importing
this package never pulls in the other platform's modules.

`DeterministicRandom` is a seeded byte source for tests (any backend takes it as its
`random_bytes=`); never use it for real keys.
"""

from __future__ import annotations

import hashlib
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from .base import CryptoBackend
    from .identity import Identity
    from .space import Space

__all__ = ["default_backend", "DeterministicRandom", "Identity", "Space"]

_default: CryptoBackend | None = None


def default_backend() -> CryptoBackend:
    """The process-wide backend for this platform (created on first use, then shared)."""
    global _default
    if _default is None:
        if sys.platform == "emscripten":
            from ..runtime.browser.webcrypto import WebCrypto

            _default = WebCrypto()
        else:
            from .native import NativeCrypto

            _default = NativeCrypto()
    return _default


class DeterministicRandom:
    """A seeded, reproducible byte stream (SHA-256 in counter mode). FOR TESTS ONLY.

    `DeterministicRandom(42)(16)` gives the same 16 bytes on every runtime, so test vectors
    and seeded simulations are replayable natively and under Pyodide.
    """

    def __init__(self, seed: int | bytes | str) -> None:
        if isinstance(seed, bool) or not isinstance(seed, (int, bytes, str)):
            raise TypeError("seed must be an int, bytes or str")
        if isinstance(seed, int):
            seed_b = b"i" + str(seed).encode()
        elif isinstance(seed, str):
            seed_b = b"s" + seed.encode()
        else:
            seed_b = b"b" + seed
        self.seed = seed
        self._key = hashlib.sha256(b"ostracon/test-random/v1\x00" + seed_b).digest()
        self._counter = 0
        self._buffer = b""

    def __call__(self, n: int) -> bytes:
        if n < 0:
            raise ValueError("n must be >= 0")
        while len(self._buffer) < n:
            self._buffer += hashlib.sha256(self._key + self._counter.to_bytes(8, "big")).digest()
            self._counter += 1
        out, self._buffer = self._buffer[:n], self._buffer[n:]
        return out

    random_bytes = __call__

    def __repr__(self) -> str:
        return f"DeterministicRandom({self.seed!r})"


def __getattr__(name: str) -> type:
    # Lazy re-exports: `from ostracon.crypto import Identity, Space` without import cycles.
    if name == "Identity":
        from .identity import Identity

        return Identity
    if name == "Space":
        from .space import Space

        return Space
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
