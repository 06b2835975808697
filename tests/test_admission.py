"""Room admission (relay/admission.py): what the relay accepts as an answer to its challenge."""

from __future__ import annotations

import os

from ostracon.core.protocol import relay as P
from ostracon.crypto.native import NativeCrypto
from ostracon.crypto.space import Space
from ostracon.relay.admission import (
    REASON_BAD_SIGNATURE,
    REASON_MALFORMED,
    REASON_NOT_A_ROOM_KEY,
    room_accepts_admission,
    verify_answer,
)

CRYPTO = NativeCrypto()


def test_the_room_key_is_admitted_and_nothing_else():
    space = Space.generate(crypto=CRYPTO)
    nonce = os.urandom(P.CHALLENGE_NONCE_SIZE)
    good = P.encode_auth(space.sign_challenge(nonce))
    assert verify_answer(space.room_id, nonce, good) is None
    # Another nonce (a replayed answer), another room, another key: refused.
    assert verify_answer(space.room_id, os.urandom(32), good) == REASON_BAD_SIGNATURE
    other = Space.generate(crypto=CRYPTO)
    assert verify_answer(other.room_id, nonce, good) == REASON_BAD_SIGNATURE
    assert verify_answer(space.room_id, nonce, P.encode_auth(other.sign_challenge(nonce))) == REASON_BAD_SIGNATURE


def test_malformed_answers_and_room_ids():
    space = Space.generate(crypto=CRYPTO)
    nonce = os.urandom(32)
    for junk in (b"", b"\x10", b"\x01" + b"x" * 100, P.encode_publish(b"x"), b"\x10\xa3abc"):
        assert verify_answer(space.room_id, nonce, junk) == REASON_MALFORMED, junk
    assert not room_accepts_admission("ab" * 16)  # a 16-byte room id of earlier versions
    assert verify_answer("ab" * 16, nonce, P.encode_auth(bytes(64))) == REASON_NOT_A_ROOM_KEY
    # 32 bytes that are not a curve point: nobody can sign for them.
    assert verify_answer("ff" * 32, nonce, P.encode_auth(bytes(64))) == REASON_BAD_SIGNATURE


def test_challenge_and_auth_encoding_round_trip():
    nonce = os.urandom(32)
    msg = P.decode_server_message(P.encode_challenge(P.Challenge(1, nonce)))
    assert msg == P.Challenge(1, nonce)
    sig = os.urandom(64)
    assert P.decode_auth(P.encode_auth(sig)) == sig
    assert P.auth_message(bytes(32), nonce) == b"ostracon/room-auth/v1\x00" + bytes(32) + nonce
