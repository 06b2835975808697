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
from ..core.errors import CryptoError
from .base import (
    ED25519_SEED_SIZE,
    HKDF_MAX_LENGTH,
    P256_PRIVATE_KEY_SIZE,
    PBKDF2_MAX_ITERATIONS,
    PBKDF2_MAX_LENGTH,
    X25519_KEY_SIZE,
    CryptoBackend,
    _as_bytes,
    _exact,
    _gcm_args,
    _gcm_decrypt_args,
    _injected_random,
    _length,
    _p256_private,
    _p256_verify_args_ok,
    _random_count,
    _verify_args_ok,
)

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
        half = P256_PRIVATE_KEY_SIZE  # r and s are each one scalar wide
        return p256_low_s(r.to_bytes(half, "big") + s.to_bytes(half, "big"))

    def p256_verify(self, public_key: bytes, message: bytes, signature: bytes) -> bool:
        # Contract: never raises for bad input, only answers; high-S is refused (core/actors.py).
        if not _p256_verify_args_ok(public_key, message, signature):
            return False
        pk, sig = bytes(public_key), bytes(signature)
        try:
            key = self._public.get_or_make(
                (P256, pk), lambda: ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), pk))
            half = P256_PRIVATE_KEY_SIZE
            der = encode_dss_signature(int.from_bytes(sig[:half], "big"), int.from_bytes(sig[half:], "big"))
            key.verify(der, bytes(message), ec.ECDSA(hashes.SHA256()))
        except (InvalidSignature, ValueError):
            return False
        return True

    # --- AES-256-GCM --------------------------------------------------------------------

    def _gcm(self, key_b: bytes) -> AESGCM:
        return self._aead.get_or_make(key_b, lambda: AESGCM(key_b))

    def aes_gcm_encrypt(self, key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
        key_b, nonce_b, pt, aad_b = _gcm_args(key, nonce, plaintext, "plaintext", aad)
        return self._gcm(key_b).encrypt(nonce_b, pt, aad_b)

    def aes_gcm_decrypt(self, key: bytes, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
        key_b, nonce_b, ct, aad_b = _gcm_decrypt_args(key, nonce, ciphertext, aad)
        try:
            return self._gcm(key_b).decrypt(nonce_b, ct, aad_b)
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

        priv = X25519PrivateKey.from_private_bytes(_exact(private_key, X25519_KEY_SIZE, "X25519 private key"))
        return priv.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    def x25519(self, private_key: bytes, peer_public_key: bytes) -> bytes:
        from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

        priv = X25519PrivateKey.from_private_bytes(_exact(private_key, X25519_KEY_SIZE, "X25519 private key"))
        peer = X25519PublicKey.from_public_bytes(_exact(peer_public_key, X25519_KEY_SIZE, "X25519 public key"))
        try:
            return priv.exchange(peer)
        except ValueError:  # low-order point: the shared secret would be all zeros
            raise CryptoError("X25519 with a low-order public key") from None

    # --- randomness ---------------------------------------------------------------------

    def random_bytes(self, n: int) -> bytes:
        return _injected_random(self._random, _random_count(n))
