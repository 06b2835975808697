"""Actor ids and the signature algorithms they name. PURE (integer arithmetic only).

An actor id is the public key that signs an actor's seals; its bytes say which algorithm:

- **Ed25519** (RFC 8032): the bare 32-byte public key. Every store written before P-256
  existed uses this form, so its blocks, CIDs and seals keep their bytes.
- **ECDSA P-256 with SHA-256** (FIPS 186-5, SEC 1; "ES256" in RFC 7518): 35 bytes, the
  multicodec varint of ``p256-pub`` (0x1200 → ``80 24``) followed by the SEC 1 compressed
  point (``02``/``03`` ‖ 32-byte big-endian x). The prefix is the one did:key uses, so the id
  reads the same outside Ostracon, and a length can never be mistaken for the other form.

Signatures are 64 bytes for both: Ed25519's R ‖ S, and ECDSA's r ‖ s as two 32-byte
big-endian integers (IEEE P1363, what WebCrypto produces).

ECDSA signatures are malleable: if (r, s) verifies, so does (r, n − s), and anybody can
compute it without the key. Ostracon accepts only *low-S* signatures (s ≤ n/2, as Bitcoin's
BIP 62/146 do) and signers normalise; with 1 ≤ r, s < n and a fixed-width encoding, nobody
but the key holder can make a second valid signature of a seal. ECDSA is also randomised, so
the key holder signing the same seal twice gets different bytes: a seal's identity is its
signed content (`block.Seal.content`), never its signature — see core/slots.py.
"""

from __future__ import annotations

from typing import Any

from .errors import ValidationError

ED25519 = "ed25519"
P256 = "p256"
#: Algorithm names a caller may choose for an identity (the CLI's `--algorithm`).
ALGORITHMS = (ED25519, P256)

ED25519_ACTOR_LEN = 32
#: multicodec `p256-pub` (0x1200) as an unsigned varint.
P256_PREFIX = b"\x80\x24"
P256_POINT_LEN = 33
P256_ACTOR_LEN = len(P256_PREFIX) + P256_POINT_LEN
#: Both algorithms sign with 64 bytes (Ed25519 R ‖ S; ECDSA r ‖ s).
SIG_LEN = 64
#: Longest actor id: bounds what a receiver reads for one.
MAX_ACTOR_LEN = P256_ACTOR_LEN

# NIST P-256 (FIPS 186-5 / SEC 2 secp256r1): y² = x³ − 3x + b over F_p, group order n.
P256_P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
P256_B = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B
P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_HALF_N = P256_N // 2
_SQRT_EXP = (P256_P + 1) // 4  # p ≡ 3 (mod 4): a square root is v^((p+1)/4)

#: Points already found on the curve (x ↦ y), so the hot decode path does one dict lookup per
#: block instead of a modular exponentiation. Only a cache: results never depend on it.
POINT_CACHE_SIZE = 4096
_points: dict[bytes, bytes] = {}


def _decompress(point: bytes) -> bytes | None:
    """The 64-byte x ‖ y of a canonical compressed P-256 point, or None."""
    y_raw = _points.get(point)
    if y_raw is not None:
        return point[1:] + y_raw
    if len(point) != P256_POINT_LEN or point[0] not in (2, 3):
        return None
    x = int.from_bytes(point[1:], "big")
    if x >= P256_P:  # x must be reduced: x and x + p would name one point twice
        return None
    rhs = (pow(x, 3, P256_P) - 3 * x + P256_B) % P256_P
    y = pow(rhs, _SQRT_EXP, P256_P)
    if y * y % P256_P != rhs:
        return None  # x³ − 3x + b is not a square: no point has this x
    if y & 1 != point[0] & 1:
        y = P256_P - y
    y_raw = y.to_bytes(32, "big")
    if len(_points) >= POINT_CACHE_SIZE:
        _points.clear()
    _points[point] = y_raw
    return point[1:] + y_raw


def algorithm_of(actor: Any) -> str | None:
    """ED25519, P256, or None when `actor` is not a well-formed actor id (for P-256 that
    includes a point that is not on the curve or whose x is not reduced mod p)."""
    if type(actor) is not bytes:
        return None
    n = len(actor)
    if n == ED25519_ACTOR_LEN:
        return ED25519
    if n == P256_ACTOR_LEN and actor[:2] == P256_PREFIX:
        point = actor[2:]
        if point in _points or _decompress(point) is not None:
            return P256
    return None


def is_actor(value: Any) -> bool:
    return algorithm_of(value) is not None


def check_actor(value: Any, what: str = "actor") -> bytes:
    """`value` if it is an actor id; ValidationError otherwise."""
    if algorithm_of(value) is None:
        raise ValidationError(f"{what} must be a 32-byte Ed25519 key or a 35-byte P-256 id "
                              f"(80 24 ‖ compressed point on the curve)")
    return value


def p256_actor(point: Any) -> bytes:
    """The actor id of a compressed P-256 public key (33 bytes). ValidationError if the
    point is not canonical or not on the curve."""
    if type(point) is not bytes or _decompress(point) is None:
        raise ValidationError("a P-256 public key must be a compressed point on the curve (33 bytes)")
    return P256_PREFIX + point


def p256_point(actor: bytes) -> bytes:
    """The 33-byte compressed point inside a P-256 actor id."""
    if algorithm_of(actor) != P256:
        raise ValidationError("not a P-256 actor id")
    return actor[2:]


def p256_uncompressed(actor: bytes) -> bytes:
    """SEC 1 uncompressed form (04 ‖ x ‖ y, 65 bytes) of a P-256 actor's key: what every
    WebCrypto imports as a raw ECDSA public key."""
    xy = _decompress(p256_point(actor))
    assert xy is not None  # p256_point checked it
    return b"\x04" + xy


def p256_compress(uncompressed: Any) -> bytes:
    """The compressed point (33 bytes) of an uncompressed one (65 bytes, 04 ‖ x ‖ y);
    ValidationError unless it is on the curve."""
    if type(uncompressed) is not bytes or len(uncompressed) != 65 or uncompressed[0] != 4:
        raise ValidationError("an uncompressed P-256 point is 65 bytes starting with 04")
    y = uncompressed[33:]
    point = bytes((2 | (y[-1] & 1),)) + uncompressed[1:33]
    if _decompress(point) != uncompressed[1:]:
        raise ValidationError("the point is not on P-256")
    return point


def p256_signature_ok(sig: Any) -> bool:
    """True iff `sig` is 64 bytes r ‖ s with 1 ≤ r < n and 1 ≤ s ≤ n/2 (low-S)."""
    if type(sig) is not bytes or len(sig) != SIG_LEN:
        return False
    r = int.from_bytes(sig[:32], "big")
    s = int.from_bytes(sig[32:], "big")
    return 1 <= r < P256_N and 1 <= s <= _HALF_N


def p256_low_s(sig: bytes) -> bytes:
    """`sig` (r ‖ s) with s replaced by n − s when s > n/2: the one form Ostracon accepts.
    Signers call it; both forms verify, so this changes nothing but the bytes."""
    if type(sig) is not bytes or len(sig) != SIG_LEN:
        raise ValidationError("an ECDSA P-256 signature is 64 bytes r ‖ s")
    s = int.from_bytes(sig[32:], "big")
    if s > _HALF_N:
        return sig[:32] + (P256_N - s).to_bytes(32, "big")
    return sig


def p256_private_ok(scalar: Any) -> bool:
    """True iff `scalar` is a 32-byte big-endian P-256 private key, 1 ≤ d < n."""
    return type(scalar) is bytes and len(scalar) == 32 and 1 <= int.from_bytes(scalar, "big") < P256_N


def short_actor(actor_hex: str) -> str:
    """A short display form of a hex actor id: 12 hex digits of the key itself (for P-256,
    of x, after the multicodec prefix and parity byte that every P-256 id shares)."""
    if len(actor_hex) == 2 * P256_ACTOR_LEN and actor_hex[:4] == P256_PREFIX.hex():
        return "p256:" + actor_hex[6:18]
    return actor_hex[:12]
