"""Rooms without a relay (docs/TRANSPORTS.md): the room a member holds for its peers, and the
mutual admission of a direct peer link. PURE, sans-IO (bytes in, instructions out).

A sync client speaks the relay protocol (core/protocol/relay.py) whatever carries it. When no
relay is between the members, one of them holds the room itself: a `LocalRoom` forwards each
member's frames to every other member exactly like a relay room, but it keeps no mailbox
(frames are live only, acks carry cursor 0, catch-up is immediate; members find what they
lack through the sync session's hello/need exchange, as after any reconnect).

Mutual admission. With a relay, only the connecting side proves it holds the room key; the
relay is trusted to forward ciphertext only. A peer that holds the room is itself a member,
so each side proves the room key to the other, and each signature is bound to both nonces
and to the signer's role:

    host   → dialer   challenge {v, nonce: n_h}                       (the relay's message)
    dialer → host     peer-auth {sig_d, nonce: n_d}
    host              verify sig_d over auth_message(room, peer_challenge("d", n_h, n_d), name)
    host   → dialer   peer-proof {sig_h}  with sig_h over auth_message(room, peer_challenge("h", n_h, n_d), name)
    host   → dialer   welcome …                                       (then a relay room)

`name` is the host's name as the dialer dialled it (its ``Host`` header, `relay_name(url)`),
as in a relay's admission. `peer_challenge` hashes a label, the role and both nonces into the
32 bytes that take the nonce's place in `auth_message`. So a signature obtained from a member by a peer that does not
hold the key answers neither a relay's challenge (random nonces nobody can aim a hash at) nor
the other role's proof; and the host signs only after the dialer proved itself. A peer that
merely forwards both sides' messages gains a pipe of ciphertext, the same as a relay.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import msgpack

from ..errors import ProtocolError, ValidationError
from . import relay as P

#: Domain label of the peer-link challenge derivation (never an admission nonce of a relay).
PEER_AUTH_LABEL = b"ostracon/peer-auth/v1\x00"
ROLE_DIALER = b"d"
ROLE_HOST = b"h"
#: dialer → host: kind ‖ msgpack {"sig": 64 bytes, "nonce": 32 bytes}
C_PEER_AUTH = 0x11
#: host → dialer: kind ‖ msgpack {"sig": 64 bytes}
S_PEER_PROOF = 0x16
#: The mailbox generation a LocalRoom announces: it never stores anything, so there is one.
LINK_EPOCH = "0"
#: Largest message a LocalRoom accepts (kind byte included): the relay's default, so one
#: maximum-size frame of a sync client fits (core/protocol/frames.py).
DEFAULT_MAX_FRAME_BYTES = 1024 * 1024
#: Members of one held room. A member serves every other member's needs itself (no mailbox),
#: so fan-out and serving cost grow with this; 32 devices of one space on one LAN is plenty.
DEFAULT_MAX_MEMBERS = 32


def peer_challenge(role: bytes, host_nonce: bytes, dialer_nonce: bytes) -> bytes:
    """The 32 bytes a side signs (in place of a relay nonce) to prove the room key on a peer
    link: ``sha256(PEER_AUTH_LABEL ‖ role ‖ host_nonce ‖ dialer_nonce)``."""
    if role not in (ROLE_DIALER, ROLE_HOST):
        raise ValidationError("role must be ROLE_DIALER or ROLE_HOST")
    for n in (host_nonce, dialer_nonce):
        if not isinstance(n, bytes) or len(n) != P.CHALLENGE_NONCE_SIZE:
            raise ValidationError(f"peer-link nonces are {P.CHALLENGE_NONCE_SIZE} bytes")
    return hashlib.sha256(PEER_AUTH_LABEL + role + host_nonce + dialer_nonce).digest()


def encode_peer_auth(signature: bytes, nonce: bytes) -> bytes:
    if not isinstance(signature, bytes) or len(signature) != P.AUTH_SIGNATURE_SIZE:
        raise ValidationError(f"signature must be {P.AUTH_SIGNATURE_SIZE} bytes")
    if not isinstance(nonce, bytes) or len(nonce) != P.CHALLENGE_NONCE_SIZE:
        raise ValidationError(f"nonce must be {P.CHALLENGE_NONCE_SIZE} bytes")
    return bytes([C_PEER_AUTH]) + msgpack.packb({"nonce": nonce, "sig": signature}, use_bin_type=True)


def encode_peer_proof(signature: bytes) -> bytes:
    if not isinstance(signature, bytes) or len(signature) != P.AUTH_SIGNATURE_SIZE:
        raise ValidationError(f"signature must be {P.AUTH_SIGNATURE_SIZE} bytes")
    return bytes([S_PEER_PROOF]) + msgpack.packb({"sig": signature}, use_bin_type=True)


def _body(data: object, kind: int, what: str) -> dict:
    if not isinstance(data, (bytes, bytearray, memoryview)) or len(data) < 2 or data[0] != kind:
        raise ProtocolError(f"expected a {what} message")
    try:
        obj = msgpack.unpackb(bytes(data[1:]), raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises several unrelated types: normalize them
        raise ProtocolError(f"{what}: body is not msgpack") from exc
    if not isinstance(obj, dict):
        raise ProtocolError(f"{what}: body is not a map")
    return obj


def _exact(obj: dict, key: str, size: int, what: str) -> bytes:
    value = obj.get(key)
    if not isinstance(value, bytes) or len(value) != size:
        raise ProtocolError(f"{what}: {key} must be {size} bytes")
    return value


def decode_peer_auth(data: object) -> tuple[bytes, bytes]:
    """(signature, dialer nonce) of a peer-auth message; ProtocolError otherwise."""
    obj = _body(data, C_PEER_AUTH, "peer-auth")
    return (_exact(obj, "sig", P.AUTH_SIGNATURE_SIZE, "peer-auth"),
            _exact(obj, "nonce", P.CHALLENGE_NONCE_SIZE, "peer-auth"))


def decode_peer_proof(data: object) -> bytes:
    """The host's signature in a peer-proof message; ProtocolError otherwise."""
    return _exact(_body(data, S_PEER_PROOF, "peer-proof"), "sig", P.AUTH_SIGNATURE_SIZE, "peer-proof")


# --- the held room ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Send:
    """Deliver `data` (a relay → client message) to `member`."""

    member: int
    data: bytes


@dataclass(frozen=True)
class Close:
    """Close `member`'s connection with a relay close code (it has left the room already)."""

    member: int
    code: int
    reason: str


Out = Send | Close


class LocalRoom:
    """A relay room without a mailbox, held by one member for the others.

    `join(member)` → welcome and caught-up for it, a peers count for the rest; `receive(member,
    data)` takes one client → relay message: publish and ephemeral frames are forwarded to every
    other member (as live frames), a publish is acknowledged to its sender with cursor 0 (the
    frame reached the room; nothing is stored), a ping is answered. Anything else (an unknown
    kind, an empty or text-less message, a message over `max_frame_bytes`) closes that member
    with the relay's close code and never disturbs the others. Member ids are the caller's.
    """

    def __init__(self, *, max_members: int = DEFAULT_MAX_MEMBERS,
                 max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        if type(max_members) is not int or max_members < 1:
            raise ValidationError("max_members must be an int >= 1")
        if type(max_frame_bytes) is not int or max_frame_bytes < 2:
            raise ValidationError("max_frame_bytes must be an int >= 2")
        self.max_members = max_members
        self.max_frame_bytes = max_frame_bytes
        self._members: dict[int, None] = {}   # insertion-ordered: fan-out order is join order

    def __len__(self) -> int:
        return len(self._members)

    def __contains__(self, member: object) -> bool:
        return member in self._members

    def join(self, member: int) -> list[Out]:
        if member in self._members:
            raise ValidationError(f"member {member} has joined already")
        if len(self._members) >= self.max_members:
            return [Close(member, P.CLOSE_TRY_AGAIN, "the room is full")]
        self._members[member] = None
        welcome = P.Welcome(P.PROTOCOL_VERSION, LINK_EPOCH, 0, 1, self.max_frame_bytes, len(self._members))
        out: list[Out] = [Send(member, P.encode_welcome(welcome)),
                          Send(member, P.encode_caught_up(P.CaughtUp(0)))]
        return out + self._peers_count(skip=member)

    def leave(self, member: int) -> list[Out]:
        """The member is gone (closed by either side); idempotent."""
        if member not in self._members:
            return []
        del self._members[member]
        return self._peers_count()

    def receive(self, member: int, data: object) -> list[Out]:
        if member not in self._members:
            return []
        if not isinstance(data, (bytes, bytearray)) or not data:
            return self._close(member, P.CLOSE_UNSUPPORTED, "messages are non-empty binary")
        if len(data) > self.max_frame_bytes:
            return self._close(member, P.CLOSE_TOO_BIG, f"message larger than {self.max_frame_bytes} bytes")
        kind, body = data[0], bytes(data[1:])
        if kind in (P.C_PUBLISH, P.C_EPHEMERAL) and body:
            fwd = P.encode_ephemeral_out(body)
            out: list[Out] = [Send(m, fwd) for m in self._members if m != member]
            if kind == P.C_PUBLISH:
                out.append(Send(member, P.encode_ack(0)))
            return out
        if kind == P.C_PING and 1 <= len(body) <= P.MAX_PING_TOKEN:
            return [Send(member, P.encode_pong(body))]
        return self._close(member, P.CLOSE_UNSUPPORTED, f"unexpected message kind 0x{kind:02x}")

    def _close(self, member: int, code: int, reason: str) -> list[Out]:
        return [Close(member, code, reason), *self.leave(member)]

    def _peers_count(self, skip: int | None = None) -> list[Out]:
        data = P.encode_peers(P.Peers(len(self._members)))
        return [Send(m, data) for m in self._members if m != skip]
