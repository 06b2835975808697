"""The native crypto backend: `cryptography` (OpenSSL) for Ed25519, ECDSA P-256 and AES-GCM,
hashlib for PBKDF2.

Behaviour every backend shares (pinned by tests/crypto_contract.py, which the browser's
WebCrypto backend runs too):
- Ed25519 seeds and public keys are 32 bytes, signatures 64; a wrong-length seed is a
  ValidationError (a caller bug); `ed25519_verify` never raises, it answers False.
- ECDSA P-256: 32-byte private scalars (1..n-1), 33-byte compressed public points, 64-byte
  r ‖ s signatures over SHA-256, normalised to low-S when signing and refused when high-S on
  verify (core/actors.py explains why). Randomised: compare by verification, not bytes.
- AES-GCM is AES-256 only (32-byte keys) with 96-bit nonces and a 16-byte tag appended to the
  ciphertext; anything else is a ValidationError. A tag that does not verify is a CryptoError.
- HKDF/PBKDF2 lengths and iteration counts are validated (ValidationError).
- `random_bytes` is os.urandom unless a source is injected (`NativeCrypto(random_bytes=...)`,
  e.g. `ostracon.crypto.DeterministicRandom(seed)` in tests).

Key objects are cached per backend instance (bounded) because building an Ed25519 private key
from its seed costs a scalar multiplication, and the same few keys are used over and over.
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..core.actors import P256, p256_low_s
from ..core.errors import CryptoError, ValidationError
from .base import (  # noqa: F401 (shared checks)
    CryptoBackend,
    _as_bytes,
    _exact,
    _length,
    _p256_private,
    _p256_verify_args_ok,
    _verify_args_ok,
)

# Sizes fixed by the algorithms (not tunable limits).
ED25519_SEED_SIZE = 32
ED25519_PUBLIC_KEY_SIZE = 32
ED25519_SIGNATURE_SIZE = 64
AES_KEY_SIZE = 32          # AES-256 only: one key size keeps both backends and the docs simple
GCM_NONCE_SIZE = 12        # 96-bit nonces: the only size GCM handles without an extra GHASH
GCM_TAG_SIZE = 16
HKDF_MAX_LENGTH = 255 * 32  # RFC 5869: L <= 255 * HashLen

# Limits.
# WebCrypto takes the iteration count as an unsigned long; refuse what it could not run.
PBKDF2_MAX_ITERATIONS = 2**31 - 1
# One derivation never needs more than a few keys' worth of output.
PBKDF2_MAX_LENGTH = 1024
# Cached key objects per backend instance: a process signs with one or two identities and
# verifies seals of at most a few hundred actors at a time; beyond that the cost is a rebuild.
KEY_CACHE_SIZE = 256




class _BoundedCache(OrderedDict):
    """A tiny LRU: the key objects are cheap to rebuild, so eviction only costs time."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self._size = size

    def get_or_make(self, key: Any, make: Callable[[], Any]) -> Any:
        try:
            value = self[key]
        except KeyError:
            value = make()
            self[key] = value
            if len(self) > self._size:
                self.popitem(last=False)
            return value
        self.move_to_end(key)
        return value


class NativeCrypto(CryptoBackend):
    """CryptoBackend on `cryptography`. Thread-compatible: share one instance per thread or lock."""

    name = "native"

    def __init__(self, random_bytes: Callable[[int], bytes] | None = None) -> None:
        # Randomness is the only non-deterministic call; tests inject a seeded source here.
        self._random = random_bytes if random_bytes is not None else os.urandom
        self._private = _BoundedCache(KEY_CACHE_SIZE)
        self._public = _BoundedCache(KEY_CACHE_SIZE)
        self._aead = _BoundedCache(KEY_CACHE_SIZE)

    def __repr__(self) -> str:
        # Never show cached keys.
        return f"NativeCrypto(random={'os.urandom' if self._random is os.urandom else 'injected'})"

    # --- Ed25519 ----------------------------------------------------------------------

    def _private_key(self, seed: object) -> Ed25519PrivateKey:
        seed_b = _exact(seed, ED25519_SEED_SIZE, "Ed25519 seed")
        return self._private.get_or_make(seed_b, lambda: Ed25519PrivateKey.from_private_bytes(seed_b))

    def ed25519_public_key(self, seed: bytes) -> bytes:
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        return self._private_key(seed).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    def ed25519_sign(self, seed: bytes, message: bytes) -> bytes:
        return self._private_key(seed).sign(_as_bytes(message, "message"))

    def ed25519_verify(self, public_key: bytes, message: bytes, signature: bytes) -> bool:
        # Contract: never raises for bad input, only answers.
        if not _verify_args_ok(public_key, message, signature):
            return False
        pk = bytes(public_key)
        try:
            key = self._public.get_or_make(pk, lambda: Ed25519PublicKey.from_public_bytes(pk))
            key.verify(bytes(signature), bytes(message))
        except (InvalidSignature, ValueError):
            return False
        return True

    # --- ECDSA P-256 / SHA-256 -----------------------------------------------------------

    def _p256_key(self, private_key: object) -> ec.EllipticCurvePrivateKey:
        d = _p256_private(private_key)
        return self._private.get_or_make(
            (P256, d), lambda: ec.derive_private_key(int.from_bytes(d, "big"), ec.SECP256R1()))

    def p256_public_key(self, private_key: bytes) -> bytes:
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        return self._p256_key(private_key).public_key().public_bytes(Encoding.X962, PublicFormat.CompressedPoint)

    def p256_sign(self, private_key: bytes, message: bytes) -> bytes:
        der = self._p256_key(private_key).sign(_as_bytes(message, "message"), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        return p256_low_s(r.to_bytes(32, "big") + s.to_bytes(32, "big"))

    def p256_verify(self, public_key: bytes, message: bytes, signature: bytes) -> bool:
        # Contract: never raises for bad input, only answers; high-S is refused (core/actors.py).
        if not _p256_verify_args_ok(public_key, message, signature):
            return False
        pk, sig = bytes(public_key), bytes(signature)
        try:
            key = self._public.get_or_make(
                (P256, pk), lambda: ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), pk))
            der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
            key.verify(der, bytes(message), ec.ECDSA(hashes.SHA256()))
        except (InvalidSignature, ValueError):
            return False
        return True

    # --- AES-256-GCM --------------------------------------------------------------------

    def _gcm(self, key: object) -> AESGCM:
        key_b = _exact(key, AES_KEY_SIZE, "AES-256-GCM key")
        return self._aead.get_or_make(key_b, lambda: AESGCM(key_b))

    def aes_gcm_encrypt(self, key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
        gcm = self._gcm(key)
        nonce_b = _exact(nonce, GCM_NONCE_SIZE, "AES-GCM nonce")
        return gcm.encrypt(nonce_b, _as_bytes(plaintext, "plaintext"), _as_bytes(aad, "associated data"))

    def aes_gcm_decrypt(self, key: bytes, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
        gcm = self._gcm(key)
        nonce_b = _exact(nonce, GCM_NONCE_SIZE, "AES-GCM nonce")
        ct = _as_bytes(ciphertext, "ciphertext")
        aad_b = _as_bytes(aad, "associated data")
        if len(ct) < GCM_TAG_SIZE:
            raise CryptoError("AES-GCM ciphertext is shorter than its 16-byte tag")
        try:
            return gcm.decrypt(nonce_b, ct, aad_b)
        except InvalidTag:
            raise CryptoError("AES-GCM tag does not verify (wrong key, or tampered data)") from None

    # --- KDFs ---------------------------------------------------------------------------

    def hkdf_sha256(self, ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
        n = _length(length, "HKDF length", HKDF_MAX_LENGTH)
        salt_b = _as_bytes(salt, "HKDF salt")
        # RFC 5869: an absent salt is HashLen zero bytes; cryptography takes None for that.
        kdf = HKDF(algorithm=hashes.SHA256(), length=n, salt=salt_b or None, info=_as_bytes(info, "HKDF info"))
        return kdf.derive(_as_bytes(ikm, "HKDF input key"))

    def pbkdf2_sha256(self, password: bytes, salt: bytes, iterations: int, length: int) -> bytes:
        it = _length(iterations, "PBKDF2 iterations", PBKDF2_MAX_ITERATIONS)
        n = _length(length, "PBKDF2 length", PBKDF2_MAX_LENGTH)
        return hashlib.pbkdf2_hmac("sha256", _as_bytes(password, "password"), _as_bytes(salt, "salt"), it, n)

    # --- X25519 ---------------------------------------------------------------------------

    def x25519_public_key(self, private_key: bytes) -> bytes:
        from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        priv = X25519PrivateKey.from_private_bytes(_exact(private_key, 32, "X25519 private key"))
        return priv.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    def x25519(self, private_key: bytes, peer_public_key: bytes) -> bytes:
        from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

        priv = X25519PrivateKey.from_private_bytes(_exact(private_key, 32, "X25519 private key"))
        peer = X25519PublicKey.from_public_bytes(_exact(peer_public_key, 32, "X25519 public key"))
        try:
            return priv.exchange(peer)
        except ValueError:  # low-order point: the shared secret would be all zeros
            raise CryptoError("X25519 with a low-order public key") from None

    # --- randomness ---------------------------------------------------------------------

    def random_bytes(self, n: int) -> bytes:
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValidationError(f"random_bytes needs a non-negative int, got {n!r}")
        out = self._random(n)
        if not isinstance(out, bytes) or len(out) != n:
            raise CryptoError("the injected random source returned the wrong number of bytes")
        return out
