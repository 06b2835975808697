"""Invite strings (docs/CRYPTO.md "Invites"): the text one device gives another to join a
space, and the checks on the names and relay URLs they carry.

    "ost2" + base32(version 2 ‖ role ‖ space id ‖ current key ‖ invite seed ‖ invite entry id
                    ‖ u8 len ‖ name ‖ u16 len ‖ relay URL ‖ checksum), lower case, no padding
    checksum = SHA-256("ostracon/invite/v1\\0" ‖ everything before)[:4]

Version 1 ("ost1": version ‖ key ‖ name ‖ URL ‖ checksum) is still read. base32 survives
copy/paste, line wrapping, case changes and QR alphanumeric mode; the checksum catches typos
and truncation.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct
from dataclasses import dataclass, field
from typing import Literal, overload

from ..core.errors import ValidationError

KEY_SIZE = 32
SPACE_ID_SIZE = 16
# Names are labels shown to people and carried in invites (length byte).
MAX_NAME_BYTES = 255
# Relay URLs travel in invites (u16 length); 2 KiB is far beyond any real ws:// URL.
MAX_RELAY_URL_BYTES = 2048

INVITE_PREFIX_V1 = "ost1"
INVITE_PREFIX = "ost2"
INVITE_VERSION = 2
INVITE_ROLE_CODES = {"admin": 1, "writer": 2, "reader": 3}
INVITE_CHECKSUM_LABEL = b"ostracon/invite/v1\x00"
INVITE_CHECKSUM_SIZE = 4
# Longest possible invite text, plus slack: a bigger input is not an invite.
MAX_INVITE_CHARS = 4096



@overload
def _check_name(name: object, *, allow_none: Literal[False]) -> str: ...
@overload
def _check_name(name: object, *, allow_none: bool) -> str | None: ...
def _check_name(name: object, *, allow_none: bool) -> str | None:
    if name is None and allow_none:
        return None
    if not isinstance(name, str):
        raise ValidationError(f"a space name must be a str, not {type(name).__name__}")
    # Names are labels, kept exactly as given (no Unicode normalisation: its result depends on
    # the runtime's Unicode database, docs/CRYPTO.md "Text policy").
    if not name.strip():
        raise ValidationError("a space name must not be empty")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        raise ValidationError("a space name must not contain control characters")
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        raise ValidationError("a space name must be valid Unicode (no lone surrogates)") from None
    if size > MAX_NAME_BYTES:
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


@dataclass(frozen=True)
class ParsedInvite:
    key: bytes = field(repr=False)
    space_id: bytes
    name: str | None
    relay_url: str
    role: str | None = None
    invite_seed: bytes | None = field(default=None, repr=False)
    entry_id: bytes | None = None


def parse_invite(invite: str) -> ParsedInvite:
    """The fields of an invite string (v2 "ost2…", or v1 "ost1…" of earlier versions), or
    ValidationError saying why it is not one."""
    if not isinstance(invite, str):
        raise ValidationError(f"an invite must be a str, not {type(invite).__name__}")
    if len(invite) > MAX_INVITE_CHARS:
        raise ValidationError(f"not an Ostracon invite: longer than {MAX_INVITE_CHARS} characters")
    text = "".join(invite.split()).lower()  # tolerate line wrapping and upper case (QR codes)
    if not text.startswith((INVITE_PREFIX, INVITE_PREFIX_V1)):
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
    version = body[0]
    if version not in (1, INVITE_VERSION) or (version == 1) != text.startswith(INVITE_PREFIX_V1):
        raise ValidationError(f"invite version {body[0]} is not supported "
                              f"(this build reads versions 1 and {INVITE_VERSION})")
    if version == 1:
        pos, sid, seed, entry_id, role = 1, b"", None, None, None
    else:
        if len(body) < 2 + SPACE_ID_SIZE + KEY_SIZE + 64:
            raise ValidationError("invite is malformed: too short")
        codes = {v: k for k, v in INVITE_ROLE_CODES.items()}
        code = body[1]
        if code and code not in codes:
            raise ValidationError("invite is malformed: unknown role")
        pos = 2
        sid = body[pos : pos + SPACE_ID_SIZE]
        pos += SPACE_ID_SIZE
        if sid == bytes(SPACE_ID_SIZE):
            sid = b""
        key_at = pos
        pos += KEY_SIZE
        seed, entry_id = body[pos : pos + 32], body[pos + 32 : pos + 64]
        role = codes.get(code)
        if not code:
            seed, entry_id = None, None
        body = body[:1] + body[key_at : key_at + KEY_SIZE] + body[pos + 64 :]
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
        raise ValidationError("invite is malformed: name is not valid")
    return ParsedInvite(key, sid, name or None, _check_relay_url(url), role, seed, entry_id)
