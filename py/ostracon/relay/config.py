"""The relay's limits in one frozen dataclass: every field documents its default and reason.

``ostracon relay`` and ``ostracon serve`` turn each field into a flag (relay/cli.py), so the
command line and the documentation cannot drift from the code.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from ..core.errors import ValidationError
from .admission import DEFAULT_ADMISSION_TIMEOUT_S
from .http import HttpLimits

KiB = 1024
MiB = 1024 * 1024


def _doc(text: str) -> dict[str, str]:
    return {"doc": text}


@dataclass(frozen=True)
class RelayConfig:
    """Every limit of the relay, with its default and the reason for it.

    Floats set to ``None`` (where allowed) disable that timer.
    """

    max_frame_bytes: int = field(default=1 * MiB, metadata=_doc(
        "Largest client message (kind byte + payload). Sync frames are <= 512 KiB plus AEAD and "
        "header overhead; 1 MiB leaves headroom. Larger messages are closed with 1009."))
    rate_frames_per_s: float | None = field(default=500.0, metadata=_doc(
        "Sustained client messages per second per room and client address (token bucket shared "
        "by all of that address's connections to the room, so reconnecting never refills it). "
        "Clients batch many changes per frame, so honest traffic is far below this. Past it the "
        "relay stops reading that connection until the bucket allows (TCP backpressure)."))
    rate_frames_burst: int = field(default=2000, metadata=_doc(
        "Bucket size for messages: a reconnecting client may flush a backlog at once."))
    rate_bytes_per_s: float | None = field(default=16.0 * MiB, metadata=_doc(
        "Sustained bytes per second per room and client address; bounds the disk and fan-out "
        "work one client can cause. Enforced by backpressure like rate_frames_per_s, so a large "
        "upload completes at this rate instead of being cut off."))
    rate_bytes_burst: int = field(default=64 * MiB, metadata=_doc(
        "Bucket size for bytes: an initial upload of a mid-sized database fits in one burst."))
    max_address_share: float | None = field(default=None, metadata=_doc(
        "Share of the mailbox's max_total_bytes that one client address may store across all "
        "of its rooms per mailbox retention period (max_age_s): a token bucket of "
        "max_total_bytes × share bytes, refilled over max_age_s and shared by every relay "
        "process on a Redis backend; a publish past it is refused with 1008 (not stored, not "
        "charged). Off by default: the mailbox's eviction of the heaviest writer under "
        "max_total_bytes already keeps one address from pushing other rooms' frames out, and "
        "a budget disconnects an honest writer whose history outgrows its share (on a small "
        "relay, a first upload) where eviction would only prune its own oldest frames. Set it "
        "(e.g. 0.25) to also bound what one address keeps the mailbox busy with."))
    max_connections: int = field(default=1000, metadata=_doc(
        "WebSocket connections at once. Past it new connections are closed with 1013 and "
        "/healthz answers 503."))
    max_connections_per_ip: int = field(default=64, metadata=_doc(
        "WebSocket connections per client address (IPv6: per /64). A household behind one NAT "
        "runs a few devices with a few tabs each; 64 leaves room for that while one host can "
        "take at most this share of max_connections. Past it: 1013."))
    max_rooms: int = field(default=1000, metadata=_doc(
        "Rooms with at least one member at once. Past it joins of new rooms are closed with 1013."))
    max_room_members: int = field(default=256, metadata=_doc(
        "Connections in one room (over every relay process sharing a backend): fan-out costs "
        "O(members) per frame. Past it: 1013."))
    send_queue_frames: int = field(default=256, metadata=_doc(
        "Control messages (acks, peer counts) waiting to be written to one member. Only a "
        "member that stops reading reaches it; it is disconnected with 4001."))
    send_queue_bytes: int = field(default=8 * MiB, metadata=_doc(
        "Bytes of frames waiting to be written to one member. A member past it is not "
        "disconnected: its queued stored frames are dropped and it reads them from the mailbox "
        "instead (costs no memory), so a fast reader that meets a burst keeps its connection. "
        "Must hold at least one max-size frame."))
    send_timeout_s: float | None = field(default=60.0, metadata=_doc(
        "Longest one write to a member may block (peer not reading). Then: 4001. This, not "
        "the queue size, is what removes a reader that stopped reading."))
    recv_queue_frames: int = field(default=4, metadata=_doc(
        "Incoming messages websockets buffers per connection before it stops reading the "
        "socket (TCP backpressure); bounds incoming memory to this × max_frame_bytes."))
    write_buffer_bytes: int = field(default=64 * KiB, metadata=_doc(
        "Transport write buffer high-water mark before a send waits for the peer."))
    ping_interval_s: float | None = field(default=20.0, metadata=_doc(
        "Keepalive ping period: detects dead peers and keeps NAT mappings open."))
    ping_timeout_s: float | None = field(default=20.0, metadata=_doc(
        "A peer that does not answer a ping within this is dropped."))
    idle_timeout_s: float | None = field(default=300.0, metadata=_doc(
        "A connection that sends no message for this long is closed with 4002, freeing "
        "resources held by abandoned or hostile idle sockets. Clients say hello every 30 s, so "
        "honest ones never reach it; they reconnect transparently when they do."))
    open_timeout_s: float = field(default=10.0, metadata=_doc(
        "Time allowed for the WebSocket opening handshake (after the upgrade request head)."))
    close_timeout_s: float = field(default=5.0, metadata=_doc(
        "Time allowed for a closing handshake before the TCP connection is aborted."))
    shutdown_timeout_s: float = field(default=10.0, metadata=_doc(
        "Graceful shutdown budget: then remaining connections are aborted and the mailbox "
        "flushed anyway."))
    replay_page_frames: int = field(default=64, metadata=_doc(
        "Frames read from the mailbox per replay step."))
    replay_page_bytes: int = field(default=4 * MiB, metadata=_doc(
        "Bytes read from the mailbox per replay step (at least one frame is always read)."))
    prune_interval_s: float | None = field(default=300.0, metadata=_doc(
        "How often aged-out mailbox frames are swept (byte limits apply on every append)."))
    admission_timeout_s: float = field(default=DEFAULT_ADMISSION_TIMEOUT_S, metadata=_doc(
        "Time a new connection has to answer the room challenge (relay/admission.py); then 4003."))
    http_max_head_bytes: int = field(default=16 * KiB, metadata=_doc(
        "Largest HTTP request head (request line + headers); 431 past it."))
    http_max_body_bytes: int = field(default=1 * MiB, metadata=_doc(
        "Largest HTTP request body (e.g. POST /graphql); 413 past it."))
    http_timeout_s: float = field(default=10.0, metadata=_doc(
        "Time to receive an HTTP request head and body (slowloris bound), and for each response "
        "write step."))
    http_max_connections: int = field(default=256, metadata=_doc(
        "Connections that have not finished their request head, or are being answered, at "
        "once. When full, the oldest one still waiting for its head is closed to make room, "
        "so idle sockets cannot lock honest clients out."))
    http_max_connections_per_ip: int = field(default=64, metadata=_doc(
        "The same, per client address: past it that address's own oldest waiting connection "
        "is closed first."))
    http_keepalive_timeout_s: float = field(default=5.0, metadata=_doc(
        "Time an answered HTTP connection may wait for its next request: long enough for the "
        "burst of requests of a page load, short so idle sockets give back their slot (idle "
        "ones are also the first closed when the table is full)."))
    http_max_requests_per_connection: int = field(default=1000, metadata=_doc(
        "Answers per HTTP connection; the last says Connection: close, so one client cannot "
        "keep a connection for ever."))
    http_linger_s: float = field(default=2.0, metadata=_doc(
        "After an error answer, time input is still read and dropped before the close (a few "
        "round trips on a slow link), so the client reads the answer instead of a reset."))

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if f.type in ("int",):
                if type(v) is not int or v <= 0:
                    raise ValidationError(f"RelayConfig.{f.name} must be a positive int")
            elif "None" in str(f.type):
                if v is not None and (not isinstance(v, (int, float)) or isinstance(v, bool) or not v > 0):
                    raise ValidationError(f"RelayConfig.{f.name} must be > 0 or None")
            else:
                if not isinstance(v, (int, float)) or isinstance(v, bool) or not v > 0:
                    raise ValidationError(f"RelayConfig.{f.name} must be > 0")
        if self.send_queue_bytes < self.max_frame_bytes + 64:
            raise ValidationError("send_queue_bytes must hold one max-size frame (max_frame_bytes + 64)")
        if self.rate_bytes_burst < self.max_frame_bytes:
            raise ValidationError("rate_bytes_burst must be >= max_frame_bytes")
        if self.max_address_share is not None and self.max_address_share > 1:
            raise ValidationError("RelayConfig.max_address_share must be <= 1 or None")
        if self.max_frame_bytes < 2:
            raise ValidationError("max_frame_bytes must be >= 2")

    def http_limits(self) -> HttpLimits:
        return HttpLimits(self.http_max_head_bytes, 100, self.http_max_body_bytes, self.http_timeout_s,
                          self.http_max_connections, self.http_max_connections_per_ip,
                          keepalive_timeout_s=self.http_keepalive_timeout_s,
                          max_requests_per_connection=self.http_max_requests_per_connection,
                          linger_s=self.http_linger_s)


class TokenBucket:
    """Classic token bucket; ``now`` is passed in (the loop's monotonic clock)."""

    __slots__ = ("rate", "burst", "tokens", "t")

    def __init__(self, rate: float, burst: float, now: float):
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.t = now

    def take(self, now: float, amount: float = 1.0) -> bool:
        self.tokens = min(self.burst, self.tokens + max(0.0, now - self.t) * self.rate)
        self.t = now
        if self.tokens >= amount:
            self.tokens -= amount
            return True
        return False
