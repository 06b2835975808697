"""What a relay process shares with its siblings: mailbox, limits and a fan-out bus.

A single relay process uses :class:`LocalBus` (nothing to share) with a memory or SQLite
mailbox and :class:`~ostracon.relay.limits.LocalLimits`. Several processes behind a load
balancer share one Redis (``redis_backend.RedisBackend``): the mailbox lives there, limits are
counted there, and every stored or ephemeral frame is published on the room's channel so the
members connected to the other processes get it live.

Bus delivery is at-most-once and unordered between publishers; the relay copes: a stored frame
carries its cursor, each room remembers the highest cursor it fanned out, and a jump sends the
room's live members back to the mailbox for the missing range (server.py, ``_on_stored``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

from .limits import Limits
from .mailbox import Mailbox

#: deliver(room, cursor, payload): cursor 0 marks an ephemeral (unstored) frame.
Deliver = Callable[[str, int, bytes], None]


class Bus(ABC):
    """Fan-out between relay processes. ``publish`` never blocks on the network for long
    (it is called from the event loop); subscriptions are per room."""

    @abstractmethod
    async def start(self, deliver: Deliver) -> None:
        """Begin delivering other processes' frames for subscribed rooms to ``deliver``."""

    @abstractmethod
    async def subscribe(self, room: str) -> None: ...

    @abstractmethod
    async def unsubscribe(self, room: str) -> None: ...

    @abstractmethod
    def publish(self, room: str, cursor: int, payload: bytes) -> None:
        """Tell the other processes about a frame this process accepted (cursor 0: ephemeral)."""

    @abstractmethod
    async def close(self) -> None: ...


class LocalBus(Bus):
    """One process: every member is local, so there is nobody to tell."""

    async def start(self, deliver: Deliver) -> None:
        return None

    async def subscribe(self, room: str) -> None:
        return None

    async def unsubscribe(self, room: str) -> None:
        return None

    def publish(self, room: str, cursor: int, payload: bytes) -> None:
        return None

    async def close(self) -> None:
        return None


@dataclass
class Backend:
    """The shared parts handed to :class:`~ostracon.relay.server.Relay` (``limits=None``: the
    relay makes in-process limits on its own loop clock)."""

    mailbox: Mailbox
    bus: Bus
    limits: Limits | None = None
    name: str = "local"

    def close(self) -> None:
        self.mailbox.close()
        if self.limits is not None:
            self.limits.close()
