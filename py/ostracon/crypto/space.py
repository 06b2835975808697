"""Space: the unit of sharing. A 256-bit key; everything else is derived from it.

    key         = PBKDF2-HMAC-SHA256(NFC(passphrase), salt, iterations, 32)   (from_passphrase)
                | 32 random bytes                                              (generate)
    salt        = SHA-256("ostracon/space/v1\\0" || UTF-8(NFC(name)))
    room id     = HKDF-SHA256(key, salt="", info="ostracon/room/v1",   16)  -> the relay sees this
    frame key   = HKDF-SHA256(key, salt="", info="ostracon/frame/v1",  32)  -> AES-256-GCM frames
    commit key  = HKDF-SHA256(key, salt="", info="ostracon/commit/v1", 32)  -> frame key commitment

Passphrase and name are NFC-normalised so the same words typed on two keyboards (composed vs
decomposed accents) give the same key. Iterations default to 600,000 (OWASP 2023 for
PBKDF2-HMAC-SHA256) and may not go below MIN_PASSPHRASE_ITERATIONS; tests pass
`_insecure_for_tests=True` to use fewer (the flag's name says what it is; it is not public API).

Invites: `space.invite(relay_url)` gives one line of text:

    "ost1" + base32(payload), lower case, no padding
    payload = version u8 (1) || key (32) || u8 len || name UTF-8 || u16 len || relay URL UTF-8
              || checksum (4) = SHA-256("ostracon/invite/v1\\0" || everything before)[:4]

base32 survives copy/paste, line wrapping, case changes and QR alphanumeric mode; the checksum
catches typos and truncation. An invite contains the key: whoever has it can read the space.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct
import unicodedata
from dataclasses import dataclass
from typing import Literal, NoReturn, overload

from ..core.errors import ValidationError
from ..core.protocol.frames import ROOM_ID_SIZE, FrameKeys
from .base import CryptoBackend

KEY_SIZE = 32
SPACE_SALT_LABEL = b"ostracon/space/v1\x00"
ROOM_INFO = b"ostracon/room/v1"
FRAME_INFO = b"ostracon/frame/v1"
COMMIT_INFO = b"ostracon/commit/v1"
KDF_ALGORITHM = "pbkdf2-hmac-sha256"

# OWASP's 2023 recommendation for PBKDF2-HMAC-SHA256, and the floor the project promises.
DEFAULT_PASSPHRASE_ITERATIONS = 600_000
MIN_PASSPHRASE_ITERATIONS = 600_000
# WebCrypto takes an unsigned long; beyond this neither runtime could derive the key.
MAX_PASSPHRASE_ITERATIONS = 2**31 - 1
# A passphrase longer than this is a paste accident (PBKDF2 pre-hashes long passwords anyway).
MAX_PASSPHRASE_BYTES = 1024
# Names are labels shown to people and carried in invites (length byte).
MAX_NAME_BYTES = 255
# Relay URLs travel in invites (u16 length); 2 KiB is far beyond any real ws:// URL.
MAX_RELAY_URL_BYTES = 2048

INVITE_PREFIX = "ost1"
INVITE_VERSION = 1
INVITE_CHECKSUM_LABEL = b"ostracon/invite/v1\x00"
INVITE_CHECKSUM_SIZE = 4
# Longest possible v1 invite text, plus slack: a bigger input is not an invite.
MAX_INVITE_CHARS = 4096


def _backend(crypto: CryptoBackend | None) -> CryptoBackend:
    if crypto is not None:
        return crypto
    from . import default_backend

    return default_backend()


@overload
def _check_name(name: object, *, allow_none: Literal[False]) -> str: ...
@overload
def _check_name(name: object, *, allow_none: bool) -> str | None: ...
def _check_name(name: object, *, allow_none: bool) -> str | None:
    if name is None and allow_none:
        return None
    if not isinstance(name, str):
        raise ValidationError(f"a space name must be a str, not {type(name).__name__}")
    name = unicodedata.normalize("NFC", name)
    if not name.strip():
        raise ValidationError("a space name must not be empty (it salts the passphrase derivation)")
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise ValidationError(f"a space name must be at most {MAX_NAME_BYTES} UTF-8 bytes")
    return name


def _check_relay_url(url: object) -> str:
    if not isinstance(url, str):
        raise ValidationError(f"a relay URL must be a str, not {type(url).__name__}")
    low = url.lower()
    if not (low.startswith("ws://") or low.startswith("wss://")) or len(url) <= len("wss://"):
        raise ValidationError(f"a relay URL must start with ws:// or wss://, got {url[:80]!r}")
    if any(c.isspace() or ord(c) < 0x20 for c in url):
        raise ValidationError("a relay URL must not contain whitespace or control characters")
    if len(url.encode("utf-8")) > MAX_RELAY_URL_BYTES:
        raise ValidationError(f"a relay URL must be at most {MAX_RELAY_URL_BYTES} UTF-8 bytes")
    return url


def space_salt(name: str) -> bytes:
    """The PBKDF2 salt for a space name (domain label + NFC name, hashed)."""
    return hashlib.sha256(SPACE_SALT_LABEL + unicodedata.normalize("NFC", name).encode("utf-8")).digest()


@dataclass(frozen=True)
class KdfParams:
    """How a passphrase space key was derived; recorded so it can be shown and re-derived."""

    algorithm: str
    iterations: int
    salt: bytes
    salt_label: bytes = SPACE_SALT_LABEL
    length: int = KEY_SIZE


class Space:
    """A shared space: a 256-bit key, its derived room id and frame keys. Never prints the key."""

    __slots__ = ("_key", "name", "kdf", "relay_url", "_crypto", "_room", "_frame_key", "_commit_key")

    def __init__(
        self,
        key: bytes,
        *,
        name: str | None = None,
        kdf: KdfParams | None = None,
        relay_url: str | None = None,
        crypto: CryptoBackend | None = None,
    ) -> None:
        if isinstance(key, (bytearray, memoryview)):
            key = bytes(key)
        if not isinstance(key, bytes) or len(key) != KEY_SIZE:
            got = len(key) if isinstance(key, bytes) else type(key).__name__
            raise ValidationError(f"a space key must be {KEY_SIZE} bytes, got {got}")
        self._key = key
        self.name = _check_name(name, allow_none=True)
        self.kdf = kdf
        self.relay_url = None if relay_url is None else _check_relay_url(relay_url)
        self._crypto = _backend(crypto)
        hkdf = self._crypto.hkdf_sha256
        self._room = hkdf(key, b"", ROOM_INFO, ROOM_ID_SIZE)
        self._frame_key = hkdf(key, b"", FRAME_INFO, KEY_SIZE)
        self._commit_key = hkdf(key, b"", COMMIT_INFO, KEY_SIZE)

    # --- construction -------------------------------------------------------------------

    @classmethod
    def generate(cls, name: str | None = None, *, crypto: CryptoBackend | None = None) -> Space:
        """A space with a random key (share it with `invite`)."""
        backend = _backend(crypto)
        return cls(backend.random_bytes(KEY_SIZE), name=name, crypto=backend)

    @classmethod
    def from_key(cls, key: bytes, name: str | None = None, *, crypto: CryptoBackend | None = None) -> Space:
        return cls(key, name=name, crypto=crypto)

    @classmethod
    def from_passphrase(
        cls,
        passphrase: str,
        name: str,
        *,
        iterations: int = DEFAULT_PASSPHRASE_ITERATIONS,
        crypto: CryptoBackend | None = None,
        _insecure_for_tests: bool = False,
    ) -> Space:
        """Derive the space key from a passphrase; every device using the same passphrase and
        name (and iterations) gets the same space. Costs ~0.3-0.5 s at the default iterations."""
        if not isinstance(passphrase, str):
            raise ValidationError(f"a passphrase must be a str, not {type(passphrase).__name__}")
        passphrase = unicodedata.normalize("NFC", passphrase)
        if not passphrase.strip():
            raise ValidationError("an empty (or whitespace-only) passphrase is refused")
        pw = passphrase.encode("utf-8")
        if len(pw) > MAX_PASSPHRASE_BYTES:
            raise ValidationError(f"a passphrase must be at most {MAX_PASSPHRASE_BYTES} UTF-8 bytes")
        name = _check_name(name, allow_none=False)
        if isinstance(iterations, bool) or not isinstance(iterations, int):
            raise ValidationError(f"iterations must be an int, not {type(iterations).__name__}")
        floor = 1 if _insecure_for_tests else MIN_PASSPHRASE_ITERATIONS
        if not floor <= iterations <= MAX_PASSPHRASE_ITERATIONS:
            raise ValidationError(
                f"iterations must be between {MIN_PASSPHRASE_ITERATIONS:,} and "
                f"{MAX_PASSPHRASE_ITERATIONS:,}, got {iterations:,}"
            )
        backend = _backend(crypto)
        salt = space_salt(name)
        key = backend.pbkdf2_sha256(pw, salt, iterations, KEY_SIZE)
        return cls(key, name=name, kdf=KdfParams(KDF_ALGORITHM, iterations, salt), crypto=backend)

    # --- derived values -----------------------------------------------------------------

    @property
    def room_id(self) -> str:
        """Hex room id for URLs and the relay (derived one-way from the key)."""
        return self._room.hex()

    @property
    def room_id_bytes(self) -> bytes:
        return self._room

    @property
    def frame_key(self) -> bytes:
        return self._frame_key

    @property
    def commit_key(self) -> bytes:
        return self._commit_key

    def frame_keys(self) -> FrameKeys:
        """What core.protocol.frames needs to seal and open this space's frames."""
        return FrameKeys(self._room, self._frame_key, self._commit_key)

    @property
    def crypto(self) -> CryptoBackend:
        return self._crypto

    def export_key(self) -> bytes:
        """The 32-byte space key. Whoever holds it can read and write the space."""
        return self._key

    # --- invites ------------------------------------------------------------------------

    def invite(self, relay_url: str) -> str:
        """One line of text another device joins with (`Space.from_invite`). Contains the key."""
        url = _check_relay_url(relay_url).encode("utf-8")
        name = (self.name or "").encode("utf-8")
        body = struct.pack(">B", INVITE_VERSION) + self._key
        body += struct.pack(">B", len(name)) + name + struct.pack(">H", len(url)) + url
        body += hashlib.sha256(INVITE_CHECKSUM_LABEL + body).digest()[:INVITE_CHECKSUM_SIZE]
        return INVITE_PREFIX + base64.b32encode(body).decode("ascii").rstrip("=").lower()

    @classmethod
    def from_invite(cls, invite: str, *, crypto: CryptoBackend | None = None) -> Space:
        """Join a space from an invite string. Malformed invites raise ValidationError."""
        key, name, url = parse_invite(invite)
        return cls(key, name=name, relay_url=url, crypto=crypto)

    # --- hygiene ------------------------------------------------------------------------

    def __repr__(self) -> str:
        return f"Space(name={self.name!r}, room_id={self.room_id!r})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Space):
            return NotImplemented
        return hmac.compare_digest(self._key, other._key)

    def __hash__(self) -> int:
        return hash(self._room)

    def __reduce__(self) -> NoReturn:
        raise TypeError("Space objects are not picklable; use export_key()/invite() deliberately")


def parse_invite(invite: str) -> tuple[bytes, str | None, str]:
    """(key, name or None, relay URL) from an invite string, or ValidationError saying why."""
    if not isinstance(invite, str):
        raise ValidationError(f"an invite must be a str, not {type(invite).__name__}")
    if len(invite) > MAX_INVITE_CHARS:
        raise ValidationError(f"not an Ostracon invite: longer than {MAX_INVITE_CHARS} characters")
    text = "".join(invite.split()).lower()  # tolerate line wrapping and upper case (QR codes)
    if not text.startswith(INVITE_PREFIX):
        raise ValidationError(f"not an Ostracon invite: it must start with {INVITE_PREFIX!r}")
    data = text[len(INVITE_PREFIX) :].upper()
    if len(data) % 8 in (1, 3, 6):
        raise ValidationError("invite is truncated or damaged (impossible base32 length)")
    try:
        raw = base64.b32decode(data + "=" * (-len(data) % 8))
    except (binascii.Error, ValueError):
        raise ValidationError("invite is damaged: it contains characters that are not base32") from None
    if len(raw) < 1 + INVITE_CHECKSUM_SIZE:
        raise ValidationError("invite is truncated")
    body, checksum = raw[:-INVITE_CHECKSUM_SIZE], raw[-INVITE_CHECKSUM_SIZE:]
    expected = hashlib.sha256(INVITE_CHECKSUM_LABEL + body).digest()[:INVITE_CHECKSUM_SIZE]
    if not hmac.compare_digest(checksum, expected):
        raise ValidationError("invite checksum does not match: it was mistyped, truncated or altered")
    if body[0] != INVITE_VERSION:
        raise ValidationError(f"invite version {body[0]} is not supported (this build reads version {INVITE_VERSION})")
    pos = 1
    key = body[pos : pos + KEY_SIZE]
    pos += KEY_SIZE
    if len(key) != KEY_SIZE or pos >= len(body):
        raise ValidationError("invite is malformed: key or name length missing")
    name_len = body[pos]
    pos += 1
    name_b = body[pos : pos + name_len]
    pos += name_len
    if len(name_b) != name_len or pos + 2 > len(body):
        raise ValidationError("invite is malformed: name or relay URL length missing")
    (url_len,) = struct.unpack_from(">H", body, pos)
    pos += 2
    url_b = body[pos : pos + url_len]
    pos += url_len
    if len(url_b) != url_len:
        raise ValidationError("invite is malformed: relay URL cut short")
    if pos != len(body):
        raise ValidationError("invite is malformed: unexpected bytes after the relay URL")
    try:
        name = name_b.decode("utf-8")
        url = url_b.decode("utf-8")
    except UnicodeDecodeError:
        raise ValidationError("invite is malformed: name or relay URL is not UTF-8") from None
    if name and _check_name(name, allow_none=False) != name:
        raise ValidationError("invite is malformed: name is not NFC-normalised")
    return key, (name or None), _check_relay_url(url)
