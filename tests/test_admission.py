"""Room admission (relay/admission.py): what the relay accepts as an answer to its challenge,
and the relay name every answer is bound to (core/protocol/relay.py ``relay_name``)."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ostracon.core.errors import ProtocolError, ValidationError
from ostracon.core.protocol import relay as P
from ostracon.crypto.native import NativeCrypto
from ostracon.crypto.space import Space
from ostracon.relay.admission import (
    REASON_BAD_SIGNATURE,
    REASON_MALFORMED,
    REASON_NOT_A_ROOM_KEY,
    REASON_OTHER_RELAY,
    names_this_relay,
    room_accepts_admission,
    verify_answer,
)

CRYPTO = NativeCrypto()
HOST = "relay.example"


def _answer(space: Space, nonce: bytes, relay: str = HOST) -> bytes:
    return P.encode_auth(space.sign_challenge(nonce, relay=relay), relay)


def test_the_room_key_is_admitted_and_nothing_else():
    space = Space.generate(crypto=CRYPTO)
    nonce = os.urandom(P.CHALLENGE_NONCE_SIZE)
    good = _answer(space, nonce)
    assert verify_answer(space.room_id, nonce, good, HOST) is None
    # Another nonce (a replayed answer), another room, another key: refused.
    assert verify_answer(space.room_id, os.urandom(32), good, HOST) == REASON_BAD_SIGNATURE
    other = Space.generate(crypto=CRYPTO)
    assert verify_answer(other.room_id, nonce, good, HOST) == REASON_BAD_SIGNATURE
    assert verify_answer(space.room_id, nonce, _answer(other, nonce), HOST) == REASON_BAD_SIGNATURE


def test_an_answer_given_to_another_relay_is_refused():
    """A relay that relays our challenge to a member collects an answer signed for its own
    name: worthless here, whatever the nonce."""
    space = Space.generate(crypto=CRYPTO)
    nonce = os.urandom(32)
    for_evil = _answer(space, nonce, "evil.example")
    assert verify_answer(space.room_id, nonce, for_evil, HOST) == REASON_OTHER_RELAY
    # Claiming our name without a signature over it does not help either.
    sig = space.sign_challenge(nonce, relay="evil.example")
    assert verify_answer(space.room_id, nonce, P.encode_auth(sig, HOST), HOST) == REASON_BAD_SIGNATURE
    # A replaying relay that forges our Host header is stopped by configured names: its
    # answer names itself, which is not one of ours.
    assert verify_answer(space.room_id, nonce, for_evil, "evil.example", frozenset({HOST})) == REASON_OTHER_RELAY
    assert verify_answer(space.room_id, nonce, _answer(space, nonce), "evil.example", frozenset({HOST})) is None
    assert not names_this_relay("evil.example", None, frozenset({HOST}))
    assert names_this_relay(HOST + ":8443", None, frozenset({HOST}))
    assert names_this_relay(HOST, "Relay.Example", None)
    assert not names_this_relay(HOST, None, None)
    assert not names_this_relay(HOST, "relay.example:8443", None)


def test_malformed_answers_and_room_ids():
    space = Space.generate(crypto=CRYPTO)
    nonce = os.urandom(32)
    v1 = P._control(P.C_AUTH, {"sig": bytes(64)})  # an earlier client: no relay name
    bad_name = P._control(P.C_AUTH, {"sig": bytes(64), "relay": "Relay.Example"})
    for junk in (b"", b"\x10", b"\x01" + b"x" * 100, P.encode_publish(b"x"), b"\x10\xa3abc", v1, bad_name):
        assert verify_answer(space.room_id, nonce, junk, HOST) == REASON_MALFORMED, junk
    assert not room_accepts_admission("ab" * 16)  # a 16-byte room id of earlier versions
    assert verify_answer("ab" * 16, nonce, P.encode_auth(bytes(64), HOST), HOST) == REASON_NOT_A_ROOM_KEY
    # 32 bytes that are not a curve point: nobody can sign for them.
    assert verify_answer("ff" * 32, nonce, P.encode_auth(bytes(64), HOST), HOST) == REASON_BAD_SIGNATURE


def test_challenge_and_auth_encoding_round_trip():
    nonce = os.urandom(32)
    msg = P.decode_server_message(P.encode_challenge(P.Challenge(1, nonce)))
    assert msg == P.Challenge(1, nonce)
    sig = os.urandom(64)
    assert P.decode_auth(P.encode_auth(sig, HOST)) == P.Auth(sig, HOST)
    assert P.auth_message(bytes(32), nonce, HOST) == (
        b"ostracon/room-auth/v2\x00" + bytes(32) + nonce + bytes([len(HOST)]) + HOST.encode())
    with pytest.raises(ValidationError):
        P.auth_message(bytes(32), nonce, "x" * (P.MAX_RELAY_NAME + 1))


@pytest.mark.parametrize(("url", "name"), [
    ("ws://127.0.0.1:8765", "127.0.0.1:8765"),
    ("wss://Relay.Example/v1/room/ab?since=1", "relay.example"),
    ("wss://relay.example:443", "relay.example"),
    ("ws://relay.example:80/", "relay.example"),
    ("ws://relay.example:443", "relay.example:443"),
    ("WSS://user:pw@relay.example:0443#x", "relay.example"),
    ("ws://[::1]:9000/path", "[::1]:9000"),
    ("ws://[::1]", "[::1]"),
    ("ws://localhost:", "localhost"),
])
def test_relay_name_is_the_host_header_of_the_url(url, name):
    assert P.relay_name(url) == name


@pytest.mark.parametrize("url", ["http://relay.example", "relay.example", "ws://", "ws://rélay.example",
                                 "ws://relay.example:http", "ws://a b", 7])
def test_relay_name_refuses_what_is_not_a_relay_url(url):
    with pytest.raises(ValidationError):
        P.relay_name(url)


@given(st.binary(max_size=80))
def test_decode_auth_only_raises_protocol_error(data):
    try:
        P.decode_auth(b"\x10" + data)
    except ProtocolError:
        pass
