"""The transport contract: a bytes pipe to one relay room, plus the status a sync client reports.

A Transport moves raw relay-protocol messages (docs/RELAY.md; `ostracon.core.protocol.relay`
encodes and decodes them) over one WebSocket connection. It knows nothing of frames, keys or
the sync protocol: the client driver (`ostracon.sync.client`) does the rest, identically in
every runtime. Implementations: `native.WebSocketTransport` (asyncio + websockets) and the
browser's WebSocket transport. Both pass tests/transport_contract.py.

One Transport object is one connection attempt: `connect` once, then `send`/`recv` until
either side closes; reconnecting means a new Transport.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..core.block import KIND_BLOCK, decode_change, decode_seal, open_envelope
from ..core.errors import (
    OstraconError,
    TransportClosed,  # noqa: F401  (re-exported)
)
from ..core.protocol.session import tips_digest


class Transport(ABC):
    """One connection to one relay room URL (`ws[s]://host:port/v1/room/<id>?since=..`)."""

    @abstractmethod
    async def connect(self, url: str) -> None:
        """Open the connection; raise TransportClosed if that fails."""

    @abstractmethod
    async def send(self, message: bytes) -> None:
        """Send one binary message; raise TransportClosed if the connection is gone."""

    @abstractmethod
    async def recv(self) -> bytes:
        """The next binary message from the relay; raise TransportClosed once closed
        (with the close code the relay sent)."""

    @abstractmethod
    async def close(self) -> None:
        """Close (idempotent); a pending recv then raises TransportClosed."""


# --- status --------------------------------------------------------------------------------------

CONNECTING = "connecting"
ONLINE = "online"
OFFLINE = "offline"
STOPPED = "stopped"
STATES = (CONNECTING, ONLINE, OFFLINE, STOPPED)


@dataclass(frozen=True)
class SyncStatus:
    """What a sync client reports to `on_status` whenever something changes.

    state: connecting | online | offline | stopped. pending: local writes not yet stored at
    the relay (unflushed + flushed but unacknowledged). peers: connections in the room besides
    us (the relay's count). synced: caught up with the mailbox, own writes acknowledged, and
    nothing that any peer announced is missing. last_error: the latest problem (a
    TransportError, WrongKeyError, ...) or None. dropped: frames dropped by reason
    (tampered, replayed, wrong_key, ...).
    """

    state: str
    pending: int = 0
    peers: int = 0
    synced: bool = False
    last_error: BaseException | None = field(default=None, compare=False)
    dropped: dict[str, int] = field(default_factory=dict, compare=False)
    attempt: int = 0
    cursor: int = 0

    def __post_init__(self) -> None:
        if self.state not in STATES:
            raise ValueError(f"state must be one of {STATES}")


# --- adapting a Database to the sans-IO session ---------------------------------------------------

def filter_writable(envelopes: list[bytes], write_limit: Callable[[bytes], int | None]) -> tuple[list[bytes], int]:
    """Drop blocks and seals of actors beyond what the space lets them write (readers, removed
    members after their cut). Malformed envelopes pass through: the replica reports them."""
    kept: list[bytes] = []
    refused = 0
    for env in envelopes:
        try:
            kind, payload = open_envelope(env)
            if kind == KIND_BLOCK:
                ch = decode_change(payload)
                actor, last = ch.actor, ch.seq
            else:
                seal = decode_seal(payload)
                actor, last = seal.actor, seal.last
        except OstraconError:
            kept.append(env)
            continue
        cap = write_limit(actor)
        if cap is not None and last > cap:
            refused += 1
            continue
        kept.append(env)
    return kept, refused


class DatabaseReplica:
    """Presents a Database to `SyncSession` (core/protocol/session.ReplicaLike).

    Received blocks go through `db.apply_blocks`, so they are persisted by the write sink and
    published on the change feed like any other change.
    """

    def __init__(self, db: Any, write_limit: Callable[[bytes], int | None] | None = None) -> None:
        self.db = db
        self._replica = db.replica
        self.actor: bytes = db.replica.actor
        # Membership (crypto/members.py): the highest sequence number of an actor that the
        # space lets it write (None: no limit). Set only for spaces with a member log; the
        # session clamps peers' vectors with it too, so refused blocks are never asked for.
        self.write_limit = write_limit
        self.refused = 0

    def version_vector(self) -> dict[bytes, int]:
        return self._replica.version_vector()

    def envelopes_since(self, vector: dict[bytes, int]) -> list[bytes]:
        return self._replica.envelopes_since(vector)

    def apply_envelopes(self, envelopes: list[bytes], *, strict: bool = False) -> Any:
        if self.write_limit is not None:
            envelopes, refused = filter_writable(envelopes, self.write_limit)
            self.refused += refused
        self.db.apply_blocks(envelopes, strict=strict)
        return self.db.last_apply

    def vector_digest(self, vector: dict[bytes, int]) -> bytes:
        return tips_digest(self._replica, vector)

    def pending_local(self) -> int:
        """Own writes not sealed yet (sealed ones are counted by the client against acks)."""
        return self._replica.unsealed_count()

    def own_sealed(self) -> int:
        """Highest own sequence number that can be offered (sealed)."""
        return self._replica.version_vector().get(self.actor, 0)
