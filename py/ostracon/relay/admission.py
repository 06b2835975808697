"""Room admission: a connection becomes a member of a room only after it proves it holds the
room's key (docs/RELAY.md "Admission", docs/CRYPTO.md "Room capability").

A room id is the Ed25519 public key of a signing key every member derives from the space's
current epoch key. The relay never learns that key; it only checks a signature:

    relay  → client   challenge {v, nonce}        nonce = 32 fresh random bytes
    client → relay    auth {sig, relay}           sig = Ed25519(room key, auth_message(room, nonce, relay))
    relay             relay is one of its names?  verify(room id, message, sig)
                      → welcome … (a member)   or   close 4003

``relay`` is the name (``host[:port]``) the client connected to. The relay accepts only its
own names: when it is configured with ``--allowed-host``, those hosts; otherwise the
request's ``Host`` header. So an answer another relay collected from a member (it chose the nonce
and relayed it) is refused here: it is signed for the other relay's name.

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
from .http import host_allowed

#: Seconds a connection may take to answer the challenge. An honest client answers in one
#: round trip; 10 s covers slow mobile links while an unanswered socket is freed quickly.
DEFAULT_ADMISSION_TIMEOUT_S = 10.0

REASON_NOT_A_ROOM_KEY = "not admitted: this room id is not a room key (upgrade the client)"
REASON_BAD_SIGNATURE = "not admitted: the answer is not signed by this room's key"
REASON_NO_ANSWER = "not admitted: no answer to the challenge"
REASON_MALFORMED = "not admitted: malformed answer to the challenge"
REASON_OTHER_RELAY = "not admitted: the answer is signed for another relay"


def room_accepts_admission(room: str) -> bool:
    """True iff ``room`` (hex) has the shape of a room key (64 hex digits)."""
    return P.valid_room_id(room) and len(room) == P.ROOM_KEY_HEX


def names_this_relay(name: str, host_header: str | None, allowed_hosts: frozenset[str] | None) -> bool:
    """True iff the relay name a client signed is one of this relay's names: with configured
    allowed hosts, one of them (port ignored, as for the Host check itself); without, the
    ``Host`` header of the client's request (compared lower-cased). A relay that is reachable
    directly should configure its names: without them a replaying relay can send its own
    name in the Host header (docs/RELAY.md "Under attack")."""
    if allowed_hosts is not None:
        return host_allowed(name, allowed_hosts)
    return host_header is not None and name == host_header.strip().lower()


def verify_answer(room: str, nonce: bytes, answer: bytes, host_header: str | None,
                  allowed_hosts: frozenset[str] | None = None) -> str | None:
    """None when ``answer`` (a raw C_AUTH message) is the room key's signature over the
    challenge, for a name of this relay (``names_this_relay``); otherwise the close reason."""
    if not room_accepts_admission(room):
        return REASON_NOT_A_ROOM_KEY
    try:
        auth = P.decode_auth(answer)
    except ProtocolError:
        return REASON_MALFORMED
    if not names_this_relay(auth.relay, host_header, allowed_hosts):
        return REASON_OTHER_RELAY
    key = bytes.fromhex(room)
    try:
        Ed25519PublicKey.from_public_bytes(key).verify(auth.sig, P.auth_message(key, nonce, auth.relay))
    except (InvalidSignature, ValueError):
        # ValueError: 32 bytes that are not a point on the curve; nobody can sign for them.
        return REASON_BAD_SIGNATURE
    return None


async def admit(ws: Any, room: str, *, host_header: str | None = None,
                allowed_hosts: frozenset[str] | None = None,
                timeout_s: float = DEFAULT_ADMISSION_TIMEOUT_S,
                random_bytes: Callable[[int], bytes] = os.urandom) -> str | None:
    """Run the challenge on a fresh WebSocket. ``host_header`` is the request's Host header,
    ``allowed_hosts`` the relay's configured names (None: any). None = admitted; else the
    reason to close with ``CLOSE_NOT_ADMITTED``. Raises websockets' ConnectionClosed if the
    peer goes away."""
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
    return verify_answer(room, nonce, answer, host_header, allowed_hosts)
