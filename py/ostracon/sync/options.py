"""The sync client's defaults (each with its reason) and the small pure helpers it uses:
reconnect backoff, relay URL checks, the storage meta key of a room's cursor state."""

from __future__ import annotations

import hashlib

from ..core.errors import OstraconError, ValidationError
from ..core.protocol import relay as P

#: First reconnect delay; doubles per failed attempt. Short, so a relay restart heals fast.
DEFAULT_BACKOFF_INITIAL_S = 0.25
#: Longest reconnect delay: a relay that is down for hours costs one attempt per 30 s per device.
DEFAULT_BACKOFF_MAX_S = 30.0
#: How often the ticker runs (session retries, the database's time-triggered flush, pushing
#: newly sealed writes). 100 ms keeps propagation latency low at negligible CPU.
DEFAULT_TICK_INTERVAL_S = 0.1
#: After joining a room that has other members, how long to wait for a peer's hello before
#: calling ourselves synced (peers only answer when they have something we lack).
DEFAULT_SETTLE_S = 0.5
#: Silence (nothing received) after which the client pings the relay. Well under the 30-60 s
#: idle timeouts of NATs and proxies, so it also keeps the mapping alive.
DEFAULT_HEARTBEAT_INTERVAL_S = 10.0
#: Further silence after a ping that marks the connection dead: a dead connection is noticed
#: within interval + timeout (20 s) instead of never (browser) or the library's ping timeout.
DEFAULT_HEARTBEAT_TIMEOUT_S = 10.0
#: Delay between a local write and its flush while peers are connected: a burst of writes
#: becomes one batch (one seal) and still reaches the peers within a tick or two.
DEFAULT_FLUSH_DEBOUNCE_S = 0.05
META_PREFIX = "sync/v1/"


class RoomMoved(OstraconError):
    """The space moved to a new key epoch (a member was removed): rejoin in its room."""


def meta_key(relay_url: str, room: str) -> str:
    """Storage meta key for the cursor state of one (relay, room)."""
    return META_PREFIX + hashlib.sha256(f"{relay_url}\x00{room}".encode()).hexdigest()[:32]


def base_url(url: str) -> str:
    if not isinstance(url, str) or not url.lower().startswith(("ws://", "wss://")):
        raise ValidationError(f"relay URL must start with ws:// or wss://, got {url!r:.80}")
    url = url.rstrip("/")
    cut = url.find(P.ROOM_PATH_PREFIX)
    return url if cut < 0 else url[:cut]


def backoff_delay(failures: int, initial: float, maximum: float, jitter: float) -> float:
    """Seconds to wait after `failures` consecutive failed attempts (>= 1): exponential,
    capped, times a factor in [0.5, 1) so that clients cut off together do not return together."""
    base = min(maximum, initial * 2 ** min(failures - 1, 62))
    return base * (0.5 + 0.5 * min(max(jitter, 0.0), 1.0))
