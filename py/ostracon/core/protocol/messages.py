"""Sync wire messages (hello, need, blocks): limits, validation and the canonical msgpack codec. PURE.

Hostile input never passes silently: `decode_message` raises `MalformedMessageError` for anything malformed
or out of limits; `SyncSession` turns that into a `ProtocolViolation` event.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from ..actors import check_actor
from ..block import MAX_SEQ
from ..encoding import decode, encode
from ..errors import (
    CorruptBlockError,
    MalformedMessageError,  # noqa: F401  (re-exported)
    ValidationError,
)

PROTOCOL_VERSION = 1
PEER_ID_SIZE = 16
DIGEST_SIZE = 32
MAX_REQUEST_ID = 2**32 - 1

#: Entries of a version vector (or ranges of a need) in one message: an entry is ~45 bytes, so
#: 8192 of them (~370 KB) still fit in one message. A room with more actors than this is far
#: beyond what the protocol targets (tens to hundreds of devices); such vectors are refused.
MAX_VECTOR_ENTRIES = 8192
#: Envelopes in one blocks message; the byte budget normally binds first (blocks are >100 B).
MAX_ENVELOPES_PER_MESSAGE = 65_536
DIGEST_LABEL = b"ostracon/sync-digest/v1\x00"
def tips_digest(replica: Any, vector: dict[bytes, int]) -> bytes:
    """sha256 over (actor, seq, CID of that block) for each vector entry of a core Replica.

    Two replicas with equal vectors but different tips have diverged (an actor equivocated:
    e.g. a device restored from a backup reused sequence numbers). Sync cannot repair that, so
    the session reports it (`Diverged`) instead of claiming to be in sync.
    """
    h = hashlib.sha256(DIGEST_LABEL)
    by_actor = replica.by_actor
    for actor in sorted(vector):
        seq = vector[actor]
        h.update(actor + seq.to_bytes(8, "big") + by_actor[actor][seq - 1])
    return h.digest()


# --- validation helpers ----------------------------------------------------------------------

def checked_bytes(value: Any, sizes: tuple[int, ...], what: str) -> bytes:
    if type(value) is not bytes or len(value) not in sizes:
        raise ValidationError(f"{what} must be {' or '.join(map(str, sizes))} bytes")
    return value


def checked_actor(value: Any, what: str = "actor", *, empty_ok: bool = False) -> bytes:
    """An actor id (core/actors.py: Ed25519 key or P-256 id); b"" too when `empty_ok`."""
    if empty_ok and value == b"" and type(value) is bytes:
        return value
    return check_actor(value, what)


def checked_seq(value: Any, what: str, minimum: int = 1) -> int:
    if type(value) is not int or not minimum <= value <= MAX_SEQ:
        raise ValidationError(f"{what} must be an int in [{minimum}, 2**63)")
    return value


def _vector(value: Any) -> tuple[tuple[bytes, int], ...]:
    """Wire form of a version vector: [actor, seq] pairs, sorted by actor, no duplicates."""
    if isinstance(value, dict):
        value = sorted(value.items())
    if type(value) not in (list, tuple):
        raise ValidationError("a version vector must be a list of [actor, seq] pairs")
    if len(value) > MAX_VECTOR_ENTRIES:
        raise ValidationError(f"a version vector may have at most {MAX_VECTOR_ENTRIES} entries")
    out = []
    prev = None
    for entry in value:
        if type(entry) not in (list, tuple) or len(entry) != 2:
            raise ValidationError("a version vector entry must be [actor, seq]")
        actor = checked_actor(entry[0])
        seq = checked_seq(entry[1], "seq")
        if prev is not None and actor <= prev:
            raise ValidationError("version vector entries must be sorted by actor, without duplicates")
        prev = actor
        out.append((actor, seq))
    return tuple(out)


def _ranges(value: Any) -> tuple[tuple[bytes, int, int], ...]:
    if type(value) not in (list, tuple) or not value:
        raise ValidationError("a need must ask for at least one range")
    if len(value) > MAX_VECTOR_ENTRIES:
        raise ValidationError(f"a need may have at most {MAX_VECTOR_ENTRIES} ranges")
    out = []
    prev = None
    for entry in value:
        if type(entry) not in (list, tuple) or len(entry) != 3:
            raise ValidationError("a range must be [actor, from_seq, to_seq]")
        actor = checked_actor(entry[0])
        first = checked_seq(entry[1], "from_seq")
        last = checked_seq(entry[2], "to_seq")
        if last < first:
            raise ValidationError("a range must have from_seq <= to_seq")
        if prev is not None and actor <= prev:
            raise ValidationError("ranges must be sorted by actor, one per actor")
        prev = actor
        out.append((actor, first, last))
    return tuple(out)


def _request_id(value: Any) -> int:
    if type(value) is not int or not 1 <= value <= MAX_REQUEST_ID:
        raise ValidationError("a request id must be an int in [1, 2**32)")
    return value


# --- messages ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Hello:
    """I am `peer` (writing as `actor`), I hold `version_vector`; `reply_to` names the peer whose
    hello this answers (empty: a fresh or periodic hello, which peers may answer)."""

    peer: bytes
    version_vector: tuple[tuple[bytes, int], ...]
    heads_digest: bytes = b""
    actor: bytes = b""
    reply_to: bytes = b""

    def __post_init__(self) -> None:
        checked_bytes(self.peer, (PEER_ID_SIZE,), "peer id")
        object.__setattr__(self, "version_vector", _vector(self.version_vector))
        checked_bytes(self.heads_digest, (0, DIGEST_SIZE), "heads digest")
        checked_actor(self.actor, empty_ok=True)
        checked_bytes(self.reply_to, (0, PEER_ID_SIZE), "reply_to")

    def to_wire(self) -> dict:
        return {"t": "hello", "v": PROTOCOL_VERSION, "p": self.peer, "a": self.actor,
                "vv": [list(e) for e in self.version_vector], "d": self.heads_digest, "r": self.reply_to}


@dataclass(frozen=True)
class Need:
    """Please send blocks `from_seq..to_seq` (at least) of each actor in `ranges`.

    `to` is the peer asked (empty: anyone who has them). `request` ties the answer to the
    question; `attempt` > 1 marks a retry after a gap (always served in full)."""

    peer: bytes
    ranges: tuple[tuple[bytes, int, int], ...]
    request: int
    to: bytes = b""
    attempt: int = 1

    def __post_init__(self) -> None:
        checked_bytes(self.peer, (PEER_ID_SIZE,), "peer id")
        checked_bytes(self.to, (0, PEER_ID_SIZE), "need target")
        object.__setattr__(self, "ranges", _ranges(self.ranges))
        _request_id(self.request)
        if type(self.attempt) is not int or not 1 <= self.attempt <= 255:
            raise ValidationError("attempt must be an int in [1, 255]")

    def to_wire(self) -> dict:
        return {"t": "need", "v": PROTOCOL_VERSION, "p": self.peer, "to": self.to, "q": self.request,
                "n": self.attempt, "r": [list(r) for r in self.ranges]}


@dataclass(frozen=True)
class Blocks:
    """Envelopes (blocks, each range followed by its seals), in causal order.

    `answers`: the (peer, request) needs this serves (empty: a push of new local blocks);
    `last`: the final part of those answers. `version_vector`: the sender's servable seq for
    the actors carried, so a receiver that lacks earlier blocks notices the gap at once."""

    peer: bytes
    envelopes: tuple[bytes, ...]
    version_vector: tuple[tuple[bytes, int], ...] = ()
    answers: tuple[tuple[bytes, int], ...] = ()
    last: bool = True

    def __post_init__(self) -> None:
        checked_bytes(self.peer, (PEER_ID_SIZE,), "peer id")
        if type(self.envelopes) not in (list, tuple) or len(self.envelopes) > MAX_ENVELOPES_PER_MESSAGE:
            raise ValidationError(f"envelopes must be a list of at most {MAX_ENVELOPES_PER_MESSAGE}")
        for env in self.envelopes:
            if type(env) is not bytes or not env:
                raise ValidationError("an envelope must be non-empty bytes")
        object.__setattr__(self, "envelopes", tuple(self.envelopes))
        object.__setattr__(self, "version_vector", _vector(self.version_vector))
        if type(self.answers) not in (list, tuple) or len(self.answers) > MAX_VECTOR_ENTRIES:
            raise ValidationError("answers must be a list of [peer, request] pairs")
        ans = []
        for a in self.answers:
            if type(a) not in (list, tuple) or len(a) != 2:
                raise ValidationError("an answer must be [peer, request]")
            ans.append((checked_bytes(a[0], (PEER_ID_SIZE,), "peer id"), _request_id(a[1])))
        object.__setattr__(self, "answers", tuple(ans))
        if type(self.last) is not bool:
            raise ValidationError("last must be a bool")

    def to_wire(self) -> dict:
        return {"t": "blocks", "v": PROTOCOL_VERSION, "p": self.peer,
                "re": [list(a) for a in self.answers], "last": self.last,
                "vv": [list(e) for e in self.version_vector], "e": list(self.envelopes)}


Message = Hello | Need | Blocks


def encode_message(msg: Message) -> bytes:
    """Canonical bytes of a message."""
    return encode(msg.to_wire())


def _get(m: dict, key: str, default: Any = None, required: bool = True) -> Any:
    if key in m:
        return m[key]
    if required:
        raise ValidationError(f"missing field {key!r}")
    return default


def decode_message(data: bytes) -> Message:
    """Decode one message; anything malformed raises MalformedMessageError (never another type).

    Unknown map keys are ignored (a newer peer may add fields); an unknown message type or
    protocol version is refused.
    """
    if type(data) is not bytes:
        if isinstance(data, (bytearray, memoryview)):
            data = bytes(data)
        else:
            raise MalformedMessageError(f"a message must be bytes, not {type(data).__name__}")
    try:
        m = decode(data)
    except CorruptBlockError as exc:
        raise MalformedMessageError(f"not a canonical msgpack message: {exc}") from None
    if type(m) is not dict:
        raise MalformedMessageError("a message must be a map")
    t, v = m.get("t"), m.get("v")
    if v != PROTOCOL_VERSION or type(v) is not int:
        raise MalformedMessageError(
            f"unsupported sync protocol version {v!r:.20} (this build speaks {PROTOCOL_VERSION})")
    try:
        if t == "hello":
            return Hello(_get(m, "p"), _get(m, "vv"), _get(m, "d", b"", False), _get(m, "a", b"", False),
                         _get(m, "r", b"", False))
        if t == "need":
            return Need(_get(m, "p"), _get(m, "r"), _get(m, "q"), _get(m, "to", b"", False),
                        _get(m, "n", 1, False))
        if t == "blocks":
            return Blocks(_get(m, "p"), _get(m, "e"), _get(m, "vv", (), False), _get(m, "re", (), False),
                          _get(m, "last", True, False))
    except ValidationError as exc:
        raise MalformedMessageError(f"{t} message: {exc}") from None
    raise MalformedMessageError(f"unknown message type {t!r:.40}")
