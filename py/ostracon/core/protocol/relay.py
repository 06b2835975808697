"""Relay wire protocol (docs/RELAY.md): message kinds, close codes, encoders and decoders.

Pure: no I/O, no websockets import, so the native sync transport, the browser transport
(Pyodide) and the relay server all share this one definition.

Every WebSocket message is binary and starts with a 1-byte kind. Data messages have a
fixed layout (kind ‖ u64 cursor ‖ payload) so fan-out never re-encodes the opaque
payload; control messages are kind ‖ msgpack map (tiny, typed, extensible: decoders
ignore unknown keys).
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from typing import Any

import msgpack

from ..errors import ProtocolError, ValidationError

PROTOCOL_VERSION = 1
#: URL path prefix of the WebSocket endpoint: ``/v1/room/<room_id_hex>``.
ROOM_PATH_PREFIX = f"/v{PROTOCOL_VERSION}/room/"

#: Room ids are lower-case hex of 16..64 bytes (clients derive 32 bytes with HKDF; the
#: range leaves room for other derivations without letting ids grow without bound).
ROOM_ID_MIN_HEX = 32
ROOM_ID_MAX_HEX = 128
_ROOM_RE = re.compile(rf"[0-9a-f]{{{ROOM_ID_MIN_HEX},{ROOM_ID_MAX_HEX}}}")
#: Epochs are the relay's random per-room mailbox generation, lower-case hex.
_EPOCH_RE = re.compile(r"[0-9a-f]{1,32}")
#: Cursors are per-room, start at 1, increase by 1 per stored frame; 0 means "nothing".
MAX_CURSOR = 2**63 - 1

# --- client → relay kinds ----------------------------------------------------------------
C_PUBLISH = 0x01  # kind ‖ payload: store in the room's mailbox and forward to the others
C_EPHEMERAL = 0x02  # kind ‖ payload: forward to the others only (not stored, no cursor)
C_AUTH = 0x10  # kind ‖ msgpack {"sig","relay"}: answer to S_CHALLENGE (room admission, docs/RELAY.md)
C_PING = 0x03  # kind ‖ token (1..MAX_PING_TOKEN bytes): the relay answers S_PONG with the token

# --- relay → client kinds ----------------------------------------------------------------
S_FRAME = 0x01  # kind ‖ u64be cursor ‖ payload   (a stored frame, live or replayed)
S_EPHEMERAL = 0x02  # kind ‖ payload               (a live-only frame)
S_ACK = 0x03  # kind ‖ u64be cursor                (your C_PUBLISH was stored as <cursor>)
S_WELCOME = 0x10  # kind ‖ msgpack {"v","epoch","head","oldest","max_frame_bytes","members"}
S_CAUGHT_UP = 0x11  # kind ‖ msgpack {"cursor"}
S_GAP = 0x12  # kind ‖ msgpack {"reason","since","oldest","head"}
S_PEERS = 0x13  # kind ‖ msgpack {"count"}
S_CHALLENGE = 0x14  # kind ‖ msgpack {"v","nonce"}: first message; sign it to be admitted
S_PONG = 0x15  # kind ‖ token                     (the answer to your C_PING)
#: Longest heartbeat token: enough to tell pings apart, too short to carry data.
MAX_PING_TOKEN = 8

GAP_REASONS = ("pruned", "epoch", "ahead")

# --- close codes ---------------------------------------------------------------------------
CLOSE_GOING_AWAY = 1001  # relay shutting down: reconnect with backoff
CLOSE_UNSUPPORTED = 1003  # text message, unknown kind or empty frame: a client bug
CLOSE_POLICY = 1008  # the address's storage budget is spent: slow down, reconnect with backoff
CLOSE_TOO_BIG = 1009  # message larger than max_frame_bytes: split your frames
CLOSE_INTERNAL = 1011  # mailbox failure on the relay
CLOSE_TRY_AGAIN = 1013  # max connections / rooms / room members reached: retry later
CLOSE_SLOW_CONSUMER = 4001  # your send queue overflowed: reconnect and resume from your cursor
CLOSE_IDLE = 4002  # nothing received for idle_timeout_s: reconnect when you have work
CLOSE_NOT_ADMITTED = 4003  # the room admission failed: you do not hold this room's key

# --- room admission (docs/RELAY.md "Admission") -------------------------------------------
#: A room id that can be admitted to is an Ed25519 public key (32 bytes = 64 hex digits).
ROOM_KEY_HEX = 64
#: Fresh random bytes the relay asks a connection to sign; 32 bytes never repeat in practice.
CHALLENGE_NONCE_SIZE = 32
AUTH_SIGNATURE_SIZE = 64
#: Domain label of the signed admission message (never valid as a seal or any other signature).
#: v2 binds the answer to the relay's name; v1 answers (no name) are refused.
AUTH_LABEL = b"ostracon/room-auth/v2\x00"
#: Longest relay name (a DNS name is at most 253 characters, plus ``:port``); the name is
#: length-prefixed by one byte in the signed message.
MAX_RELAY_NAME = 255
_RELAY_NAME_RE = re.compile(r"[a-z0-9._~!$&'()*+,;=%-]+(:[0-9]{1,5})?|\[[0-9a-f:.]+\](:[0-9]{1,5})?")
_DEFAULT_PORTS = {"ws": "80", "wss": "443"}

_U64 = struct.Struct(">Q")


def valid_room_id(room: str) -> bool:
    return isinstance(room, str) and _ROOM_RE.fullmatch(room) is not None


def valid_epoch(epoch: str) -> bool:
    return isinstance(epoch, str) and _EPOCH_RE.fullmatch(epoch) is not None


def valid_relay_name(name: object) -> bool:
    """True iff ``name`` is a relay name as ``relay_name`` makes it: the lower-case ASCII
    ``host[:port]`` of an HTTP ``Host`` header (RFC 9110 §7.2), at most MAX_RELAY_NAME chars."""
    return (isinstance(name, str) and 0 < len(name) <= MAX_RELAY_NAME
            and _RELAY_NAME_RE.fullmatch(name) is not None)


def relay_name(url: str) -> str:
    """The name of the relay a ``ws://`` / ``wss://`` URL points at, as the client's ``Host``
    header carries it: the authority without user info, lower-cased, the scheme's default
    port (80, 443) left out. This is what a client signs at admission, so an answer given to
    one relay is worthless at another (docs/RELAY.md "Admission"). Parsed by hand (no stdlib
    URL parser) so both runtimes get the same bytes. Hosts must be ASCII (punycode for IDNs);
    ValidationError otherwise."""
    if not isinstance(url, str) or "://" not in url:
        raise ValidationError("relay URL must start with ws:// or wss://")
    scheme, rest = url.split("://", 1)
    scheme = scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise ValidationError("relay URL must start with ws:// or wss://")
    end = len(rest)
    for stop in "/?#":
        i = rest.find(stop)
        if 0 <= i < end:
            end = i
    authority = rest[:end].rpartition("@")[2].lower()
    host, port = authority, ""
    colon = authority.rfind(":")
    if colon > authority.rfind("]"):
        host, port = authority[:colon], authority[colon + 1:]
        if port and not (port.isascii() and port.isdigit()):
            raise ValidationError("relay URL has a bad port")
        port = str(int(port)) if port else ""
    name = host if port in ("", _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    if not valid_relay_name(name):
        raise ValidationError("relay URL must name an ASCII host (punycode for international names)")
    return name


def auth_message(room: bytes, nonce: bytes, relay: str) -> bytes:
    """The bytes a client signs with the room's key to answer a challenge:
    ``"ostracon/room-auth/v2\\0" ‖ room public key (32) ‖ nonce (32) ‖ u8 len ‖ relay name``
    where the relay name is ``relay_name(url)`` of the URL the client connected to."""
    if not isinstance(room, bytes) or len(room) != ROOM_KEY_HEX // 2:
        raise ValidationError("room key must be 32 bytes")
    if not isinstance(nonce, bytes) or len(nonce) != CHALLENGE_NONCE_SIZE:
        raise ValidationError(f"challenge nonce must be {CHALLENGE_NONCE_SIZE} bytes")
    if not valid_relay_name(relay):
        raise ValidationError("relay name must be a lower-case ASCII host[:port]")
    name = relay.encode("ascii")
    return AUTH_LABEL + room + nonce + bytes([len(name)]) + name


def room_path(room: str, since: int | None = None, epoch: str | None = None) -> str:
    """The request path (with query) a client connects to."""
    if not valid_room_id(room):
        raise ValidationError(f"room id must be {ROOM_ID_MIN_HEX}..{ROOM_ID_MAX_HEX} lower-case hex digits")
    query = []
    if since is not None:
        _check_cursor(since, "since")
        query.append(f"since={since}")
    if epoch is not None:
        if not valid_epoch(epoch):
            raise ValidationError("epoch must be 1..32 lower-case hex digits")
        query.append(f"epoch={epoch}")
    return ROOM_PATH_PREFIX + room + ("?" + "&".join(query) if query else "")


def _check_cursor(value: object, name: str) -> int:
    if type(value) is not int or not 0 <= value <= MAX_CURSOR:
        raise ValidationError(f"{name} must be an int in [0, 2**63)")
    return value


def _check_count(value: object, name: str) -> int:
    if type(value) is not int or not 0 <= value <= MAX_CURSOR:
        raise ValidationError(f"{name} must be a non-negative int")
    return value


# --- decoded messages (frozen, validated on construction) --------------------------------

@dataclass(frozen=True)
class Frame:
    """A stored frame: replayed from the mailbox or forwarded live."""

    cursor: int
    payload: bytes

    def __post_init__(self) -> None:
        _check_cursor(self.cursor, "cursor")
        if self.cursor == 0:
            raise ValidationError("stored frames have cursor >= 1")
        if not isinstance(self.payload, bytes) or not self.payload:
            raise ValidationError("payload must be non-empty bytes")


@dataclass(frozen=True)
class Ephemeral:
    """A live-only frame (never stored, no cursor)."""

    payload: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.payload, bytes) or not self.payload:
            raise ValidationError("payload must be non-empty bytes")


@dataclass(frozen=True)
class Ack:
    """Your own C_PUBLISH was stored with this cursor (it is not echoed back live)."""

    cursor: int

    def __post_init__(self) -> None:
        _check_cursor(self.cursor, "cursor")


@dataclass(frozen=True)
class Welcome:
    """First message on every connection."""

    version: int
    epoch: str
    head: int  # highest cursor stored in the room (0: none yet)
    oldest: int  # lowest cursor still retained (head + 1 when the mailbox is empty)
    max_frame_bytes: int  # largest binary message the relay accepts (kind byte included)
    members: int  # connections in the room, including yours

    def __post_init__(self) -> None:
        _check_count(self.version, "version")
        if not valid_epoch(self.epoch):
            raise ValidationError("epoch must be 1..32 lower-case hex digits")
        _check_cursor(self.head, "head")
        _check_count(self.oldest, "oldest")
        if self.oldest > self.head + 1:
            raise ValidationError("oldest must be <= head + 1")
        _check_count(self.max_frame_bytes, "max_frame_bytes")
        _check_count(self.members, "members")


@dataclass(frozen=True)
class CaughtUp:
    """Mailbox replay is done; everything up to ``cursor`` was sent. Live frames follow."""

    cursor: int

    def __post_init__(self) -> None:
        _check_cursor(self.cursor, "cursor")


@dataclass(frozen=True)
class Gap:
    """Frames you asked for are gone (pruned, relay reset, or a cursor from the future).

    Replay continues from ``oldest``; do a full sync with your peers for the rest.
    """

    reason: str
    since: int
    oldest: int
    head: int

    def __post_init__(self) -> None:
        if self.reason not in GAP_REASONS:
            raise ValidationError(f"gap reason must be one of {GAP_REASONS}")
        _check_cursor(self.since, "since")
        _check_count(self.oldest, "oldest")
        _check_cursor(self.head, "head")


@dataclass(frozen=True)
class Peers:
    """Number of connections currently in the room, including yours."""

    count: int

    def __post_init__(self) -> None:
        _check_count(self.count, "count")


@dataclass(frozen=True)
class Challenge:
    """First message on every connection: sign ``auth_message(room, nonce, relay_name(url))``
    with the room key and answer with ``encode_auth`` to be admitted (then ``welcome`` follows)."""

    version: int
    nonce: bytes

    def __post_init__(self) -> None:
        _check_count(self.version, "version")
        if not isinstance(self.nonce, bytes) or len(self.nonce) != CHALLENGE_NONCE_SIZE:
            raise ValidationError(f"challenge nonce must be {CHALLENGE_NONCE_SIZE} bytes")


@dataclass(frozen=True)
class Pong:
    """The relay's answer to a C_PING (a heartbeat): the connection is alive both ways."""

    token: bytes

    def __post_init__(self) -> None:
        _check_token(self.token)


def _check_token(token: object) -> None:
    if not isinstance(token, bytes) or not 1 <= len(token) <= MAX_PING_TOKEN:
        raise ValidationError(f"a ping token is 1..{MAX_PING_TOKEN} bytes")


@dataclass(frozen=True)
class Unknown:
    """A kind this client does not know (a newer relay): ignore it."""

    kind: int
    body: bytes


ServerMessage = Frame | Ephemeral | Ack | Welcome | CaughtUp | Gap | Peers | Challenge | Pong | Unknown


# --- encoders --------------------------------------------------------------------------------

def encode_publish(payload: bytes) -> bytes:
    """Client → relay: store and forward."""
    if not isinstance(payload, (bytes, bytearray, memoryview)) or len(payload) == 0:
        raise ValidationError("payload must be non-empty bytes")
    return bytes([C_PUBLISH]) + bytes(payload)


def encode_ephemeral(payload: bytes) -> bytes:
    """Client → relay: forward only."""
    if not isinstance(payload, (bytes, bytearray, memoryview)) or len(payload) == 0:
        raise ValidationError("payload must be non-empty bytes")
    return bytes([C_EPHEMERAL]) + bytes(payload)


@dataclass(frozen=True)
class Auth:
    """A client's answer to the challenge: the signature and the relay name it signed."""

    sig: bytes
    relay: str


def encode_auth(signature: bytes, relay: str) -> bytes:
    """Client → relay: the answer to a challenge (64-byte Ed25519 signature over
    ``auth_message(room, nonce, relay)``) and the relay name it signed."""
    if not isinstance(signature, bytes) or len(signature) != AUTH_SIGNATURE_SIZE:
        raise ValidationError(f"signature must be {AUTH_SIGNATURE_SIZE} bytes")
    if not valid_relay_name(relay):
        raise ValidationError("relay name must be a lower-case ASCII host[:port]")
    return _control(C_AUTH, {"sig": signature, "relay": relay})


def decode_auth(data: bytes) -> Auth:
    """The answer in a client's C_AUTH message; ProtocolError if it is anything else
    (including a v1 answer without a relay name)."""
    data = bytes(data)
    if not data or data[0] != C_AUTH:
        raise ProtocolError("expected an auth message")
    body = _decode_map(data[1:], C_AUTH)
    sig = _field(body, "sig", C_AUTH)
    if not isinstance(sig, bytes) or len(sig) != AUTH_SIGNATURE_SIZE:
        raise ProtocolError(f"auth signature must be {AUTH_SIGNATURE_SIZE} bytes")
    relay = _field(body, "relay", C_AUTH)
    if not valid_relay_name(relay):
        raise ProtocolError("auth relay name must be a lower-case ASCII host[:port]")
    return Auth(sig, relay)


def encode_challenge(m: Challenge) -> bytes:
    return _control(S_CHALLENGE, {"v": m.version, "nonce": m.nonce})


def encode_ping(token: bytes) -> bytes:
    """Client → relay: a heartbeat; the relay answers `encode_pong(token)` to this member."""
    token = bytes(token) if isinstance(token, (bytearray, memoryview)) else token
    _check_token(token)
    return bytes([C_PING]) + token


def encode_pong(token: bytes) -> bytes:
    return bytes([S_PONG]) + token


def encode_frame(cursor: int, payload: bytes) -> bytes:
    return bytes([S_FRAME]) + _U64.pack(cursor) + payload


def encode_ephemeral_out(payload: bytes) -> bytes:
    return bytes([S_EPHEMERAL]) + payload


def encode_ack(cursor: int) -> bytes:
    return bytes([S_ACK]) + _U64.pack(cursor)


def _control(kind: int, body: dict) -> bytes:
    return bytes([kind]) + msgpack.packb(body, use_bin_type=True)


def encode_welcome(m: Welcome) -> bytes:
    return _control(S_WELCOME, {"v": m.version, "epoch": m.epoch, "head": m.head, "oldest": m.oldest,
                                "max_frame_bytes": m.max_frame_bytes, "members": m.members})


def encode_caught_up(m: CaughtUp) -> bytes:
    return _control(S_CAUGHT_UP, {"cursor": m.cursor})


def encode_gap(m: Gap) -> bytes:
    return _control(S_GAP, {"reason": m.reason, "since": m.since, "oldest": m.oldest, "head": m.head})


def encode_peers(m: Peers) -> bytes:
    return _control(S_PEERS, {"count": m.count})


def encode_server_message(m: ServerMessage) -> bytes:
    """Encode any relay → client message (used by tests and simulators)."""
    if isinstance(m, Frame):
        return encode_frame(m.cursor, m.payload)
    if isinstance(m, Ephemeral):
        return encode_ephemeral_out(m.payload)
    if isinstance(m, Ack):
        return encode_ack(m.cursor)
    if isinstance(m, Welcome):
        return encode_welcome(m)
    if isinstance(m, CaughtUp):
        return encode_caught_up(m)
    if isinstance(m, Gap):
        return encode_gap(m)
    if isinstance(m, Peers):
        return encode_peers(m)
    if isinstance(m, Challenge):
        return encode_challenge(m)
    if isinstance(m, Pong):
        return encode_pong(m.token)
    if isinstance(m, Unknown):
        return bytes([m.kind]) + m.body
    raise ValidationError(f"not a relay message: {type(m).__name__}")


# --- decoders --------------------------------------------------------------------------------

def _decode_map(body: bytes, kind: int) -> dict:
    try:
        obj = msgpack.unpackb(body, raw=False, strict_map_key=True, use_list=True)
    except Exception as exc:  # msgpack raises several unrelated types: normalize them
        raise ProtocolError(f"relay message 0x{kind:02x}: body is not msgpack") from exc
    if not isinstance(obj, dict):
        raise ProtocolError(f"relay message 0x{kind:02x}: body is not a map")
    return obj


def _field(obj: dict, key: str, kind: int) -> Any:
    # Unchecked: the message classes validate every field they are built with.
    if key not in obj:
        raise ProtocolError(f"relay message 0x{kind:02x}: missing {key!r}")
    return obj[key]


def decode_server_message(data: bytes | bytearray | memoryview) -> ServerMessage:
    """Decode one relay → client WebSocket message. Raises ProtocolError when malformed."""
    if isinstance(data, str) or not isinstance(data, (bytes, bytearray, memoryview)):
        raise ProtocolError("relay messages are binary")
    data = bytes(data)
    if not data:
        raise ProtocolError("empty relay message")
    kind, body = data[0], data[1:]
    try:
        if kind == S_FRAME:
            if len(body) < 9:
                raise ProtocolError("frame message too short")
            return Frame(_U64.unpack_from(body)[0], body[8:])
        if kind == S_EPHEMERAL:
            return Ephemeral(body)
        if kind == S_ACK:
            if len(body) != 8:
                raise ProtocolError("ack message must be 9 bytes")
            return Ack(_U64.unpack(body)[0])
        if kind == S_WELCOME:
            o = _decode_map(body, kind)
            return Welcome(_field(o, "v", kind), _field(o, "epoch", kind), _field(o, "head", kind),
                           _field(o, "oldest", kind), _field(o, "max_frame_bytes", kind),
                           _field(o, "members", kind))
        if kind == S_CAUGHT_UP:
            return CaughtUp(_field(_decode_map(body, kind), "cursor", kind))
        if kind == S_GAP:
            o = _decode_map(body, kind)
            return Gap(_field(o, "reason", kind), _field(o, "since", kind), _field(o, "oldest", kind),
                       _field(o, "head", kind))
        if kind == S_PEERS:
            return Peers(_field(_decode_map(body, kind), "count", kind))
        if kind == S_PONG:
            return Pong(body)
        if kind == S_CHALLENGE:
            o = _decode_map(body, kind)
            return Challenge(_field(o, "v", kind), _field(o, "nonce", kind))
    except ValidationError as exc:
        raise ProtocolError(f"relay message 0x{kind:02x}: {exc}") from exc
    return Unknown(kind, body)
