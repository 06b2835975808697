"""Relay counters and their Prometheus text form (``/metrics``; ``/metrics.json`` is the dict)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..core.errors import OstraconError
from .mailbox import Mailbox

#: Why a connection was closed, refused or held back. Each limit of RelayConfig has one.
DROP_REASONS = ("oversize", "rate_limit", "slow_consumer", "resync", "idle", "bad_message", "max_connections",
                "per_ip", "max_rooms", "room_full", "mailbox_error", "pending_evicted", "ephemeral_dropped",
                "not_admitted", "store_budget")


@dataclass
class RelayMetrics:
    connections_total: int = 0
    frames_in: int = 0
    bytes_in: int = 0
    frames_out: int = 0
    control_out: int = 0
    bytes_out: int = 0
    stored_frames: int = 0
    http_requests: int = 0
    throttled_s: float = 0.0  # total time connections were held back by rate limits
    queued_bytes: int = 0  # bytes in all send queues now
    queue_high_water_bytes: int = 0  # largest single-member queue ever seen
    drops: dict[str, int] = field(default_factory=lambda: {r: 0 for r in DROP_REASONS})


def metrics_snapshot(m: RelayMetrics, mailbox: Mailbox, *, connections: int, pending: int, pending_evicted: int,
                     rooms: int, saturated: bool, uptime_s: float) -> dict[str, Any]:
    """The relay's counters and gauges as one dict (``/metrics.json``)."""
    try:
        ms = mailbox.stats()
        mb: dict[str, Any] = {"rooms": ms.rooms, "frames": ms.frames, "bytes": ms.bytes, "dropped": dict(ms.dropped)}
    except OstraconError:
        mb = {"error": "unavailable"}
    drops = dict(m.drops)
    drops["pending_evicted"] = pending_evicted
    return {
        "connections": connections,
        "connections_total": m.connections_total,
        "pending_connections": pending,
        "rooms": rooms,
        "frames_in": m.frames_in,
        "bytes_in": m.bytes_in,
        "frames_out": m.frames_out,
        "control_out": m.control_out,
        "bytes_out": m.bytes_out,
        "stored_frames": m.stored_frames,
        "http_requests": m.http_requests,
        "throttled_s": round(m.throttled_s, 3),
        "queued_bytes": m.queued_bytes,
        "queue_high_water_bytes": m.queue_high_water_bytes,
        "drops": drops,
        "saturated": saturated,
        "mailbox": mb,
        "uptime_s": round(uptime_s, 3),
    }


def prometheus_text(s: dict[str, Any]) -> str:
    """Render a ``Relay.metrics_snapshot()`` in the Prometheus text exposition format 0.0.4."""
    out: list[str] = []

    def metric(name: str, kind: str, help_: str, samples: list[tuple[str, Any]]) -> None:
        out.append(f"# HELP ostracon_relay_{name} {help_}")
        out.append(f"# TYPE ostracon_relay_{name} {kind}")
        for labels, value in samples:
            out.append(f"ostracon_relay_{name}{labels} {value}")

    metric("connections", "gauge", "Open WebSocket connections.", [("", s["connections"])])
    metric("connections_total", "counter", "WebSocket connections accepted.", [("", s["connections_total"])])
    metric("pending_connections", "gauge", "Connections before their first request head.",
           [("", s["pending_connections"])])
    metric("rooms", "gauge", "Rooms with at least one member.", [("", s["rooms"])])
    metric("frames_in_total", "counter", "Client messages received.", [("", s["frames_in"])])
    metric("bytes_in_total", "counter", "Client message bytes received.", [("", s["bytes_in"])])
    metric("frames_out_total", "counter", "Frames delivered (live and replayed).", [("", s["frames_out"])])
    metric("control_out_total", "counter", "Control messages sent.", [("", s["control_out"])])
    metric("bytes_out_total", "counter", "Bytes sent to clients.", [("", s["bytes_out"])])
    metric("stored_frames_total", "counter", "Frames stored in the mailbox.", [("", s["stored_frames"])])
    metric("http_requests_total", "counter", "Plain HTTP requests.", [("", s["http_requests"])])
    metric("throttled_seconds_total", "counter", "Time connections were held back by rate limits.",
           [("", s["throttled_s"])])
    metric("queued_bytes", "gauge", "Bytes waiting in send queues.", [("", s["queued_bytes"])])
    metric("queue_high_water_bytes", "gauge", "Largest send queue seen.", [("", s["queue_high_water_bytes"])])
    metric("drops_total", "counter", "Limit hits: connections closed, refused, throttled or resynced, by reason.",
           [(f'{{reason="{r}"}}', n) for r, n in sorted(s["drops"].items())])
    metric("saturated", "gauge", "1 when the relay cannot admit a new connection.", [("", int(s["saturated"]))])
    mb = s["mailbox"]
    if "error" not in mb:
        metric("mailbox_rooms", "gauge", "Rooms with a mailbox record.", [("", mb["rooms"])])
        metric("mailbox_frames", "gauge", "Frames retained in the mailbox.", [("", mb["frames"])])
        metric("mailbox_bytes", "gauge", "Bytes retained in the mailbox, per-frame overhead included.",
               [("", mb["bytes"])])
        metric("mailbox_dropped_total", "counter",
               "Frames pruned, refused or set aside as malformed by the mailbox, by reason.",
               [(f'{{reason="{r}"}}', n) for r, n in sorted(mb["dropped"].items())])
    metric("uptime_seconds", "gauge", "Seconds since start.", [("", s["uptime_s"])])
    return "\n".join(out) + "\n"
