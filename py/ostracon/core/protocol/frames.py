"""Encrypted sync frames: layout, sealing, opening and replay protection. PURE.

No crypto library is imported here: AES-GCM comes from an injected object with
`aes_gcm_encrypt(key, nonce, plaintext, aad)` / `aes_gcm_decrypt(...)` (any CryptoBackend),
randomness (nonces, sender ids) is passed in. hmac/hashlib compute the key commitment.

Frame layout (version 1; integers big-endian; docs/CRYPTO.md has the rationale):

    offset size  field
    0      1     version byte 0xA1 (high nibble 0xA marks an Ostracon frame, low nibble = version 1)
    1      16    room id (HKDF of the space key; the relay routes on it)
    17     16    sender id (random per connection; not the actor)
    33     8     frame counter (u64, per sender, strictly increasing)
    41     4     ciphertext length n (u32, includes the 16-byte GCM tag)
    45     12    nonce (random 96 bits)
    57     16    key commitment = HMAC-SHA256(commit_key, "ostracon/frame-commitment/v1")[:16]
    73     n     AES-256-GCM(frame_key, nonce, body, aad) = ciphertext || tag

    aad  = "ostracon/frame/v1\\0" || bytes 0..72 (the whole header)
    body = encoding byte (0 = raw, 1 = zlib) || payload

The key commitment is checked before decryption, so a frame sealed under another space key
fails with WrongKeyError instead of as a generic tag failure. It does not depend on the frame,
so a bit flip in the header surfaces as "tampered" (GCM fails), not as "wrong key"; only a
damaged commitment field itself is counted as wrong_key.

Compression (optional, off by default) happens before encryption; the compressed bytes are
never hashed or compared (zlib output differs between runtimes).
"""

from __future__ import annotations

import hashlib
import hmac
import struct
import zlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from ..errors import (  # noqa: F401  (re-exported)
    CryptoError,
    ForeignRoomError,
    FrameError,
    MalformedFrameError,
    OversizeFrameError,
    ReplayedFrameError,
    TamperedFrameError,
    TruncatedFrameError,
    ValidationError,
    WrongKeyError,
)

FRAME_MAGIC = 0xA0
FRAME_VERSION = 1
FRAME_VERSION_BYTE = FRAME_MAGIC | FRAME_VERSION

ROOM_ID_SIZE = 16
SENDER_ID_SIZE = 16
NONCE_SIZE = 12
COMMITMENT_SIZE = 16
GCM_TAG_SIZE = 16
KEY_SIZE = 32
COUNTER_MAX = 2**64 - 1

_HEADER = struct.Struct(">B16s16sQI12s16s")
HEADER_SIZE = _HEADER.size  # 73
# Where a reader that has not decrypted a frame finds its routing fields (the layout above):
# the sender id (to skip our own frames) and the key commitment (to pick the epoch's keys).
SENDER_FIELD = slice(1 + 16, 1 + 16 + SENDER_ID_SIZE)
COMMITMENT_FIELD = slice(HEADER_SIZE - COMMITMENT_SIZE, HEADER_SIZE)
# Smallest possible frame: header + encoding byte + GCM tag.
MIN_FRAME_SIZE = HEADER_SIZE + 1 + GCM_TAG_SIZE
# Bytes a frame adds to its payload (uncompressed): header, encoding byte, GCM tag.
FRAME_OVERHEAD = MIN_FRAME_SIZE

AAD_LABEL = b"ostracon/frame/v1\x00"
COMMITMENT_LABEL = b"ostracon/frame-commitment/v1"

ENCODING_RAW = 0
ENCODING_ZLIB = 1
# Padded forms: encoding ‖ u32 payload length ‖ payload ‖ zero bytes up to the size bucket.
ENCODING_RAW_PADDED = 2
ENCODING_ZLIB_PADDED = 3
_PAD_LEN = struct.Struct(">I")
#: Frame size buckets (whole frame, header included): a padded frame is exactly the smallest
#: bucket that holds it, so the relay learns a size class, not a length. Powers of two from
#: 512 B (a hello or a short note) to 512 KiB (the largest default frame): at most 2x
#: overhead, ~1.3x on average for mixed traffic, and 11 classes in all.
PAD_BUCKETS = tuple(512 << i for i in range(11))
# Fixed so a given runtime always produces the same bytes; 6 is zlib's own default trade-off.
ZLIB_LEVEL = 6

# Limits (every one is a parameter of the functions below; these are the defaults).
# 512 KiB per frame: big enough that a frame carries hundreds of batched changes (one
# encryption per frame, not per op), small enough that a relay holds many in memory and a
# frame is never a multi-second stall on a slow link. The relay uses the same default.
DEFAULT_MAX_FRAME_SIZE = 512 * 1024
# Bound on a payload after decompression (zip-bomb guard): 8x the frame size covers the
# 2-4x ratios of msgpack change batches with room to spare.
DEFAULT_MAX_PAYLOAD_SIZE = 8 * DEFAULT_MAX_FRAME_SIZE
# Replay window per sender, in frames: frames may arrive out of order (live + mailbox), but
# never more than this far behind the newest; an older one is dropped as replayed (the sync
# protocol asks again for anything it still misses).
DEFAULT_REPLAY_WINDOW = 1024
# Senders whose replay state is kept. State is created only for frames that authenticated,
# so only key holders can grow it; least recently seen senders are forgotten first.
DEFAULT_MAX_SENDERS = 4096


class Aead(Protocol):
    def aes_gcm_encrypt(self, key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes: ...

    def aes_gcm_decrypt(self, key: bytes, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes: ...


# --- errors (each has the `reason` it is counted under) -----------------------------------


DROP_REASONS = ("tampered", "truncated", "replayed", "foreign_room", "wrong_key", "oversize", "malformed")


def _reason(exc: Exception) -> str:
    if isinstance(exc, WrongKeyError):
        return "wrong_key"
    return getattr(exc, "reason", "malformed")


# --- keys -------------------------------------------------------------------------------

def _check_bytes(value: object, size: int, what: str) -> bytes:
    if isinstance(value, (bytearray, memoryview)):
        value = bytes(value)
    if not isinstance(value, bytes) or len(value) != size:
        got = len(value) if isinstance(value, bytes) else type(value).__name__
        raise ValidationError(f"{what} must be {size} bytes, got {got}")
    return value


@dataclass(frozen=True)
class FrameKeys:
    """What the frame layer needs from a space: its room id and the two derived keys."""

    room: bytes
    frame_key: bytes = field(repr=False)
    commit_key: bytes = field(repr=False)
    commitment: bytes = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "room", _check_bytes(self.room, ROOM_ID_SIZE, "room id"))
        object.__setattr__(self, "frame_key", _check_bytes(self.frame_key, KEY_SIZE, "frame key"))
        object.__setattr__(self, "commit_key", _check_bytes(self.commit_key, KEY_SIZE, "commit key"))
        if hmac.compare_digest(self.frame_key, self.commit_key):
            raise ValidationError("frame key and commit key must differ (derive them with distinct labels)")
        tag = hmac.new(self.commit_key, COMMITMENT_LABEL, hashlib.sha256).digest()[:COMMITMENT_SIZE]
        object.__setattr__(self, "commitment", tag)


@dataclass(frozen=True)
class FrameHeader:
    """The cleartext part of a frame: everything the relay can see besides the size."""

    room: bytes
    sender: bytes
    counter: int
    length: int
    nonce: bytes
    commitment: bytes


@dataclass(frozen=True)
class OpenedFrame:
    sender: bytes
    counter: int
    payload: bytes


# --- seal / open --------------------------------------------------------------------------

def seal_frame(
    keys: FrameKeys,
    aead: Aead,
    *,
    sender: bytes,
    counter: int,
    nonce: bytes,
    payload: bytes,
    compress: bool = False,
    pad: bool = False,
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
    max_payload_size: int = DEFAULT_MAX_PAYLOAD_SIZE,
) -> bytes:
    """Encrypt one payload (a batch) into one frame. The caller supplies a fresh random nonce.

    Raises OversizeFrameError if the frame (or the payload) would exceed its limit: split the
    batch. With `compress=True` the payload is zlib-compressed first when that makes it smaller.
    With `pad=True` the frame is padded (inside the ciphertext) to the smallest of
    PAD_BUCKETS that holds it, or to `max_frame_size` beyond the largest bucket.
    """
    sender = _check_bytes(sender, SENDER_ID_SIZE, "sender id")
    nonce = _check_bytes(nonce, NONCE_SIZE, "nonce")
    if isinstance(counter, bool) or not isinstance(counter, int) or not 0 <= counter <= COUNTER_MAX:
        raise ValidationError(f"frame counter must be an int in [0, 2**64), got {counter!r}")
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        raise ValidationError(f"payload must be bytes, not {type(payload).__name__}")
    if len(payload) > max_payload_size:
        raise OversizeFrameError(f"payload of {len(payload)} bytes exceeds max_payload_size={max_payload_size}")
    encoding, body = ENCODING_RAW, payload
    if compress:
        packed = zlib.compress(payload, ZLIB_LEVEL)
        if len(packed) < len(payload):
            encoding, body = ENCODING_ZLIB, packed
    ct_len = 1 + len(body) + GCM_TAG_SIZE
    if pad and HEADER_SIZE + ct_len + _PAD_LEN.size <= max_frame_size:
        natural = HEADER_SIZE + ct_len + _PAD_LEN.size
        target = next((b for b in PAD_BUCKETS if b >= natural), max_frame_size)
        target = min(max(target, natural), max_frame_size)
        filler = bytes(target - natural)
        body = _PAD_LEN.pack(len(body)) + bytes(body) + filler
        encoding += ENCODING_RAW_PADDED
        ct_len = 1 + len(body) + GCM_TAG_SIZE
    if HEADER_SIZE + ct_len > max_frame_size:
        raise OversizeFrameError(
            f"frame of {HEADER_SIZE + ct_len} bytes exceeds max_frame_size={max_frame_size}; send smaller batches"
        )
    header = _HEADER.pack(FRAME_VERSION_BYTE, keys.room, sender, counter, ct_len, nonce, keys.commitment)
    sealed = aead.aes_gcm_encrypt(keys.frame_key, nonce, bytes([encoding]) + bytes(body), AAD_LABEL + header)
    if len(sealed) != ct_len:  # a backend that breaks the contract must not produce a bad frame
        raise CryptoError("AEAD backend returned a ciphertext of unexpected length")
    return header + sealed


def parse_header(frame: bytes, *, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> FrameHeader:
    """Check the framing (size, version, length) without any key. What a relay could parse."""
    if not isinstance(frame, (bytes, bytearray, memoryview)):
        raise MalformedFrameError(f"a frame must be bytes, not {type(frame).__name__}")
    size = len(frame)
    if size > max_frame_size:
        raise OversizeFrameError(f"frame of {size} bytes exceeds max_frame_size={max_frame_size}")
    if size < 1:
        raise TruncatedFrameError("empty frame")
    if frame[0] != FRAME_VERSION_BYTE:
        if frame[0] & 0xF0 == FRAME_MAGIC:
            raise MalformedFrameError(
                f"unsupported frame version {frame[0] & 0x0F} (this build speaks {FRAME_VERSION})")
        raise MalformedFrameError("not an Ostracon frame (bad magic)")
    if size < MIN_FRAME_SIZE:
        raise TruncatedFrameError(f"frame of {size} bytes is shorter than the minimum {MIN_FRAME_SIZE}")
    _, room, sender, counter, length, nonce, commitment = _HEADER.unpack_from(frame, 0)
    actual = size - HEADER_SIZE
    if actual < length:
        raise TruncatedFrameError(f"frame declares {length} ciphertext bytes but carries {actual}")
    if actual > length:
        raise MalformedFrameError(f"frame carries {actual - length} bytes after its declared ciphertext")
    return FrameHeader(room, sender, counter, length, nonce, commitment)


def _check_room_and_key(keys: FrameKeys, header: FrameHeader) -> None:
    if not hmac.compare_digest(header.room, keys.room):
        raise ForeignRoomError("frame is for another room")
    if not hmac.compare_digest(header.commitment, keys.commitment):
        raise WrongKeyError("frame was sealed with a different space key (key commitment mismatch)")


def _decrypt(
    keys: FrameKeys, aead: Aead, frame: bytes, header: FrameHeader, max_payload_size: int
) -> OpenedFrame:
    frame = bytes(frame)
    try:
        body = aead.aes_gcm_decrypt(
            keys.frame_key, header.nonce, frame[HEADER_SIZE:], AAD_LABEL + frame[:HEADER_SIZE]
        )
    except WrongKeyError:
        raise
    except CryptoError:
        raise TamperedFrameError("frame does not authenticate (tampered or forged)") from None
    if not body:
        raise MalformedFrameError("frame body has no encoding byte")
    encoding = body[0]
    if encoding in (ENCODING_RAW_PADDED, ENCODING_ZLIB_PADDED):
        if len(body) < 1 + _PAD_LEN.size:
            raise MalformedFrameError("padded frame body has no length")
        (n,) = _PAD_LEN.unpack_from(body, 1)
        if 1 + _PAD_LEN.size + n > len(body):
            raise MalformedFrameError("padded frame body is shorter than its stated length")
        body = bytes([encoding - ENCODING_RAW_PADDED]) + body[1 + _PAD_LEN.size : 1 + _PAD_LEN.size + n]
        encoding = body[0]
    if encoding == ENCODING_RAW:
        payload = body[1:]
        if len(payload) > max_payload_size:
            raise OversizeFrameError(f"payload of {len(payload)} bytes exceeds max_payload_size={max_payload_size}")
    elif encoding == ENCODING_ZLIB:
        payload = _inflate(body[1:], max_payload_size)
    else:
        raise MalformedFrameError(f"unknown payload encoding {encoding}")
    return OpenedFrame(header.sender, header.counter, payload)


def _inflate(data: bytes, limit: int) -> bytes:
    d = zlib.decompressobj()
    try:
        out = d.decompress(data, limit + 1)
    except zlib.error:
        raise MalformedFrameError("compressed payload is corrupt") from None
    if len(out) > limit:
        raise OversizeFrameError(f"payload inflates beyond max_payload_size={limit}")
    if not d.eof or d.unused_data:
        raise MalformedFrameError("compressed payload is truncated or has trailing bytes")
    return out


def open_frame(
    keys: FrameKeys,
    aead: Aead,
    frame: bytes,
    *,
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
    max_payload_size: int = DEFAULT_MAX_PAYLOAD_SIZE,
) -> OpenedFrame:
    """Check and decrypt one frame (no replay check: use FrameReceiver for a stream).

    Raises a FrameError subclass (OversizeFrameError, TruncatedFrameError, MalformedFrameError,
    ForeignRoomError, TamperedFrameError) or WrongKeyError.
    """
    header = parse_header(frame, max_frame_size=max_frame_size)
    _check_room_and_key(keys, header)
    return _decrypt(keys, aead, frame, header, max_payload_size)


# --- streams ------------------------------------------------------------------------------

class FrameSender:
    """Seals a stream of frames: one sender id, counters 0, 1, 2, ..., a fresh random nonce each.

    Random 96-bit nonces under one key stay safe for up to 2**32 frames (NIST SP 800-38D);
    frames are batches, so a space is nowhere near that.
    """

    def __init__(
        self,
        keys: FrameKeys,
        aead: Aead,
        random_bytes: Callable[[int], bytes],
        *,
        sender: bytes | None = None,
        first_counter: int = 0,
        compress: bool = False,
        pad: bool = True,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        max_payload_size: int = DEFAULT_MAX_PAYLOAD_SIZE,
    ) -> None:
        self.keys = keys
        self._aead = aead
        self._random = random_bytes
        self.sender = _check_bytes(sender if sender is not None else random_bytes(SENDER_ID_SIZE), SENDER_ID_SIZE,
                                   "sender id")
        if (isinstance(first_counter, bool) or not isinstance(first_counter, int)
                or not 0 <= first_counter <= COUNTER_MAX):
            raise ValidationError("first_counter must be an int in [0, 2**64)")
        self.next_counter = first_counter
        self.compress = compress
        self.pad = pad
        self.max_frame_size = max_frame_size
        self.max_payload_size = max_payload_size

    @property
    def max_payload_per_frame(self) -> int:
        """Largest uncompressed payload that always fits in one frame."""
        return min(self.max_frame_size - FRAME_OVERHEAD, self.max_payload_size)

    def seal(self, payload: bytes) -> bytes:
        if self.next_counter > COUNTER_MAX:
            raise FrameError("frame counter exhausted; start a new sender")
        frame = seal_frame(
            self.keys,
            self._aead,
            sender=self.sender,
            counter=self.next_counter,
            nonce=self._random(NONCE_SIZE),
            payload=payload,
            compress=self.compress,
            pad=self.pad,
            max_frame_size=self.max_frame_size,
            max_payload_size=self.max_payload_size,
        )
        self.next_counter += 1  # only after success: a refused payload does not burn a counter
        return frame


class _Window:
    """Anti-replay window (as IPsec/DTLS): highest counter seen + a bitmap of the ones below it."""

    __slots__ = ("highest", "bits")

    def __init__(self) -> None:
        self.highest = -1
        self.bits = 0  # bit i set <=> counter (highest - i) was accepted

    def seen(self, counter: int, window: int) -> bool:
        if counter > self.highest:
            return False
        offset = self.highest - counter
        if offset >= window:
            return True  # too old to tell: treat as a replay
        return bool(self.bits >> offset & 1)

    def mark(self, counter: int, window: int) -> None:
        mask = (1 << window) - 1
        if counter > self.highest:
            shift = counter - self.highest
            self.bits = ((self.bits << shift) | 1) & mask if shift < window else 1
            self.highest = counter
        else:
            self.bits |= 1 << (self.highest - counter)


class FrameReceiver:
    """Opens a stream of frames for one room; drops and counts everything that is not a fresh,
    authentic frame of this room.

    `receive(frame)` returns an OpenedFrame or None (dropped; see `stats` and `last_drop`).
    `open(frame)` does the same but raises the typed error after counting it.
    `stats` counts: accepted, tampered, truncated, replayed, foreign_room, wrong_key, oversize,
    malformed.
    """

    def __init__(
        self,
        keys: FrameKeys,
        aead: Aead,
        *,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        max_payload_size: int = DEFAULT_MAX_PAYLOAD_SIZE,
        replay_window: int = DEFAULT_REPLAY_WINDOW,
        max_senders: int = DEFAULT_MAX_SENDERS,
    ) -> None:
        for name, value in (("max_frame_size", max_frame_size), ("max_payload_size", max_payload_size),
                            ("replay_window", replay_window), ("max_senders", max_senders)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValidationError(f"{name} must be a positive int, got {value!r}")
        self.keys = keys
        self._aead = aead
        self.max_frame_size = max_frame_size
        self.max_payload_size = max_payload_size
        self.replay_window = replay_window
        self.max_senders = max_senders
        self._windows: OrderedDict[bytes, _Window] = OrderedDict()
        self._stats = {"accepted": 0, **{r: 0 for r in DROP_REASONS}}
        self.last_drop: str | None = None  # reason of the most recent drop, for status displays

    @property
    def stats(self) -> dict[str, int]:
        return dict(self._stats)

    @property
    def dropped(self) -> int:
        return sum(self._stats[r] for r in DROP_REASONS)

    def open(self, frame: bytes) -> OpenedFrame:
        try:
            header = parse_header(frame, max_frame_size=self.max_frame_size)
            _check_room_and_key(self.keys, header)
            window = self._windows.get(header.sender)
            # Checked before decryption (cheap), but the window only moves after the frame
            # authenticated: forged counters cannot push genuine frames out of the window.
            if window is not None and window.seen(header.counter, self.replay_window):
                raise ReplayedFrameError(f"frame {header.counter} of this sender was already received or is too old")
            opened = _decrypt(self.keys, self._aead, frame, header, self.max_payload_size)
        except (FrameError, WrongKeyError) as e:
            reason = _reason(e)
            self._stats[reason] += 1
            self.last_drop = reason
            raise
        if window is None:
            window = self._windows[header.sender] = _Window()
            if len(self._windows) > self.max_senders:
                self._windows.popitem(last=False)
        else:
            self._windows.move_to_end(header.sender)
        window.mark(header.counter, self.replay_window)
        self._stats["accepted"] += 1
        return opened

    def receive(self, frame: bytes) -> OpenedFrame | None:
        try:
            return self.open(frame)
        except (FrameError, WrongKeyError):
            return None
