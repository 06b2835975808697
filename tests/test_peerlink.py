"""core/protocol/peerlink.py: the held room (LocalRoom) and the peer-link admission codec."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ostracon.core.errors import ProtocolError, ValidationError
from ostracon.core.protocol import peerlink as L
from ostracon.core.protocol import relay as P


def _sends(outs, member):
    return [P.decode_server_message(o.data) for o in outs if isinstance(o, L.Send) and o.member == member]


def test_join_welcomes_and_counts_members():
    room = L.LocalRoom(max_members=2, max_frame_bytes=100)
    first = _sends(room.join(1), 1)
    assert first == [P.Welcome(1, L.LINK_EPOCH, 0, 1, 100, 1), P.CaughtUp(0)]
    outs = room.join(2)
    assert _sends(outs, 1) == [P.Peers(2)] and _sends(outs, 2)[0].members == 2
    assert room.join(3) == [L.Close(3, P.CLOSE_TRY_AGAIN, "the room is full")]
    assert 3 not in room and len(room) == 2
    assert _sends(room.leave(2), 1) == [P.Peers(1)]
    assert room.leave(2) == []
    with pytest.raises(ValidationError):
        room.join(1)


def test_frames_are_forwarded_in_order_and_publishes_acked():
    room = L.LocalRoom()
    for m in (1, 2, 3):
        room.join(m)
    outs = room.receive(1, P.encode_publish(b"\xa1one")) + room.receive(1, P.encode_ephemeral(b"\xa1two"))
    assert _sends(outs, 2) == _sends(outs, 3) == [P.Ephemeral(b"\xa1one"), P.Ephemeral(b"\xa1two")]
    assert _sends(outs, 1) == [P.Ack(0)]
    assert _sends(room.receive(2, P.encode_ping(b"tok")), 2) == [P.Pong(b"tok")]


@pytest.mark.parametrize("bad, code", [
    (b"", P.CLOSE_UNSUPPORTED), ("text", P.CLOSE_UNSUPPORTED), (b"\x7f junk", P.CLOSE_UNSUPPORTED),
    (b"\x01", P.CLOSE_UNSUPPORTED), (bytes([P.C_PING]) + b"x" * 9, P.CLOSE_UNSUPPORTED),
    (P.encode_auth(b"s" * 64, "peer.example"), P.CLOSE_UNSUPPORTED), (b"\x01" + b"x" * 100, P.CLOSE_TOO_BIG),
])
def test_a_bad_message_closes_only_its_sender(bad, code):
    room = L.LocalRoom(max_frame_bytes=100)
    room.join(1)
    room.join(2)
    outs = room.receive(1, bad)
    assert outs[0] == L.Close(1, code, outs[0].reason)
    assert _sends(outs, 2) == [P.Peers(1)]
    assert 1 not in room and room.receive(1, P.encode_publish(b"\xa1")) == []


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["join", "leave", "msg"]), st.integers(0, 5), st.binary(max_size=40))))
def test_any_sequence_never_raises_and_only_addresses_members(steps):
    room = L.LocalRoom(max_members=4, max_frame_bytes=32)
    present: set[int] = set()
    for op, member, data in steps:
        if op == "join":
            if member in present:
                continue
            outs = room.join(member)
            if not any(isinstance(o, L.Close) for o in outs):
                present.add(member)
        elif op == "leave":
            outs = room.leave(member)
            present.discard(member)
        else:
            outs = room.receive(member, data)
            if any(isinstance(o, L.Close) and o.member == member for o in outs):
                present.discard(member)
        for o in outs:
            if isinstance(o, L.Send):
                assert o.member in present
                P.decode_server_message(o.data)
        assert len(room) == len(present) <= 4


def test_peer_auth_codec_and_challenge_binding():
    n1, n2, sig = b"\x01" * 32, b"\x02" * 32, b"\x03" * 64
    assert L.decode_peer_auth(L.encode_peer_auth(sig, n2)) == (sig, n2)
    assert L.decode_peer_proof(L.encode_peer_proof(sig)) == sig
    derived = {L.peer_challenge(r, a, b) for r in (L.ROLE_DIALER, L.ROLE_HOST) for a, b in ((n1, n2), (n2, n1))}
    assert len(derived) == 4 and all(len(d) == 32 for d in derived)
    for junk in (b"", b"\x11", b"\x11\xc1", L.encode_peer_proof(sig), b"\x11" + bytes([0x81, 0xa3]) + b"sig"):
        with pytest.raises(ProtocolError):
            L.decode_peer_auth(junk)
    with pytest.raises(ProtocolError):
        L.decode_peer_proof(L.encode_peer_auth(sig, n1))
    with pytest.raises(ValidationError):
        L.peer_challenge(b"x", n1, n2)
    with pytest.raises(ValidationError):
        L.encode_peer_auth(sig, b"short")
