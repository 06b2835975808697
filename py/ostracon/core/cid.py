"""Content identifiers: CIDv1, codec messagepack (0x0201), multihash sha2-256, base32 text.

Binary form (37 bytes): varint(1) varint(0x0201) varint(0x12) varint(32) digest
= 01 81 04 12 20 ‖ sha256(block bytes). Text form: multibase 'b' + RFC 4648 base32,
lower case, no padding. Internally CIDs are the raw bytes; the public API shows text.
"""

from __future__ import annotations

import base64
import hashlib

from .errors import CorruptBlockError, ValidationError

CID_PREFIX = b"\x01\x81\x04\x12\x20"
CID_LEN = len(CID_PREFIX) + 32
# 'b' + ceil(37 * 8 / 5) = 61. (Was hard-coded as 1 + 58 for a 36-byte CID, but the
# codec varint 0x0201 is two bytes, so CIDs are 37 bytes and parse_cid refused them all.)
CID_TEXT_LEN = 1 + (CID_LEN * 8 + 4) // 5


def compute(block_bytes: bytes) -> bytes:
    """The binary CID of a block's bytes."""
    return CID_PREFIX + hashlib.sha256(block_bytes).digest()


def compute_many(blocks: list[bytes]) -> list[bytes]:
    """The binary CIDs of many blocks' bytes (`compute` for each, without a Python call per
    block: opening a snapshot recomputes every block's CID)."""
    digests = map(_digest, map(hashlib.sha256, blocks))
    return list(map(CID_PREFIX.__add__, digests))


#: The unbound `digest` method of sha256 objects (OpenSSL's natively, HACL*'s in Pyodide).
_digest = type(hashlib.sha256()).digest


def verify(cid: bytes, block_bytes: bytes) -> None:
    """Raise CorruptBlockError unless `cid` is the CID of `block_bytes`."""
    if compute(block_bytes) != cid:
        raise CorruptBlockError(f"block bytes do not match CID {format_cid(cid)}")


def is_cid(value: object) -> bool:
    return type(value) is bytes and len(value) == CID_LEN and value.startswith(CID_PREFIX)


def format_cid(cid: bytes) -> str:
    """Binary CID → 'b…' text."""
    if not is_cid(cid):
        raise ValidationError("not a binary CIDv1 (messagepack, sha2-256)")
    return "b" + base64.b32encode(cid).decode("ascii").rstrip("=").lower()


def parse_cid(text: str | bytes) -> bytes:
    """'b…' text → binary CID; ValidationError for anything else."""
    if type(text) is bytes and is_cid(text):
        return text
    if type(text) is not str or len(text) != CID_TEXT_LEN or text[0] != "b":
        raise ValidationError(f"not a CID: {text!r:.80}")
    body = text[1:]
    if body != body.lower():
        raise ValidationError(f"CID must be lower-case base32: {text!r}")
    try:
        raw = base64.b32decode(body.upper() + "=" * (-len(body) % 8))
    except Exception:
        raise ValidationError(f"not a CID (bad base32): {text!r}") from None
    if not is_cid(raw) or format_cid(raw) != text:
        raise ValidationError(f"not a messagepack/sha2-256 CIDv1: {text!r}")
    return raw
