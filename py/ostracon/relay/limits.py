"""Connection-level limits of the relay: who may hold what, keyed so reconnecting does not help.

Three tools, each small and testable without sockets:

* :func:`client_key` – the unit a limit is charged to: an IPv4 address, or the /64 prefix of
  an IPv6 address (one subscriber usually owns a whole /64, so per-address keys would let one
  host open 2**64 identities).
* :class:`PendingConnections` – TCP connections that have not finished their first request
  head. When the table is full the *oldest connection still waiting for its head* is closed to
  make room, instead of refusing the newcomer: idle sockets can then delay an honest client by
  one round trip, never lock it out (the "256 idle sockets" attack). Each client key may hold
  at most ``per_key`` of them.
* :class:`Limits` – counters with caps (connections per client key, members per room) and
  token buckets keyed on ``room + client key`` that outlive a connection, so reconnecting never
  refills an allowance. The in-process implementation is :class:`LocalLimits`; the Redis
  backend shares the same contract across relay processes (``redis_backend.RedisLimits``).

Rate limits *throttle* rather than disconnect: :meth:`Limits.throttle` returns how long the
caller must wait before reading the next message, and the relay simply stops reading the socket
for that long (TCP backpressure). An honest bulk upload therefore completes at the configured
rate instead of being cut off and restarted.
"""

from __future__ import annotations

import ipaddress
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any, Protocol

from ..core.errors import ValidationError

#: Distinct rate-limit keys remembered per process. A key whose bucket has refilled carries no
#: information, so dropping it is harmless: past the cap the least recently used *refilled*
#: bucket goes (among the :data:`EVICTION_SCAN` least recent; else the least recent). The cap
#: bounds memory (about 150 bytes per entry) against a client cycling through room ids.
DEFAULT_MAX_BUCKETS = 65536
#: Least recently used buckets looked at for a refilled one when the table is full, so a client
#: cycling through room ids cannot push another address's half-spent store budget
#: (:class:`StoreBudget`, refilled over days) out of the table and refill it.
EVICTION_SCAN = 1024


def client_key(peer: Any) -> str:
    """The key a client is charged under, from a socket ``peername`` (``(host, port, ...)``).

    IPv4 and IPv4-mapped IPv6: the address. IPv6: its /64 prefix. Unknown shapes (Unix sockets,
    tests): ``"local"``.
    """
    host = peer[0] if isinstance(peer, tuple) and peer else peer
    if not isinstance(host, str):
        return "local"
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return "local"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((int(ip) >> 64 << 64, 64)))
    return str(ip)


class Evictable(Protocol):
    def waiting_for_head(self) -> bool: ...

    def evict(self) -> None: ...


class PendingConnections:
    """Connections between accept and the end of their first request head (or upgrade).

    ``admit(conn, key)`` makes room by evicting the oldest head-waiting connection (of the same
    key first when that key is at ``per_key``); it returns False only when nothing can be
    evicted, i.e. every slot is busy answering a request.
    """

    def __init__(self, max_total: int, per_key: int):
        if type(max_total) is not int or max_total <= 0 or type(per_key) is not int or per_key <= 0:
            raise ValidationError("pending connection limits must be positive ints")
        self.max_total = max_total
        self.per_key = per_key
        self._conns: OrderedDict[Evictable, str] = OrderedDict()  # insertion order = age
        self._per_key: dict[str, int] = {}
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._conns)

    def __iter__(self) -> Iterator[Evictable]:
        return iter(list(self._conns))

    def count(self, key: str) -> int:
        return self._per_key.get(key, 0)

    def _evict_oldest(self, key: str | None) -> bool:
        for conn, k in self._conns.items():
            if (key is None or k == key) and conn.waiting_for_head():
                self.discard(conn)
                self.evicted += 1
                conn.evict()
                return True
        return False

    def admit(self, conn: Evictable, key: str) -> bool:
        if self._per_key.get(key, 0) >= self.per_key and not self._evict_oldest(key):
            return False
        if len(self._conns) >= self.max_total and not self._evict_oldest(None):
            return False
        self._conns[conn] = key
        self._per_key[key] = self._per_key.get(key, 0) + 1
        return True

    def add(self, conn: Evictable) -> None:  # set-like use without a key (tests, embedding)
        self.admit(conn, "local")

    def discard(self, conn: Evictable) -> None:
        key = self._conns.pop(conn, None)
        if key is not None:
            n = self._per_key[key] - 1
            if n:
                self._per_key[key] = n
            else:
                del self._per_key[key]

    @property
    def saturated(self) -> bool:
        return len(self._conns) >= self.max_total and not any(c.waiting_for_head() for c in self._conns)


class Limits(ABC):
    """Shared caps and rate buckets. Synchronous: called from the relay's event loop."""

    @abstractmethod
    def acquire(self, kind: str, key: str, cap: int) -> bool:
        """Take one unit of ``kind``/``key`` if fewer than ``cap`` are held; True when taken."""

    @abstractmethod
    def release(self, kind: str, key: str) -> None:
        """Give back one unit taken by :meth:`acquire`."""

    @abstractmethod
    def held(self, kind: str, key: str) -> int:
        """Units of ``kind``/``key`` held now (over every process sharing the limits)."""

    @abstractmethod
    def throttle(self, key: str, rate: float, burst: float, amount: float, *, strict: bool = False) -> float:
        """Charge ``amount`` to the bucket ``key`` (``rate`` per second, ``burst`` deep) and return
        the seconds to wait before the next charge (0.0: within the allowance). The bucket may go
        into debt by one charge; the wait pays it back. ``strict``: charge only when the bucket
        holds ``amount`` (never into debt); else nothing is charged and the wait says when it
        will hold it."""

    @abstractmethod
    def close(self) -> None:
        """Release everything this process holds (other processes' units stay)."""


class _Bucket:
    __slots__ = ("tokens", "t", "full_at")

    def __init__(self, tokens: float, t: float):
        self.tokens = tokens
        self.t = t
        self.full_at = t  # when the bucket will have refilled: forgetting it then loses nothing


class LocalLimits(Limits):
    """In-process limits. ``clock() -> seconds`` is injected (the loop's monotonic clock)."""

    def __init__(self, clock: Any, max_buckets: int = DEFAULT_MAX_BUCKETS):
        if type(max_buckets) is not int or max_buckets <= 0:
            raise ValidationError("max_buckets must be a positive int")
        self._clock = clock
        self._counts: dict[tuple[str, str], int] = {}
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self.max_buckets = max_buckets

    def acquire(self, kind: str, key: str, cap: int) -> bool:
        n = self._counts.get((kind, key), 0)
        if n >= cap:
            return False
        self._counts[(kind, key)] = n + 1
        return True

    def release(self, kind: str, key: str) -> None:
        n = self._counts.get((kind, key), 0) - 1
        if n > 0:
            self._counts[(kind, key)] = n
        else:
            self._counts.pop((kind, key), None)

    def held(self, kind: str, key: str) -> int:
        return self._counts.get((kind, key), 0)

    def throttle(self, key: str, rate: float, burst: float, amount: float, *, strict: bool = False) -> float:
        now = self._clock()
        b = self._buckets.get(key)
        if b is None:
            b = self._buckets[key] = _Bucket(float(burst), now)
            while len(self._buckets) > self.max_buckets:
                self._forget_one(now, key)
        else:
            self._buckets.move_to_end(key)
        b.tokens = min(float(burst), b.tokens + max(0.0, now - b.t) * rate)
        b.t = now
        short = amount - b.tokens
        if not strict or short <= 0:
            b.tokens -= amount
            short = 0.0
        b.full_at = now + (burst - b.tokens) / rate
        if short > 0:
            return short / rate
        return 0.0 if b.tokens >= 0 else -b.tokens / rate

    def _forget_one(self, now: float, new: str) -> None:
        """Forget the least recently used refilled bucket (else the least recent) but ``new``."""
        for i, (key, b) in enumerate(self._buckets.items()):
            if i >= EVICTION_SCAN:
                break
            if b.full_at <= now and key != new:
                del self._buckets[key]
                return
        self._buckets.popitem(last=False)

    def close(self) -> None:
        self._counts.clear()
        self._buckets.clear()


class StoreBudget:
    """Bytes one client key may store in the mailbox across all its rooms
    (``RelayConfig.max_address_share``): a bucket of ``burst`` bytes refilled over ``window_s``
    (the mailbox's retention), kept in :class:`Limits` under ``s:<client key>`` so every relay
    process sharing the limits charges the same one. Rooms cost nothing to create, so without
    it one address can push every other room's frames out of the mailbox's total budget."""

    def __init__(self, limits: Limits, burst: int, window_s: float):
        if type(burst) is not int or burst <= 0 or not window_s > 0:
            raise ValidationError("a store budget needs burst > 0 and window_s > 0")
        self.limits = limits
        self.burst = burst
        self.rate = burst / float(window_s)

    def take(self, key: str, amount: int) -> bool:
        """Charge ``amount`` bytes to ``key``; False (and nothing charged) when that would put
        the address past its budget."""
        return self.limits.throttle("s:" + key, self.rate, self.burst, amount, strict=True) == 0.0
