"""The crypto backend contract. Native: `cryptography`. Browser: WebCrypto through the JS bridge.

Both backends must produce byte-identical Ed25519 signatures and AES-GCM ciphertext for the
same inputs (tests/test_crypto_contract.py + shared vectors). ECDSA P-256 signatures are
randomised: backends must verify each other's, never produce equal bytes. Randomness is the only
non-deterministic call and is isolated in `random_bytes` so tests can replace it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

from ..core.errors import CryptoError, ValidationError

# ---- sizes fixed by the algorithms (not tunable limits), one home for every backend

# RFC 8032 section 5.1: the private key is a 32-byte seed, the public key a 32-byte encoded
# point, a signature R || S is 64 bytes.
ED25519_SEED_SIZE = 32
ED25519_PUBLIC_KEY_SIZE = 32
ED25519_SIGNATURE_SIZE = 64
# FIPS 186-5 on P-256 (SEC 1 encodings): a scalar is 32 bytes, a compressed point a 1-byte
# prefix and the 32-byte x, a signature r || s 64 bytes (core/actors.py).
P256_PRIVATE_KEY_SIZE = 32
P256_PUBLIC_KEY_SIZE = 33
P256_SIGNATURE_SIZE = 64
# RFC 7748 section 5: X25519 scalars, u-coordinates and shared secrets are 32 bytes.
X25519_KEY_SIZE = 32
# AES-256 only: one key size keeps both backends and the docs simple.
AES_KEY_SIZE = 32
# 96-bit nonces: the size NIST SP 800-38D recommends, the only one GCM uses without an extra
# GHASH pass over the nonce.
GCM_NONCE_SIZE = 12
# The full 128-bit tag: shorter tags weaken forgery resistance (NIST SP 800-38D appendix C).
GCM_TAG_SIZE = 16
# RFC 5869 section 2.3: L <= 255 * HashLen, and SHA-256's HashLen is 32.
HKDF_MAX_LENGTH = 255 * 32

# ---- limits, identical in every backend so both runtimes accept exactly the same inputs

# WebCrypto takes the PBKDF2 iteration count as an unsigned long; refuse what it could not run.
PBKDF2_MAX_ITERATIONS = 2**31 - 1
# One derivation never needs more than a few keys' worth of output.
PBKDF2_MAX_LENGTH = 1024


class CryptoBackend(ABC):
    name: str = "abstract"

    @abstractmethod
    def ed25519_public_key(self, seed: bytes) -> bytes:
        """32-byte public key for a 32-byte private seed."""

    @abstractmethod
    def ed25519_sign(self, seed: bytes, message: bytes) -> bytes:
        """64-byte signature (Ed25519 is deterministic)."""

    @abstractmethod
    def ed25519_verify(self, public_key: bytes, message: bytes, signature: bytes) -> bool:
        """True iff the signature is valid; never raises for bad input."""

    @abstractmethod
    def aes_gcm_encrypt(self, key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
        """ciphertext || 16-byte tag."""

    @abstractmethod
    def aes_gcm_decrypt(self, key: bytes, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
        """Plaintext, or raise CryptoError if the tag does not verify."""

    @abstractmethod
    def hkdf_sha256(self, ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes: ...

    @abstractmethod
    def pbkdf2_sha256(self, password: bytes, salt: bytes, iterations: int, length: int) -> bytes: ...

    @abstractmethod
    def random_bytes(self, n: int) -> bytes: ...

    # ECDSA P-256 with SHA-256 (FIPS 186-5), the second actor algorithm (core/actors.py). Not
    # abstract so a backend without it still serves Ed25519; it then refuses with CryptoError.

    def p256_public_key(self, private_key: bytes) -> bytes:
        """33-byte compressed public point of a 32-byte private scalar d (1 <= d < n)."""
        raise CryptoError(f"the {self.name} backend has no ECDSA P-256")

    def p256_sign(self, private_key: bytes, message: bytes) -> bytes:
        """64-byte r ‖ s over SHA-256(message), low-S (core/actors.py); randomised."""
        raise CryptoError(f"the {self.name} backend has no ECDSA P-256")

    def p256_verify(self, public_key: bytes, message: bytes, signature: bytes) -> bool:
        """True iff `signature` (r ‖ s, low-S) is valid for the 33-byte compressed point
        `public_key`; never raises for bad input (a high-S signature answers False)."""
        return False

    def verify_actor(self, actor: bytes, message: bytes, signature: bytes) -> bool:
        """Verify with the algorithm the actor id names (core/actors.py): the `verify`
        function the engine is given. Never raises for bad input, only answers."""
        from ..core.actors import ED25519, P256, algorithm_of

        alg = algorithm_of(bytes(actor) if isinstance(actor, (bytearray, memoryview)) else actor)
        if alg == ED25519:
            return self.ed25519_verify(actor, message, signature)
        if alg == P256:
            return self.p256_verify(bytes(actor)[2:], message, signature)
        return False

    # X25519 (RFC 7748) wraps space keys to members (crypto/members.py). Not abstract so a
    # backend without it still serves everything else; it then refuses with CryptoError.

    def x25519_public_key(self, private_key: bytes) -> bytes:
        """32-byte X25519 public key for a 32-byte private key (clamped as RFC 7748 says)."""
        raise CryptoError(f"the {self.name} backend has no X25519")

    def x25519(self, private_key: bytes, peer_public_key: bytes) -> bytes:
        """32-byte shared secret; CryptoError for a low-order peer key (all-zero output)."""
        raise CryptoError(f"the {self.name} backend has no X25519")


# ---- argument checks shared by every backend (the same errors natively and in the browser)

def _as_bytes(value: object, what: str) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    raise ValidationError(f"{what} must be bytes, not {type(value).__name__}")


def _exact(value: object, size: int, what: str) -> bytes:
    b = _as_bytes(value, what)
    if len(b) != size:
        raise ValidationError(f"{what} must be {size} bytes, got {len(b)}")
    return b


def _length(n: object, what: str, maximum: int) -> int:
    if isinstance(n, bool) or not isinstance(n, int):
        raise ValidationError(f"{what} must be an int, not {type(n).__name__}")
    if not 1 <= n <= maximum:
        raise ValidationError(f"{what} must be between 1 and {maximum}, got {n}")
    return n


def _random_count(n: object) -> int:
    """The byte count `random_bytes` was asked for: a non-negative int, else ValidationError."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValidationError(f"random_bytes needs a non-negative int, got {n!r}")
    return n


def _injected_random(source: Callable[[int], bytes], n: int) -> bytes:
    """`n` bytes from an injected random source; CryptoError if it returns anything else."""
    out = source(n)
    if not isinstance(out, bytes) or len(out) != n:
        raise CryptoError("the injected random source returned the wrong number of bytes")
    return out


def _gcm_args(key: object, nonce: object, data: object, data_name: str,
              aad: object) -> tuple[bytes, bytes, bytes, bytes]:
    """(key, nonce, data, aad) as bytes for AES-256-GCM, checked in that order: key and nonce
    of their exact sizes, ValidationError otherwise."""
    key_b = _exact(key, AES_KEY_SIZE, "AES-256-GCM key")
    nonce_b = _exact(nonce, GCM_NONCE_SIZE, "AES-GCM nonce")
    return key_b, nonce_b, _as_bytes(data, data_name), _as_bytes(aad, "associated data")


def _gcm_decrypt_args(key: object, nonce: object, ciphertext: object,
                      aad: object) -> tuple[bytes, bytes, bytes, bytes]:
    """`_gcm_args` for a decryption; CryptoError when the ciphertext is too short to hold its
    tag (named as such rather than reported as a tag that does not verify)."""
    args = _gcm_args(key, nonce, ciphertext, "ciphertext", aad)
    if len(args[2]) < GCM_TAG_SIZE:
        raise CryptoError(f"AES-GCM ciphertext is shorter than its {GCM_TAG_SIZE}-byte tag")
    return args


def _verify_args_ok(public_key: object, message: object, signature: object,
                    key_size: int = ED25519_PUBLIC_KEY_SIZE,
                    signature_size: int = ED25519_SIGNATURE_SIZE) -> bool:
    """Shape check before a verify: the contract is to answer False, never to raise."""
    buf = (bytes, bytearray, memoryview)
    return (isinstance(public_key, buf) and len(public_key) == key_size
            and isinstance(signature, buf) and len(signature) == signature_size
            and isinstance(message, buf))


def _p256_verify_args_ok(public_key: object, message: object, signature: object) -> bool:
    """P-256 shape and range check: a canonical compressed point on the curve and a low-S
    signature with r, s in range (core/actors.py), else the answer is False."""
    from ..core.actors import P256_PREFIX, is_actor, p256_signature_ok

    if not _verify_args_ok(public_key, message, signature, P256_PUBLIC_KEY_SIZE, P256_SIGNATURE_SIZE):
        return False
    return is_actor(P256_PREFIX + _as_bytes(public_key, "")) and p256_signature_ok(_as_bytes(signature, ""))


def _p256_private(value: object) -> bytes:
    """A 32-byte P-256 private scalar 1 <= d < n; ValidationError otherwise."""
    from ..core.actors import p256_private_ok

    d = _exact(value, P256_PRIVATE_KEY_SIZE, "P-256 private key")
    if not p256_private_ok(d):
        raise ValidationError("a P-256 private key must be in 1..n-1")
    return d
