"""Room admission: a connection becomes a member of a room only after it proves it holds the
room's key (docs/RELAY.md "Admission", docs/CRYPTO.md "Room capability").

A room id is the Ed25519 public key of a signing key every member derives from the space's
current epoch key. The relay never learns that key; it only checks a signature:

    relay  → client   challenge {v, nonce}        nonce = 32 fresh random bytes
    client → relay    auth {sig}                  sig = Ed25519(room key, auth_message(room, nonce))
    relay             verify(room id, message, sig) → welcome … (a member)   or   close 4003

Until then the connection is not in the room: it receives nothing, is not counted in
``peers`` and cannot publish. A room id that is not a public key (e.g. an old 16-byte
HKDF room id) cannot be admitted to at all.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ..core.errors import ProtocolError
from ..core.protocol import relay as P

#: Seconds a connection may take to answer the challenge. An honest client answers in one
#: round trip; 10 s covers slow mobile links while an unanswered socket is freed quickly.
DEFAULT_ADMISSION_TIMEOUT_S = 10.0

REASON_NOT_A_ROOM_KEY = "not admitted: this room id is not a room key (upgrade the client)"
REASON_BAD_SIGNATURE = "not admitted: the answer is not signed by this room's key"
REASON_NO_ANSWER = "not admitted: no answer to the challenge"
REASON_MALFORMED = "not admitted: malformed answer to the challenge"


def room_accepts_admission(room: str) -> bool:
    """True iff ``room`` (hex) has the shape of a room key (64 hex digits)."""
    return P.valid_room_id(room) and len(room) == P.ROOM_KEY_HEX


def verify_answer(room: str, nonce: bytes, answer: bytes) -> str | None:
    """None when ``answer`` (a raw C_AUTH message) is the room key's signature over the
    challenge; otherwise the close reason to send."""
    if not room_accepts_admission(room):
        return REASON_NOT_A_ROOM_KEY
    try:
        sig = P.decode_auth(answer)
    except ProtocolError:
        return REASON_MALFORMED
    key = bytes.fromhex(room)
    try:
        Ed25519PublicKey.from_public_bytes(key).verify(sig, P.auth_message(key, nonce))
    except (InvalidSignature, ValueError):
        # ValueError: 32 bytes that are not a point on the curve; nobody can sign for them.
        return REASON_BAD_SIGNATURE
    return None


async def admit(ws: Any, room: str, *, timeout_s: float = DEFAULT_ADMISSION_TIMEOUT_S,
                random_bytes: Callable[[int], bytes] = os.urandom) -> str | None:
    """Run the challenge on a fresh WebSocket. None = admitted; else the reason to close with
    ``CLOSE_NOT_ADMITTED``. Raises websockets' ConnectionClosed if the peer goes away."""
    if not room_accepts_admission(room):
        return REASON_NOT_A_ROOM_KEY
    nonce = random_bytes(P.CHALLENGE_NONCE_SIZE)
    await ws.send(P.encode_challenge(P.Challenge(P.PROTOCOL_VERSION, nonce)))
    try:
        async with asyncio.timeout(timeout_s):
            answer = await ws.recv()
    except TimeoutError:
        return REASON_NO_ANSWER
    if isinstance(answer, str):
        return REASON_MALFORMED
    return verify_answer(room, nonce, answer)
