"""Room keys for tests that speak the relay protocol by hand: the relay admits a connection
only after it signs the challenge with the room key (docs/RELAY.md "Admission").

`new_room()` makes a room id (an Ed25519 public key) and remembers its seed; `answer(conn,
room)` reads the challenge from any object with async `recv`/`send` (a websockets client or a
sync Transport) and answers it, signed for the relay name the connection dialled (taken from a
websockets client's request, or given as `relay=`; tests dial 127.0.0.1).
"""

from __future__ import annotations

import asyncio
import hashlib

from ostracon.core.protocol import relay as P
from ostracon.crypto import default_backend

_SEEDS: dict[str, bytes] = {}


def room_for(label: str) -> str:
    """A deterministic room id for a test label (the seed is a hash of the label)."""
    seed = hashlib.sha256(b"ostracon/test-room\x00" + label.encode()).digest()
    room = default_backend().ed25519_public_key(seed).hex()
    _SEEDS[room] = seed
    return room


def new_room() -> str:
    """A fresh random room id whose key the tests hold."""
    seed = default_backend().random_bytes(32)
    room = default_backend().ed25519_public_key(seed).hex()
    _SEEDS[room] = seed
    return room


def signature(room: str, nonce: bytes, relay: str) -> bytes:
    return default_backend().ed25519_sign(_SEEDS[room], P.auth_message(bytes.fromhex(room), nonce, relay))


def auth(room: str, nonce: bytes, relay: str) -> bytes:
    """The C_AUTH message answering ``nonce`` for ``room`` at the relay named ``relay``."""
    return P.encode_auth(signature(room, nonce, relay), relay)


async def answer(conn, room: str, timeout: float = 10.0, relay: str | None = None) -> None:
    """Read the relay's challenge and answer it with the room key."""
    if relay is None:
        relay = conn.request.headers["Host"].lower()
    msg = P.decode_server_message(await asyncio.wait_for(conn.recv(), timeout))
    assert isinstance(msg, P.Challenge), f"expected a challenge, got {msg!r}"
    await conn.send(auth(room, msg.nonce, relay))


def remember(space) -> str:
    """Hold the room key of `space`'s current epoch (for rooms a test's space owns)."""
    room = space.room_id
    _SEEDS[room] = space.current.room_seed
    return room
