"""The abuse suite: every attack on the relay replayed against real relay processes.

Each check is about behaviour: an honest client (another loopback address) still connects and
converges during the attack, limits refuse or hold back exactly the attacker, and relay memory
stays under its bound. Nothing asserts how fast anything happened. Attack code and sizes for
`make bench` live in tests/relay_attacks.py.
"""

from __future__ import annotations

import asyncio

import pytest

import relay_attacks as A
from relay_process import RelayProcess

MiB = 1024 * 1024
#: Relay memory may grow by this much during an attack (queues, sockets, SQLite cache); the
#: unbounded behaviours this suite guards against grew by hundreds of megabytes to gigabytes.
RSS_BOUND_MB = 96


def _relay(tmp_path, *flags: str) -> RelayProcess:
    return RelayProcess(["--mailbox", f"sqlite:{tmp_path / 'relay' / 'mailbox.sqlite'}", *flags],
                        str(tmp_path / "relay.log")).start()


@pytest.fixture
def relay_factory(tmp_path):
    started = []

    def make(*flags: str) -> RelayProcess:
        r = _relay(tmp_path, *flags)
        started.append(r)
        return r

    yield make
    for r in started:
        r.kill()


def test_idle_tcp_sockets_never_lock_out_http_or_websockets(relay_factory, tmp_path):
    relay = relay_factory("--http-max-connections", "32", "--http-max-connections-per-ip", "32")
    out = asyncio.run(A.idle_tcp(relay, tmp_path, sockets=48, reopen_rounds=3))
    assert out["healthz"] == 200
    assert out["evicted"] >= 16  # the table was full: idle sockets made room for honest ones


def test_idle_websockets_from_one_host_take_only_their_share(relay_factory, tmp_path):
    relay = relay_factory("--max-connections-per-ip", "16")
    out = asyncio.run(A.idle_websockets(relay, tmp_path, attempts=40))
    assert out["held"] == 16 and out["refused"] == 24 and out["per_ip_drops"] == 24
    assert out["healthz"] == 200  # not saturated: everyone else is still admitted


def test_healthz_reports_saturation_and_recovers(relay_factory):
    relay = relay_factory("--max-connections", "12")
    out = asyncio.run(A.saturation(relay, fill=12))
    assert out["healthz_during"] == 503


def test_big_first_upload_completes_on_one_connection_and_a_new_device_gets_it_all(relay_factory, tmp_path):
    # A low rate makes the bucket matter at test size: the upload is held back, not cut off.
    relay = relay_factory("--rate-bytes-per-s", str(4 * MiB), "--rate-bytes-burst", str(2 * MiB))
    out = asyncio.run(A.big_upload(relay, tmp_path, megabytes=8))
    assert out["connections"] == 1, out  # never disconnected for its rate
    assert out["throttled_s"] > 0, out
    assert out["relay_received_mb"] < 8 * 1.3, out  # sent once, not again and again
    got, total = out["new_device_docs"].split("/")
    assert got == total and out["identical"] and out["peers_seen_by_new_device"] == 0, out
    assert out["new_device_error"] == "none", out


def test_upload_larger_than_the_mailbox_tells_the_new_device_to_sync_from_a_peer(relay_factory, tmp_path):
    relay = relay_factory("--mailbox-max-room-bytes", str(3 * MiB))
    out = asyncio.run(A.big_upload(relay, tmp_path, megabytes=6))
    assert out["connections"] == 1, out
    assert out["new_device_error"] == "CatchUpIncompleteError", out


def test_junk_rooms_are_accounted_with_their_overhead(relay_factory):
    relay = relay_factory()
    out = asyncio.run(A.junk_rooms(relay, rooms=300))
    assert out["accounted_bytes"] >= 300 * 97  # payload + FRAME_OVERHEAD_BYTES each
    assert out["rss_growth_mb"] < RSS_BOUND_MB, out


def test_flood_with_a_stalled_member_keeps_memory_bounded_and_readers_in_order(relay_factory, tmp_path):
    relay = relay_factory("--send-queue-bytes", str(2 * MiB), "--send-timeout-s", "2", "--rate-bytes-per-s", "off",
                          "--rate-frames-per-s", "off")
    out = asyncio.run(A.flood_with_stalled_reader(relay, tmp_path, frames=300))
    assert out["reader_in_order"], out
    assert out["resyncs"] + out["kicked"] >= 1, out  # the stalled member was dealt with
    assert out["queue_high_water_mb"] <= 2, out
    assert out["rss_growth_mb"] < RSS_BOUND_MB, out


def test_garbage_messages_close_only_their_connection(relay_factory, tmp_path):
    relay = relay_factory()
    out = asyncio.run(A.garbage(relay, tmp_path, messages=300))
    assert out["bad_message_drops"] >= 200, out  # every text / unknown-kind message closed its connection


def test_reconnecting_does_not_refill_the_rate_allowance(relay_factory):
    rate, burst = 200_000, 400_000
    relay = relay_factory("--rate-bytes-per-s", str(rate), "--rate-bytes-burst", str(burst),
                          "--max-frame-bytes", "65536", "--send-queue-bytes", str(MiB))
    out = asyncio.run(A.reconnect_flood(relay, seconds=3.0, rate=rate, burst=burst))
    # Upper bound only: what got through is at most the burst plus the rate over the time
    # taken (plus one frame of debt), however many connections were used.
    assert out["accepted_bytes"] <= out["allowed_bytes"] + 16_000 * 20, out
    assert out["throttled_s"] > 0, out
