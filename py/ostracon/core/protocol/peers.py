"""Per-peer bookkeeping of a sync session: what each peer announced, outstanding requests, rendezvous ranking. PURE."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from ..block import KIND_SEAL, decode_seal, open_envelope
from ..errors import (
    CorruptBlockError,
    MalformedMessageError,  # noqa: F401  (re-exported)
    )
from .messages import (
    tips_digest,
)


def digest_function(replica: Any) -> Callable[[dict[bytes, int]], bytes] | None:
    fn = getattr(replica, "vector_digest", None)
    if fn is not None:
        return fn
    if hasattr(replica, "by_actor"):
        return lambda vector: tips_digest(replica, vector)
    return None


def sealed_through(envelopes: list[bytes], actor: bytes, cap: int) -> int:
    """Highest ``last`` of ``actor``'s seals among ``envelopes`` (capped at ``cap``; 0: none)."""
    best = 0
    for env in envelopes:
        if len(env) > 1 and env[1] == KIND_SEAL:
            try:
                seal = decode_seal(open_envelope(env)[1])
            except CorruptBlockError:
                continue
            if seal.actor == actor:
                best = max(best, min(seal.last, cap))
    return best


class PeerState:
    __slots__ = ("peer", "actor", "vector", "last_seen", "digest")

    def __init__(self, peer: bytes, now: int) -> None:
        self.peer = peer
        self.actor = b""
        self.vector: dict[bytes, int] = {}
        self.last_seen = now
        self.digest = b""


class Outstanding:
    __slots__ = ("upto", "request", "peer", "sent_ms", "attempt")

    def __init__(self, upto: int, request: int, peer: bytes, sent_ms: int, attempt: int) -> None:
        self.upto = upto
        self.request = request
        self.peer = peer
        self.sent_ms = sent_ms
        self.attempt = attempt


def rendezvous_rank(a: bytes, b: bytes) -> bytes:
    """Rendezvous hash: every member computes the same ordering without talking."""
    return hashlib.sha256(a + b).digest()
