"""What a sync session drives (`ReplicaLike`), reports (events) and hands to the transport (`Outgoing`). PURE."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from ..errors import (
    MalformedMessageError,  # noqa: F401  (re-exported)
    ProtocolError,
)

# --- the replica the session drives ------------------------------------------------------------

class ApplyOutcome(Protocol):
    new: int
    duplicates: int
    pending: int
    rejected: list


class ReplicaLike(Protocol):
    """What the session needs (core.replica.Replica fits; sync/ adapts a Database)."""

    def version_vector(self) -> dict[bytes, int]: ...

    def envelopes_since(self, vector: dict[bytes, int]) -> list[bytes]: ...

    def apply_envelopes(self, envelopes: list[bytes], *, strict: bool = ...) -> ApplyOutcome: ...

@dataclass(frozen=True)
class PeerSeen:
    """A peer was heard from for the first time (actor is b"" until its hello arrives)."""

    peer: bytes
    actor: bytes


@dataclass(frozen=True)
class PeerLost:
    """A peer was not heard from for `peer_ttl_ms` and is forgotten."""

    peer: bytes


@dataclass(frozen=True)
class BlocksApplied:
    """A blocks message was merged: `new` blocks applied (0 for pure duplicates)."""

    peer: bytes
    new: int
    duplicates: int
    pending: int
    rejected: tuple[str, ...] = ()


@dataclass(frozen=True)
class GapDetected:
    """Blocks `have+1..want` of `actor` were expected but did not arrive; asked again."""

    actor: bytes
    have: int
    want: int


@dataclass(frozen=True)
class Synced:
    """We hold everything every known peer has announced and nothing is outstanding."""

    version_vector: tuple[tuple[bytes, int], ...]
    peers: int


@dataclass(frozen=True)
class Diverged:
    """Equal version vectors, different content: an actor equivocated. Sync cannot fix it."""

    peer: bytes


@dataclass(frozen=True)
class Equivocated:
    """`actor` signed two different blocks (or seals) for sequence slot `seq` (docs/SYNC.md):
    `cids` are the two blocks (None where not received yet), `seals` the two signed seals,
    the proof anyone can check. The actor is quarantined from `seq` on, on every replica;
    the proof and both branches were broadcast so the rest of the room converges."""

    peer: bytes
    actor: bytes
    seq: int
    cids: tuple[bytes | None, bytes | None]
    seals: tuple[bytes, bytes]


@dataclass(frozen=True)
class ProtocolViolation:
    """A message was malformed or broke the protocol; it was ignored."""

    peer: bytes | None
    reason: str
    error: ProtocolError = field(compare=False, repr=False, default=None)  # type: ignore[assignment]


Event = (PeerSeen | PeerLost | BlocksApplied | GapDetected | Synced | Diverged | Equivocated
         | ProtocolViolation)


@dataclass(frozen=True)
class Outgoing:
    """One message to send. `durable`: store it in the relay mailbox too (pushes of our own
    blocks, so devices that come online later catch up); otherwise live-only. `own_upto`: for
    durable pushes, our own sequence number covered once this message is stored."""

    data: bytes
    durable: bool = False
    kind: str = ""
    own_upto: int = 0
