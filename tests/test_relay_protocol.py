"""Relay wire protocol: encoders/decoders round-trip, malformed input is a ProtocolError."""

from __future__ import annotations

import random

import msgpack
import pytest

from ostracon.core.errors import ProtocolError, ValidationError
from ostracon.core.protocol import relay as P

ROOM = "ab" * 32

MESSAGES = [
    P.Frame(1, b"x"), P.Frame(2**63 - 1, bytes(range(256))), P.Ephemeral(b"e"), P.Ack(0), P.Ack(77),
    P.Welcome(1, "0123abcd", 10, 4, 1 << 20, 3), P.Welcome(1, "e", 0, 1, 2, 1), P.CaughtUp(0), P.CaughtUp(9),
    P.Gap("pruned", 2, 8, 10), P.Gap("epoch", 4, 1, 5), P.Gap("ahead", 9, 1, 5), P.Peers(0), P.Peers(100),
    P.Pong(b"t"), P.Pong(bytes(P.MAX_PING_TOKEN)), P.Unknown(0x7F, b"future"),
]


@pytest.mark.parametrize("msg", MESSAGES, ids=lambda m: type(m).__name__)
def test_round_trip(msg):
    assert P.decode_server_message(P.encode_server_message(msg)) == msg


def test_layouts_are_fixed():
    # Data messages: kind ‖ u64be cursor ‖ payload, so fan-out never re-encodes payloads.
    assert P.encode_frame(1, b"ab") == b"\x01" + (1).to_bytes(8, "big") + b"ab"
    assert P.encode_ack(258) == b"\x03" + (258).to_bytes(8, "big")
    assert P.encode_ephemeral_out(b"z") == b"\x02z"
    assert P.encode_publish(b"p") == b"\x01p" and P.encode_ephemeral(b"q") == b"\x02q"
    assert P.encode_peers(P.Peers(2)) == b"\x13" + msgpack.packb({"count": 2})


def test_ping_carries_a_short_token():
    assert P.encode_ping(b"ab") == b"\x03ab" and P.encode_pong(b"ab") == b"\x15ab"
    for bad in (b"", bytes(P.MAX_PING_TOKEN + 1), "text"):
        with pytest.raises(ValidationError):
            P.encode_ping(bad)
    with pytest.raises(ProtocolError):
        P.decode_server_message(b"\x15")


def test_room_path():
    assert P.room_path(ROOM) == "/v1/room/" + ROOM
    assert P.room_path(ROOM, 5, "beef") == f"/v1/room/{ROOM}?since=5&epoch=beef"
    for bad in ("AB" * 32, "ab" * 15, "ab" * 65, "g" * 64, ""):
        with pytest.raises(ValidationError):
            P.room_path(bad)
    with pytest.raises(ValidationError):
        P.room_path(ROOM, -1)
    with pytest.raises(ValidationError):
        P.room_path(ROOM, 1, "NOTHEX")


@pytest.mark.parametrize("data", [
    b"", "text", b"\x01short", b"\x03" + b"\0" * 7, b"\x03" + b"\0" * 9, b"\x01" + b"\0" * 8 + b"",
    b"\x01" + (0).to_bytes(8, "big") + b"x",  # stored frames have cursor >= 1
    b"\x02", b"\x10\xc1", b"\x10" + msgpack.packb([1, 2]), b"\x11" + msgpack.packb({}),
    b"\x11" + msgpack.packb({"cursor": -1}), b"\x11" + msgpack.packb({"cursor": "1"}),
    b"\x12" + msgpack.packb({"reason": "other", "since": 1, "oldest": 1, "head": 1}),
    b"\x13" + msgpack.packb({"count": True}),
    b"\x10" + msgpack.packb({"v": 1, "epoch": "XX", "head": 0, "oldest": 1, "max_frame_bytes": 1, "members": 1}),
    b"\x10" + msgpack.packb({"v": 1, "epoch": "aa", "head": 0, "oldest": 5, "max_frame_bytes": 1, "members": 1}),
])
def test_malformed_messages_raise_protocol_error(data):
    with pytest.raises(ProtocolError):
        P.decode_server_message(data)


def test_random_bytes_never_leak_other_exceptions():
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    for _ in range(3000):
        data = bytes([rng.choice([0x01, 0x02, 0x03, 0x10, 0x11, 0x12, 0x13, rng.randrange(256)])])
        data += rng.randbytes(rng.randrange(20))
        try:
            P.decode_server_message(data)
        except ProtocolError:
            pass
        except Exception:
            print(f"seed={seed} data={data!r}")
            raise


def test_unknown_control_keys_are_ignored():
    body = {"cursor": 3, "future_field": [1, 2]}
    assert P.decode_server_message(b"\x11" + msgpack.packb(body)) == P.CaughtUp(3)


def test_message_validation():
    with pytest.raises(ValidationError):
        P.Frame(0, b"x")
    with pytest.raises(ValidationError):
        P.Frame(1, b"")
    with pytest.raises(ValidationError):
        P.Gap("nope", 1, 1, 1)
    with pytest.raises(ValidationError):
        P.encode_publish(b"")
